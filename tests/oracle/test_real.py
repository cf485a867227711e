"""The real-kernel runner on known sequences, against hand-checked expectations.

The expectations were taken on Linux 6.18.44 (x86-64, THP off in the child, no swap); they
are what the model must reproduce. Skipped, with the reason, where the real kernel cannot be
used (not Linux/x86-64, no /proc/self/smaps, no C compiler).
"""

from __future__ import annotations

import os
import tempfile

import pytest

from unmapcheck.checker.oracle import real as R
from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.sequence import Call, File, Sequence

P = 4096
W = 64 * P
RW = S.PROT_READ | S.PROT_WRITE
AF = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED
SF = S.MAP_SHARED | S.MAP_FIXED
PF = S.MAP_PRIVATE | S.MAP_FIXED
M = S.MADV_NAMES


def run(runner, calls, files=(), window_pages=64):
    seq = Sequence(calls=tuple(calls), files=tuple(files), window_pages=window_pages)
    rep = runner.run(seq)
    assert rep["error"] is None, rep["error"]
    assert len(rep["calls"]) == len(calls)
    return rep["calls"]


def layout(c):
    return [(v["start"], v["end"], v["perms"]) for v in c["vmas"]]


def vma(c, start):
    [v] = [v for v in c["vmas"] if v["start"] == start]
    return v


def test_report_shape_and_env(runner):
    rep = runner.run(Sequence(calls=(Call.load(0),)))
    assert rep["side"] == "real" and rep["error"] is None
    assert rep["window_base"] % (2 << 20) == 0              # 2 MiB aligned
    assert rep["env"]["kernel"]
    [c] = rep["calls"]
    assert c["signal"] == "SIGSEGV"                           # the reservation is PROT_NONE
    assert layout(c) == [(0, W, "---p")]
    assert c["vmas"][0]["VmFlags"].split() == ["mr", "mw", "me", "nr"]


def test_anon_private_store_counts_rss(runner):
    c = run(runner, [Call.mmap(0, 4 * P, RW, AF), Call.store(0, 1), Call.store(P, 2)])
    assert c[0]["ret"] == 0
    assert layout(c[0]) == [(0, 4 * P, "rw-p"), (4 * P, W, "---p")]
    v = vma(c[2], 0)
    assert (v["Rss"], v["Anonymous"], v["Shmem"], v["Locked"]) == (8, 8, 0, 0)
    assert v["file"] is None and v["offset"] == 0


def test_load_of_untouched_anon_maps_the_zero_page(runner):
    c = run(runner, [Call.mmap(0, 4 * P, RW, AF), Call.load(2 * P), Call.store(2 * P, 9),
                     Call.load(2 * P)])
    assert c[1]["value"] == 0
    assert vma(c[1], 0)["Rss"] == 0                           # the zero page is not counted
    assert vma(c[2], 0)["Rss"] == 4                           # the store COWs it
    assert c[3]["value"] == 9


def test_munmap_middle_page_splits(runner):
    c = run(runner, [Call.mmap(0, 4 * P, RW, AF), Call.store(0, 1), Call.munmap(P, P)])
    assert c[2]["ret"] == 0
    assert layout(c[2]) == [(0, P, "rw-p"), (2 * P, 4 * P, "rw-p"), (4 * P, W, "---p")]
    assert vma(c[2], 0)["Rss"] == 4 and vma(c[2], 2 * P)["Rss"] == 0


def test_mprotect_splits_and_merges_back(runner):
    c = run(runner, [Call.mmap(0, 4 * P, RW, AF), Call.store(0, 1),
                     Call.mprotect(P, 2 * P, S.PROT_READ), Call.mprotect(P, 2 * P, RW)])
    assert layout(c[2]) == [(0, P, "rw-p"), (P, 3 * P, "r--p"), (3 * P, 4 * P, "rw-p"),
                            (4 * P, W, "---p")]
    assert layout(c[3]) == [(0, 4 * P, "rw-p"), (4 * P, W, "---p")]


def test_mprotect_read_only_drops_vm_account_without_anon_vma(runner):
    # An anonymous VMA that never faulted (no anon_vma) loses VM_ACCOUNT when made
    # read-only; one that has an anon_vma keeps it. Merging depends on the difference.
    c = run(runner, [Call.mmap(0, 2 * P, RW, AF), Call.mprotect(0, P, S.PROT_READ),
                     Call.mmap(4 * P, 2 * P, RW, AF), Call.store(4 * P, 1),
                     Call.mprotect(4 * P, P, S.PROT_READ)])
    assert "ac" not in vma(c[1], 0)["VmFlags"].split()
    assert "ac" in vma(c[1], P)["VmFlags"].split()
    assert "ac" in vma(c[4], 4 * P)["VmFlags"].split()


def test_map_fixed_noreplace_over_a_mapping_is_eexist(runner):
    nr = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED_NOREPLACE
    c = run(runner, [Call.mmap(0, 4 * P, RW, AF), Call.mmap(2 * P, 4 * P, RW, nr),
                     Call.mmap(0, P, RW, nr)])
    assert c[1]["ret"] == -17 and c[2]["ret"] == -17
    assert layout(c[2]) == layout(c[0])


def test_munmap_argument_errors(runner):
    c = run(runner, [Call.munmap(1, P), Call.munmap(0, 0), Call.munmap(0, 2**64 - 1)])
    assert [x["ret"] for x in c] == [-22, -22, -22]


def test_zero_and_overflowing_lengths(runner):
    c = run(runner, [Call.mmap(0, 0, RW, AF), Call.mmap(0, 2**64 - 1, RW, AF),
                     Call.mprotect(0, 0, RW), Call.mprotect(0, 2**64 - 1, RW),
                     Call.madvise(0, 0, 4), Call.madvise(0, 2**64 - 1, 4),
                     Call.mlock(0, 0), Call.madvise(0, P, 999), Call.mprotect(0, P, 0x10)])
    assert [x["ret"] for x in c] == [-22, -12, 0, -12, 0, -22, 0, -22, -22]
    assert all(layout(x) == [(0, W, "---p")] for x in c)


def test_store_to_read_only_memory_is_sigsegv(runner):
    c = run(runner, [Call.mmap(0, P, S.PROT_READ, AF), Call.store(0, 1), Call.load(0),
                     Call.mmap(P, P, S.PROT_WRITE, AF), Call.load(P),
                     Call.mmap(2 * P, P, S.PROT_EXEC, AF), Call.load(2 * P)])
    assert c[1]["signal"] == "SIGSEGV" and c[1]["ret"] is None
    assert c[2]["signal"] is None and c[2]["value"] == 0
    # x86: write-only and exec-only mappings are readable (the zero page: Rss stays 0).
    assert c[4]["value"] == 0 and c[6]["value"] == 0
    assert vma(c[6], P)["Rss"] == 0 and vma(c[6], 2 * P)["Rss"] == 0


def test_memfd_shared_mapping_counts_shmem(runner):
    c = run(runner, [Call.mmap(0, 4 * P, RW, SF, "f"), Call.store(0, 5), Call.store(P, 6),
                     Call.mmap(8 * P, 4 * P, RW, PF, "f"), Call.store(8 * P + P, 7),
                     Call.load(8 * P)],
            files=[File("f", 4 * P)])
    v = vma(c[2], 0)
    assert (v["Rss"], v["Anonymous"], v["Shmem"], v["file"], v["perms"]) == \
        (8, 0, 8, "f", "rw-s")
    # The private mapping: the store COWs file page 1 into an anonymous page.
    v = vma(c[4], 8 * P)
    assert (v["Rss"], v["Anonymous"], v["Shmem"]) == (4, 4, 0)
    # A read fault maps file page 0 and, by fault-around, nothing else new (page 1 is
    # already mapped by the anonymous copy; pages 2-3 are not in the page cache).
    assert c[5]["value"] == 5
    v = vma(c[5], 8 * P)
    assert (v["Rss"], v["Anonymous"], v["Shmem"]) == (8, 4, 4)


def test_fault_around_maps_cached_pages_on_a_read_fault(runner):
    # 32-page memfd; pages 0, 5, 20, 31 written through a shared mapping. A read fault in a
    # second (private, read-only) mapping maps the faulting page (a shmem read fault on a
    # hole allocates it) plus the cached pages of its 16-page-aligned fault-around window.
    c = run(runner, [Call.mmap(0, 32 * P, RW, SF, "f")]
            + [Call.store(n * P, 1) for n in (0, 5, 20, 31)]
            + [Call.mmap(32 * P, 32 * P, S.PROT_READ, PF, "f"),
               Call.load(32 * P + 3 * P), Call.load(32 * P + 20 * P), Call.load(32 * P + 26 * P)],
            files=[File("f", 32 * P)])
    rss = [vma(x, 32 * P)["Rss"] for x in c[6:]]
    assert rss == [12, 20, 24]     # pages {0,3,5}, then +{20,31}, then +{26}


def test_fork_child_view(runner):
    c = run(runner, [Call.mmap(0, 2 * P, RW, SF, "f"), Call.store(0, 1),
                     Call.mmap(4 * P, 2 * P, RW, PF, "f"), Call.load(4 * P),
                     Call.mmap(8 * P, 2 * P, RW, AF), Call.store(8 * P, 1),
                     Call.mlock(8 * P, 2 * P), Call.fork()],
            files=[File("f", 2 * P)])
    before, after = c[6], c[7]
    assert after["ret"] == 0
    assert layout(after) == layout(before)
    # Shared and anon_vma-less private file VMAs are not copied at fork (refilled by faults).
    assert vma(after, 0)["Rss"] == 0 and vma(after, 4 * P)["Rss"] == 0
    assert vma(before, 4 * P)["Rss"] == 4
    # Anonymous pages are (COW-shared); VM_LOCKED is not inherited.
    v = vma(after, 8 * P)
    assert (v["Rss"], v["Anonymous"], v["Locked"]) == (8, 8, 0)
    assert "lo" not in v["VmFlags"].split() and vma(before, 8 * P)["Locked"] == 8


def test_mlock_populates_and_locked_is_pss(runner):
    c = run(runner, [Call.mmap(0, 4 * P, RW, SF, "f"), Call.store(0, 1), Call.fork(),
                     Call.mlock(0, 4 * P), Call.mmap(8 * P, 2 * P, S.PROT_READ, AF),
                     Call.mlock(8 * P, 2 * P)],
            files=[File("f", 4 * P)])
    v = vma(c[3], 0)
    # mlock faults in all 4 pages; page 0 is also mapped by the waiting parent, so the
    # proportional (PSS) Locked is 2 + 4 + 4 + 4 kB.
    assert (v["Rss"], v["Shmem"], v["Locked"]) == (16, 16, 14)
    # Read-only private anonymous: populated with the zero page, so nothing is counted.
    assert c[5]["ret"] == 0 and vma(c[5], 8 * P)["Rss"] == 0
    assert "lo" in vma(c[5], 8 * P)["VmFlags"].split()


def test_mlock_over_prot_none_locks_but_fails(runner):
    c = run(runner, [Call.mmap(0, 2 * P, RW, AF), Call.mlock(0, 4 * P)])
    # The range is fully mapped, so the VMAs are locked (splitting the reservation), but
    # populating the PROT_NONE part fails: -EFAULT, reported by mlock as -ENOMEM.
    assert c[1]["ret"] == -12
    assert layout(c[1]) == [(0, 2 * P, "rw-p"), (2 * P, 4 * P, "---p"), (4 * P, W, "---p")]
    assert vma(c[1], 0)["Locked"] == 8
    assert "lo" in vma(c[1], 2 * P)["VmFlags"].split()


def test_mprotect_stops_at_a_hole_after_changing_what_precedes_it(runner):
    c = run(runner, [Call.mmap(0, 2 * P, RW, AF), Call.munmap(2 * P, 2 * P),
                     Call.mprotect(0, 8 * P, S.PROT_READ)])
    assert c[2]["ret"] == -12
    assert layout(c[2])[0] == (0, 2 * P, "r--p")
    assert layout(c[2])[1] == (4 * P, W, "---p")       # beyond the hole: untouched


def test_madvise_dontneed_over_a_hole_zaps_and_returns_enomem(runner):
    c = run(runner, [Call.mmap(0, 2 * P, RW, AF), Call.mmap(4 * P, 2 * P, RW, AF),
                     Call.munmap(2 * P, 2 * P), Call.store(0, 1), Call.store(4 * P, 1),
                     Call.madvise(0, 6 * P, M["MADV_DONTNEED"])])
    assert c[5]["ret"] == -12
    assert vma(c[5], 0)["Rss"] == 0 and vma(c[5], 4 * P)["Rss"] == 0


def test_madvise_dontneed_on_locked_is_einval(runner):
    c = run(runner, [Call.mmap(0, 2 * P, RW, AF | S.MAP_LOCKED),
                     Call.madvise(0, P, M["MADV_DONTNEED"]),
                     Call.madvise(0, P, M["MADV_DONTNEED_LOCKED"])])
    assert vma(c[0], 0)["Locked"] == 8
    assert c[1]["ret"] == -22 and vma(c[1], 0)["Rss"] == 8
    assert c[2]["ret"] == 0 and vma(c[2], 0)["Rss"] == 4


def test_access_beyond_end_of_file_is_sigbus(runner):
    c = run(runner, [Call.mmap(0, 4 * P, RW, SF, "f"), Call.load(2 * P + 100),
                     Call.load(3 * P), Call.store(3 * P, 1)],
            files=[File("f", 2 * P + 200)])
    assert c[1]["value"] == 0                     # inside the last, partial page
    assert c[2]["signal"] == "SIGBUS" and c[3]["signal"] == "SIGBUS"


def test_hints_and_placed_outside(runner):
    a = S.MAP_PRIVATE | S.MAP_ANONYMOUS
    c = run(runner, [Call.munmap(8 * P, 8 * P), Call.mmap(8 * P + 5, P, RW, a),
                     Call.mmap(0, P, RW, a), Call.munmap(62 * P, 2 * P),
                     Call.mmap(63 * P, 2 * P, RW, a)])
    assert c[1]["ret"] == 8 * P and c[1]["placed"] is None    # hint rounded down, used
    assert c[2]["ret"] is None and c[2]["placed"] == "outside"   # hint taken: placed far
    assert c[4]["ret"] == 63 * P and c[4]["placed"] == "outside"  # across the window's end
    assert layout(c[4])[-1] == (16 * P, 62 * P, "---p")          # and unmapped at once


def test_refused_calls_do_not_run(runner):
    c = run(runner, [Call.munmap(0, W + P), Call.store(W, 1),
                     Call.mmap(W, P, RW, AF)])
    assert [x["refused"] is not None for x in c] == [True, True, True]
    assert all(x["ret"] is None and layout(x) == [(0, W, "---p")] for x in c)


def test_window_size_parameter(runner):
    c = run(runner, [Call.mmap(0, P, RW, AF)], window_pages=4)
    assert layout(c[0]) == [(0, P, "rw-p"), (P, 4 * P, "---p")]


def test_runner_answers_many_sequences(runner):
    seq = Sequence(calls=(Call.mmap(0, P, RW, AF), Call.store(0, 1)))
    reps = [runner.run(seq) for _ in range(20)]
    assert all(r == reps[0] for r in reps)         # fresh child each time: same result


def test_no_c_compiler_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setattr(R, "_find_cc", lambda: None)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "t"))
    with pytest.raises(R.OracleUnavailable) as ei:
        R.probe_library(cache_dir=str(tmp_path / "cache"))
    msg = str(ei.value)
    assert "\n" not in msg and "no C compiler found" in msg


def test_probe_builds_atomically_into_a_cache(tmp_path, monkeypatch):
    if R._find_cc() is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "t"))
    so = R.probe_library(cache_dir=str(tmp_path / "c"))
    assert so.startswith(str(tmp_path / "c")) and so.endswith(".so")
    assert R.probe_library(cache_dir=str(tmp_path / "c")) == so     # cached
    assert sorted(os.listdir(tmp_path / "c")) == [os.path.basename(so)]


def test_not_linux_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(R.sys, "platform", "darwin")
    with pytest.raises(R.OracleUnavailable, match=r"^real-kernel oracle: needs Linux, this "
                                                  r"is darwin$"):
        R.check_real_kernel()


def test_no_smaps_is_one_clear_line(monkeypatch):
    if R.sys.platform != "linux":
        pytest.skip("Linux only")
    real_exists = R.os.path.exists
    monkeypatch.setattr(R.os.path, "exists",
                        lambda p: False if p == "/proc/self/smaps" else real_exists(p))
    with pytest.raises(R.OracleUnavailable, match="/proc/self/smaps is missing"):
        R.check_real_kernel()
