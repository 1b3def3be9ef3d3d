"""The two UIs of the pipeline, each after the link it opens at: `python -m imdbclf ui` (`mlflow ui` on
the pipeline's store, or only the link to a tracking server) and `python -m imdbclf optuna-ui`
(optuna-dashboard on the tuning storage)."""

from __future__ import annotations

import os
import sys


def ui(host: str, port: int) -> None:
    """Print the link that opens the experiment on its runs (the experiment is created if new, so
    that it has an id), then become `mlflow ui` on the pipeline's store. A tracking server is its
    own UI: then only its link is printed."""
    from imdbclf import params, tracking

    p = params.load()
    experiment_id = tracking.setup(p)
    uri = tracking.tracking_uri(p)
    if uri.startswith(("http://", "https://")):
        print(f"runs of {p.tracking.experiment}: {tracking.runs_link(uri, experiment_id)}")
        return
    link = tracking.runs_link(browser_link(host, port), experiment_id)
    print(f"runs of {p.tracking.experiment}: {link}", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,  # this venv's
                              "--default-artifact-root", str(tracking.artifact_root(uri)), "--host", host,
                              "--port", str(port)])


def browser_link(host: str, port: int) -> str:
    """The link a browser on this machine opens for a server listening on host:port."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"


def optuna_ui(host: str, port: int) -> None:
    """Print the link, then serve optuna-dashboard on the tuning storage (the journal file or the team's
    database, whichever the stages use): every model's studies, their history, hyperparameter plots,
    the pruned trials' curves."""
    from optuna_dashboard import run_server

    from imdbclf import params, tuning

    p = params.load()
    url = tuning.storage_url(p.tuning)
    storage = tuning.open_storage(url, p.tuning)
    print(f"studies in {tuning.redact_storage_url(url)}: {browser_link(host, port)}/dashboard", flush=True)
    run_server(storage, host=host, port=port)
