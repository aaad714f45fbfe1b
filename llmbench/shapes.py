"""Model shapes: every part a 2025-26 architecture has, its parameter count, and
the checks a shape must pass.

A ``Shape`` holds what the FLOPs conventions (``flops``) and the parameter count
read: layers, widths, heads (grouped-query or multi-latent attention), the MLP and
its gate, mixture-of-experts (routed, shared, dense-first layers, latent
projections), multi-token prediction, attention patterns (sliding windows, chunks,
local:global layers) and hybrid Mamba-2 layer patterns. ``shape_keys`` reads the
same fields from a Hugging Face ``config.json``. Units: counts of parameters,
tokens and dimensions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from .errors import UsageError

#: the shape fields a run, a settings file, ``--set``, a ``[models.NAME]`` table or a
#: ``--model-config`` file may give (``columns.SHAPE_KEYS`` lists them for settings)
GATED_ACTIVATIONS = ("silu", "swish")  # what Megatron's ``--swiglu`` means


class ShapeError(UsageError):
    """A model shape that cannot hold (a rank above the width, top-k above the experts,
    a layer pattern of the wrong length): names the field and where it came from."""


@dataclass
class Shape:
    """A model's shape; None where unknown. l layers, h hidden, a heads, g query
    groups, d head dimension, f FFN, V vocabulary, s sequence length."""

    l: int | None = None
    h: int | None = None
    a: int | None = None
    g: int | None = None
    f: int | None = None
    V: int | None = None
    s: int | None = None
    swiglu: bool = False  # a gated MLP (3 matrices: gate, up, down)
    untied: bool = False
    topk: int = 1
    experts: int = 1
    d: int | None = None  # head dimension (kv_channels); None: h / a
    moe_f: int | None = None  # an expert's FFN size (moe_ffn_hidden_size); None: f
    qkv_bias: bool = False  # Qwen2 / 2.5: biases on q, k, v
    qk_norm: bool = False  # a norm of head_dim on queries and keys (Qwen3, Gemma 3)
    norms: int = 2  # norms of h per layer (Gemma 2 / 3: 4)
    params: float | None = None  # exact count where published
    assumed: list[str] = field(default_factory=list)
    # -- 2025-26 parts --
    act: str | None = None  # the MLP's activation (silu, gelu, quick_gelu, relu2, ...)
    attention_bias: bool = False  # biases on q, k, v and the output (GPT-OSS)
    mlp_bias: bool = False  # biases in the MLP / experts and the router (GPT-OSS)
    sinks: bool = False  # a learned attention sink per head (GPT-OSS)
    shared_f: int = 0  # the shared experts' FFN, all of them (moe_shared_expert_intermediate_size)
    moe_freq: int | tuple[int, ...] = 1  # every k-th layer MoE, or a 0/1 pattern per layer
    first_dense: int = 0  # the first layers dense (first_k_dense_replace)
    latent: int | None = None  # latent MoE: experts work in this width (moe_latent_size)
    q_rank: int | None = None  # multi-latent attention (MLA): q_lora_rank (None: no q LoRA)
    kv_rank: int | None = None  # kv_lora_rank: set = MLA
    d_nope: int | None = None  # qk_nope_head_dim
    d_rope: int | None = None  # qk_rope_head_dim
    d_v: int | None = None  # v_head_dim
    mtp: int = 0  # multi-token prediction depth (mtp_num_layers)
    window: int | None = None  # sliding-window attention: keys a query sees, itself included
    chunk: int | None = None  # chunked attention (Llama 4): the chunk length
    local_global: tuple[int, int] | None = None  # per period: local layers, then global ones
    pattern: str | None = None  # hybrid layers: M Mamba-2, * attention, - MLP, E MoE
    mtp_pattern: str | None = None  # the layers of one MTP depth in a hybrid model
    mamba_state: int | None = None  # Mamba-2 state size N
    mamba_heads: int | None = None
    mamba_head_dim: int | None = None
    mamba_groups: int = 1
    mamba_conv: int = 4
    global_d: int | None = None  # the global layers' head dimension (Gemma 4), else d
    global_g: int | None = None  # the global layers' query groups (Gemma 4), else g
    global_kv_shared: bool = False  # global layers' values are their keys (Gemma 4: K = V)
    no_bias: bool = False  # no biases and no position table (MPT, PaLM): not seed 000's GPT
    vision_params: float = 0  # parameters outside the language model (a vision tower)

    @property
    def dense_ok(self) -> bool:
        return None not in (self.l, self.h, self.V, self.s)

    # -- attention -------------------------------------------------------------

    @property
    def mla(self) -> bool:
        return self.kv_rank is not None

    def head_dim(self) -> float:
        return float(self.d) if self.d else self.h / self.a if self.a else float(self.h)  # type: ignore[operator]

    def groups_ratio(self) -> float:
        if self.a and self.g:
            return self.g / self.a
        return 1.0

    def attention_width(self) -> float:
        """a x d: the width of the query projection (h unless the head dimension
        is not h / a: PaLM, Gemma, some Qwen sizes)."""
        return float(self.a * self.d) if self.a and self.d else float(self.h)  # type: ignore[arg-type]

    def attn_dims(self, kind: str = "global") -> tuple[float, float, float]:
        """(a x d, the width of k and v together, d) of an attention layer of ``kind``:
        global layers may have their own head dimension and groups, and share k and v
        (Gemma 4)."""
        if not self.a:
            return float(self.h), 2.0 * self.h, float(self.h)  # type: ignore[operator]
        glob = kind == "global"
        d = float(self.global_d) if glob and self.global_d else self.head_dim()
        g = float(self.global_g) if glob and self.global_g else float(self.g or self.a)
        kv = (1 if glob and self.global_kv_shared else 2) * g * d
        return self.a * d, kv, d

    def qk_dims(self) -> tuple[float, float]:
        """(query-key width per head, value width per head): d and d, or MLA's
        nope + rope and v."""
        if self.mla:
            return float((self.d_nope or 0) + (self.d_rope or 0)), float(self.d_v or 0)
        return self.head_dim(), self.head_dim()

    # -- the MLP ---------------------------------------------------------------

    @property
    def gated(self) -> bool:
        return self.swiglu

    @property
    def silu_gate(self) -> bool:
        """A gated MLP whose activation is SiLU (what Megatron's ``--swiglu`` is)."""
        return self.swiglu and (self.act is None or self.act in GATED_ACTIVATIONS)

    def dense_ffn(self) -> float:
        """The FFN size of a dense layer (4h when unknown)."""
        return float(self.f) if self.f else 4.0 * self.h  # type: ignore[operator]

    def expert_ffn(self) -> float:
        """The FFN size of one routed expert."""
        return float(self.moe_f) if self.moe_f else self.dense_ffn()

    def ffn(self) -> float:
        """The FFN size a token goes through per layer (an expert's for MoE)."""
        return self.expert_ffn() if self.experts > 1 else self.dense_ffn()

    # -- layers ----------------------------------------------------------------

    @property
    def hybrid(self) -> bool:
        return bool(self.pattern)

    def moe_layers(self) -> list[bool]:
        """Per layer of the main stack (standard path): whether its MLP is MoE."""
        n = self.l or 0
        if self.experts <= 1:
            return [False] * n
        if isinstance(self.moe_freq, tuple):
            flags = [bool(x) for x in self.moe_freq]
        else:
            k = max(1, int(self.moe_freq))
            flags = [i % k == 0 for i in range(n)]
        return [False if i < self.first_dense else x for i, x in enumerate(flags)]

    def attention_kinds(self, n: int) -> list[str]:
        """The kind of each of ``n`` attention layers: 'global', 'local' (a sliding
        window) or 'chunk'; local ones per ``local_global`` (all of them without)."""
        windowed = self.window or self.chunk
        if not windowed:
            return ["global"] * n
        kind = "chunk" if self.chunk and not self.window else "local"
        if self.local_global is None:
            return [kind] * n
        local, glob = self.local_global
        period = local + glob
        return [kind if i % period < local else "global" for i in range(n)]

    def layer_counts(self, mtp: bool = True) -> Counter:
        """How many layers of each kind: hybrid 'M' '*' '-' 'E' symbols, or for a
        standard transformer 'attention', 'dense' and 'moe' MLPs; ``mtp``: the
        multi-token prediction layers too (typed as the last layer)."""
        if self.hybrid:
            out = Counter(c for c in self.pattern if c in "M*-EG")  # type: ignore[union-attr]
            if mtp and self.mtp and self.mtp_pattern:
                for c in self.mtp_pattern:
                    if c in "M*-EG":
                        out[c] += self.mtp
            return out
        moe = self.moe_layers()
        extra = self.mtp if mtp else 0
        last_moe = bool(moe and moe[-1])
        return Counter(
            attention=(self.l or 0) + extra,
            moe=sum(moe) + (extra if last_moe else 0),
            dense=len(moe) - sum(moe) + (0 if last_moe else extra),
        )

    def parts(self) -> set[str]:
        """The architecture's parts a FLOPs convention may or may not count (``PARTS``)."""
        return {part for part, has in PARTS if has(self)}

    @property
    def gpt(self) -> bool:
        """GPT-style: a plain 4h MLP, multi-head attention, one expert (seed 000's
        arithmetic, biases and a learned position table of s x h included)."""
        return (
            self.experts == 1
            and not self.swiglu
            and self.groups_ratio() == 1.0
            and self.f in (None, 4 * (self.h or 0))
            and not self.mla
            and not self.hybrid
            and not self.no_bias
        )

    @property
    def learned_positions(self) -> bool:
        """Whether the count holds a learned position table (GPT-style, and not a
        published count, which says nothing of it)."""
        return self.gpt and not self.params


#: (part, whether a shape has it): the parts of an architecture a FLOPs convention may
#: or may not count (``Shape.parts``; ``flops`` names those a convention leaves out)
PARTS: tuple[tuple[str, Callable[[Shape], Any]], ...] = (
    ("gqa", lambda sh: sh.g and sh.a and sh.g != sh.a),
    ("head_dim", lambda sh: sh.d and sh.a and sh.h and sh.a * sh.d != sh.h),
    ("gated", lambda sh: sh.swiglu and sh.silu_gate),  # SiLU: what Megatron's --swiglu is
    ("gated_other", lambda sh: sh.swiglu and not sh.silu_gate),
    ("moe", lambda sh: sh.experts > 1),
    ("shared_experts", lambda sh: sh.experts > 1 and sh.shared_f),
    ("dense_layers", lambda sh: sh.experts > 1 and not all(sh.moe_layers())),
    ("latent_moe", lambda sh: sh.experts > 1 and sh.latent),
    ("mla", lambda sh: sh.mla),
    ("mtp", lambda sh: sh.mtp),
    ("window", lambda sh: sh.window),
    ("chunk", lambda sh: sh.chunk),
    ("mamba", lambda sh: sh.hybrid and "M" in (sh.pattern or "")),
)


# -- parameter counts ------------------------------------------------------------


def param_count(sh: Shape, active: bool = False) -> float | None:
    """N: the exact catalog count, else GPT (seed 000) or per-part arithmetic; the
    multi-token prediction module is not counted (makers publish it apart: DeepSeek-V3's
    671B is without its 14B), nor is a vision tower unless the catalog's count has it.

    ``active=True``: the parameters one token uses, the ``topk`` routed experts of each
    MoE layer instead of all of them (the embedding tables included)."""
    if sh.params and not (active and sh.experts > 1):
        return float(sh.params)
    if None in (sh.l, sh.h, sh.V) or (sh.learned_positions and sh.s is None):
        return None
    l, h, V, s = sh.l, sh.h, sh.V, sh.s
    if sh.gpt:  # an untied output projection is one more V x h
        n = 12 * l * h * h * (1 + 13 / (12 * h) + (V + s) / (12 * l * h))
        return float(round(n + (V * h if sh.untied else 0)))
    return float(round(stack_params(sh, active) + V * h * (2 if sh.untied else 1) + h))


def stack_params(sh: Shape, active: bool = False, mtp: bool = False) -> float:
    """The layers' parameters (no embedding tables, no final norm); ``mtp``: those of
    the multi-token prediction layers (and their projections) only."""
    if sh.hybrid:
        return _hybrid_params(sh, active, mtp)
    counts = sh.layer_counts(mtp=True)
    main = sh.layer_counts(mtp=False)
    if mtp:
        counts = counts - main
        n = sh.mtp
        extra = n * (2 * sh.h * sh.h + 3 * sh.h)  # eh projection, two input norms and one out
        return (
            n * (_attention_params(sh) + sh.norms * sh.h)
            + counts["dense"] * _mlp_params(sh, sh.dense_ffn())
            + counts["moe"] * _moe_params(sh, active)
            + extra
        )
    return (
        _attention_stack(sh, main["attention"])
        + main["attention"] * sh.norms * sh.h
        + main["dense"] * _mlp_params(sh, sh.dense_ffn())
        + main["moe"] * _moe_params(sh, active)
    )


def _attention_params(sh: Shape, kind: str = "global") -> float:
    """One attention block of ``kind``: q, k, v and the output (MLA: its low-rank
    projections and their norms), biases, q/k norms, sinks."""
    h, a = sh.h, sh.a or 0
    if sh.mla:
        dn, dr, dv = sh.d_nope or 0, sh.d_rope or 0, sh.d_v or 0
        q = h * a * (dn + dr) if not sh.q_rank else sh.q_rank * (h + 1 + a * (dn + dr))
        kv = h * (sh.kv_rank + dr) + sh.kv_rank * (1 + a * (dn + dv))
        return q + kv + a * dv * h
    ad, kv, d = sh.attn_dims(kind)
    out = 2 * h * ad + h * kv
    if sh.qkv_bias or sh.attention_bias:
        out += ad + kv + (h if sh.attention_bias else 0)
    if sh.qk_norm:
        out += 2 * d
    if sh.sinks:
        out += a
    return out


def _attention_stack(sh: Shape, n: int) -> float:
    """The attention blocks of ``n`` layers, each of its kind (``attention_kinds``)."""
    kinds = Counter(sh.attention_kinds(n))
    return sum(
        k * _attention_params(sh, "global" if kind == "global" else "local")
        for kind, k in kinds.items()
    )


def _mlp_params(sh: Shape, ffn: float, width: float | None = None) -> float:
    """One MLP of ``ffn`` on ``width`` (default h): 3 matrices gated, else 2, and
    their biases."""
    w = width or sh.h
    mats = (3 if sh.swiglu else 2) * w * ffn
    bias = ((2 if sh.swiglu else 1) * ffn + w) if sh.mlp_bias else 0
    return mats + bias


def _moe_params(sh: Shape, active: bool) -> float:
    """One MoE block: the router, the routed experts (top-k with ``active``), the
    shared experts, and a latent MoE's down and up projections."""
    routed = min(sh.topk, sh.experts) if active else sh.experts
    width = sh.latent or sh.h
    router = sh.h * sh.experts + (sh.experts if sh.mlp_bias else 0)
    latent = 2 * sh.h * sh.latent if sh.latent else 0
    shared = _mlp_params(sh, sh.shared_f) if sh.shared_f else 0
    return router + routed * _mlp_params(sh, sh.expert_ffn(), width) + latent + shared


def _mamba_params(sh: Shape) -> float:
    """One Mamba-2 mixer: in_proj (z, x, B, C, dt), the causal conv over x, B, C with
    its bias, A, D and dt bias per head, the gated norm, out_proj."""
    h = sh.h
    heads = sh.mamba_heads or (2 * h // (sh.mamba_head_dim or 64))
    inner = heads * (sh.mamba_head_dim or 64)
    bc = 2 * sh.mamba_groups * (sh.mamba_state or 128)
    in_proj = h * (2 * inner + bc + heads)
    conv = (inner + bc) * (sh.mamba_conv + 1)
    return in_proj + conv + 3 * heads + inner + inner * h


def _hybrid_params(sh: Shape, active: bool, mtp: bool) -> float:
    main = sh.layer_counts(mtp=False)
    counts = sh.layer_counts(mtp=True) - main if mtp else main
    per = {
        "M": _mamba_params(sh),
        "*": _attention_params(sh),
        "-": _mlp_params(sh, sh.dense_ffn()),
        "E": _moe_params(sh, active),
    }
    total = sum(n * (per.get(c, 0) + sh.h) for c, n in counts.items())  # one norm per layer
    if mtp and sh.mtp:
        total += sh.mtp * (2 * sh.h * sh.h + 3 * sh.h)
    return total


def mtp_params(sh: Shape) -> float | None:
    """The multi-token prediction module's own parameters (it shares the embedding
    and the output head with the main model)."""
    if not sh.mtp or None in (sh.l, sh.h):
        return None
    return float(round(stack_params(sh, mtp=True)))


def nonembedding_params(sh: Shape) -> float | None:
    """N without the embeddings (and learned positions for GPT); active experts only."""
    n = param_count(sh, active=True)
    if n is None:
        return None
    if sh.learned_positions:
        return n - (sh.V + sh.s) * sh.h  # learned positions too (GPT)
    return n - sh.V * sh.h * (2 if sh.untied else 1)


def matmul_params(sh: Shape, active: bool = True) -> float | None:
    """N as the matmuls use it: every parameter but the input embedding table (a
    tied table is the output projection's weight, so it stays) and learned
    positions; active experts only (``active``)."""
    n = param_count(sh, active=active)
    if n is None:
        return None
    return n - (sh.s * sh.h if sh.learned_positions else 0) - (sh.V * sh.h if sh.untied else 0)


# -- building and checking a shape -----------------------------------------------

#: shape key -> (Shape attribute, kind): what settings, the catalog and config files give
FIELDS: dict[str, tuple[str, str]] = {
    "num_layers": ("l", "int"),
    "hidden_size": ("h", "int"),
    "num_attention_heads": ("a", "int"),
    "num_query_groups": ("g", "int"),
    "kv_channels": ("d", "int"),
    "ffn_hidden_size": ("f", "int"),
    "vocab_size": ("V", "int"),
    "seq_len": ("s", "int"),
    "swiglu": ("swiglu", "bool"),
    "activation": ("act", "str"),
    "untied_embeddings": ("untied", "bool"),
    "moe_topk": ("topk", "int"),
    "num_experts": ("experts", "int"),
    "moe_ffn_hidden_size": ("moe_f", "int"),
    "moe_shared_expert_intermediate_size": ("shared_f", "int"),
    "moe_layer_freq": ("moe_freq", "freq"),
    "first_k_dense_replace": ("first_dense", "int"),
    "moe_latent_size": ("latent", "int"),
    "qkv_bias": ("qkv_bias", "bool"),
    "attention_bias": ("attention_bias", "bool"),
    "mlp_bias": ("mlp_bias", "bool"),
    "attention_sinks": ("sinks", "bool"),
    "qk_norm": ("qk_norm", "bool"),
    "norms_per_layer": ("norms", "int"),
    "q_lora_rank": ("q_rank", "int"),
    "kv_lora_rank": ("kv_rank", "int"),
    "qk_nope_head_dim": ("d_nope", "int"),
    "qk_rope_head_dim": ("d_rope", "int"),
    "v_head_dim": ("d_v", "int"),
    "mtp_num_layers": ("mtp", "int"),
    "sliding_window": ("window", "int"),
    "attention_chunk_size": ("chunk", "int"),
    "local_global_pattern": ("local_global", "ratio"),
    "hybrid_layer_pattern": ("pattern", "pattern"),
    "mtp_layer_pattern": ("mtp_pattern", "pattern"),
    "mamba_state_dim": ("mamba_state", "int"),
    "mamba_num_heads": ("mamba_heads", "int"),
    "mamba_head_dim": ("mamba_head_dim", "int"),
    "mamba_num_groups": ("mamba_groups", "int"),
    "mamba_conv_kernel": ("mamba_conv", "int"),
    "global_kv_channels": ("global_d", "int"),
    "global_num_query_groups": ("global_g", "int"),
    "global_kv_shared": ("global_kv_shared", "bool"),
    "no_bias": ("no_bias", "bool"),
    "vision_params": ("vision_params", "float"),
    "params": ("params", "float"),
}
SHAPE_KEYS = tuple(FIELDS)


def _as_int(v: Any) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if f == f and abs(f) != float("inf") and f == int(f) else None


def _as_freq(v: Any) -> int | tuple[int, ...] | None:
    """``moe_layer_freq``: an int k (every k-th layer), a list of 0/1 per layer, or the
    list expression Megatron's option takes (``[0]*3+[1]*58``, ``([0]+[1])*24``), read
    as data (never evaluated)."""
    if isinstance(v, list | tuple):
        return tuple(int(bool(x)) for x in v)
    if isinstance(v, str) and "[" in v:
        import ast

        try:
            found = _layer_list(ast.parse(v.strip(), mode="eval").body)
        except (SyntaxError, ValueError):
            return None
        return tuple(int(bool(x)) for x in found) if found is not None else None
    return _as_int(v)


def _layer_list(node) -> list[int] | None:
    """A list expression of int literals, ``+`` and ``* n`` (``ast`` nodes only)."""
    import ast

    if isinstance(node, ast.List | ast.Tuple):
        vals = [n.value for n in node.elts if isinstance(n, ast.Constant)]
        return (
            vals if len(vals) == len(node.elts) and all(isinstance(x, int) for x in vals) else None
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _layer_list(node.left), _layer_list(node.right)
        return a + b if a is not None and b is not None else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        lst, n = (
            (node.left, node.right)
            if isinstance(node.right, ast.Constant)
            else (node.right, node.left)
        )
        base = _layer_list(lst)
        k = n.value if isinstance(n, ast.Constant) and isinstance(n.value, int) else None
        return base * k if base is not None and k is not None and 0 <= k <= 100_000 else None
    return None


def _as_ratio(v: Any) -> tuple[int, int] | None:
    """``local_global_pattern``: ``"5:1"`` (five local layers, then one global)."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(v))
    if m is None or int(m[1]) + int(m[2]) == 0:
        return None
    return int(m[1]), int(m[2])


_CONVERT = {
    "int": _as_int,
    "bool": lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes"),
    "str": lambda v: str(v).lower() if v is not None else None,
    "float": lambda v: float(v) if _as_int(v) is not None or isinstance(v, float) else None,
    "freq": _as_freq,
    "ratio": _as_ratio,
    "pattern": lambda v: str(v).replace("|", "") if v else None,
}


def build(values: dict[str, Any], origin: dict[str, str] | None = None) -> Shape:
    """A ``Shape`` from shape keys (``SHAPE_KEYS``); ShapeError naming the field and
    where it came from (``origin``: key -> source) when a value is no value of its
    kind or the shape cannot hold (``problems``)."""
    origin = origin or {}
    sh = Shape()
    for key, value in values.items():
        if key not in FIELDS or value is None:
            continue
        attr, kind = FIELDS[key]
        converted = _CONVERT[kind](value)
        if converted is None:
            raise ShapeError(f"{key} = {value!r} ({origin.get(key, 'given')}) is no {kind} value")
        setattr(sh, attr, converted)
    sh.topk = sh.topk or 1
    sh.experts = sh.experts or 1
    sh.norms = sh.norms or 2
    sh.mamba_groups = sh.mamba_groups or 1
    bad = problems(sh)
    if bad:
        key, why = bad[0]
        where = ", ".join(f"{k} from {origin[k]}" for k in key.split("+") if k in origin)
        raise ShapeError(f"model shape: {why}" + (f" ({where})" if where else ""))
    return sh


def problems(sh: Shape) -> list[tuple[str, str]]:
    """(keys, what is wrong) for every part of ``sh`` that cannot hold (``CHECKS``)."""
    return [(check.keys, check.why(sh)) for check in CHECKS if check.broken(sh)]


class _Check(NamedTuple):
    """A rule a shape must pass: the keys it names, whether ``sh`` breaks it, and why."""

    keys: str
    broken: Callable[[Shape], Any]
    why: Callable[[Shape], str]


def _positive(key: str) -> _Check:
    """The check that a count (``key``) is above 0 where given."""
    attr = FIELDS[key][0]
    return _Check(
        key,
        lambda sh: getattr(sh, attr) is not None and getattr(sh, attr) <= 0,
        lambda sh: f"{key} {getattr(sh, attr)} is not positive",
    )


def _rank(key: str) -> _Check:
    """The check that a multi-latent attention rank (``key``) is within the width."""
    attr = FIELDS[key][0]
    return _Check(
        f"{key}+hidden_size",
        lambda sh: getattr(sh, attr) is not None and sh.h and not 0 < getattr(sh, attr) <= sh.h,
        lambda sh: f"{key} {getattr(sh, attr)} is above hidden_size {sh.h}",
    )


LAYER_SYMBOLS = "M*-EG"  # the layers a hybrid pattern may name


def _unknown_layers(sh: Shape) -> list[str]:
    """The symbols of the hybrid layer pattern that name no layer, sorted."""
    return sorted(set(sh.pattern or "") - set(LAYER_SYMBOLS))


#: the checks ``problems`` makes, in the order it reports them (``build`` names the first)
CHECKS = (
    *map(_positive, ("num_layers", "hidden_size", "num_attention_heads", "vocab_size", "seq_len")),
    _Check(
        "moe_topk+num_experts",
        lambda sh: sh.topk > sh.experts and sh.experts > 1,
        lambda sh: f"moe_topk {sh.topk} is above num_experts {sh.experts}",
    ),
    _Check(
        "num_query_groups+num_attention_heads",
        lambda sh: sh.g and sh.a and (sh.g > sh.a or sh.a % sh.g),
        lambda sh: f"num_query_groups {sh.g} does not divide num_attention_heads {sh.a}",
    ),
    _rank("q_lora_rank"),
    _rank("kv_lora_rank"),
    _Check(
        "kv_lora_rank",
        lambda sh: sh.mla and None in (sh.d_nope, sh.d_rope, sh.d_v),
        lambda sh: "multi-latent attention needs qk_nope_head_dim, qk_rope_head_dim and v_head_dim",
    ),
    _Check(
        "moe_layer_freq+num_layers",
        lambda sh: isinstance(sh.moe_freq, tuple) and sh.l and len(sh.moe_freq) != sh.l,
        lambda sh: f"moe_layer_freq lists {len(sh.moe_freq)} layers, num_layers is {sh.l}",
    ),
    _Check(
        "hybrid_layer_pattern",
        _unknown_layers,
        lambda sh: (
            f"hybrid_layer_pattern has {_unknown_layers(sh)[0]!r}: "
            "use M (Mamba-2), * (attention), - (MLP), E (MoE)"
        ),
    ),
    _Check(  # a pattern of known layers only
        "hybrid_layer_pattern+num_layers",
        lambda sh: sh.pattern and not _unknown_layers(sh) and sh.l and len(sh.pattern) != sh.l,
        lambda sh: f"hybrid_layer_pattern has {len(sh.pattern)} layers, num_layers is {sh.l}",
    ),
    _Check(
        "first_k_dense_replace+num_layers",
        lambda sh: sh.first_dense and sh.l and sh.first_dense > sh.l,
        lambda sh: f"first_k_dense_replace {sh.first_dense} is above num_layers {sh.l}",
    ),
    _Check(
        "moe_latent_size+hidden_size",
        lambda sh: sh.latent and sh.h and sh.latent > sh.h,
        lambda sh: f"moe_latent_size {sh.latent} is above hidden_size {sh.h}",
    ),
)


# -- Hugging Face config.json ------------------------------------------------------

#: HF model types whose MLP is gated (gate, up and down projections)
_GATED_TYPES = (
    "llama", "mistral", "mixtral", "qwen", "gemma", "deepseek", "kimi", "gpt_oss", "olmo",
    "phi3", "granite", "glm", "ernie", "hunyuan", "minimax", "internlm", "yi", "baichuan",
)  # fmt: skip
#: HF key -> shape key, read as they are
_HF_SAME = {
    "num_hidden_layers": "num_layers",
    "n_layers": "num_layers",
    "n_layer": "num_layers",
    "hidden_size": "hidden_size",
    "d_model": "hidden_size",
    "n_embd": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "n_heads": "num_attention_heads",
    "n_head": "num_attention_heads",
    "num_key_value_heads": "num_query_groups",
    "head_dim": "kv_channels",
    "attention_head_dim": "kv_channels",
    "vocab_size": "vocab_size",
    "num_local_experts": "num_experts",
    "n_routed_experts": "num_experts",
    "num_experts": "num_experts",
    "num_experts_per_tok": "moe_topk",
    "moe_intermediate_size": "moe_ffn_hidden_size",
    "moe_shared_expert_intermediate_size": "moe_shared_expert_intermediate_size",
    "shared_expert_intermediate_size": "moe_shared_expert_intermediate_size",
    "first_k_dense_replace": "first_k_dense_replace",
    "moe_latent_size": "moe_latent_size",
    "q_lora_rank": "q_lora_rank",
    "kv_lora_rank": "kv_lora_rank",
    "qk_nope_head_dim": "qk_nope_head_dim",
    "qk_rope_head_dim": "qk_rope_head_dim",
    "v_head_dim": "v_head_dim",
    "num_nextn_predict_layers": "mtp_num_layers",
    "attention_chunk_size": "attention_chunk_size",
    "hybrid_override_pattern": "hybrid_layer_pattern",
    "mtp_hybrid_override_pattern": "mtp_layer_pattern",
    "ssm_state_size": "mamba_state_dim",
    "mamba_num_heads": "mamba_num_heads",
    "mamba_head_dim": "mamba_head_dim",
    "n_groups": "mamba_num_groups",
    "conv_kernel": "mamba_conv_kernel",
    "global_head_dim": "global_kv_channels",
    "num_global_key_value_heads": "global_num_query_groups",
    "attention_k_eq_v": "global_kv_shared",
    "top_k_experts": "moe_topk",
    "no_bias": "no_bias",
}


def shape_keys(config: dict[str, Any]) -> dict[str, Any]:
    """The shape keys a Hugging Face ``config.json`` gives (its ``text_config`` for a
    multimodal model); keys it does not say are left out. The training sequence length
    is not in such a file (``max_position_embeddings`` is the context limit)."""
    cfg = dict(config)
    text = cfg.get("text_config")
    if isinstance(text, dict):
        cfg = {**cfg, **text}
    kind = str(cfg.get("model_type", "")).lower()
    out: dict[str, Any] = {}
    for hf, key in _HF_SAME.items():
        if cfg.get(hf) is not None and key not in out:
            out[key] = cfg[hf]
    _hf_mlp(cfg, out, kind)
    _hf_flags(cfg, out, kind)
    _hf_moe_layers(cfg, out)
    _hf_attention_pattern(cfg, out, kind)
    if "mtp_layer_pattern" in out and "mtp_num_layers" not in out:
        out["mtp_num_layers"] = 1
    return out


def _hf_mlp(cfg: dict, out: dict, kind: str) -> None:
    """The FFN sizes, the activation and the gate; shared experts."""
    if kind.startswith("llama4"):  # experts of intermediate_size, one shared; dense layers' own
        out["moe_ffn_hidden_size"] = cfg.get("intermediate_size")
        out["moe_shared_expert_intermediate_size"] = cfg.get("intermediate_size")
        out["ffn_hidden_size"] = cfg.get("intermediate_size_mlp") or cfg.get("intermediate_size")
    elif cfg.get("intermediate_size") is not None:
        out["ffn_hidden_size"] = cfg["intermediate_size"]
    elif cfg.get("expansion_ratio") and "hidden_size" in out:  # MPT
        out["ffn_hidden_size"] = int(cfg["expansion_ratio"] * out["hidden_size"])
    act = cfg.get("hidden_act") or cfg.get("hidden_activation") or cfg.get("mlp_hidden_act")
    if act:
        out["activation"] = str(act)
    gated = any(kind.startswith(t) for t in _GATED_TYPES) and kind != "nemotron_h"
    out["swiglu"] = gated or str(act).lower() in ("swiglu", "geglu")
    if cfg.get("n_shared_experts") and cfg.get("moe_intermediate_size"):
        shared = cfg.get("moe_shared_expert_intermediate_size")
        out["moe_shared_expert_intermediate_size"] = shared or (
            cfg["n_shared_experts"] * cfg["moe_intermediate_size"]
        )
    if kind.startswith("gemma4") and cfg.get("enable_moe_block"):  # a dense MLP beside experts
        out["moe_shared_expert_intermediate_size"] = cfg.get("intermediate_size")


def _hf_flags(cfg: dict, out: dict, kind: str) -> None:
    """Tied embeddings, biases, sinks, q/k norms, norms per layer."""
    if "tie_word_embeddings" in cfg:
        out["untied_embeddings"] = not cfg["tie_word_embeddings"]
    elif kind in ("mpt", "gpt2", "gpt_neox"):
        out["untied_embeddings"] = kind == "gpt_neox"
    if kind == "gpt_oss":
        out.update(attention_bias=True, mlp_bias=True, attention_sinks=True)
    elif cfg.get("attention_bias"):
        out["attention_bias"] = True
    if kind.startswith("qwen2"):
        out["qkv_bias"] = True
    if kind.startswith(("qwen3", "gemma3", "olmo2")) or cfg.get("use_qk_norm"):
        out["qk_norm"] = True
    if kind.startswith(("gemma2", "gemma3", "gemma4")):
        out["norms_per_layer"] = 4


def _hf_moe_layers(cfg: dict, out: dict) -> None:
    """Which layers are MoE: ``moe_layers`` / ``decoder_sparse_step`` /
    ``interleave_moe_layer_step`` / ``mlp_only_layers`` as a 0/1 pattern."""
    n = _as_int(cfg.get("num_hidden_layers"))
    if not n or not out.get("num_experts") or (_as_int(out["num_experts"]) or 0) <= 1:
        return
    step = cfg.get("decoder_sparse_step") or cfg.get("interleave_moe_layer_step")
    only = cfg.get("mlp_only_layers") or []
    if isinstance(cfg.get("moe_layers"), list):
        pattern = [int(i in cfg["moe_layers"]) for i in range(n)]
    elif step and int(step) > 1:  # Llama 4 Maverick, Qwen: every step-th layer, 1-based
        pattern = [int((i + 1) % int(step) == 0) for i in range(n)]
    else:
        pattern = [1] * n
    pattern = [0 if i in only else x for i, x in enumerate(pattern)]
    if 0 in pattern:
        out["moe_layer_freq"] = pattern


def _hf_attention_pattern(cfg: dict, out: dict, kind: str) -> None:
    """Sliding windows, chunked attention and the local:global layer pattern."""
    window = cfg.get("sliding_window")
    if cfg.get("use_sliding_window") is False:
        window = None
    types = cfg.get("layer_types")
    if window:
        out["sliding_window"] = window
        if isinstance(types, list) and types:
            local = sum(1 for t in types if "sliding" in str(t))
            glob = len(types) - local
            out["local_global_pattern"] = _period(types) or f"{local}:{glob}"
        elif cfg.get("sliding_window_pattern"):
            p = int(cfg["sliding_window_pattern"])
            out["local_global_pattern"] = f"{p - 1}:1"
        elif kind.startswith(("gemma2", "gpt_oss")):
            out["local_global_pattern"] = "1:1"
    if cfg.get("attention_chunk_size") and kind.startswith("llama4"):
        nope = cfg.get("no_rope_layers")
        every = 4
        if isinstance(nope, list) and 0 in nope:
            every = nope.index(0) + 1
        out["local_global_pattern"] = f"{every - 1}:1"


def _period(types: list) -> str | None:
    """``"L:G"`` when a ``layer_types`` list repeats local layers then global ones."""
    local = [("sliding" in str(t)) for t in types]
    for p in range(1, len(local) + 1):
        unit = local[:p]
        if len(local) % p == 0 and unit * (len(local) // p) == local:
            nl = sum(unit)
            if unit == [True] * nl + [False] * (p - nl):
                return f"{nl}:{p - nl}"
            return None
    return None


def shape_fields() -> list[str]:
    """Every Shape attribute (for tests and listings)."""
    return [f.name for f in fields(Shape)]
