/*
 * ngh_dist.c - distance kernels for the ngh vector index: dot product and
 * squared Euclidean distance over float32 vectors, in four versions
 * (scalar, SSE, AVX2+FMA, AVX-512F) chosen once per index at open time with
 * __builtin_cpu_supports.  Vectors may be unaligned (they point straight
 * into page images), so every load is an unaligned one.
 *
 * The "q" kernels measure a float32 query against a stored vector of the
 * index's precision: float32, IEEE half (float16; F16C converts 8 lanes at
 * a time) or int8 with a per-vector scale s (the vector is s * c, c in
 * -127..127; the int8 lanes are widened to float32 and multiplied in, so the
 * query is never quantized and the error is the stored vector's alone).
 */
#include <math.h>
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

/* Four accumulators over 32 floats a step: with two, the FMA latency bound
 * the loop (784-d: 40 -> 30 ns a distance); at 128-d both take ~5 ns. */
__attribute__((target("avx2,fma"))) static float dot_avx2(const void *a, const void *b, size_t n)
{
    const float *x = a, *y = b;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += ldf(a, i) * ldf(b, i);
    return s;
}

/* Squared L2 distance, base added: base + sum (a[i] - b[i])^2.  With
 * check, the partial sum is looked at every 128 floats and +inf returned
 * once base plus it is above bound (l2_below; a search rejects most of the
 * nodes it measures, a 784-d build three in four, most of them in the
 * vector's last third).  The sums run in the same order either way, so a
 * distance that is not cut off is bit for bit the one l2_avx2 gives. */
__attribute__((target("avx2,fma"), always_inline)) static inline float l2_avx2_sum(const void *a, const void *b,
                                                                                 size_t n, float base, float bound,
                                                                                 int check)
{
    const float *x = a, *y = b;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0, next = 128;
    for (; i + 32 <= n; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8));
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16));
        __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
        if (check && i + 32 == next && next < n) {
            next += 128;
            if (base + hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) > bound)
                return INFINITY;
        }
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
    }
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) {
        float d = ldf(a, i) - ldf(b, i);
        s += d * d;
    }
    return base + s;
}

__attribute__((target("avx2,fma"))) static float l2_avx2(const void *a, const void *b, size_t n)
{
    return l2_avx2_sum(a, b, n, 0.0f, INFINITY, 0);
}

/* 16 lanes, four accumulators; the tail (n % 16) through a masked load, so
 * no scalar loop.  On this machine's Zen 4 (512-bit operations issued as
 * two 256-bit halves) still 10-20% faster than AVX2 a distance (128-d
 * 10.7 -> 9.4 ns, 784-d 43 -> 34 ns, data in L1): half the instructions. */
__attribute__((target("avx512f"))) static float dot_avx512(const void *a, const void *b, size_t n)
{
    const float *x = a, *y = b;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), s0);
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* As l2_avx2_sum: base + the squared distance, +inf once base plus the
 * partial sum, looked at every 128 floats, is above bound (check); the
 * sums run in the same order either way, so a distance not cut off is bit
 * for bit l2_avx512's. */
__attribute__((target("avx512f"), always_inline)) static inline float l2_avx512_sum(const void *a, const void *b,
                                                                                   size_t n, float base,
                                                                                   float bound, int check)
{
    const float *x = a, *y = b;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0, next = 128;
    for (; i + 64 <= n; i += 64) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16));
        __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32));
        __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
        s2 = _mm512_fmadd_ps(d2, d2, s2);
        s3 = _mm512_fmadd_ps(d3, d3, s3);
        if (check && i + 64 == next && next < n) {
            next += 128;
            if (base + _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3))) > bound)
                return INFINITY;
        }
    }
    for (; i + 16 <= n; i += 16) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i));
        s0 = _mm512_fmadd_ps(d0, d0, s0);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 d0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        s1 = _mm512_fmadd_ps(d0, d0, s1);
    }
    return base + _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

__attribute__((target("avx512f"))) static float l2_avx512(const void *a, const void *b, size_t n)
{
    return l2_avx512_sum(a, b, n, 0.0f, INFINITY, 0);
}

__attribute__((target("avx512f"))) static float l2_below_avx512(const void *a, const void *b, size_t n,
                                                                 float base, float bound)
{
    return l2_avx512_sum(a, b, n, base, bound, 1);
}
#endif


/* ---- float16 and int8 ---------------------------------------------------- */

uint16_t ngh_f2h(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7FFFFFFFu;
    /* beyond the half range (>= 65520 rounds to infinity): the largest
     * finite half, so a stored vector never holds an infinity */
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7BFFu);
    if (ax < 0x38800000u) { /* below 2^-14: subnormal or zero, in units of 2^-24 */
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint32_t)(a * 16777216.0f + 0.5f));
    }
    uint32_t h = ((((ax >> 23) - 112u) << 10) | ((ax & 0x7FFFFFu) >> 13)), rem = ax & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* to nearest, ties to even */
    return (uint16_t)(sign | h);
}

float ngh_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, x;
    if (e == 0) {
        float f = (float)m * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    x = e == 31 ? sign | 0x7F800000u | (m << 13) : sign | ((e + 112u) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

void ngh_quantize(int prec, const float *v, size_t n, void *out, float *scale)
{
    *scale = 1.0f;
    if (prec == NGH_F16) {
        uint8_t *o = out;
        for (size_t i = 0; i < n; i++) {
            uint16_t h = ngh_f2h(v[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        return;
    }
    /* int8: symmetric, one scale per vector (max |v| maps to 127) */
    int8_t *c = out;
    float amax = 0;
    for (size_t i = 0; i < n; i++) {
        float a = v[i] < 0 ? -v[i] : v[i];
        if (a > amax) amax = a;
    }
    if (!(amax > 0)) {
        memset(c, 0, n);
        *scale = 0;
        return;
    }
    float inv = 127.0f / amax;
    for (size_t i = 0; i < n; i++) {
        float x = v[i] * inv;
        x = x < -127.0f ? -127.0f : x > 127.0f ? 127.0f : x;
        c[i] = (int8_t)(x < 0 ? x - 0.5f : x + 0.5f);
    }
    *scale = amax / 127.0f;
}

void ngh_dequantize(int prec, const void *in, size_t n, float scale, float *out)
{
    const uint8_t *b = in;
    if (prec == NGH_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, b + 2 * i, 2);
            out[i] = ngh_h2f(h);
        }
    } else if (prec == NGH_I8) {
        for (size_t i = 0; i < n; i++) out[i] = scale * (float)(int8_t)b[i];
    } else {
        memcpy(out, in, n * 4);
    }
}

static inline float ldh(const void *p, size_t i)
{
    uint16_t h;
    memcpy(&h, (const char *)p + 2 * i, 2);
    return ngh_h2f(h);
}
static inline float ldb(const void *p, size_t i) { return (float)((const int8_t *)p)[i]; }

/* Scalar "q" kernels: the query is read with memcpy too (it may point into a
 * page image while inserting). */
#define NGH_QSCALAR(name, LD, MUL)                                                   \
    static float name##_dot(const float *q, const void *v, size_t n, float s)         \
    {                                                                                \
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                        \
        size_t i = 0;                                                                \
        (void)s;                                                                     \
        for (; i + 4 <= n; i += 4) {                                                 \
            s0 += ldf(q, i) * LD(v, i);                                              \
            s1 += ldf(q, i + 1) * LD(v, i + 1);                                      \
            s2 += ldf(q, i + 2) * LD(v, i + 2);                                      \
            s3 += ldf(q, i + 3) * LD(v, i + 3);                                      \
        }                                                                            \
        for (; i < n; i++) s0 += ldf(q, i) * LD(v, i);                               \
        return MUL(((s0 + s1) + (s2 + s3)), s);                                      \
    }                                                                                \
    static float name##_l2(const float *q, const void *v, size_t n, float s)          \
    {                                                                                \
        float s0 = 0, s1 = 0;                                                        \
        size_t i = 0;                                                                \
        (void)s;                                                                     \
        for (; i + 2 <= n; i += 2) {                                                 \
            float d0 = ldf(q, i) - MUL(LD(v, i), s), d1 = ldf(q, i + 1) - MUL(LD(v, i + 1), s); \
            s0 += d0 * d0;                                                           \
            s1 += d1 * d1;                                                           \
        }                                                                            \
        for (; i < n; i++) {                                                         \
            float d = ldf(q, i) - MUL(LD(v, i), s);                                  \
            s0 += d * d;                                                             \
        }                                                                            \
        return s0 + s1;                                                              \
    }
#define NGH_NOSCALE(x, s) (x)
#define NGH_SCALE(x, s)   ((x) * (s))
NGH_QSCALAR(qf32_scalar, ldf, NGH_NOSCALE)
NGH_QSCALAR(qf16_scalar, ldh, NGH_NOSCALE)
NGH_QSCALAR(qi8_scalar, ldb, NGH_SCALE)

#ifdef NGH_X86
__attribute__((target("sse2"))) static float qf32_sse_dot(const float *q, const void *v, size_t n, float s)
{
    (void)s;
    return dot_sse(q, v, n);
}
__attribute__((target("sse2"))) static float qf32_sse_l2(const float *q, const void *v, size_t n, float s)
{
    (void)s;
    return l2_sse(q, v, n);
}
__attribute__((target("avx2,fma"))) static float qf32_avx2_dot(const float *q, const void *v, size_t n, float s)
{
    (void)s;
    return dot_avx2(q, v, n);
}
__attribute__((target("avx2,fma"))) static float l2_below_avx2(const void *a, const void *b, size_t n,
                                                               float base, float bound)
{
    return l2_avx2_sum(a, b, n, base, bound, 1);
}

__attribute__((target("avx2,fma"))) static float qf32_avx2_l2(const float *q, const void *v, size_t n, float s)
{
    (void)s;
    return l2_avx2(q, v, n);
}

__attribute__((target("avx512f"))) static float qf32_avx512_dot(const float *q, const void *v, size_t n, float s)
{
    (void)s;
    return dot_avx512(q, v, n);
}
__attribute__((target("avx512f"))) static float qf32_avx512_l2(const float *q, const void *v, size_t n, float s)
{
    (void)s;
    return l2_avx512(q, v, n);
}

/* float16: 8 halves widened per F16C conversion */
__attribute__((target("avx2,fma,f16c"))) static float qf16_avx2_dot(const float *q, const void *v, size_t n, float s)
{
    const uint8_t *h = v;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    (void)s;
    for (; i + 16 <= n; i += 16) {
        __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 2 * i)));
        __m256 a1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 2 * i + 16)));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), a0, s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), a1, s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 2 * i))), s0);
    float r = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) r += ldf(q, i) * ldh(v, i);
    return r;
}

__attribute__((target("avx2,fma,f16c"))) static float qf16_avx2_l2(const float *q, const void *v, size_t n, float s)
{
    const uint8_t *h = v;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    (void)s;
    for (; i + 16 <= n; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 2 * i))));
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(q + i + 8),
                                  _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 2 * i + 16))));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 2 * i))));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
    }
    float r = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) {
        float d = ldf(q, i) - ldh(v, i);
        r += d * d;
    }
    return r;
}

/* int8: 16 codes per load, sign-extended to two 8-lane float vectors */
__attribute__((target("avx2,fma"))) static float qi8_avx2_dot(const float *q, const void *v, size_t n, float s)
{
    const uint8_t *c = v;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(c + i));
        __m256 c0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
        __m256 c1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), c0, s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), c1, s1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 c0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(c + i))));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), c0, s0);
    }
    float r = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) r += ldf(q, i) * ldb(v, i);
    return r * s;
}

__attribute__((target("avx2,fma"))) static float qi8_avx2_l2(const float *q, const void *v, size_t n, float s)
{
    const uint8_t *c = v;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), vs = _mm256_set1_ps(s);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(c + i));
        __m256 c0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
        __m256 c1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
        __m256 d0 = _mm256_fnmadd_ps(vs, c0, _mm256_loadu_ps(q + i));
        __m256 d1 = _mm256_fnmadd_ps(vs, c1, _mm256_loadu_ps(q + i + 8));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 c0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(c + i))));
        __m256 d0 = _mm256_fnmadd_ps(vs, c0, _mm256_loadu_ps(q + i));
        s0 = _mm256_fmadd_ps(d0, d0, s0);
    }
    float r = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) {
        float d = ldf(q, i) - s * ldb(v, i);
        r += d * d;
    }
    return r;
}
#endif

void ngh_dist_pick(ngh_kernels *k, int level, int precision)
{
    k->dot = dot_scalar;
    k->l2 = l2_scalar;
    k->qdot = precision == NGH_F16 ? qf16_scalar_dot : precision == NGH_I8 ? qi8_scalar_dot : qf32_scalar_dot;
    k->ql2 = precision == NGH_F16 ? qf16_scalar_l2 : precision == NGH_I8 ? qi8_scalar_l2 : qf32_scalar_l2;
    k->l2_below = NULL;
    k->name = "scalar";
#ifdef NGH_X86
    __builtin_cpu_init();
    /* SSE: float32 only (the quantized kernels stay scalar below AVX2) */
    if (level != 0 && __builtin_cpu_supports("sse2")) {
        k->dot = dot_sse;
        k->l2 = l2_sse;
        if (precision == NGH_F32) {
            k->qdot = qf32_sse_dot;
            k->ql2 = qf32_sse_l2;
        }
        k->name = "sse";
    }
    if (level > 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        k->dot = dot_avx2;
        k->l2 = l2_avx2;
        k->l2_below = l2_below_avx2;
        k->name = "avx2";
        if (precision == NGH_F32) {
            k->qdot = qf32_avx2_dot;
            k->ql2 = qf32_avx2_l2;
        } else if (precision == NGH_I8) {
            k->qdot = qi8_avx2_dot;
            k->ql2 = qi8_avx2_l2;
        } else if (__builtin_cpu_supports("f16c")) {
            k->qdot = qf16_avx2_dot;
            k->ql2 = qf16_avx2_l2;
        } else {
            k->name = "avx2 (float16 scalar)";
        }
    }
    /* AVX-512F: float32 only (the quantized kernels stay AVX2) */
    if (level > 2 && __builtin_cpu_supports("avx512f")) {
        k->dot = dot_avx512;
        k->l2 = l2_avx512;
        k->l2_below = l2_below_avx512;
        if (precision == NGH_F32) {
            k->qdot = qf32_avx512_dot;
            k->ql2 = qf32_avx512_l2;
        }
        k->name = precision == NGH_F32 ? "avx512" : "avx512 (quantized: avx2)";
    }
#else
    (void)level;
#endif
}
