"""``lobnet-demo``: the main job on the built-in synthetic day. Today: generate the day, validate it strictly,
and prepare features, labels and walk-forward folds; later stages (training, comparison, export, streaming)
extend this command as they land."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig
from rich.console import Console

from .cli import CONF_DIR, reports_errors
from .prepare import print_summary, run


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="demo")
@reports_errors
def _main(cfg: DictConfig) -> None:
    console = Console()
    console.rule("lobnet demo: synthetic day -> features, labels, walk-forward folds")
    summary = run(cfg)
    print_summary(summary, cfg.output_dir, console)
    console.print(f"summary: {Path(cfg.output_dir) / 'summary.json'}")


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
