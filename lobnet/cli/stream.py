"""``lobnet-stream model_dir=DIR data=... output_dir=OUT``: see :mod:`lobnet.live.replay`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from lobnet.cli import CONF_DIR, reports_errors
from lobnet.io import OutputDir
from lobnet.live.replay import ModelDir, StreamSettings, stream
from lobnet.live.report import table, write
from lobnet.prep.prepared import load_events


def run(cfg: DictConfig) -> dict:
    md = ModelDir.load(cfg.model_dir)  # before reading any data: a bad directory fails fast
    with OutputDir(cfg.output_dir, "stream", [cfg.model_dir, cfg.data.get("path"), cfg.cache_dir]) as od:
        events, _ = load_events(OmegaConf.to_container(cfg.data, resolve=True), cfg.cache_dir)
        execution = OmegaConf.to_container(cfg.execution, resolve=True) if cfg.get("execution") else None
        settings = StreamSettings(**OmegaConf.to_container(cfg.stream, resolve=True), execution=execution)
        result = stream(md, events, settings)
        m = cfg.mlflow
        clean = write(result, od.tmp, m.tracking_uri, m.experiment_name, m.get("artifact_location"))
    return {**clean, "table": table(result)}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="stream")
@reports_errors
def _main(cfg: DictConfig) -> None:
    r = run(cfg)
    print(r["table"])
    extra = ", execution.json, execution.png" if cfg.get("execution") else ""
    equity = "" if r.get("task") == "regression" else ", equity.png"  # a regression model does not trade
    print(f"wrote {cfg.output_dir}/stream.json, stream.md, latency.png{equity}{extra}")


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
