"""MaxText (JAX) step lines, from ``metric_logger.py`` (earlier ``train.py``)::

    I0811 21:55:06.119312 138304841739136 metric_logger.py:226] completed step: 2,
    seconds: 10.228, TFLOP/s/device: 350.869, Tokens/s/device: 19222.175,
    total_weights: 1572864, loss: 12.980, lm_loss: 12.980, perplexity: 433463.719

(one line). 2023 versions print ``completed step: N, seconds: S, TFLOP/s: T,
loss: L``. ``TFLOP/s/device`` and ``Tokens/s/device`` are per accelerator;
``total_weights`` is the number of non-padding tokens in the global batch.
The first steps include compilation: the metrics layer's warm-up rule skips them.
Evaluation lines (``eval metrics after step: N, loss=...``) are ``validation``
events, never steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from llmbench.parsing import Event, Field, Parser, Record, Step, convert, glog_timestamp, number
from llmbench.reader import Line

FIELDS: dict[str, Field] = {
    "seconds": Field("step_time_s"),
    "TFLOP/s/device": Field("tflops_per_gpu_logged"),
    "TFLOP/s": Field("tflops_per_gpu_logged"),
    "Tokens/s/device": Field("tokens_per_s_per_gpu"),
    "total_weights": Field("tokens_per_step", int),
    "loss": Field("loss"),
}
STEP_RE = re.compile(r"completed step: (?P<step>\d{1,18}), (?P<rest>.*)")
# evaluation, never a step: ``average loss after step=99: eval_loss=2.3, ...`` (2024),
# ``eval metrics after step: 4, loss=9.855, total_weights=75264.0`` (2025),
# ``Completed eval after train step 4, loss=9.855, perplexity=...`` (2026)
EVAL_RE = re.compile(
    r"(?:average loss after step=|eval metrics after step: |Completed eval after train step )"
    r"(?P<step>\d{1,18})[:,]?\s*(?P<rest>.*)"
)
EVAL_PAIR_RE = re.compile(r"(?P<k>[A-Za-z_][\w ]*?)=(?P<v>[^,\s]+)")


class MaxTextParser(Parser):
    name = "maxtext"
    framework = "MaxText"
    description = "`completed step: N, seconds: S, TFLOP/s/device: T, Tokens/s/device: K, ...`"
    produces = ("step_time_s", "tflops_per_gpu_logged", "loss")

    def detect(self, head: Sequence[str]) -> float:
        for text in head:
            if "completed step:" in text and "seconds:" in text:
                return 0.95
        return 0.0

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        for no, text, rank in lines:
            if "after step" in text or "after train step" in text:
                m = EVAL_RE.search(text)
                if m is not None:
                    yield _eval(m, no)
                continue
            if "completed step:" not in text:
                continue
            m = STEP_RE.search(text)
            if m is None:
                continue
            values: dict = {}
            for seg in m["rest"].split(", "):
                label, _, raw = seg.partition(": ")
                field = FIELDS.get(label.strip(), Field(label.strip()))
                v = convert(raw, field)
                if v is not None:
                    values[field.column] = v
            ts = glog_timestamp(text)
            if ts:
                values["timestamp"] = ts
            if "step_time_s" in values:
                yield Step(int(m["step"]), values, no, rank)


def _eval(m: re.Match, no: int) -> Event:
    """An evaluation's metrics (``loss``, ``total_weights``, ...) as an event."""
    values: dict = {}
    for p in EVAL_PAIR_RE.finditer(m["rest"]):
        v = number(p["v"])
        if v is not None:
            values["loss" if p["k"].strip() == "eval_loss" else p["k"].strip()] = v
    return Event("validation", values, no, step=int(m["step"]))
