"""Past `<model>.model.exact_up_to` training texts the linear families stream: hashed n-grams, no
vocabulary, SGD by chunks. The same interface: they learn, save as plain data, reload to the same
probabilities, and score in chunks exactly as at once; below the threshold the exact path is untouched."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from devkit.helpers import splits, three_classes
from imdbclf import families, params
from imdbclf.families import FitOptions, streamed

LINEAR = ["nb_logreg", "tfidf_logreg"]


def family_of(params_dict: dict, model: str, **config) -> tuple:
    params_dict[model]["model"].update(config)
    section = params.parse(params_dict).model(model)
    return families.create(model, section), section


def fitted(params_dict: dict, model: str, data, **config):
    family, section = family_of(params_dict, model, **config)
    train, test = data
    grid = {"C": 1.0, "ngram_max": 2} | ({"min_df": 1} if model == "tfidf_logreg" else {})
    history = family.fit(train, test, families.hyperparameters(model, section, grid), FitOptions(epochs=1))
    return family, history


@pytest.mark.parametrize("model", LINEAR)
@pytest.mark.parametrize("data", [splits, three_classes], ids=["two classes", "three classes"])
def test_a_streamed_fit_learns_saves_as_data_and_reloads_to_the_same_probabilities(tmp_path, params_dict, model,
                                                                                    data):
    train, test = data(per_class=40)
    _, exact = fitted(copy.deepcopy(params_dict), model, (train, test))
    family, history = fitted(params_dict, model, (train, test), exact_up_to=0, hash_bits=16, chunk_texts=17)
    assert history["val_accuracy"][0] >= exact["val_accuracy"][0] - 0.12  # what the exact fit learns, near enough
    assert history["val_accuracy"][0] > 0.65  # far above a guess (a third, or a half)
    proba = family.predict_proba(test.texts)
    assert proba.shape == (len(test), len(train.classes))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    family.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["family.json", "hashing.json", "weights.npz"]
    reloaded = families.load_family(tmp_path / "model")
    np.testing.assert_array_equal(reloaded.predict_proba(test.texts), proba)


@pytest.mark.parametrize("model", LINEAR)
def test_scoring_in_chunks_gives_what_scoring_at_once_gives(params_dict, model):
    train, test = splits(per_class=40)
    exact, _ = fitted(params_dict, model, (train, test), chunk_texts=5)
    at_once, _ = fitted(params_dict, model, (train, test), chunk_texts=10_000)
    np.testing.assert_array_equal(exact.predict_proba(test.texts), at_once.predict_proba(test.texts))


@pytest.mark.parametrize("model", LINEAR)
def test_below_the_threshold_the_fit_is_exact_and_keeps_its_vocabulary(tmp_path, params_dict, model):
    train, test = splits(per_class=40)
    family, _ = fitted(params_dict, model, (train, test), exact_up_to=len(train))
    family.save(tmp_path / "model")
    assert (tmp_path / "model" / "vocabulary.json").exists() and not (tmp_path / "model" / "hashing.json").exists()


def test_hashed_chunks_read_back_what_was_hashed_and_go_with_their_object():
    texts = [f"review {i} is {'good' if i % 2 else 'bad'}" for i in range(23)]
    vectorizer = HashingVectorizer(n_features=2**10, norm=None, alternate_sign=False, binary=True)
    chunks = streamed.HashedChunks(vectorizer, texts, 5)
    assert [start for start, _ in chunks] == [0, 5, 10, 15, 20]
    whole = vectorizer.transform(texts)
    np.testing.assert_array_equal(streamed.column_sums(chunks), np.asarray(whole.sum(axis=0)).ravel())
    np.testing.assert_array_equal(streamed.column_sums(chunks, present=True),
                                  np.asarray((whole > 0).sum(axis=0)).ravel())
    odd = (np.arange(23) % 2 == 1).astype(int)
    np.testing.assert_array_equal(streamed.class_sums(chunks, odd, 2),
                                  np.stack([np.asarray(whole[odd == c].sum(axis=0)).ravel() for c in (0, 1)]))
    directory = chunks.paths[0].parent
    del chunks
    assert not directory.exists()
