"""torchtitan metrics lines (torchtitan/components/metrics.py, ``MetricsProcessor.log``)::

    [titan] 2025-06-16 22:30:50,322 - root - INFO - step: 200  loss:  6.1384
    grad_norm: 0.8319  memory: 49.66GiB(52.28%)  tps: 5,856  tflops: 339.16  mfu: 34.29%

(one line, two-space separated, ANSI colours removed by the reader; ``grad_norm``
since 2025). The 2024 line (train.py, before ``MetricsProcessor``) has no ``[titan]``
prefix, no tflops, and ``wps`` where ``tps`` is now (the same tokens/s per GPU)::

    2024-10-03 15:01:18,520 - root - INFO - step: 117  loss:  3.9053
    memory: 36.20GiB(81.50%)  wps: 1,710  mfu: 23.50%
 Every rank prints unless filtered: copies of a step collapse to the
first. No step time is printed: it is the time between two logged steps divided
by the steps between them (``log_freq``), from the millisecond timestamps; the
first logged step has none. ``tps`` is tokens/s per GPU, ``tflops`` per GPU,
``mfu`` in percent (stored as a fraction; ``N/A`` under FP8/MX: left empty). The
validator's ``validate step: N  loss: L  memory: ...  tps: K`` (2025-07) is a
``validation`` event, never a training step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from llmbench.parsing import Event, Field, Parser, Record, Step, convert
from llmbench.reader import Line

FIELDS: dict[str, Field] = {
    "loss": Field("loss"),
    "grad_norm": Field("grad_norm"),
    "tps": Field("tokens_per_s_per_gpu"),
    "wps": Field("tokens_per_s_per_gpu"),  # 2024: "words" per second, the same figure
    "tflops": Field("tflops_per_gpu_logged"),
    "mfu": Field("mfu_logged", float, 0.01),
}
LINE_RE = re.compile(
    r"(?:(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - \S+ - INFO - )?"
    r"step:\s*(?P<step>\d{1,18})\s+(?P<rest>loss:.*)"
)
PAIR_RE = re.compile(r"(?P<k>[a-z_]+):\s+(?P<v>[-+\d.,eEnaif]+%?)")
MEMORY_RE = re.compile(r"memory:\s+(?P<gib>[\d.]+)GiB\((?P<pct>[\d.]+)%\)")


class TorchTitanParser(Parser):
    name = "torchtitan"
    framework = "torchtitan"
    description = "`step: N  loss: L  memory: XGiB(Y%)  tps: K  tflops: T  mfu: M%` (2024: wps)"
    produces = ("step_time_s", "loss", "grad_norm", "tflops_per_gpu_logged", "mfu_logged")

    def detect(self, head: Sequence[str]) -> float:
        score = 0.0
        for text in head:
            if "step:" in text and ("tps:" in text or "wps:" in text) and "loss:" in text:
                return 0.95
            if "[titan]" in text or "torchtitan" in text:
                score = 0.6
        return score

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        prev: tuple[int, datetime] | None = None
        validated: set[str] = set()
        for no, text, rank in lines:
            if "tps:" not in text and "wps:" not in text:
                continue
            m = LINE_RE.search(text)
            if m is None:
                continue
            if text[max(0, m.start() - 9) : m.start()] == "validate ":
                if m["step"] not in validated:  # every rank prints it: read once
                    validated.add(m["step"])
                    yield _validation(m, no)  # MetricsProcessor.log_validation (2025-07+)
                continue
            step = int(m["step"])
            values = _fields(m["rest"])
            mem = MEMORY_RE.search(m["rest"])
            if mem:
                values["max_reserved_gib"] = float(mem["gib"])
                values["max_reserved_pct"] = float(mem["pct"])
            if m["ts"]:
                ts = datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S,%f")
                values["timestamp"] = ts.isoformat(timespec="milliseconds")
                if prev is not None and step > prev[0]:
                    values["step_time_s"] = _per_step(ts - prev[1], step - prev[0])
                # a lower step printed later is a restart (the frames layer starts a new
                # segment); printed at the same time it is a slow rank's copy
                if prev is None or step > prev[0] or (step < prev[0] and ts > prev[1]):
                    prev = (step, ts)
            yield Step(step, values, no, rank)


def _per_step(elapsed: timedelta, steps: int) -> float:
    """Seconds per step, as decimal arithmetic gives it: 47.901 s over 10 steps is
    4.7901, not the 4.790100000000001 of binary floats."""
    return float(Decimal(elapsed // timedelta(microseconds=1)) / Decimal(1_000_000 * steps))


def _fields(rest: str) -> dict:
    """The ``FIELDS`` of a line's ``label: value`` pairs, as canonical columns."""
    values: dict = {}
    for p in PAIR_RE.finditer(rest):
        field = FIELDS.get(p["k"])
        if field is not None:
            v = convert(p["v"], field)
            if v is not None:
                values[field.column] = v
    return values


def _validation(m: re.Match, no: int) -> Event:
    """``validate step: N  loss: L  memory: ...  tps: K`` as an event, never a step."""
    return Event("validation", _fields(m["rest"]), no, step=int(m["step"]))
