"""Level-I readers: top-of-book quotes (and trades) into the canonical events table with one book level.

Two sources:

* **AlgoSeek tick data in QuantConnect LEAN's format** (``YYYYMMDD_quote.zip`` / ``YYYYMMDD_trade.zip``):
  per-exchange quotes, one side per row, consolidated here into the NBBO; trades merged in with their
  aggressor side inferred from the NBBO.
* **A generic top-of-book table** (CSV with a header, or Parquet) with configurable column names and
  timestamp unit.

Event types in the output: 0 (quote: the NBBO changed) and 4 (trade). Quote rows carry size/price 0 and
direction 0. Trade rows carry the trade's size and price and, in LOBSTER's convention, the side of the
*resting* order: -1 for a buyer-initiated trade (it executed sell liquidity), 1 for a seller-initiated one,
0 when no rule can tell. The book columns of a trade are the NBBO prevailing just before it.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import polars as pl

from lobnet.data._csv import read_numeric_csv, zip_member
from lobnet.data.errors import ArchiveError, LobDataError, NegativeValueError, SchemaError, TimeOrderError
from lobnet.data.schema import EventType, check_finite, check_magnitudes, conform

QUOTE_COLUMNS: dict[str, pl.DataType] = {
    "time_ms": pl.Float64(),
    "bid_px": pl.Int64(),
    "bid_sz": pl.Int64(),
    "ask_px": pl.Int64(),
    "ask_sz": pl.Int64(),
    "exchange": pl.Utf8(),
    "condition": pl.Utf8(),
    "suspicious": pl.Int64(),
}
TRADE_COLUMNS: dict[str, pl.DataType] = {
    "time_ms": pl.Float64(),
    "price": pl.Int64(),
    "size": pl.Int64(),
    "exchange": pl.Utf8(),
    "condition": pl.Utf8(),
    "suspicious": pl.Int64(),
}
# FINRA ('D') prints are off-exchange trade reports, not quotes: they never enter the NBBO.
NON_QUOTING_EXCHANGES = frozenset({"D"})
DAY_RE = re.compile(r"^(?P<date>\d{8})_(?P<kind>quote|trade)\.zip$")
MEMBER_RE = re.compile(r"^(?P<date>\d{8})_(?P<symbol>[A-Za-z0-9.\-]+)_(?P<kind>Quote|Trade)_Tick\.csv$", re.I)
NS_PER_MS = 1_000_000
SESSION = ("09:30", "16:00")


def _hhmm_ns(s: str) -> int:
    h, m = s.split(":")
    return (int(h) * 3600 + int(m) * 60) * 1_000_000_000


def read_quotes(
    path: str | Path,
    *,
    format: str = "auto",
    symbol: str | None = None,
    date: str | dt.date | None = None,
    session: tuple[str, str] | None = SESSION,
    trades: bool = True,
    consolidation: str = "rows",
    columns: dict[str, str] | None = None,
    time_unit: str = "ns",
    price_multiplier: float = 10_000,
) -> pl.DataFrame:
    """Read Level-I data into the events table (one level).

    ``format``: ``"algoseek"`` (LEAN tick zips: a ``YYYYMMDD_quote.zip`` file, a folder of days, or a folder of
    symbol folders),
    ``"generic"`` (a CSV with header or a Parquet file), or ``"auto"`` (by name). ``session``: keep events in
    [open, close) local time, or None for the whole file (the NBBO is always built from every quote of the day,
    so the state at the open includes pre-market quotes). ``trades``: merge the day's trades (AlgoSeek).
    ``consolidation`` (AlgoSeek): ``"rows"`` treats each row as a national best bid or offer update, which is
    what these files hold (measured on AIG 2013-10-07: 97.8 % of exchange trades print inside that book, 0.1 %
    inside a per-venue consolidation of the same rows); ``"exchanges"`` keeps each venue's latest bid and ask
    and takes the best across venues, for genuinely per-venue feeds.
    Generic only: ``columns`` maps ``time, bid_px, bid_sz, ask_px, ask_sz`` (and optionally ``date``) to the
    file's column names; ``time_unit`` is ``s|ms|us|ns`` after midnight or ``datetime`` for a timestamp column;
    ``price_multiplier`` turns the file's prices into integer source units (dollars x 10000 by default).
    """
    path = Path(path)
    if not path.exists():
        raise LobDataError(path, None, "no such file or folder")
    if isinstance(date, str):
        date = dt.date.fromisoformat(date)
    if format == "auto":
        is_algo = (path.is_dir() and any(path.glob("*/*_quote.zip"))) or (
            (path.is_dir() and any(path.glob("*_quote.zip"))) or DAY_RE.match(path.name) is not None
        )
        format = "algoseek" if is_algo else "generic"
    if format == "algoseek":
        days = sorted(path.glob("*_quote.zip")) if path.is_dir() else [path]
        if path.is_dir() and not days:  # a folder of symbol folders: one table, sorted by symbol then date
            days = sorted(path.glob("*/*_quote.zip"), key=lambda p: (p.parent.name.upper(), p.name))
        if not days:
            raise LobDataError(path, None, "no YYYYMMDD_quote.zip files in this folder")
        if consolidation not in ("rows", "exchanges"):
            raise SchemaError(path, None, f"unknown consolidation {consolidation!r} (rows, exchanges)")
        frames = [_read_algoseek_day(d, symbol, session, trades, consolidation == "exchanges") for d in days]
        return pl.concat(frames) if len(frames) > 1 else frames[0]
    if format == "generic":
        return _read_generic(path, symbol, date, session, columns or {}, time_unit, price_multiplier)
    raise SchemaError(path, None, f"unknown quotes format {format!r} (auto, algoseek, generic)")


def _zip_member(path: Path) -> tuple[bytes, str, re.Match]:
    data, member = zip_member(path)
    m = MEMBER_RE.match(Path(member).name)
    if not m:
        raise ArchiveError(path, None, f"member {member!r} is not named YYYYMMDD_ticker_{{Quote|Trade}}_Tick.csv")
    return data, f"{path}:{member}", m


def _check_times(t: np.ndarray, name: str) -> None:
    check_finite(t, name, "time")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0])
        raise TimeOrderError(name, i + 2, f"time {t[i + 1]} ms is before the previous row's {t[i]} ms")


def _check_nonneg(df: pl.DataFrame, cols: list[str], name: str) -> None:
    for c in cols:
        neg = np.flatnonzero(df[c].to_numpy() < 0)
        if neg.size:
            i = int(neg[0])
            raise NegativeValueError(name, i + 1, f"negative {c} {df[c][i]}")


def consolidate_nbbo(quotes: pl.DataFrame, by_exchange: bool = True) -> pl.DataFrame:
    """One-sided quote rows -> the NBBO after each update.

    ``by_exchange=True`` (per-venue quote feeds):
    ``quotes``: columns time (ns), bid_px, bid_sz, ask_px, ask_sz, exchange, in arrival order; a row updates
    the bid side when bid_px > 0 and the ask side when ask_px > 0; a side quoted with size 0 withdraws that
    exchange's quote. Each exchange's latest bid and ask are kept; the national best bid is the highest bid
    over exchanges and its size the total size quoted at that price (likewise the best ask). Rows sharing a
    timestamp collapse to the state after the last of them; only rows where the NBBO changed are returned.

    ``by_exchange=False`` (feeds whose rows already are national best bid / offer updates, such as the AlgoSeek
    files in ``../shared/data/quotes``; see the README): the latest bid row is the best bid and the latest ask
    row the best ask, whichever venue holds them.
    """
    q = quotes.filter(~pl.col("exchange").is_in(list(NON_QUOTING_EXCHANGES)))
    if not by_exchange:
        cols = []
        for side in ("ask", "bid"):
            upd = pl.col(f"{side}_px") > 0
            cols += [
                pl.when(upd)
                .then(pl.when(pl.col(f"{side}_sz") > 0).then(pl.col(f"{side}_px")).otherwise(0))
                .forward_fill()
                .alias(f"{side}_px_1"),
                pl.when(upd).then(pl.col(f"{side}_sz")).forward_fill().fill_null(0).alias(f"{side}_sz_1"),
            ]
        q = q.select("time", *cols).with_columns(
            [pl.when(pl.col(c) > 0).then(pl.col(c)).alias(c) for c in ("ask_px_1", "bid_px_1")]
        )
        return _changes(q)
    exchanges = sorted(set(q["exchange"].unique().to_list()))
    state = []
    for e in exchanges:
        for side in ("bid", "ask"):
            upd = (pl.col("exchange") == e) & (pl.col(f"{side}_px") > 0)
            # 0 marks a withdrawn quote; forward fill carries each exchange's latest quote through other rows
            px = pl.when(upd).then(pl.when(pl.col(f"{side}_sz") > 0).then(pl.col(f"{side}_px")).otherwise(0))
            sz = pl.when(upd).then(pl.col(f"{side}_sz"))
            state += [
                px.forward_fill().fill_null(0).alias(f"{side}_px_{e}"),
                sz.forward_fill().fill_null(0).alias(f"{side}_sz_{e}"),
            ]
    q = q.select("time", *state)
    bid_px = [pl.col(f"bid_px_{e}") for e in exchanges]
    ask_px = [pl.when(pl.col(f"ask_px_{e}") > 0).then(pl.col(f"ask_px_{e}")) for e in exchanges]
    nbb = pl.max_horizontal(bid_px)
    nbo = pl.min_horizontal(ask_px)
    q = q.with_columns(
        pl.when(nbb > 0).then(nbb).alias("bid_px_1"),
        nbo.alias("ask_px_1"),
    )
    q = q.with_columns(
        pl.sum_horizontal(
            [
                pl.when(pl.col(f"bid_px_{e}") == pl.col("bid_px_1")).then(pl.col(f"bid_sz_{e}")).otherwise(0)
                for e in exchanges
            ]
        ).alias("bid_sz_1"),
        pl.sum_horizontal(
            [
                pl.when(pl.col(f"ask_px_{e}") == pl.col("ask_px_1")).then(pl.col(f"ask_sz_{e}")).otherwise(0)
                for e in exchanges
            ]
        ).alias("ask_sz_1"),
    )
    return _changes(q)


def _changes(q: pl.DataFrame) -> pl.DataFrame:
    """Collapse rows sharing a timestamp to the last state, then keep only rows where the top of book changed."""
    q = q.select("time", "ask_px_1", "ask_sz_1", "bid_px_1", "bid_sz_1").unique(
        subset="time", keep="last", maintain_order=True
    )
    book = ["ask_px_1", "ask_sz_1", "bid_px_1", "bid_sz_1"]
    changed = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in book])
    return q.filter(changed | (pl.int_range(pl.len()) == 0))


def classify_aggressor(price: pl.Expr, bid: pl.Expr, ask: pl.Expr) -> pl.Expr:
    """Aggressor side of a trade (1 buyer-initiated, -1 seller-initiated, 0 unknown) from the prevailing NBBO:
    at or above the ask a buy, at or below the bid a sell, inside the spread the nearer side (Lee-Ready quote
    rule), at the midpoint the tick test (the sign of the last non-zero price change)."""
    mid2 = bid + ask  # twice the mid, integer
    tick = price.diff().sign().replace(0, None).forward_fill().fill_null(0)
    return (
        pl.when(ask.is_not_null() & (price >= ask))
        .then(1)
        .when(bid.is_not_null() & (price <= bid))
        .then(-1)
        .when(bid.is_not_null() & ask.is_not_null() & (2 * price > mid2))
        .then(1)
        .when(bid.is_not_null() & ask.is_not_null() & (2 * price < mid2))
        .then(-1)
        .otherwise(tick)
        .cast(pl.Int8)
    )


def _read_algoseek_day(
    quote_zip: Path, symbol: str | None, session, with_trades: bool, by_exchange: bool
) -> pl.DataFrame:
    m = DAY_RE.match(quote_zip.name)
    if not m:
        raise LobDataError(quote_zip, None, "not an AlgoSeek quote archive (YYYYMMDD_quote.zip)")
    data, name, member = _zip_member(quote_zip)
    day = dt.datetime.strptime(m["date"], "%Y%m%d").date()
    sym = symbol or member["symbol"].upper()
    q = read_numeric_csv(data, name, QUOTE_COLUMNS)
    _check_times(q["time_ms"].to_numpy(), name)
    _check_nonneg(q, ["bid_px", "bid_sz", "ask_px", "ask_sz"], name)
    check_magnitudes(q, name, sizes=["bid_sz", "ask_sz"], prices=["bid_px", "ask_px"])
    q = q.filter(pl.col("suspicious") == 0).with_columns(
        (pl.col("time_ms") * NS_PER_MS).round().cast(pl.Int64).alias("time")
    )
    nbbo = consolidate_nbbo(q, by_exchange).with_columns(
        pl.lit(int(EventType.QUOTE)).alias("type"),
        pl.lit(0).alias("size"),
        pl.lit(0).alias("price"),
        pl.lit(0).alias("direction"),
        pl.lit(1).alias("_order"),
    )
    parts = [nbbo]
    trade_zip = quote_zip.with_name(quote_zip.name.replace("_quote.zip", "_trade.zip"))
    if with_trades and trade_zip.exists():
        tdata, tname, _ = _zip_member(trade_zip)
        t = read_numeric_csv(tdata, tname, TRADE_COLUMNS)
        _check_times(t["time_ms"].to_numpy(), tname)
        _check_nonneg(t, ["price", "size"], tname)
        check_magnitudes(t, tname, sizes=["size"], prices=["price"])
        zero = np.flatnonzero((t["price"].to_numpy() == 0) & (t["suspicious"].to_numpy() == 0))
        if zero.size:  # a trade at no price is no trade: it would be classified and traded against the book
            raise SchemaError(tname, int(zero[0]) + 1, "trade at price 0")
        t = t.filter(pl.col("suspicious") == 0).with_columns(
            (pl.col("time_ms") * NS_PER_MS).round().cast(pl.Int64).alias("time")
        )
        # the NBBO prevailing strictly before the trade: a quote at the same instant may be the trade's effect
        t = t.select("time", "price", "size").join_asof(
            nbbo.select("time", "ask_px_1", "ask_sz_1", "bid_px_1", "bid_sz_1"),
            on="time",
            strategy="backward",
            allow_exact_matches=False,
        )
        aggressor = classify_aggressor(pl.col("price"), pl.col("bid_px_1"), pl.col("ask_px_1"))
        t = t.with_columns(
            pl.lit(int(EventType.EXECUTE)).alias("type"), (-aggressor).alias("direction"), pl.lit(0).alias("_order")
        )
        parts.append(t)
    ev = pl.concat(parts, how="diagonal_relaxed").sort(["time", "_order"], maintain_order=True)
    if session is not None:
        lo, hi = _hhmm_ns(session[0]), _hhmm_ns(session[1])
        ev = ev.filter((pl.col("time") >= lo) & (pl.col("time") < hi))
    ev = ev.with_columns(pl.lit(sym).alias("symbol"), pl.lit(day).alias("date"), pl.lit(0).alias("order_id"))
    return conform(ev, 1)


GENERIC_FIELDS = ("time", "bid_px", "bid_sz", "ask_px", "ask_sz")
TIME_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _read_generic(
    path: Path, symbol, date, session, columns: dict[str, str], time_unit: str, mult: float
) -> pl.DataFrame:
    name = str(path)
    try:
        if path.suffix == ".parquet":
            raw = pl.read_parquet(path)
        else:
            raw = pl.read_csv(path, infer_schema_length=10_000)
    except pl.exceptions.NoDataError:
        raise LobDataError(name, None, "file is empty") from None
    except pl.exceptions.PolarsError as e:
        raise SchemaError(name, None, f"cannot read table: {str(e).splitlines()[0]}") from None
    if raw.height == 0:
        raise LobDataError(name, None, "file is empty")
    cmap = {f: columns.get(f, f) for f in GENERIC_FIELDS}
    missing = [f"{f} (column {c!r})" for f, c in cmap.items() if c not in raw.columns]
    if missing:
        raise SchemaError(name, None, f"missing columns: {', '.join(missing)}; map them with columns={{field: name}}")
    for f in GENERIC_FIELDS[1:]:
        col = raw[cmap[f]]
        if not col.dtype.is_numeric():
            bad = col.cast(pl.Float64, strict=False).is_null() & col.is_not_null()
            i = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise SchemaError(name, i + 2, f"column {cmap[f]!r}: {col[i]!r} is not a number")  # +1 header, 1-based
    t = pl.col(cmap["time"])
    if time_unit == "datetime":
        ts = raw[cmap["time"]]
        if ts.dtype == pl.Utf8:
            ts = ts.str.to_datetime(time_unit="ns", strict=False)
        ts = ts.cast(pl.Datetime("ns"))
        raw = raw.with_columns(
            ts.dt.date().alias("date"),
            (
                ts.dt.hour().cast(pl.Int64) * 3_600_000_000_000
                + ts.dt.minute().cast(pl.Int64) * 60_000_000_000
                + ts.dt.second().cast(pl.Int64) * 1_000_000_000
                + ts.dt.nanosecond().cast(pl.Int64)
            ).alias("time_ns"),
        )
    elif time_unit in TIME_UNITS:
        check_finite(raw[cmap["time"]].cast(pl.Float64, strict=False).to_numpy(), name, cmap["time"], first_row=2)
        raw = raw.with_columns((t.cast(pl.Float64) * TIME_UNITS[time_unit]).round().cast(pl.Int64).alias("time_ns"))
        if "date" in columns:
            raw = raw.with_columns(pl.col(columns["date"]).cast(pl.Utf8).str.to_date().alias("date"))
        elif date is not None:
            raw = raw.with_columns(pl.lit(date).alias("date"))
        else:
            raise SchemaError(name, None, "times are after midnight: give date= or map a date column")
    else:
        raise SchemaError(name, None, f"unknown time_unit {time_unit!r} (s, ms, us, ns, datetime)")
    scaled = raw.select(
        *[(pl.col(cmap[f]).cast(pl.Float64) * mult).fill_nan(0).fill_null(0).alias(f) for f in ("bid_px", "ask_px")],
        *[pl.col(cmap[f]).cast(pl.Float64).fill_nan(0).fill_null(0).alias(f) for f in ("bid_sz", "ask_sz")],
    )
    check_magnitudes(scaled, name, sizes=["bid_sz", "ask_sz"], prices=["bid_px", "ask_px"], first_row=2)
    px = {f: (pl.col(cmap[f]).cast(pl.Float64) * mult).round().cast(pl.Int64) for f in ("bid_px", "ask_px")}
    ev = raw.select(
        pl.col("date"),
        pl.col("time_ns").alias("time"),
        pl.when(px["ask_px"] > 0).then(px["ask_px"]).alias("ask_px_1"),
        pl.col(cmap["ask_sz"]).cast(pl.Int64).alias("ask_sz_1"),
        pl.when(px["bid_px"] > 0).then(px["bid_px"]).alias("bid_px_1"),
        pl.col(cmap["bid_sz"]).cast(pl.Int64).alias("bid_sz_1"),
    )
    _check_nonneg(ev.fill_null(0), ["ask_sz_1", "bid_sz_1"], name)
    for d, grp in ev.with_row_index("_i").group_by("date", maintain_order=True):
        tt = grp["time"].to_numpy()
        back = np.flatnonzero(np.diff(tt) < 0)
        if back.size:
            raise TimeOrderError(name, int(grp["_i"][int(back[0]) + 1]) + 2, f"time goes backwards on {d[0]}")
    if session is not None:
        lo, hi = _hhmm_ns(session[0]), _hhmm_ns(session[1])
        ev = ev.filter((pl.col("time") >= lo) & (pl.col("time") < hi))
    ev = ev.with_columns(
        pl.lit(symbol or path.stem.split("_")[0].upper()).alias("symbol"),
        pl.lit(int(EventType.QUOTE)).alias("type"),
        pl.lit(0).alias("order_id"),
        pl.lit(0).alias("size"),
        pl.lit(0).alias("price"),
        pl.lit(0).alias("direction"),
    )
    return conform(ev.sort(["date", "time"], maintain_order=True), 1)


def locked_crossed_counts(events: pl.DataFrame) -> dict[str, int]:
    """Counts of locked (ask == bid) and crossed (ask < bid) top-of-book events, the documented exceptions in
    consolidated multi-venue quotes (a stale quote on one venue can cross another's)."""
    a, b = pl.col("ask_px_1"), pl.col("bid_px_1")
    r = events.select((a == b).sum().alias("locked"), (a < b).sum().alias("crossed"), pl.len().alias("events")).row(
        0, named=True
    )
    return {k: int(v or 0) for k, v in r.items()}
