"""Benchmark training throughput: samples/s and peak RSS per model, Lightning's loop against a plain PyTorch loop
on the same fold, batches and model, in one run. Each (model, loop) runs in its own process so that its peak RSS
is its own. Writes JSON and a Markdown table.

    .venv/bin/python scripts/bench_train.py [--batches 40] [--warmup 5] [--out bench_results]

Data: fold 0 of the built-in synthetic day (200,000 events, 10 levels), W = 100, batch 256, 2 torch threads.
Samples/s counts the batches after ``--warmup``; the Lightning figure is taken inside fit (a callback times the
same batches), so start-up costs are excluded from both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = ["lstm", "tcn", "transformer", "hybrid", "deeplob"]


def worker(model_name: str, mode: str, batches: int, warmup: int) -> dict:
    import resource

    import polars as pl
    import torch

    sys.path.insert(0, str(REPO))
    from lobnet.data.schema import day_groups
    from lobnet.data.synthetic import load_day
    from lobnet.features import DEFAULT_GROUPS, FeatureParams, compute_features, feature_names
    from lobnet.models import build_model
    from lobnet.prep.labels import LabelConfig, compute_targets
    from lobnet.prep.splits import walk_forward
    from lobnet.prep.windows import FoldData, LOBDataModule
    from lobnet.train.losses import LobLoss

    torch.set_num_threads(2)
    torch.manual_seed(0)
    ev = load_day(levels=10, events=200_000, seed=0, dir=str(REPO / ".lobnet_cache" / "synthetic"))
    groups = DEFAULT_GROUPS + (["book"] if model_name == "deeplob" else [])
    p, cfg = FeatureParams(levels=10), LabelConfig()
    fr = pl.concat([compute_features(ev, p, groups), compute_targets(ev, cfg, p)], how="horizontal")
    names = feature_names(p, groups)
    fold = walk_forward([(s, e) for *_, s, e in day_groups(fr)], window=100, max_horizon=100, blocks=5, train_blocks=2)[
        0
    ]
    data = FoldData.build(fr, names, fold, cfg, window=100)
    kw = {}
    if model_name in ("transformer", "hybrid"):
        kw["dt_index"] = names.index("log_dt")
    if model_name == "deeplob":
        kw = {"levels": 10, "book_columns": [i for i, n in enumerate(names) if n.split("_")[1:2] in (["dist"], ["sz"])]}
    model = build_model(model_name, n_features=len(names), n_horizons=3, **kw)
    loss_fn = LobLoss("ce")
    dm = LOBDataModule(data, batch_size=256, seed=0)
    times: list[float] = []
    if mode == "torch":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()
        it = iter(dm.train_dataloader())
        for _ in range(batches):
            t0 = time.perf_counter()
            x, y, r = next(it)
            opt.zero_grad()
            logits, pos = model(x)
            loss = loss_fn(logits, pos, y, r)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
    else:
        import lightning.pytorch as L
        from lightning.pytorch.callbacks import Callback

        from lobnet.train.loop import quiet_lightning
        from lobnet.train.module import LOBModule

        quiet_lightning()

        class Timer(Callback):
            def __init__(self):
                self.t0 = None

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                now = time.perf_counter()
                if self.t0 is not None:
                    times.append(now - self.t0)
                self.t0 = now

        module = LOBModule(model, loss_fn, cfg.horizons)
        trainer = L.Trainer(
            max_epochs=1,
            limit_train_batches=batches + 1,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[Timer()],
            accelerator="cpu",
            num_sanity_val_steps=0,
        )
        trainer.fit(module, dm)
    steady = sorted(times[warmup:])
    med = steady[len(steady) // 2]
    return {
        "model": model_name,
        "loop": mode,
        "params": model.n_params(),
        "batches": len(steady),
        "samples_per_s": 256 / med,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default="bench_results")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.batches, a.warmup)))
        return
    rows = []
    for m in a.models.split(","):
        for mode in ("torch", "lightning"):
            r = subprocess.run(
                [sys.executable, __file__, "--worker", m, mode, "--batches", str(a.batches), "--warmup", str(a.warmup)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "batch": 256,
        "window": 100,
        "batches": a.batches,
        "warmup": a.warmup,
    }
    lines = [
        f"Median samples/s over {a.batches - a.warmup} steady batches (batch 256, W = 100), 2 torch threads.",
        "",
        "| model | parameters | plain PyTorch (samples/s) | Lightning (samples/s) | Lightning overhead "
        "| peak RSS torch / Lightning (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by = {(r["model"], r["loop"]): r for r in rows}
    for m in a.models.split(","):
        t, lt = by[(m, "torch")], by[(m, "lightning")]
        over = t["samples_per_s"] / lt["samples_per_s"] - 1
        lines.append(
            f"| {m} | {t['params']:,} | {t['samples_per_s']:,.0f} | {lt['samples_per_s']:,.0f} | {over:+.1%} | "
            f"{t['peak_rss_mb']:,.0f} / {lt['peak_rss_mb']:,.0f} |"
        )
    (out / "bench_train.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    (out / "bench_train.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
