"""Causal Transformer: hand-written pre-norm blocks with ``F.scaled_dot_product_attention`` (not
nn.TransformerEncoder, whose ONNX export bakes in the length), and an encoding of the time gap between events
(tick data is irregular) from the ``log_dt`` feature.

Positions are rotary by default (RoFormer, Su et al. 2021): queries and keys are rotated by their position, so an
attention score depends on the distance between two events only, not on where the window starts. That is what
lets the streamer keep a key/value cache: a cached key stays valid as the window slides
(:mod:`lobnet.models.streaming`). Learned or sinusoidal positions added to the input remain available, but tie
every key to the window's first event, so those models stream through the full-window fallback.

``span`` (the attention span, default: unlimited) limits each event to the last ``span`` events of its layer's
input. Training windows are never longer than the span, so it changes nothing there; it defines what the model
computes over a whole day, the sequence the streamer's cache reproduces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lobnet.models.base import Heads, LOBModel


@dataclass
class TransformerConfig:
    n_features: int = 40  # F, set from the data
    n_horizons: int = 3  # H
    task: str = "classification"  # classification (class and position heads) | regression (one value)
    d_model: int = 64
    n_heads: int = 4
    layers: int = 2
    mlp_ratio: int = 2  # MLP width = mlp_ratio * d_model
    dropout: float = 0.1
    max_len: int = 512  # longest window (learned positions)
    positions: str = "rotary"  # rotary (relative: streamable) | sinusoidal | learned (absolute)
    dt_index: int = -1  # column of log_dt in the features, or -1 for none


def rotary_frequencies(head_size: int, device=None) -> torch.Tensor:
    """The rotation frequencies of each (first half, second half) pair, (head_size // 2,) float64."""
    return 10000.0 ** (-torch.arange(0, head_size, 2, dtype=torch.float64, device=device) / head_size)


def rotary_tables(positions: torch.Tensor, head_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position x frequency, (len(positions), head_size // 2) float32, computed in float64 so that
    long sequences keep their precision (the streamer rotates by an event's position in the whole day)."""
    angle = positions.to(torch.float64).unsqueeze(1) * rotary_frequencies(head_size, positions.device)
    return angle.cos().float(), angle.sin().float()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (first half, second half) pair of the last dimension: (..., T, hs) with tables (T, hs/2)."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def banded_mask(T: int, span: int, device=None) -> torch.Tensor:
    """Boolean (T, T): event i attends to events i - span + 1 .. i."""
    i = torch.arange(T, device=device)
    d = i.unsqueeze(1) - i.unsqueeze(0)
    return (d >= 0) & (d < span)


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int, dropout: float, rotary: bool = False):
        super().__init__()
        if rotary and (d // n_heads) % 2:
            raise ValueError(f"rotary positions need an even head size, got d_model {d} / {n_heads} heads")
        self.n_heads, self.dropout, self.rotary = n_heads, dropout, rotary
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def _qkv(self, x: torch.Tensor, rot) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if rot is not None:
            q, k = rotate(q, *rot), rotate(k, *rot)
        return q, k, v

    def weights(self, x: torch.Tensor, rot=None) -> torch.Tensor:
        """The causal attention weights (B, nh, T, T), for plots."""
        q, k, _ = self._qkv(x, rot)
        T = x.shape[1]
        att = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        return att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf")).softmax(-1)

    def forward(self, x: torch.Tensor, rot=None, span: int | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self._qkv(x, rot)
        p = self.dropout if self.training else 0.0
        if span is not None and T > span:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=banded_mask(T, span, x.device), dropout_p=p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int, mlp_ratio: int, dropout: float, rotary: bool = False):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, n_heads, dropout, rotary)
        self.mlp = nn.Sequential(
            nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, rot=None, span: int | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), rot, span)
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
        self.head_size = cfg.d_model // cfg.n_heads
        if cfg.positions == "rotary":
            cos, sin = rotary_tables(torch.arange(cfg.max_len), self.head_size)
            self.register_buffer("rot_cos", cos, persistent=False)
            self.register_buffer("rot_sin", sin, persistent=False)
            self.pos = None
        elif cfg.positions == "learned":
            self.pos = nn.Parameter(torch.zeros(cfg.max_len, cfg.d_model))
            nn.init.normal_(self.pos, std=0.02)
        elif cfg.positions == "sinusoidal":
            self.register_buffer("pos", sinusoidal(cfg.max_len, cfg.d_model), persistent=False)
        else:
            raise ValueError(f"positions must be rotary, sinusoidal or learned, not {cfg.positions!r}")
        self.dt = nn.Linear(1, cfg.d_model) if cfg.dt_index >= 0 else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            [Block(cfg.d_model, cfg.n_heads, cfg.mlp_ratio, cfg.dropout, self.pos is None) for _ in range(cfg.layers)]
        )
        self.ln = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, dt: torch.Tensor | None = None, span: int | None = None) -> torch.Tensor:
        T = x.shape[1]
        h = self.inp(x)  # (B, T, d)
        rot = None
        if self.pos is not None:
            h = h + self.pos[:T]
        elif T <= self.cfg.max_len:
            rot = self.rot_cos[:T], self.rot_sin[:T]
        else:  # a whole day, beyond the tables (never in training or export)
            rot = rotary_tables(torch.arange(T, device=x.device), self.head_size)
        if self.dt is not None and dt is not None:
            h = h + self.dt(dt.unsqueeze(-1))  # time-gap encoding, (B, T, d)
        h = self.drop(h)
        for blk in self.blocks:
            h = blk(h, rot, span)
        return self.ln(h)


class TransformerModel(LOBModel):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.tf = CausalTransformer(cfg.n_features, cfg)
        self.heads = Heads(cfg.d_model, cfg.n_horizons, cfg.task)

    def encode(self, x: torch.Tensor, span: int | None = None) -> torch.Tensor:
        dt = x[..., self.cfg.dt_index] if self.cfg.dt_index >= 0 else None
        return self.tf(x, dt, span)
