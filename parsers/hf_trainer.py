"""Hugging Face Trainer logs: the dicts ``Trainer.log`` prints, and the summary.

``ProgressCallback.on_log`` writes each logging step's dict (Python repr)::

    {'loss': 2.119, 'grad_norm': 37.657958984375, 'learning_rate': 4.58e-05, 'epoch': 0.25}

with no step number: steps are numbered 1, 2, ... in order (multiply by
``logging_steps`` yourself). The end of training prints, once per process,
``{'train_runtime': 919.097, 'train_samples_per_second': 1.088, ...}`` and
``trainer_pt_utils`` a ``***** train metrics *****`` table (``train_runtime =
0:15:19.02``): these become events and run settings. Dicts are read with
``ast.literal_eval`` (data only, never evaluated as code).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Sequence

from llmbench.parsing import Config, Event, Parser, Record, Step
from llmbench.reader import Line

STEP_KEYS = {"loss": "loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm"}
DICT_RE = re.compile(r"\{'(?:loss|train_runtime|eval_loss)'.*\}")
METRIC_RE = re.compile(r">>\s+(?P<k>train_\w+|epoch)\s+=\s+(?P<v>\S+)\s*$")
HMS_RE = re.compile(r"^(?P<h>\d{1,9}):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)$")
MAX_DICT = 10_000  # characters: a longer "dict" is not Trainer output


def _dict(text: str) -> dict | None:
    m = DICT_RE.search(text)
    if m is None or len(m.group()) > MAX_DICT:
        return None
    try:
        d = ast.literal_eval(m.group())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return d if isinstance(d, dict) else None


class HFTrainerParser(Parser):
    name = "hf_trainer"
    framework = "Hugging Face Transformers"
    description = "`{'loss': L, 'learning_rate': ..., 'epoch': E}` dicts and the train summary"
    produces = ("loss", "learning_rate", "grad_norm")

    def detect(self, head: Sequence[str]) -> float:
        score = 0.0
        for text in head:
            if "{'loss':" in text or "{'train_runtime':" in text:
                return 0.9
            if "[INFO|trainer.py" in text:
                score = 0.6
        return score

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        summary_seen = False
        for no, text, rank in lines:
            if "{'" in text:
                d = _dict(text)
                if d is None:
                    continue
                if "loss" in d and "train_runtime" not in d:
                    values = {STEP_KEYS[k]: v for k, v in d.items() if k in STEP_KEYS}
                    values.update({k: v for k, v in d.items() if k not in STEP_KEYS})
                    yield Step(None, values, no, rank)
                elif "train_runtime" in d and not summary_seen:  # every process prints it
                    summary_seen = True
                    for k, v in d.items():
                        yield Event(k, v, no)
                    yield Config(
                        {k: v for k, v in d.items() if k != "epoch" and isinstance(v, int | float)},
                        no,
                    )
            elif "train metrics" not in text and ">>" in text and "train_runtime" in text:
                m = METRIC_RE.search(text)
                hms = HMS_RE.match(m["v"]) if m else None
                if hms:
                    secs = int(hms["h"]) * 3600 + int(hms["m"]) * 60 + float(hms["s"])
                    yield Config({"train_runtime": secs}, no)
