"""The command line end to end: the seed values, idempotent re-ingest, every bad input."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, store_counts, write

from llmbench.cli import cli

SEED2 = FIXTURES / "megatron_deepspeed" / "seed002-20b-fp16.log"
PAX128 = FIXTURES / "pax" / "fp8" / "175b" / "128" / "log.out"
SEED0 = FIXTURES / "mllog" / "seed000-eos-gpt3.txt"


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def export(table):
    r = run("export", "--table", table, "--format", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_seed_values_through_ingest_and_export():
    r = run("ingest", SEED2, PAX128, SEED0)
    assert r.exit_code == 0, r.output
    assert "3 file(s): 3 ingested, 0 unchanged, 0 failed" in r.output
    steps = export("steps")
    step2 = next(s for s in steps if s["step"] == 2 and s["step_time_s"] == 769.99)
    expected = {
        "step": 2,
        "step_time_s": 769.99,
        "consumed_samples": 4096,
        "consumed_tokens": 8388608,
        "global_batch_size": 2048,
        "loss": 63.84045,
        "loss_scale": 4096.0,
        "grad_norm": 15906.21,
        "samples_per_s": 2.66,
        "tflops_per_gpu_logged": 108.47,
    }
    assert {k: step2[k] for k in expected} == expected
    pax = [s for s in steps if s["timestamp"] == "--04-11T15:03:26.866614"]
    assert len(pax) == 1 and pax[0]["step_time_s"] == 7.47
    values = [json.loads(e["value"]) for e in export("events") if e["key"] == "tracked_stats"]
    assert {"throughput": 5154997.267404211} in values
    assert {"train_epoch_timing": 234.93810319900513} in values
    # DESIGN.md column names, exactly
    from llmbench.columns import STEP_COLUMNS

    assert list(steps[0]) == list(STEP_COLUMNS)


def test_reingest_is_a_noop_and_changed_file_replaces(tmp_path):
    d = tmp_path / "logs"
    shutil.copytree(FIXTURES, d)
    assert run("ingest", d).exit_code == 0
    con = sqlite3.connect("llmbench.db")
    counts = store_counts()
    r = run("ingest", d)
    assert r.exit_code == 0
    assert f"0 ingested, {counts['files']} unchanged" in r.output and counts["files"] >= 9
    assert store_counts() == counts
    # touched but same content: still unchanged (hash check)
    log = d / "megatron_deepspeed" / "seed002-20b-fp16.log"
    os.utime(log, (1, 1))
    assert "1 unchanged" in run("ingest", log).output
    # changed content replaces the old rows atomically, with a new run_id
    old_ids = {r[0] for r in con.execute("select run_id from runs where source = ?", (str(log),))}
    with open(log, "a") as f:
        f.write(
            " iteration        3/   95367 | consumed samples:         6144 | elapsed time per iteration (s): 770.01 | global batch size:  2048 | TFLOPs: 108.46 |\n"
        )
    assert "1 ingested" in run("ingest", log).output
    new = con.execute("select run_id, n_steps from runs where source = ?", (str(log),)).fetchall()
    assert len(new) == 1 and new[0][1] == 3 and new[0][0] not in old_ids
    assert store_counts()["steps"] == counts["steps"] + 1


def test_run_id_is_stable_for_same_content(tmp_path):
    a = write(tmp_path / "a/x.log", SEED2.read_text())
    run("ingest", a, "--db", "one.db")
    run("ingest", a, "--db", "two.db")
    ids = [
        sqlite3.connect(db).execute("select run_id from runs").fetchall()
        for db in ("one.db", "two.db")
    ]
    assert ids[0] == ids[1] and len(ids[0][0][0]) == 12


def test_same_content_under_two_paths_is_stored_once(tmp_path):
    a = write(tmp_path / "a/x.log", SEED2.read_text())
    b = write(tmp_path / "b/x.log", SEED2.read_text())
    r = run("ingest", a, b)
    assert r.exit_code == 0 and "1 duplicate" in r.output
    assert sqlite3.connect("llmbench.db").execute("select count(*) from runs").fetchone()[0] == 1


def test_settings_path_pattern_and_set_with_provenance(tmp_path):
    toml = write(
        tmp_path / "s.toml",
        'seq_len = 2048\naccelerator = "h100-sxm"\n[files."*/128/*"]\nglobal_batch_size = 256\n',
    )
    r = run(
        "ingest",
        FIXTURES / "pax",
        "--settings",
        toml,
        "--path-pattern",
        "{dtype}/{model}/{num_gpus}/",
        "--set",
        "model=gpt3-175b",
    )
    assert r.exit_code == 0, r.output
    runs = {r["num_gpus"]: r for r in export("runs")}
    assert sorted(runs) == [128, 256, 512, 1024, 2048]
    r128 = runs[128]
    assert (r128["dtype"], r128["model"], r128["seq_len"], r128["global_batch_size"]) == (
        "fp8",
        "gpt3-175b",
        2048,
        256,
    )
    assert runs[256]["global_batch_size"] is None
    prov = json.loads(r128["provenance"])
    assert prov["model"] == "command line --set"
    assert prov["num_gpus"].startswith("path-pattern")
    assert prov["global_batch_size"].endswith("[files.'*/128/*']")
    assert prov["seq_len"].startswith("settings ")


def test_stdin(tmp_path):
    r = run("ingest", "-", input=SEED2.read_text())
    assert r.exit_code == 0, r.output
    assert export("runs")[0]["source"].startswith("<stdin:")


def test_parsers_lists_builtins_with_origin():
    r = run("parsers", "--format", "json")
    got = {p["name"]: p for p in json.loads(r.output)}
    assert set(got) >= {"mllog", "pax", "megatron_deepspeed"}
    assert got["pax"]["origin"].startswith("llmbench ") and "built-in" in got["pax"]["origin"]
    assert got["pax"]["produces"] == ["step_time_s", "loss", "timestamp"]
    assert "tflops_per_gpu_logged" in got["megatron_deepspeed"]["produces"]
    table = run("parsers").output
    assert "produces" not in table and "megatron_deepspeed" in table


def test_runs_formats():
    run("ingest", SEED2)
    for fmt, probe in (
        ("table", "run_id"),
        ("markdown", "| run_id |"),
        ("csv", "run_id,source"),
        ("json", '"run_id"'),
    ):
        r = run("runs", "--format", fmt)
        assert r.exit_code == 0 and probe in r.output


def test_runs_lists_without_pandas_as_the_dataframe_renders(tmp_path):
    """`runs` (table, markdown) reads the catalog without importing pandas (start-up
    is most of its time) and prints what rendering the runs DataFrame prints."""
    from llmbench.columns import LABELS, RUN_VIEW, TABLE_WIDTH
    from llmbench.formats import render, short_paths
    from llmbench.report import natural_order
    from llmbench.store import Store

    db = str(tmp_path / "r.db")
    assert run("ingest", SEED2, SEED0, PAX128, "--db", db).exit_code == 0
    with Store(db) as store:
        df = natural_order(store.table("runs"))
    # the run with a model first, then by GPU count, those with neither last
    assert [os.path.basename(p) for p in df["source"]] == [SEED0.name, SEED2.name, PAX128.name]
    for fmt in ("table", "markdown"):
        got = run("runs", "--db", db, "--format", fmt, "--all").output
        assert got == render(df, fmt, labels=LABELS) and len(got.splitlines()) == 2 + len(df)
        got = run("runs", "--db", db, "--format", fmt).output
        view = df[RUN_VIEW].assign(source=short_paths(list(df["source"])))
        assert got == render(view, fmt, labels=LABELS, width=TABLE_WIDTH, everything="--all")
        assert max(len(line) for line in got.splitlines()) <= (
            TABLE_WIDTH if fmt == "table" else 999
        )
        heads = got.replace("|", " ").split()[:6]
        assert heads == ["run_id", "source", "parser", "steps", "model", "GPUs"]
    code = (
        "import sys; from llmbench.cli import cli\n"
        f"try: cli(['runs', '--db', {db!r}])\n"
        "except SystemExit: pass\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "seed002" in out.stdout, out.stderr


# --- bad input: one clear line naming the file (and line), no traceback, the rest stored ---

BAD = {
    "missing": (None, "no such file or directory"),
    "empty.log": ("", "empty file"),
    "binary.log": (b"\x00\x01\x02ELF" * 100, "binary file"),
    # nothing readable before the cut (a cut with lines before it keeps them: test_reader)
    "cut.log.gz": (
        __import__("gzip").compress(b"iteration 1/ 9 |\n")[:10],
        "corrupt or truncated gzip",
    ),
    "unknown.log": ("hello\nworld\n", "no parser recognises this file"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_reported_and_the_rest_stored(tmp_path, name):
    content, message = BAD[name]
    bad = tmp_path / name
    if content is not None:
        write(bad, content)
    r = CliRunner().invoke(cli, ["ingest", str(bad), str(SEED2)])
    assert r.exit_code == 1
    assert f"{bad}" in r.output and message in r.output
    assert "Traceback" not in r.output
    assert "1 ingested" in r.output
    assert store_counts()["steps"] == 2


def test_nothing_to_read_is_a_usage_error_and_creates_no_store(tmp_path):
    (tmp_path / "empty").mkdir()
    db = tmp_path / "s.db"
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "empty"), "--db", str(db)])
    assert r.exit_code == 2 and "holds no log files" in r.output
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "nomatch" / "*.log"), "--db", str(db)])
    assert r.exit_code == 2 and "pattern matches no file" in r.output and not db.exists()
    # a missing path beside a real one: the real one is stored, the missing one failed
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "gone.log"), str(SEED2), "--db", str(db)])
    assert r.exit_code == 1 and "1 ingested" in r.output and "1 failed" in r.output


def test_line_cut_off_and_malformed_mllog_are_warnings(tmp_path):
    lines = SEED2.read_text().splitlines()
    cut = write(tmp_path / "cut.log", "\n".join(lines + [lines[-4][:90]]))  # SEED2 line cut mid-way
    r = run("ingest", "-v", cut, FIXTURES / "mllog" / "aborted-malformed.txt.gz")
    assert r.exit_code == 0
    assert "cut off" in r.output and f"{cut}" in r.output
    assert "malformed MLPerf log line" in r.output and "line 4" in r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--parser", "nope"],
            "unknown parser 'nope' (installed: deepspeed, generic, gpt_neox, hf_trainer, maxtext, "
            "megatron_deepspeed, megatron_lm, mllog, nemo, pax, torchtitan)",
        ),
        (["--set", "num_gpus"], "malformed --set 'num_gpus'"),
        (["--path-pattern", "{dtype/x"], "--path-pattern"),
    ],
)
def test_usage_errors_exit_2(args, message):
    r = CliRunner().invoke(cli, ["ingest", str(SEED2), *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert (
        not os.path.exists("llmbench.db")
        or sqlite3.connect("llmbench.db").execute("select count(*) from runs").fetchone()[0] == 0
    )


def test_settings_toml_error_names_file_and_line(tmp_path):
    bad = write(tmp_path / "bad.toml", "seq_len = 2048\nnum_gpus = = 3\n")
    r = CliRunner().invoke(cli, ["ingest", str(SEED2), "--settings", str(bad)])
    assert r.exit_code == 2
    assert f"{bad}:2: not valid TOML" in r.output


def test_forced_parser_on_unrecognised_file(tmp_path):
    # an iteration line with no timing field is not enough to detect the format
    log = write(
        tmp_path / "x.txt", "noise\n iteration        5/      10 | lm loss: 1.250000E+00 |\n"
    )
    assert run("ingest", log).exit_code == 1
    r = run("ingest", log, "--parser", "megatron_deepspeed")
    assert r.exit_code == 0 and "1 ingested" in r.output
    assert export("steps")[0]["loss"] == 1.25


def test_module_entry_point_runs_from_another_cwd(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "llmbench", "parsers"], capture_output=True, text=True, cwd=tmp_path
    )
    assert r.returncode == 0 and "megatron_deepspeed" in r.stdout


def test_forget_and_check_commands(tmp_path):
    log = write(tmp_path / "a.log", SEED2.read_text())
    assert run("check").exit_code == 2  # no store yet: usage error with a hint
    assert run("ingest", log).exit_code == 0
    r = run("check")
    assert r.exit_code == 0 and "1 file(s), 1 run(s), 2 step(s)" in r.output and "; ok" in r.output
    with open(log, "a") as f:
        f.write("\n")
    r = run("check")
    assert r.exit_code == 1 and f"changed: {log}" in r.stderr
    r = run("forget", log)
    assert r.exit_code == 0 and "forgot" in r.output
    r = run("forget", log)
    assert r.exit_code == 1 and "nothing stored matches" in r.stderr and "hint:" in r.stderr
    assert "0 file(s), 0 run(s)" in run("check").output


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_written_for_the_user_get_the_mode_of_any_new_file(tmp_path, umask):
    """export -o, figures and pages are written atomically through a private temporary
    file; the file itself gets the mode the umask gives a new file (not 0600)."""
    assert run("ingest", PAX128).exit_code == 0
    old = os.umask(umask)
    try:
        for args in (
            ("export", "-o", tmp_path / "steps.csv"),
            ("plot", "steps", "-o", tmp_path / "steps.svg"),
            ("report", "--html", tmp_path / "report.html"),
        ):
            assert run(*args).exit_code == 0
            assert (Path(args[-1]).stat().st_mode & 0o777) == 0o666 & ~umask, args
    finally:
        os.umask(old)
