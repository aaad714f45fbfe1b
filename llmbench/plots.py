"""Figures from a metrics table or step rows: scaling, step times, topology, loss.

Every function draws on the Axes it is given (or on a new figure) and returns
the Axes, so notebooks and the CLI share one implementation. A run that lacks
the value a figure needs is left out with a ``DataWarning`` naming it; a figure
with nothing to draw raises ``NoDataError`` instead of writing an empty file.
matplotlib is imported only here, and only when a function runs.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

from . import series
from .columns import STEADY_CUT
from .errors import NoDataError, UsageError
from .formats import atomic_output, records

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common
# form of colour-vision deficiency; their yellow (#F0E442) is left out, too faint on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
LEGEND_INSIDE = 8  # entries a legend holds inside the axes; more go beside them
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
KINDS = ("scaling", "steps", "topology", "loss")
ANNOTATE_MAX = 40  # points beyond which labels would only overlap
STYLE = {
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "savefig.dpi": 150,
}
VALUE_LABELS = {
    "step_time_s": ("Step time (s per iteration)", 1.0, True),
    "tflops_per_gpu": ("Model TFLOP/s per GPU", 1.0, False),
    "hw_tflops_per_gpu": ("Hardware TFLOP/s per GPU", 1.0, False),
    "tflops_per_gpu_logged": ("Logged TFLOP/s per GPU", 1.0, False),
    "mfu": ("MFU (%)", 100.0, False),
    "hfu": ("HFU (%)", 100.0, False),
    "tokens_per_s": ("Throughput (tokens/s)", 1.0, False),
    "tokens_per_s_per_gpu": ("Throughput per GPU (tokens/s)", 1.0, False),
}


class DataWarning(UserWarning):
    """A run left out of a figure because it lacks a value the figure needs."""


def _pyplot():
    # matplotlib picks Agg by itself when there is no display, and the inline
    # backend in Jupyter; the CLI asks for Agg explicitly (see ``use_agg``).
    import matplotlib.pyplot as plt

    return plt


def styled(figsize: tuple[float, float] | None):
    """(style context, new Figure or None). The figure is made before entering the
    style context: Jupyter's inline backend switches interactive mode on when the
    first figure is made, and leaving an ``rc_context`` would switch it off again,
    so later figures would not show."""
    plt = _pyplot()
    fig = plt.figure(figsize=figsize, layout="constrained") if figsize else None
    return plt.rc_context(STYLE), fig


def use_agg() -> None:
    """Draw off-screen: for the command line, which only writes files."""
    import matplotlib

    matplotlib.use("Agg")


def look(i: int) -> dict[str, str]:
    """The ``i``-th series' colour, marker and line style: no two series of a figure
    share all three before 7 x 8 = 56 (colour and marker periods are coprime), and
    consecutive ones always differ in colour."""
    return {
        "color": PALETTE[i % len(PALETTE)],
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)],
    }


def legend(ax, n: int | None = None, loc: str = "best") -> None:
    """A legend inside ``ax`` for a few entries, beside it (right, outside the data)
    for more, in columns of at most 20."""
    handles, labels = ax.get_legend_handles_labels()
    n = len(labels) if n is None else n
    if not labels:
        return
    if n <= LEGEND_INSIDE:
        ax.legend(loc=loc)
        return
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        ncol=math.ceil(n / 20),
        fontsize=7,
    )


def _present(v: Any) -> bool:
    if v is None:
        return False
    try:
        return not math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def _short(v: float) -> str:
    """70185.8 -> '70.2k', 1045961 -> '1.05M'."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def topology_label(row: dict[str, Any]) -> str:
    """'DP4 TP8 PP12 MBS2' from whichever of dp/tp/pp/micro_batch_size a run has."""
    parts = [
        f"{name}{int(row[k])}"
        for name, k in (("DP", "dp"), ("TP", "tp"), ("PP", "pp"), ("MBS", "micro_batch_size"))
        if _present(row.get(k))
    ]
    return " ".join(parts)


def run_label(row: dict[str, Any]) -> str:
    """A short name for a run: its source's last two path parts, or its id."""
    src = row.get("source")
    if isinstance(src, str) and src and not src.startswith("<"):
        parts = src.replace(os.sep, "/").split("/")
        name = "/".join(parts[-2:])
        return (
            f"{name} #{int(row['segment'])}"
            if _present(row.get("segment")) and row["segment"]
            else name
        )
    return str(row.get("run_id"))


def table_rows(table) -> list[dict[str, Any]]:

    return records(table) if hasattr(table, "columns") else list(table)


def usable(rows: list[dict], needed: tuple[str, ...], figure: str) -> list[dict]:
    keep = []
    for r in rows:
        missing = [k for k in needed if not _present(r.get(k))]
        if missing:
            warnings.warn(
                f"{run_label(r)}: left out of the {figure} figure (no {', '.join(missing)})",
                DataWarning,
                stacklevel=3,
            )
        else:
            keep.append(r)
    if not keep:
        raise NoDataError(
            f"no run has {' and '.join(needed)} for the {figure} figure",
            remedy="see `llmbench report`: its `missing` column says what to --set at ingest",
        )
    return keep


def _series(rows: list[dict], group_by: str | None) -> list[tuple[str, list[dict]]]:
    """The scaling figure's series: by ``group_by``, else one per ``series.key_of`` (a
    model, by name or by parameter count for a run whose log gives its shape but no
    name, on one accelerator, in one MLPerf round and framework). Runs of no known model
    join none (left out, noted) unless no run has one (then one series per accelerator,
    round and framework, and a note)."""
    if group_by is None:
        named = [r for r in rows if series.model_of(r)]
        if named:
            for r in rows:
                if not series.model_of(r):
                    warnings.warn(
                        f"{run_label(r)}: left out of the scaling figure (no model: scaling "
                        "is a model's own; set model)",
                        DataWarning,
                        stacklevel=3,
                    )
        else:
            warnings.warn(
                "no run names a model or prints its shape: the runs are drawn per framework, "
                "and their scaling efficiency may set one model against another (set model)",
                DataWarning,
                stacklevel=3,
            )
        groups = series.split(named or rows)
        if len(groups) == 1:  # one series: no name needed on the lines
            return [("", next(iter(groups.values())))]
        keys = list(groups)
        return sorted(((series.label(k, keys), g) for k, g in groups.items()), key=lambda x: x[0])
    groups: dict[str, list[dict]] = {}
    for r in rows:
        v = r.get(group_by)
        groups.setdefault(str(v) if _present(v) else "(none)", []).append(r)
    for k, g in sorted(groups.items()):
        models = sorted({m for m in map(series.model_of, g) if m})
        if len(models) > 1:
            warnings.warn(
                f"{group_by}={k} joins {len(models)} models ({', '.join(models[:3])}"
                f"{', ...' if len(models) > 3 else ''}): its scaling efficiency sets one "
                "against another",
                DataWarning,
                stacklevel=3,
            )
    return [(f"{group_by}={k}", v) for k, v in sorted(groups.items())]


def plot_scaling(table, ax=None, *, group_by: str | None = None, annotate: bool | None = None):
    """Throughput against GPUs with the ideal line; scaling efficiency and MFU.

    ``table`` is ``summarize()``'s DataFrame (or its records). ``ax`` is None (a
    new two-panel figure), one Axes (the throughput panel only) or two Axes.
    Returns the list of Axes drawn: [throughput, efficiency] or [throughput].
    Ideal: linear from the series' smallest GPU count (its best run there).
    Efficiency: (tokens/s per GPU) / (the same at the smallest count), in %.
    """
    rows = usable(table_rows(table), ("num_gpus", "tokens_per_s"), "scaling")
    series = _series(rows, group_by)
    rows = [r for _, srows in series for r in srows]  # those drawn: their GPU counts ticked
    if annotate is None:
        annotate = len(rows) <= ANNOTATE_MAX
    style, fig = styled((11, 4.5) if ax is None else None)
    with style:
        if fig is not None:
            axes = list(fig.subplots(1, 2))
        elif isinstance(ax, list | tuple):
            axes = list(ax)
        else:
            axes = [ax]
        left = axes[0]
        right = axes[1] if len(axes) > 1 else None
        for i, (name, srows) in enumerate(series):
            colour, marker = look(i)["color"], look(i)["marker"]
            _scaling_series(left, right, name, srows, colour, marker, annotate, i)
        left.set_xscale("log", base=2)
        left.set_yscale("log")
        left.set_xlabel("GPUs")
        left.set_ylabel("Throughput (tokens/s)")
        left.set_title("Throughput against GPUs (log-log)")
        gpu_ticks(left, rows)
        many = fig is not None and len(left.get_legend_handles_labels()[1]) > LEGEND_INSIDE
        if not many:
            legend(left, None, "upper left")
        if right is not None:
            right.set_xscale("log", base=2)
            right.set_xlabel("GPUs")
            right.set_ylabel("Percent (%)")
            right.set_title("Scaling efficiency and MFU")
            right.set_ylim(0, max(105.0, right.get_ylim()[1]))
            gpu_ticks(right, rows)
            if not many:
                legend(right, None, "lower left")
        if many:
            _key_legend(fig, [name for name, _ in series])
    return axes


def _key_legend(fig, names: list[str]) -> None:
    """One legend under both panels for many series: each series once (its colour and
    marker), then what the line styles mean; never one legend per panel drawn over the
    other panel."""
    from matplotlib.lines import Line2D  # loads with the figure

    handles = [
        Line2D([], [], color=look(i)["color"], marker=look(i)["marker"], linestyle="-")
        for i in range(len(names))
    ]
    key = [
        (Line2D([], [], color="0.3", linestyle="--"), "dashed: ideal (left)"),
        (Line2D([], [], color="0.3", marker="o", mfc="none", linestyle=""),
         "hollow: other topologies (left)"),
        (Line2D([], [], color="0.3", linestyle=":"), "dotted: MFU (right)"),
    ]  # fmt: skip
    labels = [*names, *(text for _, text in key)]
    fig.legend(
        [*handles, *(h for h, _ in key)], labels, loc="outside lower center",
        ncol=min(3, len(labels)), fontsize=7, frameon=False,
    )  # fmt: skip


def _scaling_series(left, right, name, rows, colour, marker, annotate, k: int = 0) -> None:
    """One series: its throughput, the other topologies and the ideal line on ``left``;
    its scaling efficiency and MFU on ``right`` (where drawn)."""
    rows = sorted(rows, key=lambda r: float(r["num_gpus"]))
    best = _best_at_each_count(rows)
    tag = f"{name} " if name else ""
    _throughput_lines(left, rows, best, tag, colour, marker, annotate, k)
    if right is not None:
        _efficiency_lines(right, best, tag, colour, marker, annotate, k)


def _best_at_each_count(rows: list[dict]) -> dict[float, dict]:
    """GPU count -> its run of the highest throughput (the first of equals)."""
    best: dict[float, dict] = {}
    for r in rows:
        x = float(r["num_gpus"])
        if x not in best or r["tokens_per_s"] > best[x]["tokens_per_s"]:
            best[x] = r
    return best


def _throughput_lines(left, rows, best, tag, colour, marker, annotate, k: int) -> None:
    """A series' best throughput at each count, the other topologies (hollow points,
    not averaged in), and the ideal line from its smallest count."""
    xs = sorted(best)
    ys = [best[x]["tokens_per_s"] for x in xs]
    x0, y0 = xs[0], ys[0]
    left.plot(xs, ys, color=colour, marker=marker, label=f"{tag}measured", zorder=3)
    others = [r for r in rows if best[float(r["num_gpus"])] is not r]
    if others:  # same GPU count, other topologies: shown, not averaged
        left.scatter(
            [r["num_gpus"] for r in others],
            [r["tokens_per_s"] for r in others],
            color=colour,
            marker=marker,
            facecolors="none",
            label=f"{tag}other topologies",
            zorder=3,
        )
    left.plot(
        xs, [y0 * x / x0 for x in xs], color=colour, linestyle="--", alpha=0.6, label=f"{tag}ideal"
    )
    if annotate:  # the best run at each count (the others are hollow points)
        texts = [_short(best[x]["tokens_per_s"]) + _topology_suffix(best[x]) for x in xs]
        _labels(left, xs, ys, texts, colour, (4, -10 - 9 * (k % 4)))


def _efficiency_lines(right, best, tag, colour, marker, annotate, k: int) -> None:
    """A series' scaling efficiency (against its smallest count) and MFU, in percent."""
    xs = sorted(best)
    x0, y0 = xs[0], best[xs[0]]["tokens_per_s"]
    eff = [(best[x]["tokens_per_s"] / x) / (y0 / x0) * 100 for x in xs]
    right.plot(xs, eff, color=colour, marker=marker, label=f"{tag}scaling efficiency")
    mfu = [(x, best[x]["mfu"] * 100) for x in xs if _present(best[x].get("mfu"))]
    if mfu:
        right.plot(
            [m[0] for m in mfu],
            [m[1] for m in mfu],
            color=colour,
            marker=marker,
            linestyle=":",
            label=f"{tag}MFU",
        )
    if annotate:
        _labels(right, xs, eff, [f"{e:.1f}%" for e in eff], colour, (0, 6 + 9 * (k % 4)))


def _topology_suffix(row: dict[str, Any]) -> str:
    topo = topology_label(row)
    return f" {topo}" if topo else ""


def _labels(ax, xs, ys, texts, colour, offset: tuple[float, float]) -> None:
    """A small label per point; each series gets its own ``offset`` (the k-th a line
    below the one before), so labels of series at one place do not pile up."""
    for x, y, text in zip(xs, ys, texts, strict=True):
        ax.annotate(
            text, (x, y), textcoords="offset points", xytext=offset, fontsize=7, color=colour
        )


def gpu_ticks(ax, rows) -> None:
    """The runs' GPU counts as the x ticks of a log-2 axis, each labelled where its
    label fits: labels too close for their width turn 45 degrees, and where even
    that does not fit, a label beside its neighbour is left off (384 next to 512)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    counts = sorted({float(r["num_gpus"]) for r in rows if float(r["num_gpus"]) > 0})
    if not counts or len(counts) > 12:
        return
    ax.xaxis.set_major_locator(FixedLocator(counts))
    ax.xaxis.set_minor_locator(NullLocator())
    texts = [f"{c:g}" for c in counts]
    fig = ax.get_figure()
    width = ax.get_position().width * fig.get_figwidth() * fig.dpi  # the axes, in pixels
    lo, hi = (math.log2(max(v, 1e-9)) for v in ax.get_xlim())
    at = [(math.log2(c) - lo) / ((hi - lo) or 1) * width for c in counts]
    px = ax.xaxis.get_ticklabels()[0].get_fontsize() * fig.dpi / 72  # a label's height
    # level, two neighbours need half their widths (0.6 of the height per digit) apart
    pairs = zip(at, at[1:], texts, texts[1:], strict=False)
    if all(b - a >= (len(s) + len(t)) * 0.3 * px + 4 for a, b, s, t in pairs):
        ax.set_xticklabels(texts)
        return
    labels, last = [], -math.inf  # turned: a label needs its height of room
    for text, x in zip(texts, at, strict=True):
        keep = x - last >= 1.6 * px
        labels.append(text if keep else "")
        last = x if keep else last
    ax.set_xticklabels(labels, rotation=45, ha="right", rotation_mode="anchor")


MAX_POINTS = 2000  # a curve's points at most: about one per pixel column of a figure
RUNS_LIMIT = 30  # curves in a figure of steps: more are unreadable (and slow to draw)


def envelope(x, y, max_points: int = MAX_POINTS):
    """(x, y) cut to at most ``max_points`` points: each of ``max_points / 2``
    equal slices of the curve keeps its lowest and highest point, so spikes and
    dips stay visible as they would at full resolution."""
    import numpy as np

    n = len(y)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    k = -(-n // buckets)
    padded = np.full(buckets * k, np.nan)
    padded[:n] = y
    grid = padded.reshape(buckets, k)
    base = np.arange(buckets) * k
    full = ~np.isnan(grid).all(axis=1)
    lo = base[full] + np.nanargmin(grid[full], axis=1)
    hi = base[full] + np.nanargmax(grid[full], axis=1)
    keep = np.unique(np.concatenate([lo, hi, [n - 1]]))
    return x[keep], y[keep]


def _steps_frame(steps):
    """(steps DataFrame, run rows by run_id) from a Logs-like object or a DataFrame."""
    if hasattr(steps, "steps") and hasattr(steps, "runs"):
        return steps.steps, {r["run_id"]: r for r in records(steps.runs)}
    return steps, {}


def plot_steps(
    steps,
    ax=None,
    *,
    warmup: int | None = None,
    stat: str = "median",
    limit: int = RUNS_LIMIT,
):
    """Step time over steps per run: warm-up shaded, the steady-state statistic as a line.

    ``steps`` is what ``read_logs`` returns (or its ``steps`` DataFrame);
    ``warmup`` and ``stat`` follow ``summarize``; runs past the first ``limit``
    are left out (DataWarning); a long curve is drawn through its ``envelope``.
    Returns the Axes.
    """
    frame, runs = _steps_frame(steps)
    if frame is None or not len(frame) or "step_time_s" not in frame:
        raise NoDataError("no step times to plot")
    drawn = 0
    style, fig = styled((9, 4.5) if ax is None else None)
    with style:
        if fig is not None:
            ax = fig.subplots()
        lo, hi, top = math.inf, 0.0, 0.0
        shaded: set[tuple[float, float]] = set()
        timed = []
        for run_id, g in _runs_of(frame, limit, "steps"):
            g = _in_step_order(g[g["step_time_s"].notna()])
            label = run_label(runs.get(run_id, {"run_id": run_id}))
            if not len(g):
                warnings.warn(f"{label}: no step times", DataWarning, stacklevel=2)
                continue
            timed.append((label, g, _steps(g)))
        apart = _apart([xs for *_, xs in timed])
        for i, (label, g, xs) in enumerate(timed):
            kind = look(i)
            colour = kind["color"]
            xs = xs - xs[0] + 1 if apart else xs  # its first step is 1
            ts = g["step_time_s"].to_numpy(dtype=float, na_value=math.nan)
            st, w, edge, steady = _steady_of(g, xs, ts, warmup, stat)
            lo, hi = min(lo, float(steady.min())), max(hi, float(steady.max()))
            top = max(top, float(ts.max()))
            ax.plot(
                *envelope(xs, ts),
                color=colour,
                linestyle=kind["linestyle"],
                marker=kind["marker"] if len(xs) < 200 else None,
                markersize=3,
                label=f"{label} ({stat} {st['value']:.4g} s)",
            )
            if w and (xs[0], edge) not in shaded:  # once: 20 runs' shades would be black
                shaded.add((xs[0], edge))
                ax.axvspan(xs[0], edge, color="0.5", alpha=0.08, lw=0)
            ax.hlines(st["value"], edge, xs[-1], color=colour, linestyle="--", lw=1)
            drawn += 1
        if not drawn:
            raise NoDataError("no run has step times")
        title = f"Step time per step (shaded: warm-up; dashed: steady-state {stat})"
        title += _step_range(ax, lo, hi, top)
        ax.set_xlabel(
            _step_label([g for _, g, _ in timed], apart) + _log_x(ax, [x for *_, x in timed], apart)
        )
        ax.set_ylabel("Step time (s)")
        ax.set_title(title)
        legend(ax, drawn, "upper right")
    return ax


def _step_range(ax, lo: float, hi: float, top: float) -> str:
    """The y range of the steady times ``lo`` to ``hi`` (log where they differ tenfold);
    a line for the title when warm-up steps (up to ``top``) run off it."""
    if lo > 0 and hi / lo > 10:  # runs of very different sizes: keep each readable
        ax.set_yscale("log")
        ax.set_ylim(lo / 1.25, hi * 1.25)
    else:
        pad = (hi - lo) * 0.15 or hi * 0.05
        ax.set_ylim(max(0.0, lo - pad), hi + pad)
    if top > ax.get_ylim()[1]:
        return f"\nwarm-up steps up to {top:.4g} s run off the top"
    return ""


def plot_topology(table, ax=None, *, value: str = "step_time_s", limit: int = 60):
    """One bar per run, labelled GPUs and DP/TP/PP/MBS, of ``value`` (seed 002 tables).

    Bars are sorted best first (shortest step time, highest throughput); beyond
    ``limit`` bars the rest are left out with a DataWarning. Returns the Axes.
    """
    if value not in VALUE_LABELS:
        raise UsageError(f"unknown value {value!r} (values: {', '.join(VALUE_LABELS)})")
    title, scale, lower_is_better = VALUE_LABELS[value]
    groups = _topology_groups(usable(table_rows(table), (value,), "topology"))
    for _, g in groups:
        g.sort(key=lambda r: r[value], reverse=not lower_is_better)
    groups, shown = _best_first(groups, limit)
    style, fig = styled((8, 1.2 + 0.35 * (shown + len(groups))) if ax is None else None)
    with style:
        if fig is not None:
            ax = fig.subplots()
        rows = [r for _, g in groups for r in g]
        gpus = sorted({r.get("num_gpus") for r in rows if _present(r.get("num_gpus"))})
        colour_of = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(gpus)}
        ys, labels, at = _bar_places(ax, groups)
        vals = [r[value] * scale for r in rows]
        bars = ax.barh(ys, vals, color=[colour_of.get(r.get("num_gpus"), PALETTE[0]) for r in rows])
        ax.bar_label(bars, labels=[f"{v:.4g}" for v in vals], padding=3, fontsize=8)
        ax.set_yticks(ys, labels)
        ax.set_ylim(at - 0.5, -0.7)  # best on top
        ax.set_xlabel(title + _log_if_spread(ax, vals))
        better = "lower" if lower_is_better else "higher"
        within = "; ranked within each model" if len(groups) > 1 else ""
        ax.set_title(f"{title} by topology ({better} is better{within})")
        ax.grid(axis="y", visible=False)
    return ax


def _bar_places(ax, groups: list[tuple[str, list[dict]]]) -> tuple[list[int], list[str], int]:
    """(each bar's row, its label, the rows used): a group's bars under its name (drawn
    here, in bold), each labelled GPUs and DP/TP/PP/MBS (else the run's name)."""
    ys, labels, at = [], [], 0
    for name, g in groups:
        if name:  # a model's runs under its name, ranked among themselves
            ax.text(0, at, name, fontweight="bold", va="center", fontsize=8,
                    transform=ax.get_yaxis_transform())  # fmt: skip
            at += 1
        for r in g:
            n = f"{int(r['num_gpus'])} GPUs  " if _present(r.get("num_gpus")) else ""
            labels.append(n + (topology_label(r) or run_label(r)))
            ys.append(at)
            at += 1
    return ys, labels, at


SPREAD = 20  # bars whose values span more than this many times are drawn on a log axis


def _log_if_spread(ax, vals: list[float]) -> str:
    """A log value axis where the bars span more than ``SPREAD`` times (a 0.25 s step
    beside a 770 s one: the small bars would be invisible); what the label then adds."""
    positive = [v for v in vals if v > 0]
    if len(positive) < 2 or max(positive) / min(positive) <= SPREAD:
        return ""
    ax.set_xscale("log")
    return f" (log scale: the values span {max(positive) / min(positive):.0f}x)"


def _topology_groups(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """The runs a topology figure ranks together: one ``series`` each (a model on one
    accelerator, round and framework). Runs of no known model are left out (noted)
    unless no run has one (then they are ranked together, and a note says they may be
    different models)."""
    named = [r for r in rows if series.model_of(r)]
    if not named:
        if len(rows) > 1:
            warnings.warn(
                "no run names a model or prints its shape: the runs are ranked together, "
                "and may be different models (set model)",
                DataWarning,
                stacklevel=3,
            )
        return [("", rows)]
    for r in rows:
        if not series.model_of(r):
            warnings.warn(
                f"{run_label(r)}: left out of the topology figure (no model: a topology is "
                "ranked among runs of its model; set model)",
                DataWarning,
                stacklevel=3,
            )
    groups = series.split(named)
    keys = list(groups)
    if len(keys) == 1:
        return [("", groups[keys[0]])]
    return [(series.label(k, keys), g) for k, g in groups.items()]


def _best_first(groups: list[tuple[str, list]], limit: int) -> tuple[list, int]:
    """``groups`` cut to ``limit`` bars in all (each group's best kept first); a
    DataWarning says how many runs were left out. Returns (groups, bars)."""
    total = sum(len(g) for _, g in groups)
    if total <= limit:
        return groups, total
    warnings.warn(
        f"{total - limit} runs beyond the best {limit} left out of the topology figure",
        DataWarning,
        stacklevel=3,
    )
    each = max(1, limit // len(groups))
    cut = [(name, g[:each]) for name, g in groups]
    return cut, sum(len(g) for _, g in cut)


def plot_loss(steps, ax=None, *, limit: int = RUNS_LIMIT):
    """Loss against consumed tokens (or against steps when tokens are not logged),
    of the first ``limit`` runs (the others left out with a DataWarning)."""
    frame, runs = _steps_frame(steps)
    if frame is None or not len(frame) or "loss" not in frame or frame["loss"].isna().all():
        raise NoDataError("no run logs a loss")
    style, fig = styled((8, 4.5) if ax is None else None)
    with style:
        if fig is not None:
            ax = fig.subplots()
        curves = []
        for run_id, g in _runs_of(frame, limit, "loss"):
            label = run_label(runs.get(run_id, {"run_id": run_id}))
            g = _in_step_order(g[g["loss"].notna()])
            if not len(g):
                warnings.warn(f"{label}: no loss", DataWarning, stacklevel=2)
                continue
            curves.append((label, g, tokens_consumed(g, runs.get(run_id, {}))))
        by_tokens = all(t is not None for *_, t in curves)
        if not by_tokens and any(t is not None for *_, t in curves):
            warnings.warn(
                "some runs lack tokens consumed: loss drawn against steps",
                DataWarning,
                stacklevel=2,
            )
        xs = [tokens if by_tokens else _steps(g) for _, g, tokens in curves]
        apart = _apart(xs)
        for i, ((label, g, _), x) in enumerate(zip(curves, xs, strict=True)):
            x = x - x[0] + (0 if by_tokens else 1) if apart else x  # from step 1, token 0
            y = g["loss"].to_numpy(dtype=float, na_value=math.nan)
            kind = look(i)
            ax.plot(
                *envelope(x, y),
                color=kind["color"],
                linestyle=kind["linestyle"],
                marker=kind["marker"],
                markevery=max(1, min(len(y), MAX_POINTS) // 8),
                markersize=3,
                label=label,
            )
        spread = "" if by_tokens and apart else _log_x(ax, xs, apart)  # tokens from 0: linear
        ax.set_xlabel(_loss_x_label(curves, by_tokens, apart) + spread)
        ax.set_ylabel("Training loss")
        ax.set_title("Training loss")
        legend(ax, len(curves), "upper right")
    return ax


def check_path(path: str) -> str:
    """The figure format of ``path`` ('png', 'svg', 'pdf'); UsageError otherwise."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FIGURE_SUFFIXES:
        raise UsageError(
            f"cannot tell the figure format from {path!r}",
            remedy=f"end the file name with {', '.join(FIGURE_SUFFIXES)}",
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"folder {folder!r} does not exist", path=path)
    return suffix[1:]


def _runs_of(frame, limit: int, figure: str):
    """(run_id, rows) of ``frame``'s first ``limit`` runs; a DataWarning names how
    many more were left out."""
    groups = frame.groupby("run_id", sort=False)
    if groups.ngroups > limit:
        warnings.warn(
            f"{groups.ngroups - limit} runs beyond the first {limit} left out of the "
            f"{figure} figure: select the runs to draw",
            DataWarning,
            stacklevel=3,
        )
    for k, item in enumerate(groups):
        if k == limit:
            return
        yield item


def _in_step_order(g):
    """``g`` sorted by step (rows read from a store already are); rows without a
    step number stay in line order."""
    if g["step"].isna().any() or g["step"].is_monotonic_increasing:
        return g
    return g.sort_values("step", kind="stable")


def _steady_of(g, xs, ts, warmup: int | None, stat: str):
    """(steady-state result, warm-up count, x of the first steady step, the steady
    times) of one run's rows as the report cuts them: normal steps only (no skipped
    or NaN iterations in the interval), a batch ramp-up as warm-up."""
    from .metrics import normal_timed, run_warmup, steady_state  # start-up: CLI imports plots

    cols = {c: g[c].to_numpy(dtype=float, na_value=math.nan) for c in STEADY_CUT if c in g}
    normal, _ = normal_timed({**cols, "x": xs.astype(float)})
    if not len(normal["step_time_s"]):
        normal = {"step_time_s": ts, "x": xs.astype(float)}  # all faulty: as drawn
    w = run_warmup(normal, warmup)
    steady = normal["step_time_s"][w:]  # the y range: warm-up spikes would flatten it
    return steady_state(normal["step_time_s"], w, stat), w, normal["x"][w], steady


def _steps(g):
    """The x of each row: its step, or its place (1, 2, ...) in a run whose log
    prints no step numbers (Hugging Face loss dicts, MLPerf tracked_stats)."""
    import numpy as np

    if g["step"].isna().any():
        return np.arange(1, len(g) + 1, dtype=float)
    return g["step"].to_numpy(dtype=float, na_value=math.nan)


def _apart(xs: list) -> bool:
    """Whether runs' x ranges lie apart (one run starts after another has ended: BLOOM
    logging from step 31,214 beside runs from step 1), so that each is drawn from its
    own first step instead of squeezing the others into a corner."""
    drawn = [x for x in xs if len(x)]
    if len(drawn) < 2:
        return False
    return max(float(x[0]) for x in drawn) > min(float(x[-1]) for x in drawn)


def _loss_x_label(curves: list, by_tokens: bool, apart: bool) -> str:
    """The loss figure's x label: tokens (from each run's first point where the runs lie
    apart), else steps as ``_step_label`` says."""
    if by_tokens:
        since = " since each run's first logged step (their ranges lie apart)"
        return "Tokens consumed" + (since if apart else "")
    return _step_label([g for _, g, _ in curves], apart)


def _log_x(ax, xs: list, apart: bool) -> str:
    """A log x axis where the runs' lengths differ more than ``SPREAD`` times (one run of
    7,500 steps beside runs of 50 would squeeze them against x = 0); what the label
    then adds."""
    drawn = [x - x[0] + 1 if apart else x for x in xs if len(x)]  # as drawn: from 1
    if len(drawn) < 2 or min(float(x[0]) for x in drawn) <= 0:
        return ""
    ends = [float(x[-1]) for x in drawn]
    if max(ends) / min(ends) <= SPREAD:
        return ""
    ax.set_xscale("log")
    return f" (log scale: the runs' lengths differ {max(ends) / min(ends):.0f}x)"


def _step_label(groups: list, apart: bool = False) -> str:
    """The x label of runs drawn by step: how many print no step numbers (their lines
    are drawn in order), and whether each run starts at its own first step."""
    unnumbered = sum(bool(g["step"].isna().any()) for g in groups)
    if unnumbered == len(groups):
        return "Logged step (in order; no step numbers printed)"
    head = "Steps since each run's first (their ranges lie apart)" if apart else "Step"
    if unnumbered:
        head += f"; {unnumbered} of {len(groups)} runs print no step numbers: lines in order"
    return head


def tokens_consumed(g, run: dict[str, Any]):
    """Tokens consumed at each step (a float array): logged, else samples x
    seq_len, else step x B x s; None when none of these is known."""
    s, B = run.get("seq_len"), run.get("global_batch_size")
    if "consumed_tokens" in g and g["consumed_tokens"].notna().all():
        return g["consumed_tokens"].to_numpy(dtype=float, na_value=math.nan)
    if _present(s) and "consumed_samples" in g and g["consumed_samples"].notna().all():
        return g["consumed_samples"].to_numpy(dtype=float, na_value=math.nan) * float(s)
    if _present(s) and _present(B) and g["step"].notna().all():
        return g["step"].to_numpy(dtype=float, na_value=math.nan) * float(B) * float(s)
    return None


def save(fig_or_ax, path: str) -> str:
    """Write a figure (png, svg or pdf by the suffix) atomically; returns the path."""
    fmt = check_path(path)
    fig = fig_or_ax if hasattr(fig_or_ax, "savefig") else _figure_of(fig_or_ax)
    with atomic_output(path, suffix="." + fmt) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight")
    return path


def _figure_of(ax):
    return (ax[0] if isinstance(ax, list | tuple) else ax).get_figure()


def close(fig_or_ax) -> None:
    """Free a figure made for saving (the CLI draws many)."""
    plt = _pyplot()
    plt.close(fig_or_ax if hasattr(fig_or_ax, "savefig") else _figure_of(fig_or_ax))


def plot_comparison(pairs, times: dict[str, tuple], threshold: float = 0.02, fig=None):
    """Compare's figure: per pair, the steady step times of the baseline and the
    candidate side by side (box plots), and per pair and metric the ratio with its
    interval against the ``threshold`` band. ``pairs``: ``comparison.compare`` rows;
    ``times``: pair key -> (baseline step times, candidate step times). Returns the
    Figure."""
    import numpy as np

    style, new = styled((11, 0.9 + 0.55 * max(len(pairs), 2)) if fig is None else None)
    fig = fig or new
    with style:
        left, right = fig.subplots(1, 2, width_ratios=(1.2, 1))
        keys = [
            k for k in dict.fromkeys(pairs["key"]) if k in times and all(len(t) for t in times[k])
        ]
        data, pos, labels = [], [], []
        for i, k in enumerate(keys):
            b, c = times[k]
            data += [np.asarray(b, dtype=float), np.asarray(c, dtype=float)]
            pos += [3 * i + 1, 3 * i + 2]
            labels.append((3 * i + 1.5, k))
        if data:
            box = left.boxplot(
                data, positions=pos, orientation="horizontal", widths=0.8, patch_artist=True
            )
            for j, patch in enumerate(box["boxes"]):
                patch.set_facecolor(PALETTE[j % 2])
                patch.set_alpha(0.6)
            left.set_yticks([p for p, _ in labels], [k for _, k in labels])
            left.set_xlabel("Steady step time (s)")
            left.plot([], [], color=PALETTE[0], lw=6, alpha=0.6, label="baseline")
            left.plot([], [], color=PALETTE[1], lw=6, alpha=0.6, label="candidate")
            legend(left, 2, "lower right")
        else:
            left.text(0.5, 0.5, "no steps to draw", ha="center", va="center")
            left.set_axis_off()
        _changes(right, pairs[pairs["ratio"].notna()].reset_index(drop=True), threshold)
        left.set_title("Step times")
    return fig


def _changes(ax, rows, threshold: float) -> None:
    """Compare's right panel: each pair's ratio (its interval where there is one) and its
    verdict written beside it, every point and word inside the axes."""
    import numpy as np

    ax.axvspan(1 - threshold, 1 + threshold, color="0.9", label=f"±{threshold:.0%}")
    ax.axvline(1, color="0.4", lw=1)
    xs = [1 - threshold, 1 + threshold]
    bands = 0
    for i, r in rows.iterrows():
        lo, hi = r["ci_low"], r["ci_high"]
        banded = lo is not None and lo == lo
        err = [[r["ratio"] - lo], [hi - r["ratio"]]] if banded else None
        bands += banded
        xs += [r["ratio"], *([lo, hi] if banded else [])]
        kind = look(i)
        ax.errorbar(r["ratio"], i, xerr=err, fmt=kind["marker"], color=kind["color"], capsize=4)
        ax.annotate(
            str(r["verdict"]), (r["ratio"], i), xytext=(0, 7), textcoords="offset points",
            ha="center", va="bottom", fontsize=8, color=kind["color"],
        )  # fmt: skip
    low, high = min(xs), max(xs)
    pad = (high - low) * 0.25 or 0.05
    ax.set_xlim(low - pad, high + pad)  # the verdicts' words fit beside the outermost points
    ax.set_ylim(len(rows) - 0.4, -0.8)  # top to bottom, room above the first verdict
    ax.set_yticks(
        np.arange(len(rows)), [f"{r['key']}\n{r['metric']}" for r in rows.to_dict("records")]
    )
    how = (
        "bars: bootstrap interval" if bands == len(rows) and bands
        else "point estimates: a side has no steps to resample" if not bands
        else "bars: bootstrap interval; no bar: a point estimate"
    )  # fmt: skip
    ax.set_xlabel(f"candidate / baseline ({how})")
    ax.set_title("Change per pair")


def plot_scaling_law(out, curves: dict[str, tuple], ax=None):
    """Tokens/s per GPU against GPUs (log x): the measured runs as points, each
    model's fitted law as a line with its 95 % prediction band, predictions hollow.
    ``out``: a ``scalability.scaling`` table; ``curves``: ``scalability.curves(out)``.
    Returns the Axes."""
    style, fig = styled((8, 4.5) if ax is None else None)
    with style:
        if fig is not None:
            ax = fig.subplots()
        keyed = [series.key_of(r) for r in records(out)]
        keys = list(dict.fromkeys(keyed))
        for i, key in enumerate(keys):
            g = out[[k == key for k in keyed]]
            model = series.label(key, keys)
            kind = look(i)
            m = g[g["kind"] == "measured"]
            ax.plot(m["num_gpus"], m["tokens_per_s_per_gpu"], kind["marker"], color=kind["color"],
                    label=f"{model} measured")  # fmt: skip
            p = g[g["kind"] != "measured"]
            if len(p):
                ax.plot(p["num_gpus"], p["tokens_per_s_per_gpu"], kind["marker"], mfc="none",
                        color=kind["color"], label=f"{model} predicted")  # fmt: skip
            if key in curves:
                xs, ys, lo, hi = curves[key]
                law = g["law"].dropna().iloc[0] if g["law"].notna().any() else "law"
                ax.plot(
                    xs, ys, color=kind["color"], linestyle=kind["linestyle"], label=f"{model} {law}"
                )
                ax.fill_between(xs, lo, hi, color=kind["color"], alpha=0.15)
        ax.set_xscale("log", base=2)
        counts = sorted({int(n) for n in out["num_gpus"]})
        ax.set_xticks(counts, [str(n) for n in counts])  # plain numbers, not 2^k
        ax.minorticks_off()
        ax.set_xlabel("GPUs")
        ax.set_ylabel("Tokens/s per GPU")
        ax.set_title("Scaling: measured, fitted, predicted (95 % band)")
        legend(ax)
    return ax
