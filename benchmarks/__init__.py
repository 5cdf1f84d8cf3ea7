"""fastbp's benchmark suite: fastbp against the NumPy baseline and its peers, side by side.

Run it from the checkout with ``python -m benchmarks --help``. `main` is the entry
point that ``python -m benchmarks`` (and, later, ``fastbp bench``) calls.

Modules:
    suite     -- command line and orchestration (``main``)
    workloads -- the workload definitions and their data (W1..W4, inference, ...)
    peers     -- the implementations: fastbp, the NumPy baseline over
                 ``fastbp.reference``, a Nielsen-style per-example loop, PyTorch,
                 scikit-learn
    timing    -- thread control and interleaved repeated timing
    limit     -- the machine's own GEMM rate: the compute-bound limit of each workload
    machine   -- machine facts (CPU, BLAS libraries and threads, versions, environment)
    accuracy  -- test accuracy alongside speed, and time to a target accuracy
    scaling   -- epoch time as examples and hidden width grow
    report    -- terminal table, JSON and PNG charts
"""


def main(argv=None):
    """Run the suite with command-line arguments `argv` (default: sys.argv[1:]);
    returns the process exit code."""
    from benchmarks.suite import main as _main
    return _main(argv)


__all__ = ["main"]
