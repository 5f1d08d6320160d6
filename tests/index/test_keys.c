/*
 * tostore/keys.h: the memcomparable key encoding.  Every property is
 * checked against a reference comparator on the decoded values:
 *     sign(memcmp order of encodings) == sign(value order)
 * for hand-picked edge cases (every pair) and for random values and random
 * tuples (100K pairs each), plus round trips, malformed input, descending
 * components and prefix bounds.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "tsupport.h"

/* Check assertions report every pass through a pipe when tests fork;
 * inside hot loops only failures are reported. */
#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

/* ---- random numbers (deterministic; TS_TEST_SEED overrides) ---------- */

static uint64_t rng_s = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n) { return rnd() % n; }

static void seed_rng(void)
{
    const char *s = getenv("TS_TEST_SEED");
    rng_s = s && *s ? strtoull(s, NULL, 0) : 0x9E3779B97F4A7C15ull;
}

/* ---- reference values ------------------------------------------------ */

typedef struct kval {
    int     tag;      /* TS_KEY_* */
    int64_t i;
    double  d;
    uint8_t b[16];    /* text / blob payload */
    size_t  len;
} kval;

static int sgn(int x) { return (x > 0) - (x < 0); }

static int dbl_cmp(double a, double b)
{
    int an = a != a, bn = b != b;
    if (an || bn) return an - bn; /* NaN after everything, all NaNs equal */
    return (a > b) - (a < b);     /* -0.0 == 0.0 */
}

static int val_cmp(const kval *a, const kval *b)
{
    if (a->tag != b->tag) return a->tag < b->tag ? -1 : 1;
    switch (a->tag) {
    case TS_KEY_INT: return (a->i > b->i) - (a->i < b->i);
    case TS_KEY_DOUBLE: return dbl_cmp(a->d, b->d);
    case TS_KEY_TEXT: case TS_KEY_BLOB: {
        size_t n = a->len < b->len ? a->len : b->len;
        int x = n ? memcmp(a->b, b->b, n) : 0;
        return x ? sgn(x) : (a->len > b->len) - (a->len < b->len);
    }
    default: return 0; /* null, false, true: the tag says it all */
    }
}

static size_t enc(const kval *v, uint8_t *dst, size_t cap, size_t off)
{
    switch (v->tag) {
    case TS_KEY_NULL: return ts_key_null(dst, cap, off);
    case TS_KEY_FALSE: return ts_key_bool(dst, cap, off, 0);
    case TS_KEY_TRUE: return ts_key_bool(dst, cap, off, 7); /* any non-zero is true */
    case TS_KEY_INT: return ts_key_int(dst, cap, off, v->i);
    case TS_KEY_DOUBLE: return ts_key_double(dst, cap, off, v->d);
    case TS_KEY_TEXT: return ts_key_text(dst, cap, off, (const char *)v->b, v->len);
    default: return ts_key_blob(dst, cap, off, v->b, v->len);
    }
}

/* memcmp order of two encodings, the shorter first on a common prefix. */
static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int x = n ? memcmp(a, b, n) : 0;
    return x ? sgn(x) : (al > bl) - (al < bl);
}

/* Bytes drawn mostly from the troublesome ones. */
static uint8_t rnd_byte(void)
{
    static const uint8_t pick[] = { 0x00, 0x00, 0x01, 0xFE, 0xFF, 0xFF, 'a', 'b' };
    return below(4) ? pick[below(sizeof pick)] : (uint8_t)rnd();
}

static double rnd_double(void)
{
    static const double special[] = { 0.0, -0.0, 1.0, -1.0, INFINITY, -INFINITY, NAN, DBL_MIN,
                                       -DBL_MIN, DBL_MAX, -DBL_MAX, 4.9406564584124654e-324,
                                       -4.9406564584124654e-324, 0.5, -0.5, 2.2250738585072009e-308 };
    uint64_t bits;
    double d;
    switch (below(4)) {
    case 0: return special[below(sizeof special / sizeof *special)];
    case 1: return (double)(int64_t)(rnd() % 2001) - 1000.0; /* ties with small ints */
    default:
        bits = rnd(); /* any bit pattern: subnormals, NaN payloads, both signs */
        memcpy(&d, &bits, sizeof d);
        return d;
    }
}

static int64_t rnd_int(void)
{
    static const int64_t special[] = { INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX,
                                       -256, 255, 256, (int64_t)1 << 32, -((int64_t)1 << 32) };
    switch (below(4)) {
    case 0: return special[below(sizeof special / sizeof *special)];
    case 1: return (int64_t)below(21) - 10;
    default: return (int64_t)rnd();
    }
}

static void rnd_val(kval *v, int tag)
{
    memset(v, 0, sizeof *v);
    static const int tags[] = { TS_KEY_NULL, TS_KEY_FALSE, TS_KEY_TRUE, TS_KEY_INT,
                                TS_KEY_DOUBLE, TS_KEY_TEXT, TS_KEY_BLOB };
    v->tag = tag ? tag : tags[below(7)];
    if (v->tag == TS_KEY_INT) v->i = rnd_int();
    else if (v->tag == TS_KEY_DOUBLE) v->d = rnd_double();
    else if (v->tag == TS_KEY_TEXT || v->tag == TS_KEY_BLOB) {
        v->len = below(7);
        for (size_t k = 0; k < v->len; k++) v->b[k] = rnd_byte();
    }
}

static void describe(const kval *v, char *out, size_t n)
{
    switch (v->tag) {
    case TS_KEY_INT: snprintf(out, n, "int %lld", (long long)v->i); break;
    case TS_KEY_DOUBLE: snprintf(out, n, "double %a", v->d); break;
    case TS_KEY_TEXT: case TS_KEY_BLOB: {
        int o = snprintf(out, n, "%s[", v->tag == TS_KEY_TEXT ? "text" : "blob");
        for (size_t k = 0; k < v->len && o + 4 < (int)n; k++) o += snprintf(out + o, n - o, "%02x", v->b[k]);
        snprintf(out + o, n - o, "]");
        break;
    }
    default: snprintf(out, n, "tag 0x%02x", v->tag);
    }
}

/* Check one pair of single values. */
static void check_pair(const kval *a, const kval *b)
{
    uint8_t ea[64], eb[64];
    size_t la = enc(a, ea, sizeof ea, 0), lb = enc(b, eb, sizeof eb, 0);
    int want = sgn(val_cmp(a, b)), got = key_cmp(ea, la, eb, lb);
    if (want != got) {
        char da[96], db[96];
        describe(a, da, sizeof da);
        describe(b, db, sizeof db);
        ck_abort_msg("order of %s vs %s: values %d, encodings %d", da, db, want, got);
    }
}

/* Decode one value and compare it with the original. */
static const char *desc(const kval *v)
{
    static char buf[96];
    describe(v, buf, sizeof buf);
    return buf;
}

static void check_decoded(const kval *v, const ts_key_item *it)
{
#define dv desc(v)
    REQUIRE(it->tag == v->tag, "tag of %s decoded as 0x%02x", dv, it->tag);
    switch (v->tag) {
    case TS_KEY_FALSE: case TS_KEY_TRUE: REQUIRE((it->i) == (v->tag == TS_KEY_TRUE), "it->i != v->tag == TS_KEY_TRUE"); break;
    case TS_KEY_INT: REQUIRE(it->i == v->i, "%s decoded as %lld", dv, (long long)it->i); break;
    case TS_KEY_DOUBLE:
        REQUIRE(dbl_cmp(it->d, v->d) == 0, "%s decoded as %a", dv, it->d);
        if (v->d == 0.0) REQUIRE(!signbit(it->d), "-0.0 decodes as +0.0");
        break;
    case TS_KEY_TEXT: case TS_KEY_BLOB: {
        uint8_t out[16];
        REQUIRE(it->len == v->len, "%s decoded with length %zu", dv, it->len);
        ts_key_unescape(it, out);
        REQUIRE(!v->len || memcmp(out, v->b, v->len) == 0, "%s payload", dv);
        break;
    }
    default: break;
    }
#undef dv
}

/* ---- single values -------------------------------------------------- */

START_TEST(int_order)
{
    static const int64_t edge[] = { INT64_MIN, INT64_MIN + 1, -4294967296LL, -65536, -256, -255, -2, -1,
                                    0, 1, 2, 127, 128, 255, 256, 65535, 4294967296LL, INT64_MAX - 1,
                                    INT64_MAX };
    size_t n = sizeof edge / sizeof *edge;
    kval a = { .tag = TS_KEY_INT }, b = { .tag = TS_KEY_INT };
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            a.i = edge[i];
            b.i = edge[j];
            check_pair(&a, &b);
        }
    for (int k = 0; k < 100000; k++) {
        a.i = rnd_int();
        /* neighbours too (wrapping at the ends) */
        b.i = below(8) ? rnd_int() : (int64_t)((uint64_t)a.i + below(3) - 1);
        check_pair(&a, &b);
    }
    /* Fixed width: 1 tag + 8 bytes, sign bit flipped, big endian. */
    uint8_t e[9];
    ck_assert_uint_eq(ts_key_int(e, sizeof e, 0, -1), 9);
    static const uint8_t minus_one[9] = { 0x20, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
    ck_assert_mem_eq(e, minus_one, 9);
}
END_TEST

START_TEST(double_order)
{
    double nan_neg = -NAN, nan_payload;
    uint64_t nb = 0x7ff0000000000001ull; /* a signalling NaN with a payload */
    memcpy(&nan_payload, &nb, sizeof nan_payload);
    const double edge[] = { -INFINITY, -DBL_MAX, -1e300, -2.0, -1.0, -DBL_MIN,
                            -2.2250738585072009e-308 /* largest subnormal */,
                            -4.9406564584124654e-324 /* smallest subnormal */, -0.0, 0.0,
                            4.9406564584124654e-324, 2.2250738585072009e-308, DBL_MIN, 1.0,
                            1.0000000000000002, 2.0, 1e300, DBL_MAX, INFINITY, NAN, nan_neg,
                            nan_payload };
    size_t n = sizeof edge / sizeof *edge;
    kval a = { .tag = TS_KEY_DOUBLE }, b = { .tag = TS_KEY_DOUBLE };
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            a.d = edge[i];
            b.d = edge[j];
            check_pair(&a, &b);
        }
    for (int k = 0; k < 100000; k++) {
        a.d = rnd_double();
        b.d = rnd_double();
        check_pair(&a, &b);
    }
    /* -0.0 and 0.0 encode identically; every NaN encodes identically and
     * after +inf. */
    uint8_t e1[9], e2[9];
    ts_key_double(e1, 9, 0, -0.0);
    ts_key_double(e2, 9, 0, 0.0);
    ck_assert_mem_eq(e1, e2, 9);
    ts_key_double(e1, 9, 0, NAN);
    ts_key_double(e2, 9, 0, nan_neg);
    ck_assert_mem_eq(e1, e2, 9);
    ts_key_double(e2, 9, 0, nan_payload);
    ck_assert_mem_eq(e1, e2, 9);
    ts_key_double(e2, 9, 0, INFINITY);
    ck_assert_int_gt(memcmp(e1, e2, 9), 0);
}
END_TEST

START_TEST(bytes_order)
{
    /* Hand-picked: embedded zeros and 0xFF, prefixes. */
    static const struct { const char *s; size_t n; } edge[] = {
        { "", 0 }, { "\0", 1 }, { "\0\0", 2 }, { "\0\xff", 2 }, { "\x01", 1 }, { "a", 1 },
        { "a\0", 2 }, { "a\0\0", 3 }, { "a\0b", 3 }, { "a\x01", 2 }, { "ab", 2 }, { "b", 1 },
        { "\xfe", 1 }, { "\xff", 1 }, { "\xff\0", 2 }, { "\xff\xff", 2 }, { "\xff\xff\xff", 3 },
    };
    size_t n = sizeof edge / sizeof *edge;
    for (int tag = TS_KEY_TEXT; tag <= TS_KEY_BLOB; tag += TS_KEY_BLOB - TS_KEY_TEXT) {
        kval a = { .tag = tag }, b = { .tag = tag };
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                a.len = edge[i].n;
                memcpy(a.b, edge[i].s, a.len);
                b.len = edge[j].n;
                memcpy(b.b, edge[j].s, b.len);
                check_pair(&a, &b);
            }
        for (int k = 0; k < 100000; k++) {
            rnd_val(&a, tag);
            if (below(3)) rnd_val(&b, tag);
            else { /* b extends or shortens a: prefix relations */
                b = a;
                if (b.len && below(2)) b.len--;
                else if (b.len < sizeof b.b) b.b[b.len++] = rnd_byte();
            }
            check_pair(&a, &b);
        }
    }
    /* The documented examples, spelled out. */
    uint8_t e1[16], e2[16], e3[16];
    size_t l1 = ts_key_text(e1, 16, 0, "a", 1), l2 = ts_key_text(e2, 16, 0, "a\0", 2),
           l3 = ts_key_text(e3, 16, 0, "ab", 2);
    ck_assert_int_lt(key_cmp(e1, l1, e2, l2), 0);
    ck_assert_int_lt(key_cmp(e2, l2, e3, l3), 0);
    static const uint8_t want[] = { 0x40, 'a', 0x00, 0xFF, 0x00, 0x00 };
    ck_assert_uint_eq(l2, sizeof want);
    ck_assert_mem_eq(e2, want, sizeof want);
}
END_TEST

START_TEST(bool_null_and_tags)
{
    /* One value of every type, in the documented order. */
    kval v[8];
    memset(v, 0, sizeof v);
    v[0].tag = TS_KEY_NULL;
    v[1].tag = TS_KEY_FALSE;
    v[2].tag = TS_KEY_TRUE;
    v[3].tag = TS_KEY_INT; v[3].i = INT64_MAX;
    v[4].tag = TS_KEY_DOUBLE; v[4].d = -INFINITY;
    v[5].tag = TS_KEY_DOUBLE; v[5].d = NAN;
    v[6].tag = TS_KEY_TEXT; v[6].len = 2; memcpy(v[6].b, "\xff\xff", 2);
    v[7].tag = TS_KEY_BLOB; v[7].len = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) {
            check_pair(&v[i], &v[j]);
            if (i < j && !(i == 4 && j == 5) && val_cmp(&v[i], &v[j]) >= 0)
                ck_abort_msg("reference comparator: %d >= %d", i, j);
        }
    /* Any non-zero int is true; encodings are one byte. */
    uint8_t e[2];
    ck_assert_uint_eq(ts_key_bool(e, 2, 0, -5), 1);
    ck_assert_uint_eq(e[0], TS_KEY_TRUE);
    ck_assert_uint_eq(ts_key_null(e, 2, 1), 2);
    ck_assert_uint_eq(e[1], TS_KEY_NULL);
    /* Mixed random types: order by tag first. */
    for (int k = 0; k < 100000; k++) {
        kval a, b;
        rnd_val(&a, 0);
        rnd_val(&b, 0);
        check_pair(&a, &b);
    }
}
END_TEST

/* ---- tuples ------------------------------------------------------------ */

typedef struct ktuple { kval v[4]; int n; } ktuple;

static int tuple_cmp(const ktuple *a, const ktuple *b)
{
    for (int i = 0; i < a->n && i < b->n; i++) {
        int x = val_cmp(&a->v[i], &b->v[i]);
        if (x) return sgn(x);
    }
    return (a->n > b->n) - (a->n < b->n);
}

static size_t tuple_enc(const ktuple *t, uint8_t *dst, size_t cap)
{
    size_t off = 0;
    for (int i = 0; i < t->n; i++) off = enc(&t->v[i], dst, cap, off);
    return off;
}

/* Small domains so that tuples often share leading components. */
static void rnd_tuple(ktuple *t)
{
    t->n = 1 + (int)below(4);
    for (int i = 0; i < t->n; i++) {
        kval *v = &t->v[i];
        rnd_val(v, 0);
        if (below(2)) {
            if (v->tag == TS_KEY_INT) v->i = (int64_t)below(3) - 1;
            if (v->tag == TS_KEY_DOUBLE) v->d = (double)below(3) - 1.0;
            if (v->tag == TS_KEY_TEXT || v->tag == TS_KEY_BLOB) v->len = below(3);
        }
    }
}

static void check_roundtrip(const ktuple *t, const uint8_t *key, size_t klen)
{
    size_t off = 0;
    ts_key_item it;
    for (int i = 0; i < t->n; i++) {
        REQUIRE(ts_key_next(key, klen, &off, &it) == 1, "component %d does not decode", i);
        check_decoded(&t->v[i], &it);
    }
    REQUIRE((off) == (klen), "off != klen");
    REQUIRE(ts_key_next(key, klen, &off, &it) == 0, "trailing bytes after the tuple");
    REQUIRE((off) == (klen), "off != klen");
}

START_TEST(tuple_order_and_roundtrip)
{
    uint8_t ea[256], eb[256];
    for (int k = 0; k < 100000; k++) {
        ktuple a, b;
        rnd_tuple(&a);
        if (below(3)) {
            rnd_tuple(&b);
        } else { /* share a prefix of a */
            b = a;
            int keep = (int)below((uint64_t)a.n + 1);
            b.n = keep + (int)below((uint64_t)(4 - keep) + 1);
            for (int i = keep; i < b.n; i++) rnd_val(&b.v[i], 0);
            if (b.n == 0) b.n = 1;
        }
        /* Measure first (cap 0 writes nothing), then encode. */
        size_t la = tuple_enc(&a, NULL, 0), lb = tuple_enc(&b, NULL, 0);
        REQUIRE((la) <= (sizeof ea), "la > sizeof ea");
        REQUIRE(tuple_enc(&a, ea, sizeof ea) == la, "measured length differs");
        REQUIRE(tuple_enc(&b, eb, sizeof eb) == lb, "measured length differs");
        int want = tuple_cmp(&a, &b), got = key_cmp(ea, la, eb, lb);
        if (want != got) {
            char d0[96], d1[96];
            describe(&a.v[0], d0, sizeof d0);
            describe(&b.v[0], d1, sizeof d1);
            ck_abort_msg("tuple order (%d components, first %s) vs (%d, first %s): values %d, "
                         "encodings %d", a.n, d0, b.n, d1, want, got);
        }
        check_roundtrip(&a, ea, la);
        check_roundtrip(&b, eb, lb);
    }
}
END_TEST

START_TEST(writers_respect_cap)
{
    /* A writer never writes at or past cap but still returns the full length. */
    uint8_t buf[32];
    for (size_t cap = 0; cap < 20; cap++) {
        memset(buf, 0xAA, sizeof buf);
        size_t off = ts_key_text(buf, cap, 0, "a\0b", 3);
        off = ts_key_int(buf, cap, off, 5);
        ck_assert_uint_eq(off, 7 + 9);
        for (size_t i = cap; i < sizeof buf; i++) ck_assert_uint_eq(buf[i], 0xAA);
    }
}
END_TEST

/* ---- malformed input ---------------------------------------------------- */

/* Decode everything; returns the last status. Never reads past klen (the
 * copy is exact-size on the heap so ASan sees any overrun). */
static int decode_all(const uint8_t *src, size_t klen)
{
    uint8_t *key = malloc(klen ? klen : 1);
    memcpy(key, src, klen);
    size_t off = 0, prev = 0;
    ts_key_item it;
    int rc;
    while ((rc = ts_key_next(key, klen, &off, &it)) == 1) {
        REQUIRE((off) > (prev), "off <= prev");
        REQUIRE((off) <= (klen), "off > klen");
        if (it.tag == TS_KEY_TEXT || it.tag == TS_KEY_BLOB) {
            REQUIRE(it.bytes >= key && it.bytes + it.raw_len <= key + klen, "it.bytes >= key && it.bytes + it.raw_len <= key + klen");
            REQUIRE((it.len) <= (it.raw_len), "it.len > it.raw_len");
            uint8_t *out = malloc(it.len ? it.len : 1);
            ts_key_unescape(&it, out);
            free(out);
        }
        prev = off;
    }
    REQUIRE((off) == (prev), "off != prev"); /* a failure leaves *off where it was */
    free(key);
    return rc;
}

START_TEST(malformed)
{
    static const struct { const char *b; size_t n; } bad[] = {
        { "\x01", 1 },                      /* unknown tag */
        { "\x20\x80\x00", 3 },              /* integer cut short */
        { "\x30\x80\x00\x00\x00\x00\x00\x00", 8 },
        { "\x40", 1 },                      /* text without terminator */
        { "\x40" "a", 2 },
        { "\x40" "a\x00", 3 },              /* half a terminator */
        { "\x40" "a\x00\x01", 4 },          /* 00 followed by neither 00 nor FF */
        { "\x50\x00\xff", 3 },              /* escaped zero, then the end */
        { "\x05\x11\xff", 3 },              /* valid values, then junk */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        REQUIRE(decode_all((const uint8_t *)bad[i].b, bad[i].n) == -1, "case %zu", i);
    REQUIRE(decode_all((const uint8_t *)"", 0) == 0, "empty key");

    /* Every truncation of valid tuples: valid exactly at value boundaries. */
    uint8_t key[256];
    for (int k = 0; k < 5000; k++) {
        ktuple t;
        rnd_tuple(&t);
        size_t bounds[5], nb = 0, off = 0;
        bounds[nb++] = 0;
        for (int i = 0; i < t.n; i++) bounds[nb++] = off = enc(&t.v[i], key, sizeof key, off);
        for (size_t cut = 0; cut <= off; cut++) {
            int at_bound = 0;
            for (size_t i = 0; i < nb; i++) at_bound |= bounds[i] == cut;
            REQUIRE(decode_all(key, cut) == (at_bound ? 0 : -1), "cut at %zu of %zu", cut, off);
        }
    }
    /* Random garbage: any status, but no crash and no overread. */
    for (int k = 0; k < 100000; k++) {
        size_t n = below(24);
        for (size_t i = 0; i < n; i++) key[i] = below(2) ? rnd_byte() : (uint8_t)(0x05 + below(0x50));
        int rc = decode_all(key, n);
        REQUIRE(rc == 0 || rc == -1, "rc == 0 || rc == -1");
    }
}
END_TEST

/* ---- descending components and prefix bounds ------------------------------ */

START_TEST(invert_descending)
{
    /* (a asc, b desc): the first component ascending, then the second descending. */
    uint8_t ea[128], eb[128];
    for (int k = 0; k < 100000; k++) {
        kval a0, a1, b0, b1;
        rnd_val(&a0, 0);
        rnd_val(&a1, 0);
        if (below(2)) b0 = a0; else rnd_val(&b0, 0);
        rnd_val(&b1, 0);
        size_t ma = enc(&a0, ea, sizeof ea, 0), la = enc(&a1, ea, sizeof ea, ma);
        size_t mb = enc(&b0, eb, sizeof eb, 0), lb = enc(&b1, eb, sizeof eb, mb);
        ts_key_invert(ea, ma, la);
        ts_key_invert(eb, mb, lb);
        int want = val_cmp(&a0, &b0);
        want = want ? sgn(want) : -sgn(val_cmp(&a1, &b1));
        REQUIRE(key_cmp(ea, la, eb, lb) == want, "(asc, desc) order: want %d", want);
        /* inverting again restores the ascending encoding */
        ts_key_invert(ea, ma, la);
        ktuple t = { { a0, a1 }, 2 };
        check_roundtrip(&t, ea, la);
    }
    /* A descending key alone: "b" < "ab" < "a\0" < "a" < "" */
    static const struct { const char *s; size_t n; } order[] = { { "b", 1 }, { "ab", 2 }, { "a\0", 2 },
                                                                 { "a", 1 }, { "", 0 } };
    for (size_t i = 0; i + 1 < 5; i++) {
        size_t l1 = ts_key_text(ea, sizeof ea, 0, order[i].s, order[i].n);
        size_t l2 = ts_key_text(eb, sizeof eb, 0, order[i + 1].s, order[i + 1].n);
        ts_key_invert(ea, 0, l1);
        ts_key_invert(eb, 0, l2);
        REQUIRE(key_cmp(ea, l1, eb, l2) < 0, "descending text %zu", i);
    }
}
END_TEST

START_TEST(prefix_end)
{
    uint8_t pfx[64], end[64], key[128];
    for (int k = 0; k < 20000; k++) {
        /* The prefix: a few whole values, sometimes the start of a text. */
        ktuple t;
        rnd_tuple(&t);
        size_t n = tuple_enc(&t, pfx, sizeof pfx);
        if (below(2) && n + 3 < sizeof pfx) {
            pfx[n++] = TS_KEY_TEXT;
            pfx[n++] = rnd_byte();
        }
        size_t en = ts_key_prefix_end(pfx, n, end);
        REQUIRE((en) <= (n), "en > n");
        if (en) {
            REQUIRE(key_cmp(end, en, pfx, n) > 0, "end not above the prefix");
            /* nothing strictly between: end is the prefix up to its last
             * non-0xFF byte, that byte plus one */
            REQUIRE(memcmp(end, pfx, en - 1) == 0, "bytes differ");
            REQUIRE((end[en - 1]) == ((uint8_t)(pfx[en - 1] + 1)), "end[en - 1] != (uint8_t)(pfx[en - 1] + 1)");
            for (size_t i = en; i < n; i++) REQUIRE((pfx[i]) == (0xFF), "pfx[i] != 0xFF");
        }
        /* Keys with the prefix sort in [prefix, end); others outside. */
        for (int j = 0; j < 20; j++) {
            size_t kl;
            if (below(2)) {
                memcpy(key, pfx, n);
                kl = n;
                size_t extra = below(8);
                for (size_t i = 0; i < extra; i++) key[kl++] = rnd_byte();
            } else {
                ktuple u;
                rnd_tuple(&u);
                kl = tuple_enc(&u, key, sizeof key);
            }
            int has = kl >= n && memcmp(key, pfx, n) == 0;
            int in = key_cmp(key, kl, pfx, n) >= 0 && (!en || key_cmp(key, kl, end, en) < 0);
            REQUIRE((has) == (in), "has != in");
        }
    }
    /* All 0xFF: no bound. */
    memset(pfx, 0xFF, 4);
    REQUIRE(ts_key_prefix_end(pfx, 4, end) == 0, "all 0xFF has no end");
    REQUIRE(ts_key_prefix_end(pfx, 0, end) == 0, "empty prefix has no end");
    /* "ab" text prefix (unterminated) -> tag 'a' 'c' */
    size_t n = ts_key_text(pfx, sizeof pfx, 0, "ab", 2) - 2;
    REQUIRE(ts_key_prefix_end(pfx, n, end) == 3, "text prefix end");
    REQUIRE((end[2]) == ('c'), "end[2] != 'c'");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("keys");
    tcase_add_checked_fixture(tc, seed_rng, NULL);
    tcase_add_test(tc, int_order);
    tcase_add_test(tc, double_order);
    tcase_add_test(tc, bytes_order);
    tcase_add_test(tc, bool_null_and_tags);
    tcase_add_test(tc, tuple_order_and_roundtrip);
    tcase_add_test(tc, writers_respect_cap);
    tcase_add_test(tc, malformed);
    tcase_add_test(tc, invert_descending);
    tcase_add_test(tc, prefix_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
