"""``python -m flyautoscaler``: the command line (see :mod:`flyautoscaler.cli`)."""

from __future__ import annotations

import sys

from flyautoscaler.cli import main

if __name__ == "__main__":
    sys.exit(main())
