import json

import optuna
import pytest
from optuna.trial import TrialState

from devkit.helpers import raises_naming
from imdbclf import families, tuning
from imdbclf.params import TuneParams, TuningParams

GRID = {"optimizer": ["sgd", "adam"], "batch_size": [16, 32], "learning_rate": [0.1, 0.01]}
SCORES = {"adam": 0.2, "sgd": 0.0, 32: 0.1, 16: 0.0, 0.01: 0.3, 0.1: 0.0}


SETTINGS = TuningParams(poll_s=0.05)


class FakeTrainer:
    """Scores a config from its parts, one epoch or several; can be told to 'die' on a given call."""

    def __init__(self, die_on: int | None = None, epochs: int = 1):
        self.calls: list[dict] = []
        self.die_on, self.epochs = die_on, epochs

    def __call__(self, trial, config):
        if self.die_on is not None and len(self.calls) == self.die_on:
            raise KeyboardInterrupt  # killed mid-trial
        self.calls.append(config)
        accuracy = 0.5 + sum(SCORES.get(v, 0.0) for v in config.values())
        history = {"val_accuracy": [], "val_loss": []}
        for epoch in range(1, self.epochs + 1):
            history["val_accuracy"].append(accuracy * epoch / self.epochs)
            history["val_loss"].append(1 - accuracy * epoch / self.epochs)
            trial.report(history["val_accuracy"][-1], epoch)
            if trial.should_prune():
                tuning.record(trial, history, 1.0)
                raise optuna.TrialPruned()
        return tuning.record(trial, history, 1.0)


def search(tmp_path, grid, key, trainer, strategy: str, **tune) -> tuning.Search:
    """A search as the tune stage sets it up, training in this process; `tune`: more of `<model>.tune`."""
    storage = tuning.open_storage(str(tmp_path / "studies.journal"), SETTINGS)
    worker = tuning.Worker(key, tuning.worker_identity("cpu"), trainer)
    return tuning.Search(storage, "m", key, TuneParams(strategy=strategy, grid=grid, **tune), SETTINGS,
                         work=worker.run_one, reconcile=lambda study: tuning.fail_dead_trials(study, SETTINGS))


def test_ofat_tunes_one_factor_at_a_time(tmp_path):
    trainer = FakeTrainer()
    results = search(tmp_path, GRID, "k1", trainer, strategy="ofat").run()
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
    results = search(tmp_path, GRID, "k1", trainer, strategy="grid").run()
    assert len(trainer.calls) == len(results) == 8


def test_interrupted_search_resumes_without_retraining(tmp_path):
    trainer = FakeTrainer(die_on=2)  # dies during the third trial
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, GRID, "k1", trainer, strategy="ofat").run()
    assert len(trainer.calls) == 2
    again = FakeTrainer()
    results = search(tmp_path, GRID, "k1", again, strategy="ofat").run()
    assert len(again.calls) == 2  # only the two trials that had not finished
    assert [r.reused for r in results] == [True, True, False, False]


def test_changed_dependencies_retrain(tmp_path):
    search(tmp_path, GRID, "k1", FakeTrainer(), strategy="ofat").run()
    changed = FakeTrainer()
    search(tmp_path, GRID, "k2", changed, strategy="ofat").run()
    assert len(changed.calls) == 4


def test_reuse_key_depends_on_everything():
    base = dict(data=["a", "b"], model={"seq_len": 8, "dropout": 0.1}, epochs=2, code="c")
    reordered = dict(code="c", epochs=2, model={"dropout": 0.1, "seq_len": 8}, data=["a", "b"])
    assert tuning.reuse_key(**base) == tuning.reuse_key(**reordered)  # a setting written elsewhere changes nothing
    for change in ({"epochs": 3}, {"model": {"seq_len": 9}}, {"data": ["a", "x"]}, {"code": "d"}):
        assert tuning.reuse_key(**{**base, **change}) != tuning.reuse_key(**base)


def test_best_epoch_and_summary():
    assert families.best_epoch({"val_accuracy": [0.5, 0.8, 0.8], "val_loss": [1, 0.4, 0.3]}) == 2
    results = [tuning.TrialResult(0, {"a": 1}, 0.7, 0.5, 1.0), tuning.TrialResult(1, {"a": 2}, 0.9, 0.4, 1.0)]
    assert tuning.search_summary("grid", results)["best"]["config"] == {"a": 2}


def test_a_changed_grid_reuses_the_trials_it_shares(tmp_path):
    search(tmp_path, GRID, "k1", FakeTrainer(), strategy="grid").run()
    wider = {**GRID, "learning_rate": [0.01, 0.001]}
    trainer = FakeTrainer()
    results = search(tmp_path, wider, "k1", trainer, strategy="grid").run()
    assert len(results) == 8 and len(trainer.calls) == 4
    assert all(c["learning_rate"] == 0.001 for c in trainer.calls)


def test_a_trial_left_waiting_by_a_killed_process_is_not_trained_under_another_config(tmp_path):
    first = search(tmp_path, GRID, "k1", FakeTrainer(), strategy="ofat")
    study = first.study({"strategy": "queue"})
    stale = {"optimizer": "adam", "batch_size": 32, "learning_rate": 0.01}
    study.enqueue_trial(stale)  # queued by a process without the key (killed before it could say more)
    trainer = FakeTrainer()
    results = search(tmp_path, GRID, "k1", trainer, strategy="ofat").run()
    trials = study.get_trials()
    for trial in trials:
        if trial.state == TrialState.COMPLETE:  # every result belongs to the config the trial holds
            assert trial.params == json.loads(trial.user_attrs["config"])
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert not [t for t in trials if t.state == TrialState.WAITING]
    assert [r.config for r in results] == trainer.calls


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
    path = tmp_path / "studies.journal"

    def trainer(trial, config):
        path.unlink()  # another process removes the studies while this trial trains
        return tuning.record(trial, {"val_accuracy": [0.5], "val_loss": [0.5]}, 1.0)

    opened = search(tmp_path, GRID, "k", trainer, strategy="grid")
    with raises_naming(str(path), "deleted"):
        with tuning.storage_errors(str(path)):
            opened.run()


def test_a_clearly_worse_trial_is_pruned_at_its_first_epoch(tmp_path, monkeypatch):
    grid = {"optimizer": ["adam", "rmsprop", "sgd"], "batch_size": [16], "learning_rate": [0.1]}
    monkeypatch.setitem(SCORES, "rmsprop", 0.2)  # this test's scores only: the next tests see the module's
    monkeypatch.setitem(SCORES, "sgd", -0.45)  # sgd: far below the others from epoch 1 on
    trainer = FakeTrainer(epochs=4)
    results = search(tmp_path, grid, "k", trainer, strategy="grid", pruner="median",
                     pruner_args={"n_startup_trials": 2, "n_warmup_steps": 0}).run()
    by_optimizer = {r.config["optimizer"]: r for r in results}
    assert by_optimizer["sgd"].state == "PRUNED" and by_optimizer["sgd"].epochs == 1
    assert by_optimizer["adam"].state == by_optimizer["rmsprop"].state == "COMPLETE"
    summary = tuning.search_summary("grid", results)
    assert summary["pruned"] == 1 and summary["epochs_trained"] == 9
    assert summary["best"]["config"]["optimizer"] == "adam"


def test_tpe_samples_the_grid_until_n_trials_are_done(tmp_path):
    trainer = FakeTrainer()
    results = search(tmp_path, GRID, "k", trainer, n_trials=5, strategy="tpe").run()
    assert len(trainer.calls) == 5 and all(c["optimizer"] in GRID["optimizer"] for c in trainer.calls)
    assert sorted(tuning.config_label(r.config) for r in results) == sorted(
        {tuning.config_label(c) for c in trainer.calls})  # TPE may draw a config twice: one result each
    again = FakeTrainer()  # a rerun finds the study done
    search(tmp_path, GRID, "k", again, n_trials=5, strategy="tpe").run()
    assert again.calls == []


def test_a_tpe_search_killed_mid_trial_resumes_and_completes(tmp_path):
    """Ctrl-C or SIGTERM leaves the running trial FAIL: the rerun queues its config again, as grid and OFAT
    do, instead of stopping on it as a trial whose retries ran out."""
    killed = FakeTrainer(die_on=2)
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, GRID, "k", killed, n_trials=5, strategy="tpe").run()
    assert len(killed.calls) == 2
    resumed = FakeTrainer()
    results = search(tmp_path, GRID, "k", resumed, n_trials=5, strategy="tpe").run()
    assert len(resumed.calls) == 3  # the two finished trials are kept; the interrupted one is trained again
    assert 1 <= len(results) and all(r.state == "COMPLETE" for r in results)


def test_a_tpe_trial_that_raised_an_error_is_not_retried_on_the_rerun(tmp_path):
    def broken(trial, config):
        raise ValueError("out of memory")

    with pytest.raises(ValueError):  # in the process that trained it: the error itself
        search(tmp_path, GRID, "k", broken, n_trials=3, strategy="tpe").run()
    rerun = FakeTrainer()
    with raises_naming("trial", "ValueError: out of memory"):  # later: one line naming it, nothing retrained
        search(tmp_path, GRID, "k", rerun, n_trials=3, strategy="tpe").run()
    assert rerun.calls == []
