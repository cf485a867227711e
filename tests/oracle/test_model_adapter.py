"""model.py's adapter, wired to a small fake of the System API (independent of impl/).

The fake knows just enough (fixed and hinted anonymous/file mappings, munmap, stores, maps and
smaps, fork, SIGSEGV) to check what the adapter adds: the window, offsets, the refusal rule,
placement outside the window, file names, the derived Shmem, signals and error reporting.
"""

from __future__ import annotations

import pytest

from unmapcheck.checker.oracle import model as M
from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.compare import compare
from unmapcheck.checker.oracle.sequence import Call, File, Sequence

P = 4096
RW = S.PROT_READ | S.PROT_WRITE
AF = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED
FAR = 0x7EFF00000000


class SigSegv(Exception):
    pass


class Entry:
    def __init__(self, start, end, perms, offset, file, name):
        self.start, self.end, self.perms, self.offset = start, end, perms, offset
        self.file, self.name = file, name


class FakeFile:
    def __init__(self, fid, name):
        self.id, self.name = fid, name


class FakeProc:
    def __init__(self, system, vmas=None, pages=None):
        self.system = system
        self.vmas = vmas or []       # [start, end, prot, flags, file, offset]
        self.pages = pages or {}     # page address -> byte
        self.calls = []

    def _free(self, a, b):
        return all(v[1] <= a or v[0] >= b for v in self.vmas)

    def mmap(self, addr, length, prot, flags, fd=-1, offset=0):
        self.calls.append("mmap")
        n = S.page_align(length)
        if flags & S.MAP_FIXED_NOREPLACE:
            if not self._free(addr, addr + n):
                return -17
        elif flags & S.MAP_FIXED:
            self.munmap(addr, n)
        else:
            addr = FAR
        f = None if flags & S.MAP_ANONYMOUS else self.system.files[fd]
        self.vmas.append([addr, addr + n, prot, flags, f, offset])
        self.vmas.sort()
        return addr

    def munmap(self, addr, length):
        self.calls.append("munmap")
        end = addr + S.page_align(length)
        out = []
        for v in self.vmas:
            if v[1] <= addr or v[0] >= end:
                out.append(v)
                continue
            if v[0] < addr:
                out.append([v[0], addr] + v[2:])
            if v[1] > end:
                out.append([end, v[1]] + v[2:])
        self.vmas = sorted(out)
        for a in [a for a in self.pages if addr <= a < end]:
            del self.pages[a]
        return 0

    def mprotect(self, addr, length, prot):
        self.calls.append("mprotect")
        return 0

    def store(self, addr, byte):
        v = [v for v in self.vmas if v[0] <= addr < v[1]]
        if not v or not v[0][2] & S.PROT_WRITE:
            raise SigSegv(addr)
        self.pages[addr & ~(P - 1)] = byte

    def load(self, addr):
        if not [v for v in self.vmas if v[0] <= addr < v[1] and v[2] & S.PROT_READ]:
            raise SigSegv(addr)
        return self.pages.get(addr & ~(P - 1), 0)

    def fork(self):
        return FakeProc(self.system, [list(v) for v in self.vmas], dict(self.pages))

    def maps(self):
        out = []
        for s, e, prot, flags, f, off in self.vmas:
            perms = ("r" if prot & 1 else "-") + ("w" if prot & 2 else "-") + \
                ("x" if prot & 4 else "-") + ("s" if flags & S.MAP_SHARED else "p")
            out.append(Entry(s, e, perms, off if f else 0, f.id if f else None,
                             f"/memfd:{f.name} (deleted)" if f else ""))
        return out

    def smaps(self):
        out = []
        for s, e, prot, flags, f, off in self.vmas:
            n = sum(1 for a in self.pages if s <= a < e) * 4
            out.append({"Rss": n, "Anonymous": 0 if f else n, "Locked": 0,
                        "start": s, "end": e})
        return out


class FakeSystem:
    def __init__(self, cpus=2, tunables=None):
        self.files = {}
        self.tunables = tunables

    def spawn(self):
        return FakeProc(self)

    def memfd_create(self, name, size):
        fd = 3 + len(self.files)
        self.files[fd] = FakeFile(100 + fd, name)
        return fd

    def file(self, fd):
        return self.files.get(fd)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(M, "_impl", lambda: (None, FakeSystem))


def test_window_and_offsets(fake):
    rep = M.run_model(Sequence(calls=(Call.mmap(P, 2 * P, RW, AF), Call.store(P, 3),
                                      Call.load(P))))
    assert rep["error"] is None and rep["window_base"] == M.MODEL_WINDOW_BASE
    c = rep["calls"]
    assert c[0]["ret"] == P
    assert [(v["start"], v["end"], v["perms"]) for v in c[1]["vmas"]] == \
        [(0, P, "---p"), (P, 3 * P, "rw-p"), (3 * P, 64 * P, "---p")]
    assert c[1]["vmas"][1]["Rss"] == 4 and c[2]["value"] == 3
    assert set(c[0]) == {"ret", "placed", "signal", "value", "refused", "vmas"}


def test_refused_calls_are_not_run(fake, monkeypatch):
    seen = []
    orig = FakeProc.munmap

    def spy(self, a, n):
        seen.append((a, n))
        return orig(self, a, n)
    monkeypatch.setattr(FakeProc, "munmap", spy)
    rep = M.run_model(Sequence(calls=(Call.munmap(0, 65 * P),)))
    assert rep["calls"][0]["refused"] == "range outside the window"
    assert seen == []


def test_placed_outside_is_unmapped(fake):
    rep = M.run_model(Sequence(calls=(Call.mmap(0, P, RW, S.MAP_PRIVATE | S.MAP_ANONYMOUS),)))
    c = rep["calls"][0]
    assert (c["ret"], c["placed"]) == (None, "outside")
    assert [v["perms"] for v in c["vmas"]] == ["---p"]


def test_files_and_shmem(fake):
    rep = M.run_model(Sequence(files=(File("f", 4 * P),), calls=(
        Call.mmap(0, 2 * P, RW, S.MAP_SHARED | S.MAP_FIXED, "f", P), Call.store(0, 1))))
    v = rep["calls"][1]["vmas"][0]
    assert (v["file"], v["offset"], v["Rss"], v["Anonymous"], v["Shmem"]) == \
        ("f", P, 4, 0, 4)


def test_signals(fake):
    rep = M.run_model(Sequence(calls=(Call.store(0, 1),)))
    c = rep["calls"][0]
    assert (c["signal"], c["ret"]) == ("SIGSEGV", None)


def test_fork_continues_in_the_child(fake):
    rep = M.run_model(Sequence(calls=(Call.mmap(0, P, RW, AF), Call.store(0, 7), Call.fork(),
                                      Call.load(0))))
    assert rep["calls"][2]["ret"] == 0 and rep["calls"][3]["value"] == 7


def test_an_exception_inside_a_call_ends_the_report(fake, monkeypatch):
    def boom(self, *a):
        raise RuntimeError("not modelled yet")
    monkeypatch.setattr(FakeProc, "mprotect", boom)
    seq = Sequence(calls=(Call.mmap(0, P, RW, AF), Call.mprotect(0, P, S.PROT_READ),
                          Call.load(0)))
    rep = M.run_model(seq)
    assert len(rep["calls"]) == 1
    assert rep["error"].startswith("call 1 mprotect(0x0, 0x1000, PROT_READ): model raised "
                                   "RuntimeError: not modelled yet")
    real = {"error": None, "calls": [dict(rep["calls"][0])] * 3}
    mm = compare(seq, real, rep)
    assert mm.kind == "model error" and mm.call == 1


def test_missing_api_is_model_unavailable(monkeypatch):
    def broken():
        raise M.ModelUnavailable("model: unmapcheck.impl.System is not usable: ImportError: x")
    monkeypatch.setattr(M, "_impl", broken)
    with pytest.raises(M.ModelUnavailable, match="^model: unmapcheck.impl.System"):
        M.run_model(Sequence(calls=(Call.fork(),)))


def test_vmflags_string():
    assert M.vmflags_string(0x1 | 0x2 | 0x10 | 0x20 | 0x40 | 0x100000) == "rd wr mr mw me ac"
    assert M.vmflags_string(0x2000 | 0x200000) == "lo nr"


def test_tunables_follow_the_real_runs_environment():
    """The model runs with the real child's privileges: root (CAP_IPC_LOCK: mlock is not
    limited by RLIMIT_MEMLOCK) unless the recorded environment says otherwise."""
    t = M.tunables_for(None)
    assert t.capable
    t = M.tunables_for({"kernel": "6.18.44", "cap_ipc_lock": False, "memlock_limit": 65536})
    assert not t.capable and t.rlimit_memlock == 65536
    assert M.tunables_for({"cap_ipc_lock": True, "memlock_limit": -1}).rlimit_memlock == \
        S.ULONG_MAX


def test_run_model_passes_the_tunables(monkeypatch):
    seen = []

    class Spy(FakeSystem):
        def __init__(self, cpus=2, tunables=None):
            super().__init__(cpus)
            seen.append(tunables)
    monkeypatch.setattr(M, "_impl", lambda: (None, Spy))
    M.run_model(Sequence(), env={"cap_ipc_lock": False, "memlock_limit": 4096})
    assert not seen[0].capable and seen[0].rlimit_memlock == 4096
    M.run_model(Sequence())
    assert seen[1].capable
