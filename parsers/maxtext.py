"""MaxText (JAX) step lines, from ``metric_logger.py`` (earlier ``train.py``)::

    I0811 21:55:06.119312 138304841739136 metric_logger.py:226] completed step: 2,
    seconds: 10.228, TFLOP/s/device: 350.869, Tokens/s/device: 19222.175,
    total_weights: 1572864, loss: 12.980, lm_loss: 12.980, perplexity: 433463.719

(one line). 2023 versions print ``completed step: N, seconds: S, TFLOP/s: T,
loss: L``. ``TFLOP/s/device`` and ``Tokens/s/device`` are per accelerator;
``total_weights`` is the number of non-padding tokens in the global batch.
The first steps include compilation: the metrics layer's warm-up rule skips them.
Evaluation lines (``eval metrics after step: N, loss=...``) are ``validation``
events, never steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from llmbench.parsing import (
    Config,
    Event,
    Field,
    Parser,
    Record,
    Step,
    convert,
    glog_timestamp,
    literal,
    number,
)
from llmbench.reader import Line

FIELDS: dict[str, Field] = {
    "seconds": Field("step_time_s"),
    "TFLOP/s/device": Field("tflops_per_gpu_logged"),
    "TFLOP/s": Field("tflops_per_gpu_logged"),
    "Tokens/s/device": Field("tokens_per_s_per_gpu"),
    "total_weights": Field("tokens_per_step", int),
    "loss": Field("loss"),
}
STEP_RE = re.compile(r"completed step: (?P<step>\d{1,18}), (?P<rest>.*)")
# evaluation, never a step: ``average loss after step=99: eval_loss=2.3, ...`` (2024),
# ``eval metrics after step: 4, loss=9.855, total_weights=75264.0`` (2025),
# ``Completed eval after train step 4, loss=9.855, perplexity=...`` (2026)
EVAL_RE = re.compile(
    r"(?:average loss after step=|eval metrics after step: |Completed eval after train step )"
    r"(?P<step>\d{1,18})[:,]?\s*(?P<rest>.*)"
)
EVAL_PAIR_RE = re.compile(r"(?P<k>[A-Za-z_][\w ]*?)=(?P<v>[^,\s]+)")


# pyconfig's dump at start: ``Config param <key>: <value>`` (2024-01 on; since 2025-11 through
# Python logging: an absl or ``INFO:...pyconfig:`` prefix), sorted keys, values as str()
# gives them (``['silu', 'linear']``, ``True``, ``DecoderBlockType.QWEN3``); and
# ``Num_devices: 128, shape (2, 1, 64, ...)``
PARAM_RE = re.compile(r"Config param (?P<key>\w+): ?(?P<value>.*?)\s*$")
DEVICES_RE = re.compile(r"Num_devices: (?P<n>\d+)")
# MaxText key -> shape key; the scaled sizes (emb_dim, ...) win over the base_ ones
PARAMS = {
    "base_num_decoder_layers": "num_layers",
    "num_decoder_layers": "num_layers",
    "base_emb_dim": "hidden_size",
    "emb_dim": "hidden_size",
    "base_num_query_heads": "num_attention_heads",
    "num_query_heads": "num_attention_heads",
    "base_num_kv_heads": "num_query_groups",
    "num_kv_heads": "num_query_groups",
    "head_dim": "kv_channels",
    "base_mlp_dim": "ffn_hidden_size",
    "mlp_dim": "ffn_hidden_size",
    "base_moe_mlp_dim": "moe_ffn_hidden_size",
    "moe_mlp_dim": "moe_ffn_hidden_size",
    "vocab_size": "vocab_size",
    "max_target_length": "seq_len",
    "num_experts": "num_experts",
    "num_experts_per_tok": "moe_topk",
    "first_num_dense_layers": "first_k_dense_replace",
    "mtp_num_layers": "mtp_num_layers",
    "sliding_window_size": "sliding_window",
    "chunk_attn_window_size": "attention_chunk_size",
    "global_batch_size_to_train_on": "global_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "dtype": "dtype",
}
MLA = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
# decoder blocks whose local layers alternate with global ones (MaxText's own pattern)
LOCAL_GLOBAL = {"gemma2": "1:1", "gemma3": "5:1", "gemma4": "5:1", "gpt_oss": "1:1"}
# sizes that mean "off" at 0 or below (a dense MLP, no window, no chunks)
POSITIVE = ("moe_ffn_hidden_size", "sliding_window", "attention_chunk_size")
# ``quantization`` modes whose matrix multiplications run in fp8
FP8_QUANTIZATION = ("fp8", "nanoo_fp8", "fp8_full", "fp8_gpu")


def _value(text: str):
    """A printed value: a Python literal (list, bool, number), an enum's name
    (``DecoderBlockType.QWEN3`` -> ``qwen3``), else the text."""
    if text.startswith("["):
        import ast

        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    enum = re.fullmatch(r"[A-Z]\w*\.(\w+)", text)
    return enum[1].lower() if enum else literal(text)


def config_shape(params: dict) -> dict:
    """The run settings MaxText's config dump gives (``PARAMS``, MLA, MoE, gates,
    windows, precision, the model's name)."""
    out = {PARAMS[k]: v for k, v in params.items() if k in PARAMS and v not in (None, "", -1)}
    for rule in SHAPE_RULES:
        rule(params, out)
    return out


def _sizes(params: dict, out: dict) -> None:
    """Sizes that mean "off" (0 or below) dropped, and the experts of a dense model."""
    for key in POSITIVE:
        if not out.get(key) or out[key] <= 0:
            out.pop(key, None)
    if params.get("num_experts", 1) in (None, 0, 1):
        out.pop("num_experts", None), out.pop("moe_topk", None)


def _mla(params: dict, out: dict) -> None:
    """Multi-latent attention's ranks and head dimensions (``attention_type: mla``)."""
    if params.get("attention_type") == "mla":
        out.update({k: params[k] for k in MLA if params.get(k)})


def _mlp(params: dict, out: dict) -> None:
    """The gate (more than one activation) and the activation; untied embeddings."""
    acts = params.get("mlp_activations")
    if isinstance(acts, list) and acts:
        out["swiglu"], out["activation"] = len(acts) > 1, str(acts[0])
    if isinstance(params.get("logits_via_embedding"), bool):
        out["untied_embeddings"] = not params["logits_via_embedding"]


def _shared_experts(params: dict, out: dict) -> None:
    """The shared experts' FFN: their count times an expert's."""
    shared = params.get("shared_experts")
    if isinstance(shared, int) and shared > 0 and out.get("moe_ffn_hidden_size"):
        out["moe_shared_expert_intermediate_size"] = shared * out["moe_ffn_hidden_size"]


def _local_global(params: dict, out: dict) -> None:
    """Local:global layers: the decoder block's pattern of windowed layers, or one global
    layer every ``nope_layer_interval`` (chunked attention, which wins)."""
    block = str(params.get("decoder_block") or "")
    if out.get("sliding_window") and block in LOCAL_GLOBAL:
        out["local_global_pattern"] = LOCAL_GLOBAL[block]
    if out.get("attention_chunk_size") and isinstance(params.get("nope_layer_interval"), int):
        out["local_global_pattern"] = f"{params['nope_layer_interval'] - 1}:1"


def _precision_and_name(params: dict, out: dict) -> None:
    """fp8 where the quantization computes in it; the model's name unless the default."""
    if str(params.get("quantization") or "").lower() in FP8_QUANTIZATION:
        out["dtype"] = "fp8"
    name = params.get("model_name")
    if isinstance(name, str) and name not in ("", "default"):
        out["model"] = name


# what ``config_shape`` reads beyond ``PARAMS``, in this order (later rules see earlier ones)
SHAPE_RULES = (_sizes, _mla, _mlp, _shared_experts, _local_global, _precision_and_name)


class MaxTextParser(Parser):
    name = "maxtext"
    framework = "MaxText"
    description = "`completed step: N, seconds: S, TFLOP/s/device: T, Tokens/s/device: K, ...`"
    produces = ("step_time_s", "tflops_per_gpu_logged", "loss")

    def detect(self, head: Sequence[str]) -> float:
        for text in head:
            if "completed step:" in text and "seconds:" in text:
                return 0.95
        return 0.0

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        params: dict = {}
        first = None  # the dump's first line: its settings come from there
        for no, text, rank in lines:
            if "Config param" in text:
                m = PARAM_RE.search(text)
                if m is not None and m["key"] not in params:
                    params[m["key"]] = _value(m["value"])
                    first = first or no
                continue
            if params:  # the dump is over
                yield Config(config_shape(params), first)
                params = {}
            if "Num_devices:" in text:
                m = DEVICES_RE.search(text)
                if m is not None:
                    yield Config({"num_gpus": int(m["n"])}, no)
                continue
            if "after step" in text or "after train step" in text:
                m = EVAL_RE.search(text)
                if m is not None:
                    yield _eval(m, no)
                continue
            step = _step(text, no, rank) if "completed step:" in text else None
            if step is not None:
                yield step
        if params:
            yield Config(config_shape(params), first)


def _step(text: str, no: int, rank) -> Step | None:
    """A ``completed step:`` line's step (None without a step time)."""
    m = STEP_RE.search(text)
    if m is None:
        return None
    values: dict = {}
    for seg in m["rest"].split(", "):
        label, _, raw = seg.partition(": ")
        field = FIELDS.get(label.strip(), Field(label.strip()))
        v = convert(raw, field)
        if v is not None:
            values[field.column] = v
    ts = glog_timestamp(text)
    if ts:
        values["timestamp"] = ts
    return Step(int(m["step"]), values, no, rank) if "step_time_s" in values else None


def _eval(m: re.Match, no: int) -> Event:
    """An evaluation's metrics (``loss``, ``total_weights``, ...) as an event."""
    values: dict = {}
    for p in EVAL_PAIR_RE.finditer(m["rest"]):
        v = number(p["v"])
        if v is not None:
            values["loss" if p["k"].strip() == "eval_loss" else p["k"].strip()] = v
    return Event("validation", values, no, step=int(m["step"]))
