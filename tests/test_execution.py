"""The execution simulator (lobnet.evaluation.execution) on hand-made books with known answers, and on a real
LOBSTER day."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from lobnet.evaluation.backtest import Costs
from tests.conftest import AIG, AMZN5, need

CENT = 100  # one cent in source units (dollars x 10000)


def _book(mid_cents: np.ndarray, half_spread: int = 1, sizes=(1000,), trades=None):
    """A book whose mid follows ``mid_cents`` (one event a second), ``len(sizes)`` levels a cent apart."""
    from lobnet.evaluation.execution import Book

    n, L = len(mid_cents), len(sizes)
    m = np.asarray(mid_cents, dtype=float) * CENT
    lv = np.arange(L) * CENT
    tp, ts, tside = np.full(n, np.nan), np.zeros(n), np.zeros(n, dtype=np.int64)
    for row, price, size, side in trades or []:
        tp[row], ts[row], tside[row] = price, size, side
    return Book(
        time=np.arange(n, dtype=np.int64) * 10**9,
        ask_px=m[:, None] + half_spread * CENT + lv,
        ask_sz=np.tile(np.asarray(sizes, dtype=float), (n, 1)),
        bid_px=m[:, None] - half_spread * CENT - lv,
        bid_sz=np.tile(np.asarray(sizes, dtype=float), (n, 1)),
        trade_px=tp,
        trade_sz=ts,
        trade_side=tside,
    )


def test_twap_in_a_flat_market_costs_half_the_spread_plus_fees_per_share():
    from lobnet.evaluation.execution import Parent, execute

    book = _book(np.full(200, 10_000))  # $100.00 mid, $0.02 spread
    costs = Costs(fee_per_share=0.003, latency_us=500.0)
    for side in (1, -1):
        r = execute(book, Parent(side, 1000, 0, 200), "twap", costs, children=10)
        per_share = 0.01 + 0.003  # half the spread, the fee
        assert r["shares"] == 1000 and r["fills"] == 10
        assert r["shortfall_usd"] == pytest.approx(1000 * per_share)
        assert r["shortfall_bps"] == pytest.approx(per_share / 100.0 * 1e4)
        assert r["timing_bps"] == pytest.approx(0.0) and r["impact_bps"] == pytest.approx(0.0)
        assert r["spread_bps"] == pytest.approx(1.0) and r["fees_bps"] == pytest.approx(0.3)
        assert r["avg_price"] == pytest.approx(100.0 + side * 0.01)
    imm = execute(book, Parent(1, 1000, 0, 200), "immediate", costs)
    assert imm["fills"] == 1 and imm["shortfall_usd"] == pytest.approx(13.0)


def test_a_perfect_forecast_times_the_children_better_than_twap_by_the_computable_amount():
    from lobnet.evaluation.execution import Parent, execute
    from lobnet.prep.labels import DOWN, FLAT, UP

    # ten intervals of 10 events; within each the mid falls 5 cents, then climbs back
    path = np.tile(np.r_[10_000 - np.arange(6), 10_000 - np.arange(4, 0, -1)], 10)
    book = _book(path)
    nxt = np.diff(path, append=path[-1])
    forecast = np.where(nxt > 0, UP, np.where(nxt < 0, DOWN, FLAT))  # the sign of the next move, known exactly
    costs = Costs(fee_per_share=0.0, latency_us=0.0)
    parent = Parent(1, 1000, 0, 100)
    twap = execute(book, parent, "twap", costs, children=10)
    timed = execute(book, parent, "forecast", costs, children=10, forecast=forecast)
    # TWAP buys at each interval's first event (mid 100.00); the timed buy waits while a fall is forecast and
    # buys at the bottom, 5 cents lower: 5 bp of a $100 arrival mid, everything else equal
    assert twap["timing_bps"] == pytest.approx(0.0)
    assert timed["timing_bps"] == pytest.approx(-5.0)
    assert twap["shortfall_bps"] - timed["shortfall_bps"] == pytest.approx(5.0)
    assert timed["spread_bps"] == pytest.approx(twap["spread_bps"], rel=1e-3)
    # the sell side: waiting while a rise is forecast sells at the top, i.e. at the interval's first event here
    sell = execute(book, Parent(-1, 1000, 0, 100), "forecast", costs, children=10, forecast=forecast)
    assert sell["timing_bps"] == pytest.approx(0.0)


def test_marketable_fills_never_take_more_than_the_displayed_size():
    from lobnet.evaluation.execution import Parent, execute, fill_marketable

    book = _book(np.full(20, 10_000), sizes=(50, 50, 100))
    fills = fill_marketable(book, 0, 1, 300, Costs(latency_us=0.0), book.n - 1)
    assert sum(f.shares for f in fills) == 300
    by_row = {}
    for f in fills:
        level = int(round((f.price - book.ask_px[f.row, 0]) / CENT))
        assert f.shares <= book.ask_sz[f.row, level]
        by_row.setdefault(f.row, 0.0)
        by_row[f.row] += f.shares
    assert by_row == {0: 200.0, 1: 100.0}  # the book's 200 shares at the arrival, the rest at the next book
    r = execute(book, Parent(1, 300, 0, 20), "immediate", Costs(latency_us=0.0, fee_per_share=0.0))
    # 50 at +1c, 50 at +2c, 100 at +3c, then 50 at +1c and 50 at +2c: impact beyond the touch is 1c on 50 + 2c on 100
    # + 1c on 50 of the next book's second level
    assert r["impact_usd"] == pytest.approx(0.01 * 50 + 0.02 * 100 + 0.01 * 50)
    assert r["spread_usd"] == pytest.approx(0.01 * 300)
    with pytest.raises(ValueError, match="too little size"):
        fill_marketable(book, 0, 1, 10_000, Costs(latency_us=0.0), 3)


def test_a_passive_child_waits_behind_the_queue_and_fills_from_trades_on_its_side():
    from lobnet.evaluation.execution import Parent, execute, fill_passive

    # a buy rests at the bid (99.99) behind 1000 shares; sells hit the bid: 700, then 500 (300 to the queue, 200 to
    # us), then a trade through at 99.98 fills the rest
    trades = [(5, 9_999 * CENT, 700, 1), (8, 9_999 * CENT, 500, 1), (12, 9_998 * CENT, 100, 1)]
    book = _book(np.full(40, 10_000), trades=trades)
    c = Costs(latency_us=0.0, fee_per_share=0.0)
    fills, left = fill_passive(book, 0, 1, 400, c, 39)
    assert [(f.row, f.shares) for f in fills] == [(8, 200.0), (12, 200.0)] and left == 0
    # resting earns the half spread: spread cost -1 bp against the mid instead of +1 bp for crossing
    r = execute(book, Parent(1, 400, 0, 40), "immediate", c, passive=True)
    assert r["spread_bps"] == pytest.approx(-1.0) and r["shortfall_bps"] == pytest.approx(-1.0)
    # unfilled by the interval's end: the rest crosses there
    fills, left = fill_passive(book, 0, 1, 400, c, 9)
    assert left == 200
    r = execute(book, Parent(1, 400, 0, 10), "immediate", c, passive=True)
    assert r["shares"] == 400 and r["spread_bps"] == pytest.approx((-200 + 200) / 400)


def test_vwap_sizes_follow_the_volume_profile_and_schedules_are_checked():
    from lobnet.evaluation.execution import Parent, schedule

    book = _book(np.full(100, 10_000))
    book.time = 34_200 * 10**9 + np.arange(100, dtype=np.int64) * 234 * 10**9  # 09:30 to 15:56
    profile = np.array([0.4, 0.1, 0.1, 0.4])
    kids = schedule(book, Parent(1, 1000, 0, 100), "vwap", children=4, profile=profile)
    assert [q for _, q, _ in kids] == [400, 100, 100, 400]
    twap = schedule(book, Parent(1, 1001, 0, 100), "twap", children=4)
    assert sum(q for _, q, _ in twap) == 1001 and {q for _, q, _ in twap} <= {250, 251}
    with pytest.raises(ValueError, match="one of"):
        schedule(book, Parent(1, 10, 0, 100), "pov")
    with pytest.raises(ValueError, match="volume profile"):
        schedule(book, Parent(1, 10, 0, 100), "vwap")


@pytest.mark.realdata
def test_execution_on_a_real_lobster_day():
    from lobnet.data import read_lobster
    from lobnet.evaluation.execution import PARTS, Book, Parent, execute, fill_marketable, volume_profile

    events = read_lobster(need(AMZN5))
    book = Book.from_events(events)
    c = Costs()
    n = book.n
    prof = volume_profile(events)
    assert prof.sum() == pytest.approx(1.0) and (prof > 0).all()
    for start in (10_000, 60_000, 120_000):
        p = Parent(1, 2000, start, start + 10_000)
        for kind in ("twap", "vwap", "immediate"):
            r = execute(book, p, kind, c, children=10, profile=prof)
            assert r["shares"] == 2000
            assert r["shortfall_bps"] == pytest.approx(sum(r[f"{k}_bps"] for k in PARTS))
            assert r["spread_bps"] > 0 and r["impact_bps"] >= 0
        passive = execute(book, p, "twap", c, passive=True, children=10)
        assert passive["shares"] == 2000
    fills = fill_marketable(book, 50_000, -1, 5000, c, n - 1)
    for f in fills:
        level = np.flatnonzero(book.bid_px[f.row] == f.price)
        assert level.size and f.shares <= book.bid_sz[f.row, level[0]]
    assert pl.Series([f.row for f in fills]).is_sorted()


@pytest.mark.realdata
def test_execution_on_level_one_ticks_with_a_vwap_profile_from_the_day_before():
    from lobnet.data import read_quotes
    from lobnet.evaluation.execution import Book, ExecutionSettings, evaluate, parents_over, volume_profile

    before = read_quotes(need(AIG / "20131007_quote.zip"))
    day = read_quotes(need(AIG / "20131008_quote.zip"))
    book = Book.from_events(day)
    s = ExecutionSettings(orders=8, quantity=3000, events=20_000, children=5, passive=True)
    out = evaluate(book, parents_over(book.n, 0, s), Costs(), s, profile=volume_profile(before))
    assert set(out["schedules"]) == {"immediate", "twap", "vwap", "immediate_passive", "twap_passive", "vwap_passive"}
    for name, e in out["schedules"].items():
        assert e["orders"] == 8 and np.isfinite(e["shortfall_bps"]), name
    assert all(o["shares"] == 3000 for o in out["orders"])
    # resting at the touch first earns part of the spread back
    assert out["schedules"]["twap_passive"]["spread_bps"] < out["schedules"]["twap"]["spread_bps"]
