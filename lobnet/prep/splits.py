"""Walk-forward folds with purging and embargo.

A *sample* is identified by the row t of its last input event: it reads rows [t-W+1, t] (its input window)
and its labels read rows up to t+K (K the longest horizon). Samples never straddle a symbol-day, and start
after the features' warm-up.

Folds move forward in time: train, then validation, then test, never training on the future.

* Over **days**, when there are enough (``train_days + 2``): rolling (train on n days, validate on the next,
  test on the one after, then shift by a day) or anchored (train on every day so far).
* Over **contiguous blocks** of samples otherwise (a single day): the samples, in time order, are cut into
  ``blocks`` equal blocks and folds walk over them the same way.

**Evaluation stride** (``max_eval_samples``): neighbouring samples share all but one row of their windows and most
of their label spans, so a long validation block or test period holds far fewer independent observations than
samples. Capping them keeps every k-th sample (k = the smallest stride that leaves at most the cap), the same
samples for every model, which bounds the cost of the deep models' evaluation passes on multi-day tick data
without changing what is measured; training samples are not thinned (an epoch draws its own batches).

**Purge**: a training (or validation) sample is dropped when any row it reads (input window or label span)
is also read by a sample of a later evaluation block, so no training target overlaps a test sample's inputs or
targets. **Embargo**: after each evaluation block, ``embargo`` more rows are kept out of training (this matters
when training data follows the evaluation block, e.g. anchored folds over interleaved symbols).

**Time horizons** (``label_end``, the regression targets of :mod:`lobnet.prep.targets`): a target H seconds ahead
reads a number of rows that varies with the pace of events, so each sample's label span ends at its own row
(``label_end[t]``, -1 where the target is unknown: those rows are no samples), and purging uses that span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Fold:
    index: int
    train: np.ndarray  # sample rows t, sorted
    val: np.ndarray
    test: np.ndarray
    purged_train: int
    purged_val: int
    embargoed: int
    labels: tuple[str, str, str] = ("", "", "")  # human-readable period names (days) for train, val, test
    # the first test row of each test unit (day or block), when the test period holds several (``test_units``):
    # how far after training a test sample lies, for the decay of scores with distance from training
    test_starts: tuple[int, ...] = ()
    eval_stride: int = 1  # every k-th validation and test sample is kept (``max_eval_samples``)

    def describe(self) -> str:
        def rng(a: np.ndarray) -> str:
            return f"rows {a[0]:,}..{a[-1]:,} ({a.size:,} samples)" if a.size else "empty"

        lt, lv, ls = (f" {x}" if x else "" for x in self.labels)
        return (
            f"fold {self.index}: train{lt} {rng(self.train)}, purged {self.purged_train:,}, "
            f"embargoed {self.embargoed:,}"
            f" | val{lv} {rng(self.val)}, purged {self.purged_val:,} | test{ls} {rng(self.test)}"
            + (f" | one validation and test sample in {self.eval_stride} kept" if self.eval_stride > 1 else "")
        )


def sample_rows(day_bounds: list[tuple[int, int]], window: int, max_horizon: int, warmup: int) -> list[np.ndarray]:
    """Per symbol-day (start, end-exclusive row bounds): the rows t that can end a sample."""
    out = []
    for start, end in day_bounds:
        lo, hi = start + warmup + window - 1, end - 1 - max_horizon
        out.append(np.arange(lo, hi + 1, dtype=np.int64) if hi >= lo else np.empty(0, dtype=np.int64))
    return out


def eval_stride(n: int, max_samples: int | None) -> int:
    """The smallest stride k such that every k-th of ``n`` samples leaves at most ``max_samples``."""
    if max_samples is None:
        return 1
    if int(max_samples) < 1:
        raise ValueError(f"max_eval_samples must be at least 1 (or null), not {max_samples}")
    return max(1, -(-int(n) // int(max_samples)))


def purge(
    candidates: np.ndarray,
    later: list[np.ndarray],
    window: int,
    max_horizon: int,
    embargo: int = 0,
    label_end: np.ndarray | None = None,
) -> tuple[np.ndarray, int, int]:
    """Drop candidate samples that share a row with any sample of the ``later`` blocks, and those starting in
    the ``embargo`` rows after a block. A sample's label reads up to ``max_horizon`` rows ahead, or up to its
    ``label_end`` row when given. Returns (kept, n_purged, n_embargoed)."""
    keep = np.ones(candidates.size, dtype=bool)
    purged = np.zeros(candidates.size, dtype=bool)
    starts = candidates - window + 1  # rows each candidate reads
    ends = candidates + max_horizon if label_end is None else label_end[candidates]
    for block in later:
        if block.size == 0:
            continue
        hi = block[-1] + max_horizon if label_end is None else int(label_end[block].max())
        lo = block[0] - window + 1  # rows the block reads: lo..hi
        overlap = (ends >= lo) & (starts <= hi)
        emb = (starts > hi) & (starts <= hi + embargo)
        purged |= overlap & keep
        keep &= ~overlap & ~emb
    n_emb = int((~keep & ~purged).sum())
    return candidates[keep], int(purged.sum()), n_emb


def walk_forward(
    day_bounds: list[tuple[int, int]],
    *,
    window: int,
    max_horizon: int,
    warmup: int = 1,
    scheme: str = "rolling",
    unit: str = "auto",
    train_days: int = 1,
    blocks: int = 5,
    train_blocks: int = 2,
    test_units: int = 1,
    embargo: int = 0,
    day_names: list[str] | None = None,
    max_folds: int | None = None,
    max_eval_samples: int | None = None,
    label_end: np.ndarray | None = None,
) -> list[Fold]:
    """Walk-forward folds (see the module docstring). ``day_bounds``: (start, end) rows of each symbol-day in
    time order (:func:`lobnet.data.schema.day_groups`). ``test_units``: days (or blocks) in each test period, so
    that scores can be followed with distance from training (the folds still step by one unit).
    ``max_eval_samples``: the most samples kept in a validation block and in a test period (see the module
    docstring); one stride, the larger of the two blocks', thins both. ``label_end``: the last row each row's
    target reads (-1: unknown), for targets over a time horizon (``max_horizon`` is then ignored)."""
    if scheme not in ("rolling", "anchored"):
        raise ValueError(f"split scheme must be rolling or anchored, not {scheme!r}")
    if int(window) < 1:
        raise ValueError(f"window must be at least 1 event, not {window}")
    if label_end is not None:
        max_horizon = 0
    per_day = sample_rows(day_bounds, window, max_horizon, warmup)
    if label_end is not None:  # a sample needs a known target
        per_day = [r[label_end[r] >= 0] for r in per_day]
    if unit == "auto":
        unit = "days" if len(per_day) >= train_days + 2 else "blocks"
    if unit == "days":
        units = per_day
        names = day_names or [f"day {i}" for i in range(len(per_day))]
        n_train = train_days
        if len(units) < n_train + 1 + test_units:
            raise ValueError(
                f"{len(units)} days cannot make a fold of {n_train} train + 1 val + {test_units} test days"
            )
    elif unit == "blocks":
        allrows = np.concatenate(per_day) if per_day else np.empty(0, dtype=np.int64)
        if allrows.size < blocks:
            raise ValueError(
                f"{allrows.size} samples cannot be cut into {blocks} blocks (window {window}, horizon {max_horizon})"
            )
        units = np.array_split(allrows, blocks)
        names = [f"block {i}" for i in range(blocks)]
        n_train = train_blocks
        if blocks < n_train + 1 + test_units:
            raise ValueError(
                f"{blocks} blocks cannot make a fold of {n_train} train + 1 val + {test_units} test blocks"
            )
    else:
        raise ValueError(f"split unit must be auto, days or blocks, not {unit!r}")
    if int(test_units) < 1:
        raise ValueError(f"test_units must be at least 1, not {test_units}")
    folds = []
    for i in range(len(units) - n_train - test_units):
        first = 0 if scheme == "anchored" else i
        tr_units = units[first : i + n_train]
        tests = [u for u in units[i + n_train + 1 : i + n_train + 1 + test_units] if u.size]
        val, test = units[i + n_train], np.concatenate(tests) if tests else units[i + n_train + 1]
        train = np.concatenate(tr_units)
        train, p_tr, emb = purge(train, [val, test], window, max_horizon, embargo, label_end)
        val_kept, p_val, _ = purge(val, [test], window, max_horizon, embargo, label_end)
        k = max(eval_stride(val_kept.size, max_eval_samples), eval_stride(test.size, max_eval_samples))
        val_kept, test = val_kept[::k], test[::k]
        label_tr = names[first] if len(tr_units) == 1 else f"{names[first]}..{names[i + n_train - 1]}"
        j = i + n_train + 1
        label_te = names[j] if test_units == 1 else f"{names[j]}..{names[j + test_units - 1]}"
        folds.append(
            Fold(
                len(folds),
                train,
                val_kept,
                test,
                p_tr,
                p_val,
                emb,
                (label_tr, names[i + n_train], label_te),
                tuple(int(u[0]) for u in tests) if test_units > 1 else (),
                k,
            )
        )
        if max_folds is not None and len(folds) >= max_folds:
            break
    return folds


def require_samples(folds: list[Fold], window: int, max_horizon: int) -> list[Fold]:
    """``folds``, or a ValueError naming the first whose train, validation or test block is empty (after purging
    and embargo), which no model can be fitted or scored on: the window and horizon are too long for the data."""
    for f in folds:
        if not (f.train.size and f.val.size and f.test.size):
            raise ValueError(
                f"fold {f.index} has an empty train, validation or test block ({f.describe()}): the window "
                f"({window}) and the longest horizon ({max_horizon}) leave too few samples; shorten them, or cut "
                "fewer and longer blocks"
            )
    return folds
