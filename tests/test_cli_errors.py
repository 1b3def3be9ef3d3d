"""A user mistake ends a stage with one `error:` line, exit code 2 and no partial output."""

import pytest
import yaml

from devkit.helpers import make_project, tiny_params
from devkit.helpers import run_pipeline as run
from devkit.tiny_imdb import write_archive

pytestmark = pytest.mark.slow  # dvc repro of tiny projects


def test_bad_inputs_give_one_line_and_no_output(tmp_path):
    root = make_project(tmp_path / "repo", tiny_params(str(tmp_path / "missing.tar.gz")))
    cases = {
        str(tmp_path / "missing.tar.gz"): "no such file",
        str(tmp_path / "notgz.tar.gz"): "not a readable gzip tar",
        "http://127.0.0.1:9/aclImdb_v1.tar.gz": "cannot download",
    }
    (tmp_path / "notgz.tar.gz").write_text("hello")
    for source, message in cases.items():
        params = tiny_params(source)
        params["data"]["timeout_s"] = 2
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        result = run(["python", "-m", "stages.fetch"], root, check=False)
        assert result.returncode == 2
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert not (root / "data" / "raw").exists()


def test_bad_params_stop_the_stage(tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", 3)
    params = tiny_params(str(archive))
    params["lstm"]["tune"]["grid"]["learning_rate"] = [0.0]
    root = make_project(tmp_path / "repo", params)
    result = run(["python", "-m", "stages.split"], root, check=False)
    assert result.returncode == 2
    assert "error: params.yaml: lstm.tune.grid.learning_rate" in result.stderr
