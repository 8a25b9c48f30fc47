"""Reproduce the data facts the README quotes: how the synthetic day compares with AMZN, why the AlgoSeek rows are
consolidated as NBBO rows, and the factor baseline's scores on AMZN. Writes JSON and Markdown.

    .venv/bin/python scripts/data_facts.py [--out bench_results]      # ~1 minute; needs ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lobnet.data import read_lobster  # noqa: E402
from lobnet.data._csv import read_numeric_csv  # noqa: E402
from lobnet.data.quotes import QUOTE_COLUMNS, TRADE_COLUMNS, consolidate_nbbo  # noqa: E402
from lobnet.data.synthetic import load_day  # noqa: E402
from lobnet.features import FeatureParams, compute_features  # noqa: E402
from lobnet.online.baselines import baseline_scores  # noqa: E402
from lobnet.prep.labels import LabelConfig, compute_targets, labels_for_fold  # noqa: E402
from lobnet.prep.splits import walk_forward  # noqa: E402


def book_stats(ev: pl.DataFrame, levels: int) -> dict:
    f = compute_features(ev, FeatureParams(levels=levels), ["mid", "spread", "ofi"])
    mid = f["mid"].to_numpy().astype(float)
    ofi = np.nan_to_num(f["ofi_1"].to_numpy().astype(float))
    k = 50
    past = np.convolve(ofi, np.ones(k))[: len(ofi)]
    future = np.roll(mid, -k) - mid
    return {
        "events": ev.height,
        "mid_change_share": float((np.diff(mid) != 0).mean()),
        "mean_spread_ticks": float(f["spread"].mean()),
        "mean_best_bid_size": float(ev["bid_sz_1"].mean()),
        "corr_past50_ofi_next50_mid_move": float(np.corrcoef(past[k:-k], future[k:-k])[0, 1]),
        "daily_mid_range_pct": float((mid.max() - mid.min()) / mid[0] * 100),
    }


def algoseek_evidence(quote_zip: Path, trade_zip: Path) -> dict:
    with zipfile.ZipFile(quote_zip) as zf:
        q = read_numeric_csv(zf.read(zf.namelist()[0]), "q", QUOTE_COLUMNS)
    with zipfile.ZipFile(trade_zip) as zf:
        t = read_numeric_csv(zf.read(zf.namelist()[0]), "t", TRADE_COLUMNS)
    to_ns = (pl.col("time_ms") * 1e6).round().cast(pl.Int64).alias("time")
    q, t = q.with_columns(to_ns), t.with_columns(to_ns)
    # updates come as a bid row then an ask row: do the two rows name the same venue?
    nxt = q.select(pl.col("exchange").shift(-1).alias("next_exchange"), pl.col("ask_px").shift(-1).alias("next_ask"))
    pairs = pl.concat([q, nxt], how="horizontal").filter((pl.col("bid_px") > 0) & (pl.col("next_ask") > 0))
    session = (pl.col("time") >= 34_200 * 10**9) & (pl.col("time") < 57_600 * 10**9)
    lit = t.filter(session & (pl.col("exchange") != "D"))
    out = {
        "update_pairs": pairs.height,
        "pairs_with_different_venues": float((pairs["exchange"] != pairs["next_exchange"]).mean()),
    }
    for name, by_exchange in (("rows", False), ("per_venue", True)):
        book = consolidate_nbbo(q, by_exchange)
        s = book.filter(session)
        out[f"{name}_crossed_share"] = float((s["ask_px_1"] < s["bid_px_1"]).mean())
        j = lit.join_asof(book, on="time", allow_exact_matches=False)
        out[f"{name}_trades_inside_nbbo"] = float(
            ((j["price"] >= j["bid_px_1"]) & (j["price"] <= j["ask_px_1"])).mean()
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench_results")
    ap.add_argument("--data-dir", default=os.environ.get("LOBNET_DATA_DIR", str(REPO.parent / "shared" / "data")))
    a = ap.parse_args()
    d = Path(a.data_dir)
    amzn = read_lobster(d / "lobster" / "AMZN_2012-06-21_34200000_57600000_message_5.csv")
    syn = load_day(levels=10, events=200_000, seed=0, dir=str(REPO / ".lobnet_cache" / "synthetic"))
    facts = {
        "synthetic_demo_day": book_stats(syn, 10),
        "amzn_level5": book_stats(amzn, 5),
        "aig_2013_10_07": algoseek_evidence(d / "quotes/aig/20131007_quote.zip", d / "quotes/aig/20131007_trade.zip"),
    }
    p, cfg = FeatureParams(levels=5), LabelConfig()
    fr = pl.concat([compute_features(amzn, p), compute_targets(amzn, cfg, p)], how="horizontal")
    fold = walk_forward([(0, fr.height)], window=100, max_horizon=100, blocks=5, train_blocks=2)[0]
    facts["amzn_factor_baselines_fold0"] = baseline_scores(
        fr, fold.train, fold.test, cfg, labels_for_fold(fr, fold.train, cfg)[0]
    )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_facts.json").write_text(json.dumps(facts, indent=2))
    s, z, e = facts["synthetic_demo_day"], facts["amzn_level5"], facts["aig_2013_10_07"]
    md = ["| book statistic | synthetic demo day (L10) | AMZN 2012-06-21 (L5) |", "|---|---:|---:|"]
    for k in s:
        fmt = "{:,.0f}" if k == "events" else "{:.3f}"
        md.append(f"| {k} | {fmt.format(s[k])} | {fmt.format(z[k])} |")
    md += ["", "| AlgoSeek AIG 2013-10-07 | value |", "|---|---:|"] + [
        f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v:,} |" for k, v in e.items()
    ]
    md += [
        "",
        "| AMZN fold 0, test | horizon | majority macro-F1 | EW-OFI sign macro-F1 | EW regression macro-F1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in facts["amzn_factor_baselines_fold0"].items():
        md.append(
            f"| | {k} | {v['majority']['macro_f1']:.3f} | {v['ew_ofi_sign']['macro_f1']:.3f} "
            f"| {v['ew_regression']['macro_f1']:.3f} |"
        )
    (out / "data_facts.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
