"""Tiny tables of labelled texts for the table source: three classes of support tickets, each written by
customers (the group column) who also write tickets of the other classes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

WORDS = {
    "billing": ["invoice", "charged", "refund", "payment", "card", "bill", "price"],
    "bug": ["crash", "error", "broken", "freezes", "button", "fails", "exception"],
    "praise": ["love", "great", "thanks", "wonderful", "excellent", "happy", "best"],
}
FILLER = ["the", "app", "today", "my", "account", "please", "again", "it", "is", "when", "i"]


def tickets(per_class: int = 30, customers: int = 15, seed: int = 0) -> pd.DataFrame:
    """ticket, customer, text, topic: per_class tickets of each topic, spread over the customers."""
    rng = random.Random(seed)
    rows = []
    for topic, words in WORDS.items():
        for i in range(per_class):
            text = " ".join(rng.sample(words, 3) + rng.sample(FILLER, 4))
            rows.append({"ticket": f"{topic[:2]}-{i:03d}", "customer": f"c{rng.randrange(customers):02d}",
                         "text": text, "topic": topic})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def write_table(path: Path, frame: pd.DataFrame) -> Path:
    """The frame as the file name says: .csv, .tsv, .parquet or .jsonl."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in frame.to_dict("records")))
    else:
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def table_params(params: dict, source: Path, **data) -> dict:
    """`params` (the repo's, shrunk) pointed at a table of tickets."""
    params["data"].update(format="table", source=str(source), text_column="text", label_column="topic",
                          group_column="customer", id_column="ticket", **data)
    params["split"].update(test_fraction=0.25, val_fraction=0.25)
    return params
