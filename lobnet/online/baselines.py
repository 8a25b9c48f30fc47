"""Factor-based predictors of the same direction labels the deep models predict, scored with the same metrics.

* :func:`ofi_sign_forecast`: the EW mean of level-1 order-flow imbalance (one-pass, per day). Positive means
  buying pressure; its sign is the forecast direction, with a flat band whose width is fitted on training rows
  so that the forecast is flat as often as the training labels are.
* :func:`rls_forecast`: an EW regression (recursive least squares with forgetting) of the continuous label on
  current features. The label of row s is only known k events later, so the coefficients used at t are those
  fitted on rows <= t - k: the forecast never sees an unrealised target.

Both are causal and O(1) per event, so the streamer can run them beside the models.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import accuracy_score, f1_score

from lobnet.data.schema import day_slices
from lobnet.online.estimators import ew_mean, ew_regression
from lobnet.prep.labels import DOWN, FLAT, UP, classify


def ew_ofi(frame: pl.DataFrame, alpha: float, column: str = "ofi_1") -> np.ndarray:
    """EW mean of OFI per day (the warm-up null counts as no flow)."""
    x = np.nan_to_num(frame[column].to_numpy().astype(float))
    out = np.empty(len(x))
    for s in day_slices(frame):
        out[s] = ew_mean(x[s], alpha)
    return out


def flat_band(signal: np.ndarray, labels: np.ndarray) -> float:
    """The half-width of the flat band of a signed signal: the quantile of |signal| that makes the forecast flat
    as often as ``labels`` (the training or calibration labels at the same rows) are. 0 without labels."""
    flat_share = float(np.mean(labels == FLAT)) if labels.size else 0.0
    return float(np.quantile(np.abs(signal), flat_share)) if flat_share > 0 and signal.size else 0.0


def sign_classes(signal: np.ndarray, band: float) -> np.ndarray:
    """UP above the band, DOWN below minus the band, FLAT between: a signed signal's class forecast."""
    return np.where(signal > band, UP, np.where(signal < -band, DOWN, FLAT))


def ofi_sign_forecast(frame: pl.DataFrame, alpha: float, train: np.ndarray, train_labels: np.ndarray) -> np.ndarray:
    """Classes from the sign of the EW mean of OFI; the flat band matches the training labels' flat share."""
    sig = ew_ofi(frame, alpha)
    return sign_classes(sig, flat_band(sig[train], train_labels))


def rls_forecast(
    frame: pl.DataFrame, features: list[str], target: str, horizon: int, alpha: float, ridge: float = 1e-6
) -> np.ndarray:
    """Forecast of ``target`` from ``features`` by EW regression with delayed updates (see module docstring).
    NaN until a first target is known in the day."""
    X = np.nan_to_num(frame.select(features).to_numpy().astype(float))
    y = frame[target].to_numpy().astype(float)
    pred = np.full(len(y), np.nan)
    for s in day_slices(frame):
        Xd, yd = X[s], y[s]
        known = np.flatnonzero(np.isfinite(yd))
        if known.size == 0:
            continue
        n = known[-1] + 1  # rows with a realised target form a prefix of the day
        coefs = ew_regression(Xd[:n], np.nan_to_num(yd[:n]), alpha, ridge=ridge)[0]
        t = np.arange(horizon, len(yd))
        src = np.minimum(t - horizon, n - 1)  # the latest row whose target is known at t
        p = coefs[src, 0] + np.einsum("ij,ij->i", coefs[src, 1:], Xd[t])
        pred[s.start + t] = p
    return pred


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """The classification metrics the models report, for a baseline."""
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=[DOWN, FLAT, UP], zero_division=0)),
    }


def baseline_scores(
    frame: pl.DataFrame,
    train: np.ndarray,
    test: np.ndarray,
    labels,
    alphas: list[float],
    features: tuple[str, ...] = ("ofi_1", "queue_imbalance", "depth_imbalance", "signed_volume"),
    alpha_ofi: float = 0.9,
    alpha_rls: float = 0.999,
) -> dict:
    """Scores on ``test`` rows for each horizon: the majority class of the training labels, the EW-OFI sign and
    the EW regression forecast. ``alphas``: the fold's label thresholds per horizon (from training rows)."""
    out = {}
    for k, a in zip(labels.horizons, alphas, strict=True):
        y = classify(frame[labels.target(k)].to_numpy().astype(float), a, labels.binary)
        ytr, yte = y[train], y[test]
        majority = np.bincount(ytr[ytr >= 0], minlength=3).argmax()
        rls = classify(
            np.nan_to_num(rls_forecast(frame, list(features), labels.target(k), k, alpha_rls)), a, labels.binary
        )
        out[str(k)] = {
            "majority": score(yte, np.full(len(yte), majority)),
            "ew_ofi_sign": score(yte, ofi_sign_forecast(frame, alpha_ofi, train, ytr)[test]),
            "ew_regression": score(yte, rls[test]),
        }
    return out
