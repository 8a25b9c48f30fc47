"""Per-event inference latency of every architecture at its default size, all in one run on one thread.

    .venv/bin/python scripts/bench_inference.py [--window 100] [--iters 5000] [--events 50000] [--out bench_results]
        [--scan ARCH:FIELD=VALUE[,FIELD=VALUE] ...] [--window-batches B,B,...] [--step-batches B,B,...]

For each architecture (untrained weights: latency does not depend on them), timed one event at a time:

* ``torch_window``: torch eager, the full (1, W, F) window (``torch.inference_mode``, one thread);
* ``onnx_window``: ``model.onnx`` on the same window, inputs and outputs bound once (IOBinding);
* ``onnx_step``: ``model_step.onnx`` through the streamer's :class:`~lobnet.live.runtime.StepRunner`;
* ``native_step``: the same step compiled with numba (:class:`~lobnet.live.native.NativeStep`);
* ``stream_e2e``: the streamer's hot loop on the built-in synthetic day (level 10): the compiled per-event feature
  update and z-score into the bound input, then the ONNX step (the full window for DeepLOB, which has no step
  graph); ``native_e2e``: the same loop with the native step;

plus the floor of one ONNX Runtime call from Python (an Identity graph on one feature row, bound the same way) and
of one more node (a chain of ReLUs on that row, against the Identity),
the per-event feature update alone (the Python form and the compiled form with the z-score, which the streamer
runs), and the one-pass factors (EWMean, EWVar, EWRegression update). Each ``--scan`` adds the step of one
architecture at another size (``tcn:channels=16``), to show what a step's width costs beside its nodes, and
``--window-batches`` the full-window graph on B symbols' windows in one call, and ``--step-batches`` the step graph
for B symbols stepped in one call (what batching across symbols buys against stepping each symbol as its event
arrives). Every figure
is a percentile over ``--iters`` calls after a warm-up, garbage collector frozen, all items timed interleaved in
``--rounds`` rounds (:class:`Plan`) so that they share the machine's noise. Writes bench_inference.json and
bench_inference.md to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ARCHS = ["lstm", "tcn", "transformer", "hybrid", "deeplob"]


class Plan:
    """Every timed call, run interleaved: ``rounds`` rounds, each giving every item its share of calls in turn,
    so that all figures of one run see the same phases of a noisy machine (a slow minute lands on all of them,
    not on whichever item was being timed then)."""

    def __init__(self, rounds: int):
        self.rounds, self.items = rounds, []

    def add(self, dest: dict, key: str, fn, iters: int) -> None:
        self.items.append((dest, key, fn, iters))

    def run(self, warm: int = 300) -> None:
        for _, _, fn, _ in self.items:
            for _ in range(warm):
                fn()
        clock = time.perf_counter_ns
        chunks = [[] for _ in self.items]
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            for _ in range(self.rounds):
                for j, (_, _, fn, iters) in enumerate(self.items):
                    ns = np.empty(max(iters // self.rounds, 1), dtype=np.int64)
                    for i in range(len(ns)):
                        t0 = clock()
                        fn()
                        ns[i] = clock() - t0
                    chunks[j].append(ns)
        finally:
            gc.enable()
            gc.unfreeze()
        for (dest, key, _, _), ch in zip(self.items, chunks, strict=True):
            us = np.concatenate(ch) / 1e3
            dest[key] = {
                "p50_us": float(np.median(us)),
                "p99_us": float(np.percentile(us, 99)),
                "max_us": float(us.max()),
            }


RELU_CHAIN = 40  # nodes of the per-node floor graph


def floor_graph(path: Path, width: int, relus: int = 0) -> Path:
    """The floor of one ONNX Runtime call: an Identity on a (1, width) row, or ``relus`` chained ReLUs on it, the
    least work a node can do, so that (chain - Identity) / relus is what one more node costs."""
    import onnx
    from onnx import TensorProto, helper

    if relus:
        names = ["x", *(f"r{i}" for i in range(1, relus)), "y"]
        nodes = [helper.make_node("Relu", [a], [b]) for a, b in zip(names, names[1:], strict=False)]
    else:
        nodes = [helper.make_node("Identity", ["x"], ["y"])]
    g = helper.make_graph(
        nodes,
        "floor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    return path


def optimized_nodes(path: Path) -> int:
    """Nodes of the graph as ONNX Runtime runs it (after ORT_ENABLE_ALL): in a single-event call each one has a
    fixed cost beside its arithmetic (``onnx_relu_chain_40`` against ``onnx_identity_call`` measures it), which on
    these small tensors is much of the step's latency."""
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(path.with_suffix(".optimized.onnx"))
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return len(onnx.load(so.optimized_model_filepath).graph.node)


def weights_kb(path: Path) -> float:
    """KiB of constants in the graph: the weights one call reads besides its state."""
    import onnx
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(t).nbytes for t in onnx.load(str(path)).graph.initializer) / 1024


def parse_scan(spec: str) -> tuple[str, dict]:
    """``"tcn:channels=16,levels=5"`` -> ``("tcn", {"channels": 16, "levels": 5})``: integer fields of the
    architecture's config dataclass (``lobnet.models.MODELS``)."""
    import dataclasses

    from lobnet.models import MODELS

    name, _, body = spec.partition(":")
    if name not in ARCHS or not body:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected ARCH:FIELD=VALUE[,FIELD=VALUE], ARCH one of {ARCHS}")
    try:
        fields = {k.strip(): int(v) for k, v in (kv.split("=") for kv in body.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: every field needs an integer value, as FIELD=VALUE") from None
    known = {f.name for f in dataclasses.fields(MODELS[name][0])}
    if unknown := sorted(set(fields) - known):
        raise argparse.ArgumentTypeError(f"{spec!r}: {name} has no field {unknown}; its fields: {sorted(known)}")
    return name, fields


def int_list(text: str) -> list[int]:
    """``"8,32"`` -> ``[8, 32]``."""
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers separated by commas") from None


def bound_call(sess, inputs: dict, outputs: dict):
    from lobnet.live.runtime import ort_call

    b = sess.io_binding()
    for name, arr in inputs.items():
        b.bind_input(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
    for name, arr in outputs.items():
        b.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
    run, arg = ort_call(sess, b)  # as the streamer calls ONNX Runtime
    return lambda: run(arg, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--iters", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds (see Plan)")
    ap.add_argument("--events", type=int, default=50_000, help="synthetic-day events for the end-to-end loop")
    ap.add_argument(
        "--scan",
        action="append",
        type=parse_scan,
        default=[],
        metavar="ARCH:FIELD=V,...",
        help="also time the step of ARCH with these config fields (e.g. tcn:channels=16), one row per --scan",
    )
    ap.add_argument(
        "--window-batches",
        type=int_list,
        default=[],
        metavar="B,B,...",
        help="also time the full-window graph on B symbols' windows in one call (e.g. 8,32): batching across symbols",
    )
    ap.add_argument(
        "--step-batches",
        type=int_list,
        default=[],
        metavar="B,B,...",
        help="also time the step graph for B symbols in one call (e.g. 2,8,64): an event of each, each its own state",
    )
    ap.add_argument("--out", default="bench_results")
    a = ap.parse_args()

    import torch

    from lobnet.data.synthetic import load_day
    from lobnet.features import FeatureParams, feature_names
    from lobnet.features.incremental import IncrementalFeatures
    from lobnet.live.export import export_step, export_window
    from lobnet.live.native import NativeStep
    from lobnet.live.runtime import StepRunner, session
    from lobnet.models import build_model
    from lobnet.models.streaming import StepModule, has_step
    from lobnet.online import EWMean, EWRegression, EWVar

    torch.set_num_threads(1)
    torch.manual_seed(0)
    groups = [*__import__("lobnet.features", fromlist=["DEFAULT_GROUPS"]).DEFAULT_GROUPS, "book"]
    params = FeatureParams(levels=10)
    names = feature_names(params, groups)
    F, W = len(names), a.window
    book = [i for i, n in enumerate(names) if n.split("_")[0] in ("ask", "bid") and n.split("_")[1] in ("dist", "sz")]
    events = load_day(levels=10, events=a.events, seed=0, dir=tempfile.gettempdir() + "/lobnet-bench-synthetic")
    feats = IncrementalFeatures(params, groups)
    X = np.ascontiguousarray(feats.input_matrix(events))
    rows = X.tolist()
    compiled = feats.compiled()
    rng = np.random.default_rng(0)
    mean, std = np.zeros(F, np.float32), np.ones(F, np.float32)
    results: dict = {"floor": {}, "archs": {}, "scan": {}}
    plan = Plan(a.rounds)
    bplan = Plan(a.rounds)  # the batched calls, timed after the rest: a call on B windows evicts the caches
    floor_ = results["floor"]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        floor = session(floor_graph(tmp / "identity.onnx", F))
        xf, yf = np.zeros((1, F), np.float32), np.zeros((1, F), np.float32)
        plan.add(floor_, "onnx_identity_call", bound_call(floor, {"x": xf}, {"y": yf}), a.iters)
        chain = session(floor_graph(tmp / "relu_chain.onnx", F, RELU_CHAIN))
        yc = np.zeros((1, F), np.float32)
        plan.add(floor_, f"onnx_relu_chain_{RELU_CHAIN}", bound_call(chain, {"x": xf}, {"y": yc}), a.iters)
        i = iter(range(10**9))
        n = len(rows)
        plan.add(floor_, "feature_update_python", lambda: feats.update(rows[next(i) % n], False), a.iters)
        zf = np.zeros(F, np.float32)
        f0, s0 = np.zeros(F), np.zeros(feats.n_slots)
        compiled(X[0], f0, s0, True, mean, std, zf)  # a day's first event: the state is defined from here on
        plan.add(
            floor_,
            "feature_update_compiled_zscore",
            lambda: compiled(X[next(i) % n], f0, s0, False, mean, std, zf),
            a.iters,
        )
        em, ev, er = EWMean(0.99), EWVar(0.99), EWRegression(0.99)
        xs = rng.standard_normal(a.iters + 1000).tolist()
        j = iter(range(10**9))
        plan.add(floor_, "ew_mean_update", lambda: em.update(xs[next(j) % len(xs)]), a.iters)
        plan.add(floor_, "ew_var_update", lambda: ev.update(xs[next(j) % len(xs)]), a.iters)

        def rls():
            k = next(j) % len(xs)
            er.update(xs[k], xs[k - 1])
            return er.coef

        plan.add(floor_, "ew_regression_update_and_coef", rls, a.iters)

        for name in ARCHS:
            extra = {"book_columns": book} if name == "deeplob" else {}
            if name in ("transformer", "hybrid"):
                extra["dt_index"] = names.index("log_dt")
            model = build_model(name, n_features=F, n_horizons=3, **extra).eval()
            r: dict = {"n_params": model.n_params()}
            x = torch.from_numpy(rng.standard_normal((1, W, F)).astype(np.float32))

            def torch_window(m=model, x=x):
                with torch.inference_mode():
                    return m(x)

            plan.add(r, "torch_window", torch_window, max(a.iters // 5, 500))
            wpath = export_window(model, F, tmp / f"{name}.onnx", W)
            ws = session(wpath)
            xw = x.numpy().copy()
            lo, po = np.zeros((1, 3, 3), np.float32), np.zeros((1, 3), np.float32)
            win = bound_call(ws, {"x": xw}, {"logits": lo, "position": po})
            plan.add(r, "onnx_window", win, a.iters)
            for b in a.window_batches:  # b symbols' windows in one call (the graph's batch is dynamic)
                xb = rng.standard_normal((b, W, F)).astype(np.float32)
                lb, pb = np.zeros((b, 3, 3), np.float32), np.zeros((b, 3), np.float32)
                call = bound_call(ws, {"x": xb}, {"logits": lb, "position": pb})
                bplan.add(r, f"onnx_window_batch_{b}", call, max(a.iters // b, 10 * a.rounds))
            if has_step(model):
                spath = export_step(StepModule(model, span=W), tmp / f"{name}_step.onnx")
                step = StepRunner(spath)
                step.x[:] = rng.standard_normal(step.x.shape)
                plan.add(r, "onnx_step", step, a.iters)
                r["step_nodes"] = optimized_nodes(spath)
                r["step_weights_kb"] = weights_kb(spath)
                run, row = step, step.row
                native = NativeStep.from_step(StepModule(model, span=W))
                native.x[:] = step.x
                plan.add(r, "native_step", native, a.iters)
                for b in a.step_batches:  # b symbols' events in one call, each symbol its own state
                    batched = StepRunner(export_step(StepModule(model, span=W), tmp / f"{name}_step_{b}.onnx", b))
                    batched.x[:] = rng.standard_normal(batched.x.shape)
                    bplan.add(r, f"onnx_step_batch_{b}", batched, max(a.iters // b, 10 * a.rounds))
                    nb = NativeStep.from_step(StepModule(model, span=W), batch=b)
                    nb.x[:] = batched.x
                    bplan.add(r, f"native_step_batch_{b}", nb, max(a.iters // b, 10 * a.rounds))
            else:
                run, row, native = win, xw[0, -1], None

            def e2e(run, row):
                k = iter(range(10**9))
                f, s = np.zeros(F), np.zeros(feats.n_slots)  # each loop its own feature state

                def loop():
                    i = next(k) % n
                    compiled(X[i], f, s, i == 0, mean, std, row)
                    run()

                return loop

            plan.add(r, "stream_e2e", e2e(run, row), a.iters)
            if native is not None:
                plan.add(r, "native_e2e", e2e(native, native.row), a.iters)
            results["archs"][name] = r

        for name, fields in a.scan:  # the same step at other sizes: what the width buys, against the nodes' floor
            spec = f"{name}:" + ",".join(f"{k}={v}" for k, v in fields.items())
            extra = {"dt_index": names.index("log_dt")} if name in ("transformer", "hybrid") else {}
            model = build_model(name, n_features=F, n_horizons=3, **extra, **fields).eval()
            spath = export_step(StepModule(model, span=W), tmp / f"scan{len(results['scan'])}_step.onnx")
            step = StepRunner(spath)
            step.x[:] = rng.standard_normal(step.x.shape)
            r = {"n_params": model.n_params(), "step_nodes": optimized_nodes(spath)}
            r["step_weights_kb"] = weights_kb(spath)
            plan.add(r, "onnx_step", step, a.iters)
            native = NativeStep.from_step(StepModule(model, span=W))
            native.x[:] = step.x
            plan.add(r, "native_step", native, a.iters)
            results["scan"][spec] = r

        print(f"timing {len(plan.items)} items in {a.rounds} interleaved rounds", flush=True)
        plan.run()
        if bplan.items:
            print(f"timing {len(bplan.items)} batched items", flush=True)
            bplan.run(warm=3)
        fl = results["floor"]
        fl["per_node_us"] = (fl[f"onnx_relu_chain_{RELU_CHAIN}"]["p50_us"] - fl["onnx_identity_call"]["p50_us"]) / (
            RELU_CHAIN - 1
        )
        for name, r in results["archs"].items():
            if "onnx_step" in r:
                r["window_over_step"] = r["onnx_window"]["p50_us"] / r["onnx_step"]["p50_us"]
                r["window_over_native"] = r["onnx_window"]["p50_us"] / r["native_step"]["p50_us"]
            print(name, json.dumps(r), flush=True)

    results["settings"] = {
        "window": W,
        "n_features": F,
        "iters": a.iters,
        "rounds": a.rounds,
        "threads": 1,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
    }
    write_results(Path(a.out), "bench_inference", results, table(results))


def write_results(out: Path, stem: str, results: dict, md: str) -> None:
    """``stem.json`` and the readable table ``stem.md`` in ``out``, and the table printed."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2))
    (out / f"{stem}.md").write_text(md)
    print(md)


def p50_p99(d: dict | None) -> str:
    """A timing's "p50 / p99" in µs for the tables, "-" where there is none."""
    return f"{d['p50_us']:.1f} / {d['p99_us']:.1f}" if d else "-"


def _batch_sizes(res: dict, kind: str) -> list[int]:
    """The B of every ``onnx_<kind>_batch_<B>`` figure of the run (``kind``: window or step)."""
    return sorted({int(k.rsplit("_", 1)[1]) for r in res["archs"].values() for k in r if f"{kind}_batch_" in k})


def _batch_header(title: str, batches: list[int], last: str = "") -> list[str]:
    """A blank line and the head of a table with a column for B = 1 and each of ``batches`` (and ``last``)."""
    cols = ["B = 1", *(f"B = {b}" for b in batches), *([last] if last else [])]
    return ["", f"| {title} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]


# the per-event targets, end to end (feature update + step), one thread: (engine, p50 µs, p99 µs) by model; and
# every step at least STEP_OVER_WINDOW times faster than its full-window graph (p50)
TARGETS = {
    "native_e2e": {m: (8.0, 20.0) for m in ("lstm", "tcn", "transformer", "hybrid")},
    "stream_e2e": {"lstm": (25.0, 60.0), "tcn": (25.0, 60.0), "transformer": (None, 100.0), "hybrid": (25.0, 60.0)},
}
STEP_OVER_WINDOW = 10.0


def targets(res: dict) -> list[str]:
    """The run against :data:`TARGETS`: each figure, its target, met or missed."""

    def cell(value: float, target: float | None) -> str:
        if target is None:
            return f"{value:.1f} (none)"
        return f"{value:.1f} ({target:g}): {'met' if value <= target else 'missed'}"

    lines = [
        "",
        "| against the targets | p50 µs (target) | p99 µs (target) | window / step p50 (target 10x) |",
        "|---|---|---|---|",
    ]
    for engine, by_model in TARGETS.items():
        label = "native step" if engine == "native_e2e" else "ONNX step"
        ratio = "window_over_native" if engine == "native_e2e" else "window_over_step"
        for name, (p50, p99) in by_model.items():
            r = res["archs"].get(name, {})
            if engine not in r:
                continue
            x = r[ratio]
            met = "met" if x >= STEP_OVER_WINDOW else "missed"
            lines.append(
                f"| {name}, {label}, end to end | {cell(r[engine]['p50_us'], p50)} | "
                f"{cell(r[engine]['p99_us'], p99)} | {x:.1f}x: {met} |"
            )
    return lines


def table(res: dict) -> str:
    s = res["settings"]
    lines = [
        f"Per-event latency, µs (p50 / p99), window {s['window']}, {s['n_features']} features, one thread, "
        f"{s['iters']} calls each; {s['machine']}",
        "",
        "| model | params | torch window | ONNX window | ONNX step | native step | step nodes | step KiB "
        "| window / step (p50) | window / native (p50) | end-to-end, ONNX step | end-to-end, native step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    for name, r in res["archs"].items():
        ratio = f"{r['window_over_step']:.1f}x" if "window_over_step" in r else "- (full-window fallback)"
        native = f"{r['window_over_native']:.1f}x" if "window_over_native" in r else "-"
        kib = f"{r['step_weights_kb']:.0f}" if "step_weights_kb" in r else "-"
        lines.append(
            f"| {name} | {r['n_params']:,} | {p50_p99(r['torch_window'])} | {p50_p99(r['onnx_window'])} | "
            f"{p50_p99(r.get('onnx_step'))} | {p50_p99(r.get('native_step'))} | {r.get('step_nodes', '-')} | "
            f"{kib} | {ratio} | {native} | {p50_p99(r['stream_e2e'])} | {p50_p99(r.get('native_e2e'))} |"
        )
    lines += targets(res)
    if batches := _batch_sizes(res, "window"):
        lines += _batch_header(
            "full window on B symbols at once: µs per symbol (p50 / B)", batches, "ONNX step, one symbol"
        )
        for name, r in res["archs"].items():
            per = [r["onnx_window"]["p50_us"]] + [r[f"onnx_window_batch_{b}"]["p50_us"] / b for b in batches]
            step = f"{r['onnx_step']['p50_us']:.1f}" if "onnx_step" in r else "-"
            lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in per) + f" | {step} |")
    if batches := _batch_sizes(res, "step"):
        lines += _batch_header("step for B symbols in one call: µs per call (p50), per symbol in brackets", batches)
        for name, r in res["archs"].items():
            for engine in ("onnx_step", "native_step"):
                if engine in r:
                    calls = [(1, r[engine])] + [(b, r[f"{engine}_batch_{b}"]) for b in batches]
                    cells = [f"{d['p50_us']:.0f} ({d['p50_us'] / b:.2f})" for b, d in calls]
                    lines.append(f"| {name}, {engine.replace('_', ' ')} | " + " | ".join(cells) + " |")
    if res.get("scan"):
        lines += [
            "",
            "| step at another size (--scan) | params | ONNX step | native step | step nodes | step KiB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for spec, r in res["scan"].items():
            lines.append(
                f"| {spec} | {r['n_params']:,} | {p50_p99(r['onnx_step'])} | {p50_p99(r.get('native_step'))} | "
                f"{r['step_nodes']} | {r['step_weights_kb']:.0f} |"
            )
    lines += ["", "| floor | p50 / p99 µs |", "|---|---:|"]
    for name, d in res["floor"].items():
        if isinstance(d, dict):
            lines.append(f"| {name} | {p50_p99(d)} |")
    lines += [
        "",
        f"One more node costs {res['floor']['per_node_us']:.2f} µs at p50 "
        f"((onnx_relu_chain_{RELU_CHAIN} - onnx_identity_call) / {RELU_CHAIN - 1}).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
