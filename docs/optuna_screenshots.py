"""Screenshots of optuna-dashboard (`make optuna-ui`) for docs/tuning.md, in headless Chromium.

    python docs/optuna_screenshots.py --project path/to/workspace [--out docs]

starts `python -m imdbclf optuna-ui` in the project (so on the tuning storage its stages use), waits for
the dashboard's API, and writes into docs/ (--out): optuna-studies.png (the list of studies, one per
model and search), optuna-history.png (the study of --model: each trial's validation accuracy and the
best so far, hyperparameter importance), optuna-relationships.png (its hyperparameters against
validation accuracy: slice, contour, rank) and, when a study has pruned trials, optuna-pruned.png (that
study: its trials' per-epoch validation accuracy, the pruned ones stopped early).

Needs Debian's `chromium` and playwright (pip install -r docs/requirements.txt), as docs/screenshots.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from devkit.helpers import free_port  # noqa: E402

WINDOW = {"width": 1600, "height": 1000}


def get(url: str):
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def start(project: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "imdbclf", "optuna-ui", "--port", str(port)], cwd=project,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: optuna-ui exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            get(f"http://127.0.0.1:{port}/api/studies")
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit(f"error: optuna-ui did not answer on port {port} within 120 s")


def shoot(page, url: str, path: Path, ready: str, scroll_to: str | None = None) -> None:
    """Open `url`, wait until `ready` shows (a heading of the page) and the plots have drawn, scroll the
    heading `scroll_to` to the top, screenshot."""
    page.goto(url)
    try:
        page.locator(f"text={ready}").locator("visible=true").first.wait_for(timeout=60_000)
        page.wait_for_timeout(4000)  # the plots render after their data arrives
        if scroll_to:
            heading = page.get_by_text(scroll_to, exact=True).locator("visible=true").first
            heading.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(1500)
    except Exception:
        page.screenshot(path=str(path.with_suffix(".failed.png")))
        raise
    page.screenshot(path=str(path))
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the workspace (default: here)")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go (default: docs/)")
    parser.add_argument("--model", default="tfidf_logreg", help="whose study the history and parallel plots show "
                        "(the one of its studies with the most completed trials)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args.out.mkdir(parents=True, exist_ok=True)
    proc = start(args.project, port, args.out / ".optuna-ui.log")
    try:
        studies = get(f"{base}/api/studies")["study_summaries"]
        details = {s["study_id"]: get(f"{base}/api/studies/{s['study_id']}") for s in studies}
        completed = {i: sum(t["state"] == "Complete" for t in d["trials"]) for i, d in details.items()}
        mine = [s for s in studies if s["study_name"].startswith(f"{args.model}-")]
        if not mine:
            sys.exit(f"error: no study of {args.model} in {[s['study_name'] for s in studies]}")
        study = max(mine, key=lambda s: completed[s["study_id"]])["study_id"]
        pruned = [i for i, d in details.items() if any(t["state"] == "Pruned" for t in d["trials"])]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport=WINDOW)
            shoot(page, f"{base}/dashboard", args.out / "optuna-studies.png", studies[0]["study_name"])
            name = details[study]["name"]
            shoot(page, f"{base}/dashboard/studies/{study}", args.out / "optuna-history.png", name)
            shoot(page, f"{base}/dashboard/studies/{study}/analytics", args.out / "optuna-relationships.png", name)
            if pruned:
                target = max(pruned, key=lambda i: len(details[i]["trials"]))
                shoot(page, f"{base}/dashboard/studies/{target}", args.out / "optuna-pruned.png",
                      details[target]["name"], scroll_to="Intermediate values")
            browser.close()
    finally:
        proc.kill()
        proc.wait()
        (args.out / ".optuna-ui.log").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
