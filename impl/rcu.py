"""RCU as the page-table lifetime rules use it: read-side critical sections, call_rcu() and
the grace period, and the IRQ-disabled sections that tlb_remove_table_sync_one() waits for.

Models the parts of kernel/rcu/ (rcu_read_lock, rcu_read_unlock, call_rcu, the grace period)
and include/linux/irqflags.h (local_irq_save / local_irq_restore) that decide when a
page-table page may be freed, as Linux 6.18 has them:

* since 5.0 (the consolidated RCU flavours), a region with interrupts disabled is an RCU
  read-side critical section too: GUP-fast's local_irq_save() region holds off a grace
  period exactly as rcu_read_lock() does;
* a callback queued with call_rcu() runs only after every read-side critical section that
  was in progress when it was queued has ended (a reader that starts later cannot have found
  an object that was already unlinked);
* tlb_remove_table_sync_one() (mm/mmu_gather.c) is not a grace period: it is an IPI to every
  other CPU with wait=1, which a CPU takes only with interrupts enabled, so it waits for the
  IRQ-disabled sections (GUP-fast) and not for rcu_read_lock() sections (pte_offset_map()).

The model keeps, per thread (the kernel's per-task RCU nesting), its open section: the
nesting depth, whether interrupts are off, and the page-table pages the walker in it has
reached (so that freeing one while a reader can still use it is a reported violation, not a
silent use-after-free: spec/invariants.py PT_LIFETIME.reader).

Scheduling points: entering and leaving a section, queuing a callback and running one are
steps, so that the explorer orders them against each other. Entering and leaving are
commutative ``adds`` on ``("rcu",)`` (readers do not order each other); call_rcu() reads it
(its snapshot of the readers), so the reduction explores a reader entering before and after.

Simplifications, stated:
* The grace period ends at the earliest moment the kernel allows: a callback runs as soon as
  the last section it waits for ends (at call_rcu() itself when there is none). A later end
  is not explored; only a reader could tell the two apart, and a reader that could still
  reach the object when it is freed is reported whenever the free happens.
* The callback runs in the thread that ended the grace period (the kernel runs it from
  softirq or rcuc on some CPU); its step writes the objects it frees.
* No rcu_barrier, no expedited grace periods, no callback batching or offloading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import sched

RCU = ("rcu",)


@dataclass
class Section:
    """One thread's open read-side critical section."""

    seq: int                                  # which section of the thread (for snapshots)
    cpu: int
    depth: int = 0                            # rcu_read_lock nesting
    irqs_off: int = 0                         # local_irq_save nesting
    tables: set = field(default_factory=set)  # page-table pfns the walker in it has reached


@dataclass
class Callback:
    func: Callable[[], None]
    label: str
    writes: tuple
    waits_for: set                            # {(thread, seq)} still to end


class RcuState:
    """The machine's RCU: open sections by thread, and callbacks waiting for a grace
    period."""

    def __init__(self) -> None:
        self.sections: dict[str, Section] = {}
        self.pending: list[Callback] = []
        self._seq: dict[str, int] = {}

    def open_section(self, who: str, cpu: int) -> Section:
        sec = self.sections.get(who)
        if sec is None:
            n = self._seq.get(who, 0) + 1
            self._seq[who] = n
            sec = self.sections[who] = Section(n, cpu)
        return sec

    def readers_of(self, pfn: int, gen: int) -> list[str]:
        """The threads inside a section that have reached page-table page *pfn* (of
        generation *gen*: the frame as a table, not a later reuse of it)."""
        return sorted(who for who, s in self.sections.items() if (pfn, gen) in s.tables)

    def irqs_off_cpus(self) -> set[int]:
        return {s.cpu for s in self.sections.values() if s.irqs_off}


def _rcu(machine) -> RcuState:
    return machine.rcu


def _who() -> tuple[str, int]:
    ctx = sched.current()
    return ctx.name, ctx.cpu


def rcu_read_lock(machine) -> None:
    """include/linux/rcupdate.h rcu_read_lock()."""
    sched.point("rcu_read_lock", adds=(RCU,))
    who, cpu = _who()
    _rcu(machine).open_section(who, cpu).depth += 1


def rcu_read_unlock(machine) -> None:
    """include/linux/rcupdate.h rcu_read_unlock(): the end of the outermost section may end
    grace periods; their callbacks run now (see the module docstring)."""
    sched.point("rcu_read_unlock", adds=(RCU,))
    who, _ = _who()
    sec = _rcu(machine).sections.get(who)
    if sec is None or sec.depth == 0:
        raise sched.LockDiscipline(f"{who}: rcu_read_unlock() outside a read-side section")
    sec.depth -= 1
    _maybe_end_section(machine, who, sec)


def local_irq_save(machine) -> None:
    """include/linux/irqflags.h local_irq_save(): interrupts off on this CPU (an RCU
    read-side critical section, and no IPI is taken until they are back on)."""
    sched.point("local_irq_save", adds=(RCU,))
    who, cpu = _who()
    _rcu(machine).open_section(who, cpu).irqs_off += 1


def local_irq_restore(machine) -> None:
    """include/linux/irqflags.h local_irq_restore()."""
    sched.point("local_irq_restore", adds=(RCU,))
    who, _ = _who()
    sec = _rcu(machine).sections.get(who)
    if sec is None or sec.irqs_off == 0:
        raise sched.LockDiscipline(f"{who}: local_irq_restore() without local_irq_save()")
    sec.irqs_off -= 1
    _maybe_end_section(machine, who, sec)


def rcu_reached_table(machine, pfn: int, gen: int) -> None:
    """Model only: the walker of the running thread has read a pointer to page-table page
    *pfn* (of generation *gen*) inside its section (pte_offset_map, a GUP-fast level). No
    step of its own: the read that found the pointer is the step."""
    who, _ = _who()
    sec = _rcu(machine).sections.get(who)
    if sec is not None:
        sec.tables.add((pfn, gen))


def in_read_section(machine) -> bool:
    who, _ = _who()
    sec = _rcu(machine).sections.get(who)
    return sec is not None and (sec.depth > 0 or sec.irqs_off > 0)


def _maybe_end_section(machine, who: str, sec: Section) -> None:
    if sec.depth or sec.irqs_off:
        return
    rcu = _rcu(machine)
    del rcu.sections[who]
    ended = (who, sec.seq)
    ready = []
    for cb in rcu.pending:
        cb.waits_for.discard(ended)
        if not cb.waits_for:
            ready.append(cb)
    for cb in ready:
        rcu.pending.remove(cb)
        _invoke(cb)


def _invoke(cb: Callback) -> None:
    sched.point(cb.label, writes=cb.writes)
    cb.func()


def call_rcu(machine, func: Callable[[], None], label: str, writes: tuple = ()) -> None:
    """kernel/rcu/tree.c call_rcu(): run *func* after a grace period. *label* names the
    callback (the kernel function), *writes* the objects it frees (its footprint)."""
    sched.point("call_rcu", reads=(RCU,))
    rcu = _rcu(machine)
    waits = {(who, s.seq) for who, s in rcu.sections.items()}
    cb = Callback(func, label, tuple(writes), waits)
    if not waits:
        _invoke(cb)
        return
    rcu.pending.append(cb)


def tlb_remove_table_sync_one(machine) -> None:
    """mm/mmu_gather.c tlb_remove_table_sync_one(): smp_call_function(
    tlb_remove_table_smp_sync, NULL, 1): an empty IPI to every other online CPU, waiting for
    each to take it, which it does only with interrupts enabled. "This isn't an RCU grace
    period ... It is however sufficient for software page-table walkers that rely on IRQ
    disabling." One step, enabled when no other CPU has interrupts off."""
    me = sched.current().cpu
    rcu = _rcu(machine)
    sched.point("tlb_remove_table_sync_one", reads=(RCU,),
                wait=lambda: not (rcu.irqs_off_cpus() - {me}))
