"""dvc.yaml's code dependencies match what each stage really runs — every file its module's import
statements reach, wherever they stand — so that an edit reruns exactly the stages whose code changed
(the end-to-end test checks the reruns themselves). Every stage is checked, also one added later."""

import re

import yaml

from devkit import dvc_deps
from devkit.helpers import REPO
from imdbclf import codedeps, families
from imdbclf.params import TuneParams

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
from stages.code import MODEL_STAGES  # noqa: E402 - their code: the lists that code@<model> writes


def body(stage: str) -> dict:
    return STAGES[stage].get("do", STAGES[stage])


def module_of(stage: str) -> str:
    """The stage's entry point, from its command: `python -m stages.<name> ...`."""
    match = re.search(r"python -m (stages\.\w+)", body(stage)["cmd"])
    assert match, f"{stage}: its cmd runs no stages.<name> module"
    return match[1]


def declared(deps: list[str]) -> set[str]:
    """Declared dependency files of the repository's own code, directories expanded to their .py files."""
    files = set()
    for dep in deps:
        path = REPO / dep
        files |= {p.relative_to(REPO).as_posix() for p in path.rglob("*.py")} if path.is_dir() else {dep}
    return {f for f in files if f.endswith(".py")}


def needed(*modules: str) -> set[str]:
    return {p.as_posix() for p in codedeps.closure(*modules)}


def test_every_stage_runs_a_stage_module_and_no_command_sets_the_environment():
    for stage in STAGES:
        assert body(stage)["cmd"].startswith("python -m stages."), stage  # the entry points set it up


def test_every_stage_depends_on_the_code_it_runs_and_no_more():
    for stage in STAGES:
        if stage in MODEL_STAGES:
            deps = body(stage)["deps"]
            assert f"metrics/code/${{item}}/{stage}.txt" in deps, stage
            assert not declared(deps), f"{stage}: its code is its code@ list, not files"
        elif stage == "code":  # every file any model stage of any family may run
            covered = declared(body(stage)["deps"])
            modules = [module_of(s) for s in MODEL_STAGES] + [families.family_module(f) for f in families.FAMILIES]
            assert covered == needed("stages.code", *modules), sorted(covered ^ needed("stages.code", *modules))
        else:
            covered, wanted = declared(body(stage)["deps"]), needed(module_of(stage))
            assert covered == wanted, (stage, sorted(covered ^ wanted), "run python -m devkit.dvc_deps")


def test_the_code_dependencies_are_the_generators():
    """No list is kept by hand: `python -m devkit.dvc_deps` would leave dvc.yaml as it is."""
    text = (REPO / "dvc.yaml").read_text()
    assert dvc_deps.updated(text) == text, "dvc.yaml's code deps are out of date: run python -m devkit.dvc_deps"
    stale = text.replace("      - imdbclf/params.py\n", "", 1)  # a list that lost a file is put right
    assert dvc_deps.updated(stale) == text


def test_editing_the_report_or_the_operations_reruns_no_training():
    code = declared(body("code")["deps"])
    assert not {f for f in code if f.startswith("imdbclf/reporting/")}
    assert not code & {"imdbclf/ops/services.py", "imdbclf/ops/caches.py", "imdbclf/ops/cli.py",
                       "imdbclf/ops/bert_converter.py"}


def test_tune_tracks_every_setting_of_a_result_and_not_how_trials_run():
    params = set(body("tune")["params"])
    results = {f"${{item}}.tune.{key}" for key in TuneParams.model_fields if key not in TuneParams.EXECUTION_ONLY}
    assert results <= params and "${item}.tune" not in params
    assert not {f"${{item}}.tune.{key}" for key in TuneParams.EXECUTION_ONLY} & params


def test_retrain_depends_on_the_chosen_config_not_the_search_record():
    deps = body("retrain")["deps"]
    assert "metrics/best/${item}.json" in deps and "metrics/tune/${item}.json" not in deps


def test_trial_code_is_the_family_and_what_it_imports():
    lstm = needed("imdbclf.families.keras.lstm")
    assert {"imdbclf/families/keras/lstm.py", "imdbclf/families/keras/base.py",
            "imdbclf/families/keras/callbacks.py"} <= lstm
    assert not {f for f in lstm if f.startswith(("imdbclf/reporting/", "imdbclf/tracking/", "imdbclf/ops/"))}
    assert "imdbclf/families/keras/hub_encoder.py" not in lstm
    tfidf = needed("imdbclf.families.tfidf_logreg")
    assert "imdbclf/families/tfidf_logreg.py" in tfidf and not {f for f in tfidf if "/keras/" in f}


def test_an_import_inside_a_function_counts(tmp_path, monkeypatch):
    package = tmp_path / "imdbclf"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lazy.py").write_text("def f():\n    from imdbclf import heavy\n    import imdbclf.other\n")
    (package / "heavy.py").write_text("")
    (package / "other.py").write_text("")
    monkeypatch.setattr(codedeps, "ROOT", tmp_path)
    assert {p.as_posix() for p in codedeps.closure("imdbclf.lazy")} == {
        "imdbclf/__init__.py", "imdbclf/lazy.py", "imdbclf/heavy.py", "imdbclf/other.py"}
