"""Frames: parser records -> run segments -> rows of the canonical tables.

Segmentation (the same for every parser): a ``NewRun`` record after steps, or
a step counter that goes back, starts a new run segment; a step number seen
before in the same segment is a copy printed by another rank and is dropped
(the first copy is kept). Settings from the path, the settings file and
``--set`` are laid over what the log says, and every value keeps its origin.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

try:  # the `fast` extra
    import orjson as _orjson

    _ORJSON_OPTS = _orjson.OPT_SORT_KEYS | _orjson.OPT_NON_STR_KEYS
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None
    _ORJSON_OPTS = 0

from .columns import INT_SETTINGS, RUN_COLUMNS, RUN_SETTING_COLUMNS, STEP_COLUMNS
from .parsing import Config, Event, NewRun, Note, Record, Step

# step and event rows of a file held in memory before they go to a spill file
SPILL_ROWS = int(os.environ.get("LLMBENCH_SPILL_ROWS") or 50_000)
MERGE_WINDOW = 1024  # at least this many recent steps held: a later copy can add fields

_STEP_INDEX = {k: i for i, k in enumerate(STEP_COLUMNS)}
_STEP_VALUES = {
    k: i for k, i in _STEP_INDEX.items() if k not in ("run_id", "step", "line_no", "rank", "extra")
}
_I_STEP, _I_TIME, _I_RANK, _I_LINE, _I_EXTRA = (
    _STEP_INDEX[k] for k in ("step", "step_time_s", "rank", "line_no", "extra")
)
INT64 = (-(2**63), 2**63 - 1)


class Rows:
    """The step and event rows of one file, as lists in column order (``STEP_COLUMNS``,
    ``EVENT_COLUMNS``). The first item is the run segment's index until ``finish``
    gives the run ids. Past ``spill_rows`` rows they go to a temporary SQLite file
    (``store.Spill``), so memory stays bounded whatever the size of the file."""

    def __init__(self, spill_rows: int | None = None) -> None:
        self.steps: list[list] = []
        self.events: list[list] = []
        self.n_steps = 0
        self.n_events = 0
        self.spill = None  # store.Spill once the rows outgrow memory
        self.run_ids: dict[int, str] = {}
        self._spill_rows = spill_rows or SPILL_ROWS

    def add_step(self, row: list) -> None:
        self.steps.append(row)
        self.n_steps += 1
        if len(self.steps) + len(self.events) >= self._spill_rows:
            self._flush()

    def add_event(self, row: list) -> None:
        self.events.append(row)
        self.n_events += 1
        if len(self.steps) + len(self.events) >= self._spill_rows:
            self._flush()

    def _flush(self) -> None:
        if self.spill is None:
            from .store import Spill

            self.spill = Spill()
        self.spill.add(self.steps, self.events)
        self.steps, self.events = [], []

    def finish(self, run_ids: dict[int, str]) -> None:
        """Give the rows their run ids (segment index -> run id), once known."""
        self.run_ids = run_ids
        if self.spill is not None:
            self._flush()
            self.spill.close()
            return
        for rows in (self.steps, self.events):
            for row in rows:
                row[0] = run_ids[row[0]]

    @property
    def run_key(self) -> str:
        """What run ids start with (``run_key[:12]`` of ``run_rows``)."""
        return next(iter(self.run_ids.values()), "")[:12]

    def table(self, name: str) -> list[list]:
        """Every row of ``steps`` or ``events`` (read back from the spill file if any)."""
        if self.spill is None:
            return self.steps if name == "steps" else self.events
        return self.spill.read(name, self.run_key)

    def discard(self) -> None:
        """Delete the spill file, if any (the rows are stored or no longer wanted)."""
        if self.spill is not None:
            self.spill.discard()


@dataclass
class Segment:
    """One run as found in a log, before settings are applied. Its steps and events
    go to a ``Rows`` as they are read; the segment keeps counts and settings."""

    index: int
    config: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    first_line: int | None = None
    last_line: int | None = None
    n_steps: int = 0
    n_events: int = 0
    step_batch_size: Any = None  # the first global batch size a step line gives
    seen: set[int] = field(default_factory=set)
    held: dict[int, Step] = field(default_factory=dict)  # the last steps, still mergeable
    last_step: int | None = None
    duplicates: int = 0

    def touch(self, line_no: int | None) -> None:
        if line_no is None:
            return
        if self.first_line is None or line_no < self.first_line:
            self.first_line = line_no
        if self.last_line is None or line_no > self.last_line:
            self.last_line = line_no

    @property
    def empty(self) -> bool:
        return not (self.n_steps or self.n_events or self.config)


def segment(records: Iterable[Record], rows: Rows | None = None) -> tuple[list[Segment], list[str]]:
    """Group records into run segments, sending step and event rows to ``rows``
    as they come (memory does not grow with the file); returns the segments and
    warnings."""
    rows = rows if rows is not None else Rows()
    segments: list[Segment] = []
    notes: list[str] = []
    cur = Segment(0)

    def release(seg: Segment, keep: int) -> None:
        for step in list(islice(seg.held, len(seg.held) - keep)):
            rows.add_step(step_row(seg.held.pop(step), seg.index, notes))

    def new_segment(carry_config: bool) -> Segment:
        nonlocal cur
        release(cur, 0)
        segments.append(cur)
        nxt = Segment(cur.index + 1)
        if carry_config:
            nxt.config = dict(cur.config)
            nxt.origin = dict(cur.origin)
        cur = nxt
        return cur

    for rec in records:
        if isinstance(rec, Step):
            step = rec.step
            if step is None:
                step = (cur.last_step or 0) + 1
                rec = rec._replace(step=step)
            if step in cur.seen:
                # another rank's copy, or a second print of the same step (DeepSpeed's
                # ``steps:`` line and Megatron's ``iteration`` line): first values win,
                # fields only the later copy has are added (while the first is held)
                first = cur.held.get(step)
                if first is not None:
                    for k, v in rec.values.items():
                        first.values.setdefault(k, v)
                cur.duplicates += 1
                continue
            if cur.last_step is not None and step < cur.last_step:
                notes.append(
                    f"line {rec.line_no}: step {step} after step {cur.last_step}: "
                    "restart, new run segment"
                )
                new_segment(carry_config=True)
            cur.seen.add(step)
            cur.last_step = step
            cur.n_steps += 1
            if cur.step_batch_size is None:
                cur.step_batch_size = rec.values.get("global_batch_size")
            cur.held[step] = rec
            if len(cur.held) >= 2 * MERGE_WINDOW:  # written in bulk, the newest kept
                release(cur, MERGE_WINDOW)
            cur.touch(rec.line_no)
        elif isinstance(rec, Event):
            rows.add_event(event_row(rec, cur.index, notes))
            cur.n_events += 1
            cur.touch(rec.line_no)
        elif isinstance(rec, Config):
            for k, v in rec.values.items():
                if k not in cur.config and v is not None:
                    cur.config[k] = v
                    cur.origin[k] = rec.origin or f"log line {rec.line_no}"
            cur.touch(rec.line_no)
        elif isinstance(rec, NewRun):
            if cur.n_steps:
                notes.append(f"line {rec.line_no}: {rec.reason}: new run segment")
                new_segment(carry_config=False)
            cur.touch(rec.line_no)
        elif isinstance(rec, Note):
            notes.append(f"line {rec.line_no}: {rec.message}" if rec.line_no else rec.message)
    release(cur, 0)
    segments.append(cur)
    out = [s for s in segments if not s.empty]
    for s in out:
        if s.duplicates:
            notes.append(
                f"run segment {s.index}: {s.duplicates} repeated step line(s) "
                "(other ranks) collapsed, first copy kept (fields it lacks taken from the others)"
            )
    return out, notes


def _finite(name: str, v: Any, line_no: Any, notes: list[str]) -> bool:
    """False (and a note) for a value SQLite cannot hold: NaN, an infinity, an
    integer beyond 64 bits."""
    t = type(v)
    if t is float and v - v != 0.0:  # NaN or an infinity (v - v is NaN)
        notes.append(f"line {line_no}: {name} {v} is not a finite number: stored as missing")
        return False
    if t is int and not INT64[0] <= v <= INT64[1]:
        notes.append(f"line {line_no}: {name} {v} does not fit 64 bits: stored as missing")
        return False
    return True


def step_row(s: Step, seg: int, notes: list[str]) -> list:
    """A ``steps`` row (``STEP_COLUMNS`` order; run id = ``seg`` for now). Fields
    without a column go to ``extra`` (JSON); a NaN loss is kept there as text."""
    row: list[Any] = [None] * len(STEP_COLUMNS)
    row[0] = seg
    row[_I_STEP], row[_I_LINE], row[_I_RANK] = s.step, s.line_no, s.rank
    extra: dict[str, Any] = {}
    for k, v in s.values.items():
        i = _STEP_VALUES.get(k)
        t = type(v)
        if i is None:
            extra[k] = v
        elif i != _I_TIME and (
            t is float and v - v == 0.0 or t is int and INT64[0] <= v <= INT64[1] or t is str
        ):
            row[i] = v  # the common cases first (v - v is NaN for NaN and the infinities)
        elif i == _I_TIME:
            if v is not None and not (type(v) in (int, float) and v > 0 and math.isfinite(v)):
                notes.append(f"line {s.line_no}: step time {v!r} is not a positive number: dropped")
                continue
            row[i] = v
        elif _finite(k, v, s.line_no, notes):
            row[i] = v
        elif type(v) is float:
            extra[k] = str(v)
    if extra:
        row[_I_EXTRA] = to_json(extra)
    if not _finite("step", s.step, s.line_no, notes):
        row[_I_STEP] = None
    return row


def event_row(e: Event, seg: int, notes: list[str]) -> list:
    """An ``events`` row (``EVENT_COLUMNS`` order; run id = ``seg`` for now)."""
    time_ms = e.time_ms if _finite("time_ms", e.time_ms, e.line_no, notes) else None
    step = e.step if _finite("step", e.step, e.line_no, notes) else None
    return [
        seg,
        time_ms,
        e.event_type,
        e.key,
        to_json(e.value),
        to_json(e.metadata) if e.metadata else None,
        step,
        e.line_no,
    ]


def _clean_json(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """JSON text, keys sorted; NaN and infinities become null (JSON has no NaN)."""
    if _orjson is not None:
        try:  # orjson writes NaN/inf as null itself, and is ~10x faster
            return _orjson.dumps(value, default=str, option=_ORJSON_OPTS).decode()
        except (TypeError, _orjson.JSONEncodeError):
            pass  # e.g. integers beyond 64 bits: the stdlib writes them
    return json.dumps(_clean_json(value), default=str, sort_keys=True)


def _column_value(key: str, value: Any) -> Any:
    if value is None:
        return None
    if RUN_COLUMNS.get(key) == "INTEGER" or key in INT_SETTINGS:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        return None
    if RUN_COLUMNS.get(key) == "REAL":
        return float(value) if isinstance(value, int | float) else None
    return str(value)


def run_rows(
    segments: list[Segment],
    *,
    run_key: str,
    source: str,
    parser: str,
    framework: str,
    layers: list[tuple[str, dict[str, Any]]],
    model_shape: Callable[[Any, str | None], tuple[str, dict[str, Any]] | None] | None = None,
) -> tuple[list[dict], dict[int, str], list[str]]:
    """Rows for the runs table, and the run id of each segment index; ``run_key``
    is the content hash.

    ``model_shape(name, family)`` gives a user-defined model's shape; its values
    fill only what the log and the layers left unset.
    """
    runs: list[dict] = []
    run_ids: dict[int, str] = {}
    notes: list[str] = []
    for seg in segments:
        run_id = run_key[:12] if seg.index == 0 else f"{run_key[:12]}-{seg.index}"
        run_ids[seg.index] = run_id
        config = dict(seg.config)
        origin = dict(seg.origin)
        if "global_batch_size" not in config and seg.step_batch_size is not None:
            config["global_batch_size"] = seg.step_batch_size
            origin["global_batch_size"] = "log (step lines)"
        for where, values in layers:
            for k, v in values.items():
                config[k] = v
                origin[k] = where
        found = (
            model_shape(config.get("model"), config.get("model_family")) if model_shape else None
        )
        if found:
            where, values = found
            for k, v in values.items():
                if k not in config and k not in ("family", "model"):
                    config[k] = v
                    origin[k] = where
        row = dict.fromkeys(RUN_COLUMNS)
        row.update(
            run_id=run_id,
            source=source,
            segment=seg.index,
            parser=parser,
            framework=framework,
            first_line=seg.first_line,
            last_line=seg.last_line,
            n_steps=seg.n_steps,
        )
        rest: dict[str, Any] = {}
        for k, v in config.items():
            if k in RUN_SETTING_COLUMNS:
                cv = _column_value(k, v)
                if cv is None and v is not None:
                    notes.append(
                        f"setting {k}={v!r} ({origin.get(k)}) is not a valid {RUN_COLUMNS[k]}: ignored"
                    )
                row[k] = cv
            else:
                rest[k] = v
        row["config"] = to_json(rest)
        row["provenance"] = to_json(origin)
        for k, v in row.items():
            if not _finite(k, v, row["first_line"], notes):
                row[k] = None
        runs.append(row)
    return runs, run_ids, notes


def dataframe(rows: list[dict] | list[list], columns: dict[str, str]):
    """A typed DataFrame: numbers numeric (int64 when complete, else float64), missing NaN."""
    import pandas as pd

    df = pd.DataFrame.from_records(rows, columns=list(columns))
    for name, sql in columns.items():
        if sql.startswith("INTEGER"):
            col = pd.to_numeric(df[name], errors="coerce")
            df[name] = (
                col.astype("int64") if len(col) and col.notna().all() else col.astype("float64")
            )
        elif sql == "REAL":
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
        else:
            df[name] = df[name].astype("object").where(df[name].notna(), None)
    return df
