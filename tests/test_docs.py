"""The docs say what the code is: docs/layout.md's module map names every module of the package, and
nothing that is gone."""

from __future__ import annotations

import re

from tests.helpers import REPO

PACKAGE = REPO / "imdbclf"


def listed_modules() -> set[str]:
    """Every `<path>.py` that starts a line of layout.md's module maps, as a path under imdbclf/."""
    text = (REPO / "docs" / "layout.md").read_text()
    return set(re.findall(r"^  ([\w/]+\.py)\b", text, re.M))


def test_the_module_map_lists_every_module_and_nothing_that_is_gone():
    actual = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    listed = listed_modules()
    assert not listed - actual, f"listed in docs/layout.md but gone: {sorted(listed - actual)}"
    missing = {m for m in actual - listed if not m.endswith("/__init__.py")}
    assert not missing, f"modules docs/layout.md does not list: {sorted(missing)}"
