"""exec's switch of address space (impl/exec.py exec_mmap, bprm_mm_init)."""

from __future__ import annotations

from mmkit import RW, SHARED, Env, Recorder, page

from unmapcheck.impl.constants import MM_ANONPAGES, PAGE_SIZE, TASK_SIZE, VM_GROWSDOWN
from unmapcheck.impl.exec import STACK_TOP_MAX, bprm_mm_init, exec_mmap
from unmapcheck.impl.fork import mmget, mmput
from unmapcheck.impl.pgtable import iter_tables


def test_exec_drops_the_old_mm():
    env = Env()
    env.vma(page(0), 4, RW)
    f = env.memfd(2)
    env.vma(page(8), 2, RW | SHARED, file=f)
    env.touch(page(0), 4)
    env.touch(page(8), 2)
    env.load(page(0), cpu=1)
    old = env.mm
    anon = [env.page_at(page(i)) for i in range(4)]
    new = bprm_mm_init(env.machine)
    env.on(0)                                    # exec runs on CPU0
    with Recorder() as rec:
        assert exec_mmap(env.task, new) == 0
    assert env.task.mm is new and env.task.active_mm is new
    assert env.cpus[0].active_mm is new and 0 in new.cpumask
    # The old mm was the task's only user: exit_mmap tore it down and it was freed.
    assert old.freed and len(old.mm_mt) == 0
    assert all(p.free for p in anon)
    assert not f.f_mapping.i_pages[0].free and f.f_mapping.i_mmap == []
    assert not env.tlb_has(0, page(0), old) and not env.tlb_has(1, page(0), old)
    assert old.mmap_lock.state() == "unlocked"
    switch = next(i for i, label in enumerate(rec.labels) if "LOADED_MM_SWITCHING" in label)
    assert rec.labels.index("down_read") < switch < \
        rec.labels.index("up_read")             # the switch under mmap_read_lock(old_mm)
    assert env.machine.dmesg == []
    # Allocated now: the zero page, the memfd's two cache pages, the new mm's pgd.
    assert env.machine.zone.nr_allocated() == 1 + 2 + 1


def test_new_image_has_its_stack_vma():
    env = Env()
    mm = bprm_mm_init(env.machine)
    (vma,) = list(mm.mm_mt)
    assert (vma.vm_start, vma.vm_end) == (STACK_TOP_MAX - PAGE_SIZE, STACK_TOP_MAX)
    assert STACK_TOP_MAX == TASK_SIZE
    assert vma.vm_flags & VM_GROWSDOWN and vma.vm_pgoff == vma.vm_start >> 12
    assert mm.map_count == 1 and mm.total_vm == mm.stack_vm == 1
    empty = bprm_mm_init(env.machine, stack=False)
    assert len(empty.mm_mt) == 0
    # The stack works after exec.
    assert exec_mmap(env.task, mm) == 0
    env.store(STACK_TOP_MAX - 8, 1)
    assert env.rss(mm)[MM_ANONPAGES] == 1


def test_exec_with_another_user_keeps_the_old_mm():
    env = Env()
    env.vma(page(0), 2, RW)
    env.touch(page(0), 2)
    old = env.mm
    mmget(old)                                   # a CLONE_VM sibling still runs it
    assert exec_mmap(env.task, bprm_mm_init(env.machine, stack=False)) == 0
    assert not old.freed and env.present(page(0), 2, old) == [0, 1]
    assert old.mm_users == 1
    mmput(old)                                   # the sibling exits
    assert old.freed
    assert [len(iter_tables(m)) for m in env.machine.mms] == [1]
