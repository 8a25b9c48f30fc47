"""The live half's table (latency.sh): per data set and architecture, the per-event time (feature update +
engine) of each engine and the model's MSE on the replayed events over the calibrated factor's, from each replay's
stream.json.

    python experiments/factor_targets/latency_table.py runs/factor_targets/live
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: str) -> None:
    print(
        "| set | model | native step p50 / p99 µs | ONNX step p50 / p99 µs | ONNX window p50 µs "
        "| EW factor p50 / p99 µs | model MSE / factor's on the replay | parity |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for f in sorted(Path(folder).glob("*/*/stream/stream.json")):
        r = json.loads(f.read_text())
        e = r["engines"]

        def t(name: str, both: bool = True, e=e) -> str:
            q = e[name]["total"]
            return f"{q['p50_us']:.1f} / {q['p99_us']:.1f}" if both else f"{q['p50_us']:.0f}"

        label = "AIG/BAC pairs" if f.parts[-4] == "pairs" else f.parts[-4].replace("amzn-", "AMZN ")
        cells = [label, r["model"], t("native_step"), t("onnx_step")]
        cells += [t("onnx_window", False), t("ew_factor"), f"{e['native_step']['mse_vs_factor']:.3f}"]
        cells.append("yes" if r["parity_ok"] else "NO")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/factor_targets/live")
