"""Start-up of the stages: the wall time of `python -m stages.<stage>` and of a `dvc repro` with nothing
to do, in the tests' tiny project (120 reviews; models tfidf_logreg and lstm, so that params.yaml
names a TensorFlow family). On that data a stage is almost all start-up: imports, params, MLflow.

    python -m bench.startup                       this checkout → metrics/bench/startup.json
    python -m bench.startup --before DIR          also DIR (e.g. `git archive <commit> | tar -x -C DIR`),
                                                  runs alternating with this checkout's
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import REPO, make_project, run, write_result
from devkit.helpers import tiny_params
from devkit.tiny_imdb import write_archive

COMMANDS = {
    "check-params": ["python", "-m", "stages.check_params"],
    "fetch": ["python", "-m", "stages.fetch"],
    "split": ["python", "-m", "stages.split"],
    "code@lstm": ["python", "-m", "stages.code", "lstm"],
    "evaluate@tfidf_logreg": ["python", "-m", "stages.evaluate", "tfidf_logreg"],
    "report": ["python", "-m", "stages.report"],
    "dvc repro (nothing to do)": ["dvc", "repro"],
}
ENV = {"MLFLOW_TRACKING_URI": "", "TF_USE_LEGACY_KERAS": "1"}


def project(where: Path, code: Path) -> Path:
    where.mkdir(parents=True)
    archive = write_archive(where / "aclImdb_v1.tar.gz", per_class=30)
    root = make_project(where / "repo", tiny_params(str(archive)), source=code)
    run(["dvc", "repro"], root, env=ENV)
    return root


def seconds(cmd: list[str], root: Path) -> float:
    started = time.perf_counter()
    result = run(cmd, root, env=ENV)
    took = time.perf_counter() - started
    assert cmd[0] != "dvc" or "Running stage" not in result.stdout, result.stdout
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="another checkout of the pipeline, measured alternately")
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (the median is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        codes = {"current": REPO, **({"before": args.before.resolve()} if args.before else {})}
        roots = {name: project(Path(tmp) / name, code) for name, code in codes.items()}
        times: dict[str, dict[str, list[float]]] = {name: {} for name in roots}
        for label, cmd in COMMANDS.items():
            for i in range(args.runs):
                for name in (list(roots) if i % 2 == 0 else list(reversed(roots))):
                    times[name].setdefault(label, []).append(seconds(cmd, roots[name]))
            for root in roots.values():  # a stage rewrote its outputs (reviews/s differs): back to the lock
                run(["dvc", "repro"], root, env=ENV)
    result = {"what": "wall seconds, median of runs, tiny test project (tests/helpers.tiny_params)",
              "runs": args.runs, "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}
    for name, by_command in times.items():
        result[name] = {label: round(statistics.median(values), 2) for label, values in by_command.items()}
    if args.before:
        result["before_code"] = str(args.before)
    write_result("startup", result)


if __name__ == "__main__":
    main()
