from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from conftest import FIXTURES

from llmbench.errors import StoreError
from llmbench.ingest import ingest
from llmbench.store import SCHEMA_VERSION, Store

SEED2 = FIXTURES / "megatron_deepspeed" / "seed002-20b-fp16.log"
SEED0 = FIXTURES / "mllog" / "seed000-eos-gpt3.txt"


def counts(db="llmbench.db"):
    with Store(db) as s:
        return s.counts()


def test_crash_mid_file_leaves_store_as_it_was(monkeypatch):
    ingest([str(SEED2)])
    before = counts()
    parts_before = len(os.listdir("llmbench.db.parts"))
    real = Store.replace_files

    def crash(self, items):
        # fail after the old rows are deleted and half the new ones written
        def boom(*a, **k):
            raise KeyboardInterrupt

        file = items[0].file
        with pytest.raises(KeyboardInterrupt), self.transaction() as c:
            self._delete_sources([file["path"]])
            c.execute("INSERT INTO runs (run_id, source) VALUES ('half', ?)", (file["path"],))
            self.add_part(self._batch_part("events", [it.rows for it in items]))  # published
            assert len(os.listdir(self.parts_dir)) == parts_before + 1
            boom()
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "replace_files", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest([str(SEED0)])
    monkeypatch.setattr(Store, "replace_files", real)
    assert counts() == before
    con = sqlite3.connect("llmbench.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("select count(*) from runs where run_id = 'half'").fetchone()[0] == 0
    assert len(os.listdir("llmbench.db.parts")) == parts_before  # the published part is gone
    # re-running completes it
    report = ingest([str(SEED0), str(SEED2)])
    assert {r.path: r.status for r in report.results} == {
        str(SEED0): "ingested",
        str(SEED2): "unchanged",
    }


def test_failed_new_version_keeps_last_good_rows(tmp_path):
    log = tmp_path / "x.log"
    log.write_text(SEED2.read_text())
    ingest([str(log)])
    before = counts()
    log.write_bytes(b"\x00\x01binary now")
    report = ingest([str(log)])
    assert report.results[0].status == "failed"
    assert counts() == before


def test_newer_schema_is_refused(tmp_path):
    db = tmp_path / "new.db"
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer llmbench"):
        Store(str(db))


def test_not_a_database(tmp_path):
    db = tmp_path / "junk.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not an llmbench store"):
        Store(str(db))


def test_typed_frames_missing_is_nan_not_zero():
    ingest([str(SEED2), str(SEED0)])
    with Store() as s:
        steps = s.table("steps")
        runs = s.table("runs")
    # MLPerf tracked_stats print no step number: null, so the column is nullable
    assert str(steps["step"].dtype) == "Int64" and steps["step"].isna().any()
    assert steps["step"].dropna().min() == 1
    assert str(steps["step_time_s"].dtype) == "float64"
    mllog = steps[steps["consumed_tokens"] > 1e8]
    assert mllog["tflops_per_gpu_logged"].isna().all()
    assert str(runs["num_gpus"].dtype) == "Int64" and runs["num_gpus"].isna().sum() == 1
    assert repr(runs["num_gpus"].dropna().tolist()) == "[8]"  # 8, not 8.0


def _v1_store(path) -> None:
    """A store as llmbench 0.1 with schema 1 wrote it (steps without tokens_per_s_per_gpu)."""
    from llmbench.columns import TABLES

    con = sqlite3.connect(path)
    for name, cols in {**TABLES, "files": {"path": "TEXT PRIMARY KEY", "status": "TEXT"}}.items():
        cols = {c: t for c, t in cols.items() if c != "tokens_per_s_per_gpu"}
        con.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r} {t}" for c, t in cols.items())})')
    con.execute("INSERT INTO runs (run_id, source) VALUES ('r1', '/x.log')")
    con.executemany(
        "INSERT INTO steps (run_id, step, step_time_s, extra) VALUES ('r1', ?, 1.5, ?)",
        [
            (1, '{"tokens_per_s_per_gpu": 6000, "num_zeros": 0}'),
            (2, '{"tokens_per_s_per_gpu": 6123.25}'),
            (3, None),
            (4, '{"tokens_per_s_per_gpu": "n/a"}'),
        ],
    )
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()


def _steps(s) -> list[tuple]:
    df = s.read("steps")
    return [
        (int(st), None if t != t else t, x)
        for st, t, x in zip(df["step"], df["tokens_per_s_per_gpu"], df["extra"], strict=True)
    ]


def test_schema_1_store_is_migrated_forward(tmp_path):
    db = str(tmp_path / "v1.db")
    _v1_store(db)
    with Store(db) as s:
        rows = _steps(s)
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        tables = {r[0] for r in s.conn.execute("SELECT name FROM sqlite_master")}
        assert "steps" not in tables and "events" not in tables  # schema 3: rows in parts
        assert "warnings" in tables and s.warnings() == []  # schema 4: warnings per file
        files = {r[1] for r in s.conn.execute("PRAGMA table_info(files)")}
        assert "settings" in files  # schema 5: the settings given with a file
        assert s.counts()["steps"] == 4
    assert rows == [
        (1, 6000.0, '{"num_zeros":0}'),
        (2, 6123.25, None),
        (3, None, None),
        (4, None, '{"tokens_per_s_per_gpu": "n/a"}'),  # not a number: left where it was
    ]
    with Store(db) as s:  # opening again changes nothing
        assert _steps(s) == rows
        assert len(os.listdir(s.parts_dir)) == 1


def test_forget_and_check(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    a, b = logs / "a.log", logs / "b.log"
    a.write_text(SEED2.read_text())
    b.write_text(SEED2.read_text() + "\n")
    db = str(tmp_path / "s.db")
    ingest([str(logs)], db)
    with Store(db) as s:
        assert s.check() == []
        run_b = s.conn.execute("SELECT run_id FROM runs WHERE source = ?", (str(b),)).fetchone()[0]
        assert s.forget(run_b[:8]) == [str(b)]
        assert s.counts()["files"] == 1 and s.counts()["runs"] == 1
        with pytest.raises(StoreError, match="nothing stored matches"):
            s.forget(str(b))
        a.write_text(a.read_text() + "\n")
        b.unlink()
        assert [k for k, _ in s.check()] == ["changed"]
        s.conn.execute("INSERT INTO run_parts VALUES ('nope', 'events', 'gone.parquet', 1, 0)")
        found = s.check()
        assert sorted(k for k, _ in found) == ["changed", "orphan", "orphan"]
        assert any("unknown part gone.parquet" in d for _, d in found)
        s.conn.execute("DELETE FROM run_parts WHERE run_id = 'nope'")
        # a damaged part, a missing one and a stray file are named, with their runs
        (name,) = s.conn.execute("SELECT part FROM run_parts WHERE tbl = 'steps'").fetchone()
        part = os.path.join(s.parts_dir, name)
        good = Path(part).read_bytes()
        Path(part).write_bytes(good[: len(good) // 2])
        stray = os.path.join(s.parts_dir, "0" * 32 + ".steps.parquet")
        Path(stray).write_bytes(good)
        found = [d for k, d in s.check() if k == "part"]
        assert any("unreadable" in d and name in d for d in found)
        os.unlink(part)
        found = [d for k, d in s.check() if k == "part"]
        assert any(name in d and "missing" in d for d in found)
        assert any(stray in d and "stray" in d for d in found)
        with pytest.raises(StoreError, match="missing"):
            s.read("steps")
        Path(part).write_bytes(good)
        os.unlink(stray)
        assert [k for k, _ in s.check()] == ["changed"]
        assert s.forget(str(logs)) == [str(a)]
        assert s.counts()["runs"] == 0 and s.counts()["files"] == 0
        assert os.listdir(s.parts_dir) == []  # parts no run refers to are deleted


def test_a_file_the_store_refuses_costs_only_itself(tmp_path, monkeypatch):
    """A batch is written together; if that fails, file by file: the others land."""
    import shutil

    import llmbench.ingest as ingest_mod

    logs = []
    for name in ("a", "b", "c"):
        logs.append(tmp_path / f"{name}.log")
        shutil.copy(SEED2, logs[-1])
        logs[-1].write_text(logs[-1].read_text() + f"\n# {name}\n")  # distinct content
    real = ingest_mod.parse_file

    def bad_b(path, **kw):
        parsed = real(path, **kw)
        if path.endswith("b.log"):
            parsed.runs[0]["model"] = object()  # SQLite cannot bind it
        return parsed

    monkeypatch.setattr(ingest_mod, "parse_file", bad_b)
    db = str(tmp_path / "x.db")
    report = ingest([str(p) for p in logs], db)
    status = {r.path.rsplit("/", 1)[-1]: r.status for r in report.results}
    assert status == {"a.log": "ingested", "b.log": "failed", "c.log": "ingested"}
    assert "b.log" in str(report.failed[0].error)
    with Store(db) as s:
        sources = [r[0] for r in s.conn.execute("SELECT source FROM runs ORDER BY source")]
        steps = s.counts()["steps"]
    assert [p.rsplit("/", 1)[-1] for p in sources] == ["a.log", "c.log"]
    one = real(str(logs[0])).rows.n_steps
    assert steps == 2 * one > 0


def test_copies_in_one_batch_are_stored_once(tmp_path):
    import shutil

    a, b = tmp_path / "a.log", tmp_path / "b.log"
    shutil.copy(SEED2, a)
    shutil.copy(SEED2, b)
    report = ingest([str(a), str(b)], str(tmp_path / "x.db"))
    assert [r.status for r in report.results] == ["ingested", "duplicate"]
    assert [str(w) for w in report.results[1].warnings] == [
        f"same content as {a}: not stored twice"
    ]
    assert report.results[1].warnings[0].kind == "duplicate"
    # the first copy changes: the second is now the only holder of the old content
    a.write_text(a.read_text() + "\n# changed\n")
    report = ingest([str(a), str(b)], str(tmp_path / "x.db"))
    assert [r.status for r in report.results] == ["ingested", "ingested"]


def test_export_streams_chunks_equal_to_the_whole_table(tmp_path):
    """Store.chunks gives read()'s rows, order and dtypes a chunk at a time (an
    integer column missing a value in one run is float64 in every chunk), and
    export writes what rendering the whole table writes, via a temporary file."""
    import io
    import json

    import pandas as pd

    from llmbench.formats import render, write
    from llmbench.report import export

    db = str(tmp_path / "x.db")
    ingest([str(FIXTURES / "megatron_deepspeed"), str(FIXTURES / "mllog"), str(SEED2)], db)
    with Store(db) as store:
        for table in ("runs", "steps", "events"):
            whole = store.read(table)
            assert len(whole) > 10
            for rows in (1, 7, 100_000):
                chunks = list(store.chunks(table, rows))
                if table != "runs":  # a run is never split: one chunk per run at rows=1
                    want_n = whole["run_id"].nunique() if rows == 1 else 1
                    assert len(chunks) == want_n or rows == 7
                got = pd.concat(chunks, ignore_index=True)
                pd.testing.assert_frame_equal(got, whole.reset_index(drop=True))
                for fmt in ("csv", "json"):
                    buf = io.StringIO()
                    write(store.chunks(table, rows), fmt, buf)
                    want = render(whole, fmt)
                    assert buf.getvalue() == (want if want.endswith("\n") else want + "\n")
        gappy = [c for c in ("global_batch_size", "consumed_samples") if whole_has_gaps(store, c)]
        assert gappy  # the fixtures hold runs with and without these counters
        for df in store.chunks("steps", 1):
            assert all(str(df[c].dtype) == "Int64" for c in gappy)  # 64, never 64.0
        steps = store.read("steps")
    out = tmp_path / "steps.json"
    export(db, "steps", "json", str(out))
    assert len(json.loads(out.read_text())) == len(steps)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".llmbench-export")]
    with Store(db) as store:
        part = sorted(os.listdir(store.parts_dir))[0]
        os.remove(os.path.join(store.parts_dir, part))
    with pytest.raises(StoreError, match="is missing"):
        export(db, "steps", "csv", str(tmp_path / "broken.csv"))
    assert not (tmp_path / "broken.csv").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".llmbench-export")]


def whole_has_gaps(store: Store, column: str) -> bool:
    col = store.read("steps", columns=[column])[column]
    return bool(col.isna().any() and col.notna().any())


def test_a_transaction_left_unentered_is_collected_quietly_after_close(tmp_path):
    """Ctrl-C between a transaction's BEGIN and its block: the generator is never
    resumed; when it is collected after the store closed, nothing is printed."""
    import gc
    import sys

    store = Store(str(tmp_path / "s.db"))
    outer = store.transaction()
    outer.__enter__()
    inner = store.transaction()
    inner.__enter__()  # a savepoint, its block never run (the interrupt came here)
    outer.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
    store.close()
    seen = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        del inner
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert seen == []


def test_ctrl_c_right_after_commit_keeps_what_it_committed(monkeypatch):
    """A KeyboardInterrupt landing after COMMIT returned but before the transaction's
    block ended: the catalog lists the new parts, so they must stay on disk."""

    def commit_then_interrupt(self):
        self.conn.execute("COMMIT")
        if self._published:  # the commit that lists the file's parts
            raise KeyboardInterrupt

    real = Store._commit
    monkeypatch.setattr(Store, "_commit", commit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ingest([str(SEED2)])
    monkeypatch.setattr(Store, "_commit", real)
    with Store() as s:
        assert s.counts()["steps"] > 0
        assert [f for f in s.check() if f[0] == "part"] == []  # every listed part is there
    report = ingest([str(SEED2)])
    assert [r.status for r in report.results] == ["unchanged"]
