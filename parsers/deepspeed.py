"""DeepSpeed engine logs, alone or around Megatron-DeepSpeed iteration lines.

- PipelineEngine (deepspeed/runtime/pipe/engine.py) prints, every
  ``steps_per_print``::

      steps: 2 loss: 12.8004 iter time (s): 145.206 samples/sec: 7.052

- the engine's ``_report_progress`` (``log_dist``, rank 0)::

      [2021-05-27 19:54:20,386] [INFO] [logging.py:60:log_dist] [Rank 0] step=2, skipped=0, lr=[3.75e-05, 3.75e-05], mom=[...]

- the ThroughputTimer (deepspeed/utils/timer.py; this shape since 0.8.0, 2022-12)::

      epoch=0/micro_step=34/global_step=34, RunningAvgSamplesPerSec=7.86, CurrSamplesPerSec=8.00, MemAllocated=0.26GB, MaxMemAllocated=9.02GB

  and before (0.7.x, ``{epoch}/{step}`` after the logger prefix)::

      [2022-08-29 06:58:56,176] [INFO] [timer.py:198:stop] 0/20, RunningAvgSamplesPerSec=232.73, CurrSamplesPerSec=227.48, MemAllocated=0.36GB, MaxMemAllocated=15.06GB

- the flops profiler summary block (``Profile Summary at step N:`` ...
  ``FLOPS per GPU = 3 * fwd flops per GPU / iter latency: 96.31 TFLOPS``).

Megatron-DeepSpeed prints its own `` iteration N/ M | ...`` line for the same
step; it is read too, and the frames layer merges the two records of a step
(the first printed wins, the other only adds fields), so nothing is counted twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from llmbench.parsers.megatron_deepspeed import ITER_RE, parse_fields

from llmbench.parsing import Event, Parser, Record, Step, number, scaled_text
from llmbench.reader import Line

PIPE_RE = re.compile(
    r"\bsteps: (?P<step>\d{1,18}) loss: (?P<loss>\S+) iter time \(s\): (?P<t>\S+)"
    r" samples/sec: (?P<sps>\S+)"
)
PROGRESS_RE = re.compile(
    r"\[Rank 0\] step=(?P<step>\d{1,18}), skipped=(?P<skipped>\d{1,18}), lr=\[(?P<lr>[^,\]]+)"
)
TIMER_RE = re.compile(
    r"(?:global_step=|\] \d{1,18}/)(?P<step>\d{1,18}), RunningAvgSamplesPerSec=(?P<avg>[\d.eE+-]+), "
    r"CurrSamplesPerSec=(?P<cur>[\d.eE+-]+)(?:, MemAllocated=(?P<mem>[\d.]+)GB, "
    r"MaxMemAllocated=(?P<maxmem>[\d.]+)GB)?"
)
PROFILE_STEP_RE = re.compile(r"Profile Summary at step (?P<step>\d{1,18})")
# the summary rows (60 columns wide before 0.10.1, 70 after; the multiplier is 3, or
# 4 with activation recompute since 0.9.3; numbers ``:g``-formatted since 0.10.1)
PROFILE_RE = re.compile(
    r"^\s*(?P<k>iter latency|samples/second|FLOPS per GPU = [\d.]+ \* fwd flops per GPU / iter "
    r"latency|params per (?:GPU|gpu)|fwd flops per GPU):\s+(?P<v>-?[\d.]+(?:e[-+]?\d+)?)\s*"
    r"(?P<unit>[KMGTPmu]?)"
)
SI_EXP = {"": 0, "K": 3, "M": 6, "G": 9, "T": 12, "P": 15, "m": -3, "u": -6}


class DeepSpeedParser(Parser):
    name = "deepspeed"
    framework = "DeepSpeed"
    description = "`steps: N loss: L iter time (s): T samples/sec: S`, `[Rank 0] step=`, timers"
    family = "megatron"
    produces = ("step_time_s", "loss", "samples_per_s", "learning_rate", "skipped_iterations")

    def detect(self, head: Sequence[str]) -> float:
        score = 0.0
        for text in head:
            if "iter time (s):" in text and PIPE_RE.search(text):
                return 0.97
            if any(mark in text for mark in ("] step=", "CurrSamplesPerSec=", "Flops Profiler")):
                score = max(score, 0.55)
        return score

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        profile = _Profile()
        skipped = 0  # the engine's count of skipped steps at its last report
        for no, text, rank in lines:
            step = _step_line(text)
            if step is not None:
                total = step[1].get("skipped_total")
                if total is not None:
                    step[1]["skipped_iterations"] = max(0, total - skipped)
                    skipped = total
                yield Step(step[0], step[1], no, rank)
            else:
                yield from profile.line(text, no)


def _pipe(m: re.Match) -> tuple[int, dict]:
    values = {
        "step_time_s": number(m["t"]),
        "loss": number(m["loss"]),
        "samples_per_s": number(m["sps"]),
    }
    return int(m["step"]), {k: v for k, v in values.items() if v is not None}


def _iteration(m: re.Match) -> tuple[int, dict]:
    values, extra, _ = parse_fields(m["rest"])
    return int(m["step"]), {**values, **extra}


def _progress(m: re.Match) -> tuple[int, dict]:
    # skipped= counts since the start (the engine's skipped_steps); parse() makes it
    # the count in the interval, as Megatron's "number of skipped iterations" is
    values: dict = {"skipped_total": int(m["skipped"])}
    lr = number(m["lr"])
    if lr is not None:
        values["learning_rate"] = lr
    return int(m["step"]), values


def _timer(m: re.Match) -> tuple[int, dict]:
    found = {
        "samples_per_s": number(m["cur"]),
        "running_avg_samples_per_s": number(m["avg"]),
        "max_allocated_gb": number(m["maxmem"] or ""),
    }
    return int(m["step"]), {k: v for k, v in found.items() if v is not None}


# the step lines, tried in order: (substrings the line holds, pattern, its values)
STEP_LINES = (
    (("iter time (s):",), PIPE_RE, _pipe),
    (("iteration", "|"), ITER_RE, _iteration),
    (("] step=",), PROGRESS_RE, _progress),
    (("CurrSamplesPerSec=",), TIMER_RE, _timer),
)


def _step_line(text: str) -> tuple[int, dict] | None:
    """(step, values) of the first step line shape ``text`` has, else None."""
    for needles, pattern, values in STEP_LINES:
        if all(n in text for n in needles):
            m = pattern.search(text)
            if m:
                return values(m)
    return None


class _Profile:
    """The flops profiler's summary being read: its step and the values so far."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.values: dict = {}

    def line(self, text: str, no: int) -> Iterator[Record]:
        if "Profile Summary at step" in text:
            m = PROFILE_STEP_RE.search(text)
            self.step, self.values = int(m["step"]), {}
            return
        m = PROFILE_RE.match(text) if self.step is not None else None
        if m is None:
            return
        key = "FLOPS per GPU" if m["k"].startswith("FLOPS per GPU") else m["k"]
        # in SI units (TFLOP/s for the FLOPS row), on the printed digits
        exp = SI_EXP[m["unit"]] - (12 if key == "FLOPS per GPU" else 0)
        v = scaled_text(m["v"], float(f"1e{exp}"))
        if v is None:
            return
        self.values[key] = v
        if "FLOPS per GPU" in self.values and "samples/second" in self.values:
            yield Event(
                "flops_profiler",
                {
                    "tflops_per_gpu": self.values["FLOPS per GPU"],
                    "iter_latency_s": self.values.get("iter latency"),
                    "samples_per_s": self.values["samples/second"],
                },
                no,
                step=self.step,
            )
            self.step = None
