"""Locks: spinlocks (the page-table locks) and the mmap_lock rw-semaphore.

Models include/linux/spinlock.h and kernel/locking/rwsem.c / include/linux/mmap_lock.h
(mmap_read_lock, mmap_read_trylock, mmap_write_lock, mmap_write_downgrade, ...).

Every lock operation is a scheduling point that writes the lock object, so acquire and
release are dependencies like any other access. An acquire whose lock is not available is a
blocked step: the explorer does not schedule it until the lock is released (the ``wait``
predicate of :func:`sched.point`). The model checks lock discipline: releasing a lock that is
not held, or taking a sleeping lock (the rwsem) while holding a spinlock, raises
:class:`LockDiscipline`.

The rwsem is two objects: the writer side, which readers only read, and the reader count,
which readers change commutatively (``adds``), so two readers do not order each other while a
reader and a writer do.

Simplifications: rwsem fairness (a queued writer blocking new readers) is not modelled, so
readers may overtake a waiting writer; this allows more interleavings, never fewer.
"""

from __future__ import annotations

from . import sched
from .sched import LockDiscipline


class SpinLock:
    """spinlock_t. ``owner`` is the holding context's name, or None."""

    __slots__ = ("name", "owner")

    def __init__(self, name: str):
        self.name = name
        self.owner = None

    @property
    def obj(self) -> tuple:
        return ("lock", self.name)

    def __repr__(self) -> str:
        return f"<spinlock {self.name} owner={self.owner}>"


def spin_lock(lock: SpinLock) -> None:
    """include/linux/spinlock.h spin_lock(): spins (the step is disabled) while another
    context holds the lock."""
    sched.point("spin_lock", writes=(lock.obj,), wait=lambda: lock.owner is None)
    cur = sched.current()
    lock.owner = cur.name
    cur.held.append(lock)


def spin_trylock(lock: SpinLock) -> bool:
    """include/linux/spinlock.h spin_trylock()."""
    sched.point("spin_trylock", writes=(lock.obj,))
    if lock.owner is not None:
        return False
    cur = sched.current()
    lock.owner = cur.name
    cur.held.append(lock)
    return True


def spin_unlock(lock: SpinLock) -> None:
    """include/linux/spinlock.h spin_unlock(): only by the holder."""
    sched.point("spin_unlock", writes=(lock.obj,))
    cur = sched.current()
    if lock.owner != cur.name:
        raise LockDiscipline(f"{cur.name}: spin_unlock of {lock.name} held by {lock.owner}")
    lock.owner = None
    cur.held.remove(lock)


def might_sleep(what: str) -> None:
    """include/linux/kernel.h might_sleep(): sleeping with a spinlock held is a bug."""
    cur = sched.current()
    if cur.held:
        raise LockDiscipline(f"{cur.name}: BUG: sleeping function called from invalid "
                             f"context ({what} with {cur.held[-1].name} held)")


class RwSem:
    """struct rw_semaphore as used for mmap_lock: ``readers`` holders or one ``writer``."""

    __slots__ = ("name", "readers", "writer")

    def __init__(self, name: str):
        self.name = name
        self.readers: list = []
        self.writer = None

    @property
    def obj(self) -> tuple:
        """The writer side; readers are counted in :attr:`readers_obj`."""
        return ("lock", self.name)

    @property
    def readers_obj(self) -> tuple:
        return ("lock", self.name, "readers")

    def __repr__(self) -> str:
        return f"<rwsem {self.name} writer={self.writer} readers={self.readers}>"

    def state(self) -> str:
        """The holders, described for traces."""
        if self.writer is not None:
            return f"write-locked by {self.writer}"
        if self.readers:
            return "read-locked by " + ", ".join(self.readers)
        return "unlocked"


def down_read(sem: RwSem) -> None:
    """kernel/locking/rwsem.c down_read(): sleeps while a writer holds the lock."""
    might_sleep(f"down_read({sem.name})")
    sched.point("down_read", reads=(sem.obj,), adds=(sem.readers_obj,),
                wait=lambda: sem.writer is None)
    sem.readers.append(sched.current().name)


def down_read_trylock(sem: RwSem) -> bool:
    """kernel/locking/rwsem.c down_read_trylock()."""
    sched.point("down_read_trylock", reads=(sem.obj,), adds=(sem.readers_obj,))
    if sem.writer is not None:
        return False
    sem.readers.append(sched.current().name)
    return True


def up_read(sem: RwSem) -> None:
    """kernel/locking/rwsem.c up_read(): only by a reader."""
    sched.point("up_read", adds=(sem.readers_obj,))
    name = sched.current().name
    if name not in sem.readers:
        raise LockDiscipline(f"{name}: up_read of {sem.name} not read-held by it")
    sem.readers.remove(name)


def down_write(sem: RwSem) -> None:
    """kernel/locking/rwsem.c down_write(): sleeps while anyone holds the lock."""
    might_sleep(f"down_write({sem.name})")
    sched.point("down_write", reads=(sem.readers_obj,), writes=(sem.obj,),
                wait=lambda: sem.writer is None and not sem.readers)
    sem.writer = sched.current().name


def up_write(sem: RwSem) -> None:
    """kernel/locking/rwsem.c up_write(): only by the writer."""
    sched.point("up_write", writes=(sem.obj,))
    name = sched.current().name
    if sem.writer != name:
        raise LockDiscipline(f"{name}: up_write of {sem.name} held by {sem.writer}")
    sem.writer = None


def downgrade_write(sem: RwSem) -> None:
    """kernel/locking/rwsem.c downgrade_write(): the writer becomes a reader."""
    sched.point("downgrade_write", writes=(sem.obj,), adds=(sem.readers_obj,))
    name = sched.current().name
    if sem.writer != name:
        raise LockDiscipline(f"{name}: downgrade_write of {sem.name} held by {sem.writer}")
    sem.writer = None
    sem.readers.append(name)


# include/linux/mmap_lock.h ------------------------------------------------------------------
def mmap_read_lock(mm) -> None:
    down_read(mm.mmap_lock)


def mmap_read_trylock(mm) -> bool:
    return down_read_trylock(mm.mmap_lock)


def mmap_read_unlock(mm) -> None:
    up_read(mm.mmap_lock)


def mmap_write_lock(mm) -> None:
    """include/linux/mmap_lock.h mmap_write_lock(): then mm_lock_seqcount_begin()."""
    down_write(mm.mmap_lock)
    _seq_begin(mm)


def mmap_write_lock_killable(mm) -> int:
    down_write(mm.mmap_lock)
    _seq_begin(mm)
    return 0


def mmap_write_unlock(mm) -> None:
    """include/linux/mmap_lock.h mmap_write_unlock(): vma_end_write_all(), then up_write."""
    _seq_end(mm)
    up_write(mm.mmap_lock)


def mmap_write_downgrade(mm) -> None:
    """include/linux/mmap_lock.h mmap_write_downgrade(): vma_end_write_all() first, so a
    downgrade ends every VMA write lock."""
    _seq_end(mm)
    downgrade_write(mm.mmap_lock)


def _seq_begin(mm) -> None:
    from .mmap_lock import mm_lock_seqcount_begin, per_vma_locks
    if per_vma_locks(mm):
        mm_lock_seqcount_begin(mm)


def _seq_end(mm) -> None:
    from .mmap_lock import per_vma_locks, vma_end_write_all
    if per_vma_locks(mm):
        vma_end_write_all(mm)


def lockdep_assert_held_write(sem: RwSem, what: str) -> None:
    """include/linux/lockdep.h lockdep_assert_held_write(): the current context holds *sem*
    for write. The model also calls it where the kernel relies on a lock without asserting
    it (a caller's comment says "caller holds ..."), as lockdep would if it did."""
    if sem.writer != sched.current().name:
        raise LockDiscipline(f"{sched.current().name}: {what} without {sem.name} held for "
                             f"write ({sem.state()})")


def mmap_assert_write_locked(mm) -> None:
    if mm.mmap_lock.writer != sched.current().name:
        raise LockDiscipline(f"{sched.current().name}: mmap_assert_write_locked failed")


def mmap_assert_locked(mm) -> None:
    name = sched.current().name
    if mm.mmap_lock.writer != name and name not in mm.mmap_lock.readers:
        raise LockDiscipline(f"{name}: mmap_assert_locked failed")


def lockdep_sys_exit(machine) -> None:
    """kernel/locking/lockdep.c lockdep_sys_exit(), as 6.18's generic entry code (which x86
    uses) calls it at the end of exit_to_user_mode_prepare(): on every return to user
    space, after a system call (syscall_exit_to_user_mode) and after an exception (a page
    fault's irqentry_exit_to_user_mode) alike, no lock may be held and no RCU read-side
    section open ("lock held when returning to user space!")."""
    from .rcu import in_read_section
    ctx = sched.current()
    if ctx.held:
        raise LockDiscipline(f"{ctx.name}: lock held when returning to user space: "
                             + ", ".join(lock.name for lock in ctx.held))
    if in_read_section(machine):
        raise LockDiscipline(f"{ctx.name}: returning to user space inside an RCU read-side "
                             f"critical section")

