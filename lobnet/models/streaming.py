"""Streaming step modules: one event in, the model's outputs and its new state out, O(1) per event.

Each step module wraps a trained model's own layers (no weights are copied into a second definition) and takes
every piece of state as an explicit input and returns it as an output, so the exported ONNX graph is a pure
function ``(features, *state) -> (logits, position, *new_state)``. The streamer keeps the state between calls: the
next call's state is :func:`carry` of the outputs (buffers come out with the event appended).

The step's input is one event's features z-scored with the training fold's statistics, exactly as the model was
trained (:meth:`lobnet.prep.windows.ZScore.apply`), the same input as the full-window graph's. The streamer's compiled
feature update (:meth:`lobnet.features.incremental.IncrementalFeatures.compiled`) writes them straight into the
graph's bound input: in a one-event graph every node has a fixed cost whatever its size, so the z-score is
cheaper there than as graph nodes.

The ONNX step graph is written from these modules' weights by :mod:`lobnet.live.step_graph` (which says why not by
the exporter); these modules define what it computes.

What a step computes, starting from :meth:`StepModule.initial_state`, equals the model run over the same events
as one sequence from the first (:func:`sequence_outputs`), at every event:

* LSTM: (h, c) per layer, one tensor each (``h0``, ``c0``, ``h1``, ...).
* TCN: per causal convolution, a buffer of its last (kernel - 1) x dilation inputs (flattened, oldest first),
  zeros at the start exactly as the batch model's left padding.
* Transformer (rotary positions): per layer, a key/value cache of the last ``span`` events (a ring: the event at
  position p takes slot p mod span), a mask of the slots written, and the event's position in the day (``pos``,
  float64). Queries and keys are rotated by that absolute position (cos and sin computed in float64), so a cached
  key never changes: a rotary score depends on the distance between two events only, so it is the full window's
  score. ``span`` is the training window: on the first ``span`` events the step equals the full-window graph;
  later, each layer attends to its last ``span`` events (sliding-window attention), and the sequence form uses
  the same band.
* Hybrid: the TCN buffers, then the attention cache.

Over the first W events a step sequence equals the full-window graph on every prefix (``max_abs_diff_step`` in
``export.json``). Beyond W events the step equals the full window exactly when the model's memory fits in the
window (a TCN whose receptive field is at most W, a one-layer Transformer); an LSTM remembers the whole day. The
streamer reports how often the two agree.

DeepLOB and Transformers with absolute (learned, sinusoidal) positions have no step module: the streamer runs
them through the full-window fallback (a ring buffer of the last W events and the full-window graph).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

from lobnet.models.base import LOBModel
from lobnet.models.hybrid import HybridModel
from lobnet.models.lstm import LSTMModel
from lobnet.models.tcn import TCNEncoder, TCNModel
from lobnet.models.transformer import CausalTransformer, TransformerModel, rotary_tables, rotate


class TCNStep(nn.Module):
    """The step of a :class:`TCNEncoder`: two buffers per block, one per causal convolution, each its last
    (kernel - 1) x dilation inputs flattened time-major (oldest first): (pad x C_in,). A step returns each buffer
    with this event's input appended, (pad + 1) x C_in, which is exactly what the convolution reads; the next
    step's buffer is its tail (:func:`carry`)."""

    def __init__(self, tcn: TCNEncoder):
        super().__init__()
        self.blocks = tcn.blocks
        for blk in self.blocks:
            if blk.conv1.pad == 0:
                raise ValueError("a TCN with kernel_size 1 has no temporal state to stream")

    def state_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        out = []
        for i, blk in enumerate(self.blocks):
            conv1, conv2 = blk.conv1, blk.conv2
            out.append((f"tcn{i}_in", (conv1.pad * conv1.conv.in_channels,)))
            out.append((f"tcn{i}_mid", (conv2.pad * conv2.conv.in_channels,)))
        return out

    @staticmethod
    def _last(conv: nn.Conv1d, u: torch.Tensor) -> torch.Tensor:
        """The convolution's output at the newest event of a time-major buffer u (B, (pad + 1) x C_in)."""
        return conv(u.view(u.shape[0], -1, conv.in_channels).transpose(1, 2))[..., 0]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, C_in) -> (B, C), the buffers with this event appended."""
        h, new = x, []
        for i, blk in enumerate(self.blocks):
            u1 = torch.cat([state[2 * i], h], dim=1)  # (B, (pad + 1) C_in): the conv sees exactly one output
            a = F.relu(self._last(blk.conv1.conv, u1))
            u2 = torch.cat([state[2 * i + 1], a], dim=1)
            b = F.relu(self._last(blk.conv2.conv, u2))
            h = F.relu(b + blk.down(h.unsqueeze(-1)).squeeze(-1))
            new += [u1, u2]
        return h, new


class AttentionStep(nn.Module):
    """The step of a rotary :class:`CausalTransformer` with a key/value cache of ``span`` events."""

    def __init__(self, tf: CausalTransformer, span: int):
        super().__init__()
        if tf.pos is not None:
            raise ValueError(
                f"a Transformer with {tf.cfg.positions} positions ties every key to the window's first event; "
                "only positions=rotary has a streaming step (the streamer falls back to the full window)"
            )
        self.tf, self.span = tf, span
        self.n_heads, self.hs = tf.cfg.n_heads, tf.head_size

    def state_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        shapes = []
        for i in range(len(self.tf.blocks)):
            shapes += [(f"k{i}", (self.n_heads, self.span, self.hs)), (f"v{i}", (self.n_heads, self.span, self.hs))]
        return [*shapes, ("attn_mask", (self.span,)), ("pos", (1,))]

    def forward(
        self, x: torch.Tensor, dt: torch.Tensor | None, state: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, n_in) -> (B, d), new state.

        The caches are rings of ``span`` slots: the event at position p (``pos``, (B, 1) float64, the events
        streamed before it) writes its key and value into slot p mod span, over the event ``span`` before it, and
        attends to every slot written so far (``attn_mask``: 0 once written, -inf while empty). Slot order does not
        matter: keys are stored rotated by their absolute position and the softmax sums over slots. A ring changes
        one slot per event, which the ONNX graph does in place (``ScatterND``), where a cache kept in order would be
        shifted, that is copied, every event."""
        tf = self.tf
        B = x.shape[0]
        h = tf.inp(x)
        if tf.dt is not None and dt is not None:
            h = h + tf.dt(dt.unsqueeze(-1))
        pos = state[-1]
        cos, sin = (t.view(B, 1, 1, -1) for t in rotary_tables(pos[:, 0], self.hs))
        slot = (pos[:, 0] % self.span).long()  # (B,)
        rows = torch.arange(B, device=x.device)
        mask = state[-2].clone().scatter_(1, slot.unsqueeze(1), 0.0)  # (B, span), this event's slot written
        bias = mask[:, None, None, :]
        new = []
        scale = self.hs**-0.5
        for i, blk in enumerate(tf.blocks):
            att = blk.attn
            a = blk.ln1(h)
            q, k, v = att.qkv(a).split(h.shape[-1], dim=-1)
            q, k, v = (t.view(B, self.n_heads, 1, self.hs) for t in (q, k, v))
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            keys, vals = state[2 * i].clone(), state[2 * i + 1].clone()  # (B, nh, span, hs)
            keys[rows, :, slot] = k[:, :, 0]
            vals[rows, :, slot] = v[:, :, 0]
            scores = (q @ keys.transpose(-1, -2)) * scale + bias  # (B, nh, 1, span)
            y = torch.softmax(scores, dim=-1) @ vals  # (B, nh, 1, hs)
            h = h + att.proj(y.reshape(B, -1))
            h = h + blk.mlp(blk.ln2(h))
            new += [keys, vals]
        return tf.ln(h), [*new, mask, pos + 1]


class LSTMStep(nn.Module):
    """The step of an ``nn.LSTM`` (batch_first, unidirectional): the module itself on a one-event sequence, with
    (h, c) per layer as state, each (B, 1, hidden): with B = 1 in the graph, the (1, 1, hidden) that ONNX's LSTM
    operator takes.
    The step graph maps the same weights onto that operator, one node per layer (:mod:`lobnet.live.step_graph`)."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if lstm.bidirectional or lstm.proj_size or not lstm.batch_first:
            raise ValueError("only batch-first unidirectional LSTMs without projections stream")
        self.lstm = lstm
        self.layers, self.hidden = lstm.num_layers, lstm.hidden_size

    def state_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(f"{n}{k}", (1, self.hidden)) for k in range(self.layers) for n in ("h", "c")]

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h0 = torch.cat([state[2 * k].transpose(0, 1) for k in range(self.layers)])  # (layers, B, hidden)
        c0 = torch.cat([state[2 * k + 1].transpose(0, 1) for k in range(self.layers)])
        y, (h, c) = self.lstm(x.unsqueeze(1), (h0, c0))
        new = []
        for k in range(self.layers):
            new += [h[k : k + 1].transpose(0, 1), c[k : k + 1].transpose(0, 1)]
        return y[:, 0], new


class StepModule(nn.Module):
    """``forward(x, *state) -> (logits (B, H, 3), position (B, H), *new_state)`` (a regression model:
    ``(prediction (B, H), *new_state)``, :attr:`lobnet.models.base.Heads.outputs`); x: one event's features (B, F),
    z-scored as the model was trained (:meth:`lobnet.prep.windows.ZScore.apply`; the streamer's compiled feature update
    writes them so)."""

    def __init__(self, model: LOBModel, span: int = 100):
        super().__init__()
        fresh = type(model)(model.cfg)  # a rebuilt twin (deepcopy shares weight-norm internals with the original)
        fresh.load_state_dict(model.state_dict())
        model = fresh.eval()
        for m in model.modules():  # fold weight norm into plain weights: the step graph holds constants only
            for name in list(getattr(m, "parametrizations", {}) or {}):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
        self.model = model
        self.tcn = self.lstm = self.attn = None
        if isinstance(model, LSTMModel):
            self.lstm = LSTMStep(model.lstm)
        elif isinstance(model, TCNModel):
            self.tcn = TCNStep(model.tcn)
        elif isinstance(model, TransformerModel):
            self.attn = AttentionStep(model.tf, span)
        elif isinstance(model, HybridModel):
            self.tcn, self.attn = TCNStep(model.tcn), AttentionStep(model.tf, span)
        else:
            raise ValueError(f"{type(model).__name__} has no streaming step (the streamer uses the full window)")
        self.dt_index = getattr(model.cfg, "dt_index", -1)

    def state_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape without the batch dimension) of every state tensor, in argument order."""
        if self.lstm is not None:
            return self.lstm.state_shapes()
        shapes = []
        if self.tcn is not None:
            shapes += self.tcn.state_shapes()
        if self.attn is not None:
            shapes += self.attn.state_shapes()
        return shapes

    def initial_state(self, batch: int = 1) -> list[torch.Tensor]:
        """Every state tensor at a day's first event (:func:`initial_value`), with a batch dimension."""
        return [torch.from_numpy(initial_value(name, (batch, *shape))) for name, shape in self.state_shapes()]

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        if self.lstm is not None:
            h, new = self.lstm(x, list(state))
            return (*self.model.heads(h), *new)
        new, i, h = [], 0, x
        if self.tcn is not None:
            n = 2 * len(self.tcn.blocks)
            h, s = self.tcn(h, list(state[:n]))
            new += s
            i = n
        if self.attn is not None:
            dt = x[:, self.dt_index] if self.dt_index >= 0 else None
            h, s = self.attn(h, dt, list(state[i:]))
            new += s
        return (*self.model.heads(h), *new)


def initial_value(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A state tensor at a day's first event, by its name: zeros (the batch model's padding, position 0, empty
    cache slots), but the attention mask, -inf (no slot written). float32, but the position ``pos``, float64. The
    torch step, the ONNX graph's declared types, the export's parity runs and the streamer's buffers all start
    from this."""
    fill = -np.inf if name == "attn_mask" else 0.0
    return np.full(shape, fill, np.float64 if name == "pos" else np.float32)


def carry(new, shape: tuple[int, ...]):
    """The state a step takes next, from what it returned (numpy or torch, batch first; ``shape`` without the
    batch, as :meth:`StepModule.state_shapes` gives it): the last ``prod(shape)`` entries of each batch row.

    A buffer (a TCN convolution's inputs) comes out with this event appended, one entry longer than it went in,
    because that is the tensor the step computes on; its tail drops the oldest entry. Because a tail is
    contiguous, the streamer takes it as an offset into the output buffer, where the graph would otherwise copy it
    (a ``Slice`` node per buffer). Every other state tensor comes out as it goes in."""
    batch = new.shape[0]
    n = int(np.prod(shape))
    return new.reshape(batch, -1)[:, -n:].reshape(batch, *shape)


def has_step(model: LOBModel) -> bool:
    """Whether the model streams in O(1) per event (else: the full-window fallback)."""
    if isinstance(model, (LSTMModel, TCNModel)):
        return True
    if isinstance(model, (TransformerModel, HybridModel)):
        return model.tf.pos is None
    return False


@torch.no_grad()
def sequence_outputs(model: LOBModel, x: torch.Tensor, span: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The model over a whole sequence of normalised events (B, T, F), as the step computes it: logits
    (B, T, H, 3) and positions (B, T, H). Attention is limited to the last ``span`` events."""
    if isinstance(model, (TransformerModel, HybridModel)):
        return model.heads(model.encode(x, span=span))
    return model.forward_sequence(x)
