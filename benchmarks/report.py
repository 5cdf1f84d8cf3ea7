"""Results into a terminal table, JSON-ready dicts, target verdicts and PNG charts."""
from __future__ import annotations

import itertools
import math
import os
import statistics
import textwrap

import numpy as np

from .peers import NUMPY_FAMILY
from .timing import SPELL_FACTOR


# --------------------------------------------------------------------------- #
# One workload's result
# --------------------------------------------------------------------------- #

def _best(variants, peers_wanted):
    """The variant with the lowest median among those of the given peers."""
    cands = [v for v in variants if v["peer"] in peers_wanted and v["median"] is not None]
    return min(cands, key=lambda v: v["median"]) if cands else None


def workload_result(wl, dtype, variants, *, examples, flops, gemm_rate, data_source, load, seconds):
    """A JSON-ready dict of everything measured for one workload and dtype."""
    unit = "s/epoch" if wl.kind == "epoch" else "s/call"
    limit_s = flops / gemm_rate if gemm_rate else None
    vs = []
    for v in variants:
        vs.append({"label": v.label, "peer": v.peer,
                   "threads": "default" if v.threads is None else v.threads,
                   "times": list(v.times), "median": v.median, "min": v.min, "max": v.max,
                   "handoff_ns": list(v.checks),
                   "scale": v.scale, "calls_per_timing": v.per, "note": v.note, "error": v.error})
    base = _best(vs, NUMPY_FAMILY)
    torch = _best(vs, ("torch",))
    for v in vs:
        m = v["median"]
        v["vs_numpy"] = base["median"] / m if (base and m) else None
        v["vs_torch"] = torch["median"] / m if (torch and m) else None
        v["pct_limit"] = 100.0 * limit_s / m if (limit_s and m) else None
        v["best_of_peer"] = _best(vs, (v["peer"],)) is v
    return {"workload": wl.name, "title": wl.title, "group": wl.group, "kind": wl.kind,
            "sizes": list(wl.sizes),
            "dtype": dtype, "description": wl.describe(), "note": wl.note, "unit": unit,
            "examples": examples, "flops": flops, "gemm_gflops": gemm_rate / 1e9,
            "limit_s": limit_s, "data": data_source,
            "numpy_baseline": base["label"] if base else None,
            "torch_reference": torch["label"] if torch else None,
            "load_average": {"before": load[0], "after": load[1]}, "seconds": seconds,
            "variants": vs}


def update_limit(res, gemm_rate):
    """Recompute the limit and % of it after the GEMM rate was measured again."""
    res["gemm_gflops"] = gemm_rate / 1e9
    res["limit_s"] = res["flops"] / gemm_rate
    for v in res["variants"]:
        m = v["median"]
        v["pct_limit"] = 100.0 * res["limit_s"] / m if m else None


# --------------------------------------------------------------------------- #
# Table
# --------------------------------------------------------------------------- #

def fmt_time(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} us"


def _fmt_range(lo, hi):
    if lo is None:
        return "-"
    return f"{fmt_time(lo)}-{fmt_time(hi)}"


def _fmt_x(r):
    return "-" if r is None else f"{r:.2f}x"


def _fmt_ns(ns):
    return "-" if ns is None else f"{ns:.0f} ns"


def _fmt_pct(p):
    if p is None:
        return "-"
    return f"{p:.1f}%" if p >= 0.1 else f"{p:.3f}%"


def _shown(res):
    """Rows shown in the table: every fastbp variant, and each peer's best thread count."""
    rows = []
    for v in res["variants"]:
        if v["error"]:
            rows.append(v)
        elif v["peer"] == "fastbp" or v["best_of_peer"]:
            rows.append(v)
    return rows


HEADER = (f"{'workload':<26} {'dtype':<8} {'implementation':<16} {'thr':>7} {'median':>10} "
          f"{'min-max':>21} {'vs NumPy':>9} {'vs torch':>9} {'% limit':>8} {'x-core':>7}")


def spell_floor(results):
    """The fastest core-to-core hand-off read in these results (ns), or None."""
    readings = [c for r in results for v in r["variants"] for c in v.get("handoff_ns") or []
                if c is not None]
    return min(readings) if readings else None


def in_spell(reading, floor):
    """Whether a run whose hand-off read `reading` ran in a slow spell."""
    return reading is not None and floor is not None and floor > 0 and reading > SPELL_FACTOR * floor


def _fmt_check(v, floor):
    """The median hand-off of a row's runs (ns); '!' when most of them ran in spells."""
    readings = [c for c in v.get("handoff_ns") or [] if c is not None]
    if not readings:
        return "-"
    slow = sum(in_spell(c, floor) for c in readings)
    return f"{statistics.median(readings):.0f}{'!' if 2 * slow > len(readings) else ' '}"


def format_rows(results, floor=None):
    """Table rows; `floor`: the run's fastest hand-off (default: these results')."""
    floor = spell_floor(results) if floor is None else floor
    lines = []
    for res in results:
        name = f"{res['workload']} {res['title']}"
        for v in _shown(res):
            thr = str(v["threads"])
            if thr == "default" and res.get("fastbp_threads"):
                thr = f"dflt={res['fastbp_threads']}"
            n_settings = sum(1 for w in res["variants"] if w["peer"] == v["peer"])
            if v["peer"] != "fastbp" and n_settings > 1:
                thr += "*"
            if v["error"]:
                lines.append(f"{name:<26.26} {res['dtype']:<8} {v['peer']:<16} {thr:>7} "
                             f"failed: {v['error'][:60]}")
                continue
            lines.append(f"{name:<26.26} {res['dtype']:<8} {v['peer']:<16} {thr:>7} "
                         f"{fmt_time(v['median']):>10} {_fmt_range(v['min'], v['max']):>21} "
                         f"{_fmt_x(v['vs_numpy']):>9} {_fmt_x(v['vs_torch']):>9} "
                         f"{_fmt_pct(v['pct_limit']):>8} {_fmt_check(v, floor):>7}")
    return "\n".join(lines)


def table(record):
    m = record["machine"]
    libs = m["blas"].get("libraries", [])
    blas = "; ".join(f"{l['package']}: {l['internal_api']} {l['version'] or ''} "
                     f"{l['architecture'] or ''} {l['num_threads']} thr".replace("  ", " ")
                     for l in libs)
    v = m["versions"]
    out = [f"fastbp benchmark suite: {record['command']}",
           f"machine: {m['cpu_model']}, {m['usable_cores']} cores; load average at end "
           f"{', '.join(f'{x:.2f}' for x in (m['load_average'] or []))}",
           f"versions: python {v['python']}, numpy {v['numpy']}, scipy {v['scipy']}, fastbp {v['fastbp']}, "
           f"torch {v['torch']}, scikit-learn {v['sklearn']}",
           f"BLAS: {blas or 'unknown'} (fastbp calls scipy's BLAS through cython_blas)",
           f"fastbp default threads: scipy BLAS {record['fastbp_default_blas_threads']}, "
           f"OpenMP {record.get('fastbp_default_openmp_threads', '?')}; "
           f"repeats {record['repeats']}, interleaved, {record['config'].get('settle', 0):g} s idle "
           "before each timed run; times are per epoch (training) or per call",
           "thr: threads ('default' = the library's own); * = the peer's best of the thread counts "
           "tried; vs NumPy / vs torch = their best median / this median; % limit = compute-bound "
           "time at the measured NumPy GEMM rate / this median; x-core = median over this row's "
           "runs of the core-to-core hand-off (ns) read before each, ! = most of them more than "
           f"{SPELL_FACTOR:g}x the run's fastest ({_fmt_ns(spell_floor(record['results']))}): "
           "a slow spell of the machine (see handoff_check in bench.json)",
           "", HEADER, "-" * len(HEADER), format_rows(record["results"])]
    if record["results"]:
        out += ["", "GEMM rate (NumPy matmul, the products each kind of workload needs on its "
                "shapes): " + ", ".join(
            sorted({f"{'-'.join(map(str, r['sizes']))} {r['kind']} {r['dtype'][5:]}: "
                    f"{r['gflops']:.0f} GFLOP/s" for r in record["gemm"]["rates"]}))]
    acc = record.get("accuracy_w3")
    if acc:
        out += ["", "W3 accuracy on Fashion-MNIST test set (after 1 and 5 epochs; mean epoch time):"]
        for row in acc["rows"]:
            out.append(f"  {row['peer']:<10} {row['dtype']:<8} thr {str(row['threads']):<8} "
                       f"epoch 1: {row['accuracy'][0]:.4f}   epoch 5: {row['accuracy'][-1]:.4f}   "
                       f"{fmt_time(float(np.mean(row['epoch_times'])))}/epoch")
    tta = record.get("time_to_accuracy")
    if tta:
        out += ["", f"time to {tta['target']:.0%} test accuracy ({tta['description']}; "
                    f"{tta['method']}):"]
        for row in tta["rows"]:
            reached = row["median_s"] is not None
            if not reached:
                why = [r.get("stopped") or r.get("error") for r in row["raw"] if r["seconds"] is None]
                row = dict(row, batches=f"{row['batches']} ({why[0] if why else 'not reached'})")
            out.append(f"  {row['label']:<16} median {fmt_time(row['median_s']) if reached else 'not reached':>10}"
                       f"  range {_fmt_range(row['min_s'], row['max_s']) if reached else '-':>21}"
                       f"  batches {row['batches']}  runs {row['runs']}")
    sc = record.get("scaling")
    if sc:
        out += ["", f"scaling ({sc['description']}):"]
        for key, title in (("examples", "examples"), ("width", "hidden width")):
            for row in sc[key]:
                cells = "  ".join(f"{lab} {fmt_time(t)}" for lab, t in row["times"].items())
                out.append(f"  {title} {row['x']:>6}: {cells}  limit {fmt_time(row['limit_s'])}")
    tg = record.get("targets")
    if tg:
        out += ["", "targets:"]
        for t in tg:
            verdict = "n/a" if t["met"] is None else ("MET" if t["met"] else "MISSED")
            val = "-" if t["value"] is None else f"{t['value']:.2f}"
            out.append(f"  [{verdict:^6}] {t['target']}: {val} (need {t['need']}){'  ' + t['detail'] if t['detail'] else ''}")
    if record["notes"]:
        out += ["", "notes:"] + [f"  - {n}" for n in record["notes"]]
    return "\n".join(out)


# --------------------------------------------------------------------------- #
# Targets
# --------------------------------------------------------------------------- #

def _find(record, workload, dtype):
    for r in record["results"]:
        if r["workload"] == workload and r["dtype"] == dtype:
            return r
    return None


def _variant(res, label):
    for v in res["variants"]:
        if v["label"] == label:
            return v
    return None


def _fastbp(res):
    """fastbp at its default threads (or at --threads N)."""
    for v in res["variants"]:
        if v["peer"] == "fastbp" and v["threads"] in ("default",) and v["median"]:
            return v
    for v in res["variants"]:
        if v["peer"] == "fastbp" and v["median"]:
            return v
    return None


def _median_outside_spells(v, floor):
    """Median time of a variant over its runs outside slow spells, and how many."""
    # a run without a reading (an older record) counts as outside spells
    readings = v.get("handoff_ns") or []
    kept = [t for t, c in itertools.zip_longest(v["times"], readings[:len(v["times"])])
            if not in_spell(c, floor)]
    return (statistics.median(kept) if kept else None), len(kept)


def _spell_detail(tops, bottom, shown, floor):
    """For a target that is (best median of `tops`) / (median of `bottom`),
    over variant dicts: when any of their runs met a slow spell, how many, and
    the same ratio over the runs outside spells, with how many runs of
    `shown` that kept; else ''."""
    checks = [c for v in tops + [bottom] for c in (v.get("handoff_ns") or [])]
    slow = sum(in_spell(c, floor) for c in checks)
    if not slow:
        return ""
    head = f"{slow} of {len(checks)} runs in slow spells"
    top = [m for m in (_median_outside_spells(v, floor)[0] for v in tops) if m]
    low = _median_outside_spells(bottom, floor)[0]
    if not top or not low:
        return head + "; too few outside them to compare"
    kept = _median_outside_spells(shown, floor)[1]
    return (f"{head}; outside them: {min(top) / low:.2f} "
            f"({shown['label']} {kept} of {len(shown['times'])} runs)")


def targets(record):
    """Each issue-2/3/4 speed target: value, need, met (None when not measured)."""
    out = []
    floor = spell_floor(record["results"])

    def add(name, value, need, op, detail=""):
        met = None if value is None else (value >= need if op == ">=" else value < need)
        if record["quick"] and met is not None:
            detail = (detail + "; " if detail else "") + "--quick sizes: not meaningful"
        out.append({"target": name, "value": value, "need": f"{op} {need}", "met": met,
                    "detail": detail})

    def ratio(workload, dtype, key):
        res = _find(record, workload, dtype)
        if res is None:
            return None, ""
        fb = _fastbp(res)
        if fb is None:
            return None, "fastbp failed"
        base = res["numpy_baseline"] if key == "vs_numpy" else res["torch_reference"]
        family = NUMPY_FAMILY if key == "vs_numpy" else ("torch",)
        spell = _spell_detail([v for v in res["variants"] if v["peer"] in family and v["median"]],
                              fb, fb, floor)
        detail = "; ".join(x for x in (f"vs {base}" if base else "", spell) if x)
        return fb[key], detail

    for name, wl, dtype, key, need in (
            ("issue 2: backprop b=10 784-16-16-10 f64 vs NumPy", "bp-b10", "float64", "vs_numpy", 5.0),
            ("issue 2: single forward 784-16-16-10 f64 vs NumPy", "infer", "float64", "vs_numpy", 3.0),
            ("issue 2: single forward 784-16-16-10 f32 vs NumPy", "infer", "float32", "vs_numpy", 3.0),
            ("issue 2: backprop b=256 wide f32 vs NumPy", "bp-wide", "float32", "vs_numpy", 1.0),
            ("issue 2: backprop b=256 wide f64 vs NumPy", "bp-wide", "float64", "vs_numpy", 1.0),
            ("issue 3: W1 f64 vs NumPy", "W1", "float64", "vs_numpy", 5.0),
            ("issue 3: W1 f32 vs NumPy", "W1", "float32", "vs_numpy", 5.0),
            ("issue 3: W2 f64 vs NumPy", "W2", "float64", "vs_numpy", 3.0),
            ("issue 3: W2 f32 vs NumPy", "W2", "float32", "vs_numpy", 3.0),
            ("issue 3: W3 f32 vs NumPy", "W3", "float32", "vs_numpy", 1.3),
            ("issue 3: W3 f32 vs PyTorch", "W3", "float32", "vs_torch", 2.5),
            ("issue 3: W4 f32 vs NumPy", "W4", "float32", "vs_numpy", 1.0),
            ("issue 4: inference f64 vs PyTorch", "infer", "float64", "vs_torch", 20.0),
            ("issue 4: inference f32 vs PyTorch", "infer", "float32", "vs_torch", 20.0)):
        if _find(record, wl, dtype) is None:
            continue
        value, detail = ratio(wl, dtype, key)
        add(name, value, need, ">=", detail)
    # issue 3: fastbp's default threading no more than 10% slower than single-threaded
    for res in record["results"]:
        if res["workload"] in ("W1", "W2", "W3", "W4"):
            d = _variant(res, "fastbp")
            s = _variant(res, "fastbp@1t")
            if d and s and d["median"] and s["median"]:
                add(f"issue 3: {res['workload']} {res['dtype'][5:]} fastbp default threads / 1 thread",
                    d["median"] / s["median"], 1.1, "<",
                    "; ".join(x for x in ("time ratio", _spell_detail([d], s, d, floor)) if x))
    tta = record.get("time_to_accuracy")
    if tta:
        fb = [r for r in tta["rows"] if r["peer"] == "fastbp" and r["mode"] == "fit"]
        fb.sort(key=lambda r: r["threads"] != "default")
        peers = [r for r in tta["rows"] if r["peer"] in ("numpy", "torch") and r["median_s"]]
        if fb and fb[0]["median_s"] and peers:
            fastest = min(peers, key=lambda r: r["median_s"])
            add(f"issue 4: time to {tta['target']:.0%} fastbp / fastest peer",
                fb[0]["median_s"] / fastest["median_s"],
                0.5, "<", f"fastest peer {fastest['label']} {fmt_time(fastest['median_s'])}")
        else:
            add(f"issue 4: time to {tta['target']:.0%} fastbp / fastest peer", None, 0.5, "<",
                "not reached / not run")
    return out


# --------------------------------------------------------------------------- #
# JSON and plots
# --------------------------------------------------------------------------- #

def json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _plain_log_ticks(axis):
    from matplotlib.ticker import FuncFormatter, NullFormatter
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return None
    return plt


def plots(record, out_dir):
    """Write speedup.png (and scaling.png when measured); return notes."""
    plt = _pyplot()
    if plt is None:
        return ["matplotlib is not installed: no PNG written (pip install matplotlib)"]
    notes = []
    results = [r for r in record["results"] if r["numpy_baseline"]]
    if results:
        labels = [f"{r['workload']}\n{r['dtype'][5:]}" for r in results]
        series = {}
        for i, r in enumerate(results):
            for v in r["variants"]:
                if v["median"] is None or v["vs_numpy"] is None:
                    continue
                if v["peer"] == "fastbp":
                    key = "fastbp" if v["threads"] == "default" or len(
                        [w for w in r["variants"] if w["peer"] == "fastbp"]) == 1 else "fastbp (1 thread)"
                elif v["best_of_peer"]:
                    key = v["peer"]
                else:
                    continue
                series.setdefault(key, [math.nan] * len(results))[i] = v["vs_numpy"]
        fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(results) + 3), 5))
        keys = list(series)
        width = 0.8 / max(1, len(keys))
        x = np.arange(len(results))
        for k, key in enumerate(keys):
            ax.bar(x + (k - (len(keys) - 1) / 2) * width, series[key], width, label=key)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("speed-up over the NumPy baseline (x, log scale)")
        m = record["machine"]
        ax.set_title(f"fastbp vs peers, median of {record['repeats']} (peers at best thread count)\n"
                     f"{m['cpu_model']}, {m['usable_cores']} cores", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, "speedup.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        notes.append(f"wrote {path}")
    sc = record.get("scaling")
    if sc:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for ax, key, xlabel in ((axes[0], "examples", "examples per epoch"),
                                (axes[1], "width", "hidden width")):
            rows = sc[key]
            xs = [r["x"] for r in rows]
            labs = sorted({lab for r in rows for lab in r["times"]})
            for lab in labs:
                name = {"fastbp": "fastbp (default threads)", "numpy": "numpy (best thread count)"}.get(lab, lab)
                ax.plot(xs, [r["times"].get(lab, math.nan) for r in rows], "o-", label=name)
            ax.plot(xs, [r["limit_s"] for r in rows], "k--", label="GEMM limit")
            ax.set_xscale("log")
            ax.set_yscale("log")
            _plain_log_ticks(ax.xaxis)
            ax.set_xticks(xs)
            ax.set_xticklabels([str(v) for v in xs], fontsize=8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("seconds per epoch")
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
        fig.suptitle("scaling: " + textwrap.fill(sc["description"], 110), fontsize=9)
        fig.tight_layout()
        path = os.path.join(out_dir, "scaling.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        notes.append(f"wrote {path}")
    return notes
