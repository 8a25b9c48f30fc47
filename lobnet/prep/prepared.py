"""The prepare step as library code: events (cached by input content) -> features + targets -> Parquet.

Entry points (:mod:`lobnet.cli.prepare`) compose a Hydra config and call :func:`prepare` with plain objects.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lobnet import __version__
from lobnet.data.quotes import locked_crossed_counts
from lobnet.data.schema import day_groups, n_levels
from lobnet.features import FeatureSpec, compute_features, feature_names, warmup
from lobnet.io import OutputDir, atomic_file, clean_stale
from lobnet.prep.labels import CLASS_NAMES, LabelConfig, class_counts, compute_targets, labels_for_fold
from lobnet.prep.splits import Fold, require_samples, walk_forward
from lobnet.prep.targets import QUOTE, RAW, TARGET, TARGET_END, TargetConfig, target_rows, target_table

CACHE_VERSION = 5  # bump when the events schema or the prepared layout changes (2: folds.npz; 3: test_starts;
# 4: eval_stride; 5: regression tables)
FOLDS = "folds.npz"  # the walk-forward folds of a prepared table: sample rows of each block, purge counts


def _hash_file(path: Path, h: Any) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def input_files(path: str | Path) -> list[Path]:
    """The files a reader will read for ``path``: the file itself plus its LOBSTER partner or AlgoSeek trade
    file, or every file under a folder."""
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    files = [p]
    for a, b in (("_message_", "_orderbook_"), ("_orderbook_", "_message_"), ("_quote.zip", "_trade.zip")):
        if a in p.name and (q := p.with_name(p.name.replace(a, b))).exists():
            files.append(q)
    return sorted(f for f in files if f.exists())


def content_key(*parts: Any, files: list[Path] = ()) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, __version__, *parts], sort_keys=True, default=str).encode())
    for f in files:
        h.update(f.name.encode())
        _hash_file(f, h)
    return h.hexdigest()[:24]


def _call(target: str, kwargs: dict) -> pl.DataFrame:
    module, _, fn = target.rpartition(".")
    return getattr(importlib.import_module(module), fn)(**kwargs)


def load_events(data: dict, cache_dir: str | Path | None) -> tuple[pl.DataFrame, dict]:
    """Run the reader named by ``data['_target_']`` with the rest as arguments, reusing a Parquet copy of its
    output keyed by the reader, its arguments and the content of its input files."""
    kwargs = {k: v for k, v in data.items() if k != "_target_"}
    target = data["_target_"]
    files = input_files(kwargs["path"]) if kwargs.get("path") else []
    if kwargs.get("path") and not Path(kwargs["path"]).exists():
        from lobnet.data.errors import LobDataError

        raise LobDataError(kwargs["path"], None, "no such file or folder")
    key = content_key(target, {k: v for k, v in kwargs.items() if k != "path"}, files=files)
    meta = {
        "reader": target,
        "args": kwargs,
        "events_key": key,
        "files": [str(f) for f in files],
        "events_cached": False,
    }
    cached = Path(cache_dir) / "events" / f"{key}.parquet" if cache_dir else None
    if cached is not None and cached.exists():
        meta["events_cached"] = True
        return pl.read_parquet(cached), meta
    events = _call(target, kwargs)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(cached.parent)  # what killed runs left half-written
        with atomic_file(cached) as tmp:
            events.write_parquet(tmp)
    return events, meta


def prepare(
    data: dict,
    features: FeatureSpec,
    labels: LabelConfig | TargetConfig,
    split: dict,
    window: int,
    output_dir: str | Path,
    cache_dir: str | Path | None = ".lobnet_cache",
) -> Prepared:
    """Read, validate, compute features and targets, cut the walk-forward folds, and write them as Parquet
    partitioned by symbol and day under ``output_dir`` with ``summary.json`` and :data:`FOLDS`. Nothing is written
    unless everything succeeds: the output is built in a temporary folder and renamed into place, and only over a
    folder that lobnet-prepare wrote (:class:`lobnet.io.OutputDir`: never the input's folder or a user's).
    Returns what it prepared (the table itself is read back only when asked for, if it was already there)."""
    t0 = time.perf_counter()
    with OutputDir(output_dir, "prepare", inputs=[data.get("path"), cache_dir]) as od:
        events, meta = load_events(data, cache_dir)
        key = content_key(meta["events_key"], features, labels, split, window)
        if (summary := _up_to_date(od.path, key)) is not None:
            od.keep()
            return Prepared(od.path, summary, load_folds(od.path / FOLDS))
        write = _write_regression if isinstance(labels, TargetConfig) else _write_prepared
        frame, summary, folds = write(od.tmp, events, meta, key, features, labels, split, window, t0)
    return Prepared(od.path, summary, folds, frame)


@dataclass
class Prepared:
    """A prepared table: its folder, ``summary`` (summary.json), the walk-forward ``folds``, and the ``frame``,
    read from the folder on first use when :func:`prepare` found it up to date (in memory when it made it)."""

    path: Path
    summary: dict
    folds: list[Fold]
    _frame: pl.DataFrame | None = None

    @property
    def frame(self) -> pl.DataFrame:
        if self._frame is None:
            self._frame, _ = load_prepared(self.path)
        return self._frame


def save_folds(path: Path, folds: list[Fold]) -> None:
    arrays = {}
    for f in folds:
        for part in ("train", "val", "test"):
            arrays[f"{f.index}_{part}"] = getattr(f, part)
        arrays[f"{f.index}_counts"] = np.array([f.purged_train, f.purged_val, f.embargoed])
        arrays[f"{f.index}_labels"] = np.array(f.labels)
        arrays[f"{f.index}_test_starts"] = np.array(f.test_starts, dtype=np.int64)
        arrays[f"{f.index}_eval_stride"] = np.array(f.eval_stride)
    np.savez(path, n=np.array(len(folds)), **arrays)


def _names(a: np.ndarray) -> tuple[str, ...]:
    return tuple(str(x) for x in a)


def load_folds(path: Path) -> list[Fold]:
    with np.load(path, allow_pickle=False) as z:
        return [
            Fold(
                i,
                z[f"{i}_train"],
                z[f"{i}_val"],
                z[f"{i}_test"],
                *map(int, z[f"{i}_counts"]),
                _names(z[f"{i}_labels"]),
                tuple(int(x) for x in z[f"{i}_test_starts"]),
                int(z[f"{i}_eval_stride"]),
            )
            for i in range(int(z["n"]))
        ]


def _up_to_date(out: Path, key: str) -> dict | None:
    """The summary of the table already in ``out`` when it was prepared from the same inputs and config."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    parts = [*summary.get("partitions", []), FOLDS]
    if summary.get("cache_key") == key and all((out / p).exists() for p in parts):
        summary["cached"] = True
        return summary
    return None


def _write_prepared(tmp: Path, events, meta, key, features, labels, split, window, t0):
    bars = "close" in events.columns  # a bars table (lobnet.data.bars) rather than a book's events
    where = meta["files"][0] if meta["files"] else meta["reader"]
    if bars != (features.source == "bars"):
        have, want = ("bars", "features=bars") if bars else ("book events", "book feature groups")
        raise ValueError(
            f"{where}: the data are {have}, and feature groups {list(features.groups)} read {features.source}; "
            f"use {want}"
        )
    most = int(events.group_by("symbol", "date").len()["len"].max() or 0) if bars else 0
    if bars and most < window + max(labels.horizons):
        raise ValueError(
            f"{where}: at most {most} bars per session, and a window of {window} bars with a horizon of "
            f"{max(labels.horizons)} needs more: windows and labels stay within a session, so they need intraday "
            "bars (daily bars go through lobnet-statarb)"
        )
    levels = n_levels(events)
    params = features.params(levels)
    names = feature_names(params, list(features.groups))
    frame = pl.concat(
        [compute_features(events, params, list(features.groups)), compute_targets(events, labels, params)],
        how="horizontal",
    )
    groups = day_groups(frame)
    folds = require_samples(
        walk_forward(
            [(s, e) for _, _, s, e in groups],
            window=window,
            max_horizon=max(labels.horizons),
            warmup=warmup(list(features.groups)),
            day_names=[f"{s} {d}" for s, d, _, _ in groups],
            **split,
        ),
        window,
        max(labels.horizons),
    )
    # label classes with thresholds fitted on the first fold's training samples (the dataset refits per fold)
    alphas, ys, _ = labels_for_fold(frame, folds[0].train, labels)
    frame = frame.with_columns(
        [pl.Series(f"label_{k}", y, dtype=pl.Int8) for k, y in zip(labels.horizons, ys, strict=True)]
    )
    samples = np.concatenate([folds[0].train, folds[0].val, folds[0].test])
    seconds = time.perf_counter() - t0
    summary = {
        **_common_summary(tmp, frame, meta, groups, levels, names, features),
        "task": "classification",
        "horizons": list(labels.horizons),
        "label_method": labels.method,
        "label_targets": [labels.target(k) for k in labels.horizons],
        "alpha_mode": labels.alpha_mode,
        "alphas_fold0": dict(zip(map(str, labels.horizons), alphas, strict=True)),
        "label_counts": {str(k): class_counts(y[samples]) for k, y in zip(labels.horizons, ys, strict=True)},
        "label_classes": list(CLASS_NAMES),
        **_closing_summary(window, folds, seconds, frame, meta, key),
    }
    if levels == 1:
        summary["locked_crossed"] = locked_crossed_counts(events)
    save_folds(tmp / FOLDS, folds)
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return frame, summary, folds


def _common_summary(tmp: Path, frame: pl.DataFrame, meta: dict, groups, levels: int, names, features) -> dict:
    """Writes the table's partitions (one Parquet file per symbol-day) and returns what every summary opens with."""
    partitions = []
    for sym, date, s, e in groups:
        rel = f"symbol={sym}/date={date}/part-0.parquet"
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        frame.slice(s, e - s).write_parquet(tmp / rel)
        partitions.append(rel)
    return {
        "source": meta["reader"].rsplit(".", 1)[-1].replace("read_", "").replace("load_day", "synthetic"),
        "reader": meta["reader"],
        "reader_args": meta["args"],
        "files": meta["files"],
        "events_key": meta["events_key"],  # the events alone (not features, labels or split): the data set
        "symbols": sorted({g[0] for g in groups}),
        "days": sorted({str(g[1]) for g in groups}),
        "levels": levels,
        "n_events": frame.height,
        "n_features": len(names),
        "feature_names": names,
        "feature_groups": list(features.groups),
        "warmup_events": warmup(list(features.groups)),
        "partitions": partitions,
    }


def _closing_summary(window: int, folds: list[Fold], seconds: float, frame: pl.DataFrame, meta: dict, key) -> dict:
    return {
        "window": window,
        "folds": [f.describe() for f in folds],
        "seconds": round(seconds, 3),
        "events_per_s": round(frame.height / seconds, 1),
        "events_cached": meta["events_cached"],
        "cached": False,
        "cache_key": key,
    }


def pair_features(rows: pl.DataFrame, params, groups: list[str]) -> pl.DataFrame:
    """Features of the merged two-symbol table (:func:`lobnet.prep.targets.target_rows`): every group computed on
    each symbol's Level-I state as the merged rows carry it, named as
    :func:`lobnet.features.pair_feature_names` lists them."""
    from lobnet.features import pair_feature_names

    parts = []
    for side in "ab":
        own = [g for g in groups if not (side == "b" and g == "log_dt")]
        table = rows.select("symbol", "date", "time", *[pl.col(f"{side}_{c}").alias(c) for c in QUOTE])
        try:
            parts.append(compute_features(table, params, own, keep=()))
        except pl.exceptions.ColumnNotFoundError as e:
            raise ValueError(
                f"labels=pairs: a merged pair table carries each symbol's Level-I quotes only, and feature groups "
                f"{own} read more ({str(e).splitlines()[0]}); use features=level1"
            ) from None
    cols = [c for part in parts for c in part.get_columns()]  # A's, then B's: the order of the names
    return pl.DataFrame([c.alias(n) for c, n in zip(cols, pair_feature_names(params, groups), strict=True)])


def _write_regression(tmp: Path, events, meta, key, features, target: TargetConfig, split, window, t0):
    """:func:`_write_prepared` for a regression target: features, the Level-I state the factor baselines read,
    ``target`` and ``target_end`` (:func:`lobnet.prep.targets.target_table`); folds purged by each sample's own
    label span; samples only where the target is known."""
    where = meta["files"][0] if meta["files"] else meta["reader"]
    if "close" in events.columns or features.source == "bars":
        raise ValueError(f"{where}: labels={target.kind} is a target on a book's events, not on bars")
    try:
        rows = target_rows(events, target)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    levels = 1 if target.kind == "pairs" else n_levels(events)
    params = features.params(levels)
    groups = list(features.groups)
    if target.kind == "pairs":
        feats = pl.concat(
            [rows.select("symbol", "date", "time"), pair_features(rows, params, groups)], how="horizontal"
        )
        raw = [f"{s}_{c}" for s in "ab" for c in QUOTE] + ["updated"]
    else:
        feats = compute_features(rows, params, groups)
        raw = list(QUOTE)
    names = [c for c in feats.columns if c not in ("symbol", "date", "time")]
    tgt = target_table(rows, target, features.tick, features.price_scale)
    frame = pl.concat([feats, rows.select([pl.col(c).alias(RAW + c) for c in raw]), tgt], how="horizontal")
    groups_ = day_groups(frame)
    folds = require_samples(
        walk_forward(
            [(s, e) for _, _, s, e in groups_],
            window=window,
            max_horizon=0,
            warmup=warmup(groups),
            day_names=[f"{s} {d}" for s, d, _, _ in groups_],
            label_end=frame[TARGET_END].to_numpy(),
            **split,
        ),
        window,
        0,
    )
    y = frame[TARGET].to_numpy()
    tr = y[folds[0].train]
    seconds = time.perf_counter() - t0
    summary = {
        **_common_summary(tmp, frame, meta, groups_, levels, names, features),
        "task": "regression",
        "target": target.name,
        "target_config": {k: getattr(target, k) for k in target.__dataclass_fields__},
        "horizons": list(target.horizons),
        "target_known": int(np.isfinite(y).sum()),
        "target_fold0_train": {"mean": float(np.mean(tr)), "std": float(np.std(tr)), "n": int(tr.size)},
        **_closing_summary(window, folds, seconds, frame, meta, key),
    }
    save_folds(tmp / FOLDS, folds)
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return frame, summary, folds


def load_prepared(output_dir: str | Path) -> tuple[pl.DataFrame, dict]:
    """The prepared table (all partitions, in order) and its summary."""
    out = Path(output_dir)
    summary = json.loads((out / "summary.json").read_text())
    frame = pl.concat([pl.read_parquet(out / p) for p in summary["partitions"]])
    return frame, summary
