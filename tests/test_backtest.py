"""The backtest: hand-computed fills and costs, the exact PnL decomposition and regime attribution on the real
AMZN day, causality (a changed future leaves the past's equity alone), and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from lobnet.evaluation.backtest import Costs, backtest, backtest_forecasts, positions_from_classes, regimes
from lobnet.features.catalogue import FeatureParams
from lobnet.prep.labels import DOWN, FLAT, UP

US = 1_000  # ns


def test_positions_from_classes_hold_or_close_on_flat():
    pred = np.array([-1, FLAT, UP, FLAT, -1, DOWN, FLAT, UP])
    assert positions_from_classes(pred, "close").tolist() == [0, 0, 1, 0, 0, -1, 0, 1]
    assert positions_from_classes(pred, "hold").tolist() == [0, 0, 1, 1, 1, -1, -1, 1]
    with pytest.raises(ValueError, match="flat must be one of"):
        positions_from_classes(pred, "reverse")


def test_fills_prices_and_costs_by_hand():
    # prices in source units (dollars x 10000): a one-cent spread around $10.00, the mid rising one cent at row 2
    t = np.array([0, 10, 20, 30, 40, 50]) * US
    bid = np.array([99_950, 99_950, 100_050, 100_050, 100_050, 100_050], float)
    ask = bid + 100
    target = np.array([1, 1, 1, -1, -1, -1], float)  # buy at row 0, sell two units at row 3, close at the end
    c = Costs(shares=100, fee_per_share=0.003, latency_us=15.0, flat="close")
    r = backtest(t, bid, ask, target, c)
    # the buy arrives at 15 us: the book after row 1 (10 us), ask $10.005; the sell of 2 arrives at 45 us: book
    # after row 4, bid $10.005; the closing buy of 1 at row 5 (nothing later): ask $10.015
    assert r["trades"] == 3 and r["shares_traded"] == 400
    cash = -100 * 10.005 + 200 * 10.005 - 100 * 10.015  # -$1.00
    assert r["fees"] == pytest.approx(400 * 0.003)
    assert r["net"] == pytest.approx(cash - 400 * 0.003)
    # paper: +1 from row 0 to 3 (the mid $10.00 -> $10.01 at row 2), -1 after on a still mid: 100 x $0.01
    assert r["gross"] == pytest.approx(1.0)
    assert r["spread"] == pytest.approx(400 * 0.005)  # half a cent per share, every fill
    assert r["latency"] == pytest.approx(0.0)  # the mid did not move between any decision and its fill
    assert r["net"] == pytest.approx(r["gross"] - r["latency"] - r["spread"] - r["fees"])
    assert r["_equity"][-1] == pytest.approx(r["net"])
    assert r["mean_fill_delay_us"] == pytest.approx((10 + 10 + 0) / 3)


def test_latency_moves_the_fill_and_is_charged_as_the_mid_moves():
    t = np.array([0, 10, 20, 30]) * US
    bid = np.array([100_000, 100_000, 100_200, 100_200], float)
    ask = bid + 100
    target = np.array([1, 1, 1, 1], float)
    quick = backtest(t, bid, ask, target, Costs(latency_us=5.0, fee_per_share=0.0))
    slow = backtest(t, bid, ask, target, Costs(latency_us=25.0, fee_per_share=0.0))
    # decided at row 0; at 5 us the book is row 0's, at 25 us row 2's, two cents higher: 100 shares x $0.02
    assert quick["latency"] == pytest.approx(0.0) and slow["latency"] == pytest.approx(2.0)
    assert quick["gross"] == slow["gross"] == pytest.approx(2.0)
    assert slow["net"] == pytest.approx(quick["net"] - 2.0)
    # an engine's own time per event is added to the latency: 20 us of compute with 5 us of network = 25 us
    computed = backtest(t, bid, ask, target, Costs(latency_us=5.0, fee_per_share=0.0), delay_ns=np.full(4, 20 * US))
    assert computed["net"] == pytest.approx(slow["net"]) and computed["compute_delay_charged"]


def test_an_order_waits_for_the_side_it_needs_and_nothing_trades_before_a_two_sided_book():
    t = np.arange(5) * US
    nan = np.nan
    bid = np.array([nan, 100_000, 100_000, 100_000, 100_000])
    ask = np.array([100_100, 100_100, nan, nan, 100_300])
    target = np.array([1, 1, 1, 1, 1], float)  # row 0 has no bid: the first order goes at row 1
    r = backtest(t, bid, ask, target, Costs(latency_us=1.5, fee_per_share=0.0))
    # decided at row 1, arrives at 2.5 us (row 2's book), no ask until row 4: buys at $10.03, closes at $10.00
    assert r["trades"] == 2 and r["net"] == pytest.approx(-100 * 0.03)


def _amzn_signal(ev):
    """A real forecast: the sign of an EW mean of level-1 OFI outside a band."""
    from lobnet.features import FeatureSpec, compute_features
    from lobnet.online.estimators import ew_mean

    X = compute_features(ev, FeatureSpec(groups=("ofi",)).params(5), ["ofi"])
    sig = ew_mean(np.nan_to_num(X["ofi_1"].to_numpy().astype(float)), 0.9)
    band = np.quantile(np.abs(sig), 0.8)
    return np.where(sig > band, UP, np.where(sig < -band, DOWN, FLAT))


def _book(ev):
    return ev["time"].to_numpy(), ev["bid_px_1"].to_numpy().astype(float), ev["ask_px_1"].to_numpy().astype(float)


def test_decomposition_and_regimes_add_up_on_the_real_day(amzn5):
    ev = amzn5.head(60_000)
    t, bid, ask = _book(ev)
    target = positions_from_classes(_amzn_signal(ev), "hold")
    labels = regimes(ev, FeatureParams(levels=5))
    r = backtest(t, bid, ask, target, Costs(), regime_labels=labels)
    assert r["trades"] > 100 and r["spread"] > 0 and r["fees"] > 0
    assert r["net"] == pytest.approx(r["gross"] - r["latency"] - r["spread"] - r["fees"], abs=1e-6)
    assert r["_equity"][-1] == pytest.approx(r["net"], abs=1e-9)
    assert set(r["regimes"]) == {"spread", "hour", "volatility"}
    for kind, rows in r["regimes"].items():
        assert sum(row["events"] for row in rows.values()) == ev.height, kind
        assert sum(row["trades"] for row in rows.values()) == r["trades"], kind
        for part in ("gross", "latency", "spread", "fees", "net"):
            assert sum(row[part] for row in rows.values()) == pytest.approx(r[part], abs=1e-6), (kind, part)
    assert list(r["regimes"]["volatility"])[0].startswith("low")
    # a slower path fills later, on the same paper trades
    slow = backtest(t, bid, ask, target, Costs(latency_us=5_000))
    assert slow["mean_fill_delay_us"] > r["mean_fill_delay_us"] and slow["gross"] == r["gross"]


def test_a_changed_future_leaves_the_past_equity_unchanged(amzn5):
    ev = amzn5.head(30_000)
    t, bid, ask = _book(ev)
    target = positions_from_classes(_amzn_signal(ev), "hold")
    base = backtest(t, bid, ask, target)["_equity"]
    cut = 20_000
    shifted_bid, shifted_ask, other = bid.copy(), ask.copy(), target.copy()
    shifted_bid[cut + 1 :] += 5_000  # the future book 50 cents higher
    shifted_ask[cut + 1 :] += 5_000
    other[cut + 1 :] = -other[cut + 1 :]  # and the future forecasts reversed
    got = backtest(t, shifted_bid, shifted_ask, other)["_equity"]
    assert np.array_equal(got[: cut + 1], base[: cut + 1])
    assert not np.array_equal(got[cut + 1 :], base[cut + 1 :])  # the change is seen once it happens


def test_forecasts_on_a_feature_table_trade_each_day_as_the_raw_book_would(amzn5):
    """Training's per-fold backtest reads the prepared table (mid and spread, float32) instead of the raw book, and
    trades forecasts made at some events only: the same as the raw book with the position held between them, day
    by day."""
    from lobnet.features import compute_features

    ev = amzn5.head(40_000)
    frame = compute_features(ev, FeatureParams(levels=5), ["mid", "spread"])
    rows = np.arange(1_000, 39_000, 7)  # forecasts at every 7th event, as a test fold's samples might be
    target = positions_from_classes(_amzn_signal(ev)[rows], "hold")
    got = backtest_forecasts(frame, rows, target, dollars_per_tick=0.01)
    t, bid, ask = _book(ev)
    last = np.searchsorted(rows, np.arange(ev.height), side="right") - 1  # the latest forecast at each event
    held = np.where(last >= 0, target[np.maximum(last, 0)], 0.0)
    sl = slice(rows[0], rows[-1] + 1)
    ref = backtest(t[sl], bid[sl], ask[sl], held[sl], Costs())
    assert got["trades"] == ref["trades"] > 100 and got["shares_traded"] == ref["shares_traded"]
    for k in ("net", "gross", "latency", "spread", "fees", "max_drawdown"):
        assert got[k] == pytest.approx(ref[k], abs=0.01 + 1e-6 * ref["shares_traded"]), k  # float32 mid and spread
    # two symbol-days are traded apart, each ending flat: the totals are the two days' sums
    second = frame.with_columns(date=frame["date"] + __import__("datetime").timedelta(days=1))
    both = backtest_forecasts(
        pl.concat([frame, second]), np.concatenate([rows, rows + frame.height]), np.concatenate([target, target]), 0.01
    )
    for k in ("net", "gross", "spread", "fees", "trades"):
        assert both[k] == pytest.approx(2 * got[k], rel=1e-9, abs=1e-9), k
    with pytest.raises(ValueError, match="rows must increase"):
        backtest_forecasts(frame, rows[::-1], target, 0.01)
    with pytest.raises(ValueError, match=r"no \['spread'\]"):
        backtest_forecasts(frame.drop("spread"), rows, target, 0.01)


def test_bad_input_names_the_row():
    t = np.array([0, 5, 3, 9]) * US
    b = np.full(4, 100_000.0)
    with pytest.raises(ValueError, match="row 2: time goes backwards"):
        backtest(t, b, b + 100, np.zeros(4))
    t = np.arange(4) * US
    with pytest.raises(ValueError, match="row 1: target position nan"):
        backtest(t, b, b + 100, np.array([0, np.nan, 0, 0]))
    with pytest.raises(ValueError, match="ask has shape"):
        backtest(t, b, b[:3], np.zeros(4))
    with pytest.raises(ValueError, match="never quoted on both sides"):
        backtest(t, b, np.full(4, np.nan), np.zeros(4))
    with pytest.raises(ValueError, match="row 1: no ask to buy from"):
        backtest(t, b, np.array([100_100, 100_100, np.nan, np.nan]), np.array([0, 1, 1, 1.0]), Costs(latency_us=1.5))
    with pytest.raises(ValueError, match="backtest.flat must be one of"):
        Costs(flat="reverse")


def test_naive_benchmarks_flat_buy_and_hold_and_random_forecasts_with_the_same_turnover():
    from lobnet.evaluation.backtest import Costs, backtest, naive_benchmarks, random_targets

    rng = np.random.default_rng(11)
    n = 5000
    t = np.arange(n, dtype=np.int64) * 10**8
    mid = 1_000_000 + np.cumsum(rng.integers(-1, 2, n)) * 100.0
    bid, ask = mid - 100, mid + 100
    target = np.repeat(rng.choice([-1.0, 0.0, 1.0], n // 50), 50)
    turnover = np.abs(np.diff(target, prepend=0.0, append=0.0)).sum()
    paths = random_targets(target, 20, seed=3)
    assert paths.shape == (20, n) and set(np.unique(paths)) <= {-1.0, 0.0, 1.0}
    for p in paths:  # the same turnover, to within the one jump where the rotated ends meet, and the same holdings
        assert abs(np.abs(np.diff(p, prepend=0.0, append=0.0)).sum() - turnover) <= 4.0
        assert sorted(p) == sorted(target) and not np.array_equal(p, target)
    # a Sharpe head's fractional positions keep their values and turnover too
    frac = np.tanh(rng.normal(size=n).cumsum() / 10)
    for p in random_targets(frac, 5, seed=1):
        assert np.allclose(np.sort(p), np.sort(frac))
        assert abs(np.abs(np.diff(p)).sum() - np.abs(np.diff(frac)).sum()) <= 2.0
    c = Costs(latency_us=0.0)
    nb = naive_benchmarks(t, bid, ask, target, c, draws=50)
    assert nb["flat"] == 0.0 and nb["random_draws"] == 50
    assert nb["buy_and_hold"] == pytest.approx(backtest(t, bid, ask, np.ones(n), c)["net"])
    assert nb["forecast_net"] == pytest.approx(backtest(t, bid, ask, target, c)["net"])
    lo, med, hi = nb["random_quartiles"]
    assert lo <= med <= hi <= nb["random_p95"] and 0 < nb["p_random"] <= 1
    # a perfect forecast of the next move beats every random path with its turnover
    perfect = np.sign(np.diff(mid, append=mid[-1]))
    assert naive_benchmarks(t, bid, ask, perfect, Costs(latency_us=0.0, fee_per_share=0.0), draws=50)["p_random"] < 0.05
