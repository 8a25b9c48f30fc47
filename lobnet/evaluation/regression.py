"""Scores of predictions of a regression target (:mod:`lobnet.prep.targets`), and the paired comparison of two
predictors on the same test samples.

* :func:`scores`: MSE, MAE, out-of-sample R² and the correlation. R² is 1 - MSE / MSE of a constant forecast at
  the *calibration* (training) mean, as a forecaster would have had to fix it beforehand; it is negative for a
  predictor worse than that constant.
* :func:`paired_mse_difference`: the MSE of a predictor minus that of a benchmark on the same samples, with a
  percentile interval from a circular block bootstrap over the samples (``arch``): neighbouring samples share most
  of their target's future span, so blocks are at least as long as the horizon in samples
  (:func:`lobnet.evaluation.stats.block_length`). An interval wholly below 0: the predictor is better.
* :func:`compare`: both, for every predictor against a reference one (the calibrated factor), restricted to the
  samples where every predictor and the target are finite.
"""

from __future__ import annotations

import numpy as np

from lobnet.evaluation.stats import block_length


def scores(pred: np.ndarray, y: np.ndarray, reference_mean: float) -> dict:
    """MSE, MAE, out-of-sample R² (against a constant forecast at ``reference_mean``) and the correlation."""
    pred, y = np.asarray(pred, float), np.asarray(y, float)
    e = pred - y
    mse = float(np.mean(e * e)) if len(y) else float("nan")
    base = float(np.mean((y - reference_mean) ** 2)) if len(y) else float("nan")
    corr = float("nan")
    if len(y) >= 3 and np.std(pred) > 0 and np.std(y) > 0:
        corr = float(np.corrcoef(pred, y)[0, 1])
    return {
        "n": int(len(y)),
        "mse": mse,
        "mae": float(np.mean(np.abs(e))) if len(y) else float("nan"),
        "r2_oos": 1.0 - mse / base if base > 0 else float("nan"),
        "corr": corr,
    }


def paired_mse_difference(
    pred: np.ndarray,
    bench: np.ndarray,
    y: np.ndarray,
    block: int,
    reps: int = 999,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """MSE(pred) - MSE(bench) on the same samples, and its ``level`` percentile interval (circular block
    bootstrap of the per-sample squared-error differences, blocks of ``block`` samples)."""
    d = (np.asarray(pred, float) - y) ** 2 - (np.asarray(bench, float) - y) ** 2
    return mean_interval(d, block, reps, level, seed)


def mean_interval(d: np.ndarray, block: int, reps: int = 999, level: float = 0.95, seed: int = 0):
    """The mean of ``d`` and its ``level`` percentile interval from a circular block bootstrap (``arch``)."""
    from arch.bootstrap import CircularBlockBootstrap

    bs = CircularBlockBootstrap(block, d, seed=seed)
    draws = np.array([data[0].mean() for data, _ in bs.bootstrap(reps)])
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(d.mean()), float(lo), float(hi)


def compare(
    y: np.ndarray,
    preds: dict[str, np.ndarray],
    reference: str,
    reference_mean: float,
    horizon_samples: int,
    reps: int = 999,
    seed: int = 0,
) -> dict:
    """Every predictor in ``preds`` scored on the samples where all of them and ``y`` are finite, and each but
    ``reference`` against it: ``mse_vs_<reference>`` (its MSE over the reference's) and ``delta_mse`` (the paired
    MSE difference and its interval, negative: better than the reference)."""
    ok = np.isfinite(y)
    for p in preds.values():
        ok &= np.isfinite(p)
    yy = y[ok]
    block = block_length(len(yy), horizon_samples) if len(yy) else 1
    out = {"samples": int(ok.sum()), "block": int(block), "reference": reference, "predictors": {}}
    ref = preds[reference][ok]
    ref_mse = float(np.mean((ref - yy) ** 2)) if len(yy) else float("nan")
    for name, p in preds.items():
        s = scores(p[ok], yy, reference_mean)
        if name != reference and len(yy):
            s[f"mse_vs_{reference}"] = s["mse"] / ref_mse if ref_mse > 0 else float("nan")
            d, lo, hi = paired_mse_difference(p[ok], ref, yy, block, reps, seed=seed)
            s["delta_mse"] = {"mean": d, "lo": lo, "hi": hi}
        out["predictors"][name] = s
    return out


def horizon_in_samples(times: np.ndarray, day: np.ndarray, horizon_ns: int) -> int:
    """The median number of samples of the same day within ``horizon_ns`` after a sample (times in time order
    within each day): how far a target's future span reaches in samples, the bootstrap's block."""
    reach = []
    for d in np.unique(day):
        t = times[day == d]
        reach.append(np.searchsorted(t, t + horizon_ns, side="left") - np.arange(len(t)))
    return max(1, int(np.median(np.concatenate(reach)))) if reach else 1


# --- lobnet-compare: regression runs ---------------------------------------------------------------------------

SCORES = ("mse", "mae", "r2", "corr", "mse_vs_factor")  # per fold run, test/<name>; summarised mean ± std


def pooled_losses(runs: list[dict], loaded: dict[str, dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A configuration's squared errors on every test sample of its folds, averaged over its seeds, beside the
    factor's and the target's: (model loss, factor loss, y), samples in fold then row order. ``runs``: its fold
    runs (``fold``, ``seed``, ``run``); ``loaded``: their ``regression_predictions.npz`` by run id. None when a
    file is missing or the seeds did not predict the same samples."""
    by_fold: dict[int, list[dict]] = {}
    for r in runs:
        if r["run"] not in loaded:
            return None
        by_fold.setdefault(int(r["fold"]), []).append(loaded[r["run"]])
    model, factor, ys = [], [], []
    for fold in sorted(by_fold):
        preds = by_fold[fold]
        rows = preds[0]["rows"]
        if any(not np.array_equal(p["rows"], rows) for p in preds):
            return None
        y = preds[0]["y"]
        ok = np.isfinite(y) & np.isfinite(preds[0]["ew_factor"])
        for p in preds:
            ok &= np.isfinite(p["model"])
        model.append(np.mean([(p["model"][ok] - y[ok]) ** 2 for p in preds], axis=0))
        factor.append((preds[0]["ew_factor"][ok] - y[ok]) ** 2)
        ys.append(y[ok])
    return np.concatenate(model), np.concatenate(factor), np.concatenate(ys)


def against_factor(model_loss: np.ndarray, factor_loss: np.ndarray, block: int, reps: int = 999, seed: int = 0):
    """The family member's test: MSE(model) - MSE(factor) over the pooled samples with its block-bootstrap
    interval (:func:`paired_mse_difference` on the losses), and the Diebold–Mariano one-sided p-value of the model
    being better (HAC, ``block`` lags)."""
    from lobnet.evaluation.stats import diebold_mariano

    mean, lo, hi = mean_interval(model_loss - factor_loss, block, reps, seed=seed)
    _, p = diebold_mariano(model_loss, factor_loss, block)
    return {"delta_mse": mean, "delta_lo": lo, "delta_hi": hi, "dm_p": p}
