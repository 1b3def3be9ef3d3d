"""A saved model is checked against digests recorded where an attacker without git or registry write
access cannot change them, before any of it is loaded: a Keras SavedModel's graph can read and write
files, and only the digest tells a planted one from ours.

- `models/<model>/` of the workspace: the md5 of every file, as DVC records them — dvc.lock holds the
  md5 of the directory's listing in DVC's cache, and the listing the md5 of each file (`dvc_digests`).
  A file pulled from a tampered DVC remote, or replaced in the workspace, differs from both.
- a registered model version: the digests of its model directory, in a tag written when the version
  is registered (`TAG`), and the sha256 of that tag's text in a param of the run that registered it
  (`provenance_param`). A team member can rewrite a tag, but no login can change a run's param once
  logged, so a file replaced in the artifact store and a tag rewritten to match are both refused; the
  version's artifacts are checked wherever it is loaded.

A mismatch stops in one line naming the file and both digests; nothing is loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from imdbclf.errors import UserError

TAG = "imdbclf.model_md5"  # a registered version's tag: the md5 of each file of its model directory
PARAM_PREFIX = "imdbclf.manifest_sha256."  # + the logged model's id: a param of the run that registered it
LOCK_FILE = "dvc.lock"


def provenance_param(model_id: str) -> str:
    return PARAM_PREFIX + model_id


def manifest_sha256(manifest: str) -> str:
    return hashlib.sha256(manifest.encode()).hexdigest()


def md5_of(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - DVC's digest: compared with what DVC records, not a password
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digests(directory: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The md5 of every file under `directory` (but `skip`), by its path relative to it (POSIX, sorted)."""
    directory = Path(directory)
    return {p.relative_to(directory).as_posix(): md5_of(p) for p in sorted(directory.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.relative_to(directory).as_posix() not in skip}


def verify(directory: Path, expected: dict[str, str], recorded_in: str, skip: tuple[str, ...] = ()) -> None:
    """Every file of `directory` has the md5 `expected` records, and no file is missing or added."""
    actual = digests(directory, skip)
    for name in sorted(set(actual) | set(expected)):
        if actual.get(name) != expected.get(name):
            raise UserError(f"{Path(directory) / name}: md5 {actual.get(name, '(missing)')}, but {recorded_in} "
                            f"records {expected.get(name, '(no such file)')}: the model is not loaded")


def _lock_entry(directory: Path, root: Path) -> tuple[str, str] | None:
    """(output path, its md5) of the dvc.lock output that holds `directory`, if DVC tracks it."""
    import yaml  # here, not at the top: the served model imports this module and needs no YAML

    lock = root / LOCK_FILE
    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    target = directory.resolve()
    for stage in stages.values():
        for out in stage.get("outs", []):
            path = (root / out["path"]).resolve()
            if (path == target or path in target.parents) and out.get("md5"):
                return out["path"], out["md5"]
    return None


def _cache_object(root: Path, md5: str) -> Path:
    """Where DVC's cache (wherever the repo's config puts it) keeps the object `md5`."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return Path(repo.cache.local.oid_to_path(md5))


def dvc_digests(directory: Path, root: Path) -> dict[str, str] | None:
    """The md5 of each file of `directory` as DVC recorded them (relative to `directory`), or None when
    no dvc.lock output holds it. The listing in the cache is checked against dvc.lock first."""
    entry = _lock_entry(Path(directory), root)
    if entry is None:
        return None
    out, md5 = entry
    listing = _cache_object(root, md5)
    if not listing.is_file():
        raise UserError(f"{out}: DVC's cache has no listing {md5} of it (dvc.lock's record): run `dvc pull {out}` "
                        "or `dvc repro`; the model is not loaded")
    if not md5.endswith(".dir"):
        return {Path(out).name: md5}
    actual = md5_of(listing)
    if actual != md5.removesuffix(".dir"):
        raise UserError(f"{listing}: md5 {actual}, but {LOCK_FILE} records {md5} for {out}: the model is not loaded")
    inside = Path(directory).resolve().relative_to((root / out).resolve()).as_posix()
    prefix = "" if inside == "." else inside + "/"
    return {e["relpath"][len(prefix):]: e["md5"] for e in json.loads(listing.read_text())
            if e["relpath"].startswith(prefix)}
