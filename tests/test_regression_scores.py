"""Scores of regression predictions and the paired comparison of two predictors on the same samples
(lobnet/evaluation/regression.py), against their definitions and on constructed cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from lobnet.evaluation.regression import compare, horizon_in_samples, paired_mse_difference, scores


def _series(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    signal = np.convolve(rng.standard_normal(n + 49), np.ones(50) / 50, mode="valid")  # overlapping, like targets
    return signal, signal + 0.05 * rng.standard_normal(n), signal + 0.5 * rng.standard_normal(n)


def test_scores_are_their_definitions():
    y, good, _ = _series()
    s = scores(good, y, reference_mean=0.3)
    assert s["mse"] == pytest.approx(np.mean((good - y) ** 2))
    assert s["mae"] == pytest.approx(np.mean(np.abs(good - y)))
    assert s["r2_oos"] == pytest.approx(1 - s["mse"] / np.mean((y - 0.3) ** 2))
    assert s["corr"] == pytest.approx(np.corrcoef(good, y)[0, 1])
    assert scores(np.full_like(y, 0.3), y, 0.3)["r2_oos"] == pytest.approx(0.0)  # the constant itself: R² 0


def test_the_paired_interval_tells_the_better_predictor_and_contains_zero_for_equals():
    y, good, bad = _series()
    d, lo, hi = paired_mse_difference(good, bad, y, block=50, reps=299)
    assert d == pytest.approx(np.mean((good - y) ** 2) - np.mean((bad - y) ** 2))
    assert lo <= d <= hi < 0  # the good predictor's MSE is lower, and the interval says so
    rng = np.random.default_rng(1)
    a, b = y + 0.2 * rng.standard_normal(len(y)), y + 0.2 * rng.standard_normal(len(y))  # equally good
    _, lo, hi = paired_mse_difference(a, b, y, block=50, reps=299)
    assert lo < 0 < hi


def test_compare_scores_every_predictor_on_the_samples_all_of_them_have():
    y, good, bad = _series()
    bad = bad.copy()
    bad[:100] = np.nan  # a predictor without a forecast yet: those samples leave every score
    out = compare(y, {"factor": good, "naive": bad}, "factor", reference_mean=0.0, horizon_samples=50, reps=199)
    assert out["samples"] == len(y) - 100 and out["block"] == 50
    f, n = out["predictors"]["factor"], out["predictors"]["naive"]
    assert f["mse"] == pytest.approx(np.mean((good[100:] - y[100:]) ** 2))
    assert n["mse_vs_factor"] == pytest.approx(n["mse"] / f["mse"]) and n["mse_vs_factor"] > 1
    assert n["delta_mse"]["lo"] > 0  # worse than the factor, and the interval excludes 0
    assert "delta_mse" not in f


def test_the_block_is_the_horizon_in_samples_within_a_day():
    times = np.concatenate([np.arange(0, 100) * 10, np.arange(0, 50) * 10])  # two days, a sample every 10 ns
    day = np.repeat([0, 1], [100, 50])
    assert horizon_in_samples(times, day, 50) == 5
