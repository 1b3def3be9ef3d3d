"""User mistakes and interruptions become one clear line and a non-zero exit, never a stack trace."""

from __future__ import annotations

import errno
import functools
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])
PARAMS_FILE = "params.yaml"


class UserError(Exception):
    """A problem the user can fix (bad params, bad source, bad file): shown as one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, a CI timeout, `timeout`), handled exactly like Ctrl-C."""

    exit_code = 128 + signal.SIGTERM


class Interrupted(Exception):
    """A stage stopped by Ctrl-C or SIGTERM after its MLflow run was marked KILLED."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def format_validation_error(err, prefix: str = "") -> str:
    """A pydantic ValidationError in a params.yaml section as one line naming the key, e.g.
    `params.yaml: unknown key 'lstm.model.layers'` (prefix: where the validated mapping sits)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    if first["type"] == "extra_forbidden":
        return f"{PARAMS_FILE}: unknown key '{loc}'"
    if first["type"] == "missing":
        return f"{PARAMS_FILE}: missing key '{loc}'"
    message = first["msg"].removeprefix("Value error, ")
    if not loc:  # a check of the whole file names its keys in the message
        return f"{PARAMS_FILE}: {message}"
    got = repr(first.get("input"))
    got = re.sub(r"(://)[^/@?#'\"]*@", r"\1…@", got)  # a URL's login is not printed
    return f"{PARAMS_FILE}: {loc}: {message} (got {got[:200]}{'…' if len(got) > 200 else ''})"


def interrupt_exit_code(err: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM: the shell's convention of 128 + the signal's number."""
    return getattr(err, "exit_code", 128 + signal.SIGINT)


def disk_full(err: BaseException) -> str | None:
    """The one line for a write that failed because the disk is full, wherever in the libraries it
    happened (a file, MLflow's SQLite store, DVC), looking through the exceptions it caused; else None."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {seen.filename}" if seen.filename else ""
            return f"{os.strerror(seen.errno).lower()}{where}: free some space and rerun"
        if "database or disk is full" in str(seen):
            return "the disk is full (the MLflow store could not be written): free some space and rerun"
        seen = seen.__cause__ or seen.__context__
    return None


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def exit_on_user_error(main: F) -> F:
    """Wrap a stage's main(): a UserError prints `error: ...` and exits 2; Ctrl-C or SIGTERM print
    `interrupted: ...` and exit 130 or 143."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except Interrupted as err:
            print(f"interrupted: {err}", file=sys.stderr)
            raise SystemExit(err.exit_code) from None
        except KeyboardInterrupt as err:
            print("interrupted", file=sys.stderr)
            raise SystemExit(interrupt_exit_code(err)) from None
        except Exception as err:
            if (full := disk_full(err)) is None:
                raise
            print(f"error: {full}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]
