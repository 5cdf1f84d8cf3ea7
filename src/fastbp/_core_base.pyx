# The compiled core for the architecture's baseline instruction set (SSE2 on
# x86-64); see _core_impl.pxi and _core.py.
include "_core_impl.pxi"
