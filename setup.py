"""Build the compiled core.

Compiler directives are explicit: the kernels run with bounds, wraparound and
initialisation checks off because the Python layer validates every input once.
``FASTBP_DEBUG=1`` builds the same code with all the checks back on (and no
optimisation), for hunting out-of-bounds bugs under a debugger or valgrind.

The core's kernels (_core_impl.pxi) are built twice when the target is x86-64
and the compiler GCC or Clang: ``fastbp._core`` from _core.pyx for the baseline
instruction set, and ``fastbp._core_avx2`` with ``-mavx2``; fastbp._core
switches to the AVX2 build at import time where the CPU runs it. Elsewhere
(other architectures, MSVC) only ``fastbp._core`` is built.
``FASTBP_AVX2=0`` skips the AVX2 build.

The core is compiled with OpenMP (``-fopenmp``) for the training loop's
second thread, except on macOS (Apple's Clang has no OpenMP runtime), on
Windows unless ``FASTBP_OPENMP=1`` (``/openmp``), and with ``FASTBP_OPENMP=0``.
Without it the same loop runs on one thread and computes the same results.
"""
import os
import sys
import sysconfig

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTBP_DEBUG", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}

if sys.platform == "win32":
    compile_args = ["/Od", "/Zi"] if DEBUG else ["/O2"]
else:
    # -fno-math-errno lets sqrt compile to one vector instruction (the core
    # never reads errno), and -fno-trapping-math lets loops with a select
    # (sigmoid, the exp clamp) be if-converted (the core never reads
    # floating-point exception flags), so those loops vectorize. Neither
    # changes a computed value: no -ffast-math and no -march=native, so
    # results are IEEE and wheels run on any CPU of the arch.
    compile_args = (["-O0", "-g"] if DEBUG
                    else ["-O3", "-fno-math-errno", "-fno-trapping-math", "-g0"])

# On Windows only when asked for: /openmp links vcomp140.dll, which Python
# does not ship (the Visual C++ redistributable does).
_openmp_env = os.environ.get("FASTBP_OPENMP", "").strip()
if _openmp_env:
    OPENMP = _openmp_env != "0" and sys.platform != "darwin"
else:
    OPENMP = sys.platform not in ("darwin", "win32")
if not OPENMP:
    openmp_compile, openmp_link = [], []
elif sys.platform == "win32":
    openmp_compile, openmp_link = ["/openmp"], []
else:
    openmp_compile, openmp_link = ["-fopenmp"], ["-fopenmp"]

common = dict(
    include_dirs=[numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=compile_args,
)


def _targets_x86_64():
    """True when the extensions are built for x86-64 (not for arm64 or
    universal2, as cibuildwheel may cross-compile on an x86-64 macOS host)."""
    if "arm64" in os.environ.get("ARCHFLAGS", ""):
        return False
    plat = os.environ.get("_PYTHON_HOST_PLATFORM") or sysconfig.get_platform()
    return plat.endswith(("x86_64", "amd64"))


# -mavx2 only: without -mfma the compiler cannot contract a * b + c, so this
# build computes exactly what the baseline build computes.
AVX2 = (sys.platform != "win32" and _targets_x86_64()
        and os.environ.get("FASTBP_AVX2", "1") not in ("", "0"))

extensions = [
    Extension("fastbp._blas", ["src/fastbp/_blas.pyx"], **common),
    Extension("fastbp._cpu", ["src/fastbp/_cpu.pyx"], **common),
    Extension("fastbp._core", ["src/fastbp/_core.pyx"], extra_link_args=openmp_link,
              **{**common, "extra_compile_args": compile_args + openmp_compile}),
]
if AVX2:
    extensions.append(Extension(
        "fastbp._core_avx2", ["src/fastbp/_core_avx2.pyx"], extra_link_args=openmp_link,
        **{**common, "extra_compile_args": compile_args + openmp_compile + ["-mavx2"]}))

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        include_path=["src"],
        force=DEBUG,
    ),
)
