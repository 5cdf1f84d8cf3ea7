"""Accuracy alongside speed: W3's test accuracy after 1 and 5 epochs, and the
wall time to reach a target test accuracy (issue 4: 88% on Fashion-MNIST)."""
from __future__ import annotations

import statistics
import time

import numpy as np

from . import peers, timing
from .workloads import ADAM, Workload, WORKLOADS

TTA = Workload("tta", "time to 88%", "epoch", (784, 256, 128, 10), "relu", "softmax", "log_loss",
               ADAM, 128, group="time-to-acc")


def _best_threads(suite, workload, dtype, peer):
    """The thread setting at which `peer` was fastest on `workload` in this run."""
    for res in suite.results:
        if res["workload"] == workload and res["dtype"] == dtype:
            vs = [v for v in res["variants"] if v["peer"] == peer and v["median"]]
            if vs:
                th = min(vs, key=lambda v: v["median"])["threads"]
                return None if th == "default" else th
    return suite.peer_threads(peer)[0]


def w3_accuracy(suite, epochs=5):
    """Test accuracy after epoch 1 and epoch `epochs` of W3, for fastbp and each
    peer, each at the thread count that was fastest for it on W3."""
    wl = next(w for w in WORKLOADS if w.name == "W3")
    rows = []
    for dtype in suite.args.dtype_list:
        d = suite.data.get("train", dtype)
        for peer in ("fastbp", "numpy", "torch", "sklearn"):
            if suite.available.get(peer):
                continue
            th = _best_threads(suite, "W3", dtype, peer)
            suite.log(f"W3 accuracy {dtype}: {peer} ({epochs} epochs)")
            m = peers.model(peer, wl, dtype, seed=0)
            accs, times = [], []
            for e in range(epochs):
                times.append(timing.time_once(lambda: m.epoch(d), th))
                if e in (0, epochs - 1):
                    with timing.threads(th):
                        accs.append(m.accuracy(d.X_test, d.y_test))
            rows.append({"peer": peer, "dtype": dtype, "threads": "default" if th is None else th,
                         "epochs": [1, epochs], "accuracy": accs, "epoch_times": times})
    return {"workload": wl.describe(), "data": "Fashion-MNIST train 60,000 / test 10,000",
            "rows": rows}


def _run_to_target(m, d, perms, target, every, threads, cap):
    """Train on consecutive batches of each epoch's permutation, evaluating the
    test accuracy every `every` mini-batches; returns a dict (seconds is None
    when the target was not reached in len(perms) epochs or `cap` seconds)."""
    n, bs = d.X.shape[0], m.wl.batch
    chunk = every * bs
    batches = evals = 0
    eval_s = 0.0
    acc = 0.0
    with timing.threads(threads):
        start = time.perf_counter()
        for perm in perms:
            m.begin_epoch(d, perm)
            for a in range(0, n, chunk):
                b = min(a + chunk, n)
                m.train_chunk(a, b)
                batches += -(-(b - a) // bs)
                t0 = time.perf_counter()
                acc = m.accuracy(d.X_test, d.y_test)
                eval_s += time.perf_counter() - t0
                evals += 1
                elapsed = time.perf_counter() - start
                if acc >= target:
                    return {"seconds": elapsed, "batches": batches,
                            "evals": evals, "eval_seconds": eval_s, "accuracy": acc}
                if elapsed > cap:
                    return {"seconds": None, "batches": batches, "evals": evals,
                            "eval_seconds": eval_s, "accuracy": acc,
                            "stopped": f"not reached within the {cap:g} s cap"}
    return {"seconds": None, "batches": batches, "evals": evals, "eval_seconds": eval_s,
            "accuracy": acc, "stopped": f"not reached in {len(perms)} epochs"}


def time_to_accuracy(suite):
    cfg = suite.cfg
    quick = cfg.quick
    target = 0.6 if quick else 0.88
    every = 2 if quick else 50
    max_epochs = 5 if quick else 10
    dtype = "float32"
    d = suite.data.get("train", dtype)
    rng = np.random.default_rng(1)
    perms = [rng.permutation(d.X.shape[0]) for _ in range(max_epochs)]
    impls = []   # (label, peer, mode, threads)
    for peer in ("fastbp", "numpy", "torch"):
        if suite.available.get(peer):
            continue
        for th in suite.peer_threads(peer):
            label = peer if th is None else f"{peer}@{th}t"
            impls.append((label, peer, "fit", th))
    if not suite.available.get("fastbp"):
        th = suite.peer_threads("fastbp")[0]
        impls.insert(1, ("fastbp-step" if th is None else f"fastbp-step@{th}t", "fastbp", "step", th))
    runs = {label: [] for label, *_ in impls}
    suite.log(f"time to {target:.0%}: {', '.join(runs)} x {cfg.repeats}")
    for r in range(cfg.repeats):
        for label, peer, mode, th in impls:
            if peer == "fastbp":
                m = peers.FastbpModel(TTA, dtype, 0, mode=mode)
            else:
                m = peers.model(peer, TTA, dtype, 0)
            try:
                if cfg.settle:
                    time.sleep(cfg.settle)      # let the last run's thread pools go idle
                out = _run_to_target(m, d, perms, target, every, th, cfg.tta_cap)
            except Exception as exc:
                out = {"seconds": None, "error": f"{type(exc).__name__}: {exc}", "batches": 0,
                       "evals": 0, "eval_seconds": 0.0, "accuracy": None}
            runs[label].append(out)
            suite.log(f"  {label}: {out['seconds'] and round(out['seconds'], 3)} s, "
                      f"{out['batches']} batches, acc {out['accuracy']}")
    rows = []
    for label, peer, mode, th in impls:
        rs = runs[label]
        secs = [x["seconds"] for x in rs if x["seconds"] is not None]
        all_reached = len(secs) == len(rs)
        rows.append({"label": label, "peer": peer, "mode": mode,
                     "threads": "default" if th is None else th, "runs": len(rs), "raw": rs,
                     "median_s": statistics.median(secs) if all_reached and secs else None,
                     "min_s": min(secs) if all_reached and secs else None,
                     "max_s": max(secs) if all_reached and secs else None,
                     "batches": rs[0]["batches"] if rs else None})
    return {"target": target, "every_batches": every, "max_epochs": max_epochs,
            "cap_seconds": cfg.tta_cap,
            "description": TTA.describe() + f", {dtype}, test accuracy every {every} mini-batches",
            "method": ("the same shuffled order for all; fastbp: per epoch one gather X[perm], then "
                       "Trainer.fit(shuffle=False) on each slice of 50 mini-batches (fastbp-step: "
                       "Trainer.step per mini-batch); NumPy: reference.train_epoch on each slice of "
                       "the order; torch: per-batch X[idx]; wall time includes each one's own "
                       "test-set evaluation"),
            "rows": rows}
