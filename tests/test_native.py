"""The native step engine (lobnet/live/native.py) on random weights: every step architecture against the model run
over a sequence, across a day boundary reset, for several streams per call, and its file refused when it does not
match the model card. The exported engine is checked on real events at export (test_export.py) and in the
streamer (test_stream.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lobnet.data.errors import LobDataError
from lobnet.live.native import NativeStep, _exp, _gelu_
from lobnet.models import build_model
from lobnet.models.streaming import StepModule, sequence_outputs

from .test_streaming import CASES, F, W

CASES = [
    *CASES,
    ("tcn", {"levels": 3, "kernel_size": 2}),  # dilations 1, 2, 4 with two taps
    ("hybrid", {"dt_index": -1, "tcn_levels": 2, "layers": 2}),  # no time-gap encoding, two attention layers
]
TOL = 1e-5


def _model(name, kw, seed=0):
    torch.manual_seed(seed)
    return build_model(name, n_features=F, n_horizons=2, **kw).eval()


def _card(name, model):
    import dataclasses

    return {"model": name, "config": dataclasses.asdict(model.cfg), "window": W}


@pytest.mark.parametrize("name,kw", CASES)
def test_native_step_equals_the_model_over_a_sequence_and_after_a_day_reset(name, kw):
    model = _model(name, kw)
    native = NativeStep.from_step(StepModule(model, span=W))
    z = torch.randn(2, 3 * W, F)  # two days; the attention's cache wraps after W events
    for day in range(2):  # outputs() resets first: the second day must not see the first
        ref_logits, ref_pos = sequence_outputs(model, z[day : day + 1], W)
        logits, positions = native.outputs(z[day].numpy())
        assert np.abs(logits - ref_logits[0].numpy()).max() <= TOL, day
        assert np.abs(positions - ref_pos[0].numpy()).max() <= TOL, day


@pytest.mark.parametrize("name,kw", [CASES[1], CASES[3]])
def test_several_streams_step_each_as_its_own_and_reset_alone(name, kw):
    """Stream b of a B-stream call equals a one-stream step on the same events; resetting one stream mid-day
    starts its day afresh and leaves the others as they were. Five streams: the products take four at a time,
    then the fifth alone."""
    model = _model(name, kw)
    step = StepModule(model, span=W)
    B = 5
    one, many = NativeStep.from_step(step), NativeStep.from_step(step, batch=B)
    z = np.random.default_rng(1).standard_normal((B, 2 * W, F)).astype(np.float32)
    got = np.zeros((B, 2 * W, 2, 3), np.float32)
    got_pos = np.zeros((B, 2 * W, 2), np.float32)
    for t in range(2 * W):
        if t == W:
            many.reset([1, 4])  # streams 1 and 4 start a new day at event W
        many.x[:] = z[:, t]
        many()
        got[:, t], got_pos[:, t] = many.logits, many.position
    for b in range(B):
        if b in (1, 4):
            days = [one.outputs(z[b, :W]), one.outputs(z[b, W:])]
            ref, ref_pos = (np.concatenate(parts) for parts in zip(*days, strict=True))
        else:
            ref, ref_pos = one.outputs(z[b])
        assert np.abs(got[b] - ref).max() <= TOL and np.abs(got_pos[b] - ref_pos).max() <= TOL, b


def test_a_native_step_file_that_does_not_match_the_model_card_is_refused(tmp_path):
    small, other = _model("lstm", {"hidden": 8}), _model("lstm", {"hidden": 16})
    card, other_card = _card("lstm", small), _card("lstm", other)
    path = NativeStep.from_step(StepModule(small, span=W)).save(tmp_path / "model_native.npz", card)
    again = NativeStep.load(path, card, tmp_path / "model.json")  # its own card: loads, and computes the same
    x = np.random.default_rng(2).standard_normal((W, F)).astype(np.float32)
    assert np.array_equal(again.outputs(x)[0], NativeStep.from_step(StepModule(small, span=W)).outputs(x)[0])
    with pytest.raises(LobDataError, match=r"model_native.npz.*weights are for config .*model card .*model.json"):
        NativeStep.load(path, other_card, tmp_path / "model.json")
    with pytest.raises(LobDataError, match="weights are for span 16, but the model card .* says 32"):
        NativeStep.load(path, {**card, "window": 32}, tmp_path / "model.json")
    # a file relabelled as the other model's, digest and all: its layout still gives it away
    with np.load(path) as z:
        w, m, manifest = z["w"], z["m"], json.loads(str(z["manifest"]))
    manifest["config"] = other_card["config"]
    relabelled = tmp_path / "relabelled.npz"
    with open(relabelled, "wb") as f:
        np.savez(f, w=w, m=m, manifest=np.array(json.dumps(manifest)))
    with pytest.raises(
        LobDataError,
        match=r"relabelled.npz.*do not match the model card.*laid out for 1,288 weights, the card.s lstm has 4,104",
    ):
        NativeStep.load(relabelled, other_card, tmp_path / "model.json")
    damaged = tmp_path / "damaged.npz"
    with open(damaged, "wb") as f:
        np.savez(f, w=w * 1.5, m=m, manifest=np.array(json.dumps(json.loads(str(np.load(path)["manifest"])))))
    with pytest.raises(LobDataError, match="damaged.npz.*digest mismatch"):
        NativeStep.load(damaged, card, tmp_path / "model.json")
    (tmp_path / "junk.npz").write_bytes(b"not a file numpy wrote")
    with pytest.raises(LobDataError, match="junk.npz.*not a readable native step file"):
        NativeStep.load(tmp_path / "junk.npz", card, tmp_path / "model.json")


def test_the_kernels_exp_and_gelu_against_libm():
    """The vectorisable exp and GELU the kernels use, against math.exp and math.erf, over their whole range."""
    from numba import njit

    @njit
    def exps(v, out):
        for i in range(v.shape[0]):
            out[i] = _exp(v[i])

    v = np.linspace(-80.0, 80.0, 20001)
    got = np.zeros_like(v)
    exps(v, got)
    assert np.max(np.abs(got / np.exp(v) - 1.0)) < 5e-8
    a = np.linspace(-12.0, 12.0, 4801).astype(np.float32)
    exact = np.array([0.5 * u * (1.0 + math.erf(u / math.sqrt(2.0))) for u in a.astype(np.float64)])
    g = a.copy()
    _gelu_(g, np.zeros_like(g))
    assert np.max(np.abs(g - exact) / np.maximum(1.0, np.abs(exact))) < 3e-7  # float32 rounding of the result


def test_native_attention_late_in_a_long_day_equals_the_onnx_step(tmp_path):
    """20,000 events from a day's start: the rings have wrapped hundreds of times and the rotary angles are large;
    the native step still equals the ONNX step graph (itself held to the model in test_streaming.py)."""
    from lobnet.live.export import export_step
    from lobnet.live.parity import step_outputs
    from lobnet.live.runtime import session

    model = _model("hybrid", {"dt_index": 3, "tcn_levels": 1})
    step = StepModule(model, span=W)
    z = np.random.default_rng(3).standard_normal((20_000, F)).astype(np.float32)
    ref_logits, ref_pos = step_outputs(session(export_step(step, tmp_path / "step.onnx")), z)
    logits, positions = NativeStep.from_step(step).outputs(z)
    assert np.abs(logits - ref_logits).max() <= TOL and np.abs(positions - ref_pos).max() <= TOL
