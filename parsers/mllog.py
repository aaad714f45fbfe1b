"""MLPerf logging (``mlperf_logging.mllog``): ``:::MLLOG {json}`` records.

Every record becomes an event (identical records repeated by every rank are
stored once). ``submission_*``, ``global_batch_size``, ``max_sequence_length``,
``seed``, ``opt_*`` ... become run config; ``run_start``/``run_stop`` give the
run's times and ``run_stop``'s ``metadata.status`` its status.
``tracked_stats`` records with ``train_step_timing`` (NeMo) or
``train_step_time`` become steps numbered 1, 2, ...: their ``metadata.step``
counts consumed tokens or samples (kept in ``consumed_tokens`` /
``consumed_samples``). Rounds before v0.7 print ``:::MLL <seconds> key: {json}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from llmbench.parsing import Config, Event, Note, Parser, Record, Step

try:  # a fast decoder where installed (the `fast` extra), the stdlib otherwise
    from orjson import JSONDecodeError as _JSONError
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    from json import JSONDecodeError as _JSONError
    from json import loads as _loads

from llmbench.reader import Line

TOKEN = ":::MLLOG"
OLD_RE = re.compile(r":::MLL (?P<ts>\d+(?:\.\d+)?) (?P<key>\w+): (?P<json>\{.*\})\s*$")

# MLLOG key -> run config name
CONFIG_KEYS = {
    "global_batch_size": "global_batch_size",
    "max_sequence_length": "seq_len",
    "submission_benchmark": "benchmark",
    "submission_org": "submitter",
    "submission_platform": "system",
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
STEP_TIME_KEYS = ("train_step_timing", "train_step_time")


class MllogParser(Parser):
    name = "mllog"
    framework = "MLPerf"
    description = "MLPerf `:::MLLOG {json}` records (and `:::MLL` before v0.7)"
    produces = ("step_time_s", "loss", "consumed_samples", "consumed_tokens")

    def detect(self, head: Sequence[str]) -> float:
        for text in head:
            if TOKEN in text or ":::MLL " in text:
                return 1.0
        return 0.0

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        seen: set[int] = set()
        config_seen: set[str] = set()
        gbs = seq = None
        n_steps = 0
        stopped = False
        for no, text, rank in lines:
            if ":::MLL" not in text:
                continue
            at = text.find(TOKEN)
            if at >= 0:
                payload = text[at + len(TOKEN) :].strip()
                try:
                    rec = _loads(payload)
                    if not isinstance(rec, dict) or "key" not in rec:
                        raise ValueError("not an MLLOG record")
                except (_JSONError, ValueError, TypeError) as e:
                    yield Note(f"malformed MLLOG payload skipped ({type(e).__name__})", no)
                    continue
            else:
                m = OLD_RE.search(text)
                if m is None:
                    continue
                payload = m.group(0)
                try:
                    body = _loads(m["json"])
                except (_JSONError, ValueError) as e:
                    yield Note(f"malformed MLL payload skipped ({type(e).__name__})", no)
                    continue
                if not isinstance(body, dict):
                    body = {"value": body}
                rec = {
                    "time_ms": float(m["ts"]) * 1000.0,
                    "event_type": None,
                    "key": m["key"],
                    "value": body.get("value"),
                    "metadata": body.get("metadata"),
                }
            h = hash(payload)
            if h in seen:
                continue
            seen.add(h)
            key = str(rec.get("key"))
            value = rec.get("value")
            meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
            time_ms = rec.get("time_ms")
            time_ms = float(time_ms) if isinstance(time_ms, int | float) else None
            mstep = meta.get("step")
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
