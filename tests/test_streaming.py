"""The step modules (lobnet/models/streaming.py) in torch, and the ONNX step graphs written from them
(lobnet/live/step_graph.py), on random weights: what a step computes, event by event, against the batch model. The
exported graphs of trained models are checked on real data in test_export.py."""

from __future__ import annotations

import pytest
import torch

from lobnet.models import build_model
from lobnet.models.streaming import StepModule, carry, has_step, sequence_outputs

F, W = 12, 16


def _steps(model, z, pos: float = 0.0):
    step = StepModule(model, span=W).eval()
    state = step.initial_state(z.shape[0])
    if pos:
        state[-1] += pos  # the attention's position in the day
    shapes = [shape for _, shape in step.state_shapes()]
    out = []
    with torch.no_grad():
        for t in range(z.shape[1]):
            logits, position, *new = step(z[:, t], *state)
            state = [carry(n, shape) for n, shape in zip(new, shapes, strict=True)]
            out.append((logits, position))
    return out


CASES = [
    ("lstm", {}),
    ("tcn", {"levels": 2}),
    ("transformer", {"dt_index": 3}),
    ("hybrid", {"dt_index": 3, "tcn_levels": 1}),
]


@pytest.mark.parametrize("name,kw", CASES)
def test_step_equals_the_model_over_the_sequence_and_the_window_on_prefixes(name, kw):
    torch.manual_seed(0)
    model = build_model(name, n_features=F, n_horizons=2, **kw).eval()
    z = torch.randn(2, 3 * W, F)  # normalised features, as the step takes them
    ref_logits, ref_pos = sequence_outputs(model, z, W)
    got = _steps(model, z)
    for t, (logits, position) in enumerate(got):
        assert torch.allclose(logits, ref_logits[:, t], atol=2e-6), t
        assert torch.allclose(position, ref_pos[:, t], atol=2e-6), t
        if t < W:  # within the first W events the step is the window model on the events so far
            with torch.no_grad():
                assert torch.allclose(logits, model(z[:, : t + 1])[0], atol=2e-6), t


@pytest.mark.parametrize("name,kw", [("tcn", {"levels": 2, "kernel_size": 2}), ("transformer", {"layers": 1})])
def test_step_equals_the_sliding_window_when_the_memory_fits_in_it(name, kw):
    """A TCN whose receptive field is at most W, a one-layer Transformer: exact against the window at every
    event after the first W, as the README states."""
    torch.manual_seed(1)
    model = build_model(name, n_features=F, n_horizons=2, **kw).eval()
    if name == "tcn":
        assert model.receptive_field <= W
    z = torch.randn(1, 3 * W, F)
    got = _steps(model, z)
    with torch.no_grad():
        for t in range(W, 3 * W):
            assert torch.allclose(got[t][0], model(z[:, t - W + 1 : t + 1])[0], atol=2e-6), t


def test_an_lstm_step_remembers_beyond_the_window():
    torch.manual_seed(2)
    model = build_model("lstm", n_features=F, n_horizons=2).eval()
    z = torch.randn(1, 3 * W, F)
    got = _steps(model, z)
    with torch.no_grad():
        window = model(z[:, 2 * W : 3 * W])[0]
    assert not torch.allclose(got[-1][0], window, atol=1e-7)


def test_models_without_a_step_fall_back_to_the_window():
    assert not has_step(build_model("deeplob", n_features=40, n_horizons=2, levels=10))
    absolute = build_model("transformer", n_features=F, n_horizons=2, positions="sinusoidal")
    assert not has_step(absolute) and has_step(build_model("transformer", n_features=F, n_horizons=2))
    with pytest.raises(ValueError, match="only positions=rotary"):
        StepModule(absolute, span=W)


def test_attention_step_late_in_a_long_day():
    """Queries and keys are rotated by their position in the day (float64 tables), so twenty million events in,
    the step still computes the window-relative scores."""
    torch.manual_seed(3)
    model = build_model("transformer", n_features=F, n_horizons=2, dt_index=3).eval()
    z = torch.randn(1, 2 * W, F)
    ref_logits, _ = sequence_outputs(model, z, W)
    for t, (logits, _) in enumerate(_steps(model, z, pos=2e7)):
        assert torch.allclose(logits, ref_logits[:, t], atol=1e-5), t


@pytest.mark.parametrize(
    "name,kw", [*CASES, ("transformer", {"layers": 1}), ("hybrid", {"tcn_levels": 2, "kernel_size": 2})]
)
def test_onnx_step_graph_equals_the_model_over_the_sequence(tmp_path, name, kw):
    """The graph :mod:`lobnet.live.step_graph` writes, run by ONNX Runtime one event at a time from its initial state
    (and, with attention, from a position deep into a day), against the model over the whole sequence."""
    import numpy as np

    from lobnet.live.export import export_step
    from lobnet.live.parity import step_outputs
    from lobnet.live.runtime import session

    torch.manual_seed(4)
    model = build_model(name, n_features=F, n_horizons=2, **kw).eval()
    step = StepModule(model, span=W)
    sess = session(export_step(step, tmp_path / "step.onnx"))
    assert [i.name for i in sess.get_inputs()] == ["x", *(n for n, _ in step.state_shapes())]
    z = torch.randn(1, 3 * W, F)
    ref_logits, ref_pos = (r[0].numpy() for r in sequence_outputs(model, z, W))
    for start in (0.0, 2e7) if step.attn is not None else (0.0,):
        logits, positions = step_outputs(sess, z[0].numpy(), start)
        assert np.abs(logits - ref_logits).max() <= 1e-5 and np.abs(positions - ref_pos).max() <= 1e-5, start


@pytest.mark.parametrize("dense_kib", [0, 10**9])
def test_tcn_step_graph_with_taps_gathered_or_read_whole(tmp_path, monkeypatch, dense_kib):
    """Both ways :func:`lobnet.live.step_graph._tcn` reads a dilated convolution's taps (a ``Gather``, or the whole
    buffer against zero weights), forced for every dilation, equal the model over the sequence."""
    import numpy as np

    from lobnet.live import step_graph
    from lobnet.live.export import export_step
    from lobnet.live.parity import step_outputs
    from lobnet.live.runtime import session

    monkeypatch.setattr(step_graph, "DENSE_ZEROS_KIB", dense_kib)
    torch.manual_seed(6)
    model = build_model("tcn", n_features=F, n_horizons=2, levels=3).eval()
    path = export_step(StepModule(model, span=W), tmp_path / "step.onnx")
    ops = [n.op_type for n in __import__("onnx").load(str(path)).graph.node]
    assert ops.count("Gather") == (0 if dense_kib else 4)  # both convolutions of the blocks with dilation 2 and 4
    z = torch.randn(1, 2 * W, F)
    ref_logits = sequence_outputs(model, z, W)[0][0].numpy()
    assert np.abs(step_outputs(session(path), z[0].numpy())[0] - ref_logits).max() <= 1e-5


@pytest.mark.parametrize("name,kw", CASES)
def test_step_runner_equals_the_graph_fed_state_by_state(tmp_path, name, kw):
    """The streamer's StepRunner binds a buffer's tail as the next input and a cache as its own output (written
    in place by ScatterND): over 3 W events, after the caches have wrapped, and again after a reset, it returns
    exactly what the graph returns when every state is passed as a separate array."""
    import numpy as np

    from lobnet.live.export import export_step
    from lobnet.live.parity import step_outputs
    from lobnet.live.runtime import StepRunner, session

    torch.manual_seed(5)
    model = build_model(name, n_features=F, n_horizons=2, **kw).eval()
    path = export_step(StepModule(model, span=W), tmp_path / "step.onnx")
    z = torch.randn(3 * W, F).numpy()
    ref = step_outputs(session(path), z)[0]
    runner = StepRunner(path)
    for _ in range(2):
        got = []
        for row in z:
            runner.row[:] = row
            runner()
            got.append(runner.logits[0].copy())
        assert np.array_equal(np.stack(got), ref)
        runner.reset()


@pytest.mark.parametrize("name,kw", CASES)
def test_a_step_graph_for_several_streams_steps_each_as_its_own(tmp_path, name, kw):
    """A graph for B streams (symbols stepped together in one call) gives every stream exactly what the one-stream
    graph gives it alone: three streams with their own features and (with attention) their own positions in the
    day, over 3 W events, so the caches wrap at different events. Through the streamer's StepRunner too, where a
    stream starting a new day (``reset(streams)``) starts afresh while the others carry on."""
    import numpy as np

    from lobnet.live.export import export_step
    from lobnet.live.parity import step_outputs
    from lobnet.live.runtime import StepRunner, session

    torch.manual_seed(7)
    model = build_model(name, n_features=F, n_horizons=2, **kw).eval()
    step = StepModule(model, span=W)
    one = session(export_step(step, tmp_path / "one.onnx"))
    path = export_step(step, tmp_path / "three.onnx", batch=3)
    T = 3 * W
    z = torch.randn(3, T, F).numpy()
    starts = np.array([0.0, 5.0, 2e7]) if step.attn is not None else np.zeros(3)
    logits, positions = step_outputs(session(path), z, starts)
    for b in range(3):
        ref_logits, ref_pos = step_outputs(one, z[b], starts[b])
        assert np.abs(logits[b] - ref_logits).max() <= 1e-6 and np.abs(positions[b] - ref_pos).max() <= 1e-6, b
    runner = StepRunner(path)
    new_day = {5: [1], 11: [0, 2]}  # event -> the streams whose day starts there
    got = []
    for t in range(T):
        if t in new_day:
            runner.reset(new_day[t])
        runner.x[:] = z[:, t]
        runner()
        got.append(runner.logits.copy())
    got = np.stack(got, 1)
    for b, first in ((0, 11), (1, 5), (2, 11)):
        ref = step_outputs(one, z[b, first:])[0]
        assert np.abs(got[b, first:] - ref).max() <= 1e-6, b
    fed = step_outputs(session(path), z[:, :5])[0]  # every stream from the day's start, state by state
    assert np.array_equal(got[:, :5], fed)
    with pytest.raises(ValueError, match="at least one stream"):
        export_step(step, tmp_path / "none.onnx", batch=0)


def test_the_export_check_of_a_several_streams_graph_catches_another_model(tmp_path):
    """:func:`lobnet.live.parity.batch_parity`, which lobnet-export runs on every ``step_batches`` graph: zero against
    the same model's one-stream graph, large against another model's."""
    from lobnet.live.export import export_step
    from lobnet.live.parity import batch_parity

    torch.manual_seed(8)
    one = export_step(StepModule(build_model("transformer", n_features=F, n_horizons=2)), tmp_path / "one.onnx")
    seq = torch.randn(2 * W, F).numpy()
    other = export_step(StepModule(build_model("transformer", n_features=F, n_horizons=2)), tmp_path / "b.onnx", 4)
    assert batch_parity(one, other, seq) > 1e-3  # another model's weights (a fresh draw)
    torch.manual_seed(8)
    model = build_model("transformer", n_features=F, n_horizons=2)
    assert batch_parity(one, export_step(StepModule(model), tmp_path / "b4.onnx", 4), seq) <= 1e-6
