"""Losses: cross-entropy over the horizons, a differentiable Sharpe ratio that charges for turnover, and their
combination. Selected by ``loss=ce|sharpe|ce_sharpe``.

Sharpe loss: per sample t of a *time-contiguous* batch, position p_t in (-1, 1) (the model's tanh head) earns
r_t = p_t R_t - c |p_t - p_{t-1}|, R_t the future mid log return over the horizon and c the cost per unit of
turnover (default: half the average spread in return units, from the training fold). The loss is
-mean(r) / (std(r) + eps). The first sample of a batch pays no turnover: the batch does not know the position
held before it. Batches must be contiguous in time for turnover and the Sharpe estimate to mean anything:
:class:`ContiguousBatchSampler`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Sampler

from lobnet.card import LOSS_KINDS


def class_weights(labels: np.ndarray | torch.Tensor, n_classes: int = 3) -> torch.Tensor:
    """Inverse-frequency weights per horizon from the training fold's labels (N, H) -> (H, n_classes), each row
    averaging 1 over the classes present."""
    y = torch.as_tensor(labels)
    y = y.unsqueeze(1) if y.dim() == 1 else y
    w = torch.zeros(y.shape[1], n_classes)
    for h in range(y.shape[1]):
        counts = torch.bincount(y[:, h][y[:, h] >= 0], minlength=n_classes).float()
        inv = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp(min=1)), torch.zeros_like(counts))
        w[h] = inv
    return w


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over horizons of the (optionally class-weighted) cross-entropy. logits (B, H, 3), y (B, H)."""
    losses = [
        F.cross_entropy(logits[:, h], y[:, h], weight=None if weights is None else weights[h].to(logits))
        for h in range(logits.shape[1])
    ]
    return torch.stack(losses).mean()


def strategy_returns(position: torch.Tensor, returns: torch.Tensor, cost: float | torch.Tensor) -> torch.Tensor:
    """r_t = p_t R_t - c |p_t - p_{t-1}| along the batch (time) dimension; (B, H) -> (B, H)."""
    turnover = torch.zeros_like(position)
    turnover[1:] = (position[1:] - position[:-1]).abs()
    return position * returns - cost * turnover


def sharpe_loss(
    position: torch.Tensor, returns: torch.Tensor, cost: float | torch.Tensor = 0.0, eps: float = 1e-8
) -> torch.Tensor:
    """Negative Sharpe ratio of the per-sample PnL, averaged over horizons. position, returns: (B, H)."""
    r = strategy_returns(position, returns, cost)
    return (-(r.mean(dim=0) / (r.std(dim=0, unbiased=False) + eps))).mean()


@dataclass(frozen=True)
class LossSettings:
    """The loss a model trains with (``conf/loss``, built by ``_target_`` like a model)."""

    kind: str = "ce"  # ce | sharpe | ce_sharpe
    lam: float = 0.5  # weight of the Sharpe term in ce_sharpe
    class_weights: bool = True  # inverse-frequency class weights from the training fold
    cost: float | None = None  # per unit of turnover; None: half the training fold's average relative spread


class LobLoss(torch.nn.Module):
    """``kind``: ce | sharpe | ce_sharpe (CE + lam x Sharpe)."""

    def __init__(self, kind: str = "ce", lam: float = 1.0, cost: float = 0.0, weights: torch.Tensor | None = None):
        super().__init__()
        if kind not in LOSS_KINDS:
            raise ValueError(f"loss must be one of {', '.join(LOSS_KINDS)}, not {kind!r}")
        self.kind, self.lam, self.cost = kind, lam, cost
        self.register_buffer("weights", weights if weights is not None else torch.empty(0), persistent=False)

    def forward(self, logits, position, y, returns) -> torch.Tensor:
        w = self.weights if self.weights.numel() else None
        if self.kind == "ce":
            return cross_entropy(logits, y, w)
        s = sharpe_loss(position, returns, self.cost)
        return s if self.kind == "sharpe" else cross_entropy(logits, y, w) + self.lam * s


def default_cost(spread_rel: np.ndarray) -> float:
    """Half the average relative spread: what crossing half the spread costs per unit of position change."""
    s = spread_rel[np.isfinite(spread_rel)]
    return float(s.mean() / 2) if s.size else 0.0


class ContiguousBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size`` consecutive samples (in time order), the batches themselves in random order.
    Used for the Sharpe loss, whose turnover term compares neighbouring samples."""

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = n, batch_size, shuffle, seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        starts = np.arange(0, self.n, self.batch_size)
        if self.drop_last:
            starts = starts[starts + self.batch_size <= self.n]
        if self.shuffle:  # the order depends on (seed, epoch) only: Lightning sets the epoch, so resumes replay it
            starts = np.random.default_rng((self.seed, self.epoch)).permutation(starts)
        for s in starts:
            yield list(range(int(s), min(int(s) + self.batch_size, self.n)))


def regression_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A regression head's loss on the scaled target (:class:`lobnet.prep.targets.TargetScale`): ``mse``, or
    ``qlike``, the quasi-likelihood of a variance, y / exp(s) + s with s the predicted log variance and y the
    realised variance (both in the training fold's units); its minimum is at exp(s) = E[y]."""
    if kind == "qlike":
        return (y * torch.exp(-out) + out).mean()
    return F.mse_loss(out, y)
