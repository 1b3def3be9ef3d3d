"""The shape of the package: the ML core (`imdbclf`) never imports the operations (`imdbclf.ops`), and
importing any module of it changes nothing global in the process."""

import ast
import subprocess
import sys
import textwrap

from devkit.helpers import REPO

CORE = sorted(p for p in (REPO / "imdbclf").rglob("*.py")
              if "ops" not in p.relative_to(REPO / "imdbclf").parts and p.name != "__main__.py")


def imported(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_no_module_of_the_core_imports_an_operations_module():
    assert len(CORE) > 30
    offenders = {p.relative_to(REPO).as_posix(): sorted(n for n in imported(p) if n.startswith("imdbclf.ops"))
                 for p in CORE}
    assert not {path: names for path, names in offenders.items() if names}


def test_no_module_of_the_core_starts_the_command_line_of_the_operations():
    """An import the test above cannot see: a subprocess `python -m imdbclf <command>` runs ops/cli.py.
    The stage that needs one (tune's local workers) names the command and hands it to the core."""
    launches = {p.relative_to(REPO).as_posix() for p in CORE
                if any(isinstance(node, ast.Tuple | ast.List) and [getattr(e, "value", None) for e in node.elts[1:3]]
                       == ["-m", "imdbclf"] for node in ast.walk(ast.parse(p.read_text())))}
    assert not launches


def test_importing_the_core_and_the_stages_changes_no_environment_variable_warning_filter_or_logger():
    modules = [".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in CORE]
    modules += [f"stages.{p.stem}" for p in sorted((REPO / "stages").glob("*.py")) if p.stem != "__init__"]
    script = textwrap.dedent(f"""
        import importlib, logging, os, sys, warnings
        # the libraries first: what they do when imported is theirs; TensorFlow needs its Keras chosen
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        for library in ("numpy", "pandas", "scipy.stats", "sklearn.linear_model", "matplotlib.figure", "mlflow",
                        "mlflow.pyfunc", "optuna", "sqlalchemy", "pydantic", "yaml", "requests", "psutil", "tqdm",
                        "tensorflow", "tf_keras", "tensorflow_hub", "tensorflow_text", "skops.io"):
            importlib.import_module(library)
        del os.environ["TF_USE_LEGACY_KERAS"]  # so that a module of ours setting it on import is caught
        def state():
            loggers = {{name: logging.getLogger(name).level for name in ("", "mlflow", "tensorflow", "absl", "optuna")}}
            return (dict(os.environ), list(warnings.filters), warnings.showwarning, list(sys.meta_path), loggers)
        before = state()
        for module in {modules!r}:
            importlib.import_module(module)
        after = state()
        for name, a, b in zip(("environment", "warning filters", "showwarning", "meta_path", "loggers"), before, after):
            assert a == b, (name, a, b)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


SOURCES = sorted([*(REPO / "imdbclf").rglob("*.py"), *(REPO / "stages").glob("*.py"), *(REPO / "bench").glob("*.py")])
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60  # a module one reads at a sitting; a function on one screen


def test_no_module_or_function_outgrows_a_sitting():
    big_modules = {p.relative_to(REPO).as_posix(): n for p in SOURCES
                   if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    long_functions = {f"{p.relative_to(REPO).as_posix()}:{node.name}": node.end_lineno - node.lineno + 1
                      for p in SOURCES for node in ast.walk(ast.parse(p.read_text()))
                      if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES}
    assert not big_modules, f"modules over {MAX_MODULE_LINES} lines: {big_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_no_name_is_defined_at_the_top_level_of_two_modules_of_the_package():
    """A name means one thing across the package (a re-export is an import, not a definition)."""
    where: dict[str, list[str]] = {}
    for path in sorted((REPO / "imdbclf").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                where.setdefault(node.name, []).append(path.relative_to(REPO).as_posix())
    assert not {name: paths for name, paths in where.items() if len(paths) > 1}
