"""Temporal convolutional network (Bai, Kolter & Koltun 2018; locuslab's tcn.py): causal dilated residual
blocks, dilations doubling per block, left padding so step t never sees t+1."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from lobnet.models.base import Heads, LOBModel


@dataclass
class TCNConfig:
    n_features: int = 40  # F, set from the data
    n_horizons: int = 3  # H
    task: str = "classification"  # classification (class and position heads) | regression (one value)
    channels: int = 48  # width of every block
    levels: int = 5  # blocks; dilation of block i is 2**i
    kernel_size: int = 3
    dropout: float = 0.1
    weight_norm: bool = True  # torch.nn.utils.parametrizations.weight_norm on every conv


class CausalConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, dilation: int, wn: bool):
        super().__init__()
        self.pad = (k - 1) * dilation
        conv = nn.Conv1d(c_in, c_out, k, dilation=dilation)
        self.conv = weight_norm(conv) if wn else conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, W)
        return self.conv(F.pad(x, (self.pad, 0)))  # left padding only: causal, length kept


class TemporalBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, dilation: int, dropout: float, wn: bool):
        super().__init__()
        self.conv1 = CausalConv(c_in, c_out, k, dilation, wn)
        self.conv2 = CausalConv(c_out, c_out, k, dilation, wn)
        self.drop = nn.Dropout(dropout)
        self.down = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()  # residual 1x1

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, W)
        h = self.drop(F.relu(self.conv1(x)))
        h = self.drop(F.relu(self.conv2(h)))
        return F.relu(h + self.down(x))


class TCNEncoder(nn.Module):
    """(B, W, F) -> (B, W, channels)."""

    def __init__(self, n_in: int, channels: int, levels: int, k: int, dropout: float, wn: bool):
        super().__init__()
        self.blocks = nn.Sequential(
            *[TemporalBlock(n_in if i == 0 else channels, channels, k, 2**i, dropout, wn) for i in range(levels)]
        )
        self.receptive_field = 1 + 2 * (k - 1) * (2**levels - 1)  # two convs per block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)  # (B, W, C)


class TCNModel(LOBModel):
    def __init__(self, cfg: TCNConfig):
        super().__init__()
        self.cfg = cfg
        self.tcn = TCNEncoder(cfg.n_features, cfg.channels, cfg.levels, cfg.kernel_size, cfg.dropout, cfg.weight_norm)
        self.heads = Heads(cfg.channels, cfg.n_horizons, cfg.task)

    @property
    def receptive_field(self) -> int:
        """Events the last step can see: 1 + 2 (k - 1) (2**levels - 1)."""
        return self.tcn.receptive_field

    def check_window(self, window: int) -> None:
        if self.receptive_field < window:
            warnings.warn(
                f"TCN receptive field {self.receptive_field} is shorter than the window {window}: the "
                "oldest events never reach the output (add levels or widen the kernel)",
                stacklevel=2,
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.tcn(x)
