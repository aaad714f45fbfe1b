"""NeMo logs: the NeMo 2 / Megatron-Bridge text progress line and NeMo 1 tqdm bars.

NeMo 2 (``ProgressPrinter``) prints one line per logged step::

    Training epoch 0, iteration 8/29 | lr: 5.389e-06 | global_batch_size: 512 | global_step: 8 |
    max_memory_reserved: 57466159104 | reduced_train_loss: 10.22 | train_step_timing in s: 27.01 |
    consumed_samples: 4608 | TFLOPS_per_GPU: 48.58

Fields come in any order; the step is ``global_step`` (else the 0-based
iteration + 1). A line cut off before ``train_step_timing`` (the job was killed
while printing) is dropped with a warning. NeMo 1 / Lightning prints tqdm bars,
``\\r``-separated (the reader yields every state)::

    Epoch 0: :   3%|▎  | 9000/301500 [1:42:42<55:37:46, v_num=0, reduced_train_loss=7.04,
    global_step=9e+3, consumed_samples=6.3e+5, train_step_timing in s=0.615]

There the values are rounded to 3 significant digits, so the step comes from the
``N/M`` counter. Bars without ``train_step_timing in s`` (before NeMo PR 7374)
carry no per-step time and give no step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from llmbench.parsing import Event, Field, Note, Parser, Record, Step, convert
from llmbench.reader import Line

FIELDS: dict[str, Field] = {
    "train_step_timing in s": Field("step_time_s"),
    "reduced_train_loss": Field("loss"),
    "lr": Field("learning_rate"),
    "global_batch_size": Field("global_batch_size", int),
    "consumed_samples": Field("consumed_samples", int),
    "TFLOPS_per_GPU": Field("tflops_per_gpu_logged"),
    "tflops_per_sec_per_gpu": Field("tflops_per_gpu_logged"),  # its name until 2025-04
    "grad_norm": Field("grad_norm"),
    "max_memory_reserved": Field("max_memory_reserved_bytes", int),
    "max_memory_allocated": Field("max_memory_allocated_bytes", int),
}
TEXT_RE = re.compile(
    r"Training epoch (?P<epoch>\d{1,18}), iteration (?P<it>\d{1,18})/(?P<total>\d{1,18})(?P<rest>.*)"
)
BAR_RE = re.compile(
    r"Epoch (?P<epoch>\d{1,18}):.*?\|\s*(?P<it>\d{1,18})/(?P<total>\d{1,18}) \[(?P<post>[^\]]*)\]?"
)
PAIR_RE = re.compile(r"(?P<k>[A-Za-z_][\w /]*?)=(?P<v>[-+\w.]+)")
# ProgressPrinter: ``Validation: iteration 2/2`` (and ``Sanity checking Validation: ...``)
VALID_RE = re.compile(
    r"^(?P<what>(?:Sanity checking )?Validation): iteration (?P<i>\d{1,18})/(?P<n>\S+)"
)
# NeMo 1 perf_metrics.py at the end of training: ``TFLOPs per sec per GPU=512.30``
TFLOPS_END_RE = re.compile(r"TFLOPs per sec per GPU=(?P<v>-?[\d.]+)")


def _values(pairs: Iterable[tuple[str, str]]) -> tuple[dict, dict]:
    values: dict = {}
    extra: dict = {}
    for label, text in pairs:
        label = label.strip()
        field = FIELDS.get(label)
        v = convert(text, field or Field(label))
        if v is None:
            continue
        if field is None or field.column.endswith("_bytes"):
            extra[field.column if field else label] = v
        else:
            values[field.column] = v
    return values, extra


class NemoParser(Parser):
    name = "nemo"
    framework = "NeMo"
    description = (
        "`Training epoch E, iteration I/N | ... | train_step_timing in s: T` and tqdm bars"
    )
    produces = tuple(sorted({f.column for f in FIELDS.values() if not f.column.endswith("_bytes")}))

    def detect(self, head: Sequence[str]) -> float:
        score = 0.0
        for text in head:
            if "train_step_timing in s" in text and ("iteration" in text or "Epoch" in text):
                return 0.95
            if TEXT_RE.search(text) or "[NeMo I" in text:
                score = max(score, 0.6)
        return score

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        for no, text, rank in lines:
            if "Validation: iteration" in text:
                yield from _validation(text, no)
            elif "TFLOPs per sec per GPU=" in text:
                m = TFLOPS_END_RE.search(text)
                if m:
                    yield Event("tflops_per_sec_per_gpu", convert(m["v"], Field("t")), no)
            elif "Training epoch" in text:
                m = TEXT_RE.search(text)
                if m is None:
                    continue
                pairs = [seg.rpartition(":")[::2] for seg in m["rest"].split("|") if ":" in seg]
                values, extra = _values(pairs)
                if "step_time_s" not in values:
                    yield Note(
                        f"iteration {m['it']} has no train_step_timing (cut off?): dropped",
                        no,
                        "line",
                    )
                    continue
                step = extra.pop("global_step", None)
                step = int(step) if step is not None else int(m["it"]) + 1
                yield Step(step, {**values, "epoch": int(m["epoch"]), **extra}, no, rank)
            elif "train_step_timing in s=" in text:
                m = BAR_RE.search(text)
                if m is None:
                    continue
                values, extra = _values((p["k"], p["v"]) for p in PAIR_RE.finditer(m["post"]))
                if "step_time_s" not in values:
                    continue
                extra.pop("global_step", None)  # rounded to 3 digits; the counter is exact
                extra.pop("v_num", None)
                yield Step(int(m["it"]), {**values, **extra}, no, rank)


def _validation(text: str, no: int) -> Iterator[Record]:
    """A finished validation pass (its last iteration) as an event: never a step."""
    m = VALID_RE.match(text.strip())
    if m and m["i"] == m["n"]:
        kind = "sanity_check" if m["what"].startswith("Sanity") else "validation"
        yield Event(kind, {"iterations": int(m["i"])}, no)
