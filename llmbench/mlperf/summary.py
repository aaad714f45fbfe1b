"""The MLPerf results in a store, one summary per benchmark folder: identity,
score, and step time, throughput and MFU averaged over the counted runs."""

from __future__ import annotations

import json
import os
from typing import Any

from ..columns import FLAGS, TABLES
from ..errors import NoDataError
from ..formats import records, relative
from ..metrics import STEP_INPUTS, one_step, run_metrics, step_stats
from ..specs import find_accelerator
from ..store import Store
from .metrics import tracked_throughputs
from .rules import BENCHMARKS
from .scoring import RunResult, _is_number, run_result, score
from .tree import _RESULT_RE, locate, scaling_factor


def _under(path: str, roots: list[str]) -> bool:
    return not roots or any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def summarize_submissions(
    db: str | None = None,
    paths: list[str] | tuple[str, ...] = (),
    benchmarks: list[str] | tuple[str, ...] = (),
    *,
    required: bool = False,
) -> list[dict]:
    """One dict per benchmark folder of the MLPerf results in the store (optionally
    only those under ``paths``, of ``benchmarks``): identity, score (minutes) as the
    official summarizer computes it, step time, throughput and MFU averaged over
    counted runs, and ``runs``: [{path, time_to_train_min, status, counted, reason}].
    With ``required``, NoDataError when there is none."""
    out = [row for row in _summaries(db, paths) if not benchmarks or row["benchmark"] in benchmarks]
    if required and not out:
        raise NoDataError(
            "no MLPerf result files found"
            + (f" under {' '.join(paths)}" if paths else " in the store"),
            remedy="point at a submission tree: <submitter>/results/<system>/<benchmark>/result_N.txt",
        )
    return out


def for_screen(table):
    """The scores as a terminal or markdown table shows them: accelerators by their
    catalog key (``h100-sxm``, ``gaudi2``) where the catalog knows them."""
    if "accelerator" not in table.columns:
        return table
    table = table.copy()
    keys = [(find_accelerator(a).key if find_accelerator(a) else a) for a in table["accelerator"]]
    table["accelerator"] = keys
    return table


def submissions_table(rows: list[dict], columns: list[str] | None = None):
    """The summaries as a DataFrame (their ``runs`` left out), cut to ``columns``."""
    import pandas as pd  # start-up: loads with the first table

    table = pd.DataFrame([{k: v for k, v in r.items() if k != "runs"} for r in rows])
    return table[columns] if columns is not None else table


def _summaries(db: str | None, paths) -> list[dict]:

    roots = [os.path.abspath(p) for p in paths]
    with Store(db, create=False) as store:
        folders: dict[str, list[tuple[str, str, str | None]]] = {}
        for f in store.files():
            path = f["path"]
            if locate(path) is not None and _under(path, roots):
                folders.setdefault(os.path.dirname(path), []).append(
                    (path, f["status"], f["error"])
                )
        sources = sorted({p for rows in folders.values() for p, _, _ in rows})
        runs = records(store.runs(sources=sources))
        ids = [r["run_id"] for r in runs]
        stats = _file_stats(store, runs)
        events = records(store.read("events", ids, keys=["tracked_stats", "eval_accuracy"]))
    by_source: dict[str, list[dict]] = {}
    for r in runs:
        by_source.setdefault(r["source"], []).append(r)
    by_run: dict[str, list] = {i: [] for i in ids}
    for e in events:
        by_run[e["run_id"]].append(e)
    out = [
        _folder(folder, rows, by_source, (by_run, stats))
        for folder, rows in sorted(folders.items(), key=lambda kv: _sort_key(kv[0]))
    ]
    return out


def _file_stats(store: Store, runs: list[dict]) -> dict[str, Any]:
    """``StepStats`` per result file (its segments' steps together), in one pass over
    the stored step columns: one query for every file, not a few per run."""
    import polars as pl

    if not runs:
        return {}
    names = set(TABLES["steps"])
    lf = store.scan("steps", [r["run_id"] for r in runs], [c for c in STEP_INPUTS if c in names])
    source = {r["run_id"]: r["source"] for r in runs}
    return step_stats(lf.with_columns(pl.col("run_id").replace_strict(source)))


def _sort_key(folder: str) -> tuple:
    parts = folder.split("/")
    return parts[-1], parts[-5] if len(parts) >= 5 else "", parts[-4:]


def _merged(rows: list[dict]) -> tuple[dict, dict]:
    """A result file's run row and config (a file read as several segments: the
    first run_start, the first run_stop and its status)."""
    rows = sorted(rows, key=lambda r: r["segment"])
    run = dict(rows[0])
    config: dict[str, Any] = {}
    for r in rows:
        for k, v in json.loads(r["config"] or "{}").items():
            config.setdefault(k, v)
        if run.get("status") is None and r.get("status") is not None:
            run["status"] = r["status"]
        for k in ("num_gpus", "accelerator", "global_batch_size", "seq_len", "model", "dtype"):
            if run.get(k) is None:
                run[k] = r.get(k)
    return run, config


def _folder(folder: str, files: list, by_source: dict, by_run: tuple) -> dict[str, Any]:
    """One benchmark folder's summary row (its runs listed under ``runs``)."""
    loc = locate(os.path.join(folder, "result_0.txt"))
    assert loc is not None
    results, metrics, first, first_config = _folder_runs(files, by_source, by_run)
    row = _identity(loc, folder, first, first_config)
    row.update(
        n_runs=len(results),
        **score(results, loc.benchmark, scaling_factor(folder)),
        logged_benchmark=_logged_benchmark(first_config, loc.benchmark),
        global_batch_size=first.get("global_batch_size"),
        seq_len=first.get("seq_len"),
        model=first.get("model"),
    )
    for key in ("step_time_s", "samples_per_s", "tokens_per_s", "tflops_per_gpu", "mfu"):
        vals = [m[key] for m in metrics if m.get(key) is not None]
        row[key] = sum(vals) / len(vals) if vals else None
    if (row["mfu"] or 0) > 1:  # never an impossible number shown plainly
        row["score_note"] = "; ".join(filter(None, [row["score_note"], f"mfu>1: {FLAGS['mfu>1']}"]))
    row["throughput_from"] = next((m["from"] for m in metrics if m.get("from")), None)
    row["formula"] = next((m["formula"] for m in metrics if m.get("tflops_per_gpu")), None)
    row["folder"] = folder
    row["runs"] = [
        {
            "path": r.path,
            "time_to_train_min": r.time_to_train_min,
            "status": r.status,
            "counted": r.counted,
            "reason": r.reason,
        }
        for r in results
    ]
    return row


def _logged_benchmark(config: dict[str, Any], benchmark: str) -> str | None:
    """The benchmark the log names, when it is not its folder's."""
    bench = config.get("benchmark") or benchmark
    return bench if bench != benchmark else None


def _identity(loc, folder: str, first: dict, first_config: dict) -> dict[str, Any]:
    """Who ran what on which system: the tree's place and the first run's settings."""

    acc = first.get("accelerator")
    hw = find_accelerator(acc) if acc else None
    return {
        "round": first_config.get("round") or loc.round,
        "submitter": loc.submitter,
        "system": loc.system,
        "benchmark": loc.benchmark,
        "division": first_config.get("division"),
        "availability": first_config.get("system_status"),
        "accelerator": acc,
        "hardware": hw.key if hw else None,
        "num_gpus": first.get("num_gpus"),
        "framework": first.get("framework"),
    }


def _folder_runs(files: list, by_source: dict, by_run: dict):
    """(each result file's RunResult, the counted runs' throughput metrics, the
    first read run and its config)."""

    results: list[RunResult] = []
    metrics: list[dict] = []
    first: dict[str, Any] = {}
    first_config: dict[str, Any] = {}
    for path, status, error in sorted(files, key=lambda f: _run_index(f[0])):
        rows = by_source.get(path)
        if status != "ok" or not rows:
            results.append(run_result(path, None, {}, error or "not read"))
            continue
        run, config = _merged(rows)
        if not first:
            first, first_config = run, config
        res = run_result(path, run, config)
        results.append(res)
        if res.counted:
            events_of, stats = by_run
            events = [e for r in rows for e in events_of[r["run_id"]]]
            metrics.append(_run_throughput(run, stats.get(path), events, config, run_metrics))
    return results, metrics, first, first_config


def _run_index(path: str) -> int:
    m = _RESULT_RE.match(os.path.basename(path))
    return int(m.group(1)) if m else 0


def _logged_throughput(events: list[dict]) -> float | None:

    vals = tracked_throughputs(events)
    return sum(vals) / len(vals) if vals else None


def _eval_rate(events: list[dict]) -> float | None:
    """Progress per second between the first and the last ``eval_accuracy``, in the
    unit the benchmark counts it (``epoch_num``: tokens for gpt3; ``samples_count``)."""
    points = []
    for e in events:
        if e.get("key") != "eval_accuracy" or e.get("time_ms") is None:
            continue
        try:
            meta = json.loads(e.get("metadata") or "{}")
        except ValueError:
            continue
        p = meta.get("samples_count", meta.get("epoch_num")) if isinstance(meta, dict) else None
        if _is_number(p):
            points.append((e["time_ms"], float(p)))
    if len(points) < 2:
        return None
    (t0, p0), (t1, p1) = min(points), max(points)
    return (p1 - p0) / (t1 - t0) * 1000.0 if t1 > t0 and p1 > p0 else None


def _run_throughput(run, steps, events, config, run_metrics) -> dict[str, Any]:
    """Step time, samples/s, tokens/s, TFLOPs and MFU of one run: from its logged step
    times (``steps``: its ``StepStats``, None without), else its logged ``throughput``,
    else its progress between evaluations (which includes the evaluations' time)."""
    m = run_metrics(run, steps, events)
    if m.get("step_time_s") is not None:
        m["from"] = "logged step times"
        return m
    rules = BENCHMARKS.get(str(config.get("benchmark")))
    B, s = run.get("global_batch_size"), m.get("seq_len")
    m["from"] = None
    if rules is None or rules.model is None or not B or not s:
        return m
    for src, rate, unit in (
        ("logged throughput", _logged_throughput(events), rules.throughput),
        ("eval progress (includes eval time)", _eval_rate(events), rules.progress),
    ):
        if rate:
            sps = rate / s if unit == "tokens_per_s" else rate
            m = run_metrics(run, one_step(B / sps), events)
            m["from"] = f"{src}: step time = global batch / samples per s"
            return m
    return m


def dropped(rows: list[dict]) -> list[str]:
    """A line per result file the scores leave out, with why (``dropped: path: why``)."""
    return [
        f"dropped: {relative(run['path'])}: {run['reason']}"
        for r in rows
        for run in r["runs"]
        if not run["counted"]
    ]
