"""Collects experiments/stream_amzn/run.sh's outputs into results.json and results.md (the README's tables).

    .venv/bin/python experiments/stream_amzn/table.py OUT DEST

OUT: run.sh's output folder (train/, export/, stream/ per model); DEST: where results.json and results.md go.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODELS = ["lstm", "tcn", "transformer", "hybrid"]
H = 50  # the primary horizon (conf/train.yaml), the one lobnet-stream scores


def collect(out: Path) -> dict:
    res = {}
    for m in MODELS:
        (state,) = (out / "train" / m).glob("run-*/state.json")
        test = json.loads(state.read_text())["folds"]["0"]["test"]
        export = json.loads((out / "export" / m / "export.json").read_text())
        stream = json.loads((out / "stream" / m / "stream.json").read_text())
        res[m] = {
            "test": {k: test[f"{k}_h{H}"] for k in ("macro_f1", "majority_f1", "accuracy", "net_sharpe")},
            "export": {
                k: export[k] for k in ("max_abs_diff_window", "max_abs_diff_step", "max_abs_diff_step_sequence")
            },
            "stream": {
                "events": stream["events"],
                "scored_events": stream["scored_events"],
                "parity_ok": stream["parity_ok"],
                "step_vs_window_class_agreement": stream["parity"]["step_vs_window_class_agreement"],
                "engines": {
                    e: {
                        "features_p50_us": r["features"]["p50_us"],
                        "inference_p50_us": r["inference"]["p50_us"],
                        "total_p50_us": r["total"]["p50_us"],
                        "total_p99_us": r["total"]["p99_us"],
                        "events_per_s": r["events_per_s"],
                        "macro_f1": r["macro_f1"],
                        "accuracy": r["accuracy"],
                        # the regime attribution stays in stream.json; its hour rows count the traded events
                        "backtest": {k: v for k, v in r["backtest"].items() if k != "regimes"},
                        "traded_events": sum(x["events"] for x in r["backtest"]["regimes"]["hour"].values()),
                    }
                    for e, r in stream["engines"].items()
                },
            },
        }
    return res


def markdown(res: dict) -> str:
    first = res[MODELS[0]]["stream"]
    lines = [
        f"Fold 0's test block (training run, horizon {H}):",
        "",
        "| model | macro-F1 | majority macro-F1 | accuracy | net Sharpe / day |",
        "|---|---:|---:|---:|---:|",
    ]
    for m, r in res.items():
        t = r["test"]
        lines.append(
            f"| {m} | {t['macro_f1']:.3f} | {t['majority_f1']:.3f} | {t['accuracy']:.3f} | {t['net_sharpe']:.2f} |"
        )
    lines += [
        "",
        f"Replay of the day's last {first['events']:,} events, one at a time ({first['scored_events']:,} scored, "
        f"horizon {H}); µs per event:",
        "",
        "| model | engine | features p50 | inference p50 | total p50 / p99 | events/s | macro-F1 | accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m, r in res.items():
        for e, x in r["stream"]["engines"].items():
            lines.append(
                f"| {m} | {e} | {x['features_p50_us']:.1f} | {x['inference_p50_us']:.1f} | "
                f"{x['total_p50_us']:.1f} / {x['total_p99_us']:.1f} | {x['events_per_s']:,.0f} | "
                f"{x['macro_f1']:.3f} | {x['accuracy']:.3f} |"
            )
    costs = next(iter(first["engines"].values()))["backtest"]["costs"]
    traded = next(iter(first["engines"].values()))["traded_events"]
    lines += [
        "",
        f"The same replay's forecasts traded net of costs (lobnet-stream's backtest, conf/backtest/default.yaml): "
        f"{costs['shares']} shares, marketable orders {costs['latency_us']:g} µs plus the engine's own time after "
        f"the event, ${costs['fee_per_share']:g} per share; dollars over the replay's last {traded:,} events "
        "(after the calibration prefix):",
        "",
        "| model | engine | net | gross | latency | spread | fees | trades | net ¢/share |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, r in res.items():
        for e, x in r["stream"]["engines"].items():
            b = x["backtest"]
            lines.append(
                f"| {m} | {e} | {b['net']:,.0f} | {b['gross']:,.0f} | {b['latency']:,.0f} | {b['spread']:,.0f} | "
                f"{b['fees']:,.0f} | {b['trades']:,} | {100 * b['net_per_share']:.2f} |"
            )
    lines += [
        "",
        "| model | export: ORT vs torch, window | step vs window | step vs sequence | stream parity with the batch "
        "pipeline | step / window class agreement |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for m, r in res.items():
        x, s = r["export"], r["stream"]
        lines.append(
            f"| {m} | {x['max_abs_diff_window']:.1e} | {x['max_abs_diff_step']:.1e} | "
            f"{x['max_abs_diff_step_sequence']:.1e} | {'yes' if s['parity_ok'] else 'NO'} | "
            f"{s['step_vs_window_class_agreement']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    out, dest = Path(sys.argv[1]), Path(sys.argv[2])
    res = collect(out)
    (dest / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    (dest / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
