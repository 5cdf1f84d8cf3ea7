"""The compiled core, in the fastest build this machine runs.

The Cython source, _core_impl.pxi, is compiled twice: as ``_core_base`` for
the architecture's baseline instruction set, and on x86-64 also as
``_core_avx2``, whose elementwise loops (activations, costs, optimizer
updates) use 256-bit vectors. The two compute bit-identical results (no FMA
contraction, no reassociation); the AVX2 build is used when the CPU and the
operating system support AVX2.

``FASTBP_CORE=base`` in the environment forces the baseline build
(``FASTBP_CORE=avx2`` asks for AVX2 and fails on a machine without it).
`BUILD` names the build in use. The API is described in _core.pyi.
"""
import os as _os
import types as _types

from fastbp import _cpu

_wanted = _os.environ.get("FASTBP_CORE", "").strip().lower()
if _wanted not in ("", "base", "avx2"):
    raise ImportError(f"FASTBP_CORE must be 'base' or 'avx2'; got {_wanted!r}")
if _wanted == "avx2" and not _cpu.has_avx2():
    raise ImportError("FASTBP_CORE=avx2, but this CPU or operating system cannot run AVX2 code")

_impl = None
if _wanted != "base" and _cpu.has_avx2():
    try:
        from fastbp import _core_avx2 as _impl
    except ImportError:         # built without it (not x86-64, or MSVC)
        if _wanted == "avx2":
            raise
if _impl is None:
    from fastbp import _core_base as _impl

BUILD = _impl.__name__.rsplit("_", 1)[-1]     # "base" or "avx2"

# Every public name the build defines (its imported modules aside), so that a
# def added to the .pxi reaches fastbp._core, and stubtest sees it.
__all__ = ["BUILD"] + [_name for _name in dir(_impl) if not _name.startswith("_")
                       and not isinstance(getattr(_impl, _name), _types.ModuleType)]
globals().update({_name: getattr(_impl, _name) for _name in __all__[1:]})
