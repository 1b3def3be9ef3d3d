"""The docs say what the code is: docs/layout.md's module map names every module of the package, and
nothing that is gone; docs/extending.md's family interface is base.py's, and its example family runs."""

from __future__ import annotations

import inspect
import re
import sys
import types

import numpy as np

from devkit.helpers import REPO

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


EXTENDING = REPO / "docs" / "extending.md"


def family_section() -> str:
    text = EXTENDING.read_text()
    return text[text.index("## Add a model family"):text.index("**4. A model of that family")]


def documented_methods() -> dict[str, str]:
    """The family interface's table in docs/extending.md: method name → its documented signature."""
    rows = re.findall(r"^\| `(\w+)(\(.*?\) -> .*?)`", family_section(), re.M)
    return {name: signature.replace("\\|", "|") for name, signature in rows}


def actual_signature(name: str) -> str:
    from imdbclf.families.base import Family

    function = inspect.unwrap(getattr(Family.__dict__[name], "__func__", Family.__dict__[name]))
    signature = inspect.signature(function)
    parameters = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}"
                           for p in signature.parameters.values())
    return f"({parameters}) -> {signature.return_annotation}"


def test_the_family_table_is_the_interface_of_families_base():
    from imdbclf.families.base import Family

    documented = documented_methods()
    undocumented = Family.__abstractmethods__ - set(documented)
    assert not undocumented, f"docs/extending.md's family table lacks {sorted(undocumented)}"
    for name, signature in documented.items():
        assert name in Family.__dict__, f"docs/extending.md documents Family.{name}, which base.py no longer has"
        assert signature == actual_signature(name), f"Family.{name}: docs/extending.md says {signature}"


def code_block_with(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", family_section(), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def module_from(name: str, source: str, monkeypatch) -> types.ModuleType:
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(source, f"docs/extending.md ({name})", "exec"), module.__dict__)  # noqa: S102 - the page's own code
    return module


def test_the_pages_example_family_trains_saves_and_reloads(tmp_path, monkeypatch):
    """The page's three steps, as written, give a family the pipeline can build, train, save and load."""
    from devkit.helpers import three_classes
    from imdbclf import families, settings
    from imdbclf.families import FitOptions

    my_settings = module_from("imdbclf.settings.my_nb", code_block_with("class MyNbConfig"), monkeypatch)
    module_from("imdbclf.families.my_nb", code_block_with("class MyNb(Family)"), monkeypatch)
    (record,) = re.findall(r'^\s*"my_nb": (FamilyRecord\(.*\)),$', code_block_with("FAMILIES"), re.M)
    monkeypatch.setitem(settings.FAMILIES, "my_nb", eval(record, {"FamilyRecord": settings.FamilyRecord,  # noqa: S307
                                                                  "my_nb": my_settings}))
    section = types.SimpleNamespace(family="my_nb", model={"max_features": 500})
    family = families.create("my_model", section)
    train, test = three_classes()
    hp = settings.hyperparameters("my_model", section, {"alpha": 0.5})
    history = family.fit(train, test, hp, FitOptions(epochs=1))
    assert history["val_accuracy"][0] > 0.9  # the tiny classes are separable by their words
    family.save(tmp_path / "model")
    reloaded = families.load_family(tmp_path / "model")
    assert reloaded.classes == train.classes
    np.testing.assert_allclose(reloaded.predict_proba(test.texts), family.predict_proba(test.texts))
