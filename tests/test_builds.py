"""The two builds of the compiled core (_core.pyx, which switches to _core_avx2
at import where the CPU runs it): the AVX2 build must
compute exactly what the baseline build computes, and FASTBP_CORE picks one.

Each build is run in its own interpreter (FASTBP_CORE=base / avx2) on the same
workloads; every array that comes out must be bit-identical.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp import _core, _cpu

# Looked up, not imported: importing the AVX2 build on a CPU without AVX2 would crash.
HAVE_AVX2_BUILD = importlib.util.find_spec("fastbp._core_avx2") is not None

needs_avx2 = pytest.mark.skipif(not (HAVE_AVX2_BUILD and _cpu.has_avx2()),
                                reason="no AVX2 build, or a CPU without AVX2")

LAYOUTS = [("sigmoid", "sigmoid", "quadratic"), ("relu", "softmax", "log_loss"),
           ("tanh", "sigmoid", "cross_entropy"), ("leaky_relu", "identity", "quadratic"),
           ("relu", "softmax", "quadratic"), ("identity", "tanh", "quadratic")]
OPTIMIZERS = [fastbp.SGD(lr=0.05), fastbp.SGD(lr=0.01, momentum=0.9, nesterov=True),
              fastbp.Adam(lr=0.01)]


def workloads(out):
    """Train and query networks of every activation, cost, optimizer and dtype;
    save every result to the .npz `out`."""
    results = {}
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        X = rng.normal(0, 1, (53, 19)).astype(dtype)           # odd sizes: vector tails
        labels = rng.integers(0, 5, 53)
        for i, (hidden, output, cost) in enumerate(LAYOUTS):
            m = 1 if output == "identity" and i == 3 else 5
            Y = (np.eye(5, dtype=dtype)[labels] if m == 5 else
                 rng.normal(0, 1, (53, 1)).astype(dtype))
            for j, opt in enumerate(OPTIMIZERS):
                net = fastbp.Network([19, 23, 11, m], activation=hidden, output=output,
                                     cost=cost, dtype=dtype, seed=i)
                tr = fastbp.Trainer(net, opt, batch_size=7, l2=0.001, seed=j)
                hist = tr.fit(X, Y, epochs=2)
                key = f"{np.dtype(dtype).name}-{i}-{j}"
                g = net.backprop(X, Y)
                for name, arr in [("loss", np.array(hist.loss)), ("forward", net.forward(X)),
                                  ("predict", net.predict(X)),
                                  ("cost", np.array(net.cost(X, Y))), ("inputs", g.inputs),
                                  *[(f"W{k}", w) for k, w in enumerate(net.weights)],
                                  *[(f"b{k}", b) for k, b in enumerate(net.biases)],
                                  *[(f"gW{k}", w) for k, w in enumerate(g.weights)]]:
                    results[f"{key}-{name}"] = arr
        # plain SGD with a first layer split in two column blocks (on two threads
        # where OpenMP has two)
        net = fastbp.Network([100, 83, 7, 5], dtype=dtype, seed=3)
        X100 = rng.normal(0, 1, (53, 100)).astype(dtype)
        hist = fastbp.Trainer(net, fastbp.SGD(lr=0.5), batch_size=7, seed=1).fit(
            X100, np.eye(5, dtype=dtype)[labels], epochs=2)
        results[f"{np.dtype(dtype).name}-split-loss"] = np.array(hist.loss)
        for k, w in enumerate(net.weights):
            results[f"{np.dtype(dtype).name}-split-W{k}"] = w
    np.savez(out, build=np.array(_core.BUILD), **results)


def _run(build, out):
    env = dict(os.environ, FASTBP_CORE=build)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_builds; test_builds.workloads({str(out)!r})")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    return np.load(out)


@needs_avx2
def test_avx2_build_is_bit_identical_to_the_baseline(tmp_path):
    base = _run("base", tmp_path / "base.npz")
    avx2 = _run("avx2", tmp_path / "avx2.npz")
    assert str(base["build"]) == "base" and str(avx2["build"]) == "avx2"
    assert set(base.files) == set(avx2.files) and len(base.files) > 500
    for name in sorted(set(base.files) - {"build"}):
        a, b = base[name], avx2[name]
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), f"{name} differs between the builds"


def test_the_default_build_is_the_fastest_this_cpu_runs():
    expected = "avx2" if HAVE_AVX2_BUILD and _cpu.has_avx2() else "base"
    if os.environ.get("FASTBP_CORE", "").strip():
        expected = os.environ["FASTBP_CORE"].strip().lower()
    assert _core.BUILD == expected
    module = {"base": "fastbp._core", "avx2": "fastbp._core_avx2"}[expected]
    assert type(fastbp.Network([2, 1])._kernel).__module__ == module


@pytest.mark.parametrize("value, ok", [("base", True), ("BASE", True), ("avx512", False),
                                       ("nonsense", False)])
def test_fastbp_core_environment_variable(value, ok):
    env = dict(os.environ, FASTBP_CORE=value)
    proc = subprocess.run([sys.executable, "-c", "import fastbp._core as c; print(c.BUILD)"],
                          env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == value.lower()
    else:
        assert proc.returncode != 0
        assert "FASTBP_CORE must be 'base' or 'avx2'" in proc.stderr
