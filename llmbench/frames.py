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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

try:  # the `fast` extra
    import orjson as _orjson

    _ORJSON_OPTS = _orjson.OPT_SORT_KEYS | _orjson.OPT_NON_STR_KEYS
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None
    _ORJSON_OPTS = 0

from .columns import EVENT_COLUMNS, INT_SETTINGS, RUN_COLUMNS, RUN_SETTING_COLUMNS, STEP_COLUMNS
from .parsing import Config, Event, NewRun, Note, Record, Step


@dataclass
class Segment:
    """One run as found in a log, before settings are applied."""

    index: int
    config: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    first_line: int | None = None
    last_line: int | None = None
    seen: dict[int, Step] = field(default_factory=dict)
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
        return not (self.steps or self.events or self.config)


def segment(records: Iterable[Record]) -> tuple[list[Segment], list[str]]:
    """Group records into run segments; returns the segments and warnings."""
    segments: list[Segment] = []
    notes: list[str] = []
    cur = Segment(0)

    def new_segment(carry_config: bool) -> Segment:
        nonlocal cur
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
                # fields only the later copy has are added
                first = cur.seen[step].values
                for k, v in rec.values.items():
                    first.setdefault(k, v)
                cur.duplicates += 1
                continue
            if cur.last_step is not None and step < cur.last_step:
                notes.append(
                    f"line {rec.line_no}: step {step} after step {cur.last_step}: "
                    "restart, new run segment"
                )
                new_segment(carry_config=True)
            cur.seen[step] = rec
            cur.last_step = step
            cur.steps.append(rec)
            cur.touch(rec.line_no)
        elif isinstance(rec, Event):
            cur.events.append(rec)
            cur.touch(rec.line_no)
        elif isinstance(rec, Config):
            for k, v in rec.values.items():
                if k not in cur.config and v is not None:
                    cur.config[k] = v
                    cur.origin[k] = rec.origin or f"log line {rec.line_no}"
            cur.touch(rec.line_no)
        elif isinstance(rec, NewRun):
            if cur.steps:
                notes.append(f"line {rec.line_no}: {rec.reason}: new run segment")
                new_segment(carry_config=False)
            cur.touch(rec.line_no)
        elif isinstance(rec, Note):
            notes.append(f"line {rec.line_no}: {rec.message}" if rec.line_no else rec.message)
    segments.append(cur)
    out = [s for s in segments if not s.empty]
    for s in out:
        if s.duplicates:
            notes.append(
                f"run segment {s.index}: {s.duplicates} repeated step line(s) "
                "(other ranks) collapsed, first copy kept (fields it lacks taken from the others)"
            )
    return out, notes


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
) -> tuple[list[dict], list[dict], list[dict], list[str]]:
    """Rows for the runs, steps and events tables; ``run_key`` is the content hash.

    ``model_shape(name, family)`` gives a user-defined model's shape; its values
    fill only what the log and the layers left unset.
    """
    runs: list[dict] = []
    steps: list[dict] = []
    events: list[dict] = []
    notes: list[str] = []
    for seg in segments:
        run_id = run_key[:12] if seg.index == 0 else f"{run_key[:12]}-{seg.index}"
        config = dict(seg.config)
        origin = dict(seg.origin)
        if "global_batch_size" not in config:
            gbs = next(
                (
                    s.values.get("global_batch_size")
                    for s in seg.steps
                    if "global_batch_size" in s.values
                ),
                None,
            )
            if gbs is not None:
                config["global_batch_size"] = gbs
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
            n_steps=len(seg.steps),
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
        runs.append(row)
        for s in seg.steps:
            srow = dict.fromkeys(STEP_COLUMNS)
            srow.update(run_id=run_id, step=s.step, line_no=s.line_no, rank=s.rank)
            extra: dict[str, Any] = {}
            for k, v in s.values.items():
                if k in STEP_COLUMNS and k not in ("run_id", "step", "line_no", "rank", "extra"):
                    srow[k] = v
                else:
                    extra[k] = v
            t = srow["step_time_s"]
            if t is not None and not (isinstance(t, int | float) and t > 0 and math.isfinite(t)):
                notes.append(f"line {s.line_no}: step time {t!r} is not a positive number: dropped")
                srow["step_time_s"] = None
            srow["extra"] = to_json(extra) if extra else None
            steps.append(srow)
        for e in seg.events:
            erow = dict.fromkeys(EVENT_COLUMNS)
            erow.update(
                run_id=run_id,
                time_ms=e.time_ms,
                event_type=e.event_type,
                key=e.key,
                value=to_json(e.value),
                metadata=to_json(e.metadata) if e.metadata else None,
                step=e.step,
                line_no=e.line_no,
            )
            events.append(erow)
    for table, rows in (("runs", runs), ("steps", steps), ("events", events)):
        for row in rows:
            _storable(row, table, notes)
    return runs, steps, events, notes


INT64 = (-(2**63), 2**63 - 1)


def _storable(row: dict[str, Any], table: str, notes: list[str]) -> None:
    """NaN and infinities become missing (SQLite has no NaN; a NaN loss is kept as
    text in ``extra``); integers beyond 64 bits become missing. Both are noted."""
    for k, v in row.items():
        t = type(v)
        if t is str or v is None:
            continue
        if t is float and v - v != 0.0:  # NaN or an infinity (v - v is NaN)
            row[k] = None
            if table == "steps" and k != "step_time_s":
                extra = json.loads(row.get("extra") or "{}")
                extra[k] = str(v)
                row["extra"] = to_json(extra)
            notes.append(
                f"line {row.get('line_no')}: {k} {v} is not a finite number: stored as missing"
            )
        elif t is int and not INT64[0] <= v <= INT64[1]:
            row[k] = None
            notes.append(
                f"line {row.get('line_no')}: {k} {v} does not fit 64 bits: stored as missing"
            )


def dataframe(rows: list[dict], columns: dict[str, str]):
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
