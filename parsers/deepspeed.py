"""DeepSpeed engine logs, alone or around Megatron-DeepSpeed iteration lines.

- PipelineEngine (deepspeed/runtime/pipe/engine.py) prints, every
  ``steps_per_print``::

      steps: 2 loss: 12.8004 iter time (s): 145.206 samples/sec: 7.052

- the engine's ``_report_progress`` (``log_dist``, rank 0)::

      [2021-05-27 19:54:20,386] [INFO] [logging.py:60:log_dist] [Rank 0] step=2, skipped=0, lr=[3.75e-05, 3.75e-05], mom=[...]

- the ThroughputTimer (deepspeed/utils/timer.py, >= 0.9)::

      epoch=0/micro_step=34/global_step=34, RunningAvgSamplesPerSec=7.86, CurrSamplesPerSec=8.00, MemAllocated=0.26GB, MaxMemAllocated=9.02GB

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

from llmbench.parsing import Event, Parser, Record, Step, number
from llmbench.reader import Line

PIPE_RE = re.compile(
    r"\bsteps: (?P<step>\d{1,18}) loss: (?P<loss>\S+) iter time \(s\): (?P<t>\S+)"
    r" samples/sec: (?P<sps>\S+)"
)
PROGRESS_RE = re.compile(
    r"\[Rank 0\] step=(?P<step>\d{1,18}), skipped=(?P<skipped>\d{1,18}), lr=\[(?P<lr>[^,\]]+)"
)
TIMER_RE = re.compile(
    r"global_step=(?P<step>\d{1,18}), RunningAvgSamplesPerSec=(?P<avg>[\d.eE+-]+), "
    r"CurrSamplesPerSec=(?P<cur>[\d.eE+-]+)(?:, MemAllocated=(?P<mem>[\d.]+)GB, "
    r"MaxMemAllocated=(?P<maxmem>[\d.]+)GB)?"
)
PROFILE_STEP_RE = re.compile(r"Profile Summary at step (?P<step>\d{1,18})")
PROFILE_RE = re.compile(
    r"^\s*(?P<k>iter latency|samples/second|FLOPS per GPU = 3 \* fwd flops per GPU / iter latency|"
    r"params per GPU|fwd flops per GPU):\s+(?P<v>[\d.]+)\s*(?P<unit>[KMGTP]?)"
)
SI = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}


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
        profile_step: int | None = None
        profile: dict = {}
        for no, text, rank in lines:
            if "iter time (s):" in text:
                m = PIPE_RE.search(text)
                if m:
                    values = {
                        "step_time_s": number(m["t"]),
                        "loss": number(m["loss"]),
                        "samples_per_s": number(m["sps"]),
                    }
                    yield Step(
                        int(m["step"]), {k: v for k, v in values.items() if v is not None}, no, rank
                    )
                    continue
            if "iteration" in text and "|" in text:
                m = ITER_RE.search(text)
                if m:
                    values, extra, _ = parse_fields(m["rest"])
                    yield Step(int(m["step"]), {**values, **extra}, no, rank)
                    continue
            if "] step=" in text:
                m = PROGRESS_RE.search(text)
                if m:
                    values = {"skipped_iterations": int(m["skipped"])}
                    lr = number(m["lr"])
                    if lr is not None:
                        values["learning_rate"] = lr
                    yield Step(int(m["step"]), values, no, rank)
                    continue
            if "CurrSamplesPerSec=" in text:
                m = TIMER_RE.search(text)
                if m:
                    found = {
                        "samples_per_s": number(m["cur"]),
                        "running_avg_samples_per_s": number(m["avg"]),
                        "max_allocated_gb": number(m["maxmem"] or ""),
                    }
                    values = {k: v for k, v in found.items() if v is not None}
                    yield Step(int(m["step"]), values, no, rank)
                    continue
            if "Profile Summary at step" in text:
                m = PROFILE_STEP_RE.search(text)
                profile_step, profile = int(m["step"]), {}
                continue
            if profile_step is not None:
                m = PROFILE_RE.match(text)
                if m:
                    v = number(m["v"])
                    if v is None:
                        continue
                    profile[m["k"]] = v * SI[m["unit"]]
                    if m["k"].startswith("FLOPS per GPU"):
                        yield Event(
                            "flops_profiler",
                            {
                                "tflops_per_gpu": profile[m["k"]] / 1e12,
                                "iter_latency_s": profile.get("iter latency"),
                                "samples_per_s": profile.get("samples/second"),
                            },
                            no,
                            step=profile_step,
                        )
                        profile_step = None
