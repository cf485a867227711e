"""The modelled machine: physical memory, CPUs, the kernel's configuration, and its log.

Everything the kernel keeps globally lives here: the page allocator (mem_map), the CPUs, the
architecture whose flush semantics apply, the kernel era, the fix toggles, the tunables that
shape batching, the swap space, and dmesg (print_bad_pte and check_mm write there).
"""

from __future__ import annotations

from dataclasses import dataclass

from .cpu import ARCHES, Cpu
from .fixes import ERAS, Fixes
from .page import Zone


@dataclass
class Tunables:
    """Knobs of the kernel the model exposes.

    ``gather_batch_pages``: pages an mmu_gather batches before __tlb_remove_page() asks for a
    flush (MAX_GATHER_BATCH * MAX_GATHER_BATCH_COUNT in the kernel: thousands; small values
    make the force_flush path reachable in small scenarios).
    ``fault_around_pages``: fault_around_bytes / PAGE_SIZE (16 by default in the kernel).
    """

    gather_batch_pages: int = 10000
    fault_around_pages: int = 16


class Machine:
    def __init__(self, cpus: int = 2, arch: str = "x86", era: str = "6.18",
                 fixes_off: tuple[str, ...] | list[str] = (),
                 tunables: Tunables | None = None):
        if cpus < 1:
            raise ValueError(f"cpus must be at least 1, got {cpus}")
        if arch not in ARCHES:
            raise ValueError(f"unknown arch {arch!r} (known: {', '.join(ARCHES)})")
        if era not in ERAS:
            raise ValueError(f"unknown kernel era {era!r} (known: {', '.join(ERAS)})")
        self.zone = Zone()
        self.cpus = [Cpu(i) for i in range(cpus)]
        self.arch = arch
        self.era = era
        self.fixes = Fixes(fixes_off)
        self.tunables = tunables or Tunables()
        self.dmesg: list[str] = []
        self._ids: dict[str, int] = {}
        self.next_swap_slot = 1
        self.swap_map: dict[int, object] = {}

    def next_id(self, kind: str) -> int:
        n = self._ids.get(kind, 0) + 1
        self._ids[kind] = n
        return n

    def printk(self, line: str) -> None:
        self.dmesg.append(line)
