"""Scaling: epoch time as the examples grow (1k -> 60k) and as the hidden width
grows (16 -> 2048), for fastbp and the NumPy baseline, beside the GEMM limit.

The network is W3's (784-H-10, relu, softmax + log_loss, Adam lr 1e-3, batch 200),
float32 (or the first --dtypes entry); H = 100 for the examples sweep, and the
width sweep runs over all the training examples.
"""
from __future__ import annotations

from dataclasses import replace

from . import timing
from .suite import _head, _prepare
from .workloads import WORKLOADS


def run(suite):
    cfg = suite.cfg
    dtype = "float32" if "float32" in suite.args.dtype_list else suite.args.dtype_list[0]
    base = next(w for w in WORKLOADS if w.name == "W3")
    d = suite.data.get("train", dtype)
    n_all = d.X.shape[0]
    if cfg.quick:
        examples = [100, 300, n_all]
        widths = [16, 64, 256]
    else:
        examples = [1000, 5000, 20000, 60000]
        widths = [16, 64, 256, 1024, 2048]
    examples = sorted({min(e, n_all) for e in examples})
    repeats = 1
    warm = _head(d, min(200, n_all))
    out = {"dtype": dtype, "kind": base.kind, "repeats": repeats,
           "description": f"{base.describe()}, {dtype}; width sweep over {n_all} examples, "
                          f"one timed run each; NumPy at its best thread count",
           "examples": [], "width": []}

    def point(wl, data):
        variants = []
        for peer in ("fastbp", "numpy"):
            if suite.available.get(peer):
                continue
            for th in suite.peer_threads(peer):
                variants.append(timing.Variant(peer, th, _prepare(peer, wl, dtype, 1, None)))
        timing.measure(variants, data, repeats, warmup_data=warm, log=suite.log,
                       settle=suite.cfg.settle)
        times = {}
        for v in variants:      # fastbp at each setting; NumPy at its best
            if v.median is None:
                continue
            if v.peer == "fastbp":
                times["fastbp" if v.threads is None else f"fastbp@{v.threads}t"] = v.median
            else:
                times["numpy"] = min(times.get("numpy", v.median), v.median)
        raw = [{"label": v.label, "times": v.times, "error": v.error} for v in variants]
        rate = suite.gemm.rate(wl.sizes, dtype, wl.kind)
        return times, raw, wl.flops(data.X.shape[0]), rate

    for n in examples:
        suite.log(f"scaling: {n} examples")
        times, raw, flops, rate = point(base, _head(d, n))
        out["examples"].append({"x": n, "times": times, "raw": raw, "sizes": list(base.sizes),
                                "flops": flops, "limit_s": flops / rate})
    for h in widths:
        suite.log(f"scaling: width {h}")
        wl = replace(base, sizes=(784, h, 10), name=f"W3-h{h}")
        times, raw, flops, rate = point(wl, d)
        out["width"].append({"x": h, "times": times, "raw": raw, "sizes": list(wl.sizes),
                             "flops": flops, "limit_s": flops / rate})
    return out
