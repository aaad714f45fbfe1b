"""The bulk engine: a parser's declared line shapes read over blocks of lines at once.

A file is read in blocks of whole lines (``reader.blocks``, 6 MiB). A block
becomes a polars Series, one row per physical line (so a row's index gives its
line number). The lines holding one of the parser's needles are kept; those of a
declared ``parsing.FieldShape`` whose head matches at the start are checked for
copies (``parsing.CopyWindow``'s rule, on the whole file) and decoded column by
column; every other kept line goes to the parser's Python code, in order, with
``Batch`` records standing for the decoded rows between them. A line the shape's
table does not cover exactly (a value that is no plain number, a cut-off line, a
field without a label, ...) is handed to the parser: the engine decodes only
what gives the same values as the parser's Python would, which the tests check
line by line (``tests/test_engine.py``). A block that polars cannot split exactly
(no free separator byte, or a line count that differs) is read by the Python
reader. Memory holds one block and its rows at a time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from .parsing import COPY_WINDOW, Batch, Field, FieldShape, Parser, _power_of_ten
from .reader import (
    ANSI_PATTERN,
    PREFIX_PATTERN,
    CheckedLine,
    Line,
    block_lines,
    blocks,
    iter_lines,
    segments,
)

BLOCK_SIZE = 6 << 20  # as fast as 8 MiB; peak RSS on a dense 1 GB log 322 -> 278 MB
SEPARATORS = b"\x1f\x1e\x1d\x1c\x01\x02\x03\x04"  # one that a block lacks splits it into lines
MAX_SIGNATURES = 16  # distinct label sequences of one shape decoded per block
# a JSON number: an ``extra`` value stored as printed
JSON_NUMBER = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"


def bulk_default() -> bool:
    """Read in bulk unless ``$LLMBENCH_BULK`` is 0 (every line by the parsers' Python)."""
    return os.environ.get("LLMBENCH_BULK", "1") != "0"


def items(
    parser: Parser, path: str, hasher=None, bulk: bool | None = None
) -> Iterator[Line | Batch]:
    """What ``parser.parse`` reads for ``path``: in bulk (when the parser declares
    shapes), lines and ``Batch`` records; else the lines with its needles."""
    if not (bulk_default() if bulk is None else bulk) or not parser.shapes:
        return iter_lines(path, hasher, needles=parser.needles)
    return _items(parser, path, hasher)


def _items(parser: Parser, path: str, hasher) -> Iterator[Line | Batch]:
    keys = tuple(n.encode() for n in parser.needles) if parser.needles else None
    # a declared field table is read by the engine; another shape brings its reader
    shapes = [FieldReader(s) if isinstance(s, FieldShape) else s.reader() for s in parser.shapes]
    for block, first, frame in _read_ahead(_kept_lines(parser, path, hasher)):
        if frame is None:
            yield from _python_block(block, first, keys, shapes)
        else:
            yield from _block_items(frame, shapes)


def _kept_lines(parser: Parser, path: str, hasher) -> Iterator[tuple[bytes | None, int, Any]]:
    """(None, lines before the block, its lines holding a needle: ``line_no``,
    ``text``), or (the block, lines before it, None) for a block the Python reader
    must read: polars cannot split it exactly, or a line of it holding a shape's
    needle has several ``\\r`` states. Runs ahead in the reading thread."""
    import polars as pl

    needles = "|".join(_escape(n) for n in parser.needles) if parser.needles else None
    shape_needles = "|".join(_escape(s.needle) for s in parser.shapes)
    no = 0  # lines before the block
    for block in blocks(path, hasher, BLOCK_SIZE):
        lines = _split(block)
        if lines is None:
            yield block, no, None
            no += block.count(b"\n") + 1
            continue
        first, no = no, no + len(lines)
        frame = pl.DataFrame({"text": lines}).lazy().with_row_index("line_no", offset=first + 1)
        if needles:
            frame = frame.filter(pl.col("text").str.contains(needles))
        frame = frame.with_columns(pl.col("line_no").cast(pl.Int64)).collect().rechunk()
        del lines
        text = frame["text"]
        if (
            b"\r" in block
            and (text.str.contains("\r", literal=True) & text.str.contains(shape_needles)).any()
        ):
            yield block, first, None
            continue
        yield None, first, frame


def _escape(literal: str) -> str:
    """``literal`` as a pattern both regex engines read the same way."""
    return "".join("\\" + c if c in "\\.^$|?*+()[]{}" else c for c in literal)


def _read_ahead(source: Iterator, depth: int = 2) -> Iterator:
    """``source``'s items, produced by a thread up to ``depth`` ahead (reading,
    decompressing and hashing the next block while this one is parsed)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def run() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    thread = threading.Thread(target=run, name="llmbench-read", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
        close = getattr(source, "close", None)
        if close is not None:
            close()


def _split(block: bytes):
    """The lines of ``block`` as a polars Series of str (row k = line k), or None
    when polars cannot split it exactly."""
    import polars as pl

    for k, byte in enumerate(SEPARATORS):
        sep = bytes([byte])
        if k and sep in block:  # the first is tried without a scan: a line holding it fails
            continue
        try:
            df = pl.read_csv(
                block,
                has_header=False,
                separator=sep.decode(),
                quote_char=None,
                new_columns=["text"],
                infer_schema=False,
                truncate_ragged_lines=False,
                encoding="utf8",  # a byte that is no UTF-8: the Python reader's replacement
                raise_if_empty=False,
            )
        except pl.exceptions.ComputeError as e:
            if "utf-8" in str(e).lower():
                return None
            continue
        except pl.exceptions.PolarsError:
            continue
        if df.width != 1:
            continue
        lines = df["text"].fill_null("").rechunk()  # one chunk: a pattern compiles once
        # every byte accounted for: the lines, their newlines, and a \r before each
        # newline that polars drops (\r\n)
        size = int(lines.str.len_bytes().sum()) + len(lines) - 1
        if b"\r" in block:
            size += block.count(b"\r\n")
        return lines if size == len(block) else None
    return None


def _python_block(block: bytes, no: int, keys, shapes: list[ShapeReader]) -> Iterator[Line | Batch]:
    """A block polars cannot split, read by the Python reader; the shapes' copy
    windows still decide the copies of their lines."""
    import polars as pl

    lines = list(block_lines(block, no, keys))
    owner: list[int | None] = []
    for line in lines:
        owner.append(next((k for k, sh in enumerate(shapes) if sh.record_key(line.text)), None))
    flags: dict[int, bool] = {}
    for k, shape in enumerate(shapes):
        idx = [i for i, o in enumerate(owner) if o == k]
        got = shape.copy_lines(
            [lines[i].no for i in idx], [shape.record_key(lines[i].text) or "" for i in idx]
        )
        flags.update(zip(idx, got, strict=True))
    for i, line in enumerate(lines):
        if owner[i] is None:
            yield line
        elif flags[i]:
            yield Batch(shapes[owner[i]].table, _empty_rows(), line.no, line.no, 1)
        else:
            yield CheckedLine(*line)
    del pl


def _block_items(frame, shapes: list[ShapeReader]) -> Iterator[Line | Batch]:
    """Lines and batches of one block's kept lines (``line_no``, ``text``), in order."""
    import numpy as np
    import polars as pl

    raw = frame["text"]
    rest = frame.filter(~raw.str.contains("\r", literal=True))
    if rest["text"].str.contains("\x1b", literal=True).any():
        rest = rest.with_columns(pl.col("text").str.replace_all(ANSI_PATTERN, ""))
    taken: list = []  # per shape: (its reader, rows per table, head lines, head lines left)
    for k, shape in enumerate(shapes):
        tables, marks, checked, rest = shape.take(rest, more=k + 1 < len(shapes))
        taken.append((shape, tables, marks, checked))
    every = frame["line_no"].to_numpy()
    marked = np.concatenate([m for _, _, m, _ in taken]) if taken else every[:0]
    left = (
        np.concatenate([np.asarray(c, dtype=np.int64) for *_, c in taken]) if taken else every[:0]
    )
    order = np.union1d(np.setdiff1d(every, marked, assume_unique=True), left)
    checked_nos = set(left.tolist())
    python = frame.filter(pl.col("line_no").is_in(order)) if len(order) else frame.clear()
    texts = dict(zip(python["line_no"].to_list(), python["text"].to_list(), strict=True))
    order_list = order.tolist()
    # a shape's rows and head lines between two python lines make one batch per table
    pieces: list[tuple[int, int, list]] = []  # (group, first line, batches)
    for shape, tables, marks, checked in taken:
        if checked:  # head lines left to the parser are its lines, not the batch's
            marks = np.setdiff1d(marks, np.asarray(checked, dtype=np.int64), assume_unique=True)
        if not len(marks):
            continue
        group = np.searchsorted(order, marks)
        starts = np.concatenate(([0], np.flatnonzero(np.diff(group)) + 1))
        stops = np.concatenate((starts[1:], [len(marks)]))
        tables = {shape.table: _empty_rows(), **tables}  # its batch stands for the copies
        nos = {t: f["line_no"].to_numpy() for t, f in tables.items()}
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            batches = []
            for table in sorted(tables, key=lambda t: t != shape.table):
                lo, hi = np.searchsorted(nos[table], [marks[a], marks[b - 1] + 1])
                rows = tables[table].slice(int(lo), int(hi - lo))
                if rows.height or table == shape.table:
                    n = (b - a) if table == shape.table else 0
                    batches.append(Batch(table, rows, int(marks[a]), int(marks[b - 1]), n))
            pieces.append((int(group[a]), int(marks[a]), batches))
    pieces.sort(key=lambda p: (p[0], p[1]))
    at = 0
    for g, _, batches in pieces:
        while at < g:
            no = order_list[at]
            yield from _python_line(no, texts[no], no in checked_nos)
            at += 1
        yield from batches
    while at < len(order_list):
        no = order_list[at]
        yield from _python_line(no, texts[no], no in checked_nos)
        at += 1


def _python_line(no: int, raw: str, checked: bool) -> Iterator[Line]:
    """A kept line as the reader gives it (launcher prefix, ANSI, ``\\r`` states)."""
    kind = CheckedLine if checked else Line
    for text, rank in segments(raw):
        yield kind(no, text, rank)


def strip_prefixes(texts):
    """(texts without launcher prefixes, rank of the innermost prefix) as the reader
    strips them (up to three prefixes, one after the other)."""
    import polars as pl

    rank = pl.Series("rank", [None] * len(texts), dtype=pl.Int64)
    for _ in range(3):
        has = texts.str.contains(PREFIX_PATTERN)
        if not has.any():
            break
        m = texts.str.extract_groups(PREFIX_PATTERN)
        found = pl.coalesce(m.struct.field("r1"), m.struct.field("r2"), m.struct.field("r3"))
        rank = pl.select(
            pl.when(has & found.is_not_null()).then(found.cast(pl.Int64)).otherwise(rank)
        ).to_series()
        texts = texts.str.replace(PREFIX_PATTERN, "")
    return texts.alias("text"), rank.alias("rank")


def _ungrouped(pattern: str) -> str:
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


class ShapeReader:
    """A declared shape at work over one file: the copy rule for its head lines,
    whose keys over the last COPY_WINDOW lines carry from block to block.
    Subclasses read a block's lines with ``take``; ``table`` is the table of the
    rows their head lines give (a batch of it stands for copies too)."""

    table = "steps"

    def __init__(self, needle: str) -> None:
        self.needle = needle
        self.carry = None  # (line numbers, key hashes, keys) of the last COPY_WINDOW lines

    def record_key(self, text: str) -> str | None:
        """The copy key of a cleaned line if it is one of this shape's head lines."""
        raise NotImplementedError

    def take(self, lines, more: bool = False):
        """(rows per table, line numbers of every head line, copies included, line
        numbers of head lines left to the parser, the lines that are not this
        shape's: only when ``more`` shapes follow)."""
        raise NotImplementedError

    def copy_lines(self, nos: list[int], keys: list[str]) -> list[bool]:
        """The copy rule line by line (for a block the Python reader read)."""
        import polars as pl

        flags = self._copies(pl.Series(nos, dtype=pl.Int64), pl.Series(keys, dtype=pl.String))
        return flags.to_list()

    def _copies(self, line_no, keys):
        """True for each head line (in line order) whose key is that of the head
        line before it with the same key, at most COPY_WINDOW lines above."""
        import numpy as np
        import polars as pl

        if not len(line_no):
            return pl.Series([], dtype=pl.Boolean)
        nos = line_no.to_numpy()
        hashed = keys.hash(seed=0x11B)
        h = hashed.to_numpy()
        if self.carry is None or not len(self.carry[0]):
            unique = hashed.is_unique().all()
        else:
            unique = pl.concat([pl.Series(self.carry[1]), hashed]).is_unique().all()
        if unique:  # no two keys alike: no copies (the common case, checked by hash)
            if self.carry is not None:
                c_nos, c_h, c_keys = self.carry
                nos, h, keys = (
                    np.concatenate([c_nos, nos]),
                    np.concatenate([c_h, h]),
                    pl.concat([c_keys, keys]),
                )
            keep = nos > nos[-1] - COPY_WINDOW
            start = int(np.argmax(keep))
            self.carry = (nos[start:], h[start:], keys.slice(start))
            return pl.Series([False] * len(line_no), dtype=pl.Boolean)
        if self.carry is not None:
            c_nos, c_h, c_keys = self.carry
            nos = np.concatenate([c_nos, nos])
            h = np.concatenate([c_h, h])
            keys = pl.concat([c_keys, keys])
        new = len(nos) - len(line_no)
        flags = np.zeros(len(nos), dtype=bool)
        order = np.lexsort((nos, h))  # by key hash, then line
        hs, ns = h[order], nos[order]
        cand = np.flatnonzero((hs[1:] == hs[:-1]) & (ns[1:] - ns[:-1] <= COPY_WINDOW)) + 1
        if len(cand):
            a = pl.Series(order[cand], dtype=pl.UInt32)
            b = pl.Series(order[cand - 1], dtype=pl.UInt32)
            same = (keys.gather(a) == keys.gather(b)).to_numpy()
            flags[order[cand[same]]] = True
        keep = nos > nos[-1] - COPY_WINDOW
        start = int(np.argmax(keep)) if len(keep) else 0
        self.carry = (nos[start:], h[start:], keys.slice(start))
        return pl.Series(flags[new:], dtype=pl.Boolean)


class FieldReader(ShapeReader):
    """A ``FieldShape`` at work: its head lines are found with their launcher
    prefixes (``prefixed``); a line's copy key is its record, from the head on
    (``record``), as the parser's ``CopyWindow`` keys it."""

    def __init__(self, shape: FieldShape) -> None:
        super().__init__(shape.needle)
        self.shape = shape
        body = shape.head.removeprefix("^").removeprefix("[ \\t]*")
        self.record = _ungrouped(body)
        # a head line: the head at the line's start and a field after it
        self.head_line = _ungrouped(shape.head) + f".*{_escape(shape.sep)}"
        self.prefixed = "^(?:" + _ungrouped(PREFIX_PATTERN)[1:] + "){0,3}" + self.head_line[1:]
        self._record_re = re.compile(self.record)
        self._head_re = re.compile(self.head_line)

    def record_key(self, text: str) -> str | None:
        if self.needle not in text or not self._head_re.match(text):
            return None
        m = self._record_re.search(text)
        return text[m.start() :] if m else None

    def take(self, lines, more: bool = False):
        import polars as pl

        s = self.shape
        cand = lines.filter(lines["text"].str.contains(s.needle, literal=True))
        plain = cand["text"].str.contains(self.head_line)  # no launcher prefix: the common case
        prefixed = not plain.all()
        heads = cand.filter(cand["text"].str.contains(self.prefixed)) if prefixed else cand
        rest = lines.filter(~pl.col("line_no").is_in(heads["line_no"].implode())) if more else None
        if not heads.height:
            return {}, heads["line_no"].to_numpy(), [], rest
        if prefixed:
            keys = heads["text"].str.slice(heads["text"].str.find(self.record))
        else:  # the record starts after the blanks the head allows
            keys = heads["text"].str.strip_chars_start(" \t")
        copy = self._copies(heads["line_no"], keys)
        fresh = heads.filter(~copy) if copy.any() else heads
        if prefixed:
            text, rank = strip_prefixes(fresh["text"])
            fresh = fresh.with_columns(text=text, rank=rank)
        else:
            fresh = fresh.with_columns(rank=pl.lit(None, dtype=pl.Int64))
        rows, ok = _decode(s, fresh)
        checked = fresh.filter(~ok)["line_no"].to_list() if not ok.all() else []
        return {"steps": rows}, heads["line_no"].to_numpy(), checked, rest


def _decode(shape: FieldShape, fresh):
    """(rows, ok mask) for head lines that are no copies: ``ok`` marks the lines
    decoded exactly (the rows, in line order); the others go to the parser."""
    import numpy as np
    import polars as pl

    ok_all = np.zeros(fresh.height, dtype=bool)
    frames = []
    if not fresh.height:
        return _empty_rows(), pl.Series(ok_all)
    left = np.ones(fresh.height, dtype=bool)
    for _ in range(MAX_SIGNATURES):
        idx = np.flatnonzero(left)
        if not len(idx):
            break
        sig = _signature(shape, fresh["text"][int(idx[0])])
        if sig is None:
            left[idx[0]] = False
            continue
        sub = fresh.filter(pl.Series(left))
        rows, ok = _decode_signature(shape, sig, sub)
        ok_np = ok.to_numpy()
        pos = idx[ok_np]
        ok_all[pos] = True
        left[pos] = False
        if not ok_np[0]:
            left[idx[0]] = False  # the line the signature came from is not exact
        if rows.height:
            frames.append(rows)
    if not frames:
        return _empty_rows(), pl.Series(ok_all)
    if len(frames) == 1:
        return frames[0], pl.Series(ok_all)
    return pl.concat(frames, how="diagonal_relaxed").sort("line_no"), pl.Series(ok_all)


def _empty_rows():
    import polars as pl

    return pl.DataFrame(schema={"step": pl.Int64, "line_no": pl.Int64, "rank": pl.Int64})


class _Signature:
    """One sequence of field labels: per field, the text before its value, the
    column (or extra key) and how to read the value."""

    def __init__(self, n: int, prefixes: list[str], targets: list[tuple[str, Field | None]]):
        self.n = n  # separators in the line
        self.prefixes = prefixes
        self.targets = targets  # (column or extra key, Field for a column / None for extra)


def _signature(shape: FieldShape, text: str) -> _Signature | None:
    """The label sequence of ``text``, or None when no line of it can be exact."""
    parts = text.split(shape.sep)
    if parts[-1].strip():  # no trailing separator: a cut-off line or another form
        return None
    prefixes, targets, seen = [], [], set()
    for field_text in parts[1:-1]:
        colon = field_text.rfind(":")
        if colon < 0:
            return None
        prefix = field_text[: colon + 1]
        label = prefix[:-1].strip()
        field = shape.fields.get(label)
        if field is None or field.column in shape.extra:
            key, target = (label if field is None else field.column), None
        else:
            key, target = field.column, field
        if key in seen or (
            target is not None and target.scale != 1.0 and _power_of_ten(target.scale) is None
        ):
            return None
        seen.add(key)
        prefixes.append(prefix)
        targets.append((key, target))
    return _Signature(len(parts) - 1, prefixes, targets)


# an integral zero printed with a minus: Python reads 0.0 (int("-0")), polars -0.0
NEGATIVE_ZERO = r"-0+(?:[^0-9.eE]|$)"


def _field_exprs(sig: _Signature, names: list[str]):
    """(each field's text and number, computed once; the checks a line must pass to
    be decoded exactly; the column expressions; the extra keys and their text
    columns), for the fields of ``sig`` split into columns ``names``."""
    import polars as pl

    stage, checks, out_cols, extras = [], [], [], []
    floats = False
    for i, (prefix, (key, field)) in enumerate(zip(sig.prefixes, sig.targets, strict=True), 1):
        v = pl.col(names[i]).str.strip_prefix(prefix).str.strip_chars(" ")
        t, x = f"_t{i}", f"_x{i}"
        if field is None:  # kept in extra as printed
            stage += [v.alias(t), v.cast(pl.Float64, strict=False).alias(x)]
            checks += [pl.col(t).str.contains(JSON_NUMBER), pl.col(x).is_finite()]
            extras.append((key, t))
            continue
        if field.scale != 1.0:  # a decimal shift of the printed digits, never a multiply
            e = _power_of_ten(field.scale)
            stage.append((v + f"e{e}").cast(pl.Float64, strict=False).alias(x))
            checks.append(pl.col(x).is_finite())
        elif field.kind is int:
            stage.append(v.cast(pl.Int64, strict=False).alias(x))
            checks.append(pl.col(x).is_not_null())
        else:
            stage.append(v.cast(pl.Float64, strict=False).alias(x))
            checks.append(pl.col(x).is_finite())
            floats = True
        if field.column == "step_time_s":
            checks.append(pl.col(x) > 0)
        out_cols.append(pl.col(x).alias(field.column))
    if floats:
        checks.append(~pl.col("text").str.contains(NEGATIVE_ZERO))
    return stage, checks, out_cols, extras


def _extra_json(extras: list[tuple[str, str]]):
    """The ``extra`` column: a JSON object of the extra fields as printed, keys sorted."""
    import polars as pl

    pieces: list[Any] = []
    for k, (key, t) in enumerate(sorted(extras)):
        pieces.append(pl.lit(("{" if k == 0 else ",") + json.dumps(key, ensure_ascii=False) + ":"))
        pieces.append(pl.col(t))
    pieces.append(pl.lit("}"))
    return pl.concat_str(pieces).alias("extra")


def _decode_signature(shape: FieldShape, sig: _Signature, sub):
    """(rows of the lines of ``sub`` that have signature ``sig`` and decode exactly,
    their mask over ``sub``). A field whose label differs keeps its label after
    ``strip_prefix`` (which ends in a colon): no number reads from it, so the line
    is left to the parser."""
    import polars as pl

    n = sig.n
    names = [f"_f{i}" for i in range(n + 1)]
    lf = (
        sub.lazy()
        .select(
            "line_no",
            "rank",
            "text",
            pl.col("text").str.split_exact(shape.sep, n).struct.rename_fields(names).alias("_s"),
        )
        .unnest("_s")
    )
    stage, checks, out_cols, extras = _field_exprs(sig, names)
    head = shape.head.rstrip("|").removesuffix("\\")
    stage.append(pl.col(names[0]).str.extract_groups(head).alias("_head"))
    tail = pl.col(names[n])
    checks.append(tail.is_not_null() & (tail.str.strip_chars() == ""))
    if shape.reject:
        checks.append(pl.col("text").str.count_matches(shape.reject) <= 1)
    ok = pl.all_horizontal(checks).fill_null(False)
    exprs = [
        pl.col("line_no"),
        pl.col("rank"),
        pl.col("_head").struct.field("step").cast(pl.Int64).alias("step"),
        *out_cols,
    ]
    if "(?P<ts>" in shape.head:
        ts = pl.col("_head").struct.field("ts").str.replace_all(" ", "T", literal=True)
        exprs.append(ts.alias("timestamp"))
    if extras:
        exprs.append(_extra_json(extras))
    out = lf.with_columns(stage).select(ok.alias("_ok"), *exprs).collect()
    mask = out["_ok"]
    out = out.drop("_ok")
    return (out if mask.all() else out.filter(mask)), mask
