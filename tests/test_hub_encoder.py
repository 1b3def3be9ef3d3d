import json
import subprocess
import sys

import numpy as np
import pytest

from devkit.helpers import REPO, raises_naming, splits, three_classes
from devkit.tiny_hub import write_encoder, write_preprocessor
from imdbclf import families, params


@pytest.fixture(scope="module")
def handles(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    return str(write_preprocessor(root / "preprocess")), str(write_encoder(root / "encoder"))


def section(params_dict, handles, **model):
    preprocessor, encoder = handles
    params_dict["tiny_bert"] = {
        "family": "hub_encoder",
        "model": {"preprocessor": preprocessor, "encoder": encoder, "seq_len": 16, **model},
        "tune": {"epochs": 1, "grid": {"optimizer": ["adamw"], "batch_size": [8], "learning_rate": [0.05]}},
        "retrain": {"epochs": 1},
    }
    params_dict["models"].append("tiny_bert")
    return params.parse(params_dict).model("tiny_bert")


def test_preprocessing_packs_to_the_configured_length(params_dict, handles):
    family = families.create("tiny_bert", section(params_dict, handles, seq_len=12))
    family.encoder = family.make_encoder(np.array([]))
    features = family.encode(np.array(["great movie", "the film was dull"], dtype=object))
    assert set(features) == {"input_word_ids", "input_mask", "input_type_ids"}
    assert features["input_word_ids"].shape == (2, 12)
    assert features["input_mask"][0].tolist() == [1, 1, 1, 1] + [0] * 8  # [CLS] great movie [SEP]


def test_head_tail_truncation_keeps_a_long_reviews_first_and_last_tokens(params_dict, handles):
    def word_ids(texts, **model):
        family = families.create("tiny_bert", section(dict(params_dict, models=list(params_dict["models"])), handles,
                                                      **model))
        family.encoder = family.make_encoder(np.array([]))
        features = family.encode(np.array(texts, dtype=object))
        return [row[mask.astype(bool)].tolist() for row, mask in zip(features["input_word_ids"],
                                                                     features["input_mask"], strict=True)]

    long, short = "great movie , the film was dull and awful but great", "dull film"
    whole = word_ids([long, short], seq_len=64)
    assert len(whole[0]) > 12
    cls, sep, pieces = whole[0][0], whole[0][-1], whole[0][1:-1]
    assert word_ids([long, short], seq_len=10, truncate="head_tail", head_tokens=3) == [
        [cls, *pieces[:3], *pieces[-5:], sep], whole[1]]
    assert word_ids([long], seq_len=10)[0] == [cls, *pieces[:8], sep]  # the default: the head, as before


def test_head_tokens_must_leave_room_for_the_special_tokens(params_dict, handles):
    with raises_naming("tiny_bert.model", "head_tokens (9)", "seq_len (10)"):
        section(params_dict, handles, seq_len=10, truncate="head_tail", head_tokens=9)


@pytest.mark.slow
def test_hub_family_trains_and_reloads_in_a_fresh_process(tmp_path, params_dict, handles):
    s = section(params_dict, handles)
    family = families.create("tiny_bert", s)
    train, test = splits()
    history = family.fit(train, test, families.hyperparameters("tiny_bert", s, {"optimizer": "adamw",
                         "batch_size": 8, "learning_rate": 0.01}), families.FitOptions(epochs=15, seed=0))
    assert max(history["val_accuracy"]) >= 0.8
    family.save(tmp_path / "model")
    texts = list(test.texts[:5])
    expected = family.predict_proba(texts)
    script = ("import json, sys; from pathlib import Path; from imdbclf import families; "
              f"f = families.load_family(Path({str(tmp_path / 'model')!r})); "
              "print(json.dumps(f.predict_proba(json.loads(sys.stdin.read())).tolist()))")
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts), capture_output=True, text=True,
                         cwd=REPO, check=True)
    np.testing.assert_allclose(json.loads(out.stdout.strip().splitlines()[-1]), expected, atol=1e-6)


def test_unresolvable_handle_fails_in_one_line(params_dict, handles, tmp_path):
    s = section(params_dict, (str(tmp_path / "no-such-preprocessor"), handles[1]))
    family = families.create("tiny_bert", s)
    with raises_naming(str(tmp_path / "no-such-preprocessor"), "local directory") as err:  # and what works instead
        family.make_encoder(np.array([]))
    assert str(err.value).startswith("tiny_bert.model.preprocessor: ")  # the key in params.yaml, model named


def test_hub_family_with_three_classes_has_a_softmax_head_and_keeps_their_names(tmp_path, params_dict, handles):
    s = section(params_dict, handles)
    family = families.create("tiny_bert", s)
    train, test = three_classes()
    history = family.fit(train, test, families.hyperparameters("tiny_bert", s, {"optimizer": "adamw",
                         "batch_size": 8, "learning_rate": 0.01}), families.FitOptions(epochs=15, seed=0, verbose=0))
    proba = family.predict_proba(test.texts)
    assert proba.shape == (len(test), 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert max(history["val_accuracy"]) >= 0.8
    family.save(tmp_path / "model")
    reloaded = families.load_family(tmp_path / "model")
    assert reloaded.classes == ("negative", "positive", "zzz")
    np.testing.assert_allclose(reloaded.predict_proba(test.texts), proba, atol=1e-6)
