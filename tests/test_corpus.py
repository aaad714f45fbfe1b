"""Real logs written by others (../shared/corpus): skipped when absent."""

from __future__ import annotations

import csv
import math

import pytest
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


@pytest.mark.parametrize("framework", ["megatron-deepspeed", "pax"])
def test_framework_logs_step_counts(corpus, framework):
    truth = {r["file"]: r for r in csv.DictReader((corpus / "logs" / "TRUTH.csv").open())}
    from llmbench.ingest import read_logs

    for path in sorted((corpus / "logs" / framework).glob("*.log")):
        row = truth[f"{framework}/{path.name}"]
        logs = read_logs(str(path))
        assert len(logs.steps) == int(row["n_steps"]), path.name
        assert logs.steps["step"].min() == int(row["first_step"])
        assert logs.steps["step"].max() == int(row["last_step"])
        assert math.isclose(
            logs.steps["step_time_s"].median(), float(row["median_step_time_s"]), rel_tol=1e-9
        )
