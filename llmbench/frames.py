"""Frames: parser records -> run segments -> rows of the canonical tables.

Segmentation (the same for every parser, and for rows the bulk engine decoded):
a ``NewRun`` record after steps, or a step counter that goes back, starts a new
run segment; a step number seen before in the same segment is a copy printed
by another rank and is dropped (the first copy is kept; while it is among the
segment's last ``MERGE_WINDOW`` steps, the copy adds the fields it lacks).
Settings from the path, the settings file and ``--set`` are laid over what the
log says, and every value keeps its origin.
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .columns import INT_SETTINGS, RUN_COLUMNS, RUN_SETTING_COLUMNS, STEP_LINES
from .errors import FileWarning
from .parsing import Batch, Config, Event, NewRun, Note, Record, Step
from .rows import Rows, _finite, conform, event_row, step_row, step_values, to_json

MERGE_WINDOW = 1024  # a copy of one of the last this-many steps adds the fields it lacks


class _Seen:
    """The step numbers of a segment. They are added in increasing order (a smaller
    one is a copy or a restart, never added), so they stay sorted: 8 bytes a step,
    membership by binary search."""

    def __init__(self) -> None:
        self._steps = array("q")
        self._odd: set = set()  # numbers an array of int64 cannot hold

    def add(self, step: Any) -> None:
        if type(step) is int and -(2**63) <= step < 2**63:
            self._steps.append(step)
        else:
            self._odd.add(step)

    def extend(self, steps) -> None:
        """Add a sorted numpy array of int64 step numbers."""
        self._steps.frombytes(steps.astype("int64").tobytes())

    def __contains__(self, step: Any) -> bool:
        if type(step) is int:
            i = bisect.bisect_left(self._steps, step)
            if i < len(self._steps) and self._steps[i] == step:
                return True
        return step in self._odd


class _Held:
    """A segment's last ``MERGE_WINDOW`` steps, oldest first, not yet written: a later
    copy can still add fields to them. Steps from parser records stay ``Step``s;
    rows the bulk engine decoded stay a frame until a copy needs one of them."""

    def __init__(self, release: Callable[[Any], None]) -> None:
        self.items: deque = deque()  # Step | frame (polars, steps in increasing order)
        self.count = 0
        self._release = release  # called with a Step or a frame, oldest first

    def add(self, item: Any) -> None:
        self.items.append(item)
        self.count += 1 if isinstance(item, Step) else item.height
        self.trim(MERGE_WINDOW)

    def trim(self, keep: int) -> None:
        while self.count > keep:
            first = self.items[0]
            if isinstance(first, Step):
                self.items.popleft()
                self.count -= 1
                self._release(first)
                continue
            drop = min(first.height, self.count - keep)
            if drop == first.height:
                self.items.popleft()
                self._release(first)
            else:
                self._release(first.slice(0, drop))
                self.items[0] = first.slice(drop)
            self.count -= drop

    def find(self, step: int) -> Step | None:
        """The held first copy of ``step`` (a frame holding it becomes ``Step``s)."""
        for k, item in enumerate(self.items):
            if isinstance(item, Step):
                if item.step == step:
                    return item
                continue
            lo, hi = item["step"][0], item["step"][-1]
            if lo is not None and hi is not None and lo <= step <= hi:
                steps = [_as_step(r) for r in item.iter_rows(named=True)]
                self.items.rotate(-k)
                self.items.popleft()
                self.items.extendleft(reversed(steps))
                self.items.rotate(k)
                return next((s for s in steps if s.step == step), None)
        return None


def _as_step(row: dict[str, Any]) -> Step:
    return Step(row["step"], step_values(row), row["line_no"], row["rank"])


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
    step_batch_size: Any = None  # the last global batch size a step line gives (after any ramp-up)
    # tokens per sample between the last two steps that print consumed samples and tokens
    # (Megatron-DeepSpeed's BLOOM lines): the sequence length a log gives no other way
    step_seq_len: int | None = None
    consumed: tuple[int, int] | None = None  # (samples, tokens) of the last such step
    seen: _Seen = field(default_factory=_Seen)
    last_step: int | None = None
    duplicates: int = 0
    merged: int = 0  # step lines of another kind for a step already read (same rank)

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


class Segmenter:
    """Records in, run segments and rows out (see the module's docstring)."""

    def __init__(self, rows: Rows | None = None) -> None:
        self.rows = rows if rows is not None else Rows()
        self.segments: list[Segment] = []
        self.notes: list[FileWarning] = []
        self.cur = Segment(0)
        self.held = _Held(self._write)

    def _write(self, item: Any) -> None:
        if isinstance(item, Step):
            self.rows.add_step(step_row(item, self.cur.index, self.notes))
        else:
            self.rows.add_frame("steps", item)

    def _new_segment(self, carry_config: bool) -> None:
        self.held.trim(0)
        self.segments.append(self.cur)
        nxt = Segment(self.cur.index + 1)
        if carry_config:
            nxt.config = dict(self.cur.config)
            nxt.origin = dict(self.cur.origin)
        self.cur = nxt

    def feed(self, rec: Record) -> None:
        cur = self.cur
        if isinstance(rec, Step):
            self._step(rec)
        elif isinstance(rec, Batch):
            self._batch(rec)
        elif isinstance(rec, Event):
            self.rows.add_event(event_row(rec, cur.index, self.notes))
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
                self.notes.append(
                    FileWarning(rec.line_no, "segment", f"{rec.reason}: new run segment")
                )
                self._new_segment(carry_config=False)
            self.cur.touch(rec.line_no)
        elif isinstance(rec, Note):
            self.notes.append(FileWarning(rec.line_no, rec.kind, rec.message))

    def _step(self, rec: Step) -> None:
        cur = self.cur
        step = rec.step
        if step is None:  # the log prints no number: none is made up, the order is kept
            cur.n_steps += 1
            self.held.add(rec)
            cur.touch(rec.line_no)
            return
        if cur.last_step is not None and step <= cur.last_step and step in cur.seen:
            # another rank's copy, or a second print of the same step (DeepSpeed's
            # ``steps:`` line and Megatron's ``iteration`` line): first values win,
            # fields only the later copy has are added (while the first is held)
            first = self.held.find(step)
            if (
                first is not None
                and first.rank == rec.rank
                and rec.values.keys() != first.values.keys()
            ):
                cur.merged += 1  # another kind of line for the step (one rank's own timers)
            else:
                cur.duplicates += 1  # the same line again: another rank's copy
            if first is not None:
                for k, v in rec.values.items():
                    first.values.setdefault(k, v)
            return
        if cur.last_step is not None and step < cur.last_step:
            self.notes.append(
                FileWarning(
                    rec.line_no,
                    "segment",
                    f"step {step} after step {cur.last_step}: restart, new run segment",
                )
            )
            self._new_segment(carry_config=True)
            cur = self.cur
        cur.seen.add(step)
        cur.last_step = step
        cur.n_steps += 1
        if rec.values.get("global_batch_size") is not None:
            cur.step_batch_size = rec.values["global_batch_size"]
        _consumed(cur, [(rec.values.get("consumed_samples"), rec.values.get("consumed_tokens"))])
        self.held.add(rec)
        cur.touch(rec.line_no)

    def _batch(self, rec: Batch) -> None:
        cur = self.cur
        frame = rec.frame
        if not frame.height:
            return
        lines = frame["line_no"]
        if rec.table == "events":
            self.rows.add_frame("events", conform(frame, "events", cur.index))
            cur.n_events += frame.height
            cur.touch(lines.min())
            cur.touch(lines.max())
            return
        if "step" not in frame.columns or frame["step"].null_count() == frame.height:
            cur.n_steps += frame.height  # no step numbers printed: kept null, in line order
            self.held.add(conform(frame, "steps", cur.index))
            cur.touch(lines.min())
            cur.touch(lines.max())
            return
        steps = frame["step"]
        arr = steps.to_numpy()
        plain = (
            steps.null_count() == 0
            and (cur.last_step is None or (type(cur.last_step) is int and arr[0] > cur.last_step))
            and (len(arr) < 2 or bool((arr[1:] > arr[:-1]).all()))
        )
        if not plain:  # copies or a restart inside: the rules, step by step
            for row in conform(frame, "steps").iter_rows(named=True):
                self._step(_as_step(row))
            return
        cur.seen.extend(arr)
        cur.last_step = int(arr[-1])
        cur.n_steps += len(arr)
        if "global_batch_size" in frame.columns:
            gbs = frame["global_batch_size"].drop_nulls()
            if len(gbs):
                cur.step_batch_size = gbs[-1]
        if "consumed_samples" in frame.columns and "consumed_tokens" in frame.columns:
            both = frame.select("consumed_samples", "consumed_tokens").drop_nulls().tail(2)
            _consumed(cur, both.rows())
        self.held.add(conform(frame, "steps", cur.index))
        cur.touch(lines.min())
        cur.touch(lines.max())

    def close(self) -> tuple[list[Segment], list[FileWarning]]:
        self.held.trim(0)
        self.segments.append(self.cur)
        out = [s for s in self.segments if not s.empty]
        for s in out:
            if s.duplicates:
                self.notes.append(
                    FileWarning(
                        None,
                        "repeated",
                        f"run segment {s.index}: {s.duplicates} repeated step line(s) (other "
                        "ranks) collapsed, first copy kept (fields it lacks taken from the others)",
                    )
                )
            if s.merged:
                self.notes.append(
                    FileWarning(
                        None,
                        "repeated",
                        f"run segment {s.index}: {s.merged} step(s) printed by more than one "
                        "kind of line (e.g. an iteration line and a timer line): merged into one "
                        "row each, the first line's values kept",
                    )
                )
        return out, self.notes


def _from_steps(seg: Segment, config: dict[str, Any], origin: dict[str, str]) -> None:
    """The settings a segment's step lines give where its other lines do not: the last
    global batch size, the tokens per sample."""
    if "global_batch_size" not in config and seg.step_batch_size is not None:
        config["global_batch_size"] = seg.step_batch_size
        origin["global_batch_size"] = STEP_LINES
    if "seq_len" not in config and seg.step_seq_len is not None:
        config["seq_len"] = seg.step_seq_len
        origin["seq_len"] = f"{STEP_LINES}: consumed tokens per consumed sample"


def _consumed(cur: Segment, pairs: list[tuple[Any, Any]]) -> None:
    """Note the (consumed samples, consumed tokens) of steps in order: the tokens per
    sample between the last two is the segment's ``step_seq_len`` (where it is whole)."""
    for samples, tokens in pairs:
        if not isinstance(samples, int) or not isinstance(tokens, int):
            continue
        s0, t0 = cur.consumed or (0, 0)
        cur.consumed = (samples, tokens)
        ds, dt = samples - s0, tokens - t0
        if ds > 0 and dt > 0 and dt % ds == 0:
            cur.step_seq_len = dt // ds


def segment(
    records: Iterable[Record], rows: Rows | None = None
) -> tuple[list[Segment], list[FileWarning]]:
    """Group records into run segments, sending step and event rows to ``rows``
    as they come (memory does not grow with the file); returns the segments and
    warnings."""
    seg = Segmenter(rows)
    for rec in records:
        seg.feed(rec)
    return seg.close()


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
) -> tuple[list[dict], dict[int, str], list[FileWarning]]:
    """Rows for the runs table, and the run id of each segment index; ``run_key``
    is the content hash.

    ``model_shape(name, family)`` gives a user-defined model's shape; its values
    fill only what the log and the layers left unset.
    """
    runs: list[dict] = []
    run_ids: dict[int, str] = {}
    notes: list[FileWarning] = []
    for seg in segments:
        run_id = run_key[:12] if seg.index == 0 else f"{run_key[:12]}-{seg.index}"
        run_ids[seg.index] = run_id
        config = dict(seg.config)
        origin = dict(seg.origin)
        _from_steps(seg, config, origin)
        for where, values in layers:
            fill = getattr(values, "fill", False)  # settings.Fill: below the log's values
            for k, v in values.items():
                # a Fill layer is below the log's values, those step lines give included
                if not (fill and (k in seg.config or origin.get(k, "").startswith(STEP_LINES))):
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
                        FileWarning(
                            None,
                            "setting",
                            f"setting {k}={v!r} ({origin.get(k)}) is not a valid "
                            f"{RUN_COLUMNS[k]}: ignored",
                        )
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
    """A typed DataFrame: integers int64 when complete, else pandas' nullable Int64
    (``64``, never ``64.0``; missing ``<NA>``), reals float64 (missing NaN)."""
    import pandas as pd

    df = pd.DataFrame.from_records(rows, columns=list(columns))
    for name, sql in columns.items():
        if sql.startswith("INTEGER"):
            col = pd.to_numeric(df[name], errors="coerce")
            df[name] = (
                col.astype("int64") if len(col) and col.notna().all() else col.astype("Int64")
            )
        elif sql == "REAL":
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
        else:
            df[name] = df[name].astype("object").where(df[name].notna(), None)
    return df


def to_pandas(frame, columns: dict[str, str], nullable: Iterable[str] = ()):
    """A polars DataFrame of a canonical table as ``dataframe`` types it: integers
    int64 when complete (else nullable Int64, missing ``<NA>``; always for the
    columns named in ``nullable``), reals float64, text objects with None. Built
    from numpy arrays column by column (no pyarrow needed)."""
    import pandas as pd

    nullable = set(nullable)
    data = {}
    for name, sql in columns.items():
        col = frame[name]
        if sql.startswith("INTEGER"):
            if len(col) and col.null_count() == 0 and name not in nullable:
                data[name] = col.to_numpy().astype("int64")
            else:
                mask = col.is_null().to_numpy()
                data[name] = pd.arrays.IntegerArray(
                    col.fill_null(0).cast(int).to_numpy().astype("int64"), mask
                )
        elif sql == "REAL":
            data[name] = col.to_numpy().astype("float64")
        else:
            data[name] = pd.Series(_objects(col), dtype=object)
    return pd.DataFrame(data, columns=list(columns))


def _objects(col):
    """A polars text column as a numpy object array; a long column of few distinct
    values (run ids, event keys) shares one Python str per value."""
    import numpy as np

    if len(col) >= 10_000 and col.null_count() == 0:
        uniq = col.unique().sort()
        if len(uniq) * 4 <= len(col):
            codes = uniq.search_sorted(col).to_numpy()
            return np.asarray(uniq.to_list(), dtype=object)[codes]
    return np.asarray(col.to_list(), dtype=object)
