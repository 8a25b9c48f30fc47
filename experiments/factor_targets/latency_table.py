"""The live half's table (latency.sh): per data set, architecture and engine, the per-event time (feature update
+ inference) and the MSE on the replayed events over the calibrated factor's, from each replay's stream.json.

    python experiments/factor_targets/latency_table.py runs/factor_targets/live
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str) -> None:
    print("| set | model | engine | total p50 µs | p99 µs | MSE on the replay | MSE / factor's | parity |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for f in sorted(Path(folder).glob("*/*/stream/stream.json")):
        r = json.loads(f.read_text())
        s = f.parts[-4]
        for name, e in r["engines"].items():
            par = r["parity"].get(name, {}).get("parity")
            cells = [s, r["model"], name, f"{e['total']['p50_us']:.1f}", f"{e['total']['p99_us']:.1f}"]
            cells += [f"{e['mse']:.4g}", f"{e['mse_vs_factor']:.3f}", "yes" if par else "NO"]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/factor_targets/live")
