"""Progress of long work (batches, reviews): a tqdm bar with ETA on a terminal, a line at every ~10%
otherwise (a log file, CI), so that minutes of work are never silent."""

from __future__ import annotations

import sys
import time
from typing import TextIO


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
