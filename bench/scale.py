"""How time and memory grow with the rows of a user's table: the whole pipeline (split, tune, retrain,
evaluate, ensemble, report) of the two linear families on tables of 25,000 to 1,000,000 rows built from
the real archive, each stage run as its own `dvc repro -s` and measured (wall time, peak RSS of the stage's
process tree).

The table: the archive's 50,000 labelled reviews first; beyond them, each new review joins 8 to 16
sentences drawn from different reviews of the same class, so the vocabulary grows as text does (a
review repeated would not). One config per model, one seed, IMDB's sentiment as the label.

`python -m bench.scale [ROWS ...]` (default 25000 100000 200000 400000 1000000) writes
metrics/bench/scale.json and docs/scale.png; a size that fails (its stage's last line) is recorded
and stops the larger ones.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench.common import REPO, archive, make_project, write_result
from bench.probing import probe
from devkit.helpers import with_overrides
from imdbclf import data

SIZES = [25_000, 100_000, 200_000, 400_000, 1_000_000]
MODELS = ["nb_logreg", "tfidf_logreg"]
ONE_CONFIG = {  # what the stages would pick on IMDB: the grid's best, alone
    "nb_logreg.tune.grid": {"C": [0.1], "ngram_max": [3]},
    "tfidf_logreg.tune.grid": {"C": [4.0], "ngram_max": [2], "min_df": [2]},
}
STAGE_TIMEOUT_S = 4 * 3600


def reviews() -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        data.fetch_archive(str(archive()), Path(tmp) / "raw")
        frames = [data.read_reviews(Path(tmp) / "raw", split) for split in ("train", "test")]
    frame = pd.concat(frames, ignore_index=True)
    return frame[["text", "label"]]  # the label: negative or positive, the class folder's


def table(base: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """`rows` labelled reviews: `base` first, then reviews made of sentences of the same class's reviews."""
    if rows <= len(base):
        return base.sample(rows, random_state=seed).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    made = []
    for label, group in base.groupby("label"):
        sentences = np.array([s for text in group["text"] for s in re.split(r"(?<=[.!?])\s+", text) if s],
                             dtype=object)
        n = (rows - len(base)) * len(group) // len(base) + (label == base["label"].iloc[0])
        lengths = rng.integers(8, 17, n)
        picks = rng.integers(0, len(sentences), lengths.sum())
        texts = [" ".join(part) for part in np.split(sentences[picks], np.cumsum(lengths)[:-1])]
        made.append(pd.DataFrame({"text": texts, "label": label}))
    grown = pd.concat([base, *made], ignore_index=True).iloc[:rows]
    return grown.sample(frac=1, random_state=seed).reset_index(drop=True)


def stages() -> list[str]:
    return (["check-params", "fetch", "split"] + [f"code@{m}" for m in MODELS] + [f"tune@{m}" for m in MODELS]
            + [f"retrain@{m}" for m in MODELS] + [f"evaluate@{m}" for m in MODELS] + ["ensemble", "report"])


def run_size(base: pd.DataFrame, rows: int, work: Path) -> dict:
    source = work / f"table-{rows}.parquet"
    table(base, rows).to_parquet(source)
    params = with_overrides(yaml.safe_load((REPO / "params.yaml").read_text()),
                            {"models": MODELS, "data.source": str(source), "data.format": "table",
                             "split.group_by": "none", "data.max_download_mb": 8192,
                             "data.max_unpacked_mb": 8192, **ONE_CONFIG})  # a million reviews: ~1.3 GB of text
    project = make_project(work / f"p{rows}", params)
    measured = []
    for stage in stages():
        result = probe(f"{rows} {stage}", ["dvc", "repro", "-s", stage], project, timeout_s=STAGE_TIMEOUT_S,
                       expect_ok=True, env={"MLFLOW_TRACKING_URI": ""})
        measured.append({"stage": stage, "seconds": result["seconds"], "peak_rss_mb": result["peak_rss_mb"],
                         "ok": result["held"], "last_line": result["error"] or result["last_line"]})
        if not result["held"]:
            break
    scores = {m: json.loads((project / "metrics" / "scores" / f"{m}.json").read_text())
              for m in MODELS if (project / "metrics" / "scores" / f"{m}.json").exists()}
    source_mb = round(source.stat().st_size / 2**20, 1)
    shutil.rmtree(project), source.unlink()  # a million rows' project is tens of GB: one size on disk at a time
    return {"rows": rows, "stages": measured, "ok": all(s["ok"] for s in measured) and len(measured) == len(stages()),
            "seconds": round(sum(s["seconds"] for s in measured), 1),
            "peak_rss_mb": max(s["peak_rss_mb"] for s in measured), "scores": scores,
            "source_mb": source_mb}


def plot(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = [r["rows"] for r in results]
    names = [s["stage"] for s in results[0]["stages"]]
    for name in names:
        if not any(name.startswith(k) for k in ("fetch", "split", "tune", "retrain", "evaluate", "ensemble")):
            continue
        seconds = [next((s["seconds"] for s in r["stages"] if s["stage"] == name), np.nan) for r in results]
        memory = [next((s["peak_rss_mb"] for s in r["stages"] if s["stage"] == name), np.nan) / 1024 for r in results]
        left.plot(rows, np.array(seconds) / 60, marker="o", label=name)
        right.plot(rows, memory, marker="o", label=name)
    left.plot(rows, [r["seconds"] / 60 for r in results], "k--", marker="s", label="whole pipeline")
    if (base := next((r for r in results if r["rows"] == 100_000), None)) and rows[-1] > base["rows"]:
        linear = np.array([base["rows"], rows[-1]])  # the bar: within ~2x of linear from 100k
        for factor, style in ((1, ":"), (2, "-.")):
            left.plot(linear, factor * base["seconds"] / 60 * linear / base["rows"], color="grey", linestyle=style,
                      label=f"{factor}x linear from 100k")
    right.axhline(12, color="red", linestyle=":", label="12 GB budget")
    for ax, title in ((left, "wall time (min)"), (right, "peak memory (GiB)")):
        ax.set_xlabel("rows of the table"), ax.set_title(title), ax.grid(alpha=0.3)
    left.legend(fontsize=7, loc="upper left")
    right.legend(fontsize=7, loc="upper left")
    fig.suptitle("The pipeline of the two linear families, by table size (2 cores)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or SIZES
    base = reviews()
    results = []
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        for rows in sizes:
            results.append(run_size(base, rows, Path(tmp)))
            print(f"{rows} rows: {results[-1]['seconds'] / 60:.1f} min, peak {results[-1]['peak_rss_mb']} MB, "
                  f"{'ok' if results[-1]['ok'] else 'FAILED'}", flush=True)
            plot(results, REPO / "docs" / "scale.png")  # after each size: a run stopped later keeps these
            write_result("scale", {"sizes": results, "models": MODELS, "configs": ONE_CONFIG})
            if not results[-1]["ok"]:
                break


if __name__ == "__main__":
    main()
