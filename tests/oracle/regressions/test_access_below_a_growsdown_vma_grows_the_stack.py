# Found by the unmapcheck oracle (real kernel 6.18.44-fc-v657).
from unmapcheck.checker.oracle.compare import assert_model_matches
from unmapcheck.checker.oracle.sequence import Call, File, Sequence
from unmapcheck.impl.constants import MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE

SEQ = Sequence(window_pages=64, files=(), calls=(
    Call.munmap(0xa000, 0x1000),
    Call.mmap(0xb000, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_GROWSDOWN),
    Call.load(0xa000),
    Call.munmap(0x2000, 0x8000),
    Call.store(0x5000, 3),
    Call.load(0x5000),
    Call.mmap(0x0, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS),
    Call.munmap(0x1000, 0x4000),
    Call.load(0x4000),
    Call.store(0x3000, 1),
    Call.mprotect(0x0, 0x1000, PROT_NONE),
    Call.store(0x3000, 1),
))

# The real kernel's report, recorded by the oracle.
REAL = {
    'side': 'real', 'window_pages': 64, 'error': None,
    'env': {'kernel': '6.18.44-fc-v657', 'cap_ipc_lock': True, 'memlock_limit': 8388608},
    'calls': [
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 40960, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 45056, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 45056, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 40960, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 45056, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 0, 'refused': None, 'vmas': [
            {'start': 0, 'end': 40960, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 40960, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 40960, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 20480, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': 3, 'refused': None, 'vmas': [
            {'start': 0, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 20480, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 4096, 'end': 8192, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
            {'start': 20480, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 20480, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': None, 'placed': None, 'signal': 'SIGSEGV', 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 20480, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': None, 'placed': None, 'signal': 'SIGSEGV', 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me ac'},
            {'start': 20480, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me'},
            {'start': 20480, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 4, 'Anonymous': 4, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
        {'ret': 0, 'placed': None, 'signal': None, 'value': None, 'refused': None, 'vmas': [
            {'start': 0, 'end': 4096, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me'},
            {'start': 12288, 'end': 49152, 'perms': 'rw-p', 'offset': 0, 'file': None, 'Rss': 8, 'Anonymous': 8, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'rd wr mr mw me gd ac'},
            {'start': 49152, 'end': 262144, 'perms': '---p', 'offset': 0, 'file': None, 'Rss': 0, 'Anonymous': 0, 'Shmem': 0, 'Locked': 0, 'VmFlags': 'mr mw me nr'},
        ]},
    ],
}


def test_access_below_a_growsdown_vma_grows_the_stack():
    """An access below a MAP_GROWSDOWN VMA grows it down to the faulting page
    (lock_mm_and_find_vma -> expand_stack_locked -> expand_downwards) unless an
    accessible VMA that is not a stack ends within stack_guard_gap (256 pages) below the
    new start (SIGSEGV); the PROT_NONE window below does not count, nor does a VMA made
    PROT_NONE.

    Fails on the pre-fix model (ca46e2e): call 2 load(0xa000): ret differs: real 0,
    model none
    """
    assert_model_matches(SEQ, REAL)
