"""Past one machine: the same parse jobs run by Dask workers (``ingest --engine dask``).

Each file is one task: a worker reads it with the same parser code as a local
ingest (``ingest.parse_job``); a file with many rows is written by the worker as
pending Parquet parts in the store's parts folder (which the workers must see: a
shared filesystem); the client commits the catalog, in batches, exactly as a
local ingest does. A worker that dies while reading a file costs that file only:
Dask runs the task again (once), and a file whose task fails twice is reported
as failed. Reading a store as Dask DataFrames: ``llmbench.read_store(db,
engine="dask")``. Dask is the optional extra ``llmbench[dask]``: nothing else
imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from .columns import TABLES
from .errors import InputError, UsageError
from .frames import dataframe, to_pandas

RETRIES = 1  # a task whose worker died runs once more, on another worker


def _client(scheduler: str | None, workers: int):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(
            "--engine dask needs Dask", remedy='pip install "llmbench[dask]"'
        ) from None
    if scheduler:
        try:
            return Client(scheduler, timeout="30s"), None
        except OSError as e:
            raise UsageError(
                f"cannot reach the Dask scheduler at {scheduler}: {e}",
                remedy="start one (dask scheduler) or leave --scheduler out for a local cluster",
            ) from None
    import dask

    # a worker holds one file at a time: one that dies takes no other file with it
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    return Client(cluster), cluster


def outcomes(
    jobs: list[tuple], job: Callable[[tuple], Any], scheduler: str | None, workers: int
) -> tuple[Iterator[Any], Callable[[], None]]:
    """(each job's outcome, in order; a function that closes the cluster)."""
    import logging

    # a dying worker is reported per file (below), not as the scheduler's tracebacks
    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL if not os.environ.get("LLMBENCH_DASK_LOG") else logging.INFO)
    client, cluster = _client(scheduler, workers)
    futures = client.map(job, jobs, pure=False, retries=RETRIES)

    def results() -> Iterator[Any]:
        for args, future in zip(jobs, futures, strict=True):
            try:
                yield future.result()
            except Exception as e:  # noqa: BLE001 - the worker died, or the task itself
                yield InputError(
                    f"Dask worker failed while reading it ({type(e).__name__}: {e})",
                    path=args[0],
                    remedy="run the ingest again: stored files are skipped",
                )

    def close(interrupted: bool = False) -> None:
        for f in futures:
            f.release()
        client.close()
        if cluster is not None:
            cluster.close()
        log.setLevel(level)

    return results(), close


def read_parts(store, table: str):
    """``table`` of a store as a Dask DataFrame: one partition per part, each part
    read with its live runs only (a run replaced by a later ingest may leave rows
    in an older part)."""
    try:
        import dask.dataframe as dd
    except ImportError:
        raise UsageError(
            'engine="dask" needs Dask', remedy='pip install "llmbench[dask]"'
        ) from None
    import os

    live = store.live_parts(table)
    meta = dataframe([], TABLES[table])
    if not live:
        return dd.from_pandas(meta, npartitions=1)
    paths = [(os.path.join(store.parts_dir, p), ids) for p, ids in sorted(live.items())]
    return dd.from_map(_read_part, paths, meta=meta, enforce_metadata=False)


def _read_part(spec: tuple[str, list[str]]):
    import polars as pl

    path, ids = spec
    frame = pl.read_parquet(path).filter(pl.col("run_id").is_in(ids))
    return to_pandas(frame, TABLES["steps" if "step_time_s" in frame.columns else "events"])
