"""Which source files a piece of the pipeline runs, and their hash.

DVC must rerun a stage when, and only when, code it runs changes, and a finished tuning trial may be
reused only while the code it ran is unchanged. Both follow every `import` statement of the
repository's own modules, wherever it stands in the file (at the top, or inside a function that
imports lazily), read from the source text, so nothing is imported here. What keeps the lists exact
is the shape of the code, not a rule of this module: the core never imports `imdbclf.ops`, and a
stage imports only what it runs.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWN_PACKAGES = ("imdbclf", "stages")


def module_file(name: str) -> Path | None:
    """The source file of one of the repository's own modules, or None for any other module."""
    if name.split(".")[0] not in OWN_PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Own modules that any import statement of the file names: `import a.b`, `from a import b` (b a
    module or a name), at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if module_file(name) is not None}


def _with_parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(*modules: str) -> list[Path]:
    """Every own source file that importing `modules` runs, relative to the repository root."""
    seen: set[Path] = set()
    todo = [parent for name in modules for parent in _with_parents(name)]
    while todo:
        path = module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo += [parent for name in _imports(path) for parent in _with_parents(name)]
    return sorted(path.relative_to(ROOT) for path in seen)


def manifest(files: list[Path]) -> str:
    """`sha256  path` per file, as sha256sum prints it: what a stage's code dependency records."""
    return "".join(f"{hashlib.sha256((ROOT / f).read_bytes()).hexdigest()}  {f.as_posix()}\n" for f in files)


def digest(files: list[Path]) -> str:
    return hashlib.sha256(manifest(files).encode()).hexdigest()[:16]
