"""Momentum across asset classes: time-series (each asset long or short by the sign of its own past return, as
in Moskowitz, Ooi and Pedersen 2012) and cross-sectional (long the best third of the universe, short the worst),
each position scaled to a target volatility by the asset's own recent realised volatility.

Rebalanced every ``rebalance`` days on information up to that day's close: the lookback return skips the last
``skip`` days (the short-term reversal), the volatility is that of the last ``vol_window`` days. Positions are
held until the next rebalance and charged ``cost_bps`` per unit of notional traded; the turnover is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from lobnet.data.bars import panel_returns


@dataclass
class MomentumSettings:
    lookback: int = 252  # days of past return
    skip: int = 21  # most recent days left out of it
    vol_window: int = 63  # days of realised volatility for the scaling
    target_vol: float = 0.10  # annualised, per position
    rebalance: int = 21  # days between rebalances
    cost_bps: float = 2.0  # per unit of notional traded
    max_leverage: float = 3.0  # cap on one position's scaled weight


def momentum(prices: pl.DataFrame, cfg: MomentumSettings, kind: str = "time_series") -> pl.DataFrame:
    """Daily net returns of the ``time_series`` or ``cross_section`` momentum book over a close-price panel
    (``date`` then one column per asset, no nulls): ``date, ret, gross, turnover, gross_leverage``. The book's
    return is the mean of its positions' returns (each position is vol-scaled, so the book is too)."""
    if kind not in ("time_series", "cross_section"):
        raise ValueError(f"momentum kind must be time_series or cross_section, not {kind!r}")
    names, P, R, dates = panel_returns(prices)
    T, N = R.shape
    start = max(cfg.lookback, cfg.vol_window)
    if T <= start + 1:
        raise ValueError(f"{T} days of returns cannot fill the momentum lookback of {start} days")
    w = np.zeros(N)
    rows = []
    for t in range(start, T - 1):
        turn = 0.0
        if (t - start) % cfg.rebalance == 0:
            past = P[t + 1 - cfg.skip] / P[t + 1 - cfg.lookback] - 1  # price index t+1 is return index t's close
            vol = R[t + 1 - cfg.vol_window : t + 1].std(0, ddof=1) * np.sqrt(252)
            scale = np.minimum(cfg.target_vol / np.where(vol > 0, vol, np.inf), cfg.max_leverage)
            if kind == "time_series":
                side = np.sign(past)
            else:
                rank = past.argsort().argsort()
                third = max(1, N // 3)
                side = np.where(rank >= N - third, 1.0, np.where(rank < third, -1.0, 0.0))
            new = side * scale
            turn = float(np.abs(new - w).sum())
            w = new
        gross = float(w @ R[t + 1]) / N
        rows.append(
            {
                "date": dates[t + 1],
                "gross": gross,
                "ret": gross - turn * cfg.cost_bps * 1e-4 / N,
                "turnover": turn / N,
                "gross_leverage": float(np.abs(w).sum()) / N,
            }
        )
    return pl.DataFrame(rows)
