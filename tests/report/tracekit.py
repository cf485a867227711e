"""A synthetic counterexample trace, written by hand to docs/trace-format.md (version 1).

It stands in for a trace from the scenario corpus in the report tests: T1 (CPU1) runs
MADV_DONTNEED over one page: clears the PTE, removes the rmap, flushes (before the fix: only
its own CPU) and frees the page; T0 (CPU0) loads the page twice in user space, the second time
through CPU0's stale TLB entry into the freed frame. The race pair is T1's folio_put and T0's
second load.
"""

from __future__ import annotations

import copy

ADDR = "0x7f0000000000"
ADDR2 = "0x7f0000001000"
PTE_KEY = f"mm1 {ADDR}"
MADVISE = "madvise(MADV_DONTNEED)"
ZAP_STACK = ["__x64_sys_madvise", "do_madvise", "madvise_walk_vmas", "madvise_vma_behavior",
             "madvise_dontneed_single_vma", "zap_page_range_single_batched",
             "unmap_single_vma", "unmap_page_range", "zap_p4d_range", "zap_pud_range",
             "zap_pmd_range", "zap_pte_range"]

INITIAL = {
    "vmas": {f"mm1 {ADDR}": f"{ADDR}-0x7f0000002000 rw-p pgoff 0x7f0000000"},
    "ptes": {PTE_KEY: "pfn 12 rw dirty young", f"mm1 {ADDR2}": "pfn 13 rw dirty young"},
    "tlb": {f"cpu0 mm1 {ADDR}": "pfn 12 rw dirty", f"cpu1 mm1 {ADDR}": "pfn 12 rw dirty"},
    "walk_cache": {"cpu0 mm1 L1 #0x3f80000": "table pfn 4",
                   "cpu1 mm1 L1 #0x3f80000": "table pfn 4"},
    "pages": {"pfn 1": "page table L4", "pfn 2": "page table L3", "pfn 3": "page table L2",
              "pfn 4": "page table L1", "pfn 12": "anon ref 1 map 1 [dirty]",
              "pfn 13": "anon ref 1 map 1 [dirty]"},
    "rss": {"mm1": "file 0 anon 2 swap 0 shmem 0"},
    "tlb_flush_pending": {"mm1": "0"},
    "locks": {},
}

# (thread, function, stack suffix, label, syscall, preemption, events, changes)
STEPS = [
    ("T1", "down_read", ["mmap_read_lock", "down_read"], "down_read", MADVISE, False, [],
     [["locks", "mmap_lock mm1", None, "read-locked by T1"]]),
    ("T1", "inc_tlb_flush_pending", ["tlb_gather_mmu", "inc_tlb_flush_pending"],
     "inc_tlb_flush_pending", MADVISE, False, [], [["tlb_flush_pending", "mm1", "0", "1"]]),
    ("T1", "spin_lock", ZAP_STACK[2:] + ["pte_offset_map_lock", "spin_lock"], "spin_lock",
     MADVISE, False, [], [["locks", "ptl pfn 4", None, "held by T1"]]),
    ("T1", "zap_pte_range", ZAP_STACK[2:], "ptep_get_and_clear", MADVISE, False, [],
     [["ptes", PTE_KEY, "pfn 12 rw dirty young", None]]),
    ("T1", "folio_remove_rmap_ptes", ZAP_STACK[2:] + ["folio_remove_rmap_ptes"],
     "_mapcount_add", MADVISE, False, [],
     [["pages", "pfn 12", "anon ref 1 map 1 [dirty]", "anon ref 1 map 0 [dirty]"],
      ["rss", "mm1", "file 0 anon 2 swap 0 shmem 0", "file 0 anon 1 swap 0 shmem 0"]]),
    ("T1", "spin_unlock", ZAP_STACK[2:] + ["pte_unmap_unlock", "spin_unlock"], "spin_unlock",
     MADVISE, False, [], [["locks", "ptl pfn 4", "held by T1", None]]),
    ("T1", "mm_tlb_flush_nested", ["tlb_finish_mmu", "mm_tlb_flush_nested"],
     "mm_tlb_flush_nested", MADVISE, False, [], []),
    ("T0", "do_user_addr_access", ["do_user_addr_access"], "load", "", True, [], []),
    ("T1", "flush_tlb_mm_range", ["tlb_finish_mmu", "tlb_flush_mmu", "tlb_flush_mmu_tlbonly",
                                  "flush_tlb_mm_range"], "flush_tlb_mm_range", MADVISE, True,
     ["tlb_flush"], [["tlb", f"cpu1 mm1 {ADDR}", "pfn 12 rw dirty", None]]),
    ("T1", "folio_put", ["tlb_finish_mmu", "tlb_flush_mmu", "tlb_flush_mmu_free",
                         "free_pages_and_swap_cache", "folio_put"], "folio_put", MADVISE,
     False, [], [["pages", "pfn 12", "anon ref 1 map 0 [dirty]", "free"]]),
    ("T1", "dec_tlb_flush_pending", ["tlb_finish_mmu", "dec_tlb_flush_pending"],
     "dec_tlb_flush_pending", MADVISE, False, [], [["tlb_flush_pending", "mm1", "1", "0"]]),
    ("T1", "up_read", ["mmap_read_unlock", "up_read"], "up_read", MADVISE, False, [],
     [["locks", "mmap_lock mm1", "read-locked by T1", None]]),
    ("T1", "return_to_user", [], "return_to_user", MADVISE, False, ["return_to_user"], []),
    ("T0", "do_user_addr_access", ["do_user_addr_access"], "load", "", False, [], []),
]
RACE = [9, 13]
VIOLATION_STEP = 13
QUIET_STEPS = [6]          # no changes, no events, not marked: hidden by the toggle


def make_trace(steps=STEPS) -> dict:
    """A version-1 trace document; states are the initial state with each step's changes
    applied, so states[i + 1] is the state after step i."""
    threads = [
        {"name": "T0", "cpu": 0, "role": "process p",
         "program": [f"load(addr={ADDR})", f"load(addr={ADDR})"]},
        {"name": "T1", "cpu": 1, "role": "process p",
         "program": [f"madvise(addr={ADDR}, len=0x1000, advice=MADV_DONTNEED)"]},
    ]
    names = [t["name"] for t in threads]
    state = copy.deepcopy(INITIAL)
    states = [copy.deepcopy(state)]
    out_steps = []
    for i, (th, fn, stack, label, syscall, pre, events, changes) in enumerate(steps):
        for var, key, old, new in changes:
            assert state[var].get(key) == old, (i, var, key)
            if new is None:
                del state[var][key]
            else:
                state[var][key] = new
        states.append(copy.deepcopy(state))
        cpu = threads[names.index(th)]["cpu"]
        full = (ZAP_STACK[:2] + stack) if syscall and stack else list(stack)
        out_steps.append({"index": i, "thread": th, "cpu": cpu, "function": fn, "stack": full,
                          "label": label, "syscall": syscall, "preemption": pre,
                          "events": list(events), "changes": [list(c) for c in changes]})
    text = ('[scenario]\nname = "synthetic-dontneed-stale-tlb"\ncpus = 2\n'
            'fixes_off = ["99baac21e458"]\n')
    return {
        "schema": "unmapcheck-trace",
        "version": 1,
        "scenario": {"name": "synthetic-dontneed-stale-tlb",
                     "path": "proofs/scenarios/synthetic-dontneed-stale-tlb.toml", "text": text},
        "fixes_off": ["99baac21e458"],
        "arch": "x86",
        "command": "unmapcheck explore proofs/scenarios/synthetic-dontneed-stale-tlb.toml "
                   "--without 99baac21e458",
        "threads": threads,
        "schedule": [names.index(s["thread"]) for s in out_steps],
        "preemptions": sum(1 for s in out_steps if s["preemption"]),
        "violation": {"invariant": "I1.freed_frame", "group": "I1",
                      "message": f"CPU0's TLB maps {ADDR} to pfn 12 (rw, dirty), but pfn 12 is "
                                 f"free: a use-after-free through a stale TLB entry",
                      "step": VIOLATION_STEP, "thread": "T0"},
        "race": list(RACE),
        "steps": out_steps,
        "#meta": {"format": "ITF", "description": "states[i] is the state after step i "
                  "(states[0]: the initial state)"},
        "vars": list(INITIAL),
        "states": [{"#meta": {"index": i},
                    **{var: {"#map": [[k, v] for k, v in sorted(m.items())]}
                       for var, m in st.items()}}
                   for i, st in enumerate(states)],
    }


HOSTILE = "<script>alert(1)</script>"


def make_hostile_trace() -> dict:
    """The same trace with markup, quotes and script-ending sequences in every string the
    report shows."""
    doc = make_trace()
    evil = HOSTILE
    doc["scenario"]["name"] = f'{evil}"\' onmouseover="alert(2)'
    doc["scenario"]["path"] = "javascript:alert(3)"
    doc["scenario"]["text"] = f"</pre>{evil}<!--"
    doc["command"] = f"unmapcheck explore '{evil}' && rm -rf ~ </script>"
    doc["arch"] = evil  # (fixes_off must name known fix commits: the validator refuses others)
    doc["violation"]["message"] = f"</p>{evil}<img src=x onerror=alert(4)>"
    doc["violation"]["invariant"] = f"I1.{evil}"
    doc["threads"][0]["role"] = f"process {evil}"
    doc["threads"][0]["program"] = [f"load({evil})"]
    st = doc["steps"][3]
    st["function"] = evil
    st["label"] = '"><svg onload=alert(5)>'
    st["syscall"] = f"madvise({evil})"
    st["stack"] = st["stack"] + [evil]
    st["events"] = [evil]
    # A state value that would end the JSON <script> block if it were not escaped.
    key = "mm1 0x7f0000001000"
    bad = "</script><script>alert(6)</script><!--"
    doc["steps"][4]["changes"].append(["ptes", key, "pfn 13 rw dirty young", bad])
    for s in doc["states"][5:]:
        s["ptes"]["#map"] = [[k, bad if k == key else v] for k, v in s["ptes"]["#map"]]
    return doc
