"""Type stubs for ``fastbp._blas`` (built from _blas.pyx).

The BLAS wrappers themselves are ``cdef`` (C-level, for the kernels); Python
sees only the transpose codes and the test twins that compare the wrappers
with NumPy.
"""
from enum import IntEnum
from typing import TypeVar

import numpy as np
import numpy.typing as npt

_F = TypeVar("_F", np.float32, np.float64)

class BlasTrans(IntEnum):
    NoTrans = 110
    Trans = 116

def _gemm_twin(
    ta: str,
    tb: str,
    a: npt.NDArray[_F],
    b: npt.NDArray[_F],
    c: npt.NDArray[_F],
    alpha: float,
    beta: float,
) -> None:
    """c = alpha * op(a) @ op(b) + beta * c in place (op: "t" transposes)."""

def _gemv_twin(
    ta: str,
    a: npt.NDArray[_F],
    x: npt.NDArray[_F],
    y: npt.NDArray[_F],
    alpha: float,
    beta: float,
) -> None:
    """y = alpha * op(a) @ x + beta * y in place (op: "t" transposes)."""
