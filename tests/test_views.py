"""What the table commands show: the view's columns, `--columns` on each, the width a
terminal table is fitted to, repeated notes as one line with their count."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from llmbench.cli import cli
from llmbench.errors import UsageError
from llmbench.views import VIEWS, View, columns_for, grouped_notes, wrapped


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_columns_are_chosen_by_name_or_header_in_any_case():
    have = ["run_id", "num_gpus", "mfu", "flags", "tp"]
    assert columns_for(have, None, "table", "GPUs, MFU,run_id") == ["num_gpus", "mfu", "run_id"]
    assert columns_for(have, VIEWS["report"], "table", "ALL") == have
    # csv and json: every column unless chosen; a table: the view's
    assert columns_for(have, VIEWS["report"], "csv") == have
    assert columns_for(have, View(("run_id", "mfu")), "table") == ["run_id", "mfu"]
    # a flagged row brings the flags column in beside the metric it concerns
    assert columns_for(have, View(("run_id", "mfu", "tp"), "mfu"), "table", flagged=True) == [
        "run_id",
        "mfu",
        "flags",
        "tp",
    ]
    with pytest.raises(UsageError) as e:
        columns_for(have, None, "table", "run_id,mfuu")
    assert "no column 'mfuu'" in str(e.value) and e.value.remedy == "did you mean mfu?"


def test_repeated_notes_become_one_line_with_the_count():
    said = [f"run{k}: left out of the scaling figure (no model)" for k in range(50)]
    said += ["run7: no step times", "no run names a model", "run8: no step times"]
    assert grouped_notes(said) == [
        "50 runs: left out of the scaling figure (no model) (run0, run1, run2 and 47 more)",
        "run7: no step times",
        "no run names a model",
        "run8: no step times",
    ]
    assert grouped_notes(said[:2]) == said[:2]  # two are shown as they are


def test_long_text_wraps_under_its_column_and_never_splits_a_path():
    path = "/very/long/" + "x" * 60 + "/train.log"
    text = wrapped("      78  line  ", f"read {path} again " + "word " * 20, width=60, indent=16)
    lines = text.splitlines()
    assert lines[0] == "      78  line  read" and lines[1] == " " * 16 + path
    assert all(len(x) <= 60 for x in lines[2:]) and all(x.startswith(" " * 16) for x in lines[1:])


@pytest.mark.parametrize(
    ("command", "chosen", "header", "shown"),
    [
        ("runs", "run_id,GPUs", ["run_id", "num_gpus"], ["run_id", "GPUs"]),
        ("report", "MFU,run_id", ["mfu", "run_id"], ["MFU", "run_id"]),
        ("scaling", "num_gpus,law", ["num_gpus", "law"], ["GPUs", "law"]),
        ("hardware", "key,fp4", ["key", "fp4"], ["key", "fp4"]),
        ("models", "model,active_params", ["model", "active_params"], ["model", "active"]),
        ("parsers", "name", ["name"], ["name"]),
    ],
)
def test_every_table_command_takes_columns(tmp_path, command, chosen, header, shown):
    db = ["--db", str(tmp_path / "s.db")] if command in ("runs", "report", "scaling") else []
    if db:
        assert run("ingest", FIXTURES / "pax", "--settings", FIXTURES / "settings.toml", *db)
    got = run(command, *db, "--columns", chosen, "--format", "csv")
    assert got.exit_code == 0, got.output
    rows = list(csv.reader(io.StringIO(got.stdout)))
    assert rows[0] == header and len(rows) > 1
    table = run(command, *db, "--columns", chosen).stdout.splitlines()
    assert table[0].split() == shown and set(table[1]) <= {"-", " "}
    bad = run(command, *db, "--columns", "nosuch")
    assert bad.exit_code == 2 and "--columns: no column 'nosuch'" in bad.stderr


def test_parameter_counts_read_in_billions_on_a_terminal_and_exactly_elsewhere():
    from llmbench.views import in_billions

    cols = ["model", "params", "active_params"]
    rows = [["deepseek-v3", 671026404352, 37553282048], ["gpt3-125m", 125898240, None]]
    assert in_billions(cols, rows) == [
        ["deepseek-v3", "671.03B", "37.55B"],
        ["gpt3-125m", "125.9M", None],
    ]
    got = list(csv.DictReader(io.StringIO(run("models", "--format", "csv").stdout)))
    assert next(r for r in got if r["model"] == "deepseek-v3")["params"] == "671026404352"
    shown = run("models").stdout.splitlines()
    assert any(x.startswith("deepseek-v3 ") and " 671.03B   37.55B " in x for x in shown)
    assert all(len(x) <= 120 for x in shown)


def test_runs_left_out_of_a_figure_are_one_note_per_reason(tmp_path):
    db = str(tmp_path / "s.db")
    run("ingest", FIXTURES, "--db", db)
    r = run("report", "--db", db, "--plot", tmp_path / "s.png")
    assert r.exit_code == 0, r.output
    notes = [x for x in r.stderr.splitlines() if x.startswith("note: ")]
    # each reason once, with its count and the first three runs
    assert "note: 24 runs: left out of the scaling figure (no num_gpus, tokens_per_s) (" in (
        r.stderr
    )
    reasons = [x.split(") (")[0] for x in notes]
    assert len(reasons) == len(set(reasons)) == 4, notes
