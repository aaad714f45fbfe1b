"""The bulk engine: a parser's declared line shapes read over blocks of lines at once.

A file is read in blocks of whole lines (``reader.blocks``, 32 MiB). A block
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
from collections.abc import Iterator
from typing import Any

from .parsing import COPY_WINDOW, Batch, Field, FieldShape, Parser, _power_of_ten
from .reader import PREFIX_PATTERN, CheckedLine, Line, block_lines, blocks, iter_lines, segments

BLOCK_SIZE = 32 << 20
SEPARATORS = b"\x1f\x1e\x1d\x1c\x01\x02\x03\x04"  # one that a block lacks splits it into lines
MAX_SIGNATURES = 16  # distinct label sequences of one shape decoded per block
# a plain decimal (what a unit conversion reads by moving the point); a JSON number
PLAIN = r"^[+-]?[0-9]+(?:\.[0-9]+)?$"
JSON_NUMBER = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"


ENGINES = ("bulk", "python")


def default_engine() -> str:
    """``$LLMBENCH_ENGINE`` (bulk or python), else bulk."""
    name = os.environ.get("LLMBENCH_ENGINE") or "bulk"
    return name if name in ENGINES else "bulk"


def items(
    parser: Parser, path: str, hasher=None, engine: str | None = None
) -> Iterator[Line | Batch]:
    """What ``parser.parse`` reads for ``path``: with the bulk engine (when the parser
    declares shapes), lines and ``Batch`` records; else the lines with its needles."""
    if (engine or default_engine()) == "python" or not parser.shapes:
        return iter_lines(path, hasher, needles=parser.needles)
    return _items(parser, path, hasher)


def _items(parser: Parser, path: str, hasher) -> Iterator[Line | Batch]:
    import polars as pl

    keys = tuple(n.encode() for n in parser.needles) if parser.needles else None
    shapes = [_Shape(s) for s in parser.shapes]
    for no, block in blocks(path, hasher, BLOCK_SIZE):
        lines = _split(block)
        if lines is None:
            for shape in shapes:
                shape.forget()
            yield from block_lines(block, no, keys)
            continue
        frame = pl.DataFrame({"text": lines}).with_row_index("line_no", offset=no + 1)
        frame = frame.with_columns(pl.col("line_no").cast(pl.Int64))
        if parser.needles:
            hit = pl.lit(False)
            for needle in parser.needles:
                hit = hit | pl.col("text").str.contains(needle, literal=True)
            frame = frame.filter(hit)
        del lines
        yield from _block_items(frame, shapes)


def _split(block: bytes):
    """The lines of ``block`` as a polars Series of str (row k = line k), or None
    when polars cannot split it exactly."""
    import polars as pl

    sep = next((bytes([b]) for b in SEPARATORS if bytes([b]) not in block), None)
    if sep is None:
        return None
    try:
        df = pl.read_csv(
            block,
            has_header=False,
            separator=sep.decode(),
            quote_char=None,
            new_columns=["text"],
            infer_schema=False,
            truncate_ragged_lines=True,
            encoding="utf8-lossy",
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if df.width != 1 or df.height != block.count(b"\n") + 1:
        return None
    return df["text"].fill_null("")


def _block_items(frame, shapes: list[_Shape]) -> Iterator[Line | Batch]:
    """Lines and batches of one block's kept lines (``line_no``, ``text``), in order."""
    import numpy as np
    import polars as pl

    raw = frame["text"]
    plain = ~(raw.str.contains("\r", literal=True) | raw.str.contains("\x1b", literal=True))
    clean = frame.filter(plain)
    stripped, ranks = _strip_prefixes(clean["text"])
    clean = clean.with_columns(text=stripped, rank=ranks)
    taken: list = []  # per shape: (rows frame, copies/line frame, checked lines frame)
    for shape in shapes:
        rows, marks, checked, clean = shape.take(clean)
        taken.append((rows, marks, checked))
    # everything not taken goes to the parser as lines
    python_nos = set(frame["line_no"].to_list())
    for rows, marks, checked in taken:
        python_nos -= set(marks["line_no"].to_list())
        python_nos -= set(rows["line_no"].to_list())
    checked_nos: set[int] = set()
    for _, _, checked in taken:
        checked_nos |= set(checked)
        python_nos |= set(checked)
    order = sorted(python_nos)
    texts = dict(zip(frame["line_no"].to_list(), raw.to_list(), strict=True)) if order else {}
    bounds = np.asarray(order, dtype=np.int64)
    # the shape rows and marks between two python lines make one batch per shape
    pieces: list[tuple[int, int, Any]] = []  # (group, shape index, (rows, marks))
    for k, (rows, marks, _) in enumerate(taken):
        if not marks.height:
            continue
        group = np.searchsorted(bounds, marks["line_no"].to_numpy())
        rgroup = np.searchsorted(bounds, rows["line_no"].to_numpy())
        for g in np.unique(group):
            pieces.append(
                (
                    int(g),
                    k,
                    (rows.filter(pl.Series(rgroup == g)), marks.filter(pl.Series(group == g))),
                )
            )
    pieces.sort(key=lambda p: (p[0], int(p[2][1]["line_no"][0])))
    at = 0
    for g, _, (rows, marks) in pieces:
        while at < g:
            yield from _python_line(order[at], texts[order[at]], order[at] in checked_nos)
            at += 1
        n_lines = marks.height
        yield Batch(
            "steps",
            rows.drop("text", strict=False),
            int(marks["line_no"][0]),
            int(marks["line_no"][-1]),
            n_lines,
        )
    while at < len(order):
        yield from _python_line(order[at], texts[order[at]], order[at] in checked_nos)
        at += 1


def _python_line(no: int, raw: str, checked: bool) -> Iterator[Line]:
    """A kept line as the reader gives it (launcher prefix, ANSI, ``\\r`` states)."""
    kind = CheckedLine if checked else Line
    for text, rank in segments(raw):
        yield kind(no, text, rank)


def _strip_prefixes(texts):
    """(texts without launcher prefixes, rank of the innermost prefix) as the reader
    strips them (up to three prefixes)."""
    import polars as pl

    pattern = PREFIX_PATTERN + r"(?P<rest>(?s:.*))"
    rank = pl.Series("rank", [None] * len(texts), dtype=pl.Int64)
    for _ in range(3):
        m = texts.str.extract_groups(pattern)
        rest = m.struct.field("rest")
        if rest.null_count() == len(rest):
            break
        found = pl.coalesce(m.struct.field("r1"), m.struct.field("r2"), m.struct.field("r3")).cast(
            pl.Int64
        )
        rank = pl.select(pl.when(rest.is_not_null()).then(found).otherwise(rank)).to_series()
        rank = rank.alias("rank")
        texts = pl.select(pl.coalesce(rest, texts)).to_series()
    return texts.alias("text"), rank


class _Shape:
    """A ``FieldShape`` at work over one file: its copy window's last lines carry
    from block to block."""

    def __init__(self, shape: FieldShape) -> None:
        self.shape = shape
        self.carry = None  # (line_no, text) of the head lines in the last COPY_WINDOW lines

    def forget(self) -> None:
        """A block read by Python: its lines are not in the window (the parser's own
        window saw them, so the rule holds across the gap)."""
        self.carry = None

    def take(self, clean):
        """(decoded rows, every head line taken (copies included), line numbers of
        head lines left to the parser, the lines that are not this shape's)."""

        s = self.shape
        mine = clean["text"].str.contains(s.needle, literal=True) & clean["text"].str.contains(
            s.head
        )
        heads = clean.filter(mine)
        rest = clean.filter(~mine)
        copy = self._copies(heads)
        fresh = heads.filter(~copy)
        rows, ok = _decode(s, fresh)
        checked = fresh.filter(~ok)["line_no"].to_list()
        marks = heads.select("line_no")
        return rows, marks, checked, rest

    def _copies(self, heads):
        """True for each head line whose text was seen within COPY_WINDOW lines."""
        import numpy as np
        import polars as pl

        both = heads.select("line_no", "text").with_columns(new=pl.lit(True))
        if self.carry is not None and self.carry.height:
            both = pl.concat([self.carry.with_columns(new=pl.lit(False)), both])
        if not both.height:
            self.carry = None
            return pl.Series([], dtype=pl.Boolean)
        h = both["text"].hash(seed=0x11B)
        if h.is_unique().all():
            copy = pl.Series([False] * both.height)
        else:
            both = both.with_columns(h=h, i=pl.int_range(pl.len()))
            srt = both.sort(["h", "line_no"])
            same = (srt["h"] == srt["h"].shift(1)) & (srt["text"] == srt["text"].shift(1))
            near = (srt["line_no"] - srt["line_no"].shift(1)) <= COPY_WINDOW
            flag = (same & near).fill_null(False)
            copy = pl.Series(np.zeros(both.height, dtype=bool))
            idx = srt["i"].to_numpy()
            arr = copy.to_numpy().copy()
            arr[idx] = flag.to_numpy()
            copy = pl.Series(arr)
            both = both.drop("h", "i")
        last = both["line_no"].max() if both.height else None
        keep = both.filter(pl.col("line_no") > last - COPY_WINDOW) if last is not None else both
        self.carry = keep.select("line_no", "text")
        return copy.filter(both["new"])


def _decode(shape: FieldShape, fresh):
    """(rows, ok mask) for head lines that are no copies: ``ok`` marks the lines
    decoded exactly (the rows, in line order); the others go to the parser."""
    import numpy as np
    import polars as pl

    ok_all = np.zeros(fresh.height, dtype=bool)
    frames = []
    if not fresh.height:
        return _empty_rows(), pl.Series(ok_all)
    texts = fresh["text"].to_list()
    left = np.ones(fresh.height, dtype=bool)
    for _ in range(MAX_SIGNATURES):
        idx = np.flatnonzero(left)
        if not len(idx):
            break
        sig = _signature(shape, texts[idx[0]])
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
    rows = pl.concat(frames, how="diagonal_relaxed").sort("line_no")
    return rows, pl.Series(ok_all)


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


def _decode_signature(shape: FieldShape, sig: _Signature, sub):
    """(rows of the lines of ``sub`` that have signature ``sig`` and decode exactly,
    their mask over ``sub``)."""
    import polars as pl

    n = sig.n
    cols = pl.col("text").str.split_exact(shape.sep, n)
    lf = (
        sub.lazy()
        .with_columns(cols.alias("_f"))
        .with_columns(
            [pl.col("_f").struct.field(f"field_{i}").alias(f"_f{i}") for i in range(n + 1)]
        )
    )
    ok = pl.col(f"_f{n}").is_not_null() & (pl.col(f"_f{n}").str.strip_chars() == "")
    values, extras = [], []
    for i, (prefix, (key, field)) in enumerate(zip(sig.prefixes, sig.targets, strict=True), 1):
        cell = pl.col(f"_f{i}")
        ok = ok & cell.str.starts_with(prefix)
        v = cell.str.slice(len(prefix)).str.strip_chars()
        ok = ok & ~v.str.contains(":", literal=True)
        if field is None:  # kept in extra as printed
            as_float = v.cast(pl.Float64, strict=False)
            ok = ok & v.str.contains(JSON_NUMBER) & as_float.is_finite().fill_null(False)
            extras.append((key, v))
            continue
        if field.scale != 1.0:
            e = _power_of_ten(field.scale)
            x = (v + f"e{e}").cast(pl.Float64, strict=False)
            ok = ok & v.str.contains(PLAIN) & x.is_finite().fill_null(False)
        elif field.kind is int:
            x = v.cast(pl.Int64, strict=False)
            ok = ok & x.is_not_null()
        else:
            x = v.cast(pl.Float64, strict=False)
            # -0 reads as 0.0 in Python (int("-0")), as -0.0 in polars: left to Python
            ok = ok & x.is_finite().fill_null(False) & ~(x.eq(0) & v.str.starts_with("-"))
        if field.column == "step_time_s":
            ok = ok & (x > 0).fill_null(False)
        values.append(x.alias(field.column))
    if shape.reject:
        ok = ok & ~pl.col("text").str.contains(shape.reject)
    head = pl.col("text").str.extract_groups(shape.head)
    exprs = [
        pl.col("line_no"),
        pl.col("rank"),
        head.struct.field("step").cast(pl.Int64).alias("step"),
        *values,
    ]
    if "(?P<ts>" in shape.head:
        exprs.append(
            head.struct.field("ts").str.replace_all(" ", "T", literal=True).alias("timestamp")
        )
    if extras:
        pieces: list[Any] = []
        for k, (key, v) in enumerate(sorted(extras, key=lambda kv: kv[0])):
            pieces.append(
                pl.lit(("{" if k == 0 else ",") + json.dumps(key, ensure_ascii=False) + ":")
            )
            pieces.append(v)
        pieces.append(pl.lit("}"))
        exprs.append(pl.concat_str(pieces).alias("extra"))
    out = lf.select(ok.fill_null(False).alias("_ok"), *exprs).collect()
    mask = out["_ok"]
    return out.filter(mask).drop("_ok"), mask
