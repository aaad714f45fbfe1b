"""Hugging Face Trainer logs: the dicts ``Trainer.log`` prints, and the summary.

``ProgressCallback.on_log`` writes each logging step's dict (Python repr)::

    {'loss': 2.119, 'grad_norm': 37.657958984375, 'learning_rate': 4.58e-05, 'epoch': 0.25}

with no step number: the steps are stored with ``step`` null, in line order (the
log says only that they are ``logging_steps`` apart). transformers 5.x prints every
value as a string (``{'loss': '83.94', 'grad_norm': '1.234', ...}``): such strings
are read as the numbers they print. Evaluation dicts (``{'eval_loss': ...}``) are
``validation`` events, never steps. The end of training prints, once per process,
``{'train_runtime': 919.097, 'train_samples_per_second': 1.088, ...}`` and
``trainer_pt_utils`` a ``***** train metrics *****`` table (``train_runtime =
0:15:19.02``): these become events and run settings, and with ``Total optimization
steps = N`` (printed at the start) the run's mean step time, ``train_runtime / N``
(warm-up included: the log prints nothing finer). Dicts are read with
``ast.literal_eval`` (data only, never evaluated as code).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation

from llmbench.parsing import Config, Event, Note, Parser, Record, Step, number
from llmbench.reader import Line

STEP_KEYS = {"loss": "loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm"}
DICT_RE = re.compile(r"\{'(?:loss|train_\w+|eval_\w+)'.*\}")
METRIC_RE = re.compile(r">>\s+(?P<k>train_\w+|epoch)\s+=\s+(?P<v>\S+)\s*$")
HMS_RE = re.compile(r"^(?P<h>\d{1,9}):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)$")
TOTAL_RE = re.compile(r"Total optimization steps = (?P<n>[\d,]{1,24})\s*$")
MAX_DICT = 10_000  # characters: a longer "dict" is not Trainer output
# a value printed as a bare ``nan``/``inf`` (4.x: ``'grad_norm': nan``): quoted to read
BARE_RE = re.compile(r"(?<=: )(-?inf|nan)(?=[,}])")


def _value(v):
    """A dict value as a number where it prints one (5.x quotes them: ``'83.94'``)."""
    if isinstance(v, str):
        n = number(v)
        return v if n is None else n
    return v


def _dict(text: str) -> tuple[dict, dict] | None:
    """(the dict with numbers read, the dict as printed) of a line's Trainer dict."""
    m = DICT_RE.search(text)
    if m is None or len(m.group()) > MAX_DICT:
        return None
    text = m.group()
    if "nan" in text or "inf" in text:  # repr of a float('nan'): not a literal
        text = BARE_RE.sub(r"'\1'", text)
    try:
        d = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(d, dict) or not all(isinstance(k, str) for k in d):
        return None
    return {k: _value(v) for k, v in d.items()}, d


def _printed(d: dict, raw: dict, key: str) -> Decimal | None:
    """``d[key]`` as the decimal the log printed (a 5.x string, or a 4.x float's repr)."""
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        return None
    try:
        return Decimal(raw[key] if isinstance(raw.get(key), str) else repr(v))
    except InvalidOperation:
        return None


def _steps_run(runtime: Decimal, per_s: Decimal) -> int | None:
    """The step count ``runtime x steps_per_second`` pins down: the one integer
    within the rounding of both printed numbers (half a unit of their last digit)."""
    lo = (abs(runtime) - _half_unit(runtime)) * (per_s - _half_unit(per_s))
    hi = (abs(runtime) + _half_unit(runtime)) * (per_s + _half_unit(per_s))
    first, last = math.ceil(lo), math.floor(hi)
    return first if first == last and first > 0 else None


def _half_unit(d: Decimal) -> Decimal:
    return Decimal(5).scaleb(d.as_tuple().exponent - 1)


def _mean_step_time(d: dict, raw: dict, steps: int | None, no: int) -> Config | None:
    """The summary's mean step time: ``train_runtime / steps`` on the printed digits
    (steps from ``Total optimization steps``, else from runtime x steps/s when that
    pins one count), else ``1 / train_steps_per_second``."""
    runtime = _printed(d, raw, "train_runtime")
    per_s = _printed(d, raw, "train_steps_per_second")
    if runtime is not None and steps is None and per_s:
        steps = _steps_run(runtime, per_s)
    if runtime is not None and steps:
        why = f"log line {no}: train_runtime {runtime} s / {steps} steps"
        return Config({"summary_step_time_s": float(runtime / steps)}, no, why)
    if per_s:
        why = f"log line {no}: 1 / train_steps_per_second {per_s} (as rounded in the log)"
        return Config({"summary_step_time_s": float(1 / per_s)}, no, why)
    return None


class HFTrainerParser(Parser):
    name = "hf_trainer"
    framework = "Hugging Face Transformers"
    description = (
        "`{'loss': L, 'learning_rate': ..., 'epoch': E}` dicts (4.x; 5.x quoted), eval "
        "dicts, the train summary"
    )
    produces = ("loss", "learning_rate", "grad_norm")

    def detect(self, head: Sequence[str]) -> float:
        score = 0.0
        for text in head:
            if "{'loss':" in text or "{'train_runtime':" in text or "{'eval_loss':" in text:
                return 0.9
            if "[INFO|trainer.py" in text:
                score = 0.6
        return score

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        reading = _Reading()
        for no, text, rank in lines:
            if "{'" in text:
                yield from reading.trainer_dict(text, no, rank)
            elif "Total optimization steps" in text:
                reading.total(text)
            elif "train metrics" not in text and ">>" in text and "train_runtime" in text:
                yield from _runtime(text, no)


class _Reading:
    """One parse's state: whether the summary was read (every process prints it), and
    the step count ``Total optimization steps`` gives."""

    def __init__(self) -> None:
        self.summary_seen = False
        self.total_steps: int | None = None

    def trainer_dict(self, text: str, no: int, rank) -> Iterator[Record]:
        """A line's Trainer dict: the train summary, an evaluation, or a logging step."""
        found = _dict(text)
        if found is None:
            return
        d, raw = found
        if "train_runtime" in d:
            yield from self.summary(d, raw, no)
        elif any(k.startswith("eval_") for k in d):
            yield Event("validation", d, no)
        elif "loss" in d:
            yield from _step(d, no, rank)

    def summary(self, d: dict, raw: dict, no: int) -> Iterator[Record]:
        """The first train summary: events, its numbers as run settings, the mean step time."""
        if self.summary_seen:  # every process prints it
            return
        self.summary_seen = True
        for k, v in d.items():
            yield Event(k, v, no)
        numbers = {k: v for k, v in d.items() if isinstance(v, int | float)}
        numbers.pop("epoch", None)
        yield Config(numbers, no)
        mean = _mean_step_time(d, raw, self.total_steps, no)
        if mean is not None:
            yield mean

    def total(self, text: str) -> None:
        """``Total optimization steps = N``: the step count the summary's runtime spans."""
        m = TOTAL_RE.search(text)
        if m:
            self.total_steps = int(m["n"].replace(",", ""))


def _step(d: dict, no: int, rank) -> Iterator[Record]:
    """A logging step's dict as a step (values that are no numbers kept, and noted)."""
    values = {STEP_KEYS.get(k, k): v for k, v in d.items()}
    bad = [k for k, v in values.items() if isinstance(v, str)]
    if bad:
        yield Note(f"value(s) of {', '.join(bad)} not numbers: kept", no, "value")
    yield Step(None, values, no, rank)


def _runtime(text: str, no: int) -> Iterator[Record]:
    """The ``train metrics`` table's ``train_runtime = 0:15:19.02``, in seconds."""
    m = METRIC_RE.search(text)
    hms = HMS_RE.match(m["v"]) if m else None
    if hms:
        secs = int(hms["h"]) * 3600 + int(hms["m"]) * 60 + float(hms["s"])
        yield Config({"train_runtime": secs}, no)
