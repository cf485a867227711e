"""Page-table entry values: ``pte_t`` and the non-present forms (swap and migration entries).

Models arch/x86/include/asm/pgtable.h (pte_none, pte_present, pte_write, pte_dirty,
pte_young, pte_mkclean, pte_wrprotect, pte_mkold, pfn_pte, pte_mkspecial),
include/linux/swapops.h (swp_entry_t, is_migration_entry, make_*_migration_entry,
pfn_swap_entry_to_page) and mm/swapfile.c's swap slots in the smallest form that shows the
unmap paths' behaviour:

* an entry is an immutable value; tables store values, never mutate them in place;
* a present entry holds pfn, write, dirty, young and special (pte_special for the zero page);
* a swap entry holds a swap offset; a migration entry holds the pfn of the page under
  migration and whether the original mapping was writable;
* upper-level entries (pgd/pud/pmd) are :class:`TableEntry` values pointing at a table frame.
"""

from __future__ import annotations

NONE, PRESENT, SWAP, MIGRATION = 0, 1, 2, 3
KIND_NAMES = ("none", "present", "swap", "migration")


class pte_t:
    __slots__ = ("kind", "pfn", "write", "dirty", "young", "special", "offset")

    def __init__(self, kind: int, pfn: int = 0, write: bool = False, dirty: bool = False,
                 young: bool = False, special: bool = False, offset: int = 0):
        self.kind = kind
        self.pfn = pfn
        self.write = write
        self.dirty = dirty
        self.young = young
        self.special = special
        self.offset = offset

    def _key(self) -> tuple:
        return (self.kind, self.pfn, self.write, self.dirty, self.young, self.special,
                self.offset)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, pte_t) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return describe(self)


PTE_NONE = pte_t(NONE)


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
        return f"pfn {pte.pfn} " + " ".join(bits)
    if pte.kind == SWAP:
        return f"swap {pte.offset}"
    return f"migration pfn {pte.pfn}" + (" (was rw)" if pte.write else "")


# --- predicates and constructors (arch/x86/include/asm/pgtable.h) -----------------------------
def pte_none(pte: pte_t) -> bool:
    return pte.kind == NONE


def pte_present(pte: pte_t) -> bool:
    return pte.kind == PRESENT


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


def pfn_pte(pfn: int, write: bool, dirty: bool = False, young: bool = True) -> pte_t:
    """pfn_pte(pfn, prot) with the bits the model distinguishes (mk_pte + maybe_mkwrite)."""
    return pte_t(PRESENT, pfn=pfn, write=write, dirty=dirty, young=young)


def pte_mkspecial(pte: pte_t) -> pte_t:
    return pte_t(PRESENT, pte.pfn, pte.write, pte.dirty, pte.young, True)


def pte_mkclean(pte: pte_t) -> pte_t:
    return pte_t(PRESENT, pte.pfn, pte.write, False, pte.young, pte.special)


def pte_mkdirty(pte: pte_t) -> pte_t:
    return pte_t(PRESENT, pte.pfn, pte.write, True, pte.young, pte.special)


def pte_mkyoung(pte: pte_t) -> pte_t:
    return pte_t(PRESENT, pte.pfn, pte.write, pte.dirty, True, pte.special)


def pte_mkold(pte: pte_t) -> pte_t:
    return pte_t(PRESENT, pte.pfn, pte.write, pte.dirty, False, pte.special)


def pte_wrprotect(pte: pte_t) -> pte_t:
    return pte_t(PRESENT, pte.pfn, False, pte.dirty, pte.young, pte.special)


def pte_mkwrite(pte: pte_t) -> pte_t:
    return pte_t(PRESENT, pte.pfn, True, pte.dirty, pte.young, pte.special)


# --- swap and migration entries (include/linux/swapops.h) -----------------------------------
def swp_entry_to_pte(offset: int) -> pte_t:
    return pte_t(SWAP, offset=offset)


def is_swap_pte(pte: pte_t) -> bool:
    """!pte_none && !pte_present."""
    return pte.kind in (SWAP, MIGRATION)


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
