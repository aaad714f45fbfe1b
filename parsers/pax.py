"""Paxml (JAX) logs: ``[PAX STATUS]: train_step() took 7.47 seconds.``

paxml/programs.py logs ``'[PAX STATUS]: train_step() took %f seconds.'`` through
absl (glog prefix ``I0411 15:03:26.866614 140737350317184 programs.py:366] ``),
with ``log_first_n(..., 20)`` in recent versions: only the first 20 steps of a
run carry it. Those lines become steps numbered 1, 2, ... in order, with the
timestamp of the prefix (glog prints no year: ``--04-11T15:03:26.866614``).

paxml/summary_utils.py logs ``step = N, loss= L, steps/sec S`` at summary
steps; such a line adds loss and steps/s to step N, and where step N has no
``took`` line it becomes a step whose time is 1/steps-per-second (the mean over
the summary interval).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from llmbench.parsing import Event, Parser, Record, Step, glog_timestamp, number
from llmbench.reader import Line

TOOK_RE = re.compile(
    r"\[PAX STATUS\]: train_step\(\) took (?P<t>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?) seconds\."
)
SUMMARY_RE = re.compile(
    r"\bstep = (?P<step>\d{1,18}), loss= (?P<loss>[-+\w.]+?)(?:, steps/sec (?P<sps>[-+\w.]+?))?(?:,|\s|$)"
)


# paxml/programs.py ``_compute_steps_per_sec``: ``logging.info('steps/sec: %f', ...)``
RATE_RE = re.compile(r"\bsteps/sec: (?P<v>[-+\d.eE]+|nan|inf)\s*$")


class PaxParser(Parser):
    name = "pax"
    framework = "Paxml"
    description = (
        "`[PAX STATUS]: train_step() took S seconds.` and `step = N, loss= L, steps/sec S`"
    )
    produces = ("step_time_s", "loss", "timestamp")

    def detect(self, head: Sequence[str]) -> float:
        score = 0.0
        for text in head:
            if "[PAX STATUS]" in text:
                return 0.95
            if "paxml" in text:
                score = 0.5
        return score

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        steps: dict[int, tuple[dict, int, int | None]] = {}
        took = 0
        for no, text, rank in lines:
            if "PAX STATUS" in text and "took" in text:
                m = TOOK_RE.search(text)
                if m is None:
                    continue
                took += 1
                values = {"step_time_s": float(m["t"])}
                ts = glog_timestamp(text)
                if ts:
                    values["timestamp"] = ts
                steps[took] = (values, no, rank)
            elif "step = " in text and "loss=" in text:
                m = SUMMARY_RE.search(text)
                if m is None:
                    continue
                step = int(m["step"])
                values, line_no, r = steps.get(step, ({}, no, rank))
                loss = number(m["loss"])
                if loss is not None:
                    values["loss"] = float(loss)
                sps = number(m["sps"]) if m["sps"] else None
                if sps and sps > 0:
                    values["steps_per_s"] = float(sps)
                    # 1 / steps-per-second on the printed digits (no float noise)
                    values.setdefault("step_time_s", float(1 / Decimal(m["sps"])))
                steps[step] = (values, line_no, r)
            elif "steps/sec: " in text:  # programs.py every 10 steps: no step number
                m = RATE_RE.search(text)
                v = number(m["v"]) if m else None
                if v is not None:
                    yield Event("steps_per_sec", v, no, time_ms=None)
        for step in sorted(steps):
            values, line_no, rank = steps[step]
            yield Step(step, values, line_no, rank)
