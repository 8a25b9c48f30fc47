"""Does a strategy's edge decay? Its Sharpe ratio and hit rate by year since formation, and a rolling Sharpe
ratio with a confidence band, so that a signal being arbitraged away shows as a downward drift out of the band.

The band is Lo's (2002) standard error of an estimated Sharpe ratio for i.i.d. returns, sqrt((1 + SR^2 / 2) / n)
per period, annualised: wide on one year of daily data (about +-2 at 95 %), which is the point.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from scipy.stats import norm

from lobnet.statarb.pairs import TRADING_DAYS, sharpe


def by_year(returns: pl.DataFrame, formed: dt.date) -> pl.DataFrame:
    """Per whole year since ``formed`` (the end of formation): ``year`` (1 = the first year after it), ``start``,
    ``days``, ``sharpe`` (annualised), ``hit_rate`` (share of days with a non-zero return that were positive),
    ``mean_daily`` and ``total``. ``returns``: ``date, ret``."""
    r = returns.filter(pl.col("date") > formed).with_columns(
        (((pl.col("date") - pl.lit(formed)).dt.total_days() - 1) // 365 + 1).alias("year")
    )
    out = []
    for (year,), g in r.group_by("year", maintain_order=True):
        x = g["ret"].to_numpy()
        active = x[x != 0]
        out.append(
            {
                "year": int(year),
                "start": g["date"][0],
                "days": len(x),
                "sharpe": sharpe(x),
                "hit_rate": float((active > 0).mean()) if active.size else float("nan"),
                "mean_daily": float(x.mean()),
                "total": float(x.sum()),
            }
        )
    return pl.DataFrame(out).sort("year") if out else pl.DataFrame(schema={"year": pl.Int64, "sharpe": pl.Float64})


def rolling_sharpe(returns: pl.DataFrame, window: int = TRADING_DAYS, level: float = 0.95) -> pl.DataFrame:
    """``date, sharpe, low, high``: the annualised Sharpe ratio of each trailing ``window`` days and its band."""
    x = returns["ret"].to_numpy().astype(float)
    if len(x) < window:
        return pl.DataFrame(schema={"date": pl.Date, "sharpe": pl.Float64, "low": pl.Float64, "high": pl.Float64})
    c = np.lib.stride_tricks.sliding_window_view(x, window)
    m, s = c.mean(1), c.std(1, ddof=1)
    sr_d = np.divide(m, s, out=np.zeros_like(m), where=s > 0)
    se = np.sqrt((1 + sr_d**2 / 2) / window)
    z, k = norm.ppf(0.5 + level / 2), np.sqrt(TRADING_DAYS)
    return pl.DataFrame(
        {
            "date": returns["date"][window - 1 :],
            "sharpe": sr_d * k,
            "low": (sr_d - z * se) * k,
            "high": (sr_d + z * se) * k,
        }
    )


def summary(ret: np.ndarray) -> dict[str, float]:
    """Annualised return, volatility and Sharpe ratio, the maximum drawdown of the cumulated returns, the days."""
    ret = np.asarray(ret, dtype=float)
    eq = np.cumsum(ret)
    return {
        "ann_return": float(ret.mean() * TRADING_DAYS) if ret.size else float("nan"),
        "ann_vol": float(ret.std(ddof=1) * np.sqrt(TRADING_DAYS)) if ret.size > 1 else float("nan"),
        "sharpe": sharpe(ret) if ret.size > 1 else float("nan"),
        "max_drawdown": float((np.maximum.accumulate(np.maximum(eq, 0)) - eq).max()) if ret.size else float("nan"),
        "days": int(ret.size),
    }
