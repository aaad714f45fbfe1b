"""How each metric of a report row was derived, told with the row's own numbers:
what a reader of the HTML report sees when asking where a figure came from.

The arithmetic metrics are a table of expressions over the row's other columns;
each is checked against the row before it is shown, so a derivation printed is
one that reproduces the value (when it does not, the metric's meaning is shown)."""

from __future__ import annotations

import json
import math
from typing import Any

from .columns import FLAGS, METRIC_COLUMNS, STEP_LINES
from .flops import CONVENTIONS, family
from .formats import cell, plain

#: metric column: its expression over the row's other columns (products and
#: quotients, left to right; constants as printed)
EXPRESSIONS = {
    "tokens_per_step": "global_batch_size × seq_len",
    "tokens_per_s": "tokens_per_step / step_time_s",
    "tokens_per_s_per_gpu": "tokens_per_s / num_gpus",
    "samples_per_s": "global_batch_size / step_time_s",
    "days_per_1t_tokens": "10^12 / tokens_per_s / 86400",
    "tflops_per_gpu": "model_flops_per_step / step_time_s / num_gpus / 10^12",
    "mfu": "tflops_per_gpu / peak_tflops",
    "hfu": "hw_tflops_per_gpu / peak_tflops",
    "aggregate_pflops": "tflops_per_gpu × num_gpus / 1000",
    "iterations_for_tokens": "tokens / tokens_per_step",
    "time_for_tokens_s": "tokens / tokens_per_s",
    "num_gpus": "tp × pp × dp",  # when no setting or log line gives the count
}
#: the derivations ``report --explain`` prints after a run's inputs
EXPLAINED = (
    "step_time_s",
    "tokens_per_step",
    "tokens_per_s",
    "tokens_per_s_per_gpu",
    "model_flops_per_step",
    "tflops_per_gpu",
    "hw_tflops_per_gpu",
    "mfu",
    "hfu",
)
CONSTANTS = {"10^12": 1e12, "86400": 86400.0, "1000": 1000.0}
# how close an expression must come to the stored value (the value is rounded
# only to drop binary noise)
TOLERANCE = 1e-9


def _value(row: dict[str, Any], name: str) -> float | None:
    if name in CONSTANTS:
        return CONSTANTS[name]
    v = plain(row.get(name))
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def arithmetic(row: dict[str, Any], column: str) -> str | None:
    """``column = expression = numbers = value`` for an ``EXPRESSIONS`` metric of
    ``row``, or None when an input is missing or the numbers do not give the value."""
    expr, value = EXPRESSIONS.get(column), _value(row, column)
    if expr is None or value is None:
        return None
    tokens = expr.split()
    names = tokens[::2]
    values = [_value(row, n) for n in names]
    if None in values or any(not math.isfinite(v) for v in values):
        return None
    got = values[0]
    for op, v in zip(tokens[1::2], values[1:], strict=True):
        if op == "/" and v == 0:
            return None
        got = got * v if op == "×" else got / v
    if not math.isclose(got, value, rel_tol=TOLERANCE):
        return None
    shown = " ".join(
        t if k % 2 or t in CONSTANTS else _shown(row.get(t)) for k, t in enumerate(tokens)
    )
    return f"{column} = {expr} = {shown} = {cell(value)}"


def _shown(value: Any) -> str:
    """An input as a derivation prints it: as the table does, FLOP counts to 7 digits."""
    v = plain(value)
    return f"{v:.7g}" if isinstance(v, float) and abs(v) >= 1e15 else cell(v)


def step_time(row: dict[str, Any], steady: dict[str, Any] | None, prov: dict | None = None) -> str:
    """Where the steady-state step time comes from: the statistic, the steps and the
    log lines it is taken over, what was left out."""
    if row.get("stat") == "summary":
        how = (prov or {}).get("summary_step_time_s") or "train_runtime / optimization steps"
        return f"the train summary's mean step time ({how}), warm-up included: the log times no single step"
    n, w = row.get("n_steady"), row.get("warmup_steps")
    text = f"{row.get('stat')} of {cell(n)} steady step time(s)"
    if steady:
        a, b = steady.get("steps") or (None, None)
        if a is not None:
            text += f", steps {cell(a)}–{cell(b)}"
        la, lb = steady.get("lines") or (None, None)
        if la is not None:
            text += f", log lines {cell(la)}–{cell(lb)}"
    text += f"; {cell(w)} warm-up step(s) left out"
    if row.get("n_faulty"):
        text += (
            f"; {cell(row['n_faulty'])} timed line(s) left out: iterations skipped or NaN "
            "in their interval"
        )
    return text


LORA = (
    " × 2/3 (LoRA: the base weights are frozen, so a step is their forward and input "
    "gradients, 4 of the 6 FLOPs per parameter and token; the attention scores are scaled alike)"
)


def _flops(row: dict[str, Any], config: dict) -> str:
    formula = row.get("formula")
    conv = CONVENTIONS.get(formula)
    model = f"model {row['model']}" if row.get("model") else "the shape the run's inputs give"
    return (
        f"formula {formula} ({conv.formula if conv else 'a third-party formula'}) for "
        f"{model}, B = global_batch_size {cell(row.get('global_batch_size'))}, "
        f"s = seq_len {cell(row.get('seq_len'))}" + (f"; then{LORA}" if config.get("lora") else "")
    )


def _hardware(row: dict[str, Any], config: dict) -> str:
    base = family(row["formula"]) if row.get("formula") in CONVENTIONS else "megatron"
    return (
        f"hardware FLOPs per step (the {base} count, plus what recompute="
        f"{cell(row.get('recompute'))} runs again: the forward for full, the attention "
        "scores for selective"
        + (f"; then{LORA}" if config.get("lora") else "")
        + f") / step_time_s {cell(row.get('step_time_s'))} / num_gpus "
        f"{cell(row.get('num_gpus'))} / 10^12"
    )


def _time_to_train(row: dict[str, Any], config: dict) -> str:
    start, stop = config.get("run_start_ms"), config.get("run_stop_ms")
    return f"(run_stop − run_start) / 60000 = ({cell(stop)} − {cell(start)}) ms / 60000"


def _logged(row: dict[str, Any], config: dict) -> str:
    return f"as the log printed it: the {row.get('stat')} over the steady steps' lines"


# what each metric needs beyond the ``EXPRESSIONS`` inputs (to say why one is empty)
NEEDS = {
    "step_time_s": ("a timed step line",),
    "model_flops_per_step": ("model", "global_batch_size", "seq_len"),
    "hw_tflops_per_gpu": ("model_flops_per_step", "recompute", "step_time_s", "num_gpus"),
    "peak_tflops": ("accelerator", "dtype"),
    "params": ("model",),
    "model_state_bytes_per_gpu": ("params",),
    "comm_dp_bytes_per_gpu": ("params", "tp", "pp", "dp"),
    "comm_tp_bytes_per_gpu": ("model", "global_batch_size", "seq_len", "tp", "pp", "dp"),
    "comm_pp_bytes_per_gpu": ("model", "global_batch_size", "seq_len", "tp", "pp", "dp"),
    "tflops_per_gpu_logged": ("a TFLOP/s figure in the log",),
    "mfu_logged": ("an MFU figure in the log",),
    "tokens_per_s_logged": ("a tokens/s figure in the log",),
    "tflops_logged_formula": ("tflops_per_gpu_logged",),
    "logged_disagrees": ("tflops_per_gpu_logged", "tflops_per_gpu"),
    "time_to_train_min": ("an MLPerf result file of a successful run",),
    "tokens": ("--tokens",),
}


def _needs(column: str) -> tuple[str, ...]:
    if column in EXPRESSIONS:
        return tuple(t for t in EXPRESSIONS[column].split()[::2] if t not in CONSTANTS)
    return NEEDS.get(column, ())


def _lacking(row: dict[str, Any], column: str, seen: frozenset = frozenset()) -> list[str]:
    """The inputs, down to the first level that is empty, that leave ``column`` empty."""
    out: list[str] = []
    for need in _needs(column):
        if need in seen or need not in row:
            if need not in row and need not in out:
                out.append(need)
            continue
        if plain(row.get(need)) is None:  # an input lacks itself; a metric, its inputs
            deeper = _lacking(row, need, seen | {column}) if need in METRIC_COLUMNS else []
            out += [d for d in deeper or [need] if d not in out]
    return out


def empty(row: dict[str, Any], column: str) -> str:
    """Why ``column`` of ``row`` is empty: the inputs it lacks, and the row's
    remedies (``missing``) that name them."""
    lacks = [x for x in _lacking(row, column) if plain(row.get(x)) is None]
    if not lacks:
        return f"{column}: empty"
    return f"{column}: empty, lacks {', '.join(lacks)}" + _remedies(row, lacks)


def _remedies(row: dict[str, Any], names: list[str]) -> str:
    """`` (...)``: the row's remedies (its ``missing`` column) that name any of
    ``names``, or "" when none does."""
    found = [m for m in str(row.get("missing") or "").split("; ") if any(x in m for x in names)]
    return f" ({'; '.join(found)})" if found else ""


# metrics told in words, from the row and the run's settings (``config``)
SPECIAL = {
    "model_flops_per_step": _flops,
    "hw_tflops_per_gpu": _hardware,
    "time_to_train_min": _time_to_train,
    "tflops_per_gpu_logged": _logged,
    "mfu_logged": _logged,
    "tokens_per_s_logged": lambda row, config: (
        _logged(row, config)
        + " (a per-GPU figure times num_gpus; MLPerf: the last tracked throughput)"
    ),
}


def _empty(row: dict[str, Any], column: str, origins: dict[str, str]) -> str | None:
    """Why ``column`` is empty, where the row can say it better than its inputs."""
    if column == "step_time_s" and row.get("n_faulty"):
        return (
            f"step_time_s: empty, every one of the {cell(row['n_faulty'])} timed line(s) had "
            "iterations skipped (fp16 loss-scale search) or NaN: no normal step to time"
        )
    if column == "tflops_logged_formula" and row.get("tflops_per_gpu_logged") is not None:
        return (
            "tflops_logged_formula: empty, no formula of llmbench's gives the logged "
            "TFLOP/s within 0.5 %"
        )
    if column == "time_to_train_min" and row.get("status") not in (None, "success"):
        return (
            f"time_to_train_min: empty, the run's status is {row['status']}: only a "
            "successful MLPerf run has a time to train"
        )
    if column in METRIC_COLUMNS:
        return empty(row, column)
    if column in origins:
        return f"{column}: not set" + _remedies(row, [column])
    return None


def derivations(
    row: dict[str, Any],
    origins: dict[str, str],
    steady: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Per column of a report row: how its value was derived (a metric, with the
    row's numbers), where it came from (an input: ``origins``, as ``metrics.explain``
    gives them), or what it lacks (an empty metric). ``steady``: the steps and
    log lines of the run's steady state ({"steps": (a, b), "lines": (a, b)});
    ``run``: the run's stored row (its settings and their origins)."""
    config = json.loads((run or {}).get("config") or "{}")
    prov = json.loads((run or {}).get("provenance") or "{}")
    out = {}
    for column in row:
        value = plain(row.get(column))
        origin = origins.get(column, "missing")
        if column in ("missing", "stat"):
            continue
        if column == "flags":
            if value:
                out[column] = "; ".join(f"{f}: {FLAGS.get(f, f)}" for f in str(value).split(","))
        elif column == "global_batch_size" and origin == STEP_LINES and value is not None:
            out[column] = (
                "global_batch_size: the median the step lines print over the steady steps"
                if row.get("n_steady")
                else "global_batch_size: the last the step lines print (no steady step)"
            )
        elif origin != "missing" and value is not None:
            out[column] = f"{column}: {origin}"
        elif column in ("run_id", "source"):
            out[column] = f"{column}: {value}" + (
                " (click the run for where each input came from)" if column == "run_id" else ""
            )
        elif value is None:
            told = _empty(row, column, origins)
            if told:
                out[column] = told
        elif column == "step_time_s":
            out[column] = f"step_time_s = {step_time(row, steady, prov)} = {cell(value)} s"
        elif column in SPECIAL:
            out[column] = f"{column} = {SPECIAL[column](row, config)} = {_shown(value)}"
        elif column in EXPRESSIONS and (told := arithmetic(row, column)):
            out[column] = told
        elif column in METRIC_COLUMNS:
            out[column] = f"{column}: {METRIC_COLUMNS[column][1]}"
    return out
