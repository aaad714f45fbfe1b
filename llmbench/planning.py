"""Planning: a run's metrics from its description instead of its log (``estimate``),
with the step time given or taken from measured runs of the model (``--calibrate``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import UsageError
from .report import described, summarize_store
from .scalability import calibrate as calibrated


def estimate(
    *,
    gpus: int,
    global_batch_size: int,
    step_time: float | None = None,
    calibrate: Sequence[str] | str | None = None,
    db: str | None = None,
    accelerator: str | None = None,
    seq_len: int | None = None,
    **description: Any,
):
    """The metrics of a described run (a one-row DataFrame; ``description``: what
    ``report.described`` takes: ``model``, ``model_config``, ``values``, ``dtype``,
    ``tp``, ...). The step time is ``step_time`` (s), or, with ``calibrate`` (run ids or
    source globs of the store at ``db``), what the runs of the model measured there give
    at ``gpus`` (``scalability.calibrate``): their accelerator and sequence length are
    then the defaults, the column ``calibration`` says how, and ``flags`` where the
    estimate leaves what was measured. ``accelerator`` defaults to h100-sxm."""
    if (step_time is None) == (calibrate is None):
        raise UsageError("give --step-time or --calibrate (one of them)")
    shape = dict(gpus=gpus, global_batch_size=global_batch_size, **description)
    if calibrate is None:
        return described(
            step_time=step_time, accelerator=accelerator or "h100-sxm", seq_len=seq_len, **shape
        )
    if description.get("model") is None:
        raise UsageError("--calibrate: give --model, the name the calibrating runs carry")
    select = (
        tuple(c for c in calibrate.split(",") if c) if isinstance(calibrate, str) else calibrate
    )
    measured, _ = summarize_store(db, tuple(select))
    one = described(step_time=1.0, seq_len=seq_len, **shape)  # the model's name and sequence
    cal = calibrated(measured, str(one["model"][0]), gpus, accelerator=accelerator, seq_len=seq_len)
    seq_len = seq_len or cal.seq_len
    accelerator = accelerator or cal.accelerator or "h100-sxm"
    one = described(step_time=1.0, seq_len=seq_len, accelerator=accelerator, **shape)
    step = cal.step_time_s(float(one["tokens_per_step"][0]), gpus)
    table = described(step_time=step, seq_len=seq_len, accelerator=accelerator, **shape)
    flags = [f for f in str(table["flags"][0] or "").split(",") if f] + cal.flags
    table["flags"] = ",".join(dict.fromkeys(flags)) or None
    table["calibration"] = f"step time {step:.6g} s from {cal.how}"
    return table
