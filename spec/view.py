"""The abstraction function: a read-only view of a concrete model state in spec terms.

The invariants (spec/invariants.py) ask a *view* about a state. :class:`ConcreteView` answers
from a live :class:`~unmapcheck.impl.machine.Machine` without copying it (so checking at every
step of an exploration is cheap); spec/symbolic.py answers the same questions with z3 terms.
Both implement the interface below; handles are opaque to the invariants.

Domains (what quantifiers range over):
``mms()``, ``frames()``, ``ptes()`` (every non-none PTE of every live mm), ``tlb_entries()``,
``pwc_entries()``, ``vmas(mm)``, ``vma_pairs(mm)`` (neighbours in tree order);
``select(domain, pred)`` restricts a domain by a predicate ``pred(S, B, x)``.

Questions: frame_free, frame_gen, refcount, mapcount (page_mapcount, i.e. _mapcount + 1),
frame_anon, frame_swapbacked, frame_pagecache, frame_dirty, frame_is_table, frame(pfn);
pte_mm, pte_vpn, pte_present, pte_swap, pte_migration, pte_special, pte_pfn, pte_write,
pte_dirty, pte_lookup(mm, vpn) (a handle, possibly of a none PTE); tlb_cpu, tlb_mm, tlb_vpn,
tlb_pfn, tlb_gen, tlb_write, tlb_dirty; pwc_pfn, pwc_gen; vma_start, vma_end (page numbers),
vma_pgoff, vma_flags; rss(mm, member); map_count(mm); mm_id(mm); vm_covers(mm, vpn).
"""

from __future__ import annotations

from typing import Any, Iterable

from unmapcheck.impl.constants import PAGE_SHIFT
from unmapcheck.impl.pgtable import iter_ptes, lookup_pte
from unmapcheck.impl.pte import MIGRATION, PRESENT, PTE_NONE, SWAP, pte_t
from unmapcheck.impl.x86_tlb import translation_usable

from .logic import CONCRETE


class _Pte:
    __slots__ = ("mm", "vpn", "pte")

    def __init__(self, mm, vpn: int, pte: pte_t):
        self.mm = mm
        self.vpn = vpn
        self.pte = pte

    def __repr__(self) -> str:
        return f"mm{self.mm.id}:{self.vpn << PAGE_SHIFT:#x}={self.pte!r}"


class _Tlb:
    __slots__ = ("cpu", "mm_id", "vpn", "entry")

    def __init__(self, cpu: int, mm_id: int, vpn: int, entry):
        self.cpu = cpu
        self.mm_id = mm_id
        self.vpn = vpn
        self.entry = entry

    def __repr__(self) -> str:
        return f"cpu{self.cpu} tlb mm{self.mm_id}:{self.vpn << PAGE_SHIFT:#x}->{self.entry!r}"


class _Pwc:
    __slots__ = ("cpu", "mm_id", "level", "prefix", "pfn", "gen")

    def __init__(self, cpu: int, key: tuple, val: tuple):
        self.cpu = cpu
        self.mm_id, self.level, self.prefix = key
        self.pfn, self.gen = val

    def __repr__(self) -> str:
        return f"cpu{self.cpu} walk-cache mm{self.mm_id} level{self.level}->table pfn {self.pfn}"


class ConcreteView:
    def __init__(self, machine):
        self.machine = machine
        self.zone = machine.zone
        self._ptes = None
        self._ptl_held = None

    # --- domains ------------------------------------------------------------------------
    def mms(self) -> list:
        return [mm for mm in self.machine.mms if not mm.freed]

    def frames(self) -> list:
        return self.zone.mem_map

    def ptes(self) -> list:
        if self._ptes is None:
            out = []
            for mm in self.mms():
                for addr, pte, _table in iter_ptes(mm):
                    out.append(_Pte(mm, addr >> PAGE_SHIFT, pte))
            self._ptes = out
        return self._ptes

    def ptes_of(self, mm) -> list:
        return [p for p in self.ptes() if p.mm is mm]

    def page_table_locked(self) -> bool:
        """Does any context hold a page-table lock (a PTE table's split PTL, or an mm's
        page_table_lock)?"""
        if self._ptl_held is None:
            self._ptl_held = any(
                page.ptl is not None and page.ptl.owner is not None and not page.free
                for page in self.zone.mem_map) or \
                any(mm.page_table_lock.owner is not None for mm in self.mms())
        return self._ptl_held

    def tlb_entries(self) -> list:
        """The TLB entries a CPU can use without a further flush. On x86 a CPU keeps the
        entries of an mm it no longer runs (PCID) or holds lazily, and flushes them when it
        switches back if it has not caught up with the mm's tlb_gen; until then they cannot
        be used, and a flush may skip them (impl/x86_tlb.py translation_usable)."""
        m = self.machine
        out = []
        for cpu in m.cpus:
            for (mm_id, vpn), entry in cpu.tlb.items():
                if translation_usable(m, cpu, mm_id, leaf=True):
                    out.append(_Tlb(cpu.id, mm_id, vpn, entry))
        return out

    def pwc_entries(self) -> list:
        """The paging-structure-cache entries a walk can use without a further flush (a lazy
        x86 CPU's too: speculative walks need no user task)."""
        m = self.machine
        out = []
        for cpu in m.cpus:
            for key, val in cpu.pwc.items():
                if translation_usable(m, cpu, key[0], leaf=False):
                    out.append(_Pwc(cpu.id, key, val))
        return out

    def table_readers(self, pfn: int, gen: int) -> list:
        """The threads inside an RCU or IRQ-disabled read-side section that reached
        page-table page *pfn* of generation *gen* (impl/rcu.py)."""
        return self.machine.rcu.readers_of(pfn, gen)

    def select(self, domain: Iterable, pred) -> list:
        """The elements of *domain* for which ``pred(S, B, x)`` holds (a symbolic view keeps
        every slot and strengthens its guard instead)."""
        return [x for x in domain if pred(self, CONCRETE, x)]

    def vmas(self, mm) -> list:
        return mm.mm_mt.vmas

    def vma_pairs(self, mm) -> Iterable:
        v = mm.mm_mt.vmas
        return list(zip(v, v[1:]))

    # --- frames -------------------------------------------------------------------------
    def frame(self, pfn: int):
        mem_map = self.zone.mem_map
        return mem_map[pfn] if 0 <= pfn < len(mem_map) else None

    def frame_byte(self, pfn: int, offset: int) -> int:
        """The byte at *offset* of frame *pfn* (what a load through a translation to it
        reads)."""
        return self.zone.mem_map[pfn].read_byte(offset)

    @staticmethod
    def frame_free(f) -> bool:
        return f is None or f.free

    @staticmethod
    def frame_gen(f) -> int:
        return -1 if f is None else f.gen

    @staticmethod
    def refcount(f) -> int:
        return f._refcount

    @staticmethod
    def mapcount(f) -> int:
        return f._mapcount + 1

    def refcount_unheld(self, f) -> int:
        """References to *f* beyond those of its holders (REFCOUNT.exact): its mappings, the
        page cache or the swap cache, and the path that holds the folio lock (a migration in
        flight holds the folio it isolated locked, with a reference, from try_to_migrate to
        remove_migration_ptes)."""
        from unmapcheck.impl.page import PG_locked, PG_swapcache
        unheld = (f._refcount - (f._mapcount + 1) - (1 if self.frame_pagecache(f) else 0)
                  - (1 if f.flags & PG_swapcache else 0))
        if unheld > 0 and f.flags & PG_locked:
            unheld -= 1
        return unheld

    @staticmethod
    def frame_anon(f) -> bool:
        return f is not None and f.mapping is not None and f.mapping.is_anon

    def frame_swap_shared(self, f) -> bool:
        """*f* is in the swap cache and its slot is still referenced by a swap PTE: whoever
        faults on that PTE gets this very page from the swap cache."""
        from unmapcheck.impl.page import PG_swapcache
        from unmapcheck.impl.swapfile import SWAP_HAS_CACHE
        if f is None or not f.flags & PG_swapcache:
            return False
        count = self.machine.swap.swap_map.get(f.swap_slot, 0)
        return bool(count & ~SWAP_HAS_CACHE)

    def pte_maps_freed_anon_vma(self, p) -> bool:
        """A present PTE mapping an anonymous page whose anon_vma (folio->mapping) has
        been freed."""
        if not self.pte_present(p):
            return False
        f = self.frame(self.pte_pfn(p))
        return bool(f is not None and f.mapping is not None and f.mapping.is_anon
                    and getattr(f.mapping, "freed", False))

    def pte_maps_foreign_file_page(self, p) -> bool:
        """A present PTE in a file VMA that maps a page-cache page other than the page cache's
        page of the file offset the VMA maps there (linear_page_index): a page truncated
        out of the cache, or one of another index or file. Anonymous pages (COW copies),
        the zero page and special (PFN) mappings are not page-cache pages."""
        if not self.pte_present(p) or p.pte.special:
            return False
        f = self.frame(self.pte_pfn(p))
        if f is None or f.free or self.frame_anon(f) or self.frame_is_zero(f):
            return False
        v = self._vma_at(p.mm, p.vpn)
        if v is None or v.vm_file is None:
            return False
        mapping = v.vm_file.f_mapping
        # linear_page_index(vma, addr)
        index = (((p.vpn << PAGE_SHIFT) - v.vm_start) >> PAGE_SHIFT) + v.vm_pgoff
        return not (f.mapping is mapping and f.index == index
                    and mapping.i_pages.get(index) is f)

    def pte_writes_private_pagecache(self, p) -> bool:
        """A present, writable PTE of a private (non-VM_SHARED) VMA that maps a page-cache
        page: a store through it writes the file's page instead of a COW copy."""
        from unmapcheck.impl.constants import VM_SHARED
        if not self.pte_present(p) or p.pte.special or not p.pte.write:
            return False
        f = self.frame(self.pte_pfn(p))
        if f is None or f.free or not self.frame_pagecache(f):
            return False
        v = self._vma_at(p.mm, p.vpn)
        return v is not None and not v.vm_flags & VM_SHARED

    def pte_writes_clean_shared_file(self, p) -> bool:
        """A present, writable PTE of a shared mapping of a regular file (a write-notify
        mapping: ->page_mkwrite, dirty accounting) that maps a page-cache page without
        PG_dirty: a store through it changes the page with no fault to tell the file."""
        from unmapcheck.impl.constants import VM_SHARED
        if not self.pte_present(p) or p.pte.special or not p.pte.write:
            return False
        f = self.frame(self.pte_pfn(p))
        if f is None or f.free or not self.frame_pagecache(f) or self.frame_dirty(f):
            return False
        v = self._vma_at(p.mm, p.vpn)
        return (v is not None and bool(v.vm_flags & VM_SHARED) and v.vm_file is not None
                and not v.vm_file.shmem)

    def clean_file_pages(self) -> list:
        """The page-cache pages of regular files (not shmem) that are clean (no PG_dirty, no
        PG_writeback) and that no PTE maps dirty: what the file holds on disk."""
        from unmapcheck.impl.page import PG_dirty, PG_writeback
        clean = [page for f in self.machine.files if not f.shmem
                 for page in f.f_mapping.i_pages.values()
                 if not page.flags & (PG_dirty | PG_writeback)]
        if not clean:
            return clean
        dirty_ptes = {p.pte.pfn for p in self.ptes()
                      if self.pte_present(p) and p.pte.dirty}
        return [page for page in clean if page.pfn not in dirty_ptes]

    @staticmethod
    def page_matches_disk(page) -> bool:
        """*page* holds the bytes its file's disk image has at its index (bytes never
        written read as zero on both sides)."""
        saved = page.mapping.disk.get(page.index) or {}
        data = page.data if isinstance(page.data, dict) else {}
        return ({o: b for o, b in data.items() if b} ==
                {o: b for o, b in saved.items() if b})

    def rmap_chain_entries(self) -> list:
        """Every (anon_vma or address_space, VMA) pair of the reverse maps: the VMAs on each
        live anon_vma's interval tree and on each file's i_mmap."""
        out = [(av, v) for av in self.machine.anon_vmas if not av.freed for v in av.vmas]
        out += [(f.f_mapping, v) for f in self.machine.files for v in f.f_mapping.i_mmap]
        return out

    def page_tables_of(self, mm) -> list:
        """Every page table of *mm* below its pgd, as (mm, level, first address, end): the
        span of addresses it translates."""
        from unmapcheck.impl.constants import PTRS_PER_TABLE
        from unmapcheck.impl.pgtable import LEVEL_PGD, LEVEL_SHIFT, iter_tables
        return [(mm, level, base, base + (PTRS_PER_TABLE << LEVEL_SHIFT[level]))
                for level, base, _page in iter_tables(mm) if level != LEVEL_PGD]

    def vm_intersects(self, mm, start: int, end: int) -> bool:
        """Does a VMA of *mm* overlap [start, end)?"""
        return any(v.vm_start < end and start < v.vm_end for v in mm.mm_mt.vmas)

    @staticmethod
    def vma_live(v) -> bool:
        """*v* is a VMA of its mm's tree (not detached, removed or freed)."""
        return any(x is v for x in v.vm_mm.mm_mt.vmas)

    @staticmethod
    def frame_pagecache(f) -> bool:
        return f is not None and f.mapping is not None and not f.mapping.is_anon

    @staticmethod
    def frame_swapbacked(f) -> bool:
        from unmapcheck.impl.page import PG_swapbacked
        return bool(f.flags & PG_swapbacked)

    @staticmethod
    def frame_dirty(f) -> bool:
        from unmapcheck.impl.page import PG_dirty
        return bool(f.flags & PG_dirty)

    @staticmethod
    def frame_is_table(f) -> bool:
        return f is not None and not f.free and f.table is not None

    @staticmethod
    def frame_is_zero(f) -> bool:
        return f is not None and f.pfn == 0

    # --- PTEs ---------------------------------------------------------------------------
    @staticmethod
    def pte_mm(p):
        return p.mm

    @staticmethod
    def pte_vpn(p) -> int:
        return p.vpn

    @staticmethod
    def pte_present(p) -> bool:
        return p.pte.kind == PRESENT

    @staticmethod
    def pte_protnone(p) -> bool:
        """x86 _PAGE_PROTNONE: present to the kernel, not to the MMU (a PROT_NONE VMA)."""
        return p.pte.kind == PRESENT and p.pte.protnone

    @staticmethod
    def pte_swap(p) -> bool:
        return p.pte.kind == SWAP

    @staticmethod
    def pte_migration(p) -> bool:
        return p.pte.kind == MIGRATION

    @staticmethod
    def pte_special(p) -> bool:
        return p.pte.special

    @staticmethod
    def pte_pfn(p) -> int:
        return p.pte.pfn

    @staticmethod
    def pte_write(p) -> bool:
        return p.pte.write

    @staticmethod
    def pte_dirty(p) -> bool:
        return p.pte.dirty

    def pte_lookup(self, mm, vpn: int):
        ptep = lookup_pte(mm, vpn << PAGE_SHIFT)
        pte = PTE_NONE
        if ptep is not None and ptep.table.table is not None:
            pte = ptep.table.table.get(ptep.idx, PTE_NONE)
        return _Pte(mm, vpn, pte)

    # --- TLB and walk cache -------------------------------------------------------------
    @staticmethod
    def tlb_cpu(t) -> int:
        return t.cpu

    def tlb_mm(self, t):
        for mm in self.machine.mms:
            if mm.id == t.mm_id:
                return mm
        return None

    @staticmethod
    def tlb_vpn(t) -> int:
        return t.vpn

    @staticmethod
    def tlb_pfn(t) -> int:
        return t.entry.pfn

    @staticmethod
    def tlb_gen(t) -> int:
        return t.entry.gen

    @staticmethod
    def tlb_write(t) -> bool:
        return t.entry.write

    @staticmethod
    def tlb_dirty(t) -> bool:
        return t.entry.dirty

    @staticmethod
    def tlb_tick(t) -> int:
        return t.entry.tick

    @staticmethod
    def pwc_pfn(w) -> int:
        return w.pfn

    @staticmethod
    def pwc_gen(w) -> int:
        return w.gen

    # --- VMAs and counters --------------------------------------------------------------
    @staticmethod
    def vma_start(v) -> int:
        return v.vm_start >> PAGE_SHIFT

    @staticmethod
    def vma_end(v) -> int:
        return v.vm_end >> PAGE_SHIFT

    @staticmethod
    def vma_pgoff(v) -> int:
        return v.vm_pgoff

    @staticmethod
    def vma_flags(v) -> int:
        return v.vm_flags

    @staticmethod
    def rss(mm, member: int) -> int:
        return mm.rss_stat[member]

    @staticmethod
    def map_count(mm) -> int:
        return mm.map_count

    @staticmethod
    def tree_size(mm) -> int:
        return len(mm.mm_mt.vmas)

    @staticmethod
    def mm_id(mm) -> int:
        return mm.id

    @staticmethod
    def mm_exited(mm) -> bool:
        return mm.mm_users == 0

    @staticmethod
    def _vma_at(mm, vpn: int):
        """The VMA of *mm* that covers page *vpn*, or None."""
        addr = vpn << PAGE_SHIFT
        for v in mm.mm_mt.vmas:
            if v.vm_start <= addr < v.vm_end:
                return v
        return None

    def vm_covers(self, mm, vpn: int) -> bool:
        return self._vma_at(mm, vpn) is not None

    def vm_writable(self, mm, vpn: int) -> bool:
        """Does a VMA with VM_WRITE cover page *vpn* of *mm*?"""
        from unmapcheck.impl.constants import VM_WRITE
        v = self._vma_at(mm, vpn)
        return v is not None and bool(v.vm_flags & VM_WRITE)

    def table_frames(self, mm) -> list:
        from unmapcheck.impl.pgtable import iter_tables
        return [page for _level, _base, page in iter_tables(mm)]

    def describe(self, x: Any) -> str:
        return repr(x)
