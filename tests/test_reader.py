from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import zlib

import pytest
from conftest import write

from llmbench.errors import InputError
from llmbench.ingest import parse_file
from llmbench.reader import clean, expand_paths, iter_lines


@pytest.mark.parametrize(
    "raw, text, rank",
    [
        ("0: :::MLLOG {}", ":::MLLOG {}", 0),
        ("  12: iteration 3/ 10 |", "iteration 3/ 10 |", 12),
        ("[default7]: iteration    31214/  115311 |", " iteration    31214/  115311 |", 7),
        ("[rank0]:[titan] step: 1", "[titan] step: 1", 0),
        ("[1,3]<stdout>::::MLLOG {}", ":::MLLOG {}", 3),
        (
            "dgx-h100-017: I0411 15:03:26.866614 1 programs.py:366] x",
            "I0411 15:03:26.866614 1 programs.py:366] x",
            None,
        ),
        ("\x1b[31mloss: \x1b[0m 6.13", "loss:  6.13", None),
        ("Epoch 0:  10%|#  | 1/10\rEpoch 0:  20%|## | 2/10\r", "Epoch 0:  20%|## | 2/10", None),
        ("windows line\r", "windows line", None),
        (
            "I0411 15:03:26.866614 1 programs.py:366] [PAX STATUS]",
            "I0411 15:03:26.866614 1 programs.py:366] [PAX STATUS]",
            None,
        ),
        ("15:03:26 something", "15:03:26 something", None),
        ("WARNING: could not find", "WARNING: could not find", None),
        (" 0: ", "", 0),
    ],
)
def test_clean(raw, text, rank):
    assert clean(raw) == (text, rank)


@pytest.mark.parametrize("opener", [gzip.compress, bz2.compress, lzma.compress, lambda b: b])
def test_compressed_files_read_transparently_and_hash_raw_bytes(tmp_path, opener):
    raw = b"first\n0: second \xff\xfe bad utf8\n\nlast without newline"
    data = opener(raw)
    p = write(tmp_path / "log.out.x", data)
    h = hashlib.sha256()
    lines = list(iter_lines(str(p), h))
    assert [ln.no for ln in lines] == [1, 2, 3, 4]
    assert lines[1].text == "second \ufffd\ufffd bad utf8" and lines[1].rank == 0
    assert lines[3].text == "last without newline"
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()


def test_chunk_boundaries_do_not_change_lines(tmp_path):
    text = "".join(f"line {i} é ünïcode\r\n" for i in range(500))
    p = write(tmp_path / "a.log", text.encode())
    whole = list(iter_lines(str(p)))
    for size in (1, 7, 64, 1000):
        assert list(iter_lines(str(p), chunk_size=size)) == whole
    assert whole[499].text == "line 499 é ünïcode" and whole[499].no == 500


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00binary", "binary file"),
        (
            gzip.compress(
                "".join(f"iteration {i} {i * 7919 % 104729}\n" for i in range(5000)).encode()
            )[:2000],
            "gzip data ends early or breaks off",  # after its readable lines (TruncatedInput)
        ),
    ],
)
def test_bad_files_raise_input_error_with_path(tmp_path, content, message):
    p = (
        write(tmp_path / "bad.log.gz", content)
        if content[:2] == b"\x1f\x8b"
        else write(tmp_path / "bad.log", content)
    )
    with pytest.raises(InputError) as e:
        list(iter_lines(str(p)))
    assert message in str(e.value)
    assert str(p) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(iter_lines(str(tmp_path / "nope.log")))


def test_expand_paths(tmp_path):
    write(tmp_path / "d/a.log", "x")
    write(tmp_path / "d/sub/b.out.gz", gzip.compress(b"x"))
    write(tmp_path / "d/sub/system.json", "{}")
    write(tmp_path / "d/.hidden.log", "x")
    write(tmp_path / "e/notes.bin", "x")
    srcs, errs = expand_paths(
        [str(tmp_path / "d"), str(tmp_path / "d/a.log"), str(tmp_path / "*.nothing"), "-"]
    )
    names = [s.path.split("/")[-1] for s in srcs]
    assert names == ["a.log", "b.out.gz", "-"]
    # a.log is found by the walk and also named: named wins (its failure is an error)
    assert [s.explicit for s in srcs] == [True, False, True]
    assert len(errs) == 1 and "matches no file" in str(errs[0])
    _, errs = expand_paths([str(tmp_path / "e")])
    assert "holds no log files" in str(errs[0])


def test_overlong_line_is_cut_and_the_next_lines_are_intact(tmp_path, monkeypatch):
    from llmbench import reader

    monkeypatch.setattr(reader, "MAX_LINE", 100)
    p = write(tmp_path / "long.log", b"first\n" + b"x" * 1000 + b"\nthird\n" + b"y" * 500)
    lines = list(iter_lines(str(p), chunk_size=64))
    assert [(ln.no, ln.text) for ln in lines] == [
        (1, "first"),
        (2, "x" * 100),
        (3, "third"),
        (4, "y" * 100),
    ]


def test_needles_keep_only_matching_lines_with_their_numbers(tmp_path):
    text = (
        "noise\n0: iteration 1 | a\nmore noise é\n\x1b[32miteration 2\x1b[0m\r1: iteration 3\n" * 3
    )
    text += "tail iteration 9"
    p = write(tmp_path / "n.log", text.encode())
    every = list(iter_lines(str(p)))
    for size in (5, 64, 1 << 20):
        kept = list(iter_lines(str(p), chunk_size=size, needles=("iteration",)))
        assert kept == [ln for ln in every if "iteration" in ln.text]
    assert [ln.no for ln in kept] == [2, 4, 4, 6, 8, 8, 10, 12, 12, 13]


def _prefix(compressed: bytes, kind: str) -> bytes:
    """What a streaming decompressor gets out of ``compressed`` before it breaks off."""
    d = {"gzip": zlib.decompressobj(31), "bzip2": bz2.BZ2Decompressor()}.get(kind)
    d = d or lzma.LZMADecompressor()
    return d.decompress(compressed)


@pytest.mark.parametrize("bulk", [False, True], ids=["lines", "bulk"])
@pytest.mark.parametrize(
    "kind, compress",
    [("gzip", gzip.compress), ("bzip2", bz2.compress), ("xz", lzma.compress)],
    ids=["gz", "bz2", "xz"],
)
def test_a_cut_compressed_log_keeps_the_steps_before_the_cut(tmp_path, kind, compress, bulk):
    lines = [
        f" iteration {i:8d}/   20000 | consumed samples: {i * 512:12d} | elapsed time per "
        f"iteration (ms): {1000 + (i * 7919) % 997:.1f} | learning rate: {i * 1.3e-9:.3E} | "
        f"global batch size:   512 | lm loss: {11 - i * 1e-4:.6E} | loss scale: 1.0 | "
        f"number of skipped iterations:   0 | number of nan iterations:   0 |"
        for i in range(1, 9001)
    ]
    data = compress(("\n".join(lines) + "\n").encode())
    cut = data[: len(data) * 8 // 10]
    readable = _prefix(cut, kind)
    whole = readable.count(b"\n")  # complete lines before the cut (the next one is cut off)
    assert 1000 < whole < 9000
    p = write(tmp_path / f"train.log.{kind}", cut)
    parsed = parse_file(str(p), parser="megatron_deepspeed", bulk=bulk)
    steps = parsed.rows.frame("steps")
    assert steps["step"].to_list() == list(range(1, whole + 1))
    assert steps["step_time_s"][-1] == (1000 + (whole * 7919) % 997) / 1000
    (warning,) = [w for w in parsed.warnings if "before the cut" in w.message]
    assert warning.kind == "line" and f"{kind} data ends early" in warning.message
    assert parsed.sha256 == hashlib.sha256(cut).hexdigest()


def test_a_compressed_file_with_nothing_readable_is_an_error(tmp_path):
    data = gzip.compress(b"iteration 1/ 10 | elapsed time per iteration (ms): 9.0 |\n")
    p = write(tmp_path / "x.log.gz", data[:10])  # the header only
    with pytest.raises(InputError, match="corrupt or truncated gzip"):
        list(iter_lines(str(p)))
