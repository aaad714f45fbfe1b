"""Render a DataFrame as a terminal table, markdown, CSV or JSON (text), and write
an output file (a table, a figure) atomically."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from .errors import storage_error

FORMATS = ("table", "markdown", "csv", "json")


def plain(value: Any) -> Any:
    """A JSON-ready Python value: numpy scalars unwrapped, NaN/NA -> None."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        with contextlib.suppress(ValueError, AttributeError):
            value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    pd = sys.modules.get("pandas")  # not loaded: the value cannot be one of its markers
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    return value


def records(df) -> list[dict[str, Any]]:
    """Rows of ``df`` as dicts of plain values (full float precision)."""
    cols = list(df.columns)
    return [
        dict(zip(cols, (plain(v) for v in row), strict=True)) for row in df.itertuples(index=False)
    ]


def write(chunks: Iterable, fmt: str, out: IO[str]) -> None:
    """DataFrames written to ``out`` as one CSV or JSON table (what ``render``
    gives for them concatenated, a newline after JSON), one chunk at a time."""
    if fmt == "csv":
        for k, df in enumerate(chunks):
            df.to_csv(out, index=False, header=k == 0)
        return
    if fmt != "json":
        raise ValueError(f"cannot stream format {fmt!r} (csv, json)")
    out.write("[")
    sep = "\n "
    for df in chunks:
        for rec in records(df):
            out.write(sep + json.dumps(rec, indent=1, default=str).replace("\n", "\n "))
            sep = ",\n "
    out.write("]\n" if sep == "\n " else "\n]\n")


def cell(value: Any) -> str:
    """A value as shown in table and markdown output."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        a = abs(value)
        if 1e-3 <= a < 1e15:
            digits = 4 if a < 1000 else 2
            return f"{value:.{digits}f}".rstrip("0").rstrip(".")
        return f"{value:.4g}"
    return str(value)


def _numeric(df, col: str) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(df[col].dtype)


def render(df, fmt: str = "table", **view: Any) -> str:
    """``df`` as text in ``fmt`` (one of FORMATS); ``view``: ``screen``'s options
    for a table or markdown (headers, width)."""
    if fmt == "json":
        return json.dumps(records(df), indent=1, default=str)
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    cols = [str(c) for c in df.columns]
    right = [_numeric(df, c) for c in df.columns]
    rows = [[cell(v) for v in r] for r in df.itertuples(index=False)]
    return screen(cols, rows, right, fmt, **view)


def screen(
    cols: list[str],
    rows: list[list[str]],
    right: list[bool],
    fmt: str = "table",
    *,
    labels: dict | None = None,
    width: int | None = None,
    everything: str = "--columns all",
) -> str:
    """Text cells as a terminal table or markdown: headers ``labels[column]``
    where given; a table wider than ``width`` is fitted (``fit``), with a last
    line naming the columns left out and the option (``everything``) that shows
    them."""
    dropped: list[str] = []
    if width and fmt == "table":
        cols, rows, right, dropped = fit(cols, rows, right, width, labels or {})
    text = layout([(labels or {}).get(c, c) for c in cols], rows, right, fmt)
    if dropped and rows:
        text += _more_columns(dropped, everything, width or 0)
    return text


def _more_columns(dropped: list[str], everything: str, width: int) -> str:
    """The line naming the columns a fitted table left out, within ``width``."""
    for k in range(len(dropped), 0, -1):
        names = ", ".join(dropped[:k]) + (", ..." if k < len(dropped) else "")
        line = f"({len(dropped)} more column(s): {names}; {everything})\n"
        if len(line) <= width + 1:
            return line
    return f"({len(dropped)} more column(s); {everything})\n"


def fit(cols: list[str], rows: list[list[str]], right: list[bool], width: int, labels: dict):
    """(columns, rows, right, the columns left out) of a table of text cells made
    to fit ``width`` characters: a ``source`` column is cut in the middle (down
    to 32 characters), then columns go from the right (the first two stay)."""

    def wide(k: int) -> int:
        return max([len(labels.get(cols[k], cols[k]))] + [len(r[k]) for r in rows])

    def total() -> int:
        return sum(wide(k) for k in range(len(cols))) + 2 * (len(cols) - 1)

    dropped: list[str] = []
    if "source" in cols and total() > width:
        k = cols.index("source")
        keep = max(32, wide(k) - (total() - width))
        for r in rows:
            r[k] = path_cut(r[k], keep)
    while total() > width and len(cols) > 2:
        dropped.insert(0, cols.pop())
        right = right[:-1]
        for r in rows:
            r.pop()
    return cols, rows, right, dropped


def path_cut(path: str, most: int) -> str:
    """``path`` in at most ``most`` characters: the folders cut in the middle
    ('...'), the file name kept whole while it fits, else cut in the middle too."""
    if len(path) <= most:
        return path
    folder, name = os.path.split(path)
    if folder and len(name) + 5 <= most:
        return folder[: most - len(name) - 4] + ".../" + name
    head = (most - 3) // 2
    return path[:head] + "..." + path[len(path) - (most - 3 - head) :]


def short_paths(paths: list[str]) -> list[str]:
    """Paths without the folders they all share (``<stdin>`` and the like kept)."""
    real = [p for p in paths if p and not p.startswith("<")]
    if len(set(real)) < 2:
        return [os.path.basename(p) if p in real else p for p in paths]
    try:
        common = os.path.commonpath(real)
    except ValueError:  # relative and absolute mixed
        return paths
    return [os.path.relpath(p, common) if p in real else p for p in paths]


def rows_text(cols: list[str], rows: list, right: list[bool], fmt: str = "table", **view) -> str:
    """``rows`` (sequences of plain values) in ``fmt`` (one of FORMATS), without
    pandas: JSON an array of objects, CSV with a header, else ``screen`` (with
    ``view``: headers, width)."""
    if fmt == "json":
        return json.dumps([dict(zip(cols, map(plain, r), strict=True)) for r in rows], indent=1)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(cols)
        writer.writerows(rows)
        return out.getvalue()
    return screen(cols, [[cell(v) for v in r] for r in rows], right, fmt, **view)


def layout(cols: list[str], rows, right: list[bool], fmt: str = "table") -> str:
    """``rows`` (sequences of values) as a terminal table or markdown, the columns
    flagged in ``right`` (numbers) right-aligned; no pandas needed."""
    rows = [[v if type(v) is str else cell(v) for v in row] for row in rows]
    if fmt == "markdown":
        out = ["| " + " | ".join(cols) + " |"]
        out.append("| " + " | ".join("---:" if r else "---" for r in right) + " |")
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out) + "\n"
    if fmt == "table":
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]

        def line(values: list[str]) -> str:
            return "  ".join(
                v.rjust(w) if r else v.ljust(w)
                for v, w, r in zip(values, widths, right, strict=True)
            ).rstrip()

        out = [line(cols), line(["-" * w for w in widths])] + [line(r) for r in rows]
        return "\n".join(out) + "\n"
    raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")


@contextlib.contextmanager
def atomic_output(path: str, prefix: str = ".llmbench-", suffix: str = "") -> Iterator[str]:
    """A temporary file beside ``path`` for the block to write; renamed to ``path``
    when the block ends, removed on any error. The file gets the mode any new file
    gets (the umask's; ``mkstemp`` alone would make it private). A write the disk
    refuses leaves as a StorageError naming the folder (one clear line, not a
    traceback)."""
    import tempfile  # start-up: the command line imports this module for its names

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        os.replace(tmp, path)
    except Exception as e:
        fault = storage_error(e, folder)
        if fault is None or fault is e:
            raise
        raise fault from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def relative(path: str) -> str:
    """``path`` as given from the working folder where it is under it, else as it is
    (``<stdin>`` and other names in brackets too)."""
    if path.startswith("<"):
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith("..") else rel
