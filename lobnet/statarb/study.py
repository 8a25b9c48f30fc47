"""The whole stat-arb study on daily bars, as ``lobnet-statarb`` runs it: a strict out-of-sample **holdout** (the
last ``holdout_years``, or from ``holdout_start``) is kept apart from every choice; before it lies the research
period.

* **Screen** (``screen.csv``): every pair of the universe on the ``formation`` days just before the holdout, with
  both corrections; the kept pairs are then traded, unchanged, over the whole holdout (``holdout_pairs.csv``),
  and their book's Sharpe ratio and hit rate by year since formation show whether the relationships decay.
* **Walk-forward**: formation / trading windows rolled over the whole span; windows whose trading starts in the
  holdout are reported apart.
* **PCA residuals** and **momentum** (time-series and cross-sectional) over the span, research and holdout apart.

Every threshold a strategy uses is chosen on its formation period (pairs) or fixed in the config beforehand (the
published defaults of Avellaneda & Lee and of time-series momentum); none is chosen on the holdout.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from lobnet.data.bars import back_adjust, bar_jumps, close_panel
from lobnet.statarb import decay, factors, momentum, pairs


@dataclass
class StudySettings:
    pairs: pairs.PairSettings = field(default_factory=pairs.PairSettings)
    pca: factors.PCASettings = field(default_factory=factors.PCASettings)
    momentum: momentum.MomentumSettings = field(default_factory=momentum.MomentumSettings)
    formation: int = 504  # days of a formation period (two years)
    trading: int = 126  # days of a walk-forward trading period (half a year)
    holdout_years: float = 3.0  # the last years, kept apart from every choice
    holdout_start: str | None = None  # or an explicit first holdout date (YYYY-MM-DD)
    rolling_window: int = 252  # days of the rolling Sharpe ratio
    # daily moves beyond this (in log terms, ln(1 + x)) are removed as data events (unadjusted splits, ticker
    # reuse; lobnet.data.bars.back_adjust) and listed; null keeps every move
    max_daily_move: float | None = 0.35


@dataclass
class StudyResult:
    holdout_start: dt.date
    screen: pl.DataFrame
    holdout_pairs: pl.DataFrame
    returns: pl.DataFrame  # date, strategy, ret, period (research | holdout)
    windows: pl.DataFrame
    decay: pl.DataFrame  # strategy, year since formation, sharpe, hit_rate, ...
    rolling: pl.DataFrame  # strategy, date, sharpe, low, high
    summary: dict
    spreads: dict[str, pl.DataFrame]  # kept pair -> date, z over the holdout, with its thresholds
    jumps: pl.DataFrame  # the daily moves removed before anything was computed (lobnet.data.bars.bar_jumps)


def _holdout_start(dates: pl.Series, cfg: StudySettings) -> dt.date:
    if cfg.holdout_start:
        return dt.date.fromisoformat(str(cfg.holdout_start))
    last = dates.max()
    return last - dt.timedelta(days=round(365.25 * cfg.holdout_years))


def log_panel(bars: pl.DataFrame) -> pl.DataFrame:
    """Log closes, ``date`` then a column per symbol, null where a symbol has no bar (each pair is tested on the
    days both legs traded)."""
    wide = bars.pivot(on="symbol", index="date", values="close", aggregate_function="last").sort("date")
    return wide.with_columns(pl.exclude("date").log())


def run_study(universe: pl.DataFrame, cross_asset: pl.DataFrame, cfg: StudySettings) -> StudyResult:
    """``universe``: the daily bars of the pairs and PCA universe; ``cross_asset``: those of the momentum universe
    (equities with FX and gold, on their own calendars)."""
    jumps = pl.DataFrame(schema={"symbol": pl.Utf8, "date": pl.Date})
    if cfg.max_daily_move is not None:
        jumps = bar_jumps(pl.concat([universe, cross_asset]).unique(["symbol", "date", "time"]), cfg.max_daily_move)
        universe, cross_asset = back_adjust(universe, jumps), back_adjust(cross_asset, jumps)
    lp = log_panel(universe)
    h0 = _holdout_start(lp["date"], cfg)
    research = lp.filter(pl.col("date") < h0)
    holdout = lp.filter(pl.col("date") >= h0)
    if research.height < cfg.formation or holdout.height < 2:
        raise ValueError(
            f"the data ({lp['date'].min()}..{lp['date'].max()}) cannot hold a {cfg.formation}-day formation period "
            f"before the holdout starting {h0} and a holdout after it"
        )
    form = research.tail(cfg.formation)
    screen = pairs.screen(form, cfg.pairs)
    rets, held, spreads = [], [], {}
    book = []
    for r in screen.filter(pl.col("selected")).iter_rows(named=True):
        both = form.select(r["a"], r["b"]).drop_nulls()
        la, lb = both[r["a"]].to_numpy(), both[r["b"]].to_numpy()
        fit = pairs.fit_pair(la, lb, r["a"], r["b"], r["beta"], r["intercept"], cfg.pairs)
        hp = holdout.select("date", r["a"], r["b"]).fill_null(strategy="forward").drop_nulls()
        pos, ret = pairs.trade(fit, hp[r["a"]].to_numpy(), hp[r["b"]].to_numpy(), cfg.pairs, (la[-1], lb[-1]))
        book.append(pl.DataFrame({"date": hp["date"], r["pair"]: ret}))
        z = fit.zscore(hp[r["a"]].to_numpy(), hp[r["b"]].to_numpy())
        spreads[r["pair"]] = pl.DataFrame({"date": hp["date"], "z": z, "position": pos}).with_columns(
            entry=pl.lit(fit.entry), exit=pl.lit(fit.exit), stop=pl.lit(fit.stop)
        )
        held.append(
            {"pair": r["pair"], "beta": fit.beta, "half_life": r["half_life"], "entry": fit.entry, "exit": fit.exit,
             "stop": fit.stop, "formation_sharpe": fit.formation_sharpe, **{f"holdout_{k}": v for k, v in
             decay.summary(ret).items()}, "trades": int((np.diff(np.concatenate([[0.0], pos])) != 0).sum())}
        )  # fmt: skip
    formed = form["date"][-1]
    if book:
        joined = book[0]
        for b in book[1:]:
            joined = joined.join(b, on="date", how="full", coalesce=True)
        joined = joined.sort("date").fill_null(0.0)
        static = joined.select("date", pl.mean_horizontal(pl.exclude("date")).alias("ret"))
    else:
        static = holdout.select("date", pl.lit(0.0).alias("ret"))
    rets.append(static.with_columns(strategy=pl.lit("pairs_static")))

    wf = pairs.walk_forward(lp, cfg.pairs, cfg.formation, cfg.trading)
    rets.append(wf.returns.select("date", "ret").with_columns(strategy=pl.lit("pairs_walk_forward")))

    pca_panel = close_panel(universe)
    pr = factors.pca_strategy(pca_panel, cfg.pca)
    rets.append(pr.returns.select("date", "ret").with_columns(strategy=pl.lit("pca_residual")))
    mp = close_panel(cross_asset, how="forward")
    # the cross-asset panel ends with its shortest member (FX here ends years before the equities): its holdout is
    # the same span before its own end, unless a date is given
    h0_mom = _holdout_start(mp["date"], cfg)
    for kind in ("time_series", "cross_section"):
        m = momentum.momentum(mp, cfg.momentum, kind)
        rets.append(m.select("date", "ret").with_columns(strategy=pl.lit(f"momentum_{kind}")))
    start = pl.when(pl.col("strategy").str.starts_with("momentum")).then(pl.lit(h0_mom)).otherwise(pl.lit(h0))
    returns = pl.concat(rets).with_columns(
        period=pl.when(pl.col("date") >= start).then(pl.lit("holdout")).otherwise(pl.lit("research"))
    )

    summary: dict = {
        "holdout_start": str(h0),
        "holdout_start_momentum": str(h0_mom),
        "formation_end": str(formed),
        "universe": sorted(c for c in lp.columns if c != "date"),
        "cross_asset": sorted(c for c in mp.columns if c != "date"),
        "pairs_tested": int(screen["p_value"].is_not_null().sum()),
        "pairs_selected": int(screen["selected"].sum()),
        "raw_p_below_alpha": int((screen["p_value"].fill_null(1.0) < cfg.pairs.alpha).sum()),
        "correction": cfg.pairs.correction,
        "alpha": cfg.pairs.alpha,
        "jumps_removed": jumps.height,
        "strategies": {},
        "pca": {
            "factor_pnl": float(pr.returns["factor_pnl"].sum()),
            "residual_pnl": float(pr.returns["residual_pnl"].sum()),
            "mean_turnover": float(pr.returns["turnover"].mean()),
        },
    }
    dec, roll = [], []
    for (name,), g in returns.group_by("strategy", maintain_order=True):
        g = g.sort("date")
        summary["strategies"][name] = {
            p: decay.summary(g.filter(pl.col("period") == p)["ret"].to_numpy()) for p in ("research", "holdout")
        }
        start = formed if name == "pairs_static" else g["date"][0] - dt.timedelta(days=1)
        dec.append(decay.by_year(g, start).with_columns(strategy=pl.lit(name)))
        roll.append(decay.rolling_sharpe(g, cfg.rolling_window).with_columns(strategy=pl.lit(name)))
    return StudyResult(
        h0,
        screen,
        pl.DataFrame(held) if held else pl.DataFrame(schema={"pair": pl.Utf8}),
        returns,
        wf.windows.with_columns(
            period=pl.when(pl.col("trading_start") >= h0).then(pl.lit("holdout")).otherwise(pl.lit("research"))
        ),
        pl.concat(dec, how="diagonal"),
        pl.concat(roll, how="diagonal"),
        summary,
        spreads,
        jumps,
    )
