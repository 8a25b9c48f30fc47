"""``lobnet-compare``: a table of models x metrics (mean +- std over folds and seeds, the majority floor beside),
from the runs ``lobnet-train`` logged in one MLflow experiment, read through MLflow's API only.

    lobnet-compare mlflow.tracking_uri=sqlite:///mlflow.db mlflow.experiment_name=NAME output_dir=DIR

Writes DIR/comparison.md, DIR/comparison.csv, DIR/metric_by_model.png and DIR/pr_curves.png.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import hydra
import polars as pl
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from lobnet.cli import CONF_DIR, reports_errors
from lobnet.cli import console as cli_console
from lobnet.io import OutputDir
from lobnet.tracking.runs import PARENT, Tag, existing_store


def collect(tracking_uri: str, experiment: str, metrics: list[str], horizon: int | None) -> pl.DataFrame:
    """One row per fold run: model, loss, parent run, fold, and the test metrics at the horizon."""
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"no MLflow experiment {experiment!r} at {tracking_uri}")
    parents = client.search_runs(
        [exp.experiment_id], f"tags.`{Tag.KIND}` = '{PARENT}' and attributes.status = 'FINISHED'"
    )
    rows = []
    for p in parents:
        k = horizon or int(p.data.tags.get(Tag.PRIMARY_HORIZON, 0))
        children = client.search_runs([exp.experiment_id], f"tags.`{Tag.PARENT_RUN}` = '{p.info.run_id}'")
        for c in children:
            m = c.data.metrics
            row = {
                "model": p.data.tags.get(Tag.MODEL, "?"),
                "loss": p.data.tags.get(Tag.LOSS, "?"),
                "parent": p.info.run_id,
                "run": c.info.run_id,
                "fold": int(c.data.tags.get(Tag.FOLD, -1)),
                "seed": p.data.params.get("seed", "0"),
                "horizon": k,
            }
            for name in [*metrics, "majority_f1", "majority_accuracy"]:
                row[name] = m.get(f"test/{name}_h{k}", float("nan"))
            rows.append(row)
    if not rows:
        raise ValueError(f"no finished lobnet-train runs in experiment {experiment!r}")
    return pl.DataFrame(rows)


def summarise(runs: pl.DataFrame, metrics: list[str]) -> pl.DataFrame:
    """Mean and std of every metric per (model, loss, horizon), best first by the first metric."""
    cols = [*metrics, "majority_f1", "majority_accuracy"]
    return (
        runs.group_by(["model", "loss", "horizon"], maintain_order=True)
        .agg(
            pl.len().alias("folds_x_seeds"),
            pl.col("seed").n_unique().alias("seeds"),
            *[pl.col(c).mean().alias(c) for c in cols],
            *[pl.col(c).std(ddof=0).alias(f"{c}_std") for c in cols],
        )
        .sort(metrics[0], descending=True)
    )


def markdown(summary: pl.DataFrame, metrics: list[str]) -> str:
    head = ["model", "loss", "h", "n", *metrics, "majority F1", "majority acc."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.iter_rows(named=True):
        cells = [r["model"], r["loss"], str(r["horizon"]), str(r["folds_x_seeds"])]
        cells += [f"{r[m]:.3f} ± {r[m + '_std']:.3f}" for m in metrics]
        cells += [f"{r['majority_f1']:.3f}", f"{r['majority_accuracy']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# metric_by_model.png's panels, those of them the comparison holds: classification, the per-sample trading
# proxy, and the backtest's net (the trading figure to believe, README "Metrics").
PLOTTED = ("macro_f1", "net_sharpe", "bt_net")


def plots(summary: pl.DataFrame, runs: pl.DataFrame, tracking_uri: str, out: Path, metrics: list[str]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    labels = [f"{m}\n{lo}" for m, lo in zip(summary["model"], summary["loss"], strict=True)]
    panels = [m for m in PLOTTED if m in metrics] or metrics[:1]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], panels, strict=True):
        ax.bar(labels, summary[metric].to_numpy(), yerr=summary[f"{metric}_std"].to_numpy(), capsize=4)
        if metric == "macro_f1":
            ax.plot(labels, summary["majority_f1"].to_numpy(), "k_", ms=30, label="majority floor")
            ax.legend(fontsize=8)
        ax.set_title(f"test {metric} (mean ± std over folds and seeds)")
    fig.tight_layout()
    fig.savefig(out / "metric_by_model.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    client = mlflow.tracking.MlflowClient(tracking_uri)  # the given store only: no process-wide URI is set
    for r in summary.iter_rows(named=True):
        first = (
            runs.filter((pl.col("model") == r["model"]) & (pl.col("loss") == r["loss"])).sort("fold").row(0, named=True)
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(first["run"], "pr_curves.json", tmp)
            curves = json.loads(Path(path).read_text())
        c = curves.get(str(r["horizon"]), {}).get("up")
        if c:
            ax.plot(c["recall"], c["precision"], label=f"{r['model']} ({r['loss']}), fold {first['fold']}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("class 'up', first fold of each model")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=110)
    plt.close(fig)
    return ["metric_by_model.png", "pr_curves.png"]


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
    as the two can disagree in sign (README, "Metrics")."""
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
