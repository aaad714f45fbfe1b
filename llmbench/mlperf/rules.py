"""The rules of each MLPerf Training benchmark (a data table: required runs, the
summarizer's olympic trim, the model and units its logs use) and the record
format of ``mlperf_logging.mllog``. Imports nothing of llmbench: parsers may use it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Benchmark:
    """Rules and facts of one MLPerf Training benchmark."""

    runs: int  # result files the rules require
    max_dropped: int = 1  # the summarizer's olympic trim (and drop allowance)
    model: str | None = None  # catalog model, for FLOPs and MFU
    seq_len: int | None = None  # tokens per sample when the log does not say
    throughput: str = "samples_per_s"  # unit of tracked_stats "throughput"
    progress: str = "samples_per_s"  # unit of eval_accuracy epoch_num/samples_count per s
    lora: bool = False  # fine-tuning with frozen base weights


# Required runs per benchmark: benchmark_meta.py and the RCP checker of
# mlperf-logging; max_dropped: result_summarizer (4 for unet3d, 1 otherwise).
BENCHMARKS: dict[str, Benchmark] = {
    "gpt3": Benchmark(
        3, model="gpt3-175b", seq_len=2048, throughput="tokens_per_s", progress="tokens_per_s"
    ),
    "llama31_405b": Benchmark(3, model="llama3-405b", seq_len=8192),
    "llama31_8b": Benchmark(10, model="llama3-8b", seq_len=8192),
    "llama2_70b_lora": Benchmark(10, model="llama2-70b", seq_len=8192, lora=True),
    "bert": Benchmark(10),
    "dlrm_dcnv2": Benchmark(10),
    "dlrm": Benchmark(5),
    "stable_diffusion": Benchmark(10),
    "flux1": Benchmark(10),
    "ssd": Benchmark(5),
    "retinanet": Benchmark(5),
    "resnet": Benchmark(5),
    "maskrcnn": Benchmark(5),
    "unet3d": Benchmark(40, max_dropped=4),
    "gnn": Benchmark(10),
    "rgat": Benchmark(10),
    "transformer": Benchmark(10),
    "gnmt": Benchmark(10),
    "minigo": Benchmark(10),
    "ncf": Benchmark(10),
}


def mllog_line(time_ms: int, key: str, value: Any, file: str = "train.py", **metadata: Any) -> str:
    """One record as ``mlperf_logging.mllog`` prints it (for tests and generators)."""
    rec = {
        "namespace": "",
        "time_ms": time_ms,
        "event_type": "POINT_IN_TIME",
        "key": key,
        "value": value,
        "metadata": {"file": file, "lineno": 80, **metadata},
    }
    return ":::MLLOG " + json.dumps(rec)
