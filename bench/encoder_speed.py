"""Fine-tuning speed of BERT-small- and ELECTRA-base-sized encoders (random weights) on the path the
pipeline runs: SavedModels written by the converter's writers, loaded through the `hub_encoder`
family (hub.KerasLayer), sequence length 128, batch 32, with XLA on and off, float32 and the
mixed-precision policy: training examples/second.

Mixed precision there changes only the classifier head: a restored SavedModel's graph keeps the
dtypes it was saved with (float32), whatever Keras' global policy says, so the encoder itself runs in
float32 either way. Meant for a GPU; without one it records that it was skipped
(metrics/bench/encoder_speed.json). `python -m bench.encoder_speed --cpu` forces a (slow) CPU run."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from bench.common import REPO, write_result
from bench.encoder_path import pipeline_train_speed

SIZES = {  # the TF Hub models' shapes: small_bert L-4_H-512_A-8 and electra_base
    "bert_small": {"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 2048},
    "electra_base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072},
}
SEQ_LEN, BATCH, STEPS, VOCAB = 128, 32, 20, 30522


def hub_models(size: dict, root: Path) -> tuple[str, str]:
    """A preprocessor and an encoder of this size in TF Hub format, written once under `root`."""
    from imdbclf.ops.bert_converter import build_bert_encoder, save_encoder, save_preprocessor

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB - 5)]
    preprocessor, encoder = root / "preprocessor", root / "encoder"
    if not encoder.exists():
        save_preprocessor(vocab, preprocessor, lower_case=True)
        config = {**size, "vocab_size": VOCAB, "max_position_embeddings": 512, "type_vocab_size": 2}
        save_encoder(build_bert_encoder(config), encoder)
    return str(preprocessor), str(encoder)


def texts() -> list[str]:
    rng = random.Random(0)
    return [" ".join(f"w{rng.randrange(5, VOCAB)}" for _ in range(SEQ_LEN * 2)) for _ in range(BATCH * STEPS)]


def main() -> None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and "--cpu" not in sys.argv:
        write_result("encoder_speed", {"skipped": "no GPU visible; run on a GPU machine (or pass --cpu)"})
        return
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    results = {"device": device, "seq_len": SEQ_LEN, "batch_size": BATCH, "path": "hub_encoder family",
               "examples_per_second": {}}
    for name, size in SIZES.items():
        preprocessor, encoder = hub_models(size, REPO / ".cache" / "bench" / name)
        for mixed in (False, True):
            for xla in (False, True):
                key = f"{name}/{'mixed' if mixed else 'fp32'}/{'xla' if xla else 'no-xla'}"
                speed = pipeline_train_speed(preprocessor, encoder, texts(), SEQ_LEN, BATCH,
                                             mixed_precision="auto" if mixed else "off", xla=xla)
                results["examples_per_second"][key] = round(speed, 1)
                print(key, results["examples_per_second"][key], flush=True)
    write_result("encoder_speed", results)


if __name__ == "__main__":
    main()
