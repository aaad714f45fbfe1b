"""Every report metric as one spec: its name, unit, meaning, README definition, which
direction is better, and how it is computed and explained. ``report``, ``compare``, the
HTML page, the derivations and README's "Metrics" table all read ``SPECS``; adding a
metric is one spec here (an ``expression`` over other columns computes and explains
itself; any other metric names the function that fills it in ``metrics``).

An expression is products and quotients of columns and constants, left to right
(``tokens_per_step / step_time_s``); an input that is missing or 0 leaves the metric
empty, never 0 or infinite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .columns import FLAGS
from .flops import CONVENTIONS, family
from .formats import cell, plain


class Kind(Enum):
    """How a column's values are typed in a report: reals (without binary noise),
    counts (integers), text."""

    REAL = "real"
    COUNT = "count"
    TEXT = "text"


@dataclass(frozen=True)
class MetricSpec:
    """One report column beyond the run's own.

    ``unit``: the SI unit of its values (``""`` for text); ``meaning``: one line (hover
    texts, an empty metric's explanation); ``definition``: README's "Metrics" row;
    ``better``: +1 higher is better, -1 lower (``compare`` compares such a metric),
    0 not compared; ``expression``: the arithmetic that computes and explains it;
    ``needs``: the inputs of a metric that is not an expression (to say why one is
    empty); ``told``: its derivation in words, from the row and the run's settings;
    ``explained``: ``report --explain`` prints it after a run's inputs; ``in_report``:
    False for a metric only ``compare`` computes."""

    name: str
    unit: str
    meaning: str
    definition: str
    kind: Kind = Kind.REAL
    better: int = 0
    expression: str | None = None
    needs: tuple[str, ...] = ()
    told: Callable[[dict[str, Any], dict[str, Any]], str] | None = None
    explained: bool = False
    in_report: bool = True
    units_text: str | None = None  # README's units cell, where it says more than ``unit``

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns the metric is computed from."""
        if self.expression:
            return tuple(t for t in self.expression.split()[::2] if t not in CONSTANTS)
        return self.needs


CONSTANTS = {"10^12": 1e12, "86400": 86400.0, "1000": 1000.0}


def number(value: Any) -> float | None:
    """A finite number, or None (text, booleans, NaN and missing values)."""
    v = plain(value)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def evaluate(expression: str, row: dict[str, Any]) -> float | None:
    """``expression`` over ``row`` (left to right); None when an input is missing or 0."""
    tokens = expression.split()
    values = [CONSTANTS.get(t) or number(row.get(t)) for t in tokens[::2]]
    if any(not v for v in values):
        return None
    got = values[0]
    for op, v in zip(tokens[1::2], values[1:], strict=True):
        got = got * v if op == "×" else got / v
    return got


# -- metrics told in words -------------------------------------------------------------

LORA = (
    " × 2/3 (LoRA: the base weights are frozen, so a step is their forward and input "
    "gradients, 4 of the 6 FLOPs per parameter and token; the attention scores are scaled alike)"
)


def _flops(row: dict[str, Any], config: dict) -> str:
    formula = row.get("formula")
    conv = CONVENTIONS.get(formula)
    model = f"model {row['model']}" if row.get("model") else "the shape the run's inputs give"
    return (
        f"formula {formula} ({conv.formula if conv else 'a third-party formula'}) for "
        f"{model}, B = global_batch_size {cell(row.get('global_batch_size'))}, "
        f"s = seq_len {cell(row.get('seq_len'))}" + (f"; then{LORA}" if config.get("lora") else "")
    )


def _hardware(row: dict[str, Any], config: dict) -> str:
    base = family(row["formula"]) if row.get("formula") in CONVENTIONS else "megatron"
    return (
        f"hardware FLOPs per step (the {base} count, plus what recompute="
        f"{cell(row.get('recompute'))} runs again: the forward for full, the attention "
        "scores for selective"
        + (f"; then{LORA}" if config.get("lora") else "")
        + f") / step_time_s {cell(row.get('step_time_s'))} / num_gpus "
        f"{cell(row.get('num_gpus'))} / 10^12"
    )


def _time_to_train(row: dict[str, Any], config: dict) -> str:
    start, stop = config.get("run_start_ms"), config.get("run_stop_ms")
    return f"(run_stop − run_start) / 60000 = ({cell(stop)} − {cell(start)}) ms / 60000"


def _logged(row: dict[str, Any], config: dict) -> str:
    return f"as the log printed it: the {row.get('stat')} over the steady steps' lines"


def _logged_tokens(row: dict[str, Any], config: dict) -> str:
    return (
        _logged(row, config) + " (a per-GPU figure times num_gpus; MLPerf: the last tracked "
        "throughput)"
    )


# -- the specs, in the report's column order ---------------------------------------------

_SEQ = "B = global batch in sequences, s = sequence length"
SPECS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "step_time_s", "s", "steady-state step time (--stat over the steps after the warm-up)",
        "steady-state statistic (`--stat`, default median) of the step times after the "
        "warm-up: the first 10 % of steps or 2, whichever is more, and a batch ramp-up "
        "(`--rampup-batch-size`: the steps before the final global batch), so that a step "
        "time is never set beside a batch it was not run with (`--warmup N` sets the count "
        "exactly); a run that short keeps its last step. A global batch read from step lines "
        "is the steady steps'. Lines whose interval had iterations skipped (fp16 loss-scale "
        "search) or NaN are left out and counted in `n_faulty`. A log that times no step but "
        "prints a train summary (Hugging Face) gets the summary's mean, `stat` `summary`",
        better=-1, needs=("a timed step line",), explained=True,
    ),
    MetricSpec(
        "stat", "", "the statistic of step_time_s: median, mean, last, min or p90; 'summary' "
        "when the log times no step and its train summary's mean is used",
        "the statistic `step_time_s` is (`--stat`), or `summary`", kind=Kind.TEXT,
    ),
    MetricSpec("warmup_steps", "steps", "steps left out as warm-up",
               "steps left out as warm-up (`--warmup`)", kind=Kind.COUNT),
    MetricSpec("n_steady", "steps", "steps the statistic is taken over",
               "steps `step_time_s` is taken over", kind=Kind.COUNT),
    MetricSpec(
        "n_faulty", "steps", "timed log lines left out of the statistic: iterations skipped "
        "(fp16 loss-scale search) or NaN in their interval",
        "timed lines left out: iterations skipped or NaN in their interval", kind=Kind.COUNT,
    ),
    MetricSpec("step_time_p10_s", "s", "10th percentile of the steady step times",
               "10th percentile of the steady step times"),
    MetricSpec("step_time_p90_s", "s", "90th percentile of the steady step times",
               "90th percentile of the steady step times"),
    MetricSpec("step_time_cv", "", "coefficient of variation of the steady step times",
               "standard deviation / mean of the steady step times"),
    MetricSpec("tokens_per_step", "tokens", "global batch x sequence length",
               f"B·s ({_SEQ})", kind=Kind.COUNT,
               expression="global_batch_size × seq_len", explained=True),
    MetricSpec("tokens_per_s", "1/s", "tokens per second", "B·s/t, t the step time",
               better=1, expression="tokens_per_step / step_time_s", explained=True),
    MetricSpec("tokens_per_s_per_gpu", "1/s", "tokens per second per GPU",
               "B·s/(t·n), n the GPUs", better=1,
               expression="tokens_per_s / num_gpus", explained=True),
    MetricSpec("samples_per_s", "1/s", "sequences per second", "B/t", better=1,
               expression="global_batch_size / step_time_s"),
    MetricSpec("days_per_1t_tokens", "days", "days to train on 10^12 tokens",
               "10^12 / tokens_per_s / 86400", expression="10^12 / tokens_per_s / 86400"),
    MetricSpec("tokens", "tokens", "--tokens, when given", "`--tokens T`, when given",
               needs=("--tokens",)),
    MetricSpec("iterations_for_tokens", "steps", "steps to train on --tokens",
               "T / (B·s)", expression="tokens / tokens_per_step"),
    MetricSpec("time_for_tokens_s", "s", "time to train on --tokens", "T / tokens_per_s",
               expression="tokens / tokens_per_s"),
    MetricSpec(
        "params", "parameters", "the model's parameter count",
        "the catalog's exact count (or `--set params=`), else 12lh²(1 + 13/(12h) + "
        "(V+s)/(12lh)) for GPT (seed 000), else the sum of each layer's parts "
        "(`llmbench/shapes.py`): attention (q, k, v, o of a·d and g·d; MLA's low-rank "
        "projections and norms; biases, q/k norms, sinks; a global layer's own head "
        "dimension), the MLP (3 matrices gated, else 2) or MoE block (router, every expert, "
        "shared experts, latent projections), Mamba-2 mixers, n norms of h per layer, and the "
        "embedding tables (two when untied) and final norm; the MTP module is published apart "
        "and not counted; `6n`, `palm`, `torchtitan` and `8n` count the top-k active experts "
        "only", kind=Kind.COUNT, needs=("model",),
    ),
    MetricSpec("formula", "", "the model-FLOPs formula (--formula)",
               "the FLOPs convention the row is counted in (`--formula`; below)",
               kind=Kind.TEXT),
    MetricSpec("model_flops_per_step", "FLOP", "model FLOPs of one step",
               "by `--formula` (below), no recompute",
               needs=("model", "global_batch_size", "seq_len"), told=_flops, explained=True),
    MetricSpec("tflops_per_gpu", "TFLOP/s", "model FLOPs per second per GPU",
               "model FLOPs / (t · n · 10^12)", better=1,
               expression="model_flops_per_step / step_time_s / num_gpus / 10^12",
               explained=True),
    MetricSpec(
        "hw_tflops_per_gpu", "TFLOP/s", "executed FLOPs (recompute counted) per second per GPU",
        "FLOPs executed, counting activation recompute: `full` adds the transformer forward "
        "again (4/3 of it; for dense GPT exactly `ptdp`), `selective` adds the attention "
        "score/context forward (4·B·s²·l·h), `none` = model FLOPs; counted with the megatron "
        "formula, its attention scores halved when `--formula megatron-causal` (so that "
        "without recompute HFU = MFU); needs `recompute`",
        better=1, needs=("model_flops_per_step", "recompute", "step_time_s", "num_gpus"),
        told=_hardware, explained=True,
    ),
    MetricSpec("peak_tflops", "TFLOP/s", "the accelerator's dense peak for the run's dtype",
               "the accelerator's dense peak for the run's dtype (catalog "
               "`llmbench/data/hardware.csv`, datasheet named per row)",
               needs=("accelerator", "dtype")),
    MetricSpec("mfu", "fraction", "model FLOPs utilisation: tflops_per_gpu / peak_tflops",
               "tflops_per_gpu / peak_tflops", better=1,
               expression="tflops_per_gpu / peak_tflops", explained=True),
    MetricSpec("hfu", "fraction", "hardware FLOPs utilisation: hw_tflops_per_gpu / peak_tflops",
               "hw_tflops_per_gpu / peak_tflops", better=1,
               expression="hw_tflops_per_gpu / peak_tflops", explained=True),
    MetricSpec("aggregate_pflops", "PFLOP/s", "tflops_per_gpu x GPUs / 1000",
               "tflops_per_gpu · n / 1000 (the seed 004 table divides by 1024 instead)",
               expression="tflops_per_gpu × num_gpus / 1000"),
    MetricSpec(
        "model_state_bytes_per_gpu", "bytes", "weights, gradients and optimizer state per GPU",
        "16N/(tp·pp) without ZeRO; ZeRO-1 (4 + 12/dp)·N/(tp·pp); ZeRO-2 (2 + 14/dp)·N/(tp·pp); "
        "ZeRO-3 16N/(tp·pp·dp) (seed 000); LoRA 2N/(tp·pp) (the frozen 16-bit weights; "
        "adapters not counted)", needs=("params",),
    ),
    MetricSpec(
        "comm_dp_bytes_per_gpu", "bytes", "data-parallel gradient all-reduce per GPU per step",
        "gradient ring all-reduce per step: 2(dp−1)/dp · N/(tp·pp) · w (seed 000 traffic "
        "table: DP, backward, O(h²) per layer)",
        needs=("params", "tp", "pp", "dp"), units_text="bytes sent per GPU per step",
    ),
    MetricSpec(
        "comm_tp_bytes_per_gpu", "bytes", "tensor-parallel all-reduces per GPU per step",
        "4 all-reduces per layer (2 forward, 2 backward) of each sequence's s·h activations: "
        "2(tp−1)/tp · 4 · (l/pp) · (B/dp)·s·h · w (seed 000: TP, O(B·s·h)); full recompute "
        "adds the forward pair again and is not counted",
        needs=("model", "global_batch_size", "seq_len", "tp", "pp", "dp"),
        units_text="bytes sent per GPU per step",
    ),
    MetricSpec(
        "comm_pp_bytes_per_gpu", "bytes", "pipeline point-to-point per GPU per step",
        "point-to-point at stage boundaries, activations forward and gradients backward: "
        "2 · (B/dp)·s·h · w, 0 with pp = 1 (seed 000: PP, O(b·s·h) per micro-batch)",
        needs=("model", "global_batch_size", "seq_len", "tp", "pp", "dp"),
        units_text="bytes sent per GPU per step",
    ),
    MetricSpec("tflops_per_gpu_logged", "TFLOP/s", "TFLOPs per GPU as the log printed them",
               "what the log printed, the same statistic over the same steps",
               needs=("a TFLOP/s figure in the log",), told=_logged),
    MetricSpec("tokens_per_s_logged", "1/s", "tokens per second as the log printed them",
               "what the log printed (a per-GPU figure times n), the same statistic over the "
               "same steps", needs=("a tokens/s figure in the log",), told=_logged_tokens),
    MetricSpec("mfu_logged", "fraction", "MFU as the log printed it",
               "what the log printed, the same statistic over the same steps",
               needs=("an MFU figure in the log",), told=_logged),
    MetricSpec("tflops_logged_formula", "", "the formula that reproduces the logged TFLOPs",
               "the catalogued convention that reproduces the logged TFLOP/s within 0.5 %",
               kind=Kind.TEXT, needs=("tflops_per_gpu_logged",)),
    MetricSpec("logged_disagrees", "", "logged TFLOPs differ from tflops_per_gpu by over 2 %",
               "true when no convention reproduces the logged TFLOP/s and they differ from "
               "`tflops_per_gpu` by more than 2 %", kind=Kind.TEXT,
               needs=("tflops_per_gpu_logged", "tflops_per_gpu")),
    MetricSpec("time_to_train_min", "min", "MLPerf time to train: run_stop - run_start",
               "MLPerf: run_stop − run_start for a run whose run_stop status is `success`",
               better=-1, needs=("an MLPerf result file of a successful run",),
               told=_time_to_train),
    MetricSpec("round", "", "the MLPerf Training round of a result file (scaling never joins two)",
               "MLPerf: the Training round of the result file (`v4.1`); `scaling` never joins "
               "runs of two rounds", kind=Kind.TEXT),
    MetricSpec("missing", "", "what to --set for the metrics left empty",
               "what to `--set` for the metrics left empty", kind=Kind.TEXT),
    MetricSpec("flags", "", "what is impossible or doubtful in this row's numbers",
               "what is impossible or doubtful in the row (below); `report` and `estimate` "
               "print each on stderr", kind=Kind.TEXT),
    MetricSpec(
        "loss_at_tokens", "", "the training loss where both runs consumed the same tokens",
        "`compare` only: the training loss where both runs consumed the same tokens (the "
        "most both reached; linear between logged steps); a point estimate",
        better=-1, in_report=False,
    ),
)  # fmt: skip

BY_NAME: dict[str, MetricSpec] = {s.name: s for s in SPECS}
#: the report's columns beyond the run's own: name -> (unit, meaning)
METRIC_COLUMNS: dict[str, tuple[str, str]] = {
    s.name: (s.unit, s.meaning) for s in SPECS if s.in_report
}
#: what ``compare`` can compare: name -> +1 when higher is better, -1 when lower
COMPARABLE: dict[str, int] = {
    s.name: s.better for s in SPECS if s.better and s.name != "time_to_train_min"
}
#: report columns that hold text; count columns (integers); the rest are reals
TEXT = frozenset(s.name for s in SPECS if s.kind is Kind.TEXT)
COUNTS = frozenset(s.name for s in SPECS if s.kind is Kind.COUNT)
#: the metrics ``report --explain`` derives after a run's inputs
EXPLAINED = tuple(s.name for s in SPECS if s.explained)
#: the metrics an expression computes, in the order they are computed
COMPUTED = tuple(s for s in SPECS if s.expression)


def computed(row: dict[str, Any]) -> dict[str, float | None]:
    """Every expression metric of ``row`` (its inputs set), in order: each may use
    those before it."""
    values = dict(row)
    for spec in COMPUTED:
        values[spec.name] = evaluate(spec.expression, values)  # type: ignore[arg-type]
    return {spec.name: values[spec.name] for spec in COMPUTED}


def readme_table() -> str:
    """README's "Metrics" table, a row per report metric from its spec, then the flags a
    row can carry (``columns.FLAGS``)."""
    rows = ["| metric | definition | units |", "|---|---|---|"]
    for s in SPECS:
        if s.in_report:
            rows.append(f"| `{s.name}` | {s.definition} | {s.units_text or s.unit} |")
    rows += ["", "The `flags` a row can carry:", ""]
    rows += [f"- `{code}`: {text}" for code, text in FLAGS.items()]
    return "\n".join(rows) + "\n"
