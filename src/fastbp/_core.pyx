# The compiled core: the kernels (forward pass, delta recurrence, gradient
# accumulation, fused training epochs, optimizer updates), float32 and float64
# through fused types. Their source is _core_impl.pxi, which this module
# includes for the architecture's baseline instruction set (SSE2 on x86-64)
# and _core_avx2.pyx includes again, compiled with -mavx2 (x86-64, GCC or
# Clang; setup.py). The two compute bit-identical results: no FMA contraction,
# no reassociation, only wider elementwise loops.
#
# At import this module switches to the fastest build the machine runs: on a
# CPU and operating system with AVX2, its public names become those of
# _core_avx2. FASTBP_CORE=base in the environment keeps the baseline build
# (FASTBP_CORE=avx2 asks for AVX2 and fails on a machine without it). BUILD
# names the build in use. The API is described in _core.pyi.
include "_core_impl.pxi"

import os as _os
import sys as _sys
import types as _types

from fastbp import _cpu as _cpu_features

BUILD = "base"


def _faster_build():
    """The _core_avx2 module when it should replace this one, else None."""
    wanted = _os.environ.get("FASTBP_CORE", "").strip().lower()
    if wanted not in ("", "base", "avx2"):
        raise ImportError(f"FASTBP_CORE must be 'base' or 'avx2'; got {wanted!r}")
    if wanted == "avx2" and not _cpu_features.has_avx2():
        raise ImportError("FASTBP_CORE=avx2, but this CPU or operating system cannot run AVX2 code")
    if wanted == "base" or not _cpu_features.has_avx2():
        return None
    try:
        from fastbp import _core_avx2
    except ImportError:         # built without it (not x86-64, or MSVC)
        if wanted == "avx2":
            raise
        return None
    return _core_avx2


def _public(module):
    return [name for name in dir(module) if not name.startswith("_")
            and not isinstance(getattr(module, name), _types.ModuleType)]


_faster = _faster_build()
if _faster is not None:
    # Python code reaches the kernels only through these module attributes; the
    # baseline's own C-level code (never called once replaced) keeps its types.
    globals().update({name: getattr(_faster, name) for name in _public(_faster)})
    _handoff_ns = _faster._handoff_ns       # private, but it reads the build's own training state
    BUILD = "avx2"
__all__ = sorted(set(_public(_faster if _faster is not None else _sys.modules[__name__]))
                 | {"BUILD"})
