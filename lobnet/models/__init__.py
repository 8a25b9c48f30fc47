"""lobnet's models, one file each (a config dataclass and an nn.Module): LSTM, TCN, Transformer, hybrid
TCN -> Transformer, and DeepLOB. All map (B, W, F) to per-horizon logits (B, H, 3) and positions (B, H).
Beside them, the simple baselines (:mod:`lobnet.models.baselines`: majority, ew_ofi, logreg, gbdt), built by the
same ``model=NAME`` configs and fitted without Lightning."""

import dataclasses

from lobnet.models.base import LOBModel
from lobnet.models.baselines import BASELINES, Baseline
from lobnet.models.deeplob import DeepLOBConfig, DeepLOBModel
from lobnet.models.hybrid import HybridConfig, HybridModel
from lobnet.models.lstm import LSTMConfig, LSTMModel
from lobnet.models.tcn import TCNConfig, TCNModel
from lobnet.models.transformer import TransformerConfig, TransformerModel

MODELS = {
    "lstm": (LSTMConfig, LSTMModel),
    "tcn": (TCNConfig, TCNModel),
    "transformer": (TransformerConfig, TransformerModel),
    "hybrid": (HybridConfig, HybridModel),
    "deeplob": (DeepLOBConfig, DeepLOBModel),
}


def build_model(name: str, **kwargs) -> LOBModel | Baseline:
    """A model (or baseline) by name, its config from keyword arguments (e.g. ``n_features``, ``n_horizons``)."""
    known_models = {**MODELS, **BASELINES}
    if name not in known_models:
        raise ValueError(f"unknown model {name!r}; known: {list(known_models)}")
    cfg_cls, model_cls = known_models[name]
    known = {f.name for f in dataclasses.fields(cfg_cls)}
    if unknown := sorted(set(kwargs) - known):
        raise ValueError(f"model {name!r} has no field {', '.join(unknown)}; its fields: {', '.join(sorted(known))}")
    return model_cls(cfg_cls(**kwargs))


__all__ = [
    "BASELINES",
    "MODELS",
    "Baseline",
    "LOBModel",
    "build_model",
    *[c.__name__ for pair in MODELS.values() for c in pair],
]
