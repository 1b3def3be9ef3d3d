import mlflow
import pytest
from mlflow.tracking import MlflowClient

from imdbclf import tracking


@pytest.fixture
def store(tmp_path):
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("resume")  # not the experiment id another test left active
    yield
    mlflow.set_tracking_uri(previous)


def test_a_resumed_run_is_tagged_and_shows_every_epoch(store):
    history = {"val_accuracy": [0.6, 0.7, 0.8], "val_loss": [0.6, 0.5, 0.4]}
    with mlflow.start_run() as run:
        tracking.log_metrics({"val_accuracy": 0.8, "val_loss": 0.4}, step=3)  # what the resumed fit logged
        tracking.log_resumed(2, history)
    client = MlflowClient()
    assert client.get_run(run.info.run_id).data.tags["resumed_from_epoch"] == "2"
    steps = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted((m.step, m.value) for m in steps) == [(1, 0.6), (2, 0.7), (3, 0.8)]
