"""The hardware: CPUs with a TLB and a paging-structure (walk) cache, the MMU's page walk,
and the architecture's TLB invalidation.

What it models:
* a TLB of leaf translations per CPU, tagged with the mm (PCID/ASID), each entry holding pfn,
  writable and dirty; a *hit* uses the cached translation even when the PTE is gone;
* a paging-structure cache per CPU: for a virtual-address prefix, the table frame the walk
  reached at that level (x86's PML4E/PDPTE/PDE caches, arm64's walk cache); a miss walks from
  the deepest cached entry, so a freed table that is still cached is still walked;
* the walk sets the accessed bit, and a store through a clean writable entry re-walks to set
  the dirty bit in the PTE (the hardware A/D updates are atomic RMWs on the PTE);
* TLB invalidation as each architecture does it: x86's shootdown (lazy TLB, tlb_gen, the
  flush on each CPU as its own step) is impl/x86_tlb.py, powerpc radix's impl/radix_tlb.py;
  arm64's (asm/tlbflush.h __flush_tlb_range, flush_tlb_mm, and tlb_flush() in asm/tlb.h) is
  here, broadcast to every CPU of mm_cpumask as one step.

Steps and atomicity: one user instruction is several scheduling points (the TLB lookup, each
level of a walk, the fill, the data access), so that a PTE clear on another CPU can land
between them, as it can on real hardware. A flush IPI cannot: the IPI is taken at an
instruction boundary, so a flush step is enabled only when no target CPU is in the middle of
an instruction. This is what makes "flush, then free" safe on real machines, and the model
reproduces it instead of assuming it.

Simplifications: no speculative or prefetching walks (a TLB entry is made only by an access);
x86's INVLPG follows the vendor (Machine.vendor): on Intel it drops the whole
paging-structure cache of the PCID (as the SDM specifies, which is why walk-cache bugs show on
arm64 and AMD and not on Intel), on AMD with EFER.TCE only the entries on the path to the
address; on arm64 and ppc64 a CPU stays in mm_cpumask once it ran the mm (their
invalidations are broadcast); no TLB capacity limit.
"""

from __future__ import annotations

from . import sched
from .constants import PAGE_SHIFT, PGDIR_SHIFT, PMD_SHIFT, PUD_SHIFT, ULONG_MAX
from .pgtable import LEVEL_PGD, LEVEL_PMD, LEVEL_PTE, LEVEL_PUD, level_index
from .x86_tlb import TlbState
from .pte import PRESENT, pte_t

TLB_FLUSH_ALL = ULONG_MAX
#: x86-64, arm64, and powerpc Book3S-64 with the radix MMU (impl/radix_tlb.py).
ARCHES = ("x86", "arm64", "ppc64")
#: x86 vendors, for INVLPG's effect on the paging-structure caches (see invlpg()).
VENDORS = ("intel", "amd")
#: arch/x86/mm/tlb.c tlb_single_page_flush_ceiling: above this many INVLPGs, a full flush.
TLB_SINGLE_PAGE_FLUSH_CEILING = 33

# For a table at level L (1 = PTE table), the address bits that select it (the prefix the
# paging-structure cache is tagged with): a PTE table is selected by VA[47:21], and so on.
_PREFIX_SHIFT = {LEVEL_PTE: PMD_SHIFT, LEVEL_PMD: PUD_SHIFT, LEVEL_PUD: PGDIR_SHIFT}


class TlbEntry:
    """A cached leaf translation. ``gen`` is the frame's generation at fill time (for the
    invariants only: it tells a reused frame from the frame the translation was made for)."""


    __slots__ = ("pfn", "gen", "write", "dirty", "tick")

    def __init__(self, pfn: int, gen: int, write: bool, dirty: bool, tick: int = 0):
        self.pfn = pfn
        self.gen = gen
        self.write = write
        self.dirty = dirty
        # Model-only: when the entry was filled (Machine.ticks), so that "a translation that
        # existed when madvise() began is gone when it returns" can be checked.
        self.tick = tick

    def __repr__(self) -> str:
        return f"pfn {self.pfn} {'rw' if self.write else 'ro'}{' dirty' if self.dirty else ''}"


class Cpu:
    """One CPU: its TLB, its paging-structure cache, the mm it runs, and whether it is in the
    middle of a user instruction (``busy``, which holds off flush IPIs)."""

    def __init__(self, cpu_id: int):
        self.id = cpu_id
        self.tlb: dict[tuple[int, int], TlbEntry] = {}
        self.pwc: dict[tuple[int, int, int], tuple[int, int]] = {}
        self.active_mm = None
        self.busy = False
        # x86's cpu_tlbstate (impl/x86_tlb.py); unused on arm64 and ppc64.
        self.tlbstate = TlbState()

    @property
    def obj(self) -> tuple:
        return ("tlb", self.id)

    def __repr__(self) -> str:
        return f"<cpu{self.id} tlb={self.tlb} pwc={self.pwc}>"


class Fault(Exception):
    """A page fault raised by the MMU: the access could not be translated (``prot`` False:
    the x86 error code's P bit clear) or a present translation does not permit it (``prot``
    True: X86_PF_PROT)."""

    def __init__(self, addr: int, write: bool, reason: str, prot: bool = False):
        super().__init__(f"#PF at {addr:#x} ({'write' if write else 'read'}: {reason})")
        self.addr = addr
        self.write = write
        self.reason = reason
        self.prot = prot


def switch_mm(cpu: Cpu, mm) -> None:
    """switch_mm(prev, next, tsk): run *mm* on *cpu*. x86: arch/x86/mm/tlb.c
    switch_mm_irqs_off() with its steps (impl/x86_tlb.py). arm64 and ppc64: the CPU joins
    mm_cpumask and runs the mm's ASID/PID (their entries are tagged with it and their
    invalidations are broadcast, so a switch flushes nothing)."""
    if mm.machine.arch == "x86":
        from .x86_tlb import switch_mm_irqs_off
        switch_mm_irqs_off(mm.machine, cpu, mm)
        return
    sched.point("switch_mm", writes=(cpu.obj, ("cpumask", mm.id)))
    cpu.active_mm = mm
    mm.cpumask.add(cpu.id)


def runs_mm(cpu: Cpu, mm) -> bool:
    """*cpu* runs *mm* for a user task: it is the active mm and (x86) not held lazily."""
    return cpu.active_mm is mm and not cpu.tlbstate.is_lazy


def context_switch_to_kernel_thread(machine, cpu: Cpu) -> None:
    """kernel/sched/core.c context_switch() to a kernel thread: enter_lazy_tlb(). x86 keeps
    the user mm loaded and marks the CPU lazy (impl/x86_tlb.py); on arm64 and ppc64 the model
    does nothing (their enter_lazy_tlb() has no effect on invalidation)."""
    if machine.arch == "x86":
        from .x86_tlb import enter_lazy_tlb
        enter_lazy_tlb(machine, cpu)


def _walk(cpu: Cpu, mm, addr: int):
    """The page walk: from the deepest paging-structure-cache hit, or from CR3 (mm->pgd),
    down to the PTE slot. Returns (pte table frame, index) or None if a level is not present.
    Each level read is a scheduling point; each level reached is cached."""
    zone = mm.zone
    table = None
    level = LEVEL_PTE
    for level in (LEVEL_PTE, LEVEL_PMD, LEVEL_PUD):
        hit = cpu.pwc.get((mm.id, level, addr >> _PREFIX_SHIFT[level]))
        if hit is not None:
            table = zone.pfn_to_page(hit[0])
            break
    else:
        table = mm.pgd
        level = LEVEL_PGD
    while level > LEVEL_PTE:
        idx = level_index(level, addr)
        sched.point("mmu_walk", reads=(("pte", table.pfn, idx),), writes=(cpu.obj,))
        entries = table.table
        entry = entries.get(idx) if entries is not None else None
        if entry is None or not hasattr(entry, "gen"):
            # Not present, or the frame no longer holds a table (it was freed and reused):
            # what the hardware reads is garbage; the model treats it as not present.
            return None
        level -= 1
        table = zone.pfn_to_page(entry.pfn)
        cpu.pwc[(mm.id, level, addr >> _PREFIX_SHIFT[level])] = (table.pfn, entry.gen)
    return table, level_index(LEVEL_PTE, addr)


def _page_fault(cpu: Cpu, mm, addr: int, write: bool, reason: str,
                prot: bool = False) -> Fault:
    """The invalidation a page fault makes, then the exception to raise. Every CPU drops
    its TLB entry for the page (the model keeps no entry that faults). An Intel CPU also
    drops the paging-structure-cache entries that would be used for the address (SDM vol.
    3A 4.10.4.1: "a page-fault exception resulting from an attempt to use a linear address
    will invalidate any PML4-cache, PDPTE-cache, and PDE-cache entries that would be used
    for that linear address"), so that the retried access walks the tables in memory. The
    model promises that only for Intel: AMD's, arm64's and powerpc's keep their walk-cache
    entries until a flush, which can only make a retried access fault again, never reach
    what the tables in memory do not map."""
    cpu.tlb.pop((mm.id, addr >> PAGE_SHIFT), None)
    if mm.machine.arch == "x86" and mm.machine.vendor == "intel":
        _drop_walk(cpu, mm.id, addr, addr + 1)
    cpu.busy = False
    return Fault(addr, write, reason, prot=prot)


def mmu_translate(cpu: Cpu, mm, addr: int, write: bool) -> TlbEntry:
    """Translate *addr* for a user load or store: a TLB hit, or a walk and fill.

    Raises :class:`Fault` when there is no valid translation permitting the access, after
    the fault's own invalidation (:func:`_page_fault`). On return the CPU is ``busy`` until
    :func:`mmu_access_data` completes the instruction.
    """
    vpn = addr >> PAGE_SHIFT
    key = (mm.id, vpn)
    sched.point("tlb_lookup", reads=(cpu.obj,), writes=(cpu.obj,))
    cpu.busy = True
    entry = cpu.tlb.get(key)
    if entry is not None and (not write or (entry.write and entry.dirty)):
        return entry
    if entry is not None and write and not entry.write:
        raise _page_fault(cpu, mm, addr, write, "write to a read-only translation", prot=True)
    found = _walk(cpu, mm, addr)
    if found is None:
        raise _page_fault(cpu, mm, addr, write, "no page table")
    table, idx = found
    slot = ("pte", table.pfn, idx)
    sched.point("tlb_fill", reads=(slot,), writes=(slot, cpu.obj))
    entries = table.table
    pte = entries.get(idx) if entries is not None else None
    if not isinstance(pte, pte_t) or pte.kind != PRESENT or pte.protnone:
        # A protnone PTE (x86 _PAGE_PROTNONE, _PAGE_PRESENT clear) is not present to the MMU.
        raise _page_fault(cpu, mm, addr, write, "pte not present")
    if write and not pte.write:
        raise _page_fault(cpu, mm, addr, write, "pte read-only", prot=True)
    # The hardware's atomic accessed/dirty update.
    if not pte.young or (write and not pte.dirty):
        entries[idx] = pte_t(PRESENT, pte.pfn, pte.write, pte.dirty or write, True, pte.special,
                             pte.offset, pte.protnone)
    page = mm.zone.pfn_to_page(pte.pfn)
    mm.machine.ticks += 1
    entry = TlbEntry(pte.pfn, page.gen, pte.write, pte.dirty or write, mm.machine.ticks)
    cpu.tlb[key] = entry
    return entry


def mmu_access_data(cpu: Cpu, mm, addr: int, entry: TlbEntry, write: bool, value: int = 0):
    """The memory access of the instruction, through the translation *entry*; ends the
    instruction (the CPU takes IPIs again). Returns the byte loaded, or None for a store."""
    frame = ("frame", entry.pfn)
    if write:
        sched.point("store", reads=(cpu.obj,), writes=(frame, cpu.obj))
    else:
        sched.point("load", reads=(frame, cpu.obj), writes=(cpu.obj,))
    page = mm.zone.pfn_to_page(entry.pfn)
    offset = addr & ((1 << PAGE_SHIFT) - 1)
    cpu.busy = False
    if write:
        page.write_byte(offset, value)
        for w in mm.machine.copy_watches:
            if w.mm_id == mm.id and w.vpn == addr >> PAGE_SHIFT and w.pfn == entry.pfn:
                w.stores.append((cpu.id, offset, value))
        return None
    return page.read_byte(offset)


# --- model-only: the stores a copy of a page can miss ----------------------------------------
class CopyWatch:
    """Model-only, for LOST_WRITE.cow: frame *pfn*, copied for the translation of address
    page *vpn* in mm *mm_id*, and the user stores (cpu, offset, value) through that
    translation that land in the frame after the copy read it. mm/memory.c wp_page_copy()
    reads the old page before it clears and flushes the old PTE; a CPU whose TLB still holds
    a writable translation of the old page can store into it in between, and that store is
    not in the copy that replaces it."""

    __slots__ = ("mm_id", "vpn", "pfn", "stores")

    def __init__(self, mm_id: int, vpn: int, pfn: int):
        self.mm_id, self.vpn, self.pfn = mm_id, vpn, pfn
        self.stores: list[tuple[int, int, int]] = []


def watch_copy(mm, addr: int, pfn: int) -> CopyWatch:
    """Start recording the stores through (mm, addr) into frame *pfn*: it was just copied."""
    w = CopyWatch(mm.id, addr >> PAGE_SHIFT, pfn)
    mm.machine.copy_watches.append(w)
    return w


def end_copy_watch(mm, w: CopyWatch, addr: int, copy=None) -> None:
    """Stop recording; when *copy* (the new page) now replaces the old translation, report
    the stores it may have missed (event ``cow_copy``, judged by LOST_WRITE.cow). A copy
    that is thrown away (the PTE changed meanwhile) misses nothing."""
    mm.machine.copy_watches.remove(w)
    if copy is not None:
        sched.event("cow_copy", mm=mm, addr=addr, src=w.pfn, dst=copy.pfn,
                    stores=list(w.stores))


# --- invalidation -----------------------------------------------------------------------------
def _targets(machine, mm) -> list[Cpu]:
    return [machine.cpus[c] for c in sorted(mm.cpumask)]


def _ipi(machine, mm, label: str, targets: list[Cpu]) -> None:
    """The synchronous IPI: one step that writes every target's TLB, enabled only when no
    target is in the middle of an instruction."""
    sched.point(label, reads=(("cpumask", mm.id),), writes=tuple(c.obj for c in targets),
                wait=lambda: not any(c.busy for c in targets))


def _drop_leaf(cpu: Cpu, mm_id: int, start: int, end: int) -> None:
    first, last = start >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT
    for key in [k for k in cpu.tlb if k[0] == mm_id and first <= k[1] <= last]:
        del cpu.tlb[key]


def _drop_walk(cpu: Cpu, mm_id: int, start: int, end: int) -> None:
    for key in list(cpu.pwc):
        if key[0] != mm_id:
            continue
        level, prefix = key[1], key[2]
        shift = _PREFIX_SHIFT[level]
        lo, hi = prefix << shift, ((prefix + 1) << shift) - 1
        if lo <= end - 1 and start <= hi:
            del cpu.pwc[key]


def _drop_all(cpu: Cpu, mm_id: int) -> None:
    for key in [k for k in cpu.tlb if k[0] == mm_id]:
        del cpu.tlb[key]
    for key in [k for k in cpu.pwc if k[0] == mm_id]:
        del cpu.pwc[key]


def invlpg(machine, cpu: Cpu, mm_id: int, addr: int) -> None:
    """arch/x86/include/asm/tlbflush.h flush_tlb_one_user() -> invlpg(addr) (and, with PTI,
    INVPCID for the user PCID: the model has one PCID per mm): drop the TLB entry of the
    page at *addr*, and paging-structure-cache entries:

    * Intel (SDM Vol. 3A 4.10.4.1): INVLPG invalidates every paging-structure-cache entry
      of the current PCID, whatever the address;
    * AMD with EFER.TCE set (which Linux does where the CPU has it, since 6.15: 440a65b7d25f
      "x86/mm: Enable AMD translation cache extensions"): "only those upper-level entries
      that lead to the target PTE in the page table hierarchy" (the AMD manual, quoted in
      that commit): a freed page table stays cached unless an INVLPG hits an address it
      translated."""
    _drop_leaf(cpu, mm_id, addr, addr + (1 << PAGE_SHIFT))
    if machine.vendor == "amd":
        _drop_walk(cpu, mm_id, addr, addr + 1)
    else:
        cpu.pwc = {k: v for k, v in cpu.pwc.items() if k[0] != mm_id}


#: arch/arm64/include/asm/tlbflush.h MAX_DVM_OPS (PTRS_PER_PTE): without FEAT_TLBIRANGE, a
#: range of this many strides or more is flushed by ASID instead ("to avoid soft lock-ups").
ARM64_MAX_DVM_OPS = 512


def arm64_flush_tlb_range(machine, mm, start: int, end: int, last_level: bool,
                          stride: int = 1 << PAGE_SHIFT) -> None:
    """arch/arm64/include/asm/tlbflush.h __flush_tlb_range() -> __flush_tlb_range_nosync()
    (6.18): the range rounded out to the stride; __flush_tlb_range_limit_excess() turns a
    range of MAX_DVM_OPS strides or more into flush_tlb_mm(); otherwise DSB ISHST, one TLBI
    per stride address, VALE1IS (its last-level entry only: the walk cache keeps its
    entries) or VAE1IS (every level used to translate that address), and the DSB ISH that
    completes them (the step's atomicity). The model's CPUs have no FEAT_TLBIRANGE (range
    TLBIs invalidate the same entries, with fewer instructions and a higher limit)."""
    first = start // stride * stride
    last = -(-end // stride) * stride
    if last - first >= ARM64_MAX_DVM_OPS * stride:
        arm64_flush_tlb_mm(machine, mm)
        return
    targets = _targets(machine, mm)
    _ipi(machine, mm, "__flush_tlb_range", targets)
    for cpu in targets:
        for addr in range(first, last, stride):
            _drop_leaf(cpu, mm.id, addr, addr + (1 << PAGE_SHIFT))
            if not last_level:
                _drop_walk(cpu, mm.id, addr, addr + 1)
    sched.event("tlb_flush", mm=mm, start=start, end=end, freed_tables=not last_level)


def arm64_flush_tlb_mm(machine, mm) -> None:
    """arch/arm64 flush_tlb_mm(): TLBI ASIDE1IS, everything of the ASID."""
    targets = _targets(machine, mm)
    _ipi(machine, mm, "flush_tlb_mm", targets)
    for cpu in targets:
        _drop_all(cpu, mm.id)
    sched.event("tlb_flush", mm=mm, start=0, end=TLB_FLUSH_ALL, freed_tables=True)


def flush_tlb_range(machine, mm, start: int, end: int) -> None:
    """include/asm-generic flush_tlb_range(vma, start, end) on the model's architecture (a
    leaf flush of the range; the callers do not free tables)."""
    if machine.arch == "arm64":
        arm64_flush_tlb_range(machine, mm, start, end, last_level=False)
    elif machine.arch == "ppc64":
        from .radix_tlb import radix__flush_tlb_range
        radix__flush_tlb_range(machine, mm, start, end)
    else:
        # arch/x86/include/asm/tlbflush.h flush_tlb_range(): freed_tables true since
        # 3ef938c35035 (v6.15-rc1, CVE-2025-22045: khugepaged zaps PMDs that point to page
        # tables with it; the model has no khugepaged, so no caller here frees a table).
        from .x86_tlb import flush_tlb_mm_range
        flush_tlb_mm_range(machine, mm, start, end, PAGE_SHIFT, True)


def flush_tlb_page(machine, mm, addr: int) -> None:
    flush_tlb_range(machine, mm, addr, addr + (1 << PAGE_SHIFT))


def flush_tlb_mm(machine, mm) -> None:
    if machine.arch == "arm64":
        arm64_flush_tlb_mm(machine, mm)
    elif machine.arch == "ppc64":
        from .radix_tlb import radix__flush_tlb_mm
        radix__flush_tlb_mm(machine, mm)
    else:
        from .x86_tlb import flush_tlb_mm_range
        flush_tlb_mm_range(machine, mm, 0, TLB_FLUSH_ALL, PAGE_SHIFT, True)
