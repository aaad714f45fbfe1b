"""The bulk engine gives exactly what the parsers' Python gives: the same runs,
steps, events and warnings, value for value and type for type, on every fixture,
every corpus log and generated logs full of what real ones hold (rank copies,
launcher prefixes, ANSI colours, ``\\r`` states, cut-off and glued lines, numbers
that are no plain numbers)."""

from __future__ import annotations

import json
import math
import os
import random

import pytest
from conftest import FIXTURES, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmbench import engine
from llmbench.errors import LLMBenchError
from llmbench.ingest import parse_file
from llmbench.settings import Settings

SETTINGS = Settings.build(settings_file=str(FIXTURES / "settings.toml"))


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN, and of the same type (1 is not 1.0)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _read(path, engine: str):
    p = parse_file(str(path), settings=SETTINGS, bulk=engine == "bulk")
    return p.runs, p.steps, p.events, p.warnings


def assert_same(path) -> tuple[int, int]:
    """Both engines on ``path``: identical output; returns (steps, events)."""
    bulk, python = _read(path, "bulk"), _read(path, "python")
    for name, x, y in zip(("runs", "steps", "events", "warnings"), bulk, python, strict=True):
        assert len(x) == len(y), (path, name, len(x), len(y))
        if name == "warnings":
            assert x == y, path
            continue
        for i, (rx, ry) in enumerate(zip(x, y, strict=True)):
            bad = {k: (rx[k], ry.get(k)) for k in rx if not _same(rx[k], ry.get(k))}
            assert not bad and rx.keys() == ry.keys(), (path, name, i, bad)
    return len(bulk[1]), len(bulk[2])


LOGS = sorted(
    p for p in FIXTURES.rglob("*") if p.is_file() and not p.name.endswith((".json", ".toml"))
)


@pytest.mark.parametrize("path", LOGS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixtures_read_the_same_in_bulk(path):
    assert_same(path)


@pytest.mark.corpus
def test_corpus_logs_read_the_same_in_bulk(corpus):
    logs = sorted((corpus / "logs").rglob("*.log")) + sorted((corpus / "mlperf").rglob("*.txt"))
    assert logs
    steps = 0
    for path in logs:
        steps += assert_same(path)[0]
    assert steps > 0


# -- generated Megatron logs -----------------------------------------------------

LABELS = [
    ("consumed samples", "{s:12d}"),
    ("consumed tokens", "{t:12d}"),
    ("elapsed time per iteration (ms)", "{ms}"),
    ("learning rate", "{lr:.3E}"),
    ("global batch size", "{b:5d}"),
    ("lm loss", "{loss}"),
    ("loss scale", "1.0"),
    ("grad norm", "{gn}"),
    ("num zeros", "{nz}"),
    ("number of skipped iterations", "{sk:3d}"),
    ("number of nan iterations", "  0"),
    ("samples per second", "{sps:.3f}"),
    ("TFLOPs", "{tf:.2f}"),
]
ODD_NUMBERS = [
    "nan",
    "inf",
    "-0",
    "-0.0",
    "0",
    "1,234.5",
    "1e999",
    "+5",
    ".5",
    "5.",
    "007",
    "1_0",
    "-",
    "",
    "12.0",
    " 7 ",
    "1.5E+03",
    "99999999999999999999",
    "\u0661\u0662",
]
JUNK = [
    " ",
    "\t",
    "\u00a0",
    "|",
    ":",
    "\x1f",
    "\r",
    "\x1b[1m",
    "-",
    ".",
    "e",
    "0",
    "\ufffd",
    "\u0663",
    "||",
    " |",
    ": ",
    "\x1c",
    "iteration 5/ 9 |",
]
PREFIXES = [
    "",
    "0: ",
    "3: ",
    "[default1]:",
    "[rank2]: ",
    "[1,5]<stdout>:",
    "node12: ",
    "  7: ",
    "host-a1: 2: ",
]
NOISE = [
    "NCCL INFO Channel 00/32 :    0 1",
    "[Rank 0] (after 1 iterations) memory (MB) | allocated: 1.5 | max allocated: 2.0 | reserved: 3.0 | max reserved: 4.0",
    "saving checkpoint at iteration 10 to /ckpt",
    "validation loss at iteration 10 | lm loss value: 2.5 | lm loss PPL: 12.2 |",
    "------------------------ arguments ------------------------",
    "  num_layers ...................................... 24",
    "  hidden_size ..................................... 2048",
    "-------------------- end of arguments ---------------------",
    "using world size: 8, data-parallel-size: 8, tensor-model-parallel size: 1, pipeline-model-parallel size: 1 ",
]


def _line(rng: random.Random, step: int, odd: bool) -> str:
    v = {
        "s": step * 8,
        "t": step * 8 * 2048,
        "ms": f"{rng.uniform(800, 900):.1f}",
        "lr": rng.uniform(1e-5, 1e-4),
        "b": 8,
        "loss": f"{rng.uniform(2, 9):.6E}",
        "gn": f"{rng.uniform(0, 3):.3f}",
        "nz": rng.choice(["0.0", "0", "12"]),
        "sk": 0,
        "sps": rng.uniform(1, 9),
        "tf": rng.uniform(90, 180),
    }
    labels = list(LABELS)
    if rng.random() < 0.2:
        labels.insert(rng.randrange(len(labels)), ("some new label", "{nz}"))
    if rng.random() < 0.1:
        labels.pop(rng.randrange(len(labels)))
    fields = []
    for label, fmt in labels:
        value = fmt.format(**v)
        if odd and rng.random() < 0.15:
            value = rng.choice(ODD_NUMBERS)
        fields.append(f" {label}: {value} |")
    head = f" iteration {step:8d}/ 100000 |"
    if rng.random() < 0.3:
        head = f"[2024-04-06 02:58:{step % 60:02d}]" + head
    text = head + "".join(fields)
    if odd:
        k = rng.random()
        if k < 0.05:
            text = text[: rng.randrange(len(text))]  # cut off
        elif k < 0.08:
            text = (
                text[: rng.randrange(len(text))] + f" iteration {step + 1}/ 100000 | lm loss: 1.0 |"
            )
        elif k < 0.11:
            text = text.replace("|", "| \x1b[32m", 1) + "\x1b[0m"
        elif k < 0.13:
            text = text.replace(" |", ":|", 1)
        elif k < 0.15:
            text = "foo " + text
    return text


@st.composite
def megatron_logs(draw):
    seed = draw(st.integers(0, 2**32))
    rng = random.Random(seed)
    n = draw(st.integers(1, 60))
    ranks = draw(st.integers(1, 4))
    odd = draw(st.booleans())
    lines = []
    step = draw(st.integers(1, 5))
    for _ in range(n):
        if rng.random() < 0.1:
            lines.append(rng.choice(NOISE))
        if rng.random() < 0.05:
            step = max(1, step - rng.randrange(1, 4))  # a restart or a counter going back
        text = _line(rng, step, odd)
        for r in rng.sample(range(8), ranks):
            p = rng.choice(PREFIXES) if ranks > 1 else rng.choice(PREFIXES[:2])
            lines.append(p.replace("0", str(r), 1) + text if "0" in p else p + text)
        if odd and rng.random() < 0.05:
            lines.append(f"progress {step}\rdone " + text)
        step += rng.choice([1, 1, 1, 2, 10])
    if draw(st.booleans()):
        rng.shuffle(lines[: len(lines) // 3])  # ranks interleaved
    if odd:  # characters that no format prints but a damaged log holds
        for _ in range(draw(st.integers(0, 6))):
            k = rng.randrange(len(lines))
            at = rng.randrange(len(lines[k]) + 1)
            lines[k] = lines[k][:at] + rng.choice(JUNK) + lines[k][at:]
    eol = "\r\n" if draw(st.integers(0, 9)) == 0 else "\n"
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    data = text.encode()
    if odd and draw(st.integers(0, 4)) == 0:
        at = rng.randrange(len(data) + 1)
        data = data[:at] + rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\x80"]) + data[at:]
    return data


# the generated-log properties: examples from $LLMBENCH_ENGINE_EXAMPLES (more by hand)
GENERATED = settings(
    max_examples=int(os.environ.get("LLMBENCH_ENGINE_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@GENERATED
@given(data=megatron_logs(), small=st.booleans())
def test_generated_megatron_logs_read_the_same_in_bulk(tmp_path, monkeypatch, data, small):
    if small:  # many blocks: copies, restarts and Python-read blocks across their edges
        monkeypatch.setattr(engine, "BLOCK_SIZE", 700)
    path = write(tmp_path / "gen.log", data)
    try:
        assert_same(path)
    except LLMBenchError as e:  # a file that cannot be read fails alike in both
        with pytest.raises(type(e)) as python:
            _read(path, "python")
        assert str(python.value) == str(e)


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(
        st.sampled_from(
            [
                b"a",
                b"\n",
                b"\r",
                b"\r\n",
                b"\x1f",
                b"\x1e",
                b"\xff",
                b"\xc3\xa9",
                b" ",
                b"\x00",
                b'"',
                b"iteration",
                b"\t",
                b"\xe2\x82",
            ]
        ),
        max_size=60,
    ).map(b"".join)
)
def test_polars_splits_a_block_into_the_lines_python_reads(data):
    """Where the engine splits a block with polars, it gives the lines Python's
    decoding gives, cleaned alike (else it hands the block to the Python reader)."""
    from llmbench.reader import segments

    lines = engine._split(data)
    if lines is None:
        return
    python = data.decode("utf-8", "replace").split("\n")
    assert len(lines) == len(python)
    assert [segments(t) for t in lines.to_list()] == [segments(t) for t in python]


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-(10**25), 10**25).map(str),
        st.from_regex(
            r"[ +\-]?[0-9]{0,20}(\.[0-9]{0,20})?([eE][+\-]?[0-9]{1,3})?[ ]?", fullmatch=True
        ),
        st.text(alphabet="0123456789.eE+-_ ,%\u0663\u00a0", max_size=12),
    )
)
def test_polars_reads_a_number_as_python_does_or_not_at_all(text):
    """A value the engine decodes equals what the parser's Python reads from it."""
    import polars as pl

    from llmbench.parsing import Field, convert, raw_number, scaled_text

    v = pl.Series([text]).str.strip_chars(" ")
    f = v.cast(pl.Float64, strict=False)[0]
    if f is not None and math.isfinite(f) and not (f == 0 and text.strip(" ").startswith("-0")):
        assert convert(text, Field("x")) == f and repr(convert(text, Field("x"))) == repr(f)
    i = v.cast(pl.Int64, strict=False)[0]
    if i is not None:
        assert convert(text, Field("x", int)) == i and type(convert(text, Field("x", int))) is int
    s = (v + "e-3").cast(pl.Float64, strict=False)[0]
    if s is not None and math.isfinite(s):
        assert scaled_text(text, 1e-3) == s
    if v.str.contains(engine.JSON_NUMBER)[0] and f is not None and math.isfinite(f):
        assert raw_number(text) == text.strip(" ")


# -- generated MLPerf logs -------------------------------------------------------

MLLOG_VALUES = [
    {"train_step_timing in s": 13.27},
    {"train_step_timing": 1.41968, "reduced_train_loss": 2.898},
    {"train_step_time": 2, "train_loss": 3},
    {"train_step_timing in s": 13.2, "throughput": 5154997.2},
    {"throughput": 123.5},
    {"train_step_timing": True},
    {"train_step_timing": -1.0},
    {"train_step_timing": 0},
    {"train_step_timing": 1.5, "reduced_train_loss": None},
    {"train_step_timing": "fast"},
    [1, 2],
    None,
]
MLLOG_META = [
    {"file": "cb.py", "lineno": 80},
    {"file": "cb.py", "lineno": 80, "step": 4194304},
    {"step": 2048 * 3},
    {"step": 7, "samples_count": 1152},
    {"step": 7.5},
    {"step": True},
    {"step": 99999999999999999999},
    {"samples_count": 1152.0},
    {},
    None,
]


@st.composite
def mllog_logs(draw):
    rng = random.Random(draw(st.integers(0, 2**32)))
    lines = []
    t = 1727700000000
    for key, value in (
        ("submission_benchmark", "gpt3"),
        ("global_batch_size", 2048),
        ("max_sequence_length", 2048),
        ("run_start", None),
    ):
        if rng.random() < 0.8:
            lines.append(
                json.dumps(
                    {
                        "namespace": "",
                        "time_ms": t,
                        "event_type": "POINT_IN_TIME",
                        "key": key,
                        "value": value,
                        "metadata": {"file": "cb.py"},
                    }
                )
            )
    for _ in range(draw(st.integers(1, 50))):
        t += rng.randrange(1000, 20000)
        k = rng.random()
        key = (
            "tracked_stats"
            if k < 0.7
            else rng.choice(
                ["eval_accuracy", "cache_clear", "block_start", "opt_base_learning_rate", "seed"]
            )
        )
        rec = {
            "namespace": "",
            "time_ms": rng.choice([t, t, t, float(t) + 0.5, None, "x"]),
            "event_type": rng.choice(["POINT_IN_TIME", "INTERVAL_START", None, 7]),
            "key": key,
            "value": rng.choice(MLLOG_VALUES) if key == "tracked_stats" else rng.random(),
            "metadata": rng.choice(MLLOG_META),
        }
        if rng.random() < 0.1:
            del rec[rng.choice(list(rec))]
        text = json.dumps(rec)
        if rng.random() < 0.05:
            text = text[: rng.randrange(len(text))]  # cut off: malformed
        for r in rng.sample(range(4), draw(st.integers(1, 3))):
            lines.append(rng.choice(["", f"{r}: ", f"[{r},0]<stdout>:", "  "]) + ":::MLLOG " + text)
        if rng.random() < 0.2:
            lines.append(f"[NeMo I 2024-09-30 12:00:00 nemo_logging:349] Epoch 0: : {t}it")
        if rng.random() < 0.05:
            lines.append(
                f':::MLL {t / 1000:.3f} eval_accuracy: {{"value": 0.5, "metadata": {{"epoch_num": 1}}}}'
            )
    if rng.random() < 0.8:
        lines.append(
            json.dumps(
                {
                    "namespace": "",
                    "time_ms": t + 5,
                    "event_type": "INTERVAL_END",
                    "key": "run_stop",
                    "value": None,
                    "metadata": {"status": "success"},
                }
            ).join([":::MLLOG ", ""])
        )
    return ("\n".join(lines) + "\n").encode()


@GENERATED
@given(data=mllog_logs(), small=st.booleans())
def test_generated_mllog_logs_read_the_same_in_bulk(tmp_path, monkeypatch, data, small):
    if small:
        monkeypatch.setattr(engine, "BLOCK_SIZE", 900)
    path = write(tmp_path / "result_0.txt", data)
    try:
        assert_same(path)
    except LLMBenchError as e:
        with pytest.raises(type(e)) as python:
            _read(path, "python")
        assert str(python.value) == str(e)
