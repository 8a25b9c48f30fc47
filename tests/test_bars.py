"""The bar reader (lobnet.data.bars): the real LEAN files, generic files, and every validation error naming the
file and the row."""

from __future__ import annotations

import zipfile

import numpy as np
import polars as pl
import pytest

from tests.conftest import DATA_DIR, need

BARS = DATA_DIR / "bars"


def _lean_zip(path, rows: list[str], member: str | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member or path.with_suffix(".csv").name, "\n".join(rows) + "\n")
    return path


GOOD = [
    "20200102 00:00,1000000,1010000,990000,1005000,100",
    "20200103 00:00,1005000,1020000,1000000,1015000,200",
    "20200106 00:00,1015000,1030000,1010000,1020000,300",
]


@pytest.mark.realdata
def test_real_lean_daily_minute_fx_and_cfd_bars_read_and_validate():
    from lobnet.data.bars import BAR_COLUMNS, bar_gaps, read_bars

    daily = read_bars(need(BARS / "daily"))
    assert daily.columns == BAR_COLUMNS
    assert sorted(daily["symbol"].unique()) == sorted(p.stem.upper() for p in (BARS / "daily").glob("*.zip"))
    spy = daily.filter(pl.col("symbol") == "SPY")
    with zipfile.ZipFile(BARS / "daily" / "spy.zip") as zf:
        first = zf.read("spy.csv").decode().splitlines()
    assert spy.height == len(first)  # every row, none dropped
    o, c = first[0].split(",")[1], first[0].split(",")[4]
    assert spy["open"][0] == pytest.approx(int(o) / 10_000) and spy["close"][0] == pytest.approx(int(c) / 10_000)
    assert (daily["time"] == 0).all() and daily["bid_close"].is_null().all()
    assert ((daily["low"] <= daily["open"]) & (daily["high"] >= daily["close"])).all()
    fx = read_bars(BARS / "forex_daily")
    eur = fx.filter(pl.col("symbol") == "EURUSD")
    assert 0.9 < eur["close"].median() < 1.7  # plain prices, not divided by 10000
    # FXCM's closing bid and ask are a fraction of a pip apart, and in early years often crossed by as much
    spread = ((eur["ask_close"] - eur["bid_close"]).abs() / eur["close"]).to_numpy()
    assert np.median(spread) < 5e-4 and spread.max() < 0.01
    assert eur["close"][0] == pytest.approx((eur["bid_close"][0] + eur["ask_close"][0]) / 2)
    gold = read_bars(BARS / "cfd_daily")
    assert gold["symbol"].unique().to_list() == ["XAUUSD"] and 300 < gold["close"].median() < 3000
    minute = read_bars(BARS / "minute" / "spy", session=("09:30", "16:00"))
    days = minute["date"].unique()
    assert len(days) >= 6 and minute["time"].min() >= 34_200 * 10**9 and minute["time"].max() < 57_600 * 10**9
    q = read_bars(BARS / "minute" / "spy", side="quote", session=("09:30", "16:00"))
    assert (q["ask_close"] >= q["bid_close"]).all() and q["volume"].eq(0).all()
    every = read_bars(BARS / "minute")
    assert {"SPY", "IBM", "AIG", "BAC", "AAPL"} <= set(every["symbol"].unique())
    # gaps are reported, not refused: regular-session minutes without a trade in IBM, holidays in daily bars
    assert bar_gaps(daily).height > 0 and (bar_gaps(daily)["days"] > 4).all()


def test_lean_bar_errors_name_the_file_and_row(tmp_path):
    from lobnet.data import ColumnCountError, LobDataError, ParseError, SchemaError, TimeOrderError
    from lobnet.data.bars import OHLCError, read_bars

    def bad(rows, exc, row, text):
        p = _lean_zip(tmp_path / "xyz.zip", rows)
        with pytest.raises(exc, match=text) as e:
            read_bars(p)
        assert e.value.row == row and "xyz.zip" in e.value.file, e.value.message
        p.unlink()

    ok = read_bars(_lean_zip(tmp_path / "abc.zip", GOOD))
    assert ok["symbol"].unique().to_list() == ["ABC"] and ok["close"].to_list() == [100.5, 101.5, 102.0]
    bad([*GOOD[:2], "20200106 00:00,1015000,1010000,1012000,1020000,300"], OHLCError, 3, "must bracket")
    bad([*GOOD[:1], "20200103 00:00,1005000,1020000,0,1015000,200"], LobDataError, 2, "non-positive")
    bad([*GOOD[:1], "20200103 00:00,1005000,1020000,1000000,1015000,-5"], LobDataError, 2, "volume")
    bad([GOOD[0], GOOD[0], GOOD[1]], TimeOrderError, 2, "repeats")
    bad([GOOD[1], GOOD[0]], TimeOrderError, 2, "earlier")
    bad([GOOD[0], "20200103 00:00,1005000,1020000,1000000,1015000"], ColumnCountError, 2, "expected 6 fields")
    bad([GOOD[0], "20200103 00:00,1005000,abc,1000000,1015000,9"], ParseError, 2, "not a number")
    bad([GOOD[0], "2020-01-03,1005000,1020000,1000000,1015000,9"], LobDataError, 2, "YYYYMMDD HH:MM")
    bad(["20200102 00:00,1,2,3"], SchemaError, 1, "6 \\(trade\\) or 11 \\(quote\\)")
    with pytest.raises(LobDataError, match="no such file"):
        read_bars(tmp_path / "missing.zip")
    # LEAN hour bars share the daily layout; their times are the bars' starts
    hour = read_bars(_lean_zip(tmp_path / "hhh.zip", [r.replace("00:00", "10:00") for r in GOOD[:1]] + [
        GOOD[1].replace("00:00", "11:00")]))  # fmt: skip
    assert hour["time"].to_list() == [10 * 3600 * 10**9, 11 * 3600 * 10**9]
    assert read_bars(tmp_path / "hhh.zip", session=("10:30", "16:00"))["time"].to_list() == [11 * 3600 * 10**9]


def test_generic_ohlcv_csv_and_parquet_with_symbols_and_errors(tmp_path):
    from lobnet.data.bars import OHLCError, read_bars

    df = pl.DataFrame(
        {
            "Date": ["2020-01-02", "2020-01-03", "2020-01-02", "2020-01-03"],
            "Ticker": ["aa", "aa", "bb", "bb"],
            "Open": [10.0, 11.0, 5.0, 5.5],
            "High": [11.0, 12.0, 6.0, 6.0],
            "Low": [9.0, 10.5, 4.5, 5.0],
            "Close": [10.5, 11.5, 5.5, 5.8],
            "Volume": [100, 200, 300, 400],
        }
    )
    cols = {"date": "Date", "symbol": "Ticker", "open": "Open", "high": "High", "low": "Low", "close": "Close",
            "volume": "Volume"}  # fmt: skip
    df.write_csv(tmp_path / "g.csv")
    df.write_parquet(tmp_path / "g.parquet")
    for name in ("g.csv", "g.parquet"):
        b = read_bars(tmp_path / name, columns=cols)
        assert b["symbol"].to_list() == ["AA", "AA", "BB", "BB"] and b["close"].to_list() == [10.5, 11.5, 5.5, 5.8]
    # row 4 of the file (the header is line 1) has its low above its close
    df.with_columns(pl.when(pl.col("Ticker") == "bb").then(5.9).otherwise(pl.col("Low")).alias("Low")).head(
        3
    ).write_csv(tmp_path / "bad.csv")
    with pytest.raises(OHLCError) as e:
        read_bars(tmp_path / "bad.csv", columns=cols)
    assert e.value.row == 4 and e.value.file.endswith("bad.csv")
    df.drop("Close").write_csv(tmp_path / "nocol.csv")
    with pytest.raises(Exception, match="missing columns \\['Close'\\]"):
        read_bars(tmp_path / "nocol.csv", columns=cols)


def test_jumps_are_found_and_back_adjusted_without_touching_other_returns():
    import datetime as dt

    from lobnet.data.bars import back_adjust, bar_gaps, bar_jumps

    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(8)]
    close = np.array([100, 101, 102, 51.5, 52, 52.5, 53, 52], dtype=float)  # a 2:1 split before day 3
    bars = pl.DataFrame(
        {
            "symbol": "X",
            "date": days,
            "time": 0,
            "open": np.r_[close[:3], 51.0, close[4:]],
            "high": close * 1.01,
            "low": np.minimum(close, np.r_[close[:3], 51.0, close[4:]]) * 0.99,
            "close": close,
            "volume": 1.0,
            "bid_close": None,
            "ask_close": None,
        },  # fmt: skip
        schema_overrides={"bid_close": pl.Float64, "ask_close": pl.Float64},
    )
    j = bar_jumps(bars, 0.35)
    assert j["date"].to_list() == [days[3]] and j["split_like"].to_list() == ["2:1"]
    adj = back_adjust(bars, j)
    r0, r1 = np.diff(np.log(close)), np.diff(np.log(adj["close"].to_numpy()))
    assert r1[2] == pytest.approx(0.0, abs=1e-12)
    assert np.allclose(np.delete(r1, 2), np.delete(r0, 2))
    assert bar_jumps(adj, 0.35).is_empty()
    gapped = bars.with_columns(pl.when(pl.col("date") > days[4]).then(pl.col("date") + pl.duration(days=10))
                               .otherwise(pl.col("date")).alias("date"))  # fmt: skip
    g = bar_gaps(gapped)
    assert g.height == 1 and g["days"][0] == 11
