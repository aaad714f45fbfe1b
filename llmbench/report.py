"""Report: choose runs from the store, summarize them, and what-if estimates."""

from __future__ import annotations

import fnmatch
import json
import os
import warnings
from typing import Any

from . import metrics, plots
from .columns import LABELS, RUN_SETTING_COLUMNS, STEADY_CUT, natural_key
from .errors import NoMatchError, UsageError
from .formats import atomic_output, cell, records, relative, short_paths, write
from .logs import Logs
from .metrics import (
    MetricOptions,
    hooked_events,
    one_step,
    options_of,
    run_metrics,
    step_stats_in_store,
)
from .mlperf.metrics import HOOK as MLPERF
from .plots import DataWarning
from .settings import Settings, check_setting, read_model_config
from .specs import find_accelerator, find_model
from .store import Store


def select_runs(runs, select: tuple[str, ...] | list[str]):
    """Runs whose run_id starts with, or whose source matches the glob of, any selector."""
    if not select:
        return runs
    keep = []
    for run_id, source in zip(runs["run_id"], runs["source"], strict=True):
        rel = os.path.relpath(source) if not source.startswith("<") else source
        keep.append(
            any(
                run_id.startswith(s)
                or fnmatch.fnmatch(source, s)
                or fnmatch.fnmatch(rel, s)
                or fnmatch.fnmatch(source, f"*/{s}")
                for s in select
            )
        )
    return runs[keep]


def export(db: str | None, table: str, fmt: str = "csv", output: str | None = None) -> None:
    """Write the store's ``table`` whole as ``fmt`` (csv, json, parquet) to ``output``
    (written to a temporary name, renamed when complete) or to stdout (csv, json),
    a chunk of rows at a time: memory stays bounded by the chunk, not the table."""
    import sys

    if fmt not in ("csv", "json", "parquet"):
        raise UsageError(f"unknown export format {fmt!r} (csv, json, parquet)")
    if fmt == "parquet" and not output:
        raise UsageError("parquet export needs an output file", remedy="add -o FILE")
    with Store(db, create=False) as store:
        if not output:
            write(store.chunks(table), fmt, sys.stdout)
            return
        with atomic_output(output, prefix=".llmbench-export-") as tmp:
            if fmt == "parquet":
                store.export_parquet(table, tmp)
            else:
                with open(tmp, "w", encoding="utf-8", newline="") as f:
                    write(store.chunks(table), fmt, f)


# the step columns a figure of steps reads (the rest stay in the parts)
FIGURE_COLUMNS = {
    "steps": ["step", *STEADY_CUT],
    "loss": ["step", "loss", "consumed_tokens", "consumed_samples"],
}


def load_selection(
    db: str | None,
    select=(),
    *,
    steps: bool | list[str] = True,
    warmup: int | None = None,
    stat: str = "median",
    steps_limit: int | None = None,
    overrides: dict[str, Any] | list[tuple[str, dict[str, Any]]] | None = None,
    options: MetricOptions | None = None,
) -> Logs:
    """A ``Logs`` of the selected runs (``.runs``), the events ``HOOKS`` read (``.events``),
    the steady-state statistics of their steps (``.stats``, computed from the
    columns they need, in the parts) and, with ``steps``, every step (``.steps``;
    only those columns when ``steps`` lists them; of the first ``steps_limit`` runs
    that have steps, the others left out with a DataWarning), like ``read_logs``
    gives them. ``overrides`` (``report --set``: values, or (origin, values) layers,
    lowest first, such as ``--model-config``'s) replace the runs' inputs for this
    reading only; the store is not changed. ``options``: the ``warmup`` and ``stat``
    of the statistics, where given, over those keywords."""
    if options is not None:
        warmup, stat = options.warmup, options.stat
    with Store(db, create=False) as store:
        runs = select_runs(store.runs(), select)
        if select and not len(runs):
            raise NoMatchError(f"no run matches {' '.join(select)}", remedy="see `llmbench runs`")
        layers = [("report --set", overrides)] if isinstance(overrides, dict) else overrides
        for origin, values in layers or ():
            runs = override(runs, values, origin)
        ids = list(runs["run_id"])
        damaged: list = []  # parts that cannot be read: their runs reported without rows
        stats = step_stats_in_store(store, ids, warmup, stat, damaged)
        event_runs, event_keys = hooked_events(runs, HOOKS)
        columns = steps if isinstance(steps, list) else None
        limit = steps and steps_limit is not None
        step_ids = _first_with_steps(runs, steps_limit) if limit else ids
        logs = Logs(
            runs=runs,
            steps=store.read("steps", step_ids, columns, damaged=damaged) if steps else None,
            events=store.read("events", event_runs, keys=event_keys, damaged=damaged),
            stats=stats,
        )
    _note_damage(damaged)
    return logs


def _note_damage(damaged: list) -> None:
    """A DataWarning naming the runs whose rows could not be read."""
    for d in {d.part: d for d in damaged}.values():
        warnings.warn(
            f"{d.path}: {d.problem}: run(s) {', '.join(d.runs[:5])}"
            + (f" and {len(d.runs) - 5} more" if len(d.runs) > 5 else "")
            + " reported without its rows; run `llmbench check --repair`",
            DataWarning,
            stacklevel=3,
        )


def override(runs, values: dict[str, Any], origin: str = "report --set"):
    """``runs`` with ``values`` in place of their inputs (a run column, else a key of
    ``config``), each noted in ``provenance`` as coming from ``origin``."""
    runs = runs.copy()
    configs = [json.loads(c or "{}") for c in runs["config"]]
    provs = [json.loads(p or "{}") for p in runs["provenance"]]
    for key, value in values.items():
        if key in RUN_SETTING_COLUMNS:
            runs[key] = [value] * len(runs)
        else:
            for config in configs:
                config[key] = value
        for prov in provs:
            prov[key] = origin
    runs["config"] = [json.dumps(c, sort_keys=True) for c in configs]
    runs["provenance"] = [json.dumps(p, sort_keys=True) for p in provs]
    return runs


def _first_with_steps(runs, limit: int) -> list[str]:
    """The run ids of the first ``limit`` runs with steps; a DataWarning names how
    many more there are."""
    ids = [i for i, n in zip(runs["run_id"], runs["n_steps"], strict=True) if n and n > 0]
    if len(ids) > limit:
        warnings.warn(
            f"{len(ids) - limit} runs beyond the first {limit} left out of the figure: "
            "select the runs to draw (RUN_ID or GLOB arguments)",
            DataWarning,
            stacklevel=3,
        )
    return ids[:limit]


def arrange(table, columns: list[str] | None = None, *, sort_by=None, group_by=None):
    """A metrics table grouped (by ``group_by``, then GPUs), sorted (by ``sort_by``;
    ``-COL`` descending) and cut to ``columns``; UsageError names a column the table
    lacks, with the closest one."""
    if group_by:
        group_by = _named(group_by)
        _known(table, [group_by], "--group-by")
        table = table.sort_values([group_by, "num_gpus"], kind="stable")
    if sort_by:
        name = _named(sort_by.removeprefix("-"))
        _known(table, [name], "--sort")
        table = table.sort_values(name, kind="stable", ascending=not sort_by.startswith("-"))
    if not group_by and not sort_by:
        table = natural_order(table)
    if columns is not None:
        columns = [_named(c) for c in columns]
        _known(table, columns, "--columns")
        table = table[columns]
    return table


def natural_order(table):
    """``table``'s rows in ``columns.natural_key`` order (stable)."""
    rows = records(table)
    return table.iloc[sorted(range(len(rows)), key=lambda i: natural_key(rows[i]))]


def _named(name: str) -> str:
    """A column's name from its table header (``LABELS``), in any case."""
    by_label = {v.lower(): k for k, v in LABELS.items()}
    return by_label.get(name.lower(), name)


def for_screen(table):
    """A metrics table as a terminal or markdown table shows it: sources without
    the folders they share, byte counts in GiB."""
    table = table.copy()
    if "source" in table.columns:
        table["source"] = short_paths([str(s) for s in table["source"]])
    for col in [c for c in table.columns if "_bytes" in c]:
        table[col] = (table[col] / 2**30).round(2)
        table = table.rename(columns={col: col.replace("_bytes", "_GiB")})
    return table


def _known(table, names: list[str], option: str) -> None:
    """UsageError for the first of ``names`` that is no column of ``table``."""
    import difflib

    for name in names:
        if name not in table.columns:
            close = difflib.get_close_matches(name, list(table.columns), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "see `llmbench report --format json`"
            raise UsageError(f"{option}: no column {name!r}", remedy=hint)


# what extensions add to a run's metrics (``metrics.RunHook``)
HOOKS = (MLPERF,)


def summarize(logs: Any, formula: str | None = None, **kw: Any):
    """``metrics.summarize`` with the extensions' ``HOOKS`` (MLPerf time to train):
    one row of metrics per run of ``logs`` (``read_logs``' result, a Store, or a
    store's path), as a DataFrame. ``kw``: ``options=`` (a ``MetricOptions``) or its
    fields (``warmup=``, ``stat=``, ``tokens=``, ``models=``)."""
    return metrics.summarize(logs, formula, hooks=HOOKS, **kw)


def summarize_store(
    db: str | None,
    select=(),
    options: MetricOptions | None = None,
    *,
    overrides: list[tuple[str, dict[str, Any]]] | dict[str, Any] | None = None,
    **given: Any,
):
    """(metrics table, selected run rows) for the store at ``db``; ``options`` (or its
    fields as keywords): ``MetricOptions``; ``overrides``: as ``load_selection``."""
    options = options_of(options, **given)
    view = load_selection(db, select, steps=False, options=options, overrides=overrides)
    return summarize(view, options=options), records(view.runs)


def described(
    *,
    model: str | None = None,
    gpus: int,
    global_batch_size: int,
    step_time: float,
    seq_len: int | None = None,
    dtype: str = "bf16",
    accelerator: str = "h100-sxm",
    recompute: str = "none",
    tp: int = 1,
    pp: int = 1,
    zero_stage: int = 0,
    formula: str | None = None,
    tokens: float | None = None,
    models: dict | None = None,
    values: dict[str, Any] | None = None,
    lora: bool = False,
    model_config: str | None = None,
):
    """The metrics of a run that is described, not logged (one-row DataFrame): a catalog
    ``model``, or a Hugging Face ``model_config`` file, with ``values`` on top (any shape
    field or setting a log or ``report --set`` can give); ``lora``: frozen base weights.
    A configuration that cannot run (model state above the device's memory, a batch
    below the data-parallel ranks) is flagged."""
    import pandas as pd

    check_setting("accelerator", accelerator, "--accelerator")
    if not step_time > 0:
        raise UsageError(f"--step-time {step_time}: a step takes more than 0 seconds")
    given = Settings.build(values=values or {}).cli  # a misspelt name: UsageError
    shape = read_model_config(model_config) if model_config else {}
    if model is not None and find_model(model, None, models) is None:
        check_setting("model", model, "--model")  # a near miss: did you mean
        raise UsageError(
            f"unknown model {model!r}", remedy="use a catalog name such as gpt3-175b or llama3-70b"
        )
    if model is None and not shape and "num_layers" not in given:
        raise UsageError(
            "give the model: --model NAME (a catalog name), --model-config config.json, or "
            "its shape with --set num_layers=... --set hidden_size=..."
        )
    origin = {k: f"--model-config {model_config}" for k in shape} | {k: "--set" for k in given}
    run = {
        "run_id": "estimate",
        "source": "estimate",
        "parser": None,
        "model": model,
        "num_gpus": gpus,
        "global_batch_size": global_batch_size,
        "seq_len": seq_len,
        "dtype": dtype,
        "accelerator": accelerator,
        "recompute": recompute,
        "tp": tp,
        "pp": pp,
        "dp": gpus // (tp * pp),
        "zero_stage": zero_stage,
        "status": None,
        "n_steps": 1,
        "config": json.dumps({**shape, **given, **({"lora": True} if lora else {})}, default=str),
        "provenance": json.dumps(origin),
    }
    options = MetricOptions(formula=formula, warmup=0, stat="last", tokens=tokens, models=models)
    row = run_metrics(run, one_step(step_time), [], options)
    device = find_accelerator(accelerator)
    state = row.get("model_state_bytes_per_gpu")
    if device and device.memory_gb and state and state > device.memory_gb * 2**30:
        row["flags"] = ",".join(filter(None, [row["flags"], "memory>device"]))
    return pd.DataFrame([row])


def draw(
    kind: str,
    path: str,
    db: str | None = None,
    select=(),
    *,
    group_by: str | None = None,
    value: str = "step_time_s",
    table=None,
    options: MetricOptions | None = None,
    **given: Any,
) -> str:
    """Draw figure ``kind`` (scaling, steps, topology, loss) of the selected runs to
    ``path`` (png, svg, pdf). ``options`` (or its fields as keywords): the metrics'
    ``MetricOptions``; ``table``, when given, is an already computed metrics table.
    Returns the path."""

    if kind not in plots.KINDS:
        raise UsageError(f"unknown figure {kind!r} (figures: {', '.join(plots.KINDS)})")
    plots.check_path(path)  # before any work
    options = options_of(options, **given)
    view = (
        load_selection(
            db,
            select,
            steps=FIGURE_COLUMNS.get(kind, False),
            steps_limit=plots.RUNS_LIMIT,
            options=options,
        )
        if table is None or kind in ("steps", "loss")
        else None
    )
    if table is None and kind in ("scaling", "topology"):
        table = summarize(view, options=options)
    figures = {
        "scaling": lambda: plots.plot_scaling(table, group_by=group_by),
        "topology": lambda: plots.plot_topology(table, value=value),
        "steps": lambda: plots.plot_steps(view, warmup=options.warmup, stat=options.stat),
        "loss": lambda: plots.plot_loss(view),
    }
    ax = figures[kind]()
    try:
        return plots.save(ax, path)
    finally:
        plots.close(ax)


def explanation(table, runs: list[dict], options: MetricOptions | None = None) -> str:
    """``report --explain``'s text: each run's inputs with where they came from, then
    how its figures were derived from them (``derivation.EXPLAINED``)."""
    from .derivation import EXPLAINED, derivations  # only --explain tells derivations

    options = options or MetricOptions()
    rows = {r["run_id"]: r for r in records(table)}
    out = []
    for run in runs:
        out.append(f"{run['run_id']}  {relative(run['source'])}")
        found = metrics.explain(run, options.models, options.formula)
        out += [f"  {key:<22} {cell(value):<24} {origin}" for key, value, origin in found]
        origins = {k: str(o) for k, _, o in found}
        told = derivations(rows.get(run["run_id"], {}), origins, run=run)
        out += [f"  {told[key]}" for key in EXPLAINED if key in told]
    return "\n".join(out) + "\n" if out else ""


def footnotes(table, options: MetricOptions | None = None) -> str:
    """What a terminal report says under its table: how ``step_s`` was taken, and the
    runs whose step time is their log's train summary."""
    if not len(table):
        return ""
    options = options or MetricOptions()
    skipped = "10% of steps, at least 2" if options.warmup is None else f"{options.warmup}"
    out = f"step_s: the {options.stat} step time after the warm-up steps ({skipped})\n"
    summary = int((table["stat"] == "summary").sum()) if "stat" in table.columns else 0
    if summary:
        out += (
            f"        {summary} run(s) time no step: the mean of the log's train summary"
            " (stat 'summary', warm-up included)\n"
        )
    return out


def overrides_of(set_items=(), model_config: str | None = None) -> list[tuple[str, dict]]:
    """The inputs given for one report (``report --set``, ``--model-config``): a model
    config's shape, then the ``K=V`` items on top, as ``load_selection``'s layers."""
    layers = []
    if model_config:
        layers.append((f"--model-config {model_config}", read_model_config(model_config)))
    if set_items:
        layers.append(("report --set", Settings.build(list(set_items)).cli))
    return layers
