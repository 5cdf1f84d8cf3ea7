"""The compute-bound limit: the machine's own GEMM rate on each workload's shapes.

For every layer (n_in -> n_out) a training step does three matrix products,
each of 2 * rows * n_in * n_out FLOPs:

    Z  = A @ W.T           (rows x n_in) @ (n_in x n_out)      forward
    dW = D.T @ A           (n_out x rows) @ (rows x n_in)      gradient
    dA = D @ W             (rows x n_out) @ (n_out x n_in)     delta recurrence

We time exactly these with NumPy's matmul, for the workload's layer shapes,
with `rows` large (so per-call overhead does not count: this is the rate the
hardware reaches on these shapes, not what a batch of 10 can get), at each
thread count tried, and keep the fastest. The limit of a workload is then
FLOPs / rate, with FLOPs = 6 x examples x sum(n_in * n_out) per training epoch
(2 x ... for a forward pass).
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks.timing import threads as thread_ctx


def _best_time(fn, min_time, min_reps=3):
    fn()                                # warm-up
    best = float("inf")
    reps = 0
    start = time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


def layer_products(n_in, n_out, rows, dtype, n_threads, min_time=0.05):
    """Best seconds for the three products of one layer; returns (seconds, flops)."""
    rng = np.random.default_rng(0)
    A = rng.random((rows, n_in)).astype(dtype)
    W = rng.random((n_out, n_in)).astype(dtype)
    D = rng.random((rows, n_out)).astype(dtype)
    total = 0.0
    with thread_ctx(n_threads):
        total += _best_time(lambda: A @ W.T, min_time)
        total += _best_time(lambda: D.T @ A, min_time)
        total += _best_time(lambda: D @ W, min_time)
    return total, 3 * 2 * rows * n_in * n_out


class GemmRates:
    """Measures and caches GEMM rates per (layer shapes, dtype)."""

    def __init__(self, rows, thread_counts, min_time=0.05):
        self.rows = rows
        self.thread_counts = list(thread_counts)
        self.min_time = min_time
        self._layer = {}
        self.records = []

    def _measure_layer(self, key):
        n_in, n_out, dtype = key
        per_threads = dict(self._layer[key][2]) if key in self._layer else {}
        for th in self.thread_counts:
            secs, flops = layer_products(n_in, n_out, self.rows, dtype, th, self.min_time)
            k = "default" if th is None else str(th)
            per_threads[k] = max(per_threads.get(k, 0.0), flops / secs)   # best seen
        best_key = max(per_threads, key=per_threads.get)
        self._layer[key] = (per_threads[best_key], best_key, per_threads)

    def _layer_best(self, n_in, n_out, dtype):
        key = (n_in, n_out, np.dtype(dtype).name)
        if key not in self._layer:
            self._measure_layer(key)
        return self._layer[key]

    def refresh(self):
        """Measure every layer shape seen so far once more and keep the faster
        rate: a measurement taken while other processes loaded the machine
        would otherwise understate the limit (and give more than 100% of it)."""
        for key in list(self._layer):
            self._measure_layer(key)
        self.records = []

    def rate(self, sizes, dtype):
        """FLOP/s of the workload's products at the machine's best: total FLOPs of
        all layers' products over their total best time."""
        key = (tuple(sizes), np.dtype(dtype).name)
        for rec in self.records:
            if (tuple(rec["sizes"]), rec["dtype"]) == key:
                return rec["gflops"] * 1e9
        secs = flops = 0.0
        detail = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            rate, th, per = self._layer_best(n_in, n_out, dtype)
            f = 6.0 * self.rows * n_in * n_out
            secs += f / rate
            flops += f
            detail.append({"n_in": n_in, "n_out": n_out, "gflops": rate / 1e9, "threads": th,
                           "gflops_by_threads": {k: v / 1e9 for k, v in per.items()}})
        r = flops / secs
        self.records.append({"sizes": list(sizes), "dtype": np.dtype(dtype).name,
                             "rows": self.rows, "gflops": r / 1e9, "layers": detail})
        return r
