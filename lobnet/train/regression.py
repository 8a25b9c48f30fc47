"""A fold of a model trained on a regression target (``labels=liquidity | volatility | pairs``,
:mod:`lobnet.prep.targets`), scored against the calibrated one-pass factor and the naive predictors.

Deep models go through the classification folds' Lightning path (:func:`lobnet.train.loop.fit_and_test`: early
stopping on the validation loss, checkpoints, resume, the model card) with a regression head and the MSE (or, for
volatility, QLIKE) loss on the target scaled on the training fold only; ``model=ridge`` is fitted without Lightning
on the same samples. Every fold then scores, on the same test samples (:func:`report_regression_fold`):

* the model's predictions, in the target's units;
* the **EW factor** whose response the target is (:func:`lobnet.online.factors.reference_predictions`), its alpha
  calibrated against the target on the fold's *training* samples, its value as known at each sample;
* the **naive predictors** of the factor study with that alpha's memory (last value, SMA; pairs: no signal).

Metrics (``test/...``): ``mse``, ``mae``, ``r2`` (out of sample, against the training mean), ``corr``, the factor's
(``factor_mse``, ``factor_r2``, ...), ``mse_vs_factor`` (the model's MSE over the factor's), ``delta_mse`` with
``delta_mse_lo`` / ``delta_mse_hi`` (the paired block-bootstrap 95 % interval of MSE(model) - MSE(factor):
wholly below 0, the model is better), and each naive predictor's ``mse_vs_factor``. ``regression.json`` holds the
full comparison, ``regression_predictions.npz`` the test rows, target and every predictor.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from lobnet.card import CARD
from lobnet.data.schema import day_slices
from lobnet.evaluation.regression import compare, horizon_in_samples, scores
from lobnet.io import write_json
from lobnet.models import Baseline
from lobnet.prep.splits import Fold
from lobnet.prep.targets import NS, TARGET, TargetConfig, TargetScale
from lobnet.prep.windows import FoldData, LOBDataModule
from lobnet.train.losses import regression_loss
from lobnet.train.module import LOBModule

REFERENCE = "EW factor"
PREDICTIONS = "regression_predictions.npz"
REPS = 999  # bootstrap draws of each fold's interval of MSE(model) - MSE(factor), as lobnet-calibrate's default


class RegressionModule(LOBModule):
    """A :class:`LOBModule` whose model has a regression head: ``loss`` ``mse`` | ``qlike`` on the scaled target,
    and at each evaluation epoch's end the scores of the predictions in the target's own units (R² against
    ``train_mean``, the training samples' mean target)."""

    def __init__(self, model, loss: str, scale: TargetScale, train_mean: float, optimizer=None, seed: int = 0):
        super().__init__(model, None, (1,), optimizer, 0.0, 1.0, seed)
        self.loss_kind, self.scale, self.train_mean = loss, scale, float(train_mean)

    def training_step(self, batch, batch_idx):
        x, y, _ = batch
        (out,) = self.model(x)
        loss = regression_loss(self.loss_kind, out, y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def _eval_step(self, batch, stage: str):
        x, y, r = batch
        (out,) = self.model(x)
        loss = regression_loss(self.loss_kind, out, y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0], prog_bar=stage == "val")
        self._outputs[stage].append((out.detach().cpu(), r.cpu()))

    def _eval_epoch_end(self, stage: str) -> None:
        arrays = self._epoch_outputs(stage)
        if arrays is None:
            return
        out, r = (a[:, 0].astype(np.float64) for a in arrays)
        pred = self.scale.invert(out)
        metrics = {k: v for k, v in scores(pred, r, self.train_mean).items() if k != "n"}
        metrics["r2"] = metrics.pop("r2_oos")
        self._log_results(stage, metrics, prediction=pred, y=r)


def fit_regression_fold(shared, fold: Fold, child_id: str | None) -> dict:
    """One fold of a regression run (the module docstring): returns its test metrics."""
    from lobnet.train.loop import fit_and_test, is_rank_zero

    target: TargetConfig = shared.labels
    settings = shared.settings
    if settings.loss.kind != "ce":
        raise ValueError(
            f"loss={settings.loss.kind} is a direction label's loss; a model of labels={target.kind} trains with "
            "labels.loss (mse or qlike): leave loss at its default"
        )
    if settings.explain is not None:
        raise ValueError(
            f"explain=true reads a classifier's outputs (lobnet.evaluation.explain); a model of labels={target.kind} "
            "has none: train it without explain"
        )
    data = FoldData.build_regression(
        shared.frame, shared.feature_names, fold, target, shared.window, normalization=settings.normalization
    )
    if len(data.train) == 0 or len(data.val) == 0 or len(data.test) == 0:
        raise ValueError(f"fold {fold.index} has an empty train, validation or test set: {fold.describe()}")
    raw = shared.frame[TARGET].to_numpy().astype(np.float64)
    train_rows = data.train.samples.numpy()
    train_mean = float(np.mean(raw[train_rows]))
    model = shared.make_model(len(shared.feature_names), 1)
    if isinstance(model, Baseline):
        if not getattr(model, "regression", False):
            raise ValueError(
                f"model={model.name} is a classifier baseline; on a regression target (labels={target.kind}) the "
                "linear baseline is model=ridge"
            )
        t0 = time.perf_counter()
        model.fit_regression(data, shared.frame, settings.seed + fold.index)
        fit_s = time.perf_counter() - t0
        print(f"fold {fold.index}: {model.name} fitted in {fit_s:.1f} s", flush=True)
        results = {}
        for stage in ("val", "test"):
            ds = getattr(data, stage)
            pred = model.predict_regression(stage)
            y = raw[ds.samples.numpy()]
            m = {k: v for k, v in scores(pred, y, train_mean).items() if k != "n"}
            m["r2"] = m.pop("r2_oos")
            results[stage] = {"metrics": m, "prediction": pred, "y": y}
        results["test"]["metrics"]["fit_seconds"] = fit_s
        extra = {"baseline.json": {**model.summary(), "fit_seconds": fit_s}}
        metrics = report_regression_fold(shared, fold, child_id, data, results["test"], results["val"], extra)
        if shared.tracker.active:
            shared.tracker.client.set_terminated(child_id)
        return metrics
    if getattr(model.cfg, "task", None) != "regression":
        raise ValueError(f"model {type(model).__name__} was not built with task=regression")
    if hasattr(model, "check_window"):
        model.check_window(shared.window)
    module = RegressionModule(
        model, target.loss, data.scale, train_mean, settings.optimizer, settings.seed + fold.index
    )
    dm = LOBDataModule(data, settings.batch_size, seed=settings.seed + fold.index)
    extra = {
        "labels": {k: getattr(target, k) for k in target.__dataclass_fields__},
        "task": "regression",
        "target": target.name,
        "target_scale": data.scale.to_dict(),
        "target_train_mean": train_mean,  # the constant forecast an out-of-sample R² is measured against
        "loss": target.loss,
    }
    if target.kind == "pairs":  # the features of the merged two-symbol table (lobnet.features.pair_feature_names)
        extra["features"] = {**shared.card["features"], "pair": True}
    best, val = fit_and_test(shared, fold, child_id, model, module, dm, data, extra)
    metrics = report_regression_fold(shared, fold, child_id, data, module.results["test"], val, {}, module)
    ckpt_dir = shared.run_dir / f"fold_{fold.index}"
    if is_rank_zero():  # the factor calibrated on this fold's training samples: what lobnet-stream runs beside it
        card = json.loads((ckpt_dir / CARD).read_text())
        card["factor"] = {"kind": target.kind, "alpha": metrics["factor_alpha"]}
        write_json(ckpt_dir / CARD, card)
    if shared.tracker.active:  # the fold as a logged model of its run (runs:/<id>/model), as a classifier's
        from lobnet.tracking.model import log_fold_model

        log_fold_model(shared.tracker.settings.tracking_uri, child_id, ckpt_dir, Path(best))
        shared.tracker.client.set_terminated(child_id)
    return metrics


def _key(name: str) -> str:
    """A predictor's name as a metric key: ``last value`` -> ``last_value``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def report_regression_fold(
    shared, fold: Fold, child_id, data: FoldData, result: dict, val: dict, extra: dict, module=None
) -> dict:
    """The fold's test predictions against the calibrated factor and the naive predictors on the same samples
    (the module docstring), logged to its run; returns the test metrics."""
    target: TargetConfig = shared.labels
    frame = shared.frame
    raw = frame[TARGET].to_numpy().astype(np.float64)
    train_rows, rows = data.train.samples.numpy(), data.test.samples.numpy()
    features = shared.card.get("features", {})
    t0 = time.perf_counter()
    from lobnet.online.factors import reference_predictions

    refs, factor_info = reference_predictions(
        frame, target, raw, train_rows, features.get("tick", 100), features.get("price_scale", 10_000)
    )
    ref_s = time.perf_counter() - t0
    y = raw[rows]
    preds = {"model": np.asarray(result["prediction"], float), **{k: v[rows] for k, v in refs.items()}}
    times = frame["time"].to_numpy()[rows]
    day = np.empty(frame.height, dtype=np.int64)
    for d, sl in enumerate(day_slices(frame)):
        day[sl] = d
    day = day[rows]
    horizon_ns = int(round((target.horizon_s or 0) * NS))
    block = horizon_in_samples(times, day, horizon_ns) if horizon_ns else max(1, int(target.horizon_events or 1))
    if horizon_ns == 0:  # a horizon in events: in samples, scaled by the evaluation stride
        block = max(1, block // max(fold.eval_stride, 1))
    train_mean = float(np.mean(raw[train_rows]))
    cmp = compare(y, preds, REFERENCE, train_mean, block, reps=REPS)
    p = cmp["predictors"]
    metrics = {k: float(v) for k, v in result["metrics"].items()}
    m = p["model"]
    metrics.update(
        {
            "cmp_samples": float(cmp["samples"]),
            "cmp_block": float(cmp["block"]),
            "mse_vs_factor": m[f"mse_vs_{REFERENCE}"],
            "delta_mse": m["delta_mse"]["mean"],
            "delta_mse_lo": m["delta_mse"]["lo"],
            "delta_mse_hi": m["delta_mse"]["hi"],
            "factor_mse": p[REFERENCE]["mse"],
            "factor_mae": p[REFERENCE]["mae"],
            "factor_r2": p[REFERENCE]["r2_oos"],
            "factor_corr": p[REFERENCE]["corr"],
            "factor_alpha": factor_info["alpha"],
        }
    )
    for name, s in p.items():
        if name not in ("model", REFERENCE):
            metrics[f"{_key(name)}_mse"] = s["mse"]
            metrics[f"{_key(name)}_mse_vs_factor"] = s[f"mse_vs_{REFERENCE}"]
    tracker = shared.tracker
    if not tracker.active:
        return metrics
    logged = {f"val_best/{k}": v for k, v in val["metrics"].items()}
    logged |= {f"test/{k}": v for k, v in metrics.items() if module is None or k not in result["metrics"]}
    tracker.log_metrics(child_id, logged)
    payload = {
        "target": target.name,
        "factor": {**factor_info, "seconds": ref_s},
        "scale": data.scale.to_dict(),
        "train_mean": train_mean,
        "comparison": cmp,
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / "regression.json", Path(tmp) / PREDICTIONS]
        files[0].write_text(json.dumps(payload, indent=1, default=float))
        np.savez(files[1], rows=rows, y=y, **{_key(k): v for k, v in preds.items()})
        for name, body in extra.items():
            files.append(Path(tmp) / name)
            files[-1].write_text(json.dumps(body, indent=1, default=float))
        for f in files:
            tracker.client.log_artifact(child_id, str(f))
    return metrics
