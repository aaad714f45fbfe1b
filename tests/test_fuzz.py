"""Fuzzing (hypothesis): every parser and the reader, fed arbitrary text and bytes and
real lines mutated (truncated, doubled, glued, numbers out of range, NaN/inf, NUL,
invalid UTF-8, huge fields), never raise: they yield records or warnings. Properties:
reading a file equals reading its parts split at a line boundary; Megatron-style step
lines parse the same whole or split; parse -> store -> export keeps every value.
``--slow`` runs ten times more examples."""

from __future__ import annotations

import json
import math
import os
import tomllib
from pathlib import Path

import pytest
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmbench import registry
from llmbench.errors import InputError
from llmbench.frames import run_rows, segment
from llmbench.parsing import Config, Event, NewRun, Note, Step
from llmbench.reader import Line, iter_lines
from llmbench.rows import Rows

SLOW = bool(os.environ.get("LLMBENCH_SLOW_TESTS"))
FUZZ = settings(
    max_examples=300 if SLOW else 60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
LOGS = sorted(
    p
    for p in FIXTURES.rglob("*")
    if p.is_file() and not p.name.endswith((".json", ".toml", ".gz", ".ipynb"))
)
REAL_LINES = sorted(
    {ln for p in LOGS for ln in p.read_text(errors="replace").splitlines() if ln.strip()}
)
NUMBERS = ["nan", "NaN", "inf", "-inf", "1e308", "1e999", "-1", "0", "0.0", "-0.0",
           "99999999999999999999999", "1e-320", "", "1,234.5", "0x1F"]  # fmt: skip


def _parsers():
    from llmbench.parsers.generic import GenericParser

    out = [registry.get(name) for name in sorted(registry.available()) if name != "generic"]
    generic = tomllib.loads((FIXTURES / "settings.toml").read_text())["generic"]
    return out + [GenericParser(generic)]


@st.composite
def mutated_line(draw) -> str:
    line = draw(st.sampled_from(REAL_LINES))
    how = draw(st.sampled_from(["as is", "truncate", "double", "glue", "number", "insert", "huge"]))
    if how == "truncate":
        line = line[: draw(st.integers(0, len(line)))]
    elif how == "double":
        line = line + line
    elif how == "glue":
        other = draw(st.sampled_from(REAL_LINES))
        cut = draw(st.integers(0, len(line)))
        line = line[:cut] + other
    elif how == "number":
        import re

        nums = list(re.finditer(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", line))
        if nums:
            m = draw(st.sampled_from(nums))
            line = line[: m.start()] + draw(st.sampled_from(NUMBERS)) + line[m.end() :]
    elif how == "insert":
        at = draw(st.integers(0, len(line)))
        junk = draw(
            st.sampled_from(["\x00", "\ufffd", "\r", "\x1b[31m", "{", '"', "|", ":::MLLOG "])
        )
        line = line[:at] + junk + line[at:]
    elif how == "huge":
        at = draw(st.integers(0, len(line)))
        line = line[:at] + "9" * draw(st.integers(1000, 200_000)) + line[at:]
    return line


lines_strategy = st.lists(
    st.one_of(mutated_line(), st.text(max_size=200), st.sampled_from(REAL_LINES)),
    min_size=1,
    max_size=60,
)


def _consume(parser, texts: list[str]) -> list:
    records = list(parser.parse(Line(i + 1, t, None) for i, t in enumerate(texts)))
    for r in records:
        assert isinstance(r, Step | Event | Config | NewRun | Note), r
    rows = Rows()
    segs, _ = segment(records, rows)
    runs, run_ids, _ = run_rows(
        segs, run_key="0" * 64, source="/f.log", parser=parser.name, framework="x", layers=[]
    )
    rows.finish(run_ids)
    every = [list(r.values()) for r in runs]
    for table in ("steps", "events"):
        every += [list(r.values()) for r in rows.frame(table).to_dicts()]
    for row in every:  # every row is storable: plain values, finite floats
        for v in row:
            assert v is None or isinstance(v, str | int | float), (parser.name, row)
            if isinstance(v, float):
                assert math.isfinite(v), (parser.name, row)
    return records


@pytest.mark.parametrize("parser", _parsers(), ids=lambda p: p.name)
@FUZZ
@given(texts=lines_strategy)
def test_parsers_never_raise_on_mutated_real_lines(parser, texts):
    _consume(parser, texts)


# lines the random tests once found to break a parser, kept as fixed tests
FOUND = [
    # an ``actual seqlen`` of 4,300 digits: int() refuses it, the JSON round trip gave inf
    " iteration        3/      10 | consumed samples:          384 | consumed tokens:"
    "       786432 | elapsed time per iteration (ms): 2048.5 | learning rate: 3.000E-06 |"
    " global batch size:   128 | lm loss: 9.1E+00 | actual seqlen:  " + "9" * 4300 + " |",
    " iteration        4/      10 | actual seqlen: 1e999 | elapsed time per iteration (ms): 9.0 |",
]


@pytest.mark.parametrize("parser", _parsers(), ids=lambda p: p.name)
def test_parsers_never_raise_on_lines_found_before(parser):
    _consume(parser, [REAL_LINES[0], *FOUND, REAL_LINES[-1]])


def test_a_huge_actual_seqlen_is_no_sequence_length():
    records = _consume(registry.get("megatron_deepspeed"), FOUND)
    assert not [r for r in records if isinstance(r, Config) and "seq_len" in r.values]
    assert [r.step for r in records if isinstance(r, Step)] == [3, 4]


@pytest.mark.parametrize("parser", _parsers(), ids=lambda p: p.name)
def test_parsers_survive_a_10_mb_line(parser):
    big = ":::MLLOG " + "{" * 10_000_000 if parser.name == "mllog" else "iteration " + "7" * 10**7
    _consume(parser, [REAL_LINES[0], big, REAL_LINES[-1]])


@FUZZ
@given(data=st.binary(min_size=1, max_size=4000))
def test_reader_yields_lines_or_input_error_on_any_bytes(tmp_path, data):
    p = tmp_path / "x.log"
    p.write_bytes(data)
    try:
        lines = list(iter_lines(str(p)))
    except InputError as e:
        assert str(p) in str(e)
        return
    assert [ln.no for ln in lines] == sorted(ln.no for ln in lines)
    assert all(isinstance(ln.text, str) and "\n" not in ln.text for ln in lines)


@FUZZ
@given(
    texts=st.lists(st.one_of(st.text(max_size=80), mutated_line()), min_size=2, max_size=40),
    data=st.data(),
)
def test_reading_a_file_equals_reading_its_parts(tmp_path, texts, data):
    texts = [t.replace("\n", " ").replace("\x00", "") for t in texts]
    if not "".join(texts).strip():
        return
    k = data.draw(st.integers(1, len(texts) - 1))
    whole, a, b = tmp_path / "w.log", tmp_path / "a.log", tmp_path / "b.log"
    whole.write_text("\n".join(texts) + "\n")
    a.write_text("\n".join(texts[:k]) + "\n")
    b.write_text("\n".join(texts[k:]) + "\n")
    parts = []
    for p, offset in ((a, 0), (b, k)):
        try:
            parts += [ln._replace(no=ln.no + offset) for ln in iter_lines(str(p))]
        except InputError as e:
            assert "empty file" in str(e)
    assert list(iter_lines(str(whole))) == parts


def _iteration_line(i: int, t: float, loss: float, gnorm: float) -> str:
    """Megatron-DeepSpeed's training_log line (megatron/training.py), as printed."""
    return (
        f" iteration {i:8d}/   95367 | consumed samples: {i * 2048:12d} | "
        f"elapsed time per iteration (ms): {t:.1f} | learning rate: {1.894e-06:.3E} | "
        f"global batch size: {2048:5d} | lm loss: {loss:.6E} | loss scale: 4096.0 | "
        f"grad norm: {gnorm:.3f} | number of skipped iterations: {0:3d} | "
        f"number of nan iterations: {0:3d} |"
    )


finite = st.floats(min_value=1e-3, max_value=1e9, allow_nan=False)
step_ms = st.floats(min_value=0.1, max_value=1e9, allow_nan=False)  # prints as >= 0.1 ms


@FUZZ
@given(
    rows=st.lists(st.tuples(finite, finite, finite), min_size=2, max_size=30),
    noise=st.lists(mutated_line(), max_size=10),
    data=st.data(),
)
def test_step_lines_parse_the_same_whole_or_split(rows, noise, data):
    parser = registry.get("megatron_deepspeed")
    texts = [_iteration_line(i + 1, *r) for i, r in enumerate(rows)]
    for n in noise:  # noise that is no part of a step (the ZeRO-era flops line belongs
        if "iteration" not in n and "Effective Tera Flops" not in n:  # to the step before it)
            texts.insert(data.draw(st.integers(0, len(texts))), n)
    k = data.draw(st.integers(1, len(texts) - 1))

    def steps(part: list[str], offset: int) -> list:
        lines = [Line(offset + i + 1, t, None) for i, t in enumerate(part)]
        return [r for r in parser.parse(lines) if isinstance(r, Step)]

    assert steps(texts, 0) == steps(texts[:k], 0) + steps(texts[k:], k)


@settings(FUZZ, max_examples=150 if SLOW else 15)  # each example is a whole ingest and export
@given(rows=st.lists(st.tuples(step_ms, finite, finite), min_size=1, max_size=20))
def test_parse_store_export_round_trips_every_value(tmp_path, rows):
    from click.testing import CliRunner

    from llmbench.cli import cli

    log = tmp_path / "gen.log"
    log.write_text("\n".join(_iteration_line(i + 1, *r) for i, r in enumerate(rows)) + "\n")
    db = tmp_path / "rt.db"
    db.unlink(missing_ok=True)
    r = CliRunner().invoke(cli, ["ingest", str(log), "--db", str(db)])
    assert r.exit_code == 0, r.output
    out = CliRunner().invoke(
        cli, ["export", "--db", str(db), "--table", "steps", "--format", "json"]
    )
    exported = json.loads(out.stdout)
    assert [s["step"] for s in exported] == list(range(1, len(rows) + 1))
    for s, (t, loss, gnorm) in zip(exported, rows, strict=True):
        # exactly the printed decimal, converted once
        assert s["step_time_s"] == float(f"{t:.1f}e-3")  # the printed digits, shifted
        assert s["loss"] == float(f"{loss:.6E}")
        assert s["grad_norm"] == float(f"{gnorm:.3f}")


def _order(row: dict) -> tuple:
    return row["run_id"], row.get("step") or 0, row.get("line_no") or 0


def test_every_fixture_round_trips_through_the_store(tmp_path):
    """parse_file rows == what `export` gives back after ingest, value for value."""
    from click.testing import CliRunner

    from llmbench.cli import cli
    from llmbench.ingest import parse_file
    from llmbench.settings import Settings

    settings = Settings.build(settings_file=str(FIXTURES / "settings.toml"))
    db = tmp_path / "all.db"
    r = CliRunner().invoke(
        cli,
        ["ingest", str(FIXTURES), "--db", str(db), "--settings", str(FIXTURES / "settings.toml")],
    )
    assert r.exit_code == 0, r.output
    stored = {}
    for table in ("runs", "steps", "events"):
        out = CliRunner().invoke(
            cli, ["export", "--db", str(db), "--table", table, "--format", "json"]
        )
        stored[table] = json.loads(out.stdout)
    compared = 0
    for path in sorted(Path(p["source"]) for p in stored["runs"]):
        parsed = parse_file(str(path), settings=settings)
        ids = {run["run_id"] for run in parsed.runs}
        for table, rows in (
            ("runs", parsed.runs),
            ("steps", parsed.steps),
            ("events", parsed.events),
        ):
            back = [x for x in stored[table] if x["run_id"] in ids]
            assert len(back) == len(rows), (path, table)
            for a, b in zip(sorted(rows, key=_order), sorted(back, key=_order), strict=True):
                for col, v in a.items():
                    assert b[col] == v or (v is None and b[col] is None), (
                        path,
                        table,
                        col,
                        v,
                        b[col],
                    )
                    compared += 1
    assert compared > 5_000  # 7,361 values when written


def test_arguments_dump_cut_short_does_not_swallow_the_steps():
    """Found by the fuzzer: a dump start with no end line hid every later step."""
    parser = registry.get("megatron_deepspeed")
    texts = [
        "------------------------ arguments ------------------------",
        "  micro_batch_size ................................ 4",
        _iteration_line(1, 812.5, 6.39, 1.5),
        _iteration_line(2, 811.5, 6.21, 1.4),
    ]
    records = list(parser.parse(Line(i + 1, t, None) for i, t in enumerate(texts)))
    assert [r.step for r in records if isinstance(r, Step)] == [1, 2]
    assert any(isinstance(r, Config) and r.values.get("micro_batch_size") == 4 for r in records)
    assert any(isinstance(r, Note) and "no end line" in r.message for r in records)


def test_zero_negative_and_nan_step_times_are_missing_with_a_warning(tmp_path):
    from llmbench.ingest import parse_file

    texts = [_iteration_line(1, 812.5, 6.4, 1.5), _iteration_line(2, 0.0, 6.3, 1.4)]
    texts += [_iteration_line(3, 800.0, 6.2, 1.3).replace("(ms): 800.0", "(ms): -800.0")]
    texts += [_iteration_line(4, 800.0, 6.1, 1.2).replace("lm loss: 6.100000E+00", "lm loss: nan")]
    log = tmp_path / "t.log"
    log.write_text("\n".join(texts) + "\n")
    parsed = parse_file(str(log))
    times = [s["step_time_s"] for s in parsed.steps]
    assert times == [0.8125, None, None, 0.8]  # a (ms) field lands in seconds
    assert parsed.steps[3]["loss"] is None and json.loads(parsed.steps[3]["extra"])["loss"] == "nan"
    dropped = [(w.line, w.kind) for w in parsed.warnings if "not a positive number" in w.message]
    assert dropped == [(2, "value"), (3, "value")]
    assert any("loss nan is not a finite number" in str(w) for w in parsed.warnings)


@FUZZ
@given(
    texts=st.lists(st.one_of(st.text(max_size=80), mutated_line()), min_size=1, max_size=40),
    chunk=st.integers(1, 300),
)
def test_needle_filtered_reading_equals_filtering_every_line(tmp_path, texts, chunk):
    """The reader's bulk skip of lines without a parser's needles loses nothing."""
    texts = [t.replace("\n", " ").replace("\x00", "") for t in texts]
    if not "".join(texts).strip():
        return
    p = tmp_path / "n.log"
    p.write_text("\n".join(texts), encoding="utf-8", errors="surrogatepass")
    try:
        every = list(iter_lines(str(p)))
    except InputError:
        return
    for parser in _parsers():
        if parser.needles:
            kept = list(iter_lines(str(p), chunk_size=chunk, needles=parser.needles))
            raw = p.read_bytes().split(b"\n")
            hit = {i + 1 for i, b in enumerate(raw) if any(n.encode() in b for n in parser.needles)}
            assert kept == [ln for ln in every if ln.no in hit], parser.name


def test_needles_change_no_parse_of_any_fixture_or_corpus_log():
    """A parser's needles name every line it reads: the same records with and without."""
    from llmbench.ingest import choose_parser

    corpus = FIXTURES.parent.parent / "shared" / "corpus"
    logs = LOGS + sorted(corpus.rglob("*.log")) + sorted(corpus.rglob("result_*.txt"))[:20]
    checked = 0
    for path in logs:
        try:
            parser = choose_parser(str(path))
        except InputError:
            continue
        if not parser.needles:
            continue
        fast = list(parser.parse(iter_lines(str(path), needles=parser.needles)))
        assert fast == list(parser.parse(iter_lines(str(path)))), path
        checked += 1
    assert checked >= 8


def test_number_edge_cases():
    """Found by the fuzzer: more than 4,300 digits made int() raise."""
    from llmbench.parsing import number

    assert number("9" * 5000) == math.inf and number("-inf") == -math.inf
    assert number("12") == 12 and isinstance(number("12"), int)
    assert number("+5") == 5 and isinstance(number("+5"), int) and number("-7") == -7
    assert number("1e3") == 1000.0 and isinstance(number("1e3"), float)
    assert number("1,234.5") == 1234.5 and number("42%") == 42
    assert number("-") is None and number("") is None and number("0x1F") is None
    assert math.isnan(number("nan"))


ITER_PIECES = [
    "iteration",
    "iterations",
    " ",
    "   ",
    "12",
    "/",
    "|",
    " lm loss: 1.5E+00 ",
    "[2024-05-01 00:00:01]",
    "[2024-05-01 00:00:01.25] ",
    "[",
    "]",
    "x",
    "(after 3 iterations) memory (MB)",
    "elapsed time per iteration (ms): 812.5 ",
]


@FUZZ
@given(text=st.lists(st.sampled_from(ITER_PIECES), max_size=24).map("".join))
def test_anchored_iteration_match_equals_the_search_it_replaced(text):
    """The fast path (anchored at each occurrence of the word) finds what a search
    from 48 characters before the first occurrence found."""
    from llmbench.parsers.megatron_deepspeed import ITER_RE, iteration_match

    at = text.find("iteration")
    old = ITER_RE.search(text, max(0, at - 48)) if at >= 0 else None
    new = iteration_match(text)
    assert (old and (old.span(), old.groupdict())) == (new and (new.span(), new.groupdict()))


@FUZZ
@given(
    fields=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "consumed samples",
                    "elapsed time per iteration (ms)",
                    "lm loss",
                    "grad norm",
                    "num zeros",
                    "global batch size",
                    "some new label",
                    "lm loss",
                ]
            ),
            st.one_of(
                st.integers(-(10**20), 10**20).map(str),
                st.floats(allow_nan=True, allow_infinity=True).map(repr),
                st.sampled_from(["1,234", "12.0", "-", "", "nan", "1e999", " 7 ", "0x1"]),
            ),
        ),
        max_size=10,
    ),
    cut=st.booleans(),
)
def test_fast_field_split_equals_the_full_rules(fields, cut):
    """parse_fields' per-shape fast path gives what the full rules give."""
    from llmbench.parsers.megatron_deepspeed import _parse_fields_slowly, parse_fields

    rest = "".join(f" {label}: {value} |" for label, value in fields)
    if cut and rest:
        rest = rest[:-1]
    fast, slow = parse_fields(rest), _parse_fields_slowly(rest)
    assert repr(fast) == repr(slow)  # repr: NaN == NaN
