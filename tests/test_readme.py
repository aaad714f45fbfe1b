"""The README is true: its quick-start transcript is what the command prints, and
every Python block and every `$ llmbench` command of its transcripts runs as pasted
(from a folder holding the fixtures, after the quick start's ingest)."""

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
from conftest import FIXTURES

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
    return where


def test_the_quick_start_transcript_is_what_it_prints(folder):
    transcript = next(code for lang, code in BLOCKS if lang == "text" and QUICK in code)
    ingest, report = (
        llmbench(part.strip()[len("llmbench ") :], folder) for part in QUICK.split("&&")
    )
    assert ingest.returncode == 0 and report.returncode == 0
    printed = f"$ {QUICK}\n" + ingest.stderr + ingest.stdout + report.stdout + report.stderr
    assert printed == transcript


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
def test_every_python_block_runs_as_pasted(folder, code, monkeypatch):
    for module in re.findall(r"^import (\w+(?:, \w+)*)", code, flags=re.M):
        for name in module.split(", "):
            if importlib.util.find_spec(name) is None:
                pytest.skip(f"needs {name}, which the README installs separately")
    if not (folder / "llmbench.db").exists():
        assert (
            llmbench("ingest fixtures/ --settings fixtures/settings.toml", folder).returncode == 0
        )
    monkeypatch.chdir(folder)
    monkeypatch.delenv("LLMBENCH_DB", raising=False)
    import matplotlib

    matplotlib.use("Agg")
    exec(compile(code, "README.md", "exec"), {})
