"""MLPerf logging (``mlperf_logging.mllog``): ``:::MLLOG {json}`` records.

Every record becomes an event (an identical record repeated by other ranks within
the last ``RECENT`` records is stored once). ``submission_*``, ``global_batch_size``,
``max_sequence_length``, ``seed``, ``opt_*`` ... become run config; ``run_start``/``run_stop`` give the
run's times and ``run_stop``'s ``metadata.status`` its status.
``tracked_stats`` records with ``train_step_timing`` (NeMo) or
``train_step_time`` become steps numbered 1, 2, ...: their ``metadata.step``
counts consumed tokens or samples (kept in ``consumed_tokens`` /
``consumed_samples``). Rounds before v0.7 print seconds, not ms: v0.6
``:::MLL <seconds> key: {json}``, v0.5 ``:::MLPv0.5.0 <bench> <seconds>
(file:line) key[: value]`` (``run_stop: {"success": true}``). Anything before
the token (rank prefixes, launcher text) is ignored, as the official parser does;
a line with the token that does not parse is counted (``mllog_parse_errors``).
A known benchmark (``submission_benchmark``) sets the model and sequence length
its rules fix (``llmbench.mlperf.BENCHMARKS``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from llmbench.mlperf import BENCHMARKS
from llmbench.parsing import Config, Event, Note, Parser, Recent, Record, Step

try:  # a fast decoder where installed (the `fast` extra), the stdlib otherwise
    from orjson import JSONDecodeError as _JSONError
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    from json import JSONDecodeError as _JSONError
    from json import loads as _loads

from llmbench.reader import Line

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
RECENT = 4096  # identical records within this many are copies from other ranks
STEP_TIME_KEYS = ("train_step_timing", "train_step_time", "train_step_timing in s")


class _Malformed(Exception):
    pass


def _json(text: str) -> Any:
    try:
        return _loads(text)
    except (_JSONError, ValueError, TypeError) as e:
        raise _Malformed(type(e).__name__) from None


def _mllog(text: str, at: int) -> dict:
    rec = _json(text[at + len(TOKEN) :].strip())
    if not isinstance(rec, dict) or "key" not in rec:
        raise _Malformed("not an MLLOG record")
    return rec


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


class MllogParser(Parser):
    name = "mllog"
    framework = "MLPerf"
    description = "MLPerf `:::MLLOG {json}` records (`:::MLL` v0.6, `:::MLPv0.5` v0.5)"
    produces = ("step_time_s", "loss", "consumed_samples", "consumed_tokens")
    needles = (":::ML",)

    def detect(self, head: Sequence[str]) -> float:
        for text in head:
            if any(t in text for t in TOKENS):
                return 1.0
        return 0.0

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        seen = Recent(RECENT)
        config_seen: set[str] = set()
        gbs = seq = None
        n_steps = 0
        malformed = 0
        benchmark = None
        last = 0
        stopped = False
        for no, text, rank in lines:
            last = no
            if ":::ML" not in text:
                continue
            at, decode = text.find(TOKEN), _mllog
            if at < 0:
                found = next(
                    ((at, decode) for token, decode in DECODERS if (at := text.find(token)) >= 0),
                    None,
                )
                if found is None:
                    continue
                at, decode = found
            payload = text[at:]
            if seen.repeat(payload):
                continue  # every rank printed it
            try:
                rec = decode(text, at)
            except _Malformed as e:
                malformed += 1
                yield Note(f"malformed MLPerf log line skipped ({e})", no)
                continue
            key = str(rec.get("key"))
            value = rec.get("value")
            meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
            time_ms = rec.get("time_ms")
            time_ms = float(time_ms) if isinstance(time_ms, int | float) else None
            mstep = meta.get("step")
            if rec.get("benchmark") and "submission_benchmark" not in config_seen:
                config_seen.add("submission_benchmark")
                yield Config({"benchmark": rec["benchmark"]}, no)
            yield Event(
                key,
                value,
                no,
                time_ms=time_ms,
                event_type=rec.get("event_type"),
                step=int(mstep) if isinstance(mstep, int | float) else None,
                metadata=meta or None,
            )
            if key in CONFIG_KEYS and key not in config_seen and not isinstance(value, dict | list):
                config_seen.add(key)
                if key == "global_batch_size" and isinstance(value, int | float):
                    gbs = int(value)
                elif key == "max_sequence_length" and isinstance(value, int | float):
                    seq = int(value)
                yield Config({CONFIG_KEYS[key]: value}, no)
                if key == "submission_benchmark":
                    benchmark = (value, no)
            elif key.startswith("opt_") and key not in config_seen:
                config_seen.add(key)
                yield Config({key: value}, no)
            elif key == "run_start" and "run_start" not in config_seen and time_ms is not None:
                config_seen.add("run_start")
                yield Config({"start_time": time_ms / 1000.0, "run_start_ms": time_ms}, no)
            elif key == "run_stop" and not stopped and time_ms is not None:
                stopped = True
                yield Config(
                    {
                        "end_time": time_ms / 1000.0,
                        "run_stop_ms": time_ms,
                        "status": meta.get("status"),
                    },
                    no,
                )
            elif key == "tracked_stats" and isinstance(value, dict):
                t = next((value[k] for k in STEP_TIME_KEYS if k in value), None)
                if not isinstance(t, int | float):
                    continue
                n_steps += 1
                values: dict = {"step_time_s": float(t)}
                loss = value.get("reduced_train_loss", value.get("train_loss"))
                if isinstance(loss, int | float):
                    values["loss"] = float(loss)
                values.update(_consumed(mstep, meta.get("samples_count"), gbs, seq))
                yield Step(n_steps, values, no, rank)
        if benchmark is not None:  # last: what the log itself says wins
            yield from _benchmark_defaults(*benchmark)
        if malformed:
            # the official summarizer drops a run with any line it cannot parse
            yield Config({"mllog_parse_errors": malformed}, last, "log (malformed MLPerf lines)")


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
def _consumed(mstep, samples_count, gbs: int | None, seq: int | None) -> dict:
    out: dict = {}
    if isinstance(samples_count, int | float):
        out["consumed_samples"] = int(samples_count)
        if isinstance(mstep, int | float):
            out["logged_step"] = int(mstep)
        return out
    if not isinstance(mstep, int | float) or mstep <= 0:
        return out
    mstep = int(mstep)
    if gbs and seq and mstep % (gbs * seq) == 0:
        out["consumed_tokens"] = mstep
        out["consumed_samples"] = mstep // seq
    elif gbs and mstep % gbs == 0:
        out["consumed_samples"] = mstep
    else:
        out["logged_step"] = mstep
    return out
