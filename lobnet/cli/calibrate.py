"""``lobnet-calibrate``: calibrate a one-pass factor's alpha and write ``calibration.json`` and plots.

lobnet-calibrate factor=liquidity data=lobster data.path=PATH output_dir=DIR
lobnet-calibrate factor=volatility data=quotes data.path=../shared/data/quotes/aig output_dir=DIR
lobnet-calibrate factor=pairs data=quotes data.path=../shared/data/quotes output_dir=DIR
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from lobnet.cli import CONF_DIR, reports_errors
from lobnet.cli import console as cli_console
from lobnet.io import OutputDir
from lobnet.online.factors import calibrate, periods
from lobnet.prep.prepared import load_events


def plot(problem, result: dict, period: np.ndarray, out: Path) -> list[str]:
    from lobnet.evaluation.plots import pyplot

    plt = pyplot()

    files = []
    alphas, mse = np.array(result["alphas"]), np.array(result["mse"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(1 - alphas, mse, "o-", ms=3, label="EW factor (calibration period)")
    for (name, b), style in zip(result["baselines"].items(), ("--", ":"), strict=False):
        ax.axhline(b["mse"], ls=style, color="grey", label=f"{name} at alpha_opt's memory")
    ax.axvline(1 - result["alpha_opt"], color="C3", lw=1, label=f"alpha_opt = {result['alpha_opt']:.4f}")
    ax.set_xscale("log")
    ax.set_xlabel("1 - alpha (short memory to the right)")
    ax.set_ylabel(f"mean squared error ({problem.units})²")
    ax.set_title(f"{problem.name}: error against alpha")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "error_vs_alpha.png", dpi=120)
    plt.close(fig)
    files.append("error_vs_alpha.png")

    f, r = problem.evaluate(result["alpha_opt"])
    ok = np.flatnonzero((period == 1) & np.isfinite(f) & np.isfinite(r))
    pick = np.random.default_rng(0).choice(ok, size=min(20_000, ok.size), replace=False) if ok.size else ok
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(f[pick], r[pick], s=2, alpha=0.3)
    if pick.size:
        lo, hi = np.percentile(np.concatenate([f[pick], r[pick]]), [0.5, 99.5])
        ax.plot([lo, hi], [lo, hi], color="C3", lw=1, label="response = factor")
        ax.legend(fontsize=8)
    ax.set_xlabel(f"factor ({problem.units})")
    ax.set_ylabel(f"response ({problem.units})")
    ax.set_title(f"{problem.name} at alpha_opt, test period (corr {result['corr_test']:.3f})")
    fig.tight_layout()
    fig.savefig(out / "factor_vs_response.png", dpi=120)
    plt.close(fig)
    files.append("factor_vs_response.png")
    return files


def run(cfg: DictConfig) -> dict:
    with OutputDir(cfg.output_dir, "calibrate", [cfg.data.get("path"), cfg.cache_dir]) as od:
        return _calibrate(cfg, od.tmp)


def _calibrate(cfg: DictConfig, out: Path) -> dict:
    events, meta = load_events(OmegaConf.to_container(cfg.data, resolve=True), cfg.cache_dir)
    factor = instantiate(cfg.factor)
    problem = factor.problem(events)
    c = cfg.calibration
    period = periods(problem, c.calib_days, c.calib_fraction)
    result = calibrate(problem, period, c.alpha_min, c.alpha_max, c.coarse, c.refine, c.get("reps", 999))
    result["data"] = {
        "reader": meta["reader"],
        "files": meta["files"],
        "symbols": sorted(events["symbol"].unique().to_list()),
        "days": sorted(str(d) for d in events["date"].unique().to_list()),
    }
    result["config"] = OmegaConf.to_container(cfg.factor, resolve=True)
    result["plots"] = plot(problem, result, period, out)
    (out / "calibration.json").write_text(json.dumps(result, indent=2))
    return result


def print_result(r: dict, console: Console | None = None) -> None:
    console = console or cli_console()
    t = Table(
        title=f"{r['factor']} on {', '.join(r['data']['symbols'])}: alpha_opt {r['alpha_opt']:.4f} "
        f"(window ~{r['effective_window']})"
    )
    cols = ("predictor", "MSE calibration", "MSE test", "MAE test", "R² test", "corr test", "MSE − factor's (95 %)")
    for col in cols:
        t.add_column(col, justify="right" if col != "predictor" else "left")
    tc = r["test_comparison"]["predictors"]

    def row(name, calib_mse, test_mse, corr):
        s = tc.get(name)
        cells = [f"{calib_mse:.4g}", f"{test_mse:.4g}"]
        cells += [f"{s['mae']:.4g}", f"{s['r2_oos']:.3f}"] if s else ["-", "-"]
        cells.append(f"{corr:.3f}")
        d = s.get("delta_mse") if s else None
        cells.append(f"{d['mean']:+.3g} [{d['lo']:+.3g}, {d['hi']:+.3g}]" if d else ("own target" if not s else ""))
        t.add_row(name, *cells)

    row("EW factor", r["mse_opt"], r["oos_mse"], r["corr_test"])
    for name, b in r["baselines"].items():
        row(name, b["mse"], b["oos_mse"], b["corr_test"])
    console.print(t)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="calibrate")
@reports_errors
def _main(cfg: DictConfig) -> None:
    r = run(cfg)
    print_result(r)
    print(f"wrote {Path(cfg.output_dir) / 'calibration.json'} and {', '.join(r['plots'])}")


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
