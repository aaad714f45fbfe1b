"""MLPerf Training, one extension: the benchmarks' rules (``rules``, a data module
parsers may import), where a result file sits in a submission tree and the
settings that gives (``tree``), the official scoring (``scoring``), the results
in a store summarised per benchmark folder (``summary``) and their figure
(``figure``). The core reaches it through ``ingest.LAYER_HOOKS`` (settings) and
the ``mlperf`` command; names load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Benchmark": "rules",
    "BENCHMARKS": "rules",
    "mllog_line": "rules",
    "Location": "tree",
    "locate": "tree",
    "read_system": "tree",
    "result_files": "tree",
    "scaling_factor": "tree",
    "tree_layer": "tree",
    "olympic_mean": "scoring",
    "RunResult": "scoring",
    "run_result": "scoring",
    "score": "scoring",
    "summarize_submissions": "summary",
    "submissions_table": "summary",
    "for_screen": "summary",
    "dropped": "summary",
    "plot_mlperf": "figure",
    "save_figure": "figure",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
