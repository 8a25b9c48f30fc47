"""The native step engine: the streaming step of every step architecture (LSTM, TCN, Transformer, hybrid), compiled
with numba, beside ONNX Runtime's step graph.

Why: in a one-event ONNX step every node has a fixed cost whatever its size (``experiments/inference/``), and a TCN
or a hybrid has 34 to 51 of them; the arithmetic of one event is small. Here the whole step is one compiled call
with every weight in one flat array, all state in preallocated arrays, and no allocation per event.

What it computes is exactly what :class:`~lobnet.models.streaming.StepModule` (and so ``model_step.onnx``) computes,
in float32 like them (sums may be ordered differently: the export holds it to both graphs within the tolerance,
``max_abs_diff_native`` in ``export.json``). Its state is laid out for one event at a time rather than for standard
operators:

* LSTM: (h, c) per layer, in place.
* TCN: per causal convolution a ring of its last ``(k - 1) d + 1`` inputs (this event's included); the event at
  position t writes row t mod L and tap j reads row (t - (k - 1 - j) d) mod L, so only the k taps are multiplied
  (the ONNX graph multiplies the zeros between short-dilation taps, because a ``Gather`` costs more there), and a
  tap before the day's first event is skipped, the batch model's zero padding.
* attention: per layer a key and a value cache of ``span`` slots, the event at position p writing slot p mod span
  (rotated by its absolute position, as the step graph's cache), and attending to the slots written so far.
* a position counter per stream (events since the day's start), for the rings, the caches and the rotary angle.

The weights come from the exported model directory: ``lobnet-export`` writes them, packed, to
:data:`lobnet.card.NATIVE` beside ``model_step.onnx`` (:meth:`NativeStep.save`), with the card's architecture and
config. :meth:`NativeStep.load` refuses a file whose layout is not the one the model card describes, or whose
weights are not the ones written, naming the file.

    step = NativeStep.load("runs/export/model_native.npz", card)      # or batch=B: B symbols per call
    step.row[:] = z                       # one event's normalised features (the streamer's update writes them)
    step()                                # step.logits (B, H, 3), step.position (B, H)
    step.reset([3])                       # symbol 3 starts a new day; the others carry on

the same interface as :class:`lobnet.live.runtime.StepRunner`, so the streamer and the benchmark run either.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
from numba import njit

from lobnet.data.errors import LobDataError

# contract: fused multiply-adds; reassoc: sums reordered (vectorised dot products). No nnan/ninf: a NaN input
# must stay NaN, as in the graphs.
_FM = {"contract", "reassoc"}
FORMAT = 1  # of the packed file; a file of another format is refused

# header of the int64 layout ``m`` shared by both kernels
_F, _H, _NB, _ATTN, _HEADS, _TCN, _ATT, _C, _Z, _SIZE, _LEN, _REG = range(12)  # _REG: 1 for a regression head
_HEADER = 12  # entries before the first record
_CONV = 8  # per convolution: c_in, c_out, k, d, weights, bias, ring offset, ring rows
_BLOCK = 2 * _CONV + 2  # per TCN block: conv1, conv2, residual weights and bias (-1: the identity)
_ATT_HEAD = 12  # n_in, d, heads, head size, span, layers, dt index, unused, inp w, inp b, dt w, final LN
_LAYER = 14  # ln1, qkv w, qkv b, proj w, proj b, ln2, fc1 w, fc1 b, fc2 w, fc2 b, mlp width, K, V, unused
_REGIONS = 12  # scratch regions of B x Z entries each


@njit(cache=True, fastmath=_FM)
def _start(yv, w, bo, add):
    """A product's output before its sum: zeros unless ``add`` (then what it holds), plus the bias at w[bo:]
    when bo >= 0."""
    if not add:
        yv[:] = 0.0
    if bo >= 0:
        bv = w[bo : bo + yv.shape[0]]
        for o in range(yv.shape[0]):
            yv[o] += bv[o]


@njit(cache=True, fastmath=_FM)
def _affine(w, wo, bo, n_in, n_out, x, xo, y, yo, add, ix):
    """y[yo : yo + n_out] = (y if add) + bias + x[xo : xo + n_in] @ Wt, Wt = w[wo:] as (n_in, n_out) row-major (the
    transposed weight: each input scales one contiguous row). bo < 0: no bias. ix: int64 scratch of n_in.

    The nonzero inputs are listed first (a ReLU's output is half zeros, and adding 0 x w changes nothing), then
    their rows are added four at a time, so that y is loaded and stored once per four rows. The slices make
    every index one known to be >= 0, which needs no negative-index wraparound: with it the loops do not
    vectorise."""
    yv = y[yo : yo + n_out]
    xv = x[xo : xo + n_in]
    wv = w[wo : wo + n_in * n_out]
    _start(yv, w, bo, add)
    nz = 0
    for j in range(n_in):  # branch-free: whether a ReLU output is zero is a coin flip the predictor would miss
        ix[nz] = j
        nz += xv[j] != 0.0
    q = 0
    while q + 4 <= nz:
        j0, j1, j2, j3 = ix[q], ix[q + 1], ix[q + 2], ix[q + 3]
        x0, x1, x2, x3 = xv[j0], xv[j1], xv[j2], xv[j3]
        w0, w1 = wv[j0 * n_out : (j0 + 1) * n_out], wv[j1 * n_out : (j1 + 1) * n_out]
        w2, w3 = wv[j2 * n_out : (j2 + 1) * n_out], wv[j3 * n_out : (j3 + 1) * n_out]
        for o in range(n_out):
            yv[o] += w0[o] * x0 + w1[o] * x1 + w2[o] * x2 + w3[o] * x3
        q += 4
    while q < nz:
        j = ix[q]
        xj = xv[j]
        row = wv[j * n_out : (j + 1) * n_out]
        for o in range(n_out):
            yv[o] += row[o] * xj
        q += 1


@njit(cache=True, fastmath=_FM)
def _affine_b(w, wo, bo, n_in, n_out, x, xo, xs, y, yo, ys, B, add, ix):
    """:func:`_affine` for B streams: stream b's input at x[xo + b xs:], its output at y[yo + b ys:]. One stream
    takes :func:`_affine` (its zero inputs skipped); several take the weight rows four at a time and apply them to
    every stream before the next four, so each row is read from the cache once per call, not once per stream."""
    if B == 1:
        _affine(w, wo, bo, n_in, n_out, x, xo, y, yo, add, ix)
        return
    for b in range(B):
        _start(y[yo + b * ys : yo + b * ys + n_out], w, bo, add)
    wv = w[wo : wo + n_in * n_out]
    j = 0
    while j + 4 <= n_in:
        w0, w1 = wv[j * n_out : (j + 1) * n_out], wv[(j + 1) * n_out : (j + 2) * n_out]
        w2, w3 = wv[(j + 2) * n_out : (j + 3) * n_out], wv[(j + 3) * n_out : (j + 4) * n_out]
        b = 0
        while b + 4 <= B:  # four streams at a time: each loaded weight serves all four
            p, q, r, t = xo + b * xs + j, xo + (b + 1) * xs + j, xo + (b + 2) * xs + j, xo + (b + 3) * xs + j
            a0, a1, a2, a3 = x[p], x[p + 1], x[p + 2], x[p + 3]
            c0, c1, c2, c3 = x[q], x[q + 1], x[q + 2], x[q + 3]
            e0, e1, e2, e3 = x[r], x[r + 1], x[r + 2], x[r + 3]
            f0, f1, f2, f3 = x[t], x[t + 1], x[t + 2], x[t + 3]
            ya = y[yo + b * ys : yo + b * ys + n_out]
            yb = y[yo + (b + 1) * ys : yo + (b + 1) * ys + n_out]
            yc = y[yo + (b + 2) * ys : yo + (b + 2) * ys + n_out]
            yd = y[yo + (b + 3) * ys : yo + (b + 3) * ys + n_out]
            for o in range(n_out):
                u0, u1, u2, u3 = w0[o], w1[o], w2[o], w3[o]
                ya[o] += u0 * a0 + u1 * a1 + u2 * a2 + u3 * a3
                yb[o] += u0 * c0 + u1 * c1 + u2 * c2 + u3 * c3
                yc[o] += u0 * e0 + u1 * e1 + u2 * e2 + u3 * e3
                yd[o] += u0 * f0 + u1 * f1 + u2 * f2 + u3 * f3
            b += 4
        while b < B:
            xv = x[xo + b * xs + j : xo + b * xs + j + 4]
            x0, x1, x2, x3 = xv[0], xv[1], xv[2], xv[3]
            yv = y[yo + b * ys : yo + b * ys + n_out]
            for o in range(n_out):
                yv[o] += w0[o] * x0 + w1[o] * x1 + w2[o] * x2 + w3[o] * x3
            b += 1
        j += 4
    while j < n_in:
        row = wv[j * n_out : (j + 1) * n_out]
        for b in range(B):
            xj = x[xo + b * xs + j]
            yv = y[yo + b * ys : yo + b * ys + n_out]
            for o in range(n_out):
                yv[o] += row[o] * xj
        j += 1


@njit(cache=True, fastmath=_FM)
def _heads(w, m, x, xo, xs, c, out, B, ix):
    """The class head into each stream's out[:3H] (logits, (H, 3) row-major) and the tanh position head into
    out[3H:4H]; a regression model's head (``m[_REG]``) into out[:H], linear; stream b's features at
    x[xo + b xs:], its outputs at out[b 4H:]."""
    hz, h = m[_H], m[_HEADS]
    if m[_REG]:
        _affine_b(w, m[h], m[h + 1], c, hz, x, xo, xs, out, 0, 4 * hz, B, False, ix)
        return
    _affine_b(w, m[h], m[h + 1], c, 3 * hz, x, xo, xs, out, 0, 4 * hz, B, False, ix)
    _affine_b(w, m[h + 2], m[h + 3], c, hz, x, xo, xs, out, 3 * hz, 4 * hz, B, False, ix)
    for b in range(B):
        _tanh_(out[b * 4 * hz + 3 * hz : (b + 1) * 4 * hz])


@njit(cache=True, fastmath=_FM)
def _exp(v):
    """e^v in float64 without a libm call, so that a loop of them vectorises: the Taylor series to degree 10 of
    e^(v / 128), squared 7 times. v is clamped to [-80, 80] (where the callers' sigmoid, tanh and softmax weights
    are saturated far below float32's resolution). Relative error under 2e-8 on that range (tests/test_native.py),
    against libm's exp, whose scalar call costs several times more and blocks vectorisation."""
    y = min(max(v, -80.0), 80.0) * 0.0078125
    p = 1.0 + y * 0.1
    p = 1.0 + y * 0.1111111111111111 * p
    p = 1.0 + y * 0.125 * p
    p = 1.0 + y * 0.14285714285714285 * p
    p = 1.0 + y * 0.16666666666666666 * p
    p = 1.0 + y * 0.2 * p
    p = 1.0 + y * 0.25 * p
    p = 1.0 + y * 0.3333333333333333 * p
    p = 1.0 + y * 0.5 * p
    p = 1.0 + y * p
    for _ in range(7):
        p = p * p
    return p


_ONE, _TWO = np.float32(1.0), np.float32(2.0)


@njit(cache=True, fastmath=_FM)
def _sigmoid_(a):
    """a = sigmoid(a), in place (float32). Two loops, the exponentials then the float32 divisions: each
    vectorises, where one loop of both does not."""
    for i in range(a.shape[0]):
        a[i] = _exp(-float(a[i]))
    for i in range(a.shape[0]):
        a[i] = _ONE / (_ONE + a[i])


@njit(cache=True, fastmath=_FM)
def _tanh_(a):
    """a = tanh(a) = 1 - 2 / (e^(2a) + 1), in place (float32), as :func:`_sigmoid_`; within 1e-7 of tanh."""
    for i in range(a.shape[0]):
        a[i] = _exp(2.0 * float(a[i]))
    for i in range(a.shape[0]):
        a[i] = _ONE - _TWO / (a[i] + _ONE)


@njit(cache=True, fastmath=_FM)
def _gelu_(a, e):
    """a = GELU(a) = a (1 + erf(a / sqrt 2)) / 2, in place, e: scratch of len(a). erfc from Numerical Recipes'
    Chebyshev fit (fractional error under 1.2e-7) with :func:`_exp`, in three loops that each vectorise (libm's
    erf costs about 14 ns a call here); within float32 rounding of the exact GELU."""
    n = a.shape[0]
    for i in range(n):
        e[i] = _ONE / (_ONE + np.float32(0.35355339059327373) * abs(a[i]))  # t = 1 / (1 + |a| / (2 sqrt 2))
    for i in range(n):
        u, t = float(a[i]), float(e[i])
        p = t * (-0.82215223 + t * 0.17087277)
        p = t * (-1.13520398 + t * (1.48851587 + p))
        p = t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + p)))
        p = -0.5 * u * u - 1.26551223 + t * (1.00002368 + t * (0.37409196 + p))
        e[i] = t * _exp(p)  # erfc(|a| / sqrt 2)
    for i in range(n):
        u = a[i]
        sign = _ONE if u >= 0 else -_ONE
        a[i] = np.float32(0.5) * u * (_ONE + sign * (_ONE - e[i]))


@njit(cache=True, fastmath=_FM)
def lstm_step(x, w, m, s, cnt, out, tmp, ix, B):
    """One event of each of B streams: stream b's normalised features at x[b F:], its state ((h, c) per layer) at
    s[b S:], its outputs at out[b 4H:]. nn.LSTM's gate order: input, forget, cell, output. Scratch: region 0
    the gates, region 1 each layer's input beside its previous h, both (B, Z)."""
    F, S, n_layers, hd, z = m[_F], m[_SIZE], m[_NB], m[_C], m[_Z]
    gates, cat = 0, B * z
    for k in range(n_layers):
        r = _HEADER + 3 * k
        ho = 2 * k * hd
        n_in = F if k == 0 else hd
        for b in range(B):
            # the layer's input and its previous h side by side, against W_ih^T and W_hh^T, which the packing
            # stores one after the other: one product for the four gates
            row = tmp[cat + b * z : cat + b * z + n_in + hd]
            if k == 0:
                row[:n_in] = x[b * F : (b + 1) * F]
            else:
                row[:n_in] = s[b * S + ho - 2 * hd : b * S + ho - hd]  # the layer below's new h
            row[n_in:] = s[b * S + ho : b * S + ho + hd]
        _affine_b(w, m[r], m[r + 2], n_in + hd, 4 * hd, tmp, cat, z, tmp, gates, z, B, False, ix)
        for b in range(B):
            g = gates + b * z
            gi, gf, gg, go = (
                tmp[g : g + hd],
                tmp[g + hd : g + 2 * hd],
                tmp[g + 2 * hd : g + 3 * hd],
                tmp[g + 3 * hd : g + 4 * hd],
            )
            h, c = s[b * S + ho : b * S + ho + hd], s[b * S + ho + hd : b * S + ho + 2 * hd]
            # one array per loop: a loop over several that might overlap is not vectorised
            _sigmoid_(gi)
            _sigmoid_(gf)
            _tanh_(gg)
            _sigmoid_(go)
            for u in range(hd):
                c[u] = gf[u] * c[u] + gi[u] * gg[u]
            gg[:] = c
            _tanh_(gg)
            for u in range(hd):
                h[u] = go[u] * gg[u]
    _heads(w, m, s, 2 * (n_layers - 1) * hd, S, hd, out, B, ix)
    for b in range(B):
        cnt[b] += 1


@njit(cache=True, fastmath=_FM)
def _conv(w, m, r, src, so, ss, s, cnt, tmp, dst, B, ix):
    """A causal convolution at the newest event of each stream: its input (src[so + b ss:]) into its ring (in the
    stream's state), its k taps copied side by side into scratch region 4 (zeros before the day's first event:
    the batch model's left padding), then relu(bias + taps @ W) into tmp[dst + b Z:], one product over the k
    C_in inputs."""
    c_in, c_out, k, d, wo, bo, ring, rows = m[r], m[r + 1], m[r + 2], m[r + 3], m[r + 4], m[r + 5], m[r + 6], m[r + 7]
    z, S = m[_Z], m[_SIZE]
    g = 4 * B * z
    for b in range(B):
        t, sb = cnt[b], s[b * S : (b + 1) * S]
        row = ring + (t % rows) * c_in
        sb[row : row + c_in] = src[so + b * ss : so + b * ss + c_in]
        for j in range(k):
            back = (k - 1 - j) * d
            taps = tmp[g + b * z + j * c_in : g + b * z + (j + 1) * c_in]
            if back <= t:
                tap = ring + ((t - back) % rows) * c_in
                taps[:] = sb[tap : tap + c_in]
            else:
                taps[:] = 0.0
    _affine_b(w, wo, bo, k * c_in, c_out, tmp, g, z, tmp, dst, z, B, False, ix)
    for b in range(B):
        y = tmp[dst + b * z : dst + b * z + c_out]
        for o in range(c_out):
            if y[o] < 0.0:
                y[o] = 0.0


@njit(cache=True, fastmath=_FM)
def _layer_norm(w, wo, eo, x, xo, n, y, yo):
    """LayerNorm of x[xo : xo + n] into y[yo:], weight w[wo:], bias w[wo + n:], eps w[eo]."""
    xv, yv, gain, bias = x[xo : xo + n], y[yo : yo + n], w[wo : wo + n], w[wo + n : wo + 2 * n]
    mean = 0.0
    for i in range(n):
        mean += xv[i]
    mean /= n
    var = 0.0
    for i in range(n):
        e = xv[i] - mean
        var += e * e
    inv = 1.0 / math.sqrt(var / n + w[eo])
    for i in range(n):
        yv[i] = (xv[i] - mean) * inv * gain[i] + bias[i]


@njit(cache=True, fastmath=_FM)
def _rotate(v, heads, hs, cos, sin):
    """Rotate each head's (first half, second half) pairs of v (heads x hs) by the angles of ``cos``, ``sin``."""
    half = hs // 2
    for h in range(heads):
        a, b = v[h * hs : h * hs + half], v[h * hs + half : (h + 1) * hs]
        for i in range(half):
            ai, bi = a[i], b[i]
            a[i] = ai * cos[i] - bi * sin[i]
            b[i] = ai * sin[i] + bi * cos[i]


@njit(cache=True, fastmath=_FM)
def _attend(q, keys, vals, n, hs, span, scale, sc, y):
    """One head: softmax(q . key_j x scale) over the n slots written, then the weighted sum of the values into y.
    A cache is (head size, span): row i holds component i of every slot, so both sums run along contiguous
    rows of n slots (vectorised), where (span, head size) rows of 16 would not."""
    s = sc[:n]
    s[:] = 0.0
    for i in range(hs):
        qi = q[i]
        row = keys[i * span : i * span + n]
        for j in range(n):
            s[j] += qi * row[j]
    top = -np.inf
    for j in range(n):
        s[j] *= scale
        top = max(top, s[j])
    total = 0.0
    for j in range(n):
        e = _exp(s[j] - top)
        s[j] = e
        total += e
    inv = np.float32(1.0 / total)
    for i in range(hs):
        row = vals[i * span : i * span + n]
        acc = np.float32(0.0)
        for j in range(n):
            acc += s[j] * row[j]
        y[i] = acc * inv


@njit(cache=True, fastmath=_FM)
def conv_attention_step(x, w, m, s, cnt, out, tmp, ix, B):
    """One event of each of B streams of a TCN, a rotary Transformer or the hybrid (a TCN, then attention):
    stream b's normalised features at x[b F:], its state at s[b S:] (the convolutions' rings, then each layer's
    key and value caches, (heads, head size, span)), its events so far today cnt[b], its outputs at out[b 4H:].
    Scratch: regions of (B, Z), named below."""
    F, S, z = m[_F], m[_SIZE], m[_Z]
    zb = B * z
    r0, r1, r2, r3 = 0, zb, 2 * zb, 3 * zb  # TCN: block output, conv1, conv2, residual (region 4: the taps)
    src, so, ss, width = x, 0, F, m[_F]
    for blk in range(m[_NB]):
        r = m[_TCN] + blk * _BLOCK
        _conv(w, m, r, src, so, ss, s, cnt, tmp, r1, B, ix)
        _conv(w, m, r + _CONV, tmp, r1, z, s, cnt, tmp, r2, B, ix)
        c_out = m[r + 1]
        dw, db = m[r + 2 * _CONV], m[r + 2 * _CONV + 1]
        if dw >= 0:  # the residual's 1x1 convolution
            _affine_b(w, dw, db, width, c_out, src, so, ss, tmp, r3, z, B, False, ix)
        else:
            for b in range(B):
                tmp[r3 + b * z : r3 + b * z + c_out] = src[so + b * ss : so + b * ss + c_out]
        for b in range(B):
            hv, bv, rv = (
                tmp[r0 + b * z : r0 + b * z + c_out],
                tmp[r2 + b * z : r2 + b * z + c_out],
                tmp[r3 + b * z : r3 + b * z + c_out],
            )
            for o in range(c_out):
                v = bv[o] + rv[o]
                hv[o] = v if v > 0.0 else 0.0
        src, so, ss, width = tmp, r0, z, c_out
    if m[_ATTN]:
        a = m[_ATT]
        d, nh, hs, span, n_layers, dti = m[a + 1], m[a + 2], m[a + 3], m[a + 4], m[a + 5], m[a + 6]
        h, ln, qkv, yo, cs, sco, mlp = 4 * zb, 5 * zb, 6 * zb, 7 * zb, 8 * zb, 9 * zb, 10 * zb
        _affine_b(w, m[a + 8], m[a + 9], width, d, src, so, ss, tmp, h, z, B, False, ix)  # dt's bias is in inp's
        half = hs // 2
        scale = np.float32(1.0 / math.sqrt(hs))
        for b in range(B):
            if dti >= 0:
                v = x[b * F + dti]
                wd = w[m[a + 10] : m[a + 10] + d]
                hv = tmp[h + b * z : h + b * z + d]
                for o in range(d):
                    hv[o] += wd[o] * v
            t = cnt[b]
            for i in range(half):  # cos and sin of position x frequency, in float64 as rotary_tables
                angle = float(t) * 10000.0 ** (-(2.0 * i) / hs)
                tmp[cs + b * z + i] = np.float32(math.cos(angle))
                tmp[cs + b * z + half + i] = np.float32(math.sin(angle))
        for layer in range(n_layers):
            lr = a + _ATT_HEAD + layer * _LAYER
            for b in range(B):
                _layer_norm(w, m[lr], m[lr] + 2 * d, tmp, h + b * z, d, tmp, ln + b * z)
            _affine_b(w, m[lr + 1], m[lr + 2], d, 3 * d, tmp, ln, z, tmp, qkv, z, B, False, ix)
            for b in range(B):
                t = cnt[b]
                slot = t % span
                n = t + 1 if t + 1 < span else span
                q0 = qkv + b * z
                q, k, v = tmp[q0 : q0 + d], tmp[q0 + d : q0 + 2 * d], tmp[q0 + 2 * d : q0 + 3 * d]
                cos, sin = tmp[cs + b * z : cs + b * z + half], tmp[cs + b * z + half : cs + b * z + hs]
                _rotate(q, nh, hs, cos, sin)
                _rotate(k, nh, hs, cos, sin)
                sb = s[b * S : (b + 1) * S]
                for hh in range(nh):
                    ko = m[lr + 11] + hh * span * hs
                    vo = m[lr + 12] + hh * span * hs
                    for i in range(hs):  # this event's key and value into its slot of each (hs, span) cache
                        sb[ko + i * span + slot] = k[hh * hs + i]
                        sb[vo + i * span + slot] = v[hh * hs + i]
                    _attend(
                        q[hh * hs : (hh + 1) * hs],
                        sb[ko : ko + span * hs],
                        sb[vo : vo + span * hs],
                        n,
                        hs,
                        span,
                        scale,
                        tmp[sco + b * z : sco + b * z + span],
                        tmp[yo + b * z + hh * hs : yo + b * z + (hh + 1) * hs],
                    )
            _affine_b(w, m[lr + 3], m[lr + 4], d, d, tmp, yo, z, tmp, h, z, B, True, ix)  # h += proj(y)
            for b in range(B):
                _layer_norm(w, m[lr + 5], m[lr + 5] + 2 * d, tmp, h + b * z, d, tmp, ln + b * z)
            width_mlp = m[lr + 10]
            _affine_b(w, m[lr + 6], m[lr + 7], d, width_mlp, tmp, ln, z, tmp, mlp, z, B, False, ix)
            for b in range(B):
                _gelu_(tmp[mlp + b * z : mlp + b * z + width_mlp], tmp[sco + b * z : sco + b * z + width_mlp])
            _affine_b(w, m[lr + 8], m[lr + 9], width_mlp, d, tmp, mlp, z, tmp, h, z, B, True, ix)  # h += fc2(...)
        f = m[a + 11]
        for b in range(B):
            _layer_norm(w, f, f + 2 * d, tmp, h + b * z, d, tmp, ln + b * z)
        src, so, ss, width = tmp, ln, z, d
    _heads(w, m, src, so, ss, width, out, B, ix)
    for b in range(B):
        cnt[b] += 1


@njit(cache=True)
def _views(buf, iv):
    """A step's buffers inside its two arrays (:class:`NativeStep`), flat: x (B F), state (B S), counts (B),
    outputs (B 4H), scratch, index; and B."""
    e = iv[_LEN]  # the instance's header follows the layout
    B, xo, oo, so, to, tn = iv[e], iv[e + 1], iv[e + 2], iv[e + 3], iv[e + 4], iv[e + 5]
    F, H, S = iv[_F], iv[_H], iv[_SIZE]
    x = buf[xo : xo + B * F]
    out = buf[oo : oo + B * 4 * H]
    s = buf[so : so + B * S]
    return x, s, iv[e + 6 : e + 6 + B], out, buf[to : to + tn], iv[e + 6 + B :], B


@njit(cache=True)
def lstm_call(w, buf, iv):
    x, s, cnt, out, tmp, ix, B = _views(buf, iv)
    lstm_step(x, w, iv, s, cnt, out, tmp, ix, B)


@njit(cache=True)
def conv_attention_call(w, buf, iv):
    x, s, cnt, out, tmp, ix, B = _views(buf, iv)
    conv_attention_step(x, w, iv, s, cnt, out, tmp, ix, B)


# the calls take three arrays: numba checks every argument's type on each call from Python, about 0.1 µs apiece
KERNELS = {"lstm": lstm_call, "conv_attention": conv_attention_call}


class _Pack:
    """Weights appended to one flat float32 array; each append returns its offset."""

    def __init__(self):
        self.parts, self.n = [], 0

    def add(self, a) -> int:
        import torch

        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
        off = self.n
        self.parts.append(a)
        self.n += a.size
        return off

    def linear(self, weight, bias=None) -> tuple[int, int]:
        """A linear layer's weight transposed to (in, out) and its bias: (weight offset, bias offset or -1)."""
        wo = self.add(weight.detach().T)
        return wo, (self.add(bias) if bias is not None else -1)

    def layer_norm(self, ln) -> int:
        """weight, bias, eps side by side: the weight's offset."""
        wo = self.add(ln.weight)
        self.add(ln.bias)
        self.add([ln.eps])
        return wo

    def array(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)


def pack(step) -> tuple[str, np.ndarray, np.ndarray]:
    """The kernel name, the flat weights ``w`` and the int64 layout ``m`` of a
    :class:`~lobnet.models.streaming.StepModule` (weight norm already folded into its weights)."""
    import torch

    p, model = _Pack(), step.model
    n_features, horizons = int(model.cfg.n_features), int(model.heads.horizons)
    m = np.full(_HEADER, 0, np.int64)
    m[_F], m[_H] = n_features, horizons
    records: list[int] = []
    widths = [n_features, 4 * horizons]
    state = 0
    if step.lstm is not None:
        lstm = step.lstm.lstm
        hd = lstm.hidden_size
        for k in range(lstm.num_layers):
            wih = p.add(getattr(lstm, f"weight_ih_l{k}").detach().T)
            whh = p.add(getattr(lstm, f"weight_hh_l{k}").detach().T)  # right after W_ih^T: lstm_step reads both as one
            bias = p.add(getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"))
            records += [wih, whh, bias]
        m[_NB], m[_C] = lstm.num_layers, hd
        widths += [4 * hd, n_features + hd]
        state = 2 * lstm.num_layers * hd
        kind, c = "lstm", hd
    else:
        kind, c = "conv_attention", n_features
        if step.tcn is not None:
            m[_NB], m[_TCN] = len(step.tcn.blocks), _HEADER + len(records)
            for blk in step.tcn.blocks:
                for conv in (blk.conv1.conv, blk.conv2.conv):
                    c_in, c_out, k, d = conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.dilation[0]
                    taps = p.add(conv.weight.detach().permute(2, 1, 0))  # (k, C_in, C_out): tap j's transposed weight
                    rows = (k - 1) * d + 1
                    records += [c_in, c_out, k, d, taps, p.add(conv.bias), state, rows]
                    state += rows * c_in
                    widths += [k * c_in, c_out]  # the taps side by side (_conv)
                if isinstance(blk.down, torch.nn.Identity):
                    records += [-1, -1]
                else:
                    records += list(p.linear(blk.down.weight[:, :, 0], blk.down.bias))
                c = blk.conv2.conv.out_channels
        if step.attn is not None:
            tf = step.attn.tf
            d, nh, hs, span = tf.cfg.d_model, step.attn.n_heads, step.attn.hs, step.attn.span
            m[_ATTN], m[_ATT] = 1, _HEADER + len(records)
            dt = tf.dt is not None and step.dt_index >= 0
            inp_b = tf.inp.bias.detach() + (tf.dt.bias.detach() if dt else 0.0)
            inp_w, inp_b = p.linear(tf.inp.weight, inp_b)
            dt_w = p.add(tf.dt.weight.detach()[:, 0]) if dt else -1
            if any(blk.mlp[1].approximate != "none" for blk in tf.blocks):
                raise ValueError("the native step computes the exact GELU (nn.GELU()), not its tanh approximation")
            head = [c, d, nh, hs, span, len(tf.blocks), step.dt_index if dt else -1, 0]
            records += [*head, inp_w, inp_b, dt_w, p.layer_norm(tf.ln)]
            for blk in tf.blocks:
                fc1, fc2 = blk.mlp[0], blk.mlp[2]
                records += [p.layer_norm(blk.ln1), *p.linear(blk.attn.qkv.weight, blk.attn.qkv.bias)]
                records += [*p.linear(blk.attn.proj.weight, blk.attn.proj.bias), p.layer_norm(blk.ln2)]
                records += [*p.linear(fc1.weight, fc1.bias), *p.linear(fc2.weight, fc2.bias), fc1.out_features]
                records += [state, state + span * d, 0]
                state += 2 * span * d
                widths += [3 * d, fc1.out_features, span]
            c = d
    heads = step.model.heads
    m[_HEADS] = _HEADER + len(records)
    if heads.task == "regression":
        m[_REG] = 1
        records += [*p.linear(heads.reg.weight, heads.reg.bias)]
    else:
        records += [*p.linear(heads.cls.weight, heads.cls.bias), *p.linear(heads.pos.weight, heads.pos.bias)]
    m[_C] = c if kind != "lstm" else m[_C]
    m[_Z] = max(widths)
    m[_SIZE] = state
    m[_LEN] = _HEADER + len(records)
    return kind, p.array(), np.concatenate([m, np.asarray(records, np.int64)])


def _digest(w: np.ndarray, m: np.ndarray) -> str:
    return hashlib.sha256(w.tobytes() + m.tobytes()).hexdigest()


class NativeStep:
    """The compiled step for ``batch`` streams, bound to preallocated buffers: write each stream's normalised
    features into :attr:`x` (batch, F) (:attr:`row` is the same memory, flat), call it, read :attr:`logits`
    (batch, H, 3) and :attr:`position` (batch, H) (a regression model: :attr:`prediction` (batch, H)). No
    allocation per call."""

    def __init__(self, kind: str, w: np.ndarray, m: np.ndarray, batch: int = 1):
        if batch < 1:
            raise ValueError(f"a native step steps at least one stream, not batch={batch}")
        self.kind, self.w, self.m = kind, w, m
        self._fn = KERNELS[kind]
        F, H, S, Z = (int(m[i]) for i in (_F, _H, _SIZE, _Z))
        # Every float buffer is a view into one array, every integer one (the layout, the instance's offsets, the
        # day's event counts, the scratch index) into another: the compiled call takes (w, buf, iv).
        sizes = {"x": batch * F, "out": batch * 4 * H, "state": batch * S, "tmp": _REGIONS * batch * Z}
        self.buf = np.zeros(sum(sizes.values()), np.float32)
        offsets, at = {}, 0
        for name, n in sizes.items():
            offsets[name] = at
            at += n
        head = [batch, offsets["x"], offsets["out"], offsets["state"], offsets["tmp"], sizes["tmp"]]
        self.iv = np.concatenate([m, np.asarray(head, np.int64), np.zeros(batch + Z, np.int64)])

        def view(name, shape):
            return self.buf[offsets[name] : offsets[name] + sizes[name]].reshape(shape)

        self.x = view("x", (batch, F))
        self.row = self.x.reshape(-1)
        self.out = view("out", (batch, 4 * H))
        self.regression = bool(m[_REG])
        if self.regression:  # the heads' outputs, as lobnet.models.base.Heads.outputs names them
            self.prediction = self.out[:, :H]
        else:
            self.logits = self.out[:, : 3 * H].reshape(batch, H, 3)
            self.position = self.out[:, 3 * H :]
        self.state = view("state", (batch, S))
        e = len(m) + len(head)
        self.count = self.iv[e : e + batch]  # events of each stream's day so far
        if not (np.shares_memory(self.out, self.buf) and np.shares_memory(self.count, self.iv)):
            raise AssertionError("the step's buffers must be views of its two arrays")
        self._fn(self.w, self.buf, self.iv)  # compile (or load from numba's cache) before the clock starts
        self.reset()

    @classmethod
    def from_step(cls, step, batch: int = 1) -> NativeStep:
        """The native step of a :class:`~lobnet.models.streaming.StepModule`."""
        return cls(*pack(step), batch)

    def reset(self, streams=None) -> None:
        """A new day: the initial state (zeros, position 0) of every stream, or of ``streams`` only."""
        if streams is None:
            self.state[:] = 0.0
            self.count[:] = 0
        else:
            self.state[streams] = 0.0
            self.count[streams] = 0

    def __call__(self) -> None:
        self._fn(self.w, self.buf, self.iv)

    def outputs(self, sequence: np.ndarray) -> tuple[np.ndarray, ...]:
        """From the initial state over a normalised sequence (T, F) of one stream (row 0): logits (T, H, 3) and
        positions (T, H) (a regression model: predictions (T, H)), as :func:`lobnet.live.parity.step_outputs`
        gives the ONNX step's."""
        self.reset()
        seq = np.ascontiguousarray(sequence, dtype=np.float32)
        heads = (self.prediction,) if self.regression else (self.logits, self.position)
        outs = tuple(np.zeros((len(seq), *h.shape[1:]), np.float32) for h in heads)
        for t in range(len(seq)):
            self.x[0] = seq[t]
            self()
            for o, h in zip(outs, heads, strict=True):
                o[t] = h[0]
        return outs

    def save(self, path: str | Path, card: dict) -> Path:
        """The packed weights and layout, with the card's architecture and config, and a digest of both."""
        manifest = {
            "format": FORMAT,
            "kind": self.kind,
            "model": card["model"],
            "config": card["config"],
            "span": int(card["window"]),
            "sha256": _digest(self.w, self.m),
        }
        path = Path(path)
        with open(path, "wb") as f:  # np.savez appends .npz to a name without it
            np.savez(f, w=self.w, m=self.m, manifest=np.array(json.dumps(manifest)))
        return path

    @classmethod
    def load(cls, path: str | Path, card: dict, card_path: str | Path = "model.json", batch: int = 1) -> NativeStep:
        """The native step written by :meth:`save`, checked against the model card: refused, naming the file,
        when it is unreadable, damaged (its digest), written for another architecture, config or window, or laid
        out for another model than the card's (every dimension and offset is compared with the layout the card's
        model packs to)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                w, m, manifest = z["w"], z["m"], json.loads(str(z["manifest"]))
        except (OSError, ValueError, KeyError) as e:
            raise LobDataError(path, None, f"not a readable native step file ({str(e)[:200]})") from None
        if manifest.get("format") != FORMAT or manifest.get("kind") not in KERNELS:
            raise LobDataError(path, None, f"native step format {manifest.get('format')!r} is not {FORMAT}")
        if w.dtype != np.float32 or m.dtype != np.int64 or _digest(w, m) != manifest.get("sha256"):
            raise LobDataError(
                path, None, "its weights are not the ones written (digest mismatch): re-run lobnet-export"
            )
        for key, want in (("model", card["model"]), ("config", card["config"]), ("span", int(card["window"]))):
            if manifest.get(key) != want:
                raise LobDataError(
                    path,
                    None,
                    f"its weights are for {key} {manifest.get(key)!r}, but the model card {card_path} says {want!r}",
                )
        kind, w_ref, m_ref = pack(_step_of(card, card_path))  # the layout of the card's model (its weights unused)
        if kind != manifest["kind"] or len(w) != len(w_ref) or not np.array_equal(m, m_ref):
            raise LobDataError(
                path,
                None,
                f"its weights do not match the model card {card_path}: laid out for {len(w):,} weights, "
                f"the card's {card['model']} has {len(w_ref):,}"
                + ("" if len(w) != len(w_ref) else " in another layout"),
            )
        return cls(kind, w, m, batch)


def _step_of(card: dict, card_path) -> object:
    from lobnet.card import build_model
    from lobnet.models.streaming import StepModule

    return StepModule(build_model(card, Path(card_path)), span=int(card["window"]))
