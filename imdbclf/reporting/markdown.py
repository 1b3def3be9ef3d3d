"""The report a person reads: the cross-model table, the statistics in words, per-class results, figures,
examples and each model's most confident mistakes."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from imdbclf import text as texts
from imdbclf.data import BINARY
from imdbclf.selection import NAMES
from imdbclf.significance import mean_std

# What Markdown would read as markup in a line of text (links and images need their brackets, emphasis,
# code, a table's cell border); HTML's own characters are escaped apart, as entities.
MARKDOWN_MARKUP = re.compile(r"([\\`*_\[\]|~])")
# What a Markdown renderer would turn into a link on its own (GitHub: bare URLs, www., e-mail addresses):
# a zero-width space after the scheme's colon, "www" or "@" keeps it text.
AUTOLINK = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*:(?=//)|\bwww(?=\.)|@)")


def cell(value: object, limit: int | None = None) -> str:
    """A text, class name or setting from the data, as plain text in one table cell: markup and entities
    out and whitespace folded (`imdbclf.text`), cut to `limit` characters, then every character that
    Markdown or HTML would read escaped, so `<script>`, `[x](javascript:…)`, an image or a `|` or newline
    in a class name shows as what it is and a table stays a table."""
    plain = texts.normalize(str(value))
    if limit is not None and len(plain) > limit:
        plain = plain[:limit] + "…"
    return html.escape(AUTOLINK.sub("\\1\u200b", MARKDOWN_MARKUP.sub(r"\\\1", plain)), quote=False)


def most_confidently_wrong(frame: pd.DataFrame, proba: np.ndarray, predicted: np.ndarray, n: int,
                           binary: bool = True) -> pd.DataFrame:
    """The n test texts predicted wrong with the most confidence. `proba`: for two classes P(positive),
    for K the probability of the predicted class."""
    labels = frame["label"].to_numpy()
    wrong = predicted != labels
    wrong_by = np.where(labels == 1, 1 - proba, proba) if binary else np.where(wrong, proba, 0.0)
    order = np.argsort(-wrong_by)[:n]
    picked = frame.iloc[order].copy()
    picked["probability"], picked["predicted"] = proba[order], predicted[order]
    return picked[(wrong_by[order] > 0.5) if binary else wrong[order]]


def _fmt_config(config: Mapping) -> str:
    return cell(", ".join(f"{k}={v}" for k, v in config.items()))


def champion_statement(champion: dict, grouped_by: str, why: str = "") -> str:
    """The champion in one sentence, saying plainly whether its lead is within the uncertainty, and which
    metric chose it, and why that one."""
    name = NAMES[champion.get("metric", "accuracy")]
    text = f"Champion (best validation {name}): **{champion['model']}**."
    if why:
        text += f" Chosen by {name}: {why}."
    lead = champion.get("lead")
    if lead is None:
        return text + " It is the only model, so there is no lead to judge."
    interval = f"[{lead['ci_low']:+.4f}, {lead['ci_high']:+.4f}]"
    unseen = "texts of new movies" if grouped_by == "movie" else (
        f"texts of new {grouped_by}s" if grouped_by != "text" else "new texts")
    if lead["within_uncertainty"]:
        verdict = (f"**The lead is within the uncertainty**: the interval includes 0, so {lead['runner_up']} "
                   f"may be as good on {unseen}.")
    else:
        verdict = "The lead is larger than the uncertainty: the interval excludes 0."
    resampled = f"resampling whole {grouped_by}s" if grouped_by != "text" else "resampling texts"
    return (f"{text} Its validation lead over the runner-up {lead['runner_up']} is {lead['diff']:+.4f}, "
            f"{lead['level']}% CI {interval} (paired, {resampled}). {verdict} "
            "Test accuracy is for reporting, not choosing.")


def _per_class(rows: list[dict], classes: Sequence[str]) -> list[str]:
    names = [r["model"] for r in rows]
    lines = ["", "## Per class on the test set (first seed): precision / recall / F1", "",
             "| class | test texts | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for name in classes:
        support = next((r["per_class"][name]["support"] for r in rows if name in r.get("per_class", {})), 0)
        cells = [(f"{r['per_class'][name]['precision']:.3f} / {r['per_class'][name]['recall']:.3f} / "
                  f"{r['per_class'][name]['f1']:.3f}") if name in r.get("per_class", {}) else "—" for r in rows]
        lines.append(f"| {cell(name)} | {support:,} | " + " | ".join(cells) + " |")
    return lines


def _confusion_section(row: dict) -> list[str]:
    matrix = row["confusion_matrix"]
    classes = matrix["classes"]
    lines = ["", f"### {row['model']}: confusion matrix (rows: true class, columns: predicted)", "",
             "| true \\ predicted | " + " | ".join(map(cell, classes)) + " |", "|---|" + "---|" * len(classes)]
    lines += [f"| {cell(name)} | " + " | ".join(f"{n:,}" for n in counts) + " |"
              for name, counts in zip(classes, matrix["matrix"])]
    return lines


def _guesses(rows: list[dict], guesses: Sequence[dict], level: int) -> list[str]:
    """The baselines under the models, each model's lead over the majority guess, and a flag on a model
    that does not beat it."""
    measured = next((r["vs_majority"]["metric"] for r in rows if r.get("vs_majority")), None)
    if not guesses or measured is None:
        return []
    name = NAMES[measured]
    lines = ["", f"## Against guessing: what a model must beat (test set; lead in {name}, {level}% paired CI)", "",
             "| guess or model | test accuracy | macro-F1 | balanced accuracy | loss | lead over the majority guess |",
             "|---|---|---|---|---|---|"]
    for g in guesses:
        lines.append(f"| {cell(g['model'])} | {g['test_accuracy']:.4f} | {g['macro_f1']:.4f} | "
                     f"{g['balanced_accuracy']:.4f} | {g['loss']:.4f} | — |")
    flagged = []
    for r in rows:
        lead = r.get("vs_majority")
        if not lead:
            continue
        verdict = "" if lead["beats"] else " ⚠ **does not beat it**"
        lines.append(f"| {r['model']} | {r['test_accuracy']:.4f} | {r['macro_f1']:.4f} | — | {r['loss']:.4f} | "
                     f"{lead['diff']:+.4f} [{lead['ci_low']:+.4f}, {lead['ci_high']:+.4f}]{verdict} |")
        if not lead["beats"]:
            flagged.append(r["model"])
    if flagged:
        lines += ["", f"**Warning**: {', '.join(flagged)} {'does' if len(flagged) == 1 else 'do'} not beat always "
                  f"guessing the largest class on test {name} (the interval reaches 0 or below). Try "
                  "`<model>.tune.grid.class_weight: [balanced]`, more epochs or a smaller batch for few texts, "
                  "or more labelled texts; do not serve such a model."]
    return lines


def _results_table(rows: list[dict], level: int, grouped_by: str, metric: str, binary: bool) -> list[str]:
    chosen_by = "" if metric == "accuracy" else f"val {NAMES[metric]} | "
    lines = [f"| model | best hyperparameters | {chosen_by}val accuracy [{level}% CI, by {grouped_by}] | "
             f"test accuracy | {'F1' if binary else 'macro-F1'} | ROC-AUC | trainable params | train s | texts/s |",
             "|---|---|" + ("---|" if chosen_by else "") + "---|---|---|---|---|---|---|"]
    for r in rows:
        score = f"{r['val_score']:.4f} | " if chosen_by else ""
        lines.append(
            f"| {r['model']} | {_fmt_config(r['config'])} | {score}{r['val_accuracy']:.4f} "
            f"[{r['val_ci_low']:.4f}, {r['val_ci_high']:.4f}] | "
            f"{mean_std(r['test_accuracy'], r['test_accuracy_std'], r['seeds'])} | "
            f"{r['f1'] if binary else r['macro_f1']:.4f} | "
            f"{r['roc_auc']:.4f} | {r['trainable_params']:,} | {r['train_seconds']:.0f} | "
            f"{r['texts_per_second']:.0f} |"
        )
    independent = ("reviews of one movie are not independent evidence" if grouped_by == "movie" else
                   f"texts of one {grouped_by} are not independent evidence" if grouped_by != "text" else
                   "each text is one piece of evidence")
    return lines + ["", f"Validation intervals resample whole {grouped_by}s: {independent}. With several seeds, "
                    "every seed's predictions count (per text, the fraction of seeds right)."]


def _paired(pairs: list[dict], level: int) -> list[str]:
    lines = ["", f"## Paired comparisons on the same test texts ({level}% paired bootstrap CI, exact McNemar, "
             "Holm-adjusted over all pairs)", ""]
    if not pairs:
        return lines + ["Only one model ran: nothing to compare."]
    lines += ["| A − B | accuracy difference | CI | McNemar p | Holm-adjusted p | A right, B wrong | "
              "B right, A wrong |", "|---|---|---|---|---|---|---|"]
    for p in pairs:
        lines.append(f"| {p['a']} − {p['b']} | {p['accuracy_diff']:+.4f} | "
                     f"[{p['ci_low']:+.4f}, {p['ci_high']:+.4f}] | {p['mcnemar_p']:.3g} | "
                     f"{p['mcnemar_p_holm']:.3g} | {p['a_right_b_wrong']} | {p['b_right_a_wrong']} |")
    return lines


def _examples_and_errors(rows: list[dict], examples: list[dict], worst: Mapping[str, pd.DataFrame],
                         classes: tuple[str, ...]) -> list[str]:
    names = [r["model"] for r in rows]
    lines = ["", "## Example texts: predicted class and its probability per model", "",
             "| text | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for example in examples:
        lines.append(f"| {cell(example['text'], 300)} | " + " | ".join(
            f"{cell(example[n]['label'])} ({example[n]['probability']:.3f})" for n in names) + " |")
    for name, frame in worst.items():
        lines += ["", f"## {name}: the test texts it gets most confidently wrong", "",
                  "| true class | predicted | " + ("P(positive)" if len(classes) == 2 else "its probability") +
                  " | text |", "|---|---|---|---|"]
        for _, row in frame.iterrows():
            lines.append(f"| {cell(classes[int(row['label'])])} | {cell(classes[int(row['predicted'])])} | "
                         f"{row['probability']:.3f} | {cell(row['text'], 300)} |")
    return lines


def markdown(rows: list[dict], pairs: list[dict], confidence: float, examples: list[dict],
             worst: Mapping[str, pd.DataFrame], champion: dict, figures: Mapping[str, str],
             title: str = "IMDB sentiment", grouped_by: str = "movie", guesses: Sequence[dict] = (),
             why: str = "") -> str:
    """The human-readable report: table, the baselines, paired statistics, per class, figures, examples,
    error analysis. `grouped_by`: what the validation CIs resample (movie for IMDB, a table's group, or
    text); `guesses`: the baselines' rows; `why`: why the selection metric is the one."""
    level = int(round(confidence * 100))
    title, grouped_by = cell(title), cell(grouped_by)
    classes = tuple(rows[0].get("classes") or BINARY) if rows else BINARY
    binary = len(classes) == 2
    lines = [f"# {title}: which model, and how sure are we?", "", champion_statement(champion, grouped_by, why), ""]
    if not binary:
        lines += [f"{len(classes)} classes: {', '.join(map(cell, classes))}. "
                  "ROC-AUC is one-vs-rest, macro-averaged.", ""]
    lines += _results_table(rows, level, grouped_by, champion.get("metric", "accuracy"), binary)
    lines += _guesses(rows, guesses, level)
    lines += _paired(pairs, level)
    if rows and any(r.get("per_class") for r in rows):
        lines += _per_class(rows, classes)
    if not binary:
        for r in rows:
            lines += _confusion_section(r)
    lines += ["", "## Figures", ""]
    lines += [f"![{title}]({path})" for title, path in figures.items()]
    lines += _examples_and_errors(rows, examples, worst, classes)
    return "\n".join(lines) + "\n"
