"""Type stubs for ``fastbp._cpu`` (built from _cpu.pyx)."""

def has_avx2() -> bool:
    """True if this CPU and operating system can run AVX2 code."""
