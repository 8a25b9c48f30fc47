"""OHLCV bars: QuantConnect LEAN daily / hour / minute trade and quote bars, and generic OHLCV CSV or Parquet files,
read and validated into one bars table.

Columns (in this order):

| column | dtype | meaning |
|---|---|---|
| ``symbol`` | Utf8 | ticker (upper case) |
| ``date`` | Date | the bar's day |
| ``time`` | Int64 | the bar's start, nanoseconds after midnight (exchange local time; 0 for daily bars) |
| ``open, high, low, close`` | Float64 | prices in the quote currency (dollars); the mid of bid and ask for quote bars |
| ``volume`` | Float64 | shares (trade bars), 0 where the source has none (FX, CFD) |
| ``bid_close, ask_close`` | Float64 | quote bars only (null for trade bars): the closing bid and ask, for the spread |

LEAN's layout (``{daily,hour}/<ticker>.zip`` holding ``<ticker>.csv`` with ``YYYYMMDD HH:MM`` times, and
``minute/<ticker>/YYYYMMDD_{trade,quote}.zip`` with milliseconds after midnight) is recognised from the files.
LEAN stores equity prices as dollars x 10000 and FX / CFD prices plainly; ``price_multiplier="auto"`` takes
10000 unless the path names a forex or cfd folder, and a number overrides it.

Validation names the file and the 1-based row: field counts and numbers, non-positive prices, negative volume,
OHLC consistency (low <= open, close <= high), duplicate or unsorted times. Gaps are real in bar data (holidays,
minutes without trades) and are reported by :func:`bar_gaps`, not refused.

Jumps are reported by :func:`bar_jumps`. LEAN's sample daily bars are **not split-adjusted** (AAPL 2:1 in 2000
and 2005, 7:1 in 2014, 4:1 in 2020; AIG 1:20 in 2009) and some tickers name another company before a date (WM,
USO, EEM), so a daily move of -50 % or x180 is usually a data event, not a return. Without the split factor files
that say which, :func:`back_adjust` removes every move beyond a bound by rescaling the bars before it, so that
no strategy earns or loses it; the jumps removed are listed, real crashes of that size among them.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import polars as pl

from lobnet.data._csv import read_numeric_csv, zip_member
from lobnet.data.errors import LobDataError, SchemaError, TimeOrderError

BAR_COLUMNS = ["symbol", "date", "time", "open", "high", "low", "close", "volume", "bid_close", "ask_close"]
PRICES = ["open", "high", "low", "close"]
NS_PER_MS = 1_000_000
MINUTE_RE = re.compile(r"^(?P<date>\d{8})_(?P<side>trade|quote)\.zip$", re.IGNORECASE)
_F = pl.Float64
TRADE = {"open": _F, "high": _F, "low": _F, "close": _F, "volume": _F}
QUOTE = {
    **{f"bid_{p}": _F for p in PRICES},
    "bid_size": _F,
    **{f"ask_{p}": _F for p in PRICES},
    "ask_size": _F,
}


class OHLCError(LobDataError):
    """A bar whose low is above its open or close, or whose high is below them."""


def read_bars(
    path: str | Path,
    *,
    side: str = "trade",
    symbol: str | None = None,
    price_multiplier: float | str = "auto",
    session: tuple[str, str] | None = None,
    columns: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Read bars into the bars table (module docstring), sorted by symbol, date and time.

    ``path``: a LEAN daily or hour zip (``spy.zip``), a folder of them (one symbol each), a LEAN minute folder
    (``minute/spy`` with ``YYYYMMDD_trade.zip`` days) or a folder of such folders, or a generic ``.csv`` (with a
    header) / ``.parquet`` file. ``side``: ``trade`` or ``quote`` bars for LEAN minute folders (a daily zip says
    by its column count). ``session``: keep intraday bars starting in [open, close) local time (e.g.
    ``("09:30", "16:00")``); daily bars are kept whole. Generic files: ``columns`` maps ``date`` (or a
    ``datetime``), ``open``, ``high``, ``low``, ``close`` and optionally ``volume``, ``symbol``, ``time`` to the
    file's names; their prices are plain (``price_multiplier`` 1 unless given)."""
    path = Path(path)
    if not path.exists():
        raise LobDataError(path, None, "no such file or folder")
    if side not in ("trade", "quote"):
        raise SchemaError(path, None, f"bar side must be trade or quote, not {side!r}")
    if path.suffix.lower() in (".csv", ".parquet"):
        frames = [_read_generic(path, symbol, columns or {}, price_multiplier)]
    else:
        mult = _multiplier(path, price_multiplier)
        if path.is_file():
            frames = [_read_lean_file(path, symbol, mult)]
        elif days := sorted(p for p in path.glob("*.zip") if MINUTE_RE.match(p.name)):
            frames = [_read_lean_minutes(path, days, side, symbol, mult)]
        elif zips := sorted(path.glob("*.zip")):
            frames = [_read_lean_file(z, None, mult) for z in zips]
        elif subs := sorted(d for d in path.iterdir() if d.is_dir() and any(d.glob("*_trade.zip"))):
            frames = [
                _read_lean_minutes(d, sorted(p for p in d.glob("*.zip") if MINUTE_RE.match(p.name)), side, None, mult)
                for d in subs
            ]
        else:
            raise LobDataError(path, None, "no LEAN bar archives (<ticker>.zip or YYYYMMDD_trade.zip) here")
    out = pl.concat(frames, how="vertical").sort(["symbol", "date", "time"], maintain_order=True)
    if session is not None and (out["time"] != 0).any():  # daily bars (every time midnight) have no session
        lo, hi = (_clock_ns(s) for s in session)
        out = out.filter((pl.col("time") >= lo) & (pl.col("time") < hi))
    return out


def _multiplier(path: Path, price_multiplier) -> float:
    if price_multiplier != "auto":
        return float(price_multiplier)
    parts = [p.lower() for p in path.resolve().parts]
    return 1.0 if any(("forex" in p) or ("cfd" in p) for p in parts) else 10_000.0


def _clock_ns(hhmm: str) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return (h * 60 + m) * 60 * 1_000_000_000


def _bars(sym: str, date, time_ns, raw: pl.DataFrame, mult: float, name: str, lines=None) -> pl.DataFrame:
    """The bars table from parsed columns (TRADE or QUOTE names), validated row by row against ``name``;
    ``lines``: each bar's 1-based line in that file (default: bar i is line i + 1)."""
    n = raw.height
    lines = np.arange(1, n + 1) if lines is None else np.asarray(lines)
    quote = "bid_open" in raw.columns
    if quote:
        sides = {s: {p: raw[f"{s}_{p}"].to_numpy() / mult for p in PRICES} for s in ("bid", "ask")}
        for s, px in sides.items():
            _check_ohlc(px, name, lines, f"{s} ")
        px = {p: (sides["bid"][p] + sides["ask"][p]) / 2 for p in PRICES}
        volume = np.zeros(n)
        bid_close, ask_close = sides["bid"]["close"], sides["ask"]["close"]
    else:
        px = {p: raw[p].to_numpy() / mult for p in PRICES}
        _check_ohlc(px, name, lines, "")
        volume = raw["volume"].to_numpy() if "volume" in raw.columns else np.zeros(n)
        bad = np.flatnonzero(~(volume >= 0))
        if bad.size:
            raise LobDataError(name, int(lines[bad[0]]), f"volume {volume[bad[0]]} is negative or missing")
        bid_close = ask_close = np.full(n, np.nan)
    frame = pl.DataFrame(
        {
            "symbol": [sym] * n,
            "date": date,
            "time": time_ns,
            **px,
            "volume": volume.astype(float),
            "bid_close": bid_close,
            "ask_close": ask_close,
        },
        schema={"symbol": pl.Utf8, "date": pl.Date, "time": pl.Int64, **dict.fromkeys(BAR_COLUMNS[3:], pl.Float64)},
    ).with_columns(pl.col("bid_close", "ask_close").fill_nan(None))
    _check_order(frame, name, lines)
    return frame


def _check_ohlc(px: dict[str, np.ndarray], name: str, lines: np.ndarray, what: str) -> None:
    o, h, lo, c = (px[p] for p in PRICES)
    bad = np.flatnonzero(~((o > 0) & (h > 0) & (lo > 0) & (c > 0)))  # also catches NaN
    if bad.size:
        i = int(bad[0])
        raise LobDataError(
            name, int(lines[i]), f"non-positive {what}price (open {o[i]}, high {h[i]}, low {lo[i]}, close {c[i]})"
        )
    tol = 1e-9 * np.maximum(h, 1.0)
    bad = np.flatnonzero((lo > np.minimum(o, c) + tol) | (h < np.maximum(o, c) - tol))
    if bad.size:
        i = int(bad[0])
        raise OHLCError(
            name,
            int(lines[i]),
            f"inconsistent {what}bar: low {lo[i]} and high {h[i]} must bracket open {o[i]} and close {c[i]}",
        )


def _check_order(frame: pl.DataFrame, name: str, lines: np.ndarray) -> None:
    """Times strictly increase within a file (one symbol): a repeated or earlier bar names its row."""
    if frame.height < 2:
        return
    key = frame["date"].cast(pl.Int64).to_numpy() * 86_400 * 10**9 + frame["time"].to_numpy()
    d = np.diff(key)
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        what = "repeats the previous bar's time" if d[bad[0]] == 0 else "is earlier than the previous bar"
        raise TimeOrderError(name, int(lines[i]), f"bar {what} (duplicate or unsorted times)")


def _read_lean_file(path: Path, symbol: str | None, mult: float) -> pl.DataFrame:
    """A LEAN daily or hour zip (or its CSV): ``YYYYMMDD HH:MM`` then 5 trade or 10 quote fields."""
    if path.suffix.lower() == ".zip":
        data, member = zip_member(path)
        name = f"{path}:{member}"
    else:
        data, name = path.read_bytes(), str(path)
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()
    n_fields = len(first.split(","))
    if n_fields not in (6, 11):
        raise SchemaError(name, 1, f"expected 6 (trade) or 11 (quote) fields in a LEAN bar, found {n_fields}")
    schema = {"stamp": pl.Utf8, **(TRADE if n_fields == 6 else QUOTE)}
    raw = read_numeric_csv(data, name, schema)
    stamp = raw["stamp"].str.strptime(pl.Datetime("ns"), "%Y%m%d %H:%M", strict=False)
    bad = np.flatnonzero(stamp.is_null().to_numpy())
    if bad.size:
        raise LobDataError(name, int(bad[0]) + 1, f"time {raw['stamp'][int(bad[0])]!r} is not YYYYMMDD HH:MM")
    date = stamp.dt.date()
    time_ns = (stamp - stamp.dt.truncate("1d")).dt.total_nanoseconds()
    sym = (symbol or (path.stem if path.suffix.lower() == ".zip" else Path(name).stem)).upper()
    return _bars(sym, date, time_ns, raw, mult, name)


def _read_lean_minutes(folder: Path, days: list[Path], side: str, symbol: str | None, mult: float) -> pl.DataFrame:
    """A LEAN minute folder: one ``YYYYMMDD_<side>.zip`` per day, times in milliseconds after midnight."""
    days = [d for d in days if MINUTE_RE.match(d.name)["side"].lower() == side]
    if not days:
        raise LobDataError(folder, None, f"no YYYYMMDD_{side}.zip days in this folder")
    sym = (symbol or folder.name).upper()
    frames = []
    for d in days:
        data, member = zip_member(d)
        name = f"{d}:{member}"
        raw = read_numeric_csv(data, name, {"time_ms": pl.Float64, **(TRADE if side == "trade" else QUOTE)})
        day = dt.datetime.strptime(MINUTE_RE.match(d.name)["date"], "%Y%m%d").date()
        t = raw["time_ms"].to_numpy()
        bad = np.flatnonzero(~((t >= 0) & (t < 86_400_000)))
        if bad.size:
            raise LobDataError(name, int(bad[0]) + 1, f"time {t[bad[0]]} ms is not within the day")
        frames.append(_bars(sym, [day] * raw.height, np.round(t * NS_PER_MS).astype(np.int64), raw, mult, name))
    return pl.concat(frames)


def _read_generic(path: Path, symbol: str | None, columns: dict[str, str], price_multiplier) -> pl.DataFrame:
    name = str(path)
    try:
        df = pl.read_parquet(path) if path.suffix.lower() == ".parquet" else pl.read_csv(path, try_parse_dates=True)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise LobDataError(name, None, f"cannot read ({e})") from None
    if df.height == 0:
        raise LobDataError(name, None, "file is empty")
    col = {k: columns.get(k, k) for k in ("datetime", "date", "time", "symbol", *PRICES, "volume")}
    missing = [col[k] for k in PRICES if col[k] not in df.columns]
    stamp_col = col["datetime"] if col["datetime"] in df.columns else col["date"]
    if stamp_col not in df.columns:
        missing.append(f"{col['datetime']} or {col['date']}")
    if missing:
        raise SchemaError(name, None, f"missing columns {missing} (have {df.columns}; map them with columns=...)")
    # a header line comes first in a CSV: data row i is line i + 2 there
    lines = np.arange(df.height) + (2 if path.suffix.lower() == ".csv" else 1)
    try:
        stamp = df[stamp_col].cast(pl.Datetime("ns"))
    except pl.exceptions.PolarsError:
        stamp = df[stamp_col].cast(pl.Utf8).str.to_datetime(strict=False).cast(pl.Datetime("ns"))
    bad = np.flatnonzero(stamp.is_null().to_numpy())
    if bad.size:
        raise LobDataError(name, int(lines[bad[0]]), f"{stamp_col} {df[stamp_col][int(bad[0])]!r} is not a date")
    raw = {}
    for k in (*PRICES, "volume"):
        if col[k] in df.columns:
            v = df[col[k]].cast(pl.Float64, strict=False)
            bad = np.flatnonzero(v.is_null().to_numpy())
            if bad.size:
                value = df[col[k]][int(bad[0])]
                raise LobDataError(name, int(lines[bad[0]]), f"column {col[k]!r}: {value!r} is not a number")
            raw[k] = v
    raw = pl.DataFrame(raw)
    mult = 1.0 if price_multiplier == "auto" else float(price_multiplier)
    syms = df[col["symbol"]].cast(pl.Utf8).to_numpy() if col["symbol"] in df.columns else None
    frames = []
    for sym in dict.fromkeys(syms.tolist()) if syms is not None else [symbol or path.stem]:
        rows = np.flatnonzero(syms == sym) if syms is not None else np.arange(df.height)
        st = stamp.gather(rows)
        t = (st - st.dt.truncate("1d")).dt.total_nanoseconds()
        frames.append(_bars(str(sym).upper(), st.dt.date(), t, raw[rows], mult, name, lines[rows]))
    return pl.concat(frames)


def bar_gaps(bars: pl.DataFrame, max_step: dict[str, float] | None = None) -> pl.DataFrame:
    """Gaps between consecutive bars of each symbol longer than the usual step: for daily bars, more than 4
    calendar days (a weekend and a holiday); intraday, more than 5 minutes within a day. One row per gap:
    ``symbol``, ``from``, ``to``, ``days`` (daily) or ``minutes`` (intraday)."""
    steps = {"days": 4.0, "minutes": 5.0, **(max_step or {})}
    intraday = bars["time"].n_unique() > 1
    ts = pl.col("date").cast(pl.Datetime("ns")) + pl.duration(nanoseconds=pl.col("time"))
    g = bars.select("symbol", "date", ts.alias("at")).with_columns(
        pl.col("at").shift(1).over("symbol").alias("prev"), pl.col("date").shift(1).over("symbol").alias("prev_day")
    )
    if intraday:
        g = g.filter(pl.col("date") == pl.col("prev_day")).with_columns(
            ((pl.col("at") - pl.col("prev")).dt.total_seconds() / 60).alias("minutes")
        )
        g = g.filter(pl.col("minutes") > steps["minutes"])
        return g.select("symbol", pl.col("prev").alias("from"), pl.col("at").alias("to"), "minutes")
    g = g.with_columns((pl.col("date") - pl.col("prev_day")).dt.total_days().alias("days"))
    g = g.filter(pl.col("days") > steps["days"])
    return g.select("symbol", pl.col("prev_day").alias("from"), pl.col("date").alias("to"), "days")


def panel_returns(prices: pl.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray, pl.Series]:
    """(asset names, closes P (T + 1, N), simple returns R (T, N), the date of each return) of a close panel
    (:func:`close_panel`: ``date`` then one column per asset, no nulls). R[t] ends at P[t + 1], on dates[t]."""
    names = [c for c in prices.columns if c != "date"]
    P = prices.select(names).to_numpy().astype(float)
    return names, P, P[1:] / P[:-1] - 1, prices["date"][1:]


def close_panel(bars: pl.DataFrame, price: str = "close", how: str = "inner") -> pl.DataFrame:
    """Daily closes of every symbol side by side: ``date`` then one column per symbol. ``how="inner"``: only the
    dates where every symbol has a bar; ``"forward"``: every date any symbol has, a symbol without a bar that day
    keeping its last close (a zero return: causal, and what a mixed calendar of equities, FX and gold needs),
    from the first date on which every symbol has started to the last on which every symbol still trades."""
    if how not in ("inner", "forward"):
        raise ValueError(f"close_panel how must be inner or forward, not {how!r}")
    wide = bars.pivot(on="symbol", index="date", values=price, aggregate_function="last").sort("date")
    if how == "forward":
        last = bars.group_by("symbol").agg(pl.col("date").max())["date"].min()
        wide = wide.filter(pl.col("date") <= last).with_columns(pl.exclude("date").forward_fill())
    return wide.drop_nulls()


SPLIT_RATIOS = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 20.0)


def bar_jumps(bars: pl.DataFrame, max_move: float = 0.35) -> pl.DataFrame:
    """Close-to-close moves of each symbol beyond ``max_move`` in log terms (|ln(c_t / c_(t-1))| > ln(1 +
    max_move)): ``symbol, date, prev_close, close, log_return, open_gap`` (the overnight log move, where a split
    shows) and ``split_like`` (the standard split ratio, forward or reverse, within 3 % of that gap, else null)."""
    r = bars.sort("symbol", "date", "time").with_columns(pl.col("close").shift(1).over("symbol").alias("prev_close"))
    r = r.with_columns(
        (pl.col("close") / pl.col("prev_close")).log().alias("log_return"),
        (pl.col("open") / pl.col("prev_close")).log().alias("open_gap"),
    ).filter(pl.col("log_return").abs() > np.log1p(max_move))
    gap = -r["open_gap"].to_numpy()
    ratios = np.log(np.concatenate([SPLIT_RATIOS, 1 / np.array(SPLIT_RATIOS)]))
    near = np.abs(gap[:, None] - ratios[None, :]) if gap.size else np.zeros((0, ratios.size))
    best = near.argmin(1) if gap.size else np.zeros(0, dtype=int)
    like = [
        (f"{np.exp(ratios[b]):g}:1" if ratios[b] > 0 else f"1:{np.exp(-ratios[b]):g}") if near[i, b] < 0.03 else None
        for i, b in enumerate(best)
    ]
    return r.select("symbol", "date", "prev_close", "close", "log_return", "open_gap").with_columns(
        pl.Series("split_like", like, dtype=pl.Utf8)
    )


def back_adjust(bars: pl.DataFrame, jumps: pl.DataFrame) -> pl.DataFrame:
    """``bars`` with each listed jump removed: every bar of the symbol before the jump's date has its prices
    multiplied by close_t / close_(t-1), as a split adjustment would, so the jump day's close-to-close return is
    0 and every other return is unchanged."""
    if jumps.is_empty():
        return bars
    f = jumps.select("symbol", "date", (pl.col("close") / pl.col("prev_close")).alias("factor"))
    out = []
    for (sym,), g in bars.sort("symbol", "date", "time").group_by("symbol", maintain_order=True):
        fs = f.filter(pl.col("symbol") == sym)
        mult = np.ones(g.height)
        d = g["date"].to_numpy()
        for day, k in zip(fs["date"].to_numpy(), fs["factor"].to_numpy(), strict=True):
            mult[d < day] *= k
        cols = [pl.col(c) * pl.Series(mult) for c in (*PRICES, "bid_close", "ask_close")]
        out.append(g.with_columns(cols))
    return pl.concat(out)
