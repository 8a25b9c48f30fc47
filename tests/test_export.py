"""ONNX export of trained models (trained briefly on the real AMZN level-5 day): the full-window graph with
dynamic batch and window and the streaming step graph, parity of both on real events, MLflow logging."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import numpy as np
import onnxruntime as ort
import pytest

from .conftest import AMZN5, need
from .test_train import _compose, _overrides

STEP = {
    "lstm": ["h0", "c0", "h1", "c1"],
    "tcn": ["tcn0_in", "tcn0_mid"],
    "transformer": ["k0", "v0", "attn_mask", "pos"],
}


def train_real(tmp_path, name: str, *extra: str):
    """A checkpoint of ``name`` trained for one short epoch on the real AMZN level-5 day."""
    from lobnet.cli import train

    real = ["data=lobster", f"data.path={need(AMZN5)}", "split.max_folds=1", "trainer.max_epochs=1"]
    if name == "deeplob":
        real.append("features=with_book")
    base = [o for o in _overrides(tmp_path) if not o.startswith("data")]  # the tiny settings, on real data
    r = train.run(_compose("train", [*base, f"model={name}", *real, *extra]))
    assert r["folds"]
    return next((tmp_path / "train").glob("run-*/fold_0/best.ckpt"))


@pytest.mark.parametrize("name", ["lstm", "tcn", "transformer", "hybrid", "deeplob"])
def test_every_trained_model_exports_with_parity(tmp_path, real_export, name):
    from lobnet.live.export import export_checkpoint

    trained, ckpt, rep = real_export(name)  # trained on the real day and exported with the 3-symbol step
    assert rep["max_abs_diff_window"] <= 1e-5 and rep["mlflow_run_id"]
    if name == "deeplob":  # the documented full-window fallback
        assert rep["step"] == "window_fallback" and not (trained / "export" / "model_step.onnx").exists()
        assert "native" not in rep and not (trained / "export" / "model_native.npz").exists()
    else:
        assert rep["step"] == "model_step.onnx" and rep["max_abs_diff_step"] <= 1e-5
        assert rep["max_abs_diff_step_sequence"] <= 1e-5
        # the native step against the full-window graph and the step graph on the real events
        assert rep["native"] == "model_native.npz" and rep["max_abs_diff_native"] <= 1e-5
        assert (trained / "export" / "model_native.npz").exists()
        # the step for 3 symbols per call, each stream held to the one-stream step on real events
        assert rep["step_batches"]["3"]["max_abs_diff"] <= 1e-5
        assert (trained / "export" / "model_step_b3.onnx").exists()
        assert set(STEP.get(name, ["tcn0_in", "k0", "attn_mask"])) <= set(rep["step_state"])
        step = ort.InferenceSession(str(trained / "export" / "model_step.onnx"), providers=["CPUExecutionProvider"])
        names = [i.name for i in step.get_inputs()]
        assert names[0] == "x" and [o.name for o in step.get_outputs()][2:] == [f"{n}_out" for n in names[1:]]
    card = json.loads((trained / "export" / "model.json").read_text())
    assert card["model"] == name and len(card["zscore"]["mean"]) == len(card["feature_names"])
    sess = ort.InferenceSession(str(trained / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch, window in ((3, card["window"]), (1, card["window"] // 2)):  # dynamic batch and window
        logits, pos = sess.run(None, {"x": np.zeros((batch, window, len(card["feature_names"])), np.float32)})
        assert logits.shape == (batch, 2, 3) and pos.shape == (batch, 2)
    client = mlflow.tracking.MlflowClient(f"sqlite:///{trained / 'mlflow.db'}")
    exported = {a.path for a in client.list_artifacts(rep["mlflow_run_id"], "export")}
    assert "export/export.json" in exported and ("export/model_step_b3.onnx" in exported) == (name != "deeplob")
    assert ("export/model_native.npz" in exported) == (name != "deeplob")
    logged = client.get_run(rep["mlflow_run_id"]).outputs.model_outputs  # MLflow 3: LoggedModels
    # the fold's model (lobnet-train), onnx_model, and onnx_step_model where there is one
    assert len(logged) == (2 if name == "deeplob" else 3)
    if name == "tcn":  # the same export from the fold's logged MLflow model: by its run, and once registered
        uri = f"sqlite:///{trained / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        client = mlflow.tracking.MlflowClient(uri)
        mv = mlflow.register_model(f"runs:/{rep['mlflow_run_id']}/model", "lobnet-tcn")
        client.set_registered_model_alias("lobnet-tcn", "live", mv.version)
        refs = [f"runs:/{rep['mlflow_run_id']}", f"models:/lobnet-tcn/{mv.version}", "models:/lobnet-tcn@live"]
        ids = [o.model_id for o in client.get_run(rep["mlflow_run_id"]).outputs.model_outputs]
        refs.append(f"models:/{next(i for i in ids if client.get_logged_model(i).name == 'model')}")
        for ref in refs:
            out = tmp_path / ref.replace("/", "_").replace(":", "")
            again = export_checkpoint(ref, out, tracking_uri=uri)
            assert again["mlflow_run_id"] == rep["mlflow_run_id"]
            assert again["max_abs_diff_step"] == rep["max_abs_diff_step"]
            assert (out / "model.json").read_text() == (trained / "export" / "model.json").read_text()
        with pytest.raises(FileNotFoundError, match="not a lobnet-train fold model"):
            export_checkpoint(f"runs:/{rep['mlflow_run_id']}/onnx_model", tmp_path / "onnx", tracking_uri=uri)


def test_export_cli_reports_a_missing_model_card(tmp_path):
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(b"")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lobnet.cli.export",
            f"checkpoint={bad}",
            f"output_dir={tmp_path / 'o'}",
            f"hydra.run.dir={tmp_path / 'h'}",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "model.json" in r.stderr
    assert not (tmp_path / "o").exists()
    # a checkpoint that is not there is named as such, not as a missing card beside it
    from lobnet.live.export import export_checkpoint

    with pytest.raises(FileNotFoundError, match=r"typo\.ckpt: no such checkpoint"):
        export_checkpoint(tmp_path / "typo.ckpt", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_lstm_models_export_with_a_dynamic_window_twice_in_one_process(tmp_path):
    """The exporter's LSTM decomposition used to be shadowed by a cached kernel after the first LSTM export,
    fixing the window of every later one (see export._quiet_exporter)."""
    import onnx

    from lobnet.live.export import export_window
    from lobnet.models import build_model

    for i, (name, kw) in enumerate([("deeplob", {"levels": 5}), ("lstm", {}), ("lstm", {})]):
        path = export_window(
            build_model(name, n_features=24, n_horizons=2, **kw).eval(), 24, tmp_path / f"{i}.onnx", 20
        )
        dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_param


# ONNX Runtime's own warning, which the session turns into an error
@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")
def test_a_session_refuses_a_provider_it_would_silently_replace_with_the_cpu(tmp_path):
    """ONNX Runtime only warns when a requested execution provider is absent and runs on the CPU instead; the
    streamer's sessions raise, naming the model and the provider, so that no CPU figure is reported as CUDA's."""
    import onnx
    from onnx import TensorProto, helper

    from lobnet.live.runtime import session

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    assert session(path).get_providers() == ["CPUExecutionProvider"]
    absent = next(
        p for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") if p not in ort.get_available_providers()
    )
    with pytest.raises(RuntimeError, match=rf"identity\.onnx: execution provider \['{absent}'\] is not available"):
        session(path, [absent, "CPUExecutionProvider"])
