"""What every lobnet model shares: a causal sequence encoder and per-horizon heads.

Input (B, W, F): a window of W events with F features. A model's ``encode`` maps it to (B, W, C), where the
output at step t depends on inputs at steps <= t only (tested for every model). The heads read every step:

* ``logits`` (B, W, H, 3): down / flat / up per horizon;
* ``position`` (B, W, H): a position in (-1, 1) per horizon (tanh), what the Sharpe loss trades.

``forward`` returns the last step's (logits (B, H, 3), position (B, H)): tensor in, tensors out, so the models
export to ONNX as they are.

A model built with ``task="regression"`` (trained on a target of :mod:`lobnet.prep.targets`) has one head
instead, ``prediction`` (B, W, H): a linear value in the training fold's scaled target units
(:class:`lobnet.prep.targets.TargetScale`); its ``forward`` returns ``(prediction,)``. :attr:`Heads.outputs` names
what a model returns, in order, for export and streaming.
"""

from __future__ import annotations

import torch
import torch.nn as nn

TASKS = ("classification", "regression")
OUTPUTS = {"classification": ("logits", "position"), "regression": ("prediction",)}


class Heads(nn.Module):
    def __init__(self, channels: int, horizons: int, task: str = "classification"):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"a model's task is one of {', '.join(TASKS)}, not {task!r}")
        self.horizons, self.task = horizons, task
        if task == "regression":
            self.reg = nn.Linear(channels, horizons)
        else:
            self.cls = nn.Linear(channels, 3 * horizons)
            self.pos = nn.Linear(channels, horizons)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of what :meth:`forward` returns, in order."""
        return OUTPUTS[self.task]

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.task == "regression":
            return (self.reg(h),)  # (..., H)
        logits = self.cls(h).unflatten(-1, (self.horizons, 3))  # (..., H, 3)
        position = torch.tanh(self.pos(h))  # (..., H)
        return logits, position


class LOBModel(nn.Module):
    """Subclasses set ``self.heads`` and implement ``encode``."""

    heads: Heads

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # (B, W, F) -> (B, W, C)
        raise NotImplementedError

    def forward_sequence(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Outputs at every step: logits (B, W, H, 3), position (B, W, H) (regression: prediction (B, W, H))."""
        return self.heads(self.encode(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The last step's outputs: logits (B, H, 3), position (B, H) (regression: prediction (B, H))."""
        h = self.encode(x)[:, -1]  # (B, C)
        return self.heads(h)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
