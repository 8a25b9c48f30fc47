"""Level-I: NBBO consolidation (hand-built and real AIG/BAC), trades and their aggressor side, generic tables."""

from __future__ import annotations

import datetime as dt
import zipfile

import numpy as np
import polars as pl
import pytest

from lobnet.data import EventType, consolidate_nbbo, locked_crossed_counts, read_quotes
from lobnet.data._csv import read_numeric_csv
from lobnet.data.quotes import QUOTE_COLUMNS, TRADE_COLUMNS, classify_aggressor

from .conftest import AIG, BAC, need

BOOK = ["bid_px_1", "bid_sz_1", "ask_px_1", "ask_sz_1"]


def _quotes(rows):
    return pl.DataFrame(rows, schema=["time", "bid_px", "bid_sz", "ask_px", "ask_sz", "exchange"], orient="row")


def test_per_venue_consolidation_hand_built():
    q = _quotes(
        [
            (1, 100, 5, 0, 0, "N"),
            (2, 0, 0, 103, 7, "Q"),
            (3, 101, 2, 0, 0, "Q"),
            (4, 0, 0, 102, 4, "N"),
            (5, 110, 100, 0, 0, "D"),  # FINRA report: never a quote
            (6, 101, 3, 0, 0, "P"),  # joins Q at the best bid: sizes add up
            (7, 99, 2, 0, 0, "Q"),  # Q leaves the best: P alone
            (8, 101, 0, 0, 0, "P"),  # P withdraws (size 0) ...
            (8, 0, 0, 102, 6, "N"),  # ... in the same instant as N resizes its ask: one event, the final state
            (9, 0, 0, 105, 1, "Z"),  # away from the best: no NBBO change, no event
        ]
    )
    got = consolidate_nbbo(q, by_exchange=True).select("time", *BOOK).rows()
    assert got == [
        (1, 100, 5, None, 0),
        (2, 100, 5, 103, 7),
        (3, 101, 2, 103, 7),
        (4, 101, 2, 102, 4),
        (6, 101, 5, 102, 4),
        (7, 101, 3, 102, 4),
        (8, 100, 5, 102, 6),
    ]


def test_row_consolidation_hand_built():
    """Rows that already are national best bid / offer updates: the latest of each side, whatever the venue."""
    q = _quotes(
        [
            (1, 100, 5, 0, 0, "N"),
            (1, 0, 0, 102, 3, "P"),
            (2, 99, 4, 0, 0, "Q"),
            (2, 0, 0, 102, 3, "P"),
            (3, 99, 4, 0, 0, "Q"),
            (3, 0, 0, 102, 3, "P"),
        ]
    )
    got = consolidate_nbbo(q, by_exchange=False).select("time", *BOOK).rows()
    assert got == [(1, 100, 5, 102, 3), (2, 99, 4, 102, 3)]


def test_aggressor_rules():
    df = pl.DataFrame(
        {
            "price": [102, 100, 1016, 1004, 1010, 1010, 1008, 1010],
            "bid": [100, 100, 1000, 1000, 1000, 1000, 1000, 1000],
            "ask": [102, 102, 1020, 1020, 1020, 1020, 1020, None],
        }
    )
    side = df.select(classify_aggressor(pl.col("price"), pl.col("bid"), pl.col("ask"))).to_series().to_list()
    # at ask: buy; at bid: sell; nearer the ask: buy; nearer the bid: sell; at the mid: tick test (1004 -> 1010 up),
    # a repeat at the mid keeps the last non-zero tick; 1008 is below the mid: sell; no ask: tick test (up)
    assert side == [1, -1, 1, -1, 1, 1, -1, 1]


@pytest.mark.realdata
def test_aig_five_days_nbbo_and_trades(aig):
    assert sorted(aig["date"].unique().to_list()) == [dt.date(2013, 10, d) for d in (7, 8, 9, 10, 11)]
    assert aig["symbol"].unique().to_list() == ["AIG"]
    t = aig["time"]
    assert t.min() >= 34_200 * 10**9 and t.max() < 57_600 * 10**9  # regular session only
    for _, day in aig.group_by("date"):
        assert (day["time"].diff().drop_nulls() >= 0).all()
    assert set(aig["type"].unique().to_list()) == {EventType.QUOTE, EventType.EXECUTE}
    quotes = aig.filter(pl.col("type") == EventType.QUOTE)
    # an event only when the NBBO changes
    changed = quotes.group_by("date", maintain_order=True).agg(
        pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in BOOK]).slice(1).all()
    )
    assert changed[changed.columns[1]].all()
    lc = locked_crossed_counts(aig)
    print(f"AIG 5 days: {lc}")  # the documented exceptions, reported
    assert lc["crossed"] / lc["events"] < 0.001 and lc["locked"] / lc["events"] < 0.05
    trades = aig.filter(pl.col("type") == EventType.EXECUTE)
    assert (trades["size"] > 0).all() and (trades["price"] > 0).all()
    assert set(trades["direction"].unique().to_list()) <= {-1, 0, 1}
    # buyer-initiated trades (resting sell side, direction -1) print at or above the mid, sellers' at or below
    mid2 = trades["ask_px_1"] + trades["bid_px_1"]
    buys = trades.filter((pl.col("direction") == -1) & (2 * pl.col("price") != mid2))
    assert (2 * buys["price"] > buys["ask_px_1"] + buys["bid_px_1"]).mean() > 0.99


@pytest.mark.realdata
def test_trades_are_all_merged_with_their_sizes():
    day = need(AIG) / "20131008_trade.zip"
    with zipfile.ZipFile(day) as zf:
        raw = read_numeric_csv(zf.read(zf.namelist()[0]), "t", TRADE_COLUMNS)
    raw = raw.filter((pl.col("suspicious") == 0) & (pl.col("time_ms") >= 34_200_000) & (pl.col("time_ms") < 57_600_000))
    ev = read_quotes(AIG / "20131008_quote.zip").filter(pl.col("type") == EventType.EXECUTE)
    assert ev.height == raw.height and ev["size"].sum() == raw["size"].sum()


@pytest.mark.realdata
def test_rows_are_nbbo_updates_not_per_venue_quotes():
    """Why ``consolidation=rows`` is the default for these files: exchange trades print inside the book it
    builds, and almost never inside a per-venue consolidation of the same rows."""
    day = need(AIG) / "20131007_quote.zip"
    with zipfile.ZipFile(day) as zf:
        q = read_numeric_csv(zf.read(zf.namelist()[0]), "q", QUOTE_COLUMNS)
    with zipfile.ZipFile(AIG / "20131007_trade.zip") as zf:
        t = read_numeric_csv(zf.read(zf.namelist()[0]), "t", TRADE_COLUMNS)
    to_ns = (pl.col("time_ms") * 1e6).round().cast(pl.Int64).alias("time")
    q, t = q.with_columns(to_ns), t.with_columns(to_ns).filter(pl.col("exchange") != "D")
    t = t.filter((pl.col("time") >= 34_200 * 10**9) & (pl.col("time") < 57_600 * 10**9))
    inside = {}
    for mode in (False, True):
        book = consolidate_nbbo(q, by_exchange=mode)
        j = t.join_asof(book, on="time", allow_exact_matches=False)
        inside[mode] = ((j["price"] >= j["bid_px_1"]) & (j["price"] <= j["ask_px_1"])).mean()
    print(f"trades inside the NBBO: rows {inside[False]:.4f}, per venue {inside[True]:.4f}")
    assert inside[False] > 0.95 and inside[True] < 0.05


@pytest.mark.realdata
def test_bac_reads_and_per_venue_mode_is_available():
    bac = read_quotes(need(BAC))
    assert bac["date"].n_unique() == 5 and bac.height > 500_000
    assert locked_crossed_counts(bac)["crossed"] / bac.height < 0.001
    one = read_quotes(BAC / "20131007_quote.zip", consolidation="exchanges", trades=False)
    assert one.height > 0 and (one["type"] == EventType.QUOTE).all()


@pytest.mark.realdata
def test_generic_csv_and_parquet_roundtrip(tmp_path):
    ev = read_quotes(need(AIG) / "20131009_quote.zip", trades=False)
    csv = tmp_path / "aig_top.csv"
    ev.select(
        (pl.col("time") / 1e9).alias("t_s"),
        (pl.col("bid_px_1") / 1e4).alias("bid"),
        pl.col("bid_sz_1").alias("bsz"),
        (pl.col("ask_px_1") / 1e4).alias("ask"),
        pl.col("ask_sz_1").alias("asz"),
    ).write_csv(csv)
    cols = {"time": "t_s", "bid_px": "bid", "bid_sz": "bsz", "ask_px": "ask", "ask_sz": "asz"}
    back = read_quotes(csv, symbol="AIG", date="2013-10-09", time_unit="s", columns=cols)
    assert back.select(BOOK).equals(ev.select(BOOK))
    assert (back["time"] - ev["time"]).abs().max() <= 1000  # seconds as float: microsecond precision
    pq = tmp_path / "aig_top.parquet"
    ev.select(
        (pl.lit(dt.datetime(2013, 10, 9)) + pl.duration(nanoseconds=pl.col("time"))).alias("ts"),
        pl.col("bid_px_1").alias("bid_px") / 1e4,
        pl.col("bid_sz_1").alias("bid_sz"),
        pl.col("ask_px_1").alias("ask_px") / 1e4,
        pl.col("ask_sz_1").alias("ask_sz"),
    ).write_parquet(pq)
    back = read_quotes(pq, symbol="AIG", time_unit="datetime", columns={"time": "ts"})
    assert back.select("time", *BOOK).equals(ev.select("time", *BOOK))
    assert back["date"].unique().to_list() == [dt.date(2013, 10, 9)]
    assert np.array_equal(back["type"].to_numpy(), np.zeros(back.height))
