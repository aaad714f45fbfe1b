"""Measure llmbench ingest against references, in one run, on the same files.

    python benchmarks/generate.py /tmp/bench --size-mb 1024
    python benchmarks/run.py /tmp/bench [--repeat 3] [--workers N]

For each input it times whole processes (page cache warm: every file is read once
first) and reads their peak RSS (``wait4``):
- ``grep -c PATTERN`` (the floor: reading the bytes);
- a naive line-by-line Python loop (``re`` per line; ``json.loads`` for MLLOG),
  what a user writes by hand;
- the official ``mlperf_logging`` parser on the MLLOG input, if installed;
- ``llmbench ingest`` into a fresh store (``--workers 1`` and ``--workers N``);
- each ``round*/`` folder of small files: ingest with 1 and N workers, again
  with nothing changed, and ``mlperf`` scoring every folder from the store;
- reading ``store/llmbench.db`` (``generate.py --only store``, 10M step rows):
  ``report``, ``runs``, ``plot``, ``export`` (wall time and peak RSS);
- ``llmbench --help`` against ``python -c pass`` (start-up).
It prints MB/s, peak RSS and the ratios the targets are written in.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

NAIVE_MEGATRON = r"""
import re, sys
pat = re.compile(r"iteration\s+(\d+)/\s*\d+ \|(.*)")
rows = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = pat.search(line)
    if m:
        row = {"step": int(m.group(1))}
        for part in m.group(2).split("|"):
            k, _, v = part.partition(":")
            try:
                row[k.strip()] = float(v)
            except ValueError:
                pass
        rows.append(row)
print(len(rows))
"""
NAIVE_MLLOG = r"""
import json, sys
rows = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    at = line.find(":::MLLOG")
    if at >= 0:
        rows.append(json.loads(line[at + 8:]))
print(len(rows))
"""
OFFICIAL_MLLOG = r"""
import sys
from mlperf_logging.compliance_checker.mlp_parser import parse_file
lines, errors = parse_file(sys.argv[1], ruleset="4.1.0")
print(len(lines), len(errors))
"""


# byte-compiled modules, as an installed package has them (some shells disable it)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(cmd: list[str], repeat: int, env=ENV) -> tuple[float, float]:
    """(best wall seconds, peak RSS MB of that run) of a whole process."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        # output to a real file: GNU grep stops at the first match when it sees /dev/null
        with tempfile.TemporaryFile() as out:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            raise SystemExit(f"failed: {' '.join(cmd)}")
        if wall < best[0]:
            best = (wall, usage.ru_maxrss / 1024)
    return best


def ingest(target: str, workers: int, repeat: int) -> tuple[float, float]:
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        tmp = tempfile.mkdtemp(prefix="llmbench-bench-")
        try:
            cmd = [sys.executable, "-m", "llmbench", "ingest", target, "--db", f"{tmp}/b.db"]
            got = measure([*cmd, "--workers", str(workers)], 1)
        finally:
            shutil.rmtree(tmp)
        best = min(best, got)
    return best


def warm(path: str) -> None:
    subprocess.run(["cat", path] if os.path.isfile(path) else ["true"], stdout=subprocess.DEVNULL)
    if os.path.isdir(path):
        subprocess.run(["grep", "-rc", "MLLOG", path], stdout=subprocess.DEVNULL)


def row(name: str, size_mb: float, wall: float, rss: float, ref: float | None = None) -> None:
    ratio = f"{wall / ref:8.2f}x" if ref else " " * 9
    rate = f"{size_mb / wall:9.1f} MB/s" if size_mb else " " * 14
    print(f"  {name:<34} {wall:8.3f} s {rate} {rss:8.1f} MB {ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    py = sys.executable
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; best of {a.repeat}")
    print(f"  {'':<34} {'wall':>10} {'rate':>14} {'peak RSS':>11} {'ratio':>9}")
    for name, pattern, naive in (
        ("sparse.log", "elapsed time per iteration", NAIVE_MEGATRON),
        ("dense.log", "elapsed time per iteration", NAIVE_MEGATRON),
        ("mllog.log", ":::MLLOG", NAIVE_MLLOG),
    ):
        path = os.path.join(a.dir, name)
        if not os.path.exists(path):
            continue
        mb = os.path.getsize(path) / (1 << 20)
        warm(path)
        print(f"{name} ({mb:.0f} MB)")
        g = measure(["grep", "-c", pattern, path], a.repeat)
        row("grep -c (floor)", mb, *g)
        n = measure([py, "-c", naive, path], a.repeat)
        row("naive Python loop", mb, *n, ref=g[0])
        if name == "mllog.log":
            try:
                import mlperf_logging  # noqa: F401

                o = measure([py, "-c", OFFICIAL_MLLOG, path], 1)
                row("mlperf-logging parser", mb, *o, ref=g[0])
            except ImportError:
                o = None
                print("  mlperf-logging not installed: skipped")
        one = ingest(path, 1, a.repeat)
        row("llmbench ingest --workers 1", mb, *one, ref=g[0])
        print(f"    vs naive loop: {n[0] / one[0]:.2f}x faster", end="")
        if name == "mllog.log" and o:
            print(f"; vs mlperf-logging: {o[0] / one[0]:.2f}x faster", end="")
        print()
        if a.workers > 1:
            many = ingest(path, a.workers, a.repeat)
            row(f"llmbench ingest --workers {a.workers}", mb, *many, ref=g[0])
    for name in sorted(os.listdir(a.dir)):
        round_dir = os.path.join(a.dir, name)
        if name.startswith("round") and os.path.isdir(round_dir):
            measure_round(round_dir, a.workers, a.repeat)
    db = os.path.join(a.dir, "store", "llmbench.db")
    if os.path.exists(db):
        measure_reads(db, a.repeat)
    print("start-up")
    measure([py, "-m", "llmbench", "--help"], 1)  # writes the byte code
    base = measure([py, "-c", "pass"], a.repeat)
    row("python -c pass", 0, *base)
    helped = measure([py, "-m", "llmbench", "--help"], a.repeat)
    row("llmbench --help", 0, *helped, ref=base[0])


def measure_round(round_dir: str, workers: int, repeat: int) -> None:
    """A round of small files: ingest with 1 and ``workers`` workers, then again
    with nothing changed."""
    py = sys.executable
    files = sum(len(f) for _, _, f in os.walk(round_dir))
    mb = sum(os.path.getsize(os.path.join(d, x)) for d, _, fs in os.walk(round_dir) for x in fs) / (
        1 << 20
    )
    warm(round_dir)
    print(f"{os.path.basename(round_dir)}/ ({files} files, {mb:.0f} MB)")
    g = measure(["grep", "-rc", ":::MLLOG", round_dir], repeat)
    row("grep -rc (floor)", mb, *g)
    one = ingest(round_dir, 1, 1)
    row("llmbench ingest --workers 1", mb, *one, ref=g[0])
    if workers > 1:
        many = ingest(round_dir, workers, 1)
        row(f"llmbench ingest --workers {workers}", mb, *many, ref=g[0])
        print(f"    speed-up with {workers} workers: {one[0] / many[0]:.2f}x")
    tmp = tempfile.mkdtemp(prefix="llmbench-bench-")
    try:
        cmd = [py, "-m", "llmbench", "ingest", round_dir, "--db", f"{tmp}/b.db"]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        again = measure(cmd, repeat)
        row("re-ingest, nothing changed", mb, *again)
        scored = measure([py, "-m", "llmbench", "mlperf", "--db", f"{tmp}/b.db"], repeat)
        row("mlperf: score every folder (from the store)", 0, *scored)
    finally:
        shutil.rmtree(tmp)


def measure_reads(db: str, repeat: int) -> None:
    """The read commands over a big store: wall time and peak RSS (the store is
    only read; outputs go to a temporary folder)."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    steps = con.execute("SELECT COALESCE(SUM(rows), 0) FROM run_parts WHERE tbl = 'steps'")
    steps = steps.fetchone()[0]
    con.close()
    mb = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.dirname(db)) for f in fs
    )
    mb /= 1 << 20
    warm(os.path.dirname(db))
    print(f"store/ ({runs:,} runs, {steps:,} step rows, {mb:.0f} MB)")
    tmp = tempfile.mkdtemp(prefix="llmbench-bench-")
    base = [sys.executable, "-m", "llmbench"]
    try:
        for name, args, times in (
            ("runs", ["runs"], repeat),
            ("report", ["report"], repeat),
            ("plot scaling", ["plot", "scaling", "-o", f"{tmp}/s.png"], repeat),
            ("plot steps", ["plot", "steps", "-o", f"{tmp}/t.png"], repeat),
            ("plot loss", ["plot", "loss", "-o", f"{tmp}/l.png"], repeat),
            (
                "export steps parquet",
                ["export", "--format", "parquet", "-o", f"{tmp}/x.pq"],
                repeat,
            ),
            ("export steps csv", ["export", "--format", "csv", "-o", f"{tmp}/x.csv"], 1),
        ):
            row(name, 0, *measure([*base, *args, "--db", db], times))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
