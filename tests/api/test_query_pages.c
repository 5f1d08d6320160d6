/*
 * Query plans and cursor pages through the public header only (issue 6):
 * every plan shape checked with ts_query_explain on a 20k-row table (and
 * the pages a key lookup touches), then cursor pagination: following next
 * cursors visits every row exactly once in order (by key, by an indexed
 * field with duplicates and nulls, both directions, with conditions),
 * previous cursors go back page by page, tokens fit any query of the same
 * shape and no other, and a deep page costs what the first does.
 *
 * JSON in the tests is written with single quotes (J() turns them into
 * double quotes).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/tostore.h>
#include "tsupport.h"

/* Check's ck_assert_* reports each passing check to the parent process;
 * loops use this instead. */
#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

#define TT_NAME "query_pages"
#define TT_DEFAULTS "\"durability\": \"normal\""
#include "tables_support.h"

static json_int_t rid(const json_t *row) { return json_integer_value(json_object_get(row, "id")); }

/* ---- plans --------------------------------------------------------------- */

enum { BIG = 20000 };

static void big_table(ts_db *db)
{
    create(db, "{'name': 'big', 'fields': [{'name': 'k', 'type': 'integer'}, {'name': 'g', 'type': 'integer'},"
               "{'name': 'hh', 'type': 'integer'}, {'name': 'c', 'type': 'integer'},"
               "{'name': 't', 'type': 'integer'}, {'name': 'n', 'type': 'integer'}], 'indexes': ["
               "{'fields': ['k'], 'unique': true, 'indexName': 'by_k'},"
               "{'fields': ['g'], 'indexName': 'by_g'},"
               "{'fields': ['hh'], 'type': 'hash', 'indexName': 'by_hh'},"
               "{'fields': ['c', 't'], 'indexName': 'by_ct'}]}");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 1; i <= BIG; i++) {
        json_t *rec = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "k", i * 7, "g", i % 100, "hh", i % 50,
                                "c", i % 10, "t", i % 1000, "n", i % 37);
        int rc = ts_insert(db, "big", rec, NULL);
        json_decref(rec);
        REQUIRE(rc == TS_OK, "insert %d: %d %s", i, rc, ts_errmsg(db));
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
}

/* explain q (kept) */
static json_t *explain(ts_query *q)
{
    json_t *e = NULL;
    int rc = ts_query_explain(q, &e);
    ck_assert_msg(rc == TS_OK, "explain: %d", rc);
    ck_assert(json_is_object(e));
    return keep(e);
}

static const char *estr(const json_t *e, const char *k)
{
    const json_t *v = json_object_get(e, k);
    return json_is_string(v) ? json_string_value(v) : "(none)";
}

static json_int_t eint(const json_t *e, const char *k)
{
    const json_t *v = json_object_get(e, k);
    ck_assert_msg(json_is_integer(v), "explain has no integer '%s'", k);
    return json_integer_value(v);
}

static int ebool(const json_t *e, const char *k)
{
    const json_t *v = json_object_get(e, k);
    ck_assert_msg(json_is_boolean(v), "explain has no boolean '%s'", k);
    return json_is_true(v);
}

static void expect_plan(ts_query *q, const char *what, const char *plan, const char *index, json_int_t rows,
                        json_t **out)
{
    json_t *e = explain(q);
    char *s = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
    if (getenv("TS_QUERY_VERBOSE")) fprintf(stderr, "%s: %s\n", what, s);
    ck_assert_msg(strcmp(estr(e, "plan"), plan) == 0, "%s: expected plan %s, got %s", what, plan, s);
    if (index) ck_assert_msg(strcmp(estr(e, "index"), index) == 0, "%s: expected index %s, got %s", what, index, s);
    if (rows >= 0)
        ck_assert_msg(eint(e, "rowsReturned") == rows, "%s: expected %lld rows, got %s", what, (long long)rows, s);
    ck_assert_msg(eint(e, "pagesTouched") > 0, "%s: no pages touched: %s", what, s);
    ck_assert_str_eq(estr(e, "table"), "big");
    free(s);
    if (out) *out = e;
}

static ts_query *qw(ts_db *db, const char *f, const char *op, json_t *v)
{
    return ts_where(ts_query_new(db, "big"), f, op, v);
}

START_TEST(plans)
{
    ts_db *db = open_db(NULL);
    big_table(db);
    json_t *e, *full;

    /* primary key lookup: few pages on 20k rows */
    ts_query *q = qw(db, "id", "=", I(777));
    expect_plan(q, "id = 777", "primaryKeyLookup", NULL, 1, &e);
    ck_assert_int_lt(eint(e, "pagesTouched"), 10);
    ck_assert_int_le(eint(e, "rowsExamined"), 1);
    json_int_t pk_pages = eint(e, "pagesTouched");
    ts_result *r = NULL;
    ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(ts_result_row(r, 0), "k")), 777 * 7);
    ts_result_free(r);
    ts_query_free(q);
    q = qw(db, "id", "=", J("'20000'"));
    expect_plan(q, "id = '20000'", "primaryKeyLookup", NULL, 1, &e);
    ck_assert_int_lt(eint(e, "pagesTouched"), 10);
    ts_query_free(q);
    q = qw(db, "id", "IN", J("[5, 6, 7, 30000]"));
    expect_plan(q, "id IN", "primaryKeyLookup", NULL, 3, &e);
    ck_assert_int_lt(eint(e, "pagesTouched"), 30);
    ts_query_free(q);
    /* key ranges */
    q = qw(db, "id", "BETWEEN", J("[100, 199]"));
    expect_plan(q, "id BETWEEN", "primaryKeyRange", NULL, 100, &e);
    ck_assert_int_le(eint(e, "rowsExamined"), 101);
    ts_query_free(q);
    q = qw(db, "id", ">", I(BIG - 10));
    expect_plan(q, "id >", "primaryKeyRange", NULL, 10, &e);
    ck_assert_int_le(eint(e, "rowsExamined"), 11);
    ts_query_free(q);
    /* unique index equality */
    q = qw(db, "k", "=", I(1234 * 7));
    expect_plan(q, "k = (unique)", "indexLookup", "by_k", 1, &e);
    ck_assert_int_lt(eint(e, "pagesTouched"), 15);
    ck_assert_int_le(eint(e, "rowsExamined"), 1);
    ts_query_free(q);
    q = qw(db, "k", "=", I(5)); /* no such value */
    expect_plan(q, "k = (absent)", "indexLookup", "by_k", 0, &e);
    ck_assert_int_lt(eint(e, "pagesTouched"), 15);
    ts_query_free(q);
    /* index equality, IN, range */
    q = qw(db, "g", "=", I(42));
    expect_plan(q, "g = 42", "indexLookup", "by_g", 200, &e);
    ck_assert_int_eq(eint(e, "rowsExamined"), 200);
    ts_query_free(q);
    q = qw(db, "g", "IN", J("[1, 2]"));
    expect_plan(q, "g IN", "indexLookup", "by_g", 400, &e);
    ck_assert_int_eq(eint(e, "rowsExamined"), 400);
    ts_query_free(q);
    q = qw(db, "g", ">", I(97));
    expect_plan(q, "g > 97", "indexRange", "by_g", 400, &e);
    ck_assert_int_eq(eint(e, "rowsExamined"), 400);
    ts_query_free(q);
    q = qw(db, "g", "BETWEEN", J("[10, 11]"));
    ts_where(q, "n", "=", I(3));
    expect_plan(q, "g BETWEEN AND n", "indexRange", "by_g", -1, &e);
    ck_assert_int_eq(eint(e, "rowsExamined"), 400);
    ts_query_free(q);
    /* hash index equality and IN */
    q = qw(db, "hh", "=", I(7));
    expect_plan(q, "hh = 7", "indexLookup", "by_hh", 400, &e);
    ts_query_free(q);
    q = qw(db, "hh", "IN", J("[7, 8]"));
    expect_plan(q, "hh IN", "indexLookup", "by_hh", 800, &e);
    ts_query_free(q);
    /* composite: equality prefix + range; whole key */
    q = ts_where(qw(db, "c", "=", I(3)), "t", "<", I(50));
    expect_plan(q, "c = 3 AND t < 50", "indexRange", "by_ct", 100, &e);
    ck_assert_int_eq(eint(e, "rowsExamined"), 100);
    ts_query_free(q);
    q = ts_where(qw(db, "t", "=", I(13)), "c", "=", I(3));
    expect_plan(q, "c = 3 AND t = 13", "indexLookup", "by_ct", 20, &e);
    ts_query_free(q);
    /* OR: a union when every branch is indexed */
    q = qw(db, "g", "=", I(1));
    ts_or(q);
    ts_where(q, "k", "=", I(35)); /* i = 5, g = 5 */
    ts_or(q);
    ts_where(q, "id", "=", I(101)); /* g = 1 already */
    expect_plan(q, "g = 1 OR k = 35 OR id = 101", "indexUnion", NULL, 201, &e);
    ck_assert_int_le(eint(e, "rowsExamined"), 201);
    r = NULL;
    ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
    for (size_t i = 1; i < ts_result_count(r); i++)
        REQUIRE(rid(ts_result_row(r, i - 1)) < rid(ts_result_row(r, i)), "union rows in key order");
    ts_result_free(r);
    ts_query_free(q);
    /* OR with an unindexed branch: a full scan */
    int want = 0;
    for (int i = 1; i <= BIG; i++) want += i % 100 == 1 || i % 37 == 5;
    q = qw(db, "g", "=", I(1));
    ts_or(q);
    ts_where(q, "n", "=", I(5));
    ts_limit(q, BIG);
    expect_plan(q, "g = 1 OR n = 5", "fullScan", NULL, want, &e);
    ts_query_free(q);
    /* full scan: many more pages than a lookup */
    q = qw(db, "n", "=", I(5));
    ts_limit(q, BIG);
    want = 0;
    for (int i = 1; i <= BIG; i++) want += i % 37 == 5;
    expect_plan(q, "n = 5", "fullScan", NULL, want, &full);
    ck_assert_int_eq(eint(full, "rowsExamined"), BIG);
    ck_assert_int_gt(eint(full, "pagesTouched"), 10 * pk_pages);
    ts_query_free(q);

    /* ORDER BY an indexed field + LIMIT: an ordered index scan, no sort */
    q = ts_limit(ts_order_by(ts_query_new(db, "big"), "g", 0), 10);
    expect_plan(q, "ORDER BY g LIMIT 10", "indexRange", "by_g", 10, &e);
    ck_assert_int_eq(ebool(e, "sorted"), 0);
    ck_assert_int_eq(ebool(e, "reverse"), 0);
    ck_assert_int_le(eint(e, "rowsExamined"), 11);
    ck_assert_int_lt(eint(e, "pagesTouched"), eint(full, "pagesTouched") / 4);
    r = NULL;
    ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
    ck_assert_uint_eq(ts_result_count(r), 10);
    for (size_t i = 0; i < 10; i++) ck_assert_int_eq(json_integer_value(json_object_get(ts_result_row(r, i), "g")), 0);
    ts_result_free(r);
    ts_query_free(q);
    q = ts_limit(ts_order_by(ts_query_new(db, "big"), "g", 1), 10);
    expect_plan(q, "ORDER BY g DESC LIMIT 10", "indexRange", "by_g", 10, &e);
    ck_assert_int_eq(ebool(e, "sorted"), 0);
    ck_assert_int_eq(ebool(e, "reverse"), 1);
    ck_assert_int_le(eint(e, "rowsExamined"), 11);
    r = NULL;
    ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
    for (size_t i = 0; i < 10; i++) ck_assert_int_eq(json_integer_value(json_object_get(ts_result_row(r, i), "g")), 99);
    ts_result_free(r);
    ts_query_free(q);
    /* the same with a condition on an unindexed field */
    q = ts_limit(ts_order_by(qw(db, "n", "=", I(5)), "g", 0), 3);
    expect_plan(q, "n = 5 ORDER BY g LIMIT 3", "indexRange", "by_g", 3, &e);
    ck_assert_int_eq(ebool(e, "sorted"), 0);
    ts_query_free(q);
    /* the range scan itself gives the order */
    q = ts_limit(ts_order_by(qw(db, "g", ">=", I(50)), "g", 1), 5);
    expect_plan(q, "g >= 50 ORDER BY g DESC", "indexRange", "by_g", 5, &e);
    ck_assert_int_eq(ebool(e, "sorted"), 0);
    ck_assert_int_le(eint(e, "rowsExamined"), 6);
    ts_query_free(q);
    /* by the key, backwards */
    q = ts_limit(ts_order_by(ts_query_new(db, "big"), "id", 1), 5);
    expect_plan(q, "ORDER BY id DESC LIMIT 5", "fullScan", NULL, 5, &e);
    ck_assert_int_eq(ebool(e, "sorted"), 0);
    ck_assert_int_eq(ebool(e, "reverse"), 1);
    ck_assert_int_le(eint(e, "rowsExamined"), 6);
    r = NULL;
    ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
    ck_assert_int_eq(rid(ts_result_row(r, 0)), BIG);
    ck_assert_int_eq(rid(ts_result_row(r, 4)), BIG - 4);
    ts_result_free(r);
    ts_query_free(q);
    /* an unindexed order needs a sort */
    q = ts_limit(ts_order_by(ts_query_new(db, "big"), "n", 0), 10);
    expect_plan(q, "ORDER BY n", "fullScan", NULL, 10, &e);
    ck_assert_int_eq(ebool(e, "sorted"), 1);
    ts_query_free(q);
    q = ts_limit(ts_order_by(ts_order_by(ts_query_new(db, "big"), "g", 0), "n", 0), 10);
    e = explain(q);
    ck_assert_int_eq(ebool(e, "sorted"), 1);
    ts_query_free(q);
    /* a lookup then a sort */
    q = ts_order_by(qw(db, "hh", "=", I(3)), "n", 1);
    expect_plan(q, "hh = 3 ORDER BY n DESC", "indexLookup", "by_hh", 400, &e);
    ck_assert_int_eq(ebool(e, "sorted"), 1);
    ts_query_free(q);
    /* counts use the plans too */
    q = qw(db, "g", "=", I(42));
    int64_t n = 0;
    ck_assert_int_eq(ts_query_count(q, &n), TS_OK);
    ck_assert_int_eq(n, 200);
    ts_query_free(q);
    ts_close(db);
}
END_TEST

/* ---- cursor pages ---------------------------------------------------------- */

enum { CP_ROWS = 600 };
static uint64_t rstate = 0x2545F4914F6CDD1DULL;
static int rn(int n)
{
    rstate ^= rstate << 13;
    rstate ^= rstate >> 7;
    rstate ^= rstate << 17;
    return (int)((rstate >> 16) % (uint64_t)n);
}

/* cp rows by id: present, g (-1: null), n */
static int cp_here[CP_ROWS + 1], cp_g[CP_ROWS + 1], cp_n[CP_ROWS + 1];

static void cp_table(ts_db *db)
{
    create(db, "{'name': 'cp', 'fields': [{'name': 'g', 'type': 'integer', 'createIndex': true},"
               "{'name': 'n', 'type': 'integer'}]}");
    create(db, "{'name': 'cq', 'fields': [{'name': 'g', 'type': 'integer', 'createIndex': true},"
               "{'name': 'n', 'type': 'integer'}]}");
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (int i = 1; i <= CP_ROWS; i++) {
        cp_g[i] = rn(10) == 0 ? -1 : rn(25);
        cp_n[i] = rn(100);
        cp_here[i] = 1;
        json_t *rec = json_pack("{s:o, s:i}", "g", cp_g[i] < 0 ? json_null() : json_integer(cp_g[i]), "n", cp_n[i]);
        REQUIRE(ts_insert(db, "cp", rec, NULL) == TS_OK, "insert");
        REQUIRE(ts_insert(db, "cq", rec, NULL) == TS_OK, "insert");
        json_decref(rec);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    for (int k = 0; k < 40; k++) {
        int id = 1 + rn(CP_ROWS);
        if (!cp_here[id]) continue;
        ck_assert_int_eq(ts_delete(db, "cp", I(id)), TS_OK);
        cp_here[id] = 0;
    }
}

/* A query shape for the walks. */
typedef struct shape {
    const char *name;
    const char *order;     /* NULL: no order */
    int desc;
    int (*match)(int id);  /* NULL: all */
    void (*where)(ts_query *q);
} shape;

static int m_g5_n3(int id) { return cp_g[id] >= 5 && cp_n[id] != 3; }
static void w_g5_n3(ts_query *q) { ts_where(ts_where(q, "g", ">=", I(5)), "n", "!=", I(3)); }
static int m_n50(int id) { return cp_n[id] < 50; }
static void w_n50(ts_query *q) { ts_where(q, "n", "<", I(50)); }
static int m_id100(int id) { return id > 100 && cp_n[id] >= 20; }
static void w_id100(ts_query *q) { ts_where(ts_where(q, "id", ">", I(100)), "n", ">=", I(20)); }
static int m_g37(int id) { return cp_g[id] >= 3 && cp_g[id] <= 7; }
static void w_g37(ts_query *q) { ts_where(q, "g", "BETWEEN", J("[3, 7]")); }
static int m_gnull_or(int id) { return cp_g[id] < 0 || cp_n[id] > 90; }
static void w_gnull_or(ts_query *q) { ts_or(ts_where(q, "g", "IS", keep(json_null()))); ts_where(q, "n", ">", I(90)); }

static ts_query *shape_query(ts_db *db, const shape *s, int64_t limit, const char *cursor)
{
    ts_query *q = ts_query_new(db, "cp");
    if (s->where) s->where(q);
    if (s->order) ts_order_by(q, s->order, s->desc);
    ts_limit(q, limit);
    if (cursor) ts_cursor(q, cursor);
    return q;
}

/* the sort key of row id under shape s (g null sorts first) */
static long skey(const shape *s, int id)
{
    if (!s->order || strcmp(s->order, "id") == 0) return id;
    return cp_g[id];
}

typedef struct page {
    json_int_t ids[CP_ROWS];
    size_t n;
    char *next, *prev;
} page;

static void page_run(ts_db *db, const shape *s, int64_t limit, const char *cursor, page *p)
{
    ts_query *q = shape_query(db, s, limit, cursor);
    ts_result *r = NULL;
    int rc = ts_query_exec(q, &r);
    ck_assert_msg(rc == TS_OK, "%s: page: %d %s", s->name, rc, ts_errmsg(db));
    p->n = ts_result_count(r);
    for (size_t i = 0; i < p->n; i++) p->ids[i] = rid(ts_result_row(r, i));
    p->next = ts_result_next_cursor(r) ? strdup(ts_result_next_cursor(r)) : NULL;
    p->prev = ts_result_prev_cursor(r) ? strdup(ts_result_prev_cursor(r)) : NULL;
    ts_result_free(r);
    ts_query_free(q);
}

static void page_free(page *p)
{
    free(p->next);
    free(p->prev);
}

/* Follow next cursors from the first page; check every row once, in
 * order; then follow prev cursors back from the last page. */
static void walk(ts_db *db, const shape *s, int64_t limit)
{
    int expect = 0;
    for (int id = 1; id <= CP_ROWS; id++) expect += cp_here[id] && (!s->match || s->match(id));
    ck_assert_msg(expect > 2 * limit, "%s: too few rows (%d) for a walk", s->name, expect);
    static page pages[CP_ROWS + 1];
    size_t np = 0;
    int seen[CP_ROWS + 1] = { 0 };
    int total = 0;
    long last_key = 0;
    json_int_t last_id = 0;
    const char *cursor = NULL;
    for (;;) {
        ck_assert_msg(np <= CP_ROWS, "%s: too many pages", s->name);
        page *p = &pages[np++];
        page_run(db, s, limit, cursor, p);
        if (np == 1) ck_assert_msg(p->prev == NULL, "%s: the first page has a prev cursor", s->name);
        else ck_assert_msg(p->prev != NULL, "%s: page %zu has no prev cursor", s->name, np);
        if (p->next) ck_assert_msg(p->n == (size_t)limit, "%s: page %zu: %zu rows before the end", s->name, np, p->n);
        else ck_assert_msg(p->n >= 1, "%s: an empty last page %zu", s->name, np);
        for (size_t i = 0; i < p->n; i++) {
            json_int_t id = p->ids[i];
            REQUIRE(id >= 1 && id <= CP_ROWS && cp_here[id] && (!s->match || s->match((int)id)),
                    "%s: page %zu: row %lld should not be there", s->name, np, (long long)id);
            REQUIRE(!seen[id], "%s: page %zu: row %lld seen twice", s->name, np, (long long)id);
            seen[id] = 1;
            long k = skey(s, (int)id);
            if (total) {
                int c = (k > last_key) - (k < last_key);
                if (s->desc) c = -c;
                REQUIRE(c >= 0, "%s: page %zu: row %lld out of order after %lld", s->name, np, (long long)id,
                        (long long)last_id);
            }
            last_key = k;
            last_id = id;
            total++;
        }
        if (!p->next) break;
        cursor = p->next;
    }
    ck_assert_msg(total == expect, "%s: the pages hold %d rows, expected %d", s->name, total, expect);
    ck_assert_uint_eq(np, (size_t)((expect + limit - 1) / limit));
    /* back with prev cursors: the same pages, in reverse */
    char *tok = pages[np - 1].prev ? strdup(pages[np - 1].prev) : NULL;
    for (size_t k = np - 1; k-- > 0;) {
        ck_assert_msg(tok != NULL, "%s: no prev cursor back to page %zu", s->name, k + 1);
        page b;
        page_run(db, s, limit, tok, &b);
        ck_assert_msg(b.n == pages[k].n, "%s: back to page %zu: %zu rows, expected %zu", s->name, k + 1, b.n,
                      pages[k].n);
        for (size_t i = 0; i < b.n; i++)
            REQUIRE(b.ids[i] == pages[k].ids[i], "%s: back to page %zu: row %zu is %lld, expected %lld", s->name,
                    k + 1, i, (long long)b.ids[i], (long long)pages[k].ids[i]);
        ck_assert_msg(b.next != NULL, "%s: back at page %zu: no next cursor", s->name, k + 1);
        if (k == 0) ck_assert_msg(b.prev == NULL, "%s: back at the first page: a prev cursor", s->name);
        free(tok);
        tok = b.prev ? strdup(b.prev) : NULL;
        /* and forward again from there */
        if (k == np / 2) {
            page f;
            page_run(db, s, limit, b.next, &f);
            ck_assert_uint_eq(f.n, pages[k + 1].n);
            for (size_t i = 0; i < f.n; i++) ck_assert_int_eq(f.ids[i], pages[k + 1].ids[i]);
            page_free(&f);
        }
        page_free(&b);
    }
    free(tok);
    for (size_t k = 0; k < np; k++) page_free(&pages[k]);
}

START_TEST(cursor_walks)
{
    ts_db *db = open_db(NULL);
    cp_table(db);
    static const shape shapes[] = {
        { "key order", NULL, 0, NULL, NULL },
        { "id asc", "id", 0, NULL, NULL },
        { "id desc", "id", 1, NULL, NULL },
        { "g asc (duplicates, nulls)", "g", 0, NULL, NULL },
        { "g desc", "g", 1, NULL, NULL },
        { "g >= 5 AND n != 3 by g", "g", 0, m_g5_n3, w_g5_n3 },
        { "g >= 5 AND n != 3 by g desc", "g", 1, m_g5_n3, w_g5_n3 },
        { "n < 50 by g", "g", 0, m_n50, w_n50 },
        { "n < 50 by g desc", "g", 1, m_n50, w_n50 },
        { "n < 50 by key", NULL, 0, m_n50, w_n50 },
        { "id > 100 AND n >= 20 by id", "id", 0, m_id100, w_id100 },
        { "id > 100 AND n >= 20 by id desc", "id", 1, m_id100, w_id100 },
        { "g BETWEEN 3 AND 7 by g desc", "g", 1, m_g37, w_g37 },
        /* (no order with an index range condition: docs/queries.md gives no cursor) */
        { "g IS NULL OR n > 90 by key", NULL, 0, m_gnull_or, w_gnull_or },
    };
    static const int64_t sizes[] = { 37, 50, 23, 1, 10 };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        int expect = 0;
        for (int id = 1; id <= CP_ROWS; id++) expect += cp_here[id] && (!shapes[i].match || shapes[i].match(id));
        int64_t limit = sizes[i % 5];
        if (limit == 1 && expect > 200) limit = 7; /* keep it quick */
        while (expect <= 2 * limit) limit /= 2;
        walk(db, &shapes[i], limit);
    }
    ts_close(db);
}
END_TEST

START_TEST(cursor_properties)
{
    ts_db *db = open_db(NULL);
    cp_table(db);
    const shape by_g = { "g", "g", 0, NULL, NULL };
    const shape by_id = { "id", "id", 0, NULL, NULL };
    const shape by_g_cond = { "g cond", "g", 0, m_g5_n3, w_g5_n3 };
    page p1;
    page_run(db, &by_g, 20, NULL, &p1);
    ck_assert_ptr_nonnull(p1.next);
    ck_assert_ptr_null(p1.prev);

    /* the same shape with another limit, offset or select list takes it;
     * offset is ignored with a cursor */
    page a, b;
    page_run(db, &by_g, 5, p1.next, &a);
    ts_query *q = shape_query(db, &by_g, 5, p1.next);
    ts_offset(q, 7);
    const char *sel[] = { "id", "g" };
    ts_select(q, sel, 2);
    ts_result *r = NULL;
    ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
    ck_assert_uint_eq(ts_result_count(r), 5);
    for (size_t i = 0; i < 5; i++) ck_assert_int_eq(rid(ts_result_row(r, i)), a.ids[i]);
    ck_assert_uint_eq(json_object_size(ts_result_row(r, 0)), 2);
    ts_result_free(r);
    /* the same query object, its cursor changed */
    ts_cursor(q, NULL);
    ts_offset(q, 0);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
    for (size_t i = 0; i < 5; i++) ck_assert_int_eq(rid(ts_result_row(r, i)), p1.ids[i]);
    ts_result_free(r);
    ts_query_free(q);
    page_free(&a);

    /* malformed tokens, tokens of another shape */
    static const char *const bad[] = { "!!!", "AAAA", "%%%%", "A", "////", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        q = shape_query(db, &by_g, 5, bad[i]);
        r = NULL;
        ck_assert_msg(ts_query_exec(q, &r) == TS_ERR_VALIDATION, "token '%s' accepted", bad[i]);
        ck_assert_ptr_null(r);
        ts_query_free(q);
    }
    char *cut = strdup(p1.next);
    cut[strlen(cut) - 3] = '\0';
    q = shape_query(db, &by_g, 5, cut);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    free(cut);
    char *longer = NULL;
    ck_assert_int_ge(asprintf(&longer, "%sAAAA", p1.next), 0);
    q = shape_query(db, &by_g, 5, longer);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    free(longer);
    /* another order, another condition, another direction, another table */
    q = shape_query(db, &by_id, 5, p1.next);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = shape_query(db, &by_g_cond, 5, p1.next);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_cursor(ts_limit(ts_order_by(ts_query_new(db, "cp"), "g", 1), 5), p1.next);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_cursor(ts_limit(ts_order_by(ts_query_new(db, "cq"), "g", 0), 5), p1.next);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_cursor(ts_limit(ts_order_by(ts_where(ts_query_new(db, "cp"), "g", ">=", I(0)), "g", 0), 5), p1.next);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    /* a condition's value is part of the shape */
    page c1;
    page_run(db, &by_g_cond, 5, NULL, &c1);
    ck_assert_ptr_nonnull(c1.next);
    q = ts_cursor(ts_limit(ts_order_by(ts_where(ts_where(ts_query_new(db, "cp"), "g", ">=", I(6)), "n", "!=",
                                                 I(3)), "g", 0), 5), c1.next);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    page_free(&c1);

    /* an order no index gives: no cursor, and a token is refused */
    q = ts_limit(ts_order_by(ts_query_new(db, "cp"), "n", 0), 10);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
    ck_assert_uint_eq(ts_result_count(r), 10);
    ck_assert_ptr_null(ts_result_next_cursor(r));
    ck_assert_ptr_null(ts_result_prev_cursor(r));
    ts_result_free(r);
    ts_cursor(q, p1.next);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_limit(ts_order_by(ts_order_by(ts_query_new(db, "cp"), "g", 0), "n", 0), 10);
    ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
    ck_assert_ptr_null(ts_result_next_cursor(r));
    ts_result_free(r);
    ts_query_free(q);

    /* a page ending exactly at the last row has no next cursor */
    int cnt = 0;
    for (int id = 1; id <= CP_ROWS; id++) cnt += cp_here[id] && m_g5_n3(id);
    page_run(db, &by_g_cond, cnt, NULL, &b);
    ck_assert_uint_eq(b.n, (size_t)cnt);
    ck_assert_ptr_null(b.next);
    page_free(&b);
    page_run(db, &by_g_cond, cnt - 5, NULL, &b);
    ck_assert_ptr_nonnull(b.next);
    page c;
    page_run(db, &by_g_cond, 5, b.next, &c);
    ck_assert_uint_eq(c.n, 5);
    ck_assert_ptr_null(c.next);
    ck_assert_ptr_nonnull(c.prev);
    page_free(&c);
    page_free(&b);

    /* rows written between pages: the walk continues from its position */
    page q1, q2;
    page_run(db, &by_id, 10, NULL, &q1);
    ck_assert_int_eq(ts_delete(db, "cp", I(q1.ids[9])), TS_OK); /* the row the token points at */
    page_run(db, &by_id, 10, q1.next, &q2);
    ck_assert_int_gt(q2.ids[0], q1.ids[9]);
    for (int id = (int)q1.ids[9] + 1; id < q2.ids[0]; id++) ck_assert_int_eq(cp_here[id], 0);
    page_free(&q1);
    page_free(&q2);
    page_free(&p1);
    ts_close(db);
}
END_TEST

/* Keys of both kinds (integers before strings), both directions. */
START_TEST(cursor_mixed_keys)
{
    ts_db *db = open_db(NULL);
    create(db, "{'name': 'mk', 'primaryKeyConfig': {'type': 'none'}, 'fields': [{'name': 'v', 'type': 'integer'}]}");
    enum { NK = 60 };
    char want[NK][16];
    for (int i = 0; i < NK; i++) {
        json_t *rec = json_pack("{s:i, s:i}", "id", i * 3, "v", i);
        if (i >= NK / 2) {
            char k[16];
            snprintf(k, sizeof k, "k%03d", i);
            json_object_set_new(rec, "id", json_string(k));
        }
        REQUIRE(ts_insert(db, "mk", rec, NULL) == TS_OK, "insert %d", i);
        json_decref(rec);
        if (i < NK / 2) snprintf(want[i], sizeof want[i], "%d", i * 3);
        else snprintf(want[i], sizeof want[i], "k%03d", i);
    }
    for (int desc = 0; desc < 2; desc++) {
        char *tok = NULL;
        int pos = 0, pages = 0;
        do {
            ts_query *q = ts_limit(ts_order_by(ts_query_new(db, "mk"), "id", desc), 7);
            if (tok) ts_cursor(q, tok);
            ts_result *r = NULL;
            ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
            for (size_t i = 0; i < ts_result_count(r); i++, pos++) {
                const json_t *id = json_object_get(ts_result_row(r, i), "id");
                char got[32];
                if (json_is_integer(id)) snprintf(got, sizeof got, "%lld", (long long)json_integer_value(id));
                else snprintf(got, sizeof got, "%s", json_string_value(id));
                ck_assert_int_lt(pos, NK);
                const char *w = want[desc ? NK - 1 - pos : pos];
                ck_assert_msg(strcmp(got, w) == 0, "desc %d: row %d is %s, expected %s", desc, pos, got, w);
            }
            free(tok);
            tok = ts_result_next_cursor(r) ? strdup(ts_result_next_cursor(r)) : NULL;
            ts_result_free(r);
            ts_query_free(q);
            pages++;
        } while (tok);
        ck_assert_int_eq(pos, NK);
        ck_assert_int_eq(pages, (NK + 6) / 7);
    }
    ts_close(db);
}
END_TEST

/* A deep page costs what the first one does (a seek, not a skip). */
START_TEST(cursor_cost)
{
    ts_db *db = open_db(NULL);
    cp_table(db);
    const shape shapes[] = { { "key", NULL, 0, NULL, NULL }, { "g", "g", 0, NULL, NULL },
                             { "g desc", "g", 1, NULL, NULL } };
    for (size_t s = 0; s < 3; s++) {
        char *tok = NULL;
        json_int_t first_pages = 0;
        for (int k = 0; k < 50; k++) {
            ts_query *q = shape_query(db, &shapes[s], 10, tok);
            json_t *e = NULL;
            ck_assert_int_eq(ts_query_explain(q, &e), TS_OK);
            json_int_t ex = json_integer_value(json_object_get(e, "rowsExamined"));
            json_int_t pg = json_integer_value(json_object_get(e, "pagesTouched"));
            if (k == 0) first_pages = pg;
            REQUIRE(ex <= 11, "%s: page %d examined %lld rows", shapes[s].name, k + 1, (long long)ex);
            REQUIRE(pg <= first_pages + 6, "%s: page %d touched %lld pages, the first %lld", shapes[s].name, k + 1,
                    (long long)pg, (long long)first_pages);
            json_decref(e);
            ts_result *r = NULL;
            ck_assert_int_eq(ts_query_exec(q, &r), TS_OK);
            free(tok);
            tok = strdup(ts_result_next_cursor(r));
            ts_result_free(r);
            ts_query_free(q);
        }
        free(tok);
    }
    ts_close(db);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("query_pages");
    TCase *tc = tcase_create("pages");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, plans);
    tcase_add_test(tc, cursor_walks);
    tcase_add_test(tc, cursor_properties);
    tcase_add_test(tc, cursor_mixed_keys);
    tcase_add_test(tc, cursor_cost);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
