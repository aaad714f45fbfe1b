"""Metrics: runs + specs -> step time, tokens/s, TFLOPs per GPU, MFU, time to train.

Definitions are DESIGN.md's. B = global batch (sequences), s = sequence length,
l = layers, h = hidden size, a = heads, g = query groups, f = FFN size,
V = padded vocabulary, N = parameters. FLOPs are per training step.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .columns import FAULTS, RUN_COLUMNS, SHAPE_KEYS, STEADY_CUT, STEP_LINES
from .errors import UsageError
from .flops import CONVENTIONS, DEFAULT, family, hardware_flops, model_flops, terms, uncounted
from .flops import check as check_convention
from .formats import records
from .metric_specs import COUNTS, METRIC_COLUMNS, TEXT, computed
from .shapes import Shape, ShapeError, build, param_count
from .specs import find_accelerator, find_model
from .specs import models as catalog_models
from .store import Store

# LoRA fine-tuning (run setting lora=true): the base weights are frozen, so a step is
# the forward pass and the input gradients (2 + 2 of the 6 FLOPs per parameter and
# token); the adapters' own FLOPs are negligible (rank 16 on 70B: < 0.1 %).
LORA_FRACTION = 2 / 3
STATS = ("median", "mean", "last", "min", "p90")


FORMULAS = CONVENTIONS  # the named FLOPs counts (``flops.CONVENTIONS``)
DEFAULT_FORMULA = DEFAULT


#: the count a framework prints where its log does not date it further: the Megatron
#: forks and GPT-NeoX never halved the causal attention scores
FRAMEWORK_FORMULAS = {
    "Megatron-DeepSpeed": "megatron",
    "GPT-NeoX": "megatron",
    "MaxText": "maxtext",
    "torchtitan": "torchtitan",
}


def run_formula(config: dict[str, Any], framework: str | None = None) -> str:
    """The formula a run's metrics use without ``--formula``: the convention its
    framework version prints (``flops_formula``: a parser saw the version, or a
    settings file says it), else the one its framework prints (``FRAMEWORK_FORMULAS``),
    else ``DEFAULT_FORMULA`` (what current frameworks print)."""
    name = config.get("flops_formula")
    if name in FORMULAS:
        return name
    return FRAMEWORK_FORMULAS.get(framework or "", DEFAULT_FORMULA)


def formula_origin(run: dict[str, Any], formula: str | None = None) -> tuple[str, str]:
    """(the run's formula, why it is that one)."""
    config = json.loads(run.get("config") or "{}")
    if formula:
        return formula, "--formula"
    name = run_formula(config, run.get("framework"))
    if config.get("flops_formula") in FORMULAS:
        prov = json.loads(run.get("provenance") or "{}")
        return name, prov.get("flops_formula", "settings")
    if name != DEFAULT_FORMULA:
        return name, f"what {run.get('framework')} prints (its log dates it no further)"
    return name, "default: the count current frameworks print (the log shows no other)"


def check_formula(formula: str) -> None:
    """UsageError naming the valid formulas when ``formula`` is not one of them."""
    check_convention(formula)


def _quantiles(srt) -> Callable[[float], float]:
    """Linear interpolation between closest ranks of a sorted array."""

    def q(p: float) -> float:
        k = (len(srt) - 1) * p
        lo, hi = math.floor(k), math.ceil(k)
        a, b = float(srt[lo]), float(srt[hi])
        return _clean(a + (b - a) * (k - lo))

    return q


# the tail binary arithmetic leaves on a decimal: ...99999998, ...00000004
_NOISE = re.compile(r"(?:0{4,}|9{4,})\d{0,2}$")


def _clean(x: float) -> float:
    """``x`` without the binary noise of its last bits: the median of 1.5392 and
    1.5429 is 1.54105, not 1.5410499999999998. A value printed with 16 or 17
    digits (5154997.267404211) has no such tail and is kept as it is."""
    if not math.isfinite(x):
        return x
    digits = repr(x).split("e")[0].replace("-", "").replace(".", "")
    if len(digits.strip("0")) < 16 or not _NOISE.search(digits):
        return x
    return float(f"{x:.15g}")


def _steady(steady, stat: str) -> dict[str, Any]:
    """The statistics of steady-state values (a numpy array, in step order)."""
    import numpy as np

    srt = np.sort(steady)
    q = _quantiles(srt)
    n = len(steady)
    mean = _clean(math.fsum(steady.tolist()) / n)
    value = {
        "median": q(0.5),
        "mean": mean,
        "last": float(steady[-1]),
        "min": float(srt[0]),
        "p90": q(0.9),
    }[stat]
    sd = math.sqrt(float(np.sum((steady - mean) ** 2)) / (n - 1)) if n > 1 else 0.0
    return {
        "value": value,
        "n": n,
        "p10": q(0.1),
        "p90": q(0.9),
        "cv": sd / mean if mean else None,
    }


def _check_stat(stat: str) -> None:
    if stat not in STATS:
        raise UsageError(f"unknown statistic {stat!r} (statistics: {', '.join(STATS)})")


def warmup_of(n: int, warmup: int | None) -> int:
    """Steps left out at the start of ``n`` timed steps: by default 10 % or 2,
    whichever is more; a run that short keeps at least its last step."""
    w = max(2, math.ceil(0.1 * n)) if warmup is None else max(0, warmup)
    return min(w, n - 1)


def run_warmup(cols: dict, warmup: int | None = None) -> int:
    """Steps left out at the start of a run's normal timed rows (``cols``: numpy
    columns in step order): ``warmup_of``, and by default also a batch ramp-up
    (``--rampup-batch-size``): the steady steps are those at the final global batch,
    so a step time is never set beside a batch it was not run with. An explicit
    ``warmup`` is kept as given."""
    import numpy as np

    n = len(cols["step_time_s"])
    w = warmup_of(n, warmup) if n else 0
    batch = cols.get("global_batch_size")
    if warmup is None and batch is not None and n > 1:
        known = ~np.isnan(batch)
        if known.any():
            final = batch[known][-1]
            off = np.flatnonzero(known & (batch != final))
            if len(off):
                w = max(w, min(int(off[-1]) + 1, n - 1))
    return w


def steady_state(
    times: list[float], warmup: int | None = None, stat: str = "median"
) -> dict[str, Any]:
    """The steady-state step time of ``times`` (in step order, seconds).

    Warm-up: the first ``warmup`` steps, by default 10 % of the steps or 2,
    whichever is more; a run that short keeps at least its last step.
    """
    import numpy as np

    _check_stat(stat)
    ts = np.asarray(times, dtype=float)  # None -> NaN
    ts = ts[~np.isnan(ts)]
    n = len(ts)
    if n == 0:
        return {"value": None, "n": 0, "warmup": 0}
    w = warmup_of(n, warmup)
    out = _steady(ts[w:], stat)
    out.update(warmup=w, index=list(range(w, n)))
    return out


# step columns whose steady-state statistics the metrics use
LOGGED = (
    "global_batch_size",
    "tflops_per_gpu_logged",
    "tokens_per_s",
    "mfu_logged",
    "tokens_per_s_per_gpu",
)
STEP_INPUTS = ("run_id", "step", "step_time_s", *LOGGED, *FAULTS)


@dataclass
class StepStats:
    """A run's steps as the metrics use them: the steady-state statistics of the
    step time (``st``: value, n, warmup, p10, p90, cv) and ``logged``, the
    statistic of each ``LOGGED`` column over the same steady-state steps."""

    st: dict[str, Any]
    logged: dict[str, float | None]


def one_step(seconds: float) -> StepStats:
    """The ``StepStats`` of a run timed once (``seconds``): what ``step_stats`` gives for
    a single timed row, without a query."""
    st = {"value": seconds, "n": 1, "p10": seconds, "p90": seconds, "cv": 0.0, "warmup": 0}
    return StepStats(st, dict.fromkeys(LOGGED))


CHUNK_ROWS = 2_000_000  # step rows read at once (runs are never split)


def step_stats(frame, warmup: int | None = None, stat: str = "median") -> dict[str, StepStats]:
    """``StepStats`` per run of ``frame`` (a polars DataFrame or LazyFrame with
    ``STEP_INPUTS``): each run's rows with a step time, in step order, the
    warm-up left out; the statistics from the steady rows' columns as numpy
    arrays, never from rows as Python objects. Columns are read one at a time."""
    import numpy as np
    import polars as pl

    _check_stat(stat)
    lf = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    t = pl.col("step_time_s")
    timed = lf.filter(t.is_not_null() & t.is_not_nan())
    names = lf.collect_schema().names()
    faulty = pl.lit(False)
    for c in FAULTS:
        if c in names:
            faulty = faulty | (pl.col(c).cast(pl.Float64).fill_null(0) > 0)
    faults = dict(timed.filter(faulty).group_by("run_id").len().collect().iter_rows())
    timed = timed.filter(~faulty)
    keys = timed.select("run_id", "step").collect()
    ordered = keys.with_columns(_d=pl.col("step").diff().over("run_id"))["_d"].min()
    if ordered is not None and ordered < 0:  # rows out of step order: sort them
        timed = timed.sort(["run_id", "step"], maintain_order=True)
        keys = timed.select("run_id", "step").collect()
    runs = keys.group_by("run_id", maintain_order=True).len()
    if runs.height != keys["run_id"].n_unique():  # a run's rows not together: sort them
        timed = timed.sort(["run_id", "step"], maintain_order=True)
        keys = timed.select("run_id", "step").collect()
        runs = keys.group_by("run_id", maintain_order=True).len()
    del keys
    ids, counts = runs["run_id"].to_list(), runs["len"].to_list()
    offsets = np.concatenate(([0], np.cumsum(counts)))
    cols = {}
    for c in ("step_time_s", *LOGGED):
        col = timed.select(pl.col(c).cast(pl.Float64)).collect()[c]
        cols[c] = (
            col.to_numpy() if col.null_count() == 0 else col.fill_null(float("nan")).to_numpy()
        )
    out = {
        run_id: _run_stats(
            {c: a[int(offsets[k]) : int(offsets[k + 1])] for c, a in cols.items()}, warmup, stat
        )
        for k, run_id in enumerate(ids)
    }
    return _with_faults(out, faults)


def _with_faults(stats: dict[str, StepStats], faults: dict[str, int]) -> dict[str, StepStats]:
    """``stats`` with each run's count of faulty timed lines (``FAULTS``) in
    ``st["faulty"]``; a run whose every timed line is faulty gets no step time."""
    for run_id, k in faults.items():
        if run_id not in stats:
            stats[run_id] = StepStats({"value": None, "n": 0, "warmup": 0}, dict.fromkeys(LOGGED))
        stats[run_id].st["faulty"] = k
    return stats


def normal_timed(cols: dict) -> tuple[dict, int]:
    """(``cols`` cut to the rows with a step time that are normal steps, the count
    of timed rows left out as faulty): ``cols`` are one run's step columns as numpy
    arrays in step order, ``FAULTS`` among them where the log has them."""
    import numpy as np

    keep = ~np.isnan(cols["step_time_s"])
    bad = np.zeros(len(keep), dtype=bool)
    for c in FAULTS:
        if c in cols:
            bad |= np.nan_to_num(cols[c]) > 0
    bad &= keep
    keep &= ~bad
    return (cols if keep.all() else {c: a[keep] for c, a in cols.items()}), int(bad.sum())


def steady_runs(store, run_ids, columns, warmup: int | None = None, damaged: list | None = None):
    """Yield (run_id, normal timed rows' ``columns`` (numpy, step order), warm-up
    count, faulty count) for the runs ``run_ids`` of a store that have steps: the
    steady state is the rows from the warm-up count on (``steady_state``'s cut)."""
    need = [*STEADY_CUT, *columns]
    for run_id, cols in store.run_columns("steps", run_ids, list(dict.fromkeys(need)), damaged):
        cols, faulty = normal_timed(cols)
        yield run_id, cols, run_warmup(cols, warmup), faulty


def step_stats_in_store(
    store, run_ids, warmup: int | None = None, stat: str = "median", damaged: list | None = None
):
    """``step_stats`` of the runs ``run_ids`` in a store: each run's columns read
    from its parts (``Store.run_columns``: rows in step order, no sort, one part
    in memory at a time; with ``damaged``, runs in unreadable parts are left out
    and the parts listed there)."""
    _check_stat(stat)
    out: dict[str, StepStats] = {}
    faults: dict[str, int] = {}
    for run_id, cols, _, faulty in steady_runs(
        store, run_ids, ["step_time_s", *LOGGED], warmup, damaged
    ):
        if faulty:
            faults[run_id] = faulty
        if len(cols["step_time_s"]):
            out[run_id] = _run_stats(cols, warmup, stat)
    return _with_faults(out, faults)


def _run_stats(cols: dict, warmup: int | None, stat: str) -> StepStats:
    """One run's ``StepStats`` from its timed rows' columns (numpy, step order, NaN
    where a value is missing)."""
    import numpy as np

    w = run_warmup(cols, warmup)
    st = _steady(cols["step_time_s"][w:], stat)
    st["warmup"] = w
    logged = {}
    for c in LOGGED:
        vals = cols[c][w:]
        vals = vals[~np.isnan(vals)]
        logged[c] = (
            _steady(vals, "median" if c == "global_batch_size" else stat)["value"]
            if len(vals)
            else None
        )
    return StepStats(st, logged)


def rows_frame(steps: list[dict[str, Any]], run_id: str = ""):
    """A polars frame of ``STEP_INPUTS`` from step dicts (one run)."""
    import polars as pl

    return pl.DataFrame(
        {
            "run_id": [run_id] * len(steps),
            "step": pl.Series([r.get("step") for r in steps], dtype=pl.Int64, strict=False),
            **{
                c: pl.Series([_num(r.get(c)) for r in steps], dtype=pl.Float64)
                for c in ("step_time_s", *LOGGED, *FAULTS)
            },
        }
    )


def pandas_steps_frame(steps):
    """A polars frame of ``STEP_INPUTS`` from a pandas steps DataFrame (no pyarrow)."""
    import polars as pl

    return pl.DataFrame(
        {
            "run_id": pl.Series(list(steps["run_id"]), dtype=pl.String),
            "step": pl.Series(steps["step"].to_numpy(), dtype=pl.Float64).cast(
                pl.Int64, strict=False
            ),
            **{
                c: pl.Series(
                    steps[c].to_numpy(dtype=float, na_value=float("nan")), dtype=pl.Float64
                ).fill_nan(None)
                for c in ("step_time_s", *LOGGED, *FAULTS)
                if c in steps or c not in FAULTS
            },
        }
    )


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def shape_values(
    run: dict[str, Any], config: dict[str, Any], models: dict | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the run's shape values, each one's origin): the run's own values first, then
    the model catalog's."""
    origin: dict[str, str] = {}
    values: dict[str, Any] = {}
    for k in SHAPE_KEYS:
        v = run.get(k, config.get(k))
        if v is not None and (_num(v) is not None or isinstance(v, bool | str | list)):
            values[k] = v
            origin[k] = "run"
    found = find_model(run.get("model"), config.get("model_family"), models)
    if found:
        key, spec = found
        for k in SHAPE_KEYS:
            if k not in values and k in spec:
                values[k] = spec[k]
                origin[k] = f"catalog {key}"
    return values, origin


def resolve_shape(
    run: dict[str, Any], config: dict[str, Any], models: dict | None
) -> tuple[Shape, dict[str, str], dict[str, Any]]:
    """The run's model shape, each value's origin, and the values (``shape_values``).
    ShapeError (naming the field and its origin) for a shape that cannot hold."""
    values, origin = shape_values(run, config, models)
    shaped = {k: v for k, v in values.items() if k != "params"}
    if origin.get("params") == "run" or _catalog_shape(origin):
        shaped["params"] = values.get("params")
    sh = build(shaped, {k: _where(run, k, o) for k, o in origin.items()})
    if sh.f is None and sh.h and not sh.hybrid:
        sh.assumed.append("ffn_hidden_size = 4 x hidden_size (assumed: not in log or catalog)")
    return sh, origin, values


def _where(run: dict[str, Any], key: str, origin: str) -> str:
    """Where a shape value came from, for an error: the run's provenance or the catalog."""
    if origin != "run":
        return origin
    return json.loads(run.get("provenance") or "{}").get(key, "the run")


def _catalog_shape(origin: dict[str, str]) -> bool:
    """The catalog's exact parameter count holds only for the catalog's own shape."""
    return origin.get("params", "").startswith("catalog") and all(
        origin.get(k, "catalog").startswith("catalog")
        for k in ("num_layers", "hidden_size", "vocab_size")
    )


def _int(v: Any) -> int | None:
    f = _num(v)
    return int(f) if f is not None else None


@dataclass(frozen=True)
class MetricOptions:
    """How a report's metrics are taken, one value from the command line or a notebook
    down: ``formula`` (a FLOPs convention; None: each run's own), ``warmup`` (steps left
    out; None: 10 % or 2), ``stat`` (the steady-state statistic), ``tokens`` (also the
    time to train on them), ``models`` (model shapes beyond the catalog, a settings
    file's ``[models.NAME]``). Checked when made: UsageError names a bad one."""

    formula: str | None = None
    warmup: int | None = None
    stat: str = "median"
    tokens: float | None = None
    models: dict | None = None

    def __post_init__(self) -> None:
        _check_stat(self.stat)
        if self.formula is not None:
            check_formula(self.formula)
        if self.warmup is not None and self.warmup < 0:
            raise UsageError(f"--warmup {self.warmup}: the steps left out are 0 or more")


def options_of(options: MetricOptions | None = None, **given: Any) -> MetricOptions:
    """``options``, or one made of the keyword arguments a function was given."""
    if options is not None:
        return options
    return MetricOptions(**{k: v for k, v in given.items() if v is not None})


class RunHook(Protocol):
    """An extension's part of a run's metrics (``mlperf.metrics.HOOK``): it reads the
    ``events`` keys of runs read by ``parsers`` and returns the values to set."""

    events: tuple[str, ...]
    parsers: tuple[str, ...]

    def __call__(
        self, run: dict[str, Any], config: dict[str, Any], events: list[dict], out: dict[str, Any]
    ) -> dict[str, Any]: ...


#: the run's own columns a report row starts with (then ``metric_specs.METRIC_COLUMNS``)
IDENTITY = (
    *("run_id", "source", "parser", "framework", "model", "num_gpus", "global_batch_size"),
    *("seq_len", "dtype", "accelerator", "tp", "pp", "dp", "micro_batch_size", "recompute"),
    *("zero_stage", "status", "n_steps"),
)
#: the report's columns, in order
REPORT_ORDER = (*IDENTITY, *METRIC_COLUMNS)
#: columns a report row has only when asked for (``--tokens``)
ON_REQUEST = frozenset({"tokens", "iterations_for_tokens", "time_for_tokens_s"})


@dataclass
class RunInputs:
    """What a run's metrics are computed from, resolved: its stored ``run`` row and
    ``config``, its model ``shape``, step-time statistics ``st`` and ``logged`` figures,
    the global batch ``batch`` (sequences) and ``gpus`` it ran with, the FLOPs
    ``formula``, and ``notes`` (what to set for the metrics left empty)."""

    run: dict[str, Any]
    config: dict[str, Any]
    shape: Shape
    st: dict[str, Any]
    logged: dict[str, float | None]
    batch: float | None
    gpus: float | None
    formula: str
    notes: list[str]


def resolve(
    run: dict[str, Any], steps: Any, options: MetricOptions, out: dict[str, Any]
) -> RunInputs:
    """The ``RunInputs`` of a run (``steps``: its ``StepStats``, its step rows, or None);
    the inputs it resolves itself (a batch from the step lines, GPUs = tp x pp x dp, the
    sequence length of its shape) are written into the report row ``out``."""
    config = json.loads(run.get("config") or "{}")
    sh, notes = run_shape(run, config, options.models)
    out["seq_len"] = sh.s
    if steps is not None and not isinstance(steps, StepStats):  # None: no steps
        rows = rows_frame(steps, "r") if steps else None
        steps = step_stats(rows, options.warmup, options.stat).get("r") if steps else None
    st = steps.st if steps else {"value": None, "n": 0, "warmup": 0}
    logged = steps.logged if steps else dict.fromkeys(LOGGED)
    summary = _num(config.get("summary_step_time_s"))
    if st["value"] is None and summary is not None:  # no step timed: the log's own mean
        st = {"value": summary, "n": 0, "warmup": 0}
    B, n, more = batch_and_gpus(run, logged, out)
    formula = options.formula or run_formula(config, run.get("framework"))
    notes += more + _missing_inputs(st["value"], B, sh.s, n) + _missing_shape(sh)
    notes += uncounted(formula, sh)[0] if sh.dense_ok else []
    return RunInputs(run, config, sh, st, logged, B, n, formula, notes)


def run_metrics(
    run: dict[str, Any],
    steps: list[dict[str, Any]] | StepStats | None,
    events: list[dict[str, Any]],
    options: MetricOptions | None = None,
    *,
    hooks: Sequence[RunHook] = (),
    **given: Any,
) -> dict[str, Any]:
    """Every metric for one run (a dict in ``REPORT_ORDER``; None where an input is
    missing). ``steps``: the run's ``StepStats`` (``step_stats``), or its step rows
    (None: none); ``events``: the run's events that ``hooks`` read; each hook's values
    are written over the row's last (e.g. ``mlperf.metrics.HOOK``). ``options`` (or
    its fields as keywords: ``formula=``, ``tokens=``, ...): ``MetricOptions``."""
    options = options_of(options, **given)
    out: dict[str, Any] = {k: run.get(k) for k in IDENTITY}
    x = resolve(run, steps, options, out)
    t, stat = x.st["value"], options.stat
    out.update(step_time_stats(x.st, stat if x.st["n"] or t is None else "summary"))
    out.update(_flops_and_state(x, out))
    peak, why = peak_of(run.get("accelerator"), run.get("dtype"))
    x.notes += why
    values = {**out, "global_batch_size": x.batch, "num_gpus": x.gpus, "seq_len": x.shape.s}
    values.update(peak_tflops=peak, tokens=options.tokens, step_time_s=t)
    out.update(peak_tflops=peak, tokens=options.tokens, **computed(values))
    out.update(logged_values(x.logged, x.gpus))
    out.update(
        reconcile(x.logged["tflops_per_gpu_logged"], out["tflops_per_gpu"], x.shape, x.batch, t,
                  x.gpus, run, x.formula)
    )  # fmt: skip
    out.update(time_to_train_min=None, round=x.config.get("round"))
    out["missing"] = "; ".join(dict.fromkeys(x.notes + x.shape.assumed)) or None
    for hook in hooks:  # what an extension knows of the run (MLPerf: time to train)
        out.update(hook(run, x.config, events, out))
    out["flags"] = ",".join(sanity_flags(out, run)) or None
    keep = (k for k in REPORT_ORDER if k not in ON_REQUEST or options.tokens)
    return {k: out.get(k) for k in keep}


def _flops_and_state(x: RunInputs, out: dict[str, Any]) -> dict[str, Any]:
    """The parameter count, the FLOPs of a step (model and executed), the model state
    and communication per GPU of a run's inputs."""
    recompute, lora = x.run.get("recompute"), bool(x.config.get("lora"))
    flops, hw = step_flops(x.formula, x.shape, x.batch, recompute, lora)
    if hw is None and x.shape.dense_ok and recompute is None:
        x.notes.append("set recompute=none|selective|full for hw_tflops_per_gpu/hfu")
    params = param_count(x.shape)
    t, n = x.st["value"], x.gpus
    return {
        "params": params,
        "formula": x.formula,
        "model_flops_per_step": flops,
        # executed FLOPs are no expression of the row's columns: computed here
        "hw_tflops_per_gpu": per_gpu_tflops(hw, t, n),
        "model_state_bytes_per_gpu": _model_state_bytes(params, x.run, x.config),
        **comm_bytes_per_gpu(x.shape, params, x.batch, x.run),
    }


def run_shape(
    run: dict[str, Any], config: dict[str, Any], models: dict | None
) -> tuple[Shape, list[str]]:
    """(the run's shape, notes): a shape that cannot hold leaves the FLOPs empty and
    says why (the field and where it came from), never a number from it."""
    try:
        return resolve_shape(run, config, models)[0], []
    except ShapeError as e:
        seq = shape_values(run, config, models)[0].get("seq_len")
        return Shape(s=_int(seq)), [e.message]


def sanity_flags(out: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """The ``columns.FLAGS`` codes a report row earns: impossible utilisation, a
    logged figure no formula comes near, an assumed precision, a non-positive
    input. The numbers stay; the flags say they cannot be trusted."""
    flags = []
    for key, code in (("mfu", "mfu>1"), ("hfu", "hfu>1")):
        if (out.get(key) or 0) > 1:
            flags.append(code)
    logged, computed = out.get("tflops_per_gpu_logged"), out.get("tflops_per_gpu")
    if logged and computed and not 0.5 <= logged / computed <= 2:
        flags.append("logged_off")
    origin = json.loads(run.get("provenance") or "{}").get("dtype", "")
    if origin.startswith("assumed") and out.get("mfu") is not None:
        flags.append("dtype_assumed")
    if out.get("n_faulty") and not out.get("n_steady") and out.get("stat") != "summary":
        flags.append("all_skipped")
    given = (_num(run.get(k)) for k in ("global_batch_size", "num_gpus"))
    if any(v is not None and v <= 0 for v in given):
        flags.append("nonpositive")
    batch, dp = _num(run.get("global_batch_size")), _num(run.get("dp"))
    if batch and dp and 0 < batch < dp:
        flags.append("batch<dp")
    return flags


def step_time_stats(st: dict[str, Any], stat: str) -> dict[str, Any]:
    """The report's step-time columns (seconds) from a steady-state result."""
    return {
        "step_time_s": st["value"],
        "stat": stat,
        "warmup_steps": st.get("warmup"),
        "n_steady": st["n"],
        "n_faulty": st.get("faulty", 0),
        "step_time_p10_s": st.get("p10"),
        "step_time_p90_s": st.get("p90"),
        "step_time_cv": st.get("cv"),
    }


# the origin of a value the store holds no provenance for (a store written by
# another tool)
NOT_RECORDED = "not recorded (the store holds no origin for it)"


def batch_and_gpus(
    run: dict[str, Any], logged: dict[str, float | None], out: dict[str, Any]
) -> tuple[float | None, float | None, list[str]]:
    """(global batch, GPUs, notes): the run's, else the logged batch and tp x pp x dp
    (written into ``out`` where they come from there). A batch taken from the step
    lines is their steady-state median: a ramp-up (``--rampup-batch-size``) prints a
    smaller batch on the first steps than the steady ones are timed with."""
    notes = []
    B = _num(run.get("global_batch_size"))
    from_steps = json.loads(run.get("provenance") or "{}").get("global_batch_size") == STEP_LINES
    if B is None or (from_steps and logged["global_batch_size"] is not None):
        B = logged["global_batch_size"]
        out["global_batch_size"] = B
    n = _num(run.get("num_gpus"))
    if n is None and None not in (_num(run.get("tp")), _num(run.get("pp")), _num(run.get("dp"))):
        n = _num(run["tp"]) * _num(run["pp"]) * _num(run["dp"])
        out["num_gpus"] = n
        notes.append("num_gpus = tp x pp x dp")
    # 0 or less cannot be divided by (flagged by sanity_flags)
    return (B if B is None or B > 0 else None), (n if n is None or n > 0 else None), notes


def _missing_inputs(t, B, s, n) -> list[str]:
    need = (("no step times", t), ("set global_batch_size", B), ("set seq_len", s))
    return [note for note, v in (*need, ("set num_gpus", n)) if v is None]


def _missing_shape(sh: Shape) -> list[str]:
    if sh.dense_ok:
        return []
    need = [
        k
        for k, v in (("num_layers", sh.l), ("hidden_size", sh.h), ("vocab_size", sh.V))
        if v is None
    ]
    return ["set model (a catalog name) or " + ", ".join(need)] if need else []


def step_flops(formula: str, sh: Shape, B, recompute, lora: bool = False):
    """(model FLOPs, hardware FLOPs) of one step; LoRA (frozen base weights: forward
    and input gradients, no weight gradients) counts ``LORA_FRACTION`` of both."""
    flops = model_flops(formula, sh, B or 0, recompute)
    hw = hardware_flops(sh, B or 0, recompute, family(formula))
    if lora:
        flops, hw = (f * LORA_FRACTION if f else f for f in (flops, hw))
    return flops, hw


def per_gpu_tflops(flops: float | None, t: float | None, n: float | None) -> float | None:
    """TFLOP/s per GPU of ``flops`` per step over ``t`` seconds on ``n`` GPUs."""
    return flops / t / n / 1e12 if flops and t and n else None


def peak_of(accelerator: Any, dtype: Any) -> tuple[float | None, list[str]]:
    """(the catalog's dense peak TFLOP/s for ``dtype``, why there is none)."""
    acc = find_accelerator(accelerator)
    peak = acc.peak(dtype) if acc else None
    if accelerator is None:
        return peak, ["set accelerator for mfu"]
    if acc is None:
        return peak, [f"accelerator {accelerator!r} not in the catalog"]
    if dtype is None:
        return peak, ["set dtype for mfu"]
    if peak is None:
        return peak, [f"{acc.name} has no {dtype} peak in the catalog"]
    return peak, []


def logged_values(logged: dict[str, float | None], n) -> dict[str, Any]:
    """What the log printed itself: TFLOPs per GPU, tokens/s (per-GPU figures, as
    torchtitan and MaxText print them, times the GPUs), MFU."""
    tps = logged["tokens_per_s"]
    if tps is None and n:
        per_gpu = logged["tokens_per_s_per_gpu"]
        tps = per_gpu * n if per_gpu is not None else None
    return {
        "tflops_per_gpu_logged": logged["tflops_per_gpu_logged"],
        "tokens_per_s_logged": tps,
        "mfu_logged": logged["mfu_logged"],
    }


def reconcile(
    logged, computed, sh: Shape, B, t, n, run: dict[str, Any], formula: str = DEFAULT
) -> dict[str, Any]:
    """Which convention gives the logged TFLOPs (within 0.5 %; the report's own
    ``formula`` first), and whether the logged figure disagrees with the computed one
    by more than 2 % when no convention reproduces it."""
    out = {"tflops_logged_formula": None, "logged_disagrees": None}
    if not (logged and t and n):
        return out
    kin = formula.split("-")[0]  # the same framework's other conventions first
    for name in dict.fromkeys([formula, *(f for f in FORMULAS if f.startswith(kin)), *FORMULAS]):
        f = model_flops(name, sh, B or 0, run.get("recompute"))
        if f and abs(f / t / n / 1e12 / logged - 1) <= 0.005:
            out["tflops_logged_formula"] = name
            break
    if computed:
        named = out["tflops_logged_formula"] is not None
        out["logged_disagrees"] = not named and abs(logged / computed - 1) > 0.02
    return out


def _extra(step: dict[str, Any], key: str) -> float | None:
    """A value a parser kept in the step's ``extra`` JSON."""
    raw = step.get("extra")
    if not raw or key not in raw:
        return None
    try:
        return _num(json.loads(raw).get(key))
    except (ValueError, AttributeError):
        return None


def _model_state_bytes(
    params: float | None, run: dict[str, Any], config: dict[str, Any] | None = None
) -> float | None:
    """Weights, gradients and Adam states per GPU (16 bytes/param mixed precision; LoRA:
    the frozen 16-bit weights, 2 bytes/param, the adapters not counted)."""
    if params is None:
        return None
    tp, pp = _num(run.get("tp")) or 1, _num(run.get("pp")) or 1
    dp = _num(run.get("dp"))
    z = _num(run.get("zero_stage")) or 0
    p = params / (tp * pp)
    if (config or {}).get("lora"):
        return 2 * p
    if z == 0:
        return 16 * p
    if dp is None:
        return None
    return {1: (4 + 12 / dp) * p, 2: (2 + 14 / dp) * p, 3: 16 * p / dp}.get(int(z))


def comm_bytes_per_gpu(
    sh: Shape, params: float | None, B: float | None, run: dict[str, Any]
) -> dict[str, float | None]:
    """Bytes each GPU sends per step for DP, TP and PP (ring collectives).

    DP: the gradient all-reduce, 2(d-1)/d x N/(t p) x gradient bytes.
    TP: 4 all-reduces per layer (2 forward, 2 backward) of b s h activations for
    each of the B/d sequences a GPU sees, 2(t-1)/t x 4 x (l/p) x (B/d) s h x act bytes.
    PP: activations forward and their gradients backward at each stage boundary,
    2 x (B/d) s h x act bytes (0 with one stage). Gradient and activation bytes
    are 4 for fp32/tf32 runs and 2 otherwise (fp8 runs communicate in bf16).
    """
    tp, pp, dp = (_num(run.get(k)) for k in ("tp", "pp", "dp"))
    n = _num(run.get("num_gpus"))
    if dp is None and n and tp and pp:
        dp = n / (tp * pp)
    width = 4 if str(run.get("dtype") or "").lower() in ("fp32", "tf32", "float32") else 2
    out: dict[str, float | None] = dict.fromkeys(
        ("comm_dp_bytes_per_gpu", "comm_tp_bytes_per_gpu", "comm_pp_bytes_per_gpu")
    )
    if None in (tp, pp, dp):
        return out
    if params is not None:
        out["comm_dp_bytes_per_gpu"] = 2 * (dp - 1) / dp * params / (tp * pp) * width
    if B and sh.s and sh.h and sh.l:
        act = B / dp * sh.s * sh.h * width  # one activation tensor for all of a GPU's sequences
        out["comm_tp_bytes_per_gpu"] = 2 * (tp - 1) / tp * 4 * (sh.l / pp) * act
        out["comm_pp_bytes_per_gpu"] = 2 * act if pp > 1 else 0.0
    return out


def summarize(
    logs: Any,
    formula: str | None = None,
    *,
    options: MetricOptions | None = None,
    hooks: Sequence[RunHook] = (),
    **given: Any,
):
    """One row of metrics per run, as a DataFrame.

    ``logs`` is what ``read_logs`` returns, a ``Store``, or a path to a store;
    ``options`` (or its fields: ``formula``, ``warmup=``, ``stat=``, ``tokens=``,
    ``models=``): ``MetricOptions``; ``hooks`` add what extensions know
    (``llmbench.summarize`` passes MLPerf's).
    """
    import pandas as pd

    options = options_of(options, formula=formula, **given)
    if isinstance(logs, str):
        with Store(logs, create=False) as s:
            return summarize(s, options=options, hooks=hooks)
    runs, stats, ev = _measured(logs, options, hooks)
    events_by = {k: records(g) for k, g in ev.groupby("run_id")} if len(ev) else {}
    rows = [
        run_metrics(r, stats.get(r["run_id"]), events_by.get(r["run_id"], []), options, hooks=hooks)
        for r in records(runs)
    ]
    return _typed(pd.DataFrame(rows, columns=None if rows else [*IDENTITY, *METRIC_COLUMNS]))


def _measured(logs: Any, options: MetricOptions, hooks: Sequence[RunHook]) -> tuple:
    """(runs, step statistics by run, the events ``hooks`` read) of a Store or a Logs."""
    w, stat = options.warmup, options.stat
    if isinstance(logs, Store):
        runs = logs.runs()
        ids, keys = hooked_events(runs, hooks)
        return (
            runs,
            step_stats_in_store(logs, list(runs["run_id"]), w, stat),
            logs.read("events", ids, keys=keys),
        )
    runs, steps, ev = logs.runs, logs.steps, logs.events
    if getattr(logs, "stats", None) is not None:  # a store selection: done in the parts
        stats = logs.stats
    else:
        stats = step_stats(pandas_steps_frame(steps), w, stat) if len(steps) else {}
    ids, keys = hooked_events(runs, hooks)
    if len(ev):
        ev = ev[ev["run_id"].isin(ids) & ev["key"].isin(keys)]
    return runs, stats, ev


#: report columns that hold text (the run's text columns and the text metrics); the
#: others are numbers
TEXT_COLUMNS = frozenset(c for c in IDENTITY if RUN_COLUMNS[c].startswith("TEXT")) | TEXT


def _typed(df):
    """The metrics table with its numbers typed: counts as integers (``64``, not
    ``64.0``), reals without binary noise (``136.9573``, not ``136.95729999999998``)."""
    import pandas as pd

    for c in df.columns:
        if c in TEXT_COLUMNS:
            continue
        df[c] = pd.to_numeric(df[c], errors="coerce")
        if c in COUNT_COLUMNS and _integral(df[c]):
            df[c] = df[c].astype("Int64")
        elif df[c].dtype == "float64":
            df[c] = [_clean(v) for v in df[c]]
    return df


#: report columns that count things: whole numbers, shown without a decimal point
COUNT_COLUMNS = frozenset(c for c, t in RUN_COLUMNS.items() if t == "INTEGER") | COUNTS


def _integral(col) -> bool:
    """Whether every value of a numeric column is a whole number below 2**63."""
    vals = col.dropna()
    return bool(((vals % 1 == 0) & (vals.abs() < 2**63)).all())


def model_table(models: dict | None = None) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows): every catalogued model's shape, its parameter count (the
    published one where the catalog has it, else computed from the shape) and its
    active count (the experts one token reaches), aliases and source."""
    keys = [k for k in SHAPE_KEYS if k != "params"]
    rows = []
    for name, spec in sorted(catalog_models(models).items()):
        sh, _, values = resolve_shape({"model": name}, {}, models)
        published = spec.get("published") or {}
        rows.append(
            [name, spec.get("family"), *(values.get(k) for k in keys)]
            + [_whole(param_count(sh)), _whole(param_count(sh, active=True))]
            + ["; ".join(spec.get("aliases", ())), published.get("source")]
        )
    return ["model", "family", *keys, "params", "active_params", "aliases", "source"], rows


def _whole(count: float | None) -> int | float | None:
    """A parameter count as the integer it is (``671026404352``, not ``671026404352.0``)."""
    return int(count) if count is not None and float(count).is_integer() else count


def hooked_events(runs, hooks: Sequence[RunHook]) -> tuple[list[str], list[str]]:
    """(the runs whose events ``hooks`` read, the event keys they read)."""
    parsers = {p for h in hooks for p in h.parsers}
    keys = sorted({k for h in hooks for k in h.events})
    if not keys or not len(runs):
        return [], keys
    return list(runs.loc[runs["parser"].isin(parsers), "run_id"]), keys


#: the shape inputs every count needs: listed by --explain even when missing
CORE_SHAPE = ("num_layers", "hidden_size", "num_attention_heads", "vocab_size", "seq_len")


def flops_terms(name: str, sh: Shape, run: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(``flops.<term>``, FLOPs of one sequence, its share and meaning) for every term the
    convention's count of the run's shape is made of; the parts it counts otherwise."""
    out: list[tuple[str, Any, str]] = []
    found = terms(name, sh, 1, run.get("recompute")) if sh.dense_ok else None
    if found:
        total = sum(found.values())
        for term, value in found.items():
            share = f"{100 * value / total:.1f} %"
            out.append((f"flops.{term}", float(f"{value:.6g}"), f"{share} of {name}'s count "
                        f"per sequence ({TERM_TEXT.get(term, term)})"))  # fmt: skip
    for note in uncounted(name, sh)[0] if sh.dense_ok else []:
        out.append(("convention", None, note))
    return out


#: what each FLOPs term counts (``flops.terms``), forward and backward
TERM_TEXT = {
    "attention_linear": "q, k, v and output projections",
    "attention_scores": "QK^T and AV over the keys each query sees",
    "mlp": "dense MLP layers",
    "moe": "MoE layers: routed and shared experts",
    "mamba": "Mamba-2 layers",
    "mtp": "multi-token prediction projections",
    "logits": "the output projection",
    "6N": "6 x the parameters",
    "8N": "8 x the non-embedding parameters",
    "transformer": "the transformer layers",
}


def explain(
    run: dict[str, Any], models: dict | None = None, formula: str | None = None
) -> list[tuple[str, Any, str]]:
    """(input, value, where it came from) for every input of a run's metrics, the
    FLOPs formula (``formula``: the one asked for) first."""
    config = json.loads(run.get("config") or "{}")
    prov = json.loads(run.get("provenance") or "{}")
    values, origin = shape_values(run, config, models)
    sh, problem = run_shape(run, config, models)
    name, why = formula_origin(run, formula)
    out: list[tuple[str, Any, str]] = [("formula", name, why)]
    out += [("shape", None, p) for p in problem]
    for k in (
        "model",
        "num_gpus",
        "global_batch_size",
        "dtype",
        "accelerator",
        "recompute",
        "tp",
        "pp",
        "dp",
        "zero_stage",
    ):
        v = run.get(k)
        out.append((k, v, prov.get(k, NOT_RECORDED) if v is not None else "missing"))
    for k in SHAPE_KEYS:
        src = origin.get(k)
        if src == "run":
            src = prov.get(k, NOT_RECORDED)
        v = values.get(k)
        if v is not None or k in CORE_SHAPE:
            out.append((k, v, src or "missing"))
    out += flops_terms(name, sh, run)
    acc = find_accelerator(run.get("accelerator"))
    if acc and run.get("dtype") and acc.peak(run.get("dtype")) is not None:
        out.append(
            (
                "peak_tflops",
                acc.peak(run.get("dtype")),
                f"catalog {acc.key} {run.get('dtype')} dense ({acc.source})",
            )
        )
    for a in sh.assumed:
        out.append(("assumption", None, a))
    return out
