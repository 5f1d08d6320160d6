/*
 * Tables on threads sharing one handle, through the public API only.
 *
 * A writer thread inserts users (ts_insert, ts_batch_insert, and inserts
 * and updates inside ts_begin/ts_commit) and updates them, publishing each
 * key once its call returned.  Three reader threads meanwhile:
 *  - ts_get random published keys: the row must be there with its email;
 *  - ts_count_rows: never goes down (the writer only inserts), never below
 *    the rows published before the call, never above the rows the writer
 *    had started to insert after it;
 *  - inside a ts_begin_read snapshot: the count does not move;
 *  - ts_list_tables / ts_get_schema("users");
 *  - ts_get_schema, ts_get and ts_count_rows on "tmp_N", a table that a
 *    fourth thread keeps creating (with a row) and dropping: TS_OK or
 *    TS_ERR_NOT_FOUND, and a consistent answer when TS_OK.
 * Runs ~4 s (TS_TEST_LONG=1: 30 s).  Labelled tsan: tools/test.sh runs it
 * under ThreadSanitizer.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <tostore/tostore.h>
#include "tsupport.h"

#define NREADERS 3
#define MAXACK (1 << 20)

static ts_db *db;
static atomic_int stop;
static atomic_int failed;
static char failure[1024];
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;

/* published users: ids[i] has email "c<i>@t.io"; entries below nacked are
 * written before nacked is raised (release/acquire) */
static long long ack_id[MAXACK];
static atomic_llong nacked;
/* users the writer has started to insert (raised before each call) */
static atomic_llong nstarted;
/* the tmp_N the DDL thread is working on */
static atomic_int tmp_n;

static atomic_llong stat_gets, stat_counts, stat_tmp_ok, stat_tmp_missing, stat_updates,
    stat_snapshots, stat_ddl;

/* Record the first failure and stop everybody. */
static void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bad(const char *fmt, ...)
{
    pthread_mutex_lock(&fail_mu);
    if (!atomic_load(&failed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(failure, sizeof failure, fmt, ap);
        va_end(ap);
        atomic_store(&failed, 1);
    }
    pthread_mutex_unlock(&fail_mu);
    atomic_store(&stop, 1);
}

typedef struct rng { unsigned long long s; } rng;

static unsigned rnd(rng *r, unsigned n)
{
    r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((r->s >> 33) % n);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static json_t *user_rec(long long k)
{
    char email[64];
    snprintf(email, sizeof email, "c%lld@t.io", k);
    return json_pack("{s:s, s:I}", "email", email, "n", (json_int_t)0);
}

static int key_of(json_t *pk, long long *id)
{
    if (!json_is_integer(pk)) return 0;
    *id = json_integer_value(pk);
    return 1;
}

static void publish(long long k, long long id)
{
    ack_id[k] = id;
    atomic_store_explicit(&nacked, k + 1, memory_order_release);
}

/* ---- the writer -------------------------------------------------------- */

static int update_random(rng *r, long long n, json_int_t v)
{
    long long k = (long long)rnd(r, (unsigned)n);
    json_t *pk = json_integer(ack_id[k]), *ch = json_pack("{s:I}", "n", v);
    int rc = ts_update(db, "users", pk, ch);
    json_decref(pk);
    json_decref(ch);
    if (rc) bad("update user %lld: %d %s", ack_id[k], rc, ts_errmsg(db));
    else atomic_fetch_add(&stat_updates, 1);
    return rc;
}

static void *writer(void *arg)
{
    (void)arg;
    rng r = { 12345 };
    long long k = 0;
    json_int_t v = 0;
    while (!atomic_load(&stop) && k + 32 < MAXACK) {
        unsigned x = rnd(&r, 100);
        if (x < 45) {
            atomic_store(&nstarted, k + 1);
            json_t *rec = user_rec(k), *pk = NULL;
            int rc = ts_insert(db, "users", rec, &pk);
            json_decref(rec);
            long long id;
            if (rc || !key_of(pk, &id)) { bad("insert: %d %s", rc, ts_errmsg(db)); json_decref(pk); break; }
            json_decref(pk);
            publish(k++, id);
        } else if (x < 60) {
            int n = 1 + (int)rnd(&r, 10);
            json_t *arr = json_array(), *report = NULL;
            for (int i = 0; i < n; i++) json_array_append_new(arr, user_rec(k + i));
            atomic_store(&nstarted, k + n);
            int rc = ts_batch_insert(db, "users", arr, (int)rnd(&r, 2), &report);
            json_decref(arr);
            json_t *keys = json_object_get(report, "successKeys");
            if (rc || json_array_size(keys) != (size_t)n) {
                bad("batch insert: %d %s", rc, ts_errmsg(db));
                json_decref(report);
                break;
            }
            long long ids[10];
            for (int i = 0; i < n; i++)
                if (!key_of(json_array_get(keys, (size_t)i), &ids[i])) bad("batch: bad key");
            json_decref(report);
            for (int i = 0; i < n; i++) publish(k++, ids[i]);
        } else if (x < 80) {
            int n = 1 + (int)rnd(&r, 5), rc;
            long long ids[5];
            atomic_store(&nstarted, k + n);
            if ((rc = ts_begin(db))) { bad("begin: %d %s", rc, ts_errmsg(db)); break; }
            for (int i = 0; i < n && !rc; i++) {
                json_t *rec = user_rec(k + i), *pk = NULL;
                rc = ts_insert(db, "users", rec, &pk);
                json_decref(rec);
                if (rc || !key_of(pk, &ids[i])) bad("insert in a transaction: %d %s", rc, ts_errmsg(db));
                json_decref(pk);
            }
            long long have = atomic_load(&nacked);
            if (!rc && have) rc = update_random(&r, have, ++v);
            if (rc) { ts_rollback(db); break; }
            if ((rc = ts_commit(db))) { bad("commit: %d %s", rc, ts_errmsg(db)); break; }
            for (int i = 0; i < n; i++) publish(k++, ids[i]);
        } else {
            long long have = atomic_load(&nacked);
            if (have && update_random(&r, have, ++v)) break;
        }
    }
    return NULL;
}

/* ---- readers ----------------------------------------------------------- */

static void read_tmp(ts_db *h, int n)
{
    char name[32];
    snprintf(name, sizeof name, "tmp_%d", n);
    json_t *s = NULL;
    int rc = ts_get_schema(h, name, &s);
    if (rc == TS_OK) {
        const char *got = json_string_value(json_object_get(s, "name"));
        if (!got || strcmp(got, name)) bad("schema of %s names %s", name, got ? got : "(none)");
        json_decref(s);
        atomic_fetch_add(&stat_tmp_ok, 1);
    } else if (rc == TS_ERR_NOT_FOUND) {
        if (s) bad("schema of %s: not found, yet an output", name);
        atomic_fetch_add(&stat_tmp_missing, 1);
    } else {
        bad("schema of %s: %d %s", name, rc, ts_errmsg(h));
    }
    json_t *pk = json_integer(1), *row = NULL;
    rc = ts_get(h, name, pk, &row);
    json_decref(pk);
    if (rc == TS_OK) {
        json_t *x = json_object_get(row, "x");
        if (!json_is_integer(x) || json_integer_value(x) != n)
            bad("%s row 1 holds the wrong x", name);
    } else if (rc != TS_ERR_NOT_FOUND) {
        bad("get from %s: %d %s", name, rc, ts_errmsg(h));
    }
    json_decref(row);
    int64_t c = -1;
    rc = ts_count_rows(h, name, &c);
    if (rc == TS_OK) {
        if (c < 0 || c > 1) bad("%s holds %lld rows", name, (long long)c);
    } else if (rc != TS_ERR_NOT_FOUND) {
        bad("count %s: %d %s", name, rc, ts_errmsg(h));
    }
}

static void *reader(void *arg)
{
    rng r = { 777 + (uintptr_t)arg };
    int64_t last = 0;
    while (!atomic_load(&stop)) {
        unsigned x = rnd(&r, 100);
        if (x < 55) {
            long long have = atomic_load_explicit(&nacked, memory_order_acquire);
            if (!have) continue;
            long long k = (long long)rnd(&r, (unsigned)have);
            json_t *pk = json_integer(ack_id[k]), *row = NULL;
            int rc = ts_get(db, "users", pk, &row);
            json_decref(pk);
            if (rc) {
                bad("get user %lld (published as c%lld): %d %s", ack_id[k], k, rc, ts_errmsg(db));
                json_decref(row);
                break;
            }
            char want[64];
            snprintf(want, sizeof want, "c%lld@t.io", k);
            const char *email = json_string_value(json_object_get(row, "email"));
            json_t *jid = json_object_get(row, "id");
            if (!email || strcmp(email, want) || !json_is_integer(jid) ||
                json_integer_value(jid) != ack_id[k])
                bad("user %lld: email %s, want %s", ack_id[k], email ? email : "(none)", want);
            json_decref(row);
            atomic_fetch_add(&stat_gets, 1);
        } else if (x < 75) {
            long long lo = atomic_load_explicit(&nacked, memory_order_acquire);
            int64_t c = -1;
            int rc = ts_count_rows(db, "users", &c);
            long long hi = atomic_load(&nstarted);
            if (rc) { bad("count: %d %s", rc, ts_errmsg(db)); break; }
            if (c < last) bad("count went down from %lld to %lld", (long long)last, (long long)c);
            if (c < lo) bad("count %lld, but %lld rows were published before", (long long)c, lo);
            if (c > hi) bad("count %lld, but only %lld rows were ever inserted", (long long)c, hi);
            last = c;
            atomic_fetch_add(&stat_counts, 1);
        } else if (x < 80) {
            /* a snapshot: the count does not move, published rows are there */
            long long lo = atomic_load_explicit(&nacked, memory_order_acquire);
            int rc = ts_begin_read(db);
            if (rc) { bad("begin_read: %d %s", rc, ts_errmsg(db)); break; }
            int64_t c1 = -1, c2 = -1;
            rc = ts_count_rows(db, "users", &c1);
            for (int i = 0; i < 5 && lo && !rc; i++) {
                json_t *pk = json_integer(ack_id[rnd(&r, (unsigned)lo)]), *row = NULL;
                rc = ts_get(db, "users", pk, &row);
                json_decref(pk);
                json_decref(row);
            }
            if (!rc) usleep(200);
            if (!rc) rc = ts_count_rows(db, "users", &c2);
            if (rc) bad("in a snapshot: %d %s", rc, ts_errmsg(db));
            else if (c1 != c2) bad("the count moved in a snapshot: %lld, %lld", (long long)c1, (long long)c2);
            else if (c1 < lo) bad("snapshot count %lld below the %lld published", (long long)c1, lo);
            if ((rc = ts_commit(db))) bad("end of snapshot: %d %s", rc, ts_errmsg(db));
            atomic_fetch_add(&stat_snapshots, 1);
        } else if (x < 88) {
            json_t *list = NULL;
            int rc = ts_list_tables(db, &list);
            if (rc || !json_is_array(list)) { bad("list tables: %d %s", rc, ts_errmsg(db)); json_decref(list); break; }
            int have_users = 0;
            for (size_t i = 0; i < json_array_size(list); i++) {
                const char *nm = json_string_value(json_array_get(list, i));
                if (!nm) bad("list tables: not a string");
                else if (!strcmp(nm, "users")) have_users = 1;
                else if (strcmp(nm, "posts") && strncmp(nm, "tmp_", 4)) bad("list tables: %s", nm);
            }
            if (!have_users) bad("list tables: users is missing");
            json_decref(list);
            json_t *s = NULL;
            rc = ts_get_schema(db, "users", &s);
            const char *nm = rc ? NULL : json_string_value(json_object_get(s, "name"));
            if (!nm || strcmp(nm, "users")) bad("schema of users: %d %s", rc, ts_errmsg(db));
            json_decref(s);
        } else {
            int n = atomic_load(&tmp_n);
            read_tmp(db, n - (int)rnd(&r, 2));
        }
    }
    return NULL;
}

/* ---- tables coming and going ------------------------------------------- */

static void *ddl(void *arg)
{
    (void)arg;
    rng r = { 99 };
    for (int n = 1; !atomic_load(&stop); n++) {
        char name[32], schema[256];
        snprintf(name, sizeof name, "tmp_%d", n);
        snprintf(schema, sizeof schema,
                 "{\"name\": \"%s\", \"fields\": [{\"name\": \"x\", \"type\": \"integer\"}]}", name);
        json_t *s = json_loads(schema, 0, NULL);
        atomic_store(&tmp_n, n);
        int rc = ts_create_table(db, s);
        json_decref(s);
        if (rc) { bad("create %s: %d %s", name, rc, ts_errmsg(db)); break; }
        json_t *rec = json_pack("{s:i}", "x", n);
        rc = ts_insert(db, name, rec, NULL);
        json_decref(rec);
        if (rc) { bad("insert into %s: %d %s", name, rc, ts_errmsg(db)); break; }
        usleep(1000 + rnd(&r, 4000));
        if ((rc = ts_drop_table(db, name))) { bad("drop %s: %d %s", name, rc, ts_errmsg(db)); break; }
        atomic_fetch_add(&stat_ddl, 1);
        usleep(2000 + rnd(&r, 10000));
    }
    return NULL;
}

START_TEST(tables_threads)
{
    char *dir = tst_tmpdir("tables_conc");
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"durability\": \"normal\", \"cacheBytes\": 1048576}",
             dir);
    ck_assert_msg(ts_open_json(cfg, &db) == TS_OK, "open: %s", ts_errmsg(NULL));
    json_t *s = json_loads("{\"name\": \"users\", \"fields\": ["
                           "{\"name\": \"email\", \"type\": \"text\", \"unique\": true, \"nullable\": false},"
                           "{\"name\": \"n\", \"type\": \"integer\"}]}", 0, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(ts_create_table(db, s), TS_OK);
    json_decref(s);

    const char *lg = getenv("TS_TEST_LONG");
    double secs = lg && *lg && strcmp(lg, "0") ? 30 : 4;
    pthread_t w, d, rd[NREADERS];
    ck_assert_int_eq(pthread_create(&w, NULL, writer, NULL), 0);
    ck_assert_int_eq(pthread_create(&d, NULL, ddl, NULL), 0);
    for (uintptr_t i = 0; i < NREADERS; i++)
        ck_assert_int_eq(pthread_create(&rd[i], NULL, reader, (void *)i), 0);
    double end = now() + secs;
    while (now() < end && !atomic_load(&stop)) usleep(10000);
    atomic_store(&stop, 1);
    pthread_join(w, NULL);
    pthread_join(d, NULL);
    for (int i = 0; i < NREADERS; i++) pthread_join(rd[i], NULL);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);

    /* at the end: every published row, the count, no tmp table left behind */
    long long n = atomic_load(&nacked);
    int64_t c = -1;
    ck_assert_int_eq(ts_count_rows(db, "users", &c), TS_OK);
    ck_assert_int_eq(c, n);
    for (long long k = 0; k < n; k++) {
        json_t *pk = json_integer(ack_id[k]), *row = NULL;
        int rc = ts_get(db, "users", pk, &row);
        json_decref(pk);
        json_decref(row);
        if (rc) ck_abort_msg("user %lld at the end: %d %s", ack_id[k], rc, ts_errmsg(db));
    }
    json_t *list = NULL;
    ck_assert_int_eq(ts_list_tables(db, &list), TS_OK);
    ck_assert_uint_eq(json_array_size(list), 1); /* tmp_N is always dropped before the stop is seen */
    json_decref(list);
    json_t *report = NULL;
    ck_assert_int_eq(ts_check(db, &report, NULL, NULL), TS_OK);
    ck_assert(json_is_true(json_object_get(report, "ok")));
    json_decref(report);
    fprintf(stderr, "tables_concurrency: %lld users, %lld updates, %lld gets, %lld counts, "
            "%lld snapshots, %lld tmp tables created and dropped (schema read %lld times, "
            "missing %lld)\n", n, (long long)stat_updates, (long long)stat_gets,
            (long long)stat_counts, (long long)stat_snapshots, (long long)stat_ddl,
            (long long)stat_tmp_ok, (long long)stat_tmp_missing);
    ck_assert_int_gt(n, 0);
    ck_assert_int_gt(stat_gets, 0);
    ck_assert_int_eq(ts_close(db), TS_OK);
    db = NULL;
    tst_rmrf(dir);
    free(dir);
}
END_TEST

/* A snapshot that sees a commit's data also sees the tables it created:
 * a writer creates table t<k> and sets the global key "last" to k in one
 * transaction; a reader that reads "last" = k must find t<k>. */
static atomic_int ddl_stop;

static void *ddl_writer(void *arg)
{
    (void)arg;
    for (int k = 1; !atomic_load(&ddl_stop) && k < 3000; k++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", k);
        json_t *s = json_pack("{s:s, s:[{s:s, s:s}]}", "name", name, "fields", "name", "x", "type", "integer");
        json_t *v = json_integer(k);
        int rc = ts_begin(db);
        if (!rc) rc = ts_create_table(db, s);
        if (!rc) rc = ts_kv_set(db, "last", v, 1);
        if (!rc) rc = ts_commit(db);
        else ts_rollback(db);
        json_decref(s);
        json_decref(v);
        if (rc) { bad("create %s: %d %s", name, rc, ts_errmsg(db)); break; }
    }
    atomic_store(&ddl_stop, 1);
    return NULL;
}

START_TEST(ddl_visible_with_its_data)
{
    char *dir = tst_tmpdir("tables_conc_ddl");
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"durability\": \"normal\"}", dir);
    ck_assert_msg(ts_open_json(cfg, &db) == TS_OK, "open: %s", ts_errmsg(NULL));
    pthread_t w;
    ck_assert_int_eq(pthread_create(&w, NULL, ddl_writer, NULL), 0);
    long checks = 0;
    double end = now() + 2;
    while (!atomic_load(&ddl_stop) && !atomic_load(&failed) && now() < end) {
        json_t *v = NULL;
        int rc = ts_kv_get(db, "last", 1, &v);
        if (rc == TS_ERR_NOT_FOUND) continue;
        if (rc) { bad("kv get: %d %s", rc, ts_errmsg(db)); break; }
        char name[32];
        snprintf(name, sizeof name, "t%lld", (long long)json_integer_value(v));
        json_decref(v);
        json_t *schema = NULL;
        rc = ts_get_schema(db, name, &schema);
        json_decref(schema);
        if (rc) { bad("'last' names %s, but: %d %s", name, rc, ts_errmsg(db)); break; }
        checks++;
    }
    atomic_store(&ddl_stop, 1);
    pthread_join(w, NULL);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
    ck_assert_int_gt(checks, 0);
    ck_assert_int_eq(ts_close(db), TS_OK);
    db = NULL;
    tst_rmrf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tables_concurrency");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, tables_threads);
    tcase_add_test(tc, ddl_visible_with_its_data);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
