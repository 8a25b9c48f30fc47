"""The study's headline table from lobnet-compare's comparison.csv: per data set and target (columns), each model's
test MSE over the calibrated EW factor's (mean over folds and seeds), marked ** where it beats the factor (Holm
p < 0.05 and the pooled interval of the MSE difference below 0).

    python experiments/factor_targets/table.py runs/factor_targets/compare
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

ORDER = ["lstm", "tcn", "transformer", "hybrid", "deeplob", "ridge", "EW factor", "last value", "sma same memory"]
NAMES = {"sma same memory": "SMA (same memory)", "no signal 0": "no signal (0)"}  # the naive predictors' own names


def column(dataset: str, target: str) -> str:
    """``AIG-BAC quotes L1 5d``, ``pairs_AIG_BAC_60s`` -> ``AIG/BAC pairs 60 s``."""
    kind, horizon = target.split("_")[0], target.rsplit("_", 1)[1]
    return f"{dataset.split(' ')[0].replace('-', '/')} {kind} {horizon[:-1]} {horizon[-1]}"


def main(folder: str) -> None:
    df = pl.read_csv(Path(folder) / "comparison.csv").filter(pl.col("task") == "regression")
    sets = df.select("dataset", "target").unique(maintain_order=True).rows()
    models = [m for m in ORDER if m in df["model"].to_list()]
    models += sorted(set(df["model"].to_list()) - set(models))
    head = ["model", *[column(d, t) for d, t in sets]]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(sets))
    for m in models:
        cells = [NAMES.get(m, m)]
        for d, t in sets:
            r = df.filter((pl.col("dataset") == d) & (pl.col("target") == t) & (pl.col("model") == m))
            if r.is_empty():
                cells.append("–")
                continue
            row = r.row(0, named=True)
            cell = f"{row['mse_vs_factor']:.3f}"
            if row.get("beats_factor") in (True, "true"):
                cell = f"**{cell}**"
            cells.append(cell)
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/factor_targets/compare")
