"""ONNX Runtime for the hot loop: the session (:func:`session`), the
direct call on an IOBinding, and :class:`StepRunner`, the step graph bound once to preallocated buffers. The
replay, the export's parity checks, the benchmarks and any deployment use these, without importing the replay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lobnet.data.errors import LobDataError


def session(path: str | Path, providers: list[str] | None = None, threads: int = 1, arena: bool = True):
    """An ONNX Runtime session set up for the hot loop: ``threads`` intra-op threads, one inter-op thread,
    sequential execution, every graph optimisation (constant folding, fusions). ``arena=False`` turns off the CPU
    memory arena: in a one-event step the only allocations left are a kernel's scratch buffers (the ``LSTM``
    operator's), which plain malloc serves faster than the arena's bookkeeping."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.enable_cpu_mem_arena = arena
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    providers = list(providers or ["CPUExecutionProvider"])
    if not Path(path).is_file():
        raise LobDataError(path, None, "no such ONNX model")
    try:
        sess = ort.InferenceSession(str(path), so, providers=providers)
    except Exception as e:  # onnxruntime's InvalidProtobuf, Fail, ... on a damaged or foreign file
        raise LobDataError(path, None, f"not a loadable ONNX model ({str(e).strip()[:300]})") from None
    # ONNX Runtime falls back to the CPU with only a warning when a provider is not built in or fails to load
    # (onnxruntime without -gpu, a missing CUDA library); a figure labelled CUDA must not come from the CPU.
    if missing := [p for p in providers if p not in sess.get_providers()]:
        raise RuntimeError(
            f"{path}: execution provider {missing} is not available in onnxruntime {ort.__version__} here "
            f"(this session runs on {sess.get_providers()}; built in: {ort.get_available_providers()}). "
            "CUDAExecutionProvider needs the onnxruntime-gpu package and the CUDA libraries it was built for."
        )
    return sess


def ort_call(sess, binding):
    """``(run, arg)`` such that ``run(arg, None)`` runs ``sess`` on an IOBinding's buffers: the session's own C++
    call, without the Python wrapper's per-call work, where this onnxruntime has the internals it needs
    (``_sess``, ``_iobinding``), else the public ``run_with_iobinding``, which does the same. The streamer's
    engines and ``scripts/bench_inference.py`` call ONNX Runtime this way."""
    if hasattr(sess, "_sess") and hasattr(binding, "_iobinding"):
        return sess._sess.run_with_iobinding, binding._iobinding
    return sess.run_with_iobinding, binding


def _in_place_states(path: str | Path) -> set[str]:
    """The states whose output the step graph computes with a ``ScatterND`` into the state itself (the attention
    caches): ONNX Runtime's ScatterND skips copying its data input when the output is the same memory, so these
    can be bound in place."""
    import onnx

    return {
        n.input[0]
        for n in onnx.load(str(path)).graph.node
        if n.op_type == "ScatterND" and list(n.output) == [f"{n.input[0]}_out"]
    }


class StepRunner:
    """``model_step.onnx`` bound once to preallocated buffers. Write an event's normalised features into
    :attr:`x` (shape (1, F); :attr:`row` is the same memory, flat), call the runner, read :attr:`logits` and
    :attr:`position` (a regression model: :attr:`prediction`). Two IOBindings alternate, so the state one call
    writes is the next call's input, with no copy and no allocation: a buffer the graph returns with the event
    appended (one entry longer than its input, :func:`~lobnet.models.streaming.carry`) is bound as the next input
    from its second entry on, and an attention cache is one buffer bound as both input and output
    (:func:`_in_place_states`). A graph for B streams (:func:`lobnet.live.export.export_step` with ``batch``) runs
    the same way, with row b of :attr:`x` and of the outputs stream b's."""

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int = 1):
        from lobnet.models.streaming import initial_value

        self.sess = sess = session(path, providers, threads, arena=False)
        ins = sess.get_inputs()
        outs = {o.name: o.shape for o in sess.get_outputs()}
        self.x = np.zeros(ins[0].shape, np.float32)
        self.row = self.x.reshape(-1)
        self.init = {i.name: initial_value(i.name, i.shape) for i in ins[1:]}
        # the heads' outputs (logits and position, or a regression model's prediction), each its own attribute
        self.heads = {
            n: np.zeros(shape, np.float32)
            for n, shape in outs.items()
            if not (n.endswith("_out") and n[:-4] in self.init)
        }
        for name, arr in self.heads.items():
            setattr(self, name, arr)
        # two output-sized buffers per state tensor; a call reads the tail of one and writes the whole other. A cache
        # that the graph changes with a ScatterND has one buffer, bound as both input and output: ONNX Runtime's
        # ScatterND skips its copy when the two are the same memory, so the call writes one slot in place.
        inplace = _in_place_states(path)
        self.bufs = {}
        for n, a in self.init.items():
            shape = outs[f"{n}_out"]
            self.bufs[n] = [np.zeros(shape, a.dtype)] * 2 if n in inplace else [np.zeros(shape, a.dtype) for _ in "ab"]
        self.views = {n: [self._tail(o, a.shape) for o in self.bufs[n]] for n, a in self.init.items()}
        self.bindings = []
        for src, dst in ((0, 1), (1, 0)):
            b = sess.io_binding()
            b.bind_input(ins[0].name, "cpu", 0, np.float32, list(self.x.shape), self.x.ctypes.data)
            for n in self.init:
                a, o = self.views[n][src], self.bufs[n][dst]
                b.bind_input(n, "cpu", 0, a.dtype.type, list(a.shape), a.ctypes.data)
                b.bind_output(f"{n}_out", "cpu", 0, o.dtype.type, list(o.shape), o.ctypes.data)
            for name, arr in self.heads.items():
                b.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
            self.bindings.append(b)
        calls = [ort_call(sess, b) for b in self.bindings]
        self._run, self._bound = calls[0][0], [arg for _, arg in calls]
        self.reset()

    @staticmethod
    def _tail(out: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The next input inside an output buffer: a view, the same entries as :func:`carry` copies."""
        from lobnet.models.streaming import carry

        view = carry(out, shape[1:])
        if not np.shares_memory(view, out):
            raise ValueError(f"state of shape {shape} is not a contiguous tail of its output {out.shape}")
        return view

    def reset(self, streams=None) -> None:
        """The initial state (a new day): of every stream, or of ``streams`` (indices into the batch) only, when a
        graph for several symbols carries on with the others. A state's row b is stream b's whatever its declared
        shape (the LSTM's (1, B, hidden) is laid out as (B, 1, hidden)), so rows are taken from the flat
        (B, -1) form."""
        if streams is None:
            for n, a in self.init.items():
                self.views[n][0][:] = a
            self.flip = 0
            return
        batch = self.x.shape[0]
        for n, a in self.init.items():
            self.views[n][self.flip].reshape(batch, -1)[streams] = a.reshape(batch, -1)[streams]

    def __call__(self) -> None:
        self._run(self._bound[self.flip], None)
        self.flip ^= 1
