/* The key-value store, spaces and explicit transactions, through the
 * public header only. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <tostore/tostore.h>
#include "tsupport.h"

static char *dir;

static ts_db *open_db(const char *extra)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"%s%s}", dir, extra ? ", " : "", extra ? extra : "");
    ts_db *db = NULL;
    int rc = ts_open_json(cfg, &db);
    ck_assert_msg(rc == TS_OK, "open: %s", ts_errmsg(NULL));
    return db;
}

static void setup(void) { dir = tst_tmpdir("kv"); }
static void teardown(void) { tst_rmrf(dir); free(dir); }

static int64_t get_int(ts_db *db, const char *key, int global)
{
    json_t *v = NULL;
    int rc = ts_kv_get(db, key, global, &v);
    ck_assert_msg(rc == TS_OK, "get %s: %d %s", key, rc, ts_errmsg(db));
    ck_assert(json_is_integer(v));
    int64_t x = json_integer_value(v);
    json_decref(v);
    return x;
}

START_TEST(kv_basic)
{
    ts_db *db = open_db(NULL);
    json_t *v = json_pack("{s:s, s:[i,i]}", "name", "ada", "xs", 1, 2), *out = NULL;
    ck_assert_int_eq(ts_kv_set(db, "user:1", v, 0), TS_OK);
    ck_assert_int_eq(ts_kv_get(db, "user:1", 0, &out), TS_OK);
    ck_assert(json_equal(v, out));
    json_decref(out);
    /* any JSON value, including null and scalars */
    json_t *n = json_null(), *s = json_string("x");
    ck_assert_int_eq(ts_kv_set(db, "n", n, 0), TS_OK);
    ck_assert_int_eq(ts_kv_set(db, "s", s, 0), TS_OK);
    ck_assert_int_eq(ts_kv_get(db, "n", 0, &out), TS_OK);
    ck_assert(json_is_null(out));
    json_decref(out);
    /* overwrite */
    ck_assert_int_eq(ts_kv_set(db, "s", v, 0), TS_OK);
    ck_assert_int_eq(ts_kv_get(db, "s", 0, &out), TS_OK);
    ck_assert(json_equal(v, out));
    json_decref(out);
    /* absent, remove */
    ck_assert_int_eq(ts_kv_get(db, "nope", 0, &out), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(ts_kv_remove(db, "user:1", 0), TS_OK);
    ck_assert_int_eq(ts_kv_remove(db, "user:1", 0), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_kv_get(db, "user:1", 0, &out), TS_ERR_NOT_FOUND);
    /* bad arguments */
    ck_assert_int_eq(ts_kv_set(db, NULL, v, 0), TS_ERR_INVALID);
    ck_assert_int_eq(ts_kv_set(db, "k", NULL, 0), TS_ERR_INVALID);
    ck_assert_int_eq(ts_kv_get(NULL, "k", 0, &out), TS_ERR_INVALID);
    char big[1100];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    ck_assert_int_eq(ts_kv_set(db, big, v, 0), TS_ERR_VALIDATION);
    json_decref(v);
    json_decref(n);
    json_decref(s);
    /* survives reopen */
    json_t *five = json_integer(5);
    ck_assert_int_eq(ts_kv_set(db, "keep", five, 0), TS_OK);
    json_decref(five);
    ts_close(db);
    db = open_db(NULL);
    ck_assert_int_eq(get_int(db, "keep", 0), 5);
    ts_close(db);
}
END_TEST

START_TEST(kv_increment_keys_count)
{
    ts_db *db = open_db(NULL);
    int64_t nv = 0;
    ck_assert_int_eq(ts_kv_increment(db, "c", 5, 0, &nv), TS_OK);
    ck_assert_int_eq(nv, 5);
    ck_assert_int_eq(ts_kv_increment(db, "c", -7, 0, &nv), TS_OK);
    ck_assert_int_eq(nv, -2);
    json_t *s = json_string("text");
    ck_assert_int_eq(ts_kv_set(db, "t", s, 0), TS_OK);
    ck_assert_int_eq(ts_kv_increment(db, "t", 1, 0, &nv), TS_ERR_VALIDATION);
    json_t *big = json_integer(INT64_MAX);
    ck_assert_int_eq(ts_kv_set(db, "m", big, 0), TS_OK);
    ck_assert_int_eq(ts_kv_increment(db, "m", 1, 0, &nv), TS_ERR_RANGE);
    ck_assert_int_eq(get_int(db, "m", 0), INT64_MAX);
    const char *names[] = { "a:1", "a:2", "a:10", "b:1", "a" };
    for (int i = 0; i < 5; i++) ck_assert_int_eq(ts_kv_set(db, names[i], s, 0), TS_OK);
    json_t *keys = NULL;
    ck_assert_int_eq(ts_kv_keys(db, "a:", 0, &keys), TS_OK);
    ck_assert_uint_eq(json_array_size(keys), 3);
    ck_assert_str_eq(json_string_value(json_array_get(keys, 0)), "a:1");
    ck_assert_str_eq(json_string_value(json_array_get(keys, 1)), "a:10");
    ck_assert_str_eq(json_string_value(json_array_get(keys, 2)), "a:2");
    json_decref(keys);
    int64_t count = 0;
    ck_assert_int_eq(ts_kv_count(db, 0, &count), TS_OK);
    ck_assert_int_eq(count, 8); /* c t m + 5 */
    ck_assert_int_eq(ts_kv_keys(db, NULL, 0, &keys), TS_OK);
    ck_assert_uint_eq(json_array_size(keys), 8);
    json_decref(keys);
    json_decref(s);
    json_decref(big);
    ts_close(db);
}
END_TEST

START_TEST(kv_ttl)
{
    ts_db *db = open_db(NULL);
    json_t *v = json_integer(1);
    ck_assert_int_eq(ts_kv_set_ttl(db, "soon", v, 150, 0), TS_OK);
    ck_assert_int_eq(ts_kv_set_ttl(db, "later", v, 60000, 0), TS_OK);
    ck_assert_int_eq(ts_kv_set_ttl(db, "bad", v, 0, 0), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_kv_set_ttl(db, "bad", v, -5, 0), TS_ERR_VALIDATION);
    ck_assert_int_eq(get_int(db, "soon", 0), 1);
    int64_t count = 0;
    ck_assert_int_eq(ts_kv_count(db, 0, &count), TS_OK);
    ck_assert_int_eq(count, 2);
    usleep(300 * 1000);
    json_t *out = NULL;
    ck_assert_int_eq(ts_kv_get(db, "soon", 0, &out), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_kv_count(db, 0, &count), TS_OK);
    ck_assert_int_eq(count, 1);
    /* an increment keeps the TTL of a live key; an expired key starts over */
    int64_t nv;
    ck_assert_int_eq(ts_kv_increment(db, "later", 2, 0, &nv), TS_OK);
    ck_assert_int_eq(nv, 3);
    ck_assert_int_eq(ts_kv_increment(db, "soon", 2, 0, &nv), TS_OK);
    ck_assert_int_eq(nv, 2);
    /* a write purged the expired entry: it stays gone after reopen */
    ts_close(db);
    db = open_db(NULL);
    ck_assert_int_eq(get_int(db, "soon", 0), 2);
    ck_assert_int_eq(get_int(db, "later", 0), 3);
    json_decref(v);
    ts_close(db);
}
END_TEST

START_TEST(spaces_isolate)
{
    ts_db *db = open_db(NULL);
    ck_assert_str_eq(ts_current_space(db), "default");
    json_t *one = json_integer(1), *two = json_integer(2), *g = json_integer(99), *out = NULL;
    ck_assert_int_eq(ts_kv_set(db, "k", one, 0), TS_OK);
    ck_assert_int_eq(ts_kv_set(db, "shared", g, 1), TS_OK);
    ck_assert_int_eq(ts_switch_space(db, "alice", 0), TS_OK);
    ck_assert_str_eq(ts_current_space(db), "alice");
    ck_assert_int_eq(ts_kv_get(db, "k", 0, &out), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_kv_set(db, "k", two, 0), TS_OK);
    ck_assert_int_eq(get_int(db, "k", 0), 2);
    ck_assert_int_eq(get_int(db, "shared", 1), 99);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(get_int(db, "k", 0), 1);
    ck_assert_int_eq(ts_switch_space(db, "bad name!", 0), TS_ERR_VALIDATION);
    json_t *spaces = NULL;
    ck_assert_int_eq(ts_list_spaces(db, &spaces), TS_OK);
    ck_assert_uint_eq(json_array_size(spaces), 2);
    json_decref(spaces);
    /* delete: not default, not current; the space's keys go with it */
    ck_assert_int_eq(ts_delete_space(db, "default"), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_delete_space(db, "nobody"), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_switch_space(db, "alice", 0), TS_OK);
    ck_assert_int_eq(ts_delete_space(db, "alice"), TS_ERR_VALIDATION);
    ck_assert_int_eq(ts_switch_space(db, "default", 0), TS_OK);
    ck_assert_int_eq(ts_delete_space(db, "alice"), TS_OK);
    ck_assert_int_eq(ts_switch_space(db, "alice", 0), TS_OK);
    ck_assert_int_eq(ts_kv_get(db, "k", 0, &out), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(get_int(db, "shared", 1), 99);
    json_decref(one);
    json_decref(two);
    json_decref(g);
    ts_close(db);
}
END_TEST

START_TEST(spaces_keep_active)
{
    ts_db *db = open_db(NULL);
    ck_assert_int_eq(ts_switch_space(db, "bob", 1), TS_OK);
    ts_close(db);
    db = open_db(NULL);
    ck_assert_str_eq(ts_current_space(db), "bob");
    ts_close(db);
    db = open_db("\"applyActiveSpaceOnDefault\": false");
    ck_assert_str_eq(ts_current_space(db), "default");
    ts_close(db);
    db = open_db(NULL);
    ck_assert_str_eq(ts_current_space(db), "bob");
    ck_assert_int_eq(ts_close_ex(db, 0), TS_OK); /* log out */
    db = open_db(NULL);
    ck_assert_str_eq(ts_current_space(db), "default");
    ts_close(db);
}
END_TEST

static int add_two(ts_db *db, void *ctx)
{
    int64_t nv;
    int rc = ts_kv_increment(db, "n", 1, 0, &nv);
    if (!rc) rc = ts_kv_increment(db, "n", 1, 0, &nv);
    return rc ? rc : *(int *)ctx;
}

START_TEST(transactions)
{
    ts_db *db = open_db(NULL);
    json_t *v = json_integer(7), *out = NULL;
    /* rollback discards, reads inside see own writes */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_begin(db), TS_ERR_DB);
    ck_assert_int_eq(ts_kv_set(db, "a", v, 0), TS_OK);
    ck_assert_int_eq(get_int(db, "a", 0), 7);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    ck_assert_int_eq(ts_kv_get(db, "a", 0, &out), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(ts_commit(db), TS_ERR_DB);
    /* commit keeps */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ck_assert_int_eq(ts_kv_set(db, "a", v, 0), TS_OK);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(get_int(db, "a", 0), 7);
    /* read-only snapshot refuses writes */
    ck_assert_int_eq(ts_begin_read(db), TS_OK);
    ck_assert_int_eq(ts_kv_set(db, "b", v, 0), TS_ERR_DB);
    ck_assert_int_eq(get_int(db, "a", 0), 7);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    /* ts_transaction: commit on >= 0, rollback on < 0 */
    int ok = 3, bad = -6;
    ck_assert_int_eq(ts_transaction(db, add_two, &ok), 3);
    ck_assert_int_eq(get_int(db, "n", 0), 2);
    ck_assert_int_eq(ts_transaction(db, add_two, &bad), -6);
    ck_assert_int_eq(get_int(db, "n", 0), 2);
    json_decref(v);
    ts_close(db);
}
END_TEST

typedef struct inc_arg { ts_db *db; int n; } inc_arg;

static void *incr(void *p)
{
    inc_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        int64_t nv;
        if (ts_kv_increment(a->db, "ctr", 1, 1, &nv) != TS_OK) return (void *)1;
    }
    return NULL;
}

START_TEST(concurrent_increments)
{
    ts_db *db = open_db("\"durability\": \"normal\"");
    enum { T = 4, N = 200 };
    pthread_t th[T];
    inc_arg a = { db, N };
    for (int i = 0; i < T; i++) pthread_create(&th[i], NULL, incr, &a);
    int failed = 0;
    for (int i = 0; i < T; i++) {
        void *r;
        pthread_join(th[i], &r);
        failed += r != NULL;
    }
    ck_assert_int_eq(failed, 0);
    ck_assert_int_eq(get_int(db, "ctr", 1), T * N);
    ts_close(db);
}
END_TEST


/* A reader thread holding a snapshot until told to end it. */
typedef struct holder {
    ts_db *db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, stop;
    json_t *seen;   /* "k0" as the snapshot has it */
} holder;

static void *hold_snapshot(void *arg)
{
    holder *h = arg;
    ck_assert_int_eq(ts_begin_read(h->db), TS_OK);
    pthread_mutex_lock(&h->mu);
    h->started = 1;
    pthread_cond_broadcast(&h->cv);
    while (!h->stop) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    ck_assert_int_eq(ts_kv_get(h->db, "k0", 0, &h->seen), TS_OK);
    ck_assert_int_eq(ts_rollback(h->db), TS_OK);
    return NULL;
}

/* maxLogBytes through the public API: with another thread's read snapshot
 * open, writes go on until the log reaches the cap, then fail with
 * TS_ERR_RESOURCE naming it; the snapshot still reads its value; once it
 * ends, writes succeed again. */
START_TEST(log_cap_with_open_snapshot)
{
    ts_db *db = open_db("\"maxLogBytes\": 1048576, \"busyTimeoutMs\": 50");
    json_t *first = json_string("before the snapshot");
    ck_assert_int_eq(ts_kv_set(db, "k0", first, 0), TS_OK);
    holder h = { db, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hold_snapshot, &h), 0);
    pthread_mutex_lock(&h.mu);
    while (!h.started) pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    char big[3000];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = 0;
    json_t *v = json_string(big);
    int rc = TS_OK, n = 0;
    for (; n < 5000 && (rc = ts_kv_set(db, n % 2 ? "k1" : "k0", v, 0)) == TS_OK; n++) {}
    ck_assert_msg(rc == TS_ERR_RESOURCE, "after %d writes: %d %s", n, rc, ts_errmsg(db));
    ck_assert_msg(strstr(ts_errmsg(db), "maxLogBytes"), "message: %s", ts_errmsg(db));
    ck_assert_int_gt(n, 10);
    pthread_mutex_lock(&h.mu);
    h.stop = 1;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    pthread_join(th, NULL);
    ck_assert(json_equal(h.seen, first));
    json_decref(h.seen);
    ck_assert_int_eq(ts_kv_set(db, "k0", first, 0), TS_OK);
    json_t *got = NULL;
    ck_assert_int_eq(ts_kv_get(db, "k1", 0, &got), TS_OK);
    ck_assert(json_equal(got, v));
    json_decref(got);
    json_decref(v);
    json_decref(first);
    ck_assert_int_eq(ts_close(db), TS_OK);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("kv");
    TCase *tc = tcase_create("kv");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, kv_basic);
    tcase_add_test(tc, kv_increment_keys_count);
    tcase_add_test(tc, kv_ttl);
    tcase_add_test(tc, spaces_isolate);
    tcase_add_test(tc, spaces_keep_active);
    tcase_add_test(tc, transactions);
    tcase_add_test(tc, concurrent_increments);
    tcase_add_test(tc, log_cap_with_open_snapshot);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
