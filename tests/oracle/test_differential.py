"""Differential tests: the model against the real kernel.

Each known sequence below pins one real-kernel behaviour the model must reproduce (see
checker/oracle/README.md, "Real-kernel behaviour the model must reproduce"); they run in the
default test run (about 0.5 s). The 300-sequence campaign is marked slow (``pytest -m slow``):
the default run has the 2,000-sequence one (test_campaign.py). Skipped, with the reason, when
either side cannot run at all.
"""

from __future__ import annotations

import pytest

from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.campaign import run_campaign
from unmapcheck.checker.oracle.compare import compare
from unmapcheck.checker.oracle.model import ModelUnavailable, run_model
from unmapcheck.impl.cpu import VENDORS
from unmapcheck.checker.oracle.sequence import Call, File, Sequence

P = 4096
RW = S.PROT_READ | S.PROT_WRITE
RO = S.PROT_READ
AF = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED
NR = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED_NOREPLACE
HINT = S.MAP_PRIVATE | S.MAP_ANONYMOUS
SF = S.MAP_SHARED | S.MAP_FIXED
PF = S.MAP_PRIVATE | S.MAP_FIXED
M = S.MADV_NAMES
F4 = (File("f", 4 * P),)

KNOWN = {
    "anon_store_rss": Sequence(calls=(Call.mmap(0, 4 * P, RW, AF), Call.store(0, 1),
                                      Call.store(P, 2))),
    "zero_page_read": Sequence(calls=(Call.mmap(0, 4 * P, RW, AF), Call.load(2 * P),
                                      Call.store(2 * P, 9), Call.load(2 * P))),
    "munmap_split": Sequence(calls=(Call.mmap(0, 4 * P, RW, AF), Call.store(0, 1),
                                    Call.munmap(P, P))),
    "mprotect_split_merge": Sequence(calls=(Call.mmap(0, 4 * P, RW, AF), Call.store(0, 1),
                                            Call.mprotect(P, 2 * P, RO),
                                            Call.mprotect(P, 2 * P, RW))),
    "mprotect_ro_drops_account": Sequence(calls=(Call.mmap(0, 2 * P, RW, AF),
                                                 Call.mprotect(0, P, RO),
                                                 Call.mprotect(0, P, RW))),
    "noreplace_eexist": Sequence(calls=(Call.mmap(0, 4 * P, RW, AF),
                                        Call.mmap(2 * P, 4 * P, RW, NR))),
    "argument_errors": Sequence(calls=(Call.munmap(1, P), Call.munmap(0, 0),
                                       Call.munmap(0, 2**64 - 1), Call.mmap(0, 0, RW, AF),
                                       Call.mmap(0, 2**64 - 1, RW, AF),
                                       Call.mprotect(0, 2**64 - 1, RW),
                                       Call.madvise(0, 2**64 - 1, 4), Call.madvise(0, P, 999),
                                       Call.mprotect(0, P, 0x10),
                                       Call.mmap(0, P, RW, S.MAP_ANONYMOUS | S.MAP_FIXED))),
    "store_read_only_sigsegv": Sequence(calls=(Call.mmap(0, P, RO, AF), Call.store(0, 1),
                                               Call.mmap(P, P, S.PROT_WRITE, AF),
                                               Call.load(P),
                                               Call.mmap(2 * P, P, S.PROT_EXEC, AF),
                                               Call.load(2 * P))),
    "memfd_shared_shmem_and_cow": Sequence(files=F4, calls=(
        Call.mmap(0, 4 * P, RW, SF, "f"), Call.store(0, 5), Call.store(P, 6),
        Call.mmap(8 * P, 4 * P, RW, PF, "f"), Call.store(9 * P, 7), Call.load(8 * P))),
    "fault_around": Sequence(files=(File("f", 32 * P),), calls=(
        (Call.mmap(0, 32 * P, RW, SF, "f"),)
        + tuple(Call.store(n * P, 1) for n in (0, 5, 20, 31))
        + (Call.mmap(32 * P, 32 * P, RO, PF, "f"), Call.load(35 * P), Call.load(52 * P),
           Call.load(58 * P)))),
    "fork_child_view": Sequence(files=(File("f", 2 * P),), calls=(
        Call.mmap(0, 2 * P, RW, SF, "f"), Call.store(0, 1), Call.mmap(4 * P, 2 * P, RW, PF, "f"),
        Call.load(4 * P), Call.mmap(8 * P, 2 * P, RW, AF), Call.store(8 * P, 1),
        Call.mlock(8 * P, 2 * P), Call.fork(), Call.load(0), Call.store(9 * P, 3))),
    "locked_is_pss": Sequence(files=F4, calls=(
        Call.mmap(0, 4 * P, RW, SF, "f"), Call.store(0, 1), Call.fork(), Call.mlock(0, 4 * P),
        Call.mmap(8 * P, 2 * P, RO, AF), Call.mlock(8 * P, 2 * P))),
    "mlock_over_prot_none": Sequence(calls=(Call.mmap(0, 2 * P, RW, AF), Call.mlock(0, 4 * P))),
    "mlock_ro_then_mprotect_rw_populates": Sequence(calls=(
        Call.mmap(0, 4 * P, RO, AF), Call.mlock(1, 2 * P), Call.mprotect(0, 4 * P, RW))),
    "mprotect_stops_at_hole": Sequence(calls=(Call.mmap(0, 2 * P, RW, AF),
                                              Call.munmap(2 * P, 2 * P),
                                              Call.mprotect(0, 8 * P, RO))),
    "madvise_dontneed_over_hole": Sequence(calls=(
        Call.mmap(0, 2 * P, RW, AF), Call.mmap(4 * P, 2 * P, RW, AF), Call.munmap(2 * P, 2 * P),
        Call.store(0, 1), Call.store(4 * P, 1), Call.madvise(0, 6 * P, M["MADV_DONTNEED"]))),
    "madvise_locked": Sequence(calls=(Call.mmap(0, 2 * P, RW, AF | S.MAP_LOCKED),
                                      Call.madvise(0, P, M["MADV_DONTNEED"]),
                                      Call.madvise(0, P, M["MADV_DONTNEED_LOCKED"]))),
    "sigbus_beyond_eof": Sequence(files=(File("f", 2 * P + 200),), calls=(
        Call.mmap(0, 4 * P, RW, SF, "f"), Call.load(2 * P + 100), Call.load(3 * P),
        Call.store(3 * P, 1))),
    "hints_and_outside": Sequence(calls=(Call.munmap(8 * P, 8 * P),
                                         Call.mmap(8 * P + 5, P, RW, HINT),
                                         Call.mmap(0, P, RW, HINT), Call.munmap(62 * P, 2 * P),
                                         Call.mmap(63 * P, 2 * P, RW, HINT))),
    "populate": Sequence(files=F4, calls=(
        Call.mmap(0, 4 * P, RW, PF | S.MAP_POPULATE, "f"),
        Call.mmap(4 * P, 4 * P, RW, SF | S.MAP_POPULATE, "f"),
        Call.mmap(8 * P, 4 * P, RO, AF | S.MAP_POPULATE),
        Call.mmap(12 * P, 4 * P, RW, AF | S.MAP_POPULATE))),
    "shared_anon": Sequence(calls=(Call.mmap(0, 4 * P, RW, S.MAP_SHARED | S.MAP_ANONYMOUS
                                             | S.MAP_FIXED),
                                   Call.store(0, 1), Call.fork(), Call.load(0))),
    "memfd_dontneed_then_fault_around": Sequence(files=(File("f", 6 * P + 100),), calls=(
        Call.mmap(0, 8 * P, RW, SF, "f"), Call.store(0, 1), Call.store(6 * P, 1),
        Call.madvise(0, 8 * P, M["MADV_DONTNEED"]), Call.load(P),
        Call.madvise(0, 4 * P, M["MADV_REMOVE"]), Call.load(0))),
}


def model_or_skip(seq, **system_kw):
    try:
        return run_model(seq, **system_kw)
    except ModelUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_sequence(runner, name, vendor):
    """Each known sequence agrees with the real kernel, with the model's x86 on Intel's and
    on AMD's INVLPG semantics (the flushes differ; what user space sees must not)."""
    seq = S.validate(KNOWN[name])
    real = runner.run(seq)
    model = model_or_skip(seq, vendor=vendor)
    mm = compare(seq, real, model)
    assert mm is None, f"{name} ({vendor}): {mm}"


@pytest.mark.slow
def test_campaign(runner):
    model_or_skip(Sequence())
    s = run_campaign(300, seed=20251121, runner=runner)
    assert s.mismatches == 0, f"{s}\n\n{s.regression_test}"
