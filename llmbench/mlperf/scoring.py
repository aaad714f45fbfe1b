"""Scores as the official result summarizer (``mlperf_logging.result_summarizer``)
computes them: per run, time to train = run_stop - run_start in minutes; a run
that did not finish with status success, lacks run_start/run_stop, or has an MLLOG
line that does not parse is dropped; the score is the olympic mean of the rest
(``olympic_mean``) times the folder's ``scaling.json`` factor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rules import BENCHMARKS, Benchmark


def olympic_mean(times: list[float], dropped: int, max_dropped: int) -> float | None:
    """The summarizer's olympic mean: sort, drop ``max_dropped`` fastest and
    ``max_dropped - dropped`` slowest (a dropped run counts as a slowest one);
    None when nothing is left."""
    kept = sorted(times)[max_dropped : len(times) - (max_dropped - dropped)]
    return sum(kept) / len(kept) if kept else None


@dataclass
class RunResult:
    """One result file's outcome."""

    path: str
    time_to_train_min: float | None
    status: str | None
    counted: bool
    reason: str | None = None  # why it is dropped


def run_result(
    path: str, run: dict[str, Any] | None, config: dict[str, Any], error: str | None = None
) -> RunResult:
    """Time to train and whether the summarizer counts this run."""
    if run is None:
        return RunResult(path, None, None, False, error or "not read")
    status = run.get("status")
    start, stop = config.get("run_start_ms"), config.get("run_stop_ms")
    ttt = (stop - start) / 60000.0 if _is_number(start) and _is_number(stop) else None
    reason = None
    if config.get("mllog_parse_errors"):
        reason = f"{config['mllog_parse_errors']} MLLOG line(s) do not parse"
    elif start is None:
        reason = "run_start not recorded"
    elif stop is None:
        reason = "run_stop not recorded"
    elif status != "success":
        reason = f"run_stop status {status!r}, not success"
    return RunResult(path, ttt, status, reason is None, reason)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def score(runs: list[RunResult], benchmark: str, factor: float = 1.0) -> dict[str, Any]:
    """The folder's score as the official summarizer gives it, with notes."""
    rules = BENCHMARKS.get(benchmark, Benchmark(runs=0))
    times = [r.time_to_train_min for r in runs if r.counted and r.time_to_train_min is not None]
    dropped = len(runs) - len(times)
    notes: list[str] = []
    value = None
    if dropped > rules.max_dropped:
        notes.append(
            f"{dropped} of {len(runs)} runs dropped (at most {rules.max_dropped} allowed): no score"
        )
    else:
        mean = olympic_mean(times, dropped, rules.max_dropped)
        if mean is None:
            notes.append(f"{len(times)} counted run(s): too few for the olympic mean, no score")
        else:
            value = mean * factor
        if dropped:
            notes.append(f"{dropped} run(s) dropped and counted as the slowest")
    if rules.runs and len(runs) < rules.runs:
        notes.append(
            f"{len(runs)} result file(s), {rules.runs} required "
            "(the official summarizer scores what is there)"
        )
    if benchmark not in BENCHMARKS:
        notes.append(f"benchmark {benchmark!r} unknown to llmbench: required runs not checked")
    return {
        "score_min": value,
        "scaling_factor": factor,
        "olympic_mean_min": value / factor if value is not None else None,
        "n_counted": len(times),
        "n_dropped": dropped,
        "n_required": rules.runs or None,
        "score_note": "; ".join(notes) or None,
    }
