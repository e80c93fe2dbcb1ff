"""The toolkit's own errors, in the bottom layer so every layer (and the command-line helper in
:mod:`avmit_psych._cli`, which turns them into one line and an exit code) can name them.

- :class:`DatasetError` — a data file is not what the toolkit expects (exit code 2).
- :class:`DownloadError` — a download could not be completed or verified (exit code 1).
- :class:`UnknownFileError` — a file the record does not have was asked for (exit code 2).
"""
from __future__ import annotations


class DatasetError(ValueError):
    """A data file (or a DataFrame standing for one) is not what the toolkit expects.

    The message is one line naming the file, the row and the column at fault, what was
    expected and how to fix it.
    """

    def __init__(self, problem: str, *, path=None, row: int | None = None,
                 column: str | None = None, fix: str | None = None):
        self.path, self.row, self.column, self.problem, self.fix = path, row, column, problem, fix
        where = [str(path) if path is not None else "<data>"]
        if row is not None:
            where.append(f"row {row} (line {row + 1})")
        if column is not None:
            where.append(f"column '{column}'")
        message = ", ".join(where) + ": " + problem
        if fix:
            message += f". Fix: {fix}"
        super().__init__(message)


class DownloadError(RuntimeError):
    """A download could not be completed or verified."""


class UnknownFileError(DownloadError):
    """The user asked for a file the record does not have (a usage error: exit code 2)."""
