"""Stacked LSTM with dropout between layers; the heads read the last step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from lobnet.models.base import Heads, LOBModel


@dataclass
class LSTMConfig:
    n_features: int = 40  # F, set from the data
    n_horizons: int = 3  # H
    task: str = "classification"  # classification (class and position heads) | regression (one value)
    hidden: int = 64  # units per layer
    layers: int = 2  # stacked layers
    dropout: float = 0.1  # between layers (not after the last)


class LSTMModel(LOBModel):
    def __init__(self, cfg: LSTMConfig):
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(
            cfg.n_features, cfg.hidden, cfg.layers, batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0
        )
        self.heads = Heads(cfg.hidden, cfg.n_horizons, cfg.task)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)  # (B, W, hidden); a recurrence is causal by construction
        return h
