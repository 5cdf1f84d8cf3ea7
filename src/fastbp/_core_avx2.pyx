# The compiled core built with -mavx2 (x86-64 only; setup.py): the same
# _core_impl.pxi as fastbp._core, whose public names become this module's on
# CPUs with AVX2 (see _core.pyx).
include "_core_impl.pxi"
