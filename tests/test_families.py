import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from devkit.helpers import REPO, raises_naming, splits, tiny_params
from imdbclf import families, params
from imdbclf.errors import UserError


class Killed(Exception):
    """Stands in for kill -9: raised midway through a save, or by the epoch logger, i.e. after an epoch
    trained but before its checkpoint was written."""


@pytest.mark.slow
@pytest.mark.parametrize("model, config", [
    ("lstm", {"optimizer": "adam", "batch_size": 8, "learning_rate": 0.02}),
    ("tfidf_logreg", {"C": 10.0, "ngram_max": 2, "min_df": 1}),
    ("nb_logreg", {"C": 1.0, "ngram_max": 2}),
])
def test_family_learns_saves_and_reloads_in_a_fresh_process(tmp_path, params_dict, model, config):
    p = params.parse(params_dict)
    section = p.model(model)
    family = families.create(model, section)
    train, test = splits()
    logged = []
    history = family.fit(train, test, families.hyperparameters(model, section, config),
                         families.FitOptions(epochs=6, seed=0, on_epoch_end=lambda e, m: logged.append((e, m))))
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert logged and logged[0][0] == 1 and "val_accuracy" in logged[0][1]
    assert max(history["val_accuracy"]) >= 0.8
    assert family.trainable_params() > 0

    family.save(tmp_path / "model")
    texts = list(test.texts[:6]) + ["a great and wonderful film", "dull, boring, awful"]
    expected = family.predict_proba(texts)
    script = (
        "import json, sys; from pathlib import Path; from imdbclf import families; "
        f"f = families.load_family(Path({str(tmp_path / 'model')!r})); "
        "print(json.dumps(f.predict_proba(json.loads(sys.stdin.read())).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True,
                         text=True, cwd=REPO, check=True)
    reloaded = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(reloaded, expected, atol=1e-6)
    assert reloaded[-2, 1] > 0.5 > reloaded[-1, 1]  # P(positive)


@pytest.mark.slow
def test_best_epoch_on_a_tie_is_the_epoch_saved_and_reported(tmp_path, params_dict):
    """A learning rate so small that validation accuracy never moves while validation loss keeps
    falling: every epoch ties on accuracy. The one rule (ties go to the lower loss) names the epoch
    whose numbers are reported, and the saved model must be exactly that epoch's."""
    p = params.parse(params_dict)
    section = p.model("lstm")
    family = families.create("lstm", section)
    train, val = splits()
    hp = families.hyperparameters("lstm", section, {"optimizer": "sgd", "batch_size": 8, "learning_rate": 0.003})
    history = family.fit(train, val, hp, families.FitOptions(epochs=3, seed=0, patience=1,
                                                             checkpoint_dir=tmp_path / "checkpoints", verbose=0))
    assert len(set(history["val_accuracy"])) == 1 and len(history["val_accuracy"]) >= 2  # a tie
    best = families.best_epoch(history)
    assert history["val_loss"][best] < history["val_loss"][0]  # the rule picks a later epoch
    family.save(tmp_path / "model")
    script = (
        "import json, sys; from pathlib import Path; import numpy as np; "
        "from imdbclf import evaluation, families; "
        f"f = families.load_family(Path({str(tmp_path / 'model')!r})); data = json.loads(sys.stdin.read()); "
        "m = evaluation.classification_metrics(np.array(data['labels']), f.predict_proba(data['texts'])); "
        "print(json.dumps([m['accuracy'], m['loss'], f.trainable_params()]))"
    )
    payload = json.dumps({"texts": list(val.texts), "labels": val.labels.tolist()})
    out = subprocess.run([sys.executable, "-c", script], input=payload, capture_output=True, text=True, cwd=REPO,
                         check=True)
    accuracy, loss, trainable = json.loads(out.stdout.strip().splitlines()[-1])
    assert accuracy == pytest.approx(history["val_accuracy"][best], abs=1e-6)  # Keras reports float32
    assert loss == pytest.approx(history["val_loss"][best], abs=3e-6)  # epochs differ by ~1.5e-5
    assert trainable == family.trainable_params() > 0  # a reloaded model knows its size


def test_early_stopping_follows_the_best_epoch_rule():
    from imdbclf.families.keras.callbacks import BestEpochStopping

    class Model:
        stop_training = False

    stopper = BestEpochStopping(patience=1)
    stopper.set_model(Model())
    for epoch, (acc, loss) in enumerate([(0.8, 0.5), (0.8, 0.4), (0.8, 0.45)]):
        stopper.on_epoch_end(epoch, {"val_accuracy": acc, "val_loss": loss})
        assert stopper.model.stop_training == (epoch == 2)  # epoch 1 tied but lower loss: a new best


def fit_lstm(params_dict, checkpoint_dir, seed=0, learning_rate=0.02, kill_at=None):
    """The tiny LSTM for 3 epochs; returns (family, history, epochs logged), history None if killed."""
    section = params.parse(params_dict).model("lstm")
    family = families.create("lstm", section)
    hp = families.hyperparameters("lstm", section, {"optimizer": "adam", "batch_size": 64,
                                                    "learning_rate": learning_rate})
    logged = []

    def log(epoch, metrics):
        if epoch == kill_at:
            raise Killed
        logged.append(epoch)

    train, val = splits()
    try:
        history = family.fit(train, val, hp, families.FitOptions(epochs=3, seed=seed, patience=2, verbose=0,
                                                                 checkpoint_dir=checkpoint_dir, on_epoch_end=log))
    except Killed:
        return family, None, logged
    return family, history, logged


def test_a_killed_fit_resumes_after_its_last_complete_epoch(tmp_path, params_dict):
    """Killed during epoch 3, the rerun trains epoch 3 only, from the weights, optimizer state and step
    counter that epoch 2 left, and reports (and restores the best of) all three epochs.

    Bit-for-bit equality with an uninterrupted run holds only without dropout and shuffled minibatches:
    tf-keras checkpoints neither the legacy RNG behind dropout nor the tf.data shuffle state, so a resumed
    epoch otherwise sees other dropout masks and another batch order (measured on this model: final
    weights differ by half an epoch's change). Here dropout is 0 and one batch holds all of train."""
    params_dict["lstm"]["model"]["dropout"] = 0.0
    full, expected, _ = fit_lstm(params_dict, tmp_path / "full")
    checkpoints = tmp_path / "checkpoints"
    _, killed, logged = fit_lstm(params_dict, checkpoints, kill_at=3)
    assert killed is None and logged == [1, 2]

    resumed, history, logged = fit_lstm(params_dict, checkpoints)
    assert logged == [3] and resumed.resumed_from_epoch == 2 and full.resumed_from_epoch == 0
    assert set(history) == set(expected) and len(history["val_accuracy"]) == 3
    for key in expected:
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-5, err_msg=key)
    # the vocabulary is learned from the training texts again, and must be the same
    assert resumed.encoder.vectorize.get_vocabulary() == full.encoder.vectorize.get_vocabulary()
    texts = list(splits()[1].texts)  # the saved model: the best of all three epochs
    np.testing.assert_allclose(resumed.predict_proba(texts), full.predict_proba(texts), atol=1e-5)
    # each directory kept the weights of one epoch, the best, and both restored it
    best = f"epoch-{families.best_epoch(expected) + 1:03d}.weights.h5"
    for directory in (checkpoints, tmp_path / "full"):
        assert [p.name for p in directory.glob("epoch-*")] == [best]
    for a, b in zip(full.core.get_weights(), resumed.core.get_weights()):
        np.testing.assert_allclose(b, a, atol=1e-5)
    # the restored best epoch's optimizer state too: one step an epoch, counted on across the resume (epoch
    # 3 went on from epoch 2's step counter, or its metrics above would not match the uninterrupted run's)
    steps = families.best_epoch(expected) + 1
    assert int(resumed.core.optimizer.iterations) == int(full.core.optimizer.iterations) == steps
    assert not [p for p in (checkpoints / "backup").rglob("*") if p.is_file()]  # removed after a finished fit


def test_checkpoints_keep_the_best_epoch_not_one_file_per_epoch(tmp_path, params_dict):
    """At every epoch the directory holds the record, the backup to resume from and the weights of the
    best epoch so far; once the fit is done, the record and the best epoch's weights alone."""
    section = params.parse(params_dict).model("lstm")
    family = families.create("lstm", section)
    hp = families.hyperparameters("lstm", section, {"optimizer": "adam", "batch_size": 16, "learning_rate": 0.02})
    directory, seen = tmp_path / "checkpoints", []
    # the logger runs before the epoch is recorded: it sees what the epochs before it left
    train, val = splits()
    history = family.fit(train, val, hp, families.FitOptions(
        epochs=4, seed=0, verbose=0, checkpoint_dir=directory,
        on_epoch_end=lambda epoch, _: seen.append(sorted(p.name for p in directory.glob("epoch-*")))))
    assert seen[0] == [] and all(len(names) == 1 for names in seen[1:]), seen
    best = f"epoch-{families.best_epoch(history) + 1:03d}.weights.h5"
    assert sorted(p.name for p in directory.iterdir() if p.name != "backup") == [best, "resume.json"]
    assert not [p for p in (directory / "backup").rglob("*") if p.is_file()]  # emptied once the fit is done


@pytest.mark.parametrize("change", [{"seed": 1}, {"learning_rate": 0.01}])
def test_a_fit_with_other_inputs_starts_over(tmp_path, params_dict, change):
    checkpoints = tmp_path / "checkpoints"
    fit_lstm(params_dict, checkpoints, kill_at=3)
    family, killed, logged = fit_lstm(params_dict, checkpoints, kill_at=2, **change)
    assert killed is None and logged == [1] and family.resumed_from_epoch == 0
    assert sorted(p.name for p in checkpoints.glob("epoch-*")) == ["epoch-001.weights.h5"]  # the old ones are gone


def test_early_stopping_counts_the_epochs_before_a_resume():
    from imdbclf.families.keras.callbacks import BestEpochStopping

    class Model:
        stop_training = False

    stopper = BestEpochStopping(patience=2, earlier={"val_accuracy": [0.7, 0.8], "val_loss": [0.5, 0.4]})
    stopper.set_model(Model())
    stopper.on_epoch_end(2, {"val_accuracy": 0.75, "val_loss": 0.45})
    assert not stopper.model.stop_training  # the best epoch is the 2nd, one epoch ago
    stopper.on_epoch_end(3, {"val_accuracy": 0.75, "val_loss": 0.45})
    assert stopper.model.stop_training
    redo = BestEpochStopping(patience=1, earlier={"val_accuracy": [0.7, 0.9], "val_loss": [0.5, 0.4]})
    redo.set_model(Model())
    redo.on_epoch_end(1, {"val_accuracy": 0.8, "val_loss": 0.4})  # epoch 2 recorded, then redone
    assert redo.history["val_accuracy"] == [0.7, 0.8] and not redo.model.stop_training


def test_an_interrupted_save_leaves_the_old_model_and_no_half_new_one(tmp_path, params_dict, monkeypatch):
    from imdbclf.families.tfidf_logreg import PIPELINE_FILE, TfidfLogReg

    section = params.parse(params_dict).model("tfidf_logreg")
    family = families.create("tfidf_logreg", section)
    train, val = splits()
    family.fit(train, val, families.hyperparameters("tfidf_logreg", section, {"min_df": 1}),
               families.FitOptions(epochs=1))
    family.save(tmp_path / "old")
    expected = family.predict_proba(val.texts)

    def half_save(self, path):
        (path / PIPELINE_FILE).write_bytes(b"half a pipeline")
        raise Killed

    monkeypatch.setattr(TfidfLogReg, "_save", half_save)
    for target in ("old", "new"):
        with pytest.raises(Killed):
            family.save(tmp_path / target)
    np.testing.assert_array_equal(families.load_family(tmp_path / "old").predict_proba(val.texts), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # no new/family.json, no temp left

    killed = tmp_path / ".old.tmp-1234abcd"  # what kill -9 during a save leaves
    (killed / "saved_model").mkdir(parents=True)
    (killed / "family.json").write_text("{}")
    monkeypatch.undo()
    family.save(tmp_path / "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    np.testing.assert_array_equal(families.load_family(tmp_path / "old").predict_proba(val.texts), expected)


@pytest.fixture(scope="module")
def saved_lstm(tmp_path_factory):
    """A tiny LSTM, trained for an epoch and saved: the SavedModel that the tests below damage."""
    tmp = tmp_path_factory.mktemp("saved")
    section = params.parse(tiny_params(str(tmp / "imdb.tar.gz"))).model("lstm")
    family = families.create("lstm", section)
    train, val = splits()
    family.fit(train, val, families.hyperparameters("lstm", section, {}), families.FitOptions(epochs=1, verbose=0))
    family.save(tmp / "model")
    return tmp / "model"


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "no SavedModel": lambda model: shutil.rmtree(model / "saved_model"),
    "half a graph": lambda model: truncate(model / "saved_model" / "saved_model.pb"),
    "half the weights": lambda model: truncate(next((model / "saved_model" / "variables").glob("*.data-*"))),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_an_incomplete_model_directory_is_one_line_naming_it(tmp_path, saved_lstm, damage):
    model = tmp_path / "seed_0"
    shutil.copytree(saved_lstm, model)
    DAMAGE[damage](model)
    with raises_naming(str(model), "incomplete or damaged"):
        families.load_family(model)


def test_predict_on_half_a_saved_model_is_one_error_line(tmp_path, saved_lstm):
    model = tmp_path / "seed_0"
    shutil.copytree(saved_lstm, model)
    DAMAGE["half the weights"](model)
    result = subprocess.run([sys.executable, "-m", "imdbclf", "predict", "--model", str(model), "--trust",
                             "a fine film"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {model}: incomplete"), result.stderr[-2000:]


def test_the_former_best_weights_stay_until_the_epoch_that_replaced_them_is_backed_up(tmp_path):
    """A kill between the new best's weights and its backup resumes before that epoch: the file the
    resumed history points to (the former best) must still be there."""
    import tf_keras as keras

    from imdbclf.families.keras.callbacks import TrainingRecord

    model = keras.Sequential([keras.layers.Input((2,)), keras.layers.Dense(1)])
    record = TrainingRecord(tmp_path, {"run": 1})
    record.set_model(model)
    for epoch, accuracy in enumerate([0.6, 0.7]):
        record.on_epoch_begin(epoch)
        record.on_epoch_end(epoch, {"loss": 1.0 - accuracy, "accuracy": accuracy, "val_loss": 1.0 - accuracy,
                                    "val_accuracy": accuracy})
    # epoch 2 is the best now, but the backup (the next callback) has not run: epoch 1's file is kept
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == ["epoch-001.weights.h5", "epoch-002.weights.h5"]
    resumed = TrainingRecord(tmp_path, {"run": 1})  # killed here; the backup says epoch 2 starts again
    resumed.set_model(model)
    resumed.on_epoch_begin(1)
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == ["epoch-001.weights.h5"]


def test_the_nb_weighted_model_keeps_punctuation_and_is_saved_as_data(tmp_path, params_dict):
    """Its tokens keep `?` and `!` (and drop the `<br />` markup); its saved model is JSON and arrays, no
    pickle, so loading it runs no code."""
    p = params.parse(params_dict)
    family = families.create("nb_logreg", p.model("nb_logreg"))
    train, test = splits()
    family.fit(train, test, families.hyperparameters("nb_logreg", p.model("nb_logreg"), {"C": 1.0, "ngram_max": 2}),
               families.FitOptions(epochs=1))
    normalized = family.prepared(["Slow? Maybe.<br />Boring? Never!"])[0]  # the normaliser drops the markup
    assert family.vectorizer.build_analyzer()(normalized)[:6] == [
        "slow", "?", "maybe", "boring", "?", "never"]
    family.save(tmp_path / "model")
    assert sorted(f.name for f in (tmp_path / "model").iterdir()) == ["family.json", "vocabulary.json", "weights.npz"]
    with np.load(tmp_path / "model" / "weights.npz", allow_pickle=False) as weights:
        assert set(weights.files) == {"ratio", "coef", "intercept"}
    reloaded = families.load_family(tmp_path / "model")
    np.testing.assert_allclose(reloaded.predict_proba(test.texts), family.predict_proba(test.texts), atol=1e-9)


@pytest.mark.parametrize("model, grid", [
    ("tfidf_logreg", [{"C": 1.0, "ngram_max": 2, "min_df": 1}, {"C": 10.0, "ngram_max": 2, "min_df": 1},
                      {"C": 10.0, "ngram_max": 1, "min_df": 1}]),
    ("nb_logreg", [{"C": 1.0, "ngram_max": 2}, {"C": 10.0, "ngram_max": 2}, {"C": 10.0, "ngram_max": 1}]),
])
def test_trials_that_differ_only_in_c_share_one_vocabulary_and_match_a_fresh_fit(params_dict, model, grid,
                                                                                 monkeypatch):
    """The vocabulary of a grid's trials is built once per n-gram setting (most of a linear fit's time),
    and a trial that reuses it ends with the same model, history and predictions as one that built it."""
    from imdbclf.families import features
    monkeypatch.setattr(features, "_fitted", type(features._fitted)())
    section = params.parse(params_dict).model(model)
    train, val = splits()
    built = []
    original = features.CountVectorizer.fit_transform
    monkeypatch.setattr(features.CountVectorizer, "fit_transform",
                        lambda self, *a, **k: built.append(self.ngram_range) or original(self, *a, **k))

    def fit(config):
        family = families.create(model, section)
        hp = families.hyperparameters(model, section, config)
        history = family.fit(train, val, hp, families.FitOptions(epochs=1))
        return family, history

    fitted = [fit(config) for config in grid]
    assert built == [(1, 2), (1, 1)]
    features._fitted.clear()
    fresh, fresh_history = fit(grid[1])
    assert fresh_history == fitted[1][1]
    np.testing.assert_array_equal(fresh.predict_proba(val.texts), fitted[1][0].predict_proba(val.texts))
    assert fitted[0][0].predict_proba(val.texts).tolist() != fitted[1][0].predict_proba(val.texts).tolist()


class Planted:
    """What an attacker plants: loading it runs a command (here: touching a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_tfidf_model_loads_neither_a_pickle_nor_an_untrusted_type(tmp_path, params_dict):
    import joblib
    import skops.io

    from imdbclf.families import tfidf_logreg

    section = params.parse(params_dict).model("tfidf_logreg")
    family = families.create("tfidf_logreg", section)
    train, val = splits()
    family.fit(train, val, families.hyperparameters("tfidf_logreg", section, {"C": 1.0, "ngram_max": 1, "min_df": 1}),
               families.FitOptions(epochs=1))
    family.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["family.json", "vocabulary.json", "weights.npz"]
    reloaded = families.load_family(tmp_path / "model")
    np.testing.assert_array_equal(reloaded.predict_proba(val.texts), family.predict_proba(val.texts))
    # a model of an earlier version: the pipeline through skops, its trusted types only
    (tmp_path / "model" / tfidf_logreg.VOCABULARY).unlink()
    (tmp_path / "model" / tfidf_logreg.WEIGHTS).unlink()
    skops.io.dump(family.pipeline, tmp_path / "model" / tfidf_logreg.PIPELINE_FILE)
    np.testing.assert_array_equal(families.load_family(tmp_path / "model").predict_proba(val.texts),
                                  family.predict_proba(val.texts))
    marker = tmp_path / "marker"

    skops.io.dump({"pipeline": Planted(marker)}, tmp_path / "model" / tfidf_logreg.PIPELINE_FILE)
    with pytest.raises(UserError, match=r"pipeline\.skops: holds types outside the trusted list "
                                        r"\(tests\.test_families\.Planted\): refusing to load it"):
        families.load_family(tmp_path / "model")
    (tmp_path / "model" / tfidf_logreg.PIPELINE_FILE).unlink()
    joblib.dump(Planted(marker), tmp_path / "model" / tfidf_logreg.PICKLED)  # where older versions kept it
    with raises_naming(str(tmp_path / "model" / tfidf_logreg.PICKLED), "pickle", "not loaded"):
        families.load_family(tmp_path / "model")
    assert not marker.exists()
