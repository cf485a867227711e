"""unmapcheck: a formal model and model checker for the Linux kernel's unmap paths.

Subpackages: ``unmapcheck.impl`` (the reference implementation, mirroring mm/),
``unmapcheck.spec`` (invariants and the z3 specification), ``unmapcheck.checker``
(the interleaving explorer, traces and the CLI).
"""

__version__ = "0.1.0"
