"""Metrics against the seed tables (hand-made from logs) and independent arithmetic."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, write

from llmbench.cli import cli
from llmbench.flops import hardware_flops, model_flops
from llmbench.metrics import resolve_shape, steady_state
from llmbench.shapes import Shape, param_count
from llmbench.specs import find_accelerator, find_model, models

GPT3 = Shape(l=96, h=12288, a=96, V=51200, s=2048, f=4 * 12288)


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_dgxc_flops_per_sample_is_the_seed_figure():
    # seed 001 notes: 2048 * (376883380224 + 695784701952 + 3774873600)
    assert model_flops("dgxc", GPT3, 1) == 2048 * (376883380224 + 695784701952 + 3774873600)
    assert model_flops("dgxc", GPT3, 1) == pytest.approx(2.2046e15, rel=1e-4)
    # equal to Megatron-LM's general form for dense GPT
    assert model_flops("megatron", GPT3, 1) == pytest.approx(
        model_flops("dgxc", GPT3, 1), rel=1e-12
    )


def test_recompute_counts_exactly_ptdp_for_dense_gpt():
    assert hardware_flops(GPT3, 7, "full") == pytest.approx(model_flops("ptdp", GPT3, 7), rel=1e-12)
    assert hardware_flops(GPT3, 7, "none") == model_flops("megatron", GPT3, 7)
    assert hardware_flops(GPT3, 7, None) is None
    # counted as megatron-causal counts: without recompute, HFU = that formula's MFU
    causal = "megatron-causal"
    assert hardware_flops(GPT3, 7, "none", causal) == model_flops("megatron-causal", GPT3, 7)
    extra = hardware_flops(GPT3, 7, "selective", causal) - hardware_flops(GPT3, 7, "none", causal)
    assert extra == 2 * 7 * 2048 * 2048 * 96 * 12288  # QK^T and AV again, half masked
    # bigscience with c = 4 is ptdp; c = 3 is ptdp * 3/4
    assert model_flops("bigscience", GPT3, 5, "full") == pytest.approx(
        model_flops("ptdp", GPT3, 5), rel=1e-12
    )
    assert model_flops("bigscience", GPT3, 5, "none") == pytest.approx(
        0.75 * model_flops("ptdp", GPT3, 5), rel=1e-12
    )


def test_seed000_parameter_formula():
    # P = 12lh^2(1 + 13/(12h) + (V+s)/(12lh)) for GPT-3 175B ~ 174.6e9
    p = param_count(GPT3)
    assert p == pytest.approx(
        12 * 96 * 12288**2 * (1 + 13 / (12 * 12288) + (51200 + 2048) / (12 * 96 * 12288))
    )
    assert 174e9 < p < 175.5e9


def _catalog(name, **kw):
    """(catalog entry, its Shape written out by hand: SwiGLU, untied embeddings)."""
    spec = models()[name]
    return spec, Shape(
        l=spec["num_layers"],
        h=spec["hidden_size"],
        a=spec["num_attention_heads"],
        g=spec["num_query_groups"],
        f=spec["ffn_hidden_size"],
        V=spec["vocab_size"],
        s=spec["seq_len"],
        swiglu=True,
        untied=True,
        **kw,
    )


@pytest.mark.parametrize(
    "name", ["llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b", "llama3-405b"]
)
def test_catalog_param_counts_match_the_gqa_swiglu_arithmetic(name):
    spec, sh = _catalog(name)
    assert param_count(sh) == spec["params"]


@pytest.mark.parametrize(
    "name, key",
    [
        ("GPT3 175B", "gpt3-175b"),
        ("175b", "gpt3-175b"),
        ("gpt3-175b", "gpt3-175b"),
        ("Llama-3.1-405B", "llama3-405b"),
    ],
)
def test_model_lookup_is_forgiving(name, key):
    assert find_model(name)[0] == key


@pytest.mark.parametrize(
    "name, dtype, peak",
    [
        ("NVIDIA H100-SXM5-80GB", "fp8", 1978.9),
        ("H100 80GB HBM3", "bf16", 989.4),
        ("h100-sxm", "bfloat16", 989.4),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312),
        ("NVIDIA A100-SXM4-40GB (400W)", "fp16", 312),
        ("AMD Instinct MI300X", "bf16", 1307.4),
    ],
)
def test_accelerator_aliases_and_dense_peaks(name, dtype, peak):
    assert find_accelerator(name).peak(dtype) == peak


def test_steady_state_rule():
    times = [90.0, 9.0] + [7.0] * 7 + [8.0]
    st = steady_state(times)
    assert st["warmup"] == 2 and st["n"] == 8 and st["value"] == 7.0
    assert steady_state(times, stat="last")["value"] == 8.0
    assert steady_state(times, stat="mean")["value"] == pytest.approx(57 / 8)
    assert steady_state(times, warmup=0, stat="min")["value"] == 7.0
    assert steady_state([5.0, 3.0])["value"] == 3.0  # a 2-step run keeps its last step
    assert steady_state(list(range(1, 101)))["warmup"] == 10


SEED001 = {
    128: (7.47, 70185.8, 0.2976, 164.9),
    256: (7.58, 138334.56, 0.2933, 83.67),
    512: (7.60, 275941.05, 0.2925, 41.94),
    1024: (7.89, 531597.46, 0.2817, 21.77),
    2048: (8.02, 1045961.09, 0.2772, 11.07),
}


def test_seed001_table_from_five_pax_logs(tmp_path):
    toml = 'seq_len = 2048\nmodel = "gpt3-175b"\naccelerator = "h100-sxm"\n' + "".join(
        f'[files."*/{g}/*"]\nglobal_batch_size = {2 * g}\n' for g in SEED001
    )
    settings = write(tmp_path / "settings.toml", toml)
    run(
        "ingest",
        FIXTURES / "pax",
        "--settings",
        settings,
        "--path-pattern",
        "{dtype}/{model}/{num_gpus}/",
    )
    rows = {
        r["num_gpus"]: r
        for r in json.loads(
            run("report", "--stat", "last", "--formula", "dgxc", "--format", "json")
        )
    }
    assert sorted(rows) == sorted(SEED001)
    for gpus, (t, tps, mfu, days) in SEED001.items():
        r = rows[gpus]
        assert r["step_time_s"] == t
        assert r["tokens_per_s"] == pytest.approx(tps, rel=1e-4)
        assert r["days_per_1t_tokens"] == pytest.approx(days, rel=1e-3)
        # the seed rounded the FLOPs to 2.20e15 (exact: 2.2046e15), so 0.3 % relative
        assert r["mfu"] == pytest.approx(mfu, rel=3e-3)
        per_sample = 2048 * (376883380224 + 695784701952 + 3774873600)  # seed 001 notes, unrounded
        assert r["mfu"] == pytest.approx(2 * gpus * per_sample / t / gpus / 1978.9e12, rel=1e-12)
        assert r["hfu"] is None and "recompute" in r["missing"]


def _bigscience_log(nodes, l, h, heads, dp, tp, pp, mbs, gbs, sec, tflops):
    args = {
        "num_layers": l,
        "hidden_size": h,
        "num_attention_heads": heads,
        "seq_length": 2048,
        "global_batch_size": gbs,
        "micro_batch_size": mbs,
        "tensor_model_parallel_size": tp,
        "pipeline_model_parallel_size": pp,
        "data_parallel_size": dp,
        "world_size": nodes * 8,
        "checkpoint_activations": True,
        "bf16": True,
        "fp16": False,
        "padded_vocab_size": 250880,
        "zero_stage": 1,
    }
    lines = ["------------------------ arguments ------------------------"]
    lines += [f"  {k} {'.' * (40 - len(k))} {v}" for k, v in sorted(args.items())]
    lines += ["-------------------- end of arguments ---------------------"]
    for i in (1, 2):
        lines.append(
            f" iteration {i:8d}/   95367 | consumed samples: {i * gbs:12d} | consumed tokens: {i * gbs * 2048:12d} | "
            f"elapsed time per iteration (s): {sec * (1.3 if i == 1 else 1):.2f} | learning rate: 3.787E-06 | global batch size: {gbs:5d} | "
            f"lm loss: 6.381926E+01 | loss scale: 1.0 | grad norm: 2.763 | num zeros: 0.0 | number of skipped iterations:   0 | "
            f"number of nan iterations:   0 | samples per second: {gbs / sec:.3f} | TFLOPs: {tflops / (1.3 if i == 1 else 1):.2f} |"
        )
    return "\n".join(lines) + "\n"


# rows of the seed 002 tables: (nodes, l, h, heads, DP, TP, PP, MBS, GBS, Sec/it, TFLOPs)
AFTER_FIX = [
    (48, 72, 14336, 64, 4, 8, 12, 1, 2048, 143.31, 112.49),
    (48, 72, 14336, 64, 8, 8, 6, 4, 2048, 121.48, 132.71),
    (48, 84, 13824, 64, 8, 8, 6, 4, 2048, 130.31, 134.11),
    (40, 80, 13824, 64, 8, 8, 10, 4, 2048, 147.04, 135.92),
    (48, 72, 14336, 64, 8, 4, 12, 2, 2048, 110.48, 145.92),
]
BEFORE_FIX = [
    (40, 80, 14400, 96, 4, 8, 10, 1, 2048, 221.21, 94.39),
    (40, 80, 13824, 96, 4, 8, 10, 4, 2048, 147.43, 130.53),
]


def test_seed002_hw_tflops_and_the_formula_the_log_used(tmp_path):
    for i, row in enumerate(AFTER_FIX + BEFORE_FIX):
        write(tmp_path / f"logs/{i}.out", _bigscience_log(*row))
    run("ingest", tmp_path / "logs", "--set", "accelerator=NVIDIA A100-SXM4-80GB")
    rows = json.loads(run("report", "--format", "json", "--stat", "last"))
    by_time = {r["step_time_s"]: r for r in rows}
    for nodes, *_, sec, tflops in AFTER_FIX:
        r = by_time[sec]
        assert r["num_gpus"] == nodes * 8
        assert r["hw_tflops_per_gpu"] == pytest.approx(tflops, rel=1e-3)
        assert r["tflops_logged_formula"] in ("ptdp", "bigscience")
        assert r["tflops_per_gpu_logged"] == tflops
        # the log counts recompute, model FLOPs do not: a named convention (ptdp, the one
        # Megatron-DeepSpeed prints with --checkpoint-activations) reproduces it, so the
        # two differ for a known reason, not a disagreement
        assert r["logged_disagrees"] is False
        assert r["formula"] == "megatron"  # what Megatron-DeepSpeed counts, never causal
        assert r["hfu"] == pytest.approx(tflops / 312, rel=1e-3)
        assert r["mfu"] == pytest.approx(
            r["hfu"] * model_flops("megatron", _sh(r), 1) / model_flops("ptdp", _sh(r), 1), rel=1e-9
        )
    for *_, sec, tflops in BEFORE_FIX:
        assert by_time[sec]["tflops_logged_formula"] == "8n"
        assert by_time[sec]["tflops_per_gpu_logged"] == tflops


def _sh(r):
    run_ = json.loads(run("export", "--table", "runs", "--format", "json"))
    src = next(x for x in run_ if x["run_id"] == r["run_id"])
    return Shape(
        l=src["num_layers"],
        h=src["hidden_size"],
        a=src["num_attention_heads"],
        V=250880,
        s=2048,
        f=4 * src["hidden_size"],
    )


SEED004 = [
    (48, 1, 1, 48, 17212.8, 0.95, 0.04),
    (192, 1, 4, 48, 3720.0, 1.10, 0.2),
    (384, 1, 8, 48, 2338.8, 0.88, 0.3),
    (3072, 16, 4, 48, 313.6, 0.82, 2.5),
]


@pytest.mark.parametrize("nodes, dp, mp, pp, sec, tflops, agg", SEED004)
def test_seed004_fugaku_table(nodes, dp, mp, pp, sec, tflops, agg):
    from llmbench import estimate

    user = {
        "gpt-30b": {
            "num_layers": 48,
            "hidden_size": 7168,
            "num_attention_heads": 56,
            "vocab_size": 50257,
            "seq_len": 2048,
        }
    }
    r = estimate(
        model="gpt-30b",
        gpus=nodes,
        global_batch_size=1536,
        step_time=sec,
        dtype="fp32",
        accelerator="a64fx",
        recompute="full",
        tp=mp,
        pp=pp,
        models=user,
        formula="megatron",  # Megatron-DeepSpeed's count (2021): the scores in full
    ).iloc[0]
    assert r["hw_tflops_per_gpu"] == pytest.approx(tflops, rel=0.01)
    # the seed's "Est. Aggr. PetaFLOPs" is TFLOPs x Nodes / 1024 (llmbench's aggregate uses /1000)
    assert round(tflops * nodes / 1024, 2) == pytest.approx(agg, abs=0.051)
    assert r["hw_tflops_per_gpu"] * nodes / 1024 == pytest.approx(agg, abs=0.06)


def test_seed000_eos_one_billion_tokens():
    run("ingest", FIXTURES / "mllog" / "seed000-eos-gpt3.txt")
    r = json.loads(run("report", "--format", "json", "--tokens", "1e9"))[0]
    assert r["tokens_per_s_logged"] == 5154997.267404211
    assert 1e9 / r["tokens_per_s_logged"] / 60 == pytest.approx(3.2, abs=0.05)
    assert 2688 * 2048 / r["tokens_per_s_logged"] == pytest.approx(1.07, abs=0.005)
    # from the logged per-step times, the same within 0.1 %
    assert r["time_for_tokens_s"] / 60 == pytest.approx(3.233, rel=2e-3)
    assert r["step_time_s"] == pytest.approx(1.0679, abs=0.002)
    assert r["time_to_train_min"] == pytest.approx((1696565401890 - 1696565266887) / 60000)


def test_missing_inputs_are_null_and_named_never_zero():
    run("ingest", FIXTURES / "pax" / "fp8" / "175b" / "128" / "log.out")
    r = json.loads(run("report", "--format", "json"))[0]
    for key in ("tokens_per_s", "tflops_per_gpu", "mfu", "days_per_1t_tokens", "aggregate_pflops"):
        assert r[key] is None
    assert (
        "set global_batch_size" in r["missing"]
        and "set seq_len" in r["missing"]
        and "set num_gpus" in r["missing"]
    )
    # steady state: median of steps 3..20 (warm-up = max(2, 10 % of 20))
    times = [
        s["step_time_s"]
        for s in sorted(
            json.loads(run("export", "--table", "steps", "--format", "json")),
            key=lambda s: s["step"],
        )
    ]
    srt = sorted(times[2:])
    assert r["step_time_s"] == (srt[8] + srt[9]) / 2 and r["n_steady"] == 18


def test_explain_names_every_origin(tmp_path):
    run(
        "ingest",
        FIXTURES / "pax" / "fp8" / "175b" / "128" / "log.out",
        "--path-pattern",
        "{dtype}/{model}/{num_gpus}/",
        "--set",
        "model=gpt3-175b",
        "--set",
        "accelerator=h100-sxm",
    )
    out = run("report", "--explain")
    assert "command line --set" in out and "path-pattern {dtype}/{model}/{num_gpus}/" in out
    assert "catalog gpt3-175b" in out and "catalog h100-sxm fp8 dense" in out


def test_estimate_cli_matches_the_seed001_first_column():
    out = json.loads(
        run(
            "estimate",
            "--model",
            "gpt3-175b",
            "--gpus",
            128,
            "--global-batch-size",
            256,
            "--step-time",
            7.47,
            "--dtype",
            "fp8",
            "--accelerator",
            "h100-sxm",
            *("--tp", 8, "--pp", 8),  # the model state fits (at TP 1, PP 1: memory>device)
            "--formula",
            "dgxc",
            "--format",
            "json",
        )
    )[0]
    assert out["flags"] is None
    assert out["tokens_per_s"] == pytest.approx(70185.8, rel=1e-5)
    assert out["mfu"] == pytest.approx(0.2976, rel=3e-3)
    assert math.isclose(out["aggregate_pflops"], out["tflops_per_gpu"] * 128 / 1000)


def test_mixtral_total_and_active_parameters():
    # published: Mixtral 8x7B 46.7B total / 12.9B active; 8x22B 141B / 39B
    for name, total, active in (
        ("mixtral-8x7b", 46.7e9, 12.9e9),
        ("mixtral-8x22b", 141e9, 39e9),
    ):
        spec, sh = _catalog(name, topk=2, experts=8)
        assert param_count(sh) == spec["params"]
        assert param_count(sh) == pytest.approx(total, rel=0.005)
        assert param_count(sh, active=True) == pytest.approx(active, rel=0.005)
        # 6N uses active parameters; Megatron counts top-2 expert MLPs per token
        assert model_flops("6n", sh, 1) == 6 * param_count(sh, active=True) * sh.s
        dense = Shape(**{**sh.__dict__, "topk": 1, "experts": 1, "params": None, "assumed": []})
        mlp = 12 * sh.s * sh.l * sh.h * sh.h * (sh.f / sh.h) * 1.5
        assert model_flops("megatron", sh, 1) - model_flops("megatron", dense, 1) == (
            pytest.approx(mlp, rel=1e-12)
        )


def test_communication_volume_per_gpu():
    from llmbench.metrics import comm_bytes_per_gpu

    run_ = {"tp": 8, "pp": 8, "dp": 16, "dtype": "bf16"}
    out = comm_bytes_per_gpu(GPT3, 175e9, 1536, run_)
    # DP ring all-reduce of bf16 gradients: 2 * 15/16 * 175e9/64 * 2 bytes
    assert out["comm_dp_bytes_per_gpu"] == pytest.approx(10_253_906_250)
    # one activation tensor per GPU: 1536/16 sequences * 2048 * 12288 * 2 bytes
    act = 4_831_838_208
    assert out["comm_tp_bytes_per_gpu"] == pytest.approx(2 * 7 / 8 * 4 * 12 * act)
    assert out["comm_pp_bytes_per_gpu"] == pytest.approx(2 * act)
    # no pipeline: no P2P; one TP rank: no all-reduce; fp32 doubles the bytes
    out = comm_bytes_per_gpu(GPT3, 175e9, 1536, {"tp": 1, "pp": 1, "num_gpus": 4, "dtype": "fp32"})
    assert out["comm_pp_bytes_per_gpu"] == 0 and out["comm_tp_bytes_per_gpu"] == 0
    assert out["comm_dp_bytes_per_gpu"] == pytest.approx(2 * 3 / 4 * 175e9 * 4)
    # topology unknown: missing, not zero
    assert set(comm_bytes_per_gpu(GPT3, 175e9, 1536, {}).values()) == {None}


def test_user_model_from_the_settings_file_is_stored_at_ingest(tmp_path):
    settings = write(
        tmp_path / "s.toml",
        'model = "my-30b"\naccelerator = "h100-sxm"\ndtype = "bf16"\nnum_gpus = 128\n'
        "global_batch_size = 256\n"
        "[models.my-30b]\nnum_layers = 48\nhidden_size = 7168\nnum_attention_heads = 56\n"
        "vocab_size = 51200\nseq_len = 2048\nffn_hidden_size = 28672\n",
    )
    run("ingest", FIXTURES / "pax" / "fp8" / "175b" / "128" / "log.out", "--settings", settings)
    # the report needs no --settings: the shape was stored with the run
    r = json.loads(run("report", "--format", "json"))[0]
    sh = Shape(l=48, h=7168, a=56, V=51200, s=2048, f=28672)
    expect = model_flops("megatron-causal", sh, 256) / r["step_time_s"] / 128 / 1e12
    assert r["tflops_per_gpu"] == pytest.approx(expect, rel=1e-12)
    assert r["mfu"] == pytest.approx(expect / 989.4, rel=1e-12)
    assert "[models.my-30b]" in run("report", "--explain")
    # --set params= overrides the computed count
    run(
        "ingest",
        FIXTURES / "pax" / "fp8" / "175b" / "128" / "log.out",
        "--settings",
        settings,
        "--set",
        "params=3e10",
    )
    r = json.loads(run("report", "--format", "json", "--formula", "6n"))[0]
    assert r["params"] == 3e10


def test_per_gpu_logged_tokens_per_s_is_scaled_by_the_gpu_count():
    log = FIXTURES / "torchtitan" / "llama3-8b-4gpu.log"
    run(
        "ingest",
        log,
        "--set",
        "num_gpus=4",
        "--set",
        "global_batch_size=8",
        "--set",
        "seq_len=8192",
    )
    r = json.loads(run("report", "--format", "json", "--warmup", "1", "--stat", "last"))[0]
    # step 30: rank 0 printed tps 6030 (first copy kept); 4 GPUs
    assert r["tokens_per_s_logged"] == 6030 * 4
    assert r["step_time_s"] == pytest.approx(24.8 / 10)
    assert r["tokens_per_s"] == pytest.approx(8 * 8192 / 2.48)


def test_megatron_lm_moe_log_is_reproduced_by_the_megatron_formula():
    # Mixtral 8x7B (top-2 of 8 experts, GQA, SwiGLU) from its own args dump
    run("ingest", FIXTURES / "megatron_lm" / "mixtral-8x7b-16xh100.log")
    r = json.loads(run("report", "--format", "json"))[0]
    assert r["tflops_logged_formula"] == "megatron"
    assert r["logged_disagrees"] is False
    assert r["tflops_per_gpu"] == pytest.approx(r["tflops_per_gpu_logged"], rel=0.005)
    assert r["params"] == pytest.approx(46.7e9, rel=0.001)


def test_step_time_statistics_carry_no_float_noise():
    """A statistic of printed step times prints as a decimal: the median of 1.5392
    and 1.5429 is 1.54105 (binary arithmetic gives 1.5410499999999998), the mean of
    0.1, 0.2 and 0.3 is 0.2 (not 0.19999999999999998)."""
    median = steady_state([9.0, 9.0, 1.5392, 1.5429], warmup=2)
    assert repr(median["value"]) == "1.54105"
    assert repr(median["p10"]) == "1.53957" and repr(median["p90"]) == "1.54253"
    mean = steady_state([9.0, 9.0, 0.1, 0.2, 0.3], warmup=2, stat="mean")
    assert repr(mean["value"]) == "0.2"
    assert steady_state([5.0, 5.0, 1e-7, 3e-7], warmup=2)["value"] == 2e-7


# published parameter counts: GPT-3 as Brown et al. 2020 Table 2.1 rounds them; the
# others exact, from the models' HF config.json-built checkpoints (BLOOM: model card)
PUBLISHED_PARAMS = {
    "gpt3-125m": 125e6,
    "gpt3-350m": 350e6,
    "gpt3-760m": 760e6,
    "gpt3-1.3b": 1.3e9,
    "gpt3-2.7b": 2.7e9,
    "gpt3-6.7b": 6.7e9,
    "gpt3-13b": 13e9,
    "gpt3-175b": 175e9,
    "bloom-176b": 176_247_271_424,
    "llama2-7b": 6_738_415_616,
    "llama2-13b": 13_015_864_320,
    "llama2-70b": 68_976_648_192,
    "llama3-8b": 8_030_261_248,
    "llama3-70b": 70_553_706_496,
    "llama3-405b": 405_853_388_800,
    "mixtral-8x7b": 46_702_792_704,
    "mixtral-8x22b": 140_630_071_296,
    # the HF safetensors totals (Gemma 3: the text model; with its vision tower the
    # -it checkpoint's total is 12,187,325,040 / 27,432,406,640)
    "qwen2.5-7b": 7_615_616_512,
    "qwen2.5-14b": 14_770_033_664,
    "qwen2.5-32b": 32_763_876_352,
    "qwen2.5-72b": 72_706_203_648,
    "qwen3-8b": 8_190_735_360,
    "qwen3-32b": 32_762_123_264,
    "qwen3-30b-a3b": 30_532_122_624,
    "qwen3-235b-a22b": 235_093_634_560,
    "gemma2-9b": 9_241_705_984,
    "gemma2-27b": 27_227_128_320,
    "gemma3-12b": 11_766_034_176,
    "gemma3-27b": 27_009_346_304,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_every_catalog_model_is_found_by_its_name_and_its_shape_gives_its_size(name):
    """The shape alone (the catalog's exact count set aside) gives the published
    size: exactly where it is published exactly, within GPT-3's rounding."""
    from llmbench.specs import find_model

    key, spec = find_model(name)
    assert key == name  # 'gpt3-6.7b' was a nested TOML table once
    shape = {k: v for k, v in spec.items() if k != "params"}
    sh, _, _ = resolve_shape({"model": name}, {}, {name: shape})
    n = param_count(sh)
    assert n == round(n)
    if name.startswith(("gpt3", "bloom")):  # GPT-3's are rounded; BLOOM: its layer norms
        assert abs(n / PUBLISHED_PARAMS[name] - 1) <= (0.02 if name.startswith("gpt3") else 2e-4)
    else:  # to the parameter: heads of 128/256, QKV bias, q/k norms, four norms, experts
        assert n == PUBLISHED_PARAMS[name]
    if "params" in spec:
        assert spec["params"] == PUBLISHED_PARAMS[name]


def test_every_catalog_model_has_a_published_size():
    """Here to the parameter, or its maker's figures in a ``published`` table
    (tests/test_catalog.py)."""
    from llmbench.specs import models

    for name, spec in models().items():
        assert name in PUBLISHED_PARAMS or "published" in spec, name


# accelerator names as MLPerf Training system descriptions (v4.0-v5.1) and logs print them
@pytest.mark.parametrize(
    "name, key, bf16",
    [
        ("NVIDIA H200-SXM5-141GB", "h200", 989.4),
        ("NVIDIA Blackwell GPU (B200-SXM-180GB)", "b200", 2250),
        ("NVIDIA Blackwell GPU (GB200)", "gb200", 2500),
        ("NVIDIA Blackwell Ultra GPU (B300-SXM-270GB)", "b300", 2250),
        ("NVIDIA Blackwell Ultra GPU (GB300)", "gb300", 2500),
        ("NVIDIA H100-SXM-80GB", "h100-sxm", 989.4),
        ("NVIDIA L40S", "l40s", 362.05),
        ("AMD Instinct MI300X 192GB HBM3", "mi300x", 1307.4),
        ("AMD Instinct MI325X 256GB HBM3e", "mi325x", 1307.4),
        ("AMD Instinct MI355X", "mi355x", 2516.6),
        ("AMD Instinct MI250X", "mi250x", 191.5),  # per GCD, as world_size counts it
        ("TPU-trillium", "tpu-v6e", 918),
        ("tpu-v3", "tpu-v3", 123),
    ],
)
def test_mlperf_system_names_find_their_accelerator(name, key, bf16):
    acc = find_accelerator(name)
    assert acc is not None and acc.key == key and acc.peak("bf16") == bf16


def test_catalog_aliases_are_unambiguous_and_every_row_has_a_source():
    import csv
    from importlib.resources import files

    from llmbench.specs import _norm

    seen: dict[str, str] = {}
    with files("llmbench").joinpath("data/hardware.csv").open() as f:
        for row in csv.DictReader(f):
            assert row["source"].strip(), row["key"]
            for name in {row["key"], row["name"], *row["aliases"].split(";")} - {""}:
                assert seen.setdefault(_norm(name), row["key"]) == row["key"], name
            peaks = [float(row[d]) for d in ("fp32", "bf16", "fp8") if row[d]]
            assert peaks == sorted(peaks), row["key"]  # lower precision, higher peak


LLAMA3_8B = FIXTURES / "megatron_lm" / "llama3-8b-8xh100.log"


def _report(db, *args):
    r = CliRunner().invoke(cli, ["report", "--db", str(db), "--format", "json", *args])
    return r, json.loads(r.stdout)


def test_impossible_numbers_are_flagged_never_shown_plainly(tmp_path):
    db = tmp_path / "s.db"
    assert CliRunner().invoke(cli, ["ingest", str(LLAMA3_8B), "--db", str(db)]).exit_code == 0
    r, rows = _report(db, "--set", "accelerator=h100-sxm")
    assert rows[0]["flags"] is None and 0.4 < rows[0]["mfu"] < 0.43  # 417 / 989.4
    # a wrong GPU count: the work of 8 GPUs credited to 1
    r, rows = _report(db, "--set", "accelerator=h100-sxm", "--set", "num_gpus=1")
    assert r.exit_code == 0 and rows[0]["mfu"] > 1
    assert rows[0]["flags"] == "mfu>1,hfu>1,logged_off"  # recompute none: HFU = MFU
    assert "warning: " in r.stderr and "mfu>1: MFU above 1 is impossible" in r.stderr
    table = (
        CliRunner()
        .invoke(
            cli, ["report", "--db", str(db), "--set", "accelerator=h100-sxm", "--set", "num_gpus=1"]
        )
        .stdout
    )
    head, row = table.splitlines()[0].split(), table.splitlines()[2].split()
    assert head[head.index("MFU") + 1] == "flags" and "mfu>1,hfu>1,logged_off" in row


def test_estimate_refuses_a_step_time_of_zero_or_less_and_flags_mfu_above_one():
    base = ["estimate", "--model", "llama3-70b", "--gpus", "64", "--global-batch-size", "512"]
    base += ["--tp", "8", "--pp", "2"]  # 70.55e9 x 16 bytes / 16 = 65.7 GiB: fits in 80
    for bad in ("-1", "0"):
        r = CliRunner().invoke(cli, [*base, "--step-time", bad])
        assert r.exit_code == 2 and "--step-time" in r.stderr
    r = CliRunner().invoke(cli, [*base, "--step-time", "10", "--format", "json"])
    row = json.loads(r.stdout)[0]
    # 6N: 6 x 70.55e9 x 512 x 8192 / 10 s / 64 GPUs = 2,774 TFLOP/s per GPU, above any peak
    assert row["mfu"] > 2.8 and row["flags"] == "mfu>1,hfu>1"
    assert r.exit_code == 0 and "mfu>1" in r.stderr


def test_mlperf_precision_is_assumed_and_flagged(tmp_path):
    db = tmp_path / "s.db"
    seed = FIXTURES / "mllog" / "seed000-eos-gpt3.txt"
    assert CliRunner().invoke(cli, ["ingest", str(seed), "--db", str(db)]).exit_code == 0
    _, rows = _report(db, "--set", "accelerator=h100-sxm", "--set", "num_gpus=10752")
    assert rows[0]["dtype"] == "bf16" and rows[0]["flags"] == "dtype_assumed"
    # NVIDIA's EOS GPT-3 run used FP8: against the assumed BF16 peak its MFU reads
    # 0.51 (the causal count), twice what the FP8 peak gives (fixtures/settings.toml says fp8)
    assert rows[0]["formula"] == "megatron-causal"
    assert 0.51 < rows[0]["mfu"] < 0.52


def test_megatron_fp8_runs_are_measured_against_the_fp8_peak(tmp_path):
    from llmbench.ingest import parse_file

    text = LLAMA3_8B.read_text().replace(
        "  fp16 ............................................ False\n",
        "  fp16 ............................................ False\n"
        "  fp8 ............................................. hybrid\n",
    )
    assert "fp8 ....." in text
    log = tmp_path / "fp8.log"
    log.write_text(text)
    run = parse_file(str(log)).runs[0]
    assert run["dtype"] == "fp8"
    assert json.loads(run["provenance"])["dtype"].startswith("log line")


def test_hardware_and_models_list_what_names_are_accepted(tmp_path):
    r = CliRunner().invoke(cli, ["hardware", "--format", "json"])
    rows = {row["key"]: row for row in json.loads(r.stdout)}
    assert rows["mi250x"]["bf16"] == 191.5 and "GCD" in rows["mi250x"]["source"]
    assert "nvidia blackwell ultra gpu (gb300)" in rows["gb300"]["aliases"]
    assert all(row["source"] for row in rows.values())
    table = CliRunner().invoke(cli, ["hardware"]).stdout.splitlines()
    assert max(map(len, table)) <= 120 and table[0].split()[:5] == [
        "key",
        "name",
        "fp32",
        "tf32",
        "bf16",
    ]

    settings = write(
        tmp_path / "s.toml",
        "[models.tiny]\nnum_layers = 2\nhidden_size = 64\nvocab_size = 128\nseq_len = 32\n",
    )
    r = CliRunner().invoke(cli, ["models", "--settings", str(settings), "--format", "json"])
    models_ = {row["model"]: row for row in json.loads(r.stdout)}
    assert models_["gpt3-6.7b"]["num_layers"] == 32 and models_["llama3-8b"]["params"] == 8030261248
    assert models_["tiny"]["hidden_size"] == 64


def test_readme_peak_catalog_is_the_catalog():
    readme = (FIXTURES.parent / "README.md").read_text()
    marker = "<!-- llmbench hardware --format markdown -->\n"
    start = readme.index(marker) + len(marker)
    shown = readme[start : readme.index("<!-- end -->", start)]
    assert shown == CliRunner().invoke(cli, ["hardware", "--format", "markdown"]).stdout


@pytest.mark.parametrize(
    "name, active",
    # the model cards: Mixtral 12.9B, Qwen3 3.3B and 22B activated (exact: research notes,
    # embeddings and the router included)
    [
        ("mixtral-8x7b", 12_879_925_248),
        ("qwen3-30b-a3b", 3_353_032_704),
        ("qwen3-235b-a22b", 22_190_763_520),
    ],  # fmt: skip
)
def test_moe_active_parameters(name, active):
    key, spec = find_model(name)
    shape = {k: v for k, v in spec.items() if k != "params"}
    sh, _, _ = resolve_shape({"model": key}, {}, {key: shape})
    assert param_count(sh, active=True) == active


def test_formula_names_are_the_formulas():
    from llmbench.columns import FORMULA_NAMES
    from llmbench.metrics import FORMULAS

    assert tuple(FORMULAS) == FORMULA_NAMES


def test_a_run_uses_the_formula_its_framework_version_prints(tmp_path):
    """A Megatron-LM log whose arguments include mtp_num_layers (core 0.12 on, 2025-03-22)
    prints Megatron-Core's causal count: its run defaults to megatron-core; a log dated
    before MR !2789 (2025-03-06) prints the earlier count: megatron; --explain says why,
    and --formula still decides for every run."""
    new = FIXTURES / "megatron_lm" / "llama3-8b-8xh100-mcore-2026.log"
    db = tmp_path / "s.db"
    assert (
        CliRunner().invoke(cli, ["ingest", str(new), str(LLAMA3_8B), "--db", str(db)]).exit_code
        == 0
    )
    _, rows = _report(db)
    by = {Path(r["source"]).name: r for r in rows}
    assert by[new.name]["formula"] == "megatron-core"
    assert by[new.name]["tflops_per_gpu"] == pytest.approx(
        by[new.name]["tflops_per_gpu_logged"], rel=0.002
    )
    old = by[LLAMA3_8B.name]  # a log of 2024-09-12: Megatron-LM counted the scores in full
    assert old["formula"] == "megatron" and old["logged_disagrees"] is False
    assert old["tflops_per_gpu"] == pytest.approx(old["tflops_per_gpu_logged"], rel=0.005)
    _, rows = _report(db, "--formula", "megatron")
    assert {r["formula"] for r in rows} == {"megatron"}
    shown = CliRunner().invoke(cli, ["report", "--db", str(db), "--explain"]).stdout
    assert "megatron-core" in shown and "mtp_num_layers" in shown
    assert "dated 2024-09-12, before MR !2789" in shown
    bad = CliRunner().invoke(
        cli, ["report", "--db", str(db), "--set", "flops_formula=megatron-casual"]
    )
    assert bad.exit_code == 2 and "did you mean megatron-causal?" in bad.stderr


def test_the_default_names_a_causal_log_without_a_disagreement(tmp_path):
    """Issue 29: a Megatron log whose own TFLOP/s the causal count reproduces is not a
    disagreement, and the report's columns stay in the report's convention."""
    new = FIXTURES / "megatron_lm" / "llama3-8b-8xh100-mcore-2026.log"
    db = tmp_path / "s.db"
    assert CliRunner().invoke(cli, ["ingest", str(new), "--db", str(db)]).exit_code == 0
    (row,) = _report(db, "--formula", "megatron")[1]
    assert row["tflops_logged_formula"] in ("megatron-causal", "megatron-core")
    assert row["logged_disagrees"] is False
    assert row["tflops_per_gpu"] == pytest.approx(row["tflops_per_gpu_logged"] * 1.125, rel=0.003)


def test_an_untied_gpt_counts_its_output_projection():
    """A GPT-style model with untied embeddings has one more V x h matrix, so more
    parameters; its matmuls are the same (the output projection is one in both, the
    input table a lookup), so the same palm FLOPs: once they were 8 % fewer."""
    tied = Shape(l=24, h=2048, a=16, V=50304, s=2048)
    untied = Shape(l=24, h=2048, a=16, V=50304, s=2048, untied=True)
    assert param_count(untied) - param_count(tied) == 50304 * 2048
    assert model_flops("palm", untied, 8) == model_flops("palm", tied, 8)


def test_a_batch_or_gpu_count_of_zero_is_flagged():
    from llmbench.metrics import sanity_flags

    assert sanity_flags({}, {"num_gpus": 0, "global_batch_size": 8}) == ["nonpositive"]
    assert sanity_flags({}, {"num_gpus": 8, "global_batch_size": -1}) == ["nonpositive"]
    assert sanity_flags({}, {"num_gpus": 8}) == []


def test_a_batch_ramp_up_is_timed_with_the_steady_batch(tmp_path):
    # Megatron --rampup-batch-size: the first steps print a smaller global batch than
    # the steady steps the step time is taken over
    lines = ["training ..."]
    for i in range(1, 21):
        gbs = 16 if i <= 4 else 32 if i <= 8 else 64
        lines.append(
            f" iteration {i:8d}/     100 | consumed samples: {i * 64:12d} | elapsed time per "
            f"iteration (ms): {1000.0 + i % 3:.1f} | learning rate: 1.000E-04 | global batch "
            f"size: {gbs:5d} | lm loss: 2.000000E+00 | loss scale: 1.0 | number of skipped "
            "iterations:   0 | number of nan iterations:   0 |"
        )
    log = write(tmp_path / "ramp.log", "\n".join(lines) + "\n")
    db = tmp_path / "s.db"
    run("ingest", log, "--db", db)
    (row,) = json.loads(run("report", "--db", db, "--format", "json", "--set", "seq_len=2048"))
    # the ramp-up is warm-up: the steady steps are 9-20, all at the final batch
    assert (row["warmup_steps"], row["n_steady"], row["global_batch_size"]) == (8, 12, 64)
    times = [1000.0 + i % 3 for i in range(9, 21)]  # ms, as printed
    assert row["step_time_s"] == sorted(times)[5:7][0] / 1000 == 1.001  # the median of 12
    runs = json.loads(run("runs", "--db", db, "--format", "json"))
    assert runs[0]["global_batch_size"] == 64  # the run's batch: the one it ends at
    assert row["tokens_per_s"] == pytest.approx(64 * 2048 / row["step_time_s"], rel=1e-12)


@pytest.mark.parametrize(
    "accelerator, dtype, peak",
    [
        ("NVIDIA B200", "nvfp4", 9000),  # HGX B200: FP4 144 | 72 PF sparse | dense per 8
        ("NVIDIA GB300", "nvfp4", 15000),  # GB300 NVL72: 1,440 | 1,080 PF per 72
        ("NVIDIA B300 SXM6 AC", "fp4", 13500),  # HGX B300: 144 | 108 PF per 8
        ("NVIDIA GB200", "mxfp8", 5000),  # MXFP8 runs at the FP8 rate
        ("AMD Instinct MI355X", "mxfp4", 10066.3),
        ("AMD Instinct MI355X", "mxfp6", 10066.3),  # MXFP6 at the FP4 rate on CDNA 4
        ("NVIDIA B200", "mxfp6", 4500),  # FP6 at the FP8 rate on Blackwell
        ("NVIDIA H100 80GB HBM3", "nvfp4", None),  # Hopper has no FP4 units
        ("TPU v5p", "fp8", 459),  # FP8 at the BF16 rate on v5p
    ],
)
def test_peaks_for_every_dtype_in_use(accelerator, dtype, peak):
    assert find_accelerator(accelerator).peak(dtype) == peak


def test_an_fp4_recipe_in_megatron_arguments_sets_dtype_fp4(tmp_path):
    from llmbench.ingest import parse_file

    log = write(
        tmp_path / "fp4.log",
        "------------------------ arguments ------------------------\n"
        "  bf16 ............................................ True\n"
        "  fp4 ............................................. nvfp4\n"
        "  fp8 ............................................. None\n"
        "-------------------- end of arguments ---------------------\n"
        " [2026-07-01 10:00:00] iteration        1/     100 | consumed samples:          128 |"
        " elapsed time per iteration (ms): 1000.0 | learning rate: 1.0E-05 | global batch size:"
        "   128 | lm loss: 9.0E+00 | loss scale: 1.0 | number of skipped iterations:   0 |"
        " number of nan iterations:   0 |\n",
    )
    (run_,) = parse_file(str(log)).runs
    assert run_["dtype"] == "fp4"


def test_estimate_flags_a_configuration_that_cannot_run():
    """A batch below the data-parallel ranks, or a model state above the device's memory,
    is flagged: the step time of such a plan cannot be measured anywhere."""
    base = ["estimate", "--model", "llama2-70b", "--step-time", "10", "--format", "json"]
    r = CliRunner().invoke(cli, [*base, "--gpus", "128", "--global-batch-size", "8"])
    row = json.loads(r.stdout)[0]
    # 68.98e9 parameters x 16 bytes on one GPU (TP 1, PP 1) = 1.10 TB > 80 GiB; 8 < DP 128
    assert (
        row["model_state_bytes_per_gpu"] == 16 * row["params"] == pytest.approx(1.1037e12, rel=1e-4)
    )
    assert row["flags"].split(",") == ["batch<dp", "memory>device"]
    assert "batch<dp: the global batch is smaller than the data-parallel ranks" in r.stderr
    fits = [*base, "--gpus", "128", "--global-batch-size", "256", "--tp", "8", "--pp", "2"]
    row = json.loads(CliRunner().invoke(cli, fits).stdout)[0]
    assert row["model_state_bytes_per_gpu"] == 16 * row["params"] / 16 and row["flags"] is None
    # LoRA keeps the frozen 16-bit weights only: 2 bytes a parameter, 137.96 GB on one GPU
    lora = [*base, "--gpus", "8", "--global-batch-size", "8", "--lora"]
    row = json.loads(CliRunner().invoke(cli, lora).stdout)[0]
    assert row["model_state_bytes_per_gpu"] == 2 * row["params"] and row["flags"] == "memory>device"
    row = json.loads(CliRunner().invoke(cli, [*lora, "--tp", "8"]).stdout)[0]
    assert row["model_state_bytes_per_gpu"] == 2 * row["params"] / 8 and row["flags"] is None
