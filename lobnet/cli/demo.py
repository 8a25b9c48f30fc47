"""``lobnet-demo``: the main job on the built-in synthetic day: generate and strictly validate the day, prepare
features, labels and walk-forward folds, fit the majority and EW-OFI sign baselines and
train the LSTM, TCN, Transformer and hybrid briefly on the same folds (experiment=demo), print the
comparison table (every model against the best baseline), export every deep model to ONNX and replay the last
``stream_events`` events of the day (after the first fold's training and validation blocks) through each
(lobnet-stream), printing the latency tables. Everything lands under ``output_dir``."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra import compose
from omegaconf import DictConfig

from lobnet.card import BEST, CARD, read_card
from lobnet.cli import CONF_DIR, compare, reports_errors, train
from lobnet.cli import console as cli_console
from lobnet.cli.prepare import print_summary, run
from lobnet.io import claim


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="demo")
@reports_errors
def _main(cfg: DictConfig) -> None:
    with claim(cfg.output_dir, "demo", inputs=[cfg.cache_dir]) as out:
        _demo(cfg, out)


def _demo(cfg: DictConfig, out: Path) -> None:
    console = cli_console()
    prepared = out / "prepared"
    console.rule("lobnet demo 1/4: synthetic day -> features, labels, walk-forward folds")
    summary = run(cfg, output_dir=prepared)
    print_summary(summary, str(prepared), console)
    db = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    common = [
        f"output_dir={out / 'train'}",
        f"prepared_dir={prepared}",
        f"cache_dir={cfg.cache_dir}",
        f"data.events={cfg.data.events}",
        f"mlflow.tracking_uri={db}",
        "mlflow.experiment_name=demo",
        f"mlflow.artifact_location={(out / 'mlartifacts').resolve()}",
    ]
    names = [*cfg.baselines, *cfg.models]  # the baselines through the same folds: the table says who beats them
    for i, name in enumerate(names, start=1):
        console.rule(f"lobnet demo 2/4: training {name} ({i}/{len(names)}), experiment=demo")
        r = train.run(compose("train", overrides=["experiment=demo", f"model={name}", *common]))
        s = r["summary"]
        console.print(f"{name}: test macro-F1 {s['test/macro_f1']:.3f} (majority {s['test/majority_f1']:.3f})")
    console.rule("lobnet demo 3/4: comparison (lobnet-compare, read back from MLflow)")
    table = compare.run(
        compose(
            "compare",
            overrides=[f"mlflow.tracking_uri={db}", "mlflow.experiment_name=demo", f"output_dir={out / 'compare'}"],
        )
    )
    compare.print_table(table, console)
    console.print(f"comparison: {out / 'compare' / 'comparison.md'}; runs: mlflow ui --backend-store-uri {db}")
    console.rule("lobnet demo 4/4: ONNX export (lobnet-export) and event-by-event replay (lobnet-stream)")
    from lobnet.cli import stream as stream_cli
    from lobnet.live.export import export_checkpoint

    for name in cfg.models:
        ckpt = sorted((out / "train").glob(f"run-*/fold_0/{BEST}"), key=lambda p: p.stat().st_mtime)
        ckpt = [c for c in ckpt if read_card(c.parent / CARD)["model"] == name]
        if not ckpt:
            continue
        rep = export_checkpoint(ckpt[-1], out / "export" / name)
        console.print(
            f"{name}: {out / 'export' / name}: max |ORT - torch| window {rep['max_abs_diff_window']:.1e}, "
            f"step {rep.get('max_abs_diff_step', float('nan')):.1e}, native step "
            f"{rep.get('max_abs_diff_native', float('nan')):.1e} (<= {rep['tolerance']:g})"
        )
        r = stream_cli.run(
            compose(
                "stream",
                overrides=[
                    f"model_dir={out / 'export' / name}",
                    f"output_dir={out / 'stream' / name}",
                    f"cache_dir={cfg.cache_dir}",
                    f"data.events={cfg.data.events}",
                    f"stream.events={cfg.stream_events}",
                    f"stream.offset={-cfg.stream_events}",  # the day's last events: out of sample for fold 0
                    f"mlflow.tracking_uri={db}",
                    "mlflow.experiment_name=demo-stream",
                    f"mlflow.artifact_location={(out / 'mlartifacts').resolve()}",
                ],
            )
        )
        print(r["table"], flush=True)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
