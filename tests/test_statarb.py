"""Statistical arbitrage (lobnet.statarb) on simulated data with known answers, and lobnet-statarb on the real
daily bars."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from tests.conftest import DATA_DIR, need

BARS = DATA_DIR / "bars"


def _dates(n: int) -> pl.Series:
    return pl.Series("date", [dt.date(2000, 1, 3) + dt.timedelta(days=i) for i in range(n)])


def _walks(rng, n: int, k: int, sd: float = 0.01) -> dict[str, np.ndarray]:
    return {f"S{i}": np.cumsum(rng.normal(0, sd, n)) + 4.0 for i in range(k)}


def _cointegrated(rng, n: int, beta: float = 0.8, phi: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    x = np.cumsum(rng.normal(0, 0.01, n)) + 4.0
    ou = np.zeros(n)
    for t in range(1, n):
        ou[t] = phi * ou[t - 1] + rng.normal(0, 0.004)
    return beta * x + 0.5 + ou, x


def test_a_cointegrated_pair_built_by_construction_is_found_among_random_walks():
    from lobnet.statarb.pairs import SCREEN_COLUMNS, PairSettings, screen

    rng = np.random.default_rng(1)
    a, b = _cointegrated(rng, 600)
    panel = pl.DataFrame({"date": _dates(600), "A": a, "B": b, **_walks(rng, 600, 6)})
    sc = screen(panel, PairSettings())
    assert sc.columns == SCREEN_COLUMNS and sc.height == 28  # 8 symbols: 28 pairs tested, all reported
    kept = sc.filter(pl.col("selected"))
    assert kept["pair"].to_list() == ["A/B"]
    row = kept.row(0, named=True)
    assert row["beta"] == pytest.approx(0.8, abs=0.1)
    assert row["half_life"] == pytest.approx(np.log(0.5) / np.log(0.9), rel=0.5)  # 6.6 days by construction
    assert row["p_bonferroni"] == pytest.approx(min(1.0, row["p_value"] * 28))
    assert row["johansen_trace"] > row["johansen_crit95"]


def test_independent_random_walks_are_rejected_at_the_nominal_rate_after_correction():
    from lobnet.statarb.pairs import PairSettings, screen

    rng = np.random.default_rng(2)
    reps, raw, tested, fwer_bon, fwer_bh = 40, 0, 0, 0, 0
    for _ in range(reps):
        sc = screen(pl.DataFrame({"date": _dates(400), **_walks(rng, 400, 6)}), PairSettings(min_obs=200))
        p = sc["p_value"].to_numpy()
        raw, tested = raw + int((p < 0.05).sum()), tested + p.size
        fwer_bon += bool((sc["p_bonferroni"].to_numpy() < 0.05).any())
        fwer_bh += bool((sc["p_bh"].to_numpy() < 0.05).any())
    # each raw test rejects about 5 % of the time (600 tests: 30 expected, the 99.9 % binomial range is 13-50)
    assert 12 <= raw <= 52, raw / tested
    # after correction over the 15 pairs of each universe, a false discovery in a whole screen is rare: at most
    # the nominal 5 % (under the null, BH controls the family-wise rate too); P(X >= 7 | 40, 0.05) < 0.5 %
    assert fwer_bon <= 6 and fwer_bh <= 6, (fwer_bon, fwer_bh)
    assert raw / tested > fwer_bon / reps / 15  # the correction is what removes the raw rejections


def test_pair_positions_follow_entry_exit_and_stop():
    from lobnet.statarb.pairs import pair_returns, positions

    z = np.array([0.0, 2.5, 1.0, 0.2, -0.1, -2.2, -3.0, -5.0, -4.5, -2.1, -0.5, -2.6])
    pos = positions(z, entry=2.0, exit=0.0, stop=4.0)
    # short the spread above +2, close when it crosses 0; long below -2, stopped out beyond -4, no re-entry on
    # that side until |z| is back inside the entry band; then long again
    assert pos.tolist() == [0, -1, -1, -1, 0, 1, 1, 0, 0, 0, 0, 1]
    ra, rb = np.full(12, 0.01), np.zeros(12)
    r = pair_returns(pos, ra, rb, beta=1.0, cost_bps=0.0)
    assert r[2] == pytest.approx(-0.01 / 2)  # short A held from day 1 loses A's 1 % on (1 + |beta|) of notional
    r_cost = pair_returns(pos, np.zeros(12), rb, beta=1.0, cost_bps=10.0)
    assert r_cost[1] == pytest.approx(-10e-4)  # opening: 10 bp on each of two legs, per unit of gross notional


def test_walk_forward_trades_only_what_each_formation_period_chose():
    from lobnet.statarb.pairs import PairSettings, walk_forward

    rng = np.random.default_rng(3)
    n = 1000
    a, b = _cointegrated(rng, n, phi=0.8)
    panel = pl.DataFrame({"date": _dates(n), "A": a, "B": b, **_walks(rng, n, 3)})
    s = PairSettings(cost_bps=1.0)
    wf = walk_forward(panel, s, formation=300, trading=100)
    assert wf.windows.height == 7 and (wf.windows["pairs_tested"] == 10).all()
    assert (wf.windows["pairs_selected"] >= 1).sum() >= 5  # the built-in pair is found in most windows
    assert "A/B" in set(wf.trades["pair"])  # and traded out of sample
    assert wf.returns["ret"].sum() > 0  # a truly mean-reverting spread, traded out of sample, earns
    # causality: changing the prices after a window's formation leaves that window's screen unchanged
    later = panel.with_columns(pl.when(pl.int_range(n) >= 300).then(pl.col("A") + 0.3).otherwise(pl.col("A")))
    wf2 = walk_forward(later, s, formation=300, trading=100)
    assert wf2.screens[0].equals(wf.screens[0])


def test_pca_residual_s_scores_are_causal_and_a_mean_reverting_residual_is_traded_for_profit():
    from lobnet.statarb.factors import PCASettings, pca_strategy, s_scores

    rng = np.random.default_rng(4)
    T, N = 700, 8
    market = rng.normal(0, 0.01, T)
    R = market[:, None] * rng.uniform(0.8, 1.2, N) + rng.normal(0, 0.004, (T, N))
    ou = np.zeros(T)
    for t in range(1, T):
        ou[t] = 0.8 * ou[t - 1] + rng.normal(0, 0.01)
    R[:, 0] += np.diff(ou, prepend=0.0)  # stock 0's price carries a mean-reverting residual
    P = 100 * np.cumprod(1 + R, axis=0)
    prices = pl.DataFrame({"date": _dates(T), **{f"X{i}": P[:, i] for i in range(N)}})
    cfg = PCASettings(k=1, corr_window=120, reg_window=60, cost_bps=0.0)
    s_t = s_scores(R, 400, cfg)[0]
    R2 = R.copy()
    R2[401:] += 0.05
    assert np.allclose(s_scores(R2, 400, cfg)[0], s_t)  # nothing after day t enters day t's s-scores
    res = pca_strategy(prices, cfg)
    assert res.returns.height == T - 1 - 120
    r = res.returns
    assert r["residual_pnl"].sum() > 0 and r["ret"].sum() > 0
    assert r["ret"].to_numpy() == pytest.approx(r["gross"].to_numpy())  # no costs configured


def test_momentum_follows_a_trend_and_is_causal_and_charges_turnover():
    from lobnet.statarb.momentum import MomentumSettings, momentum

    rng = np.random.default_rng(5)
    T = 900
    up = 100 * np.exp(np.cumsum(rng.normal(0.002, 0.01, T)))
    down = 100 * np.exp(np.cumsum(rng.normal(-0.002, 0.01, T)))
    flat = 100 * np.exp(np.cumsum(rng.normal(0.0, 0.01, T)))
    prices = pl.DataFrame({"date": _dates(T), "UP": up, "DOWN": down, "FLAT": flat})
    cfg = MomentumSettings(cost_bps=0.0)
    ts = momentum(prices, cfg, "time_series")
    xs = momentum(prices, cfg, "cross_section")
    assert ts["ret"].sum() > 0 and xs["ret"].sum() > 0  # long the riser, short the faller
    costly = momentum(prices, MomentumSettings(cost_bps=50.0), "time_series")
    assert costly["ret"].sum() < ts["ret"].sum() and ts["turnover"].gt(0).sum() >= 1
    cut = momentum(prices.head(600), cfg, "time_series")
    assert np.allclose(cut["ret"].to_numpy()[:-1], ts["ret"].to_numpy()[: cut.height - 1])
    with pytest.raises(ValueError, match="time_series or cross_section"):
        momentum(prices, cfg, "value")


def test_decay_by_year_and_rolling_sharpe_band():
    from lobnet.statarb.decay import by_year, rolling_sharpe

    rng = np.random.default_rng(6)
    n = 3 * 365
    dates = [dt.date(2010, 1, 1) + dt.timedelta(days=i + 1) for i in range(n)]
    edge = np.r_[np.full(365, 0.002), np.full(365, 0.001), np.zeros(365)]  # an edge that halves, then is gone
    r = pl.DataFrame({"date": dates, "ret": edge + rng.normal(0, 0.01, n)})
    d = by_year(r, dt.date(2010, 1, 1))
    assert d["year"].to_list() == [1, 2, 3] and d["days"].to_list() == [365, 365, 365]
    assert d["sharpe"][0] > d["sharpe"][2]
    assert 0.4 < d["hit_rate"][2] < 0.6
    ro = rolling_sharpe(r, 252)
    assert ro.height == n - 251 and (ro["low"] < ro["sharpe"]).all() and (ro["sharpe"] < ro["high"]).all()
    # Lo's band on a year of daily data is about +-2 (annualised) wide at 95 %
    assert float((ro["high"] - ro["low"]).median()) == pytest.approx(2 * 1.96, rel=0.1)


@pytest.mark.realdata
def test_lobnet_statarb_on_the_real_daily_bars(tmp_path):
    from hydra import compose, initialize_config_dir

    from lobnet.cli import CONF_DIR
    from lobnet.cli.statarb import run

    daily = need(BARS / "daily")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "statarb",
            [
                f"data.path={daily}",
                "data.symbols=[SPY,QQQ,IWM,EEM,IBM,BAC]",
                f"momentum.paths=[{need(BARS / 'forex_daily')}]",
                f"output_dir={tmp_path / 'out'}",
                f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                f"mlflow.artifact_location={tmp_path / 'art'}",
            ],
        )
    r = run(cfg)
    out = tmp_path / "out"
    screen = pl.read_csv(out / "screen.csv")
    for c in ("pair", "p_value", "p_bonferroni", "p_bh", "half_life", "selected"):
        assert c in screen.columns
    assert screen.height == 15 and r.summary["pairs_tested"] == 15
    p = screen["p_value"].to_numpy()
    assert np.allclose(screen["p_bonferroni"].to_numpy(), np.minimum(1, p * 15))
    assert (screen["p_bh"].to_numpy() >= p - 1e-12).all()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["strategies"]) == {"pairs_static", "pairs_walk_forward", "pca_residual",
                                          "momentum_time_series", "momentum_cross_section"}  # fmt: skip
    returns = pl.read_csv(out / "returns.csv", try_parse_dates=True)
    assert set(returns["period"]) == {"research", "holdout"}
    hold = returns.filter(pl.col("period") == "holdout")
    for strategies, key in (("pairs|pca", "holdout_start"), ("momentum", "holdout_start_momentum")):
        first = hold.filter(pl.col("strategy").str.contains(strategies))["date"].min()
        assert first >= dt.date.fromisoformat(summary[key]), (strategies, first)  # nothing earlier is held out
    # the unadjusted splits of these files (SPY's none; QQQ 2000, IWM and EEM 2005, BAC 2004, IBM 1999) are removed
    jumps = pl.read_csv(out / "jumps.csv")
    assert {"QQQ", "IWM", "BAC", "IBM"} <= set(jumps["symbol"])
    for f in ("decay.csv", "rolling_sharpe.csv", "windows.csv", "equity.png", "decay.png"):
        assert (out / f).exists(), f
    import mlflow

    run_info = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(summary["mlflow_run"])
    assert run_info.info.status == "FINISHED" and "pairs_tested" in run_info.data.metrics
