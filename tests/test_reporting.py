import numpy as np
import pandas as pd
import pytest

from imdbclf import reporting


def test_mcnemar_on_a_known_table():
    # 10 reviews only A gets right, 2 only B: exact two-sided p = 2 * P(X <= 2 | n=12, 1/2) = 158/4096.
    labels = np.ones(30, int)
    a = np.array([1] * 10 + [0] * 2 + [1] * 15 + [0] * 3)
    b = np.array([0] * 10 + [1] * 2 + [1] * 15 + [0] * 3)
    p, a_only, b_only = reporting.mcnemar_p(labels, a, b)
    assert (a_only, b_only) == (10, 2)
    assert p == pytest.approx(158 / 4096)
    assert reporting.mcnemar_p(labels, a, a)[0] == 1.0


def test_paired_bootstrap_ci_contains_the_true_difference():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    a = labels.copy()
    a[:200] = 1 - a[:200]          # A: 90% right
    b = labels.copy()
    b[100:400] = 1 - b[100:400]    # B: 85% right → true difference +0.05
    diff, low, high = reporting.paired_bootstrap_ci(labels, a, b, samples=2000, confidence=0.95, seed=0)
    assert diff == pytest.approx(0.05)
    assert low < 0.05 < high and low > 0
    assert high - low < 0.04


def test_most_confidently_wrong_orders_by_confidence():
    frame = pd.DataFrame({"text": list("abcd"), "label": [1, 0, 1, 0]})
    proba = np.array([0.1, 0.95, 0.8, 0.4])  # a and b are wrong; b more confidently
    worst = reporting.most_confidently_wrong(frame, proba, n=10)
    assert list(worst["text"]) == ["b", "a"]
