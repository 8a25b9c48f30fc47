"""``lobnet-compare``: a table of models x metrics (mean +- std over folds and seeds, the majority floor beside)
per data set and horizon, from the runs ``lobnet-train`` logged in one MLflow experiment, read through MLflow's
API only; with baselines among them, every model against the best baseline with intervals and tests corrected
for the number of comparisons and configurations (:mod:`lobnet.evaluation.significance`).

    lobnet-compare mlflow.tracking_uri=sqlite:///mlflow.db mlflow.experiment_name=NAME output_dir=DIR horizon=all

Writes DIR/comparison.md, comparison.csv, snooping.csv, decay.csv and the figures metric_by_model.png,
stability.png, pr_curves.png and decay.png.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import polars as pl
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from lobnet.cli import CONF_DIR, reports_errors
from lobnet.cli import console as cli_console
from lobnet.evaluation.compare import (
    collect,
    collect_regression,
    load_regression,
    markdown,
    markdown_regression,
    plots,
    select,
    summarise,
    summarise_regression,
)
from lobnet.evaluation.significance import SignificanceSettings, load_all, significance
from lobnet.io import OutputDir
from lobnet.tracking.runs import existing_store


def run(cfg: DictConfig) -> pl.DataFrame:
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    metrics = list(cfg.metrics)
    if not metrics:
        raise ValueError("compare: metrics is empty; name at least one test metric (the first orders the table)")
    store = existing_store(cfg.mlflow.tracking_uri)
    db = store.removeprefix("sqlite:///") if store.startswith("sqlite:///") else None
    with OutputDir(cfg.output_dir, "compare", inputs=[db]) as od:
        reg = collect_regression(store, cfg.mlflow.experiment_name)
        runs = collect(store, cfg.mlflow.experiment_name, metrics, cfg.horizon, required=reg.is_empty())
        rsum, rmd = pl.DataFrame(), ""
        if not reg.is_empty():
            import mlflow.tracking

            sig = cfg.significance or {}
            loaded = load_regression(mlflow.tracking.MlflowClient(store), reg["run"].unique().to_list())
            rsum = summarise_regression(reg, loaded, sig.get("reps", 999), sig.get("alpha", 0.05), sig.get("seed", 0))
            rmd = markdown_regression(rsum)
        if runs.is_empty():  # regression runs only
            (od.tmp / "comparison.md").write_text(rmd + "\n")
            rsum.write_csv(od.tmp / "comparison.csv")
            return rsum
        chosen = select(runs)
        summary = summarise(chosen, metrics)
        decay = None
        if cfg.significance is not None:
            import mlflow.tracking

            from lobnet.models import BASELINES

            loaded = load_all(mlflow.tracking.MlflowClient(store), runs["run"].unique().to_list())
            settings = SignificanceSettings(**cfg.significance)
            summary, snooping, decay = significance(summary, runs, loaded, settings, BASELINES)
            snooping.write_csv(od.tmp / "snooping.csv")
            decay.write_csv(od.tmp / "decay.csv")
            md = markdown(summary, metrics) + "\n\n" + snooping_markdown(snooping)
        else:
            md = markdown(summary, metrics)
        (od.tmp / "comparison.md").write_text(md + ("\n\n" + rmd if rmd else "") + "\n")
        both = pl.concat([summary.with_columns(pl.lit("classification").alias("task")), rsum], how="diagonal_relaxed")
        both.write_csv(od.tmp / "comparison.csv")
        plots(summary, chosen, store, od.tmp, metrics, decay)
    return both


def snooping_markdown(snooping: pl.DataFrame) -> str:
    """The data-snooping table: per data set and horizon, the SPA test of the benchmark against every
    configuration tried and the model confidence set."""
    if snooping.is_empty():
        return "No data-snooping test: the comparison holds no baseline, or nothing beside it."
    head = ["data set", "h", "benchmark", "configurations tried", "SPA p (consistent)", "model confidence set"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in snooping.iter_rows(named=True):
        cells = [r["dataset"], str(r["horizon"]), r["benchmark"], str(r["configurations"])]
        cells += [f"{r['spa_p_consistent']:.3f}", f"{r['mcs']} ({r['mcs_configurations']} configurations)"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# The console table's columns: (heading, summary column, format, with its std). comparison.md holds every metric.
CONSOLE_COLUMNS = (
    ("macro-F1", "macro_f1", ".3f", True),
    ("majority F1", "majority_f1", ".3f", False),
    ("accuracy", "accuracy", ".3f", True),
    ("MCC", "mcc", ".3f", False),
    ("net Sharpe/day", "net_sharpe", ".2f", True),
    ("turnover", "turnover", ".3f", False),
    ("backtest net $/fold", "bt_net", ",.2f", True),
)


def print_table(summary: pl.DataFrame, console: Console | None = None) -> None:
    """The headline metrics on the console: those of ``CONSOLE_COLUMNS`` that the comparison holds (``metrics``
    in the config may leave some out). The backtest's net is shown beside the per-sample ``net_sharpe`` proxy,
    as the two can disagree in sign (docs/training.md, "Metrics"). Regression rows get their own table."""
    console = console or cli_console()
    if "task" in summary.columns:
        reg = summary.filter(pl.col("task") == "regression")
        summary = summary.filter(pl.col("task") != "regression")
        if not reg.is_empty():
            print_regression(reg, console)
        if summary.is_empty():
            return
    shown = [c for c in CONSOLE_COLUMNS if c[1] in summary.columns]
    t = Table(title="test metrics, mean ± std over folds and seeds")
    sig = "beats_baseline" in summary.columns
    for c in (
        "data set",
        "model",
        "loss",
        "h",
        "n",
        *(c[0] for c in shown),
        *(("Δ F1 [CI]", "p Holm", "beats"))[: 3 * sig],
    ):
        t.add_column(c, justify="left" if c in ("data set", "model", "loss") else "right")
    for r in summary.iter_rows(named=True):
        cells = [
            f"{r[col]:{fmt}} ± {r[f'{col}_std']:{fmt}}" if std else f"{r[col]:{fmt}}" for _, col, fmt, std in shown
        ]
        if sig:
            if r.get("delta_macro_f1") is None or r["model"] == r.get("benchmark"):
                cells += ["benchmark" if r["model"] == r.get("benchmark") else "–", "", ""]
            else:
                ci = f"{r['delta_macro_f1']:+.3f} [{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}]"
                cells += [ci, f"{r['p_holm']:.3g}", "yes" if r["beats_baseline"] else "no"]
        t.add_row(r["dataset"], r["model"], r["loss"], str(r["horizon"]), str(r["folds_x_seeds"]), *cells)
    console.print(t)


def print_regression(summary: pl.DataFrame, console: Console) -> None:
    """Regression rows: test MSE over the calibrated factor's, R², and the pooled test against the factor."""
    t = Table(title="regression targets: test MSE against the calibrated EW factor, mean ± std over folds and seeds")
    for c in ("data set", "target", "model", "loss", "n", "MSE", "MSE / factor", "R²", "Δ MSE [CI]", "p Holm", "beats"):
        t.add_column(c, justify="left" if c in ("data set", "target", "model", "loss") else "right")
    for r in summary.iter_rows(named=True):
        std = r.get("mse_vs_factor_std")
        ratio = f"{r['mse_vs_factor']:.3f}" + (f" ± {std:.3f}" if std is not None else "")
        r2 = "–" if r.get("r2") is None else f"{r['r2']:.3f}"
        if r.get("delta_mse") is not None:
            tail = [f"{r['delta_mse']:+.3g} [{r['delta_lo']:+.3g}, {r['delta_hi']:+.3g}]", f"{r['p_holm']:.3g}"]
            tail.append("yes" if r["beats_factor"] else "no")
        else:
            tail = ["reference" if r["model"] == "EW factor" else "–", "", ""]
        t.add_row(
            r["dataset"],
            r["target"],
            r["model"],
            r["loss"],
            str(r["folds_x_seeds"]),
            f"{r['mse']:.4g}",
            ratio,
            r2,
            *tail,
        )
    console.print(t)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="compare")
@reports_errors
def _main(cfg: DictConfig) -> None:
    summary = run(cfg)
    print_table(summary)
    print(f"wrote {Path(cfg.output_dir) / 'comparison.md'}, comparison.csv and plots")


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
