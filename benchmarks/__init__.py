"""fastbp's benchmark suite: fastbp against the NumPy baseline and its peers, side by side.

It ships inside the package as ``fastbp.benchmarks`` (this directory, mapped by
pyproject.toml), so an installed fastbp runs it too. Run it with ``fastbp bench``,
``python -m fastbp.benchmarks``, or ``python -m benchmarks`` in a checkout; `main`
is their entry point. Its imports are relative so that both names work.

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
    from .suite import main as _main
    return _main(argv)


__all__ = ["main"]
