"""Machine facts for the benchmark record: CPU, cores, BLAS libraries and their
thread counts (threadpoolctl), versions, and the environment variables that
change BLAS behaviour. Nothing here changes any setting; it only reads them."""
from __future__ import annotations

import importlib
import os
import platform
import sys

# Environment variables that change how BLAS / OpenMP behave. They are reported
# as found and never modified (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, set on some
# machines, can slow a current NumPy down).
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
            "OPENBLAS_VERBOSE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "GOTO_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
            "OMP_PROC_BIND", "OMP_PLACES", "KMP_AFFINITY")

PACKAGES = ("numpy", "scipy", "fastbp", "torch", "sklearn", "threadpoolctl",
            "matplotlib", "Cython")


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores():
    """Cores this process may run on (affinity), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average():
    try:
        return list(os.getloadavg())
    except (AttributeError, OSError):
        return None


def versions():
    """Version of Python and of each package, or None when it is not installed."""
    out = {"python": sys.version.split()[0], "implementation": platform.python_implementation()}
    for name in PACKAGES:
        try:
            mod = importlib.import_module(name)
        except Exception:          # not installed, or broken: either way not usable
            out[name] = None
        else:
            out[name] = getattr(mod, "__version__", "unknown")
    return out


def _owner(filepath):
    """Which package a shared library was loaded from, by its path."""
    p = filepath.replace("\\", "/")
    for marker, owner in (("/numpy.libs/", "numpy"), ("/numpy/", "numpy"),
                          ("/scipy.libs/", "scipy"), ("/scipy/", "scipy"),
                          ("/torch/lib/", "torch"), ("/torch.libs/", "torch"),
                          ("/scikit_learn.libs/", "sklearn"), ("/sklearn/", "sklearn"),
                          ("/fastbp.libs/", "fastbp")):
        if marker in p:
            return owner
    return "system"


def blas_libraries():
    """threadpoolctl's view of every loaded BLAS / OpenMP library, each with the
    package it belongs to. fastbp calls BLAS through scipy.linalg.cython_blas,
    so it uses the library listed under "scipy"."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"note": "threadpoolctl is not installed: BLAS libraries and thread counts unknown"}
    libs = []
    for info in threadpool_info():
        libs.append({"package": _owner(info.get("filepath", "")),
                     "user_api": info.get("user_api"), "internal_api": info.get("internal_api"),
                     "prefix": info.get("prefix"), "version": info.get("version"),
                     "num_threads": info.get("num_threads"),
                     "architecture": info.get("architecture"),
                     "threading_layer": info.get("threading_layer"),
                     "filepath": info.get("filepath")})
    return {"libraries": libs}


def torch_facts():
    try:
        import torch
    except Exception:
        return None
    facts = {"num_threads": torch.get_num_threads(),
             "num_interop_threads": torch.get_num_interop_threads()}
    try:
        config = torch.__config__.show()
        facts["config"] = [line.strip() for line in config.splitlines()
                           if any(k in line for k in ("BLAS", "MKL", "LAPACK", "OpenMP",
                                                      "CPU capability", "oneDNN", "MKLDNN"))]
        facts["parallel_info"] = torch.__config__.parallel_info().splitlines()
    except Exception as exc:   # informational only
        facts["config_error"] = repr(exc)
    return facts


def memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def fastbp_source():
    """Where fastbp was imported from and, for a git checkout, its commit and
    whether the work tree had local changes (read-only git commands)."""
    import subprocess
    try:
        import fastbp
    except Exception:
        return None
    path = os.path.dirname(os.path.abspath(fastbp.__file__))
    out = {"path": path}
    try:
        commit = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", path, "status", "--porcelain", "--", "."],
                                    capture_output=True, text=True, timeout=10)
            out["git_modified"] = [l[3:] for l in status.stdout.splitlines()]
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def facts():
    """Everything above, as one JSON-ready dict. Call it after the peers are
    imported so that their BLAS libraries are loaded and listed."""
    return {
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_bytes": memory_bytes(),
        "load_average": load_average(),
        "versions": versions(),
        "fastbp_source": fastbp_source(),
        "blas": blas_libraries(),
        "torch": torch_facts(),
        "environment": {k: os.environ.get(k) for k in ENV_VARS},
        "openblas_environment": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
    }
