"""A trained fold as an MLflow Model: the ``pyfunc`` flavour over lobnet's own checkpoint and model card.

``lobnet-train`` logs each fold's best checkpoint this way (:func:`log_fold_model`, artifact path ``model``), so a
fold is a *logged model* of its run: it can be registered in the Model Registry, named by any MLflow model URI
(``runs:/<fold run id>/model``, ``models:/<model id>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``)
for ``lobnet-export``, and loaded with ``mlflow.pyfunc.load_model`` to forecast from raw feature windows.

The model's artifacts are the files ``lobnet-train`` writes beside the checkpoint (:data:`lobnet.card.FOLD_FILES`): the
checkpoint, the model card ``model.json`` and the parity rows, unchanged, so that export reads them from a
download exactly as it reads them from the training folder. Its code is lobnet's: loading it needs lobnet
installed (the model records lobnet's version in its metadata; :mod:`lobnet.tracking.entry` is the code MLflow
logs, which names :class:`LobnetModel`, and which MLflow *executes* from the artifact store on every load: see
that module for what a user must trust). The checkpoint is loaded with ``weights_only=True``, so a checkpoint
carrying code is refused rather than run. Its requirements are lobnet's declared dependencies, written out so that
MLflow does not infer them by loading the model in a subprocess.
"""

from __future__ import annotations

import contextlib
import json
from importlib import metadata
from pathlib import Path

import mlflow.pyfunc
import numpy as np

from lobnet.card import FOLD_FILES
from lobnet.prep.normalization import ZScore

NAME = "model"  # the artifact path of a fold's logged model: runs:/<fold run id>/model


class LobnetModel(mlflow.pyfunc.PythonModel):
    """``predict(windows)``: raw feature windows, float32 (N, W, F) (the logged signature), in the card's
    ``feature_names`` order (NaN where a feature is undefined), normalised here with the training fold's z-score
    exactly as training normalised them. Returns ``{"prob": (N, H, 3) class probabilities (down, flat, up),
    "position": (N, H)}`` for the card's ``horizons``; a model of a regression target (the card's ``task``,
    ``labels=liquidity | volatility | pairs``) returns ``{"prediction": (N, 1)}``, the forecast in the target's
    own units (the training fold's :class:`~lobnet.prep.targets.TargetScale` inverted). A model trained with
    ``normalization=rolling_zscore`` has no fixed statistics to apply to a window alone, and refuses."""

    def load_context(self, context) -> None:
        from lobnet.card import load_model

        self.model, self.card = load_model(context.artifacts["checkpoint"])
        self.zscore = ZScore.from_card(self.card)
        self.scale = None
        if self.card.get("task") == "regression":
            from lobnet.prep.targets import TargetScale

            self.scale = TargetScale(**self.card["target_scale"])
            return
        from lobnet.prep.labels import LabelConfig

        labels = self.card.get("labels")  # binary labels: the flat logit masked out, as in training
        self.mask = LabelConfig(**labels).logit_mask() if labels else np.zeros(3, np.float32)

    def predict(self, context, model_input: np.ndarray, params=None) -> dict:
        import torch

        names = self.card["feature_names"]
        if self.zscore is None:
            raise ValueError(
                "this model was trained with normalization=rolling_zscore, which needs the day's history before "
                "each window: normalise with lobnet.prep.windows.rolling_zscore and call the torch model "
                "(lobnet.card.load_model) instead"
            )
        x = np.asarray(model_input, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != len(names):  # the signature says so too, where MLflow enforces it
            raise ValueError(
                f"expected raw feature windows of shape (N, W, {len(names)}) in the order {names}, "
                f"got {np.shape(model_input)}"
            )
        n, w, f = x.shape
        z = self.zscore.apply(x.reshape(n * w, f)).reshape(n, w, f)
        with torch.inference_mode():
            out = self.model(torch.from_numpy(z))
        if self.scale is not None:
            return {"prediction": self.scale.invert(out[0].numpy()).astype(np.float32)}
        logits, position = out
        prob = torch.softmax(logits + torch.from_numpy(self.mask), -1)
        return {"prob": prob.numpy(), "position": position.numpy()}


@contextlib.contextmanager
def in_run(tracking_uri: str, run_id: str):
    """MLflow's fluent API (which ``log_model`` uses) pointed at an existing run of ``tracking_uri``, and back at
    the caller's tracking URI and active run afterwards (training called inside a caller's own ``start_run``
    resumes the fold's run on top of it, where MLflow would otherwise refuse a second active run)."""
    from lobnet.tracking.runs import tracking_uri as using

    with using(tracking_uri), mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        yield


def log_fold_model(tracking_uri: str, run_id: str, ckpt_dir: Path, checkpoint: Path) -> str:
    """Log a fold (``checkpoint`` and the card and parity rows in ``ckpt_dir``) as the logged model
    ``model`` of the fold's run; returns its model URI (``models:/<model id>``)."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from lobnet import __version__

    files = {key: str(ckpt_dir / name) for key, name in FOLD_FILES.items()}
    files["checkpoint"] = str(checkpoint)
    card = json.loads((ckpt_dir / FOLD_FILES["card"]).read_text())
    f32, n_features, n_horizons = np.dtype(np.float32), len(card["feature_names"]), len(card["horizons"])
    if card.get("task") == "regression":  # one head, in the target's units
        outputs = [TensorSpec(f32, (-1, n_horizons), "prediction")]
    else:
        outputs = [TensorSpec(f32, (-1, n_horizons, 3), "prob"), TensorSpec(f32, (-1, n_horizons), "position")]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(f32, (-1, -1, n_features))]),  # raw feature windows of any count and length
        outputs=Schema(outputs),
    )
    example, zscore = None, ZScore.from_card(card)
    if zscore is not None:  # a real test window, un-normalised back to raw features
        example = np.load(ckpt_dir / FOLD_FILES["windows"])[:1] * zscore.std + zscore.mean
    with in_run(tracking_uri, run_id):
        info = mlflow.pyfunc.log_model(
            name=NAME,
            python_model=str(Path(__file__).with_name("entry.py")),
            artifacts=files,
            signature=signature,
            input_example=example,
            pip_requirements=requirements(),
            metadata={"lobnet_version": __version__, "python_model": f"{__name__}.LobnetModel"},
        )
    return info.model_uri


def requirements() -> list[str]:
    """lobnet's declared runtime dependencies (its package metadata, extras left out)."""
    try:
        reqs = metadata.requires("lobnet") or []
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return []
    return [r for r in reqs if "extra ==" not in r]
