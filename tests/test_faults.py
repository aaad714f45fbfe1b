"""Faults of the disk, the way SQLite tests itself: the n-th write, fsync, rename,
spill or commit of an ingest fails (n = 1, 2, ... until the ingest gets through),
and after each failure the store opens, `check` finds nothing, every file it
holds has exactly the rows of a clean ingest, and running the ingest again
completes it with each file stored once."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest
from conftest import FIXTURES

import llmbench.ingest as ingest_mod
import llmbench.parts as parts
import llmbench.rows as rows
from llmbench.errors import StorageError
from llmbench.ingest import ingest
from llmbench.store import Store

BEFORE = [str(FIXTURES / "pax")]
FILES = [str(FIXTURES / "megatron_deepspeed"), str(FIXTURES / "mllog")]


def _disk_full(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _sqlite_full(*_a, **_k):
    raise sqlite3.OperationalError("database or disk is full")


# (where the fault strikes, what it raises)
FAULTS = {
    "part write": (parts, "write", _disk_full),
    "fsync": (parts, "fsync", _disk_full),
    "rename": (parts, "publish", _disk_full),
    "spill": (rows.Rows, "_spill", _disk_full),
    "commit": (Store, "_commit", _sqlite_full),
}


def _small_limits(monkeypatch, ahead: bool = True):
    """Spills and parts on small files (the paths big logs take): files hashed
    ahead write parts as they are read; the others spill, then write parts."""
    monkeypatch.setattr(rows, "SPILL_ROWS", 40)
    monkeypatch.setattr(ingest_mod, "HASH_AHEAD", 4096 if ahead else 1 << 40)


def _plain(row: tuple) -> str:
    """A row as text independent of its columns' dtypes (int64 or Int64 as the
    other rows in the store make them): Python numbers, None for missing."""
    return repr(tuple(None if pd.isna(v) else getattr(v, "item", lambda v=v: v)() for v in row))


def _content(db: str) -> dict[str, tuple]:
    """Per source: its runs, steps and events, as sorted row tuples."""
    with Store(db) as s:
        runs = s.runs()
        out: dict[str, tuple] = {}
        for table in ("steps", "events"):
            df = s.read(table)
            for src, ids in runs.groupby("source")["run_id"]:
                mine = df[df["run_id"].isin(set(ids))]
                rows_ = sorted(map(_plain, mine.drop(columns=["run_id"]).itertuples(index=False)))
                out.setdefault(src, ())
                out[src] += (table, tuple(rows_))
        for src, g in runs.groupby("source"):
            out[src] += ("runs", tuple(sorted(g["run_id"])))
        return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """What a clean ingest of BEFORE then FILES stores, per source."""
    mp = pytest.MonkeyPatch()
    _small_limits(mp)
    db = str(tmp_path_factory.mktemp("clean") / "s.db")
    ingest(BEFORE, db, workers=1)
    ingest(FILES, db, workers=1)
    mp.undo()
    return _content(db)


@pytest.mark.parametrize("ahead", [True, False], ids=["hashed-ahead", "spilled"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_failing_write_leaves_the_store_whole_and_a_rerun_completes_it(
    fault, ahead, clean, tmp_path, monkeypatch
):
    _small_limits(monkeypatch, ahead)
    owner, name, raise_ = FAULTS[fault]
    real = getattr(owner, name)
    n, struck = 0, True
    while struck:
        n += 1
        db = str(tmp_path / f"n{n}.db")
        ingest(BEFORE, db, workers=1)
        calls = [0]

        def failing(*a, _n=n, _calls=calls, **k):
            _calls[0] += 1
            if _calls[0] == _n:
                raise_()
            return real(*a, **k)

        monkeypatch.setattr(owner, name, failing)
        try:
            ingest(FILES, db, workers=1)
            struck = False  # the n-th call never came: every fault point was tried
        except StorageError as e:
            assert "no space left" in e.message and e.remedy.startswith("free space on")
        finally:
            monkeypatch.setattr(owner, name, real)
        with Store(db) as s:
            assert s.check() == [], (fault, n)
            stray = [p for p in os.listdir(s.parts_dir) if p.startswith(".")]
        assert stray == [], (fault, n)
        got = _content(db)
        for src, content in got.items():
            assert content == clean[src], (fault, n, src)  # each stored file whole
        again = ingest(FILES, db, workers=1)
        assert not again.failed
        assert _content(db) == clean, (fault, n)  # the rerun completes, nothing twice
    assert n > 1, f"{fault}: the ingest never reached this fault point"


def test_disk_full_is_one_line_and_exit_1(tmp_path):
    """On the command line: one line naming the folder, a hint, exit 1, no traceback."""
    db = tmp_path / "s.db"
    code = (
        "import errno, sys\n"
        "import llmbench.parts as parts\n"
        "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "parts.write = full\n"
        "from llmbench.cli import main\n"
        f"sys.argv = ['llmbench', 'ingest', {str(FIXTURES / 'pax')!r}, '--db', {str(db)!r}]\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and "no space left on the device" in lines[0]
    assert "stored before it" in lines[0] and lines[1].startswith("  hint: free space on")


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("engine", ["local", "dask"])
def test_workers_exit_when_the_ingest_is_killed(tmp_path, engine):
    import signal
    import time

    logs = tmp_path / "logs"
    logs.mkdir()
    text = (FIXTURES / "megatron_deepspeed" / "seed002-20b-fp16.log").read_text()
    for k in range(3000 if engine == "dask" else 600):
        (logs / f"run{k:04d}.log").write_text(text + f"\n# copy {k}\n")
    if engine == "dask":
        pytest.importorskip("distributed")
    cmd = [sys.executable, "-m", "llmbench", "ingest", str(logs), "--workers", "2"]
    cmd += ["--engine", engine]
    proc = subprocess.Popen(
        [*cmd, "--db", str(tmp_path / "s.db")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        workers = _children(proc.pid)
    assert len(workers) >= 2 and proc.poll() is None, "the ingest ended before it was killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, f"worker(s) {left} outlived the killed ingest"


# --- damaged stores: found by check, repaired by check --repair or a re-ingest ---


def _cli(*args):
    from click.testing import CliRunner

    from llmbench.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _damaged_store(tmp_path):
    """A store of two ingests (two batches: two steps parts); returns (db, the
    first batch's steps part, the second's)."""
    db = str(tmp_path / "s.db")
    ingest(BEFORE, db, workers=1)
    with Store(db) as s:
        first = set(s.live_parts("steps"))
    ingest(FILES, db, workers=1)
    with Store(db) as s:
        parts_dir = s.parts_dir
        (second,) = set(s.live_parts("steps")) - first
        (first,) = first
    return db, os.path.join(parts_dir, first), os.path.join(parts_dir, second)


def test_a_missing_part_is_named_and_a_reingest_restores_it(tmp_path, clean):
    db, _, lost = _damaged_store(tmp_path)
    os.remove(lost)
    r = _cli("check", "--db", db)
    assert r.exit_code == 1 and f"{lost}: missing (runs " in r.stderr
    again = ingest(FILES, db, workers=1)  # unchanged files whose rows went are read again
    assert again.count("ingested") >= 1 and not again.failed
    assert _cli("check", "--db", db).exit_code == 0
    assert _content(db) == clean


def test_a_damaged_part_is_reported_around_then_repaired(tmp_path, clean):
    db, healthy, broken = _damaged_store(tmp_path)
    with open(broken, "r+b") as f:  # cut in half: no Parquet footer
        f.truncate(os.path.getsize(broken) // 2)
    stray = os.path.join(os.path.dirname(broken), "01000000000000000000-000000000000.steps.parquet")
    open(stray, "wb").close()
    r = _cli("check", "--db", db)
    assert r.exit_code == 1
    assert f"{broken}: unreadable" in r.stderr and f"{stray}: not listed (stray)" in r.stderr
    # report: every run, those in the broken part without their rows, and a note
    r = _cli("report", "--db", db, "--format", "json")
    assert r.exit_code == 0 and f"note: {broken}: unreadable" in r.stderr
    table = {row["source"]: row for row in json.loads(r.stdout)}
    assert set(table) == set(clean)  # every stored file's runs are listed
    lost = [row for src, row in table.items() if "/megatron_deepspeed/" in src]
    assert lost and all(row["step_time_s"] is None for row in lost)
    pax = [row for src, row in table.items() if "/pax/" in src]
    assert pax and all(row["step_time_s"] is not None for row in pax)  # healthy: untouched
    before = os.path.getmtime(healthy)
    r = _cli("check", "--repair", "--db", db)
    assert r.exit_code == 0, r.stderr
    assert "repaired: " in r.stderr and "hint: llmbench ingest " in r.stderr
    assert not os.path.exists(stray) and os.path.getmtime(healthy) == before
    ingest(FILES, db, workers=1)
    assert _cli("check", "--db", db).exit_code == 0
    assert _content(db) == clean


def test_scratch_files_of_a_killed_writer_are_found_and_removed(tmp_path):
    """Spills and stdin copies a SIGKILLed ingest left beside the store: `check`
    names them, the next ingest removes them; a live writer's are left alone."""
    from llmbench.parts import temporary_path

    db = str(tmp_path / "s.db")
    ingest(BEFORE, db, workers=1)
    with Store(db) as s:
        folder = s.parts_dir
    dead = []
    for prefix, suffix in ((".llmbench-spill-", ".arrow"), (".llmbench-stdin-", "")):
        mine = temporary_path(folder, prefix, suffix)  # this (live) process's
        open(mine, "wb").close()
        head, _, tail = os.path.basename(mine).rpartition(f"-{os.getpid()}-")
        gone = os.path.join(folder, f"{head}-999999999-{tail}")  # no such process
        os.rename(mine, gone)
        dead.append(gone)
    live = temporary_path(folder, ".llmbench-spill-", ".arrow")
    open(live, "wb").close()
    r = _cli("check", "--db", db)
    assert r.exit_code == 1 and all(f"{p}: not listed (stray)" in r.stderr for p in dead)
    assert live not in r.stderr
    ingest(FILES, db, workers=1)
    assert not any(os.path.exists(p) for p in dead) and os.path.exists(live)
    os.remove(live)
    assert _cli("check", "--db", db).exit_code == 0


@pytest.fixture
def small_fs(tmp_path):
    """A real 3 MB file system (tmpfs) where the platform lets the tests mount one."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root, or no mount)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_real_full_disk_then_a_read_only_one(small_fs, tmp_path):
    """The scenario users met: a 3 MB file system holding a store of the fixtures,
    then a 20 MB Megatron log. Then the file system turns read-only: reading works,
    writing says why."""
    db = str(small_fs / "s.db")
    assert _cli("ingest", FIXTURES / "pax", "--db", db).exit_code == 0
    import random

    line = (
        " iteration {:8d}/  300000 | consumed samples: {:12d} | elapsed time per iteration "
        "(ms): {:.1f} | learning rate: {:.3E} | global batch size:  1536 | lm loss: "
        "{:.6E} | loss scale: 1.0 | grad norm: {:.3f} | number of skipped iterations:   0 |"
        " number of nan iterations:   0 | samples per second: {:.3f} | TFLOPs: {:.2f} |\n"
    )
    rng = random.Random(22)  # values as varied as a real run's: they do not compress away
    big = tmp_path / "big.log"
    with open(big, "w") as f:
        for i in range(1, 60_000):
            u = [rng.random() for _ in range(5)]
            f.write(
                line.format(
                    i,
                    i * 1536,
                    12000 + 900 * u[0],
                    u[1] * 1e-4,
                    2 + u[2],
                    u[3],
                    120 + u[4] * 10,
                    150 + u[0] * 5,
                )
            )
    assert big.stat().st_size > 20e6
    r = _cli("ingest", big, "--db", db)
    assert r.exit_code == 1 and "Traceback" not in r.output + r.stderr
    assert "no space left on the device (0 of 1 file(s) stored before it)" in r.stderr
    assert _cli("check", "--db", db).exit_code == 0
    assert [p for p in os.listdir(db + ".parts") if p.startswith(".")] == []
    remount = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True)
    if remount.returncode != 0:
        return
    r = _cli("report", "--db", db, "--format", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 5  # the five Paxml runs
    r = _cli("ingest", FIXTURES / "mllog", "--db", db)
    assert r.exit_code == 1 and "the file system is read-only" in r.stderr


def test_a_store_error_in_a_batch_with_parts_is_retried_file_by_file(tmp_path, clean, monkeypatch):
    """The batch is refused once (not by the disk): its parts get their temporary
    names back and every file is stored by the retry, one by one."""
    _small_limits(monkeypatch)
    db = str(tmp_path / "s.db")
    ingest(BEFORE, db, workers=1)
    real, calls = Store._put_files, [0]

    def once(self, files):
        calls[0] += 1
        if calls[0] == 1:
            raise sqlite3.IntegrityError("refused once")
        return real(self, files)

    monkeypatch.setattr(Store, "_put_files", once)
    report = ingest(FILES, db, workers=1)
    assert calls[0] > 1 and not report.failed
    assert _content(db) == clean
    with Store(db) as s:
        assert s.check() == []


def test_repair_under_the_lock_keeps_a_part_being_committed(tmp_path, monkeypatch):
    """A part renamed but not yet committed looks like a stray; a repair running
    then must wait for the lock and see it listed, not delete it."""
    import threading
    import time

    db = str(tmp_path / "s.db")
    ingest(BEFORE, db, workers=1)
    real = Store._commit
    published = threading.Event()

    def slow(self):
        if threading.current_thread().name == "writer":
            published.set()
            time.sleep(1.0)
        return real(self)

    monkeypatch.setattr(Store, "_commit", slow)
    writer = threading.Thread(
        target=ingest, args=([str(FIXTURES / "mllog")], db), kwargs={"workers": 1}, name="writer"
    )
    writer.start()
    assert published.wait(30)
    with Store(db) as s:
        assert s.repair() == []
    writer.join()
    with Store(db) as s:
        assert s.check() == []
        assert s.counts()["steps"] > 0


def test_repair_clears_runs_of_an_unknown_part(tmp_path):
    db = str(tmp_path / "s.db")
    ingest(BEFORE, db, workers=1)
    with Store(db) as s, s.transaction() as c:
        c.execute(
            'INSERT INTO run_parts (run_id, tbl, part, rows, "first") VALUES '
            "('deadbeef0000', 'steps', 'gone.steps.parquet', 3, 0)"
        )
    assert _cli("check", "--db", db).exit_code == 1
    assert _cli("check", "--repair", "--db", db).exit_code == 0


def test_a_parser_quoting_a_disk_error_costs_its_file_only(tmp_path, monkeypatch):
    """A log line saying "No space left on device" (crashed runs print it) that
    makes a parser raise is that file's failure, not a fault of this disk."""
    from llmbench.parsers.pax import PaxParser

    real = PaxParser.parse

    def quoting(self, lines):
        for record in real(self, lines):
            yield record
            raise ValueError("OSError: [Errno 28] No space left on device")

    monkeypatch.setattr(PaxParser, "parse", quoting)
    report = ingest([str(FIXTURES / "pax"), str(FIXTURES / "mllog")], str(tmp_path / "s.db"))
    assert report.count("failed") == 5 and report.count("ingested") >= 3
    assert all("parser pax failed" in str(r.error) for r in report.failed)


def test_figures_that_draw_no_steps_warn_of_no_runs_left_out(tmp_path):
    import warnings

    from llmbench.report import load_selection

    db = str(tmp_path / "s.db")
    ingest([str(FIXTURES / "megatron_deepspeed")], db, workers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view = load_selection(db, steps=False, steps_limit=2)
    assert view.steps is None and len(view.runs) > 2
