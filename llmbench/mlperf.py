"""MLPerf Training submissions: the published tree, system descriptions and scores.

A submission is published as ``<round>/<submitter>/results/<system>/<benchmark>/
result_N.txt`` beside ``<submitter>/systems/<system>.json``. ``tree_layer(path)``
turns that location into run settings (round, submitter, system, benchmark, run
index, and from the system description the accelerator, its count, the framework,
the division and availability). ``score_folders`` scores every benchmark folder
the way the official result summarizer (``mlperf_logging.result_summarizer``)
does: per run, time to train = run_stop - run_start in minutes; a run that did
not finish with status success, lacks run_start/run_stop, or has an MLLOG line
that does not parse is dropped; the score is the olympic mean of the rest
(``olympic_mean``) times the folder's ``scaling.json`` factor.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Benchmark:
    """Rules and facts of one MLPerf Training benchmark."""

    runs: int  # result files the rules require
    max_dropped: int = 1  # the summarizer's olympic trim (and drop allowance)
    model: str | None = None  # catalog model, for FLOPs and MFU
    seq_len: int | None = None  # tokens per sample when the log does not say
    throughput: str = "samples_per_s"  # unit of tracked_stats "throughput"
    progress: str = "samples_per_s"  # unit of eval_accuracy epoch_num/samples_count per s
    lora: bool = False  # fine-tuning with frozen base weights


# Required runs per benchmark: benchmark_meta.py and the RCP checker of
# mlperf-logging; max_dropped: result_summarizer (4 for unet3d, 1 otherwise).
BENCHMARKS: dict[str, Benchmark] = {
    "gpt3": Benchmark(
        3, model="gpt3-175b", seq_len=2048, throughput="tokens_per_s", progress="tokens_per_s"
    ),
    "llama31_405b": Benchmark(3, model="llama3-405b", seq_len=8192),
    "llama31_8b": Benchmark(10, model="llama3-8b", seq_len=8192),
    "llama2_70b_lora": Benchmark(10, model="llama2-70b", seq_len=8192, lora=True),
    "bert": Benchmark(10),
    "dlrm_dcnv2": Benchmark(10),
    "dlrm": Benchmark(5),
    "stable_diffusion": Benchmark(10),
    "flux1": Benchmark(10),
    "ssd": Benchmark(5),
    "retinanet": Benchmark(5),
    "resnet": Benchmark(5),
    "maskrcnn": Benchmark(5),
    "unet3d": Benchmark(40, max_dropped=4),
    "gnn": Benchmark(10),
    "rgat": Benchmark(10),
    "transformer": Benchmark(10),
    "gnmt": Benchmark(10),
    "minigo": Benchmark(10),
    "ncf": Benchmark(10),
}

_ROUND_RE = re.compile(r"(?:^|[_-])v?(\d+\.\d+)$")
_RESULT_RE = re.compile(r"^result_(\d+)\.txt$")


@dataclass(frozen=True)
class Location:
    """Where a result file sits in a submission tree."""

    root: str  # the submitter folder
    submitter: str
    system: str
    benchmark: str
    run_index: int | None
    round: str | None  # 'v4.0'


def locate(path: str) -> Location | None:
    """The submission-tree location of a result file, or None if it is not in one."""
    full = os.path.abspath(path)
    parts = full.replace(os.sep, "/").split("/")
    if len(parts) < 6 or parts[-4] != "results":
        return None
    m = _RESULT_RE.match(parts[-1])
    if m is None:
        return None
    root = "/".join(parts[:-4])
    found = _ROUND_RE.search(parts[-6]) if len(parts) >= 6 else None
    return Location(
        root=root,
        submitter=parts[-5],
        system=parts[-3],
        benchmark=parts[-2],
        run_index=int(m.group(1)),
        round=f"v{found.group(1)}" if found else None,
    )


def read_system(path: str) -> dict[str, Any]:
    """A ``systems/<system>.json`` as a dict. Handles the v0.6 files that are
    ``key: {"value": ...}`` lines, with a Python-literal dict in ``entry``
    (read with ``ast.literal_eval``: data only, nothing is run)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return data
    except ValueError:
        pass
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            value = json.loads(rest).get("value")
        except (ValueError, AttributeError):
            continue
        out[key.strip()] = value
    entry = _literal_dict(out.get("entry"))
    if entry:
        nodes = _literal_dict(entry.get("nodes")) or {}
        out.setdefault("submitter", out.get("org"))
        out.setdefault("system_name", entry.get("hardware"))
        out.setdefault("framework", entry.get("framework"))
        out.setdefault("number_of_nodes", nodes.get("num_nodes"))
        out.setdefault("accelerators_per_node", nodes.get("num_accelerators"))
        out.setdefault("accelerator_model_name", nodes.get("accelerator"))
    return out


def _literal_dict(value: Any) -> dict | None:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return None
    try:
        found = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return found if isinstance(found, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _system_values(path: str) -> dict[str, Any] | None:
    """Run settings from a ``systems/<system>.json``; None when there is none."""
    try:
        desc = read_system(path)
    except OSError:
        return None
    values: dict[str, Any] = {}
    nodes, per_node = _int(desc.get("number_of_nodes")), _int(desc.get("accelerators_per_node"))
    if nodes is not None and per_node is not None:
        values.update(num_nodes=nodes, gpus_per_node=per_node, num_gpus=nodes * per_node)
    for key, name in (
        ("accelerator_model_name", "accelerator"),
        ("framework", "framework"),
        ("division", "division"),
        ("status", "system_status"),
        ("system_name", "system_name"),
    ):
        if isinstance(desc.get(key), str) and desc[key].strip():
            values[name] = desc[key].strip()
    return values


def scaling_factor(folder: str) -> float:
    """The ``scaling.json`` factor of a benchmark folder (1.0 without one), as the
    summarizer reads it."""
    try:
        with open(os.path.join(folder, "scaling.json"), encoding="utf-8") as f:
            value = json.load(f).get("scaling_factor", 1.0)
    except (OSError, ValueError, AttributeError):
        return 1.0
    return float(value) if isinstance(value, int | float) else 1.0


def _folder_layer(loc: Location, folder: str) -> tuple[str, dict[str, Any]]:
    """What a benchmark folder's place in the tree and its system file say (the
    same for every result file in it)."""
    values: dict[str, Any] = {
        "submitter": loc.submitter,
        "system": loc.system,
        "benchmark": loc.benchmark,
    }
    if loc.round:
        values["round"] = loc.round
    origin = f"mlperf tree {loc.root}"
    system = _system_values(f"{loc.root}/systems/{loc.system}.json")
    if system is not None:
        values.update(system)
        origin += f" + systems/{loc.system}.json"
    if os.path.exists(os.path.join(folder, "scaling.json")):
        values["mlperf_scaling_factor"] = scaling_factor(folder)
    return origin, values


def tree_layer(
    path: str, cache: dict[str, tuple[str, dict[str, Any]]] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """(origin, settings) for a result file inside a submission tree, else None.
    ``cache`` (folder -> its layer) reads each folder's files once, e.g. per ingest."""
    loc = locate(path)
    if loc is None:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    found = cache.get(folder) if cache is not None else None
    if found is None:
        found = _folder_layer(loc, folder)
        if cache is not None:
            cache[folder] = found
    origin, values = found
    return origin, {**values, "mlperf_run": loc.run_index}


def mllog_line(time_ms: int, key: str, value: Any, file: str = "train.py", **metadata: Any) -> str:
    """One record as ``mlperf_logging.mllog`` prints it (for tests and generators)."""
    rec = {
        "namespace": "",
        "time_ms": time_ms,
        "event_type": "POINT_IN_TIME",
        "key": key,
        "value": value,
        "metadata": {"file": file, "lineno": 80, **metadata},
    }
    return ":::MLLOG " + json.dumps(rec)


# -- scoring ---------------------------------------------------------------------


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


# -- the submissions in a store --------------------------------------------------------

SUMMARY_VIEW = [
    "round",
    "submitter",
    "system",
    "benchmark",
    "division",
    "accelerator",
    "num_gpus",
    "n_runs",
    "n_dropped",
    "scaling_factor",
    "score_min",
    "step_time_s",
    "tokens_per_s",
    "mfu",
    "score_note",
]


def _under(path: str, roots: list[str]) -> bool:
    return not roots or any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def summarize_submissions(
    db: str | None = None, paths: list[str] | tuple[str, ...] = ()
) -> list[dict]:
    """One dict per benchmark folder of the MLPerf results in the store (optionally
    only those under ``paths``): identity, score (minutes) as the official summarizer
    computes it, step time, throughput and MFU averaged over counted runs, and
    ``runs``: [{path, time_to_train_min, status, counted, reason}]."""
    from .formats import records
    from .store import Store

    roots = [os.path.abspath(p) for p in paths]
    with Store(db) as store:
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
        steps = records(store.read("steps", ids))
        events = records(store.read("events", ids, keys=["tracked_stats", "eval_accuracy"]))
    by_source: dict[str, list[dict]] = {}
    for r in runs:
        by_source.setdefault(r["source"], []).append(r)
    by_run: dict[str, tuple[list, list]] = {i: ([], []) for i in ids}
    for s in steps:
        by_run[s["run_id"]][0].append(s)
    for e in events:
        by_run[e["run_id"]][1].append(e)
    out = [
        _folder(folder, rows, by_source, by_run)
        for folder, rows in sorted(folders.items(), key=lambda kv: _sort_key(kv[0]))
    ]
    return out


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


def _folder(folder: str, files: list, by_source: dict, by_run: dict) -> dict[str, Any]:
    from .metrics import run_metrics
    from .specs import find_accelerator

    loc = locate(os.path.join(folder, "result_0.txt"))
    assert loc is not None
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
            steps, events = ([], [])
            for r in rows:
                steps += by_run[r["run_id"]][0]
                events += by_run[r["run_id"]][1]
            metrics.append(_run_throughput(run, steps, events, config, run_metrics))
    bench = first_config.get("benchmark") or loc.benchmark
    scored = score(results, loc.benchmark, scaling_factor(folder))
    acc = first.get("accelerator")
    hw = find_accelerator(acc) if acc else None
    row: dict[str, Any] = {
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
        "n_runs": len(results),
        **scored,
        "logged_benchmark": bench if bench != loc.benchmark else None,
        "global_batch_size": first.get("global_batch_size"),
        "seq_len": first.get("seq_len"),
        "model": first.get("model"),
    }
    for key in ("step_time_s", "samples_per_s", "tokens_per_s", "tflops_per_gpu", "mfu"):
        vals = [m[key] for m in metrics if m.get(key) is not None]
        row[key] = sum(vals) / len(vals) if vals else None
    row["throughput_from"] = next((m["from"] for m in metrics if m.get("from")), None)
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


def _run_index(path: str) -> int:
    m = _RESULT_RE.match(os.path.basename(path))
    return int(m.group(1)) if m else 0


def _logged_throughput(events: list[dict]) -> float | None:
    from .metrics import tracked_throughputs

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
    times, else its logged ``throughput``, else its progress between evaluations
    (which includes the evaluations' time)."""
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
            m = run_metrics(run, [{"step": 1, "step_time_s": B / sps}], events)
            m["from"] = f"{src}: step time = global batch / samples per s"
            return m
    return m
