"""Remake README.md's generated parts: the terminal transcripts from real runs (the quick
start's, on the fixtures, and, where ../shared/corpus is present, the MLPerf one) and the
"Metrics" table from the metric specs (``llmbench.metric_specs.readme_table``).
tests/test_readme.py checks the quick start's is what the command prints and the table is
the specs'. Run by hand from the project root:

    python docs/transcripts.py
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = "llmbench ingest fixtures/ --settings fixtures/settings.toml && llmbench report"
MLPERF = "llmbench mlperf training_results/ --benchmark gpt3 --plot gpt3.png"


def printed(command: str, cwd: Path) -> str:
    """What ``command`` (llmbench commands joined by &&) prints: per command its stderr,
    then stdout, as a terminal shows the two interleaved at these volumes."""
    out = f"$ {command}\n"
    for part in command.split("&&"):
        args = shlex.split(part.strip())[1:]
        done = subprocess.run(
            [sys.executable, "-m", "llmbench", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, "LLMBENCH_DB": "", "COLUMNS": "200"},
        )
        out += done.stderr + done.stdout
    return out


def replace_block(readme: str, command: str, text: str) -> str:
    """``readme`` with the ```text block that holds ``$ command`` replaced by ``text``."""
    start = readme.index(f"```text\n$ {command}\n") + len("```text\n")
    end = readme.index("```", start)
    return readme[:start] + text + readme[end:]


#: README's generated "Metrics" table runs from its header to the next section
METRICS_TABLE = ("| metric | definition | units |", "\n### FLOPs conventions")


def replace_metrics(readme: str) -> str:
    """README with its "Metrics" table (and flags) as the metric specs give them."""
    from llmbench.metric_specs import readme_table

    start = readme.index(METRICS_TABLE[0])
    end = readme.index(METRICS_TABLE[1], start)
    return readme[:start] + readme_table() + readme[end:]


def main() -> None:
    readme = replace_metrics((ROOT / "README.md").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        shutil.copytree(ROOT / "fixtures", where / "fixtures")
        text = printed(QUICK, where)
        readme = replace_block(readme, QUICK, text)
        corpus = ROOT.parent / "shared" / "corpus" / "mlperf"
        if corpus.is_dir():
            (where / "training_results").symlink_to(corpus, target_is_directory=True)
            readme = replace_block(readme, MLPERF, printed(MLPERF, where))
    (ROOT / "README.md").write_text(readme, encoding="utf-8")


if __name__ == "__main__":
    main()
