"""retrain@<model>: train the tuned best config once per seed, with early stopping on validation.

Saves models/<model>/seed_<s>/ (reloads in a fresh process), per-epoch history for `dvc plots`,
and logs the first seed's model to MLflow as a pyfunc registered as `<prefix><model>`.
"""

import argparse
import functools
import time

import pandas as pd

from imdbclf import compute, console, failpoints, families, params, paths, registry, serving, tracking


@console.stage("retrain@{}")
def main(model: str) -> str:
    p = params.load()
    section = p.model(model)
    best = paths.read_json(paths.tune_metrics(model))["best"]
    hp = families.hyperparameters(model, section, best["config"])
    train, val = paths.load_split("train"), paths.load_split("val")
    tracking.check_store(p)  # a store that is down or damaged is named before minutes of work
    compute.check(p.compute, f"retrain@{model}", families.create(model, section), train, hp,
                  len(section.retrain.seeds), section.retrain.epochs, what="seeds")
    logged = {"model": model, "family": section.family, "retrain": section.retrain.model_dump(),
              "model_config": section.model, "best": best["config"]}

    def on_epoch_end(epoch: int, values: dict) -> None:
        tracking.log_metrics_at_step(epoch, values)
        failpoints.reached(f"retrain@{model}.epoch{epoch}")

    with tracking.stage_run(p, f"retrain@{model}", logged):
        datasets = tracking.split_datasets(train, val)
        runs = []
        for seed in section.retrain.seeds:
            family = families.create(model, section)
            paths.checkpoints(model, seed).mkdir(parents=True, exist_ok=True)
            with tracking.child_run(f"{model}-seed-{seed}", "seed", {"seed": str(seed)}):
                tracking.log_datasets(datasets)
                print(f"retrain@{model}: seed {seed} {best['config']}")
                started = time.perf_counter()
                history = family.fit(train, val, hp, families.FitOptions(
                    epochs=section.retrain.epochs, seed=seed, patience=section.retrain.patience,
                    checkpoint_dir=paths.checkpoints(model, seed), on_epoch_end=on_epoch_end))
                seconds = time.perf_counter() - started
                if family.resumed_from_epoch:  # an interrupted retrain with the same inputs left checkpoints
                    print(f"retrain@{model}: seed {seed} resumed after epoch {family.resumed_from_epoch} "
                          f"of {section.retrain.epochs}")
                    tracking.log_resumed(family.resumed_from_epoch, history)
                family.save(paths.seed_dir(model, seed))
                paths.discard_checkpoints(model, seed)  # saved: nothing resumes from them any more
                epoch = families.best_epoch(history)
                run = {"seed": seed, "best_epoch": epoch + 1, "epochs_run": len(history["val_accuracy"]),
                       "val_accuracy": history["val_accuracy"][epoch], "val_loss": history["val_loss"][epoch],
                       "train_seconds": seconds, "trainable_params": family.trainable_params(),
                       "resumed_from_epoch": family.resumed_from_epoch}  # train_seconds: since the resume
                tracking.log_metrics(run)
            runs.append(run)
            if len(runs) == 1:
                frame = pd.DataFrame(history)
                frame.insert(0, "epoch", range(1, len(frame) + 1))
                paths.write_csv(frame, paths.history(model))
                tracking.log_artifact(paths.history(model))
                registered = p.tracking.registered_model_prefix + model
                info = tracking.with_retries(functools.partial(  # a busy embedded store is retried
                    serving.log_model, paths.seed_dir(model, seed), registered))
                registry.tag_version(registered, info.registered_model_version, tracking.run_tags(f"retrain@{model}"))
        summary = {"config": best["config"], "seeds": runs,
                   "val_accuracy": sum(r["val_accuracy"] for r in runs) / len(runs),
                   "train_seconds": sum(r["train_seconds"] for r in runs) / len(runs),
                   "trainable_params": runs[0]["trainable_params"],
                   "registered_model": registered, "model_version": info.registered_model_version}
        paths.write_json(paths.retrain_metrics(model), summary)
        tracking.log_metrics({k: v for k, v in summary.items() if k in ("val_accuracy", "train_seconds")})
    return f"val_accuracy {summary['val_accuracy']:.4f}; registered {registered} version {summary['model_version']}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a name from `models:` in params.yaml")
    main(parser.parse_args().model)
