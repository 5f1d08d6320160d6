/*
 * Values, records and rows (kernel/data/value.h, record.h): the JSON rules of
 * every type, validation of whole and partial records (unknown fields, not
 * null, defaults, lengths, ranges, limits), merging and upsert targets, the
 * binary row format (round trips, single-field reads, damaged rows, rows of
 * an older shape), the memcomparable keys (their order matches the values'
 * order, type by type), and coercion of query values.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "data/record.h"
#include "data/schema.h"
#include "data/value.h"
#include "tsupport.h"

static ts_env env;

static void setup(void)
{
    ck_assert_int_eq(tsenv_init(&env), TS_OK);
}

static void teardown(void)
{
    tsenv_destroy(&env);
}

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    ck_assert_msg(j != NULL, "bad test JSON: %s: %s", text, e.text);
    return j;
}

/* Compact text of j for messages: one of 4 rotating static buffers. */
static const char *S(const json_t *j)
{
    static char bufs[4][512];
    static int next;
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s", s ? s : "(null)");
    free(s);
    return b;
}

static tsd_table *T(const char *text)
{
    json_t *j = J(text);
    tsd_table *t = NULL;
    int rc = tsd_table_parse(&env, j, &t);
    ck_assert_msg(rc == TS_OK, "schema refused (%d): %s", rc, tsenv_errmsg(&env));
    json_decref(j);
    return t;
}

static void assert_json_eq(const json_t *got, const json_t *want, const char *what)
{
    if (!json_equal(got, want))
        ck_abort_msg("%s: JSON differs\n  got:  %s\n  want: %s", what, S(got), S(want));
}

static const char *ALL =
    "{\"name\": \"all\", \"fields\": ["
    " {\"name\": \"i\", \"type\": \"integer\"},"
    " {\"name\": \"bi\", \"type\": \"bigInt\"},"
    " {\"name\": \"d\", \"type\": \"double\"},"
    " {\"name\": \"t\", \"type\": \"text\"},"
    " {\"name\": \"b\", \"type\": \"blob\"},"
    " {\"name\": \"bo\", \"type\": \"boolean\"},"
    " {\"name\": \"dt\", \"type\": \"datetime\"},"
    " {\"name\": \"a\", \"type\": \"array\"},"
    " {\"name\": \"j\", \"type\": \"json\"},"
    " {\"name\": \"v32\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 3}},"
    " {\"name\": \"v16\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 3, \"precision\": \"float16\"}},"
    " {\"name\": \"v8\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": 3, \"precision\": \"int8\"}}"
    "]}";

/* Validate {field: value} (partial) and compare the normalized value. */
static void ok1(const tsd_table *t, const char *field, const json_t *in, const char *want_text)
{
    json_t *rec = json_object(), *out = NULL;
    json_object_set(rec, field, (json_t *)in);
    int rc = tsd_record_validate(&env, t, rec, TSD_REC_PARTIAL, 0, &out);
    ck_assert_msg(rc == TS_OK, "%s = %s refused (%d): %s", field, S(in), rc, tsenv_errmsg(&env));
    json_t *want = J(want_text);
    char what[300];
    snprintf(what, sizeof what, "%s = %s", field, S(in));
    assert_json_eq(json_object_get(out, field), want, what);
    ck_assert_uint_eq(json_object_size(out), 1);
    json_decref(want);
    json_decref(out);
    json_decref(rec);
}

static void ok1s(const tsd_table *t, const char *field, const char *in_text, const char *want_text)
{
    json_t *in = J(in_text);
    ok1(t, field, in, want_text);
    json_decref(in);
}

/* Validate {field: value}: refused with code and (when msg) exactly msg. */
static void bad1(const tsd_table *t, const char *field, const json_t *in, int code,
                 const char *msg)
{
    json_t *rec = json_object(), *out = (json_t *)&env;
    json_object_set(rec, field, (json_t *)in);
    int rc = tsd_record_validate(&env, t, rec, TSD_REC_PARTIAL, 0, &out);
    ck_assert_msg(rc == code, "%s = %.200s: want %d, got %d (%s)", field, S(in), code, rc,
                  rc ? tsenv_errmsg(&env) : "accepted");
    ck_assert_ptr_null(out);
    if (msg)
        ck_assert_msg(strcmp(tsenv_errmsg(&env), msg) == 0, "message\n  got:  %s\n  want: %s",
                      tsenv_errmsg(&env), msg);
    json_decref(rec);
}

static void bad1s(const tsd_table *t, const char *field, const char *in_text, int code,
                  const char *msg)
{
    json_t *in = J(in_text);
    bad1(t, field, in, code, msg);
    json_decref(in);
}

/* ---- value rules ---------------------------------------------------------- */

START_TEST(integer_rules)
{
    tsd_table *t = T(ALL);
    ok1s(t, "i", "5", "5");
    ok1s(t, "i", "-9223372036854775808", "-9223372036854775808");
    ok1s(t, "i", "9223372036854775807", "9223372036854775807");
    ok1s(t, "i", "3.0", "3");
    ok1s(t, "i", "-0.0", "0");
    ok1s(t, "i", "1e3", "1000");
    bad1s(t, "i", "3.5", TS_ERR_VALIDATION, "all.i: 3.5 is not an integer within int64");
    bad1s(t, "i", "1e19", TS_ERR_VALIDATION, "all.i: 1e+19 is not an integer within int64");
    bad1s(t, "i", "9223372036854775808.0", TS_ERR_VALIDATION, NULL);
    bad1s(t, "i", "\"5\"", TS_ERR_VALIDATION, "all.i: expected an integer, got a string");
    bad1s(t, "i", "true", TS_ERR_VALIDATION, "all.i: expected an integer, got a boolean");
    bad1s(t, "i", "[1]", TS_ERR_VALIDATION, "all.i: expected an integer, got an array");
    bad1s(t, "i", "{\"$expr\": 1}", TS_ERR_VALIDATION,
          "all.i: an expression ({\"$expr\": ...}) is not a value here");
    tsd_table_free(t);
}
END_TEST

START_TEST(bigint_rules)
{
    tsd_table *t = T(ALL);
    ok1s(t, "bi", "12", "12");
    ok1s(t, "bi", "\"123\"", "123");
    ok1s(t, "bi", "\"-0\"", "0");
    ok1s(t, "bi", "\"0000\"", "0");
    ok1s(t, "bi", "\"007\"", "7");
    ok1s(t, "bi", "\"-9223372036854775808\"", "-9223372036854775808");
    ok1s(t, "bi", "\"9223372036854775807\"", "9223372036854775807");
    ok1s(t, "bi", "\"9223372036854775808\"", "\"9223372036854775808\"");
    ok1s(t, "bi", "\"-9223372036854775809\"", "\"-9223372036854775809\"");
    ok1s(t, "bi", "\"-000123456789012345678901234567890\"", "\"-123456789012345678901234567890\"");
    ok1s(t, "bi", "2.0", "2");
    bad1s(t, "bi", "\"+1\"", TS_ERR_VALIDATION, "all.bi: '+1' is not a decimal integer");
    bad1s(t, "bi", "\"1.5\"", TS_ERR_VALIDATION, "all.bi: '1.5' is not a decimal integer");
    bad1s(t, "bi", "\"\"", TS_ERR_VALIDATION, "all.bi: '' is not a decimal integer");
    bad1s(t, "bi", "\"-\"", TS_ERR_VALIDATION, "all.bi: '-' is not a decimal integer");
    bad1s(t, "bi", "\" 1\"", TS_ERR_VALIDATION, NULL);
    bad1s(t, "bi", "1e30", TS_ERR_VALIDATION, "all.bi: 1e+30 is not an integer within int64");
    bad1s(t, "bi", "false", TS_ERR_VALIDATION,
          "all.bi: expected an integer or a decimal string, got a boolean");
    tsd_table_free(t);
}
END_TEST

START_TEST(double_text_bool_rules)
{
    tsd_table *t = T(ALL);
    ok1s(t, "d", "1", "1.0");
    ok1s(t, "d", "-2.5", "-2.5");
    ok1s(t, "d", "1e308", "1e308");
    json_t *r = json_real(-0.0);
    ok1(t, "d", r, "0.0");
    json_decref(r);
    bad1s(t, "d", "\"2.5\"", TS_ERR_VALIDATION, "all.d: expected a number, got a string");
    ok1s(t, "d", "null", "null"); /* nullable */
    ok1s(t, "t", "\"  padded  \"", "\"  padded  \"");
    ok1s(t, "t", "\"h\\u00e9llo \\ud83d\\ude00\"", "\"h\\u00e9llo \\ud83d\\ude00\"");
    ok1s(t, "t", "\"\"", "\"\"");
    json_t *nul = json_stringn("a\0b", 3);
    ok1(t, "t", nul, "\"a\\u0000b\"");
    json_decref(nul);
    json_t *badutf = json_stringn_nocheck("a\xc3(", 3);
    bad1(t, "t", badutf, TS_ERR_VALIDATION, "all.t: invalid UTF-8");
    json_decref(badutf);
    bad1s(t, "t", "5", TS_ERR_VALIDATION, "all.t: expected a string, got an integer");
    ok1s(t, "bo", "true", "true");
    ok1s(t, "bo", "false", "false");
    bad1s(t, "bo", "1", TS_ERR_VALIDATION, "all.bo: expected true or false, got an integer");
    bad1s(t, "bo", "\"true\"", TS_ERR_VALIDATION, "all.bo: expected true or false, got a string");
    tsd_table_free(t);
}
END_TEST

START_TEST(blob_rules)
{
    tsd_table *t = T(ALL);
    ok1s(t, "b", "\"AAEC\"", "\"AAEC\"");
    ok1s(t, "b", "\"AAE=\"", "\"AAE=\"");
    ok1s(t, "b", "\"AAE\"", "\"AAE=\""); /* padding optional on input, always on output */
    ok1s(t, "b", "\"AA\"", "\"AA==\"");
    ok1s(t, "b", "\"\"", "\"\"");
    ok1s(t, "b", "\"+/+/\"", "\"+/+/\"");
    bad1s(t, "b", "\"A\"", TS_ERR_VALIDATION, "all.b: not valid base64");
    bad1s(t, "b", "\"AAF=\"", TS_ERR_VALIDATION, "all.b: not valid base64"); /* unused bits */
    bad1s(t, "b", "\"AB==\"", TS_ERR_VALIDATION, "all.b: not valid base64");
    bad1s(t, "b", "\"A===\"", TS_ERR_VALIDATION, NULL);
    bad1s(t, "b", "\"@@@@\"", TS_ERR_VALIDATION, NULL);
    bad1s(t, "b", "\"AA AA\"", TS_ERR_VALIDATION, NULL);
    bad1s(t, "b", "\"-_-_\"", TS_ERR_VALIDATION, NULL); /* url-safe alphabet refused */
    bad1s(t, "b", "\"AA=A\"", TS_ERR_VALIDATION, NULL);
    bad1s(t, "b", "[1]", TS_ERR_VALIDATION, "all.b: expected a base64 string, got an array");
    tsd_table_free(t);
}
END_TEST

START_TEST(base64_vectors)
{
    static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                       "Zm9vYmFy" };
    for (int i = 0; i < 7; i++) {
        char out[16];
        uint8_t dec[16];
        size_t n;
        tsd_base64_encode(plain[i], strlen(plain[i]), out);
        ck_assert_str_eq(out, enc[i]);
        ck_assert_uint_eq(tsd_base64_len(strlen(plain[i])), strlen(enc[i]));
        ck_assert_int_eq(tsd_base64_decode(enc[i], strlen(enc[i]), dec, &n), 0);
        ck_assert_uint_eq(n, strlen(plain[i]));
        ck_assert(memcmp(dec, plain[i], n) == 0);
    }
    srand(7);
    for (int iter = 0; iter < 2000; iter++) {
        uint8_t src[64], dec[64];
        char out[100];
        size_t n = (size_t)(rand() % 64), m;
        for (size_t k = 0; k < n; k++) src[k] = (uint8_t)rand();
        tsd_base64_encode(src, n, out);
        ck_assert_int_eq(tsd_base64_decode(out, strlen(out), dec, &m), 0);
        ck_assert_uint_eq(m, n);
        ck_assert(memcmp(src, dec, n) == 0);
    }
}
END_TEST

START_TEST(utf8_rules)
{
    ck_assert_int_eq(tsd_utf8_count("abc", 3), 3);
    ck_assert_int_eq(tsd_utf8_count("h\xc3\xa9", 3), 2);
    ck_assert_int_eq(tsd_utf8_count("\xe2\x82\xac", 3), 1);
    ck_assert_int_eq(tsd_utf8_count("\xf0\x9f\x98\x80", 4), 1);
    ck_assert_int_eq(tsd_utf8_count("a\0b", 3), 3);
    ck_assert_int_eq(tsd_utf8_count("\xc0\x80", 2), -1);         /* overlong NUL */
    ck_assert_int_eq(tsd_utf8_count("\xe0\x80\xaf", 3), -1);     /* overlong */
    ck_assert_int_eq(tsd_utf8_count("\xed\xa0\x80", 3), -1);     /* surrogate */
    ck_assert_int_eq(tsd_utf8_count("\xf4\x90\x80\x80", 4), -1); /* above U+10FFFF */
    ck_assert_int_eq(tsd_utf8_count("\xc3", 1), -1);             /* truncated */
    ck_assert_int_eq(tsd_utf8_count("\x80", 1), -1);             /* stray continuation */
    ck_assert_int_eq(tsd_utf8_count("\xff", 1), -1);
}
END_TEST

START_TEST(datetime_rules)
{
    tsd_table *t = T(ALL);
    ok1s(t, "dt", "\"2024-01-02T03:04:05.678Z\"", "\"2024-01-02T03:04:05.678Z\"");
    ok1s(t, "dt", "\"2024-01-02T03:04:05Z\"", "\"2024-01-02T03:04:05.000Z\"");
    ok1s(t, "dt", "\"2024-01-02T03:04:05\"", "\"2024-01-02T03:04:05.000Z\""); /* no offset: UTC */
    ok1s(t, "dt", "\"2024-01-02\"", "\"2024-01-02T00:00:00.000Z\"");
    ok1s(t, "dt", "\"2024-01-02 03:04\"", "\"2024-01-02T03:04:00.000Z\"");
    ok1s(t, "dt", "\"2024-01-02t03:04:05.6z\"", "\"2024-01-02T03:04:05.600Z\"");
    ok1s(t, "dt", "\"2024-01-02T03:04:05.678+02:00\"", "\"2024-01-02T01:04:05.678Z\"");
    ok1s(t, "dt", "\"2024-01-02T03:04:05.678-05:30\"", "\"2024-01-02T08:34:05.678Z\"");
    ok1s(t, "dt", "\"2024-01-02T03:04:05+0100\"", "\"2024-01-02T02:04:05.000Z\"");
    ok1s(t, "dt", "\"2024-01-02T03:04:05+01\"", "\"2024-01-02T02:04:05.000Z\"");
    ok1s(t, "dt", "\"2024-01-01T00:30:00+01:00\"", "\"2023-12-31T23:30:00.000Z\"");
    ok1s(t, "dt", "\"2024-01-02T03:04:05.678999999Z\"", "\"2024-01-02T03:04:05.678Z\"");
    ok1s(t, "dt", "\"2024-01-02T03:04:05,5Z\"", "\"2024-01-02T03:04:05.500Z\"");
    ok1s(t, "dt", "\"2024-02-29\"", "\"2024-02-29T00:00:00.000Z\"");
    ok1s(t, "dt", "\"2000-02-29\"", "\"2000-02-29T00:00:00.000Z\"");
    ok1s(t, "dt", "0", "\"1970-01-01T00:00:00.000Z\"");
    ok1s(t, "dt", "-1", "\"1969-12-31T23:59:59.999Z\"");
    ok1s(t, "dt", "1704164645678", "\"2024-01-02T03:04:05.678Z\"");
    ok1s(t, "dt", "1704164645678.0", "\"2024-01-02T03:04:05.678Z\"");
    ok1s(t, "dt", "\"0000-01-01T00:00:00Z\"", "\"0000-01-01T00:00:00.000Z\"");
    ok1s(t, "dt", "\"9999-12-31T23:59:59.999Z\"", "\"9999-12-31T23:59:59.999Z\"");
    ok1s(t, "dt", "-62167219200000", "\"0000-01-01T00:00:00.000Z\"");
    static const char *const bad[] = {
        "\"2023-02-29\"", "\"1900-02-29\"", "\"2024-02-30\"", "\"2024-04-31\"", "\"2024-13-01\"",
        "\"2024-00-10\"", "\"2024-01-00\"", "\"2024-01-02T24:00\"", "\"2024-01-02T23:60\"",
        "\"2024-01-02T23:59:60\"", "\"2024-01-02T03:04:05.Z\"", "\"2024-01-02T03:04:05.1234567890Z\"",
        "\"2024-01-02T03\"", "\"2024-1-02\"", "\"24-01-02\"", "\"2024-01-02T03:04:05+25:00\"",
        "\"2024-01-02T03:04:05 Z\"", "\"2024-01-02T03:04:05ZZ\"", "\"2024-01-02X03:04\"",
        "\"garbage\"", "\"\"", "\"0000-01-01T00:00:00+00:01\"", "\"9999-12-31T23:59:59-00:01\"",
        "\"+2024-01-02\"", NULL
    };
    for (int i = 0; bad[i]; i++) bad1s(t, "dt", bad[i], TS_ERR_VALIDATION, NULL);
    bad1s(t, "dt", "\"yesterday\"", TS_ERR_VALIDATION,
          "all.dt: 'yesterday' is not an ISO-8601 datetime in years 0000-9999");
    bad1s(t, "dt", "1.5", TS_ERR_VALIDATION, "all.dt: 1.5 is not an integer within int64");
    bad1s(t, "dt", "253402300800000", TS_ERR_VALIDATION,
          "all.dt: 253402300800000 ms is outside years 0000-9999");
    bad1s(t, "dt", "-62167219200001", TS_ERR_VALIDATION, NULL);
    bad1s(t, "dt", "true", TS_ERR_VALIDATION,
          "all.dt: expected an ISO-8601 string or integer milliseconds, got a boolean");
    tsd_table_free(t);
}
END_TEST

START_TEST(datetime_format_parse_property)
{
    srand(42);
    char buf[TSD_DATETIME_BUF];
    for (int iter = 0; iter < 200000; iter++) {
        uint64_t r = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
        int64_t span = TSD_DATETIME_MAX_MS - TSD_DATETIME_MIN_MS + 1;
        int64_t ms = TSD_DATETIME_MIN_MS + (int64_t)(r % (uint64_t)span);
        if (iter % 4 == 0) ms = (int64_t)(r % 400000000000LL) - 200000000000LL; /* near 1970 */
        ck_assert_uint_eq(tsd_datetime_format(ms, buf), 24);
        int64_t back;
        ck_assert_msg(tsd_datetime_parse(buf, 24, &back) == 0, "%s", buf);
        ck_assert_msg(back == ms, "%" PRId64 " -> %s -> %" PRId64, ms, buf, back);
    }
    /* known instants */
    tsd_datetime_format(951782400000LL, buf);
    ck_assert_str_eq(buf, "2000-02-29T00:00:00.000Z");
    tsd_datetime_format(-2208988800000LL, buf);
    ck_assert_str_eq(buf, "1900-01-01T00:00:00.000Z");
    ck_assert_uint_eq(tsd_datetime_format(TSD_DATETIME_MAX_MS + 1, buf), 0);
    ck_assert_uint_eq(tsd_datetime_format(TSD_DATETIME_MIN_MS - 1, buf), 0);
}
END_TEST

START_TEST(array_json_rules)
{
    tsd_table *t = T(ALL);
    ok1s(t, "a", "[1, \"a\", null, [2.5], {\"k\": true}]", "[1, \"a\", null, [2.5], {\"k\": true}]");
    ok1s(t, "a", "[]", "[]");
    bad1s(t, "a", "{}", TS_ERR_VALIDATION, "all.a: expected an array, got an object");
    bad1s(t, "a", "\"[]\"", TS_ERR_VALIDATION, "all.a: expected an array, got a string");
    ok1s(t, "j", "5", "5");
    ok1s(t, "j", "\"x\"", "\"x\"");
    ok1s(t, "j", "{\"a\": [1, {\"b\": null}]}", "{\"a\": [1, {\"b\": null}]}");
    ok1s(t, "j", "{\"$expr\": 1, \"other\": 2}", "{\"$expr\": 1, \"other\": 2}");
    bad1s(t, "j", "{\"$expr\": {\"op\": \"+\"}}", TS_ERR_VALIDATION,
          "all.j: an expression ({\"$expr\": ...}) is not a value here");
    /* depth: 64 nested containers pass, 65 do not */
    for (int depth = 63; depth <= 66; depth++) {
        json_t *v = json_integer(1);
        for (int k = 0; k < depth; k++) {
            json_t *w = k % 2 ? json_array() : json_object();
            if (k % 2) json_array_append_new(w, v);
            else json_object_set_new(w, "k", v);
            v = w;
        }
        json_t *arr = json_array();
        json_array_append_new(arr, v); /* arr has depth + 1 levels */
        if (depth + 1 <= TSD_DEPTH_MAX) {
            json_t *rec = json_pack("{s:O, s:O}", "a", arr, "j", arr), *out;
            ck_assert_int_eq(tsd_record_validate(&env, t, rec, TSD_REC_PARTIAL, 0, &out), TS_OK);
            ck_assert(json_equal(json_object_get(out, "a"), arr));
            json_decref(out);
            json_decref(rec);
        } else {
            bad1(t, "a", arr, TS_ERR_RESOURCE, "all.a: nested deeper than 64 levels");
            bad1(t, "j", arr, TS_ERR_RESOURCE, "all.j: nested deeper than 64 levels");
        }
        json_decref(arr);
    }
    ok1s(t, "j", "[]", "[]");
    ok1s(t, "j", "null", "null");
    tsd_table_free(t);
}
END_TEST

START_TEST(vector_rules)
{
    tsd_table *t = T(ALL);
    ok1s(t, "v32", "[1, 2.5, -3]", "[1.0, 2.5, -3.0]");
    char want[200];
    snprintf(want, sizeof want, "[%.17g, 0.0, %.17g]", (double)0.1f, (double)-1e-3f);
    ok1s(t, "v32", "[0.1, 0, -0.001]", want);
    ok1s(t, "v16", "[1, 65504, -0.5]", "[1.0, 65504.0, -0.5]");
    snprintf(want, sizeof want, "[%.17g, 0.0, 0.0]", (double)tsd_f16_to_f32(tsd_f32_to_f16(0.1f)));
    ok1s(t, "v16", "[0.1, 0, 0]", want);
    bad1s(t, "v16", "[1, 70000, 0]", TS_ERR_VALIDATION, "all.v16[1]: 70000 is out of float16 range");
    ok1s(t, "v8", "[127, -63.5, 0]", "[127.0, -64.0, 0.0]");
    ok1s(t, "v8", "[0, 0, 0]", "[0.0, 0.0, 0.0]");
    bad1s(t, "v32", "[1, 2]", TS_ERR_VALIDATION, "all.v32: expected 3 dimensions, got 2");
    bad1s(t, "v32", "[1, 2, 3, 4]", TS_ERR_VALIDATION, "all.v32: expected 3 dimensions, got 4");
    bad1s(t, "v32", "[1, \"2\", 3]", TS_ERR_VALIDATION, "all.v32[1]: expected a number, got a string");
    bad1s(t, "v32", "[1, null, 3]", TS_ERR_VALIDATION, "all.v32[1]: expected a number, got null");
    bad1s(t, "v32", "[1, 2, 1e39]", TS_ERR_VALIDATION, "all.v32[2]: 1e+39 is out of float32 range");
    bad1s(t, "v32", "{}", TS_ERR_VALIDATION, "all.v32: expected an array of 3 numbers, got an object");
    /* quantized values are a fixed point of validation, for every precision */
    srand(99);
    for (int iter = 0; iter < 3000; iter++) {
        json_t *v = json_array();
        double scale = pow(10, rand() % 9 - 4);
        for (int k = 0; k < 3; k++)
            json_array_append_new(v, json_real(((double)rand() / RAND_MAX - 0.5) * scale));
        json_t *rec = json_pack("{s:O, s:O, s:O}", "v32", v, "v16", v, "v8", v), *o1, *o2;
        ck_assert_int_eq(tsd_record_validate(&env, t, rec, TSD_REC_PARTIAL, 0, &o1), TS_OK);
        ck_assert_int_eq(tsd_record_validate(&env, t, o1, TSD_REC_PARTIAL, 0, &o2), TS_OK);
        assert_json_eq(o2, o1, "vector fixed point");
        /* int8: the largest magnitude is kept (to float precision), others within scale/2 */
        double maxabs = 0;
        for (int k = 0; k < 3; k++) maxabs = fmax(maxabs, fabs(json_real_value(json_array_get(v, k))));
        for (int k = 0; k < 3; k++) {
            double x = json_real_value(json_array_get(v, k));
            double q = json_real_value(json_array_get(json_object_get(o1, "v8"), k));
            ck_assert_msg(fabs(x - q) <= maxabs / 127 * 0.5000001 + 1e-30, "%g -> %g", x, q);
            double h = json_real_value(json_array_get(json_object_get(o1, "v16"), k));
            ck_assert(fabs(x - h) <= fabs(x) / 1024 + 6e-8);
        }
        json_decref(o1);
        json_decref(o2);
        json_decref(rec);
        json_decref(v);
    }
    tsd_table_free(t);
}
END_TEST

START_TEST(half_float)
{
    /* every finite half survives half -> float -> half */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue; /* NaN */
        ck_assert_uint_eq(tsd_f32_to_f16(tsd_f16_to_f32((uint16_t)h)), h);
    }
    ck_assert_uint_eq(tsd_f32_to_f16(1.0f), 0x3C00);
    ck_assert_uint_eq(tsd_f32_to_f16(1.0f + 1.0f / 2048), 0x3C00);        /* tie to even */
    ck_assert_uint_eq(tsd_f32_to_f16(1.0f + 3.0f / 2048), 0x3C02);        /* tie to even */
    ck_assert_uint_eq(tsd_f32_to_f16(65504.0f), 0x7BFF);
    ck_assert_uint_eq(tsd_f32_to_f16(65520.0f), 0x7C00);                  /* rounds to inf */
    ck_assert_uint_eq(tsd_f32_to_f16(ldexpf(1, -24)), 0x0001);            /* smallest subnormal */
    ck_assert_uint_eq(tsd_f32_to_f16(ldexpf(1, -25)), 0x0000);            /* tie to even: 0 */
    ck_assert_uint_eq(tsd_f32_to_f16(ldexpf(3, -26)), 0x0001);
    ck_assert_uint_eq(tsd_f32_to_f16(-2.0f), 0xC000);
    ck_assert(tsd_f16_to_f32(0x0001) == ldexpf(1, -24));
    ck_assert(tsd_f16_to_f32(0x8000) == 0.0f && signbit(tsd_f16_to_f32(0x8000)));
}
END_TEST

/* ---- records ---------------------------------------------------------------- */

static const char *USERS =
    "{\"name\": \"users\", \"fields\": ["
    " {\"name\": \"name\", \"type\": \"text\", \"nullable\": false, \"minLength\": 2, \"maxLength\": 5},"
    " {\"name\": \"email\", \"type\": \"text\", \"unique\": true},"
    " {\"name\": \"age\", \"type\": \"integer\", \"minValue\": 0, \"maxValue\": 150, \"defaultValue\": 18},"
    " {\"name\": \"score\", \"type\": \"double\", \"minValue\": -1.5, \"maxValue\": 1.5},"
    " {\"name\": \"big\", \"type\": \"bigInt\", \"minValue\": \"-100000000000000000000\","
    "  \"maxValue\": \"100000000000000000000\"},"
    " {\"name\": \"born\", \"type\": \"datetime\", \"minValue\": \"1900-01-01\", \"maxValue\": \"2100-01-01\"},"
    " {\"name\": \"created\", \"type\": \"datetime\", \"defaultValueType\": \"currentTimestamp\"},"
    " {\"name\": \"stamp\", \"type\": \"integer\", \"defaultValueType\": \"currentTimestamp\"},"
    " {\"name\": \"stext\", \"type\": \"text\", \"defaultValueType\": \"currentTimestamp\"},"
    " {\"name\": \"photo\", \"type\": \"blob\", \"minLength\": 1, \"maxLength\": 3},"
    " {\"name\": \"tags\", \"type\": \"array\", \"maxLength\": 2, \"defaultValue\": [\"new\"]},"
    " {\"name\": \"active\", \"type\": \"boolean\", \"nullable\": false, \"defaultValue\": true},"
    " {\"name\": \"code\", \"type\": \"text\", \"nullable\": false},"
    " {\"name\": \"a\", \"type\": \"integer\"}, {\"name\": \"b\", \"type\": \"integer\"}],"
    " \"indexes\": [{\"fields\": [\"a\", \"b\"], \"unique\": true}]}";

#define NOW 1704164645678LL /* 2024-01-02T03:04:05.678Z */

static int validate(const tsd_table *t, const char *rec_text, int mode, json_t **out)
{
    json_t *rec = J(rec_text);
    int rc = tsd_record_validate(&env, t, rec, mode, NOW, out);
    json_decref(rec);
    return rc;
}

START_TEST(insert_defaults_and_not_null)
{
    tsd_table *t = T(USERS);
    json_t *out, *want;
    ck_assert_int_eq(validate(t, "{\"name\": \"ann\", \"code\": \"x\"}", TSD_REC_INSERT, &out), TS_OK);
    want = J("{\"name\": \"ann\", \"email\": null, \"age\": 18, \"score\": null, \"big\": null,"
             " \"born\": null, \"created\": \"2024-01-02T03:04:05.678Z\", \"stamp\": 1704164645678,"
             " \"stext\": \"2024-01-02T03:04:05.678Z\", \"photo\": null, \"tags\": [\"new\"],"
             " \"active\": true, \"code\": \"x\", \"a\": null, \"b\": null}");
    assert_json_eq(out, want, "insert with defaults"); /* no "id": to be generated */
    ck_assert_ptr_null(json_object_get(out, "id"));
    /* the default is a copy: changing the output leaves the schema alone */
    json_array_append_new(json_object_get(out, "tags"), json_integer(1));
    ck_assert_uint_eq(json_array_size(t->cols[tsd_table_col(t, "tags")].default_value), 1);
    json_decref(out);
    json_decref(want);
    /* given values win over defaults, and explicit null is not "missing" */
    ck_assert_int_eq(validate(t, "{\"id\": 7, \"name\": \"bo\", \"code\": \"x\", \"age\": 30,"
                                 " \"tags\": null, \"created\": 0}", TSD_REC_INSERT, &out), TS_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(out, "id")), 7);
    ck_assert_int_eq(json_integer_value(json_object_get(out, "age")), 30);
    ck_assert(json_is_null(json_object_get(out, "tags")));
    ck_assert_str_eq(json_string_value(json_object_get(out, "created")), "1970-01-01T00:00:00.000Z");
    json_decref(out);
    /* not null */
    out = (json_t *)&env;
    ck_assert_int_eq(validate(t, "{\"name\": \"ann\"}", TSD_REC_INSERT, &out), TS_ERR_NOT_NULL);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(tsenv_errmsg(&env), "users.code: missing a value (not nullable, no default)");
    ck_assert_int_eq(validate(t, "{\"name\": null, \"code\": \"x\"}", TSD_REC_INSERT, &out),
                     TS_ERR_NOT_NULL);
    ck_assert_str_eq(tsenv_errmsg(&env), "users.name: null in a non-nullable field");
    ck_assert_int_eq(validate(t, "{\"name\": \"ab\", \"code\": \"x\", \"active\": null}",
                              TSD_REC_INSERT, &out), TS_ERR_NOT_NULL);
    ck_assert_str_eq(tsenv_errmsg(&env), "users.active: null in a non-nullable field");
    /* a null key on insert is "to be generated" */
    ck_assert_int_eq(validate(t, "{\"id\": null, \"name\": \"ab\", \"code\": \"x\"}",
                              TSD_REC_INSERT, &out), TS_OK);
    ck_assert_ptr_null(json_object_get(out, "id"));
    json_decref(out);
    tsd_table_free(t);
}
END_TEST

START_TEST(partial_mode)
{
    tsd_table *t = T(USERS);
    json_t *out;
    ck_assert_int_eq(validate(t, "{\"age\": 20.0}", TSD_REC_PARTIAL, &out), TS_OK);
    json_t *want = J("{\"age\": 20}");
    assert_json_eq(out, want, "partial"); /* no defaults, no missing-field errors */
    json_decref(want);
    json_decref(out);
    ck_assert_int_eq(validate(t, "{}", TSD_REC_PARTIAL, &out), TS_OK);
    ck_assert_uint_eq(json_object_size(out), 0);
    json_decref(out);
    ck_assert_int_eq(validate(t, "{\"code\": null}", TSD_REC_PARTIAL, &out), TS_ERR_NOT_NULL);
    ck_assert_int_eq(validate(t, "{\"id\": null}", TSD_REC_PARTIAL, &out), TS_ERR_NOT_NULL);
    ck_assert_str_eq(tsenv_errmsg(&env), "users.id: the primary key cannot be null");
    ck_assert_int_eq(validate(t, "{\"id\": \"k\", \"email\": null}", TSD_REC_PARTIAL, &out), TS_OK);
    want = J("{\"id\": \"k\", \"email\": null}");
    assert_json_eq(out, want, "partial with key");
    json_decref(want);
    json_decref(out);
    ck_assert_int_eq(validate(t, "{\"age\": 1}", 7, &out), TS_ERR_INVALID);
    tsd_table_free(t);
}
END_TEST

START_TEST(unknown_fields_and_shapes)
{
    tsd_table *t = T(USERS);
    json_t *out;
    ck_assert_int_eq(validate(t, "{\"name\": \"ab\", \"code\": \"x\", \"nmae\": 1}",
                              TSD_REC_INSERT, &out), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "users: unknown field 'nmae'");
    /* unknown keys are reported before any other problem */
    ck_assert_int_eq(validate(t, "{\"name\": 5, \"zz\": 1}", TSD_REC_PARTIAL, &out),
                     TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "users: unknown field 'zz'");
    ck_assert_int_eq(validate(t, "[1]", TSD_REC_INSERT, &out), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "users: a record is a JSON object");
    ck_assert_int_eq(tsd_record_validate(&env, t, NULL, TSD_REC_INSERT, 0, &out), TS_ERR_INVALID);
    json_t *empty = json_object();
    ck_assert_int_eq(tsd_record_validate(&env, NULL, empty, TSD_REC_INSERT, 0, &out),
                     TS_ERR_INVALID);
    json_decref(empty);
    /* the first failing column in column order is reported */
    ck_assert_int_eq(validate(t, "{\"age\": \"x\", \"name\": 5}", TSD_REC_PARTIAL, &out),
                     TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "users.name: expected a string, got an integer");
    tsd_table_free(t);
}
END_TEST

START_TEST(lengths_and_ranges)
{
    tsd_table *t = T(USERS);
    /* text lengths are code points, never truncated */
    ok1s(t, "name", "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"", "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"");
    bad1s(t, "name", "\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"", TS_ERR_VALIDATION,
          "users.name: 6 characters, above maxLength 5");
    bad1s(t, "name", "\"a\"", TS_ERR_VALIDATION, "users.name: 1 characters, below minLength 2");
    ok1s(t, "name", "\"\\ud83d\\ude00\\ud83d\\ude00\"", "\"\\ud83d\\ude00\\ud83d\\ude00\"");
    /* blob lengths are bytes */
    ok1s(t, "photo", "\"AAAA\"", "\"AAAA\"");
    bad1s(t, "photo", "\"AAAAAA==\"", TS_ERR_VALIDATION, "users.photo: 4 bytes, above maxLength 3");
    bad1s(t, "photo", "\"\"", TS_ERR_VALIDATION, "users.photo: 0 bytes, below minLength 1");
    /* array lengths are elements */
    ok1s(t, "tags", "[[1, 2, 3], \"x\"]", "[[1, 2, 3], \"x\"]");
    bad1s(t, "tags", "[1, 2, 3]", TS_ERR_VALIDATION, "users.tags: 3 elements, above maxLength 2");
    /* values */
    ok1s(t, "age", "0", "0");
    ok1s(t, "age", "150", "150");
    bad1s(t, "age", "151", TS_ERR_VALIDATION, "users.age: 151 is above maxValue 150");
    bad1s(t, "age", "-1", TS_ERR_VALIDATION, "users.age: -1 is below minValue 0");
    ok1s(t, "score", "1.5", "1.5");
    bad1s(t, "score", "1.5000001", TS_ERR_VALIDATION, "users.score: 1.5000001000000001 is above maxValue 1.5");
    bad1s(t, "score", "-2", TS_ERR_VALIDATION, "users.score: -2 is below minValue -1.5");
    ok1s(t, "big", "\"100000000000000000000\"", "\"100000000000000000000\"");
    ok1s(t, "big", "\"-100000000000000000000\"", "\"-100000000000000000000\"");
    ok1s(t, "big", "9223372036854775807", "9223372036854775807");
    bad1s(t, "big", "\"100000000000000000001\"", TS_ERR_VALIDATION,
          "users.big: 100000000000000000001 is above maxValue 100000000000000000000");
    bad1s(t, "big", "\"-1000000000000000000000\"", TS_ERR_VALIDATION,
          "users.big: -1000000000000000000000 is below minValue -100000000000000000000");
    ok1s(t, "born", "\"1900-01-01T00:00:00Z\"", "\"1900-01-01T00:00:00.000Z\"");
    bad1s(t, "born", "\"1899-12-31T23:59:59.999Z\"", TS_ERR_VALIDATION,
          "users.born: 1899-12-31T23:59:59.999Z is below minValue 1900-01-01T00:00:00.000Z");
    bad1s(t, "born", "4102444800001", TS_ERR_VALIDATION,
          "users.born: 2100-01-01T00:00:00.001Z is above maxValue 2100-01-01T00:00:00.000Z");
    tsd_table_free(t);
    /* a currentTimestamp default is checked like a given value */
    t = T("{\"name\": \"t\", \"fields\": [{\"name\": \"c\", \"type\": \"datetime\", \"maxValue\":"
          " \"2000-01-01\", \"defaultValueType\": \"currentTimestamp\"}]}");
    json_t *out;
    ck_assert_int_eq(validate(t, "{}", TSD_REC_INSERT, &out), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env),
                     "t.c: 2024-01-02T03:04:05.678Z is above maxValue 2000-01-01T00:00:00.000Z");
    tsd_table_free(t);
}
END_TEST

START_TEST(primary_keys)
{
    tsd_table *t = T("{\"name\": \"t\", \"fields\": []}");
    ok1s(t, "id", "5", "5");
    ok1s(t, "id", "5.0", "5");
    ok1s(t, "id", "\"abc\"", "\"abc\"");
    ok1s(t, "id", "\"5\"", "\"5\""); /* caller-supplied keys keep their type */
    bad1s(t, "id", "true", TS_ERR_VALIDATION, "t.id: a primary key is an integer or a string, got a boolean");
    bad1s(t, "id", "5.5", TS_ERR_VALIDATION, "t.id: 5.5 is not an integer within int64");
    bad1s(t, "id", "[1]", TS_ERR_VALIDATION, NULL);
    char *big = malloc(1100);
    memset(big, 'k', 1099);
    big[1099] = 0;
    json_t *bj = json_string(big);
    bad1(t, "id", bj, TS_ERR_RESOURCE, "t.id: a primary key of 1099 bytes is too long (its key "
                                       "would be 1102 bytes, over 1024)");
    json_decref(bj);
    big[1020] = 0; /* key: 1 + 1020 + 2 bytes */
    bj = json_string(big);
    char *want = malloc(1030);
    snprintf(want, 1030, "\"%s\"", big);
    ok1(t, "id", bj, want);
    free(want);
    json_decref(bj);
    free(big);
    tsd_table_free(t);
    /* declared types are strict */
    t = T("{\"name\": \"t\", \"fields\": [{\"name\": \"id\", \"type\": \"integer\"}]}");
    ok1s(t, "id", "5", "5");
    bad1s(t, "id", "\"5\"", TS_ERR_VALIDATION, "t.id: expected an integer, got a string");
    tsd_table_free(t);
    t = T("{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"shortCode\"}, \"fields\":"
          " [{\"name\": \"id\", \"type\": \"text\"}]}");
    ok1s(t, "id", "\"Ab9\"", "\"Ab9\"");
    bad1s(t, "id", "5", TS_ERR_VALIDATION, "t.id: expected a string, got an integer");
    tsd_table_free(t);
}
END_TEST

START_TEST(merge_and_upsert_target)
{
    tsd_table *t = T(USERS);
    json_t *base = J("{\"id\": 1, \"name\": \"ann\", \"age\": 20, \"tags\": [1]}");
    json_t *patch = J("{\"age\": 21, \"email\": null}"), *out;
    ck_assert_int_eq(tsd_record_merge(&env, t, base, patch, &out), TS_OK);
    json_t *want = J("{\"id\": 1, \"name\": \"ann\", \"age\": 21, \"tags\": [1], \"email\": null}");
    assert_json_eq(out, want, "merge");
    /* the output shares nothing with the inputs */
    json_array_append_new(json_object_get(out, "tags"), json_integer(2));
    ck_assert_uint_eq(json_array_size(json_object_get(base, "tags")), 1);
    json_decref(out);
    json_decref(want);
    json_decref(patch);
    patch = J("{\"nope\": 1}");
    ck_assert_int_eq(tsd_record_merge(&env, t, base, patch, &out), TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "users: unknown field 'nope'");
    ck_assert_int_eq(tsd_record_merge(&env, t, base, NULL, &out), TS_ERR_INVALID);
    json_decref(patch);
    json_decref(base);
    /* upsert targets: key, then email (unique field), then (a, b) */
    static const struct { const char *rec; long want; } cases[] = {
        { "{\"id\": 1, \"email\": \"e\", \"a\": 1, \"b\": 2}", TSD_TARGET_PK },
        { "{\"id\": null, \"email\": \"e\", \"a\": 1, \"b\": 2}", 0 },
        { "{\"email\": null, \"a\": 1, \"b\": 2}", 1 },
        { "{\"a\": 1}", TSD_TARGET_NONE },
        { "{\"a\": 1, \"b\": null}", TSD_TARGET_NONE },
        { "{}", TSD_TARGET_NONE },
    };
    ck_assert_str_eq(t->indexes[0].name, "uniq_email");
    ck_assert_str_eq(t->indexes[1].name, "idx_a_b");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *r = J(cases[i].rec);
        ck_assert_int_eq(tsd_upsert_target(t, r), cases[i].want);
        json_decref(r);
    }
    ck_assert_int_eq(tsd_upsert_target(NULL, NULL), TSD_TARGET_NONE);
    tsd_table_free(t);
}
END_TEST

START_TEST(limits)
{
    tsd_table *t = T("{\"name\": \"t\", \"fields\": [{\"name\": \"x\", \"type\": \"text\"},"
                     " {\"name\": \"y\", \"type\": \"text\"}, {\"name\": \"j\", \"type\": \"json\"},"
                     " {\"name\": \"b\", \"type\": \"blob\"}]}");
    size_t n = TSD_VALUE_MAX;
    char *s = malloc(n + 2);
    memset(s, 'a', n + 1);
    s[n + 1] = 0;
    /* a value of exactly 16 MiB passes validation, 16 MiB + 1 does not */
    json_t *v = json_stringn(s, n + 1);
    bad1(t, "x", v, TS_ERR_RESOURCE, "t.x: a text of 16777217 bytes is over the value limit of "
                                     "16777216 bytes");
    json_t *arr = json_pack("[O]", v);
    bad1(t, "j", arr, TS_ERR_RESOURCE, NULL);
    json_decref(arr);
    json_decref(v);
    v = json_stringn(s, n);
    json_t *rec = json_pack("{s:i, s:O}", "id", 1, "x", v), *out;
    ck_assert_int_eq(tsd_record_validate(&env, t, rec, TSD_REC_INSERT, 0, &out), TS_OK);
    /* but the row would be over 16 MiB */
    tsd_buf buf = { 0 };
    ck_assert_int_eq(tsd_row_encode(&env, t, out, &buf), TS_ERR_RESOURCE);
    ck_assert_int_eq(tsd_row_encode_record(&env, t, rec, NULL, 0, &buf), TS_ERR_RESOURCE);
    json_decref(out);
    json_decref(rec);
    json_decref(v);
    /* two values of 9 MiB each: each fine, the row is not */
    v = json_stringn(s, 9u << 20);
    rec = json_pack("{s:i, s:O, s:O}", "id", 1, "x", v, "y", v);
    ck_assert_int_eq(tsd_row_encode_record(&env, t, rec, NULL, 0, &buf), TS_ERR_RESOURCE);
    ck_assert_str_eq(tsenv_errmsg(&env), "t: a row of 18874383 bytes is over the limit of 16777216 bytes");
    json_decref(rec);
    json_decref(v);
    /* 8 MiB + 8 MiB - a little: fits */
    v = json_stringn(s, (8u << 20) - 100);
    rec = json_pack("{s:i, s:O, s:O}", "id", 1, "x", v, "y", v);
    ck_assert_int_eq(tsd_row_encode_record(&env, t, rec, NULL, 0, &buf), TS_OK);
    ck_assert_int_eq(tsd_row_decode(&env, t, buf.p, buf.len, &out), TS_OK);
    ck_assert_uint_eq(json_string_length(json_object_get(out, "y")), (8u << 20) - 100);
    json_decref(out);
    json_decref(rec);
    json_decref(v);
    /* a blob over the limit */
    size_t bn = tsd_base64_len(TSD_VALUE_MAX + 3);
    char *b64 = malloc(bn + 1);
    memset(b64, 'A', bn);
    b64[bn] = 0;
    v = json_string(b64);
    bad1(t, "b", v, TS_ERR_RESOURCE, NULL);
    json_decref(v);
    free(b64);
    free(s);
    tsd_buf_free(&buf);
    tsd_table_free(t);
}
END_TEST

/* ---- rows ---------------------------------------------------------------- */

START_TEST(row_round_trip_fixed)
{
    tsd_table *t = T(ALL);
    json_t *rec = J("{\"id\": -5, \"i\": 42, \"bi\": \"123456789012345678901234567890\","
                    " \"d\": 2.5, \"t\": \"h\\u00e9\", \"b\": \"AAEC\", \"bo\": false,"
                    " \"dt\": \"2024-01-02T03:04:05.678+01:00\", \"a\": [1, [2], {\"x\": 3.25}],"
                    " \"j\": {\"k\": \"v\"}, \"v32\": [1, 2, 3], \"v16\": [0.5, -1, 2],"
                    " \"v8\": [1, -1, 0.5]}");
    json_t *val, *dec;
    ck_assert_int_eq(tsd_record_validate(&env, t, rec, TSD_REC_INSERT, NOW, &val), TS_OK);
    tsd_buf buf = { 0 }, buf2 = { 0 };
    ck_assert_int_eq(tsd_row_encode(&env, t, val, &buf), TS_OK);
    ck_assert_int_eq(tsd_row_encode_record(&env, t, rec, NULL, NOW, &buf2), TS_OK);
    ck_assert_uint_eq(buf.len, buf2.len);
    ck_assert(memcmp(buf.p, buf2.p, buf.len) == 0);
    ck_assert_int_eq(tsd_row_decode(&env, t, buf.p, buf.len, &dec), TS_OK);
    assert_json_eq(dec, val, "decode(encode(x))");
    /* key order of a decoded row: the key, then the fields */
    const char *k;
    json_t *x;
    size_t c = 0;
    json_object_foreach(dec, k, x) ck_assert_str_eq(k, t->cols[c++].name);
    /* single fields */
    tsd_value v;
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 0, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_INT);
    ck_assert_int_eq(v.i, -5);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 1, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_INT);
    ck_assert_int_eq(v.i, 42);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 2, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_BIGDEC);
    ck_assert_int_eq(v.neg, 0);
    ck_assert_uint_eq(v.n, 30);
    ck_assert(memcmp(v.p, "123456789012345678901234567890", 30) == 0);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 3, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_DOUBLE);
    ck_assert(v.d == 2.5);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 4, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_TEXT);
    ck_assert_uint_eq(v.n, 3);
    ck_assert(memcmp(v.p, "h\xc3\xa9", 3) == 0);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 5, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_BLOB);
    ck_assert_uint_eq(v.n, 3);
    ck_assert(memcmp(v.p, "\x00\x01\x02", 3) == 0);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 6, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_BOOL);
    ck_assert_int_eq(v.i, 0);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 7, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_INT);
    ck_assert_int_eq(v.i, NOW - 3600000);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 8, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_JSON);
    ck_assert_uint_eq(v.n, strlen("[1,[2],{\"x\":3.25}]"));
    ck_assert(memcmp(v.p, "[1,[2],{\"x\":3.25}]", v.n) == 0);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 10, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_VECTOR);
    ck_assert_uint_eq(v.dims, 3);
    ck_assert_uint_eq(v.n, 12);
    ck_assert(memcmp(v.p, "\x00\x00\x80\x3f", 4) == 0); /* 1.0f, little endian */
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 12, &v), TS_OK);
    ck_assert_uint_eq(v.n, 3);
    ck_assert(v.scale == (float)(1.0 / 127));
    ck_assert_int_eq((int8_t)((const uint8_t *)v.p)[0], 127);
    ck_assert_int_eq((int8_t)((const uint8_t *)v.p)[1], -127);
    ck_assert_int_eq((int8_t)((const uint8_t *)v.p)[2], 64);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 13, &v), TS_ERR_INVALID);
    /* a key is required to encode */
    json_object_del(val, "id");
    ck_assert_int_eq(tsd_row_encode(&env, t, val, &buf), TS_ERR_INVALID);
    json_object_del(rec, "id");
    ck_assert_int_eq(tsd_row_encode_record(&env, t, rec, NULL, NOW, &buf), TS_ERR_INVALID);
    json_t *pk = json_string("given");
    ck_assert_int_eq(tsd_row_encode_record(&env, t, rec, pk, NOW, &buf), TS_OK);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 0, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_TEXT);
    ck_assert(v.n == 5 && memcmp(v.p, "given", 5) == 0);
    json_decref(pk);
    json_decref(rec);
    json_decref(val);
    json_decref(dec);
    tsd_buf_free(&buf);
    tsd_buf_free(&buf2);
    tsd_table_free(t);
}
END_TEST

START_TEST(row_nulls_and_size)
{
    tsd_table *t = T(ALL);
    json_t *rec = J("{\"id\": 1}"), *val, *dec;
    ck_assert_int_eq(tsd_record_validate(&env, t, rec, TSD_REC_INSERT, NOW, &val), TS_OK);
    tsd_buf buf = { 0 };
    ck_assert_int_eq(tsd_row_encode(&env, t, val, &buf), TS_OK);
    /* version, count, 2 bitmap bytes, length-section size, 1 length, 2 key bytes */
    ck_assert_uint_eq(buf.len, 8);
    ck_assert_int_eq(buf.p[0], 1);
    ck_assert_int_eq(buf.p[1], 13);
    ck_assert_int_eq(buf.p[2], 0xFE);
    ck_assert_int_eq(buf.p[3], 0x1F);
    ck_assert_int_eq(tsd_row_decode(&env, t, buf.p, buf.len, &dec), TS_OK);
    assert_json_eq(dec, val, "all nulls");
    ck_assert_uint_eq(json_object_size(dec), 13);
    for (size_t c = 1; c < 13; c++) {
        tsd_value v;
        ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, c, &v), TS_OK);
        ck_assert_int_eq(v.kind, TSD_V_NULL);
    }
    json_decref(dec);
    json_decref(val);
    json_decref(rec);
    tsd_buf_free(&buf);
    tsd_table_free(t);
}
END_TEST

/* The exact bytes of a row: the on-disk format must not drift. */
START_TEST(row_golden_bytes)
{
    tsd_table *t = T("{\"name\": \"g\", \"fields\": [{\"name\": \"i\", \"type\": \"integer\"},"
                     " {\"name\": \"d\", \"type\": \"double\"}, {\"name\": \"bo\", \"type\": \"boolean\"},"
                     " {\"name\": \"t\", \"type\": \"text\"}, {\"name\": \"n\", \"type\": \"integer\"},"
                     " {\"name\": \"bi\", \"type\": \"bigInt\"}, {\"name\": \"v\", \"type\": \"vector\","
                     " \"vectorConfig\": {\"dimensions\": 2, \"precision\": \"int8\"}}]}");
    json_t *rec = J("{\"id\": 300, \"i\": -2, \"d\": 1.0, \"bo\": true, \"t\": \"hi\", \"n\": null,"
                    " \"bi\": \"-12345678901234567890\", \"v\": [-2, 1]}");
    static const uint8_t want[] = {
        0x01,                   /* version */
        0x08,                   /* 8 columns */
        0x20,                   /* null bitmap: column 5 (n) */
        0x05,                   /* length section: 5 bytes */
        0x03, 0x01, 0x02, 0x15, 0x06, /* lengths of id, i, t, bi, v (d, bo: fixed) */
        0x00, 0xD8, 0x04,       /* id: integer tag, zigzag varint 600 */
        0x03,                   /* i: zigzag(-2) */
        0, 0, 0, 0, 0, 0, 0xF0, 0x3F, /* d: 1.0, little endian */
        0x01,                   /* bo */
        'h', 'i',               /* t */
        0x02, '1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '1', '2', '3', '4', '5', '6', '7',
        '8', '9', '0',          /* bi: negative, digits */
        0x04, 0x02, 0x81, 0x3C, /* v: scale 2/127 as float32 LE */
        0x81, 0x40,             /* v: -127, 64 */
    };
    tsd_buf buf = { 0 };
    ck_assert_int_eq(tsd_row_encode_record(&env, t, rec, NULL, 0, &buf), TS_OK);
    float scale = (float)(2.0 / 127);
    uint32_t sbits;
    memcpy(&sbits, &scale, 4);
    ck_assert_uint_eq(sbits, 0x3C810204u); /* the scale bytes above */
    ck_assert_uint_eq(buf.len, sizeof want);
    for (size_t k = 0; k < sizeof want; k++)
        ck_assert_msg(buf.p[k] == want[k], "byte %zu: %02x, want %02x", k, buf.p[k], want[k]);
    json_decref(rec);
    tsd_table_free(t);
    /* the example of docs/schema.md */
    t = T("{\"name\": \"doc\", \"fields\": [{\"name\": \"i\", \"type\": \"integer\"},"
          " {\"name\": \"d\", \"type\": \"double\"}, {\"name\": \"bo\", \"type\": \"boolean\"},"
          " {\"name\": \"t\", \"type\": \"text\"}]}");
    rec = J("{\"id\": 300, \"i\": -2, \"d\": 1.0, \"bo\": true, \"t\": \"hi\"}");
    static const uint8_t doc[] = { 0x01, 0x05, 0x00, 0x03, 0x03, 0x01, 0x02, 0x00, 0xD8, 0x04,
                                   0x03, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x01, 0x68, 0x69 };
    ck_assert_int_eq(tsd_row_encode(&env, t, rec, &buf), TS_OK);
    ck_assert_uint_eq(buf.len, sizeof doc);
    ck_assert(memcmp(buf.p, doc, sizeof doc) == 0);
    json_decref(rec);
    tsd_buf_free(&buf);
    tsd_table_free(t);
}
END_TEST

START_TEST(row_of_older_shape)
{
    tsd_table *v1 = T("{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"integer\"}]}");
    tsd_table *v2 = T("{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"integer\"},"
                      " {\"name\": \"b\", \"type\": \"text\"}]}");
    json_t *rec = J("{\"id\": 1, \"a\": 5}"), *dec;
    tsd_buf buf = { 0 };
    ck_assert_int_eq(tsd_row_encode(&env, v1, rec, &buf), TS_OK);
    ck_assert_int_eq(tsd_row_decode(&env, v2, buf.p, buf.len, &dec), TS_OK);
    json_t *want = J("{\"id\": 1, \"a\": 5, \"b\": null}");
    assert_json_eq(dec, want, "older row");
    tsd_value v;
    ck_assert_int_eq(tsd_row_field(&env, v2, buf.p, buf.len, 2, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_NULL);
    json_decref(dec);
    json_decref(want);
    /* a row with more columns than the table is refused */
    json_decref(rec);
    rec = J("{\"id\": 1, \"a\": 5, \"b\": \"x\"}");
    ck_assert_int_eq(tsd_row_encode(&env, v2, rec, &buf), TS_OK);
    ck_assert_int_eq(tsd_row_decode(&env, v1, buf.p, buf.len, &dec), TS_ERR_CORRUPT);
    json_decref(rec);
    tsd_buf_free(&buf);
    tsd_table_free(v1);
    tsd_table_free(v2);
}
END_TEST

/* ---- random records ---------------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t rnd_int(void)
{
    switch (rnd() % 4) {
    case 0: return (int64_t)(rnd() % 200) - 100;
    case 1: return (int64_t)rnd();
    case 2: return rnd() % 2 ? INT64_MAX : INT64_MIN;
    default: return (int64_t)(rnd() % 100000000) * (rnd() % 2 ? 1 : -1);
    }
}

static double rnd_double(void)
{
    for (;;) {
        uint64_t bits = rnd();
        double d;
        memcpy(&d, &bits, 8);
        if (rnd() % 2) d = (double)(int64_t)(rnd() % 2000) / 8 - 100;
        if (isfinite(d)) return d;
    }
}

/* Random UTF-8: ASCII (with NUL), 2, 3 and 4-byte code points. */
static size_t rnd_utf8(char *s, size_t max_chars)
{
    size_t n = 0, count = (size_t)(rnd() % (max_chars + 1));
    for (size_t i = 0; i < count; i++) {
        uint32_t cp;
        switch (rnd() % 4) {
        case 0: cp = (uint32_t)(rnd() % 0x80); break;
        case 1: cp = 0x80 + (uint32_t)(rnd() % 0x780); break;
        case 2: cp = 0x800 + (uint32_t)(rnd() % 0xF800); if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x41; break;
        default: cp = 0x10000 + (uint32_t)(rnd() % 0x100000); break;
        }
        if (cp < 0x80) {
            s[n++] = (char)cp;
        } else if (cp < 0x800) {
            s[n++] = (char)(0xC0 | cp >> 6);
            s[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            s[n++] = (char)(0xE0 | cp >> 12);
            s[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
            s[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            s[n++] = (char)(0xF0 | cp >> 18);
            s[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
            s[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
            s[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return n;
}

static json_t *rnd_json(int depth)
{
    switch (rnd() % (depth > 3 ? 5 : 7)) {
    case 0: return json_null();
    case 1: return json_boolean(rnd() % 2);
    case 2: return json_integer(rnd_int());
    case 3: return json_real(rnd_double());
    case 4: {
        char s[64];
        return json_stringn(s, rnd_utf8(s, 10));
    }
    case 5: {
        json_t *a = json_array();
        for (int i = (int)(rnd() % 4); i > 0; i--) json_array_append_new(a, rnd_json(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = (int)(rnd() % 4); i > 0; i--) {
            char k[8];
            snprintf(k, sizeof k, "k%d", (int)(rnd() % 10));
            json_object_set_new(o, k, rnd_json(depth + 1));
        }
        return o;
    }
    }
}

static json_t *rnd_digits(void)
{
    char s[64];
    size_t n = 0, nd = 1 + (size_t)(rnd() % 40);
    if (rnd() % 2) s[n++] = '-';
    for (size_t i = 0; i < nd; i++) s[n++] = (char)('0' + rnd() % 10);
    s[n] = 0;
    return json_string(s);
}

static json_t *rnd_value(const tsd_field *f)
{
    if (rnd() % 6 == 0) return json_null();
    switch (f->type) {
    case TSD_INTEGER: return rnd() % 5 ? json_integer(rnd_int()) : json_real((double)(rnd() % 1000));
    case TSD_BIGINT: return rnd() % 2 ? json_integer(rnd_int()) : rnd_digits();
    case TSD_DOUBLE: return rnd() % 4 ? json_real(rnd_double()) : json_integer(rnd_int() % 1000000);
    case TSD_TEXT: {
        char s[256];
        return json_stringn(s, rnd_utf8(s, 50));
    }
    case TSD_BLOB: {
        uint8_t b[40] = { 0 };
        char s[64];
        size_t n = (size_t)(rnd() % 40);
        for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rnd();
        tsd_base64_encode(b, n, s);
        if (rnd() % 2) while (n && s[strlen(s) - 1] == '=') s[strlen(s) - 1] = 0; /* unpadded */
        return json_string(s);
    }
    case TSD_BOOLEAN: return json_boolean(rnd() % 2);
    case TSD_DATETIME: {
        int64_t span = TSD_DATETIME_MAX_MS - TSD_DATETIME_MIN_MS + 1;
        int64_t ms = TSD_DATETIME_MIN_MS + (int64_t)(rnd() % (uint64_t)span);
        if (rnd() % 2) return json_integer(ms);
        char iso[TSD_DATETIME_BUF];
        tsd_datetime_format(ms, iso);
        return json_string(iso);
    }
    case TSD_ARRAY: {
        json_t *a = json_array();
        for (int i = (int)(rnd() % 5); i > 0; i--) json_array_append_new(a, rnd_json(1));
        return a;
    }
    case TSD_JSON: {
        json_t *j = rnd_json(0);
        if (json_is_null(j)) { json_decref(j); j = json_integer(0); }
        return j;
    }
    case TSD_VECTOR: {
        json_t *a = json_array();
        double scale = pow(10, (double)(rnd() % 7) - 3);
        for (uint32_t i = 0; i < f->dimensions; i++)
            json_array_append_new(a, json_real(((double)(rnd() % 2000001) / 1000000 - 1) * scale));
        return a;
    }
    default: return json_null();
    }
}

START_TEST(random_round_trips)
{
    tsd_table *t = T(ALL);
    tsd_buf buf = { 0 }, buf2 = { 0 };
    for (int iter = 0; iter < 5000; iter++) {
        json_t *rec = json_object();
        if (rnd() % 2) {
            json_object_set_new(rec, "id", json_integer(rnd_int()));
        } else {
            char s[256];
            json_object_set_new(rec, "id", json_stringn(s, rnd_utf8(s, 30)));
        }
        for (size_t c = 1; c < t->ncols; c++)
            if (rnd() % 8) json_object_set_new(rec, t->cols[c].name, rnd_value(&t->cols[c]));
        json_t *val, *val2, *dec;
        int rc = tsd_record_validate(&env, t, rec, TSD_REC_INSERT, NOW, &val);
        ck_assert_msg(rc == TS_OK, "%s: %s", tsenv_errmsg(&env), S(rec));
        /* normalization is idempotent */
        ck_assert_int_eq(tsd_record_validate(&env, t, val, TSD_REC_INSERT, NOW, &val2), TS_OK);
        assert_json_eq(val2, val, "validate(validate(x))");
        ck_assert_int_eq(tsd_row_encode(&env, t, val, &buf), TS_OK);
        ck_assert_int_eq(tsd_row_encode_record(&env, t, rec, NULL, NOW, &buf2), TS_OK);
        ck_assert(buf.len == buf2.len && memcmp(buf.p, buf2.p, buf.len) == 0);
        ck_assert_int_eq(tsd_row_decode(&env, t, buf.p, buf.len, &dec), TS_OK);
        assert_json_eq(dec, val, "decode(encode(validate(x)))");
        /* each field alone gives the same value */
        for (size_t c = 0; c < t->ncols; c++) {
            tsd_value v;
            json_t *j;
            ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, c, &v), TS_OK);
            ck_assert_int_eq(tsd_value_to_json(&env, &t->cols[c], &v, &j), TS_OK);
            assert_json_eq(j, json_object_get(val, t->cols[c].name), t->cols[c].name);
            json_decref(j);
        }
        /* every proper prefix of the row is refused as corrupt */
        for (size_t cut = 0; cut < buf.len; cut += 1 + buf.len / 40) {
            json_t *d2 = NULL;
            ck_assert_int_eq(tsd_row_decode(&env, t, buf.p, cut, &d2), TS_ERR_CORRUPT);
            ck_assert_ptr_null(d2);
        }
        /* damaged bytes: decoded or refused, never anything else */
        for (int k = 0; k < 4; k++) {
            size_t at = (size_t)(rnd() % buf.len);
            uint8_t keep = buf.p[at];
            buf.p[at] ^= (uint8_t)(1 + rnd() % 255);
            json_t *d2 = NULL;
            rc = tsd_row_decode(&env, t, buf.p, buf.len, &d2);
            ck_assert_msg(rc == TS_OK || rc == TS_ERR_CORRUPT, "rc %d", rc);
            for (size_t c = 0; c < t->ncols; c++) {
                tsd_value v;
                rc = tsd_row_field(&env, t, buf.p, buf.len, c, &v);
                ck_assert(rc == TS_OK || rc == TS_ERR_CORRUPT);
            }
            json_decref(d2);
            buf.p[at] = keep;
        }
        json_decref(rec);
        json_decref(val);
        json_decref(val2);
        json_decref(dec);
    }
    tsd_buf_free(&buf);
    tsd_buf_free(&buf2);
    tsd_table_free(t);
}
END_TEST

/* Rows that leave vectors to an index: tsd_row_strip drops the masked
 * non-null vectors (version-2 row; int8 keeps its scale), tsd_row_refs
 * names them, reading such a column is refused, and tsd_row_fill with the
 * same floats (int8: ones off by the scale's last bit too) gives back the
 * original bytes. */
START_TEST(rows_without_vectors)
{
    tsd_table *t = T(ALL);
    json_t *rec = J("{\"id\": 5, \"t\": \"x\", \"v32\": [1.5, -2, 0.25], \"v16\": [0.5, 3, -1],"
                    " \"v8\": [1, 2, 3]}");
    tsd_buf row = { 0 }, out = { 0 }, back = { 0 };
    ck_assert_int_eq(tsd_row_encode_record(&env, t, rec, NULL, 0, &row), TS_OK);
    ck_assert(!tsd_row_has_refs(row.p, row.len));
    size_t c32 = 10, c16 = 11, c8 = 12;   /* id first */
    ck_assert_str_eq(t->cols[c32].name, "v32");
    unsigned char strip[16] = { 0 }, refs[16];
    size_t n = 9;
    /* nothing masked: untouched */
    ck_assert_int_eq(tsd_row_strip(&env, t, row.p, row.len, strip, &out, &n), TS_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(out.len, 0);
    strip[c32] = strip[c16] = strip[c8] = 1;
    strip[4] = 1;   /* text: never left out */
    ck_assert_int_eq(tsd_row_strip(&env, t, row.p, row.len, strip, &out, &n), TS_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert(tsd_row_has_refs(out.p, out.len));
    ck_assert_uint_eq(out.len, row.len - 3 * 4 - 3 * 2 - 3);
    ck_assert_int_eq(tsd_row_refs(&env, t, out.p, out.len, refs), TS_OK);
    for (size_t c = 0; c < t->ncols; c++) ck_assert_int_eq(refs[c], c == c32 || c == c16 || c == c8);
    tsd_value v;
    ck_assert_int_eq(tsd_row_field(&env, t, out.p, out.len, c32, &v), TS_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(tsenv_errmsg(&env), "kept by the table's vector index"));
    ck_assert_int_eq(tsd_row_field(&env, t, out.p, out.len, 4, &v), TS_OK);
    ck_assert_uint_eq(v.n, 1);
    json_t *dec = NULL;
    ck_assert_int_eq(tsd_row_decode(&env, t, out.p, out.len, &dec), TS_ERR_CORRUPT);
    /* the floats an index gives back: the stored values, int8 ones with a
     * scale off in its last bit */
    float f32[3] = { 1.5f, -2, 0.25f }, f16[3] = { 0.5f, 3, -1 }, f8[3];
    ck_assert_int_eq(tsd_row_field(&env, t, row.p, row.len, c8, &v), TS_OK);
    ck_assert_int_eq(tsd_vector_floats(&env, &t->cols[c8], &v, f8), TS_OK);
    for (int i = 0; i < 3; i++) f8[i] = nextafterf(f8[i], 1000.0f);
    const float *vecs[16] = { 0 };
    vecs[c32] = f32;
    vecs[c16] = f16;
    vecs[c8] = f8;
    ck_assert_int_eq(tsd_row_fill(&env, t, out.p, out.len, vecs, &back), TS_OK);
    ck_assert_uint_eq(back.len, row.len);
    ck_assert(memcmp(back.p, row.p, row.len) == 0);
    strip[c8] = 0;
    ck_assert_int_eq(tsd_row_strip(&env, t, row.p, row.len, strip, &out, &n), TS_OK);
    ck_assert_uint_eq(n, 2);
    vecs[c16] = NULL;   /* a vector the index did not have */
    ck_assert_int_eq(tsd_row_fill(&env, t, out.p, out.len, vecs, &back), TS_ERR_CORRUPT);
    ck_assert_ptr_nonnull(strstr(tsenv_errmsg(&env), "missing from the table's vector index"));
    vecs[c16] = f16;
    ck_assert_int_eq(tsd_row_fill(&env, t, out.p, out.len, vecs, &back), TS_OK);
    ck_assert(!tsd_row_has_refs(back.p, back.len));
    ck_assert_uint_eq(back.len, row.len);
    ck_assert(memcmp(back.p, row.p, row.len) == 0);
    /* a null vector stays null */
    json_t *rec2 = J("{\"id\": 6, \"v16\": [1, 2, 3]}");
    ck_assert_int_eq(tsd_row_encode_record(&env, t, rec2, NULL, 0, &row), TS_OK);
    ck_assert_int_eq(tsd_row_strip(&env, t, row.p, row.len, strip, &out, &n), TS_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(tsd_row_field(&env, t, out.p, out.len, c32, &v), TS_OK);
    ck_assert_int_eq(v.kind, TSD_V_NULL);
    json_decref(rec);
    json_decref(rec2);
    tsd_buf_free(&row);
    tsd_buf_free(&out);
    tsd_buf_free(&back);
    tsd_table_free(t);
}
END_TEST

START_TEST(corrupt_rows)
{
    tsd_table *t = T(ALL);
    json_t *out = NULL;
    static const uint8_t wrong_version[] = { 3, 1, 0, 0 };
    ck_assert_int_eq(tsd_row_decode(&env, t, wrong_version, 4, &out), TS_ERR_CORRUPT);
    ck_assert_str_eq(tsenv_errmsg(&env), "all: unknown row format version 3");
    ck_assert_int_eq(tsd_row_decode(&env, t, NULL, 0, &out), TS_ERR_CORRUPT);
    static const uint8_t no_cols[] = { 1, 0, 0 };
    ck_assert_int_eq(tsd_row_decode(&env, t, no_cols, 3, &out), TS_ERR_CORRUPT);
    /* trailing bytes */
    static const uint8_t key_only_plus[] = { 1, 1, 0, 1, 2, 0, 2, 9 };
    tsd_table *k = T("{\"name\": \"k\", \"fields\": []}");
    ck_assert_int_eq(tsd_row_decode(&env, k, key_only_plus, 7, &out), TS_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(out, "id")), 1);
    json_decref(out);
    ck_assert_int_eq(tsd_row_decode(&env, k, key_only_plus, 8, &out), TS_ERR_CORRUPT);
    /* a bad key tag */
    static const uint8_t bad_tag[] = { 1, 1, 0, 1, 2, 7, 2 };
    ck_assert_int_eq(tsd_row_decode(&env, k, bad_tag, 7, &out), TS_ERR_CORRUPT);
    tsd_table_free(k);
    tsd_table_free(t);
}
END_TEST

/* ---- keys ------------------------------------------------------------------ */

static int sgn(int x)
{
    return (x > 0) - (x < 0);
}

/* A model of numeric order of decimal strings "[-]digits" (no leading 0s). */
static int dec_cmp(const char *a, const char *b)
{
    int na = a[0] == '-', nb = b[0] == '-';
    if (strcmp(a, "0") == 0) na = 0;
    if (strcmp(b, "0") == 0) nb = 0;
    if (na != nb) return na ? -1 : 1;
    const char *x = a + na, *y = b + nb;
    int r = strlen(x) != strlen(y) ? (strlen(x) < strlen(y) ? -1 : 1) : sgn(strcmp(x, y));
    return na ? -r : r;
}

/* The model order of two non-null normalized JSON values of field f. */
static int model_cmp(const tsd_field *f, const json_t *a, const json_t *b)
{
    switch (f->type) {
    case TSD_INTEGER: {
        int64_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    case TSD_BIGINT: {
        char sa[64], sb[64];
        if (json_is_integer(a)) snprintf(sa, sizeof sa, "%" JSON_INTEGER_FORMAT, json_integer_value(a));
        else snprintf(sa, sizeof sa, "%s", json_string_value(a));
        if (json_is_integer(b)) snprintf(sb, sizeof sb, "%" JSON_INTEGER_FORMAT, json_integer_value(b));
        else snprintf(sb, sizeof sb, "%s", json_string_value(b));
        return dec_cmp(sa, sb);
    }
    case TSD_DOUBLE: {
        double x = json_real_value(a), y = json_real_value(b);
        return (x > y) - (x < y);
    }
    case TSD_BOOLEAN:
        return json_is_true(a) - json_is_true(b);
    case TSD_DATETIME: /* ISO strings of fixed width, years 0000-9999: bytewise */
        return sgn(strcmp(json_string_value(a), json_string_value(b)));
    case TSD_BLOB: {
        uint8_t x[64], y[64];
        size_t xn, yn;
        tsd_base64_decode(json_string_value(a), json_string_length(a), x, &xn);
        tsd_base64_decode(json_string_value(b), json_string_length(b), y, &yn);
        int r = memcmp(x, y, xn < yn ? xn : yn);
        return r ? sgn(r) : (xn > yn) - (xn < yn);
    }
    case TSD_TEXT:
    case TSD_KEY:
    default:
        if (json_is_integer(a) && json_is_integer(b)) {
            int64_t x = json_integer_value(a), y = json_integer_value(b);
            return (x > y) - (x < y);
        }
        if (json_is_integer(a) != json_is_integer(b)) return json_is_integer(a) ? -1 : 1;
        {
            size_t xn = json_string_length(a), yn = json_string_length(b);
            int r = memcmp(json_string_value(a), json_string_value(b), xn < yn ? xn : yn);
            return r ? sgn(r) : (xn > yn) - (xn < yn);
        }
    }
}

static size_t key_of(const tsd_field *f, const json_t *v, uint8_t *buf, size_t cap)
{
    size_t off = 0;
    ck_assert_int_eq(tsd_json_key(&env, f, v, NULL, 0, &off), TS_OK); /* measure */
    ck_assert_uint_le(off, cap);
    size_t need = off;
    off = 0;
    ck_assert_int_eq(tsd_json_key(&env, f, v, buf, cap, &off), TS_OK);
    ck_assert_uint_eq(off, need);
    return off;
}

START_TEST(key_order_matches_value_order)
{
    tsd_table *t = T(ALL);
    static const char *const fields[] = { "id", "i", "bi", "d", "t", "b", "bo", "dt", NULL };
    for (int fi = 0; fields[fi]; fi++) {
        const tsd_field *f = &t->cols[tsd_table_col(t, fields[fi])];
        for (int iter = 0; iter < 20000; iter++) {
            json_t *ra, *rb, *a = NULL, *b = NULL;
            if (f->is_pk) {
                char s[256];
                ra = rnd() % 2 ? json_integer(rnd_int()) : json_stringn(s, rnd_utf8(s, 6));
                rb = rnd() % 2 ? json_integer(rnd_int()) : json_stringn(s, rnd_utf8(s, 6));
            } else {
                do { ra = rnd_value(f); } while (json_is_null(ra) && (json_decref(ra), 1));
                do { rb = rnd_value(f); } while (json_is_null(rb) && (json_decref(rb), 1));
            }
            if (iter % 10 == 0) { json_decref(rb); rb = json_deep_copy(ra); }
            ck_assert_int_eq(tsd_coerce(&env, f, ra, &a), TS_OK);
            ck_assert_int_eq(tsd_coerce(&env, f, rb, &b), TS_OK);
            if (f->is_pk) { /* untyped keys keep the caller's type */
                json_decref(a); json_decref(b);
                a = json_incref(ra); b = json_incref(rb);
            }
            uint8_t ka[400], kb[400];
            size_t na = key_of(f, a, ka, sizeof ka), nb = key_of(f, b, kb, sizeof kb);
            int r = memcmp(ka, kb, na < nb ? na : nb);
            int kc = r ? sgn(r) : (na > nb) - (na < nb);
            int mc = model_cmp(f, a, b);
            ck_assert_msg(kc == mc, "%s: %s vs %s: key order %d, value order %d", f->name, S(a),
                          S(b), kc, mc);
            /* tsd_value_cmp agrees too */
            tsd_value va, vb;
            ck_assert_int_eq(tsd_value_from_json(&env, f, a, &va), TS_OK);
            ck_assert_int_eq(tsd_value_from_json(&env, f, b, &vb), TS_OK);
            ck_assert_int_eq(sgn(tsd_value_cmp(f, &va, &vb)), mc);
            /* keys decode with tostore/keys.h */
            size_t off = 0;
            ts_key_item it;
            ck_assert_int_eq(ts_key_next(ka, na, &off, &it), 1);
            ck_assert_uint_eq(off, na);
            /* null sorts first */
            uint8_t kn[4];
            size_t nn = 0;
            json_t *nul = json_null();
            ck_assert_int_eq(tsd_json_key(&env, f, nul, kn, sizeof kn, &nn), TS_OK);
            ck_assert(nn == 1 && memcmp(kn, ka, 1) < 0);
            json_decref(nul);
            tsd_value_clear(&va);
            tsd_value_clear(&vb);
            json_decref(a);
            json_decref(b);
            json_decref(ra);
            json_decref(rb);
        }
    }
    /* exact bigInt layouts around int64 */
    const tsd_field *f = &t->cols[tsd_table_col(t, "bi")];
    static const char *const ordered[] = {
        "\"-100000000000000000000\"", "\"-9223372036854775809\"", "-9223372036854775808", "-10",
        "-9", "-1", "0", "1", "9", "10", "9223372036854775807", "\"9223372036854775808\"",
        "\"10000000000000000000000\"", NULL
    };
    uint8_t prev[64];
    size_t pn = 0;
    for (int i = 0; ordered[i]; i++) {
        json_t *v = J(ordered[i]), *c;
        uint8_t k[64];
        ck_assert_int_eq(tsd_coerce(&env, f, v, &c), TS_OK);
        size_t n = key_of(f, c, k, sizeof k);
        if (i) ck_assert_msg(memcmp(prev, k, pn < n ? pn : n) < 0, "%s", ordered[i]);
        memcpy(prev, k, n);
        pn = n;
        json_decref(v);
        json_decref(c);
    }
    /* not indexable */
    json_t *arr = J("[1]");
    size_t off = 0;
    ck_assert_int_eq(tsd_json_key(&env, &t->cols[tsd_table_col(t, "a")], arr, NULL, 0, &off),
                     TS_ERR_VALIDATION);
    ck_assert_str_eq(tsenv_errmsg(&env), "all.a: array values cannot be part of an index key");
    json_decref(arr);
    tsd_table_free(t);
}
END_TEST

START_TEST(pk_and_index_keys_from_rows)
{
    tsd_table *t = T("{\"name\": \"t\", \"fields\": [{\"name\": \"a\", \"type\": \"integer\"},"
                     " {\"name\": \"s\", \"type\": \"text\"}], \"indexes\": [{\"fields\":"
                     " [\"s\", \"a\"]}]}");
    json_t *rec = J("{\"id\": \"k1\", \"a\": -3, \"s\": \"x\\u0000y\"}");
    tsd_buf buf = { 0 };
    ck_assert_int_eq(tsd_row_encode(&env, t, rec, &buf), TS_OK);
    uint8_t k[64], want[64];
    size_t off = 0, woff = 0;
    ck_assert_int_eq(tsd_row_pk_key(&env, t, buf.p, buf.len, k, sizeof k, &off), TS_OK);
    woff = ts_key_text(want, sizeof want, 0, "k1", 2);
    ck_assert_uint_eq(off, woff);
    ck_assert(memcmp(k, want, off) == 0);
    off = 0;
    ck_assert_int_eq(tsd_pk_key(&env, json_object_get(rec, "id"), k, sizeof k, &off), TS_OK);
    ck_assert(off == woff && memcmp(k, want, off) == 0);
    off = 0;
    ck_assert_int_eq(tsd_row_index_key(&env, t, &t->indexes[0], buf.p, buf.len, k, sizeof k, &off),
                     TS_OK);
    woff = ts_key_text(want, sizeof want, 0, "x\0y", 3);
    woff = ts_key_int(want, sizeof want, woff, -3);
    ck_assert_uint_eq(off, woff);
    ck_assert(memcmp(k, want, off) == 0);
    /* a query value coerced from a string gives the same key as the row */
    json_t *q = json_string("-3"), *c;
    ck_assert_int_eq(tsd_coerce(&env, &t->cols[1], q, &c), TS_OK);
    uint8_t kq[16], kr[16];
    size_t nq = 0, nr = 0;
    tsd_value v;
    ck_assert_int_eq(tsd_json_key(&env, &t->cols[1], c, kq, sizeof kq, &nq), TS_OK);
    ck_assert_int_eq(tsd_row_field(&env, t, buf.p, buf.len, 1, &v), TS_OK);
    ck_assert_int_eq(tsd_value_key(&env, &t->cols[1], &v, kr, sizeof kr, &nr), TS_OK);
    ck_assert(nq == nr && memcmp(kq, kr, nq) == 0);
    /* integer keys before string keys */
    json_t *ik = json_integer(INT64_MAX), *sk = json_string("");
    uint8_t a1[16], a2[16];
    size_t n1 = 0, n2 = 0;
    ck_assert_int_eq(tsd_pk_key(&env, ik, a1, sizeof a1, &n1), TS_OK);
    ck_assert_int_eq(tsd_pk_key(&env, sk, a2, sizeof a2, &n2), TS_OK);
    ck_assert(memcmp(a1, a2, 1) < 0);
    json_t *bad = json_true();
    ck_assert_int_eq(tsd_pk_key(&env, bad, a1, sizeof a1, &n1), TS_ERR_VALIDATION);
    json_decref(bad);
    json_decref(ik);
    json_decref(sk);
    json_decref(q);
    json_decref(c);
    json_decref(rec);
    tsd_buf_free(&buf);
    tsd_table_free(t);
}
END_TEST

/* ---- coercion --------------------------------------------------------------- */

static void co(const tsd_table *t, const char *field, const char *in, int code, const char *want)
{
    const tsd_field *f = &t->cols[tsd_table_col(t, field)];
    json_t *j = J(in), *out = (json_t *)&env;
    int rc = tsd_coerce(&env, f, j, &out);
    ck_assert_msg(rc == code, "%s <- %s: want %d, got %d (%s)", field, in, code, rc,
                  rc ? tsenv_errmsg(&env) : "accepted");
    if (rc == TS_OK) {
        json_t *w = J(want);
        char what[200];
        snprintf(what, sizeof what, "%s <- %s", field, in);
        assert_json_eq(out, w, what);
        json_decref(w);
        json_decref(out);
    } else {
        ck_assert_ptr_null(out);
    }
    json_decref(j);
}

START_TEST(coercion)
{
    tsd_table *t = T(ALL);
    co(t, "i", "\"20\"", TS_OK, "20");
    co(t, "i", "\"-0020\"", TS_OK, "-20");
    co(t, "i", "20.0", TS_OK, "20");
    co(t, "i", "null", TS_OK, "null");
    co(t, "i", "\"abc\"", TS_ERR_VALIDATION, NULL);
    co(t, "i", "\"20.5\"", TS_ERR_VALIDATION, NULL);
    co(t, "i", "\"9223372036854775808\"", TS_ERR_VALIDATION, NULL);
    co(t, "i", "true", TS_ERR_VALIDATION, NULL);
    co(t, "bi", "\"123456789012345678901234\"", TS_OK, "\"123456789012345678901234\"");
    co(t, "d", "\"2.5\"", TS_OK, "2.5");
    co(t, "d", "\"-1e3\"", TS_OK, "-1000.0");
    co(t, "d", "3", TS_OK, "3.0");
    co(t, "d", "\"inf\"", TS_ERR_VALIDATION, NULL);
    co(t, "d", "\"nan\"", TS_ERR_VALIDATION, NULL);
    co(t, "d", "\"0x10\"", TS_ERR_VALIDATION, NULL);
    co(t, "d", "\"1e999\"", TS_ERR_VALIDATION, NULL);
    co(t, "d", "\"\"", TS_ERR_VALIDATION, NULL);
    co(t, "t", "2", TS_OK, "\"2\"");
    co(t, "t", "\"x\"", TS_OK, "\"x\"");
    co(t, "t", "2.5", TS_ERR_VALIDATION, NULL);
    co(t, "bo", "\"true\"", TS_OK, "true");
    co(t, "bo", "\"false\"", TS_OK, "false");
    co(t, "bo", "1", TS_OK, "true");
    co(t, "bo", "0", TS_OK, "false");
    co(t, "bo", "2", TS_ERR_VALIDATION, NULL);
    co(t, "bo", "\"yes\"", TS_ERR_VALIDATION, NULL);
    co(t, "dt", "\"1704164645678\"", TS_OK, "\"2024-01-02T03:04:05.678Z\"");
    co(t, "dt", "\"2024-01-02T04:04:05.678+01:00\"", TS_OK, "\"2024-01-02T03:04:05.678Z\"");
    co(t, "dt", "1704164645678", TS_OK, "\"2024-01-02T03:04:05.678Z\"");
    co(t, "dt", "\"soon\"", TS_ERR_VALIDATION, NULL);
    co(t, "b", "\"AAE\"", TS_OK, "\"AAE=\"");
    co(t, "a", "[1, 2]", TS_OK, "[1, 2]");
    co(t, "a", "5", TS_ERR_VALIDATION, NULL);
    co(t, "j", "{\"x\": 1}", TS_OK, "{\"x\": 1}");
    co(t, "v32", "[1, 2, 3]", TS_OK, "[1.0, 2.0, 3.0]");
    co(t, "v32", "[1, 2]", TS_ERR_VALIDATION, NULL);
    /* the untyped key of a sequential table: digit strings are integers */
    co(t, "id", "\"2\"", TS_OK, "2");
    co(t, "id", "2", TS_OK, "2");
    co(t, "id", "2.0", TS_OK, "2");
    co(t, "id", "\"abc\"", TS_OK, "\"abc\"");
    co(t, "id", "\"99999999999999999999\"", TS_OK, "\"99999999999999999999\"");
    co(t, "id", "true", TS_ERR_VALIDATION, NULL);
    tsd_table_free(t);
    t = T("{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"shortCode\"}, \"fields\": []}");
    co(t, "id", "2", TS_OK, "\"2\"");
    co(t, "id", "\"2\"", TS_OK, "\"2\"");
    tsd_table_free(t);
    t = T("{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"none\"}, \"fields\": []}");
    co(t, "id", "2", TS_OK, "2");
    co(t, "id", "\"2\"", TS_OK, "\"2\"");
    tsd_table_free(t);
    t = T("{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"none\"}, \"fields\": [{\"name\":"
          " \"id\", \"type\": \"integer\"}]}");
    co(t, "id", "\"2\"", TS_OK, "2");
    co(t, "id", "\"x\"", TS_ERR_VALIDATION, NULL);
    tsd_table_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("record");
    TCase *tv = tcase_create("values");
    tcase_add_checked_fixture(tv, setup, teardown);
    tcase_set_timeout(tv, 120);
    tcase_add_test(tv, integer_rules);
    tcase_add_test(tv, bigint_rules);
    tcase_add_test(tv, double_text_bool_rules);
    tcase_add_test(tv, blob_rules);
    tcase_add_test(tv, base64_vectors);
    tcase_add_test(tv, utf8_rules);
    tcase_add_test(tv, datetime_rules);
    tcase_add_test(tv, datetime_format_parse_property);
    tcase_add_test(tv, array_json_rules);
    tcase_add_test(tv, vector_rules);
    tcase_add_test(tv, half_float);
    tcase_add_test(tv, coercion);
    suite_add_tcase(s, tv);
    TCase *tr = tcase_create("records");
    tcase_add_checked_fixture(tr, setup, teardown);
    tcase_set_timeout(tr, 120);
    tcase_add_test(tr, insert_defaults_and_not_null);
    tcase_add_test(tr, partial_mode);
    tcase_add_test(tr, unknown_fields_and_shapes);
    tcase_add_test(tr, lengths_and_ranges);
    tcase_add_test(tr, primary_keys);
    tcase_add_test(tr, merge_and_upsert_target);
    tcase_add_test(tr, limits);
    suite_add_tcase(s, tr);
    TCase *tw = tcase_create("rows");
    tcase_add_checked_fixture(tw, setup, teardown);
    tcase_set_timeout(tw, 300);
    tcase_add_test(tw, row_round_trip_fixed);
    tcase_add_test(tw, row_nulls_and_size);
    tcase_add_test(tw, row_golden_bytes);
    tcase_add_test(tw, row_of_older_shape);
    tcase_add_test(tw, random_round_trips);
    tcase_add_test(tw, corrupt_rows);
    tcase_add_test(tw, rows_without_vectors);
    tcase_add_test(tw, key_order_matches_value_order);
    tcase_add_test(tw, pk_and_index_keys_from_rows);
    suite_add_tcase(s, tw);
    return s;
}

int main(void)
{
    return tst_run(suite());
}
