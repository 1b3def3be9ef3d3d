"""Named points where the fault-injection test kills a stage (SIGKILL: no handler, no cleanup runs),
to prove that a stage killed there leaves nothing half-done and that a rerun recovers. Inert unless
the environment variable names the point."""

from __future__ import annotations

import os
import signal

KILL_AT = "IMDBCLF_KILL_AT"


def reached(point: str) -> None:
    if os.environ.get(KILL_AT) == point:
        os.kill(os.getpid(), signal.SIGKILL)
