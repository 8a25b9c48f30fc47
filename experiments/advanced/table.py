"""The Sharpe-loss study's tables (README.md here) from one run of run.sh: ``table.py OUT RESULTS_DIR``.

Per data set and loss, over the seeds (mean ± std, n): the fold's test backtest at the primary horizon (net,
gross, costs) beside the naive benchmarks under the same costs (buy-and-hold, random forecasts with the model's
turnover and the share of them at least as good, p_random); then the streamed model's own backtest and its
forecast-timed execution against TWAP (saving in bps, + is cheaper than TWAP, with the paired standard error).
Writes ``trading.csv``, ``execution.csv`` and ``tables.md`` to RESULTS_DIR."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import polars as pl

from lobnet.tracking.runs import Tag

H = 50  # the benchmark's primary horizon


def fold_rows(out: Path) -> pl.DataFrame:
    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["advanced"])
    parents = {r["run_id"]: r for _, r in runs[runs[f"tags.{Tag.KIND}"] == "parent"].iterrows()}
    runs = runs[runs[f"tags.{Tag.KIND}"] == "fold"]
    keys = ("net", "gross", "latency", "spread", "fees", "trades", "buy_and_hold", "random_mean", "p_random")
    rows = []
    for _, r in runs.iterrows():
        if f"metrics.test/bt_net_h{H}" not in r or not np.isfinite(r[f"metrics.test/bt_net_h{H}"]):
            continue
        p = parents[r["tags.mlflow.parentRunId"]]
        rows.append(
            {
                "data": p[f"tags.{Tag.DATASET}"],
                "loss": p[f"tags.{Tag.LOSS}"],
                "seed": int(p["params.seed"]),
                "macro_f1": float(r.get(f"metrics.test/macro_f1_h{H}", np.nan)),
                **{k: float(r[f"metrics.test/bt_{k}_h{H}"]) for k in keys},
            }
        )
    return pl.DataFrame(rows)


def stream_rows(out: Path) -> pl.DataFrame:
    rows = []
    for f in sorted((out / "stream").glob("*/stream.json")):
        s = json.loads(f.read_text())
        data, loss, seed = f.parent.name.rsplit("-", 2)[0], *f.parent.name.rsplit("-", 2)[1:]
        for engine in ("onnx_step", "ew_ofi"):
            bt = s["engines"][engine]["backtest"]
            sched = s.get("execution", {}).get("schedules", {})
            ex = sched.get(f"forecast_{engine}", {})
            rows.append(
                {
                    "data": data,
                    "loss": loss,
                    "seed": int(seed[1:]),
                    "engine": engine,
                    "net": bt["net"],
                    "p_random": bt.get("naive", {}).get("p_random", np.nan),
                    "buy_and_hold": bt.get("naive", {}).get("buy_and_hold", np.nan),
                    "twap_bps": sched.get("twap", {}).get("shortfall_bps", np.nan),
                    "immediate_bps": sched.get("immediate", {}).get("shortfall_bps", np.nan),
                    "timed_bps": ex.get("shortfall_bps", np.nan),
                    "saving_vs_twap_bps": ex.get("saving_vs_twap_bps", np.nan),
                    "saving_se_bps": ex.get("saving_vs_twap_se_bps", np.nan),
                }
            )
    return pl.DataFrame(rows)


def pm(x: pl.Series, fmt: str = ",.0f") -> str:
    x = x.drop_nulls().drop_nans()
    if x.len() == 0:
        return "–"
    sd = x.std() if x.len() > 1 else 0.0
    return f"{x.mean():{fmt}} ± {sd:{fmt}}"


def main(out: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    folds, streams = fold_rows(out), stream_rows(out)
    folds.write_csv(dest / "trading.csv")
    streams.write_csv(dest / "execution.csv")
    lines = [
        f"### Fold test backtest at h = {H} ($, mean ± std over seeds)",
        "",
        "| data | loss | n | macro-F1 | net | gross | costs | buy-and-hold | random (same turnover) | p_random |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (d, loss), g in folds.sort("data", "loss").group_by("data", "loss", maintain_order=True):
        costs = g["latency"] + g["spread"] + g["fees"]
        lines.append(
            f"| {d} | {loss} | {g.height} | {pm(g['macro_f1'], '.3f')} | {pm(g['net'])} | {pm(g['gross'])} | "
            f"{pm(costs)} | {pm(g['buy_and_hold'])} | {pm(g['random_mean'])} | {pm(g['p_random'], '.2f')} |"
        )
    lines += [
        "",
        "### Streamed: the model's trades and its forecast timing parent orders against TWAP",
        "",
        "| data | loss | engine | n | stream net $ | p_random | TWAP bps | timed bps | saving vs TWAP bps |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    if streams.height:
        # the factor's stream does not depend on the model it ran beside: one row per data set, from one job
        factor = streams.filter((pl.col("engine") != "onnx_step") & (pl.col("loss") == "ce") & (pl.col("seed") == 0))
        factor = factor.with_columns(loss=pl.lit("–"))
        shown = pl.concat([streams.filter(pl.col("engine") == "onnx_step"), factor])
        for (d, loss, e), g in shown.sort("data", "engine", "loss").group_by(
            "data", "loss", "engine", maintain_order=True
        ):
            lines.append(
                f"| {d} | {loss} | {e} | {g.height} | {pm(g['net'])} | {pm(g['p_random'], '.2f')} | "
                f"{pm(g['twap_bps'], '.2f')} | {pm(g['timed_bps'], '.2f')} | {pm(g['saving_vs_twap_bps'], '.2f')} |"
            )
    (dest / "tables.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
