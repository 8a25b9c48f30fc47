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
    for f in sorted(Path(root).glob("*/calibration.json")):
        r = json.loads(f.read_text())
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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "experiments/online_factors/results")
