"""Real logs written by others (../shared/corpus): skipped when absent."""

from __future__ import annotations

import csv
import json
import math

from click.testing import CliRunner

from llmbench.cli import cli
from llmbench.store import Store


def test_every_mlperf_result_ingests_with_status_and_times(corpus):
    root = corpus / "mlperf"
    r = CliRunner().invoke(cli, ["ingest", str(root)])
    assert r.exit_code == 0, r.output
    with Store() as s:
        runs = s.table("runs").set_index("source")
    truth = list(csv.DictReader((root / "TRUTH_runs.csv").open()))
    assert len(truth) == len(list(root.rglob("result_*.txt"))) == len(runs)
    for row in truth:
        run = runs.loc[str(root / row["path"])]
        assert run["parser"] == "mllog"
        assert run["status"] == row["status"], row["path"]
        assert math.isclose(run["start_time"] * 1000, float(row["run_start_ms"]), abs_tol=0.5), row[
            "path"
        ]
        assert math.isclose(run["end_time"] * 1000, float(row["run_stop_ms"]), abs_tol=0.5), row[
            "path"
        ]
        if row["global_batch_size"]:
            assert run["global_batch_size"] == float(row["global_batch_size"]), row["path"]


FRAMEWORK_PARSER = {
    "deepspeed": "deepspeed",
    "hf-trainer": "hf_trainer",
    "maxtext": "maxtext",
    "megatron-deepspeed": "megatron_deepspeed",
    "megatron-lm": "megatron_lm",
    "nemo": "nemo",
    "pax": "pax",
    "torchtitan": "torchtitan",
}


def _close(actual, expected: str) -> bool:
    return math.isclose(actual, float(expected), rel_tol=0, abs_tol=5 * 10 ** -_decimals(expected))


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) + 1 if "." in text else 1


def test_framework_logs_match_truth(corpus):
    """Every corpus log: the right parser, its step count, first/last step, median step
    time and the means of the logged TFLOPs, MFU and tokens/s (TRUTH.csv)."""
    from llmbench.ingest import choose_parser, read_logs

    rows = list(csv.DictReader((corpus / "logs" / "TRUTH.csv").open()))
    assert len(rows) >= 11
    for row in rows:
        path = corpus / "logs" / row["file"]
        name = row["file"]
        assert choose_parser(str(path)).name == FRAMEWORK_PARSER[row["framework"]], name
        logs = read_logs(str(path))
        steps = logs.steps
        assert len(steps) == int(row["n_steps"]), name
        if not len(steps):
            continue
        if steps["step"].isna().all():
            # the log prints no step number: stored null, in line order (TRUTH.csv
            # numbers such steps 1..n in order)
            assert steps["line_no"].is_monotonic_increasing, name
            assert (int(row["first_step"]), int(row["last_step"])) == (1, len(steps)), name
        else:
            assert steps["step"].min() == int(row["first_step"]), name
            assert steps["step"].max() == int(row["last_step"]), name
        if row["median_step_time_s"]:
            assert _close(steps["step_time_s"].median(), row["median_step_time_s"]), name
        else:
            assert steps["step_time_s"].isna().all(), name
        if row["mean_logged_tflops"]:
            assert _close(steps["tflops_per_gpu_logged"].mean(), row["mean_logged_tflops"]), name
        if row["mean_logged_mfu_pct"]:
            assert _close(steps["mfu_logged"].mean() * 100, row["mean_logged_mfu_pct"]), name
        if row["mean_logged_tps"]:
            assert _close(steps["tokens_per_s_per_gpu"].mean(), row["mean_logged_tps"]), name
        if (
            row["global_batch_size"]
            and "global_batch_size" in steps
            and steps["global_batch_size"].notna().any()
        ):
            assert steps["global_batch_size"].iloc[-1] == int(row["global_batch_size"]), name


def test_hf_trainer_summary_from_the_corpus(corpus):
    from llmbench.ingest import read_logs

    logs = read_logs(str(corpus / "logs" / "hf-trainer" / "bigscience-hf-ds-gpt2-n4.log"))
    ev = logs.events[logs.events["key"] == "train_runtime"]
    assert [json.loads(v) for v in ev["value"]] == [919.097]  # printed by 4 processes: once
    cfg = json.loads(logs.runs["config"].iloc[0])
    assert cfg["train_runtime"] == 919.097 and cfg["train_samples_per_second"] == 1.088
