"""Any labelled text, any number of classes: a table source (CSV, TSV, Parquet, JSON Lines) with a group
column through the whole pipeline with three classes, the star-rating labels of the aclImdb archive,
bad tables refused in one line, and IMDB's binary task unchanged to the byte."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from devkit.helpers import REPO, TINY_ARCHIVE_SHA256, make_project, raises_naming, three_classes, tiny_params
from devkit.helpers import run_pipeline as run
from devkit.tiny_imdb import write_archive, write_tree
from devkit.tiny_tables import WORDS, table_params, tickets, write_table
from imdbclf import data, families, params

TOPICS = tuple(sorted(WORDS))  # billing, bug, praise


def data_params(params_dict: dict, source, **settings):
    return params.parse(table_params(params_dict, source, **settings)).data


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".jsonl"])
def test_every_table_format_gives_the_same_frame(tmp_path, params_dict, suffix):
    frame = tickets(10)
    source = write_table(tmp_path / f"tickets{suffix}", frame)
    count = data.sources.fetch(data_params(params_dict, source), tmp_path / "raw")
    fetched = data.sources.read(tmp_path / "raw", params.parse(params_dict).data, "train", True)
    assert count == 30 and list(fetched.columns) == ["id", "text", "label", "group"]
    assert fetched["id"].tolist() == frame["ticket"].tolist() and fetched["label"].tolist() == frame["topic"].tolist()
    assert fetched["group"].tolist() == frame["customer"].tolist()
    assert data.sources.read(tmp_path / "raw", params.parse(params_dict).data, "test", True) is None


def test_classes_are_sorted_numbers_by_value_and_encoded(tmp_path):
    assert data.class_names(pd.Series([10, 2, 1, 2]), "t") == ("1", "2", "10")
    assert data.class_names(pd.Series(["bug", "billing"]), "t") == ("billing", "bug")
    frame = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "label": [10, 1]})
    assert data.encode_labels(frame, ("1", "2", "10"), "t")["label"].tolist() == [2, 0]
    with raises_naming("test.csv", "'7'", "1, 2, 10"):  # the file, the label, the training data's classes
        data.encode_labels(frame.assign(label=[7, 1]), ("1", "2", "10"), "test.csv")


def test_star_ratings_of_the_aclimdb_archive_are_the_labels(tmp_path):
    data.fetch_archive(str(write_tree(tmp_path / "src", per_class=20)), tmp_path / "raw")
    frame = data.read_reviews(tmp_path / "raw", "train", label="rating")
    assert set(frame["label"]) <= {1, 2, 3, 4, 7, 8, 9, 10}
    assert all(int(i.rsplit("_", 1)[1]) == r for i, r in zip(frame["id"], frame["label"]))
    assert frame["label"][frame["id"].str.contains("/pos/")].min() >= 7
    (tmp_path / "raw" / "train" / "pos" / "0_x.txt").write_text("no rating")
    with raises_naming("0_x.txt", "data.label"):
        data.read_reviews(tmp_path / "raw", "train", label="rating")


def test_a_grouped_three_class_split_keeps_every_group_on_one_side(tmp_path, params_dict):
    frame = data.encode_labels(tickets(40, customers=30).rename(columns={"ticket": "id", "topic": "label",
                                                                          "customer": "group"}), TOPICS, "t")
    train, test = data.split_off(frame, 0.25, 0, True, "split.test_fraction", TOPICS, ("train", "test"))
    fit, val = data.split_train_val(train, 0.25, 0, "group", TOPICS)
    assert not (set(fit["group"]) & set(val["group"])) and not (set(train["group"]) & set(test["group"]))
    for part in (fit, val, test):
        assert sorted(part["label"].unique()) == [0, 1, 2]
    stats = data.split_stats({"train": fit, "val": val, "test": test}, TOPICS)
    assert stats["classes"] == list(TOPICS) and stats["groups"]["shared"] == {"train-val": 0, "train-test": 0,
                                                                              "val-test": 0}
    assert sum(stats["splits"]["val"]["per_class"].values()) == len(val)


BAD_TABLES = [  # what each error names: the file, the column (and its key), the row, the value
    ("no column", lambda f: f.drop(columns=["topic"]), {},
     ("tickets.csv", "'topic'", "data.label_column", "ticket, customer, text")),
    ("empty text", lambda f: f.assign(text=[*f["text"][:4], "  ", *f["text"][5:]]), {},
     ("tickets.csv", "row 5", "'text'")),
    ("mixed labels", lambda f: f.assign(topic=[1, 2, *f["topic"][2:]]), {"suffix": ".jsonl"},
     ("tickets.jsonl", "'topic'", "row 3")),
    ("repeated id", lambda f: f.assign(ticket="same"), {}, ("tickets.csv", "row 2", "'same'", "'ticket'")),
]


@pytest.mark.parametrize("what, damage, options, names", BAD_TABLES, ids=[b[0] for b in BAD_TABLES])
def test_a_bad_table_is_one_line_naming_the_file_and_column(tmp_path, params_dict, what, damage, options, names):
    source = write_table(tmp_path / f"tickets{options.get('suffix', '.csv')}", damage(tickets(10)))
    with raises_naming(*names):
        data.sources.fetch(data_params(params_dict, source), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_tables_that_cannot_be_split_name_the_class_or_group(tmp_path, params_dict):
    undecodable = tmp_path / "latin1.csv"
    undecodable.write_bytes("ticket,customer,text,topic\n1,c1,caf\xe9 cr\xe8me,bug\n".encode("latin-1"))
    with raises_naming("latin1.csv", "UTF-8", "byte "):  # the file, the encoding it lacks, where
        data.sources.fetch(data_params(params_dict, undecodable), tmp_path / "raw")
    with raises_naming("tickets.csv", "one class", "bug"):
        data.class_names(pd.Series(["bug"] * 5), "tickets.csv")
    frame = data.encode_labels(tickets(10).rename(columns={"ticket": "id", "topic": "label", "customer": "group"}),
                               TOPICS, "t")
    rare = pd.concat([frame[frame["label"] != 2], frame[frame["label"] == 2].iloc[:1]])
    with raises_naming("'praise'", "split.test_fraction", "0.25"):
        data.split_off(rare, 0.25, 0, False, "split.test_fraction", TOPICS)
    with raises_naming("'group'", "train split", "split.test_fraction", "0.25"):
        data.split_off(frame.assign(group="one customer"), 0.25, 0, True, "split.test_fraction", TOPICS)


def test_the_fetch_stage_stops_a_bad_table_in_one_line_and_writes_nothing(tmp_path):
    source = write_table(tmp_path / "tickets.csv", tickets(10).drop(columns=["text"]))
    root = make_project(tmp_path / "repo", table_params(tiny_params(str(source)), source))
    result = subprocess.run([sys.executable, "-m", "stages.fetch"], cwd=root, capture_output=True, text=True,
                            env={**__import__("os").environ, "MLFLOW_TRACKING_URI": ""})
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1
    assert all(name in errors[0] for name in ("tickets.csv", "'text'", "data.text_column")), errors[0]
    assert "Traceback" not in result.stderr and not (root / "data" / "raw").exists()


@pytest.mark.parametrize("model, config", [
    ("tfidf_logreg", {"C": 10.0, "ngram_max": 1, "min_df": 1}),
    pytest.param("lstm", {"optimizer": "adam", "batch_size": 8, "learning_rate": 0.02}, marks=pytest.mark.slow),
])
def test_a_family_fits_k_classes_and_saves_their_names(tmp_path, params_dict, model, config):
    section = params.parse(params_dict).model(model)
    family = families.create(model, section)
    train, test = three_classes()
    history = family.fit(train, test, families.hyperparameters(model, section, config),
                         families.FitOptions(epochs=6, seed=0, verbose=0))
    proba = family.predict_proba(test.texts)
    assert proba.shape == (len(test), 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert max(history["val_accuracy"]) >= 0.8 and (families.predicted_labels(proba) == test.labels).mean() >= 0.8
    family.save(tmp_path / "model")
    reloaded = families.load_family(tmp_path / "model")
    assert reloaded.classes == ("negative", "positive", "zzz")
    np.testing.assert_allclose(reloaded.predict_proba(test.texts), proba, atol=1e-6)


def test_nb_logreg_takes_k_classes_one_ratio_and_model_per_class_and_reloads(params_dict, tmp_path):
    section = params.parse(params_dict).model("nb_logreg")
    train, test = three_classes(24)
    family = families.create("nb_logreg", section)
    family.fit(train, test, families.hyperparameters("nb_logreg", section, {"C": 1.0}), families.FitOptions(epochs=1))
    proba = family.predict_proba(test.texts)
    assert proba.shape == (len(test), 3) and np.allclose(proba.sum(axis=1), 1)
    assert family.ratio.shape[0] == family.coef.shape[0] == 3  # one-vs-rest: a ratio and a model per class
    assert (families.predicted_labels(proba) == test.labels).mean() > 0.9
    family.save(tmp_path / "m")
    reloaded = families.load_family(tmp_path / "m")
    assert reloaded.classes == ("negative", "positive", "zzz")
    np.testing.assert_allclose(reloaded.predict_proba(test.texts), proba, atol=1e-9)


def test_k_class_metrics_have_macro_averages_per_class_rows_and_a_k_by_k_matrix():
    from imdbclf import evaluation

    labels = np.array([0, 1, 2, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    m = evaluation.classification_metrics(labels, proba, TOPICS)
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == {"classes": list(TOPICS),
                                                               "matrix": [[1, 0, 0], [0, 1, 0], [1, 0, 1]]}
    assert m["per_class"]["praise"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["macro_f1"] == pytest.approx(np.mean([2 / 3, 1.0, 2 / 3]))
    assert 0.5 < m["roc_auc"] <= 1
    points = evaluation.roc_points(labels, proba)
    assert points[0]["fpr"] == 0 and points[-1]["tpr"] == 1


@pytest.mark.slow
def test_imdbs_binary_task_gives_byte_identical_splits_and_predictions(tmp_path):
    params_dict = tiny_params(str(write_archive(tmp_path / "aclImdb_v1.tar.gz", per_class=30)))
    params_dict["models"] = ["tfidf_logreg"]
    del params_dict["lstm"]
    root = make_project(tmp_path / "repo", params_dict)
    run(["dvc", "repro", "evaluate@tfidf_logreg"], root, env={"MLFLOW_TRACKING_URI": ""})
    assert {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in TINY_ARCHIVE_SHA256} == TINY_ARCHIVE_SHA256
    meta = json.loads((root / "data" / "prepared" / "meta.json").read_text())
    assert {k: meta[k] for k in ("classes", "group")} == {"classes": ["negative", "positive"], "group": "movie"}
    assert meta["train_counts"] == np.bincount(pd.read_parquet(root / "data/prepared/train.parquet")["label"]).tolist()


@pytest.mark.slow
def test_a_three_class_table_with_groups_runs_through_the_whole_pipeline(tmp_path):
    source = write_table(tmp_path / "tickets.csv", tickets(40, customers=40))
    params_dict = table_params(tiny_params(str(source)), source)
    params_dict["tracking"].update(experiment="tickets", registered_model_prefix="tickets-")
    params_dict["evaluate"]["examples"] = ["I was charged twice, please refund my card",
                                           "the app crashes with an error"]
    root = make_project(tmp_path / "repo", params_dict)
    run(["dvc", "repro"], root, env={"MLFLOW_TRACKING_URI": ""})

    stats = json.loads((root / "metrics" / "data.json").read_text())
    assert stats["classes"] == list(TOPICS) and set(stats["groups"]["shared"].values()) == {0}
    assert sum(s["count"] for s in stats["splits"].values()) == 120
    for model in ("tfidf_logreg", "lstm"):
        result = json.loads((root / "metrics" / "eval" / f"{model}.json").read_text())
        assert result["classes"] == list(TOPICS) and set(result["per_class"]) == set(TOPICS)
        matrix = result["confusion_matrix"]["matrix"]
        assert len(matrix) == 3 and all(len(row) == 3 for row in matrix) and sum(map(sum, matrix)) == 30
        assert 0 <= result["macro_f1"] <= 1 and 0 <= result["roc_auc"] <= 1
        confusion = pd.read_csv(root / "metrics" / "eval" / model / "confusion.csv")
        assert set(confusion["actual"]) == set(TOPICS)
        examples = json.loads((root / "metrics" / "eval" / model / "examples.json").read_text())
        assert set(examples[0]["probabilities"]) == set(TOPICS) and "sentiment" not in examples[0]
    assert json.loads((root / "metrics" / "eval" / "tfidf_logreg.json").read_text())["accuracy"] >= 0.8
    report = (root / "reports" / "report.md").read_text()
    assert "# tickets: which model" in report and "by group]" in report and "macro-F1" in report
    assert "## Per class on the test set" in report and "| billing |" in report
    assert "confusion matrix (rows: true class, columns: predicted)" in report
    assert (root / "reports" / "figures" / "confusion.png").exists()
    answer = json.loads(run([sys.executable, "-m", "imdbclf", "predict", "--json", "--model",
                             "models/tfidf_logreg/seed_0", "please refund the invoice"], root).stdout)
    assert answer[0]["label"] == "billing" and set(answer[0]["probabilities"]) == set(TOPICS)
    assert answer[0]["probability"] == max(answer[0]["probabilities"].values())
    assert REPO  # the project is a copy of this repository's pipeline
