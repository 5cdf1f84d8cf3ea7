"""The row-major BLAS wrappers (fastbp._blas) against NumPy, through their test twins."""

import itertools

import numpy as np
import pytest

from fastbp import _blas

TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-13}
SHAPES = [(1, 1, 1), (1, 5, 3), (4, 1, 2), (3, 2, 1), (7, 5, 3), (17, 13, 11), (2, 64, 33)]


def _op(a, t):
    return a.T if t == "t" else a


@pytest.mark.parametrize("m, n, k", SHAPES)
@pytest.mark.parametrize("ta, tb", list(itertools.product("nt", "nt")))
def test_gemm(ta, tb, m, n, k, dtype):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    a = rng.normal(size=(k, m) if ta == "t" else (m, k)).astype(dtype)
    b = rng.normal(size=(n, k) if tb == "t" else (k, n)).astype(dtype)
    c0 = rng.normal(size=(m, n)).astype(dtype)
    for alpha, beta in [(1.0, 0.0), (1.0, 1.0), (-0.5, 2.0), (0.0, 1.0)]:
        c = c0.copy()
        a_before, b_before = a.copy(), b.copy()
        _blas._gemm_twin(ta, tb, a, b, c, alpha, beta)
        want = alpha * (_op(a, ta).astype(np.float64) @ _op(b, tb).astype(np.float64)) + beta * c0
        scale = np.abs(alpha) * np.abs(_op(a, ta)) @ np.abs(_op(b, tb)) + np.abs(beta * c0)
        assert c.dtype == dtype
        assert (np.abs(c - want) <= TOL[np.dtype(dtype)] * (scale + 1e-30)).all()
        np.testing.assert_array_equal(a, a_before)
        np.testing.assert_array_equal(b, b_before)


def test_gemm_beta_zero_ignores_garbage_in_c(dtype):
    """beta = 0 overwrites C: NaN already in C must not leak into the result."""
    a = np.ones((3, 2), dtype)
    b = np.ones((2, 4), dtype)
    c = np.full((3, 4), np.nan, dtype)
    _blas._gemm_twin("n", "n", a, b, c, 1.0, 0.0)
    np.testing.assert_array_equal(c, np.full((3, 4), 2, dtype))


@pytest.mark.parametrize("m, n", [(1, 1), (1, 7), (6, 1), (5, 3), (3, 5), (31, 17)])
@pytest.mark.parametrize("ta", ["n", "t"])
def test_gemv(ta, m, n, dtype):
    rng = np.random.default_rng(m * 10 + n)
    a = rng.normal(size=(m, n)).astype(dtype)
    x = rng.normal(size=m if ta == "t" else n).astype(dtype)
    y0 = rng.normal(size=n if ta == "t" else m).astype(dtype)
    for alpha, beta in [(1.0, 0.0), (1.0, 1.0), (2.5, -1.0)]:
        y = y0.copy()
        _blas._gemv_twin(ta, a, x, y, alpha, beta)
        A = _op(a, ta).astype(np.float64)
        want = alpha * (A @ x) + beta * y0
        scale = abs(alpha) * (np.abs(A) @ np.abs(x)) + np.abs(beta * y0)
        assert y.dtype == dtype
        assert (np.abs(y - want) <= TOL[np.dtype(dtype)] * (scale + 1e-30)).all()


def test_twins_check_shapes():
    f = np.float64
    with pytest.raises(ValueError):
        _blas._gemm_twin("n", "n", np.ones((2, 3), f), np.ones((4, 2), f), np.ones((2, 2), f), 1.0, 0.0)
    with pytest.raises(ValueError):
        _blas._gemm_twin("n", "n", np.ones((2, 3), f), np.ones((3, 2), f), np.ones((3, 2), f), 1.0, 0.0)
    with pytest.raises(ValueError):
        _blas._gemv_twin("n", np.ones((2, 3), f), np.ones(2, f), np.ones(2, f), 1.0, 0.0)
    with pytest.raises(ValueError):
        _blas._gemv_twin("t", np.ones((2, 3), f), np.ones(2, f), np.ones(2, f), 1.0, 0.0)
