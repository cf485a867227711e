"""The one narrow hook through which every access to shared kernel state passes.

Every model function that touches state another thread can see (a PTE read or clear, a
refcount, mapcount or rss update, ``tlb_flush_pending``, a TLB fill or flush, a lock operation)
first calls :func:`point` with a label and the objects the coming step reads and writes.
Between two points a thread only touches its own locals, so a *step* is "the access announced
at a point, plus the local work up to the next point".

Sequential use (tests, the syscall API, the oracle) runs straight through: with no runtime
installed, :func:`point` only checks that a blocking step could proceed (otherwise the single
thread would sleep forever, which is a deadlock) and returns.

The explorer installs a runtime whose ``point`` switches to the scheduler. The mechanism is
greenlets, chosen over the alternatives for these reasons:

* generators would force ``yield from`` into every kernel function and every caller of one,
  so ``impl/`` would no longer read like mm/memory.c line for line;
* OS threads cost a real context switch per step (tens of microseconds) and make a
  deterministic hand-off harder than it should be;
* a greenlet switch costs about a microsecond, keeps the kernel code plain, and a thread's
  whole future is decided by the scheduler's choices alone, so re-running the scenario from
  the start along a recorded schedule reproduces it exactly (stateless replay);
* the point announces the step *before* it happens, with its read and write sets, which is
  what dynamic partial-order reduction needs to compute dependencies and what a scheduler
  needs to know whether a blocked thread (a lock held by someone else) is enabled.

Commutative updates (``adds``: counter increments whose result is not used, read-lock
acquire and release) are declared apart from writes, so that the reduction does not order
two of them: the atomic counters of the unmap paths (rss, tlb_flush_pending, refcount
increments) and mmap_lock readers would otherwise multiply the interleavings for nothing.

Object identities used in read/write sets are small tuples, for example ``("pte", pfn, idx)``
for a page-table slot, ``("page", pfn)`` for a struct page, ``("rss", mm_id)``,
``("tlb", cpu)``, ``("lock", name)``; two steps are dependent when one writes an object the
other reads or writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

Obj = tuple
WaitFn = Optional[Callable[[], bool]]


class KernelBug(Exception):
    """A BUG_ON / VM_BUG_ON fired in the model (the kernel would oops here)."""


class Deadlock(KernelBug):
    """A thread would sleep forever: the lock it waits for can never be released."""


class LockDiscipline(KernelBug):
    """Unlock of a lock not held, or sleeping while holding a spinlock."""


class NotModelled(Exception):
    """A valid operation whose effect the model leaves out (truncation, fallocate
    preallocation, page reclaim ...): raised instead of doing something else silently."""


def model_only(fn):
    """Marks a function of impl/ that is the model's own helper, not kernel code (the text of
    a PTE or of page flags for traces and messages): ``unmapcheck mutate`` does not mutate
    it and ``prove --coverage`` does not count it among the kernel-mirroring functions."""
    return fn


@dataclass
class Context:
    """What ``current`` means for the model: the task running kernel code, and on which CPU.

    ``held`` lists the spinlocks the context holds (for "sleeping under a spinlock");
    ``syscall`` names the system call or kernel actor it is executing, for traces; ``mm`` is
    the mm a kernel actor (the OOM reaper, migration) works on. ``operated`` lists the
    address ranges the running system call has operated on (zapped, changed the protection
    of, unmapped): what the kernel owes user space when the call returns (see
    :func:`operated_on`).
    """

    name: str = "task"
    cpu: int = 0
    task: Any = None
    held: list = field(default_factory=list)
    syscall: str = ""
    mm: Any = None
    start_tick: int = 0
    operated: list = field(default_factory=list)


_DEFAULT = Context()
_current: Context = _DEFAULT

#: The installed runtime, or None for straight-through sequential execution.
RT: Any = None


def current() -> Context:
    """The running context (``current`` in the kernel)."""
    return _current


def set_current(ctx: Context) -> Context:
    """Make *ctx* the running context; returns the previous one (for restoring)."""
    global _current
    prev = _current
    _current = ctx
    return prev


def install(runtime: Any) -> None:
    """Install an explorer runtime (an object with ``point`` and ``event`` methods)."""
    global RT
    RT = runtime


def uninstall() -> None:
    global RT, _current
    RT = None
    _current = _DEFAULT


def point(label: str, reads: Iterable[Obj] = (), writes: Iterable[Obj] = (),
          wait: WaitFn = None, adds: Iterable[Obj] = ()) -> None:
    """A scheduling point before a step that reads *reads* and writes *writes*.

    *adds* are objects the step only changes by a commutative update whose result it does not
    use (an atomic_inc of a counter, taking a read lock): two adds to the same object do not
    conflict, an add and a read or write do.

    *wait*, when given, says whether the step can proceed now (a lock is free). The scheduler
    treats a thread whose wait is false as disabled.
    """
    rt = RT
    if rt is None:
        if wait is not None and not wait():
            raise Deadlock(f"{_current.name}: {label} would sleep forever (single-threaded run)")
        return
    rt.point(label, reads, writes, wait, adds)


#: The kinds of nondeterministic branch a scenario can switch on (``[choices]``): an
#: allocation that may fail (GFP_NOWAIT: tlb_next_batch, the table batch, anon_vma_clone's
#: first try), an order-0 GFP_KERNEL allocation that fails ("enomem": the page allocator
#: retries those, so they fail for an OOM victim or under fault injection; anon_vma_clone's
#: retry), and need_resched() (zap_pte_range breaks off mid-table).
CHOICE_KINDS = ("alloc", "enomem", "resched")


def may_fail(kind: str, label: str) -> bool:
    """A branch the kernel does not control: does this GFP_NOWAIT allocation fail, is
    need_resched() true here (*kind* one of :data:`CHOICE_KINDS`, *label* the call site).

    False (the allocation succeeds, no reschedule is due) unless the scenario switches the
    kind on; then the explorer's runtime decides, and explores both outcomes (see
    checker/explore.py explore_choices). A sequential run asks the machine's ``inject``
    hook when one is installed (the stateful test draws failures through it)."""
    rt = RT
    if rt is not None:
        # (a runtime that only records steps, a test's, decides nothing: the common side)
        choose = getattr(rt, "choose", None)
        return bool(choose is not None and choose(kind, label))
    hook = _sequential_choice
    return bool(hook is not None and hook(kind, label))


#: Sequential runs: a function (kind, label) -> bool deciding the branches, or None (never).
_sequential_choice: Optional[Callable[[str, str], bool]] = None


def operated_on(start: int, end: int) -> None:
    """Model only (no kernel counterpart): the running system call has operated on the
    page-aligned [start, end) of its mm: it zapped the range, changed its protection or
    unmapped it, and so owes user space, when it returns, a TLB that agrees with the page
    table there (I1.return). Called where the kernel commits to the range (the VMA
    madvise zaps, the VMA mprotect_fixup changes, the range vms_clear_ptes clears), so that
    a call that fails before touching a range (an -EINVAL from the argument checks, a VMA
    another thread has already detached) owes nothing for it."""
    _current.operated.append((start, end))


def event(kind: str, **info: Any) -> None:
    """Report a kernel event that invariants are checked at (a flush completed, a syscall
    returned to user space, exit_mmap finished ...). Sequential runs ignore events."""
    rt = RT
    if rt is not None:
        rt.event(kind, info)
