"""Evaluation metrics for direction forecasts and the positions they imply, per horizon.

Classification (scikit-learn): accuracy, macro-F1, weighted-F1, per-class precision and recall, one-vs-rest
PR-AUC (average precision), MCC, and beside them the *majority floor*: the same scores for always predicting the
split's most common class.

Trading: a position per sample, from the model's position head (Sharpe-trained models) or the sign of the
predicted class (up +1, down -1, flat 0). PnL r_t = p_t R_t - c |p_t - p_{t-1}| with R the future log return over
the horizon. ``sharpe`` is mean(r) / std(r) per sample; ``sharpe_per_day`` scales it by sqrt(events per day / k),
the number of non-overlapping k-event holding periods in a day. Hit rate: the share of non-zero positions whose
sign matches R. Turnover: mean |p_t - p_{t-1}|.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
)

from lobnet.evaluation.backtest import positions_from_classes
from lobnet.prep.labels import CLASS_NAMES


def classification_metrics(y: np.ndarray, prob: np.ndarray, classes: tuple[int, ...] = (0, 1, 2)) -> dict[str, float]:
    """y (N,) in ``classes`` (:attr:`lobnet.prep.labels.LabelConfig.classes`: all three, or down and up for binary
    labels, whose F1 averages over those two); prob (N, 3) class probabilities."""
    pred = prob.argmax(axis=1)
    labels = list(classes)
    out = {
        "accuracy": accuracy_score(y, pred),
        "macro_f1": f1_score(y, pred, average="macro", labels=labels, zero_division=0),
        "weighted_f1": f1_score(y, pred, average="weighted", labels=labels, zero_division=0),
        "mcc": matthews_corrcoef(y, pred) if len(np.unique(np.concatenate([y, pred]))) > 1 else 0.0,
    }
    prec, rec, _, _ = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for i, c in enumerate(labels):
        name = CLASS_NAMES[c]
        out[f"precision_{name}"] = prec[i]
        out[f"recall_{name}"] = rec[i]
        present = (y == c).any()
        out[f"pr_auc_{name}"] = average_precision_score(y == c, prob[:, c]) if present else float("nan")
    majority = np.bincount(y, minlength=3).argmax()
    maj = np.full_like(y, majority)
    out["majority_accuracy"] = accuracy_score(y, maj)
    out["majority_f1"] = f1_score(y, maj, average="macro", labels=labels, zero_division=0)
    return {k: float(v) for k, v in out.items()}


def trading_metrics(
    position: np.ndarray, future_return: np.ndarray, cost: float, horizon: int, events_per_day: float
) -> dict[str, float]:
    """position, future_return: (N,) in time order."""
    turnover = np.abs(np.diff(position, prepend=position[:1]))
    gross = position * future_return
    net = gross - cost * turnover
    scale = np.sqrt(max(events_per_day / horizon, 1.0))

    def sharpe(r):
        s = r.std()
        return float(r.mean() / s) if s > 0 else 0.0

    active = position != 0
    hit = float((np.sign(position[active]) == np.sign(future_return[active])).mean()) if active.any() else float("nan")
    return {
        "gross_sharpe": sharpe(gross) * scale,
        "net_sharpe": sharpe(net) * scale,
        "gross_sharpe_per_sample": sharpe(gross),
        "hit_rate": hit,
        "turnover": float(turnover.mean()),
        "mean_net_return": float(net.mean()),
    }


def forecast_positions(prob: np.ndarray, position: np.ndarray, loss_kind: str, flat: str = "close") -> np.ndarray:
    """The positions a model's forecasts (N, 3 class probabilities; N position-head outputs) stand for: the
    position head for Sharpe-trained models, else the predicted class, up +1 and down -1, a flat forecast closing
    the position or holding it (``flat``, :func:`lobnet.evaluation.backtest.positions_from_classes`)."""
    if loss_kind != "ce":
        return position
    return positions_from_classes(prob.argmax(axis=1), flat)
