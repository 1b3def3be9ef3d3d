"""Fault injection: the test names a crash point (`imdbclf.crashpoints`) in IMDBCLF_KILL_AT, and the
process is killed there with SIGKILL (no handler, no cleanup runs), to prove that a stage killed there
leaves nothing half-done and that a rerun recovers. The entry points arm it; inert unless the variable
is set."""

from __future__ import annotations

import os
import signal

from imdbclf import crashpoints

KILL_AT = "IMDBCLF_KILL_AT"


def _kill_if_named(point: str) -> None:
    if os.environ.get(KILL_AT) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def arm() -> None:
    if os.environ.get(KILL_AT):
        crashpoints.listen(_kill_if_named)
