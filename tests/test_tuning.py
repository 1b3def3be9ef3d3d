import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from imdbclf import families, tuning
from imdbclf.errors import UserError

GRID = {"optimizer": ["sgd", "adam"], "batch_size": [16, 32], "learning_rate": [0.1, 0.01]}
SCORES = {"adam": 0.2, "sgd": 0.0, 32: 0.1, 16: 0.0, 0.01: 0.3, 0.1: 0.0}


class FakeTrainer:
    """Scores a config from its parts; can be told to 'die' on a given call."""

    def __init__(self, die_on: int | None = None):
        self.calls: list[dict] = []
        self.die_on = die_on

    def __call__(self, number, config):
        if self.die_on is not None and len(self.calls) == self.die_on:
            raise KeyboardInterrupt  # killed mid-trial
        self.calls.append(config)
        accuracy = 0.5 + sum(SCORES[v] for v in config.values())
        return accuracy, 1 - accuracy, 1.0, None, {"val_accuracy": [accuracy]}


def search(tmp_path, grid, key, trainer) -> tuning.Search:
    """A search as the tune stage sets it up: finished trials looked up once, in the whole storage."""
    storage = tuning.open_storage(tmp_path / "s.db")
    return tuning.Search(tuning.open_study(storage, "m", grid), grid, key, trainer,
                         tuning.finished_trials(storage, key))


def test_ofat_tunes_one_factor_at_a_time(tmp_path):
    trainer = FakeTrainer()
    results = search(tmp_path, GRID, "k1", trainer).run("ofat")
    # optimizer (2) → batch size with adam (1 new) → learning rate with adam/32 (1 new)
    assert trainer.calls == [
        {"optimizer": "sgd", "batch_size": 16, "learning_rate": 0.1},
        {"optimizer": "adam", "batch_size": 16, "learning_rate": 0.1},
        {"optimizer": "adam", "batch_size": 32, "learning_rate": 0.1},
        {"optimizer": "adam", "batch_size": 32, "learning_rate": 0.01},
    ]
    assert tuning.best_of(results).config == {"optimizer": "adam", "batch_size": 32, "learning_rate": 0.01}


def test_grid_runs_the_full_product(tmp_path):
    trainer = FakeTrainer()
    results = search(tmp_path, GRID, "k1", trainer).run("grid")
    assert len(trainer.calls) == len(results) == 8


def test_interrupted_search_resumes_without_retraining(tmp_path):
    trainer = FakeTrainer(die_on=2)  # dies during the third trial
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, GRID, "k1", trainer).run("ofat")
    assert len(trainer.calls) == 2
    again = FakeTrainer()
    results = search(tmp_path, GRID, "k1", again).run("ofat")
    assert len(again.calls) == 2  # only the two trials that had not finished
    assert [r.reused for r in results] == [True, True, False, False]


def test_changed_dependencies_retrain(tmp_path):
    search(tmp_path, GRID, "k1", FakeTrainer()).run("ofat")
    changed = FakeTrainer()
    search(tmp_path, GRID, "k2", changed).run("ofat")
    assert len(changed.calls) == 4


def test_reuse_key_depends_on_everything():
    base = dict(data=["a", "b"], model={"seq_len": 8}, epochs=2, code="c")
    assert tuning.reuse_key(**base) == tuning.reuse_key(**dict(base))
    for change in ({"epochs": 3}, {"model": {"seq_len": 9}}, {"data": ["a", "x"]}, {"code": "d"}):
        assert tuning.reuse_key(**{**base, **change}) != tuning.reuse_key(**base)


def test_best_epoch_and_summary():
    assert families.best_epoch({"val_accuracy": [0.5, 0.8, 0.8], "val_loss": [1, 0.4, 0.3]}) == 2
    results = [tuning.TrialResult(0, {"a": 1}, 0.7, 0.5, 1.0), tuning.TrialResult(1, {"a": 2}, 0.9, 0.4, 1.0)]
    assert tuning.summary("grid", results)["best"]["config"] == {"a": 2}


def test_a_changed_grid_reuses_the_trials_it_shares(tmp_path):
    search(tmp_path, GRID, "k1", FakeTrainer()).run("grid")
    wider = {**GRID, "learning_rate": [0.01, 0.001]}
    SCORES[0.001] = 0.0
    trainer = FakeTrainer()
    results = search(tmp_path, wider, "k1", trainer).run("grid")
    assert len(results) == 8 and len(trainer.calls) == 4
    assert all(c["learning_rate"] == 0.001 for c in trainer.calls)


def test_a_trial_left_waiting_by_a_killed_process_is_not_trained_under_another_config(tmp_path):
    storage = tuning.open_storage(tmp_path / "s.db")
    study = tuning.open_study(storage, "m", GRID)
    stale = {"optimizer": "adam", "batch_size": 32, "learning_rate": 0.01}
    study.enqueue_trial(stale)  # a process killed right after enqueue_trial, before ask
    trainer = FakeTrainer()
    results = search(tmp_path, GRID, "k1", trainer).run("ofat")
    trials = optuna.load_study(study_name=study.study_name, storage=storage).get_trials()
    for trial in trials:
        if trial.state == TrialState.COMPLETE:  # every result belongs to the config the trial holds
            assert trial.params == json.loads(trial.user_attrs["config"])
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert not [t for t in trials if t.state == TrialState.WAITING]
    assert [r.config for r in results] == trainer.calls


def test_no_private_optuna_api():
    assert "._storage" not in (Path(tuning.__file__)).read_text()


def test_trial_key_follows_what_a_trial_depends_on(tmp_path, params_dict, monkeypatch):
    from imdbclf import params

    data_file = tmp_path / "train.parquet"
    data_file.write_bytes(b"reviews")

    def key(raw):
        section = params.parse(raw).model("tfidf_logreg")
        return tuning.trial_key(families.create("tfidf_logreg", section), section, [data_file])

    params_dict["tfidf_logreg"]["model"].pop("sublinear_tf", None)
    base = key(params_dict)
    explicit = json.loads(json.dumps(params_dict))
    explicit["tfidf_logreg"]["model"]["sublinear_tf"] = True  # the default, written out
    assert key(explicit) == base
    changed = json.loads(json.dumps(params_dict))
    changed["tfidf_logreg"]["model"]["sublinear_tf"] = False
    assert key(changed) != base
    monkeypatch.setattr(families.Family, "runtime", lambda self: {"device": "gpu", "precision": "mixed_bfloat16"})
    assert key(params_dict) != base


def test_a_study_file_deleted_during_a_trial_is_named_as_such(tmp_path):
    path = tmp_path / "s.db"

    def trainer(number, config):
        path.unlink()  # another process removes the study while this trial trains
        return 0.5, 0.5, 1.0, None, {"val_accuracy": [0.5]}

    with pytest.raises(UserError, match=r"s\.db: the Optuna study file was deleted while tuning"):
        with tuning.study_file_errors(path):
            search(tmp_path, GRID, "k", trainer).run("grid")
