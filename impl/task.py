"""``struct task_struct`` in the form the unmap paths need: a pid, its mm, and flags.

Models include/linux/sched.h; a task is single-threaded unless a scenario gives its mm to
several threads (the model's threads share the task's mm, as CLONE_VM threads do).
"""

from __future__ import annotations


class task_struct:
    def __init__(self, machine, mm, comm: str = "task"):
        self.pid = machine.next_id("pid")
        self.comm = comm
        self.mm = mm
        self.active_mm = mm
        self.exited = False
        self.oom_victim = False
        # tsk->signal->oom_mm: the mm an OOM victim's reaper works on (mark_oom_victim).
        self.oom_mm = None
        # The fault counters getrusage() reports (mm_account_fault).
        self.min_flt = 0
        self.maj_flt = 0

    def __repr__(self) -> str:
        return f"<task {self.pid} {self.comm}>"
