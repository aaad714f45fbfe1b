"""`report --html`: one self-contained page (issue 21), read as text and, where a
Chromium is installed, in a real headless browser with the network shut off."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from llmbench.cli import cli

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    where = tmp_path_factory.mktemp("page")
    db = where / "s.db"
    assert (
        run("ingest", FIXTURES, "--db", db, "--settings", FIXTURES / "settings.toml").exit_code == 0
    )
    out = where / "r.html"
    r = run("report", "--db", db, "--html", out)
    assert r.exit_code == 0, r.output
    runs = json.loads(run("runs", "--db", db, "--format", "json").stdout)
    return out, runs


def _data(html: str) -> dict:
    m = re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_the_page_holds_every_run_with_provenance_and_fetches_nothing(page):
    path, runs = page
    html = path.read_text(encoding="utf-8")
    data = _data(html)
    assert len(data["rows"]) == len(runs) and len(data["provenance"]) == len(runs)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)  # nothing from a network
    assert "<link" not in html and html.count("<svg") == 3  # scaling, topology, steps
    cols = [c["name"] for c in data["columns"]]
    assert cols[:3] == ["run_id", "source", "model"] and "flags" in cols
    pax = next(i for i, s in enumerate(data["sources"]) if s.endswith("175b/128/log.out"))
    inputs = {k: (v, o) for k, v, o in data["provenance"][pax]}
    assert inputs["num_gpus"][0] == 128
    assert inputs["num_gpus"][1].endswith("settings.toml [files.'*/pax/fp8/175b/128/*']")
    assert inputs["formula"][0] == "megatron" and inputs["formula"][1].startswith("default")
    messy = next(i for i, s in enumerate(data["sources"]) if s.endswith("8ranks-restart.log"))
    assert "line 274: iteration 21 line is cut off: dropped" in data["warnings"][messy]
    flagged = [r for r in data["rows"] if r[data["flagsCol"]]]
    assert flagged  # the all-skipped fixture, shown, not hidden
    assert "llmbench report" in html and "made " in html  # who made it, when
    assert path.stat().st_size < 5_000_000


def test_an_empty_selection_makes_a_page_that_says_so(tmp_path):
    from llmbench.store import Store

    db = tmp_path / "empty.db"
    Store(str(db)).close()
    out = tmp_path / "e.html"
    assert run("report", "--db", db, "--html", out).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert 'id="empty"' in html and _data(html)["rows"] == []


def _browser() -> str | None:
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


@pytest.mark.skipif(_browser() is None, reason="no Chromium installed (.ci/run installs it)")
def test_in_a_headless_browser_offline_it_sorts_filters_and_draws(page, tmp_path):
    path, runs = page
    browser = _browser()
    common = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    done = subprocess.run(
        [*common, "--virtual-time-budget=5000", "--dump-dom", f"file://{path}#selftest"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    m = re.search(r'<pre id="selftest">(.*?)</pre>', done.stdout)
    assert m, done.stderr[-2000:]
    got = json.loads(m.group(1).replace("&quot;", '"'))
    assert got["rows"] == len(runs) and got["shownRows"] == min(len(runs), 100)
    assert got["sortedFirstGpus"] == got["maxGpus"] == 10752  # sorted descending by GPUs
    data = _data(path.read_text(encoding="utf-8"))
    pax = [r for r, s in zip(data["rows"], data["sources"], strict=True) if "pax" in s.lower()]
    assert got["filtered"] == len(pax) >= 5  # the Paxml runs (their paths hold "pax")
    assert got["details"] >= 10  # a run's inputs and where they came from
    assert got["figures"] == [True, True, True]  # every figure laid out, not blank
    errors = [ln for ln in done.stderr.splitlines() if "CONSOLE" in ln and "rror" in ln]
    assert not errors, errors
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*common, "--window-size=1400,1000", f"--screenshot={shot}", f"file://{path}"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.stat().st_size > 20_000  # pixels, not a blank page
