// CBLAS: OpenBLAS's C interface (cblas_sgemm and friends) and its thread control, plus two
// static inline helpers of the numeric core (not API).
#include <cblas.h>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

// Sets the calling thread's floating-point unit to flush denormal results to zero and to treat
// denormal inputs as zero (x86: MXCSR FTZ and DAZ bits; arm64: FPCR FZ). Adam's moments of
// parameters whose gradient is always zero (MNIST's empty border pixels) decay into the denormal
// range, where every operation on them costs many times a normal one.
static inline void vae_flush_denormals_to_zero(void) {
#if defined(__x86_64__)
    _mm_setcsr(_mm_getcsr() | 0x8040);
#elif defined(__aarch64__)
    unsigned long fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr | (1UL << 24)));
#endif
}

// Eight floats, imported into Swift as SIMD8<Float>.
typedef float vae_float8 __attribute__((ext_vector_type(8)));

// Square roots of eight floats, lane by lane, each correctly rounded (IEEE 754), as vector
// instructions: Swift's Float.squareRoot() on Linux is libm's sqrtf, which Clang emits as a scalar
// sqrtss followed by a branch to sqrtf (to set errno) for each lane.
static inline vae_float8 vae_sqrt8(vae_float8 x) { return __builtin_elementwise_sqrt(x); }
