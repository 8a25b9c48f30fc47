"""The comparison of trained models as library code: one row per fold run read back from MLflow (the runs
``lobnet-train`` logged in one experiment), mean and std per model, the Markdown table and the figures.
``lobnet-compare`` (:mod:`lobnet.cli.compare`) is its entry point, and prints the console table."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from lobnet.prep.labels import CLASS_NAMES, UP
from lobnet.tracking.runs import PARENT, Tag

# parent-run parameters that do not make a configuration: the seed (configurations are compared over seeds) and
# bookkeeping
NOT_CONFIG = ("seed", "git.commit", "data.fingerprint", "mlflow.")


def config_key(params: dict) -> str:
    """The hash of a parent run's parameters without the seed: the runs of one configuration over seeds."""
    import hashlib

    kept = {k: v for k, v in params.items() if not k.startswith(NOT_CONFIG)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:10]


def _horizons(p, horizon) -> list[int]:
    if horizon == "all":
        return [int(x) for x in json.loads(p.data.params.get("labels.horizons", "[]"))]
    return [int(horizon or p.data.tags.get(Tag.PRIMARY_HORIZON, 0))]


def _finished_parents(tracking_uri: str, experiment: str, regression: bool):
    """(parent run, its fold runs) for every finished lobnet-train parent of the experiment, of regression targets
    (tagged with their target) or of direction labels."""
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"no MLflow experiment {experiment!r} at {tracking_uri}")
    parents = client.search_runs(
        [exp.experiment_id], f"tags.`{Tag.KIND}` = '{PARENT}' and attributes.status = 'FINISHED'", max_results=50000
    )
    for p in parents:
        if (Tag.TARGET in p.data.tags) == regression:
            query = f"tags.`{Tag.PARENT_RUN}` = '{p.info.run_id}'"
            yield p, client.search_runs([exp.experiment_id], query, max_results=50000)


def _run_row(parent, child) -> dict:
    """What identifies a fold run in the comparison: data set, model, loss, configuration, parent, run, fold, seed."""
    tags = parent.data.tags
    return {
        "dataset": tags.get(Tag.DATASET, tags.get(Tag.SYMBOLS, "?")),
        "events": tags.get(Tag.EVENTS, tags.get(Tag.DATA, "?")),
        "model": tags.get(Tag.MODEL, "?"),
        "loss": tags.get(Tag.LOSS, "?"),
        "config": config_key(parent.data.params),
        "parent": parent.info.run_id,
        "run": child.info.run_id,
        "fold": int(child.data.tags.get(Tag.FOLD, -1)),
        "seed": parent.data.params.get("seed", "0"),
    }


def collect(
    tracking_uri: str, experiment: str, metrics: list[str], horizon: int | str | None, required: bool = True
) -> pl.DataFrame:
    """One row per fold run and horizon of the direction-label runs: data set, model, loss, configuration, seed,
    parent and fold run, and the test metrics (and the validation ones the configuration is chosen on) at the
    horizon. ``horizon``: a horizon, None for each run's primary horizon, or ``"all"``. Regression runs are
    :func:`collect_regression`'s. Without any: a ValueError when ``required``, else an empty frame."""
    rows = []
    for p, children in _finished_parents(tracking_uri, experiment, regression=False):
        primary = int(p.data.tags.get(Tag.PRIMARY_HORIZON, 0))
        for k in _horizons(p, horizon):
            for c in children:
                m = c.data.metrics
                row = {**_run_row(p, c), "horizon": k}
                for name in [*metrics, "majority_f1", "majority_accuracy"]:
                    row[name] = m.get(f"test/{name}_h{k}", float("nan"))
                row["val_macro_f1"] = m.get(f"val_best/macro_f1_h{k}", float("nan"))
                row["val_primary"] = m.get(f"val_best/macro_f1_h{primary}", float("nan"))
                rows.append(row)
    if not rows:
        if not required:
            return pl.DataFrame()
        raise ValueError(f"no finished lobnet-train runs in experiment {experiment!r}")
    return pl.DataFrame(rows)


def select(runs: pl.DataFrame) -> pl.DataFrame:
    """Each model's configuration chosen on validation: per (data set, model, loss), the configuration with the
    best mean validation macro-F1 at the primary horizon over its folds and seeds, one choice for every horizon
    as one network predicts them all (runs without validation scores, from before they were logged, count as
    one configuration). Adds ``configs``, the number tried, to the kept runs."""
    key = ["events", "model", "loss"]
    per_config = runs.group_by([*key, "config"]).agg(
        pl.col("val_primary").fill_nan(None).mean().fill_null(float("-inf")).alias("_val")
    )
    chosen = (
        per_config.sort(["_val", "config"], descending=[True, False])
        .group_by(key, maintain_order=True)
        .agg(pl.col("config").first().alias("config"), pl.len().alias("configs"))
    )
    return runs.join(chosen, on=[*key, "config"], how="inner")


def summarise(runs: pl.DataFrame, metrics: list[str]) -> pl.DataFrame:
    """Mean and std of every metric per (data set, model, loss, horizon) over the runs :func:`select` kept, best
    first by the first metric within each data set and horizon."""
    cols = [*metrics, "majority_f1", "majority_accuracy", "val_macro_f1", "val_primary"]
    if "configs" not in runs.columns:
        runs = select(runs)
    return (
        runs.group_by(["dataset", "events", "model", "loss", "horizon", "config", "configs"], maintain_order=True)
        .agg(
            pl.len().alias("folds_x_seeds"),
            pl.col("seed").n_unique().alias("seeds"),
            *[pl.col(c).mean().alias(c) for c in cols],
            *[pl.col(c).std(ddof=0).alias(f"{c}_std") for c in cols],
        )
        .sort(["dataset", "horizon", metrics[0]], descending=[False, False, True])
    )


def markdown(summary: pl.DataFrame, metrics: list[str]) -> str:
    """The table, one section per data set: mean ± std over folds and seeds, the majority floor, and (when the
    comparison holds them) the difference to the benchmark with its interval, the adjusted p-values, and a mark on
    the rows that beat it after adjustment."""
    sig = "delta_macro_f1" in summary.columns
    head = ["model", "loss", "h", "n", "configs", *metrics, "majority F1"]
    if sig:
        head += ["Δ macro-F1 vs benchmark [95% CI]", "DM p", "p Holm", "p BH", "deflated Sharpe", "beats"]
    out = []
    for (dataset,), g in summary.group_by(["dataset"], maintain_order=True):
        lines = [f"### {dataset}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in g.iter_rows(named=True):
            cells = [r["model"], r["loss"], str(r["horizon"]), str(r["folds_x_seeds"]), str(r["configs"])]
            cells += [f"{r[m]:.3f} ± {r[m + '_std']:.3f}" for m in metrics]
            cells += [f"{r['majority_f1']:.3f}"]
            if sig:
                if r.get("delta_macro_f1") is None:
                    cells += ["–"] * 6
                elif r["model"] == r["benchmark"]:
                    cells += ["benchmark", "", "", "", _fmt(r["deflated_sharpe"]), ""]
                else:
                    cells += [
                        f"{r['delta_macro_f1']:+.3f} [{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}]",
                        _fmt(r["p_value"]),
                        _fmt(r["p_holm"]),
                        _fmt(r["p_bh"]),
                        _fmt(r["deflated_sharpe"]),
                        "**yes**" if r["beats_baseline"] else "no",
                    ]
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _fmt(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3g}"


# metric_by_model.png's panels, those of them the comparison holds: classification, the per-sample trading
# proxy, and the backtest's net (the trading figure to believe, docs/training.md "Metrics").
PLOTTED = ("macro_f1", "net_sharpe", "bt_net")


def _runs_of(runs: pl.DataFrame, row: dict) -> pl.DataFrame:
    """The fold runs behind a summary row: its data set, model, loss and configuration."""
    return runs.filter(
        (pl.col("events") == row["events"])
        & (pl.col("model") == row["model"])
        & (pl.col("loss") == row["loss"])
        & (pl.col("config") == row["config"])
    )


def plots(
    summary: pl.DataFrame,
    runs: pl.DataFrame,
    tracking_uri: str,
    out: Path,
    metrics: list[str],
    decay: pl.DataFrame | None = None,
) -> list[str]:
    """metric_by_model.png (a row per data set and horizon, mean ± std, the majority floor), stability.png (every
    fold x seed run as a point), pr_curves.png (the first data set and horizon), decay.png (when folds test more
    than one unit)."""
    import mlflow

    from lobnet.evaluation.plots import pyplot

    plt = pyplot()
    groups = list(summary.group_by(["dataset", "horizon"], maintain_order=True))
    panels = [m for m in PLOTTED if m in metrics] or metrics[:1]
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(5.5 * len(panels), 3.6 * len(groups)), squeeze=False)
    for row, ((dataset, horizon), g) in zip(axes, groups, strict=True):
        labels = [f"{m}\n{lo}" for m, lo in zip(g["model"], g["loss"], strict=True)]
        for ax, metric in zip(row, panels, strict=True):
            ax.bar(labels, g[metric].to_numpy(), yerr=g[f"{metric}_std"].to_numpy(), capsize=4)
            if metric == "macro_f1":
                ax.plot(labels, g["majority_f1"].to_numpy(), "k_", ms=30, label="majority floor")
                ax.legend(fontsize=8)
            ax.set_title(f"{dataset}, h={horizon}: test {metric}", fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "metric_by_model.png", dpi=100)
    plt.close(fig)
    files = ["metric_by_model.png", "stability.png", "pr_curves.png"]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 3.8), squeeze=False)
    for ax, ((dataset, horizon), g) in zip(axes[0], groups, strict=True):
        for i, r in enumerate(g.iter_rows(named=True)):
            pts = _runs_of(runs, r).filter(pl.col("horizon") == horizon)
            jitter = np.linspace(-0.2, 0.2, max(len(pts), 1))[: len(pts)]
            ax.scatter(i + jitter, pts[metrics[0]].to_numpy(), s=12)
        ax.set_xticks(range(len(g)), [f"{m}\n{lo}" for m, lo in zip(g["model"], g["loss"], strict=True)], fontsize=7)
        ax.set_title(f"{dataset}, h={horizon}: {metrics[0]} of every fold x seed", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "stability.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    client = mlflow.tracking.MlflowClient(tracking_uri)  # the given store only: no process-wide URI is set
    (dataset, horizon), g = groups[0]
    for r in g.iter_rows(named=True):
        first = _runs_of(runs, r).sort("fold").row(0, named=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(first["run"], "pr_curves.json", tmp)
            curves = json.loads(Path(path).read_text())
        c = curves.get(str(horizon), {}).get(CLASS_NAMES[UP])
        if c:
            ax.plot(c["recall"], c["precision"], label=f"{r['model']} ({r['loss']}), fold {first['fold']}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{dataset}, h={horizon}: class '{CLASS_NAMES[UP]}', first fold of each model", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=110)
    plt.close(fig)
    if decay is not None and not decay.is_empty() and decay["unit"].n_unique() > 1:
        dgroups = list(decay.group_by(["dataset", "horizon"], maintain_order=True))
        fig, axes = plt.subplots(1, len(dgroups), figsize=(5 * len(dgroups), 3.8), squeeze=False)
        for ax, ((dataset, horizon), g) in zip(axes[0], dgroups, strict=True):
            for (model, loss), gm in g.group_by(["model", "loss"], maintain_order=True):
                gm = gm.sort("unit")
                ax.plot(gm["unit"], gm["macro_f1"], "o-", ms=3, label=f"{model} ({loss})")
            ax.set_xlabel("test unit after the end of training (day or block; validation is 1)")
            ax.set_ylabel("macro-F1")
            ax.set_title(f"{dataset}, h={horizon}", fontsize=9)
            ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out / "decay.png", dpi=100)
        plt.close(fig)
        files.append("decay.png")
    return files


# --- regression runs (labels=liquidity | volatility | pairs): against the calibrated factor --------------------

FACTOR_ROW = "EW factor"  # lobnet.train.regression.REFERENCE, as the table names its row


def collect_regression(tracking_uri: str, experiment: str) -> pl.DataFrame:
    """One row per fold run of every finished regression parent (tagged with its target): data set, target,
    model, loss, configuration, seed, fold, the test scores (:data:`lobnet.evaluation.regression.SCORES`), the
    factor's and each naive predictor's, and the validation MSE the configuration is chosen on. Empty when the
    experiment holds none."""
    from lobnet.evaluation.regression import SCORES

    rows = []
    for p, children in _finished_parents(tracking_uri, experiment, regression=True):
        for c in children:
            m = c.data.metrics
            row = {
                **_run_row(p, c),
                "target": p.data.tags[Tag.TARGET],
                "val_mse": m.get("val_best/mse", float("nan")),
                "block": m.get("test/cmp_block", 1.0),
                "factor_mse": m.get("test/factor_mse", float("nan")),
                "factor_r2": m.get("test/factor_r2", float("nan")),
                "factor_corr": m.get("test/factor_corr", float("nan")),
                "factor_mae": m.get("test/factor_mae", float("nan")),
            }
            row |= {s: m.get(f"test/{s}", float("nan")) for s in SCORES}
            for k, v in m.items():  # the naive predictors: test/<name>_mse and test/<name>_mse_vs_factor
                if k.startswith("test/") and k.endswith("_mse_vs_factor") and k != "test/mse_vs_factor":
                    name = k[len("test/") : -len("_mse_vs_factor")]
                    row[f"naive:{name}:mse"] = m.get(f"test/{name}_mse", float("nan"))
                    row[f"naive:{name}:mse_vs_factor"] = v
            rows.append(row)
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def summarise_regression(runs: pl.DataFrame, loaded: dict, reps: int = 999, alpha: float = 0.05, seed: int = 0):
    """Per (data set, target): each model's configuration chosen by its mean validation MSE, its test scores
    (mean ± std over folds and seeds), and its test against the calibrated factor on the pooled test samples of
    its folds (squared errors averaged over seeds; :func:`lobnet.evaluation.regression.against_factor`) with Holm
    and Benjamini–Hochberg adjustment over the models compared on the data set and target; ``beats_factor`` when
    the Holm p-value is below ``alpha`` and the interval of MSE(model) - MSE(factor) lies below 0. The factor and
    the naive predictors are rows of their own (``mse_vs_factor`` of the factor: 1)."""
    from lobnet.evaluation.regression import SCORES, against_factor, pooled_losses
    from lobnet.evaluation.stats import adjust, block_length

    key = ["events", "target", "model", "loss"]
    chosen = (
        runs.group_by([*key, "config"])
        .agg(pl.col("val_mse").fill_nan(None).mean().fill_null(float("inf")).alias("_val"))
        .sort(["_val", "config"])
        .group_by(key, maintain_order=True)
        .agg(pl.col("config").first(), pl.len().alias("configs"))
    )
    kept = runs.join(chosen, on=[*key, "config"], how="inner")
    out = []
    for (dataset, events, target), g in kept.group_by(["dataset", "events", "target"], maintain_order=True):
        family = []
        for (model, loss, config, configs), gm in g.group_by(
            ["model", "loss", "config", "configs"], maintain_order=True
        ):
            row = {"task": "regression", "dataset": dataset, "events": events, "target": target, "model": model}
            row |= {"loss": loss, "config": config, "configs": configs, "folds_x_seeds": gm.height}
            row["seeds"] = gm["seed"].n_unique()
            for s in SCORES:
                row[s], row[f"{s}_std"] = gm[s].mean(), gm[s].std(ddof=0)
            row["factor_mse"] = gm["factor_mse"].mean()
            pooled = pooled_losses(gm.select("run", "fold", "seed").to_dicts(), loaded)
            if pooled is not None:
                ml, fl, _ = pooled
                block = block_length(len(ml), int(gm["block"].max()))
                row |= against_factor(ml, fl, block, reps, seed) | {"pooled_samples": len(ml)}
            family.append(row)
        holm, bh = adjust(np.array([r.get("dm_p", np.nan) for r in family], dtype=float))
        for r, h, b in zip(family, holm, bh, strict=True):
            r["p_holm"], r["p_bh"] = float(h), float(b)
            r["beats_factor"] = bool(np.isfinite(h) and h < alpha and r.get("delta_hi", np.inf) < 0)
        folds = g.unique(subset=["fold"], keep="first", maintain_order=True)  # the factor is fitted per fold
        base = {"task": "regression", "dataset": dataset, "events": events, "target": target, "loss": "–"}
        base |= {"configs": 1, "folds_x_seeds": folds.height, "seeds": 1}
        ref = {
            **base,
            "model": FACTOR_ROW,
            "mse": folds["factor_mse"].mean(),
            "mse_std": folds["factor_mse"].std(ddof=0),
        }
        ref |= {"r2": folds["factor_r2"].mean(), "mae": folds["factor_mae"].mean(), "corr": folds["factor_corr"].mean()}
        ref |= {"mse_vs_factor": 1.0, "factor_mse": ref["mse"]}
        naive = []
        for col in [c for c in folds.columns if c.startswith("naive:") and c.endswith(":mse")]:
            if folds[col].is_null().all():  # another target's naive predictor (the runs of every target share columns)
                continue
            name = col.split(":")[1]
            ratio = folds[f"naive:{name}:mse_vs_factor"]
            naive.append(
                {
                    **base,
                    "model": name.replace("_", " "),
                    "mse": folds[col].mean(),
                    "mse_std": folds[col].std(ddof=0),
                    "mse_vs_factor": ratio.mean(),
                    "mse_vs_factor_std": ratio.std(ddof=0),
                    "factor_mse": ref["mse"],
                }
            )
        out += sorted(family, key=lambda r: r["mse_vs_factor"]) + [ref] + naive
    return pl.DataFrame(out, infer_schema_length=None) if out else pl.DataFrame()


def markdown_regression(summary: pl.DataFrame) -> str:
    """The regression table, one section per data set and target: test MSE relative to the calibrated factor's
    (mean ± std over folds and seeds), R², and the pooled test against the factor."""
    head = ["model", "loss", "n", "configs", "MSE", "MSE / factor's", "R²", "corr"]
    head += ["MSE − factor's [95% CI]", "DM p", "p Holm", "p BH", "beats factor"]
    out = []
    for (dataset, target), g in summary.group_by(["dataset", "target"], maintain_order=True):
        lines = [f"### {dataset}: {target}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in g.iter_rows(named=True):
            std = r.get("mse_vs_factor_std")
            cells = [r["model"], r["loss"], str(r["folds_x_seeds"]), str(r["configs"])]
            cells += [f"{r['mse']:.4g} ± {r['mse_std']:.2g}" if r.get("mse_std") is not None else f"{r['mse']:.4g}"]
            cells += [f"{r['mse_vs_factor']:.3f}" + (f" ± {std:.3f}" if std is not None else "")]
            cells += [_fmt(r.get("r2")), _fmt(r.get("corr"))]
            if r.get("delta_mse") is not None:
                cells += [f"{r['delta_mse']:+.3g} [{r['delta_lo']:+.3g}, {r['delta_hi']:+.3g}]"]
                cells += [_fmt(r["dm_p"]), _fmt(r["p_holm"]), _fmt(r["p_bh"]), "**yes**" if r["beats_factor"] else "no"]
            else:
                cells += ["(the reference)" if r["model"] == FACTOR_ROW else "–", "", "", "", ""]
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def load_regression(client, run_ids: list[str]) -> dict[str, dict]:
    """Each regression fold run's ``regression_predictions.npz`` (:mod:`lobnet.train.regression`), through
    MLflow's API; runs without it are left out."""
    from lobnet.train.regression import PREDICTIONS

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rid in run_ids:
            try:
                path = client.download_artifacts(rid, PREDICTIONS, tmp)
            except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
                continue
            with np.load(path) as z:
                out[rid] = {k: z[k] for k in z.files}
            Path(path).unlink()
    return out
