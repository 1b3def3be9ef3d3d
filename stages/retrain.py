"""retrain@<model>: train the tuned best config once per seed, with early stopping on validation.

Saves models/<model>/seed_<s>/ (reloads in a fresh process), per-epoch history for `dvc plots`,
and logs the first seed's model to MLflow as a pyfunc registered as `<prefix><model>`.
"""

import argparse

from imdbclf import atomic, data, families, model_registry, outputs, params, retraining, sizing, tracking
from imdbclf.ops import cpu_guard
from imdbclf.ops.stage import stage


@stage("retrain@{}")
def main(model: str) -> str:
    p = params.load()
    section = p.model(model)
    best = atomic.read_json(outputs.tune_best(model))
    hp = families.hyperparameters(model, section, best["config"])
    train, val = data.load_split("train"), data.load_split("val")
    tracking.check_store(p)  # a store that is down or damaged is named before minutes of work
    sized, epochs = sizing.sized(hp, section.retrain.epochs, len(train), p.sizing)
    cpu_guard.check(p.compute, f"retrain@{model}", families.create(model, section), train, sized,
                    len(section.retrain.seeds), epochs, what="seeds")
    logged = {"model": model, "family": section.family, "retrain": section.retrain.model_dump(),
              "model_config": section.model, "best": best["config"]}
    registered = p.tracking.registered_model_prefix + model
    with tracking.stage_run(p, f"retrain@{model}", logged):
        datasets = tracking.split_datasets(train, val)
        runs = []
        for seed in section.retrain.seeds:
            with tracking.child_run(f"{model}-seed-{seed}", "seed", {"seed": str(seed)}):
                tracking.log_datasets(datasets)
                print(f"retrain@{model}: seed {seed} {best['config']}")
                _, history, run = retraining.train_seed(model, section, hp, seed, train, val, p.selection,
                                                                p.sizing)
                tracking.log_metrics(run)
            runs.append(run)
            if len(runs) == 1:  # the first seed's curves and model are the ones shown and registered
                atomic.write_csv(retraining.history_frame(history), outputs.history(model))
                tracking.log_artifact(outputs.history(model))
                version = model_registry.register(outputs.seed_dir(model, seed), registered,
                                                  tracking.run_tags(f"retrain@{model}"))
        summary = retraining.retrain_summary(best["config"], runs, registered, version)
        atomic.write_json(outputs.retrain_metrics(model), summary)
        tracking.log_metrics({k: v for k, v in summary.items() if k in ("val_accuracy", "train_seconds")})
        tracking.log_metrics({f"val_{summary['metric']}": summary["val_score"]})
    shown = "" if summary["metric"] == "accuracy" else f"val_{summary['metric']} {summary['val_score']:.4f}, "
    return (f"{shown}val_accuracy {summary['val_accuracy']:.4f}; registered {registered} "
            f"version {summary['model_version']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a name from `models:` in params.yaml")
    main(parser.parse_args().model)
