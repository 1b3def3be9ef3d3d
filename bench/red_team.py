"""The red team's probes of issue 24, re-run as a user would run them: each as its own process, with its
exit code, its last line, its wall time and its peak memory (the process and the children it waited
for). `python -m bench.red_team` runs the probes that need no services; with `--services DIR` (a folder
of `make services`, the member's exports in the environment, a pipeline run registered there) also the
team's: a member's forged digest, a reader's writes and exports, the served model's Parquet bomb.

Writes metrics/bench/red_team.json. Big inputs (gigabytes of text) are made compressed on the fly.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import REPO, free_port, make_project, write_result
from bench.probing import TEXT_MB, Drip, Planted, csv_gz_bomb, params_with, parquet_bomb, probe


def local_probes(tmp: Path) -> list[dict]:
    results = []
    base = yaml.safe_load((REPO / "params.yaml").read_text())

    def project(name: str, **changes) -> Path:
        root = make_project(tmp / name, base)
        params_with(root, **changes)
        return root

    # 4: a model name that is a shell command
    raw = copy.deepcopy(base)
    raw["models"] = ["x;touch PWNED;"]
    raw["x;touch PWNED;"] = copy.deepcopy(base["tfidf_logreg"])
    hostile = make_project(tmp / "p4", raw)
    results.append(probe("4 model name is a shell command: check-params", ["python", "-m", "stages.check_params"],
                         hostile))
    results.append(probe("4 model name is a shell command: bare dvc repro", ["dvc", "repro"], hostile))
    results[-1]["marker_appeared"] = any(hostile.rglob("PWNED"))
    results[-1]["held"] &= not results[-1]["marker_appeared"]

    # 5: a table whose texts and class names are HTML and Markdown, through the pipeline to the report
    results.append(hostile_report(tmp, base))

    # 6: a source URL with a login
    p6 = project("p6", **{"data.source": "https://alice:s3cret@example.org/texts.csv"})
    results.append(probe("6 source URL with user:password", ["python", "-m", "stages.check_params"], p6))
    results[-1]["password_shown"] = "s3cret" in results[-1]["last_line"]

    # 7: params.yaml that DVC would parse first
    p7 = make_project(tmp / "p7", base)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    (p7 / "params.yaml").write_text(bomb)
    results.append(probe("7 YAML alias bomb: make's check before dvc", ["python", "-m", "stages.check_params"], p7))
    (p7 / "params.yaml").write_text("models: [lstm]\n" + "# padding\n" * 5_500_000)  # 55 MB
    results.append(probe("7 a 55 MB params.yaml", ["python", "-m", "stages.check_params"], p7))
    p7b = project("p7b", **{"data.source": ""})
    results.append(probe("7 data.source empty", ["python", "-m", "stages.check_params"], p7b))

    return results + source_probes(tmp, project)


def source_probes(tmp: Path, project) -> list[dict]:
    """Sources that are too big, nested or slow, and a tracking server that drips or is none."""
    results = []
    # 8: tables that unpack past data.max_unpacked_mb (default 2048)
    for name, make in (("csv.gz", csv_gz_bomb), ("parquet", parquet_bomb)):
        source = make(tmp / f"bomb.{name}", TEXT_MB)
        p8 = project(f"p8-{name.split('.')[-1]}", **{"data.source": str(source), "data.format": "table"})
        results.append(probe(f"8 a {source.stat().st_size / 2**20:.1f} MB {name} holding {TEXT_MB / 1024:.0f} GB "
                             "of text: fetch", ["python", "-m", "stages.fetch"], p8))

    # 8/10: nested Parquet columns
    import pandas as pd

    nested = tmp / "nested.parquet"
    pd.DataFrame({"text": [{"a": "b"}, {"a": "c"}], "label": [["x"], ["y"]]}).to_parquet(nested)
    p10 = project("p10", **{"data.source": str(nested), "data.format": "table"})
    results.append(probe("10 nested Parquet text (a struct) and label (a list): fetch",
                         ["python", "-m", "stages.fetch"], p10))

    # 9: a source that drips, a tracking server that drips
    drip = Drip()
    p9 = project("p9", **{"data.source": drip.url("aclImdb_v1.tar.gz")})
    results.append(probe("9 a source dripping a byte every 2 s: fetch", ["python", "-m", "stages.fetch"], p9))
    results.append(probe("9 predict against a tracking server that drips", ["python", "-m", "imdbclf", "predict",
                         "hello"], p9, env={"MLFLOW_TRACKING_URI": drip.url("")}))
    drip.shutdown()

    # 10: a tracking URI of no store
    results.append(probe("10 MLFLOW_TRACKING_URI=gopher://x predict", ["python", "-m", "imdbclf", "predict", "hi"],
                         p9, env={"MLFLOW_TRACKING_URI": "gopher://x"}))
    return results


HOSTILE_CLASSES = ["<script>alert(1)</script>", "[x](javascript:alert(2))", "a|b\nc"]
HOSTILE_TEXT = "<img src=x onerror=alert(3)> ![t](https://tracker.example/p.png) [click](javascript:alert(4)) "


def hostile_report(tmp: Path, base: dict) -> dict:
    import random
    import re

    import pandas as pd

    rng = random.Random(0)
    words = [["alpha", "beta", "gamma"], ["delta", "epsilon", "zeta"], ["eta", "theta", "iota"]]
    rows = [{"text": HOSTILE_TEXT + " ".join(rng.choices(words[c], k=6)), "label": HOSTILE_CLASSES[c]}
            for c in range(3) for _ in range(40)]
    table = tmp / "hostile.csv"
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(table, index=False)
    raw = dict(base, models=["tfidf_logreg"])
    root = make_project(tmp / "p5", raw)
    params_with(root, **{"data.source": str(table), "data.format": "table", "split.group_by": "none",
                         "tfidf_logreg.tune.grid": {"C": [1.0], "ngram_max": [1], "min_df": [1]}})
    result = probe("5 hostile texts and class names: dvc repro, then the report", ["dvc", "repro"], root,
                   env={"MLFLOW_TRACKING_URI": ""}, expect_ok=True)
    report = (root / "reports" / "report.md").read_text() if (root / "reports" / "report.md").exists() else ""
    tables = re.findall(r"((?:^\|.*\|$\n?)+)", report, re.M)
    ragged = [t for t in tables if len({len(re.findall(r"(?<!\\)\|", line)) for line in t.strip().split("\n")}) > 1]
    result.update(raw_html=bool(re.search(r"<(script|img)\b", report, re.I)),
                  live_links=bool(re.search(r"(?<!\\)\]\((javascript|https://tracker)", report)),
                  tables=len(tables), ragged_tables=len(ragged))
    result["held"] &= bool(report) and not (result["raw_html"] or result["live_links"] or ragged)
    print(f"    report: raw HTML {result['raw_html']}, live links {result['live_links']}, "
          f"{len(tables)} tables, {len(ragged)} ragged")
    return result


def team_probes(services_dir: Path, project: Path, tmp: Path) -> list[dict]:
    """Against running services: the member's env is this process's (MLFLOW_TRACKING_*), `project` a
    workspace whose pipeline registered a champion there."""
    import requests
    from mlflow.tracking import MlflowClient

    from imdbclf import integrity, model_registry
    from imdbclf.ops import services

    results = []
    env = dict(os.environ)
    uri, ca = env["MLFLOW_TRACKING_URI"], env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    member = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    client = MlflowClient()
    champion = client.get_model_version_by_alias("imdb-champion", "champion")

    # 1: a member replaces the champion's python_model.pkl and rewrites the digest tag to match
    marker = tmp / "PWNED"
    payload = pickle.dumps(Planted(str(marker)))
    location = client.get_logged_model(model_registry.logged_model_id(champion)).artifact_location
    path = f"{uri}/api/2.0/mlflow-artifacts/artifacts/{location.removeprefix('mlflow-artifacts:/')}/python_model.pkl"
    original = requests.get(path, auth=member, verify=ca, timeout=60).content
    put = requests.put(path, data=payload, auth=member, verify=ca, timeout=60)
    manifest = json.loads(champion.tags[integrity.TAG])
    old_manifest = champion.tags[integrity.TAG]
    manifest["python_model.pkl"] = hashlib.md5(payload).hexdigest()  # noqa: S324 - what the tag records
    client.set_model_version_tag(champion.name, champion.version, integrity.TAG, json.dumps(manifest, sort_keys=True))
    results.append(probe("1 member's planted pickle + rewritten digest tag: predict", ["python", "-m", "imdbclf",
                         "predict", "a fine film"], project))
    results[-1].update(put_status=put.status_code, marker_appeared=marker.exists())
    results[-1]["held"] &= not marker.exists()
    requests.put(path, data=original, auth=member, verify=ca, timeout=60)  # put things back
    client.set_model_version_tag(champion.name, champion.version, integrity.TAG, old_manifest)

    # 2 and 3: a read-only login
    reader = services.add_member(services.Config(root=services_dir), "redteam-reader", read_only=True)
    api = f"{uri}/api/2.0"
    writes = {
        "create experiment": ("POST", f"{api}/mlflow/experiments/create", {"name": "readers-own"}),
        "create registered model imdb-championx": ("POST", f"{api}/mlflow/registered-models/create",
                                                    {"name": "imdb-championx"}),
        "create run": ("POST", f"{api}/mlflow/runs/create", {"experiment_id": "0"}),
        "5 MB artifact PUT": ("PUT", f"{api}/mlflow-artifacts/artifacts/0/planted/artifacts/big.bin", None),
        "move the champion alias": ("POST", f"{api}/mlflow/registered-models/alias",
                                    {"name": "imdb-champion", "alias": "champion", "version": champion.version}),
    }
    for what, (method, url, body) in writes.items():
        answer = requests.request(method, url, json=body, data=bytes(5 << 20) if method == "PUT" else None,
                                  auth=reader.member, verify=ca, timeout=60)
        results.append({"probe": f"2 reader: {what}", "exit": answer.status_code, "held": answer.status_code == 403,
                        "last_line": answer.text[:200]})
        print(f"{'ok ' if answer.status_code == 403 else 'BAD'} 2 reader: {what}: HTTP {answer.status_code}")
    exports = reader.env()
    results.append({"probe": "3 reader's exports", "held": "IMDBCLF_TUNING_STORAGE" not in exports,
                    "last_line": ", ".join(sorted(exports))})
    print(f"{'ok ' if results[-1]['held'] else 'BAD'} 3 reader's exports: {results[-1]['last_line']}")

    # 8: the served model and a Parquet body that unpacks to 1 GB
    results.append(served_parquet_bomb(project, tmp))
    return results


def served_parquet_bomb(project: Path, tmp: Path) -> dict:
    import io

    import pandas as pd
    import psutil
    import requests

    port = free_port()
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 - the server's log, read below
    server = subprocess.Popen(["python", "-m", "imdbclf", "serve", "--port", str(port)], cwd=project,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(120):
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(1)
        body = io.BytesIO()
        pd.DataFrame({"text": ["x" * (1 << 20)] * 1024}).to_parquet(body, compression="zstd")
        started = time.monotonic()
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", data=body.getvalue(), timeout=120,
                               headers={"Content-Type": "application/vnd.apache.parquet"})
        bad = requests.post(f"http://127.0.0.1:{port}/invocations", data=b"text\n\"open", timeout=60,
                            headers={"Content-Type": "text/csv"})
        rss = sum(p.memory_info().rss for p in [psutil.Process(server.pid), *psutil.Process(server.pid).children(True)])
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    logged = (tmp / "serve.log").read_text()
    result = {"probe": f"8 served model: a {len(body.getvalue()) / 1024:.0f} kB Parquet body holding 1 GB of text",
              "exit": answer.status_code, "seconds": round(time.monotonic() - started, 1),
              "server_rss_mb": round(rss / 2**20), "last_line": answer.text[:200],
              "bad_csv_status": bad.status_code, "asgi_errors_in_log": logged.count("Exception in ASGI application")}
    result["held"] = answer.status_code == 413 and bad.status_code == 400 and not result["asgi_errors_in_log"]
    print(f"{'ok ' if result['held'] else 'BAD'} {result['probe']}: HTTP {answer.status_code}, server "
          f"{result['server_rss_mb']} MB, ASGI errors in its log: {result['asgi_errors_in_log']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=Path, help="a `make services` folder: run the team's probes too")
    parser.add_argument("--project", type=Path, help="with --services: the workspace whose run registered the "
                        "champion there (default: the current directory)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="red-team-"))
    try:
        results = []
        if args.services:
            results += team_probes(args.services.resolve(), (args.project or Path.cwd()).resolve(), tmp)
        team_env = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                    "MLFLOW_TRACKING_SERVER_CERT_PATH", "IMDBCLF_TUNING_STORAGE")
        for key in team_env:  # the local probes run against their own embedded stores
            os.environ.pop(key, None)
        results += local_probes(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    held = sum(r["held"] for r in results)
    print(f"{held} of {len(results)} probes held")
    write_result("red_team", {"probes": results, "held": held, "total": len(results)})
    sys.exit(0 if held == len(results) else 1)


if __name__ == "__main__":
    main()
