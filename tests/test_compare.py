"""`llmbench compare`: verdicts with bootstrap intervals, the settings that differ,
a regression gate for CI (issue 18)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write

from llmbench.cli import cli
from llmbench.comparison import Side, compare_runs, verdict
from llmbench.errors import UsageError

TOPOLOGY = FIXTURES / "megatron_deepspeed" / "topology-48n-181b"
SETTINGS = FIXTURES / "settings.toml"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _side(name: str, t0: float, seed: int, steps: int = 100, noise: float = 0.02) -> Side:
    """One run whose steady step times are ``t0`` with ``noise`` (relative, normal)."""
    t = t0 * (1 + noise * np.random.default_rng(seed).standard_normal(steps))
    median = float(np.median(t))
    table = pd.DataFrame(
        [{"run_id": name, "model": "m", "num_gpus": 8, "step_time_s": median}]
    ).assign(tokens_per_s_per_gpu=4096 / median)
    return Side(name, table, {name: t})


def test_a_three_percent_slowdown_in_two_percent_noise_is_slower_and_half_a_percent_same():
    trials = 60
    slower = same = 0
    for k in range(trials):
        base = _side("b", 1.0, 2 * k)
        cmp3 = compare_runs(base, _side("c", 1.03, 2 * k + 1), seed=k).pairs.iloc[0]
        truth = 1 / 1.03  # tokens/s per GPU falls by the step time's rise
        slower += cmp3["verdict"] == "slower" and cmp3["ci_low"] <= truth <= cmp3["ci_high"]
        cmp05 = compare_runs(base, _side("c", 1.005, 2 * k + 1), seed=k).pairs.iloc[0]
        same += cmp05["verdict"] == "same"
    assert slower >= 0.95 * trials and same >= 0.95 * trials, (slower, same)


def test_the_bootstrap_is_seeded():
    a, b = _side("b", 1.0, 1), _side("c", 1.01, 2)
    first, again = compare_runs(a, b, seed=7).pairs, compare_runs(a, b, seed=7).pairs
    assert first[["ci_low", "ci_high"]].equals(again[["ci_low", "ci_high"]])


def test_verdicts_follow_the_metrics_direction_and_the_threshold():
    assert verdict(1.05, 1.03, 1.07, 1, 0.02) == "faster"  # tokens/s up 5 %
    assert verdict(1.05, 1.03, 1.07, -1, 0.02) == "slower"  # step time up 5 %
    assert verdict(1.05, 0.99, 1.11, 1, 0.02) == "same"  # the interval holds no change
    assert verdict(1.01, 1.005, 1.015, 1, 0.02) == "same"  # below the threshold
    assert verdict(0.9, None, None, 1, 0.02) == "slower"  # a point estimate


def test_topology_runs_compared_name_the_micro_batch_dp_and_pp_that_differ():
    r = run(
        "compare", TOPOLOGY / "dp4-tp8-pp12-mbs1.log", TOPOLOGY / "dp8-tp8-pp6-mbs4.log",
        "--settings", SETTINGS, "--format", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    (pair,) = json.loads(r.stdout)["pairs"]
    assert pair["key"] == {"model": None, "num_gpus": 384}  # no model known: paired as such
    diff = [(d["setting"], d["baseline"], d["candidate"]) for d in pair["settings_diff"]]
    assert diff[:3] == [("pp", 12, 6), ("dp", 4, 8), ("micro_batch_size", 1, 4)]
    m = pair["metrics"]["tokens_per_s_per_gpu"]
    assert m["ratio"] == m["candidate"] / m["baseline"] and m["verdict"] == "faster (point)"


def _megatron(path, times_ms: list[float]):
    head = "using world size: 8, data-parallel-size: 8, tensor-model-parallel size: 1, "
    head += "pipeline-model-parallel size: 1 \n"
    lines = [
        f" iteration {k + 1:8d}/{1000:8d} | consumed samples: {64 * (k + 1):12d} | elapsed time "
        f"per iteration (ms): {t:.1f} | learning rate: 1.000E-04 | global batch size:    64 | "
        "lm loss: 5.000000E+00 | loss scale: 1.0 | number of skipped iterations:   0 | "
        "number of nan iterations:   0 |\n"
        for k, t in enumerate(times_ms)
    ]
    return write(path, head + "".join(lines))


def test_fail_on_regression_exits_3_on_a_regression_and_0_otherwise(tmp_path):
    rng = np.random.default_rng(0)
    fast = _megatron(tmp_path / "v1.log", list(1000 * (1 + 0.01 * rng.standard_normal(60))))
    slow = _megatron(tmp_path / "v2.log", list(1060 * (1 + 0.01 * rng.standard_normal(60))))
    common = ("--set", "seq_len=2048", "--match", "num_gpus", "--fail-on-regression")
    worse = run("compare", fast, slow, *common)
    assert worse.exit_code == 3, worse.output
    assert "▼ slower" in worse.stdout and "-5." in worse.stdout
    better = run("compare", slow, fast, *common)
    assert better.exit_code == 0 and "▲ faster" in better.stdout
    md = run("compare", fast, slow, *common, "--format", "markdown").stdout.splitlines()
    assert md[0].startswith("| pair | metric | baseline | candidate | change | interval |")
    assert set(md[1].replace("|", "").strip()) <= set("-: ")  # GitHub's table separator


def test_published_reference_rows_pair_by_model_and_gpus(tmp_path):
    report = tmp_path / "r.json"
    db = tmp_path / "s.db"
    assert run("ingest", FIXTURES / "pax", "--db", db, "--settings", SETTINGS).exit_code == 0
    report.write_text(run("report", "--db", db, "--format", "json").stdout)
    r = run("compare", "reference", report, "--format", "json", "--fail-on-regression")
    assert r.exit_code == 3  # a point verdict gates too
    out = json.loads(r.stdout)
    (pair,) = [p for p in out["pairs"] if p["key"] == {"model": "gpt3-175b", "num_gpus": 128}]
    m = pair["metrics"]["tokens_per_s_per_gpu"]
    assert m["baseline"] == 716 and m["verdict"] == "slower (point)"  # NeMo 24.07: 716
    assert any(u["side"] == "candidate" for u in out["unmatched"])  # 256, 1024, 2048 GPUs


def test_sides_without_pairs_or_with_an_unknown_metric_are_clear_errors(tmp_path):
    # a run that names its model pairs with none that does not
    r = run("compare", FIXTURES / "torchtitan" / "llama3-8b-4gpu.log", NEMO2)
    assert r.exit_code == 1
    assert "no baseline run found a candidate with the same model, num_gpus" in r.stderr
    r = run("compare", FIXTURES / "torchtitan", FIXTURES / "torchtitan", "--metric", "speed")
    assert r.exit_code == 2 and "unknown metric 'speed'" in r.stderr
    # a log that is not there is named as such, not as a store that is missing
    r = run("compare", "/tmp/no/such/a.log", "reference", "--db", "/tmp/no/such.db")
    assert r.exit_code == 1 and "/tmp/no/such/a.log: no such file or directory" in r.stderr


def test_the_notebook_api_returns_a_frame_with_the_settings_diff():
    import llmbench

    frame = llmbench.compare(
        [str(TOPOLOGY / "dp4-tp8-pp12-mbs1.log")],
        [str(TOPOLOGY / "dp4-tp8-pp12-mbs8.log")],
        metrics=("tokens_per_s_per_gpu", "step_time_s"),
    )
    assert list(frame["metric"]) == ["tokens_per_s_per_gpu", "step_time_s"]
    assert frame["settings_diff"][0][0] == ("micro_batch_size", 1, 8)
    assert frame["verdict"][0] == "faster (point)" and frame["verdict"][1] == "faster (point)"
    assert frame.attrs["unmatched"] == []


NEMO2 = FIXTURES / "nemo" / "nemo2-llama3-8b.log"
TITAN = FIXTURES / "torchtitan" / "llama3-2026-validate.log"


def test_two_logs_that_name_no_model_or_gpus_pair_on_a_metric_both_have():
    """Most NeMo, Megatron-LM and torchtitan logs name neither: they pair with each other
    (and say so), on the first metric both sides have (here the step time)."""
    r = run("compare", TITAN, NEMO2, "--format", "json")
    assert r.exit_code == 0, r.output
    (pair,) = json.loads(r.stdout)["pairs"]
    assert pair["key"] == {"model": None, "num_gpus": None}
    m = pair["metrics"]["step_time_s"]
    # torchtitan's steady steps take 1.12515 s (its report's median), NeMo's 1.929 s
    assert (m["baseline"], m["candidate"]) == (1.12515, 1.929)
    assert m["ratio"] == m["candidate"] / m["baseline"] and m["verdict"] == "slower"
    assert m["ci_low"] < m["ratio"] < m["ci_high"]
    text = run("compare", TITAN, NEMO2).stdout
    assert "runs that name no model, num_gpus on either side were paired with each other" in text
    # the GPU count given: tokens/s per GPU, the default metric, is there again
    r = run("compare", TITAN, NEMO2, "--set", "num_gpus=8", "--set", "seq_len=8192",
            "--set", "global_batch_size=128", "--format", "json")  # fmt: skip
    (pair,) = json.loads(r.stdout)["pairs"]
    assert list(pair["metrics"]) == ["tokens_per_s_per_gpu"]


def test_the_notebook_compares_what_read_logs_and_summarize_return():
    import llmbench

    a, b = llmbench.read_logs([str(TITAN)]), llmbench.read_logs([str(NEMO2)])
    frame = llmbench.compare(a, b)
    assert list(frame["metric"]) == ["step_time_s"] and frame["verdict"][0] == "slower"
    assert frame["candidate"][0] == 1.929 and frame["method"][0].startswith("bootstrap")
    # summarize's tables: point estimates (no steps to resample)
    points = llmbench.compare(llmbench.summarize(a), llmbench.summarize(b))
    assert points["verdict"][0] == "slower (point)"
    assert points["ratio"][0] == 1.929 / 1.12515
    with pytest.raises(UsageError, match="int is not a side"):
        llmbench.compare(a, 3)


# -- scaling ---------------------------------------------------------------------------


def test_seed001_prediction_from_128_to_512_gpus_holds_the_measured_1024_and_2048(tmp_path):
    db = tmp_path / "s.db"
    assert run("ingest", FIXTURES / "pax", "--db", db, "--settings", SETTINGS).exit_code == 0
    measured = json.loads(run("report", "--db", db, "--format", "json").stdout)
    truth = {r["num_gpus"]: r["tokens_per_s_per_gpu"] for r in measured}
    r = run(
        "scaling", "*/128/*", "*/256/*", "*/512/*", "--db", db, "--predict", "1024,2048",
        "--format", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = {row["num_gpus"]: row for row in json.loads(r.stdout)}
    assert [rows[n]["kind"] for n in (128, 256, 512)] == ["measured"] * 3
    assert rows[128]["efficiency"] == 1 and rows[512]["scaling"] == "weak"  # GBS grows
    for n in (1024, 2048):
        assert rows[n]["kind"] == "extrapolated" and rows[n]["law"] in ("amdahl", "usl")
        assert rows[n]["low"] < truth[n] < rows[n]["high"], (n, rows[n], truth[n])
    # the measured efficiency: per-GPU tokens/s against the 128-GPU run
    assert rows[512]["efficiency"] == truth[512] / truth[128]


def test_a_prediction_far_past_the_measured_is_refused_unless_forced(tmp_path):
    db = tmp_path / "s.db"
    assert run("ingest", FIXTURES / "pax", "--db", db, "--settings", SETTINGS).exit_code == 0
    r = run("scaling", "--db", db, "--predict", "40000")
    assert r.exit_code == 2 and "past 16x the largest measured (2048)" in r.stderr
    r = run("scaling", "--db", db, "--predict", "40000", "--force", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)[-1]["kind"] == "extrapolated"


def test_strong_scaling_is_told_from_a_fixed_global_batch_and_two_counts_cannot_fit():
    from llmbench.scalability import scaling

    table = pd.DataFrame(
        {
            "model": ["m"] * 3,
            "num_gpus": [8, 16, 32],
            "global_batch_size": [512] * 3,
            "tokens_per_s_per_gpu": [1000.0, 950.0, 880.0],
        }
    )
    out = scaling(table, (64,))
    assert set(out["scaling"]) == {"strong"}
    assert list(out["efficiency"][:3]) == [1.0, 0.95, 0.88]
    pred = out.iloc[-1]
    assert pred["tokens_per_s_per_gpu"] < 880 and pred["low"] < pred["high"]
    with pytest.raises(UsageError, match="a scaling law needs at least 3"):
        scaling(table.iloc[:2], (64,))


def test_both_commands_draw_their_figures(tmp_path):
    db = tmp_path / "s.db"
    assert run("ingest", FIXTURES / "pax", "--db", db, "--settings", SETTINGS).exit_code == 0
    png = tmp_path / "scaling.png"
    r = run("scaling", "--db", db, "--predict", "4096", "--plot", png)
    assert r.exit_code == 0 and png.stat().st_size > 10_000
    rng = np.random.default_rng(1)
    a = _megatron(tmp_path / "a.log", list(1000 * (1 + 0.01 * rng.standard_normal(30))))
    b = _megatron(tmp_path / "b.log", list(990 * (1 + 0.01 * rng.standard_normal(30))))
    svg = tmp_path / "cmp.svg"
    r = run("compare", a, b, "--set", "seq_len=2048", "--match", "num_gpus", "--plot", svg)
    assert r.exit_code == 0 and "<svg" in svg.read_text()
    r = run("compare", a, b, "--match", "num_gpus", "--plot", tmp_path / "cmp.bmp")
    assert r.exit_code == 2 and "cannot tell the figure format" in r.stderr  # before any work


def test_estimate_calibrated_on_measured_runs_uses_their_fitted_efficiency(tmp_path):
    db = tmp_path / "s.db"
    assert run("ingest", FIXTURES / "pax", "--db", db, "--settings", SETTINGS).exit_code == 0
    sel = "*/128/*,*/256/*,*/512/*"
    pred = json.loads(
        run("scaling", "--db", db, *sel.split(","), "--predict", "1024", "--format", "json").stdout
    )[-1]
    args = ["estimate", "--model", "gpt3-175b", "--gpus", "1024", "--global-batch-size", "2048"]
    args += ["--tp", "8", "--pp", "8"]  # the model state fits the device
    r = run(*args, "--dtype", "fp8", "--calibrate", sel, "--db", db, "--format", "json")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["step_time_s"] == pytest.approx(2048 * 2048 / (pred["tokens_per_s_per_gpu"] * 1024))
    assert row["tokens_per_s_per_gpu"] == pytest.approx(pred["tokens_per_s_per_gpu"])
    assert "amdahl fitted to 3 measured GPU counts" in r.stderr
    assert "(gpt3-175b on h100-sxm, Paxml, 3 run(s))" in r.stderr
    # 1024 GPUs is past the 512 measured; the runs' sequence (2048) and accelerator are used
    assert row["flags"] == "extrapolated" and row["seq_len"] == 2048
    assert row["accelerator"] == "h100-sxm"
    other = run(*args, "--calibrate", sel, "--db", db, "--seq-len", "4096", "--format", "json")
    (row,) = json.loads(other.stdout)
    assert row["flags"] == "other_seq_len,extrapolated"
    assert "other_seq_len: the step time is calibrated on runs at another sequence" in other.stderr
    inside = ["--gpus", "256", "--global-batch-size", "512", "--calibrate", sel, "--db", db]
    (row,) = json.loads(run(*args[:3], *args[-4:], *inside, "--format", "json").stdout)
    assert row["flags"] is None and row["tokens_per_s_per_gpu"] == pytest.approx(530.2265)
    assert run(*args).exit_code == 2  # neither --step-time nor --calibrate
    both = run(*args, "--step-time", "8", "--calibrate", sel, "--db", db)
    assert both.exit_code == 2 and "give --step-time or --calibrate" in both.stderr


def test_calibrate_and_scaling_never_pool_two_accelerators(tmp_path):
    """The same model measured on two accelerators is two series: `scaling` lists each
    on its own, `--calibrate` asks for one (or takes the one on --accelerator)."""
    db = tmp_path / "s.db"
    pax = FIXTURES / "pax" / "fp8" / "175b"
    common = ["--db", db, "--settings", SETTINGS]
    assert run("ingest", pax / "128", pax / "256", pax / "512", *common).exit_code == 0
    a100 = ["--set", "accelerator=a100-sxm-80gb"]
    assert run("ingest", pax / "1024", pax / "2048", *common, *a100).exit_code == 0
    table = json.loads(run("scaling", "--db", db, "--format", "json").stdout)
    got = [(r["accelerator"], r["num_gpus"], r["efficiency"]) for r in table]
    # each series against its own smallest count: 1024 A100 GPUs are not 8x 128 H100s
    assert [(a, n) for a, n, _ in got] == [
        ("a100-sxm-80gb", 1024), ("a100-sxm-80gb", 2048),
        ("h100-sxm", 128), ("h100-sxm", 256), ("h100-sxm", 512),
    ]  # fmt: skip
    assert got[0][2] == 1 and got[2][2] == 1
    args = ["estimate", "--model", "gpt3-175b", "--gpus", "256", "--global-batch-size", "512"]
    args += ["--tp", "8", "--pp", "8"]
    r = run(*args, "--calibrate", "*", "--db", db)
    assert r.exit_code == 2 and "the selected runs are 2 series, never pooled" in r.stderr
    assert "gpt3-175b on a100-sxm-80gb, Paxml (2 run(s))" in r.stderr
    r = run(*args, "--calibrate", "*", "--db", db, "--accelerator", "h100-sxm", "--format", "json")
    assert r.exit_code == 0 and "(gpt3-175b on h100-sxm, Paxml, 3 run(s))" in r.stderr
    assert json.loads(r.stdout)[0]["tokens_per_s_per_gpu"] == pytest.approx(530.2265)
    # measured on H100s only, estimated for an A100: said
    r = run(*args, "--calibrate", "*/128/*,*/256/*", "--db", db, "--accelerator", "a100-sxm-80gb",
            "--format", "json")  # fmt: skip
    (row,) = json.loads(r.stdout)
    # H100 FP8 rates on an A100 (no FP8; 312 dense BF16 TFLOP/s): beyond the device too
    assert row["accelerator"] == "a100-sxm-80gb"
    assert row["flags"] == "mfu>1,hfu>1,other_accelerator" and row["mfu"] > 1


def test_loss_is_compared_where_both_runs_consumed_the_same_tokens():
    base, cand = _side("b", 1.0, 1), _side("c", 1.0, 2)
    base.losses["b"] = (np.array([0.0, 1000.0, 2000.0]), np.array([10.0, 6.0, 4.0]))
    cand.losses["c"] = (np.array([0.0, 500.0, 1500.0]), np.array([10.0, 7.0, 5.0]))
    row = compare_runs(base, cand, metrics=("loss_at_tokens",)).pairs.iloc[0]
    # at 1,500 tokens (the most both reached): baseline 5.0 (between 6 and 4), candidate 5.0
    assert (row["baseline"], row["candidate"], row["method"]) == (5.0, 5.0, "at 1500 tokens")
    assert row["verdict"] == "same (point)"
    cand.losses["c"] = (np.array([0.0, 1500.0]), np.array([10.0, 5.5]))
    row = compare_runs(base, cand, metrics=("loss_at_tokens",)).pairs.iloc[0]
    assert row["ratio"] == 1.1 and row["verdict"] == "worse (point)"  # a higher loss


def test_unequal_warmup_missing_metrics_and_empty_sides_are_said(tmp_path):
    rng = np.random.default_rng(3)
    short = _megatron(tmp_path / "short.log", list(1000 * (1 + 0.01 * rng.standard_normal(20))))
    long = _megatron(tmp_path / "long.log", list(1000 * (1 + 0.01 * rng.standard_normal(80))))
    r = run("compare", short, long, "--set", "seq_len=2048", "--match", "num_gpus")
    assert r.exit_code == 0
    assert "num_gpus=8: warm-up differs (baseline 2, candidate 8 step(s) left out)" in r.stdout
    nolen = run("compare", short, long, "--match", "num_gpus", "--metric", "tflops_per_gpu")
    assert "n/a: no tflops_per_gpu on the baseline" in nolen.stdout  # no model: no FLOPs
    db = tmp_path / "s.db"
    assert run("ingest", short, "--db", db).exit_code == 0
    r = run("compare", "nothing-like-this*", "reference", "--db", db)
    assert r.exit_code == 2 and "no run matches nothing-like-this*" in r.stderr


def test_repeated_runs_are_resampled_as_runs():
    def side(name: str, t0: float, seed: int) -> Side:
        rng = np.random.default_rng(seed)
        ids = [f"{name}{i}" for i in range(5)]  # five repeats, as MLPerf's runs
        times = {i: t0 * (1 + 0.003 * rng.standard_normal(40)) for i in ids}
        table = pd.DataFrame(
            {
                "run_id": ids,
                "model": "m",
                "num_gpus": 64,
                "step_time_s": [float(np.median(times[i])) for i in ids],
            }
        )
        return Side(name, table.assign(tokens_per_s_per_gpu=100 / table["step_time_s"]), times)

    row = compare_runs(side("b", 2.0, 1), side("c", 1.9, 2)).pairs.iloc[0]
    assert row["method"] == "bootstrap over runs (5 vs 5)"
    assert row["verdict"] == "faster" and row["ci_low"] < 2.0 / 1.9 < row["ci_high"]


def test_verdicts_as_a_self_contained_page(tmp_path):
    page = tmp_path / "cmp.html"
    r = run(
        "compare", TOPOLOGY / "dp4-tp8-pp12-mbs1.log", TOPOLOGY / "dp8-tp8-pp6-mbs4.log",
        "--settings", SETTINGS, "--html", page,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    html = page.read_text(encoding="utf-8")
    assert "<h1>llmbench compare: pairs</h1>" in html and html.count("<svg") == 1
    assert "differs in pp: 12 -&gt; 6; dp: 4 -&gt; 8; micro_batch_size: 1 -&gt; 4" in html
    data = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    cols = [c["name"] for c in data["columns"]]
    (row,) = data["rows"]
    assert row[cols.index("verdict")] == "faster (point)"


def test_tflops_are_compared_in_one_convention_and_say_which(tmp_path):
    """A Megatron-DeepSpeed log (its framework counts the scores in full) against a 2026
    Megatron-LM log: both sides in the default convention unless --formula, named."""
    from click.testing import CliRunner

    from llmbench.cli import cli

    a = FIXTURES / "megatron_lm" / "llama3-8b-8xh100.log"
    b = FIXTURES / "megatron_lm" / "llama3-8b-8xh100-mcore-2026.log"
    args = ["compare", str(a), str(b), "--match", "num_gpus", "--metric", "tflops_per_gpu"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "tflops_per_gpu counted by megatron-causal (`llmbench formulas`)" in r.stdout
    # the same run logged twice: counted alike, no change (each log's own count: -11 %)
    assert "370.6631   370.6631   +0.0%" in r.stdout and "= same" in r.stdout
    j = json.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).stdout)
    assert j["formulas"] == {"baseline": ["megatron-causal"], "candidate": ["megatron-causal"]}
    r = CliRunner().invoke(cli, [*args, "--formula", "megatron"])
    assert "counted by megatron (" in r.stdout
    ref = CliRunner().invoke(cli, ["compare", "reference", str(b), "--metric", "tflops_per_gpu",
                                   "--match", "num_gpus", "--set", "model=llama3-8b"])  # fmt: skip
    assert "counted by megatron, megatron-causal (baseline) and megatron-causal (candidate)" in (
        ref.stdout
    )


def test_scaling_splits_rounds_accelerators_and_unnamed_models():
    """What the MLPerf store pooled before: llama2-70b 8 GPUs (a median of MI300X and
    GB200) against 64 H100s, gpt3-175b v4.1 against v3.0, an 18.4B model against a 52B."""
    from llmbench.plots import DataWarning
    from llmbench.scalability import scaling

    def row(model, acc, rnd, gpus, per_gpu, params=None, fw="MLPerf"):
        return {"model": model, "accelerator": acc, "round": rnd, "framework": fw,
                "num_gpus": gpus, "tokens_per_s_per_gpu": per_gpu, "global_batch_size": 8,
                "params": params}  # fmt: skip

    table = pd.DataFrame(
        [
            row("llama2-70b", "AMD Instinct MI300X 192GB HBM3", "v5.0", 8, 1765.75),
            row("llama2-70b", "NVIDIA Blackwell GPU (GB200)", "v5.0", 8, 5509.76),
            row("llama2-70b", "NVIDIA H100-SXM5-80GB", "v4.1", 64, 1419.03),
            row("gpt3-175b", "NVIDIA H100-SXM5-80GB", "v4.1", 256, 891.6811),
            row("gpt3-175b", "NVIDIA H100-SXM5-80GB", "v3.0", 512, 678.4194),
            row(None, None, None, 16, 1000.0, 18.4e9, "Megatron-LM"),
            row(None, None, None, 64, 700.0, 52e9, "Megatron-LM"),
            row(None, None, None, 64, 700.0, None, "Megatron-LM"),
        ]
    )
    with pytest.warns(DataWarning, match=r"1 run\(s\) of no known model \(on an unknown"):
        out = scaling(table)
    keys = out[["model", "accelerator", "round", "num_gpus"]].astype(object)
    got = [tuple(None if v != v else v for v in r) for r in keys.values]
    assert got == [
        ("18.4B params", None, None, 16),
        ("52B params", None, None, 64),
        ("gpt3-175b", "h100-sxm", "v3.0", 512),
        ("gpt3-175b", "h100-sxm", "v4.1", 256),
        ("llama2-70b", "gb200", "v5.0", 8),
        ("llama2-70b", "h100-sxm", "v4.1", 64),
        ("llama2-70b", "mi300x", "v5.0", 8),
    ]
    assert list(out["efficiency"]) == [1.0] * 7  # no series joins another: 0.244 and 0.7608 gone
