"""The feature catalogue: every feature defined once.

A feature is a function of the book *after* the current event and, for a few, of the previous event's values
(``B.prev``): nothing else. That makes every feature causal by construction and gives each an O(1) per-event
update: the same definition is evaluated by a backend ``B``. :class:`PolarsBackend` turns it into polars
expressions over a whole events table (the batch path); a per-event backend evaluates the same definitions on
one event and the previous one (the streaming path). Definitions may use only the backend's operations
(``col``, ``prev``, ``where``, ``log``, ``log1p``, ``fill_null``, ``isin``, ``null``) and arithmetic or
comparison operators, so that both backends compute the same thing.

Warm-up: features that use ``prev`` are null on the first event of each day (``Feature.warmup`` = 1), a rolling
bar feature on its first ``warmup`` bars. They are never filled with zeros; the window dataset starts after the
warm-up.

Bar features (``source="bars"``: ``bar_return``, ``bar_range``, ``bar_volume``, ``bar_volatility``) read the bars
table of :mod:`lobnet.data.bars` instead of a book: a day is a symbol's session of intraday bars, and the same
walk-forward, windows and models run on them. They are computed in batch only (``rolling_std`` has no per-event
form), since bars are not streamed.

Units: prices in dollars (source units / ``price_scale``), spreads and gaps in ticks, sizes in shares,
returns as log returns, time in microseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from lobnet.data.schema import DEFAULT_TICK, LOBSTER_DUMMY_ASK, LOBSTER_DUMMY_BID, PRICE_SCALE, EventType, first_of_day


@dataclass(frozen=True)
class FeatureParams:
    levels: int  # book levels in the data
    tick: int = DEFAULT_TICK  # source price units per tick
    price_scale: int = PRICE_SCALE  # source price units per dollar
    depth_levels: int = 0  # levels summed by depth_imbalance; 0 = all


@dataclass(frozen=True)
class FeatureSpec:
    """The feature configuration (``conf/features``): which groups, and the units. Levels come from the data."""

    groups: tuple[str, ...] = ()
    tick: int = DEFAULT_TICK
    price_scale: int = PRICE_SCALE
    depth_levels: int = 0

    def __post_init__(self):
        object.__setattr__(self, "groups", tuple(self.groups) or tuple(DEFAULT_GROUPS))
        unknown = [g for g in self.groups if g not in CATALOGUE]
        if unknown:
            raise ValueError(f"unknown feature groups {unknown}; known: {list(CATALOGUE)}")
        if len({CATALOGUE[g].source for g in self.groups}) > 1:
            raise ValueError(f"feature groups {list(self.groups)} mix book events and bars ({BAR_GROUPS} read bars)")

    @property
    def source(self) -> str:
        """What the features read: ``events`` (a book's events table) or ``bars``."""
        return CATALOGUE[self.groups[0]].source

    def params(self, levels: int) -> FeatureParams:
        return FeatureParams(
            levels=levels, tick=self.tick, price_scale=self.price_scale, depth_levels=self.depth_levels
        )


@dataclass(frozen=True)
class Feature:
    name: str
    columns: Callable[[FeatureParams], list[str]]
    define: Callable[[Any, FeatureParams], dict[str, Any]]
    warmup: int
    doc: str
    source: str = "events"  # what it reads: "events" (the events table of a book) or "bars" (the bars table)


class PolarsBackend:
    """Evaluates feature definitions as polars expressions over an events table sorted by symbol, date, time.
    ``prev`` shifts by one event and is null on the first event of each symbol-day, so nothing crosses a day."""

    FIRST = "__first_of_day"  # computed once per table by :func:`compute_features`
    POS = "__row_in_day"  # the row's place in its symbol-day, when a feature's warm-up is longer than one row

    def __init__(self, first: pl.Expr | None = None) -> None:
        self._first = pl.col(self.FIRST) if first is None else first
        self.used_prev = False  # set by prev(): such a feature must declare warmup >= 1

    first_of_day = staticmethod(first_of_day)

    col = staticmethod(pl.col)
    null = None

    def prev(self, e: pl.Expr) -> pl.Expr:
        self.used_prev = True
        # a plain shift: on the first event of a day it reads the previous day, so every feature that uses prev
        # (warmup > 0) is masked to null there by compute_features, once per feature rather than once per prev
        return e.shift(1)

    def mask_warmup(self, e: pl.Expr, warmup: int = 1) -> pl.Expr:
        """``e`` null on the first ``warmup`` rows of each symbol-day."""
        first = self._first if warmup <= 1 else pl.col(self.POS) < warmup
        return pl.when(first).then(None).otherwise(e)

    @staticmethod
    def rolling_std(x: pl.Expr, n: int) -> pl.Expr:
        """The standard deviation of the last ``n`` values of ``x``, the current one included. Batch only: the
        per-event backend has no state for it, so features using it are bar features, which are not streamed; a
        plain rolling window that crosses into the previous day, so such a feature declares ``warmup >= n``."""
        return x.rolling_std(n)

    @staticmethod
    def where(cond: pl.Expr, a: Any, b: Any) -> pl.Expr:
        # a null condition (a warm-up row) gives null, not b: warm-up never looks like data
        return pl.when(cond).then(a).when(cond.not_()).then(b)

    @staticmethod
    def log(x: pl.Expr) -> pl.Expr:
        return x.log()

    @staticmethod
    def log1p(x: pl.Expr) -> pl.Expr:
        return x.log1p()

    @staticmethod
    def fill_null(x: pl.Expr, value: Any) -> pl.Expr:
        return x.fill_null(value)

    @staticmethod
    def isin(x: pl.Expr, values: tuple) -> pl.Expr:
        return x.is_in(list(values))


# --- definitions -------------------------------------------------------------------------------------------


def _mid(B, p: FeatureParams):
    return (B.col("ask_px_1") + B.col("bid_px_1")) / (2 * p.price_scale)


def f_mid(B, p):
    return {"mid": _mid(B, p)}


def f_spread(B, p):
    return {"spread": (B.col("ask_px_1") - B.col("bid_px_1")) / p.tick}


def f_microprice(B, p):
    a, b, qa, qb = B.col("ask_px_1"), B.col("bid_px_1"), B.col("ask_sz_1"), B.col("bid_sz_1")
    q = qa + qb
    return {"microprice": B.where(q > 0, (a * qb + b * qa) / (q * p.price_scale), _mid(B, p))}


def f_mid_logret(B, p):
    m = _mid(B, p)
    return {"mid_logret": B.log(m / B.prev(m))}


def _ofi_level(B, m: int):
    """Cont, Kukanov & Stoikov's e_n at level m (multi-level: Xu, Gould & Howison). An unoccupied level counts
    as size 0 at an infinitely bad price, so a level appearing adds its whole queue and one vanishing removes it."""
    bp = B.fill_null(B.col(f"bid_px_{m}"), LOBSTER_DUMMY_BID)
    ap = B.fill_null(B.col(f"ask_px_{m}"), LOBSTER_DUMMY_ASK)
    bq, aq = B.col(f"bid_sz_{m}"), B.col(f"ask_sz_{m}")
    bp0, ap0, bq0, aq0 = B.prev(bp), B.prev(ap), B.prev(bq), B.prev(aq)
    return (
        B.where(bp >= bp0, bq, 0) - B.where(bp <= bp0, bq0, 0) - B.where(ap <= ap0, aq, 0) + B.where(ap >= ap0, aq0, 0)
    )


def f_ofi(B, p):
    return {f"ofi_{m}": _ofi_level(B, m) for m in range(1, p.levels + 1)}


def f_queue_imbalance(B, p):
    qa, qb = B.col("ask_sz_1"), B.col("bid_sz_1")
    return {"queue_imbalance": B.where(qa + qb > 0, (qb - qa) / (qa + qb), B.null)}


def _cum(B, side: str, upto: int):
    out, acc = [], None
    for m in range(1, upto + 1):
        acc = B.col(f"{side}_sz_{m}") if acc is None else acc + B.col(f"{side}_sz_{m}")
        out.append(acc)
    return out


def f_depth(B, p):
    d = {}
    for side in ("bid", "ask"):
        for m, e in enumerate(_cum(B, side, p.levels), start=1):
            d[f"{side}_depth_{m}"] = e
    return d


def f_depth_imbalance(B, p):
    n = p.depth_levels or p.levels
    bq, aq = _cum(B, "bid", n)[-1], _cum(B, "ask", n)[-1]
    return {"depth_imbalance": B.where(aq + bq > 0, (bq - aq) / (aq + bq), B.null)}


def f_gaps(B, p):
    """Distance in ticks from level m-1 to level m (positive on both sides); null when either is unoccupied."""
    d = {}
    for m in range(2, p.levels + 1):
        d[f"ask_gap_{m}"] = (B.col(f"ask_px_{m}") - B.col(f"ask_px_{m - 1}")) / p.tick
        d[f"bid_gap_{m}"] = (B.col(f"bid_px_{m - 1}") - B.col(f"bid_px_{m}")) / p.tick
    return d


def f_book(B, p):
    """The book itself, per level m in LOBSTER's order (ask price, ask size, bid price, bid size): prices as
    distance from the mid in ticks (stationary, unlike raw prices), sizes in shares. DeepLOB's input."""
    m2 = B.col("ask_px_1") + B.col("bid_px_1")
    d = {}
    for m in range(1, p.levels + 1):
        d[f"ask_dist_{m}"] = (2 * B.col(f"ask_px_{m}") - m2) / (2 * p.tick)
        d[f"ask_sz_{m}"] = B.col(f"ask_sz_{m}")
        d[f"bid_dist_{m}"] = (m2 - 2 * B.col(f"bid_px_{m}")) / (2 * p.tick)
        d[f"bid_sz_{m}"] = B.col(f"bid_sz_{m}")
    return d


EXEC_TYPES = (int(EventType.EXECUTE), int(EventType.EXECUTE_HIDDEN))


def f_signed_volume(B, p):
    """Executed shares signed by the aggressor: + buyer-initiated, - seller-initiated. LOBSTER's direction is
    the resting order's side, so the aggressor is its opposite. Cross trades (type 6) have no aggressor."""
    return {"signed_volume": B.where(B.isin(B.col("type"), EXEC_TYPES), -B.col("direction") * B.col("size"), 0)}


def f_event_type(B, p):
    t = B.col("type")
    return {
        "is_limit": B.where(t == int(EventType.LIMIT), 1.0, 0.0),
        "is_cancel": B.where(B.isin(t, (int(EventType.CANCEL), int(EventType.DELETE))), 1.0, 0.0),
        "is_exec": B.where(B.isin(t, EXEC_TYPES), 1.0, 0.0),
        "is_quote": B.where(t == int(EventType.QUOTE), 1.0, 0.0),
    }


def f_log_dt(B, p):
    """log(1 + microseconds since the previous event): 0 for events sharing a timestamp."""
    t = B.col("time")
    return {"log_dt": B.log1p((t - B.prev(t)) / 1000.0)}


# --- bar features (the bars table of lobnet.data.bars: open, high, low, close in dollars, volume) -------------

BAR_VOL_WINDOW = 20  # bars in bar_volatility's rolling standard deviation


def f_bar_return(B, p):
    c, o = B.col("close"), B.col("open")
    return {
        "ret": B.log(c / B.prev(c)),  # close to close
        "ret_intrabar": B.log(c / o),  # open to close of this bar
        "ret_gap": B.log(o / B.prev(c)),  # previous close to this open
    }


def f_bar_range(B, p):
    h, lo, c = B.col("high"), B.col("low"), B.col("close")
    return {
        "range": B.log(h / lo),  # Parkinson's range, the bar's volatility proxy
        "close_location": B.where(h > lo, (c - lo) / (h - lo), 0.5),  # 0 at the low, 1 at the high
    }


def f_bar_volume(B, p):
    v = B.log1p(B.col("volume"))
    return {"log_volume": v, "log_volume_change": v - B.prev(v)}


def f_bar_volatility(B, p):
    c = B.col("close")
    return {f"volatility_{BAR_VOL_WINDOW}": B.rolling_std(B.log(c / B.prev(c)), BAR_VOL_WINDOW)}


def _names(fn):
    """Column names of a definition, read by building (not running) its polars expressions."""
    return lambda p: list(fn(PolarsBackend(pl.lit(False)), p))


CATALOGUE: dict[str, Feature] = {
    f.name: f
    for f in [
        Feature("mid", _names(f_mid), f_mid, 0, "mid price (a1 + b1) / 2, dollars"),
        Feature("spread", _names(f_spread), f_spread, 0, "a1 - b1 in ticks"),
        Feature(
            "microprice",
            _names(f_microprice),
            f_microprice,
            0,
            "size-weighted mid (a1 q_b + b1 q_a) / (q_a + q_b), dollars",
        ),
        Feature("mid_logret", _names(f_mid_logret), f_mid_logret, 1, "log(mid_t / mid_{t-1})"),
        Feature("ofi", _names(f_ofi), f_ofi, 1, "order-flow imbalance e_n per level m (ofi_1 = Cont-Kukanov-Stoikov)"),
        Feature("queue_imbalance", _names(f_queue_imbalance), f_queue_imbalance, 0, "(q_b1 - q_a1) / (q_b1 + q_a1)"),
        Feature(
            "depth_imbalance",
            _names(f_depth_imbalance),
            f_depth_imbalance,
            0,
            "(sum q_b - sum q_a) / (sum q_b + sum q_a) over depth_levels",
        ),
        Feature("depth", _names(f_depth), f_depth, 0, "cumulative shares up to level m, per side"),
        Feature("gaps", _names(f_gaps), f_gaps, 0, "ticks between level m-1 and m, per side"),
        Feature(
            "signed_volume", _names(f_signed_volume), f_signed_volume, 0, "executed shares signed by aggressor (+ buy)"
        ),
        Feature(
            "event_type", _names(f_event_type), f_event_type, 0, "indicators: limit, cancel/delete, execution, quote"
        ),
        Feature("log_dt", _names(f_log_dt), f_log_dt, 1, "log(1 + microseconds since the previous event)"),
        Feature(
            "book", _names(f_book), f_book, 0, "per level: ask/bid distance from the mid in ticks, sizes (DeepLOB)"
        ),
        Feature(
            "bar_return",
            _names(f_bar_return),
            f_bar_return,
            1,
            "log returns: close to close, open to close, previous close to open",
            "bars",
        ),
        Feature(
            "bar_range",
            _names(f_bar_range),
            f_bar_range,
            0,
            "log(high / low); where the close lies in the range",
            "bars",
        ),
        Feature("bar_volume", _names(f_bar_volume), f_bar_volume, 1, "log(1 + volume) and its change", "bars"),
        Feature(
            "bar_volatility",
            _names(f_bar_volatility),
            f_bar_volatility,
            BAR_VOL_WINDOW,
            f"standard deviation of the last {BAR_VOL_WINDOW} close-to-close log returns",
            "bars",
        ),
    ]
}
# the groups of an empty list, per source; the book is opt-in: DeepLOB's input, 4L more columns
DEFAULT_GROUPS = [g for g, f in CATALOGUE.items() if g != "book" and f.source == "events"]
BAR_GROUPS = [g for g, f in CATALOGUE.items() if f.source == "bars"]


def feature_names(params: FeatureParams, groups: list[str] | None = None) -> list[str]:
    return [c for g in (groups or DEFAULT_GROUPS) for c in CATALOGUE[g].columns(params)]


def pair_feature_names(params: FeatureParams, groups: list[str]) -> list[str]:
    """The feature list of a merged two-symbol table (``labels=pairs``, :func:`lobnet.prep.prepared.pair_features`):
    every group's features of symbol A as ``a_<name>``, then symbol B's as ``b_<name>``, and the time gap
    (``log_dt``, a property of the merged stream itself) once, unprefixed, where A's would stand."""
    shared = set(feature_names(params, ["log_dt"])) if "log_dt" in groups else set()
    a = [n if n in shared else f"a_{n}" for n in feature_names(params, groups)]
    return a + [f"b_{n}" for n in feature_names(params, [g for g in groups if g != "log_dt"])]


def book_columns(names: list[str], levels: int) -> list[int]:
    """Where the ``book`` group's 4L columns (LOBSTER's order: ask distance, ask size, bid distance, bid size per
    level) stand in the feature list ``names``: DeepLOB's input. A ValueError when the list lacks them."""
    wanted = CATALOGUE["book"].columns(FeatureParams(levels=levels))
    if missing := [c for c in wanted if c not in names]:
        raise ValueError(
            f"model=deeplob reads the order book, and the features lack {missing[:4]}: add the 'book' feature "
            "group (features=with_book)"
        )
    return [names.index(c) for c in wanted]


def warmup(groups: list[str] | None = None) -> int:
    """Events at the start of each day for which some feature is null by definition."""
    return max(CATALOGUE[g].warmup for g in (groups or DEFAULT_GROUPS))


def define(feature: Feature, B, params: FeatureParams) -> dict:
    """A feature's definitions on backend ``B``, refusing one that reads the previous event (``B.prev``) while
    declaring no warm-up: its first value of each day would silently read the previous day. Every backend
    records ``used_prev``."""
    B.used_prev = False
    defined = feature.define(B, params)
    if B.used_prev and not feature.warmup:
        raise ValueError(f"feature {feature.name!r} reads the previous event but declares no warm-up")
    return defined


def compute_features(
    events: pl.DataFrame | pl.LazyFrame,
    params: FeatureParams,
    groups: list[str] | None = None,
    keep: tuple[str, ...] = ("symbol", "date", "time"),
) -> pl.DataFrame:
    """Batch form: all features of ``groups`` (default: the whole catalogue) for every event, as Float32
    columns beside ``keep``. ``events`` must be sorted by symbol, date, time (as the readers return it)."""
    unknown = [g for g in (groups or []) if g not in CATALOGUE]
    if unknown:
        raise KeyError(f"unknown feature groups {unknown}; known: {list(CATALOGUE)}")
    B = PolarsBackend()
    exprs = []
    groups = groups or DEFAULT_GROUPS
    for g in groups:
        feature = CATALOGUE[g]
        for name, e in define(feature, B, params).items():
            e = e if isinstance(e, pl.Expr) else pl.lit(e)
            if feature.warmup:
                e = B.mask_warmup(e, feature.warmup)
            exprs.append(e.cast(pl.Float64).cast(pl.Float32).alias(name))  # computed in float64, stored as float32
    lf = events.lazy() if isinstance(events, pl.DataFrame) else events
    lf = lf.with_columns(PolarsBackend.first_of_day().alias(PolarsBackend.FIRST))
    if warmup(groups) > 1:
        lf = lf.with_columns(pl.int_range(pl.len()).over(["symbol", "date"]).alias(PolarsBackend.POS))
    return lf.select(*[pl.col(c) for c in keep], *exprs).collect()
