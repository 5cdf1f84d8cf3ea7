# What the CPU (and the operating system) can run, for picking a build of the
# compiled core in _core.pyx.

cdef extern from *:
    """
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #include <cpuid.h>
    static int fastbp_has_avx2(void) {
        unsigned int a, b, c, d, lo, hi;
        if (!__get_cpuid(1, &a, &b, &c, &d))
            return 0;
        /* AVX (bit 28) and OSXSAVE (bit 27): the OS saves the YMM registers... */
        if ((c & (1u << 28)) == 0 || (c & (1u << 27)) == 0)
            return 0;
        /* ...which XCR0 confirms (bits 1 and 2: SSE and AVX state). */
        __asm__ volatile ("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        if ((lo & 6u) != 6u)
            return 0;
        if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
            return 0;
        return (b & (1u << 5)) != 0;   /* AVX2 */
    }
    #else
    static int fastbp_has_avx2(void) { return 0; }
    #endif
    """
    int fastbp_has_avx2() nogil


def has_avx2():
    """True if this CPU and operating system can run AVX2 code."""
    return bool(fastbp_has_avx2())
