/*
 * Queries through the public header only (issue 6): every operator with
 * nulls, coercion and LIKE edge cases; builder errors; AND/OR precedence,
 * nested groups and custom predicates; ordering, limits, offsets and the
 * default limit; joins, counts, aggregates, updates, deletes, streams and
 * the query cache.
 *
 * The core is model-based (model_random_queries): a table of a few hundred
 * random rows, random condition trees (every operator, nested groups,
 * custom predicates, coerced values), random orders, limits and offsets,
 * each compared with a reference evaluated here over the JSON rows.  Set
 * TS_QUERY_SEED to replay another seed; TS_QUERY_ROUNDS for more queries.
 *
 * Plans and cursor pages are in test_query_pages.c, live queries in
 * test_query_watch.c.
 *
 * JSON in the tests is written with single quotes (J() turns them into
 * double quotes), so no test value contains an apostrophe.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tostore/tostore.h>
#include "tsupport.h"

/* ---- helpers ----------------------------------------------------------- */

#define TT_NAME "query"
#define TT_DEFAULTS "\"durability\": \"normal\""
#include "tables_support.h"

static json_t *NUL(void) { return keep(json_null()); }

static char *dumps(const json_t *v)
{
    return keep_str(json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS));
}

/* Run q (must succeed); the result is the caller's. */
static ts_result *run(ts_query *q)
{
    ts_result *r = NULL;
    int rc = ts_query_exec(q, &r);
    ck_assert_msg(rc == TS_OK, "ts_query_exec: %d", rc);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* The values of field f of the result's rows, comma-separated (kept). */
static const char *col_of(const ts_result *r, const char *f)
{
    size_t cap = 64 + 24 * ts_result_count(r);
    char *b = keep_str(calloc(1, cap));
    size_t o = 0;
    for (size_t i = 0; i < ts_result_count(r); i++) {
        const json_t *v = json_object_get(ts_result_row(r, i), f);
        ck_assert_msg(v != NULL, "row %zu has no field '%s'", i, f);
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (json_is_string(v)) {
            free(t);
            t = strdup(json_string_value(v));
        }
        size_t tl = strlen(t);
        if (o + tl + 2 >= cap) { cap = (o + tl + 2) * 2; b = realloc(b, cap); spool[nspool - 1] = b; }
        o += (size_t)snprintf(b + o, cap - o, "%s%s", i ? "," : "", t);
        free(t);
    }
    return b;
}

/* Run q (must succeed) and return field f of its rows; frees nothing of q. */
static const char *qcol(ts_query *q, const char *f)
{
    ts_result *r = run(q);
    const char *s = col_of(r, f);
    ts_result_free(r);
    return s;
}

static const char *qids(ts_query *q) { return qcol(q, "id"); }

/* A query with one condition; its ids. */
static const char *where_ids(ts_db *db, const char *t, const char *f, const char *op, json_t *v)
{
    ts_query *q = ts_where(ts_query_new(db, t), f, op, v);
    const char *s = qids(q);
    ts_query_free(q);
    return s;
}

static int where_rc(ts_db *db, const char *t, const char *f, const char *op, json_t *v)
{
    ts_query *q = ts_where(ts_query_new(db, t), f, op, v);
    ts_result *r = NULL;
    int rc = ts_query_exec(q, &r);
    if (rc == TS_OK) ck_assert_ptr_nonnull(r);
    else ck_assert_ptr_null(r);
    ts_result_free(r);
    ts_query_free(q);
    return rc;
}

static int64_t qcount(ts_query *q)
{
    int64_t n = -1;
    int rc = ts_query_count(q, &n);
    ck_assert_msg(rc == TS_OK, "ts_query_count: %d", rc);
    return n;
}

static json_t *qagg(ts_query *q, const char *fn, const char *f)
{
    json_t *v = NULL;
    int rc = ts_query_aggregate(q, fn, f, &v);
    ck_assert_msg(rc == TS_OK, "aggregate %s(%s): %d", fn, f, rc);
    ck_assert_ptr_nonnull(v);
    return keep(v);
}

/* Every row of a stream; *n the count; the ids comma-separated (kept). */
static const char *stream_ids(ts_query *q, size_t *n)
{
    ts_stream *s = NULL;
    int rc = ts_query_stream(q, &s);
    ck_assert_msg(rc == TS_OK, "ts_query_stream: %d", rc);
    json_t *arr = json_array();
    json_t *row;
    while ((rc = ts_stream_next(s, &row)) == 1) json_array_append_new(arr, row);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(ts_stream_next(s, &row), 0);
    ts_stream_free(s);
    size_t cap = 16 + 12 * json_array_size(arr), o = 0;
    char *b = keep_str(calloc(1, cap));
    for (size_t i = 0; i < json_array_size(arr); i++)
        o += (size_t)snprintf(b + o, cap - o, "%s%lld", i ? "," : "",
                              (long long)json_integer_value(json_object_get(json_array_get(arr, i), "id")));
    if (n) *n = json_array_size(arr);
    json_decref(arr);
    return b;
}

/* "1,2,...,n" style ranges for expectations (kept). */
static const char *seq(long from, long to)
{
    size_t cap = 16 + 12 * (size_t)(to >= from ? to - from + 1 : 1), o = 0;
    char *b = keep_str(calloc(1, cap));
    for (long i = from; i <= to; i++) o += (size_t)snprintf(b + o, cap - o, "%s%ld", i > from ? "," : "", i);
    return b;
}

/* ---- the people table of the targeted tests ------------------------------ */

static void people(ts_db *db)
{
    create(db, "{'name': 'p', 'fields': [{'name': 'name', 'type': 'text', 'createIndex': true},"
               "{'name': 'age', 'type': 'integer', 'createIndex': true},"
               "{'name': 'score', 'type': 'double'}, {'name': 'tag', 'type': 'text'},"
               "{'name': 'city', 'type': 'text'}]}");
    ins_i(db, "p", "{'name': 'ann', 'age': 20, 'score': 1.5, 'tag': 'x', 'city': 'oslo'}");
    ins_i(db, "p", "{'name': 'bob', 'age': 30, 'score': 2.5, 'tag': null, 'city': 'rome'}");
    ins_i(db, "p", "{'name': 'cid', 'age': null, 'score': 0.5, 'tag': 'y', 'city': 'oslo'}");
    ins_i(db, "p", "{'name': 'dan', 'age': 20, 'score': null, 'tag': 'x', 'city': null}");
    ins_i(db, "p", "{'name': 'eve', 'age': 40, 'score': 3.0, 'tag': 'z', 'city': 'rome'}");
    ins_i(db, "p", "{'name': 'fay', 'age': 25, 'score': 2.0, 'tag': null, 'city': 'paris'}");
    ins_i(db, "p", "{'name': 'gus', 'age': null, 'score': null, 'tag': null, 'city': null}");
    ins_i(db, "p", "{'name': 'hal', 'age': 30, 'score': 4.5, 'tag': 'y', 'city': 'oslo'}");
}

/* ---- operators, nulls, coercion ----------------------------------------- */

START_TEST(operators)
{
    ts_db *db = open_db(NULL);
    people(db);
    ck_assert_str_eq(where_ids(db, "p", "age", "=", I(20)), "1,4");
    ck_assert_str_eq(where_ids(db, "p", "age", "!=", I(20)), "2,5,6,8");
    ck_assert_str_eq(where_ids(db, "p", "age", "<>", I(20)), "2,5,6,8");
    ck_assert_str_eq(where_ids(db, "p", "age", ">", I(25)), "2,5,8");
    ck_assert_str_eq(where_ids(db, "p", "age", ">=", I(25)), "2,5,6,8");
    ck_assert_str_eq(where_ids(db, "p", "age", "<", I(25)), "1,4");
    ck_assert_str_eq(where_ids(db, "p", "age", "<=", I(25)), "1,4,6");
    ck_assert_str_eq(where_ids(db, "p", "age", "IN", J("[20, 40]")), "1,4,5");
    ck_assert_str_eq(where_ids(db, "p", "age", "IN", J("[]")), "");
    ck_assert_str_eq(where_ids(db, "p", "age", "NOT IN", J("[20, 30]")), "5,6");
    ck_assert_str_eq(where_ids(db, "p", "age", "NOT IN", J("[]")), "1,2,4,5,6,8");
    ck_assert_str_eq(where_ids(db, "p", "age", "BETWEEN", J("[25, 30]")), "2,6,8");
    ck_assert_str_eq(where_ids(db, "p", "age", "BETWEEN", J("[30, 25]")), "");
    ck_assert_str_eq(where_ids(db, "p", "age", "IS", NUL()), "3,7");
    ck_assert_str_eq(where_ids(db, "p", "age", "IS NOT", NUL()), "1,2,4,5,6,8");
    /* operators are case-insensitive */
    ck_assert_str_eq(where_ids(db, "p", "age", "in", J("[25]")), "6");
    ck_assert_str_eq(where_ids(db, "p", "age", "Not In", J("[20, 30, 40]")), "6");
    ck_assert_str_eq(where_ids(db, "p", "age", "between", J("[40, 50]")), "5");
    ck_assert_str_eq(where_ids(db, "p", "age", "is", NUL()), "3,7");
    ck_assert_str_eq(where_ids(db, "p", "age", "is not", NUL()), "1,2,4,5,6,8");
    ck_assert_str_eq(where_ids(db, "p", "name", "like", S("_a_")), "4,6,8");
    ck_assert_str_eq(where_ids(db, "p", "name", "not like", S("%a%")), "2,3,5,7");
    /* doubles (an integer or a numeric string is coerced) */
    ck_assert_str_eq(where_ids(db, "p", "score", ">", I(2)), "2,5,8");
    ck_assert_str_eq(where_ids(db, "p", "score", "=", I(2)), "6");
    ck_assert_str_eq(where_ids(db, "p", "score", "=", S("2.5")), "2");
    ck_assert_str_eq(where_ids(db, "p", "score", "<=", J("1.5")), "1,3");
    /* text: byte order */
    ck_assert_str_eq(where_ids(db, "p", "name", ">", S("eve")), "6,7,8");
    ck_assert_str_eq(where_ids(db, "p", "name", "BETWEEN", J("['b', 'd']")), "2,3");
    ck_assert_str_eq(where_ids(db, "p", "name", "IN", J("['ann', 'zed', 'hal']")), "1,8");
    /* the primary key */
    ck_assert_str_eq(where_ids(db, "p", "id", "=", I(3)), "3");
    ck_assert_str_eq(where_ids(db, "p", "id", "IN", J("[7, 2, 99, 2]")), "2,7");
    ck_assert_str_eq(where_ids(db, "p", "id", ">", I(6)), "7,8");
    ck_assert_str_eq(where_ids(db, "p", "id", "NOT IN", J("[1, 2, 3, 4]")), "5,6,7,8");
    ck_assert_str_eq(where_ids(db, "p", "id", "BETWEEN", J("[3, 5]")), "3,4,5");
    ts_close(db);
}
END_TEST

/* A value given twice in IN (or equal after coercion) still matches each
 * row once, whatever the plan. */
START_TEST(in_repeated_values)
{
    ts_db *db = open_db(NULL);
    people(db);
    create(db, "{'name': 'hx', 'fields': [{'name': 'h', 'type': 'integer'}, {'name': 'x', 'type': 'integer'}],"
               "'indexes': [{'fields': ['h'], 'type': 'hash'}]}");
    ins_i(db, "hx", "{'h': 1, 'x': 1}");
    ins_i(db, "hx", "{'h': 2, 'x': 2}");
    ins_i(db, "hx", "{'h': 1, 'x': 3}");
    ck_assert_str_eq(where_ids(db, "p", "id", "IN", J("[2, 2, '2']")), "2");        /* key */
    ck_assert_str_eq(where_ids(db, "p", "score", "IN", J("[2.5, 2.5]")), "2");     /* no index */
    ck_assert_str_eq(where_ids(db, "p", "age", "IN", J("[20, 20]")), "1,4");       /* btree index */
    ck_assert_str_eq(where_ids(db, "p", "age", "IN", J("[20, '20', 30]")), "1,2,4,8");
    ck_assert_str_eq(where_ids(db, "p", "name", "IN", J("['ann', 'ann']")), "1");
    ck_assert_str_eq(where_ids(db, "hx", "h", "IN", J("[1, 1]")), "1,3");          /* hash index */
    ts_query *q = ts_where(ts_query_new(db, "p"), "age", "IN", J("[30, 30]"));
    ck_assert_int_eq(qcount(q), 2);
    ck_assert_str_eq(dumps(qagg(q, "sum", "age")), "60");
    int64_t n = -1;
    ck_assert_int_eq(ts_query_update(q, J("{'tag': 't'}"), &n), TS_OK);
    ck_assert_int_eq(n, 2);
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "p", "tag", "=", S("t")), "2,8");
    ts_close(db);
}
END_TEST

START_TEST(nulls_sql_semantics)
{
    ts_db *db = open_db(NULL);
    people(db);
    /* tag: 'x' 1,4; 'y' 3,8; 'z' 5; null 2,6,7 -- a null field never
     * matches a comparison, IN, NOT IN, LIKE or NOT LIKE */
    ck_assert_str_eq(where_ids(db, "p", "tag", "!=", S("x")), "3,5,8");
    ck_assert_str_eq(where_ids(db, "p", "tag", "<>", S("x")), "3,5,8");
    ck_assert_str_eq(where_ids(db, "p", "tag", ">", S("")), "1,3,4,5,8");
    ck_assert_str_eq(where_ids(db, "p", "tag", "<", S("zzz")), "1,3,4,5,8");
    ck_assert_str_eq(where_ids(db, "p", "tag", "<=", S("x")), "1,4");
    ck_assert_str_eq(where_ids(db, "p", "tag", "NOT IN", J("['x']")), "3,5,8");
    ck_assert_str_eq(where_ids(db, "p", "tag", "IN", J("['x', 'z']")), "1,4,5");
    ck_assert_str_eq(where_ids(db, "p", "tag", "NOT LIKE", S("x%")), "3,5,8");
    ck_assert_str_eq(where_ids(db, "p", "tag", "LIKE", S("%")), "1,3,4,5,8");
    ck_assert_str_eq(where_ids(db, "p", "tag", "BETWEEN", J("['a', 'z']")), "1,3,4,5,8");
    ck_assert_str_eq(where_ids(db, "p", "tag", "IS", NUL()), "2,6,7");
    ck_assert_str_eq(where_ids(db, "p", "tag", "IS NOT", NUL()), "1,3,4,5,8");
    /* indexed field with nulls: the planner must not bring nulls in */
    ck_assert_str_eq(where_ids(db, "p", "age", "<", I(100)), "1,2,4,5,6,8");
    ck_assert_str_eq(where_ids(db, "p", "age", "<=", I(20)), "1,4");
    ck_assert_str_eq(where_ids(db, "p", "age", "!=", I(-1)), "1,2,4,5,6,8");
    ck_assert_str_eq(where_ids(db, "p", "age", "NOT IN", J("[-1]")), "1,2,4,5,6,8");
    ck_assert_str_eq(where_ids(db, "p", "city", "NOT IN", J("['oslo', 'rome']")), "6");
    /* = null and friends are refused: IS / IS NOT test null */
    ck_assert_int_eq(where_rc(db, "p", "tag", "=", NUL()), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "tag", "!=", NUL()), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "tag", "<", NUL()), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "tag", "IS", S("x")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "tag", "IS NOT", I(0)), TS_ERR_VALIDATION);
    /* nulls sort first ascending, last descending (ties: name) */
    ts_query *q = ts_order_by(ts_order_by(ts_query_new(db, "p"), "tag", 0), "name", 0);
    ck_assert_str_eq(qids(q), "2,6,7,1,4,3,8,5");
    ts_query_free(q);
    q = ts_order_by(ts_order_by(ts_query_new(db, "p"), "tag", 1), "name", 0);
    ck_assert_str_eq(qids(q), "5,3,8,1,4,2,6,7");
    ts_query_free(q);
    /* also through the indexed field (ordered index scan or sort alike) */
    q = ts_order_by(ts_query_new(db, "p"), "age", 0);
    ck_assert_str_eq(qcol(q, "age"), "null,null,20,20,25,30,30,40");
    ck_assert_str_eq(qids(q), "3,7,1,4,6,2,8,5");
    ts_limit(q, 3);
    ck_assert_str_eq(qids(q), "3,7,1");
    ts_query_free(q);
    q = ts_order_by(ts_query_new(db, "p"), "age", 1);
    ck_assert_str_eq(qcol(q, "age"), "40,30,30,25,20,20,null,null");
    ts_limit(q, 3);
    ck_assert_str_eq(qcol(q, "age"), "40,30,30");
    ts_query_free(q);
    ts_close(db);
}
END_TEST

START_TEST(coercion)
{
    ts_db *db = open_db(NULL);
    people(db);
    /* "20" matches integer 20, on the index and off it */
    ck_assert_str_eq(where_ids(db, "p", "age", "=", S("20")), "1,4");
    ck_assert_str_eq(where_ids(db, "p", "age", ">", S("25")), "2,5,8");
    ck_assert_str_eq(where_ids(db, "p", "age", "IN", J("['30', 40]")), "2,5,8");
    ck_assert_str_eq(where_ids(db, "p", "age", "NOT IN", J("['30', 40, '20']")), "6");
    ck_assert_str_eq(where_ids(db, "p", "age", "BETWEEN", J("['21', '30']")), "2,6,8");
    ck_assert_str_eq(where_ids(db, "p", "age", "=", J("20.0")), "1,4");
    ck_assert_str_eq(where_ids(db, "p", "id", "=", S("5")), "5");
    ck_assert_str_eq(where_ids(db, "p", "id", "IN", J("['1', 2]")), "1,2");
    /* a number for a text field is its decimal text */
    create(db, "{'name': 'codes', 'fields': [{'name': 'c', 'type': 'text', 'createIndex': true},"
               "{'name': 'd', 'type': 'text'}]}");
    ins_i(db, "codes", "{'c': '7', 'd': '7'}");
    ins_i(db, "codes", "{'c': '70', 'd': '70'}");
    ck_assert_str_eq(where_ids(db, "codes", "c", "=", I(7)), "1");
    ck_assert_str_eq(where_ids(db, "codes", "d", "=", I(70)), "2");
    ck_assert_str_eq(where_ids(db, "codes", "d", "IN", J("[7, 70]")), "1,2");
    /* impossible coercions */
    ck_assert_int_eq(where_rc(db, "p", "age", "=", S("abc")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "=", S("20x")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", ">", J("true")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "=", J("2.5")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "IN", J("[20, 'x']")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "NOT IN", J("['x']")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "BETWEEN", J("[1, 'x']")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "score", "=", S("nan")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "score", "<", S("1.5z")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "name", "=", J("true")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "id", "=", J("[1]")), TS_ERR_VALIDATION);
    /* wrong value shapes */
    ck_assert_int_eq(where_rc(db, "p", "age", "IN", I(20)), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "NOT IN", S("20")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "BETWEEN", J("[1]")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "BETWEEN", J("[1, 2, 3]")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "BETWEEN", I(1)), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "=", J("[20]")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "=", J("{'a': 1}")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "name", "LIKE", I(5)), TS_ERR_VALIDATION);
    ts_close(db);
}
END_TEST

START_TEST(like_edge_cases)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'w', 'fields': [{'name': 's', 'type': 'text'},"
               "{'name': 'x', 'type': 'text', 'createIndex': true}]}");
    static const char *const vals[] = {
        "",            /* 1 */
        "a",           /* 2 */
        "abc",         /* 3 */
        "a_c",         /* 4 */
        "a%c",         /* 5 */
        "aXc",         /* 6 */
        "ABC",         /* 7 */
        "h\xc3\xa9llo",            /* 8: héllo (2-byte é) */
        "h\xe2\x82\xacllo",        /* 9: h€llo (3-byte €) */
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", /* 10: 日本語 */
        "x\\y",        /* 11: x\y */
        "h\xf0\x9f\x98\x80llo",    /* 12: h😀llo (4-byte) */
        "abcabc",      /* 13 */
    };
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        json_t *rec = keep(json_pack("{s:s, s:s}", "s", vals[i], "x", vals[i]));
        ck_assert_int_eq(ts_insert(db, "w", rec, NULL), TS_OK);
    }
    ins_i(db, "w", "{'s': null, 'x': null}"); /* 14 */
    static const struct { const char *pat, *ids; } cases[] = {
        { "", "1" },
        { "%", "1,2,3,4,5,6,7,8,9,10,11,12,13" },
        { "%%", "1,2,3,4,5,6,7,8,9,10,11,12,13" },
        { "a", "2" },
        { "A", "" },                 /* case-sensitive */
        { "abc", "3" },
        { "ABC", "7" },
        { "a_c", "3,4,5,6" },
        { "a\\_c", "4" },            /* escaped _ */
        { "a\\%c", "5" },            /* escaped % */
        { "a%c", "3,4,5,6,13" },
        { "a%", "2,3,4,5,6,13" },
        { "%c", "3,4,5,6,13" },
        { "_", "2" },
        { "___", "3,4,5,6,7,10,11" }, /* 日本語 is 3 characters, x\y too */
        { "h_llo", "8,9,12" },        /* _ is one code point of any length */
        { "h__llo", "" },
        { "h%llo", "8,9,12" },
        { "\xe6\x97\xa5_\xe8\xaa\x9e", "10" },
        { "_\xe6\x9c\xac_", "10" },
        { "%\xe6\x9c\xac%", "10" },
        { "x\\\\y", "11" },           /* \\ is one backslash */
        { "%\\\\%", "11" },
        { "x_y", "11" },
        { "%abc", "3,13" },
        { "abc%abc", "13" },
        { "%bc%bc", "13" },
        { "_%_", "3,4,5,6,7,8,9,10,11,12,13" },
        { "%_%_%_%_%_%_%", "13" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        for (int k = 0; k < 2; k++) {
            const char *f = k ? "x" : "s"; /* off and on an index, alike */
            const char *got = where_ids(db, "w", f, "LIKE", S(cases[i].pat));
            ck_assert_msg(strcmp(got, cases[i].ids) == 0, "%s LIKE '%s': expected [%s], got [%s]", f,
                          cases[i].pat, cases[i].ids, got);
            /* NOT LIKE: the other non-null rows */
            char want[256] = "";
            for (int id = 1; id <= 13; id++) {
                char idb[8], padded[300];
                snprintf(idb, sizeof idb, "%d", id);
                snprintf(padded, sizeof padded, ",%s,", cases[i].ids);
                char needle[12];
                snprintf(needle, sizeof needle, ",%d,", id);
                if (!strstr(padded, needle))
                    snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", *want ? "," : "", idb);
            }
            got = where_ids(db, "w", f, "NOT LIKE", S(cases[i].pat));
            ck_assert_msg(strcmp(got, want) == 0, "%s NOT LIKE '%s': expected [%s], got [%s]", f,
                          cases[i].pat, want, got);
        }
    }
    ts_close(db);
}
END_TEST

/* ---- builder errors ------------------------------------------------------ */

static int pred_true(const json_t *row, void *ctx) { (void)row; (void)ctx; return 1; }

START_TEST(errors)
{
    ts_db *db = open_db(NULL);
    people(db);
    /* unknown table: every executing call */
    ts_query *q = ts_query_new(db, "nope");
    ck_assert_ptr_nonnull(q);
    ts_result *r = (ts_result *)1;
    int64_t n = 7;
    json_t *v = NULL;
    ts_stream *st = NULL;
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(r);
    ck_assert_str_ne(ts_errmsg(db), "");
    ck_assert_int_eq(ts_query_count(q, &n), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_query_aggregate(q, "sum", "age", &v), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(ts_query_update(ts_allow_all(q), J("{'age': 1}"), &n), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_query_delete(q, &n), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_query_stream(q, &st), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(st);
    ck_assert_int_eq(ts_query_explain(q, &v), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(v);
    ts_query_free(q);

    /* unknown fields: where, order by, select, aggregate, join */
    ck_assert_int_eq(where_rc(db, "p", "nope", "=", I(1)), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "p.nope", "=", I(1)), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "other.age", "=", I(1)), TS_ERR_VALIDATION);
    ck_assert_str_eq(where_ids(db, "p", "p.age", "=", I(40)), "5"); /* table.field on the queried table */
    q = ts_order_by(ts_query_new(db, "p"), "nope", 0);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    const char *bad_sel[] = { "name", "nope" };
    q = ts_select(ts_query_new(db, "p"), bad_sel, 2);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_query_new(db, "p");
    ck_assert_int_eq(ts_query_aggregate(q, "sum", "nope", &v), TS_ERR_VALIDATION);
    ts_query_free(q);

    /* unknown operators */
    ck_assert_int_eq(where_rc(db, "p", "age", "==", I(1)), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "LIKEE", S("x")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "", I(1)), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "NOTIN", J("[1]")), TS_ERR_VALIDATION);
    ck_assert_int_eq(where_rc(db, "p", "age", "=>", I(1)), TS_ERR_VALIDATION);

    /* a builder error is kept (later builders do not clear it) and every
     * executing call returns it */
    q = ts_where(ts_query_new(db, "p"), "age", "===", I(1));
    ts_where(q, "age", "=", I(20));
    ts_limit(q, 5);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ck_assert_str_ne(ts_errmsg(db), "");
    ck_assert_int_eq(ts_query_count(q, &n), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_aggregate(q, "max", "age", &v), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_update(q, J("{'age': 1}"), &n), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_delete(q, &n), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_stream(q, &st), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_explain(q, &v), TS_ERR_VALIDATION);
    ts_query_free(q);
    ck_assert_int_eq(count(db, "p"), 8);
    ck_assert_int_eq(row_i(db, "p", 1) != NULL, 1);

    /* negative limit / offset: from the executing call */
    q = ts_limit(ts_query_new(db, "p"), -1);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_count(q, &n), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_offset(ts_query_new(db, "p"), -5);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);

    /* an error inside a nested group reaches the query */
    ts_cond *c = ts_cond_where(ts_cond_new(), "age", "bogus", I(1));
    ts_cond *outer = ts_cond_add(ts_cond_where(ts_cond_new(), "age", "=", I(1)), c);
    q = ts_where_cond(ts_query_new(db, "p"), outer);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    c = ts_cond_where(ts_cond_new(), "nope", "=", I(1));
    q = ts_where_cond(ts_query_new(db, "p"), c);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);

    /* builders on a NULL query return NULL */
    ck_assert_ptr_null(ts_query_new(NULL, "p"));
    ck_assert_ptr_null(ts_where(NULL, "age", "=", I(1)));
    ck_assert_ptr_null(ts_or(NULL));
    ck_assert_ptr_null(ts_where_cond(NULL, ts_cond_where(ts_cond_new(), "age", "=", I(1))));
    ck_assert_ptr_null(ts_where_custom(NULL, pred_true, NULL));
    ck_assert_ptr_null(ts_order_by(NULL, "age", 0));
    ck_assert_ptr_null(ts_limit(NULL, 1));
    ck_assert_ptr_null(ts_limit(NULL, -1));
    ck_assert_ptr_null(ts_offset(NULL, 1));
    ck_assert_ptr_null(ts_cursor(NULL, "x"));
    ck_assert_ptr_null(ts_select(NULL, bad_sel, 2));
    ck_assert_ptr_null(ts_join(NULL, "p", "p.id", "=", "p.id"));
    ck_assert_ptr_null(ts_left_join(NULL, "p", "p.id", "=", "p.id"));
    ck_assert_ptr_null(ts_allow_all(NULL));
    ck_assert_ptr_null(ts_use_cache(NULL, 100));
    ck_assert_ptr_null(ts_no_cache(NULL));
    ck_assert_ptr_null(ts_cond_where(NULL, "age", "=", I(1)));
    ck_assert_ptr_null(ts_cond_or(NULL));
    ck_assert_ptr_null(ts_cond_add(NULL, ts_cond_new()));
    /* executing calls on a NULL query */
    ck_assert_int_eq(ts_query_exec(NULL, &r), TS_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(ts_query_count(NULL, &n), TS_ERR_INVALID);
    ck_assert_int_eq(ts_query_delete(NULL, &n), TS_ERR_INVALID);
    ck_assert_int_eq(ts_query_clear_cache(NULL), TS_ERR_INVALID);
    ts_query_free(NULL);
    ts_cond_free(NULL);
    ts_result_free(NULL);
    ts_stream_free(NULL);
    ck_assert_uint_eq(ts_result_count(NULL), 0);
    ck_assert_ptr_null(ts_result_row(NULL, 0));

    /* builders chain: each returns q */
    q = ts_query_new(db, "p");
    ck_assert_ptr_eq(ts_where(q, "age", ">", I(0)), q);
    ck_assert_ptr_eq(ts_or(q), q);
    ck_assert_ptr_eq(ts_where(q, "age", "IS", NUL()), q);
    ck_assert_ptr_eq(ts_order_by(q, "name", 1), q);
    ck_assert_ptr_eq(ts_limit(q, 3), q);
    ck_assert_ptr_eq(ts_offset(q, 1), q);
    ck_assert_ptr_eq(ts_where_custom(q, pred_true, NULL), q);
    ck_assert_ptr_eq(ts_allow_all(q), q);
    ck_assert_ptr_eq(ts_use_cache(q, 1000), q);
    ck_assert_ptr_eq(ts_no_cache(q), q);
    ck_assert_str_eq(qcol(q, "name"), "gus,fay,eve");
    ck_assert_ptr_eq(ts_result_row(r = run(q), 3), NULL);
    ts_result_free(r);
    ts_query_free(q);
    ts_close(db);
}
END_TEST

/* A query may be changed after it ran and run again. */
START_TEST(rerun_after_change)
{
    ts_db *db = open_db(NULL);
    people(db);
    ts_query *q = ts_where(ts_query_new(db, "p"), "age", ">=", I(20));
    ck_assert_str_eq(qids(q), "1,2,4,5,6,8");
    ts_where(q, "tag", "=", S("x"));
    ck_assert_str_eq(qids(q), "1,4");
    ts_limit(q, 1);
    ck_assert_str_eq(qids(q), "1");
    ts_limit(q, 5);
    ts_offset(q, 1);
    ck_assert_str_eq(qids(q), "4");
    ts_offset(q, 0);
    ts_order_by(q, "id", 1);
    ck_assert_str_eq(qids(q), "4,1");
    int64_t n = 0;
    ck_assert_int_eq(ts_query_count(q, &n), TS_OK);
    ck_assert_int_eq(n, 2);
    /* the data changed in between: the next run sees it */
    ins_i(db, "p", "{'name': 'ian', 'age': 21, 'tag': 'x'}");
    ck_assert_str_eq(qids(q), "9,4,1");
    ts_query_free(q);
    ts_close(db);
}
END_TEST

/* ---- AND / OR, groups, custom predicates --------------------------------- */

START_TEST(and_or_precedence)
{
    ts_db *db = open_db(NULL);
    people(db);
    /* age = 20 AND tag = 'x' OR city = 'rome' AND age = 40: (1,4) + (5);
     * left to right it would be 5 alone */
    ts_query *q = ts_query_new(db, "p");
    ts_where(q, "age", "=", I(20));
    ts_where(q, "tag", "=", S("x"));
    ts_or(q);
    ts_where(q, "city", "=", S("rome"));
    ts_where(q, "age", "=", I(40));
    ck_assert_str_eq(qids(q), "1,4,5");
    ck_assert_int_eq(qcount(q), 3);
    ts_query_free(q);
    /* city = 'oslo' OR city = 'rome' AND age = 30: oslo (1,3,8) + (2,8) */
    q = ts_query_new(db, "p");
    ts_where(q, "city", "=", S("oslo"));
    ts_or(q);
    ts_where(q, "city", "=", S("rome"));
    ts_where(q, "age", "=", I(30));
    ck_assert_str_eq(qids(q), "1,2,3,8");
    ts_query_free(q);
    /* three OR branches on indexes (a union) and one AND */
    q = ts_query_new(db, "p");
    ts_where(q, "name", "=", S("ann"));
    ts_or(q);
    ts_where(q, "age", "=", I(40));
    ts_or(q);
    ts_where(q, "id", "=", I(7));
    ts_where(q, "name", "=", S("gus"));
    ck_assert_str_eq(qids(q), "1,5,7");
    ts_query_free(q);
    /* OR then AND on the same indexed field */
    q = ts_query_new(db, "p");
    ts_where(q, "age", "<", I(21));
    ts_or(q);
    ts_where(q, "age", ">", I(35));
    ts_where(q, "name", "!=", S("eve"));
    ck_assert_str_eq(qids(q), "1,4");
    ts_query_free(q);
    /* ts_or before the first condition changes nothing */
    q = ts_or(ts_query_new(db, "p"));
    ts_where(q, "age", "=", I(25));
    ck_assert_str_eq(qids(q), "6");
    ts_query_free(q);
    ts_close(db);
}
END_TEST

START_TEST(nested_groups)
{
    ts_db *db = open_db(NULL);
    people(db);
    /* name != 'hal' AND (tag = 'y' OR (age > 25 AND (city = 'rome' OR name = 'fay'))) */
    ts_cond *c3 = ts_cond_new();
    ck_assert_ptr_eq(ts_cond_where(c3, "city", "=", S("rome")), c3);
    ck_assert_ptr_eq(ts_cond_or(c3), c3);
    ts_cond_where(c3, "name", "=", S("fay"));
    ts_cond *c2 = ts_cond_where(ts_cond_new(), "age", ">", I(25));
    ck_assert_ptr_eq(ts_cond_add(c2, c3), c2);
    ts_cond *c1 = ts_cond_or(ts_cond_where(ts_cond_new(), "tag", "=", S("y")));
    ts_cond_add(c1, c2);
    ts_query *q = ts_where(ts_query_new(db, "p"), "name", "!=", S("hal"));
    ck_assert_ptr_eq(ts_where_cond(q, c1), q);
    ck_assert_str_eq(qids(q), "2,3,5");
    ck_assert_int_eq(qcount(q), 3);
    ts_query_free(q);

    /* a group ORed at the top: age IS NULL OR (city = 'oslo' AND (score > 1 AND (tag = 'y'))) */
    ts_cond *d3 = ts_cond_where(ts_cond_new(), "tag", "=", S("y"));
    ts_cond *d2 = ts_cond_add(ts_cond_where(ts_cond_new(), "score", ">", I(1)), d3);
    ts_cond *d1 = ts_cond_add(ts_cond_where(ts_cond_new(), "city", "=", S("oslo")), d2);
    q = ts_where(ts_query_new(db, "p"), "age", "IS", NUL());
    ts_or(q);
    ts_where_cond(q, d1);
    ck_assert_str_eq(qids(q), "3,7,8");
    ts_query_free(q);

    /* (age = 20 OR age = 30) AND (city = 'oslo' OR city IS NULL): 1,4,8 */
    ts_cond *e1 = ts_cond_where(ts_cond_or(ts_cond_where(ts_cond_new(), "age", "=", I(20))), "age", "=", I(30));
    ts_cond *e2 = ts_cond_where(ts_cond_or(ts_cond_where(ts_cond_new(), "city", "=", S("oslo"))), "city", "IS", NUL());
    q = ts_where_cond(ts_where_cond(ts_query_new(db, "p"), e1), e2);
    ck_assert_str_eq(qids(q), "1,4,8");
    ts_query_free(q);

    /* an empty group matches everything; a group of one is its condition */
    q = ts_where_cond(ts_query_new(db, "p"), ts_cond_new());
    ck_assert_str_eq(qids(q), "1,2,3,4,5,6,7,8");
    ts_query_free(q);

    /* groups nest deeper than 3 */
    ts_cond *g = ts_cond_where(ts_cond_new(), "id", ">", I(0));
    for (int i = 0; i < 10; i++) {
        ts_cond *up = ts_cond_where(ts_cond_new(), "id", "<", I(100 - i));
        g = ts_cond_add(up, g);
    }
    q = ts_where_cond(ts_where(ts_query_new(db, "p"), "age", "=", I(30)), g);
    ck_assert_str_eq(qids(q), "2,8");
    ts_query_free(q);

    /* a group freed unused */
    ts_cond_free(ts_cond_add(ts_cond_new(), ts_cond_where(ts_cond_new(), "age", "=", I(1))));
    ts_close(db);
}
END_TEST

typedef struct pred_ctx {
    int calls;
    size_t fields;
    double min_score;
} pred_ctx;

static int pred_score(const json_t *row, void *ctx)
{
    pred_ctx *c = ctx;
    c->calls++;
    c->fields = json_object_size(row);
    const json_t *s = json_object_get(row, "score");
    return json_is_number(s) && json_number_value(s) > c->min_score;
}

START_TEST(custom_predicates)
{
    ts_db *db = open_db(NULL);
    people(db);
    pred_ctx c = { 0, 0, 2.0 };
    ts_query *q = ts_where_custom(ts_query_new(db, "p"), pred_score, &c);
    ck_assert_str_eq(qids(q), "2,5,8");
    ck_assert_int_ge(c.calls, 8);
    ck_assert_uint_eq(c.fields, 6); /* id + 5 fields, nulls included */
    ts_query_free(q);
    /* ANDed with conditions; ORed */
    c.calls = 0;
    q = ts_where_custom(ts_where(ts_query_new(db, "p"), "city", "=", S("rome")), pred_score, &c);
    ck_assert_str_eq(qids(q), "2,5");
    ck_assert_int_ge(c.calls, 2);
    ck_assert_int_eq(qcount(q), 2);
    ts_query_free(q);
    c.min_score = 4.0;
    q = ts_where(ts_query_new(db, "p"), "age", "=", I(20));
    ts_or(q);
    ts_where_custom(q, pred_score, &c);
    ck_assert_str_eq(qids(q), "1,4,8");
    ts_query_free(q);
    /* the select list does not hide fields from the predicate */
    const char *sel[] = { "name" };
    c.min_score = 2.0;
    q = ts_select(ts_where_custom(ts_query_new(db, "p"), pred_score, &c), sel, 1);
    ck_assert_str_eq(qcol(q, "name"), "bob,eve,hal");
    ck_assert_uint_eq(c.fields, 6);
    ts_query_free(q);
    /* a NULL predicate is a builder error */
    q = ts_where_custom(ts_query_new(db, "p"), NULL, NULL);
    ts_result *r = NULL;
    ck_assert_int_lt(ts_query_exec(q, &r), 0);
    ck_assert_ptr_null(r);
    ts_query_free(q);
    /* updates and deletes honour custom predicates */
    c.min_score = 4.0;
    q = ts_where_custom(ts_query_new(db, "p"), pred_score, &c);
    int64_t n = 0;
    ck_assert_int_eq(ts_query_delete(q, &n), TS_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(count(db, "p"), 7);
    ts_query_free(q);
    ts_close(db);
}
END_TEST

/* ---- order, limit, offset, select ----------------------------------------- */

START_TEST(order_limit_offset)
{
    ts_db *db = open_db(NULL);
    people(db);
    ts_query *q = ts_order_by(ts_order_by(ts_query_new(db, "p"), "city", 0), "age", 1);
    ck_assert_str_eq(qids(q), "4,7,8,1,3,6,5,2");
    ts_limit(q, 3);
    ck_assert_str_eq(qids(q), "4,7,8");
    ts_offset(q, 2);
    ck_assert_str_eq(qids(q), "8,1,3");
    ts_offset(q, 7);
    ck_assert_str_eq(qids(q), "2");
    ts_offset(q, 8);
    ck_assert_str_eq(qids(q), "");
    ts_offset(q, 100);
    ck_assert_str_eq(qids(q), "");
    ts_limit(q, 0);
    ts_offset(q, 0);
    ck_assert_str_eq(qids(q), "");
    ts_query_free(q);
    q = ts_order_by(ts_order_by(ts_query_new(db, "p"), "city", 1), "score", 0);
    ck_assert_str_eq(qids(q), "2,5,6,3,1,8,4,7");
    ts_query_free(q);
    /* three fields: age asc, city desc, name desc */
    q = ts_order_by(ts_order_by(ts_order_by(ts_query_new(db, "p"), "age", 0), "city", 1), "name", 1);
    ck_assert_str_eq(qids(q), "3,7,1,4,6,2,8,5");
    ts_query_free(q);
    /* by the key, both ways; by a double */
    q = ts_order_by(ts_query_new(db, "p"), "id", 1);
    ck_assert_str_eq(qids(q), "8,7,6,5,4,3,2,1");
    ts_offset(ts_limit(q, 2), 1);
    ck_assert_str_eq(qids(q), "7,6");
    ts_query_free(q);
    q = ts_order_by(ts_query_new(db, "p"), "score", 1);
    ck_assert_str_eq(qcol(q, "score"), "4.5,3.0,2.5,2.0,1.5,0.5,null,null");
    ts_query_free(q);
    /* order by with a condition on another indexed field */
    q = ts_order_by(ts_where(ts_query_new(db, "p"), "age", ">=", I(25)), "name", 1);
    ck_assert_str_eq(qcol(q, "name"), "hal,fay,eve,bob");
    ts_limit(q, 2);
    ck_assert_str_eq(qcol(q, "name"), "hal,fay");
    ts_query_free(q);
    /* offset without an order: key order */
    q = ts_offset(ts_limit(ts_query_new(db, "p"), 3), 4);
    ck_assert_str_eq(qids(q), "5,6,7");
    ts_query_free(q);
    /* a json field cannot be ordered */
    create(db, "{'name': 'js', 'fields': [{'name': 'j', 'type': 'json'}]}");
    q = ts_order_by(ts_query_new(db, "js"), "j", 0);
    ts_result *r = NULL;
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    ts_close(db);
}
END_TEST

START_TEST(default_key_order)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'k', 'fields': [{'name': 'name', 'type': 'text', 'createIndex': true},"
               "{'name': 'n', 'type': 'integer'}], 'indexes': [{'fields': ['n'], 'type': 'hash'}]}");
    /* keys given out of order; the index orders them otherwise */
    ck_assert_int_eq(ins_i(db, "k", "{'id': 50, 'name': 'a', 'n': 1}"), 50);
    ck_assert_int_eq(ins_i(db, "k", "{'id': 3, 'name': 'c', 'n': 1}"), 3);
    ck_assert_int_eq(ins_i(db, "k", "{'id': 17, 'name': 'b', 'n': 1}"), 17);
    ck_assert_int_eq(ins_i(db, "k", "{'id': 9, 'name': 'd', 'n': 2}"), 9);
    ts_query *q = ts_query_new(db, "k");
    ck_assert_str_eq(qids(q), "3,9,17,50");
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "k", "name", "IN", J("['a', 'b', 'c']")), "3,17,50");
    ck_assert_str_eq(where_ids(db, "k", "name", ">", S("")), "3,9,17,50");
    ck_assert_str_eq(where_ids(db, "k", "name", "<", S("c")), "17,50");
    ck_assert_str_eq(where_ids(db, "k", "n", "=", I(1)), "3,17,50");
    ck_assert_str_eq(where_ids(db, "k", "n", "IN", J("[2, 1]")), "3,9,17,50");
    ck_assert_str_eq(where_ids(db, "k", "id", "IN", J("[50, 3, 9]")), "3,9,50");
    q = ts_query_new(db, "k");
    ts_where(q, "name", "=", S("a"));
    ts_or(q);
    ts_where(q, "name", "=", S("c"));
    ck_assert_str_eq(qids(q), "3,50");
    ts_limit(q, 1);
    ck_assert_str_eq(qids(q), "3");
    ts_query_free(q);
    q = ts_limit(ts_where(ts_query_new(db, "k"), "name", ">=", S("a")), 2);
    ck_assert_str_eq(qids(q), "3,9");
    ts_where(q, "name", "<", S("d"));
    ck_assert_str_eq(qids(q), "3,17");
    ts_query_free(q);
    ts_close(db);
}
END_TEST

START_TEST(select_list)
{
    ts_db *db = open_db(NULL);
    people(db);
    const char *sel[] = { "name", "age as years", "p.city", "p.tag AS label" };
    ts_query *q = ts_where(ts_select(ts_query_new(db, "p"), sel, 4), "id", "=", I(2));
    ts_result *r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 1);
    ck_assert_str_eq(dumps(ts_result_row(r, 0)), "{\"city\":\"rome\",\"label\":null,\"name\":\"bob\",\"years\":30}");
    ts_result_free(r);
    /* a select list again replaces the first */
    const char *sel2[] = { "id" };
    ts_select(q, sel2, 1);
    r = run(q);
    ck_assert_str_eq(dumps(ts_result_row(r, 0)), "{\"id\":2}");
    ts_result_free(r);
    /* none: every field */
    ts_select(q, NULL, 0);
    r = run(q);
    ck_assert_str_eq(dumps(ts_result_row(r, 0)),
                     "{\"age\":30,\"city\":\"rome\",\"id\":2,\"name\":\"bob\",\"score\":2.5,\"tag\":null}");
    ts_result_free(r);
    ts_query_free(q);
    /* ordering by a field the select list leaves out (ties by primary key,
     * descending for one DESC term: dan and gus have no score) */
    const char *sel3[] = { "name" };
    q = ts_order_by(ts_select(ts_query_new(db, "p"), sel3, 1), "score", 1);
    ck_assert_str_eq(qcol(q, "name"), "hal,eve,bob,fay,ann,cid,gus,dan");
    ts_query_free(q);
    ts_close(db);
}
END_TEST

/* ---- the default limit --------------------------------------------------- */

static void many(ts_db *db, int n)
{
    create(db, "{'name': 'n', 'fields': [{'name': 'v', 'type': 'integer'},"
               "{'name': 'w', 'type': 'integer', 'createIndex': true}]}");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 1; i <= n; i++) {
        json_t *rec = json_pack("{s:i, s:i}", "v", i % 7, "w", i);
        ck_assert_int_eq(ts_insert(db, "n", rec, NULL), TS_OK);
        json_decref(rec);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
}

START_TEST(default_limit)
{
    ts_db *db = open_db(NULL);
    many(db, 1200);
    ts_query *q = ts_query_new(db, "n");
    ts_result *r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 1000);
    ck_assert_int_eq(json_integer_value(json_object_get(ts_result_row(r, 999), "id")), 1000);
    ts_result_free(r);
    /* with a condition, and ordered: still 1000 */
    ts_where(q, "v", ">=", I(0));
    ts_order_by(q, "w", 1);
    r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 1000);
    ck_assert_int_eq(json_integer_value(json_object_get(ts_result_row(r, 0), "w")), 1200);
    ts_result_free(r);
    /* count, aggregates and streams are not limited */
    ck_assert_int_eq(qcount(q), 1200);
    ck_assert_int_eq(json_integer_value(qagg(q, "sum", "w")), 1200 * 1201 / 2);
    ck_assert_int_eq(json_integer_value(qagg(q, "min", "w")), 1);
    size_t ns = 0;
    stream_ids(q, &ns);
    ck_assert_uint_eq(ns, 1200);
    /* an explicit limit above the default */
    ts_limit(q, 1100);
    r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 1100);
    ts_result_free(r);
    ts_query_free(q);
    /* offset with the default limit */
    q = ts_offset(ts_query_new(db, "n"), 1150);
    r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 50);
    ck_assert_int_eq(json_integer_value(json_object_get(ts_result_row(r, 0), "id")), 1151);
    ts_result_free(r);
    ts_query_free(q);
    ck_assert_int_eq(ts_close(db), TS_OK);

    /* defaultQueryLimit changes it */
    enum { CNT3 = (1200 - 3) / 7 + 1 }; /* rows with v = 3 */
    db = open_db("\"defaultQueryLimit\": 50");
    q = ts_where(ts_query_new(db, "n"), "v", "=", I(3));
    r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 50);
    ts_result_free(r);
    ck_assert_int_eq(qcount(q), CNT3);
    stream_ids(q, &ns);
    ck_assert_uint_eq(ns, CNT3);
    ts_limit(q, 60);
    r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 60);
    ts_result_free(r);
    ts_query_free(q);
    /* a join reads every matching row of the joined table */
    create(db, "{'name': 'one', 'fields': [{'name': 'x', 'type': 'integer'}]}");
    ins_i(db, "one", "{'x': 3}");
    q = ts_join(ts_query_new(db, "one"), "n", "one.x", "=", "n.v");
    ts_limit(q, 5000);
    r = run(q);
    ck_assert_uint_eq(ts_result_count(r), CNT3);
    ts_result_free(r);
    ck_assert_int_eq(qcount(q), CNT3);
    ts_query_free(q);
    /* updates and deletes are not limited either */
    int64_t n = 0;
    q = ts_where(ts_query_new(db, "n"), "v", "!=", I(3));
    ck_assert_int_eq(ts_query_update(q, J("{'v': 4}"), &n), TS_OK);
    ck_assert_int_eq(n, 1200 - CNT3);
    ts_query_free(q);
    q = ts_where(ts_query_new(db, "n"), "v", "=", I(4));
    ck_assert_int_eq(qcount(q), 1200 - CNT3);
    ck_assert_int_eq(ts_query_delete(q, &n), TS_OK);
    ck_assert_int_eq(n, 1200 - CNT3);
    ts_query_free(q);
    ck_assert_int_eq(count(db, "n"), CNT3);
    q = ts_allow_all(ts_query_new(db, "n"));
    ck_assert_int_eq(ts_query_delete(q, &n), TS_OK);
    ck_assert_int_eq(n, CNT3);
    ts_query_free(q);
    ck_assert_int_eq(count(db, "n"), 0);
    ts_close(db);
}
END_TEST

/* ---- joins ---------------------------------------------------------------- */

static void blog(ts_db *db)
{
    create(db, "{'name': 'users', 'fields': [{'name': 'name', 'type': 'text'},"
               "{'name': 'level', 'type': 'integer'}]}");
    create(db, "{'name': 'posts', 'fields': [{'name': 'author', 'type': 'integer', 'createIndex': true},"
               "{'name': 'title', 'type': 'text'}, {'name': 'likes', 'type': 'integer'}]}");
    ins_i(db, "users", "{'name': 'ann', 'level': 1}");
    ins_i(db, "users", "{'name': 'bob', 'level': 2}");
    ins_i(db, "users", "{'name': 'cid', 'level': 2}");
    ins_i(db, "posts", "{'author': 1, 'title': 'p1', 'likes': 5}");
    ins_i(db, "posts", "{'author': 2, 'title': 'p2', 'likes': 1}");
    ins_i(db, "posts", "{'author': 1, 'title': 'p3', 'likes': 7}");
    ins_i(db, "posts", "{'author': null, 'title': 'p4', 'likes': 0}");
    ins_i(db, "posts", "{'author': 9, 'title': 'p5', 'likes': 2}");
}

START_TEST(joins)
{
    ts_db *db = open_db(NULL);
    blog(db);
    /* inner join: every user with each of their posts */
    ts_query *q = ts_join(ts_query_new(db, "users"), "posts", "users.id", "=", "posts.author");
    ts_result *r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 3);
    ck_assert_str_eq(col_of(r, "name"), "ann,ann,bob");
    ck_assert_str_eq(col_of(r, "title"), "p1,p3,p2");
    ck_assert_str_eq(col_of(r, "id"), "1,1,2");
    ck_assert_str_eq(col_of(r, "posts.id"), "1,3,2");  /* a taken name appears as table.field */
    ck_assert_str_eq(col_of(r, "author"), "1,1,2");
    ck_assert_uint_eq(json_object_size(ts_result_row(r, 0)), 7);
    ts_result_free(r);
    ck_assert_int_eq(qcount(q), 3);
    /* conditions on either table */
    ts_where(q, "posts.likes", ">", I(3));
    ck_assert_str_eq(qcol(q, "title"), "p1,p3");
    ck_assert_int_eq(qcount(q), 2);
    ts_where(q, "users.level", "=", I(1));
    ck_assert_str_eq(qcol(q, "title"), "p1,p3");
    ts_query_free(q);
    /* select with table.field and aliases, ordered by a joined field */
    const char *sel[] = { "users.name", "posts.title as t", "posts.id AS pid" };
    q = ts_join(ts_query_new(db, "users"), "posts", "users.id", "=", "posts.author");
    ts_select(q, sel, 3);
    ts_order_by(q, "posts.likes", 1);
    r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 3);
    ck_assert_str_eq(dumps(ts_result_row(r, 0)), "{\"name\":\"ann\",\"pid\":3,\"t\":\"p3\"}");
    ck_assert_str_eq(dumps(ts_result_row(r, 1)), "{\"name\":\"ann\",\"pid\":1,\"t\":\"p1\"}");
    ck_assert_str_eq(dumps(ts_result_row(r, 2)), "{\"name\":\"bob\",\"pid\":2,\"t\":\"p2\"}");
    ts_result_free(r);
    ts_limit(q, 1);
    ck_assert_str_eq(qcol(q, "t"), "p3");
    ts_query_free(q);
    /* left join: cid has no post, their post fields are null */
    q = ts_left_join(ts_query_new(db, "users"), "posts", "users.id", "=", "posts.author");
    r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 4);
    ck_assert_str_eq(col_of(r, "name"), "ann,ann,bob,cid");
    ck_assert_str_eq(col_of(r, "title"), "p1,p3,p2,null");
    ck_assert_str_eq(col_of(r, "posts.id"), "1,3,2,null");
    ts_result_free(r);
    ck_assert_int_eq(qcount(q), 4);
    /* IS NULL on the joined side: users without posts */
    ts_where(q, "posts.id", "IS", NUL());
    ck_assert_str_eq(qcol(q, "name"), "cid");
    ts_query_free(q);
    /* from the other side, condition written either way round */
    q = ts_join(ts_query_new(db, "posts"), "users", "posts.author", "=", "users.id");
    ck_assert_str_eq(qcol(q, "title"), "p1,p2,p3");
    ck_assert_str_eq(qcol(q, "name"), "ann,bob,ann");
    ck_assert_str_eq(qcol(q, "users.id"), "1,2,1");
    ts_query_free(q);
    q = ts_left_join(ts_query_new(db, "posts"), "users", "users.id", "=", "posts.author");
    ck_assert_str_eq(qcol(q, "title"), "p1,p2,p3,p4,p5");
    ck_assert_str_eq(qcol(q, "name"), "ann,bob,ann,null,null");
    ts_query_free(q);
    /* a non-equality join */
    q = ts_join(ts_query_new(db, "users"), "posts", "users.level", ">", "posts.likes");
    ck_assert_str_eq(qcol(q, "title"), "p4,p2,p4,p2,p4");
    ck_assert_str_eq(qcol(q, "name"), "ann,bob,bob,cid,cid");
    ts_query_free(q);
    /* the same written the other way round, and the other operators */
    q = ts_join(ts_query_new(db, "users"), "posts", "posts.likes", "<", "users.level");
    ck_assert_str_eq(qcol(q, "title"), "p4,p2,p4,p2,p4");
    ts_query_free(q);
    q = ts_join(ts_query_new(db, "users"), "posts", "users.level", "<=", "posts.likes");
    ts_where(q, "users.id", "=", I(3));
    ck_assert_str_eq(qcol(q, "title"), "p1,p3,p5");
    ts_query_free(q);
    q = ts_join(ts_query_new(db, "users"), "posts", "posts.likes", ">=", "users.level");
    ts_where(q, "users.id", "=", I(3));
    ck_assert_str_eq(qcol(q, "title"), "p1,p3,p5");
    ts_query_free(q);
    q = ts_join(ts_query_new(db, "users"), "posts", "users.level", ">=", "posts.likes");
    ts_where(q, "users.id", "=", I(1));
    ck_assert_str_eq(qcol(q, "title"), "p2,p4");
    ts_query_free(q);
    q = ts_join(ts_query_new(db, "users"), "posts", "users.id", "!=", "posts.author");
    ts_where(q, "users.id", "=", I(1));
    ck_assert_str_eq(qcol(q, "title"), "p2,p5");
    ts_query_free(q);
    /* two joins (the same table twice is refused or works; here a third table) */
    create(db, "{'name': 'likes', 'fields': [{'name': 'post', 'type': 'integer', 'createIndex': true},"
               "{'name': 'who', 'type': 'text'}]}");
    ins_i(db, "likes", "{'post': 3, 'who': 'zed'}");
    ins_i(db, "likes", "{'post': 3, 'who': 'yan'}");
    ins_i(db, "likes", "{'post': 2, 'who': 'xi'}");
    q = ts_join(ts_query_new(db, "users"), "posts", "users.id", "=", "posts.author");
    ts_join(q, "likes", "posts.id", "=", "likes.post");
    ck_assert_str_eq(qcol(q, "who"), "zed,yan,xi");
    ck_assert_str_eq(qcol(q, "name"), "ann,ann,bob");
    ts_query_free(q);
    /* errors: unknown table, field, operator, a condition not on the joined table */
    ts_result *rr = NULL;
    q = ts_join(ts_query_new(db, "users"), "nope", "users.id", "=", "nope.x");
    ck_assert_int_eq(ts_query_exec(q, &rr), TS_ERR_NOT_FOUND);
    ts_query_free(q);
    q = ts_join(ts_query_new(db, "users"), "posts", "users.id", "=", "posts.nope");
    ck_assert_int_eq(ts_query_exec(q, &rr), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_join(ts_query_new(db, "users"), "posts", "users.id", "LIKE", "posts.author");
    ck_assert_int_eq(ts_query_exec(q, &rr), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_join(ts_query_new(db, "users"), "posts", "users.id", "=", "users.level");
    ck_assert_int_eq(ts_query_exec(q, &rr), TS_ERR_VALIDATION);
    ts_query_free(q);
    ck_assert_ptr_null(rr);
    ts_close(db);
}
END_TEST

/* ---- count and aggregates ------------------------------------------------- */

START_TEST(count_and_aggregates)
{
    ts_db *db = open_db(NULL);
    people(db);
    ts_query *q = ts_query_new(db, "p");
    ck_assert_int_eq(qcount(q), 8);
    /* exact, ignoring limit and offset */
    ts_limit(ts_offset(q, 3), 2);
    ck_assert_int_eq(qcount(q), 8);
    ts_where(q, "age", ">=", I(25));
    ck_assert_int_eq(qcount(q), 4);
    ts_query_free(q);
    q = ts_query_new(db, "p");
    json_t *v = qagg(q, "sum", "age");
    ck_assert_msg(json_is_integer(v) && json_integer_value(v) == 165, "sum(age) = %s", dumps(v));
    v = qagg(q, "avg", "age");
    ck_assert_msg(json_is_real(v) && fabs(json_real_value(v) - 27.5) < 1e-9, "avg(age) = %s", dumps(v));
    v = qagg(q, "min", "age");
    ck_assert_msg(json_is_integer(v) && json_integer_value(v) == 20, "min(age) = %s", dumps(v));
    v = qagg(q, "max", "age");
    ck_assert_msg(json_is_integer(v) && json_integer_value(v) == 40, "max(age) = %s", dumps(v));
    v = qagg(q, "SUM", "score");
    ck_assert_msg(json_is_number(v) && fabs(json_number_value(v) - 14.0) < 1e-9, "sum(score) = %s", dumps(v));
    v = qagg(q, "avg", "score");
    ck_assert_msg(json_is_number(v) && fabs(json_number_value(v) - 14.0 / 6) < 1e-9, "avg(score) = %s", dumps(v));
    v = qagg(q, "min", "name");
    ck_assert_str_eq(dumps(v), "\"ann\"");
    v = qagg(q, "max", "name");
    ck_assert_str_eq(dumps(v), "\"hal\"");
    v = qagg(q, "max", "tag");
    ck_assert_str_eq(dumps(v), "\"z\"");
    v = qagg(q, "min", "id");
    ck_assert_str_eq(dumps(v), "1");
    /* with a condition */
    ts_where(q, "city", "=", S("oslo"));
    ck_assert_str_eq(dumps(qagg(q, "sum", "age")), "50");
    ck_assert_str_eq(dumps(qagg(q, "max", "score")), "4.5");
    ts_query_free(q);
    /* zero rows: JSON null; count 0 */
    q = ts_where(ts_query_new(db, "p"), "age", ">", I(100));
    ck_assert_int_eq(qcount(q), 0);
    ck_assert(json_is_null(qagg(q, "sum", "age")));
    ck_assert(json_is_null(qagg(q, "avg", "age")));
    ck_assert(json_is_null(qagg(q, "min", "age")));
    ck_assert(json_is_null(qagg(q, "max", "name")));
    ts_query_free(q);
    /* only nulls: null too */
    q = ts_where(ts_query_new(db, "p"), "age", "IS", NUL());
    ck_assert_int_eq(qcount(q), 2);
    ck_assert(json_is_null(qagg(q, "sum", "age")));
    ck_assert(json_is_null(qagg(q, "max", "age")));
    ts_query_free(q);
    /* errors */
    q = ts_query_new(db, "p");
    v = NULL;
    ck_assert_int_eq(ts_query_aggregate(q, "median", "age", &v), TS_ERR_VALIDATION);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(ts_query_aggregate(q, "sum", "name", &v), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_aggregate(q, "avg", "city", &v), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_count(q, NULL), TS_ERR_INVALID);
    ts_query_free(q);
    /* count on a joined query, and an aggregate over a joined field */
    blog(db);
    q = ts_join(ts_query_new(db, "users"), "posts", "users.id", "=", "posts.author");
    ck_assert_int_eq(qcount(q), 3);
    ck_assert_str_eq(dumps(qagg(q, "sum", "posts.likes")), "13");
    ck_assert_str_eq(dumps(qagg(q, "max", "likes")), "7");
    ts_query_free(q);
    /* sums past int64 become reals */
    create(db, "{'name': 'big', 'fields': [{'name': 'x', 'type': 'integer'}]}");
    ins_i(db, "big", "{'x': 9223372036854775000}");
    ins_i(db, "big", "{'x': 9223372036854775000}");
    q = ts_query_new(db, "big");
    v = qagg(q, "sum", "x");
    ck_assert_msg(json_is_real(v) && json_real_value(v) > 1.8e19, "sum = %s", dumps(v));
    ts_query_free(q);
    ts_close(db);
}
END_TEST

/* ---- updates and deletes ------------------------------------------------- */

START_TEST(query_update)
{
    ts_db *db = open_db(NULL);
    people(db);
    ts_query *q = ts_where(ts_query_new(db, "p"), "age", "=", I(20));
    int64_t n = -1;
    ck_assert_int_eq(ts_query_update(q, J("{'tag': 'w', 'score': 9}"), &n), TS_OK);
    ck_assert_int_eq(n, 2);
    ts_query_free(q);
    /* merged: the given fields change, the others stay */
    ck_assert_str_eq(dumps(row_i(db, "p", 1)),
                     "{\"age\":20,\"city\":\"oslo\",\"id\":1,\"name\":\"ann\",\"score\":9.0,\"tag\":\"w\"}");
    ck_assert_str_eq(dumps(row_i(db, "p", 4)),
                     "{\"age\":20,\"city\":null,\"id\":4,\"name\":\"dan\",\"score\":9.0,\"tag\":\"w\"}");
    ck_assert_str_eq(dumps(row_i(db, "p", 2)),
                     "{\"age\":30,\"city\":\"rome\",\"id\":2,\"name\":\"bob\",\"score\":2.5,\"tag\":null}");
    ck_assert_str_eq(where_ids(db, "p", "tag", "=", S("w")), "1,4");
    /* the condition field itself, through its index: each row once */
    q = ts_where(ts_query_new(db, "p"), "age", ">=", I(20));
    ck_assert_int_eq(ts_query_update(q, J("{'age': 120}"), &n), TS_OK);
    ck_assert_int_eq(n, 6);
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "p", "age", "=", I(120)), "1,2,4,5,6,8");
    q = ts_order_by(ts_query_new(db, "p"), "age", 0);
    ck_assert_str_eq(qcol(q, "age"), "null,null,120,120,120,120,120,120");
    ts_query_free(q);
    q = ts_where(ts_query_new(db, "p"), "age", "<", I(200));
    ck_assert_int_eq(ts_query_update(q, J("{'age': 20}"), &n), TS_OK);
    ck_assert_int_eq(n, 6);
    ts_query_free(q);
    q = ts_where(ts_query_new(db, "p"), "id", "IN", J("[5, 6]"));
    ck_assert_int_eq(ts_query_update(q, J("{'age': 5}"), NULL), TS_OK);
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "p", "age", "<", I(20)), "5,6");
    /* no match: TS_ERR_NOT_FOUND, nothing changes */
    q = ts_where(ts_query_new(db, "p"), "age", ">", I(1000));
    n = -1;
    ck_assert_int_eq(ts_query_update(q, J("{'tag': 'none'}"), &n), TS_ERR_NOT_FOUND);
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "p", "tag", "=", S("none")), "");
    /* no condition: refused unless ts_allow_all */
    q = ts_query_new(db, "p");
    ck_assert_int_eq(ts_query_update(q, J("{'city': 'x'}"), &n), TS_ERR_VALIDATION);
    ck_assert_str_eq(where_ids(db, "p", "city", "=", S("x")), "");
    ts_limit(q, 2); /* a limit is no condition */
    ck_assert_int_eq(ts_query_update(q, J("{'city': 'x'}"), &n), TS_ERR_VALIDATION);
    ts_allow_all(q);
    ck_assert_int_eq(ts_query_update(q, J("{'city': 'x'}"), &n), TS_OK);
    ck_assert_int_eq(n, 8);
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "p", "city", "=", S("x")), "1,2,3,4,5,6,7,8");
    /* bad changes */
    q = ts_where(ts_query_new(db, "p"), "id", "=", I(1));
    ck_assert_int_eq(ts_query_update(q, J("{'nope': 1}"), &n), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_update(q, J("{'age': 'old'}"), &n), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_update(q, J("[1]"), &n), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_update(q, NULL, &n), TS_ERR_INVALID);
    ts_query_free(q);
    ck_assert_str_eq(dumps(row_i(db, "p", 1)),
                     "{\"age\":20,\"city\":\"x\",\"id\":1,\"name\":\"ann\",\"score\":9.0,\"tag\":\"w\"}");
    ts_close(db);
}
END_TEST

/* Changes may be expressions, evaluated per row inside the write. */
START_TEST(query_update_expressions)
{
    ts_db *db = open_db(NULL);
    people(db);
    int64_t n = -1;
    ts_query *q = ts_where(ts_query_new(db, "p"), "age", ">=", I(20));
    int rc = ts_query_update(q, J("{'age': {'$expr': ['+', {'$expr': ['field', 'age']}, 100]}}"), &n);
    ck_assert_msg(rc == TS_OK, "update age = age + 100: %d %s", rc, ts_errmsg(db));
    ck_assert_int_eq(n, 6);
    ts_query_free(q);
    q = ts_order_by(ts_query_new(db, "p"), "age", 0);
    ck_assert_str_eq(qcol(q, "age"), "null,null,120,120,125,130,130,140");
    ts_query_free(q);
    q = ts_where(ts_query_new(db, "p"), "id", "IN", J("[5, 6]"));
    json_t *ch = keep(json_pack("{s:o}", "age", ts_expr_sub(ts_expr_field("age"), ts_expr_value(json_integer(100)))));
    rc = ts_query_update(q, ch, NULL);
    ck_assert_msg(rc == TS_OK, "update age = age - 100: %d %s", rc, ts_errmsg(db));
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "p", "age", "<", I(100)), "5,6");
    ts_close(db);
}
END_TEST

START_TEST(query_update_atomic)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'uu', 'fields': [{'name': 'code', 'type': 'text', 'unique': true},"
               "{'name': 'n', 'type': 'integer'}, {'name': 'm', 'type': 'integer', 'maxValue': 10}]}");
    ins_i(db, "uu", "{'code': 'a', 'n': 1, 'm': 1}");
    ins_i(db, "uu", "{'code': 'b', 'n': 1, 'm': 1}");
    ins_i(db, "uu", "{'code': 'c', 'n': 1, 'm': 9}");
    ins_i(db, "uu", "{'code': 'd', 'n': 2, 'm': 1}");
    const char *before = NULL;
    ts_query *all = ts_query_new(db, "uu");
    ts_result *r = run(all);
    before = dumps(ts_result_row(r, 0));
    const char *b2 = dumps(ts_result_row(r, 1)), *b3 = dumps(ts_result_row(r, 2)), *b4 = dumps(ts_result_row(r, 3));
    ts_result_free(r);
    /* the first row changes fine, the second collides: nothing changes */
    ts_query *q = ts_where(ts_query_new(db, "uu"), "n", "=", I(1));
    int64_t n = -1;
    ck_assert_int_eq(ts_query_update(q, J("{'code': 'z'}"), &n), TS_ERR_UNIQUE);
    ck_assert_str_ne(ts_errmsg(db), "");
    /* the last row fails a constraint after two succeeded */
    ck_assert_int_eq(ts_query_update(q, J("{'m': 11}"), &n), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_query_update(q, J("{'code': null, 'm': 10, 'n': 'x'}"), &n), TS_ERR_VALIDATION);
    ts_query_free(q);
    r = run(all);
    ck_assert_str_eq(dumps(ts_result_row(r, 0)), before);
    ck_assert_str_eq(dumps(ts_result_row(r, 1)), b2);
    ck_assert_str_eq(dumps(ts_result_row(r, 2)), b3);
    ck_assert_str_eq(dumps(ts_result_row(r, 3)), b4);
    ts_result_free(r);
    /* inside a transaction: the failed statement is undone, the
     * transaction's earlier writes stay */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_update(db, "uu", I(4), J("{'code': 'dd'}")), TS_OK);
    q = ts_where(ts_query_new(db, "uu"), "n", "=", I(1));
    ck_assert_int_eq(ts_query_update(q, J("{'code': 'q'}"), &n), TS_ERR_UNIQUE);
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "uu", "code", "=", S("dd")), "4");
    ck_assert_str_eq(where_ids(db, "uu", "code", "=", S("q")), "");
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_str_eq(where_ids(db, "uu", "code", "IN", J("['a', 'b', 'c', 'dd']")), "1,2,3,4");
    /* and a statement that succeeds inside a rolled-back transaction is undone */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    q = ts_where(ts_query_new(db, "uu"), "n", "=", I(1));
    ck_assert_int_eq(ts_query_update(q, J("{'n': 7}"), &n), TS_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(where_ids(db, "uu", "n", "=", I(7)), "1,2,3");
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_str_eq(where_ids(db, "uu", "n", "=", I(7)), "");
    ck_assert_int_eq(ts_query_update(q, J("{'n': 7}"), &n), TS_OK);
    ck_assert_str_eq(where_ids(db, "uu", "n", "=", I(7)), "1,2,3");
    ts_query_free(q);
    ts_query_free(all);
    ts_close(db);
}
END_TEST

START_TEST(query_delete)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'par', 'fields': [{'name': 'name', 'type': 'text'}]}");
    create(db, "{'name': 'kid', 'fields': [{'name': 'pid', 'type': 'integer'}], 'foreignKeys': ["
               "{'fields': ['pid'], 'referencedTable': 'par', 'referencedFields': ['id'], 'onDelete': 'restrict'}]}");
    create(db, "{'name': 'par2', 'fields': [{'name': 'name', 'type': 'text'}]}");
    create(db, "{'name': 'kc', 'fields': [{'name': 'pid', 'type': 'integer'}], 'foreignKeys': ["
               "{'fields': ['pid'], 'referencedTable': 'par2', 'referencedFields': ['id'], 'onDelete': 'cascade'}]}");
    for (int i = 0; i < 4; i++) {
        ins_i(db, "par", "{'name': 'p'}");
        ins_i(db, "par2", "{'name': 'p'}");
    }
    ins_i(db, "kid", "{'pid': 3}");
    ins_i(db, "kc", "{'pid': 1}");
    ins_i(db, "kc", "{'pid': 2}");
    ins_i(db, "kc", "{'pid': 2}");
    ins_i(db, "kc", "{'pid': 4}");
    /* foreign keys apply to query updates too: a referenced key cannot change */
    ts_query *u = ts_where(ts_query_new(db, "par"), "id", ">=", I(2));
    int64_t un = -1;
    ck_assert_int_eq(ts_query_update(u, J("{'name': 'q'}"), &un), TS_OK);
    ck_assert_int_eq(un, 3);
    ts_query_free(u);
    u = ts_where(ts_query_new(db, "par"), "id", "=", I(3));
    ck_assert_int_eq(ts_query_update(u, J("{'id': 30}"), &un), TS_ERR_FOREIGN_KEY);
    ts_query_free(u);
    ck_assert_int_eq(count(db, "par"), 4);
    ck_assert_str_eq(where_ids(db, "par", "id", "IN", J("[3, 30]")), "3");
    /* restrict: rows 1 and 2 could go, row 3 cannot: nothing is deleted */
    ts_query *q = ts_where(ts_query_new(db, "par"), "id", "<=", I(3));
    int64_t n = -1;
    ck_assert_int_eq(ts_query_delete(q, &n), TS_ERR_FOREIGN_KEY);
    ts_query_free(q);
    ck_assert_int_eq(count(db, "par"), 4);
    ck_assert_int_eq(count(db, "kid"), 1);
    q = ts_where(ts_query_new(db, "par"), "id", "IN", J("[1, 2, 4]"));
    ck_assert_int_eq(ts_query_delete(q, &n), TS_OK);
    ck_assert_int_eq(n, 3);
    ts_query_free(q);
    ck_assert_str_eq(qids(q = ts_query_new(db, "par")), "3");
    ts_query_free(q);
    /* cascade: children go too; affected counts the queried table only */
    q = ts_where(ts_query_new(db, "par2"), "id", "<=", I(2));
    ck_assert_int_eq(ts_query_delete(q, &n), TS_OK);
    ck_assert_int_eq(n, 2);
    ts_query_free(q);
    ck_assert_int_eq(count(db, "par2"), 2);
    ck_assert_str_eq(qcol(q = ts_query_new(db, "kc"), "pid"), "4");
    ts_query_free(q);
    /* no match: TS_OK with 0 */
    q = ts_where(ts_query_new(db, "par2"), "name", "=", S("zzz"));
    n = -1;
    ck_assert_int_eq(ts_query_delete(q, &n), TS_OK);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(ts_query_delete(q, NULL), TS_OK);
    ts_query_free(q);
    /* no condition: refused unless ts_allow_all */
    q = ts_query_new(db, "par2");
    ck_assert_int_eq(ts_query_delete(q, &n), TS_ERR_VALIDATION);
    ck_assert_int_eq(count(db, "par2"), 2);
    ts_allow_all(q);
    ck_assert_int_eq(ts_query_delete(q, &n), TS_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(count(db, "par2"), 0);
    ck_assert_int_eq(count(db, "kc"), 0);
    ts_query_free(q);
    /* a delete inside a rolled-back transaction is undone */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    q = ts_allow_all(ts_query_new(db, "kid"));
    ck_assert_int_eq(ts_query_delete(q, &n), TS_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_int_eq(count(db, "kid"), 1);
    ts_query_free(q);
    ts_close(db);
}
END_TEST

/* ---- streams --------------------------------------------------------------- */

START_TEST(streams)
{
    ts_db *db = open_db("\"defaultQueryLimit\": 100");
    many(db, 1200);
    /* every row, in key order: the default limit does not apply */
    ts_query *q = ts_query_new(db, "n");
    size_t n = 0;
    ck_assert_str_eq(stream_ids(q, &n), seq(1, 1200));
    ck_assert_uint_eq(n, 1200);
    /* an explicit limit (and offset) applies */
    ts_limit(q, 10);
    ck_assert_str_eq(stream_ids(q, &n), seq(1, 10));
    ts_offset(q, 5);
    ck_assert_str_eq(stream_ids(q, &n), seq(6, 15));
    ts_query_free(q);
    /* ordered, with a condition: the same rows as ts_query_exec */
    q = ts_order_by(ts_where(ts_query_new(db, "n"), "w", ">", I(1150)), "id", 1);
    ck_assert_str_eq(stream_ids(q, &n), qids(q));
    ck_assert_uint_eq(n, 50);
    ts_query_free(q);
    q = ts_order_by(ts_where(ts_query_new(db, "n"), "v", "=", I(0)), "w", 1);
    stream_ids(q, &n);
    ck_assert_uint_eq(n, 171);
    ts_limit(q, 1000);
    ck_assert_str_eq(stream_ids(q, &n), qids(q));
    ts_query_free(q);
    q = ts_order_by(ts_query_new(db, "n"), "v", 0);
    stream_ids(q, &n);
    ck_assert_uint_eq(n, 1200);
    ts_query_free(q);
    /* one snapshot: a commit while streaming is not seen */
    q = ts_query_new(db, "n");
    ts_stream *s = NULL;
    ck_assert_int_eq(ts_query_stream(q, &s), TS_OK);
    json_t *row = NULL;
    size_t got = 0;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(ts_stream_next(s, &row), 1);
        ck_assert_int_eq(json_integer_value(json_object_get(row, "id")), i + 1);
        json_decref(row);
        got++;
    }
    ins_i(db, "n", "{'v': 1, 'w': 5000}");
    ck_assert_int_eq(ts_delete(db, "n", I(1000)), TS_OK);
    int rc;
    json_int_t last = 0;
    int saw_1000 = 0;
    while ((rc = ts_stream_next(s, &row)) == 1) {
        last = json_integer_value(json_object_get(row, "id"));
        saw_1000 |= last == 1000;
        json_decref(row);
        got++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_null(row);
    ts_stream_free(s);
    ck_assert_uint_eq(got, 1200);
    ck_assert_int_eq(last, 1200);
    ck_assert_int_eq(saw_1000, 1);
    stream_ids(q, &n);
    ck_assert_uint_eq(n, 1200); /* +1 -1 */
    /* errors */
    ck_assert_int_eq(ts_query_stream(q, NULL), TS_ERR_INVALID);
    ck_assert_int_lt(ts_stream_next(NULL, &row), 0);
    ts_query_free(q);
    /* a stream inside a transaction sees its writes */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins_i(db, "n", "{'v': 1, 'w': 6000}");
    q = ts_where(ts_query_new(db, "n"), "w", ">=", I(5000));
    stream_ids(q, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    stream_ids(q, &n);
    ck_assert_uint_eq(n, 1);
    ts_query_free(q);
    ts_close(db);
}
END_TEST

/* ---- cache ----------------------------------------------------------------- */

/* A schema change that gives a field's name to another column changes the
 * table's version: a cached result of the old meaning is not returned
 * (before, a table unchanged since open had version 1 before and after). */
START_TEST(cache_after_schema_change)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'r', 'primaryKeyConfig': {'type': 'sequential'}, 'fields': ["
               "{'name': 'cat', 'type': 'integer'}, {'name': 'alt', 'type': 'integer'}]}");
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(ts_insert(db, "r", keep(json_pack("{s:i, s:i}", "cat", i, "alt", 9 - i)), NULL), TS_OK);
    ck_assert_int_eq(ts_close(db), TS_OK);   /* reopened: the table is unchanged since open */
    db = open_db(NULL);
    ts_query *q = ts_use_cache(ts_where(ts_query_new(db, "r"), "cat", "<", I(2)), 60000);
    ck_assert_str_eq(qids(q), "1,2");
    ck_assert_str_eq(qids(q), "1,2");
    ck_assert_int_eq(ts_su_apply(ts_su_rename_field(ts_update_schema(db, "r"), "cat", "old_cat"), NULL), TS_OK);
    ck_assert_int_eq(ts_su_apply(ts_su_rename_field(ts_update_schema(db, "r"), "alt", "cat"), NULL), TS_OK);
    ck_assert_str_eq(qids(q), "9,10");
    ck_assert_str_eq(qids(q), "9,10");
    ts_query_free(q);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

START_TEST(cache)
{
    ts_db *db = open_db(NULL);
    people(db);
    blog(db);
    ts_query *plain = ts_order_by(ts_where(ts_query_new(db, "p"), "age", ">=", I(20)), "name", 0);
    ts_query *cached = ts_use_cache(ts_order_by(ts_where(ts_query_new(db, "p"), "age", ">=", I(20)), "name", 0),
                                    60000);
    for (int round = 0; round < 3; round++) {
        ck_assert_str_eq(qids(cached), qids(plain));
        ck_assert_str_eq(qids(cached), "1,2,4,5,6,8");
    }
    /* a write to the table: the next result reflects it */
    ins_i(db, "p", "{'name': 'abe', 'age': 50}");
    ck_assert_str_eq(qids(cached), "9,1,2,4,5,6,8");
    ck_assert_int_eq(ts_update(db, "p", I(1), J("{'age': 1}")), TS_OK);
    ck_assert_str_eq(qids(cached), "9,2,4,5,6,8");
    ck_assert_int_eq(ts_delete(db, "p", I(9)), TS_OK);
    ck_assert_str_eq(qids(cached), "2,4,5,6,8");
    int64_t n;
    ts_query *u = ts_where(ts_query_new(db, "p"), "age", "=", I(30));
    ck_assert_int_eq(ts_query_update(u, J("{'age': 10}"), &n), TS_OK);
    ts_query_free(u);
    ck_assert_str_eq(qids(cached), qids(plain));
    ck_assert_str_eq(qids(cached), "4,5,6");
    /* different limits, offsets and select lists are different results */
    ts_limit(cached, 1);
    ck_assert_str_eq(qids(cached), "4");
    ts_offset(cached, 1);
    ck_assert_str_eq(qids(cached), "5");
    const char *sel[] = { "name" };
    ts_select(cached, sel, 1);
    ck_assert_str_eq(qcol(cached, "name"), "eve");
    ts_select(cached, NULL, 0);
    ts_offset(ts_limit(cached, 100), 0);
    /* own uncommitted writes show inside a transaction, and go with it */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins_i(db, "p", "{'name': 'zoe', 'age': 99}");
    ck_assert_str_eq(qids(cached), "4,5,6,10");
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_str_eq(qids(cached), "4,5,6");
    /* clear and no_cache */
    ck_assert_int_eq(ts_query_clear_cache(cached), TS_OK);
    ck_assert_str_eq(qids(cached), "4,5,6");
    ts_no_cache(cached);
    ck_assert_str_eq(qids(cached), "4,5,6");
    ts_query_free(cached);
    ts_query_free(plain);
    /* a join: a write to the joined table invalidates */
    ts_query *j = ts_use_cache(ts_join(ts_query_new(db, "users"), "posts", "users.id", "=", "posts.author"), 60000);
    ck_assert_str_eq(qcol(j, "title"), "p1,p3,p2");
    ck_assert_str_eq(qcol(j, "title"), "p1,p3,p2");
    ins_i(db, "posts", "{'author': 3, 'title': 'p6', 'likes': 1}");
    ck_assert_str_eq(qcol(j, "title"), "p1,p3,p2,p6");
    ck_assert_int_eq(ts_update(db, "users", I(1), J("{'name': 'ANN'}")), TS_OK);
    ck_assert_str_eq(qcol(j, "name"), "ANN,ANN,bob,cid");
    ts_query_free(j);
    /* a short TTL still gives right answers */
    ts_query *t = ts_use_cache(ts_query_new(db, "users"), 1);
    ck_assert_str_eq(qids(t), "1,2,3");
    ins_i(db, "users", "{'name': 'dee', 'level': 3}");
    ck_assert_str_eq(qids(t), "1,2,3,4");
    ts_query_free(t);
    /* a ttl that is not positive is a builder error */
    ts_result *r = NULL;
    t = ts_use_cache(ts_query_new(db, "users"), 0);
    ck_assert_int_eq(ts_query_exec(t, &r), TS_ERR_VALIDATION);
    ts_query_free(t);
    t = ts_use_cache(ts_query_new(db, "users"), -5);
    ck_assert_int_eq(ts_query_exec(t, &r), TS_ERR_VALIDATION);
    ts_query_free(t);
    ts_close(db);
}
END_TEST

/* Assertions in hot loops: Check's ck_assert_* reports every passing
 * check to the parent process (fork mode), which is slow by the million. */
#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

/* ---- spaces, global tables, TTL, text keys, empty tables --------------------- */

START_TEST(spaces_and_global)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'sp', 'fields': [{'name': 'v', 'type': 'integer', 'createIndex': true}]}");
    create(db, "{'name': 'gl', 'isGlobal': true, 'fields': [{'name': 'v', 'type': 'integer', 'createIndex': true}]}");
    ins_i(db, "sp", "{'v': 1}");
    ins_i(db, "sp", "{'v': 2}");
    ins_i(db, "gl", "{'v': 1}");
    ts_query *c = ts_use_cache(ts_where(ts_query_new(db, "sp"), "v", ">=", I(0)), 60000);
    ck_assert_str_eq(qcol(c, "v"), "1,2");
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ck_assert_str_eq(qcol(c, "v"), ""); /* not the cached result of the other space */
    ins_i(db, "sp", "{'v': 3}");
    ins_i(db, "gl", "{'v': 3}");
    ck_assert_str_eq(qcol(c, "v"), "3");
    ts_query *q = ts_query_new(db, "sp");
    ck_assert_int_eq(qcount(q), 1);
    ts_where(q, "v", "IN", J("[1, 2, 3]"));
    ck_assert_str_eq(qcol(q, "v"), "3");
    ck_assert_str_eq(dumps(qagg(q, "sum", "v")), "3");
    ts_query_free(q);
    q = ts_order_by(ts_query_new(db, "gl"), "v", 1);
    ck_assert_str_eq(qcol(q, "v"), "3,1");
    ck_assert_int_eq(qcount(q), 2);
    ts_query_free(q);
    /* updates and deletes stay in the space */
    q = ts_allow_all(ts_query_new(db, "sp"));
    int64_t n = 0;
    ck_assert_int_eq(ts_query_update(q, J("{'v': 9}"), &n), TS_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_str_eq(qcol(c, "v"), "1,2");
    ck_assert_int_eq(ts_query_delete(q, &n), TS_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ck_assert_str_eq(qcol(c, "v"), "9");
    ts_query_free(q);
    ts_query_free(c);
    ts_close(db);
}
END_TEST

START_TEST(ttl_rows)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'tt', 'fields': [{'name': 'at', 'type': 'datetime'},"
               "{'name': 'v', 'type': 'integer', 'createIndex': true}],"
               "'ttlConfig': {'ttlMs': 3600000, 'sourceField': 'at'}}");
    long long now = (long long)time(NULL) * 1000;
    char rec[128];
    snprintf(rec, sizeof rec, "{'at': %lld, 'v': 1}", now);
    ins_i(db, "tt", rec);
    ins_i(db, "tt", "{'at': '2001-01-01T00:00:00Z', 'v': 2}"); /* expired at once */
    snprintf(rec, sizeof rec, "{'at': %lld, 'v': 3}", now);
    ins_i(db, "tt", rec);
    ts_query *q = ts_query_new(db, "tt");
    ck_assert_str_eq(qcol(q, "v"), "1,3");
    ck_assert_int_eq(qcount(q), 2);
    ts_where(q, "v", ">=", I(1)); /* through the index */
    ck_assert_str_eq(qcol(q, "v"), "1,3");
    ck_assert_int_eq(qcount(q), 2);
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "tt", "v", "=", I(2)), "");
    ck_assert_str_eq(where_ids(db, "tt", "id", "=", I(2)), "");
    q = ts_order_by(ts_limit(ts_query_new(db, "tt"), 5), "v", 1);
    ck_assert_str_eq(qcol(q, "v"), "3,1");
    size_t n = 0;
    stream_ids(q, &n);
    ck_assert_uint_eq(n, 2);
    ts_query_free(q);
    ts_close(db);
}
END_TEST

START_TEST(text_keys)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'tk', 'primaryKeyConfig': {'type': 'none'}, 'fields': [{'name': 'v', 'type': 'integer'}]}");
    const char *recs[] = { "{'id': 'b', 'v': 1}", "{'id': 2, 'v': 2}", "{'id': 'a', 'v': 3}", "{'id': 1, 'v': 4}",
                           "{'id': 'c', 'v': 5}", "{'id': 'ab', 'v': 6}" };
    for (size_t i = 0; i < 6; i++) ck_assert_int_eq(ts_insert(db, "tk", J("%s", recs[i]), NULL), TS_OK);
    /* integer keys sort numerically and before string keys */
    ts_query *q = ts_query_new(db, "tk");
    ck_assert_str_eq(qids(q), "1,2,a,ab,b,c");
    ts_order_by(q, "id", 1);
    ck_assert_str_eq(qids(q), "c,b,ab,a,2,1");
    ts_query_free(q);
    ck_assert_str_eq(where_ids(db, "tk", "id", ">", S("a")), "ab,b,c");
    ck_assert_str_eq(where_ids(db, "tk", "id", "IN", J("['b', 1, 'zz']")), "1,b");
    ck_assert_str_eq(where_ids(db, "tk", "id", "LIKE", S("a%")), "a,ab");
    ck_assert_str_eq(where_ids(db, "tk", "id", "=", S("ab")), "ab");
    ts_close(db);
}
END_TEST

START_TEST(empty_table)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'e', 'fields': [{'name': 'v', 'type': 'integer', 'createIndex': true}]}");
    ts_query *q = ts_query_new(db, "e");
    ts_result *r = run(q);
    ck_assert_uint_eq(ts_result_count(r), 0);
    ck_assert_ptr_null(ts_result_row(r, 0));
    ck_assert_ptr_null(ts_result_next_cursor(r));
    ck_assert_ptr_null(ts_result_prev_cursor(r));
    ts_result_free(r);
    ck_assert_int_eq(qcount(q), 0);
    ck_assert(json_is_null(qagg(q, "sum", "v")));
    ck_assert(json_is_null(qagg(q, "avg", "v")));
    size_t n = 9;
    stream_ids(q, &n);
    ck_assert_uint_eq(n, 0);
    int64_t a = -1;
    ck_assert_int_eq(ts_query_delete(ts_allow_all(q), &a), TS_OK);
    ck_assert_int_eq(a, 0);
    ck_assert_int_eq(ts_query_update(q, J("{'v': 1}"), &a), TS_ERR_NOT_FOUND);
    ts_order_by(ts_limit(q, 3), "v", 1);
    ck_assert_str_eq(qids(q), "");
    ts_query_free(q);
    ts_close(db);
}
END_TEST

/* ---- the model ---------------------------------------------------------------
 * Table m: id (sequential key), a integer (btree index), b integer (no
 * index), s text (btree index), d double, u text (unique), h integer (hash
 * index), and a composite btree index on (b, d).  Rows are random with
 * nulls; some are deleted.  The reference evaluates conditions on the JSON
 * rows read back with ts_get. */

enum { T_INT, T_DBL, T_TEXT };
typedef struct mfield { const char *name; int type; } mfield;
static const mfield MF[] = { { "id", T_INT }, { "a", T_INT }, { "b", T_INT }, { "s", T_TEXT },
                             { "d", T_DBL }, { "u", T_TEXT }, { "h", T_INT } };
enum { NMF = sizeof MF / sizeof *MF, MODEL_ROWS = 330, MODEL_DELETES = 30 };

static const char *const STEXT[] = {
    "", "a", "ab", "abc", "a_c", "a%c", "aXc", "b", "ba", "x\\y", "h\xc3\xa9llo", "h\xe2\x82\xacllo",
    "\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "7", "A", "Ab", "zz", "b%",
};
enum { NSTEXT = sizeof STEXT / sizeof *STEXT };
static const char *const PATTERNS[] = {
    "", "%", "a%", "%c", "a_c", "a\\_c", "a\\%c", "_", "__", "___", "h_llo", "%llo",
    "\xe6\x97\xa5_", "\xe6\x97\xa5%", "%\xe6\x9c\xac%", "x\\\\y", "%\\\\%", "u0%", "u%1", "A%", "%b%",
    "b\\%", "_b", "%_%", "7",
};
enum { NPATTERNS = sizeof PATTERNS / sizeof *PATTERNS };

static uint64_t rstate;
static uint32_t rnd(void)
{
    rstate ^= rstate << 13;
    rstate ^= rstate >> 7;
    rstate ^= rstate << 17;
    return (uint32_t)(rstate >> 16);
}
static int rn(int n) { return (int)(rnd() % (uint32_t)n); }

static json_t *mrows[MODEL_ROWS + 1]; /* by id; NULL: absent (kept in the pool) */

static void model_build(ts_db *db)
{
    create(db, "{'name': 'm', 'fields': [{'name': 'a', 'type': 'integer', 'createIndex': true},"
               "{'name': 'b', 'type': 'integer'}, {'name': 's', 'type': 'text', 'createIndex': true},"
               "{'name': 'd', 'type': 'double'}, {'name': 'u', 'type': 'text', 'unique': true},"
               "{'name': 'h', 'type': 'integer'}], 'indexes': ["
               "{'fields': ['h'], 'type': 'hash', 'indexName': 'by_h'},"
               "{'fields': ['b', 'd'], 'indexName': 'by_bd'}]}");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 1; i <= MODEL_ROWS; i++) {
        json_t *rec = json_object();
        json_object_set_new(rec, "a", rn(10) == 0 ? json_null() : json_integer(rn(30)));
        json_object_set_new(rec, "b", rn(8) == 0 ? json_null() : json_integer(rn(11) - 5));
        json_object_set_new(rec, "s", rn(8) == 0 ? json_null() : json_string(STEXT[rn(NSTEXT)]));
        json_object_set_new(rec, "d", rn(8) == 0 ? json_null() : json_real((rn(81) - 40) / 4.0));
        char u[16];
        snprintf(u, sizeof u, "u%04d", (i * 7919) % 10000);
        json_object_set_new(rec, "u", rn(10) == 0 ? json_null() : json_string(u));
        json_object_set_new(rec, "h", rn(8) == 0 ? json_null() : json_integer(rn(10)));
        json_t *pk = NULL;
        int rc = ts_insert(db, "m", rec, &pk);
        REQUIRE(rc == TS_OK, "model insert %d: %d %s", i, rc, ts_errmsg(db));
        ck_assert_int_eq(json_integer_value(pk), i);
        json_decref(pk);
        json_decref(rec);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    for (int k = 0; k < MODEL_DELETES; k++) {
        int id = 1 + rn(MODEL_ROWS);
        int rc = ts_delete(db, "m", I(id));
        ck_assert(rc == TS_OK || rc == TS_ERR_NOT_FOUND);
    }
    for (int i = 1; i <= MODEL_ROWS; i++) {
        json_t *row = NULL;
        int rc = ts_get(db, "m", I(i), &row);
        ck_assert(rc == TS_OK || rc == TS_ERR_NOT_FOUND);
        mrows[i] = rc == TS_OK ? keep(row) : NULL;
    }
}

/* Condition trees of the model. */
enum { O_EQ, O_NE, O_GT, O_GE, O_LT, O_LE, O_IN, O_NIN, O_BETWEEN, O_LIKE, O_NLIKE, O_IS, O_ISNOT,
       O_CUSTOM, O_COUNT };

typedef struct mnode {
    int group, or_before;
    int f, op;
    const char *opname;
    json_t *val;   /* as given to the engine */
    json_t *cv;    /* canonical: scalar or array of scalars */
    struct mnode *kid;
    size_t nk;
} mnode;

/* Per-query allocations, released by mq_reset. */
static json_t *mq_json[4096];
static size_t nmq_json;
static mnode *mq_nodes[1024];
static size_t nmq_nodes;

static json_t *mq_keep(json_t *v)
{
    REQUIRE(v != NULL && nmq_json < 4096, "mq_keep");
    mq_json[nmq_json++] = v;
    return v;
}

static mnode *mq_alloc(size_t n)
{
    REQUIRE(nmq_nodes < 1024, "mq_alloc");
    mnode *m = calloc(n, sizeof *m);
    REQUIRE(m != NULL, "calloc");
    return mq_nodes[nmq_nodes++] = m;
}

static void mq_reset(void)
{
    while (nmq_json) json_decref(mq_json[--nmq_json]);
    while (nmq_nodes) free(mq_nodes[--nmq_nodes]);
}

/* A random value for field f: *canon its canonical form. */
static json_t *gen_value(int f, json_t **canon)
{
    int t = MF[f].type;
    if (t == T_INT) {
        int lo = 0, hi = 0;
        switch (f) {
        case 0: lo = 0; hi = MODEL_ROWS + 5; break;
        case 1: lo = -1; hi = 31; break;
        case 2: lo = -6; hi = 6; break;
        default: lo = -1; hi = 10; break;
        }
        int x = lo + rn(hi - lo + 1);
        *canon = mq_keep(json_integer(x));
        if (rn(4) == 0) {
            char b[16];
            snprintf(b, sizeof b, "%d", x);
            return mq_keep(json_string(b));
        }
        return mq_keep(json_integer(x));
    }
    if (t == T_DBL) {
        int k = rn(89) - 44;
        double x = k / 4.0;
        *canon = mq_keep(json_real(x));
        int how = rn(6);
        if (how == 0 && k % 4 == 0) return mq_keep(json_integer(k / 4));
        if (how == 1) {
            char b[32];
            snprintf(b, sizeof b, "%.2f", x);
            return mq_keep(json_string(b));
        }
        return mq_keep(json_real(x));
    }
    int how = rn(10);
    if (how < 7) {
        const char *s = STEXT[rn(NSTEXT)];
        *canon = mq_keep(json_string(s));
        return mq_keep(json_string(s));
    }
    if (how < 9) {
        char b[16];
        snprintf(b, sizeof b, "u%04d", (rn(MODEL_ROWS + 10) * 7919) % 10000);
        *canon = mq_keep(json_string(b));
        return mq_keep(json_string(b));
    }
    int x = rn(10);
    char b[16];
    snprintf(b, sizeof b, "%d", x);
    *canon = mq_keep(json_string(b));
    return mq_keep(json_integer(x));
}

static const char *opname_of(int op)
{
    static const char *const names[][2] = {
        { "=", "=" }, { "!=", "<>" }, { ">", ">" }, { ">=", ">=" }, { "<", "<" }, { "<=", "<=" },
        { "IN", "in" }, { "NOT IN", "not In" }, { "BETWEEN", "between" }, { "LIKE", "like" },
        { "NOT LIKE", "Not Like" }, { "IS", "is" }, { "IS NOT", "is NOT" },
    };
    return names[op][rn(3) == 0];
}

static void gen_leaf(mnode *n)
{
    n->group = 0;
    int op = rn(O_COUNT);
    n->op = op;
    if (op == O_CUSTOM) return;
    int f = rn(NMF);
    if ((op == O_LIKE || op == O_NLIKE) && MF[f].type != T_TEXT) f = rn(2) ? 3 : 5;
    n->f = f;
    n->opname = opname_of(op);
    switch (op) {
    case O_IS:
    case O_ISNOT:
        n->val = mq_keep(json_null());
        break;
    case O_LIKE:
    case O_NLIKE:
        n->val = mq_keep(json_string(PATTERNS[rn(NPATTERNS)]));
        n->cv = n->val;
        break;
    case O_IN:
    case O_NIN: {
        n->val = mq_keep(json_array());
        n->cv = mq_keep(json_array());
        int k = rn(5);
        for (int i = 0; i < k; i++) {
            json_t *c;
            json_t *v = gen_value(f, &c);
            /* (repeated values: see in_repeated_values) */
            int dup = 0;
            for (size_t j = 0; j < json_array_size(n->cv); j++) dup |= json_equal(c, json_array_get(n->cv, j));
            if (dup) continue;
            json_array_append(n->val, v);
            json_array_append(n->cv, c);
        }
        break;
    }
    case O_BETWEEN: {
        n->val = mq_keep(json_array());
        n->cv = mq_keep(json_array());
        for (int i = 0; i < 2; i++) {
            json_t *c;
            json_t *v = gen_value(f, &c);
            json_array_append(n->val, v);
            json_array_append(n->cv, c);
        }
        break;
    }
    default:
        n->val = gen_value(f, &n->cv);
        break;
    }
}

static void gen_group(mnode *g, int depth)
{
    g->group = 1;
    g->nk = 1 + (size_t)rn(depth == 0 ? 4 : 3);
    g->kid = mq_alloc(g->nk);
    for (size_t i = 0; i < g->nk; i++) {
        mnode *k = &g->kid[i];
        k->or_before = i > 0 && rn(3) == 0;
        if (depth < 3 && rn(4) == 0) gen_group(k, depth + 1);
        else gen_leaf(k);
    }
}

static int pred_b_even(const json_t *row, void *ctx)
{
    (*(int *)ctx)++;
    const json_t *b = json_object_get(row, "b");
    return json_is_integer(b) && json_integer_value(b) % 2 == 0;
}

static int custom_calls;

static ts_cond *build_cond(const mnode *g)
{
    ts_cond *c = ts_cond_new();
    REQUIRE(c != NULL, "ts_cond_new");
    for (size_t i = 0; i < g->nk; i++) {
        const mnode *k = &g->kid[i];
        if (k->or_before) ts_cond_or(c);
        if (k->group) ts_cond_add(c, build_cond(k));
        else ts_cond_where(c, MF[k->f].name, k->opname, k->val); /* no custom leaves in groups */
    }
    return c;
}

/* Custom predicates exist only at the top level. */
static void strip_custom(mnode *g, int top)
{
    for (size_t i = 0; i < g->nk; i++) {
        mnode *k = &g->kid[i];
        if (k->group) strip_custom(k, 0);
        else if (k->op == O_CUSTOM && !top) {
            k->f = 2;
            k->opname = "IS NOT";
            k->op = O_ISNOT;
            k->val = mq_keep(json_null());
        }
    }
}

static void build_query(ts_query *q, const mnode *g)
{
    for (size_t i = 0; i < g->nk; i++) {
        const mnode *k = &g->kid[i];
        if (k->or_before) ts_or(q);
        if (k->group) ts_where_cond(q, build_cond(k));
        else if (k->op == O_CUSTOM) ts_where_custom(q, pred_b_even, &custom_calls);
        else ts_where(q, MF[k->f].name, k->opname, k->val);
    }
}

static int ref_cmp(int t, const json_t *a, const json_t *b)
{
    if (t == T_TEXT) {
        int c = strcmp(json_string_value(a), json_string_value(b));
        return (c > 0) - (c < 0);
    }
    if (t == T_DBL) {
        double x = json_number_value(a), y = json_number_value(b);
        return (x > y) - (x < y);
    }
    json_int_t x = json_integer_value(a), y = json_integer_value(b);
    return (x > y) - (x < y);
}

static size_t u8len(const char *s)
{
    unsigned char c = (unsigned char)*s;
    return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

static int ref_like(const char *s, const char *p)
{
    if (!*p) return !*s;
    if (*p == '%') {
        for (;;) {
            if (ref_like(s, p + 1)) return 1;
            if (!*s) return 0;
            s += u8len(s);
        }
    }
    if (!*s) return 0;
    if (*p == '_') return ref_like(s + u8len(s), p + 1);
    if (*p == '\\' && p[1]) return *s == p[1] && ref_like(s + 1, p + 2);
    return *s == *p && ref_like(s + 1, p + 1);
}

static int ref_leaf(const json_t *row, const mnode *n)
{
    if (n->op == O_CUSTOM) {
        const json_t *b = json_object_get(row, "b");
        return json_is_integer(b) && json_integer_value(b) % 2 == 0;
    }
    const json_t *v = json_object_get(row, MF[n->f].name);
    REQUIRE(v != NULL, "no field %s", MF[n->f].name);
    int t = MF[n->f].type;
    if (n->op == O_IS) return json_is_null(v);
    if (n->op == O_ISNOT) return !json_is_null(v);
    if (json_is_null(v)) return 0;
    switch (n->op) {
    case O_EQ: return ref_cmp(t, v, n->cv) == 0;
    case O_NE: return ref_cmp(t, v, n->cv) != 0;
    case O_GT: return ref_cmp(t, v, n->cv) > 0;
    case O_GE: return ref_cmp(t, v, n->cv) >= 0;
    case O_LT: return ref_cmp(t, v, n->cv) < 0;
    case O_LE: return ref_cmp(t, v, n->cv) <= 0;
    case O_BETWEEN:
        return ref_cmp(t, v, json_array_get(n->cv, 0)) >= 0 && ref_cmp(t, v, json_array_get(n->cv, 1)) <= 0;
    case O_IN:
    case O_NIN: {
        int in = 0;
        for (size_t i = 0; i < json_array_size(n->cv) && !in; i++) in = ref_cmp(t, v, json_array_get(n->cv, i)) == 0;
        return n->op == O_IN ? in : !in;
    }
    case O_LIKE: return ref_like(json_string_value(v), json_string_value(n->cv));
    case O_NLIKE: return !ref_like(json_string_value(v), json_string_value(n->cv));
    }
    return 0;
}

/* OR of AND-runs */
static int ref_eval(const json_t *row, const mnode *g)
{
    int any = 0, run = 1;
    for (size_t i = 0; i < g->nk; i++) {
        const mnode *k = &g->kid[i];
        if (k->or_before) {
            any |= run;
            run = 1;
        }
        if (run) run = k->group ? ref_eval(row, k) : ref_leaf(row, k);
    }
    return any | run;
}

static void describe(char *b, size_t cap, const mnode *g)
{
    for (size_t i = 0; i < g->nk; i++) {
        const mnode *k = &g->kid[i];
        size_t o = strlen(b);
        if (i) snprintf(b + o, cap - o, k->or_before ? " OR " : " AND ");
        o = strlen(b);
        if (k->group) {
            snprintf(b + o, cap - o, "(");
            describe(b, cap, k);
            o = strlen(b);
            snprintf(b + o, cap - o, ")");
        } else if (k->op == O_CUSTOM) {
            snprintf(b + o, cap - o, "custom(b even)");
        } else {
            char *v = json_dumps(k->val, JSON_ENCODE_ANY | JSON_COMPACT);
            snprintf(b + o, cap - o, "%s %s %s", MF[k->f].name, k->opname, v);
            free(v);
        }
    }
}

typedef struct mord { int f, desc; } mord;
static mord cur_ord[4];
static size_t ncur_ord;

/* the expected order: the ORDER BY fields (nulls first ascending, last
 * descending), then the key ascending */
static int ord_cmp_keys(const json_t *x, const json_t *y)
{
    for (size_t i = 0; i < ncur_ord; i++) {
        const json_t *u = json_object_get(x, MF[cur_ord[i].f].name);
        const json_t *v = json_object_get(y, MF[cur_ord[i].f].name);
        int c;
        if (json_is_null(u) || json_is_null(v)) c = !json_is_null(u) - !json_is_null(v);
        else c = ref_cmp(MF[cur_ord[i].f].type, u, v);
        if (c) return cur_ord[i].desc ? -c : c;
    }
    return 0;
}

static int ord_cmp(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    int c = ord_cmp_keys(x, y);
    if (c) return c;
    json_int_t i = json_integer_value(json_object_get(x, "id")), j = json_integer_value(json_object_get(y, "id"));
    return (i > j) - (i < j);
}

static void model_query(ts_db *db, int round)
{
    mnode top;
    memset(&top, 0, sizeof top);
    if (rn(8) == 0) top.nk = 0;
    else gen_group(&top, 0);
    strip_custom(&top, 1);
    /* order */
    ncur_ord = 0;
    int no = rn(5) < 2 ? 0 : 1 + rn(2);
    for (int i = 0; i < no; i++) cur_ord[ncur_ord++] = (mord){ rn(NMF), rn(2) };
    int tie_id = ncur_ord && rn(3) == 0;
    if (tie_id) cur_ord[ncur_ord++] = (mord){ 0, rn(2) };
    int64_t limit = rn(5) < 2 ? -1 : rn(60);
    int64_t offset = rn(3) == 0 ? rn(40) : 0;

    char desc[8192] = "";
    describe(desc, sizeof desc, &top);
    size_t o = strlen(desc);
    for (size_t i = 0; i < ncur_ord; i++)
        o += (size_t)snprintf(desc + o, sizeof desc - o, "%s%s%s", i ? ", " : " ORDER BY ", MF[cur_ord[i].f].name,
                              cur_ord[i].desc ? " DESC" : "");
    snprintf(desc + o, sizeof desc - o, " LIMIT %lld OFFSET %lld", (long long)limit, (long long)offset);

    /* expected */
    const json_t *exp[MODEL_ROWS + 1];
    size_t ne = 0;
    for (int i = 1; i <= MODEL_ROWS; i++)
        if (mrows[i] && ref_eval(mrows[i], &top)) exp[ne++] = mrows[i];
    qsort(exp, ne, sizeof *exp, ord_cmp);

    ts_query *q = ts_query_new(db, "m");
    build_query(q, &top);
    for (size_t i = 0; i < ncur_ord; i++) ts_order_by(q, MF[cur_ord[i].f].name, cur_ord[i].desc);
    if (limit >= 0) ts_limit(q, limit);
    if (offset) ts_offset(q, offset);
    ts_result *r = NULL;
    int rc = ts_query_exec(q, &r);
    REQUIRE(rc == TS_OK, "round %d: %s: exec %d %s", round, desc, rc, ts_errmsg(db));
    size_t from = (size_t)offset < ne ? (size_t)offset : ne;
    size_t want = ne - from;
    if (limit >= 0 && (size_t)limit < want) want = (size_t)limit;
    size_t got = ts_result_count(r);
    if (got != want) {
        char ids[4096] = "";
        for (size_t i = 0; i < ne && strlen(ids) < 4000; i++)
            snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%lld", i ? "," : "",
                     (long long)json_integer_value(json_object_get(exp[i], "id")));
        char gids[4096] = "";
        for (size_t i = 0; i < got && strlen(gids) < 4000; i++)
            snprintf(gids + strlen(gids), sizeof gids - strlen(gids), "%s%lld", i ? "," : "",
                     (long long)json_integer_value(json_object_get(ts_result_row(r, i), "id")));
        ck_abort_msg("round %d: %s: expected %zu rows, got %zu\nexpected (before offset/limit) %s\ngot %s",
                     round, desc, want, got, ids, gids);
    }
    for (size_t i = 0; i < got; i++) {
        const json_t *row = ts_result_row(r, i);
        json_int_t id = json_integer_value(json_object_get(row, "id"));
        REQUIRE(id >= 1 && id <= MODEL_ROWS && mrows[id], "round %d: %s: row %zu: unknown id %lld", round,
                      desc, i, (long long)id);
        REQUIRE(json_equal(row, mrows[id]), "round %d: %s: row %zu differs from the stored row", round,
                      desc, i);
        REQUIRE(ref_eval(row, &top), "round %d: %s: row id %lld does not match", round, desc,
                      (long long)id);
        const json_t *e = exp[from + i];
        if (!ncur_ord || tie_id) {
            REQUIRE(json_integer_value(json_object_get(e, "id")) == id,
                          "round %d: %s: row %zu: expected id %lld, got %lld", round, desc, i,
                          (long long)json_integer_value(json_object_get(e, "id")), (long long)id);
        } else {
            REQUIRE(ord_cmp_keys(row, e) == 0, "round %d: %s: row %zu (id %lld) out of order (expected "
                          "id %lld's sort key)", round, desc, i, (long long)id,
                          (long long)json_integer_value(json_object_get(e, "id")));
        }
        for (size_t j = 0; j < i; j++)
            REQUIRE(json_integer_value(json_object_get(ts_result_row(r, j), "id")) != id,
                          "round %d: %s: id %lld twice", round, desc, (long long)id);
    }
    ts_result_free(r);

    /* count (ignores limit and offset), stream (an explicit limit only),
     * aggregates, explain */
    if (round % 3 == 0) {
        int64_t n = -1;
        rc = ts_query_count(q, &n);
        REQUIRE(rc == TS_OK && n == (int64_t)ne, "round %d: %s: count %lld (rc %d), expected %zu", round,
                      desc, (long long)n, rc, ne);
    }
    if (round % 3 == 1) {
        ts_stream *s = NULL;
        rc = ts_query_stream(q, &s);
        REQUIRE(rc == TS_OK, "round %d: %s: stream %d", round, desc, rc);
        size_t k = 0;
        json_t *row;
        while ((rc = ts_stream_next(s, &row)) == 1) {
            REQUIRE(k < want, "round %d: %s: stream gives too many rows", round, desc);
            if (!ncur_ord || tie_id)
                REQUIRE(json_equal(row, exp[from + k]), "round %d: %s: stream row %zu differs", round,
                              desc, k);
            else
                REQUIRE(ord_cmp_keys(row, exp[from + k]) == 0 && ref_eval(row, &top),
                              "round %d: %s: stream row %zu differs", round, desc, k);
            json_decref(row);
            k++;
        }
        ts_stream_free(s);
        REQUIRE(rc == 0 && k == want, "round %d: %s: stream gave %zu rows (rc %d), expected %zu", round,
                      desc, k, rc, want);
    }
    if (round % 3 == 2) {
        /* sum(b) over every match, min(s), max(a), avg(d) */
        json_int_t sum = 0;
        size_t nsum = 0, nd = 0;
        double dsum = 0;
        const json_t *mins = NULL, *maxa = NULL;
        for (size_t i = 0; i < ne; i++) {
            const json_t *b = json_object_get(exp[i], "b"), *s = json_object_get(exp[i], "s");
            const json_t *a = json_object_get(exp[i], "a"), *d = json_object_get(exp[i], "d");
            if (!json_is_null(b)) { sum += json_integer_value(b); nsum++; }
            if (!json_is_null(d)) { dsum += json_real_value(d); nd++; }
            if (!json_is_null(s) && (!mins || strcmp(json_string_value(s), json_string_value(mins)) < 0)) mins = s;
            if (!json_is_null(a) && (!maxa || json_integer_value(a) > json_integer_value(maxa))) maxa = a;
        }
        json_t *v = NULL;
        rc = ts_query_aggregate(q, "sum", "b", &v);
        REQUIRE(rc == TS_OK && (nsum ? json_is_integer(v) && json_integer_value(v) == sum : json_is_null(v)),
                      "round %d: %s: sum(b) %s, expected %lld", round, desc, v ? dumps(v) : "-", (long long)sum);
        json_decref(v);
        rc = ts_query_aggregate(q, "min", "s", &v);
        REQUIRE(rc == TS_OK && (mins ? json_equal(v, mins) : json_is_null(v)), "round %d: %s: min(s)",
                      round, desc);
        json_decref(v);
        rc = ts_query_aggregate(q, "max", "a", &v);
        REQUIRE(rc == TS_OK && (maxa ? json_equal(v, maxa) : json_is_null(v)), "round %d: %s: max(a)",
                      round, desc);
        json_decref(v);
        rc = ts_query_aggregate(q, "avg", "d", &v);
        REQUIRE(rc == TS_OK && (nd ? json_is_number(v) && fabs(json_number_value(v) - dsum / (double)nd) < 1e-9
                                         : json_is_null(v)), "round %d: %s: avg(d)", round, desc);
        json_decref(v);
        rc = ts_query_explain(q, &v);
        REQUIRE(rc == TS_OK && json_integer_value(json_object_get(v, "rowsReturned")) == (json_int_t)want,
                      "round %d: %s: explain rowsReturned", round, desc);
        json_decref(v);
    }
    ts_query_free(q);
    mq_reset();
}

START_TEST(model_random_queries)
{
    const char *seed = getenv("TS_QUERY_SEED");
    const char *rounds_env = getenv("TS_QUERY_ROUNDS");
    uint64_t s0 = seed ? strtoull(seed, NULL, 0) : 0x9E3779B97F4A7C15ULL;
    rstate = s0 ? s0 : 1;
    int rounds = rounds_env ? atoi(rounds_env) : 1500;
    ts_db *db = open_db(NULL);
    model_build(db);
    for (int i = 0; i < rounds; i++) model_query(db, i);
    /* the same queries inside a read snapshot */
    ck_assert_int_eq(ts_begin_read(db), TS_OK);
    for (int i = 0; i < 100; i++) model_query(db, rounds + i);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_gt(custom_calls, 0);
    ts_close(db);
}
END_TEST

/* Cursor pages over random conditions: following next cursors gives the
 * matching rows in order, each once; prev cursors give the same pages
 * back.  Queries whose order cannot be resumed give no cursor. */
static int walks_with_cursor;

static void model_walk(ts_db *db, int round)
{
    mnode top;
    memset(&top, 0, sizeof top);
    if (rn(3) == 0) top.nk = 0;
    else gen_group(&top, 1);
    strip_custom(&top, 1);
    static const int ofields[] = { -1, 0, 1, 3 }; /* none, id, a (index), s (index) */
    int of = ofields[rn(4)];
    ncur_ord = 0;
    if (of >= 0) cur_ord[ncur_ord++] = (mord){ of, rn(2) };
    int64_t limit = 1 + rn(40);
    char desc[8192] = "";
    describe(desc, sizeof desc, &top);
    size_t o = strlen(desc);
    snprintf(desc + o, sizeof desc - o, "%s%s%s LIMIT %lld", of >= 0 ? " ORDER BY " : "", of >= 0 ? MF[of].name : "",
             of >= 0 && cur_ord[0].desc ? " DESC" : "", (long long)limit);
    const json_t *exp[MODEL_ROWS + 1];
    size_t ne = 0;
    for (int i = 1; i <= MODEL_ROWS; i++)
        if (mrows[i] && ref_eval(mrows[i], &top)) exp[ne++] = mrows[i];
    qsort(exp, ne, sizeof *exp, ord_cmp);

    enum { MAXP = MODEL_ROWS + 2 };
    static json_int_t pids[MAXP][64];
    static size_t pn[MAXP];
    static char *prevs[MAXP];
    size_t np = 0, pos = 0;
    int seen[MODEL_ROWS + 1] = { 0 };
    char *tok = NULL;
    int stopped_early = 0;
    for (;;) {
        REQUIRE(np < MAXP, "round %d: %s: too many pages", round, desc);
        ts_query *q = ts_query_new(db, "m");
        build_query(q, &top);
        if (of >= 0) ts_order_by(q, MF[of].name, cur_ord[0].desc);
        ts_limit(q, limit);
        if (tok) ts_cursor(q, tok);
        ts_result *r = NULL;
        int rc = ts_query_exec(q, &r);
        REQUIRE(rc == TS_OK, "round %d: %s: page %zu: %d %s", round, desc, np + 1, rc, ts_errmsg(db));
        size_t n = ts_result_count(r);
        const char *next = ts_result_next_cursor(r);
        REQUIRE(n <= (size_t)limit, "round %d: %s: page of %zu rows", round, desc, n);
        REQUIRE(!next || n == (size_t)limit, "round %d: %s: page %zu: %zu rows and a next cursor", round, desc,
                np + 1, n);
        pn[np] = n;
        prevs[np] = ts_result_prev_cursor(r) ? strdup(ts_result_prev_cursor(r)) : NULL;
        REQUIRE((np == 0) == (prevs[np] == NULL), "round %d: %s: page %zu: prev cursor %s", round, desc, np + 1,
                prevs[np] ? "given" : "missing");
        for (size_t i = 0; i < n; i++, pos++) {
            const json_t *row = ts_result_row(r, i);
            json_int_t id = json_integer_value(json_object_get(row, "id"));
            pids[np][i] = id;
            REQUIRE(pos < ne, "round %d: %s: more rows than the %zu matching", round, desc, ne);
            REQUIRE(id >= 1 && id <= MODEL_ROWS && mrows[id] && ref_eval(mrows[id], &top) && !seen[id],
                    "round %d: %s: page %zu: row %lld unexpected or repeated", round, desc, np + 1, (long long)id);
            seen[id] = 1;
            REQUIRE(of >= 0 ? ord_cmp_keys(row, exp[pos]) == 0
                            : json_integer_value(json_object_get(exp[pos], "id")) == id,
                    "round %d: %s: page %zu: row %lld out of order (position %zu)", round, desc, np + 1,
                    (long long)id, pos);
        }
        np++;
        free(tok);
        tok = next ? strdup(next) : NULL;
        ts_result_free(r);
        ts_query_free(q);
        if (!tok) break;
    }
    if (pos < ne) {
        /* no cursor: allowed only as the first page's (an order no scan gives) */
        REQUIRE(np == 1, "round %d: %s: the pages stop after %zu of %zu rows", round, desc, pos, ne);
        stopped_early = 1;
    }
    if (!stopped_early && np > 1) {
        walks_with_cursor++;
        /* back from the last page */
        for (size_t k = np - 1; k > 0; k--) {
            REQUIRE(prevs[k] != NULL, "round %d: %s: page %zu has no prev cursor", round, desc, k + 1);
            ts_query *q = ts_query_new(db, "m");
            build_query(q, &top);
            if (of >= 0) ts_order_by(q, MF[of].name, cur_ord[0].desc);
            ts_limit(q, limit);
            ts_cursor(q, prevs[k]);
            ts_result *r = NULL;
            int rc = ts_query_exec(q, &r);
            REQUIRE(rc == TS_OK, "round %d: %s: back to page %zu: %d", round, desc, k, rc);
            REQUIRE(ts_result_count(r) == pn[k - 1], "round %d: %s: back to page %zu: %zu rows, expected %zu",
                    round, desc, k, ts_result_count(r), pn[k - 1]);
            for (size_t i = 0; i < pn[k - 1]; i++)
                REQUIRE(json_integer_value(json_object_get(ts_result_row(r, i), "id")) == pids[k - 1][i],
                        "round %d: %s: back to page %zu: row %zu differs", round, desc, k, i);
            ts_result_free(r);
            ts_query_free(q);
            if (rn(4) == 0) break;
        }
    }
    for (size_t k = 0; k < np; k++) free(prevs[k]);
    mq_reset();
}

START_TEST(model_cursor_walks)
{
    const char *seed = getenv("TS_QUERY_SEED");
    const char *rounds_env = getenv("TS_QUERY_ROUNDS");
    uint64_t s0 = seed ? strtoull(seed, NULL, 0) : 0x1234567887654321ULL;
    rstate = s0 ? s0 ^ 0x5555 : 1;
    int rounds = rounds_env ? atoi(rounds_env) / 5 : 300;
    ts_db *db = open_db(NULL);
    model_build(db);
    for (int i = 0; i < rounds; i++) model_walk(db, i);
    ck_assert_int_gt(walks_with_cursor, rounds / 10);
    ts_close(db);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("query");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, operators);
    tcase_add_test(tc, in_repeated_values);
    tcase_add_test(tc, nulls_sql_semantics);
    tcase_add_test(tc, coercion);
    tcase_add_test(tc, like_edge_cases);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, rerun_after_change);
    tcase_add_test(tc, and_or_precedence);
    tcase_add_test(tc, nested_groups);
    tcase_add_test(tc, custom_predicates);
    tcase_add_test(tc, order_limit_offset);
    tcase_add_test(tc, default_key_order);
    tcase_add_test(tc, select_list);
    tcase_add_test(tc, default_limit);
    tcase_add_test(tc, joins);
    tcase_add_test(tc, count_and_aggregates);
    tcase_add_test(tc, query_update);
    tcase_add_test(tc, query_update_expressions);
    tcase_add_test(tc, query_update_atomic);
    tcase_add_test(tc, query_delete);
    tcase_add_test(tc, streams);
    tcase_add_test(tc, cache);
    tcase_add_test(tc, cache_after_schema_change);
    tcase_add_test(tc, spaces_and_global);
    tcase_add_test(tc, ttl_rows);
    tcase_add_test(tc, text_keys);
    tcase_add_test(tc, empty_table);
    tcase_add_test(tc, model_random_queries);
    tcase_add_test(tc, model_cursor_walks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
