/*
 * Live queries through the public header only (issue 6): ts_query_watch
 * calls back with the initial result, after each commit that changes the
 * query's table (coalesced), never with uncommitted data (not after a
 * rolled-back transaction), never after ts_unwatch; the callback may read
 * the database and unwatch itself; the query may be freed at once.
 *
 * JSON in the tests is written with single quotes (J() turns them into
 * double quotes).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <tostore/tostore.h>
#include "tsupport.h"

#define TT_NAME "query_watch"
#define TT_DEFAULTS "\"durability\": \"normal\""
#include "tables_support.h"

/* What the callback saw. */
typedef struct seen {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    ts_db   *db;
    int      calls;
    size_t   rows;          /* rows of the last result */
    json_int_t sum;         /* sum of v over the last result */
    size_t   max_rows;      /* the most rows any result had */
    int      saw_uncommitted;
    int64_t  table_rows;    /* ts_count_rows from inside the callback */
    int      read_rc;
    int      in_cb, overlap;
    ts_watch *self;         /* unwatch itself at call unwatch_at */
    int      unwatch_at, unwatch_rc;
    pthread_t thread;
    int      same_thread;
} seen;

static void seen_init(seen *s, ts_db *db)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->db = db;
    s->read_rc = -1;
    s->same_thread = 1;
}

static void seen_done(seen *s)
{
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
}

static void on_result(const ts_result *r, void *ctx)
{
    seen *s = ctx;
    pthread_mutex_lock(&s->lock);
    if (s->in_cb) s->overlap = 1;
    s->in_cb = 1;
    ts_watch *self = s->calls + 1 == s->unwatch_at ? s->self : NULL;
    pthread_mutex_unlock(&s->lock);
    /* read functions of the db work from the callback */
    int64_t n = -1;
    int rc = ts_count_rows(s->db, "w", &n);
    size_t rows = ts_result_count(r);
    json_int_t sum = 0;
    int unc = 0;
    for (size_t i = 0; i < rows; i++) {
        json_int_t v = json_integer_value(json_object_get(ts_result_row(r, i), "v"));
        sum += v;
        unc |= v >= 1000; /* the tests never commit such values */
    }
    int urc = self ? ts_unwatch(self) : 0;
    usleep(2000);
    pthread_mutex_lock(&s->lock);
    if (s->calls == 0) s->thread = pthread_self();
    else if (!pthread_equal(s->thread, pthread_self())) s->same_thread = 0;
    s->calls++;
    s->rows = rows;
    s->sum = sum;
    if (rows > s->max_rows) s->max_rows = rows;
    s->saw_uncommitted |= unc;
    s->table_rows = n;
    s->read_rc = rc;
    if (self) s->unwatch_rc = urc;
    s->in_cb = 0;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Wait (up to 10 s) until the callback ran `calls` times and its last
 * result had `rows` rows (rows < 0: any). */
static int wait_for(seen *s, int calls, long rows)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&s->lock);
    while (!(s->calls >= calls && (rows < 0 || (long)s->rows == rows)))
        if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) != 0) break;
    int ok = s->calls >= calls && (rows < 0 || (long)s->rows == rows);
    pthread_mutex_unlock(&s->lock);
    return ok;
}

/* Wait (up to 10 s) until the last result has `rows` rows summing to `sum`. */
static int wait_sum(seen *s, long rows, json_int_t sum)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&s->lock);
    while (!(s->calls && (long)s->rows == rows && s->sum == sum))
        if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) != 0) break;
    int ok = s->calls && (long)s->rows == rows && s->sum == sum;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static int calls_of(seen *s)
{
    pthread_mutex_lock(&s->lock);
    int c = s->calls;
    pthread_mutex_unlock(&s->lock);
    return c;
}

static void table_w(ts_db *db)
{
    create(db, "{'name': 'w', 'fields': [{'name': 'v', 'type': 'integer', 'createIndex': true}]}");
    create(db, "{'name': 'other', 'fields': [{'name': 'x', 'type': 'integer'}]}");
    ins(db, "w", "{'v': 1}");
    ins(db, "w", "{'v': 10}");
    ins(db, "w", "{'v': 20}");
}

START_TEST(watch_lifecycle)
{
    ts_db *db = open_db(NULL);
    table_w(db);
    seen s;
    seen_init(&s, db);
    ts_query *q = ts_where(ts_query_new(db, "w"), "v", ">=", I(10));
    ts_watch *w = NULL;
    ck_assert_int_eq(ts_query_watch(q, on_result, &s, &w), TS_OK);
    ck_assert_ptr_nonnull(w);
    ts_query_free(q); /* the watch keeps its own copy */

    /* the initial result */
    ck_assert_msg(wait_for(&s, 1, 2), "no initial result (calls %d, rows %zu)", s.calls, s.rows);
    ck_assert_int_eq(s.sum, 30);
    ck_assert_int_eq(s.read_rc, TS_OK);
    ck_assert_int_eq(s.table_rows, 3);

    /* a commit that changes the table */
    ins(db, "w", "{'v': 30}");
    ck_assert_msg(wait_for(&s, 2, 3), "no call after an insert (calls %d, rows %zu)", s.calls, s.rows);
    ck_assert_int_eq(s.sum, 60);
    ck_assert_int_eq(s.table_rows, 4);
    ck_assert_int_eq(ts_update(db, "w", I(1), J("{'v': 11}")), TS_OK);
    ck_assert_msg(wait_for(&s, 3, 4), "no call after an update");
    ck_assert_int_eq(s.sum, 71);
    ck_assert_int_eq(ts_delete(db, "w", I(4)), TS_OK);
    ck_assert_msg(wait_for(&s, 4, 3), "no call after a delete");
    ck_assert_int_eq(s.sum, 41);
    /* several writes in one transaction: the committed result */
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins(db, "w", "{'v': 1000}");  /* a value seen only uncommitted (>= 1000) */
    usleep(100 * 1000);
    ck_assert_int_eq(ts_update(db, "w", I(5), J("{'v': 40}")), TS_OK);
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_msg(wait_for(&s, 5, 4), "no call after a transaction");
    ck_assert_int_eq(s.sum, 11 + 10 + 20 + 40);

    /* a rolled-back transaction: no call, never its data */
    ck_assert_int_eq(ts_update(db, "w", I(5), J("{'v': 41}")), TS_OK);
    ck_assert_msg(wait_for(&s, 6, 4), "no call after an update");
    int before = calls_of(&s);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    ins(db, "w", "{'v': 2000}");
    ck_assert_int_eq(ts_update(db, "w", I(2), J("{'v': 3000}")), TS_OK);
    usleep(150 * 1000);
    ck_assert_int_eq(ts_rollback(db), TS_OK);
    usleep(300 * 1000);
    ck_assert_int_eq(calls_of(&s), before);
    /* a failed statement (rolled back by itself) changes nothing either */
    ck_assert_int_eq(ts_insert(db, "w", J("{'v': 'bad'}"), NULL), TS_ERR_VALIDATION);
    usleep(200 * 1000);
    ck_assert_int_eq(calls_of(&s), before);

    /* a burst of commits is coalesced but ends with the last state */
    for (int i = 0; i < 30; i++) ins(db, "w", "{'v': 50}");
    ck_assert_msg(wait_for(&s, before + 1, 34), "no final result after a burst (calls %d, rows %zu)", s.calls,
                  s.rows);
    ck_assert_int_le(calls_of(&s), before + 30);
    pthread_mutex_lock(&s.lock);
    ck_assert_int_eq(s.saw_uncommitted, 0);
    ck_assert_int_eq(s.overlap, 0);
    ck_assert_int_eq(s.same_thread, 1);
    ck_assert_int_eq(s.read_rc, TS_OK);
    ck_assert_uint_le(s.max_rows, 34);
    pthread_mutex_unlock(&s.lock);
    ck_assert(!pthread_equal(s.thread, pthread_self()));

    /* after ts_unwatch: never again */
    ck_assert_int_eq(ts_unwatch(w), TS_OK);
    int after = calls_of(&s);
    ins(db, "w", "{'v': 60}");
    ck_assert_int_eq(ts_delete(db, "w", I(2)), TS_OK);
    usleep(300 * 1000);
    ck_assert_int_eq(calls_of(&s), after);
    ck_assert_int_eq(ts_unwatch(NULL), TS_OK);
    ts_close(db);
    ck_assert_int_eq(calls_of(&s), after);
    seen_done(&s);
}
END_TEST

START_TEST(watch_several)
{
    ts_db *db = open_db(NULL);
    table_w(db);
    seen a, b, c;
    seen_init(&a, db);
    seen_init(&b, db);
    seen_init(&c, db);
    ts_watch *wa = NULL, *wb = NULL, *wc = NULL;
    ts_query *q = ts_where(ts_query_new(db, "w"), "v", "<", I(15));
    ck_assert_int_eq(ts_query_watch(q, on_result, &a, &wa), TS_OK);
    ts_query_free(q);
    q = ts_order_by(ts_limit(ts_query_new(db, "w"), 2), "v", 1);
    ck_assert_int_eq(ts_query_watch(q, on_result, &b, &wb), TS_OK);
    /* changing or freeing the query afterwards does not change the watch */
    ts_where(q, "v", "=", I(-1));
    ts_query_free(q);
    /* a join: commits to the joined table count */
    q = ts_join(ts_query_new(db, "other"), "w", "other.x", "=", "w.v");
    ck_assert_int_eq(ts_query_watch(q, on_result, &c, &wc), TS_OK);
    ts_query_free(q);
    ck_assert(wait_for(&a, 1, 2));
    ck_assert(wait_for(&b, 1, 2));
    ck_assert_int_eq(b.sum, 30);
    ck_assert(wait_for(&c, 1, 0));
    ins(db, "w", "{'v': 5}");
    ck_assert(wait_for(&a, 2, 3));
    ck_assert(wait_for(&b, 2, 2));
    ck_assert_int_eq(b.sum, 30); /* a commit to its table: called again, the same rows */
    ins(db, "other", "{'x': 5}");
    ck_assert(wait_for(&c, 2, 1));
    ins(db, "w", "{'v': 5}");
    ck_assert(wait_for(&c, 3, 2));
    ins(db, "w", "{'v': 25}");
    ck_assert(wait_sum(&b, 2, 45));
    ck_assert_int_eq(ts_unwatch(wb), TS_OK);
    int bc = calls_of(&b);
    ins(db, "w", "{'v': 7}");
    ck_assert(wait_for(&a, 1, 5));
    ck_assert_int_eq(calls_of(&b), bc);
    /* ts_close with watches still running stops them */
    ts_close(db);
    int ac = calls_of(&a), cc = calls_of(&c);
    usleep(100 * 1000);
    ck_assert_int_eq(calls_of(&a), ac);
    ck_assert_int_eq(calls_of(&c), cc);
    (void)wa;
    (void)wc;
    seen_done(&a);
    seen_done(&b);
    seen_done(&c);
}
END_TEST

START_TEST(watch_unwatch_from_callback)
{
    ts_db *db = open_db(NULL);
    table_w(db);
    seen s;
    seen_init(&s, db);
    ts_watch *w = NULL;
    ts_query *q = ts_query_new(db, "w");
    pthread_mutex_lock(&s.lock); /* the initial call waits until self is set */
    ck_assert_int_eq(ts_query_watch(q, on_result, &s, &w), TS_OK);
    s.self = w;
    s.unwatch_at = 2;
    pthread_mutex_unlock(&s.lock);
    ts_query_free(q);
    ck_assert(wait_for(&s, 1, 3));
    ins(db, "w", "{'v': 2}");
    ck_assert(wait_for(&s, 2, 4));
    ck_assert_int_eq(s.unwatch_rc, TS_OK);
    ins(db, "w", "{'v': 3}");
    usleep(300 * 1000);
    ck_assert_int_eq(calls_of(&s), 2);
    ts_close(db);
    seen_done(&s);
}
END_TEST

START_TEST(watch_errors)
{
    ts_db *db = open_db(NULL);
    table_w(db);
    seen s;
    seen_init(&s, db);
    ts_watch *w = (ts_watch *)1;
    ts_query *q = ts_query_new(db, "nope");
    ck_assert_int_eq(ts_query_watch(q, on_result, &s, &w), TS_ERR_NOT_FOUND);
    ck_assert_ptr_null(w);
    ts_query_free(q);
    q = ts_where(ts_query_new(db, "w"), "nope", "=", I(1));
    ck_assert_int_eq(ts_query_watch(q, on_result, &s, &w), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_limit(ts_query_new(db, "w"), -1);
    ck_assert_int_eq(ts_query_watch(q, on_result, &s, &w), TS_ERR_VALIDATION);
    ts_query_free(q);
    q = ts_query_new(db, "w");
    ck_assert_int_eq(ts_query_watch(q, NULL, &s, &w), TS_ERR_INVALID);
    ck_assert_int_eq(ts_query_watch(q, on_result, &s, NULL), TS_ERR_INVALID);
    ck_assert_int_eq(ts_query_watch(NULL, on_result, &s, &w), TS_ERR_INVALID);
    ts_query_free(q);
    usleep(100 * 1000);
    ck_assert_int_eq(calls_of(&s), 0);
    ts_close(db);
    seen_done(&s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("query_watch");
    TCase *tc = tcase_create("watch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, watch_lifecycle);
    tcase_add_test(tc, watch_several);
    tcase_add_test(tc, watch_unwatch_from_callback);
    tcase_add_test(tc, watch_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
