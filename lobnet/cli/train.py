"""``lobnet-train``: walk-forward training of one model on one data set, tracked in MLflow.

    lobnet-train data=lobster data.path=PATH model=tcn loss=ce trainer.max_epochs=5 \
        mlflow.tracking_uri=sqlite:///mlflow.db mlflow.experiment_name=NAME
    lobnet-train -m model=lstm,tcn,transformer,hybrid            # a sweep: one parent run per model
"""

from __future__ import annotations

import dataclasses
import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lobnet.cli import CONF_DIR, reports_errors
from lobnet.evaluation.explain import ExplainSettings
from lobnet.features import book_columns
from lobnet.io import claim
from lobnet.prep.prepared import prepare
from lobnet.tracking.runs import MlflowSettings, Tag
from lobnet.train.loop import TrainSettings, flatten, train_walk_forward


def model_factory(cfg: DictConfig, feature_names: list[str], levels: int, task: str = "classification"):
    """n_features and n_horizons from the data; the Transformer's time-gap column and DeepLOB's book columns
    found by name; a deep model's heads from the labels' task (a regression target: one regression head)."""
    from lobnet.models import MODELS

    build = instantiate(cfg.model)
    name = cfg.model.name
    extra = {"task": task} if name in MODELS else {}
    if name in ("transformer", "hybrid") and "log_dt" in feature_names:
        extra["dt_index"] = feature_names.index("log_dt")
    if name == "deeplob":
        extra.update(levels=levels, book_columns=book_columns(feature_names, levels))
    return lambda n_features, n_horizons: build(n_features=n_features, n_horizons=n_horizons, **extra)


def dataset_name(summary: dict) -> str:
    """``AMZN lobster L5 1d``: symbols, source, book levels (none for bars: ``SPY bars 7d``) and days of a
    prepared table."""
    levels = f" L{summary['levels']}" if summary["levels"] else ""
    return f"{','.join(summary['symbols'])} {summary['source']}{levels} {len(summary['days'])}d"


def run(cfg: DictConfig) -> dict:
    # the training folder first: the prepared table goes inside it by default (prepared_dir)
    with claim(cfg.output_dir, "train", inputs=[cfg.data.get("path"), cfg.cache_dir], lock=False):
        pass
    mlflow_settings = MlflowSettings(**OmegaConf.to_container(cfg.mlflow, resolve=True))  # refused before the data
    labels = instantiate(cfg.labels, _convert_="all")
    features = instantiate(cfg.features, _convert_="all")
    prepared = prepare(  # the table, its summary and folds, as prepare made (or found) them
        data=OmegaConf.to_container(cfg.data, resolve=True),
        features=features,
        labels=labels,
        split=OmegaConf.to_container(cfg.split, resolve=True),
        window=int(cfg.window),
        output_dir=cfg.prepared_dir,
        cache_dir=cfg.cache_dir,
    )
    frame, summary, folds = prepared.frame, prepared.summary, prepared.folds
    names = summary["feature_names"]
    groups = ("loss", "optimizer", "trainer")  # config groups that build their objects (_target_), as models do
    own = {f.name for f in dataclasses.fields(TrainSettings)} - {*groups, "backtest", "dollars_per_tick", "explain"}
    settings = TrainSettings(
        **{name: instantiate(cfg[name], _convert_="all") for name in groups},
        **{name: cfg[name] for name in own},  # the run's own settings: top-level keys of the same names
        backtest=OmegaConf.to_container(cfg.backtest, resolve=True) if cfg.get("backtest") is not None else None,
        dollars_per_tick=features.tick / features.price_scale,
        explain=ExplainSettings(**OmegaConf.to_container(cfg.explain_settings, resolve=True)) if cfg.explain else None,
    )
    params = flatten(OmegaConf.to_container(cfg, resolve=True))
    # where outputs go and what is reported afterwards (explain) do not change what is trained: not in the run's key
    for k in [k for k in params if k.startswith(("output_dir", "prepared_dir", "cache_dir", "progress", "explain"))]:
        params.pop(k)
    progress = sys.stdout.isatty() if cfg.progress == "auto" else bool(cfg.progress)
    tags = {
        Tag.MODEL: cfg.model.name,
        Tag.LOSS: labels.loss if labels.task == "regression" else cfg.loss.kind,
        Tag.DATA: summary["cache_key"],
        Tag.EVENTS: summary.get("events_key", summary["cache_key"]),
        Tag.DATASET: dataset_name(summary),
        Tag.SOURCE: summary["source"],
        Tag.SYMBOLS: ",".join(summary["symbols"]),
    }
    if labels.task == "regression":
        tags[Tag.TARGET] = labels.name
    events_per_day = summary["n_events"] / max(len(summary["days"]) * len(summary["symbols"]), 1)
    result = train_walk_forward(
        frame,
        names,
        folds,
        labels,
        int(cfg.window),
        model_factory(cfg, names, summary["levels"], labels.task),
        settings,
        mlflow_settings,
        cfg.output_dir,
        params,
        tags,
        events_per_day,
        progress,
        card={
            "features": {**dataclasses.asdict(features), "levels": summary["levels"]},
            # what lobnet-explain needs to rebuild the fold's test block from the data: the split and normalisation
            "split": OmegaConf.to_container(cfg.split, resolve=True),
            "normalization": cfg.normalization,
        },
    )
    if result["parent_run_id"]:
        import mlflow.tracking

        mlflow.tracking.MlflowClient(cfg.mlflow.tracking_uri).log_text(
            result["parent_run_id"], OmegaConf.to_yaml(cfg, resolve=True), "config.yaml"
        )
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@reports_errors
def _main(cfg: DictConfig) -> None:
    r = run(cfg)
    s, k = r["summary"], r["primary_horizon"]
    if "test/mse_vs_factor" in s:  # a regression target
        print(
            f"{cfg.model.name} on {cfg.labels.kind}, {len(r['folds'])} folds: test MSE {s['test/mse']:.4g} "
            f"(EW factor {s['test/factor_mse']:.4g}; model / factor {s['test/mse_vs_factor']:.3f}), "
            f"R² {s['test/r2']:.3f} (factor {s['test/factor_r2']:.3f}); MLflow run {r['parent_run_id']}"
        )
        return
    print(
        f"{cfg.model.name} ({cfg.loss.kind}), {len(r['folds'])} folds, horizon {k}: "
        f"macro-F1 {s['test/macro_f1']:.3f} +- {s['test/macro_f1_std']:.3f} (majority {s['test/majority_f1']:.3f}), "
        f"accuracy {s['test/accuracy']:.3f}, net Sharpe/day {s['test/net_sharpe']:.2f}"
        + (f", backtest net ${s['test/bt_net']:,.2f} per fold" if "test/bt_net" in s else "")
        + f"; MLflow run {r['parent_run_id']}"
    )


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
