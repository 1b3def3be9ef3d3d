"""`python -m imdbclf cache` shows what the caches hold; `--clear` frees them, never DVC's cache, and not
while a stage of the workspace runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from devkit.helpers import REPO, raises_naming, wait_until
from imdbclf.ops import caches


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("TFHUB_CACHE_DIR", raising=False)  # the tests' hub family points it at the repo's
    files = {".cache/features/0123.npz": 3000, ".cache/tfhub/abc/saved_model.pb": 2000,
             ".cache/other/x.bin": 500, "checkpoints/lstm/seed_0/resume.json": 100,
             ".dvc/cache/files/md5/ab/cdef": 7000, "models/lstm/seed_0/family.json": 50}
    for name, size in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * size)
    return tmp_path


def test_show_lists_each_cache_with_its_size(workspace):
    table = caches.show(workspace)
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert {"features", "tfhub", "hub", "other", "checkpoints", "dvc", "clearable"} <= set(rows)
    assert "3.0 kB" in rows["features"] and ".cache/features" in rows["features"]
    assert "2.0 kB" in rows["tfhub"] and "100 B" in rows["checkpoints"] and "0 B" in rows["hub"]
    assert "7.0 kB" in rows["dvc"] and "dvc gc" in rows["dvc"]
    assert "5.6 kB" in rows["clearable"]  # everything but DVC's cache


def test_clear_frees_the_caches_and_keeps_dvc_cache_and_outputs(workspace):
    assert caches.clear(workspace, ["features"]) == "freed 3.0 kB: features"
    assert not (workspace / ".cache/features").exists() and (workspace / ".cache/tfhub").exists()
    assert caches.clear(workspace) == "freed 2.6 kB: tfhub, other, checkpoints"
    for gone in (".cache/tfhub", ".cache/other", "checkpoints"):
        assert not (workspace / gone).exists(), gone
    assert (workspace / ".dvc/cache/files/md5/ab/cdef").exists() and (workspace / "models/lstm/seed_0").exists()
    assert caches.clear(workspace) == "nothing to clear"
    with raises_naming("dvc:", "dvc gc"):  # the cache, and what frees it
        caches.clear(workspace, ["dvc"])
    with raises_naming("'bogus'", "features, tfhub"):  # the name, and the known ones
        caches.clear(workspace, ["bogus"])


def test_command_line_shows_and_clears(workspace):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DVC_ROOT", None)
    shown = subprocess.run([sys.executable, "-m", "imdbclf", "cache"], cwd=workspace, env=env, capture_output=True,
                           text=True, check=True)
    assert "features" in shown.stdout and "3.0 kB" in shown.stdout
    cleared = subprocess.run([sys.executable, "-m", "imdbclf", "cache", "--clear"], cwd=workspace, env=env,
                             capture_output=True, text=True, check=True)
    assert cleared.stdout.startswith("freed 5.6 kB") and not (workspace / ".cache/features").exists()


def test_clear_refuses_while_a_stage_of_the_workspace_runs(workspace):
    # looks like `python -m stages.tune lstm` to the process table, running in the workspace
    stage = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "stages.tune", "lstm"],
                             cwd=workspace)
    try:
        assert wait_until(lambda: "stages.tune" in " ".join(psutil.Process(stage.pid).cmdline()))  # in the table
        with raises_naming(f"{stage.pid}: ", "stages.tune"):  # the process, by its id and command
            caches.clear(workspace)
        assert (workspace / ".cache/features/0123.npz").exists()
    finally:
        stage.kill()
        stage.wait()
    assert caches.clear(workspace).startswith("freed")


def test_a_tfhub_cache_outside_the_workspace_is_cleared_only_when_named(workspace, tmp_path_factory, monkeypatch):
    shared = tmp_path_factory.mktemp("shared-tfhub")
    (shared / "model.pb").write_bytes(b"x" * 1000)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(shared))
    assert "tfhub" not in caches.clear(workspace) and (shared / "model.pb").exists()
    assert caches.clear(workspace, ["tfhub"]) == "freed 1.0 kB: tfhub" and not shared.exists()


def test_a_cache_that_cannot_be_removed_is_named_not_reported_freed(workspace, monkeypatch):
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(caches.shutil, "rmtree", refuse)
    with raises_naming("features", "Permission denied", str(workspace / ".cache/features")):
        caches.clear(workspace, ["features"])
