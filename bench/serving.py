"""The registered models behind `mlflow models serve` (one uvicorn worker, --env-manager local), on
loopback: latency of single-review requests (p50/p95) and throughput of 100-review batches, from one
client and from 4 concurrent clients, for the TF-IDF and the Bi-LSTM model. The models are trained by
the pipeline itself (`dvc repro` up to retrain, in a scratch copy of the project) on a subsample of
the real archive; requests carry real test reviews. Bounded loops: a fixed number of requests each.
Writes metrics/bench/serving.json."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from bench.common import REPO, archive, free_port, make_project, run, with_overrides, write_result

SETTINGS = {  # the bench's overrides of params.yaml, recorded with the result
    "models": ["tfidf_logreg", "lstm"],
    "split.max_train": 4000, "split.max_val": 1000, "split.max_test": 1000,
    "tfidf_logreg.tune.grid": {"C": [16.0], "ngram_max": [2], "min_df": [2]},
    "lstm.tune.epochs": 1, "lstm.tune.grid": {"optimizer": ["adam"], "batch_size": [64], "learning_rate": [2e-3]},
    "lstm.retrain.epochs": 2, "lstm.retrain.patience": 1,
}
SINGLE_REQUESTS = 200  # single-review requests per measurement (sequential; and in all, over 4 clients)
BATCH, BATCH_REQUESTS = 100, 40  # reviews per batch request; batch requests per measurement
CLIENTS, WARMUP = 4, 5


def bench_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = str(archive())
    return with_overrides(params, SETTINGS)


class Client:
    """One keep-alive HTTP connection to the scoring server, as a client would hold it."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def score(self, texts: list[str]) -> float:
        """Send one request; return its latency in seconds (the whole answer read and checked)."""
        body = json.dumps({"dataframe_records": [{"text": t} for t in texts]})
        started = time.perf_counter()
        self.connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        answer = response.read()
        seconds = time.perf_counter() - started
        if response.status != 200 or len(json.loads(answer)["predictions"]) != len(texts):
            raise RuntimeError(f"HTTP {response.status}: {answer[:500]!r}")
        return seconds


def measure(port: int, requests: list[list[str]], clients: int) -> dict:
    """Send `requests` from `clients` threads (each its own connection, its share of the requests in a
    bounded loop); latency percentiles per request, and requests and reviews per second overall."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    shares = [requests[i::clients] for i in range(clients)]
    connections = [Client(port) for _ in range(clients)]

    def work(client: Client, share: list[list[str]]) -> None:
        try:
            latencies.extend(client.score(texts) for texts in share)
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(c, s)) for c, s in zip(connections, shares)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    ordered = sorted(latencies)

    def percentile(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)

    reviews = sum(len(texts) for texts in requests)
    return {"clients": clients, "requests": len(requests), "reviews": reviews,
            "p50_ms": percentile(0.50), "p95_ms": percentile(0.95),
            "requests_per_second": round(len(requests) / seconds, 1),
            "reviews_per_second": round(reviews / seconds, 1)}


def serve(project: Path, uri: str, port: int) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    server = subprocess.Popen(["mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], cwd=project, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.perf_counter()
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return server, time.perf_counter() - started
        except OSError:
            pass
        if server.poll() is not None or time.perf_counter() - started > 300:
            server.kill()
            raise RuntimeError(f"mlflow models serve -m {uri} did not start")
        time.sleep(0.5)


def bench_model(project: Path, model: str, texts: list[str]) -> dict:
    version = json.loads((project / f"metrics/retrain/{model}.json").read_text())
    uri = f"models:/{version['registered_model']}/{version['model_version']}"
    port = free_port()
    server, startup = serve(project, uri, port)
    try:
        warm = Client(port)
        for i in range(WARMUP):
            warm.score(texts[i : i + 1])
            warm.score(texts[:BATCH])
        singles = [[texts[i % len(texts)]] for i in range(SINGLE_REQUESTS)]
        batches = [[texts[(i * BATCH + j) % len(texts)] for j in range(BATCH)] for i in range(BATCH_REQUESTS)]
        result = {"uri": uri, "val_accuracy": round(version["val_accuracy"], 4),
                  "server_start_seconds": round(startup, 1),
                  "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine
                  "single_review": {"sequential": measure(port, singles, 1),
                                    f"concurrent_{CLIENTS}": measure(port, singles, CLIENTS)},
                  f"batch_{BATCH}": {"sequential": measure(port, batches, 1),
                                     f"concurrent_{CLIENTS}": measure(port, batches, CLIENTS)}}
    finally:
        server.terminate()
        server.wait(timeout=30)
    return result


def table(models: dict) -> str:
    lines = ["| model | requests | clients | p50 ms | p95 ms | requests/s | reviews/s |",
             "|---|---|---|---|---|---|---|"]
    for model, result in models.items():
        for kind in ("single_review", f"batch_{BATCH}"):
            for figures in result[kind].values():
                lines.append(f"| {model} | {kind} | {figures['clients']} | {figures['p50_ms']} | {figures['p95_ms']} "
                             f"| {figures['requests_per_second']} | {figures['reviews_per_second']} |")
    return "\n".join(lines)


def main() -> None:
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "project", bench_params())
        started = time.perf_counter()
        run(["dvc", "repro", *(f"retrain@{model}" for model in SETTINGS["models"])], project,
            env={"MLFLOW_TRACKING_URI": ""}, stream=True)
        print(f"trained in {time.perf_counter() - started:.0f} s", flush=True)
        texts = pd.read_parquet(project / "data/prepared/test.parquet")["text"].tolist()
        models = {}
        for model in SETTINGS["models"]:
            models[model] = bench_model(project, model, texts)
            print(f"{model}: {json.dumps(models[model])}", flush=True)
    print(table(models))
    write_result("serving", {
        "server": "mlflow models serve --env-manager local, 1 uvicorn worker, 127.0.0.1 (loopback); "
                  "clients: threads in one process, one keep-alive connection each",
        "cpu_threads": os.cpu_count(), "warmup_requests": WARMUP, "models": models, "settings": SETTINGS,
    })


if __name__ == "__main__":
    main()
