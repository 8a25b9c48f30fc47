"""The canonical events table that every reader produces and everything downstream reads.

Columns (in this order):

| column | dtype | meaning |
|---|---|---|
| ``symbol`` | Utf8 | ticker |
| ``date`` | Date | trading day |
| ``time`` | Int64 | nanoseconds after midnight (exchange local time) |
| ``type`` | Int8 | event type, see :class:`EventType` |
| ``order_id`` | Int64 | order reference (0 when the source has none) |
| ``size`` | Int64 | shares of the event |
| ``price`` | Int64 | price of the event in source ticks (dollars x 10000) |
| ``direction`` | Int8 | side of the *resting limit order*, LOBSTER's convention (below) |
| ``ask_px_m, ask_sz_m, bid_px_m, bid_sz_m`` | Int64 | book after the event, level m = 1..L (below) |

``direction`` is 1 for a buy limit order and -1 for a sell one; for an execution the aggressor is the opposite
side; 0 for quote updates. In the book an unoccupied level has a **null** price and size 0.

Prices stay integers in the source's units (dollars x 10000, ``price_scale``) until a feature needs floats.
LOBSTER's dummy prices for unoccupied levels (+-9999999999) are turned into nulls by the reader, so they can
never leak into an arithmetic feature.
"""

from __future__ import annotations

from enum import IntEnum

import polars as pl

PRICE_SCALE = 10_000  # source price units per dollar (LOBSTER and AlgoSeek both use dollars x 10000)
DEFAULT_TICK = 100  # one cent in source units: US equities above $1
LOBSTER_DUMMY_ASK = 9_999_999_999
LOBSTER_DUMMY_BID = -9_999_999_999
MAX_LEVELS = 50
# The largest size and price (source units) a reader accepts. Features sum sizes and prices over up to 2 x 50
# levels and difference them between events; within these bounds every such sum fits int64 and is exact in
# float64 (< 2^53), far above any real order (a billion shares; $10 M a share). Beyond them lies a corrupt
# field, which would otherwise wrap around (a depth of -9.2e18) without a word.
MAX_SIZE = 10**9
MAX_PRICE = 10**11


class EventType(IntEnum):
    QUOTE = 0  # Level-I book update without order detail (consolidated quotes)
    LIMIT = 1  # new limit order
    CANCEL = 2  # partial cancellation
    DELETE = 3  # full deletion
    EXECUTE = 4  # execution of a visible order (also: a Level-I trade)
    EXECUTE_HIDDEN = 5  # execution of a hidden order
    CROSS = 6  # cross trade (auction)
    HALT = 7  # trading halt indicator (price -1 halt, 0 quoting resumes, 1 trading resumes)


LOBSTER_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7})
KNOWN_TYPES = frozenset(int(t) for t in EventType)

EVENT_COLUMNS = ["symbol", "date", "time", "type", "order_id", "size", "price", "direction"]


def check_finite(values, name: str, column: str, first_row: int = 1) -> None:
    """Refuse a NaN or infinite value (a CSV may spell them ``nan``, ``inf``): ``first_row`` is the file line of
    element 0."""
    import numpy as np

    from lobnet.data.errors import ParseError

    bad = np.flatnonzero(~np.isfinite(np.asarray(values, dtype=float)))
    if bad.size:
        i = int(bad[0])
        raise ParseError(name, i + first_row, f"column '{column}': {values[i]} is not a finite number")


def check_magnitudes(df: pl.DataFrame, name: str, sizes=(), prices=(), first_row: int = 1, allow=()) -> None:
    """Refuse sizes above :data:`MAX_SIZE` and prices whose magnitude exceeds :data:`MAX_PRICE` (``allow``:
    sentinel values that are not prices, LOBSTER's dummies)."""
    import numpy as np

    from lobnet.data.errors import SchemaError

    for cols, limit, what in ((sizes, MAX_SIZE, "size"), (prices, MAX_PRICE, "price")):
        for c in cols:
            v = df[c].to_numpy()
            bad = np.abs(v) > limit
            if allow:
                bad &= ~np.isin(v, list(allow))
            if (idx := np.flatnonzero(bad)).size:
                i = int(idx[0])
                raise SchemaError(
                    name,
                    i + first_row,
                    f"column '{c}': {what} {v[i]} is beyond what the features can sum ({limit:.0e})",
                )


def level_columns(levels: int) -> list[str]:
    """Book columns in LOBSTER's order: ask_px_1, ask_sz_1, bid_px_1, bid_sz_1, ask_px_2, ..."""
    cols: list[str] = []
    for m in range(1, levels + 1):
        cols += [f"ask_px_{m}", f"ask_sz_{m}", f"bid_px_{m}", f"bid_sz_{m}"]
    return cols


def event_schema(levels: int) -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {
        "symbol": pl.Utf8(),
        "date": pl.Date(),
        "time": pl.Int64(),
        "type": pl.Int8(),
        "order_id": pl.Int64(),
        "size": pl.Int64(),
        "price": pl.Int64(),
        "direction": pl.Int8(),
    }
    for c in level_columns(levels):
        schema[c] = pl.Int64()
    return schema


def n_levels(df: pl.DataFrame | pl.LazyFrame) -> int:
    """Number of book levels in an events table."""
    names = df.collect_schema().names() if isinstance(df, pl.LazyFrame) else df.columns
    return sum(1 for c in names if c.startswith("ask_px_"))


def conform(df: pl.DataFrame, levels: int) -> pl.DataFrame:
    """Select and cast to the canonical column order and dtypes."""
    return df.select([pl.col(c).cast(t) for c, t in event_schema(levels).items()])


def first_of_day() -> pl.Expr:
    """True on the first event of each symbol-day of a table sorted by symbol, date, time."""
    return ((pl.col("symbol") != pl.col("symbol").shift(1)) | (pl.col("date") != pl.col("date").shift(1))).fill_null(
        True
    )


def day_slices(df: pl.DataFrame) -> list[slice]:
    """Row slices of each symbol-day, in table order."""
    return [slice(s, e) for _, _, s, e in day_groups(df)]


def day_groups(df: pl.DataFrame) -> list[tuple[str, object, int, int]]:
    """(symbol, date, start_row, end_row_exclusive) for each contiguous symbol-day block, in table order."""
    keys = df.select(["symbol", "date"]).with_row_index("_i")
    b = keys.group_by(["symbol", "date"], maintain_order=True).agg(
        pl.col("_i").min().alias("start"), pl.col("_i").max().alias("last"), pl.len().alias("n")
    )
    out = []
    for sym, date, start, last, n in b.iter_rows():
        if last - start + 1 != n:
            raise ValueError(f"events for {sym} {date} are not contiguous in the table; sort by symbol, date, time")
        out.append((sym, date, int(start), int(last) + 1))
    return out
