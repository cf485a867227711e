# Found by the unmapcheck oracle (real kernel 6.18.44-fc-v657).
from unmapcheck.checker.oracle.compare import assert_model_matches
from unmapcheck.checker.oracle.sequence import Call, File, Sequence
from unmapcheck.impl.constants import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE

SEQ = Sequence(window_pages=64, files=(), calls=(
    Call.mmap(0x0, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS),
    Call.load(0x0),
    Call.mprotect(0x0, 0x1000, PROT_NONE),
    Call.load(0x0),
    Call.mprotect(0x0, 0x1000, PROT_READ | PROT_WRITE),
    Call.load(0x0),
    Call.store(0x0, 7),
    Call.load(0x0),
))

# The real kernel's report, recorded by the oracle.
REAL = {
    'side': 'real', 'window_pages': 64, 'error': None,
    'env': {'kernel': '6.18.44-fc-v657', 'cap_ipc_lock': True, 'memlock_limit': 8388608},
    'calls': [
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 4096, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 0, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 4096, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me'},
            {'start': 4096, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': None, 'placed': None, 'signal': 'SIGSEGV', 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me'},
            {'start': 4096, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 4096, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 0, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 4096, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 4096, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 7, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 4096, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
    ],
}


def test_mprotect_prot_none_over_the_zero_page():
    """mprotect(PROT_NONE) over a page whose PTE maps the shared zero page (after a read
    fault): the PTE becomes protnone, a load is SIGSEGV, and mprotect back to read-write
    makes the old mapping usable again.

    Fails on the pre-fix model (ca46e2e): call 2 mprotect(0x0, 0x1000, PROT_NONE): model
    failed: model raised NotSupported: mprotect(PROT_NONE) is not modelled: a present
    PTE under a PROT_NONE VMA needs pte_protnone, which the model's pte_t does not have
    at mprotect.py:525 (_check_prot_none_supported)
    """
    assert_model_matches(SEQ, REAL)
