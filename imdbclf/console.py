"""What a user sees: the stages' own lines, not the libraries' chatter, and progress of long work.

By default TensorFlow's start-up lines (oneDNN, CUDA, absl), its C++ log, the Python warnings of
TensorFlow and absl, and MLflow's INFO lines and messages are not shown; IMDBCLF_VERBOSE=1 shows all of
it again. Every stage prints one line when it starts and one when it ends, with the elapsed time and its
headline result (`stage`); long work shows a progress bar with ETA on a terminal and a line at every
~10% otherwise (`Progress`).

Imports nothing heavy: `imdbclf/__init__.py` runs `configure()` before anything imports TensorFlow
or MLflow.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TextIO

from imdbclf.errors import exit_on_user_error

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


def configure() -> None:
    """Silence library chatter unless IMDBCLF_VERBOSE is set; before TensorFlow or MLflow is imported
    (both read their settings then). Settings the user made in the environment win."""
    if verbose():
        return
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


def duration(seconds: float) -> str:
    """4.2 s, 3 min 05 s, 1 h 02 min, 3 d 04 h (an estimate of days of training)."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def _process_seconds() -> float:
    """Seconds since this process started: a stage's time includes its imports."""
    try:
        import psutil

        return max(time.time() - psutil.Process().create_time(), 0.0)
    except Exception:  # noqa: BLE001 - no psutil, or no access to the process table: time main() alone
        return 0.0


def stage(name: str) -> Callable:
    """Decorate a stage's main(): it prints `<name>: started` first and `<name>: done in <time>:
    <headline>` last — the headline is what main returns — and ends as `exit_on_user_error` says (a
    user error or an interruption prints its one line instead of the end line). `{}` in the name is
    filled with main's positional arguments, e.g. "tune@{}"."""
    def decorate(main: Callable) -> Callable:
        @exit_on_user_error
        @functools.wraps(main)
        def wrapper(*args, **kwargs):
            label = name.format(*args)
            with contextlib.suppress(AttributeError, ValueError):  # in order with stderr, also in a log file
                sys.stdout.reconfigure(line_buffering=True)
            print(f"{label}: started", flush=True)
            started = time.perf_counter() - _process_seconds()
            headline = main(*args, **kwargs)
            took = duration(time.perf_counter() - started)
            print(f"{label}: done in {took}" + (f": {headline}" if headline else ""), flush=True)
            return headline

        return wrapper

    return decorate


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _value(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


class Progress:
    """Progress through `total` units of work (batches, reviews): a tqdm bar with ETA on a terminal,
    a line at every ~10% otherwise (a log file, CI), so that minutes of work are never silent."""

    def __init__(self, total: int, desc: str, unit: str = "batch", file: TextIO | None = None,
                 tty: bool | None = None):
        self.total, self.desc, self.unit = max(int(total), 0), desc, unit
        self.file = file if file is not None else sys.stderr
        self.done, self.tenths = 0, 0
        self.started = time.perf_counter()
        self.bar = None
        if _isatty(self.file) if tty is None else tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=f" {unit}", file=self.file, leave=False,
                            dynamic_ncols=True, mininterval=0.5)

    def update(self, n: int = 1, **postfix) -> None:
        self.done += n
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix({k: _value(v) for k, v in postfix.items()}, refresh=False)
            self.bar.update(n)
            return
        tenths = min(10, self.done * 10 // self.total) if self.total else 10
        if tenths <= self.tenths:
            return
        self.tenths = tenths
        elapsed = time.perf_counter() - self.started
        eta = elapsed * max(self.total - self.done, 0) / max(self.done, 1)
        extra = "".join(f", {k} {_value(v)}" for k, v in postfix.items())
        percent = 100 * self.done // self.total if self.total else 100
        units = self.unit + ("es" if self.unit.endswith(("ch", "sh", "s", "x")) else "s")
        print(f"{self.desc}: {self.done}/{self.total} {units} ({percent}%), {duration(elapsed)} elapsed, "
              f"ETA {duration(eta)}{extra}", file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
