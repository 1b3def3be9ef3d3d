"""`make setup` fails early and clearly, and a failed set-up leaves no venv that a later call takes for
ready. Fake interpreters stand in for Python: nothing is installed, each test takes a fraction of a second."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devkit.helpers import REPO

pytestmark = [pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make"),
              pytest.mark.slow]  # make setup in scratch folders

# `python -m venv DIR` makes a venv whose python answers `-m pip ...` with $FAKE_PIP_OUTPUT and exit
# $FAKE_PIP_EXIT; `python -c ...` (the version check) prints $FAKE_VERSION.
FAKE_PYTHON = """#!/bin/sh
case "$1" in
  -c) echo "$FAKE_VERSION";;
  -m) [ "$2" = venv ] || exit 1
      mkdir -p "$3/bin" && echo "home = /nowhere" > "$3/pyvenv.cfg"
      printf '#!/bin/sh\\necho "$FAKE_PIP_OUTPUT"\\nexit "$FAKE_PIP_EXIT"\\n' > "$3/bin/python"
      chmod +x "$3/bin/python";;
esac
"""


def make_setup(tmp_path: Path, version: str, pip_exit: int = 0, pip_output: str = "") -> subprocess.CompletedProcess:
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "PYTHON"}
    env.update(FAKE_VERSION=version, FAKE_PIP_EXIT=str(pip_exit), FAKE_PIP_OUTPUT=pip_output)
    return subprocess.run(["make", "--no-print-directory", "setup", f"PYTHON={python}", f"VENV={tmp_path / 'venv'}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("version", ["3.9", "3.14", ""])
def test_an_unsupported_interpreter_stops_in_one_line_before_any_venv(tmp_path, version):
    result = make_setup(tmp_path, version)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and not result.stdout.strip(), result.stderr + result.stdout
    assert "needs Python 3.11, 3.12 or 3.13" in lines[0] and "PYTHON=" in lines[0]
    assert (f"is Python {version}" if version else "is not a working Python") in lines[0]
    assert not (tmp_path / "venv").exists()


def test_a_failing_pip_leaves_no_venv_and_no_stamp(tmp_path):
    result = make_setup(tmp_path, "3.11", pip_exit=1,
                        pip_output="ERROR: No matching distribution found for tensorflow==2.21.0")
    assert result.returncode != 0
    assert "ERROR: No matching distribution found for tensorflow==2.21.0" in result.stderr  # pip's error, shown
    assert "make setup failed" in result.stderr and "removed" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_setup_is_ready_only_once_it_completed(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /nowhere\n")  # an earlier set-up that was interrupted: no stamp
    (venv / ".made-by-make-setup").touch()
    result = make_setup(tmp_path, "3.12", pip_output="Successfully installed numpy-2.4.6 six-1.17.0")
    assert result.returncode == 0, result.stderr
    assert "building it afresh" in result.stderr and "installed 2 packages" in result.stderr
    assert "setup:" not in result.stdout  # stdout stays free for `eval "$(make -s services)"`
    assert (venv / ".installed").exists()
    again = make_setup(tmp_path, "3.12", pip_exit=1)  # ready: nothing runs, not even the version check
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_a_venv_that_make_setup_did_not_create_is_never_removed(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /nowhere\n")  # the user's own, named with VENV=...
    result = make_setup(tmp_path, "3.11")
    assert result.returncode != 0 and "make setup did not create it" in result.stderr
    assert (venv / "pyvenv.cfg").exists()
