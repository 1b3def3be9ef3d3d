"""Which host and process this is, and whether a process recorded earlier still runs: how a run or a
trial left behind by a killed process is recognised."""

from __future__ import annotations

import socket

import psutil


def host() -> str:
    return socket.gethostname()


def identity() -> dict[str, str | int | float]:
    """This process as others will look for it: host, pid and start time (a recycled pid has another)."""
    me = psutil.Process()
    return {"host": host(), "pid": me.pid, "started": round(me.create_time(), 3)}


def running(pid: int, started: float) -> psutil.Process | None:
    """The process `pid` if it still runs and is the one that started at `started`: a recycled pid has
    another start time, and an exited child that is not yet reaped is a zombie."""
    try:
        process = psutil.Process(pid)
        same = abs(process.create_time() - started) < 1.0
        return process if same and process.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


def is_alive(pid: int, started: float) -> bool:
    return running(pid, started) is not None
