"""Causal Transformer: hand-written pre-norm blocks with ``F.scaled_dot_product_attention(is_causal=True)``
(not nn.TransformerEncoder, whose ONNX export bakes in the length), learned or sinusoidal positions, and an
encoding of the time gap between events (tick data is irregular) from the ``log_dt`` feature."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Heads, LOBModel


@dataclass
class TransformerConfig:
    n_features: int = 40  # F, set from the data
    n_horizons: int = 3  # H
    d_model: int = 64
    n_heads: int = 4
    layers: int = 2
    mlp_ratio: int = 2  # MLP width = mlp_ratio * d_model
    dropout: float = 0.1
    max_len: int = 512  # longest window (learned positions)
    positions: str = "sinusoidal"  # sinusoidal | learned
    dt_index: int = -1  # column of log_dt in the features, or -1 for none


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, n_heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


def sinusoidal(max_len: int, d: int) -> torch.Tensor:
    pos = torch.arange(max_len).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
    pe = torch.zeros(max_len, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


class CausalTransformer(nn.Module):
    """(B, W, n_in) -> (B, W, d_model); also the back end of the hybrid model."""

    def __init__(self, n_in: int, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(n_in, cfg.d_model)
        if cfg.positions == "learned":
            self.pos = nn.Parameter(torch.zeros(cfg.max_len, cfg.d_model))
            nn.init.normal_(self.pos, std=0.02)
        elif cfg.positions == "sinusoidal":
            self.register_buffer("pos", sinusoidal(cfg.max_len, cfg.d_model), persistent=False)
        else:
            raise ValueError(f"positions must be sinusoidal or learned, not {cfg.positions!r}")
        self.dt = nn.Linear(1, cfg.d_model) if cfg.dt_index >= 0 else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            [Block(cfg.d_model, cfg.n_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.layers)]
        )
        self.ln = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        h = self.inp(x) + self.pos[:T]  # (B, T, d)
        if self.dt is not None and dt is not None:
            h = h + self.dt(dt.unsqueeze(-1))  # time-gap encoding, (B, T, d)
        h = self.drop(h)
        for blk in self.blocks:
            h = blk(h)
        return self.ln(h)


class TransformerModel(LOBModel):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.tf = CausalTransformer(cfg.n_features, cfg)
        self.heads = Heads(cfg.d_model, cfg.n_horizons)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        dt = x[..., self.cfg.dt_index] if self.cfg.dt_index >= 0 else None
        return self.tf(x, dt)
