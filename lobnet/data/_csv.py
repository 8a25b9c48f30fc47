"""Headerless numeric CSV parsing: a fast polars path, and a slow line-by-line diagnosis that runs only when the
fast path fails, so that the error names the exact row and field."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from zlib import error as zlib_error  # raised on a truncated deflate stream

import polars as pl

from lobnet.data.errors import ArchiveError, ColumnCountError, EmptyFileError, ParseError

Source = str | bytes


def _lines(source: Source):
    if isinstance(source, bytes):
        return io.StringIO(source.decode("utf-8", errors="replace"))
    return open(source, newline="", encoding="utf-8", errors="replace")  # noqa: SIM115


def diagnose(source: Source, name: str, columns: dict[str, pl.DataType]) -> None:
    """Raise the first row-level problem in ``source`` (wrong field count, non-numeric or empty field)."""
    names = list(columns)
    with _lines(source) as fh:
        for lineno, fields in enumerate(csv.reader(fh), start=1):
            if len(fields) != len(names):
                raise ColumnCountError(name, lineno, f"expected {len(names)} fields, found {len(fields)}")
            for col, value in zip(names, fields, strict=True):
                dtype = columns[col]
                try:
                    if dtype.is_integer():
                        if not -(2**63) <= int(value) < 2**63:
                            raise ParseError(
                                name, lineno, f"column '{col}': {value} is beyond the 64-bit integer range"
                            )
                    elif dtype.is_numeric():
                        float(value)
                except ValueError:
                    raise ParseError(name, lineno, f"column '{col}': {value!r} is not a number") from None
    raise ParseError(name, None, "the CSV parser failed but no bad row was found")


def read_numeric_csv(source: Source, name: str, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """Read a headerless CSV whose columns are all numeric. ``source`` is a path or the file's bytes; ``name`` is
    what errors call the file."""
    try:
        df = pl.read_csv(
            io.BytesIO(source) if isinstance(source, bytes) else source,
            has_header=False,
            schema=columns,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        diagnose(source, name, columns)
        raise  # unreachable: diagnose always raises
    if df.height == 0:
        raise EmptyFileError(name, None, "file is empty")
    if any(df.null_count().row(0)):
        diagnose(source, name, columns)
    return df


def zip_member(path: Path) -> tuple[bytes, str]:
    """The bytes and name of the one file in a zip archive (AlgoSeek ticks, LEAN bars each hold one CSV)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise ArchiveError(path, None, f"expected one CSV in the archive, found {len(names)}")
            return zf.read(names[0]), names[0]
    except (zipfile.BadZipFile, OSError, EOFError, zlib_error) as e:
        raise ArchiveError(path, None, f"corrupt or unreadable zip archive ({e})") from None
