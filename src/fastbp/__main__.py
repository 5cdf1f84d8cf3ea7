"""``python -m fastbp`` and the ``fastbp`` console script: see `fastbp.cli`."""
import sys

from fastbp.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
