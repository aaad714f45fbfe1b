"""MLPerf's part of a run's metrics, hooked into ``metrics.run_metrics`` by the
report (``HOOK``): time to train, and the throughput a ``tracked_stats`` record
logs (tokens/s for NeMo GPT-3, samples/s for the others)."""

from __future__ import annotations

import json
from typing import Any


def tracked_throughputs(events: list[dict[str, Any]]) -> list[float]:
    """The ``throughput`` values of MLPerf ``tracked_stats`` events, in order (units
    as the benchmark logs them: tokens/s for NeMo GPT-3, samples/s otherwise)."""
    out = []
    for e in events:
        if e.get("key") == "tracked_stats":
            try:
                v = json.loads(e.get("value") or "null")
            except ValueError:
                continue
            if isinstance(v, dict) and isinstance(v.get("throughput"), int | float):
                out.append(float(v["throughput"]))
    return out


def logged_tokens_per_s(events: list[dict[str, Any]], config: dict[str, Any]) -> float | None:
    """Tokens/s from MLPerf ``tracked_stats`` ``throughput`` (NeMo GPT-3 logs it in tokens/s)."""
    found = tracked_throughputs(events)
    if found and config.get("benchmark") == "gpt3":
        return found[-1]
    return None


def time_to_train(run: dict[str, Any], config: dict[str, Any]) -> float | None:
    """MLPerf time to train (minutes) for a successful run: run_stop - run_start."""
    if run.get("status") != "success":
        return None
    start, stop = config.get("run_start_ms"), config.get("run_stop_ms")
    if isinstance(start, int | float) and isinstance(stop, int | float):
        return (stop - start) / 60000.0
    return None


class Hook:
    """``metrics.RunHook`` for MLPerf: the ``tracked_stats`` events of MLLOG runs."""

    events = ("tracked_stats",)
    parsers = ("mllog",)

    def __call__(
        self, run: dict[str, Any], config: dict[str, Any], events: list[dict], out: dict[str, Any]
    ) -> dict[str, Any]:
        got: dict[str, Any] = {"time_to_train_min": time_to_train(run, config)}
        if out.get("tokens_per_s_logged") is None:
            got["tokens_per_s_logged"] = logged_tokens_per_s(events, config)
        return got


HOOK = Hook()
