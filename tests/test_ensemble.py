"""The ensemble: weights chosen greedily on validation favour the member that helps, the combination is a
probability matrix for any number of classes, and the saved ensemble loads (as `predict` and the served
model load it) and scores as its members combined."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from devkit.helpers import raises_naming, three_classes
from imdbclf import ensemble, families, params, serving


def noisy(labels: np.ndarray, k: int, right: float, seed: int) -> np.ndarray:
    """Probabilities that put 0.8 on the true class for a share `right` of the rows, else on another."""
    rng = np.random.default_rng(seed)
    guess = np.where(rng.random(len(labels)) < right, labels, (labels + rng.integers(1, k, len(labels))) % k)
    proba = np.full((len(labels), k), 0.2 / (k - 1))
    proba[np.arange(len(labels)), guess] = 0.8
    return proba


@pytest.mark.parametrize("k", [2, 3])
def test_greedy_weights_favour_the_member_that_helps_and_sum_to_one(k):
    labels = np.random.default_rng(0).integers(0, k, 2000)
    probas = {"good": noisy(labels, k, 0.9, 1), "poor": noisy(labels, k, 0.4, 2), "fair": noisy(labels, k, 0.7, 3)}
    path = ensemble.greedy_path(probas, labels, "accuracy", 10)
    weights = path[-1]
    assert len(path) == 10 and sum(weights.values()) == pytest.approx(1)
    assert weights["good"] == max(weights.values()) and path[0] == {"good": 1.0, "poor": 0.0, "fair": 0.0}
    combined = ensemble.combine(probas, weights)
    assert combined.shape == (2000, k) and np.allclose(combined.sum(axis=1), 1)
    accuracy = (combined.argmax(axis=1) == labels).mean()
    assert accuracy >= (probas["good"].argmax(axis=1) == labels).mean()  # greedy never ends below its first pick


def test_one_member_with_all_the_weight_is_that_member():
    labels = np.array([0, 1, 2, 1])
    proba = noisy(labels, 3, 1.0, 0)
    np.testing.assert_allclose(ensemble.combine({"a": proba, "b": noisy(labels, 3, 0.0, 1)}, {"a": 1, "b": 0}),
                               proba, atol=1e-12)


def test_a_saved_ensemble_loads_scores_as_its_members_combined_and_is_logged_as_a_model(params_dict, tmp_path,
                                                                                     monkeypatch):
    p = params.parse({**params_dict, "models": ["tfidf_logreg", "nb_logreg"]})
    train, test = three_classes(24)
    members, dirs = {}, {}
    for name, config in (("tfidf_logreg", {"C": 10.0, "ngram_max": 1, "min_df": 1}), ("nb_logreg", {"C": 1.0})):
        family = families.create(name, p.model(name))
        family.fit(train, test, families.hyperparameters(name, p.model(name), config), families.FitOptions(epochs=1))
        family.save(tmp_path / name)
        members[name], dirs[name] = family, tmp_path / name
    weights = {"tfidf_logreg": 0.25, "nb_logreg": 0.75}
    ensemble.save(tmp_path / "ensemble", dirs, weights, train.classes, {m: m for m in dirs})
    expected = ensemble.combine({m: f.predict_proba(test.texts) for m, f in members.items()}, weights)
    loaded = families.load_family(tmp_path / "ensemble")  # as `predict --model` and the served model load any model
    assert loaded.classes == train.classes
    np.testing.assert_allclose(loaded.predict_proba(test.texts), expected, atol=1e-9)
    assert families.registry.loads_only_data(tmp_path / "ensemble")  # NB and skops: no member runs code

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # undone after the test
    experiment = mlflow.MlflowClient().create_experiment("ensemble", (tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = serving.log_model(tmp_path / "ensemble", None)
    served = mlflow.pyfunc.load_model(info.model_uri).predict(pd.DataFrame({"text": list(test.texts[:5])}))
    np.testing.assert_allclose(served["probability"], expected[:5].max(axis=1), atol=1e-6)
    requirements = serving.pip_requirements(["tfidf_logreg", "nb_logreg"])
    assert any(r.startswith("skops") for r in requirements)
    assert not any(r.startswith("tensorflow") for r in requirements)


def test_validation_out_of_fold_is_never_scored_with_weights_chosen_on_the_same_texts():
    labels = np.random.default_rng(0).integers(0, 2, 600)
    probas = {"good": noisy(labels, 2, 0.9, 1), "poor": noisy(labels, 2, 0.5, 2)}
    groups = np.repeat(np.arange(60), 10)  # ten texts per movie: a movie's texts share a fold
    oof = ensemble.out_of_fold(probas, labels, groups, "accuracy", 5, 5, 0)
    assert oof.shape == (600, 2) and np.allclose(oof.sum(axis=1), 1)
    assert (oof.argmax(axis=1) == labels).mean() > 0.8


@pytest.mark.parametrize("groups", [None, np.full(600, None, dtype=object)], ids=["no column", "no group"])
def test_texts_without_a_group_are_each_their_own_in_the_folds(groups):
    """A table split with `group_by: none` has a group column of None: every text is then its own group
    (they were one group, one fold, and the others' weights came from no text at all)."""
    labels = np.random.default_rng(0).integers(0, 2, 600)
    probas = {"good": noisy(labels, 2, 0.9, 1), "poor": noisy(labels, 2, 0.5, 2)}
    oof = ensemble.out_of_fold(probas, labels, groups, "accuracy", 5, 5, 0)
    assert oof.shape == (600, 2) and np.allclose(oof.sum(axis=1), 1)
    assert (oof.argmax(axis=1) == labels).mean() > 0.8


def test_a_saved_ensemble_that_declares_other_members_than_it_holds_is_refused(params_dict, tmp_path):
    """Its family.json could otherwise call a Keras member a TF-IDF one (loads_only_data) or name a path."""
    import json

    p = params.parse(params_dict)
    train, test = three_classes(12)
    family = families.create("tfidf_logreg", p.model("tfidf_logreg"))
    family.fit(train, test, families.hyperparameters("tfidf_logreg", p.model("tfidf_logreg"),
                                                     {"C": 1.0, "ngram_max": 1, "min_df": 1}),
               families.FitOptions(epochs=1))
    family.save(tmp_path / "member")
    ensemble.save(tmp_path / "e", {"a": tmp_path / "member", "b": tmp_path / "member"}, {"a": 0.5, "b": 0.5},
                  train.classes, {"a": "tfidf_logreg", "b": "tfidf_logreg"})
    meta_path = tmp_path / "e" / "family.json"
    meta = json.loads(meta_path.read_text())
    # each names the ensemble, and the member at fault with what it is and what it was declared
    for forged, names in (({**meta, "member_families": {"a": "lstm", "b": "tfidf_logreg"}},
                           [str(tmp_path / "e" / "members" / "a"), "tfidf_logreg", "declares lstm"]),
                          ({**meta, "weights": {"../../x": 1.0}, "member_families": {"../../x": "tfidf_logreg"}},
                           ["'../../x'", "not a model"]),
                          ({**meta, "weights": {"a": 1.0}}, ["family.json", "no members"])):
        meta_path.write_text(json.dumps(forged))
        with raises_naming(str(tmp_path / "e"), *names):
            families.load_family(tmp_path / "e")
