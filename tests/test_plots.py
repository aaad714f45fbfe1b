"""Figures: the plotted data, checked through the Axes, and the files the CLI writes."""

from __future__ import annotations

import json
import warnings

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write

import llmbench
from llmbench.cli import cli
from llmbench.plots import DataWarning, plot_loss, plot_scaling, plot_steps, plot_topology
from llmbench.report import summarize_store

PAX = FIXTURES / "pax" / "fp8" / "175b"


@pytest.fixture(autouse=True)
def _figures_closed():
    """Each test's figures closed after it (pyplot keeps them otherwise)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


SETTINGS = FIXTURES / "settings.toml"
TOPOLOGY = FIXTURES / "megatron_deepspeed" / "topology-48n-181b"
# seed 001: GPUs -> last step time (s); GBS = 2 x GPUs, s = 2048
SEED001 = {128: 7.47, 256: 7.58, 512: 7.60, 1024: 7.89, 2048: 8.02}
# seed 002, "48 node contenders" (NHIDDEN=14336 / NLAYERS=72): (DP, PP, MBS) -> TFLOPs
SEED002 = {
    (4, 12, 1): 112.49,
    (4, 12, 2): 120.29,
    (4, 12, 4): 130.34,
    (4, 12, 8): 124.72,
    (8, 6, 1): 115.31,
    (8, 6, 2): 123.05,
    (8, 6, 4): 132.71,
}


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return r


def ok(*args):
    r = run(*args)
    assert r.exit_code == 0, r.output + r.stderr
    return r


@pytest.fixture
def pax_store():
    ok("ingest", PAX, "--settings", SETTINGS)


def test_scaling_axes_hold_the_seed001_points_and_the_ideal_line(pax_store):
    table, _ = summarize_store(None, stat="last", formula="dgxc")
    left, right = plot_scaling(table)
    lines = {ln.get_label(): ln for ln in left.get_lines()}
    xs = list(lines["measured"].get_xdata())
    ys = list(lines["measured"].get_ydata())
    assert xs == [128, 256, 512, 1024, 2048]
    expect = [2 * g * 2048 / SEED001[g] for g in xs]  # B s / t
    assert ys == pytest.approx(expect, rel=1e-12)
    assert ys[0] == pytest.approx(70185.8, abs=0.05) and ys[-1] == pytest.approx(
        1045961.09, abs=0.01
    )
    ideal = list(lines["ideal"].get_ydata())
    assert ideal == pytest.approx([expect[0] * g / 128 for g in xs], rel=1e-12)
    assert left.get_xscale() == "log" and left.get_yscale() == "log"
    assert "tokens/s" in left.get_ylabel()
    eff = {ln.get_label(): list(ln.get_ydata()) for ln in right.get_lines()}
    # efficiency = per-GPU throughput relative to 128 GPUs = t_128 / t_n
    assert eff["scaling efficiency"] == pytest.approx(
        [100 * SEED001[128] / SEED001[g] for g in xs], rel=1e-12
    )
    assert eff["MFU"] == pytest.approx(list(table.sort_values("num_gpus")["mfu"] * 100))
    # every point labelled with its throughput
    assert [t.get_text() for t in left.texts] == ["70.2k", "138k", "276k", "532k", "1.05M"]


def test_report_plot_writes_png_and_svg(pax_store, tmp_path):
    r = ok("report", "--stat", "last", "--formula", "dgxc", "--plot", tmp_path / "scaling.png")
    assert "wrote scaling figure" in r.stderr
    png = (tmp_path / "scaling.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert width > 1000  # two panels at 150 dpi
    ok("report", "--plot", tmp_path / "x.svg")
    assert b"<svg" in (tmp_path / "x.svg").read_bytes()[:500]
    ok("plot", "scaling", "-o", tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").read_bytes()[:5] == b"%PDF-"


def test_same_gpu_count_other_topologies_are_shown_not_averaged():
    ok("ingest", TOPOLOGY, "--set", "accelerator=a100-sxm-80gb")
    table, _ = summarize_store(None)
    (left,) = plot_scaling(table, ax=_axes())
    measured = next(ln for ln in left.get_lines() if ln.get_label() == "measured")
    # 7 runs at 384 GPUs: the best is the line's point, the 6 others are drawn beside it
    assert list(measured.get_xdata()) == [384]
    assert measured.get_ydata()[0] == pytest.approx(2048 * 2048 / 121.48)
    others = left.collections[0].get_offsets()
    assert len(others) == 6
    # one label per GPU count, the best run's: seven at one point would be a blob
    assert [t.get_text() for t in left.texts] == ["34.5k DP8 TP8 PP6 MBS4"]


def test_topology_bars_are_the_seed002_hw_tflops():
    ok("ingest", TOPOLOGY, "--set", "accelerator=a100-sxm-80gb")
    table, _ = summarize_store(None, stat="last")
    ax = plot_topology(table, value="hw_tflops_per_gpu")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    widths = [p.get_width() for p in ax.patches]
    got = {}
    for label, w in zip(labels, widths, strict=True):
        parts = dict(
            (p[:2] if p[:3] != "MBS" else "MBS", p.lstrip("DPTMBS")) for p in label.split()[2:]
        )
        got[(int(parts["DP"]), int(parts["PP"]), int(parts["MBS"]))] = w
        assert label.startswith("384 GPUs")
    assert got.keys() == SEED002.keys()
    for key, tflops in SEED002.items():
        assert got[key] == pytest.approx(tflops, rel=1e-3)
    assert widths == sorted(widths, reverse=True)  # best first


def test_plot_steps_draws_each_run_with_its_warmup_and_steady_line(tmp_path):
    log = FIXTURES / "megatron_deepspeed" / "restart-truncated-ms.log"
    logs = llmbench.read_logs(str(log))
    ax = plot_steps(logs)
    runs = logs.runs.sort_values("segment")
    lines = ax.get_lines()
    assert len(lines) == 2
    for line, run_id in zip(lines, runs["run_id"], strict=True):
        steps = logs.steps[logs.steps["run_id"] == run_id].sort_values("step")
        assert list(line.get_xdata()) == list(steps["step"])
        assert list(line.get_ydata()) == list(steps["step_time_s"])
    # dashed steady-state median after the warm-up (2 steps), one per run
    table = llmbench.summarize(logs)
    hl = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]
    values = sorted(seg[0][1] for c in hl for seg in c.get_segments())
    assert values == pytest.approx(sorted(table["step_time_s"]))
    assert len(ax.patches) == 2  # one shaded warm-up region per run
    ok("ingest", FIXTURES / "megatron_deepspeed")
    ok("plot", "steps", "-o", tmp_path / "steps.png")
    assert (tmp_path / "steps.png").stat().st_size > 10_000


def test_loss_against_tokens(tmp_path):
    logs = llmbench.read_logs(str(FIXTURES / "megatron_deepspeed" / "seed002-20b-fp16.log"))
    ax = llmbench.plot_loss(logs)
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [4194304, 8388608]
    assert list(line.get_ydata()) == pytest.approx([63.90223, 63.84045])


def test_runs_without_the_value_are_left_out_with_a_note(tmp_path):
    ok("ingest", PAX / "128", "--settings", SETTINGS)
    ok("ingest", FIXTURES / "mllog" / "aborted-malformed.txt.gz")
    r = ok("plot", "scaling", "-o", tmp_path / "s.png")
    assert "aborted-malformed.txt.gz: left out of the scaling figure (no num_gpus" in r.stderr
    table, _ = summarize_store(None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (left,) = plot_scaling(table, ax=_axes())
    assert [w.category for w in caught] == [DataWarning]


def test_nothing_to_plot_is_an_error_and_writes_no_file(tmp_path):
    ok("ingest", PAX / "128")  # no settings: no GPUs, no batch
    r = run("plot", "scaling", "-o", tmp_path / "s.png")
    assert r.exit_code == 1
    assert "no run has num_gpus and tokens_per_s" in r.stderr and "hint:" in r.stderr
    assert not (tmp_path / "s.png").exists()
    assert list(tmp_path.glob(".llmbench-*")) == []
    r = run("plot", "scaling", "-o", tmp_path / "s.jpeg")
    assert r.exit_code == 2 and ".png, .svg, .pdf" in r.stderr
    r = run("report", "--plot", tmp_path / "nowhere" / "s.png")
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_group_by_draws_one_series_per_value(tmp_path):
    for n in (128, 256):
        ok("ingest", PAX / str(n), "--settings", SETTINGS)
    write(
        tmp_path / "s.toml",
        'model = "gpt3-175b"\nnum_gpus = 512\nglobal_batch_size = 1024\n'
        'seq_len = 2048\ndtype = "bf16"\naccelerator = "h100-sxm"\n',
    )
    ok("ingest", PAX / "512", "--settings", tmp_path / "s.toml")
    table, _ = summarize_store(None)
    left, right = plot_scaling(table, group_by="dtype")
    labels = sorted(ln.get_label() for ln in left.get_lines())
    assert labels == [
        "dtype=bf16 ideal",
        "dtype=bf16 measured",
        "dtype=fp8 ideal",
        "dtype=fp8 measured",
    ]
    fp8 = next(ln for ln in left.get_lines() if ln.get_label() == "dtype=fp8 measured")
    assert list(fp8.get_xdata()) == [128, 256]
    assert json.loads(run("report", "--format", "json").stdout)[0]["num_gpus"] in (128, 256, 512)


def _axes():
    import matplotlib.pyplot as plt

    return plt.subplots()[1]


def test_envelope_keeps_every_bucket_extreme_and_the_ends():
    import numpy as np

    from llmbench.plots import envelope

    rng = np.random.default_rng(7)
    y = rng.uniform(11.0, 12.5, 100_003)
    y[[0, 12_345, 99_999]] = [30.0, 0.5, 40.0]  # spikes a plain every-n-th sample loses
    x = np.arange(len(y), dtype=float)
    ex, ey = envelope(x, y, 2000)
    assert len(ey) <= 2001 and ex[0] == 0 and ex[-1] == len(y) - 1
    assert {30.0, 0.5, 40.0} <= set(ey.tolist())
    assert np.all(np.diff(ex) > 0) and np.array_equal(y[ex.astype(int)], ey)
    k = -(-len(y) // 1000)  # each slice of the curve keeps its min and max
    for b in (0, 123, (len(y) - 1) // k):
        seg = y[b * k : (b + 1) * k]
        assert seg.min() in ey and seg.max() in ey
    short = np.arange(5.0)
    assert envelope(short, short)[1] is short  # nothing to cut


def test_steps_figure_of_many_runs_draws_the_first_ones_and_says_so(tmp_path):
    import pandas as pd

    steps = pd.DataFrame(
        {
            "run_id": [f"r{r:02d}" for r in range(35) for _ in range(50)],
            "step": [s for _ in range(35) for s in range(1, 51)],
            "step_time_s": [1.0 + r / 100 for r in range(35) for _ in range(50)],
            "loss": [5.0 - s / 100 for _ in range(35) for s in range(1, 51)],
        }
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ax = plot_steps(steps, limit=30)
        loss = llmbench.plot_loss(steps, limit=30)
    notes = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert any("5 runs beyond the first 30 left out of the steps figure" in n for n in notes)
    assert any("5 runs beyond the first 30 left out of the loss figure" in n for n in notes)
    assert len(ax.get_lines()) == 30 and len(loss.get_lines()) == 30
    assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(1.29)
    # through the store: only the drawn runs' step columns are read
    from llmbench.report import FIGURE_COLUMNS, load_selection

    for k in range(35):
        log = "".join(
            f" iteration {i:8d}/ 1000 | elapsed time per iteration (ms): {1000 + k}.0 | "
            f"lm loss: 5.0E+00 |\n"
            for i in range(1, 11)
        )
        write(tmp_path / f"run{k:02d}.log", log)
    ok("ingest", *sorted(tmp_path.glob("run*.log")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        view = load_selection(None, steps=FIGURE_COLUMNS["steps"], steps_limit=30)
    assert view.steps["run_id"].nunique() == 30 and len(view.steps) == 300
    assert list(view.steps.columns) == [
        *("run_id", "step", "step_time_s"),
        *("global_batch_size", "skipped_iterations", "nan_iterations"),  # the steady cut's
    ]
    assert any("5 runs beyond the first 30" in str(w.message) for w in caught)
    r = ok("plot", "steps", "-o", tmp_path / "many.png")
    assert "5 runs beyond the first 30 left out of the figure" in r.stderr


# -- figures with many runs: a rule each, checked on the Axes ------------------------------


def _many_steps(n_runs: int, first: float = 1.0):
    import pandas as pd

    rows = []
    for r in range(n_runs):
        for s in range(1, 41):
            t = first if s == 1 else 1.0 + r / 100 + (s % 3) / 1000
            rows.append({"run_id": f"r{r:02d}", "step": s, "step_time_s": t, "loss": 5 - s / 50})
    return pd.DataFrame(rows)


def test_every_series_of_a_figure_looks_different_and_none_is_faint():
    from llmbench.plots import look

    kinds = {tuple(look(i).values()) for i in range(56)}
    assert len(kinds) == 56
    assert all(look(i)["color"] != look(i + 1)["color"] for i in range(55))
    assert "#F0E442" not in {look(i)["color"] for i in range(56)}  # yellow on white


def test_steps_and_loss_of_many_runs_have_a_legend_beside_the_data():
    steps = _many_steps(20)
    for ax in (plot_steps(steps), llmbench.plot_loss(steps)):
        leg = ax.get_legend()
        assert leg is not None and len(leg.get_texts()) == 20
        kinds = {
            (ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in ax.get_lines()[:20]
        }
        assert len(kinds) == 20 if ax.get_lines()[0].get_label().startswith("r00") else True
        ax.figure.canvas.draw()
        # the legend sits right of the axes: it covers no data
        assert leg.get_window_extent().x0 >= ax.get_window_extent().x1


def test_warm_up_steps_do_not_set_the_step_time_range():
    ax = plot_steps(_many_steps(3, first=60.0), warmup=2)
    low, high = ax.get_ylim()
    assert high < 1.2 and low > 0.8  # steady steps at 1.00-1.02 s fill the axes
    assert "warm-up steps up to 60 s run off the top" in ax.get_title()


def test_scaling_draws_one_series_per_model_and_never_joins_models():
    def row(model, gpus, tps):
        return {"run_id": f"{model}-{gpus}", "source": f"/x/{model}/{gpus}.log", "model": model,
                "num_gpus": gpus, "tokens_per_s": tps, "mfu": 0.4}  # fmt: skip

    table = [row("llama3-8b", 8, 1e5), row("llama3-8b", 16, 1.9e5), row("llama3-70b", 64, 1e5)]
    table += [row("llama3-70b", 128, 1.8e5), row(None, 256, 5e3)]
    with pytest.warns(DataWarning, match=r"256.log: left out of the scaling figure \(no model"):
        left, right = plot_scaling(table)
    measured = {ln.get_label(): list(ln.get_xdata()) for ln in left.get_lines()}
    assert measured["llama3-70b measured"] == [64, 128]
    assert measured["llama3-8b measured"] == [8, 16]
    eff = {ln.get_label(): list(ln.get_ydata()) for ln in right.get_lines()}
    assert eff["llama3-8b scaling efficiency"] == pytest.approx([100, 95])
    assert eff["llama3-70b scaling efficiency"] == pytest.approx([100, 90])
    # labels of different series at one place are stacked, not piled up
    spots = [(t.xy, t.xyann) for t in left.texts]
    assert len(spots) == len(set(spots)) == 4


def test_mlperf_grid_of_thirty_submitters_is_readable():
    from llmbench.mlperf import plot_mlperf

    rows = [
        {"benchmark": b, "submitter": f"S{i:02d}", "accelerator": "H100", "round": "v5.0",
         "num_gpus": 2 ** (3 + i % 6), "score_min": 100 / (1 + i % 6), "folder": f"f{i}"}
        for i in range(30)
        for b in ("gpt3", "llama2_70b_lora")
    ]  # fmt: skip
    axes = plot_mlperf(rows)
    fig = axes[0].figure
    kinds = {
        (c.get_facecolor()[0].tobytes(), c.get_paths()[0].vertices.tobytes())
        for c in axes[0].collections
    }
    assert len(kinds) == 30  # colour + marker: no two submitters alike
    assert all(a.get_legend() is None for a in axes) and len(fig.legends) == 1
    fig.canvas.draw()
    legend_box = fig.legends[0].get_window_extent()
    assert all(legend_box.x0 >= a.get_window_extent().x1 for a in axes)  # beside, not over
    ticks = [t.get_text() for a in axes for t in a.get_yticklabels() + a.get_xticklabels()]
    assert ticks and not any("10^" in t or "times" in t for t in ticks)  # one plain format
    assert not axes[0].texts  # 30 points: read from the legend, not 30 labels


def test_one_model_run_in_two_frameworks_scales_as_two_series():
    import matplotlib

    matplotlib.use("Agg")
    row = {"model": "gpt3-175b", "mfu": 0.3, "tokens_per_s_per_gpu": None}
    rows = [
        {**row, "parser": "pax", "num_gpus": 128, "tokens_per_s": 69076.0},
        {**row, "parser": "pax", "num_gpus": 256, "tokens_per_s": 135738.0},
        {**row, "parser": "mllog", "num_gpus": 10752, "tokens_per_s": 5154710.0},
    ]
    left, right = plot_scaling(rows)
    labels = [ln.get_label() for ln in left.get_lines()]
    assert "gpt3-175b pax measured" in labels
    assert "gpt3-175b mllog measured" in labels  # not pax's 84x the GPUs
    eff = {ln.get_label(): list(ln.get_ydata()) for ln in right.get_lines()}
    assert eff["gpt3-175b mllog scaling efficiency"] == [100.0]  # its own base
    ticks = [t.get_text() for t in left.get_xticklabels()]
    assert ticks == ["128", "256", "10752"]


@pytest.mark.parametrize(
    "counts",
    [(256, 384, 512), (8, 16, 128, 256, 384, 512, 1024, 2048, 10752), (64, 96, 128, 192, 256)],
)
def test_gpu_count_labels_never_overlap(counts):
    import matplotlib

    matplotlib.use("Agg")
    rows = [{"model": "m", "num_gpus": n, "tokens_per_s": 1000.0 * n, "mfu": 0.3} for n in counts]
    left, _ = plot_scaling(rows)
    fig = left.get_figure()
    fig.canvas.draw()
    shown = [t for t in left.get_xticklabels() if t.get_text()]
    boxes = [t.get_window_extent() for t in shown]
    for a, b, t in zip(boxes, boxes[1:], shown, strict=False):
        if t.get_rotation() == 0:
            assert not a.overlaps(b), [t.get_text() for t in shown]
        else:  # turned 45 degrees: parallel lines of text, a line's height apart at least
            height = t.get_fontsize() * fig.dpi / 72
            assert (b.x1 - a.x1) * 0.7071 >= height, [t.get_text() for t in shown]
    assert shown[0].get_text() == str(counts[0])  # the smallest count is always named
    if len(counts) == 3:
        assert [t.get_text() for t in shown] == ["256", "384", "512"]  # room for all three


def test_runs_without_a_name_scale_by_parameter_count_and_joins_are_noted():
    import matplotlib

    matplotlib.use("Agg")
    base = {"model": None, "mfu": 0.3, "parser": "megatron_deepspeed"}
    rows = [
        {**base, "params": 181.2e9, "num_gpus": 384, "tokens_per_s": 34526.7},
        {**base, "params": 181.2e9, "num_gpus": 768, "tokens_per_s": 66000.0},
        {**base, "params": 23.55e9, "num_gpus": 8, "tokens_per_s": 5447.22},
    ]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        left, right = plot_scaling(rows)
    labels = {ln.get_label() for ln in right.get_lines()}
    assert "181.2B params scaling efficiency" in labels
    assert "23.55B params scaling efficiency" in labels  # never 8 -> 384 GPUs of another
    assert not said
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        plot_scaling(rows, group_by="parser")  # asked for: drawn, and said
    assert any("joins 2 models (181.2B params, 23.55B params)" in str(w.message) for w in said)


@pytest.mark.parametrize("name", ["fp16-loss-scale-search-2021.log", "ramp"])
def test_the_steps_figures_steady_line_is_the_tables_step_time(name, tmp_path):
    if name == "ramp":  # a batch ramp-up 16 -> 64: its steps are warm-up
        lines = [
            f" iteration {i:8d}/     100 | elapsed time per iteration (ms): {900.0 + 20 * i:.1f} "
            f"| global batch size: {16 if i <= 6 else 64:5d} | lm loss: 2.000000E+00 | number "
            "of skipped iterations:   0 | number of nan iterations:   0 |"
            for i in range(1, 21)
        ]
        log = write(tmp_path / "ramp.log", "training ...\n" + "\n".join(lines) + "\n")
    else:  # fp16: the lines whose interval skipped iterations are not steady steps
        log = FIXTURES / "megatron_lm" / name
    logs = llmbench.read_logs(str(log))
    ax = plot_steps(logs)
    (row,) = llmbench.summarize(logs).to_dict("records")
    (dashed,) = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]
    (((x0, y), (_, _)),) = dashed.get_segments()
    assert y == row["step_time_s"]
    if name == "ramp":  # the median of steps 7-20 (14 steps), the ramp shaded
        assert (row["warmup_steps"], x0, y) == (6, 7.0, (900 + 20 * 13.5) / 1000)


def test_runs_whose_steps_lie_apart_start_each_at_its_own_first_step():
    """BLOOM logging from step 31,214 beside runs from step 1: each is drawn from its own
    first step (not nine runs squeezed into x = 0); a run that prints no step numbers is
    counted in the axis label, not said of all."""
    import pandas as pd

    frame = _many_steps(2)
    bloom = frame[frame["run_id"] == "r00"].assign(run_id="bloom", step=lambda d: d["step"] + 31213)
    plain = frame[frame["run_id"] == "r01"].assign(run_id="unnumbered", step=None)
    steps = pd.concat([frame, bloom, plain], ignore_index=True)
    ax = plot_steps(steps)
    starts = {ln.get_label().split(" (")[0]: ln.get_xdata()[0] for ln in ax.get_lines()[::2]}
    assert set(starts.values()) == {1.0}, starts  # each from its own first step
    assert ax.get_xlabel() == (
        "Steps since each run's first (their ranges lie apart); 1 of 4 runs print no step "
        "numbers: lines in order"
    )
    loss = plot_loss(pd.concat([frame, bloom], ignore_index=True))
    assert {ln.get_xdata()[0] for ln in loss.get_lines()} == {1.0}
    # a run of 4,000 steps beside runs of 40: a log axis, the short ones not squeezed at 0
    long = _many_steps(1).assign(run_id="long", step=lambda d: (d["step"] - 1) * 100 + 1)
    wide = plot_loss(pd.concat([frame, long], ignore_index=True))
    assert wide.get_xscale() == "log" and wide.get_xlabel() == (
        "Step (log scale: the runs' lengths differ 98x)"  # 3,901 steps against 40
    )
    # runs over the same steps keep their step numbers
    ax = plot_steps(frame)
    assert ax.get_xlabel() == "Step" and ax.get_lines()[0].get_xdata()[0] == 1.0


def test_compare_figure_shows_every_verdict_inside_its_axes():
    import pandas as pd

    from llmbench.plots import plot_comparison

    pairs = pd.DataFrame(
        [
            {"key": "num_gpus=384", "metric": "tokens_per_s_per_gpu", "ratio": 1.1797,
             "ci_low": None, "ci_high": None, "verdict": "faster (point)"},
            {"key": "num_gpus=384", "metric": "step_time_s", "ratio": 0.8477,
             "ci_low": None, "ci_high": None, "verdict": "faster (point)"},
        ]
    )  # fmt: skip
    fig = plot_comparison(pairs, {"num_gpus=384": ([143.31, 143.2], [121.48, 121.5])})
    right = fig.axes[1]
    fig.canvas.draw()
    box = right.get_window_extent()
    words = [t for t in right.texts if t.get_text() == "faster (point)"]
    assert len(words) == 2
    for t in words:  # every verdict drawn whole inside the panel, never clipped in a corner
        w = t.get_window_extent()
        assert box.x0 <= w.x0 and w.x1 <= box.x1 and box.y0 <= w.y0 and w.y1 <= box.y1
    low, high = right.get_xlim()
    assert low < 0.8477 and high > 1.1797
    assert right.get_xlabel().endswith("(point estimates: a side has no steps to resample)")


def test_mlperf_labels_never_overlap_and_the_ideal_line_is_drawn():
    """The published GPT-3 scores: 64.3 min (v3.0, 512 H100) beside 66.9 min (v4.0, 1024
    Gaudi2) printed over each other before; every panel with two sizes has its ideal."""
    from llmbench.mlperf import plot_mlperf

    def row(sub, acc, rnd, n, score):
        return {"benchmark": "gpt3", "submitter": sub, "accelerator": acc, "hardware": acc,
                "round": rnd, "num_gpus": n, "score_min": score, "folder": f"{sub}{rnd}{n}"}  # fmt: skip

    rows = [
        row("NVIDIA", "h100-sxm", "v3.0", 512, 64.2638),
        row("Intel-HabanaLabs", "gaudi2", "v4.0", 1024, 66.9058),
        row("NVIDIA", "h100-sxm", "v4.0", 512, 50.728),
        row("NVIDIA", "h100-sxm", "v4.1", 256, 96.6645),
        row("Google", "tpu-v5p", "v4.0", 512, 114.7939),
        row("Intel-HabanaLabs", "gaudi2", "v3.1", 256, 223.9099),
        row("Google", "tpu-v5e", "v3.1", 4096, 44.6848),
    ]
    (ax,) = plot_mlperf(rows)
    fig = ax.figure
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.texts]
    assert len(boxes) == 7 and {t.get_text() for t in ax.texts} >= {
        "64.3 min v3.0",
        "66.9 min v4.0",
    }
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]
    ideal = {(*ln.get_xdata(),): list(ln.get_ydata()) for ln in ax.get_lines()
             if ln.get_linestyle() == "--" and len(ln.get_xdata())}  # fmt: skip
    # per series, from its smallest system: NVIDIA H100 256 -> 512 (v4.1 to v4.0), Gaudi2
    # 256 -> 1024; never from one submitter's or accelerator's point to another's
    assert ideal == {
        (256.0, 512.0): [96.6645, 96.6645 / 2],
        (256.0, 1024.0): [223.9099, 223.9099 / 4],
    }
    assert "ideal scaling from each series' smallest system" in [
        ln.get_label() for ln in ax.get_lines()
    ]


def test_topology_ranks_runs_only_among_their_own_model():
    def row(model, gpus, tp, pp, t):
        return {"run_id": f"{model}-{tp}-{pp}", "model": model, "num_gpus": gpus, "tp": tp,
                "pp": pp, "dp": gpus // (tp * pp), "step_time_s": t}  # fmt: skip

    rows = [row("gpt3-175b", 384, 8, 12, 143.3), row("llama3-8b", 8, 1, 1, 1.9)]
    rows += [row("gpt3-175b", 384, 8, 6, 121.5), row("llama3-8b", 8, 2, 1, 2.4)]
    ax = plot_topology(rows)
    assert ax.get_title().endswith("(lower is better; ranked within each model)")
    heads = [t.get_text() for t in ax.texts if t.get_fontweight() == "bold"]
    assert heads == ["gpt3-175b", "llama3-8b"]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    # each model's best first, never 1.9 s of an 8B model above a 175B model's runs
    assert ticks == [
        "384 GPUs  DP8 TP8 PP6", "384 GPUs  DP4 TP8 PP12", "8 GPUs  DP8 TP1 PP1",
        "8 GPUs  DP4 TP2 PP1",
    ]  # fmt: skip
    # 1.9 s beside 143.3 s: a log axis, or the small bars would not be seen
    assert ax.get_xscale() == "log" and ax.get_xlabel().endswith("(log scale: the values span 75x)")
    one = plot_topology(rows[::2])
    assert one.get_title().endswith("(lower is better)") and one.get_xscale() == "linear"
    assert not [t for t in one.texts if t.get_fontweight() == "bold"]  # one model: no heads


def test_many_scaling_series_share_one_legend_under_the_panels():
    """Nine MLPerf series: one legend under both panels (each series once, then what the
    line styles mean), not a legend per panel drawn over the other panel."""
    rows = [
        {"model": "llama2-70b", "accelerator": acc, "round": rnd, "framework": "NeMo",
         "num_gpus": n, "tokens_per_s": 1000.0 * n, "mfu": 0.4}
        for k, (acc, rnd) in enumerate([(a, r) for a in ("h100-sxm", "gb200", "mi300x")
                                        for r in ("v4.0", "v4.1", "v5.0")])
        for n in (8, 16 * (k + 1))
    ]  # fmt: skip
    left, right = plot_scaling(rows)
    fig = left.figure
    assert left.get_legend() is None and right.get_legend() is None and len(fig.legends) == 1
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert (
        len(texts) == 9 + 3
        and texts[0] == "llama2-70b gb200 v4.0"
        and texts[-1] == "dotted: MFU (right)"
    )
    fig.canvas.draw()
    below = fig.legends[0].get_window_extent()
    assert all(below.y1 <= a.get_window_extent().y0 for a in (left, right))
