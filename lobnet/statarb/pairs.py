"""Pairs: cointegration screening with multiple-testing control, spread trading, and a rolling walk-forward.

Screening runs every pair of a universe through the Engle–Granger test (statsmodels ``coint``, on log prices,
the first symbol of the pair as the dependent leg) and Johansen's trace test (``coint_johansen``, which gives
critical values, not p-values). With N symbols, N (N - 1) / 2 pairs are tested, so at 5 % about one in twenty
unrelated pairs passes a raw test: the Engle–Granger p-values are corrected over the number of pairs tested,
by Bonferroni (family-wise) and Benjamini–Hochberg (false discovery rate) from statsmodels' ``multipletests``,
and that number is always reported. A pair is kept when its corrected p-value is below ``alpha``, Johansen
rejects "no cointegration" at 95 %, and its spread's half-life of mean reversion lies within bounds.

Trading a kept pair uses only what the formation period fixed: the hedge ratio beta and intercept (OLS of log A
on log B), the spread's mean and standard deviation, and the entry / exit / stop z-score thresholds, chosen on
the formation period's own backtest. The trading period that follows is never seen by any of these choices.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from statsmodels.stats.multitest import multipletests
from statsmodels.tsa.stattools import coint
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from lobnet.evaluation import stats

SCREEN_COLUMNS = [
    "pair", "a", "b", "n_obs", "p_value", "p_bonferroni", "p_bh", "johansen_trace", "johansen_crit95",
    "beta", "intercept", "half_life", "selected",
]  # fmt: skip
TRADING_DAYS = 252


@dataclass
class PairSettings:
    """What screening and trading a pair fix (the ``statarb.pairs`` config)."""

    alpha: float = 0.05  # the corrected p-value a pair must be below
    correction: str = "bh"  # bh (false discovery rate) | bonferroni (family-wise): which one selects
    min_half_life: float = 1.0  # days: faster than this is noise or a data error
    max_half_life: float = 60.0  # days: slower than this will not revert within a trading period
    min_obs: int = 250  # common days a pair needs in the formation period
    adf_maxlag: int = 5  # the Engle-Granger residual ADF's lags, chosen by AIC up to this (days)
    entries: list[float] = field(default_factory=lambda: [1.5, 2.0, 2.5])  # |z| that opens a position
    exits: list[float] = field(default_factory=lambda: [0.0, 0.5])  # |z| that closes it
    stops: list[float] = field(default_factory=lambda: [4.0])  # |z| that closes it at a loss
    cost_bps: float = 5.0  # per unit of notional traded, each leg (spread and fees)


def half_life(spread: np.ndarray) -> float:
    """Days for a deviation of the spread to halve: from the AR(1) fit ds_t = c + lam s_(t-1) + e, -ln 2 / ln(1 +
    lam); inf when the spread does not revert (lam >= 0)."""
    s = np.asarray(spread, dtype=float)
    ds, lag = np.diff(s), s[:-1]
    X = np.column_stack([np.ones_like(lag), lag])
    lam = float(np.linalg.lstsq(X, ds, rcond=None)[0][1])
    return float(-np.log(2) / np.log1p(lam)) if -1 < lam < 0 else float("inf")


def hedge(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(beta, intercept) of the OLS fit log a = intercept + beta log b."""
    X = np.column_stack([np.ones_like(b), b])
    c, beta = np.linalg.lstsq(X, a, rcond=None)[0]
    return float(beta), float(c)


def screen(log_prices: pl.DataFrame, settings: PairSettings) -> pl.DataFrame:
    """One row per pair tested (``SCREEN_COLUMNS``), over the formation period's log prices (``date`` then one
    column per symbol; nulls where a symbol did not trade). The corrections run over every pair tested."""
    symbols = [c for c in log_prices.columns if c != "date"]
    rows = []
    for a, b in itertools.combinations(sorted(symbols), 2):
        pair = log_prices.select(a, b).drop_nulls()
        row = {"pair": f"{a}/{b}", "a": a, "b": b, "n_obs": pair.height}
        if pair.height < settings.min_obs:
            rows.append(row)
            continue
        ya, yb = pair[a].to_numpy(), pair[b].to_numpy()
        row["p_value"] = float(coint(ya, yb, trend="c", maxlag=settings.adf_maxlag, autolag="aic")[1])
        jo = coint_johansen(np.column_stack([ya, yb]), 0, 1)
        row["johansen_trace"], row["johansen_crit95"] = float(jo.lr1[0]), float(jo.cvt[0, 1])
        beta, c = hedge(ya, yb)
        row.update(beta=beta, intercept=c, half_life=half_life(ya - beta * yb - c))
        rows.append(row)
    out = pl.DataFrame(rows, schema_overrides={k: pl.Float64 for k in SCREEN_COLUMNS[4:12]}, infer_schema_length=None)
    for k in SCREEN_COLUMNS:
        if k not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(k))
    p = out["p_value"].to_numpy()
    tested = np.isfinite(p)
    p_bon, p_bh = np.full(p.size, np.nan), np.full(p.size, np.nan)
    if tested.any():
        p_bon[tested] = multipletests(p[tested], method="bonferroni")[1]
        p_bh[tested] = multipletests(p[tested], method="fdr_bh")[1]
    chosen = p_bh if settings.correction == "bh" else p_bon
    hl = out["half_life"].to_numpy()
    selected = (
        tested
        & (np.nan_to_num(chosen, nan=1.0) < settings.alpha)
        & (out["johansen_trace"].fill_null(0).to_numpy() > out["johansen_crit95"].fill_null(np.inf).to_numpy())
        & (hl >= settings.min_half_life)
        & (hl <= settings.max_half_life)
    )
    out = out.with_columns(p_bonferroni=pl.Series(p_bon), p_bh=pl.Series(p_bh), selected=pl.Series(selected))
    return out.select(SCREEN_COLUMNS)


def positions(z: np.ndarray, entry: float, exit: float, stop: float) -> np.ndarray:
    """The spread position (+1 long A / short beta B, -1 the reverse, 0 flat) held after each day's z-score: open
    at |z| > entry against the deviation, close when |z| falls to ``exit`` or beyond ``stop``; after a stop, no
    new position on the same side until z has come back inside ``entry``."""
    pos = np.zeros(len(z))
    p, blocked = 0.0, 0.0
    for t, v in enumerate(z):
        if not np.isfinite(v):
            p = 0.0
        elif p == 0:
            if blocked and abs(v) < entry:
                blocked = 0.0
            side = -np.sign(v) if abs(v) > entry else 0.0
            if side and side != blocked:
                p = side
        elif abs(v) > stop:
            p, blocked = 0.0, p
        elif (p > 0 and v >= -exit) or (p < 0 and v <= exit):
            p = 0.0
        pos[t] = p
    return pos


def pair_returns(pos: np.ndarray, ra: np.ndarray, rb: np.ndarray, beta: float, cost_bps: float) -> np.ndarray:
    """Daily net returns per unit of gross notional: the position held from yesterday's close earns ra - beta rb
    on (1 + |beta|) of notional; changing it costs ``cost_bps`` on each leg's notional traded."""
    held = np.concatenate([[0.0], pos[:-1]])
    gross = held * (ra - beta * rb)
    cost = np.abs(np.diff(np.concatenate([[0.0], pos]))) * (1 + abs(beta)) * cost_bps * 1e-4
    return (gross - cost) / (1 + abs(beta))


def sharpe(r: np.ndarray) -> float:
    """Annualised Sharpe ratio of daily returns (:func:`lobnet.evaluation.stats.sharpe` per day, x sqrt(252))."""
    return stats.sharpe(np.asarray(r, dtype=float)) * float(np.sqrt(TRADING_DAYS))


@dataclass
class FittedPair:
    """What the formation period fixed for one pair."""

    a: str
    b: str
    beta: float
    intercept: float
    mean: float
    std: float
    entry: float
    exit: float
    stop: float
    formation_sharpe: float

    def zscore(self, la: np.ndarray, lb: np.ndarray) -> np.ndarray:
        return (la - self.beta * lb - self.intercept - self.mean) / self.std


def fit_pair(la: np.ndarray, lb: np.ndarray, a: str, b: str, beta: float, c: float, settings: PairSettings):
    """Thresholds for one pair chosen on its formation period (log prices ``la``, ``lb``): the grid point with the
    best in-sample net Sharpe ratio."""
    s = la - beta * lb - c
    pair = FittedPair(a, b, beta, c, float(s.mean()), float(s.std(ddof=1)), 0, 0, 0, -np.inf)
    z = pair.zscore(la, lb)
    ra, rb = np.diff(np.exp(la)) / np.exp(la[:-1]), np.diff(np.exp(lb)) / np.exp(lb[:-1])
    for entry, ex, stop in itertools.product(settings.entries, settings.exits, settings.stops):
        if not ex < entry < stop:
            continue
        pos = positions(z[1:], entry, ex, stop)
        sr = sharpe(pair_returns(pos, ra, rb, beta, settings.cost_bps))
        if sr > pair.formation_sharpe:
            pair.entry, pair.exit, pair.stop, pair.formation_sharpe = entry, ex, stop, sr
    return pair


def trade(pair: FittedPair, la: np.ndarray, lb: np.ndarray, settings: PairSettings, warm: tuple[float, float]):
    """(positions, net returns) of a fitted pair over a trading period's log prices; ``warm``: the log prices on
    the formation period's last day, so that the first day's return is defined."""
    la0, lb0 = np.concatenate([[warm[0]], la]), np.concatenate([[warm[1]], lb])
    pos = positions(pair.zscore(la0, lb0)[1:], pair.entry, pair.exit, pair.stop)
    pa, pb = np.exp(la0), np.exp(lb0)
    ra, rb = np.diff(pa) / pa[:-1], np.diff(pb) / pb[:-1]
    # a position is opened at a day's close and earns from the next day: the last day's position is closed
    pos[-1] = 0.0
    return pos, pair_returns(pos, ra, rb, pair.beta, settings.cost_bps)


@dataclass
class WalkForward:
    """The rolling formation / trading walk-forward over a panel of log prices."""

    windows: pl.DataFrame  # one row per window: formation and trading dates, pairs tested and kept
    returns: pl.DataFrame  # date, ret (the equal-weight book of the window's kept pairs), n_pairs, window
    screens: list[pl.DataFrame]  # each window's screen, with its window index
    trades: pl.DataFrame  # one row per (window, pair): thresholds, formation and trading Sharpe


def walk_forward(
    log_prices: pl.DataFrame, settings: PairSettings, formation: int = 504, trading: int = 126
) -> WalkForward:
    """Screen on ``formation`` days, trade the kept pairs on the next ``trading`` days, step by ``trading``. Each
    window's choices see only its own formation period."""
    dates = log_prices["date"]
    windows, rets, screens, trades = [], [], [], []
    for w, start in enumerate(range(0, log_prices.height - formation - 1, trading)):
        form = log_prices.slice(start, formation)
        test = log_prices.slice(start + formation, trading)
        if test.height == 0:
            break
        sc = screen(form, settings)
        screens.append(sc.with_columns(pl.lit(w).alias("window")))
        book = []
        for r in sc.filter(pl.col("selected")).iter_rows(named=True):
            both = form.select(r["a"], r["b"]).drop_nulls()
            pair = fit_pair(both[r["a"]].to_numpy(), both[r["b"]].to_numpy(), r["a"], r["b"], r["beta"],
                            r["intercept"], settings)  # fmt: skip
            tp = test.select(r["a"], r["b"])
            la, lb = tp[r["a"]].to_numpy(), tp[r["b"]].to_numpy()
            if not (np.isfinite(la).all() and np.isfinite(lb).all()):
                continue  # a leg stopped trading within the period: not tradeable as a pair
            _, ret = trade(pair, la, lb, settings, (both[r["a"]][-1], both[r["b"]][-1]))
            book.append(ret)
            trades.append(
                {
                    "window": w, "pair": r["pair"], "beta": pair.beta, "entry": pair.entry, "exit": pair.exit,
                    "stop": pair.stop, "formation_sharpe": pair.formation_sharpe, "trading_sharpe": sharpe(ret),
                    "trading_return": float(np.sum(ret)),
                }
            )  # fmt: skip
        ret = np.mean(book, axis=0) if book else np.zeros(test.height)
        rets.append(pl.DataFrame({"date": test["date"], "ret": ret, "n_pairs": len(book), "window": w}))
        windows.append(
            {
                "window": w, "formation_start": dates[start], "formation_end": dates[start + formation - 1],
                "trading_start": test["date"][0], "trading_end": test["date"][-1],
                "pairs_tested": int(sc["p_value"].is_not_null().sum()), "pairs_selected": int(sc["selected"].sum()),
                "pairs_traded": len(book),
            }
        )  # fmt: skip
    return WalkForward(
        pl.DataFrame(windows),
        pl.concat(rets) if rets else pl.DataFrame(schema={"date": pl.Date, "ret": pl.Float64}),
        screens,
        pl.DataFrame(trades),
    )
