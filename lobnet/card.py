"""The model card ``model.json``: what a trained fold is (architecture and config, feature list and spec, the
fold's z-score, label rule and thresholds, horizons, window). Read and checked here, so that a damaged or edited
card is refused where it is read, naming the file and what is wrong, rather than failing later inside torch or
the streamer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lobnet.data.errors import LobDataError

# the files of a trained fold (lobnet-train writes them side by side; a fold's MLflow model holds the same)
CARD = "model.json"
BEST = "best.ckpt"  # the checkpoint with the best validation loss; last.ckpt is the resume state
LAST = "last.ckpt"
PARITY_WINDOWS = "parity_windows.npy"  # a few real test windows, normalised, for the export's parity checks
PARITY_SEQUENCE = "parity_sequence.npy"  # 3 W consecutive normalised test rows, for the step's parity
FOLD_FILES = {"checkpoint": BEST, "card": CARD, "windows": PARITY_WINDOWS, "sequence": PARITY_SEQUENCE}
WEIGHTS = "weights.pt"  # an export's torch weights (the streamer's batch reference)
NATIVE = "model_native.npz"  # an export's packed weights for the native step engine (lobnet.live.native)
REQUIRED = ("model", "config", "feature_names", "horizons", "window")  # what rebuilding and exporting need
STREAMING = (*REQUIRED, "zscore", "alphas", "features", "labels")  # and what the streamer needs beyond them


def read_card(path: str | Path, required: tuple[str, ...] = REQUIRED) -> dict:
    """The card at ``path``, checked: valid JSON, the ``required`` keys, a feature list that fits the model's
    input width and, where the card names its feature spec, is exactly (names and order) the list that spec
    computes, since the weights read the features by position."""
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except OSError as e:
        raise LobDataError(path, None, f"cannot read the model card: {e.strerror or e}") from None
    except ValueError as e:
        row = getattr(e, "lineno", None)
        raise LobDataError(path, row, f"the model card is not valid JSON ({getattr(e, 'msg', e)})") from None
    if not isinstance(card, dict):
        raise LobDataError(path, None, "the model card is not a JSON object")
    missing = [k for k in required if card.get(k) is None]
    if missing:
        raise LobDataError(path, None, f"the model card lacks {missing}: re-train (and re-export) with this lobnet")
    losses = TARGET_LOSSES if card.get("task") == "regression" else LOSS_KINDS
    if card.get("loss", "ce") not in losses:
        raise LobDataError(path, None, f"the card's loss {card['loss']!r} is not one of {list(losses)}")
    names = card["feature_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise LobDataError(path, None, "the card's feature_names is not a list of feature names")
    width = card["config"].get("n_features") if isinstance(card["config"], dict) else None
    if width is not None and width != len(names):
        raise LobDataError(
            path, None, f"the card's feature list ({len(names)} names) does not fit the model's input width ({width})"
        )
    if isinstance(card.get("features"), dict):
        expected = spec_feature_names(card["features"], path)
        if names != expected:
            differ = sorted(set(names) ^ set(expected))
            raise LobDataError(
                path,
                None,
                f"the card's feature list differs from the one its feature spec computes "
                f"({'differing: ' + ', '.join(differ[:8]) if differ else 'same names in another order'}); "
                "the weights read features by position",
            )
    return card


LOSS_KINDS = ("ce", "sharpe", "ce_sharpe")  # lobnet.train.losses.LobLoss; the card's "loss" is one of them
TARGET_LOSSES = ("mse", "qlike")  # a regression model's (lobnet.prep.targets.TARGET_LOSSES; the card's "task")


def traded_head(card: dict) -> str:
    """The head a model's forecasts are traded and timed with: ``position`` (the tanh position head) for a model
    trained with a Sharpe term, whose class head the Sharpe loss alone leaves untrained, else ``class`` (the
    predicted class); the fold's backtest applies the same rule (:func:`lobnet.evaluation.metrics.forecast_positions`).
    A card without ``loss`` predates the key, when the stream read the class head of every model."""
    return "class" if card.get("loss", "ce") == "ce" else "position"


def primary_horizon(horizons, wanted: int | None = None) -> int:
    """The horizon of the headline metrics and of the stream's signal: ``wanted`` when it is one of the
    ``horizons``, else the middle one."""
    horizons = [int(k) for k in horizons]
    return int(wanted) if wanted is not None and int(wanted) in horizons else horizons[len(horizons) // 2]


def write_fold(ckpt_dir: Path, card: dict, windows: np.ndarray, sequence: np.ndarray) -> None:
    """A trained fold's card and parity rows beside its checkpoints (:data:`FOLD_FILES`)."""
    from lobnet.io import write_json

    write_json(ckpt_dir / CARD, card)
    np.save(ckpt_dir / PARITY_WINDOWS, windows)
    np.save(ckpt_dir / PARITY_SEQUENCE, sequence)


def build_model(card: dict, path: Path):
    """The card's architecture, untrained."""
    from lobnet.models import build_model as build

    try:
        return build(card["model"], **card["config"])
    except (TypeError, ValueError) as e:
        raise LobDataError(path, None, f"the card's model does not build: {e}") from None


def load_weights(model, state: dict, path: Path, card_path: Path):
    """``model`` with the weights ``state`` (read from ``path``), or an error saying they do not fit the card."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        detail = " ".join(str(e).split())[:300]  # one line: torch lists every mismatching tensor on its own
        raise LobDataError(path, None, f"its weights do not fit the model card {card_path}: {detail}") from None
    return model.eval()


def spec_feature_names(features: dict, path: Path) -> list[str]:
    """The feature list that the card's feature spec (``features``: the spec's fields and ``levels``) computes."""
    from lobnet.features import FeatureSpec, feature_names, pair_feature_names

    try:
        spec = FeatureSpec(**{k: v for k, v in features.items() if k not in ("levels", "pair")})
        names = pair_feature_names if features.get("pair") else feature_names  # a merged two-symbol table's
        return names(spec.params(int(features["levels"])), list(spec.groups))
    except (TypeError, ValueError, KeyError) as e:
        raise LobDataError(path, None, f"the card's feature spec is not valid: {e}") from None


def torch_file(path: str | Path):
    """A file lobnet wrote with ``torch.save`` (a checkpoint, ``weights.pt``), loaded with ``weights_only=True``:
    tensors and plain data only, so a file whose pickle carries code (a ``__reduce__`` payload) is refused
    instead of run. Anything unreadable (empty, truncated, random bytes, refused) is a :class:`LobDataError`
    naming the file."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError, ... depending on the damage
        text = str(e)
        if found := re.search(r"Unsupported global: GLOBAL (\S+)", text):  # a pickled object: code would run
            why = (
                "refused: it holds Python objects beyond tensors and plain data, which loading would execute "
                f"(it names {found[1]})"
            )
        elif path.stat().st_size == 0:
            why = "the file is empty"
        else:
            found = re.search(r"Unsupported operand \d+", text)
            first = found[0] if found else (text.strip().splitlines() or [type(e).__name__])[0]
            why = f"not a readable checkpoint (damaged, truncated or not a torch file: {first[:160]})"
        raise LobDataError(path, None, why) from None


def load_checkpoint(path: str | Path) -> dict:
    """A lobnet-train checkpoint's contents (:func:`torch_file`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (a lobnet-train fold's best.ckpt or last.ckpt)")
    ckpt = torch_file(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise LobDataError(path, None, "not a lobnet-train checkpoint (no state_dict)")
    return ckpt


def load_model(checkpoint: str | Path):
    """The model of a lobnet-train checkpoint, from the model card ``model.json`` written beside it."""
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: no such checkpoint (a lobnet-train fold's best.ckpt or last.ckpt)")
    card_path = ckpt.parent / CARD
    if not card_path.exists():
        raise FileNotFoundError(f"{card_path} not found: export needs a checkpoint written by lobnet-train")
    card = read_card(card_path)
    model = build_model(card, card_path)
    state = load_checkpoint(ckpt)["state_dict"]
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    return load_weights(model, weights, ckpt, card_path), card
