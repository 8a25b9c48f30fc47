"""Walk-forward folds: order, purge and embargo as properties over random layouts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobnet.prep.splits import purge, sample_rows, walk_forward


def _rows(samples: np.ndarray, window: int, horizon: int) -> set[int]:
    out: set[int] = set()
    for t in samples:
        out.update(range(t - window + 1, t + horizon + 1))
    return out


@settings(max_examples=60, deadline=None)
@given(
    day_lengths=st.lists(st.integers(200, 900), min_size=1, max_size=5),
    window=st.integers(1, 40),
    horizon=st.integers(1, 30),
    blocks=st.integers(3, 7),
    embargo=st.integers(0, 50),
    anchored=st.booleans(),
)
def test_no_training_sample_shares_a_row_with_a_later_evaluation_sample(
    day_lengths, window, horizon, blocks, embargo, anchored
):
    bounds, start = [], 0
    for n in day_lengths:
        bounds.append((start, start + n))
        start += n
    unit = "days" if len(bounds) >= 3 else "blocks"
    folds = walk_forward(
        bounds,
        window=window,
        max_horizon=horizon,
        warmup=1,
        unit=unit,
        train_days=1,
        blocks=blocks,
        train_blocks=1,
        embargo=embargo,
        scheme="anchored" if anchored else "rolling",
    )
    assert folds
    day_of = np.concatenate([np.full(e - s, i) for i, (s, e) in enumerate(bounds)])
    for f in folds:
        for part in (f.train, f.val, f.test):
            if part.size:
                # windows and label spans stay inside one day, after the warm-up
                assert (day_of[part - window + 1] == day_of[part]).all()
                assert (day_of[np.minimum(part + horizon, start - 1)] == day_of[part]).all()
                assert all(t - window + 1 >= bounds[day_of[t]][0] + 1 for t in part[:5])
        if f.train.size and f.test.size:
            assert f.train.max() < f.test.min()  # training precedes testing
            assert not (_rows(f.train, window, horizon) & _rows(f.test, window, horizon))
            # the label span [t, t + K] of every training sample ends before any test sample's first input row
            assert f.train.max() + horizon < f.test.min() - window + 1
        if f.train.size and f.val.size:
            assert not (_rows(f.train, window, horizon) & _rows(f.val, window, horizon))
        if f.val.size and f.test.size:
            assert not (_rows(f.val, window, horizon) & _rows(f.test, window, horizon))


def test_embargo_keeps_rows_after_an_evaluation_block_out():
    cand = np.arange(0, 200)
    block = np.arange(80, 100)
    kept, purged, embargoed = purge(cand, [block], window=5, max_horizon=3, embargo=10)
    # the block reads rows 76..102: samples reading any of them are purged; samples starting in 103..112 embargoed
    assert purged == len([t for t in cand if t + 3 >= 76 and t - 4 <= 102])
    assert embargoed == 10
    assert all(t - 4 > 112 or t + 3 < 76 for t in kept)


def test_fold_summary_is_readable():
    f = walk_forward([(0, 10_000)], window=100, max_horizon=50, blocks=5, train_blocks=2)[0]
    s = f.describe()
    assert s.startswith("fold 0: train block 0..block 1 rows") and "purged 149" in s and "| test block 3" in s


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot make a fold"):
        walk_forward([(0, 100), (100, 200)], window=5, max_horizon=5, unit="days", train_days=1)
    assert sample_rows([(0, 50)], window=40, max_horizon=20, warmup=1)[0].size == 0
