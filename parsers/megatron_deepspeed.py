"""Megatron-DeepSpeed (BigScience and Microsoft forks) iteration logs.

The line, printed by ``training_log`` in megatron/training.py::

     iteration        2/   95367 | consumed samples:         4096 | consumed tokens: ...
     | elapsed time per iteration (s): 769.99 | learning rate: 3.787E-06 | ...
     | samples per second: 2.660 | TFLOPs: 108.47 |

Fields come in any order as `` | label: value``; the table FIELDS maps each
label to a canonical column and unit (``(ms)`` is converted to seconds). Labels
not in the table are kept in ``extra``. The ``---- arguments ----`` dump and the
``padded vocab`` line become run config; a second arguments dump starts a new
run segment (a counter that goes back does too, in the frames layer).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Iterator, Sequence
from functools import lru_cache

from llmbench.parsing import (
    Batch,
    Config,
    CopyWindow,
    Event,
    Field,
    FieldShape,
    NewRun,
    Note,
    Parser,
    Record,
    Step,
    convert,
    number,
    raw_number,
    scaled_text,
)
from llmbench.parsing import literal as _literal
from llmbench.reader import CheckedLine, Line

FIELDS: dict[str, Field] = {
    "consumed samples": Field("consumed_samples", int),
    "consumed tokens": Field("consumed_tokens", int),
    "elapsed time per iteration (s)": Field("step_time_s"),
    "elapsed time per iteration (ms)": Field("step_time_s", float, 1e-3),
    "throughput per GPU (TFLOP/s/GPU)": Field("tflops_per_gpu_logged"),
    "TFLOPs": Field("tflops_per_gpu_logged"),
    "learning rate": Field("learning_rate"),
    "global batch size": Field("global_batch_size", int),
    "lm loss": Field("loss"),
    "lm-loss": Field("loss"),
    "loss scale": Field("loss_scale"),
    "grad norm": Field("grad_norm"),
    "number of skipped iterations": Field("skipped_iterations", int),
    "number of nan iterations": Field("nan_iterations", int),
    "samples per second": Field("samples_per_s"),
    "tokens per GPU (tokens/s/GPU)": Field("tokens_per_s_per_gpu"),
    "load_balancing_loss": Field("load_balancing_loss"),
    "num zeros": Field("num_zeros"),
    "actual seqlen": Field("actual_seqlen", int),
    # Microsoft Megatron-DeepSpeed (2023-11+; ALCF's fork without the space)
    "tokens per gpu per second (tgs)": Field("tokens_per_s_per_gpu"),
    "tokens per gpu per second(tgs)": Field("tokens_per_s_per_gpu"),
    "TGS": Field("tokens_per_s_per_gpu"),  # vendor-patched Megatron
    # GPT-NeoX (megatron/logging.py): `` samples/sec: S | iteration ...``, flops with
    # the unit glued on (``112.9TFLOPS``), ``lm_loss``, MFU/HFU in percent
    "samples/sec": Field("samples_per_s"),
    "approx flops per GPU": Field("tflops_per_gpu_logged"),
    "lm_loss": Field("loss"),
    "MFU": Field("mfu_logged", float, 0.01),
    "HFU": Field("hfu_logged", float, 0.01),
    # ALCF Megatron-DeepSpeed (2025) prints ``label=value`` with underscores
    "consumed_samples": Field("consumed_samples", int),
    "consumed_tokens": Field("consumed_tokens", int),
    "elapsed_time_per_iteration_ms": Field("step_time_s", float, 1e-3),
    "learning_rate": Field("learning_rate"),
    "global_batch_size": Field("global_batch_size", int),
    "loss_scale": Field("loss_scale"),
    "grad_norm": Field("grad_norm"),
    "actual_seqlen": Field("actual_seqlen", int),
    "number_of_skipped_iterations": Field("skipped_iterations", int),
    "number_of_nan_iterations": Field("nan_iterations", int),
    "samples_per_second": Field("samples_per_s"),
    "tokens_per_gpu_per_second_tgs": Field("tokens_per_s_per_gpu"),
}

# values printed with a unit glued on: ``human_readable_flops`` (GPT-NeoX) gives
# ``"%3.1f%s" % (num, unit)``, e.g. ``112.9TFLOPS``; stored in TFLOP/s
FLOPS_RE = re.compile(r"^\s*(?P<v>-?[\d.]+(?:[eE][-+]?\d+)?)(?P<unit>[KMGTPEZ]?)FLOPS\s*$")
FLOPS_UNITS = {"": -12, "K": -9, "M": -6, "G": -3, "T": 0, "P": 3, "E": 6, "Z": 9}
GLUED_UNITS = frozenset({"approx flops per GPU"})

# fields kept in ``extra`` under a canonical name (no step column of their own)
EXTRA_COLUMNS = frozenset({"num_zeros", "actual_seqlen", "load_balancing_loss", "hfu_logged"})
STEP_KEYS = frozenset(f.column for f in FIELDS.values()) - EXTRA_COLUMNS

# what only Megatron-DeepSpeed prints, and what only Megatron-LM prints
DEEPSPEED_MARKS = (
    *("TFLOPs:", "consumed tokens:", "samples per second:", "lm-loss:", "(s):"),
    *("(tgs)", "TFLOPs=", "tokens_per_gpu_per_second_tgs="),
)
MEGATRON_LM_MARKS = ("throughput per GPU (TFLOP/s/GPU)", "tokens per GPU (tokens/s/GPU)")

# argument name in the dump -> canonical run column
ARGS: dict[str, str] = {
    "num_layers": "num_layers",
    "hidden_size": "hidden_size",
    "ffn_hidden_size": "ffn_hidden_size",
    "num_attention_heads": "num_attention_heads",
    "num_query_groups": "num_query_groups",
    "seq_length": "seq_len",
    "encoder_seq_length": "seq_len",
    "global_batch_size": "global_batch_size",
    "micro_batch_size": "micro_batch_size",
    "tensor_model_parallel_size": "tp",
    "pipeline_model_parallel_size": "pp",
    "data_parallel_size": "dp",
    "context_parallel_size": "cp",
    "expert_model_parallel_size": "ep",
    "world_size": "num_gpus",
    "zero_stage": "zero_stage",
    "padded_vocab_size": "vocab_size",
    "num_experts": "num_experts",
    "moe_router_topk": "moe_topk",
    "swiglu": "swiglu",
    "untie_embeddings_and_output_weights": "untied_embeddings",  # Megatron-LM: --untie-embeddings-and-output-weights
    "moe_ffn_hidden_size": "moe_ffn_hidden_size",
    "add_qkv_bias": "qkv_bias",
    "qk_layernorm": "qk_norm",
    # 2025-26 shapes (Megatron-Core >= 0.12): multi-latent attention, hybrid layers
    "qk_head_dim": "qk_nope_head_dim",
    "qk_pos_emb_head_dim": "qk_rope_head_dim",
    "hybrid_override_pattern": "hybrid_layer_pattern",
}
# Megatron-Bridge 2025-09 to 2026-02 prints its config as YAML after the setup
# (``------- Task Configuration -------``, keys sorted, 2-space indents, ``null``); the keys
# read, per top-level section, as the Megatron argument each is
TASK_START = "------- Task Configuration -------"
TASK_END_RE = re.compile(r"^-{20,}\s*$")
YAML_KEY_RE = re.compile(r"^(?P<indent> *)(?P<key>\w+):(?: (?P<value>.*?))?\s*$")
BRIDGE_KEYS: dict[str, dict[str, str]] = {
    "model": {
        **{
            k: k
            for k in (
                "num_layers",
                "hidden_size",
                "ffn_hidden_size",
                "num_attention_heads",
                "num_query_groups",
                "kv_channels",
                "vocab_size",
                "moe_router_topk",
                "moe_ffn_hidden_size",
                "moe_shared_expert_intermediate_size",
                "moe_layer_freq",
                "multi_latent_attention",
                "q_lora_rank",
                "kv_lora_rank",
                "qk_head_dim",
                "qk_pos_emb_head_dim",
                "v_head_dim",
                "mtp_num_layers",
                "hybrid_override_pattern",
                "tensor_model_parallel_size",
                "pipeline_model_parallel_size",
                "context_parallel_size",
                "expert_model_parallel_size",
                "window_attn_skip_freq",
                "seq_length",
            )
        },  # fmt: skip
        "num_moe_experts": "num_experts",
        "hybrid_layer_pattern": "hybrid_override_pattern",
        "gated_linear_unit": "swiglu",
    },
    "train": {"global_batch_size": "global_batch_size", "micro_batch_size": "micro_batch_size"},
    "dataset": {"sequence_length": "seq_length", "seq_length": "seq_length"},
}
# what a line of that YAML holds that the parser reads (lines without it never reach it)
TASK_NEEDLES = (
    TASK_START, "----------", "model:", "train:", "dataset:", "tokenizer:", "_target_:",
    "activation_func:", "share_embeddings_and_output_weights:",
    *{f"{k}:" for keys in BRIDGE_KEYS.values() for k in keys},
)  # fmt: skip
# MLA's arguments are printed (with defaults) whether or not MLA is on
MLA_ARGS = ("q_lora_rank", "kv_lora_rank", "qk_head_dim", "qk_pos_emb_head_dim", "v_head_dim")

ITER_RE = re.compile(
    r"(?:\[(?P<ts>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?)\]\s*)?"
    r"\biteration(?:\s+|=\s*)(?P<step>\d{1,18})\s*/\s*(?P<total>\d{1,18})\s*\|(?P<rest>.*)"
)
ARG_RE = re.compile(r"^\s+(?P<name>\w+) \.{2,} (?P<value>.*?)\s*$")
# ``-------------------- arguments --------------------`` (20 dashes in Megatron 1.x,
# 24 since 2.x)
ARGS_START_RE = re.compile(r"^\s*-{8,} arguments -{8,}\s*$")
ARGS_END_RE = re.compile(r"-+ end of arguments -+")
WORLD_RE = re.compile(
    r"using world size: (?P<world>\d{1,18}), data-parallel[- ]size: (?P<dp>\d{1,18}), "
    r"(?:context-parallel size: (?P<cp>\d{1,18}), )?(?:sequence-parallel size: \d{1,18}, )?"
    r"tensor-model-parallel size: (?P<tp>\d{1,18}), pipeline-model-parallel size: (?P<pp>\d{1,18})"
)
# Megatron 1.x (DeepSpeedExamples v1.1.5): ``using world size: 64 and model-parallel size: 4``
WORLD_V1_RE = re.compile(
    r"using world size: (?P<world>\d{1,18}) and model-parallel size: (?P<tp>\d{1,18})"
)
VOCAB_RE = re.compile(
    r"> padded vocab \(size: (?P<orig>\d{1,18})\) with (?P<dummy>\d{1,18}) dummy tokens "
    r"\(new size: (?P<new>\d{1,18})\)"
)
MEMORY_RE = re.compile(
    r"\[Rank (?P<rank>\d{1,18})\] \(after (?P<step>\d{1,18}) iterations\) memory \((?P<unit>[MG]B)\)"
    r" \| allocated: (?P<alloc>[\d.]+) \| max allocated: (?P<max_alloc>[\d.]+)"
    r" \| reserved: (?P<res>[\d.]+) \| max reserved: (?P<max_res>[\d.]+)"
)


# the iteration line as the bulk engine reads it: at the line's start, after an
# optional ``[date time]`` (Megatron-LM 2024+), ASCII classes only (see FieldShape)
HEAD = (
    r"^[ \t]*(?:\[(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)\]"
    r"[ \t]*)?iteration[ \t]+(?P<step>[0-9]{1,18})[ \t]*/[ \t]*[0-9]{1,18}[ \t]*\|"
)
HEAD_RE = re.compile(HEAD)
SHAPES = (
    FieldShape(
        needle="iteration",
        head=HEAD,
        fields=FIELDS,
        extra=EXTRA_COLUMNS,
        # a second iteration record glued on (ranks interleaved) never decodes: its
        # head lands in a field without a colon, or in a value that is no number
    ),
)

# `` label: value |`` pairs; the label is everything before the segment's last colon
PAIR_RE = re.compile(r"([^|]*):([^|:]*)\|")
# a second iteration line glued onto the first (ranks interleaved)
SECOND_ITER_RE = re.compile(r"\biteration(?:\s+|=\s*)\d{1,18}\s*/\s*\d{1,18}\s*\|")
# Megatron-DeepSpeed 2021 / DeepSpeedExamples ZeRO-3 (megatron/utils.py flops_calculator,
# rank 0, after the iteration line and its timers):
#   Effective Tera Flops per GPU: 41.31 and total parameters 52.005 B
EFFECTIVE_RE = re.compile(
    r"Effective Tera Flops per GPU:\s*(?P<tflops>[-\d.eE+]+) and total parameters "
    r"(?P<params>[\d.eE+]+) B"
)
# evaluate_and_print_results: `` validation loss at iteration 100 | lm loss value: 8.0E+00 |
# lm loss PPL: 3.0E+03 | `` (Megatron; ``validation-<name>`` since 2025-08), GPT-NeoX's
# `` validation results at iteration N | lm_loss value: ... | lm_loss_ppl value: ... |``
VALID_RE = re.compile(
    r"\b(?P<kind>validation|test)(?P<suffix>-\S+)? (?:loss|results) at (?P<at>[^|]*?)\s*\|(?P<rest>.*)"
)
AT_STEP_RE = re.compile(r"^iteration (?P<step>\d{1,18})\b")
# what only a DeepSpeed run prints in the head of its log (the engine's banner, its
# config dump, its activation checkpointing, the ZeRO-era flops line)
DEEPSPEED_HEAD = (
    "DeepSpeed info: version=",
    "DeepSpeedEngine configuration:",
    "[checkpointing.py:",
    "DeepSpeed Flops Profiler",
    "Setting ds_accelerator to",
    "DeepSpeed is enabled.",
    "Effective Tera Flops per GPU",
    "[Rank 0] step=",
    "DeepSpeed general environment info",
    "in DeepSpeed with backend",
)
# GPT-NeoX: `` samples/sec: S | iteration N/ M | ... | approx flops per GPU: 112.9TFLOPS |``
NEOX_MARKS = ("approx flops per GPU:", "lm_loss:")
# the marks of each flavour an iteration line may bear (``flavour``)
ITER_MARKS = (("neox", NEOX_MARKS), ("deepspeed", DEEPSPEED_MARKS), ("lm", MEGATRON_LM_MARKS))
# the flavour a head's signs give: the first of which the head shows a sign (signs: the
# flavours of ITER_MARKS, an argument ``deepspeed``, an arguments dump read to its end;
# a DeepSpeed telltale in the head is ``deepspeed`` unless Megatron-LM's marks are there)
FLAVOURS = (
    ("neox", {"neox"}),
    ("deepspeed", {"deepspeed", "deepspeed argument"}),
    ("lm", {"lm", "dumped"}),  # an arguments dump without ``deepspeed``
)
MAX_WRAPS = 3  # physical lines a hard-wrapped record may continue on
# the labels one of which every piece of a wrapped iteration record (and a validation
# line) holds
WRAP_NEEDLES = (
    *("learning rate", "loss", "grad norm", "number of", "per second", "TFLOP", "throughput"),
    *("consumed", "seqlen", "batch size", "num zeros", "(tgs)"),
)
# the head of an iteration record, however garbled what follows: a line holding one
# starts a record of its own, never continues a wrapped one
LOOSE_ITER_RE = re.compile(r"\biteration(?:\s+|=\s*)\d{1,18}\s*/\s*\d{1,18}")


def _raw(text: str):
    """An ``extra`` field's value: as printed when it is a JSON number."""
    v = raw_number(text)
    if v is None:
        raise ValueError(text)
    return v


def _extra_field(extra, key: str):
    """One field of a step's ``extra`` JSON text (None where absent or unreadable)."""
    if not isinstance(extra, str) or key not in extra:
        return None
    import json

    try:
        return json.loads(extra).get(key)
    except (ValueError, AttributeError):
        return None


def _seq_value(value) -> int | None:
    """A sequence length from a printed field: a whole number from 1 to 2**31, else None."""
    text = str(value).strip() if value is not None else ""
    if not text.isdigit() or len(text) > 10:
        return None
    n = int(text)
    return n if 0 < n <= 2**31 else None


def _checked(v, text: str):
    if v is None:
        raise ValueError(text)
    return v


def _flops(text: str) -> float:
    """``112.9TFLOPS`` (or a plain number) in TFLOP/s, on the printed digits."""
    m = FLOPS_RE.match(text)
    if m is None:
        v = number(text)
        if v is None:
            raise ValueError(text)
        return float(v)
    v = scaled_text(m["v"], float(f"1e{FLOPS_UNITS[m['unit']]}"))
    if v is None:
        raise ValueError(text)
    return v


def _converter(field: Field | None, label: str = ""):
    """text -> value for one label (as ``convert`` would give for plain numbers);
    a field kept in ``extra`` keeps its printed text (``raw_number``)."""
    if label in GLUED_UNITS:
        return _flops
    if field is not None and field.scale != 1.0 and field.column in EXTRA_COLUMNS:
        return lambda text, scale=field.scale: _checked(scaled_text(text, scale), text)
    if field is None or field.column in EXTRA_COLUMNS:
        return _raw
    if field.scale != 1.0:

        def shifted(text: str, scale: float = field.scale) -> float:
            v = scaled_text(text, scale)
            if v is None:
                raise ValueError(text)
            return v

        return shifted
    return int if field.kind is int else float


@lru_cache(maxsize=256)  # a pure function of the labels: the lines of a run share them
def _shape(labels: tuple[str, ...]) -> tuple[tuple[str, ...], tuple, tuple[str, ...]]:
    """(keys, converters, the keys that go to extra) for a line with these labels."""
    keys, convs = [], []
    for label in labels:
        label = label.strip()
        field = FIELDS.get(label)
        keys.append(label if field is None else field.column)
        convs.append(_converter(field, label))
    extra = tuple(dict.fromkeys(k for k in keys if k in EXTRA_COLUMNS or k not in STEP_KEYS))
    return tuple(keys), tuple(convs), extra


def iteration_match(text: str, at: int = 0) -> re.Match | None:
    """ITER_RE's match for the first ``iteration N/ M |`` at or after ``at``
    (anchored at each occurrence of the word: lines that merely mention it, like
    memory reports, fail at once)."""
    at = text.find("iteration", at)
    while at >= 0:
        m = ITER_RE.match(text, at)
        if m is not None:
            start = max(0, at - 48)  # a [timestamp] prefix is at most ~32 characters
            return ITER_RE.search(text, start) if "[" in text[start:at] else m
        at = text.find("iteration", at + 9)
    return None


def parse_fields(rest: str) -> tuple[dict, dict, list[str]]:
    """Split `` a: 1 | b: 2 |`` into canonical values, extras and unparsable labels."""
    rest = rest.rstrip()
    pairs = PAIR_RE.findall(rest)
    if len(pairs) != rest.count("|") or rest[-1:] != "|":
        return _parse_fields_slowly(rest)  # a segment without a colon, or cut short
    labels, texts = zip(*pairs, strict=True)
    keys, convs, extra_keys = _shape(labels)
    try:
        found = dict(zip(keys, [f(t) for f, t in zip(convs, texts, strict=True)], strict=True))
    except (ValueError, OverflowError):  # 1,234, 12.0 in an integer field, not a number
        return _parse_fields_slowly(rest)
    return found, {k: found.pop(k) for k in extra_keys}, []


def _parse_fields_slowly(rest: str) -> tuple[dict, dict, list[str]]:
    values: dict = {}
    extra: dict = {}
    bad: list[str] = []
    for seg in rest.split("|"):
        label, sep, text = seg.rpartition(":")
        if not sep:  # ``label=value`` (ALCF's logger)
            label, sep, text = seg.partition("=")
        if not sep:
            if seg.strip():
                bad.append(seg.strip())
            continue
        label = label.strip()
        field = FIELDS.get(label)
        if label in GLUED_UNITS:
            try:
                values[field.column] = _flops(text)
            except ValueError:
                bad.append(label)
            continue
        if field is None or field.column in EXTRA_COLUMNS:
            v = raw_number(text) if field is None or field.scale == 1.0 else convert(text, field)
            if v is None:
                bad.append(label)
            else:
                extra[label if field is None else field.column] = v
            continue
        v = convert(text, field)
        if v is None:
            bad.append(label)
        else:
            values[field.column] = v
    return values, extra, bad


def flavour(head: Sequence[str]) -> tuple[float, str | None]:
    """(how sure ``head`` is a Megatron-family log, 'deepspeed' | 'lm' | 'neox' | None).

    Megatron-DeepSpeed prints ``TFLOPs:``, ``consumed tokens``, ``samples per
    second`` or an argument ``deepspeed``, or the DeepSpeed engine's lines anywhere
    in the head (``DEEPSPEED_HEAD``: its banner, config dump, ``[checkpointing.py``);
    GPT-NeoX prints ``approx flops per GPU`` and ``lm_loss``; Megatron-LM (2024+)
    prints ``throughput per GPU (TFLOP/s/GPU)``; an arguments dump without
    ``deepspeed`` is Megatron-LM.
    """
    score, signs = 0.0, set[str]()
    lines = iter(head)
    for text in lines:
        if "iteration" in text and "elapsed" in text and ITER_RE.search(text):
            score = 0.95
            signs.update(kind for kind, marks in ITER_MARKS if any(m in text for m in marks))
        elif "arguments" in text and ARGS_START_RE.match(text):
            score = max(score, 0.55)
            signs |= _dump_signs(lines)
        elif "telltale" not in signs and any(mark in text for mark in DEEPSPEED_HEAD):
            signs.add("telltale")
    if "telltale" in signs and "lm" not in signs:  # the engine's lines, no Megatron-LM marks
        signs.add("deepspeed")
    return score, next((kind for kind, found in FLAVOURS if signs & found), None)


def _dump_signs(lines: Iterator[str]) -> set[str]:
    """What an arguments dump shows, read up to its end line (``lines`` advanced)."""
    signs: set[str] = set()
    for text in lines:
        m = ARG_RE.match(text)
        if m:
            if m.group("name") == "deepspeed":
                signs.add("deepspeed argument")
        elif ARGS_END_RE.search(text):
            signs.add("dumped")
            break
    return signs


# An argument a Megatron-LM version first has, and the FLOPs count it prints: the
# --mtp-num-layers argument (2025-03-22, 09ebca716d) came after MR !2789 (2025-03-06)
# halved the causal attention scores; Megatron-DeepSpeed has neither.
VERSION_ARGS = {
    "mtp_num_layers": (
        "megatron-core",
        "Megatron-LM >= core 0.12 (its arguments include mtp_num_layers, added after the "
        "causal attention count of MR !2789)",
    ),
}
# the day Megatron-LM's count halved the causal attention scores (MR !2789): a log
# dated before it prints the earlier count
CAUSAL_SINCE = "2025-03-06"


def _args_config(args: dict, line_no: int) -> Iterator[Config]:
    """The arguments dump as run settings, and the FLOPs convention its version
    prints where an argument dates it."""
    yield _args_values(args, line_no)
    for name, (formula, why) in VERSION_ARGS.items():
        if name in args:
            yield Config({"flops_formula": formula}, line_no, f"log line {line_no}: {why}")
            break


def _window(value) -> int | None:
    """Megatron's ``window_size`` ``(left, right)``: a window of left + right + 1 keys."""
    if isinstance(value, int) and value > 0:
        return value
    m = re.fullmatch(r"\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)", str(value or "").strip())
    if m is None or int(m[1]) < 0:
        return None
    return int(m[1]) + max(0, int(m[2])) + 1


def _args_values(args: dict, line_no: int) -> Config:
    values = dict(args)
    for name, column in ARGS.items():
        if name in args and args[name] is not None and column not in values:
            values[column] = args[name]
    _args_shape(args, values)
    dtype = _args_dtype(args)
    if dtype:
        values["dtype"] = dtype
    granularity = args.get("recompute_granularity")
    if args.get("checkpoint_activations") is True or granularity == "full":
        values["recompute"] = "full"
    elif granularity == "selective":
        values["recompute"] = "selective"
    elif "checkpoint_activations" in args or "recompute_granularity" in args:
        values["recompute"] = "none"
    return Config(values, line_no)


def _args_shape(args: dict, values: dict) -> None:
    """The shape parts the dump gives in its own terms: GQA off, MLA off (its arguments
    are printed anyway), a quick-GELU gate, a sliding window and its layers."""
    if args.get("group_query_attention") is False:  # num_query_groups is printed but unused
        values["num_query_groups"] = args.get("num_attention_heads")
    if args.get("multi_latent_attention") is not True:
        for name in (*MLA_ARGS, "qk_nope_head_dim", "qk_rope_head_dim"):
            values.pop(name, None)
    if args.get("quick_geglu") is True:  # GPT-OSS: a GLU with a quick-GELU
        values.update(swiglu=True, activation="quick_gelu")
    window = _window(args.get("window_size"))
    if window:
        values["sliding_window"] = window
        every = args.get("window_attn_skip_freq")
        if isinstance(every, int) and every > 1:  # every k-th layer full
            values["local_global_pattern"] = f"{every - 1}:1"


def _args_dtype(args: dict) -> str | None:
    """The precision the GEMMs run in: MFU is against that peak."""
    if args.get("fp4") not in (None, False, "None"):  # --fp4-format nvfp4 (an FP4 recipe)
        return "fp4"
    if args.get("fp8") not in (None, False, "None"):  # --fp8-format e4m3|hybrid
        return "fp8"
    if args.get("bf16") is True:
        return "bf16"
    if args.get("fp16") is True:
        return "fp16"
    if args.get("bf16") is False and args.get("fp16") is False:
        return "fp32"
    return None


class MegatronDeepSpeedParser(Parser):
    name = "megatron_deepspeed"
    framework = "Megatron-DeepSpeed"
    description = "` iteration N/ M | ... | TFLOPs: x |` lines, the arguments dump"
    family = "megatron"
    produces = tuple(sorted({f.column for f in FIELDS.values()}))
    # every line parse() reads holds one of these (ARG_RE lines hold " ..")
    needles = (
        *("iteration", "arguments", "using world size", "padded vocab", " .."),
        "Effective Tera Flops",
        # what the rest of a hard-wrapped record holds (never timer, memory or NCCL
        # lines, which would each cost the Python line path)
        *WRAP_NEEDLES,
        *TASK_NEEDLES,
    )
    shapes = SHAPES

    #: the flavour this parser claims (see ``flavour``)
    claims = "deepspeed"

    def detect(self, head: Sequence[str]) -> float:
        score, kind = flavour(head)
        if kind is None:  # neither fork's telltale: Megatron-LM (older) by default
            return score * (0.9 if self.claims == "lm" else 0.85)
        return score if kind == self.claims else score * 0.6

    def parse(self, lines: Iterable[Line | Batch]) -> Iterator[Record]:
        reading = _Reading()
        for item in lines:
            if type(item) is Batch:  # iteration lines the engine read (and their copies)
                yield from reading.flush()
                yield from reading.batch(item)
                continue
            no, text, rank = item
            if reading.pending is not None and (yield from reading.wrapped(text, no)):
                continue
            if reading.in_args and (yield from reading.dump_line(text, no)):
                continue
            if reading.task is not None and (yield from reading.task_line(text, no)):
                continue
            if (yield from reading.iteration(text, no, rank, type(item) is CheckedLine)):
                continue
            yield from reading.header(text, no, rank)
        yield from reading.flush()
        yield from reading.close()


def _memory(text: str, no: int) -> Iterator[Record]:
    """A memory report (MB, GB converted) as an event per rank it names."""
    for m in MEMORY_RE.finditer(text):
        scale = 1024.0 if m["unit"] == "GB" else 1.0
        yield Event(
            "memory",
            {
                "allocated_mb": float(m["alloc"]) * scale,
                "max_allocated_mb": float(m["max_alloc"]) * scale,
                "reserved_mb": float(m["res"]) * scale,
                "max_reserved_mb": float(m["max_res"]) * scale,
            },
            no,
            step=int(m["step"]),
            metadata={"rank": int(m["rank"])},
        )


class _Reading:
    """One parse's state: the arguments dump being read, whether steps came since
    the last run header, how many iteration lines ended with ``|`` (after one
    has, a line that does not is cut off, or hard-wrapped: ``pending`` holds it
    while the next physical lines may continue it), the last step read (a
    ZeRO-era ``Effective Tera Flops`` line belongs to it), and the rank-copy
    window. Each ``*_line``/``iteration``/``header`` method yields records and
    returns whether it took the line."""

    def __init__(self) -> None:
        self.in_args = False
        self.args: dict = {}
        self.args_line = 0
        self.steps_since_header = False  # a header line after steps starts a new run
        self.bar_lines = 0
        self.window = CopyWindow()  # iteration lines printed again by other ranks
        self.repeats = 0
        self.pending: list | None = None  # [text, first line, last line, rank, joins]
        self.last_step: int | None = None
        self.params_seen = False
        self.seq_seen = False
        self.wraps = 0
        self.unreadable = _Unreadable()
        self.dated = False  # the run's first timestamp was read (``_dated``)
        self.task: dict | None = None  # Megatron-Bridge's YAML config, while it is read
        self.section = self.sub = ""  # its top-level section, the key a nested block is of
        self.task_first = 0

    def _end_dump(self, no: int) -> Iterator[Record]:
        self.in_args = False
        yield Note("arguments dump has no end line: ends at the first iteration", no, "format")
        yield from _args_config(self.args, self.args_line)

    def batch(self, item: Batch) -> Iterator[Record]:
        if self.in_args:
            yield from self._end_dump(item.first)
        self.repeats += item.n_lines - item.frame.height
        self.bar_lines += item.frame.height
        self.steps_since_header = self.steps_since_header or item.frame.height > 0
        if item.frame.height and "step" in item.frame.columns:
            self.last_step = item.frame["step"][-1]
        if not self.seq_seen and item.frame.height and "extra" in item.frame.columns:
            yield from self._seq_len(
                _extra_field(item.frame["extra"][0], "actual_seqlen"), item.first
            )
        if not self.dated and item.frame.height and "timestamp" in item.frame.columns:
            stamps = item.frame["timestamp"]
            at = stamps.is_not_null().arg_true()
            if len(at):
                row = int(at[0])
                no = item.frame["line_no"][row] if "line_no" in item.frame.columns else item.first
                yield from self._dated(stamps[row], int(no))
        yield item

    def _dated(self, timestamp, no: int) -> Iterator[Record]:
        """A run whose first iteration line is dated before Megatron-LM halved the causal
        attention scores prints the earlier count (``megatron``)."""
        if self.dated or not timestamp:
            return
        self.dated = True
        if str(timestamp)[:10] < CAUSAL_SINCE:
            why = f"log line {no}: dated {str(timestamp)[:10]}, before MR !2789 ({CAUSAL_SINCE})"
            yield Config({"flops_formula": "megatron"}, no, why)

    def _seq_len(self, value, no: int) -> Iterator[Record]:
        """``actual seqlen`` (Microsoft Megatron-DeepSpeed) as the run's sequence length
        where the log gives none before (settings already read win). ``value``: the
        field as stored in ``extra`` (printed text or a number); a value that is no
        plausible length (not a whole number, or above 2**31) is left alone."""
        n = _seq_value(value)
        if n is not None:
            self.seq_seen = True
            yield Config({"seq_len": n}, no, f"log line {no}: actual seqlen")

    def dump_line(self, text: str, no: int) -> Generator[Record, None, bool]:
        m = ARG_RE.match(text)
        if m:
            self.args[m.group("name")] = _literal(m.group("value"))
            return True
        if ARGS_END_RE.search(text):
            self.in_args = False
            yield from _args_config(self.args, self.args_line)
            return True
        if "iteration" not in text or ITER_RE.search(text) is None:
            return True  # other ranks' output inside the dump
        yield from self._end_dump(no)  # a dump cut short: training has started
        return False

    def iteration(self, text: str, no: int, rank, checked: bool) -> Generator[Record, None, bool]:
        at = text.find("iteration")
        if at < 0:
            return False
        m = iteration_match(text, at)
        if m is None or "|" not in m.group("rest"):
            if "memory (" in text:
                yield from _memory(text, no)
                return True
            return False
        yield from self.flush()
        # a line printed again by another rank (the same text from the first record's
        # head on; records at a line's start, the engine's, and elsewhere told apart)
        # is read once: the engine decides it for the lines it checked
        key = (HEAD_RE.match(text) is not None, text[m.start() :])
        if not checked and self.window.copy(key, no):
            self.repeats += 1
            return True
        if not text.rstrip().endswith("|") and SECOND_ITER_RE.search(m.group("rest")) is None:
            self.pending = [text, no, no, rank, 0]  # cut off, or wrapped
            return True
        yield from self._records(text, m, no, rank)
        return True

    def _records(self, text: str, m: re.Match, no: int, rank) -> Iterator[Record]:
        """The iteration records of a line: one, or several glued together (a rank's
        line written into another's); a record cut short by the next is dropped."""
        while m is not None:
            glued = SECOND_ITER_RE.search(m.group("rest"))
            if glued is None:
                yield from self._record(text, m, no, rank)
                return
            end = m.start("rest") + glued.start()
            piece = text[:end]
            if piece.rstrip().endswith("|"):
                yield from self._record(piece, iteration_match(piece, m.start()), no, rank)
            else:
                yield Note(
                    f"iteration {m.group('step')} cut short by another record glued on: dropped",
                    no,
                    "line",
                )
            m = iteration_match(text, end)  # copies of a glued record's step are
            # collapsed where steps are segmented (the engine never sees the record)

    def _record(self, text: str, m: re.Match, no: int, rank) -> Iterator[Record]:
        rest = m.group("rest")
        if not text.rstrip().endswith("|") and self.bar_lines:
            yield Note(f"iteration {m.group('step')} line is cut off: dropped", no, "line")
            return
        self.bar_lines += text.rstrip().endswith("|")
        values, extra, bad = parse_fields(rest)
        before = text[: m.start()]
        if "|" in before:  # GPT-NeoX: `` samples/sec: S | iteration``: known fields only
            pre = _parse_fields_slowly(before)[0]
            values.update({k: v for k, v in pre.items() if k not in values})
        if bad:
            self.unreadable.add(bad, no)
            if not values and not extra:  # nothing of the record reads: no step at all
                self.unreadable.empty += 1
                return
        if not self.seq_seen and "actual_seqlen" in extra:
            yield from self._seq_len(extra["actual_seqlen"], no)
        step = _step(m, values, extra, no, rank)
        self.last_step = step.step
        self.steps_since_header = True
        yield from self._dated(step.values.get("timestamp"), no)
        yield step

    def wrapped(self, text: str, no: int) -> Generator[Record, None, bool]:
        """Whether ``text`` continues the pending record (a line hard-wrapped at a
        fixed width, or at a word): joined to it, and the record read once whole."""
        head, first, last, rank, joins = self.pending
        if no != last + 1 or joins >= MAX_WRAPS or _starts_record(text):
            yield from self.flush()
            return False
        # a fixed-width wrap cuts anywhere (``load_bal`` / ``ancing_loss``): join as
        # is; a word wrap lost a blank: join with one where that reads better
        joined = head + text
        spaced = head.rstrip() + " " + text.lstrip()
        if _unread(spaced) < _unread(joined):
            joined = spaced
        self.pending = [joined, first, no, rank, joins + 1]
        if joined.rstrip().endswith("|"):
            self.wraps += 1
            self.pending = None
            m = iteration_match(joined)
            if m is not None:
                yield from self._records(joined, m, first, rank)
        return True

    def flush(self) -> Iterator[Record]:
        """The pending record as it stands (no continuation came): cut off, or a
        wrapped record whose last piece lost its closing ``|``."""
        if self.pending is None:
            return
        text, first, last, rank, joins = self.pending
        self.pending = None
        if joins:
            self.wraps += 1
            text = text.rstrip() + " |"
        m = iteration_match(text)
        if m is not None:
            yield from self._records(text, m, first, rank)

    def header(self, text: str, no: int, rank=None) -> Iterator[Record]:
        if "arguments" in text and ARGS_START_RE.match(text):
            if self.steps_since_header:
                yield NewRun(no, "new arguments dump")
                self.steps_since_header = self.dated = False
            self.in_args, self.args, self.args_line = True, {}, no
        elif "using world size" in text:
            m = WORLD_RE.search(text)
            v1 = None if m else WORLD_V1_RE.search(text)
            if v1:
                yield Config({"num_gpus": int(v1["world"]), "tp": int(v1["tp"])}, no)
            elif m:
                if self.steps_since_header:
                    yield NewRun(no, "new launch (world size line)")
                    self.steps_since_header = self.dated = False
                cfg = {k: int(m[k]) for k in ("dp", "tp", "pp")}
                cfg = {"num_gpus": int(m["world"]), **cfg}
                if m["cp"]:
                    cfg["cp"] = int(m["cp"])
                yield Config(cfg, no)
        elif TASK_START in text:
            self.task, self.task_first, self.section, self.sub = {}, no, "", ""
        elif "padded vocab" in text:
            m = VOCAB_RE.search(text)
            if m:
                yield Config({"vocab_size": int(m["new"]), "orig_vocab_size": int(m["orig"])}, no)
        elif "Effective Tera Flops" in text:
            yield from self._effective(text, no, rank)
        elif " at " in text and ("validation" in text or "test" in text):
            yield from self._validation(text, no)

    def task_line(self, text: str, no: int) -> Generator[Record, None, bool]:
        """A line of Megatron-Bridge's YAML config: a known key of its model, train or
        dataset section kept as the Megatron argument it is (``BRIDGE_KEYS``); the
        activation from the function's ``_target_``; the closing rule ends it."""
        if TASK_END_RE.match(text):
            args, self.task = self.task or {}, None
            if args:
                yield from _args_config(args, self.task_first)
            return True
        m = YAML_KEY_RE.match(text)
        if m is None:
            return False
        depth, key, value = len(m["indent"]), m["key"], m["value"]
        if depth == 0:
            self.section, self.sub = key, ""
        elif depth == 2:
            self.sub = key if not value else ""
            if self.section == "model" and key == "share_embeddings_and_output_weights":
                self.task["untie_embeddings_and_output_weights"] = _literal(value or "") is False
            name = BRIDGE_KEYS.get(self.section, {}).get(key)
            if (
                name is not None
                and value is not None
                and not (name in self.task and key == "seq_length")
            ):
                self.task[name] = _literal(value)  # dataset.sequence_length: what ran
        elif depth == 4 and key == "_target_" and self.sub == "activation_func" and value:
            self.task["activation"] = value.rsplit(".", 1)[-1]
        return True

    def _effective(self, text: str, no: int, rank) -> Iterator[Record]:
        """The ZeRO-era flops line: the TFLOP/s of the iteration printed before it."""
        m = EFFECTIVE_RE.search(text)
        if m is None:
            yield Note("Effective Tera Flops line not read", no, "line")
            return
        if not self.params_seen:
            self.params_seen = True
            yield Config({"params_logged_billion": number(m["params"])}, no)
        if self.last_step is None:
            yield Note("Effective Tera Flops line before any iteration: ignored", no, "line")
            return
        yield Step(self.last_step, {"tflops_per_gpu_logged": float(m["tflops"])}, no, rank)

    def _validation(self, text: str, no: int) -> Iterator[Record]:
        m = VALID_RE.search(text)
        if m is None or self.window.copy(("validation", text[m.start() :]), no):
            return
        values: dict = {"set": m["kind"] + (m["suffix"] or ""), "at": m["at"]}
        for seg in m["rest"].split("|"):
            label, sep, val = seg.rpartition(":")
            v = number(val) if sep else None
            if v is not None:
                values[label.strip()] = v
                if "loss" not in values and label.strip().endswith("loss value"):
                    values["loss"] = v
        at = AT_STEP_RE.match(m["at"])
        yield Event("validation", values, no, step=int(at["step"]) if at else None)

    def close(self) -> Iterator[Record]:
        yield from self.unreadable.notes()
        if self.repeats:
            yield Note(
                f"{self.repeats} iteration line(s) printed again by other ranks: read once",
                kind="repeated",
            )
        if self.wraps:
            yield Note(
                f"{self.wraps} iteration record(s) hard-wrapped over several lines: rejoined",
                kind="line",
            )
        if self.in_args:
            yield Note("arguments dump has no end line", self.args_line, "format")
            yield from _args_config(self.args, self.args_line)


class _Unreadable:
    """Iteration records with fields that do not read (a value that is no number, a
    segment without a label): counted per file, reported once with the first line."""

    def __init__(self) -> None:
        self.lines = 0
        self.empty = 0  # records of which nothing read: dropped
        self.first: int | None = None
        self.labels: dict[str, int] = {}

    def add(self, bad: list[str], no: int) -> None:
        self.lines += 1
        self.first = no if self.first is None else self.first
        for label in bad:
            self.labels[label] = self.labels.get(label, 0) + 1

    def notes(self) -> Iterator[Note]:
        if not self.lines:
            return
        shown = ", ".join(list(self.labels)[:6]) + (", ..." if len(self.labels) > 6 else "")
        what = f"{self.lines} iteration line(s) with unreadable field(s) {shown}"
        if self.empty == self.lines:
            yield Note(
                f"{what}: nothing read, dropped (first at line {self.first})", self.first, "line"
            )
        elif self.empty:
            yield Note(
                f"{what}: those fields left empty, {self.empty} line(s) with nothing read "
                f"dropped (first at line {self.first})",
                self.first,
                "line",
            )
        else:
            yield Note(
                f"{what}: those fields left empty (first at line {self.first})", self.first, "line"
            )


def _starts_record(text: str) -> bool:
    """Whether a line is a record of its own, never the rest of a wrapped one (which
    holds `` | `` or ends with ``|``, as the fields of an iteration record do)."""
    t = text.lstrip()
    return (
        (" | " not in text and not text.rstrip().endswith("|"))
        or LOOSE_ITER_RE.search(text) is not None
        or t.startswith(("time (ms)", "[", "Effective Tera", "after ", "-----", "> "))
        or any(mark in text for mark in ("using world size", "padded vocab", " arguments "))
        or VALID_RE.search(text) is not None
    )


def _unread(text: str) -> int:
    """How many fields of an iteration record do not read (labels nothing maps count)."""
    m = iteration_match(text)
    if m is None:
        return 1 << 20
    values, extra, bad = _parse_fields_slowly(m.group("rest").rstrip())
    return len(bad) + sum(1 for k in extra if k not in EXTRA_COLUMNS)


def _step(m: re.Match, values: dict, extra: dict, no: int, rank) -> Step:
    """An iteration line's step: its fields, the timestamp, unknown fields as extra."""
    if m.group("ts"):
        values["timestamp"] = m.group("ts").replace(" ", "T")
    values.update(extra)
    return Step(int(m.group("step")), values, no, rank)
