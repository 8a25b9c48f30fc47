"""Regression targets: the quantities the one-pass factors predict, defined once, for the factors
(:mod:`lobnet.online.factors`, whose responses are these functions) and for the models trained on them.

Horizons are in **seconds on the event clock**: the value a quantity has at the first event at or after t + H of
the same symbol-day (:func:`event_at_or_after`), or in **events**: k events later (:func:`events_ahead`). A target
never reaches past the end of its day: where the day ends first it is NaN, and those samples are dropped.

* **liquidity** (:func:`liquidity_target`): x = best bid size + best ask size; the target is x at the first event
  at or after t + H.
* **volatility** (:func:`realised_volatility`): the realised volatility over the next H seconds on a grid of
  ``grid_s`` seconds anchored at the event: the root mean square of m(t + j g) - m(t + (j - 1) g), j = 1 .. H / g,
  where m(tau) is the mid (in ticks) as it stands at tau (the last event at or before it). At the points of a
  grid that starts at the event, this is the volatility factor's response: the changes s + 1 .. s + k.
* **pairs** (:func:`pairs_target`): the PnL from t to the first event at or after t + H of long 1 A, short beta B,
  with beta the causal EW-regression slope of A's mid on B's at t (so the factor and a model predict the same
  quantity), on the merged table of both symbols' quote updates (:func:`merge_pair`), each row carrying both
  symbols' latest state.

Every target reads the future only to build itself; nothing here is a feature.

:class:`TargetConfig` (``labels=liquidity | volatility | pairs``) names one of them for a model to be trained on,
and :func:`target_table` computes it on the rows a model samples: every event of a book (liquidity, volatility),
or every row of the merged two-symbol table (pairs), each with the row its target reads last (``target_end``, for
purging by the time horizon).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from lobnet.card import TARGET_LOSSES
from lobnet.data.schema import first_of_day

NS = 1_000_000_000
QUOTE = ("bid_px_1", "bid_sz_1", "ask_px_1", "ask_sz_1")  # the Level-I state a merged row carries per symbol


def day_index(symbol_day: np.ndarray) -> list[np.ndarray]:
    """The row indices of each run of equal values of ``symbol_day`` (a day id per row, days contiguous)."""
    if len(symbol_day) == 0:
        return []
    cuts = np.flatnonzero(np.diff(symbol_day)) + 1
    return np.split(np.arange(len(symbol_day)), cuts)


def event_at_or_after(times: np.ndarray, days: list[np.ndarray], horizon_ns: int) -> np.ndarray:
    """For every row, the row of the first event at or after its time + ``horizon_ns`` in its own day; -1 where
    the day has ended by then."""
    out = np.full(len(times), -1, dtype=np.int64)
    for idx in days:
        t = times[idx]
        j = np.searchsorted(t, t + horizon_ns, side="left")
        ok = j < len(idx)
        out[idx[ok]] = idx[j[ok]]
    return out


def events_ahead(days: list[np.ndarray], k: int) -> np.ndarray:
    """For every row, the row k events later in its own day; -1 where the day has ended by then."""
    n = sum(len(idx) for idx in days)
    out = np.full(n, -1, dtype=np.int64)
    for idx in days:
        if len(idx) > k:
            out[idx[:-k] if k else idx] = idx[k:]
    return out


def horizon_rows(times: np.ndarray, days: list[np.ndarray], horizon_s: float | None, horizon_events: int | None):
    """The target row of every row: ``horizon_s`` seconds later on the event clock, or ``horizon_events`` later
    (exactly one of them is set); -1 where the day ends first."""
    if (horizon_s is None) == (horizon_events is None):
        raise ValueError("a target's horizon is either in seconds (horizon_s) or in events (horizon_events)")
    if horizon_s is not None:
        if horizon_s <= 0:
            raise ValueError(f"horizon_s must be positive, not {horizon_s}")
        return event_at_or_after(times, days, int(round(horizon_s * NS)))
    if horizon_events < 1:
        raise ValueError(f"horizon_events must be >= 1, not {horizon_events}")
    return events_ahead(days, int(horizon_events))


def at_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """values[rows] as floats, NaN where a row is -1."""
    out = np.full(len(rows), np.nan)
    ok = rows >= 0
    out[ok] = values[rows[ok]]
    return out


def liquidity(frame: pl.DataFrame) -> np.ndarray:
    """Best bid size + best ask size of every row."""
    return (frame["bid_sz_1"] + frame["ask_sz_1"]).to_numpy().astype(float)


def liquidity_target(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The liquidity ``x`` at each row's target row (:func:`horizon_rows`)."""
    return at_rows(x, rows)


def realised_volatility(
    times: np.ndarray,
    mid: np.ndarray,
    days: list[np.ndarray],
    horizon_s: float,
    grid_s: float = 1.0,
    at: np.ndarray | None = None,
    at_days: list[np.ndarray] | None = None,
) -> np.ndarray:
    """The realised volatility over the next ``horizon_s`` seconds of each evaluation time (``at``, default every
    row's time; ``at_days``: their rows per day, the same days as ``days``): the RMS of the mid's changes over
    ``horizon_s / grid_s`` steps of ``grid_s`` seconds from it, the mid as it stands at each step (the last row at
    or before). NaN where t + H is after the day's last row."""
    k = int(round(horizon_s / grid_s))
    if k < 1 or abs(k * grid_s - horizon_s) > 1e-9 * horizon_s:
        raise ValueError(f"horizon_s ({horizon_s}) must be a positive multiple of grid_s ({grid_s})")
    step = int(round(grid_s * NS))
    at = times if at is None else at
    at_days = days if at_days is None else at_days
    out = np.full(len(at), np.nan)
    for idx, where in zip(days, at_days, strict=True):
        t, m = times[idx], mid[idx]
        start = at[where]
        ok = start + k * step <= t[-1]
        s = start[ok]
        prev = m[np.searchsorted(t, s, side="right") - 1]
        acc = np.zeros(len(s))
        for j in range(1, k + 1):
            cur = m[np.searchsorted(t, s + j * step, side="right") - 1]
            acc += (cur - prev) ** 2
            prev = cur
        out[where[ok]] = np.sqrt(acc / k)
    return out


def pairs_target(a: np.ndarray, b: np.ndarray, beta: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The PnL from each row to its target row of long 1 A, short ``beta`` B (beta as estimated at the row)."""
    return (at_rows(a, rows) - a) - beta * (at_rows(b, rows) - b)


def top_of_book_updates(events: pl.DataFrame) -> pl.DataFrame:
    """Events that change the best bid or ask (price or size), per symbol-day: the quote updates."""
    first = first_of_day()
    changed = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in QUOTE])
    return events.filter((first | changed) & pl.col("bid_px_1").is_not_null() & pl.col("ask_px_1").is_not_null())


def merge_pair(events: pl.DataFrame, symbol_a: str, symbol_b: str) -> pl.DataFrame:
    """The two symbols' quote updates merged into one time-ordered table per day: ``date``, ``time``, ``symbol``
    (whose update the row is), and both symbols' latest Level-I state as ``a_bid_px_1`` ... ``b_ask_sz_1``.
    Updates at the same nanosecond collapse into the last (the state after them is what is known then); rows
    before both symbols have quoted are dropped. The pairs factor and its target read this table."""
    syms = set(events["symbol"].unique().to_list())
    if missing := [s for s in (symbol_a, symbol_b) if s not in syms]:
        raise ValueError(f"a pair needs symbols {symbol_a} and {symbol_b}; the data has no {missing} ({sorted(syms)})")
    if symbol_a == symbol_b:
        raise ValueError(f"a pair needs two symbols, not {symbol_a} twice")
    q = top_of_book_updates(events.filter(pl.col("symbol").is_in([symbol_a, symbol_b])))
    state = []
    for side, sym in (("a", symbol_a), ("b", symbol_b)):
        state += [pl.when(pl.col("symbol") == sym).then(pl.col(c)).alias(f"{side}_{c}") for c in QUOTE]
    cols = [f"{side}_{c}" for side in "ab" for c in QUOTE]
    return (
        q.select("date", "time", "symbol", *state)
        .sort(["date", "time"], maintain_order=True)
        .with_columns([pl.col(c).forward_fill().over("date") for c in cols])
        .unique(subset=["date", "time"], keep="last", maintain_order=True)
        .drop_nulls(cols)
    )


TARGET_KINDS = ("liquidity", "volatility", "pairs")


@dataclass(frozen=True)
class TargetConfig:
    """A regression target for the models (``conf/labels/{liquidity,volatility,pairs}.yaml``), beside the
    direction labels of :class:`lobnet.prep.labels.LabelConfig`.

    ``horizon_s`` (seconds on the event clock) or ``horizon_events``; volatility is on a grid of ``grid_s``
    seconds and its horizon must be in seconds. Pairs: ``symbol_a``, ``symbol_b``, and the hedge ratio's EW
    regression (``beta_alpha``, ``ridge``: the pairs factor's estimator, :class:`lobnet.online.factors.PairsFactor`)
    fixed in the config, so that the target is the same for every predictor. ``loss``: ``mse`` (every target), or
    ``qlike`` (volatility: the model predicts a log variance and is scored by its quasi-likelihood)."""

    kind: str = "liquidity"
    horizon_s: float | None = 10.0
    horizon_events: int | None = None
    grid_s: float = 1.0
    symbol_a: str | None = None
    symbol_b: str | None = None
    beta_alpha: float = 0.996
    ridge: float = 1e-4
    loss: str = "mse"

    def __post_init__(self):
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"labels.kind must be one of {', '.join(TARGET_KINDS)}, not {self.kind!r}")
        if self.loss not in TARGET_LOSSES:
            raise ValueError(f"labels.loss must be one of {', '.join(TARGET_LOSSES)}, not {self.loss!r}")
        if self.loss == "qlike" and self.kind != "volatility":
            raise ValueError("labels.loss=qlike is the variance's loss: it needs labels.kind=volatility")
        if (self.horizon_s is None) == (self.horizon_events is None):
            raise ValueError(
                "a target's horizon is either in seconds (labels.horizon_s) or in events "
                "(labels.horizon_events): set one and null the other"
            )
        if self.horizon_s is not None and self.horizon_s <= 0:
            raise ValueError(f"labels.horizon_s must be positive, not {self.horizon_s}")
        if self.horizon_events is not None and int(self.horizon_events) < 1:
            raise ValueError(f"labels.horizon_events must be >= 1, not {self.horizon_events}")
        if self.kind == "volatility" and self.horizon_s is None:
            raise ValueError("labels=volatility is defined on a time grid: its horizon is labels.horizon_s")
        if self.kind == "pairs" and not (self.symbol_a and self.symbol_b):
            raise ValueError("labels=pairs needs labels.symbol_a and labels.symbol_b")
        if not 0 < self.beta_alpha <= 1:
            raise ValueError(f"labels.beta_alpha must be in (0, 1], not {self.beta_alpha}")

    @property
    def task(self) -> str:
        return "regression"

    @property
    def horizons(self) -> tuple[int, ...]:
        """One output: a model trained on a target has one regression head."""
        return (1,)

    @property
    def name(self) -> str:
        """``liquidity_10s``, ``volatility_60s``, ``pairs_AIG_BAC_60s``, ``liquidity_100ev``."""
        h = f"{self.horizon_s:g}s" if self.horizon_s is not None else f"{self.horizon_events}ev"
        pair = f"_{self.symbol_a}_{self.symbol_b}" if self.kind == "pairs" else ""
        return f"{self.kind}{pair}_{h}"

    @property
    def pair_symbol(self) -> str:
        """The merged table's symbol: ``AIG-BAC`` (a path part of the prepared table: no slash)."""
        return f"{self.symbol_a}-{self.symbol_b}"


TARGET = "target"  # the prepared table's target column, and the row it reads last (-1: unknown)
TARGET_END = "target_end"
RAW = "raw."  # the prefix of the Level-I state a prepared regression table carries for the factor baselines


def raw_state(frame: pl.DataFrame) -> pl.DataFrame:
    """The table a factor reads from a prepared regression table: ``symbol``, ``date``, ``time`` and the Level-I
    state under its own names (``bid_px_1`` ..., or ``a_bid_px_1`` ... of a pair), whatever features share them."""
    raw = [c for c in frame.columns if c.startswith(RAW)]
    return frame.select("symbol", "date", "time", *[pl.col(c).alias(c[len(RAW) :]) for c in raw])


def _mid(frame: pl.DataFrame, prefix: str, scale: float) -> np.ndarray:
    return ((frame[f"{prefix}bid_px_1"] + frame[f"{prefix}ask_px_1"]) / (2 * scale)).to_numpy().astype(float)


def target_rows(events: pl.DataFrame, cfg: TargetConfig) -> pl.DataFrame:
    """The rows a model samples for ``cfg``: the events (liquidity, volatility), or, for pairs, the merged table
    (:func:`merge_pair`) as one stream per day whose ``symbol`` is ``A-B`` (``updated``: whose quote changed)."""
    if cfg.kind != "pairs":
        return events
    wide = merge_pair(events, cfg.symbol_a, cfg.symbol_b)
    return wide.rename({"symbol": "updated"}).with_columns(pl.lit(cfg.pair_symbol).alias("symbol"))


def target_table(rows: pl.DataFrame, cfg: TargetConfig, tick: int, price_scale: int) -> pl.DataFrame:
    """``target`` and ``target_end`` for every row of :func:`target_rows` (sorted by symbol, date, time, days
    contiguous): the target (NaN where its day ends first) and the last row it reads (-1 there). Liquidity in
    shares, volatility in ticks per grid step, pairs in dollars."""
    from lobnet.data.schema import day_slices
    from lobnet.online.estimators import ew_regression

    times = rows["time"].to_numpy()
    days = [np.arange(s.start, s.stop) for s in day_slices(rows)]
    if cfg.kind == "volatility":
        rows_h = horizon_rows(times, days, cfg.horizon_s, None)
        quoted = (rows["bid_px_1"].is_not_null() & rows["ask_px_1"].is_not_null()).to_numpy()
        value = np.full(len(times), np.nan)
        for idx in days:
            q = idx[quoted[idx]]  # the mid as it stands: the last quoted row's
            if len(q) == 0:
                continue
            where = idx[idx >= q[0]]  # from the day's first quote on: before it there is no mid
            value[where] = realised_volatility(
                times[q],
                _mid(rows[q], "", tick),
                [np.arange(len(q))],
                cfg.horizon_s,
                cfg.grid_s,
                times[where],
                [np.arange(len(where))],
            )
        end = np.where(np.isfinite(value), rows_h, -1)
    else:
        end = horizon_rows(times, days, cfg.horizon_s, cfg.horizon_events)
        if cfg.kind == "liquidity":
            value = liquidity_target(liquidity(rows), end)
        else:
            a, b = _mid(rows, "a_", price_scale), _mid(rows, "b_", price_scale)
            beta = np.empty(len(a))
            for idx in days:
                beta[idx] = ew_regression(b[idx], a[idx], cfg.beta_alpha, ridge=cfg.ridge)[0][:, 1]
            value = pairs_target(a, b, beta, end)
    end = np.where(np.isfinite(value), end, -1)
    return pl.DataFrame({TARGET: value, TARGET_END: end.astype(np.int64)})


@dataclass(frozen=True)
class TargetScale:
    """The scale a model learns a target in, fitted on the training fold's samples only.

    ``mse``: z = (y - mean) / std, and a prediction is mean + std z. ``qlike`` (volatility): the model's output s is a
    log variance in units of the training fold's mean squared target v (y the realised volatility): the loss reads
    y² / v, and the predicted volatility is sqrt(v exp(s))."""

    loss: str
    mean: float
    std: float

    @classmethod
    def fit(cls, y_train: np.ndarray, loss: str = "mse") -> TargetScale:
        y = np.asarray(y_train, float)
        y = y[np.isfinite(y)]
        if y.size == 0:
            raise ValueError("no known target among the training samples to fit its scale on")
        if loss == "qlike":
            return cls(loss, 0.0, float(np.sqrt(np.mean(y * y))) or 1.0)
        std = float(y.std())
        return cls(loss, float(y.mean()), std if std > 0 else 1.0)

    def apply(self, y: np.ndarray) -> np.ndarray:
        """What the loss reads: z (mse) or y² / v (qlike)."""
        y = np.asarray(y, float)
        return (y / self.std) ** 2 if self.loss == "qlike" else (y - self.mean) / self.std

    def invert(self, out: np.ndarray) -> np.ndarray:
        """A model's output in the target's own units."""
        out = np.asarray(out, float)
        if self.loss == "qlike":
            return self.std * np.exp(0.5 * out)
        return self.mean + self.std * out

    def to_dict(self) -> dict:
        return {"loss": self.loss, "mean": self.mean, "std": self.std}
