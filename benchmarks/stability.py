"""How steady two BLAS threads are on this machine.

W3's first-layer product (200 x 784 @ 784 x 100, float32, through SciPy's
BLAS, the one fastbp calls) is timed in blocks of calls, at one thread and at
two, alternating, for a few seconds. On some shared VMs two threads are faster
than one in some stretches and slower in others, for seconds at a time; every
library's two-thread timings of mid-sized products then move between runs.
This records how often, so a table can be read with that in mind.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks.timing import have_thread_control, threads

SHAPE = (200, 784, 100)     # rows, n_in, n_out: Z = X @ W.T


def run(seconds, block_calls=50):
    """Per-call seconds of each block at 1 and 2 threads, and a summary; None
    when threads cannot be set (no threadpoolctl)."""
    if not have_thread_control():
        return None
    from scipy.linalg import blas
    rows, n_in, n_out = SHAPE
    rng = np.random.default_rng(0)
    X = rng.random((rows, n_in), dtype=np.float32)
    W = rng.random((n_out, n_in), dtype=np.float32)
    blocks = {1: [], 2: []}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or not blocks[2]:
        for n in (1, 2):
            with threads(n):
                blas.sgemm(1.0, X, W, trans_b=True)
                t0 = time.perf_counter()
                for _ in range(block_calls):
                    blas.sgemm(1.0, X, W, trans_b=True)
                blocks[n].append((time.perf_counter() - t0) / block_calls)
    one, two = np.array(blocks[1]), np.array(blocks[2])
    return {"product": f"{rows}x{n_in} @ {n_in}x{n_out} float32, scipy.linalg.blas.sgemm",
            "block_calls": block_calls, "seconds": seconds,
            "per_call_s": {"1": one.tolist(), "2": two.tolist()},
            "one_thread_median_s": float(np.median(one)),
            "two_threads_s": {q: float(np.percentile(two, p))
                              for q, p in (("p10", 10), ("median", 50), ("p90", 90))},
            "two_slower_fraction": float(np.mean(two > np.median(one)))}


def describe(result):
    """One line for the table."""
    two = result["two_threads_s"]
    us = lambda s: f"{s * 1e6:.0f} µs"   # noqa: E731
    return (f"{result['product']}, {len(result['per_call_s']['2'])} blocks of "
            f"{result['block_calls']} calls at each thread count over {result['seconds']:g} s: "
            f"1 thread {us(result['one_thread_median_s'])} per call (median); 2 threads "
            f"{us(two['p10'])} / {us(two['median'])} / {us(two['p90'])} (10th percentile / "
            f"median / 90th); 2 threads slower than 1 in {result['two_slower_fraction']:.0%} "
            "of blocks")
