"""FLOPs conventions: how each framework counts a training step's model FLOPs.

A convention is a named, dated count (``Convention``): its source, the framework
versions that print it, what it counts, and a function giving the step's FLOPs
as named terms (attention projections, attention scores, MLP, MoE, Mamba, logits,
MTP, ...), so a report can show how a figure was made. B = global batch
(sequences), s = sequence length, h = hidden, a = heads, g = query groups, d =
head dimension, f = FFN, k = routed experts per token, V = vocabulary, m = MTP
depth. Every count is of a whole training step: forward and backward (3x the
forward), 2 FLOPs per multiply-add.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import UsageError
from .shapes import Shape, matmul_params, nonembedding_params, param_count

Terms = dict[str, float]

#: what each part of a shape is called in a note
PART_NAMES = {
    "gqa": "grouped-query attention",
    "head_dim": "a head dimension other than h/a",
    "gated": "a gated (SwiGLU) MLP",
    "gated_other": "a gated MLP whose activation is not SiLU",
    "moe": "mixture-of-experts layers",
    "shared_experts": "shared experts",
    "dense_layers": "dense layers among the MoE ones",
    "latent_moe": "latent MoE projections",
    "mla": "multi-latent attention",
    "mtp": "multi-token prediction layers",
    "window": "sliding-window attention",
    "chunk": "chunked attention",
    "mamba": "Mamba-2 layers",
}


@dataclass(frozen=True)
class Convention:
    """A named FLOPs count. ``terms(shape, B, recompute)`` gives the step's FLOPs by
    term (None when the shape lacks what it needs); ``counts``: the parts it counts;
    ``instead``: part -> how it counts a part it does not (full attention, two
    matrices, ...); a part in neither makes the count impossible (None, and a note)."""

    name: str
    formula: str  # the count, written out
    source: str
    versions: str  # the frameworks and versions that print it
    terms: Callable[[Shape, float, str | None], Terms | None]
    counts: frozenset[str] = frozenset()
    instead: tuple[tuple[str, str], ...] = ()
    causal: bool = True  # attention scores counted half under the causal mask

    def describe(self) -> str:
        """What the convention counts, in words."""
        done = ", ".join(PART_NAMES[p] for p in sorted(self.counts)) or "a dense GPT only"
        return done + "".join(
            f"; {PART_NAMES[p]} {how}" for p, how in self.instead if p not in self.counts
        )


# -- attention -------------------------------------------------------------------


def _keys(sh: Shape, kind: str, causal: bool, windows: str) -> float:
    """Keys a query attends to, on average, in a layer of ``kind``: s (s/2 causal) for
    global attention; a window W as Megatron-Bridge >= 0.5 counts it (``exact``:
    W - W(W-1)/(2s)) or as MaxText does (``maxtext``: W - W^2/(2s); ``half``: W/2, as
    it did before 2026-04-07); a chunk C as MaxText does; ``windows`` 'none': every
    layer global."""
    s = float(sh.s)
    full = s / 2 if causal else s
    if kind == "local" and windows != "none" and sh.window and sh.window < s:
        w = float(sh.window)
        if windows == "half":  # MaxText 2025-07-22 to 2026-04-07: T.W, then halved
            return w / 2
        return w - (w * (w - 1) if windows == "exact" else w * w) / (2 * s)
    if kind == "chunk" and windows in ("maxtext", "half") and sh.chunk and sh.chunk < s:
        c = float(sh.chunk)
        return ((s // c) * c * c + (s % c) ** 2) / (2 * s)
    return full


def _attention_terms(sh: Shape, kinds: list[str], causal: bool, windows: str, style: str) -> Terms:
    """Forward FLOPs per token of the attention layers ``kinds``: projections and
    scores (QK^T and AV). ``style`` 'megatron' counts MLA's q/kv norms and its shared
    rope key as Megatron does; 'maxtext' as MaxText does."""
    h, a = float(sh.h), float(sh.a or 0)
    if sh.mla:
        dn, dr, dv = (float(x or 0) for x in (sh.d_nope, sh.d_rope, sh.d_v))
        rq, rkv = sh.q_rank, float(sh.kv_rank)
        norm = 1.0 if style == "megatron" else 0.0
        q = h * a * (dn + dr) if not rq else rq * (h + a * (dn + dr) + norm)
        linear = 2 * (q + rkv * (h + a * (dn + dv) + norm) + h * dr + a * dv * h)
        per_key = 2 * a * (dn + dr + dv)
        scores = sum(per_key * _keys(sh, k, causal, windows) for k in kinds)
        return {"attention_linear": len(kinds) * linear, "attention_scores": scores}
    linear = scores = 0.0
    for kind in kinds:
        ad, kv, _ = sh.attn_dims("global" if kind == "global" else "local")
        linear += 2 * h * (2 * ad + kv)
        scores += 4 * ad * _keys(sh, kind, causal, windows)
    return {"attention_linear": linear, "attention_scores": scores}


# -- the Megatron family ------------------------------------------------------------


def _gate(sh: Shape, any_gate: bool) -> int:
    """Matrices of the MLP: 3 gated, else 2; ``any_gate`` False: 3 only for SiLU."""
    return 3 if sh.swiglu and (any_gate or sh.silu_gate) else 2


def _moe_forward(sh: Shape, e: int, router: bool = False) -> float:
    """Forward FLOPs per token of one MoE layer: the routed experts a token reaches,
    the shared experts, a latent MoE's projections, and (``router``) the router."""
    h, k = float(sh.h), min(sh.topk, sh.experts)
    width = float(sh.latent or sh.h)
    out = 2 * e * width * sh.expert_ffn() * k + 2 * e * h * sh.shared_f
    if sh.latent:
        out += 4 * h * sh.latent
    return out + (2 * h * sh.experts if router else 0)


def _mamba_forward(sh: Shape) -> float:
    """Megatron's Mamba-2 layer per token: in_proj, the scan (7 d_in N), out_proj,
    with d_in = 2h as Megatron fixes it."""
    h = float(sh.h)
    d_in = 2 * h
    n = sh.mamba_heads or d_in // (sh.mamba_head_dim or 64)
    state, groups = float(sh.mamba_state or 128), float(sh.mamba_groups)
    return 2 * h * (2 * d_in + 2 * groups * state + n) + 7 * d_in * state + 2 * d_in * h


def _megatron_terms(sh: Shape, B: float, *, windows: str, any_gate: bool) -> Terms:
    """Megatron-LM's ``num_floating_point_operations`` since core 0.12 (causal), its
    transformer path (MLA, MoE with shared experts and dense layers, latent MoE, MTP)
    or its hybrid path (Nemotron-H: Mamba-2, attention, MLP and MoE layers)."""
    h, V, m = float(sh.h), float(sh.V), sh.mtp
    e = _gate(sh, any_gate)
    counts = sh.layer_counts()
    if sh.hybrid:
        kinds = ["global"] * counts["*"]
        fwd = _attention_terms(sh, kinds, True, "none", "megatron")
        fwd["mamba"] = counts["M"] * _mamba_forward(sh)
        fwd["mlp"] = counts["-"] * 2 * (3 if sh.swiglu else 2) * h * sh.dense_ffn()
        fwd["moe"] = counts["E"] * _moe_forward(sh, 3 if sh.swiglu else 2)
    else:
        kinds = sh.attention_kinds(counts["attention"])
        fwd = _attention_terms(sh, kinds, True, windows, "megatron")
        fwd["mlp"] = counts["dense"] * 2 * e * h * sh.dense_ffn()
        fwd["moe"] = counts["moe"] * _moe_forward(sh, e)
        fwd["mtp"] = 2 * m * (3 * h + 2 * h * h)
    fwd["logits"] = 2 * h * V * (1 + m)
    return _step(fwd, B, sh.s)


def _step(forward: Terms, B: float, s: float) -> Terms:
    """Per-token forward terms as a training step's FLOPs (forward and backward)."""
    return {k: 3 * B * s * v for k, v in forward.items() if v}


def _megatron_2024(sh: Shape, B: float, rc: str | None) -> Terms:
    """Megatron-LM before MR !2789: 12Bslh^2[(1 + g/a + s/h)(ad/h) + (f/h)k.3/2 +
    (f_sh/h)3/2 + V/(2lh)], the scores not halved, every layer an MoE layer with its
    shared experts, SiLU gates only."""
    h, l, V = float(sh.h), float(sh.l), float(sh.V)
    e = _gate(sh, any_gate=False)
    kinds = ["global"] * sh.l
    fwd = _attention_terms(sh, kinds, False, "none", "megatron")
    routed = sh.ffn() * (min(sh.topk, sh.experts) if sh.experts > 1 else 1)
    mlp = l * 2 * e * h * (routed + (sh.shared_f if sh.experts > 1 else 0))
    fwd["moe" if sh.experts > 1 else "mlp"] = mlp
    fwd["logits"] = 2 * h * V
    return _step(fwd, B, sh.s)


# -- MaxText ----------------------------------------------------------------------


def _maxtext_terms(sh: Shape, B: float, causal: bool = True, windows: str = "maxtext") -> Terms:
    """MaxText's ``calculate_tflops_training_per_device`` summed over the devices: each
    matmul from the config's dimensions (the router and the output projection
    included, the input embedding not), causal scores, local layers' exact window
    area T.W - W^2/2, chunked layers' chunks, MTP layers as the last layer."""
    h, V = float(sh.h), float(sh.V)
    e = 3 if sh.swiglu else 2
    main = sh.layer_counts(mtp=False)
    kinds = sh.attention_kinds(sh.l)
    fwd = _attention_terms(sh, kinds, causal, windows if causal else "none", "maxtext")
    fwd["mlp"] = main["dense"] * 2 * e * h * sh.dense_ffn()
    fwd["moe"] = main["moe"] * _moe_forward(sh, e, router=True)
    if sh.mtp:
        last = _moe_forward(sh, e, router=True) if main["moe"] and sh.moe_layers()[-1] else (
            2 * e * h * sh.dense_ffn()
        )  # fmt: skip
        extra = _attention_terms(sh, ["global"], causal, "none", "maxtext")
        fwd["mtp"] = sh.mtp * (last + sum(extra.values()))
    fwd["logits"] = 2 * h * V
    return _step(fwd, B, sh.s)


# -- parameter-based counts ---------------------------------------------------------


def _titan_terms(sh: Shape, B: float) -> Terms | None:
    """torchtitan (2025-10 on): 6N' + 6.l_attn.a.(d_qk + d_v).s per token, N' the active
    parameters without the input embedding, the scores not halved."""
    n = matmul_params(sh, active=True)
    if n is None:
        return None
    dqk, dv = sh.qk_dims()
    l_attn = sh.layer_counts(mtp=False)["*"] if sh.hybrid else sh.l
    s = float(sh.s)
    return {
        "6N": 6 * n * B * s,
        "attention_scores": 6 * l_attn * (sh.a or 0) * (dqk + dv) * s * B * s,
    }


def _attention_layers(sh: Shape) -> int:
    return sh.layer_counts(mtp=False)["*"] if sh.hybrid else int(sh.l)


def _palm_terms(sh: Shape, B: float, every: bool = False) -> Terms | None:
    n = param_count(sh, active=True) if every else matmul_params(sh)
    if n is None:
        return None
    scores = 12 * _attention_layers(sh) * sh.attention_width() * sh.s
    return {"6N": 6 * n * B * sh.s, "attention_scores": scores * B * sh.s}


def _6n_terms(sh: Shape, B: float) -> Terms | None:
    n = param_count(sh, active=True)
    return None if n is None else {"6N": 6 * n * B * sh.s}


def _8n_terms(sh: Shape, B: float) -> Terms | None:
    n = nonembedding_params(sh)
    return None if n is None else {"8N": 8 * n * B * sh.s}


def _gpt(sh: Shape, B: float, body: float, logit: float) -> Terms:
    """A dense GPT count ``body``.B.s.l.h^2 + the logit term."""
    l, h = float(sh.l), float(sh.h)
    return {"transformer": body * B * sh.s * l * h * h, "logits": logit * B * sh.s * sh.V * h}


def _ptdp(sh: Shape, B: float) -> Terms:
    s, h = float(sh.s), float(sh.h)
    return _gpt(sh, B, 96 * (1 + s / (6 * h)), 6)


def _bigscience(sh: Shape, B: float, recompute: str | None) -> Terms:
    s, h = float(sh.s), float(sh.h)
    c = 4 if recompute == "full" else 3
    return _gpt(sh, B, 24 * c * (1 + s / (6 * h)), 1.5 * c)


def _dgxc(sh: Shape, B: float) -> Terms:
    l, h, s, V = float(sh.l), float(sh.h), float(sh.s), float(sh.V)
    return {
        "transformer": B * s * (72 * l * h * h + 12 * l * h * s),
        "logits": B * s * 6 * V * h,
    }


# -- the conventions ---------------------------------------------------------------

_STANDARD = frozenset({"gqa", "head_dim", "gated"})
_BY_PARAMS = _STANDARD | {
    "gated_other", "moe", "shared_experts", "dense_layers", "latent_moe", "mla", "mamba",
}  # fmt: skip
_FULL = (("window", "as full attention"), ("chunk", "as full attention"))
_NO_MTP = (("mtp", "not at all (the parameters exclude them)"),)

CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "megatron-causal",
            "Megatron-LM's num_floating_point_operations (core 0.12 on: causal scores, MLA, "
            "MoE with shared experts and dense layers, latent MoE, MTP, hybrid Mamba-2) with "
            "every gated MLP as 3 matrices and sliding windows exact, W - W(W-1)/(2s) keys "
            "per query",
            "Megatron-Bridge flop_utils.py after PR #3947 (2026-05-28)",
            "Megatron-Bridge >= 0.5 (NeMo 26.06 on); NeMo AutoModel (within 0.3 %); equal to "
            "megatron-core for every model without windows or non-SiLU gates (Llama, Qwen, "
            "DeepSeek, Kimi, Nemotron) and to maxtext's dense count",
            lambda sh, B, rc: _megatron_terms(sh, B, windows="exact", any_gate=True),
            _BY_PARAMS | {"mtp", "window"},
            (("chunk", "as full attention"),),
        ),
        Convention(
            "megatron-core",
            "the same count with a gated MLP as 3 matrices only for SiLU (--swiglu) and "
            "sliding-window layers as full causal attention",
            "Megatron-LM megatron/training/training.py num_floating_point_operations "
            "(MR !2789, 2025-03-06, and after)",
            "Megatron-Core >= 0.12 to today (25.04 on), Megatron-Bridge 0.1-0.4 (NeMo 25.09-"
            "26.04): what a Megatron-LM log prints; GPT-OSS's GLU counted as 2 matrices",
            lambda sh, B, rc: _megatron_terms(sh, B, windows="none", any_gate=False),
            _BY_PARAMS - {"gated_other"} | {"mtp"},
            (("gated_other", "as 2 matrices"), *_FULL),
        ),
        Convention(
            "megatron",
            "12Bslh^2[(1 + g/a + s/h)(ad/h) + (f/h)k(3/2 if SwiGLU) + (f_sh/h)(3/2) + V/(2lh)]; "
            "dense GPT: 72Bslh^2(1 + s/(6h) + V/(12lh))",
            "Megatron-LM num_floating_point_operations before MR !2789",
            "Megatron-Core <= 0.11 (2023-11 to 2025-03), NeMo <= 25.07, Megatron-Bridge "
            "before 2025-09: the attention scores not halved",
            lambda sh, B, rc: _megatron_2024(sh, B, rc),
            _STANDARD | {"moe", "shared_experts"},
            (
                ("gated_other", "as 2 matrices"),
                ("dense_layers", "as MoE layers"),
                ("mtp", "not at all"),
                *_FULL,
            ),
            causal=False,
        ),
        Convention(
            "maxtext",
            "every matmul from the config (router and output projection included, input "
            "embedding not), causal scores, local layers T.W - W^2/2, chunks, MTP layers",
            "MaxText calculate_tflops_training_per_device (maxtext_utils.py)",
            "MaxText since 2025-07-18 (causal; exact windows since 2026-04-07): its "
            "TFLOP/s/device lines and the tpu-recipes tables (per chip: 2 devices on Ironwood)",
            lambda sh, B, rc: _maxtext_terms(sh, B),
            _STANDARD
            | {
                "gated_other",
                "moe",
                "shared_experts",
                "dense_layers",
                "mla",
                "mtp",
                "window",
                "chunk",
            },  # fmt: skip
        ),
        Convention(
            "maxtext-2025",
            "MaxText's matmul count with causal scores and local layers as T.W/2 (W/2 keys "
            "per query)",
            "MaxText calculate_tflops_training_per_device, 2025-07-18 to 2026-04-07",
            "MaxText from PR #1988 (July 2025) to the exact window (2026-04-07): tpu-recipes "
            "tables and logs of that time",
            lambda sh, B, rc: _maxtext_terms(sh, B, windows="half"),
            _STANDARD
            | {
                "gated_other",
                "moe",
                "shared_experts",
                "dense_layers",
                "mla",
                "mtp",
                "window",
                "chunk",
            },  # fmt: skip
        ),
        Convention(
            "maxtext-2024",
            "MaxText's matmul count with the attention scores not halved",
            "MaxText calculate_tflops_training_per_device, 2024-05-08 to 2025-07-18",
            "MaxText 2024-05 to 2025-07 (before PR #1988): older Trillium and v5p logs",
            lambda sh, B, rc: _maxtext_terms(sh, B, causal=False),
            _STANDARD | {"gated_other", "moe", "shared_experts", "dense_layers", "mla", "mtp"},
            _FULL,
            causal=False,
        ),
        Convention(
            "torchtitan",
            "6N' + 6.l.a.(d_qk + d_v).s per token, N' the active parameters without the "
            "input embedding, the scores not halved",
            "torchtitan get_nparams_and_flops (torchtitan/models/*/model/args.py)",
            "torchtitan since 2025-10-29 (MLA's own head dimensions); equal to palm without MLA",
            lambda sh, B, rc: _titan_terms(sh, B),
            _BY_PARAMS,
            (*_FULL, *_NO_MTP),
            causal=False,
        ),
        Convention(
            "ptdp",
            "96Bslh^2(1 + s/(6h) + V/(16lh))",
            "Narayanan et al. 2021, eq. 3",
            "full activation recompute counted: bigscience Megatron-DeepSpeed's TFLOPs with "
            "--checkpoint-activations after its PR 251",
            lambda sh, B, rc: _ptdp(sh, B),
            causal=False,
        ),
        Convention(
            "bigscience",
            "24cBslh^2(1 + s/(6h) + V/(16lh)), c = 4 with recompute, else 3",
            "Megatron-DeepSpeed throughput_calculator (megatron/utils.py)",
            "bigscience and Microsoft Megatron-DeepSpeed after PR 251",
            _bigscience,
            causal=False,
        ),
        Convention(
            "dgxc",
            "Bs(72lh^2 + 12lhs + 6Vh)",
            "NVIDIA dgxc-benchmarking paxml README (seed 001)",
            "NVIDIA's Paxml GPT-3 recipes",
            lambda sh, B, rc: _dgxc(sh, B),
            causal=False,
        ),
        Convention(
            "6n",
            "6N per token, N every parameter (active experts only)",
            "Kaplan et al. 2020",
            "rules of thumb",
            lambda sh, B, rc: _6n_terms(sh, B),
            _BY_PARAMS,
            _NO_MTP,
            causal=False,
        ),
        Convention(
            "palm",
            "6N' + 12l(a.d)s per token, N' without the input embedding (a tied table counts "
            "once, as the output projection) and learned positions",
            "Chowdhery et al. 2022, app. B",
            "PaLM; torchtitan 2024-05-01 to 2025-10 (PR 280)",
            lambda sh, B, rc: _palm_terms(sh, B),
            _BY_PARAMS - {"mla"},
            (*_FULL, *_NO_MTP),
            causal=False,
        ),
        Convention(
            "torchtitan-2024",
            "6N + 12l(a.d)s per token, N every parameter",
            "torchtitan utils.get_num_flop_per_token, 2024-03-20 to 2024-04-30",
            "torchtitan's April 2024 MFU tables; llm-foundry's benchmark tables",
            lambda sh, B, rc: _palm_terms(sh, B, every=True),
            _BY_PARAMS - {"mla"},
            (*_FULL, *_NO_MTP),
            causal=False,
        ),
        Convention(
            "8n",
            "8N_nonembedding per token (96Bslh^2 for GPT)",
            "bigscience math/README.md",
            "bigscience's early estimate (before PR 251)",
            lambda sh, B, rc: _8n_terms(sh, B),
            _BY_PARAMS,
            (*_FULL, *_NO_MTP),
            causal=False,
        ),
    )
}
DEFAULT = "megatron-causal"
NAMES = tuple(CONVENTIONS)


def check(name: str) -> Convention:
    """The convention called ``name``; UsageError naming the valid ones."""
    found = CONVENTIONS.get(name)
    if found is None:
        raise UsageError(f"unknown formula {name!r} (formulas: {', '.join(CONVENTIONS)})")
    return found


def uncounted(name: str, sh: Shape) -> tuple[list[str], bool]:
    """(notes on the parts of ``sh`` the convention does not count, whether that makes
    its count impossible)."""
    conv = check(name)
    notes, impossible = [], False
    instead = dict(conv.instead)
    for part in sorted(sh.parts() - conv.counts):
        if part in instead:
            notes.append(f"{name} counts {PART_NAMES[part]} {instead[part]}")
        elif part not in ("gqa", "head_dim", "gated"):  # a GPT formula on a Llama: its value
            notes.append(f"{name} cannot count {PART_NAMES[part]}")
            impossible = impossible or part in ("mla", "mamba", "latent_moe")
        else:
            notes.append(f"{name} counts no {PART_NAMES[part]} (a dense GPT formula)")
    return notes, impossible


def terms(name: str, sh: Shape, B: float, recompute: str | None = None) -> Terms | None:
    """The step's FLOPs by term under convention ``name``; None when the shape lacks
    what it needs or has a part the convention cannot count."""
    conv = check(name)
    if not sh.dense_ok or not B or uncounted(name, sh)[1]:
        return None
    return conv.terms(sh, float(B), recompute)


def model_flops(name: str, sh: Shape, B: float, recompute: str | None = None) -> float | None:
    """FLOPs per step by a named convention; None when it cannot be counted."""
    found = terms(name, sh, B, recompute)
    return sum(found.values()) if found else None


def family(name: str) -> str:
    """The Megatron count hardware FLOPs are made from for a report in convention
    ``name``: its own where it is one, else the causal or the full one as ``name``
    counts the scores."""
    if name in ("megatron", "megatron-core", "megatron-causal"):
        return name
    return "megatron-causal" if check(name).causal else "megatron"


def hardware_flops(
    sh: Shape, B: float, recompute: str | None, base: str = "megatron"
) -> float | None:
    """FLOPs per step actually executed, counting activation recompute, from the
    Megatron count ``base`` (``family``).

    full: the transformer's forward again (4/3 of it; the logit layer is not
    recomputed), which for dense GPT is exactly ``ptdp``; selective: the attention
    score/context forward again; none: model FLOPs, so HFU = MFU."""
    if recompute not in ("none", "selective", "full"):
        return None
    found = terms(base, sh, B)
    if found is None:
        return None
    total = sum(found.values())
    if recompute == "full":
        return (total - found.get("logits", 0)) * 4 / 3 + found.get("logits", 0)
    if recompute == "selective":  # QK^T and AV again
        return total + found.get("attention_scores", 0) / 3
    return total


def formulas_table() -> tuple[list[str], list[list[str]]]:
    """(columns, rows): every convention's name, count, source, versions and parts."""
    cols = ["name", "default", "formula", "source", "versions", "counts"]
    rows = [
        [c.name, "yes" if c.name == DEFAULT else "", c.formula, c.source, c.versions, c.describe()]
        for c in CONVENTIONS.values()
    ]
    return cols, rows
