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
