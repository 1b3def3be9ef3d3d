"""End to end: a tiny aclImdb archive through `dvc repro` in a fresh git repo, checked via outputs,
the MLflow store, a no-op second repro, and a `dvc exp run -S` that reruns only from tune on."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from devkit.helpers import FRESH_SHELL, NOISE, free_port, make_project, readme, tiny_params, wait_until  # noqa: F401
from devkit.helpers import run_pipeline as run
from devkit.tiny_hub import write_encoder, write_preprocessor
from devkit.tiny_imdb import write_archive

pytestmark = pytest.mark.slow  # end to end: dvc repro of a tiny project

# Records, at exit, whether a Python process of the first repro loaded TensorFlow.
AUDIT = """import atexit, json, os, sys
def _record():
    with open(os.environ["IMDBCLF_TEST_AUDIT"], "a") as f:
        f.write(json.dumps({"argv": sys.argv, "tensorflow": "tensorflow" in sys.modules}) + "\\n")
atexit.register(_record)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("e2e")
    archive = write_archive(tmp / "aclImdb_v1.tar.gz", per_class=30, extra={"aclImdb/train/unsup/1_0.txt": b"x"})
    hub = (str(write_preprocessor(tmp / "hub" / "preprocess")), str(write_encoder(tmp / "hub" / "encoder")))
    root = make_project(tmp / "repo", tiny_params(str(archive), hub))
    (root / ".venv").symlink_to(Path(sys.prefix))  # the README's `source .venv/bin/activate`
    (tmp / "audit").mkdir()
    (tmp / "audit" / "sitecustomize.py").write_text(AUDIT)
    result = run(["dvc", "repro"], root, env={"PYTHONPATH": str(tmp / "audit"),
                                              "IMDBCLF_TEST_AUDIT": str(tmp / "audit.jsonl")})
    (tmp / "repro.out").write_text(result.stdout + result.stderr)
    return root


def test_outputs(project):
    data = json.loads((project / "metrics/data.json").read_text())
    assert data["splits"]["train"]["count"] == 48 and data["splits"]["val"]["count"] == 12
    assert data["splits"]["test"]["count"] == 60
    assert data["movies"]["shared"]["train-val"] == 0 and data["movies"]["per_split"]["val"] == 2
    for model, trials in (("lstm", 2), ("tfidf_logreg", 2), ("bert_small", 2)):
        tune = json.loads((project / f"metrics/tune/{model}.json").read_text())
        assert len(tune["trials"]) == trials and tune["best"]["config"]
        evaluation = json.loads((project / f"metrics/eval/{model}.json").read_text())
        assert {"accuracy", "loss", "f1", "roc_auc", "confusion_matrix", "texts_per_second"} <= set(evaluation)
        # the saved model reproduces, on validation, the numbers retrain reported for its best epoch
        retrain = json.loads((project / f"metrics/retrain/{model}.json").read_text())
        assert evaluation["val_accuracy"] == pytest.approx(retrain["val_accuracy"], abs=1e-6), model  # float32
        assert evaluation["val_loss"] == pytest.approx(retrain["seeds"][0]["val_loss"], abs=1e-4), model
        assert (project / f"models/{model}/seed_0/family.json").exists()
        assert (project / f"metrics/eval/{model}/roc.csv").exists()
        examples = json.loads((project / f"metrics/eval/{model}/examples.json").read_text())
        test_texts = set(pd.read_parquet(project / "data/prepared/test.parquet")["text"])
        assert len(examples) == 2 and all(0 <= e["probability"] <= 1 for e in examples)  # one test text a class
        assert all(e["text"] in test_texts for e in examples)
        assert all(e["sentiment"] == e["label"] in ("positive", "negative") for e in examples)
        assert all(e["probability"] == e["probabilities"][e["label"]] for e in examples)
    assert not (project / "checkpoints").exists()  # each seed's resume state, deleted once its model was saved
    history = (project / "metrics/history/lstm.csv").read_text().splitlines()
    assert history[0].split(",")[:1] == ["epoch"] and "val_accuracy" in history[0] and len(history) >= 2
    assert json.loads((project / "metrics/eval/tfidf_logreg.json").read_text())["accuracy"] >= 0.9


def test_mlflow_has_a_run_per_stage_and_a_child_per_trial(project):
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-sentiment")
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    by_stage = {}
    for r in runs:
        by_stage.setdefault(r.data.tags.get("dvc.stage"), []).append(r)
    for stage in ("fetch", "split", "tune@lstm", "retrain@lstm", "evaluate@lstm", "tune@tfidf_logreg",
                  "tune@bert_small", "retrain@bert_small", "evaluate@bert_small", "report"):
        parents = [r for r in by_stage[stage] if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1, stage
        assert parents[0].info.status == "FINISHED"
        assert parents[0].data.tags.get("git.commit")
    tune = next(r for r in by_stage["tune@lstm"] if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tune.info.run_id]
    assert len(children) == 2
    assert all("best_val_accuracy" in c.data.metrics and "optimizer" in c.data.params for c in children)
    history = client.get_metric_history(children[0].info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    evaluate = next(r for r in by_stage["evaluate@lstm"] if "mlflow.parentRunId" not in r.data.tags)
    assert "accuracy" in evaluate.data.metrics
    assert client.get_registered_model("imdb-lstm").name == "imdb-lstm"
    # every run says what it is, to filter the runs table by: stage runs, their trial and seed children
    assert all(r.data.tags.get("run_type") in ("stage", "trial", "seed") for r in runs)
    for r in runs:
        parent = r.data.tags.get("mlflow.parentRunId")
        expected = "stage" if not parent else "seed" if r.data.tags["dvc.stage"].startswith("retrain@") else "trial"
        assert r.data.tags["run_type"] == expected, (r.info.run_name, r.data.tags)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on the runs

    # the splits each run trained and was scored on, as dataset inputs with MLflow's digest of the data
    def inputs(run) -> dict[tuple[str, str], str]:
        return {(i.dataset.name, {t.key: t.value for t in i.tags}["mlflow.data.context"]): i.dataset.digest
                for i in client.get_run(run.info.run_id).inputs.dataset_inputs}

    split = next(r for r in by_stage["split"] if "mlflow.parentRunId" not in r.data.tags)
    digests = inputs(split)
    assert set(digests) == {("train", "training"), ("val", "validation"), ("test", "test")}
    train_val = {key: digests[key] for key in (("train", "training"), ("val", "validation"))}
    assert inputs(tune) == train_val and all(inputs(c) == train_val for c in children)
    retrain = next(r for r in by_stage["retrain@lstm"] if "mlflow.parentRunId" not in r.data.tags)
    seeds = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == retrain.info.run_id]
    assert seeds and all(inputs(s) == train_val for s in seeds)
    assert inputs(evaluate) == {key: digests[key] for key in (("test", "test"), ("val", "validation"))}
    source = json.loads(client.get_run(split.info.run_id).inputs.dataset_inputs[0].dataset.source)["uri"]
    assert source.startswith("data/prepared/") and source.endswith(".parquet")


def test_each_stage_prints_its_start_and_end_and_no_library_chatter(project):
    output = (project.parent / "repro.out").read_text()
    stages = ran_stages(output)
    assert {"check-params", "fetch", "split", "code@lstm", "tune@lstm", "retrain@bert_small", "report"} <= stages
    for stage in stages:
        assert f"\n{stage}: started\n" in output, stage
        assert re.search(rf"^{re.escape(stage)}: done in [\d.]+ s: \S", output, re.M), stage
    assert not NOISE.search(output), NOISE.search(output).group(0)
    assert re.search(r"^epoch 1/2: 1/3 batches \(33%\), .* ETA ", output, re.M)  # training progress, off a terminal
    assert re.search(r"^epoch 2/2: loss [\d.]+, accuracy [\d.]+, val_loss", output, re.M)
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):  # the tiny models' estimates are under compute.cpu_limit_hours
        for stage in ("tune@lstm", "retrain@lstm", "tune@bert_small", "retrain@bert_small"):
            estimate = rf"^{stage}: no GPU visible; on this CPU about .+ \(\d+ (trials|seeds) × "
            assert re.search(estimate, output, re.M), stage


def test_stages_that_run_no_tensorflow_family_do_not_load_it(project):
    audit = [json.loads(line) for line in (project.parent / "audit.jsonl").read_text().splitlines()]
    loaded = {" ".join([Path(r["argv"][0]).stem, *r["argv"][1:]]): r["tensorflow"] for r in audit
              if r["argv"] and "stages" in Path(r["argv"][0]).parts}
    # the ensemble loads TensorFlow when a Keras model is one of its members (a weight above 0), else not
    members = json.loads((project / "models" / "ensemble" / "family.json").read_text())["member_families"]
    assert loaded.pop("ensemble") == any(f in ("lstm", "hub_encoder") for f in members.values()), members
    assert {name for name, tf in loaded.items() if not tf} == {
        "check_params", "fetch", "split", "code tfidf_logreg", "code lstm", "code bert_small", "tune tfidf_logreg",
        "retrain tfidf_logreg", "evaluate tfidf_logreg", "report"}, loaded
    assert loaded["tune lstm"] and loaded["evaluate bert_small"]  # the audit sees TensorFlow where it is


def test_second_repro_runs_nothing(project):
    result = run(["dvc", "repro"], project)
    assert "Running stage" not in result.stdout


def test_a_tune_that_only_reuses_its_trials_retrains_nothing(project):
    """`workers` changes how trials run, not their results: DVC does not rerun tune for it. And a tune that
    runs again but reuses every trial changes only its bookkeeping (reused, seconds, run ids): retrain
    depends on the chosen config (metrics/best/<model>.json), which stays byte for byte the same."""
    result = readme("dvc exp run -S lstm.tune.workers=2", project)
    assert ran_stages(result.stdout) <= {"check-params"}, result.stdout
    run(["git", "checkout", "params.yaml"], project)
    run(["dvc", "repro"], project)
    best = (project / "metrics/best/tfidf_logreg.json").read_bytes()
    forced = run(["dvc", "repro", "-f", "-s", "tune@tfidf_logreg"], project)
    assert "reused" in forced.stdout
    assert (project / "metrics/best/tfidf_logreg.json").read_bytes() == best
    assert ran_stages(run(["dvc", "repro"], project).stdout) <= {"report"}


def test_exp_run_with_a_tune_setting_reruns_from_tune(project):
    # as docs/ writes it, in a fresh shell: DVC runs the stages' `python` from the activated venv
    result = readme("dvc exp run -S 'lstm.tune.grid.learning_rate=[0.02]'", project)
    ran = [line for line in result.stdout.splitlines() if line.startswith("Running stage")]
    assert "Running stage 'tune@lstm':" in ran
    assert "Running stage 'evaluate@lstm':" in ran
    assert not any(s in line for line in ran for s in ("'fetch'", "'split'", "tfidf_logreg", "bert_small"))


def test_report_compares_models_and_names_a_champion(project):
    report = json.loads((project / "metrics/report.json").read_text())
    assert {row["model"] for row in report["models"]} == {"lstm", "tfidf_logreg", "bert_small", "ensemble"}
    assert len(report["pairs"]) == 6
    for pair in report["pairs"]:
        assert pair["ci_low"] <= pair["accuracy_diff"] <= pair["ci_high"] and 0 <= pair["mcnemar_p"] <= 1
        assert pair["mcnemar_p"] <= pair["mcnemar_p_holm"] <= 1
    for row in report["models"]:
        assert row["val_ci_low"] <= row["val_accuracy"] <= row["val_ci_high"]
    lead = report["champion_lead"]
    assert lead["within_uncertainty"] == (lead["ci_low"] <= 0)
    text = (project / "reports/report.md").read_text()
    for needle in ("| model |", "McNemar", "Holm-adjusted p", "CI, by movie", "(1 seed)", "figures/history.png",
                   "most confidently wrong", "## Example texts", "## Against guessing", "majority guess",
                   "within the uncertainty" if lead["within_uncertainty"] else "larger than the uncertainty"):
        assert needle in text
    for figure in ("history", "tuning", "roc"):
        assert (project / f"reports/figures/{figure}.png").stat().st_size > 1000
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("imdb-champion", "champion")
    assert champion.tags["source_model"] == f"imdb-{report['champion']}"


def test_predict_with_champion_and_model_dir_agree(project):
    texts = ["great wonderful brilliant film", "awful boring dull plot"]
    report = json.loads((project / "metrics/report.json").read_text())
    by_champion = json.loads(run(["python", "-m", "imdbclf", "predict", "--json", *texts], project).stdout)
    model_dir = "models/ensemble" if report["champion"] == "ensemble" else f"models/{report['champion']}/seed_0"
    by_dir = json.loads(run(["python", "-m", "imdbclf", "predict", "--json", "--model", model_dir, *texts],
                            project).stdout)
    assert [r["probability"] for r in by_champion] == pytest.approx([r["probability"] for r in by_dir], abs=1e-6)
    for rows in (by_champion, by_dir):  # one meaning for label: 0/1, its words in sentiment
        assert [(r["label"], r["sentiment"]) for r in rows] == [("positive", "positive"), ("negative", "negative")]


@contextlib.contextmanager
def serving(project: Path, command: str, log: Path) -> Iterator[str]:
    """A server started by `command` (its port as {port}) as the docs write it, in a fresh shell; yields
    its URL once /ping answers, and stops it (and its uvicorn workers) after."""
    import urllib.request

    port = free_port()
    with open(log, "w") as out:
        server = readme(command.format(port=port), project, stdout=out, stderr=subprocess.STDOUT,
                        start_new_session=True)
    def answers() -> bool:
        assert server.poll() is None, f"server stopped:\n{log.read_text()}"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
            return True
        except OSError:
            return False

    try:
        assert wait_until(answers, timeout_s=120, every_s=0.5), f"server did not start:\n{log.read_text()}"
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_mlflow_serves_the_champion_on_raw_text(project):
    import urllib.error
    import urllib.request

    # the command as docs/serving.md writes it, in a fresh shell: MLflow starts uvicorn by name, from the activated venv
    command = ("MLFLOW_TRACKING_URI=sqlite:///mlflow.db exec mlflow models serve -m models:/imdb-champion@champion "
               "--env-manager local -p {port}")
    with serving(project, command, project.parent / "serve.log") as url:

        def invoke(records: list[dict]) -> tuple[int, dict]:
            body = json.dumps({"dataframe_records": records}).encode()
            request = urllib.request.Request(f"{url}/invocations", body,
                                             {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        texts = ["great wonderful brilliant film", "awful boring dull plot"]
        status, answer = invoke([{"text": t} for t in texts])
        assert status == 200, answer
        answer = answer["predictions"]
        # a wrong request: HTTP 400 and one line naming the column or value, no stack trace
        for records, names in (([{"id": 1}], "no 'text' column"), ([{"text": None}], "text[0] is null"),
                               ([{"text": "good"}, {"text": ""}], "text[1] is an empty string"),
                               ([{"text": 42}], "text[0] is 42"), ([], "no 'text' column")):
            status, error = invoke(records)
            assert status == 400 and names in error["message"], (records, error)
            assert "\n" not in error["message"] and set(error) == {"error_code", "message"}, error
    served = [row["probability"] for row in answer]
    predicted = json.loads(run(["python", "-m", "imdbclf", "predict", "--json", *texts], project).stdout)
    assert served == pytest.approx([r["probability"] for r in predicted], abs=1e-6)
    assert [(row["label"], row["sentiment"]) for row in answer] == [("positive", "positive"), ("negative", "negative")]


def test_imdbclf_serve_checks_the_champion_and_serves_it(project):
    """`python -m imdbclf serve`, as docs/serving.md runs it, in a project whose .cache/ has no served copy yet."""
    import urllib.request

    shutil.rmtree(project / ".cache" / "served", ignore_errors=True)
    log = project.parent / "imdbclf-serve.log"
    command = "MLFLOW_TRACKING_URI=sqlite:///mlflow.db exec python -m imdbclf serve --port {port}"
    with serving(project, command, log) as url:
        body = json.dumps({"dataframe_records": [{"text": "great wonderful brilliant film"}]}).encode()
        request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())["predictions"][0]
    assert "checked against its digest tag" in log.read_text()
    assert answer["label"] == "positive" and set(answer["probabilities"]) == {"negative", "positive"}


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_the_ensemble_is_weighted_on_validation_registered_and_predicts_as_its_saved_copy(project):
    """Its weights (shares of the greedy picks) sum to 1; the registered version, checked and loaded as
    `predict` loads any model, gives what the saved ensemble of the workspace gives."""
    weights = json.loads((project / "metrics/ensemble/tune.json").read_text())["best"]["config"]
    assert set(weights) == {"lstm", "tfidf_logreg", "bert_small"} and sum(weights.values()) == pytest.approx(1)
    retrain = json.loads((project / "metrics/ensemble/retrain.json").read_text())
    texts = ["great wonderful brilliant film", "awful boring dull plot"]
    registered = json.loads(run(["python", "-m", "imdbclf", "predict", "--json", "--model",
                                 f"models:/imdb-ensemble/{retrain['model_version']}", *texts], project).stdout)
    saved = json.loads(run(["python", "-m", "imdbclf", "predict", "--json", "--model", "models/ensemble", *texts],
                           project).stdout)
    assert [r["probabilities"] for r in registered] == [pytest.approx(r["probabilities"], abs=1e-6) for r in saved]
    assert json.loads((project / "metrics/ensemble/scores.json").read_text())["accuracy"] > 0


def test_edits_rerun_exactly_the_stages_whose_code_changed(project):
    with open(project / "imdbclf/reporting/markdown.py", "a") as f:
        f.write("# an edit to the report\n")
    assert ran_stages(run(["dvc", "repro"], project).stdout) == {"report"}

    with open(project / "imdbclf/families/keras/lstm.py", "a") as f:
        f.write("# an edit to the LSTM family\n")
    ran = ran_stages(run(["dvc", "repro"], project).stdout)
    assert {"tune@lstm", "retrain@lstm", "evaluate@lstm", "report"} <= ran
    assert not {s for s in ran if not s.startswith("code@")} - {"tune@lstm", "retrain@lstm", "evaluate@lstm",
                                                                    "ensemble", "report", "check-params"}
    tune = json.loads((project / "metrics/tune/lstm.json").read_text())
    assert not any(trial["reused"] for trial in tune["trials"])  # the family's code changed: trials retrain

    archive = Path(yaml.safe_load((project / "params.yaml").read_text())["data"]["source"])
    original = archive.read_bytes()
    try:
        write_archive(archive, per_class=30, seed=7)  # the same path, other reviews
        status = json.loads(run(["dvc", "status", "--json", "fetch"], project).stdout)
        assert "fetch" in status and any("changed deps" in entry for entry in status["fetch"])
    finally:
        archive.write_bytes(original)
    assert json.loads(run(["dvc", "status", "--json", "fetch"], project).stdout) == {}


def test_two_reports_promoting_at_once_leave_one_champion(project):
    script = ("import sys; from imdbclf import params, model_registry, tracking; p = params.load(); tracking.setup(p)\n"
              "for _ in range(4): model_registry.promote('imdb-', sys.argv[1])")
    procs = [subprocess.Popen([sys.executable, "-c", script, model], cwd=project,
                              env={**os.environ, "MLFLOW_TRACKING_URI": ""}) for model in ("lstm", "tfidf_logreg")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    assert list(client.get_registered_model("imdb-champion").aliases) == ["champion"]
    for model in ("lstm", "tfidf_logreg", "bert_small"):
        assert "champion" not in client.get_registered_model(f"imdb-{model}").aliases


def test_queued_experiments_with_two_workers_share_one_store(project):
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    before = client.get_model_version_by_alias("imdb-champion", "champion").version
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline results"], project)
    for c in ("0.5", "8.0"):  # two suffice for two workers; docs/pipeline.md's loop queues more
        run(["dvc", "exp", "run", "--queue", "-S", f"tfidf_logreg.tune.grid.C=[1.0,{c}]"], project)
    run(["dvc", "queue", "start", "-j", "2"], project)
    def queue_done() -> bool:
        return not any(word in run(["dvc", "queue", "status"], project).stdout for word in ("Queued", "Running"))

    assert wait_until(queue_done, timeout_s=600, every_s=2), run(["dvc", "queue", "status"], project).stdout
    status = run(["dvc", "queue", "status"], project).stdout
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    experiments = [e for baseline in shown for e in (baseline.get("experiments") or [])]
    names = {e["name"] for e in experiments if e["revs"][0]["data"].get("status", "Success") == "Success"}
    assert len(names) >= 2, status
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("imdb-sentiment").experiment_id], max_results=1000)
    for name in names:
        mine = [r for r in runs if r.data.tags.get("dvc.exp_name") == name]
        stages = {r.data.tags["dvc.stage"] for r in mine}
        assert {"tune@tfidf_logreg", "retrain@tfidf_logreg", "evaluate@tfidf_logreg", "report"} <= stages, name
        assert not any(s.endswith(("@lstm", "@bert_small")) for s in stages), stages  # unchanged stays unchanged
        assert all(r.info.status == "FINISHED" for r in mine)
        tune = next(r for r in mine if r.data.tags["dvc.stage"] == "tune@tfidf_logreg"
                    and "mlflow.parentRunId" not in r.data.tags)
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tune.info.run_id]
        reused = [t for t in trials if t.data.tags.get("reused") == "true"]
        assert [t.data.params["C"] for t in reused] == ["1.0"], name  # the workspace's trial, via the storage
    assert not (project / ".dvc" / "tmp" / "exps" / "mlflow.db").exists()
    # a queued experiment registers its models but never moves the champion; promote does, deliberately
    assert client.get_model_version_by_alias("imdb-champion", "champion").version == before
    name = sorted(names)[0]
    run(["python", "-m", "imdbclf", "promote", "tfidf_logreg", "--experiment", name], project)
    champion = client.get_model_version_by_alias("imdb-champion", "champion")
    assert champion.tags["dvc.exp_name"] == name and champion.tags["source_model"] == "imdb-tfidf_logreg"


