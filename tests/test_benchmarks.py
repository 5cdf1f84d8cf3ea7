"""The benchmark suite runs end to end in --quick mode and writes sane output.

No timing assertions: only that the table, JSON (and PNG when matplotlib is
installed) are produced and every recorded number is positive and finite.
The suite is `benchmarks/` in the checkout and ships as `fastbp.benchmarks`;
these tests import the installed one, so they also run against a wheel.
"""
import json
import math
import statistics

import pytest

from fastbp.benchmarks import suite

try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False


def _positive_finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    argv = ["--quick", "--workloads", "W1,W3,infer,predict,backprop,digits",
            "--dtypes", "float32", "--repeats", "2", "--out", str(out)]
    from contextlib import redirect_stdout
    import io
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = suite.main(argv)
    return rc, out, buf.getvalue()


def test_quick_run_writes_table_json_png(quick_run):
    rc, out, stdout = quick_run
    assert rc == 0
    table = (out / "table.txt").read_text()
    assert "vs NumPy" in table and "W1 3Blue1Brown" in table and "fastbp" in table
    assert table.strip() in stdout
    record = json.loads((out / "bench.json").read_text())
    assert record["quick"] is True
    if HAVE_MPL:
        assert (out / "speedup.png").stat().st_size > 0


def test_quick_run_numbers_are_positive_and_finite(quick_run):
    _, out, _ = quick_run
    record = json.loads((out / "bench.json").read_text())
    results = record["results"]
    names = {r["workload"] for r in results}
    assert {"W1", "W3", "infer", "predict", "bp-b10", "bp-wide", "digits"} <= names
    for res in results:
        assert _positive_finite(res["flops"]) and _positive_finite(res["gemm_gflops"])
        assert _positive_finite(res["limit_s"])
        assert res["numpy_baseline"] is not None
        peers = {v["peer"] for v in res["variants"]}
        assert {"fastbp", "numpy"} <= peers
        for v in res["variants"]:
            if v["peer"] in ("fastbp", "numpy"):
                assert v["error"] is None, v["error"]
            if v["error"]:
                continue
            assert len(v["times"]) == record["repeats"] == 2
            assert all(_positive_finite(t) for t in v["times"])
            for key in ("median", "min", "max", "vs_numpy", "pct_limit"):
                assert _positive_finite(v[key]), (res["workload"], v["label"], key)
            assert v["min"] <= v["median"] <= v["max"]


def test_quick_run_records_machine_facts(quick_run):
    _, out, _ = quick_run
    m = json.loads((out / "bench.json").read_text())["machine"]
    assert m["cpu_model"] and m["usable_cores"] >= 1
    for pkg in ("python", "numpy", "scipy", "fastbp"):
        assert m["versions"][pkg]
    # reported as found, never changed
    assert "OPENBLAS_CORETYPE" in m["environment"] and "OPENBLAS_L2_SIZE" in m["environment"]
    assert "libraries" in m["blas"] or "note" in m["blas"]


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        suite.main(["--workloads", "W9", "--out", "unused"])
    assert e.value.code == 2
    assert "W9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        suite.main(["--dtypes", "float16"])


def test_package_main_is_the_suite():
    import fastbp.benchmarks
    assert fastbp.benchmarks.main is not None and callable(fastbp.benchmarks.main)


def test_the_limit_counts_only_the_products_a_workload_needs():
    """A training epoch needs no dC/da^0, so its first layer has two products
    (forward, gradient); backprop has all three everywhere (.inputs is the
    first layer's delta product); a forward pass has one per layer."""
    from fastbp.benchmarks import limit
    from fastbp.benchmarks.workloads import WORKLOADS
    sizes = (784, 16, 16, 10)
    per_layer = [784 * 16, 16 * 16, 16 * 10]
    assert limit.product_flops(sizes, "epoch", 7) == 2 * 7 * (2 * per_layer[0] + 3 * sum(per_layer[1:]))
    assert limit.product_flops(sizes, "backprop", 7) == 2 * 7 * 3 * sum(per_layer)
    assert limit.product_flops(sizes, "infer", 7) == limit.product_flops(sizes, "predict", 7) \
        == 2 * 7 * sum(per_layer)
    w1 = next(w for w in WORKLOADS if w.name == "W1")
    assert w1.kind == "epoch" and w1.flops(10) == limit.product_flops(w1.sizes, "epoch", 10)

    rates = limit.GemmRates(rows=32, thread_counts=[1], min_time=0.0)
    epoch = rates.rate((20, 8, 3), "float64", "epoch")
    backprop = rates.rate((20, 8, 3), "float64", "backprop")
    assert _positive_finite(epoch) and _positive_finite(backprop)
    records = {r["kind"]: r for r in rates.records}
    assert list(records["epoch"]["layers"][0]["products"]) == ["forward", "gradient"]
    assert list(records["epoch"]["layers"][1]["products"]) == list(limit.PRODUCTS)
    assert list(records["backprop"]["layers"][0]["products"]) == list(limit.PRODUCTS)
    # one measurement per layer shape serves every kind
    assert set(rates._layer) == {(20, 8, "float64"), (8, 3, "float64")}


def test_quick_run_reads_the_core_to_core_handoff_before_every_timed_run(quick_run):
    """Each kept time has the hand-off read before it (when the machine has two
    cores and fastbp's build has OpenMP), and the table shows the rows' medians."""
    _, out, _ = quick_run
    record = json.loads((out / "bench.json").read_text())
    if record["handoff_check"].startswith("not run"):
        pytest.skip(record["handoff_check"])
    for res in record["results"]:
        for v in res["variants"]:
            if v["error"]:
                continue
            assert len(v["handoff_ns"]) == len(v["times"])
            # a round trip between two cores: more than a clock cycle, less than the 50 ms budget
            assert all(c is None or 0.1 < c < 5e7 for c in v["handoff_ns"])
    assert "x-core" in (out / "table.txt").read_text()


def test_handoff_diagnostic():
    """_core._handoff_ns: a positive round-trip time on two threads; None where
    only one thread is allowed; bad rounds refused."""
    from fastbp import _core
    from threadpoolctl import threadpool_limits
    readings = [_core._handoff_ns(500, 1.0) for _ in range(3)]
    if _core.openmp_threads() < 2:
        assert readings == [None] * 3
    else:
        # None only if the second thread never ran for a whole second, three times
        # over (a machine busy elsewhere, one CPU allowed): nothing to measure then
        got = [ns for ns in readings if ns is not None]
        if not got:
            pytest.skip("the second OpenMP thread did not run within the budget")
        assert all(0.1 < ns < 1e9 for ns in got)
    with threadpool_limits(1, user_api="openmp"):
        assert _core._handoff_ns(500) is None
    for bad in (0, -3):
        with pytest.raises(ValueError, match="rounds"):
            _core._handoff_ns(bad)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="budget"):
            _core._handoff_ns(10, bad)


def _variant(label, peer, threads, times, checks):
    return {"label": label, "peer": peer, "threads": threads, "times": times,
            "median": statistics.median(times), "handoff_ns": checks, "error": None}


def test_targets_report_the_runs_in_slow_spells_and_the_ratio_outside_them():
    """The verdict is over every run; the detail counts the runs whose hand-off
    read more than SPELL_FACTOR x the run's fastest, and gives the ratio over
    the other runs."""
    from fastbp.benchmarks import report
    from fastbp.benchmarks.timing import SPELL_FACTOR
    fast, slow = 60.0, 60.0 * SPELL_FACTOR + 1
    fb = _variant("fastbp", "fastbp", "default", [1.0, 1.0, 2.0, 2.0, 2.0],
                  [fast, 100.0, slow, 500.0, slow])
    one = _variant("fastbp@1t", "fastbp", 1, [1.5] * 5, [fast, slow, fast, fast, None])
    torch1 = _variant("torch@1t", "torch", 1, [3.0, 3.0, 3.0], [fast, fast, fast])
    torch2 = _variant("torch@2t", "torch", 2, [2.0, 2.5, 4.0], [fast, 70.0, slow])
    for v in (fb, one, torch1, torch2):
        v["vs_torch"] = 2.5 / v["median"]
        v["vs_numpy"] = None
    res = {"workload": "W3", "dtype": "float32", "numpy_baseline": None,
           "torch_reference": "torch@2t", "variants": [fb, one, torch1, torch2]}
    record = {"quick": False, "results": [res]}
    assert report.spell_floor(record["results"]) == fast
    tg = {t["target"]: t for t in report.targets(record)}

    vs_torch = tg["issue 3: W3 f32 vs PyTorch"]
    assert vs_torch["value"] == 2.5 / 2.0 and vs_torch["met"] is False
    # outside spells torch@2t's median is 2.25, torch@1t's 3.0, fastbp's 1.0
    assert "4 of 11 runs in slow spells" in vs_torch["detail"]
    assert "outside them: 2.25 (fastbp 2 of 5 runs)" in vs_torch["detail"]

    threads = tg["issue 3: W3 32 fastbp default threads / 1 thread"]
    assert threads["value"] == 2.0 / 1.5 and threads["met"] is False
    assert "4 of 10 runs in slow spells" in threads["detail"]      # None is not a spell
    assert "outside them: 0.67 (fastbp 2 of 5 runs)" in threads["detail"]

    # the table's x-core column: the median reading, '!' when most runs met spells
    assert report._fmt_check(fb, fast) == f"{slow:.0f}!"      # 3 of 5 in spells
    assert report._fmt_check(one, fast) == "60 "              # 1 of the 4 readings
    assert report._fmt_check(_variant("x", "x", 1, [1.0], [None]), fast) == "-"

    # no floor (no reading above 0), no spell; runs without a reading count as outside spells
    assert not report.in_spell(500.0, 0.0) and not report.in_spell(500.0, None)
    assert report._median_outside_spells({"times": [1.0, 3.0, 2.0]}, fast) == (2.0, 3)
    assert report._median_outside_spells(
        {"times": [1.0, 3.0, 2.0], "handoff_ns": [slow]}, fast) == (2.5, 2)

    # no spell, no detail beyond the baseline's name
    for v in (fb, one, torch1, torch2):
        v["handoff_ns"] = [fast] * len(v["times"])
    tg = {t["target"]: t for t in report.targets(record)}
    assert tg["issue 3: W3 f32 vs PyTorch"]["detail"] == "vs torch@2t"
    assert tg["issue 3: W3 32 fastbp default threads / 1 thread"]["detail"] == "time ratio"
