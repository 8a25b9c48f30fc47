"""One-pass estimators against batch references on real data, their numerics, factors and calibration."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobnet.online import EWMean, EWRegression, EWVar, ew_mean, ew_regression, ew_var
from lobnet.online.factors import (
    FactorProblem,
    LiquidityFactor,
    PairsFactor,
    VolatilityFactor,
    calibrate,
    periods,
    sample_on_grid,
)

from .conftest import QUOTES, need

ALPHAS = (0.5, 0.97, 0.985, 0.996)


@pytest.fixture(scope="module")
def amzn_series(amzn5):
    mid = ((amzn5["ask_px_1"] + amzn5["bid_px_1"]) / 2e4).to_numpy()
    size = (amzn5["ask_sz_1"] + amzn5["bid_sz_1"]).to_numpy().astype(float)
    return mid, size


@pytest.mark.realdata
@pytest.mark.parametrize("alpha", ALPHAS)
def test_mean_and_variance_equal_polars_on_every_prefix_of_real_data(amzn_series, alpha):
    mid, size = amzn_series
    for x in (mid, size):
        m, v = EWMean(alpha), EWVar(alpha)
        one_mean = np.array([m.update(float(t)) for t in x])
        one_var = np.array([v.update(float(t)) for t in x])
        s = pl.Series(x)
        ref_mean = s.ewm_mean(alpha=1 - alpha, adjust=False).to_numpy()
        ref_var = s.ewm_var(alpha=1 - alpha, adjust=False, bias=True).to_numpy()
        np.testing.assert_allclose(one_mean, ref_mean, rtol=1e-12)
        np.testing.assert_allclose(one_var, ref_var, rtol=1e-8, atol=1e-12 * np.var(x))
        # the batch forms equal the one-pass values on every prefix
        np.testing.assert_allclose(ew_mean(x, alpha), one_mean, rtol=1e-12)
        bm, bv = ew_var(x, alpha)
        np.testing.assert_allclose(bm, one_mean, rtol=1e-12)
        np.testing.assert_allclose(bv, one_var, rtol=1e-7, atol=1e-12 * np.var(x))


@settings(max_examples=40, deadline=None)
@given(
    xs=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60),
    split=st.integers(0, 60),
    alpha=st.floats(0.05, 1.0),
    burn_in=st.integers(1, 8),
)
def test_update_many_equals_repeated_update(xs, split, alpha, burn_in):
    xs = np.array(xs)
    split = min(split, len(xs))
    for cls in (EWMean, EWVar):
        a, b = cls(alpha, burn_in=burn_in), cls(alpha, burn_in=burn_in)
        seq = [a.update(float(x)) for x in xs]
        b.update_many(xs[:split])  # continue from a part-way state: burn-in can straddle the two calls
        got = b.update_many(xs[split:])
        np.testing.assert_allclose(got, seq[split:], rtol=1e-9, atol=1e-9)
        assert b.n == a.n
    r1, r2 = EWRegression(alpha, burn_in=burn_in), EWRegression(alpha, burn_in=burn_in)
    ys = np.sin(xs) + 0.3 * xs
    for x, y in zip(xs, ys, strict=True):
        r1.update(float(x), float(y))
    r2.update_many(xs[:split], ys[:split])
    r2.update_many(xs[split:], ys[split:])
    np.testing.assert_allclose(r2.coef, r1.coef, rtol=1e-7, atol=1e-7)


def test_burn_in_seeds_the_recursion_with_plain_estimates():
    x = [4.0, 8.0, 6.0, 10.0]
    m = EWMean(0.5, burn_in=3)
    assert [m.update(v) for v in x] == [4.0, 6.0, 6.0, 8.0]  # plain means, then 0.5 * 6 + 0.5 * 10
    v = EWVar(0.5, burn_in=3)
    got = [v.update(t) for t in x]
    assert got[:3] == pytest.approx([0.0, 4.0, np.var([4, 8, 6])])
    assert got[3] == pytest.approx(0.5 * (np.var([4, 8, 6]) + 0.5 * (10 - 6) ** 2))


def test_state_survives_pickle_and_copy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    for est in (EWMean(0.9, burn_in=5), EWVar(0.9, burn_in=5)):
        for t in x[:100]:
            est.update(float(t))
        clones = [pickle.loads(pickle.dumps(est)), copy.deepcopy(est), copy.copy(est)]
        ref = [est.update(float(t)) for t in x[100:]]
        for c in clones:
            assert [c.update(float(t)) for t in x[100:]] == ref
    r = EWRegression(0.95, n_features=2, ridge=0.1)
    for t in range(50):
        r.update((x[t], x[t + 1]), x[t + 2])
    r2 = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(r2.coef, r.coef)
    assert r2.predict((1.0, 2.0)) == r.predict((1.0, 2.0))


def test_variance_stays_accurate_on_price_level_inputs():
    """Values near 1e4 with a variance of 1e-6: the stable form keeps its digits; E[x²] - E[x]² does not."""
    rng = np.random.default_rng(1)
    dev = rng.normal(scale=1e-3, size=20_000)
    alpha = 0.999
    ref = EWVar(alpha)
    exact = np.array([ref.update(float(d)) for d in dev])  # the variance does not depend on the level
    est = EWVar(alpha)
    got = np.array([est.update(float(1e4 + d)) for d in dev])
    assert np.max(np.abs(got[1000:] - exact[1000:]) / exact[1000:]) < 1e-6
    m1, m2 = EWMean(alpha), EWMean(alpha)
    naive = np.array([m2.update((1e4 + d) ** 2) - m1.update(1e4 + d) ** 2 for d in dev])
    assert np.max(np.abs(naive[1000:] - exact[1000:]) / exact[1000:]) > 1e-2  # the textbook formula fails here


@pytest.mark.realdata
def test_regression_equals_weighted_least_squares_on_real_data():
    ev = __import__("lobnet.data", fromlist=["read_quotes"]).read_quotes(
        need(QUOTES / "aig") / "20131008_quote.zip", trades=False
    )
    bac = __import__("lobnet.data", fromlist=["read_quotes"]).read_quotes(
        QUOTES / "bac" / "20131008_quote.zip", trades=False
    )
    both = (
        pl.concat([ev, bac])
        .sort("time")
        .with_columns(
            pl.when(pl.col("symbol") == "AIG")
            .then((pl.col("ask_px_1") + pl.col("bid_px_1")) / 2e4)
            .forward_fill()
            .alias("a"),
            pl.when(pl.col("symbol") == "BAC")
            .then((pl.col("ask_px_1") + pl.col("bid_px_1")) / 2e4)
            .forward_fill()
            .alias("b"),
        )
        .drop_nulls(["a", "b"])
        .head(60_000)
    )
    a, b = both["a"].to_numpy(), both["b"].to_numpy()
    alpha = 0.996
    r = EWRegression(alpha)
    one = []
    for i, (x, y) in enumerate(zip(b, a, strict=True)):
        r.update(float(x), float(y))
        if i in (999, 19_999, 59_999):
            one.append(r.coef)
    batch = ew_regression(b, a, alpha)[0]
    for i, c in zip((999, 19_999, 59_999), one, strict=True):
        w = alpha ** np.arange(i, -1, -1)  # weight alpha^(t-i) on observation i
        Z = np.column_stack([np.ones(i + 1), b[: i + 1]])
        sw = np.sqrt(w)
        wls = np.linalg.lstsq(Z * sw[:, None], a[: i + 1] * sw, rcond=None)[0]
        np.testing.assert_allclose(c, wls, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(batch[i], wls, rtol=1e-6, atol=1e-8)


def test_regression_is_defined_before_it_has_enough_data():
    r = EWRegression(0.9)
    assert np.isfinite(r.coef).all() and r.predict(3.0) == 0.0
    r.update(2.0, 4.0)  # one observation, two coefficients: the minimum-norm solution
    assert np.isfinite(r.coef).all() and r.predict(2.0) == pytest.approx(4.0)
    r2 = EWRegression(0.9, ridge=1.0)
    r2.update(2.0, 4.0)
    assert np.isfinite(r2.coef).all()


def test_time_grid_sampling():
    times = np.array([0, 400, 1_000, 2_500, 2_600]) * 1_000_000  # ms in ns
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    grid, v = sample_on_grid(times, values, 1_000_000_000)
    assert grid.tolist() == [1_000_000_000, 2_000_000_000] and v.tolist() == [3.0, 3.0]


def test_calibration_recovers_the_optimal_alpha_of_a_local_level_model():
    """A random walk observed with noise: the best EW forecast of the next observation has a known smoothing
    constant (Muth 1960): 1 - alpha = (-q + sqrt(q² + 4q)) / 2 with q the signal-to-noise variance ratio."""
    rng = np.random.default_rng(3)
    n, q = 200_000, 0.01
    level = np.cumsum(rng.normal(scale=np.sqrt(q), size=n))
    x = level + rng.normal(size=n)
    response = np.append(x[1:], np.nan)
    prob = FactorProblem(
        "local level", np.arange(n), np.zeros(n, dtype=int), 1, lambda a: (ew_mean(x, a), response), lambda a: {}
    )
    res = calibrate(prob, np.zeros(n, dtype=np.int8), alpha_min=0.5, alpha_max=0.999)
    expected = 1 - (-q + np.sqrt(q * q + 4 * q)) / 2
    assert res["alpha_opt"] == pytest.approx(expected, abs=0.006)
    assert not res["at_search_boundary"]


@pytest.mark.realdata
def test_factors_use_the_past_and_responses_the_future(aig):
    day = aig.filter(pl.col("date") == pl.date(2013, 10, 9))
    cut = day.height // 2
    changed = day.with_columns(
        pl.when(pl.int_range(pl.len()) > cut)
        .then(pl.col("bid_sz_1") * 7 + 3)
        .otherwise(pl.col("bid_sz_1"))
        .alias("bid_sz_1")
    )
    for fac in (LiquidityFactor(), VolatilityFactor()):
        p1, p2 = fac.problem(day), fac.problem(changed)
        f1, r1 = p1.evaluate(0.97)
        f2, r2 = p2.evaluate(0.97)
        t_cut = day["time"][cut]
        past = p1.times <= t_cut
        n = int(past.sum())
        np.testing.assert_array_equal(f1[:n], f2[:n])  # factors: only the past
        if fac.__class__ is LiquidityFactor:
            assert not np.array_equal(r1[:n], r2[:n])  # responses: the future (10 s ahead) does change them
            safe = p1.times + p1.horizon_ns < t_cut
            np.testing.assert_array_equal(r1[safe], r2[safe])
    # responses never reach past the end of the day
    p = LiquidityFactor().problem(day)
    _, r = p.evaluate(0.9)
    assert np.isnan(r[p.times > p.times.max() - p.horizon_ns]).all()


@pytest.mark.realdata
def test_pairs_factor_and_periods_on_aig_bac():
    from lobnet.data import read_quotes

    ev = read_quotes(need(QUOTES), trades=False)
    prob = PairsFactor("AIG", "BAC").problem(ev.filter(pl.col("date") <= pl.date(2013, 10, 8)))
    per = periods(prob, calib_days=1)
    assert set(np.unique(per)) == {0, 1}
    f, r = prob.evaluate(0.996)
    assert np.isfinite(f).all() and np.isfinite(r).sum() > 0.9 * len(r)
    with pytest.raises(ValueError, match="needs symbols"):
        PairsFactor("AIG", "SPY").problem(ev)


def test_calibrate_cli_on_synthetic(tmp_path):
    out = tmp_path / "cal"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lobnet.cli.calibrate",
            "factor=volatility",
            "data=synthetic",
            "data.events=30000",
            f"output_dir={out}",
            f"cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={tmp_path / 'h'}",
            "calibration.coarse=12",
            "calibration.refine=6",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "calibration.json").read_text())
    for k in ("alpha_opt", "mse_opt", "alphas", "mse", "oos_mse", "baselines"):
        assert k in res
    assert len(res["alphas"]) == len(res["mse"]) >= 12
    assert res["mse_opt"] == min(res["mse"])
    assert {"last value", "SMA (same memory)"} == set(res["baselines"])
    # every naive predictor against the factor on the same test samples, with the paired interval
    tc = res["test_comparison"]
    assert tc["reference"] == "EW factor" and tc["samples"] > 100 and tc["block"] >= 1 and not tc["not_compared"]
    for name in ("last value", "SMA (same memory)"):
        s = tc["predictors"][name]
        assert s["delta_mse"]["lo"] <= s["delta_mse"]["mean"] <= s["delta_mse"]["hi"]
        assert s["mse_vs_EW factor"] == pytest.approx(s["mse"] / tc["predictors"]["EW factor"]["mse"])
    assert "R² test" in r.stdout
    assert (out / "error_vs_alpha.png").stat().st_size > 5000 and (out / "factor_vs_response.png").exists()


@pytest.mark.realdata
def test_factor_baselines_are_causal_and_beat_the_majority_floor(amzn5):
    from lobnet.features import FeatureParams, compute_features
    from lobnet.online.baselines import baseline_scores, ew_ofi, rls_forecast
    from lobnet.prep.labels import LabelConfig, compute_targets, labels_for_fold
    from lobnet.prep.splits import walk_forward

    p, cfg = FeatureParams(levels=5), LabelConfig()
    fr = pl.concat([compute_features(amzn5, p), compute_targets(amzn5, cfg, p)], how="horizontal")
    fold = walk_forward([(0, fr.height)], window=100, max_horizon=100, blocks=5, train_blocks=2)[0]
    scores = baseline_scores(fr, fold.train, fold.test, cfg, labels_for_fold(fr, fold.train, cfg)[0])
    for k in ("10", "50", "100"):
        assert scores[k]["ew_ofi_sign"]["macro_f1"] > scores[k]["majority"]["macro_f1"] + 0.1
    cut = 80_000
    feats = ["ofi_1", "queue_imbalance"]
    base = rls_forecast(fr.head(100_000), feats, "smooth_ret_10", 10, 0.99)
    pert = fr.head(100_000).with_columns(
        pl.when(pl.int_range(pl.len()) > cut)
        .then(pl.col("smooth_ret_10") * -5)
        .otherwise(pl.col("smooth_ret_10"))
        .alias("smooth_ret_10")
    )
    # the target of row s is known at s + 10: changing targets after the cut changes forecasts only from cut + 10 on
    np.testing.assert_array_equal(rls_forecast(pert, feats, "smooth_ret_10", 10, 0.99)[: cut + 11], base[: cut + 11])
    np.testing.assert_array_equal(ew_ofi(fr.head(cut), 0.9), ew_ofi(fr, 0.9)[:cut])
