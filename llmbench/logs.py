"""A set of runs: the canonical tables as pandas DataFrames (``Logs``), what
``read_logs`` returns and what a store selection reads, and what happened to
each input file (``FileResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import LLMBenchError


@dataclass
class FileResult:
    """What happened to one input."""

    path: str
    status: str  # ingested | unchanged | failed | skipped | duplicate
    parser: str | None = None
    runs: int = 0
    steps: int = 0
    warnings: list[str] = field(default_factory=list)
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
    def warnings(self) -> list[str]:
        return [f"{r.path}: {w}" for r in self.results for w in r.warnings] + [
            str(r.error) for r in self.results if r.error is not None
        ]

    def __repr__(self) -> str:
        n = [0 if t is None else len(t) for t in (self.runs, self.steps, self.events)]
        return f"<Logs: {n[0]} runs, {n[1]} steps, {n[2]} events>"
