"""Named points in the core where a process may die (after staging an output, before renaming it into
place; at the end of an epoch or a trial) and a rerun must still recover.

The core only names the points; the fault-injection tooling (`imdbclf.ops.failpoints`) listens to them
and kills the process at the one a test names. With no listener, reaching a point does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

_listeners: list[Callable[[str], None]] = []


def reached(point: str) -> None:
    for listener in _listeners:
        listener(point)


def listen(listener: Callable[[str], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)
