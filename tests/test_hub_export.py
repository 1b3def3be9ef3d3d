"""The BERT converter: a tiny Hugging Face-style checkpoint written by the test, converted, and
checked against an independent numpy implementation of BERT's forward pass."""

import json
import math

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
from safetensors.numpy import save_file

from devkit.helpers import raises_naming
from devkit.tiny_hub import TINY_CONFIG, VOCAB
from imdbclf.ops.bert_converter import convert_bert


def random_checkpoint(directory, config, seed=0):
    rng = np.random.default_rng(seed)
    h, i = config["hidden_size"], config["intermediate_size"]
    w = {
        "embeddings.word_embeddings.weight": rng.normal(size=(config["vocab_size"], h)),
        "embeddings.position_embeddings.weight": rng.normal(size=(config["max_position_embeddings"], h)),
        "embeddings.token_type_embeddings.weight": rng.normal(size=(2, h)),
        "embeddings.LayerNorm.weight": 1 + 0.1 * rng.normal(size=h), "embeddings.LayerNorm.bias": rng.normal(size=h),
        "pooler.dense.weight": rng.normal(size=(h, h)), "pooler.dense.bias": rng.normal(size=h),
    }
    for n in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{n}"
        for name, shape in (("attention.self.query", (h, h)), ("attention.self.key", (h, h)),
                            ("attention.self.value", (h, h)), ("attention.output.dense", (h, h)),
                            ("intermediate.dense", (i, h)), ("output.dense", (h, i))):
            w[f"{p}.{name}.weight"] = 0.5 * rng.normal(size=shape)
            w[f"{p}.{name}.bias"] = 0.1 * rng.normal(size=shape[0])
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{name}.weight"] = 1 + 0.1 * rng.normal(size=h)
            w[f"{p}.{name}.bias"] = 0.1 * rng.normal(size=h)
    w = {k: v.astype("float32") for k, v in w.items()}
    directory.mkdir()
    save_file(w, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "bert", "hidden_act": "gelu"}))
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return w


def reference_bert(w, config, ids, mask, types):
    """BERT's forward pass in plain numpy, written from the paper / HF BertModel, for comparison."""
    erf = np.vectorize(math.erf)

    def norm(x, p):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + config["layer_norm_eps"]) * w[f"{p}.weight"] + w[f"{p}.bias"]

    def dense(x, p):
        return x @ w[f"{p}.weight"].T + w[f"{p}.bias"]

    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
    x = norm(x + w["embeddings.token_type_embeddings.weight"][types], "embeddings.LayerNorm")
    heads = config["num_attention_heads"]
    d = config["hidden_size"] // heads
    for n in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{n}"
        split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, d).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (split(dense(x, f"{p}.attention.self.{s}")) for s in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + np.where(mask[:, None, None, :] > 0, 0.0, -1e30)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = norm(x + dense(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
        inter = dense(x, f"{p}.intermediate.dense")
        inter = 0.5 * inter * (1 + erf(inter / math.sqrt(2)))
        x = norm(x + dense(inter, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    return np.tanh(dense(x[:, 0], "pooler.dense")), x


def test_converted_encoder_matches_reference(tmp_path):
    config = {**TINY_CONFIG, "hidden_size": 8, "num_hidden_layers": 2, "intermediate_size": 16}
    weights = random_checkpoint(tmp_path / "hf", config)
    preprocessor_dir, encoder_dir = convert_bert(tmp_path / "hf", tmp_path / "hub")
    preprocessor = hub.load(str(preprocessor_dir))
    pack = hub.KerasLayer(preprocessor.bert_pack_inputs, arguments={"seq_length": 10})
    texts = tf.constant(["The movie was great!", "awful, boring plot and the actor was dull"])
    inputs = pack([hub.KerasLayer(preprocessor.tokenize)(texts)])
    assert inputs["input_word_ids"].numpy()[0, :6].tolist() == [VOCAB.index(t) for t in
                                                               ("[CLS]", "the", "movie", "was", "great", "!")]
    outputs = hub.KerasLayer(str(encoder_dir))(inputs)
    ids, mask, types = (inputs[k].numpy() for k in ("input_word_ids", "input_mask", "input_type_ids"))
    pooled, sequence = reference_bert(weights, config, ids, mask, types)
    np.testing.assert_allclose(outputs["pooled_output"].numpy(), pooled, atol=1e-4)
    valid = mask.astype(bool)
    np.testing.assert_allclose(outputs["sequence_output"].numpy()[valid], sequence[valid], atol=1e-4)


def test_not_a_checkpoint_is_a_user_error(tmp_path):
    (tmp_path / "hf").mkdir()
    with raises_naming(str(tmp_path / "hf"), "config.json"):  # the directory, and the file it lacks
        convert_bert(tmp_path / "hf", tmp_path / "hub")
    assert not (tmp_path / "hub").exists()
