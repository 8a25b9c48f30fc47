"""Benchmark the one-pass estimators: nanoseconds per ``update`` in pure Python, and rows/s of the batch forms.

    .venv/bin/python scripts/bench_online.py [--n 200000] [--repeats 5] [--out bench_results]

Medians of ``--repeats`` runs in one process; writes bench_online.json and bench_online.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lobnet.online import EWMean, EWRegression, EWVar, ew_mean, ew_regression, ew_var  # noqa: E402


def per_update(make, xs, ys, repeats: int, with_y: bool) -> float:
    times = []
    for _ in range(repeats):
        est = make()
        update = est.update
        gc.disable()
        t0 = time.perf_counter_ns()
        if with_y:
            for x, y in zip(xs, ys, strict=True):
                update(x, y)
        else:
            for x in xs:
                update(x)
        times.append((time.perf_counter_ns() - t0) / len(xs))
        gc.enable()
    return statistics.median(times)


def batch_rate(fn, n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--batch-n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="bench_results")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    xs = (100 + np.cumsum(rng.normal(size=a.n)) * 0.01).tolist()
    ys = (2 * np.array(xs) + rng.normal(size=a.n)).tolist()
    x3 = [tuple(v) for v in rng.normal(size=(a.n, 3))]
    rows = [
        ("EWMean.update", per_update(lambda: EWMean(0.97), xs, ys, a.repeats, False)),
        ("EWVar.update", per_update(lambda: EWVar(0.985), xs, ys, a.repeats, False)),
        ("EWRegression.update (1 feature)", per_update(lambda: EWRegression(0.996), xs, ys, a.repeats, True)),
        ("EWRegression.update (3 features)", per_update(lambda: EWRegression(0.996, 3), x3, ys, a.repeats, True)),
    ]
    r = EWRegression(0.996)
    for x, y in zip(xs[:1000], ys[:1000], strict=True):
        r.update(x, y)
    t0 = time.perf_counter_ns()
    for _ in range(20_000):
        _ = r.coef
    rows.append(("EWRegression.coef (1 feature, read)", (time.perf_counter_ns() - t0) / 20_000))
    t0 = time.perf_counter_ns()
    for _ in range(20_000):
        _ = r.line()
    rows.append(("EWRegression.line (1 feature, read as two floats)", (time.perf_counter_ns() - t0) / 20_000))
    amzn = Path(os.environ.get("LOBNET_DATA_DIR", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    amzn = amzn / "lobster" / "AMZN_2012-06-21_34200000_57600000_message_5.csv"
    if amzn.exists():  # the streamer's feature stage: every catalogue feature, one event at a time
        from lobnet.data import read_lobster
        from lobnet.features import FeatureParams
        from lobnet.features.incremental import IncrementalFeatures

        ev = read_lobster(amzn)
        inc = IncrementalFeatures(FeatureParams(levels=5))
        rows_in = inc.input_matrix(ev).tolist()
        times = []
        for _ in range(a.repeats):
            inc.reset()
            gc.disable()
            t0 = time.perf_counter_ns()
            update, first = inc.update, True
            for r in rows_in:
                update(r, first)
                first = False
            times.append((time.perf_counter_ns() - t0) / len(rows_in))
            gc.enable()
        rows.append((f"IncrementalFeatures.update (AMZN L5, {len(inc.names)} features)", statistics.median(times)))
    bx = rng.normal(size=a.batch_n)
    by = 2 * bx + rng.normal(size=a.batch_n)
    batch = [
        ("ew_mean", batch_rate(lambda: ew_mean(bx, 0.97), a.batch_n, a.repeats)),
        ("ew_var", batch_rate(lambda: ew_var(bx, 0.985), a.batch_n, a.repeats)),
        ("ew_regression (1 feature)", batch_rate(lambda: ew_regression(bx, by, 0.996), a.batch_n, a.repeats)),
    ]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "n_updates": a.n,
        "batch_rows": a.batch_n,
        "repeats": a.repeats,
    }
    (out / "bench_online.json").write_text(
        json.dumps({"meta": meta, "ns_per_update": dict(rows), "batch_rows_per_s": dict(batch)}, indent=2)
    )
    md = [
        f"Median of {a.repeats} runs, one process, Python {meta['python']}.",
        "",
        "| one-pass, pure Python | ns per call |",
        "|---|---:|",
    ]
    md += [f"| {name} | {v:,.0f} |" for name, v in rows]
    md += ["", "| batch form (vectorised) | rows/s |", "|---|---:|"]
    md += [f"| {name} | {v:,.0f} |" for name, v in batch]
    (out / "bench_online.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
