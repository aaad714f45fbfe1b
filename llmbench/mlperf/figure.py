"""The MLPerf figure: time to train against accelerators, per benchmark
(matplotlib loads with ``llmbench.plots``' helpers, when a figure is drawn)."""

from __future__ import annotations

import math

from ..errors import NoDataError
from ..plots import MARKERS, PALETTE, close, gpu_ticks, save, styled, table_rows, usable, use_agg


def plot_mlperf(rows, ax=None, *, benchmarks: list[str] | None = None):
    """MLPerf time to train (score, minutes) against accelerators, one panel per
    benchmark and one marker style per submitter and accelerator, log-log. Systems
    of one series in the same round are joined, with ideal scaling (dashed) from
    the smallest. ``rows`` are ``llmbench.summarize_submissions()`` dicts (or a
    DataFrame of them). Returns the list of Axes."""
    data = [dict(r, source=r.get("folder")) for r in table_rows(rows)]
    data = usable(data, ("num_gpus", "score_min"), "MLPerf scaling")
    names = [n for n in (benchmarks or sorted({str(r["benchmark"]) for r in data}))]
    data = [r for r in data if r["benchmark"] in names]
    names = [n for n in names if any(r["benchmark"] == n for r in data)]
    if not names:
        raise NoDataError(
            "no scored MLPerf result for " + ", ".join(benchmarks or ["any benchmark"])
        )

    cols, nrows = min(len(names), 3), math.ceil(len(names) / 3)
    style, fig = styled((4.8 * cols, 4.2 * nrows) if ax is None else None)
    with style:
        if fig is not None:
            axes = [a for row in fig.subplots(nrows, cols, squeeze=False) for a in row]
            for spare in axes[len(names) :]:
                spare.remove()
            axes = axes[: len(names)]
        else:
            axes = list(ax) if isinstance(ax, list | tuple) else [ax]
        keys = sorted({_series(r) for r in data})
        looks = {
            k: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]) for i, k in enumerate(keys)
        }
        for a, name in zip(axes, names, strict=False):
            _panel(a, name, [r for r in data if r["benchmark"] == name], looks)
    return axes


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
        for r in pts:
            a.annotate(
                f"{r['score_min']:.3g} min\n{r.get('round') or ''}",
                (r["num_gpus"], r["score_min"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=colour,
            )
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_xlabel("Accelerators")
    a.set_ylabel("Time to train, score (minutes)")
    a.set_title(f"MLPerf {name}")
    gpu_ticks(a, mine)
    a.legend(loc="best")


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
