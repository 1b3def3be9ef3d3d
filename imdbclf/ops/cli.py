"""Command line of the package.

  python -m imdbclf predict "a review" ...   score reviews with the champion model (the registered
      champion in the MLflow store by default; --model takes a model directory such as
      models/lstm/seed_0, checked against the md5s in dvc.lock first, or any MLflow model URI such as
      models:/imdb-lstm@champion)
  python -m imdbclf serve [--model URI] [--port P]   check a registered version (the champion by
      default) against the digests tagged when it was registered, then serve it: MLflow's scoring app
      behind a guard on request size and error answers
  python -m imdbclf promote MODEL [--version N | --experiment NAME]   make a registered version of
      MODEL (the newest by default) the champion, e.g. one a queued experiment registered
  python -m imdbclf tune-worker MODEL   train the waiting tuning trials of MODEL, as a worker beside
      the tune stage (here or on another machine with the same data, code, tuning storage and MLflow
      server: export IMDBCLF_TUNING_STORAGE and MLFLOW_TRACKING_URI as `make services` prints them)
  python -m imdbclf convert-bert HF_DIR OUT_DIR   turn a local Hugging Face BERT-family checkpoint
      into TF Hub-format OUT_DIR/preprocessor and OUT_DIR/encoder, usable as handles in params.yaml
  python -m imdbclf ui [--host H] [--port P]   print the link to the experiment's runs, then start
      `mlflow ui` on the pipeline's store (`make mlflow-ui`); against a tracking server, only the link
  python -m imdbclf optuna-ui [--host H] [--port P]   print the link, then start optuna-dashboard on the
      tuning storage (`make optuna-ui`): the studies' history, hyperparameter plots, pruned trials
  python -m imdbclf services up|down|env   the team's PostgreSQL + mlflow server (`make services`;
      flags: python -m imdbclf services --help)
  python -m imdbclf cache [--clear [NAME ...]]   the disk used by the caches (tokenized splits, TF Hub
      downloads, retrain checkpoints; DVC's cache is shown too), and freeing them (`make clean-cache`)
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imdbclf.errors import UserError, exit_on_user_error
from imdbclf.ops import console, dashboards, failpoints

if TYPE_CHECKING:
    import pandas as pd


def predictor(model: str | None, trust: bool = False) -> Callable[[Sequence[str]], pd.DataFrame]:
    """A function texts → their predictions (`serving.predictions_frame`), from a model directory or the
    MLflow registry."""
    from imdbclf import families, model_registry, params, tracking

    if model and "://" not in model and os.path.lexists(model):
        try:
            Path(model).resolve(strict=True)
        except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop, in Python 3.11
            raise UserError(f"--model {model}: cannot open it ({str(err).splitlines()[0]})") from None
    if model and Path(model).is_dir():
        from imdbclf.serving import predictions_frame

        family = families.load_verified(Path(model), Path.cwd(), trust)
        return lambda texts: predictions_frame(family.predict_proba(texts), family.classes)
    import mlflow
    import pandas as pd

    p = params.load()
    experiment_id = tracking.setup(p)
    uri = model or model_registry.champion_uri(p.tracking.registered_model_prefix)
    source = uri
    try:
        if not trust:  # a checked copy of the version, removed when the process ends
            local = tempfile.mkdtemp(prefix="imdbclf-predict-")
            atexit.register(shutil.rmtree, local, ignore_errors=True)
            source = str(model_registry.download_verified(uri, Path(local), experiment_id))
        pyfunc = mlflow.pyfunc.load_model(source)
    except (mlflow.exceptions.MlflowException, OSError, RuntimeError) as err:
        raise UserError(f"cannot load model {uri}: {str(err).splitlines()[0]}") from None
    return lambda texts: pyfunc.predict(pd.DataFrame({"text": list(texts)}))


def serve_model(model: str | None, host: str, port: int, workers: int) -> None:
    """Check a registered version against its digest tag, then serve that verified copy: MLflow's scoring
    app behind a guard on request size and error messages (`imdbclf.ops.scoring`), with uvicorn as
    `mlflow models serve` runs it (this venv, no new environment). A planted artifact is never loaded."""
    from imdbclf import model_registry, params, tracking
    from imdbclf.ops import scoring
    from imdbclf.workspace import cache_dir

    p = params.load()
    experiment_id = tracking.setup(p)
    uri = model or model_registry.champion_uri(p.tracking.registered_model_prefix)
    cache_dir("served").mkdir(parents=True, exist_ok=True)  # a fresh clone has no .cache/ yet
    local = Path(tempfile.mkdtemp(prefix="served-", dir=cache_dir("served")))
    checked = model_registry.download_verified(uri, local, experiment_id)
    print(f"serving {uri} (checked against its digest tag) from {checked} on "
          f"{dashboards.browser_link(host, port)}/invocations", flush=True)
    os.environ.update({scoring.MODEL_PATH: str(checked),
                       scoring.MAX_REQUEST_BYTES: str(int(p.serving.max_request_mb * (1 << 20))),
                       scoring.MAX_ERROR_CHARS: str(p.serving.max_error_chars)})
    os.execv(sys.executable, [sys.executable, "-m", "uvicorn", "--factory", "imdbclf.ops.scoring:scoring_app",
                              "--host", host, "--port", str(port), "--workers", str(workers)])


def tune_worker(model: str, threads: int | None, idle_exit: float | None) -> None:
    """Join the model's studies in the tuning storage and train their waiting trials."""
    if threads:  # before TensorFlow loads: two workers on two cores must not each take both
        os.environ.update(OMP_NUM_THREADS=str(threads), TF_NUM_INTRAOP_THREADS=str(threads),
                          TF_NUM_INTEROP_THREADS="1")
    from imdbclf import params, tracking, tuning
    from imdbclf.tuning import workers

    p = params.load()
    url = tuning.storage_url(p.tuning)
    tracking.setup(p)
    runner = workers.TrialRunner(p, model, tuning.open_storage(url, p.tuning))
    print(f"tune-worker {model}: {runner.worker} on {tuning.redact_storage_url(url)}, key {runner.key}")
    with tuning.storage_errors(url):
        workers.serve(runner, idle_exit if idle_exit is not None else p.tuning.worker_idle_exit_s)
    print(f"tune-worker {model}: no trials for a while, stopping")


def _parser() -> argparse.ArgumentParser:
    """The command line's subcommands and their options (`services` only for the help: it has its own)."""
    parser = argparse.ArgumentParser(prog="python -m imdbclf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="score texts with a trained model")
    predict.add_argument("texts", nargs="*", help="texts to score")
    predict.add_argument("--file", type=Path, help="a file with one text per line")
    predict.add_argument("--model", help="a model directory or MLflow model URI (default: the champion)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument("--trust", action="store_true", help="load a --model directory that no dvc.lock records "
                         "(its files cannot be checked) even if its format can run code: you vouch for it")
    served = commands.add_parser("serve", help="check a registered model against its digest, then serve it with "
                                 "`mlflow models serve`")
    served.add_argument("--model", help="a registered version, models:/<name>@<alias> or models:/<name>/<version> "
                        "(default: the champion)")
    served.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    served.add_argument("--port", type=int, default=5001, help="its port (default: %(default)s)")
    served.add_argument("--workers", type=int, default=1, help="scoring processes (default: %(default)s)")
    promote = commands.add_parser("promote", help="make a registered model version the champion")
    promote.add_argument("model", help="a model name from params.yaml, e.g. lstm")
    which = promote.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="the registered version of <prefix><model> (default: newest)")
    which.add_argument("--experiment", help="the newest version registered by this DVC experiment")
    worker = commands.add_parser("tune-worker", help="train waiting tuning trials of a model")
    worker.add_argument("model", help="a model name from params.yaml, e.g. lstm")
    worker.add_argument("--threads", type=int, help="CPU threads for training (default: all cores)")
    worker.add_argument("--idle-exit", type=float, help="stop after this many seconds without trials "
                        "(default: tuning.worker_idle_exit_s)")
    convert = commands.add_parser("convert-bert", help="convert a Hugging Face BERT checkpoint to TF Hub format")
    convert.add_argument("hf_dir", type=Path, help="directory with config.json, model.safetensors, vocab.txt")
    convert.add_argument("out_dir", type=Path, help="where to write preprocessor/ and encoder/")
    commands.add_parser("services", help="start, stop or show the team's PostgreSQL + mlflow server")
    show = commands.add_parser("ui", help="print the link to the experiment's runs, then start `mlflow ui`")
    show.add_argument("--host", default="127.0.0.1", help="address for `mlflow ui` to listen on (default: %(default)s)")
    show.add_argument("--port", type=int, default=5000, help="its port (default: %(default)s)")
    dashboard = commands.add_parser("optuna-ui", help="print the link, then start optuna-dashboard on the tuning "
                                    "storage")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    dashboard.add_argument("--port", type=int, default=8080, help="its port (default: %(default)s)")
    compared = commands.add_parser("compare", help="the DVC experiments side by side: champion, each model's "
                                   "validation score and test accuracy, the settings that differ")
    compared.add_argument("--width", type=int, default=120, help="the terminal's columns (default: 120)")
    cache = commands.add_parser("cache", help="show the caches' sizes; --clear frees them")
    cache.add_argument("--clear", nargs="*", metavar="NAME",
                       help="delete these caches (all that may be freed when none is named); not while a stage runs")
    return parser


def _predict(args: argparse.Namespace) -> None:
    texts = list(args.texts)
    if args.file:
        if not args.file.exists():
            raise UserError(f"{args.file}: no such file")
        from imdbclf.data import decode_utf8

        texts += [line.strip() for line in decode_utf8(args.file.read_bytes(), str(args.file)).splitlines()
                  if line.strip()]
    if not texts:
        raise UserError("no texts given: pass them as arguments or with --file")
    from imdbclf.serving import InvalidInput, as_texts, predictions

    try:
        texts = as_texts(texts)  # the served model's checks: an empty review is a mistake, not a review
    except InvalidInput as err:
        raise UserError(err.reason) from None
    rows = predictions(texts, predictor(args.model, args.trust)(texts))
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        for row in rows:
            print(f"{row['probability']:.4f}\t{row['label']}\t{row['text'][:80]}")


def _serve(args: argparse.Namespace) -> None:
    serve_model(args.model, args.host, args.port, args.workers)


def _promote(args: argparse.Namespace) -> None:
    from imdbclf import model_registry, params, tracking

    p = params.load()
    tracking.setup(p)
    prefix = p.tracking.registered_model_prefix
    champion = model_registry.promote(prefix, args.model, args.version, args.experiment)
    print(f"{model_registry.champion_uri(prefix)} → {champion.tags['source_model']} "
          f"version {champion.tags['source_version']}")


def _tune_worker(args: argparse.Namespace) -> None:
    tune_worker(args.model, args.threads, args.idle_exit)


def _convert_bert(args: argparse.Namespace) -> None:
    from imdbclf import environment

    environment.use_legacy_keras()
    from imdbclf.ops.bert_converter import convert_bert

    preprocessor, encoder = convert_bert(args.hf_dir, args.out_dir)
    print(f"preprocessor: {preprocessor}\nencoder:      {encoder}")


def _services(argv: list[str]) -> None:
    from imdbclf.ops.services_cli import run_services_cli

    run_services_cli(argv)


def _ui(args: argparse.Namespace) -> None:
    dashboards.ui(args.host, args.port)


def _optuna_ui(args: argparse.Namespace) -> None:
    dashboards.optuna_ui(args.host, args.port)


def _compare(args: argparse.Namespace) -> None:
    from imdbclf.ops import experiments

    print(experiments.table(experiments.experiments(), args.width))


def _cache(args: argparse.Namespace) -> None:
    from imdbclf.ops import caches
    from imdbclf.workspace import project_root

    root = project_root()
    print(caches.show(root) if args.clear is None else caches.clear(root, args.clear))


COMMANDS = {"predict": _predict, "serve": _serve, "promote": _promote, "tune-worker": _tune_worker,
            "convert-bert": _convert_bert, "services": lambda args: _services([]), "ui": _ui,
            "optuna-ui": _optuna_ui, "compare": _compare, "cache": _cache}


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    console.quiet()
    failpoints.arm()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["services"]:  # a command line of its own, shared with `make services`
        return _services(argv[1:])
    args = _parser().parse_args(argv)
    COMMANDS[args.command](args)


if __name__ == "__main__":
    main()
