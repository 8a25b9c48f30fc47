"""Horizon labels: hand-computed values, day boundaries, thresholds fitted on the training fold only."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobnet.features import FeatureParams
from lobnet.prep.labels import DOWN, FLAT, UP, LabelConfig, classify, compute_targets, fit_alpha

P = FeatureParams(levels=1)


def _events(mids_by_day: list[list[float]]) -> pl.DataFrame:
    rows = []
    for d, mids in enumerate(mids_by_day):
        for i, m in enumerate(mids):
            px = int(round(m * 10_000))
            rows.append(("X", dt.date(2020, 1, 2 + d), i, px + 100, px - 100))
    return pl.DataFrame(rows, schema=["symbol", "date", "time", "ask_px_1", "bid_px_1"], orient="row")


def test_smoothed_log_and_tlob_targets_by_hand():
    mids = [10.0, 10.1, 10.2, 10.0, 10.3, 10.4]
    t = compute_targets(_events([mids]), LabelConfig(horizons=(2,), method="tlob", smoothing=1), P)
    m = np.array(mids)
    smooth = [(m[i + 1 : i + 3].mean() - m[i]) / m[i] for i in range(4)]
    np.testing.assert_allclose(t["smooth_ret_2"].to_numpy()[:4], smooth, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t["logret_2"].to_numpy()[:4], np.log(m[2:] / m[:4]), rtol=1e-12)
    # TLOB, h = 1: w+ = mean(m[t+1], m[t+2]), w- = mean(m[t-1], m[t])
    tlob = [(m[i + 1 : i + 3].mean() - m[i - 1 : i + 1].mean()) / m[i - 1 : i + 1].mean() for i in range(1, 4)]
    np.testing.assert_allclose(t["tlob_ret_2"].to_numpy()[1:4], tlob, rtol=1e-12, atol=1e-15)
    assert t["tlob_ret_2"][0] is None  # needs h past events
    assert t["smooth_ret_2"][4:].null_count() == 2 and t["logret_2"][4:].null_count() == 2  # end of day
    np.testing.assert_allclose(t["spread_rel"].to_numpy(), 0.02 / m, rtol=1e-9)


def test_labels_never_cross_a_day():
    t = compute_targets(_events([[10, 11, 12, 13], [20, 21, 22, 23]]), LabelConfig(horizons=(2,)), P)
    assert t["smooth_ret_2"].is_null().to_list() == [False, False, True, True] * 2
    assert t["smooth_ret_2"][1] == pytest.approx((12.5 - 11) / 11)


def test_classes_and_alpha_modes():
    v = np.array([-0.3, -0.05, 0.0, 0.02, 0.5, np.nan])
    assert classify(v, 0.1).tolist() == [DOWN, FLAT, FLAT, FLAT, UP, -1]
    cfg = LabelConfig(alpha_mode="balanced")
    x = np.random.default_rng(0).normal(size=30_000)
    a = fit_alpha(cfg, x)
    frac_flat = (np.abs(x) <= a).mean()
    assert abs(frac_flat - 1 / 3) < 0.01
    assert fit_alpha(LabelConfig(alpha_mode="fixed", alpha=0.7), x) == 0.7
    spread = np.full(100, 0.001)
    assert fit_alpha(LabelConfig(alpha_mode="spread", spread_factor=2.0), x, spread) == pytest.approx(0.001)
    with pytest.raises(ValueError):
        LabelConfig(method="deeplob")


@settings(max_examples=30, deadline=None)
@given(train_end=st.integers(50, 400), seed=st.integers(0, 10_000))
def test_alpha_depends_on_training_rows_only(train_end, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=500)
    y = x.copy()
    y[train_end:] = rng.normal(scale=100, size=500 - train_end)  # change everything after the training fold
    train = np.arange(train_end)
    cfg = LabelConfig(alpha_mode="balanced")
    assert fit_alpha(cfg, x[train]) == fit_alpha(cfg, y[train])
