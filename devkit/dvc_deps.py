"""dvc.yaml's code dependencies, computed: each stage's list is the files its module's import statements
reach (`imdbclf.codedeps`, as code@<model> computes its lists at run time), a folder where every module
under it is reached. `python -m devkit.dvc_deps` rewrites the lists in place (comments and the other
dependencies kept); `--check` only says whether they are current (tests/test_dvc_yaml.py asks the same).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from devkit.helpers import REPO
from imdbclf import codedeps, families

DVC_YAML = REPO / "dvc.yaml"
CODE_ROOTS = ("stages/", "imdbclf/")
ENTRY = re.compile(r"^(\s+)- (\S+)")


def needed(stage: str, body: dict) -> set[str]:
    """The .py files a stage runs: its module's import closure; code@ also every model stage's and family's."""
    from stages.code import MODEL_STAGES

    module = re.search(r"python -m (stages\.\w+)", body["cmd"])[1]
    modules = [module]
    if stage == "code":
        stages = yaml.safe_load(DVC_YAML.read_text())["stages"]
        modules += [re.search(r"python -m (stages\.\w+)", stages[s]["do"]["cmd"])[1] for s in MODEL_STAGES]
        modules += [families.family_module(f) for f in families.FAMILIES]
    return {p.as_posix() for p in codedeps.closure(*modules)}


def compact(files: set[str]) -> list[str]:
    """The files, a package folder of imdbclf/ named instead of its modules when every one is needed."""
    folders = sorted({Path(f).parent for f in files if f.startswith("imdbclf/") and Path(f).parent != Path("imdbclf")},
                     key=lambda p: len(p.parts))
    kept: list[str] = []
    covered: set[str] = set()
    for folder in folders:
        modules = {p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*.py")}
        if modules <= files and not any(folder.is_relative_to(k) for k in map(Path, kept)):
            kept.append(folder.as_posix())
            covered |= modules
    entry = [f for f in files if f.startswith("stages/")]
    first = sorted(entry, key=lambda f: (f.endswith("__init__.py"), f))
    return first + sorted(kept + [f for f in files - covered if f.startswith("imdbclf/")])


def updated(text: str) -> str:
    """dvc.yaml's text with every non-model stage's code dependencies as computed."""
    from stages.code import MODEL_STAGES

    stages = yaml.safe_load(text)["stages"]
    lines = text.split("\n")
    for stage, spec in stages.items():
        if stage in MODEL_STAGES:
            continue
        body = spec.get("do", spec)
        start = next(i for i, line in enumerate(lines) if re.match(rf"^  {re.escape(stage)}:", line))
        deps = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("deps:"))
        end = deps + 1
        while end < len(lines) and ENTRY.match(lines[end]):
            end += 1
        entries = lines[deps + 1 : end]
        indent = ENTRY.match(entries[0])[1]
        code = [i for i, line in enumerate(entries) if ENTRY.match(line)[2].startswith(CODE_ROOTS)]
        others = [line for i, line in enumerate(entries) if i not in code]
        at = code[0] if code else len(entries)
        fresh = [f"{indent}- {dep}" for dep in compact(needed(stage, body))]
        lines[deps + 1 : end] = others[:at] + fresh + others[at:]
    return "\n".join(lines)


def main() -> None:
    text = DVC_YAML.read_text()
    fresh = updated(text)
    if "--check" in sys.argv[1:]:
        sys.exit(0 if fresh == text else "dvc.yaml: code dependencies out of date: run python -m devkit.dvc_deps")
    DVC_YAML.write_text(fresh)
    print("dvc.yaml: code dependencies " + ("unchanged" if fresh == text else "updated"))


if __name__ == "__main__":
    main()
