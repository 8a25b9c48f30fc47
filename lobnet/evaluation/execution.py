"""Execution of an order that has to be done anyway: a parent order sliced into child orders by a schedule and
filled against the real book, measured by its implementation shortfall against the arrival mid.

**Schedules** (:func:`schedule`), each a list of (decision row, shares):

* ``immediate``: everything at arrival;
* ``twap``: ``children`` equal slices at equal time intervals over [start, end);
* ``vwap``: slice sizes from an intraday volume profile (:func:`volume_profile`, built from *training* days'
  trades), at the TWAP's times;
* ``forecast``: within each TWAP interval the child is sent at the first event where the forecast says waiting
  no longer pays, else at the interval's last event. For a buy, waiting pays while a down-move is expected, so
  the child goes at the first event whose forecast is not "down" (flat or up); for a sell, not "up".

**Fills** (:func:`fill_child`) use the costs of the backtest (:class:`lobnet.evaluation.backtest.Costs`: latency
and fees). A child decided after event d arrives ``latency_us`` later and meets the book in force then.

* **Marketable** (the default): it walks the opposite side's displayed levels, so a fill never takes more than
  the size shown at a price. What the book does not show is taken at the next events' books, each book's
  liquidity once.
* **Passive first** (``passive=True``): the child rests at its own touch (the bid for a buy) until the interval
  ends. It fills only when trades print on its side. A trade at its price first uses up the queue that was ahead
  of it when it arrived; cancellations ahead are not counted, which is conservative. A trade through its price
  fills it. What is left at the interval's end crosses.

**Shortfall**, per share, against the arrival mid m0 (the mid when the parent order arrives), signed so that a
cost is positive, in basis points of m0. It splits exactly:

    shortfall = timing + spread + impact + fees
    timing = side (mid_fill - m0)      the mid's move between arrival and each fill
    spread = side (touch_fill - mid_fill)    crossing to the touch (negative when resting earned it)
    impact = side (price - touch_fill)       walking beyond the touch
    fees   = fee_per_share + fee_bps of the price

Costs are in source price units internally (dollars x 10000) and reported in bps and dollars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from lobnet.data.schema import PRICE_SCALE, EventType, n_levels
from lobnet.evaluation.backtest import Costs
from lobnet.prep.labels import DOWN, UP

SCHEDULES = ("immediate", "twap", "vwap", "forecast")
PARTS = ("timing", "spread", "impact", "fees")
TRADE_TYPES = (int(EventType.EXECUTE), int(EventType.EXECUTE_HIDDEN))


@dataclass
class Book:
    """One symbol-day's book and trades as arrays (from the events table, :meth:`from_events`): prices in
    source units with NaN for an empty level, sizes in shares."""

    time: np.ndarray  # (n,) ns after midnight
    ask_px: np.ndarray  # (n, L)
    ask_sz: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    trade_px: np.ndarray  # (n,) the trade's price on execution rows, NaN elsewhere
    trade_sz: np.ndarray  # (n,)
    trade_side: np.ndarray  # (n,) the resting side hit: +1 bid (a sell aggressor), -1 ask (a buy), 0 none

    @classmethod
    def from_events(cls, events: pl.DataFrame) -> Book:
        L = n_levels(events)
        if L == 0:
            raise ValueError("execution needs the events table's book columns (ask_px_1, ...)")

        def stack(kind: str) -> np.ndarray:
            cols = [events[f"{kind}_{m}"].cast(pl.Float64).to_numpy() for m in range(1, L + 1)]
            return np.column_stack(cols)

        ask_px, bid_px = stack("ask_px"), stack("bid_px")
        ask_sz, bid_sz = np.nan_to_num(stack("ask_sz")), np.nan_to_num(stack("bid_sz"))
        is_trade = events["type"].is_in(TRADE_TYPES).to_numpy()
        return cls(
            events["time"].to_numpy().astype(np.int64),
            ask_px,
            ask_sz,
            bid_px,
            bid_sz,
            np.where(is_trade, events["price"].cast(pl.Float64).to_numpy(), np.nan),
            np.where(is_trade, events["size"].cast(pl.Float64).to_numpy(), 0.0),
            np.where(is_trade, events["direction"].to_numpy(), 0).astype(np.int64),
        )

    @property
    def n(self) -> int:
        return self.time.size

    def mid(self, i: int) -> float:
        return (self.ask_px[i, 0] + self.bid_px[i, 0]) / 2


@dataclass(frozen=True)
class Parent:
    """A parent order: ``side`` +1 buy or -1 sell, ``quantity`` shares, over the book rows [start, end)."""

    side: int
    quantity: int
    start: int
    end: int


@dataclass
class Fill:
    row: int
    shares: float
    price: float  # source units
    touch: float  # the best opposite price at the fill (own-side touch for a passive fill)
    mid: float


def _arrival_row(book: Book, row: int, latency_us: float) -> int:
    arrival = book.time[row] + np.int64(round(latency_us * 1e3))
    return max(int(np.searchsorted(book.time, arrival, side="right")) - 1, row)


def fill_marketable(book: Book, row: int, side: int, shares: float, costs: Costs, last: int) -> list[Fill]:
    """Cross for ``shares`` from the book the order meets after ``row``, walking the displayed levels, taking what
    is missing at later books, up to row ``last`` (inclusive; then at the last book's deepest price)."""
    fills, left = [], float(shares)
    i = _arrival_row(book, row, costs.latency_us)
    px, sz = (book.ask_px, book.ask_sz) if side > 0 else (book.bid_px, book.bid_sz)
    while left > 1e-9:
        if i > last:
            raise ValueError(f"execution: the book up to row {last} shows too little size to fill {shares:g} shares")
        lv = np.flatnonzero(np.isfinite(px[i]) & (sz[i] > 0))
        if lv.size and np.isfinite(book.ask_px[i, 0]) and np.isfinite(book.bid_px[i, 0]):
            touch, mid = px[i, lv[0]], book.mid(i)
            for j in lv:
                take = min(left, sz[i, j])
                fills.append(Fill(i, take, px[i, j], touch, mid))
                left -= take
                if left <= 1e-9:
                    break
        i += 1
    return fills


def fill_passive(book: Book, row: int, side: int, shares: float, costs: Costs, until: int) -> tuple[list[Fill], float]:
    """Rest ``shares`` at the own-side touch from the order's arrival after ``row`` until row ``until``: fills from
    trades on that side at the price (after the queue ahead) or through it. Returns (fills, shares left)."""
    i0 = _arrival_row(book, row, costs.latency_us)
    if i0 > until:
        return [], float(shares)
    own_px, own_sz = (book.bid_px, book.bid_sz) if side > 0 else (book.ask_px, book.ask_sz)
    price = own_px[i0, 0]
    if not np.isfinite(price):
        return [], float(shares)
    queue = float(own_sz[i0, 0])  # ahead of us when we arrive; cancellations are not counted (conservative)
    hit_side = 1 if side > 0 else -1  # a buy rests on the bid: trades that hit the bid (resting side +1)
    fills, left = [], float(shares)
    for i in range(i0 + 1, until + 1):
        if book.trade_side[i] != hit_side or not np.isfinite(book.trade_px[i]):
            continue
        tp, ts = book.trade_px[i], book.trade_sz[i]
        through = tp < price if side > 0 else tp > price
        if through:
            take = left
        elif tp == price:
            eat = min(queue, ts)
            queue -= eat
            take = min(left, ts - eat)
        else:
            continue
        if take > 0:
            fills.append(Fill(i, take, price, price, book.mid(i)))
            left -= take
        if left <= 1e-9:
            break
    return fills, left


def _interval_rows(book: Book, parent: Parent, children: int) -> list[tuple[int, int]]:
    """[first, last] rows of each of ``children`` equal time intervals of [start, end)."""
    t0, t1 = book.time[parent.start], book.time[parent.end - 1]
    edges = t0 + (t1 - t0) * np.arange(children + 1) / children
    out = []
    for k in range(children):
        a = int(np.searchsorted(book.time, edges[k], side="left"))
        b = int(np.searchsorted(book.time, edges[k + 1], side="left")) - 1 if k < children - 1 else parent.end - 1
        a, b = max(a, parent.start), min(max(b, a), parent.end - 1)
        out.append((a, b))
    return out


def _split(quantity: int, weights: np.ndarray) -> np.ndarray:
    """Whole shares per child in proportion to ``weights``, summing to ``quantity`` (largest remainders)."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum() if w.sum() > 0 else np.full(w.size, 1 / w.size)
    raw = quantity * w
    base = np.floor(raw).astype(int)
    base[np.argsort(-(raw - base))[: quantity - base.sum()]] += 1
    return base


def volume_profile(events: pl.DataFrame, buckets: int = 13, session: tuple[int, int] = (34_200, 57_600)) -> np.ndarray:
    """The share of traded volume in each of ``buckets`` equal parts of the session (seconds after midnight),
    over the given (training) days' trades. Raises when they hold no trades."""
    t = events.filter(pl.col("type").is_in(TRADE_TYPES))
    if t.is_empty():
        raise ValueError("a VWAP profile needs trades in the training days (this source has none)")
    s = t["time"].to_numpy() / 1e9
    b = np.clip(((s - session[0]) / (session[1] - session[0]) * buckets).astype(int), 0, buckets - 1)
    vol = np.bincount(b, weights=t["size"].to_numpy().astype(float), minlength=buckets)
    return vol / vol.sum()


def schedule(
    book: Book,
    parent: Parent,
    kind: str,
    children: int = 10,
    forecast: np.ndarray | None = None,
    profile: np.ndarray | None = None,
    session: tuple[int, int] = (34_200, 57_600),
) -> list[tuple[int, int, int]]:
    """The child orders of ``parent``: (decision row, shares, last row of its interval). ``forecast`` (n,): the
    direction class (0 down, 1 flat, 2 up) forecast after each row, for ``kind="forecast"``; ``profile``: the
    volume shares of the session's buckets, for ``"vwap"``."""
    if kind not in SCHEDULES:
        raise ValueError(f"execution schedule must be one of {SCHEDULES}, not {kind!r}")
    if kind == "immediate":
        return [(parent.start, parent.quantity, parent.end - 1)]
    iv = _interval_rows(book, parent, children)
    if kind == "vwap":
        if profile is None:
            raise ValueError("a vwap schedule needs a volume profile (volume_profile on the training days)")
        mids = np.array([(book.time[a] + book.time[b]) / 2e9 for a, b in iv])
        pos = np.clip(((mids - session[0]) / (session[1] - session[0]) * len(profile)).astype(int), 0, len(profile) - 1)
        sizes = _split(parent.quantity, np.asarray(profile)[pos])
    else:
        sizes = _split(parent.quantity, np.ones(len(iv)))
    out = []
    for (a, b), q in zip(iv, sizes, strict=True):
        if q == 0:
            continue
        row = a
        if kind == "forecast":
            if forecast is None:
                raise ValueError("a forecast-timed schedule needs the forecast per row")
            wait_on = DOWN if parent.side > 0 else UP  # waiting pays while the price is expected to move our way
            go = np.flatnonzero(np.asarray(forecast[a : b + 1]) != wait_on)
            row = a + int(go[0]) if go.size else b
        out.append((row, int(q), b))
    return out


def execute(
    book: Book,
    parent: Parent,
    kind: str,
    costs: Costs | None = None,
    passive: bool = False,
    price_scale: int = PRICE_SCALE,
    **kw,
) -> dict:
    """Run one schedule for one parent order: ``shortfall_bps`` and its split (``timing_bps``, ``spread_bps``,
    ``impact_bps``, ``fees_bps``), the same in dollars, the average price and the fills' count."""
    c = costs or Costs()
    m0 = book.mid(parent.start)
    if not np.isfinite(m0):
        raise ValueError(f"execution: the book has no two-sided quote at the parent order's start (row {parent.start})")
    fills: list[Fill] = []
    last = book.n - 1
    for row, q, until in schedule(book, parent, kind, **kw):
        left = float(q)
        if passive:
            got, left = fill_passive(book, row, parent.side, q, c, until)
            fills += got
            row = until
        if left > 1e-9:
            fills += fill_marketable(book, row, parent.side, left, c, last)
    sh = np.array([f.shares for f in fills])
    px = np.array([f.price for f in fills])
    touch = np.array([f.touch for f in fills])
    mid = np.array([f.mid for f in fills])
    s = parent.side
    per = {
        "timing": s * (mid - m0),
        "spread": s * (touch - mid),
        "impact": s * (px - touch),
        "fees": np.full(sh.size, c.fee_per_share * price_scale) + px * c.fee_bps * 1e-4,
    }
    total_sh = sh.sum()
    out = {"schedule": kind + ("_passive" if passive else ""), "shares": float(total_sh), "fills": len(fills)}
    out["avg_price"] = float((sh * px).sum() / total_sh / price_scale)
    out["arrival_mid"] = float(m0 / price_scale)
    for p in PARTS:
        cost = float((sh * per[p]).sum())
        out[f"{p}_bps"] = cost / total_sh / m0 * 1e4
        out[f"{p}_usd"] = cost / price_scale
    out["shortfall_bps"] = sum(out[f"{p}_bps"] for p in PARTS)
    out["shortfall_usd"] = sum(out[f"{p}_usd"] for p in PARTS)
    out["first_row"], out["last_row"] = int(min(f.row for f in fills)), int(max(f.row for f in fills))
    return out


@dataclass
class ExecutionSettings:
    """The parent orders a streamed day is executed with (``conf/execution/twap.yaml``, lobnet-stream's
    ``execution``)."""

    orders: int = 20  # parent orders, started at equal steps over the scored stretch, buys and sells alternating
    quantity: int = 1000  # shares of each
    events: int = 2000  # events each has to be done in
    children: int = 10  # TWAP slices
    passive: bool = False  # also run each schedule resting at the touch first (a ``<schedule>_passive`` entry)
    buckets: int = 13  # VWAP profile buckets over the session (half hours of 09:30-16:00)


def parents_over(n: int, first: int, s: ExecutionSettings) -> list[Parent]:
    """``s.orders`` parent orders of ``s.events`` events each, started at equal steps over rows [first, n)."""
    last_start = n - s.events
    if last_start < first:
        raise ValueError(f"execution: {n - first} events cannot hold a parent order of {s.events} events")
    starts = np.linspace(first, last_start, s.orders).astype(int)
    return [Parent(1 if i % 2 == 0 else -1, s.quantity, int(a), int(a) + s.events) for i, a in enumerate(starts)]


def evaluate(
    book: Book,
    parents: list[Parent],
    costs: Costs,
    s: ExecutionSettings,
    forecasts: dict[str, np.ndarray] | None = None,
    profile: np.ndarray | None = None,
    regime_labels: dict[str, np.ndarray] | None = None,
) -> dict:
    """Every schedule over every parent order: per schedule the mean, std and quartiles of ``shortfall_bps`` and
    the means of its split; against TWAP the paired mean difference (positive: cheaper than TWAP) with its
    standard error and how often it was cheaper; by regime (each label at the parent's start) the mean shortfall.
    ``forecasts``: an engine name -> direction class per book row, each a ``forecast_<name>`` schedule; without
    ``profile`` there is no ``vwap`` entry. Returns ``{"schedules": {...}, "orders": [...per order and schedule]}``."""
    kinds = [("immediate", {}), ("twap", {})]
    if profile is not None:
        kinds.append(("vwap", {"profile": profile}))
    for name, f in (forecasts or {}).items():
        kinds.append((f"forecast_{name}", {"forecast": f}))
    rows = []
    for i, p in enumerate(parents):
        for label, kw in kinds:
            kind = "forecast" if label.startswith("forecast_") else label
            for passive in (False, True) if s.passive else (False,):
                r = execute(book, p, kind, costs, passive=passive, children=s.children, **kw)
                rows.append(
                    {"order": i, "side": p.side, "start": p.start, **r, "schedule": label + ("_passive" * passive)}
                )
    table = pl.DataFrame(rows)
    out = {}
    twap = table.filter(pl.col("schedule") == "twap").sort("order")["shortfall_bps"].to_numpy()
    for (name,), g in table.group_by("schedule", maintain_order=True):
        g = g.sort("order")
        x = g["shortfall_bps"].to_numpy()
        e = {
            "orders": int(x.size),
            "shortfall_bps": float(x.mean()),
            "shortfall_bps_std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
            "shortfall_bps_quartiles": [float(q) for q in np.quantile(x, [0.25, 0.5, 0.75])],
            **{f"{p}_bps": float(g[f"{p}_bps"].mean()) for p in PARTS},
            "shortfall_usd": float(g["shortfall_usd"].sum()),
        }
        d = twap - x
        e["saving_vs_twap_bps"] = float(d.mean())
        e["saving_vs_twap_se_bps"] = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0
        e["cheaper_than_twap"] = float((d > 0).mean())
        if regime_labels:
            starts = g["start"].to_numpy()
            e["by_regime"] = {
                kind: {str(v): float(x[lab[starts] == v].mean()) for v in np.unique(lab[starts])}
                for kind, lab in regime_labels.items()
            }
        out[name] = e
    return {"schedules": out, "orders": table.to_dicts()}
