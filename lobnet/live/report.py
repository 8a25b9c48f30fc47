"""A replay's report: the Markdown tables, the latency histograms and equity curves, and the write of a
stream's outputs (into the temporary folder of the command's :class:`lobnet.io.OutputDir`) with its MLflow run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from lobnet.evaluation.backtest import BACKTEST_METRICS, summary_table


def table(result: dict) -> str:
    """The Markdown latency table."""
    if result.get("task") == "regression":
        return regression_table(result)
    lines = [
        f"Streaming {result['model']} on {result['symbol']} {result['date']}: {result['events']:,} events, "
        f"window {result['window']}, horizon {result['primary_horizon']}, {result['settings']['threads']} thread; "
        f"parity with the batch pipeline: {'yes' if result['parity_ok'] else 'NO'}; the stream's signal: "
        f"{result.get('signal_engine', '-')}",
        "",
        "| engine | features p50 µs | inference p50 µs | total p50 µs | p90 | p99 | p99.9 | max | events/s "
        "| macro-F1 | accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in result["engines"].items():
        t = e["total"]
        lines.append(
            f"| {name} | {e['features']['p50_us']:.1f} | {e['inference']['p50_us']:.1f} | {t['p50_us']:.1f} | "
            f"{t['p90_us']:.1f} | {t['p99_us']:.1f} | {t['p999_us']:.1f} | {t['max_us']:.0f} | "
            f"{e['events_per_s']:,.0f} | {e['macro_f1']:.3f} | {e['accuracy']:.3f} |"
        )
    bts = {name: e["backtest"] for name, e in result["engines"].items() if "backtest" in e}
    if bts:
        c = next(iter(bts.values()))
        cs = c["costs"]
        own = " plus the engine's own time for the event" if c["compute_delay_charged"] else ""
        lines += [
            "",
            f"Net of costs, from the first scored event: {cs['shares']} shares per unit, up long, down short, flat "
            f"{'holds' if cs['flat'] == 'hold' else 'closes'}; marketable orders (buy at the ask, sell at the bid) "
            f"{cs['latency_us']:g} µs after the event{own}; fees "
            f"${cs['fee_per_share']:g}/share + {cs['fee_bps']:g} bp; flat at the end",
            "",
            summary_table(bts).rstrip("\n"),
        ]
        naive = {name: b["naive"] for name, b in bts.items() if "naive" in b}
        if naive:
            k = next(iter(naive.values()))["random_draws"]
            lines += [
                "",
                f"Against naive benchmarks under the same costs (no compute time): always flat ($0), buy-and-hold, and "
                f"{k} random forecasts with the engine's turnover; p: the share of them that did at least as well",
                "",
                "| engine | net $ (no compute time) | buy-and-hold $ | random median $ | random 95th pct $ | p |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for name, nv in naive.items():
                lines.append(
                    f"| {name} | {nv['forecast_net']:,.2f} | {nv['buy_and_hold']:,.2f} | "
                    f"{nv['random_quartiles'][1]:,.2f} | {nv['random_p95']:,.2f} | {nv['p_random']:.3f} |"
                )
        kinds = c.get("regimes", {})
        if kinds:
            lines += ["", "Net $ by regime (paper PnL by the interval's start, costs by the decision's event)", ""]
            lines += ["| regime | events | " + " | ".join(bts) + " |", "|---|---:|" + "---:|" * len(bts)]
            for kind, rows in kinds.items():
                for v, row in rows.items():
                    nets = " | ".join(f"{b['regimes'][kind][v]['net']:,.2f}" for b in bts.values())
                    lines.append(f"| {kind} {v} | {row['events']:,} | {nets} |")
    if ex := result.get("execution"):
        st = ex["settings"]
        lines += [
            "",
            f"Execution: {st['orders']} parent orders of {st['quantity']:,} shares over {st['events']:,} events, "
            f"{st['children']} children; "
            "shortfall against the arrival mid, bps (positive: a cost); saving: TWAP's shortfall minus this one's"
            + (f"; VWAP {ex['vwap']}" if "vwap" in ex else ""),
            "",
            "| schedule | shortfall | std | timing | spread | impact | fees | saving vs TWAP ± se "
            "| cheaper than TWAP |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, e in ex["schedules"].items():
            lines.append(
                f"| {name} | {e['shortfall_bps']:.2f} | {e['shortfall_bps_std']:.2f} | {e['timing_bps']:.2f} | "
                f"{e['spread_bps']:.2f} | {e['impact_bps']:.2f} | {e['fees_bps']:.2f} | "
                f"{e['saving_vs_twap_bps']:+.2f} ± {e['saving_vs_twap_se_bps']:.2f} | {e['cheaper_than_twap']:.0%} |"
            )
    return "\n".join(lines) + "\n"


def regression_table(result: dict) -> str:
    """A regression model's replay (:mod:`lobnet.live.replay_regression`): per engine, the per-event time and the
    scores on the target, against the calibrated factor's on the same events."""
    lines = [
        f"Streaming {result['model']} ({result['target']}) on {result['symbol']} {result['date']}: "
        f"{result['events']:,} events, {result['scored_events']:,} scored, window {result['window']}, "
        f"{result['settings']['threads']} thread; EW factor alpha {result['factor_alpha']:.4f}; parity with the "
        f"batch pipeline: {'yes' if result['parity_ok'] else 'NO'}; the stream's signal: {result['signal_engine']}",
        "",
        "| engine | features p50 µs | inference p50 µs | total p50 µs | p99 | events/s | MSE | MSE / factor's | R² "
        "| corr |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in result["engines"].items():
        t = e["total"]
        lines.append(
            f"| {name} | {e['features']['p50_us']:.1f} | {e['inference']['p50_us']:.1f} | {t['p50_us']:.1f} "
            f"| {t['p99_us']:.1f} | {e['events_per_s']:,.0f} | {e['mse']:.4g} | {e['mse_vs_factor']:.3f} "
            f"| {e['r2']:.3f} | {e['corr']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _save(plt, fig, ax, path: Path) -> Path:
    """The legend, then the figure to ``path``, closed."""
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def equity_plot(result: dict, path: Path) -> Path:
    """Each engine's equity curve net of costs over the traded events."""
    from lobnet.evaluation.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, e in result["engines"].items():
        if "_equity" in e:
            ax.plot(e["_equity"], label=name, lw=1)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("traded event")
    ax.set_ylabel("equity net of costs ($)")
    return _save(plt, fig, ax, path)


def histogram(result: dict, path: Path) -> Path:
    from lobnet.evaluation.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    times = {name: e["_ns"] / 1e3 for name, e in result["engines"].items()}
    lo = max(min(us.min() for us in times.values()), 0.5)
    hi = max(np.percentile(us, 99.9) for us in times.values())
    bins = np.logspace(np.log10(lo), np.log10(hi), 160)  # shared, so that the engines' heights compare
    for name, us in times.items():
        ax.hist(np.clip(us, None, np.percentile(us, 99.9)), bins=bins, histtype="step", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("per-event time, feature update + inference (µs, log scale; clipped at p99.9)")
    ax.set_ylabel("events")
    return _save(plt, fig, ax, path)


EXECUTION = "execution.json"  # lobnet-stream execution=...: every schedule over every parent order


def execution_plot(ex: dict, path: Path) -> Path:
    """Implementation shortfall per parent order, one box per schedule, its split in the title's order."""
    from lobnet.evaluation.plots import pyplot

    plt = pyplot()
    names = list(ex["schedules"])
    data = [[o["shortfall_bps"] for o in ex["orders"] if o["schedule"] == n] for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("implementation shortfall (bps of the arrival mid)")
    ax.set_title(f"{len(data[0])} parent orders per schedule; the mean is the triangle")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(
    result: dict,
    tmp: Path,
    tracking_uri: str | None = None,
    experiment: str = "lobnet-stream",
    artifact_location: str | None = None,
) -> dict:
    """stream.json, stream.md, latency.png and equity.png in ``tmp`` (the temporary folder of the command's
    :class:`lobnet.io.OutputDir`, which replaces the output directory whole once everything is written), and an
    MLflow run when ``tracking_uri`` is set, its artifacts in the experiment's ``artifact_location``
    (:func:`lobnet.tracking.runs.experiment_id`)."""
    histogram(result, tmp / "latency.png")
    if result.get("task") != "regression":  # a regression model does not trade
        equity_plot(result, tmp / "equity.png")
    clean = {
        **result,
        "engines": {k: {a: b for a, b in v.items() if a[0] != "_"} for k, v in result["engines"].items()},
    }
    if "execution" in result:  # every parent order in execution.json; stream.json keeps the schedules' summary
        (tmp / EXECUTION).write_text(json.dumps(result["execution"], indent=2, default=str))
        execution_plot(result["execution"], tmp / "execution.png")
        clean["execution"] = {k: v for k, v in result["execution"].items() if k != "orders"}
    (tmp / "stream.json").write_text(json.dumps(clean, indent=2))
    (tmp / "stream.md").write_text(table(result))
    if tracking_uri:
        clean["mlflow_run_id"] = _log_run(clean, tmp, tracking_uri, experiment, artifact_location)
        (tmp / "stream.json").write_text(json.dumps(clean, indent=2))
    return clean


def _log_run(clean: dict, files: Path, tracking_uri: str, experiment: str, artifact_location: str | None) -> str:
    """One MLflow run of the replay, through the client API (no process-wide active run or experiment left
    behind); FAILED if logging it fails."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from lobnet.tracking.runs import experiment_id, failed_on_error

    client = MlflowClient(tracking_uri)
    run = client.create_run(experiment_id(client, experiment, artifact_location), run_name=f"stream {clean['model']}")
    rid = run.info.run_id
    with failed_on_error(client, rid):
        params = {"model": clean["model"], "model_dir": clean["model_dir"], "events": clean["events"]}
        params.update({"window": clean["window"], **clean["settings"], "signal_engine": clean["signal_engine"]})
        metrics = {"parity_ok": float(clean["parity_ok"])}
        sig = clean["engines"][clean["signal_engine"]]  # the stream's signal, under engine-free names
        if clean.get("task") == "regression":
            return _log_regression(client, rid, clean, files, metrics, params, sig)
        metrics.update({f"signal.total.{q}": sig["total"][q] for q in ("p50_us", "p99_us")})
        metrics.update({f"signal.{key}": sig[key] for key in ("macro_f1", "accuracy")})
        if "backtest" in sig:
            metrics["signal.backtest.net"] = sig["backtest"]["net"]
        for name, e in clean["engines"].items():
            for part in ("features", "inference", "total"):
                metrics.update({f"{name}.{part}.{q}": v for q, v in e[part].items()})
            metrics.update({f"{name}.{key}": e[key] for key in ("events_per_s", "macro_f1", "accuracy")})
            if "backtest" in e:
                metrics.update({f"{name}.backtest.{key}": e["backtest"][key] for key in BACKTEST_METRICS})
                for key in ("buy_and_hold", "random_mean", "p_random"):
                    if key in e["backtest"].get("naive", {}):
                        metrics[f"{name}.backtest.naive.{key}"] = e["backtest"]["naive"][key]
        for name, e in clean.get("execution", {}).get("schedules", {}).items():
            metrics.update({f"execution.{name}.{k}": e[k] for k in ("shortfall_bps", "saving_vs_twap_bps")})
        ts = int(time.time() * 1000)
        client.log_batch(
            rid,
            metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items() if v == v],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        for f in ("stream.json", "stream.md", "latency.png", "equity.png", EXECUTION, "execution.png"):
            if (files / f).exists():
                client.log_artifact(rid, str(files / f))
    client.set_terminated(rid)
    return rid


REGRESSION_SCORES = ("mse", "mae", "r2", "corr", "mse_vs_factor")


def _log_regression(client, rid: str, clean: dict, files: Path, metrics: dict, params: dict, sig: dict) -> str:
    """:func:`_log_run`'s metrics for a regression model's replay: per engine its latency and scores on the
    target (the factor an engine of its own, ``ew_factor``), the signal's under ``signal.*``."""
    from mlflow.entities import Metric, Param

    params["target"] = clean["target"]
    metrics["factor_alpha"] = clean["factor_alpha"]
    metrics.update({f"signal.total.{q}": sig["total"][q] for q in ("p50_us", "p99_us")})
    metrics.update({f"signal.{k}": sig[k] for k in REGRESSION_SCORES})
    for name, e in clean["engines"].items():
        for part in ("features", "inference", "total"):
            metrics.update({f"{name}.{part}.{q}": v for q, v in e[part].items()})
        metrics.update({f"{name}.{k}": e[k] for k in (*REGRESSION_SCORES, "events_per_s")})
    ts = int(time.time() * 1000)
    client.log_batch(
        rid,
        metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items() if v == v],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
    for f in ("stream.json", "stream.md", "latency.png"):
        client.log_artifact(rid, str(files / f))
    client.set_terminated(rid)
    return rid
