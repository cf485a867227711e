"""The OOM reaper (impl/oom_kill.py) in the 6.18 and 5.x eras, with fix toggles 687cb0884a71
(gather each VMA) and 27ae357fa82b (exit_mmap reaps before munlock)."""

from __future__ import annotations

import pytest

from mmkit import LOCKED, RW, SHARED, Env, Recorder, page

from unmapcheck.impl import sched
from unmapcheck.impl.constants import (MM_ANONPAGES, MMF_OOM_SKIP,
                                       MMF_UNSTABLE, PAGE_SIZE)
from unmapcheck.impl.locks import mmap_write_lock, mmap_write_unlock
from unmapcheck.impl.mm_types import mm_flags_set
from unmapcheck.impl.oom_kill import (MAX_OOM_REAP_RETRIES, __oom_reap_task_mm,
                                      mark_oom_victim, mm_is_oom_victim, oom_reap_task,
                                      oom_reap_task_mm, oom_reaper_actor, queue_oom_reaper)
from unmapcheck.impl.page import page_mapcount


def victim(env: Env):
    """An anonymous private VMA, a shared memfd VMA and a private memfd VMA with one COW
    page and one page-cache page mapped; every page touched."""
    env.vma(page(0), 4, RW)
    f = env.memfd(4)
    env.vma(page(8), 4, RW | SHARED, file=f)
    g = env.memfd(2)
    env.vma(page(16), 2, RW, file=g)
    env.touch(page(0), 4)
    env.touch(page(8), 4)
    env.store(page(16))                          # COW: an anonymous page in a file VMA
    env.load(page(17))                           # a page-cache page, read-only
    assert env.rss() == [0, 5, 0, 5]          # memfd pages count as MM_SHMEMPAGES
    return f, g


def test_reaper_frees_anonymous_pages_and_leaves_shared_file_pages():
    env = Env()
    f, g = victim(env)
    anon = [env.page_at(page(i)) for i in range(4)]
    shared = [f.f_mapping.i_pages[i] for i in range(4)]
    oom_reaper_actor(env.machine, env.mm, env.task)
    assert env.present(page(0), 4) == []         # anonymous: reaped
    assert env.present(page(8), 4) == [0, 1, 2, 3]   # shared file: left alone
    assert env.present(page(16), 2) == []        # private file VMA: reaped (COW and cache)
    assert env.rss() == [0, 0, 0, 4]
    assert all(p.free for p in anon)
    assert all(not p.free and page_mapcount(p) == 1 for p in shared)
    assert not g.f_mapping.i_pages[1].free       # the page cache outlives the unmap
    assert env.mm.flags & (1 << MMF_UNSTABLE) and env.mm.flags & (1 << MMF_OOM_SKIP)
    assert not env.tlb_has(0, page(0))
    assert any(l.startswith("oom_reaper: reaped process 1 (t0), now anon-rss:0kB, "
                            "file-rss:0kB, shmem-rss:16kB") for l in env.machine.dmesg)
    env.check_exact()


def test_reaper_walks_vmas_top_down_in_618_and_bottom_up_in_5x():
    for era, expected in (("6.18", [page(4), page(0)]), ("5.x", [page(0), page(4)])):
        env = Env(era=era)
        env.vma(page(0), 2, RW)
        env.vma(page(4), 2, RW)
        env.touch(page(0), 2)
        env.touch(page(4), 2)
        with Recorder() as rec:
            __oom_reap_task_mm(env.mm)
        flushes = [i["start"] for k, i in rec.events if k == "tlb_flush"]
        assert flushes == expected, era


@pytest.mark.parametrize("era,reaped", [("6.18", True), ("5.x", False)])
def test_mlocked_vma_is_reaped_in_618_skipped_in_5x(era, reaped):
    env = Env(era=era)
    env.vma(page(0), 2, RW | LOCKED)
    env.touch(page(0), 2)
    __oom_reap_task_mm(env.mm)
    assert env.present(page(0), 2) == ([] if reaped else [0, 1])


def test_reaper_gives_up_when_mmap_lock_is_held_for_write():
    env = Env()
    victim(env)
    other = sched.Context(name="exiting", cpu=1, task=env.task)
    me = sched.set_current(other)
    mmap_write_lock(env.mm)                      # e.g. exit_mmap's free_pgtables phase
    sched.set_current(me)
    assert oom_reap_task_mm(env.task, env.mm) is False
    with Recorder() as rec:
        oom_reap_task(env.task, env.mm)
    assert rec.labels.count("down_read_trylock") == MAX_OOM_REAP_RETRIES
    assert "oom_reaper: unable to reap pid:1 (t0)" in env.machine.dmesg
    assert env.mm.flags & (1 << MMF_OOM_SKIP)    # hidden from the OOM killer anyway
    assert env.rss()[MM_ANONPAGES] == 5          # nothing reaped
    sched.set_current(other)
    mmap_write_unlock(env.mm)
    sched.set_current(me)


def test_reaper_does_nothing_once_exit_mmap_set_oom_skip():
    env = Env()
    victim(env)
    mm_flags_set(env.mm, MMF_OOM_SKIP)
    assert oom_reap_task_mm(env.task, env.mm) is True
    assert env.rss()[MM_ANONPAGES] == 5
    assert not env.mm.flags & (1 << MMF_UNSTABLE)


@pytest.mark.parametrize("arch", ["x86", "arm64"])
@pytest.mark.parametrize("fixed", [True, False])
def test_gather_each_vma_fix(arch, fixed):
    """Bug 6 (687cb0884a71): with one fullmm gather for the whole reap, arm64's tlb_flush()
    skips the flush, and the reaped page is freed while CPU0 still caches it."""
    env = Env(arch=arch, fixes_off=() if fixed else ("687cb0884a71",))
    env.vma(page(0), 1, RW)
    env.store(page(0), 0x11)
    p = env.page_at(page(0))
    with Recorder() as rec:
        oom_reap_task(env.task, env.mm)
    assert p.free
    stale = env.tlb_has(0, page(0))
    assert stale == (arch == "arm64" and not fixed)
    if stale:
        assert "tlb_flush" not in rec.kinds()
        # The victim still reads the freed (poisoned) frame through its TLB.
        assert env.load(page(0)) == 0x6B


def test_mark_oom_victim_and_queue():
    for era in ("6.18", "5.x"):
        env = Env(era=era)
        count = env.mm.mm_count
        mark_oom_victim(env.task)
        mark_oom_victim(env.task)                # TIF_MEMDIE already set: nothing more
        assert env.task.oom_victim and env.task.oom_mm is env.mm
        assert env.mm.mm_count == count + 1      # mmgrab for signal->oom_mm
        assert mm_is_oom_victim(env.mm) == (era == "5.x")   # MMF_OOM_VICTIM is 5.x only
        assert queue_oom_reaper(env.task) is True
        assert queue_oom_reaper(env.task) is False


def test_victim_exit_after_reap_leaves_nothing():
    env = Env()
    victim(env)
    mark_oom_victim(env.task)
    oom_reaper_actor(env.machine, env.mm, env.task)
    from unmapcheck.impl.fork import mmdrop, mmput
    mm = env.mm
    env.task.mm = None
    mmput(mm)
    assert not mm.freed                          # signal->oom_mm still pins the mm_struct
    mmdrop(mm)
    assert mm.freed
    assert not [l for l in env.machine.dmesg if l.startswith("BUG")]
    assert env.machine.zone.nr_allocated() == 1 + 4 + 2   # zero page + the memfds' cache


# --- bug 27ae357fa82b: 5.x exit_mmap's munlock walk against the reaper -------------------------
@pytest.mark.parametrize("fixed", [True, False])
def test_exit_mmap_munlock_vs_reaper(fixed):
    """The victim's exit_mmap (5.x) munlocks its mlocked VMA -- clearing VM_LOCKED, then
    walking the pages -- while the OOM reaper runs. The reaper is injected when the walker
    is inside the VMA (while it handles the first page). Before the fix, the reaper sees VM_LOCKED clear
    and zaps the VMA under the walker; after it, exit_mmap reaped first and set
    MMF_OOM_SKIP, so the reaper does nothing."""
    from unmapcheck.impl.fork import mmput
    from unmapcheck.impl.mlock import sys_mlock
    env = Env(era="5.x", fixes_off=() if fixed else ("27ae357fa82b",))
    env.vma(page(0), 4, RW)
    assert sys_mlock(env.mm, page(0), 4 * PAGE_SIZE) == 0
    assert env.mm.locked_vm == 4 and env.rss()[MM_ANONPAGES] == 4
    mark_oom_victim(env.task)
    reaper = sched.Context(name="oom_reaper", cpu=1)
    state = {"reaped": False, "walkers": None}

    def hook(label):
        # The point before the walker leaves the VMA: it is still inside.
        if label == "munlock_walker_exit" and not state["reaped"]:
            state["reaped"] = True
            state["walkers"] = [v.walkers for v in mm.mm_mt]
            me = sched.set_current(reaper)
            oom_reap_task_mm(None, mm)
            sched.set_current(me)

    mm = env.mm
    env.task.mm = None
    with Recorder(hook) as rec:
        mmput(mm)
    assert state["reaped"] and state["walkers"] == [1]
    bug = "zap_under_walker" in rec.kinds()
    assert bug == (not fixed)
    assert not [l for l in env.machine.dmesg if l.startswith("BUG")]
