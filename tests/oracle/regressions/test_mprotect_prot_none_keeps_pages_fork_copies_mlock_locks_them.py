# Found by the unmapcheck oracle (real kernel 6.18.44-fc-v657).
from unmapcheck.checker.oracle.compare import assert_model_matches
from unmapcheck.checker.oracle.sequence import Call, File, Sequence
from unmapcheck.impl.constants import MADV_DONTNEED_LOCKED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE

SEQ = Sequence(window_pages=64, files=(), calls=(
    Call.mmap(0x0, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS),
    Call.store(0x0, 5),
    Call.store(0x1000, 6),
    Call.mprotect(0x0, 0x2000, PROT_NONE),
    Call.fork(),
    Call.mlock(0x0, 0x2000),
    Call.mprotect(0x0, 0x1000, PROT_READ | PROT_WRITE),
    Call.load(0x0),
    Call.madvise(0x1000, 0x1000, MADV_DONTNEED_LOCKED),
    Call.munmap(0x0, 0x2000),
))

# The real kernel's report, recorded by the oracle.
REAL = {
    'side': 'real', 'window_pages': 64, 'error': None,
    'env': {'kernel': '6.18.44-fc-v657', 'cap_ipc_lock': True, 'memlock_limit': 8388608},
    'calls': [
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': -12, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 4, 'VmFlags': 'mr mw me lo ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 4, 'VmFlags': 'rd wr mr mw me lo ac'},
            {'start': 4096, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 2, 'VmFlags': 'mr mw me lo ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 5, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 4, 'VmFlags': 'rd wr mr mw me lo ac'},
            {'start': 4096, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 2, 'VmFlags': 'mr mw me lo ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 4, 'VmFlags': 'rd wr mr mw me lo ac'},
            {'start': 4096, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me lo ac'},
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 8192, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
    ],
}


def test_mprotect_prot_none_keeps_pages_fork_copies_mlock_locks_them():
    """Anonymous pages made PROT_NONE stay mapped as protnone PTEs (Rss unchanged); fork
    copies them (the VMA has an anon_vma); mlock locks them (Locked, PSS with the
    parent) and returns -ENOMEM (population of a PROT_NONE VMA fails); mprotect of a
    locked private VMA to read-write populates it (breaks COW); MADV_DONTNEED_LOCKED and
    munmap zap protnone PTEs.

    Fails on the pre-fix model (ca46e2e): call 3 mprotect(0x0, 0x2000, PROT_NONE): model
    failed: model raised NotSupported: mprotect(PROT_NONE) is not modelled: a present
    PTE under a PROT_NONE VMA needs pte_protnone, which the model's pte_t does not have
    at mprotect.py:525 (_check_prot_none_supported)
    """
    assert_model_matches(SEQ, REAL)
