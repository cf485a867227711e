"""Files and the page cache: memfd-like shmem files, ``struct address_space``.

Models include/linux/fs.h (struct address_space, i_mmap, i_mmap_rwsem), mm/filemap.c and
mm/shmem.c in the form the unmap paths need. (Seed: extended by the fault-path work.)
"""

from __future__ import annotations

from .locks import RwSem


class AddressSpace:
    """``struct address_space`` of a file: the page cache (``i_pages``: index to Page) and the
    reverse map of the file's shared and private mappings (``i_mmap``: the VMAs, in insertion
    order; the kernel's interval tree answers the same queries)."""

    is_anon = False

    def __init__(self, machine, host: "File"):
        self.id = host.id
        self.host = host
        self.i_pages: dict = {}
        self.i_mmap: list = []
        self.i_mmap_rwsem = RwSem(f"i_mmap_rwsem:file{host.id}")

    @property
    def obj(self) -> tuple:
        return ("i_mmap", self.id)

    @property
    def cache_obj(self) -> tuple:
        return ("page_cache", self.id)


class File:
    """A memfd: an inode with a size (i_size) and a shmem address space."""

    def __init__(self, machine, name: str, size: int):
        self.id = machine.next_id("file")
        self.name = name
        self.size = size
        self.shmem = True
        self.f_mapping = AddressSpace(machine, self)

    def __repr__(self) -> str:
        return f"<file {self.id} {self.name!r} size={self.size}>"
