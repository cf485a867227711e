# Found by the unmapcheck oracle (real kernel 6.18.44-fc-v657).
from unmapcheck.checker.oracle.compare import assert_model_matches
from unmapcheck.checker.oracle.sequence import Call, File, Sequence
from unmapcheck.impl.constants import MADV_POPULATE_READ, MADV_POPULATE_WRITE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE

SEQ = Sequence(window_pages=64, files=(File('f', 0x2064), ), calls=(
    Call.mmap(0x0, 0x4000, PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS),
    Call.madvise(0x0, 0x4000, MADV_POPULATE_READ),
    Call.madvise(0x0, 0x4000, MADV_POPULATE_WRITE),
    Call.mmap(0x4000, 0x4000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS),
    Call.madvise(0x4000, 0x2000, MADV_POPULATE_WRITE),
    Call.madvise(0x6000, 0x4000, MADV_POPULATE_READ),
    Call.mmap(0x10000, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, file='f'),
    Call.madvise(0x10000, 0x4000, MADV_POPULATE_READ),
    Call.mmap(0x18000, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, file='f'),
    Call.madvise(0x18000, 0x2000, MADV_POPULATE_WRITE),
    Call.munmap(0xc000, 0x2000),
    Call.madvise(0xc000, 0x4000, MADV_POPULATE_READ),
    Call.madvise(0xa000, 0x4000, MADV_POPULATE_READ),
))

# The real kernel's report, recorded by the oracle.
REAL = {
    'side': 'real', 'window_pages': 64, 'error': None,
    'env': {'kernel': '6.18.44-fc-v657', 'cap_ipc_lock': True, 'memlock_limit': 8388608},
    'calls': [
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': -22, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 16384, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': -22, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 65536, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 65536, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 65536, 'end': 81920, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 81920, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': -14, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 65536, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 65536, 'end': 81920, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 81920, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 98304, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 65536, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 65536, 'end': 81920, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 81920, 'end': 98304, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 98304, 'end': 106496, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 106496, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 65536, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 65536, 'end': 81920, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 81920, 'end': 98304, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 98304, 'end': 106496, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 106496, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 49152, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 57344, 'end': 65536, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 65536, 'end': 81920, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 81920, 'end': 98304, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 98304, 'end': 106496, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 106496, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': -12, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 49152, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 57344, 'end': 65536, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 65536, 'end': 81920, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 81920, 'end': 98304, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 98304, 'end': 106496, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 106496, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': -22, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'r--p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd mr mw me'},
            {'start': 16384, 'end': 32768, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 32768, 'end': 49152, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 57344, 'end': 65536, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 65536, 'end': 81920, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 81920, 'end': 98304, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 98304, 'end': 106496, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 106496, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
    ],
}


def test_madvise_populate_read_and_write():
    """MADV_POPULATE_READ maps the zero page in private anonymous memory (Rss 0);
    MADV_POPULATE_WRITE on a read-only VMA is -EINVAL, on a writable one breaks COW; a
    range running into the PROT_NONE window is -EINVAL after the VMAs before it were
    populated; a shared memfd mapping past EOF is -EFAULT after the pages below EOF were
    faulted in; a private file mapping gets anonymous COW copies; a range starting in a
    hole is -ENOMEM, one starting in the PROT_NONE window -EINVAL.

    Fails on the pre-fix model (ca46e2e): call 1 madvise(0x0, 0x4000,
    MADV_POPULATE_READ): model failed: model raised NotSupported:
    madvise(MADV_POPULATE_READ) is not modelled: GUP population (faultin_page_range) at
    madvise.py:791 (madvise_do_behavior)
    """
    assert_model_matches(SEQ, REAL)
