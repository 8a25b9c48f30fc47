"""``lobnet-demo``: the main job on the built-in synthetic day: generate and strictly validate the day, prepare
features, labels and walk-forward folds, train the LSTM, TCN, Transformer and hybrid briefly (experiment=demo),
print the comparison table, and export the TCN to ONNX. Everything lands under ``output_dir``."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra import compose
from omegaconf import DictConfig
from rich.console import Console

from . import compare, train
from .cli import CONF_DIR, reports_errors
from .prepare import print_summary, run


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="demo")
@reports_errors
def _main(cfg: DictConfig) -> None:
    console = Console()
    out = Path(cfg.output_dir)
    console.rule("lobnet demo 1/3: synthetic day -> features, labels, walk-forward folds")
    summary = run(cfg)
    print_summary(summary, cfg.output_dir, console)
    db = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    common = [
        f"output_dir={out / 'train'}",
        f"prepared_dir={cfg.output_dir}",
        f"cache_dir={cfg.cache_dir}",
        f"data.events={cfg.data.events}",
        f"mlflow.tracking_uri={db}",
        "mlflow.experiment_name=demo",
        f"mlflow.artifact_location={(out / 'mlartifacts').resolve()}",
    ]
    for i, name in enumerate(cfg.models, start=1):
        console.rule(f"lobnet demo 2/3: training {name} ({i}/{len(cfg.models)}), experiment=demo")
        r = train.run(compose("train", overrides=["experiment=demo", f"model={name}", *common]))
        s = r["summary"]
        console.print(f"{name}: test macro-F1 {s['test/macro_f1']:.3f} (majority {s['test/majority_f1']:.3f})")
    console.rule("lobnet demo 3/3: comparison (lobnet-compare, read back from MLflow)")
    table = compare.run(
        compose(
            "compare",
            overrides=[f"mlflow.tracking_uri={db}", "mlflow.experiment_name=demo", f"output_dir={out / 'compare'}"],
        )
    )
    compare.print_table(table, console)
    console.print(f"comparison: {out / 'compare' / 'comparison.md'}; runs: mlflow ui --backend-store-uri {db}")
    console.rule("lobnet demo: ONNX export of the TCN's first fold (lobnet-export)")
    from .export import export_checkpoint

    ckpt = sorted((out / "train").glob("run-*/fold_0/best.ckpt"), key=lambda p: p.stat().st_mtime)
    tcn = [c for c in ckpt if '"model": "tcn"' in (c.parent / "model.json").read_text()]
    if tcn:
        rep = export_checkpoint(tcn[-1], out / "export")
        console.print(
            f"{out / 'export' / 'model.onnx'}: dynamic batch and window, max |ORT - torch| on real windows "
            f"{rep['max_abs_diff_window']:.1e} (<= {rep['tolerance']:g})"
        )


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
