from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from conftest import write

from llmbench import registry
from llmbench.ingest import read_logs
from llmbench.parsing import Parser, Step


class TinyParser(Parser):
    name = "tiny"
    framework = "Tiny"

    def detect(self, head):
        return 0.9 if any(t.startswith("TINY ") for t in head) else 0.0

    def parse(self, lines):
        for no, text, rank in lines:
            if text.startswith("TINY "):
                yield Step(None, {"step_time_s": float(text.split()[1])}, no, rank)


class _Dist:
    metadata = {"Name": "tiny-plugin"}
    version = "1.2"


def _ep(name, value):
    ep = EntryPoint(name, value, registry.GROUP)
    return ep._for(_Dist()) if hasattr(ep, "_for") else ep


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.delenv("LLMBENCH_DISABLE_PLUGIN_AUTOLOAD")
    real = registry.entry_points

    def fake(group):
        return list(real(group=group)) + [
            _ep("tiny", "test_registry:TinyParser"),
            _ep("broken", "no_such_module_xyz:Parser"),
        ]

    monkeypatch.setattr(registry, "entry_points", fake)
    registry.reset()


def test_third_party_parser_is_discovered_and_broken_one_skipped(plugins, tmp_path):
    with pytest.warns(UserWarning, match="'broken' from tiny-plugin could not be loaded"):
        found = registry.available()
    assert {"mllog", "pax", "megatron_deepspeed", "tiny"} <= set(found)
    assert "broken" not in found
    assert found["tiny"].origin == "tiny-plugin 1.2 (plug-in)"
    log = write(tmp_path / "t.log", "TINY 1.5\nnoise\nTINY 2.5\n")
    logs = read_logs(str(log))
    assert logs.runs["parser"].tolist() == ["tiny"]
    assert logs.steps["step_time_s"].tolist() == [1.5, 2.5]
    assert logs.steps["step"].isna().all()  # the plug-in gives no step numbers: none made up
    assert logs.steps["line_no"].tolist() == [1, 3]


def test_autoload_can_be_disabled():
    assert set(registry.available()) == {
        "deepspeed",
        "generic",
        "gpt_neox",
        "hf_trainer",
        "maxtext",
        "megatron_deepspeed",
        "megatron_lm",
        "mllog",
        "nemo",
        "pax",
        "torchtitan",
    }


def test_generic_parser_errors_are_usage_errors(tmp_path):
    from click.testing import CliRunner
    from conftest import FIXTURES, write

    from llmbench.cli import cli

    log = FIXTURES / "generic" / "lab-trainer.log"
    bad = write(tmp_path / "bad.toml", "[generic]\nstep = '(?P<step>\\d+'\n")
    r = CliRunner().invoke(cli, ["ingest", str(log), "--settings", str(bad)])
    assert r.exit_code == 2 and "[generic] step: invalid regular expression" in r.stderr
    bad = write(
        tmp_path / "bad2.toml", "[generic]\nstep = 'x'\nunits = { step_time_s = 'fortnights' }\n"
    )
    r = CliRunner().invoke(cli, ["ingest", str(log), "--settings", str(bad)])
    assert r.exit_code == 2 and "fortnights" in r.stderr
    # without the table the format is unknown: the file is reported, nothing stored
    r = CliRunner().invoke(cli, ["ingest", str(log)])
    assert r.exit_code == 1 and "no parser recognises this file" in r.stderr
