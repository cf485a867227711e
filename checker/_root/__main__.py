"""``python -m unmapcheck``: the same entry point as the ``unmapcheck`` script."""

import sys

from unmapcheck.checker.cli import main

sys.exit(main())
