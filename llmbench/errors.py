"""Named exceptions. Each carries where it happened (``path:line``) and a remedy.

The library raises these; the CLI turns them into one line plus a remedy, and
never shows a traceback for them.
"""

from __future__ import annotations

from typing import NamedTuple


class FileWarning(NamedTuple):
    """A problem in an input file that did not stop its reading (never fatal).

    ``line``: 1-based line number, None for the file as a whole; ``kind``: one of
    ``WARNING_KINDS``; ``message``: what was seen and what was done about it."""

    line: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


#: the kinds of FileWarning, and what each means (``llmbench warnings --help``)
WARNING_KINDS = {
    "value": "a value that is not a finite, positive or 64-bit number: stored as missing",
    "line": "a line cut off, malformed or interleaved with another: skipped",
    "repeated": "lines printed again (other ranks): read once",
    "segment": "a restart or a new run inside the file: a new run segment",
    "setting": "a setting whose value does not fit its column: ignored",
    "format": "the log's layout is not the one its parser expects",
    "parser": "how the file was read (several parsers, a slow pattern)",
    "duplicate": "the same content as a file already stored: not stored twice",
    "input": "anything else a parser noticed",
}


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


class TruncatedInput(InputError):
    """A compressed file's data ends early or breaks off: everything before the cut was
    read (raised after the last line before it)."""


class UnrecognisedLogError(InputError):
    """No installed parser recognises the file."""

    remedy = "name the format with --parser NAME (see `llmbench parsers`)"


class UsageError(LLMBenchError):
    """The caller asked for something invalid (unknown parser, bad --set, ...)."""


class UnknownParserError(UsageError):
    """``--parser`` names a parser that is not installed."""


class NoMatchError(UsageError):
    """A selection (run ids, source globs) matches no stored run."""


class SettingsError(UsageError):
    """A ``--set`` item, ``--path-pattern`` or settings file is malformed."""


class StoreError(LLMBenchError):
    """The SQLite store cannot be opened, read or written."""


class NoDataError(LLMBenchError):
    """What was asked for needs values that no selected run has (e.g. nothing to plot)."""


class StorageError(StoreError):
    """The disk refused a write (full, read-only, an I/O error, ...): the command
    stops; what was stored before stays, and running it again completes the rest."""


# errno -> (what happened, what to do); ``{where}`` is the folder written to
_FAULTS = {
    "ENOSPC": (
        "no space left on the device",
        "free space on {where} and run the same command again",
    ),
    "EDQUOT": ("disk quota exceeded", "free space in your quota on {where} and run it again"),
    "EROFS": (
        "the file system is read-only",
        "write the store elsewhere (--db), or remount {where}",
    ),
    "EACCES": ("permission denied", "check who may write {where}, or write elsewhere (--db)"),
    "EPERM": ("operation not permitted", "check who may write {where}, or write elsewhere (--db)"),
    "EIO": ("input/output error", "check the disk (dmesg), then run the same command again"),
    "ENOENT": ("the folder is gone", "check that {where} still exists, then run it again"),
}
# how SQLite and polars (Rust: "os error N") say the same
_TEXTS = {
    "database or disk is full": "ENOSPC",
    "readonly database": "EROFS",
    "disk i/o error": "EIO",
    "no space left on device": "ENOSPC",
    "read-only file system": "EROFS",
    "quota exceeded": "EDQUOT",
    "input/output error": "EIO",
    "permission denied": "EACCES",
}


def storage_error(e: BaseException, where: str) -> StorageError | None:
    """``e`` as a StorageError naming ``where`` (the folder or file written), when
    it is a refusal of the disk (an OSError, or SQLite's or polars' word for one);
    None for anything else."""
    import errno as errnos

    if isinstance(e, StorageError):
        return e
    name = errnos.errorcode.get(e.errno, "") if isinstance(e, OSError) and e.errno else ""
    # words only from the libraries that write for us: a parser's ValueError quoting a
    # log line ("No space left on device") is no fault of this disk
    speaks = type(e).__module__.split(".")[0] in ("sqlite3", "polars", "pyarrow")
    if name not in _FAULTS and speaks:
        text = str(e).lower()
        name = next((code for words, code in _TEXTS.items() if words in text), "")
        if not name and "os error" in text:
            for code in _FAULTS:
                if f"(os error {getattr(errnos, code)})" in text:
                    name = code
    if name not in _FAULTS or (name == "ENOENT" and not isinstance(e, OSError)):
        return None
    if name == "EIO" and _full(where):  # SQLite says "disk I/O error" for a full disk too
        name = "ENOSPC"
    what, remedy = _FAULTS[name]
    return StorageError(what, path=where, remedy=remedy.format(where=where))


def _full(where: str) -> bool:
    """Whether the file system holding ``where`` has (almost) no space left."""
    import os

    folder = where
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        st = os.statvfs(folder or ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024
