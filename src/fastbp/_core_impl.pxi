# The compiled core: forward pass, delta recurrence, gradient accumulation and
# fused training steps, over float32 and float64 (cython.floating).
#
# This file is compiled twice, as fastbp._core (_core.pyx: the architecture's
# baseline instruction set) and, on x86-64, as fastbp._core_avx2 (the same
# loops vectorized with 256-bit AVX2); fastbp._core switches to the AVX2 build
# at import where this CPU runs it. Neither build contracts a * b + c into FMA
# or reassociates, so both compute bit-identical results.
#
# Notation (row-major, one example per row, as in reference.py):
#   Z^l = A^(l-1) W^l^T + b^l        (n, sizes[l])
#   A^l = sigma_l(Z^l)
#   D^L = dC/dZ^L                    (carries the 1/n of the mean cost)
#   D^(l-1) = (D^l W^l) * sigma'(Z^(l-1))     the delta recurrence
#   dC/dW^l = D^l^T A^(l-1),  dC/db^l = column sums of D^l
#
# The Python layer (network.py, trainer.py) validates arguments and converts
# arrays; the entry points here re-check the few facts the loops rely on
# (dtype, contiguity, shapes, finiteness) so that nothing reached through this
# module can read or write out of bounds, then run `noexcept nogil` kernels on
# raw pointers with the GIL released. Scratch memory is malloc'd per call (or
# per fit, in Workspace) and never shared between threads.

cimport cython
from cython cimport floating
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.math cimport fabs, fabsf, exp, expf, log, logf, log1p, log1pf, tanh, tanhf, sqrt, sqrtf, pow
from cython.parallel cimport parallel, threadid
from cpython.pyport cimport PY_SSIZE_T_MAX

cimport numpy as cnp
import numpy as np

from fastbp._blas cimport gemm, gemv, Trans, NoTrans

cnp.import_array()

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    /* (the empty volatile asm keeps GCC from deleting a loop of prefetches as
       a loop without effects: it had deleted every prefetch of X's rows) */
    #define FASTBP_PREFETCH(p) do { __builtin_prefetch((p), 0, 2); __asm__ __volatile__(""); } while (0)
    #else
    #define FASTBP_PREFETCH(p) ((void)(p))
    #endif
    """
    void prefetch "FASTBP_PREFETCH"(const void* p) noexcept nogil

# OpenMP, when the build has it (setup.py); without it the training loop's
# parallel section runs on one thread and these are no-ops.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTBP_HAS_OPENMP 1
    static int fastbp_max_threads(void) { return omp_get_max_threads(); }
    static int fastbp_num_threads(void) { return omp_get_num_threads(); }
    #ifdef _MSC_VER
    static void fastbp_barrier(void) { __pragma(omp barrier) }
    #else
    static void fastbp_barrier(void) { _Pragma("omp barrier") }
    #endif
    static double fastbp_wtime(void) { return omp_get_wtime(); }
    #else
    #define FASTBP_HAS_OPENMP 0
    static double fastbp_wtime(void) { return 0; }
    static int fastbp_max_threads(void) { return 1; }
    static int fastbp_num_threads(void) { return 1; }
    static void fastbp_barrier(void) { }
    #endif
    """
    bint HAS_OPENMP "FASTBP_HAS_OPENMP"
    int max_threads "fastbp_max_threads"() noexcept nogil
    int omp_num_threads "fastbp_num_threads"() noexcept nogil
    void barrier "fastbp_barrier"() noexcept nogil
    double wtime "fastbp_wtime"() noexcept nogil

def openmp_threads():
    """How many OpenMP threads a training loop here may start now (OMP_NUM_THREADS,
    threadpoolctl); 1 when the core was built without OpenMP."""
    return max_threads()


cdef extern from "Python.h":
    # Without Cython's `except -1`: _poll_signals leaves the exception set for
    # _train_steps to return with.
    int _raw_check_signals "PyErr_CheckSignals"() noexcept

# Activation and cost codes; network.py maps names to these.
cpdef enum Activation:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    SOFTMAX = 5

cpdef enum Cost:
    QUADRATIC = 0
    CROSS_ENTROPY = 1
    LOG_LOSS = 2

cpdef enum Optimizer:
    SGD = 0
    ADAM = 1

# forward/cost/predict run in chunks of rows so scratch memory stays bounded:
# about CHUNK_ELEMENTS activations per buffer (a few MB), at least MIN_CHUNK
# rows so each gemm is large enough to be efficient (and to use BLAS threads),
# unless that would take more than MAX_CHUNK_ELEMENTS per buffer (layers of
# more than 65,536 units): then as many rows as CHUNK_ELEMENTS holds, or one.
_NO_SCRATCH = ("not enough memory for the compiled core's scratch buffers (they grow with the "
              "number of examples and the width of the layers)")

cdef enum:
    MAX_ROWS = 2147483647       # BLAS sizes are C ints
    CHUNK_ELEMENTS = 1 << 19
    MAX_CHUNK_ELEMENTS = 1 << 24
    MIN_CHUNK = 256
    # Training steps between checks for Ctrl-C (each check briefly takes the GIL).
    SIGNAL_EVERY = 64
    # Training splits a first layer of at least SPLIT_MIN_INPUTS inputs and
    # SPLIT_MIN_WEIGHTS weights in two column blocks (plain SGD whatever the
    # batch; other optimizers with small products only; never depending on
    # the thread count, so that a step computes the same with any), and runs
    # them on two threads when the batch's products are small: big enough
    # for a thread each to pay for two barriers a step (three in pieces,
    # below), and every BLAS call
    # of at most SPLIT_MAX_WORK multiply-adds, so that OpenBLAS runs it on
    # the calling thread (it threads larger ones itself, and two threads'
    # threaded calls would queue for its one pool). A block's products
    # beyond that are computed in pieces that are not (block_product,
    # block_product_t), for a layer of at most PIECE_MAX_UNITS units: pieces
    # of PIECE_K inputs and as many rows as fit, and of PIECE_ROWS rows (of
    # the batch) and as many columns as fit; and for a block's product of at
    # most PIECE_MAX_WORK multiply-adds (fastbp runs two threads, OpenBLAS as
    # many as the machine has cores: larger products stay OpenBLAS's). Measured against one call for
    # the block on one thread (784 inputs, batches of 64-1000, 30-256 units,
    # float32 and float64; docs/bench/gemm-pieces.txt), the pieces took
    # 0.71-1.07x as long forward and 0.61-0.99x for the weight gradient;
    # with more units a piece has fewer rows or columns, and gets slower.
    SPLIT_MIN_INPUTS = 64
    SPLIT_MIN_WEIGHTS = 8192
    SPLIT_MAX_WORK = 1 << 18
    PIECE_MAX_UNITS = 256
    PIECE_MAX_WORK = 1 << 25
    PIECE_K = 256
    PIECE_ROWS = 40

cdef double LEAKY_SLOPE = 0.01


cdef struct Net:
    int L
    int* sizes      # L + 1 widths, input first
    int* act        # L activation codes, layer 1..L
    int cost
    void** W        # L pointers to (sizes[l+1], sizes[l]) row-major arrays
    void** b        # L pointers to (sizes[l+1],) arrays


# ---------------------------------------------------------------------------
# Elementwise rules: each activation beside its derivative.
# Derivatives are written in terms of the activation's output a = sigma(z),
# which the backward pass has at hand: sigmoid' = a(1-a), tanh' = 1-a^2,
# relu' = [a > 0] (so relu'(0) = 0), leaky_relu' = 1 if a > 0 else 0.01
# (a > 0 exactly when z > 0, so leaky_relu'(0) = 0.01).

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)

cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)

cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)

cdef inline floating _fabs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)

cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)

cdef inline floating _exp_neg(floating x) noexcept nogil:
    """exp(x) for x <= 0 (or NaN), within a few ulp, in straight-line code that
    compilers vectorize (a call to libm's exp stops a loop from vectorizing).

    exp(x) = 2^k exp(r) with k = round(x / ln 2) and |r| <= ln(2) / 2: r by
    Cody-Waite reduction (ln 2 split so k ln2_hi is exact), exp(r) by its
    Taylor polynomial (degree 13 for float64, 7 for float32: truncation error
    below half an ulp), 2^k built from exponent bits in two halves so results
    down to the subnormal range are right."""
    cdef floating t, kf, r, p
    cdef int64_t k, k1
    cdef int32_t j, j1
    cdef uint64_t u1, u2
    cdef uint32_t w1, w2
    cdef double s1, s2
    cdef float f1, f2
    if floating is double:
        x = -746.0 if x < -746.0 else x          # exp(-746) rounds to 0; NaN passes
        t = x * 1.4426950408889634 + 6755399441055744.0     # + 1.5 * 2^52 rounds to an integer
        kf = t - 6755399441055744.0
        memcpy(&u1, &t, 8)
        k = <int64_t>(<int32_t>(u1 & 0xFFFFFFFFULL))     # the integer in t's low bits
        r = (x - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10
        p = 1 + r * (1 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
            1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
            1.0 / 3628800.0 + r * (1.0 / 39916800.0 + r * (1.0 / 479001600.0 + r * (
            1.0 / 6227020800.0)))))))))))))
        k1 = k >> 1
        u1 = (<uint64_t>(k1 + 1023)) << 52
        u2 = (<uint64_t>(k - k1 + 1023)) << 52
        memcpy(&s1, &u1, 8)
        memcpy(&s2, &u2, 8)
        return p * s1 * s2
    else:
        x = <float>-104.0 if x < <float>-104.0 else x
        t = x * <float>1.44269504 + <float>12582912.0      # 1.5 * 2^23
        kf = t - <float>12582912.0
        memcpy(&w1, &t, 4)
        j = <int32_t>(w1 & 0x7FFFFF) - 0x400000         # the integer in t's mantissa bits
        r = (x - kf * <float>0.693359375) - kf * <float>-2.12194440e-4
        p = <float>1 + r * (<float>1 + r * (<float>(1.0 / 2) + r * (<float>(1.0 / 6) + r * (
            <float>(1.0 / 24) + r * (<float>(1.0 / 120) + r * (<float>(1.0 / 720) + r * (
            <float>(1.0 / 5040))))))))
        j1 = j >> 1
        w1 = (<uint32_t>(j1 + 127)) << 23
        w2 = (<uint32_t>(j - j1 + 127)) << 23
        memcpy(&f1, &w1, 4)
        memcpy(&f2, &w2, 4)
        return p * f1 * f2


cdef inline floating _sigmoid(floating z) noexcept nogil:
    # exp(-|z|) <= 1 never overflows; 1/(1+e) for z >= 0, e/(1+e) below, as
    # one division with a selected numerator so the loop vectorizes.
    cdef floating e = _exp_neg(-_fabs(z))
    return (<floating>1 if z >= 0 else e) / (<floating>1 + e)

cdef inline floating _softplus(floating z) noexcept nogil:
    # log(1 + exp(z)) without overflow.
    if z > 0:
        return z + _log1p(_exp(-z))
    return _log1p(_exp(z))

cdef inline bint _finite(double x) noexcept nogil:
    # NaN - NaN and inf - inf are NaN, which compares unequal to 0.
    return (x - x) == 0


cdef void activate(int code, Py_ssize_t n, Py_ssize_t m, const floating* Z,
                   floating* A) noexcept nogil:
    """A = sigma(Z) for an (n, m) block; A may be Z (in place)."""
    cdef Py_ssize_t i, j, size = n * m
    cdef floating z, mx, s
    if code == IDENTITY:
        if A != Z:
            memcpy(A, Z, size * sizeof(floating))
    elif code == SIGMOID:
        for i in range(size):
            A[i] = _sigmoid(Z[i])
    elif code == TANH:
        for i in range(size):
            if floating is float:
                A[i] = tanhf(Z[i])
            else:
                A[i] = tanh(Z[i])
    elif code == RELU:
        for i in range(size):
            z = Z[i]
            A[i] = z if z > 0 else 0
    elif code == LEAKY_RELU:
        for i in range(size):
            z = Z[i]
            A[i] = z if z > 0 else <floating>LEAKY_SLOPE * z
    elif code == SOFTMAX:
        # Row-wise, shifted by the row maximum so exp never overflows.
        for i in range(n):
            mx = Z[i * m]
            for j in range(1, m):
                if Z[i * m + j] > mx:
                    mx = Z[i * m + j]
            s = 0
            for j in range(m):
                z = _exp_neg(Z[i * m + j] - mx)
                A[i * m + j] = z
                s = s + z
            s = <floating>1 / s
            for j in range(m):
                A[i * m + j] = A[i * m + j] * s


cdef void times_derivative(int code, Py_ssize_t size, const floating* A,
                           floating* D) noexcept nogil:
    """D *= sigma'(z), elementwise, with sigma' written through a = sigma(z)."""
    cdef Py_ssize_t i
    cdef floating a
    if code == SIGMOID:
        for i in range(size):
            a = A[i]
            D[i] = D[i] * (a * (<floating>1 - a))
    elif code == TANH:
        for i in range(size):
            a = A[i]
            D[i] = D[i] * (<floating>1 - a * a)
    elif code == RELU:
        # Unconditional stores, so the loops vectorize.
        for i in range(size):
            D[i] = D[i] if A[i] > 0 else 0
    elif code == LEAKY_RELU:
        for i in range(size):
            D[i] = D[i] if A[i] > 0 else D[i] * <floating>LEAKY_SLOPE
    # IDENTITY: sigma' = 1. SOFTMAX never reaches here (output layer only).


# ---------------------------------------------------------------------------
# Costs beside their output deltas.

cdef double cost_and_delta(int act, int cost, Py_ssize_t n, Py_ssize_t m,
                           const floating* Z, const floating* A, const floating* Y,
                           floating* D, floating scale) noexcept nogil:
    """Return sum over the n examples of C0; if D is not NULL, also write
    D = scale * dC0/dz^L (scale = 1/n makes it the gradient of the mean cost).

    Z is only read for cross_entropy and log_loss, whose values are computed
    from z (softplus / log-sum-exp) so they stay finite when a saturates.
    """
    cdef Py_ssize_t i, j, row
    cdef double total = 0, c0
    cdef floating a, y, z, g, s, mx, lse, ysum
    for i in range(n):
        row = i * m
        c0 = 0
        if cost == QUADRATIC:
            for j in range(m):
                g = A[row + j] - Y[row + j]
                c0 += g * g
            if D != NULL:
                if act == SOFTMAX:
                    # Full Jacobian-vector product: dC0/dz_j = a_j (g_j - sum_i g_i a_i).
                    s = 0
                    for j in range(m):
                        s = s + <floating>2 * (A[row + j] - Y[row + j]) * A[row + j]
                    for j in range(m):
                        a = A[row + j]
                        D[row + j] = scale * a * (<floating>2 * (a - Y[row + j]) - s)
                else:
                    for j in range(m):
                        D[row + j] = scale * <floating>2 * (A[row + j] - Y[row + j])
                    times_derivative(act, m, A + row, D + row)
        elif cost == CROSS_ENTROPY:
            # -[y ln a + (1-y) ln(1-a)] with a = sigmoid(z) is softplus(z) - y z.
            for j in range(m):
                z = Z[row + j]
                c0 += _softplus(z) - Y[row + j] * z
                if D != NULL:
                    D[row + j] = scale * (A[row + j] - Y[row + j])
        else:  # LOG_LOSS with softmax: -sum y_j (z_j - logsumexp(z)).
            mx = Z[row]
            for j in range(1, m):
                if Z[row + j] > mx:
                    mx = Z[row + j]
            s = 0
            for j in range(m):
                s = s + _exp_neg(Z[row + j] - mx)     # (inline: libm exp took a W3 cost 1.5x as long)
            lse = mx + _log(s)
            ysum = 0
            for j in range(m):
                y = Y[row + j]
                ysum = ysum + y
                if y != 0:      # 0 ln 0 = 0: z_j - lse may be -inf when z spans ~1e308
                    c0 -= y * (Z[row + j] - lse)
            if D != NULL:
                # dC0/dz_j = a_j sum_i y_i - y_j (soft targets need not sum to 1).
                for j in range(m):
                    D[row + j] = scale * (A[row + j] * ysum - Y[row + j])
        total += c0
    return total


# ---------------------------------------------------------------------------
# The passes.

cdef void layer_forward(Py_ssize_t n, int n_in, int n_out, const floating* A_in,
                        const floating* W, const floating* b, floating* Z) noexcept nogil:
    """Z = A_in W^T + b: (n, n_out) from (n, n_in)."""
    cdef Py_ssize_t i
    for i in range(n):
        memcpy(Z + i * n_out, b, n_out * sizeof(floating))
    if n == 1:
        gemv(NoTrans, n_out, n_in, <floating>1, W, n_in, A_in, <floating>1, Z)
    else:
        gemm(NoTrans, Trans, <int>n, n_out, n_in, <floating>1, A_in, n_in, W, n_in,
             <floating>1, Z, n_out)


cdef void run_forward(const Net* net, Py_ssize_t n, const floating* X,
                      floating** Zp, floating** Ap) noexcept nogil:
    """Forward n rows; layer l+1 writes its weighted sums to Zp[l] and its
    activations to Ap[l] (Zp[l] may equal Ap[l])."""
    cdef int l
    cdef const floating* a_in = X
    for l in range(net.L):
        layer_forward(n, net.sizes[l], net.sizes[l + 1], a_in,
                      <const floating*>net.W[l], <const floating*>net.b[l], Zp[l])
        activate(net.act[l], n, net.sizes[l + 1], Zp[l], Ap[l])
        a_in = Ap[l]


cdef void column_sums(Py_ssize_t n, int m, const floating* D, floating* out) noexcept nogil:
    cdef Py_ssize_t i, j
    memcpy(out, D, m * sizeof(floating))
    for i in range(1, n):
        for j in range(m):
            out[j] = out[j] + D[i * m + j]


cdef void run_backward(const Net* net, Py_ssize_t n, const floating* X,
                       floating** Ap, floating* D, floating* D_prev,
                       floating** dW, floating** db, floating* dX) noexcept nogil:
    """Carry D = dC/dZ^L back through the layers (the delta recurrence),
    writing dC/dW^l and dC/db^l; if dX is not NULL also dC/dA^0.

    D and D_prev are two scratch blocks of n * max(sizes[1:]) elements; D holds
    the output delta on entry and is overwritten.
    """
    cdef int l, n_in, n_out
    cdef const floating* a_prev
    cdef floating* tmp
    for l in range(net.L - 1, -1, -1):
        n_in = net.sizes[l]
        n_out = net.sizes[l + 1]
        a_prev = X if l == 0 else Ap[l - 1]
        # dW^l = D^T A^(l-1)   (n_out, n_in)
        gemm(Trans, NoTrans, n_out, n_in, <int>n, <floating>1, D, n_out, a_prev, n_in,
             <floating>0, dW[l], n_in)
        column_sums(n, n_out, D, db[l])         # db^l
        if l > 0:
            # D^(l-1) = (D W^l) * sigma'(Z^(l-1))
            gemm(NoTrans, NoTrans, <int>n, n_in, n_out, <floating>1, D, n_out,
                 <const floating*>net.W[l], n_in, <floating>0, D_prev, n_in)
            times_derivative(net.act[l - 1], n * n_in, Ap[l - 1], D_prev)
            tmp = D
            D = D_prev
            D_prev = tmp
        elif dX != NULL:
            gemm(NoTrans, NoTrans, <int>n, n_in, n_out, <floating>1, D, n_out,
                 <const floating*>net.W[0], n_in, <floating>0, dX, n_in)


cdef inline uint64_t _zbits(floating x) noexcept nogil:
    # The bits of x * 0: +-0 (no exponent bits) for finite x, NaN for inf/NaN.
    # OR-ing these is an integer reduction, which compilers vectorize (a
    # floating-point or comparison reduction they would not).
    cdef double d
    cdef float f
    cdef uint64_t u = 0
    cdef uint32_t w = 0
    if floating is double:
        d = x * 0
        memcpy(&u, &d, 8)
        return u
    else:
        f = x * <float>0
        memcpy(&w, &f, 4)
        return w


cdef inline int _any_bad(uint64_t acc, floating dummy) noexcept nogil:
    if floating is double:
        return (acc & 0x7FF0000000000000ULL) != 0
    else:
        return (acc & 0x7F800000ULL) != 0


cdef bint all_finite(const floating* x, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t acc = 0
    for i in range(size):
        acc |= _zbits(x[i])
    return not _any_bad(acc, <floating>0)


cdef inline int _loop_type(cnp.ndarray x) noexcept:
    """x's type number where the typed loops can read it as it is (float32 or
    float64, C-contiguous, aligned, native byte order), else -1: NumPy's turn."""
    cdef int t = cnp.PyArray_TYPE(x)
    if ((t != cnp.NPY_DOUBLE and t != cnp.NPY_FLOAT) or not cnp.PyArray_IS_C_CONTIGUOUS(x)
            or not cnp.PyArray_ISALIGNED(x) or not cnp.PyArray_ISNOTSWAPPED(x)):
        return -1
    return t


def absmax_of(cnp.ndarray x not None):
    """An upper bound on max |x| over the elements of `x` (see `absmax`; 0.0
    for an empty array of another dtype or layout), which is inf or NaN if any
    element is not finite. One pass, no temporary array: the finiteness
    check of `finite` (and so of the trainer's check of all of X)."""
    cdef int t = _loop_type(x)
    cdef double m
    cdef Py_ssize_t size = cnp.PyArray_SIZE(x)
    if t < 0:
        if size == 0:
            return 0.0
        return float(max(abs(float(np.max(x))), abs(float(np.min(x)))))
    with nogil:
        if t == cnp.NPY_DOUBLE:
            m = absmax(<double*>cnp.PyArray_DATA(x), size)
        else:
            m = absmax(<float*>cnp.PyArray_DATA(x), size)
    return m


def finite(cnp.ndarray x not None):
    """True if every element of `x` is finite; one pass, no temporary array
    (the checks in _checks.py use it on data of any size)."""
    return _finite(absmax_of(x))


cdef bint all_in_unit(const floating* x, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    cdef int out = 0
    cdef floating zero = 0, one = 1
    # Or-ing the comparisons, not branching on them, and comparing with
    # constants of x's own type (not double) let GCC vectorize the loop
    # (-fno-trapping-math).
    for i in range(size):
        out |= (x[i] < zero) | (x[i] > one)
    return out == 0


def in_unit_interval(cnp.ndarray x not None):
    """True if no element of `x` lies outside [0, 1] (NaN counts as inside:
    check `finite` first); one pass, no temporary array. The targets of
    cross_entropy and log_loss are checked with it on every call."""
    cdef int t = _loop_type(x)
    cdef bint ok
    cdef Py_ssize_t size = cnp.PyArray_SIZE(x)
    if t < 0:
        return not bool(np.any((x < 0) | (x > 1)))
    with nogil:
        if t == cnp.NPY_DOUBLE:
            ok = all_in_unit(<double*>cnp.PyArray_DATA(x), size)
        else:
            ok = all_in_unit(<float*>cnp.PyArray_DATA(x), size)
    return ok


# ---------------------------------------------------------------------------
# Optimizer updates (PyTorch's rules). Each runs in one of two modes: write=True
# updates in place; write=False only checks that every new parameter and state
# value would be finite. A step whose update the running bounds of _train_steps
# prove finite writes in one pass; any other step checks first, then writes, so
# a diverging step leaves parameters and state exactly as they were.

cdef struct OptConf:
    int kind
    double lr, momentum, beta1, beta2, eps, l2
    bint nesterov


cdef int sgd_plain(Py_ssize_t size, floating* p, const floating* g, floating lr,
                   floating wd, bint write) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t acc = 0
    if write:
        for i in range(size):
            p[i] = p[i] - lr * (g[i] + wd * p[i])
    else:
        for i in range(size):
            acc |= _zbits(p[i] - lr * (g[i] + wd * p[i]))
    return _any_bad(acc, lr)


cdef int sgd_momentum(Py_ssize_t size, floating* p, const floating* g, floating* buf,
                      floating lr, floating mu, floating wd, bint nesterov,
                      bint write) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t acc = 0
    cdef floating gi, b
    for i in range(size):
        gi = g[i] + wd * p[i]
        b = mu * buf[i] + gi
        gi = gi + mu * b if nesterov else b
        if write:
            buf[i] = b
            p[i] = p[i] - lr * gi
        else:
            acc |= _zbits(b) | _zbits(p[i] - lr * gi)
    return _any_bad(acc, lr)


cdef int adam(Py_ssize_t size, floating* p, const floating* g, floating* m1, floating* m2,
              floating step_size, floating bc2_sqrt, floating w1, floating b2, floating w2,
              floating eps, floating wd, bint write) noexcept nogil:
    """PyTorch's Adam step; w1 = 1 - beta1 and w2 = 1 - beta2 come rounded from
    double, as torch's Python-float weights do."""
    cdef Py_ssize_t i
    cdef uint64_t acc = 0
    cdef floating gi, m, v
    cdef bint small = w1 < <floating>0.5
    cdef floating rest = <floating>1 - w1
    for i in range(size):
        gi = g[i] + wd * p[i]
        # torch: exp_avg.lerp_(grad, w1), whose kernel picks the formula by the weight
        m = m1[i] + w1 * (gi - m1[i]) if small else gi - (gi - m1[i]) * rest
        v = b2 * m2[i] + w2 * gi * gi                         # torch: mul_(beta2).addcmul_(g, g, w2)
        if write:
            m1[i] = m
            m2[i] = v
            p[i] = p[i] - step_size * (m / (_sqrt(v) / bc2_sqrt + eps))
        else:
            acc |= _zbits(m) | _zbits(v) | _zbits(p[i] - step_size * (m / (_sqrt(v) / bc2_sqrt + eps)))
    return _any_bad(acc, eps)


cdef bint update_array(const OptConf* o, Py_ssize_t size, floating* p,
                       const floating* g, floating* s1, floating* s2,
                       double l2, long long t, bint write) noexcept nogil:
    """Update one parameter array in place (if write), or only check that the
    update would be finite (if not). SGD: s1 = momentum buffer. Adam: s1, s2 =
    first and second moments; t is the step number counted from 1."""
    return update_rows(o, 1, size, size, p, g, s1, s2, l2, t, write)


cdef bint update_rows(const OptConf* o, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t stride,
                      floating* p, const floating* g, floating* s1, floating* s2,
                      double l2, long long t, bint write) noexcept nogil:
    """update_array on `rows` rows of `cols` elements, `stride` apart, in p, g
    and the states alike (a column block of a weight matrix)."""
    cdef int bad = 0
    cdef Py_ssize_t r, off
    cdef floating step_size = 0, bc2_sqrt = 0
    cdef floating* m1
    cdef floating* m2
    if o.kind == ADAM:
        step_size = <floating>(o.lr / (1 - pow(o.beta1, <double>t)))
        bc2_sqrt = <floating>sqrt(1 - pow(o.beta2, <double>t))
    for r in range(rows):
        off = r * stride
        m1 = s1 + off if s1 != NULL else s1        # (no state: stays NULL, unused)
        m2 = s2 + off if s2 != NULL else s2
        if o.kind == ADAM:
            bad |= adam(cols, p + off, g + off, m1, m2, step_size, bc2_sqrt,
                        <floating>(1 - o.beta1), <floating>o.beta2, <floating>(1 - o.beta2),
                        <floating>o.eps, <floating>l2, write)
        elif o.momentum != 0:
            bad |= sgd_momentum(cols, p + off, g + off, m1, <floating>o.lr,
                                <floating>o.momentum, <floating>l2, o.nesterov, write)
        else:
            bad |= sgd_plain(cols, p + off, g + off, <floating>o.lr, <floating>l2, write)
    return bad == 0


# ---------------------------------------------------------------------------
# Python-facing layer: argument checks and dispatch on dtype.

cdef struct Adapt:
    # Which way a split training loop runs faster on this machine now: both
    # threads or thread 0 alone (see _adapt). The Kernel keeps it from one
    # training call to the next (an epoch, or a progress bar's fiftieth of
    # one), so that calls measure on from where the last one stopped.
    double rate[2]          # seconds per step alone [0] and on two threads [1]; 0: not measured
    double clock            # seconds spent in the measured windows (time between calls
                            # does not count: the tries' cost is a share of training time)
    double next_probe       # the clock at the next scheduled try of the other way
    double interval         # seconds of the clock from a try to the next scheduled one
    double prev             # seconds per step in the stint's previous window
    double win_time         # seconds of the current window spent in earlier calls
    long long key           # what the rates were measured for (batch size, optimizer)
    int win_steps           # steps of the current window so far (a window may span calls)
    int stint               # windows since the last switch between the two ways
    bint duo                # the way the steps run now: the way measured faster (the
                            # home), or, while probing, a try of the other
    bint probing            # the current stint tries the other way, back after PROBE_WINDOWS


# The measurements of the last training call in the process that could run
# on two threads, and its Kernel's layout_id (0: none): a Kernel of the same
# layout (a new network, or a copy) whose own measurements are for another
# batch size or optimizer, or for none, starts from them when they are for
# its batch size and optimizer, rather than from nothing (the way and the
# schedule of tries), as a benchmark or a sweep builds one network after
# another. Only a call that may run on two threads reads or writes them (and
# the tests' _forget_shared_measurements), and only one such call runs at a
# time (_active_trains).
cdef Adapt _shared_adapt
cdef long long _shared_layout = 0


cdef int _typenum(object dtype) except -1:
    if dtype == np.float64:
        return cnp.NPY_DOUBLE
    if dtype == np.float32:
        return cnp.NPY_FLOAT
    raise ValueError(f"dtype must be float32 or float64, got {dtype}")


cdef inline Py_ssize_t _rows(cnp.ndarray x) noexcept:
    return 1 if cnp.PyArray_NDIM(x) == 1 else cnp.PyArray_DIM(x, 0)


cdef class Kernel:
    """Compiled passes for one network layout (sizes, activations, cost, dtype).

    Parameters are not held here: every call takes the network's current
    `weights` and `biases` lists, checks each array (type, dtype, shape,
    C order) and keeps references to them for the duration of the call, so
    replacing or editing them between calls is safe.
    """
    cdef readonly int L
    cdef readonly int typenum
    cdef readonly int cost
    cdef int* sizes
    cdef int* act
    cdef readonly tuple layer_sizes
    cdef int max_width   # max(sizes[1:])
    cdef Adapt adapt     # used by the training calls, one at a time (see _train_steps)
    cdef long long layout_id    # sizes, activations, cost and dtype, hashed (_shared_adapt)

    def __cinit__(self, sizes, activations, int cost, dtype):
        cdef int l
        self.adapt.key = -1
        self.adapt.duo = True
        self.L = len(sizes) - 1
        if self.L < 1 or len(activations) != self.L:
            raise ValueError("need at least two sizes and one activation per layer")
        if cost < QUADRATIC or cost > LOG_LOSS:
            raise ValueError(f"unknown cost code {cost}")
        self.typenum = _typenum(dtype)
        self.cost = cost
        self.sizes = <int*>malloc((self.L + 1) * sizeof(int))
        self.act = <int*>malloc(self.L * sizeof(int))
        if self.sizes == NULL or self.act == NULL:
            raise MemoryError("out of memory for the network's layout")
        self.max_width = 0
        for l in range(self.L + 1):
            if not (0 < sizes[l] < 2**31 - 1):
                raise ValueError(f"layer sizes must be positive ints, got {sizes[l]}")
            self.sizes[l] = sizes[l]
            if l > 0 and sizes[l] > self.max_width:
                self.max_width = sizes[l]
        for l in range(self.L):
            if not (IDENTITY <= activations[l] <= SOFTMAX):
                raise ValueError(f"unknown activation code {activations[l]}")
            if activations[l] == SOFTMAX and l != self.L - 1:
                raise ValueError("softmax is an output activation only")
            self.act[l] = activations[l]
        self.layer_sizes = tuple(int(s) for s in sizes)
        self.layout_id = hash((self.layer_sizes, tuple(int(a) for a in activations), cost,
                               self.typenum)) or 1

    def __dealloc__(self):
        free(self.sizes)
        free(self.act)

    def _adapt_state(self):
        """(seconds per step alone, on two threads, whether two threads are the
        home way, seconds measured): what the split training loop has measured
        (see _adapt); zeros before any two-thread call."""
        return (self.adapt.rate[0], self.adapt.rate[1],
                bool(self.adapt.duo != self.adapt.probing), self.adapt.clock)

    # -- checks -------------------------------------------------------------

    cdef tuple _params(self, list weights, list biases, Net* net, void** ptrs,
                       bint writeable):
        """Fill net.W / net.b from the parameter lists after checking them."""
        cdef int l
        cdef cnp.ndarray w, b
        if len(weights) != self.L or len(biases) != self.L:
            raise ValueError(f"expected {self.L} weight and bias arrays, got "
                             f"{len(weights)} and {len(biases)}")
        refs = tuple(weights) + tuple(biases)
        net.L = self.L
        net.sizes = self.sizes
        net.act = self.act
        net.cost = self.cost
        net.W = ptrs
        net.b = ptrs + self.L
        for l in range(self.L):
            w = self._checked(refs[l], "weights", l, 2, writeable)
            b = self._checked(refs[self.L + l], "biases", l, 1, writeable)
            net.W[l] = cnp.PyArray_DATA(w)
            net.b[l] = cnp.PyArray_DATA(b)
        return refs

    cdef cnp.ndarray _checked(self, object obj, str name, int l, int ndim,
                              bint writeable):
        cdef cnp.ndarray a
        cdef bint shape_ok
        if not isinstance(obj, np.ndarray):
            raise TypeError(f"{name}[{l}] must be a numpy array, got {type(obj).__name__}")
        a = <cnp.ndarray>obj
        if cnp.PyArray_TYPE(a) != self.typenum:
            raise TypeError(f"{name}[{l}] has dtype {obj.dtype}; expected {self.dtype}")
        shape_ok = cnp.PyArray_NDIM(a) == ndim and cnp.PyArray_DIM(a, 0) == self.sizes[l + 1]
        if shape_ok and ndim == 2:
            shape_ok = cnp.PyArray_DIM(a, 1) == self.sizes[l]
        if not shape_ok:
            expected = (self.layer_sizes[l + 1], self.layer_sizes[l])[:ndim]
            raise ValueError(f"{name}[{l}] has shape {obj.shape}; expected {expected}")
        if (not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)
                or not cnp.PyArray_ISNOTSWAPPED(a)):
            raise ValueError(f"{name}[{l}] must be C-contiguous, aligned and in native byte order")
        if writeable and not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError(f"{name}[{l}] must be writeable")
        return a

    @property
    def dtype(self):
        return np.dtype(np.float64 if self.typenum == cnp.NPY_DOUBLE else np.float32)

    def check_parameters(self, list weights, list biases, bint writeable=True):
        """The checks every pass makes on the parameter lists, on their own: for
        a caller that must refuse bad parameters before it changes anything."""
        cdef Net net
        cdef void** pp = <void**>malloc(2 * self.L * sizeof(void*))
        if pp == NULL:
            raise MemoryError("out of memory for the parameter pointers")
        try:
            self._params(weights, biases, &net, pp, writeable)
        finally:
            free(pp)

    cdef _check_data(self, cnp.ndarray x, int width, str name, bint allow_1d,
                     bint check_finite=True, bint chunked=False):
        """x must be this kernel's dtype, C-contiguous, (n, width) or (width,);
        unless the caller takes its rows in chunks, at most MAX_ROWS of them
        (BLAS takes a matrix's number of rows as a C int)."""
        cdef int nd = cnp.PyArray_NDIM(x)
        if cnp.PyArray_TYPE(x) != self.typenum:
            raise TypeError(f"{name} must have the network's dtype")
        if (not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_ISALIGNED(x)
                or not cnp.PyArray_ISNOTSWAPPED(x)):
            raise ValueError(f"{name} must be C-contiguous, aligned and in native byte order")
        if nd == 2:
            if cnp.PyArray_DIM(x, 1) != width:
                raise ValueError(f"{name} has {cnp.PyArray_DIM(x, 1)} columns; expected {width}")
            if cnp.PyArray_DIM(x, 0) < 1:
                raise ValueError(f"{name} is empty; expected at least one row")
            if not chunked and cnp.PyArray_DIM(x, 0) > MAX_ROWS:
                raise ValueError(f"{name} has {cnp.PyArray_DIM(x, 0)} rows; at most {MAX_ROWS} "
                                 f"in one call (BLAS takes sizes as C ints): split the data")
        elif nd == 1 and allow_1d:
            if cnp.PyArray_DIM(x, 0) != width:
                raise ValueError(f"{name} has {cnp.PyArray_DIM(x, 0)} values; expected {width}")
        else:
            raise ValueError(f"{name} must be 2-D (n, {width}); got {nd}-D")
        if not check_finite:
            return
        if self.typenum == cnp.NPY_DOUBLE:
            ok = all_finite(<double*>cnp.PyArray_DATA(x), cnp.PyArray_SIZE(x))
        else:
            ok = all_finite(<float*>cnp.PyArray_DATA(x), cnp.PyArray_SIZE(x))
        if not ok:
            raise ValueError(f"{name} contains NaN or infinity; expected finite values")

    cdef cnp.ndarray _empty(self, Py_ssize_t n, Py_ssize_t m, bint one_d):
        cdef cnp.npy_intp dims[2]
        if one_d:
            dims[0] = m
            return cnp.PyArray_EMPTY(1, dims, self.typenum, 0)
        dims[0] = n
        dims[1] = m
        return cnp.PyArray_EMPTY(2, dims, self.typenum, 0)

    # -- forward ------------------------------------------------------------

    def forward(self, list weights, list biases, cnp.ndarray X):
        """Output activations for X (n, sizes[0]) -> (n, sizes[-1]); a 1-D x gives a 1-D result."""
        cdef Net net
        cdef void* ptrs[128]
        cdef void** pp = ptrs
        self._check_data(X, self.sizes[0], "X", True, False, True)   # NaN/inf: per chunk below
        if 2 * self.L > 128:
            pp = <void**>malloc(2 * self.L * sizeof(void*))
            if pp == NULL:
                raise MemoryError(_NO_SCRATCH)
        try:
            refs = self._params(weights, biases, &net, pp, False)
            A = self._empty(_rows(X), self.sizes[self.L], cnp.PyArray_NDIM(X) == 1)
            if self.typenum == cnp.NPY_DOUBLE:
                status = _forward_chunked(&net, _rows(X), <double*>cnp.PyArray_DATA(X),
                                          <double*>cnp.PyArray_DATA(A), self.max_width)
            else:
                status = _forward_chunked(&net, _rows(X), <float*>cnp.PyArray_DATA(X),
                                          <float*>cnp.PyArray_DATA(A), self.max_width)
        finally:
            if pp != ptrs:
                free(pp)
        if status == 1:
            raise MemoryError(_NO_SCRATCH)
        if status == 2:
            raise ValueError("X contains NaN or infinity; expected finite values")
        return A

    def cost_value(self, list weights, list biases, cnp.ndarray X, cnp.ndarray Y):
        """Mean of C0 over the rows of X, against targets Y (n, sizes[-1])."""
        cdef Net net
        cdef void* ptrs[128]
        cdef void** pp = ptrs
        cdef double total
        cdef Py_ssize_t n
        self._check_data(X, self.sizes[0], "X", False, True, True)
        self._check_data(Y, self.sizes[self.L], "Y", False, True, True)
        n = _rows(X)
        if _rows(Y) != n:
            raise ValueError(f"Y has {_rows(Y)} rows; expected {n} (one per row of X)")
        if 2 * self.L > 128:
            pp = <void**>malloc(2 * self.L * sizeof(void*))
            if pp == NULL:
                raise MemoryError(_NO_SCRATCH)
        try:
            refs = self._params(weights, biases, &net, pp, False)
            if self.typenum == cnp.NPY_DOUBLE:
                total = _cost_chunked(&net, n, <double*>cnp.PyArray_DATA(X),
                                      <double*>cnp.PyArray_DATA(Y), self.max_width)
            else:
                total = _cost_chunked(&net, n, <float*>cnp.PyArray_DATA(X),
                                      <float*>cnp.PyArray_DATA(Y), self.max_width)
        finally:
            if pp != ptrs:
                free(pp)
        if total == -1:
            raise MemoryError(_NO_SCRATCH)
        return total / n

    def trace(self, list weights, list biases, cnp.ndarray X):
        """Weighted sums [Z^1..Z^L] and activations [A^1..A^L] for X (2-D)."""
        cdef Net net
        cdef void* ptrs[128]
        cdef void** pp = ptrs
        cdef void** zp
        cdef void** ap
        cdef int l
        cdef Py_ssize_t n
        self._check_data(X, self.sizes[0], "X", False)
        n = _rows(X)
        pp = <void**>malloc(4 * self.L * sizeof(void*))
        if pp == NULL:
            raise MemoryError(_NO_SCRATCH)
        try:
            refs = self._params(weights, biases, &net, pp, False)
            zp = pp + 2 * self.L
            ap = pp + 3 * self.L
            zs = [self._empty(n, self.sizes[l + 1], False) for l in range(self.L)]
            As = [self._empty(n, self.sizes[l + 1], False) for l in range(self.L)]
            for l in range(self.L):
                zp[l] = cnp.PyArray_DATA(<cnp.ndarray>zs[l])
                ap[l] = cnp.PyArray_DATA(<cnp.ndarray>As[l])
            with nogil:
                if self.typenum == cnp.NPY_DOUBLE:
                    run_forward(&net, n, <double*>cnp.PyArray_DATA(X), <double**>zp, <double**>ap)
                else:
                    run_forward(&net, n, <float*>cnp.PyArray_DATA(X), <float**>zp, <float**>ap)
        finally:
            free(pp)
        return zs, As

    # -- backprop -----------------------------------------------------------

    def backprop(self, list weights, list biases, cnp.ndarray X, cnp.ndarray Y):
        """Gradients of the mean cost: (dW list, db list, dX, cost)."""
        cdef Net net
        cdef void** pp
        cdef int l
        cdef Py_ssize_t n
        cdef double total
        self._check_data(X, self.sizes[0], "X", False)
        self._check_data(Y, self.sizes[self.L], "Y", False)
        n = _rows(X)
        if _rows(Y) != n:
            raise ValueError(f"Y has {_rows(Y)} rows; expected {n} (one per row of X)")
        pp = <void**>malloc(4 * self.L * sizeof(void*))
        if pp == NULL:
            raise MemoryError(_NO_SCRATCH)
        try:
            refs = self._params(weights, biases, &net, pp, False)
            gW = [self._empty(self.sizes[l + 1], self.sizes[l], False) for l in range(self.L)]
            gb = [self._empty(0, self.sizes[l + 1], True) for l in range(self.L)]
            gX = self._empty(n, self.sizes[0], False)
            for l in range(self.L):
                pp[2 * self.L + l] = cnp.PyArray_DATA(<cnp.ndarray>gW[l])
                pp[3 * self.L + l] = cnp.PyArray_DATA(<cnp.ndarray>gb[l])
            if self.typenum == cnp.NPY_DOUBLE:
                total = _backprop(&net, n, <double*>cnp.PyArray_DATA(X),
                                  <double*>cnp.PyArray_DATA(Y), <double**>(pp + 2 * self.L),
                                  <double**>(pp + 3 * self.L), <double*>cnp.PyArray_DATA(gX),
                                  self.max_width)
            else:
                total = _backprop(&net, n, <float*>cnp.PyArray_DATA(X),
                                  <float*>cnp.PyArray_DATA(Y), <float**>(pp + 2 * self.L),
                                  <float**>(pp + 3 * self.L), <float*>cnp.PyArray_DATA(gX),
                                  self.max_width)
        finally:
            free(pp)
        if total == -1:
            raise MemoryError(_NO_SCRATCH)
        return gW, gb, gX, total / n


    # -- training -----------------------------------------------------------

    def train(self, list weights, list biases, cnp.ndarray X, cnp.ndarray Y, order,
              Py_ssize_t first, Py_ssize_t last, Py_ssize_t batch, int kind, double lr,
              double momentum, bint nesterov, double beta1, double beta2, double eps,
              double l2, list state1, list state2, long long t, Workspace ws,
              double x_bound=0):
        """Run mini-batch steps over positions [first, last) of `order` (int64
        row indices, or None for the rows in order), updating the parameters
        and the optimizer state (state1: momentum buffers or Adam's first
        moments, state2: Adam's second moments, each [W..., b...]; empty lists
        when unused) in place. `t` is the number of steps taken before.

        Returns 0 (done), 1 (a cost was not finite), 2 (an update was not
        finite) or 3 (a batch's rows of X hold NaN or infinity: X is checked
        as each batch is gathered, not in a pass of its own); `ws.steps_done`
        and `ws.loss_sum` (sum of C0 over the examples of the completed
        steps) tell how far it got, and `ws.checked_steps` how many of those
        steps took the checked path. The overflow proofs bound |X| by each
        batch's own max |x|, or by `x_bound` if that is larger (the tests
        pass inf to send every step down the checked path).
        """
        cdef Net net
        cdef OptConf o
        cdef void** pp
        cdef const long long* order_p = NULL
        cdef Py_ssize_t n, i, n_order
        cdef int status, l, threads
        cdef cnp.ndarray ordered
        # chunked: each product takes one batch, and a Workspace holds at most MAX_ROWS
        self._check_data(X, self.sizes[0], "X", False, False, True)
        self._check_data(Y, self.sizes[self.L], "Y", False, False, True)
        n = _rows(X)
        if _rows(Y) != n:
            raise ValueError(f"Y has {_rows(Y)} rows; expected {n}")
        if ws.kernel is not self:
            raise ValueError("the workspace was made for another network's kernel; expected "
                             "Workspace(this kernel, batch)")
        if batch < 1 or batch > ws.batch:
            raise ValueError(f"batch must be in [1, {ws.batch}]; got {batch}")
        if kind != SGD and kind != ADAM:
            raise ValueError(f"unknown optimizer code {kind}")
        n_order = n
        if order is not None:
            ordered = <cnp.ndarray?>order
            if (cnp.PyArray_TYPE(ordered) != cnp.NPY_INT64 or cnp.PyArray_NDIM(ordered) != 1
                    or not cnp.PyArray_IS_C_CONTIGUOUS(ordered)):
                raise TypeError("order must be a 1-D C-contiguous int64 array")
            n_order = cnp.PyArray_DIM(ordered, 0)
            order_p = <const long long*>cnp.PyArray_DATA(ordered)
            for i in range(n_order):
                if order_p[i] < 0 or order_p[i] >= n:
                    raise ValueError(f"order[{i}] = {order_p[i]} is not a row index in [0, {n})")
        if not (0 <= first <= last <= n_order):
            raise ValueError(f"need 0 <= first <= last <= {n_order}; got {first}, {last}")
        o.kind = kind
        o.lr = lr
        o.momentum = momentum
        o.nesterov = nesterov
        o.beta1 = beta1
        o.beta2 = beta2
        o.eps = eps
        o.l2 = l2
        pp = <void**>malloc(6 * self.L * sizeof(void*))
        if pp == NULL:
            raise MemoryError(_NO_SCRATCH)
        ws.steps_done = 0
        ws.threads = 0
        ws.solo_steps = 0
        ws.checked_steps = 0
        ws.loss_sum = 0
        global _active_trains
        # A second thread (for a split first layer) when OpenMP may use one
        # (OMP_NUM_THREADS, threadpoolctl) and no other training call is
        # running, which would want the other core.
        threads = max_threads() if _active_trains == 0 and not _omp_forked else 1
        _active_trains += 1
        try:
            refs = self._params(weights, biases, &net, pp, True)
            states = self._states(state1, "state1", pp + 2 * self.L)
            states2 = self._states(state2, "state2", pp + 4 * self.L)
            if kind == ADAM and (not state1 or not state2):
                raise ValueError("Adam needs both moment states")
            if kind == SGD and momentum != 0 and not state1:
                raise ValueError("SGD with momentum needs its velocity state")
            if self.typenum == cnp.NPY_DOUBLE:
                with nogil:
                    status = _train_steps(&net, ws, <double*>cnp.PyArray_DATA(X),
                                          <double*>cnp.PyArray_DATA(Y), order_p, n, first, last,
                                          batch, &o,
                                          <double**>(pp + 2 * self.L) if state1 else NULL,
                                          <double**>(pp + 4 * self.L) if state2 else NULL, t, x_bound,
                                          threads)
            else:
                with nogil:
                    status = _train_steps(&net, ws, <float*>cnp.PyArray_DATA(X),
                                          <float*>cnp.PyArray_DATA(Y), order_p, n, first, last,
                                          batch, &o,
                                          <float**>(pp + 2 * self.L) if state1 else NULL,
                                          <float**>(pp + 4 * self.L) if state2 else NULL, t, x_bound,
                                          threads)
        finally:
            _active_trains -= 1
            free(pp)
        return status

    cdef tuple _states(self, list state, str name, void** out):
        """Check an optimizer state list [W..., b...] (or []) and take pointers."""
        cdef int l
        if not state:
            return ()
        if len(state) != 2 * self.L:
            raise ValueError(f"{name} must hold {2 * self.L} arrays; got {len(state)}")
        refs = tuple(state)
        for l in range(self.L):
            out[l] = cnp.PyArray_DATA(self._checked(refs[l], name, l, 2, True))
            out[self.L + l] = cnp.PyArray_DATA(self._checked(refs[self.L + l], name, l, 1, True))
        return refs


# ---------------------------------------------------------------------------
# Drivers that own their scratch memory (GIL released inside).

cdef inline Py_ssize_t chunk_rows(Py_ssize_t n, int max_width) noexcept nogil:
    cdef Py_ssize_t rows = CHUNK_ELEMENTS // max_width
    if rows < MIN_CHUNK:
        if <Py_ssize_t>MIN_CHUNK * max_width <= MAX_CHUNK_ELEMENTS:
            rows = MIN_CHUNK
        elif rows < 1:
            rows = 1
    return n if n < rows else rows


cdef int _forward_chunked(const Net* net, Py_ssize_t n, const floating* X,
                          floating* out, int max_width) noexcept:
    """Forward n rows in chunks (see chunk_rows) through ping-pong buffers.

    Each chunk's rows are checked for NaN/inf just before its forward pass,
    while they are in cache, instead of in a separate pass over all of X.
    Returns 0, 1 (out of memory) or 2 (X holds NaN or infinity).
    """
    cdef Py_ssize_t rows = chunk_rows(n, max_width)
    cdef Py_ssize_t start, cn
    cdef int l, L = net.L, n0 = net.sizes[0], status = 0
    cdef floating* buf = <floating*>malloc(2 * rows * max_width * sizeof(floating) + 1)
    cdef floating** ptrs = <floating**>malloc(L * sizeof(floating*) + 1)
    if buf == NULL or ptrs == NULL:
        free(buf)
        free(ptrs)
        return 1
    with nogil:
        start = 0
        while start < n:
            cn = n - start if n - start < rows else rows
            if not all_finite(X + start * n0, cn * n0):
                status = 2
                break
            for l in range(L - 1):
                ptrs[l] = buf + (l % 2) * rows * max_width
            ptrs[L - 1] = out + start * net.sizes[L]
            run_forward(net, cn, X + start * n0, ptrs, ptrs)
            start += cn
    free(buf)
    free(ptrs)
    return status


cdef double _cost_chunked(const Net* net, Py_ssize_t n, const floating* X,
                          const floating* Y, int max_width) noexcept:
    """Sum of C0 over n rows, in chunks; -1 if out of memory."""
    cdef Py_ssize_t rows = chunk_rows(n, max_width)
    cdef Py_ssize_t start, cn
    cdef int l, L = net.L, m = net.sizes[net.L]
    cdef double total = 0
    cdef floating* buf = <floating*>malloc((2 * <Py_ssize_t>max_width + 2 * <Py_ssize_t>m) * rows
                                           * sizeof(floating))
    cdef floating** zp = <floating**>malloc(2 * L * sizeof(floating*))
    cdef floating** ap
    if buf == NULL or zp == NULL:
        free(buf)
        free(zp)
        return -1
    ap = zp + L
    with nogil:
        start = 0
        while start < n:
            cn = n - start if n - start < rows else rows
            for l in range(L - 1):
                zp[l] = buf + (l % 2) * rows * max_width
                ap[l] = zp[l]
            zp[L - 1] = buf + 2 * rows * max_width
            ap[L - 1] = zp[L - 1] + rows * m
            run_forward(net, cn, X + start * net.sizes[0], zp, ap)
            total += cost_and_delta(net.act[L - 1], net.cost, cn, m, zp[L - 1], ap[L - 1],
                                    Y + start * m, <floating*>NULL, <floating>1)
            start += cn
    free(buf)
    free(zp)
    return total


cdef double _backprop(const Net* net, Py_ssize_t n, const floating* X, const floating* Y,
                      floating** dW, floating** db, floating* dX, int max_width) noexcept:
    """Forward, output delta, delta recurrence; returns the sum of C0 (-1: no memory)."""
    cdef int l, L = net.L, m = net.sizes[net.L]
    cdef Py_ssize_t total_width = 0, off = 0
    cdef double total
    for l in range(1, L + 1):
        total_width += net.sizes[l]
    cdef floating* buf = <floating*>malloc((total_width + m + 2 * <Py_ssize_t>max_width) * n
                                           * sizeof(floating))
    cdef floating** ap = <floating**>malloc(2 * L * sizeof(floating*))
    cdef floating** zp
    cdef floating* D
    if buf == NULL or ap == NULL:
        free(buf)
        free(ap)
        return -1
    zp = ap + L
    for l in range(L):
        ap[l] = buf + off
        zp[l] = ap[l]
        off += n * net.sizes[l + 1]
    zp[L - 1] = buf + off
    off += n * m
    D = buf + off
    with nogil:
        run_forward(net, n, X, zp, ap)
        total = cost_and_delta(net.act[L - 1], net.cost, n, m, zp[L - 1], ap[L - 1], Y,
                               D, <floating>(1.0 / n))
        run_backward(net, n, X, ap, D, D + n * max_width, dW, db, dX)
    free(buf)
    free(ap)
    return total


# ---------------------------------------------------------------------------
# Training: whole runs of mini-batch steps inside the core.

cdef inline Py_ssize_t _to_line(Py_ssize_t off, Py_ssize_t item) noexcept nogil:
    """`off` elements of `item` bytes rounded up to a multiple of 64 bytes."""
    cdef Py_ssize_t per_line = 64 // item
    return (off + per_line - 1) // per_line * per_line


cdef class Workspace:
    """Scratch memory for training steps of up to `batch` rows, allocated once
    per `fit` (or `step`) and reused for every mini-batch.

    `steps_done` and `loss_sum` record the progress of the last `Kernel.train`
    call, also when Ctrl-C interrupts it;
    `checked_steps` counts its steps whose update was not proven finite in
    advance and took the checked path, `threads` is how many threads it
    could run on (two only for a split first layer; see _train_steps), and
    `solo_steps` how many of its steps thread 0 ran alone although it could
    run on two (see _adapt).
    """
    cdef void* mem
    cdef readonly Py_ssize_t batch
    cdef readonly Kernel kernel     # the layout the buffers were sized for
    cdef void** ptrs        # A[L], Z[L], dW[L], db[L], D[L] (per-layer deltas)
    cdef double* bounds     # running upper bounds, see _train_steps (8 L)
    cdef void* Xb
    cdef void* Yb
    cdef void* P            # 2 (batch, sizes[1]) partial products (see _train_steps),
    cdef Py_ssize_t p_stride    # p_stride elements apart
    cdef readonly long steps_done
    cdef readonly long checked_steps
    cdef readonly int threads
    cdef readonly long solo_steps
    cdef readonly double loss_sum

    def __cinit__(self, Kernel kernel, Py_ssize_t batch):
        cdef int l, L = kernel.L, m = kernel.sizes[kernel.L]
        cdef Py_ssize_t item = 8 if kernel.typenum == cnp.NPY_DOUBLE else 4
        cdef Py_ssize_t total = 0, off = 0
        cdef char* base
        cdef double need = batch * (<double>kernel.sizes[0] + 2.0 * m + 2.0 * kernel.sizes[1])
        if batch < 1 or batch > MAX_ROWS:
            raise ValueError(f"batch must be in [1, {MAX_ROWS}]; got {batch}")
        self.batch = batch
        self.kernel = kernel
        for l in range(L):
            need += (2.0 * batch + kernel.sizes[l] + 1) * kernel.sizes[l + 1]
        if need * item > 0.25 * PY_SSIZE_T_MAX:      # the sums below would overflow
            raise MemoryError(f"cannot allocate {need * item:.3g} bytes of training buffers")
        for l in range(L):
            total += 2 * batch * kernel.sizes[l + 1]                  # activations, deltas
            # Py_ssize_t products: sizes[l+1] * sizes[l] may exceed a C int
            total += <Py_ssize_t>kernel.sizes[l + 1] * kernel.sizes[l] + kernel.sizes[l + 1]  # grads
        total += batch * (<Py_ssize_t>kernel.sizes[0] + 2 * <Py_ssize_t>m  # Xb, Yb, Z^L
                          + 2 * <Py_ssize_t>kernel.sizes[1])                 # P
        # dC/dW^1, Xb and the two blocks of P start on cache lines (see
        # _train_steps' split): 64 bytes for the base and each of the four.
        self.mem = malloc(total * item + 5 * 64)
        self.ptrs = <void**>malloc(5 * L * sizeof(void*))
        self.bounds = <double*>malloc(8 * L * sizeof(double))
        if self.mem == NULL or self.ptrs == NULL or self.bounds == NULL:
            raise MemoryError(f"cannot allocate {total * item} bytes of training buffers")
        base = <char*>self.mem + (-<size_t>self.mem) % 64
        for l in range(L):
            self.ptrs[l] = base + off * item                       # A^(l+1)
            self.ptrs[L + l] = self.ptrs[l]                        # Z^(l+1) computed in place
            off += batch * kernel.sizes[l + 1]
            self.ptrs[4 * L + l] = base + off * item               # D^(l+1) = dC/dZ^(l+1)
            off += batch * kernel.sizes[l + 1]
        self.ptrs[2 * L - 1] = base + off * item                   # Z^L kept for the cost
        off += batch * m
        off = _to_line(off, item)
        for l in range(L):
            self.ptrs[2 * L + l] = base + off * item               # dC/dW^(l+1)
            off += <Py_ssize_t>kernel.sizes[l + 1] * kernel.sizes[l]
            self.ptrs[3 * L + l] = base + off * item               # dC/db^(l+1)
            off += kernel.sizes[l + 1]
        self.Yb = base + off * item
        off += batch * m
        off = _to_line(off, item)
        self.Xb = base + off * item
        off += batch * kernel.sizes[0]
        off = _to_line(off, item)
        self.P = base + off * item
        self.p_stride = _to_line(batch * kernel.sizes[1], item)

    def __dealloc__(self):
        free(self.mem)
        free(self.ptrs)
        free(self.bounds)

cdef inline void prefetch_row(const char* p, Py_ssize_t nbytes) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(0, nbytes, 64):
        prefetch(p + k)


cdef int _poll_signals() noexcept nogil:
    with gil:
        return _raw_check_signals()


# Kernel.train calls running in this process (changed with the GIL held): a
# training loop uses a second thread only while it is the only one.
cdef int _active_trains = 0

# GNU OpenMP cannot start threads again in a child forked after it ran a
# parallel region (the child hangs), and the parent may have run one through
# another library sharing the runtime (torch's libgomp.so.1 serves fastbp too
# when torch is imported first), so a forked child trains on one thread, with
# the same results.
cdef bint _omp_forked = False

def _after_fork_in_child():
    global _omp_forked, _active_trains
    _omp_forked = True
    _active_trains = 0      # the calls that were running belong to the parent

import os as _os_fork
if hasattr(_os_fork, "register_at_fork"):
    _os_fork.register_at_fork(after_in_child=_after_fork_in_child)

cdef inline int active_trains() noexcept nogil:
    return (<volatile int*>&_active_trains)[0]


# A cache line handed back and forth between the two threads of a parallel
# region: the time one round trip takes. A training step on two threads
# hands data between its cores (partial products, deltas) several times;
# on a shared virtual machine the host may, for seconds at a time, place the
# two virtual CPUs where each hand-off takes several times longer while each
# core alone computes as fast as ever (docs/bench/spells.txt). The benchmark
# suite reads this before each timed run to tell such spells from its results.
cdef extern from *:
    """
    #if defined(_OPENMP) && (defined(__GNUC__) || defined(__clang__))
    #define FASTBP_HAS_HANDOFF 1
    typedef struct { long flag; char pad[120]; int stop; } fastbp_handoff_t;
    /* round trips of 2 * i + 1 (thread 0) and 2 * i + 2 (thread 1); -1 when the
       region has no second thread, -2 when one wait lasts more than `budget`
       seconds (a thread not running: the other stops waiting for it) */
    static double fastbp_handoff_ns(long rounds, double budget) {
        fastbp_handoff_t s __attribute__((aligned(64)));
        double result = -1;
        s.flag = 0;
        s.stop = 0;
        #pragma omp parallel num_threads(2) shared(s, result)
        {
            if (omp_get_num_threads() == 2) {
                int me = omp_get_thread_num();
                long i, spins;
                double t0, since;
                /* both threads are running before the clock starts */
                #pragma omp barrier
                t0 = omp_get_wtime();
                for (i = 0; i < rounds; i++) {
                    if (me == 0)
                        __atomic_store_n(&s.flag, 2 * i + 1, __ATOMIC_RELEASE);
                    spins = 0;
                    since = 0;
                    while (__atomic_load_n(&s.flag, __ATOMIC_ACQUIRE) != 2 * i + (me ? 1 : 2)) {
                        if (__atomic_load_n(&s.stop, __ATOMIC_RELAXED))
                            goto done;
                        if (++spins % 4096 == 0) {
                            double now = omp_get_wtime();
                            if (since == 0) {
                                since = now;
                            } else if (now - since > budget) {
                                __atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
                                goto done;
                            }
                        }
                    }
                    if (me == 1)
                        __atomic_store_n(&s.flag, 2 * i + 2, __ATOMIC_RELEASE);
                }
                if (me == 0)
                    result = (omp_get_wtime() - t0) / rounds * 1e9;
            done:
                if (me == 0 && __atomic_load_n(&s.stop, __ATOMIC_RELAXED))
                    result = -2;
            }
        }
        return result;
    }
    #else
    #define FASTBP_HAS_HANDOFF 0
    static double fastbp_handoff_ns(long rounds, double budget) { (void)rounds; (void)budget; return -1; }
    #endif
    """
    double handoff_ns "fastbp_handoff_ns"(long rounds, double budget) noexcept nogil


def _handoff_ns(long rounds=2000, double budget=0.05):
    """Nanoseconds a round trip of one cache line between the two threads of an
    OpenMP parallel region takes (mean over `rounds`), or None: no OpenMP
    build, one thread allowed (OMP_NUM_THREADS, threadpoolctl), a training
    call running or a forked child (which must not start OpenMP threads), or
    one hand-off took more than `budget` seconds (a thread was not running).
    A diagnostic for the benchmark suite; not part of the API."""
    cdef double ns
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {rounds}")
    if not budget > 0 or budget == float("inf"):
        raise ValueError(f"budget must be a positive, finite number of seconds; got {budget}")
    if _omp_forked or _active_trains or max_threads() < 2:
        return None
    with nogil:
        ns = handoff_ns(rounds, budget)
    return ns if ns >= 0 else None


cdef inline int32_t _abs_bits(floating x) noexcept nogil:
    # The top 32 bits of |x| as a non-negative int32: for non-negative IEEE
    # values integer order is numeric order (and NaN sorts above inf).
    cdef int32_t w
    cdef uint64_t u
    if floating is float:
        memcpy(&w, &x, 4)
        return w & 0x7FFFFFFF
    else:
        memcpy(&u, &x, 8)
        return <int32_t>((u >> 32) & 0x7FFFFFFF)


cdef double absmax(const floating* x, Py_ssize_t size) noexcept nogil:
    """An upper bound on max |x_i|: exact for float32; for float64 (only the
    top 32 bits are compared) at most a factor 1 + 2^-20 above it, or at most
    2.2e-314 when it is smaller than that. inf or NaN if any x_i is not finite.

    It reduces integer bit patterns, which compilers vectorize where a
    floating-point max reduction they would not, in four independent streams
    so the loop is not bound by the latency of one running maximum."""
    cdef Py_ssize_t i, q = size // 4
    cdef int32_t m0 = 0, m1 = 0, m2 = 0, m3 = 0, w
    cdef uint64_t u
    cdef float f
    cdef double d
    for i in range(q):
        w = _abs_bits(x[i])
        m0 = w if w > m0 else m0
        w = _abs_bits(x[q + i])
        m1 = w if w > m1 else m1
        w = _abs_bits(x[2 * q + i])
        m2 = w if w > m2 else m2
        w = _abs_bits(x[3 * q + i])
        m3 = w if w > m3 else m3
    for i in range(4 * q, size):
        w = _abs_bits(x[i])
        m0 = w if w > m0 else m0
    m0 = m0 if m0 > m1 else m1
    m2 = m2 if m2 > m3 else m3
    m0 = m0 if m0 > m2 else m2
    if floating is float:
        memcpy(&f, &m0, 4)
        return f
    else:
        # Round up: all of the low 32 bits set (a NaN if the top is inf's;
        # a tiny subnormal, not 0, when every top is 0).
        u = ((<uint64_t>m0) << 32) | 0xFFFFFFFFULL
        memcpy(&d, &u, 8)
        return d


cdef inline double act_absmax(int act, const floating* a, Py_ssize_t size) noexcept nogil:
    """An upper bound on max |a| for activations a of the given kind."""
    if act == SIGMOID or act == TANH or act == SOFTMAX:
        return 1.0
    return absmax(a, size)


# Running upper bounds for the overflow proofs of _train_steps, 2 L slots per
# group: slot l is W^(l+1), slot L + l is b^(l+1).
cdef enum:
    B_PARAM = 0     # max |p|
    B_GRAD = 2      # max |dC/dp| of the current step
    B_S1 = 4        # max |momentum buffer| or max |Adam m|
    B_S2 = 6        # max Adam v (v >= 0)


cdef void exact_bounds(const Net* net, double* bounds, floating** s1, floating** s2) noexcept nogil:
    cdef int l, L = net.L
    cdef Py_ssize_t size
    for l in range(L):
        size = <Py_ssize_t>net.sizes[l + 1] * net.sizes[l]
        bounds[B_PARAM * L + l] = absmax(<floating*>net.W[l], size)
        bounds[B_PARAM * L + L + l] = absmax(<floating*>net.b[l], net.sizes[l + 1])
        bounds[B_S1 * L + l] = bounds[B_S1 * L + L + l] = 0     # no state: plain SGD
        bounds[B_S2 * L + l] = bounds[B_S2 * L + L + l] = 0
        if s1 != NULL:
            bounds[B_S1 * L + l] = absmax(s1[l], size)
            bounds[B_S1 * L + L + l] = absmax(s1[L + l], net.sizes[l + 1])
        if s2 != NULL:
            bounds[B_S2 * L + l] = absmax(s2[l], size)
            bounds[B_S2 * L + L + l] = absmax(s2[L + l], net.sizes[l + 1])


cdef void gradient_bounds(const Net* net, Py_ssize_t nb, floating** Ds, floating** ap,
                          double x_bound, double* bounds) noexcept nogil:
    # dC/dW^l = D^T A sums nb products: |.| <= nb max|D| max|A|; dC/db^l sums nb of D.
    cdef int l, L = net.L
    cdef double dmax, amax
    for l in range(L):
        dmax = absmax(Ds[l], nb * net.sizes[l + 1])
        amax = x_bound if l == 0 else act_absmax(net.act[l - 1], ap[l - 1], nb * net.sizes[l])
        bounds[B_GRAD * L + l] = nb * dmax * amax
        bounds[B_GRAD * L + L + l] = nb * dmax


# Each bound is raised by this factor per operation: more than the relative
# rounding error of the few float32 operations it covers, so bounds stay upper
# bounds over any number of steps (and grow by only e^(k 2^-20) over k steps).
cdef double ROUNDING = 1 + 2.0 ** -20


cdef bint next_bounds(const OptConf* o, int L, double* bounds, double step_size, double eps,
                      double limit, bint commit) noexcept nogil:
    """Bounds on |p|, |s1|, |s2| after one momentum-SGD or Adam update, from
    the bounds before it and on the gradient, following each operation of
    sgd_momentum / adam. True if every value the update computes is provably
    below `limit` (so finite); if also `commit`, the bounds become the new ones.
    NaN bounds compare false, so they prove nothing."""
    cdef int k
    cdef double p, g, m, v, step, wd
    cdef bint ok = True
    for k in range(2 * L):
        wd = o.l2 if k < L else 0.0
        p = bounds[B_PARAM * L + k]
        g = (bounds[B_GRAD * L + k] + wd * p) * ROUNDING
        m = bounds[B_S1 * L + k]
        if o.kind == ADAM:
            # m + w1 (g - m) = b1 m + w1 g, through |g - m| <= g + m; for w1 >= 1/2
            # (torch's other lerp formula) g - (g - m)(1 - w1), bounded term by term.
            ok = ok and g + m < limit
            if 1 - o.beta1 < 0.5:
                m = (o.beta1 * m + (1 - o.beta1) * g) * ROUNDING
            else:
                m = (g + (g + m) * o.beta1) * ROUNDING
            v = (o.beta2 * bounds[B_S2 * L + k] + (1 - o.beta2) * g * g) * ROUNDING
            step = step_size * (m / eps) * ROUNDING   # |m / (sqrt(v) / bc2 + eps)| <= m / eps
            ok = ok and g < limit and m < limit and v < limit and step < limit
        else:
            m = (o.momentum * m + g) * ROUNDING
            v = 0
            step = o.lr * (g + o.momentum * m if o.nesterov else m) * ROUNDING
            ok = ok and g < limit and m < limit and step < limit
        p = (p + step) * ROUNDING
        ok = ok and p < limit
        if commit:
            bounds[B_PARAM * L + k] = p
            bounds[B_S1 * L + k] = m
            bounds[B_S2 * L + k] = v
    return ok


# One Kernel.train call, shared by the threads that run it (see _train_steps).
# The fields from `t` on are written only by thread 0, between barriers or
# outside the parallel region (and `pos` as it leaves a segment: thread 1
# reads it only on entering a region), but for costs[1], thread 1's half of
# a step's cost in pieces (written before the barrier after rest_rows).
cdef struct Train:
    const Net* net
    const OptConf* o
    void** ptrs             # the Workspace's
    double* bounds
    void* Xb
    Py_ssize_t x_off[2]     # column block blk of the batch's rows (Xb's, or X's unshuffled)
    Py_ssize_t x_ld[2]      # starts x_off[blk] elements in, rows x_ld[blk] apart
    void* Yb
    void* P                 # the first layer's partial products, one (batch, sizes[1]) per block,
    Py_ssize_t p_stride     # p_stride elements apart
    const void* X
    const void* Y
    const long long* order
    Py_ssize_t first, last, batch
    void** s1
    void** s2
    double x_bound          # the caller's bound on |X| (see Kernel.train)
    double xb_bound[2]      # max |x| over each column block of this batch's rows
    int blocks              # 1, or 2: the first layer's input columns in two blocks
    int cut                 # the first column of the second block
    long long t
    bint plain_sgd, tracked
    double decay, limit
    int status              # 0, or 1 / 2 / 3 as _train_steps returns
    bint interrupted        # a signal handler raised (the exception is set)
    bint fused_w1           # this step's W^1 update is left to the blocks' owners
    bint block_w1           # so are its W^1 gradient and update (momentum, Adam, l2,
                            # and plain SGD in pieces)
    bint pieces             # the blocks' products are computed in pieces (block_product),
                            # and the rows of the rest of a step in two halves (rest_rows)
    double costs[2]         # the halves' costs
    bint solo               # thread 0 goes on alone to the end of the call
    Py_ssize_t pos          # the position the next step starts at (between segments)
    Adapt* adapt            # the Kernel's, when two threads may run; else NULL
    double win_start        # wall time when this call's part of the current window began
    int threads             # 2 when the call may run on two threads (set before any
                            # region), else 1 (also when its first region had one)
    long steps_done, checked_steps, solo_steps
    double loss_sum


cdef int _train_steps(const Net* net, Workspace ws, const floating* X, const floating* Y,
                      const long long* order, Py_ssize_t n_rows, Py_ssize_t first,
                      Py_ssize_t last, Py_ssize_t batch, const OptConf* o,
                      floating** s1, floating** s2, long long t, double x_bound,
                      int threads) except -1 nogil:
    """Mini-batch steps over positions [first, last) of `order` (or of the rows
    when order is NULL). Returns 0, or 1 if a cost was not finite, 2 if an
    update would not be finite, 3 if the batch's rows of X are not all finite
    (parameters and state then as before that step). Raises
    KeyboardInterrupt (between steps) on Ctrl-C.

    Each batch's rows of X are checked, and bounded for the overflow proofs,
    as they are gathered (in cache), which spares the caller a pass over all
    of X (a tenth of a W1 epoch in float64).

    Plain SGD (no momentum, no l2) takes a fused path: each weight update is
    one gemm straight into W (W = W - lr D^T A), with no gradient buffer
    (except W^1 in pieces: its gradient, then W - lr g elementwise).
    Momentum SGD and Adam update each array in one pass. Both are taken only
    when running upper bounds on |W|, |b|, the optimizer state and the
    gradient prove that the update cannot overflow (so it is finite, as the
    spec requires); otherwise the step takes the checked path: a first pass
    computes the update without writing it, and stops the run if any value
    would not be finite.

    A large enough first layer (split_cut; for optimizers other than plain
    SGD only with small products) has its input columns split in
    two blocks: its forward product is the sum of two partial products, and
    its weight gradient and update are computed block by block (for plain
    SGD, one fused gemm per block unless in pieces). The blocks are independent, so with
    `threads` >= 2 and small products (split_small: W1 and W2 of the issue,
    batches of 10; and W3, 784-100-10 in batches of 200, whose blocks'
    products are computed in pieces of at most SPLIT_MAX_WORK multiply-adds,
    `pieces`), each of two OpenMP threads owns one: it gathers its
    columns of the batch's rows, computes its partial product, and, on steps
    whose update is proven finite, computes and applies its columns' update
    of W^1; thread 0 does the small rest of the step between two barriers
    (with the whole update on checked steps), while thread 1 prefetches the
    next batch (in pieces, the rest's forward pass and deltas go row by
    row, half a batch on each thread, before a third barrier: rest_rows;
    and each thread prefetches its own columns of the next batch).
    The arithmetic is the same for one thread or two, so the
    results are bit-identical whatever the thread count. Thread 0 goes on
    alone (`solo`) when another training call starts and for the rest of a
    momentum or Adam call once a step is not proven finite; and it runs the
    steps alone (outside the parallel region) or on two threads (in one) as
    it measures one way or the other to run faster (_adapt).
    """
    cdef Train c
    cdef bint small
    global _shared_adapt, _shared_layout
    cdef Adapt* a = &ws.kernel.adapt
    cdef long long key
    c.net = net
    c.o = o
    c.ptrs = ws.ptrs
    c.bounds = ws.bounds
    c.Xb = ws.Xb
    c.Yb = ws.Yb
    c.P = ws.P
    c.p_stride = ws.p_stride
    c.X = X
    c.Y = Y
    c.order = order
    c.first = first
    c.last = last
    c.batch = batch
    c.s1 = <void**>s1
    c.s2 = <void**>s2
    c.x_bound = x_bound
    c.xb_bound[0] = c.xb_bound[1] = 0
    c.t = t
    c.status = 0
    c.interrupted = False
    c.fused_w1 = False
    c.block_w1 = False
    c.solo = False
    c.pos = first
    c.steps_done = 0
    c.checked_steps = 0
    c.solo_steps = 0
    c.loss_sum = 0
    # The proofs work in double; they also need every hyperparameter to be
    # finite in the network's dtype (a float32 network with lr > 3.4e38
    # takes the checked path, which reports the non-finite update).
    # (Without l2 only: (1 - lr l2) W - lr g, the fused form, rounds differently
    # from PyTorch's W - lr (g + l2 W), which the one-pass update computes.)
    c.plain_sgd = (o.kind == SGD and o.momentum == 0 and o.l2 == 0 and _finite(<floating>o.lr))
    c.tracked = (not c.plain_sgd and _finite(<floating>o.lr) and _finite(<floating>o.l2)
                 and (o.kind == SGD and _finite(<floating>o.momentum)
                      or o.kind == ADAM and <floating>o.eps > 0))
    c.limit = 1e300 if floating is double else 1e37
    c.decay = fabs(1 - o.lr * o.l2)
    c.cut = split_cut(net.sizes, sizeof(floating))
    small = c.cut > 0 and split_small(net.sizes, net.L, c.cut, batch)
    if not c.plain_sgd and not small:
        c.cut = 0           # (on one thread, the blocked gradient and update only cost)
    c.blocks = 2 if c.cut > 0 else 1
    c.pieces = small and <double>batch * (net.sizes[0] - c.cut) * net.sizes[1] > SPLIT_MAX_WORK
    if order != NULL and c.blocks == 2:
        # Gathered, each block's columns are rows of their own: interleaved
        # in Xb's rows, each core's prefetchers pulled in lines the other
        # was writing, and a W3 gather took up to twice as long.
        c.x_off[0] = 0
        c.x_ld[0] = c.cut
        c.x_off[1] = batch * c.cut      # (on a cache line: the cut is whole lines)
        c.x_ld[1] = net.sizes[0] - c.cut
    else:
        c.x_off[0] = 0
        c.x_ld[0] = c.x_ld[1] = net.sizes[0]
        c.x_off[1] = c.cut
    if c.plain_sgd or c.tracked:
        exact_bounds(net, c.bounds, s1, s2)
    # (momentum and Adam that nothing proves finite check every step, which
    # thread 0 does alone)
    if c.blocks == 2 and threads > 1 and (c.plain_sgd or c.tracked) and small:
        # (rates measured for another batch size or optimizer do not apply)
        key = batch * 4 + o.kind * 2 + c.plain_sgd
        if (a.key != key and _adapt_force == 0 and _shared_layout == ws.kernel.layout_id
                and _shared_adapt.key == key):
            a[0] = _shared_adapt
            a.win_time = 0      # (the window was another network's)
            a.win_steps = 0
        elif a.key != key:
            a.key = key
            a.rate[0] = a.rate[1] = 0
            a.clock = 0
            a.next_probe = 0
            a.interval = PROBE_MIN
            a.prev = 0
            a.win_time = 0
            a.win_steps = 0
            a.stint = 0
            a.duo = True
            a.probing = False
        c.adapt = a
        c.threads = 2
        c.win_start = wtime()
        # Segments of steps, on two threads or one, until the end, a status or
        # an interrupt; a segment also ends where _adapt switches ways.
        while c.pos < c.last and c.status == 0 and not c.interrupted:
            if _two(&c):
                with parallel(num_threads=2):
                    _train_loop(&c, threadid(), omp_num_threads(), X)
            else:
                _train_loop(&c, 0, 1, X)
        if c.solo or c.status != 0 or c.interrupted:
            a.win_steps = 0     # (the window's steps were not all run the measured way)
            a.win_time = 0
        elif c.threads > 1:
            a.win_time += wtime() - c.win_start
        _shared_adapt = a[0]
        _shared_layout = ws.kernel.layout_id
    else:
        c.adapt = NULL
        c.threads = 1
        _train_loop(&c, 0, 1, X)
    ws.steps_done = c.steps_done
    ws.threads = c.threads
    ws.solo_steps = c.solo_steps
    ws.checked_steps = c.checked_steps
    ws.loss_sum = c.loss_sum
    if c.interrupted:
        return -1           # the signal handler's exception is set
    return c.status


cdef inline int split_cut(const int* sizes, Py_ssize_t item) noexcept nogil:
    """The first column of the second block of a split first layer, or 0 if
    the layer (sizes[0] inputs, sizes[1] units) is not split. The cut is a
    whole number of cache lines into each row, so where the rows are too (784
    inputs) and W^1 starts on one (as Network allocates it), the two threads
    never write to the same line of W^1; nor of the gathered Xb, whose
    blocks are matrices of their own, the second starting on a line
    (Train.x_off). (With at least SPLIT_MIN_INPUTS inputs it is at least 16.)"""
    cdef Py_ssize_t per_line = 64 // item
    if sizes[0] < SPLIT_MIN_INPUTS or <Py_ssize_t>sizes[0] * sizes[1] < SPLIT_MIN_WEIGHTS:
        return 0
    return <int>((sizes[0] // 2) // per_line * per_line)


cdef bint split_small(const int* sizes, int L, int cut, Py_ssize_t batch) noexcept nogil:
    """Whether OpenBLAS keeps each product of a step on the calling thread: the
    blocks' (the second block is the larger: the cut rounds down), in pieces
    where they are larger (a layer of at most PIECE_MAX_UNITS units and a
    product of at most PIECE_MAX_WORK, in a build with OpenMP: without, one
    thread would lose OpenBLAS's threads for nothing), and the other layers'
    (so that an OpenMP-built OpenBLAS, single-threaded inside a parallel
    region, computes the same as on one thread outside it)."""
    cdef int l
    cdef double block = <double>batch * (sizes[0] - cut) * sizes[1]
    if block > SPLIT_MAX_WORK and (sizes[1] > PIECE_MAX_UNITS or block > PIECE_MAX_WORK
                                   or not HAS_OPENMP):
        return False
    for l in range(1, L):
        if <double>batch * sizes[l] * sizes[l + 1] > SPLIT_MAX_WORK:
            return False
    return True


cdef inline (int, int) block_columns(const Train* c, int blk) noexcept nogil:
    """The first layer's input columns [k0, k1) of column block `blk`."""
    return (0 if blk == 0 else c.cut), (c.net.sizes[0] if blk == c.blocks - 1 else c.cut)


# Switching between two threads and one (_adapt): each way is measured over
# windows of WINDOW steps, or fewer steps as soon as a window has lasted
# WINDOW_SECONDS (steps of half a millisecond, as with 784-100-10 in batches
# of 200, would otherwise make a try of the slower way cost tens of
# milliseconds; two milliseconds are about four such steps); a
# window may span calls (the time between them does not count), and the first
# window after a switch is not counted; a try of the other
# way lasts PROBE_WINDOWS windows (one counted: delays only make a window
# slower, so a try errs towards staying) and wins by MARGIN; tries are
# scheduled PROBE_MIN seconds of training after a switch, then twice as far
# apart up to PROBE_MAX while the way stays (a W1 float64 try costs about
# 0.8 ms in a healthy spell: under 0.1% at the longest gap); and the tests
# can force a switch after every _adapt_force counted windows (then of
# WINDOW steps, whatever their time).
cdef enum:
    WINDOW = 64
    PROBE_WINDOWS = 2
cdef double WINDOW_SECONDS = 0.002
cdef double PROBE_MIN = 0.02
cdef double PROBE_MAX = 1.0
cdef double MARGIN = 0.05
cdef int _adapt_force = 0

def _set_adapt_force(int windows):
    global _adapt_force
    _adapt_force = windows


def _forget_shared_measurements():
    """Tests: Kernels start measuring from their own state or from nothing,
    not from the last training call's measurements (_shared_adapt)."""
    global _shared_layout
    _shared_layout = 0


def _set_window_seconds(double seconds):
    """Tests: windows end after `seconds` as well as after WINDOW steps
    (infinity: WINDOW steps only, whatever the machine's speed)."""
    global WINDOW_SECONDS
    WINDOW_SECONDS = seconds


cdef inline bint _two(const Train* c) noexcept nogil:
    """Whether the next steps run on two threads (a parallel region): else on
    thread 0 alone, outside one."""
    return c.adapt != NULL and c.adapt.duo and not c.solo


cdef inline void _switch(Train* c) noexcept nogil:
    c.adapt.duo = not c.adapt.duo
    c.adapt.stint = 0


cdef void _adapt(Train* c, double now) noexcept nogil:
    """Thread 0, at the end of each window (at wall time `now`): whether the
    next steps run on two threads or on thread 0 alone (a.duo), from the
    seconds per step measured each way. Two threads are usually faster, but
    not always: on a busy machine, or when a virtual machine's host runs its
    two CPUs slower together (this VM's "slow spells": W1 float64 took 160-190
    ms an epoch on two threads against 125-130 ms on one), the steps that
    hand work to the other thread two or three times each can take longer than one
    thread doing all of it. So the loop runs the way measured faster (its
    home) and now and then tries the other: after the home's first three
    windows (the first not counted), on a schedule (tries that confirm the
    home double the gap, up to PROBE_MAX), and as soon as the home way, over
    its last two windows, measures more than MARGIN slower than the other way
    did.
    Both ways compute the same, so the results do not depend on any of it."""
    cdef Adapt* a = c.adapt
    cdef double span, t
    cdef int way = 1 if a.duo else 0
    span = a.win_time + (now - c.win_start)
    t = span / a.win_steps
    a.clock += span
    c.win_start = now
    a.win_time = 0
    a.win_steps = 0
    a.stint += 1
    if a.stint == 1:
        return      # (a switch's window pays for starting or ending the parallel region
                    # and for cache lines changing cores)
    a.rate[way] = t if a.stint == 2 else min(t, a.prev)
    a.prev = t
    if _adapt_force > 0:
        if a.stint > _adapt_force:
            _switch(c)
        return
    if a.probing:
        if a.stint < PROBE_WINDOWS:
            return
        a.probing = False
        if a.rate[way] < (1 - MARGIN) * a.rate[1 - way]:
            a.interval = PROBE_MIN  # the other way won: it is the home now
        else:
            a.interval = min(2 * a.interval, PROBE_MAX)
            _switch(c)
        a.next_probe = a.clock + a.interval
    elif a.stint >= 3 and (a.rate[1 - way] == 0 or a.clock >= a.next_probe
                           or a.rate[way] > (1 + MARGIN) * a.rate[1 - way]):
        a.probing = True
        _switch(c)


cdef inline double nan_max(double m, double v) noexcept nogil:
    """max(m, v), where a NaN (in either) sticks."""
    return v if v > m or v != v else m


cdef inline void prefetch_next(const Train* c, const floating* X, Py_ssize_t start, int k0,
                               int k1) noexcept nogil:
    """Prefetch columns [k0, k1) of the batch's rows at positions [start, start + batch)."""
    cdef Py_ssize_t i, n0 = c.net.sizes[0]
    for i in range(start, min(start + c.batch, c.last)):
        prefetch_row(<const char*>(X + c.order[i] * n0 + k0), (k1 - k0) * sizeof(floating))


cdef void _train_loop(Train* c, int tid, int n_threads, const floating* X) noexcept nogil:
    """One thread's part of a segment of _train_steps: the steps from c.pos,
    with thread 0 doing all but the first layer's blocks owned by other
    threads (and in pieces, the other threads' halves of rest_rows), until
    the end, a status, an interrupt or a change of way (then thread 0
    stores the position reached in c.pos)."""
    cdef const Net* net = c.net
    cdef int n0 = net.sizes[0], n1 = net.sizes[1], blk, k0, k1
    cdef const floating* Y = <const floating*>c.Y
    cdef floating** ap = <floating**>c.ptrs
    cdef floating** Ds = ap + 4 * net.L
    cdef floating* W1 = <floating*>net.W[0]
    cdef floating* P = <floating*>c.P
    cdef floating* Xb
    cdef floating* Xk
    cdef Py_ssize_t pos = c.pos, nb, i, r, half, ldx
    cdef double xmax
    if tid == 0 and n_threads < 2 and _two(c):
        # A parallel region with one thread (OMP_DYNAMIC, a thread limit):
        # nothing to switch to for the rest of the call. (Its steps count as
        # run alone unless the call had run none on two.)
        c.solo = True
        if c.steps_done == 0:
            c.threads = 1
    while pos < c.last:
        # Where the way changes, the segment ends (_train_steps goes on with
        # the other). In the parallel region both threads read the flags
        # after the same barrier (thread 0 sets them in _step_rest), and the
        # region's end completes both threads' updates of the last step.
        if (n_threads > 1) != _two(c):
            break
        nb = c.last - pos if c.last - pos < c.batch else c.batch
        if c.order != NULL:
            Xb = <floating*>c.Xb
        else:
            Xb = <floating*>(X + pos * n0)
        # The forward product of this thread's column blocks of the first layer.
        blk = tid
        while blk < c.blocks:
            k0, k1 = block_columns(c, blk)
            Xk = Xb + c.x_off[blk]
            ldx = c.x_ld[blk]
            if c.order != NULL:
                for i in range(nb):
                    r = c.order[pos + i]
                    memcpy(Xk + i * ldx, X + r * n0 + k0, (k1 - k0) * sizeof(floating))
            if c.order != NULL and n_threads == 1:
                # Shuffled rows are cache misses: start fetching the next batch's
                # rows now, so they arrive while this batch is computed. (With
                # two threads, thread 1 does it while thread 0 runs _step_rest;
                # in pieces each thread its own columns, see below.)
                prefetch_next(c, X, pos + nb, k0, k1)
            if c.blocks == 1:
                layer_forward(nb, n0, n1, Xb, W1, <const floating*>net.b[0], ap[net.L])
            else:
                block_product(c, nb, Xk, ldx, k0, k1, P + blk * c.p_stride)
            # The finiteness check and |X| bound of the batch's rows, which the
            # product has just read into cache. (_step_rest acts on it before
            # anything but the Workspace's scratch is written; a product of
            # NaN rows changes nothing.)
            xmax = 0
            for i in range(nb):
                xmax = nan_max(xmax, absmax(Xk + i * ldx, k1 - k0))
            c.xb_bound[blk] = xmax
            if c.order != NULL and c.pieces and n_threads > 1 and tid == 0:
                # Thread 0's block is the smaller (split_cut rounds down), so
                # it would wait at the barrier: it prefetches its columns of
                # the next batch's rows now, into its own cache, and thread 1
                # its own while thread 0 runs _step_rest.
                prefetch_next(c, X, pos + nb, k0, k1)
            blk += n_threads
        if n_threads > 1:
            barrier()
        if c.pieces:
            # The forward pass to the first layer's deltas, row by row: in two
            # halves, one a thread (the same halves on one thread).
            half = (nb + 1) // 2
            if n_threads > 1:
                c.costs[tid] = rest_rows(c, pos, nb, tid * half, nb if tid else half, Y)
                barrier()
            else:
                c.costs[0] = rest_rows(c, pos, nb, 0, half, Y)
                c.costs[1] = rest_rows(c, pos, nb, half, nb, Y)
        elif tid == 0:
            c.costs[0] = rest_rows(c, pos, nb, 0, nb, Y)
            c.costs[1] = 0
        if tid == 0:
            _step_rest(c, nb, Xb, c.costs[0] + c.costs[1])
        elif c.order != NULL:
            # Thread 1 would only wait here: it prefetches the next batch's
            # rows, so neither thread stalls on a burst of prefetches (about a
            # tenth of a W1 float64 step) in its own part of the step. In
            # pieces only its block's columns: all of a W3 batch's rows took
            # thread 1 twice as long as _step_rest took thread 0, and thread 0
            # gathered its columns from thread 1's cache at half the speed of
            # its own prefetched lines (docs/bench/w3-prefetch-ab.txt).
            if c.pieces:
                k0, k1 = block_columns(c, 1)
                prefetch_next(c, X, pos + nb, k0, k1)
            else:
                prefetch_next(c, X, pos + nb, 0, n0)
        if n_threads > 1:
            barrier()
        if c.status != 0:
            break
        if c.fused_w1:      # W^1 -= lr D^1^T X, block by block
            blk = tid
            while blk < c.blocks:
                k0, k1 = block_columns(c, blk)
                block_product_t(c, nb, <floating>(-c.o.lr), Ds[0], Xb + c.x_off[blk],
                                c.x_ld[blk], k0, k1, <floating>1, W1)
                blk += n_threads
        elif c.block_w1:    # dC/dW^1 and the optimizer's update, block by block
            blk = tid
            while blk < c.blocks:
                block_gradient(c, blk, nb, Xb, True)
                blk += n_threads
        if tid == 0 and n_threads == 1 and c.threads > 1:
            c.solo_steps += 1
        if c.interrupted:
            break
        pos += nb
    if tid == 0:
        c.pos = pos


cdef void block_gradient(const Train* c, int blk, Py_ssize_t nb, const floating* Xb,
                         bint update) noexcept nogil:
    """dC/dW^1 on the columns of block `blk`, and if `update` the optimizer's
    update of W^1 there (a proven step: written in one pass). Both paths of a
    split layer use these gemms, so they compute the same; with c.pieces the
    update follows each range of columns' gradient, while it is in cache
    (elementwise, so the same as after the whole block's)."""
    cdef int k0, k1, j, w, n0 = c.net.sizes[0], n1 = c.net.sizes[1]
    cdef floating** ap = <floating**>c.ptrs
    cdef floating* dW1 = ap[2 * c.net.L]
    cdef const floating* Xk = Xb + c.x_off[blk]
    k0, k1 = block_columns(c, blk)
    w = piece_columns(c, nb, sizeof(floating)) if c.pieces else k1 - k0
    j = k0
    while j < k1:
        block_product_t(c, nb, <floating>1, ap[4 * c.net.L], Xk + (j - k0), c.x_ld[blk], j,
                        min(j + w, k1), <floating>0, dW1)
        if update:
            update_rows(c.o, n1, min(w, k1 - j), n0, <floating*>c.net.W[0] + j, dW1 + j,
                        (<floating**>c.s1)[0] + j if c.s1 != NULL else <floating*>NULL,
                        (<floating**>c.s2)[0] + j if c.s2 != NULL else <floating*>NULL,
                        c.o.l2, c.t, True)    # (c.t counts this step already)
        j += w


cdef inline int piece_columns(const Train* c, Py_ssize_t nb, Py_ssize_t item) noexcept nogil:
    """The columns of block_product_t's pieces: as many whole cache lines
    as fit SPLIT_MAX_WORK with PIECE_ROWS rows (at least one line: at most
    PIECE_MAX_UNITS x PIECE_ROWS x 16 multiply-adds)."""
    cdef int per_line = <int>(64 // item)
    cdef int rows = <int>min(<Py_ssize_t>PIECE_ROWS, nb)
    return max(per_line, SPLIT_MAX_WORK // (c.net.sizes[1] * rows) // per_line * per_line)


cdef void block_product(const Train* c, Py_ssize_t nb, const floating* Xk, Py_ssize_t ldx,
                        int k0, int k1, floating* P) noexcept nogil:
    """P (nb x sizes[1]) = Xk W^1[:, k0:k1]^T, Xk the batch's columns k0:k1
    (rows ldx apart): a block's partial product, in pieces of at most
    SPLIT_MAX_WORK multiply-adds where c.pieces (PIECE_K columns and as many
    rows as fit; P summed over the pieces of a row range in order)."""
    cdef int n0 = c.net.sizes[0], n1 = c.net.sizes[1], kc, k, rows
    cdef const floating* W1 = <const floating*>c.net.W[0]
    cdef Py_ssize_t i, mi
    if not c.pieces:
        gemm(NoTrans, Trans, <int>nb, n1, k1 - k0, <floating>1, Xk, <int>ldx, W1 + k0, n0,
             <floating>0, P, n1)
        return
    kc = min(k1 - k0, PIECE_K)
    rows = max(1, SPLIT_MAX_WORK // (n1 * kc))
    i = 0
    while i < nb:
        mi = min(<Py_ssize_t>rows, nb - i)
        k = k0
        while k < k1:
            gemm(NoTrans, Trans, <int>mi, n1, min(kc, k1 - k), <floating>1,
                 Xk + i * ldx + (k - k0), <int>ldx, W1 + k, n0,
                 <floating>(0 if k == k0 else 1), P + i * n1, n1)
            k += kc
        i += mi


cdef void block_product_t(const Train* c, Py_ssize_t nb, floating alpha, const floating* D,
                          const floating* Xk, Py_ssize_t ldx, int k0, int k1, floating beta,
                          floating* C) noexcept nogil:
    """C[:, k0:k1] = alpha D^T Xk + beta C[:, k0:k1] (C of sizes[1] rows of
    sizes[0], D the batch's deltas of the first layer, Xk the batch's columns
    k0:k1, rows ldx apart): a block's weight gradient (alpha 1, beta 0) or
    its fused plain SGD update (alpha -lr, beta 1: never in pieces, see
    _step_rest). Where c.pieces, the caller (block_gradient) passes at most
    piece_columns columns, and the product goes in pieces of PIECE_ROWS
    rows of the batch, summed in order: at most SPLIT_MAX_WORK
    multiply-adds each."""
    cdef int n0 = c.net.sizes[0], n1 = c.net.sizes[1]
    cdef Py_ssize_t i, mi, rows = nb
    if c.pieces:
        rows = min(<Py_ssize_t>PIECE_ROWS, nb)
    i = 0
    while i < nb:
        mi = min(rows, nb - i)
        gemm(Trans, NoTrans, n1, k1 - k0, <int>mi, alpha, D + i * n1, n1, Xk + i * ldx, <int>ldx,
             beta if i == 0 else <floating>1, C + k0, n0)
        i += mi


cdef double rest_rows(const Train* c, Py_ssize_t pos, Py_ssize_t nb, Py_ssize_t r0, Py_ssize_t r1,
                      const floating* Y) noexcept nogil:
    """Rows [r0, r1) of the batch of nb rows at `pos`, from the first layer's
    product to its deltas: the rows' targets gathered, Z^1 from the blocks'
    partial products, the forward pass, the cost and output deltas (of the
    mean over nb rows) and the delta recurrence. Returns the rows' cost.
    Each row's values depend on that row alone, so two threads can each do
    half; before the step's checks, so it writes only the Workspace's
    scratch (a bad row of X gives NaN there, and status 3 after)."""
    cdef const Net* net = c.net
    cdef int L = net.L, l, n1 = net.sizes[1], m = net.sizes[net.L], n_in, n_out
    cdef floating** ap = <floating**>c.ptrs
    cdef floating** zp = ap + L
    cdef floating** Ds = ap + 4 * L
    cdef floating* Yb
    cdef floating* Z1 = zp[0] + r0 * n1
    cdef const floating* P0 = <floating*>c.P + r0 * n1
    cdef const floating* P1 = <floating*>c.P + c.p_stride + r0 * n1
    cdef const floating* b1 = <const floating*>net.b[0]
    cdef Py_ssize_t i, j, n = r1 - r0
    cdef double cost
    if n <= 0:
        return 0
    if c.order != NULL:
        Yb = <floating*>c.Yb
        for i in range(r0, r1):
            memcpy(Yb + i * m, Y + c.order[pos + i] * m, m * sizeof(floating))
        for i in range(pos + nb + r0, min(pos + nb + r1, c.last)):
            prefetch(<const char*>(Y + c.order[i] * m))
    else:
        Yb = <floating*>(Y + pos * m)
    if c.blocks == 2:
        for i in range(n):
            for j in range(n1):
                Z1[i * n1 + j] = (b1[j] + P0[i * n1 + j]) + P1[i * n1 + j]
    activate(net.act[0], n, n1, Z1, ap[0] + r0 * n1)
    for l in range(1, L):
        n_in = net.sizes[l]
        n_out = net.sizes[l + 1]
        layer_forward(n, n_in, n_out, ap[l - 1] + r0 * n_in, <const floating*>net.W[l],
                      <const floating*>net.b[l], zp[l] + r0 * n_out)
        activate(net.act[l], n, n_out, zp[l] + r0 * n_out, ap[l] + r0 * n_out)
    cost = cost_and_delta(net.act[L - 1], net.cost, n, m, zp[L - 1] + r0 * m, ap[L - 1] + r0 * m,
                          Yb + r0 * m, Ds[L - 1] + r0 * m, <floating>(1.0 / nb))
    for l in range(L - 1, 0, -1):       # (layer_deltas on these rows)
        n_in = net.sizes[l]
        n_out = net.sizes[l + 1]
        gemm(NoTrans, NoTrans, <int>n, n_in, n_out, <floating>1, Ds[l] + r0 * n_out, n_out,
             <const floating*>net.W[l], n_in, <floating>0, Ds[l - 1] + r0 * n_in, n_in)
        times_derivative(net.act[l - 1], n * n_in, ap[l - 1] + r0 * n_in, Ds[l - 1] + r0 * n_in)
    return cost


cdef void _step_rest(Train* c, Py_ssize_t nb, floating* Xb, double cost) noexcept nogil:
    """Thread 0's part of one step after rest_rows (whose cost it is given):
    the checks, and the gradients and updates but, on a split layer's proven
    steps, the first layer's (left to the blocks' owners: `fused_w1`,
    `block_w1`)."""
    cdef const Net* net = c.net
    cdef const OptConf* o = c.o
    cdef int L = net.L, l, blk
    cdef int n_in, n_out
    cdef floating** ap = <floating**>c.ptrs
    cdef floating** dW = ap + 2 * L
    cdef floating** db = ap + 3 * L
    cdef floating** Ds = ap + 4 * L
    cdef floating** s1 = <floating**>c.s1
    cdef floating** s2 = <floating**>c.s2
    cdef floating* no_state = NULL
    cdef double* wbound = c.bounds + B_PARAM * L
    cdef double* bbound = c.bounds + B_PARAM * L + L
    cdef double* grad_w = c.bounds + B_GRAD * L
    cdef double* grad_b = c.bounds + B_GRAD * L + L
    cdef const floating* a_prev
    cdef Py_ssize_t j
    cdef double step_size = 0, x_bound = c.xb_bound[0], now
    cdef bint ok, fused_ok, proven
    c.fused_w1 = False
    c.block_w1 = False
    if c.blocks == 2:
        x_bound = nan_max(x_bound, c.xb_bound[1])
    if not _finite(x_bound):
        c.status = 3
        return
    if c.x_bound > x_bound:
        x_bound = c.x_bound
    if not _finite(cost):
        c.status = 1
        return

    fused_ok = False
    if c.plain_sgd:
        # Can W - lr * D^T A overflow?
        gradient_bounds(net, nb, Ds, ap, x_bound, c.bounds)
        fused_ok = True
        for l in range(L):
            if not (grad_w[l] < c.limit and grad_b[l] < c.limit
                    and c.decay * wbound[l] + o.lr * grad_w[l] < c.limit
                    and bbound[l] + o.lr * grad_b[l] < c.limit):
                fused_ok = False
        if fused_ok:
            for l in range(L):
                n_in = net.sizes[l]
                n_out = net.sizes[l + 1]
                if l > 0:       # W^1's update is done by the owners of its column blocks
                    gemm(Trans, NoTrans, n_out, n_in, <int>nb, <floating>(-o.lr), Ds[l], n_out,
                         ap[l - 1], n_in, <floating>1, <floating*>net.W[l], n_in)
                column_sums(nb, n_out, Ds[l], db[l])
                for j in range(n_out):
                    (<floating*>net.b[l])[j] -= <floating>o.lr * db[l][j]
                wbound[l] = c.decay * wbound[l] + o.lr * grad_w[l]
                bbound[l] = bbound[l] + o.lr * grad_b[l]
            # (in pieces, W^1's gradient then W - lr g, elementwise: one gemm
            # into W a piece of rows at a time would round differently from
            # the checked path)
            if c.pieces:
                c.block_w1 = True
            else:
                c.fused_w1 = True

    if not fused_ok:
        for l in range(L):
            n_in = net.sizes[l]
            n_out = net.sizes[l + 1]
            a_prev = Xb if l == 0 else ap[l - 1]
            if l > 0 or c.blocks == 1:      # (a split W^1's gradient: below, by blocks)
                gemm(Trans, NoTrans, n_out, n_in, <int>nb, <floating>1, Ds[l], n_out, a_prev,
                     n_in, <floating>0, dW[l], n_in)
            column_sums(nb, n_out, Ds[l], db[l])
        proven = False
        if c.tracked:
            if o.kind == ADAM:
                step_size = o.lr / (1 - pow(o.beta1, <double>(c.t + 1)))
            gradient_bounds(net, nb, Ds, ap, x_bound, c.bounds)
            proven = (_finite(<floating>step_size)
                      and next_bounds(o, L, c.bounds, step_size, <floating>o.eps, c.limit, False))
            if proven:
                next_bounds(o, L, c.bounds, step_size, <floating>o.eps, c.limit, True)
            else:
                c.tracked = False     # checked steps from here to the end of this call,
                c.solo = True         # which thread 0 runs alone: thread 1 can leave
        if proven and c.blocks == 2:
            c.block_w1 = True         # W^1 by the blocks' owners, after the barrier
        elif c.blocks == 2:
            for blk in range(c.blocks):
                block_gradient(c, blk, nb, Xb, False)
        if not proven:
            c.checked_steps += 1
            ok = True
            for l in range(L):
                ok = ok and update_array(o, <Py_ssize_t>net.sizes[l + 1] * net.sizes[l],
                                         <floating*>net.W[l], dW[l],
                                         s1[l] if s1 != NULL else no_state,
                                         s2[l] if s2 != NULL else no_state, o.l2, c.t + 1, False)
                ok = ok and update_array(o, net.sizes[l + 1], <floating*>net.b[l], db[l],
                                         s1[L + l] if s1 != NULL else no_state,
                                         s2[L + l] if s2 != NULL else no_state, 0.0, c.t + 1,
                                         False)
            if not ok:
                c.status = 2
                return
        for l in range(L):
            if l > 0 or not c.block_w1:
                update_array(o, <Py_ssize_t>net.sizes[l + 1] * net.sizes[l], <floating*>net.W[l],
                             dW[l], s1[l] if s1 != NULL else no_state,
                             s2[l] if s2 != NULL else no_state, o.l2, c.t + 1, True)
            update_array(o, net.sizes[l + 1], <floating*>net.b[l], db[l],
                         s1[L + l] if s1 != NULL else no_state,
                         s2[L + l] if s2 != NULL else no_state, 0.0, c.t + 1, True)
        if c.plain_sgd:
            exact_bounds(net, c.bounds, s1, s2)
    c.t += 1
    c.steps_done += 1
    c.loss_sum += cost
    if c.steps_done % SIGNAL_EVERY == 0:
        c.interrupted = _poll_signals() != 0
        if c.threads > 1 and not c.solo and active_trains() > 1:
            c.solo = True
    if c.threads > 1 and not c.solo:
        c.adapt.win_steps += 1
        now = wtime()
        if c.adapt.win_steps == WINDOW or (
                _adapt_force == 0
                and c.adapt.win_time + (now - c.win_start) >= WINDOW_SECONDS):
            _adapt(c, now)
