"""Readers, validation and the synthetic day generator. Every source becomes one events table
(:mod:`lobnet.data.schema`)."""

from lobnet.data.bars import read_bars
from lobnet.data.errors import (
    ArchiveError,
    BookConsistencyError,
    ColumnCountError,
    CrossedBookError,
    EmptyFileError,
    EventTypeError,
    FileNameError,
    LobDataError,
    NegativeValueError,
    OutputDirError,
    ParseError,
    RowCountMismatchError,
    SchemaError,
    TimeOrderError,
)
from lobnet.data.lobster import read_lobster
from lobnet.data.quotes import consolidate_nbbo, locked_crossed_counts, read_quotes
from lobnet.data.schema import EventType, level_columns, n_levels

__all__ = [
    "ArchiveError",
    "BookConsistencyError",
    "ColumnCountError",
    "CrossedBookError",
    "EmptyFileError",
    "EventTypeError",
    "FileNameError",
    "LobDataError",
    "NegativeValueError",
    "OutputDirError",
    "ParseError",
    "RowCountMismatchError",
    "SchemaError",
    "TimeOrderError",
    "EventType",
    "consolidate_nbbo",
    "level_columns",
    "locked_crossed_counts",
    "n_levels",
    "read_bars",
    "read_lobster",
    "read_quotes",
]
