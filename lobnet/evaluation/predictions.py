"""A fold's test predictions, logged with every fold run (deep model or baseline) as ``predictions.npz``, so that
``lobnet-compare`` can pair any two models on the same test samples (bootstrap intervals, Diebold–Mariano, SPA,
the model confidence set, decay with distance from training) through MLflow's API alone.

Arrays: ``rows`` (N,) the samples' last-event rows in the prepared table; ``y`` (N, H) true classes; ``prob``
(N, H, 3) class probabilities; ``position`` (N, H) the traded position; ``returns`` (N, H) the future log return
over each horizon; ``unit`` (N,) the test unit (day or block) the sample lies in, counted from the end of training
(the validation unit is 1, so the first test unit is 2); ``horizons`` (H,); ``cost`` the per-unit-turnover cost of
the trading metrics; ``classes`` the label's classes (:attr:`lobnet.prep.labels.LabelConfig.classes`: 0, 2 for
binary labels), which macro-F1 averages over (absent from older files: all three).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PREDICTIONS = "predictions.npz"
KEYS = ("rows", "y", "prob", "position", "returns", "unit", "horizons", "cost")


def test_units(rows: np.ndarray, test_starts: tuple[int, ...]) -> np.ndarray:
    """The unit of each test row counted from the end of training: 2 for the first test unit (after the one
    validation unit), 3 for the next, ... (all 2 when the test period is one unit)."""
    if not test_starts:
        return np.full(len(rows), 2, dtype=np.int16)
    return (1 + np.searchsorted(np.asarray(test_starts), rows, side="right")).astype(np.int16)


def save(path: Path, rows, y, prob, position, returns, unit, horizons, cost: float, classes=(0, 1, 2)) -> Path:
    np.savez_compressed(
        path,
        rows=np.asarray(rows, dtype=np.int64),
        y=np.asarray(y, dtype=np.int8),
        prob=np.asarray(prob, dtype=np.float32),
        position=np.asarray(position, dtype=np.float32),
        returns=np.asarray(returns, dtype=np.float32),
        unit=np.asarray(unit, dtype=np.int16),
        horizons=np.asarray(horizons, dtype=np.int64),
        cost=np.float64(cost),
        classes=np.asarray(classes, dtype=np.int64),
    )
    return path


def load(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a ``predictions.npz`` (no pickles: ``allow_pickle=False``); a file that lacks one is an
    error naming it."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: not a lobnet predictions file (missing {', '.join(missing)})")
        out = {k: z[k] for k in KEYS}
        out["classes"] = z["classes"] if "classes" in z.files else np.arange(3)
        return out
