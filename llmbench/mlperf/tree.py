"""Where a result file sits in a published submission tree
(``<round>/<submitter>/results/<system>/<benchmark>/result_N.txt`` beside
``<submitter>/systems/<system>.json``) and the run settings that place gives
(``tree_layer``: round, submitter, system, benchmark, run index, and from the
system description the accelerator, its count, the framework, the division)."""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import NoDataError
from ..reader import expand_paths

_ROUND_RE = re.compile(r"(?:^|[_-])v?(\d+\.\d+)(?:\.\d+)?$")
_RESULT_RE = re.compile(r"^result_(\d+)\.txt$")


@dataclass(frozen=True)
class Location:
    """Where a result file sits in a submission tree."""

    root: str  # the submitter folder
    submitter: str
    system: str
    benchmark: str
    run_index: int | None
    round: str | None  # 'v4.0'


def locate(path: str) -> Location | None:
    """The submission-tree location of a result file, or None if it is not in one."""
    full = os.path.abspath(path)
    parts = full.replace(os.sep, "/").split("/")
    if len(parts) < 6 or parts[-4] != "results":
        return None
    m = _RESULT_RE.match(parts[-1])
    if m is None:
        return None
    root = "/".join(parts[:-4])
    # v0.5: <round>/<submitter>/submission/results/<system>/<benchmark>/result_N.txt
    v05 = parts[-5] == "submission" and len(parts) >= 7
    found = _ROUND_RE.search(parts[-7 if v05 else -6]) if len(parts) >= 6 else None
    return Location(
        root=root,
        submitter=parts[-6] if v05 else parts[-5],
        system=parts[-3],
        benchmark=parts[-2],
        run_index=int(m.group(1)),
        round=f"v{found.group(1)}" if found else None,
    )


def result_files(paths: list[str] | tuple[str, ...]) -> list[str]:
    """The MLPerf result files (``result_N.txt`` where a submission tree puts them) of
    ``paths`` (files, folders, globs): what the ``mlperf`` command stores, so that a
    path without results changes nothing. NoDataError when there is none."""
    sources, _ = expand_paths(paths)
    found = [src.path for src in sources if src.path != "-" and locate(src.path) is not None]
    if not found:
        raise NoDataError(
            f"no MLPerf result files found under {' '.join(map(str, paths))}",
            remedy="point at a submission tree: <submitter>/results/<system>/<benchmark>/result_N.txt",
        )
    return found


def read_system(path: str) -> dict[str, Any]:
    """A ``systems/<system>.json`` as a dict. Handles the v0.6 files that are
    ``key: {"value": ...}`` lines, with a Python-literal dict in ``entry``
    (read with ``ast.literal_eval``: data only, nothing is run)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return _with_nodes(data)
    except ValueError:
        pass
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            value = json.loads(rest).get("value")
        except (ValueError, AttributeError):
            continue
        out[key.strip()] = value
    entry = _literal_dict(out.get("entry"))
    if entry:
        nodes = _literal_dict(entry.get("nodes")) or {}
        out.setdefault("submitter", out.get("org"))
        out.setdefault("system_name", entry.get("hardware"))
        out.setdefault("framework", entry.get("framework"))
        out.setdefault("number_of_nodes", nodes.get("num_nodes"))
        out.setdefault("accelerators_per_node", nodes.get("num_accelerators"))
        out.setdefault("accelerator_model_name", nodes.get("accelerator"))
    return out


def _with_nodes(desc: dict[str, Any]) -> dict[str, Any]:
    """A description in the older layout (v0.5 ``entry.json``, v0.6 Fujitsu and
    Intel): ``nodes: [{num_nodes, accelerator, num_accelerators, ...}]`` (and
    ``"number of nodes"`` with blanks) read as the flat v0.7+ keys."""
    out = dict(desc)
    if "number of nodes" in out:
        out.setdefault("number_of_nodes", out["number of nodes"])
    nodes = [n for n in out.get("nodes") or [] if isinstance(n, dict)]
    if nodes and isinstance(out.get("nodes"), list):
        first = nodes[0]
        count = sum(_int(n.get("num_nodes")) or 0 for n in nodes)
        per_node = _int(first.get("num_accelerators"))
        name = first.get("accelerator")
        # TPU pods give the pod's chips as num_accelerators (tpuv2-512: 512 on 64 hosts)
        pod = re.search(r"-(\d+)$", str(name or ""))
        if pod and per_node == int(pod.group(1)) and count:
            per_node = per_node // count if per_node % count == 0 else None
        out.setdefault("number_of_nodes", count or None)
        out.setdefault("accelerators_per_node", per_node)
        out.setdefault("accelerator_model_name", name)
        out.setdefault("system_name", out.get("hardware"))
    return out


def _literal_dict(value: Any) -> dict | None:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return None
    try:
        found = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return found if isinstance(found, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _system_values(path: str) -> dict[str, Any] | None:
    """Run settings from a ``systems/<system>.json``; None when there is none."""
    try:
        desc = read_system(path)
    except OSError:
        return None
    values: dict[str, Any] = {}
    nodes, per_node = _int(desc.get("number_of_nodes")), _int(desc.get("accelerators_per_node"))
    if nodes is not None and per_node is not None:
        values.update(num_nodes=nodes, gpus_per_node=per_node, num_gpus=nodes * per_node)
    for key, name in (
        ("accelerator_model_name", "accelerator"),
        ("framework", "framework"),
        ("division", "division"),
        ("status", "system_status"),
        ("system_name", "system_name"),
    ):
        if isinstance(desc.get(key), str) and desc[key].strip():
            values[name] = desc[key].strip()
    return values


def scaling_factor(folder: str) -> float:
    """The ``scaling.json`` factor of a benchmark folder (1.0 without one), as the
    summarizer reads it."""
    try:
        with open(os.path.join(folder, "scaling.json"), encoding="utf-8") as f:
            value = json.load(f).get("scaling_factor", 1.0)
    except (OSError, ValueError, AttributeError):
        return 1.0
    return float(value) if isinstance(value, int | float) else 1.0


def _folder_layer(loc: Location, folder: str) -> tuple[str, dict[str, Any]]:
    """What a benchmark folder's place in the tree and its system file say (the
    same for every result file in it)."""
    values: dict[str, Any] = {
        "submitter": loc.submitter,
        "system": loc.system,
        "benchmark": loc.benchmark,
    }
    if loc.round:
        values["round"] = loc.round
    origin = f"mlperf tree {loc.root}"
    system_file = f"systems/{loc.system}.json"
    system = _system_values(f"{loc.root}/{system_file}")
    if system is None:  # v0.5: results/<system>/entry.json
        system_file = f"results/{loc.system}/entry.json"
        system = _system_values(f"{loc.root}/{system_file}")
    if system is not None:
        values.update(system)
        origin += f" + {system_file}"
    if os.path.exists(os.path.join(folder, "scaling.json")):
        values["mlperf_scaling_factor"] = scaling_factor(folder)
    return origin, values


def tree_layer(
    path: str, cache: dict[str, tuple[str, dict[str, Any]]] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """(origin, settings) for a result file inside a submission tree, else None.
    ``cache`` (folder -> its layer) reads each folder's files once, e.g. per ingest."""
    loc = locate(path)
    if loc is None:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    found = cache.get(folder) if cache is not None else None
    if found is None:
        found = _folder_layer(loc, folder)
        if cache is not None:
            cache[folder] = found
    origin, values = found
    return origin, {**values, "mlperf_run": loc.run_index}
