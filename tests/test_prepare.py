"""lobnet-prepare end to end: outputs, summary, the content-keyed cache, real LOBSTER and tick data."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from lobnet.features import FeatureSpec
from lobnet.prep.labels import LabelConfig
from lobnet.prep.prepared import load_prepared, prepare

from .conftest import AIG, AMZN5, need

REQUIRED = {
    "source",
    "symbols",
    "days",
    "n_events",
    "n_features",
    "feature_names",
    "label_counts",
    "seconds",
    "events_per_s",
}


def test_cli_on_synthetic_writes_partitions_and_reuses_its_cache(tmp_path):
    out = tmp_path / "prep"
    cmd = [
        sys.executable,
        "-m",
        "lobnet.cli.prepare",
        "data=synthetic",
        "data.events=20000",
        f"output_dir={out}",
        f"cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "prepared 20,000 events of SYN" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert REQUIRED <= s.keys()
    assert s["source"] == "synthetic" and s["n_events"] == 20_000 and s["levels"] == 10
    assert s["n_features"] == len(s["feature_names"]) and "ofi_10" in s["feature_names"]
    assert set(s["label_counts"]) == {"10", "50", "100"}
    assert set(s["label_counts"]["10"]) == {"down", "flat", "up"}
    assert s["partitions"] == ["symbol=SYN/date=2012-06-21/part-0.parquet"]
    frame, _ = load_prepared(out)
    assert frame.height == 20_000 and {"smooth_ret_10", "logret_100", "label_50"} <= set(frame.columns)
    mtime = (out / s["partitions"][0]).stat().st_mtime_ns
    r2 = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert r2.returncode == 0 and "reused" in r2.stdout
    assert (out / s["partitions"][0]).stat().st_mtime_ns == mtime
    # a different feature config is a different key: recomputed
    r3 = subprocess.run(cmd + ["features.groups=[mid,ofi]"], capture_output=True, text=True, cwd=tmp_path)
    assert r3.returncode == 0 and "reused" not in r3.stdout
    assert json.loads((out / "summary.json").read_text())["feature_names"][:2] == ["mid", "ofi_1"]


@pytest.mark.realdata
def test_prepare_real_lobster_day(tmp_path):
    s = prepare(
        {"_target_": "lobnet.data.read_lobster", "path": str(need(AMZN5)), "strict": True},
        FeatureSpec(),
        LabelConfig(),
        {"blocks": 5, "train_blocks": 2},
        100,
        tmp_path / "amzn",
        tmp_path / "cache",
    ).summary
    assert s["symbols"] == ["AMZN"] and s["days"] == ["2012-06-21"] and s["n_events"] == 155_935
    assert s["files"] == sorted([str(AMZN5), str(AMZN5).replace("message", "orderbook")])
    print("AMZN label balance per horizon:", s["label_counts"])
    frame, _ = load_prepared(tmp_path / "amzn")
    assert frame.select(pl.col(s["feature_names"]).slice(1)).null_count().sum_horizontal().item() == 0


@pytest.mark.realdata
def test_prepare_aig_ticks_makes_day_folds(tmp_path):
    args = (
        {"_target_": "lobnet.data.read_quotes", "path": str(need(AIG))},
        FeatureSpec(),
        LabelConfig(),
        {"train_days": 2},
        100,
        tmp_path / "aig",
        tmp_path / "cache",
    )
    p = prepare(*args)
    s = p.summary
    assert s["days"] == ["2013-10-07", "2013-10-08", "2013-10-09", "2013-10-10", "2013-10-11"]
    assert len(s["partitions"]) == 5 and len(s["folds"]) == 2
    assert s["folds"][0].startswith("fold 0: train AIG 2013-10-07..AIG 2013-10-08")
    assert s["locked_crossed"]["events"] == s["n_events"]
    print("AIG label balance per horizon:", s["label_counts"], "locked/crossed:", s["locked_crossed"])
    # prepared once: the folds come back as made, from memory and, when up to date, from the folder
    again = prepare(*args)
    assert again.summary["cached"] and again._frame is None  # nothing read back until asked for
    assert [f.describe() for f in again.folds] == s["folds"] == [f.describe() for f in p.folds]
    for a, b in zip(again.folds, p.folds, strict=True):
        assert all((getattr(a, k) == getattr(b, k)).all() for k in ("train", "val", "test"))
    assert again.frame.equals(p.frame)
