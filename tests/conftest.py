from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CORPUS = ROOT.parent / "shared" / "corpus"


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the long variants")


def pytest_configure(config):
    from hypothesis import settings

    # The suite's random tests are seeded: a run that passes once passes every time, and
    # no example found by an earlier run is replayed from a local database. ``--slow``
    # explores afresh (new examples each run); a failure it finds becomes a fixed test.
    settings.register_profile("seeded", derandomize=True, database=None)
    settings.register_profile("explore", derandomize=False)
    if config.getoption("--slow"):
        os.environ["LLMBENCH_SLOW_TESTS"] = "1"  # read by test modules as they are imported
    settings.load_profile("explore" if config.getoption("--slow") else "seeded")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="long variant: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path):
    """Every test runs in its own cwd with its own default store and no third-party plug-ins."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMBENCH_DB", raising=False)
    monkeypatch.setenv("LLMBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    from llmbench import registry

    registry.reset()
    yield
    registry.reset()


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is absent")
    return CORPUS


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


os.environ.setdefault("MPLBACKEND", "Agg")


def store_counts(db: str = "llmbench.db") -> dict[str, int]:
    """Rows of each table of the store at ``db`` (runs, steps, events, files)."""
    from llmbench.store import Store

    with Store(db) as s:
        return s.counts()
