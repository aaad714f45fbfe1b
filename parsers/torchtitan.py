"""torchtitan metrics lines (torchtitan/components/metrics.py, ``MetricsProcessor.log``)::

    [titan] 2025-06-16 22:30:50,322 - root - INFO - step: 200  loss:  6.1384
    grad_norm: 0.8319  memory: 49.66GiB(52.28%)  tps: 5,856  tflops: 339.16  mfu: 34.29%

(one line, two-space separated, ANSI colours removed by the reader; ``grad_norm``
since 2025). The 2024 line (train.py, before ``MetricsProcessor``) has no ``[titan]``
prefix, no tflops, and ``wps`` where ``tps`` is now (the same tokens/s per GPU)::

    2024-10-03 15:01:18,520 - root - INFO - step: 117  loss:  3.9053
    memory: 36.20GiB(81.50%)  wps: 1,710  mfu: 23.50%
 Every rank prints unless filtered: copies of a step collapse to the
first. No step time is printed: it is the time between two logged steps divided
by the steps between them (``log_freq``), from the millisecond timestamps; the
first logged step has none. ``tps`` is tokens/s per GPU, ``tflops`` per GPU,
``mfu`` in percent (stored as a fraction; ``N/A`` under FP8/MX: left empty). The
validator's ``validate step: N  loss: L  memory: ...  tps: K`` (2025-07) is a
``validation`` event, never a training step.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from llmbench.parsing import Config, Event, Field, Parser, Record, Step, convert, literal
from llmbench.reader import Line

FIELDS: dict[str, Field] = {
    "loss": Field("loss"),
    "grad_norm": Field("grad_norm"),
    "tps": Field("tokens_per_s_per_gpu"),
    "wps": Field("tokens_per_s_per_gpu"),  # 2024: "words" per second, the same figure
    "tflops": Field("tflops_per_gpu_logged"),
    "mfu": Field("mfu_logged", float, 0.01),
}
LINE_RE = re.compile(
    r"(?:(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - \S+ - INFO - )?"
    r"step:\s*(?P<step>\d{1,18})\s+(?P<rest>loss:.*)"
)
PAIR_RE = re.compile(r"(?P<k>[a-z_]+):\s+(?P<v>[-+\d.,eEnaif]+%?)")
MEMORY_RE = re.compile(r"memory:\s+(?P<gib>[\d.]+)GiB\((?P<pct>[\d.]+)%\)")


# the model and run the trainer describes at start (torchtitan/train.py, trainer.py):
#   Building llama3 8B with ModelArgs(dim=4096, n_layers=32, ...)        2024-03 - 2025-12
#   Building qwen3 0.6Bwith {  (multi-line JSON)                          2025-12 - 2026-04
#   Model llama3 8B size: 8,030,261,248 total parameters
#   Training starts at step 1, with local batch size 1, global batch size 8, sequence
#   length 8192, ...  (2024-07 - 2025-03); Trainer is initialized with local batch size 8,
#   global batch size 64, gradient accumulation steps 1, sequence length 2048, ...
#   Building 1-D device mesh with ['dp_shard'], [8]  /  Building device mesh with
#   parallelism: pp=1, dp_replicate=1, dp_shard=8, cp=1, tp=1, ep=1, etp=1
BUILD_RE = re.compile(r"Building (?P<name>\S+) (?P<flavor>\S+?) ?with (?P<args>.*)$")
SIZE_RE = re.compile(
    r"Model (?P<name>\S+) (?P<flavor>\S+) (?:\S*)?size: (?P<n>[\d,]+) total parameters"
)
BATCH_RE = re.compile(
    r"local batch size:? (?P<local>\d+), global batch size:? (?P<global>\d+),.*?"
    r"sequence length:? (?P<seq>\d+)"
)
MESH_RE = re.compile(r"Building \d+-D device mesh with \[[^\]]*\], \[(?P<dims>[\d, ]*)\]")
PARALLEL_RE = re.compile(r"Building device mesh with parallelism: (?P<dims>(?:\w+=\d+(?:, )?)+)")
# a model's args (any version, any model) -> shape keys
ARGS = {
    "dim": "hidden_size",
    "n_layers": "num_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_query_groups",
    "vocab_size": "vocab_size",
    "head_dim": "kv_channels",
    "hidden_dim": "ffn_hidden_size",
    "inter_dim": "ffn_hidden_size",
    "n_dense_layers": "first_k_dense_replace",
    "kv_lora_rank": "kv_lora_rank",
    "qk_nope_head_dim": "qk_nope_head_dim",
    "qk_rope_head_dim": "qk_rope_head_dim",
    "v_head_dim": "v_head_dim",
    "qk_norm": "qk_norm",
}


def model_args(text: str) -> dict:
    """``Name(k=v, ...)`` (a dataclass repr, nested ones included) or JSON as a dict."""
    text = text.strip()
    if text.startswith("{"):
        try:
            found = json.loads(text)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}
    m = re.match(r"\w+\((?P<body>.*)\)$", text)
    if m is None:
        return {}
    out: dict = {}
    for part in _top_level(m["body"]):
        key, sep, value = part.partition("=")
        if sep and re.fullmatch(r"\w+", key.strip()):
            v = value.strip()
            out[key.strip()] = model_args(v) if re.match(r"\w+\(", v) else literal(v.strip("'"))
    return out


def _top_level(body: str) -> list[str]:
    """``body`` split at the commas outside brackets and quotes."""
    parts, depth, start, quote = [], 0, 0, None
    for i, ch in enumerate(body):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return parts


def shape_of(args: dict) -> dict:
    """The shape keys a torchtitan model's args give: every model is SwiGLU with an output
    projection of its own unless ``enable_weight_tying``; Llama's FFN
    is computed as torchtitan sizes it (2/3 of 4h, times ffn_dim_multiplier, rounded up
    to multiple_of); MoE from ``moe_args`` where MoE is on; MLA where its ranks are."""
    out = {ARGS[k]: v for k, v in args.items() if k in ARGS and isinstance(v, int | float | bool)}
    out["swiglu"] = True
    if args.get("n_kv_heads") is None and isinstance(args.get("n_heads"), int):
        out["num_query_groups"] = args["n_heads"]
    if "ffn_hidden_size" not in out and isinstance(args.get("multiple_of"), int) and "dim" in args:
        hidden = int(2 * 4 * args["dim"] / 3)
        if isinstance(args.get("ffn_dim_multiplier"), int | float):
            hidden = int(args["ffn_dim_multiplier"] * hidden)
        step = args["multiple_of"]
        out["ffn_hidden_size"] = step * math.ceil(hidden / step)
    out["untied_embeddings"] = args.get("enable_weight_tying") is not True  # an output Linear
    if args.get("q_lora_rank"):
        out["q_lora_rank"] = args["q_lora_rank"]
    moe = args.get("moe_args") if isinstance(args.get("moe_args"), dict) else {}
    if moe and (args.get("moe_enabled") is not False):
        out["num_experts"] = moe.get("num_experts")
        out["moe_topk"] = moe.get("top_k")
        inter = args.get("moe_inter_dim")
        out["moe_ffn_hidden_size"] = inter
        if moe.get("num_shared_experts") and inter:
            out["moe_shared_expert_intermediate_size"] = moe["num_shared_experts"] * inter
    return {k: v for k, v in out.items() if v is not None}


class _Setup:
    """What the trainer prints before its first step: the model's args (one line, or a
    JSON object over several), its size, the batch and sequence length, the mesh."""

    def __init__(self) -> None:
        self.json: list | None = None  # [first line number, model name, text so far]

    def line(self, text: str, no: int) -> Iterator[Record]:
        if self.json is not None:
            self.json[2] += text
            if self.json[2].count("{") == self.json[2].count("}"):
                first, model, body = self.json
                self.json = None
                yield from _built(model, model_args(body), first)
            return
        if "Building" in text:
            yield from self._building(text, no)
        elif "total parameters" in text:
            m = SIZE_RE.search(text)
            if m:
                yield Config({"params_logged": int(m["n"].replace(",", ""))}, no)
        elif "batch size" in text:
            m = BATCH_RE.search(text)
            if m:
                yield Config(
                    {"micro_batch_size": int(m["local"]), "global_batch_size": int(m["global"]),
                     "seq_len": int(m["seq"])}, no,
                )  # fmt: skip

    def _building(self, text: str, no: int) -> Iterator[Record]:
        m = MESH_RE.search(text)
        if m is not None:  # the dims over 1: the world is their product
            yield Config({"num_gpus": math.prod(int(x) for x in re.findall(r"\d+", m["dims"]))}, no)
            return
        m = PARALLEL_RE.search(text)
        if m is not None:
            dims = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m["dims"])}
            world = math.prod(
                dims.get(k, 1) for k in ("pp", "dp_replicate", "dp_shard", "cp", "tp")
            )
            values = {"num_gpus": world, "tp": dims.get("tp"), "pp": dims.get("pp")}
            yield Config({**values, "cp": dims.get("cp"), "ep": dims.get("ep")}, no)
            return
        m = BUILD_RE.search(text)
        if m is None:
            return
        model = f"{m['name']}-{m['flavor']}".lower()
        if m["args"].strip().startswith("{") and m["args"].count("{") != m["args"].count("}"):
            self.json = [no, model, m["args"]]
            return
        yield from _built(model, model_args(m["args"]), no)


def _built(model: str, args: dict, no: int) -> Iterator[Record]:
    """The run's model name (``llama3-8b``) and the shape its args give."""
    shape = shape_of(args) if args else {}
    yield Config({"model": model, **shape}, no)


class TorchTitanParser(Parser):
    name = "torchtitan"
    framework = "torchtitan"
    description = "`step: N  loss: L  memory: XGiB(Y%)  tps: K  tflops: T  mfu: M%` (2024: wps)"
    produces = ("step_time_s", "loss", "grad_norm", "tflops_per_gpu_logged", "mfu_logged")

    def detect(self, head: Sequence[str]) -> float:
        score = 0.0
        for text in head:
            if "step:" in text and ("tps:" in text or "wps:" in text) and "loss:" in text:
                return 0.95
            if "[titan]" in text or "torchtitan" in text:
                score = 0.6
        return score

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        prev: tuple[int, datetime] | None = None
        validated: set[str] = set()
        setup = _Setup()
        for no, text, rank in lines:
            if "tps:" not in text and "wps:" not in text:
                if prev is None:  # before the first step: the trainer's set-up lines
                    yield from setup.line(text, no)
                continue
            m = LINE_RE.search(text)
            if m is None:
                continue
            if text[max(0, m.start() - 9) : m.start()] == "validate ":
                if m["step"] not in validated:  # every rank prints it: read once
                    validated.add(m["step"])
                    yield _validation(m, no)  # MetricsProcessor.log_validation (2025-07+)
                continue
            step = int(m["step"])
            values = _fields(m["rest"])
            mem = MEMORY_RE.search(m["rest"])
            if mem:
                values["max_reserved_gib"] = float(mem["gib"])
                values["max_reserved_pct"] = float(mem["pct"])
            if m["ts"]:
                ts = datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S,%f")
                values["timestamp"] = ts.isoformat(timespec="milliseconds")
                if prev is not None and step > prev[0]:
                    values["step_time_s"] = _per_step(ts - prev[1], step - prev[0])
                # a lower step printed later is a restart (the frames layer starts a new
                # segment); printed at the same time it is a slow rank's copy
                if prev is None or step > prev[0] or (step < prev[0] and ts > prev[1]):
                    prev = (step, ts)
            yield Step(step, values, no, rank)


def _per_step(elapsed: timedelta, steps: int) -> float:
    """Seconds per step, as decimal arithmetic gives it: 47.901 s over 10 steps is
    4.7901, not the 4.790100000000001 of binary floats."""
    return float(Decimal(elapsed // timedelta(microseconds=1)) / Decimal(1_000_000 * steps))


def _fields(rest: str) -> dict:
    """The ``FIELDS`` of a line's ``label: value`` pairs, as canonical columns."""
    values: dict = {}
    for p in PAIR_RE.finditer(rest):
        field = FIELDS.get(p["k"])
        if field is not None:
            v = convert(p["v"], field)
            if v is not None:
                values[field.column] = v
    return values


def _validation(m: re.Match, no: int) -> Event:
    """``validate step: N  loss: L  memory: ...  tps: K`` as an event, never a step."""
    return Event("validation", _fields(m["rest"]), no, step=int(m["step"]))
