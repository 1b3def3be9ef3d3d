"""The report a person reads: the cross-model table, the statistics in words, figures, examples and
each model's most confident mistakes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from imdbclf.serving import SENTIMENTS
from imdbclf.significance import mean_std


def most_confidently_wrong(frame: pd.DataFrame, proba: np.ndarray, n: int) -> pd.DataFrame:
    """The n test reviews whose predicted probability is furthest on the wrong side."""
    wrong_by = np.where(frame["label"].to_numpy() == 1, 1 - proba, proba)
    order = np.argsort(-wrong_by)[:n]
    picked = frame.iloc[order].copy()
    picked["probability"] = proba[order]
    return picked[wrong_by[order] > 0.5]


def _fmt_config(config: Mapping) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def champion_statement(champion: dict) -> str:
    """The champion in one sentence, saying plainly whether its lead is within the uncertainty."""
    text = f"Champion (best validation accuracy): **{champion['model']}**."
    lead = champion.get("lead")
    if lead is None:
        return text + " It is the only model, so there is no lead to judge."
    interval = f"[{lead['ci_low']:+.4f}, {lead['ci_high']:+.4f}]"
    if lead["within_uncertainty"]:
        verdict = (f"**The lead is within the uncertainty**: the interval includes 0, so {lead['runner_up']} "
                   "may be as good on reviews of new movies.")
    else:
        verdict = "The lead is larger than the uncertainty: the interval excludes 0."
    return (f"{text} Its validation lead over the runner-up {lead['runner_up']} is {lead['diff']:+.4f}, "
            f"{lead['level']}% CI {interval} (paired, resampling whole movies). {verdict} "
            "Test accuracy is for reporting, not choosing.")


def markdown(rows: list[dict], pairs: list[dict], confidence: float, examples: list[dict],
             worst: Mapping[str, pd.DataFrame], champion: dict, figures: Mapping[str, str]) -> str:
    """The human-readable report: table, paired statistics, figures, examples, error analysis."""
    level = int(round(confidence * 100))
    lines = ["# IMDB sentiment: which model, and how sure are we?", "", champion_statement(champion), ""]
    lines += [f"| model | best hyperparameters | val accuracy [{level}% CI, by movie] | test accuracy | F1 | "
              "ROC-AUC | trainable params | train s | reviews/s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {_fmt_config(r['config'])} | {r['val_accuracy']:.4f} "
            f"[{r['val_ci_low']:.4f}, {r['val_ci_high']:.4f}] | "
            f"{mean_std(r['test_accuracy'], r['test_accuracy_std'], r['seeds'])} | {r['f1']:.4f} | "
            f"{r['roc_auc']:.4f} | {r['trainable_params']:,} | {r['train_seconds']:.0f} | "
            f"{r['reviews_per_second']:.0f} |"
        )
    lines += ["", "Validation intervals resample whole movies: reviews of one movie are not independent "
              "evidence. With several seeds, every seed's predictions count (per review, the fraction of seeds "
              "right)."]
    lines += ["", f"## Paired comparisons on the same test reviews ({level}% paired bootstrap CI, exact McNemar, "
              "Holm-adjusted over all pairs)", ""]
    if pairs:
        lines += ["| A − B | accuracy difference | CI | McNemar p | Holm-adjusted p | A right, B wrong | "
                  "B right, A wrong |", "|---|---|---|---|---|---|---|"]
        for p in pairs:
            lines.append(f"| {p['a']} − {p['b']} | {p['accuracy_diff']:+.4f} | "
                         f"[{p['ci_low']:+.4f}, {p['ci_high']:+.4f}] | {p['mcnemar_p']:.3g} | "
                         f"{p['mcnemar_p_holm']:.3g} | {p['a_right_b_wrong']} | {p['b_right_a_wrong']} |")
    else:
        lines.append("Only one model ran: nothing to compare.")
    lines += ["", "## Figures", ""]
    lines += [f"![{title}]({path})" for title, path in figures.items()]
    lines += ["", "## Example reviews: P(positive) and sentiment per model", ""]
    names = [r["model"] for r in rows]
    lines += ["| review | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for example in examples:
        lines.append(f"| {example['text']} | " + " | ".join(
            f"{example[n]['probability']:.3f} {example[n]['sentiment']}" for n in names) + " |")
    for name, frame in worst.items():
        lines += ["", f"## {name}: the test reviews it gets most confidently wrong", "",
                  "| true sentiment | P(positive) | review |", "|---|---|---|"]
        for _, row in frame.iterrows():
            text = " ".join(str(row["text"]).replace("|", "/").replace("<br />", " ").split())
            lines.append(f"| {SENTIMENTS[int(row['label'])]} | {row['probability']:.3f} | "
                         f"{text[:300]}{'…' if len(text) > 300 else ''} |")
    return "\n".join(lines) + "\n"
