"""Which runs a scaling series joins: scaling is a model's throughput against its own at
fewer GPUs, on the same accelerator, in the same MLPerf round and the same framework. Runs
that differ in any of these are never pooled (a median over an MI300X and a GB200 run is
not an 8-GPU point of either); the table, the figures, the page and ``--calibrate`` split
them here."""

from __future__ import annotations

import math
from typing import Any

from .specs import find_accelerator

#: what a series holds fixed, in the order a label names them
SERIES = ("model", "accelerator", "round", "framework")

Key = tuple[str | None, ...]


def _text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def model_of(row: dict[str, Any]) -> str | None:
    """The model a run scales as: its name, else its parameter count (``18.4B params``,
    a shape from the log's arguments), else None."""
    if _text(row.get("model")):
        return str(row["model"])
    params = row.get("params")
    try:
        p = float(params)
    except (TypeError, ValueError):
        return None
    return f"{p / 1e9:.4g}B params" if p == p and p > 0 else None


def accelerator_of(row: dict[str, Any]) -> str | None:
    """A run's accelerator by its catalog key (``h100-sxm`` for "NVIDIA H100-SXM5-80GB"),
    else as the run names it."""
    name = _text(row.get("accelerator"))
    found = find_accelerator(name) if name else None
    return found.key if found else name


def key_of(row: dict[str, Any]) -> Key:
    """The series a run belongs to: (model, accelerator, round, framework: the parser's
    where the row names none)."""
    framework = _text(row.get("framework")) or _text(row.get("parser"))
    return (model_of(row), accelerator_of(row), _text(row.get("round")), framework)


def split(rows: list[dict[str, Any]]) -> dict[Key, list[dict[str, Any]]]:
    """``rows`` by series, sorted by model, accelerator, round and framework (unknown
    parts last)."""
    out: dict[Key, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(key_of(r), []).append(r)
    return dict(sorted(out.items(), key=lambda kv: [(v is None, v or "") for v in kv[0]]))


def label(key: Key, keys: list[Key] | None = None) -> str:
    """A series' name: its model, then each other part that differs among ``keys`` (all
    parts without ``keys``): ``llama2-70b h100-sxm v4.1``."""
    varying = [
        i
        for i in range(1, len(SERIES))
        if keys is None or len({k[i] for k in keys}) > 1 or (key[0] is None and key[i])
    ]
    parts = [key[0] or "(no model)", *(key[i] for i in varying if key[i])]
    return " ".join(parts)


def describe(key: Key, model: bool = True) -> str:
    """A series spelt out for a message: ``llama2-70b on h100-sxm, round v4.1, MLPerf``
    (without ``model``: from ``on``)."""
    name, acc, rnd, fw = key
    bits = [f"on {acc}" if acc else "on an unknown accelerator"]
    if rnd:
        bits.append(f"round {rnd}")
    if fw:
        bits.append(fw)
    return (f"{name or '(no model)'} " if model else "") + ", ".join(bits)
