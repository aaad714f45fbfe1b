"""One self-contained HTML report: the run table (sortable, filterable, paged),
where every input of every run came from, and the figures as inline SVG. CSS and
JavaScript are inline; the page fetches nothing, so it opens offline anywhere.
Templated with Jinja2 (``data/report.html.j2``, autoescaped)."""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from . import __version__
from .columns import LABELS, TABLE_COLUMNS
from .derivation import derivations
from .errors import LLMBenchError
from .formats import atomic_output, cell, plain, records, short_paths
from .metric_specs import METRIC_COLUMNS
from .metrics import MetricOptions, explain, options_of, steady_runs
from .mlperf import locate, save_figure, submissions_table, summarize_submissions
from .report import draw, summarize_store
from .store import Store
from .views import VIEWS, columns_for

FIGURES = (("scaling", "Scaling"), ("topology", "Topologies"))
# columns not on the page that its metrics are derived from: told in a run's details
INTERMEDIATE = ("tokens_per_step", "model_flops_per_step")
PANEL_POINTS = 60  # a run's step-time curve on the page: at most this many (lowest, highest) pairs
EMPTY = (
    "No runs were selected: nothing to show. Ingest logs with `llmbench ingest`, or "
    "select stored runs by id or source glob."
)


def _cell(v: Any) -> Any:
    """A value as the page's JSON holds it: numbers as printed, no NaN."""
    v = plain(v)
    if isinstance(v, float):  # 15 digits: binary noise (0.30000000000000004) dropped
        return float(f"{v:.15g}") if math.isfinite(v) else None
    return v


def svg_of(write) -> str:
    """The SVG text ``write(path)`` writes to an .svg file, its XML declaration
    dropped (to sit inline in a page)."""
    fd, path = tempfile.mkstemp(suffix=".svg")
    os.close(fd)
    try:
        write(path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
    finally:
        os.unlink(path)
    return text[text.find("<svg") :]


def _svg(kind: str, db: str | None, select, table, **kw: Any) -> str:
    """Figure ``kind`` of the report as SVG text (``kw``: ``report.draw``'s)."""
    return svg_of(lambda path: draw(kind, path, db, select, table=table, **kw))


def html_report(
    db: str | None,
    select=(),
    *,
    table,
    runs: list[dict],
    options: MetricOptions | None = None,
    group_by: str | None = None,
    command: str = "llmbench report --html",
) -> str:
    """The page for the selected runs of the store ``db``: ``table`` and ``runs`` as
    ``report.summarize_store`` gives them (with the ``options`` given here)."""
    options = options or MetricOptions()
    stat = options.stat
    cols = columns_for(list(table.columns), VIEWS["page"], "markdown", flagged=True)
    if "time_to_train_min" in table.columns and table["time_to_train_min"].notna().any():
        cols.append("time_to_train_min")  # MLPerf runs selected
    numeric = _numeric(table, cols)
    rows = records(table)
    steady, panels = _step_curves(db, [r["run_id"] for r in rows], options.warmup)
    data = _data(rows, runs, cols, numeric, options.models, options.formula, steady)
    data["panels"] = [panels.get(r["run_id"]) for r in rows]
    data["warnings"], data["nWarnings"] = _warnings(db, data["sources"])
    figures, notes = _figures(db, select, table, group_by, options) if len(table) else ([], [])
    mlperf, mlperf_notes = _mlperf(db, data["sources"])
    notes += mlperf_notes
    return _render(
        data,
        cols,
        numeric,
        command=command,
        title=" ".join(select),
        heading="llmbench report",
        table_title="Runs",
        noun="run(s)",
        empty=EMPTY,
        provenance=True,
        panels=any(data["panels"]),
        mlperf=mlperf,
        lines=[],
        stat=stat if len(table) else None,
        summary=int((table["stat"] == "summary").sum()) if "stat" in table.columns else 0,
        figures=figures,
        notes=notes,
    )


def report_page(
    db: str | None = None,
    select=(),
    path: str | None = None,
    *,
    formula: str | None = None,
    warmup: int | None = None,
    stat: str = "median",
    models: dict | None = None,
    overrides: dict | None = None,
    options: MetricOptions | None = None,
) -> str:
    """The HTML report of the selected runs of the store ``db`` (``report --html``'s
    page, with its metric ``options``, or their fields as keywords), written to
    ``path`` whole or not at all when given. Returns the page's text."""
    options = options_of(options, formula=formula, warmup=warmup, stat=stat, models=models)
    table, runs = summarize_store(db, select, options, overrides=overrides)
    args = ", ".join([repr(db), *(repr(s) for s in select)])
    command = f"llmbench.report_page({args})"
    text = html_report(db, select, table=table, runs=runs, options=options, command=command)
    if path:
        write_page(path, text)
    return text


def write_page(path: str, text: str) -> None:
    """An HTML page written to ``path`` whole or not at all."""
    with (
        atomic_output(path, suffix=".html") as tmp,
        open(tmp, "w", encoding="utf-8") as f,
    ):
        f.write(text)


def _render(data: dict, cols: list[str], numeric: set, **fields: Any) -> str:
    """The template filled: the header, the table's columns (labels, units, help), the
    data for its script, and ``fields``."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    source = resources.files("llmbench").joinpath("data/report.html.j2").read_text("utf-8")
    return env.from_string(source).render(
        version=__version__,
        made=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        n_runs=len(data["rows"]),
        columns=_headers(cols, numeric),
        # inside <script>: no "<" at all, so neither "</script" nor "<!--" can end it
        data=json.dumps(data, allow_nan=False).replace("<", "\\u003c"),
        **fields,
    )


def _numeric(table, cols: list[str]) -> set[str]:
    """The columns of ``table`` that hold numbers (sorted as numbers on the page)."""
    return {c for c in cols if str(table[c].dtype).lower().startswith(("int", "float"))}


def _headers(cols: list[str], numeric: set) -> list[dict]:
    """A table's header cells as the template draws them: label, unit, help, kind."""
    return [
        {
            "label": LABELS.get(c, c),
            "unit": "" if c in LABELS else _meta(c)[0],
            "help": _help(c) or c,
            "kind": "num" if c in numeric else "text",
        }
        for c in cols
    ]


def _script_columns(cols: list[str], numeric: set) -> list[dict]:
    """A table's columns as the page's script reads them: name, kind, help."""
    return [{"name": c, "kind": "num" if c in numeric else "text", "help": _help(c)} for c in cols]


def _data(rows, runs, cols: list[str], numeric: set, models, formula, steady: dict) -> dict:
    """What the page's script reads: the rows (values to sort by, text to show), each
    run's inputs with their origins and the inputs it lacks, and per cell how its
    value was derived (``derivation.derivations``)."""
    by_id = {r["run_id"]: r for r in runs}
    shown = short_paths([str(r.get("source") or "") for r in rows])
    told = _Told(cols)
    for r in rows:
        told.add(r, by_id.get(r["run_id"], r), models, formula, steady.get(r["run_id"]))
    return {
        "columns": _script_columns(cols, numeric),
        "rows": [
            [_cell(s) if c == "source" else _cell(r.get(c)) for c in cols]
            for r, s in zip(rows, shown, strict=True)
        ],
        # as the terminal table prints them (the rows keep full values, to sort by)
        "text": [
            [s if c == "source" else cell(r.get(c)) for c in cols]
            for r, s in zip(rows, shown, strict=True)
        ],
        "sources": [r.get("source") for r in rows],
        "missing": [r.get("missing") for r in rows],
        **told.lists,
        "strings": list(told.pool),
        "flagsCol": cols.index("flags") if "flags" in cols else -1,
    }


class _Told:
    """Per run of the page: its inputs and their origins (``provenance``), the inputs
    it lacks (``unset``), how each shown cell was derived (``why``) and the derived
    values not shown as columns (``more``); texts repeat from run to run, so each is
    sent once (``pool``) and referred to by number."""

    def __init__(self, cols: list[str]) -> None:
        self.cols = cols
        self.pool: dict[str, int] = {}
        self.lists: dict[str, list] = {"provenance": [], "unset": [], "why": [], "more": []}

    def ref(self, text: str) -> int:
        return self.pool.setdefault(text, len(self.pool))

    def add(self, r: dict, run: dict, models, formula, steady) -> None:
        found = explain(run, models, formula)
        origins = {k: str(o) for k, _, o in found}
        told = derivations(r, origins, steady, run)
        out = self.lists
        out["provenance"].append([[k, _cell(v), self.ref(str(o))] for k, v, o in found if o != "missing"])  # fmt: skip
        out["unset"].append([k for k, _, o in found if o == "missing" and plain(r.get(k)) is None])
        # an input's origin is in provenance already: the script says it from there
        out["why"].append([
            self.ref("" if told.get(c) == f"{c}: {origins.get(c)}" else told.get(c, ""))
            for c in self.cols
        ])  # fmt: skip
        extra = [c for c in INTERMEDIATE if c in told and c not in self.cols]
        out["more"].append([[c, cell(r.get(c)), self.ref(told[c])] for c in extra])


def _sig(v: float) -> float:
    """A value to draw, to 4 significant digits (the page's size)."""
    return float(f"{v:.4g}")


def _step_curves(db: str | None, run_ids: list[str], warmup: int | None) -> tuple[dict, dict]:
    """(per run: the steps and log lines of its steady state; per run: its step-time
    curve for the page's small multiples). A curve holds the normal timed steps in
    order, at most ``PANEL_POINTS`` of them, longer runs as the lowest and highest
    time of as many equal slices (``lo``/``hi``); ``w``: the warm-up's share of it;
    ``x``: the first and last step (null where the log numbers none)."""
    import numpy as np

    def num(a, k):
        v = float(a[k])
        return None if math.isnan(v) else int(v)

    steady, curves = {}, {}
    with Store(db, create=False) as store:
        for run_id, cols, w, _ in steady_runs(store, run_ids, ["step", "line_no"], warmup):
            ts = cols["step_time_s"]
            n = len(ts)
            if not n:
                continue
            steady[run_id] = {
                "steps": (num(cols["step"], w), num(cols["step"], -1)),
                "lines": (num(cols["line_no"], w), num(cols["line_no"], -1)),
            }
            curve: dict[str, Any] = {"x": [num(cols["step"], 0), num(cols["step"], -1)], "n": n}
            curve["w"] = w / n
            body = ts[w:] if w < n else ts
            curve["y"] = [_sig(float(body.min())), _sig(float(body.max()))]
            if n <= PANEL_POINTS:
                curve["lo"] = [_sig(float(t)) for t in ts]
            else:
                edges = np.linspace(0, n, PANEL_POINTS + 1).astype(int)[:-1]
                curve["lo"] = [_sig(float(t)) for t in np.minimum.reduceat(ts, edges)]
                curve["hi"] = [_sig(float(t)) for t in np.maximum.reduceat(ts, edges)]
            curves[run_id] = curve
    return steady, curves


MAX_WARNINGS = 20  # a run's stored warnings shown on the page (the count says the rest)


def _warnings(db: str | None, sources: list) -> tuple[list[list[str]], list[int]]:
    """Per run: the stored warnings of its file (what ingest noticed) as text, at
    most ``MAX_WARNINGS`` and a line for the rest; and how many there are."""
    with Store(db, create=False) as store:
        found = store.file_warnings([s for s in sources if s])
    out, counts = [], []
    for s in sources:
        ws = found.get(s, [])
        text = [f"line {w.line}: {w.message}" if w.line else w.message for w in ws]
        more = len(text) - MAX_WARNINGS
        out.append(text[:MAX_WARNINGS] + ([f"... {more} more"] if more > 0 else []))
        counts.append(len(text))
    return out, counts


def _meta(column: str) -> tuple[str, str]:
    """(unit, meaning) of a column of the report's, compare's or mlperf's tables."""
    return METRIC_COLUMNS.get(column) or TABLE_COLUMNS.get(column) or ("", "")


def _help(column: str) -> str:
    """What a column is and how it is derived (its hover text on the page)."""
    unit, meaning = _meta(column)
    return f"{meaning} [{unit}]" if meaning and unit else meaning


def _mlperf(db: str | None, sources: list) -> tuple[dict | None, list[str]]:
    """The MLPerf scores of the benchmark folders the selected runs' result files are
    in (every run of a folder counts, selected or not), as a static sortable table
    and the time-to-train figure; (None, []) when no MLPerf result is selected."""
    folders = sorted({os.path.dirname(s) for s in sources if s and locate(s) is not None})
    if not folders:
        return None, []
    rows = summarize_submissions(db, folders)
    if not rows:
        return None, []
    table = submissions_table(rows, None)
    table = table[columns_for(list(table.columns), VIEWS["mlperf"], "markdown")]
    cols = list(table.columns)
    numeric = _numeric(table, cols)
    out = {
        "columns": _headers(cols, numeric),
        "rows": [
            [{"text": cell(r.get(c)), "value": _cell(r.get(c))} for c in cols]
            for r in records(table)
        ],
    }
    notes = []
    with warnings.catch_warnings(record=True) as said:  # folders left out of the figure
        warnings.simplefilter("always")
        try:
            out["svg"] = svg_of(lambda path: save_figure(rows, path))
        except LLMBenchError as e:
            out["svg"] = None
            notes.append(f"MLPerf: {e.message}")
    notes += [f"MLPerf: {w.message}" for w in said]
    return out, notes


def _figures(db, select, table, group_by, options) -> tuple[list[dict], list[str]]:
    """(the figures as inline SVG, notes: runs left out, a figure with nothing to draw)."""
    figures, notes = [], []
    for kind, title in FIGURES:
        with warnings.catch_warnings(record=True) as said:  # runs left out: on the page
            warnings.simplefilter("always")
            try:
                by = {"group_by": group_by} if kind == "scaling" else {}
                svg = _svg(kind, db, select, table, **by, options=options)
                figures.append({"name": kind, "title": title, "svg": svg})
            except LLMBenchError as e:  # a figure with nothing to draw: said, not fatal
                notes.append(f"{title}: {e.message}")
        notes += [f"{title}: {w.message}" for w in said]
    return figures, list(dict.fromkeys(notes))  # a file of two runs: its note once


def empty_page(message: str, command: str) -> str:
    """The report's page for a selection with no run: it says ``message``."""
    import pandas as pd  # start-up: the page loads with the command that writes it

    return table_page(
        "llmbench report", pd.DataFrame(), command=command, empty=message, noun="run(s)",
        title="",
    )  # fmt: skip


def table_page(
    heading: str,
    table,
    *,
    command: str,
    noun: str = "row(s)",
    lines: list[str] | None = None,
    figures: list[tuple[str, str, str]] = (),
    empty: str = "Nothing to show.",
    title: str | None = None,
) -> str:
    """A page like the report's for another table (``compare``'s pairs, ``mlperf``'s
    scores): sortable, filterable, with ``lines`` of text under it and ``figures``
    ((name, title, SVG text from ``svg_of``), ...)."""
    cols = list(table.columns)
    numeric = _numeric(table, cols)
    rows = records(table)
    data = {
        "columns": _script_columns(cols, numeric),
        "rows": [[_cell(r.get(c)) for c in cols] for r in rows],
        "text": [[cell(r.get(c)) for c in cols] for r in rows],
        "sources": ["" for _ in rows],
        "missing": [None for _ in rows],
        "provenance": [],
        "unset": [],
        "why": [],
        "more": [],
        "strings": [],
        "panels": [],
        "warnings": [],
        "nWarnings": [],
        "flagsCol": -1,
    }
    return _render(
        data,
        cols,
        numeric,
        command=command,
        title=heading if title is None else title,
        heading=heading,
        table_title=heading.split(": ")[-1],
        noun=noun,
        empty=empty,
        provenance=False,
        panels=False,
        mlperf=None,
        lines=lines or [],
        stat=None,
        summary=0,
        figures=[{"name": n, "title": t, "svg": svg} for n, t, svg in figures],
        notes=[],
    )


def compare_page(comp, threshold: float = 0.02, command: str = "llmbench compare --html") -> str:
    """``compare``'s page: the pairs of a ``comparison.Comparison``, what differs
    between them, and the figure of step times and changes (against ``threshold``)."""
    from . import comparison, plots  # matplotlib loads with the page that draws

    def draw_pairs(svg: str) -> None:
        fig = plots.plot_comparison(comp.pairs, comp.times, threshold)
        plots.save(fig, svg)
        plots.close(fig)

    shown = comp.pairs.drop(columns=["baseline_runs", "candidate_runs"])
    figures = [("compare", "Step times and changes", svg_of(draw_pairs))]
    return table_page(
        "llmbench compare: pairs", shown, command=command, noun="pair(s) x metric(s)",
        lines=comparison.notes(comp), figures=figures,
    )  # fmt: skip


def mlperf_page(
    rows: list[dict], benchmarks: list[str] | None = None, command: str = "llmbench mlperf --html"
) -> str:
    """``mlperf``'s page: the scores per benchmark folder (``summarize_submissions``
    rows, in the ``mlperf`` view's columns) and the time-to-train figure; folders the
    figure leaves out are DataWarnings."""
    figures = []
    if rows:
        svg = svg_of(lambda p: save_figure(rows, p, benchmarks))
        figures.append(("mlperf", "Time to train", svg))
    table = submissions_table(rows, None)
    table = table[columns_for(list(table.columns), VIEWS["mlperf"], "markdown")]
    return table_page(
        "llmbench mlperf: scores", table, command=command, noun="benchmark folder(s)",
        figures=figures, empty="No MLPerf results were found.",
    )  # fmt: skip
