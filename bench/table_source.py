"""The table source against the archive source, on the real data: the aclImdb archive exported to two
Parquet tables (train and test: review id, text, sentiment, the movie id as the group column), then the
TF-IDF baseline through the real pipeline (fetch → split → tune → retrain → evaluate) once from the
archive and once from the tables. The splits must hold the same reviews with the same labels and
groups, and the test accuracy must be the same. Writes metrics/bench/table_source.json."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from bench.common import REPO, archive, make_project, run, write_result
from imdbclf import data

COLUMNS = {"id": "review_id", "text": "review", "label": "sentiment", "movie": "movie_id"}


def export(source: Path, out: Path) -> dict[str, Path]:
    """The archive's labelled reviews as train.parquet and test.parquet, one row per review."""
    raw = out / "raw"
    data.fetch_archive(str(source), raw)
    tables = {}
    for split in ("train", "test"):
        frame = data.read_reviews(raw, split, movies_required=True).rename(columns=COLUMNS)
        tables[split] = out / f"imdb_{split}.parquet"
        frame.to_parquet(tables[split], index=False)
    return tables


def pipeline(root: Path, params: dict) -> tuple[dict, float]:
    project = make_project(root, params)
    started = time.perf_counter()
    run(["dvc", "repro", "evaluate@tfidf_logreg"], project, env={"MLFLOW_TRACKING_URI": ""})
    return {"root": project}, time.perf_counter() - started


def prepared(project: Path, split: str) -> pd.DataFrame:
    frame = pd.read_parquet(project / "data" / "prepared" / f"{split}.parquet")
    return frame.rename(columns={"movie": "group"})[["id", "text", "label", "group"]]


def main() -> None:
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    base["models"] = ["tfidf_logreg"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-table-"))
    tables = export(archive(), tmp)
    from_archive = {**base, "data": {**base["data"], "source": str(archive())}}
    from_tables = {**base, "data": {**base["data"], "format": "table", "source": str(tables["train"]),
                                    "test_source": str(tables["test"]), "text_column": "review",
                                    "label_column": "sentiment", "group_column": "movie_id",
                                    "id_column": "review_id"}}
    runs = {}
    for name, params in (("archive", from_archive), ("table", from_tables)):
        project, seconds = pipeline(tmp / name, params)
        root = project["root"]
        runs[name] = {"root": root, "seconds": round(seconds, 1),
                      "eval": json.loads((root / "metrics" / "eval" / "tfidf_logreg.json").read_text())}
        print(f"{name}: pipeline in {seconds:.0f} s, TF-IDF test accuracy {runs[name]['eval']['accuracy']:.4f}")
    same_split = {split: bool(prepared(runs["archive"]["root"], split).equals(prepared(runs["table"]["root"], split)))
                  for split in ("train", "val", "test")}
    result = {
        "source": str(archive().name), "tables": {k: v.name for k, v in tables.items()},
        "same_split": same_split,
        "rows": {split: len(prepared(runs["table"]["root"], split)) for split in ("train", "val", "test")},
        "test_accuracy": {name: r["eval"]["accuracy"] for name, r in runs.items()},
        "same_test_accuracy": runs["archive"]["eval"]["accuracy"] == runs["table"]["eval"]["accuracy"],
        "pipeline_seconds": {name: r["seconds"] for name, r in runs.items()},
    }
    write_result("table_source", result)


if __name__ == "__main__":
    main()
