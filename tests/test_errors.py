"""Malformed input built from real files by corruption: each raises the right LobDataError subclass naming the
file and the row, and leaves nothing written (no output, no cache entry)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lobnet.data import errors as E
from lobnet.features import FeatureSpec
from lobnet.prep.labels import LabelConfig
from lobnet.prep.prepared import prepare

from .conftest import AAPL10, AIG, need

SPLIT = {"unit": "blocks", "blocks": 4, "train_blocks": 2}


def _pair(tmp: Path, name: str | None = None) -> tuple[Path, Path, list[str], list[str]]:
    src = need(AAPL10)
    ob_src = src.with_name(src.name.replace("message", "orderbook"))
    msg = tmp / (name or src.name)
    ob = tmp / (name.replace("message", "orderbook") if name else ob_src.name)
    return msg, ob, src.read_text().splitlines(), ob_src.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


def _field(lines: list[str], row: int, col: int, value: str) -> None:
    f = lines[row - 1].split(",")
    f[col] = value
    lines[row - 1] = ",".join(f)


def lobster_case(kind):
    """Corrupt a copy of the real AAPL level-10 pair; returns (path to read, error class, bad file, bad row)."""

    def build(tmp: Path):
        msg, ob, m, o = _pair(tmp)
        bad_file, row = msg, None
        if kind == "row_count":
            o = o[:-1]
            bad_file = ob
        elif kind == "columns_message":
            m[4] += ",1"
            row = 5
        elif kind == "columns_orderbook":
            o[6] = o[6].rsplit(",", 1)[0]
            bad_file, row = ob, 7
        elif kind == "non_numeric":
            _field(m, 10, 3, "abc")
            row = 10
        elif kind == "time_backwards":
            _field(m, 20, 0, "34000.0")
            row = 20
        elif kind == "crossed":
            f = o[29].split(",")
            f[0] = f[2]  # best ask = best bid
            o[29] = ",".join(f)
            bad_file, row = ob, 30
        elif kind == "negative_size":
            _field(m, 40, 3, "-5")
            row = 40
        elif kind == "negative_price":
            _field(o, 50, 4, "-100")
            bad_file, row = ob, 50
        elif kind == "event_type":
            _field(m, 60, 1, "9")
            row = 60
        elif kind == "direction":
            _field(m, 70, 5, "0")
            row = 70
        elif kind == "empty":
            m = []
        elif kind == "inconsistent":
            row = next(i + 1 for i in range(99, len(m)) if m[i].split(",")[1] == "1")
            _field(m, row, 3, str(int(m[row - 1].split(",")[3]) + 1))
        _write(msg, m)
        _write(ob, o)
        return msg, bad_file, row

    return build


LOBSTER_CASES = {
    "row_count": E.RowCountMismatchError,
    "columns_message": E.ColumnCountError,
    "columns_orderbook": E.ColumnCountError,
    "non_numeric": E.ParseError,
    "time_backwards": E.TimeOrderError,
    "crossed": E.CrossedBookError,
    "negative_size": E.NegativeValueError,
    "negative_price": E.NegativeValueError,
    "event_type": E.EventTypeError,
    "direction": E.SchemaError,
    "empty": E.EmptyFileError,
    "inconsistent": E.BookConsistencyError,
}


def _assert_nothing_written(tmp: Path, data: dict) -> None:
    out, cache = tmp / "out", tmp / "cache"
    with pytest.raises(E.LobDataError):
        prepare(data, FeatureSpec(), LabelConfig(), SPLIT, 10, out, cache)
    written = [p for p in tmp.rglob("*") if p.suffix == ".parquet" or p.name == "summary.json"]
    assert written == [], written


@pytest.mark.realdata
@pytest.mark.parametrize("kind", list(LOBSTER_CASES))
def test_lobster_corruption(tmp_path, kind):
    path, bad_file, row = lobster_case(kind)(tmp_path)
    with pytest.raises(LOBSTER_CASES[kind]) as ei:
        from lobnet.data import read_lobster

        read_lobster(path, strict=True)
    err = ei.value
    assert err.file == str(bad_file)
    assert err.row == row
    assert str(bad_file) in str(err) and err.reason
    if row is not None:
        assert f"row {row}:" in str(err)
    _assert_nothing_written(tmp_path, {"_target_": "lobnet.data.read_lobster", "path": str(path), "strict": True})


@pytest.mark.realdata
def test_unparsable_file_name(tmp_path):
    msg, ob, m, o = _pair(tmp_path, name="aapl_message.csv")
    _write(msg, m)
    _write(ob, o)
    with pytest.raises(E.FileNameError) as ei:
        from lobnet.data import read_lobster

        read_lobster(msg)
    assert ei.value.file == str(msg)


@pytest.mark.realdata
def test_corrupt_lobster_zip(tmp_path):
    msg, ob, m, o = _pair(tmp_path)
    z = tmp_path / "pair.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(msg.name, "\n".join(m))
        zf.writestr(ob.name, "\n".join(o))
    data = z.read_bytes()
    z.write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(E.ArchiveError) as ei:
        from lobnet.data import read_lobster

        read_lobster(z)
    assert ei.value.file == str(z)
    _assert_nothing_written(tmp_path, {"_target_": "lobnet.data.read_lobster", "path": str(z)})


def _algoseek_day(tmp: Path, mutate) -> Path:
    """A small AlgoSeek day (first 3000 real AIG quote rows) with a mutation applied to its lines."""
    src = need(AIG) / "20131007_quote.zip"
    with zipfile.ZipFile(src) as zf:
        name = zf.namelist()[0]
        lines = zf.read(name).decode().splitlines()[:3000]
    mutate(lines)
    out = tmp / "20131007_quote.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, "\n".join(lines) + "\n")
    return out


@pytest.mark.realdata
def test_quotes_time_backwards(tmp_path):
    def mutate(lines):
        _field(lines, 500, 0, "1000")

    z = _algoseek_day(tmp_path, mutate)
    from lobnet.data import read_quotes

    with pytest.raises(E.TimeOrderError) as ei:
        read_quotes(z, session=None)
    assert ei.value.file.endswith("20131007_aig_Quote_Tick.csv") and ei.value.row == 500


@pytest.mark.realdata
def test_quotes_non_numeric_and_corrupt_zip(tmp_path):
    from lobnet.data import read_quotes

    z = _algoseek_day(tmp_path, lambda lines: _field(lines, 1234, 2, "12x"))
    with pytest.raises(E.ParseError) as ei:
        read_quotes(z, session=None)
    assert ei.value.row == 1234 and "bid_sz" in ei.value.reason
    z.write_bytes(z.read_bytes()[:100])
    with pytest.raises(E.ArchiveError):
        read_quotes(z)
    _assert_nothing_written(tmp_path, {"_target_": "lobnet.data.read_quotes", "path": str(z)})


def test_generic_quotes_missing_column_and_bad_value(tmp_path):
    from lobnet.data import read_quotes

    p = tmp_path / "top.csv"
    p.write_text("ts,bid,bidsize,ask,asksize\n34200.5,10.01,100,10.02,200\n34201.0,10.01,100,x,200\n")
    with pytest.raises(E.SchemaError, match="missing columns"):
        read_quotes(p, date="2020-01-02", time_unit="s")
    cols = {"time": "ts", "bid_px": "bid", "bid_sz": "bidsize", "ask_px": "ask", "ask_sz": "asksize"}
    with pytest.raises(E.SchemaError) as ei:
        read_quotes(p, date="2020-01-02", time_unit="s", columns=cols)
    assert ei.value.row == 3 and "'x'" in ei.value.reason


@pytest.mark.realdata
def test_prepare_cli_reports_one_error_line_and_writes_no_parquet(tmp_path):
    path, bad_file, row = lobster_case("time_backwards")(tmp_path)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lobnet.cli.prepare",
            "data=lobster",
            f"data.path={path}",
            f"output_dir={out}",
            f"cache_dir={tmp_path / 'cache'}",
            "hydra.run.dir=" + str(tmp_path / "hydra"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:") and str(bad_file) in lines[0] and f"row {row}" in lines[0]
    assert not list(tmp_path.rglob("*.parquet"))
