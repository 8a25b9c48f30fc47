"""The per-event form of every feature equals the batch (polars) form at every event of real days."""

from __future__ import annotations

import pickle

import numpy as np
import polars as pl
import pytest

from lobnet.data import n_levels, read_quotes
from lobnet.features import CATALOGUE, FeatureParams, compute_features, feature_names
from lobnet.features.incremental import IncrementalFeatures

from .conftest import AIG, need

ALL_GROUPS = [g for g, f in CATALOGUE.items() if f.source == "events"]  # the book group included; bars are not streamed


def _assert_equal_to_batch(events: pl.DataFrame, groups: list[str]) -> None:
    p = FeatureParams(levels=n_levels(events))
    inc = IncrementalFeatures(p, groups)
    assert inc.names == feature_names(p, groups)
    got = inc.run(events).astype(np.float32)  # the batch form stores float32
    ref = compute_features(events, p, groups).select(inc.names).to_numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(ref), rtol=1e-6, atol=1e-6)
    _assert_compiled_equals_python(inc, events, got)


def _assert_compiled_equals_python(inc: IncrementalFeatures, events: pl.DataFrame, python: np.ndarray) -> None:
    """The numba form (the streamer's hot loop) gives the Python form's features bit for bit, and writes exactly
    ZScore.apply's normalised row."""
    from lobnet.data.schema import day_slices
    from lobnet.prep.windows import ZScore

    step = inc.compiled()
    X = inc.input_matrix(events)
    F = len(inc.names)
    rng = np.random.default_rng(0)
    mean = rng.standard_normal(F).astype(np.float32)
    std = (rng.random(F) + 0.5).astype(np.float32)
    f, s = np.empty(F), np.full(inc.n_slots, 7.0)  # garbage state: a first event must not read it
    z = np.empty(F, np.float32)
    raw, norm = np.empty((len(X), F)), np.empty((len(X), F), np.float32)
    for sl in day_slices(events):
        for i in range(sl.start, sl.stop):
            step(X[i], f, s, i == sl.start, mean, std, z)
            raw[i], norm[i] = f, z
    np.testing.assert_array_equal(raw.astype(np.float32), python)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(norm, ZScore(mean, std).apply(raw))


@pytest.mark.realdata
def test_every_feature_per_event_equals_batch_on_amzn_level5(amzn5):
    _assert_equal_to_batch(amzn5, ALL_GROUPS)


@pytest.mark.realdata
def test_every_feature_per_event_equals_batch_on_aig_ticks():
    ev = read_quotes(need(AIG) / "20131008_quote.zip")
    _assert_equal_to_batch(ev, ALL_GROUPS)


def test_per_event_equals_batch_across_days_and_unoccupied_levels(synthetic_events):
    ev = synthetic_events.head(4000)
    day2 = ev.slice(2000).with_columns(pl.col("date") + pl.duration(days=1))
    ev = (
        pl.concat([ev.slice(0, 2000), day2])
        .with_columns(
            pl.when(pl.int_range(pl.len()).is_between(300, 700)).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("bid_px_10", "ask_px_9")
        )
        .with_columns(
            pl.when(pl.int_range(pl.len()).is_between(300, 700)).then(0).otherwise(pl.col(c)).alias(c)
            for c in ("bid_sz_10", "ask_sz_9")
        )
    )
    _assert_equal_to_batch(ev, ALL_GROUPS)


def test_update_is_a_single_generated_function_with_small_state():
    inc = IncrementalFeatures(FeatureParams(levels=2))
    assert inc.source.startswith("def update(c, out, s, first):")
    assert inc.n_slots <= 2 + 4 * 2 + 1  # mid, time, and the four book values of each OFI level
    row = [34_200e9, 1.0, 100.0, 1.0, 1000100.0, 300.0, 999900.0, 200.0, 1000200.0, 100.0, 999800.0, 400.0]
    out = inc.update(row, first=True)
    assert np.isnan(out[inc.names.index("ofi_1")]) and out[inc.names.index("spread")] == 2.0
    out = inc.update(row)
    assert out[inc.names.index("ofi_1")] == 0.0 and out[inc.names.index("log_dt")] == 0.0
    clone = pickle.loads(pickle.dumps(inc.state))
    assert clone == inc.state


def test_one_symbol_of_a_merged_pair_table_is_read_by_its_prefix(synthetic_events):
    """A merged pair row carries each symbol's Level-I state as a_*/b_* and no message: a symbol's inputs are read
    by its prefix, an input no feature reads is NaN, and a feature that reads the message is refused by name."""
    from lobnet.prep.targets import QUOTE

    level1 = ["mid", "spread", "microprice", "mid_logret", "ofi", "queue_imbalance", "log_dt"]
    ev = synthetic_events.head(1500)
    wide = ev.select("symbol", "date", "time", *[pl.col(c).alias(f"b_{c}") for c in QUOTE])
    p = FeatureParams(levels=1)
    inc = IncrementalFeatures(p, level1)
    assert not inc.reads & {"type", "size", "direction"}
    X = inc.input_matrix(wide, "b_")
    assert np.isnan(X[:, inc.inputs.index("type")]).all()
    own = ev.select("symbol", "date", "time", *QUOTE)
    np.testing.assert_array_equal(X, inc.input_matrix(own.with_columns(type=None, size=None, direction=None)))
    got = np.array([list(inc.update(x, i == 0)) for i, x in enumerate(X.tolist())], dtype=np.float32)
    ref = compute_features(own, p, level1, keep=()).select(inc.names).to_numpy()
    np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(ref), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="read 'b_type', which the table lacks"):
        IncrementalFeatures(p, ["signed_volume"]).input_matrix(wide, "b_")
