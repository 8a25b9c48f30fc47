"""The LOBSTER reader on every real file, in every form it accepts."""

from __future__ import annotations

import datetime as dt
import shutil
import zipfile

import numpy as np
import polars as pl
import pytest

from lobnet.data import EventType, FileNameError, SchemaError, level_columns, n_levels, read_lobster
from lobnet.data.lobster import parse_name

from .conftest import AAPL10, AMZN1, AMZN5, LOBSTER, LOBSTER_FILES, TSLA10, need


@pytest.mark.realdata
@pytest.mark.parametrize("path", LOBSTER_FILES, ids=lambda p: p.name)
def test_every_real_file_reads_and_passes_strict_validation(path):
    meta = parse_name(need(path).name)
    df = read_lobster(path, strict=True)
    raw_rows = sum(1 for _ in open(path))
    assert df.height == raw_rows
    assert n_levels(df) == meta.levels
    assert df.columns[:8] == ["symbol", "date", "time", "type", "order_id", "size", "price", "direction"]
    assert df.columns[8:] == level_columns(meta.levels)
    assert df["symbol"].unique().to_list() == [meta.symbol]
    assert df["date"].unique().to_list() == [meta.date]
    assert (df["time"].diff().drop_nulls() >= 0).all()


@pytest.mark.realdata
def test_time_is_exact_integer_nanoseconds():
    df = read_lobster(need(AMZN5))
    # first message line: 34200.017459617,5,0,1,2238200,-1
    assert df["time"][0] == 34_200_017_459_617
    first = open(AMZN5).readline().split(",")
    assert df["type"][0] == int(first[1]) == EventType.EXECUTE_HIDDEN
    # many events share a timestamp in real data, and are kept in file order
    assert (df["time"].diff() == 0).sum() > 1000


@pytest.mark.realdata
def test_cross_trades_in_tsla_sample_are_read():
    df = read_lobster(need(TSLA10), strict=True)
    assert (df["type"] == EventType.CROSS).sum() >= 1
    assert df["date"][0] == dt.date(2015, 1, 7)


@pytest.mark.realdata
def test_folder_reads_pairs_and_needs_a_level_choice_when_ambiguous():
    need(LOBSTER)
    with pytest.raises(SchemaError, match="several level counts"):
        read_lobster(LOBSTER)  # AMZN has both a level-1 and a level-5 file for the same day
    df = read_lobster(LOBSTER, levels=1)
    assert sorted(df["symbol"].unique().to_list()) == ["AAPL", "AMZN"]
    assert df.filter(pl.col("symbol") == "AMZN").height == sum(1 for _ in open(AMZN1))
    # one table sorted by symbol then time; days and symbols are contiguous blocks
    assert df["symbol"].to_list() == sorted(df["symbol"].to_list())


@pytest.mark.realdata
def test_orderbook_path_and_zip_archive_give_the_same_table(tmp_path):
    base = read_lobster(need(AAPL10))
    ob = AAPL10.with_name(AAPL10.name.replace("message", "orderbook"))
    assert read_lobster(ob).equals(base)
    z = tmp_path / "aapl.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(AAPL10, f"inner/{AAPL10.name}")
        zf.write(ob, f"inner/{ob.name}")
    assert read_lobster(z, strict=True).equals(base)


@pytest.mark.realdata
def test_explicit_metadata_overrides_and_unparsable_names(tmp_path):
    msg, ob = tmp_path / "m.csv", tmp_path / "o.csv"
    shutil.copy(need(AAPL10), msg)
    shutil.copy(AAPL10.with_name(AAPL10.name.replace("message", "orderbook")), ob)
    with pytest.raises(FileNameError, match="not a LOBSTER file name"):
        read_lobster(msg)
    with pytest.raises(FileNameError, match="pass symbol= and date="):
        read_lobster(msg, orderbook=ob)
    df = read_lobster(msg, orderbook=ob, symbol="XYZ", date="2020-01-02")
    assert n_levels(df) == 10  # inferred from the orderbook's width
    assert df["symbol"][0] == "XYZ" and df["date"][0] == dt.date(2020, 1, 2)
    assert df.drop("symbol", "date").equals(read_lobster(AAPL10).drop("symbol", "date"))


def _copy_pair(src, dst_dir):
    ob = src.with_name(src.name.replace("message", "orderbook"))
    shutil.copy(src, dst_dir / src.name)
    shutil.copy(ob, dst_dir / ob.name)
    return dst_dir / src.name, dst_dir / ob.name


@pytest.mark.realdata
def test_unoccupied_levels_become_nulls_and_halts_are_read(tmp_path):
    """Empty the deepest bid level of some rows (LOBSTER's dummy price, size 0) and insert a trading halt."""
    msg, ob = _copy_pair(need(AAPL10), tmp_path)
    mlines = msg.read_text().splitlines()
    olines = ob.read_text().splitlines()
    for i in range(100, 110):  # rows 101..110: bid level 10 unoccupied (a level that only appears after)
        f = olines[i].split(",")
        f[38], f[39] = "-9999999999", "0"
        olines[i] = ",".join(f)
    # row 101's message touches an invisible price so strict mode accepts the emptied level there; simplest is
    # a halt message, which must leave the book as it was
    t = mlines[99].split(",")[0]
    mlines.insert(100, f"{t},7,0,0,-1,-1")
    olines.insert(100, olines[99])
    msg.write_text("\n".join(mlines) + "\n")
    ob.write_text("\n".join(olines) + "\n")
    df = read_lobster(msg)
    assert df.height == 1000
    assert df["type"][100] == EventType.HALT and df["price"][100] == -1
    assert df["bid_px_10"][101:111].null_count() == 10
    assert (df["bid_sz_10"][101:111] == 0).all()
    assert df["bid_px_10"].drop_nulls().min() > 0  # no dummy price survives
    # features stay finite: gaps at the emptied level are null (undefined), never a 1e6-tick gap
    from lobnet.features import FeatureParams, compute_features

    f = compute_features(df, FeatureParams(levels=10))
    assert f["bid_gap_10"][101:111].null_count() == 10
    assert f["bid_depth_10"][101:111].is_finite().all()
    assert f.select(pl.col("bid_gap_10").drop_nulls().max()).item() < 1000
    ofi = f["ofi_10"].to_numpy()
    assert np.isfinite(ofi[1:]).all()
    # the level vanishing removes its queue, reappearing adds it back (sizes, not dummy prices)
    assert abs(ofi[101]) <= df["bid_sz_10"][100] + df["ask_sz_10"][100] + df["ask_sz_10"][101]
