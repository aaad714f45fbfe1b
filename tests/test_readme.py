"""The README is true: its quick-start transcript is what the command prints, and
every Python block and every `$ llmbench` command of its transcripts runs as pasted
from the repository root, after the quick start's ingest (a folder laid out as the root:
the fixtures, and the source folders ``llmbench/`` and ``parsers/`` that ``python -c``
and ``python -m`` put first on ``sys.path`` there)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORPUS, FIXTURES, ROOT

README = (FIXTURES.parent / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.M | re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
COMMANDS = [
    line[2:]
    for lang, code in BLOCKS
    if lang == "text"
    for line in code.splitlines()
    if line.startswith("$ llmbench ")
]
QUICK = "llmbench ingest fixtures/ --settings fixtures/settings.toml && llmbench report"


def llmbench(args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmbench", *shlex.split(args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "LLMBENCH_DB": ""},
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A folder as a new user has it: the fixtures, and the quick start's store."""
    where = tmp_path_factory.mktemp("readme")
    shutil.copytree(FIXTURES, where / "fixtures")
    (where / "docs").mkdir()
    for source in ("llmbench", "parsers"):
        (where / source).symlink_to(ROOT / source, target_is_directory=True)
    if (CORPUS / "mlperf").is_dir():  # README's MLPerf transcript: "the corpus copied to"
        (where / "training_results").symlink_to(CORPUS / "mlperf", target_is_directory=True)
    return where


def test_the_quick_start_transcript_is_what_it_prints(folder):
    transcript = next(code for lang, code in BLOCKS if lang == "text" and QUICK in code)
    ingest, report = (
        llmbench(part.strip()[len("llmbench ") :], folder) for part in QUICK.split("&&")
    )
    assert ingest.returncode == 0 and report.returncode == 0
    # as a terminal shows it: each command's warnings come before its table
    printed = f"$ {QUICK}\n" + ingest.stderr + ingest.stdout + report.stderr + report.stdout
    assert printed == transcript
    again = llmbench(QUICK.split("&&")[0].strip()[len("llmbench ") :], folder).stdout
    said = re.search(r"Running the ingest again stores nothing new: `(.*?), \.\.\.`", README)
    assert said and again.startswith(said[1])


@pytest.mark.parametrize("command", COMMANDS, ids=range(len(COMMANDS)))
def test_every_transcript_command_runs(folder, command):
    if not (folder / "llmbench.db").exists():
        assert (
            llmbench("ingest fixtures/ --settings fixtures/settings.toml", folder).returncode == 0
        )
    paths = [a for a in shlex.split(command) if "/" in a and "*" not in a and not a.startswith("-")]
    missing = [p for p in paths if not (folder / p).exists() and not p.startswith("docs/")]
    if missing:
        pytest.skip(f"needs {missing} (not bundled: the MLPerf results corpus)")
    for part in command.split("&&"):
        done = llmbench(part.strip()[len("llmbench ") :], folder)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("code", PYTHON, ids=range(len(PYTHON)))
def test_every_python_block_runs_as_pasted(folder, code):
    for module in re.findall(r"^import (\w+(?:, \w+)*)", code, flags=re.M):
        for name in module.split(", "):
            if importlib.util.find_spec(name) is None:
                pytest.skip(f"needs {name}, which the README installs separately")
    if not (folder / "llmbench.db").exists():
        assert (
            llmbench("ingest fixtures/ --settings fixtures/settings.toml", folder).returncode == 0
        )
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "LLMBENCH_DB": "", "MPLBACKEND": "Agg"},
    )
    assert done.returncode == 0, done.stderr


def test_the_source_folder_imports_with_its_parsers_from_the_repository_root():
    """After a non-editable install, ``python -c`` at the root imports the source folder,
    not the installed copy: it finds the built-in parsers all the same. ``-S`` leaves out
    the site module, so no editable-install finder can stand in for the mapping."""
    site = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    code = (
        "import llmbench, llmbench.registry as r; "
        "print(llmbench.__file__); print(','.join(r.available()))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-W", "error", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(site)},
    )
    assert done.returncode == 0, done.stderr
    where, names = done.stdout.splitlines()
    assert Path(where) == ROOT / "llmbench" / "__init__.py"
    assert names.split(",") == sorted(p.stem for p in (ROOT / "parsers").glob("[a-z]*.py"))


def test_the_metrics_table_is_the_metric_specs():
    """README's "Metrics" table is generated from ``metric_specs`` (``python
    docs/transcripts.py``): a metric added as a spec is documented by that command."""
    from llmbench.metric_specs import readme_table

    assert readme_table() in README
    rows = [line for line in readme_table().splitlines() if line.startswith("| `")]
    from llmbench.metric_specs import METRIC_COLUMNS

    assert [r.split("`")[1] for r in rows] == list(METRIC_COLUMNS)
