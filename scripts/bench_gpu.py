"""GPU figures for the live path: one symbol's event on the GPU against the CPU step, and where batching many
symbols' events into one GPU call beats stepping each on the CPU. All figures of one run, on one machine.

    python scripts/bench_gpu.py [--window 100] [--batches 1,8,64,512,4096] [--iters 2000] [--out bench_gpu]

For each architecture at its default size (untrained weights: latency does not depend on them), with the features
of ``scripts/bench_inference.py`` (level 10, the default groups and the book):

* ``cpu_onnx_step``: the streamer's :class:`~lobnet.live.runtime.StepRunner` on one CPU thread, one symbol: the
  reference, measured on this machine's CPU in this run;
* ``cuda_step_eager``: the torch :class:`~lobnet.models.streaming.StepModule` on the GPU for one symbol, each
  layer a separate kernel launch: what launch overhead costs;
* ``cuda_step_B``: B symbols' events stepped together, the step captured once as a CUDA graph (state kept on
  the device and updated in place by the graph);
* ``cuda_window_B``: the full-window model on B device-resident windows, the window's shift by the new event
  inside the graph (the live form of the full window: a ring of the last W events per symbol);
* ``ort_cuda_step``: ONNX Runtime's CUDA execution provider on the step graph, where this onnxruntime has one;
* ``cpu_onnx_step_B`` (and ``ort_cuda_step_B`` with that provider): the ONNX step graph for B symbols
  (:func:`lobnet.live.export.export_step` with ``batch``) through ``StepRunner``, on one CPU thread of this machine:
  what batching buys the CPU, against what it buys the GPU, in the same run.

Every GPU figure is host clock around everything a live loop waits for: the B feature rows copied from pinned
host memory to the device, the graph replayed, logits and positions copied back, the stream synchronised. TF32 is
off, so the GPU computes in float32 like the CPU; ``parity`` is the largest difference between the GPU step over
a real event sequence and the CPU model over the same sequence (:func:`~lobnet.models.streaming.sequence_outputs`).
Writes bench_gpu.json and bench_gpu.md to ``--out``. Needs a CUDA GPU; exits with a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_inference import Plan, p50_p99, write_results  # noqa: E402 - the CPU benchmark beside this script

ARCHS = ["lstm", "tcn", "transformer", "hybrid"]


def timed(fn, iters: int, warm: int = 50) -> dict:
    """Percentiles of ``iters`` calls after ``warm`` untimed ones, garbage collector frozen: the CPU benchmark's
    timing (:class:`bench_inference.Plan`) with one item in one round."""
    r: dict = {}
    plan = Plan(rounds=1)
    plan.add(r, "t", fn, iters)
    plan.run(warm)
    return r["t"]


class GraphCall:
    """``body(inputs_on_device) -> outputs`` captured as one CUDA graph over static device buffers; a call copies
    the host rows in, replays the graph, copies the outputs back to pinned host memory and synchronises.
    ``body`` may update device state in place (the graph replays those copies too)."""

    def __init__(self, torch, body, x_shape: tuple[int, ...], device):
        self.torch = torch
        self.x_host = torch.zeros(x_shape, pin_memory=True)
        self.x_dev = torch.zeros(x_shape, device=device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):  # warm-up on a side stream before capture, as torch.cuda.graphs requires
                body(self.x_dev)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            outs = body(self.x_dev)
        self.outs_dev = outs
        self.outs_host = [torch.zeros(o.shape, dtype=o.dtype, pin_memory=True) for o in outs]

    def __call__(self):
        self.x_dev.copy_(self.x_host, non_blocking=True)
        self.graph.replay()
        for h, d in zip(self.outs_host, self.outs_dev, strict=True):
            h.copy_(d, non_blocking=True)
        self.torch.cuda.current_stream().synchronize()


def step_body(torch, step, batch: int, device):
    """The step with its state as device buffers, each call writing the next state in place
    (:func:`~lobnet.models.streaming.carry`: a TCN buffer's tail)."""
    from lobnet.models.streaming import carry

    state = [s.to(device) for s in step.initial_state(batch)]
    shapes = [shape for _, shape in step.state_shapes()]

    def body(x):
        logits, position, *new = step(x, *state)
        for s, n, shape in zip(state, new, shapes, strict=True):
            s.copy_(carry(n, shape))
        return logits, position

    return body, state


def window_body(model, batch: int, window: int, n_features: int, device, torch):
    """The full window on ``batch`` device-resident rings: shift in the new row, run the model."""
    win = torch.randn(batch, window, n_features, device=device)

    def body(x):
        win.copy_(torch.cat([win[:, 1:], x[:, None]], dim=1))
        return model(win)

    return body


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--batches", default="1,8,64,512,4096", help="symbols per GPU call, comma-separated")
    ap.add_argument("--events", type=int, default=2000, help="synthetic events for the parity check and the rows")
    ap.add_argument("--out", default="bench_gpu")
    a = ap.parse_args()
    batches = [int(b) for b in a.batches.split(",")]

    import onnxruntime as ort
    import torch

    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    from lobnet.data.synthetic import load_day
    from lobnet.features import DEFAULT_GROUPS, FeatureParams, feature_names
    from lobnet.features.incremental import IncrementalFeatures
    from lobnet.live.export import export_step
    from lobnet.live.runtime import StepRunner
    from lobnet.models import build_model
    from lobnet.models.streaming import StepModule, sequence_outputs

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dev = torch.device("cuda")
    groups = [*DEFAULT_GROUPS, "book"]
    params = FeatureParams(levels=10)
    names = feature_names(params, groups)
    F, W = len(names), a.window
    events = load_day(levels=10, events=a.events, seed=0, dir=tempfile.gettempdir() + "/lobnet-bench-synthetic")
    X = IncrementalFeatures(params, groups).run(events)
    # the day's features z-scored by its own moments; a feature's warm-up (no previous event yet) as 0
    X = np.nan_to_num((X - np.nanmean(X, 0)) / (np.nanstd(X, 0) + 1e-9)).astype(np.float32)
    cuda_ep = "CUDAExecutionProvider" in ort.get_available_providers()
    res: dict = {"archs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ARCHS:
            extra = {"dt_index": names.index("log_dt")} if name in ("transformer", "hybrid") else {}
            model = build_model(name, n_features=F, n_horizons=3, **extra).eval()
            r: dict = {"n_params": model.n_params()}
            step_cpu = StepModule(model, span=W).eval()
            spath = export_step(step_cpu, Path(tmp) / f"{name}_step.onnx")
            runner = StepRunner(spath)
            runner.x[:] = X[0]
            r["cpu_onnx_step"] = timed(runner, a.iters)
            if cuda_ep:
                gpu_runner = StepRunner(spath, ["CUDAExecutionProvider", "CPUExecutionProvider"])
                gpu_runner.x[:] = X[0]
                r["ort_cuda_step"] = timed(gpu_runner, a.iters)

            step = StepModule(model, span=W).eval().to(dev)
            # parity: the GPU step over T real events against the CPU model over the same sequence
            T = min(3 * W, len(X))
            body, _ = step_body(torch, step, 1, dev)
            seq = torch.from_numpy(X[:T])
            got = []
            with torch.inference_mode():
                for t in range(T):
                    got.append(body(seq[t : t + 1].to(dev))[0].cpu())
                ref, _ = sequence_outputs(model, seq[None], W)
            r["parity_max_abs_diff"] = float((torch.cat(got) - ref[0]).abs().max())

            body, _ = step_body(torch, step, 1, dev)

            xh = torch.from_numpy(X[1:2].copy()).pin_memory()

            def eager(body=body, xh=xh):
                with torch.inference_mode():
                    logits, pos = body(xh.to(dev, non_blocking=True))
                    logits.cpu(), pos.cpu()

            r["cuda_step_eager"] = timed(eager, max(a.iters // 4, 200))
            engines = [("cpu_onnx_step", None)]  # the ONNX step for B symbols: this machine's CPU, the CUDA provider
            if cuda_ep:
                engines.append(("ort_cuda_step", ["CUDAExecutionProvider", "CPUExecutionProvider"]))
            for b in (b for b in batches if b > 1):
                bpath = export_step(step_cpu, Path(tmp) / f"{name}_step_{b}.onnx", b)
                for key, providers in engines:
                    brun = StepRunner(bpath, providers)
                    brun.x[:] = X[np.arange(b) % len(X)]
                    r[f"{key}_{b}"] = timed(brun, max(a.iters // b, 20), warm=5)
            model_dev = model.to(dev)
            for b in batches:
                body, _ = step_body(torch, step, b, dev)
                call = GraphCall(torch, body, (b, F), dev)
                call.x_host.copy_(torch.from_numpy(X[np.arange(b) % len(X)]))
                r[f"cuda_step_{b}"] = timed(call, a.iters)
                call = GraphCall(torch, window_body(model_dev, b, W, F, dev, torch), (b, F), dev)
                call.x_host.copy_(torch.from_numpy(X[np.arange(b) % len(X)]))
                r[f"cuda_window_{b}"] = timed(call, max(a.iters // 4, 200))
                del call
                torch.cuda.empty_cache()
            model.to("cpu")
            res["archs"][name] = r
            print(name, json.dumps(r), flush=True)

    p = torch.cuda.get_device_properties(0)
    res["settings"] = {
        "window": W,
        "n_features": F,
        "iters": a.iters,
        "batches": batches,
        "gpu": f"{p.name}, {p.total_memory / 2**30:.0f} GiB",
        "cpu_threads": 1,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
    }
    write_results(Path(a.out), "bench_gpu", res, table(res))


def table(res: dict) -> str:
    s = res["settings"]
    bs = s["batches"]
    lines = [
        f"One GPU call for B symbols' events against one CPU step per symbol; µs, window {s['window']}, "
        f"{s['n_features']} features; {s['gpu']}, torch {s['torch']} (CUDA {s['cuda']}), "
        f"onnxruntime {s['onnxruntime']} (providers: {', '.join(s['onnxruntime_providers'])})",
        "",
        "| model | CPU ONNX step, 1 thread (p50 / p99) | GPU step, eager | GPU step, graph, B = 1 | "
        "ORT CUDA step | parity (max abs diff) |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    for name, r in res["archs"].items():
        lines.append(
            f"| {name} | {p50_p99(r['cpu_onnx_step'])} | {p50_p99(r['cuda_step_eager'])} | "
            f"{p50_p99(r['cuda_step_1'])} | "
            f"{p50_p99(r.get('ort_cuda_step'))} | {r['parity_max_abs_diff']:.1e} |"
        )
    multi = [b for b in bs if b > 1]
    if multi:
        lines += [
            "",
            "| ONNX step for B symbols: µs per call (p50) and per symbol | "
            + " | ".join(f"B = {b}" for b in multi)
            + " |",
            "|---|" + "---:|" * len(multi),
        ]
        for name, r in res["archs"].items():
            for key, label in (("cpu_onnx_step", "CPU, 1 thread"), ("ort_cuda_step", "ORT CUDA")):
                if f"{key}_{multi[0]}" in r:
                    cells = [f"{r[f'{key}_{b}']['p50_us']:.0f} ({r[f'{key}_{b}']['p50_us'] / b:.2f})" for b in multi]
                    lines.append(f"| {name}, {label} | " + " | ".join(cells) + " |")
    for kind, label in (("step", "GPU step (graph)"), ("window", "GPU full window (graph)")):
        lines += [
            "",
            f"| {label}: µs per call (p50) and per symbol | " + " | ".join(f"B = {b}" for b in bs) + " | "
            "CPU step per symbol | B from which the GPU costs less per symbol |",
            "|---|" + "---:|" * (len(bs) + 2),
        ]
        for name, r in res["archs"].items():
            cpu = r["cpu_onnx_step"]["p50_us"]
            cells, cross = [], "-"
            for b in bs:
                call = r[f"cuda_{kind}_{b}"]["p50_us"]
                cells.append(f"{call:.0f} ({call / b:.2f})")
                if cross == "-" and call / b < cpu:
                    cross = str(b)
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {cpu:.1f} | {cross} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
