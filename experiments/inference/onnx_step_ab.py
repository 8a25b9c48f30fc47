"""Candidate changes to the ONNX step graph, each timed against the graph as ``lobnet-export`` writes it, interleaved
in one run (the inference study's "leaner ONNX step"):

    .venv/bin/python experiments/inference/onnx_step_ab.py [--out bench_results]

* ``mask_from_position``: the attention mask computed from the event's position (``Less`` of the slot indices
  against pos + 1, then ``Where``) instead of carried as a state tensor and updated by a ``ScatterElements``: one
  node more, two bound tensors fewer. Checked to give the same outputs over 150 events first.
* ``bound_tensors``: what one more bound tensor costs a call, the floor under packing state tensors together: an
  Identity graph on a (1, 48) row with 0, 10 and 20 more inputs bound (unread), against ``onnx_relu_chain_40`` of
  ``scripts/bench_inference.py`` for what a node costs.

Writes onnx_step_ab.json and onnx_step_ab.md to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))


def mask_from_position(path: Path, out: Path) -> Path:
    """``path``'s step graph with its attention mask computed from ``pos`` instead of carried as state."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    node = next(n for n in g.node if n.op_type == "ScatterElements")
    span = next(i for i in g.input if i.name == "attn_mask").type.tensor_type.shape.dim[1].dim_value
    g.initializer.extend(
        [
            numpy_helper.from_array(np.arange(span, dtype=np.float64).reshape(1, span), "ab_slots"),
            numpy_helper.from_array(np.zeros((1, 1), np.float32), "ab_zero"),
            numpy_helper.from_array(np.full((1, 1), -np.inf, np.float32), "ab_ninf"),
        ]
    )
    at = list(g.node).index(node)
    g.node.remove(node)
    g.node.insert(at, helper.make_node("Where", ["ab_written", "ab_zero", "ab_ninf"], [node.output[0]]))
    g.node.insert(at, helper.make_node("Less", ["ab_slots", "pos_out"], ["ab_written"]))  # slot < pos + 1
    for values in (g.input, g.output):
        for v in [v for v in values if v.name in ("attn_mask", "attn_mask_out")]:
            values.remove(v)
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    return out


def identity_with_inputs(path: Path, extra: int) -> Path:
    import onnx
    from onnx import TensorProto, helper

    def t(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 48])

    g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "bound", [t("x"), *(t(f"s{i}") for i in range(extra))], [t("y")]
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench_results")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calls", type=int, default=300, help="calls per item per round")
    a = ap.parse_args()

    import torch
    from bench_inference import write_results

    from lobnet.live.export import export_step
    from lobnet.live.runtime import StepRunner, ort_call, session
    from lobnet.models import build_model
    from lobnet.models.streaming import StepModule

    torch.manual_seed(0)
    items, keep = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("transformer", "hybrid"):
            model = build_model(name, n_features=100, n_horizons=3, dt_index=5).eval()
            base = export_step(StepModule(model, span=100), tmp / f"{name}.onnx")
            runners = {
                "as exported": StepRunner(base),
                "mask_from_position": StepRunner(mask_from_position(base, tmp / f"{name}_m.onnx")),
            }
            x = np.random.default_rng(0).standard_normal(runners["as exported"].x.shape).astype(np.float32)
            for r in runners.values():
                r.x[:] = x
            for t in range(150):  # the same outputs, past the cache's first wrap
                for r in runners.values():
                    r()
                diff = float(np.abs(runners["as exported"].logits - runners["mask_from_position"].logits).max())
                if diff > 1e-5:
                    raise AssertionError(f"{name}: the candidate differs by {diff:.3g} at event {t}")
            items += [(f"{name} {k}", r) for k, r in runners.items()]
        for extra in (0, 10, 20):
            sess = session(identity_with_inputs(tmp / f"id{extra}.onnx", extra))
            b = sess.io_binding()
            arrays = {i.name: np.zeros((1, 48), np.float32) for i in sess.get_inputs()}
            for n, arr in arrays.items():
                b.bind_input(n, "cpu", 0, np.float32, [1, 48], arr.ctypes.data)
            y = np.zeros((1, 48), np.float32)
            b.bind_output("y", "cpu", 0, np.float32, [1, 48], y.ctypes.data)
            run, arg = ort_call(sess, b)
            keep.append((arrays, y, b))
            items.append((f"identity, {extra} more bound inputs", lambda run=run, arg=arg: run(arg, None)))
        for _, fn in items:
            for _ in range(300):
                fn()
        clock = time.perf_counter_ns
        ns = {k: [] for k, _ in items}
        gc.collect()
        gc.disable()
        try:
            for _ in range(a.rounds):
                for k, fn in items:
                    for _ in range(a.calls):
                        t0 = clock()
                        fn()
                        ns[k].append(clock() - t0)
        finally:
            gc.enable()
    results = {
        k: {"p50_us": float(np.median(v) / 1e3), "p99_us": float(np.percentile(v, 99) / 1e3)} for k, v in ns.items()
    }
    b0, b20 = results["identity, 0 more bound inputs"]["p50_us"], results["identity, 20 more bound inputs"]["p50_us"]
    results["per_bound_tensor_us"] = (b20 - b0) / 20
    lines = [
        f"Candidate ONNX step changes, µs (p50 / p99), one thread, {a.rounds} interleaved rounds of {a.calls} calls",
        "",
        "| graph | p50 / p99 µs |",
        "|---|---:|",
        *(f"| {k} | {v['p50_us']:.2f} / {v['p99_us']:.1f} |" for k, v in results.items() if isinstance(v, dict)),
        "",
        f"One more bound tensor costs {results['per_bound_tensor_us']:.3f} µs at p50 ((20 more - none) / 20).",
    ]
    write_results(Path(a.out), "onnx_step_ab", results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
