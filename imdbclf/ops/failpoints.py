"""Fault injection: the test names a crash point (`imdbclf.crashpoints`) in IMDBCLF_KILL_AT, and the
process is killed there with SIGKILL (no handler, no cleanup runs), to prove that a stage killed there
leaves nothing half-done and that a rerun recovers; or in IMDBCLF_DISK_FULL_AT, and the write there
fails as on a full disk (ENOSPC). The entry points arm it; inert unless a variable is set."""

from __future__ import annotations

import errno
import os
import signal

from imdbclf import crashpoints

KILL_AT = "IMDBCLF_KILL_AT"
DISK_FULL_AT = "IMDBCLF_DISK_FULL_AT"


def _fail_if_named(point: str) -> None:
    if os.environ.get(KILL_AT) == point:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(DISK_FULL_AT) == point:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def arm() -> None:
    if os.environ.get(KILL_AT) or os.environ.get(DISK_FULL_AT):
        crashpoints.listen(_fail_if_named)
