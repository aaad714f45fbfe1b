"""Named exceptions. Each carries where it happened (``path:line``) and a remedy.

The library raises these; the CLI turns them into one line plus a remedy, and
never shows a traceback for them.
"""

from __future__ import annotations


class LLMBenchError(Exception):
    """Base class of every error llmbench raises on purpose."""

    remedy: str = ""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, remedy: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        if remedy:
            self.remedy = remedy

    @property
    def where(self) -> str:
        """``path:line``, ``path``, or an empty string."""
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line is not None else str(self.path)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class InputError(LLMBenchError):
    """A file could not be read or parsed (missing, empty, binary, corrupt, ...)."""


class UnrecognisedLogError(InputError):
    """No installed parser recognises the file."""

    remedy = "name the format with --parser NAME (see `llmbench parsers`)"


class UsageError(LLMBenchError):
    """The caller asked for something invalid (unknown parser, bad --set, ...)."""


class UnknownParserError(UsageError):
    """``--parser`` names a parser that is not installed."""


class SettingsError(UsageError):
    """A ``--set`` item, ``--path-pattern`` or settings file is malformed."""


class StoreError(LLMBenchError):
    """The SQLite store cannot be opened, read or written."""


class NoDataError(LLMBenchError):
    """What was asked for needs values that no selected run has (e.g. nothing to plot)."""
