"""``lobnet-explain checkpoint=PATH|URI data=... data.path=... output_dir=OUT``: what one trained fold reads.

The fold's test block is rebuilt from the data with the card's features, labels, split, window and normalisation
(lobnet-train writes them into ``model.json``), checked against the card (the same features and the same training
z-score, else the data are not what the fold was trained on), and explained (:mod:`lobnet.evaluation.explain`):
``OUT/explain.json`` and the figures, also logged to the fold's MLflow run under ``explain/``.

Baselines are not saved as checkpoints: ``checkpoint=runs:/<a baseline's fold run id>`` refits the baseline on
that fold from the training run's logged ``config.yaml`` (seconds; the fit is deterministic) and checks that the
refit predicts the fold's logged test probabilities before explaining it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from lobnet.cli import CONF_DIR, reports_errors
from lobnet.io import OutputDir

NEEDS = ("features", "labels", "split", "fold", "zscore", "primary_horizon")  # what the card must hold


def run(cfg: DictConfig) -> dict:
    from lobnet.card import load_model
    from lobnet.data.errors import LobDataError
    from lobnet.evaluation import explain
    from lobnet.features import FeatureSpec
    from lobnet.live.export import fold_run, resolve_checkpoint
    from lobnet.prep.labels import LabelConfig
    from lobnet.prep.prepared import prepare
    from lobnet.prep.windows import FoldData

    ref = str(cfg.checkpoint)
    inputs = [cfg.data.get("path"), cfg.cache_dir] + ([] if ref.startswith(("runs:/", "models:/")) else [ref])
    with OutputDir(cfg.output_dir, "explain", inputs) as od, tempfile.TemporaryDirectory() as tmp:
        baseline = _baseline_run(ref, cfg.tracking_uri, Path(tmp))
        if baseline is not None:
            return _explain_baseline(cfg, *baseline, od.tmp, Path(tmp))
        ckpt, run_id = resolve_checkpoint(ref, cfg.tracking_uri, Path(tmp))
        uri = cfg.tracking_uri
        if run_id is None:
            run_id, uri = fold_run(ckpt)
        model, card = load_model(ckpt)
        card_path = ckpt.parent / "model.json"
        if missing := [k for k in NEEDS if card.get(k) is None]:
            raise LobDataError(card_path, None, f"the card lacks {missing}: re-train with this lobnet to explain it")
        if card.get("task") == "regression":  # the readings are of class outputs (lobnet.evaluation.explain)
            raise LobDataError(card_path, None, "a model of a regression target has no class outputs to explain")
        features = FeatureSpec(**{k: v for k, v in card["features"].items() if k != "levels"})
        labels = LabelConfig(**card["labels"])
        prepared = prepare(
            data=OmegaConf.to_container(cfg.data, resolve=True),
            features=features,
            labels=labels,
            split=card["split"],
            window=int(card["window"]),
            output_dir=Path(tmp) / "prepared",
            cache_dir=cfg.cache_dir,
        )
        frame, folds = prepared.frame, prepared.folds
        if card["fold"] >= len(folds):
            raise ValueError(f"{card_path}: fold {card['fold']}, but this data makes {len(folds)} folds")
        fold = folds[card["fold"]]
        data = FoldData.build(
            frame, card["feature_names"], fold, labels, int(card["window"]), card.get("normalization", "train_zscore")
        )
        if data.zscore is not None and not np.allclose(data.zscore.mean, card["zscore"]["mean"], rtol=1e-4, atol=1e-6):
            raise ValueError(
                f"{card_path}: fold {fold.index}'s training z-score on this data differs from the card's: these are "
                "not the data (or the split) the fold was trained on"
            )
        settings = explain.ExplainSettings(**OmegaConf.to_container(cfg.explain_settings, resolve=True))
        h = list(labels.horizons).index(int(card["primary_horizon"]))
        result = explain.explain_fold(model, data, card["features"], labels, h, settings, frame)
        files = explain.write(od.tmp, result, f"{card['model']} fold {fold.index}")
        result["mlflow_run_id"] = None
        if run_id and uri:
            import mlflow.tracking

            client = mlflow.tracking.MlflowClient(uri)
            for f in files:
                client.log_artifact(run_id, str(f), "explain")
            result["mlflow_run_id"] = run_id
    return result


def _baseline_run(ref: str, uri: str, tmp: Path):
    """(fold run id, its training config, fold index) when ``ref`` is ``runs:/<id>`` of a baseline's fold run."""
    if not ref.startswith("runs:/"):
        return None
    import mlflow.tracking

    from lobnet.models import BASELINES
    from lobnet.tracking.runs import Tag

    run_id = ref.removeprefix("runs:/").split("/")[0]
    client = mlflow.tracking.MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001 - not a run of this store: resolve_checkpoint reports it
        return None
    if run.data.tags.get(Tag.MODEL) not in BASELINES or Tag.FOLD not in run.data.tags:
        return None
    parent = run.data.tags[Tag.PARENT_RUN]
    try:
        path = client.download_artifacts(parent, "config.yaml", str(tmp))
    except Exception as e:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
        raise ValueError(f"{ref}: its training run {parent} has no config.yaml to refit the baseline from") from e
    return run_id, OmegaConf.load(path), int(run.data.tags[Tag.FOLD])


def _fields(node, *drop: str) -> dict:
    """A config group's own fields, without Hydra's ``_target_`` / ``_partial_`` (and ``drop``)."""
    return {
        k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if not k.startswith("_") and k not in drop
    }


def _explain_baseline(cfg: DictConfig, run_id: str, train_cfg, fold_index: int, out: Path, tmp: Path) -> dict:
    """Refit a baseline's fold from its training config on the given data, check it against the fold's logged test
    predictions, and explain it."""
    import dataclasses

    import mlflow.tracking

    from lobnet.card import primary_horizon
    from lobnet.evaluation import explain, predictions
    from lobnet.features import FeatureSpec
    from lobnet.models import build_model
    from lobnet.models.baselines import TabularView
    from lobnet.prep.labels import LabelConfig
    from lobnet.prep.prepared import prepare
    from lobnet.prep.windows import FoldData

    # built from their fields, never by instantiating the downloaded config's _target_s: anyone who can write to the
    # tracking server's artifacts could otherwise name any callable there
    features = FeatureSpec(**_fields(train_cfg.features))
    labels = LabelConfig(**_fields(train_cfg.labels))
    window = int(train_cfg.window)
    prepared = prepare(
        data=OmegaConf.to_container(cfg.data, resolve=True),
        features=features,
        labels=labels,
        split=OmegaConf.to_container(train_cfg.split, resolve=True),
        window=window,
        output_dir=tmp / "prepared",
        cache_dir=cfg.cache_dir,
    )
    frame, summary, folds = prepared.frame, prepared.summary, prepared.folds
    if fold_index >= len(folds):
        raise ValueError(f"runs:/{run_id}: fold {fold_index}, but this data makes {len(folds)} folds")
    fold = folds[fold_index]
    names = summary["feature_names"]
    data = FoldData.build(frame, names, fold, labels, window, train_cfg.normalization)
    fields = _fields(train_cfg.model, "name")
    model = build_model(str(train_cfg.model.name), n_features=len(names), n_horizons=len(labels.horizons), **fields)
    view = TabularView(frame, data, model.cfg.memories if model.needs_table else ())
    model.fit(view, int(train_cfg.seed) + fold.index, bool(train_cfg.loss.class_weights))
    client = mlflow.tracking.MlflowClient(cfg.tracking_uri)
    logged = predictions.load(Path(client.download_artifacts(run_id, predictions.PREDICTIONS, str(tmp))))
    refit = model.predict(view, "test")
    if refit.shape != logged["prob"].shape or not np.allclose(refit, logged["prob"], atol=1e-5):
        raise ValueError(
            f"runs:/{run_id}: the {model.name} refitted on this data does not predict the fold's logged test "
            "probabilities: these are not the data the fold was trained on"
        )
    settings = explain.ExplainSettings(**OmegaConf.to_container(cfg.explain_settings, resolve=True))
    h = list(labels.horizons).index(primary_horizon(labels.horizons, train_cfg.primary_horizon))
    card_features = {**dataclasses.asdict(features), "levels": summary["levels"]}
    result = explain.explain_fold(model, data, card_features, labels, h, settings, frame, view)
    files = explain.write(out, result, f"{model.name} fold {fold.index}")
    for f in files:
        client.log_artifact(run_id, str(f), "explain")
    result["mlflow_run_id"] = run_id
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="explain")
@reports_errors
def _main(cfg: DictConfig) -> None:
    r = run(cfg)
    imp = r["importance"]
    top = sorted(imp, key=lambda g: -imp[g]["logloss_rise"])[:5]
    ranked = ", ".join(f"{g} {imp[g]['logloss_rise']:+.4f}" for g in top)
    print(
        f"explained {r['windows']} test windows at h={r['horizon']} in {r['seconds']:.1f} s; by log-loss rise: {ranked}"
    )
    where = f"; logged to run {r['mlflow_run_id']}" if r["mlflow_run_id"] else ""
    print(f"wrote {cfg.output_dir}/explain.json and figures{where}")


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
