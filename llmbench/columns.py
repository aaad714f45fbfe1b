"""The canonical tables: column names, SQL types and meaning (units in the names).

One place that frames, the store and the exporters read, so a column is named
once. See DESIGN.md, "Canonical tables".
"""

from __future__ import annotations

from .shapes import SHAPE_KEYS as _SHAPE_KEYS

# name -> SQL type. INTEGER/REAL columns are numeric in DataFrames; missing is NaN.
RUN_COLUMNS: dict[str, str] = {
    "run_id": "TEXT",
    "source": "TEXT",
    "segment": "INTEGER",  # 0-based index of the run inside its file
    "parser": "TEXT",
    "framework": "TEXT",
    "model": "TEXT",
    "num_layers": "INTEGER",
    "hidden_size": "INTEGER",
    "ffn_hidden_size": "INTEGER",
    "num_attention_heads": "INTEGER",
    "num_query_groups": "INTEGER",
    "vocab_size": "INTEGER",  # padded vocabulary when the log says it
    "seq_len": "INTEGER",
    "global_batch_size": "INTEGER",
    "micro_batch_size": "INTEGER",
    "tp": "INTEGER",
    "pp": "INTEGER",
    "dp": "INTEGER",
    "cp": "INTEGER",
    "ep": "INTEGER",
    "num_gpus": "INTEGER",
    "num_nodes": "INTEGER",
    "gpus_per_node": "INTEGER",
    "accelerator": "TEXT",
    "dtype": "TEXT",
    "zero_stage": "INTEGER",
    "recompute": "TEXT",  # none | selective | full
    "start_time": "REAL",  # Unix epoch seconds
    "end_time": "REAL",  # Unix epoch seconds
    "status": "TEXT",  # e.g. MLPerf run_stop status: success / aborted
    "first_line": "INTEGER",
    "last_line": "INTEGER",
    "n_steps": "INTEGER",
    "config": "TEXT",  # JSON: every other setting found in the log or given by the user
    "provenance": "TEXT",  # JSON: setting -> where its value came from
}

STEP_COLUMNS: dict[str, str] = {
    "run_id": "TEXT",
    "step": "INTEGER",
    "step_time_s": "REAL",
    "loss": "REAL",
    "learning_rate": "REAL",
    "grad_norm": "REAL",
    "loss_scale": "REAL",
    "global_batch_size": "INTEGER",
    "consumed_samples": "INTEGER",
    "consumed_tokens": "INTEGER",
    "samples_per_s": "REAL",
    "tokens_per_s": "REAL",
    "tokens_per_s_per_gpu": "REAL",  # as logged (torchtitan, MaxText, Megatron-LM 2024)
    "tflops_per_gpu_logged": "REAL",
    "mfu_logged": "REAL",  # fraction, not percent
    "skipped_iterations": "INTEGER",
    "nan_iterations": "INTEGER",
    "timestamp": "TEXT",  # ISO 8601 as printed; '--MM-DDThh:mm:ss' when the log has no year
    "rank": "INTEGER",
    "line_no": "INTEGER",
    "extra": "TEXT",  # JSON: fields of the line that have no column of their own
}

EVENT_COLUMNS: dict[str, str] = {
    "run_id": "TEXT",
    "time_ms": "REAL",  # Unix epoch milliseconds
    "event_type": "TEXT",
    "key": "TEXT",
    "value": "TEXT",  # JSON text
    "metadata": "TEXT",  # JSON text
    "step": "INTEGER",
    "line_no": "INTEGER",
}

FILE_COLUMNS: dict[str, str] = {
    "path": "TEXT PRIMARY KEY",
    "size": "INTEGER",
    "mtime": "REAL",
    "sha256": "TEXT",
    "parser": "TEXT",
    "status": "TEXT",  # ok | failed
    "error": "TEXT",
    "settings_hash": "TEXT",
    "settings": "TEXT",  # JSON: the settings and --parser given for the file (reused later)
    "ingested_at": "TEXT",
}

TABLES = {"runs": RUN_COLUMNS, "steps": STEP_COLUMNS, "events": EVENT_COLUMNS}

# Run settings whose values are numbers; given as text (--set, path) they are converted.
INT_SETTINGS = frozenset(k for k, t in RUN_COLUMNS.items() if t == "INTEGER") - {
    "segment",
    "first_line",
    "last_line",
    "n_steps",
}
RUN_SETTING_COLUMNS = frozenset(RUN_COLUMNS) - {
    "run_id",
    "source",
    "segment",
    "parser",
    "first_line",
    "last_line",
    "n_steps",
    "config",
    "provenance",
}

# a model's shape, as settings or a [models.NAME] table give it (``shapes.Shape``)
SHAPE_KEYS = _SHAPE_KEYS
# every setting a name means something for (columns, shape, run facts the metrics and
# MLPerf read); a name close to one of these is a typo, any other is kept free-form
KNOWN_SETTINGS = (
    RUN_SETTING_COLUMNS
    | set(SHAPE_KEYS)
    | {"lora", "benchmark", "round", "division", "system_status", "model_family", "submitter"}
    | {"flops_formula"}
    | {"system", "mlperf_run", "mlperf_scaling_factor", "orig_vocab_size"}
)

# The tables whose rows live in Parquet parts (``store``), and the catalog tables.
PART_TABLES = ("steps", "events")


def polars_schema(columns: dict[str, str]) -> dict:
    """``columns`` as a polars schema: INTEGER -> Int64, REAL -> Float64, TEXT -> String."""
    import polars as pl

    kinds = {"INTEGER": pl.Int64, "REAL": pl.Float64, "TEXT": pl.String}
    return {name: kinds[sql.split()[0]] for name, sql in columns.items()}


#: the ``flags`` a report row can carry, and what each means: never an impossible
#: number shown plainly
FLAGS = {
    "mfu>1": "MFU above 1 is impossible: the model, num_gpus, global batch, dtype (an FP8 "
    "run against the BF16 peak) or accelerator is wrong",
    "hfu>1": "HFU above 1 is impossible: the model, num_gpus, batch, dtype, accelerator or "
    "recompute setting is wrong",
    "logged_off": "the logged TFLOP/s differ from the computed ones by more than 2x (the "
    "formulas differ by less than 1.5x): a unit slip (GFLOP/s printed as TFLOP/s, a per-job "
    "figure as per GPU) or a wrong model",
    "dtype_assumed": "the precision is assumed, not logged: MFU is against the BF16 peak; "
    "an FP8 run's is lower by the FP8/BF16 peak ratio (2x on H100, B200, MI300X)",
    "nonpositive": "a global batch or GPU count of 0 or less: metrics left empty",
    "all_skipped": "every timed iteration was skipped (fp16 loss-scale search) or NaN: no "
    "steady-state step time; the run never trained normally",
    "batch<dp": "the global batch is smaller than the data-parallel ranks (GPUs / (TP x PP)): "
    "some ranks get no sample, so the configuration cannot run as described",
    "memory>device": "the model state alone (weights, gradients, optimizer state after TP, PP "
    "and ZeRO) is more than the accelerator's memory: the configuration cannot run as "
    "described (more TP or PP, or ZeRO)",
    "other_seq_len": "the step time is calibrated on runs at another sequence length: their "
    "per-GPU token rate does not carry over (attention grows with the length)",
    "other_accelerator": "the step time is calibrated on runs on another accelerator",
    "extrapolated": "the step time is calibrated past the largest GPU count measured",
}

# what `llmbench runs` shows without --all
RUN_VIEW = [
    "run_id",
    "source",
    "parser",
    "n_steps",
    "model",
    "num_gpus",
    "global_batch_size",
    "seq_len",
    "dtype",
    "tp",
    "pp",
    "dp",
    "status",
]

# what `llmbench report` shows as a terminal table without --columns, most useful
# first: columns that do not fit the table's width are left out from the right
REPORT_VIEW = [
    "run_id",
    "source",
    "model",
    "num_gpus",
    "step_time_s",
    "tokens_per_s",
    "tflops_per_gpu",
    "mfu",
    "tflops_per_gpu_logged",
    "global_batch_size",
    "days_per_1t_tokens",
    "tflops_logged_formula",
]

#: the FLOPs conventions' names (``flops.CONVENTIONS``; a run's ``flops_formula`` is one)
FORMULA_NAMES = (
    "megatron-causal",
    "megatron-core",
    "megatron",
    "maxtext",
    "maxtext-2025",
    "maxtext-2024",
    "torchtitan",
    "ptdp",
    "bigscience",
    "dgxc",
    "6n",
    "palm",
    "torchtitan-2024",
    "8n",
)


def natural_key(run: dict) -> tuple:
    """Where a run goes in a listing: by model, then GPU count (as numbers: 128
    before 1024), source and segment; runs without a model or a GPU count last
    (missing is None, or NaN in a DataFrame's records)."""
    model, gpus = run.get("model"), run.get("num_gpus")
    no_model, no_gpus = not isinstance(model, str), gpus is None or gpus != gpus
    return (
        no_model,
        "" if no_model else model,
        no_gpus,
        0 if no_gpus else gpus,
        run.get("source") or "",
        run.get("segment") or 0,
    )


#: headers of terminal and markdown tables (short, with units, as the field writes
#: them); CSV and JSON keep the column names, and options accept either
LABELS = {
    "num_gpus": "GPUs",
    "num_nodes": "nodes",
    "global_batch_size": "GBS",
    "micro_batch_size": "MBS",
    "seq_len": "seq",
    "n_steps": "steps",
    "tp": "TP",
    "pp": "PP",
    "dp": "DP",
    "cp": "CP",
    "ep": "EP",
    "step_time_s": "step_s",
    "tokens_per_s": "tokens/s",
    "tokens_per_s_per_gpu": "tokens/s/GPU",
    "tflops_per_gpu": "TFLOP/s/GPU",
    "hw_tflops_per_gpu": "HW_TFLOP/s/GPU",
    "mfu": "MFU",
    "hfu": "HFU",
    "days_per_1t_tokens": "days/1T",
    "tflops_per_gpu_logged": "logged_TFLOP/s",
    "tflops_logged_formula": "logged_formula",
    "num_layers": "layers",
    "hidden_size": "hidden",
    "num_attention_heads": "heads",
    "num_query_groups": "groups",
    "ffn_hidden_size": "ffn",
    "vocab_size": "vocab",
    "num_experts": "experts",
    "moe_topk": "top-k",
    "active_params": "active",
    "memory_gb": "GB",
    "memory_bw_tbs": "TB/s",
}

#: width a terminal table is fitted to (wider ones lose columns from the right)
TABLE_WIDTH = 120

#: step columns that mark a timed line as not a normal step: iterations skipped (fp16
#: loss-scale search) or NaN in the interval it covers
FAULTS = ("skipped_iterations", "nan_iterations")
#: the step columns the steady-state cut reads (``metrics.normal_timed``, ``run_warmup``)
STEADY_CUT = ("step_time_s", "global_batch_size", *FAULTS)

#: the origin of a run's global batch read from its step lines (``frames``); the
#: metrics take such a batch as the steady steps' median (a ramp-up starts smaller)
STEP_LINES = "log (step lines)"

#: the columns of ``compare``'s pairs and ``mlperf``'s scores: (unit, meaning), as
#: ``metric_specs.METRIC_COLUMNS`` (their pages' headers and hover texts)
TABLE_COLUMNS: dict[str, tuple[str, str]] = {
    "key": ("", "the values the pair was matched on (--match)"),
    "metric": ("", "the metric compared"),
    "baseline": (
        "",
        "the baseline's value: the median of its steady steps or runs, or as published",
    ),
    "candidate": ("", "the candidate's value, taken the same way"),
    "ratio": ("", "candidate / baseline"),
    "ci_low": ("", "the ratio's interval, low end (bootstrap; --confidence)"),
    "ci_high": ("", "the ratio's interval, high end (bootstrap; --confidence)"),
    "verdict": (
        "",
        "faster/slower (better/worse for the loss) when the change passes --threshold in the "
        "metric's good direction and the interval excludes no change, else same; (point): no "
        "interval, the point estimate decides",
    ),
    "method": ("", "how the interval was made"),
    "round": ("", "the MLPerf Training round"),
    "submitter": ("", "who submitted the results"),
    "system": ("", "the system's name in the submission"),
    "benchmark": ("", "the benchmark (the result folder's name)"),
    "division": ("", "closed or open"),
    "n_runs": ("", "result files in the benchmark folder"),
    "n_dropped": ("", "runs that did not succeed, counted as the slowest"),
    "scaling_factor": ("", "the folder's scaling.json factor (1 without one)"),
    "score_min": (
        "min",
        "the official score: the olympic mean of the runs' times to train (fastest and "
        "slowest dropped) times the scaling factor",
    ),
    "score_note": ("", "why a folder has no score, breaks a rule, or holds an impossible number"),
    "formula": (
        "",
        "the FLOPs convention the TFLOP/s and MFU are counted in (`llmbench formulas`)",
    ),
}
