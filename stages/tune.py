"""tune@<model>: search the model's grid (ofat or full grid); every trial is a child MLflow run.

Trials train on the training split (optionally a stratified subsample) and are scored on the
validation split at their best epoch. Finished trials are reused while nothing they depend on
changed, so an interrupted tune resumes instead of starting over.
"""

import argparse
import time

from imdbclf import failpoints, families, params, paths, tracking, tuning
from imdbclf.errors import exit_on_user_error


@exit_on_user_error
def main(model: str) -> None:
    p = params.load()
    section = p.model(model)
    tune = section.tune
    train = paths.load_split("train")
    val = paths.load_split("val")
    trial_train = train.subsample(tune.max_train, tune.seed, f"{model}.tune.max_train")
    family = families.create(model, section)
    key = tuning.trial_key(family, section, [paths.prepared("train"), paths.prepared("val")])

    def train_trial(number: int, config: dict):
        hp = families.hyperparameters(model, section, config)
        with tracking.child_run(f"{model}-trial-{number}", {"trial": str(number)}) as run:
            tracking.log_params(config)
            print(f"tune@{model}: trial {number} {config}")
            started = time.perf_counter()
            history = family.fit(trial_train, val, hp, families.FitOptions(
                epochs=tune.epochs, seed=tune.seed, on_epoch_end=tracking.log_metrics_at_step))
            seconds = time.perf_counter() - started
            failpoints.reached(f"tune@{model}.trial{number}")
            best = families.best_epoch(history)
            tracking.log_metrics({"best_val_accuracy": history["val_accuracy"][best],
                                  "best_val_loss": history["val_loss"][best], "best_epoch": best + 1,
                                  "seconds": seconds})
            return history["val_accuracy"][best], history["val_loss"][best], seconds, run.info.run_id, history

    logged = {"model": model, "family": section.family, "tune": tune.model_dump(), "model_config": section.model}
    study_file = paths.study_storage(model)
    with tracking.stage_run(p, f"tune@{model}", logged), tuning.study_file_errors(study_file):
        storage = tuning.open_storage(study_file)
        search = tuning.Search(tuning.open_study(storage, model, tune.grid), tune.grid, key, train_trial,
                               tuning.finished_trials(storage, key))
        results = search.run(tune.strategy)
        for result in results:
            if result.reused:
                tracking.log_reused_trial(model, result)
        summary = tuning.summary(tune.strategy, results)
        paths.write_json(paths.tune_metrics(model), summary)
        tracking.log_metrics({"best_val_accuracy": summary["best"]["val_accuracy"], "trials": len(results),
                              "reused_trials": sum(r.reused for r in results)})
        tracking.log_params({f"best.{k}": v for k, v in summary["best"]["config"].items()})
        tracking.log_dict(summary, "tune.json")
        print(f"tune@{model}: best {summary['best']['config']} val_accuracy {summary['best']['val_accuracy']:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a name from `models:` in params.yaml")
    main(parser.parse_args().model)
