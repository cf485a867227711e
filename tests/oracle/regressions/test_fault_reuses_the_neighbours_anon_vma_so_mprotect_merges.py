# Found by the unmapcheck oracle (real kernel 6.18.44-fc-v657).
from unmapcheck.checker.oracle.compare import assert_model_matches
from unmapcheck.checker.oracle.sequence import Call, File, Sequence
from unmapcheck.impl.constants import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE

SEQ = Sequence(window_pages=64, files=(), calls=(
    Call.mmap(0x0, 0x2000, PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS),
    Call.store(0x0, 0),
    Call.mmap(0x0, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS),
    Call.store(0x0, 0),
    Call.mprotect(0x0, 0x2000, PROT_READ | PROT_WRITE),
))

# The real kernel's report, recorded by the oracle.
REAL = {
    'side': 'real', 'window_pages': 64, 'error': None,
    'env': {'kernel': '6.18.44-fc-v657', 'cap_ipc_lock': True, 'memlock_limit': 8388608},
    'calls': [
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': '-w-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'wr mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': '-w-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'wr mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 4096, 'end': 8192, 'perms': '-w-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'wr mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 4096, 'end': 8192, 'perms': '-w-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'wr mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
    ],
}


def test_fault_reuses_the_neighbours_anon_vma_so_mprotect_merges():
    """The first fault in a VMA whose neighbour is compatible (adjacent, same file, flags
    differing only in access bits, pgoff continuous) takes the neighbour's anon_vma
    (find_mergeable_anon_vma), so a later mprotect that makes the flags equal merges the
    two VMAs into one.

    Fails on the pre-fix model (ca46e2e): call 4 mprotect(0x0, 0x2000,
    PROT_READ|PROT_WRITE): VMA list differs: real [0x0-0x2000 rw-p, 0x2000-0x40000 ---p]
    model [0x0-0x1000 rw-p, 0x1000-0x2000 rw-p, 0x2000-0x40000 ---p]
    """
    assert_model_matches(SEQ, REAL)
