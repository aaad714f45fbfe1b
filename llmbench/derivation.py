"""How each metric of a report row was derived, told with the row's own numbers:
what a reader of the HTML report sees when asking where a figure came from.

The arithmetic metrics are their specs' expressions (``metric_specs``) over the row;
each is checked against the row before it is shown, so a derivation printed is
one that reproduces the value (when it does not, the metric's meaning is shown)."""

from __future__ import annotations

import json
import math
from typing import Any

from .columns import FLAGS, STEP_LINES
from .formats import cell, plain
from .metric_specs import BY_NAME, CONSTANTS, EXPLAINED, METRIC_COLUMNS, evaluate, number

__all__ = ["EXPLAINED", "arithmetic", "derivations", "empty", "step_time"]

#: a report column that is an input, not a metric, and the expression that gives it
#: when no setting or log line does
INPUTS = {"num_gpus": "tp × pp × dp"}
# how close an expression must come to the stored value (the value is rounded
# only to drop binary noise)
TOLERANCE = 1e-9


def _expression(column: str) -> str | None:
    spec = BY_NAME.get(column)
    return spec.expression if spec else INPUTS.get(column)


def arithmetic(row: dict[str, Any], column: str) -> str | None:
    """``column = expression = numbers = value`` for a metric an expression computes
    (``metric_specs``), or None when an input is missing or the numbers do not give
    the value."""
    expr, value = _expression(column), number(row.get(column))
    if expr is None or value is None:
        return None
    got = evaluate(expr, row)
    if got is None or not math.isclose(got, value, rel_tol=TOLERANCE):
        return None
    tokens = expr.split()
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


def _needs(column: str) -> tuple[str, ...]:
    spec = BY_NAME.get(column)
    if spec is not None:
        return spec.inputs
    expr = INPUTS.get(column)
    return tuple(t for t in expr.split()[::2] if t not in CONSTANTS) if expr else ()


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
    seen = _Seen(row, origins, steady, run)
    out = {}
    for column in row:
        if column not in ("missing", "stat"):
            told = seen.tell(column)
            if told:
                out[column] = told
    return out


class _Seen:
    """A report row and what it was made of, told a column at a time."""

    def __init__(self, row, origins, steady, run) -> None:
        self.row, self.origins, self.steady = row, origins, steady
        self.config = json.loads((run or {}).get("config") or "{}")
        self.prov = json.loads((run or {}).get("provenance") or "{}")

    def tell(self, column: str) -> str | None:
        """How ``column`` was derived, where it came from, or what it lacks."""
        row, value = self.row, plain(self.row.get(column))
        origin = self.origins.get(column, "missing")
        if column == "flags":
            return (
                "; ".join(f"{f}: {FLAGS.get(f, f)}" for f in str(value).split(","))
                if value
                else None
            )
        if column == "global_batch_size" and origin == STEP_LINES and value is not None:
            return (
                "global_batch_size: the median the step lines print over the steady steps"
                if row.get("n_steady")
                else "global_batch_size: the last the step lines print (no steady step)"
            )
        if origin != "missing" and value is not None:
            return f"{column}: {origin}"
        if column in ("run_id", "source"):
            more = " (click the run for where each input came from)" if column == "run_id" else ""
            return f"{column}: {value}{more}"
        if value is None:
            return _empty(row, column, self.origins)
        return self._metric(column, value)

    def _metric(self, column: str, value: Any) -> str | None:
        """A metric's derivation: the step time's cut, a spec's words, its arithmetic,
        else its meaning."""
        if column == "step_time_s":
            return f"step_time_s = {step_time(self.row, self.steady, self.prov)} = {cell(value)} s"
        spec = BY_NAME.get(column)
        if spec and spec.told:
            return f"{column} = {spec.told(self.row, self.config)} = {_shown(value)}"
        told = arithmetic(self.row, column) if _expression(column) else None
        if told:
            return told
        return f"{column}: {METRIC_COLUMNS[column][1]}" if column in METRIC_COLUMNS else None
