"""dvc.yaml's code dependencies match what each stage really imports: an edit reruns exactly the
stages whose code changed (the end-to-end test checks the reruns themselves)."""

import yaml

from imdbclf import families, sources
from tests.conftest import REPO

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def declared(deps: list[str]) -> set[str]:
    """Declared dependency files, with directories expanded to the Python files below them."""
    files = set()
    for dep in deps:
        path = REPO / dep
        files |= {p.relative_to(REPO).as_posix() for p in path.rglob("*.py")} if path.is_dir() else {dep}
    return files


def needed(*modules: str) -> set[str]:
    return {p.as_posix() for p in sources.closure(*modules)} - {"stages/__init__.py"}


def test_single_stages_depend_on_the_code_they_import_and_no_more():
    for stage in ("fetch", "split", "report"):
        code = {d for d in declared(STAGES[stage]["deps"]) if d.endswith(".py")}
        assert code == needed(f"stages.{stage}"), stage


def test_check_params_depends_on_the_whole_file_and_the_validating_code():
    """The validating code: params and every family's settings (imported lazily), not the families'
    code, so that an edit to a family reruns its stages alone."""
    deps = STAGES["check-params"]["deps"]
    assert "params.yaml" in deps and "imdbclf/families/settings" in deps
    settings = [f"imdbclf.families.settings.{family}" for family in families.REGISTRY]
    code = {d for d in declared(deps) if d.endswith(".py")}
    assert code == needed("stages.check_params", *settings)


def test_code_stage_covers_every_model_stage_of_every_family():
    deps = declared(STAGES["code"]["do"]["deps"])
    for family in families.REGISTRY:
        for stage in ("code", "tune", "retrain", "evaluate"):
            assert needed(f"stages.{stage}", families.family_module(family)) <= deps, (family, stage)
    assert "imdbclf/reporting.py" not in deps  # editing the report reruns the report alone


def test_model_stages_depend_on_their_code_list_not_the_package():
    for stage in ("tune", "retrain", "evaluate"):
        deps = STAGES[stage]["do"]["deps"]
        assert f"metrics/code/${{item}}/{stage}.txt" in deps
        assert not any(d in ("imdbclf", "imdbclf/") or d.startswith("stages/") for d in deps), stage


def test_trial_code_is_the_family_and_what_it_imports():
    lstm = {p.as_posix() for p in sources.closure("imdbclf.families.lstm")}
    assert {"imdbclf/families/lstm.py", "imdbclf/families/keras_base.py", "imdbclf/training.py"} <= lstm
    assert not lstm & {"imdbclf/reporting.py", "imdbclf/tracking.py", "imdbclf/__main__.py",
                       "imdbclf/families/hub_encoder.py"}
    tfidf = {p.as_posix() for p in sources.closure("imdbclf.families.tfidf_logreg")}
    assert "imdbclf/training.py" not in tfidf and "imdbclf/families/tfidf_logreg.py" in tfidf
