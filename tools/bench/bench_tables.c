/*
 * bench_tables: tostore's public table and KV API against SQLite (WAL,
 * prepared statements, the same durability), in the same run (issue 5,
 * "Tests and benchmark").
 *
 * Both engines hold the same 3-column table with a unique index, filled
 * and read through the calls a user would make:
 *   tostore  users(id: sequential primary key, email text unique not null,
 *            age integer): ts_create_table, ts_insert with a json_t record
 *            (built per row, as a program would), ts_get, ts_kv_set/get;
 *   SQLite   users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
 *            age INTEGER), kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
 *            one prepared statement per operation.
 * Durability: tostore "durability": "full" vs SQLite synchronous=FULL (each
 * commit durable when it returns), then "normal" vs NORMAL.  Cache: tostore
 * cacheBytes = SQLite cache_size (64 MiB, --cache-mb).  Emails are random
 * (u<16 hex digits>@example.com), so the unique index is filled in random
 * order; ages 0-99.
 *
 * Workloads (engines interleaved, order rotating; a ratio is the median of
 * the per-round ratios tostore/SQLite, as in bench_commit and bench_index):
 *   b. N rows (--rows; 200K, 1M with BENCH_BIG=1) inserted in one
 *      transaction into the empty table: ts_begin, N x ts_insert, ts_commit
 *      vs BEGIN, N x INSERT, COMMIT (one fresh database per engine and
 *      round; the last round's databases are used by the workloads below)
 *   g. point gets by primary key (ts_get vs SELECT ... WHERE id = ?), and by
 *      the unique field: tostore has no public lookup by a unique field
 *      until the query API (issue 6), so that line is "n/a" and only SQLite
 *      is measured, for reference.  Once the library implements
 *      ts_query_exec, CMake defines BENCH_HAVE_QUERY and the line compares
 *      ts_query_new + ts_where(email, "=") + ts_limit(1) + ts_query_exec
 *      per lookup with SQLite
 *   s. single-insert transactions (ts_insert outside a transaction vs an
 *      autocommit INSERT), --single (10K) per engine: durability full, then
 *      normal
 *   k. KV: ts_kv_set vs INSERT OR REPLACE (autocommit; full, then normal)
 *      over --kv-keys (10K) preloaded keys, and ts_kv_get vs SELECT
 *
 * Usage: bench_tables [options] [data-dir]
 *   --rows N          rows of the bulk insert (BENCH_ROWS; 200000, BENCH_BIG=1: 1000000)
 *   --single N        single-insert transactions and KV sets per engine and
 *                     durability (BENCH_SINGLE; 10000)
 *   --kv-keys N       KV keys (10000)
 *   --rounds N        rounds of the timed workloads (BENCH_ROUNDS; 5)
 *   --bulk-rounds N   rounds of b (BENCH_BULK_ROUNDS; 3, BENCH_BIG=1: 2)
 *   --time X          seconds-per-engine multiplier of the read workloads (BENCH_TIME; 1.0)
 *   --cache-mb N      tostore cacheBytes and SQLite cache_size (64)
 *   --only LETTERS    a subset of b g s k (BENCH_ONLY)
 * Environment: BENCH_DIR (data folder), BENCH_KEEP=1 (keep the data).
 *        bench_tables profile bulk|insert|insertn|get|kvset|kvsetn|kvget|getemail [secs]
 * The profile mode runs one tostore workload alone (for perf): bulk builds
 * the --rows table once; the others build it (durability normal) and then
 * run the operation for secs.  Method and results: docs/benchmarks.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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

#define SEED 0x7ab1e5c0ffee5eedull
#define GET_BATCH 100
#define EMAIL_CAP 48
#define NA_UNIQUE "n/a (query API: issue 6)"

static const char *g_root;
static int       g_rounds = 5;
static int       g_bulk_rounds = 3;
static double    g_time = 1.0;
static int       g_big;
static uint64_t  g_rows = 200000;
static uint64_t  g_single = 10000;
static uint64_t  g_kv_keys = 10000;
static long long g_cache = 64ll << 20;
static const char *g_only = "bgsk";

static int wants(char w) { return strchr(g_only, w) != NULL; }

#define TSCK(db, call) do { int rc_ = (call); if (rc_ != TS_OK) die("%s:%d %s: %d %s", __FILE__, __LINE__, #call, rc_, ts_errmsg(db)); } while (0)

/* ---- the rows -------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Row i (0-based; id i + 1 after the bulk insert): a random, unique email
 * (mix64 is a bijection) and an age. */
static void email_of(uint64_t i, char *buf)
{
    snprintf(buf, EMAIL_CAP, "u%016llx@example.com", (unsigned long long)mix64(i ^ SEED));
}

static int age_of(uint64_t i) { return (int)(mix64(i * 31 + 7) % 100); }

static json_t *record_of(uint64_t i)
{
    char email[EMAIL_CAP];
    email_of(i, email);
    json_t *r = json_pack("{s:s, s:i}", "email", email, "age", age_of(i));
    if (!r) die("json_pack");
    return r;
}

static void kv_key_of(uint64_t i, char *buf) { snprintf(buf, 32, "key:%08llu", (unsigned long long)i); }

static void kv_val_of(uint64_t i, char *buf)
{
    snprintf(buf, 64, "value-%llu-%016llx", (unsigned long long)i, (unsigned long long)mix64(i));
}

/* ---- tostore ------------------------------------------------------------- */

static const char *const TS_SCHEMA =
    "{\"name\": \"users\", \"fields\": ["
    "{\"name\": \"email\", \"type\": \"text\", \"unique\": true, \"nullable\": false},"
    "{\"name\": \"age\", \"type\": \"integer\"}]}";

static ts_db *tso_open(const char *dir, const char *durability)
{
    return bench_open_db(dir, durability, g_cache, NULL);
}

static void tso_close(ts_db *db)
{
    if (db && ts_close(db) != TS_OK) die("ts_close: %s", ts_errmsg(NULL));
}

/* A new database with the empty users table; returns the time of the
 * insert of n rows in one transaction (ts_begin .. ts_commit). */
static double tso_bulk(ts_db *db, uint64_t n)
{
    json_error_t jerr;
    json_t *schema = json_loads(TS_SCHEMA, 0, &jerr);
    if (!schema) die("schema: %s", jerr.text);
    TSCK(db, ts_create_table(db, schema));
    json_decref(schema);
    double t0 = now();
    TSCK(db, ts_begin(db));
    for (uint64_t i = 0; i < n; i++) {
        json_t *r = record_of(i);
        TSCK(db, ts_insert(db, "users", r, NULL));
        json_decref(r);
    }
    TSCK(db, ts_commit(db));
    return now() - t0;
}

/* ---- SQLite ------------------------------------------------------------ */

typedef struct sqe {
    sqlite3      *c;
    sqlite3_stmt *ins, *get_pk, *get_email, *kv_set, *kv_get, *count;
} sqe;

static void sq_exec(sqlite3 *c, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(c, sql, NULL, NULL, &err) != SQLITE_OK) die("sqlite: %s: %s", sql, err);
}

static sqlite3_stmt *sq_prep(sqlite3 *c, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK)
        die("sqlite prepare %s: %s", sql, sqlite3_errmsg(c));
    return st;
}

static void sq_step_done(sqe *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) die("sqlite step: %s", sqlite3_errmsg(s->c));
    sqlite3_reset(st);
}

static void sq_sync(sqe *s, const char *sync)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s;", sync);
    sq_exec(s->c, sql);
}

static sqe *sq_open(const char *dir, const char *sync)
{
    sqe *s = calloc(1, sizeof *s);
    if (!s) die("out of memory");
    mkdir_or_die(dir);
    char *file = path_join(dir, "db.sqlite");
    if (sqlite3_open(file, &s->c) != SQLITE_OK) die("sqlite3_open %s", file);
    free(file);
    sq_exec(s->c, "PRAGMA journal_mode=WAL;");
    sq_sync(s, sync);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size=-%lld;", g_cache / 1024);
    sq_exec(s->c, sql);
    sq_exec(s->c, "CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, "
                  "email TEXT NOT NULL UNIQUE, age INTEGER);"
                  "CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;");
    s->ins = sq_prep(s->c, "INSERT INTO users(email, age) VALUES(?1, ?2)");
    s->get_pk = sq_prep(s->c, "SELECT id, email, age FROM users WHERE id = ?1");
    s->get_email = sq_prep(s->c, "SELECT id, email, age FROM users WHERE email = ?1");
    s->kv_set = sq_prep(s->c, "INSERT OR REPLACE INTO kv(k, v) VALUES(?1, ?2)");
    s->kv_get = sq_prep(s->c, "SELECT v FROM kv WHERE k = ?1");
    s->count = sq_prep(s->c, "SELECT count(*) FROM users");
    return s;
}

static void sq_close(sqe *s)
{
    if (!s) return;
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->get_pk);
    sqlite3_finalize(s->get_email);
    sqlite3_finalize(s->kv_set);
    sqlite3_finalize(s->kv_get);
    sqlite3_finalize(s->count);
    sqlite3_close(s->c);
    free(s);
}

static void sq_insert_row(sqe *s, uint64_t i)
{
    char email[EMAIL_CAP];
    email_of(i, email);
    sqlite3_bind_text(s->ins, 1, email, -1, SQLITE_STATIC);
    sqlite3_bind_int(s->ins, 2, age_of(i));
    sq_step_done(s, s->ins);
}

static double sq_bulk(sqe *s, uint64_t n)
{
    double t0 = now();
    sq_exec(s->c, "BEGIN");
    for (uint64_t i = 0; i < n; i++) sq_insert_row(s, i);
    sq_exec(s->c, "COMMIT");
    return now() - t0;
}

/* ---- the two databases and the operations ------------------------------------ */

typedef struct dbs {
    char    *tsdir, *sqdir;
    ts_db   *ts;
    sqe     *sq;
    uint64_t rows;       /* rows of the bulk insert: ids 1..rows */
} dbs;

enum { E_TS, E_SQ };

typedef struct ectx {
    dbs     *d;
    int      kind;
    uint64_t rng;
    uint64_t next;       /* inserts: next row number */
    uint64_t sink;
} ectx;

static void ectx_init(ectx *c, dbs *d, int kind, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->d = d;
    c->kind = kind;
    c->rng = seed;
    c->next = d->rows;
}

/* One insert in its own transaction. */
static int op_insert1(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    uint64_t i = c->next++;
    if (c->kind == E_TS) {
        json_t *r = record_of(i);
        TSCK(c->d->ts, ts_insert(c->d->ts, "users", r, NULL));
        json_decref(r);
    } else {
        sq_insert_row(c->d->sq, i);
    }
    return 1;
}

/* GET_BATCH gets of random existing rows by primary key, each its own call
 * (and so its own read transaction). */
static int op_get_pk(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    dbs *d = c->d;
    uint64_t sum = 0;
    for (int b = 0; b < GET_BATCH; b++) {
        json_int_t id = (json_int_t)(rng_next(&c->rng) % d->rows) + 1;
        if (c->kind == E_TS) {
            json_t *pk = json_integer(id), *row;
            TSCK(d->ts, ts_get(d->ts, "users", pk, &row));
            json_decref(pk);
            sum += strlen(json_string_value(json_object_get(row, "email"))) +
                   (uint64_t)json_integer_value(json_object_get(row, "age"));
            json_decref(row);
        } else {
            sqlite3_stmt *st = d->sq->get_pk;
            sqlite3_bind_int64(st, 1, id);
            if (sqlite3_step(st) != SQLITE_ROW) die("sqlite: no row %lld", (long long)id);
            sum += (uint64_t)sqlite3_column_bytes(st, 1) + (uint64_t)sqlite3_column_int(st, 2);
            sqlite3_reset(st);
        }
    }
    c->sink += sum;
    return GET_BATCH;
}

/* GET_BATCH gets by the unique field (SQLite only: tostore has no public
 * lookup by a unique field before the query API, issue 6). */
static int op_get_email(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    dbs *d = c->d;
    uint64_t sum = 0;
    char email[EMAIL_CAP];
    for (int b = 0; b < GET_BATCH; b++) {
        email_of(rng_next(&c->rng) % d->rows, email);
        sqlite3_stmt *st = d->sq->get_email;
        sqlite3_bind_text(st, 1, email, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) die("sqlite: no row with email %s", email);
        sum += (uint64_t)sqlite3_column_int64(st, 0) + (uint64_t)sqlite3_column_int(st, 2);
        sqlite3_reset(st);
    }
    c->sink += sum;
    return GET_BATCH;
}

#ifdef BENCH_HAVE_QUERY
/* tostore by the unique field through the query API (issue 6), as a
 * program would: a query per lookup, email = ?, limit 1. */
static int ts_get_email(ts_db *db, const char *email, json_t **row_new)
{
    json_t *v = json_string(email);
    ts_query *q = ts_limit(ts_where(ts_query_new(db, "users"), "email", "=", v), 1);
    json_decref(v);
    ts_result *r = NULL;
    int rc = ts_query_exec(q, &r);
    if (!rc) {
        const json_t *row = ts_result_row(r, 0);
        if (row) *row_new = json_incref((json_t *)row);
        else rc = TS_ERR_NOT_FOUND;
    }
    ts_result_free(r);
    ts_query_free(q);
    return rc;
}

static int op_ts_get_email(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    dbs *d = c->d;
    uint64_t sum = 0;
    char email[EMAIL_CAP];
    for (int b = 0; b < GET_BATCH; b++) {
        email_of(rng_next(&c->rng) % d->rows, email);
        json_t *row;
        TSCK(d->ts, ts_get_email(d->ts, email, &row));
        sum += (uint64_t)json_integer_value(json_object_get(row, "id")) +
               (uint64_t)json_integer_value(json_object_get(row, "age"));
        json_decref(row);
    }
    c->sink += sum;
    return GET_BATCH;
}
#endif

static void kv_set_one(dbs *d, int kind, uint64_t k, uint64_t v)
{
    char key[32], val[64];
    kv_key_of(k, key);
    kv_val_of(v, val);
    if (kind == E_TS) {
        json_t *jv = json_string(val);
        TSCK(d->ts, ts_kv_set(d->ts, key, jv, 0));
        json_decref(jv);
    } else {
        sqlite3_stmt *st = d->sq->kv_set;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
        sq_step_done(d->sq, st);
    }
}

/* One KV set of a random existing key (a new value), its own transaction. */
static int op_kv_set(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    kv_set_one(c->d, c->kind, rng_next(&c->rng) % g_kv_keys, c->next++);
    return 1;
}

/* GET_BATCH KV gets of random existing keys. */
static int op_kv_get(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    dbs *d = c->d;
    uint64_t sum = 0;
    char key[32];
    for (int b = 0; b < GET_BATCH; b++) {
        kv_key_of(rng_next(&c->rng) % g_kv_keys, key);
        if (c->kind == E_TS) {
            json_t *v;
            TSCK(d->ts, ts_kv_get(d->ts, key, 0, &v));
            sum += strlen(json_string_value(v));
            json_decref(v);
        } else {
            sqlite3_stmt *st = d->sq->kv_get;
            sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_ROW) die("sqlite: no kv key %s", key);
            sum += (uint64_t)sqlite3_column_bytes(st, 0);
            sqlite3_reset(st);
        }
    }
    c->sink += sum;
    return GET_BATCH;
}

/* Both engines hold the same rows (checked on a sample) and count. */
static void verify(dbs *d)
{
    char email[EMAIL_CAP];
    for (uint64_t s = 0; s < 1000; s++) {
        uint64_t i = mix64(s * 17 + 3) % d->rows;
        email_of(i, email);
        json_t *pk = json_integer((json_int_t)i + 1), *row;
        TSCK(d->ts, ts_get(d->ts, "users", pk, &row));
        json_decref(pk);
        const char *e = json_string_value(json_object_get(row, "email"));
        if (!e || strcmp(e, email) || json_integer_value(json_object_get(row, "age")) != age_of(i))
            die("tostore: row %llu differs", (unsigned long long)i + 1);
        json_decref(row);
        sqlite3_stmt *st = d->sq->get_pk;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)i + 1);
        if (sqlite3_step(st) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(st, 1), email) ||
            sqlite3_column_int(st, 2) != age_of(i))
            die("SQLite: row %llu differs", (unsigned long long)i + 1);
        sqlite3_reset(st);
    }
    int64_t n = 0;
    TSCK(d->ts, ts_count_rows(d->ts, "users", &n));
    if (sqlite3_step(d->sq->count) != SQLITE_ROW) die("sqlite count");
    int64_t m = sqlite3_column_int64(d->sq->count, 0);
    sqlite3_reset(d->sq->count);
    if ((uint64_t)n != d->rows || (uint64_t)m != d->rows)
        die("row counts: tostore %lld, SQLite %lld, expected %llu", (long long)n, (long long)m,
            (unsigned long long)d->rows);
    /* a duplicate email is refused by both */
    email_of(0, email);
    json_t *dup = json_pack("{s:s, s:i}", "email", email, "age", 1);
    int rc = ts_insert(d->ts, "users", dup, NULL);
    json_decref(dup);
    if (rc != TS_ERR_UNIQUE) die("tostore: duplicate email gave %d, not TS_ERR_UNIQUE", rc);
    sqlite3_bind_text(d->sq->ins, 1, email, -1, SQLITE_STATIC);
    sqlite3_bind_int(d->sq->ins, 2, 1);
    rc = sqlite3_step(d->sq->ins);
    sqlite3_reset(d->sq->ins);
    if (rc != SQLITE_CONSTRAINT) die("SQLite: duplicate email gave %d", rc);
}

/* ---- summary rows ------------------------------------------------------ */

static void fmt_num(char *buf, size_t n, double v, const char *unit)
{
    if (v >= 1e6) snprintf(buf, n, "%.2fM%s", v / 1e6, unit);
    else if (v >= 1e4) snprintf(buf, n, "%.0fk%s", v / 1e3, unit);
    else snprintf(buf, n, "%.0f%s", v, unit);
}

/* Print tostore/SQLite and add a summary row (goal: at least SQLite). */
static void ratio_row(const char *what, const eng *a, const eng *b, int nrounds, const char *unit)
{
    ratio x = ratio_of(a, b, nrounds);
    char label[96], value[40], ref[64], num[32], rs[40];
    snprintf(label, sizeof label, "%s / %s", a->name, b->name);
    print_ratio(label, x);
    fmt_num(value, sizeof value, median(a->rate, nrounds), unit);
    fmt_num(num, sizeof num, median(b->rate, nrounds), unit);
    snprintf(ref, sizeof ref, "SQLite %s", num);
    snprintf(rs, sizeof rs, "%.2fx [%.2f-%.2f]", x.med, x.lo, x.hi);
    add_row(what, value, ref, rs, ">= 1x", x.med >= 1.0 ? "PASS" : "MISS");
}

/* ---- the workloads --------------------------------------------------------- */

static void dbs_init(dbs *d, const char *tag, uint64_t rows)
{
    memset(d, 0, sizeof *d);
    char name[64];
    snprintf(name, sizeof name, "%s-tostore", tag);
    d->tsdir = path_join(g_root, name);
    snprintf(name, sizeof name, "%s-sqlite", tag);
    d->sqdir = path_join(g_root, name);
    d->rows = rows;
}

static void dbs_free(dbs *d)
{
    tso_close(d->ts);
    sq_close(d->sq);
    d->ts = NULL;
    d->sq = NULL;
    if (!getenv("BENCH_KEEP")) {
        rmrf(d->tsdir);
        rmrf(d->sqdir);
    }
    free(d->tsdir);
    free(d->sqdir);
}

static double build_ts(dbs *d, const char *durability)
{
    tso_close(d->ts);
    rmrf(d->tsdir);
    d->ts = tso_open(d->tsdir, durability);
    return tso_bulk(d->ts, d->rows);
}

static double build_sq(dbs *d, const char *sync)
{
    sq_close(d->sq);
    rmrf(d->sqdir);
    d->sq = sq_open(d->sqdir, sync);
    return sq_bulk(d->sq, d->rows);
}

/* b: one build per engine and round, order rotating. */
static void bench_bulk(dbs *d)
{
    int R = g_bulk_rounds;
    eng e[2] = { { "tostore ts_insert, 1 txn", NULL, NULL, 1, {0}, NULL },
                 { "SQLite INSERT, 1 txn", NULL, NULL, 1, {0}, NULL } };
    char title[200];
    snprintf(title, sizeof title, "b. insert %llu rows in one transaction into the empty table, "
             "rows/s (%d rounds, one fresh database per engine and round, order rotating)",
             (unsigned long long)d->rows, R);
    print_header(title, R);
    for (int r = 0; r < R; r++)
        for (int s = 0; s < 2; s++) {
            int j = (s + r) % 2;
            double t = j == 0 ? build_ts(d, "full") : build_sq(d, "FULL");
            e[j].rate[r] = (double)d->rows / t;
        }
    print_rates(e, 2, R, "rows/s");
    /* the share of the JSON records a tostore program builds */
    double t0 = now();
    for (uint64_t i = 0; i < d->rows; i++) json_decref(record_of(i));
    double tj = now() - t0;
    printf("  building the %llu json_t records alone: %.2f s (%.0f%% of tostore's median time)\n",
           (unsigned long long)d->rows, tj, tj * median(e[0].rate, R) / (double)d->rows * 100);
    ratio_row("b. insert rows, 1 transaction", &e[0], &e[1], R, "/s");
}

static void bench_gets(dbs *d)
{
    ectx c[3];
    ectx_init(&c[0], d, E_TS, 0x853c49e6748fea9bull);
    ectx_init(&c[1], d, E_SQ, 0x853c49e6748fea9bull);
    ectx_init(&c[2], d, E_SQ, 0x2545F4914F6CDD1Dull);
    eng e[2] = { { "tostore ts_get", op_get_pk, &c[0], 1, {0}, NULL },
                 { "SQLite SELECT by id", op_get_pk, &c[1], 1, {0}, NULL } };
    /* warm both caches */
    double el;
    for (int i = 0; i < 2; i++) run_eng(&e[i], 0.2, &el);
    char title[160];
    snprintf(title, sizeof title, "g1. point gets by primary key, %llu rows, gets/s",
             (unsigned long long)d->rows);
    rounds(title, e, 2, g_rounds, 0.5 * g_time, 0.05, "/s");
    ratio_row("g. point get by primary key", &e[0], &e[1], g_rounds, "/s");

    snprintf(title, sizeof title, "g2. point gets by the unique field (email), %llu rows, gets/s",
             (unsigned long long)d->rows);
#ifdef BENCH_HAVE_QUERY
    /* The query API exists: measure it, unless it fails on this table. */
    {
        char email[EMAIL_CAP];
        email_of(0, email);
        json_t *row = NULL;
        int rc = ts_get_email(d->ts, email, &row);
        if (rc == TS_OK && json_integer_value(json_object_get(row, "id")) == 1) {
            json_decref(row);
            ectx_init(&c[0], d, E_TS, 0x2545F4914F6CDD1Dull);
            eng q[2] = { { "tostore query email = ?", op_ts_get_email, &c[0], 1, {0}, NULL },
                         { "SQLite SELECT by email", op_get_email, &c[2], 1, {0}, NULL } };
            for (int i = 0; i < 2; i++) run_eng(&q[i], 0.2, &el);
            rounds(title, q, 2, g_rounds, 0.5 * g_time, 0.05, "/s");
            ratio_row("g. point get by unique field", &q[0], &q[1], g_rounds, "/s");
            return;
        }
        json_decref(row);
        printf("\n  tostore query by email failed (%d: %s): measuring SQLite alone\n", rc,
               ts_errmsg(d->ts));
    }
#endif
    eng u[1] = { { "SQLite SELECT by email", op_get_email, &c[2], 1, {0}, NULL } };
    run_eng(&u[0], 0.2, &el);
    rounds(title, u, 1, g_rounds, 0.5 * g_time, 0.05, "/s");
    printf("  tostore by unique field: " NA_UNIQUE " (no public lookup by a unique field yet)\n");
    char num[32], ref[64];
    fmt_num(num, sizeof num, median(u[0].rate, g_rounds), "/s");
    snprintf(ref, sizeof ref, "SQLite %s", num);
    add_row("g. point get by unique field", NA_UNIQUE, ref, "-", ">= 1x", "n/a");
}

static void bench_single(const char *mode, ectx *c)
{
    int full = !strcmp(mode, "full");
    eng e[2] = { { full ? "tostore ts_insert (full)" : "tostore ts_insert (normal)", op_insert1,
                   &c[0], 1, {0}, NULL },
                 { full ? "SQLite INSERT (FULL)" : "SQLite INSERT (NORMAL)", op_insert1, &c[1], 1,
                   {0}, NULL } };
    char title[160], what[64];
    snprintf(title, sizeof title, "s. single-insert transactions, durability %s, inserts/s", mode);
    uint64_t per_round = g_single / (uint64_t)g_rounds;
    if (per_round < 1) per_round = 1;
    rounds_ops(title, e, 2, g_rounds, per_round, full ? 4 : 2, "/s");
    snprintf(what, sizeof what, "s. single-insert txns, %s", mode);
    ratio_row(what, &e[0], &e[1], g_rounds, "/s");
}

static void kv_preload(dbs *d)
{
    double t0 = now();
    TSCK(d->ts, ts_begin(d->ts));
    for (uint64_t k = 0; k < g_kv_keys; k++) kv_set_one(d, E_TS, k, k);
    TSCK(d->ts, ts_commit(d->ts));
    double t1 = now();
    sq_exec(d->sq->c, "BEGIN");
    for (uint64_t k = 0; k < g_kv_keys; k++) kv_set_one(d, E_SQ, k, k);
    sq_exec(d->sq->c, "COMMIT");
    double t2 = now();
    int64_t n = 0;
    TSCK(d->ts, ts_kv_count(d->ts, 0, &n));
    if ((uint64_t)n != g_kv_keys) die("ts_kv_count: %lld, expected %llu", (long long)n,
                                      (unsigned long long)g_kv_keys);
    printf("\n  KV: %llu keys preloaded in one transaction: tostore %.2f s, SQLite %.2f s\n",
           (unsigned long long)g_kv_keys, t1 - t0, t2 - t1);
}

static void bench_kv_set(const char *mode, ectx *c)
{
    int full = !strcmp(mode, "full");
    eng e[2] = { { full ? "tostore ts_kv_set (full)" : "tostore ts_kv_set (normal)", op_kv_set,
                   &c[0], 1, {0}, NULL },
                 { full ? "SQLite REPLACE (FULL)" : "SQLite REPLACE (NORMAL)", op_kv_set, &c[1], 1,
                   {0}, NULL } };
    char title[160], what[64];
    snprintf(title, sizeof title, "k1. KV sets of existing keys (%llu keys), durability %s, sets/s",
             (unsigned long long)g_kv_keys, mode);
    uint64_t per_round = g_single / (uint64_t)g_rounds;
    if (per_round < 1) per_round = 1;
    rounds_ops(title, e, 2, g_rounds, per_round, full ? 4 : 2, "/s");
    snprintf(what, sizeof what, "k. KV set, %s", mode);
    ratio_row(what, &e[0], &e[1], g_rounds, "/s");
}

static void bench_kv_get(dbs *d)
{
    ectx c[2];
    ectx_init(&c[0], d, E_TS, 0x9E3779B97F4A7C15ull);
    ectx_init(&c[1], d, E_SQ, 0x9E3779B97F4A7C15ull);
    eng e[2] = { { "tostore ts_kv_get", op_kv_get, &c[0], 1, {0}, NULL },
                 { "SQLite SELECT v", op_kv_get, &c[1], 1, {0}, NULL } };
    double el;
    for (int i = 0; i < 2; i++) run_eng(&e[i], 0.1, &el);
    char title[160];
    snprintf(title, sizeof title, "k2. KV gets (%llu keys), gets/s", (unsigned long long)g_kv_keys);
    rounds(title, e, 2, g_rounds, 0.5 * g_time, 0.05, "/s");
    ratio_row("k. KV get", &e[0], &e[1], g_rounds, "/s");
}

/* Switch both engines to normal durability (tostore: reopen). */
static void to_normal(dbs *d)
{
    tso_close(d->ts);
    d->ts = tso_open(d->tsdir, "normal");
    sq_sync(d->sq, "NORMAL");
}

/* ---- profile mode ------------------------------------------------------------ */

static int profile_mode(const char *what, double secs)
{
    dbs d;
    dbs_init(&d, "profile", g_rows);
    if (!strcmp(what, "bulk")) {
        double t = build_ts(&d, "full");
        printf("bulk: %llu rows in one transaction in %.2f s (%.0f rows/s)\n",
               (unsigned long long)d.rows, t, (double)d.rows / t);
        dbs_free(&d);
        return 0;
    }
    static const char *const names[] = { "insert", "insertn", "get", "kvset", "kvsetn", "kvget",
                                         "getemail" };
    int w = -1;
    for (int i = 0; i < 7; i++) if (!strcmp(what, names[i])) w = i;
#ifndef BENCH_HAVE_QUERY
    if (w == 6) w = -1;
#endif
    if (w < 0) {
        fprintf(stderr, "profile: bulk|insert|insertn|get|kvset|kvsetn|kvget|getemail [seconds]\n");
        dbs_free(&d);
        return 2;
    }
    const char *mode = (w == 0 || w == 3) ? "full" : "normal";
    double tb = build_ts(&d, "normal");
    printf("built %llu rows in %.2f s\n", (unsigned long long)d.rows, tb);
    if (strcmp(mode, "normal")) {
        tso_close(d.ts);
        d.ts = tso_open(d.tsdir, mode);
    }
    if (w >= 3 && w <= 5) {
        TSCK(d.ts, ts_begin(d.ts));
        for (uint64_t k = 0; k < g_kv_keys; k++) kv_set_one(&d, E_TS, k, k);
        TSCK(d.ts, ts_commit(d.ts));
    }
    ectx c;
    ectx_init(&c, &d, E_TS, 12345);
    op_fn ops[7] = { op_insert1, op_insert1, op_get_pk, op_kv_set, op_kv_set, op_kv_get, NULL };
#ifdef BENCH_HAVE_QUERY
    ops[6] = op_ts_get_email;
#endif
    eng e = { what, ops[w], &c, 1, {0}, NULL };
    double el;
    uint64_t n = run_eng(&e, secs, &el);
    printf("%s (durability %s): %.0f ops/s (%.1f us each) over %.1f s\n", what, mode,
           (double)n / el, el / (double)n * 1e6, el);
    dbs_free(&d);
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

static uint64_t parse_u64(const char *what, const char *v)
{
    char *end;
    unsigned long long x = strtoull(v ? v : "", &end, 10);
    if (!v || !*v || *end || x == 0) die("%s: expected a positive integer, got '%s'", what, v ? v : "");
    return (uint64_t)x;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_tables [--rows N] [--single N] [--kv-keys N] [--rounds N] [--bulk-rounds N]\n"
            "                    [--time X] [--cache-mb N] [--only bgsk] [data-dir]\n"
            "       bench_tables profile bulk|insert|insertn|get|kvset|kvsetn|kvget|getemail [secs]\n"
            "env: BENCH_BIG=1 (1M rows), BENCH_ROWS, BENCH_SINGLE, BENCH_ROUNDS, BENCH_BULK_ROUNDS,\n"
            "     BENCH_TIME, BENCH_ONLY, BENCH_DIR, BENCH_KEEP=1\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bench = (bench_style){ "bench_tables", 30, 10, 50, { 34, 24, 22, 20, 6 } };
    const char *base = getenv("BENCH_DIR");
    const char *prof = NULL;
    double prof_secs = 5;
    g_big = getenv("BENCH_BIG") && atoi(getenv("BENCH_BIG")) > 0;
    if (g_big) {
        g_rows = 1000000;
        g_bulk_rounds = 2;
    }
    if (getenv("BENCH_ROWS") && *getenv("BENCH_ROWS")) g_rows = parse_u64("BENCH_ROWS", getenv("BENCH_ROWS"));
    if (getenv("BENCH_SINGLE") && *getenv("BENCH_SINGLE"))
        g_single = parse_u64("BENCH_SINGLE", getenv("BENCH_SINGLE"));
    if (getenv("BENCH_ROUNDS")) g_rounds = atoi(getenv("BENCH_ROUNDS"));
    if (getenv("BENCH_BULK_ROUNDS")) g_bulk_rounds = atoi(getenv("BENCH_BULK_ROUNDS"));
    if (getenv("BENCH_TIME")) g_time = atof(getenv("BENCH_TIME"));
    if (getenv("BENCH_ONLY") && *getenv("BENCH_ONLY")) g_only = getenv("BENCH_ONLY");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "profile")) {
            prof = v ? v : "";
            if (i + 2 < argc) prof_secs = atof(argv[i + 2]);
            break;
        } else if (!strcmp(a, "--rows")) g_rows = parse_u64(a, v), i++;
        else if (!strcmp(a, "--single")) g_single = parse_u64(a, v), i++;
        else if (!strcmp(a, "--kv-keys")) g_kv_keys = parse_u64(a, v), i++;
        else if (!strcmp(a, "--rounds")) g_rounds = (int)parse_u64(a, v), i++;
        else if (!strcmp(a, "--bulk-rounds")) g_bulk_rounds = (int)parse_u64(a, v), i++;
        else if (!strcmp(a, "--time")) { if (!v) usage(); g_time = atof(v); i++; }
        else if (!strcmp(a, "--cache-mb")) g_cache = (long long)parse_u64(a, v) << 20, i++;
        else if (!strcmp(a, "--only")) { if (!v) usage(); g_only = v; i++; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help") || a[0] == '-') usage();
        else base = a;
    }
    if (g_rounds < 1) g_rounds = 1;
    if (g_rounds > MAXR) g_rounds = MAXR;
    if (g_bulk_rounds < 1) g_bulk_rounds = 1;
    if (g_bulk_rounds > MAXR) g_bulk_rounds = MAXR;
    if (g_time <= 0) g_time = 1.0;
    if (!base || !*base) base = BENCH_DEFAULT_DIR;
    mkdir_or_die(base);
    char run[64];
    snprintf(run, sizeof run, "tables-%d", (int)getpid());
    char *root = path_join(base, run);
    mkdir_or_die(root);
    g_root = root;
    if (prof) {
        int rc = profile_mode(prof, prof_secs);
        if (!getenv("BENCH_KEEP")) rmrf(root);
        free(root);
        return rc;
    }

    struct utsname u;
    uname(&u);
    time_t tnow = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&tnow));
    printf("bench_tables: tostore %s, SQLite %s (WAL, prepared statements)\n", ts_version(),
           sqlite3_libversion());
    printf("date %s; %s %s; %ld cores; data in %s\n", date, u.sysname, u.release,
           sysconf(_SC_NPROCESSORS_ONLN), root);
    printf("table users(id sequential pk, email text unique, age integer); %llu rows in the bulk insert%s; "
           "%llu single-insert transactions and KV sets per engine and durability; %llu KV keys; "
           "cache %lld MiB each (tostore cacheBytes, SQLite cache_size); rounds %d (bulk %d), "
           "time x%.2f; workloads %s\n",
           (unsigned long long)g_rows, g_big ? " (BENCH_BIG)" : "", (unsigned long long)g_single,
           (unsigned long long)g_kv_keys, g_cache >> 20, g_rounds, g_bulk_rounds, g_time, g_only);
    fflush(stdout);
    double t0 = now();
    dbs d;
    dbs_init(&d, "main", g_rows);
    if (wants('b')) {
        bench_bulk(&d);
    } else {
        double a = build_ts(&d, "full"), b = build_sq(&d, "FULL");
        printf("\n  built the %llu-row tables: tostore %.2f s, SQLite %.2f s\n",
               (unsigned long long)d.rows, a, b);
    }
    verify(&d);
    printf("  both tables checked: the same rows (1000 sampled), counts, and a duplicate email "
           "refused by each\n");
    if (wants('g')) bench_gets(&d);
    ectx ins[2], kv[2];
    ectx_init(&ins[0], &d, E_TS, 1);
    ectx_init(&ins[1], &d, E_SQ, 1);
    ectx_init(&kv[0], &d, E_TS, 0xC0FFEEull);
    ectx_init(&kv[1], &d, E_SQ, 0xC0FFEEull);
    kv[0].next = kv[1].next = g_kv_keys;
    if (wants('s')) bench_single("full", ins);
    if (wants('k')) {
        kv_preload(&d);
        bench_kv_set("full", kv);
    }
    if (wants('s') || wants('k')) {
        to_normal(&d);
        printf("\n  (both engines switched to normal durability: tostore reopened with "
               "\"durability\": \"normal\", SQLite synchronous=NORMAL)\n");
        if (wants('s')) bench_single("normal", ins);
        if (wants('k')) {
            bench_kv_set("normal", kv);
            bench_kv_get(&d);
        }
    }
    dbs_free(&d);
    print_summary();
    printf("total time %.0f s\n", now() - t0);
    if (!getenv("BENCH_KEEP")) rmrf(root);
    free(root);
    return 0;
}
