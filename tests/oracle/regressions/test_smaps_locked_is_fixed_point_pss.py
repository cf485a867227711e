# Found by the unmapcheck oracle (real kernel 6.18.44-fc-v657).
from unmapcheck.checker.oracle.compare import assert_model_matches
from unmapcheck.checker.oracle.sequence import Call, File, Sequence
from unmapcheck.impl.constants import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE

SEQ = Sequence(window_pages=64, files=(), calls=(
    Call.mmap(0x0, 0x3000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS),
    Call.store(0x0, 1),
    Call.store(0x1000, 2),
    Call.store(0x2000, 3),
    Call.fork(),
    Call.mprotect(0x0, 0x3000, PROT_READ),
    Call.fork(),
    Call.mlock(0x0, 0x3000),
))

# The real kernel's report, recorded by the oracle.
REAL = {
    'side': 'real', 'window_pages': 64, 'error': None,
    'env': {'kernel': '6.18.44-fc-v657', 'cap_ipc_lock': True, 'memlock_limit': 8388608},
    'calls': [
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 12288, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 12288, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 12288, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 12288, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 12288, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 12288, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 12288, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 12, 'Anonymous': 12, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 12288, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 12288, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 12, 'Anonymous': 12, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 12288, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 12288, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 12, 'Anonymous': 12, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me ac'},
            {'start': 12288, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 12288, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 12, 'Anonymous': 12, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me ac'},
            {'start': 12288, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 12288, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 12, 'Anonymous': 12, 'Shmem': 0, 'Locked': 3, 'VmFlags': 'rd mr mw me lo ac'},
            {'start': 12288, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
    ],
}


def test_smaps_locked_is_fixed_point_pss():
    """smaps Locked (and Pss) are summed in the kernel's fixed point: each page adds
    (PAGE_SIZE << PSS_SHIFT) / mapcount, rounded down, and the sum is shown as (sum >>
    PSS_SHIFT) >> 10 kB: three pages each mapped by three processes are 3 kB, not the 4
    kB a real-number sum gives. Found by the 50,000-sequence campaign (seed 1).

    Fails on the pre-fix model (ca46e2e): call 7 mlock(0x0, 0x3000): smaps Locked of VMA
    0x0-0x3000: real 3 kB, model 4 kB
    """
    assert_model_matches(SEQ, REAL)
