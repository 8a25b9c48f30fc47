"""Causal order-flow features, each defined once (:mod:`lobnet.features.catalogue`)."""

from lobnet.features.catalogue import (
    BAR_GROUPS,
    CATALOGUE,
    DEFAULT_GROUPS,
    FeatureParams,
    FeatureSpec,
    book_columns,
    compute_features,
    feature_names,
    pair_feature_names,
    warmup,
)

__all__ = [
    "BAR_GROUPS",
    "CATALOGUE",
    "DEFAULT_GROUPS",
    "FeatureParams",
    "FeatureSpec",
    "book_columns",
    "compute_features",
    "feature_names",
    "pair_feature_names",
    "warmup",
]
