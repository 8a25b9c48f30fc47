"""``lobnet-export checkpoint=PATH output_dir=DIR``: see :mod:`lobnet.live.export`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lobnet.cli import CONF_DIR, reports_errors
from lobnet.live.export import export_checkpoint


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
@reports_errors
def _main(cfg: DictConfig) -> None:
    r = export_checkpoint(cfg.checkpoint, cfg.output_dir, cfg.tolerance, cfg.tracking_uri, tuple(cfg.step_batches))
    print(
        f"wrote {cfg.output_dir}/model.onnx (opset {r['opset']}, dynamic batch and window); "
        f"max |ORT - torch| on {r['parity_windows']} real windows: {r['max_abs_diff_window']:.2e}"
    )
    if r["step"] == "model_step.onnx":
        print(
            f"wrote {cfg.output_dir}/model_step.onnx; max |step - window| {r['max_abs_diff_step']:.2e}, "
            f"|step - sequence| {r.get('max_abs_diff_step_sequence', float('nan')):.2e}"
        )
        for b, d in r["step_batches"].items():
            diff = d["max_abs_diff"]
            print(f"wrote {cfg.output_dir}/{d['file']} ({b} symbols per call); max |{b} streams - one| {diff:.2e}")
    else:
        print(
            "no step graph for this model: lobnet-stream runs it through the full-window fallback"
            + ("; step_batches does not apply (model.onnx takes any batch)" if cfg.step_batches else "")
        )


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
