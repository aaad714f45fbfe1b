"""The same ingest on a Dask cluster (a 2-worker LocalCluster here): the store it
writes equals a local ingest's row for row, and a store reads as Dask DataFrames.
Dask is an extra: the default path never imports it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import FIXTURES

pytest.importorskip("dask.distributed")

from llmbench.ingest import ingest  # noqa: E402
from llmbench.settings import Settings  # noqa: E402
from llmbench.store import Store, read_store  # noqa: E402


def _dump(db: str) -> dict[str, list]:
    """Every table, rows sorted, values as text (NaN equal to NaN)."""
    with Store(db) as s:
        out = {}
        for table in ("runs", "steps", "events"):
            df = s.table(table)
            out[table] = sorted(repr(r) for r in df.itertuples(index=False))
        out["files"] = sorted((f["path"], f["sha256"], f["status"], f["parser"]) for f in s.files())
    return out


def _same_store(paths, tmp_path, settings=None) -> dict[str, list]:
    local, dask = str(tmp_path / "local.db"), str(tmp_path / "dask.db")
    a = ingest(paths, local, settings=settings, workers=1)
    b = ingest(paths, dask, settings=settings, workers=2, engine="dask")
    assert [(r.path, r.status) for r in a.results] == [(r.path, r.status) for r in b.results]
    want, got = _dump(local), _dump(dask)
    for table in want:
        assert got[table] == want[table], table
    return want


def test_dask_ingest_equals_local_on_the_fixtures(tmp_path):
    settings = Settings.build(settings_file=str(FIXTURES / "settings.toml"))
    stored = _same_store([str(FIXTURES)], tmp_path, settings)
    assert len(stored["runs"]) == 54 and len(stored["steps"]) == 343


@pytest.mark.corpus
def test_dask_ingest_equals_local_on_the_mlperf_corpus(tmp_path, corpus):
    stored = _same_store([str(corpus / "mlperf")], tmp_path)
    assert len(stored["files"]) == len(list((corpus / "mlperf").rglob("result_*.txt")))


def test_a_store_reads_as_dask_dataframes(tmp_path):
    db = str(tmp_path / "s.db")
    ingest([str(FIXTURES / "megatron_deepspeed"), str(FIXTURES / "mllog")], db)
    pandas, dask = read_store(db), read_store(db, engine="dask")
    for table in ("steps", "events"):
        got = (
            getattr(dask, table).compute().sort_values(["run_id", "line_no"]).reset_index(drop=True)
        )
        want = getattr(pandas, table).sort_values(["run_id", "line_no"]).reset_index(drop=True)
        assert len(got) == len(want) > 0
        assert repr(got.to_dict("list")) == repr(want.to_dict("list")), table
    lazy = read_store(db, engine="polars").steps.collect()
    assert lazy.height == len(pandas.steps)


def test_the_default_path_imports_no_dask(tmp_path):
    code = (
        "import sys; from llmbench.ingest import ingest; from llmbench.report import summarize_store;"
        f"ingest([{str(FIXTURES / 'mllog')!r}], {str(tmp_path / 'x.db')!r}, workers=1);"
        f"summarize_store({str(tmp_path / 'x.db')!r});"
        "assert not [m for m in sys.modules if m.startswith('dask')], 'dask imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_a_worker_that_dies_costs_only_its_file(tmp_path):
    from llmbench.distributed import outcomes
    from llmbench.errors import InputError

    def _dies(args):  # nested: it goes to the workers by value (they cannot import tests)
        """A parse job whose worker process dies: always ('crash'), or the first time only."""
        import os

        name, marker = args
        if name == "crash" or (name == "once" and not os.path.exists(marker)):
            if marker:
                open(marker, "w").close()
            os._exit(1)
        return name

    def run(jobs):
        results, close = outcomes(jobs, _dies, None, 2)
        try:
            return list(results)
        finally:
            close()

    # its worker died once: run again on another worker, read whole
    assert run([("once", str(tmp_path / "died"))]) == ["once"]
    got = run([("a", ""), ("crash", ""), ("b", "")])
    assert got[0] == "a" and got[2] == "b"
    assert isinstance(got[1], InputError) and "crash" in str(got[1])
    assert "worker failed" in str(got[1]) and got[1].remedy
