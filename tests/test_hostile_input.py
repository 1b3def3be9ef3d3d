"""What a hostile params.yaml or data source must not get: a shell command run by DVC through a model's
name, or raw HTML and Markdown links in the report from test texts and class names."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from devkit.helpers import REPO, make_project, run_pipeline, tiny_params
from imdbclf import params
from imdbclf.errors import UserError
from imdbclf.reporting import markdown

HOSTILE_NAME = "x;touch PWNED;"


def test_a_model_name_that_is_not_a_name_is_refused_naming_it():
    raw = tiny_params("data/texts.csv")
    raw["models"] = [HOSTILE_NAME]
    raw[HOSTILE_NAME] = raw.pop("tfidf_logreg")
    with pytest.raises(UserError) as err:
        params.parse(raw)
    assert "models" in str(err.value) and HOSTILE_NAME in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError):
        params.check_model_name(HOSTILE_NAME)  # what a stage or a worker's command line is checked by


@pytest.mark.slow
def test_dvc_repro_runs_check_params_before_any_command_holding_a_model_name(tmp_path):
    raw = tiny_params("data/texts.csv")
    raw["models"] = [HOSTILE_NAME]
    raw[HOSTILE_NAME] = raw.pop("tfidf_logreg")
    project = make_project(tmp_path / "project", raw)
    done = run_pipeline(["dvc", "repro"], project, check=False)
    assert done.returncode != 0
    assert "is not a name" in done.stdout + done.stderr
    assert not list(project.rglob("PWNED"))


def test_every_make_target_that_runs_dvc_checks_params_yaml_first():
    """DVC reads all of params.yaml (and follows its aliases) before the check-params stage can run."""
    recipes = re.findall(r"^([\w-]+):.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    runs_dvc = {target: lines.split("\n") for target, lines in recipes
                if re.search(r"^\tdvc (repro|exp run)", lines, re.M)}
    assert {"run", "cpu"} <= set(runs_dvc)
    for target, lines in runs_dvc.items():
        first_dvc = next(i for i, line in enumerate(lines) if re.match(r"\tdvc (repro|exp run)", line))
        assert any("$(CHECK_PARAMS)" in line for line in lines[:first_dvc]), target


HOSTILE_TEXTS = ["<script>alert(1)</script> a bad film", "see [this](javascript:alert(1)) now",
                 "![x](https://tracker.example/p.png) <img src=x onerror=alert(1)> boring"]
HOSTILE_CLASSES = ("good|bad", "<script>meh</script>\nsecond line", "[ok](javascript:alert(2))")


def hostile_report() -> str:
    rows = [{"model": "m", "config": {"C": 1.0}, "val_accuracy": 0.5, "val_ci_low": 0.4, "val_ci_high": 0.6,
             "test_accuracy": 0.5, "test_accuracy_std": 0.0, "seeds": 1, "macro_f1": 0.3, "roc_auc": 0.5,
             "trainable_params": 1, "train_seconds": 1.0, "texts_per_second": 1.0, "classes": list(HOSTILE_CLASSES),
             "per_class": {c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 1} for c in HOSTILE_CLASSES},
             "confusion_matrix": {"classes": list(HOSTILE_CLASSES), "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
             "loss": 1.0, "vs_majority": {"metric": "accuracy", "diff": 0.1, "ci_low": 0.0, "ci_high": 0.2,
                                          "beats": True}}]
    guesses = [{"model": f"majority guess (always '{HOSTILE_CLASSES[1]}')", "test_accuracy": 0.4, "macro_f1": 0.2,
                "balanced_accuracy": 0.33, "loss": 1.1}]
    examples = [{"text": t, "m": {"label": c, "probability": 0.9}} for t, c in zip(HOSTILE_TEXTS, HOSTILE_CLASSES)]
    worst = {"m": pd.DataFrame({"text": HOSTILE_TEXTS, "label": [0, 1, 2], "predicted": [1, 2, 0],
                                "probability": np.array([0.9, 0.8, 0.7])})}
    return markdown.markdown(rows, [], 0.95, examples, worst, {"model": "m", "metric": "accuracy"}, {},
                             title="tickets", grouped_by="text", guesses=guesses)


def test_the_report_shows_hostile_texts_and_class_names_as_text_and_keeps_its_tables():
    report = hostile_report()
    assert not re.search(r"<(script|img|b)\b", report, re.I)  # no raw HTML
    assert not re.search(r"(?<!\\)\]\((javascript|https://tracker)", report)  # no live link or image
    assert "&lt;script&gt;" in report  # shown, not dropped
    tables = re.findall(r"((?:^\|.*\|$\n?)+)", report, re.M)
    for table in tables:
        lines = table.strip().split("\n")
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, table  # every row has the header's cells: no cell border from the data
