"""Fine-tuning speed of BERT-small-sized and ELECTRA-base-sized encoders (random weights) at sequence
length 128, batch 32, with and without mixed precision and XLA: training examples/second.
Meant for a GPU; without one it records that it was skipped (metrics/bench/encoder_speed.json).
`python -m bench.encoder_speed --cpu` forces a (slow) CPU run."""

from __future__ import annotations

import sys
import time

from bench.common import write_result

SIZES = {  # the TF Hub models' shapes: small_bert L-4_H-512_A-8 and electra_base
    "bert_small": {"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 2048},
    "electra_base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072},
}
SEQ_LEN, BATCH, STEPS = 128, 32, 20


def train_speed(size: dict, mixed: bool, xla: bool) -> float:
    import numpy as np
    import tf_keras as keras

    from imdbclf.families.keras_base import precision_policy
    from imdbclf.hub_export import build_bert_encoder

    keras.mixed_precision.set_global_policy(precision_policy("auto") if mixed else "float32")
    config = {**size, "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
    encoder = build_bert_encoder(config)
    logit = keras.layers.Dense(1, dtype="float32")(encoder.output["pooled_output"])
    model = keras.Model(encoder.input, logit)
    model.compile(keras.optimizers.AdamW(3e-5), keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=xla)
    rng = np.random.default_rng(0)
    x = {"input_word_ids": rng.integers(0, 30522, (BATCH * STEPS, SEQ_LEN), dtype="int32"),
         "input_mask": np.ones((BATCH * STEPS, SEQ_LEN), "int32"),
         "input_type_ids": np.zeros((BATCH * STEPS, SEQ_LEN), "int32")}
    y = rng.integers(0, 2, BATCH * STEPS).astype("float32")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # compile and warm up
    started = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    keras.mixed_precision.set_global_policy("float32")
    return BATCH * STEPS / (time.perf_counter() - started)


def main() -> None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and "--cpu" not in sys.argv:
        write_result("encoder_speed", {"skipped": "no GPU visible; run on a GPU machine (or pass --cpu)"})
        return
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    results = {"device": device, "seq_len": SEQ_LEN, "batch_size": BATCH, "examples_per_second": {}}
    for name, size in SIZES.items():
        for mixed in (False, True):
            for xla in (False, True):
                key = f"{name}/{'mixed' if mixed else 'fp32'}/{'xla' if xla else 'no-xla'}"
                results["examples_per_second"][key] = round(train_speed(size, mixed, xla), 1)
                print(key, results["examples_per_second"][key], flush=True)
    write_result("encoder_speed", results)


if __name__ == "__main__":
    main()
