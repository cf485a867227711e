"""x86 TLB shootdown as Linux 6.18 does it: arch/x86/mm/tlb.c (switch_mm_irqs_off,
enter_lazy_tlb, flush_tlb_func, should_flush_tlb, native_flush_tlb_multi, get_flush_tlb_info,
flush_tlb_mm_range) and arch/x86/include/asm/tlbflush.h (inc_mm_tlb_gen, cpu_tlbstate).

State (per CPU, :class:`TlbState`): ``loaded_mm`` (the mm CR3 points to, ``None`` for init_mm,
or :data:`LOADED_MM_SWITCHING` inside a switch), ``is_lazy`` (cpu_tlbstate_shared: a kernel
thread runs on the user mm's page tables), ``ctxs`` (per mm, the tlb_gen this CPU has caught up
to: cpu_tlbstate.ctxs[asid].tlb_gen), and ``cr3``, the mm whose page tables and PCID the
hardware uses now. Per mm: ``mm.tlb_gen`` (mm->context.tlb_gen).

A flush increments the mm's tlb_gen, then runs flush_tlb_func on each CPU that must flush: the
sender's own CPU first, then each other CPU as its own step, taken when that CPU is at an
instruction boundary with interrupts on; the sender waits for all. CPUs that skip a flush
(lazy, or running another mm) catch up when they switch back: switch_mm_irqs_off compares their
ctxs tlb_gen with the mm's and flushes (a CR3 write without NOFLUSH) when behind.

Fix toggles (impl/fixes.py):
* fea4e317f9e7 (v6.15-rc6, CVE-2025-37964): should_flush_tlb() sends the IPI to a CPU whose
  loaded_mm is LOADED_MM_SWITCHING. Off, a CPU between its tlb_gen read and publishing
  loaded_mm is skipped and loads CR3 without flushing.
* 83b0177a6c48 (v6.18-rc2, CVE-2025-40174): switch_mm_irqs_off() has smp_mb() between
  writing loaded_mm = LOADED_MM_SWITCHING and reading tlb_gen when the cpumask bit is already
  set. Off, the store may sit in the store buffer (x86-TSO lets a load pass an earlier store)
  until the CR3 write, which serializes: other CPUs still read the previous loaded_mm.

Simplifications, stated:
* PCIDs: one ASID slot per mm (TLB_NR_DYN_ASIDS is 6 in the kernel): a slot is never
  reassigned, so a switch back flushes only when the mm's tlb_gen moved. With fewer slots
  the kernel flushes more (need_flush on a reused slot), never less.
* should_trim_cpumask() is false (the model's clock never passes mm->context.next_trim_cpumask
  within a scenario): a non-lazy CPU running another mm is skipped, as between two trims.
* No INVLPGB / global ASIDs, no PTI (the user PCID), no LAM, no IBPB: they do not change
  which CPUs flush what in the model.
* The remote flushes run in CPU order, each a step of its own, after the local one (the kernel
  runs them in parallel; the steps commute except through the CPUs' own TLBs, which only their
  own CPU's accesses touch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import sched


class _Switching:
    def __repr__(self) -> str:
        return "LOADED_MM_SWITCHING"


#: arch/x86/include/asm/tlbflush.h LOADED_MM_SWITCHING: loaded_mm while a switch is in progress.
LOADED_MM_SWITCHING = _Switching()
#: include/linux/smp.h TLB_GENERATION_INVALID: a flush not tied to an mm's generation.
TLB_GENERATION_INVALID = 0


@dataclass
class TlbState:
    """cpu_tlbstate and cpu_tlbstate_shared of one CPU (see the module docstring)."""
    loaded_mm: object = None
    # What the other CPUs read of loaded_mm: differs from loaded_mm only while a store sits in
    # this CPU's store buffer (83b0177a6c48 off).
    published_mm: object = None
    is_lazy: bool = False
    ctxs: dict = field(default_factory=dict)
    cr3: object = None
    # Model only: the mm a switch in progress is loading (loaded_mm is LOADED_MM_SWITCHING).
    switching_to: object = None
    # Interrupts are off on this CPU (switch_mm_irqs_off runs with them off): IPIs wait.
    irqs_disabled: bool = False


@dataclass
class FlushTlbInfo:
    """struct flush_tlb_info (get_flush_tlb_info())."""
    mm: object
    start: int
    end: int
    stride_shift: int
    freed_tables: bool
    new_tlb_gen: int
    initiating_cpu: int
    trim_cpumask: bool = False


def _tlbstate_obj(cpu) -> tuple:
    return ("tlbstate", cpu.id)


def _tlb_gen_obj(mm) -> tuple:
    return ("tlb_gen", mm.id)


# --- context switches -------------------------------------------------------------------------
def switch_mm_irqs_off(machine, cpu, next_mm) -> None:
    """arch/x86/mm/tlb.c switch_mm_irqs_off(NULL, next, tsk) (6.18), interrupts off. *next_mm*
    None is init_mm. Each access to shared state is a step, in the kernel's order."""
    ts = cpu.tlbstate
    ts.irqs_disabled = True
    try:
        _switch_mm_irqs_off(machine, cpu, next_mm)
    finally:
        ts.irqs_disabled = False
    cpu.active_mm = next_mm


def _switch_mm_irqs_off(machine, cpu, next_mm) -> None:
    ts = cpu.tlbstate
    sched.point("this_cpu_read(cpu_tlbstate.loaded_mm)", reads=(_tlbstate_obj(cpu),))
    prev = ts.loaded_mm
    was_lazy = ts.is_lazy
    if was_lazy:
        sched.point("this_cpu_write(cpu_tlbstate_shared.is_lazy, false)",
                    writes=(_tlbstate_obj(cpu),))
        ts.is_lazy = False
    if prev is next_mm:
        if not was_lazy:
            return
        # Leaving lazy mode: catch up with the flushes this CPU skipped.
        sched.point("smp_mb(); atomic64_read(&next->context.tlb_gen)",
                    reads=(_tlb_gen_obj(next_mm),))
        next_tlb_gen = next_mm.tlb_gen
        if ts.ctxs.get(next_mm.id) == next_tlb_gen:
            return
        _reload_tlb(machine, cpu, next_mm, next_tlb_gen, need_flush=True)
        return
    # "Indicate that CR3 is about to change."
    sched.point("this_cpu_write(cpu_tlbstate.loaded_mm, LOADED_MM_SWITCHING)",
                writes=(_tlbstate_obj(cpu),))
    ts.loaded_mm = LOADED_MM_SWITCHING
    ts.switching_to = next_mm
    buffered = True             # the store is in the store buffer until something drains it
    if next_mm is not None and cpu.id not in next_mm.cpumask:
        sched.point("cpumask_set_cpu(cpu, mm_cpumask(next))",
                    writes=(("cpumask", next_mm.id),))
        next_mm.cpumask.add(cpu.id)
        buffered = False        # a locked RMW drains the store buffer
    elif machine.fixes.on("83b0177a6c48"):
        buffered = False        # smp_mb()
    if not buffered:
        ts.published_mm = LOADED_MM_SWITCHING
    if next_mm is None:
        # init_mm: the kernel's own page tables; no user translation depends on its tlb_gen.
        _reload_tlb(machine, cpu, None, 0, need_flush=False)
        return
    sched.point("atomic64_read(&next->context.tlb_gen)", reads=(_tlb_gen_obj(next_mm),))
    next_tlb_gen = next_mm.tlb_gen
    # choose_new_asid(): the mm's slot, flushed unless it has caught up with next_tlb_gen.
    need_flush = ts.ctxs.get(next_mm.id, -1) < next_tlb_gen
    _reload_tlb(machine, cpu, next_mm, next_tlb_gen, need_flush)


def _reload_tlb(machine, cpu, next_mm, next_tlb_gen: int, need_flush: bool) -> None:
    """The reload_tlb: tail: load_new_mm_cr3() (without CR3_NOFLUSH when the slot must be
    flushed), "Make sure we write CR3 before loaded_mm", then publish loaded_mm."""
    from .cpu import _drop_all
    ts = cpu.tlbstate
    sched.point("load_new_mm_cr3" + ("" if need_flush else " (CR3_NOFLUSH)"),
                writes=(cpu.obj,))
    if need_flush and next_mm is not None:
        ts.ctxs[next_mm.id] = next_tlb_gen
        _drop_all(cpu, next_mm.id)
    ts.cr3 = next_mm
    # A CR3 write serializes: a buffered loaded_mm store is visible from here on.
    ts.published_mm = ts.loaded_mm
    sched.point("this_cpu_write(cpu_tlbstate.loaded_mm, next)", writes=(_tlbstate_obj(cpu),))
    ts.loaded_mm = next_mm
    ts.published_mm = next_mm
    ts.switching_to = None


def enter_lazy_tlb(machine, cpu) -> None:
    """arch/x86/mm/tlb.c enter_lazy_tlb(): a kernel thread is scheduled; the user mm stays
    loaded (CR3, loaded_mm, the cpumask bit) and the CPU is marked lazy."""
    if cpu.tlbstate.loaded_mm is None:
        return
    sched.point("this_cpu_write(cpu_tlbstate_shared.is_lazy, true)",
                writes=(_tlbstate_obj(cpu),))
    cpu.tlbstate.is_lazy = True


# --- flushes ----------------------------------------------------------------------------------
def inc_mm_tlb_gen(mm) -> int:
    """arch/x86/include/asm/tlbflush.h inc_mm_tlb_gen(): atomic64_inc_return, "also a full
    barrier that synchronizes with switch_mm()"."""
    sched.point("inc_mm_tlb_gen", writes=(_tlb_gen_obj(mm),))
    mm.tlb_gen += 1
    return mm.tlb_gen


def get_flush_tlb_info(mm, start: int, end: int, stride_shift: int, freed_tables: bool,
                       new_tlb_gen: int) -> FlushTlbInfo:
    """arch/x86/mm/tlb.c get_flush_tlb_info(): more than tlb_single_page_flush_ceiling strides
    is a full flush."""
    from .cpu import TLB_FLUSH_ALL, TLB_SINGLE_PAGE_FLUSH_CEILING
    if end != TLB_FLUSH_ALL and (end - start) >> stride_shift > TLB_SINGLE_PAGE_FLUSH_CEILING:
        start, end = 0, TLB_FLUSH_ALL
    return FlushTlbInfo(mm, start, end, stride_shift, freed_tables, new_tlb_gen,
                        sched.current().cpu)


def flush_tlb_mm_range(machine, mm, start: int, end: int, stride_shift: int,
                       freed_tables: bool) -> None:
    """arch/x86/mm/tlb.c flush_tlb_mm_range() (6.18, no global ASID): bump the mm's tlb_gen;
    if another CPU is in mm_cpumask, flush_tlb_multi(); else, if this CPU runs the mm,
    flush_tlb_func() here."""
    cpu_id = sched.current().cpu
    # A kernel thread the model runs on no modelled CPU (a flusher) has no TLB of its own.
    this = machine.cpus[cpu_id] if 0 <= cpu_id < len(machine.cpus) else None
    new_tlb_gen = inc_mm_tlb_gen(mm)
    info = get_flush_tlb_info(mm, start, end, stride_shift, freed_tables, new_tlb_gen)
    sched.point("cpumask_any_but(mm_cpumask(mm), cpu)", reads=(("cpumask", mm.id),))
    if any(c != cpu_id for c in mm.cpumask):
        info.trim_cpumask = should_trim_cpumask(mm)
        native_flush_tlb_multi(machine, sorted(mm.cpumask), info)
    elif this is not None and this.tlbstate.loaded_mm is mm:
        _flush_on(machine, this, info)
    sched.event("tlb_flush", mm=mm, start=info.start, end=info.end, freed_tables=freed_tables)


def should_trim_cpumask(mm) -> bool:
    """arch/x86/mm/tlb.c should_trim_cpumask(): once a second (see the module docstring)."""
    return False


def should_flush_tlb(machine, cpu, info: FlushTlbInfo) -> bool:
    """arch/x86/mm/tlb.c should_flush_tlb(): the on_each_cpu_cond_mask() condition, read from
    the sender: skip a lazy CPU and one running another mm (between trims)."""
    sched.point(f"should_flush_tlb(CPU{cpu.id})", reads=(_tlbstate_obj(cpu),))
    ts = cpu.tlbstate
    loaded_mm = ts.published_mm
    if ts.is_lazy:
        return False            # "Lazy TLB will get flushed at the next context switch."
    if info.mm is None:
        return True
    if loaded_mm is LOADED_MM_SWITCHING and machine.fixes.on("fea4e317f9e7"):
        return True             # "the remote CPU could have state from either prev or next"
    if loaded_mm is info.mm:
        return True
    if info.trim_cpumask:
        return True
    return False


def native_flush_tlb_multi(machine, cpumask: list[int], info: FlushTlbInfo) -> None:
    """arch/x86/mm/tlb.c native_flush_tlb_multi(): with freed page tables every CPU of the
    mask flushes ("to prevent CPUs in lazy TLB mode from tripping up on the new contents of
    what used to be page tables"); otherwise only those should_flush_tlb() picks
    (on_each_cpu_cond_mask with SCF_RUN_LOCAL: the sender's CPU runs flush_tlb_func too)."""
    cpus = [machine.cpus[c] for c in cpumask]
    if not info.freed_tables:
        cpus = [c for c in cpus if should_flush_tlb(machine, c, info)]
    this = sched.current().cpu
    for cpu in sorted(cpus, key=lambda c: c.id != this):
        _flush_on(machine, cpu, info)


def _flush_on(machine, cpu, info: FlushTlbInfo) -> None:
    """flush_tlb_func() on *cpu*: one step, taken by a remote CPU at an instruction boundary
    with interrupts on (the sender waits for it); on the sender's own CPU with interrupts
    off."""
    remote = cpu.id != info.initiating_cpu
    sched.point(f"flush_tlb_func(CPU{cpu.id})" if remote else "flush_tlb_func",
                reads=(_tlbstate_obj(cpu), _tlb_gen_obj(info.mm), ("cpumask", info.mm.id)),
                writes=(cpu.obj, _tlbstate_obj(cpu), ("cpumask", info.mm.id)),
                wait=(lambda: takes_interrupts(machine, cpu)) if remote else None)
    flush_tlb_func(machine, cpu, info)


def takes_interrupts(machine, cpu) -> bool:
    """The CPU is at an instruction boundary with interrupts enabled (not inside
    switch_mm_irqs_off, nor in an IRQs-off section such as GUP-fast's)."""
    if cpu.busy or cpu.tlbstate.irqs_disabled:
        return False
    rcu = getattr(machine, "rcu", None)
    return rcu is None or cpu.id not in rcu.irqs_off_cpus()


def flush_tlb_func(machine, cpu, f: FlushTlbInfo) -> None:
    """arch/x86/mm/tlb.c flush_tlb_func() (6.18), run on *cpu*, in one step (it runs with
    interrupts off)."""
    from .cpu import TLB_FLUSH_ALL, _drop_all, invlpg
    ts = cpu.tlbstate
    loaded_mm = ts.loaded_mm
    if f.mm is not None and f.mm is not loaded_mm:
        # "The CPU was left in the mm_cpumask of the target mm. Clear it."
        f.mm.cpumask.discard(cpu.id)
        return
    if loaded_mm is None:
        return
    if ts.is_lazy:
        # "We need to at least flush our paging-structure cache to avoid speculatively
        # reading garbage into our TLB": switch to init_mm.
        _reload_tlb(machine, cpu, None, 0, need_flush=False)
        cpu.active_mm = None
        ts.is_lazy = False
        return
    local_tlb_gen = ts.ctxs.get(loaded_mm.id, 0)
    if f.new_tlb_gen != TLB_GENERATION_INVALID and f.new_tlb_gen <= local_tlb_gen:
        return
    mm_tlb_gen = loaded_mm.tlb_gen
    if local_tlb_gen == mm_tlb_gen:
        return
    if f.end != TLB_FLUSH_ALL and f.new_tlb_gen == local_tlb_gen + 1 and \
            f.new_tlb_gen == mm_tlb_gen:
        addr = f.start
        while addr < f.end:
            invlpg(machine, cpu, loaded_mm.id, addr)    # flush_tlb_one_user()
            addr += 1 << f.stride_shift
    else:
        _drop_all(cpu, loaded_mm.id)                    # flush_tlb_local(): CR3 rewrite
    ts.ctxs[loaded_mm.id] = mm_tlb_gen


def translation_usable(machine, cpu, mm_id: int, leaf: bool) -> bool:
    """Model only, for the invariants: can *cpu* use a cached translation of mm *mm_id*
    without a further flush? A TLB entry (*leaf*) or paging-structure-cache entry of the
    mm whose page tables CR3 points to is used by the next access (a walk-cache entry also
    by speculative walks, in lazy mode too); a TLB entry of it is not while the CPU is lazy
    or switching away from it (interrupts off, no user access until the switch is done);
    one of another mm is used only after a switch back, which flushes it unless this CPU has
    caught up with the mm's tlb_gen, and never once the mm has no users. On arm64 and ppc64 (broadcast invalidation, no lazy
    skipping) every entry is usable."""
    if machine.arch != "x86":
        return True
    ts = cpu.tlbstate
    if ts.cr3 is not None and ts.cr3.id == mm_id:
        leaving = ts.loaded_mm is LOADED_MM_SWITCHING and ts.switching_to is not ts.cr3
        if not (leaf and (ts.is_lazy or leaving)):
            return True
    mm = next((m for m in machine.mms if m.id == mm_id), None)
    if mm is None or mm.mm_users == 0:
        return False            # no task will run it again: its PCID is never loaded again
    return ts.ctxs.get(mm_id) == mm.tlb_gen
