"""mmap(MAP_HUGETLB) argument checks: the model answers as 6.18 does (issue 15's mismatch:
the model said -ENOMEM where the kernel says -EINVAL), checked against the machine's kernel
for the calls whose answer does not depend on its huge-page pool."""

from __future__ import annotations

import ctypes
import errno
import os
import platform

import pytest

from unmapcheck.impl import System
from unmapcheck.impl.constants import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE

MAP_HUGETLB = 0x40000
RW = 3
CALLS = [  # (addr, length, flags): each fails in the argument checks, maps nothing
    (0, 4096, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (25 << 26)),   # no 32 MiB pages
    (0, 0, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB),                  # length 0
    (0, (1 << 64) - 4096, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB),   # wraps when aligned
    (0x7f0000001000, 4096, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_FIXED),  # misaligned
]


def _model(addr, length, flags):
    p = System().spawn()
    return p.mmap(addr, length, RW, flags)


@pytest.mark.parametrize("addr, length, flags", CALLS)
def test_model_says_einval(addr, length, flags):
    assert _model(addr, length, flags) == -errno.EINVAL


def test_model_without_a_pool_says_enomem():
    assert _model(0, 4096, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB) == -errno.ENOMEM


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64",
                    reason="the real-kernel comparison needs Linux on x86-64")
@pytest.mark.parametrize("addr, length, flags", CALLS)
def test_real_kernel_agrees(addr, length, flags):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    ret = libc.mmap(addr, length, RW, flags, -1, 0)
    assert ret == ctypes.c_void_p(-1).value, "the call mapped something"
    assert -ctypes.get_errno() == _model(addr, length, flags) == -errno.EINVAL
