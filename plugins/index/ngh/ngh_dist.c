/*
 * ngh_dist.c - distance kernels for the ngh vector index: dot product and
 * squared Euclidean distance over float32 vectors, in three versions
 * (scalar, SSE, AVX2+FMA) chosen once per index at open time with
 * __builtin_cpu_supports.  Vectors may be unaligned (they point straight
 * into page images), so every load is an unaligned one.
 */
#include <string.h>
#include "ngh.h"

#if defined(__x86_64__) || defined(__i386__)
#  define NGH_X86 1
#  include <immintrin.h>
#endif

static inline float ldf(const void *p, size_t i)
{
    float f;
    memcpy(&f, (const char *)p + 4 * i, 4);
    return f;
}

static float dot_scalar(const void *a, const void *b, size_t n)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += ldf(a, i) * ldf(b, i);
        s1 += ldf(a, i + 1) * ldf(b, i + 1);
        s2 += ldf(a, i + 2) * ldf(b, i + 2);
        s3 += ldf(a, i + 3) * ldf(b, i + 3);
    }
    for (; i < n; i++) s0 += ldf(a, i) * ldf(b, i);
    return (s0 + s1) + (s2 + s3);
}

static float l2_scalar(const void *a, const void *b, size_t n)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float d0 = ldf(a, i) - ldf(b, i), d1 = ldf(a, i + 1) - ldf(b, i + 1);
        float d2 = ldf(a, i + 2) - ldf(b, i + 2), d3 = ldf(a, i + 3) - ldf(b, i + 3);
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; i < n; i++) {
        float d = ldf(a, i) - ldf(b, i);
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

#ifdef NGH_X86
__attribute__((target("sse2"))) static inline float hsum128(__m128 v)
{
    __m128 sh = _mm_shuffle_ps(v, v, _MM_SHUFFLE(2, 3, 0, 1));
    __m128 s = _mm_add_ps(v, sh);
    sh = _mm_movehl_ps(sh, s);
    s = _mm_add_ss(s, sh);
    return _mm_cvtss_f32(s);
}

__attribute__((target("sse2"))) static float dot_sse(const void *a, const void *b, size_t n)
{
    const float *x = a, *y = b;
    __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = _mm_add_ps(s0, _mm_mul_ps(_mm_loadu_ps(x + i), _mm_loadu_ps(y + i)));
        s1 = _mm_add_ps(s1, _mm_mul_ps(_mm_loadu_ps(x + i + 4), _mm_loadu_ps(y + i + 4)));
    }
    float s = hsum128(_mm_add_ps(s0, s1));
    for (; i < n; i++) s += ldf(a, i) * ldf(b, i);
    return s;
}

__attribute__((target("sse2"))) static float l2_sse(const void *a, const void *b, size_t n)
{
    const float *x = a, *y = b;
    __m128 s0 = _mm_setzero_ps(), s1 = _mm_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128 d0 = _mm_sub_ps(_mm_loadu_ps(x + i), _mm_loadu_ps(y + i));
        __m128 d1 = _mm_sub_ps(_mm_loadu_ps(x + i + 4), _mm_loadu_ps(y + i + 4));
        s0 = _mm_add_ps(s0, _mm_mul_ps(d0, d0));
        s1 = _mm_add_ps(s1, _mm_mul_ps(d1, d1));
    }
    float s = hsum128(_mm_add_ps(s0, s1));
    for (; i < n; i++) {
        float d = ldf(a, i) - ldf(b, i);
        s += d * d;
    }
    return s;
}

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);
    __m128 sh = _mm_shuffle_ps(s, s, _MM_SHUFFLE(2, 3, 0, 1));
    s = _mm_add_ps(s, sh);
    sh = _mm_movehl_ps(sh, s);
    s = _mm_add_ss(s, sh);
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const void *a, const void *b, size_t n)
{
    const float *x = a, *y = b;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += ldf(a, i) * ldf(b, i);
    return s;
}

__attribute__((target("avx2,fma"))) static float l2_avx2(const void *a, const void *b, size_t n)
{
    const float *x = a, *y = b;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) {
        float d = ldf(a, i) - ldf(b, i);
        s += d * d;
    }
    return s;
}
#endif

void ngh_dist_pick(ngh_kernels *k, int level)
{
    k->dot = dot_scalar;
    k->l2 = l2_scalar;
    k->name = "scalar";
#ifdef NGH_X86
    __builtin_cpu_init();
    if (level != 0 && __builtin_cpu_supports("sse2")) {
        k->dot = dot_sse;
        k->l2 = l2_sse;
        k->name = "sse";
    }
    if (level > 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        k->dot = dot_avx2;
        k->l2 = l2_avx2;
        k->name = "avx2";
    }
#else
    (void)level;
#endif
}
