"""The minute-bar direction study's tables and figures (README.md here) from one run of run.sh:
``table.py OUT RESULTS_DIR``.

Per symbol and model, over the test days of every fold and the seeds: accuracy, F1 of each class and their mean
(macro-F1, the two classes' F1 averaged), MCC, the share of up minutes, and the confusion matrix summed over the
folds (averaged over the seeds); the LSTM's training and validation loss at the end of each epoch (seed 0, every
fold; x: the training step), read through MLflow; and lobnet-compare's table copied beside them. Writes
``metrics.csv``, ``confusion.csv``, ``tables.md``, ``loss_curves.png`` and ``comparison.md`` to RESULTS_DIR."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one download per fold run: no bars

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from lobnet.evaluation import predictions  # noqa: E402
from lobnet.evaluation.plots import pyplot  # noqa: E402
from lobnet.tracking.runs import FOLD, PARENT, Tag  # noqa: E402

EXPERIMENT = "minute_direction"
METRICS = ("accuracy", "macro_f1", "mcc", "precision_up", "recall_up", "precision_down", "recall_down")


def fold_runs(client, exp_id: str) -> list[dict]:
    parents = {r.info.run_id: r for r in client.search_runs([exp_id], f"tags.`{Tag.KIND}` = '{PARENT}'")}
    out = []
    for r in client.search_runs([exp_id], f"tags.`{Tag.KIND}` = '{FOLD}'"):
        p = parents[r.data.tags[Tag.PARENT_RUN]]
        out.append(
            {
                "run_id": r.info.run_id,
                "symbol": p.data.tags[Tag.SYMBOLS],
                "model": p.data.tags[Tag.MODEL],
                "seed": int(p.data.params["seed"]),
                "fold": int(r.data.tags[Tag.FOLD]),
                **{m: r.data.metrics.get(f"test/{m}_h1", np.nan) for m in METRICS},
            }
        )
    return out


def confusion(client, runs: list[dict]) -> dict[tuple[str, str], np.ndarray]:
    """The test confusion matrix (rows: true down, up; columns: predicted) summed over folds, mean over seeds."""
    per: dict[tuple[str, str, int], np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in runs:
            path = client.download_artifacts(r["run_id"], predictions.PREDICTIONS, tmp)
            p = predictions.load(Path(path))
            y, pred = p["y"][:, 0].astype(int), p["prob"][:, 0].argmax(-1)
            cm = np.array([[np.sum((y == t) & (pred == q)) for q in (0, 2)] for t in (0, 2)])
            key = (r["symbol"], r["model"], r["seed"])
            per[key] = per.get(key, 0) + cm
    out: dict[tuple[str, str], list] = {}
    for (sym, model, _), cm in per.items():
        out.setdefault((sym, model), []).append(cm)
    return {k: np.mean(v, axis=0) for k, v in out.items()}


def loss_curves(client, runs: list[dict], path: Path) -> None:
    plt = pyplot()
    lstm = [r for r in runs if r["model"] == "lstm" and r["seed"] == 0]
    symbols = sorted({r["symbol"] for r in lstm})
    fig, axes = plt.subplots(1, len(symbols), figsize=(3.4 * len(symbols), 3.0), squeeze=False)
    for ax, sym in zip(axes[0], symbols, strict=True):
        for r in sorted((r for r in lstm if r["symbol"] == sym), key=lambda r: r["fold"]):
            for key, style in (("train/loss", "-"), ("val/loss", "--")):
                h = sorted(client.get_metric_history(r["run_id"], key), key=lambda m: m.step)
                ax.plot([m.step for m in h], [m.value for m in h], style, label=f"fold {r['fold']} {key[:-5]}")
        ax.axhline(np.log(2), color="grey", lw=0.8)  # the loss of a coin flip
        ax.set_title(f"{sym}: LSTM loss, one point per epoch (seed 0)", fontsize=9)
        ax.set_xlabel("training step (batches)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(out: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    client = mlflow.tracking.MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = fold_runs(client, exp.experiment_id)
    df = pl.DataFrame(runs)
    table = (
        df.group_by("symbol", "model")
        .agg(
            pl.len().alias("fold_runs"),
            *(pl.col(m).mean().alias(m) for m in METRICS),
            pl.col("accuracy").std().alias("accuracy_std"),
            pl.col("macro_f1").std().alias("macro_f1_std"),
        )
        .sort("symbol", "model")
    )
    cms = confusion(client, runs)
    conf = pl.DataFrame(
        [
            {"symbol": s, "model": m, "true_down_pred_down": c[0, 0], "true_down_pred_up": c[0, 1]}
            | {"true_up_pred_down": c[1, 0], "true_up_pred_up": c[1, 1], "up_share": c[1].sum() / c.sum()}
            for (s, m), c in sorted(cms.items())
        ]
    )
    table.write_csv(dest / "metrics.csv")
    conf.write_csv(dest / "confusion.csv")
    loss_curves(client, runs, dest / "loss_curves.png")
    compare = out / "compare" / "comparison.md"
    if compare.exists():
        shutil.copy(compare, dest / "comparison.md")
    lines = ["| symbol | model | fold runs | accuracy | macro-F1 | MCC | precision up | recall up | recall down |"]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in table.iter_rows(named=True):
        acc = f"{r['accuracy']:.3f}" + (f" ± {r['accuracy_std']:.3f}" if r["fold_runs"] > 1 else "")
        f1 = f"{r['macro_f1']:.3f}" + (f" ± {r['macro_f1_std']:.3f}" if r["fold_runs"] > 1 else "")
        lines.append(
            f"| {r['symbol']} | {r['model']} | {r['fold_runs']} | {acc} | {f1} | {r['mcc']:.3f} "
            f"| {r['precision_up']:.3f} | {r['recall_up']:.3f} | {r['recall_down']:.3f} |"
        )
    lines += ["", "| symbol | model | true down: pred down / up | true up: pred down / up | up share |"]
    lines.append("|---|---|---|---|---|")
    for r in conf.iter_rows(named=True):
        lines.append(
            f"| {r['symbol']} | {r['model']} | {r['true_down_pred_down']:.0f} / {r['true_down_pred_up']:.0f} "
            f"| {r['true_up_pred_down']:.0f} / {r['true_up_pred_up']:.0f} | {r['up_share']:.3f} |"
        )
    (dest / "tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
