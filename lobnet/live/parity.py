"""The export's parity checks: ONNX Runtime against torch on real windows, the step graph against the
full-window graph at every event, over a real sequence, the B-stream step against the one-stream step, and the
native step against the full-window graph and the ONNX step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lobnet.live.runtime import session


def window_parity(model: torch.nn.Module, onnx_path: str | Path, windows: np.ndarray) -> float:
    """Largest |ORT - torch| over all outputs, for the windows at two batch sizes and two window lengths."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    W = windows.shape[1]
    for batch in (windows[:2], windows):
        for w in (W, max(8, W // 2)):
            x = np.ascontiguousarray(batch[:, -w:], dtype=np.float32)
            with torch.no_grad():
                ref = model(torch.from_numpy(x))
            got = sess.run(None, {"x": x})
            worst = max(worst, *(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref, strict=True)))
    return worst


def step_outputs(step_sess, sequence: np.ndarray, pos=0.0) -> tuple[np.ndarray, ...]:
    """The step graph run from its initial state over a normalised real sequence (T, F), one event at a time:
    its head outputs, logits (T, H, 3) and positions (T, H) (a regression model: predictions (T, H)). ``pos``: the
    attention's starting position in the day. A graph for B streams takes B sequences (B, T, F) and a position per
    stream, and returns each output with a leading B: (B, T, H, 3) and (B, T, H)."""
    from lobnet.models.streaming import carry, initial_value

    ins = step_sess.get_inputs()
    n_heads = len(step_sess.get_outputs()) - (len(ins) - 1)  # one output per state, the rest the heads'
    batch = ins[0].shape[0]
    state = [initial_value(i.name, i.shape) for i in ins[1:]]
    for i, s in zip(ins[1:], state, strict=True):
        if i.name == "pos":
            s += np.reshape(pos, (-1, 1))
    seq = np.ascontiguousarray(sequence, dtype=np.float32).reshape(batch, -1, ins[0].shape[1])
    heads = [[] for _ in range(n_heads)]
    for t in range(seq.shape[1]):
        got = step_sess.run(None, dict(zip([i.name for i in ins], [seq[:, t], *state], strict=True)))
        state = [carry(n, i.shape[1:]) for n, i in zip(got[n_heads:], ins[1:], strict=True)]
        for h, v in zip(heads, got[:n_heads], strict=True):
            h.append(v)
    out = tuple(np.stack(h, 1) for h in heads)
    return tuple(o[0] for o in out) if np.ndim(sequence) == 2 else out


def _worst(a: tuple, b: tuple) -> float:
    """Largest |a - b| over every output of two tuples of head outputs."""
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def batch_parity(step_path: str | Path, batch_path: str | Path, sequence: np.ndarray) -> float:
    """Largest |B-stream step - one-stream step| over a real sequence (T, F): stream b of the B-stream graph reads
    the sequence rotated by b events, from position 13 b in its day, against the one-stream graph on the same
    events from the same position. Checked on the first two, the middle and the last stream (a row mixed up with
    another shows on one of them)."""
    batch_sess = session(batch_path)
    B = batch_sess.get_inputs()[0].shape[0]
    streams = np.stack([np.roll(sequence, -b, axis=0) for b in range(B)])
    starts = 13.0 * np.arange(B)
    outs = step_outputs(batch_sess, streams, starts)
    one = session(step_path)
    worst = 0.0
    for b in sorted({0, min(1, B - 1), B // 2, B - 1}):
        worst = max(worst, _worst(tuple(o[b] for o in outs), step_outputs(one, streams[b], starts[b])))
    return worst


def step_parity(model, step_path: str | Path, window_path: str | Path, windows: np.ndarray) -> float:
    """Largest |step - full window| over every event of real sequences: the step graph, started from its
    initial state at a window's first event, against the full-window graph on the events so far (torch where
    the prefix is shorter than the graph's minimum window of 8)."""
    step_sess = session(step_path)
    return _prefix_parity(model, lambda seq: step_outputs(step_sess, seq), session(window_path), windows)


def _prefix_parity(model, outputs, win_sess, windows: np.ndarray) -> float:
    """Largest difference between ``outputs(seq)`` (a step's head outputs over a sequence, from its initial
    state) and the full-window graph on each prefix, over the first and last of ``windows``."""
    worst = 0.0
    for seq in (windows[0], windows[-1]):
        outs = outputs(seq)
        for t in range(len(seq)):
            prefix = np.ascontiguousarray(seq[None, : t + 1], dtype=np.float32)
            if t + 1 >= 8:
                ref = win_sess.run(None, {"x": prefix})
            else:
                with torch.no_grad():
                    ref = [r.numpy() for r in model(torch.from_numpy(prefix))]
            worst = max(worst, _worst(tuple(o[t] for o in outs), tuple(r[0] for r in ref)))
    return worst


def sequence_parity(model, step_path: str | Path, sequence: np.ndarray, window: int) -> float:
    """Largest |step - torch| over a real stretch of 3 W consecutive events: the step graph against the model
    run over the whole stretch as one sequence (:func:`~lobnet.models.streaming.sequence_outputs`)."""
    from lobnet.models.streaming import sequence_outputs

    ref = tuple(r[0].numpy() for r in sequence_outputs(model, torch.from_numpy(sequence[None]), window))
    return _worst(step_outputs(session(step_path), sequence), ref)


def native_parity(model, native, step_path: str | Path, window_path: str | Path, windows, sequence) -> float:
    """Largest difference of the native step (:class:`lobnet.live.native.NativeStep`) from the other graphs, on
    real events: against the full-window graph on every prefix of two real windows (as :func:`step_parity`), and
    against the ONNX step over the real parity sequence, its first and second halves each stepped from a reset, as
    two days in a row (a reset that left any state behind would show on the second)."""
    worst = _prefix_parity(model, native.outputs, session(window_path), windows)
    step_sess = session(step_path)
    half = len(sequence) // 2
    for part in (sequence[:half], sequence[half:]):
        worst = max(worst, _worst(native.outputs(part), step_outputs(step_sess, part)))  # reset, then the part
    return worst
