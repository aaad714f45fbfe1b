"""Crash safety and concurrency, with real processes: an ingest killed (SIGKILL) at
random points leaves a store that opens, passes ``PRAGMA integrity_check`` and holds
every file fully or not at all; four concurrent ingests of overlapping inputs store
every file exactly once. ``--slow`` runs more kill points."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES

SOURCES = [
    FIXTURES / "megatron_deepspeed" / "seed002-20b-fp16.log",
    FIXTURES / "messy" / "megatron-lm-8ranks-restart.log",
    FIXTURES / "mllog" / "seed000-eos-gpt3.txt",
    FIXTURES / "nemo" / "nemo2-llama3-8b.log",
    FIXTURES / "pax" / "fp8" / "175b" / "128" / "log.out",
    FIXTURES / "torchtitan" / "llama3-8b-4gpu.log",
]


def _inputs(folder: Path, n: int) -> list[Path]:
    """``n`` distinct log files (a copy number appended as a noise line)."""
    folder.mkdir()
    out = []
    for i in range(n):
        src = SOURCES[i % len(SOURCES)]
        p = folder / f"{i:03d}-{src.parent.name}.log"
        p.write_text(src.read_text() + f"\nend of copy {i}\n")
        out.append(p)
    return out


def _cmd(db: Path, *paths) -> list[str]:
    return [sys.executable, "-m", "llmbench", "ingest", "--db", str(db), *map(str, paths)]


# run from the store's folder: from the repository root, `-m llmbench` would import the
# source tree instead of the installed package
def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, cwd=Path(cmd[5]).parent, **kw)


def _popen(cmd: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=Path(cmd[5]).parent, **kw)


def _per_file(db: Path, strays_ok: bool = True) -> dict[str, tuple[int, int, int]]:
    """path -> (runs, steps, events) of every file the store says it holds, counted
    in the parts themselves; the store must pass ``check`` (a part file no catalog
    row lists, left by a kill between its rename and its commit, is allowed when
    ``strays_ok``: the next ingest removes it)."""
    from llmbench.store import Store

    with Store(str(db)) as s:  # it opens (a kill before the schema commit left an empty file)
        problems = [
            (k, d) for k, d in s.check() if k != "changed" and not (strays_ok and "(stray)" in d)
        ]
        assert problems == [], problems
        files = [f["path"] for f in s.files() if f["status"] == "ok"]
        runs = s.runs()
        steps, events = s.read("steps"), s.read("events")
    source = dict(zip(runs["run_id"], runs["source"], strict=True))
    assert set(runs["source"]) <= set(files)  # no stray runs
    out = {}
    for path in files:
        ids = {r for r, src in source.items() if src == path}
        out[path] = (
            len(ids),
            int(steps["run_id"].isin(ids).sum()),
            int(events["run_id"].isin(ids).sum()),
        )
    assert set(steps["run_id"]) <= set(source) and set(events["run_id"]) <= set(source)
    return out


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """120 input files and what a clean ingest stores for each."""
    root = tmp_path_factory.mktemp("archive")
    paths = _inputs(root / "logs", 120)
    ref = root / "ref.db"
    t0 = time.perf_counter()
    _run(_cmd(ref, root / "logs"))
    elapsed = time.perf_counter() - t0
    expected = _per_file(ref)
    assert len(expected) == 120 and all(n[0] >= 1 for n in expected.values())
    return paths, expected, elapsed


def test_sigkill_at_random_points_leaves_whole_files(archive, tmp_path, request):
    paths, expected, elapsed = archive
    rounds = 40 if request.config.getoption("--slow") else 10
    rng = random.Random(20261123)
    partial = 0
    for i in range(rounds):
        db = tmp_path / f"k{i}.db"
        workers = "2" if i % 3 == 2 else "1"
        proc = _popen(
            [*_cmd(db, *paths), "--workers", workers],
            env={**os.environ, "LLMBENCH_BATCH_FILES": "7"},  # many commit points
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # the kill reaches the worker processes too
        )
        time.sleep(rng.uniform(0.05, elapsed * 1.1))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if not db.exists():
            continue
        held = _per_file(db)
        for path, counts in held.items():
            assert counts == expected[path], (i, path)  # fully, never in part
        partial += 0 < len(held) < len(expected)  # some files stored, not all
        # running the ingest again completes the store
        if i % 4 == 0:
            _run(_cmd(db, *paths))
            assert _per_file(db, strays_ok=False) == expected  # and the strays are gone
    print(f"{rounds} kills, {partial} in the middle of an ingest, full ingest {elapsed:.2f} s")
    assert partial >= 1  # some kills did land in the middle of an ingest


def test_four_concurrent_ingests_store_every_file_once(archive, tmp_path):
    paths, expected, _ = archive
    db = tmp_path / "shared.db"
    n = len(paths)
    subsets = [[paths[(k * n // 4 + j) % n] for j in range(n // 2)] for k in range(4)]  # overlap
    procs = [
        _popen(_cmd(db, *s), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for s in subsets
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err and "locked" not in err, err
    assert _per_file(db, strays_ok=False) == expected  # every file once: none lost, none doubled
    from conftest import store_counts

    assert store_counts(str(db))["steps"] == sum(c[1] for c in expected.values())


def test_concurrent_copies_of_one_log_are_stored_once(tmp_path):
    text = SOURCES[0].read_text()
    copies = []
    for k in range(4):
        p = tmp_path / f"copy{k}.log"
        p.write_text(text)
        copies.append(p)
    db = tmp_path / "twins.db"
    procs = [_popen(_cmd(db, c), stderr=subprocess.PIPE, text=True) for c in copies]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    assert len(_per_file(db)) == 1
    assert sum("duplicate:" in e for e in errs) == 3
