# Found by the unmapcheck oracle (real kernel 6.18.44-fc-v657).
from unmapcheck.checker.oracle.compare import assert_model_matches
from unmapcheck.checker.oracle.sequence import Call, File, Sequence
from unmapcheck.impl.constants import MADV_REMOVE, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE

SEQ = Sequence(window_pages=64, files=(File('f', 0x4000), ), calls=(
    Call.mmap(0x0, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, file='f'),
    Call.store(0x0, 1),
    Call.store(0x1000, 2),
    Call.store(0x2000, 3),
    Call.store(0x3000, 4),
    Call.mmap(0x8000, 0x4000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, file='f'),
    Call.load(0x9000),
    Call.store(0xa000, 9),
    Call.madvise(0x1000, 0x2000, MADV_REMOVE),
    Call.load(0x1000),
    Call.load(0x9000),
    Call.load(0xa000),
    Call.load(0x8000),
    Call.load(0xb000),
))

# The real kernel's report, recorded by the oracle.
REAL = {
    'side': 'real', 'window_pages': 64, 'error': None,
    'env': {'kernel': '6.18.44-fc-v657', 'cap_ipc_lock': True, 'memlock_limit': 8388608},
    'calls': [
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 4, 'Anonymous': 0, 'Shmem': 4, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 0, 'Shmem': 16, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 32768, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 0, 'Shmem': 16, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 2, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 0, 'Shmem': 16, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 0, 'Shmem': 16, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 0, 'Shmem': 16, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 4, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 4, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 0, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 4, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 0, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 4, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 9, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 4, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 1, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 4, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 4, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': 'f', 'Rss': 12, 'Anonymous': 0, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 16, 'Anonymous': 4, 'Shmem': 12, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
    ],
}


def test_madvise_remove_punches_a_hole_in_a_memfd():
    """MADV_REMOVE on a shared memfd mapping punches a hole (shmem_fallocate PUNCH_HOLE):
    the pages leave the page cache and every mapping of them (the private mapping of the
    same file too, whose COW copy stays); later reads see zeros in new pages.

    Fails on the pre-fix model (ca46e2e): call 8 madvise(0x1000, 0x2000, MADV_REMOVE):
    model failed: model raised NotSupported: madvise(MADV_REMOVE) is not modelled:
    fallocate(FALLOC_FL_PUNCH_HOLE) at madvise.py:470 (madvise_remove)
    """
    assert_model_matches(SEQ, REAL)
