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
from unmapcheck.impl.sched import KernelBug, NotModelled
from unmapcheck.impl.system import SigBus, SigSegv, System

from .scenario import KERNEL_THREAD, Scenario, ScenarioError, _one_line


class SetupError(ScenarioError):
    """The scenario's initial state could not be built (a setup syscall failed, or a setup
    access was answered with a signal): one line naming the file, the line and the mapping,
    like every other scenario error."""


def _errno(ret: int) -> str:
    import errno as E
    name = E.errorcode.get(-ret) if isinstance(ret, int) and ret < 0 else None
    return f"{ret} ({name})" if name else str(ret)


def build_system(scenario: Scenario):
    """The machine with the scenario's files and processes set up, sequentially; a failure
    (which the loader could not rule out) is a :class:`SetupError`."""
    where = ["the machine", None]           # what is being set up: (where, line)

    def fail(what: str) -> SetupError:
        w, line = where
        loc = f"{scenario.path}:{line}" if line else scenario.path
        return SetupError(_one_line(f"{loc}: {w}: the initial state cannot be built: {what}"))

    try:
        return _build(scenario, where, fail)
    except SetupError:
        sched.uninstall()
        raise
    except (SigSegv, SigBus) as e:
        sched.uninstall()
        raise fail(f"a setup access got {e}") from None
    except NotModelled as e:
        sched.uninstall()
        raise fail(f"not modelled: {e}") from None
    except (KernelBug, ValueError) as e:
        sched.uninstall()
        raise fail(f"{type(e).__name__}: {e}") from None


def _build(scenario: Scenario, where: list, fail):
    tun = Tunables(**scenario.tunables) if scenario.tunables else None
    system = System(cpus=scenario.cpus, arch=scenario.arch, era=scenario.era,
                    fixes_off=scenario.fixes_off, tunables=tun, vendor=scenario.vendor)
    files: dict[str, int] = {}
    for i, f in enumerate(scenario.files):
        where[:] = [f"file[{i}]", None]
        fd = (system.memfd_create(f.name, f.size) if f.shmem
              else system.create_file(f.name, f.size))
        if fd < 0:
            raise fail(f"creating the file returned {_errno(fd)}")
        files[f.name] = fd
        if f.data:
            _fill_file(system, fd, f.data, fail)
    procs: dict[str, Any] = {}
    for pi, ps in enumerate(scenario.processes):
        where[:] = [f"process[{pi}]", None]
        if ps.fork_of is not None:
            proc = procs[ps.fork_of].fork()
        else:
            proc = system.spawn(ps.name)
        procs[ps.name] = proc
        for i, m in enumerate(ps.mappings):
            where[:] = [m.where or f"process[{pi}].mapping[{i}]", m.line]
            flags = (C.MAP_SHARED if m.shared else C.MAP_PRIVATE) | C.MAP_FIXED
            if m.file is None:
                flags |= C.MAP_ANONYMOUS
            length = m.pages * C.PAGE_SIZE
            ret = proc.mmap(m.addr, length, m.prot, flags,
                            files[m.file] if m.file else -1, m.offset)
            if ret != m.addr:
                raise fail(f"mmap({m.addr:#x}, {length:#x}) returned {_errno(ret)}")
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
                    raise fail(f"mlock returned {_errno(ret)}")
        where[:] = [f"process[{pi}]", None]
        if ps.oom_victim:
            # __oom_kill_process(): mark the victim, then queue its mm for the reaper (the
            # scenario's oom_reaper actor is the reaper thread the timer wakes).
            from unmapcheck.impl.oom_kill import mark_oom_victim, queue_oom_reaper
            mark_oom_victim(proc.task)
            queue_oom_reaper(proc.task)
    sched.uninstall()
    # Locks are all free after setup; the threads start from a quiescent state.
    shared = [t.cpu for t in scenario.threads]
    # CPU -> the thread running an op on it, for CPUs that more than one thread runs on
    running = {c: None for c in set(shared) if shared.count(c) > 1}
    return system, {"files": files, "procs": procs, "running": running}


def _fill_file(system: System, fd: int, data: dict[int, int], fail) -> None:
    """Write the file's initial contents: a memfd with pwrite(2) (shmem_file_write_iter), a
    regular file (whose write path is not modelled) through a temporary shared mapping."""
    f = system.file(fd)
    if f.shmem:
        for idx, byte in sorted(data.items()):
            ret = system.pwrite(fd, bytes([byte]), idx * C.PAGE_SIZE)
            if ret != 1:
                raise fail(f"pwrite of page {idx} returned {_errno(ret)}")
        return
    helper = system.spawn("setup")
    npages = (f.size + C.PAGE_SIZE - 1) // C.PAGE_SIZE
    base = 0x10000000
    ret = helper.mmap(base, npages * C.PAGE_SIZE, C.PROT_READ | C.PROT_WRITE,
                      C.MAP_SHARED | C.MAP_FIXED, fd, 0)
    if ret != base:
        raise fail(f"mapping the file to write its data returned {_errno(ret)}")
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
        return proc.mlock(a["addr"], a["len"], a.get("flags"), cpu=cpu)
    if k == "munlock":
        return proc.munlock(a["addr"], a["len"], cpu=cpu)
    if k == "pwrite":
        return proc.pwrite(env["files"][a["file"]], bytes([a["value"]]) * a.get("len", 1),
                           a["offset"], cpu=cpu)
    if k == "mlockall":
        return proc.mlockall(a["flags"], cpu=cpu)
    if k == "munlockall":
        return proc.munlockall(cpu=cpu)
    if k == "fork":
        child = proc.fork(cpu=cpu)
        return f"child {child.pid}"
    if k == "exec":
        return proc.exec(cpu=cpu)
    if k == "exit":
        return proc.exit(cpu=cpu)
    if k == "context_switch":
        to = None if a["to"] == KERNEL_THREAD else env["procs"][a["to"]]
        proc.context_switch(to, cpu=cpu)
        return None
    if k == "gup_fast":
        return proc.gup_fast_only(a["addr"], a["pages"], a.get("write", False), cpu=cpu)
    if k == "load":
        return proc.load(a["addr"], cpu=cpu)
    if k == "store":
        proc.store(a["addr"], a["value"], cpu=cpu)
        return None
    raise ValueError(k)


def _not_modelled(scenario: Scenario, where: str, line, what: str,
                  e: Exception) -> ScenarioError:
    """An op whose effect the model leaves out (sched.NotModelled: page reclaim, a regular
    file's fallocate ...): the scenario asks for something outside the model, which is an
    error in the scenario, reported in one line when the op is reached."""
    loc = f"{scenario.path}:{line}" if line else scenario.path
    why = str(e) if "not modelled" in str(e) else f"not modelled: {e}"
    return ScenarioError(_one_line(f"{loc}: {where}: {what}: {why}"))


class _OnCpu:
    """Threads that share a CPU run their ops one at a time: a thread takes its CPU for
    an op (an actor for all its work) and gives it back at the end, so the CPU switches
    between them only at op boundaries, where its mm is switched by the next op's entry.
    The kernel preempting a thread inside a system call to run another thread of the
    same CPU is not modelled (a thread's ``context_switch`` op is how a scenario shares a
    CPU mid-program); what this rules out is an interleaving the kernel cannot produce:
    another thread running inside an IRQs-off section or a half-done switch_mm, or a
    preempted thread resuming without its mm switched back. The two steps are declared
    like a lock's, on ("cpu_run", cpu), so the explorer orders them as it orders locks."""

    def __init__(self, env: dict, t):
        self.running = env["running"]
        self.cpu = t.spec.cpu
        self.name = t.name

    def __enter__(self):
        if self.cpu in self.running:
            sched.point(f"schedule() in (CPU{self.cpu})", writes=(("cpu_run", self.cpu),),
                        wait=lambda: self.running[self.cpu] is None)
            self.running[self.cpu] = self.name

    def __exit__(self, kind, value, tb):
        if self.cpu in self.running and self.running[self.cpu] == self.name:
            if kind is None or issubclass(kind, (SigSegv, SigBus)):   # (not a BUG)
                sched.point(f"schedule() out (CPU{self.cpu})",
                            writes=(("cpu_run", self.cpu),))
            self.running[self.cpu] = None
        return False


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
                with _OnCpu(env, t):
                    res = run_op(system, proc, spec.cpu, op, env)
            except SigSegv:
                res = "SIGSEGV"
            except SigBus:
                res = "SIGBUS"
            except NotModelled as e:
                raise _not_modelled(execution.scenario, op.where, op.line, op.describe(),
                                    e) from None
            execution.record_result(t, res)
        return
    with _OnCpu(env, t):
        _actor_body(execution, t)


def _actor_body(execution, t) -> None:
    """A kernel actor's work (scenario ``actor``)."""
    spec = t.spec
    system = execution.system
    env = execution.env
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
        mm = proc.task.mm
        t.ctx.mm = mm
        # (an exit that started before this thread has already detached the task's mm:
        # there is no page to find then)
        ptep = lookup_pte(mm, spec.target["addr"]) if mm is not None else None
        pte = ptep.table.table.get(ptep.idx) if ptep is not None else None
        if pte is None or pte.kind != 1:
            execution.record_result(t, "no page to migrate")
        else:
            folio = machine.zone.pfn_to_page(pte.pfn)
            execution.record_result(t, migrate_folio_actor(machine, folio))
    t.ctx.syscall = ""
