"""The `selection:` section of params.yaml: how the best epoch, the best config and the champion are chosen
(`imdbclf.selection`). Pure pydantic, here with the families' settings, so that the families that apply
the rule import no params.yaml code."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from imdbclf.settings.strict import Strict


class SelectionParams(Strict):
    """How the best epoch, the best config and the champion are chosen on validation (`imdbclf.selection`)."""

    # auto: accuracy when the training classes are balanced (see balanced_ratio), macro-F1 when they are not
    metric: Literal["auto", "accuracy", "macro_f1", "balanced_accuracy", "roc_auc"] = "auto"
    # the classes count as balanced when the largest has at most this many times the texts of the smallest
    balanced_ratio: float = Field(1.5, ge=1)
