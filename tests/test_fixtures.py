"""Fixture files are tests: every ``fixtures/**/<case>.expected.json`` checks the
log beside it (``<case>.<ext>``). Drop a real-shaped log and its expected values
into ``fixtures/<format>/`` to add a test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from llmbench.ingest import parse_file
from llmbench.metrics import run_metrics
from llmbench.settings import Settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CASES = sorted(FIXTURES.rglob("*.expected.json"))


def _log_for(expected: Path) -> Path:
    stem = expected.name[: -len(".expected.json")]
    logs = [p for p in expected.parent.iterdir() if p.name.startswith(stem + ".") and p != expected]
    assert len(logs) == 1, f"{expected}: expected one log beside it, found {logs}"
    return logs[0]


def _same(actual, expected) -> bool:
    if isinstance(expected, float) and isinstance(actual, int | float):
        return math.isclose(actual, expected, rel_tol=1e-12, abs_tol=0)
    return actual == expected


@pytest.mark.parametrize("expected_path", CASES, ids=[str(p.relative_to(FIXTURES)) for p in CASES])
def test_fixture(expected_path: Path):
    exp = json.loads(expected_path.read_text())
    log = _log_for(expected_path)
    settings_file = exp.get("settings_file")
    settings = Settings.build(
        path_pattern=exp.get("path_pattern"),
        settings_file=str(expected_path.parent / settings_file) if settings_file else None,
    )
    parsed = parse_file(str(log), settings=settings)
    assert parsed.parser == exp["parser"]
    assert len(parsed.runs) == exp["runs"]
    assert len(parsed.steps) == exp["steps"]
    first = parsed.runs[0]["run_id"]
    for key, value in exp.get("run", {}).items():
        assert _same(parsed.runs[0][key], value), (key, parsed.runs[0][key], value)
    config = json.loads(parsed.runs[0]["config"] or "{}")
    for key, value in exp.get("config", {}).items():
        assert _same(config.get(key), value), (key, config.get(key), value)
    if exp.get("metrics"):
        got = run_metrics(parsed.runs[0], [s for s in parsed.steps if s["run_id"] == first], [])
        for key, value in exp["metrics"].items():
            assert _same(got[key], value), (key, got[key], value)
    for key, value in exp.get("last_run", {}).items():
        assert _same(parsed.runs[-1][key], value), (key, parsed.runs[-1][key], value)
    last = parsed.runs[-1]["run_id"]
    for which, run_id in (("step_values", first), ("last_run_step_values", last)):
        rows = [s for s in parsed.steps if s["run_id"] == run_id]
        by_step = {s["step"]: s for s in rows}
        for step, values in exp.get(which, {}).items():
            # "12": the row of step 12; "#3": the run's third row (a log without numbers)
            row = rows[int(step[1:]) - 1] if step.startswith("#") else by_step[int(step)]
            extra = json.loads(row["extra"] or "{}")
            for key, value in values.items():
                actual = row[key] if key in row else extra.get(key)
                assert _same(actual, value), (step, key, actual, value)
    # first and last step as printed: null where the log prints no step number
    for key, at in (("first_step", 0), ("last_step", -1)):
        if key in exp:
            assert [s["step"] for s in parsed.steps if s["run_id"] == first][at] == exp[key], key
    for key, n in exp.get("events_with_key", {}).items():
        assert sum(e["key"] == key for e in parsed.events) == n, key
    for key, n in exp.get("events", {}).items():
        assert sum(e["key"] == key for e in parsed.events) == n, key
    for key, rows in exp.get("event_rows", {}).items():  # every event of a key, its value
        assert [json.loads(e["value"]) for e in parsed.events if e["key"] == key] == rows, key
    for key, value in exp.get("event_values", {}).items():
        values = [json.loads(e["value"]) for e in parsed.events if e["key"] == "tracked_stats"]
        assert {key: value} in values
    assert len(parsed.warnings) >= exp.get("min_warnings", 0), parsed.warnings
    # provenance: every row says where it came from
    assert all(s["line_no"] >= 1 for s in parsed.steps)
    assert all(r["source"] == str(log.resolve()) for r in parsed.runs)
