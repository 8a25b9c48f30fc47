"""One exception family for bad input. Every error names the file, the row (1-based line in that file, when
one applies) and what is wrong, so a user can open the file at that line."""

from __future__ import annotations

from pathlib import Path


class LobDataError(Exception):
    """Bad market-data input. ``file``: the offending file; ``row``: 1-based line number or None."""

    def __init__(self, file: str | Path | None, row: int | None, reason: str):
        self.file = str(file) if file is not None else None
        self.row = row
        self.reason = reason
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = self.file or "<input>"
        if self.row is not None:
            where += f": row {self.row}"
        return f"{where}: {self.reason}"


class EmptyFileError(LobDataError):
    """The file holds no rows."""


class ColumnCountError(LobDataError):
    """A row has the wrong number of fields."""


class ParseError(LobDataError):
    """A field is not a number (or not the type its column needs)."""


class RowCountMismatchError(LobDataError):
    """A LOBSTER message file and its orderbook file differ in row count."""


class TimeOrderError(LobDataError):
    """Time goes backwards."""


class CrossedBookError(LobDataError):
    """Best ask at or below best bid on a single-venue book."""


class NegativeValueError(LobDataError):
    """A size or price that must be non-negative is negative."""


class EventTypeError(LobDataError):
    """An event type outside the known set."""


class FileNameError(LobDataError):
    """A LOBSTER file name that cannot be parsed, and no explicit metadata was given."""


class ArchiveError(LobDataError):
    """A corrupt zip archive, or one without the expected members."""


class BookConsistencyError(LobDataError):
    """(strict mode) a message does not match the change it causes in the book."""


class SchemaError(LobDataError):
    """A required column is missing, or a configuration does not fit the input."""


class OutputDirError(LobDataError):
    """An output directory lobnet must not write: one it did not create, one that holds or lies inside the
    command's own inputs, one under a regular file, or one that another lobnet command is writing now."""
