"""The regression targets (lobnet/prep/targets.py) against brute-force definitions: horizons in seconds on the event
clock and in events, never past the end of a day, reading the future only where they should; the merged
two-symbol table; and the factors' responses, which are these targets."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from lobnet.data.schema import PRICE_SCALE
from lobnet.online.estimators import ew_regression
from lobnet.online.factors import LiquidityFactor, PairsFactor, VolatilityFactor
from lobnet.prep import targets

from .conftest import QUOTES, need

S = targets.NS


def _clock(seed=0, n=400, days=3):
    """Event times over several days, with ties, irregular gaps and a day id per row."""
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(days), n // days)
    gaps = rng.choice([0, 1, 2, 5, 40], size=len(day), p=[0.2, 0.3, 0.3, 0.15, 0.05]) * (S // 4)
    times = np.concatenate([np.cumsum(gaps[day == d]) + d * 10**14 for d in range(days)])
    return times, day


def test_the_target_row_is_the_first_event_at_or_after_t_plus_h_of_the_same_day():
    times, day = _clock()
    days = targets.day_index(day)
    for h_s in (0.25, 1.0, 3.0):
        rows = targets.horizon_rows(times, days, h_s, None)
        for i in range(len(times)):
            later = np.flatnonzero((day == day[i]) & (times >= times[i] + h_s * S))
            assert rows[i] == (later[0] if len(later) else -1), (h_s, i)
    rows = targets.horizon_rows(times, days, None, 7)
    for i in range(len(times)):
        assert rows[i] == (i + 7 if i + 7 < len(times) and day[i + 7] == day[i] else -1)
    with pytest.raises(ValueError, match="either in seconds"):
        targets.horizon_rows(times, days, 1.0, 5)


def test_realised_volatility_is_the_rms_of_grid_changes_anchored_at_the_event():
    times, day = _clock(1)
    mid = np.cumsum(np.random.default_rng(1).choice([-1, 0, 0, 1], size=len(times))).astype(float)
    days = targets.day_index(day)
    got = targets.realised_volatility(times, mid, days, horizon_s=2.0, grid_s=0.5)

    def mid_at(i, tau):  # as it stands at tau: the last row of i's day at or before it
        return mid[np.flatnonzero((day == day[i]) & (times <= tau))[-1]]

    for i in range(len(times)):
        last = times[day == day[i]].max()
        if times[i] + 2 * S > last:
            assert np.isnan(got[i]), i  # never past the end of its day
            continue
        steps = [mid_at(i, times[i] + j * S // 2) for j in range(5)]
        assert got[i] == pytest.approx(np.sqrt(np.mean(np.diff(steps) ** 2))), i


def test_targets_read_the_future_up_to_their_horizon_only():
    """Changing what happens after t + H leaves the target at t unchanged, and changing the event at t + H
    changes it; changing the future never changes anything the target's row already knew (its own value)."""
    times, day = _clock(2)
    days = targets.day_index(day)
    x = np.random.default_rng(2).uniform(100, 200, len(times))
    rows = targets.horizon_rows(times, days, 1.0, None)
    base = targets.liquidity_target(x, rows)
    i = int(np.flatnonzero(rows > 0)[len(rows) // 3])
    later = x.copy()
    later[rows[i] + 1 :] += 1000.0  # everything after the target row
    assert targets.liquidity_target(later, rows)[i] == base[i]
    at = x.copy()
    at[rows[i]] += 1.0
    assert targets.liquidity_target(at, rows)[i] == base[i] + 1.0
    vol = targets.realised_volatility(times, x, days, 1.0, 0.25)
    j = int(np.flatnonzero(np.isfinite(vol))[10])
    bump = x.copy()
    bump[times > times[j] + S] += 50.0  # after t + H
    assert targets.realised_volatility(times, bump, days, 1.0, 0.25)[j] == vol[j]


def test_features_are_unchanged_when_the_future_is_perturbed(synthetic_events):
    """The inputs side of a regression sample: the catalogue's features at t read nothing after t."""
    from lobnet.features import FeatureParams, compute_features

    day = synthetic_events.head(3000)
    params = FeatureParams(levels=10)
    full = compute_features(day, params)
    future = day.with_columns(
        pl.when(pl.int_range(pl.len()) >= 2000).then(pl.col("ask_sz_1") * 3 + 7).otherwise(pl.col("ask_sz_1"))
    )
    changed = compute_features(future, params)
    assert full.head(2000).equals(changed.head(2000))


@pytest.mark.realdata
def test_merge_pair_carries_both_symbols_latest_state_on_every_row():
    from lobnet.data import read_quotes

    ev = read_quotes(need(QUOTES), trades=False).filter(pl.col("date") <= pl.date(2013, 10, 8))
    wide = targets.merge_pair(ev, "AIG", "BAC")
    assert wide.height > 1000 and set(wide["symbol"].unique()) == {"AIG", "BAC"}
    steps = wide.select(pl.col("time").diff().over("date").drop_nulls())["time"]
    assert steps.len() > 0 and (steps > 0).all()  # time-ordered within each day
    assert wide.select(pl.struct("date", "time").is_unique().all()).item()
    updates = {s: targets.top_of_book_updates(ev.filter(pl.col("symbol") == s)) for s in ("AIG", "BAC")}
    rng = np.random.default_rng(0)
    for r in rng.choice(wide.height, 200, replace=False):
        row = wide.row(int(r), named=True)
        for side, sym in (("a", "AIG"), ("b", "BAC")):
            u = updates[sym].filter((pl.col("date") == row["date"]) & (pl.col("time") <= row["time"])).tail(1)
            assert u.height == 1, (r, sym)  # a row exists only once both have quoted that day
            for c in targets.QUOTE:
                assert row[f"{side}_{c}"] == u[c][0], (r, sym, c)
    with pytest.raises(ValueError, match="no \\['SPY'\\]"):
        targets.merge_pair(ev, "AIG", "SPY")


@pytest.mark.realdata
def test_the_factors_responses_are_the_targets(aig):
    """Each factor's response is the shared target on the factor's own rows: liquidity and volatility on AIG
    (first two days), pairs on AIG/BAC with the factor's own causal hedge ratio."""
    from lobnet.data import read_quotes

    ev = aig.filter(pl.col("date") <= pl.date(2013, 10, 8))
    p = LiquidityFactor(horizon_s=10.0).problem(ev)
    q = targets.top_of_book_updates(ev)
    days = targets.day_index(q["date"].rle_id().to_numpy())
    want = targets.liquidity_target(targets.liquidity(q), targets.horizon_rows(q["time"].to_numpy(), days, 10.0, None))
    np.testing.assert_array_equal(p.evaluate(0.9)[1], want)
    assert np.isnan(want[-1]) and np.isfinite(want).mean() > 0.9

    v = VolatilityFactor(grid_s=1.0, horizon_s=60.0).problem(ev)
    r = v.evaluate(0.98)[1]
    absolute = v.baselines(0.98)["last value"][0]  # |the one-second mid change| of each grid row
    for d in np.unique(v.day):  # on the grid: the RMS of the next 60 one-second changes, within the day
        rows = np.flatnonzero(v.day == d)
        for s in range(0, len(rows), 97):
            nxt = absolute[rows[s + 1 : s + 61]]
            want = np.sqrt(np.mean(nxt**2)) if s + 60 < len(rows) else np.nan
            np.testing.assert_allclose(r[rows[s]], want, equal_nan=True, err_msg=f"day {d} row {s}")
        assert np.isnan(r[rows[-60:]]).all()

    both = read_quotes(need(QUOTES), trades=False).filter(pl.col("date") <= pl.date(2013, 10, 7))
    pp = PairsFactor("AIG", "BAC", horizon_s=60.0).problem(both)
    _, response = pp.evaluate(0.996)
    wide = targets.merge_pair(both, "AIG", "BAC")
    a = ((wide["a_bid_px_1"] + wide["a_ask_px_1"]) / (2 * PRICE_SCALE)).to_numpy()
    b = ((wide["b_bid_px_1"] + wide["b_ask_px_1"]) / (2 * PRICE_SCALE)).to_numpy()
    beta = ew_regression(b, a, 0.996, ridge=1e-4)[0][:, 1]
    rows = targets.horizon_rows(wide["time"].to_numpy(), [np.arange(len(a))], 60.0, None)
    np.testing.assert_allclose(response, targets.pairs_target(a, b, beta, rows), equal_nan=True)
