"""The model catalog against its makers: every entry with a ``published`` table gives,
from its shape alone, the total and active parameter counts the maker printed (each
with its source in llmbench/data/models.toml), and is found by the names vendor
tables use. Shapes that cannot hold are refused, naming the field and its source."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from llmbench.cli import cli
from llmbench.shapes import SHAPE_KEYS, ShapeError, build, param_count, shape_keys
from llmbench.specs import find_model, models

PUBLISHED = {k: v for k, v in models().items() if "published" in v}
UNITS = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def figure(text: str) -> tuple[float, float]:
    """(value, half a unit of its last printed digit): ``"36.7B"`` -> (36.7e9, 0.05e9)."""
    m = re.fullmatch(r"([\d,]+)(?:\.(\d+))?([KMBT])", text)
    assert m, text
    unit = UNITS[m[3]]
    decimals = len(m[2] or "")
    value = float(m[1].replace(",", "") + (f".{m[2]}" if m[2] else "")) * unit
    return value, 0.5 * unit / 10**decimals


def shape_of(spec: dict):
    return build({k: v for k, v in spec.items() if k in SHAPE_KEYS and k != "params"})


def without(sh, parts: str | None) -> float:
    """The embedding tables a maker leaves out of a count."""
    table = sh.V * sh.h
    return {None: 0, "input embedding": table, "embedding tables": table * (2 if sh.untied else 1)}[
        parts
    ]


def test_every_new_architecture_is_in_the_catalog():
    names = set(PUBLISHED)
    for needed in (
        "deepseek-v3", "kimi-k2", "nemotron-h-8b", "nemotron-3-nano-30b-a3b",
        "nemotron-3-super-120b-a12b", "nemotron-3-ultra-550b-a55b", "gpt-oss-20b",
        "gpt-oss-120b", "gemma3-12b", "gemma4-31b", "gemma4-26b-a4b", "llama4-scout",
        "llama4-maverick", "mistral-7b", "olmo2-7b", "mpt-7b", "mpt-30b", "palm-540b",
        "mt-nlg-530b",
    ):  # fmt: skip
        assert needed in names


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_the_shape_gives_the_makers_parameter_counts(name):
    """Within the printed figure's rounding (plus 0.1 % for the norms and biases makers
    count differently); a size class (a model's name) within 10 %."""
    spec = models()[name]
    pub = spec["published"]
    sh = shape_of(spec)
    assert pub["source"]
    for which, active in (("total", False), ("active", True)):
        want, half = figure(pub[which])
        got = param_count(sh, active=active) - without(sh, pub.get(f"{which}_without"))
        if pub.get("kind") == "size class":
            tol = 0.1 * want
        else:
            tol = max(half + 1e-3 * want, pub.get("tolerance", 0) * want)
        assert abs(got - want) <= tol, (name, which, got, want)


def test_gpt_oss_by_the_model_cards_parts():
    """gpt-oss model card Table 1, 120b: MLP 114.71B, attention 0.96B, embedding and
    unembedding 1.16B; written out from the config (biases, sinks, router) by hand."""
    h, l, E, f, a, g, d, V = 2880, 36, 128, 2880, 64, 8, 64, 201088
    mlp = l * (E * (3 * h * f + 2 * f + h) + E * h + E)  # experts (fused gate-up), router
    attention = l * (2 * h * a * d + 2 * h * g * d + a * d + 2 * g * d + h + a)
    tables = 2 * V * h
    assert (round(mlp / 1e7) / 100, round(attention / 1e7) / 100, round(tables / 1e7) / 100) == (
        114.71,
        0.96,
        1.16,
    )
    norms = l * 2 * h + h
    sh = shape_of(models()["gpt-oss-120b"])
    assert param_count(sh) == mlp + attention + tables + norms


def test_multi_token_prediction_is_published_apart():
    from llmbench.shapes import mtp_params

    sh = shape_of(models()["deepseek-v3"])  # README_WEIGHTS: MTP module 11.5B unique, and
    assert mtp_params(sh) == pytest.approx(11.5e9, rel=0.01)  # the eh projection (0.1B)
    total = param_count(sh) + mtp_params(sh) + 2 * sh.V * sh.h  # with its own copies of the
    assert total == pytest.approx(685e9, rel=1e-3)  # tables: 685B on Hugging Face


@pytest.mark.parametrize(
    "spelling, key",
    [
        ("DeepSeekV3", "deepseek-v3"),
        ("Kimi_K2", "kimi-k2"),
        ("Nemotron_3_Nano", "nemotron-3-nano-30b-a3b"),
        ("Nemotron_3_Super", "nemotron-3-super-120b-a12b"),
        ("GPT_OSS_120B", "gpt-oss-120b"),
        ("GPT OSS 120B", "gpt-oss-120b"),
        ("Qwen3_30B_a3B", "qwen3-30b-a3b"),
        ("LLAMA3.1_405B", "llama3-405b"),
        ("gemma-3-12b", "gemma3-12b"),
        ("llama-4-scout-17b-16e", "llama4-scout"),
        ("deepseek3-671b", "deepseek-v3"),
    ],
)
def test_vendor_spellings_find_the_entry(spelling, key):
    assert find_model(spelling)[0] == key


@pytest.mark.parametrize(
    "values, field",
    [
        ({"kv_lora_rank": 9000, "qk_nope_head_dim": 1, "qk_rope_head_dim": 1, "v_head_dim": 1}, "kv_lora_rank"),
        ({"num_experts": 8, "moe_topk": 16}, "moe_topk"),
        ({"hybrid_layer_pattern": "M*M"}, "hybrid_layer_pattern"),
        ({"hybrid_layer_pattern": "MXM*"}, "hybrid_layer_pattern"),
        ({"moe_layer_freq": "[0]*3+[1]*5", "num_experts": 8, "moe_topk": 2}, "moe_layer_freq"),
        ({"local_global_pattern": "five to one"}, "local_global_pattern"),
    ],
)  # fmt: skip
def test_a_shape_that_cannot_hold_names_the_field_and_its_source(values, field):
    base = {"num_layers": 4, "hidden_size": 1024, "num_attention_heads": 8, "vocab_size": 32000}
    given = {**base, **values}
    with pytest.raises(ShapeError) as e:
        build(given, {k: "settings s.toml" for k in given})
    assert field in e.value.message and "settings s.toml" in e.value.message


def test_a_bad_shape_in_a_report_leaves_the_flops_empty_and_says_why(tmp_path):
    from conftest import FIXTURES

    log = FIXTURES / "pax" / "fp8" / "175b" / "128" / "log.out"
    db = str(tmp_path / "s.db")
    set_ = ["--set", "model=mixtral-8x7b", "--set", "moe_topk=16", "--set", "num_gpus=128"]
    r = CliRunner().invoke(
        cli, ["ingest", str(log), "--db", db, *set_, "--set", "global_batch_size=256"]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["report", "--db", db, "--format", "json"])
    row = json.loads(r.stdout)[0]
    assert row["model_flops_per_step"] is None and row["tflops_per_gpu"] is None
    assert row["tokens_per_s"] is not None  # what needs no shape is still there
    assert "moe_topk 16 is above num_experts 8" in row["missing"]
    assert "command line --set" in row["missing"]


HF_GPT_OSS = {
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "head_dim": 64,
    "hidden_act": "silu", "hidden_size": 2880, "intermediate_size": 2880,
    "layer_types": ["sliding_attention", "full_attention"] * 18, "model_type": "gpt_oss",
    "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 36,
    "num_key_value_heads": 8, "num_local_experts": 128, "sliding_window": 128,
    "tie_word_embeddings": False, "vocab_size": 201088,
}  # fmt: skip


def test_a_hugging_face_config_gives_the_catalogs_shape():
    """openai/gpt-oss-120b config.json: the same parameter count as the catalog entry."""
    keys = shape_keys(HF_GPT_OSS)
    assert keys["local_global_pattern"] == "1:1" and keys["sliding_window"] == 128
    assert param_count(build({**keys, "seq_len": 4096})) == 116_829_156_672
