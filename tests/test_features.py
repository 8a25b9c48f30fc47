"""The feature catalogue: reference checks on real data, finiteness after the warm-up, and causality."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lobnet.data import n_levels, read_lobster, read_quotes
from lobnet.features import CATALOGUE, FeatureParams, compute_features, feature_names, warmup

from .conftest import AIG, BAC, LOBSTER_FILES, need


def ofi_reference(events: pl.DataFrame, m: int) -> np.ndarray:
    """Cont-Kukanov-Stoikov e_n at level m written case by case, as in the paper, in a plain loop."""
    bp = events[f"bid_px_{m}"].fill_null(-np.inf).to_numpy().astype(float)
    ap = events[f"ask_px_{m}"].fill_null(np.inf).to_numpy().astype(float)
    bq = events[f"bid_sz_{m}"].to_numpy()
    aq = events[f"ask_sz_{m}"].to_numpy()
    out = np.full(len(bp), np.nan)
    for n in range(1, len(bp)):
        if bp[n] > bp[n - 1]:
            bid = bq[n]
        elif bp[n] == bp[n - 1]:
            bid = bq[n] - bq[n - 1]
        else:
            bid = -bq[n - 1]
        if ap[n] < ap[n - 1]:
            ask = aq[n]
        elif ap[n] == ap[n - 1]:
            ask = aq[n] - aq[n - 1]
        else:
            ask = -aq[n - 1]
        out[n] = bid - ask
    return out


@pytest.mark.realdata
def test_ofi_and_multilevel_ofi_match_a_plain_loop_on_amzn(amzn5):
    f = compute_features(amzn5, FeatureParams(levels=5))
    for m in range(1, 6):
        ref = ofi_reference(amzn5, m)
        got = f[f"ofi_{m}"].to_numpy()
        assert np.isnan(got[0]) and np.isnan(ref[0])  # warm-up: the first event has no previous book
        np.testing.assert_array_equal(got[1:], ref[1:])
        assert np.abs(got[1:]).sum() > 0


def test_ofi_matches_the_loop_with_unoccupied_levels(synthetic_events):
    ev = (
        synthetic_events.head(3000)
        .with_columns(
            # empty level 10 on both sides for a stretch, the way LOBSTER marks unoccupied levels
            pl.when(pl.int_range(pl.len()).is_between(500, 900)).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("bid_px_10", "ask_px_10")
        )
        .with_columns(
            pl.when(pl.int_range(pl.len()).is_between(500, 900)).then(0).otherwise(pl.col(c)).alias(c)
            for c in ("bid_sz_10", "ask_sz_10")
        )
    )
    f = compute_features(ev, FeatureParams(levels=10))
    np.testing.assert_array_equal(f["ofi_10"].to_numpy()[1:], ofi_reference(ev, 10)[1:])


def _all_real_event_tables():
    for p in LOBSTER_FILES:
        yield p.name, lambda p=p: read_lobster(need(p))
    yield "AIG ticks", lambda: read_quotes(need(AIG))
    yield "BAC ticks", lambda: read_quotes(need(BAC))


@pytest.mark.realdata
@pytest.mark.parametrize("name,load", list(_all_real_event_tables()), ids=lambda x: x if isinstance(x, str) else "")
def test_features_are_finite_after_warmup_on_every_real_file(name, load):
    ev = load()
    params = FeatureParams(levels=n_levels(ev))
    f = compute_features(ev, params)
    names = feature_names(params)
    first_of_day = (pl.col("date") != pl.col("date").shift(1)).fill_null(True)
    after = f.filter(~first_of_day)  # warm-up is 1 event per day
    assert warmup() == 1
    x = after.select(names).to_numpy()
    assert np.isfinite(x).all(), {c: int(after[c].is_null().sum()) for c in names if after[c].is_null().any()}
    # the warm-up rows are null, never a zero that looks like data
    first = f.filter(first_of_day)
    for c in ("ofi_1", "mid_logret", "log_dt"):
        assert first[c].null_count() == first.height


@pytest.mark.realdata
def test_feature_semantics_on_amzn(amzn5):
    f = compute_features(amzn5, FeatureParams(levels=5))
    ev = amzn5
    assert ((f["microprice"] >= ev["bid_px_1"] / 1e4) & (f["microprice"] <= ev["ask_px_1"] / 1e4)).all()
    assert (f["spread"] >= 1).all() and (f["spread"] == (ev["ask_px_1"] - ev["bid_px_1"]) / 100).all()
    # executing a resting sell order (direction -1) is a buyer-initiated trade: positive signed volume
    ex = f.filter(ev["type"] == 4)
    evx = ev.filter(pl.col("type") == 4)
    assert ((ex["signed_volume"] > 0) == (evx["direction"] == -1)).all()
    assert (f["bid_depth_5"] >= f["bid_depth_1"]).all() and (f["ask_gap_2"] >= 1).all()
    assert f["is_limit"].sum() == (ev["type"] == 1).sum()
    assert f["is_cancel"].sum() == ev["type"].is_in([2, 3]).sum()


def test_catalogue_names_are_plain():
    names = feature_names(FeatureParams(levels=3))
    for n in (
        "mid",
        "spread",
        "microprice",
        "mid_logret",
        "ofi_1",
        "ofi_2",
        "ofi_3",
        "queue_imbalance",
        "depth_imbalance",
        "bid_depth_3",
        "ask_gap_2",
        "signed_volume",
        "is_exec",
        "log_dt",
    ):
        assert n in names
    assert len(names) == len(set(names))
    assert all(CATALOGUE[g].doc for g in CATALOGUE)


def _perturb_after(ev: pl.DataFrame, t: int, seed: int) -> pl.DataFrame:
    """Random but well-formed changes to every event after row t (time stays non-decreasing)."""
    rng = np.random.default_rng(seed)
    n = ev.height - t - 1
    cols = {}
    for c in ev.columns:
        if c.endswith(("_sz_1", "_sz_2", "_sz_3")) or c == "size":
            cols[c] = rng.integers(1, 5000, n)
        elif c.startswith(("ask_px", "bid_px")):
            cols[c] = ev[c].to_numpy()[t + 1 :] + rng.integers(-3, 4, n) * 100
        elif c == "type":
            cols[c] = rng.choice([1, 2, 3, 4, 5], n)
    tail = ev.slice(t + 1).with_columns(pl.Series(c, v).cast(ev.schema[c]) for c, v in cols.items())
    tail = tail.with_columns(pl.col("time") + pl.Series(np.cumsum(rng.integers(0, 10**6, n))))
    return pl.concat([ev.slice(0, t + 1), tail])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=st.integers(min_value=0, max_value=1498), seed=st.integers(0, 2**31))
def test_features_at_or_before_t_ignore_the_future(synthetic_events, t, seed):
    ev = synthetic_events.head(1500)
    params = FeatureParams(levels=10)
    base = compute_features(ev, params)
    pert = compute_features(_perturb_after(ev, t, seed), params)
    assert base.slice(0, t + 1).equals(pert.slice(0, t + 1))
    assert not base.equals(pert) or t == ev.height - 1


def test_a_feature_reading_prev_without_warmup_is_refused(synthetic_events, monkeypatch):
    """Its first value of each day would silently read the previous day: both backends refuse it."""
    from lobnet.features import catalogue
    from lobnet.features.incremental import IncrementalFeatures

    bad = catalogue.Feature("bad", lambda p: ["bad"], lambda B, p: {"bad": B.prev(B.col("time"))}, 0, "reads prev")
    monkeypatch.setitem(catalogue.CATALOGUE, "bad", bad)
    with pytest.raises(ValueError, match="declares no warm-up"):
        compute_features(synthetic_events.head(10), FeatureParams(levels=10), ["bad"])
    with pytest.raises(ValueError, match="declares no warm-up"):
        IncrementalFeatures(FeatureParams(levels=10), ["bad"])
