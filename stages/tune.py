"""tune@<model>: search the model's grid (ofat, grid or tpe); every trial is a child MLflow run.

Trials train on the training split (optionally a stratified subsample) and are scored on the
validation split at their best epoch. The configs go into Optuna studies in the shared tuning
storage, where `tune.workers` local worker processes (and any `python -m imdbclf tune-worker` on
other machines) train them; finished trials are reused while nothing they depend on changed, so an
interrupted tune resumes instead of starting over, and a queued experiment reuses the workspace's.
"""

import argparse

from imdbclf import compute, console, families, params, paths, tracking, tuning, workers


@console.stage("tune@{}")
def main(model: str) -> str:
    p = params.load()
    tune = p.model(model).tune
    url = tuning.storage_url(p.tuning)
    logged = {"model": model, "family": p.model(model).family, "tune": tune.model_dump(),
              "model_config": p.model(model).model, "tuning_storage": tuning.shown(url)}
    tracking.check_store(p)  # a store that is down or damaged is named before minutes of work
    storage = tuning.open_storage(url, p.tuning)
    runner = workers.TrialRunner(p, model, storage)
    # hours of training on a CPU: say so first (timed at the grid's first config, on what is left to train)
    first = families.hyperparameters(model, p.model(model), {k: v[0] for k, v in tune.grid.items()})

    def trials() -> int:
        with tuning.storage_errors(url):
            return tuning.trials_to_train(storage, model, runner.key, tune.strategy, tune.grid, tune.n_trials)

    compute.check(p.compute, f"tune@{model}", runner.family, runner.train, first, trials, tune.epochs)
    with tracking.stage_run(p, f"tune@{model}", logged) as run:
        tracking.log_datasets(runner.datasets)
        gpus = int(runner.family.runtime().get("gpus", 0))
        count = workers.local_worker_count(tune.workers, gpus)
        local = workers.start_local_workers(model, count, gpus, p.tuning.worker_idle_exit_s) if count > 1 else []
        print(f"tune@{model}: {tune.strategy} search, {count} local worker(s), studies in {tuning.shown(url)}")

        def on_phase(study) -> None:  # workers file their trials' runs under this stage's run
            study.set_user_attr(workers.PARENT_RUN, run.info.run_id)

        def work(study) -> bool:  # one worker: train here; several: they train while this stage waits
            return runner.run_one(study) if all(proc.poll() is not None for proc in local) else False

        try:
            with tuning.storage_errors(url):
                search = tuning.Search(storage, model, runner.key, tune.grid, p.tuning, work,
                                       lambda study: workers.reconcile(runner, study), tune.pruner,
                                       tune.pruner_args, tune.n_trials, tune.seed, on_phase)
                results = search.run(tune.strategy)
        finally:
            for proc in local:
                proc.terminate()
            for proc in local:
                proc.wait()
        for result in results:
            if result.reused:
                tracking.log_reused_trial(model, result, runner.datasets)
        summary = tuning.summary(tune.strategy, results)
        paths.write_json(paths.tune_metrics(model), summary)
        tracking.log_metrics({"best_val_accuracy": summary["best"]["val_accuracy"], "trials": len(results),
                              "reused_trials": sum(r.reused for r in results), "pruned_trials": summary["pruned"],
                              "epochs_trained": summary["epochs_trained"]})
        tracking.log_params({f"best.{k}": v for k, v in summary["best"]["config"].items()})
        tracking.log_dict(summary, "tune.json")
    return (f"best {summary['best']['config']} val_accuracy {summary['best']['val_accuracy']:.4f} "
            f"({len(results)} trials, {summary['pruned']} pruned, {sum(r.reused for r in results)} reused)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a name from `models:` in params.yaml")
    main(parser.parse_args().model)
