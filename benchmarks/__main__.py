"""``python -m benchmarks``: a thin wrapper around `benchmarks.suite.main`."""
import sys

from .suite import main

if __name__ == "__main__":
    sys.exit(main())
