"""The import graph runs one way: each module imports only from its own stage or
the stages below it (module-level and function-level imports alike), and no
module imports itself back through others. A new module must be given a stage
here (and in docs/ARCHITECTURE.md): the test names it until it is."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

# lowest first: a module may import from its stage and the stages above it in this list
STAGES = [
    (
        "base",
        {
            *("llmbench", "errors", "columns", "formats", "specs", "parts", "logs"),
            *("mlperf.rules", "shapes", "views"),
        },
    ),
    ("reading", {"reader"}),
    ("parsing", {"parsing"}),
    ("bulk and rows", {"engine", "registry", "rows"}),
    ("parsers, segmentation, settings", {"frames", "settings", "parsers.*"}),
    ("places and clusters", {"distributed", "mlperf.tree", "mlperf.scoring", "mlperf.metrics"}),
    ("store", {"store"}),
    ("metrics", {"flops", "metric_specs", "metrics", "derivation", "series"}),
    ("figures", {"plots"}),
    ("MLPerf summary", {"mlperf", "mlperf.summary", "mlperf.figure"}),
    ("ingest and report", {"ingest", "report"}),
    ("comparison, scaling, the HTML page", {"comparison", "scalability", "planning", "page"}),
    ("command line", {"cli"}),
    ("entry point", {"__main__"}),
]


def _modules() -> dict[str, Path]:
    """Every module of the installed package (``llmbench.parsers`` included) by name."""
    out = {}
    for package in ("llmbench", "llmbench.parsers"):
        (folder,) = importlib.util.find_spec(package).submodule_search_locations
        for path in sorted(Path(folder).rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if package == "llmbench" and parts[:1] == ["parsers"]:
                continue
            out[".".join([package, *parts])] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its code."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        else:
            continue
        for t in targets:
            while t and t not in known:  # llmbench.store.Store -> llmbench.store
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _stage(name: str) -> int:
    short = name.removeprefix("llmbench.") if name != "llmbench" else "llmbench"
    for k, (_, members) in enumerate(STAGES):
        if short in members or any(m.endswith(".*") and short.startswith(m[:-1]) for m in members):
            return k
    raise AssertionError(f"{name} has no stage: place it in STAGES and docs/ARCHITECTURE.md")


def test_every_import_runs_down_the_stages_and_none_comes_back():
    mods = _modules()
    assert {"llmbench.store", "llmbench.parsers.mllog", "llmbench.mlperf.rules"} <= set(mods)
    graph = {name: _imports(name, path, set(mods)) for name, path in mods.items()}
    upward = [
        f"{a} ({STAGES[_stage(a)][0]}) imports {b} ({STAGES[_stage(b)][0]})"
        for a, deps in sorted(graph.items())
        for b in sorted(deps)
        if _stage(b) > _stage(a)
    ]
    assert not upward, "imports that run back up:\n" + "\n".join(upward)
    # within a stage, no circle either
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import circle: " + " -> ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_the_check_sees_function_level_and_relative_imports(tmp_path):
    """The graph reader finds what the rules are about (else the test above passes
    on an empty graph)."""
    mods = _modules()
    known = set(mods)
    assert "llmbench.store" in _imports("llmbench.ingest", mods["llmbench.ingest"], known)
    assert "llmbench.errors" in _imports(
        "llmbench.mlperf.figure", mods["llmbench.mlperf.figure"], known
    )
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    from .cli import cli\n")
    assert _imports("llmbench.store", fake, known) == {"llmbench.cli"}
    assert _stage("llmbench.cli") > _stage("llmbench.store")


MAX_LINES = 60  # a function's code, its docstring not counted


def test_no_function_is_longer_than_a_screen():
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = node.body[0]
            doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            start = first.end_lineno + 1 if doc and len(node.body) > 1 else node.lineno
            if node.end_lineno - start + 1 > MAX_LINES:
                long.append(f"{name}.{node.name}: {node.end_lineno - start + 1} lines")
    assert not long, "split these:\n" + "\n".join(long)


def test_every_report_column_is_defined_once_and_documented():
    """The report's columns are the run's own (``metrics.IDENTITY``, all stored run
    columns) then ``metric_specs.METRIC_COLUMNS``, each with a unit and a meaning, and
    README's "Metrics" names every one of them."""
    from llmbench.columns import REPORT_VIEW, RUN_COLUMNS, RUN_VIEW
    from llmbench.metric_specs import METRIC_COLUMNS
    from llmbench.metrics import IDENTITY, run_metrics

    run = {
        "run_id": "x",
        "config": "{}",
        "num_gpus": 8,
        "global_batch_size": 8,
        "seq_len": 2048,
        "model": "gpt3-175b",
        "accelerator": "h100-sxm",
        "dtype": "bf16",
        "tp": 8,
        "pp": 1,
        "dp": 1,
    }
    steps = [{"step": i, "step_time_s": 1.0, "tflops_per_gpu_logged": 100.0} for i in range(9)]
    got = list(run_metrics(run, steps, [], tokens=1e12))
    assert got == [*IDENTITY, *METRIC_COLUMNS]
    assert set(IDENTITY) <= set(RUN_COLUMNS) and set(RUN_VIEW) <= set(RUN_COLUMNS)
    assert set(REPORT_VIEW) <= set(got)
    assert all(len(v) == 2 and v[1] for v in METRIC_COLUMNS.values())
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    metrics = readme[readme.index("## Metrics") : readme.index("## Figures")]
    undocumented = [c for c in METRIC_COLUMNS if f"`{c}`" not in metrics]
    assert not undocumented, f"README's Metrics does not define {undocumented}"


def test_imports_inside_functions_say_why():
    """A module of the package imported inside a function (not at the top) carries
    its reason on the line (the command line's modules load per command)."""
    silent = []
    for name, path in _modules().items():
        if name == "llmbench.cli":
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for imp in ast.walk(node):
                ours = isinstance(imp, ast.ImportFrom) and (
                    imp.level or (imp.module or "").startswith("llmbench")
                )
                if ours and "#" not in lines[imp.lineno - 1]:
                    silent.append(f"{name}:{imp.lineno}: {lines[imp.lineno - 1].strip()}")
    assert not silent, "say why these load late (or import them at the top):\n" + "\n".join(silent)


def test_no_function_is_too_tangled():
    """Cyclomatic complexity at most 15 (``[tool.ruff.lint.mccabe]``), checked here
    so that CI, which runs the tests, keeps it."""
    import subprocess
    import sys

    pytest.importorskip("ruff")
    root = Path(__file__).parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "C901", "llmbench", "parsers"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
