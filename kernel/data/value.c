/* Field values: JSON rules per type, coercion, keys.  See data/value.h. */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/index.h>
#include <tostore/keys.h>
#include "data/value.h"

#define BAD(...)  tsenv_error(env, TS_ERR_VALIDATION, __VA_ARGS__)
#define BIG(...)  tsenv_error(env, TS_ERR_RESOURCE, __VA_ARGS__)
#define NOMEM()   tsenv_error(env, TS_ERR_NOMEM, "out of memory")

/* ---- small helpers ------------------------------------------------------ */

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a real";
    case JSON_TRUE:
    case JSON_FALSE:   return "a boolean";
    case JSON_NULL:    return "null";
    }
    return "?";
}

void tsd_value_clear(tsd_value *v)
{
    if (!v) return;
    free(v->mem);
    memset(v, 0, sizeof *v);
}

/* A double that is an integer within int64: 0 and *out set, else -1. */
static int real_to_int64(double d, int64_t *out)
{
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return -1; /* NaN too */
    if ((double)(int64_t)d != d) return -1;
    *out = (int64_t)d;
    return 0;
}

/* Round to nearest, ties to even, for |y| < 2^52 (no libm needed). */
static long round_even(double y)
{
    double a = y < 0 ? -y : y;
    long q = (long)(a + 0.5);
    if ((double)q - a == 0.5 && (q & 1)) q--;
    return y < 0 ? -q : q;
}

/* ---- UTF-8 ------------------------------------------------------------- */

int64_t tsd_utf8_count(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    int64_t count = 0;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) { p++; count++; continue; }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return -1;
        if ((size_t)(end - p) < len) return -1;
        for (size_t k = 1; k < len; k++) {
            if ((p[k] & 0xC0) != 0x80) return -1;
            cp = cp << 6 | (p[k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
        p += len;
        count++;
    }
    return count;
}

/* ---- base64 ------------------------------------------------------------ */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A table: on the random characters of a binary vector, five compares a
 * character mispredicted often enough to be 2% of a vector insert (4.4 us
 * a 128-d value; the table 0.4 us).  -1: not a base64 character. */
static const signed char B64VAL[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static int b64val(unsigned char c) { return B64VAL[c]; }

size_t tsd_base64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void tsd_base64_encode(const void *src, size_t n, char *out)
{
    const uint8_t *p = src;
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64chars[w >> 18];
        out[o++] = b64chars[(w >> 12) & 63];
        out[o++] = b64chars[(w >> 6) & 63];
        out[o++] = b64chars[w & 63];
    }
    if (n - i == 1) {
        uint32_t w = (uint32_t)p[i] << 16;
        out[o++] = b64chars[w >> 18];
        out[o++] = b64chars[(w >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64chars[w >> 18];
        out[o++] = b64chars[(w >> 12) & 63];
        out[o++] = b64chars[(w >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = 0;
}

int tsd_base64_decode(const char *s, size_t n, uint8_t *out, size_t *len_out)
{
    if (n % 4 == 0 && n > 0 && s[n - 1] == '=') {
        n--;
        if (s[n - 1] == '=') n--;
    }
    if (n % 4 == 1) return -1;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        int a = b64val((unsigned char)s[i]), b = b64val((unsigned char)s[i + 1]);
        int c = b64val((unsigned char)s[i + 2]), d = b64val((unsigned char)s[i + 3]);
        if ((a | b | c | d) < 0) return -1;
        uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(w >> 16);
        out[o++] = (uint8_t)(w >> 8);
        out[o++] = (uint8_t)w;
    }
    size_t rest = n - i;
    if (rest >= 2) {
        int a = b64val((unsigned char)s[i]), b = b64val((unsigned char)s[i + 1]);
        int c = rest == 3 ? b64val((unsigned char)s[i + 2]) : 0;
        if ((a | b | c) < 0) return -1;
        uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        out[o++] = (uint8_t)(w >> 16);
        if (rest == 3) {
            out[o++] = (uint8_t)(w >> 8);
            if (w & 0xFF) return -1;      /* unused bits must be zero */
        } else if (w & 0xFFFF) {
            return -1;
        }
    }
    *len_out = o;
    return 0;
}

/* ---- decimal integers --------------------------------------------------- */

int tsd_decimal_parse(const char *s, size_t n, int *neg, const char **d, size_t *dn)
{
    size_t i = 0;
    *neg = 0;
    if (n > 0 && s[0] == '-') { *neg = 1; i = 1; }
    if (i == n) return -1;
    for (size_t k = i; k < n; k++)
        if (s[k] < '0' || s[k] > '9') return -1;
    while (i < n && s[i] == '0') i++;
    *d = s + i;
    *dn = n - i;
    if (*dn == 0) *neg = 0; /* -0 is 0 */
    return 0;
}

/* Digits (no leading zero, dn > 0) that fit int64 with sign neg: 0 and *out. */
static int digits_to_int64(const char *d, size_t dn, int neg, int64_t *out)
{
    if (dn > 19) return -1;
    if (dn == 19) {
        const char *lim = neg ? "9223372036854775808" : "9223372036854775807";
        if (memcmp(d, lim, 19) > 0) return -1;
    }
    uint64_t u = 0;
    for (size_t k = 0; k < dn; k++) u = u * 10 + (uint64_t)(d[k] - '0');
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 0;
}

/* ---- datetime ----------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, size_t n, size_t *i, size_t count, int *out)
{
    int v = 0;
    if (n - *i < count) return -1;
    for (size_t k = 0; k < count; k++) {
        char c = s[*i + k];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *i += count;
    *out = v;
    return 0;
}

int tsd_datetime_parse(const char *s, size_t n, int64_t *ms_out)
{
    size_t i = 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, ms = 0;
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || digits(s, n, &i, 2, &mo) ||
        i >= n || s[i++] != '-' || digits(s, n, &i, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1) return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return -1;
    int64_t offset_min = 0;
    if (i < n) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return -1;
        i++;
        if (digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || digits(s, n, &i, 2, &mi))
            return -1;
        if (i < n && s[i] == ':') {
            i++;
            if (digits(s, n, &i, 2, &sec)) return -1;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                i++;
                size_t start = i;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                    if (i - start < 3) ms = ms * 10 + (s[i] - '0');
                    i++;
                }
                size_t nd = i - start;
                if (nd == 0 || nd > 9) return -1;
                for (size_t k = nd; k < 3; k++) ms *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 59) return -1;
        if (i < n) {
            if (s[i] == 'Z' || s[i] == 'z') {
                i++;
            } else if (s[i] == '+' || s[i] == '-') {
                int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
                if (digits(s, n, &i, 2, &oh)) return -1;
                if (i < n) {
                    if (s[i] == ':') i++;
                    if (digits(s, n, &i, 2, &om)) return -1;
                }
                if (oh > 23 || om > 59) return -1;
                offset_min = sign * (oh * 60 + om);
            } else {
                return -1;
            }
        }
        if (i != n) return -1;
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t t = ((days * 24 + h) * 60 + mi - offset_min) * 60 + sec;
    t = t * 1000 + ms;
    if (t < TSD_DATETIME_MIN_MS || t > TSD_DATETIME_MAX_MS) return -1;
    *ms_out = t;
    return 0;
}

size_t tsd_datetime_format(int64_t ms, char out[TSD_DATETIME_BUF])
{
    if (ms < TSD_DATETIME_MIN_MS || ms > TSD_DATETIME_MAX_MS) { out[0] = 0; return 0; }
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) { rem += 86400000; days--; }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int n = snprintf(out, TSD_DATETIME_BUF, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", (int)y, m, d,
                     (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
                     (int)(rem % 1000));
    return n > 0 ? (size_t)n : 0;
}

/* ---- half floats -------------------------------------------------------- */

uint16_t tsd_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t exp = (x >> 23) & 0xFF, man = x & 0x7FFFFF;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00 | (man ? 0x200 : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7C00);
    if (e <= 0) {
        if (e < -10) return sign;            /* rounds to zero */
        man |= 0x800000;                     /* implicit bit */
        uint32_t shift = (uint32_t)(14 - e); /* 24-bit mantissa to 10 - e bits */
        uint32_t half = man >> shift, rest = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = (uint32_t)e << 10 | man >> 13, rest = man & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++; /* may carry into inf: right */
    return (uint16_t)(sign | half);
}

float tsd_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, x;
    if (exp == 0x1F) {
        x = sign | 0x7F800000 | man << 13;
    } else if (exp == 0) {
        if (man == 0) {
            x = sign;
        } else {
            float f = (float)man * 5.9604644775390625e-8f; /* man * 2^-24, exact */
            return sign ? -f : f;
        }
    } else {
        x = sign | (exp - 15 + 127) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---- depth -------------------------------------------------------------- */

/* Nesting depth of v (containers around and including it; a scalar inside
 * `level` containers has depth level), stopping once over TSD_DEPTH_MAX. */
static int depth_of(const json_t *v, int level)
{
    if (!json_is_array(v) && !json_is_object(v)) return level;
    int d = level + 1, max = d;
    if (d > TSD_DEPTH_MAX) return d;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && max <= TSD_DEPTH_MAX; i++) {
            int x = depth_of(json_array_get(v, i), d);
            if (x > max) max = x;
        }
    } else {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) {
            int dx = depth_of(x, d);
            if (dx > max) max = dx;
            if (max > TSD_DEPTH_MAX) break;
        }
    }
    return max;
}

/* ---- from JSON ---------------------------------------------------------- */

static int is_expr(const json_t *in)
{
    return json_is_object(in) && json_object_size(in) == 1 && json_object_get(in, "$expr");
}

static int int_from_json(ts_env *env, const tsd_field *f, const json_t *in, const char *what,
                         int64_t *out)
{
    if (json_is_integer(in)) { *out = json_integer_value(in); return TS_OK; }
    if (json_is_real(in)) {
        if (real_to_int64(json_real_value(in), out) == 0) return TS_OK;
        return BAD("%s.%s: %.17g is not an integer within int64", f->table, f->name,
                   json_real_value(in));
    }
    return BAD("%s.%s: expected %s, got %s", f->table, f->name, what, json_kind(in));
}

static int text_from_json(ts_env *env, const tsd_field *f, const json_t *in, tsd_value *out)
{
    if (!json_is_string(in))
        return BAD("%s.%s: expected a string, got %s", f->table, f->name, json_kind(in));
    const char *s = json_string_value(in);
    size_t n = json_string_length(in);
    if (n > TSD_VALUE_MAX)
        return BIG("%s.%s: a text of %zu bytes is over the value limit of %u bytes", f->table,
                   f->name, n, TSD_VALUE_MAX);
    if (tsd_utf8_count(s, n) < 0) return BAD("%s.%s: invalid UTF-8", f->table, f->name);
    out->kind = TSD_V_TEXT;
    out->p = s;
    out->n = n;
    return TS_OK;
}

static int key_len_check(ts_env *env, const tsd_field *f, const tsd_value *v)
{
    size_t off = 0;
    if (v->kind == TSD_V_TEXT) off = ts_key_text(NULL, 0, 0, v->p, v->n);
    if (off > TS_INDEX_KEY_MAX)
        return BIG("%s.%s: a primary key of %zu bytes is too long (its key would be %zu bytes, "
                   "over %d)", f->table, f->name, v->n, off, TS_INDEX_KEY_MAX);
    return TS_OK;
}

/* The floats of a vector value given as a JSON array of numbers or in the
 * binary form ts_vector_value makes ({"$vector": base64 of float32 LE}). */
static int vector_floats_json(ts_env *env, const tsd_field *f, const json_t *in, float *out)
{
    const json_t *b64 = json_is_object(in) ? json_object_get(in, "$vector") : NULL;
    if (b64 && json_is_string(b64) && json_object_size(in) == 1) {
        size_t n = json_string_length(b64), got = 0;
        size_t want = (size_t)f->dimensions * 4;
        if (n / 4 * 3 > want + 3)
            return BAD("%s.%s: expected %u dimensions, got about %zu", f->table, f->name,
                       f->dimensions, n / 4 * 3 / 4);
        uint8_t *raw = malloc(want + 4);
        if (!raw) return NOMEM();
        if (tsd_base64_decode(json_string_value(b64), n, raw, &got) || got != want) {
            free(raw);
            return got % 4 || got == want
                ? BAD("%s.%s: the binary vector is not valid base64 of float32 values", f->table, f->name)
                : BAD("%s.%s: expected %u dimensions, got %zu", f->table, f->name, f->dimensions, got / 4);
        }
        for (size_t i = 0; i < f->dimensions; i++) {
            const uint8_t *q = raw + 4 * i;
            uint32_t bits = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                            (uint32_t)q[3] << 24;
            memcpy(&out[i], &bits, 4);
            if (!isfinite(out[i])) {
                free(raw);
                return BAD("%s.%s[%zu]: not a finite number", f->table, f->name, i);
            }
        }
        free(raw);
        return TS_OK;
    }
    if (!json_is_array(in))
        return BAD("%s.%s: expected an array of %u numbers, got %s", f->table, f->name,
                   f->dimensions, json_kind(in));
    size_t dims = json_array_size(in);
    if (dims != f->dimensions)
        return BAD("%s.%s: expected %u dimensions, got %zu", f->table, f->name, f->dimensions,
                   dims);
    for (size_t i = 0; i < dims; i++) {
        const json_t *e = json_array_get(in, i);
        if (!json_is_number(e))
            return BAD("%s.%s[%zu]: expected a number, got %s", f->table, f->name, i,
                       json_kind(e));
        double x = json_number_value(e);
        if (!isfinite(x) || fabs(x) > FLT_MAX)
            return BAD("%s.%s[%zu]: %g is out of float32 range", f->table, f->name, i, x);
        out[i] = (float)x;
    }
    return TS_OK;
}

static int vector_from_json(ts_env *env, const tsd_field *f, const json_t *in, tsd_value *out)
{
    size_t dims = f->dimensions;
    float *fv = malloc(dims * sizeof *fv + 1);
    if (!fv) return NOMEM();
    int rc = vector_floats_json(env, f, in, fv);
    if (rc) { free(fv); return rc; }
    double maxabs = 0;
    for (size_t i = 0; i < dims; i++)
        if (fabs(fv[i]) > maxabs) maxabs = fabs(fv[i]);
    size_t esz = f->precision == TSD_VEC_FLOAT32 ? 4 : f->precision == TSD_VEC_FLOAT16 ? 2 : 1;
    uint8_t *mem = malloc(dims * esz + 1);
    if (!mem) { free(fv); return NOMEM(); }
    float scale = 0;
    if (f->precision == TSD_VEC_INT8) scale = (float)(maxabs / 127.0);
    for (size_t i = 0; i < dims; i++) {
        double x = fv[i];
        if (f->precision == TSD_VEC_FLOAT32) {
            float fx = (float)x;
            uint32_t bits;
            memcpy(&bits, &fx, 4);
            for (int k = 0; k < 4; k++) mem[4 * i + (size_t)k] = (uint8_t)(bits >> (8 * k));
        } else if (f->precision == TSD_VEC_FLOAT16) {
            uint16_t h = tsd_f32_to_f16((float)x);
            if ((h & 0x7C00) == 0x7C00) {
                free(mem);
                free(fv);
                return BAD("%s.%s[%zu]: %g is out of float16 range", f->table, f->name, i, x);
            }
            mem[2 * i] = (uint8_t)h;
            mem[2 * i + 1] = (uint8_t)(h >> 8);
        } else {
            long q = scale > 0 ? round_even(x / (double)scale) : 0;
            if (q > 127) q = 127;
            if (q < -127) q = -127;
            mem[i] = (uint8_t)(int8_t)q;
        }
    }
    free(fv);
    out->kind = TSD_V_VECTOR;
    out->p = out->mem = mem;
    out->n = dims * esz;
    out->dims = (uint32_t)dims;
    out->scale = scale;
    return TS_OK;
}

int tsd_value_from_json(ts_env *env, const tsd_field *f, const json_t *in, tsd_value *out)
{
    memset(out, 0, sizeof *out);
    if (!in || json_is_null(in)) return TS_OK;
    if (is_expr(in))
        return BAD("%s.%s: an expression ({\"$expr\": ...}) is not a value here", f->table,
                   f->name);
    int rc;
    switch (f->type) {
    case TSD_INTEGER:
    case TSD_DATETIME:
        if (f->type == TSD_DATETIME && json_is_string(in)) {
            if (tsd_datetime_parse(json_string_value(in), json_string_length(in), &out->i))
                return BAD("%s.%s: '%s' is not an ISO-8601 datetime in years 0000-9999",
                           f->table, f->name, json_string_value(in));
            out->kind = TSD_V_INT;
            return TS_OK;
        }
        if ((rc = int_from_json(env, f, in, f->type == TSD_DATETIME
                                ? "an ISO-8601 string or integer milliseconds" : "an integer",
                                &out->i)))
            return rc;
        if (f->type == TSD_DATETIME &&
            (out->i < TSD_DATETIME_MIN_MS || out->i > TSD_DATETIME_MAX_MS))
            return BAD("%s.%s: %" PRId64 " ms is outside years 0000-9999", f->table, f->name,
                       out->i);
        out->kind = TSD_V_INT;
        if (f->is_pk) return key_len_check(env, f, out);
        return TS_OK;
    case TSD_BIGINT:
        if (json_is_string(in)) {
            const char *d;
            size_t dn;
            int neg;
            if (json_string_length(in) > TSD_VALUE_MAX)
                return BIG("%s.%s: a bigInt of %zu digits is over the value limit", f->table,
                           f->name, json_string_length(in));
            if (tsd_decimal_parse(json_string_value(in), json_string_length(in), &neg, &d, &dn))
                return BAD("%s.%s: '%s' is not a decimal integer", f->table, f->name,
                           json_string_value(in));
            if (dn == 0 || digits_to_int64(d, dn, neg, &out->i) == 0) {
                if (dn == 0) out->i = 0;
                out->kind = TSD_V_INT;
            } else {
                out->kind = TSD_V_BIGDEC;
                out->neg = neg;
                out->p = d;
                out->n = dn;
            }
            return TS_OK;
        }
        if ((rc = int_from_json(env, f, in, "an integer or a decimal string", &out->i)))
            return rc;
        out->kind = TSD_V_INT;
        return TS_OK;
    case TSD_DOUBLE:
        if (!json_is_number(in))
            return BAD("%s.%s: expected a number, got %s", f->table, f->name, json_kind(in));
        out->d = json_number_value(in);
        if (!isfinite(out->d))
            return BAD("%s.%s: NaN and infinities are refused", f->table, f->name);
        out->kind = TSD_V_DOUBLE;
        return TS_OK;
    case TSD_TEXT:
        if ((rc = text_from_json(env, f, in, out))) return rc;
        if (f->is_pk) return key_len_check(env, f, out);
        return TS_OK;
    case TSD_BLOB: {
        if (!json_is_string(in))
            return BAD("%s.%s: expected a base64 string, got %s", f->table, f->name,
                       json_kind(in));
        size_t n = json_string_length(in);
        if (n / 4 * 3 > (size_t)TSD_VALUE_MAX + 3)
            return BIG("%s.%s: a blob of about %zu bytes is over the value limit of %u bytes",
                       f->table, f->name, n / 4 * 3, TSD_VALUE_MAX);
        uint8_t *mem = malloc(n / 4 * 3 + 4);
        if (!mem) return NOMEM();
        size_t len;
        if (tsd_base64_decode(json_string_value(in), n, mem, &len)) {
            free(mem);
            return BAD("%s.%s: not valid base64", f->table, f->name);
        }
        if (len > TSD_VALUE_MAX) {
            free(mem);
            return BIG("%s.%s: a blob of %zu bytes is over the value limit of %u bytes",
                       f->table, f->name, len, TSD_VALUE_MAX);
        }
        out->kind = TSD_V_BLOB;
        out->p = out->mem = mem;
        out->n = len;
        return TS_OK;
    }
    case TSD_BOOLEAN:
        if (!json_is_boolean(in))
            return BAD("%s.%s: expected true or false, got %s", f->table, f->name,
                       json_kind(in));
        out->kind = TSD_V_BOOL;
        out->i = json_is_true(in);
        return TS_OK;
    case TSD_ARRAY:
    case TSD_JSON: {
        if (f->type == TSD_ARRAY && !json_is_array(in))
            return BAD("%s.%s: expected an array, got %s", f->table, f->name, json_kind(in));
        if (depth_of(in, 0) > TSD_DEPTH_MAX)
            return BIG("%s.%s: nested deeper than %d levels", f->table, f->name, TSD_DEPTH_MAX);
        size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17);
        size_t need = json_dumpb(in, NULL, 0, flags);
        if (need == 0)
            return BAD("%s.%s: the value cannot be serialized (invalid UTF-8?)", f->table,
                       f->name);
        if (need > TSD_VALUE_MAX)
            return BIG("%s.%s: %zu bytes of JSON is over the value limit of %u bytes", f->table,
                       f->name, need, TSD_VALUE_MAX);
        char *mem = malloc(need);
        if (!mem) return NOMEM();
        if (json_dumpb(in, mem, need, flags) != need) {
            free(mem);
            return BAD("%s.%s: the value cannot be serialized", f->table, f->name);
        }
        out->kind = TSD_V_JSON;
        out->p = out->mem = mem;
        out->n = need;
        out->i = f->type == TSD_ARRAY ? (int64_t)json_array_size(in) : 0;
        return TS_OK;
    }
    case TSD_VECTOR:
        return vector_from_json(env, f, in, out);
    case TSD_KEY:
        if (json_is_string(in)) {
            if ((rc = text_from_json(env, f, in, out))) return rc;
            return key_len_check(env, f, out);
        }
        if (json_is_integer(in) || json_is_real(in)) {
            if ((rc = int_from_json(env, f, in, "an integer or a string", &out->i))) return rc;
            out->kind = TSD_V_INT;
            return TS_OK;
        }
        return BAD("%s.%s: a primary key is an integer or a string, got %s", f->table, f->name,
                   json_kind(in));
    }
    return BAD("%s.%s: unknown field type", f->table, f->name);
}

/* ---- comparisons and constraints --------------------------------------- */

/* Compare two integers given as (neg, digits) or int64. */
typedef struct bignum {
    int         neg;
    const char *d;
    size_t      n;
    char        buf[24];
} bignum;

static void bignum_of(const tsd_value *v, bignum *b)
{
    if (v->kind == TSD_V_BIGDEC) {
        b->neg = v->neg;
        b->d = v->p;
        b->n = v->n;
        return;
    }
    uint64_t u = v->i < 0 ? 0 - (uint64_t)v->i : (uint64_t)v->i;
    b->neg = v->i < 0;
    char *e = b->buf + sizeof b->buf, *s = e;
    while (u) { *--s = (char)('0' + u % 10); u /= 10; }
    b->d = s;
    b->n = (size_t)(e - s);
}

static int bignum_cmp(const bignum *a, const bignum *b)
{
    if (a->neg != b->neg) return a->neg ? -1 : 1;
    int r;
    if (a->n != b->n) r = a->n < b->n ? -1 : 1;
    else r = memcmp(a->d, b->d, a->n) < 0 ? -1 : memcmp(a->d, b->d, a->n) > 0;
    return a->neg ? -r : r;
}

static int bytes_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    int r = memcmp(a, b, an < bn ? an : bn);
    if (r) return r < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

int tsd_value_cmp(const tsd_field *f, const tsd_value *a, const tsd_value *b)
{
    if (a->kind == TSD_V_NULL || b->kind == TSD_V_NULL)
        return (a->kind != TSD_V_NULL) - (b->kind != TSD_V_NULL);
    if (f->type == TSD_BIGINT) {
        bignum x, y;
        bignum_of(a, &x);
        bignum_of(b, &y);
        return bignum_cmp(&x, &y);
    }
    if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1; /* keys: INT before TEXT */
    switch (a->kind) {
    case TSD_V_BOOL:
    case TSD_V_INT:
        return a->i < b->i ? -1 : a->i > b->i;
    case TSD_V_DOUBLE:
        return a->d < b->d ? -1 : a->d > b->d;
    default:
        return bytes_cmp(a->p, a->n, b->p, b->n);
    }
}

static void bound_value(const tsd_field *f, const tsd_bound *b, tsd_value *v)
{
    memset(v, 0, sizeof *v);
    if (f->type == TSD_DOUBLE) {
        v->kind = TSD_V_DOUBLE;
        v->d = b->d;
    } else if (b->big) {
        v->kind = TSD_V_BIGDEC;
        v->p = b->big;
        v->n = strlen(b->big);
        v->neg = b->neg;
    } else {
        v->kind = TSD_V_INT;
        v->i = b->i;
    }
}

/* The value as text for messages (bounded). */
static void describe(const tsd_field *f, const tsd_value *v, char *buf, size_t cap)
{
    if (v->kind == TSD_V_DOUBLE) {
        snprintf(buf, cap, "%.17g", v->d);
    } else if (v->kind == TSD_V_BIGDEC) {
        snprintf(buf, cap, "%s%.*s%s", v->neg ? "-" : "", v->n > 40 ? 40 : (int)v->n,
                 (const char *)v->p, v->n > 40 ? "..." : "");
    } else if (f->type == TSD_DATETIME) {
        char iso[TSD_DATETIME_BUF];
        tsd_datetime_format(v->i, iso);
        snprintf(buf, cap, "%s", iso);
    } else {
        snprintf(buf, cap, "%" PRId64, v->i);
    }
}

int tsd_value_check(ts_env *env, const tsd_field *f, const tsd_value *v)
{
    if (v->kind == TSD_V_NULL) return TS_OK;
    if (f->min_length >= 0 || f->max_length >= 0) {
        int64_t len = 0;
        const char *unit = "bytes";
        if (f->type == TSD_TEXT) { len = tsd_utf8_count(v->p, v->n); unit = "characters"; }
        else if (f->type == TSD_BLOB) len = (int64_t)v->n;
        else if (f->type == TSD_ARRAY) { len = v->i; unit = "elements"; }
        if (f->min_length >= 0 && len < f->min_length)
            return BAD("%s.%s: %" PRId64 " %s, below minLength %" PRId64, f->table, f->name, len,
                       unit, f->min_length);
        if (f->max_length >= 0 && len > f->max_length)
            return BAD("%s.%s: %" PRId64 " %s, above maxLength %" PRId64, f->table, f->name, len,
                       unit, f->max_length);
    }
    if (f->min_value.set || f->max_value.set) {
        tsd_value b;
        char vs[64], bs[64];
        if (f->min_value.set) {
            bound_value(f, &f->min_value, &b);
            if (tsd_value_cmp(f, v, &b) < 0) {
                describe(f, v, vs, sizeof vs);
                describe(f, &b, bs, sizeof bs);
                return BAD("%s.%s: %s is below minValue %s", f->table, f->name, vs, bs);
            }
        }
        if (f->max_value.set) {
            bound_value(f, &f->max_value, &b);
            if (tsd_value_cmp(f, v, &b) > 0) {
                describe(f, v, vs, sizeof vs);
                describe(f, &b, bs, sizeof bs);
                return BAD("%s.%s: %s is above maxValue %s", f->table, f->name, vs, bs);
            }
        }
    }
    return TS_OK;
}

/* ---- to JSON ------------------------------------------------------------ */

int tsd_vector_floats(ts_env *env, const tsd_field *f, const tsd_value *v, float *out)
{
    size_t esz = f->precision == TSD_VEC_FLOAT32 ? 4 : f->precision == TSD_VEC_FLOAT16 ? 2 : 1;
    if (v->kind != TSD_V_VECTOR || v->dims != f->dimensions || v->n != (size_t)v->dims * esz)
        return tsenv_error(env, TS_ERR_CORRUPT, "%s.%s: stored vector has the wrong size",
                           f->table, f->name);
    const uint8_t *p = v->p;
    size_t n = v->dims;
    if (f->precision == TSD_VEC_FLOAT32) {
        /* little-endian float32: one copy (on a big-endian host, byte by byte) */
        uint32_t bad = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(out, p, 4 * n);
        for (size_t i = 0; i < n; i++) {
            uint32_t bits;
            memcpy(&bits, &out[i], 4);
            bad |= (bits & 0x7f800000u) == 0x7f800000u;   /* infinity or NaN */
        }
#else
        for (size_t i = 0; i < n; i++) {
            const uint8_t *q = p + 4 * i;
            uint32_t bits = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                            (uint32_t)q[3] << 24;
            memcpy(&out[i], &bits, 4);
            bad |= (bits & 0x7f800000u) == 0x7f800000u;
        }
#endif
        if (bad)
            return tsenv_error(env, TS_ERR_CORRUPT, "%s.%s: stored vector element is not finite",
                               f->table, f->name);
        return TS_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (f->precision == TSD_VEC_FLOAT16)
            out[i] = tsd_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        else
            out[i] = (float)((double)(int8_t)p[i] * (double)v->scale);
        if (!isfinite(out[i]))
            return tsenv_error(env, TS_ERR_CORRUPT, "%s.%s: stored vector element is not finite",
                               f->table, f->name);
    }
    return TS_OK;
}

int tsd_value_to_json(ts_env *env, const tsd_field *f, const tsd_value *v, json_t **out_new)
{
    json_t *j = NULL;
    *out_new = NULL;
    switch (v->kind) {
    case TSD_V_NULL: j = json_null(); break;
    case TSD_V_BOOL: j = json_boolean(v->i); break;
    case TSD_V_INT:
        if (f->type == TSD_DATETIME) {
            char iso[TSD_DATETIME_BUF];
            if (!tsd_datetime_format(v->i, iso))
                return tsenv_error(env, TS_ERR_CORRUPT, "%s.%s: datetime out of range",
                                   f->table, f->name);
            j = json_string(iso);
        } else {
            j = json_integer(v->i);
        }
        break;
    case TSD_V_DOUBLE:
        if (!isfinite(v->d))
            return tsenv_error(env, TS_ERR_CORRUPT, "%s.%s: stored double is not finite",
                               f->table, f->name);
        j = json_real(v->d);
        break;
    case TSD_V_TEXT:
        j = json_stringn(v->p, v->n);
        if (!j && tsd_utf8_count(v->p, v->n) < 0)
            return tsenv_error(env, TS_ERR_CORRUPT, "%s.%s: invalid UTF-8 in stored text",
                               f->table, f->name);
        break;
    case TSD_V_BLOB: {
        char *s = malloc(tsd_base64_len(v->n) + 1);
        if (!s) return NOMEM();
        tsd_base64_encode(v->p, v->n, s);
        j = json_stringn_nocheck(s, tsd_base64_len(v->n));
        free(s);
        break;
    }
    case TSD_V_BIGDEC: {
        char *s = malloc(v->n + 2);
        if (!s) return NOMEM();
        size_t k = 0;
        if (v->neg) s[k++] = '-';
        memcpy(s + k, v->p, v->n);
        j = json_stringn_nocheck(s, k + v->n);
        free(s);
        break;
    }
    case TSD_V_JSON: {
        json_error_t err;
        j = json_loadb(v->p, v->n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (!j)
            return tsenv_error(env, TS_ERR_CORRUPT, "%s.%s: stored JSON does not parse: %s",
                               f->table, f->name, err.text);
        break;
    }
    case TSD_V_VECTOR: {
        float *fv = malloc((size_t)f->dimensions * sizeof *fv + 1);
        if (!fv) return NOMEM();
        int rc = tsd_vector_floats(env, f, v, fv);
        if (!rc && !(j = json_array())) rc = NOMEM();
        for (size_t i = 0; !rc && i < v->dims; i++)
            if (json_array_append_new(j, json_real(fv[i]))) rc = NOMEM();
        free(fv);
        if (rc) {
            json_decref(j);
            return rc;
        }
        break;
    }
    }
    if (!j) return NOMEM();
    *out_new = j;
    return TS_OK;
}

/* ---- coercion of query values ------------------------------------------ */

static int int_key_gen(tsd_pk_type t)
{
    return t == TSD_PK_SEQUENTIAL || t == TSD_PK_TIMESTAMP;
}

static int str_key_gen(tsd_pk_type t)
{
    return t == TSD_PK_DATE_PREFIXED || t == TSD_PK_SHORT_CODE;
}

/* A finite decimal number "[-+]digits[.digits][e[-+]digits]": 0 and *out. */
static int decimal_number(const char *s, size_t n, double *out)
{
    if (n == 0 || n > 400) return -1;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-.eE", s[i]) || s[i] == 0) return -1;
    char buf[401];
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (end != buf + n || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

int tsd_coerce(ts_env *env, const tsd_field *f, const json_t *in, json_t **out_new)
{
    *out_new = NULL;
    if (!f || !out_new) return tsenv_error(env, TS_ERR_INVALID, "tsd_coerce: NULL argument");
    if (!in || json_is_null(in)) {
        *out_new = json_null();
        return TS_OK;
    }
    json_t *tmp = NULL;
    tsd_type t = f->type;
    if (json_is_string(in)) {
        const char *s = json_string_value(in);
        size_t n = json_string_length(in);
        int neg;
        const char *d;
        size_t dn;
        int64_t i = 0;
        int is_int = tsd_decimal_parse(s, n, &neg, &d, &dn) == 0 &&
                     (dn == 0 || digits_to_int64(d, dn, neg, &i) == 0);
        if (t == TSD_INTEGER || t == TSD_DATETIME || (t == TSD_KEY && int_key_gen(f->pk_type))) {
            if (is_int) tmp = json_integer(i);
            else if (t == TSD_INTEGER)
                return BAD("%s.%s: '%s' is not an integer within int64", f->table, f->name, s);
        } else if (t == TSD_DOUBLE) {
            double x;
            if (decimal_number(s, n, &x))
                return BAD("%s.%s: '%s' is not a finite number", f->table, f->name, s);
            tmp = json_real(x);
        } else if (t == TSD_BOOLEAN) {
            if (strcmp(s, "true") == 0) tmp = json_true();
            else if (strcmp(s, "false") == 0) tmp = json_false();
        }
    } else if (json_is_integer(in)) {
        json_int_t i = json_integer_value(in);
        if (t == TSD_TEXT || (t == TSD_KEY && str_key_gen(f->pk_type))) {
            char buf[24];
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, i);
            tmp = json_string(buf);
        } else if (t == TSD_BOOLEAN && (i == 0 || i == 1)) {
            tmp = json_boolean(i);
        }
    }
    const json_t *src = tmp ? tmp : in;
    tsd_value v;
    int rc = tsd_value_from_json(env, f, src, &v);
    if (rc == TS_OK) {
        if (t == TSD_ARRAY || t == TSD_JSON) {
            *out_new = json_deep_copy(src);
            if (!*out_new) rc = NOMEM();
        } else {
            rc = tsd_value_to_json(env, f, &v, out_new);
        }
    }
    tsd_value_clear(&v);
    json_decref(tmp);
    return rc;
}

/* ---- keys --------------------------------------------------------------- */

int tsd_type_indexable(tsd_type type)
{
    return type != TSD_ARRAY && type != TSD_JSON && type != TSD_VECTOR;
}

static size_t kbyte(uint8_t *dst, size_t cap, size_t off, uint8_t b)
{
    if (off < cap) dst[off] = b;
    return off + 1;
}

/* One payload byte of a text/blob key, escaped as tostore/keys.h does. */
static size_t kesc(uint8_t *dst, size_t cap, size_t off, uint8_t b)
{
    off = kbyte(dst, cap, off, b);
    return b == 0 ? kbyte(dst, cap, off, 0xFF) : off;
}

/* bigInt: a TS_KEY_BLOB whose payload sorts numerically:
 *   zero      01
 *   positive  02, digit count (4 bytes big endian), digits (ASCII)
 *   negative  00, inverted count, inverted digits */
static size_t bigint_key(const tsd_value *v, uint8_t *dst, size_t cap, size_t off)
{
    bignum b;
    bignum_of(v, &b);
    off = kbyte(dst, cap, off, TS_KEY_BLOB);
    if (b.n == 0) {
        off = kesc(dst, cap, off, 0x01);
    } else {
        uint8_t inv = b.neg ? 0xFF : 0x00;
        off = kesc(dst, cap, off, b.neg ? 0x00 : 0x02);
        for (int k = 3; k >= 0; k--) off = kesc(dst, cap, off, (uint8_t)((b.n >> (8 * k)) ^ inv));
        for (size_t k = 0; k < b.n; k++) off = kesc(dst, cap, off, (uint8_t)(b.d[k] ^ inv));
    }
    off = kbyte(dst, cap, off, 0);
    return kbyte(dst, cap, off, 0);
}

int tsd_value_key(ts_env *env, const tsd_field *f, const tsd_value *v, uint8_t *dst, size_t cap,
                  size_t *off)
{
    if (!tsd_type_indexable(f->type))
        return BAD("%s.%s: %s values cannot be part of an index key", f->table, f->name,
                   tsd_type_name(f->type));
    if (v->kind == TSD_V_NULL) {
        *off = ts_key_null(dst, cap, *off);
        return TS_OK;
    }
    int ok = 0;
    switch (f->type) {
    case TSD_INTEGER:
    case TSD_DATETIME:
        if ((ok = v->kind == TSD_V_INT)) *off = ts_key_int(dst, cap, *off, v->i);
        break;
    case TSD_BIGINT:
        if ((ok = v->kind == TSD_V_INT || v->kind == TSD_V_BIGDEC))
            *off = bigint_key(v, dst, cap, *off);
        break;
    case TSD_DOUBLE:
        if ((ok = v->kind == TSD_V_DOUBLE)) *off = ts_key_double(dst, cap, *off, v->d);
        break;
    case TSD_TEXT:
        if ((ok = v->kind == TSD_V_TEXT)) *off = ts_key_text(dst, cap, *off, v->p, v->n);
        break;
    case TSD_BLOB:
        if ((ok = v->kind == TSD_V_BLOB)) *off = ts_key_blob(dst, cap, *off, v->p, v->n);
        break;
    case TSD_BOOLEAN:
        if ((ok = v->kind == TSD_V_BOOL)) *off = ts_key_bool(dst, cap, *off, (int)v->i);
        break;
    case TSD_KEY:
        if (v->kind == TSD_V_INT) { ok = 1; *off = ts_key_int(dst, cap, *off, v->i); }
        else if (v->kind == TSD_V_TEXT) { ok = 1; *off = ts_key_text(dst, cap, *off, v->p, v->n); }
        break;
    default:
        break;
    }
    if (!ok)
        return tsenv_error(env, TS_ERR_INVALID, "%s.%s: value of kind %d for a %s field",
                           f->table, f->name, (int)v->kind, tsd_type_name(f->type));
    return TS_OK;
}

int tsd_json_key(ts_env *env, const tsd_field *f, const json_t *in, uint8_t *dst, size_t cap,
                 size_t *off)
{
    tsd_value v;
    int rc = tsd_value_from_json(env, f, in, &v);
    if (rc == TS_OK) rc = tsd_value_key(env, f, &v, dst, cap, off);
    tsd_value_clear(&v);
    return rc;
}

int tsd_pk_key(ts_env *env, const json_t *pk, uint8_t *dst, size_t cap, size_t *off)
{
    int64_t i;
    if (json_is_integer(pk)) {
        *off = ts_key_int(dst, cap, *off, json_integer_value(pk));
    } else if (json_is_real(pk) && real_to_int64(json_real_value(pk), &i) == 0) {
        *off = ts_key_int(dst, cap, *off, i);
    } else if (json_is_string(pk)) {
        *off = ts_key_text(dst, cap, *off, json_string_value(pk), json_string_length(pk));
    } else {
        return BAD("a primary key is an integer or a string, got %s",
                   pk ? json_kind(pk) : "nothing");
    }
    return TS_OK;
}
