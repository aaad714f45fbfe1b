"""The embedded store: a SQLite catalog and immutable Parquet parts beside it.

``llmbench.db`` (default; ``--db``, ``$LLMBENCH_DB``) holds the small tables:
``files`` (what was ingested from where, with size, mtime and sha256), ``runs``,
``parts`` (the Parquet files of steps and events) and ``run_parts`` (which part
holds a run's rows of each table). Steps and events live in the parts, in
``llmbench.db.parts/`` (``llmbench.parts``). The catalog is the truth: a part
holds rows for readers only once the commit that lists it has happened, and a
row of a part counts only for the runs the catalog says it holds. Files are
written in one transaction (alone or in batches): after a crash or Ctrl-C every
file is either fully stored or absent. WAL mode: readers never wait for a writer.
The schema version lives in ``PRAGMA user_version``.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

from . import parts as partfiles
from .columns import FILE_COLUMNS, PART_TABLES, RUN_COLUMNS, TABLES, polars_schema
from .distributed import read_parts
from .errors import FileWarning, StoreError, UsageError, storage_error
from .frames import dataframe, to_pandas
from .logs import Logs
from .rows import id_frame

SCHEMA_VERSION = 5
DEFAULT_DB = "llmbench.db"
CATALOG = {
    "parts": {
        "name": "TEXT PRIMARY KEY",  # file name in the parts folder
        "tbl": "TEXT",  # steps | events
        "rows": "INTEGER",
        "bytes": "INTEGER",
        "created_at": "TEXT",
    },
    # a run's rows in a part: rows "first" .. "first" + "rows" - 1 (contiguous)
    "run_parts": {
        "run_id": "TEXT",
        "tbl": "TEXT",
        "part": "TEXT",
        "rows": "INTEGER",
        "first": "INTEGER",
    },
    # what a file's reading noticed (errors.FileWarning), replaced with its rows
    "warnings": {"path": "TEXT", "line": "INTEGER", "kind": "TEXT", "message": "TEXT"},
}
#: warnings stored per file at most (the rest are counted in one more)
MAX_WARNINGS = 1000


def default_path() -> str:
    """``$LLMBENCH_DB`` or ``./llmbench.db``."""
    return os.environ.get("LLMBENCH_DB") or DEFAULT_DB


def _create(table: str, cols: dict[str, str]) -> str:
    body = ", ".join(f'"{c}" {t}' for c, t in cols.items())
    if table == "runs":
        body = body.replace('"run_id" TEXT', '"run_id" TEXT PRIMARY KEY', 1)
    if table == "run_parts":  # a run's rows of a table may span several parts
        body += ", PRIMARY KEY (run_id, tbl, part)"
    return f'CREATE TABLE IF NOT EXISTS "{table}" ({body})'


def _ddl() -> list[str]:
    tables = {"runs": RUN_COLUMNS, "files": FILE_COLUMNS, **CATALOG}
    return [_create(name, cols) for name, cols in tables.items()] + [
        "CREATE INDEX IF NOT EXISTS runs_source ON runs(source)",
        "CREATE INDEX IF NOT EXISTS files_sha ON files(sha256)",
        "CREATE INDEX IF NOT EXISTS run_parts_part ON run_parts(part)",
        "CREATE INDEX IF NOT EXISTS warnings_path ON warnings(path)",
    ]


def _quoted(cols) -> str:
    return ", ".join(f'"{c}"' for c in cols)


def _insert(table: str, cols, verb: str = "INSERT") -> str:
    """``INSERT INTO "table" ("a", ...) VALUES (?, ...)``."""
    cols = list(cols)
    return f'{verb} INTO "{table}" ({_quoted(cols)}) VALUES ({", ".join("?" * len(cols))})'


def _migrate_v2_rows(store: Store) -> None:
    """Schema 3: steps and events move from SQLite tables into a Parquet part each."""
    import polars as pl

    c = store.conn
    for table in PART_TABLES:
        cols = list(TABLES[table])
        have = {r[1] for r in c.execute(f'PRAGMA table_info("{table}")')}
        if not have:
            continue
        select = ", ".join(f'"{k}"' if k in have else f'NULL AS "{k}"' for k in cols)
        cur = c.execute(f'SELECT {select} FROM "{table}" ORDER BY rowid')
        schema = polars_schema(TABLES[table])
        frames = []
        while chunk := cur.fetchmany(200_000):
            data = dict(zip(cols, zip(*chunk, strict=True), strict=True))
            frames.append(
                pl.DataFrame(
                    {k: pl.Series(k, v, dtype=schema[k], strict=False) for k, v in data.items()}
                )
            )
        if frames:
            store.add_part(partfiles.write(pl.concat(frames), store.parts_dir, table))
        c.execute(f'DROP TABLE "{table}"')


# MIGRATIONS[v]: what brings a store of version v - 1 to version v (SQL statements,
# or a function of the store), run in one transaction: a store is migrated fully or
# not at all. A new store is made at SCHEMA_VERSION directly from columns.py.
MIGRATIONS: dict[int, list[str] | Callable[[Store], None]] = {
    # v2: logged per-GPU tokens/s gets a steps column (it was kept in ``extra``)
    2: [
        'ALTER TABLE steps ADD COLUMN "tokens_per_s_per_gpu" REAL',
        "UPDATE steps SET tokens_per_s_per_gpu = json_extract(extra, '$.tokens_per_s_per_gpu'),"
        " extra = NULLIF(json_remove(extra, '$.tokens_per_s_per_gpu'), '{}')"
        " WHERE json_type(extra, '$.tokens_per_s_per_gpu') IN ('integer', 'real')",
    ],
    # v3: the catalog lists Parquet parts; steps and events rows move into them
    3: [_create(name, cols) for name, cols in CATALOG.items()]
    + ["CREATE INDEX IF NOT EXISTS run_parts_part ON run_parts(part)"],
    # v4: warnings are stored per file (files ingested before have none listed)
    4: [
        _create("warnings", CATALOG["warnings"]),
        "CREATE INDEX IF NOT EXISTS warnings_path ON warnings(path)",
    ],
    # v5: the settings given with a file are kept, and reused by an ingest that gives none
    5: ['ALTER TABLE files ADD COLUMN "settings" TEXT'],
}
MIGRATIONS_AFTER: dict[int, Callable[[Store], None]] = {3: _migrate_v2_rows}


def _capped(warnings, most: int) -> list:
    """The first ``most`` warnings, and one more that counts the rest."""
    if len(warnings) <= most:
        return list(warnings)
    rest = len(warnings) - most
    return [*warnings[:most], FileWarning(None, "input", f"{rest} more warning(s) not stored")]


class FileRows(NamedTuple):
    """What ``Store.replace_files`` stores for one file: its ``files`` row, its
    ``runs`` rows, and its steps and events, as a finished ``rows.Rows`` or as
    parts its reader already wrote (``parts.PendingPart``, one per table)."""

    file: dict[str, Any]
    runs: list[dict]
    rows: Any = None
    parts: tuple = ()
    warnings: list | tuple = ()  # errors.FileWarning


def _with_run_id(table: str, columns) -> list[str]:
    """``columns`` of ``table`` (all when None), ``run_id`` among them."""
    cols = list(columns) if columns is not None else list(TABLES[table])
    return cols if "run_id" in cols else ["run_id", *cols]


def _no_rows(table: str, cols: list[str]):
    """An empty polars frame of ``table``'s ``cols``, typed."""
    import polars as pl

    schema = polars_schema(TABLES[table])
    return pl.DataFrame(schema={c: schema[c] for c in cols})


def _read_only(folder: str) -> bool:
    """Whether ``folder`` is on a read-only file system (nobody writes the store
    there, so reading it as immutable is safe)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _refused_write(folder: str) -> StoreError:
    """The error of a write to a store in ``folder``, which may not be written."""
    import errno

    try:
        code = errno.EROFS if os.statvfs(folder).f_flag & os.ST_RDONLY else errno.EACCES
    except OSError:
        code = errno.EROFS
    fault = storage_error(OSError(code, os.strerror(code)), folder)
    assert fault is not None
    return fault


class Damage(NamedTuple):
    """A part that fails the catalog: its name, path, what is wrong, its runs."""

    part: str
    path: str
    problem: str
    runs: list[str]


class Store:
    """An open llmbench store. Use as a context manager or call close()."""

    def __init__(
        self, path: str | None = None, *, timeout: float = 60.0, create: bool = True
    ) -> None:
        """Open the store at ``path`` (default ``default_path()``); with
        ``create=False`` (readers) a missing store is a UsageError, not a new file."""
        self.path = path or default_path()
        if not create and not os.path.exists(self.path):
            raise UsageError(
                f"no store at {self.path}",
                remedy="ingest logs first (llmbench ingest PATH), or point --db at a store",
            )
        self.parts_dir = partfiles.directory(self.path)
        self._savepoints = 0
        self._published: list[str] = []  # parts renamed in the open transaction
        self._after_commit: list[str] = []  # parts to delete once it commits
        self._renamed: dict[str, str] = {}  # published name -> its temporary name
        self.read_only = False  # opened as it is on a read-only file system
        try:
            self.conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as e:
            fault = storage_error(e, self._folder)
            raise fault or StoreError(f"cannot open store: {e}", path=self.path) from None
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=OFF")
            self._migrate()
        except sqlite3.OperationalError as e:
            self.conn.close()
            if "locked" in str(e) or "busy" in str(e):
                raise StoreError(
                    "store is locked by another process",
                    path=self.path,
                    remedy="wait for the other llmbench to finish, then retry",
                ) from None
            if _read_only(self._folder):
                self._open_read_only()  # an archived store: reading works, writing says why
                return
            if not os.access(self._folder, os.W_OK):
                raise _refused_write(self._folder) from None
            fault = storage_error(e, self._folder)
            raise fault or StoreError(f"cannot open store: {e}", path=self.path) from None
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise StoreError(
                f"not an llmbench store ({e})",
                path=self.path,
                remedy="point --db at another file, or move this one away",
            ) from None

    def _open_read_only(self) -> None:
        """Open the store on a read-only file system as it is (SQLite cannot keep its
        WAL index there); a write then fails with StorageError."""
        if not os.path.exists(self.path):
            raise _refused_write(self._folder)
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?immutable=1"
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        self.read_only = True
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            self.conn.close()
            raise StoreError(
                f"store schema {version} cannot be read on a read-only file system "
                f"(this llmbench reads {SCHEMA_VERSION})",
                path=self.path,
                remedy="copy the store to a writable place and open it there",
            )

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store schema {version} was written by a newer llmbench (this one reads {SCHEMA_VERSION})",
                path=self.path,
                remedy="upgrade llmbench: pip install -U llmbench",
            )
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            # read again under the write lock: another process may have just migrated
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for stmt in _ddl():
                    self.conn.execute(stmt)
            else:
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    for stmt in MIGRATIONS[v]:
                        self.conn.execute(stmt)
                    if v in MIGRATIONS_AFTER:
                        MIGRATIONS_AFTER[v](self)
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (Ctrl-C included):
        parts published inside are deleted again, parts dropped are deleted after the
        commit. Inside another transaction it is a savepoint: its own rollback, the
        outer commit."""
        if self.read_only:
            raise _refused_write(self._folder)
        if self.conn.in_transaction:
            yield from self._savepoint()
            return
        self._begin()
        try:
            yield self.conn
            if self._published:  # the renames on disk before the commit that lists them
                partfiles.fsync(self.parts_dir)
            self._commit()
        except BaseException as e:
            if self._in_transaction():  # SQLite ends it itself on some faults
                self.conn.execute("ROLLBACK")
            elif self._committed(self._published):
                raise  # a Ctrl-C right after COMMIT: the parts it lists stay
            self._unpublish(self._published)
            fault = storage_error(e, self._folder) if isinstance(e, Exception) else None
            if fault is not None and fault is not e:
                raise fault from e
            raise
        else:
            partfiles.remove(self.parts_dir, self._after_commit)
        finally:
            self._published, self._after_commit, self._renamed = [], [], {}

    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        """A transaction inside another: its own rollback, the outer commit."""
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        published = len(self._published)
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield self.conn
        except BaseException:
            if self._in_transaction():  # SQLite ends it itself on some faults
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
            self._unpublish(self._published[published:])
            del self._published[published:]
            raise
        else:
            self.conn.execute(f"RELEASE {name}")

    def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting (up to about 30 s) for another writer."""
        delay = 0.05
        for attempt in range(40):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise StoreError(f"cannot write: {e}", path=self.path) from None
                if attempt == 39:
                    raise StoreError(
                        "store is locked by another process",
                        path=self.path,
                        remedy="wait for the other llmbench to finish, then retry",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _committed(self, published: list[str]) -> bool:
        """Whether the catalog lists the parts a transaction published: it committed
        (an exception can land after COMMIT returned, before the block ends)."""
        if not published:
            return False
        try:
            return bool(self._select_in("SELECT name FROM parts", "name", published[:1]))
        except sqlite3.Error:
            return False

    def _in_transaction(self) -> bool:
        """Whether a transaction is open. A Ctrl-C between a transaction's start and
        its block leaves the generator waiting; it is closed (GeneratorExit) when
        collected, maybe after the store was: a closed store has nothing to undo."""
        try:
            return self.conn.in_transaction
        except sqlite3.ProgrammingError:
            return False

    def _unpublish(self, names: list[str]) -> None:
        """Undo the renames of a rolled-back transaction: each part gets its temporary
        name back (its writer may try again, or discards it), or is deleted."""
        for name in names:
            tmp = self._renamed.pop(name, None)
            try:
                if tmp is None:
                    raise OSError
                os.replace(os.path.join(self.parts_dir, name), tmp)
            except OSError:
                partfiles.remove(self.parts_dir, [name])

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    @property
    def _folder(self) -> str:
        """Where the store writes: the folder of its catalog and parts."""
        return os.path.dirname(os.path.abspath(self.path))

    # -- files ---------------------------------------------------------------

    def file(self, path: str) -> dict[str, Any] | None:
        """The ``files`` row for ``path`` (absolute), or None."""
        found = self.files([path])
        return found[0] if found else None

    def files(self, paths: list[str] | None = None) -> list[dict[str, Any]]:
        """The ``files`` rows of ``paths`` (absolute), or every one."""
        cols = list(FILE_COLUMNS)
        select = f"SELECT {_quoted(cols)} FROM files"
        found = self._select_in(select, "path", paths) if paths is not None else self._all(select)
        return [dict(zip(cols, r, strict=True)) for r in found]

    def _all(self, select: str) -> list[tuple]:
        return self.conn.execute(select).fetchall()

    def _put_files(self, files: list[dict[str, Any]]) -> None:
        """Write ``files`` rows (missing columns NULL), stamped with the time now."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        rows = []
        for values in files:
            row = dict.fromkeys(FILE_COLUMNS)
            row.update(values, ingested_at=now)
            rows.append(list(row.values()))
        self.conn.executemany(_insert("files", FILE_COLUMNS, verb="INSERT OR REPLACE"), rows)

    # -- parts ---------------------------------------------------------------

    def add_part(self, part: partfiles.PendingPart | None, owner_keeps: bool = False) -> str | None:
        """Publish a pending part and list it with its runs (inside a transaction).
        If the transaction rolls back, the part is deleted, or with ``owner_keeps``
        (a parsed file's part) gets its temporary name back for its owner."""
        if part is None:
            return None
        try:
            name = partfiles.publish(part, self.parts_dir)
        except BaseException:
            if not owner_keeps:
                part.discard()  # never listed: gone with the transaction
            raise
        self._published.append(name)
        if owner_keeps:
            self._renamed[name] = part.tmp
        size = os.path.getsize(os.path.join(self.parts_dir, name))
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.conn.execute(
            _insert("parts", CATALOG["parts"]), (name, part.table, part.rows, size, now)
        )
        self.conn.executemany(
            _insert("run_parts", CATALOG["run_parts"], verb="INSERT OR REPLACE"),
            [(run_id, part.table, name, n, a) for run_id, (a, n) in part.spans.items()],
        )
        return name

    def _drop_unused_parts(self) -> None:
        """Parts no run refers to any more: unlisted now, deleted after the commit."""
        dead = [
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM parts WHERE name NOT IN (SELECT part FROM run_parts)"
            )
        ]
        if dead:
            self._select_in("DELETE FROM parts", "name", dead)
            self._after_commit += dead

    def clean_strays(self) -> list[str]:
        """Delete part files no catalog row lists (a crash between a part's rename and
        its commit) and temporary parts whose writer is gone; returns their names."""
        with self.transaction() as c:
            listed = {r[0] for r in c.execute("SELECT name FROM parts")}
            unlisted, abandoned = partfiles.strays(self.parts_dir, listed)
            partfiles.remove(self.parts_dir, unlisted + abandoned)
        return unlisted + abandoned

    # -- writing files -------------------------------------------------------

    def replace_file(self, item: FileRows) -> str | None:
        """Store one file's rows, replacing whatever that path had, atomically.
        If another path already holds the same content, nothing is stored and that
        path is returned (checked under the write lock: two concurrent ingests of
        copies store one)."""
        return self.replace_files([item])[0]

    def replace_files(self, items: list[FileRows]) -> list[str | None]:
        """``replace_file`` for many files in one transaction (a few statements and
        one part per table in all, not per file): for each item, None when stored,
        else the path of a twin. On an error nothing of the batch is stored
        (StoreError naming the first file)."""
        try:
            return self._replace_files(items)
        except sqlite3.Error as e:
            fault = storage_error(e, self._folder)
            if fault is not None:
                raise fault from e
            where = items[0].file["path"] if len(items) == 1 else self.path
            raise StoreError(f"the store refused the rows: {e}", path=where) from e

    def _replace_files(self, items: list[FileRows]) -> list[str | None]:
        out: list[str | None] = []
        with self.transaction() as c:
            paths = [it.file["path"] for it in items]
            shas = sorted({it.file["sha256"] for it in items if it.file.get("sha256")})
            present = dict(self._select_in("SELECT path, sha256 FROM files", "path", paths))
            holders: dict[str, list[str]] = {}
            for path, sha in self._select_in(
                "SELECT path, sha256 FROM files", "sha256", shas, "AND status = 'ok'"
            ):
                holders.setdefault(sha, []).append(path)
            stored: list[FileRows] = []
            for item in items:
                path, sha = item.file["path"], item.file.get("sha256")
                twin = next((p for p in holders.get(sha, ()) if p != path), None) if sha else None
                out.append(twin)
                if twin is not None:
                    continue
                stored.append(item)
                if path in present:  # its old content goes: no longer a twin of anything
                    self._delete_sources([path])
                    if present[path] in holders and path in holders[present[path]]:
                        holders[present[path]].remove(path)
                if sha:
                    holders.setdefault(sha, []).append(path)
            run_cols = list(RUN_COLUMNS)
            c.executemany(
                _insert("runs", run_cols),
                ([r.get(k) for k in run_cols] for it in stored for r in it.runs),
            )
            for table in PART_TABLES:
                self.add_part(self._batch_part(table, [it.rows for it in stored if it.rows]))
            for it in stored:
                for part in it.parts:
                    self.add_part(part, owner_keeps=True)
            self._put_files([{**it.file, "status": "ok", "error": None} for it in stored])
            c.executemany(
                _insert("warnings", CATALOG["warnings"]),
                (
                    (it.file["path"], *w)
                    for it in stored
                    for w in _capped(it.warnings, MAX_WARNINGS)
                ),
            )
            self._drop_unused_parts()
        for item, twin in zip(items, out, strict=True):
            if twin is not None:
                for part in item.parts:
                    part.discard()
        return out

    def _batch_part(self, table: str, sources: list) -> partfiles.PendingPart | None:
        """One part with ``table``'s rows of every ``rows.Rows`` in ``sources``."""
        if not any(r.n[table] for r in sources):
            return None
        import polars as pl

        lists: list[list] = []  # small files' rows, made one frame for the batch
        frames = []
        for r in sources:
            if not r.n[table]:
                continue
            got = r.id_rows(table)
            if got is None:
                frames.append(r.lazy(table))
            else:
                lists += got
        if lists:
            frames.append(id_frame(lists, table).lazy())
        frame = pl.concat(frames, how="vertical").collect()
        return partfiles.write(frame, self.parts_dir, table)

    def _select_in(self, select: str, column: str, values: Iterable, also: str = "") -> list[tuple]:
        """Rows of ``select`` whose ``column`` is one of ``values`` (in chunks: SQLite
        bounds the number of parameters)."""
        values = list(values)
        out: list[tuple] = []
        for i in range(0, len(values), 500):
            chunk = values[i : i + 500]
            out += self.conn.execute(
                f'{select} WHERE "{column}" IN ({",".join("?" * len(chunk))}) {also}', chunk
            ).fetchall()
        return out

    def _delete_sources(self, paths: list[str]) -> None:
        ids = [r[0] for r in self._select_in("SELECT run_id FROM runs", "source", paths)]
        self._select_in("DELETE FROM run_parts", "run_id", ids)
        self._select_in("DELETE FROM runs", "source", paths)
        self._select_in("DELETE FROM warnings", "path", paths)

    def mark_failed(self, file: dict[str, Any], error: str) -> None:
        """Record a failed read; rows stored from an earlier good version stay."""
        with self.transaction():
            old = self.file(file["path"])
            if old is not None and old["status"] == "ok":
                return  # keep the last good version and its identity
            self._put_files([{**file, "status": "failed", "error": error}])

    def touch(self, path: str, size: int, mtime: float) -> None:
        """Content unchanged but mtime moved: remember the new stat."""
        with self.transaction():
            self.conn.execute(
                "UPDATE files SET size = ?, mtime = ? WHERE path = ?", (size, mtime, path)
            )

    def forget(self, target: str) -> list[str]:
        """Remove what was ingested from a file: ``target`` is its path, a folder
        (every stored file under it) or a run_id (the file holding that run).
        Returns the paths removed; StoreError when nothing matches."""
        paths = self._matching(target)
        with self.transaction():
            self._delete_sources(paths)
            self._select_in("DELETE FROM files", "path", paths)
            self._drop_unused_parts()
        return paths

    def _matching(self, target: str) -> list[str]:
        """``_targets``, or StoreError when nothing matches."""
        paths = self._targets(target)
        if not paths:
            raise StoreError(
                f"nothing stored matches {target!r}",
                remedy="give a path as ingested, a folder, or a run_id from `llmbench runs`",
            )
        return paths

    def _targets(self, target: str) -> list[str]:
        full = target if target.startswith("<") else os.path.abspath(target)
        folder = full.rstrip("/") + "/"
        rows = self.conn.execute(
            "SELECT path FROM files WHERE path = ? OR substr(path, 1, ?) = ? ORDER BY path",
            (full, len(folder), folder),
        ).fetchall()
        if rows:
            return [r[0] for r in rows]
        rows = self.conn.execute(
            "SELECT DISTINCT source FROM runs WHERE substr(run_id, 1, ?) = ?",
            (len(target), target),
        ).fetchall()
        if len(rows) > 1:
            raise StoreError(
                f"run_id {target!r} matches runs of {len(rows)} files",
                remedy="give more digits of the run_id",
            )
        return [r[0] for r in rows]

    # -- checking ------------------------------------------------------------

    def check(self) -> list[tuple[str, str]]:
        """Verify the store: (kind, detail) for each finding. Kinds: ``integrity``
        (SQLite's integrity_check), ``orphan`` (catalog rows without their run or
        file), ``part`` (a listed part missing, unreadable or with other row counts
        than listed; a part file no catalog row lists), ``changed`` (the source's
        size or mtime differ from when it was ingested), ``missing`` (the source is
        gone: its rows are kept)."""
        found: list[tuple[str, str]] = []
        for (msg,) in self.conn.execute("PRAGMA integrity_check").fetchall():
            if msg != "ok":
                found.append(("integrity", msg))
        (n,) = self.conn.execute(
            "SELECT COUNT(*) FROM run_parts WHERE run_id NOT IN (SELECT run_id FROM runs)"
        ).fetchone()
        if n:
            found.append(("orphan", f"{n} part row(s) whose run is not stored"))
        for (source,) in self.conn.execute(
            "SELECT DISTINCT source FROM runs WHERE source NOT IN "
            "(SELECT path FROM files WHERE status = 'ok')"
        ):
            found.append(("orphan", f"runs of {source} without a stored file"))
        found += self._check_parts()
        for path, size, mtime in self.conn.execute(
            "SELECT path, size, mtime FROM files WHERE status = 'ok' ORDER BY path"
        ).fetchall():
            if path.startswith("<"):
                continue
            try:
                st = os.stat(path)
            except OSError:
                found.append(("missing", f"{path}: source gone (its rows are kept)"))
                continue
            if st.st_size != size or st.st_mtime != mtime:
                found.append(
                    ("changed", f"{path}: changed since it was ingested (run ingest again)")
                )
        return found

    def _check_parts(self) -> list[tuple[str, str]]:
        found = []
        for d in self.damage():
            runs = ", ".join(d.runs) or "no run"
            if d.problem == "unknown":
                found.append(("orphan", f"runs {runs} refer to unknown part {d.part}"))
            elif d.problem == "stray":
                found.append(("part", f"{d.path}: not listed (stray)"))
            else:
                found.append(("part", f"{d.path}: {d.problem} (runs {runs})"))
        return found

    def damage(self) -> list[Damage]:
        """The parts that fail their catalog: listed but missing, unreadable, holding
        other rows than listed, referred to but unknown, or on disk but not listed
        (strays); each with the runs whose rows it should hold."""
        import polars as pl

        found = []
        listed = dict(self.conn.execute("SELECT name, rows FROM parts").fetchall())
        live: dict[str, dict[str, int]] = {}
        for run_id, part, n in self.conn.execute("SELECT run_id, part, rows FROM run_parts"):
            live.setdefault(part, {})[run_id] = n
        for part in sorted(set(live) - set(listed)):
            found.append(Damage(part, "", "unknown", sorted(live[part])))
        for name, rows in sorted(listed.items()):
            path = os.path.join(self.parts_dir, name)
            runs = sorted(live.get(name, {}))
            try:
                counts = pl.scan_parquet(path).group_by("run_id").len().collect()
            except FileNotFoundError:
                found.append(Damage(name, path, "missing", runs))
                continue
            except Exception as e:  # noqa: BLE001 - any decoding failure means a damaged part
                found.append(Damage(name, path, f"unreadable, {type(e).__name__}", runs))
                continue
            have = dict(zip(counts["run_id"], counts["len"], strict=True))
            if sum(have.values()) != rows or any(
                have.get(r) != n for r, n in live.get(name, {}).items()
            ):
                found.append(Damage(name, path, "holds other rows than listed", runs))
        unlisted, abandoned = partfiles.strays(self.parts_dir, set(listed))
        for name in unlisted + abandoned:
            found.append(Damage(name, os.path.join(self.parts_dir, name), "stray", []))
        return found

    def sources_missing_parts(self) -> set[str]:
        """The stored files some of whose rows are in a part gone from the disk
        (cheap: one query and a stat per part), to be read again."""
        parts = [r[0] for r in self.conn.execute("SELECT name FROM parts")]
        gone = [p for p in parts if not os.path.exists(os.path.join(self.parts_dir, p))]
        if not gone:
            return set()
        ids = [r[0] for r in self._select_in("SELECT run_id FROM run_parts", "part", gone)]
        return {r[0] for r in self._select_in("SELECT source FROM runs", "run_id", ids)}

    def repair(self) -> list[str]:
        """Remove what damaged parts break: the stored files whose runs lost rows
        (their rows and catalog entries, so that ingesting them again reads them
        afresh), the damaged parts themselves and strays. Healthy runs are not
        touched. Returns the sources to ingest again."""
        with self.transaction():  # under the write lock: a part being committed is no stray
            damage = self.damage()
            runs = sorted({r for d in damage for r in d.runs})
            sources = sorted(
                {r[0] for r in self._select_in("SELECT source FROM runs", "run_id", runs)}
            )
            broken = [d.part for d in damage if d.problem != "stray"]
            self._delete_sources(sources)
            self._select_in("DELETE FROM files", "path", sources)
            self._select_in("DELETE FROM run_parts", "part", broken)  # runs without a source
            self._select_in("DELETE FROM parts", "name", broken)
            self._drop_unused_parts()
            self._after_commit += [d.part for d in damage if d.problem != "unknown"]
        return sources

    # -- reading -------------------------------------------------------------

    def runs(self, run_ids: Iterable[str] | None = None, sources: Iterable[str] | None = None):
        """The ``runs`` rows (of ``run_ids`` or ``sources`` when given) as a typed
        DataFrame, ordered by source and segment."""

        return dataframe(self.run_rows(run_ids, sources), RUN_COLUMNS)

    def run_rows(
        self, run_ids: Iterable[str] | None = None, sources: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """The ``runs`` rows as dicts of SQLite values (no pandas: fast to list)."""
        cols = list(RUN_COLUMNS)
        select = f"SELECT {_quoted(cols)} FROM runs"
        if run_ids is not None:
            found = self._select_in(select, "run_id", run_ids)
        elif sources is not None:
            found = self._select_in(select, "source", sources)
        else:
            found = self._all(select)
        found.sort(key=lambda r: (r[1] or "", r[2] or 0))
        return [dict(zip(cols, r, strict=True)) for r in found]

    def scan(
        self,
        table: str,
        run_ids: Iterable[str] | None = None,
        columns=None,
        keys: Iterable[str] | None = None,
    ):
        """A polars LazyFrame over ``table``'s rows (of ``run_ids`` when given; events
        with one of ``keys`` when given) in the parts that hold them, read as
        needed. StoreError names a missing part."""
        import polars as pl

        if table not in PART_TABLES:
            raise StoreError(f"unknown table {table!r} (tables: {', '.join(TABLES)})")
        cols = _with_run_id(table, columns)
        frames = []
        for part, ids in self.live_parts(table, run_ids).items():
            path = self._part_path(part, ids)
            frames.append(pl.scan_parquet(path).select(cols).filter(pl.col("run_id").is_in(ids)))
        if not frames:
            return _no_rows(table, cols).lazy()
        lf = pl.concat(frames, how="vertical")
        if keys is not None:
            lf = lf.filter(pl.col("key").is_in(list(keys)))
        return lf

    def _read_part(
        self, part: str, runs: list[str], columns, damaged: list | None, ids=None, span=None
    ):
        """A part's ``columns`` (of its rows ``span`` = (first, count), of ``ids``'
        rows, when given) as a polars frame; None when it is missing or unreadable
        and ``damaged`` notes it, else StoreError."""
        import polars as pl

        try:
            lf = pl.scan_parquet(self._part_path(part, runs))
            lf = (lf if span is None else lf.slice(*span)).select(columns)
            return (lf if ids is None else lf.filter(pl.col("run_id").is_in(ids))).collect()
        except (StoreError, OSError, pl.exceptions.PolarsError) as e:
            why = "missing" if isinstance(e, StoreError) else f"unreadable, {type(e).__name__}"
            if damaged is None:
                raise StoreError(
                    f"part {part} of run(s) {', '.join(sorted(runs)[:3])} is {why}",
                    path=self.path,
                    remedy="run `llmbench check --repair`, then ingest the sources it names",
                ) from None
            damaged.append(Damage(part, os.path.join(self.parts_dir, part), why, sorted(runs)))
            return None

    def _part_path(self, part: str, run_ids: Iterable[str] = ()) -> str:
        """The path of ``part``; StoreError naming it (and some of ``run_ids``, the
        runs it holds) when it is missing."""
        path = os.path.join(self.parts_dir, part)
        if not os.path.exists(path):
            runs = sorted(run_ids)
            of = f" of run(s) {', '.join(runs[:3])}" + (", ..." if len(runs) > 3 else "")
            raise StoreError(
                f"part {part}{of if runs else ''} is missing",
                path=self.path,
                remedy="run `llmbench check`, then ingest those runs' sources again",
            )
        return path

    def live_parts(self, table: str, run_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Each part of ``table`` (file name, in write order) and the runs (of
        ``run_ids`` when given) whose rows it holds (a part may also hold rows of
        runs replaced since: read only these)."""
        if run_ids is None:
            found = self.conn.execute(
                "SELECT part, run_id FROM run_parts WHERE tbl = ?", (table,)
            ).fetchall()
        else:
            found = self._select_in(
                "SELECT part, run_id FROM run_parts", "run_id", run_ids, f"AND tbl = '{table}'"
            )
        live: dict[str, list[str]] = {}
        for part, run_id in sorted(found):
            live.setdefault(part, []).append(run_id)
        return live

    def run_columns(
        self,
        table: str,
        run_ids: Iterable[str],
        columns: list[str],
        damaged: list[Damage] | None = None,
    ):
        """Yield (run_id, {column: numpy array}) for each of ``run_ids`` that has rows
        in ``table``, its rows in the order they were written (for steps: step
        order). Parts are read one at a time, only ``columns``, each run sliced
        from its part by the catalog's span: memory holds one part and the runs
        not yet complete. A part missing or unreadable raises StoreError, or with
        ``damaged`` (a list) is noted there and its runs are left out."""
        import numpy as np
        import polars as pl

        spans: dict[str, list[tuple[str, int, int]]] = {}
        for run_id, part, first, n in self._select_in(
            'SELECT run_id, part, "first", rows FROM run_parts',
            "run_id",
            run_ids,
            f"AND tbl = '{table}'",
        ):
            spans.setdefault(part, []).append((run_id, first, n))
        last_part = {}
        for part in sorted(spans):
            for run_id, _, _ in spans[part]:
                last_part[run_id] = part
        pending: dict[str, list[dict]] = {}
        lost: set[str] = set()
        for part in sorted(spans):
            runs = [r for r, _, _ in spans[part]]
            frame = self._read_part(part, runs, columns, damaged)
            if frame is None:
                lost.update(runs)
                continue
            arrays = {
                c: frame[c].cast(pl.Float64).fill_null(float("nan")).to_numpy() for c in columns
            }
            del frame
            for run_id, first, n in spans[part]:
                pending.setdefault(run_id, []).append(
                    {c: a[first : first + n] for c, a in arrays.items()}
                )
                if last_part[run_id] == part and run_id not in lost:
                    pieces = pending.pop(run_id)
                    yield (
                        run_id,
                        {
                            c: np.concatenate([p[c] for p in pieces])
                            if len(pieces) > 1
                            else pieces[0][c]
                            for c in columns
                        },
                    )

    def read(
        self,
        table: str,
        run_ids: Iterable[str] | None = None,
        columns=None,
        keys: Iterable[str] | None = None,
        damaged: list[Damage] | None = None,
    ):
        """``table``'s rows (see ``scan``) as a typed pandas DataFrame, in run and
        step (steps) or line (events) order. A part missing or unreadable raises
        StoreError, or with ``damaged`` (a list) is noted there and left out."""
        if table == "runs":
            return self.runs(run_ids)
        import polars as pl

        if table not in PART_TABLES:
            raise StoreError(f"unknown table {table!r} (tables: {', '.join(TABLES)})")
        order = ["run_id", "step", "line_no"] if table == "steps" else ["run_id", "line_no"]
        try:
            frame = self.scan(table, run_ids, columns, keys).collect()
        except (StoreError, pl.exceptions.PolarsError):
            frame = self._read_one_by_one(table, run_ids, columns, keys, damaged)
        frame = frame.sort([c for c in order if c in frame.columns], maintain_order=True)
        cols = {c: TABLES[table][c] for c in frame.columns}
        return to_pandas(frame, cols) if frame.height else dataframe([], cols)

    def _read_one_by_one(self, table, run_ids, columns, keys, damaged):
        """``scan``'s rows part by part: a damaged part raises StoreError naming it,
        or is noted in ``damaged`` and left out."""
        import polars as pl

        cols = _with_run_id(table, columns)
        frames = []
        for part, ids in self.live_parts(table, run_ids).items():
            frame = self._read_part(part, ids, cols, damaged, ids)
            if frame is not None:
                frames.append(frame)
        frame = pl.concat(frames) if frames else _no_rows(table, cols)
        return frame.filter(pl.col("key").is_in(list(keys))) if keys is not None else frame

    def chunks(self, table: str, rows: int = 100_000) -> Iterator:
        """``table`` whole as typed pandas DataFrames of about ``rows`` rows each (a
        run is never split), in ``read``'s order and with the dtypes ``read`` gives
        the whole table (an integer column missing a value anywhere is Int64 in
        every chunk): memory holds one chunk, whatever the table's size."""
        import polars as pl

        if table == "runs":
            yield self.runs()
            return
        if table not in PART_TABLES:
            raise StoreError(f"unknown table {table!r} (tables: {', '.join(TABLES)})")
        cols = TABLES[table]
        spans: dict[str, list[tuple[str, int, int]]] = {}
        for run_id, part, first, n in self.conn.execute(
            'SELECT run_id, part, "first", rows FROM run_parts WHERE tbl = ? ORDER BY run_id, part',
            (table,),
        ):
            spans.setdefault(run_id, []).append((part, first, n))
        ints = [c for c, sql in cols.items() if sql.startswith("INTEGER")]
        floats = self._with_gaps(table, ints)
        order = ["run_id", "step", "line_no"] if table == "steps" else ["run_id", "line_no"]
        batch: list[tuple[str, int, int]] = []
        held = runs_in_batch = 0
        ids = list(spans)
        for k, run_id in enumerate(ids):
            batch += spans[run_id]
            held += sum(n for *_, n in spans[run_id])
            runs_in_batch += 1
            if held < rows and k + 1 < len(ids):
                continue
            by_part: dict[str, tuple[int, int]] = {}  # the rows of the batch's runs
            for part, first, n in batch:
                lo, hi = by_part.get(part, (first, first + n))
                by_part[part] = (min(lo, first), max(hi, first + n))
            frames = []
            batch_ids = ids[k + 1 - runs_in_batch : k + 1]
            for part, (lo, hi) in sorted(by_part.items()):  # one part at a time
                frames.append(
                    self._read_part(part, batch_ids, list(cols), None, batch_ids, (lo, hi - lo))
                )
            frame = pl.concat(frames).sort(order, maintain_order=True)
            del frames
            yield to_pandas(frame, cols, floats)
            batch, held, runs_in_batch = [], 0, 0
        if not ids:
            yield dataframe([], cols)

    def _with_gaps(self, table: str, columns: list[str]) -> list[str]:
        """Which of ``columns`` miss a value in a stored row of ``table`` (part by
        part: memory holds one part's columns)."""
        import polars as pl

        gaps: set[str] = set()
        for part, ids in self.live_parts(table).items():
            left = [c for c in columns if c not in gaps]
            if not left:
                break
            path = os.path.join(self.parts_dir, part)
            if not os.path.exists(path):
                continue  # reported when its rows are read
            try:
                counts = (
                    pl.scan_parquet(path)
                    .filter(pl.col("run_id").is_in(ids))
                    .select(pl.col(c).null_count() for c in left)
                    .collect()
                )
            except pl.exceptions.PolarsError:
                continue  # unreadable: reported when its rows are read
            gaps.update(c for c in left if counts[c][0])
        return [c for c in columns if c in gaps]

    def table(self, name: str):
        """A canonical table, whole, as a typed DataFrame."""
        if name not in TABLES:
            raise StoreError(f"unknown table {name!r} (tables: {', '.join(TABLES)})")
        return self.read(name)

    def export_parquet(self, table: str, path: str) -> None:
        """Write ``table`` whole to one Parquet file at ``path`` (streaming)."""
        import polars as pl

        try:
            if table == "runs":  # from the catalog's rows: no pandas, no pyarrow
                rows = self.run_rows()
                pl.DataFrame(rows, schema=polars_schema(RUN_COLUMNS)).write_parquet(path)
            else:
                self.scan(table).sink_parquet(path)
        except pl.exceptions.PolarsError as e:
            fault = storage_error(e, os.path.dirname(os.path.abspath(path)))
            raise fault or StoreError(
                f"cannot read the {table} parts: {e}",
                path=self.path,
                remedy="run `llmbench check --repair`, then ingest the sources it names",
            ) from None

    def warnings(self, targets: Iterable[str] = ()) -> list[tuple[str, FileWarning]]:
        """(path, warning) for every stored warning of the files ``targets`` name
        (paths, folders or run ids, as ``forget`` reads them; all files when empty),
        in path and line order. StoreError when a target matches nothing."""
        paths = [p for t in targets for p in self._matching(t)]
        found = self.file_warnings(paths if targets else None)
        return [(path, w) for path in sorted(found) for w in found[path]]

    def file_warnings(self, paths: Iterable[str] | None = None) -> dict[str, list[FileWarning]]:
        """The stored warnings of the files at ``paths`` (absolute, as stored; every
        file when None), by path, in line order (those of the whole file last)."""
        select = "SELECT path, line, kind, message FROM warnings"
        rows = self._all(select) if paths is None else self._select_in(select, "path", paths)
        out: dict[str, list[FileWarning]] = {}
        for path, line, kind, message in rows:
            out.setdefault(path, []).append(FileWarning(line, kind, message))
        for found in out.values():
            found.sort(key=lambda w: (w.line is None, w.line or 0))
        return out

    def counts(self) -> dict[str, int]:
        """Rows of each table: runs, steps, events, files."""
        out = {"runs": self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]}
        for table in PART_TABLES:
            (n,) = self.conn.execute(
                "SELECT COALESCE(SUM(rows), 0) FROM run_parts WHERE tbl = ?", (table,)
            ).fetchone()
            out[table] = n
        out["files"] = self.conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        return out


ENGINES = ("pandas", "polars", "dask")


def read_store(path: str | None = None, engine: str = "pandas"):
    """A store's runs, steps and events (a ``Logs``, like ``read_logs`` gives):
    pandas DataFrames; polars LazyFrames of steps and events over the parts with
    ``engine="polars"``; Dask DataFrames with ``engine="dask"`` (the ``dask``
    extra). The runs are always a pandas DataFrame."""

    if engine not in ENGINES:
        raise StoreError(f"unknown engine {engine!r} (engines: {', '.join(ENGINES)})")
    path = path or default_path()
    if not os.path.exists(path):
        raise StoreError(
            "no store here", path=path, remedy="ingest logs first: llmbench ingest PATH"
        )
    with Store(path, create=False) as store:
        runs = store.runs()
        if engine == "pandas":
            steps, events = store.read("steps"), store.read("events")
        elif engine == "polars":
            steps, events = store.scan("steps"), store.scan("events")
        else:
            steps, events = read_parts(store, "steps"), read_parts(store, "events")
    return Logs(runs=runs, steps=steps, events=events, results=[])
