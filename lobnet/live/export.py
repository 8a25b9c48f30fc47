"""ONNX export of a trained model: the full-window graph and the streaming step graph, with parity checks.

The full-window graph ``model.onnx`` (B, W, F) is ``torch.onnx.export(dynamo=True)`` at a pinned opset
(:data:`OPSET`), exported with an example batch of 2 (a batch of 1 would silently fix the batch dimension) and
dynamic batch and window dimensions, which every lobnet architecture allows. The step graph ``model_step.onnx``
(:mod:`lobnet.models.streaming`) takes one event's normalised features and the state, and returns the outputs and
the new state; it is written directly from the weights at opset :data:`lobnet.live.step_graph.STEP_OPSET`
(:mod:`lobnet.live.step_graph` says why), with a batch of 1 (one stream; :func:`export_step` writes one for several).

The export fails loudly, writing nothing, unless:

* ``max_abs_diff_window``: ONNX Runtime reproduces torch on real windows, at two batch sizes and two window
  lengths;
* ``max_abs_diff_step``: the step graph, run from its initial state over a real window's events, equals the
  full-window graph on the events so far, at every event;
* ``max_abs_diff_step_sequence``: over 3 W consecutive real events, the step graph equals the model run over
  them as one sequence;
* ``max_abs_diff_native``: the native step engine (:mod:`lobnet.live.native`, weights in ``model_native.npz``)
  equals the full-window graph on every prefix of real windows and the step graph over the 3 W real events,
  each half from a reset;

all within ``tolerance``.

    lobnet-export checkpoint=runs/train/run-.../fold_0/best.ckpt output_dir=DIR

writes ``DIR/model.onnx``, ``DIR/model_step.onnx`` and ``DIR/model_native.npz`` (the native step's packed
weights; both absent for models that stream through the full-window fallback), ``DIR/model.json``
(architecture, feature list and spec, normalisation statistics, label rule, horizons, window),
``DIR/weights.pt`` (the torch weights, for the streamer's batch reference) and ``DIR/export.json`` (parity
figures).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from lobnet.card import CARD, FOLD_FILES, NATIVE, PARITY_SEQUENCE, PARITY_WINDOWS, WEIGHTS, load_model
from lobnet.io import OutputDir, check_output_dir
from lobnet.live.parity import batch_parity, native_parity, sequence_parity, step_parity, window_parity

OPSET = 18
TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """The exported graph is not the model: wrong dimensions, or outputs beyond the tolerance."""


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's passes log every step at INFO and print a report; keep the user's output readable.

    Also clears the Python dispatch cache of the RNN operators. For dynamic sequence lengths the exporter swaps in
    a while_loop decomposition of ``aten.lstm`` by editing the operator's kernels without clearing that cache, so
    in a process that has already traced an LSTM (a second export, or DeepLOB then an LSTM) the cached kernel
    wins and the window dimension silently becomes a constant."""
    import logging

    for op in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input):
        op._dispatch_cache.clear()

    noisy = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in noisy]
    try:
        for lg in noisy:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(noisy, levels, strict=True):
            lg.setLevel(level)


def export_window(model: torch.nn.Module, n_features: int, path: str | Path, window: int = 100) -> Path:
    path = Path(path)
    x = torch.randn(2, window, n_features)  # batch >= 2: a batch of 1 would be baked into the graph
    dims = {"x": {0: torch.export.Dim("batch", min=1, max=65536), 1: torch.export.Dim("window", min=8, max=4096)}}
    with _quiet_exporter():
        torch.onnx.export(
            model.eval(),
            (x,),
            str(path),
            dynamo=True,
            opset_version=OPSET,
            external_data=False,
            input_names=["x"],
            output_names=list(model.heads.outputs),  # logits, position; a regression model: prediction
            dynamic_shapes=dims,
        )
    import onnx

    shape = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    if not (shape[0].dim_param and shape[1].dim_param):
        raise ExportError(f"{path}: batch and window must be symbolic dimensions, got {shape}")
    return path


def export_step(step, path: str | Path, batch: int = 1) -> Path:
    """The streaming step graph of a :class:`~lobnet.models.streaming.StepModule`, written directly from its
    weights (:mod:`lobnet.live.step_graph`): inputs ``x`` (batch, F) normalised features and every state tensor by
    name; outputs ``logits``, ``position`` and ``<name>_out`` per state. ``batch``: streams (symbols) stepped
    together in one call, each with its own state; ``lobnet-export`` writes one stream's."""
    import onnx

    from lobnet.live.step_graph import step_graph

    path = Path(path)
    onnx.save(step_graph(step, batch), str(path))
    return path


def resolve_checkpoint(ref: str | Path, tracking_uri: str | None, into: Path) -> tuple[Path, str | None]:
    """A local checkpoint for ``ref``, and the MLflow run it came from when ``ref`` is an MLflow model URI: the
    fold's logged model (:mod:`lobnet.tracking.model`), named as ``runs:/<fold run id>`` (short for
    ``runs:/<fold run id>/model``), ``models:/<model id>``, ``models:/<name>/<version>`` or
    ``models:/<name>@<alias>``. Anything else is a path."""
    ref = str(ref)
    if not ref.startswith(("runs:/", "models:/")):
        return Path(ref), None
    import mlflow.artifacts
    from mlflow.models import Model

    from lobnet.tracking.model import NAME

    if ref.startswith("runs:/"):
        run_id, _, path = ref.removeprefix("runs:/").partition("/")
        if not run_id:
            raise ValueError(f"{ref}: a run URI needs a run id (runs:/<run_id>)")
        ref = f"runs:/{run_id}/{path or NAME}"
    from lobnet.tracking.runs import tracking_uri as using

    with using(tracking_uri):  # MLflow 3 resolves runs:/ through the process-wide URI alone
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=ref, dst_path=str(into), tracking_uri=tracking_uri)
        )
    ckpts = sorted((local / "artifacts").glob("*.ckpt"))
    if not (local / "MLmodel").exists() or len(ckpts) != 1:
        raise FileNotFoundError(f"{ref}: not a lobnet-train fold model (no MLmodel with one .ckpt among its artifacts)")
    return ckpts[0], Model.load(str(local)).run_id


def export_checkpoint(
    checkpoint: str | Path,
    output_dir: str | Path,
    tolerance: float = TOLERANCE,
    tracking_uri: str | None = None,
    step_batches: tuple[int, ...] = (),
) -> dict:
    """Export ``checkpoint`` (a ``best.ckpt``/``last.ckpt`` written by lobnet-train, or an MLflow model URI of a
    fold with ``tracking_uri``: :func:`resolve_checkpoint`) to ``output_dir``; returns the export report.
    ``step_batches``: also write ``model_step_b<B>.onnx``, the step for B symbols per call, for each B
    (:func:`batch_parity`)."""
    import tempfile

    inputs = [] if str(checkpoint).startswith(("runs:/", "models:/")) else _inputs(Path(checkpoint))
    check_output_dir(output_dir, "export", inputs)  # before any download: a refused directory fails fast
    with tempfile.TemporaryDirectory() as dl:
        ckpt, run_id = resolve_checkpoint(checkpoint, tracking_uri, Path(dl))
        report = _export(ckpt, Path(output_dir), tolerance, tuple(step_batches))
    report["checkpoint"] = str(checkpoint)
    report["mlflow_run_id"] = _log_to_training_run(ckpt, Path(output_dir) / "model.onnx", run_id, tracking_uri)
    return report


def _export(checkpoint: Path, out: Path, tolerance: float, step_batches: tuple[int, ...] = ()) -> dict:
    from lobnet.live.native import NativeStep  # numba, imported where it is used
    from lobnet.live.step_graph import STEP_OPSET
    from lobnet.models.streaming import StepModule, has_step

    model, card = load_model(checkpoint)
    fold = Path(checkpoint).parent
    if card.get("zscore") is None:
        raise ExportError(
            f"{checkpoint}: trained with normalization=rolling_zscore; the streaming graphs need the training "
            "fold's z-score (normalization=train_zscore)"
        )
    with OutputDir(out, "export", inputs=_inputs(Path(checkpoint))) as od:
        tmp = od.tmp
        onnx_path = export_window(model, len(card["feature_names"]), tmp / "model.onnx", card["window"])
        windows = np.load(fold / PARITY_WINDOWS)
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
        if has_step(model):
            step = StepModule(model, span=card["window"])
            step_path = export_step(step, tmp / "model_step.onnx")
            report["step"] = "model_step.onnx"
            report["step_opset"] = STEP_OPSET
            report["step_state"] = {n: list(shape) for n, shape in step.state_shapes()}
            report["max_abs_diff_step"] = step_parity(model, step_path, onnx_path, windows)
            seq_path = fold / PARITY_SEQUENCE
            sequence = np.load(seq_path) if seq_path.exists() else None  # 3 W consecutive test rows
            if sequence is not None:
                report["max_abs_diff_step_sequence"] = sequence_parity(model, step_path, sequence, card["window"])
            worst = max(report["max_abs_diff_step"], report.get("max_abs_diff_step_sequence", 0.0))
            if not worst <= tolerance:
                raise ExportError(f"the step graph differs from the full-window model by {worst:.3g} > {tolerance:g}")
            sequence = windows[0] if sequence is None else sequence
            native = NativeStep.from_step(step)
            native.save(tmp / NATIVE, card)
            report["native"] = NATIVE
            report["max_abs_diff_native"] = native_parity(model, native, step_path, onnx_path, windows, sequence)
            if not report["max_abs_diff_native"] <= tolerance:
                raise ExportError(
                    f"the native step differs from the ONNX graphs by {report['max_abs_diff_native']:.3g} > "
                    f"{tolerance:g} on real events"
                )
            report["step_batches"] = {}
            for b in step_batches:
                path = export_step(step, tmp / f"model_step_b{b}.onnx", b)
                diff = batch_parity(step_path, path, sequence)
                report["step_batches"][str(b)] = {"file": path.name, "max_abs_diff": diff}
                if not diff <= tolerance:
                    raise ExportError(f"the step graph for {b} streams differs from one stream's by {diff:.3g}")
        else:
            report["step"] = "window_fallback"  # DeepLOB, absolute-position Transformers: see models/streaming.py
        torch.save(model.state_dict(), tmp / WEIGHTS)  # the streamer's batch reference runs the torch model
        (tmp / CARD).write_text(json.dumps(card, indent=2))
        (tmp / "export.json").write_text(json.dumps(report, indent=2))
    return report


def _inputs(checkpoint: Path) -> list[Path]:
    """What an export reads: the checkpoint and the files beside it (an output may sit beside them, not on them)."""
    return [checkpoint, *(checkpoint.parent / name for name in FOLD_FILES.values())]


def fold_run(checkpoint: Path) -> tuple[str | None, str | None]:
    """The MLflow run and tracking URI of the fold a lobnet-train checkpoint belongs to, from the training run's
    ``state.json``; (None, None) for a checkpoint outside a training run's folder."""
    state_path = checkpoint.parent.parent / "state.json"
    if not state_path.exists():
        return None, None
    state = json.loads(state_path.read_text())
    fold = checkpoint.parent.name.removeprefix("fold_")
    return state.get("folds", {}).get(fold, {}).get("run_id"), state.get("tracking_uri")


def _log_to_training_run(checkpoint: Path, onnx_path: Path, run_id: str | None, uri: str | None) -> str | None:
    """Log the ONNX models (mlflow.onnx: ``onnx_model``, ``onnx_step_model``), export.json and the native step's
    weights to the fold's MLflow run: the run given, or the one the training run's state.json names for this
    fold."""
    if run_id is None:
        run_id, uri = fold_run(checkpoint)
    if not run_id or not uri:
        return None
    import mlflow
    import mlflow.onnx
    import onnx

    from lobnet.tracking.model import in_run

    with in_run(uri, run_id):
        mlflow.onnx.log_model(onnx.load(str(onnx_path)), name="onnx_model")
        step = onnx_path.with_name("model_step.onnx")
        if step.exists():
            mlflow.onnx.log_model(onnx.load(str(step)), name="onnx_step_model")
        mlflow.log_artifact(str(onnx_path.with_name("export.json")), artifact_path="export")
        if (native := onnx_path.with_name(NATIVE)).exists():  # the native step's packed weights
            mlflow.log_artifact(str(native), artifact_path="export")
        for batched in sorted(onnx_path.parent.glob("model_step_b*.onnx")):  # the steps for several symbols
            mlflow.log_artifact(str(batched), artifact_path="export")
    mlflow.tracking.MlflowClient(uri).set_terminated(run_id)
    return run_id
