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


# torchtitan 2026-01 (a Qwen3-derived model on 8 x H100, every rank interleaved): the
# Building line's JSON over several lines (no space before "with"), the 2025-12 mesh line
TITAN_JSON = """[titan] 2026-01-16 02:41:29,144 - root - INFO - Building device mesh with parallelism: pp=1, dp_replicate=1, dp_shard=8, cp=1, tp=1, ep=1, etp=1
[titan] 2026-01-16 02:41:33,517 - root - INFO - Building molgen_qwen3 0.6Bwith {
  "_enforced": "This field is used to enforce all fields have defaults.",
  "dim": 1024,
  "n_layers": 28,
  "n_heads": 16,
  "n_kv_heads": 8,
  "vocab_size": 151936,
  "head_dim": 128,
  "hidden_dim": 3072,
  "norm_eps": 1e-06,
  "rope_theta": 1000000,
  "qk_norm": true,
  "max_seq_len": 4096,
  "depth_init": true,
  "attn_type": "sdpa",
  "attn_mask_type": "causal",
  "eos_id": 151645,
  "enable_weight_tying": true,
  "moe_enabled": false,
  "moe_inter_dim": 768,
  "moe_args": {
    "num_experts": 8,
    "num_shared_experts": 1,
    "top_k": 1
  }
}
[titan] 2026-01-16 02:41:33,808 - root - INFO - Total parameter count: dense 751,632,384, sparse 0, active 751,632,384
[titan] 2026-01-16 02:41:33,808 - root - INFO - Model molgen_qwen3 0.6B size: 596,049,920 total parameters
[titan] 2026-01-16 02:41:34,001 - root - INFO - Trainer is initialized with local batch size 4, global batch size 32, gradient accumulation steps 1, sequence length 4096, total steps 100 (warmup 10)
[titan] 2026-01-16 02:41:40,000 - root - INFO - step:  1  loss: 12.1035  grad_norm:  9.0141  memory: 20.42GiB(25.80%)  tps: 10,211  tflops: 41.58  mfu: 4.20%
[titan] 2026-01-16 02:41:41,200 - root - INFO - step:  2  loss: 11.2311  grad_norm:  8.1153  memory: 20.42GiB(25.80%)  tps: 27,306  tflops: 111.19  mfu: 11.24%
"""  # noqa: E501


def test_torchtitan_json_model_args_give_the_shape_and_the_logged_size(tmp_path):
    import llmbench
    from llmbench.shapes import param_count

    log = write(tmp_path / "qwen.log", TITAN_JSON)
    logs = llmbench.read_logs(str(log))
    run_ = logs.runs.to_dict("records")[0]
    config = json.loads(run_["config"])
    assert (run_["num_layers"], run_["hidden_size"], run_["num_query_groups"]) == (28, 1024, 8)
    assert (run_["ffn_hidden_size"], run_["num_gpus"], run_["seq_len"]) == (3072, 8, 4096)
    assert config["kv_channels"] == 128 and config["qk_norm"] is True
    assert config["untied_embeddings"] is False and "num_experts" not in config  # MoE off
    sh, _, _ = resolve_shape(run_, config, None)
    assert param_count(sh) == config["params_logged"] == 596_049_920  # tied: counted once


# MaxText 2026 (pydantic pyconfig through absl logging; AI-Hypercomputer/maxtext
# src/maxtext/examples/dpo_qwen3_demo.ipynb @ f5b5888f): enum values, Python lists
MAXTEXT_2026 = """I0706 16:49:36.939522 140110937163584 pyconfig.py:559] Config param attention_type: global
I0706 16:49:36.939635 140110937163584 pyconfig.py:559] Config param base_emb_dim: 1024
I0706 16:49:36.939651 140110937163584 pyconfig.py:559] Config param base_mlp_dim: 3072
I0706 16:49:36.939667 140110937163584 pyconfig.py:559] Config param base_moe_mlp_dim: -1
I0706 16:49:36.939683 140110937163584 pyconfig.py:559] Config param base_num_decoder_layers: 28
I0706 16:49:36.939699 140110937163584 pyconfig.py:559] Config param base_num_kv_heads: 8
I0706 16:49:36.939716 140110937163584 pyconfig.py:559] Config param base_num_query_heads: 16
I0706 16:49:36.940097 140110937163584 pyconfig.py:559] Config param chunk_attn_window_size: 0
I0706 16:49:36.941041 140110937163584 pyconfig.py:559] Config param decoder_block: DecoderBlockType.QWEN3
I0706 16:49:36.941462 140110937163584 pyconfig.py:559] Config param dtype: bfloat16
I0706 16:49:36.943274 140110937163584 pyconfig.py:559] Config param global_batch_size_to_train_on: 16
I0706 16:49:36.943843 140110937163584 pyconfig.py:559] Config param head_dim: 128
I0706 16:49:36.944001 140110937163584 pyconfig.py:559] Config param logits_via_embedding: True
I0706 16:49:36.944102 140110937163584 pyconfig.py:559] Config param max_target_length: 2048
I0706 16:49:36.944203 140110937163584 pyconfig.py:559] Config param mlp_activations: ['silu', 'linear']
I0706 16:49:36.944304 140110937163584 pyconfig.py:559] Config param quantization: QuantizationType.NONE
I0706 16:49:36.944405 140110937163584 pyconfig.py:559] Config param vocab_size: 151936
I0706 16:49:36.952160 140110937163584 max_utils.py:827] System Information: Jax Version: 0.9.2
I0706 16:49:38.498481 140110937163584 maxtext_utils.py:1884] Num_devices: 4, shape (1, 1, 1, 4, 1, 1, 1, 1, 1, 1, 1, 1)
I0706 16:50:10.118211 140110937163584 metric_logger.py:226] completed step: 1, seconds: 1.215, TFLOP/s/device: 33.100, Tokens/s/device: 6743.210, total_weights: 32768, loss: 10.211
I0706 16:50:11.333211 140110937163584 metric_logger.py:226] completed step: 2, seconds: 1.214, TFLOP/s/device: 33.127, Tokens/s/device: 6748.765, total_weights: 32768, loss: 9.877
"""  # noqa: E501


def test_maxtext_config_dump_of_2026_gives_the_shape(tmp_path):
    import llmbench

    logs = llmbench.read_logs(str(write(tmp_path / "mt.log", MAXTEXT_2026)))
    run_ = logs.runs.to_dict("records")[0]
    config = json.loads(run_["config"])
    assert (run_["num_layers"], run_["hidden_size"], run_["num_attention_heads"]) == (28, 1024, 16)
    assert (run_["num_query_groups"], run_["ffn_hidden_size"], run_["seq_len"]) == (8, 3072, 2048)
    assert (run_["global_batch_size"], run_["num_gpus"], run_["dtype"]) == (16, 4, "bfloat16")
    assert config["swiglu"] is True and config["untied_embeddings"] is False
    assert "moe_ffn_hidden_size" not in config and "attention_chunk_size" not in config  # -1, 0
    (row,) = llmbench.summarize(logs).to_dict("records")
    assert row["formula"] == "maxtext"
