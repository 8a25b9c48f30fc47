"""ONNX export of a trained model's full-window graph, with a parity check against torch.

``torch.onnx.export(dynamo=True)`` with a pinned opset, an example batch of 2 (a batch of 1 would silently fix
the batch dimension), and dynamic batch and window dimensions, which every lobnet architecture allows. The
export fails loudly unless ONNX Runtime reproduces torch within ``tolerance`` on real windows, at two batch sizes
and two window lengths.

    lobnet-export checkpoint=runs/train/run-.../fold_0/best.ckpt output_dir=DIR

writes ``DIR/model.onnx`` (one file), ``DIR/model.json`` (architecture, feature list, normalisation statistics,
horizons, window) and ``DIR/export.json`` (parity figures).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

OPSET = 18
TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """The exported graph is not the model: wrong dimensions, or outputs beyond the tolerance."""


def load_model(checkpoint: str | Path):
    """The model of a lobnet-train checkpoint, from the ``model.json`` written beside it."""
    from .models import build_model

    ckpt = Path(checkpoint)
    card_path = ckpt.parent / "model.json"
    if not card_path.exists():
        raise FileNotFoundError(f"{card_path} not found: export needs a checkpoint written by lobnet-train")
    card = json.loads(card_path.read_text())
    cfg = dict(card["config"])
    model = build_model(card["model"], **cfg)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    return model.eval(), card


def export_window(model: torch.nn.Module, n_features: int, path: str | Path, window: int = 100) -> Path:
    path = Path(path)
    x = torch.randn(2, window, n_features)  # batch >= 2: a batch of 1 would be baked into the graph
    dims = {"x": {0: torch.export.Dim("batch", min=1, max=65536), 1: torch.export.Dim("window", min=8, max=4096)}}
    import logging

    noisy = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in noisy]
    try:
        for lg in noisy:  # the exporter's passes log every step at INFO; keep the user's output readable
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval(),
                (x,),
                str(path),
                dynamo=True,
                opset_version=OPSET,
                external_data=False,
                input_names=["x"],
                output_names=["logits", "position"],
                dynamic_shapes=dims,
            )
    finally:
        for lg, level in zip(noisy, levels, strict=True):
            lg.setLevel(level)
    import onnx

    shape = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    if not (shape[0].dim_param and shape[1].dim_param):
        raise ExportError(f"{path}: batch and window must be symbolic dimensions, got {shape}")
    return path


def window_parity(model: torch.nn.Module, onnx_path: str | Path, windows: np.ndarray) -> float:
    """Largest |ORT - torch| over all outputs, for the windows at two batch sizes and two window lengths."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    W = windows.shape[1]
    for batch in (windows[:2], windows):
        for w in (W, max(8, W // 2)):
            x = np.ascontiguousarray(batch[:, -w:], dtype=np.float32)
            with torch.no_grad():
                ref = model(torch.from_numpy(x))
            got = sess.run(None, {"x": x})
            worst = max(worst, *(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref, strict=True)))
    return worst


def export_checkpoint(checkpoint: str | Path, output_dir: str | Path, tolerance: float = TOLERANCE) -> dict:
    model, card = load_model(checkpoint)
    out = Path(output_dir)
    tmp = out.parent / f".{out.name}.export-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        onnx_path = export_window(model, len(card["feature_names"]), tmp / "model.onnx", card["window"])
        windows = np.load(Path(checkpoint).parent / "parity_windows.npy")
        diff = window_parity(model, onnx_path, windows)
        report = {
            "checkpoint": str(checkpoint),
            "opset": OPSET,
            "max_abs_diff_window": diff,
            "tolerance": tolerance,
            "parity_windows": int(len(windows)),
            "dynamic_axes": ["batch", "window"],
        }
        if not diff <= tolerance:
            raise ExportError(f"ONNX Runtime differs from torch by {diff:.3g} > {tolerance:g} on real windows")
        (tmp / "model.json").write_text(json.dumps(card, indent=2))
        (tmp / "export.json").write_text(json.dumps(report, indent=2))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report["mlflow_run_id"] = _log_to_training_run(Path(checkpoint), out / "model.onnx")
    return report


def _log_to_training_run(checkpoint: Path, onnx_path: Path) -> str | None:
    """Log the ONNX model (mlflow.onnx) to the fold's MLflow run, found in the training run's state.json."""
    state_path = checkpoint.parent.parent / "state.json"
    fold = checkpoint.parent.name.removeprefix("fold_")
    if not state_path.exists():
        return None
    state = json.loads(state_path.read_text())
    run_id = state.get("folds", {}).get(fold, {}).get("run_id")
    if not run_id or not state.get("tracking_uri"):
        return None
    import mlflow
    import mlflow.onnx
    import onnx

    mlflow.set_tracking_uri(state["tracking_uri"])
    with mlflow.start_run(run_id=run_id):
        mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="onnx_model")
    mlflow.tracking.MlflowClient(state["tracking_uri"]).set_terminated(run_id)
    return run_id
