"""A set of runs: the canonical tables as pandas DataFrames (``Logs``), what
``read_logs`` returns and what a store selection reads, and what happened to
each input file (``FileResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import FileWarning, LLMBenchError


@dataclass
class FileResult:
    """What happened to one input."""

    path: str
    status: str  # ingested | unchanged | failed | skipped | duplicate
    parser: str | None = None
    runs: int = 0
    steps: int = 0
    warnings: list[FileWarning] = field(default_factory=list)
    error: LLMBenchError | None = None


@dataclass
class Logs:
    """Runs, steps and events (pandas DataFrames): read from logs or from a store."""

    runs: Any
    steps: Any
    events: Any
    results: list[FileResult] = field(default_factory=list)
    #: steady-state statistics per run (``metrics.StepStats``) when a store computed
    #: them from the parts; None: ``summarize`` computes them from ``steps``
    stats: dict[str, Any] | None = None

    @property
    def warnings(self):
        """What reading the files noticed, one row per warning or error: a pandas
        DataFrame (file, line, kind, message); a file that could not be read is one
        row of kind ``error``. ``line`` is 1-based, missing for a whole file."""
        import pandas as pd  # pandas is imported on use (start-up time)

        rows = [(r.path, w.line, w.kind, w.message) for r in self.results for w in r.warnings]
        rows += [
            (r.error.path or r.path, r.error.line, "error", r.error.message)
            for r in self.results
            if r.error is not None
        ]
        frame = pd.DataFrame(rows, columns=["file", "line", "kind", "message"])
        frame["line"] = frame["line"].astype("Int64")
        return frame

    def __repr__(self) -> str:
        n = [0 if t is None else len(t) for t in (self.runs, self.steps, self.events)]
        return f"<Logs: {n[0]} runs, {n[1]} steps, {n[2]} events>"
