"""Safety: nothing from a log or a settings file is run, and nothing a log names is
opened. No eval/exec/pickle/shell in the package; settings are data; plug-ins load
only through the ``llmbench.parsers`` entry-point group."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

from conftest import ROOT, write

FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_OS = {"system", "popen", "execv", "execvp", "execl", "spawnl", "spawnv", "startfile"}
FORBIDDEN_MODULES = {"pickle", "marshal", "shelve", "subprocess", "dill", "yaml"}


def _sources() -> list[Path]:
    return sorted((ROOT / "llmbench").rglob("*.py")) + sorted((ROOT / "parsers").rglob("*.py"))


def _findings(text: str, path: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(text, path)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            found += [
                f"{path}:{node.lineno} imports {n}"
                for n in names
                if n.split(".")[0] in FORBIDDEN_MODULES
            ]
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_BUILTINS:
                found.append(f"{path}:{node.lineno} calls {f.id}")
            elif (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and f.value.id == "os"
                and f.attr in FORBIDDEN_OS
            ):
                found.append(f"{path}:{node.lineno} calls os.{f.attr}")
        elif isinstance(node, ast.keyword) and node.arg == "shell":
            found.append(f"{path}:{node.value.lineno} passes shell=")
    return found


def test_the_check_sees_what_it_looks_for():
    bad = "import pickle\nfrom subprocess import run\neval('1')\nimport os\nos.system('x')\nf(shell=True)\n"
    assert len(_findings(bad, "bad.py")) == 5


def test_no_eval_pickle_or_shell_in_the_package():
    found = [f for path in _sources() for f in _findings(path.read_text(), str(path))]
    assert found == [], found
    assert len(_sources()) > 20


def test_settings_and_set_values_are_data_not_code(tmp_path):
    from click.testing import CliRunner

    from llmbench.cli import cli

    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    settings = write(tmp_path / "s.toml", f'model = "{code}"\n[files."*.log"]\ndtype = "{code}"\n')
    log = write(
        tmp_path / "a.log", (ROOT / "fixtures/megatron_deepspeed/seed002-20b-fp16.log").read_text()
    )
    r = CliRunner().invoke(
        cli, ["ingest", str(log), "--settings", str(settings), "--set", f"tp={code}"]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["report", "--format", "json"])
    assert not marker.exists()
    assert r.exit_code == 0 and code in r.stdout  # kept as a string


def test_paths_named_in_logs_are_never_opened(tmp_path):
    """An audit hook records every file opened while logs that name other files
    (MLLOG metadata, Megatron data paths, checkpoints) are read."""
    from llmbench.ingest import parse_file

    bait = tmp_path / "secret"
    bait.mkdir()
    named = [bait / f"f{i}" for i in range(4)]
    for p in named:
        p.write_text("do not read\n")
    log = write(
        tmp_path / "names.log",
        ":::MLLOG "
        + '{"namespace": "", "time_ms": 1, "event_type": "POINT_IN_TIME", "key": "submission_org",'
        + f' "value": "{named[0]}", "metadata": {{"file": "{named[1]}", "lineno": 1}}}}\n'
        + f"  data_path ....................................... ['{named[2]}']\n"
        + f" loading checkpoint from {named[3]} at iteration 100\n",
    )
    opened: list[str] = []
    recording = [True]

    def hook(event, args):
        if (
            recording[0]
            and event == "open"
            and args
            and isinstance(args[0], str | bytes | os.PathLike)
        ):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)  # cannot be removed: switched off below
    try:
        parse_file(str(log))
    finally:
        recording[0] = False
    assert opened, "the audit hook saw nothing"
    assert not [p for p in opened if str(bait) in p], opened
    assert str(Path(log).resolve()) in {str(Path(p).resolve()) for p in opened}
