"""tune@<model>: search the model's grid (ofat, grid or tpe); every trial is a child MLflow run.

Trials train on the training split (optionally a stratified subsample) and are scored on the
validation split at their best epoch. The configs go into Optuna studies in the shared tuning
storage, where `tune.workers` local worker processes (and any `python -m imdbclf tune-worker` on
other machines) train them; finished trials are reused while nothing they depend on changed, so an
interrupted tune resumes instead of starting over, and a queued experiment reuses the workspace's.
Writes the whole search (metrics/tune/<model>.json) and, apart, the chosen config (metrics/best/
<model>.json): retrain depends on that alone, so a tune that changed only its bookkeeping retrains nothing.
"""

import argparse
import sys

from imdbclf import atomic, families, outputs, params, sizing, tracking, tuning
from imdbclf.ops import cpu_guard
from imdbclf.ops.stage import stage
from imdbclf.tuning import run as tuning_run
from imdbclf.tuning import workers

# Local workers (tune.workers > 1) are the command line's `tune-worker` (imdbclf/ops/cli.py): named here,
# at the entry point, so the core starts no command of the operations layer.
WORKER_COMMAND = (sys.executable, "-m", "imdbclf", "tune-worker")


@stage("tune@{}")
def main(model: str) -> str:
    p = params.load()
    section = p.model(model)
    tune = section.tune
    url = tuning.storage_url(p.tuning)
    tracking.check_store(p)  # a store that is down or damaged is named before minutes of work
    runner = workers.TrialRunner(p, model, tuning.open_storage(url, p.tuning))
    # hours of training on a CPU: say so first (timed at the grid's first config, on what is left to train)
    first, epochs = sizing.sized(families.hyperparameters(model, section, {k: v[0] for k, v in tune.grid.items()}),
                                 tune.epochs, len(runner.train), p.sizing)
    cpu_guard.check(p.compute, f"tune@{model}", runner.family, runner.train, first,
                    lambda: tuning_run.trials_to_train(runner, url), epochs)
    logged = {"model": model, "family": section.family, "tune": tune.model_dump(), "model_config": section.model,
              "tuning_storage": tuning.redact_storage_url(url)}
    with tracking.stage_run(p, f"tune@{model}", logged) as run:
        tracking.log_datasets(runner.datasets)
        results = tuning_run.search(runner, url, run.info.run_id, WORKER_COMMAND)
        for result in results:
            if result.reused:
                tracking.log_reused_trial(model, result, runner.datasets)
        summary = tuning.search_summary(tune.strategy, results)
        atomic.write_json(outputs.tune_metrics(model), summary)
        atomic.write_json(outputs.tune_best(model), tuning.best_choice(runner.key, results))
        best = summary["best"]
        tracking.log_metrics({"best_val_accuracy": best["val_accuracy"],
                              f"best_val_{best['metric']}": best["val_score"], "trials": len(results),
                              "reused_trials": sum(r.reused for r in results), "pruned_trials": summary["pruned"],
                              "epochs_trained": summary["epochs_trained"]})
        tracking.log_params({f"best.{k}": v for k, v in summary["best"]["config"].items()})
        tracking.log_dict(summary, "tune.json")
    shown = "" if best["metric"] == "accuracy" else f"val_{best['metric']} {best['val_score']:.4f}, "
    return (f"best {best['config']} {shown}val_accuracy {best['val_accuracy']:.4f} "
            f"({len(results)} trials, {summary['pruned']} pruned, {sum(r.reused for r in results)} reused)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a name from `models:` in params.yaml")
    main(parser.parse_args().model)
