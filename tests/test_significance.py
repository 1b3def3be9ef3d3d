import tracemalloc

import numpy as np
import pytest

from imdbclf import significance


def test_mcnemar_on_a_known_table():
    # 10 reviews only A gets right, 2 only B: exact two-sided p = 2 * P(X <= 2 | n=12, 1/2) = 158/4096.
    labels = np.ones(30, int)
    a = np.array([1] * 10 + [0] * 2 + [1] * 15 + [0] * 3)
    b = np.array([0] * 10 + [1] * 2 + [1] * 15 + [0] * 3)
    p, a_only, b_only = significance.sign_test(significance.correctness(labels, a), significance.correctness(labels, b))
    assert (a_only, b_only) == (10, 2)
    assert p == pytest.approx(158 / 4096)
    assert significance.sign_test(labels * 1.0, labels * 1.0)[0] == 1.0


def test_paired_bootstrap_ci_contains_the_true_difference():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    a = labels.copy()
    a[:200] = 1 - a[:200]          # A: 90% right
    b = labels.copy()
    b[100:400] = 1 - b[100:400]    # B: 85% right → true difference +0.05
    diff = significance.correctness(labels, a) - significance.correctness(labels, b)
    mean, low, high = significance.bootstrap_ci(diff, samples=2000, confidence=0.95, seed=0)
    assert mean == pytest.approx(0.05)
    assert low < 0.05 < high and low > 0
    assert high - low < 0.04


def test_bootstrap_memory_does_not_grow_with_samples_times_reviews():
    rng = np.random.default_rng(0)
    diff = rng.choice([-1.0, 0.0, 1.0], size=25_000, p=[0.05, 0.85, 0.10])
    movies = rng.integers(0, 3_500, size=25_000)
    tracemalloc.start()
    significance.bootstrap_ci(diff, samples=2000, confidence=0.95, seed=0)
    significance.bootstrap_ci(diff, samples=2000, confidence=0.95, seed=0, clusters=movies)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # indices of 2000 resamples × 25,000 reviews would take 400 MB
    assert peak < 30e6, f"peak {peak / 1e6:.1f} MB"


def test_cluster_bootstrap_is_wider_when_a_movie_s_reviews_agree():
    rng = np.random.default_rng(2)
    movies = np.repeat(np.arange(200), 25)
    correct = np.repeat(rng.random(200) < 0.8, 25).astype(float)  # a model right or wrong per movie
    _, low_iid, high_iid = significance.bootstrap_ci(correct, 2000, 0.95, seed=0)
    mean, low, high = significance.bootstrap_ci(correct, 2000, 0.95, seed=0, clusters=movies)
    assert low < mean < high
    assert (high - low) > 3 * (high_iid - low_iid)  # about sqrt(25) = 5 times wider


def test_holm_adjustment():
    assert significance.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert significance.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_pairwise_uses_every_seed_and_adjusts_p_values():
    labels = np.ones(1000, int)
    a = np.ones((3, 1000), int)
    a[0, :150] = 0                 # seed 0 of A is worse than B; seeds 1 and 2 are perfect
    b = np.ones((1, 1000), int)
    b[0, :100] = 0
    c = np.ones(1000, int)
    c[:300] = 0
    correct = {name: significance.correctness(labels, p) for name, p in (("a", a), ("b", b), ("c", c))}
    rows = {(r["a"], r["b"]): r for r in significance.pairwise(correct, 500, 0.95, seed=0)}
    assert rows[("a", "b")]["accuracy_diff"] == pytest.approx(0.95 - 0.9)  # 1 - 0.15/3 vs 0.9
    for row in rows.values():
        assert row["mcnemar_p_holm"] >= row["mcnemar_p"]
