/*
 * bench_query: tostore's query API against SQLite (WAL, prepared
 * statements, the same indexes), in the same run (issue 6, "Tests and
 * benchmark").
 *
 * Both engines hold the same two tables, loaded in one transaction each
 * through the public API (ts_begin, ts_insert, ts_commit vs BEGIN, INSERT,
 * COMMIT):
 *   users(id sequential pk, email text unique not null, age integer
 *         indexed (createIndex / CREATE INDEX), city text, score integer):
 *         N rows (--rows; 200K, 1M with BENCH_BIG=1), random unique emails,
 *         ages 0-99 (so ~N/100 rows per age), 16 cities, scores 0-999;
 *   posts(id sequential pk, author integer -> users.id (a foreign key:
 *         tostore indexes it; SQLite: CREATE INDEX), title text): N/2 rows,
 *         random authors.
 *
 * Workloads (--only letters; one operation = one query with a random
 * parameter, built as a program would: tostore ts_query_new + builders +
 * ts_query_exec + reading every row + ts_result_free + ts_query_free;
 * SQLite one prepared statement, bound, stepped, every column read):
 *   e  equality on the indexed field: age = v LIMIT 50
 *   r  range on the indexed field: age BETWEEN a AND a+9 LIMIT 100 (~10% of
 *      the rows match).  Without ORDER BY tostore's contract is primary-key
 *      order (it sorts the matches); SQLite returns index order (the ratio
 *      is against that, the query as written); SQLite asked for tostore's
 *      rows (... ORDER BY id LIMIT 100) runs in the same rounds for
 *      reference.  Then the same with ORDER BY age (both read the index in
 *      order, same rows)
 *   o  ORDER BY age LIMIT 20 at offset 0 (SQLite: ORDER BY age, id; tostore
 *      breaks ties by primary key, so the rows are the same)
 *   c  page 1000 of ORDER BY age LIMIT 20 through a cursor: tostore
 *      ts_cursor(next cursor of page 999; tokens got by walking the pages
 *      once before timing); SQLite keyset pagination WHERE age > ?a OR (age =
 *      ?a AND id > ?id) ORDER BY age, id LIMIT 20, as the issue asks; two
 *      more SQLite forms run in the same rounds for reference: a row value,
 *      WHERE (age, id) > (?a, ?id) (SQLite 3.40 plans it like the OR form:
 *      a seek on age alone, then a filter), and two seeks, (age = ?a AND id
 *      > ?id ORDER BY id LIMIT 20) UNION ALL (age > ?a ORDER BY age, id
 *      LIMIT 20) LIMIT 20, which costs the same at any depth.
 *      For reference, the same page by OFFSET 19980 (both engines)
 *   n  COUNT with a condition: ts_query_count(age < v) vs SELECT count(*)
 *      ... WHERE age < ?, v in 1..99
 *   j  join: users (age = v) joined to posts on posts.author = users.id,
 *      LIMIT 50; then the same written from posts (query on posts, join
 *      users, condition on users.age): tostore plans on the queried table
 *      only, SQLite reorders the join
 *   l  point lookups by primary key (ts_get vs SELECT ... WHERE id = ?), 100
 *      per operation, at 10K rows, N rows and 1M rows (users tables of those
 *      sizes; 10M too with BENCH_HUGE=1, loaded in transactions of 200K
 *      rows, several minutes more): ops/s and the mean latency per lookup
 * Before timing, every workload is run once with fixed parameters on both
 * engines and the rows compared (ids; the join as a multiset), and the plan
 * of each tostore query (ts_query_explain: plan, index, sorted,
 * rowsExamined, pagesTouched) and SQLite's EXPLAIN QUERY PLAN are printed.
 * Engines interleaved in slices, order rotating; a ratio is the median of
 * the per-round ratios tostore/SQLite (bench_common).
 *
 * Usage: bench_query [options] [data-dir]
 *   --rows N        users rows (BENCH_ROWS; 200000, BENCH_BIG=1: 1000000), >= 20020
 *   --rounds N      rounds (BENCH_ROUNDS; 5)
 *   --time X        seconds-per-engine multiplier (BENCH_TIME; 1.0)
 *   --cache-mb N    tostore cacheBytes and SQLite cache_size (64)
 *   --only LETTERS  a subset of e r o c n j l (BENCH_ONLY)
 * Environment: BENCH_DIR, BENCH_KEEP=1, BENCH_HUGE=1 (lookups at 10M rows).
 *        bench_query profile eq|range|rangeo|top|cursor|offset|count|join|joinp|get [secs]
 * The profile mode builds the tostore tables alone (--rows) and runs one
 * tostore workload for secs (for perf).  Results: docs/benchmarks.md.
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
#define PAGE 20
#define DEEP_PAGE 1000      /* the cursor page (1-based) */
#define RANGE_W 10          /* ages per range */

static const char *g_root;
static int       g_rounds = 5;
static double    g_time = 1.0;
static int       g_big, g_huge;
static uint64_t  g_rows = 200000;
static long long g_cache = 64ll << 20;
static const char *g_only = "erocnjl";

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

static const char *const CITIES[16] = {
    "Amsterdam", "Berlin", "Cairo", "Denver", "Edinburgh", "Florence", "Geneva", "Hanoi",
    "Istanbul", "Jakarta", "Kyoto", "Lima", "Madrid", "Nairobi", "Oslo", "Paris" };

/* users row i (0-based; id i + 1) */
static void email_of(uint64_t i, char *buf)
{
    snprintf(buf, EMAIL_CAP, "u%016llx@example.com", (unsigned long long)mix64(i ^ SEED));
}
static int age_of(uint64_t i) { return (int)(mix64(i * 31 + 7) % 100); }
static const char *city_of(uint64_t i) { return CITIES[mix64(i * 17 + 1) % 16]; }
static int score_of(uint64_t i) { return (int)(mix64(i * 7 + 3) % 1000); }
/* posts row k (id k + 1) of a table of `users` users */
static int64_t author_of(uint64_t k, uint64_t users) { return (int64_t)(mix64(k * 13 + 5) % users) + 1; }
static void title_of(uint64_t k, char *buf) { snprintf(buf, 48, "post %llu", (unsigned long long)k); }

/* ---- tostore ------------------------------------------------------------- */

static const char *const TS_USERS =
    "{\"name\": \"users\", \"fields\": ["
    "{\"name\": \"email\", \"type\": \"text\", \"unique\": true, \"nullable\": false},"
    "{\"name\": \"age\", \"type\": \"integer\", \"createIndex\": true},"
    "{\"name\": \"city\", \"type\": \"text\"},"
    "{\"name\": \"score\", \"type\": \"integer\"}]}";
static const char *const TS_POSTS =
    "{\"name\": \"posts\", \"fields\": ["
    "{\"name\": \"author\", \"type\": \"integer\", \"nullable\": false},"
    "{\"name\": \"title\", \"type\": \"text\"}],"
    "\"foreignKeys\": [{\"fields\": [\"author\"], \"referencedTable\": \"users\","
    " \"referencedFields\": [\"id\"]}]}";

static ts_db *tso_open(const char *dir) { return bench_open_db(dir, "normal", g_cache, NULL); }

static void tso_create(ts_db *db, const char *schema_text)
{
    json_error_t jerr;
    json_t *schema = json_loads(schema_text, 0, &jerr);
    if (!schema) die("schema: %s", jerr.text);
    TSCK(db, ts_create_table(db, schema));
    json_decref(schema);
}

/* users over this many rows are loaded in transactions of LOAD_BATCH rows
 * (both engines): one 10M-row transaction with a 64 MiB cache made
 * tostore's log grow past 20 GB before it was stopped (Part 4 of
 * docs/benchmarks.md) */
#define LOAD_ONE_TXN_MAX 2000000ull
#define LOAD_BATCH 200000ull

static int batch_end(uint64_t i, uint64_t n)
{
    return n > LOAD_ONE_TXN_MAX && (i + 1) % LOAD_BATCH == 0 && i + 1 < n;
}

/* users (n rows) and posts (np rows), one transaction each (or batches) */
static void tso_load(ts_db *db, uint64_t n, uint64_t np)
{
    tso_create(db, TS_USERS);
    TSCK(db, ts_begin(db));
    for (uint64_t i = 0; i < n; i++) {
        char email[EMAIL_CAP];
        email_of(i, email);
        json_t *r = json_pack("{s:s, s:i, s:s, s:i}", "email", email, "age", age_of(i), "city",
                              city_of(i), "score", score_of(i));
        if (!r) die("json_pack");
        TSCK(db, ts_insert(db, "users", r, NULL));
        json_decref(r);
        if (batch_end(i, n)) {
            TSCK(db, ts_commit(db));
            TSCK(db, ts_begin(db));
        }
    }
    TSCK(db, ts_commit(db));
    if (!np) return;
    tso_create(db, TS_POSTS);
    TSCK(db, ts_begin(db));
    for (uint64_t k = 0; k < np; k++) {
        char title[48];
        title_of(k, title);
        json_t *r = json_pack("{s:I, s:s}", "author", (json_int_t)author_of(k, n), "title", title);
        if (!r) die("json_pack");
        TSCK(db, ts_insert(db, "posts", r, NULL));
        json_decref(r);
    }
    TSCK(db, ts_commit(db));
}

/* ---- SQLite ------------------------------------------------------------ */

enum { Q_EQ, Q_RANGE, Q_RANGEO, Q_TOP, Q_KEYSET, Q_OFFSET, Q_COUNT, Q_JOIN, Q_JOINP, Q_GET, Q_RANGEID, Q_ROWVAL, Q_UNION, Q_N };

static const char *const SQ_SQL[Q_N] = {
    "SELECT id, email, age, city, score FROM users WHERE age = ?1 LIMIT 50",
    "SELECT id, email, age, city, score FROM users WHERE age BETWEEN ?1 AND ?2 LIMIT 100",
    "SELECT id, email, age, city, score FROM users WHERE age BETWEEN ?1 AND ?2 ORDER BY age, id LIMIT 100",
    "SELECT id, email, age, city, score FROM users ORDER BY age, id LIMIT 20",
    "SELECT id, email, age, city, score FROM users WHERE age > ?1 OR (age = ?1 AND id > ?2) "
    "ORDER BY age, id LIMIT 20",
    "SELECT id, email, age, city, score FROM users ORDER BY age, id LIMIT 20 OFFSET ?1",
    "SELECT count(*) FROM users WHERE age < ?1",
    "SELECT u.id, u.email, u.age, u.city, u.score, p.id, p.author, p.title FROM users u "
    "JOIN posts p ON p.author = u.id WHERE u.age = ?1 LIMIT 50",
    "SELECT p.id, p.author, p.title, u.id, u.email, u.age, u.city, u.score FROM posts p "
    "JOIN users u ON u.id = p.author WHERE u.age = ?1 LIMIT 50",
    "SELECT id, email, age, city, score FROM users WHERE id = ?1",
    "SELECT id, email, age, city, score FROM users WHERE age BETWEEN ?1 AND ?2 ORDER BY id LIMIT 100",
    "SELECT id, email, age, city, score FROM users WHERE (age, id) > (?1, ?2) ORDER BY age, id LIMIT 20",
    "SELECT * FROM (SELECT id, email, age, city, score FROM users WHERE age = ?1 AND id > ?2 ORDER BY id "
    "LIMIT 20) UNION ALL SELECT * FROM (SELECT id, email, age, city, score FROM users WHERE age > ?1 "
    "ORDER BY age, id LIMIT 20) LIMIT 20",
};

typedef struct sqe {
    sqlite3      *c;
    sqlite3_stmt *st[Q_N];
    sqlite3_stmt *ins_u, *ins_p;
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

static sqe *sq_open(const char *dir, int with_posts)
{
    sqe *s = calloc(1, sizeof *s);
    if (!s) die("out of memory");
    mkdir_or_die(dir);
    char *file = path_join(dir, "db.sqlite");
    if (sqlite3_open(file, &s->c) != SQLITE_OK) die("sqlite3_open %s", file);
    free(file);
    sq_exec(s->c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size=-%lld;", g_cache / 1024);
    sq_exec(s->c, sql);
    sq_exec(s->c, "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, "
                  "age INTEGER, city TEXT, score INTEGER);"
                  "CREATE INDEX idx_age ON users(age);"
                  "CREATE TABLE posts(id INTEGER PRIMARY KEY, author INTEGER NOT NULL "
                  "REFERENCES users(id), title TEXT);"
                  "CREATE INDEX fk_author ON posts(author);");
    s->ins_u = sq_prep(s->c, "INSERT INTO users(email, age, city, score) VALUES(?1, ?2, ?3, ?4)");
    s->ins_p = sq_prep(s->c, "INSERT INTO posts(author, title) VALUES(?1, ?2)");
    (void)with_posts;
    for (int i = 0; i < Q_N; i++) s->st[i] = sq_prep(s->c, SQ_SQL[i]);
    return s;
}

static void sq_close(sqe *s)
{
    if (!s) return;
    for (int i = 0; i < Q_N; i++) sqlite3_finalize(s->st[i]);
    sqlite3_finalize(s->ins_u);
    sqlite3_finalize(s->ins_p);
    sqlite3_close(s->c);
    free(s);
}

static void sq_step_done(sqe *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) die("sqlite step: %s", sqlite3_errmsg(s->c));
    sqlite3_reset(st);
}

static void sq_load(sqe *s, uint64_t n, uint64_t np)
{
    sq_exec(s->c, "BEGIN");
    for (uint64_t i = 0; i < n; i++) {
        char email[EMAIL_CAP];
        email_of(i, email);
        sqlite3_bind_text(s->ins_u, 1, email, -1, SQLITE_STATIC);
        sqlite3_bind_int(s->ins_u, 2, age_of(i));
        sqlite3_bind_text(s->ins_u, 3, city_of(i), -1, SQLITE_STATIC);
        sqlite3_bind_int(s->ins_u, 4, score_of(i));
        sq_step_done(s, s->ins_u);
        if (batch_end(i, n)) sq_exec(s->c, "COMMIT; BEGIN");
    }
    sq_exec(s->c, "COMMIT");
    sq_exec(s->c, "BEGIN");
    for (uint64_t k = 0; k < np; k++) {
        char title[48];
        title_of(k, title);
        sqlite3_bind_int64(s->ins_p, 1, author_of(k, n));
        sqlite3_bind_text(s->ins_p, 2, title, -1, SQLITE_STATIC);
        sq_step_done(s, s->ins_p);
    }
    sq_exec(s->c, "COMMIT");
    sq_exec(s->c, "ANALYZE");
}

/* ---- the two databases ------------------------------------------------------- */

typedef struct dbs {
    char    *tsdir, *sqdir;
    ts_db   *ts;
    sqe     *sq;
    uint64_t rows, posts;
    /* the cursor workload: the token of page DEEP_PAGE - 1 (tostore) and
     * its last row (SQLite keyset) */
    char    *token;
    int      last_age;
    int64_t  last_id;
} dbs;

static void dbs_init(dbs *d, const char *tag, uint64_t rows, uint64_t posts)
{
    memset(d, 0, sizeof *d);
    char name[64];
    snprintf(name, sizeof name, "%s-tostore", tag);
    d->tsdir = path_join(g_root, name);
    snprintf(name, sizeof name, "%s-sqlite", tag);
    d->sqdir = path_join(g_root, name);
    d->rows = rows;
    d->posts = posts;
}

static void dbs_free(dbs *d)
{
    if (d->ts && ts_close(d->ts) != TS_OK) die("ts_close: %s", ts_errmsg(NULL));
    sq_close(d->sq);
    d->ts = NULL;
    d->sq = NULL;
    if (!getenv("BENCH_KEEP")) {
        rmrf(d->tsdir);
        rmrf(d->sqdir);
    }
    free(d->tsdir);
    free(d->sqdir);
    free(d->token);
    d->token = NULL;
}

static void dbs_build(dbs *d, int ts_only)
{
    rmrf(d->tsdir);
    rmrf(d->sqdir);
    double t0 = now();
    d->ts = tso_open(d->tsdir);
    tso_load(d->ts, d->rows, d->posts);
    double t1 = now();
    if (ts_only) {
        printf("  loaded %llu users + %llu posts: tostore %.1f s\n", (unsigned long long)d->rows,
               (unsigned long long)d->posts, t1 - t0);
        return;
    }
    d->sq = sq_open(d->sqdir, d->posts > 0);
    sq_load(d->sq, d->rows, d->posts);
    double t2 = now();
    printf("  loaded %llu users + %llu posts, %s: tostore %.1f s, SQLite %.1f s (with ANALYZE)\n",
           (unsigned long long)d->rows, (unsigned long long)d->posts,
           d->rows > LOAD_ONE_TXN_MAX ? "transactions of 200K rows" : "one transaction per table",
           t1 - t0, t2 - t1);
    fflush(stdout);
}

/* ---- the queries ----------------------------------------------------------- */

/* tostore query of workload w with parameters a, b (NULL for Q_GET) */
static ts_query *ts_q(dbs *d, int w, int64_t a, int64_t b)
{
    ts_query *q = ts_query_new(d->ts, w == Q_JOINP ? "posts" : "users");
    json_t *v = json_integer(a);
    switch (w) {
    case Q_EQ: ts_limit(ts_where(q, "age", "=", v), 50); break;
    case Q_RANGE: case Q_RANGEO: {
        json_t *r = json_pack("[I, I]", (json_int_t)a, (json_int_t)b);
        ts_limit(ts_where(q, "age", "BETWEEN", r), 100);
        if (w == Q_RANGEO) ts_order_by(q, "age", 0);
        json_decref(r);
        break;
    }
    case Q_TOP: ts_limit(ts_order_by(q, "age", 0), PAGE); break;
    case Q_KEYSET: ts_cursor(ts_limit(ts_order_by(q, "age", 0), PAGE), d->token); break;
    case Q_OFFSET: ts_offset(ts_limit(ts_order_by(q, "age", 0), PAGE), a); break;
    case Q_COUNT: ts_where(q, "age", "<", v); break;
    case Q_JOIN:
        ts_limit(ts_join(ts_where(q, "age", "=", v), "posts", "users.id", "=", "posts.author"), 50);
        break;
    case Q_JOINP:
        ts_limit(ts_where(ts_join(q, "users", "posts.author", "=", "users.id"), "users.age", "=", v), 50);
        break;
    default: die("ts_q %d", w);
    }
    json_decref(v);
    return q;
}

/* a cheap use of every field of a row */
static uint64_t row_sum(const json_t *row)
{
    uint64_t s = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)row, k, v) {
        if (json_is_integer(v)) s += (uint64_t)json_integer_value(v);
        else if (json_is_string(v)) s += json_string_length(v);
    }
    return s;
}

/* run a tostore query, read every row; returns the rows (ids into ids[] when given) */
static size_t ts_run(dbs *d, int w, int64_t a, int64_t b, uint64_t *sum, int64_t *ids, size_t cap)
{
    ts_query *q = ts_q(d, w, a, b);
    size_t n = 0;
    if (w == Q_COUNT) {
        int64_t c = 0;
        TSCK(d->ts, ts_query_count(q, &c));
        *sum += (uint64_t)c;
        if (ids && cap) ids[0] = c;
        n = 1;
    } else {
        ts_result *r = NULL;
        TSCK(d->ts, ts_query_exec(q, &r));
        n = ts_result_count(r);
        for (size_t i = 0; i < n; i++) {
            const json_t *row = ts_result_row(r, i);
            *sum += row_sum(row);
            if (ids && i < cap) {
                /* the join from users: the post's id is "posts.id" */
                const json_t *id = w == Q_JOIN ? json_object_get(row, "posts.id") : json_object_get(row, "id");
                ids[i] = json_integer_value(id);
            }
        }
        ts_result_free(r);
    }
    ts_query_free(q);
    return n;
}

static size_t sq_run(dbs *d, int w, int64_t a, int64_t b, uint64_t *sum, int64_t *ids, size_t cap)
{
    sqlite3_stmt *st = d->sq->st[w];
    switch (w) {
    case Q_RANGE: case Q_RANGEO: case Q_RANGEID:
        sqlite3_bind_int64(st, 1, a);
        sqlite3_bind_int64(st, 2, b);
        break;
    case Q_KEYSET: case Q_ROWVAL: case Q_UNION:
        sqlite3_bind_int(st, 1, d->last_age);
        sqlite3_bind_int64(st, 2, d->last_id);
        break;
    case Q_TOP: break;
    default: sqlite3_bind_int64(st, 1, a);
    }
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int nc = sqlite3_column_count(st);
        for (int c = 0; c < nc; c++) {
            if (sqlite3_column_type(st, c) == SQLITE_INTEGER) *sum += (uint64_t)sqlite3_column_int64(st, c);
            else *sum += (uint64_t)sqlite3_column_bytes(st, c);
        }
        if (ids && n < cap) ids[n] = sqlite3_column_int64(st, w == Q_JOIN ? 5 : 0);
        n++;
    }
    if (rc != SQLITE_DONE) die("sqlite step: %s", sqlite3_errmsg(d->sq->c));
    sqlite3_reset(st);
    return n;
}

/* ---- the operations ---------------------------------------------------------- */

enum { E_TS, E_SQ };

typedef struct ectx {
    dbs     *d;
    int      kind, w;
    uint64_t rng;
    uint64_t sink;
} ectx;

static void params(int w, uint64_t *rng, int64_t *a, int64_t *b)
{
    uint64_t x = rng_next(rng);
    *b = 0;
    switch (w) {
    case Q_RANGE: case Q_RANGEO: case Q_RANGEID: *a = (int64_t)(x % (101 - RANGE_W)); *b = *a + RANGE_W - 1; break;
    case Q_COUNT: *a = 1 + (int64_t)(x % 99); break;
    case Q_OFFSET: *a = (int64_t)(DEEP_PAGE - 1) * PAGE; break;
    default: *a = (int64_t)(x % 100);
    }
}

static int op_query(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    int64_t a, b;
    params(c->w, &c->rng, &a, &b);
    if (c->kind == E_TS) ts_run(c->d, c->w, a, b, &c->sink, NULL, 0);
    else sq_run(c->d, c->w, a, b, &c->sink, NULL, 0);
    return 1;
}

/* GET_BATCH gets of random rows by primary key, each its own call */
static int op_get(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    dbs *d = c->d;
    uint64_t sum = 0;
    for (int k = 0; k < GET_BATCH; k++) {
        json_int_t id = (json_int_t)(rng_next(&c->rng) % d->rows) + 1;
        if (c->kind == E_TS) {
            json_t *pk = json_integer(id), *row;
            TSCK(d->ts, ts_get(d->ts, "users", pk, &row));
            json_decref(pk);
            sum += row_sum(row);
            json_decref(row);
        } else {
            sqlite3_stmt *st = d->sq->st[Q_GET];
            sqlite3_bind_int64(st, 1, id);
            if (sqlite3_step(st) != SQLITE_ROW) die("sqlite: no row %lld", (long long)id);
            for (int col = 0; col < 5; col++)
                sum += sqlite3_column_type(st, col) == SQLITE_INTEGER ? (uint64_t)sqlite3_column_int64(st, col)
                                                                      : (uint64_t)sqlite3_column_bytes(st, col);
            sqlite3_reset(st);
        }
    }
    c->sink += sum;
    return GET_BATCH;
}

/* ---- plans, checks ------------------------------------------------------------ */

/* The plan of tostore's query (ts_query_explain, run once) and SQLite's
 * EXPLAIN QUERY PLAN (Q_RANGEID, Q_ROWVAL, Q_UNION: SQLite only). */
static void print_plans(dbs *d, int w, int64_t a, int64_t b)
{
    if (w != Q_RANGEID && w != Q_ROWVAL && w != Q_UNION) {
        ts_query *q = ts_q(d, w, a, b);
        json_t *p = NULL;
        int rc = ts_query_explain(q, &p);
        if (rc == TS_OK) {
            const json_t *ix = json_object_get(p, "index");
            printf("  tostore plan: %s%s%s, sorted %s, rowsExamined %lld, pagesTouched %lld  (%s)\n",
                   json_string_value(json_object_get(p, "plan")), ix ? " on " : "",
                   ix ? json_string_value(ix) : "", json_is_true(json_object_get(p, "sorted")) ? "yes" : "no",
                   (long long)json_integer_value(json_object_get(p, "rowsExamined")),
                   (long long)json_integer_value(json_object_get(p, "pagesTouched")),
                   json_string_value(json_object_get(p, "description")));
            json_decref(p);
        } else {
            printf("  tostore plan: ts_query_explain failed (%d: %s)\n", rc, ts_errmsg(d->ts));
        }
        ts_query_free(q);
    }
    char sql[600];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", SQ_SQL[w]);
    sqlite3_stmt *st = sq_prep(d->sq->c, sql);
    printf("  SQLite plan:  ");
    int first = 1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        printf("%s%s", first ? "" : "; ", (const char *)sqlite3_column_text(st, 3));
        first = 0;
    }
    printf("\n");
    sqlite3_finalize(st);
    fflush(stdout);
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Both engines give the same rows for parameters a, b (ids in order; the
 * join as a multiset of post ids; Q_RANGE: tostore's rows are the first
 * 100 matches by id, SQLite's 100 matches in index order, so tostore's are
 * compared with SQLite's ORDER BY id, Q_RANGEID). */
static void check_same(dbs *d, int w, int64_t a, int64_t b)
{
    enum { CAP = 128 };
    int64_t x[CAP], y[CAP];
    uint64_t s = 0;
    size_t n = ts_run(d, w, a, b, &s, x, CAP), m = sq_run(d, w == Q_RANGE ? Q_RANGEID : w, a, b, &s, y, CAP);
    if (n != m) die("check %d (%lld, %lld): tostore %zu rows, SQLite %zu", w, (long long)a, (long long)b, n, m);
    if (n > CAP) n = CAP;
    if (w == Q_JOIN || w == Q_JOINP) {
        if (w == Q_JOINP) return;   /* LIMIT without ORDER BY over another join order */
        qsort(x, n, sizeof *x, cmp_i64);
        qsort(y, n, sizeof *y, cmp_i64);
    }
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            die("check %d (%lld, %lld): row %zu: tostore id %lld, SQLite id %lld", w, (long long)a,
                (long long)b, i, (long long)x[i], (long long)y[i]);
}

/* Walk the pages of ORDER BY age LIMIT 20 with next cursors up to page
 * DEEP_PAGE - 1: its next cursor is d->token; SQLite's keyset bound is its
 * last row. */
static void walk_cursor(dbs *d)
{
    double t0 = now();
    char *tok = NULL;
    for (int page = 1; page < DEEP_PAGE; page++) {
        ts_query *q = ts_limit(ts_order_by(ts_query_new(d->ts, "users"), "age", 0), PAGE);
        if (tok) ts_cursor(q, tok);
        ts_result *r = NULL;
        TSCK(d->ts, ts_query_exec(q, &r));
        if (ts_result_count(r) != PAGE) die("cursor walk: page %d has %zu rows", page, ts_result_count(r));
        const char *next = ts_result_next_cursor(r);
        if (!next) die("cursor walk: no next cursor after page %d", page);
        free(tok);
        tok = strdup(next);
        ts_result_free(r);
        ts_query_free(q);
    }
    d->token = tok;
    double t1 = now();
    sqlite3_stmt *st = sq_prep(d->sq->c, "SELECT age, id FROM users ORDER BY age, id LIMIT 1 OFFSET ?1");
    sqlite3_bind_int64(st, 1, (int64_t)(DEEP_PAGE - 1) * PAGE - 1);
    if (sqlite3_step(st) != SQLITE_ROW) die("sqlite: no row at page %d", DEEP_PAGE - 1);
    d->last_age = sqlite3_column_int(st, 0);
    d->last_id = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    printf("  cursor: walked pages 1-%d with next cursors (tostore, %.2f s); page %d's last row: "
           "age %d, id %lld (SQLite's keyset bound)\n", DEEP_PAGE - 1, t1 - t0, DEEP_PAGE - 1,
           d->last_age, (long long)d->last_id);
}

/* ---- summary rows ------------------------------------------------------ */

static void fmt_num(char *buf, size_t n, double v, const char *unit)
{
    if (v >= 1e6) snprintf(buf, n, "%.2fM%s", v / 1e6, unit);
    else if (v >= 1e4) snprintf(buf, n, "%.0fk%s", v / 1e3, unit);
    else if (v >= 10) snprintf(buf, n, "%.0f%s", v, unit);
    else snprintf(buf, n, "%.2f%s", v, unit);   /* COUNT, r1 at 1M: under 1/s */
}

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

static void bench_one(dbs *d, int w, const char *key, const char *title, const char *tsname,
                      const char *sqname)
{
    int64_t a, b;
    uint64_t r0 = 0x853c49e6748fea9bull ^ (uint64_t)w;
    params(w, &r0, &a, &b);
    printf("\n%s  [%s]\n", title, key);
    print_plans(d, w, a, b);
    /* same rows from both, on a few parameters */
    uint64_t rc = 0x1234567ull + (uint64_t)w;
    for (int k = 0; k < 8; k++) {
        params(w, &rc, &a, &b);
        check_same(d, w, a, b);
    }
    /* for reference, in the same rounds: r1, SQLite asked for tostore's rows
     * (ORDER BY id); c1, SQLite's keyset with a row value, (age, id) > (?, ?) */
    int w3 = w == Q_RANGE ? Q_RANGEID : Q_ROWVAL;
    ectx c[4] = { { d, E_TS, w, 0x9E3779B97F4A7C15ull, 0 }, { d, E_SQ, w, 0x9E3779B97F4A7C15ull, 0 },
                  { d, E_SQ, w3, 0x9E3779B97F4A7C15ull, 0 }, { d, E_SQ, Q_UNION, 0x9E3779B97F4A7C15ull, 0 } };
    eng e[4] = { { tsname, op_query, &c[0], 1, {0}, NULL }, { sqname, op_query, &c[1], 1, {0}, NULL },
                 { w == Q_RANGE ? "SQLite ... ORDER BY id" : "SQLite (age, id) > (?, ?)", op_query, &c[2],
                   1, {0}, NULL },
                 { "SQLite age = ? UNION ALL age >", op_query, &c[3], 1, {0}, NULL } };
    int ne = w == Q_RANGE ? 3 : w == Q_KEYSET ? 4 : 2;
    if (ne >= 3) {
        int64_t a3, b3;
        uint64_t r3 = 0x853c49e6748fea9bull;
        params(w3, &r3, &a3, &b3);
        printf(w == Q_RANGE ? "  (SQLite, the same rows as tostore: ... ORDER BY id LIMIT 100)\n"
                            : "  (SQLite keyset with a row value: WHERE (age, id) > (?, ?) ORDER BY age, id LIMIT 20)\n");
        print_plans(d, w3, a3, b3);
        if (w == Q_KEYSET) {   /* the same rows as the OR form */
            printf("  (SQLite keyset as two seeks: (age = ? AND id > ? ORDER BY id LIMIT 20) UNION ALL "
                   "(age > ? ORDER BY age, id LIMIT 20) LIMIT 20)\n");
            print_plans(d, Q_UNION, a3, b3);
            enum { CAP = 32 };
            int64_t x[CAP], y[CAP], z[CAP];
            uint64_t sum = 0;
            size_t n = sq_run(d, Q_KEYSET, 0, 0, &sum, x, CAP), m = sq_run(d, Q_ROWVAL, 0, 0, &sum, y, CAP),
                   k = sq_run(d, Q_UNION, 0, 0, &sum, z, CAP);
            if (n != m || memcmp(x, y, n * sizeof *x)) die("check: keyset OR form and row value differ");
            if (n != k || memcmp(x, z, n * sizeof *x)) die("check: keyset OR form and UNION ALL differ");
        }
    }
    double el;
    for (int i = 0; i < ne; i++) run_eng(&e[i], 0.1, &el);
    rounds(title, e, ne, g_rounds, 0.5 * g_time, 0.05, "/s");
    ratio_row(key, &e[0], &e[1], g_rounds, "/s");
    for (int i = 2; i < ne; i++) {
        char label[96];
        snprintf(label, sizeof label, "%s / %s", e[0].name, e[i].name);
        print_ratio(label, ratio_of(&e[0], &e[i], g_rounds));
    }
}

static void bench_lookup(dbs *d, const char *sz)
{
    ectx c[2] = { { d, E_TS, Q_GET, 0x2545F4914F6CDD1Dull, 0 }, { d, E_SQ, Q_GET, 0x2545F4914F6CDD1Dull, 0 } };
    eng e[2] = { { "tostore ts_get", op_get, &c[0], 1, {0}, NULL },
                 { "SQLite SELECT by id", op_get, &c[1], 1, {0}, NULL } };
    double el;
    for (int i = 0; i < 2; i++) run_eng(&e[i], 0.2, &el);
    char title[160], what[64];
    snprintf(title, sizeof title, "l. point lookups by primary key, %s rows, lookups/s", sz);
    rounds(title, e, 2, g_rounds, 0.5 * g_time, 0.05, "/s");
    double ts = median(e[0].rate, g_rounds), sq = median(e[1].rate, g_rounds);
    printf("  mean latency per lookup: tostore %.2f us, SQLite %.2f us\n", 1e6 / ts, 1e6 / sq);
    snprintf(what, sizeof what, "l. lookup by pk, %s rows", sz);
    ratio_row(what, &e[0], &e[1], g_rounds, "/s");
}

static void size_name(uint64_t n, char *buf, size_t cap)
{
    if (n % 1000000 == 0) snprintf(buf, cap, "%lluM", (unsigned long long)(n / 1000000));
    else if (n % 1000 == 0) snprintf(buf, cap, "%lluK", (unsigned long long)(n / 1000));
    else snprintf(buf, cap, "%llu", (unsigned long long)n);
}

static void lookups(dbs *main_db)
{
    uint64_t sizes[4] = { 10000, main_db->rows, 1000000, 10000000 };
    int nsz = g_huge ? 4 : 3;
    uint64_t done[4];
    int nd = 0;
    for (int i = 0; i < nsz; i++) {
        uint64_t n = sizes[i];
        int dup = 0;
        for (int j = 0; j < nd; j++) dup |= done[j] == n;
        if (dup) continue;
        done[nd++] = n;
        char sz[32];
        size_name(n, sz, sizeof sz);
        if (n == main_db->rows) {
            bench_lookup(main_db, sz);
            continue;
        }
        dbs d;
        char tag[48];
        snprintf(tag, sizeof tag, "lookup-%s", sz);
        dbs_init(&d, tag, n, 0);
        printf("\n");
        dbs_build(&d, 0);
        bench_lookup(&d, sz);
        dbs_free(&d);
    }
}

/* ---- profile mode ------------------------------------------------------------ */

static int profile_mode(const char *what, double secs)
{
    static const char *const names[] = { "eq", "range", "rangeo", "top", "cursor", "offset", "count",
                                         "join", "joinp", "get" };
    int w = -1;
    for (int i = 0; i <= Q_GET; i++) if (!strcmp(what, names[i])) w = i;
    if (w < 0) {
        fprintf(stderr, "profile: eq|range|rangeo|top|cursor|offset|count|join|joinp|get [secs]\n");
        return 2;
    }
    dbs d;
    dbs_init(&d, "profile", g_rows, g_rows / 2);
    dbs_build(&d, 1);
    if (w == Q_KEYSET) {
        char *tok = NULL;
        for (int page = 1; page < DEEP_PAGE; page++) {
            ts_query *q = ts_limit(ts_order_by(ts_query_new(d.ts, "users"), "age", 0), PAGE);
            if (tok) ts_cursor(q, tok);
            ts_result *r = NULL;
            TSCK(d.ts, ts_query_exec(q, &r));
            const char *next = ts_result_next_cursor(r);
            if (!next) die("cursor walk: no next cursor after page %d", page);
            free(tok);
            tok = strdup(next);
            ts_result_free(r);
            ts_query_free(q);
        }
        d.token = tok;
    }
    ectx c = { &d, E_TS, w, 12345, 0 };
    eng e = { what, w == Q_GET ? op_get : op_query, &c, 1, {0}, NULL };
    double el;
    uint64_t n = run_eng(&e, secs, &el);
    printf("%s: %.0f ops/s (%.1f us each) over %.1f s\n", what, (double)n / el, el / (double)n * 1e6, el);
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
            "usage: bench_query [--rows N] [--rounds N] [--time X] [--cache-mb N] [--only erocnjl] [data-dir]\n"
            "       bench_query profile eq|range|rangeo|top|cursor|offset|count|join|joinp|get [secs]\n"
            "env: BENCH_BIG=1 (1M rows), BENCH_HUGE=1 (lookups at 10M rows too), BENCH_ROWS,\n"
            "     BENCH_ROUNDS, BENCH_TIME, BENCH_ONLY, BENCH_DIR, BENCH_KEEP=1\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bench = (bench_style){ "bench_query", 30, 9, 50, { 34, 12, 16, 20, 6 } };
    const char *base = getenv("BENCH_DIR");
    const char *prof = NULL;
    double prof_secs = 5;
    g_big = getenv("BENCH_BIG") && atoi(getenv("BENCH_BIG")) > 0;
    g_huge = getenv("BENCH_HUGE") && atoi(getenv("BENCH_HUGE")) > 0;
    if (g_big) g_rows = 1000000;
    if (getenv("BENCH_ROWS") && *getenv("BENCH_ROWS")) g_rows = parse_u64("BENCH_ROWS", getenv("BENCH_ROWS"));
    if (getenv("BENCH_ROUNDS")) g_rounds = atoi(getenv("BENCH_ROUNDS"));
    if (getenv("BENCH_TIME")) g_time = atof(getenv("BENCH_TIME"));
    if (getenv("BENCH_ONLY") && *getenv("BENCH_ONLY")) g_only = getenv("BENCH_ONLY");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "profile")) {
            prof = v ? v : "";
            if (i + 2 < argc) prof_secs = atof(argv[i + 2]);
            break;
        } else if (!strcmp(a, "--rows")) g_rows = parse_u64(a, v), i++;
        else if (!strcmp(a, "--rounds")) g_rounds = (int)parse_u64(a, v), i++;
        else if (!strcmp(a, "--time")) { if (!v) usage(); g_time = atof(v); i++; }
        else if (!strcmp(a, "--cache-mb")) g_cache = (long long)parse_u64(a, v) << 20, i++;
        else if (!strcmp(a, "--only")) { if (!v) usage(); g_only = v; i++; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help") || a[0] == '-') usage();
        else base = a;
    }
    if (g_rows < (uint64_t)DEEP_PAGE * PAGE + PAGE) die("--rows: at least %d (page %d of %d rows)",
                                                       DEEP_PAGE * PAGE + PAGE, DEEP_PAGE, PAGE);
    if (g_rounds < 1) g_rounds = 1;
    if (g_rounds > MAXR) g_rounds = MAXR;
    if (g_time <= 0) g_time = 1.0;
    if (!base || !*base) base = BENCH_DEFAULT_DIR;
    mkdir_or_die(base);
    char run[64];
    snprintf(run, sizeof run, "query-%d", (int)getpid());
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
    double la[3] = {0};
    if (getloadavg(la, 3) < 0) la[0] = -1;
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&tnow));
    printf("bench_query: tostore %s, SQLite %s (WAL, prepared statements, same indexes)\n", ts_version(),
           sqlite3_libversion());
    printf("date %s; %s %s; %ld cores; load average %.2f; data in %s\n", date, u.sysname, u.release,
           sysconf(_SC_NPROCESSORS_ONLN), la[0], root);
    printf("users(id pk, email text unique, age integer indexed, city text, score integer): %llu rows%s; "
           "posts(id pk, author -> users.id indexed, title text): %llu rows; cache %lld MiB each; "
           "rounds %d, time x%.2f; workloads %s%s\n",
           (unsigned long long)g_rows, g_big ? " (BENCH_BIG)" : "", (unsigned long long)(g_rows / 2),
           g_cache >> 20, g_rounds, g_time, g_only, g_huge ? " (BENCH_HUGE: lookups at 10M)" : "");
    fflush(stdout);
    double t0 = now();
    dbs d;
    dbs_init(&d, "main", g_rows, g_rows / 2);
    dbs_build(&d, 0);
    if (wants('e'))
        bench_one(&d, Q_EQ, "e. age = v LIMIT 50", "e. equality on the indexed field: age = v LIMIT 50, queries/s",
                  "tostore query", "SQLite SELECT");
    if (wants('r')) {
        bench_one(&d, Q_RANGE, "r. age BETWEEN LIMIT 100",
                  "r1. range: age BETWEEN a AND a+9 LIMIT 100, no ORDER BY (tostore: pk order), queries/s",
                  "tostore query", "SQLite SELECT");
        bench_one(&d, Q_RANGEO, "r. same, ORDER BY age",
                  "r2. range: age BETWEEN a AND a+9 ORDER BY age LIMIT 100, queries/s",
                  "tostore query", "SQLite SELECT");
    }
    if (wants('o'))
        bench_one(&d, Q_TOP, "o. ORDER BY age LIMIT 20",
                  "o. ORDER BY age LIMIT 20, offset 0, queries/s", "tostore query", "SQLite SELECT");
    if (wants('c')) {
        printf("\n");
        walk_cursor(&d);
        bench_one(&d, Q_KEYSET, "c. page 1000 by cursor",
                  "c1. page 1000 of ORDER BY age LIMIT 20: tostore cursor, SQLite keyset, queries/s",
                  "tostore ts_cursor", "SQLite keyset");
        bench_one(&d, Q_OFFSET, "c. page 1000 by OFFSET",
                  "c2. page 1000 of ORDER BY age LIMIT 20 by OFFSET 19980 (both), queries/s",
                  "tostore ts_offset", "SQLite OFFSET");
    }
    if (wants('n'))
        bench_one(&d, Q_COUNT, "n. COUNT age < v",
                  "n. COUNT with a condition: age < v (v 1..99), counts/s", "tostore ts_query_count",
                  "SQLite count(*)");
    if (wants('j')) {
        bench_one(&d, Q_JOIN, "j. users JOIN posts, age = v",
                  "j1. join: users (age = v) JOIN posts ON posts.author = users.id LIMIT 50, queries/s",
                  "tostore query + ts_join", "SQLite JOIN");
        bench_one(&d, Q_JOINP, "j. from posts, users.age = v",
                  "j2. the join written from posts: posts JOIN users WHERE users.age = v LIMIT 50, queries/s",
                  "tostore query + ts_join", "SQLite JOIN");
    }
    if (wants('l')) lookups(&d);
    dbs_free(&d);
    print_summary();
    printf("total time %.0f s\n", now() - t0);
    if (!getenv("BENCH_KEEP")) rmrf(root);
    free(root);
    return 0;
}
