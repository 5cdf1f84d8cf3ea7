# The compiled core built with -mavx2 (x86-64 only; setup.py); see
# _core_impl.pxi and _core.py, which imports it only on CPUs with AVX2.
include "_core_impl.pxi"
