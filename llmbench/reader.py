"""Reader: turn paths into clean, numbered text lines, streaming.

Paths, directories (recursive), globs and ``-`` (stdin) are expanded here.
Files are opened as bytes; gzip, bzip2 and xz are recognised by their magic
bytes; text is decoded as UTF-8 with replacement characters (never an error);
ANSI colour codes are removed; a ``\\r``-overwritten progress line (tqdm) gives
one Line per non-blank segment, all with its physical line number; launcher prefixes (``0: ``, ``[1,0]<stdout>:``,
``[default0]:``, ``[rank0]:``, ``host12: ``) are removed, keeping the rank where
the prefix gives one. Line numbers are the physical line numbers of the
decompressed file, starting at 1. Memory does not grow with the file size.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import IO, NamedTuple

from .errors import InputError, TruncatedInput

CHUNK_SIZE = 1 << 20
MAX_LINE = 16 << 20  # a longer line is cut to this many bytes: memory stays bounded
# What a directory walk picks up (a file named on the command line is always read).
LOG_SUFFIXES = (".log", ".out", ".txt", ".err", ".md")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")

_MAGIC = (
    (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f), "gzip"),
    (b"BZh", bz2.BZ2File, "bzip2"),
    (b"\xfd7zXZ\x00", lzma.LZMAFile, "xz"),
)
_DECOMPRESS_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)

ANSI_PATTERN = r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]"  # read alike by polars
_ANSI_RE = re.compile(ANSI_PATTERN)
# launcher prefixes, as Python's re and polars' regex both read them (the bulk engine
# strips them too): torchrun --tee / --local-ranks-filter, mpirun --tag-output,
# srun --label, pdsh / clush '<host>: '
PREFIX_PATTERN = (
    r"^(?:[ \t]*\[(?:default|rank)(?P<r1>[0-9]{1,7})\]:"
    r"|\[[0-9]+,(?P<r2>[0-9]{1,7})\]<std(?:out|err)>:[ ]?"
    r"|[ \t]*(?P<r3>[0-9]{1,7}):(?:[ \t]|$)"
    r"|[a-z][a-z0-9-]*[0-9][a-z0-9.-]*:[ \t])"
)
_PREFIX_RE = re.compile(PREFIX_PATTERN)


class Line(NamedTuple):
    """One cleaned line: physical line number (1-based), text, rank from the prefix."""

    no: int
    text: str
    rank: int | None = None


class CheckedLine(Line):
    """A line of a declared shape that the bulk engine already found to be no copy
    of another rank's (``parsing.FieldShape``)."""

    __slots__ = ()


def clean(text: str) -> tuple[str, int | None]:
    """Strip a line of ANSI codes, ``\\r`` overwrites (the last segment stays) and
    launcher prefixes."""
    return segments(text)[-1] if "\r" in text else _strip(text)


def segments(text: str) -> list[tuple[str, int | None]]:
    """Every state of a ``\\r``-overwritten line, cleaned; the rank of the launcher
    prefix (printed once, before the first segment) applies to them all."""
    parts = [p for p in text.split("\r") if p.strip()] or [""]
    out = [_strip(p) for p in parts]
    rank = out[0][1]
    return [(t, r if r is not None else rank) for t, r in out]


def _strip(text: str) -> tuple[str, int | None]:
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    rank = None
    for _ in range(3):
        m = _PREFIX_RE.match(text)
        if m is None:
            break
        r = m.group("r1") or m.group("r2") or m.group("r3")
        if r is not None:
            rank = int(r)
        text = text[m.end() :]
    return text, rank


def bytes_read() -> int:
    """Bytes of files (as stored: compressed ones compressed) this process has read
    so far: a progress display polls it while a large file is read."""
    return _HashingReader.total


class _HashingReader:
    """A read-only file wrapper that feeds every byte read to a hash."""

    total = 0  # every reader of this process (``bytes_read``)

    def __init__(self, raw: IO[bytes], hasher) -> None:
        self._raw = raw
        self._hasher = hasher

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if self._hasher is not None and data:
            self._hasher.update(data)
        _HashingReader.total += len(data)
        return data

    def readinto(self, b) -> int:
        n = self._raw.readinto(b)
        if self._hasher is not None and n:
            self._hasher.update(b[:n])
        _HashingReader.total += n or 0
        return n

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def drain(self) -> None:
        while self.read(CHUNK_SIZE):
            pass

    def close(self) -> None:
        self._raw.close()


def _open(path: str, hasher=None) -> tuple[IO[bytes], _HashingReader, str | None]:
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except IsADirectoryError:
        raise InputError("is a directory", path=path) from None
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror or e}", path=path) from None
    magic = raw.read(6)
    raw.seek(0)
    wrapper = _HashingReader(raw, hasher)
    for sig, cls, name in _MAGIC:
        if magic.startswith(sig):
            return cls(wrapper), wrapper, name
    return wrapper, wrapper, None  # type: ignore[return-value]


def _starts(block: bytes, keys: tuple[bytes, ...]) -> list[int]:
    """Offsets of the lines of ``block`` that hold any of ``keys`` (C-speed scans)."""
    found: set[int] = set()
    for key in keys:
        i = block.find(key)
        while i >= 0:
            found.add(block.rfind(b"\n", 0, i) + 1)
            end = block.find(b"\n", i)
            if end < 0:
                break
            i = block.find(key, end)
    return sorted(found)


def _read_into(stream, view: memoryview, compression: str | None) -> int:
    """Bytes read into ``view``. A compressed stream is read one decompression step at
    a time (``read1``): where its data breaks off, the bytes decoded before the break
    have been handed out already, not lost in a read that fills the whole buffer."""
    if compression is None:
        return stream.readinto(view)
    data = stream.read1(len(view))
    view[: len(data)] = data
    return len(data)


def _read_chunk(stream, view: memoryview, compression: str | None, path: str, first: bool):
    """(bytes read into ``view``, why a compressed stream broke off or None): InputError
    when not even the first bytes are readable."""
    try:
        return _read_into(stream, view, compression), None
    except _DECOMPRESS_ERRORS as e:
        if first:  # nothing readable at all
            raise InputError(
                f"corrupt or truncated {compression or 'file'} data ({e})", path=path
            ) from None
        return 0, f"{compression or 'file'} data ends early or breaks off ({e})"


def _check_head(head: bytes | bytearray, n: int, path: str) -> None:
    """InputError for an empty or binary file (``head``: its first bytes)."""
    if not n:
        raise InputError("empty file", path=path)
    if b"\x00" in head:
        raise InputError(
            "binary file (NUL bytes), not a text log",
            path=path,
            remedy="pass text logs (.log/.out/.txt, optionally .gz/.bz2/.xz)",
        )


def blocks(path: str, hasher=None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The raw bytes of ``path`` (decompressed) in blocks of whole lines, each
    without its last newline (so a block of k newlines holds k + 1 lines). A line
    longer than ``MAX_LINE`` bytes is cut to its first ``MAX_LINE`` bytes;
    ``hasher`` (e.g. sha256) sees every raw byte of the file. One buffer is read
    into again and again (no new memory per block but the block itself).

    Raises InputError for a missing, empty, binary or corrupt file, and
    TruncatedInput after the last block when compressed data breaks off later (the
    lines before the cut are yielded: the readable prefix of a cut ``.gz``)."""
    stream, wrapper, compression = _open(path, hasher)
    if compression is None:  # a small file needs no big buffer
        with suppress(OSError):
            chunk_size = max(1, min(chunk_size, os.fstat(wrapper.fileno()).st_size + 1))
    buf = bytearray(chunk_size)
    filled = 0  # buf[:filled]: the start of a line not yet complete
    first = True
    overlong = False  # the pending line was cut at MAX_LINE: skip to its end
    broke = None  # why a compressed stream broke off after some data
    try:
        while True:
            if len(buf) < filled + chunk_size:
                buf.extend(bytes(filled + chunk_size - len(buf)))
            with memoryview(buf) as mv:
                n, broke = _read_chunk(
                    stream, mv[filled : filled + chunk_size], compression, path, first
                )
            if first:
                first = False
                _check_head(buf[: min(n, 8192)], n, path)
            if not n:
                break
            end = filled + n
            if overlong:
                nl = buf.find(b"\n", filled, end)
                if nl < 0:
                    continue  # still inside the cut line
                del buf[filled:nl]
                end -= nl - filled
                overlong = False
            cut = buf.rfind(b"\n", 0, end)
            if cut < 0:
                filled, overlong = (MAX_LINE, True) if end > MAX_LINE else (end, False)
                continue
            with memoryview(buf) as mv:
                block = bytes(mv[:cut])
                rest = end - cut - 1
                mv[:rest] = mv[cut + 1 : end]
            yield block
            filled = rest
        if filled:
            yield bytes(buf[:filled])
        wrapper.drain()
        if broke is not None:
            raise TruncatedInput(broke, path=path)
    finally:
        stream.close()
        wrapper.close()


def block_lines(block: bytes, no: int, keys: tuple[bytes, ...] | None = None) -> Iterator[Line]:
    """The cleaned lines of one block (``blocks``), numbered from ``no + 1``; with
    ``keys``, only those holding one of them (found by bytes scans, not line by line)."""
    if keys is None:
        for raw_line in block.decode("utf-8", "replace").split("\n"):
            no += 1
            if "\r" in raw_line:
                for text, rank in segments(raw_line):
                    yield Line(no, text, rank)
            else:
                text, rank = _strip(raw_line)
                yield Line(no, text, rank)
        return
    pos = 0
    for start in _starts(block, keys):
        no += block.count(b"\n", pos, start)
        pos = start
        end = block.find(b"\n", start)
        raw_line = block[start : end if end >= 0 else len(block)].decode("utf-8", "replace")
        if "\r" in raw_line:
            for text, rank in segments(raw_line):
                yield Line(no + 1, text, rank)
        else:
            text, rank = _strip(raw_line)
            yield Line(no + 1, text, rank)


def iter_lines(
    path: str,
    hasher=None,
    chunk_size: int = CHUNK_SIZE,
    needles: tuple[str, ...] | None = None,
) -> Iterator[Line]:
    """Yield the cleaned lines of ``path``; ``hasher`` (e.g. sha256) sees the raw bytes.

    With ``needles``, only lines that contain one of them (as bytes, before any
    cleaning) are decoded and yielded, with their physical line numbers: the other
    lines are skipped by scanning whole blocks, not line by line.

    Raises InputError for a missing, empty, binary or corrupt file. A line longer
    than ``MAX_LINE`` bytes is cut to its first ``MAX_LINE`` bytes.
    """
    keys = tuple(n.encode() for n in needles) if needles else None
    no = 0
    for block in blocks(path, hasher, chunk_size):
        yield from block_lines(block, no, keys)
        no += block.count(b"\n") + 1


def head(path: str, n: int = 2000) -> list[Line]:
    """The first ``n`` cleaned lines of ``path`` (for detection)."""
    out: list[Line] = []
    with suppress(TruncatedInput):  # a cut compressed file: its readable head
        for line in iter_lines(path):
            out.append(line)
            if len(out) >= n:
                break
    return out


def _looks_like_log(name: str) -> bool:
    low = name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if low.endswith(suffix):
            low = low[: -len(suffix)]
            break
    return low.endswith(LOG_SUFFIXES)


class Source(NamedTuple):
    """A file to read; ``explicit`` when the user named it (not found by a walk)."""

    path: str
    explicit: bool


def expand_paths(paths: Iterable[str]) -> tuple[list[Source], list[InputError]]:
    """Expand files, directories (recursively), globs and ``-`` into sources.

    Returns the sources in a stable order (no duplicates) and one InputError per
    argument that matched nothing.
    """
    seen: dict[str, int] = {}
    out: list[Source] = []
    errors: list[InputError] = []

    def add(p: str, explicit: bool) -> None:
        key = p if p == "-" else os.path.normpath(os.path.abspath(p))
        if key not in seen:
            seen[key] = len(out)
            out.append(Source(p, explicit))
        elif explicit and not out[seen[key]].explicit:
            out[seen[key]] = Source(out[seen[key]].path, True)  # named: its failure counts

    for arg in paths:
        arg = str(arg)
        if arg == "-":
            add("-", True)
            continue
        if os.path.isdir(arg):
            found = [
                os.path.join(d, f)
                for d, dirs, files in os.walk(arg)
                for f in files
                if not f.startswith(".") and _looks_like_log(f)
            ]
            if not found:
                errors.append(
                    InputError(
                        "directory holds no log files "
                        f"({', '.join(LOG_SUFFIXES)}, optionally compressed)",
                        path=arg,
                    )
                )
            for f in sorted(found):
                add(f, False)
        elif os.path.exists(arg):
            add(arg, True)
        elif glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                errors.append(InputError("pattern matches no file", path=arg))
            for m in matches:
                if os.path.isdir(m):
                    sub, errs = expand_paths([m])
                    for s in sub:
                        add(s.path, False)
                    errors.extend(errs)
                else:
                    add(m, True)
        else:
            errors.append(InputError("no such file or directory", path=arg))
    return out, errors
