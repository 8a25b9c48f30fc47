"""Benchmark: read + features + labels, from CSV and from the Parquet cache, against a straightforward pandas
implementation of the same features, all in one run. Writes JSON and a Markdown table.

    .venv/bin/python scripts/bench_data.py                # AMZN level 5 (if ../shared/data) + synthetic 1M level 10
    .venv/bin/python scripts/bench_data.py --events 200000 --repeats 3 --out bench_results

Each figure is the median of ``--repeats`` runs; events/s = events / median seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lobnet.data import read_lobster  # noqa: E402
from lobnet.data._csv import read_numeric_csv  # noqa: E402
from lobnet.data.lobster import MESSAGE_COLUMNS  # noqa: E402
from lobnet.data.schema import level_columns  # noqa: E402
from lobnet.data.synthetic import SyntheticConfig, ensure_day  # noqa: E402
from lobnet.features import FeatureParams, compute_features  # noqa: E402
from lobnet.prep.labels import LabelConfig, compute_targets  # noqa: E402

HORIZONS = (10, 50, 100)


def lobnet_pipeline(events: pl.DataFrame, levels: int) -> pl.DataFrame:
    p = FeatureParams(levels=levels)
    return pl.concat(
        [compute_features(events, p), compute_targets(events, LabelConfig(horizons=HORIZONS), p)], how="horizontal"
    )


def pandas_pipeline(message: Path, levels: int) -> pd.DataFrame:
    """The same features and targets written the usual pandas way (single day, no unoccupied levels)."""
    msg = pd.read_csv(message, header=None, names=["time_s", "type", "order_id", "size", "price", "direction"])
    ob = pd.read_csv(str(message).replace("message", "orderbook"), header=None, names=level_columns(levels))
    out = pd.DataFrame(index=msg.index)
    a, b, qa, qb = ob["ask_px_1"], ob["bid_px_1"], ob["ask_sz_1"], ob["bid_sz_1"]
    mid = (a + b) / 2e4
    out["mid"] = mid
    out["spread"] = (a - b) / 100
    out["microprice"] = (a * qb + b * qa) / ((qa + qb) * 1e4)
    out["mid_logret"] = np.log(mid / mid.shift(1))
    for m in range(1, levels + 1):
        bp, ap, bq, aq = ob[f"bid_px_{m}"], ob[f"ask_px_{m}"], ob[f"bid_sz_{m}"], ob[f"ask_sz_{m}"]
        bp0, ap0, bq0, aq0 = bp.shift(1), ap.shift(1), bq.shift(1), aq.shift(1)
        e = bq.where(bp >= bp0, 0) - bq0.where(bp <= bp0, 0) - aq.where(ap <= ap0, 0) + aq0.where(ap >= ap0, 0)
        out[f"ofi_{m}"] = e.where(bp0.notna())
    out["queue_imbalance"] = (qb - qa) / (qa + qb)
    bd = ob[[f"bid_sz_{m}" for m in range(1, levels + 1)]].cumsum(axis=1)
    ad = ob[[f"ask_sz_{m}" for m in range(1, levels + 1)]].cumsum(axis=1)
    out["depth_imbalance"] = (bd.iloc[:, -1] - ad.iloc[:, -1]) / (bd.iloc[:, -1] + ad.iloc[:, -1])
    for m in range(1, levels + 1):
        out[f"bid_depth_{m}"] = bd.iloc[:, m - 1]
        out[f"ask_depth_{m}"] = ad.iloc[:, m - 1]
    for m in range(2, levels + 1):
        out[f"ask_gap_{m}"] = (ob[f"ask_px_{m}"] - ob[f"ask_px_{m - 1}"]) / 100
        out[f"bid_gap_{m}"] = (ob[f"bid_px_{m - 1}"] - ob[f"bid_px_{m}"]) / 100
    ex = msg["type"].isin([4, 5])
    out["signed_volume"] = (-msg["direction"] * msg["size"]).where(ex, 0)
    out["is_limit"] = (msg["type"] == 1).astype(float)
    out["is_cancel"] = msg["type"].isin([2, 3]).astype(float)
    out["is_exec"] = ex.astype(float)
    out["is_quote"] = (msg["type"] == 0).astype(float)
    t = (msg["time_s"] * 1e9).round()
    out["log_dt"] = np.log1p(t.diff() / 1000)
    for k in HORIZONS:
        fut = mid.rolling(k).mean().shift(-k)
        out[f"smooth_ret_{k}"] = (fut - mid) / mid
        out[f"logret_{k}"] = np.log(mid.shift(-k) / mid)
    return out


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench(name: str, message: Path, levels: int, repeats: int, cache: Path) -> dict:
    n = sum(1 for _ in open(message, "rb"))
    row: dict = {"dataset": name, "levels": levels, "events": n}
    ob = Path(str(message).replace("message", "orderbook"))
    row["parse_only_s"], _ = timed(
        lambda: (
            read_numeric_csv(str(message), "m", MESSAGE_COLUMNS),
            read_numeric_csv(str(ob), "o", {c: pl.Int64() for c in level_columns(levels)}),
        ),
        repeats,
    )
    row["csv_s"], frame = timed(lambda: lobnet_pipeline(read_lobster(message), levels), repeats)
    row["csv_strict_s"], _ = timed(lambda: lobnet_pipeline(read_lobster(message, strict=True), levels), repeats)
    pq = cache / f"{name}.parquet"
    read_lobster(message).write_parquet(pq)
    row["parquet_s"], _ = timed(lambda: lobnet_pipeline(pl.read_parquet(pq), levels), repeats)
    prepared = cache / f"{name}.prepared.parquet"
    frame_once = lobnet_pipeline(pl.read_parquet(pq), levels)
    frame_once.write_parquet(prepared)
    row["prepared_cache_s"], _ = timed(lambda: pl.read_parquet(prepared), repeats)
    row["pandas_s"], pdf = timed(lambda: pandas_pipeline(message, levels), repeats)
    # the two implementations compute the same numbers (lobnet stores features as float32)
    for c in ("mid", "microprice", "ofi_1", f"ofi_{levels}", "depth_imbalance", "log_dt", "smooth_ret_50"):
        np.testing.assert_allclose(
            frame[c].to_numpy().astype(float), pdf[c].to_numpy(), rtol=2e-6, atol=1e-9, err_msg=c
        )
    for k in ("parse_only", "csv", "csv_strict", "parquet", "prepared_cache", "pandas"):
        row[f"{k}_events_per_s"] = n / row[f"{k}_s"]
    row["speedup_vs_pandas_csv"] = row["pandas_s"] / row["csv_s"]
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| dataset | events | CSV parse only | CSV end to end | CSV strict | Parquet events + features + labels "
        "| cached features + labels | pandas, CSV end to end | lobnet vs pandas (CSV) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} (L{r['levels']}) | {r['events']:,} | {r['parse_only_events_per_s']:,.0f} | "
            f"{r['csv_events_per_s']:,.0f} | {r['csv_strict_events_per_s']:,.0f} | {r['parquet_events_per_s']:,.0f} | "
            f"{r['prepared_cache_events_per_s']:,.0f} | "
            f"{r['pandas_events_per_s']:,.0f} | {r['speedup_vs_pandas_csv']:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="synthetic level-10 day size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench_results")
    ap.add_argument("--data-dir", default=os.environ.get("LOBNET_DATA_DIR", str(REPO.parent / "shared" / "data")))
    a = ap.parse_args()
    out = Path(a.out)
    cache = Path(".lobnet_cache") / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    amzn = Path(a.data_dir) / "lobster" / "AMZN_2012-06-21_34200000_57600000_message_5.csv"
    if amzn.exists():
        rows.append(bench("AMZN 2012-06-21", amzn, 5, a.repeats, cache))
    else:
        print(f"skipping AMZN: {amzn} not found")
    syn = ensure_day(SyntheticConfig(levels=10, events=a.events, seed=0), cache / "synthetic")
    rows.append(bench(f"synthetic {a.events:,}", syn, 10, a.repeats, cache))
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "polars": pl.__version__,
        "pandas": pd.__version__,
        "repeats": a.repeats,
    }
    (out / "bench_data.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    md = f"Events per second (median of {a.repeats} runs, one process, {os.cpu_count()} CPUs).\n\n" + table(rows)
    (out / "bench_data.md").write_text(md + "\n")
    print(md)
    print(f"\nwrote {out / 'bench_data.json'} and {out / 'bench_data.md'}")


if __name__ == "__main__":
    main()
