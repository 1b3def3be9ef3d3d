"""What every stage's entry point does around its main(): quiet the libraries, arm the failpoints,
print a start line and an end line with the time and the headline, and turn a user mistake or an
interruption into one line and a non-zero exit."""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable

from imdbclf.errors import exit_on_user_error
from imdbclf.ops import console, failpoints
from imdbclf.progress import duration


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
            console.quiet()
            failpoints.arm()
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
