"""From a scenario to a running system: the initial state, and what each thread executes.

The initial state is built sequentially through the syscall API (mmap, populating accesses
on the given CPU so that its TLB caches the translations, mlock), before the scheduler takes
over. Each thread then runs its program: syscalls and user loads/stores of a process on its
CPU, or the body of a kernel actor (the OOM reaper, writeback of a file page, migration of
the page mapped at an address).
"""

from __future__ import annotations

from typing import Any

from unmapcheck.impl import constants as C
from unmapcheck.impl import sched
from unmapcheck.impl.machine import Tunables
from unmapcheck.impl.system import SigBus, SigSegv, System

from .scenario import Scenario


class SetupError(Exception):
    """The scenario's initial state could not be built (a setup syscall failed)."""


def build_system(scenario: Scenario):
    tun = Tunables(**scenario.tunables) if scenario.tunables else None
    system = System(cpus=scenario.cpus, arch=scenario.arch, era=scenario.era,
                    fixes_off=scenario.fixes_off, tunables=tun)
    files: dict[str, int] = {}
    for f in scenario.files:
        fd = (system.memfd_create(f.name, f.size) if f.shmem
              else system.create_file(f.name, f.size))
        files[f.name] = fd
        if f.data:
            _fill_file(system, fd, f.data)
    procs: dict[str, Any] = {}
    for ps in scenario.processes:
        if ps.fork_of is not None:
            proc = procs[ps.fork_of].fork()
        else:
            proc = system.spawn(ps.name)
        procs[ps.name] = proc
        for i, m in enumerate(ps.mappings):
            flags = (C.MAP_SHARED if m.shared else C.MAP_PRIVATE) | C.MAP_FIXED
            if m.file is None:
                flags |= C.MAP_ANONYMOUS
            length = m.pages * C.PAGE_SIZE
            ret = proc.mmap(m.addr, length, m.prot, flags,
                            files[m.file] if m.file else -1, m.offset)
            if ret != m.addr:
                raise SetupError(f"{scenario.path}: process {ps.name!r} mapping[{i}]: "
                                 f"mmap returned {ret}")
            for idx, byte in sorted(m.data.items()):
                proc.store(m.addr + idx * C.PAGE_SIZE, byte, cpu=m.populate_cpu)
            if m.populate != "none":
                for k in range(m.pages):
                    addr = m.addr + k * C.PAGE_SIZE
                    if m.populate == "write":
                        proc.store(addr, proc.load(addr, cpu=m.populate_cpu),
                                   cpu=m.populate_cpu)
                    else:
                        proc.load(addr, cpu=m.populate_cpu)
            if m.mlock:
                ret = proc.mlock(m.addr, length)
                if ret != 0:
                    raise SetupError(f"{scenario.path}: process {ps.name!r} mapping[{i}]: "
                                     f"mlock returned {ret}")
        if ps.oom_victim:
            from unmapcheck.impl.oom_kill import mark_oom_victim
            mark_oom_victim(proc.task)
    sched.uninstall()
    # Locks are all free after setup; the threads start from a quiescent state.
    return system, {"files": files, "procs": procs}


def _fill_file(system: System, fd: int, data: dict[int, int]) -> None:
    """Write the file's initial contents through a temporary shared mapping."""
    f = system.file(fd)
    helper = system.spawn("setup")
    npages = (f.size + C.PAGE_SIZE - 1) // C.PAGE_SIZE
    base = 0x10000000
    helper.mmap(base, npages * C.PAGE_SIZE, C.PROT_READ | C.PROT_WRITE,
                C.MAP_SHARED | C.MAP_FIXED, fd, 0)
    for idx, byte in sorted(data.items()):
        helper.store(base + idx * C.PAGE_SIZE, byte)
    helper.exit()
    system.processes.remove(helper)


def run_op(system: System, proc, cpu: int, op, env: dict) -> Any:
    a = op.args
    k = op.op
    if k == "mmap":
        fd = env["files"][a["file"]] if a.get("file") else -1
        flags = a["flags"] if a.get("file") is None else a["flags"] & ~C.MAP_ANONYMOUS
        return proc.mmap(a["addr"], a["len"], a["prot"], flags, fd, a.get("offset", 0), cpu=cpu)
    if k == "munmap":
        return proc.munmap(a["addr"], a["len"], cpu=cpu)
    if k == "mprotect":
        return proc.mprotect(a["addr"], a["len"], a["prot"], cpu=cpu)
    if k == "madvise":
        return proc.madvise(a["addr"], a["len"], a["advice"], cpu=cpu)
    if k == "mlock":
        return proc.mlock(a["addr"], a["len"], cpu=cpu)
    if k == "munlock":
        return proc.munlock(a["addr"], a["len"], cpu=cpu)
    if k == "fork":
        child = proc.fork(cpu=cpu)
        return f"child {child.pid}"
    if k == "exec":
        return proc.exec(cpu=cpu)
    if k == "exit":
        return proc.exit(cpu=cpu)
    if k == "load":
        return proc.load(a["addr"], cpu=cpu)
    if k == "store":
        proc.store(a["addr"], a["value"], cpu=cpu)
        return None
    raise ValueError(k)


def thread_body(execution, t) -> None:
    """What one scenario thread executes (inside its greenlet)."""
    spec = t.spec
    system = execution.system
    env = execution.env
    if spec.actor is None:
        proc = env["procs"][spec.process]
        t.ctx.task = proc.task
        for i, op in enumerate(spec.program):
            t.op_index = i
            try:
                res = run_op(system, proc, spec.cpu, op, env)
            except SigSegv:
                res = "SIGSEGV"
            except SigBus:
                res = "SIGBUS"
            execution.record_result(t, res)
        return
    machine = system.machine
    t.ctx.syscall = spec.actor
    if spec.actor == "oom_reaper":
        from unmapcheck.impl.oom_kill import oom_reaper_actor
        proc = env["procs"][spec.process]
        # The reaper works on signal->oom_mm, pinned by mark_oom_victim (the task may exit).
        mm = proc.task.oom_mm or proc.task.mm
        t.ctx.mm = mm
        execution.record_result(t, oom_reaper_actor(machine, mm, proc.task))
    elif spec.actor == "writeback":
        from unmapcheck.impl.writeback import writeback_folio_actor
        f = system.file(env["files"][spec.target["file"]])
        execution.record_result(t, writeback_folio_actor(machine, f, spec.target["index"]))
    elif spec.actor == "migrate":
        from unmapcheck.impl.migrate import migrate_folio_actor
        from unmapcheck.impl.pgtable import lookup_pte
        proc = env["procs"][spec.process]
        t.ctx.mm = proc.task.mm
        ptep = lookup_pte(proc.task.mm, spec.target["addr"])
        pte = ptep.table.table.get(ptep.idx) if ptep is not None else None
        if pte is None or pte.kind != 1:
            execution.record_result(t, "no page to migrate")
        else:
            folio = machine.zone.pfn_to_page(pte.pfn)
            execution.record_result(t, migrate_folio_actor(machine, folio))
    t.ctx.syscall = ""
