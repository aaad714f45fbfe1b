"""Compare two sets of runs: per matched pair and metric, the candidate/baseline
ratio, a bootstrap confidence interval, a verdict, and the settings that differ.

A side is runs read from logs (files, folders, globs), a selection of a store
(run ids or source globs), a saved ``report --format json``, or a table of
published numbers (CSV: model, num_gpus, ..., tokens_per_s_per_gpu,
tflops_per_gpu, source; ``reference`` names the one llmbench ships).

Method (``EXPLAIN``): a run's samples are its steady-state step times (after the
warm-up, without skipped/NaN iterations), each turned into the metric (tokens/s
per GPU = tokens per step / (step time x GPUs), ...). The ratio is candidate over
baseline of the medians; its interval is a seeded percentile bootstrap
(``scipy.stats.bootstrap``) over the steps, or over the runs where both sides
have several (MLPerf's repeated runs). ``faster``/``slower``: the change exceeds
``threshold`` in the metric's good direction and the interval excludes no change;
else ``same``. Without samples on a side (a saved report, a published row) the
verdict comes from the point estimate and says so.
"""

from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any

from .columns import STEADY_CUT
from .errors import InputError, StoreError, UsageError
from .formats import rows_text
from .ingest import read_logs
from .logs import Logs
from .metric_specs import COMPARABLE
from .metrics import DEFAULT_FORMULA, normal_timed, run_warmup
from .plots import tokens_consumed
from .report import load_selection, summarize

#: metric -> +1 when higher is better, -1 when lower is (``metric_specs.COMPARABLE``;
#: ``loss_at_tokens``: the training loss where both runs consumed the same tokens, the
#: most both reached, linear between logged steps: a point estimate)
METRICS: dict[str, int] = COMPARABLE
DEFAULT_MATCH = ("model", "num_gpus")
RESAMPLES = 2000

# the settings whose differences explain a change most often, first
DIFF_ORDER = (
    *("tp", "pp", "dp", "cp", "ep", "micro_batch_size", "global_batch_size", "zero_stage"),
    *("recompute", "dtype", "seq_len", "num_gpus", "accelerator", "parser", "framework"),
    *("framework_version", "container", "world_size"),
)

EXPLAIN = "Method: A" + __doc__.split("Method (``EXPLAIN``): a", 1)[1].replace("``", "")


@dataclass
class Side:
    """One side of a comparison: a metrics row per run (``table``, a DataFrame) and,
    where steps were read, each run's steady-state step times (``times``)."""

    name: str
    table: Any
    times: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, dict] = field(default_factory=dict)
    losses: dict[str, tuple] = field(default_factory=dict)  # run -> (tokens, loss), by tokens


def load_side(
    spec: str | list[str],
    *,
    db: str | None = None,
    warmup: int | None = None,
    settings: Any = None,
    formula: str | None = None,
) -> Side:
    """A side from ``spec``: ``reference``, a ``.csv`` table, a ``.json`` report, paths
    or globs of logs to read, or run ids/source globs of the store ``db``. Runs are
    counted in one FLOPs convention, ``formula`` (the default one when None), so that
    two sides' TFLOP/s compare like with like."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    name = " ".join(specs)
    if specs == ["reference"]:
        with resources.files("llmbench").joinpath("data/reference.csv").open(encoding="utf-8") as f:
            return _table_side(name, _read_csv(f))
    if len(specs) == 1 and specs[0].endswith(".csv") and os.path.isfile(specs[0]):
        with open(specs[0], encoding="utf-8") as f:
            return _table_side(name, _read_csv(f))
    if len(specs) == 1 and specs[0].endswith(".json") and os.path.isfile(specs[0]):
        return _report_side(name, specs[0])
    if all(os.path.exists(s) or glob.glob(s) for s in specs):
        return _logs_side(name, read_logs(specs, settings), warmup, formula)
    columns = ["step", *STEADY_CUT, "loss", "consumed_tokens", "consumed_samples"]
    try:
        logs = load_selection(db, specs, steps=columns, warmup=warmup)
    except (StoreError, UsageError):  # no store, or no run matches
        lost = [s for s in specs if _a_path(s) and not os.path.exists(s)]
        if lost:  # a file that is not there: say so, not that the store lacks it
            raise InputError(
                "no such file or directory", path=lost[0], remedy=SIDES_REMEDY
            ) from None
        raise
    return _logs_side(name, logs, warmup, formula)


#: what a side of ``compare`` can be
SIDES_REMEDY = (
    "a side is logs (files, folders, quoted globs), run ids or source globs of the store, a "
    "saved `report --format json`, a CSV of published numbers, or `reference`"
)
LOG_SUFFIXES = (".log", ".out", ".txt", ".err", ".md", ".gz", ".bz2", ".xz", ".csv", ".json")


def _a_path(spec: str) -> bool:
    """Whether a side's spec names a file (a folder in it, or a log's suffix), not a
    run id or a pattern."""
    if any(c in spec for c in "*?["):
        return False
    return os.sep in spec or spec.lower().endswith(LOG_SUFFIXES)


def _read_csv(f) -> list[dict]:
    import csv

    rows = []
    for row in csv.DictReader(f):
        rows.append({k: _number(v) for k, v in row.items()})
    return rows


def _number(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v or None


def _table_side(name: str, rows: list[dict]) -> Side:
    import pandas as pd

    if not rows:
        raise InputError("the table has no rows", path=name)
    table = pd.DataFrame(rows)
    table["run_id"] = [f"ref{k + 1}" for k in range(len(table))]
    settings = {r["run_id"]: _settings(r) for r in table.to_dict("records")}
    return Side(name, table, {}, settings)


def _report_side(name: str, path: str) -> Side:
    import pandas as pd

    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"not a saved report ({e})", path=path) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError("not a saved report (`report --format json` output)", path=path)
    if not rows:
        raise InputError("the saved report has no runs", path=path)
    table = pd.DataFrame(rows)
    return Side(name, table, {}, {r["run_id"]: _settings(r) for r in rows})


def _logs_side(name: str, logs, warmup: int | None, formula: str | None = None) -> Side:
    table = summarize(logs, formula or DEFAULT_FORMULA, warmup=warmup)
    if not len(table):
        raise UsageError(f"{name}: no runs")
    times = _steady_times(logs.steps, warmup)
    runs = {r["run_id"]: r for r in logs.runs.to_dict("records")}
    settings = {rid: _settings(runs.get(rid, {}), True) for rid in table["run_id"]}
    return Side(name, table, times, settings, _losses(logs.steps, table))


def _losses(steps, table) -> dict[str, tuple]:
    """Per run: (tokens consumed, loss) at each step that logs a loss, by tokens:
    logged tokens, else samples x seq_len, else step x global batch x seq_len."""
    import numpy as np

    out: dict[str, tuple] = {}
    if steps is None or not len(steps) or "loss" not in steps:
        return out
    shape = {r["run_id"]: r for r in table.to_dict("records")}
    for run_id, g in steps[steps["loss"].notna()].groupby("run_id", sort=False):
        tokens = tokens_consumed(g, shape.get(run_id, {}))  # the loss figure's rule
        if tokens is not None and len(tokens):
            order = np.argsort(tokens, kind="stable")
            out[run_id] = (tokens[order], g["loss"].to_numpy(dtype=float)[order])
    return out


def _loss_at(side: Side, rows: list[dict], tokens: float) -> float | None:
    """The median over ``rows`` of each run's loss at ``tokens`` (linear between steps)."""
    import numpy as np

    found = [
        float(np.interp(tokens, *side.losses[r["run_id"]]))
        for r in rows
        if r["run_id"] in side.losses
    ]
    return float(np.median(found)) if found else None


def _loss_pair(base: Side, cand: Side, b_rows: list, c_rows: list) -> tuple:
    """(baseline loss, candidate loss, tokens) at the most tokens both sides reached."""
    reach = [
        max(side.losses[r["run_id"]][0])
        for side, rows in ((base, b_rows), (cand, c_rows))
        for r in rows
        if r["run_id"] in side.losses
    ]
    have = [
        any(r["run_id"] in side.losses for r in rows)
        for side, rows in ((base, b_rows), (cand, c_rows))
    ]
    if not all(have):
        return None, None, None
    tokens = min(reach)
    return _loss_at(base, b_rows, tokens), _loss_at(cand, c_rows, tokens), tokens


def _steady_times(steps, warmup: int | None) -> dict[str, Any]:
    """Each run's steady-state step times (numpy), as ``metrics.steady_state`` takes
    them: rows with a time, in order, skipped/NaN intervals out, the warm-up cut."""

    out: dict[str, Any] = {}
    if steps is None or not len(steps):
        return out
    for run_id, g in steps.groupby("run_id", sort=False):
        if "step" in g and g["step"].notna().all() and not g["step"].is_monotonic_increasing:
            g = g.sort_values("step", kind="stable")
        cols = {c: g[c].to_numpy(dtype=float, na_value=math.nan) for c in STEADY_CUT if c in g}
        cols = normal_timed(cols)[0]
        if len(cols["step_time_s"]):
            out[run_id] = cols["step_time_s"][run_warmup(cols, warmup) :]
    return out


def _settings(row: dict, with_config: bool = False) -> dict:
    """What a run was set up with: its setting columns and its arguments dump."""
    out = {k: v for k, v in row.items() if k in DIFF_ORDER and v is not None and v == v}
    if with_config and row.get("config"):
        try:
            config = json.loads(row["config"])
        except ValueError:
            config = {}
        for k, v in config.items():
            out.setdefault(k, v)
    return out


def _key(row: dict, match: tuple[str, ...]) -> tuple:
    """The pairing key of a run (a value the run lacks is None: such runs pair with
    runs that lack it too)."""
    values = (None if _nan(row.get(k)) else row.get(k) for k in match)
    return tuple(int(v) if isinstance(v, float) and v.is_integer() else v for v in values)


def _scale(row: dict, metric: str) -> float | None:
    """The metric of one step from its time ``t``: ``scale / t`` (or ``t`` itself)."""
    t = row.get("step_time_s")
    value = row.get(metric)
    if metric == "step_time_s" or t is None or value is None or t != t or value != value:
        return None
    return float(value) * float(t)


def _samples(side: Side, rows: list[dict], metric: str) -> list[Any]:
    """Per run of ``rows``: its metric per steady step (numpy), or None."""
    import numpy as np

    out = []
    for r in rows:
        t = side.times.get(r["run_id"])
        if t is None or not len(t):
            out.append(None)
        elif metric == "step_time_s":
            out.append(np.asarray(t, dtype=float))
        else:
            k = _scale(r, metric)
            out.append(None if k is None else k / np.asarray(t, dtype=float))
    return out


def _point(rows: list[dict], metric: str) -> float | None:
    import numpy as np

    vals = [float(r[metric]) for r in rows if r.get(metric) is not None and r[metric] == r[metric]]
    return float(np.median(vals)) if vals else None


def _interval(base: list, cand: list, confidence: float, seed: int):
    """(ratio low, high, how) of median(cand)/median(base) by a seeded bootstrap."""
    import numpy as np
    from scipy import stats

    if len(base) >= 2 and len(cand) >= 2:  # repeated runs: resample runs
        b = np.array([float(np.median(x)) for x in base])
        c = np.array([float(np.median(x)) for x in cand])
        how = f"bootstrap over runs ({len(b)} vs {len(c)})"
    else:
        b, c = np.concatenate(base), np.concatenate(cand)
        how = f"bootstrap over steady steps ({len(b)} vs {len(c)})"
    if len(b) < 2 or len(c) < 2:
        return None, None, "one sample a side: no interval"

    def ratio(x, y, axis=-1):
        return np.median(y, axis=axis) / np.median(x, axis=axis)

    res = stats.bootstrap(
        (b, c),
        ratio,
        n_resamples=RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high), how


class Verdict(StrEnum):
    """What a pair's change says: ``faster``/``slower``/``same`` for a speed,
    ``better``/``worse`` for the loss, ``n/a`` where a side lacks the metric."""

    FASTER = "faster"
    SLOWER = "slower"
    SAME = "same"
    BETTER = "better"
    WORSE = "worse"
    NA = "n/a"

    @property
    def regression(self) -> bool:
        return self in (Verdict.SLOWER, Verdict.WORSE)


def verdict(
    ratio: float, low: float | None, high: float | None, sign: int, threshold: float
) -> Verdict:
    """``faster``/``slower``/``same`` for a candidate/baseline ``ratio`` of a metric
    whose good direction is ``sign``: the change must pass ``threshold`` and, with an
    interval, the interval must exclude no change."""
    gain = ratio if sign > 0 else 1 / ratio
    up = down = True  # without an interval, the point estimate decides
    if low is not None and high is not None:
        lo, hi = (low, high) if sign > 0 else (1 / high, 1 / low)
        up, down = lo > 1, hi < 1
    if gain > 1 + threshold and up:
        return Verdict.FASTER
    if gain < 1 - threshold and down:
        return Verdict.SLOWER
    return Verdict.SAME


def settings_diff(base: dict, cand: dict) -> list[tuple[str, Any, Any]]:
    """(setting, baseline, candidate) for each setting that differs: parallelism and
    precision first (``DIFF_ORDER``), then every other key of the arguments dumps."""
    keys = [k for k in DIFF_ORDER if k in base or k in cand]
    keys += sorted((set(base) | set(cand)) - set(keys), key=str)
    out = []
    for k in keys:
        b, c = base.get(k), cand.get(k)
        if b != c and not (_nan(b) and _nan(c)):
            out.append((k, b, c))
    return out


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


@dataclass
class Pair:
    """One matched key and metric of a comparison: each side's value, the candidate /
    baseline ``ratio`` with its interval (None: a point estimate), the ``verdict``, how
    it was made (``method``) and the runs of each side (ids, comma-separated)."""

    key: str
    metric: str
    baseline: float | None
    candidate: float | None
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: Verdict
    point: bool
    method: str
    baseline_runs: str
    candidate_runs: str

    @property
    def shown(self) -> str:
        """The verdict as printed: ``faster``, ``slower (point)``, ``n/a``."""
        return self.verdict.value + (" (point)" if self.point else "")


@dataclass
class Comparison:
    """``items``: one ``Pair`` per matched key and metric (``pairs``: them as a
    DataFrame); ``unmatched``: (side, key, run ids) that found no partner; ``diffs``:
    per key, the settings that differ between the first runs of each side."""

    items: list[Pair]
    unmatched: list[tuple[str, tuple, list[str]]]
    diffs: dict[tuple, list[tuple[str, Any, Any]]]
    match: tuple[str, ...]
    times: dict[str, tuple] = field(default_factory=dict)  # pair -> steady step times a side
    warmups: dict[str, tuple] = field(default_factory=dict)  # pair -> warm-up steps unequal
    formulas: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # conventions of each side

    @property
    def pairs(self):
        """The pairs as a DataFrame (``PAIR_COLUMNS``; ``verdict`` as printed)."""
        import pandas as pd

        rows = [[getattr(p, c) for c in PAIR_COLUMNS] for p in self.items]
        frame = pd.DataFrame(rows, columns=PAIR_COLUMNS)
        frame["verdict"] = [p.shown for p in self.items]
        return frame

    def regressed(self) -> bool:
        """Whether any verdict is ``slower`` (or, for the loss, ``worse``), from an
        interval or a point estimate."""
        return any(p.verdict.regression for p in self.items)


@dataclass(frozen=True)
class CompareOptions:
    """How two sides are compared: the columns that pair runs (``match``), the
    ``metrics`` (None: ``AUTO_METRICS``' first that every pair has), the smallest
    change called a verdict (``threshold``, a fraction), the interval's ``confidence``
    and the bootstrap's ``seed``. Checked when made: UsageError names a bad one."""

    match: tuple[str, ...] = DEFAULT_MATCH
    metrics: tuple[str, ...] | None = None
    threshold: float = 0.02
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        for m in self.metrics or ():
            if m not in METRICS:
                raise UsageError(f"unknown metric {m!r} (metrics: {', '.join(METRICS)})")
        if not 0 < self.confidence < 1:
            raise UsageError("--confidence must be between 0 and 1")
        if self.threshold < 0:
            raise UsageError("--threshold must be 0 or more")


def compare_runs(
    baseline: Side | str | list[str],
    candidate: Side | str | list[str],
    options: CompareOptions | None = None,
    *,
    db: str | None = None,
    warmup: int | None = None,
    formula: str | None = None,
    **given: Any,
) -> Comparison:
    """Compare ``candidate`` with ``baseline`` (Sides, what ``read_logs`` or ``summarize``
    return, or specs for ``load_side``, whose runs are counted in the FLOPs convention
    ``formula``): the ``Comparison`` (pairs, runs without a partner, settings that
    differ, each side's conventions). ``options`` (or its fields as keywords:
    ``metrics=``, ``match=``, ...): ``CompareOptions``."""
    opts = options or CompareOptions(**{k: tuple(v) if k in ("match", "metrics") and v else v
                                        for k, v in given.items()})  # fmt: skip
    kw = {"db": db, "warmup": warmup, "formula": formula}
    base, cand = (side_of(x, label, **kw) for x, label in ((baseline, "baseline"), (candidate, "candidate")))  # fmt: skip
    groups = {label: _grouped(side, label, opts.match) for label, side in (("baseline", base), ("candidate", cand))}  # fmt: skip
    keys = [k for k in groups["baseline"] if k in groups["candidate"]]
    unmatched = [
        (label, k, [r["run_id"] for r in rows])
        for label, other in (("baseline", "candidate"), ("candidate", "baseline"))
        for k, rows in groups[label].items()
        if k not in groups[other]
    ]
    metrics = opts.metrics or (_common_metric(keys, groups),)
    formulas = (_formulas(base.table), _formulas(cand.table))
    comp = Comparison([], unmatched, {}, tuple(opts.match), formulas=formulas)
    for k in keys:
        _compare_key(comp, k, (base, cand), (groups["baseline"][k], groups["candidate"][k]))
        comp.items += [
            _pair(k, m, (base, cand), (groups["baseline"][k], groups["candidate"][k]), opts)
            for m in metrics
        ]
    return comp


def _grouped(side: Side, label: str, match: tuple[str, ...]) -> dict[tuple, list[dict]]:
    """A side's runs by their pairing key; UsageError when it lacks a ``match`` column."""
    missing = [k for k in match if k not in side.table.columns]
    if missing:
        raise UsageError(f"{label} {side.name}: no column {', '.join(missing)} to match on")
    by: dict[tuple, list[dict]] = {}
    for r in side.table.to_dict("records"):
        by.setdefault(_key(r, match), []).append(r)
    return by


def _compare_key(comp: Comparison, k: tuple, sides: tuple[Side, Side], rows: tuple) -> None:
    """What a comparison notes of one matched key beside its pairs: each side's steady
    step times, warm-ups that differ, the settings that differ."""
    name = _name(comp.match, k)
    w = tuple(
        sorted({int(r["warmup_steps"]) for r in side if not _nan(r.get("warmup_steps"))})
        for side in rows
    )
    if all(w) and w[0] != w[1]:
        comp.warmups[name] = tuple(",".join(map(str, x)) for x in w)
    comp.times[name] = tuple(
        _concat([side.times.get(r["run_id"]) for r in these])
        for side, these in zip(sides, rows, strict=True)
    )
    first = (
        side.settings.get(these[0]["run_id"], {}) for side, these in zip(sides, rows, strict=True)
    )
    comp.diffs[k] = settings_diff(*first)


#: what ``compare`` compares when no metric is asked for: the first every pair has
AUTO_METRICS = ("tokens_per_s_per_gpu", "tokens_per_s", "step_time_s")


def _common_metric(keys: list[tuple], groups: dict[str, dict]) -> str:
    """The first of ``AUTO_METRICS`` both sides have for every pair (else for the most
    pairs)."""

    def have(metric: str) -> int:
        return sum(
            _point(groups["baseline"][k], metric) is not None
            and _point(groups["candidate"][k], metric) is not None
            for k in keys
        )

    counts = [have(m) for m in AUTO_METRICS]
    full = [m for m, n in zip(AUTO_METRICS, counts, strict=True) if keys and n == len(keys)]
    return full[0] if full else AUTO_METRICS[counts.index(max(counts))]


def side_of(value: Any, label: str, **kw: Any) -> Side:
    """A comparison side from a Side, what ``read_logs`` returns (a ``Logs``), what
    ``summarize`` returns (a DataFrame: point estimates, no steps), or a spec for
    ``load_side`` (``kw``: its db, warmup and formula)."""
    if isinstance(value, Side):
        return value
    if isinstance(value, Logs):
        return _logs_side(label, value, kw.get("warmup"), kw.get("formula"))
    if hasattr(value, "columns") and hasattr(value, "to_dict"):  # a summarize() table
        if "run_id" not in value.columns or not len(value):
            raise UsageError(f"{label}: a table of runs with run_id (what summarize returns)")
        rows = value.to_dict("records")
        return Side(label, value, {}, {r["run_id"]: _settings(r) for r in rows})
    if isinstance(value, str | list | tuple):
        return load_side(list(value) if isinstance(value, tuple) else value, **kw)
    raise UsageError(
        f"{label}: {type(value).__name__} is not a side (logs, a summarize table, run ids or paths)"
    )


def _formulas(table) -> tuple[str, ...]:
    """The FLOPs conventions a side's rows are counted in (a published table: none)."""
    if "formula" not in table.columns:
        return ()
    return tuple(sorted({f for f in table["formula"] if isinstance(f, str)}))


def _concat(arrays: list) -> Any:
    import numpy as np

    found = [a for a in arrays if a is not None and len(a)]
    return np.concatenate(found) if found else np.array([])


def compare(baseline, candidate, **kw: Any):
    """One row per matched pair and metric (a DataFrame): ``baseline``,
    ``candidate``, ``ratio``, ``ci_low``, ``ci_high``, ``verdict``, ``method``, the
    runs, and ``settings_diff`` ((setting, baseline, candidate), ...); the runs that
    found no partner in ``.attrs["unmatched"]``. Arguments as ``compare_runs``."""
    comp = compare_runs(baseline, candidate, **kw)
    by_key = {_name(comp.match, k): d for k, d in comp.diffs.items()}
    frame = comp.pairs.assign(settings_diff=[by_key.get(k, []) for k in comp.pairs["key"]])
    frame.attrs["unmatched"] = comp.unmatched
    return frame


def _name(match: tuple[str, ...], key: tuple) -> str:
    return ", ".join(f"{m}={v}" for m, v in zip(match, key, strict=True))


PAIR_COLUMNS = [
    *("key", "metric", "baseline", "candidate", "ratio", "ci_low", "ci_high", "verdict"),
    *("method", "baseline_runs", "candidate_runs"),
]


def _pair(
    k: tuple, metric: str, sides: tuple[Side, Side], rows: tuple, opts: CompareOptions
) -> Pair:
    """The ``Pair`` of one key and metric: the metric on each side, the ratio, its
    interval and the verdict (n/a, with the reason, where a side lacks the metric)."""
    (base, cand), (b_rows, c_rows) = sides, rows
    ids = (",".join(r["run_id"] for r in b_rows), ",".join(r["run_id"] for r in c_rows))
    head = (_name(opts.match, k), metric)
    if metric == "loss_at_tokens":
        return Pair(*head, *_loss_values(base, cand, b_rows, c_rows, opts.threshold), *ids)
    b_val, c_val = _point(b_rows, metric), _point(c_rows, metric)
    if b_val is None or c_val is None or b_val == 0:
        side = "baseline" if b_val is None or b_val == 0 else "candidate"
        why = f"no {metric} on the {side}"
        return Pair(*head, b_val, c_val, None, None, None, Verdict.NA, False, why, *ids)
    ratio = c_val / b_val
    bs, cs = _samples(base, b_rows, metric), _samples(cand, c_rows, metric)
    low = high = None
    how = "point estimate (a side has no steps to resample)"
    if all(x is not None for x in bs + cs):
        low, high, how = _interval(bs, cs, opts.confidence, opts.seed)
        if low is not None:  # the values and ratio of the samples, as the interval is of them
            b_val, c_val = _medians(bs, cs)
            ratio = c_val / b_val
    v = verdict(ratio, low, high, METRICS[metric], opts.threshold)
    return Pair(*head, b_val, c_val, ratio, low, high, v, low is None, how, *ids)


def _loss_values(base: Side, cand: Side, b_rows: list, c_rows: list, threshold: float) -> tuple:
    """A loss pair's values (baseline, candidate, ratio, low, high, verdict, point,
    method): at the most tokens both sides consumed, a point estimate (``better`` /
    ``worse``)."""
    b_val, c_val, tokens = _loss_pair(base, cand, b_rows, c_rows)
    if b_val is None or c_val is None or not b_val:
        return (b_val, c_val, None, None, None, Verdict.NA, False, "no loss on a side")
    ratio = c_val / b_val
    v = verdict(ratio, None, None, METRICS["loss_at_tokens"], threshold)
    v = {Verdict.FASTER: Verdict.BETTER, Verdict.SLOWER: Verdict.WORSE}.get(v, v)  # convergence
    return (b_val, c_val, ratio, None, None, v, True, f"at {tokens:.6g} tokens")


def _medians(bs: list, cs: list) -> tuple[float, float]:
    """Each side's median as the interval resamples it: of the runs' medians where both
    sides have several runs, else of all steady steps pooled."""
    import numpy as np

    if len(bs) >= 2 and len(cs) >= 2:
        b = np.median([float(np.median(x)) for x in bs])
        c = np.median([float(np.median(x)) for x in cs])
    else:
        b, c = np.median(np.concatenate(bs)), np.median(np.concatenate(cs))
    return float(b), float(c)


# -- output -------------------------------------------------------------------------

MARKS = {"faster": "▲", "slower": "▼", "better": "▲", "worse": "▼", "same": "="}


def _pct(v: float | None) -> str:
    return "" if v is None or v != v else f"{(v - 1) * 100:+.1f}%"


def _plain(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v.item() if hasattr(v, "item") else v


def as_json(comp: Comparison) -> str:
    """Per pair: its key, runs, the settings that differ, and per metric ``baseline``,
    ``candidate``, ``ratio``, ``ci_low``, ``ci_high``, ``verdict``, ``method``; the FLOPs
    conventions each side is counted in (``formulas``)."""
    out = []
    for key, g in comp.pairs.groupby("key", sort=False):
        first = g.iloc[0]
        k = next(
            k
            for k in comp.diffs
            if ", ".join(f"{m}={v}" for m, v in zip(comp.match, k, strict=True)) == key
        )
        out.append(
            {
                "key": dict(zip(comp.match, map(_plain, k), strict=True)),
                "baseline_runs": first["baseline_runs"].split(","),
                "candidate_runs": first["candidate_runs"].split(","),
                "settings_diff": [
                    {"setting": s, "baseline": _plain(b), "candidate": _plain(c)}
                    for s, b, c in comp.diffs[k]
                ],
                "metrics": {
                    r["metric"]: {
                        c: _plain(r[c])
                        for c in ("baseline", "candidate", "ratio", "ci_low", "ci_high", "verdict")
                    }
                    | {"method": r["method"]}
                    for r in g.to_dict("records")
                },
            }
        )
    unmatched = [
        {"side": side, "key": dict(zip(comp.match, map(_plain, k), strict=True)), "runs": ids}
        for side, k, ids in comp.unmatched
    ]
    formulas = dict(zip(("baseline", "candidate"), map(list, comp.formulas), strict=True))
    return json.dumps({"pairs": out, "unmatched": unmatched, "formulas": formulas}, indent=1) + "\n"


def as_text(comp: Comparison, fmt: str = "table") -> str:
    """A terminal table (▲ faster, ▼ slower) or a markdown table for a pull request,
    then each pair's settings that differ and the runs that found no partner."""
    cols = ["pair", "metric", "baseline", "candidate", "change", "interval", "verdict"]
    rows = []
    for r in comp.pairs.to_dict("records"):
        v = r["verdict"] if r["verdict"] != "n/a" else f"n/a: {r['method']}"
        mark = MARKS.get(v.split(" ")[0], "")
        interval = (
            f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
            if r["ci_low"] is not None and r["ci_low"] == r["ci_low"]
            else ""
        )
        rows.append(
            [
                r["key"],
                r["metric"],
                _plain(r["baseline"]),
                _plain(r["candidate"]),
                _pct(r["ratio"]),
                interval,
                f"{mark} {v}".strip(),
            ]
        )
    right = [False, False, True, True, True, False, False]
    text = rows_text(cols, rows, right, fmt) if rows else "no pairs\n"
    bullet = "- " if fmt == "markdown" else ""
    return "\n".join([text.rstrip("\n"), *(bullet + line for line in notes(comp))]) + "\n"


def notes(comp: Comparison) -> list[str]:
    """What to read beside the pairs: the settings that differ, unequal warm-ups,
    runs that found no partner."""
    lines = []
    for k, diff in comp.diffs.items():
        if diff:
            shown = "; ".join(f"{s}: {_plain(b)} -> {_plain(c)}" for s, b, c in diff[:12])
            more = f"; ... {len(diff) - 12} more" if len(diff) > 12 else ""
            lines.append(f"{_name(comp.match, k)} differs in {shown}{more}")
    for k, (b, c) in comp.warmups.items():
        lines.append(
            f"{k}: warm-up differs (baseline {b}, candidate {c} step(s) left out): set "
            "--warmup to compare like with like"
        )
    if len(comp.pairs) and any(all(v is None for v in k) for k in comp.diffs):
        lines.append(
            f"runs that name no {', '.join(comp.match)} on either side were paired with each "
            "other: check they ran the same job (or --match other columns)"
        )
    for side, k, ids in comp.unmatched:
        other = "candidate" if side == "baseline" else "baseline"
        lines.append(f"no {other} for the {side} run(s) {', '.join(ids)} ({_name(comp.match, k)})")
    flops = sorted(set(comp.pairs["metric"]) & FLOPS_METRICS) if len(comp.pairs) else []
    if flops:
        base, cand = (", ".join(f) or "as published" for f in comp.formulas)
        same = base == cand
        lines.append(
            f"{', '.join(flops)} counted by {base}"
            + ("" if same else f" (baseline) and {cand} (candidate): not counted alike")
            + " (`llmbench formulas`)"
        )
    return lines


#: compared metrics whose value depends on the FLOPs convention
FLOPS_METRICS = frozenset({"tflops_per_gpu", "mfu", "hw_tflops_per_gpu", "hfu"})
