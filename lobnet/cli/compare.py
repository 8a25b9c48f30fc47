"""``lobnet-compare``: a table of models x metrics (mean +- std over folds and seeds, the majority floor beside),
from the runs ``lobnet-train`` logged in one MLflow experiment, read through MLflow's API only.

    lobnet-compare mlflow.tracking_uri=sqlite:///mlflow.db mlflow.experiment_name=NAME output_dir=DIR

Writes DIR/comparison.md, DIR/comparison.csv, DIR/metric_by_model.png and DIR/pr_curves.png.
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
from lobnet.evaluation.compare import collect, markdown, plots, summarise
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
        runs = collect(store, cfg.mlflow.experiment_name, metrics, cfg.horizon)
        summary = summarise(runs, metrics)
        (od.tmp / "comparison.md").write_text(markdown(summary, metrics) + "\n")
        summary.write_csv(od.tmp / "comparison.csv")
        plots(summary, runs, store, od.tmp, metrics)
    return summary


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
    as the two can disagree in sign (docs/training.md, "Metrics")."""
    shown = [c for c in CONSOLE_COLUMNS if c[1] in summary.columns]
    t = Table(title="test metrics, mean ± std over folds and seeds")
    for c in ("model", "loss", "h", "n", *(c[0] for c in shown)):
        t.add_column(c, justify="left" if c in ("model", "loss") else "right")
    for r in summary.iter_rows(named=True):
        cells = [
            f"{r[col]:{fmt}} ± {r[f'{col}_std']:{fmt}}" if std else f"{r[col]:{fmt}}" for _, col, fmt, std in shown
        ]
        t.add_row(r["model"], r["loss"], str(r["horizon"]), str(r["folds_x_seeds"]), *cells)
    (console or cli_console()).print(t)


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
