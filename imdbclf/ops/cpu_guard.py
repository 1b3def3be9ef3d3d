"""Before hours of training on a CPU: say how long, and stop unless the user asked to go on.

`make run` with the default params fine-tunes BERT-small and ELECTRA-base over their grids on 20,000
reviews: hours on a GPU, days on a CPU. So a stage that trains in steps (a Keras family), on a machine
where TensorFlow sees no GPU, first times a few training steps of its own model and prints its estimate
(runs × epochs × steps per epoch × seconds per step). Over `compute.cpu_limit_hours` it stops instead,
with one line naming the estimate, the run sized for a CPU (`make cpu`) and the two ways to go on anyway
(`compute.allow_slow_cpu`, `IMDBCLF_ALLOW_SLOW_CPU=1`). The tune and retrain stages call `check`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from imdbclf.errors import UserError
from imdbclf.families import Family, Split, Strict
from imdbclf.params import ComputeParams
from imdbclf.progress import duration

ALLOW_ENV = "IMDBCLF_ALLOW_SLOW_CPU"


@dataclass(frozen=True)
class Estimate:
    runs: int
    what: str  # "trials", "seeds"
    epochs: int
    steps_per_epoch: int
    seconds_per_step: float

    @property
    def seconds(self) -> float:
        return self.runs * self.epochs * self.steps_per_epoch * self.seconds_per_step

    def __str__(self) -> str:
        return (f"{self.runs} {self.what} × {self.epochs} epochs × {self.steps_per_epoch:,} steps × "
                f"{self.seconds_per_step:.3g} s a step")


def allowed(settings: ComputeParams) -> bool:
    """The user asked to go on whatever the estimate: in params.yaml or in the environment."""
    env = os.environ.get(ALLOW_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return settings.allow_slow_cpu or env


def check(settings: ComputeParams, stage: str, family: Family, train: Split, hp: Strict,
          runs: int | Callable[[], int], epochs: int, what: str = "trials") -> Estimate | None:
    """Estimate the stage's training time on this CPU and stop (a UserError: one line, exit 2) when it is
    over the limit; prints the estimate when it is not. Does nothing with a GPU, for a family that does not
    train in steps, with nothing to train (`runs` 0), or when the user allowed a slow run (then nothing is
    timed either). `runs` may be a function: counting them can take a look at the tuning storage, not
    worth taking with a GPU."""
    if allowed(settings) or int(family.runtime().get("gpus", 0)):
        return None
    runs = runs() if callable(runs) else runs
    if runs < 1:
        return None
    timing = family.time_steps(train, hp, settings.timed_steps)
    if timing is None:
        return None
    estimate = Estimate(runs, what, epochs, timing.steps_per_epoch, timing.seconds_per_step)
    took = duration(estimate.seconds)
    if estimate.seconds > settings.cpu_limit_hours * 3600:
        raise UserError(f"{stage}: no GPU visible, and on this CPU the stage would take about {took} ({estimate}), "
                        f"over compute.cpu_limit_hours ({settings.cpu_limit_hours:g} h). For a run sized for a CPU: "
                        f"make cpu. To go on anyway: -S compute.allow_slow_cpu=true (or set it in params.yaml), "
                        f"or {ALLOW_ENV}=1 (also for a stage whose trials GPU workers elsewhere train)")
    print(f"{stage}: no GPU visible; on this CPU about {took} ({estimate})", flush=True)
    return estimate
