"""Page-table entry values: ``pte_t`` and the non-present forms (swap and migration entries).

Models arch/x86/include/asm/pgtable.h (pte_none, pte_present, pte_write, pte_dirty,
pte_young, pte_mkclean, pte_wrprotect, pte_mkold, pfn_pte, pte_mkspecial),
include/linux/swapops.h (swp_entry_t, is_migration_entry, make_*_migration_entry,
pfn_swap_entry_to_page) and mm/swapfile.c's swap slots in the smallest form that shows the
unmap paths' behaviour:

* an entry is an immutable value; tables store values, never mutate them in place;
* a present entry holds pfn, write, dirty, young, special (pte_special for the zero page) and
  protnone: x86's PROT_NONE form, _PAGE_PROTNONE with _PAGE_PRESENT clear, which the kernel
  treats as present (pte_present() is true: it maps a page, counts in rss and mapcount, is
  zapped and copied like any present PTE) but the MMU does not (an access faults);
* a swap entry holds a swap offset; a migration entry holds the pfn of the page under
  migration and whether the original mapping was writable;
* upper-level entries (pgd/pud/pmd) are :class:`TableEntry` values pointing at a table frame.
"""

from __future__ import annotations

from .sched import model_only

NONE, PRESENT, SWAP, MIGRATION = 0, 1, 2, 3
KIND_NAMES = ("none", "present", "swap", "migration")


class pte_t:
    __slots__ = ("kind", "pfn", "write", "dirty", "young", "special", "offset", "protnone",
                 "swp_exclusive")

    def __init__(self, kind: int, pfn: int = 0, write: bool = False, dirty: bool = False,
                 young: bool = False, special: bool = False, offset: int = 0,
                 protnone: bool = False, swp_exclusive: bool = False):
        self.kind = kind
        self.pfn = pfn
        self.write = write
        self.dirty = dirty
        self.young = young
        self.special = special
        self.offset = offset
        # x86 _PAGE_PROTNONE (a PRESENT entry of a PROT_NONE VMA): never writable.
        self.protnone = protnone
        # _PAGE_SWP_EXCLUSIVE of a swap entry: the page was exclusive to this mm when it was
        # swapped out, so swap-in may map it writable at once (pte_swp_exclusive).
        self.swp_exclusive = swp_exclusive

    def _key(self) -> tuple:
        return (self.kind, self.pfn, self.write, self.dirty, self.young, self.special,
                self.offset, self.protnone, self.swp_exclusive)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, pte_t) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return describe(self)


PTE_NONE = pte_t(NONE)


@model_only
def describe(pte: pte_t) -> str:
    """A short human-readable form, used in traces: ``pfn 12 rw dirty``, ``none``."""
    if pte.kind == NONE:
        return "none"
    if pte.kind == PRESENT:
        bits = ["rw" if pte.write else "ro"]
        if pte.dirty:
            bits.append("dirty")
        if pte.young:
            bits.append("young")
        if pte.special:
            bits.append("special")
        if pte.protnone:
            bits.append("protnone")
        return f"pfn {pte.pfn} " + " ".join(bits)
    if pte.kind == SWAP:
        return f"swap {pte.offset}" + (" exclusive" if pte.swp_exclusive else "")
    return f"migration pfn {pte.pfn}" + (" (was rw)" if pte.write else "")


# --- predicates and constructors (arch/x86/include/asm/pgtable.h) -----------------------------
def pte_none(pte: pte_t) -> bool:
    return pte.kind == NONE


def pte_present(pte: pte_t) -> bool:
    """x86 pte_present(): _PAGE_PRESENT or _PAGE_PROTNONE, so a protnone PTE is present."""
    return pte.kind == PRESENT


def pte_protnone(pte: pte_t) -> bool:
    """x86 pte_protnone(): _PAGE_PROTNONE set and _PAGE_PRESENT clear: present to the kernel,
    not to the MMU (CONFIG_NUMA_BALANCING's hinting faults use it too; the model only makes
    such PTEs for PROT_NONE VMAs)."""
    return pte.kind == PRESENT and pte.protnone


def pte_write(pte: pte_t) -> bool:
    return pte.write


def pte_dirty(pte: pte_t) -> bool:
    return pte.dirty


def pte_young(pte: pte_t) -> bool:
    return pte.young


def pte_special(pte: pte_t) -> bool:
    return pte.special


def pte_pfn(pte: pte_t) -> int:
    return pte.pfn


def pfn_pte(pfn: int, write: bool, dirty: bool = False, young: bool = True,
            protnone: bool = False) -> pte_t:
    """pfn_pte(pfn, prot) with the bits the model distinguishes (mk_pte + maybe_mkwrite);
    *protnone* for PAGE_NONE (the vm_page_prot of a PROT_NONE VMA), which is never
    writable."""
    return pte_t(PRESENT, pfn=pfn, write=write and not protnone, dirty=dirty, young=young,
                 protnone=protnone)


def _with(pte: pte_t, **bits) -> pte_t:
    """A copy of present *pte* with some bits changed (the other bits, protnone included,
    carry over, as the kernel's pte_mk*() change one bit of the value)."""
    v = {"pfn": pte.pfn, "write": pte.write, "dirty": pte.dirty, "young": pte.young,
         "special": pte.special, "protnone": pte.protnone}
    v.update(bits)
    return pte_t(PRESENT, **v)


def pte_mkspecial(pte: pte_t) -> pte_t:
    return _with(pte, special=True)


def pte_mkclean(pte: pte_t) -> pte_t:
    return _with(pte, dirty=False)


def pte_mkdirty(pte: pte_t) -> pte_t:
    return _with(pte, dirty=True)


def pte_mkyoung(pte: pte_t) -> pte_t:
    return _with(pte, young=True)


def pte_mkold(pte: pte_t) -> pte_t:
    return _with(pte, young=False)


def pte_wrprotect(pte: pte_t) -> pte_t:
    return _with(pte, write=False)


def pte_mkwrite(pte: pte_t) -> pte_t:
    """pte_mkwrite(pte, vma): set _PAGE_RW (arm64: PTE_WRITE), whatever the rest of the
    value. On a PAGE_NONE entry too: 6.18's remove_migration_pte() does it when an mprotect
    has already set vm_page_prot to PAGE_NONE but not yet reached the still-writable
    migration entry; the entry stays unusable to the MMU (protnone) until change_pte_range()
    rewrites it with pte_modify()."""
    return _with(pte, write=True)


# --- swap and migration entries (include/linux/swapops.h) -----------------------------------
def swp_entry_to_pte(offset: int) -> pte_t:
    return pte_t(SWAP, offset=offset)


def pte_swp_mkexclusive(pte: pte_t) -> pte_t:
    return pte_t(SWAP, offset=pte.offset, swp_exclusive=True)


def pte_swp_exclusive(pte: pte_t) -> bool:
    return pte.swp_exclusive


def pte_swp_clear_exclusive(pte: pte_t) -> pte_t:
    return pte_t(SWAP, offset=pte.offset)


def non_swap_entry(pte: pte_t) -> bool:
    """A special swap-type entry (migration, device, marker) rather than a real swap slot."""
    return pte.kind == MIGRATION


def is_migration_entry(pte: pte_t) -> bool:
    return pte.kind == MIGRATION


def is_writable_migration_entry(pte: pte_t) -> bool:
    return pte.kind == MIGRATION and pte.write


def make_migration_entry(pfn: int, writable: bool) -> pte_t:
    """make_readable_migration_entry() / make_writable_migration_entry()."""
    return pte_t(MIGRATION, pfn=pfn, write=writable)


def swp_offset(pte: pte_t) -> int:
    return pte.offset


class TableEntry:
    """A pgd/pud/pmd entry: present and pointing at the next-level table frame (or none).

    ``gen`` is the generation of that frame when the entry was made; it lets the invariants
    tell a reused frame from the original, not the hardware.
    """

    __slots__ = ("pfn", "gen")

    def __init__(self, pfn: int, gen: int):
        self.pfn = pfn
        self.gen = gen

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TableEntry) and (self.pfn, self.gen) == (other.pfn, other.gen)

    def __hash__(self) -> int:
        return hash((self.pfn, self.gen))

    def __repr__(self) -> str:
        return f"table pfn {self.pfn}"
