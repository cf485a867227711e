"""include/asm-generic/bug.h: the kernel's complaints that do not stop it.

``WARN()`` / ``WARN_ON_ONCE()`` / ``VM_WARN_ON()`` print "WARNING: ..." with a backtrace and
carry on; the model prints the line to dmesg and reports a ``warn`` event, which the checker
turns into a KERNEL.warn violation (spec/check.py). ``BUG_ON()`` and the VM_BUG_ON family stop
the kernel: the model raises :class:`unmapcheck.impl.sched.KernelBug` instead.

Simplification: the ONCE variants warn every time (a model run is short, and a checker wants
every occurrence).
"""

from __future__ import annotations

from . import sched


def reports_bug(fn):
    """Marks a function that runs only when the kernel has caught a bug in itself: it prints
    a WARNING or a "Bad page map" report. Like the body of a BUG_ON, a correct model never
    runs it: ``prove --coverage`` counts its body and the statements that call it with the
    model's own (assertion bodies), not among the kernel statements and functions that prove
    must execute, and ``unmapcheck mutate`` does not mutate it (the checker sees what it
    reports through its event, spec/check.py)."""
    return fn


@reports_bug
def WARN(machine, text: str) -> None:
    """include/asm-generic/bug.h WARN(1, text): print "WARNING: text" and carry on.
    *machine* is None where the caller has no handle on it (the event is still reported)."""
    if machine is not None:
        machine.printk(f"WARNING: {text}")
    sched.event("warn", text=text)
