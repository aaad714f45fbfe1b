"""Specs: the model catalog and the accelerator catalog (data files in llmbench/data).

Lookup is forgiving: case, spaces, dashes and underscores do not matter
(``GPT3 175B`` = ``gpt3-175b``), a bare size works when it is unique or a family
is given (``175b``), and accelerators are found by the names that appear in
logs and MLPerf system descriptions (``NVIDIA H100-SXM5-80GB``).
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp6", "fp4")
# the names logs, recipes and vendor tables give a precision: block-scaled MXFP8 runs
# at the FP8 rate (CUTLASS: "2x Hopper FP8", as plain FP8), NVFP4 and MXFP4 at the FP4
# rate, MXFP6 at the FP6 rate (the FP8 rate on NVIDIA Blackwell, the FP4 rate on MI355X)
_DTYPE_ALIASES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "fp32",
    "float": "fp32",
    "float8": "fp8",
    "e4m3": "fp8",
    "hybrid": "fp8",
    "mixed": "bf16",
    "mxfp8": "fp8",
    "fp8-cs": "fp8",
    "fp8-mx": "fp8",
    "fp8_cs": "fp8",
    "fp8_full": "fp8",
    "fp8-ds": "fp8",
    "nvfp4": "fp4",
    "mxfp4": "fp4",
    "float4": "fp4",
    "e2m1": "fp4",
    "mxfp6": "fp6",
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9.]", "", str(name).lower())


def dtype_key(dtype: Any) -> str | None:
    """``bfloat16`` -> ``bf16``; None when unknown."""
    if dtype is None:
        return None
    d = str(dtype).lower().strip()
    d = _DTYPE_ALIASES.get(d, d)
    return d if d in DTYPES else None


@cache
def _models() -> dict[str, dict[str, Any]]:
    with files("llmbench").joinpath("data/models.toml").open("rb") as f:
        return tomllib.load(f)


def models(extra: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The catalog, with user models (``[models.NAME]`` in a settings file) on top."""
    out = dict(_models())
    for k, v in (extra or {}).items():
        out[str(k)] = dict(v)
    return out


def find_model(
    name: Any, family: str | None = None, extra: dict[str, dict[str, Any]] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """(catalog key, shape) for a model name, or None."""
    if name is None:
        return None
    cat = models(extra)
    by_norm = {_norm(a): k for k, spec in cat.items() for a in spec.get("aliases", ())}
    by_norm.update({_norm(k): k for k in cat})
    n = _norm(name).replace("llama3.1", "llama3").replace("llama31", "llama3")
    n = n.replace("gpt175b", "gpt3175b")
    if n in by_norm:
        return by_norm[n], cat[by_norm[n]]
    if family and _norm(family) + n in by_norm:
        k = by_norm[_norm(family) + n]
        return k, cat[k]
    hits = [k for k in cat if _norm(k.rsplit("-", 1)[-1]) == n]
    if family:
        hits = [k for k in hits if cat[k].get("family") == family]
    if len(hits) == 1:
        return hits[0], cat[hits[0]]
    return None


@dataclass(frozen=True)
class Accelerator:
    key: str
    name: str
    peaks: dict[str, float]  # dense TFLOP/s per dtype
    memory_gb: float | None
    memory_bw_tbs: float | None
    source: str
    aliases: tuple[str, ...] = ()  # names as logs and MLPerf systems print them

    def peak(self, dtype: Any) -> float | None:
        """Dense peak TFLOP/s for ``dtype`` (None if the chip has no such unit)."""
        d = dtype_key(dtype)
        return self.peaks.get(d) if d else None


@cache
def _hardware() -> tuple[dict[str, Accelerator], dict[str, str]]:
    """The accelerator catalog and its alias table (normalised name -> key), read once."""
    table: dict[str, Accelerator] = {}
    aliases: dict[str, str] = {}
    with files("llmbench").joinpath("data/hardware.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            key = row["key"]
            table[key] = Accelerator(
                key=key,
                name=row["name"],
                peaks={d: float(row[d]) for d in DTYPES if row.get(d)},
                memory_gb=float(row["memory_gb"]) if row["memory_gb"] else None,
                memory_bw_tbs=float(row["memory_bw_tbs"]) if row["memory_bw_tbs"] else None,
                source=row["source"],
                aliases=tuple(a.strip() for a in row["aliases"].split(";") if a.strip()),
            )
            for name in [key, row["name"], *row["aliases"].split(";")]:
                if name.strip():
                    aliases[_norm(name)] = key
    return table, aliases


def accelerators() -> dict[str, Accelerator]:
    """The accelerator catalog by key."""
    return _hardware()[0]


def similar_accelerators(name: str, n: int = 3) -> list[str]:
    """Catalog keys of the accelerators whose names (or aliases) are closest to
    ``name``: what a misspelt name probably meant."""
    import difflib

    _, aliases = _hardware()
    close = difflib.get_close_matches(_norm(name), sorted(aliases), n=10, cutoff=0.6)
    return list(dict.fromkeys(aliases[c] for c in close))[:n]


def hardware_table() -> tuple[list[str], list[list[Any]]]:
    """(columns, rows): every catalogued accelerator with its aliases, dense peak
    TFLOP/s per dtype, memory (GB), bandwidth (TB/s) and source."""
    cols = ["key", "name", *DTYPES, "memory_gb", "memory_bw_tbs", "aliases", "source"]
    rows = [
        [a.key, a.name, *(a.peaks.get(d) for d in DTYPES), a.memory_gb, a.memory_bw_tbs]
        + ["; ".join(a.aliases), a.source]
        for a in accelerators().values()
    ]
    return cols, rows


def model_names() -> list[str]:
    """The catalogued model names."""
    return sorted(models())


def find_accelerator(name: Any) -> Accelerator | None:
    """The catalog entry for an accelerator name as logs print it, or None."""
    if name is None:
        return None
    table, aliases = _hardware()
    text = str(name)
    inside = re.findall(r"\((.*?)\)", text)  # "NVIDIA Blackwell GPU (B200-SXM-180GB)"
    for candidate in (text, re.sub(r"\(.*?\)", "", text), *inside):
        key = aliases.get(_norm(candidate))
        if key:
            return table[key]
    return None
