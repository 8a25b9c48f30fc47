"""The synthetic day: deterministic, valid LOBSTER, and informative order flow."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from lobnet.data import read_lobster
from lobnet.data.synthetic import SyntheticConfig, generate, write_day
from lobnet.features import FeatureParams, compute_features


def _digest(path):
    ob = path.with_name(path.name.replace("message", "orderbook"))
    return hashlib.sha256(path.read_bytes() + ob.read_bytes()).hexdigest()


def test_deterministic_per_seed(tmp_path):
    a = write_day(SyntheticConfig(levels=5, events=3000, seed=3), tmp_path / "a")
    b = write_day(SyntheticConfig(levels=5, events=3000, seed=3), tmp_path / "b")
    c = write_day(SyntheticConfig(levels=5, events=3000, seed=4), tmp_path / "c")
    assert _digest(a) == _digest(b) != _digest(c)
    assert a.name == "SYN_2012-06-21_34200000_57600000_message_5.csv"
    assert not list((tmp_path / "a").glob(".*tmp"))  # written atomically


@pytest.mark.parametrize("levels", [1, 3, 50])
def test_any_level_count_passes_strict_validation(tmp_path, levels):
    df = read_lobster(write_day(SyntheticConfig(levels=levels, events=4000, seed=1), tmp_path), strict=True)
    assert df.height == 4000
    assert set(df["type"].unique().to_list()) >= {1, 3, 4}
    assert (df["ask_px_1"] > df["bid_px_1"]).all()


def test_day_looks_like_a_real_book(synthetic_events):
    ev = synthetic_events
    mid = (ev["ask_px_1"] + ev["bid_px_1"]).to_numpy()
    moves = (np.diff(mid) != 0).mean()
    assert 0.05 < moves < 0.4  # AMZN 2012-06-21 level 5: 0.18
    spread_ticks = ((ev["ask_px_1"] - ev["bid_px_1"]) / 100).mean()
    assert 1 <= spread_ticks < 10
    assert (ev["time"].diff() == 0).sum() > 0  # multi-fill market orders share a timestamp
    assert ev["time"].min() >= 34_200 * 10**9 and ev["time"].max() < 57_600 * 10**9


def test_order_flow_imbalance_predicts_the_next_mid_moves(tmp_path):
    """The model's informed flow makes past OFI carry information about the next mid moves."""
    ev = read_lobster(write_day(SyntheticConfig(levels=5, events=60_000, seed=11), tmp_path))
    f = compute_features(ev, FeatureParams(levels=5))
    ofi = np.nan_to_num(f["ofi_1"].to_numpy())
    mid = f["mid"].to_numpy()
    k = 50
    past = np.convolve(ofi, np.ones(k))[: len(ofi)]
    future = np.roll(mid, -k) - mid
    corr = np.corrcoef(past[k:-k], future[k:-k])[0, 1]
    assert corr > 0.1, corr


def test_generate_returns_aligned_arrays():
    msgs, book = generate(SyntheticConfig(levels=2, events=500, seed=0))
    assert msgs.shape == (500, 6) and book.shape == (500, 8)
    assert (np.diff(msgs[:, 0]) >= 0).all()
