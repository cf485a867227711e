"""``struct mm_struct`` and ``struct vm_area_struct``, with the VMA tree and its iterator.

Models include/linux/mm_types.h, the counter helpers of include/linux/mm.h (get_mm_counter,
add_mm_counter, mm_counter ...), the tlb_flush_pending helpers of include/linux/mm_types.h
(inc_tlb_flush_pending, dec_tlb_flush_pending, mm_tlb_flush_pending, mm_tlb_flush_nested),
and the VMA-tree API of include/linux/mm.h / mm/vma.h shaped like the maple tree's
(``VMA_ITERATOR``, vma_find, vma_next, vma_prev, vma_iter_store, find_vma, vma_lookup,
for_each_vma).

Simplifications: the maple tree is a sorted list keyed by vm_start (same answers, no nodes);
per-VMA locks are not modelled (faults take mmap_lock for read, which serialises with munmap at
least as strongly); the rss counters are plain counters rather than per-CPU counters, and
zap_pte_range's local rss[] batch is the only batching of them.
"""

from __future__ import annotations

import bisect
from typing import Iterator, Optional

from . import sched
from .constants import (MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, NR_MM_COUNTERS, PAGE_SHIFT,
                        RSS_COUNTER_NAMES, VM_EXEC, VM_READ, VM_SHARED, VM_WRITE)
from .locks import RwSem, SpinLock
from .page import Page, folio_test_anon, folio_test_swapbacked


class vm_area_struct:
    """A VMA. ``anon_vma`` is the AnonVma its anonymous pages point at (mm/rmap.c);
    ``vm_file`` the mapped file (an :class:`~unmapcheck.impl.filemap.File`) or None."""

    __slots__ = ("id", "vm_start", "vm_end", "vm_mm", "vm_flags", "vm_pgoff", "vm_file",
                 "anon_vma", "anon_vma_chain", "detached", "walkers", "zappers",
                 "vm_refcnt", "vm_lock_seq")

    def __init__(self, mm: "mm_struct", start: int, end: int, flags: int, pgoff: int = 0,
                 file=None):
        self.id = mm.machine.next_id("vma")
        self.vm_start = start
        self.vm_end = end
        self.vm_mm = mm
        self.vm_flags = flags
        self.vm_pgoff = pgoff
        self.vm_file = file
        self.anon_vma = None
        # vma->anon_vma_chain (the same_vma list), as the AnonVmas it links, newest first.
        self.anon_vma_chain: list = []
        self.detached = False
        # The per-VMA lock (impl/mmap_lock.py): 0 detached, 1 attached, +1 per reader,
        # +VMA_LOCK_OFFSET while a writer waits; write-locked iff vm_lock_seq is the mm's
        # mm_lock_seq (vma_lock_init: UINT_MAX).
        self.vm_refcnt = 1
        self.vm_lock_seq = (1 << 32) - 1
        # Model-only witnesses of the walker-stability invariant (N5, bug 27ae357fa82b):
        # how many page walkers (munlock) and zappers are inside this VMA right now.
        self.walkers = 0
        self.zappers = 0

    @property
    def obj(self) -> tuple:
        return ("vma", self.id)

    def __repr__(self) -> str:
        return f"<vma {self.vm_start:#x}-{self.vm_end:#x} {vma_perms(self)} pgoff={self.vm_pgoff}>"


def vma_pages(vma: vm_area_struct) -> int:
    return (vma.vm_end - vma.vm_start) >> PAGE_SHIFT


def vma_is_anonymous(vma: vm_area_struct) -> bool:
    """include/linux/mm.h vma_is_anonymous(): no vm_ops (no file)."""
    return vma.vm_file is None


def vma_perms(vma: vm_area_struct) -> str:
    """The "rw-p" column of /proc/PID/maps (fs/proc/task_mmu.c show_map_vma)."""
    f = vma.vm_flags
    return ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + \
        ("x" if f & VM_EXEC else "-") + ("s" if f & VM_SHARED else "p")


def linear_page_index(vma: vm_area_struct, addr: int) -> int:
    """include/linux/pagemap.h linear_page_index(): the file page offset of *addr*."""
    return ((addr - vma.vm_start) >> PAGE_SHIFT) + vma.vm_pgoff


class MapleTree:
    """mm->mm_mt: the VMAs sorted by address, non-overlapping (checked by the invariants)."""

    def __init__(self, owner: str):
        self.owner = owner
        self.starts: list[int] = []
        self.vmas: list[vm_area_struct] = []

    @property
    def obj(self) -> tuple:
        return ("mm_mt", self.owner)

    def __iter__(self) -> Iterator[vm_area_struct]:
        return iter(list(self.vmas))

    def __len__(self) -> int:
        return len(self.vmas)

    def _first_ending_after(self, addr: int) -> int:
        i = bisect.bisect_right(self.starts, addr)
        if i > 0 and self.vmas[i - 1].vm_end > addr:
            return i - 1
        return i

    def store(self, vma: vm_area_struct) -> None:
        """Insert *vma* in address order."""
        i = bisect.bisect_left(self.starts, vma.vm_start)
        self.starts.insert(i, vma.vm_start)
        self.vmas.insert(i, vma)

    def erase(self, vma: vm_area_struct) -> None:
        """Remove *vma*."""
        i = self.vmas.index(vma)
        del self.starts[i]
        del self.vmas[i]

    def resort(self) -> None:
        """After a VMA's vm_start changed in place (vma_adjust-style updates)."""
        pairs = sorted(zip((v.vm_start for v in self.vmas), range(len(self.vmas))))
        self.vmas = [self.vmas[i] for _, i in pairs]
        self.starts = [v.vm_start for v in self.vmas]


class VmaIterator:
    """``struct vma_iterator`` / ``VMA_ITERATOR(vmi, mm, addr)``: a maple state over a tree.

    Like the maple state, it is either *at an address* (after ``VMA_ITERATOR`` or
    ``vma_iter_set``: ``cur`` is None) or *on a VMA* (``cur``, the one the last walk
    returned). ``vma_find(max)`` returns the next VMA below *max*: from an address, the first
    that ends after it; from a VMA, the one after it. ``vma_prev()`` returns the VMA before:
    from an address, the last that ends at or below it; from a VMA, the one before it.
    ``vma_next`` is ``vma_find(ULONG_MAX)``.
    """

    def __init__(self, tree: MapleTree, addr: int = 0):
        self.tree = tree
        self.index = addr
        self.cur: Optional[vm_area_struct] = None

    def _read(self, label: str) -> None:
        sched.point(label, reads=(self.tree.obj,))

    def _on(self, vma: Optional[vm_area_struct]) -> Optional[vm_area_struct]:
        if vma is not None:
            self.cur = vma
            self.index = vma.vm_start
        return vma

    def vma_find(self, max_addr: int) -> Optional[vm_area_struct]:
        self._read("vma_find")
        t = self.tree
        after = self.cur.vm_end - 1 if self.cur is not None else self.index
        i = t._first_ending_after(after)
        if self.cur is not None:
            while i < len(t.vmas) and t.vmas[i].vm_start < self.cur.vm_end:
                i += 1
        if i < len(t.vmas) and t.vmas[i].vm_start < max_addr:
            return self._on(t.vmas[i])
        return None

    def vma_next(self) -> Optional[vm_area_struct]:
        from .constants import ULONG_MAX
        return self.vma_find(ULONG_MAX)

    def vma_prev(self) -> Optional[vm_area_struct]:
        self._read("vma_prev")
        t = self.tree
        below = self.cur.vm_start if self.cur is not None else self.index
        i = bisect.bisect_left(t.starts, below) - 1
        while i >= 0 and t.vmas[i].vm_end > below:
            i -= 1
        if i < 0:
            # Nothing before: like the maple state's underflow, the next vma_find() starts
            # again at the address the search began from.
            self.vma_iter_set(below)
            return None
        return self._on(t.vmas[i])

    def vma_iter_set(self, addr: int) -> None:
        self.index = addr
        self.cur = None

    def store(self, vma: vm_area_struct) -> None:
        """vma_iter_store(): insert (the caller removed or trimmed what overlapped)."""
        sched.point("vma_iter_store", writes=(self.tree.obj,))
        self.tree.store(vma)

    def clear(self, vma: vm_area_struct) -> None:
        """vma_iter_clear_gfp() over exactly one VMA's range: remove it from the tree."""
        sched.point("vma_iter_clear", writes=(self.tree.obj,))
        self.tree.erase(vma)


def find_vma(mm: "mm_struct", addr: int) -> Optional[vm_area_struct]:
    """mm/mmap.c find_vma(): the first VMA with vm_end > addr (it may start above addr)."""
    sched.point("find_vma", reads=(mm.mm_mt.obj,))
    t = mm.mm_mt
    i = t._first_ending_after(addr)
    return t.vmas[i] if i < len(t.vmas) else None


def vma_lookup(mm: "mm_struct", addr: int) -> Optional[vm_area_struct]:
    """include/linux/mm.h vma_lookup(): the VMA containing addr, or None."""
    vma = find_vma(mm, addr)
    if vma is not None and vma.vm_start <= addr:
        return vma
    return None


def find_vma_prev(mm: "mm_struct", addr: int):
    """mm/mmap.c find_vma_prev(): (vma, prev)."""
    vma = find_vma(mm, addr)
    t = mm.mm_mt
    i = t.vmas.index(vma) if vma is not None else len(t.vmas)
    prev = t.vmas[i - 1] if i > 0 else None
    return vma, prev


class mm_struct:
    """The address space. Counters and flags are the kernel's; ``cpumask`` is mm_cpumask;
    ``tlb_flush_pending`` the atomic of 0a2dd266dd6b; ``rss_stat`` the four counters."""

    def __init__(self, machine):
        self.machine = machine
        self.zone = machine.zone
        self.id = machine.next_id("mm")
        from .pgtable import LEVEL_PGD
        pgd = machine.zone.alloc_page("pgtable")     # pgd_alloc()
        pgd.level = LEVEL_PGD
        pgd.table = {}
        self.pgd: Page = pgd
        self.mm_mt = MapleTree(f"mm{self.id}")
        self.mmap_lock = RwSem(f"mmap_lock:mm{self.id}")
        self.page_table_lock = SpinLock(f"page_table_lock:mm{self.id}")
        self.rss_stat = [0] * NR_MM_COUNTERS
        self.map_count = 0
        self.total_vm = 0
        self.locked_vm = 0
        self.data_vm = 0
        self.exec_vm = 0
        self.stack_vm = 0
        self.pgtables_bytes = 0
        self.tlb_flush_pending = 0
        # mm->tlb_flush_batched (mm/rmap.c, deferred flushes of reclaim and migration).
        self.tlb_flush_batched = 0
        self.cpumask: set[int] = set()
        # mm->mm_lock_seq (impl/mmap_lock.py): odd while mmap_lock is held for write.
        self.mm_lock_seq = 0
        # mm->context.tlb_gen (x86: impl/x86_tlb.py); the model's ctx_id is self.id.
        self.tlb_gen = 0
        self.mm_users = 1
        self.mm_count = 1
        self.flags = 0
        self.def_flags = 0
        self.oom_victim = False
        self.hiwater_rss = 0
        self.hiwater_vm = 0
        self.freed = False
        machine.mms.append(self)

    def __repr__(self) -> str:
        return f"<mm{self.id} vmas={len(self.mm_mt)} rss={self.rss_stat}>"


# --- rss counters (include/linux/mm.h) --------------------------------------------------------
def rss_obj(mm: mm_struct) -> tuple:
    return ("rss", mm.id)


def get_mm_counter(mm: mm_struct, member: int) -> int:
    sched.point("get_mm_counter", reads=(rss_obj(mm),))
    return mm.rss_stat[member]


def add_mm_counter(mm: mm_struct, member: int, value: int) -> None:
    sched.point(f"add_mm_counter({RSS_COUNTER_NAMES[member]}, {value:+d})",
                adds=(rss_obj(mm),))
    mm.rss_stat[member] += value


def inc_mm_counter(mm: mm_struct, member: int) -> None:
    add_mm_counter(mm, member, 1)


def dec_mm_counter(mm: mm_struct, member: int) -> None:
    add_mm_counter(mm, member, -1)


def add_mm_rss_vec(mm: mm_struct, rss: list[int]) -> None:
    """mm/memory.c add_mm_rss_vec(): apply a path's batched rss deltas."""
    for i in range(NR_MM_COUNTERS):
        if rss[i]:
            add_mm_counter(mm, i, rss[i])


def mm_counter_file(page: Page) -> int:
    """include/linux/mm.h mm_counter_file(): shmem pages count as MM_SHMEMPAGES."""
    if folio_test_swapbacked(page):
        return MM_SHMEMPAGES
    return MM_FILEPAGES


def mm_counter(page: Page) -> int:
    """include/linux/mm.h mm_counter()."""
    if folio_test_anon(page):
        return MM_ANONPAGES
    return mm_counter_file(page)


def get_mm_rss(mm: mm_struct) -> int:
    return mm.rss_stat[MM_FILEPAGES] + mm.rss_stat[MM_ANONPAGES] + mm.rss_stat[MM_SHMEMPAGES]


# --- tlb_flush_pending (include/linux/mm_types.h) ---------------------------------------------
def _pending_obj(mm: mm_struct) -> tuple:
    return ("tlb_flush_pending", mm.id)


def inc_tlb_flush_pending(mm: mm_struct) -> None:
    sched.point("inc_tlb_flush_pending", adds=(_pending_obj(mm),))
    mm.tlb_flush_pending += 1


def dec_tlb_flush_pending(mm: mm_struct) -> None:
    sched.point("dec_tlb_flush_pending", adds=(_pending_obj(mm),))
    mm.tlb_flush_pending -= 1


def mm_tlb_flush_nested(mm: mm_struct) -> bool:
    """``atomic_read(&mm->tlb_flush_pending) > 1``: another thread is batching too."""
    sched.point("mm_tlb_flush_nested", reads=(_pending_obj(mm),))
    return mm.tlb_flush_pending > 1


# --- mm->flags bit operations -----------------------------------------------------------------
def mm_flags_set(mm: mm_struct, bit: int) -> None:
    """set_bit(bit, &mm->flags) (mm_flags_set() in 6.18)."""
    sched.point("set_bit(mm->flags)", writes=(("mm_flags", mm.id),))
    mm.flags |= 1 << bit


def mm_flags_test(mm: mm_struct, bit: int) -> bool:
    sched.point("test_bit(mm->flags)", reads=(("mm_flags", mm.id),))
    return bool(mm.flags & (1 << bit))


def mm_flags_test_and_set(mm: mm_struct, bit: int) -> bool:
    """test_and_set_bit(bit, &mm->flags): returns the old value."""
    sched.point("test_and_set_bit(mm->flags)", writes=(("mm_flags", mm.id),))
    was = bool(mm.flags & (1 << bit))
    mm.flags |= 1 << bit
    return was


# --- vm_flags updates (include/linux/mm.h vm_flags_clear) ---------------------------------
def vm_flags_read(vma: vm_area_struct) -> int:
    """A read of vma->vm_flags by a path that does not exclude writers (the OOM reaper's
    VM_LOCKED test, bug 27ae357fa82b)."""
    sched.point("READ_ONCE(vma->vm_flags)", reads=(vma.obj,))
    return vma.vm_flags


def vm_flags_clear(vma: vm_area_struct, flags: int) -> None:
    """include/linux/mm.h vm_flags_clear(): write-locks the VMA first."""
    _vma_start_write(vma)
    sched.point("vm_flags_clear", writes=(vma.obj,))
    vma.vm_flags &= ~flags


def vm_flags_reset(vma: vm_area_struct, flags: int) -> None:
    """include/linux/mm.h vm_flags_reset() / vm_flags_reset_once(): the caller has
    write-locked the VMA (vma_assert_write_locked)."""
    from .mmap_lock import per_vma_locks, vma_assert_write_locked
    if per_vma_locks(vma.vm_mm) and not vma.detached:
        vma_assert_write_locked(vma)
    sched.point("vm_flags_reset", writes=(vma.obj,))
    vma.vm_flags = flags


def vma_mark_attached(vma: vm_area_struct) -> None:
    """include/linux/mmap_lock.h vma_mark_attached() (refcount_set_release(&vm_refcnt, 1)),
    part of the tree store that attaches the VMA."""
    vma.vm_refcnt = 1
    vma.detached = False


def vma_mark_detached(vma: vm_area_struct) -> None:
    """mm/mmap_lock.c vma_mark_detached() (impl/mmap_lock.py); before 6.4 only the flag."""
    from .mmap_lock import per_vma_locks, vma_mark_detached as _detach
    if per_vma_locks(vma.vm_mm):
        _detach(vma)
    else:
        vma.vm_refcnt = 0
        vma.detached = True


def vma_start_write(vma: vm_area_struct) -> None:
    """include/linux/mmap_lock.h vma_start_write() (impl/mmap_lock.py); nothing before 6.4."""
    _vma_start_write(vma)


def _vma_start_write(vma: vm_area_struct) -> None:
    from .mmap_lock import per_vma_locks, vma_start_write
    if per_vma_locks(vma.vm_mm):
        vma_start_write(vma)

