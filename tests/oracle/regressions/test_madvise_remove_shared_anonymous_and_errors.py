# Found by the unmapcheck oracle (real kernel 6.18.44-fc-v657).
from unmapcheck.checker.oracle.compare import assert_model_matches
from unmapcheck.checker.oracle.sequence import Call, File, Sequence
from unmapcheck.impl.constants import MADV_REMOVE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE

SEQ = Sequence(window_pages=64, files=(File('f', 0x2000), ), calls=(
    Call.mmap(0x0, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_ANONYMOUS),
    Call.store(0x0, 1),
    Call.store(0x1000, 2),
    Call.fork(),
    Call.madvise(0x0, 0x1000, MADV_REMOVE),
    Call.load(0x0),
    Call.load(0x1000),
    Call.mmap(0x8000, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, file='f'),
    Call.madvise(0x8000, 0x1000, MADV_REMOVE),
    Call.mmap(0xc000, 0x2000, PROT_READ, MAP_SHARED | MAP_FIXED, file='f'),
    Call.madvise(0xc000, 0x4000, MADV_REMOVE),
    Call.madvise(0x2000, 0x8000, MADV_REMOVE),
))

# The real kernel's report, recorded by the oracle.
REAL = {
    'side': 'real', 'window_pages': 64, 'error': None,
    'env': {'kernel': '6.18.44-fc-v657', 'cap_ipc_lock': True, 'memlock_limit': 8388608},
    'calls': [
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 4, 'Anonymous': 0, 'Shmem': 4, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 0, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 2, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 32768, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 40960, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 40960, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': -13, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 40960, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 40960, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 49152, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 40960, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 40960, 'end': 49152, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 49152, 'end': 57344, 'perms': 'r--s', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd sh mr mw me ms'},
            {'start': 57344, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': -22, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 40960, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 40960, 'end': 49152, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 49152, 'end': 57344, 'perms': 'r--s', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd sh mr mw me ms'},
            {'start': 57344, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': -22, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 16384, 'perms': 'rw-s', 'offset': 0, 'file': '/dev/zero', 'Rss': 8, 'Anonymous': 0, 'Shmem': 8, 'Locked': 0, 'VmFlags': 'rd wr sh mr mw me ms'},
            {'start': 16384, 'end': 32768, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 32768, 'end': 40960, 'perms': 'rw-p', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 40960, 'end': 49152, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 49152, 'end': 57344, 'perms': 'r--s', 'offset': 0, 'file': 'f', 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd sh mr mw me ms'},
            {'start': 57344, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
    ],
}


def test_madvise_remove_shared_anonymous_and_errors():
    """MADV_REMOVE on a shared anonymous mapping (a shmem file) in a forked child: the page
    is gone from the file (a load reads 0 in a new page) while the parent's other page
    is still there; on a private file mapping it is -EACCES; on a read-only shared memfd
    mapping (VM_MAYWRITE) it runs up to the PROT_NONE window after it (-EINVAL); so does
    a range that starts in a shared mapping and runs into the window.

    Fails on the pre-fix model (ca46e2e): call 4 madvise(0x0, 0x1000, MADV_REMOVE):
    model failed: model raised NotSupported: madvise(MADV_REMOVE) is not modelled:
    fallocate(FALLOC_FL_PUNCH_HOLE) at madvise.py:470 (madvise_remove)
    """
    assert_model_matches(SEQ, REAL)
