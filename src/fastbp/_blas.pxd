# The BLAS routines the kernels use, over cython.floating, in row-major terms.
#
# scipy.linalg.cython_blas exposes Fortran (column-major) BLAS. A C-ordered
# m x n array is a column-major n x m array, so every row-major product
# C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T by
# swapping the operands. No other module calls BLAS directly.
from cython cimport floating

cpdef enum BlasTrans:
    NoTrans = 110  # ord('n')
    Trans = 116    # ord('t')

cdef void gemm(BlasTrans ta, BlasTrans tb, int m, int n, int k, floating alpha,
               const floating* a, int lda, const floating* b, int ldb,
               floating beta, floating* c, int ldc) noexcept nogil

cdef void gemv(BlasTrans ta, int m, int n, floating alpha, const floating* a, int lda,
               const floating* x, floating beta, floating* y) noexcept nogil
