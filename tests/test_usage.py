"""Loud on bad input: a misspelt name is an error with the name meant; a missing
store is one line and creates nothing; an empty store is an empty result and a hint."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write

from llmbench.cli import cli

PAX = FIXTURES / "pax"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize(
    "args, said, meant",
    [
        (["--set", "num_gpu=8"], "--set: unknown setting 'num_gpu'", "did you mean num_gpus?"),
        (["--set", "seqlen=2048"], "unknown setting 'seqlen'", "did you mean seq_len?"),
        (["--set", "model=llama2-7bb"], "model 'llama2-7bb' is not in the catalog", "llama2-7b?"),
        (
            ["--set", "accelerator=H100-SXM-80G"],
            "accelerator 'H100-SXM-80G' is not in the catalog",
            "did you mean h100-sxm",
        ),
        (["--path-pattern", "{dtype/{model}"], "unbalanced brace", "write fields in braces"),
    ],
)
def test_a_misspelt_name_is_an_error_naming_what_was_meant(tmp_path, args, said, meant):
    r = run("ingest", PAX, "--db", tmp_path / "s.db", *args)
    assert r.exit_code == 2, r.output
    assert said in r.stderr and meant in r.stderr
    assert not (tmp_path / "s.db").exists()  # nothing was read or stored


def test_settings_file_keys_are_checked_too(tmp_path):
    bad = write(tmp_path / "s.toml", 'num_gpu = 8\n[files."*/128/*"]\nseq_len = 2048\n')
    r = run("ingest", PAX, "--db", tmp_path / "s.db", "--settings", bad)
    assert r.exit_code == 2 and "unknown setting 'num_gpu'" in r.stderr
    bad = write(tmp_path / "t.toml", '[files."*/128/*"]\nglobal_batch_sze = 256\n')
    r = run("ingest", PAX, "--db", tmp_path / "s.db", "--settings", bad)
    assert r.exit_code == 2 and "did you mean global_batch_size?" in r.stderr


def test_a_free_form_setting_is_kept(tmp_path):
    db = tmp_path / "s.db"
    assert (
        run("ingest", PAX / "fp8" / "175b" / "128", "--db", db, "--set", "cluster=eos").exit_code
        == 0
    )
    (row,) = json.loads(run("runs", "--db", db, "--format", "json", "--all").stdout)
    assert json.loads(row["config"])["cluster"] == "eos"


def test_estimate_names_the_accelerator_meant():
    r = run(
        "estimate",
        "--model",
        "gpt3-175b",
        "--gpus",
        "8",
        "--global-batch-size",
        "8",
        "--step-time",
        "1",
        "--accelerator",
        "h100-pcie-99",
    )
    assert r.exit_code == 2 and "did you mean h100-pcie" in r.stderr


def test_report_columns_and_sort_check_their_names_and_sort_descending(tmp_path):
    db = tmp_path / "s.db"
    settings = FIXTURES / "settings.toml"
    assert run("ingest", PAX, "--db", db, "--settings", settings).exit_code == 0
    r = run("report", "--db", db, "--columns", "run_id,num_gpu")
    assert r.exit_code == 2 and "--columns: no column 'num_gpu'" in r.stderr
    assert "did you mean num_gpus?" in r.stderr
    r = run("report", "--db", db, "--sort", "mfuu")
    assert r.exit_code == 2 and "did you mean mfu?" in r.stderr
    r = run("report", "--db", db, "--sort", "-num_gpus", "--format", "json")
    gpus = [row["num_gpus"] for row in json.loads(r.stdout)]
    assert gpus == sorted(gpus, reverse=True) and len(gpus) == 5
    out = run("report", "--db", db, "--columns", "all").stdout
    header = out.splitlines()[0].split()
    assert len(header) > 40 and {"HFU", "missing", "model_state_GiB_per_gpu"} <= set(header)
    # the headers' short names (any case) name the columns too
    r = run("report", "--db", db, "--sort", "-gpus", "--columns", "GPUs,mfu", "--format", "json")
    assert [row["num_gpus"] for row in json.loads(r.stdout)] == [2048, 1024, 512, 256, 128]


def test_report_table_fits_120_columns_and_says_what_it_shows(tmp_path):
    db = tmp_path / "s.db"
    assert (
        run("ingest", FIXTURES, "--db", db, "--settings", FIXTURES / "settings.toml").exit_code == 0
    )
    out = run("report", "--db", db).stdout.splitlines()
    assert max(map(len, out)) <= 120
    assert out[0].split() == [
        "run_id", "source", "model", "GPUs", "step_s", "tokens/s", "TFLOP/s/GPU", "MFU"
    ]  # fmt: skip
    assert out[-3].startswith("(5 more column(s): flags, tflops_per_gpu_logged, global_batch")
    assert (
        out[-2] == "step_s: the median step time after the warm-up steps (10% of steps, at least 2)"
    )
    assert "run(s) time no step: the mean of the log's train summary" in out[-1]
    rows = [line.split() for line in out[2:-2]]
    # sources without the folders all share, the file name kept whole when cut
    assert rows[0][1] == "pax/fp8/175b/128/log.out"
    assert any(r[1].endswith(".../dp4-tp8-pp12-mbs1.log") for r in rows)
    # by model, then GPUs as numbers (128 before 1024)
    pax = [int(r[3]) for r in rows if r[1].startswith("pax/")]
    assert pax == [128, 256, 512, 1024, 2048]
    # bytes as GiB on screen (CSV and JSON keep bytes)
    js = json.loads(run("report", "--db", db, "--format", "json").stdout)
    pax128 = "*/pax/fp8/175b/128/*"
    state = next(r["model_state_bytes_per_gpu"] for r in js if r["source"].endswith("/128/log.out"))
    wide = run(
        "report", pax128, "--db", db, "--columns", "num_gpus,model_state_bytes_per_gpu"
    ).stdout
    shown = [line.split() for line in wide.splitlines() if line.split()[:1] == ["128"]]
    assert shown == [["128", f"{state / 2**30:.2f}".rstrip("0").rstrip(".")]]


@pytest.mark.parametrize(
    "command",
    [
        ["runs"],
        ["report"],
        ["export"],
        ["plot", "scaling", "-o", "x.png"],
        ["mlperf"],
        ["check"],
        ["forget", "abc"],
    ],
)
def test_a_missing_store_is_one_line_and_creates_nothing(tmp_path, command):
    db = tmp_path / "none.db"
    r = run(*command, "--db", db)
    assert r.exit_code == 2, r.output
    assert r.stderr.splitlines()[0] == f"Error: no store at {db}"
    assert "hint: ingest logs first" in r.stderr and "Traceback" not in r.output
    assert list(tmp_path.iterdir()) == []


def test_an_empty_store_gives_empty_results_and_a_hint(tmp_path):
    from llmbench.store import Store

    db = tmp_path / "empty.db"
    Store(str(db)).close()
    for command, empty in (
        (["runs"], "run_id"),
        (["report"], "run_id"),
        (["report", "--format", "json"], "[]"),
    ):
        r = run(*command, "--db", db)
        assert r.exit_code == 0 and empty in r.stdout, (command, r.output)
        assert "the store holds no runs yet: llmbench ingest PATH first" in r.stderr
    r = run("export", "--db", db)
    assert r.exit_code == 0 and r.stdout.startswith("run_id,step,")


def test_a_model_the_settings_file_defines_is_no_typo(tmp_path):
    spec = write(
        tmp_path / "m.toml",
        'model = "llama2-7bx"\n[models.llama2-7bx]\nnum_layers = 32\nhidden_size = 4096\n'
        "num_attention_heads = 32\nvocab_size = 32000\n",
    )
    r = run("ingest", PAX / "fp8" / "175b" / "128", "--db", tmp_path / "s.db", "--settings", spec)
    assert r.exit_code == 0, r.stderr


def test_notebook_api_is_listed_and_a_missing_path_raises(tmp_path):
    import llmbench
    from llmbench.errors import InputError

    assert {"read_logs", "summarize", "plot_scaling", "read_store", "export"} <= set(dir(llmbench))
    with pytest.raises(InputError, match="no such file"):
        llmbench.read_logs(str(tmp_path / "nope"))


def test_report_numbers_carry_no_float_noise(tmp_path):
    db = tmp_path / "s.db"
    assert (
        run("ingest", FIXTURES, "--db", db, "--settings", FIXTURES / "settings.toml").exit_code == 0
    )
    rows = json.loads(run("report", "--db", db, "--format", "json").stdout)
    floats = [v for row in rows for v in row.values() if isinstance(v, float)]
    assert len(floats) > 100
    import re

    def noisy(v: float) -> bool:  # 136.95729999999998, 0.30000000000000004
        digits = repr(v).split("e")[0].replace("-", "").replace(".", "")
        return len(digits.strip("0")) >= 16 and re.search(r"(0{4,}|9{4,})\d{0,2}$", digits)

    assert [v for v in floats if noisy(v)] == []


def test_report_set_supplies_a_missing_input_for_that_report_only(tmp_path):
    db = tmp_path / "s.db"
    seed = FIXTURES / "megatron_deepspeed" / "seed002-20b-fp16.log"
    assert run("ingest", seed, "--db", db).exit_code == 0
    cols = ("--columns", "run_id,tflops_per_gpu,mfu,missing", "--format", "json")
    (before,) = json.loads(run("report", "--db", db, *cols).stdout)
    assert before["mfu"] is None and "set accelerator for mfu" in before["missing"]
    r = run("report", "--db", db, "--set", "accelerator=a100-sxm-40gb", *cols)
    (after,) = json.loads(r.stdout)
    assert after["mfu"] == pytest.approx(after["tflops_per_gpu"] / 312.0)  # A100 fp16 dense peak
    explained = run("report", "--db", db, "--set", "accelerator=a100-sxm-40gb", "--explain")
    assert any(
        "a100-sxm-40gb" in line and line.rstrip().endswith("report --set")
        for line in explained.stdout.splitlines()
    )
    (again,) = json.loads(run("report", "--db", db, *cols).stdout)
    assert again["mfu"] is None  # the store is unchanged
    r = run("report", "--db", db, "--set", "acelerator=a100")
    assert r.exit_code == 2 and "did you mean accelerator?" in r.stderr


MESSY = FIXTURES / "messy" / "megatron-lm-8ranks-restart.log"
# what reading the messy fixture notices, in (line, kind) order: checked by hand
# against the file (line 78 holds two ranks' iteration lines, line 274 is cut off)
MESSY_WARNINGS = [
    (78, "line"),  # a record cut short by another glued on
    (148, "segment"),
    (274, "line"),
    (None, "repeated"),  # copies of iteration lines
    (None, "repeated"),  # the glued record: a copy of step 5
]


def test_warnings_are_stored_per_file_and_listed(tmp_path):
    db = str(tmp_path / "s.db")
    first = run("ingest", str(MESSY), "--db", db)
    assert first.exit_code == 0
    # the first few per file, then how many more and where to see them all
    assert first.stderr.count("  warning: ") == 3, first.stderr
    assert f"... 2 more warning(s): llmbench warnings {MESSY}" in first.stderr
    listed = json.loads(run("warnings", "--db", db, "--format", "json").stdout)
    assert [(w["line"], w["kind"]) for w in listed] == MESSY_WARNINGS
    assert listed[2]["message"] == "iteration 21 line is cut off: dropped"
    only = json.loads(run("warnings", "--db", db, "--kind", "line", "--format", "json").stdout)
    assert [w["line"] for w in only] == [78, 274]
    table = run("warnings", str(MESSY), "--db", db).stdout
    # a terminal listing: the file once, then line, kind, message wrapped to the width
    lines = table.splitlines()
    assert lines[0].endswith(MESSY.name) and all(len(x) <= 120 for x in lines)
    assert "     274  line      iteration 21 line is cut off: dropped" in lines
    wrapped = [x for x in lines if x.startswith(" " * 20)]  # a long message's next line
    assert len(lines) == 1 + 5 + len(wrapped) and wrapped

    again = run("ingest", "-v", str(MESSY), "--db", db)  # unchanged: the stored ones, all
    assert "1 unchanged" in again.output and again.stderr.count("  warning: ") == 5
    assert "5 warning(s)" in again.output

    nothing = run("warnings", str(tmp_path / "other.log"), "--db", db)
    assert nothing.exit_code == 1 and "nothing stored matches" in nothing.stderr
    run_id = json.loads(run("runs", "--db", db, "--format", "json").stdout)[0]["run_id"]
    by_run = json.loads(run("warnings", run_id[:8], "--db", db, "--format", "json").stdout)
    assert len(by_run) == 5
    assert run("forget", str(MESSY), "--db", db).exit_code == 0
    assert json.loads(run("warnings", "--db", db, "--format", "json").stdout) == []


def test_a_file_with_very_many_warnings_stores_the_first_and_counts_the_rest(tmp_path, monkeypatch):
    from llmbench import store as store_module
    from llmbench.ingest import ingest
    from llmbench.store import Store

    monkeypatch.setattr(store_module, "MAX_WARNINGS", 2)
    db = str(tmp_path / "s.db")
    ingest([str(MESSY)], db)
    with Store(db) as s:
        kept = [w for _, w in s.warnings()]
    assert [(w.line, w.kind) for w in kept] == [(78, "line"), (148, "segment"), (None, "input")]
    assert kept[2].message == "3 more warning(s) not stored"


def test_notebook_warnings_are_a_dataframe(tmp_path):
    import llmbench

    broken = write(tmp_path / "broken.log", b"\x00\x01binary\x00" * 50)
    logs = llmbench.read_logs([str(MESSY), str(broken)], parser="megatron_lm")
    w = logs.warnings
    assert list(w.columns) == ["file", "line", "kind", "message"]
    got = [(None if ln is pd.NA else ln, k) for ln, k in zip(w["line"], w["kind"], strict=True)]
    assert got[: len(MESSY_WARNINGS)] == MESSY_WARNINGS
    assert w.iloc[-1]["kind"] == "error" and w.iloc[-1]["file"] == str(broken)


def _on_a_terminal(args: list[str], env: dict) -> str:
    """What a command writes to a terminal (stdout and stderr on a pseudo-terminal)."""
    import os
    import pty
    import subprocess
    import sys

    main, other = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmbench", *args],
        stdout=other,
        stderr=other,
        env={**os.environ, **env},
    )
    os.close(other)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the other end closed: the command is done
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(main)
    return out.decode(errors="replace")


def test_a_long_ingest_shows_bytes_and_files_on_a_terminal_only(tmp_path):
    big = tmp_path / "big.log"
    line = (FIXTURES / "megatron_deepspeed" / "seed002-20b-fp16.log").read_text()
    big.write_text(line * 40)  # a few MB, read in blocks
    small = write(tmp_path / "small.log", line)
    db = str(tmp_path / "s.db")
    shown = _on_a_terminal(
        ["ingest", str(big), str(small), "--db", db, "--workers", "1"],
        {"LLMBENCH_PROGRESS_AFTER": "0"},
    )
    assert "ingesting 2/2 files" in shown and "100%" in shown, shown
    quiet = run("ingest", str(big), "--db", str(tmp_path / "q.db"))  # not a terminal
    assert "ingesting" not in quiet.stderr and "%" not in quiet.stderr
    # a short one on a terminal, under the threshold: no bar
    assert "ingesting" not in _on_a_terminal(["ingest", str(small), "--db", db], {})


def test_report_and_figures_say_they_are_working_on_a_terminal(tmp_path):
    db = str(tmp_path / "s.db")
    assert run("ingest", PAX, "--db", db, "--settings", FIXTURES / "settings.toml").exit_code == 0
    shown = _on_a_terminal(["report", "--db", db], {"LLMBENCH_PROGRESS_AFTER": "0"})
    assert "report ... 0 s" in shown and "\x1b[K" in shown  # counted, then wiped
    assert "report ..." not in run("report", "--db", db).output  # not a terminal
    fig = str(tmp_path / "f.png")
    shown = _on_a_terminal(
        ["plot", "steps", "--db", db, "-o", fig], {"LLMBENCH_PROGRESS_AFTER": "0"}
    )
    assert "steps figure ... 0 s" in shown


def test_parquet_export_needs_no_pyarrow(tmp_path):
    """polars writes and reads the Parquet: an install without the dask extra (no
    pyarrow) exports every table."""
    import subprocess
    import sys

    db = str(tmp_path / "s.db")
    assert run("ingest", PAX, "--db", db, "--settings", FIXTURES / "settings.toml").exit_code == 0
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from llmbench.cli import main\n"
        "import polars as pl\n"
        f"for t in ('runs', 'steps', 'events'):\n"
        f"    sys.argv = ['llmbench', 'export', '--db', {db!r}, '--table', t, '--format', 'parquet',"
        f" '-o', {str(tmp_path)!r} + f'/{{t}}.parquet']\n"
        "    try:\n        main()\n    except SystemExit as e:\n        assert not e.code, e.code\n"
        f"print(sorted(pl.read_parquet({str(tmp_path)!r} + '/runs.parquet')['num_gpus']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[128,", "256,", "512,", "1024,", "2048]"]


def test_torchtitan_2024_lines_are_read_with_exact_step_times():
    """torchtitan's 2024 line (no [titan], `wps` for tokens/s per GPU, no tflops);
    step times from millisecond timestamps with decimal arithmetic: 47.901 s over
    10 steps is 4.7901, exactly as a float prints it, not 4.790100000000001."""
    from llmbench.ingest import parse_file

    parsed = parse_file(str(FIXTURES / "torchtitan" / "llama3-8b-2024.log"))
    assert parsed.parser == "torchtitan"
    assert [s["step_time_s"] for s in parsed.steps] == [None, 4.851, 4.8107, 4.7901]
    assert [s["tokens_per_s_per_gpu"] for s in parsed.steps] == [255, 1688, 1703, 1710]


def _runs(db) -> dict:
    r = run("runs", "--db", db, "--all", "--format", "json")
    return {Path(x["source"]).name: x for x in json.loads(r.output)}


def test_settings_given_with_a_file_are_kept_when_it_is_ingested_again(tmp_path):
    """A plain re-ingest reuses what was given with each file; a new --set adds to it
    (a name given again replaces its value); a new settings file replaces the old."""
    logs = tmp_path / "logs"
    logs.mkdir()
    mixtral = FIXTURES / "megatron_lm" / "mixtral-8x7b-16xh100.log"
    (logs / "mixtral.log").write_bytes(mixtral.read_bytes())
    first = write(
        tmp_path / "s.toml",
        b'accelerator = "h100-sxm"\n[files."*mixtral*"]\nmodel = "mixtral-8x7b"\ndtype = "bf16"\n',
    )
    db = tmp_path / "s.db"
    assert run("ingest", logs, "--db", db, "--settings", first).exit_code == 0
    before = _runs(db)["mixtral.log"]
    assert (before["model"], before["accelerator"], before["num_gpus"]) == (
        "mixtral-8x7b", "h100-sxm", 16
    )  # fmt: skip
    again = run("ingest", logs, "--db", db)
    assert "0 ingested, 1 unchanged" in again.output
    assert _runs(db)["mixtral.log"]["model"] == "mixtral-8x7b"
    # the file changes: read again, with the settings given before
    with open(logs / "mixtral.log", "a") as f:
        f.write("\n")
    assert "1 ingested" in run("ingest", logs, "--db", db).output
    after = _runs(db)["mixtral.log"]
    assert (after["model"], after["dtype"], after["accelerator"]) == (
        "mixtral-8x7b",
        "bf16",
        "h100-sxm",
    )
    report = json.loads(run("report", "--db", db, "--format", "json").output)
    assert report[0]["mfu"] is not None
    # --set adds to them, and a name given again wins
    assert run("ingest", logs, "--db", db, "--set", "dtype=fp8").exit_code == 0
    after = _runs(db)["mixtral.log"]
    assert (after["model"], after["dtype"]) == ("mixtral-8x7b", "fp8")
    # another settings file replaces the first and all it held (--set items stay)
    other = write(tmp_path / "t.toml", b'accelerator = "b200"\n')
    assert run("ingest", logs, "--db", db, "--settings", other).exit_code == 0
    after = _runs(db)["mixtral.log"]
    assert (after["model"], after["dtype"], after["accelerator"]) == (None, "fp8", "b200")


def test_mlperf_on_a_folder_without_results_changes_nothing_stored(tmp_path):
    db = tmp_path / "s.db"
    settings = FIXTURES / "settings.toml"
    assert run("ingest", PAX, "--db", db, "--settings", settings).exit_code == 0
    before = _runs(db)
    r = run("mlperf", PAX, "--db", db)
    assert r.exit_code == 1 and "no MLPerf result files found under" in r.stderr
    assert _runs(db) == before
    # a log that is not an MLPerf result is not stored either (nor a store made for it)
    lone = tmp_path / "new.db"
    r = run("mlperf", FIXTURES / "nemo" / "nemo2-llama3-8b.log", "--db", lone)
    assert r.exit_code == 1 and not lone.exists()
