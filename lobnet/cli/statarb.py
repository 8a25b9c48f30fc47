"""``lobnet-statarb``: the stat-arb study on a folder of daily bars (:mod:`lobnet.statarb.study`), written to
``output_dir`` and logged to MLflow as one run.

    lobnet-statarb data.path=../shared/data/bars/daily output_dir=runs/statarb \
        'momentum.paths=[../shared/data/bars/forex_daily,../shared/data/bars/cfd_daily]'

Writes ``screen.csv`` (one row per pair tested: ``pair, p_value, p_bonferroni, p_bh, half_life, selected`` and
the test details), ``holdout_pairs.csv``, ``windows.csv`` (the walk-forward), ``returns.csv`` (every strategy's
daily net returns, research and holdout), ``decay.csv`` (Sharpe and hit rate by year since formation),
``rolling_sharpe.csv``, ``jumps.csv`` (the data events removed), ``summary.json`` and the figures.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import hydra
import numpy as np
import polars as pl
from omegaconf import DictConfig, OmegaConf

from lobnet.cli import CONF_DIR, reports_errors
from lobnet.cli import console as cli_console
from lobnet.data.bars import read_bars
from lobnet.data.errors import LobDataError
from lobnet.io import OutputDir
from lobnet.statarb.factors import PCASettings
from lobnet.statarb.momentum import MomentumSettings
from lobnet.statarb.pairs import PairSettings
from lobnet.statarb.study import StudyResult, StudySettings, run_study
from lobnet.tracking.runs import experiment_id, failed_on_error

STRATEGY_ORDER = ["pairs_static", "pairs_walk_forward", "pca_residual", "momentum_time_series",
                  "momentum_cross_section"]  # fmt: skip


def settings(cfg: DictConfig) -> StudySettings:
    c = OmegaConf.to_container(cfg, resolve=True)
    mom = {k: v for k, v in (c.get("momentum") or {}).items() if k not in ("paths", "symbols")}
    return StudySettings(
        pairs=PairSettings(**(c.get("pairs") or {})),
        pca=PCASettings(**(c.get("pca") or {})),
        momentum=MomentumSettings(**mom),
        **(c.get("study") or {}),
    )


def load(cfg: DictConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the pairs / PCA universe, the momentum universe) as bars."""
    bars = read_bars(cfg.data.path, price_multiplier=cfg.data.price_multiplier)
    if bars["time"].n_unique() > 1:
        raise LobDataError(cfg.data.path, None, "lobnet-statarb needs daily bars; these are intraday")
    if cfg.data.symbols:
        want = [s.upper() for s in cfg.data.symbols]
        if missing := sorted(set(want) - set(bars["symbol"].unique())):
            raise LobDataError(cfg.data.path, None, f"no bars for {missing}")
        bars = bars.filter(pl.col("symbol").is_in(want))
    extra = [read_bars(p) for p in (cfg.momentum.get("paths") or [])]
    cross = pl.concat([bars, *extra]) if extra else bars
    if cfg.momentum.get("symbols"):
        want = [s.upper() for s in cfg.momentum.symbols]
        if missing := sorted(set(want) - set(cross["symbol"].unique())):
            raise LobDataError(cfg.data.path, None, f"momentum.symbols: no bars for {missing}")
        cross = cross.filter(pl.col("symbol").is_in(want))
    return bars, cross


def figures(r: StudyResult, out: Path) -> list[str]:
    from lobnet.evaluation.plots import pyplot

    plt = pyplot()
    files = []
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name in STRATEGY_ORDER:
        g = r.returns.filter(pl.col("strategy") == name).sort("date")
        if g.height:
            ax.plot(g["date"].to_list(), np.cumsum(g["ret"].to_numpy()), lw=1, label=name)
    ax.axvline(r.holdout_start, color="k", ls="--", lw=1, label=f"holdout from {r.holdout_start}")
    h_mom = dt.date.fromisoformat(r.summary["holdout_start_momentum"])
    if h_mom != r.holdout_start:
        ax.axvline(h_mom, color="C4", ls=":", lw=1, label=f"momentum's holdout from {h_mom}")
    ax.set_ylabel("cumulative net return")
    ax.set_title("strategies, net of costs (research period, then the holdout)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "equity.png", dpi=110)
    plt.close(fig)
    files.append("equity.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in STRATEGY_ORDER:
        d = r.decay.filter(pl.col("strategy") == name)
        if d.height:
            axes[0].plot(d["year"], d["sharpe"], "o-", ms=3, lw=1, label=name)
        ro = r.rolling.filter(pl.col("strategy") == name)
        if ro.height:
            (line,) = axes[1].plot(ro["date"].to_list(), ro["sharpe"], lw=0.8, label=name)
            axes[1].fill_between(ro["date"].to_list(), ro["low"], ro["high"], color=line.get_color(), alpha=0.12)
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].set(xlabel="year since formation (pairs_static: the holdout's)", ylabel="Sharpe ratio (annualised)",
                title="Sharpe by year since formation")  # fmt: skip
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].axvline(r.holdout_start, color="k", ls="--", lw=1)
    axes[1].set(ylabel="rolling 1-year Sharpe, 95% band", title="rolling Sharpe ratio")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "decay.png", dpi=110)
    plt.close(fig)
    files.append("decay.png")

    if r.spreads:
        names = list(r.spreads)[:6]
        fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.2 * len(names)), squeeze=False)
        for ax, name in zip(axes[:, 0], names, strict=True):
            s = r.spreads[name]
            ax.plot(s["date"].to_list(), s["z"], lw=0.8, label="spread z-score")
            for k, style in (("entry", "--"), ("exit", ":"), ("stop", "-.")):
                v = float(s[k][0])
                ax.axhline(v, color="grey", ls=style, lw=0.8)
                ax.axhline(-v, color="grey", ls=style, lw=0.8)
            ax.fill_between(s["date"].to_list(), -4, 4, where=s["position"].to_numpy() != 0, color="C1", alpha=0.1)
            ax.set_title(f"{name}: holdout z-score, bands entry / exit / stop, shaded while a position is held",
                         fontsize=8)  # fmt: skip
        fig.tight_layout()
        fig.savefig(out / "spreads.png", dpi=110)
        plt.close(fig)
        files.append("spreads.png")
    return files


def write(r: StudyResult, out: Path) -> list[str]:
    r.screen.write_csv(out / "screen.csv")
    r.holdout_pairs.write_csv(out / "holdout_pairs.csv")
    r.windows.write_csv(out / "windows.csv")
    r.returns.write_csv(out / "returns.csv")
    r.decay.write_csv(out / "decay.csv")
    r.rolling.write_csv(out / "rolling_sharpe.csv")
    r.jumps.write_csv(out / "jumps.csv")
    (out / "summary.json").write_text(json.dumps(r.summary, indent=2, default=str))
    return figures(r, out)


def log_mlflow(cfg: DictConfig, r: StudyResult, out: Path) -> str:
    import mlflow.tracking

    client = mlflow.tracking.MlflowClient(cfg.mlflow.tracking_uri)
    exp = experiment_id(client, cfg.mlflow.experiment_name, cfg.mlflow.artifact_location)
    run = client.create_run(exp, run_name=f"statarb {Path(cfg.data.path).name}", tags={"lobnet.kind": "statarb"})
    rid = run.info.run_id
    with failed_on_error(client, rid):
        from lobnet.train.loop import flatten

        params = flatten(OmegaConf.to_container(cfg, resolve=True))
        for k, v in params.items():
            if not k.startswith(("output_dir", "hydra")):
                client.log_param(rid, k, str(v)[:500])
        for name, periods in r.summary["strategies"].items():
            for period, m in periods.items():
                for k, v in m.items():
                    if v is not None and np.isfinite(v):
                        client.log_metric(rid, f"{name}/{period}/{k}", float(v))
        for k in ("pairs_tested", "pairs_selected", "raw_p_below_alpha", "jumps_removed"):
            client.log_metric(rid, k, float(r.summary[k]))
        client.log_artifacts(rid, str(out))
        client.set_terminated(rid)
    return rid


def run(cfg: DictConfig) -> StudyResult:
    universe, cross = load(cfg)
    r = run_study(universe, cross, settings(cfg))
    with OutputDir(cfg.output_dir, "statarb", [cfg.data.path, *(cfg.momentum.get("paths") or [])]) as od:
        r.summary["figures"] = write(r, od.tmp)
        (od.tmp / "summary.json").write_text(json.dumps(r.summary, indent=2, default=str))
        if cfg.mlflow.tracking_uri:
            r.summary["mlflow_run"] = log_mlflow(cfg, r, od.tmp)  # the logged copy is the one above
            (od.tmp / "summary.json").write_text(json.dumps(r.summary, indent=2, default=str))
    return r


def print_result(r: StudyResult) -> None:
    from rich.table import Table

    s = r.summary
    t = Table(title=f"stat-arb: holdout from {s['holdout_start']} (momentum {s['holdout_start_momentum']})")
    for col in ("strategy", "period", "days", "ann. return", "ann. vol", "Sharpe", "max drawdown"):
        t.add_column(col, justify="left" if col in ("strategy", "period") else "right")
    for name in STRATEGY_ORDER:
        for period, m in s["strategies"].get(name, {}).items():
            if m["days"]:
                t.add_row(name, period, str(m["days"]), f"{m['ann_return']:+.2%}", f"{m['ann_vol']:.2%}",
                          f"{m['sharpe']:+.2f}", f"{m['max_drawdown']:.2%}")  # fmt: skip
    cli_console().print(t)
    print(
        f"pairs: {s['pairs_tested']} tested, {s['raw_p_below_alpha']} below {s['alpha']} uncorrected, "
        f"{s['pairs_selected']} kept after {s['correction']} correction, the half-life bounds and Johansen; "
        f"{s['jumps_removed']} daily jumps removed as data events (jumps.csv)"
    )


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="statarb")
@reports_errors
def _main(cfg: DictConfig) -> None:
    r = run(cfg)
    print_result(r)
    print(f"wrote {cfg.output_dir}: screen.csv, holdout_pairs.csv, windows.csv, returns.csv, decay.csv, "
          f"{', '.join(r.summary['figures'])}")  # fmt: skip


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
