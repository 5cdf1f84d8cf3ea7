"""Validation at the Python boundary: one place for every argument check.

Each check raises a ``ValueError`` (bad value, shape, name, non-finite number)
or a ``TypeError`` (wrong kind of argument) whose message names the argument,
the problem and the expected value, before anything is changed.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

from fastbp import _core

# Names -> codes understood by the compiled core, from its own enums.
ACTIVATIONS = {a.name.lower(): int(a) for a in _core.Activation}
HIDDEN_ACTIVATIONS = ("sigmoid", "relu", "tanh", "identity", "leaky_relu")
COSTS = {c.name.lower(): int(c) for c in _core.Cost}
# cost -> the output activation it requires (None: any).
COST_REQUIRES = {"quadratic": None, "cross_entropy": "sigmoid", "log_loss": "softmax"}


def name(value, what, allowed):
    """A string from `allowed` (case-sensitive, like scikit-learn)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, one of {list(allowed)}; got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {list(allowed)}")
    return value


def integer(value, what, minimum=None):
    """A Python or NumPy integer (not a bool), optionally >= minimum."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer; got {type(value).__name__}")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}; got {value}")
    return value


def real(value, what, minimum=None, maximum=None, min_open=False, max_open=False):
    """A finite real number within the given bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{what} must be finite; got {value}")
    if minimum is not None and (value < minimum or (min_open and value == minimum)):
        raise ValueError(f"{what} must be {'>' if min_open else '>='} {minimum}; got {value}")
    if maximum is not None and (value > maximum or (max_open and value == maximum)):
        raise ValueError(f"{what} must be {'<' if max_open else '<='} {maximum}; got {value}")
    return value


def float_dtype(dtype):
    """numpy.dtype float32 or float64 from a string, dtype or type (not None,
    which NumPy reads as float64 whatever the default of the call)."""
    if dtype is None:
        raise TypeError("dtype must be 'float32' or 'float64' (a string, numpy dtype or type); "
                        "got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        # An unknown name is a bad value; anything else that is not a dtype, a bad kind.
        error = ValueError if isinstance(dtype, str) else TypeError
        raise error(f"dtype must be 'float32' or 'float64'; got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dt}")
    return dt


def rng(seed, what="seed"):
    """numpy Generator from None, an int or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{what} must be None, an int or a numpy.random.Generator; got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{what} must be a non-negative int; got {seed}")
    return np.random.default_rng(int(seed))


def parameters(weights, biases, sizes, dtype):
    """The parameter lists of a network with these sizes and dtype: per layer a
    (sizes[l+1], sizes[l]) weight array and a (sizes[l+1],) bias array of `dtype`,
    all finite (what `save` writes and `load` accepts)."""
    L = len(sizes) - 1
    if not isinstance(weights, list) or not isinstance(biases, list):
        raise TypeError(f"weights and biases must be lists of arrays; got "
                        f"{type(weights).__name__} and {type(biases).__name__}")
    if len(weights) != L or len(biases) != L:
        raise ValueError(f"expected {L} weight and bias arrays, got {len(weights)} and {len(biases)}")
    for what, arrays in (("weights", weights), ("biases", biases)):
        for l, a in enumerate(arrays):
            shape = (sizes[l + 1], sizes[l]) if what == "weights" else (sizes[l + 1],)
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{what}[{l}] must be a numpy array, got {type(a).__name__}")
            if a.dtype != dtype:
                raise TypeError(f"{what}[{l}] has dtype {a.dtype}; expected {dtype}")
            if a.shape != shape:
                raise ValueError(f"{what}[{l}] has shape {a.shape}; expected {shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"{what}[{l}] contains NaN or infinity")


def numeric(X: object, what: str) -> np.ndarray:
    """X as an ndarray of a real numeric kind (bool, int or float)."""
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except (ValueError, TypeError, RuntimeError) as e:   # RuntimeError: a tensor needing grad
            raise TypeError(f"{what} must be a numeric array; {e}") from None
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a real numeric array (int or float); got dtype {X.dtype}")
    return X


def c_array(X: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """X as a C-contiguous, aligned array of `dtype` in native byte order (the
    core's requirements), copied only when it is not one already. Values beyond
    float32's range become inf without a warning: the callers report them."""
    if X.dtype == dtype and X.flags.c_contiguous and X.flags.aligned:
        return X        # the common case, without np.errstate's cost (about 2 us)
    with np.errstate(over="ignore"):
        return np.require(X, dtype=dtype, requirements=("C_CONTIGUOUS", "ALIGNED"))


def inputs(X: object, n_features: int, dtype: np.dtype, allow_1d: bool = True,
           what: str = "X") -> np.ndarray:
    """X as a C-contiguous (n, n_features) array of `dtype` (or (n_features,)).

    Returns the converted array; integer and other float inputs are cast,
    Fortran-ordered, strided and unaligned arrays copied. Rejects wrong shapes, empty
    arrays and NaN/inf. `what` names the array in the messages.
    """
    X = numeric(X, what)
    if X.ndim == 1 and allow_1d:
        if X.shape[0] != n_features:
            raise ValueError(f"{what} has {X.shape[0]} features; expected {n_features} (sizes[0])")
    elif X.ndim == 2:
        if X.shape[1] != n_features:
            raise ValueError(f"{what} has {X.shape[1]} features per example; expected {n_features} "
                             f"(sizes[0])")
        if X.shape[0] == 0:
            raise ValueError(f"{what} is empty; expected at least one example")
    else:
        shape = f"(n, {n_features})" + (f" or ({n_features},)" if allow_1d else "")
        raise ValueError(f"{what} must have shape {shape}; got an array of shape {X.shape}")
    return finite_c_array(X, dtype, what)


def finite_c_array(X: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    """c_array(X, dtype), refused with a ValueError naming `what` if any value
    is not finite in `dtype`."""
    converted = c_array(X, dtype)
    if not _core.finite(converted):
        raise ValueError(not_finite(what, X, dtype))
    return converted


def not_finite(what, X, dtype):
    """The message for an X that is not finite in `dtype`: NaN/inf, or finite
    values that the cast to float32 turned into infinity."""
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        finite_before_the_cast = np.isfinite(np.asarray(X, dtype=np.float64)).all()
    if finite_before_the_cast:
        return (f"{what} has values beyond the range of {dtype} (|x| > {np.finfo(dtype).max:.4g}); "
                f"expected finite {dtype} values")
    return nan_message(what, X)


def nan_message(what, X) -> str:
    """The message for NaN or infinity in X, naming its first bad row."""
    return f"{what} contains NaN or infinity{first_bad_row(X)}; expected finite values"


def first_bad_row(X) -> str:
    """' (row i)' for the first row of a 2-D array that holds NaN or infinity;
    '' if none does or X is not 2-D. (For error messages: it makes a pass over X.)"""
    with np.errstate(all="ignore"):
        a = np.asarray(X, dtype=np.float64)
        if a.ndim != 2:
            return ""
        bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
    return f" (row {bad[0]})" if bad.size else ""


def targets(Y, n: int, n_outputs: int, cost: str, dtype: np.dtype,
            what: str = "Y", of: str = "X") -> np.ndarray:
    """Targets as a C-contiguous (n, n_outputs) array of `dtype`.

    A 1-D target is the target column itself when n_outputs == 1; otherwise a
    1-D integer array is class labels in [0, n_outputs), one-hot encoded, and a
    1-D float array is refused. Targets of cross_entropy and log_loss must lie
    in [0, 1]. Messages call the array `what`, and the inputs it goes with `of`.
    """
    Y = numeric(Y, what)
    if Y.ndim == 1:
        if Y.shape[0] != n:
            raise ValueError(f"{what} has {Y.shape[0]} targets; expected {n}, one per example of {of}")
        if n_outputs == 1:
            Y = Y.reshape(n, 1)
        elif Y.dtype.kind in "iu":
            Y = one_hot_labels(Y, n_outputs, dtype)
        else:
            raise ValueError(
                f"{what} is 1-D with dtype {Y.dtype}: ambiguous for {n_outputs} outputs; expected "
                f"integer class labels in [0, {n_outputs}) or an array of shape ({n}, {n_outputs})")
    elif Y.ndim == 2:
        if Y.shape != (n, n_outputs):
            raise ValueError(f"{what} has shape {Y.shape}; expected ({n}, {n_outputs})")
    else:
        raise ValueError(f"{what} must have shape ({n}, {n_outputs}) or ({n},); got {Y.shape}")
    Y = finite_c_array(Y, dtype, what)
    if cost != "quadratic" and not _core.in_unit_interval(Y):
        Y = np.asarray(Y)       # every value counts (a masked array's min would skip some)
        raise ValueError(f"{what}: targets for the {cost} cost must lie in [0, 1]; got values in "
                         f"[{Y.min():g}, {Y.max():g}]")
    return Y


def one_hot_labels(y, n_classes, dtype=np.float64):
    """Integer labels (n,) -> one-hot (n, n_classes) after a range check."""
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}); got values in [{y.min()}, {y.max()}]")
    Y = np.zeros((y.shape[0], n_classes), dtype=dtype)
    Y[np.arange(y.shape[0]), y] = 1
    return Y


def labels(y, n, n_outputs):
    """Class labels (n,) int64 from integer labels, one-hot rows or (n_outputs == 1)
    a 0/1 column of any numeric dtype."""
    y = numeric(y, "y")
    if y.ndim == 2 and y.shape == (n, n_outputs) and n_outputs > 1:
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity; expected class labels or one-hot rows")
        return np.asarray(y).argmax(axis=1)
    if y.ndim == 2 and y.shape == (n, 1):
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) (class labels) or ({n}, {n_outputs}); got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity; expected class labels")
    if n_outputs > 1 and y.dtype.kind not in "iu":
        # The rule `targets` applies to a 1-D Y, so score takes the labels cost takes.
        raise ValueError(
            f"labels of dtype {y.dtype} are ambiguous for {n_outputs} outputs; expected "
            f"integer class labels in [0, {n_outputs}) or one-hot rows of shape ({n}, {n_outputs})")
    if y.dtype.kind == "f":
        if not np.array_equal(y, np.round(y)):
            raise ValueError("y must hold integer class labels; got non-integer values")
    top = max(n_outputs, 2)
    # Checked before the cast to int64, which would wrap uint64 labels >= 2**63.
    if y.size and (y.min() < 0 or y.max() >= top):
        lo, hi = (v.item() for v in (y.min(), y.max()))
        raise ValueError(f"labels must lie in [0, {top}); got values in [{lo:g}, {hi:g}]"
                         if y.dtype.kind == "f" else
                         f"labels must lie in [0, {top}); got values in [{lo}, {hi}]")
    return y.astype(np.int64)
