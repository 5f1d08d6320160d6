/*
 * Vector search on threads sharing one handle, through the public API.
 *
 * A writer inserts rows with vectors (single inserts and small
 * transactions) and deletes some, publishing each call once it returned.
 * Two readers meanwhile search for published vectors: the row itself
 * comes back first (at distance ~0) unless it was deleted, never a row
 * the writer had not started to insert, k rows whenever k rows exist; and
 * a filtered search returns only rows that pass (through a column set
 * patched from version to version).  Runs ~3 s.  Labelled
 * tsan: tools/test.sh runs it under ThreadSanitizer.
 */
#include <math.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <tostore/tostore.h>
#include "tsupport.h"

#define DIM 16
#define MAXROWS 200000
#define NREADERS 2

static ts_db *db;
static atomic_int stop, failed;
static atomic_llong nacked;     /* rows 1..nacked are committed */
static atomic_llong nstarted;   /* no row above nstarted exists */
static atomic_llong searches, self_tries, self_found;
static char failure[512];
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;

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

/* The vector of row id: a deterministic point; rows % 7 == 0 are deleted. */
static void vec_of(long long id, float *v)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    for (int d = 0; d < DIM; d++) {
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9ull;
        v[d] = (float)((double)(h >> 40) / 16777216.0) + (float)(id % 13);
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int insert_row(long long id)
{
    float v[DIM];
    vec_of(id, v);
    json_t *rec = json_pack("{s:I, s:I, s:o}", "id", (json_int_t)id, "cat", (json_int_t)(id % 10),
                            "emb", ts_vector_value(v, DIM));
    int rc = rec ? ts_insert(db, "v", rec, NULL) : TS_ERR_NOMEM;
    json_decref(rec);
    return rc;
}

static void *writer(void *arg)
{
    (void)arg;
    long long id = 0;
    while (!atomic_load(&stop) && id + 20 < MAXROWS) {
        int batch = id % 3 == 0 ? 10 : 1;
        atomic_store(&nstarted, id + batch);
        int rc = batch > 1 ? ts_begin(db) : TS_OK;
        for (int i = 1; i <= batch && !rc; i++) rc = insert_row(id + i);
        if (!rc && batch > 1) rc = ts_commit(db);
        if (rc) { bad("insert %lld: %d %s", id + 1, rc, ts_errmsg(db)); break; }
        id += batch;
        /* delete the rows % 7 == 0 of this step */
        for (long long d = id - batch + 1; d <= id; d++)
            if (d % 7 == 0) {
                json_t *pk = json_integer(d);
                rc = ts_delete(db, "v", pk);
                json_decref(pk);
                if (rc) { bad("delete %lld: %d %s", d, rc, ts_errmsg(db)); break; }
            }
        atomic_store(&nacked, id);
    }
    return NULL;
}

static void *reader(void *arg)
{
    uint64_t r = 88172645463325252ull + (uintptr_t)arg;
    while (!atomic_load(&stop)) {
        long long n = atomic_load(&nacked);
        if (n < 30) { usleep(1000); continue; }
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        long long id = 1 + (long long)(r % (uint64_t)n);
        float v[DIM];
        vec_of(id, v);
        int filtered = (r >> 20) % 4 == 0;
        ts_query *q = ts_ef_search(ts_query_new(db, "v"), 100);
        json_t *three = json_integer(3), *bound = json_integer(1000 + (json_int_t)(r % 100000));
        /* an extra bound new every search: the column set of cat (built,
         * then patched at each version the writer commits), not a set of
         * these conditions */
        if (filtered) ts_where(ts_where(q, "cat", "=", three), "cat", "<", bound);
        json_decref(three);
        json_decref(bound);
        ts_result *res = NULL;
        int rc = ts_vector_search(q, "emb", v, DIM, 5, &res);
        ts_query_free(q);
        if (rc) { bad("search: %d %s", rc, ts_errmsg(db)); break; }
        long long top = atomic_load(&nstarted);
        size_t cnt = ts_result_count(res);
        /* at least the acknowledged live rows that pass, up to k */
        long long live = 0;
        for (long long x = 1; x <= n && live < 5; x++)
            if (x % 7 && (!filtered || x % 10 == 3)) live++;
        if ((long long)cnt < live || cnt > 5)
            bad("search for %lld%s: %zu rows, want %lld", id, filtered ? " (filtered)" : "", cnt, live);
        for (size_t i = 0; i < cnt; i++) {
            const json_t *row = ts_result_row(res, i);
            long long got = (long long)json_integer_value(json_object_get(row, "id"));
            if (got < 1 || got > top) bad("search returned row %lld, past %lld", got, top);
            /* rows % 7 are deleted before nacked passes them */
            if (got % 7 == 0 && got <= n) bad("deleted row %lld returned (acked %lld)", got, n);
            if (filtered && json_integer_value(json_object_get(row, "cat")) != 3)
                bad("filtered search returned row %lld of cat %lld", got,
                    (long long)json_integer_value(json_object_get(row, "cat")));
        }
        if (!filtered && id % 7 && cnt) {
            long long first = (long long)json_integer_value(json_object_get(ts_result_row(res, 0), "id"));
            atomic_fetch_add(&self_tries, 1);
            if (first == id) atomic_fetch_add(&self_found, 1);
        }
        atomic_fetch_add(&searches, 1);
        ts_result_free(res);
    }
    return NULL;
}

START_TEST(vector_threads)
{
    char *dir = tst_tmpdir("vector_conc");
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"durability\": \"normal\"}", dir);
    ck_assert_msg(ts_open_json(cfg, &db) == TS_OK, "open: %s", ts_errmsg(NULL));
    json_t *s = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s, s:{s:i}}], s:[{s:s, s:[s], s:{s:s}}]}",
                          "name", "v", "fields", "name", "cat", "type", "integer", "name", "emb",
                          "type", "vector", "vectorConfig", "dimensions", DIM, "indexes", "type", "ngh",
                          "fields", "emb", "vectorConfig", "distanceMetric", "l2");
    ck_assert_ptr_nonnull(s);
    int rc = ts_create_table(db, s);
    ck_assert_msg(rc == TS_OK, "create: %d %s", rc, ts_errmsg(db));
    json_decref(s);
    pthread_t w, rd[NREADERS];
    ck_assert_int_eq(pthread_create(&w, NULL, writer, NULL), 0);
    for (uintptr_t i = 0; i < NREADERS; i++) ck_assert_int_eq(pthread_create(&rd[i], NULL, reader, (void *)i), 0);
    double end = now() + 3;
    while (now() < end && !atomic_load(&stop)) usleep(10000);
    atomic_store(&stop, 1);
    pthread_join(w, NULL);
    for (int i = 0; i < NREADERS; i++) pthread_join(rd[i], NULL);
    ck_assert_msg(!atomic_load(&failed), "%s", failure);
    long long n = atomic_load(&nacked), ns = atomic_load(&searches);
    fprintf(stderr, "vector_concurrency: %lld rows, %lld searches, %lld found themselves first\n", n, ns,
            (long long)atomic_load(&self_found));
    ck_assert_int_gt(n, 30);
    ck_assert_int_gt(ns, 0);
    ck_assert_int_gt(atomic_load(&self_tries), 0);
    ck_assert_int_ge(atomic_load(&self_found) * 100, atomic_load(&self_tries) * 98);
    json_t *st = NULL;
    ck_assert_int_eq(ts_stats(db, &st), TS_OK);
    fprintf(stderr, "vector_concurrency: column sets built %lld, patched %lld\n",
            (long long)json_integer_value(json_object_get(st, "vectorSetBuilds")),
            (long long)json_integer_value(json_object_get(st, "vectorSetPatches")));
    ck_assert_int_gt(json_integer_value(json_object_get(st, "vectorSetPatches")), 0);
    json_decref(st);
    /* at the end every live row finds itself */
    for (long long id = 1; id <= n; id += 1 + n / 200) {
        if (id % 7 == 0) continue;
        float v[DIM];
        vec_of(id, v);
        ts_query *q = ts_query_new(db, "v");
        ts_result *res = NULL;
        ck_assert_int_eq(ts_vector_search(q, "emb", v, DIM, 1, &res), TS_OK);
        ts_query_free(q);
        ck_assert_int_eq(json_integer_value(json_object_get(ts_result_row(res, 0), "id")), id);
        ts_result_free(res);
    }
    int64_t c = 0;
    ck_assert_int_eq(ts_count_rows(db, "v", &c), TS_OK);
    ck_assert_int_eq(c, n - n / 7);
    ck_assert_int_eq(ts_close(db), TS_OK);
    tst_rmrf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("vector_concurrency");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, vector_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
