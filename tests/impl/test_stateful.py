"""A hypothesis state machine over random system-call sequences on the model (issue
"Reference implementation ...", section 6).

Processes (two at the start, forks up to MAX_PROCS, exec, exit) make random calls on either
CPU: mmap (anonymous, memfd and regular-file backed, private and shared, MAP_FIXED /
MAP_FIXED_NOREPLACE / a hint, in a small window that straddles a PUD and PMD boundary, so
that neighbouring VMAs share page tables and free_pgtables' floor and ceiling matter;
MAP_POPULATE and MAP_LOCKED), munmap (partial, spanning, unaligned, zero and overflowing
arguments), mprotect, madvise (MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE and the flag
advices), mlock/mlock2/munlock, and one-byte loads and stores.

After every call, with every thread out of the kernel, the state invariants of
spec/invariants.py (``when`` "step" or "quiescent": the VMA tree, map_count, rss exact and
non-negative, mapcount exact and non-negative, refcount >= mapcount, no PTE outside a VMA,
I1.coherent: every TLB entry agrees with its PTE, no TLB or walk-cache entry reaching a freed
frame, the lost-write check) are evaluated on ``ConcreteView(system.machine)``; the event
invariants (I1.flush at every flush, I1.return at every return to user space, EXIT_CLEAN,
check_mm's bad_rss, print_bad_pte) are evaluated when the model reports the event, by a
sequential runtime installed in impl/sched.py. The invariants are the registry's, not
re-implemented here.

The test also keeps its own shadow of what every mapped page must read (at offset 0):
private anonymous memory, a private mapping of a file (the file until the process writes
or a populate write-faults it), a shared mapping (the file or the shared anonymous object,
which fork shares). So loads are checked against the value semantics of munmap,
MADV_DONTNEED (private memory refaults as zero or the file), MADV_FREE (the old value or
zero), fork (COW copies, MADV_DONTFORK, MADV_WIPEONFORK) and exec; SIGSEGV (no VMA, or the
VMA forbids the access) and SIGBUS (a file page beyond i_size) are expected exactly where
the VMA layout says so. The shadow's pages must be exactly the pages the VMA tree covers,
each with the file and the page offset the shadow expects (split and merge keep pgoff:
invariant 3 of DESIGN.md, checked here as an outcome since impl/ reports no split event).

Also after every call: dmesg is empty, no CPU caches a translation of a dead mm, and the
mm's total_vm, locked_vm, data_vm, exec_vm and stack_vm equal the pages of the VMAs of
their class (/proc/PID/status VmSize, VmLck, VmData, VmExe, VmStk).

At teardown every process exits; then no mm is left, no TLB or walk-cache entry, no swap
slot, dmesg is empty (no "Bad rss-counter state", no "non-zero pgtables_bytes", no bad page
map), and every frame but the zero page is free unless it is a page-cache page (unmapped,
its one reference the page cache's).

Machines: x86 with the kernel's mmu_gather capacities; x86 and arm64 with capacities of a
few pages (zap_pte_range's forced flush, tlb_next_batch, the table batch; arm64's
last-level flushes keep the walk cache); in the slow run also the 5.x exit_mmap. The default
run takes about ten seconds (``-m 'not slow'``); ``pytest -m slow
tests/impl/test_stateful.py`` runs many more and longer sequences (about twelve minutes).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from unmapcheck.impl import (MADV_COLD, MADV_DODUMP, MADV_DOFORK, MADV_DONTDUMP, MADV_DONTFORK,
                             MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE, MADV_KEEPONFORK,
                             MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WIPEONFORK,
                             MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_LOCKED,
                             MAP_NORESERVE, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, MLOCK_ONFAULT,
                             PAGE_SIZE, POISON_FREE, PROT_EXEC, PROT_NONE, PROT_READ,
                             PROT_WRITE, TASK_SIZE, VM_DONTCOPY, VM_EXEC, VM_GROWSDOWN, VM_LOCKED,
                             VM_SHARED, VM_WIPEONFORK, VM_WRITE, SigBus, SigSegv,
                             System)
from unmapcheck.impl import sched
from unmapcheck.impl.exec import STACK_TOP_MAX
from unmapcheck.impl.machine import Tunables
from unmapcheck.impl.x86_tlb import translation_usable
from unmapcheck.spec import check as CHECK
from unmapcheck.spec.view import ConcreteView

P = PAGE_SIZE
ULONG_MAX = (1 << 64) - 1
PUD_BOUNDARY = 1 << 30
WINDOW_PAGES = 32
#: The window straddles the 1 GiB boundary: its two halves are in different PMD tables and
#: different PUD entries.
BASE = PUD_BOUNDARY - (WINDOW_PAGES // 2) * P
assert BASE % P == 0 and (BASE + WINDOW_PAGES * P) > PUD_BOUNDARY
MAX_PROCS = 4
MEMFD_PAGES = 8
FILE_PAGES = 6
#: The points one call may pass before the run is declared livelocked (a sequential run has
#: no other thread to make progress).
MAX_POINTS_PER_CALL = 500_000

RW = PROT_READ | PROT_WRITE
PROTS = [RW, PROT_READ, PROT_NONE, PROT_WRITE, RW | PROT_EXEC, PROT_READ | PROT_EXEC, PROT_EXEC]
ADVICE = [MADV_DONTNEED, MADV_DONTNEED, MADV_FREE, MADV_FREE, MADV_DONTNEED_LOCKED, MADV_COLD,
          MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_DONTFORK, MADV_DOFORK,
          MADV_WIPEONFORK, MADV_KEEPONFORK, MADV_DONTDUMP, MADV_DODUMP]
VALUES = [v for v in range(1, 256) if v != POISON_FREE]

ZERO = frozenset({0})


def page_align(n: int) -> int:
    return (n + P - 1) & ~(P - 1)


# --- the checking runtime -----------------------------------------------------------------------
def usable_entries(m, c) -> tuple[list, list]:
    """CPU *c*'s TLB and walk-cache keys that it can use without a further flush. x86 keeps
    a dead mm's entries, and those of an mm it skipped, under their PCID (no flush reaches a
    CPU that runs another mm); they are flushed before use or never used again
    (impl/x86_tlb.py translation_usable)."""
    return ([k for k in c.tlb if translation_usable(m, c, k[0], leaf=True)],
            [k for k in c.pwc if translation_usable(m, c, k[0], leaf=False)])


class CheckingRuntime:
    """A sequential runtime for impl/sched.py: a point only checks that a blocking step could
    proceed (as with no runtime installed); an event is checked against the invariants the
    registry attaches to it. Violations are collected for the test to report after the call."""

    def __init__(self, machine):
        self.machine = machine
        self.violations: list[str] = []
        self.points = 0
        self.events: dict[str, int] = {}
        # The outcomes of the next branches the kernel does not control (sched.may_fail:
        # a GFP_NOWAIT allocation fails, need_resched() is true), drawn by the ``branches``
        # rule; once used up, every branch takes the common side.
        self.plan: list[bool] = []
        self.taken = 0

    def choose(self, kind: str, label: str) -> bool:
        # A GFP_KERNEL failure makes the syscall fail with -ENOMEM, which the stateful
        # reference does not predict: it is explored by scenarios (tests/impl/
        # test_anon_vma_clone.py), not here.
        if kind == "enomem" or not self.plan:
            return False
        taken = self.plan.pop(0)
        self.taken += taken
        return taken

    def point(self, label, reads, writes, wait, adds) -> None:
        if wait is not None and not wait():
            raise sched.Deadlock(f"{sched.current().name}: {label} would sleep forever "
                                 f"(sequential run)")
        self.points += 1
        if self.points > MAX_POINTS_PER_CALL:
            raise sched.Deadlock(f"{sched.current().name}: more than {MAX_POINTS_PER_CALL} "
                                 f"steps in one call (livelock?), at {label}")

    def event(self, kind: str, info: dict) -> None:
        self.events[kind] = self.events.get(kind, 0) + 1
        # Between calls every mm is quiet; inside one the stateful run has a single thread,
        # whose own mm is busy, so only the event's invariants are judged here.
        S = ConcreteView(self.machine)
        for f in CHECK.violations(S, kind, info, quiet_mms=[], all_quiet=False):
            self.violations.append(f"{f.name} at {kind}: {f.message}")


def state_violations(machine) -> list[str]:
    """Every state invariant, judged between two calls (no thread in the kernel)."""
    S = ConcreteView(machine)
    return [f"{f.name}: {f.message}" for moment in ("step", "quiescent")
            for f in CHECK.violations(S, moment)]


# --- the shadow of what each page reads ------------------------------------------------------------
class Contents:
    """A file's contents, or a shared anonymous mapping's (its shmem object), at offset 0 of
    each page: index -> the set of values the byte may have."""

    def __init__(self, name: str, npages: int, file=None):
        self.name = name
        self.npages = npages
        self.file = file
        self.vals: dict[int, frozenset] = {}

    def get(self, idx: int) -> frozenset:
        return self.vals.get(idx, ZERO)

    def __repr__(self) -> str:
        return f"<{self.name}>"


# Page states (immutable tuples, so fork copies them by copying the dict):
#   ("anon", values)                  private anonymous memory
#   ("shared", contents, idx)         a MAP_SHARED mapping of a file or shared anonymous memory
#   ("pfile", contents, idx, snap)    a MAP_PRIVATE mapping of a file: snap is None while the
#                                     page reads the file, else the private copy's values; with
#                                     ("pfile", c, idx, snap, "maybe") the copy may or may not
#                                     have been made (a populate), so either may be read.
def readable(state) -> frozenset:
    kind = state[0]
    if kind == "anon":
        return state[1]
    if kind == "shared":
        return state[1].get(state[2])
    snap = state[3]
    if snap is None:
        return state[1].get(state[2])
    if len(state) > 4:
        return snap | state[1].get(state[2])
    return snap


def beyond_eof(state) -> bool:
    return state[0] != "anon" and state[2] >= state[1].npages


class Proc:
    def __init__(self, proc, shadow: dict | None = None):
        self.p = proc
        self.shadow: dict[int, tuple] = shadow if shadow is not None else {}


class StatefulModel(RuleBasedStateMachine):
    #: The machine: x86 flush semantics, Linux 6.18, the kernel's mmu_gather capacities; the
    #: subclasses below vary them.
    ARCH = "x86"
    VENDOR = "intel"
    ERA = "6.18"
    TUNABLES: dict = {}

    def __init__(self):
        super().__init__()
        sched.uninstall()
        self.sys = System(cpus=2, arch=self.ARCH, era=self.ERA, vendor=self.VENDOR,
                          tunables=Tunables(**self.TUNABLES))
        self.rt = CheckingRuntime(self.sys.machine)
        sched.install(self.rt)
        # Two processes, and two files every process can map.
        self.contexts: dict = {}
        self.procs = [Proc(self.sys.spawn("p0")), Proc(self.sys.spawn("p1"))]
        self.fds = {}
        fd = self.sys.memfd_create("memfd", MEMFD_PAGES * P)
        self.fds["memfd"] = (fd, Contents("memfd", MEMFD_PAGES, self.sys.file(fd)))
        fd = self.sys.create_file("file", FILE_PAGES * P)
        self.fds["file"] = (fd, Contents("file", FILE_PAGES, self.sys.file(fd)))
        self.calls = 0

    # --- plumbing ---------------------------------------------------------------------------
    def proc(self, i: int) -> Proc:
        return self.procs[i % len(self.procs)]

    def call(self, pr: Proc, cpu: int, fn, *args):
        """Run one call of *pr* on *cpu* as its own ``current`` context."""
        key = (pr.p.pid, cpu)
        ctx = self.contexts.get(key)
        if ctx is None:
            ctx = self.contexts[key] = sched.Context(name=f"p{pr.p.pid}/cpu{cpu}", cpu=cpu)
        sched.set_current(ctx)
        self.rt.points = 0
        self.calls += 1
        return fn(*args)

    def addr(self, pr: Proc, page: int, pick: int, mapped: bool) -> int:
        """A page address: with *mapped*, one of the process's mapped pages (in the window or
        wherever a non-fixed mmap put it), chosen by *pick*; otherwise window page *page*
        (which may be just outside the window)."""
        if mapped and pr.shadow:
            pages = sorted(pr.shadow)
            return pages[pick % len(pages)]
        return BASE + page * P

    def pages_in(self, pr: Proc, start: int, end: int) -> list[int]:
        return [a for a in pr.shadow if start <= a < end]

    @initialize(maps=st.lists(st.tuples(st.integers(0, 1),
                                        st.sampled_from(["anon", "anon", "memfd", "file"]),
                                        st.booleans(), st.integers(0, WINDOW_PAGES - 1),
                                        st.integers(1, 8), st.integers(0, MEMFD_PAGES - 1)),
                              min_size=1, max_size=4))
    def start(self, maps):
        """Each run starts with a few plain read-write mappings."""
        for pi, kind, shared, first, npages, off in maps:
            self.mmap(pi, pi, kind, shared, "fixed", first, npages, RW, off, 0, None)

    # --- mmap --------------------------------------------------------------------------------
    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          kind=st.sampled_from(["anon", "anon", "memfd", "file"]), shared=st.booleans(),
          place=st.sampled_from(["fixed", "fixed", "fixed", "hint", "noreplace"]),
          first=st.integers(-2, WINDOW_PAGES), npages=st.integers(1, 12),
          prot=st.sampled_from(PROTS), off=st.integers(0, MEMFD_PAGES),
          extra=st.sampled_from([0, 0, 0, 0, MAP_POPULATE, MAP_LOCKED, MAP_NORESERVE]),
          odd=st.sampled_from([None] * 12 + ["len0", "unaligned_off", "unaligned_addr",
                                             "huge"]))
    def mmap(self, pi, cpu, kind, shared, place, first, npages, prot, off, extra, odd):
        pr = self.proc(pi)
        addr, length, offset = BASE + first * P, npages * P, off * P
        flags = (MAP_SHARED if shared else MAP_PRIVATE) | extra
        flags |= {"fixed": MAP_FIXED, "hint": 0, "noreplace": MAP_FIXED_NOREPLACE}[place]
        fd, contents = -1, None
        if kind == "anon":
            flags |= MAP_ANONYMOUS
        else:
            fd, contents = self.fds[kind]
        if odd == "len0":
            length = 0
        elif odd == "unaligned_off":
            offset += 5
        elif odd == "unaligned_addr":
            addr += 3
        elif odd == "huge":
            length = ULONG_MAX - P
        occupied = set(self.pages_in(pr, addr & ~(P - 1), addr + page_align(length)))
        ret = self.call(pr, cpu, pr.p.mmap, addr, length, prot, flags, fd, offset, cpu)
        if odd is not None and not (odd == "unaligned_addr" and place == "hint"):
            assert ret < 0, f"mmap with {odd} arguments succeeded: {ret:#x}"
            return
        if place == "noreplace" and occupied:
            assert ret == -17, f"MAP_FIXED_NOREPLACE over a mapping returned {ret}"  # -EEXIST
            return
        assert ret >= 0, f"mmap({addr:#x}, {length:#x}, {prot}, {flags:#x}) failed: {ret}"
        assert ret % P == 0
        length = page_align(length)
        if place != "hint":
            assert ret == addr
        else:
            assert not self.pages_in(pr, ret, ret + length), \
                f"a non-fixed mmap at {ret:#x} landed on existing mappings"
        if kind == "anon" and shared:
            vma = next(v for v in pr.p.mm.mm_mt.vmas if v.vm_start <= ret < v.vm_end)
            contents = Contents(f"shm@{ret:#x}", length // P, vma.vm_file)
            offset = 0
        populate = bool(extra & (MAP_POPULATE | MAP_LOCKED))
        for i in range(length // P):
            a = ret + i * P
            if kind == "anon" and not shared:
                pr.shadow[a] = ("anon", ZERO)
            elif shared:
                pr.shadow[a] = ("shared", contents, offset // P + i)
            elif populate:
                # A populate of a private writable file mapping write-faults it (FOLL_WRITE).
                idx = offset // P + i
                pr.shadow[a] = ("pfile", contents, idx, contents.get(idx), "maybe")
            else:
                pr.shadow[a] = ("pfile", contents, offset // P + i, None)

    # --- munmap ------------------------------------------------------------------------------
    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          to=st.integers(-1, MAX_PROCS - 1))
    def context_switch(self, pi, cpu, to):
        """The CPU running process *pi* switches to another process's thread (*to*), or to a
        kernel thread (-1: x86 lazy TLB mode); the next call of a process on that CPU
        switches back (x86: switch_mm_irqs_off's tlb_gen catch-up)."""
        pr = self.proc(pi)
        other = None if to < 0 else self.proc(to).p
        self.call(pr, cpu, pr.p.context_switch, other, cpu)

    @rule(plan=st.lists(st.booleans(), min_size=1, max_size=6))
    def branches(self, plan):
        """The next branches the kernel does not control (impl/sched.py may_fail): which
        of them take the failing side (a GFP_NOWAIT batch allocation fails,
        need_resched() breaks zap_pte_range mid-table)."""
        self.rt.plan = list(plan)

    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          first=st.integers(-2, WINDOW_PAGES + 1), npages=st.integers(1, WINDOW_PAGES),
          mapped=st.sampled_from([True, True, False]), pick=st.integers(0, 63),
          odd=st.sampled_from([None] * 10 + ["unaligned_addr", "unaligned_len", "len0",
                                             "overflow", "huge", "absurd_addr", "to_top"]))
    def munmap(self, pi, cpu, first, npages, mapped, pick, odd):
        pr = self.proc(pi)
        addr, length = self.addr(pr, first, pick, mapped), npages * P
        if odd == "unaligned_addr":
            addr += 1
        elif odd == "unaligned_len":
            length -= 17
        elif odd == "len0":
            length = 0
        elif odd == "overflow":
            length = ULONG_MAX - 3
        elif odd == "huge":
            length = 1 << 40
        elif odd == "absurd_addr":
            addr = ULONG_MAX - P + 1
        elif odd == "to_top":
            length = TASK_SIZE - addr
        ret = self.call(pr, cpu, pr.p.munmap, addr, length, cpu)
        # mm/vma.c do_vmi_munmap(): the argument checks, then success whatever is mapped.
        if addr % P or addr > TASK_SIZE or length > TASK_SIZE - addr or page_align(length) == 0:
            assert ret == -22, f"munmap({addr:#x}, {length:#x}) returned {ret}, not -EINVAL"
            return
        assert ret == 0, f"munmap({addr:#x}, {length:#x}) returned {ret}"
        for a in self.pages_in(pr, addr, addr + page_align(length)):
            del pr.shadow[a]

    # --- mprotect ----------------------------------------------------------------------------
    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          first=st.integers(-1, WINDOW_PAGES), npages=st.integers(0, 12),
          prot=st.sampled_from(PROTS), mapped=st.sampled_from([True, True, False]),
          pick=st.integers(0, 63), unaligned=st.sampled_from([False] * 8 + [True]))
    def mprotect(self, pi, cpu, first, npages, prot, mapped, pick, unaligned):
        pr = self.proc(pi)
        addr = self.addr(pr, first, pick, mapped) + (5 if unaligned else 0)
        ret = self.call(pr, cpu, pr.p.mprotect, addr, npages * P, prot, cpu)
        assert ret in (0, -22, -12, -13), f"mprotect returned {ret}"   # EINVAL ENOMEM EACCES
        if unaligned:
            assert ret == -22

    # --- madvise -----------------------------------------------------------------------------
    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          first=st.integers(-1, WINDOW_PAGES), npages=st.integers(0, 16),
          advice=st.sampled_from(ADVICE), mapped=st.sampled_from([True, True, False]),
          pick=st.integers(0, 63), odd=st.sampled_from([None] * 10 + ["unaligned_addr",
                                                                        "unaligned_len"]))
    def madvise(self, pi, cpu, first, npages, advice, mapped, pick, odd):
        pr = self.proc(pi)
        addr, length = self.addr(pr, first, pick, mapped), npages * P
        if odd == "unaligned_addr":
            addr += 9
        elif odd == "unaligned_len" and length:
            length -= 100
        ret = self.call(pr, cpu, pr.p.madvise, addr, length, advice, cpu)
        assert ret in (0, -22, -12, -1, -11, -13), f"madvise returned {ret}"
        if odd == "unaligned_addr":
            assert ret == -22
            return
        if length == 0:
            assert ret == 0
            return
        pages = self.pages_in(pr, addr, addr + page_align(length))
        if advice in (MADV_DONTNEED, MADV_DONTNEED_LOCKED):
            # Success, or -ENOMEM for holes (the VMAs present are zapped): private memory
            # refaults as zero or as the file. Another error may have stopped the walk part
            # way: either value may be read.
            certain = ret in (0, -12)
            for a in pages:
                s = pr.shadow[a]
                if s[0] == "anon":
                    pr.shadow[a] = ("anon", ZERO if certain else s[1] | ZERO)
                elif s[0] == "pfile" and s[3] is not None:
                    pr.shadow[a] = (s[:3] + (None,)) if certain else (s[:4] + ("maybe",))
        elif advice == MADV_FREE:
            # A lazily freed anonymous page reads back its value, or zero if reclaim took it.
            for a in pages:
                s = pr.shadow[a]
                if s[0] == "anon":
                    pr.shadow[a] = ("anon", s[1] | ZERO)

    # --- mlock -------------------------------------------------------------------------------
    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          first=st.integers(-1, WINDOW_PAGES), npages=st.integers(0, 12),
          flags=st.sampled_from([0, 0, MLOCK_ONFAULT, 2]), lock=st.booleans(),
          mapped=st.sampled_from([True, True, False]), pick=st.integers(0, 63),
          unaligned=st.sampled_from([False] * 8 + [True]))
    def mlock(self, pi, cpu, first, npages, flags, lock, mapped, pick, unaligned):
        pr = self.proc(pi)
        addr = self.addr(pr, first, pick, mapped) + (7 if unaligned else 0)
        length = npages * P
        if lock:
            ret = self.call(pr, cpu, pr.p.mlock, addr, length, flags, cpu)
            if flags == 2:
                assert ret == -22
            if flags == 0:
                # The populate write-faults private writable file pages (FOLL_WRITE).
                start = addr & ~(P - 1)
                for a in self.pages_in(pr, start, page_align(addr + length)):
                    s = pr.shadow[a]
                    if s[0] == "pfile" and s[3] is None:
                        pr.shadow[a] = s[:3] + (s[1].get(s[2]), "maybe")
        else:
            ret = self.call(pr, cpu, pr.p.munlock, addr, length, cpu)
        assert ret in (0, -22, -12, -1, -11), f"mlock/munlock returned {ret}"

    # --- fork, exec, exit ----------------------------------------------------------------------
    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          what=st.sampled_from(["fork", "fork", "exec", "exit"]))
    def lifecycle(self, pi, cpu, what):
        """fork (up to MAX_PROCS processes), exec, or exit (of all but the last process;
        teardown ends that one)."""
        if what == "fork" and len(self.procs) < MAX_PROCS:
            self.fork(self.proc(pi), cpu)
        elif what == "exec":
            pr = self.proc(pi)
            assert self.call(pr, cpu, pr.p.exec, cpu) == 0
            # the new image maps its one-page stack (fs/exec.c __bprm_mm_init), untouched
            pr.shadow.clear()
            pr.shadow[STACK_TOP_MAX - P] = ("anon", ZERO)
        elif what == "exit" and len(self.procs) > 1:
            pr = self.proc(pi)
            assert self.call(pr, cpu, pr.p.exit, cpu) == 0
            self.procs.remove(pr)

    def fork(self, pr: Proc, cpu: int) -> None:
        skip, wipe = [], []
        for v in pr.p.mm.mm_mt.vmas:
            if v.vm_flags & VM_DONTCOPY:
                skip.append((v.vm_start, v.vm_end))
            elif v.vm_flags & VM_WIPEONFORK:
                wipe.append((v.vm_start, v.vm_end))
        child = self.call(pr, cpu, pr.p.fork, cpu)
        shadow = {}
        for a, s in pr.shadow.items():
            if any(lo <= a < hi for lo, hi in skip):
                continue
            if any(lo <= a < hi for lo, hi in wipe):
                assert s[0] == "anon", "MADV_WIPEONFORK on a VMA that is not private anonymous"
                s = ("anon", ZERO)
            shadow[a] = s
        self.procs.append(Proc(child, shadow))

    # --- user accesses -----------------------------------------------------------------------
    def expect(self, pr: Proc, addr: int, write: bool):
        """What the access must do: "segv", "bus", or the page's state."""
        vma = next((v for v in pr.p.mm.mm_mt.vmas if v.vm_start <= addr < v.vm_end), None)
        if vma is None:
            assert addr & ~(P - 1) not in pr.shadow
            return "segv"
        perms = next(e.perms for e in pr.p.maps() if e.start <= addr < e.end)
        if write and perms[1] != "w" or not write and perms[:3] == "---":
            return "segv"
        state = pr.shadow[addr & ~(P - 1)]
        if beyond_eof(state):
            return "bus"
        return state

    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          page=st.integers(-1, WINDOW_PAGES), mapped=st.sampled_from([True, True, True, False]),
          pick=st.integers(0, 63), write=st.booleans(), value=st.sampled_from(VALUES))
    def access(self, pi, cpu, page, mapped, pick, write, value):
        pr = self.proc(pi)
        addr = self.addr(pr, page, pick, mapped)
        want = self.expect(pr, addr, write)
        try:
            if write:
                self.call(pr, cpu, pr.p.store, addr, value, cpu)
                got = None
            else:
                got = self.call(pr, cpu, pr.p.load, addr, cpu)
        except SigSegv:
            assert want == "segv", f"{'store' if write else 'load'} at {addr:#x}: SIGSEGV, " \
                                   f"expected {want}"
            return
        except SigBus:
            assert want == "bus", f"{'store' if write else 'load'} at {addr:#x}: SIGBUS, " \
                                  f"expected {want}"
            return
        assert want not in ("segv", "bus"), \
            f"{'store' if write else 'load'} at {addr:#x} succeeded, expected {want}"
        a = addr & ~(P - 1)
        if not write:
            assert got in readable(want), \
                f"load at {addr:#x} (CPU{cpu}, pid {pr.p.pid}) read {got:#x}, expected one " \
                f"of {sorted(readable(want))} ({want[0]})"
            return
        if want[0] == "anon":
            pr.shadow[a] = ("anon", frozenset({value}))
        elif want[0] == "shared":
            want[1].vals[want[2]] = frozenset({value})
        else:
            pr.shadow[a] = ("pfile", want[1], want[2], frozenset({value}))

    # --- weights: hypothesis picks among rules uniformly; the common calls have more rules ----
    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          kind=st.sampled_from(["anon", "anon", "memfd", "file"]), shared=st.booleans(),
          first=st.integers(0, WINDOW_PAGES - 1), npages=st.integers(1, 8),
          prot=st.sampled_from([RW, RW, PROT_READ]), off=st.integers(0, MEMFD_PAGES - 1))
    def mmap_plain(self, pi, cpu, kind, shared, first, npages, prot, off):
        """A plain MAP_FIXED mapping in the window."""
        self.mmap(pi, cpu, kind, shared, "fixed", first, npages, prot, off, 0, None)

    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          pick=st.integers(0, 63), write=st.booleans(), value=st.sampled_from(VALUES))
    def access_mapped(self, pi, cpu, pick, write, value):
        """A load or store to a mapped page."""
        self.access(pi, cpu, 0, True, pick, write, value)

    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          pick=st.integers(0, 63), write=st.booleans(), value=st.sampled_from(VALUES))
    def access_mapped_again(self, pi, cpu, pick, write, value):
        self.access(pi, cpu, 0, True, pick, write, value)

    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          mapped=st.sampled_from([True, True, False]), pick=st.integers(0, 63),
          first=st.integers(0, WINDOW_PAGES - 1), npages=st.integers(1, 6),
          advice=st.sampled_from([MADV_DONTNEED, MADV_FREE]))
    def madvise_plain(self, pi, cpu, mapped, pick, first, npages, advice):
        self.madvise(pi, cpu, first, npages, advice, mapped, pick, None)

    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          mapped=st.sampled_from([True, True, False]), pick=st.integers(0, 63),
          first=st.integers(0, WINDOW_PAGES - 1), npages=st.integers(1, 6))
    def munmap_plain(self, pi, cpu, mapped, pick, first, npages):
        self.munmap(pi, cpu, first, npages, mapped, pick, None)

    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          pick=st.integers(0, 63), npages=st.integers(1, 4), prot=st.sampled_from(PROTS))
    def mprotect_plain(self, pi, cpu, pick, npages, prot):
        """mprotect of a few pages from a mapped one."""
        self.mprotect(pi, cpu, 0, npages, prot, True, pick, False)

    @rule(pi=st.integers(0, MAX_PROCS - 1), cpu=st.integers(0, 1),
          pick=st.integers(0, 63), npages=st.integers(1, 4),
          flags=st.sampled_from([0, MLOCK_ONFAULT]), lock=st.booleans())
    def mlock_plain(self, pi, cpu, pick, npages, flags, lock):
        """mlock or munlock of a few pages from a mapped one."""
        self.mlock(pi, cpu, 0, npages, flags, lock, True, pick, False)

    # --- checks after every call ---------------------------------------------------------------
    @invariant()
    def check(self):
        m = self.sys.machine
        bad = self.rt.violations + state_violations(m)
        assert not bad, "\n".join(bad)
        assert not m.dmesg, "\n".join(m.dmesg)
        live = {pr.p.mm.id for pr in self.procs}
        assert {mm.id for mm in ConcreteView(m).mms()} == live
        for c in m.cpus:
            tlb, pwc = usable_entries(m, c)
            assert {k[0] for k in tlb} <= live, f"CPU{c.id} has TLB entries of a dead mm"
            assert {k[0] for k in pwc} <= live, f"CPU{c.id} walk cache has a dead mm"
        for pr in self.procs:
            self.check_layout(pr)
            self.check_vm_counters(pr)

    def check_vm_counters(self, pr: Proc) -> None:
        """/proc/PID/status's VmSize, VmLck, VmData, VmExe and VmStk counters: each mm
        counter equals the pages of the VMAs of its class (mm/internal.h is_exec_mapping,
        is_stack_mapping, is_data_mapping; VM_STACK is VM_GROWSDOWN on x86)."""
        mm = pr.p.mm
        want = {"total_vm": 0, "locked_vm": 0, "exec_vm": 0, "stack_vm": 0, "data_vm": 0}
        for v in mm.mm_mt.vmas:
            n = (v.vm_end - v.vm_start) // P
            f = v.vm_flags
            want["total_vm"] += n
            if f & VM_LOCKED:
                want["locked_vm"] += n
            if f & (VM_EXEC | VM_WRITE | VM_GROWSDOWN) == VM_EXEC:
                want["exec_vm"] += n
            elif f & VM_GROWSDOWN:
                want["stack_vm"] += n
            elif f & (VM_WRITE | VM_SHARED | VM_GROWSDOWN) == VM_WRITE:
                want["data_vm"] += n
        got = {k: getattr(mm, k) for k in want}
        assert got == want, f"pid {pr.p.pid} mm{mm.id}: counters {got}, the VMAs say {want}"

    def check_layout(self, pr: Proc) -> None:
        """The VMA tree covers exactly the shadow's pages, each with the expected backing and
        page offset (so splits and merges kept vm_pgoff right)."""
        covered = set()
        for v in pr.p.mm.mm_mt.vmas:
            assert v.vm_end - v.vm_start <= 1024 * P, f"an unexpectedly large VMA {v}"
            for a in range(v.vm_start, v.vm_end, P):
                covered.add(a)
                s = pr.shadow.get(a)
                assert s is not None, f"pid {pr.p.pid}: {a:#x} is mapped ({v}) but was unmapped"
                index = v.vm_pgoff + ((a - v.vm_start) >> 12)
                if s[0] == "anon":
                    assert v.vm_file is None and index == a >> 12, \
                        f"pid {pr.p.pid}: {a:#x} in {v} should be private anonymous memory"
                else:
                    assert v.vm_file is s[1].file and index == s[2], \
                        f"pid {pr.p.pid}: {a:#x} in {v} should map page {s[2]} of {s[1]} " \
                        f"(vm_pgoff gives {index})"
        missing = set(pr.shadow) - covered
        assert not missing, f"pid {pr.p.pid}: {sorted(hex(a) for a in missing)} not mapped"

    # --- the end ---------------------------------------------------------------------------------
    def teardown(self):
        try:
            for pr in list(self.procs):
                self.call(pr, 0, pr.p.exit, 0)
                self.procs.remove(pr)
            self.check_all_gone()
        finally:
            sched.uninstall()

    def check_all_gone(self) -> None:
        m = self.sys.machine
        assert not self.rt.violations, "\n".join(self.rt.violations)
        assert not m.dmesg, "\n".join(m.dmesg)
        assert not m.mms, f"mms left after every process exited: {m.mms}"
        for c in m.cpus:
            tlb, pwc = usable_entries(m, c)
            assert not tlb and not pwc, f"CPU{c.id} still caches {tlb} {pwc}"
        assert not m.swap.swap_map, f"swap slots left: {m.swap.swap_map}"
        for page in m.zone.mem_map:
            if page.free or page.pfn == 0:
                continue
            mapping = page.mapping
            assert mapping is not None and not mapping.is_anon and \
                mapping.i_pages.get(page.index) is page, \
                f"{page} (mapping {mapping}) is neither free nor in the page cache"
            assert page._mapcount == -1 and page._refcount == 1, \
                f"page-cache {page} keeps references after every process exited"


#: mmu_gather capacities small enough for a few pages to fill the gather: zap_pte_range's
#: force_flush (flush, free, retry the rest of the table), tlb_next_batch and the table batch.
SMALL_BATCHES = dict(gather_bundle=3, gather_batch=3, gather_batch_count=1, table_batch=2)


class StatefulSmallBatches(StatefulModel):
    TUNABLES = SMALL_BATCHES


class StatefulArm64(StatefulModel):
    """arm64's flushes: a last-level range flush keeps the walk cache, a fullmm gather
    flushes only when it freed tables (impl/mmu_gather.py tlb_flush)."""
    ARCH = "arm64"
    TUNABLES = SMALL_BATCHES


class StatefulAmd(StatefulModel):
    """AMD's INVLPG (EFER.TCE: only the paging-structure entries on the path to the
    address are dropped), with small batches so that table batches fill and flush."""
    VENDOR = "amd"
    TUNABLES = SMALL_BATCHES


class StatefulPpc64(StatefulModel):
    """powerpc radix's flushes: TLB-only flushes keep the page-walk cache, which only a
    PID-wide RIC_FLUSH_PWC/ALL drops; the gather merges VMAs; no batched unmap flush."""
    ARCH = "ppc64"
    TUNABLES = SMALL_BATCHES


class StatefulEra5x(StatefulModel):
    """exit_mmap in its pre-6.1 shape (Machine.era "5.x": no mmap_lock around the teardown)."""
    ERA = "5.x"


def _settings(examples: int, steps: int):
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class TestStateful(StatefulModel.TestCase):
    settings = _settings(120, 50)


class TestStatefulSmallBatches(StatefulSmallBatches.TestCase):
    settings = _settings(50, 50)


class TestStatefulArm64(StatefulArm64.TestCase):
    settings = _settings(50, 50)


class TestStatefulAmd(StatefulAmd.TestCase):
    settings = _settings(50, 50)


class TestStatefulPpc64(StatefulPpc64.TestCase):
    settings = _settings(50, 50)


@pytest.mark.slow
class TestStatefulLong(StatefulModel.TestCase):
    settings = _settings(3000, 150)


@pytest.mark.slow
class TestStatefulSmallBatchesLong(StatefulSmallBatches.TestCase):
    settings = _settings(1500, 150)


@pytest.mark.slow
class TestStatefulArm64Long(StatefulArm64.TestCase):
    settings = _settings(1500, 150)


@pytest.mark.slow
class TestStatefulEra5xLong(StatefulEra5x.TestCase):
    settings = _settings(500, 100)


def test_small_batches_reach_the_forced_flush():
    """The SMALL_BATCHES tunables are the ones mmu_gather consults: unmapping ten touched
    pages flushes several more times (the forced flushes of a full gather) than with the
    kernel's capacities (the flush at the VMA's end and the one for the freed tables)."""
    def flushes(tunables: dict) -> int:
        sched.uninstall()
        s = System(cpus=2, tunables=Tunables(**tunables))
        rt = CheckingRuntime(s.machine)
        sched.install(rt)
        try:
            p = s.spawn()
            sched.set_current(sched.Context(name="t", cpu=0))
            a = p.mmap(BASE, 10 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
            for i in range(10):
                p.store(a + i * P, 1)
            rt.events.clear()
            assert p.munmap(a, 10 * P) == 0
            assert not rt.violations and not state_violations(s.machine)
            return rt.events.get("tlb_flush", 0)
        finally:
            sched.uninstall()
    default = flushes({})
    assert default == 2
    assert flushes(SMALL_BATCHES) >= default + 3
