"""The compute-bound limit: the machine's own GEMM rate on each workload's shapes.

For every layer (n_in -> n_out) backprop does three matrix products, each of
2 * rows * n_in * n_out FLOPs:

    Z  = A @ W.T           (rows x n_in) @ (n_in x n_out)      forward
    dW = D.T @ A           (n_out x rows) @ (rows x n_in)      gradient
    dA = D @ W             (rows x n_out) @ (n_out x n_in)     delta recurrence

A workload needs some of them (see `products`): a forward pass only the first;
`backprop` all three in every layer (its `.inputs` is the first layer's dA); a
training step all but the first layer's dA, which nothing uses.

We time each product with NumPy's matmul, for the workload's layer shapes,
with `rows` large (so per-call overhead does not count: this is the rate the
hardware reaches on these shapes, not what a batch of 10 can get), at each
thread count tried, and keep the fastest. The limit of a workload is then the
sum over the products it needs of FLOPs / rate.
"""
from __future__ import annotations

import time

import numpy as np

from .timing import threads as thread_ctx


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


PRODUCTS = ("forward", "gradient", "delta")


def products(sizes, kind):
    """[(n_in, n_out, names of the products needed)] per layer for a workload
    of this kind ("epoch", "backprop", "infer" or "predict")."""
    out = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if kind in ("infer", "predict"):
            names = ("forward",)
        elif kind == "epoch" and l == 0:
            names = ("forward", "gradient")       # training needs no dC/da^0
        else:
            names = PRODUCTS
        out.append((n_in, n_out, names))
    return out


def product_flops(sizes, kind, rows):
    """FLOPs of the products a workload of this kind needs for `rows` examples."""
    return sum(2 * rows * n_in * n_out * len(names) for n_in, n_out, names in products(sizes, kind))


def layer_products(n_in, n_out, rows, dtype, n_threads, min_time=0.05):
    """Best seconds of each of one layer's three products ({name: seconds}),
    and the FLOPs of one of them."""
    rng = np.random.default_rng(0)
    A = rng.random((rows, n_in)).astype(dtype)
    W = rng.random((n_out, n_in)).astype(dtype)
    D = rng.random((rows, n_out)).astype(dtype)
    with thread_ctx(n_threads):
        secs = {"forward": _best_time(lambda: A @ W.T, min_time),
                "gradient": _best_time(lambda: D.T @ A, min_time),
                "delta": _best_time(lambda: D @ W, min_time)}
    return secs, 2 * rows * n_in * n_out


class GemmRates:
    """Measures and caches GEMM rates per (layer shape, dtype, product)."""

    def __init__(self, rows, thread_counts, min_time=0.05):
        self.rows = rows
        self.thread_counts = list(thread_counts)
        self.min_time = min_time
        self._layer = {}        # (n_in, n_out, dtype) -> {threads: {product: best FLOP/s}}
        self.records = []

    def _measure_layer(self, key):
        n_in, n_out, dtype = key
        per_threads = self._layer.setdefault(key, {})
        for th in self.thread_counts:
            secs, flops = layer_products(n_in, n_out, self.rows, dtype, th, self.min_time)
            rates = per_threads.setdefault("default" if th is None else str(th), {})
            for name, s in secs.items():
                rates[name] = max(rates.get(name, 0.0), flops / s)   # best seen

    def _product_best(self, n_in, n_out, dtype, name):
        """(best FLOP/s, its thread setting) of one product of one layer shape."""
        key = (n_in, n_out, np.dtype(dtype).name)
        if key not in self._layer:
            self._measure_layer(key)
        per_threads = self._layer[key]
        th = max(per_threads, key=lambda k: per_threads[k][name])
        return per_threads[th][name], th

    def refresh(self):
        """Measure every layer shape seen so far once more and keep the faster
        rate: a measurement taken while other processes loaded the machine
        would otherwise understate the limit (and give more than 100% of it)."""
        for key in list(self._layer):
            self._measure_layer(key)
        self.records = []

    def rate(self, sizes, dtype, kind):
        """FLOP/s of the products a workload of this kind needs, each at the
        machine's best: their total FLOPs over their total best time."""
        key = (tuple(sizes), np.dtype(dtype).name, kind)
        for rec in self.records:
            if (tuple(rec["sizes"]), rec["dtype"], rec["kind"]) == key:
                return rec["gflops"] * 1e9
        secs = flops = 0.0
        detail = []
        for n_in, n_out, names in products(sizes, kind):
            layer = {"n_in": n_in, "n_out": n_out, "products": {}}
            for name in names:
                rate, th = self._product_best(n_in, n_out, dtype, name)
                f = 2.0 * self.rows * n_in * n_out
                secs += f / rate
                flops += f
                layer["products"][name] = {"gflops": rate / 1e9, "threads": th}
            detail.append(layer)
        r = flops / secs
        self.records.append({"sizes": list(sizes), "dtype": np.dtype(dtype).name, "kind": kind,
                             "rows": self.rows, "gflops": r / 1e9, "layers": detail})
        return r
