"""Rows: one file's steps and events as columns, in memory or spilled to disk.

Parser records become row lists in column order (``step_row``, ``event_row``);
the bulk engine hands over polars DataFrames in the same columns. A ``Rows``
holds both, with the run segment's index in ``run_id`` until ``finish`` gives
the run ids; past ``spill_rows`` rows its frames go to Arrow IPC files in
``spill_dir`` (beside the store during an ingest), so memory stays bounded
whatever the size of the file. JSON text (``extra``, event values) is written
one way everywhere: keys sorted, no blanks, numbers as printed where the parser
kept them (``parsing.RawJSON``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import weakref
from contextlib import suppress
from typing import Any

from . import parts as partfiles
from .columns import EVENT_COLUMNS, STEP_COLUMNS, polars_schema
from .errors import FileWarning
from .parsing import Event, RawJSON, Step

# step and event rows of a file held in memory before they go to a spill file
SPILL_ROWS = 50_000  # rows a file holds in memory before spilling ($LLMBENCH_SPILL_ROWS)
INT64 = (-(2**63), 2**63 - 1)

COLUMNS = {"steps": STEP_COLUMNS, "events": EVENT_COLUMNS}
_STEP_INDEX = {k: i for i, k in enumerate(STEP_COLUMNS)}
# value columns a Step's values may fill, and whether each holds integers / text
_STEP_VALUES = {
    k: i for k, i in _STEP_INDEX.items() if k not in ("run_id", "step", "line_no", "rank", "extra")
}
_INT_COLUMNS = frozenset(i for k, i in _STEP_VALUES.items() if STEP_COLUMNS[k] == "INTEGER")
_TEXT_COLUMNS = frozenset(i for k, i in _STEP_VALUES.items() if STEP_COLUMNS[k] == "TEXT")
_I_STEP, _I_TIME, _I_RANK, _I_LINE, _I_EXTRA = (
    _STEP_INDEX[k] for k in ("step", "step_time_s", "rank", "line_no", "extra")
)


# -- JSON text ----------------------------------------------------------------


def to_json(value: Any) -> str:
    """JSON text: keys sorted, no blanks, non-ASCII kept, ``RawJSON`` as printed,
    NaN and infinities null (JSON has none)."""
    t = type(value)
    if t is RawJSON:
        return str(value)
    if t is dict or isinstance(value, dict):
        items = sorted((str(k), v) for k, v in value.items())
        return "{" + ",".join(f"{_string(k)}:{to_json(v)}" for k, v in items) + "}"
    if t is list or t is tuple or isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if t is float:
        return repr(value) if math.isfinite(value) else "null"
    if t is str or isinstance(value, str):
        return _string(value)
    if value is None or t is bool or t is int:
        return json.dumps(value)
    return _string(str(value))


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def from_json(text: str | None) -> Any:
    """Read JSON text written by ``to_json``; number literals stay ``RawJSON``, so
    writing the value again gives the same text."""
    if not text:
        return None
    return json.loads(text, parse_float=RawJSON, parse_int=RawJSON)


# -- rows ---------------------------------------------------------------------


def _finite(name: str, v: Any, line_no: Any, notes: list[FileWarning]) -> bool:
    """False (and a note) for a value a typed column cannot hold: NaN, an infinity,
    an integer beyond 64 bits."""
    t = type(v)
    if t is float and v - v != 0.0:  # NaN or an infinity (v - v is NaN)
        notes.append(
            FileWarning(line_no, "value", f"{name} {v} is not a finite number: stored as missing")
        )
        return False
    if t is int and not INT64[0] <= v <= INT64[1]:
        notes.append(
            FileWarning(line_no, "value", f"{name} {v} does not fit 64 bits: stored as missing")
        )
        return False
    return True


def _cell(i: int, v: Any) -> Any:
    """``v`` as column ``i`` holds it, or ``_NO`` when that column cannot (it then
    goes to ``extra``)."""
    t = type(v)
    if i in _TEXT_COLUMNS:
        return v if t is str else _NO
    if t is int:
        return v if INT64[0] <= v <= INT64[1] else _NO
    if t is float:
        if v - v != 0.0:
            return _NO
        if i in _INT_COLUMNS:
            return int(v) if v.is_integer() and INT64[0] <= v <= INT64[1] else _NO
        return v
    if t is RawJSON:
        return _cell(i, json.loads(v))
    return _NO


_NO = object()


def step_row(s: Step, seg: int, notes: list[FileWarning]) -> list:
    """A ``steps`` row (``STEP_COLUMNS`` order; run id = ``seg`` for now). Fields
    without a column, or whose value the column cannot hold, go to ``extra`` (JSON);
    a NaN or infinite value is noted and kept there as text."""
    row: list[Any] = [None] * len(STEP_COLUMNS)
    row[0] = seg
    row[_I_LINE], row[_I_RANK] = s.line_no, s.rank
    row[_I_STEP] = s.step if _finite("step", s.step, s.line_no, notes) else None
    extra: dict[str, Any] = {}
    for k, v in s.values.items():
        i = _STEP_VALUES.get(k)
        if i is None:
            extra[k] = v
            continue
        if v is None:
            continue
        if i == _I_TIME:
            t = float(v) if type(v) is RawJSON else v
            if not (type(t) in (int, float) and t > 0 and math.isfinite(t)):
                notes.append(
                    FileWarning(
                        s.line_no, "value", f"step time {v!r} is not a positive number: dropped"
                    )
                )
                continue
        cell = _cell(i, v)
        if cell is not _NO:
            row[i] = cell
        elif type(v) is float and v - v != 0.0:
            notes.append(
                FileWarning(
                    s.line_no, "value", f"{k} {v} is not a finite number: stored as missing"
                )
            )
            extra[k] = str(v)
        elif type(v) is int:
            notes.append(
                FileWarning(s.line_no, "value", f"{k} {v} does not fit 64 bits: stored as missing")
            )
        else:
            extra[k] = v
    if extra:
        row[_I_EXTRA] = to_json(extra)
    return row


def event_row(e: Event, seg: int, notes: list[FileWarning]) -> list:
    """An ``events`` row (``EVENT_COLUMNS`` order; run id = ``seg`` for now)."""
    time_ms = e.time_ms if _finite("time_ms", e.time_ms, e.line_no, notes) else None
    if type(time_ms) is int:
        time_ms = float(time_ms)
    step = e.step if _finite("step", e.step, e.line_no, notes) else None
    kind = e.event_type if e.event_type is None or type(e.event_type) is str else str(e.event_type)
    return [
        seg,
        time_ms,
        kind,
        e.key,
        to_json(e.value),
        to_json(e.metadata) if e.metadata else None,
        step,
        e.line_no,
    ]


def step_values(row: dict[str, Any]) -> dict[str, Any]:
    """A steps row (dict) back to the values of a ``Step`` (``extra`` spread out),
    so that ``step_row`` gives the same row again."""
    values = {
        k: v
        for k, v in row.items()
        if k in _STEP_VALUES and v is not None and not (type(v) is float and math.isnan(v))
    }
    extra = from_json(row.get("extra"))
    if isinstance(extra, dict):
        for k, v in extra.items():
            values.setdefault(k, v)
    return values


# -- the row sink ---------------------------------------------------------------


def _frame(rows: list[list], table: str, run_ids: bool = False):
    """Row lists as a polars DataFrame of ``table``: run id = the segment index, or
    the run id itself with ``run_ids``."""
    import polars as pl

    schema = polars_schema(COLUMNS[table])
    if not run_ids:
        schema["run_id"] = pl.Int64
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pl.DataFrame(
        {
            name: pl.Series(name, col, dtype=dt)
            for (name, dt), col in zip(schema.items(), cols, strict=True)
        }
    )


def id_frame(rows: list[list], table: str):
    """Row lists with their run ids as a polars DataFrame of ``table``."""
    return _frame(rows, table, run_ids=True)


def conform(frame, table: str, seg: int | None = None):
    """``frame`` in exactly the columns and types of ``table`` (missing columns null);
    ``seg`` fills ``run_id`` with a segment index."""
    import polars as pl

    schema = polars_schema(COLUMNS[table])
    schema["run_id"] = pl.Int64
    have = set(frame.columns)
    exprs = []
    for name, dt in schema.items():
        if name == "run_id" and seg is not None:
            exprs.append(pl.lit(seg, dtype=pl.Int64).alias(name))
        elif name in have:
            exprs.append(pl.col(name).cast(dt))
        else:
            exprs.append(pl.lit(None, dtype=dt).alias(name))
    return frame.select(exprs)


def run_id(run_key: str, segment: int) -> str:
    """The run id of a file's run segment: its content hash's first 12 hex digits,
    ``-k`` for the k-th later segment."""
    return run_key[:12] if segment == 0 else f"{run_key[:12]}-{segment}"


class Rows:
    """The step and event rows of one file. Row lists (from parser records) and
    frames (from the bulk engine) are kept in memory up to ``spill_rows`` rows.
    Past that they are written out: as pending Parquet parts in ``parts_dir`` when
    the file's content hash (``run_key``, a function that may wait for it) gives
    the run ids already, else as Arrow IPC files in ``spill_dir``. Temporary files
    are deleted by ``discard``, or when the last reference goes away; pickling hands
    them over to the receiver."""

    def __init__(
        self,
        spill_rows: int | None = None,
        spill_dir: str | None = None,
        *,
        parts_dir: str | None = None,
        run_key=None,
    ) -> None:
        self.n = {"steps": 0, "events": 0}
        self._lists: dict[str, list[list]] = {"steps": [], "events": []}
        self._frames: dict[str, list] = {"steps": [], "events": []}
        self._held = 0  # rows in memory
        self.spills: dict[str, list[str]] = {"steps": [], "events": []}
        self.parts: list = []  # parts.PendingPart written so far
        self.spill_rows = spill_rows or int(os.environ.get("LLMBENCH_SPILL_ROWS") or SPILL_ROWS)
        self.spill_dir = spill_dir
        self.parts_dir = parts_dir
        self.run_key = run_key
        self.run_ids: dict[int, str] = {}
        self._ids_in_rows = False  # the row lists hold run ids, not segment indexes
        self._finalizer = weakref.finalize(self, _unlink_all, self.spills, self.parts)

    @property
    def n_steps(self) -> int:
        return self.n["steps"]

    @property
    def n_events(self) -> int:
        return self.n["events"]

    @property
    def spilled(self) -> bool:
        """Some rows are on disk (spill files or parts)."""
        return bool(self.spills["steps"] or self.spills["events"] or self.parts)

    def add_step(self, row: list) -> None:
        self._lists["steps"].append(row)
        self.n["steps"] += 1
        self._held += 1
        if self._held >= self.spill_rows:
            self._spill()

    def add_event(self, row: list) -> None:
        self._lists["events"].append(row)
        self.n["events"] += 1
        self._held += 1
        if self._held >= self.spill_rows:
            self._spill()

    def add_frame(self, table: str, frame) -> None:
        """Rows decoded in bulk, already in ``table``'s columns (``conform``)."""
        if not frame.height:
            return
        self._pack(table)
        self._frames[table].append(frame)
        self.n[table] += frame.height
        self._held += frame.height
        if self._held >= self.spill_rows:
            self._spill()

    def _pack(self, table: str) -> None:
        """Row lists -> one frame (keeps the order of rows and frames)."""
        if self._lists[table]:
            self._frames[table].append(_frame(self._lists[table], table))
            self._lists[table] = []

    def _spill(self) -> None:
        if self.parts_dir and self.run_key is not None:
            self._write_parts(self.run_key())
            return
        directory = self.spill_dir or tempfile.gettempdir()
        for table in ("steps", "events"):
            self._pack(table)
            frames = self._frames[table]
            if not frames:
                continue
            import polars as pl

            path = partfiles.temporary_path(directory, ".llmbench-spill-", ".arrow")
            self.spills[table].append(path)
            pl.concat(frames, how="vertical").write_ipc(path, compression="lz4")
            self._frames[table] = []
        self._held = 0

    def _write_parts(self, key: str) -> None:
        """The rows in memory as pending parts, run ids made from ``key``."""
        import polars as pl

        for table in ("steps", "events"):
            self._pack(table)
            frames = self._frames[table]
            if not frames:
                continue
            frame = pl.concat(frames, how="vertical")
            segments = frame["run_id"].unique().to_list()
            frame = frame.with_columns(
                pl.col("run_id").replace_strict(
                    segments, [run_id(key, k) for k in segments], return_dtype=pl.String
                )
            )
            part = partfiles.write(frame, self.parts_dir, table)
            if part is not None:
                self.parts.append(part)
            self._frames[table] = []
        self._held = 0

    def finish(self, run_ids: dict[int, str]) -> None:
        """Give the rows their run ids (segment index -> run id), once known. Rows
        already written as parts are joined by the rest, as parts too."""
        self.run_ids = dict(run_ids)
        if self.parts:
            self._write_parts(self.run_key())
        elif not self.spilled and not self._frames["steps"] and not self._frames["events"]:
            for rows in self._lists.values():  # a small file: its ids in place, now
                for row in rows:
                    row[0] = run_ids[row[0]]
            self._ids_in_rows = True

    def lazy(self, table: str):
        """Every row of ``table`` as a polars LazyFrame, run ids filled in (spilled
        rows are read back as they are needed: memory stays bounded)."""
        import polars as pl

        if self._ids_in_rows:
            return id_frame(self._lists[table], table).lazy()
        parts = [pl.scan_ipc(p) for p in self.spills[table]]
        parts += [f.lazy() for f in self._frames[table]]
        if self._lists[table]:
            parts.append(_frame(self._lists[table], table).lazy())
        if not parts:
            parts = [_frame([], table).lazy()]
        run_ids = self.run_ids
        lf = pl.concat(parts, how="vertical")
        return lf.with_columns(
            pl.col("run_id").replace_strict(
                list(run_ids), list(run_ids.values()), default=None, return_dtype=pl.String
            )
        )

    def id_rows(self, table: str) -> list[list] | None:
        """Every row of ``table`` as lists with their run ids, when all are row lists
        (a small file read line by line, its ids given by ``finish``); else None."""
        return self._lists[table] if self._ids_in_rows else None

    def frame(self, table: str):
        """Every row of ``table`` (run ids filled in) as one polars DataFrame."""
        return self.lazy(table).collect()

    def discard(self) -> None:
        """Delete the spill files and pending parts, if any (the rows are stored or
        no longer wanted)."""
        _unlink_all(self.spills, self.parts)
        self.spills = {"steps": [], "events": []}
        self.parts = []
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _unlink_all, self.spills, self.parts)

    def release_parts(self) -> list:
        """Hand the pending parts over (to a store): they are no longer deleted here."""
        out, self.parts = self.parts, []
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _unlink_all, self.spills, self.parts)
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_finalizer")
        state["run_key"] = None  # a function of the process that read the file
        self._finalizer.detach()  # the receiver owns the spill files now
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._finalizer = weakref.finalize(self, _unlink_all, self.spills, self.parts)


def _unlink_all(spills: dict[str, list[str]], parts: list) -> None:
    for paths in spills.values():
        for path in paths:
            with suppress(OSError):
                os.unlink(path)
    for part in parts:
        part.discard()
