"""`python -m imdbclf compare`: the DVC experiments side by side in a table that fits a terminal — per
experiment its champion and each model's validation score (of the selection metric) and test accuracy,
then the settings that differ between the experiments shown. `dvc exp show` lists every parameter,
dependency hash and metric key as a column of its own, hundreds of them."""

from __future__ import annotations

import json
import subprocess
import textwrap
from typing import Any

from imdbclf.errors import UserError

SCORES, CHAMPION = "metrics/scores/", "metrics/champion.json"


def experiments(cwd: str | None = None) -> list[dict[str, Any]]:
    """The workspace, each commit and its experiments, as `dvc exp show --json` gives them: name,
    params (flattened) and headline metrics; rows without results (a commit never run) are left out."""
    done = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise UserError(f"dvc exp show failed: {' '.join(done.stderr.split())[:300]}")
    rows = []
    for commit in json.loads(done.stdout or "[]"):
        revs = [commit] + [rev for exp in commit.get("experiments") or [] for rev in exp.get("revs", [])]
        for rev in revs:
            data = rev.get("data") or {}
            metrics = {path: (found.get("data") or {}) for path, found in (data.get("metrics") or {}).items()}
            if not metrics.get(CHAMPION):
                continue
            params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
            name = rev.get("name") or (rev["rev"] if rev.get("rev") == "workspace" else str(rev.get("rev", ""))[:7])
            rows.append({"name": name, "params": _flat(params),
                         "champion": metrics[CHAMPION],
                         "models": {path[len(SCORES):-len(".json")]: values for path, values in metrics.items()
                                    if path.startswith(SCORES) and values}})
    return rows


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def table(rows: list[dict[str, Any]], width: int = 120) -> str:
    """Each experiment's line: its champion, and per model `val score / test accuracy`; below it, the
    settings in which it differs from the others shown, wrapped to `width`."""
    if not rows:
        return "no experiment with results yet: run dvc repro or dvc exp run first"
    models = list(dict.fromkeys(m for row in rows for m in row["models"]))
    metric = rows[0]["champion"].get("metric", "accuracy")
    name_width = min(max(len(r["name"]) for r in rows), 24)
    cells = max(len(m) for m in [*models, "0.0000/0.0000"])
    head = f"{'experiment':{name_width}}  {'champion':14}" + "".join(f"  {m[:cells]:>{cells}}" for m in models)
    keys = sorted({k for r in rows for k in r["params"]})
    varying = [k for k in keys if len({json.dumps(r["params"].get(k), sort_keys=True) for r in rows}) > 1]
    lines = [f"per model: validation {metric} / test accuracy", head]
    for row in rows:
        scores = ""
        for m in models:
            got = row["models"].get(m)
            shown = f"{got.get(f'val_{metric}', float('nan')):.4f}/{got.get('accuracy', float('nan')):.4f}" \
                if got else "—"
            scores += f"  {shown:>{cells}}"
        lines.append(f"{row['name'][:name_width]:{name_width}}  {str(row['champion'].get('champion'))[:14]:14}{scores}")
        changed = ", ".join(f"{k}={_short(row['params'].get(k))}" for k in varying)
        if changed:
            lines += textwrap.wrap(changed, width, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(line[:width] for line in lines)


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
