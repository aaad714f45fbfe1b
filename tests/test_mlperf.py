"""MLPerf submission trees: layout, system descriptions, scoring as the official
result summarizer does it, the `mlperf` command and its figure."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from llmbench.cli import cli
from llmbench.mlperf import (
    locate,
    mllog_line,
    olympic_mean,
    read_system,
    summarize_submissions,
)
from llmbench.mlperf.tree import tree_layer

SYSTEM = {
    "submitter": "ACME",
    "division": "closed",
    "status": "Available on-premise",
    "system_name": "acme_n4",
    "number_of_nodes": "4",
    "accelerators_per_node": "8",
    "accelerator_model_name": "NVIDIA H100-SXM5-80GB",
    "framework": "NeMo 24.09",
}


def _line(time_ms: int, key: str, value, **meta) -> str:
    return mllog_line(time_ms, key, value, "/workspace/llm/train.py", **meta)


def _result(start_ms: int, minutes: float, status: str = "success", *, prefix: str = "") -> str:
    stop = start_ms + round(minutes * 60000)
    lines = [
        "+ srun --mpi=pmix python train.py",
        _line(start_ms - 9000, "submission_benchmark", "gpt3"),
        _line(start_ms - 9000, "global_batch_size", 2048),
        _line(start_ms - 9000, "max_sequence_length", 2048),
        _line(start_ms, "run_start", None),
        "[NeMo I 2024-09-30 12:00:00 train:12] iteration 1 done",
    ]
    for i in range(1, 4):  # one tracked step time each 40 s, 4.19M tokens per step
        lines.append(
            _line(
                start_ms + i * 40000,
                "tracked_stats",
                {"train_step_timing in s": 20.0},
                step=i * 2048 * 2048,
            )
        )
    lines.append(_line(stop, "run_stop", None, status=status))
    return "\n".join(prefix + ln if ln.startswith(":::") else ln for ln in lines) + "\n"


def _tree(root: Path, runs: list, *, bench="gpt3", system=SYSTEM, name="acme_n4", scaling=None):
    folder = root / "v4.1" / "ACME" / "results" / name / bench
    folder.mkdir(parents=True)
    sysdir = root / "v4.1" / "ACME" / "systems"
    sysdir.mkdir(parents=True, exist_ok=True)
    (sysdir / f"{name}.json").write_text(json.dumps(system))
    for i, text in enumerate(runs):
        (folder / f"result_{i}.txt").write_text(text)
    if scaling is not None:
        (folder / "scaling.json").write_text(json.dumps({"scaling_factor": scaling}))
    return folder


def _mlperf(*args: str):
    return CliRunner().invoke(cli, ["mlperf", *args])


def test_olympic_mean_matches_the_summarizers_slices():
    ten = [float(x) for x in range(10, 0, -1)]
    assert olympic_mean(ten, 0, 1) == sum(range(2, 10)) / 8  # middle 8 of 10
    assert olympic_mean([5.0, 3.0, 4.0], 0, 1) == 4.0  # 3 runs: the median
    assert olympic_mean([3.0, 7.0], 1, 1) == 7.0  # 1 of 3 dropped: the slower survivor
    assert olympic_mean([float(x) for x in range(1, 10)], 1, 1) == sum(range(2, 10)) / 8
    assert olympic_mean([2.0], 1, 1) is None
    forty = [float(x) for x in range(1, 41)]
    assert olympic_mean(forty, 0, 4) == sum(range(5, 37)) / 32  # unet3d trims 4


def test_locate_reads_round_submitter_system_benchmark_and_run(tmp_path):
    p = tmp_path / "training_results_v4.0" / "NVIDIA" / "results" / "eos" / "gpt3" / "result_7.txt"
    loc = locate(str(p))
    assert (loc.round, loc.submitter, loc.system, loc.benchmark, loc.run_index) == (
        "v4.0",
        "NVIDIA",
        "eos",
        "gpt3",
        7,
    )
    assert locate(str(tmp_path / "logs" / "result_1.txt")) is None
    assert locate(str(p.with_name("train.log"))) is None


def test_v06_system_file_is_key_value_lines_with_a_python_literal(tmp_path):
    entry = (
        "{'hardware': 'DGX-1 with V100', 'framework': 'PyTorch NVIDIA Release 19.05', "
        "'nodes': \"{'num_nodes': '2', 'accelerator': 'Tesla V100-SXM2-16GB', "
        "'num_accelerators': '8'}\"}"
    )
    f = tmp_path / "dgx1.json"
    f.write_text(
        'org: {"value": "NVIDIA", "metadata": {"file": "x.py", "lineno": 1}}\n'
        'division: {"value": "closed", "metadata": {"file": "x.py", "lineno": 2}}\n'
        f"entry: {json.dumps({'value': entry, 'metadata': {}})}\n"
        "garbage line\n"
    )
    desc = read_system(str(f))
    assert desc["submitter"] == "NVIDIA" and desc["division"] == "closed"
    assert desc["number_of_nodes"] == "2" and desc["accelerators_per_node"] == "8"
    assert desc["accelerator_model_name"] == "Tesla V100-SXM2-16GB"
    assert desc["framework"] == "PyTorch NVIDIA Release 19.05"


def test_three_runs_score_the_median_and_fill_the_run_settings(tmp_path):
    t0 = 1727700000000
    folder = _tree(tmp_path, [_result(t0, 101.5), _result(t0, 99.25), _result(t0, 100.0)])
    db = str(tmp_path / "s.db")
    r = _mlperf(str(tmp_path), "--db", db, "--format", "json")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["score_min"] == 100.0
    # 2048 x 2048 tokens of GPT-3 175B per 20 s on 32 H100s is ~7x their peak: flagged
    assert row["mfu"] > 1 and row["score_note"].startswith("mfu>1: MFU above 1 is impossible")
    assert (row["round"], row["submitter"], row["system"], row["benchmark"]) == (
        "v4.1",
        "ACME",
        "acme_n4",
        "gpt3",
    )
    assert row["division"] == "closed" and row["num_gpus"] == 32  # 4 nodes x 8
    assert row["accelerator"] == "NVIDIA H100-SXM5-80GB" and row["hardware"] == "h100-sxm"
    assert [run["time_to_train_min"] for run in row["runs"]] == [101.5, 99.25, 100.0]
    assert [Path(run["path"]).name for run in row["runs"]] == [f"result_{i}.txt" for i in range(3)]
    # throughput from the logged step times: 2048 x 2048 tokens per 20 s step
    assert row["step_time_s"] == 20.0
    assert row["tokens_per_s"] == pytest.approx(2048 * 2048 / 20.0, rel=1e-12)
    assert row["model"] == "gpt3-175b"
    # the same numbers are in the store, for report
    r = CliRunner().invoke(cli, ["report", "--db", db, "--format", "json"])
    reps = json.loads(r.stdout)
    assert sorted(x["time_to_train_min"] for x in reps) == [99.25, 100.0, 101.5]
    assert {x["num_gpus"] for x in reps} == {32}
    assert folder.exists()


def test_aborted_run_counts_as_slowest_and_two_mean_no_score(tmp_path):
    t0 = 1727700000000
    times = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0]
    runs = [_result(t0, t) for t in times] + [_result(t0, 9.0, "aborted")]
    _tree(tmp_path, runs, bench="llama2_70b_lora")
    r = _mlperf(str(tmp_path), "--db", str(tmp_path / "s.db"), "--format", "json")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    # 1 dropped: the fastest surviving run also goes, the mean of the other 8
    assert row["score_min"] == pytest.approx(sum(times[1:]) / 8, abs=1e-12)
    assert row["n_dropped"] == 1 and "dropped" in row["score_note"]
    assert row["runs"][9]["status"] == "aborted" and row["runs"][9]["counted"] is False
    assert "result_9.txt: run_stop status 'aborted'" in r.stderr

    other = tmp_path / "two"
    runs = [_result(t0, t) for t in times[:8]]
    runs += [_result(t0, 9.0, "aborted"), _result(t0 + 5, 9.0, "aborted")]
    _tree(other, runs, bench="llama2_70b_lora")
    (row,) = json.loads(_mlperf(str(other), "--db", str(other / "s.db"), "--format", "json").stdout)
    assert row["score_min"] is None
    assert "2 of 10 runs dropped (at most 1 allowed): no score" in row["score_note"]


def test_malformed_and_unreadable_files_are_dropped_per_file(tmp_path):
    t0 = 1727700000000
    bad = _result(t0, 50.0).replace('"key": "run_start"', '"key": "run_start"', 1)
    bad = bad.replace(":::MLLOG {", ":::MLLOG {{", 1)  # one line that does not parse
    folder = _tree(tmp_path, [_result(t0, 40.0), bad, _result(t0, 42.0)])
    (folder / "result_3.txt").write_bytes(b"\x00\x01 not a log at all\n")
    r = _mlperf(str(folder), "--db", str(tmp_path / "s.db"), "--format", "json")
    (row,) = json.loads(r.stdout)
    assert row["n_runs"] == 4
    reasons = {Path(run["path"]).name: run["reason"] for run in row["runs"]}
    assert reasons["result_1.txt"] == "1 MLLOG line(s) do not parse"
    assert reasons["result_3.txt"] and "result_3.txt" in r.stderr
    assert row["score_min"] is None  # two dropped of a 3-run benchmark
    assert r.exit_code == 1  # an unreadable input, as for ingest


def test_too_few_runs_and_scaling_factor(tmp_path):
    t0 = 1727700000000
    _tree(tmp_path, [_result(t0, 20.0), _result(t0, 30.0)], bench="llama31_8b", scaling=1.25)
    (row,) = json.loads(
        _mlperf(str(tmp_path), "--db", str(tmp_path / "s.db"), "--format", "json").stdout
    )
    assert row["score_min"] is None  # 2 runs: nothing left after the trim
    assert "2 result file(s), 10 required" in row["score_note"]
    other = tmp_path / "b"
    _tree(other, [_result(t0, m) for m in (20.0, 30.0, 25.0)], bench="gpt3", scaling=1.25)
    (row,) = json.loads(_mlperf(str(other), "--db", str(other / "s.db"), "--format", "json").stdout)
    assert row["olympic_mean_min"] == 25.0 and row["score_min"] == 25.0 * 1.25
    assert row["scaling_factor"] == 1.25


def test_rank_prefixed_lines_and_markdown_and_plot(tmp_path):
    t0 = 1727700000000
    _tree(tmp_path, [_result(t0, m, prefix="   0: ") for m in (30.0, 31.0, 29.0)])
    _tree(
        tmp_path,
        [_result(t0, m) for m in (16.0, 15.0, 17.0)],
        name="acme_n8",
        system={**SYSTEM, "number_of_nodes": "8"},
    )
    png = tmp_path / "s.png"
    r = _mlperf(
        str(tmp_path), "--db", str(tmp_path / "s.db"), "--format", "markdown", "--plot", str(png)
    )
    assert r.exit_code == 0, r.output
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| v4.1")]
    assert len(rows) == 2 and "| 32 |" in rows[0] and "| 30 |" in rows[0] and "| 16 |" in rows[1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from llmbench.mlperf import plot_mlperf
    from llmbench.plots import close

    ax = plot_mlperf(summarize_submissions(str(tmp_path / "s.db")))
    pts = ax[0].collections[0].get_offsets()
    assert sorted(map(tuple, pts.tolist())) == [(32.0, 30.0), (64.0, 16.0)]
    dashed = [ln for ln in ax[0].lines if ln.get_linestyle() == "--"]
    assert list(dashed[0].get_ydata()) == [30.0, 15.0]  # ideal: 30 min x 32 / 64
    close(ax)


def test_no_results_is_one_line_and_exit_1(tmp_path):
    from llmbench.store import Store

    Store(str(tmp_path / "empty.db")).close()  # a store, empty (a missing one: exit 2)
    r = _mlperf("--db", str(tmp_path / "empty.db"))
    assert r.exit_code == 1 and "no MLPerf result files found in the store" in r.stderr


# -- the corpus: published results and the official package's figures ---------------------


def _truth(root: Path, name: str) -> list[dict]:
    return list(csv.DictReader((root / name).open()))


def test_corpus_scores_match_truth(corpus, tmp_path):
    root = corpus / "mlperf"
    r = _mlperf(str(root), "--db", str(tmp_path / "m.db"), "--format", "json")
    assert r.exit_code == 0, r.output
    rows = {
        (x["round"], x["submitter"], x["system"], x["benchmark"]): x for x in json.loads(r.stdout)
    }
    scores = _truth(root, "TRUTH_scores.csv")
    assert len(rows) == len(scores)
    for t in scores:
        row = rows[(t["version"], t["submitter"], t["system"], t["benchmark"])]
        assert math.isclose(row["score_min"], float(t["score_minutes"]), abs_tol=1e-3), t
        assert row["n_runs"] == int(t["n_runs"]) and row["n_dropped"] == int(t["n_dropped"])
        assert row["scaling_factor"] == float(t["scaling_factor"])
        assert row["accelerator"] == t["accelerator"]
        assert row["num_gpus"] == int(t["accelerator_count"])
        assert row["division"] == t["division"]
    runs = {x["path"]: x for row in rows.values() for x in row["runs"]}
    for t in _truth(root, "TRUTH_runs.csv"):
        run = runs[str(root / t["path"])]
        assert math.isclose(run["time_to_train_min"], float(t["ttt_minutes"]), abs_tol=1e-6), t
        assert run["status"] == t["status"]
        assert run["counted"] == (t["counted_in_score"] == "True")


def test_scores_equal_the_official_result_summarizer(corpus, tmp_path):
    """The official package scores a temporary copy (it may rewrite scaling.json)."""
    rs = pytest.importorskip("mlperf_logging.result_summarizer.result_summarizer")
    copy = tmp_path / "copy"
    shutil.copytree(corpus / "mlperf", copy)
    ours = summarize_submissions_for(copy, tmp_path / "m.db")
    assert ours
    import contextlib
    import io

    for row in ours:
        folder = row["folder"]
        ruleset = row["round"].lstrip("v") + ".0"
        with contextlib.redirect_stdout(io.StringIO()):
            per_run, _, official, _, factor = rs._compute_strong_score_standalone(
                row["benchmark"],
                row["system"],
                False,
                folder,
                "training",
                ruleset,
                return_full_scores=True,
            )
        # before v0.7 the logs carry seconds and the summarizer assumes ms
        unit = 1000.0 if row["round"] in ("v0.5", "v0.6") else 1.0
        assert factor == row["scaling_factor"]
        assert math.isclose(row["score_min"], official * unit, rel_tol=1e-9), folder
        for run in row["runs"]:
            assert math.isclose(
                run["time_to_train_min"], per_run[run["path"]] * unit, rel_tol=1e-9
            ), run["path"]


def summarize_submissions_for(root: Path, db: Path) -> list[dict]:
    r = _mlperf(str(root), "--db", str(db), "--format", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_folder_facts_are_read_once_per_ingest_and_settings_stay_values(tmp_path):
    import pickle

    from llmbench.ingest import file_layers
    from llmbench.settings import Settings

    t0 = 1727700000000
    folder = _tree(tmp_path, [_result(t0, m) for m in (1.0, 2.0, 3.0)])
    s, cache = Settings(), {}
    first = file_layers(s, str(folder / "result_0.txt"), cache)
    (folder.parent.parent.parent / "systems" / "acme_n4.json").write_text("{}")  # later edit
    second = file_layers(s, str(folder / "result_2.txt"), cache)
    assert first[0][1]["num_gpus"] == second[0][1]["num_gpus"] == 32  # one read per folder
    assert (first[0][1]["mlperf_run"], second[0][1]["mlperf_run"]) == (0, 2)
    assert len(cache["tree_layer"]) == 1 and len(cache["config_beside"]) == 1  # per folder
    assert pickle.loads(pickle.dumps(s)) == s == Settings()  # a value: nothing cached in it
    fresh = file_layers(s, str(folder / "result_0.txt"), {})  # another ingest reads afresh
    assert "num_gpus" not in fresh[0][1]


V05_ENTRY = """{
    "division": "closed",~
    "status": "on-prem",~
    "hardware": "DGX-1V - SaturnV",~
    "framework": "Pytorch NGC 18.11",~
    "nodes": [
            {
                "num_nodes": 128,
                "cpu": "2x Intel(R) Xeon(R) CPU E5-2698 v4 @ 2.20GHz",
                "accelerator": "Tesla V100-SXM2-16GB",
                "num_accelerators": 8,
                "num_network_cards": "4 + 2",
                "notes": ""~
            }
    ]
}
""".replace("~", "    ")  # ~: the trailing blanks the file has


def test_v05_tree_reads_the_nodes_layout_of_entry_json(tmp_path):
    """v0.5 (mlcommons/training_results_v0.5): ``<round>/<org>/submission/results/
    <system>/entry.json`` with ``nodes: [{num_nodes, accelerator, num_accelerators}]``
    (entry.json as in nvidia's dgx1_multi_ngc18.11_pytorch, trailing blanks kept)."""
    system = tmp_path / "v0.5.0" / "nvidia" / "submission" / "results" / "dgx1_multi_ngc18.11"
    (system / "ssd").mkdir(parents=True)
    (system / "entry.json").write_text(V05_ENTRY)
    result = system / "ssd" / "result_0.txt"
    result.write_bytes((FIXTURES / "mllog" / "v05-ssd-rank-prefixed.log").read_bytes())
    origin, values = tree_layer(str(result))
    assert origin.endswith("+ results/dgx1_multi_ngc18.11/entry.json")
    assert (values["round"], values["submitter"], values["benchmark"]) == ("v0.5", "nvidia", "ssd")
    assert values["accelerator"] == "Tesla V100-SXM2-16GB"
    assert (values["num_nodes"], values["gpus_per_node"], values["num_gpus"]) == (128, 8, 1024)
    assert values["framework"] == "Pytorch NGC 18.11" and values["division"] == "closed"


def test_tpu_pod_entry_counts_its_chips_once(tmp_path):
    f = tmp_path / "entry.json"
    f.write_text(
        json.dumps(
            {"nodes": [{"num_nodes": 64, "accelerator": "tpuv2-512", "num_accelerators": 512}]}
        )
    )
    desc = read_system(str(f))
    assert (desc["number_of_nodes"], desc["accelerators_per_node"]) == (64, 8)


def test_scores_as_a_self_contained_page(tmp_path):
    t0 = 1727700000000
    _tree(tmp_path, [_result(t0, 101.5), _result(t0, 99.25), _result(t0, 100.0)])
    page = tmp_path / "scores.html"
    r = _mlperf(str(tmp_path), "--db", str(tmp_path / "s.db"), "--html", str(page))
    assert r.exit_code == 0, r.output
    html = page.read_text(encoding="utf-8")
    assert "<h1>llmbench mlperf: scores</h1>" in html and "1 benchmark folder(s)" in html
    data = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    cols = [c["name"] for c in data["columns"]]
    (row,) = data["rows"]
    assert row[cols.index("benchmark")] == "gpt3" and row[cols.index("score_min")] == 100.0
    assert html.count("<svg") == 1  # time to train against accelerators, inline


# seed 000's two tracked_stats lines (NVIDIA's GPT-3 callback, EOS): the throughput
# counts tokens per second (metadata.step counts tokens: 1211105280 / 234.938 s)
EPOCH = (
    ':::MLLOG {"namespace": "", "time_ms": 1696565401886, "event_type": "POINT_IN_TIME", '
    '"key": "tracked_stats", "value": {"train_epoch_timing": 234.93810319900513}, "metadata": '
    '{"file": "/workspace/llm/custom_callbacks.py", "lineno": 277, "step": 1211105280}}'
)
THROUGHPUT = EPOCH.replace('"train_epoch_timing": 234.93810319900513', '"throughput": 5154997.267404211').replace('"lineno": 277', '"lineno": 284')  # fmt: skip


def _summary(tmp_path, lines, **settings):
    import llmbench

    p = tmp_path / "result_0.txt"
    p.write_text("\n".join(lines) + "\n")
    logs = llmbench.read_logs(str(p), settings=settings or None)
    return logs, llmbench.summarize(logs).iloc[0]


def test_seed_throughput_alone_is_never_taken_for_samples(tmp_path):
    logs, row = _summary(tmp_path, [EPOCH, THROUGHPUT])
    assert not len(logs.steps)  # its unit is unknown: it stays an event
    assert logs.events["key"].tolist() == ["tracked_stats", "tracked_stats"]
    assert row["tokens_per_s_logged"] != row["tokens_per_s_logged"]  # NaN
    _, row = _summary(tmp_path, [EPOCH, THROUGHPUT], benchmark="gpt3")
    assert row["tokens_per_s_logged"] == 5154997.267404211


@pytest.mark.parametrize(
    "benchmark, column", [("gpt3", "tokens_per_s"), ("llama2_70b_lora", "samples_per_s")]
)
def test_tracked_throughput_is_stored_in_the_unit_its_benchmark_counts(tmp_path, benchmark, column):
    head = [
        _line(1696565000000, "submission_benchmark", benchmark),
        _line(1696565000000, "global_batch_size", 1536),
        _line(1696565000000, "max_sequence_length", 2048),
    ]
    logs, _ = _summary(tmp_path, [*head, EPOCH, THROUGHPUT])
    (step,) = logs.steps.to_dict("records")
    other = {"tokens_per_s": "samples_per_s", "samples_per_s": "tokens_per_s"}[column]
    assert step[column] == 5154997.267404211 and step[other] != step[other]


def test_tracked_throughput_unit_follows_the_counter_without_a_benchmark(tmp_path):
    head = [_line(1, "global_batch_size", 1536), _line(1, "max_sequence_length", 2048)]
    logs, _ = _summary(tmp_path, [*head, EPOCH, THROUGHPUT])  # step counts whole token batches
    assert logs.steps["tokens_per_s"].tolist() == [5154997.267404211]
    later = THROUGHPUT.replace("1696565401886", "1696565410286").replace(
        "1211105280", str(1211105280 + 4 * 1536 * 2048)
    )
    logs, _ = _summary(tmp_path, [*head, THROUGHPUT, later])
    assert logs.steps["step_time_s"].tolist()[1] == 2.1  # 8.4 s over 4 steps of tokens


def test_real_gpt3_result_files_log_tokens_per_second(corpus, tmp_path):
    import llmbench

    folder = corpus / "mlperf" / "v4.1" / "NVIDIA" / "results" / "eos_n32_ngc24.09_nemo" / "gpt3"
    logs = llmbench.read_logs(str(folder / "result_0.txt"))
    table = llmbench.summarize(logs).iloc[0]
    # the callback's throughput: consumed tokens over the training time, as logged
    assert table["tokens_per_s_logged"] == 208833.72386428475
    assert logs.steps["samples_per_s"].isna().all()


def test_scoring_reads_the_steps_of_every_file_in_one_query(tmp_path, monkeypatch):
    """Scoring queries the stored steps a fixed number of times, however many result
    files (each file's own queries made 1,800 results take 12.7 s instead of 1.5 s)."""
    import polars as pl

    from llmbench.ingest import ingest

    calls = []
    real = pl.LazyFrame.collect
    monkeypatch.setattr(
        pl.LazyFrame, "collect", lambda self, *a, **k: calls.append(1) or real(self, *a, **k)
    )

    def queries(n_folders: int) -> tuple[int, list]:
        root = tmp_path / f"t{n_folders}"
        t0 = 1727700000000
        for k in range(n_folders):
            runs = [_result(t0 + 1000 * k, 100.0 + k + i) for i in range(5)]  # unique bytes
            _tree(root, runs, name=f"acme_n{k}")
        db = str(root / "s.db")
        ingest([str(root)], db, workers=1)
        calls.clear()
        rows = summarize_submissions(db)
        return len(calls), rows

    few, rows = queries(1)
    many, more = queries(6)
    assert few == many <= 10, (few, many)
    # the olympic mean of 100+k .. 104+k minutes: 102+k
    assert [r["score_min"] for r in more] == [102.0 + k for k in range(6)]
    assert all(r["step_time_s"] == 20.0 for r in more)  # the steps were read, each file's own
