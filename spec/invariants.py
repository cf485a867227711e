"""The invariants, each defined once.

Every invariant is a *domain* and a *body*: it holds when the body holds for every element of
the domain. Both are functions of a state view ``S`` (spec/view.py: concrete; spec/symbolic.py:
z3) and a logic ``B`` (spec/logic.py), so the same definition is evaluated on a live model
state at every step of an exploration and encoded in z3 by the proofs. When it fails on a
concrete state, the first element whose body is false is the witness, and ``message`` says
what is wrong with it in kernel terms.

When an invariant is checked (``when``):
* ``"step"``: after every step of every thread. ``footprint`` names the kinds of objects
  (the first field of a scheduling point's object tuples) whose modification can break it;
  a step that writes none of them cannot, so the checker skips it;
* ``"quiescent"``: when no thread is inside a kernel path on the mm (rss and mapcount are
  exact only outside the windows where a path holds a batched delta: zap_pte_range's rss[],
  a cleared PTE whose rmap is not yet removed, a fault between its counter update and its
  set_pte_at), and at the end of every execution;
* an event kind (``"tlb_flush"``, ``"return_to_user"``, ``"split_vma"`` ...): when the model
  reports that event; the event's fields are passed as ``ev``.

The groups I1-I4 are the project's core invariants (the README's table); the others are the further
properties the historic bugs break, and the kernel's own complaints (KERNEL). Which moment
checks what is decided in one place, spec/check.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from unmapcheck.impl.constants import (MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS,
                                       NR_MM_COUNTERS, PAGE_SHIFT, RSS_COUNTER_NAMES)

from .logic import CONCRETE


@dataclass(frozen=True)
class Invariant:
    name: str            # e.g. "I1.return"
    group: str           # e.g. "I1" (what scenarios name in their expectations)
    title: str
    when: str
    domain: Callable[..., Iterable]
    body: Callable[..., Any]
    message: Callable[..., str]
    footprint: frozenset = field(default_factory=frozenset)
    # Judged on concrete states only: the abstract state of the proofs does not have what the
    # body reads (anon_vma lifetimes, reference holders), so the proofs leave it out
    # (spec/abstract.py state_invariants) rather than encode a constant.
    concrete_only: bool = False

    def holds(self, S, B, ev: Optional[dict] = None):
        return B.forall(self.domain(S, ev), lambda x: self.body(S, B, x, ev))

    def witness(self, S, ev: Optional[dict] = None):
        return CONCRETE.witness(self.domain(S, ev), lambda x: self.body(S, CONCRETE, x, ev))


REGISTRY: dict[str, Invariant] = {}
# by_when's answers, per moment.
_BY_WHEN: dict[str, list] = {}
GROUPS: dict[str, str] = {
    "I1": "no stale TLB entry after a flush",
    "I2": "rss never negative, and exact",
    "I3": "split_vma and merges preserve coverage and pgoff",
    "I4": "mapcount >= 0, and exact",
    "VMA_TREE": "the VMA tree is sorted, non-overlapping and counted",
    "PTE_IN_VMA": "no PTE outside a VMA",
    "REFCOUNT": "refcount >= mapcount",
    "LOST_WRITE": "no store is lost: not to writeback (a clean file page's dirty TLB entry, "
                  "a clean file page that differs from the disk, a writable PTE to a clean "
                  "page of a write-notify mapping), not to a COW copy",
    "WALKER": "no zap of a VMA while a page walker is inside it",
    "EXIT_CLEAN": "after exit_mmap nothing is left",
    "PT_LIFETIME": "a page-table page is freed only when no walker can still reach it",
    "RMAP": "a mapped page is where its reverse map says: an anonymous page's anon_vma is "
            "alive and a writable one exclusive; a page-cache page is the cache's page of the "
            "file offset its VMA maps",
    "KERNEL": "the kernel does not complain (WARN, page-table leak, bad pgtables_bytes)",
}


def invariant(name: str, title: str, when: str, footprint: Iterable[str] = (),
              concrete_only: bool = False):
    def register(fn):
        domain, body, message = fn()
        _BY_WHEN.clear()
        REGISTRY[name] = Invariant(name, name.split(".")[0], title, when, domain, body, message,
                                   frozenset(footprint), concrete_only)
        return fn
    return register


def complaint(message):
    """The definition of an invariant that an event itself violates (the kernel reporting a
    problem: print_bad_pte, check_mm, a WARN ...): its domain is the event, its body false,
    and *message(S, ev)* says what was reported."""
    return (lambda S, ev: [ev], lambda S, B, e, ev: False, lambda S, e, ev: message(S, e))


def _addr(vpn: int) -> str:
    return f"{vpn << PAGE_SHIFT:#x}"


def _pte_text(S, p) -> str:
    if S.pte_present(p) and S.pte_protnone(p):
        return f"is protnone (pfn {S.pte_pfn(p)}: not present to the MMU)"
    if S.pte_present(p):
        return f"maps pfn {S.pte_pfn(p)} ({'rw' if S.pte_write(p) else 'ro'})"
    if S.pte_swap(p):
        return "is a swap entry"
    if S.pte_migration(p):
        return "is a migration entry"
    return "is none"


def _tlb_text(t) -> str:
    e = t.entry
    return (f"CPU{t.cpu}'s TLB maps {_addr(t.vpn)} to pfn {e.pfn}"
            f" ({'rw' if e.write else 'ro'}{', dirty' if e.dirty else ''})")


# --- shared definitions -----------------------------------------------------------------------
def tlb_agrees(S, B, t):
    """A TLB entry agrees with the page table when the PTE is present to the MMU (present
    and not protnone), maps the same frame, and is writable if the entry is."""
    p = S.pte_lookup(S.tlb_mm(t), S.tlb_vpn(t))
    return B.And(S.pte_present(p), B.Not(S.pte_protnone(p)), S.pte_pfn(p) == S.tlb_pfn(t),
                 B.Implies(S.tlb_write(t), S.pte_write(p)))


def mm_counter_of(S, B, f):
    """include/linux/mm.h mm_counter(): the rss counter a mapped frame is charged to."""
    return B.If(S.frame_anon(f), MM_ANONPAGES,
                B.If(S.frame_swapbacked(f), MM_SHMEMPAGES, MM_FILEPAGES))


def counts_as(S, B, p, member):
    """Does PTE p count in rss counter *member*? Swap entries count as MM_SWAPENTS; present
    PTEs (except the special zero page) and migration entries as their frame's counter."""
    f = S.frame(S.pte_pfn(p))
    return B.If(S.pte_swap(p), member == MM_SWAPENTS,
                B.And(B.Not(B.And(S.pte_present(p), S.pte_special(p))),
                      mm_counter_of(S, B, f) == member))


def _event_mms(S, ev) -> list:
    """The mms a per-mm check judges: the event's, or every mm of the view."""
    return [ev["mm"]] if ev and "mm" in ev else S.mms()


def _mm_ptes(S, ev):
    """The PTEs a per-mm quiescent check judges: the event's mm's, or every mm's."""
    return S.ptes_of(ev["mm"]) if ev and "mm" in ev else S.ptes()


def maps_frame(S, B, p, f):
    """p is a present, normal (not special) PTE mapping frame f: what _mapcount counts."""
    return B.And(S.pte_present(p), B.Not(S.pte_special(p)), S.frame(S.pte_pfn(p)) == f)


def _in_range(S, B, t, ev, rng=None):
    """Is TLB entry t in the event's mm and in *rng* (default: the event's [start, end))?"""
    lo, hi = rng if rng is not None else (ev["start"], ev["end"])
    return B.And(S.tlb_mm(t) == ev["mm"], (lo >> PAGE_SHIFT) <= S.tlb_vpn(t),
                 S.tlb_vpn(t) <= ((hi - 1) >> PAGE_SHIFT))


# --- I1: no stale TLB entry -------------------------------------------------------------------
@invariant("I1.flush", "when a flush of a range completes, no TLB entry in the range disagrees "
           "with the page table", when="tlb_flush")
def _i1_flush():
    return (lambda S, ev: S.tlb_entries(),
            lambda S, B, t, ev: B.Implies(_in_range(S, B, t, ev), tlb_agrees(S, B, t)),
            lambda S, t, ev: (f"a TLB flush of {ev['start']:#x}-{ev['end']:#x} completed, but "
                              f"{_tlb_text(t)}; the PTE "
                              f"{_pte_text(S, S.pte_lookup(S.tlb_mm(t), t.vpn))}"))


@invariant("I1.return", "when a system call returns, no TLB entry for a range it operated on "
           "(zapped, unmapped, changed the protection of) that existed when the call began "
           "disagrees with the page table", when="return_to_user")
def _i1_return():
    # What a call owes is the ranges it operated on (ev["ranges"], reported by the impl with
    # sched.operated_on where the kernel commits to a range), not the range it was asked
    # for: an -EINVAL from the argument checks touches nothing, and MADV_DONTNEED's -ENOMEM
    # for a hole still owes the VMAs it zapped but not a VMA another thread's munmap has
    # already detached (that munmap owes it, when it returns). Entries filled after the call
    # began are not its business either: another thread may have faulted the page in again
    # and be unmapping it now, with its own flush still pending.
    def owed(S, B, t, ev):
        return B.Or(*[_in_range(S, B, t, ev, r) for r in ev["ranges"]])

    def message(S, t, ev):
        from .logic import CONCRETE as B
        lo, hi = next(r for r in ev["ranges"] if _in_range(S, B, t, ev, r))
        return (f"{ev['syscall']} returned on CPU{ev['cpu']} having operated on "
                f"{lo:#x}-{hi:#x}, but {_tlb_text(t)}; the PTE "
                f"{_pte_text(S, S.pte_lookup(S.tlb_mm(t), t.vpn))}")

    return (lambda S, ev: S.tlb_entries() if ev.get("ranges") else (),
            lambda S, B, t, ev: B.Implies(B.And(owed(S, B, t, ev),
                                                S.tlb_tick(t) <= ev["start_tick"]),
                                          tlb_agrees(S, B, t)),
            message)


@invariant("I1.freed_frame", "no TLB entry reaches a freed (or freed and reused) frame",
           when="step", footprint=("page", "tlb", "zone"))
def _i1_freed_frame():
    def body(S, B, t, ev):
        f = S.frame(S.tlb_pfn(t))
        return B.And(B.Not(S.frame_free(f)), S.frame_gen(f) == S.tlb_gen(t))

    def message(S, t, ev):
        f = S.frame(S.tlb_pfn(t))
        state = "free" if S.frame_free(f) else "reallocated"
        return f"{_tlb_text(t)}, but pfn {t.entry.pfn} is {state}: a use-after-free through " \
               f"a stale TLB entry"

    return (lambda S, ev: S.select(S.tlb_entries(), _usable_by_user), body, message)


def _usable_by_user(S, B, t):
    """TLB entry *t* can still serve a user access. An entry of an mm that no task can run
    any more (mm_users == 0: exit_mmap, or freed) never can: arm64 does not flush a fullmm
    gather's leaf entries for that reason ("the ASID allocator will invalidate the ASID
    before it is reused"), and the model never reuses an mm's ASID. (Walk caches are judged
    for every mm, I1.freed_table: speculative walks do not need a running task.)"""
    mm = S.tlb_mm(t)
    return B.And(mm is not None, B.Not(S.mm_exited(mm)) if mm is not None else False)


@invariant("I1.freed_table", "no paging-structure cache entry reaches a freed page-table page",
           when="step", footprint=("page", "tlb", "zone", "pte"))
def _i1_freed_table():
    def body(S, B, w, ev):
        f = S.frame(S.pwc_pfn(w))
        return B.And(S.frame_is_table(f), S.frame_gen(f) == S.pwc_gen(w))

    return (lambda S, ev: S.pwc_entries(), body,
            lambda S, w, ev: (f"CPU{w.cpu}'s paging-structure cache still points at page-table "
                              f"page pfn {w.pfn}, which has been freed: the next walk through "
                              f"it reads a page that is no longer a page table"))


def _live_tlb_entries(S, ev):
    """The TLB entries of the event's mm, or of every live mm (a freed mm has no page table to
    agree with; an entry of it that reaches a freed frame is I1.freed_frame's business)."""
    mms = _event_mms(S, ev)
    return S.select(S.tlb_entries(), lambda S, B, t: B.exists(mms, lambda m: S.tlb_mm(t) == m))


@invariant("I1.coherent", "when no thread is in the kernel on the mm, every TLB entry of it "
           "agrees with the page table", when="quiescent")
def _i1_coherent():
    # Every path that clears or downgrades a PTE flushes before it returns to user space
    # (munmap, MADV_DONTNEED/FREE, mprotect, fork's write-protect, COW, exit), so with no
    # thread inside the kernel no translation may be wider than its PTE. I1.return states
    # this for one call's range; here it is the whole mm.
    return (_live_tlb_entries,
            lambda S, B, t, ev: tlb_agrees(S, B, t),
            lambda S, t, ev: (f"no thread is in the kernel on mm{S.mm_id(S.tlb_mm(t))}, but "
                              f"{_tlb_text(t)}; the PTE "
                              f"{_pte_text(S, S.pte_lookup(S.tlb_mm(t), t.vpn))}"))


# --- I2: rss ----------------------------------------------------------------------------------
def _rss_domain(S, ev):
    return [(mm, k) for mm in _event_mms(S, ev) for k in range(NR_MM_COUNTERS)]


@invariant("I2.nonneg", "no rss counter is negative", when="step", footprint=("rss",))
def _i2_nonneg():
    return (_rss_domain,
            lambda S, B, mk, ev: S.rss(mk[0], mk[1]) >= 0,
            lambda S, mk, ev: (f"mm{S.mm_id(mk[0])} {RSS_COUNTER_NAMES[mk[1]]} is "
                               f"{S.rss(mk[0], mk[1])}"))


@invariant("I2.exact", "each rss counter equals the number of PTEs of its kind",
           when="quiescent")
def _i2_exact():
    def body(S, B, mk, ev):
        mm, k = mk
        return S.rss(mm, k) == B.count(S.ptes_of(mm), lambda p: counts_as(S, B, p, k))

    def message(S, mk, ev):
        from .logic import CONCRETE as B
        mm, k = mk
        n = B.count(S.ptes_of(mm), lambda p: counts_as(S, B, p, k))
        return (f"mm{S.mm_id(mm)} {RSS_COUNTER_NAMES[k]} is {S.rss(mm, k)} but {n} PTEs "
                f"are of that kind")
    return (_rss_domain, body, message)


@invariant("I2.check_mm", "check_mm finds every rss counter zero when the mm is freed",
           when="bad_rss")
def _i2_check_mm():
    return complaint(lambda S, e: f"check_mm: Bad rss-counter state mm{S.mm_id(e['mm'])} "
                                  f"type:{RSS_COUNTER_NAMES[e['member']]} val:{e['value']}")


# --- I3: split and merge ------------------------------------------------------------------------
def _vma_text(v: dict) -> str:
    return f"[{v['start']:#x}-{v['end']:#x} pgoff {v['pgoff']:#x}]"


def _pgoff_at(v: dict, addr: int) -> int:
    return v["pgoff"] + ((addr - v["start"]) >> PAGE_SHIFT)


@invariant("I3.split", "split_vma: both halves non-empty, their union is the old range, pgoff "
           "and flags carry over", when="split_vma")
def _i3_split():
    def body(S, B, e, ev):
        o, lo, hi = e["old"], e["low"], e["high"]
        return B.And(lo["start"] < lo["end"], hi["start"] < hi["end"],
                     lo["start"] == o["start"], lo["end"] == hi["start"], hi["end"] == o["end"],
                     lo["pgoff"] == o["pgoff"],
                     hi["pgoff"] == o["pgoff"] + ((hi["start"] - o["start"]) >> PAGE_SHIFT),
                     lo["flags"] == o["flags"], hi["flags"] == o["flags"])

    return (lambda S, ev: [ev], body,
            lambda S, e, ev: (f"__split_vma of {_vma_text(e['old'])} at {e['addr']:#x} gave "
                              f"{_vma_text(e['low'])} and {_vma_text(e['high'])}"))


@invariant("I3.pgoff", "a VMA change keeps pgoff(a) = vm_pgoff + (a - vm_start) / PAGE_SIZE for "
           "every address that stays mapped", when="vma_change")
def _i3_pgoff():
    def pairs(S, ev):
        return [(o, n) for o in ev["old"] for n in ev["new"]]

    def body(S, B, on, ev):
        o, n = on
        overlap = B.And(o["start"] < n["end"], n["start"] < o["end"])
        return B.Implies(overlap, (n["pgoff"] - (n["start"] >> PAGE_SHIFT)) ==
                         (o["pgoff"] - (o["start"] >> PAGE_SHIFT)))

    def message(S, on, ev):
        o, n = on
        addr = max(o["start"], n["start"])
        return (f"{ev['what']}: address {addr:#x} had file page {_pgoff_at(o, addr):#x} in "
                f"{_vma_text(o)} and has {_pgoff_at(n, addr):#x} in {_vma_text(n)}: it now "
                f"maps another part of the file")
    return (pairs, body, message)


# --- I4: mapcount -------------------------------------------------------------------------------
def mapped_frame(S, B, f):
    """An allocated frame that PTEs can map and count: not free, not the shared zero page, not a
    page-table page."""
    return B.Not(B.Or(S.frame_free(f), S.frame_is_zero(f), S.frame_is_table(f)))


def _mapped_frames(S, ev):
    return S.select(S.frames(), mapped_frame)


@invariant("I4.nonneg", "no page's mapcount is negative", when="step", footprint=("page",))
def _i4_nonneg():
    return (_mapped_frames,
            lambda S, B, f, ev: S.mapcount(f) >= 0,
            lambda S, f, ev: f"page pfn {f.pfn} has mapcount {S.mapcount(f)} (_mapcount "
                             f"{S.mapcount(f) - 1})")


@invariant("I4.exact", "each page's mapcount equals the number of PTEs that map it",
           when="quiescent")
def _i4_exact():
    def body(S, B, f, ev):
        return S.mapcount(f) == B.count(S.ptes(), lambda p: maps_frame(S, B, p, f))

    def message(S, f, ev):
        from .logic import CONCRETE as B
        n = B.count(S.ptes(), lambda p: maps_frame(S, B, p, f))
        return f"page pfn {f.pfn} has mapcount {S.mapcount(f)} but {n} PTEs map it"
    return (_mapped_frames, body, message)


@invariant("I4.bad_pte", "zap_pte_range never finds a negative mapcount (print_bad_pte)",
           when="bad_pte")
def _i4_bad_pte():
    return complaint(lambda S, e: e["text"])


# --- further properties -------------------------------------------------------------------------
@invariant("VMA_TREE.sorted", "the VMA tree is sorted and non-overlapping, each VMA non-empty",
           when="step", footprint=("mm_mt",))
def _vma_sorted():
    def domain(S, ev):
        return [(mm, a, b) for mm in S.mms() for a, b in S.vma_pairs(mm)] + \
               [(mm, v, None) for mm in S.mms() for v in S.vmas(mm)]

    def body(S, B, x, ev):
        mm, a, b = x
        if b is None:
            return S.vma_start(a) < S.vma_end(a)
        return S.vma_end(a) <= S.vma_start(b)

    return (domain, body, lambda S, x, ev: f"mm{S.mm_id(x[0])}: {x[1]} and {x[2]} overlap or are "
                                           f"out of order" if x[2] is not None else
            f"mm{S.mm_id(x[0])}: {x[1]} is empty")


@invariant("VMA_TREE.map_count", "mm->map_count equals the number of VMAs", when="quiescent")
def _map_count():
    # exit_mmap destroys the tree and leaves map_count as it was (an mm kept alive by mmgrab
    # after its last user is gone): only live mms are checked.
    return (lambda S, ev: [m for m in _event_mms(S, ev) if not S.mm_exited(m)],
            lambda S, B, mm, ev: S.map_count(mm) == S.tree_size(mm),
            lambda S, mm, ev: f"mm{S.mm_id(mm)} map_count is {S.map_count(mm)} but the tree "
                              f"holds {S.tree_size(mm)} VMAs")


@invariant("PTE_IN_VMA", "no PTE outside a VMA", when="quiescent")
def _pte_in_vma():
    return (_mm_ptes,
            lambda S, B, p, ev: S.vm_covers(S.pte_mm(p), S.pte_vpn(p)),
            lambda S, p, ev: f"mm{S.mm_id(p.mm)} has a PTE at {_addr(p.vpn)} that "
                             f"{_pte_text(S, p)} but no VMA covers it")


@invariant("PTE_IN_VMA.write", "no writable PTE in a VMA without VM_WRITE", when="quiescent")
def _pte_in_vma_write():
    # mprotect changes vm_flags (under the VMA's write lock) before change_protection takes
    # the write bit away, so in between a PTE may allow more than its VMA: quiescent. A PTE
    # that stays writable after mprotect(PROT_READ) lets user space write memory it asked to
    # be read-only (a private file page, a page a later fork shares); the kernel never sets
    # a write bit the VMA does not allow (a FOLL_FORCE write to a read-only private mapping
    # breaks COW into a read-only PTE).
    return (_mm_ptes,
            lambda S, B, p, ev: B.Implies(B.And(S.pte_present(p), S.pte_write(p)),
                                          S.vm_writable(S.pte_mm(p), S.pte_vpn(p))),
            lambda S, p, ev: f"mm{S.mm_id(p.mm)} has a writable PTE at {_addr(p.vpn)} that "
                             f"{_pte_text(S, p)} in a VMA without VM_WRITE")


@invariant("PTE_IN_VMA.table", "every page table below the pgd translates some address of a "
           "VMA", when="quiescent", concrete_only=True)
def _pte_in_vma_table():
    # free_pgtables() frees, after an unmap, every table whose whole span lies between the
    # VMAs left on either side (floor = prev->vm_end, ceiling = next->vm_start, rounded out
    # to the table at each level by free_pgd_range and free_p?d_range); a table it keeps
    # spans part of prev or next. Tables are only allocated inside VMAs (faults, GUP,
    # fork's copy_page_range), and PT_RECLAIM and exit_mmap only free. So once the mm is
    # quiescent, a table that spans no VMA is one free_pgtables() failed to free: leaked
    # until exit (VmPTE shows it; a later mapping there would reuse it).
    return (lambda S, ev: [t for m in _event_mms(S, ev) if not S.mm_exited(m)
                           for t in S.page_tables_of(m)],
            lambda S, B, t, ev: S.vm_intersects(t[0], t[2], t[3]),
            lambda S, t, ev: f"mm{S.mm_id(t[0])} keeps a {_LEVEL_TEXT[t[1]]} table for "
                             f"{t[2]:#x}-{t[3]:#x}, where no VMA is: free_pgtables() did not "
                             f"free it")


_LEVEL_TEXT = {1: "PTE", 2: "PMD", 3: "PUD"}


@invariant("REFCOUNT", "refcount >= mapcount for every allocated page", when="quiescent")
def _refcount():
    return (_mapped_frames,
            lambda S, B, f, ev: S.refcount(f) >= S.mapcount(f),
            lambda S, f, ev: f"page pfn {f.pfn} has refcount {S.refcount(f)} < mapcount "
                             f"{S.mapcount(f)}")


@invariant("REFCOUNT.exact", "every reference to an allocated page has a holder: refcount is "
           "its mapcount plus the page cache's or swap cache's reference (and the folio lock "
           "holder's)", when="quiescent",
           concrete_only=True)
def _refcount_exact():
    # When no thread is in the kernel, the only holders of a page reference the model has are
    # the PTEs that map it (one reference each, taken with the rmap), the page cache (one,
    # filemap_add_folio / shmem_add_to_page_cache, dropped at removal), the swap cache (one,
    # swap_cache_add_folio, dropped by swap_cache_del_folio) and a path that holds
    # the folio locked (a migration between try_to_migrate and remove_migration_ptes: a
    # state the bounded tables build). Every other reference
    # (a fault's folio_get, GUP's pin, migration's isolation, an mmu_gather batch, a swap-in's
    # new folio) belongs to a kernel path and is dropped before it returns: a page with a
    # reference nobody holds is leaked (it is never freed), one with fewer has a reference
    # some holder will put twice (a use-after-free once the count reaches 0 early). The
    # abstract state keeps no holders (its pins are unnamed references): concrete only.
    return (_mapped_frames,
            lambda S, B, f, ev: S.refcount_unheld(f) == 0,
            lambda S, f, ev: f"page pfn {f.pfn} has refcount {S.refcount(f)} but its holders "
                             f"(mapcount {S.mapcount(f)}, page cache "
                             f"{1 if S.frame_pagecache(f) else 0}) account for "
                             f"{S.refcount(f) - S.refcount_unheld(f)}: "
                             + ("a reference is leaked" if S.refcount_unheld(f) > 0 else
                                "a holder's reference was dropped twice"))


@invariant("LOST_WRITE", "a clean page-cache page that writeback can clean has no writable, "
           "dirty TLB entry that no dirty PTE accounts for", when="step",
           footprint=("page", "tlb", "pte", "lock"))
def _lost_write():
    # Judged only where another party can observe it. The party that cleans a page is
    # writeback: folio_clear_dirty_for_io() -> folio_mkclean() walks the rmap and takes the
    # page-table lock of every table that still maps the folio, and every path that clears a
    # dirty PTE marks the folio dirty (and, with 1cf35d47712d, flushes) before it drops that
    # lock (zap_present_folio_ptes). So while a page-table lock is held and the folio is
    # still mapped (mapcount > 0: folio_mkclean would find the table and wait for the lock),
    # the state is not observable, and it is judged when the lock is released ("lock" is in
    # the footprint). A folio whose rmap is already gone (mapcount 0: before 5df397dec7c4)
    # is judged at once: folio_mkclean returns without waiting. shmem (swap-backed) folios
    # are never cleaned by writeback (reclaim unmaps and flushes before it swaps them out),
    # so they cannot lose a write this way.
    def judged(S, B, t):
        # (the domain, so that the PTE scan below runs only for entries that need it)
        # (and only an entry a user store can still use: _usable_by_user)
        f = S.frame(S.tlb_pfn(t))
        behind_ptl = B.And(S.page_table_locked(), S.mapcount(f) > 0)
        return B.And(_usable_by_user(S, B, t), S.frame_pagecache(f),
                     B.Not(S.frame_swapbacked(f)), S.tlb_write(t), S.tlb_dirty(t),
                     B.Not(behind_ptl))

    def body(S, B, t, ev):
        f = S.frame(S.tlb_pfn(t))
        dirty_pte = B.exists(S.ptes(), lambda p: B.And(maps_frame(S, B, p, f), S.pte_dirty(p)))
        return B.Or(S.frame_dirty(f), dirty_pte)

    return (lambda S, ev: S.select(S.tlb_entries(), judged), body,
            lambda S, t, ev: (f"{_tlb_text(t)}, a page-cache page that writeback considers "
                              f"clean and that no PTE maps dirty: stores through this entry "
                              f"will never be written back (lost write)"))


@invariant("LOST_WRITE.cow", "a COW copy that replaces a page holds every store made through "
           "the translation it replaces", when="cow_copy", concrete_only=True)
def _lost_write_cow():
    # mm/memory.c wp_page_copy() copies the old page, then under the PTL clears the old PTE
    # and flushes it (ptep_clear_flush) before it sets the new one: "so that no CPU can have
    # the old and the new translation at the same time". A store through the old
    # translation lands in the old page; made after the copy read it and before the flush
    # retired it, it is in the old page only, and the faulting mm reads the copy from then
    # on: the store is lost (fb49c455323f: a fork that did not write-lock the parent's VMAs
    # let a VMA-locked fault copy a page while another CPU's TLB still held the writable
    # translation fork was write-protecting). The write fault itself proves the PTE was
    # read-only, so such a translation is stale: its flush is still owed. Only the last
    # store to each byte is judged, and only when the copy's byte differs from it (a store of
    # the value already there loses nothing).
    def domain(S, ev):
        last = {}
        for cpu, offset, value in ev["stores"]:
            last[offset] = (cpu, offset, value)
        return list(last.values())

    def body(S, B, st, ev):
        return S.frame_byte(ev["dst"], st[1]) == st[2]

    return (domain, body, lambda S, st, ev: (
        f"CPU{st[0]} stored {st[2]:#x} at {ev['addr'] + st[1]:#x} through a stale writable "
        f"translation of pfn {ev['src']} after wp_page_copy copied that page for "
        f"mm{S.mm_id(ev['mm'])}; the copy (pfn {ev['dst']}) that now replaces it has "
        f"{S.frame_byte(ev['dst'], st[1]):#x} there: the store is lost"))


@invariant("LOST_WRITE.notify", "a writable PTE of a shared mapping of a regular file maps a "
           "dirty page", when="quiescent", concrete_only=True)
def _lost_write_notify():
    # Write-notify (mm/vma.c vma_wants_writenotify: a file with ->page_mkwrite or dirty
    # accounting): the first store to a clean page of a shared file mapping must fault, so
    # that ->page_mkwrite and the dirty accounting see it. A PTE is made writable only by
    # that fault, after the page was marked dirty (do_shared_fault, wp_page_shared ->
    # filemap_page_mkwrite; mprotect only for a PTE already dirty: can_change_pte_writable),
    # and writeback clears PG_dirty only after folio_mkclean write-protected every PTE
    # (folio_clear_dirty_for_io). A writable PTE to a clean page lets stores in that the
    # file never hears of. Quiescent: the fault holds the PTL from set_pte_at to the dirty
    # marking's end, and writeback is a kernel actor.
    def body(S, B, p, ev):
        return B.Not(S.pte_writes_clean_shared_file(p))

    return (_mm_ptes, body, lambda S, p, ev: (
        f"mm{S.mm_id(p.mm)} maps the clean page-cache page pfn {S.pte_pfn(p)} writable at "
        f"{_addr(p.vpn)} in a shared mapping of a regular file: stores through it reach the "
        f"page without the write fault that marks it dirty (write-notify)"))


@invariant("LOST_WRITE.clean", "a clean page-cache page of a regular file that no PTE maps "
           "dirty holds what the file has on disk", when="quiescent", concrete_only=True)
def _lost_write_clean():
    # PG_dirty is the kernel's promise that a page-cache page differs from its backing
    # store only while it is set (or while PG_writeback is: the I/O is in flight): reclaim
    # frees a clean, unmapped file page without writing it (shrink_folio_list), and the next
    # fault reads the disk again. Every path that changes a file page marks it dirty first
    # (a write fault: do_shared_fault / wp_page_shared -> fault_dirty_shared_page; zap and
    # folio_mkclean transfer a dirty PTE; pwrite), and writeback clears PG_dirty only to
    # write the page (folio_clear_dirty_for_io -> ->writepages). A clean page whose bytes
    # differ from the disk holds stores that will be dropped. A dirty PTE still owes its
    # stores to the page's dirty bit (zap and folio_mkclean move it), so such a page is not
    # judged; a store through a stale TLB entry into a clean page is also LOST_WRITE's.
    # Judged with no thread in the kernel anywhere (writeback is a kernel actor).
    return (lambda S, ev: S.clean_file_pages(),
            lambda S, B, page, ev: S.page_matches_disk(page),
            lambda S, page, ev: (f"page pfn {page.pfn}, index {page.index} of a regular "
                                 f"file, is clean and under no writeback, but its bytes "
                                 f"differ from the file's disk image: the stores in it will "
                                 f"never be written (lost write)"))


@invariant("WALKER", "no zap of a VMA while a page walker is inside it", when="zap_under_walker")
def _walker():
    return complaint(lambda S, e: f"the OOM reaper zaps {e['vma']} while exit_mmap's munlock "
                                  f"walker is inside it: the walker will use a PMD it already "
                                  f"checked")


@invariant("EXIT_CLEAN", "after exit_mmap no VMA, no PTE and no page table but the pgd is left",
           when="exit_mmap_done")
def _exit_clean():
    def domain(S, ev):
        mm = ev["mm"]
        return [("vmas", mm), ("ptes", mm), ("tables", mm)]

    def body(S, B, x, ev):
        what, mm = x
        if what == "vmas":
            return S.tree_size(mm) == 0
        if what == "ptes":
            return B.count(S.ptes_of(mm), lambda p: True) == 0
        return B.count(S.table_frames(mm), lambda t: True) == 1

    return (domain, body, lambda S, x, ev: f"exit_mmap of mm{S.mm_id(x[1])} left {x[0]} behind")


@invariant("PT_LIFETIME.reader", "a page-table page is not freed while a lockless walker "
           "(an RCU or IRQ-disabled read-side section: GUP-fast, pte_offset_map) still holds "
           "a pointer to it", when="pgtable_free")
def _pt_lifetime_reader():
    # The grace period (impl/rcu.py) waits for every section open when the table was
    # queued; a walker that reached the table in a section that began later found it
    # through a pmd that was not yet cleared, or through a stale pointer: either way it can
    # still read the page after it is freed and reused.
    return (lambda S, ev: S.table_readers(ev["pfn"], ev["gen"]),
            lambda S, B, who, ev: False,
            lambda S, who, ev: (f"page-table page pfn {ev['pfn']} is freed while {who} is "
                                f"inside a read-side section that reached it: its walk will "
                                f"read a page that is no longer this page table"))


@invariant("RMAP.anon_vma", "no PTE maps an anonymous page whose anon_vma has been freed",
           when="quiescent", concrete_only=True)
def _rmap_anon_vma():
    # folio->mapping holds no reference: the anon_vma lives as long as a VMA that can map
    # the page is chained to it. A mapped page whose anon_vma is freed is a use-after-free
    # waiting for the next rmap walk (folio_lock_anon_vma_read from reclaim, migration,
    # KSM); quiescent, because between a zap's PTE clear and its rmap removal the page is
    # still counted as mapped.
    def body(S, B, p, ev):
        return B.Not(S.pte_maps_freed_anon_vma(p))

    return (_mm_ptes, body, lambda S, p, ev: (
        f"mm{S.mm_id(p.mm)} maps the anonymous page pfn {S.pte_pfn(p)} at {_addr(p.vpn)}, but "
        f"its anon_vma (folio->mapping) has been freed: no VMA chained to it maps the page, "
        f"and the next rmap walk of the page reads freed memory"))


@invariant("RMAP.anon_exclusive", "a writable PTE maps an anonymous page only when it is the "
           "page's only mapping (and no swap entry names its swap-cache slot)",
           when="quiescent")
def _rmap_anon_exclusive():
    # The COW rule (mm/memory.c, mm/rmap.c): an anonymous page may be mapped writable only
    # while it is exclusive to one mapping (PageAnonExclusive: do_anonymous_page and a COW
    # copy map a new page, wp_can_reuse_anon_folio reuses one only when no other reference
    # is left); fork's copy_present_pte write-protects the parent's PTE before the child
    # shares the page (folio_try_dup_anon_rmap_pte clears the exclusive bit). The model's
    # pages are order-0 and KSM is not modelled, so "exclusive" is mapcount 1. Quiescent:
    # inside fork the parent's PTE is still writable when the child's mapcount is taken
    # (copy_present_pte does both under the parent's page-table lock). A page in the swap
    # cache whose slot a swap PTE still references is not exclusive either, whatever its
    # mapcount: the fault on that PTE maps this very page (do_swap_page maps such a page
    # read-only, and wp_can_reuse_anon_folio reuses it only after folio_free_swap).
    def judged(S, B, p):
        f = S.frame(S.pte_pfn(p))
        return B.And(S.pte_present(p), B.Not(S.pte_special(p)), S.pte_write(p),
                     S.frame_anon(f))

    def domain(S, ev):
        return S.select(_mm_ptes(S, ev), judged)

    def body(S, B, p, ev):
        f = S.frame(S.pte_pfn(p))
        return B.And(S.mapcount(f) == 1, B.Not(S.frame_swap_shared(f)))

    return (domain, body, lambda S, p, ev: (
        f"mm{S.mm_id(p.mm)} maps the anonymous page pfn {S.pte_pfn(p)} writable at "
        f"{_addr(p.vpn)} while the page has mapcount {S.mapcount(S.frame(S.pte_pfn(p)))}"
        + (" and a swap entry elsewhere still names its swap-cache slot"
           if S.frame_swap_shared(S.frame(S.pte_pfn(p))) else "")
        + ": a store through it changes what the other mappings read (COW broken)"))


@invariant("RMAP.file", "a PTE of a file VMA that maps a page-cache page maps the page the "
           "file's page cache holds at the offset the VMA maps there", when="quiescent",
           concrete_only=True)
def _rmap_file():
    # The page-cache rule of mm/truncate.c and the fault paths: a page leaves the cache
    # (truncation, hole punch, reclaim, migration) only after every PTE mapping it is gone,
    # under the folio lock: truncate_cleanup_folio unmaps a page a racing fault mapped again
    # after unmap_mapping_range, __remove_mapping freezes the references a mapping holds,
    # and a fault maps a page only under its lock after re-checking folio->mapping
    # (shmem_get_folio, filemap_fault, next_uptodate_folio). A PTE left mapping a truncated
    # page lets user space read and write memory the file no longer has (data written there
    # is lost, the page outlives the file's view of it); one of the wrong index maps other
    # file data. Quiescent: a fault between its lookup and its set_pte_at, or a truncation
    # between its unmap and its removal, is inside the kernel.
    def body(S, B, p, ev):
        return B.Not(S.pte_maps_foreign_file_page(p))

    return (_mm_ptes, body, lambda S, p, ev: (
        f"mm{S.mm_id(p.mm)} maps the page-cache page pfn {S.pte_pfn(p)} at {_addr(p.vpn)}, "
        f"but the file's page cache does not hold it at the offset that VMA maps there "
        f"(truncated, or another index): user space reads and writes memory the file no "
        f"longer has"))


@invariant("RMAP.private_file", "a private mapping maps a page-cache page only read-only",
           when="quiescent", concrete_only=True)
def _rmap_private_file():
    # The COW rule for file pages (mm/memory.c): a store to a MAP_PRIVATE mapping must reach
    # a private copy, never the file. A read fault maps the page-cache page read-only
    # (do_read_fault, fault-around); a write fault copies (do_cow_fault); a write to a
    # read-only page-cache PTE copies (do_wp_page: wp_page_copy, a page that is not
    # anonymous is never reused in a private mapping); mprotect makes a PTE of a private
    # mapping writable only for an exclusive anonymous page (can_change_pte_writable); fork
    # copies a PTE as it is. Quiescent: the fault paths hold the PTL from the check to the
    # set_pte_at.
    def body(S, B, p, ev):
        return B.Not(S.pte_writes_private_pagecache(p))

    return (_mm_ptes, body, lambda S, p, ev: (
        f"mm{S.mm_id(p.mm)} maps the page-cache page pfn {S.pte_pfn(p)} writable at "
        f"{_addr(p.vpn)} in a private mapping: a store through it changes the file (and "
        f"what every other mapping of it reads) instead of a COW copy"))


@invariant("RMAP.chains", "every VMA on an anon_vma's interval tree or a file's i_mmap is a "
           "live VMA of its mm", when="quiescent", concrete_only=True)
def _rmap_chains():
    # The reverse maps hold no reference on a VMA: whoever removes a VMA from its mm
    # unlinks it first (remove_vma after free_pgtables' unlink_anon_vmas and
    # unlink_file_vma_batch_process; vma_complete for the VMA a merge removes; the error
    # paths of split and expand). A VMA left on a chain after vm_area_free is what the next
    # rmap walk (reclaim, migration, truncation's unmap_mapping_range) dereferences: a
    # use-after-free. Judged with no thread in the kernel anywhere (spec/check.py: the
    # chains of every mm, the freed ones included): a munmap, a merge or an exit holds a
    # detached VMA on its chains until it unlinks it.
    def domain(S, ev):
        return S.rmap_chain_entries()

    def body(S, B, x, ev):
        return S.vma_live(x[1])

    def message(S, x, ev):
        owner, v = x
        where = "i_mmap of file" if not owner.is_anon else "anon_vma"
        return (f"the {where} {owner.id} still lists the VMA {v.vm_start:#x}-{v.vm_end:#x} of "
                f"mm{S.mm_id(v.vm_mm)}, which is no longer in that mm's tree: the next rmap "
                f"walk reads a freed vm_area_struct")

    return (domain, body, message)


# --- the kernel's own complaints ---------------------------------------------------------------
# print_bad_pte (I4.bad_pte) and check_mm's bad rss-counter (I2.check_mm) are above, in the
# groups of what they detect; BUG_ON and the VM_BUG_ON family stop the kernel and are reported
# by the checker as "BUG" (impl/sched.py KernelBug).
@invariant("KERNEL.warn", "the kernel never WARNs", when="warn")
def _kernel_warn():
    return complaint(lambda S, e: f"WARNING: {e['text']}")


@invariant("KERNEL.pgtable_leak", "when an mm is freed its pgd maps no page table",
           when="pgtable_leak")
def _kernel_pgtable_leak():
    return complaint(lambda S, e: f"mm{S.mm_id(e['mm'])} freed with {len(e['tables'])} page "
                                  f"table(s) still linked from its pgd: leaked "
                                  + ", ".join(f"L{lvl} at {base:#x} (pfn {pfn})"
                                              for lvl, base, pfn in e["tables"]))


@invariant("KERNEL.pgtables_bytes", "check_mm finds pgtables_bytes zero when the mm is freed",
           when="bad_pgtables_bytes")
def _kernel_pgtables_bytes():
    return complaint(lambda S, e: f"check_mm: BUG: non-zero pgtables_bytes on freeing mm "
                                  f"mm{S.mm_id(e['mm'])}: {e['value']}")


def by_when(when: str) -> list[Invariant]:
    # Asked after every step: computed once per moment (the registry is complete once this
    # module is imported; register() empties the cache all the same).
    out = _BY_WHEN.get(when)
    if out is None:
        out = _BY_WHEN[when] = [inv for inv in REGISTRY.values() if inv.when == when]
    return out


def groups() -> list[str]:
    return list(GROUPS)
