"""Readers, validation and the synthetic day generator. Every source becomes one events table
(:mod:`lobnet.data.schema`)."""

from .errors import (
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
from .lobster import read_lobster
from .quotes import consolidate_nbbo, locked_crossed_counts, read_quotes
from .schema import EventType, level_columns, n_levels

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
    "read_lobster",
    "read_quotes",
]
