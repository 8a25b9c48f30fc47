"""The README's tables from lobnet-compare's files: python experiments/benchmark/table.py COMPARE_DIR [HORIZON].
First the headline: per data set and horizon, the benchmark (the baseline best on validation), the best deep
model on test with its difference to the benchmark, how many rows beat it after adjustment, SPA and the model
confidence set. Then per data set (at HORIZON only, when given): macro-F1, weighted-F1, MCC, PR-AUC up/down, the
backtest's net (mean ± std over seeds), the difference to the benchmark with its interval, the adjusted p-values
and the mark; then the data-snooping tests and the decay."""

import sys
from pathlib import Path

import polars as pl


def pm(r, c, fmt=".3f"):
    return f"{r[c]:{fmt}} ± {r[c + '_std']:{fmt}}"


DEEP = ("lstm", "tcn", "transformer", "hybrid", "deeplob")


def headline(cmp: pl.DataFrame, snoop: pl.DataFrame) -> None:
    print("| data set | h | benchmark | its macro-F1 | best deep model | its macro-F1 | Δ [95% CI] | p Holm |", end="")
    print(" rows that beat it | SPA p | model confidence set (90%) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (ds, h), g in cmp.group_by(["dataset", "horizon"], maintain_order=True):
        b = g.filter(pl.col("model") == pl.col("benchmark")).row(0, named=True)
        deep = g.filter(pl.col("model").is_in(DEEP)).sort("macro_f1", descending=True)
        sn = snoop.filter((pl.col("dataset") == ds) & (pl.col("horizon") == h))
        spa, mcs = (f"{sn['spa_p_consistent'][0]:.3f}", sn["mcs"][0]) if sn.height else ("", "")
        beats = int(g["beats_baseline"].fill_null(False).sum())
        if deep.height:
            r = deep.row(0, named=True)
            d = f"{r['delta_macro_f1']:+.3f} [{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}]"
            cells = [r["model"], f"{r['macro_f1']:.3f}", d, f"{r['p_holm']:.3g}"]
        else:
            cells = ["", "", "", ""]
        print(
            f"| {ds} | {h} | {b['model']} | {b['macro_f1']:.3f} | "
            + " | ".join(cells)
            + f" | {beats} | {spa} | {mcs} |"
        )
    print()


def main(d: Path, horizon: int | None = None) -> None:
    cmp = pl.read_csv(d / "comparison.csv")
    headline(cmp, pl.read_csv(d / "snooping.csv"))
    if horizon is not None:
        cmp = cmp.filter(pl.col("horizon") == horizon)
    head = "| model | h | runs | configs | macro-F1 | weighted-F1 | MCC | PR-AUC up | PR-AUC down | backtest net $ |"
    head += " Δ macro-F1 [95% CI] | p Holm | p BH | beats |"
    for (ds,), g in cmp.group_by(["dataset"], maintain_order=True):
        print(f"**{ds}**\n\n{head}\n|" + "---|" * 14)
        for r in g.iter_rows(named=True):
            bench = r["model"] == r["benchmark"]
            delta = (
                "benchmark"
                if bench
                else f"{r['delta_macro_f1']:+.3f} [{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}]"
            )
            p = ("", "") if bench else (f"{r['p_holm']:.3g}", f"{r['p_bh']:.3g}")
            cells = [r["model"], str(r["horizon"]), str(r["folds_x_seeds"]), str(r["configs"])]
            cells += [pm(r, c) for c in ("macro_f1", "weighted_f1", "mcc", "pr_auc_up", "pr_auc_down")]
            cells += [pm(r, "bt_net", ",.0f"), delta, *p, "" if bench else ("**yes**" if r["beats_baseline"] else "no")]
            print("| " + " | ".join(cells) + " |")
        print()
    snoop = pl.read_csv(d / "snooping.csv")
    if horizon is not None:
        snoop = snoop.filter(pl.col("horizon") == horizon)
    print("| data set | h | benchmark | configurations tried | SPA p (consistent) | model confidence set (90%) |")
    print("|---|---|---|---|---|---|")
    for r in snoop.iter_rows(named=True):
        print(
            f"| {r['dataset']} | {r['horizon']} | {r['benchmark']} | {r['configurations']} | "
            f"{r['spa_p_consistent']:.3f} | {r['mcs']} |"
        )
    print()
    decay = pl.read_csv(d / "decay.csv")
    if horizon is not None:
        decay = decay.filter(pl.col("horizon") == horizon)
    wide = decay.pivot(on="unit", index=["dataset", "model", "horizon"], values="macro_f1").sort(["dataset", "horizon"])
    units = [c for c in wide.columns if c not in ("dataset", "model", "horizon")]
    print("| data set | model | h | " + " | ".join(f"macro-F1, test unit {u}" for u in units) + " |")
    print("|---|---|---|" + "---|" * len(units))
    for r in wide.iter_rows(named=True):
        print(f"| {r['dataset']} | {r['model']} | {r['horizon']} | " + " | ".join(f"{r[u]:.3f}" for u in units) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
