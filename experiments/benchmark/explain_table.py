"""What the benchmark's models read, side by side (README.md here), from one run of explain.sh:
``explain_table.py OUT RESULTS_DIR``.

Per model, from its fold's ``explain/explain.json`` (MLflow): the five feature groups whose shuffling raises the
test log-loss most (with the 95% interval), the macro-F1 drop of the top group, how far back it reads (the share
of the integrated-gradients attribution in the last 10 events, and the lag by which half of it is reached), and,
for the attention models, each layer's attention mass on the last 10 events and its heads' mean lags. Writes
``explain.csv``, ``explain.md`` and ``explain.png`` (log-loss rise by group, models x groups; attribution by
lag) to RESULTS_DIR."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from lobnet.evaluation.plots import pyplot  # noqa: E402
from lobnet.tracking.runs import FOLD, PARENT, Tag  # noqa: E402

EXPERIMENT = "benchmark_explain"
ORDER = ["majority", "ew_ofi", "logreg", "gbdt", "lstm", "tcn", "transformer", "hybrid", "deeplob"]


def readings(out: Path) -> dict[str, dict]:
    client = mlflow.tracking.MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    parents = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], f"tags.`{Tag.KIND}` = '{PARENT}'")}
    got = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in client.search_runs([exp.experiment_id], f"tags.`{Tag.KIND}` = '{FOLD}'"):
            model = parents[r.data.tags[Tag.PARENT_RUN]].data.tags[Tag.MODEL]
            path = client.download_artifacts(r.info.run_id, "explain/explain.json", tmp)
            got[model] = json.loads(Path(path).read_text()) | {"test_macro_f1": r.data.metrics.get("test/macro_f1_h50")}
    return dict(sorted(got.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else 99))


def _ci(v: float, ci: list[float]) -> str:
    return f"{v:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def half_lag(by_lag: list[float]) -> int:
    c = np.cumsum(by_lag) / np.sum(by_lag)
    return int(np.searchsorted(c, 0.5))


def main(out: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    r = readings(out)
    rows, lines = [], []
    lines.append(
        "| model | test macro-F1 | top groups by log-loss rise [95% CI] | F1 drop of the top group "
        + "| IG in last 10 events | IG half-mass lag |"
    )
    lines.append("|---|---|---|---|---|---|")
    for m, e in r.items():
        imp = e["importance"]
        top = sorted(imp, key=lambda g: -imp[g]["logloss_rise"])[:5]
        cell = "; ".join(f"{g} {_ci(imp[g]['logloss_rise'], imp[g]['logloss_rise_ci'])}" for g in top)
        a = e.get("attribution")
        last10 = float(np.sum(a["by_lag"][:10]) / np.sum(a["by_lag"])) if a else None
        half = half_lag(a["by_lag"]) if a else None
        t = imp[top[0]]
        ig = ("", "") if a is None else (f"{last10:.2f}", str(half))
        lines.append(
            f"| {m} | {e['test_macro_f1']:.3f} | {cell} | {_ci(t['f1_drop'], t['f1_drop_ci'])} | {ig[0]} | {ig[1]} |"
        )
        for g, v in imp.items():
            rows.append(
                {
                    "model": m,
                    "group": g,
                    **{k: v[k] for k in ("f1_drop", "logloss_rise")},
                    "logloss_rise_lo": v["logloss_rise_ci"][0],
                    "logloss_rise_hi": v["logloss_rise_ci"][1],
                }
            )
    att = [(m, e["attention"]) for m, e in r.items() if e.get("attention")]
    if att:
        lines += ["", "| model | layer | attention on the last 10 events | heads' mean lag |", "|---|---|---|---|"]
        for m, layers in att:
            for i, layer in enumerate(layers):
                prof = np.array(layer["lag_profile"])
                lags = ", ".join(f"{x:.1f}" for x in layer["mean_lag_per_head"])
                lines.append(f"| {m} | {i} | {prof[:10].sum():.2f} (uniform: {10 / len(prof):.2f}) | {lags} |")
    learned = [(m, e["learned"]) for m, e in r.items() if e.get("learned")]
    if learned:
        lines += ["", "| baseline | its own top groups (coefficients or gains, share of the total) |", "|---|---|"]
        for m, le in learned:
            bg = le["by_group"]
            tot = sum(bg.values()) or 1.0
            top = sorted(bg, key=lambda g: -bg[g])[:5]
            lines.append(f"| {m} ({le['kind']}) | {'; '.join(f'{g} {bg[g] / tot:.2f}' for g in top)} |")
    seconds = {m: e["seconds"] for m, e in r.items()}
    lines += ["", "Explaining took " + ", ".join(f"{m} {s:.0f} s" for m, s in seconds.items()) + "."]
    pl.DataFrame(rows).write_csv(dest / "explain.csv")
    (dest / "explain.md").write_text("\n".join(lines) + "\n")
    plt = pyplot()
    groups = sorted({row["group"] for row in rows})
    models = list(r)
    M = np.array([[r[m]["importance"].get(g, {}).get("logloss_rise", np.nan) for g in groups] for m in models])
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.4 * len(models) + 2.5), gridspec_kw={"width_ratios": [3, 1]})
    im = axes[0].imshow(M, aspect="auto", cmap="RdBu_r", vmin=-np.nanmax(np.abs(M)), vmax=np.nanmax(np.abs(M)))
    axes[0].set_xticks(range(len(groups)), groups, rotation=90, fontsize=6)
    axes[0].set_yticks(range(len(models)), models)
    axes[0].set_title("rise in test log-loss when the group is shuffled", fontsize=9)
    fig.colorbar(im, ax=axes[0])
    for m, e in r.items():
        if e.get("attribution"):
            b = np.array(e["attribution"]["by_lag"])
            axes[1].plot(b / b.sum(), label=m)
    axes[1].set_xlabel("lag (events)")
    axes[1].set_title("integrated gradients by lag (share)", fontsize=9)
    axes[1].set_xscale("symlog", linthresh=10)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(dest / "explain.png", dpi=100)
    plt.close(fig)
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
