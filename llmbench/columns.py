"""The canonical tables: column names, SQL types and meaning (units in the names).

One place that frames, the store and the exporters read, so a column is named
once. See DESIGN.md, "Canonical tables".
"""

from __future__ import annotations

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

# The tables whose rows live in Parquet parts (``store``), and the catalog tables.
PART_TABLES = ("steps", "events")


def polars_schema(columns: dict[str, str]) -> dict:
    """``columns`` as a polars schema: INTEGER -> Int64, REAL -> Float64, TEXT -> String."""
    import polars as pl

    kinds = {"INTEGER": pl.Int64, "REAL": pl.Float64, "TEXT": pl.String}
    return {name: kinds[sql.split()[0]] for name, sql in columns.items()}
