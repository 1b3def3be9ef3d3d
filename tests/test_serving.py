"""The served model's input checks: one line naming the column or value, HTTP 400, no stack trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from devkit.helpers import REPO, raises_naming
from devkit.tiny_imdb import reviews
from imdbclf import families, params, serving


def test_as_texts_takes_a_text_column_a_list_a_series_or_one_string():
    texts = ["A wonderful film.", "Dull."]
    assert serving.as_texts(pd.DataFrame({"id": [1, 2], "text": texts})) == texts
    assert serving.as_texts(texts) == texts
    assert serving.as_texts(pd.Series(texts)) == texts
    assert serving.as_texts(np.array(texts, dtype=object)) == texts
    assert serving.as_texts("Dull.") == ["Dull."]


@pytest.mark.parametrize("model_input, names", [
    (pd.DataFrame({"id": [1]}), "no 'text' column in the input (columns: id)"),
    (pd.DataFrame(index=[0, 1]), "no 'text' column"),
    (pd.DataFrame(), "no 'text' column"),
    (pd.DataFrame({"text": []}), "no texts"),
    ([], "no texts"),
    (pd.DataFrame({"text": ["good", None]}), "text[1] is null"),
    (pd.DataFrame({"text": pd.Series(["good", None], dtype="string")}), "text[1] is null"),
    (["good", float("nan")], "text[1] is null"),
    (pd.DataFrame({"text": ["", "good"]}), "text[0] is an empty string"),
    (["good", "   "], "text[1] is an empty string"),
    (pd.DataFrame({"text": ["good", 42]}), "text[1] is 42 (int), not a string"),
    ([["a", "list"]], "text[0] is ['a', 'list'] (list), not a string"),
])
def test_as_texts_rejects_bad_input_in_one_line_naming_it(model_input, names):
    with pytest.raises(serving.InvalidInput) as caught:
        serving.as_texts(model_input)
    assert names in caught.value.reason and "\n" not in caught.value.reason
    assert caught.value.get_http_status_code() == 400


def test_predict_cli_stops_on_an_empty_review_before_loading_a_model():
    result = subprocess.run([sys.executable, "-m", "imdbclf", "predict", "a fine film", " ", "--model", "nowhere"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: text[1] is an empty string" in result.stderr


@pytest.fixture
def logged(tmp_path, params_dict, monkeypatch):
    """A tiny TF-IDF model, logged as the retrain stage logs it, in a store of its own."""
    section = params.parse(params_dict).model("tfidf_logreg")
    family = families.create("tfidf_logreg", section)
    items = [(text, int("/pos/" in key)) for key, text in reviews(12).items()]
    train = families.Split("train", np.array([t for t, _ in items], dtype=object), np.array([y for _, y in items]))
    family.fit(train, train, families.hyperparameters("tfidf_logreg", section, {"min_df": 1}),
               families.FitOptions(epochs=1))
    family.save(tmp_path / "family")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.MlflowClient().create_experiment("serving", (tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        return serving.log_model(tmp_path / "family", None)


def test_the_scoring_server_answers_bad_requests_with_400_and_one_line(logged):
    """In process, through the scoring server's own request handling (`invocations`); the end-to-end
    test sends the same requests over HTTP to `mlflow models serve`."""
    from mlflow.pyfunc.scoring_server import invocations

    model = mlflow.pyfunc.load_model(logged.model_uri)
    assert model.metadata.get_input_schema().input_names() == ["text"]
    assert model.metadata.get_output_schema().input_names() == ["probability", "label", "sentiment", "probabilities"]
    assert model.metadata.saved_input_example_info["type"] == "dataframe"

    def serve(body: dict) -> tuple[int, dict]:
        try:
            answer = invocations(json.dumps(body), "application/json", model, model.metadata.get_input_schema())
            return answer.status, json.loads(answer.response)
        except mlflow.exceptions.MlflowException as err:  # as the server's exception handler answers
            return err.get_http_status_code(), json.loads(err.serialize_as_json())

    status, answer = serve({"dataframe_records": [{"text": "great wonderful film"}, {"text": "awful dull"}]})
    assert status == 200 and [row["label"] for row in answer["predictions"]] == ["positive", "negative"]
    assert [row["sentiment"] for row in answer["predictions"]] == ["positive", "negative"]
    first = answer["predictions"][0]
    assert set(first["probabilities"]) == {"negative", "positive"}
    assert first["probability"] == first["probabilities"]["positive"] > 0.5
    for records, names in (([{"id": 1}], "'text' column"), ([{"text": None}], "text[0] is null"),
                           ([{"text": "good"}, {"text": ""}], "text[1] is an empty string"),
                           ([{"text": 42}], "text[0] is 42"), ([], "'text' column")):
        status, answer = serve({"dataframe_records": records})
        assert status == 400, records
        assert names in answer["message"] and "\n" not in answer["message"], answer
        assert "stack_trace" not in answer
    # the pyfunc takes a DataFrame or a Series named `text`
    frame = model.predict(pd.DataFrame({"text": ["great wonderful film", "awful dull"]}))
    assert list(frame.columns) == ["probability", "label", "sentiment", "probabilities"]
    assert frame["label"].tolist() == frame["sentiment"].tolist() == ["positive", "negative"]
    assert model.predict(pd.Series(["great wonderful film"], name="text"))["label"].tolist() == ["positive"]
    # a plain list: MLflow's schema enforcement drops its unnamed column before predict sees it
    with raises_naming("no 'text' column", kind=serving.InvalidInput):
        model.predict(["great wonderful film"])


def test_a_prediction_is_the_class_its_probability_and_every_classs():
    frame = serving.predictions_frame(np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1]]))
    assert frame["label"].tolist() == frame["sentiment"].tolist() == ["positive", "positive", "negative"]
    assert frame["probability"].tolist() == [0.9, 0.5, 0.9]  # of the predicted class; a tie goes to positive
    rows = serving.predictions(["good", "bad"], serving.predictions_frame([0.75, 0.25]))  # P(positive) alone
    assert rows == [{"text": "good", "probability": 0.75, "label": "positive", "sentiment": "positive",
                     "probabilities": {"negative": 0.25, "positive": 0.75}},
                    {"text": "bad", "probability": 0.75, "label": "negative", "sentiment": "negative",
                     "probabilities": {"negative": 0.75, "positive": 0.25}}]
    assert json.loads(json.dumps(rows)) == rows  # plain Python types, as the CLI prints them
    # K classes: no sentiment; the most probable class
    stars = serving.predictions_frame(np.array([[0.2, 0.5, 0.3]]), ("1", "2", "10"))
    assert stars.to_dict("records") == [{"probability": 0.5, "label": "2",
                                         "probabilities": {"1": 0.2, "2": 0.5, "10": 0.3}}]


UNNEEDED = ("dvc", "optuna", "matplotlib", "psycopg", "pyarrow", "requests", "psutil", "safetensors")


def names(requirements: list[str]) -> set[str]:
    return {serving.canonical(line.split("==")[0].split("[")[0]) for line in requirements}


@pytest.mark.parametrize("family", sorted(families.FAMILIES))
def test_pip_requirements_are_the_pinned_lines_of_what_scoring_imports(family):
    """Exactly the pins of requirements.txt for the third-party modules that the logged code imports at
    module level (found as sources finds the package's own imports), and nothing for training or tracking."""
    import ast
    import importlib.metadata

    lines = serving.pip_requirements(family)
    pinned = serving.pinned()
    assert all(line in pinned.values() for line in lines)  # versions come from requirements.txt, as written
    distributions = importlib.metadata.packages_distributions()
    imported = set()
    for file in serving.code_files(family):
        for node in ast.parse((REPO / file).read_text()).body:
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    needed = {serving.canonical(d) for module in imported - set(sys.stdlib_module_names)
              for d in distributions.get(module, [])} & set(pinned)
    assert needed <= names(lines), needed - names(lines)
    assert not names(lines) & {serving.canonical(n) for n in UNNEEDED}
    uses_tensorflow = bool(imported & {"tensorflow", "tf_keras"})  # a TF-free family's model installs no TF
    assert bool(names(lines) & {"tensorflow", "tf-keras"}) == uses_tensorflow, family


def test_the_logged_model_has_lean_requirements_and_only_its_code(logged, tmp_path):
    local = Path(mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(tmp_path / "model")))
    requirements = (local / "requirements.txt").read_text().split()
    pinned = serving.pinned()
    for name in ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "pydantic"):
        assert pinned[name] in requirements, name
    assert not names(requirements) & {serving.canonical(n) for n in (*UNNEEDED, "tensorflow", "tf-keras")}
    code = {p.relative_to(local / "code").as_posix() for p in (local / "code").rglob("*.py")}
    assert {"imdbclf/serving.py", "imdbclf/families/__init__.py", "imdbclf/families/tfidf_logreg.py"} <= code
    assert not {f for f in code if f.startswith(("imdbclf/tracking/", "imdbclf/ops/", "imdbclf/reporting/",
                                                 "imdbclf/tuning/", "imdbclf/families/keras/"))}, code
    # a fresh process outside the repository: the model's own code is all it has of imdbclf
    script = ("import sys, mlflow, pandas as pd; m = mlflow.pyfunc.load_model(sys.argv[1]); "
              "import imdbclf; assert imdbclf.__file__.startswith(sys.argv[1]), imdbclf.__file__; "
              "print(m.predict(pd.DataFrame({'text': ['great wonderful film']})).to_json(orient='records'))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script, str(local)], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])[0]["sentiment"] == "positive"


def test_predict_cli_prints_label_and_sentiment(logged, tmp_path):
    texts = ["great wonderful film", "awful dull"]
    cli = [sys.executable, "-m", "imdbclf", "predict", "--model", str(tmp_path / "family"), *texts]
    table = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split("\t")[1:] for line in table] == [["positive", texts[0]], ["negative", texts[1]]]
    rows = json.loads(subprocess.run([*cli, "--json"], cwd=REPO, capture_output=True, text=True, check=True).stdout)
    assert [set(row) for row in rows] == [{"text", "probability", "label", "sentiment", "probabilities"}] * 2
    assert [(row["label"], row["sentiment"]) for row in rows] == [("positive", "positive"), ("negative", "negative")]


@pytest.fixture
def registered(logged, tmp_path):
    """The `logged` family's directory registered as the retrain stage registers it: a version tagged
    with the md5 of every file of the logged model."""
    from imdbclf import model_registry

    experiment = mlflow.MlflowClient().get_experiment_by_name("serving").experiment_id
    with mlflow.start_run(experiment_id=experiment):
        version = model_registry.register(tmp_path / "family", "imdb-tiny", {"dvc.stage": "retrain@tiny"})
    return "imdb-tiny", version


def test_a_registered_version_is_loaded_only_as_it_was_registered(registered, tmp_path):
    from mlflow.tracking import MlflowClient

    from imdbclf import integrity, model_registry
    from tests.test_families import Planted

    name, version = registered
    manifest = json.loads(MlflowClient().get_model_version(name, version).tags[integrity.TAG])
    assert {"MLmodel", "python_model.pkl", "artifacts/family/weights.npz"} <= set(manifest)
    local = model_registry.download_verified(f"models:/{name}/{version}", tmp_path / "ok")
    assert mlflow.pyfunc.load_model(str(local)).predict(pd.DataFrame({"text": ["a great film"]})).shape == (1, 4)

    # the store's copy of python_model.pkl (a pickle MLflow loads) replaced by one that runs a command
    marker = tmp_path / "marker"
    for stored in (tmp_path / "artifacts").rglob("python_model.pkl"):
        stored.write_bytes(__import__("pickle").dumps(Planted(marker)))
    # the file, its digest and the one recorded, and where that is recorded
    with raises_naming("python_model.pkl", integrity.md5_of(stored), manifest["python_model.pkl"], integrity.TAG,
                       f"{name} version {version}", "not loaded"):
        model_registry.download_verified(f"models:/{name}/{version}", tmp_path / "planted")
    assert not marker.exists()


def test_a_planted_file_with_a_digest_tag_rewritten_to_match_is_not_loaded(registered, tmp_path):
    """What a team member can do (replace an artifact, rewrite a tag) cannot change the param that the
    registering run logged: the rewritten tag no longer matches it."""
    from mlflow.tracking import MlflowClient

    from imdbclf import integrity, model_registry
    from imdbclf.errors import UserError
    from tests.test_families import Planted

    name, version = registered
    marker = tmp_path / "marker"
    for stored in (tmp_path / "artifacts").rglob("python_model.pkl"):
        stored.write_bytes(__import__("pickle").dumps(Planted(marker)))
    manifest = json.loads(MlflowClient().get_model_version(name, version).tags[integrity.TAG])
    manifest["python_model.pkl"] = integrity.md5_of(stored)
    MlflowClient().set_model_version_tag(name, version, integrity.TAG, json.dumps(manifest, sort_keys=True))
    with pytest.raises(UserError, match="the tag was rewritten"):
        model_registry.download_verified(f"models:/{name}/{version}", tmp_path / "planted")
    assert not marker.exists()


def test_a_version_registered_outside_the_teams_experiment_is_not_loaded(registered, tmp_path):
    from imdbclf import model_registry

    name, version = registered
    other = mlflow.MlflowClient().create_experiment("someone-elses")
    with raises_naming(f"{name} version {version}", "not the team's", f"({other})"):
        model_registry.download_verified(f"models:/{name}/{version}", tmp_path / "x", experiment_id=other)


def test_a_version_without_its_digest_tag_is_not_loaded(registered, tmp_path):
    from mlflow.tracking import MlflowClient

    from imdbclf import integrity, model_registry

    name, version = registered
    MlflowClient().delete_model_version_tag(name, version, integrity.TAG)
    with raises_naming(f"{name} version {version}", f"no {integrity.TAG} tag", "not loaded"):
        model_registry.download_verified(f"models:/{name}/{version}", tmp_path / "x")


class Answer:
    def __init__(self, status: int, body: bytes):
        self.status_code, self.body = status, body

    def json(self):
        return json.loads(self.body)


def asgi_post(app, body: bytes | str, content_type: str) -> Answer:
    """One POST /invocations through an ASGI app, in process (what uvicorn does for a request)."""
    import asyncio

    body = body.encode() if isinstance(body, str) else body
    scope = {"type": "http", "method": "POST", "path": "/invocations", "raw_path": b"/invocations",
             "query_string": b"", "headers": [(b"content-type", content_type.encode()),
                                               (b"content-length", str(len(body)).encode())],
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 5001), "client": ("127.0.0.1", 1),
             "root_path": "", "asgi": {"version": "3.0"}}
    chunks = [body[i:i + (64 << 10)] for i in range(0, len(body), 64 << 10)] or [b""]
    sent = []

    async def receive():
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    ends = [i for i, m in enumerate(sent) if m["type"] == "http.response.body" and not m.get("more_body", False)]
    assert ends == [len(sent) - 1], sent  # one whole answer: nothing after its last part (uvicorn logs an error)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return Answer(status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


@pytest.fixture
def guarded(logged):
    """The app `python -m imdbclf serve` runs: MLflow's scoring app for the model, behind the guard; the
    request size limit declared (Content-Length) and, for a client that does not declare it, counted."""
    from mlflow.pyfunc import scoring_server

    from imdbclf.ops.scoring import Guard

    return Guard(scoring_server.init(mlflow.pyfunc.load_model(logged.model_uri)), max_request_bytes=1 << 20,
                 max_error_chars=300)


def test_the_guarded_server_scores_and_answers_abuse_in_one_short_line(guarded):
    ok = asgi_post(guarded, json.dumps({"dataframe_records": [{"text": "a great film"}]}), "application/json")
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
    big = json.dumps({"dataframe_records": [{"text": "x" * (2 << 20)}]})
    bad = {
        "too large": asgi_post(guarded, big, "application/json"),
        "invalid": asgi_post(guarded, "{" + "x" * 500_000, "application/json"),
        "nested": asgi_post(guarded, "[" * 200_000 + "]" * 200_000, "application/json"),
        "malformed csv": asgi_post(guarded, 'text\n"unterminated\n', "text/csv"),
    }
    assert {k: r.status_code for k, r in bad.items()} == {"too large": 413, "invalid": 400, "nested": 400,
                                                          "malformed csv": 400}
    assert_parquet_bodies_are_measured_before_they_unpack(guarded)
    for name, answer in bad.items():
        error = answer.json()
        assert set(error) == {"error_code", "message"}, (name, error)  # no stack_trace
        assert "\n" not in error["message"] and len(error["message"]) <= 300, (name, error)
        assert "xxxxxxxxxx" not in error["message"], name  # the body is never echoed
    assert "over the limit of 1,048,576 (serving.max_request_mb" in bad["too large"].json()["message"]
    assert bad["nested"].json()["message"] == "the JSON body is nested too deeply"


def test_the_team_server_refuses_a_readers_writes_however_the_login_is_written():
    """MLflow reads a Basic login leniently (any whitespace, base64 unvalidated, X-MLflow-Authorization
    too): a credential the guard cannot read, or two different ones, on a write is refused, not passed."""
    import asyncio
    import base64

    from imdbclf.ops.team_server import ReadersRead

    roles = {("reader", "pw"): False, ("member", "pw"): True}
    passed = []

    async def app(scope, receive, send):
        passed.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard = ReadersRead(app, writer=lambda name, password: roles.get((name, password)))

    def status(method: str, path: str, *headers: tuple[bytes, bytes]) -> int:
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        asyncio.run(guard({"type": "http", "method": method, "path": path, "headers": list(headers)}, receive, send))
        return sent[0]["status"]

    reader, member = base64.b64encode(b"reader:pw"), base64.b64encode(b"member:pw")
    create = "/api/2.0/mlflow/experiments/create"
    assert status("POST", "/api/2.0/mlflow/runs/search", (b"authorization", b"Basic " + reader)) == 200  # a read
    for headers in ([(b"authorization", b"Basic " + reader)], [(b"authorization", b"Basic\t" + reader)],
                    [(b"authorization", b"Basic cmVh!ZGVyOnB3")], [(b"x-mlflow-authorization", b"basic " + reader)],
                    [(b"authorization", b"Basic " + member), (b"authorization", b"Basic " + reader)],
                    [(b"authorization", b"Bearer something")]):
        assert status("POST", create, *headers) == 403, headers
    for path in ("/api/3.0/mlflow/review-queues/get-or-create-user", "/api/2.0/mlflow-artifacts/mpu/create/x/search"):
        assert status("POST", path, (b"authorization", b"Basic " + reader)) == 403, path
    assert status("POST", create, (b"authorization", b"Basic " + member)) == 200
    assert status("POST", create) == 200  # no login at all: MLflow's own authentication answers it (401)


def parquet_body(frame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def assert_parquet_bodies_are_measured_before_they_unpack(guarded):
    import pandas as pd

    ok = asgi_post(guarded, parquet_body(pd.DataFrame({"text": ["a great film"]})), "application/vnd.apache.parquet")
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
    bomb = parquet_body(pd.DataFrame({"text": ["x" * (4 << 20)]}))  # 4 MB of text in a few kB
    repeated = parquet_body(pd.DataFrame({"text": ["y" * (64 << 10)] * 64}))  # stored once, 4 MB in its rows
    for body in (bomb, repeated):
        assert len(body) < (1 << 20)
        answer = asgi_post(guarded, body, "application/vnd.apache.parquet")
        assert answer.status_code == 413 and "unpacks to" in answer.json()["message"]
    nested = asgi_post(guarded, parquet_body(pd.DataFrame({"text": [{"a": "b"}]})), "application/vnd.apache.parquet")
    assert nested.status_code == 400 and "nested" in nested.json()["message"]
