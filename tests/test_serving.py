"""The served model's input checks: one line naming the column or value, HTTP 400, no stack trace."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

from imdbclf import families, params, serving
from tests.conftest import REPO
from tests.tiny_imdb import reviews


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
    (pd.DataFrame({"text": []}), "no reviews"),
    ([], "no reviews"),
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


def test_the_scoring_server_answers_bad_requests_with_400_and_one_line(tmp_path, params_dict, monkeypatch):
    """In process, through the scoring server's own request handling (`invocations`); the end-to-end
    test sends the same requests over HTTP to `mlflow models serve`."""
    from mlflow.pyfunc.scoring_server import invocations

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
        info = serving.log_model(tmp_path / "family", None)
    model = mlflow.pyfunc.load_model(info.model_uri)
    assert model.metadata.get_input_schema().input_names() == ["text"]
    assert model.metadata.get_output_schema().input_names() == ["probability", "label"]
    assert model.metadata.saved_input_example_info["type"] == "dataframe"

    def serve(body: dict) -> tuple[int, dict]:
        try:
            answer = invocations(json.dumps(body), "application/json", model, model.metadata.get_input_schema())
            return answer.status, json.loads(answer.response)
        except mlflow.exceptions.MlflowException as err:  # as the server's exception handler answers
            return err.get_http_status_code(), json.loads(err.serialize_as_json())

    status, answer = serve({"dataframe_records": [{"text": "great wonderful film"}, {"text": "awful dull"}]})
    assert status == 200 and [row["label"] for row in answer["predictions"]] == [1, 0]
    for records, names in (([{"id": 1}], "'text' column"), ([{"text": None}], "text[0] is null"),
                           ([{"text": "good"}, {"text": ""}], "text[1] is an empty string"),
                           ([{"text": 42}], "text[0] is 42"), ([], "'text' column")):
        status, answer = serve({"dataframe_records": records})
        assert status == 400, records
        assert names in answer["message"] and "\n" not in answer["message"], answer
        assert "stack_trace" not in answer
    # the pyfunc takes a DataFrame or a Series named `text`
    frame = model.predict(pd.DataFrame({"text": ["great wonderful film", "awful dull"]}))
    assert list(frame.columns) == ["probability", "label"] and frame["label"].tolist() == [1, 0]
    assert model.predict(pd.Series(["great wonderful film"], name="text"))["label"].tolist() == [1]
    # a plain list: MLflow's schema enforcement drops its unnamed column before predict sees it
    with pytest.raises(serving.InvalidInput, match="no 'text' column"):
        model.predict(["great wonderful film"])
