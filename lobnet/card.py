"""The model card ``model.json``: what a trained fold is (architecture and config, feature list and spec, the
fold's z-score, label rule and thresholds, horizons, window). Read and checked here, so that a damaged or edited
card is refused where it is read, naming the file and what is wrong, rather than failing later inside torch or
the streamer."""

from __future__ import annotations

import json
from pathlib import Path

from .data.errors import LobDataError

CARD = "model.json"
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
    names = card["feature_names"]
    width = card["config"].get("n_features") if isinstance(card["config"], dict) else None
    if not isinstance(names, list) or (width is not None and width != len(names)):
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


def spec_feature_names(features: dict, path: Path) -> list[str]:
    """The feature list that the card's feature spec (``features``: the spec's fields and ``levels``) computes."""
    from .features import FeatureSpec, feature_names

    try:
        spec = FeatureSpec(**{k: v for k, v in features.items() if k != "levels"})
        return feature_names(spec.params(int(features["levels"])), list(spec.groups))
    except (TypeError, ValueError, KeyError) as e:
        raise LobDataError(path, None, f"the card's feature spec is not valid: {e}") from None
