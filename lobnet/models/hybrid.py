"""Hybrid TCN -> Transformer: a causal TCN front end extracts local patterns (a few events), and its output
sequence feeds a causal Transformer for longer-range dependencies across the window."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lobnet.models.base import Heads, LOBModel
from lobnet.models.tcn import TCNEncoder
from lobnet.models.transformer import CausalTransformer, TransformerConfig


@dataclass
class HybridConfig:
    n_features: int = 40  # F, set from the data
    n_horizons: int = 3  # H
    task: str = "classification"  # classification (class and position heads) | regression (one value)
    tcn_channels: int = 48
    tcn_levels: int = 3  # receptive field 1 + 2 (k-1)(2**levels - 1) = 29 events at k = 3
    kernel_size: int = 3
    d_model: int = 48
    n_heads: int = 4
    layers: int = 1
    mlp_ratio: int = 2
    dropout: float = 0.1
    max_len: int = 512
    positions: str = "rotary"  # rotary | sinusoidal | learned (see transformer.py)
    dt_index: int = -1  # column of log_dt, or -1


class HybridModel(LOBModel):
    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.cfg = cfg
        self.tcn = TCNEncoder(cfg.n_features, cfg.tcn_channels, cfg.tcn_levels, cfg.kernel_size, cfg.dropout, True)
        tcfg = TransformerConfig(
            n_features=cfg.tcn_channels,
            n_horizons=cfg.n_horizons,
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            layers=cfg.layers,
            mlp_ratio=cfg.mlp_ratio,
            dropout=cfg.dropout,
            max_len=cfg.max_len,
            positions=cfg.positions,
            dt_index=cfg.dt_index,
        )
        self.tf = CausalTransformer(cfg.tcn_channels, tcfg)
        self.heads = Heads(cfg.d_model, cfg.n_horizons, cfg.task)

    def encode(self, x: torch.Tensor, span: int | None = None) -> torch.Tensor:
        dt = x[..., self.cfg.dt_index] if self.cfg.dt_index >= 0 else None
        return self.tf(self.tcn(x), dt, span)  # (B, W, tcn_channels) -> (B, W, d_model)
