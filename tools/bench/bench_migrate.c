/*
 * bench_migrate: adding an indexed field to a populated table while a
 * writer keeps inserting, tostore's online schema update against SQLite's
 * ALTER TABLE ADD COLUMN + CREATE INDEX, in the same run (issue 8,
 * "Benchmark").
 *
 * Both engines hold users(id integer primary key, email text unique, age
 * integer) with N rows (--rows; 200K, 1M with BENCH_BIG=1), loaded before
 * each round (not timed).  Then a writer thread inserts one row per
 * transaction (autocommit, one every --writer-gap-us, 1000 us) and the
 * main thread adds the field "level" (integer, indexed):
 *   tostore  ts_su_add_field(ts_update_schema(db, "users"), {"name":
 *            "level", "type": "integer", "createIndex": true}) +
 *            ts_su_apply, then ts_migration_status polled every 2 ms until
 *            "done" (a background task: batches of migration.batchRows,
 *            2000, each its own transaction);
 *   SQLite   ALTER TABLE users ADD COLUMN level INTEGER; CREATE INDEX
 *            idx_level ON users(level) (WAL, the writer on its own
 *            connection with busy_timeout).
 * Measured per round: rows/s = N / (time from the call to the field being
 * usable with its index), and each writer call's latency while the
 * migration ran (mean and max: how long writers wait), next to the writer's
 * mean latency in 0.3 s before it (idle).  Durability "normal" vs
 * synchronous=NORMAL; cache 64 MiB each.  Rounds alternate which engine
 * goes first; the ratio is the median of the per-round ratios.
 *
 * Usage: bench_migrate [--rows N] [--rounds N] [--writer-gap-us N] [--batch-rows N] [data-dir]
 * Environment: BENCH_BIG=1 (1M rows), BENCH_ROWS, BENCH_ROUNDS (3),
 * BENCH_DIR, BENCH_KEEP=1.  Results: docs/benchmarks.md, Part 5.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <tostore/tostore.h>
#include "bench_common.h"

#ifndef BENCH_DEFAULT_DIR
#define BENCH_DEFAULT_DIR "benchdata"
#endif

static const char *g_root;
static uint64_t g_rows = 200000;
static uint64_t g_batch = 2000;
static int g_rounds = 3;
static long g_gap_us = 1000;

#define TSCK(db, call) do { int rc_ = (call); if (rc_ != TS_OK) die("%s:%d %s: %d %s", __FILE__, __LINE__, #call, rc_, ts_errmsg(db)); } while (0)
#define SQCK(db, call) do { int rc_ = (call); if (rc_ != SQLITE_OK && rc_ != SQLITE_DONE && rc_ != SQLITE_ROW) die("%s:%d %s: %s", __FILE__, __LINE__, #call, sqlite3_errmsg(db)); } while (0)

static uint64_t parse_u64(const char *what, const char *v)
{
    char *end;
    if (!v) die("%s needs a value", what);
    unsigned long long x = strtoull(v, &end, 10);
    if (*end || !*v) die("%s: not a number: %s", what, v);
    return x;
}

static void email_of(uint64_t i, char *buf, size_t cap)
{
    snprintf(buf, cap, "u%llu@example.com", (unsigned long long)i);
}

/* ---- the writer ------------------------------------------------------------- */

typedef struct wstats {
    double sum, max;
    uint64_t n;
    double *v;           /* every latency, for percentiles */
    size_t cap;
} wstats;

static void wstats_add(wstats *s, double dt)
{
    s->sum += dt;
    if (dt > s->max) s->max = dt;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        if (!(s->v = realloc(s->v, s->cap * sizeof *s->v))) die("out of memory");
    }
    s->v[s->n++] = dt;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(wstats *s, double p)
{
    if (!s->n) return 0;
    qsort(s->v, s->n, sizeof *s->v, cmp_d);
    size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
    return s->v[i];
}

typedef struct writer {
    int (*insert)(void *ctx, uint64_t key);
    void *ctx;
    uint64_t next;
    volatile int stop;
    volatile int phase;   /* 0: idle measure, 1: during the migration, 2: after */
    wstats st[3];
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    while (!w->stop) {
        int ph = w->phase;
        double t0 = now();
        if (w->insert(w->ctx, w->next++)) die("writer insert failed");
        double dt = now() - t0;
        /* a write that started in one phase and ended in the next counts there */
        int ph2 = w->phase > ph ? w->phase : ph;
        wstats_add(&w->st[ph2 == 2 && ph == 1 ? 1 : ph2], dt);
        if (g_gap_us) usleep((useconds_t)g_gap_us);
    }
    return NULL;
}

/* ---- tostore ------------------------------------------------------------------ */

static int ts_ins(void *ctx, uint64_t key)
{
    ts_db *db = ctx;
    char e[48];
    email_of(key, e, sizeof e);
    json_t *r = json_pack("{s:I, s:s, s:i}", "id", (json_int_t)key, "email", e, "age", (int)(key % 100));
    int rc = ts_insert(db, "users", r, NULL);
    json_decref(r);
    if (rc) fprintf(stderr, "ts_insert: %d %s\n", rc, ts_errmsg(db));
    return rc;
}

static ts_db *ts_load(const char *dir)
{
    char mig[64];
    snprintf(mig, sizeof mig, "\"migration\": {\"batchRows\": %llu}", (unsigned long long)g_batch);
    ts_db *db = bench_open_db(dir, "normal", 64ll << 20, mig);
    json_t *s = json_loads("{\"name\": \"users\", \"fields\": [{\"name\": \"email\", \"type\": \"text\", "
                           "\"unique\": true}, {\"name\": \"age\", \"type\": \"integer\"}]}", 0, NULL);
    TSCK(db, ts_create_table(db, s));
    json_decref(s);
    TSCK(db, ts_begin(db));
    for (uint64_t b = 0; b < g_rows; b += 10000) {
        json_t *arr = json_array();
        for (uint64_t i = b + 1; i <= g_rows && i <= b + 10000; i++) {
            char e[48];
            email_of(i, e, sizeof e);
            json_array_append_new(arr, json_pack("{s:I, s:s, s:i}", "id", (json_int_t)i, "email", e,
                                                 "age", (int)(i % 100)));
        }
        TSCK(db, ts_batch_insert(db, "users", arr, 0, NULL));
        json_decref(arr);
    }
    TSCK(db, ts_commit(db));
    return db;
}

/* The migration; returns its duration. */
static double ts_migrate(ts_db *db)
{
    json_t *f = json_pack("{s:s, s:s, s:b}", "name", "level", "type", "integer", "createIndex", 1);
    char *id = NULL;
    double t0 = now();
    TSCK(db, ts_su_apply(ts_su_add_field(ts_update_schema(db, "users"), f), &id));
    for (;;) {
        json_t *st = NULL;
        TSCK(db, ts_migration_status(db, id, &st));
        const char *s = json_string_value(json_object_get(st, "state"));
        int done = strcmp(s, "running") != 0;
        if (done && strcmp(s, "done") != 0) die("migration %s: %s", id, s);
        json_decref(st);
        if (done) break;
        usleep(2000);
    }
    double dt = now() - t0;
    free(id);
    json_decref(f);
    /* the field is there, with its index */
    int64_t n = -1;
    json_t *v = json_null();
    ts_query *q = ts_where(ts_query_new(db, "users"), "level", "IS", v);
    TSCK(db, ts_query_count(q, &n));
    ts_query_free(q);
    json_decref(v);
    if (n < (int64_t)g_rows) die("after the migration: %lld rows with level null", (long long)n);
    return dt;
}

/* ---- SQLite ------------------------------------------------------------------- */

typedef struct sq {
    sqlite3 *db;
    sqlite3_stmt *ins;
} sq;

static sqlite3 *sq_open(const char *file)
{
    sqlite3 *db;
    if (sqlite3_open(file, &db) != SQLITE_OK) die("sqlite3_open %s", file);
    SQCK(db, sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                              "PRAGMA cache_size=-65536;", NULL, NULL, NULL));
    sqlite3_busy_timeout(db, 600000);
    return db;
}

static int sq_ins(void *ctx, uint64_t key)
{
    sq *s = ctx;
    char e[48];
    email_of(key, e, sizeof e);
    sqlite3_bind_int64(s->ins, 1, (sqlite3_int64)key);
    sqlite3_bind_text(s->ins, 2, e, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s->ins, 3, (int)(key % 100));
    int rc = sqlite3_step(s->ins);
    sqlite3_reset(s->ins);
    if (rc != SQLITE_DONE) fprintf(stderr, "sqlite insert: %s\n", sqlite3_errmsg(s->db));
    return rc != SQLITE_DONE;
}

static sqlite3 *sq_load(const char *file)
{
    sqlite3 *db = sq_open(file);
    SQCK(db, sqlite3_exec(db, "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, age INTEGER)",
                          NULL, NULL, NULL));
    SQCK(db, sqlite3_exec(db, "BEGIN", NULL, NULL, NULL));
    sq s = { db, NULL };
    SQCK(db, sqlite3_prepare_v2(db, "INSERT INTO users VALUES(?, ?, ?)", -1, &s.ins, NULL));
    for (uint64_t i = 1; i <= g_rows; i++)
        if (sq_ins(&s, i)) die("sqlite load");
    sqlite3_finalize(s.ins);
    SQCK(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL));
    return db;
}

static double sq_migrate(sqlite3 *db)
{
    double t0 = now();
    SQCK(db, sqlite3_exec(db, "ALTER TABLE users ADD COLUMN level INTEGER; "
                              "CREATE INDEX idx_level ON users(level);", NULL, NULL, NULL));
    return now() - t0;
}

/* ---- a round ------------------------------------------------------------------ */

typedef struct result {
    double rate;                  /* rows/s */
    double idle_mean, mean, max;  /* writer latency, seconds */
    double p50, p99;
    uint64_t writes;              /* during the migration */
} result;

static void run_writer(writer *w, pthread_t *th)
{
    w->phase = 0;
    w->stop = 0;
    w->next = g_rows + 1;
    memset(w->st, 0, sizeof w->st);
    if (pthread_create(th, NULL, writer_main, w)) die("pthread_create");
    usleep(300000);
    w->phase = 1;
}

static void stop_writer(writer *w, pthread_t th, result *r)
{
    w->phase = 2;
    usleep(20000);
    w->stop = 1;
    pthread_join(th, NULL);
    r->idle_mean = w->st[0].n ? w->st[0].sum / (double)w->st[0].n : 0;
    r->mean = w->st[1].n ? w->st[1].sum / (double)w->st[1].n : 0;
    r->max = w->st[1].max;
    r->p50 = pct(&w->st[1], 0.5);
    r->p99 = pct(&w->st[1], 0.99);
    r->writes = w->st[1].n;
    for (int i = 0; i < 3; i++) free(w->st[i].v);
}

static result round_tostore(int r)
{
    char name[64];
    snprintf(name, sizeof name, "ts-%d", r);
    char *dir = path_join(g_root, name);
    mkdir_or_die(dir);
    ts_db *db = ts_load(dir);
    writer w = { .insert = ts_ins, .ctx = db };
    pthread_t th;
    result res = { 0 };
    run_writer(&w, &th);
    double dt = ts_migrate(db);
    stop_writer(&w, th, &res);
    res.rate = (double)g_rows / dt;
    ts_close(db);
    rmrf(dir);
    free(dir);
    return res;
}

static result round_sqlite(int r)
{
    char name[64];
    snprintf(name, sizeof name, "sq-%d.db", r);
    char *file = path_join(g_root, name);
    sqlite3 *db = sq_load(file);
    sq ws = { sq_open(file), NULL };
    SQCK(ws.db, sqlite3_prepare_v2(ws.db, "INSERT INTO users(id, email, age) VALUES(?, ?, ?)", -1, &ws.ins, NULL));
    writer w = { .insert = sq_ins, .ctx = &ws };
    pthread_t th;
    result res = { 0 };
    run_writer(&w, &th);
    double dt = sq_migrate(db);
    stop_writer(&w, th, &res);
    res.rate = (double)g_rows / dt;
    sqlite3_finalize(ws.ins);
    sqlite3_close(ws.db);
    sqlite3_close(db);
    char *wal = NULL, *shm = NULL;
    if (asprintf(&wal, "%s-wal", file) < 0 || asprintf(&shm, "%s-shm", file) < 0) die("asprintf");
    unlink(file);
    unlink(wal);
    unlink(shm);
    free(wal);
    free(shm);
    free(file);
    return res;
}

int main(int argc, char **argv)
{
    bench = (bench_style){ "bench_migrate", 34, 10, 50, { 40, 22, 22, 20, 6 } };
    const char *base = getenv("BENCH_DIR");
    if (getenv("BENCH_BIG") && atoi(getenv("BENCH_BIG")) > 0) g_rows = 1000000;
    if (getenv("BENCH_ROWS") && *getenv("BENCH_ROWS")) g_rows = parse_u64("BENCH_ROWS", getenv("BENCH_ROWS"));
    if (getenv("BENCH_ROUNDS")) g_rounds = atoi(getenv("BENCH_ROUNDS"));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--rows")) g_rows = parse_u64(a, v), i++;
        else if (!strcmp(a, "--rounds")) g_rounds = (int)parse_u64(a, v), i++;
        else if (!strcmp(a, "--writer-gap-us")) g_gap_us = (long)parse_u64(a, v), i++;
        else if (!strcmp(a, "--batch-rows")) g_batch = parse_u64(a, v), i++;
        else if (a[0] == '-') die("usage: bench_migrate [--rows N] [--rounds N] [--writer-gap-us N] [dir]");
        else base = a;
    }
    if (g_rounds < 1) g_rounds = 1;
    if (g_rounds > MAXR) g_rounds = MAXR;
    if (!base || !*base) base = BENCH_DEFAULT_DIR;
    mkdir_or_die(base);
    char run[64];
    snprintf(run, sizeof run, "migrate-%d", (int)getpid());
    char *root = path_join(base, run);
    mkdir_or_die(root);
    g_root = root;

    struct utsname u;
    uname(&u);
    printf("bench_migrate: tostore %s, SQLite %s (WAL); %s %s; %llu rows, %d rounds, writer every %ld us\n",
           ts_version(), sqlite3_libversion(), u.sysname, u.machine, (unsigned long long)g_rows,
           g_rounds, g_gap_us);
    eng e[2] = { { .name = "tostore (online task)" }, { .name = "SQLite (ALTER + CREATE INDEX)" } };
    eng wm[2] = { { .name = "tostore writer mean (us)" }, { .name = "SQLite writer mean (us)" } };
    eng wx[2] = { { .name = "tostore writer max (us)" }, { .name = "SQLite writer max (us)" } };
    eng wi[2] = { { .name = "tostore writer idle (us)" }, { .name = "SQLite writer idle (us)" } };
    eng w5[2] = { { .name = "tostore writer p50 (us)" }, { .name = "SQLite writer p50 (us)" } };
    eng w9[2] = { { .name = "tostore writer p99 (us)" }, { .name = "SQLite writer p99 (us)" } };
    uint64_t writes[2] = { 0, 0 };
    for (int r = 0; r < g_rounds; r++) {
        result x[2];
        memset(x, 0, sizeof x);
        for (int k = 0; k < 2; k++) {
            int which = (r + k) % 2;
            x[which] = which == 0 ? round_tostore(r) : round_sqlite(r);
        }
        for (int k = 0; k < 2; k++) {
            e[k].rate[r] = x[k].rate;
            wm[k].rate[r] = x[k].mean * 1e6;
            wx[k].rate[r] = x[k].max * 1e6;
            wi[k].rate[r] = x[k].idle_mean * 1e6;
            w5[k].rate[r] = x[k].p50 * 1e6;
            w9[k].rate[r] = x[k].p99 * 1e6;
            writes[k] += x[k].writes;
        }
        fprintf(stderr, "round %d: tostore %.0f rows/s (writer mean %.0f us, p50 %.0f, p99 %.0f, max %.0f us, "
                "%llu writes), SQLite %.0f rows/s (writer mean %.0f us, max %.0f us, %llu writes)\n", r + 1,
                x[0].rate, x[0].mean * 1e6, x[0].p50 * 1e6, x[0].p99 * 1e6, x[0].max * 1e6,
                (unsigned long long)x[0].writes, x[1].rate, x[1].mean * 1e6, x[1].max * 1e6,
                (unsigned long long)x[1].writes);
    }
    print_header("add an indexed field (rows/s)", g_rounds);
    print_rates(e, 2, g_rounds, "rows/s");
    ratio rr = ratio_of(&e[0], &e[1], g_rounds);
    print_ratio("tostore / SQLite", rr);
    print_header("writer latency while it runs", g_rounds);
    print_rates(wi, 2, g_rounds, "us");
    print_rates(wm, 2, g_rounds, "us");
    print_rates(w5, 2, g_rounds, "us");
    print_rates(w9, 2, g_rounds, "us");
    print_rates(wx, 2, g_rounds, "us");
    printf("writes during the migration: tostore %llu, SQLite %llu (all rounds)\n",
           (unsigned long long)writes[0], (unsigned long long)writes[1]);
    char a[64], b[64], c[64];
    snprintf(a, sizeof a, "%.0f rows/s", median(e[0].rate, g_rounds));
    snprintf(b, sizeof b, "%.0f rows/s", median(e[1].rate, g_rounds));
    snprintf(c, sizeof c, "%.2fx [%.2f-%.2f]", rr.med, rr.lo, rr.hi);
    add_row("add indexed field", a, b, c, "", "");
    snprintf(a, sizeof a, "%.0f us", median(wm[0].rate, g_rounds));
    snprintf(b, sizeof b, "%.0f us", median(wm[1].rate, g_rounds));
    add_row("writer wait, mean", a, b, "", "", "");
    snprintf(a, sizeof a, "%.0f us", median(w9[0].rate, g_rounds));
    snprintf(b, sizeof b, "%.0f us", median(w9[1].rate, g_rounds));
    add_row("writer wait, p99", a, b, "", "", "");
    snprintf(a, sizeof a, "%.0f us", median(wx[0].rate, g_rounds));
    snprintf(b, sizeof b, "%.0f us", median(wx[1].rate, g_rounds));
    add_row("writer wait, max", a, b, "", "", "");
    print_summary();
    if (!getenv("BENCH_KEEP")) rmrf(root);
    free(root);
    return 0;
}
