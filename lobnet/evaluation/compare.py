"""The comparison of trained models as library code: one row per fold run read back from MLflow (the runs
``lobnet-train`` logged in one experiment), mean and std per model, the Markdown table and the figures.
``lobnet-compare`` (:mod:`lobnet.cli.compare`) is its entry point, and prints the console table."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl

from lobnet.prep.labels import CLASS_NAMES, UP
from lobnet.tracking.runs import PARENT, Tag


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
# proxy, and the backtest's net (the trading figure to believe, docs/training.md "Metrics").
PLOTTED = ("macro_f1", "net_sharpe", "bt_net")


def plots(summary: pl.DataFrame, runs: pl.DataFrame, tracking_uri: str, out: Path, metrics: list[str]) -> list[str]:
    import mlflow

    from lobnet.evaluation.plots import pyplot

    plt = pyplot()

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
        c = curves.get(str(r["horizon"]), {}).get(CLASS_NAMES[UP])
        if c:
            ax.plot(c["recall"], c["precision"], label=f"{r['model']} ({r['loss']}), fold {first['fold']}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"class '{CLASS_NAMES[UP]}', first fold of each model")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=110)
    plt.close(fig)
    return ["metric_by_model.png", "pr_curves.png"]
