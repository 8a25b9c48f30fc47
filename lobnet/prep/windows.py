"""Windows over the feature matrix, train-only normalisation, and the Lightning DataModule for one fold.

The feature matrix is one contiguous float32 tensor (N events x F features). A sample is the row t of its last
event; ``WindowDataset[i]`` returns ``X[t-W+1 : t+1]`` as a *view* (no copy), so all windows are never
materialised: memory is the matrix (plus one normalised copy per fold) and one batch at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning.pytorch as L
import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lobnet.prep.labels import LabelConfig, labels_for_fold
from lobnet.prep.normalization import ZScore, rolling_zscore  # noqa: F401 - re-exported: the fold's normalisation
from lobnet.prep.splits import Fold
from lobnet.prep.targets import TARGET, TargetConfig, TargetScale
from lobnet.train.losses import ContiguousBatchSampler


def feature_matrix(frame: pl.DataFrame, names: list[str]) -> np.ndarray:
    """(N, F) float32, C-contiguous; nulls (warm-up rows, unoccupied levels) become NaN. Filled one column at a
    time, so building it costs the matrix and one column, not several copies of the frame."""
    X = np.empty((frame.height, len(names)), dtype=np.float32)
    for j, c in enumerate(names):
        X[:, j] = frame[c].to_numpy()  # zero-copy for a Float64 column without nulls; nulls read as NaN
    return X


def rows_read(samples: np.ndarray, window: int, n_rows: int) -> np.ndarray:
    """Boolean mask of the rows read by the input windows of ``samples``."""
    diff = np.zeros(n_rows + 1, dtype=np.int64)
    np.add.at(diff, samples - window + 1, 1)
    np.add.at(diff, samples + 1, -1)
    return np.cumsum(diff[:-1]) > 0


class WindowDataset(Dataset):
    """(window (W, F), class labels (H,), future log returns (H,)) for each sample row t; for a regression target
    (:meth:`FoldData.build_regression`), (window, the scaled target (1,), the target in its own units (1,))."""

    def __init__(self, X: torch.Tensor, samples: np.ndarray, window: int, y: torch.Tensor, returns: torch.Tensor):
        if X.dim() != 2 or not X.is_contiguous():
            raise ValueError("X must be a contiguous (N, F) tensor")
        if samples.size and (samples.min() < window - 1 or samples.max() >= X.shape[0]):
            raise ValueError("sample rows fall outside the matrix")
        self.X, self.window, self.y, self.returns = X, window, y, returns
        self.samples = torch.as_tensor(samples, dtype=torch.long)

    def __len__(self) -> int:
        return int(self.samples.numel())

    def __getitem__(self, i: int):
        t = int(self.samples[i])
        return self.X[t - self.window + 1 : t + 1], self.y[t], self.returns[t]


@dataclass
class FoldData:
    """Everything one fold needs: normalised matrix, labels with train-fitted thresholds, three datasets."""

    train: WindowDataset
    val: WindowDataset
    test: WindowDataset
    alphas: list[float]
    zscore: ZScore | None
    feature_names: list[str]
    horizons: tuple[int, ...]
    scale: TargetScale | None = None  # a regression target's training-fold scale (None: class labels)

    @classmethod
    def build(
        cls,
        frame: pl.DataFrame,
        feature_names: list[str],
        fold: Fold,
        labels: LabelConfig,
        window: int,
        normalization: str = "train_zscore",
        rolling_window: int = 1000,
        X_raw: np.ndarray | None = None,
    ) -> FoldData:
        n = frame.height
        z, X = _normalised(frame, feature_names, fold, window, normalization, rolling_window, X_raw)
        H = len(labels.horizons)
        y_np, r_np = np.empty((n, H), dtype=np.int64), np.empty((n, H), dtype=np.float32)
        alphas = labels_for_fold(frame, fold.train, labels, y_out=y_np, r_out=r_np)[0]
        np.nan_to_num(r_np, copy=False)
        y, r = torch.from_numpy(y_np), torch.from_numpy(r_np)

        def ds(samples: np.ndarray) -> WindowDataset:
            ok = (y[samples] >= 0).all(dim=1).numpy() if samples.size else np.zeros(0, dtype=bool)
            return WindowDataset(X, samples[ok], window, y, r)

        return cls(ds(fold.train), ds(fold.val), ds(fold.test), alphas, z, list(feature_names), tuple(labels.horizons))

    @classmethod
    def build_regression(
        cls,
        frame: pl.DataFrame,
        feature_names: list[str],
        fold: Fold,
        target: TargetConfig,
        window: int,
        normalization: str = "train_zscore",
        rolling_window: int = 1000,
        X_raw: np.ndarray | None = None,
    ) -> FoldData:
        """The fold for a regression target (a table from :func:`lobnet.prep.prepared.prepare` with
        ``labels`` a :class:`~lobnet.prep.targets.TargetConfig`): the same windows and normalisation, ``y`` the
        target scaled on the training samples (:class:`~lobnet.prep.targets.TargetScale`), ``returns`` the target
        itself; samples whose target is unknown are not samples."""
        z, X = _normalised(frame, feature_names, fold, window, normalization, rolling_window, X_raw)
        raw = frame[TARGET].to_numpy().astype(np.float64)
        scale = TargetScale.fit(raw[fold.train], target.loss)
        known = np.isfinite(raw)
        y = torch.from_numpy(np.nan_to_num(scale.apply(raw)).astype(np.float32)[:, None])
        r = torch.from_numpy(np.nan_to_num(raw).astype(np.float32)[:, None])

        def ds(samples: np.ndarray) -> WindowDataset:
            return WindowDataset(X, samples[known[samples]], window, y, r)

        return cls(ds(fold.train), ds(fold.val), ds(fold.test), [], z, list(feature_names), target.horizons, scale)


def _normalised(frame, feature_names, fold: Fold, window: int, normalization: str, rolling_window: int, X_raw):
    """The fold's normalisation (fitted on the rows its training windows read) and the normalised matrix as a
    tensor. A matrix built here is normalised in place: one matrix in memory, not two."""
    own = X_raw is None
    X_raw = feature_matrix(frame, feature_names) if own else X_raw
    if normalization == "train_zscore":
        z = ZScore.fit(X_raw, rows_read(fold.train, window, frame.height))
        Xn = z.apply(X_raw, inplace=own)
    elif normalization == "rolling_zscore":
        z, Xn = None, rolling_zscore(frame, feature_names, rolling_window)
    else:
        raise ValueError(f"normalization must be train_zscore or rolling_zscore, not {normalization!r}")
    return z, torch.from_numpy(Xn)


class EpochShuffle(Sampler[int]):
    """A random permutation drawn from (seed, epoch): Lightning calls ``set_epoch`` before every epoch, so a run
    resumed from a checkpoint sees exactly the batches the uninterrupted run saw."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(np.random.default_rng((self.seed, self.epoch)).permutation(self.n).tolist())


class LOBDataModule(L.LightningDataModule):
    """Train/val/test loaders for one fold. Training batches are shuffled samples, or (``contiguous``, for the
    Sharpe loss) runs of consecutive samples in shuffled order; evaluation keeps time order."""

    def __init__(
        self, data: FoldData, batch_size: int = 256, num_workers: int = 0, seed: int = 0, contiguous: bool = False
    ):
        super().__init__()
        self.data, self.batch_size, self.num_workers, self.seed = data, batch_size, num_workers, seed
        self.contiguous = contiguous

    def train_dataloader(self) -> DataLoader:
        if self.contiguous:
            bs = ContiguousBatchSampler(len(self.data.train), self.batch_size, shuffle=True, seed=self.seed)
            return DataLoader(self.data.train, batch_sampler=bs, num_workers=self.num_workers)
        sampler = EpochShuffle(len(self.data.train), self.seed)
        return DataLoader(
            self.data.train,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )  # leaves the global generator alone

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.data.val, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.data.test, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)
