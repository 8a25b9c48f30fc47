"""Print the study's results table from the calibration.json files under a results folder."""

import json
import sys
from pathlib import Path

SEEDS = {"liquidity": "0.97", "volatility": "0.985", "pairs": "0.996 (SPY/SSO)"}


def main(root: str) -> None:
    print(
        "| factor | data | calibrate / test | alpha_opt (SMA window) | seeds' alpha | MSE test: EW "
        "| last value (pairs: 0) | SMA (pairs: rolling OLS) | corr(EW factor, response), test |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    runs = [json.loads(f.read_text()) for f in sorted(Path(root).glob("*/calibration.json"))]
    for r in runs:
        b = r["baselines"]
        naive = b.get("last value", b.get("no signal (0)"))["oos_mse"]
        sma = b.get("SMA (same memory)", b.get("rolling OLS (same memory)"))["oos_mse"]
        days = r["data"]["days"]
        n_cal = min(3, len(days) - 1)
        split = f"{n_cal} days / {len(days) - n_cal} days" if len(days) > 1 else "60 % / 40 % of the day"
        edge = " (edge of range)" if r.get("at_search_boundary") else ""
        print(
            f"| {r['factor']} | {'/'.join(r['data']['symbols'])} | {split} | {r['alpha_opt']:.4f}{edge} "
            f"({r['effective_window']}) | {SEEDS[r['factor']]} | {r['oos_mse']:.4g} | {naive:.4g} | {sma:.4g} "
            f"| {r['corr_test']:.3f} |"
        )

    print()
    print(
        "| factor | data | predictor | MSE test | MAE | R² (vs the calibration mean) | corr "
        "| MSE / factor's | MSE − factor's [95 % block-bootstrap interval] |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for r in runs:
        tc = r["test_comparison"]
        for name, s in tc["predictors"].items():
            d = s.get("delta_mse")
            diff = f"{d['mean']:+.3g} [{d['lo']:+.3g}, {d['hi']:+.3g}]" if d else "(the reference)"
            ratio = f"{s['mse_vs_EW factor']:.3f}" if "mse_vs_EW factor" in s else "1"
            print(
                f"| {r['factor']} | {'/'.join(r['data']['symbols'])} | {name} | {s['mse']:.4g} | {s['mae']:.4g} "
                f"| {s['r2_oos']:.3f} | {s['corr']:.3f} | {ratio} | {diff} |"
            )
        for name in tc["not_compared"]:
            print(f"| {r['factor']} | {'/'.join(r['data']['symbols'])} | {name} | - | - | - | - | - | its own target |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/online_factors/results")
