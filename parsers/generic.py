"""A parser driven by the settings file, for a lab's home-grown format (no code).

    [generic]
    step = 'step (?P<step>\\d+) took (?P<step_time_s>[\\d.]+) ms, loss (?P<loss>[\\d.]+)'
    config = ['world size (?P<num_gpus>\\d+)']        # optional: run settings
    units = { step_time_s = "ms" }                      # optional: ms, s, us, min, %

Named groups are canonical column names (``step``, ``step_time_s``, ``loss``,
``tflops_per_gpu_logged``, ...; any other name is kept in ``extra``). A line may
match several ``step`` patterns; without a ``step`` group steps are numbered in
order. Patterns use the ``regex`` module with a per-line time limit, so a
pathological pattern fails with a message instead of hanging.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import regex

from llmbench.errors import SettingsError
from llmbench.parsing import Config, Field, Note, Parser, Record, Step, convert, literal
from llmbench.reader import Line

UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "min": 60.0, "h": 3600.0, "%": 0.01, "1": 1.0}
TIMEOUT_S = 1.0  # per line and pattern


def _compile(pattern: Any, where: str) -> regex.Pattern:
    if not isinstance(pattern, str):
        raise SettingsError(f"[generic] {where}: a pattern must be a string, not {pattern!r}")
    try:
        return regex.compile(pattern)
    except regex.error as e:
        raise SettingsError(f"[generic] {where}: invalid regular expression: {e}") from None


class GenericParser(Parser):
    name = "generic"
    framework = "user-defined"
    description = "named-group regexes from the settings file's [generic] table"

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        spec = spec or {}
        unknown = set(spec) - {"step", "config", "units"}
        if unknown:
            raise SettingsError(
                f"[generic]: unknown key(s) {', '.join(sorted(unknown))}",
                remedy="use step, config and units",
            )
        steps = spec.get("step", [])
        configs = spec.get("config", [])
        self.steps = [_compile(p, "step") for p in ([steps] if isinstance(steps, str) else steps)]
        self.configs = [
            _compile(p, "config") for p in ([configs] if isinstance(configs, str) else configs)
        ]
        self.fields: dict[str, Field] = {}
        for column, unit in (spec.get("units") or {}).items():
            if unit not in UNITS:
                raise SettingsError(
                    f"[generic] units: {column} = {unit!r} is not one of {', '.join(UNITS)}"
                )
            self.fields[column] = Field(column, float, UNITS[unit])

    def detect(self, head: Sequence[str]) -> float:
        # configured by the user for this job: wins wherever its step pattern matches
        for text in head:
            for p in self.steps:
                try:
                    if p.search(text, timeout=TIMEOUT_S):
                        return 0.99
                except TimeoutError:
                    return 0.0
        return 0.0

    def parse(self, lines: Iterable[Line]) -> Iterator[Record]:
        if not self.steps:
            yield Note(
                "no [generic] step pattern in the settings file: nothing to read", kind="format"
            )
            return
        for no, text, rank in lines:
            for p in self.configs:
                m = self._search(p, text)
                if isinstance(m, Note):
                    yield m._replace(line_no=no)
                elif m:
                    yield Config(
                        {k: literal(v) for k, v in m.groupdict().items() if v is not None}, no
                    )
            for p in self.steps:
                m = self._search(p, text)
                if isinstance(m, Note):
                    yield m._replace(line_no=no)
                    continue
                if not m:
                    continue
                groups = {k: v for k, v in m.groupdict().items() if v is not None}
                step = groups.pop("step", None)
                values = {}
                for k, v in groups.items():
                    x = convert(v, self.fields.get(k, Field(k)))
                    values[k] = x if x is not None else v
                ok = step and step.isascii() and step.isdigit() and len(step) <= 18
                yield Step(int(step) if ok else None, values, no, rank)
                break

    @staticmethod
    def _search(p: regex.Pattern, text: str):
        try:
            return p.search(text, timeout=TIMEOUT_S)
        except TimeoutError:
            return Note(
                f"pattern {p.pattern!r} took over {TIMEOUT_S} s on this line: skipped",
                kind="parser",
            )
