"""The pipeline against the tool a user would pick instead: all-MiniLM-L6-v2 fine-tuned on the same
IMDB reviews (sequence length 128, batch 32) through the pipeline's path (converted TF Hub SavedModel
→ `hub_encoder` family, tf-keras) and with `transformers` + PyTorch, on the same machine in one run:
training examples per second side by side. On a GPU both also run there.
Writes metrics/bench/encoder_vs_torch.json."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.common import archive, converted_minilm, minilm_checkpoint, write_result
from bench.encoder_path import pipeline_train_speed

SEQ_LEN, BATCH, STEPS = 128, 32, 8


def imdb_texts(n: int) -> list[str]:
    from imdbclf import data

    with tempfile.TemporaryDirectory() as tmp:
        data.fetch_archive(str(archive()), Path(tmp) / "raw")
        return data.read_reviews(Path(tmp) / "raw", "train")["text"].sample(n, random_state=0).tolist()


def torch_train_speed(texts: list[str], device: str) -> float:
    """Examples/second of a plain transformers fine-tuning loop, after one warm-up step."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    checkpoint = minilm_checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5)
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]

    def step(batch: list[str]) -> None:
        inputs = tokenizer(batch, truncation=True, max_length=SEQ_LEN, padding="max_length", return_tensors="pt")
        labels = torch.arange(len(batch)) % 2
        loss = model(**{k: v.to(device) for k, v in inputs.items()}, labels=labels.to(device)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step(batches[0])
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in batches:
        step(batch)
    if device == "cuda":
        torch.cuda.synchronize()
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    import tensorflow as tf
    import torch

    preprocessor, encoder = converted_minilm()
    texts = imdb_texts(BATCH * STEPS)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and tf.config.list_physical_devices("GPU") else [])
    result = {"model": "all-MiniLM-L6-v2 (6 layers, 384 hidden)", "seq_len": SEQ_LEN, "batch_size": BATCH,
              "examples_per_run": len(texts), "cpu_threads": os.cpu_count(), "examples_per_second": {}}
    for device in devices:
        with tf.device("/GPU:0" if device == "cuda" else "/CPU:0"):
            ours = pipeline_train_speed(str(preprocessor), str(encoder), texts, SEQ_LEN, BATCH)
        theirs = torch_train_speed(texts, device)
        result["examples_per_second"][device] = {"pipeline_tf_hub": round(ours, 2), "transformers_torch":
                                                 round(theirs, 2), "pipeline_over_torch": round(ours / theirs, 3)}
        print(f"{device}: pipeline {ours:.2f} ex/s, transformers+torch {theirs:.2f} ex/s", flush=True)
    if len(devices) == 1:
        result["gpu"] = "not measured: no GPU visible in this run"
    write_result("encoder_vs_torch", result)


if __name__ == "__main__":
    main()
