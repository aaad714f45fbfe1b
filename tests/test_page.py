"""`report --html`: one self-contained page (issue 21), read as text and, where a
Chromium is installed, in a real headless browser with the network shut off."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from llmbench.cli import cli

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    where = tmp_path_factory.mktemp("page")
    db = where / "s.db"
    assert (
        run("ingest", FIXTURES, "--db", db, "--settings", FIXTURES / "settings.toml").exit_code == 0
    )
    out = where / "r.html"
    r = run("report", "--db", db, "--html", out)
    assert r.exit_code == 0, r.output
    runs = json.loads(run("runs", "--db", db, "--format", "json").stdout)
    return out, runs


def _data(html: str) -> dict:
    """The page's data, its texts looked up as its script does (``strings``)."""
    m = re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S)
    data = json.loads(m.group(1))
    s = data["strings"]
    data["why"] = [[s[k] for k in row] for row in data["why"]]
    data["more"] = [[[c, t, s[k]] for c, t, k in row] for row in data["more"]]
    data["provenance"] = [[[k, v, s[o]] for k, v, o in row] for row in data["provenance"]]
    return data


def test_the_page_holds_every_run_with_provenance_and_fetches_nothing(page):
    path, runs = page
    html = path.read_text(encoding="utf-8")
    data = _data(html)
    assert len(data["rows"]) == len(runs) and len(data["provenance"]) == len(runs)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)  # nothing from a network
    assert "<link" not in html and html.count("<svg") == 2  # scaling, topology
    cols = [c["name"] for c in data["columns"]]
    assert cols[:3] == ["run_id", "source", "model"] and "flags" in cols
    pax = next(i for i, s in enumerate(data["sources"]) if s.endswith("175b/128/log.out"))
    inputs = {k: (v, o) for k, v, o in data["provenance"][pax]}
    assert "recompute" in data["unset"][pax] and "recompute" not in inputs
    assert inputs["num_gpus"][0] == 128
    assert inputs["num_gpus"][1].endswith("settings.toml [files.'*/pax/fp8/175b/128/*']")
    assert inputs["formula"][0] == "megatron-causal" and inputs["formula"][1].startswith("default")
    messy = next(i for i, s in enumerate(data["sources"]) if s.endswith("8ranks-restart.log"))
    assert "line 274: iteration 21 line is cut off: dropped" in data["warnings"][messy]
    flagged = [r for r in data["rows"] if r[data["flagsCol"]]]
    assert flagged  # the all-skipped fixture, shown, not hidden
    assert "llmbench report" in html and "made " in html  # who made it, when
    assert path.stat().st_size < 5_000_000


def test_a_notebook_writes_the_same_page(page, tmp_path):
    import llmbench

    path, runs = page
    db = str(path.parent / "s.db")
    out = tmp_path / "nb.html"
    text = llmbench.report_page(db, ["*/pax/*"], path=str(out), stat="mean")
    assert out.read_text(encoding="utf-8") == text
    data = _data(text)
    pax = [s for s in data["sources"] if "/pax/" in s]
    assert len(data["rows"]) == len(pax) >= 5  # the selection, as the CLI's
    assert "llmbench.report_page(" in text and "the mean after the warm-up" in text


def test_hover_texts_name_flags_faults_summaries_lora_and_mlperf_times(page):
    path, _ = page
    html = path.read_text(encoding="utf-8")
    data = _data(html)

    def run_of(name):
        i = next(i for i, s in enumerate(data["sources"]) if s.endswith(name))
        more = {c: w for c, _, w in data["more"][i]}
        return {c["name"]: _told(data, i, c["name"]) for c in data["columns"]} | more

    skipped = run_of("fp16-all-skipped-2021.log")
    assert skipped["flags"].startswith("all_skipped: every timed iteration was skipped")
    assert skipped["step_time_s"].startswith("step_time_s: empty, every one of the 4 timed line")
    hf = run_of("transformers5-quoted.log")  # the log's own mean, and where it is
    assert "(log line 16: train_runtime 98.95 s / 5 steps), warm-up included" in hf["step_time_s"]
    assert "3 run(s) time no step: their step time is the mean of the log's train summary" in html
    lora = run_of("v40-llama2-70b-lora-throughput.txt")
    assert (
        "seq_len 8192; then × 2/3 (LoRA: the base weights are frozen"
        in lora["model_flops_per_step"]
    )
    eos = run_of("seed000-eos-gpt3.txt")  # run_stop - run_start of the MLLOG lines, in minutes
    assert eos["time_to_train_min"] == (
        "time_to_train_min = (run_stop − run_start) / 60000 = "
        "(1696565401890 − 1696565266887) ms / 60000 = 2.25"
    )
    assert abs((1696565401890 - 1696565266887) / 60000 - 2.25) < 5e-5
    assert (  # Megatron-DeepSpeed's count: the scores in full
        "hardware FLOPs per step (the megatron count, plus what recompute=full runs again"
        in run_of("seed002-20b-fp16.log")["hw_tflops_per_gpu"]
    )


def test_markup_in_a_setting_cannot_end_the_pages_script(page, tmp_path):
    path, _ = page
    out = tmp_path / "m.html"
    r = run("report", "--db", path.parent / "s.db", "*/175b/128/*", "--html", out,
            "--set", "model=<!--<script></script>")  # fmt: skip
    assert r.exit_code == 0, r.output
    html = out.read_text(encoding="utf-8")
    script = re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S)
    assert "<" not in script.group(1)  # every "<" of the data escaped
    assert _data(html)["rows"][0][2] == "<!--<script></script>"  # and read back as it was
    if _browser():
        got = _selftest(out, tmp_path, "script")
        assert got["rows"] == got["filtered"] == 1 and not got["errors"]


def test_a_selection_that_matches_nothing_still_writes_its_page(page, tmp_path):
    path, _ = page
    out = tmp_path / "none.html"
    r = run("report", "--db", path.parent / "s.db", "no-such-run*", "--html", out)
    assert r.exit_code == 2 and "no run matches no-such-run*" in r.output
    html = out.read_text(encoding="utf-8")
    assert 'id="empty"' in html and "no run matches no-such-run*: nothing to show." in html


def test_the_warning_badge_counts_every_warning_and_the_list_is_capped(tmp_path):
    from llmbench.page import MAX_WARNINGS

    lines = [
        "[INFO|trainer.py:2128] 2024-06-28 09:14:02,331 >> ***** Running training *****",
        *(
            f"{{'loss': 1.{i:02d}, 'grad_norm': nan, 'learning_rate': 0.0005, 'epoch': 0.{i:02d}}}"
            for i in range(1, 31)
        ),
    ]
    log = tmp_path / "hf.log"
    log.write_text("\n".join(lines) + "\n")
    db, out = tmp_path / "s.db", tmp_path / "w.html"
    assert run("ingest", log, "--db", db).exit_code == 0
    assert run("report", "--db", db, "--html", out).exit_code == 0
    data = _data(out.read_text(encoding="utf-8"))
    assert data["nWarnings"] == [30]  # one per NaN grad_norm line: the badge says 30
    assert len(data["warnings"][0]) == MAX_WARNINGS + 1 and data["warnings"][0][-1] == "... 10 more"


def test_an_empty_selection_makes_a_page_that_says_so(tmp_path):
    from llmbench.store import Store

    db = tmp_path / "empty.db"
    Store(str(db)).close()
    out = tmp_path / "e.html"
    assert run("report", "--db", db, "--html", out).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert 'id="empty"' in html and _data(html)["rows"] == []


DERIVED = re.compile(r"^(\w+) = ([\w ×/^]+) = ([\d.e+ ×/^-]+) = ([\d.e+-]+)$")


def _evaluate(numbers: str) -> float:
    """The arithmetic of a derivation's numbers, left to right (× and / only)."""
    tokens = numbers.replace("10^12", "1e12").split()
    got = float(tokens[0])
    for op, v in zip(tokens[1::2], tokens[2::2], strict=True):
        got = got * float(v) if op == "×" else got / float(v)
    return got


def _told(data: dict, i: int, column: str) -> str:
    """A cell's hover text as the page's script makes it: its derivation, else (an
    input) the origin its provenance holds."""
    cols = [c["name"] for c in data["columns"]]
    why = data["why"][i][cols.index(column)]
    origin = next((o for k, _, o in data["provenance"][i] if k == column), None)
    return why or (f"{column}: {origin}" if origin else "")


def test_every_metric_cell_tells_how_it_was_derived_with_numbers_that_add_up(page):
    path, runs = page
    data = _data(path.read_text(encoding="utf-8"))
    cols = [c["name"] for c in data["columns"]]
    metrics = [c for c in cols if c not in ("run_id", "source", "model", "num_gpus", "flags")]
    checked = 0
    for i in range(len(data["why"])):
        for c in metrics:
            told = _told(data, i, c)
            assert told.startswith(c), (data["sources"][i], c, told)  # never blank
            m = DERIVED.match(told)
            if m:  # the printed numbers give the printed value (to the digits shown)
                assert _evaluate(m.group(3)) == pytest.approx(float(m.group(4)), rel=2e-4), told
                checked += 1
    assert checked >= 100
    pax = next(i for i, s in enumerate(data["sources"]) if s.endswith("175b/128/log.out"))
    why = {c: _told(data, pax, c) for c in cols}
    assert why["tokens_per_s"] == (
        "tokens_per_s = tokens_per_step / step_time_s = 524288 / 7.59 = 69076.15"
    )  # 256 sequences x 2048 tokens (settings.toml) in the steady median 7.59 s
    assert why["step_time_s"] == (
        "step_time_s = median of 18 steady step time(s), steps 3–20, log lines 12–34; "
        "2 warm-up step(s) left out = 7.59 s"
    )
    assert why["num_gpus"].endswith("settings.toml [files.'*/pax/fp8/175b/128/*']")
    assert why["hfu"] == (
        "hfu: empty, lacks recompute (set recompute=none|selective|full for hw_tflops_per_gpu/hfu)"
    )
    nemo = next(i for i, s in enumerate(data["sources"]) if s.endswith("nemo2-llama3-8b.log"))
    why = {c: _told(data, nemo, c) for c in cols}
    assert why["tflops_per_gpu"].startswith("tflops_per_gpu: empty, lacks model, seq_len, num_gpus")


def test_report_explain_prints_the_same_derivations(page):
    path, _ = page
    r = run("report", "--db", path.parent / "s.db", "--explain", "*/pax/fp8/175b/128/*")
    assert r.exit_code == 0, r.output
    told = [ln.strip() for ln in r.stdout.splitlines()]
    assert "tokens_per_step = global_batch_size × seq_len = 256 × 2048 = 524288" in told
    assert "mfu = tflops_per_gpu / peak_tflops = 573.0878 / 1978.9 = 0.2896" in told
    assert told.index("tokens_per_step = global_batch_size × seq_len = 256 × 2048 = 524288") > [
        ln.split()[0] for ln in told
    ].index("peak_tflops")  # after the inputs


def test_the_page_draws_each_runs_step_times_as_a_small_multiple(page):
    path, runs = page
    data = _data(path.read_text(encoding="utf-8"))
    pax = next(i for i, s in enumerate(data["sources"]) if s.endswith("175b/128/log.out"))
    curve = data["panels"][pax]
    assert curve["x"] == [1, 20] and curve["n"] == 20 and curve["w"] == 0.1  # 2 of 20 warm-up
    assert len(curve["lo"]) == 20 and "hi" not in curve  # short: every step as printed
    assert min(curve["lo"][2:]) == curve["y"][0] and max(curve["lo"][2:]) == curve["y"][1]
    n = [c["name"] for c in data["columns"]].index("n_steady")
    drawn = [c is not None for c in data["panels"]]
    assert drawn == [bool(r[n]) for r in data["rows"]]  # every run with steady steps
    assert sum(drawn) >= 40


def test_a_long_run_is_drawn_as_its_lowest_and_highest_step_times(tmp_path):
    from llmbench.page import PANEL_POINTS

    log = tmp_path / "long.log"
    lines = [
        f" iteration {i:8d}/    1000 | consumed samples: {i * 8:10d} | elapsed time per iteration "
        f"(ms): {1000.0 + (500.0 if i == 700 else 0.0) + (i % 7):.1f} | learning rate: 1.000E-04 |"
        " global batch size:     8 | lm loss: 2.000000E+00 | loss scale: 1.0 |"
        " number of skipped iterations:   0 | number of nan iterations:   0 |"
        for i in range(1, 1001)
    ]
    log.write_text("\n".join(lines) + "\n")
    db, out = tmp_path / "s.db", tmp_path / "r.html"
    assert run("ingest", log, "--db", db).exit_code == 0
    assert run("report", "--db", db, "--html", out).exit_code == 0
    (curve,) = _data(out.read_text(encoding="utf-8"))["panels"]
    assert curve["x"] == [1, 1000] and curve["n"] == 1000
    assert len(curve["lo"]) == len(curve["hi"]) == PANEL_POINTS
    assert max(curve["hi"]) == 1.5 + 700 % 7 / 1000  # the one slow step survives the cut
    assert min(curve["lo"]) == 1.0


def _mlperf_store(tmp_path):
    from test_mlperf import _result, _tree

    t0 = 1727700000000
    _tree(tmp_path / "tree", [_result(t0, 101.5), _result(t0, 99.25), _result(t0, 100.0)])
    db = tmp_path / "s.db"
    pax = FIXTURES / "pax" / "fp8" / "175b" / "128"
    assert run("ingest", tmp_path / "tree", pax, "--db", db).exit_code == 0
    return db


def test_the_report_page_holds_the_mlperf_scores_of_selected_result_files(tmp_path):
    db = _mlperf_store(tmp_path)
    out = tmp_path / "r.html"
    assert run("report", "--db", db, "--html", out).exit_code == 0
    html = out.read_text(encoding="utf-8")
    assert '<table class="sortable" id="mlperf">' in html and 'id="fig-mlperf"' in html
    head = re.search(r'<table class="sortable" id="mlperf">.*?</thead>', html, re.S).group(0)
    names = re.findall(r"<th [^>]*>([^<]+?)(?: <span|</th>)", head)
    body = re.search(r'id="mlperf">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    (row,) = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    cells = dict(zip(names, re.findall(r">([^<]*)</td>", row), strict=True))
    assert cells["score_min"] == "100" and cells["n_runs"] == "3"  # the median of 3 runs
    assert cells["benchmark"] == "gpt3" and cells["round"] == "v4.1"
    data = _data(html)
    assert len(data["rows"]) == 4  # 3 MLPerf runs and the Paxml one
    ttt = [c["name"] for c in data["columns"]].index("time_to_train_min")
    assert sorted(r[ttt] for r in data["rows"] if r[ttt] is not None) == [99.25, 100.0, 101.5]
    out2 = tmp_path / "pax.html"  # a selection without MLPerf results: no such table
    assert run("report", "--db", db, "*/pax/*", "--html", out2).exit_code == 0
    assert 'id="mlperf"' not in out2.read_text(encoding="utf-8")


def _browser() -> str | None:
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


needs_browser = pytest.mark.skipif(
    _browser() is None, reason="no Chromium installed (.ci/run installs it)"
)


def _chromium(tmp_path) -> list[str]:
    """Headless Chromium with every network address unreachable."""
    return [
        _browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip


def _selftest(path, tmp_path, query: str = "pax") -> dict:
    """What the page's own self-test reports after sorting, filtering by ``query``
    and opening a row, with the console errors it logged (``errors``)."""
    done = subprocess.run(
        [*_chromium(tmp_path), "--window-size=1400,900", "--virtual-time-budget=5000", "--dump-dom",
         f"file://{path}#selftest={query}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    m = re.search(r'<pre id="selftest">(.*?)</pre>', done.stdout)
    assert m, done.stderr[-2000:]
    got = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    got["errors"] = [ln for ln in done.stderr.splitlines() if "CONSOLE" in ln and "rror" in ln]
    return got


@needs_browser
def test_in_a_headless_browser_offline_it_sorts_filters_and_draws(page, tmp_path):
    path, runs = page
    common = _chromium(tmp_path)
    got = _selftest(path, tmp_path)
    assert not got["errors"], got["errors"]
    assert got["rows"] == len(runs) and got["shownRows"] == min(len(runs), 100)
    assert got["sortedFirstGpus"] == got["maxGpus"] == 10752  # sorted descending by GPUs
    data = _data(path.read_text(encoding="utf-8"))
    pax = [r for r, s in zip(data["rows"], data["sources"], strict=True) if "pax" in s.lower()]
    assert got["filtered"] == len(pax) >= 5  # the Paxml runs (their paths hold "pax")
    gpus = [int(g) for g in got["filteredGpus"] if g]
    assert gpus == sorted(gpus, reverse=True) and gpus[0] == 2048  # the sort outlives the filter
    assert _selftest(path, tmp_path, "69076.15")["filtered"] == 1  # a number as it is shown
    assert got["details"] >= 10  # a run's inputs and where they came from
    assert got["figures"] == [True, True]  # every figure laid out, not blank
    assert got["panels"] == got["panelRuns"] >= 5  # a small multiple per shown run
    assert got["panelsDrawn"]  # each with its curve laid out
    assert got["keyboardSort"] == "ascending"  # Enter on a header sorts, as a click does
    assert any(d.startswith("tokens_per_s = tokens_per_step / step_time_s") for d in got["derived"])
    assert all(t for t in got["titles"])  # every cell of a run says where it came from
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*common, "--hide-scrollbars", "--window-size=1400,5000", f"--screenshot={shot}",
         f"file://{path}"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert _coloured(shot, 0, 5000) > 20_000  # the small multiples and figures, drawn


def _coloured(png, top: int, bottom: int) -> int:
    """Pixels of a screenshot's rows ``top`` to ``bottom`` that are neither white nor
    grey: what the figures' curves, bands and markers paint."""
    from PIL import Image

    im = Image.open(png).convert("RGB").crop((0, top, 1400, bottom))
    return sum(n for n, (r, g, b) in im.getcolors(1 << 24) if max(r, g, b) - min(r, g, b) > 40)


@needs_browser
def test_the_mlperf_scores_sort_in_the_browser(tmp_path):
    db = _mlperf_store(tmp_path)
    out = tmp_path / "r.html"
    assert run("report", "--db", db, "--html", out).exit_code == 0
    got = _selftest(out, tmp_path)
    assert not got["errors"], got["errors"]
    assert got["mlperf"] == ["100"] and got["rows"] == 4 and got["filtered"] == 1


@needs_browser
def test_the_compare_and_mlperf_pages_work_in_the_browser(tmp_path):
    db = _mlperf_store(tmp_path)
    scores = tmp_path / "scores.html"
    assert run("mlperf", "--db", db, "--html", scores).exit_code == 0
    got = _selftest(scores, tmp_path, "gpt3")
    assert not got["errors"], got["errors"]
    assert got["scoreInView"]  # the score is in a 1400 px window, not scrolled off
    assert got["rows"] == got["shownRows"] == got["filtered"] == 1 and got["figures"] == [True]
    base = FIXTURES / "megatron_deepspeed" / "topology-48n-181b" / "dp4-tp8-pp12-mbs1.log"
    cand = FIXTURES / "megatron_deepspeed" / "topology-48n-181b" / "dp8-tp8-pp6-mbs4.log"
    pairs = tmp_path / "cmp.html"
    r = run("compare", base, cand, "--html", pairs, "--metric", "tokens_per_s_per_gpu,step_time_s",
            "--settings", FIXTURES / "settings.toml")  # fmt: skip
    assert r.exit_code == 0, r.output
    got = _selftest(pairs, tmp_path, "step_time")
    assert not got["errors"], got["errors"]
    assert got["rows"] == 2 and got["filtered"] == 1 and got["figures"] == [True]
    data = _data(pairs.read_text(encoding="utf-8"))
    helps = {c["name"]: c["help"] for c in data["columns"]}
    assert helps["ratio"] == "candidate / baseline" and helps["verdict"].startswith("faster/slower")
