"""The MLPerf figure: time to train against accelerators, per benchmark
(matplotlib loads with ``llmbench.plots``' helpers, when a figure is drawn)."""

from __future__ import annotations

import math

from ..errors import NoDataError
from ..plots import close, gpu_ticks, look, save, styled, table_rows, usable, use_agg

LABELLED_POINTS = 12  # a panel with more points is read from its legend, not labels


def plot_mlperf(rows, ax=None, *, benchmarks: list[str] | None = None):
    """MLPerf time to train (score, minutes) against accelerators, one panel per
    benchmark and one colour + marker per submitter and accelerator (distinct up to
    56 series), log-log with plain-number ticks. Systems of one series in the same
    round are joined; each series' ideal scaling is dashed from its smallest system
    (across rounds where no round has two sizes). One legend
    for the figure, beside the panels; points labelled where a panel has few.
    ``rows`` are ``llmbench.summarize_submissions()`` dicts (or a DataFrame of
    them). Returns the list of Axes."""
    data, names = _benchmarks(rows, benchmarks)
    cols, nrows = min(len(names), 3), math.ceil(len(names) / 3)
    style, fig = styled((4.8 * cols + 2.6, 4.2 * nrows) if ax is None else None)  # + legend
    with style:
        axes = _axes(fig, ax, nrows, cols, len(names))
        keys = sorted({_series(r) for r in data})
        looks = {k: (look(i)["color"], look(i)["marker"]) for i, k in enumerate(keys)}
        panels = [
            (a, [r for r in data if r["benchmark"] == name])
            for a, name in zip(axes, names, strict=False)
        ]
        for (a, mine), name in zip(panels, names, strict=False):
            _panel(a, name, mine, looks)
        _legend(axes, fig)
        if fig is not None:  # the legend took its room: tick labels and point labels again
            _relabel(fig, panels, looks)
    return axes


def _benchmarks(rows, benchmarks: list[str] | None) -> tuple[list[dict], list[str]]:
    """(the scored rows of the benchmarks drawn, those benchmarks' names); NoDataError
    when none of them has a scored result."""
    data = [dict(r, source=r.get("folder")) for r in table_rows(rows)]
    data = usable(data, ("num_gpus", "score_min"), "MLPerf scaling")
    names = [n for n in (benchmarks or sorted({str(r["benchmark"]) for r in data}))]
    data = [r for r in data if r["benchmark"] in names]
    names = [n for n in names if any(r["benchmark"] == n for r in data)]
    if not names:
        raise NoDataError(
            "no scored MLPerf result for " + ", ".join(benchmarks or ["any benchmark"])
        )
    return data, names


def _axes(fig, ax, nrows: int, cols: int, n: int) -> list:
    """The ``n`` panels: a grid on a figure of our own (spare cells removed), else ``ax``."""
    if fig is None:
        return list(ax) if isinstance(ax, list | tuple) else [ax]
    axes = [a for row in fig.subplots(nrows, cols, squeeze=False) for a in row]
    for spare in axes[n:]:
        spare.remove()
    return axes[:n]


def _relabel(fig, panels: list[tuple], looks: dict) -> None:
    """Each panel's GPU ticks, and its point labels where it has few, drawn again once
    the figure's legend has taken its room."""
    fig.draw_without_rendering()
    for a, mine in panels:
        gpu_ticks(a, mine)
        if len(mine) <= LABELLED_POINTS:
            for t in list(a.texts):
                t.remove()
            _point_labels(a, mine, looks)


def _legend(axes: list, fig) -> None:
    """One legend for every panel (a series keeps its look across panels): beside
    them on a figure of our own, else beside the last panel; outside the data."""
    seen: dict[str, object] = {}
    for a in axes:
        for handle, label in zip(*a.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if not seen:
        return
    kw = {"fontsize": 7, "ncol": -(-len(seen) // 30), "frameon": False}
    if fig is not None:
        fig.legend(list(seen.values()), list(seen), loc="outside right upper", **kw)
    else:
        axes[-1].legend(
            list(seen.values()), list(seen), loc="upper left", bbox_to_anchor=(1.01, 1.0), **kw
        )


def _series(r: dict) -> str:
    """A series of the figure: one submitter's systems of one accelerator."""
    return f"{r['submitter']} · {r.get('hardware') or r.get('accelerator')}"


def _panel(a, name: str, mine: list[dict], looks: dict) -> None:
    """One benchmark's panel: each series' points, labelled, joined per round."""
    for key in sorted({_series(r) for r in mine}):
        colour, marker = looks[key]
        pts = [r for r in mine if _series(r) == key]
        a.scatter(
            [r["num_gpus"] for r in pts],
            [r["score_min"] for r in pts],
            color=colour,
            marker=marker,
            label=key,
            zorder=3,
        )
        _rounds(a, pts, colour)
    _ideal(a, mine, looks)
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_xlabel("Accelerators")
    a.set_ylabel("Time to train, score (minutes)")
    a.set_title(f"MLPerf {name}")
    gpu_ticks(a, mine)
    _plain_ticks(a)
    ys = [float(r["score_min"]) for r in mine]
    a.set_ylim(min(ys) / 1.5, max(ys) * 1.5)  # room for the labels inside the panel
    xs = [float(r["num_gpus"]) for r in mine]
    a.set_xlim(min(xs) / 1.4, max(xs) * 2.2)
    if len(mine) <= LABELLED_POINTS:
        _point_labels(a, mine, looks)


def _ideal(a, mine: list[dict], looks: dict) -> None:
    """Ideal scaling per series (dashed, in its colour) across rounds: its smallest
    system's fastest score divided by the accelerators added, up to its largest system;
    never from one submitter's or accelerator's point to another's. One legend entry
    says what the dashes are."""
    drawn = False
    for key in sorted({_series(r) for r in mine}):
        pts = [r for r in mine if _series(r) == key]
        x0 = min(float(r["num_gpus"]) for r in pts)
        top = max(float(r["num_gpus"]) for r in pts)
        if top == x0 or _joined_in_a_round(pts):  # one size, or _rounds drew it
            continue
        y0 = min(float(r["score_min"]) for r in pts if float(r["num_gpus"]) == x0)
        a.plot([x0, top], [y0, y0 * x0 / top], color=looks[key][0], linestyle="--", lw=1,
               alpha=0.6, zorder=1)  # fmt: skip
        drawn = True
    if drawn or any(_joined_in_a_round([r for r in mine if _series(r) == k]) for k in looks):
        a.plot([], [], color="0.45", linestyle="--", lw=1,
               label="ideal scaling from each series' smallest system")  # fmt: skip


def _joined_in_a_round(pts: list[dict]) -> bool:
    """Whether a series has two sizes in one round (``_rounds`` joins those, ideal too)."""
    sizes: dict[str, set] = {}
    for r in pts:
        sizes.setdefault(str(r.get("round")), set()).add(float(r["num_gpus"]))
    return any(len(v) > 1 for v in sizes.values())


def _point_labels(a, mine: list[dict], looks: dict) -> None:
    """Each point's score and round beside it; labels that would meet (two systems of
    one size and nearly one time: 64.3 min v3.0 and 66.9 min v4.0) are stacked a line
    apart instead of printed over each other."""
    fig = a.get_figure()
    pt = fig.dpi / 72  # pixels a point
    line = 8.5 * pt  # a 7-point label's line
    placed: list[tuple[float, float, float]] = []  # (left, right, y) of each label
    for r in sorted(mine, key=lambda r: (-float(r["score_min"]), float(r["num_gpus"]))):
        text = f"{r['score_min']:.3g} min {r.get('round') or ''}".strip()
        px, py = a.transData.transform((float(r["num_gpus"]), float(r["score_min"])))
        left, right = px + 5 * pt, px + (5 + 4.2 * len(text)) * pt  # ~0.6 em a character
        y = py - 3 * pt
        while any(left < qr and ql < right and abs(y - qy) < line for ql, qr, qy in placed):
            y -= line
        placed.append((left, right, y))
        a.annotate(
            text,
            (r["num_gpus"], r["score_min"]),
            textcoords="offset points",
            xytext=(5, (y - py) * 72 / fig.dpi),
            fontsize=7,
            color=looks[_series(r)][0],
            annotation_clip=False,
        )


def _plain_ticks(a) -> None:
    """One tick format on both axes: plain numbers (16, 2048; 30, 100), no 10^x
    beside 2x10^1, and no labelled minor ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    a.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    a.yaxis.set_major_formatter(plain)
    a.yaxis.set_minor_formatter(NullFormatter())
    a.xaxis.set_major_formatter(plain)
    a.xaxis.set_minor_formatter(NullFormatter())


def _rounds(a, pts: list[dict], colour: str) -> None:
    """A series' systems of one round joined, with ideal scaling (dashed) from the
    smallest."""
    for rnd in sorted({str(r.get("round")) for r in pts}):
        same = sorted((r for r in pts if str(r.get("round")) == rnd), key=lambda r: r["num_gpus"])
        xs = [float(r["num_gpus"]) for r in same]
        ys = [float(r["score_min"]) for r in same]
        if len(set(xs)) > 1:
            a.plot(xs, ys, color=colour)
            a.plot(xs, [ys[0] * xs[0] / x for x in xs], color=colour, linestyle="--", alpha=0.5)


def save_figure(rows: list[dict], path: str, benchmarks: list[str] | None = None) -> str:
    """``plot_mlperf`` of ``rows`` drawn off-screen and written to ``path`` (png, svg,
    pdf); returns the path."""
    use_agg()
    ax = plot_mlperf(rows, benchmarks=benchmarks)
    try:
        return save(ax, path)
    finally:
        close(ax)
