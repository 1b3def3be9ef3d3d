"""The report's figures: train vs validation curves, the tuning grid, ROC curves. Drawn on matplotlib's
Figure objects, not pyplot, so that no backend is chosen for the process."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from imdbclf.atomic import atomic_path

if TYPE_CHECKING:
    from imdbclf.reporting.compare import Comparison

# The report's figures: file name (without .png) → title.
TITLES = {"history": "Train vs validation accuracy and loss per epoch",
          "tuning": "Tuning: validation accuracy of every trial per hyperparameter value (star: the chosen config)",
          "roc": "ROC curves on the test set (K classes: micro-averaged one-vs-rest)",
          "confusion": "Confusion matrices on the test set (rows: true class, share of each row)"}


def _single_epoch_note(name: str, frame: pd.DataFrame) -> str:
    row = frame.iloc[-1]
    return (f"{name}: one epoch (trained in a single pass), no curve to draw: train accuracy {row['accuracy']:.4f}, "
            f"loss {row['loss']:.4f}; validation accuracy {row['val_accuracy']:.4f}, loss {row['val_loss']:.4f}")


def plot_histories(histories: Mapping[str, pd.DataFrame], best_epochs: Mapping[str, int] | None = None) -> Figure:
    """Train and validation curves per epoch, one row per model, with the restored best epoch marked.

    A family trained in one epoch (TF-IDF) has no curve: a lone point on an axis stretched around it
    says nothing, so it gets a line of numbers under the figure instead.
    """
    best_epochs = best_epochs or {}
    curves = {name: frame for name, frame in histories.items() if len(frame) > 1}
    notes = [_single_epoch_note(name, frame) for name, frame in histories.items() if len(frame) == 1]
    note_height = 0.3 * len(notes) + (0.2 if notes else 0)
    if not curves:
        notes.insert(0, "Train vs validation per epoch: no model trained for more than one epoch.")
        fig = Figure(figsize=(10, 0.5 + note_height + 0.3))
        fig.text(0.02, 0.5, "\n".join(notes), va="center", fontsize=9)
        return fig
    legend = 0.4  # one legend above the panels: a legend inside a panel hides points or the epoch line
    height = 3.2 * len(curves) + note_height + legend
    fig = Figure(figsize=(10, height))
    axes = fig.subplots(len(curves), 2, squeeze=False)
    for row, (name, frame) in zip(axes, curves.items()):
        for ax, metric in zip(row, ("accuracy", "loss")):
            ax.plot(frame["epoch"], frame[metric], "o-", color="C0", label="train")
            ax.plot(frame["epoch"], frame[f"val_{metric}"], "o-", color="C1", label="validation")
            if name in best_epochs:
                ax.axvline(best_epochs[name], color="grey", linestyle=":",
                           label="epoch of the saved model (best validation accuracy)")
            ax.set(title=f"{name}: {metric}", xlabel="epoch", ylabel=metric)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    handles = {line.get_label(): line for ax in axes[:, 0] for line in ax.get_lines()}
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=len(handles), frameon=False, fontsize=9)
    if notes:
        fig.text(0.01, note_height / height / 2, "\n".join(notes), va="center", fontsize=9)
    fig.tight_layout(rect=(0, note_height / height, 1, 1 - legend / height))
    return fig


def _value_key(value: Any) -> tuple:
    """Numbers ascending, then anything else by its text: the same axis whatever order trials ran in."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _scientific(number: float) -> str:
    mantissa, exponent = f"{number:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def tuning_axis(trials: list[dict], key: str) -> list[tuple[Any, str]]:
    """One hyperparameter's distinct values in axis order, each with its tick label: learning rates
    such as 1e-4 and 5e-5 all in scientific notation rather than "0.0001" beside "5e-05"."""
    values = list({str(t["config"][key]): t["config"][key] for t in trials}.values())
    small = any(isinstance(v, float) and 0 < abs(v) < 1e-3 for v in values)

    def tick(value: Any) -> str:
        if isinstance(value, float):
            return _scientific(value) if small and value else f"{value:g}"
        return str(value)

    return [(value, tick(value)) for value in sorted(values, key=_value_key)]


TRIAL_STYLES = {"COMPLETE": {"marker": "o", "color": "C0", "label": "completed trial"},
                "PRUNED": {"marker": "x", "color": "grey", "label": "pruned trial (accuracy when stopped)"}}
CHOSEN_STYLE = {"marker": "*", "s": 260, "color": "gold", "edgecolors": "black", "linewidths": 0.8, "zorder": 3,
                "label": "chosen config (best completed trial)"}


def plot_tuning(tunes: Mapping[str, dict]) -> Figure:
    """Validation accuracy of every trial against each hyperparameter's value: one row per model, one
    column per hyperparameter, values in order, the chosen config starred. A column holds every trial,
    so in an OFAT search the other phases' trials sit at that phase's starting value."""
    keys = {name: list(tune["trials"][0]["config"]) for name, tune in tunes.items()}
    columns = max(len(k) for k in keys.values())
    fig = Figure(figsize=(3.3 * columns, 2.9 * len(tunes) + 0.5))
    axes = fig.subplots(len(tunes), columns, squeeze=False, sharey="row")
    shown: dict[str, Any] = {}
    for row, (name, tune) in zip(axes, tunes.items()):
        trials = tune["trials"]
        best = tune["best"]["config"]
        chosen = next((i for i, t in enumerate(trials) if t["config"] == best and t.get("state", "COMPLETE") ==
                       "COMPLETE"), None)
        for ax, key in zip(row, keys[name]):
            axis = tuning_axis(trials, key)
            ticks = [tick for _, tick in axis]
            position = {str(value): i for i, (value, _) in enumerate(axis)}
            x = np.array([position[str(t["config"][key])] for t in trials], dtype=float)
            for column in range(len(ticks)):  # trials at one value side by side, in the order they ran
                at = np.flatnonzero(x == column)
                if len(at) > 1:
                    half = min(0.2, 0.06 * (len(at) - 1))
                    x[at] += np.linspace(-half, half, len(at))
            accuracy = np.array([t["val_accuracy"] for t in trials])
            for state, style in TRIAL_STYLES.items():
                mask = np.array([t.get("state", "COMPLETE") == state for t in trials])
                if mask.any():
                    shown[state] = ax.scatter(x[mask], accuracy[mask], alpha=0.75, **style)
            if chosen is not None:
                shown["chosen"] = ax.scatter([x[chosen]], [accuracy[chosen]], **CHOSEN_STYLE)
            crowded = sum(map(len, ticks)) > 24  # long category names: slanted, so that they do not touch
            ax.set_xticks(range(len(ticks)), ticks, rotation=30 if crowded else 0, ha="right" if crowded else "center")
            for (value, _), label in zip(axis, ax.get_xticklabels()):
                if str(value) == str(best.get(key)):  # the chosen value, in bold
                    label.set_fontweight("bold")
            ax.set_xlim(-0.5, len(ticks) - 0.5)
            ax.margins(y=0.12)  # room for the star at the top
            ax.set_title(f"{name}: {key}", fontsize=10)
            ax.grid(alpha=0.3)
        row[0].set_ylabel("validation accuracy")
        for ax in row[len(keys[name]):]:
            ax.set_visible(False)
    handles = [shown[kind] for kind in (*TRIAL_STYLES, "chosen") if kind in shown]
    fig.legend(handles, [h.get_label() for h in handles], loc="upper center", ncol=len(handles), frameon=False,
               fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def plot_roc(rocs: Mapping[str, pd.DataFrame], aucs: Mapping[str, float] | None = None,
             micro: bool = False) -> Figure:
    """ROC curves of every model on the test set, each with the area under the curve drawn (`aucs`) in the
    legend: for K classes the micro-averaged curve, so its micro AUC, not the macro one of the table."""
    aucs = aucs or {}
    fig = Figure(figsize=(5.5, 5.5))
    ax = fig.subplots()
    kind = "micro AUC" if micro else "AUC"
    for name, frame in rocs.items():
        auc = aucs.get(name, np.nan)
        ax.plot(frame["fpr"], frame["tpr"], label=f"{name} ({kind} {auc:.4f})" if np.isfinite(auc) else name)
    ax.plot([0, 1], [0, 1], "k--", alpha=0.4, label="chance")
    title = "ROC on the test set" + (" (micro-averaged one-vs-rest)" if micro else "")
    ax.set(title=title, xlabel="false positive rate", ylabel="true positive rate",
           xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _matrix(confusion: dict) -> tuple[list[str], np.ndarray]:
    if "matrix" in confusion:
        return confusion["classes"], np.array(confusion["matrix"], dtype=float)
    return ["negative", "positive"], np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]],
                                              dtype=float)


def plot_confusion(confusions: Mapping[str, dict]) -> Figure:
    """Each model's confusion matrix (first seed), each row as shares of its true class, counts written in."""
    size = max(len(_matrix(c)[0]) for c in confusions.values())
    side = 1.2 + 0.45 * size
    fig = Figure(figsize=(side * len(confusions) + 0.5, side + 0.6))
    axes = fig.subplots(1, len(confusions), squeeze=False)[0]
    for ax, (name, confusion) in zip(axes, confusions.items()):
        classes, counts = _matrix(confusion)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.6 else "black")
        ax.set(title=name, xlabel="predicted", ylabel="true", xticks=range(len(classes)), yticks=range(len(classes)))
        ax.set_xticklabels(classes, rotation=45 if size > 4 else 0, fontsize=8)
        ax.set_yticklabels(classes, fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: Path) -> None:
    """Figures are drawn in memory with the rest of the report and written only at the end."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip("."))


def draw(comparison: Comparison) -> dict[str, Figure]:
    """Every figure of the report, by file name; the first seed's history and ROC points are drawn."""
    models = comparison.models
    return {"history": plot_histories({m.model: m.history for m in models},
                                      {m.model: m.retrain["seeds"][0]["best_epoch"] for m in models}),
            "tuning": plot_tuning({m.model: m.tune for m in models}),
            "roc": plot_roc({m.model: m.roc for m in models},
                            {m.model: m.evaluation["seeds"][0]["roc_curve_auc"] for m in models},
                            micro=len(models[0].evaluation.get("classes", [])) > 2),
            "confusion": plot_confusion({m.model: m.evaluation["seeds"][0]["confusion_matrix"] for m in models})}
