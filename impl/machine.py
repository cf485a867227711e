"""The modelled machine: physical memory, CPUs, the kernel's configuration, and its log.

Everything the kernel keeps globally lives here: the page allocator (mem_map), the CPUs, the
architecture whose flush semantics apply, the kernel era, the fix toggles, the tunables that
shape batching, the swap space, and dmesg (print_bad_pte and check_mm write there).
"""

from __future__ import annotations

from dataclasses import dataclass

from .cpu import ARCHES, VENDORS, Cpu
from .fixes import ERAS, Fixes
from .page import Zone
from .rcu import RcuState


@dataclass
class Tunables:
    """Knobs of the kernel the model exposes.

    ``gather_bundle``, ``gather_batch``, ``gather_batch_count``, ``table_batch``: the
    mmu_gather's capacities (impl/mmu_gather.py): the pages of its on-stack batch
    (MMU_GATHER_BUNDLE, 8), of each further batch (MAX_GATHER_BATCH, 510 with 4 KiB pages),
    the number of further batches (MAX_GATHER_BATCH_COUNT, 19: about 10,000 pages before
    __tlb_remove_folio_pages() asks for a flush) and the page-table pages of the table batch
    (MAX_TABLE_BATCH, 510). Small values make the force_flush path of zap_pte_range and the
    table-batch flush reachable in small scenarios.
    ``fault_around_pages``: fault_around_bytes / PAGE_SIZE (16 by default in the kernel).
    ``dac_mmap_min_addr``: /proc/sys/vm/mmap_min_addr (CONFIG_DEFAULT_MMAP_MIN_ADDR, Kconfig
    default 4096): a MAP_FIXED below it needs CAP_SYS_RAWIO (security/commoncap.c
    cap_mmap_addr, else -EPERM).
    ``lsm_mmap_min_addr``: CONFIG_LSM_MMAP_MIN_ADDR (Kconfig default 65536). The kernel's
    mmap_min_addr, below which a non-MAP_FIXED hint is rounded up (round_hint_to_min) and
    which vm_unmapped_area never goes under, is max(dac_mmap_min_addr, lsm_mmap_min_addr)
    (security/min_addr.c update_mmap_min_addr): 65536 on the oracle machine, although
    /proc/sys/vm/mmap_min_addr reads 4096 there.
    ``max_map_count``: /proc/sys/vm/max_map_count (DEFAULT_MAX_MAP_COUNT = 65530).
    ``rlimit_memlock``: RLIMIT_MEMLOCK in bytes (8 MiB by default since 5.16).
    ``rlimit_stack``: RLIMIT_STACK in bytes (8 MiB, the usual default): how far a
    VM_GROWSDOWN VMA may grow (acct_stack_growth).
    ``capable``: the task has CAP_IPC_LOCK and CAP_SYS_RAWIO (root); False for an
    unprivileged task.
    ``swap_pages``: the size of the swap device in pages (impl/swapfile.py); 0, the
    default, is a machine without swap, where reclaim keeps anonymous pages.
    """

    gather_bundle: int = 8
    gather_batch: int = 510
    gather_batch_count: int = 19
    table_batch: int = 510
    fault_around_pages: int = 16
    dac_mmap_min_addr: int = 4096
    lsm_mmap_min_addr: int = 65536
    max_map_count: int = 65530
    rlimit_memlock: int = 8 << 20
    rlimit_stack: int = 8 << 20
    capable: bool = False
    swap_pages: int = 0

    @property
    def mmap_min_addr(self) -> int:
        """security/min_addr.c: the larger of the DAC and the LSM minimum."""
        return max(self.dac_mmap_min_addr, self.lsm_mmap_min_addr)


class Machine:
    def __init__(self, cpus: int = 2, arch: str = "x86", era: str = "6.18",
                 fixes_off: tuple[str, ...] | list[str] = (),
                 tunables: Tunables | None = None, vendor: str = "intel"):
        if cpus < 1:
            raise ValueError(f"cpus must be at least 1, got {cpus}")
        if arch not in ARCHES:
            raise ValueError(f"unknown arch {arch!r} (known: {', '.join(ARCHES)})")
        if vendor not in VENDORS:
            raise ValueError(f"unknown vendor {vendor!r} (known: {', '.join(VENDORS)})")
        if vendor != "intel" and arch != "x86":
            raise ValueError(f"vendor {vendor!r} is an x86 vendor; arch is {arch!r}")
        if era not in ERAS:
            raise ValueError(f"unknown kernel era {era!r} (known: {', '.join(ERAS)})")
        self.zone = Zone()
        self.cpus = [Cpu(i) for i in range(cpus)]
        self.zone.tlb_objs = tuple(c.obj for c in self.cpus)
        self.zone.machine = self
        self.arch = arch
        # x86 only: whose INVLPG semantics apply (impl/cpu.py invlpg): "intel", or "amd"
        # with EFER.TCE set, as Linux sets it since 6.15 (440a65b7d25f).
        self.vendor = vendor
        self.rcu = RcuState()
        self.era = era
        self.fixes = Fixes(fixes_off)
        self.tunables = tunables or Tunables()
        self.dmesg: list[str] = []
        self._ids: dict[str, int] = {}
        # Model-only clock of TLB fills (cpu.TlbEntry.tick), for the invariants.
        self.ticks = 0
        from .swapfile import swap_info_struct
        # The swap device (swap_info[0]): slot counts, contents and the swap cache.
        self.swap = swap_info_struct(self.tunables.swap_pages)
        # Every mm_struct from mm_init() to __mmdrop(), for views and invariants.
        self.mms: list = []
        # Model-only: every anon_vma and every file ever made, for the invariants that look
        # at the reverse maps (RMAP.chains).
        self.anon_vmas: list = []
        self.files: list = []
        # Model-only: the COW copies between reading the old page and retiring its
        # translation (impl/cpu.py CopyWatch), for LOST_WRITE.cow.
        self.copy_watches: list = []

    def next_id(self, kind: str) -> int:
        n = self._ids.get(kind, 0) + 1
        self._ids[kind] = n
        return n

    def printk(self, line: str) -> None:
        self.dmesg.append(line)
