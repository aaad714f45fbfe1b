"""Ingest: read files with the right parser and store them, each file all or nothing.

``parse_file`` reads one file into rows (no store needed); ``ingest`` stores
many files, skipping unchanged ones; ``read_logs`` is the notebook entry point
that returns DataFrames without a store. One broken file never stops the rest.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import parts as partfiles
from . import registry
from .columns import EVENT_COLUMNS, PART_TABLES, RUN_COLUMNS, STEP_COLUMNS
from .distributed import outcomes as dask_outcomes
from .engine import items as engine_items
from .errors import (
    FileWarning,
    InputError,
    LLMBenchError,
    StorageError,
    StoreError,
    TruncatedInput,
    UnrecognisedLogError,
    UsageError,
    storage_error,
)
from .frames import dataframe, run_rows, segment, to_pandas
from .logs import FileResult, Logs
from .mlperf.tree import tree_layer
from .parsing import Batch, NewRun, Note, Parser, Record, Step
from .reader import Line, Source, expand_paths, head, iter_lines
from .rows import Rows
from .settings import Settings, config_beside
from .store import FileRows, Store

HEAD_LINES = 2000
BATCH_FILES = 500  # files per commit, $LLMBENCH_BATCH_FILES (each file all-or-nothing)
BATCH_ROWS = 200_000  # rows held before a commit
BATCH_SECONDS = 1.0  # and at least this often, so progress shows
SCAN_WINDOW = 5000


@dataclass
class ParsedFile:
    """One file read into canonical rows: ``runs`` (dicts) and ``rows`` (the step
    and event rows, spilled to temporary files when there are many: ``discard()``
    deletes them at once, else they go with the object). A file read for a store
    with many rows has them written as pending parts (``parts``) instead."""

    path: str  # absolute path, the key in the store ('<stdin:...>' for stdin)
    display: str  # the path as the user wrote it
    size: int
    mtime: float
    sha256: str
    parser: str
    runs: list[dict]
    rows: Rows
    warnings: list[FileWarning]
    settings_hash: str = ""  # Settings.fingerprint of the file (computed where it was read)
    given: str | None = None  # JSON: the settings and --parser given (``given_json``)
    parts: tuple = ()  # parts.PendingPart per table, when the rows were written as parts

    def frame(self, table: str):
        """The rows of ``table`` ("steps" or "events") as a polars DataFrame."""
        import polars as pl

        if self.parts:
            found = [pl.read_parquet(p.tmp) for p in self.parts if p.table == table]
            return pl.concat(found) if found else self.rows.frame(table).clear()
        return self.rows.frame(table)

    @property
    def steps(self) -> list[dict]:
        """The ``steps`` rows as dicts (all in memory)."""
        return self.frame("steps").to_dicts()

    @property
    def events(self) -> list[dict]:
        """The ``events`` rows as dicts (all in memory)."""
        return self.frame("events").to_dicts()

    @property
    def n_rows(self) -> int:
        return self.rows.n_steps + self.rows.n_events

    def discard(self) -> None:
        """Delete temporary files (spills, pending parts) at once."""
        self.rows.discard()
        for part in self.parts:
            part.discard()


@dataclass
class IngestReport:
    results: list[FileResult]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def parsers(self) -> list[str]:
        return sorted({r.parser for r in self.results if r.parser and r.status == "ingested"})

    @property
    def runs(self) -> int:
        return sum(r.runs for r in self.results if r.status == "ingested")

    @property
    def steps(self) -> int:
        return sum(r.steps for r in self.results if r.status == "ingested")

    @property
    def warnings(self) -> int:
        return sum(len(r.warnings) for r in self.results)

    def summary(self) -> str:
        """One line: files by outcome, parsers, runs, steps, warnings."""
        parts = [
            f"{self.count('ingested')} ingested",
            f"{self.count('unchanged')} unchanged",
            f"{len(self.failed)} failed",
        ]
        if self.count("skipped"):
            parts.append(f"{self.count('skipped')} skipped (no parser recognises them)")
        if self.count("duplicate"):
            parts.append(f"{self.count('duplicate')} duplicate")
        return (
            f"{len(self.results)} file(s): {', '.join(parts)}; "
            f"parsers: {', '.join(self.parsers) or '-'}; "
            f"{self.runs} run(s), {self.steps} step(s), {self.warnings} warning(s)"
        )


def configured_parsers(settings: Settings | None) -> list[Parser]:
    """Parsers the settings file configures (``[generic]``); SettingsError if invalid."""
    if settings is None or not settings.generic:
        return []
    generic = registry.get("generic")
    return [type(generic)(settings.generic)]


def choose_parser(path: str, forced: str | None = None, settings: Settings | None = None) -> Parser:
    """The parser for ``path``: the forced one, or the most confident on the head,
    falling back to a scan of the whole file in windows (logs whose first step
    comes after thousands of setup lines)."""
    return _choose(path, forced, settings)[0]


def _choose(
    path: str, forced: str | None, settings: Settings | None
) -> tuple[Parser, list[Parser]]:
    """(parser, companion parsers of a file that holds a second format)."""
    configured = configured_parsers(settings)
    if forced:
        return next((p for p in configured if p.name == forced), None) or registry.get(forced), []
    lines = [ln.text for ln in head(path, HEAD_LINES)]
    parser, score = registry.detect(lines, configured)
    if parser is not None:
        return parser, registry.companions(lines, parser, configured)
    if len(lines) >= HEAD_LINES:
        window: list[str] = []
        for ln in _Tracked(iter_lines(path)):
            if ln.no <= HEAD_LINES:
                continue
            window.append(ln.text)
            if len(window) >= SCAN_WINDOW:
                parser, score = registry.detect(window, configured)
                if parser is not None:
                    return parser, []
                window = []
        if window:
            parser, score = registry.detect(window, configured)
            if parser is not None:
                return parser, []
    names = ", ".join(registry.available()) or "none"
    raise UnrecognisedLogError(f"no parser recognises this file (tried: {names})", path=path)


ENGINES = ("local", "dask")
BULK_MIN_BYTES = 2 << 20  # smaller files are read line by line (the engine's set-up costs more)
HASH_AHEAD = 32 << 20  # files at least this big are hashed by a thread of their own


class _HashAhead:
    """The sha256 of a file, computed by a thread while the file is parsed."""

    def __init__(self, path: str) -> None:
        self._sha = hashlib.sha256()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True)
        self._thread.start()

    def _run(self, path: str) -> None:
        buf = bytearray(1 << 22)
        try:
            with open(path, "rb", buffering=0) as f, memoryview(buf) as mv:
                while n := f.readinto(mv):
                    self._sha.update(mv[:n])
        except BaseException as e:  # noqa: BLE001 - reported by hexdigest
            self._error = e

    def hexdigest(self) -> str:
        """The hash (waits for the thread); InputError if the file could not be read."""
        self._thread.join()
        if self._error is not None:
            raise InputError(f"cannot read: {self._error}", path=None)
        return self._sha.hexdigest()


class _Tracked:
    """Remembers the last line handed to a parser (for error messages); where a
    compressed file breaks off, the lines before the cut end the input (``cut``)."""

    def __init__(self, lines: Iterator[Line | Batch]) -> None:
        self.lines = lines
        self.last = 0
        self.cut: TruncatedInput | None = None

    def __iter__(self) -> Iterator[Line | Batch]:
        try:
            for ln in self.lines:
                self.last = ln.last if type(ln) is Batch else ln.no
                yield ln
        except TruncatedInput as e:
            self.cut = e

    def note(self) -> list[FileWarning]:
        """The warning of a cut file: what was read of it."""
        if self.cut is None:
            return []
        return [
            FileWarning(
                None,
                "line",
                f"{self.cut.message}: the {self.last} line(s) before the cut were read",
            )
        ]


# settings layers a file's place gives, lowest precedence first: hook(path, cache)
# -> (origin, values) or None; ``cache`` (a dict the hook may fill) lives as long as
# one ingest
LAYER_HOOKS: tuple[Callable[[str, dict | None], tuple[str, dict] | None], ...] = (
    config_beside,
    tree_layer,
)


def file_layers(
    settings: Settings, path: str, cache: dict | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The settings layers of ``path``: the ``LAYER_HOOKS``' then ``settings``'."""
    found = []
    for hook in LAYER_HOOKS:
        layer = hook(path, None if cache is None else cache.setdefault(hook.__qualname__, {}))
        if layer is not None:
            found.append(layer)
    return settings.layers(path, found)


def parse_file(
    path: str,
    *,
    parser: str | None = None,
    settings: Settings | None = None,
    parts_dir: str | None = None,
    bulk: bool | None = None,
    layer_cache: dict | None = None,
) -> ParsedFile:
    """Read one file into canonical rows. Raises InputError (with path:line).

    ``bulk`` (default: for files of ``BULK_MIN_BYTES`` or more, unless
    ``$LLMBENCH_BULK`` is 0) reads the lines of the parser's declared shapes in
    bulk; ``bulk=False`` reads every line with the parser's Python code. Both give
    the same rows.

    With ``parts_dir`` (a store's parts folder), rows that outgrow memory spill
    there and are written as pending parts (``ParsedFile.parts``) for the store
    to publish; without it they spill to the system's temporary folder.
    ``layer_cache``: what ``LAYER_HOOKS`` read (folder facts), kept by the caller
    across the files of one ingest."""
    settings = settings or Settings()
    if path == "-":
        return _parse_stdin(parser=parser, settings=settings, parts_dir=parts_dir)
    try:
        st = os.stat(path)
    except OSError:
        raise InputError("no such file", path=path) from None
    chosen, others = _choose(path, parser, settings)
    tracked, hasher, ahead = _open_lines(path, st.st_size, chosen, others, parts_dir, bulk)
    if parts_dir:
        os.makedirs(parts_dir, exist_ok=True)
    rows = Rows(
        spill_dir=parts_dir,
        parts_dir=parts_dir if ahead else None,
        run_key=ahead.hexdigest if ahead else None,
    )
    segments, notes, chosen = _segments(chosen, others, tracked, rows, path)
    sha = ahead.hexdigest() if ahead else hasher.hexdigest()
    abspath = os.path.abspath(path)
    layers = file_layers(settings, path, layer_cache)
    runs, run_ids, more = run_rows(
        segments,
        run_key=sha,
        source=abspath,
        parser=chosen.name,
        framework=chosen.framework,
        layers=layers,
        model_shape=settings.model_shape,
    )
    written = _finish_rows(rows, run_ids, parts_dir)
    return ParsedFile(
        path=abspath,
        display=path,
        size=st.st_size,
        mtime=st.st_mtime,
        sha256=sha,
        parser=chosen.name,
        runs=runs,
        rows=rows,
        warnings=notes + more,
        settings_hash=settings.fingerprint(path, parser, layers),
        given=given_json(parser, settings),
        parts=written,
    )


def _open_lines(path: str, size: int, chosen: Parser, others: list[Parser], parts_dir, bulk):
    """(the file's items as the parser reads them, its sha256 hasher, or the thread
    that hashes it ahead for a large file going to a store: then its run ids are
    known early and rows can be written as parts while the file is read)."""
    hasher = hashlib.sha256()
    ahead = None
    if parts_dir and size >= HASH_AHEAD:
        ahead, hasher = _HashAhead(path), None
    if others:
        return _Tracked(iter_lines(path, hasher)), hasher, ahead
    if bulk is None and size < BULK_MIN_BYTES:
        bulk = False  # the engine's set-up costs a small file more than it saves
    return _Tracked(engine_items(chosen, path, hasher, bulk)), hasher, ahead


def _segments(chosen: Parser, others: list[Parser], tracked: _Tracked, rows: Rows, path: str):
    """(run segments, notes, the parser whose steps count) of the file; a parser
    bug costs this file only (InputError at the line it was reading)."""
    try:
        if others:
            records, chosen = _read_together(chosen, others, tracked, path)
        else:
            records = chosen.parse(tracked)
        segments, notes = segment(records, rows)
        notes += tracked.note()
    except BaseException as e:
        rows.discard()
        if isinstance(e, LLMBenchError) or not isinstance(e, Exception):
            raise
        fault = storage_error(e, rows.spill_dir or tempfile.gettempdir())
        if fault is not None:  # a spill the disk refused: no fault of the file
            raise fault from e
        raise InputError(
            f"parser {chosen.name} failed: {type(e).__name__}: {e}",
            path=path,
            line=tracked.last or None,
        ) from e
    unread = [w for w in notes if w.kind == "line" and w.line is not None]
    if unread and not any(s.n_steps or s.n_events for s in segments):  # recognised, unread
        rows.discard()
        raise InputError(
            f"recognised as {chosen.framework} ({chosen.name}), but no step could be read: "
            f"{unread[0].message}"
            + (f" (and {len(unread) - 1} more warning(s))" if len(unread) > 1 else ""),
            path=path,
            line=unread[0].line,
            remedy="the log format may have changed: name the parser with --parser, or "
            "report the line",
        )
    if not segments:
        rows.discard()
        raise InputError(
            f"parser {chosen.name} found no steps, events or settings in this file", path=path
        )
    return segments, notes, chosen


def _finish_rows(rows: Rows, run_ids, parts_dir: str | None) -> tuple:
    """Give ``rows`` their run ids; rows that spilled go to pending parts (returned)."""
    written: list = []
    try:
        rows.finish(run_ids)
        if parts_dir and rows.spilled:
            written += rows.release_parts()
            if rows.spills["steps"] or rows.spills["events"]:
                for table in PART_TABLES:  # each part kept as it is written: none leaks
                    part = partfiles.write(rows.lazy(table), parts_dir, table)
                    if part is not None:
                        written.append(part)
    except BaseException:
        for p in written:
            p.discard()
        rows.discard()  # its spills and pending parts: the file is not stored
        raise
    if written:
        rows.discard()  # the spill files, once their rows are in parts
    return tuple(written)


def _read_together(
    chosen: Parser, others: list[Parser], tracked: _Tracked, path: str
) -> tuple[list[Record], Parser]:
    """Records of a file that holds two formats. Steps come from the parser that
    finds the most of them (never from two: no step is counted twice); the
    others add their settings and events. Returns the records in line order and
    the parser whose steps they are."""
    parsers = [chosen, *others]
    outputs = [list(chosen.parse(tracked))]
    outputs += [list(p.parse(_Tracked(iter_lines(path)))) for p in others]
    counts = [sum(isinstance(r, Step) for r in out) for out in outputs]
    lead = counts.index(max(counts))
    merged: list[Record] = list(outputs[lead])
    for i, out in enumerate(outputs):
        if i == lead:
            continue
        merged += [r for r in out if not isinstance(r, Step | NewRun)]
        merged.append(
            Note(
                f"also read by {parsers[i].name}: its settings and events kept"
                + (f", its {counts[i]} step record(s) not counted" if counts[i] else "")
                + f" (steps from {parsers[lead].name})",
                kind="parser",
            )
        )
    merged.sort(key=lambda r: getattr(r, "line_no", None) or 0)
    return merged, parsers[lead]


def _parse_stdin(*, parser: str | None, settings: Settings, parts_dir: str | None) -> ParsedFile:
    """Standard input, copied to a temporary file beside the store (removed on
    every way out) and read as a file."""
    if parts_dir:
        os.makedirs(parts_dir, exist_ok=True)
    name = partfiles.temporary_path(parts_dir or tempfile.gettempdir(), ".llmbench-stdin-", "")
    try:
        with open(name, "xb") as tmp:
            shutil.copyfileobj(sys.stdin.buffer, tmp)
        parsed = parse_file(name, parser=parser, settings=settings, parts_dir=parts_dir)
    except InputError as e:
        raise InputError(e.message, path="<stdin>", line=e.line, remedy=e.remedy) from None
    finally:
        with suppress(FileNotFoundError):
            os.unlink(name)
    name = f"<stdin:{parsed.sha256[:12]}>"
    for row in parsed.runs:
        row["source"] = name
    parsed.path = parsed.display = name
    parsed.settings_hash = settings.fingerprint("-", parser, file_layers(settings, "-"))
    return parsed


def parse_job(
    args: tuple[str, str | None, Settings, str | None], layer_cache: dict | None = None
) -> ParsedFile | LLMBenchError:
    path, parser, settings, parts_dir = args
    try:
        return parse_file(
            path, parser=parser, settings=settings, parts_dir=parts_dir, layer_cache=layer_cache
        )
    except LLMBenchError as e:
        return e
    except Exception as e:  # the disk refused a part or spill: the ingest stops
        fault = storage_error(e, parts_dir or tempfile.gettempdir())
        if fault is None:
            raise
        return fault


def ingest(
    paths: Iterable[str],
    db: str | None = None,
    *,
    parser: str | None = None,
    settings: Settings | None = None,
    workers: int = 1,
    progress: Callable[[FileResult, int], None] | None = None,
    engine: str = "local",
    scheduler: str | None = None,
) -> IngestReport:
    """Parse ``paths`` and store them in the store at ``db``.

    Unchanged files (same size and mtime, or same sha256, under the same
    settings) are skipped; a changed file replaces its old rows atomically.
    ``progress(result, total)`` is called with each file's result as it completes
    (and ``progress.start(paths)`` first, with every path to read, where it has one).
    ``engine``: "local" (``workers`` processes of this machine) or "dask" (the
    cluster at ``scheduler``, else a local cluster of ``workers`` workers).
    """
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r} (engines: {', '.join(ENGINES)})")

    settings = settings or Settings()
    layer_cache: dict = {}  # folder facts (LAYER_HOOKS) read once in this ingest
    if parser:
        registry.get(parser)  # fail fast on an unknown name, before any work
    configured_parsers(settings)  # and on a bad [generic] table
    sources, errors = expand_paths(paths)
    if errors and not sources:  # nothing to read at all: a mistyped path, not a bad file
        raise UsageError(
            "; ".join(str(e) for e in errors[:5])
            + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
            remedy="check the paths (a quoted glob is expanded by llmbench, recursively with **)",
        )
    results = [FileResult(e.path or "?", "failed", error=e) for e in errors]
    total = len(sources) + len(errors)
    if hasattr(progress, "start"):  # a display that also counts bytes
        progress.start([s.path for s in sources] + [e.path or "?" for e in errors])
    for r in results:
        if progress:
            progress(r, total)
    with Store(db) as store:
        store.clean_strays()  # parts a killed ingest left behind
        broken = store.sources_missing_parts()
        todo = _changed(
            store, sources, parser, settings, layer_cache, results, total, progress, broken
        )
        jobs = [(src.path, how, given, store.parts_dir) for src, how, given in todo]
        batch = _Batch(store, results, total, progress, broken)
        close, interrupted = None, True  # until the loop ends: Ctrl-C, or any fault
        try:
            outcomes, close = _run_jobs(jobs, engine, scheduler, workers, layer_cache)
            for (src, _, _), outcome in zip(todo, outcomes, strict=True):
                batch.add(src, outcome)
            batch.flush()
            interrupted = False
        except StorageError as e:
            done = sum(r.status in ("ingested", "unchanged", "duplicate") for r in results)
            raise StorageError(
                f"{e.message} ({done} of {total} file(s) stored before it)",
                path=e.path,
                remedy=e.remedy,
            ) from e
        finally:
            if close is not None:
                close(interrupted)
    return IngestReport(results)


def _changed(store, sources, parser, settings, layer_cache, results, total, progress, broken):
    """(source, parser, settings) to parse: the others, stored as they are, get their
    result now (``broken``: stored files whose rows went with a part: parsed again).
    A file is read with this ingest's settings, or where it gives none, with those
    given with the file before (``given_before``)."""
    todo: list[tuple[Source, str | None, Settings]] = []
    stored = {f["path"]: f for f in store.files([os.path.abspath(s.path) for s in sources])}
    same: list[FileResult] = []
    for src in sources:
        old = stored.get(os.path.abspath(src.path))
        how = given_before(old, parser, settings)
        res = (
            None if old and old["path"] in broken else _check_unchanged(old, src, *how, layer_cache)
        )
        if res is None:
            todo.append((src, *how))
        else:
            same.append(res)
    noted = store.file_warnings([os.path.abspath(r.path) for r in same]) if same else {}
    for res in same:
        res.warnings = noted.get(os.path.abspath(res.path), [])
        results.append(res)
        if progress:
            progress(res, total)
    return todo


def _run_jobs(jobs: list, engine: str, scheduler: str | None, workers: int, layer_cache: dict):
    """(the jobs' outcomes in order, a function ``close(interrupted)`` that releases
    the workers): on a Dask cluster, a pool of ``workers`` processes, or here, one job
    at a time."""
    if engine == "dask" and jobs:
        return dask_outcomes(jobs, parse_job, scheduler, workers)
    if workers > 1 and len(jobs) > 1:
        return _pool_outcomes(jobs, workers)
    return (parse_job(job, layer_cache) for job in jobs), lambda interrupted=False: None


def _pool_outcomes(jobs: list, workers: int):
    """The jobs mapped over ``workers`` spawned processes (not forked: a fork of a
    process whose polars threads are running can deadlock in the child), and the
    function that stops them.

    Ctrl-C is the parent's alone: a terminal sends SIGINT to the whole process group,
    and a worker that got it would print a traceback and could leave the pool's
    shutdown waiting on it. The workers start with SIGINT ignored (an ignored signal
    stays ignored across exec; a handler or a signal mask does not), and on an
    interrupt they are terminated rather than waited for. A Ctrl-C in the few
    milliseconds the workers take to start is held for the parent when it reaches
    the main thread, and lost when it reaches another (polars', the progress bar's)."""
    sigint = _ignore_sigint()
    pool = None
    try:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=watch_parent,
            initargs=(os.getpid(),),
        )
        # chunks of a few files: one future per file costs more than a small file;
        # submitted here, which starts every worker
        futures = [pool.submit(_parse_jobs, jobs[i : i + 4]) for i in range(0, len(jobs), 4)]
    finally:
        try:
            sigint()  # a Ctrl-C that came meanwhile lands here
        except BaseException:
            if pool is not None:
                _stop(pool, interrupted=True)
            raise
    return _drained(futures), partial(_stop, pool)


def _drained(futures: list) -> Iterator:
    """Each future's outcomes in order, each future let go once read (a parsed
    file's rows must not stay in memory until the last file is done)."""
    for i in range(len(futures)):
        future, futures[i] = futures[i], None
        yield from _done(future)


def _done(future) -> list:
    """A future's result, waited for by polling: a Ctrl-C landing inside a
    ``Condition.wait`` (what ``result()`` does) can leave CPython 3.11 raising
    "cannot release un-acquired lock" instead of KeyboardInterrupt; inside a sleep
    it is a plain KeyboardInterrupt."""
    while not future.done():
        time.sleep(0.01)
    return future.result()


def _ignore_sigint() -> Callable[[], None]:
    """Ignore SIGINT until the returned function is called (the main thread blocks
    it meanwhile: one that reaches it is delivered then). Outside the main thread,
    where Python keeps no signal handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def restore() -> None:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    return restore


def _stop(pool: ProcessPoolExecutor, interrupted: bool = False) -> None:
    """Release the workers: after the last job, or at once (``interrupted``)."""
    procs = list((pool._processes or {}).values())  # shutdown() forgets them
    results, manager = pool._result_queue, pool._executor_manager_thread
    # the pool cancels what has not started; a future cancelled from this thread while
    # its worker is being terminated trips the pool's own thread (CPython 3.11)
    pool.shutdown(wait=False, cancel_futures=True)
    if interrupted:
        for proc in procs:
            with suppress(OSError):
                proc.terminate()
        for proc in procs:
            proc.join()
        # a worker terminated while sending its result leaves half a message, which
        # the pool's thread would wait for, and the interpreter's exit on that
        # thread: with every writer closed, it reads end-of-file instead
        with suppress(OSError, AttributeError):
            results._writer.close()
    if manager is not None:  # it joins the workers (shutdown() forgot it too)
        manager.join()


def _parse_jobs(jobs: list) -> list:
    return [parse_job(job) for job in jobs]


def watch_parent(parent: int, every: float = 0.5) -> None:
    """In a worker process: ignore Ctrl-C (the parent stops the pool), and exit as
    soon as ``parent`` is gone. A parent killed with SIGKILL (the OOM killer, a batch
    scheduler) cannot stop its workers, and they would sleep on their job queue for
    ever; a thread polls the parent instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="llmbench-watch-parent", daemon=True).start()


class _Batch:
    """Parsed files waiting for their commit: one transaction per batch (each file
    whole or absent, file by file if the store refuses the batch), written when it
    holds ``BATCH_FILES`` files or ``BATCH_ROWS`` rows, a file already written as
    parts, or is ``BATCH_SECONDS`` old. The write lock is held only here."""

    def __init__(self, store, results: list, total: int, progress, broken=frozenset()) -> None:
        self.store, self.results, self.total, self.progress = store, results, total, progress
        self.broken = broken
        self.files = int(os.environ.get("LLMBENCH_BATCH_FILES") or BATCH_FILES)
        self.pending: list[tuple[Source, Any]] = []
        self.rows, self.since = 0, 0.0

    def add(self, src: Source, outcome: Any) -> None:
        if isinstance(outcome, StorageError):  # the disk is full (or worse): stop here
            self.flush()
            raise outcome
        if not self.pending:
            self.since = time.monotonic()
        self.pending.append((src, outcome))
        parsed = isinstance(outcome, ParsedFile)
        if parsed:
            self.rows += outcome.n_rows
        if (
            len(self.pending) >= self.files
            or self.rows > BATCH_ROWS
            or (parsed and outcome.parts)  # more rows than a batch holds: at once
            or time.monotonic() - self.since > BATCH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        try:
            with self.store.transaction():
                done = _store_batch(self.store, self.pending, self.broken)
        finally:
            for _, o in self.pending:
                if isinstance(o, ParsedFile):
                    o.discard()
            self.pending.clear()
            self.rows = 0
        for res in done:
            self.results.append(res)
            if self.progress:
                self.progress(res, self.total)


def given_json(parser: str | None, settings: Settings) -> str | None:
    """What the user gave to read a file with (``--parser``, settings) as JSON text,
    kept in its ``files`` row; None when nothing was given."""
    if parser is None and not settings.given:
        return None
    return json.dumps({"parser": parser, "settings": settings.as_dict()}, default=str)


def given_before(
    old: dict | None, parser: str | None, settings: Settings
) -> tuple[str | None, Settings]:
    """(parser, settings) to read a file with: what was given with it before (``old``:
    its ``files`` row) with this ingest's on top (``Settings.over``): a plain re-ingest
    never loses what a settings file supplied, and a new ``--set`` adds to it."""
    if old is None or not old.get("settings"):
        return parser, settings
    kept = json.loads(old["settings"])
    before = Settings.from_dict(kept.get("settings") or {})
    return parser or kept.get("parser"), settings.over(before)


def _check_unchanged(
    old: dict | None,
    src: Source,
    parser: str | None,
    settings: Settings,
    layer_cache: dict | None = None,
) -> FileResult | None:
    """The file's result when the store holds it as it is (``old``: its files row),
    else None."""
    if src.path == "-":
        return None
    try:
        st = os.stat(src.path)
    except OSError:
        return None
    if (
        old is not None
        and old["status"] == "ok"
        and old["size"] == st.st_size
        and old["mtime"] == st.st_mtime
        and old["settings_hash"]
        == settings.fingerprint(src.path, parser, file_layers(settings, src.path, layer_cache))
    ):
        return FileResult(src.path, "unchanged", parser=old["parser"])
    return None


def _unreadable(src: Source, error: LLMBenchError) -> FileResult:
    """A file found by a directory walk that no parser knows is skipped; else it failed."""
    skipped = isinstance(error, UnrecognisedLogError) and not src.explicit
    return FileResult(src.path, "skipped" if skipped else "failed", error=error)


def _store_batch(store, pending: list[tuple[Source, Any]], broken=frozenset()) -> list[FileResult]:
    """Store a batch of outcomes (inside the caller's transaction): failures are
    recorded, unchanged content only touched, the rest written together; if that
    fails, file by file, so one bad file costs only itself."""

    results: list[FileResult | None] = [None] * len(pending)
    parsed = [(k, o) for k, (_, o) in enumerate(pending) if isinstance(o, ParsedFile)]
    old = {row["path"]: row for row in store.files([p.path for _, p in parsed])}
    items, where = [], []
    for k, (src, outcome) in enumerate(pending):
        if isinstance(outcome, LLMBenchError):
            results[k] = _failed(store, src, outcome)
        elif outcome.path not in broken and _same(old.get(outcome.path), outcome):
            store.touch(outcome.path, outcome.size, outcome.mtime)
            results[k] = FileResult(src.path, "unchanged", parser=outcome.parser)
        else:
            rows, parts = _rows_or_parts(outcome)
            items.append(FileRows(_file_row(outcome), outcome.runs, rows, parts, outcome.warnings))
            where.append(k)
    for k, twin in zip(where, _replace(store, items), strict=True):
        results[k] = _stored(*pending[k], twin)
    return results  # type: ignore[return-value]


def _same(prev: dict | None, p: ParsedFile) -> bool:
    """Whether the store holds ``p``'s content, read under the same settings."""
    return (
        prev is not None
        and prev["status"] == "ok"
        and prev["sha256"] == p.sha256
        and prev["settings_hash"] == p.settings_hash
    )


def _file_row(p: ParsedFile) -> dict[str, Any]:
    return {
        "path": p.path,
        "size": p.size,
        "mtime": p.mtime,
        "sha256": p.sha256,
        "parser": p.parser,
        "settings_hash": p.settings_hash,  # computed by the worker that read the file
        "settings": p.given,
    }


def _rows_or_parts(p: ParsedFile) -> tuple:
    """(rows to write, parts already written): a file is one or the other."""
    return (None if p.parts else p.rows), p.parts


def _replace(store, items: list) -> list:
    """Each item's outcome: None (stored), a twin's path, or the StoreError that
    refused it (the batch together, else file by file)."""
    try:
        return store.replace_files(items)
    except StorageError:
        raise  # the disk, not a file: no use trying them one by one
    except StoreError:
        twins: list[Any] = []
        for item in items:
            try:
                twins.append(store.replace_file(item))
            except StoreError as e:
                twins.append(e)
        return twins


def _stored(src: Source, p: ParsedFile, twin: Any) -> FileResult:
    if isinstance(twin, StoreError):
        return FileResult(
            src.path, "failed", parser=p.parser, error=StoreError(twin.message, path=src.path)
        )
    if twin is not None:
        warning = FileWarning(None, "duplicate", f"same content as {twin}: not stored twice")
        return FileResult(src.path, "duplicate", parser=p.parser, warnings=[warning])
    return FileResult(src.path, "ingested", p.parser, len(p.runs), p.rows.n_steps, p.warnings)


def _failed(store, src: Source, error: LLMBenchError) -> FileResult:
    result = _unreadable(src, error)
    if result.status == "skipped" or src.path == "-":
        return result
    try:
        st = os.stat(src.path)
    except OSError:
        return result
    store.mark_failed(
        {"path": os.path.abspath(src.path), "size": st.st_size, "mtime": st.st_mtime},
        str(error),
    )
    return result


def read_logs(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    settings: dict[str, Any] | Settings | None = None,
    parser: str | None = None,
    *,
    path_pattern: str | None = None,
    settings_file: str | None = None,
) -> Logs:
    """Read logs into ``.runs``, ``.steps``, ``.events`` DataFrames (no store).

    ``settings`` is a dict of values a log lacks (like ``--set``), or a Settings.
    A path that does not exist (or a glob that matches nothing) raises InputError;
    files that cannot be read are listed in ``.results`` and ``.warnings``.
    """
    import polars as pl

    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if not isinstance(settings, Settings):
        settings = Settings.build(
            values=settings, path_pattern=path_pattern, settings_file=settings_file
        )
    if parser:
        registry.get(parser)
    configured_parsers(settings)
    sources, errors = expand_paths(str(p) for p in paths)
    if errors:  # a path that does not exist: raised, as pandas.read_csv raises
        raise errors[0]
    results: list[FileResult] = []
    runs: list[dict] = []
    frames: dict[str, list] = {"steps": [], "events": []}
    for src in sources:
        outcome = parse_job((src.path, parser, settings, None))
        if isinstance(outcome, LLMBenchError):
            results.append(_unreadable(src, outcome))
            continue
        runs += outcome.runs
        for table, got in frames.items():
            got.append(outcome.frame(table))
        outcome.discard()
        results.append(
            FileResult(
                src.path,
                "ingested",
                outcome.parser,
                len(outcome.runs),
                outcome.rows.n_steps,
                outcome.warnings,
            )
        )
    tables = {}
    for (table, got), columns in zip(frames.items(), (STEP_COLUMNS, EVENT_COLUMNS), strict=True):
        tables[table] = (
            to_pandas(pl.concat(got, how="vertical"), columns) if got else dataframe([], columns)
        )
    return Logs(
        runs=dataframe(runs, RUN_COLUMNS),
        steps=tables["steps"],
        events=tables["events"],
        results=results,
    )
