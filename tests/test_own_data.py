"""Your own data, done well: the selection metric and class weights follow the balance of the classes,
every model is measured against guessing, NB-weighted logistic regression takes K classes, one text
normaliser, the K-class ROC legend matches its curve, and `dvc exp show` compares headline figures."""

from __future__ import annotations

import json
import random
import re
import sys

import numpy as np
import pandas as pd
import pytest

from devkit.helpers import make_project, raises_naming, tiny_params
from devkit.helpers import run_pipeline as run
from devkit.tiny_tables import table_params, write_table
from imdbclf import baselines, evaluation, families, params, selection, sizing
from imdbclf.data import Split
from imdbclf.reporting import figures, markdown
from imdbclf.settings.selection import SelectionParams
from imdbclf.text import normalize

RULE = SelectionParams()
WORDS = {"billing": ["invoice", "charged", "refund", "payment", "card"],
         "bug": ["crash", "error", "broken", "freezes", "fails"],
         "praise": ["love", "great", "thanks", "wonderful", "excellent"]}
FILLER = ["the", "app", "today", "my", "account", "please", "again", "it", "is", "when"]


def imbalanced_tickets(counts: dict[str, int], seed: int = 0, cue: float = 0.5) -> pd.DataFrame:
    """Tickets of three topics in the given counts: each carries one word of its topic with chance `cue`,
    else a word of another topic (so the rare topic is easy to swallow), among filler words."""
    rng = random.Random(seed)
    rows = []
    for topic, n in counts.items():
        for i in range(n):
            other = rng.choice([t for t in WORDS if t != topic])
            words = [rng.choice(WORDS[topic]) if rng.random() < cue else rng.choice(WORDS[other])]
            words += [rng.choice(WORDS[topic]) for _ in range(rng.random() < 0.3)]
            text = " ".join(words + rng.sample(FILLER, 5))
            rows.append({"ticket": f"{topic[:2]}-{i:03d}", "customer": f"c{rng.randrange(60):02d}",
                         "text": text, "topic": topic})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def as_split(frame: pd.DataFrame, name: str) -> Split:
    classes = tuple(sorted(WORDS))
    labels = frame["topic"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return Split(name, frame["text"].to_numpy(dtype=object), labels, classes=classes)


def test_auto_picks_accuracy_for_balanced_classes_and_macro_f1_with_balanced_weights_otherwise():
    assert selection.metric(RULE, np.array([10_000, 10_000])) == "accuracy"
    assert selection.class_weights("auto", np.array([10_000, 10_000]), RULE) is None
    skewed = np.array([640, 90, 270])
    assert selection.metric(RULE, skewed) == "macro_f1"
    weights = selection.class_weights("auto", skewed, RULE)
    assert weights == pytest.approx({0: 1000 / (3 * 640), 1: 1000 / (3 * 90), 2: 1000 / (3 * 270)})
    assert selection.class_weights("none", skewed, RULE) is None
    assert selection.metric(SelectionParams(metric="balanced_accuracy"), np.array([5, 5])) == "balanced_accuracy"
    assert "more than selection.balanced_ratio 1.5" in selection.why(RULE, skewed)


def test_the_best_epoch_follows_the_selection_metric():
    history = {"val_accuracy": [0.70, 0.66], "val_macro_f1": [0.30, 0.45], "val_loss": [0.5, 0.6]}
    assert families.best_epoch(history) == 0 and families.best_epoch(history, "macro_f1") == 1


def test_macro_f1_lead_over_the_majority_guess_and_its_ci():
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=600, p=[0.65, 0.10, 0.25])
    counts = np.bincount(labels, minlength=3)
    r = params.ReportParams()
    always = baselines.lead_over_majority(labels, np.zeros(600, dtype=int), counts, "macro_f1", r)
    assert always["diff"] == 0 and not always["beats"]  # the guess itself: no lead
    good = np.where(rng.random(600) < 0.8, labels, rng.integers(0, 3, 600))
    lead = baselines.lead_over_majority(labels, good, counts, "macro_f1", r)
    from sklearn.metrics import f1_score
    expected = f1_score(labels, good, average="macro") - f1_score(labels, np.zeros(600), average="macro",
                                                                  labels=[0, 1, 2])
    assert lead["diff"] == pytest.approx(expected) and lead["ci_low"] > 0 and lead["beats"]
    assert lead["ci_low"] <= lead["diff"] <= lead["ci_high"]


@pytest.mark.parametrize("family", ["tfidf_logreg", "nb_logreg"])
def test_balanced_class_weights_raise_the_rare_class_recall(params_dict, family):
    frame = imbalanced_tickets({"billing": 240, "bug": 20, "praise": 90}, cue=0.8)
    test = imbalanced_tickets({"billing": 240, "bug": 20, "praise": 90}, seed=1, cue=0.8)
    train, val = as_split(frame, "train"), as_split(test, "val")
    section = params.parse(params_dict).model(family)
    counts = train.class_counts()
    recall = {}
    for setting in ("none", "balanced"):
        model = families.create(family, section)
        hp = families.hyperparameters(family, section, {"class_weight": setting})
        model.fit(train, val, hp, families.FitOptions(epochs=1, metric="macro_f1",
                                                      class_weight=selection.class_weights(setting, counts, RULE)))
        predicted = families.predicted_labels(model.predict_proba(val.texts))
        recall[setting] = float((predicted[val.labels == 1] == 1).mean())  # bug: the 6% class
    assert recall["balanced"] > recall["none"] + 0.3, recall  # seen: 0.0 → 0.55 (TF-IDF), 0.0 → 0.5 (NB)


def test_a_model_that_does_not_beat_the_majority_guess_is_flagged_in_the_report():
    lead = {"metric": "macro_f1", "diff": 0.01, "ci_low": -0.02, "ci_high": 0.04, "beats": False}
    row = {"model": "lstm", "config": {}, "val_accuracy": 0.64, "val_ci_low": 0.6, "val_ci_high": 0.7,
           "val_score": 0.28, "test_accuracy": 0.64, "test_accuracy_std": None, "seeds": 1, "f1": 0.2,
           "macro_f1": 0.28, "roc_auc": 0.5, "loss": 0.9, "trainable_params": 10, "train_seconds": 1.0,
           "texts_per_second": 1.0, "classes": ["bad", "good", "mixed"], "vs_majority": lead, "per_class": {},
           "confusion_matrix": {"classes": ["bad", "good", "mixed"], "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}
    guesses = [{"model": "majority guess (always 'bad')", "test_accuracy": 0.65, "macro_f1": 0.26,
                "balanced_accuracy": 1 / 3, "loss": 0.85}]
    text = markdown.markdown([row], [], 0.95, [], {}, {"model": "lstm", "metric": "macro_f1"}, {},
                             "tickets", "group", guesses=guesses, why="the classes are imbalanced")
    assert "Champion (best validation macro-F1): **lstm**. Chosen by macro-F1: the classes are imbalanced." in text
    assert "| majority guess (always 'bad') | 0.6500 | 0.2600 |" in text
    assert "+0.0100 [-0.0200, +0.0400] ⚠ **does not beat it**" in text
    assert "**Warning**: lstm does not beat always guessing the largest class" in text
    line = baselines.warning("lstm", lead, ["bad", "good", "mixed"], np.array([64, 9, 27]))
    assert line.startswith("warning: lstm does not beat always guessing 'bad' on test macro-F1")
    assert "\n" not in line


def test_the_k_class_roc_legend_is_the_area_under_the_plotted_curve():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    proba[np.arange(300), labels] += rng.random(300)  # better than chance, unevenly
    proba /= proba.sum(axis=1, keepdims=True)
    scores = evaluation.classification_metrics(labels, proba, ("a", "b", "c"))
    curve = pd.DataFrame(evaluation.roc_points(labels, proba))
    area = float(np.trapezoid(curve["tpr"], curve["fpr"]))
    assert scores["roc_curve_auc"] == pytest.approx(area, abs=0.005)
    fig = figures.plot_roc({"m": curve}, {"m": scores["roc_curve_auc"]}, micro=True)
    label = fig.axes[0].get_legend().get_texts()[0].get_text()
    assert label.startswith("m (micro AUC ") and abs(float(label.split()[-1].rstrip(")")) - area) < 0.005


def test_one_normaliser_takes_markup_and_entities_out_and_keeps_words_in_angle_brackets():
    assert normalize("Great<br /><br />film &amp; a  <i>cast</i> isn&#039;t\n <B>bad</b>") == \
        "Great film & a cast isn't bad"
    assert normalize("<grin> I <3 it &lt;b&gt;") == "<grin> I <3 it <b>"


def test_a_tables_format_is_inferred_from_its_name(params_dict, tmp_path):
    raw = tiny_params("x")
    for source, expected in (("t.csv", "table"), ("t.tsv.gz", "table"), ("https://h/d.parquet?x=1", "table"),
                             ("a.tar.gz", "aclimdb"), ("folder", "aclimdb")):
        raw["data"].update(source=source)
        raw["data"].pop("format", None)
        assert params.parse(raw).data.format == expected, source


@pytest.mark.slow
def test_an_imbalanced_table_end_to_end_baselines_macro_f1_champion_and_k_class_nb(tmp_path):
    source = write_table(tmp_path / "tickets.csv", imbalanced_tickets({"billing": 200, "bug": 24, "praise": 76}))
    params_dict = table_params(tiny_params(str(source)), source)
    params_dict["data"].pop("format")  # inferred from .csv
    params_dict["models"] = ["nb_logreg", "tfidf_logreg"]
    params_dict["nb_logreg"]["tune"]["grid"] = {"C": [0.1, 1.0], "ngram_max": [1]}
    params_dict["tracking"].update(experiment="tickets", registered_model_prefix="tickets-")
    root = make_project(tmp_path / "repo", params_dict)
    result = run(["dvc", "repro"], root, env={"MLFLOW_TRACKING_URI": ""})

    report = (root / "reports" / "report.md").read_text()
    assert "Champion (best validation macro-F1)" in report and "Chosen by macro-F1: selection.metric auto" in report
    assert "| majority guess (always 'billing') |" in report and "| class-prior guess" in report
    champion = json.loads((root / "metrics" / "champion.json").read_text())
    assert champion["metric"] == "macro_f1" and set(champion) >= {"champion", "val_macro_f1", "test_macro_f1"}
    for model in ("nb_logreg", "tfidf_logreg"):
        scores = json.loads((root / "metrics" / "scores" / f"{model}.json").read_text())
        assert set(scores) == {"val_macro_f1", "accuracy", "macro_f1", "loss"}
        best = json.loads((root / "metrics" / "best" / f"{model}.json").read_text())
        assert best["metric"] == "macro_f1"
        lead = json.loads((root / "metrics" / "eval" / f"{model}.json").read_text())["vs_majority"]
        assert lead["metric"] == "macro_f1" and lead["ci_low"] <= lead["diff"] <= lead["ci_high"]
        assert (f"warning: {model} does not beat" in result.stdout) == (not lead["beats"])
        examples = json.loads((root / "metrics" / "eval" / model / "examples.json").read_text())
        assert len(examples) == 3 and "sentiment" not in examples[0]  # one test text per class
    answer = json.loads(run([sys.executable, "-m", "imdbclf", "predict", "--json", "--model",
                             "models/nb_logreg/seed_0", "please refund the invoice"], root).stdout)
    assert answer[0]["label"] == "billing" and set(answer[0]["probabilities"]) == set(WORDS)

    imdb_words = re.compile(r"movie|film|review|sentiment|imdb(?!clf)", re.IGNORECASE)  # not the package name
    outputs = {"report.md": report}
    outputs |= {str(f.relative_to(root)): f.read_text() for f in (root / "metrics").rglob("*.json")
                if "bench" not in f.parts}
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    outputs["MLflow params"] = json.dumps([run.data.params for run in runs])
    outputs["MLflow metric names"] = json.dumps([sorted(run.data.metrics) for run in runs])
    logged = root / "mlruns" if (root / "mlruns").exists() else root
    outputs |= {str(f): f.read_text() for f in logged.rglob("MLmodel")}
    outputs |= {str(f): f.read_text() for f in logged.rglob("input_example.json")}
    outputs["predict --help"] = run([sys.executable, "-m", "imdbclf", "predict", "--help"], root).stdout
    assert any("MLmodel" in name for name in outputs) and any("input_example" in name for name in outputs)
    assert {name: imdb_words.findall(text) for name, text in outputs.items() if imdb_words.search(text)} == {}

    compared = run([sys.executable, "-m", "imdbclf", "compare"], root).stdout.splitlines()
    assert compared[0] == "per model: validation macro_f1 / test accuracy" and compared[2].startswith("workspace")
    assert max(map(len, compared)) <= 120

    shown = run(["dvc", "metrics", "show", "--json"], root).stdout
    assert "metrics/scores/nb_logreg.json" in shown and "metrics/champion.json" in shown
    assert "metrics/tune/" not in shown and "metrics/data.json" not in shown


def test_auto_batch_size_and_epochs_follow_the_number_of_training_texts():
    rule = params.SizingParams()
    assert [sizing.batch_size("auto", n, rule) for n in (481, 5_000, 20_000, 500_000)] == [16, 64, 128, 128]
    assert sizing.epochs("auto", 481, 16, rule) == 20  # 31 steps an epoch: 600 steps in 20 epochs
    assert sizing.epochs("auto", 20_000, 128, rule) == 4 and sizing.epochs("auto", 500_000, 128, rule) == 2
    assert sizing.batch_size(256, 481, rule) == 256 and sizing.epochs(7, 481, 16, rule) == 7  # numbers stay


def test_a_keras_family_with_auto_sizes_trains_with_the_resolved_batch_and_epochs(params_dict):
    p = params.parse(params_dict)
    section = p.model("lstm")
    hp = families.hyperparameters("lstm", section, {"optimizer": "adam", "batch_size": "auto", "learning_rate": 0.01})
    frame = imbalanced_tickets({"billing": 60, "bug": 20, "praise": 40}, cue=0.9)
    train = as_split(frame, "train")
    sized, epochs = sizing.sized(hp, "auto", len(train), p.sizing)
    assert sized.batch_size == 16 and epochs == 30  # 120 texts: 8 steps an epoch, capped at max_epochs
    assert sizing.sized(families.hyperparameters("tfidf_logreg", p.model("tfidf_logreg"), {}), "auto", 120,
                        p.sizing)[1] == 1  # a one-pass family: one epoch
    history = families.create("lstm", section).fit(train, train, sized, families.FitOptions(epochs=2, verbose=0))
    assert len(history["val_accuracy"]) == 2
    with raises_naming("lstm.tune.grid.batch_size", "big"):
        families.hyperparameters("lstm", section, {"batch_size": "big"})


def test_compare_puts_experiments_side_by_side_in_a_terminals_width():
    from imdbclf.ops import experiments

    models = ["nb_logreg", "tfidf_logreg", "lstm", "bert_small", "electra_base"]
    def row(name, c):
        scores = {m: {"val_accuracy": 0.9, "accuracy": 0.91, "macro_f1": 0.91, "loss": 0.2} for m in models}
        return {"name": name, "champion": {"champion": "nb_logreg", "metric": "accuracy"}, "models": scores,
                "params": {"nb_logreg.tune.grid.C": [c], "lstm.model.dropout": 0.3, "data.source": "x" * 300}}
    text = experiments.table([row("workspace", 0.1), row("awash-male", 0.3)], width=120)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120 and lines[0] == "per model: validation accuracy / test accuracy"
    assert lines[2].split() == ["workspace", "nb_logreg", *["0.9000/0.9100"] * 5]
    assert lines[3] == "  nb_logreg.tune.grid.C=[0.1]"  # only what differs between the experiments shown
    assert "no experiment with results" in experiments.table([])
