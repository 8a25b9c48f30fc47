"""DeepLOB (Zhang, Zohren & Roberts 2019): convolutions over each level's (price, size) pairs, an inception
module, and an LSTM. The reference model users compare against.

Input: the ``book`` feature group, 4L columns in LOBSTER's order (ask distance, ask size, bid distance, bid
size per level), chosen from the feature matrix by ``book_columns``. Differences from the paper, both for
causality: every convolution along time is padded on the left only (the original's 'same' padding lets step
t see t+1 and t+2), and the inception's max-pooling looks back only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from lobnet.models.base import Heads, LOBModel


@dataclass
class DeepLOBConfig:
    n_features: int = 40  # F, set from the data
    n_horizons: int = 3  # H
    task: str = "classification"  # classification (class and position heads) | regression (one value)
    levels: int = 10  # L: the book has 4L columns
    book_columns: list[int] = field(default_factory=list)  # indices of the 4L book columns; empty = the first 4L
    conv_channels: int = 32  # the paper's 32 filters
    inception_channels: int = 64  # per inception branch (3 branches)
    lstm_hidden: int = 64


class TimeConv(nn.Module):
    """Conv2d with kernel (k, 1) along time, left-padded: causal."""

    def __init__(self, c: int, k: int):
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(c, c, (k, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, W)
        return self.conv(F.pad(x, (0, 0, self.k - 1, 0)))


def _stage(c_in: int, c: int, width: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c, (1, width), stride=(1, stride)),
        nn.LeakyReLU(0.01),
        nn.BatchNorm2d(c),
        TimeConv(c, 4),
        nn.LeakyReLU(0.01),
        nn.BatchNorm2d(c),
        TimeConv(c, 4),
        nn.LeakyReLU(0.01),
        nn.BatchNorm2d(c),
    )


class Inception(nn.Module):
    def __init__(self, c_in: int, c: int):
        super().__init__()
        self.b3 = nn.Sequential(nn.Conv2d(c_in, c, 1), nn.LeakyReLU(0.01), TimeConv(c, 3), nn.LeakyReLU(0.01))
        self.b5 = nn.Sequential(nn.Conv2d(c_in, c, 1), nn.LeakyReLU(0.01), TimeConv(c, 5), nn.LeakyReLU(0.01))
        self.bp = nn.Sequential(nn.Conv2d(c_in, c, 1), nn.LeakyReLU(0.01))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, 1)
        pooled = F.max_pool2d(F.pad(x, (0, 0, 2, 0), value=float("-inf")), (3, 1), stride=1)  # causal max over 3
        return torch.cat([self.b3(x), self.b5(x), self.bp(pooled)], dim=1)  # (B, 3c, T, 1)


class DeepLOBModel(LOBModel):
    def __init__(self, cfg: DeepLOBConfig):
        super().__init__()
        self.cfg = cfg
        cols = cfg.book_columns or list(range(4 * cfg.levels))
        if len(cols) != 4 * cfg.levels:
            raise ValueError(
                f"DeepLOB needs 4 x {cfg.levels} book columns, got {len(cols)} (add the 'book' feature group)"
            )
        self.register_buffer("cols", torch.tensor(cols, dtype=torch.long), persistent=False)
        c = cfg.conv_channels
        self.conv = nn.Sequential(
            _stage(1, c, 2, 2),  # (price, size) pairs: 4L -> 2L
            _stage(c, c, 2, 2),  # ask and bid of a level: 2L -> L
            _stage(c, c, cfg.levels, 1),  # all levels: L -> 1
        )
        self.inception = Inception(c, cfg.inception_channels)
        self.lstm = nn.LSTM(3 * cfg.inception_channels, cfg.lstm_hidden, batch_first=True)
        self.heads = Heads(cfg.lstm_hidden, cfg.n_horizons, cfg.task)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        book = x.index_select(-1, self.cols).unsqueeze(1)  # (B, 1, W, 4L)
        h = self.inception(self.conv(book))  # (B, 3c, W, 1)
        h, _ = self.lstm(h.squeeze(-1).transpose(1, 2))  # (B, W, lstm_hidden)
        return h
