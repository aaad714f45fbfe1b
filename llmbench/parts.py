"""Parquet parts: the immutable files that hold a store's steps and events.

A store ``llmbench.db`` keeps its parts in ``llmbench.db.parts/``. A part is
written under a temporary name (``.tmp-<host>-<pid>-<id>.parquet``, in the same
folder, so a rename publishes it), fsynced, and renamed to ``<id>.<table>.parquet``
by the process that commits the catalog row listing it, inside that transaction:
a final-named file that no catalog row lists was left by a crash between the
rename and the commit, and is removed by the next writer (under the write lock).
A temporary file of a process that is gone is removed too. Parts are never
changed once written; replaced ones are deleted after the commit that drops them.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import uuid
from contextlib import suppress
from typing import Any, NamedTuple

SUFFIX = ".parquet"
TMP_PREFIX = ".tmp-"
STALE_SECONDS = 24 * 3600  # a temporary part this old is abandoned, whoever wrote it
_HOST = socket.gethostname().replace("-", "_")


class PendingPart(NamedTuple):
    """A part written under a temporary name, not yet published: ``spans`` gives
    each run's rows in it, (first row, rows): a run's rows are contiguous."""

    tmp: str
    table: str
    rows: int
    spans: dict[str, tuple[int, int]]

    def discard(self) -> None:
        with suppress(OSError):
            os.unlink(self.tmp)


def directory(db_path: str) -> str:
    """The parts folder of the store at ``db_path``."""
    return os.path.abspath(db_path) + ".parts"


# the other temporary files a writer keeps beside the store: spilled rows, stdin
SCRATCH_PREFIXES = (".llmbench-spill-", ".llmbench-stdin-")


def temporary_path(folder: str, prefix: str = TMP_PREFIX, suffix: str = SUFFIX) -> str:
    """A new temporary file name in ``folder`` that says who writes it (host and
    process: the next writer removes it once that process is gone)."""
    return os.path.join(folder, f"{prefix}{_HOST}-{os.getpid()}-{uuid.uuid4().hex}{suffix}")


def final_name(table: str) -> str:
    """A new part's name: its time first, so that names sort in the order parts were
    written (a file's parts, read in name order, give its rows in order)."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.{table}{SUFFIX}"


def fsync(path: str) -> None:
    """Flush ``path`` (a file or a folder) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(data: Any, folder: str, table: str) -> PendingPart | None:
    """Write ``data`` (a polars DataFrame or LazyFrame in ``table``'s columns, run ids
    filled in) as a temporary part in ``folder``, fsynced; None when it has no rows.
    A LazyFrame is written streaming (bounded memory)."""
    import polars as pl

    os.makedirs(folder, exist_ok=True)
    tmp = temporary_path(folder)
    if isinstance(data, pl.DataFrame) and not data.height:
        return None
    try:
        # a run's rows together, in the order they came (the sorts are stable)
        if isinstance(data, pl.DataFrame):  # in memory: written as it is
            data = data.sort("run_id", maintain_order=True)
            data.write_parquet(tmp, compression="zstd", statistics=True)
            ids = data["run_id"]
        else:  # streamed from spill files: bounded memory
            data.sort("run_id", maintain_order=True).sink_parquet(
                tmp, compression="zstd", statistics=True
            )
            ids = pl.read_parquet(tmp, columns=["run_id"])["run_id"]
        runs = ids.rle()
        firsts = [0, *itertools.accumulate(runs.struct.field("len").to_list())]
        spans = {
            r: (int(a), int(n))
            for r, a, n in zip(
                runs.struct.field("value").to_list(),
                firsts,
                runs.struct.field("len").to_list(),
                strict=False,
            )
        }
        rows = len(ids)
        if not rows:
            os.unlink(tmp)
            return None
        fsync(tmp)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    return PendingPart(tmp, table, rows, spans)


def publish(part: PendingPart, folder: str) -> str:
    """Rename a pending part to its final name (call it inside the catalog
    transaction that lists it, which fsyncs the folder before it commits);
    returns that name."""
    name = final_name(part.table)
    os.replace(part.tmp, os.path.join(folder, name))
    return name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def strays(folder: str, listed: set[str]) -> tuple[list[str], list[str]]:
    """(final-named files no catalog row lists, temporary files whose writer is gone
    or that are older than ``STALE_SECONDS``) in ``folder``: names, not paths. Only
    meaningful under the store's write lock."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return [], []
    unlisted, abandoned = [], []
    now = time.time()
    for name in names:
        prefix = next((p for p in (TMP_PREFIX, *SCRATCH_PREFIXES) if name.startswith(p)), None)
        if prefix is None and not name.endswith(SUFFIX):
            continue
        if prefix is not None:
            host, _, rest = name[len(prefix) :].partition("-")
            pid = rest.partition("-")[0]
            try:
                age = now - os.stat(os.path.join(folder, name)).st_mtime
            except OSError:
                continue
            gone = host == _HOST and pid.isdigit() and not _alive(int(pid))
            if gone or age > STALE_SECONDS:
                abandoned.append(name)
        elif name not in listed:
            unlisted.append(name)
    return unlisted, abandoned


def remove(folder: str, names: list[str]) -> None:
    for name in names:
        with suppress(OSError):
            os.unlink(os.path.join(folder, name))
