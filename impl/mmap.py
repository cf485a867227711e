"""The mmap and munmap system calls, address-space layout, population, and exit_mmap.

Models mm/mmap.c of Linux 6.18 (do_mmap, ksys_mmap_pgoff, __get_unmapped_area,
find_vma_intersection, vm_stat_account, mlock_future_ok, round_hint_to_min, file_mmap_ok,
do_munmap, __vm_munmap, the munmap syscall, exit_mmap), mm/util.c (vm_mmap_pgoff,
vm_munmap), arch/x86/kernel/sys_x86_64.c (the x86-64 mmap syscall and
arch_get_unmapped_area_topdown), include/linux/mman.h (calc_vm_prot_bits,
calc_vm_flag_bits, LEGACY_MAP_MASK), security/commoncap.c (cap_mmap_addr). Population (MAP_POPULATE, MAP_LOCKED) is mm/gup.c's
mm_populate (impl/gup.py).

Kernel eras (Machine.era): "6.18" is the default; "5.x" selects exit_mmap's pre-6.1 shape of
seed 001 (the OOM-victim path, with fix toggle 27ae357fa82b), including unlock_range(), the
5.14-6.0 mm/mmap.c helper that munlocks every VM_LOCKED VMA.

``current->mm`` is an explicit first argument (*mm*) of the entry points; the caller runs in
the context (sched.current()) of the task that owns it. A file descriptor is resolved by the
caller (system.py): the *fd* argument of ksys_mmap_pgoff/sys_mmap is the model's File, or
None for a descriptor that does not resolve (-EBADF).

Simplifications common to the module:
* get_unmapped_area is x86's top-down allocator in a reduced form: a hint is honoured when it
  is free and inside TASK_SIZE, otherwise the highest gap below the mm's mmap base
  (constants.MMAP_BASE unless the mm has an ``mmap_base``) that fits, down to
  mmap_min_addr, falling back to a bottom-up search from TASK_UNMAPPED_BASE - a
  simplification of vm_unmapped_area(): no randomisation, no THP or huge-page alignment of
  large anonymous mappings (the kernel PMD-aligns a no-hint anonymous mapping whose length
  is a multiple of 2 MiB), no shadow-stack gaps;
* no hugetlb: MAP_HUGETLB fails as on a machine with no huge pages reserved (-ENOMEM for
  anonymous mappings, -EINVAL for a non-hugetlbfs file);
* no LSM besides the capability module, no personality (READ_IMPLIES_EXEC), no pkeys
  (pkey 0), no memfd seals, no noexec mounts, no RLIMIT_AS/RLIMIT_DATA, no overcommit
  accounting (vm_unacct_memory is a no-op); RLIMIT_MEMLOCK, CAP_IPC_LOCK/CAP_SYS_RAWIO,
  mmap_min_addr and max_map_count come from Machine.tunables;
* no userfaultfd (uf is always None), no MAP_UNINITIALIZED effect, no mmu notifiers.
"""

from __future__ import annotations

from . import sched, word
from .constants import (EACCES, EAGAIN, EBADF, EEXIST, EINTR, EINVAL, ENOMEM,
                        EOVERFLOW, EPERM, FIRST_USER_ADDRESS, MAP_32BIT, MAP_ANONYMOUS,
                        MAP_DENYWRITE, MAP_EXECUTABLE, MAP_FIXED, MAP_FIXED_NOREPLACE,
                        MAP_GROWSDOWN,
                        MAP_HUGETLB, MAP_LOCKED, MAP_NONBLOCK, MAP_NORESERVE, MAP_POPULATE,
                        MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_STACK, MAP_SYNC,
                        MAP_TYPE, MAP_UNINITIALIZED, MMAP_BASE, MMF_OOM_SKIP, PAGE_MASK,
                        PAGE_SHIFT, PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, TASK_SIZE,
                        ULONG_MAX, USER_PGTABLES_CEILING, VM_DONTDUMP, VM_EXEC,
                        VM_GROWSDOWN, VM_LOCKED, VM_MAYEXEC,
                        VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_NOHUGEPAGE, VM_NORESERVE,
                        VM_READ, VM_SHARED, VM_SYNC, VM_WIPEONFORK, VM_WRITE)
from .locks import (mmap_read_lock, mmap_read_unlock, mmap_write_lock,
                    mmap_write_lock_killable, mmap_write_unlock)
from .mm_types import (VmaIterator, find_vma, mm_flags_set, mm_struct, vm_area_struct,
                       vma_mark_detached, vma_pages)
from .sched import KernelBug
from .gup import mm_populate
from .vma import (do_vmi_munmap, is_data_mapping, is_exec_mapping, is_stack_mapping,
                  mmap_region, remove_vma, vm_start_gap, vma_iter_set)

# errno values constants.py does not carry (include/uapi/asm-generic/errno*.h).
ETXTBSY = 26
EOPNOTSUPP = 95

# include/linux/fs.h struct file f_mode bits.
FMODE_READ = 0x1
FMODE_WRITE = 0x2

# include/uapi/asm-generic/mman-common.h / arch/x86/include/uapi/asm/mman.h.
MAP_DROPPABLE = 0x08
MAP_ABOVE4G = 0x80
MAP_HUGE_SHIFT = 26
MAP_HUGE_MASK = 0x3f
MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT
MAP_HUGE_1GB = 30 << MAP_HUGE_SHIFT

# include/linux/mm.h: VM_DROPPABLE is VM_HIGH_ARCH_4 on 64-bit.
VM_DROPPABLE = 1 << 36

# include/linux/mman.h LEGACY_MAP_MASK: the flags MAP_SHARED silently accepts (x86-64).
LEGACY_MAP_MASK = (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE
                   | MAP_EXECUTABLE | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED
                   | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB
                   | MAP_32BIT | MAP_ABOVE4G | MAP_HUGE_2MB | MAP_HUGE_1GB)

# arch/x86/include/asm/processor.h TASK_UNMAPPED_BASE (64-bit: PAGE_ALIGN(TASK_SIZE / 3)).
TASK_UNMAPPED_BASE = ((TASK_SIZE // 3) + PAGE_SIZE - 1) & PAGE_MASK
# arch/x86/include/asm/page_64_types.h DEFAULT_MAP_WINDOW (4-level paging: TASK_SIZE).
DEFAULT_MAP_WINDOW = TASK_SIZE

# mm/gup.c FOLL_* flags the model uses (include/linux/mm_types.h enum).
FOLL_WRITE = 1 << 0
FOLL_GET = 1 << 1
FOLL_DUMP = 1 << 2
FOLL_FORCE = 1 << 3
FOLL_NOWAIT = 1 << 4
FOLL_NOFAULT = 1 << 5
FOLL_HWPOISON = 1 << 6
FOLL_ANON = 1 << 7
FOLL_LONGTERM = 1 << 8
FOLL_SPLIT_PMD = 1 << 9
FOLL_PCI_P2PDMA = 1 << 10
FOLL_INTERRUPTIBLE = 1 << 11
FOLL_HONOR_NUMA_FAULT = 1 << 12
FOLL_TOUCH = 1 << 16
FOLL_UNLOCKABLE = 1 << 21


def IS_ERR_VALUE(x: int) -> bool:
    """include/linux/err.h IS_ERR_VALUE(): the model's errors are -4095..-1."""
    return -4095 <= x < 0


def offset_in_page(x: int) -> int:
    return x & (PAGE_SIZE - 1)


def PAGE_ALIGN(x: int) -> int:
    return (x + PAGE_SIZE - 1) & PAGE_MASK


# =============================================================================================
# Flags (include/linux/mman.h)
# =============================================================================================
def calc_vm_prot_bits(prot: int, pkey: int = 0) -> int:
    """PROT_* to VM_READ/VM_WRITE/VM_EXEC (x86 pkey bits: pkey 0, none)."""
    return ((VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0)
            | (VM_EXEC if prot & PROT_EXEC else 0))


def calc_vm_flag_bits(file, flags: int) -> int:
    """MAP_GROWSDOWN, MAP_LOCKED, MAP_SYNC, MAP_STACK (-> VM_NOHUGEPAGE) to VM_* flags (x86 has
    no arch_calc_vm_flag_bits)."""
    return ((VM_GROWSDOWN if flags & MAP_GROWSDOWN else 0)
            | (VM_LOCKED if flags & MAP_LOCKED else 0)
            | (VM_SYNC if flags & MAP_SYNC else 0)
            | (VM_NOHUGEPAGE if flags & MAP_STACK else 0))


def file_f_mode(file) -> int:
    """``file->f_mode``: the model's File carries no open mode unless the caller set one
    (``file.f_mode``); a memfd is opened O_RDWR, so read and write by default."""
    return getattr(file, "f_mode", FMODE_READ | FMODE_WRITE)


# =============================================================================================
# Limits and accounting (mm/mmap.c, mm/mlock.c)
# =============================================================================================
def capable(mm: mm_struct) -> bool:
    """capable(CAP_IPC_LOCK) / capable(CAP_SYS_RAWIO): Machine.tunables.capable."""
    return mm.machine.tunables.capable



def mlock_future_ok(mm: mm_struct, is_vma_locked: bool, nbytes: int) -> bool:
    """mm/mmap.c mlock_future_ok(): locking *nbytes* more stays within RLIMIT_MEMLOCK."""
    if not is_vma_locked or capable(mm):
        return True
    locked_pages = (nbytes >> PAGE_SHIFT) + mm.locked_vm
    limit_pages = mm.machine.tunables.rlimit_memlock >> PAGE_SHIFT
    return locked_pages <= limit_pages


def expand_stack_locked(vma, address: int) -> int:
    """mm/mmap.c expand_stack_locked(): grow a stack VMA to cover *address* (x86: downwards
    only; caller holds mmap_lock for write). 0 or -errno."""
    from .vma import expand_downwards
    return expand_downwards(vma, address)


def vm_stat_account(mm: mm_struct, flags: int, npages: int) -> None:
    """mm/mmap.c vm_stat_account(): total_vm and the exec/stack/data class of the mapping."""
    mm.total_vm += npages
    if is_exec_mapping(flags):
        mm.exec_vm += npages
    elif is_stack_mapping(flags):
        mm.stack_vm += npages
    elif is_data_mapping(flags):
        mm.data_vm += npages


def round_hint_to_min(mm: mm_struct, hint: int) -> int:
    """mm/mmap.c round_hint_to_min(): a non-zero hint below mmap_min_addr becomes
    PAGE_ALIGN(mmap_min_addr). mmap_min_addr is max(dac_mmap_min_addr, LSM minimum): on the
    oracle machine a hint of 0x1000 or 0x8000 comes back as 0x10000."""
    hint &= PAGE_MASK
    mmap_min_addr = mm.machine.tunables.mmap_min_addr
    if hint != 0 and hint < mmap_min_addr:
        return PAGE_ALIGN(mmap_min_addr)
    return hint


def security_mmap_addr(mm: mm_struct, addr: int) -> int:
    """security/commoncap.c cap_mmap_addr(): an address below dac_mmap_min_addr
    (/proc/sys/vm/mmap_min_addr) needs CAP_SYS_RAWIO, else -EPERM. (Oracle machine: as an
    unprivileged user MAP_FIXED at 0 fails with -EPERM, at 0x1000 succeeds.)"""
    if addr < mm.machine.tunables.dac_mmap_min_addr and not capable(mm):
        return -EPERM
    return 0


def find_vma_intersection(mm: mm_struct, start_addr: int, end_addr: int):
    """mm/mmap.c find_vma_intersection(): the first VMA overlapping [start_addr, end_addr)."""
    vma = find_vma(mm, start_addr)
    if vma is not None and vma.vm_start < end_addr:
        return vma
    return None


# =============================================================================================
# Address-space layout (mm/mmap.c, arch/x86/kernel/sys_x86_64.c)
# =============================================================================================
def _mmap_base(mm: mm_struct) -> int:
    return getattr(mm, "mmap_base", MMAP_BASE)


def unmapped_area_topdown(mm: mm_struct, length: int, low_limit: int,
                          high_limit: int) -> int:
    """The highest [addr, addr + length) in [low_limit, high_limit) that no VMA (with its
    stack guard gap) overlaps, or -ENOMEM. A simplification of mm/vma.c
    unmapped_area_topdown() (no alignment, no start gap)."""
    mmap_min_addr = mm.machine.tunables.mmap_min_addr
    if low_limit < mmap_min_addr:
        low_limit = mmap_min_addr
    sched.point("vm_unmapped_area", reads=(mm.mm_mt.obj,))
    vmas = mm.mm_mt.vmas
    for i in range(len(vmas), -1, -1):
        gap_end = vm_start_gap(vmas[i]) if i < len(vmas) else high_limit
        gap_start = vmas[i - 1].vm_end if i > 0 else low_limit
        gap_end = min(gap_end, high_limit)
        gap_start = max(gap_start, low_limit)
        if gap_end >= gap_start and gap_end - gap_start >= length:
            return gap_end - length
    return -ENOMEM


def unmapped_area(mm: mm_struct, length: int, low_limit: int, high_limit: int) -> int:
    """The lowest free [addr, addr + length) in [low_limit, high_limit), or -ENOMEM. A
    simplification of mm/vma.c unmapped_area()."""
    mmap_min_addr = mm.machine.tunables.mmap_min_addr
    if low_limit < mmap_min_addr:
        low_limit = mmap_min_addr
    sched.point("vm_unmapped_area", reads=(mm.mm_mt.obj,))
    vmas = mm.mm_mt.vmas
    for i in range(len(vmas) + 1):
        gap_start = vmas[i - 1].vm_end if i > 0 else low_limit
        gap_end = vm_start_gap(vmas[i]) if i < len(vmas) else high_limit
        gap_start = max(gap_start, low_limit)
        gap_end = min(gap_end, high_limit)
        if gap_end >= gap_start and gap_end - gap_start >= length:
            return gap_start
    return -ENOMEM


def mmap_address_hint_valid(addr: int, length: int) -> bool:
    """arch/x86/mm/mmap.c mmap_address_hint_valid(): the hint fits below TASK_SIZE and does
    not straddle the 47-bit window."""
    if TASK_SIZE - length < addr:
        return False
    return (addr > DEFAULT_MAP_WINDOW) == (addr + length > DEFAULT_MAP_WINDOW)


def arch_get_unmapped_area_topdown(mm: mm_struct, filp, addr: int, length: int, pgoff: int,
                                   flags: int, vm_flags: int) -> int:
    """x86-64's allocator: MAP_FIXED returns addr; a valid, free hint is used; otherwise
    the highest gap below mmap_base, else bottom-up from TASK_UNMAPPED_BASE. MAP_32BIT
    searches [1 GiB, 2 GiB) bottom-up. Models arch/x86/kernel/sys_x86_64.c
    arch_get_unmapped_area_topdown() in reduced form (see the module docstring)."""
    if length > TASK_SIZE:
        return -ENOMEM
    # No address checking. See comment at mmap_address_hint_valid().
    if flags & MAP_FIXED:
        return addr
    # For MAP_32BIT mappings we force the legacy mmap base (find_start_end).
    if flags & MAP_32BIT:
        return unmapped_area(mm, length, 0x40000000, 0x80000000)
    # Requesting a specific address.
    if addr:
        addr &= PAGE_MASK
        if mmap_address_hint_valid(addr, length):
            vma = find_vma(mm, addr)
            if vma is None or addr + length <= vm_start_gap(vma):
                return addr
    addr = unmapped_area_topdown(mm, length, PAGE_SIZE, _mmap_base(mm))
    # A failed mmap() very likely causes application failure, so fall back to the
    # bottom-up function here.
    if offset_in_page(addr & ULONG_MAX):
        addr = unmapped_area(mm, length, TASK_UNMAPPED_BASE, TASK_SIZE)
    return addr


def __get_unmapped_area(mm: mm_struct, file, addr: int, length: int, pgoff: int, flags: int,
                        vm_flags: int) -> int:
    """Choose (or, for MAP_FIXED, check) the address of a new mapping. Models mm/mmap.c
    __get_unmapped_area() (shmem_get_unmapped_area for shmem files and shared anonymous
    memory falls back to the mm's allocator: no huge shmem)."""
    # arch_mmap_check(): none on x86.
    # Careful about overflows..
    if length > TASK_SIZE:
        return -ENOMEM
    # Always treat pgoff as zero for anonymous memory.
    if file is None:
        pgoff = 0
    addr = arch_get_unmapped_area_topdown(mm, file, addr, length, pgoff, flags, vm_flags)
    if IS_ERR_VALUE(addr):
        return addr
    if addr > TASK_SIZE - length:
        return -ENOMEM
    if offset_in_page(addr):
        return -EINVAL
    error = security_mmap_addr(mm, addr)
    return error if error else addr


# =============================================================================================
# mmap (mm/mmap.c, mm/util.c, arch/x86/kernel/sys_x86_64.c)
# =============================================================================================
MAX_LFS_FILESIZE = (1 << 63) - 1


def file_mmap_size_max(file) -> int:
    """mm/mmap.c file_mmap_size_max(): memfds and regular files are S_ISREG."""
    return MAX_LFS_FILESIZE


def file_mmap_ok(file, pgoff: int, length: int) -> bool:
    """mm/mmap.c file_mmap_ok(): the mapping's last byte stays below the maximum file size
    (oracle machine: offset 1 << 62 is accepted, 1 << 63 gives -EOVERFLOW)."""
    maxsize = file_mmap_size_max(file)
    if maxsize and length > maxsize:
        return False
    maxsize -= length
    if pgoff > (maxsize >> PAGE_SHIFT):
        return False
    return True


def do_mmap_len_pgoff(len_, pgoff):
    """do_mmap()'s length and offset checks on unsigned longs. Returns
    ``(zero, wraps, pgoff_wraps, aligned)``: *zero* (-EINVAL) for a zero length, *wraps*
    (-ENOMEM) when PAGE_ALIGN(len) wraps to zero, *pgoff_wraps* (-EOVERFLOW) when
    pgoff + pages wraps, and *aligned* = PAGE_ALIGN(len); do_mmap() tests them in this order.
    Written with impl/word.py so that a proof can run it on symbolic values."""
    zero = word.eq(len_, 0)
    aligned = word.band(word.add(len_, PAGE_SIZE - 1), PAGE_MASK)
    wraps = word.eq(aligned, 0)
    pgoff_wraps = word.ult(word.add(pgoff, word.shr(aligned, PAGE_SHIFT)), pgoff)
    return zero, wraps, pgoff_wraps, aligned


def do_mmap(mm: mm_struct, file, addr: int, len_: int, prot: int, flags: int, vm_flags: int,
            pgoff: int, uf=None):
    """Validate an mmap request, choose the address, work out the VMA flags and map it.

    Models mm/mmap.c do_mmap() with its order of checks; the caller holds mmap_lock for
    write. Returns ``(addr or -errno, populate)`` where *populate* is the length to fault in
    (MAP_POPULATE without MAP_NONBLOCK, or VM_LOCKED), as the kernel's *populate argument."""
    from .locks import mmap_assert_write_locked
    populate = 0
    mmap_assert_write_locked(mm)

    zero, wraps, pgoff_wraps, aligned = do_mmap_len_pgoff(len_, pgoff)
    if zero:
        return -EINVAL, 0
    # READ_IMPLIES_EXEC personality: not modelled.
    # Force arch specific MAP_FIXED handling in get_unmapped_area.
    if flags & MAP_FIXED_NOREPLACE:
        flags |= MAP_FIXED
    if not flags & MAP_FIXED:
        addr = round_hint_to_min(mm, addr)
    # Careful about overflows..
    len_ = aligned
    if wraps:
        return -ENOMEM, 0
    # offset overflow?
    if pgoff_wraps:
        return -EOVERFLOW, 0
    # Too many mappings?
    if mm.map_count > mm.machine.tunables.max_map_count:
        return -ENOMEM, 0
    # prot == PROT_EXEC: execute_only_pkey() - no pkeys, pkey 0.
    vm_flags |= (calc_vm_prot_bits(prot, 0) | calc_vm_flag_bits(file, flags) | mm.def_flags
                 | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC)

    # Obtain the address to map to.
    addr = __get_unmapped_area(mm, file, addr, len_, pgoff, flags, vm_flags)
    if IS_ERR_VALUE(addr):
        return addr, 0

    if flags & MAP_FIXED_NOREPLACE:
        if find_vma_intersection(mm, addr, addr + len_) is not None:
            return -EEXIST, 0

    if flags & MAP_LOCKED:
        from .mlock import can_do_mlock
        if not can_do_mlock(mm):
            return -EPERM, 0
    if not mlock_future_ok(mm, bool(vm_flags & VM_LOCKED), len_):
        return -EAGAIN, 0

    if file is not None:
        if not file_mmap_ok(file, pgoff, len_):
            return -EOVERFLOW, 0
        flags_mask = LEGACY_MAP_MASK          # shmem has no FOP_MMAP_SYNC
        f_mode = file_f_mode(file)
        mtype = flags & MAP_TYPE
        if mtype in (MAP_SHARED, MAP_SHARED_VALIDATE):
            if mtype == MAP_SHARED:
                # Silently ignore unsupported flags with MAP_SHARED (backward compatibility).
                flags &= LEGACY_MAP_MASK
            # case MAP_SHARED_VALIDATE:
            if flags & ~flags_mask:
                return -EOPNOTSUPP, 0
            if prot & PROT_WRITE:
                if not f_mode & FMODE_WRITE:
                    return -EACCES, 0
                # IS_SWAPFILE(): no swap files.
            # IS_APPEND(inode): no append-only files.
            vm_flags |= VM_SHARED | VM_MAYSHARE
            if not f_mode & FMODE_WRITE:
                vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
        if mtype in (MAP_SHARED, MAP_SHARED_VALIDATE, MAP_PRIVATE):
            # case MAP_PRIVATE (fallthrough):
            if not f_mode & FMODE_READ:
                return -EACCES, 0
            # path_noexec(): no noexec mounts. can_mmap_file(): memfds and files can.
            if vm_flags & VM_GROWSDOWN:
                return -EINVAL, 0
        else:
            return -EINVAL, 0
        # memfd_check_seals_mmap(): no seals.
    else:
        mtype = flags & MAP_TYPE
        if mtype == MAP_SHARED:
            if vm_flags & VM_GROWSDOWN:
                return -EINVAL, 0
            # Ignore pgoff.
            pgoff = 0
            vm_flags |= VM_SHARED | VM_MAYSHARE
        elif mtype in (MAP_DROPPABLE, MAP_PRIVATE):
            if mtype == MAP_DROPPABLE:
                # A locked or stack area makes no sense to be droppable.
                if flags & (MAP_LOCKED | MAP_HUGETLB):
                    return -EINVAL, 0
                if vm_flags & VM_GROWSDOWN:
                    return -EINVAL, 0
                vm_flags |= VM_DROPPABLE | VM_NORESERVE | VM_WIPEONFORK | VM_DONTDUMP
            # Set pgoff according to addr for anon_vma.
            pgoff = addr >> PAGE_SHIFT
        else:
            return -EINVAL, 0

    # Set VM_NORESERVE if we should not account for the memory use of this mapping
    # (sysctl_overcommit_memory is OVERCOMMIT_GUESS, not NEVER).
    if flags & MAP_NORESERVE:
        vm_flags |= VM_NORESERVE

    addr = mmap_region(mm, file, addr, len_, vm_flags, pgoff, uf)
    if not IS_ERR_VALUE(addr) and ((vm_flags & VM_LOCKED)
                                   or (flags & (MAP_POPULATE | MAP_NONBLOCK)) == MAP_POPULATE):
        populate = len_
    return addr, populate


def vm_mmap_pgoff(mm: mm_struct, file, addr: int, len_: int, prot: int, flag: int,
                  pgoff: int) -> int:
    """Take mmap_lock, do_mmap(), drop it, then populate if asked. Models mm/util.c
    vm_mmap_pgoff() (security_mmap_file and fsnotify_mmap_perm allow everything)."""
    if mmap_write_lock_killable(mm):
        return -EINTR
    ret, populate = do_mmap(mm, file, addr, len_, prot, flag, 0, pgoff, None)
    mmap_write_unlock(mm)
    # userfaultfd_unmap_complete(): not modelled.
    if populate:
        mm_populate(mm, ret, populate)
    return ret


def ksys_mmap_pgoff(mm: mm_struct, addr: int, len_: int, prot: int, flags: int, fd,
                    pgoff: int) -> int:
    """Resolve the file (``fd`` is the caller-resolved File, or None: -EBADF), reject
    MAP_HUGETLB, and map. Models mm/mmap.c ksys_mmap_pgoff(). The arguments are unsigned
    longs: Python ints are reduced modulo 2**64 as the syscall ABI does."""
    addr, len_, prot, flags, pgoff = (x & ULONG_MAX for x in (addr, len_, prot, flags, pgoff))
    file = None
    if not flags & MAP_ANONYMOUS:
        file = fd
        if file is None:
            return -EBADF
        # is_file_hugepages(file): no hugetlbfs files.
        if flags & MAP_HUGETLB:
            return -EINVAL
    elif flags & MAP_HUGETLB:
        # hs = hstate_sizelog((flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK): x86-64 has 2 MiB
        # (the default, log 0) and 1 GiB pages; any other size is -EINVAL.
        sizelog = (flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK
        hpage = {0: 1 << 21, 21: 1 << 21, 30: 1 << 30}.get(sizelog)
        if hpage is None:
            return -EINVAL
        # len = ALIGN(len, huge_page_size(hs)), on an unsigned long: 0 or a wrap is -EINVAL.
        if (len_ + hpage - 1) & ~(hpage - 1) & ULONG_MAX == 0:
            return -EINVAL
        if flags & MAP_FIXED and addr & (hpage - 1):
            return -EINVAL                  # hugetlb_get_unmapped_area: misaligned
        # Simplified: no huge pages are reserved in the model (nr_hugepages = 0), so the
        # reservation fails with -ENOMEM, as on the oracle machine (measured with ctypes on
        # 6.18 for a valid size without MAP_NORESERVE). With MAP_NORESERVE the kernel would
        # create a hugetlb VMA, which the model does not have: it answers -ENOMEM as well.
        return -ENOMEM
    return vm_mmap_pgoff(mm, file, addr, len_, prot, flags, pgoff)


def sys_mmap(mm: mm_struct, addr: int, len_: int, prot: int, flags: int, fd, off: int) -> int:
    """The x86-64 mmap system call: an offset that is not page aligned is -EINVAL, then
    ksys_mmap_pgoff() with the offset in pages. Models arch/x86/kernel/sys_x86_64.c
    SYSCALL_DEFINE6(mmap). All arguments are unsigned longs (masked to 64 bits)."""
    addr &= ULONG_MAX
    len_ &= ULONG_MAX
    off &= ULONG_MAX
    prot &= ULONG_MAX
    flags &= ULONG_MAX
    if off & ~PAGE_MASK & ULONG_MAX:
        return -EINVAL
    return ksys_mmap_pgoff(mm, addr, len_, prot, flags, fd, off >> PAGE_SHIFT)


# =============================================================================================
# munmap (mm/mmap.c, mm/vma.c)
# =============================================================================================
def __vm_munmap(mm: mm_struct, start: int, len_: int, unlock: bool) -> int:
    """Take mmap_lock for write and unmap; with *unlock* the lock is downgraded for the zap
    and dropped by do_vmi_munmap on success. Models mm/mmap.c __vm_munmap() (start and len
    are reduced modulo 2**64, as unsigned long and size_t are)."""
    start &= ULONG_MAX
    len_ &= ULONG_MAX
    vmi = VmaIterator(mm.mm_mt, start)
    if mmap_write_lock_killable(mm):
        return -EINTR
    ret = do_vmi_munmap(vmi, mm, start, len_, None, unlock)
    if ret or not unlock:
        mmap_write_unlock(mm)
    # userfaultfd_unmap_complete(): not modelled.
    return ret


def sys_munmap(mm: mm_struct, addr: int, len_: int) -> int:
    """SYSCALL_DEFINE2(munmap): untagged_addr (no LAM: the address itself), then
    __vm_munmap(..., unlock=true). Arguments are unsigned longs (masked to 64 bits)."""
    return __vm_munmap(mm, addr & ULONG_MAX, len_ & ULONG_MAX, True)


# =============================================================================================
# exit_mmap (mm/mmap.c)
# =============================================================================================
def unlock_range(start: vm_area_struct, limit: int) -> None:
    """Munlock every VM_LOCKED VMA from *start* on below *limit*, dropping locked_vm.
    Models mm/mmap.c unlock_range() of 5.14-6.0 (exit_mmap's 5.x shape); the per-VMA work
    is mlock.py's munlock_vma_pages_all()."""
    from .mlock import munlock_vma_pages_all
    mm = start.vm_mm
    vmi = VmaIterator(mm.mm_mt, start.vm_start)
    tmp = vmi.vma_next()
    while tmp is not None and tmp.vm_start < limit:
        if tmp.vm_flags & VM_LOCKED:
            mm.locked_vm -= vma_pages(tmp)
            munlock_vma_pages_all(tmp)
        tmp = vmi.vma_next()


def exit_mmap(mm: mm_struct) -> None:
    """Release every mapping of an mm whose last user is gone: zap all VMAs with a fullmm
    gather, free all page tables but the pgd, free the VMAs; the tree is left empty.

    Models mm/mmap.c exit_mmap(). Machine.era selects the shape:

    * "6.18": mmap_read_lock around unmap_vmas(0, ULONG_MAX), then MMF_OOM_SKIP, then
      mmap_write_lock for free_pgtables(FIRST_USER_ADDRESS, USER_PGTABLES_CEILING),
      tlb_finish_mmu, the remove_vma loop (BUG_ON(count != map_count) as KernelBug) and
      __mt_destroy;
    * "5.x": seed 001's shape, no mmap_lock around the teardown (see
      :func:`exit_mmap_5x`), with fix toggle 27ae357fa82b.

    Ends with ``sched.event("exit_mmap_done", mm=mm)``.
    """
    if mm.machine.era == "5.x":
        exit_mmap_5x(mm)
    else:
        exit_mmap_618(mm)
    sched.event("exit_mmap_done", mm=mm)


def _exit_mmap_destroy(mm: mm_struct) -> None:
    """__mt_destroy(&mm->mm_mt): the tree is emptied (map_count is left as the kernel leaves
    it: the mm is about to be freed)."""
    sched.point("__mt_destroy", writes=(mm.mm_mt.obj,))
    mm.mm_mt.vmas.clear()
    mm.mm_mt.starts.clear()


def exit_mmap_618(mm: mm_struct) -> None:
    """exit_mmap() of Linux 6.18 (mmu_notifier_release, arch_exit_mmap, flush_cache_mm and
    vm_unacct_memory have nothing to do in the model)."""
    from .free_pgtables import free_pgtables
    from .mmu_gather import mmu_gather, tlb_finish_mmu, tlb_gather_mmu_fullmm
    from .zap import unmap_vmas
    vmi = VmaIterator(mm.mm_mt, 0)
    count = 0

    mmap_read_lock(mm)
    vma = vmi.vma_next()
    if vma is None:
        # Can happen if dup_mmap() received an OOM.
        mmap_read_unlock(mm)
        mmap_write_lock(mm)
        _exit_mmap_destroy(mm)                     # goto destroy
        mmap_write_unlock(mm)
        return

    tlb = mmu_gather()
    tlb_gather_mmu_fullmm(tlb, mm)
    # update_hiwater_rss(mm) here? but nobody should be looking.
    # Use ULONG_MAX here to ensure all VMAs in the mm are unmapped.
    unmap_vmas(tlb, vmi, vma, 0, ULONG_MAX, ULONG_MAX, False)
    mmap_read_unlock(mm)

    # Set MMF_OOM_SKIP to hide this task from the oom killer/reaper because the memory has
    # been already freed.
    mm_flags_set(mm, MMF_OOM_SKIP)
    mmap_write_lock(mm)
    # mt_clear_in_rcu(): no RCU walkers in the model.
    vma_iter_set(vmi, vma.vm_end)
    free_pgtables(tlb, vmi, vma, FIRST_USER_ADDRESS, USER_PGTABLES_CEILING, True)
    tlb_finish_mmu(tlb)

    # Walk the list again, actually closing and freeing it, with preemption enabled,
    # without holding any MM locks besides the unreachable mmap_write_lock.
    vma_iter_set(vmi, vma.vm_end)
    while True:
        # (nr_accounted += vma_pages(vma) for VM_ACCOUNT: for vm_unacct_memory, below)
        vma_mark_detached(vma)
        remove_vma(vma)
        count += 1
        vma = vmi.vma_next()
        if vma is None:
            break
    if count != mm.map_count:
        raise KernelBug(f"BUG_ON(count != mm->map_count): {count} != {mm.map_count}")
    # destroy:
    _exit_mmap_destroy(mm)
    mmap_write_unlock(mm)
    # vm_unacct_memory(nr_accounted): no overcommit accounting, so nr_accounted is not kept.


def exit_mmap_5x(mm: mm_struct) -> None:
    """exit_mmap() of the 5.x era (seed 001), with fix toggle 27ae357fa82b.

    Fixed (v4.17-rc5 .. v6.0, seed 001's order): an OOM victim is reaped first
    (__oom_reap_task_mm), then MMF_OOM_SKIP is set and a mmap_write_lock/unlock handshake
    waits out a reaper already inside; only then does unlock_range() clear VM_LOCKED.

    Fix off (v4.14 .. v4.17, 212925802454's order): unlock_range() first, while the OOM
    reaper may still run: it tests VM_LOCKED, sees it cleared, and zaps the VMA under
    exit_mmap's munlock walker (CVE-2018-1000200). Then unmap_vmas, then MMF_OOM_SKIP (set
    unconditionally, as 4.14-4.16 did) and, for an OOM victim, the write-lock handshake,
    then free_pgtables. The per-VMA munlock of that era (a loop of munlock_vma_pages_all)
    is written with the 5.x helper unlock_range(), which does the same walk.

    Both: no mmap_lock around the teardown (the mm has no users); unmap_vmas(0, ULONG_MAX)
    with a fullmm gather; free_pgtables(FIRST_USER_ADDRESS, USER_PGTABLES_CEILING); the
    remove_vma loop. The 5.x VMA list (mm->mmap) is walked through the model's tree; the
    model drops each VMA from the tree as remove_vma frees it (5.x left mm->mmap dangling,
    the use-after-free a later fix closed by clearing it under the write lock; that
    descendant fix is not a toggle here).
    """
    from .free_pgtables import free_pgtables
    from .mmu_gather import mmu_gather, tlb_finish_mmu, tlb_gather_mmu_fullmm
    from .zap import unmap_vmas
    from .oom_kill import mm_is_oom_victim
    fixed = mm.machine.fixes.on("27ae357fa82b")

    # mmu_notifier_release(mm): no mmu notifiers.
    if fixed:
        if mm_is_oom_victim(mm):
            # Manually reap the mm, then, as the oom reaper does, set MMF_OOM_SKIP; taking
            # mmap_lock for write after that guarantees the reaper will not run on this mm
            # again. This must happen before unlock_range() clears VM_LOCKED, otherwise the
            # oom reaper cannot reliably test it.
            from .oom_kill import __oom_reap_task_mm
            __oom_reap_task_mm(mm)
            mm_flags_set(mm, MMF_OOM_SKIP)
            mmap_write_lock(mm)
            mmap_write_unlock(mm)
        if mm.locked_vm:
            first = VmaIterator(mm.mm_mt, 0).vma_next()
            if first is not None:
                unlock_range(first, ULONG_MAX)
    else:
        # v4.14: if (mm->locked_vm) { for each vma: if VM_LOCKED munlock_vma_pages_all(vma) }
        if mm.locked_vm:
            first = VmaIterator(mm.mm_mt, 0).vma_next()
            if first is not None:
                unlock_range(first, ULONG_MAX)

    # arch_exit_mmap(mm): nothing on x86.
    vmi = VmaIterator(mm.mm_mt, 0)
    vma = vmi.vma_next()
    if vma is None:
        # Can happen if dup_mmap() received an OOM.
        return
    # lru_add_drain(), flush_cache_mm(): nothing to do in the model.
    tlb = mmu_gather()
    tlb_gather_mmu_fullmm(tlb, mm)
    # Use -1 here to ensure all VMAs in the mm are unmapped.
    unmap_vmas(tlb, vmi, vma, 0, ULONG_MAX, ULONG_MAX, False)
    if not fixed:
        # v4.14-v4.16: set_bit(MMF_OOM_SKIP); if (tsk_is_oom_victim(current)) { down_write;
        # up_write; } - wait for oom_reap_task() to stop working on this mm.
        mm_flags_set(mm, MMF_OOM_SKIP)
        if mm_is_oom_victim(mm):
            mmap_write_lock(mm)
            mmap_write_unlock(mm)
    vma_iter_set(vmi, vma.vm_end)
    free_pgtables(tlb, vmi, vma, FIRST_USER_ADDRESS, USER_PGTABLES_CEILING, False)
    tlb_finish_mmu(tlb)

    # Walk the list again, actually closing and freeing it.
    while vma is not None:
        # (nr_accounted += vma_pages(vma) for VM_ACCOUNT: for vm_unacct_memory, below)
        sched.point("remove_vma", writes=(mm.mm_mt.obj,))
        mm.mm_mt.erase(vma)
        remove_vma(vma)
        vma = VmaIterator(mm.mm_mt, 0).vma_next()
    # vm_unacct_memory(nr_accounted): no overcommit accounting, so nr_accounted is not kept.


__all__ = [
    "sys_mmap", "ksys_mmap_pgoff", "vm_mmap_pgoff", "do_mmap", "do_mmap_len_pgoff",
    "sys_munmap", "find_vma_intersection",
    "calc_vm_prot_bits", "calc_vm_flag_bits", "vm_stat_account", "mm_populate", "exit_mmap",
    "unlock_range", "IS_ERR_VALUE", "LEGACY_MAP_MASK", "EOPNOTSUPP", "FMODE_READ",
    "FMODE_WRITE",
]
