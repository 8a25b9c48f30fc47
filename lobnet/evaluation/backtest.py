"""A forecast judged net of what trading it costs: signals to positions to PnL after spread, fees and latency.

A target position per event (in units of ``Costs.shares`` shares; from direction classes with
:func:`positions_from_classes`) is traded as follows:

* **decision**: after event t the strategy wants ``target[t]``; when that differs from its previous target it
  sends an order for the difference. Until the book has had both sides quoted, no order is sent;
* **latency**: the order reaches the market ``latency_us`` after event t's timestamp (plus, per event, the
  engine's own compute time when ``delay_ns`` is given) and fills against the book in force then: the book after
  the last event stamped at or before the arrival, never an earlier one than the decision's;
* **spread**: it crosses the spread, as a marketable order does: a buy pays the best ask, a sell gets the best bid
  (if that side is empty at arrival, the first later event that quotes it). Size is assumed available at the touch;
* **fees**: ``fee_per_share`` per share traded plus ``fee_bps`` of the traded notional;
* the position left at the last event is closed there, at the same costs; positions are marked to the mid.

The PnL splits exactly into

    net = gross - latency - spread - fees

``gross`` is the paper PnL: the targets traded at the decision event's mid, instantly and free.
``latency`` is what the mid moved against each trade between decision and fill,
sum of q (mid_fill - mid_decision). ``spread`` is what crossing cost against the mid at the fill,
sum of q (price - mid_fill), half the spread per share. ``fees`` are the fees. All in dollars.

**Regime attribution** (:func:`regimes`): each event carries a label per regime kind (spread in ticks, hour of the
day, volatility tercile; from the feature catalogue's definitions). An event-to-event mark-to-market term of the
paper PnL goes to the label of the event that starts the interval, and a trade's costs to its decision event's
label. So every column of the table sums to the total.

Decisions use only what is known at event t: the target is the caller's forecast at t. Every fill lands at or
after its decision and depends on the book only from the decision on (``tests/test_backtest.py`` changes the
book after a point and checks that nothing before it changes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from lobnet.data.schema import PRICE_SCALE
from lobnet.features.catalogue import FeatureParams
from lobnet.prep.labels import DOWN, FLAT, UP

FLAT_RULES = ("hold", "close")


@dataclass(frozen=True)
class Costs:
    """The trading assumptions (``conf/backtest/default.yaml``: lobnet-train's ``backtest``, lobnet-stream's
    ``stream.backtest``)."""

    shares: int = 100  # shares per unit of position
    fee_per_share: float = 0.003  # dollars per share traded (a US taker fee at the $0.0030 access-fee cap)
    fee_bps: float = 0.0  # plus basis points of the traded notional
    latency_us: float = 100.0  # from an event's timestamp to the order's arrival at the market
    flat: str = "hold"  # what a flat forecast does to the position: hold it, or close it

    def __post_init__(self):
        if self.flat not in FLAT_RULES:
            raise ValueError(f"backtest.flat must be one of {FLAT_RULES}, not {self.flat!r}")
        if self.shares <= 0 or self.latency_us < 0 or self.fee_per_share < 0 or self.fee_bps < 0:
            raise ValueError(f"backtest costs must be non-negative and shares positive: {asdict(self)}")


NAIVE_DRAWS = 200  # conf/backtest's naive_draws when it is left out


def backtest_settings(cfg: dict | None) -> tuple[Costs, int]:
    """``conf/backtest`` (lobnet-train's ``backtest``, lobnet-stream's ``stream.backtest`` less its
    ``charge_compute``): the :class:`Costs` and ``naive_draws``, how many random forecasts with a forecast's
    turnover its backtest is set against (:func:`naive_benchmarks`; 0: none)."""
    d = dict(cfg or {})
    draws = int(d.pop("naive_draws", NAIVE_DRAWS))
    if draws < 0:
        raise ValueError(f"backtest.naive_draws must be 0 or more, not {draws}")
    return Costs(**d), draws


def positions_from_classes(pred: np.ndarray, flat: str = "close") -> np.ndarray:
    """Target positions from direction classes: up +1, down -1; a flat forecast 0 (``close``) or the previous
    target (``hold``, DeepLOB's trading rule); no forecast (-1) keeps the previous target. Starts flat."""
    if flat not in FLAT_RULES:
        raise ValueError(f"flat must be one of {FLAT_RULES}, not {flat!r}")
    pred = np.asarray(pred)
    tgt = np.full(pred.shape, np.nan)
    tgt[pred == UP] = 1.0
    tgt[pred == DOWN] = -1.0
    if flat == "close":
        tgt[pred == FLAT] = 0.0
    return _hold(tgt)


def _next_quoted(valid: np.ndarray) -> np.ndarray:
    """For each row, the first row at or after it where ``valid`` holds (len(valid) where none does)."""
    n = valid.size
    idx = np.where(valid, np.arange(n), n)
    return np.minimum.accumulate(idx[::-1])[::-1]


def backtest(
    time_ns: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    target: np.ndarray,
    costs: Costs | None = None,
    price_scale: int = PRICE_SCALE,
    delay_ns: np.ndarray | None = None,
    regime_labels: dict[str, np.ndarray] | None = None,
) -> dict:
    """Trade ``target`` (n,) against the best bid and ask (n,) in source price units (NaN: that side empty), event
    timestamps ``time_ns`` (n,) non-decreasing. ``delay_ns`` (n,): extra time per decision (an engine's measured
    compute time). Returns the summary (dollars), the per-regime attribution when ``regime_labels`` is given, and
    the equity curve (``_equity``, per event, marked to the mid)."""
    c = costs or Costs()
    t = np.asarray(time_ns, dtype=np.int64)
    bid = np.asarray(bid, dtype=float)
    ask = np.asarray(ask, dtype=float)
    n = t.size
    target = np.asarray(target, dtype=float).copy()
    for name, a in (("bid", bid), ("ask", ask), ("target", target)):
        if a.shape != (n,):
            raise ValueError(f"backtest: {name} has shape {a.shape}, the timestamps {(n,)}")
    if n == 0:
        raise ValueError("backtest: no events")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        raise ValueError(f"backtest: row {back[0] + 1}: time goes backwards ({t[back[0]]} then {t[back[0] + 1]} ns)")
    bad = np.flatnonzero(~np.isfinite(target))
    if bad.size:
        raise ValueError(f"backtest: row {bad[0]}: target position {target[bad[0]]} is not a number")
    two_sided = np.isfinite(bid) & np.isfinite(ask)
    if not two_sided.any():
        raise ValueError("backtest: the book is never quoted on both sides")
    first = int(np.argmax(two_sided))
    mid = np.where(two_sided, (bid + ask) / 2, np.nan)
    last = np.maximum.accumulate(np.where(two_sided, np.arange(n), 0))
    mid = mid[last]  # the last two-sided mid, NaN before the first
    target[:first] = 0.0  # nothing to trade against yet
    target[-1] = 0.0  # the day ends flat

    # orders: where the target changes
    q_all = np.diff(target, prepend=0.0)
    dec = np.flatnonzero(q_all)
    q = q_all[dec]
    arrival = t[dec] + np.int64(round(c.latency_us * 1e3))
    if delay_ns is not None:
        arrival = arrival + np.asarray(delay_ns, dtype=np.int64)[dec]
    fill = np.maximum(np.searchsorted(t, arrival, side="right") - 1, dec)
    buy = q > 0
    fill = np.where(buy, _next_quoted(np.isfinite(ask))[fill], _next_quoted(np.isfinite(bid))[fill])
    if (fill >= n).any():
        j = int(np.argmax(fill >= n))
        side = "ask to buy from" if buy[j] else "bid to sell to"
        raise ValueError(f"backtest: row {dec[j]}: no {side} from the order's arrival to the end of the events")
    price = np.where(buy, ask[fill], bid[fill])

    sh, scale = float(c.shares), float(price_scale)
    dollars = sh / scale  # source price units x units of position -> dollars
    lat = q * (mid[fill] - mid[dec]) * dollars
    spr = q * (price - mid[fill]) * dollars
    fee = np.abs(q) * sh * (c.fee_per_share + price / scale * c.fee_bps * 1e-4)
    dmid = np.diff(mid, prepend=mid[0])
    dmid[: first + 1] = 0.0
    paper = np.concatenate(([0.0], target[:-1])) * dmid * dollars  # mark-to-market of the paper position, per event

    pos = np.cumsum(np.bincount(fill, weights=q, minlength=n))
    cash = np.cumsum(np.bincount(fill, weights=-q * price * dollars - fee, minlength=n))
    equity = cash + pos * np.nan_to_num(mid) * dollars
    summary = {
        "net": float(equity[-1]),
        "gross": float(paper.sum()),
        "latency": float(lat.sum()),
        "spread": float(spr.sum()),
        "fees": float(fee.sum()),
        "trades": int(q.size),
        "shares_traded": int(round(np.abs(q).sum() * sh)),
        "max_drawdown": float((np.maximum.accumulate(np.maximum(equity, 0.0)) - equity).max()),
        "time_in_market": float(np.mean(pos != 0)),
        "mean_abs_position": float(np.mean(np.abs(pos))),  # in units of `shares`: time_in_market for +-1 positions
        "mean_fill_delay_us": float((t[fill] - t[dec]).mean() / 1e3) if q.size else 0.0,
    }
    summary["net_per_share"] = summary["net"] / summary["shares_traded"] if summary["shares_traded"] else 0.0
    summary["costs"] = asdict(c)
    summary["compute_delay_charged"] = delay_ns is not None
    out = {**summary, "_equity": equity}
    if regime_labels:
        out["regimes"] = {}
        for kind, labels in regime_labels.items():
            labels = np.asarray(labels)
            if labels.shape != (n,):
                raise ValueError(f"backtest: regime {kind!r} has shape {labels.shape}, the timestamps {(n,)}")
            start = np.concatenate((labels[:1], labels[:-1]))  # the interval ending at event i starts at i - 1
            rows = {}
            for v in sorted(np.unique(labels).tolist(), key=_label_order):
                at, d = start == v, labels[dec] == v
                g, lc, sc, fc = paper[at].sum(), lat[d].sum(), spr[d].sum(), fee[d].sum()
                rows[str(v)] = {
                    "events": int((labels == v).sum()),
                    "trades": int(d.sum()),
                    "gross": float(g),
                    "latency": float(lc),
                    "spread": float(sc),
                    "fees": float(fc),
                    "net": float(g - lc - sc - fc),
                }
            out["regimes"][kind] = rows
    return out


def _hold(target: np.ndarray) -> np.ndarray:
    """NaN (no forecast at that event) takes the last target before it; 0 before the first."""
    known = ~np.isnan(target)
    last = np.maximum.accumulate(np.where(known, np.arange(target.size), -1))
    return np.where(last >= 0, target[np.maximum(last, 0)], 0.0)


SUMMED = ("net", "gross", "latency", "spread", "fees", "trades", "shares_traded")  # add up across days
BACKTEST_METRICS = (*SUMMED, "max_drawdown")  # the figures logged as metrics (MLflow), besides net_per_share


def backtest_forecasts(
    frame: pl.DataFrame, rows: np.ndarray, targets: np.ndarray, dollars_per_tick: float, costs: Costs | None = None
) -> dict:
    """Trade forecasts made at some events of a prepared feature table (:func:`lobnet.prep.prepared.load_prepared`):
    ``targets[i]`` is the position wanted after event ``rows[i]`` (rows increasing). Each symbol-day is traded from
    its first forecast to its last, holding the position between forecasts, and ends flat at its last forecast.

    The best bid and ask are rebuilt from the catalogue's ``mid`` (dollars) and ``spread`` (ticks) as the table
    stores them (float32: a few thousandths of a cent), so this needs those two feature groups. Returns the
    :func:`backtest` totals over the days (``BACKTEST_METRICS`` and ``net_per_share``); the drawdown is that of the
    days' equity curves laid end to end."""
    rows, targets = _checked_rows(frame, rows, targets)
    return _trade_at_rows(_table_book(frame, dollars_per_tick), rows, targets, costs)


def _checked_rows(frame: pl.DataFrame, rows, targets) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(rows, dtype=np.int64)
    targets = np.asarray(targets, dtype=float)
    if rows.shape != targets.shape:
        raise ValueError(f"backtest_forecasts: {rows.size} rows but {targets.size} targets")
    if rows.size and (np.diff(rows) <= 0).any():
        raise ValueError(f"backtest_forecasts: rows must increase (row {int(np.argmax(np.diff(rows) <= 0)) + 1})")
    if missing := [c for c in ("time", "mid", "spread") if c not in frame.columns]:
        raise ValueError(f"backtest_forecasts: the feature table has no {missing} (add the mid and spread groups)")
    return rows, targets


def _table_book(frame: pl.DataFrame, dollars_per_tick: float) -> tuple:
    """The feature table's timestamps, rebuilt best bid and ask (dollars) and symbol-day slices, read once for
    every path traded on it."""
    from lobnet.data.schema import day_slices

    mid = frame["mid"].cast(pl.Float64).to_numpy()
    half = frame["spread"].cast(pl.Float64).to_numpy() * dollars_per_tick / 2
    return frame["time"].to_numpy(), mid - half, mid + half, day_slices(frame)


def _trade_at_rows(book: tuple, rows: np.ndarray, targets: np.ndarray, costs: Costs | None) -> dict:
    t, bid, ask, days = book
    total = dict.fromkeys(BACKTEST_METRICS, 0.0)
    curves, end = [], 0.0
    for sl in days:
        on = (rows >= sl.start) & (rows < sl.stop)
        if not on.any():
            continue
        r, a = rows[on], rows[on][0]
        want = np.full(r[-1] + 1 - a, np.nan)
        want[r - a] = targets[on]
        b = backtest(t[a : r[-1] + 1], bid[a : r[-1] + 1], ask[a : r[-1] + 1], _hold(want), costs, price_scale=1)
        for k in SUMMED:
            total[k] += b[k]
        curves.append(end + b["_equity"])
        end = curves[-1][-1]
    if curves:
        eq = np.concatenate(curves)
        total["max_drawdown"] = float((np.maximum.accumulate(np.maximum(eq, 0.0)) - eq).max())
    total["net_per_share"] = total["net"] / total["shares_traded"] if total["shares_traded"] else 0.0
    return {k: float(v) for k, v in total.items()}


def _label_order(v) -> tuple:
    """Tercile labels low, mid, high in that order, then the rest as they sort."""
    head = str(v).split(" ")[0]
    return (("low", "mid", "high").index(head) if head in ("low", "mid", "high") else 3, str(v))


def _terciles(x: np.ndarray, unit: str) -> np.ndarray:
    """low / mid / high against the day's terciles of ``x`` (finite values), the bounds in the label."""
    if not np.isfinite(x).any():
        return np.full(x.shape, "none")
    lo, hi = np.quantile(x[np.isfinite(x)], [1 / 3, 2 / 3])
    return np.where(
        x <= lo, f"low (<= {lo:.3g}{unit})", np.where(x <= hi, f"mid (<= {hi:.3g}{unit})", f"high (> {hi:.3g}{unit})")
    )


def regimes(events: pl.DataFrame, params: FeatureParams, vol_alpha: float = 0.99) -> dict[str, np.ndarray]:
    """Regime labels per event of one symbol-day, each describing the book at that event: ``spread`` (the
    catalogue's ``spread`` in ticks against the day's terciles of it; one-sided where a side is empty), ``hour``
    (of the event's timestamp), ``volatility`` (an EW standard deviation of the catalogue's ``mid_logret``,
    forgetting factor ``vol_alpha``, against the day's terciles of it). The terciles are the day's, so these labels
    are for attribution after the fact, never an input to a decision."""
    from lobnet.features import compute_features
    from lobnet.online.estimators import ew_var

    X = compute_features(events, params, ["spread", "mid_logret"], keep=("time",))
    ticks = X["spread"].to_numpy().astype(float)  # NaN where a side is empty
    spread = np.where(np.isnan(ticks), "one-sided", _terciles(ticks, " ticks"))
    hour = np.char.zfill((X["time"].to_numpy() // 3_600_000_000_000).astype(str), 2)
    _, var = ew_var(np.nan_to_num(X["mid_logret"].to_numpy().astype(float)), vol_alpha)
    return {"spread": spread, "hour": hour, "volatility": _terciles(np.sqrt(var), "")}


def random_targets(target: np.ndarray, draws: int, seed: int = 0) -> np.ndarray:
    """(draws, n) random position paths with the turnover of ``target``: each is ``target`` rotated by a random
    offset (at least a tenth of the path from either end, distinct offsets where there are enough), so it holds the
    same positions for the same spells and trades as much (to within the one jump where the ends meet); only when
    it holds them is random against the market. A rotation suits class positions and a Sharpe head's fractional
    ones alike. The distribution a forecast must beat to show that it is more than its trading."""
    target = np.asarray(target, dtype=float)
    n = target.size
    out = np.zeros((draws, n))
    if n < 10 or not np.any(target):
        return out
    rng = np.random.default_rng(seed)
    lo, hi = n // 10, n - n // 10  # offsets in [lo, hi): never a near-copy of the forecast itself
    shifts = rng.choice(np.arange(lo, hi), size=draws, replace=draws > hi - lo)
    for d, s in enumerate(shifts):
        out[d] = np.roll(target, int(s))
    return out


def naive_benchmarks(
    time_ns,
    bid,
    ask,
    target,
    costs: Costs | None = None,
    price_scale: int = PRICE_SCALE,
    draws: int = NAIVE_DRAWS,
    seed=0,
) -> dict:
    """What a forecast's backtest must beat, under the same costs (no engine compute time: a naive rule has none):
    ``flat`` (never trade: 0), ``buy_and_hold`` (long one unit from the first event to the last) and ``random``,
    the net of ``draws`` random position paths with the forecast's turnover (:func:`random_targets`): their mean,
    quartiles and 95th percentile, and ``p_random``, the share of draws whose net is at least the forecast's."""
    c = costs or Costs()
    return _naive(lambda tgt: backtest(time_ns, bid, ask, tgt, c, price_scale)["net"], target, draws, seed)


def naive_forecasts(
    frame: pl.DataFrame,
    rows: np.ndarray,
    targets: np.ndarray,
    dollars_per_tick: float,
    costs: Costs | None = None,
    draws: int = NAIVE_DRAWS,
    seed: int = 0,
) -> dict:
    """:func:`naive_benchmarks` for forecasts at rows of a prepared feature table, traded as
    :func:`backtest_forecasts` trades them (each symbol-day from its first forecast to its last): buy-and-hold
    is long over those same spans, and the random paths rotate the forecasts across the rows."""
    rows, targets = _checked_rows(frame, rows, targets)
    book = _table_book(frame, dollars_per_tick)
    return _naive(lambda tgt: _trade_at_rows(book, rows, tgt, costs)["net"], targets, draws, seed)


def _naive(net_of, target: np.ndarray, draws: int, seed: int) -> dict:
    target = np.asarray(target, dtype=float)
    model = net_of(target)
    hold = net_of(np.ones(target.size))
    nets = np.array([net_of(t) for t in random_targets(target, draws, seed)])
    return {
        "flat": 0.0,
        "buy_and_hold": float(hold),
        "random_mean": float(nets.mean()),
        "random_quartiles": [float(q) for q in np.quantile(nets, [0.25, 0.5, 0.75])],
        "random_p95": float(np.quantile(nets, 0.95)),
        "random_draws": int(draws),
        "forecast_net": float(model),  # the forecast's own net under the same costs, what p_random compares
        "p_random": float((np.sum(nets >= model) + 1) / (draws + 1)),
    }


def summary_table(results: dict[str, dict]) -> str:
    """One row per engine: the Markdown table of its backtest."""
    lines = [
        "| engine | net $ | gross $ | latency $ | spread $ | fees $ | trades | net ¢/share | max drawdown $ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, b in results.items():
        lines.append(
            f"| {name} | {b['net']:,.2f} | {b['gross']:,.2f} | {b['latency']:,.2f} | {b['spread']:,.2f} | "
            f"{b['fees']:,.2f} | {b['trades']:,} | {100 * b['net_per_share']:.3f} | {b['max_drawdown']:,.2f} |"
        )
    return "\n".join(lines) + "\n"
