"""Issue 29 end to end: a user describes a 2025-26 model (catalog, a Hugging Face
config.json given or beside the log, --set), and the report, estimate and formulas
commands count it in the convention named, saying which and with which terms."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write
from test_catalog import HF_GPT_OSS

from llmbench.cli import cli
from llmbench.flops import CONVENTIONS, DEFAULT, model_flops
from llmbench.metrics import resolve_shape


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r


def test_formulas_lists_every_convention_with_its_source_and_versions():
    r = run("formulas", "--format", "json")
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    assert [x["name"] for x in rows] == list(CONVENTIONS)
    default = [x for x in rows if x["default"]]
    assert [x["name"] for x in default] == [DEFAULT] == ["megatron-causal"]
    core = next(x for x in rows if x["name"] == "megatron-core")
    assert "Megatron-Bridge 0.1-0.4 (NeMo 25.09-26.04)" in core["versions"]
    assert "as 2 matrices" in core["counts"]  # a non-SiLU gate
    text = run("formulas").stdout
    assert "megatron-causal (default)" in text and "maxtext-2025" in text


def _estimate(*extra):
    base = ["estimate", "--gpus", "64", "--global-batch-size", "1280", "--seq-len", "4096"]
    r = run(*base, "--step-time", "2.4696", "--format", "json", *extra)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)[0]


def test_estimate_takes_a_model_config_and_every_shape_field(tmp_path):
    """Bridge 26.06 GB300 GPT-OSS 120B: 33,166 tokens/s per GPU, 1,081 TFLOP/s: a step of
    1280 x 4096 tokens on 64 GPUs takes 2.4696 s; from the catalog or the config.json."""
    by_name = _estimate("--model", "gpt-oss-120b", "--accelerator", "gb300", "--dtype", "mxfp8")
    config = write(tmp_path / "config.json", json.dumps(HF_GPT_OSS))
    by_file = _estimate("--model-config", config, "--accelerator", "gb300", "--dtype", "mxfp8")
    for row in (by_name, by_file):
        assert row["formula"] == "megatron-causal"
        assert row["tflops_per_gpu"] == pytest.approx(1081, rel=0.01)
        assert row["mfu"] == pytest.approx(row["tflops_per_gpu"] / 5000)  # MXFP8: the FP8 rate
    # Bridge before 26.06 counted the gate as two matrices and no window
    old = _estimate("--model", "gpt-oss-120b", "--formula", "megatron-core")
    assert old["tflops_per_gpu"] == pytest.approx(by_name["tflops_per_gpu"] / 1.2012, rel=1e-3)
    # a shape field on top: no windows -> more attention FLOPs
    wide = _estimate("--model", "gpt-oss-120b", "--set", "local_global_pattern=0:1")
    assert wide["tflops_per_gpu"] > by_name["tflops_per_gpu"] * 1.01
    lora = _estimate("--model", "gpt-oss-120b", "--lora")
    assert lora["tflops_per_gpu"] == pytest.approx(by_name["tflops_per_gpu"] * 2 / 3)


def test_estimate_refuses_what_it_cannot_count(tmp_path):
    r = run("estimate", "--gpus", "8", "--global-batch-size", "8", "--step-time", "1")
    assert r.exit_code == 2 and "--model-config" in r.stderr
    bad = write(tmp_path / "c.json", "{not json")
    r = run("estimate", "--model-config", bad, "--gpus", "8", "--global-batch-size", "8",
            "--step-time", "1")  # fmt: skip
    assert r.exit_code == 2 and f"{bad}:1: not JSON" in r.stderr
    r = run("estimate", "--model", "deepseek-v3", "--set", "moe_topk=300", "--gpus", "8",
            "--global-batch-size", "8", "--step-time", "1", "--format", "json")  # fmt: skip
    row = json.loads(r.stdout)[0]
    assert row["tflops_per_gpu"] is None
    assert "moe_topk 300 is above num_experts 256 (moe_topk from --set" in row["missing"]


def test_a_config_json_beside_the_log_gives_the_shape(tmp_path):
    """A Megatron-LM log without a model name; its folder holds the model's config.json."""
    log = FIXTURES / "megatron_lm" / "llama3-8b-8xh100-mcore-2026.log"
    folder = tmp_path / "run"
    write(folder / "train.log", log.read_bytes())
    write(folder / "config.json", json.dumps({**HF_GPT_OSS, "num_hidden_layers": 12}))
    db = tmp_path / "s.db"
    assert run("ingest", folder, "--db", db).exit_code == 0
    rows = json.loads(run("runs", "--db", db, "--all", "--format", "json").stdout)
    (row,) = rows
    prov = json.loads(row["provenance"])
    assert row["num_layers"] == 32  # the log's own arguments win
    assert json.loads(row["config"])["sliding_window"] == 128
    assert prov["sliding_window"] == f"model config {folder / 'config.json'}"


def test_report_model_config_and_explain_show_the_terms(tmp_path):
    log = FIXTURES / "pax" / "fp8" / "175b" / "128" / "log.out"
    db = tmp_path / "s.db"
    sets = ["--set", "num_gpus=64", "--set", "global_batch_size=1280", "--set", "seq_len=4096"]
    assert run("ingest", log, "--db", db, *sets).exit_code == 0
    config = write(tmp_path / "config.json", json.dumps(HF_GPT_OSS))
    r = run("report", "--db", db, "--model-config", config, "--format", "json")
    (row,) = json.loads(r.stdout)
    assert row["formula"] == "megatron-causal" and row["params"] == 116_829_156_672
    shown = run("report", "--db", db, "--model-config", config, "--explain").stdout
    assert f"--model-config {config}" in shown
    for term in ("attention_linear", "attention_scores", "moe", "logits"):
        assert f"flops.{term}" in shown
    assert "megatron-causal's count per sequence" in shown
    core = run("report", "--db", db, "--model-config", config, "--explain", "--formula",
               "megatron-core").stdout  # fmt: skip
    assert "megatron-core counts sliding-window attention as full attention" in core
    # the store is unchanged: the next report without it has no model
    (plain,) = json.loads(run("report", "--db", db, "--format", "json").stdout)
    assert plain["params"] is None


def test_a_convention_that_cannot_count_a_part_says_so():
    """MaxText has no Mamba-2 count: a Nemotron-H run under it has no FLOPs and a note."""
    sh, _, _ = resolve_shape({"model": "nemotron-h-8b"}, {}, None)
    assert model_flops("maxtext", sh, 1) is None
    assert model_flops("megatron-causal", sh, 1) == pytest.approx(382.630046466048e12)
    r = run("estimate", "--model", "nemotron-h-8b", "--gpus", "8", "--global-batch-size", "8",
            "--step-time", "1", "--formula", "maxtext", "--format", "json")  # fmt: skip
    row = json.loads(r.stdout)[0]
    assert row["tflops_per_gpu"] is None and "maxtext cannot count Mamba-2 layers" in row["missing"]


def test_readme_names_every_convention_and_shape_field():
    from llmbench.shapes import SHAPE_KEYS

    readme = (FIXTURES.parent / "README.md").read_text()
    section = readme[readme.index("### FLOPs conventions") : readme.index("## Compare and predict")]
    for name in CONVENTIONS:
        assert f"| `{name}`" in section, name
    for key in SHAPE_KEYS:
        assert f"`{key}`" in section, key
