"""compare.py names the first differing call and field, in one line."""

from __future__ import annotations

import copy

import pytest

from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.compare import RealRunFailed, compare
from unmapcheck.checker.oracle.sequence import Call, Sequence

P = 4096
W = 64 * P
RW = S.PROT_READ | S.PROT_WRITE
AF = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED

SEQ = Sequence(calls=(Call.mmap(0, 4 * P, RW, AF), Call.store(0, 1), Call.munmap(P, P),
                      Call.load(0)))


def vma(start, end, perms="rw-p", rss=0, anon=0, flags="rd wr mr mw me ac", file=None,
        offset=0, shmem=0, locked=0):
    return {"start": start, "end": end, "perms": perms, "offset": offset, "file": file,
            "Rss": rss, "Anonymous": anon, "Shmem": shmem, "Locked": locked, "VmFlags": flags}


def res(ret=0, value=None, vmas=(), **kw):
    r = {"ret": ret, "placed": None, "signal": None, "value": value, "refused": None,
         "vmas": list(vmas)}
    r.update(kw)
    return r


RES = "mr mw me nr"
REAL = {"side": "real", "error": None, "env": {"kernel": "6.18"}, "calls": [
    res(0, vmas=[vma(0, 4 * P), vma(4 * P, W, "---p", flags=RES)]),
    res(0, vmas=[vma(0, 4 * P, rss=4, anon=4), vma(4 * P, W, "---p", flags=RES)]),
    res(0, vmas=[vma(0, P, rss=4, anon=4), vma(2 * P, 4 * P), vma(4 * P, W, "---p", flags=RES)]),
    res(0, value=1, vmas=[vma(0, P, rss=4, anon=4), vma(2 * P, 4 * P),
                          vma(4 * P, W, "---p", flags=RES)]),
]}


def model_with(edit):
    m = copy.deepcopy(REAL)
    m["side"] = "model"
    edit(m)
    return m


def test_identical_reports_match():
    assert compare(SEQ, REAL, model_with(lambda m: None)) is None


def test_return_value_difference_names_errno():
    def edit(m):
        m["calls"][2]["ret"] = -22
    mm = compare(SEQ, REAL, model_with(edit))
    assert (mm.call, mm.kind, mm.field) == (2, "result", "ret")
    assert mm.message == "call 2 munmap(0x1000, 0x1000): ret differs: real 0, model -EINVAL"


def test_vma_list_difference():
    def edit(m):
        m["calls"][2]["vmas"] = [vma(0, 4 * P, rss=4, anon=4), vma(4 * P, W, "---p", flags=RES)]
    mm = compare(SEQ, REAL, model_with(edit))
    assert mm.message == ("call 2 munmap(0x1000, 0x1000): VMA list differs: "
                          "real [0x0-0x1000 rw-p, 0x2000-0x4000 rw-p, 0x4000-0x40000 ---p] "
                          "model [0x0-0x4000 rw-p, 0x4000-0x40000 ---p]")


def test_smaps_difference():
    def edit(m):
        m["calls"][1]["vmas"][0]["Rss"] = 8
    mm = compare(SEQ, REAL, model_with(edit))
    assert mm.message == ("call 1 store(0x0, 1): smaps Rss of VMA 0x0-0x4000: real 4 kB, "
                          "model 8 kB")


def test_first_difference_wins():
    def edit(m):
        m["calls"][3]["value"] = 2
        m["calls"][1]["vmas"][0]["Locked"] = 4
    mm = compare(SEQ, REAL, model_with(edit))
    assert (mm.call, mm.field) == (1, "Locked")


def test_vmflags_difference_and_switch():
    def edit(m):
        m["calls"][0]["vmas"][0]["VmFlags"] = "rd wr mr mw me"
    mm = compare(SEQ, REAL, model_with(edit))
    assert mm.kind == "vmflags" and "only real: ac" in mm.message
    assert compare(SEQ, REAL, model_with(edit), vmflags=False) is None


def test_value_and_signal_difference():
    def edit(m):
        m["calls"][3].update(ret=None, value=None, signal="SIGSEGV")
    mm = compare(SEQ, REAL, model_with(edit))
    assert mm.message == "call 3 load(0x0): ret differs: real 0, model none"


def test_model_error_is_a_mismatch_at_its_call():
    def edit(m):
        del m["calls"][2:]
        m["error"] = "call 2 munmap(0x1000, 0x1000): model raised KernelBug: boom"
    mm = compare(SEQ, REAL, model_with(edit))
    assert mm.kind == "model error" and mm.call == 2
    assert mm.message == ("call 2 munmap(0x1000, 0x1000): model failed: model raised "
                          "KernelBug: boom")


def test_real_error_is_not_a_model_mismatch():
    real = dict(REAL, error="the child died")
    with pytest.raises(RealRunFailed, match="the child died"):
        compare(SEQ, real, model_with(lambda m: None))
