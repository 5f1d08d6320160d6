/* ts_stats' table figures, and atomic expression updates from several
 * threads at once, through the public header only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/tostore.h>
#include "tsupport.h"

static char *dir;

static ts_db *open_db(void)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"durability\": \"normal\"}", dir);
    ts_db *db = NULL;
    ck_assert_msg(ts_open_json(cfg, &db) == TS_OK, "open: %s", ts_errmsg(NULL));
    return db;
}

static json_t *J(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    ck_assert_msg(j != NULL, "bad JSON in the test: %s", e.text);
    return j;
}

static void setup(void) { dir = tst_tmpdir("statsexpr"); }
static void teardown(void) { tst_rmrf(dir); free(dir); }

static int64_t stat_of(ts_db *db, const char *key)
{
    json_t *s = NULL;
    ck_assert_int_eq(ts_stats(db, &s), TS_OK);
    ck_assert_msg(json_is_integer(json_object_get(s, key)), "stats lacks %s", key);
    int64_t v = json_integer_value(json_object_get(s, key));
    json_decref(s);
    return v;
}

START_TEST(stats_tables_rows)
{
    ts_db *db = open_db();
    ck_assert_int_eq(stat_of(db, "tables"), 0);
    ck_assert_int_eq(stat_of(db, "rows"), 0);
    json_t *s = J("[{\"name\": \"a\", \"fields\": [{\"name\": \"v\", \"type\": \"integer\"}]},"
                  " {\"name\": \"g\", \"isGlobal\": true, \"fields\": []}]");
    ck_assert_int_eq(ts_create_tables(db, s), TS_OK);
    json_decref(s);
    json_t *r = J("{\"v\": 1}"), *e = J("{}");
    for (int i = 0; i < 5; i++) ck_assert_int_eq(ts_insert(db, "a", r, NULL), TS_OK);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(ts_insert(db, "g", e, NULL), TS_OK);
    ck_assert_int_eq(stat_of(db, "tables"), 2);
    ck_assert_int_eq(stat_of(db, "rows"), 7);
    /* another space sees the global rows only */
    ck_assert_int_eq(ts_switch_space(db, "other", 0), TS_OK);
    ck_assert_int_eq(stat_of(db, "rows"), 2);
    ck_assert_int_eq(ts_insert(db, "a", r, NULL), TS_OK);
    ck_assert_int_eq(stat_of(db, "rows"), 3);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    /* a failed write and a rolled-back one change nothing */
    json_t *bad = J("{\"v\": \"x\"}");
    ck_assert_int_eq(ts_insert(db, "a", bad, NULL), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_insert(db, "a", r, NULL), TS_OK);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_int_eq(stat_of(db, "rows"), 7);
    ck_assert_int_eq(ts_drop_table(db, "g"), TS_OK);
    ck_assert_int_eq(stat_of(db, "tables"), 1);
    ck_assert_int_eq(stat_of(db, "rows"), 5);
    json_decref(bad);
    json_decref(r);
    json_decref(e);
    ts_close(db);
}
END_TEST

/* cacheMemory follows the pages cached: it grows with the rows written,
 * stays within a small cache's budget (plus one transaction's pages), and
 * cacheMemoryPeak never falls below it. */
START_TEST(stats_cache_memory)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"durability\": \"normal\", \"cacheBytes\": 1048576}",
             dir);
    ts_db *db = NULL;
    ck_assert_msg(ts_open_json(cfg, &db) == TS_OK, "open: %s", ts_errmsg(NULL));
    int64_t m0 = stat_of(db, "cacheMemory");
    json_t *s = J("{\"name\": \"a\", \"fields\": [{\"name\": \"t\", \"type\": \"text\"}]}");
    ck_assert_int_eq(ts_create_table(db, s), TS_OK);
    json_decref(s);
    char big[2001];
    memset(big, 'x', 2000);
    big[2000] = 0;
    json_t *r = json_pack("{s:s}", "t", big);
    for (int b = 0; b < 20; b++) {
        ck_assert_int_eq(ts_begin(db), TS_OK);
        for (int i = 0; i < 100; i++) ck_assert_int_eq(ts_insert(db, "a", r, NULL), TS_OK);
        ck_assert_int_eq(ts_commit(db), TS_OK);
        int64_t now = stat_of(db, "cacheMemory"), peak = stat_of(db, "cacheMemoryPeak");
        ck_assert_int_ge(peak, now);
        /* 1 MiB of cached pages plus what one 100-row transaction changed */
        ck_assert_int_le(now, 1048576 + 2 * 100 * 4160 + 64 * 4160);
    }
    int64_t pages = stat_of(db, "pages");
    ck_assert_int_gt(pages, 400); /* 4 MB of rows: more than the cache */
    ck_assert_int_gt(stat_of(db, "cacheMemory"), m0 + 512 * 1024);
    json_decref(r);
    ts_close(db);
}
END_TEST

#define THREADS 4
#define ROUNDS 150

typedef struct arg { ts_db *db; int by_query; int failures; } arg;

static void *bump(void *p)
{
    arg *a = p;
    for (int i = 0; i < ROUNDS; i++) {
        json_t *ch = json_object();
        json_object_set_new(ch, "fans", ts_expr_add(ts_expr_field("fans"), ts_expr_value(json_integer(2))));
        json_object_set_new(ch, "half", ts_expr_div(ts_expr_field("fans"), ts_expr_value(json_integer(4))));
        int rc;
        if (a->by_query) {
            ts_query *q = ts_query_new(a->db, "c");
            json_t *one = json_integer(1);
            ts_where(q, "id", "=", one);
            int64_t n = 0;
            rc = ts_query_update(q, ch, &n);
            if (!rc && n != 1) rc = -1;
            json_decref(one);
            ts_query_free(q);
        } else {
            json_t *pk = json_integer(1);
            rc = ts_update(a->db, "c", pk, ch);
            json_decref(pk);
        }
        if (rc) a->failures++;
        json_decref(ch);
    }
    return NULL;
}

START_TEST(expressions_concurrent)
{
    ts_db *db = open_db();
    json_t *s = J("{\"name\": \"c\", \"fields\": [{\"name\": \"fans\", \"type\": \"integer\"},"
                  " {\"name\": \"half\", \"type\": \"integer\"}]}");
    ck_assert_int_eq(ts_create_table(db, s), TS_OK);
    json_decref(s);
    json_t *r = J("{\"fans\": 0, \"half\": 0}");
    ck_assert_int_eq(ts_insert(db, "c", r, NULL), TS_OK);
    json_decref(r);
    pthread_t th[THREADS];
    arg a[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (arg){ db, i % 2, 0 };
        ck_assert_int_eq(pthread_create(&th[i], NULL, bump, &a[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        failures += a[i].failures;
    }
    ck_assert_int_eq(failures, 0);
    json_t *row = NULL, *pk = json_integer(1);
    ck_assert_int_eq(ts_get(db, "c", pk, &row), TS_OK);
    /* no increment lost; the last half saw the value before the last +2 */
    int64_t fans = json_integer_value(json_object_get(row, "fans"));
    ck_assert_int_eq(fans, 2 * THREADS * ROUNDS);
    /* (fans - 2) / 4, rounded half away from zero */
    int64_t before = fans - 2, want = (before * 10 / 4 + 5) / 10;
    ck_assert_int_eq(json_integer_value(json_object_get(row, "half")), want);
    json_decref(row);
    json_decref(pk);
    ts_close(db);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("stats_expr");
    TCase *tc = tcase_create("stats_expr");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stats_tables_rows);
    tcase_add_test(tc, expressions_concurrent);
    tcase_add_test(tc, stats_cache_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
