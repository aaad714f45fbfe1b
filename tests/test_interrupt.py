"""Ctrl-C on a multi-file, multi-worker ingest: one line, exit 130, no traceback
from any process, out in a second or two, the store intact, a re-run finishes."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES

LINE = "Interrupted: every file is either fully stored or absent."
pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """1,200 distinct Megatron-LM logs: a few seconds of work for two workers."""
    folder = tmp_path_factory.mktemp("logs")
    text = (FIXTURES / "megatron_lm" / "mixtral-8x7b-16xh100.log").read_text()
    for i in range(1200):
        (folder / f"run{i:04d}.log").write_text(f"job {i}\n{text}")
    return folder


def ingest(logs: Path, db: Path) -> subprocess.Popen:
    # a session of its own: SIGINT goes to the whole group, as a terminal sends it
    return subprocess.Popen(
        [sys.executable, "-m", "llmbench", "ingest", "--workers", "2", "--db", str(db), str(logs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def stored(db: Path) -> int:
    """Files stored whole (a store interrupted while being created has no tables)."""
    with sqlite3.connect(db) as c:
        if not c.execute("select 1 from sqlite_master where name = 'files'").fetchone():
            return 0
        return c.execute("select count(*) from files where status = 'ok'").fetchone()[0]


def interrupt_at(logs: Path, db: Path, delay: float) -> tuple[int, str, float]:
    """(exit code, stderr, seconds from SIGINT to exit) for a Ctrl-C ``delay``
    seconds after the ingest opened its store."""
    proc = ingest(logs, db)
    deadline = time.monotonic() + 30
    while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"still running 10 s after Ctrl-C at {delay:.2f} s")
    return proc.returncode, err.decode(), time.monotonic() - sent


def check(logs: Path, db: Path, delay: float) -> None:
    code, err, took = interrupt_at(logs, db, delay)
    if code == 0:  # finished before the signal: nothing to interrupt
        assert stored(db) == 1200
        return
    assert (code, err.strip()) == (130, LINE), f"Ctrl-C at {delay:.2f} s: {err}"
    assert took < 2.5, f"Ctrl-C at {delay:.2f} s took {took:.1f} s to stop"
    before = stored(db)
    assert sqlite3.connect(db).execute("pragma integrity_check").fetchone()[0] == "ok"
    again = subprocess.run(
        [sys.executable, "-m", "llmbench", "ingest", "--workers", "2", "--db", str(db), str(logs)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert stored(db) == 1200 >= before
    summary = again.stdout.strip().splitlines()[-1]
    assert f"{before} unchanged" in summary or before == 0, summary


@pytest.mark.parametrize("delay", [0.0, 0.3, 0.8, 1.5])
def test_ctrl_c_stops_a_parallel_ingest_cleanly(logs, tmp_path, delay):
    check(logs, tmp_path / "s.db", delay)


@pytest.mark.slow
def test_ctrl_c_at_forty_random_moments(logs, tmp_path):
    rng = random.Random(17)
    for i in range(40):
        check(logs, tmp_path / f"s{i}.db", rng.uniform(0, 3))
