"""ONNX export of trained models: dynamic batch and window, parity with torch on real windows, MLflow logging."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import numpy as np
import onnxruntime as ort
import pytest

from .test_train import _compose, _overrides


@pytest.mark.parametrize("name", ["lstm", "tcn", "transformer", "hybrid", "deeplob"])
def test_every_trained_model_exports_with_parity(tmp_path, name):
    from lobnet import train
    from lobnet.export import export_checkpoint

    extra = ["features=with_book"] if name == "deeplob" else []
    r = train.run(
        _compose("train", _overrides(tmp_path, f"model={name}", "split.max_folds=1", "trainer.max_epochs=1", *extra))
    )
    ckpt = next((tmp_path / "train").glob("run-*/fold_0/best.ckpt"))
    rep = export_checkpoint(ckpt, tmp_path / "export")
    assert rep["max_abs_diff_window"] <= 1e-5 and rep["mlflow_run_id"]
    card = json.loads((tmp_path / "export" / "model.json").read_text())
    assert card["model"] == name and len(card["zscore"]["mean"]) == len(card["feature_names"])
    sess = ort.InferenceSession(str(tmp_path / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch, window in ((3, card["window"]), (1, card["window"] // 2)):  # dynamic batch and window
        logits, pos = sess.run(None, {"x": np.zeros((batch, window, len(card["feature_names"])), np.float32)})
        assert logits.shape == (batch, 2, 3) and pos.shape == (batch, 2)
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert (
        "onnx_model" in {a.path for a in client.list_artifacts(rep["mlflow_run_id"])}
        or client.get_run(rep["mlflow_run_id"]).outputs.model_outputs
    )
    assert r["folds"]


def test_export_cli_reports_a_missing_model_card(tmp_path):
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(b"")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lobnet.export_cli",
            f"checkpoint={bad}",
            f"output_dir={tmp_path / 'o'}",
            f"hydra.run.dir={tmp_path / 'h'}",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "model.json" in r.stderr
    assert not (tmp_path / "o").exists()
