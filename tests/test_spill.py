"""A file with more rows than memory holds goes through a spill file: same rows,
file deleted afterwards, nothing left behind on failure."""

from __future__ import annotations

import glob
import os
import tempfile

import pytest

from llmbench import frames
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


def _spills() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "llmbench-part-*")))


def _dump(db) -> dict:
    with Store(str(db)) as s:
        return {
            t: s.conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
            for t in ("runs", "steps", "events")
        }


@pytest.mark.parametrize("restart_at", [None, 700])
def test_spilled_file_stores_the_same_rows(tmp_path, monkeypatch, restart_at):
    log = tmp_path / "big.log"
    _log(log, 1500, restart_at)
    before = _spills()
    ingest([str(log)], str(tmp_path / "memory.db"))
    monkeypatch.setattr(frames, "SPILL_ROWS", 100)
    parsed = parse_file(str(log))
    assert parsed.rows.spill is not None and os.path.exists(parsed.rows.spill.path)
    assert parsed.rows.n_steps == 1500 and parsed.rows.n_events == 1500
    spill_path = parsed.rows.spill.path
    parsed.discard()
    assert not os.path.exists(spill_path)
    report = ingest([str(log)], str(tmp_path / "spilled.db"))
    assert report.count("ingested") == 1 and report.steps == 1500
    mem, spilled = _dump(tmp_path / "memory.db"), _dump(tmp_path / "spilled.db")
    assert len(mem["runs"]) == (2 if restart_at else 1)
    assert len(spilled["steps"]) == len(mem["steps"]) == 1500
    for table in ("runs", "steps", "events"):
        assert spilled[table] == mem[table], table
    assert _spills() == before  # every spill file deleted


def test_spill_file_goes_when_the_parse_fails(tmp_path, monkeypatch):
    log = tmp_path / "big.log"
    _log(log, 400)
    monkeypatch.setattr(frames, "SPILL_ROWS", 50)
    real = frames.step_row
    calls = []

    def broken(s, seg, notes):
        calls.append(s)
        if len(calls) == 300:
            raise RuntimeError("parser bug")
        return real(s, seg, notes)

    monkeypatch.setattr(frames, "step_row", broken)
    before = _spills()
    report = ingest([str(log)], str(tmp_path / "x.db"))
    assert report.count("failed") == 1
    assert "parser bug" in str(report.failed[0].error)
    assert _spills() == before


def test_duplicates_merge_only_while_held(tmp_path, monkeypatch):
    """A copy of a step within MERGE_WINDOW adds the fields the first print lacks."""
    monkeypatch.setattr(frames, "MERGE_WINDOW", 4)
    from llmbench.parsing import Step

    records = [Step(i, {"loss": float(i)}, i) for i in range(1, 11)]
    records += [Step(9, {"grad_norm": 9.5}, 11), Step(2, {"grad_norm": 2.5}, 12)]
    rows = frames.Rows()
    segs, notes = frames.segment(records, rows)
    rows.finish({0: "r"})
    by_step = {r[1]: r for r in rows.table("steps")}
    gn = list(frames.STEP_COLUMNS).index("grad_norm")
    assert len(by_step) == 10 and segs[0].duplicates == 2
    assert by_step[9][gn] == 9.5  # still held: merged
    assert by_step[2][gn] is None  # written long before: the copy is only counted
