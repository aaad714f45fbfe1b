"""llmbench: read LLM training logs and report speed, TFLOPs and MFU.

Notebook API::

    import llmbench
    logs = llmbench.read_logs("results/*.out", settings={"num_gpus": 128})
    logs.runs, logs.steps, logs.events        # pandas DataFrames
    stored = llmbench.read_store("llmbench.db", engine="dask")  # or pandas, polars
    table = llmbench.summarize(logs, formula="megatron")
    llmbench.compare("runs/v1/", "runs/v2/")  # ratio, interval, verdict per pair
    llmbench.scaling(table, predict=(1024,))  # efficiency, fitted law, prediction
    llmbench.plot_scaling(table)              # matplotlib Axes
    llmbench.report_page("llmbench.db", path="report.html")  # the self-contained page
    llmbench.summarize_submissions("llmbench.db")  # MLPerf scores, one dict per folder

The heavy modules (pandas, matplotlib) load only when a function needs them.
"""

from __future__ import annotations

import sys
from importlib import import_module
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def _checkout_parsers() -> None:
    """Map ``llmbench.parsers`` to the repository root's ``parsers/`` when this folder is
    imported from a source checkout (the root on ``sys.path``, e.g. ``python -c`` there, in
    front of an installed copy): the same mapping the install makes (pyproject's
    ``package-dir``), so the entry points of the built-in parsers load from here too."""
    here = Path(__file__).parent
    init = here.parent / "parsers" / "__init__.py"
    if (here / "parsers").is_dir() or not init.is_file() or "llmbench.parsers" in sys.modules:
        return
    spec = spec_from_file_location(
        "llmbench.parsers", init, submodule_search_locations=[str(init.parent)]
    )
    module = module_from_spec(spec)
    sys.modules["llmbench.parsers"] = module
    spec.loader.exec_module(module)


_checkout_parsers()

_EXPORTS = {
    "read_logs": "llmbench.ingest",
    "read_store": "llmbench.store",
    "ingest": "llmbench.ingest",
    "parse_file": "llmbench.ingest",
    "summarize": "llmbench.report",
    "estimate": "llmbench.planning",
    "compare": "llmbench.comparison",
    "scaling": "llmbench.scalability",
    "export": "llmbench.report",
    "report_page": "llmbench.page",
    "plot_scaling": "llmbench.plots",
    "plot_steps": "llmbench.plots",
    "plot_topology": "llmbench.plots",
    "plot_loss": "llmbench.plots",
    "plot_mlperf": "llmbench.mlperf",
    "summarize_submissions": "llmbench.mlperf",
    "Logs": "llmbench.logs",
    "Settings": "llmbench.settings",
    "Store": "llmbench.store",
    "LLMBenchError": "llmbench.errors",
    "InputError": "llmbench.errors",
    "UsageError": "llmbench.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __dir__() -> list[str]:
    """The public API (what tab completion offers), loaded or not."""
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmbench' has no attribute {name!r}")
