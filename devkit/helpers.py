"""What the tests (and the benches, and docs/screenshots.py) share: the repository, tiny params, a fresh
project, commands run as make or a README reader would, a free port, tiny splits, and the console
noise no stage may print."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "stages", "imdbclf", "requirements.txt", ".gitignore", ".dvcignore"]
# A fresh shell: no virtual environment on PATH, none of the test run's variables.
FRESH_SHELL = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
# What must never reach the console of a stage unless IMDBCLF_VERBOSE is set.
NOISE = re.compile(r"absl::InitializeLog|^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]|oneDNN custom operations|cuInit|"
                   r"cuda drivers|^WARNING:(tensorflow|absl)|^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO mlflow|"
                   r"Successfully registered model|Created version '|Downloading artifacts|UserWarning|"
                   r"Passing a Python object as `python_model`", re.M)


def wait_until(condition, timeout_s: float = 60.0, every_s: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or `timeout_s` passes (False): a test waits on what it
    needs, never a fixed time, which a busy machine may not honour."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
    return True


def free_port() -> int:
    """A free TCP port on loopback, for a server a test or bench starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_params(source: str, hub_handles: tuple[str, str] | None = None) -> dict:
    """The repo's params.yaml, shrunk to seconds: tiny models, two trials, two epochs; with
    hub_handles (preprocessor, encoder directories), bert_small runs on those tiny SavedModels."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params = copy.deepcopy(params)
    params["data"]["source"] = source
    params["models"] = ["tfidf_logreg", "lstm"]
    params["tfidf_logreg"]["tune"]["grid"] = {"C": [1.0, 4.0], "ngram_max": [1], "min_df": [1]}
    lstm = params["lstm"]
    lstm["model"].update(vocab_size=200, seq_len=32, embed_dim=8, lstm_units=4)
    lstm["tune"].update(epochs=2, grid={"optimizer": ["adam", "rmsprop"], "batch_size": [16], "learning_rate": [0.01]})
    lstm["retrain"].update(epochs=2, patience=1)
    del params["electra_base"]
    bert = params["bert_small"]
    if hub_handles:
        params["models"].append("bert_small")
        bert["model"].update(preprocessor=hub_handles[0], encoder=hub_handles[1], seq_len=16)
        grid = {"optimizer": ["adamw", "adam"], "batch_size": [8], "learning_rate": [0.003]}
        bert["tune"].update(epochs=2, grid=grid)
        bert["retrain"].update(epochs=2, patience=1)
    else:
        del params["bert_small"]
    return params



def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True, stream: bool = False):
    """Run a command with this venv first on PATH (as `make` does); raise with its output on failure.
    stream: let its output through (progress of long runs) instead of capturing it."""
    env = {**os.environ, **(env or {}), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DVC_ROOT", None)
    if stream:
        result = subprocess.run(cmd, cwd=cwd, env=env)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed with exit code {result.returncode}")
        return result
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def run_pipeline(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """`run` against the project's own embedded MLflow store: a MLFLOW_TRACKING_URI of the test run is cleared."""
    return run(cmd, cwd, env={"MLFLOW_TRACKING_URI": "", **(env or {})}, check=check)


def make_project(root: Path, params: dict, source: Path = REPO) -> Path:
    """A fresh git + DVC repository holding this pipeline's code (from `source`, a checkout) and the
    given params."""
    root.mkdir(parents=True)
    for name in PROJECT_FILES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "bench@example.invalid"],
                ["git", "config", "user.name", "bench"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "project"]):
        run(cmd, root)
    return root


def with_overrides(params: dict, overrides: dict) -> dict:
    """params.yaml's dict with a bench's settings applied, keys dotted as in `dvc exp run -S`."""
    params = copy.deepcopy(params)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = value
    return params



def readme(command: str, cwd: Path, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    """A command as the README writes it, after its one activation step, in a fresh shell."""
    args = ["bash", "-c", f"source .venv/bin/activate && {command}"]
    if popen:
        return subprocess.Popen(args, cwd=cwd, env=FRESH_SHELL, **popen)
    result = subprocess.run(args, cwd=cwd, env=FRESH_SHELL, capture_output=True, text=True)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result



def splits(per_class: int = 24, seed: int = 3):
    """Tiny train and test splits of synthetic reviews, as the families consume them."""
    from devkit.tiny_imdb import reviews
    from imdbclf.data import Split

    files = reviews(per_class, seed=seed)

    def split(prefix):
        items = [(t, int("/pos/" in k)) for k, t in files.items() if k.startswith(prefix)]
        return Split(prefix, np.array([t for t, _ in items], dtype=object), np.array([y for _, y in items]))

    return split("train"), split("test")


def three_classes(per_class: int = 24):
    """`splits` with a third class, `zzz`: reviews of neutral words alone, without a cue of either kind."""
    from devkit.tiny_imdb import NEUTRAL
    from imdbclf.data import Split

    rng = np.random.default_rng(0)
    train, test = splits(per_class)

    def third(split, n):
        neutral = np.array([" ".join(rng.choice(NEUTRAL, 12)) + "." for _ in range(n)], dtype=object)
        return Split(split.name, np.concatenate([split.texts, neutral]), np.concatenate([split.labels, np.full(n, 2)]),
                     classes=("negative", "positive", "zzz"))

    return third(train, per_class * 2), third(test, per_class)


def labelled(raw: Path, split: str, movies_required: bool = False):
    """A split's reviews as the split stage reads them: labels 0 (negative) and 1 (positive)."""
    from imdbclf import data

    return data.encode_labels(data.read_reviews(raw, split, movies_required), data.BINARY, split)


# sha256 of the prepared splits and TF-IDF predictions of the tiny archive (write_archive(per_class=30)) that
# the code before K classes and table sources wrote (commit 6e5b71a, `dvc repro evaluate@tfidf_logreg`)
TINY_ARCHIVE_SHA256 = {
    "data/prepared/train.parquet": "011da24b16fa699a754034f5e409d49dd0e5f59ae1e7db3cb7e6be24b3f6e604",
    "data/prepared/val.parquet": "43d857526e5042daf62cf95809566f8bbdb7d97378eaac1cda9b8f373a4dc321",
    "data/prepared/test.parquet": "4c77b9a044ea4a59c7b1274bdbfe4e2af6ccb618753b9ef7f6ec4a415ba89d0a",
    "metrics/eval/tfidf_logreg/predictions.parquet": "29e86ea527ac1e600223430c4b78cf509e2f69d52bef5ed60dfa3a99f54e9ba9",
    "metrics/eval/tfidf_logreg/val_predictions.parquet":
        "2e2cbf39c6fd00fe85397ab7eaa300eac8e5b9c2309e43cbc2eb27d746676dd3",
}


@contextlib.contextmanager
def raises_naming(*names: str, kind: type[BaseException] | None = None) -> Iterator[pytest.ExceptionInfo]:
    """The block fails with `kind` (a UserError unless said) in one line that names each of `names`: the
    key, value or file a user must fix. What an error must say, not its wording: a sentence itself is
    pinned only where it is the contract."""
    from imdbclf.errors import UserError

    with pytest.raises(kind or UserError) as err:
        yield err
    message = str(err.value)
    assert "\n" not in message.strip(), f"not one line: {message!r}"
    missing = [name for name in names if name not in message]
    assert not missing, f"{message!r} does not name {missing}"
