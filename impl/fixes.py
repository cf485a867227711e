"""Historical fixes as named toggles (default on).

Each toggle is a real upstream commit in the unmap paths. Switched off, the model runs the
code path the kernel had before the fix, so the checker can show what the fix prevents
(each fix's scenario in proofs/scenarios/ gives the interleaving). The paths that consult a
toggle say so in their docstrings, with the before/after shapes.

Some fixes live in a shape of a function that the kernel has since rewritten, or in code the
kernel gained later; those need another *kernel era* (``Machine.era``): 27ae357fa82b lives in
exit_mmap's 5.x OOM-victim path, which 6.1 removed; 478a1c3abebf in 7.0's PT_RECLAIM code
(mm/memory.c, on arm64 too), which 6.18 does not have in that form.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fix:
    commit: str
    title: str
    version: str
    effect_when_off: str
    era: str = "6.18"


FIXES: dict[str, Fix] = {f.commit: f for f in (
    Fix("99baac21e458", "mm: fix MADV_[FREE|DONTNEED] TLB flush miss problem", "v4.13",
        "tlb_finish_mmu() flushes only what its own gather collected, even when another "
        "thread is batching a flush of the same mm (mm_tlb_flush_nested() is ignored)"),
    Fix("7a30df49f63a", "mm: mmu_gather: remove __tlb_reset_range() for force flush", "v5.2",
        "a forced (nested) flush resets the gather with __tlb_reset_range(), which clears "
        "freed_tables, so the flush is last-level only and walk caches keep freed tables"),
    Fix("1cf35d47712d", "mm: split 'tlb_flush_mmu()' into tlb flushing and memory freeing "
        "parts", "v3.15",
        "a dirty shared PTE does not force a flush, and the TLB flush of a zap_pte_range "
        "batch runs after the page-table lock is dropped"),
    Fix("5df397dec7c4", "mm: delay page_remove_rmap() until after the TLB has been flushed",
        "v6.2",
        "zap_pte_range removes the rmap of a dirty shared page before the TLB flush, so "
        "folio_mkclean() sees it unmapped and does not wait on the page-table lock"),
    Fix("687cb0884a71", "mm, oom_reaper: gather each vma to prevent leaking TLB entry",
        "v4.15",
        "__oom_reap_task_mm() uses one fullmm gather for the whole mm; on arm64 a fullmm "
        "flush is skipped, so reaped pages are freed while still in a TLB"),
    Fix("27ae357fa82b", "mm, oom: fix concurrent munlock and oom reaper unmap, v3", "v4.17",
        "exit_mmap() munlocks (clearing VM_LOCKED) before it reaps and sets MMF_OOM_SKIP, so "
        "the OOM reaper can zap a VMA while exit_mmap's munlock walker is inside it",
        era="5.x"),
    Fix("9f9f1acd713d", "mm: fix rss count leakage during migration", "v3.3",
        "zap_pte_range (and fork's copy) ignore migration entries in the rss counters, so "
        "unmapping a page under migration leaks an MM_ANONPAGES/MM_FILEPAGES count"),
    Fix("7e7757876f25", "mm/mremap: fix vm_pgoff in vma_merge() case 3", "v6.4",
        "when a new range merges into the following VMA, which expands downwards, the merged "
        "VMA keeps the new range's pgoff instead of next->vm_pgoff - pglen"),
    # CVE-2026-74674. Broken by 4c640eb4181c ("mm: move pte table reclaim code to memory.c",
    # v7.0), which passes zap_pte_range's addr (== end after the loop) to pte_free_tlb(); 6.18
    # passed start. Affected v7.0 to v7.1.8 (fixed in v7.2 and v7.1.9). The fix's diff was
    # not among the sources read: the model frees with start, the address its commit message
    # says the call needs (one the table covers).
    Fix("478a1c3abebf", "mm: fix incorrect flush address in direct page table reclaim",
        "v7.2",
        "zap_pte_range() queues a reclaimed PTE table with pte_free_tlb(..., addr) where addr "
        "== end, one past the table, so the flush invalidates the paging-structure entries "
        "of the next table's range: on arm64, and on AMD with EFER.TCE, a walk cache keeps "
        "reaching the freed table", era="7.0"),
    Fix("d86564a2f085", "mm/tlb, x86/mm: Support invalidating TLB caches for RCU_TABLE_FREE",
        "v4.19",
        "tlb_table_flush() and the table-batch allocation failure path free page tables "
        "without tlb_table_invalidate(): a full table batch, or a table freed on its own when "
        "the batch page cannot be allocated, is freed while paging-structure caches still "
        "point at it"),
    # Committed 2020-02-03, after v5.5 was released (2020-01-26): first in v5.6-rc1 (the
    # issue that asked for it said v5.5), backported to 5.4.y and 4.19.y. Fixes a46cc7a90fd8
    # ("powerpc/mm/radix: Improve TLB/PWC flushes", v4.14), which deferred radix's PWC flush
    # to the gather's tlb_flush() while HAVE_RCU_TABLE_NO_INVALIDATE compiled
    # tlb_table_invalidate() out on powerpc.
    Fix("0ed1325967ab", "mm/mmu_gather: invalidate TLB correctly on batch allocation failure "
        "and flush", "v5.6",
        "tlb_needs_table_invalidate() is false on powerpc (HAVE_RCU_TABLE_NO_INVALIDATE), "
        "radix included: a full table batch, or a table freed on its own when the batch page "
        "cannot be allocated, is freed before the gather's PWC flush, so the radix page-walk "
        "cache still points at it (ppc64 only)"),
    # CVE-2025-37964; Fixes: 6db2526c1d69 ("x86/mm/tlb: Only trim the mm_cpumask once a
    # second", v6.14). Stable: 6.14.7, 6.12.29, 6.6.91, 6.1.139, 5.15.183.
    Fix("fea4e317f9e7", "x86/mm: Eliminate window where TLB flushes may be inadvertently "
        "skipped", "v6.15",
        "should_flush_tlb() skips a CPU whose loaded_mm is LOADED_MM_SWITCHING: a CPU that "
        "read the mm's tlb_gen before the flush incremented it loads CR3 without flushing "
        "and runs the mm with stale TLB entries (x86)"),
    # CVE-2025-40174 (affected 6.14 to 6.17.4); Fixes: 209954cbc7d0 ("x86/mm/tlb: Update
    # mm_cpumask lazily", v6.14); in v6.18-rc2. Reported by Stephen Dolan.
    Fix("83b0177a6c48", "x86/mm: Fix SMP ordering in switch_mm_irqs_off()", "v6.18",
        "switch_mm_irqs_off() has no smp_mb() between storing loaded_mm = "
        "LOADED_MM_SWITCHING and reading tlb_gen when its cpumask bit is already set: the "
        "store can wait in the store buffer while a flush reads the old loaded_mm and skips "
        "the CPU, which then loads CR3 without flushing (x86-TSO store buffering)"),
    # Fixes: 0bff0aaea03e ("x86/mm: try VMA lock-based page fault handling first", v6.4);
    # applied by Linus on 2023-07-08 (v6.5-rc1), stable 6.4.3. Reported by Jiri Slaby,
    # Holger Hoffstaette, Jacob Young (bugzilla 217624).
    Fix("fb49c455323f", "fork: lock VMAs of the parent process when forking", "v6.5",
        "dup_mmap() does not write-lock the parent's VMAs: a parent thread's page fault under "
        "the per-VMA lock runs while fork copies the VMA, write-protects its PTEs and shares "
        "its pages, before fork's flush_tlb_mm(oldmm)"),
    # Jann Horn, 2023-07-21; merged for v6.5-rc4 (mm-hotfixes), stable 6.4.8. Fixes
    # 5e31275cc997 ("mm: add per-VMA lock and helper functions to control it", v6.4).
    Fix("d8ab9f7b644a", "mm: lock VMA in dup_anon_vma() before setting ->anon_vma", "v6.5",
        "a merge sets its target's anon_vma (dup_anon_vma) before write-locking the target "
        "(v6.4: vma_prepare() did, after): a fault under the target's VMA lock maps a page "
        "with that anon_vma, and when anon_vma_clone() then fails with -ENOMEM the target is "
        "tied to nothing, so the anon_vma can be freed while the page is still mapped"),
)}

# Kernel eras: "6.18" is the default; "5.x" selects exit_mmap's pre-6.1 shape (27ae357fa82b);
# "7.0" selects 7.0's PT_RECLAIM (on every MMU_GATHER_RCU_TABLE_FREE architecture, the code in
# mm/memory.c: 478a1c3abebf). Everything else is 6.18 in every era.
ERAS = ("6.18", "5.x", "7.0")


class Fixes:
    """The set of fixes switched off for one machine (all on by default)."""

    def __init__(self, off: tuple[str, ...] | list[str] = ()):
        unknown = [c for c in off if c not in FIXES]
        if unknown:
            raise ValueError(f"unknown fix commit {unknown[0]!r} (known: "
                             f"{', '.join(FIXES)})")
        self.off = frozenset(off)

    def on(self, commit: str) -> bool:
        assert commit in FIXES, commit
        return commit not in self.off

    def __repr__(self) -> str:
        return f"Fixes(off={sorted(self.off)})"


def resolve_commit(prefix: str) -> str:
    """Accept a commit id prefix of at least 7 hex digits, as git does."""
    matches = [c for c in FIXES if c.startswith(prefix.lower())] if len(prefix) >= 7 else []
    if len(matches) != 1:
        raise ValueError(f"unknown fix commit {prefix!r} (known: {', '.join(FIXES)})")
    return matches[0]
