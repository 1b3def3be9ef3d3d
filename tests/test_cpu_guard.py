"""A stage that would train for longer than `compute.cpu_limit_hours` on a machine without a GPU says so
first, in one line, and stops unless the user asked to go on (params switch or environment variable)."""

from __future__ import annotations

import json

import pytest
import yaml

from devkit.helpers import make_project, splits, tiny_params
from devkit.helpers import run_pipeline as run
from devkit.tiny_hub import write_encoder, write_preprocessor
from devkit.tiny_imdb import write_archive
from imdbclf import families, params, tuning
from imdbclf.errors import UserError
from imdbclf.ops import cpu_guard

GRID = {"optimizer": ["adam"], "batch_size": [8], "learning_rate": [0.003]}


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("hub")
    return str(write_preprocessor(root / "preprocess")), str(write_encoder(root / "encoder"))


def bert(params_dict: dict, **compute_settings) -> tuple[params.Params, families.Family, families.Strict]:
    p = params.parse({**params_dict, "compute": {**params_dict.get("compute", {}), **compute_settings}})
    section = p.model("bert_small")
    return p, families.create("bert_small", section), families.hyperparameters("bert_small", section, GRID | {
        k: v[0] for k, v in GRID.items()})


@pytest.fixture
def tiny_bert(tmp_path, hub) -> dict:
    return tiny_params(str(tmp_path / "imdb.tar.gz"), hub)


def test_over_the_limit_the_stage_stops_in_one_line_naming_both_ways_on(tiny_bert, monkeypatch):
    monkeypatch.delenv(cpu_guard.ALLOW_ENV, raising=False)
    p, family, hp = bert(tiny_bert, cpu_limit_hours=1e-9)
    train, _ = splits()
    with pytest.raises(UserError) as err:
        cpu_guard.check(p.compute, "tune@bert_small", family, train, hp, runs=4, epochs=2)
    line = str(err.value)
    assert "\n" not in line and line.startswith("tune@bert_small: no GPU visible")
    assert "4 trials × 2 epochs × 6 steps × " in line  # 48 training reviews, batches of 8
    for needle in ("make cpu", "compute.allow_slow_cpu=true", f"{cpu_guard.ALLOW_ENV}=1", "compute.cpu_limit_hours"):
        assert needle in line
    assert family.core is None and family.encoder is None  # timing left the family untouched


def test_under_the_limit_it_prints_the_estimate_and_goes_on(tiny_bert, monkeypatch, capsys):
    monkeypatch.delenv(cpu_guard.ALLOW_ENV, raising=False)
    p, family, hp = bert(tiny_bert)
    estimate = cpu_guard.check(p.compute, "retrain@bert_small", family, splits()[0], hp, runs=1, epochs=2,
                             what="seeds")
    assert estimate.steps_per_epoch == 6 and 0 < estimate.seconds < 3600
    assert capsys.readouterr().out.startswith("retrain@bert_small: no GPU visible; on this CPU about ")


@pytest.mark.parametrize("switch", ["params", "environment"])
def test_asked_to_go_on_it_times_nothing(tiny_bert, monkeypatch, switch):
    monkeypatch.delenv(cpu_guard.ALLOW_ENV, raising=False)
    if switch == "environment":
        monkeypatch.setenv(cpu_guard.ALLOW_ENV, "1")
    p, family, hp = bert(tiny_bert, cpu_limit_hours=1e-9, allow_slow_cpu=switch == "params")
    monkeypatch.setattr(family, "time_steps", lambda *a: pytest.fail("timed"))
    assert cpu_guard.check(p.compute, "tune@bert_small", family, splits()[0], hp, runs=4, epochs=2) is None


def test_a_family_that_does_not_train_in_steps_is_not_timed(params_dict):
    p = params.parse({**params_dict, "compute": {"cpu_limit_hours": 1e-9}})
    section = p.model("tfidf_logreg")
    hp = families.hyperparameters("tfidf_logreg", section, {"C": 1.0, "ngram_max": 1, "min_df": 1})
    assert cpu_guard.check(p.compute, "tune@tfidf_logreg", families.create("tfidf_logreg", section), splits()[0],
                         hp, runs=2, epochs=1) is None


def test_planned_trials_per_strategy():
    grid = {"optimizer": ["sgd", "rmsprop", "adam", "adamw"], "batch_size": [16, 32], "learning_rate": [1, 2, 3]}
    assert tuning.planned_trials("ofat", grid, None) == 4 + 1 + 2
    assert tuning.planned_trials("grid", grid, None) == 24
    assert tuning.planned_trials("tpe", grid, 5) == 5


def test_trials_already_completed_with_the_key_are_not_counted():
    import optuna

    storage = optuna.storages.InMemoryStorage()
    grid = {"optimizer": ["adam", "sgd"], "batch_size": [8, 16]}
    study = tuning.open_study(storage, tuning.study_name("m", "key", grid, {"strategy": "queue"}))
    for config in ({"optimizer": "adam", "batch_size": 8}, {"optimizer": "rmsprop", "batch_size": 8}):
        trial = study.ask()
        trial.set_user_attr("reuse_key", "key")
        trial.set_user_attr("config", tuning.config_label(config))
        study.tell(trial, 0.5)
    assert tuning.count_trials_to_train(storage, "m", "key", "grid", grid, None) == 3  # rmsprop: not in this grid
    assert tuning.count_trials_to_train(storage, "m", "other-key", "grid", grid, None) == 4


@pytest.mark.slow
def test_tune_stage_stops_over_the_limit_and_goes_on_with_the_switch(tmp_path, hub, monkeypatch):
    monkeypatch.delenv(cpu_guard.ALLOW_ENV, raising=False)
    settings = tiny_params(str(write_archive(tmp_path / "imdb.tar.gz", per_class=30)), hub)
    settings["bert_small"]["tune"].update(epochs=1, grid=GRID)
    settings["compute"]["cpu_limit_hours"] = 1e-9
    root = make_project(tmp_path / "repo", settings)
    for stage in ("fetch", "split"):
        run(["python", "-m", f"stages.{stage}"], root)

    stopped = run(["python", "-m", "stages.tune", "bert_small"], root, check=False)
    assert stopped.returncode == 2, stopped.stderr[-2000:]
    errors = [line for line in stopped.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: tune@bert_small: no GPU visible"), stopped.stderr
    assert "make cpu" in errors[0] and "compute.allow_slow_cpu" in errors[0] and cpu_guard.ALLOW_ENV in errors[0]
    assert not (root / "metrics/tune/bert_small.json").exists()

    settings["compute"]["allow_slow_cpu"] = True
    (root / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    went_on = run(["python", "-m", "stages.tune", "bert_small"], root)
    assert "no GPU visible" not in went_on.stdout + went_on.stderr
    assert json.loads((root / "metrics/tune/bert_small.json").read_text())["best"]["config"] == {
        k: v[0] for k, v in GRID.items()}
