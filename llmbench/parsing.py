"""The parser protocol: what a log-format plug-in is and what it yields.

A parser is a class with a ``name``, a ``framework``, a cheap
``detect(head) -> confidence`` over the first cleaned lines of a file, and a
streaming ``parse(lines) -> records``. Records are small tuples:

- ``Step(step, values, line_no, rank)``: one training step; ``values`` maps
  canonical step columns (``step_time_s``, ``loss``, ...) or extra names to numbers;
  ``step`` None: the log prints no step number (stored null, in line order).
- ``Event(key, value, line_no, time_ms, event_type, step, metadata)``.
- ``Config(values, line_no, origin)``: run settings found in the log (first value
  wins); ``origin`` says where they come from when it is not that line.
- ``NewRun(line_no, reason)``: the log starts a new run segment here (restart).
- ``Note(message, line_no)``: a warning about the input (never fatal).
- ``Batch(table, frame, first, last)``: rows the bulk engine decoded from lines of
  a declared ``Shape`` (``llmbench.engine``); a parser with shapes receives it in
  its line stream in place of those lines and yields it on, in order.

Helpers keep parsers declarative: ``Field`` tables map a printed label to a
column, a type and a unit scale; ``number`` and ``literal`` convert text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, NamedTuple

from .reader import Line


class Step(NamedTuple):
    step: int | None
    values: dict[str, Any]
    line_no: int
    rank: int | None = None


class Event(NamedTuple):
    key: str
    value: Any
    line_no: int
    time_ms: float | None = None
    event_type: str | None = None
    step: int | None = None
    metadata: dict[str, Any] | None = None


class Config(NamedTuple):
    values: dict[str, Any]
    line_no: int
    origin: str | None = None  # where the values come from when not the line itself


class NewRun(NamedTuple):
    line_no: int
    reason: str


class Note(NamedTuple):
    message: str
    line_no: int | None = None
    kind: str = "input"  # errors.WARNING_KINDS


class Batch(NamedTuple):
    """Rows decoded in bulk from the lines ``first`` .. ``last`` (a polars DataFrame
    ``frame`` in the columns of ``table``, "steps" or "events", without ``run_id``)."""

    table: str
    frame: Any
    first: int
    last: int
    n_lines: int = 0  # shape lines it stands for (the rows, plus copies read once)


Record = Step | Event | Config | NewRun | Note | Batch


class RawJSON(str):
    """JSON text kept as printed (a number literal such as ``1.01E+00``, an MLLOG
    record's value): stored as it is, never re-encoded."""

    __slots__ = ()


# a JSON number literal: what may be stored as printed
JSON_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def raw_number(text: str) -> RawJSON | int | float | None:
    """A printed number for ``extra``: its text when it is a JSON number literal
    (stored exactly as printed), else the value ``number`` reads (None if none)."""
    t = text.strip()
    if JSON_NUMBER_RE.fullmatch(t) and math.isfinite(float(t)):
        return RawJSON(t)
    return number(t)


class Recent:
    """The last ``size`` distinct lines seen: a line printed again by another rank
    within that window is a copy. Memory stays bounded on any file."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: dict[str, None] = {}  # in insertion order: the oldest first

    def repeat(self, key: str) -> bool:
        """True if ``key`` is in the window; else remember it (forgetting the oldest)."""
        if key in self._keys:
            return True
        self._keys[key] = None
        if len(self._keys) > self.size:
            del self._keys[next(iter(self._keys))]
        return False


COPY_WINDOW = 10_000  # physical lines: a record printed again this close is a copy


class CopyWindow:
    """Records printed again by other ranks: a record seen at most ``lines``
    physical lines earlier is a copy, read once. A record's key is its text from
    its head on (launcher prefixes and all before left out) and whether it starts
    the line (a ``FieldShape``'s head line, whose copies the bulk engine decides).
    Memory stays bounded."""

    def __init__(self, lines: int = COPY_WINDOW) -> None:
        self.lines = lines
        self._last: dict[Any, int] = {}
        self._pruned = 0

    def copy(self, text: Any, no: int) -> bool:
        """True if ``text`` (a key) was seen within the window before line ``no``."""
        prev = self._last.get(text)
        self._last[text] = no
        if no - self._pruned > 2 * self.lines:
            self._last = {t: n for t, n in self._last.items() if no - n <= self.lines}
            self._pruned = no
        return prev is not None and no - prev <= self.lines


class FieldShape(NamedTuple):
    """A line the bulk engine reads without the parser's Python: a ``head`` (a
    regex matched at the line's start, after the launcher prefix, with groups
    ``step`` and optionally ``ts``, ending at the first ``sep``) and then
    `` label: value |`` fields. ``fields`` maps labels to columns and units;
    ``extra`` lists columns kept in ``extra``; labels not in ``fields`` are kept in
    ``extra`` under their label. A head line is one whose head matches at its
    start and that has a ``sep`` after the head. A line with anything the table
    does not cover
    (a value that is no plain number, a field without a label, a cut-off line,
    more than one match of ``reject``) is handed to the parser as a line, as are lines of a
    head that is not at the start. Lines with the same text within
    ``COPY_WINDOW`` lines are copies, as ``CopyWindow`` decides: the engine
    decides it for every line whose head matches (the parser then gets those
    lines with ``checked`` set), the parser for the others.
    Patterns use only what Python's ``re`` and polars' (Rust) regex read alike:
    ``[0-9]`` and ``[ \\t]``, not ``\\d`` and ``\\s``."""

    needle: str
    head: str
    fields: Any  # Mapping[str, Field]
    extra: frozenset = frozenset()
    reject: str | None = None
    sep: str = "|"


class Parser:
    """Base class of log-format parsers (built-in and third-party alike)."""

    name: ClassVar[str] = ""
    framework: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: the step columns this parser can fill (declared, for `llmbench parsers`)
    produces: ClassVar[tuple[str, ...]] = ()
    #: parsers that read the same lines share a family (never run together on a file)
    family: ClassVar[str] = ""
    #: substrings every line the parser uses contains: other lines are skipped by the
    #: reader in bulk, never decoded (None: every line)
    needles: ClassVar[tuple[str, ...] | None] = None
    #: line shapes the bulk engine may read in bulk: a ``FieldShape`` (the engine
    #: reads its field table), or an object whose ``reader()`` gives an
    #: ``engine.ShapeReader``; a parser that declares them receives ``Batch``
    #: records in its line stream and yields them on
    shapes: ClassVar[tuple[Any, ...]] = ()

    def detect(self, head: Sequence[str]) -> float:
        """Confidence 0..1 that ``head`` (the first cleaned lines) is this format."""
        raise NotImplementedError

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        """Yield records for ``lines`` (an iterator of reader.Line), streaming."""
        raise NotImplementedError


class Field(NamedTuple):
    """How one printed field maps to a column: type and unit scale to SI."""

    column: str
    kind: type = float
    scale: float = 1.0


def number(text: str) -> int | float | None:
    """Parse a printed number: ``12``, ``6.384045E+01``, ``5,856``, ``nan``, ``-``.

    Returns an int when the text is integral, a float otherwise, None when it is
    not a number.
    """
    t = text.strip()
    if t.isdigit() and t.isascii() and len(t) < 4000:  # the common cases first
        return int(t)  # (Python refuses int() of more than 4,300 digits)
    if "," not in t and not t.endswith("%"):
        try:
            v = float(t)
        except ValueError:
            return None
        return int(t) if v.is_integer() and t.lstrip("+-").isdigit() and len(t) < 4000 else v
    t = t.replace(",", "")
    if t.endswith("%"):
        t = t[:-1]
    if not t:
        return None
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return None


def _clean_number_text(text: str) -> str:
    """The digits ``number`` reads: blanks, thousands separators and a ``%`` removed."""
    t = text.strip()
    if "," in t:
        t = t.replace(",", "")
    return t[:-1] if t.endswith("%") else t


def _power_of_ten(scale: float) -> int | None:
    """``e`` when ``scale`` is exactly the double nearest 10**e, else None."""
    e = round(math.log10(scale)) if scale > 0 else 0
    return e if float(f"1e{e}") == scale else None


def scaled_text(text: str, scale: float) -> int | float | None:
    """The printed number ``text`` times ``scale`` (a unit conversion), computed on
    the printed digits: ``12088.6`` ms -> ``12.0886`` s, the double nearest the exact
    decimal result (never a float product or quotient, which adds noise:
    ``12088.6 / 1000`` is ``12.088600000000001``). None when ``text`` is no number."""
    v = number(text)
    if v is None:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return v
    t = _clean_number_text(text)
    try:
        d = Decimal(t)
    except InvalidOperation:
        return None
    e = _power_of_ten(scale)
    return float(d.scaleb(e) if e is not None else d * Decimal(repr(scale)))


def scaled(v: float, scale: float) -> float:
    """``v`` times ``scale`` on its shortest decimal form (see ``scaled_text``)."""
    out = scaled_text(repr(v), scale)
    return out if out is not None else v * scale


def convert(text: str, field: Field) -> int | float | None:
    """Convert ``text`` per ``field`` (type and scale); None when it is not a number."""
    if field.scale != 1.0:
        return scaled_text(text, field.scale)
    v = number(text)
    if v is None:
        return None
    if field.kind is int:
        if isinstance(v, float):
            if math.isnan(v) or math.isinf(v) or not v.is_integer():
                return v
            return int(v)
        return v
    try:
        return float(v)
    except OverflowError:  # an integer beyond any float: not a usable number
        return None


def literal(text: str) -> Any:
    """A printed setting value as Python data: None, True/False, int, float or str."""
    t = text.strip()
    low = t.lower()
    if low in ("none", "null"):
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    v = number(t) if "," not in t else None
    return t if v is None else v


# absl/glog prefix: ``I0411 15:03:26.866614 140737350317184 programs.py:366] ``
GLOG_RE = re.compile(
    r"(?P<sev>[IWEF])(?P<mm>\d\d)(?P<dd>\d\d) (?P<time>\d\d:\d\d:\d\d(?:\.\d+)?)\s+\d+\s+\S+:\d+\]"
)


def glog_timestamp(text: str) -> str | None:
    """The time of an absl/glog prefix as ISO text; glog prints no year: ``--04-11T15:03:26.866614``."""
    m = GLOG_RE.search(text)
    return f"--{m['mm']}-{m['dd']}T{m['time']}" if m else None
