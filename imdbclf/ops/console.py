"""What a user sees: the stages' own lines, not the libraries' chatter.

By default TensorFlow's start-up lines (oneDNN, CUDA, absl), its C++ log, the Python warnings of
TensorFlow and absl, and MLflow's INFO lines and messages are not shown; IMDBCLF_VERBOSE=1 shows all of
it again. Nothing happens on import: the entry points (`imdbclf.ops.stage`, the CLI) call `quiet()`
before anything loads TensorFlow or MLflow.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator

VERBOSE_ENV = "IMDBCLF_VERBOSE"
# What TensorFlow's native code writes to file descriptor 2 while it is imported (absl's log before
# InitializeLog: oneDNN, "Could not find cuda drivers", cuDNN/cuBLAS factory registration).
NATIVE_NOISE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                          r"|[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*")
# Warnings about choices made on purpose (MLflow: the pyfunc wraps a Python object that loads the
# family; its predict takes a DataFrame as the signature says) or about a dependency's dependencies
# (tensorflow_hub imports pkg_resources).
WARNING_NOISE = re.compile(r"Passing a Python object as `python_model`|Add type hints to the `predict` method"
                           r"|pkg_resources is deprecated as an API")


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class _DropKnown(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not WARNING_NOISE.search(str(record.msg))


def quiet() -> None:
    """Silence library chatter in this process unless IMDBCLF_VERBOSE is set: what an entry point calls
    first. Settings the user made in the environment win."""
    if verbose():
        return
    configure()
    if "mlflow" in sys.modules:  # loaded already (a stage module imports tracking): quiet it now
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        quiet_mlflow_messages()
    if not any(isinstance(finder, _QuietLoading) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietLoading())


def configure() -> None:
    """The settings TensorFlow and MLflow read (TensorFlow when it loads), their loggers, and the warnings
    about choices made on purpose."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ log after start-up, e.g. cuInit errors
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # "View run … at" with a server
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("mlflow.pyfunc").addFilter(_DropKnown())
    # not a warnings filter: MLflow shows its UserWarnings "once" whatever the filters say
    warnings.showwarning = _drop_known_warnings(warnings.showwarning)


def _drop_known_warnings(show: Callable) -> Callable:
    if getattr(show, "drops_known", False):
        return show

    @functools.wraps(show)
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if not WARNING_NOISE.search(str(message)):
            show(message, category, filename, lineno, file, line)

    showwarning.drops_known = True
    return showwarning


class _Stderr:
    """sys.stderr as it is at each write (pytest and the stages may swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def quiet_mlflow_messages() -> None:
    """MLflow prints messages such as "Successfully registered model ..." outside its loggers, on the
    stream its log handler writes to: mute that stream and let the handler (warnings and errors at the
    default level) write to stderr directly. Call once mlflow is imported."""
    if verbose():
        return
    try:
        from mlflow.utils import logging_utils

        for handler in logging.getLogger("mlflow").handlers:
            if getattr(handler, "stream", None) is logging_utils.MLFLOW_LOGGING_STREAM:
                handler.setStream(_Stderr())
        logging_utils.disable_logging()
    except (ImportError, AttributeError):  # another MLflow version: its messages stay
        pass


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Hide what native code writes straight to file descriptor 2 while the block runs — TensorFlow's
    start-up lines, which no setting silences — and pass on anything else written there."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not NATIVE_NOISE.fullmatch(line.rstrip("\r\n")))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


@contextlib.contextmanager
def _then_quiet_mlflow() -> Iterator[None]:
    yield
    quiet_mlflow_messages()


# What loads quietly: TensorFlow's native start-up lines are hidden while it loads; MLflow's messages
# are muted once it has loaded.
_ON_LOAD: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "tensorflow": lambda: quiet_native_stderr(),
    "mlflow": _then_quiet_mlflow,
}


class _QuietLoading(importlib.abc.MetaPathFinder):
    """Finds a library of `_ON_LOAD` as Python would, and runs its loading inside that library's quieting
    (wherever it is first imported: a family's module, tf_keras, a lazy import of the core)."""

    def __init__(self) -> None:
        self.finding = False

    def find_spec(self, name, path=None, target=None):
        if name not in _ON_LOAD or self.finding:
            return None
        self.finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.finding = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader, _ON_LOAD[name])
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, around: Callable[[], contextlib.AbstractContextManager]):
        self.loader, self.around = loader, around

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # the package sees its own loader
        with self.around():
            self.loader.exec_module(module)
