"""Feature normalisation: the training fold's z-score (:class:`ZScore`) and its causal alternative
(:func:`rolling_zscore`). numpy and polars only, so that applying a model's normalisation outside training (a fold's
MLflow model, :mod:`lobnet.tracking.model`) does not import Lightning, which costs seconds.
:mod:`lobnet.prep.windows` re-exports both."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass
class ZScore:
    """Per-feature mean and std, fitted on the training fold's input rows only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, rows: np.ndarray) -> ZScore:
        """``rows``: boolean mask of the training rows. Column by column, in float64, without copying X."""
        mean = np.empty(X.shape[1])
        std = np.empty(X.shape[1])
        for j in range(X.shape[1]):
            col = X[:, j][rows].astype(np.float64)
            col = col[np.isfinite(col)]
            mean[j], std[j] = (col.mean(), col.std()) if col.size else (0.0, 1.0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)  # constant columns pass through centred
        return cls(mean.astype(np.float32), std.astype(np.float32))

    @classmethod
    def from_card(cls, card: dict) -> ZScore | None:
        """The statistics a model card (``model.json``) stores, or None for a model trained with
        ``normalization=rolling_zscore``, which has none."""
        z = card.get("zscore")
        return None if z is None else cls(np.asarray(z["mean"], np.float32), np.asarray(z["std"], np.float32))

    def apply(self, X: np.ndarray, inplace: bool = False) -> np.ndarray:
        """Normalised values (a copy, or X itself when ``inplace``); NaN (undefined values such as
        unoccupied-level gaps) becomes 0, the training mean."""
        out = np.subtract(X, self.mean, out=X if inplace else None, dtype=np.float32)
        np.divide(out, self.std, out=out)
        for j in range(out.shape[1]):  # per column: a whole-matrix mask would briefly cost a quarter matrix
            col = out[:, j]
            col[~np.isfinite(col)] = 0.0
        return out


def rolling_zscore(frame: pl.DataFrame, names: list[str], window: int) -> np.ndarray:
    """Causal alternative to :class:`ZScore`: each value standardised by the mean and std of the previous
    ``window`` events of the same symbol-day, itself included (rows <= t only). No fold statistics needed."""
    day = ["symbol", "date"]
    exprs = []
    for c in names:
        x = pl.col(c).cast(pl.Float64)
        m = x.rolling_mean(window, min_samples=2).over(day)
        s = x.rolling_std(window, min_samples=2).over(day)
        exprs.append(
            pl.when(s > 1e-12).then((x - m) / s).otherwise(0.0).fill_nan(0.0).fill_null(0.0).cast(pl.Float32).alias(c)
        )
    return np.ascontiguousarray(frame.select(exprs).to_numpy(), dtype=np.float32)
