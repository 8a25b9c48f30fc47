"""The streaming step graphs, written as ONNX directly from a :class:`~lobnet.models.streaming.StepModule`'s
weights.

Why not ``torch.onnx.export`` of the step module: in a one-event call every node of the graph has a fixed cost
whatever its size (``scripts/bench_inference.py`` counts the nodes and measures that cost), and the exporter's
translation adds slices, transposes, reshapes and shape arithmetic around each layer. Written directly, each piece
is the fewest standard operators (opset :data:`STEP_OPSET`) that compute it:

* LSTM: one ``LSTM`` operator per layer with nn.LSTM's weights (gates reordered);
* TCN: per causal convolution a ``Concat`` of its buffer and the new column and a ``Gemm`` over the taps
  (which ONNX Runtime fuses with its ReLU), see :func:`_tcn`;
* attention: ``RotaryEmbedding`` on the query and key of the event at its position in the day, a ``ScatterND``
  per cache that writes them into the event's slot of the ring (and a ``ScatterElements`` that marks the slot in
  the mask), and one ``Attention`` operator over the caches.
  The time-gap encoding of a Transformer is folded into its input projection (both are linear in the features).

A TCN buffer is returned with the event appended, one entry longer than it came in, and the next call takes its
tail (:func:`lobnet.models.streaming.carry`): the streamer binds that tail as the next input in place. A cache is
returned with one slot changed, and the streamer binds its input and output to one buffer, so that ONNX Runtime's
``ScatterND`` changes that slot in place. Either saves copying the state in the graph.

The torch step module is the reference: what it computes is tested against the model (tests/test_streaming.py),
and every exported graph is checked against the full-window graph and the model over real events before it is
written (:func:`lobnet.live.parity.step_parity`, :func:`lobnet.live.parity.sequence_parity`). Inputs are ``x`` (1, F)
normalised features and every state tensor by the step module's names, with a batch of 1 (one stream); outputs
``logits`` (1, H, 3), ``position`` (1, H) (a regression model: ``prediction`` (1, H)) and ``<name>_out`` per state
tensor. ``step_graph(step, batch=B)`` is the
same step for B streams (symbols) in one call, each with its own state (tested against the one-stream graph on
each stream alone).
"""

from __future__ import annotations

import numpy as np
import torch

STEP_OPSET = 23  # Attention and RotaryEmbedding entered the standard domain at 23


class _Graph:
    """A list of nodes and initializers under fresh names, for ``batch`` streams."""

    def __init__(self, batch: int = 1):
        self.nodes, self.inits, self._n = [], [], 0
        self.batch = batch

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value, hint: str = "c", dtype=np.float32) -> str:
        from onnx import numpy_helper

        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(value, dtype=dtype)), name))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, **attrs):
        from onnx import helper

        outs = [self.name(op_type.lower()) for _ in range(outputs)] if isinstance(outputs, int) else outputs
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if len(outs) == 1 else outs

    def gemm(self, x: str, weight, bias) -> str:
        """x @ weight.T + bias for a (1, in) row, a constant weight (out, in) and a constant bias or a tensor's
        name (the C input)."""
        c = bias if isinstance(bias, str) else self.const(bias)
        return self.op("Gemm", [x, self.const(weight), c], transB=1)

    def linear(self, x: str, lin: torch.nn.Linear) -> str:
        return self.gemm(x, lin.weight, lin.bias)

    def reshape(self, x: str, shape: list[int], out: str | None = None) -> str:
        return self.op("Reshape", [x, self.const(shape, "shape", np.int64)], [out] if out else 1)


def _heads(g: _Graph, h: str, heads) -> None:
    if heads.task == "regression":  # one linear value per output: the scaled target (Heads.outputs)
        g.op("Gemm", [h, g.const(heads.reg.weight), g.const(heads.reg.bias)], ["prediction"], transB=1)
        return
    g.reshape(g.linear(h, heads.cls), [g.batch, heads.horizons, 3], "logits")
    g.op("Tanh", [g.linear(h, heads.pos)], ["position"])


def _head_outputs(heads, batch: int) -> list:
    """The graph's head outputs, as :attr:`lobnet.models.base.Heads.outputs` names them."""
    from onnx import TensorProto, helper

    shapes = {
        "logits": [batch, heads.horizons, 3],
        "position": [batch, heads.horizons],
        "prediction": [batch, heads.horizons],
    }
    return [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in heads.outputs]


def _lstm(g: _Graph, step, x: str) -> str:
    """One ``LSTM`` operator per layer. nn.LSTM stacks its gates (input, forget, cell, output); the operator
    wants (input, output, forget, cell), with the input and recurrent biases side by side."""
    lstm = step.lstm.lstm
    H = lstm.hidden_size
    order = [0, 3, 1, 2]  # ONNX gate k is PyTorch gate order[k]

    def gates(w: torch.Tensor) -> np.ndarray:
        return torch.cat([w.detach()[k * H : (k + 1) * H] for k in order]).numpy()

    x = g.reshape(x, [1, g.batch, -1])  # (seq 1, batch, F)
    for k in range(lstm.num_layers):
        W = g.const(gates(getattr(lstm, f"weight_ih_l{k}"))[None], "W")
        R = g.const(gates(getattr(lstm, f"weight_hh_l{k}"))[None], "R")
        B = np.concatenate([gates(getattr(lstm, f"bias_ih_l{k}")), gates(getattr(lstm, f"bias_hh_l{k}"))])[None]
        g.op("LSTM", [x, W, R, g.const(B, "B"), "", f"h{k}", f"c{k}"], ["", f"h{k}_out", f"c{k}_out"], hidden_size=H)
        x = f"h{k}_out"  # (1, batch, H): this layer's output at the one event is the next layer's input
    return g.reshape(x, [g.batch, H])


DENSE_ZEROS_KIB = 64  # a convolution reads its whole buffer while the zero weights that adds are at most this


def _tcn(g: _Graph, step, x: str) -> str:
    """Per block, as :class:`~lobnet.models.streaming.TCNStep`: two causal convolutions, ReLU, the residual join.

    A convolution's buffer is time-major, so appending the new input is one ``Concat`` whose result is both the
    state output (the next buffer is its tail, :func:`~lobnet.models.streaming.carry`) and the convolution's input.
    The convolution at the newest event is then a ``Gemm`` over its k taps, k input columns ``dilation`` apart. A
    buffer is read whole, with zero weights between the taps, while those zeros come to at most
    :data:`DENSE_ZEROS_KIB`; past that the taps are picked by a ``Gather`` first. A ``Gemm`` over one column costs
    about what reading its weights costs, and a ``Gather`` is one more node that copies element by element, so a
    wide, long buffer wants the ``Gather`` and a narrow or short one the zeros. Measured while developing, on TCNs
    of 16 to 48 channels: this rule was as fast as or faster than a ``Gather`` for every dilation and than reading
    every buffer whole; and both forms ran faster than ONNX Runtime's ``Conv`` over the buffer, which the graph
    used before."""
    h, nonneg = x, False  # (1, C): one column; nonneg: every entry of h is known to be >= 0
    for i, blk in enumerate(step.tcn.blocks):
        cols = h
        for conv, name in ((blk.conv1.conv, f"tcn{i}_in"), (blk.conv2.conv, f"tcn{i}_mid")):
            c_in, c_out, k, d = conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.dilation[0]
            # (batch, ((k - 1) d + 1) C_in), oldest first. One stream returns it as the state (the next input is
            # its tail, bound in place); several return the tail itself, which is not contiguous across rows.
            u = g.op("Concat", [name, cols], [f"{name}_out"] if g.batch == 1 else 1, axis=1)
            if g.batch > 1:  # columns c_in onwards of axis 1: drop the oldest input
                bounds = [g.const([v], hint, np.int64) for v, hint in ((c_in, "start"), (2**62, "end"), (1, "axis"))]
                g.op("Slice", [u, *bounds], [f"{name}_out"])
            w = conv.weight.detach().permute(0, 2, 1)  # (C_out, k, C_in): tap j reads column j d of the buffer
            if (k - 1) * (d - 1) * c_in * c_out * 4 <= DENSE_ZEROS_KIB * 1024:  # the zero columns' weights
                dense = torch.zeros(c_out, (k - 1) * d + 1, c_in)
                dense[:, ::d] = w
                cols = g.gemm(u, dense.reshape(c_out, -1), conv.bias)
            else:
                taps = np.concatenate([np.arange(c_in) + j * d * c_in for j in range(k)])
                u = g.op("Gather", [u, g.const(taps, "taps", np.int64)], axis=1)
                cols = g.gemm(u, w.reshape(c_out, -1), conv.bias)
            cols = g.op("Relu", [cols])
        identity = isinstance(blk.down, torch.nn.Identity)
        # the 1x1 convolution of the residual path, unless the residual is the block's input
        res = h if identity else g.gemm(h, blk.down.weight[:, :, 0], blk.down.bias)
        h = g.op("Add", [cols, res])
        # A block that adds its non-negative input (the previous block's output) to a ReLU's output has a
        # non-negative sum: its closing ReLU is the identity, and is left out.
        if not (identity and nonneg):
            h = g.op("Relu", [h])
        nonneg = True
    return h


def _attention(g: _Graph, step, h: str, x: str) -> str:
    """The cached attention of :class:`~lobnet.models.streaming.AttentionStep`: ``h`` (1, n_in) the encoder's
    input, ``x`` (1, F) the step's features (for the time-gap encoding)."""
    from onnx import TensorProto

    from lobnet.models.transformer import rotary_frequencies

    att_step = step.attn
    tf, nh, hs, dt_index = att_step.tf, att_step.n_heads, att_step.hs, step.dt_index
    d = tf.cfg.d_model
    if tf.dt is not None and dt_index >= 0 and h == x:
        # inp(x) + dt(x[:, j]) is linear in x: one Gemm
        w = tf.inp.weight.detach().clone()
        w[:, dt_index] += tf.dt.weight.detach()[:, 0]
        b = tf.inp.bias.detach() + tf.dt.bias.detach()
        h = g.gemm(x, w, b)
    elif tf.dt is not None and dt_index >= 0:  # the hybrid: inp(tcn output) + dt(x[:, j]), two Gemms chained
        w = torch.zeros(d, step.model.cfg.n_features)
        w[:, dt_index] = tf.dt.weight.detach()[:, 0]
        h = g.gemm(x, w, g.gemm(h, tf.inp.weight, tf.inp.bias + tf.dt.bias))
    else:
        h = g.linear(h, tf.inp)
    B = g.batch
    # the event's position in the day: cos and sin in float64, as rotary_tables computes them
    freq = g.const(rotary_frequencies(hs).view(1, 1, -1), "freq", np.float64)
    angle = g.op("Mul", ["pos" if B == 1 else g.reshape("pos", [B, 1, 1]), freq])  # (batch, 1, hs / 2)
    cos = g.op("Cast", [g.op("Cos", [angle])], to=TensorProto.FLOAT)
    sin = g.op("Cast", [g.op("Sin", [angle])], to=TensorProto.FLOAT)
    g.op("Add", ["pos", g.const([[1.0]], "one", np.float64)], ["pos_out"])
    span = att_step.span
    # each stream's slot, pos mod span: (batch, 1) for the mask, and as ScatterND indices (batch, nh, 1, 3) of
    # rows (stream, head, slot) for the caches
    slot = g.op("Cast", [g.op("Mod", ["pos", g.const([[span]], "span", np.float64)], fmod=1)], to=TensorProto.INT64)
    base = np.zeros((B, nh, 1, 3))
    base[:, :, 0, 0] = np.arange(B)[:, None]
    base[:, :, 0, 1] = np.arange(nh)
    index = g.op(
        "Add",
        [
            g.op("Mul", [slot if B == 1 else g.reshape(slot, [B, 1, 1, 1]), g.const([0, 0, 1], "e", np.int64)]),
            g.const(base, "heads", np.int64),
        ],
    )
    # the mask marks this event's slot written (0; -inf while a slot is empty)
    mask = g.op("ScatterElements", ["attn_mask", slot, g.const(np.zeros((B, 1)), "zero")], ["attn_mask_out"], axis=1)
    if B > 1:  # (batch, span) -> (batch, 1, 1, span): per stream, broadcast over heads
        mask = g.reshape(mask, [B, 1, 1, span])
    split_qk_v = g.const([2 * nh, nh], "split", np.int64)
    split_q_k = g.const([nh, nh], "split", np.int64)
    for i, blk in enumerate(tf.blocks):
        ln1, ln2, att = blk.ln1, blk.ln2, blk.attn
        a = g.op("LayerNormalization", [h, g.const(ln1.weight), g.const(ln1.bias)], epsilon=ln1.eps, axis=-1)
        qkv = g.reshape(g.linear(a, att.qkv), [B, 3 * nh, 1, hs])  # (batch, heads, one event, head size)
        qk, v = g.op("Split", [qkv, split_qk_v], 2, axis=1)
        qk = g.op("RotaryEmbedding", [qk, cos, sin])  # queries and keys: 2 nh heads
        q, k = g.op("Split", [qk, split_q_k], 2, axis=1)
        # the caches' new slot; ONNX Runtime writes it in place when the streamer binds a cache's input and output
        # to one buffer, and copies the cache otherwise
        keys = g.op("ScatterND", [f"k{i}", index, k], [f"k{i}_out"])
        vals = g.op("ScatterND", [f"v{i}", index, v], [f"v{i}_out"])
        y = g.op("Attention", [q, keys, vals, mask], scale=hs**-0.5)  # (batch, nh, 1, hs)
        h = g.op("Add", [h, g.linear(g.reshape(y, [B, d]), att.proj)])
        m = g.op("LayerNormalization", [h, g.const(ln2.weight), g.const(ln2.bias)], epsilon=ln2.eps, axis=-1)
        fc1, act, fc2 = blk.mlp[0], blk.mlp[1], blk.mlp[2]
        m = g.op("Gelu", [g.linear(m, fc1)], approximate=act.approximate)
        h = g.op("Add", [h, g.linear(m, fc2)])
    ln = tf.ln
    return g.op("LayerNormalization", [h, g.const(ln.weight), g.const(ln.bias)], epsilon=ln.eps, axis=-1)


def step_graph(step, batch: int = 1):
    """The ONNX step graph (an ``onnx.ModelProto``) of a :class:`~lobnet.models.streaming.StepModule`, for
    ``batch`` streams (symbols) stepped together, each with its own state: row b of every input and output is
    stream b's (the LSTM's states are (1, batch, hidden), as the ``LSTM`` operator takes them, the same memory as
    the step module's (batch, 1, hidden)). With one stream a TCN buffer comes out with the event appended (the
    caller carries its tail, :func:`~lobnet.models.streaming.carry`); with several it comes out carried, the
    shape it went in with, since the rows' tails are not one contiguous block."""
    import onnx
    from onnx import TensorProto, helper

    if batch < 1:
        raise ValueError(f"a step graph steps at least one stream, not batch={batch}")
    g = _Graph(batch)
    if step.lstm is not None:
        h = _lstm(g, step, "x")
    else:
        h = "x"
        if step.tcn is not None:
            h = _tcn(g, step, h)
        if step.attn is not None:
            h = _attention(g, step, h, "x")
    _heads(g, h, step.model.heads)

    def t(name, shape, dtype=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, dtype, shape)

    def declared(s: torch.Tensor) -> list[int]:
        shape = list(s.shape)
        return [shape[1], shape[0], *shape[2:]] if step.lstm is not None else shape

    names = [n for n, _ in step.state_shapes()]
    initial = step.initial_state(batch)
    new = initial  # several streams: every state comes out with the shape it went in with
    if batch == 1:  # one stream: what the torch step returns defines the output shapes (buffers one entry longer)
        with torch.no_grad():
            new = step(torch.zeros(1, step.model.cfg.n_features), *initial)[len(step.model.heads.outputs) :]
    types = [helper.np_dtype_to_tensor_dtype(s.numpy().dtype) for s in initial]  # float32, pos float64
    ins = [t(n, declared(s), dt) for n, s, dt in zip(names, initial, types, strict=True)]
    outs = [t(f"{n}_out", declared(s), dt) for n, s, dt in zip(names, new, types, strict=True)]
    graph = helper.make_graph(
        g.nodes,
        f"lobnet_{type(step.model).__name__}_step",
        [t("x", [batch, step.model.cfg.n_features]), *ins],
        [*_head_outputs(step.model.heads, batch), *outs],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", STEP_OPSET)], producer_name="lobnet")
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model
