"""A baseline's fold (:mod:`lobnet.models.baselines`): the deep models' fold data (samples, labels with the
training block's thresholds, normalisation), the baseline fitted on the training block with its choices made on
the validation block, then the same metrics, backtest, MLflow logging and ``predictions.npz`` as a deep model's
fold (:func:`lobnet.train.loop.report_fold`). No Lightning, no checkpoint, no exportable model: a baseline's run
logs ``baseline.json`` (what it chose and learned) instead."""

from __future__ import annotations

import time

import numpy as np

from lobnet.models.baselines import Baseline, TabularView
from lobnet.prep.splits import Fold
from lobnet.prep.windows import FoldData
from lobnet.train.losses import default_cost
from lobnet.train.module import evaluate


def fit_baseline_fold(shared, fold: Fold, child_id: str | None, data: FoldData, model: Baseline) -> dict:
    from lobnet.train.loop import report_fold

    settings = shared.settings
    if settings.loss.kind != "ce":
        raise ValueError(
            f"model={model.name} is a classifier baseline: it trains with loss=ce only, not loss={settings.loss.kind}"
        )
    t0 = time.perf_counter()
    view = TabularView(shared.frame, data, model.cfg.memories if model.needs_table else ())
    model.fit(view, settings.seed + fold.index, settings.loss.class_weights)
    fit_s = time.perf_counter() - t0
    train_rows = data.train.samples.numpy()
    cost = settings.loss.cost
    if cost is None:
        cost = default_cost(shared.frame["spread_rel"].to_numpy()[train_rows])
    results = {}
    for stage in ("val", "test"):
        ds = getattr(data, stage)
        prob = model.predict(view, stage)
        y, r = ds.y[ds.samples].numpy(), ds.returns[ds.samples].numpy()
        pos = np.zeros(y.shape, dtype=np.float32)  # classifiers: positions come from the predicted class
        m = evaluate(prob, pos, y, r, data.horizons, "ce", cost, shared.events_per_day, shared.labels.classes)
        results[stage] = {"metrics": m, "prob": prob, "position": pos, "y": y, "returns": r}
    results["test"]["metrics"]["fit_seconds"] = fit_s
    print(f"fold {fold.index}: {model.name} fitted in {fit_s:.1f} s", flush=True)
    summary = {**model.summary(), "fit_seconds": fit_s, "features": view.names}
    metrics = report_fold(
        shared, fold, child_id, data, results["test"], results["val"], cost, "ce", extra={"baseline.json": summary}
    )
    if settings.explain is not None:
        from lobnet.train.loop import explain_to_run

        explain_to_run(shared, child_id, model, data, f"{model.name} fold {fold.index}", view)
    if shared.tracker.active:
        shared.tracker.client.set_terminated(child_id)  # FINISHED once everything is logged, as a deep model's fold
    return metrics
