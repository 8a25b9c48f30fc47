"""LOBSTER reader: message + orderbook file pairs (any level count 1..50) into the canonical events table.

LOBSTER's specification: a message file and an orderbook file per ticker-day, no header, row i of the orderbook
is the book *after* message i. File names are ``TICKER_DATE_STARTMS_ENDMS_{message|orderbook}_LEVEL.csv``
(LOBSTER's samples add a suffix such as ``_SAMPLE``). See docs/data.md.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from lobnet.data._csv import read_numeric_csv
from lobnet.data.errors import (
    ArchiveError,
    BookConsistencyError,
    ColumnCountError,
    CrossedBookError,
    EventTypeError,
    FileNameError,
    LobDataError,
    NegativeValueError,
    RowCountMismatchError,
    SchemaError,
    TimeOrderError,
)
from lobnet.data.schema import (
    LOBSTER_DUMMY_ASK,
    LOBSTER_DUMMY_BID,
    LOBSTER_TYPES,
    MAX_LEVELS,
    check_finite,
    check_magnitudes,
    conform,
    level_columns,
)

NAME_RE = re.compile(
    r"^(?P<symbol>[A-Za-z0-9.\-]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)_"
    r"(?P<kind>message|orderbook)_(?P<levels>\d+)(?P<suffix>_[A-Za-z0-9]+)?\.csv$"
)
MESSAGE_COLUMNS: dict[str, pl.DataType] = {
    "time_s": pl.Float64(),
    "type": pl.Int64(),
    "order_id": pl.Int64(),
    "size": pl.Int64(),
    "price": pl.Int64(),
    "direction": pl.Int64(),
}


@dataclass(frozen=True)
class LobsterName:
    symbol: str
    date: dt.date
    start_ms: int
    end_ms: int
    kind: str
    levels: int

    def partner(self, name: str) -> str:
        other = "orderbook" if self.kind == "message" else "message"
        return name.replace(f"_{self.kind}_", f"_{other}_")


def parse_name(name: str) -> LobsterName:
    """Parse a LOBSTER file name; raises :class:`FileNameError`."""
    m = NAME_RE.match(Path(name).name)
    if not m:
        raise FileNameError(
            name, None, "not a LOBSTER file name (TICKER_DATE_STARTMS_ENDMS_{message|orderbook}_LEVEL.csv)"
        )
    try:
        date = dt.date.fromisoformat(m["date"])
    except ValueError:
        raise FileNameError(name, None, f"invalid date {m['date']!r} in file name") from None
    levels = int(m["levels"])
    if not 1 <= levels <= MAX_LEVELS:
        raise FileNameError(name, None, f"level count {levels} outside 1..{MAX_LEVELS}")
    return LobsterName(m["symbol"], date, int(m["start"]), int(m["end"]), m["kind"], levels)


@dataclass
class _Pair:
    message: str | bytes  # path or bytes (zip member)
    orderbook: str | bytes
    message_name: str  # what errors call each file
    orderbook_name: str
    meta: LobsterName | None


def _pairs_in_zip(path: Path) -> list[_Pair]:
    try:
        zf = zipfile.ZipFile(path)
        bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ArchiveError(path, None, f"corrupt or unreadable zip archive ({e})") from None
    if bad is not None:
        raise ArchiveError(path, None, f"corrupt member {bad!r} (CRC check failed)")
    with zf:
        members = {Path(n).name: n for n in zf.namelist() if not n.endswith("/")}
        pairs = []
        for base, full in sorted(members.items()):
            if not NAME_RE.match(base) or "_message_" not in base:
                continue
            meta = parse_name(base)
            partner = meta.partner(base)
            if partner not in members:
                raise ArchiveError(path, None, f"{base} has no orderbook file {partner} in the archive")
            pairs.append(
                _Pair(zf.read(full), zf.read(members[partner]), f"{path}:{full}", f"{path}:{members[partner]}", meta)
            )
    if not pairs:
        raise ArchiveError(path, None, "no LOBSTER message/orderbook pair in the archive")
    return pairs


def _find_pairs(path: Path, orderbook: str | Path | None, levels: int | None) -> list[_Pair]:
    if not path.exists():
        raise LobDataError(path, None, "no such file or folder")
    if path.is_dir():
        pairs: list[_Pair] = []
        for f in sorted(path.iterdir()):
            if f.suffix == ".zip":
                pairs += _pairs_in_zip(f)
            elif NAME_RE.match(f.name) and "_message_" in f.name:
                meta = parse_name(str(f))
                ob = f.with_name(meta.partner(f.name))
                if not ob.exists():
                    raise RowCountMismatchError(f, None, f"no orderbook file {ob.name} beside the message file")
                pairs.append(_Pair(str(f), str(ob), str(f), str(ob), meta))
        if levels is not None:
            pairs = [p for p in pairs if p.meta is None or p.meta.levels == levels]
        if not pairs:
            raise LobDataError(path, None, "no LOBSTER message/orderbook pair in this folder")
        keys = [(p.meta.symbol, p.meta.date) for p in pairs if p.meta]
        if len(set(keys)) != len(keys):
            raise SchemaError(path, None, "several level counts for the same symbol-day; pass levels=N to choose one")
        return pairs
    if path.suffix == ".zip":
        return _pairs_in_zip(path)
    meta: LobsterName | None = None
    try:
        meta = parse_name(str(path))
    except FileNameError:
        if orderbook is None:
            raise
    if meta is not None and meta.kind == "orderbook":  # accept either file of the pair
        path, meta = path.with_name(meta.partner(path.name)), parse_name(meta.partner(path.name))
    ob = Path(orderbook) if orderbook is not None else path.with_name(meta.partner(path.name))
    if not ob.exists():
        raise RowCountMismatchError(path, None, f"no orderbook file {ob.name} beside the message file")
    return [_Pair(str(path), str(ob), str(path), str(ob), meta)]


def read_lobster(
    path: str | Path,
    *,
    symbol: str | None = None,
    date: str | dt.date | None = None,
    levels: int | None = None,
    orderbook: str | Path | None = None,
    strict: bool = False,
) -> pl.DataFrame:
    """Read LOBSTER data into the canonical events table (see :mod:`lobnet.data.schema`).

    ``path`` is a message file (its orderbook file is found by name, or given as ``orderbook``), a folder of
    message/orderbook pairs (one table, sorted by symbol and date), or a ``.zip`` holding pairs. ``symbol``,
    ``date`` and ``levels`` override what the file names say and are required when a name cannot be parsed.
    ``strict=True`` also checks every message against the book change it causes (:func:`check_consistency`).
    Raises a :class:`~lobnet.data.errors.LobDataError` subclass naming file, row and reason.
    """
    if isinstance(date, str):
        date = dt.date.fromisoformat(date)
    frames = []
    for pair in _find_pairs(Path(path), orderbook, levels):
        meta = pair.meta
        sym = symbol or (meta.symbol if meta else None)
        day = date or (meta.date if meta else None)
        if sym is None or day is None:
            raise FileNameError(
                pair.message_name, None, "cannot parse symbol and date from the file name; pass symbol= and date="
            )
        lv = levels or (meta.levels if meta else None)
        frames.append(_read_pair(pair, sym, day, lv, strict))
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def _read_pair(pair: _Pair, symbol: str, date: dt.date, levels: int | None, strict: bool) -> pl.DataFrame:
    msg = read_numeric_csv(pair.message, pair.message_name, MESSAGE_COLUMNS)
    if levels is None:  # unparsable name with explicit symbol/date: infer from the orderbook's width
        first = pair.orderbook if isinstance(pair.orderbook, bytes) else Path(pair.orderbook).read_bytes()[:65536]
        width = first.split(b"\n", 1)[0].count(b",") + 1
        if width % 4:
            raise ColumnCountError(pair.orderbook_name, 1, f"{width} fields is not 4 x levels")
        levels = width // 4
    if not 1 <= levels <= MAX_LEVELS:
        raise SchemaError(pair.orderbook_name, None, f"level count {levels} outside 1..{MAX_LEVELS}")
    book_cols = level_columns(levels)
    book = read_numeric_csv(pair.orderbook, pair.orderbook_name, {c: pl.Int64() for c in book_cols})
    if msg.height != book.height:
        raise RowCountMismatchError(
            pair.orderbook_name,
            None,
            f"{book.height} orderbook rows but {msg.height} message rows in {pair.message_name}",
        )
    _validate_messages(msg, pair.message_name)
    _validate_book(book, levels, pair.orderbook_name)
    if strict:
        check_consistency(msg, book, levels, pair.message_name)
    # dummy prices of unoccupied levels become nulls, so that no feature can do arithmetic on them (only the
    # columns that hold any: a deep, liquid book usually has none)
    extremes = book.select(
        *[pl.col(f"ask_px_{m}").max() for m in range(1, levels + 1)],
        *[pl.col(f"bid_px_{m}").min() for m in range(1, levels + 1)],
    ).row(0, named=True)
    nulled = [
        pl.col(c).replace(dummy, None)
        for c, dummy in [(f"ask_px_{m}", LOBSTER_DUMMY_ASK) for m in range(1, levels + 1)]
        + [(f"bid_px_{m}", LOBSTER_DUMMY_BID) for m in range(1, levels + 1)]
        if extremes[c] == dummy
    ]
    df = pl.concat([msg, book.with_columns(nulled)], how="horizontal").with_columns(
        pl.lit(symbol).alias("symbol"),
        pl.lit(date).alias("date"),
        # seconds with up to 9 decimals -> integer ns; float64 holds 57600 s to well under 1 ns
        (pl.col("time_s") * 1e9).round().cast(pl.Int64).alias("time"),
    )
    return conform(df, levels)


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _validate_messages(msg: pl.DataFrame, name: str) -> None:
    t = msg["time_s"].to_numpy()
    check_finite(t, name, "time")
    typ = msg["type"].to_numpy()
    if (i := _first(~np.isin(typ, list(LOBSTER_TYPES)))) is not None:
        raise EventTypeError(name, i + 1, f"unknown event type {typ[i]} (LOBSTER types are 1..7)")
    if (i := _first(np.diff(t) < 0)) is not None:
        raise TimeOrderError(name, i + 2, f"time {t[i + 1]:.9f} s is before the previous row's {t[i]:.9f} s")
    if (i := _first(t < 0)) is not None:
        raise NegativeValueError(name, i + 1, f"negative time {t[i]}")
    size = msg["size"].to_numpy()
    if (i := _first(size < 0)) is not None:
        raise NegativeValueError(name, i + 1, f"negative size {size[i]}")
    price = msg["price"].to_numpy()
    if (i := _first((price < 0) & (typ != 7))) is not None:  # halts carry price -1
        raise NegativeValueError(name, i + 1, f"negative price {price[i]}")
    d = msg["direction"].to_numpy()
    if (i := _first(~np.isin(d, [1, -1]))) is not None:
        raise SchemaError(name, i + 1, f"direction {d[i]} (must be 1 or -1)")
    check_magnitudes(msg, name, sizes=["size"], prices=["price"])


def _validate_book(book: pl.DataFrame, levels: int, name: str) -> None:
    for m in range(1, levels + 1):
        for side, dummy in (("ask", LOBSTER_DUMMY_ASK), ("bid", LOBSTER_DUMMY_BID)):
            px = book[f"{side}_px_{m}"].to_numpy()
            sz = book[f"{side}_sz_{m}"].to_numpy()
            if (i := _first(sz < 0)) is not None:
                raise NegativeValueError(name, i + 1, f"negative size {sz[i]} in {side}_sz_{m}")
            if (i := _first((px < 0) & (px != dummy))) is not None:
                raise NegativeValueError(name, i + 1, f"negative price {px[i]} in {side}_px_{m}")
            if (i := _first((px == dummy) & (sz != 0))) is not None:
                raise SchemaError(name, i + 1, f"unoccupied {side} level {m} has size {sz[i]} (must be 0)")
    check_magnitudes(
        book,
        name,
        sizes=[c for c in book.columns if "_sz_" in c],
        prices=[c for c in book.columns if "_px_" in c],
        allow=(LOBSTER_DUMMY_ASK, LOBSTER_DUMMY_BID),
    )
    ask = book["ask_px_1"].to_numpy()
    bid = book["bid_px_1"].to_numpy()
    both = (ask != LOBSTER_DUMMY_ASK) & (bid != LOBSTER_DUMMY_BID)
    if (i := _first(both & (ask <= bid))) is not None:
        raise CrossedBookError(name, i + 1, f"best ask {ask[i]} <= best bid {bid[i]} (crossed or locked book)")
    # levels are occupied price levels in order: asks rise and bids fall with depth, and once a level is
    # unoccupied every deeper one is (a dummy or a price in the wrong column would give garbage gaps)
    for side, dummy, worse in (("ask", LOBSTER_DUMMY_ASK, np.greater), ("bid", LOBSTER_DUMMY_BID, np.less)):
        for m in range(2, levels + 1):
            prev, cur = book[f"{side}_px_{m - 1}"].to_numpy(), book[f"{side}_px_{m}"].to_numpy()
            hole = (prev == dummy) & (cur != dummy)
            if (i := _first(hole)) is not None:
                raise SchemaError(name, i + 1, f"{side} level {m} is occupied ({cur[i]}) but level {m - 1} is not")
            if (i := _first((prev != dummy) & (cur != dummy) & ~worse(cur, prev))) is not None:
                raise SchemaError(
                    name,
                    i + 1,
                    f"{side}_px_{m} {cur[i]} is not {'above' if side == 'ask' else 'below'} "
                    f"{side}_px_{m - 1} {prev[i]}: levels out of order",
                )


def _size_at(px: np.ndarray, sz: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Visible size at ``price`` on one side, row by row. px, sz: (N, L); price: (N,)."""
    return np.where(px == price[:, None], sz, 0).sum(axis=1)


def check_consistency(msg: pl.DataFrame, book: pl.DataFrame, levels: int, name: str) -> None:
    """Strict mode: check each message against the book change it causes, and raise on the first mismatch.

    For message i (book i-1 before, book i after), on the side of the resting order (direction 1: bid):
    a new limit order (1) raises the visible size at its price by its size; a cancel (2), deletion (3) or
    visible execution (4) lowers it by its size. Events at a price deeper than the visible levels (possible only
    when all L levels are occupied) leave the side unchanged. Hidden executions (5), cross trades (6) and halts
    (7) leave the whole book unchanged, and types 1..4 never change the opposite side. The first message has no
    book before it and is not checked.
    """
    n = msg.height
    if n < 2:
        return
    typ = msg["type"].to_numpy()[1:]
    size = msg["size"].to_numpy()[1:]
    price = msg["price"].to_numpy()[1:]
    direction = msg["direction"].to_numpy()[1:]
    arr = {
        (side, what): book.select([f"{side}_{what}_{m}" for m in range(1, levels + 1)]).to_numpy()
        for side in ("ask", "bid")
        for what in ("px", "sz")
    }
    bad = np.zeros(n - 1, dtype=bool)
    why = np.zeros(n - 1, dtype=np.int8)  # 1: size change, 2: other side changed, 3: book changed
    for side, sign, dummy in (("bid", 1, LOBSTER_DUMMY_BID), ("ask", -1, LOBSTER_DUMMY_ASK)):
        px, sz = arr[(side, "px")], arr[(side, "sz")]
        prev_px, prev_sz, cur_px, cur_sz = px[:-1], sz[:-1], px[1:], sz[1:]
        on_side = direction == sign
        # visible unless the previous book had every level occupied and the price is beyond the deepest one
        deepest = prev_px[:, -1]
        full = deepest != dummy
        beyond = (price < deepest) if side == "bid" else (price > deepest)
        visible = ~(full & beyond)
        delta = _size_at(cur_px, cur_sz, price) - _size_at(prev_px, prev_sz, price)
        expected = np.select([typ == 1, np.isin(typ, (2, 3, 4))], [size, -size], 0)
        expected = np.where(visible, expected, 0)
        side_same = (prev_px == cur_px).all(axis=1) & (prev_sz == cur_sz).all(axis=1)
        m1 = on_side & np.isin(typ, (1, 2, 3, 4)) & (delta != expected)
        m2 = on_side & np.isin(typ, (1, 2, 3, 4)) & ~visible & ~side_same
        m3 = ~on_side & np.isin(typ, (1, 2, 3, 4)) & ~side_same
        m4 = np.isin(typ, (5, 6, 7)) & ~side_same
        why = np.where(m1 & ~bad, 1, why)
        bad |= m1
        why = np.where((m2 | m3) & ~bad, 2, why)
        bad |= m2 | m3
        why = np.where(m4 & ~bad, 3, why)
        bad |= m4
    if (i := _first(bad)) is not None:
        names = {
            1: "new limit order",
            2: "partial cancellation",
            3: "deletion",
            4: "visible execution",
            5: "hidden execution",
            6: "cross trade",
            7: "trading halt",
        }
        t, s, p, d = int(typ[i]), int(size[i]), int(price[i]), int(direction[i])
        side = "bid" if d == 1 else "ask"
        reason = {
            1: f"{names[t]} of {s} at {p} on the {side} side does not change that price's visible size by "
            f"{'+' if t == 1 else '-'}{s}",
            2: f"{names[t]} on the {side} side changed the {'ask' if d == 1 else 'bid'} side of the book, "
            "or a level beyond the visible depth",
            3: f"{names[t]} changed the visible book",
        }[int(why[i])]
        raise BookConsistencyError(name, i + 2, reason)
