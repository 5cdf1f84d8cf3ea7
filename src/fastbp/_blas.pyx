# Thin row-major wrappers over scipy.linalg.cython_blas (see _blas.pxd).
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm, dgemv, sgemv


cdef void gemm(BlasTrans ta, BlasTrans tb, int m, int n, int k, floating alpha,
               const floating* a, int lda, const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major C (m x n) = alpha * op(A) @ op(B) + beta * C; op(A) is m x k."""
    cdef char fa = <char>ta
    cdef char fb = <char>tb
    # Column-major C^T (n x m) = op(B)^T (n x k) @ op(A)^T (k x m).
    if floating is double:
        dgemm(&fb, &fa, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)
    else:
        sgemm(&fb, &fa, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda,
              &beta, c, &ldc)


cdef void gemv(BlasTrans ta, int m, int n, floating alpha, const floating* a, int lda,
               const floating* x, floating beta, floating* y) noexcept nogil:
    """Row-major y = alpha * op(A) @ x + beta * y for A of m x n (row stride lda)."""
    # A row-major m x n array is a column-major n x m one: flip the transpose.
    cdef char f = c'n' if ta == Trans else c't'
    cdef int one = 1
    if floating is double:
        dgemv(&f, &n, &m, &alpha, <double*>a, &lda, <double*>x, &one, &beta, y, &one)
    else:
        sgemv(&f, &n, &m, &alpha, <float*>a, &lda, <float*>x, &one, &beta, y, &one)


# Test twins: compare the wrappers with NumPy from Python. Not used by the kernels.
def _gemm_twin(str ta, str tb, floating[:, ::1] a, floating[:, ::1] b,
               floating[:, ::1] c, floating alpha, floating beta):
    cdef BlasTrans ea = Trans if ta == "t" else NoTrans
    cdef BlasTrans eb = Trans if tb == "t" else NoTrans
    cdef int m = c.shape[0], n = c.shape[1]
    cdef int k = a.shape[0] if ea == Trans else a.shape[1]
    if (a.shape[1] if ea == Trans else a.shape[0]) != m:
        raise ValueError("op(a) rows != c rows")
    if (b.shape[0] if eb == NoTrans else b.shape[1]) != k:
        raise ValueError("op(b) rows != op(a) columns")
    if (b.shape[1] if eb == NoTrans else b.shape[0]) != n:
        raise ValueError("op(b) columns != c columns")
    gemm(ea, eb, m, n, k, alpha, &a[0, 0], <int>a.shape[1], &b[0, 0],
         <int>b.shape[1], beta, &c[0, 0], <int>c.shape[1])


def _gemv_twin(str ta, floating[:, ::1] a, floating[::1] x, floating[::1] y,
               floating alpha, floating beta):
    cdef BlasTrans ea = Trans if ta == "t" else NoTrans
    cdef int m = a.shape[0], n = a.shape[1]
    if x.shape[0] != (m if ea == Trans else n) or y.shape[0] != (n if ea == Trans else m):
        raise ValueError("gemv shapes do not match")
    gemv(ea, m, n, alpha, &a[0, 0], n, &x[0], beta, &y[0])
