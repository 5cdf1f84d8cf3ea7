"""Command line and orchestration of the benchmark suite.

    python -m benchmarks [--workloads W1,W2,...] [--dtypes float32,float64]
                         [--repeats N] [--threads N] [--out DIR] [--quick]

Every workload is timed for every implementation in the same run, interleaved
(A B C, A B C, ...), `--repeats` times; the table shows medians and min-max,
the speed-up over the NumPy baseline and over PyTorch, and the share of the
compute-bound limit reached. Before each timed run the suite idles for a
moment, so that the spinning worker threads of the previous implementation's
BLAS or OpenMP pool are asleep again. Everything measured goes to DIR/bench.json.

Threads: with ``--threads N`` every implementation runs with N BLAS/OpenMP
threads (threadpoolctl) and ``torch.set_num_threads(N)``. Without it, fastbp
runs at its own default (reported) and single-threaded, and each peer runs
single-threaded and with all cores; a peer is compared at its best thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import machine, peers, report, timing
from .limit import GemmRates
from .workloads import DEFAULT_GROUPS, GROUPS, SLOW_GROUPS, DataSets, select

DTYPES = ("float32", "float64")


@dataclass
class Config:
    """Sizes and counts, full or --quick."""

    quick: bool
    n_train: int
    n_test: int
    warmup_rows: int
    subset: int            # examples for the per-example (Nielsen) loop
    subset_small_batch: int  # examples for torch and sklearn at batch <= 10 (per-batch overhead bound)
    tta_cap: float         # seconds: a time-to-accuracy run stops (as "not reached") after this
    digits_epochs: int
    infer_calls: int
    predict_calls: int
    bp_small_calls: int
    bp_wide_calls: int
    gemm_rows: int
    gemm_min_time: float
    settle: float          # seconds of idle before each timed run (see timing.measure)
    repeats: int

    @classmethod
    def make(cls, quick, repeats):
        if quick:
            return cls(True, n_train=300, n_test=200, warmup_rows=50, subset=100,
                       subset_small_batch=100, tta_cap=20.0,
                       digits_epochs=1, infer_calls=100, predict_calls=1, bp_small_calls=20,
                       bp_wide_calls=1, gemm_rows=128, gemm_min_time=0.0, settle=0.0,
                       repeats=repeats or 1)
        return cls(False, n_train=60000, n_test=10000, warmup_rows=2000, subset=3000,
                   subset_small_batch=12000, tta_cap=90.0,
                   digits_epochs=10, infer_calls=5000, predict_calls=20, bp_small_calls=1000,
                   bp_wide_calls=10, gemm_rows=4096, gemm_min_time=0.2, settle=0.3,
                   repeats=repeats or 3)


def parse_args(argv, prog=None, parser_class=argparse.ArgumentParser):
    """The suite's arguments. `fastbp bench` passes its own prog name and a
    parser class whose ``error`` raises its usage error instead of exiting."""
    # python -m benchmarks in a checkout; python -m fastbp.benchmarks where installed
    prog = prog or f"python -m {__package__}"
    p = parser_class(
        prog=prog,
        description="fastbp against the NumPy baseline (fastbp.reference) and its peers "
                    "(Nielsen-style loop, PyTorch, scikit-learn), side by side.")
    p.add_argument("--workloads", default=",".join(DEFAULT_GROUPS),
                   help="comma list of " + ",".join(GROUPS) + ", or 'all' "
                        f"(default: {','.join(DEFAULT_GROUPS)}; {' and '.join(SLOW_GROUPS)} "
                        "are slow and run only when named)")
    p.add_argument("--dtypes", default=",".join(DTYPES), help="comma list of float32,float64")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per implementation (default 3; 1 with --quick)")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS/OpenMP threads for every implementation (threadpoolctl) and "
                        "torch.set_num_threads; default: fastbp at its own default and "
                        "single-threaded, peers at 1 and all cores, each compared at its best")
    p.add_argument("--out", default="bench-out", help="directory for bench.json, table.txt "
                                                      "and the PNG charts (default: bench-out)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: finishes in under a minute")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG charts")
    args = p.parse_args(argv)
    groups = [g.strip() for g in args.workloads.split(",") if g.strip()]
    if not groups:
        p.error(f"--workloads must name some of {', '.join(GROUPS)} or 'all'; got {args.workloads!r}")
    if not args.out.strip():
        p.error("--out needs a directory name; got an empty one")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        p.error(f"--out {args.out!r} exists and is not a directory")
    if groups == ["all"]:
        groups = list(GROUPS)
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        p.error(f"unknown workload(s) {bad}; expected some of {', '.join(GROUPS)} or 'all'")
    args.groups = groups
    args.prog = prog
    args.dtype_list = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [d for d in args.dtype_list if d not in DTYPES]
    if bad or not args.dtype_list:
        p.error(f"--dtypes must be a comma list of float32,float64; got {args.dtypes!r}")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    return args


class Suite:
    def __init__(self, args, log=None):
        self.args = args
        self.cfg = Config.make(args.quick, args.repeats)
        self.t0 = time.perf_counter()
        self.log = log or (lambda msg: print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}",
                                             file=sys.stderr, flush=True))
        self.notes = []
        self.cores = machine.usable_cores()
        self.thread_control = timing.have_thread_control()
        if args.threads is not None and not self.thread_control:
            self.notes.append("threadpoolctl is not installed: --threads applies to torch only; "
                              "BLAS libraries run at their defaults")
        self.available = peers.availability()
        for peer, why in self.available.items():
            if why:
                self.notes.append(f"{peer} skipped: {why}")
        if self.available["torch"] is None:
            import torch  # noqa: F401  (loaded now so that its BLAS/OpenMP shows in the facts)
        self.data = DataSets(self.cfg.n_train, self.cfg.n_test)
        self.gemm = GemmRates(self.cfg.gemm_rows, self.peer_threads("numpy"), self.cfg.gemm_min_time)
        # Before each timed run: how long the two cores take to hand data over.
        self.check = timing.HandoffCheck() if self.cores > 1 else None
        if self.check is not None and not self.check.available():
            self.check = None
        self.results = []

    # -- thread settings ------------------------------------------------------------

    def peer_threads(self, peer):
        """Thread settings to run `peer` at (None = the library's default)."""
        if self.args.threads is not None:
            return [self.args.threads]
        if not self.thread_control:
            return [None]
        if self.cfg.quick:          # one setting each: fastbp's default, peers single-threaded
            return [None] if peer == "fastbp" else [1]
        if peer == "fastbp":
            return [None, 1] if self.cores > 1 else [None]
        return [1, self.cores] if self.cores > 1 else [1]

    def fastbp_openmp_threads(self):
        """How many OpenMP threads fastbp's training loop may use (plain SGD's
        split first layer); 1 when fastbp was built without OpenMP."""
        from fastbp import _core
        return _core.openmp_threads()

    def fastbp_default_threads(self):
        """How many BLAS threads fastbp uses by default (scipy's BLAS, via cython_blas)."""
        libs = machine.blas_libraries().get("libraries", [])
        counts = [l["num_threads"] for l in libs if l["package"] == "scipy" and l["user_api"] == "blas"]
        return counts[0] if counts else None

    # -- one workload -----------------------------------------------------------------

    def variants(self, wl, dtype, d):
        cfg = self.cfg
        out = []
        for peer in peers.PEER_ORDER:
            if self.available.get(peer):
                continue
            ok, why = peers.supports(peer, wl)
            if not ok:
                continue
            n = d.X.shape[0]
            scale, per, subset, note = 1.0, 1, None, why
            if wl.kind == "epoch":
                if peer == "nielsen":
                    subset = min(cfg.subset, n)
                elif peer in ("torch", "sklearn") and wl.batch <= 10:
                    subset = min(cfg.subset_small_batch, n)
                if subset:
                    scale = n / subset
                    note = (note + "; " if note else "") + f"timed on {subset} examples, scaled to {n}"
                if wl.data == "digits":
                    per = cfg.digits_epochs
            elif wl.kind == "infer":
                per = cfg.infer_calls
            elif wl.kind == "predict":
                per = cfg.predict_calls
            elif wl.kind == "backprop":
                per = cfg.bp_small_calls if wl.batch <= 32 else cfg.bp_wide_calls
            for th in self.peer_threads(peer):
                out.append(timing.Variant(peer, th, _prepare(peer, wl, dtype, per, subset),
                                          scale=scale, per=per, note=note))
        return out

    def run_workload(self, wl, dtype):
        cfg = self.cfg
        d = self.data.get(wl.data, dtype)
        variants = self.variants(wl, dtype, d)
        warm = _head(d, cfg.warmup_rows) if wl.kind == "epoch" and wl.data == "train" else None
        self.log(f"{wl.name} {dtype}: {', '.join(v.label for v in variants)}")
        load_before = machine.load_average()
        t0 = time.perf_counter()
        timing.measure(variants, d, cfg.repeats, warmup_data=warm, log=self.log,
                       settle=cfg.settle, check=self.check)
        elapsed = time.perf_counter() - t0
        if wl.kind == "epoch":
            examples = d.X.shape[0]
        elif wl.kind == "infer":
            examples = 1
        elif wl.kind == "predict":
            examples = min(wl.batch, d.X_test.shape[0])
        else:
            examples = wl.batch
        rate = self.gemm.rate(wl.sizes, dtype, wl.kind)
        flops = wl.flops(examples)
        res = report.workload_result(wl, dtype, variants, examples=examples, flops=flops,
                                     gemm_rate=rate, data_source=d.source,
                                     load=(load_before, machine.load_average()), seconds=elapsed)
        res["fastbp_threads"] = self.fastbp_default_threads()
        self.results.append(res)
        self.log(report.format_rows([res], report.spell_floor(self.results)))
        return res

    # -- the whole run ------------------------------------------------------------------

    def run(self):
        args, cfg = self.args, self.cfg
        started = time.time()
        load_start = machine.load_average()
        if load_start and load_start[0] > 0.5 * self.cores:
            self.notes.append(f"load average {load_start[0]:.2f} on {self.cores} cores at the start: "
                              "other processes were running; timings may be noisy")
        record = {"command": " ".join([args.prog] + args.argv),
                  "argv": args.argv, "quick": cfg.quick, "repeats": cfg.repeats,
                  "threads": args.threads, "dtypes": args.dtype_list, "workloads": args.groups,
                  "config": cfg.__dict__.copy(),
                  "fastbp_default_blas_threads": self.fastbp_default_threads(),
                  "fastbp_default_openmp_threads": self.fastbp_openmp_threads(),
                  "thread_settings": {p: self.peer_threads(p) for p in peers.PEER_ORDER},
                  "peers_available": {p: (why or "yes") for p, why in self.available.items()},
                  "handoff_check": (timing.HandoffCheck.description if self.check else
                                    "not run: " + ("one core" if self.cores < 2 else
                                                   "fastbp has no OpenMP here, or one thread "
                                                   "is allowed")),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started))}
        if cfg.quick and args.threads is None:
            self.notes.append("--quick: fastbp at its default threads only, peers single-threaded only")
        fashion = self.data.fashion_available()
        for wl in select([g for g in args.groups if g not in SLOW_GROUPS]):
            for dtype in args.dtype_list:
                if wl.dtypes and dtype not in wl.dtypes:
                    continue
                self.run_workload(wl, dtype)
        from . import accuracy, scaling
        if "W3" in args.groups:
            if cfg.quick:
                self.notes.append("W3 accuracy after 1 and 5 epochs: skipped with --quick")
            elif not fashion:
                self.notes.append("W3 accuracy after 1 and 5 epochs: skipped (needs the Fashion-MNIST files)")
            else:
                record["accuracy_w3"] = accuracy.w3_accuracy(self)
        if "time-to-acc" in args.groups:
            if not fashion:
                self.notes.append("time-to-88%: skipped (needs the Fashion-MNIST files)")
            else:
                record["time_to_accuracy"] = accuracy.time_to_accuracy(self)
        if "scaling" in args.groups:
            record["scaling"] = scaling.run(self)
        if self.results and not cfg.quick:
            self.log("GEMM rates: measuring again, keeping the faster")
            self.gemm.refresh()
            for res in self.results:
                report.update_limit(res, self.gemm.rate(res["sizes"], res["dtype"], res["kind"]))
            for key in ("examples", "width"):
                for row in record.get("scaling", {}).get(key, []):
                    row["limit_s"] = row["flops"] / self.gemm.rate(row["sizes"], record["scaling"]["dtype"],
                                                                   record["scaling"]["kind"])
        over = sorted({f"{r['workload']} {r['dtype']}" for r in self.results for v in r["variants"]
                       if (v["pct_limit"] or 0) > 100})
        if over:
            self.notes.append("more than 100% of the limit (" + ", ".join(over) + "): that run beat "
                              "the GEMM rate we measured (the limit is a measured rate, not a peak, "
                              "and the machine's load varied during the run)")
        record["results"] = self.results
        record["gemm"] = {"method": "NumPy matmul on each of a layer's three products "
                                    "(forward A@W.T, gradient D.T@A, delta D@W) with rows = %d, "
                                    "best over thread counts %s; limit = sum over the products a "
                                    "workload needs of FLOPs / rate (a forward pass: forward; "
                                    "backprop: all three; a training epoch: all but the first "
                                    "layer's delta)" % (cfg.gemm_rows, self.gemm.thread_counts),
                          "rates": self.gemm.records}
        record["machine"] = machine.facts()
        record["notes"] = self.notes + self.data.notes
        record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record["seconds"] = time.time() - started
        record["targets"] = report.targets(record)
        return record


def _head(d, rows):
    from .workloads import Data
    return Data(d.X[:rows], d.Y[:rows], d.y[:rows], d.X_test, d.Y_test, d.y_test, d.source)


def _prepare(peer, wl, dtype, per, subset):
    """The untimed set-up of one timed run: a fresh model from the same seed,
    and a closure doing the timed work."""

    def prepare(d, repeat):
        m = peers.model(peer, wl, dtype, seed=max(repeat, 0))
        if wl.kind == "epoch":
            dd = _head(d, subset) if subset else d
            epoch = m.epoch

            def run():
                for _ in range(per):
                    epoch(dd)
        elif wl.kind == "infer":
            x = np.ascontiguousarray(d.X_test[0])
            f = m.forward1

            def run():
                for _ in range(per):
                    f(x)
        elif wl.kind == "predict":
            X = d.X_test[:wl.batch]
            f = m.predict

            def run():
                for _ in range(per):
                    f(X)
        elif wl.kind == "backprop":
            X, Y, y = d.X[:wl.batch], d.Y[:wl.batch], d.y[:wl.batch]
            f = m.backprop

            def run():
                for _ in range(per):
                    f(X, Y, y)
        else:
            raise ValueError(wl.kind)
        return run

    return prepare


def main(argv=None, args=None):
    """Run the suite; print the table; write bench.json, table.txt and PNGs to --out.
    Returns 0. `args`: the result of parse_args(argv), when the caller parsed them."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if args is None:
        args = parse_args(argv)
    args.argv = argv
    suite = Suite(args)
    record = suite.run()
    os.makedirs(args.out, exist_ok=True)
    table = report.table(record)
    print(table)
    with open(os.path.join(args.out, "table.txt"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out, "bench.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, default=report.json_default, allow_nan=False)
    if not args.no_plot:
        for note in report.plots(record, args.out):
            print(note)
    print(f"\nwrote {os.path.join(args.out, 'bench.json')} and table.txt")
    return 0
