"""The embedded store: one SQLite file (default ``./llmbench.db``).

Tables ``runs``, ``steps``, ``events`` (DESIGN.md) and ``files`` (what was
ingested from where, with size, mtime and sha256). Files are written in one
transaction or savepoint, alone or in batches: after a crash or Ctrl-C every file
is either fully stored or absent. The schema version lives in ``PRAGMA user_version``.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from .columns import FILE_COLUMNS, TABLES
from .errors import StoreError

SCHEMA_VERSION = 2
MAX_ATTACHED = 8  # spill files attached in one transaction (SQLite's limit is 10)
DEFAULT_DB = "llmbench.db"

# MIGRATIONS[v]: the statements that bring a store of version v - 1 to version v,
# run in one transaction (a store is migrated fully or not at all). A new store is
# made at SCHEMA_VERSION directly from columns.py.
MIGRATIONS: dict[int, list[str]] = {
    # v2: logged per-GPU tokens/s gets a steps column (it was kept in ``extra``)
    2: [
        'ALTER TABLE steps ADD COLUMN "tokens_per_s_per_gpu" REAL',
        "UPDATE steps SET tokens_per_s_per_gpu = json_extract(extra, '$.tokens_per_s_per_gpu'),"
        " extra = NULLIF(json_remove(extra, '$.tokens_per_s_per_gpu'), '{}')"
        " WHERE json_type(extra, '$.tokens_per_s_per_gpu') IN ('integer', 'real')",
    ],
}


def default_path() -> str:
    """``$LLMBENCH_DB`` or ``./llmbench.db``."""
    return os.environ.get("LLMBENCH_DB") or DEFAULT_DB


def _ddl() -> list[str]:
    stmts = []
    for name, cols in {**TABLES, "files": FILE_COLUMNS}.items():
        body = ", ".join(f'"{c}" {t}' for c, t in cols.items())
        if name == "runs":
            body = body.replace('"run_id" TEXT', '"run_id" TEXT PRIMARY KEY', 1)
        stmts.append(f'CREATE TABLE IF NOT EXISTS "{name}" ({body})')
    stmts += [
        "CREATE INDEX IF NOT EXISTS runs_source ON runs(source)",
        "CREATE INDEX IF NOT EXISTS steps_run ON steps(run_id, step)",
        "CREATE INDEX IF NOT EXISTS events_run ON events(run_id)",
        "CREATE INDEX IF NOT EXISTS files_sha ON files(sha256)",
    ]
    return stmts


def _quoted(cols) -> str:
    return ", ".join(f'"{c}"' for c in cols)


def _insert(table: str, cols, values: bool = True, verb: str = "INSERT") -> str:
    """``INSERT INTO "table" ("a", ...) VALUES (?, ...)`` (without VALUES: for a SELECT)."""
    cols = list(cols)
    sql = f'{verb} INTO "{table}" ({_quoted(cols)}) '
    return sql + f"VALUES ({', '.join('?' * len(cols))})" if values else sql


class Spill:
    """A temporary SQLite file holding one file's step and event rows while it is
    read (run id = the segment index), copied into a store by ``Store.replace_file``.
    Deleted by ``discard`` or when the last reference goes away; passing it to
    another process (pickle) hands the file over."""

    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="llmbench-part-", suffix=".db")
        os.close(fd)
        self._conn: sqlite3.Connection | None = sqlite3.connect(self.path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=OFF")
        self._conn.execute("PRAGMA synchronous=OFF")
        for name in ("steps", "events"):
            cols = {**TABLES[name], "run_id": "INTEGER"}
            body = ", ".join(f'"{c}" {t}' for c, t in cols.items())
            self._conn.execute(f'CREATE TABLE "{name}" ({body})')
        self._conn.execute("BEGIN")
        self._finalizer = weakref.finalize(self, _unlink, self.path)

    def add(self, steps: list[list], events: list[list]) -> None:
        assert self._conn is not None, "spill file already closed"
        for name, rows in (("steps", steps), ("events", events)):
            if rows:
                self._conn.executemany(_insert(name, TABLES[name]), rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.execute("COMMIT")
            self._conn.close()
            self._conn = None

    def select(self, name: str, schema: str = "main") -> str:
        """SQL reading table ``name`` of the spill file (attached as ``schema``), its
        run ids made from parameter 1 (``run_key[:12]``) and the segment index."""
        cols = [f'"{c}"' for c in TABLES[name]]
        cols[0] = "CASE run_id WHEN 0 THEN ?1 ELSE ?1 || '-' || run_id END"
        return f'SELECT {", ".join(cols)} FROM {schema}."{name}" ORDER BY rowid'

    def read(self, name: str, run_key: str) -> list[list]:
        """Every row of ``name`` with its run id."""
        self.close()
        conn = sqlite3.connect(self.path)
        try:
            return [list(r) for r in conn.execute(self.select(name), (run_key,))]
        finally:
            conn.close()

    def discard(self) -> None:
        self.close()
        self._finalizer()

    def __getstate__(self) -> dict:
        self.close()
        self._finalizer.detach()  # the receiver owns the file now
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._conn = None
        self._finalizer = weakref.finalize(self, _unlink, self.path)


def _unlink(path: str) -> None:
    with suppress(OSError):
        os.unlink(path)


class Store:
    """An open llmbench store. Use as a context manager or call close()."""

    def __init__(self, path: str | None = None, *, timeout: float = 60.0) -> None:
        self.path = path or default_path()
        self._savepoints = 0
        self._attached: list[str] = []  # spill files attached in this transaction
        try:
            self.conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open store: {e}", path=self.path) from None
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
            raise StoreError(f"cannot open store: {e}", path=self.path) from None
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise StoreError(
                f"not an llmbench store ({e})",
                path=self.path,
                remedy="point --db at another file, or move this one away",
            ) from None

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
            self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (Ctrl-C included).
        Inside another transaction it is a savepoint: its own rollback, the outer commit."""
        if self.conn.in_transaction:
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            self.conn.execute(f"SAVEPOINT {name}")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
                raise
            else:
                self.conn.execute(f"RELEASE {name}")
            return
        delay = 0.05
        for attempt in range(40):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
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
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            while self._attached:  # SQLite detaches only outside a transaction
                self.conn.execute(f"DETACH DATABASE {self._attached.pop()}")

    # -- files ---------------------------------------------------------------

    def file(self, path: str) -> dict[str, Any] | None:
        """The ``files`` row for ``path`` (absolute), or None."""
        found = self.rows_in_files([path])
        return found[0] if found else None

    def rows_in_files(self, paths: list[str]) -> list[dict[str, Any]]:
        """The ``files`` rows of ``paths`` (absolute)."""
        cols = list(FILE_COLUMNS)
        select = f"SELECT {_quoted(cols)} FROM files"
        return [dict(zip(cols, r, strict=True)) for r in self._select_in(select, "path", paths)]

    def _put_files(self, files: list[dict[str, Any]]) -> None:
        """Write ``files`` rows (missing columns NULL), stamped with the time now."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        rows = []
        for values in files:
            row = dict.fromkeys(FILE_COLUMNS)
            row.update(values, ingested_at=now)
            rows.append(list(row.values()))
        self.conn.executemany(_insert("files", FILE_COLUMNS, verb="INSERT OR REPLACE"), rows)

    def replace_file(self, file: dict[str, Any], runs: list[dict], rows) -> str | None:
        """Store one file's rows (``runs`` dicts, ``rows`` a ``frames.Rows`` after
        ``finish``), replacing whatever that path had, atomically.
        If another path already holds the same content, nothing is stored and that
        path is returned (checked under the write lock: two concurrent ingests of
        copies store one)."""
        return self.replace_files([(file, runs, rows)])[0]

    def replace_files(
        self, items: list[tuple[dict[str, Any], list[dict], Any]]
    ) -> list[str | None]:
        """``replace_file`` for many files in one transaction (a few statements in all,
        not per file): for each item, None when stored, else the path of a twin.
        On an error nothing of the batch is stored."""
        out: list[str | None] = []
        with self.transaction() as c:
            paths = [f["path"] for f, _, _ in items]
            shas = sorted({f["sha256"] for f, _, _ in items if f.get("sha256")})
            present = dict(self._select_in("SELECT path, sha256 FROM files", "path", paths))
            holders: dict[str, list[str]] = {}
            for path, sha in self._select_in(
                "SELECT path, sha256 FROM files", "sha256", shas, "AND status = 'ok'"
            ):
                holders.setdefault(sha, []).append(path)
            stored = []
            for item in items:
                path, sha = item[0]["path"], item[0].get("sha256")
                twin = next((p for p in holders.get(sha, ()) if p != path), None) if sha else None
                out.append(twin)
                if twin is not None:
                    continue
                stored.append(item)
                if path in present:  # its old content goes: no longer a twin of anything
                    self._delete_source(path)
                    if present[path] in holders and path in holders[present[path]]:
                        holders[present[path]].remove(path)
                if sha:
                    holders.setdefault(sha, []).append(path)
            run_cols = list(TABLES["runs"])
            c.executemany(
                _insert("runs", run_cols),
                ([r.get(k) for k in run_cols] for _, runs, _ in stored for r in runs),
            )
            spilled = [rows for _, _, rows in stored if rows.spill is not None]
            in_memory = [rows for _, _, rows in stored if rows.spill is None]
            for table in ("steps", "events"):
                c.executemany(
                    _insert(table, TABLES[table]),
                    (row for rows in in_memory for row in rows.table(table)),
                )
            for rows in spilled:
                self._copy_spill(rows)
            self._put_files([{**file, "status": "ok", "error": None} for file, _, _ in stored])
        return out

    def _copy_spill(self, rows) -> None:
        """Copy a spill file's rows in, by SQLite itself, never through Python (SQLite
        attaches at most 10 files in a transaction: past that, rows are read back)."""
        schema = None
        if len(self._attached) < MAX_ATTACHED:
            schema = f"part{len(self._attached)}"
            self.conn.execute(f"ATTACH DATABASE ? AS {schema}", (rows.spill.path,))
            self._attached.append(schema)
        for table in ("steps", "events"):
            if schema is not None:
                into = _insert(table, TABLES[table], values=False)
                self.conn.execute(into + rows.spill.select(table, schema), (rows.run_key,))
            else:
                self.conn.executemany(_insert(table, TABLES[table]), rows.table(table))

    def _select_in(self, select: str, column: str, values: list, also: str = "") -> list[tuple]:
        """Rows of ``select`` whose ``column`` is one of ``values`` (in chunks: SQLite
        bounds the number of parameters)."""
        out: list[tuple] = []
        for i in range(0, len(values), 500):
            chunk = values[i : i + 500]
            out += self.conn.execute(
                f'{select} WHERE "{column}" IN ({",".join("?" * len(chunk))}) {also}', chunk
            ).fetchall()
        return out

    def _delete_source(self, path: str) -> None:
        ids = "SELECT run_id FROM runs WHERE source = ?"
        self.conn.execute(f"DELETE FROM steps WHERE run_id IN ({ids})", (path,))
        self.conn.execute(f"DELETE FROM events WHERE run_id IN ({ids})", (path,))
        self.conn.execute("DELETE FROM runs WHERE source = ?", (path,))

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
        paths = self._targets(target)
        if not paths:
            raise StoreError(
                f"nothing stored matches {target!r}",
                remedy="give a path as ingested, a folder, or a run_id from `llmbench runs`",
            )
        with self.transaction() as c:
            for path in paths:
                self._delete_source(path)
                c.execute("DELETE FROM files WHERE path = ?", (path,))
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

    def check(self) -> list[tuple[str, str]]:
        """Verify the store: (kind, detail) for each finding. Kinds: ``integrity``
        (SQLite's integrity_check), ``orphan`` (rows without their run or file),
        ``changed`` (the source's size or mtime differ from when it was ingested),
        ``missing`` (the source is gone: its rows are kept)."""
        found: list[tuple[str, str]] = []
        for (msg,) in self.conn.execute("PRAGMA integrity_check").fetchall():
            if msg != "ok":
                found.append(("integrity", msg))
        for table in ("steps", "events"):
            (n,) = self.conn.execute(
                f'SELECT COUNT(*) FROM "{table}" WHERE run_id NOT IN (SELECT run_id FROM runs)'
            ).fetchone()
            if n:
                found.append(("orphan", f"{n} {table} row(s) whose run is not stored"))
        for (source,) in self.conn.execute(
            "SELECT DISTINCT source FROM runs WHERE source NOT IN "
            "(SELECT path FROM files WHERE status = 'ok')"
        ):
            found.append(("orphan", f"runs of {source} without a stored file"))
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

    # -- reading -------------------------------------------------------------

    def table(self, name: str, where: str = "", params: tuple = ()):
        """A canonical table as a typed DataFrame."""
        from .frames import dataframe

        if name not in TABLES:
            raise StoreError(f"unknown table {name!r} (tables: {', '.join(TABLES)})")
        cols = list(TABLES[name])
        order = {"runs": "source, segment", "steps": "run_id, step", "events": "run_id, line_no"}[
            name
        ]
        cur = self.conn.execute(
            f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{name}" {where} ORDER BY {order}',
            params,
        )
        rows = [dict(zip(cols, r, strict=True)) for r in cur]
        return dataframe(rows, TABLES[name])

    def rows_in(self, name: str, column: str, values: list, also: str = "") -> list[dict]:
        """Rows (dicts) of a canonical table whose ``column`` is one of ``values``,
        queried in chunks (SQLite bounds the number of parameters); ``also`` is
        more SQL for the WHERE clause."""
        cols = list(TABLES[name])
        select = f'SELECT {_quoted(cols)} FROM "{name}"'
        return [
            dict(zip(cols, r, strict=True)) for r in self._select_in(select, column, values, also)
        ]

    def counts(self) -> dict[str, int]:
        return {
            t: self.conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
            for t in (*TABLES, "files")
        }
