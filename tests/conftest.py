import os
import sys

# Test helper modules (scenario generators, kits) are imported by their plain names.
HERE = os.path.dirname(__file__)
for sub in ("checker", "impl", "oracle", "report", "spec"):
    path = os.path.join(HERE, sub)
    if os.path.isdir(path) and path not in sys.path:
        sys.path.insert(0, path)
