"""The disk a workspace uses besides its outputs, and freeing it: `python -m imdbclf cache [--clear]`.

The caches grow with every setting tried and nothing evicts them: the tokenized splits of the TF Hub
encoders (one file per preprocessor, sequence length and split), the TF Hub downloads, other caches
under `.cache/` (the benches' converted encoder), and the resume state of interrupted retrains. Each is
made again when a stage needs it, so clearing them costs time, never results; `--clear` refuses while a
stage or tune worker of this workspace runs, which may be writing or reading them. DVC's cache holds the
outputs of every experiment: it is shown, and freed by DVC itself (`dvc gc`), never here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imdbclf import outputs
from imdbclf.errors import UserError

CACHE = ".cache"
TFHUB_ENV = "TFHUB_CACHE_DIR"
KNOWN = {  # subfolder of .cache -> what it holds and what clearing it costs
    "features": "tokenized splits of the TF Hub encoders; tokenized again when a stage needs them",
    "tfhub": "TF Hub downloads (encoders, preprocessors); downloaded again when a stage needs them",
    "hub": "encoders converted by the benches (bench/common.py); converted again by the next bench",
    "streamed": "hashed chunks of the linear families' streamed fits (removed after each; left by a killed one)",
}


@dataclass(frozen=True)
class Cache:
    name: str
    path: Path
    what: str
    clearable: bool = True
    by_default: bool = True  # cleared by a bare --clear

    def size(self) -> tuple[int, int]:
        """(bytes, files) below the path, links not followed."""
        total = files = 0
        for folder, _, names in os.walk(self.path):
            for name in names:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_size
                    files += 1
                except OSError:  # removed meanwhile
                    pass
        return total, files


def caches(root: Path) -> list[Cache]:
    """Every cache of the workspace at `root`, those that are not there too (size 0)."""
    found = [Cache(name, root / CACHE / name, what) for name, what in KNOWN.items() if name != "tfhub"]
    hub = Path(os.environ.get(TFHUB_ENV) or root / CACHE / "tfhub")  # hub_encoder's default: .cache/tfhub
    outside = root.resolve() not in hub.resolve().parents  # shared with other projects: freed only when named
    what = KNOWN["tfhub"] + ("; outside this workspace: cleared only when named (--clear tfhub)" if outside else "")
    found.insert(1, Cache("tfhub", hub, what, by_default=not outside))
    if (root / CACHE).is_dir():
        found += [Cache(p.name, p, "a cache under .cache/; made again by whatever made it")
                  for p in sorted((root / CACHE).iterdir()) if p.is_dir() and p.name not in KNOWN]
    found.append(Cache("checkpoints", root / outputs.CHECKPOINTS,
                       "resume state of interrupted retrains; a cleared one starts its retrain over"))
    found.append(Cache("dvc", root / ".dvc" / "cache", "DVC's cache: the outputs of every experiment; "
                       "free it with `dvc gc --workspace` (keeps what this workspace uses)", clearable=False))
    return found


def human(size: float) -> str:
    """1.2 GB, 345.6 MB, 12 B: decimal units, as `du -h --si` and pip print them."""
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def show(root: Path) -> str:
    """A table of the caches' sizes, and what clearing each would cost."""
    lines = [f"{'cache':<12} {'size':>9} {'files':>7}  path: what"]
    clearable = 0
    for cache in caches(root):
        size, files = cache.size()
        clearable += size if cache.clearable else 0
        lines.append(f"{cache.name:<12} {human(size):>9} {files:>7,}  {_shown(cache.path, root)}: {cache.what}")
    lines.append(f"{'clearable':<12} {human(clearable):>9} {'':>7}  python -m imdbclf cache --clear (make clean-cache)")
    return "\n".join(lines)


def pipeline_processes(root: Path) -> list[str]:
    """Stages, tune workers and DVC runs of this workspace (their working directory is in it, as is a
    queued experiment's temp copy): `pid: command` of each."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmd, cwd = proc.info["cmdline"] or [], proc.info["cwd"]
        if proc.info["pid"] == os.getpid() or not cwd or not _is_pipeline(cmd):
            continue
        cwd = Path(cwd)
        if cwd == root or root in cwd.parents:
            found.append(f"{proc.info['pid']}: {' '.join(cmd)[:120]}")
    return found


def _is_pipeline(cmd: list[str]) -> bool:
    for i, arg in enumerate(cmd[:-1]):
        module, rest = cmd[i + 1], cmd[i + 2 : i + 3]
        if arg == "-m" and (module.startswith("stages.") or (module == "imdbclf" and rest == ["tune-worker"])):
            return True
    names = [Path(arg).name for arg in cmd[:3]]  # dvc, python .../bin/dvc, python -m dvc
    if "dvc" not in names:
        return False
    words = [arg for arg in cmd[names.index("dvc") + 1:] if not arg.startswith("-")]
    return words[:1] == ["repro"] or words[:2] == ["exp", "run"] or "queue-worker" in words[:2]


def clear(root: Path, names: Iterable[str] = ()) -> str:
    """Delete the named caches (all that `--clear` may free when none is named); refuses while a stage of
    this workspace runs. Returns what was freed, as a line."""
    every = {cache.name: cache for cache in caches(root)}
    names = list(names) or [name for name, cache in every.items() if cache.clearable and cache.by_default]
    for name in names:
        if name not in every:
            raise UserError(f"no cache named '{name}' (known: {', '.join(every)})")
        if not every[name].clearable:
            raise UserError(f"{name}: not cleared here: {every[name].what}")
    busy = pipeline_processes(root)
    if busy:
        raise UserError(f"not clearing while this workspace runs {busy[0]}"
                        f"{f' (and {len(busy) - 1} more)' if len(busy) > 1 else ''}: wait for it or stop it first")
    freed, cleared, failed = 0, [name for name in names if every[name].path.exists()], []
    for name in cleared:
        before = every[name].size()[0]
        try:
            shutil.rmtree(every[name].path)
        except OSError as err:  # read-only, a link, or in use: say so instead of claiming it freed
            failed.append(f"{name} ({err.strerror or err}: {err.filename})")
        freed += before - (every[name].size()[0] if every[name].path.exists() else 0)
    done = [name for name in cleared if not every[name].path.exists()]
    if failed:
        raise UserError(f"freed {human(freed)}; could not clear {', '.join(failed)}")
    return f"freed {human(freed)}: {', '.join(done)}" if done else "nothing to clear"
