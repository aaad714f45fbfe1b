"""Logs from the wild (issue 15) beyond the fixtures: drift that fails loudly,
detection by telltales, unknown fields kept, numbers exactly as printed, glued
records split, a train summary as the only timing."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import FIXTURES, write

from llmbench.cli import cli
from llmbench.ingest import choose_parser, read_logs

# Megatron-DeepSpeed 2021 (DeepSpeedExamples v1.1.5): nothing in the line says DeepSpeed
ITER = (
    " iteration        {n}/    1000 | elapsed time per iteration (ms): {ms} | learning rate: "
    "1.875E-05 | lm loss: 1.252221E+01 | loss scale: 1024.0 | number of skipped iterations:   0 |"
    " number of nan iterations:   0 |\n"
)
BANNER = (
    "[2021-05-27 21:32:00,332] [INFO] [logging.py:60:log_dist] [Rank 0] DeepSpeed info: "
    "version=0.4.0+unknown, git-hash=unknown, git-branch=unknown\n"
)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_deepspeed_telltales_anywhere_in_the_head_decide_the_fork(tmp_path):
    lines = "".join(ITER.format(n=n, ms=123742.4) for n in (1, 2, 3))
    plain = write(tmp_path / "plain.log", lines)
    assert choose_parser(str(plain)).name == "megatron_lm"
    noise = "".join(f"NCCL INFO Channel {k:02d}/32 :    0 1\n" for k in range(300))
    ds = write(tmp_path / "ds.log", noise + BANNER + lines)
    assert choose_parser(str(ds)).name == "megatron_deepspeed"


def test_a_recognised_file_whose_step_lines_do_not_read_fails_naming_its_line(tmp_path):
    drift = write(
        tmp_path / "drift.log",
        "> building GPT model ...\n"
        " iteration        1/    1000 | elapsed time per iteration (ms): fast | lm loss: high |\n"
        " iteration        2/    1000 | elapsed time per iteration (ms): fast | lm loss: high |\n",
    )
    good = FIXTURES / "megatron_lm" / "llama3-8b-8xh100.log"
    db = tmp_path / "s.db"
    r = run("ingest", drift, good, "--db", db)
    assert r.exit_code == 1
    assert f"error: {drift}:2: recognised as Megatron-LM (megatron_lm), but no step" in r.stderr
    assert (
        "2 iteration line(s) with unreadable field(s) elapsed time per iteration (ms)" in r.stderr
    )
    assert "1 ingested, 0 unchanged, 1 failed" in r.stdout  # the good file is stored


def test_unreadable_fields_are_one_warning_per_file_with_count_and_first_line(tmp_path):
    lines = ITER.format(n=1, ms=1000.0) + ITER.format(n=2, ms="n/a") + ITER.format(n=3, ms="-")
    logs = read_logs(str(write(tmp_path / "m.log", lines)))
    assert logs.steps["step"].tolist() == [1, 2, 3]  # the other fields still read
    assert logs.steps["step_time_s"].tolist()[0] == 1.0
    (w,) = [m for m in logs.warnings["message"] if "unreadable" in m]
    assert w == (
        "2 iteration line(s) with unreadable field(s) elapsed time per iteration (ms): those "
        "fields left empty (first at line 2)"
    )


def test_an_unknown_field_of_a_known_line_is_kept_under_its_label(tmp_path):
    line = ITER.format(n=7, ms=1500.0).replace(
        " loss scale:", " router z loss: 3.1E-03 | loss scale:"
    )
    logs = read_logs(str(write(tmp_path / "m.log", line)))
    extra = json.loads(logs.steps["extra"][0])
    assert extra == {"router z loss": 0.0031}
    assert logs.steps["loss_scale"][0] == 1024.0


def test_a_record_glued_to_the_end_of_another_line_is_split(tmp_path):
    first = ITER.format(n=1, ms=1500.0)
    glued = "[2021-05-27 21:40:01,221] [INFO] [stage3.py:2700:step] overflow, skipping" + (
        ITER.format(n=2, ms=1600.0)
    )
    logs = read_logs(str(write(tmp_path / "m.log", first + glued)))
    assert logs.steps["step"].tolist() == [1, 2]
    assert logs.steps["step_time_s"].tolist() == [1.5, 1.6]


def test_printed_numbers_are_stored_and_shown_as_printed(tmp_path):
    db = tmp_path / "s.db"
    log = FIXTURES / "megatron_deepspeed" / "zero3-2021-effective-tflops.log"
    assert run("ingest", log, "--db", db).exit_code == 0
    steps = json.loads(run("export", "--table", "steps", "--db", db, "--format", "json").stdout)
    assert steps[0]["step_time_s"] == 123.7424  # 123742.4 ms, on the printed digits
    csv = run("report", "--db", db, "--format", "csv", "--columns", "num_gpus,tp,step_time_s")
    assert csv.stdout.splitlines()[1] == "64,4,128.6013"  # 64, not 64.0; no float noise


def test_a_train_summary_is_the_step_time_of_a_log_that_times_no_step(tmp_path):
    log = write(
        tmp_path / "hf.log",
        "[INFO|trainer.py:1149] 2021-05-25 06:38:26,285 >>   Total optimization steps = 16\n"
        "{'train_runtime': 919.097, 'train_samples_per_second': 1.088, "
        "'train_steps_per_second': 0.017, 'epoch': 1.0}\n",
    )
    db = tmp_path / "s.db"
    assert run("ingest", log, "--db", db).exit_code == 0
    (row,) = json.loads(run("report", "--db", db, "--format", "json").stdout)
    assert row["step_time_s"] == 57.4435625 and row["stat"] == "summary"  # 919.097 / 16
    assert row["n_steady"] == 0
