import json
import subprocess
import sys

import numpy as np
import pytest

from imdbclf import families, params
from tests.conftest import REPO
from tests.tiny_imdb import reviews


def splits():
    files = reviews(24, seed=3)
    def split(prefix):
        items = [(t, int("/pos/" in k)) for k, t in files.items() if k.startswith(prefix)]
        return families.Split(prefix, np.array([t for t, _ in items], dtype=object), np.array([y for _, y in items]))
    return split("train"), split("test")


@pytest.mark.parametrize("model, config", [
    ("lstm", {"optimizer": "adam", "batch_size": 8, "learning_rate": 0.02}),
    ("tfidf_logreg", {"C": 10.0, "ngram_max": 2, "min_df": 1}),
])
def test_family_learns_saves_and_reloads_in_a_fresh_process(tmp_path, params_dict, model, config):
    p = params.parse(params_dict)
    section = p.model(model)
    family = families.create(model, section)
    train, test = splits()
    logged = []
    history = family.fit(train, test, families.hyperparameters(model, section, config),
                         families.FitOptions(epochs=6, seed=0, on_epoch_end=lambda e, m: logged.append((e, m))))
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert logged and logged[0][0] == 1 and "val_accuracy" in logged[0][1]
    assert max(history["val_accuracy"]) >= 0.8
    assert family.trainable_params() > 0

    family.save(tmp_path / "model")
    texts = list(test.texts[:6]) + ["a great and wonderful film", "dull, boring, awful"]
    expected = family.predict_proba(texts)
    script = (
        "import json, sys; from pathlib import Path; from imdbclf import families; "
        f"f = families.load(Path({str(tmp_path / 'model')!r})); "
        "print(json.dumps(f.predict_proba(json.loads(sys.stdin.read())).tolist()))"
    )
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True,
                         text=True, cwd=REPO, check=True)
    reloaded = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(reloaded, expected, atol=1e-6)
    assert reloaded[-2] > 0.5 > reloaded[-1]


def test_best_epoch_on_a_tie_is_the_epoch_saved_and_reported(tmp_path, params_dict):
    """A learning rate so small that validation accuracy never moves while validation loss keeps
    falling: every epoch ties on accuracy. The one rule (ties go to the lower loss) names the epoch
    whose numbers are reported, and the saved model must be exactly that epoch's."""
    p = params.parse(params_dict)
    section = p.model("lstm")
    family = families.create("lstm", section)
    train, val = splits()
    hp = families.hyperparameters("lstm", section, {"optimizer": "sgd", "batch_size": 8, "learning_rate": 0.003})
    history = family.fit(train, val, hp, families.FitOptions(epochs=3, seed=0, patience=1,
                                                             checkpoint_dir=tmp_path / "checkpoints", verbose=0))
    assert len(set(history["val_accuracy"])) == 1 and len(history["val_accuracy"]) >= 2  # a tie
    best = families.best_epoch(history)
    assert history["val_loss"][best] < history["val_loss"][0]  # the rule picks a later epoch
    family.save(tmp_path / "model")
    script = (
        "import json, sys; from pathlib import Path; import numpy as np; "
        "from imdbclf import evaluation, families; "
        f"f = families.load(Path({str(tmp_path / 'model')!r})); data = json.loads(sys.stdin.read()); "
        "m = evaluation.classification_metrics(np.array(data['labels']), f.predict_proba(data['texts'])); "
        "print(json.dumps([m['accuracy'], m['loss'], f.trainable_params()]))"
    )
    payload = json.dumps({"texts": list(val.texts), "labels": val.labels.tolist()})
    out = subprocess.run([sys.executable, "-c", script], input=payload, capture_output=True, text=True, cwd=REPO,
                         check=True)
    accuracy, loss, trainable = json.loads(out.stdout.strip().splitlines()[-1])
    assert accuracy == pytest.approx(history["val_accuracy"][best], abs=1e-6)  # Keras reports float32
    assert loss == pytest.approx(history["val_loss"][best], abs=3e-6)  # epochs differ by ~1.5e-5
    assert trainable == family.trainable_params() > 0  # a reloaded model knows its size


def test_early_stopping_follows_the_best_epoch_rule():
    from imdbclf.training import BestEpochStopping

    class Model:
        stop_training = False

    stopper = BestEpochStopping(patience=1)
    stopper.set_model(Model())
    for epoch, (acc, loss) in enumerate([(0.8, 0.5), (0.8, 0.4), (0.8, 0.45)]):
        stopper.on_epoch_end(epoch, {"val_accuracy": acc, "val_loss": loss})
        assert stopper.model.stop_training == (epoch == 2)  # epoch 1 tied but lower loss: a new best
