"""A file with more rows than memory holds goes through a spill file: same rows,
file deleted afterwards, nothing left behind on failure."""

from __future__ import annotations

import glob
import os
import tempfile

import pytest

from llmbench import frames, rows
from llmbench.ingest import ingest, parse_file
from llmbench.store import Store


def _log(path, n: int, restart_at: int | None = None) -> None:
    lines = []
    for i in range(1, n + 1):
        step = i if restart_at is None or i < restart_at else i - restart_at + 1
        if i == restart_at:  # a relaunch prints its topology again: a new run
            lines.append(
                "using world size: 8, data-parallel-size: 8, tensor-model-parallel size: 1, "
                "pipeline-model-parallel size: 1 "
            )
        lines.append(
            f" iteration {step:8d}/ 1000 | consumed samples: {step * 8:12d} | "
            f"elapsed time per iteration (ms): {800 + i % 7:.1f} | learning rate: 1.000E-04 | "
            f"global batch size:     8 | lm loss: {6 - i / 1000:.6E} | loss scale: 1.0 | "
            f"grad norm: {1 + i % 3:.3f} | num zeros: 0.0 | TFLOPs: 100.00 |"
        )
        lines.append(
            f"[Rank 0] (after {step} iterations) memory (MB) | allocated: 1.0 | "
            "max allocated: 2.0 | reserved: 3.0 | max reserved: 4.0"
        )
    path.write_text("\n".join(lines) + "\n")


def _spills(*folders) -> set[str]:
    """Temporary files of llmbench (spills, parts being written) in the system's
    temporary folder and in ``folders``."""
    found = set(glob.glob(os.path.join(tempfile.gettempdir(), ".llmbench-spill-*")))
    for folder in folders:
        found |= set(glob.glob(os.path.join(folder, ".llmbench-spill-*")))
        found |= set(glob.glob(os.path.join(folder, ".tmp-*")))
    return found


def _dump(db) -> dict:
    with Store(str(db)) as s:
        return {t: s.table(t).to_dict("records") for t in ("runs", "steps", "events")}


def _same(a: list[dict], b: list[dict]) -> bool:
    return repr(a) == repr(b)  # repr: NaN == NaN


@pytest.mark.parametrize("restart_at", [None, 700])
def test_spilled_file_stores_the_same_rows(tmp_path, monkeypatch, restart_at):
    log = tmp_path / "big.log"
    _log(log, 1500, restart_at)
    before = _spills()
    ingest([str(log)], str(tmp_path / "memory.db"))
    monkeypatch.setattr(rows, "SPILL_ROWS", 100)
    parsed = parse_file(str(log))
    assert parsed.rows.spilled and all(os.path.exists(p) for p in parsed.rows.spills["steps"])
    assert parsed.rows.n_steps == 1500 and parsed.rows.n_events == 1500
    spill_paths = parsed.rows.spills["steps"] + parsed.rows.spills["events"]
    parsed.discard()
    assert not any(os.path.exists(p) for p in spill_paths)
    report = ingest([str(log)], str(tmp_path / "spilled.db"))
    assert report.count("ingested") == 1 and report.steps == 1500
    mem, spilled = _dump(tmp_path / "memory.db"), _dump(tmp_path / "spilled.db")
    assert len(mem["runs"]) == (2 if restart_at else 1)
    assert len(spilled["steps"]) == len(mem["steps"]) == 1500
    for table in ("runs", "steps", "events"):
        assert _same(spilled[table], mem[table]), table
    # the spilled file was written as its own part by the worker that read it
    with Store(str(tmp_path / "spilled.db")) as s:
        names = [r[0] for r in s.conn.execute("SELECT name FROM parts ORDER BY tbl")]
    assert len(names) == 2 and all(n.endswith((".events.parquet", ".steps.parquet")) for n in names)
    assert _spills(str(tmp_path / "spilled.db.parts")) == before  # every spill file deleted


@pytest.mark.parametrize("engine", ["python", "bulk"])
def test_spill_file_goes_when_the_parse_fails(tmp_path, monkeypatch, engine):
    log = tmp_path / "big.log"
    _log(log, 400)
    monkeypatch.setenv("LLMBENCH_BULK", "1" if engine == "bulk" else "0")
    monkeypatch.setattr(rows, "SPILL_ROWS", 50)
    spilled = []
    if engine == "python":  # a parser bug in the middle of the file
        real = frames.step_row
        calls = []

        def broken(s, seg, notes):
            calls.append(s)
            if len(calls) == 300:
                spilled.append(glob.glob(str(tmp_path / "x.db.parts" / ".llmbench-spill-*")))
                raise RuntimeError("parser bug")
            return real(s, seg, notes)

        monkeypatch.setattr(frames, "step_row", broken)
    else:  # the steps were read in bulk: a bug at the end of the file
        close = frames.Segmenter.close

        def broken_close(self):
            close(self)
            spilled.append(self.rows.spills["steps"] + self.rows.spills["events"])
            raise RuntimeError("parser bug")

        monkeypatch.setattr(frames.Segmenter, "close", broken_close)
    before = _spills()
    report = ingest([str(log)], str(tmp_path / "x.db"))
    assert report.count("failed") == 1
    assert "parser bug" in str(report.failed[0].error)
    assert spilled and spilled[0]  # it failed with rows spilled
    assert _spills(str(tmp_path / "x.db.parts")) == before


def test_duplicates_merge_only_while_held(tmp_path, monkeypatch):
    """A copy of one of the last MERGE_WINDOW steps adds the fields the first print lacks."""
    monkeypatch.setattr(frames, "MERGE_WINDOW", 4)
    from llmbench.parsing import Step

    records = [Step(i, {"loss": float(i)}, i) for i in range(1, 11)]
    records += [Step(9, {"grad_norm": 9.5}, 11), Step(2, {"grad_norm": 2.5}, 12)]
    sink = rows.Rows()
    segs, notes = frames.segment(records, sink)
    sink.finish({0: "r"})
    by_step = {r["step"]: r for r in sink.frame("steps").to_dicts()}
    # step 9 still held: its other kind of line is merged; step 2 is gone, only counted
    assert len(by_step) == 10 and (segs[0].merged, segs[0].duplicates) == (1, 1)
    assert by_step[9]["grad_norm"] == 9.5  # still held: merged
    assert by_step[2]["grad_norm"] is None  # written long before: the copy is only counted
