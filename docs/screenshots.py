"""Screenshots of the MLflow UI for the README, taken in headless Chromium from any store.

    python docs/screenshots.py --store sqlite:///path/to/mlflow.db --artifacts path/to/mlartifacts

starts `mlflow ui` on a free loopback port against the store, waits for /health, and writes into
docs/ (--out): runs.png (the experiment opened by the link that `make mlflow-ui` prints, on its
runs), trials.png (a tune@<model> run expanded to its trial children), compare.png (those trials
compared: hyperparameters against validation accuracy), champion.png (the registered model that
holds the `champion` alias). The experiment is the one named in params.yaml (--experiment); the
tuned model is the tune run with the most trials (--model to choose one).

It needs Debian's `chromium` (apt-get install chromium) and playwright (pip install -r
docs/requirements.txt), which drives that Chromium: no browser is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import requests
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devkit.helpers import free_port  # noqa: E402
from imdbclf.tracking import runs_link  # noqa: E402 - the link that `make mlflow-ui` prints

WINDOW = {"width": 1600, "height": 1000}
METRIC = "best_val_accuracy"  # what a trial scores: validation accuracy at its best epoch


def start_ui(store: str, artifacts: Path, port: int, log: Path) -> subprocess.Popen:
    """`mlflow ui` on the store, as `make mlflow-ui` starts it, once /health answers."""
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--default-artifact-root",
           str(artifacts.resolve()), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: mlflow ui exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(proc)
    sys.exit(f"error: mlflow ui did not answer on port {port} within 120 s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)  # its own session: the server and its workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def tuned_run(client: MlflowClient, experiment_id: str, model: str | None) -> tuple[Run, list[Run]]:
    """The newest tune@<model> stage run with the most trial children (of `model`, if given)."""
    stage = f"tune@{model}" if model else "tune@%"
    parents = client.search_runs([experiment_id], f"tags.`dvc.stage` LIKE '{stage}' and tags.run_type = 'stage' "
                                 "and attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"])
    best: tuple[Run, list[Run]] | None = None
    for parent in parents:
        children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                      max_results=500)
        if best is None or len(children) > len(best[1]):
            best = (parent, children)
    if best is None or not best[1]:
        sys.exit(f"error: no finished {stage} run with trial children in experiment {experiment_id}")
    return best


def champion_model(client: MlflowClient) -> str:
    """The registered model that holds the `champion` alias."""
    holders = [m.name for m in client.search_registered_models() if "champion" in (m.aliases or {})]
    if not holders:
        sys.exit("error: no registered model has the alias `champion` (run the report stage)")
    return sorted(holders, key=lambda name: not name.endswith("champion"))[0]


def close_assistant(page) -> None:
    """MLflow 3.17 opens its Assistant panel beside every page; it hides half the table."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count():
        close.first.click()
        page.wait_for_timeout(500)


def shoot(page, url: str, path: Path, ready: str, prepare=None) -> None:
    """Open `url`, wait until `ready` (text) shows and the rest has loaded, then screenshot it."""
    page.goto(url)
    try:
        page.get_by_text(ready, exact=False).first.wait_for(timeout=60_000)
        page.wait_for_timeout(2000)  # the rest of the page's requests; the UI polls, so it is never idle
        close_assistant(page)
        if prepare:
            prepare(page)
            page.wait_for_timeout(2000)
    except Exception:
        page.screenshot(path=str(path.with_suffix(".failed.png")))  # what the page showed instead
        raise
    page.screenshot(path=str(path))
    print(f"{path}")


def show_trials(page, stage: str, run_name: str, columns: list[str]) -> None:
    """The runs table filtered to one tune stage (its trials carry its dvc.stage tag), the stage's run
    expanded to its trial children; `columns` toggled (Source and Models off, to make room for the
    trials' hyperparameters and best validation accuracy)."""
    search = page.get_by_test_id("search-box")
    search.fill(f"tags.`dvc.stage` = '{stage}'")
    search.press("Enter")
    page.wait_for_timeout(2000)
    page.get_by_role("row").filter(has_text=run_name).first.get_by_role("button").first.click()
    page.wait_for_timeout(1000)
    for column in columns:
        page.get_by_role("button", name="Columns", exact=True).click()
        page.get_by_placeholder("Search columns").fill(column)
        page.wait_for_timeout(500)
        # an item's label is its whole name (the search match in bold): the one that is exactly `column`
        items = page.locator('[data-component-id="mlflow.experiment_page.runs_table.column_selector"] '
                             "span[title] > span > span")
        items.filter(has_text=re.compile(f"^{re.escape(column)}$")).first.click()
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)


def choose(page, index: int, wanted: list[str]) -> None:
    """Set the compare page's index-th picker (0: parameters, 1: metrics) to exactly `wanted`."""
    picker = page.locator(".du-bois-light-select").nth(index)
    for chip in picker.locator(".du-bois-light-select-selection-item").all():
        if chip.inner_text().strip() not in wanted:
            chip.locator(".du-bois-light-select-selection-item-remove").click()
    chosen = {c.inner_text().strip() for c in picker.locator(".du-bois-light-select-selection-item").all()}
    for name in wanted:
        if name not in chosen:
            picker.locator("input").focus()  # not a click: the middle of the picker may be a chip's ×
            page.keyboard.type(name)
            page.locator(f".du-bois-light-select-item-option[title='{name}']").first.click()
    page.keyboard.press("Escape")


def show_parallel_coordinates(page, hyperparameters: list[str], metric: str) -> None:
    choose(page, 0, hyperparameters)
    choose(page, 1, [metric])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="backend store URI, e.g. sqlite:///mlflow.db")
    parser.add_argument("--artifacts", type=Path, required=True, help="the store's artifact folder (mlartifacts)")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go (default: docs/)")
    parser.add_argument("--experiment", help="experiment name (default: tracking.experiment in params.yaml)")
    parser.add_argument("--model", help="the model whose tuning to show (default: the one with the most trials)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the Chromium binary (default: %(default)s)")
    args = parser.parse_args()
    experiment_name = args.experiment or yaml.safe_load((REPO / "params.yaml").read_text())["tracking"]["experiment"]
    if not Path(args.chromium).exists():
        sys.exit(f"error: {args.chromium}: no Chromium (apt-get install chromium)")

    from playwright.sync_api import sync_playwright

    client = MlflowClient(tracking_uri=args.store, registry_uri=args.store)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        sys.exit(f"error: no experiment {experiment_name!r} in {args.store}")
    tune, trials = tuned_run(client, experiment.experiment_id, args.model)
    champion = champion_model(client)
    args.out.mkdir(parents=True, exist_ok=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_ui(args.store, args.artifacts, port, Path(tmp) / "mlflow-ui.log")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport=WINDOW)
                runs = runs_link(base, experiment.experiment_id)
                shoot(page, runs, args.out / "runs.png", tune.info.run_name)
                hyperparameters = sorted({k for t in trials for k in t.data.params})
                shoot(page, runs, args.out / "trials.png", tune.info.run_name,
                      lambda page: show_trials(page, tune.data.tags["dvc.stage"], tune.info.run_name,
                                               ["Source", "Models", *hyperparameters, METRIC]))
                ids = json.dumps([t.info.run_id for t in trials])
                compare = (f"{base}/#/compare-runs?runs={urllib.parse.quote(ids)}"
                           f"&experiments={urllib.parse.quote(json.dumps([experiment.experiment_id]))}"
                           "&workflowType=machine_learning")
                shoot(page, compare, args.out / "compare.png", "Parallel Coordinates",
                      lambda page: show_parallel_coordinates(page, hyperparameters, METRIC))
                shoot(page, f"{base}/#/models/{urllib.parse.quote(champion)}?workflowType=machine_learning",
                      args.out / "champion.png", "champion")
                browser.close()
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
