"""``lobnet-prepare``: compose the config, run :func:`lobnet.prep.prepared.prepare`, print what it did.

lobnet-prepare data=lobster data.path=PATH output_dir=DIR
lobnet-prepare data=quotes data.path=../shared/data/quotes/aig output_dir=DIR
lobnet-prepare data=synthetic output_dir=DIR
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from lobnet.cli import CONF_DIR, reports_errors
from lobnet.cli import console as cli_console
from lobnet.prep.labels import CLASS_NAMES
from lobnet.prep.prepared import prepare


def run(cfg: DictConfig, output_dir: str | Path | None = None) -> dict:
    """Prepare as ``cfg`` says, into ``output_dir`` when given (the demo's own sub-folder), else cfg's."""
    return prepare(
        data=OmegaConf.to_container(cfg.data, resolve=True),
        features=instantiate(cfg.features, _convert_="all"),
        labels=instantiate(cfg.labels, _convert_="all"),
        split=OmegaConf.to_container(cfg.split, resolve=True),
        window=int(cfg.window),
        output_dir=output_dir or cfg.output_dir,
        cache_dir=cfg.cache_dir,
    ).summary


def print_summary(summary: dict, output_dir: str, console: Console | None = None) -> None:
    console = console or cli_console()
    cached = " (reused: inputs and config unchanged)" if summary.get("cached") else ""
    console.print(
        f"prepared {summary['n_events']:,} events of {', '.join(summary['symbols'])} on {len(summary['days'])} day(s), "
        f"{summary['levels']} level(s), {summary['n_features']} features in {summary['seconds']:.2f} s "
        f"({summary['events_per_s']:,.0f} events/s) -> {output_dir}{cached}"
    )
    t = Table(title=f"labels ({summary['label_method']}, alpha {summary['alpha_mode']}, fold-0 samples)")
    for c in ("horizon", "alpha", *CLASS_NAMES):
        t.add_column(c, justify="right")
    for k, counts in summary["label_counts"].items():
        t.add_row(k, f"{summary['alphas_fold0'][k]:.2e}", *(f"{counts[c]:,}" for c in CLASS_NAMES))
    console.print(t)
    for f in summary["folds"]:
        console.print(f"  {f}")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
@reports_errors
def _main(cfg: DictConfig) -> None:
    summary = run(cfg)
    print_summary(summary, cfg.output_dir)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
