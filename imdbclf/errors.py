"""User mistakes become one clear line and a non-zero exit, never a stack trace."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class UserError(Exception):
    """A problem the user can fix (bad params, bad source, bad file): shown as one line."""


def exit_on_user_error(main: F) -> F:
    """Wrap a stage's main(): a UserError prints `error: ...` and exits 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
