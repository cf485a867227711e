"""The executable reference implementation of Linux 6.18's unmap paths.

Public API (see system.py)::

    from unmapcheck.impl import System, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS
    s = System(cpus=2)
    p = s.spawn()
    addr = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)

Module map (each names the kernel file it models): constants, sched (the scheduling-point
hook), page (struct page, allocator), pte, pgtable, cpu (TLB, walk cache, flushes), locks,
mm_types (mm_struct, VMAs), mmu_gather, zap (unmap_vmas ... zap_pte_range), free_pgtables,
fault, x86_fault, filemap, rmap, vma (mm/vma.c), mmap (mm/mmap.c), mprotect, mlock, madvise,
oom_kill, fork (kernel/fork.c), exec (fs/exec.c), migrate, writeback, fixes, machine, system.
"""

from .constants import *  # noqa: F401,F403  (Linux's constants are part of the API)


def __getattr__(name):
    # The syscall API pulls in every kernel path; import it on first use.
    if name in ("System", "Process", "SigSegv", "SigBus", "MapsEntry"):
        from . import system
        return getattr(system, name)
    raise AttributeError(f"module 'unmapcheck.impl' has no attribute {name!r}")


from . import constants as _constants

__all__ = [n for n in dir(_constants) if n.isupper()] + [
    "System", "Process", "SigSegv", "SigBus", "MapsEntry"]
