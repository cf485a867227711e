"""The sequence format: loading, validation (one-line errors), saving, and the refusal rule."""

from __future__ import annotations

import json
import os

import pytest

from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.sequence import Call, File, Sequence, SequenceError

P = 4096
RW = S.PROT_READ | S.PROT_WRITE
ANON_FIXED = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED

GOOD_TOML = """\
window_pages = 32

[[files]]
name = "f"
size = 0x4000

[[calls]]
op = "mmap"
addr = 0
length = 0x4000
prot = "PROT_READ|PROT_WRITE"
flags = "MAP_SHARED|MAP_FIXED"
file = "f"

[[calls]]
op = "store"
addr = 0x1000
byte = 7

[[calls]]
op = "munmap"
addr = 0x1000
length = 0xffffffffffffffff
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def one_line_error(path) -> str:
    """The loader's one-line message, which starts with the path as given; returned without
    the path's folder."""
    with pytest.raises(SequenceError) as ei:
        S.load(path)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(str(path)), msg
    return msg[len(os.path.dirname(str(path))) + 1:]


def test_load_toml(tmp_path):
    seq = S.load(write(tmp_path, "seq.toml", GOOD_TOML))
    assert seq.window_pages == 32
    assert seq.files == (File("f", 0x4000),)
    assert seq.calls[0] == Call.mmap(0, 0x4000, RW, S.MAP_SHARED | S.MAP_FIXED, "f", 0)
    assert seq.calls[1] == Call.store(0x1000, 7)
    assert seq.calls[2] == Call.munmap(0x1000, 2**64 - 1)


@pytest.mark.parametrize("ext", ["toml", "json"])
def test_save_load_round_trip(tmp_path, ext):
    seq = Sequence(window_pages=16, files=(File("a", 100), File("b.x-1", 0)), calls=(
        Call.mmap(-P, 2**64 - 1, 0x3 | 0x01000000, ANON_FIXED | 0x400000000, None, 0),
        Call.mmap(5, 1, 0, S.MAP_SHARED, "a", 2**64 - P),
        Call.munmap(2**64 - 1, 0), Call.mprotect(3, 4, 0xFFFF), Call.madvise(0, P, 999),
        Call.mlock(1, 2), Call.munlock(0, P), Call.fork(), Call.load(-(2**63)),
        Call.store(0, 255)))
    path = tmp_path / f"s.{ext}"
    S.save(seq, path, comment="a comment\nover two lines")
    assert S.load(path) == seq
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_toml_writer_uses_names():
    text = S.dumps_toml(Sequence(calls=(Call.mmap(0, P, RW, ANON_FIXED),
                                        Call.madvise(0, P, 4))))
    assert 'prot = "PROT_READ|PROT_WRITE"' in text
    assert 'flags = "MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS"' in text
    assert 'advice = "MADV_DONTNEED"' in text


def test_symbolic_names_match_impl_constants():
    from unmapcheck.impl import constants as C
    for table in (S.PROT_NAMES, S.MAP_NAMES, S.MADV_NAMES):
        for name, value in table.items():
            assert getattr(C, name) == value, name
    assert (S.PAGE_SIZE, S.TASK_SIZE, S.ULONG_MAX) == (C.PAGE_SIZE, C.TASK_SIZE, C.ULONG_MAX)


def test_describe():
    c = Call.mmap(0x1000, 0x4000, RW, S.MAP_SHARED | S.MAP_FIXED, "f", 0x2000)
    assert c.describe() == ("mmap(0x1000, 0x4000, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, "
                            "file='f', offset=0x2000)")
    assert Call.munmap(-P, 0).describe() == "munmap(-0x1000, 0x0)"
    assert Call.madvise(0, 1, 999).describe() == "madvise(0x0, 0x1, 999)"


# --- validation: one line naming file, call, field (and line for TOML) -------------------
BAD = [
    ('[[calls]]\nop = "mmap"\naddr = 0\nlength = 4096\nprot = true\nflags = 0\n',
     "seq.toml:5: call 0 (mmap): field 'prot': expected an integer or PROT_* names"),
    ('[[calls]]\nop = "mmap"\naddr = 0\nlength = 4096\nprot = "PROT_READ|__import__"\nflags = 0\n',
     "seq.toml:5: call 0 (mmap): field 'prot': expected an integer or PROT_* names"),
    ('[[calls]]\nop = "fork"\n\n[[calls]]\nop = "munmap"\naddr = 0\n',
     "seq.toml:4: call 1 (munmap): field 'length': missing"),
    ('[[calls]]\nop = "munmap"\naddr = 0\nlength = -1\n',
     "seq.toml:4: call 0 (munmap): field 'length': -1 out of range"),
    ('[[calls]]\nop = "munmap"\naddr = 0\nlength = 1\nlenght = 2\n',
     "seq.toml:5: call 0 (munmap): field 'lenght': unknown field for munmap"),
    ('[[calls]]\nop = "mremap"\n',
     "seq.toml:2: call 0: field 'op': unknown op 'mremap'"),
    ('[[calls]]\nop = "store"\naddr = 0\nbyte = 256\n',
     "seq.toml:4: call 0 (store): field 'byte': 256 out of range (expected an integer in 0..255)"),
    ('[[calls]]\nop = "mmap"\naddr = 0\nlength = 1\nprot = 0\nflags = 0\nfile = "g"\n',
     "seq.toml:7: call 0 (mmap): field 'file': unknown file 'g' (files: none declared)"),
    ('[[calls]]\nop = "madvise"\naddr = 0\nlength = 1\nadvice = 100\n',
     "seq.toml:5: call 0 (madvise): field 'advice': MADV_HWPOISON is not allowed"),
    ('[[files]]\nname = "f"\nsize = 1\n[[files]]\nname = "f"\nsize = 2\n',
     "seq.toml:5: file 1: field 'name': duplicate file name 'f'"),
    ('[[files]]\nname = "a/b"\nsize = 1\n',
     "seq.toml:2: file 0: field 'name': expected 1-64 characters"),
    ('window_pages = 0\n', "seq.toml: field 'window_pages': expected an integer in 1.."),
    ('windows = 3\n', "seq.toml: unknown top-level key 'windows'"),
    ('calls = 3\n', "seq.toml: field 'calls': expected an array of tables"),
    ('[[calls]\nop = "fork"\n', "seq.toml: not valid TOML:"),
    ('calls = [{op = "load"}]\n', "seq.toml: call 0 (load): field 'addr': missing"),
]


@pytest.mark.parametrize("text,expected", BAD)
def test_toml_errors_are_one_line(tmp_path, text, expected):
    msg = one_line_error(write(tmp_path, "seq.toml", text))
    assert msg.startswith(expected), msg


def test_json_errors(tmp_path):
    msg = one_line_error(write(tmp_path, "s.json", '{"calls": [{"op": "load", "addr": "x"}]}'))
    assert msg.startswith("s.json: call 0 (load): field 'addr': expected an integer"), msg
    msg = one_line_error(write(tmp_path, "s.json", '{"calls": [\n}'))
    assert msg.startswith("s.json:2: not valid JSON:"), msg
    msg = one_line_error(write(tmp_path, "s.json", '[1, 2]'))
    assert msg == "s.json: expected a table/object at the top level"


def test_unreadable_and_binary_files(tmp_path):
    msg = one_line_error(tmp_path / "missing.toml")
    assert msg.startswith("missing.toml: cannot read:"), msg
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00")
    assert one_line_error(p) == "bin.toml: not UTF-8 text"


def test_integer_strings_and_hex_are_accepted():
    seq = S.loads_json(json.dumps({"calls": [
        {"op": "munmap", "addr": "0x1000", "length": "0xffff_ffff_ffff_ffff"},
        {"op": "mmap", "addr": 0, "length": 1, "prot": "PROT_READ | 0x8",
         "flags": "MAP_PRIVATE|MAP_ANONYMOUS"}]}))
    assert seq.calls[0] == Call.munmap(0x1000, 2**64 - 1)
    assert seq.calls[1].prot == 0x9


# --- refusal: what a runner may execute -------------------------------------------------------
W = 64 * P


@pytest.mark.parametrize("call,refused", [
    (Call.munmap(0, W), False),
    (Call.munmap(0, W + 1), True),                       # would reach past the window
    (Call.munmap(1, 2**40), False),                       # unaligned: -EINVAL
    (Call.munmap(0, 2**64 - 1), False),                   # len > TASK_SIZE: -EINVAL
    (Call.munmap(0, 0), False),                           # -EINVAL
    (Call.munmap(-P, P), True),
    (Call.mmap(W, P, RW, ANON_FIXED), True),
    (Call.mmap(W - P, P, RW, ANON_FIXED), False),
    (Call.mmap(W, 0, RW, ANON_FIXED), False),             # len 0: -EINVAL
    (Call.mmap(W, 2**64 - 1, RW, ANON_FIXED), False),     # PAGE_ALIGN wraps: -ENOMEM
    (Call.mmap(W + 5, P, RW, ANON_FIXED), True),          # unaligned: -EINVAL, not relied on
    (Call.mmap(5, P, RW, ANON_FIXED), False),             # inside, unaligned
    (Call.mmap(W - P, P, RW, ANON_FIXED, None, 1 << 63), False),
    (Call.mmap(W, P, RW, ANON_FIXED, None, 1 << 63), True),   # anonymous: the offset is ignored
    (Call.mmap(W, P, RW, ANON_FIXED, None, 1), False),    # unaligned offset: -EINVAL first
    (Call.mmap(W, 2**47, RW, ANON_FIXED), False),         # PAGE_ALIGN(len) > TASK_SIZE: -ENOMEM
    (Call.mmap(W, P, RW, S.MAP_PRIVATE | S.MAP_ANONYMOUS), False),    # a hint never replaces
    (Call.mmap(W - P, P, RW, S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED_NOREPLACE), False),
    (Call.mmap(W, P, RW, S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED_NOREPLACE), True),
    (Call.mmap(W + 5, P, RW, S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED_NOREPLACE), True),
    (Call.mmap(0, P, RW, ANON_FIXED | S.MAP_HUGETLB), True),      # hugetlb: never run
    (Call.mmap(0, P, RW, S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_HUGETLB), True),
    (Call.mmap(0, P, RW, ANON_FIXED | S.MAP_HUGETLB, None, 5), False),  # -EINVAL first
    (Call.mmap(0, P, RW, S.MAP_SHARED | S.MAP_FIXED | S.MAP_HUGETLB, "f"), False),  # a memfd
    (Call.mprotect(-P, P, S.PROT_GROWSDOWN | S.PROT_GROWSUP), False),            # -EINVAL
    (Call.mprotect(W - P, P, S.PROT_READ | S.PROT_GROWSDOWN), False),
    (Call.mmap(0, 2 * W, RW, ANON_FIXED | S.MAP_POPULATE), True),
    (Call.mmap(0, 2**40, RW, S.MAP_PRIVATE | S.MAP_ANONYMOUS), True),   # overcommit
    (Call.mmap(0, 2**40, RW, S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_NORESERVE), False),
    (Call.mprotect(0, W + 1, 0), True),
    (Call.mprotect(0, 2**64 - 1, 0), False),              # PAGE_ALIGN(len) == 0: -ENOMEM
    (Call.mprotect(1, 2**40, 0), False),
    (Call.madvise(0, 2**63, 4), True),
    (Call.madvise(0, 0, 4), False),
    (Call.mlock(1, W - 1), False),                        # [0, W) after rounding
    (Call.mlock(1, W), True),                             # [0, W + P)
    (Call.mlock(2, 2**64 - 2), False),                    # len + offset wraps to 0: returns 0
    (Call.mlock(2, 2**64 - 1), False),                    # wraps to 1 -> one page at 0
    (Call.munlock(W, P), True),
    (Call.load(W - 1), False), (Call.load(W), True), (Call.store(-1, 0), True),
    (Call.fork(), False),
])
def test_refusal(call, refused):
    assert (S.refusal(call, W) is not None) == refused


def test_placement():
    assert S.placement(0, P, W) == (0, None)
    assert S.placement(W - P, 2 * P, W) == (W - P, "outside")
    assert S.placement(-P, P, W) == (-P, "outside")
    assert S.placement(1 << 40, P, W) == (None, "outside")
