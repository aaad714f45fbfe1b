"""MLPerf logging (``mlperf_logging.mllog``): ``:::MLLOG {json}`` records.

Every record becomes an event (a record printed again by other ranks, the same
text within ``COPY_WINDOW`` lines, is read once), except ``tracked_stats``
records with ``train_step_timing`` (NeMo) or ``train_step_time``: they become
steps numbered 1, 2, ... and are not repeated as events (the step row holds the
record: the step time, the loss, ``metadata.step`` as ``consumed_tokens`` /
``consumed_samples`` or ``extra.logged_step``, ``extra.time_ms`` and the record's
other values in ``extra``). ``submission_*``, ``global_batch_size``,
``max_sequence_length``, ``seed``, ``opt_*`` ... become run config;
``run_start``/``run_stop`` give the run's times and ``run_stop``'s
``metadata.status`` its status. Values are stored as printed (JSON text). Rounds before v0.7 print seconds, not ms: v0.6
``:::MLL <seconds> key: {json}``, v0.5 ``:::MLPv0.5.0 <bench> <seconds>
(file:line) key[: value]`` (``run_stop: {"success": true}``). Anything before
the token (rank prefixes, launcher text) is ignored, as the official parser does;
a line with the token that does not parse is counted (``mllog_parse_errors``).
A known benchmark (``submission_benchmark``) sets the model and sequence length
its rules fix (``llmbench.mlperf.rules.BENCHMARKS``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from llmbench.engine import ShapeReader, strip_prefixes
from llmbench.mlperf.rules import BENCHMARKS
from llmbench.parsing import Batch, Config, CopyWindow, Event, Note, Parser, RawJSON, Record, Step
from llmbench.reader import CheckedLine, Line

TOKEN = ":::MLLOG"
# v0.6: ``:::MLL 1558572186.109 run_stop: {"value": null, "metadata": {...}}`` (seconds)
MLL_RE = re.compile(r":::MLL (?P<ts>\d+(?:\.\d+)?) (?P<key>\w+) ?:\s+(?P<json>.+?)\s*$")
# v0.5: ``:::MLPv0.5.0 ssd 1541710845.176 (train.py:371) run_stop: {"success": true}``
MLP_RE = re.compile(
    r":::MLPv\d+\.\d+\.\d+ (?P<bench>[a-z0-9_]+) (?P<ts>\d+(?:\.\d+)?) "
    r"\((?P<src>[^: ]+):(?P<lineno>\d{1,18})\) (?P<key>\w+) ?(?::\s+(?P<json>.+?))?\s*$"
)
TOKENS = (TOKEN, ":::MLL ", ":::MLPv")

# MLLOG key -> run config name
CONFIG_KEYS = {
    "global_batch_size": "global_batch_size",
    "max_sequence_length": "seq_len",
    "submission_benchmark": "benchmark",
    "submission_org": "submitter",
    "submission_platform": "submission_platform",
    "submission_division": "division",
    "submission_status": "submission_status",
    "submission_poc_name": "submission_poc_name",
    "submission_entry": "submission_entry",
    "seed": "seed",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "train_samples": "train_samples",
    "eval_samples": "eval_samples",
    "init_checkpoint_step": "init_checkpoint_step",
    "target_accuracy": "target_accuracy",
    "max_steps": "max_steps",
    "lora_rank": "lora_rank",
    "lora_alpha": "lora_alpha",
}
STEP_TIME_KEYS = ("train_step_timing", "train_step_time", "train_step_timing in s")
LOSS_KEYS = ("reduced_train_loss", "train_loss")
STEP_AND_LOSS_KEYS = (*STEP_TIME_KEYS, *LOSS_KEYS)
# records the parser's Python reads (they set run config); the others the engine may
PYTHON_KEYS = frozenset({*CONFIG_KEYS, "run_start", "run_stop"})


class _Malformed(Exception):
    pass


class _Typed(msgspec.Struct, gc=False):
    """A ``:::MLLOG`` record of the usual types: the bulk engine decodes a block's
    records into these in one call (a block holding any other falls back to
    ``_record``, one line at a time)."""

    key: str
    time_ms: int | float | None = None
    value: Any = None
    metadata: dict | None = None
    event_type: str | None = None


_TYPED = msgspec.json.Decoder(list[_Typed])
_ANY = msgspec.json.Decoder()
_ENCODE = msgspec.json.Encoder(order="sorted")


def _json(text: str) -> Any:
    try:
        return _ANY.decode(text)
    except (msgspec.DecodeError, ValueError, TypeError) as e:
        raise _Malformed(type(e).__name__) from None


def _encode(value: Any) -> RawJSON:
    """JSON text of a decoded value, keys sorted (one encoder for both engines)."""
    return RawJSON(_ENCODE.encode(value).decode())


def _record(payload: str) -> dict:
    """The record after the token, any types (the parser's own reading)."""
    rec = _json(payload.strip())
    if not isinstance(rec, dict) or "key" not in rec:
        raise _Malformed("not an MLLOG record")
    return rec


def _is_number(v: Any) -> bool:
    return type(v) is int or type(v) is float


def _float(v: Any) -> float | None:
    """A JSON number as a float; None for anything else or an integer too large
    for a float (a mangled line's 10^400)."""
    if not _is_number(v):  # bool is no number here
        return None
    try:
        return float(v)
    except OverflowError:
        return None


def _step_values(value: Any, time_ms: Any) -> dict | None:
    """A tracked_stats record's step: the step time and the loss as numbers, every
    other value and ``time_ms`` in ``extra`` (JSON); None when no step time."""
    if not isinstance(value, dict):
        return None
    used = next((k for k in STEP_TIME_KEYS if k in value and _float(value[k]) is not None), None)
    if used is None:
        return None
    values: dict[str, Any] = {"step_time_s": float(value[used])}
    loss_key = next((k for k in LOSS_KEYS if k in value), None)
    if loss_key is not None and _float(value[loss_key]) is not None:
        values["loss"] = float(value[loss_key])
    for k, v in value.items():
        if k != used and k != loss_key:
            values[k] = _encode(v)
    if _is_number(time_ms):
        values["time_ms"] = _encode(time_ms)
    return values


def _throughput_only(value: Any) -> bool:
    """Whether a ``tracked_stats`` value is a throughput with no step time or loss."""
    return (
        isinstance(value, dict)
        and _float(value.get("throughput")) is not None
        and not any(k in value for k in STEP_AND_LOSS_KEYS)
    )


def _count(mstep: Any, samples: Any) -> int | None:
    """A progress point's counter: ``samples_count``, else ``metadata.step``, as an
    integer where it is a whole number, else None."""
    count = samples if _is_number(samples) else mstep
    return int(count) if _is_number(count) and count - int(count) == 0 else None


def _whole(v: Any) -> int | None:
    """A finite number as ``int()`` gives it, else None (NaN, infinities, no number)."""
    return int(v) if isinstance(v, int | float) and v - v == 0 else None


def _mllog(text: str, at: int) -> dict:
    return _record(text[at + len(TOKEN) :])


def _mll(text: str, at: int) -> dict | None:
    m = MLL_RE.match(text, at)
    if m is None:
        raise _Malformed("not a :::MLL line")
    body = _json(m["json"])
    if not isinstance(body, dict):
        body = {"value": body}
    meta = body.get("metadata")
    return {
        "time_ms": float(m["ts"]) * 1000.0,
        "key": m["key"],
        "value": body.get("value"),
        "metadata": meta,
    }


def _mlp(text: str, at: int) -> dict | None:
    m = MLP_RE.match(text, at)
    if m is None:
        raise _Malformed("not a :::MLPv0.5 line")
    value = _json(m["json"]) if m["json"] is not None else None
    meta: dict[str, Any] = {"file": m["src"], "lineno": int(m["lineno"])}
    if m["key"] == "run_stop" and isinstance(value, dict) and "success" in value:
        meta["status"] = "success" if value["success"] else "aborted"
    return {
        "time_ms": float(m["ts"]) * 1000.0,
        "key": m["key"],
        "value": value,
        "metadata": meta,
        "benchmark": m["bench"],
    }


# token -> decoder of the text from the token on (v0.7+, v0.6, v0.5)
DECODERS = ((TOKEN, _mllog), (":::MLL ", _mll), (":::MLPv", _mlp))


class MllogShape(NamedTuple):
    """``:::MLLOG`` lines, read in bulk (``_MllogReader``)."""

    needle: str = TOKEN

    def reader(self) -> _MllogReader:
        return _MllogReader()


class MllogParser(Parser):
    name = "mllog"
    framework = "MLPerf"
    description = "MLPerf `:::MLLOG {json}` records (`:::MLL` v0.6, `:::MLPv0.5` v0.5)"
    produces = ("step_time_s", "loss", "consumed_samples", "consumed_tokens")
    needles = (":::ML",)
    shapes = (MllogShape(),)

    def detect(self, head: Sequence[str]) -> float:
        for text in head:
            if any(t in text for t in TOKENS):
                return 1.0
        return 0.0

    def parse(self, lines: Iterable[Line | Batch]) -> Iterator[Record]:
        reading = _Reading()
        for item in lines:
            if type(item) is Batch:  # records the engine read: events and steps
                yield reading.batch(item)
            else:
                yield from reading.line(item)
        yield from reading.close()


def _locate(text: str) -> tuple[int, Callable] | None:
    """(where a record starts in ``text``, its decoder) for each log version."""
    at = text.find(TOKEN)
    if at >= 0:
        return at, _mllog
    return next(((at, decode) for token, decode in DECODERS if (at := text.find(token)) >= 0), None)


class _Reading:
    """One parse's state: the records every rank printed (read once), the run
    settings seen (the first value wins), the batch size and sequence length the
    step counters need, malformed lines, the benchmark named, the last line."""

    def __init__(self) -> None:
        self.window = CopyWindow()
        self.config_seen: set[str] = set()
        self.gbs = self.seq = None
        self.malformed = 0
        self.benchmark = None
        self.last = 0
        self.stopped = False
        self.progress: tuple[Any, Any] | None = None  # (time_ms, samples) of the last one
        self.timed = False  # step-time records seen: a throughput-only record is no step

    def batch(self, item: Batch) -> Batch:
        self.last = item.last
        if item.table == "steps":
            self.timed = self.timed or item.frame.height > 0
            return item._replace(frame=_counted(item.frame, self.gbs, self.seq))
        return item

    def line(self, item: Line) -> Iterable[Record]:
        """The records of a line; () where it holds none or a copy (no generator made)."""
        no, text, rank = item
        self.last = no
        found = _locate(text) if ":::ML" in text else None
        if found is None:
            return ()
        at, decode = found
        if type(item) is not CheckedLine and self.window.copy(text[at:], no):
            return ()  # every rank printed it
        try:
            rec = decode(text, at)
        except _Malformed as e:
            self.malformed += 1
            return (Note(f"malformed MLPerf log line skipped ({e})", no, "line"),)
        return self.record(rec, decode is _mllog, no, rank)

    def record(self, rec: dict, mllog: bool, no: int, rank) -> Iterator[Record]:
        """A decoded record: a step, else an event and the run settings it gives
        (``mllog``: values stored as encoded; older rounds' as read)."""
        key, value = str(rec.get("key")), rec.get("value")
        meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
        time_ms = rec.get("time_ms")
        time_ms = _float(time_ms) if isinstance(time_ms, int | float) else None
        if rec.get("benchmark") and "submission_benchmark" not in self.config_seen:
            self.config_seen.add("submission_benchmark")
            yield Config({"benchmark": rec["benchmark"]}, no)
        step = self._tracked(value, rec.get("time_ms"), meta) if key == "tracked_stats" else None
        if step is not None:  # a step, not repeated as an event
            yield Step(None, step, no, rank)
            return
        yield Event(
            key,
            _encode(value) if mllog else value,
            no,
            time_ms=time_ms,
            event_type=rec.get("event_type"),
            step=_whole(meta.get("step")),
            metadata=(_encode(meta) if mllog else meta) if meta else None,
        )
        yield from self.config(key, value, meta, time_ms, no)

    def _tracked(self, value: Any, time_ms: Any, meta: dict) -> dict | None:
        """A ``tracked_stats`` record's step with its counters: one that times a step,
        else (in a log whose records time none) a progress point; else None."""
        mstep, samples = meta.get("step"), meta.get("samples_count")
        step = _step_values(value, time_ms)
        self.timed = self.timed or step is not None
        if step is None and not self.timed:
            step = self._progress(value, time_ms, mstep, samples)
        if step is not None:
            step.update(_consumed(*_counters(mstep, samples), self.gbs, self.seq))
        return step

    def _progress(self, value: Any, time_ms: Any, mstep: Any, samples: Any) -> dict | None:
        """A ``tracked_stats`` record that carries only ``throughput``, in a log whose
        records time no step (GPT-3 logs a run's throughput once after its timed steps:
        an event), as a progress point: a step row with the throughput in the unit its
        benchmark counts (``_unit``: tokens/s for GPT-3, samples/s for LoRA, Stable
        Diffusion, RetinaNet), and the step time between this record and the one
        before, ``(time_ms - previous) / 1000 / steps`` with ``steps`` the counter's
        advance over a step's worth (global batch, times the sequence length where it
        counts tokens), on the printed integers (decimal, no float noise). A record
        whose unit nothing tells (no benchmark, no batch shape) stays an event: the
        report reads it with the run's benchmark setting."""
        if not _throughput_only(value):
            return None
        count = _count(mstep, samples)
        unit = self._unit(count, samples)
        if unit is None:
            return None
        values: dict[str, Any] = {unit: _float(value["throughput"])}
        for k, v in value.items():
            if k != "throughput":
                values[k] = _encode(v)
        if _is_number(time_ms):
            values["time_ms"] = _encode(time_ms)
            if count is not None:
                step_time = self._step_time(unit, count, time_ms)
                if step_time is not None:
                    values["step_time_s"] = step_time
                self.progress = (time_ms, count)
        return values

    def _step_time(self, unit: str, count: int, time_ms: Any) -> float | None:
        """Seconds per step since the progress point before: the time between them over
        the steps the counter advanced (whole steps' worth only), on the printed digits."""
        if self.progress is None:
            return None
        t0, c0 = self.progress
        per_step = (self.gbs or 0) * (self.seq or 0 if unit == "tokens_per_s" else 1)
        if not (per_step and count > c0 and (count - c0) % per_step == 0 and time_ms > t0):
            return None
        steps = (count - c0) // per_step
        ms = Decimal(repr(time_ms)) - Decimal(repr(t0))
        return float(ms / 1000 / steps)

    def _unit(self, count: int | None, samples: Any) -> str | None:
        """The column of a ``throughput``: the benchmark's unit (its rules), else what
        its counter counts (``samples_count``: samples; ``metadata.step`` a whole number
        of global batches of tokens, or of samples), else None (unknown)."""
        rules = BENCHMARKS.get(str(self.benchmark[0])) if self.benchmark else None
        if rules is not None:
            return rules.throughput
        if _is_number(samples):
            return "samples_per_s"
        if count is None or count <= 0 or not self.gbs:
            return None
        if self.seq and count % (self.gbs * self.seq) == 0:
            return "tokens_per_s"
        return "samples_per_s" if count % self.gbs == 0 else None

    def config(self, key: str, value: Any, meta: dict, time_ms, no: int) -> Iterator[Record]:
        """The run settings a record gives: config keys, ``opt_*``, start and stop."""
        seen = self.config_seen
        if key in CONFIG_KEYS and key not in seen and not isinstance(value, dict | list):
            seen.add(key)
            if key == "global_batch_size" and isinstance(value, int | float):
                self.gbs = int(value)
            elif key == "max_sequence_length" and isinstance(value, int | float):
                self.seq = int(value)
            yield Config({CONFIG_KEYS[key]: value}, no)
            if key == "submission_benchmark":
                self.benchmark = (value, no)
        elif key.startswith("opt_") and key not in seen:
            seen.add(key)
            yield Config({key: value}, no)
        elif key == "run_start" and "run_start" not in seen and time_ms is not None:
            seen.add("run_start")
            yield Config({"start_time": time_ms / 1000.0, "run_start_ms": time_ms}, no)
        elif key == "run_stop" and not self.stopped and time_ms is not None:
            self.stopped = True
            stop = {"end_time": time_ms / 1000.0, "run_stop_ms": time_ms}
            yield Config({**stop, "status": meta.get("status")}, no)

    def close(self) -> Iterator[Record]:
        if self.benchmark is not None:  # last: what the log itself says wins
            yield from _benchmark_defaults(*self.benchmark)
        if self.malformed:
            # the official summarizer drops a run with any line it cannot parse
            yield Config(
                {"mllog_parse_errors": self.malformed}, self.last, "log (malformed MLPerf lines)"
            )


class _MllogReader(ShapeReader):
    """``:::MLLOG`` records in bulk: one decoder call per block; records that set
    run config (``PYTHON_KEYS``, ``opt_*``), that do not decode, or whose step has
    values of its own besides the step time and the loss are the parser's."""

    table = "events"

    def __init__(self) -> None:
        super().__init__(TOKEN)

    def record_key(self, text: str) -> str | None:
        at = text.find(TOKEN)
        return text[at:] if at >= 0 else None

    def take(self, lines, more: bool = False):
        import polars as pl

        cand = lines.filter(pl.col("text").str.contains(TOKEN, literal=True))
        rest = lines.filter(~pl.col("line_no").is_in(cand["line_no"].implode())) if more else None
        if not cand.height:
            return {}, cand["line_no"].to_numpy(), [], rest
        keys = cand["text"].str.slice(cand["text"].str.find(TOKEN, literal=True))
        copy = self._copies(cand["line_no"], keys)
        fresh = cand.with_columns(key=keys).filter(~copy)
        nos = fresh["line_no"].to_list()
        recs = _decode_all(fresh["key"].str.slice(len(TOKEN)))
        if recs is None:  # a record of other types: every line the parser's
            return {}, cand["line_no"].to_numpy(), nos, rest
        left: list[int] = []
        step_at, event_at = [], []
        for i, r in enumerate(recs):
            k = r.key
            if k == "tracked_stats":
                step_at.append(i)
            elif k in PYTHON_KEYS or k.startswith("opt_"):
                left.append(nos[i])
            else:
                event_at.append(i)
        tables = {}
        steps = _steps([recs[i] for i in step_at], [nos[i] for i in step_at], left, event_at)
        if steps is not None:
            ranked = fresh.filter(pl.col("line_no").is_in(steps["line_no"].implode()))
            tables["steps"] = steps.with_columns(rank=strip_prefixes(ranked["text"])[1])
        events = _events([recs[i] for i in event_at], [nos[i] for i in event_at], left)
        if events is not None:
            tables["events"] = events
        left.sort()
        return tables, cand["line_no"].to_numpy(), left, rest


def _steps(recs: list, nos: list[int], left: list[int], event_at: list[int]):
    """The step rows of tracked_stats records (a frame), column by column: the
    records whose values are the step time (and the loss) of the block's usual
    kind, with an integer time_ms and integer counters. Any other record is left
    to the parser."""
    import polars as pl

    if not recs:
        return None
    vals = [r.value for r in recs]
    kinds = [tuple(v) if type(v) is dict else None for v in vals]
    usual = _usual_kind(kinds)
    if usual is None:
        left += nos
        return None
    cols = _columns(recs, vals, kinds, *usual)
    ok = _usual_types([k == usual[0] for k in kinds], cols)
    frame = _step_frame(nos, cols, ok)
    frame = frame.with_columns(_good=_good_steps(cols).fill_null(False))
    left += frame.filter(~pl.col("_good"))["line_no"].to_list()
    frame = frame.filter(pl.col("_good"))
    if not frame.height:
        return None
    return frame.select(
        "line_no",
        "step_time_s",
        "loss",
        pl.col("_t").cast(pl.String).alias("_time"),
        "_mstep",
        (pl.col("_mstep") > 0).alias("_mpos"),
        "_samples",
    )


def _usual_kind(kinds: list) -> tuple[tuple, str, str | None] | None:
    """(the block's most common keys of a value, its step-time key, its loss key), where
    those keys are a step time and at most a loss; else None."""
    common = Counter(kinds).most_common(1)[0][0]
    used = next((k for k in STEP_TIME_KEYS if common and k in common), None)
    loss_key = next((k for k in LOSS_KEYS if common and k in common), None)
    if used is None or set(common) - {used, loss_key}:
        return None
    return common, used, loss_key


def _step_frame(nos: list[int], cols: dict[str, list | None], ok: list[bool]):
    """The step columns as typed (a record not ``ok`` all null), ``_ok`` beside them."""
    import polars as pl

    kept = {
        name: [x if o else None for x, o in zip(col, ok, strict=True)]
        for name, col in cols.items()
        if col is not None
    }
    return pl.DataFrame(
        {
            "line_no": nos,
            "_ok": ok,
            "step_time_s": pl.Series(kept["t"], dtype=pl.Float64, strict=False),
            "loss": pl.Series(kept.get("loss", [None] * len(ok)), dtype=pl.Float64, strict=False),
            "_t": pl.Series(kept["time"], dtype=pl.Int64, strict=False),
            "_mstep": pl.Series(kept["mstep"], dtype=pl.Int64, strict=False),
            "_samples": pl.Series(kept["samples"], dtype=pl.Int64, strict=False),
        }
    )


def _good_steps(cols: dict[str, list | None]):
    """Which rows of ``_step_frame`` are steps: of the usual types, a positive finite
    step time, a finite loss or none, and counters that read where printed."""
    import polars as pl

    st, loss = pl.col("step_time_s"), pl.col("loss")
    return (
        pl.col("_ok")
        & (st > 0)
        & st.is_finite()
        & (loss.is_finite() | loss.is_null())
        & (pl.col("_mstep").is_not_null() | pl.Series([x is None for x in cols["mstep"]]))
        & (pl.col("_samples").is_not_null() | pl.Series([x is None for x in cols["samples"]]))
    )


def _columns(recs: list, vals: list, kinds: list, common, used: str, loss_key: str | None):
    """The records' step time, loss (of the usual kind of value), time and counters."""
    metas = [r.metadata or {} for r in recs]
    usual = [k == common for k in kinds]
    return {
        "t": [v[used] if u else None for v, u in zip(vals, usual, strict=True)],
        "loss": [v[loss_key] if u else None for v, u in zip(vals, usual, strict=True)]
        if loss_key
        else None,
        "time": [r.time_ms for r in recs],
        "mstep": [m.get("step") for m in metas],
        "samples": [m.get("samples_count") for m in metas],
    }


def _usual_types(ok: list[bool], cols: dict[str, list | None]) -> list[bool]:
    """``ok`` cleared for each record with a value of an unusual type: numbers only,
    no bool, and no float for time or counters (their text would read otherwise)."""
    none = type(None)
    for name, col in cols.items():
        if col is None:
            continue
        allowed = {int, float, none} if name in ("t", "loss") else {int, none}
        if set(map(type, col)) <= allowed:
            continue
        for i, x in enumerate(col):
            if type(x) not in allowed:
                ok[i] = False
    return ok


def _events(recs: list, nos: list[int], left: list[int]):
    """The event rows of records that are neither steps nor run config (a frame);
    one with a number a column cannot hold is left to the parser."""
    import polars as pl

    if not recs:
        return None
    cols: dict[str, list] = {k: [] for k in _EVENT_SCHEMA}
    for no, r in zip(nos, recs, strict=True):
        meta = r.metadata or {}
        m = meta.get("step")
        step = int(m) if isinstance(m, int | float) and m - m == 0 else None
        t = float(r.time_ms) if r.time_ms is not None else None
        if (
            not _int64(step, None)
            or (t is not None and t - t != 0)
            or (isinstance(m, int | float) and m - m != 0)
        ):
            left.append(no)
            continue
        cols["line_no"].append(no)
        cols["time_ms"].append(t)
        cols["event_type"].append(r.event_type)
        cols["key"].append(r.key)
        cols["value"].append(str(_encode(r.value)))
        cols["metadata"].append(str(_encode(meta)) if meta else None)
        cols["step"].append(step)
    if not cols["line_no"]:
        return None
    return pl.DataFrame(cols, schema=_schema(_EVENT_SCHEMA))


def _decode_all(payloads) -> list[_Typed] | None:
    """Every payload (a polars Series of JSON text) decoded in one call; None when
    one of them is no record of the usual types."""
    joined = payloads.str.strip_chars().str.join(",")[0]
    try:
        return _TYPED.decode("[" + joined + "]")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None


def _schema(kinds: dict[str, str]) -> dict:
    import polars as pl

    return {k: getattr(pl, v) for k, v in kinds.items()}


def _int64(a: Any, b: Any) -> bool:
    return all(v is None or -(2**63) <= v < 2**63 for v in (a, b))


_EVENT_SCHEMA = {
    "line_no": "Int64",
    "time_ms": "Float64",
    "event_type": "String",
    "key": "String",
    "value": "String",
    "metadata": "String",
    "step": "Int64",
}
_STEP_SCHEMA = {
    "line_no": "Int64",
    "step_time_s": "Float64",
    "loss": "Float64",
    "_time": "String",
    "_mstep": "Int64",
    "_mpos": "Boolean",
    "_samples": "Int64",
}


def _counters(mstep: Any, samples: Any) -> tuple[int | None, bool, int | None]:
    """(metadata.step as an integer, whether it is positive, samples_count as an
    integer); None where not a number."""
    m = _whole(mstep)
    return m, m is not None and mstep > 0, _whole(samples)


def _counted(frame, gbs: int | None, seq: int | None):
    """A bulk steps batch with its counters read as ``_consumed`` reads them (with
    the batch size and sequence length the log gave before it) and ``extra``."""
    import polars as pl

    m, sc, pos = pl.col("_mstep"), pl.col("_samples"), pl.col("_mpos")
    has_sc = sc.is_not_null()
    free = ~has_sc & m.is_not_null() & pos
    tok = free & pl.lit(bool(gbs and seq)) & ((m % (gbs * seq if gbs and seq else 1)) == 0)
    smp = free & ~tok & pl.lit(bool(gbs)) & ((m % (gbs or 1)) == 0)
    logged = pl.when(has_sc).then(m).when(free & ~tok & ~smp).then(m)
    extra = pl.concat_str(
        [
            pl.lit('"logged_step":') + logged.cast(pl.String),
            pl.lit('"time_ms":') + pl.col("_time"),
        ],
        separator=",",
        ignore_nulls=True,
    )
    return frame.with_columns(
        consumed_samples=pl.when(has_sc).then(sc).when(tok).then(m // (seq or 1)).when(smp).then(m),
        consumed_tokens=pl.when(tok).then(m),
        extra=pl.when(extra != "").then(pl.lit("{") + extra + pl.lit("}")),
    ).drop("_time", "_mstep", "_mpos", "_samples")


def _benchmark_defaults(benchmark: Any, no: int) -> Iterator[Config]:
    """What the benchmark's rules fix and the log may not print (model, seq_len)."""
    rules = BENCHMARKS.get(str(benchmark))
    if rules is None or rules.model is None:
        return
    origin = f"MLPerf {benchmark} rules (benchmark at log line {no})"
    values: dict[str, Any] = {"model": rules.model, "seq_len": rules.seq_len}
    if rules.lora:
        values["lora"] = True
    yield Config(values, no, origin)
    # MFU of MLPerf LLM runs is quoted against the bf16 peak (the logs do not say)
    yield Config({"dtype": "bf16"}, no, "assumed: MLPerf MFU against the bf16 peak")


# The gpt3 benchmark logs consumed tokens in metadata.step, llama31 the step
# index beside samples_count: tell them apart by the batch shape.
def _consumed(mstep: int | None, positive: bool, samples: int | None, gbs, seq) -> dict:
    """The counters of a step (``_counters``) as columns; ``_counted`` is the same
    rule over a batch."""
    out: dict = {}
    if samples is not None:
        out["consumed_samples"] = samples
        if mstep is not None:
            out["logged_step"] = mstep
        return out
    if mstep is None or not positive:
        return out
    if gbs and seq and mstep % (gbs * seq) == 0:
        out["consumed_tokens"] = mstep
        out["consumed_samples"] = mstep // seq
    elif gbs and mstep % gbs == 0:
        out["consumed_samples"] = mstep
    else:
        out["logged_step"] = mstep
    return out
