"""What each table command shows: its terminal columns (most useful first), where the
flags go, and how ``--columns`` chooses; decided here once for the command line, the
HTML page and notebooks.

A terminal table is fitted to the terminal's width (120 characters when the output is
not a terminal); columns that do not fit are named on a last line. ``--columns A,B``
(names or headers, any case) shows those, ``--columns all`` every one; CSV and JSON
give every column unless ``--columns`` says otherwise.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from typing import Any

from .columns import LABELS, REPORT_VIEW, RUN_VIEW, TABLE_WIDTH
from .errors import UsageError
from .formats import render, rows_text


@dataclass(frozen=True)
class View:
    """A table command's terminal view: ``columns`` without ``--columns``; ``flags_after``:
    the column the ``flags`` column follows when a row is flagged."""

    columns: tuple[str, ...]
    flags_after: str | None = None
    #: columns left out of the terminal view when no row has a value in them
    hide_empty: tuple[str, ...] = ()


VIEWS: dict[str, View] = {
    "runs": View(tuple(RUN_VIEW)),
    "report": View(tuple(REPORT_VIEW), flags_after="mfu"),
    # the HTML page's run table: the report's, its secondary step-time and throughput
    # columns, the flags beside MFU
    "page": View(
        (
            *REPORT_VIEW,
            *("tokens_per_s_per_gpu", "hw_tflops_per_gpu", "hfu", "n_steady", "step_time_cv"),
            "flags",
        ),
        flags_after="mfu",
    ),
    "mlperf": View(
        (
            *("round", "submitter", "benchmark", "score_min", "num_gpus", "accelerator"),
            *("system", "n_runs", "n_dropped", "scaling_factor", "step_time_s"),
            *("tokens_per_s", "mfu", "score_note"),
        )
    ),
    "hardware": View(
        (
            *("key", "name", "fp32", "tf32", "bf16", "fp16", "fp8", "fp6", "fp4"),
            *("memory_gb", "memory_bw_tbs", "source"),
        )
    ),
    "models": View(
        (
            *("model", "num_layers", "hidden_size", "num_attention_heads", "num_query_groups"),
            *("ffn_hidden_size", "vocab_size", "num_experts", "moe_topk", "params"),
            *("active_params", "seq_len", "family"),
        )
    ),
    "scaling": View(
        (
            *("model", "accelerator", "round", "framework", "num_gpus", "kind"),
            *("tokens_per_s_per_gpu", "low", "high", "efficiency", "scaling", "law"),
            "tokens_per_s",
        ),
        hide_empty=("accelerator", "round", "low", "high", "scaling", "law"),
    ),
}


def label(column: str) -> str:
    """A column's terminal header."""
    return LABELS.get(column, column)


def named(name: str, available: list[str] | None = None) -> str:
    """A column's name from its name or terminal header (``LABELS``), in any case."""
    by_label = {v.lower(): k for k, v in LABELS.items()}
    found = by_label.get(name.strip().lower(), name.strip())
    if available is not None and found not in available:
        low = {a.lower(): a for a in available}
        found = low.get(found.lower(), found)
    return found


def columns_for(
    available: list[str],
    view: View | None,
    fmt: str,
    columns: str | None = None,
    flagged: bool = False,
) -> list[str]:
    """The columns a table shows (``available``: every one it has): ``--columns``, else
    every one for CSV and JSON or without a view, else the view's (the flags column after
    ``view.flags_after`` when a row is ``flagged``). UsageError names an unknown column
    with the closest one."""
    if columns and columns.strip().lower() == "all":
        return list(available)
    if columns:
        chosen = [named(c, available) for c in columns.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in available]
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], available, n=1, cutoff=0.6)
            raise UsageError(
                f"--columns: no column {unknown[0]!r}",
                remedy=f"did you mean {close[0]}?" if close else f"columns: {', '.join(available)}",
            )
        return chosen
    if view is None or fmt not in ("table", "markdown"):
        return list(available)
    chosen = [c for c in view.columns if c in available]
    after = view.flags_after
    if flagged and after in chosen and "flags" in available and "flags" not in chosen:
        chosen.insert(chosen.index(after) + 1, "flags")
    return chosen


def terminal_width() -> int:
    """The width a terminal table is fitted to: the terminal's, where the output is one
    (at least 80), else ``TABLE_WIDTH``."""
    if sys.stdout.isatty():
        return max(80, shutil.get_terminal_size((TABLE_WIDTH, 24)).columns)
    return TABLE_WIDTH


def width_for(fmt: str, columns: str | None) -> int | None:
    """A terminal table without ``--columns`` is fitted; one the user chose is not."""
    return terminal_width() if fmt == "table" and not columns else None


def show_frame(
    table: Any,
    fmt: str,
    view: View | None = None,
    columns: str | None = None,
    screen: Any = None,
) -> str:
    """A DataFrame as a table command prints it (see the module's docstring);
    ``screen``: what a terminal or markdown table shows of the chosen columns (shorter
    sources, bytes as GiB)."""
    flagged = "flags" in table.columns and bool(table["flags"].notna().any())
    table = table[columns_for(list(table.columns), view, fmt, columns, flagged)]
    if view is not None and not columns and fmt in ("table", "markdown"):
        empty = [c for c in view.hide_empty if c in table.columns and table[c].isna().all()]
        table = table.drop(columns=empty)
    if fmt not in ("table", "markdown"):
        return render(table, fmt)
    if screen is not None:
        table = screen(table)
    return render(table, fmt, labels=LABELS, width=width_for(fmt, columns))


def show_rows(
    cols: list[str],
    rows: list[list[Any]],
    right: list[bool],
    fmt: str,
    view: View | None = None,
    columns: str | None = None,
    everything: str = "--columns all",
) -> str:
    """Rows of plain values as a table command prints them (no pandas needed)."""
    chosen = columns_for(cols, view, fmt, columns)
    keep = [cols.index(c) for c in chosen]
    rows = [[r[k] for k in keep] for r in rows]
    right = [right[k] for k in keep]
    if fmt not in ("table", "markdown"):
        return rows_text(chosen, rows, right, fmt)
    width = width_for(fmt, columns)
    return rows_text(chosen, rows, right, fmt, labels=LABELS, width=width, everything=everything)


def grouped_notes(messages: list[str], keep: int = 2) -> list[str]:
    """Notes as a terminal shows them: messages ``"<who>: <what>"`` that repeat the same
    ``<what>`` for more than ``keep`` subjects become one line with the count and the
    first three subjects; the rest stay as they are, in their order."""
    by_what: dict[str, list[str]] = {}
    for m in messages:
        who, sep, what = m.partition(": ")
        if sep and " " not in who.strip():
            by_what.setdefault(what, []).append(who)
    out, done = [], set()
    for m in messages:
        who, sep, what = m.partition(": ")
        subjects = by_what.get(what, []) if sep and " " not in who.strip() else []
        if len(subjects) <= keep:
            out.append(m)
        elif what not in done:
            done.add(what)
            more = f" and {len(subjects) - 3} more" if len(subjects) > 3 else ""
            out.append(f"{len(subjects)} runs: {what} ({', '.join(subjects[:3])}{more})")
    return out


def wrapped(head: str, text: str, width: int | None = None, indent: int = 4) -> str:
    """``head`` then ``text``, wrapped to ``width`` (the terminal's), continuation lines
    indented by ``indent`` spaces; a long word (a path) is never split."""
    import textwrap  # only the terminal listing wraps

    return textwrap.fill(
        f"{head}{text}",
        width=width or terminal_width(),
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


#: columns a terminal shows in billions (``671.03B``; below one, millions: ``125.2M``);
#: CSV and JSON keep the count
BILLIONS = ("params", "active_params")


def in_billions(cols: list[str], rows: list[list[Any]]) -> list[list[Any]]:
    """``rows`` with parameter counts as a terminal shows them: ``671.03B``, ``125.2M``."""
    at = [k for k, c in enumerate(cols) if c in BILLIONS]
    out = []
    for row in rows:
        row = list(row)
        for k in at:
            if isinstance(row[k], int | float) and row[k] == row[k]:
                v = row[k]
                row[k] = f"{v / 1e9:.2f}B" if v >= 1e9 else f"{v / 1e6:.1f}M"
        out.append(row)
    return out


def warnings_text(rows: list[list[Any]], fmt: str) -> str:
    """``llmbench warnings``' listing of (file, line, kind, message) rows: CSV, JSON and
    markdown as tables; a terminal's as each file once, then its warnings (line, kind,
    message) wrapped to the terminal's width under the message column."""
    cols = ["file", "line", "kind", "message"]
    if fmt != "table":
        return rows_text(cols, rows, [False, True, False, False], fmt)
    width = max([len(k) for _, _, k, _ in rows] or [0])
    out, last = [], None
    for path, line, kind, message in rows:
        if path != last:
            out.append(path)
            last = path
        head = f"{'' if line is None else line:>8}  {kind:<{width}}  "
        out.append(wrapped(head, message, indent=len(head)))
    return "".join(f"{x}\n" for x in out)


def formulas_text(cols: list[str], rows: list[list[Any]], fmt: str) -> str:
    """``llmbench formulas``' listing (``flops.formulas_table``): a terminal's as each
    convention's name, then its fields, wrapped to 88 characters under their labels."""
    if fmt != "table":
        return rows_text(cols, rows, [False] * len(cols), fmt)
    import textwrap  # only the terminal listing wraps

    out = []
    for name, default, *fields in rows:
        out.append(name + (" (default)" if default else ""))
        for label, text in zip(cols[2:], fields, strict=True):
            lines = textwrap.wrap(text, width=88) or [""]
            out.append(f"  {label + ':':<9} {lines[0]}")
            out += [f"  {'':<9} {more}" for more in lines[1:]]
    return "".join(f"{x}\n" for x in out)


def one_row_text(table: Any, fmt: str, hidden: tuple[str, ...] = ()) -> str:
    """A one-row table (``estimate``'s) in ``fmt``; a terminal's as metric / value lines,
    without the ``hidden`` columns."""
    if fmt != "table":
        return render(table, fmt)
    shown = table.drop(columns=[c for c in hidden if c in table.columns]).T.reset_index()
    shown.columns = ["metric", "value"]
    return render(shown, fmt)


def report_view(tokens: float | None = None) -> View:
    """The report's terminal view; with ``--tokens``, the time to train on them too."""
    view = VIEWS["report"]
    return View((*view.columns, "time_for_tokens_s"), view.flags_after) if tokens else view
