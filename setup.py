"""Build the compiled core.

Compiler directives are explicit: the kernels run with bounds, wraparound and
initialisation checks off because the Python layer validates every input once.
``FASTBP_DEBUG=1`` builds the same code with all the checks back on (and no
optimisation), for hunting out-of-bounds bugs under a debugger or valgrind.
"""
import os
import sys

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

common = dict(
    include_dirs=[numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=compile_args,
)

extensions = [
    Extension("fastbp._blas", ["src/fastbp/_blas.pyx"], **common),
    Extension("fastbp._core", ["src/fastbp/_core.pyx"], **common),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        include_path=["src"],
        force=DEBUG,
    ),
)
