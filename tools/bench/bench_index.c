/*
 * bench_index: tostore's index plugins (btree, hash; loaded by the kernel,
 * used through the kernel's index wrapper and page API) against LMDB and
 * SQLite, on the same keys, in the same run (issue 4, "Benchmark").
 *
 * Keys: 16 bytes, memcomparable: ts_key_int(random 64-bit) (9 bytes) then
 * 7 bytes of the key's number, big endian (so every key is unique); random
 * with a fixed seed.  Values: 8-32 bytes, derived from the key's number.
 * Every engine gets the same cache: tostore cacheBytes = SQLite cache_size
 * (256 MiB; 2 GiB with BENCH_BIG=1); LMDB has no cache of its own and reads
 * through its memory map (the OS page cache: everything here fits in RAM).
 *
 * Workloads (one engine per slice, engines interleaved, order rotating;
 * the ratios are medians of per-round ratios, as in bench_commit):
 *   l. bulk load of N keys (1M; 10M with BENCH_BIG=1) into an empty index,
 *      one transaction each, ended with each engine's durable-enough commit
 *      (tostore durability normal: its checkpoint syncs; SQLite WAL,
 *      synchronous=NORMAL: its checkpoint syncs; LMDB default: sync at
 *      commit); tostore btree bulk_load, LMDB MDB_APPEND, SQLite sorted
 *      INSERTs into a WITHOUT ROWID table (info: rowid table + CREATE INDEX)
 *   g. random point gets (1000 per read transaction); tostore hash vs btree
 *   r. range scans: seek to a random key, read 100 entries
 *   s. full scan of the index
 *   t. latency table: point-get latency and pages touched per lookup at
 *      10K, 1M (and 10M with BENCH_BIG=1) keys, with the tostore page cache
 *      large and small (1 MiB), to show the log n growth and the cache effect
 *   i. random inserts into the N-key tree (1000 per transaction; tostore
 *      durability normal, SQLite synchronous=NORMAL, LMDB MDB_NOSYNC)
 *
 * Environment: BENCH_DIR (data folder), BENCH_ROUNDS (5), BENCH_TIME (1.0),
 * BENCH_BIG=1 (10M keys), BENCH_N (override N), BENCH_ONLY=lgrsti,
 * BENCH_KEEP=1 (keep the data), BENCH_CACHE_MB (cache for every engine),
 * BENCH_BULK_ROUNDS (3; 2 with BENCH_BIG), BENCH_SQLITE_ROWID=1 (the
 * rowid+index bulk load also at 10M), BENCH_HASH_TXN (inserts per
 * transaction when building the hash index, 1000000).
 * Method and results: docs/benchmarks.md, Part 2.
 * The rounds, ratios and summary table are shared: bench_common.c.
 *
 * Usage: bench_index [data-dir]
 *        bench_index profile get|getfresh|hashget|range|scan|insert|bulk [secs]
 * The profile mode builds the N-key tostore database alone and runs one
 * workload on it (for perf); it prints the rate and pages per operation.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <tostore/keys.h>
#include "api/db.h"
#include "catalog/ix.h"
#include "wal/wal.h"
#include "bench_common.h"

#ifndef BENCH_DEFAULT_DIR
#define BENCH_DEFAULT_DIR "benchdata"
#endif

#define KEYLEN 16
#define SEED 0x5eed1de5c0ffee11ull
#define SLOT_BT (TSPG_ROOTS - 1)
#define SLOT_HX (TSPG_ROOTS - 2)
#define GET_BATCH 1000
#define RANGE_LEN 100
#define RANGE_BATCH 50
#define INS_BATCH 1000

static const char *g_root;
static int      g_rounds = 5;
static double   g_time = 1.0;
static int      g_big;
static uint64_t g_n = 1000000;
static long long g_cache = 256ll << 20;
static const char *g_only = "lgrsti";

/* ---- utilities ----------------------------------------------------- */

static uint64_t dir_bytes_acc;
static int du_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)p; (void)ftw;
    if (flag == FTW_F) dir_bytes_acc += (uint64_t)sb->st_blocks * 512;
    return 0;
}

static double dir_mb(const char *p)
{
    dir_bytes_acc = 0;
    nftw(p, du_cb, 16, FTW_PHYS);
    return (double)dir_bytes_acc / 1048576.0;
}

static int wants(char w) { return strchr(g_only, w) != NULL; }

/* ---- keys and values -------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Key number i: ts_key_int(random) + 7 bytes of i (big endian). */
static inline void make_key(uint64_t i, uint8_t *k)
{
    ts_key_int(k, KEYLEN, 0, (int64_t)mix64(i ^ SEED));
    for (int b = 0; b < 7; b++) k[9 + b] = (uint8_t)(i >> (8 * (6 - b)));
}

/* Its value: 8-32 bytes. */
static inline size_t make_val(uint64_t i, uint8_t *v)
{
    uint64_t h = mix64(i * 0x2545F4914F6CDD1Dull + 7);
    size_t n = 8 + (size_t)(h % 25);
    uint64_t w[4] = { h, h ^ i, h + i, ~h };
    memcpy(v, w, n);
    return n;
}

/* Key numbers in key order (for bulk loads). */
typedef struct ord_ent { uint64_t u, i; } ord_ent;
static int ord_cmp(const void *a, const void *b)
{
    const ord_ent *x = a, *y = b;
    if (x->u != y->u) return x->u < y->u ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static uint64_t *sorted_ids(uint64_t n)
{
    ord_ent *e = malloc(n * sizeof *e);
    uint64_t *o = malloc(n * sizeof *o);
    if (!e || !o) die("out of memory");
    for (uint64_t i = 0; i < n; i++) {
        /* bytes 1..8 of the key: the random value with its sign bit flipped */
        e[i].u = mix64(i ^ SEED) ^ 0x8000000000000000ull;
        e[i].i = i;
    }
    qsort(e, n, sizeof *e, ord_cmp);
    for (uint64_t i = 0; i < n; i++) o[i] = e[i].i;
    free(e);
    /* check against the real encoding */
    for (uint64_t i = 1; i < n && i < 100000; i++) {
        uint8_t a[KEYLEN], b[KEYLEN];
        make_key(o[i - 1], a);
        make_key(o[i], b);
        if (memcmp(a, b, KEYLEN) >= 0) die("key order check failed at %llu", (unsigned long long)i);
    }
    return o;
}

/* ---- summary rows ------------------------------------------------------ */

static void fmt_num(char *buf, size_t n, double v, const char *unit)
{
    if (v >= 1e6) snprintf(buf, n, "%.2fM%s", v / 1e6, unit);
    else if (v >= 1e4) snprintf(buf, n, "%.0fk%s", v / 1e3, unit);
    else snprintf(buf, n, "%.0f%s", v, unit);
}

/* Print a ratio and add a summary row (goal_min 0: info). */
static void ratio_row(const char *what, const eng *a, const eng *b, int rounds_n, double goal_min,
                      const char *unit)
{
    ratio x = ratio_of(a, b, rounds_n);
    char label[96], value[40], ref[64], num[32], rs[40], goal[24];
    snprintf(label, sizeof label, "%s / %s", a->name, b->name);
    print_ratio(label, x);
    fmt_num(value, sizeof value, median(a->rate, rounds_n), unit);
    fmt_num(num, sizeof num, median(b->rate, rounds_n), unit);
    snprintf(ref, sizeof ref, "%.30s %s", b->name, num);
    snprintf(rs, sizeof rs, "%.2fx [%.2f-%.2f]", x.med, x.lo, x.hi);
    if (goal_min > 0) snprintf(goal, sizeof goal, ">= %.2gx", goal_min);
    add_row(what, value, ref, rs, goal_min > 0 ? goal : "-",
            goal_min > 0 ? (x.med >= goal_min ? "PASS" : "MISS") : "info");
}

/* ---- the engines' databases -------------------------------------------- */

#define TSCK(db, call) do { int rc_ = (call); if (rc_ != TS_OK) die("%s:%d %s: %d %s", __FILE__, __LINE__, #call, rc_, ts_errmsg(db)); } while (0)
#define LMCK(call) do { int e_ = (call); if (e_) die("lmdb %s: %s", #call, mdb_strerror(e_)); } while (0)

typedef struct sqx {
    sqlite3      *c;
    sqlite3_stmt *get, *range, *scan, *ins, *begin, *commit;
    int           rowid;   /* rowid table + secondary index on k */
} sqx;

/* One data set: the same n keys in every engine. */
typedef struct dset {
    uint64_t n;
    char     tag[16];
    /* tostore */
    char    *tsdir, *tsdir_small;
    ts_db   *db, *dbs;         /* dbs: a copy opened with a 1 MiB cache */
    tsix    *bt, *hx, *bts;
    /* LMDB */
    char    *lmdir;
    MDB_env *lenv;
    MDB_dbi  ldbi;
    /* SQLite: WITHOUT ROWID table; rowid table + index (info) */
    char    *sqdir, *sqidir;
    sqx     *sq, *sqi;
} dset;

static const char *g_plugins_cfg = ", \"plugins\": [\"btree\", \"hash\"]";

static ts_db *ts_open_dir(const char *dir, long long cache)
{
    char cfg[2048];
    for (int attempt = 0; attempt < 2; attempt++) {
        snprintf(cfg, sizeof cfg,
                 "{\"path\": \"%s\", \"durability\": \"normal\", \"cacheBytes\": %lld, "
                 "\"storage\": {\"backend\": \"posix\"}"
#ifdef BENCH_PLUGIN_DIR
                 ", \"pluginPath\": \"" BENCH_PLUGIN_DIR "\""
#endif
                 "%s}", dir, cache, g_plugins_cfg);
        ts_db *db = NULL;
        int rc = ts_open_json(cfg, &db);
        if (rc == TS_OK) {
            if (!tsreg_lookup(db->reg, TS_KIND_INDEX, "btree") || !tsreg_lookup(db->reg, TS_KIND_INDEX, "hash"))
                die("the btree and hash index modules are not loaded");
            return db;
        }
        /* once they are bundled, naming them again is a duplicate */
        if (attempt == 0 && rc == TS_ERR_PLUGIN) { g_plugins_cfg = ""; continue; }
        die("ts_open %s: %s", dir, ts_errmsg(NULL));
    }
    die("ts_open %s: %s", dir, ts_errmsg(NULL));
}

static tsix *ix_open(ts_db *db, const char *module, uint64_t root)
{
    tsix *ix;
    TSCK(db, tsix_open(&db->env, db->reg, module, NULL, root, module, &ix));
    return ix;
}

static tsix *ix_open_slot(ts_db *db, const char *module, unsigned slot)
{
    tstx *tx;
    uint64_t root = 0;
    TSCK(db, tstx_begin(db->pg, 0, &tx));
    tstx_root_get(tx, slot, &root);
    tstx_rollback(tx);
    if (!root) die("no %s index in slot %u", module, slot);
    return ix_open(db, module, root);
}

typedef struct feed {
    const uint64_t *ord;
    uint64_t        pos, n;
    uint8_t         k[KEYLEN], v[32];
} feed;

static int feed_next(void *ctx, const void **k, size_t *kl, const void **v, size_t *vl)
{
    feed *f = ctx;
    if (f->pos == f->n) return 0;
    uint64_t i = f->ord[f->pos++];
    make_key(i, f->k);
    *k = f->k;
    *kl = KEYLEN;
    *v = f->v;
    *vl = make_val(i, f->v);
    return 1;
}

/* tostore: a new database with a btree index bulk loaded from ord.
 * Returns the time from begin to the end of the commit. */
static double ts_build_btree(dset *d, const uint64_t *ord, double *t_load)
{
    d->db = ts_open_dir(d->tsdir, g_cache);
    double t0 = now();
    tstx *tx;
    uint64_t root;
    TSCK(d->db, tstx_begin(d->db->pg, 1, &tx));
    TSCK(d->db, tsix_create(&d->db->env, d->db->reg, "btree", NULL, tx, &root));
    TSCK(d->db, tstx_root_set(tx, SLOT_BT, root));
    d->bt = ix_open(d->db, "btree", root);
    if (!d->bt->vt->bulk_load) die("the btree module has no bulk_load");
    feed f = { ord, 0, d->n, {0}, {0} };
    TSCK(d->db, d->bt->vt->bulk_load(d->bt->idx, (ts_txn *)tx, feed_next, &f));
    double t1 = now();
    TSCK(d->db, tstx_commit(tx));
    double t2 = now();
    if (t_load) *t_load = t1 - t0;
    return t2 - t0;
}

/* tostore: a hash index beside the btree, by inserts in key-number order
 * (random key order), g_hash_txn (1M) per transaction: larger transactions
 * are faster here (fewer log writes and checkpoints of the same buckets). */
static uint64_t g_hash_txn = 1000000;
static double ts_build_hash(dset *d)
{
    double t0 = now();
    tstx *tx;
    uint64_t root;
    TSCK(d->db, tstx_begin(d->db->pg, 1, &tx));
    TSCK(d->db, tsix_create(&d->db->env, d->db->reg, "hash", NULL, tx, &root));
    TSCK(d->db, tstx_root_set(tx, SLOT_HX, root));
    TSCK(d->db, tstx_commit(tx));
    d->hx = ix_open(d->db, "hash", root);
    uint8_t k[KEYLEN], v[32];
    for (uint64_t i = 0; i < d->n;) {
        TSCK(d->db, tstx_begin(d->db->pg, 1, &tx));
        for (uint64_t e = i + g_hash_txn < d->n ? i + g_hash_txn : d->n; i < e; i++) {
            make_key(i, k);
            size_t vl = make_val(i, v);
            TSCK(d->db, tsix_insert(d->hx, tx, k, KEYLEN, v, vl, 1));
        }
        TSCK(d->db, tstx_commit(tx));
    }
    return now() - t0;
}

static void ts_close_set(dset *d)
{
    tsix_close(d->bt);
    tsix_close(d->hx);
    tsix_close(d->bts);
    d->bt = d->hx = d->bts = NULL;
    if (d->db && ts_close(d->db) != TS_OK) die("ts_close: %s", ts_errmsg(NULL));
    if (d->dbs && ts_close(d->dbs) != TS_OK) die("ts_close: %s", ts_errmsg(NULL));
    d->db = d->dbs = NULL;
}

/* LMDB: one DB, sorted puts with MDB_APPEND, one transaction. */
static double lm_build(dset *d, const uint64_t *ord)
{
    mkdir_or_die(d->lmdir);
    LMCK(mdb_env_create(&d->lenv));
    size_t map = (size_t)(d->n < 100000 ? 100000 : d->n) * 1024;
    LMCK(mdb_env_set_mapsize(d->lenv, map));
    LMCK(mdb_env_open(d->lenv, d->lmdir, 0, 0644));
    double t0 = now();
    MDB_txn *tx;
    LMCK(mdb_txn_begin(d->lenv, NULL, 0, &tx));
    LMCK(mdb_dbi_open(tx, NULL, 0, &d->ldbi));
    uint8_t k[KEYLEN], v[32];
    for (uint64_t p = 0; p < d->n; p++) {
        uint64_t i = ord[p];
        make_key(i, k);
        MDB_val mk = { KEYLEN, k }, mv = { make_val(i, v), v };
        LMCK(mdb_put(tx, d->ldbi, &mk, &mv, MDB_APPEND));
    }
    LMCK(mdb_txn_commit(tx));
    return now() - t0;
}

static void lm_close(dset *d)
{
    if (d->lenv) mdb_env_close(d->lenv);
    d->lenv = NULL;
}

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

static void sq_step_done(sqx *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) die("sqlite step: %s", sqlite3_errmsg(s->c));
    sqlite3_reset(st);
}

static sqx *sq_open(const char *dir, int rowid)
{
    sqx *s = calloc(1, sizeof *s);
    if (!s) die("out of memory");
    mkdir_or_die(dir);
    char *file = path_join(dir, "db.sqlite");
    if (sqlite3_open(file, &s->c) != SQLITE_OK) die("sqlite3_open %s", file);
    free(file);
    s->rowid = rowid;
    char pragma[128];
    sq_exec(s->c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%lld;", g_cache / 1024);
    sq_exec(s->c, pragma);
    return s;
}

static void sq_prepare_all(sqx *s)
{
    const char *t = s->rowid ? "t" : "kv";
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE k = ?1", t);
    s->get = sq_prep(s->c, sql);
    snprintf(sql, sizeof sql, "SELECT k, v FROM %s WHERE k >= ?1 ORDER BY k LIMIT %d", t, RANGE_LEN);
    s->range = sq_prep(s->c, sql);
    snprintf(sql, sizeof sql, "SELECT k, v FROM %s", t);
    s->scan = sq_prep(s->c, sql);
    snprintf(sql, sizeof sql, "INSERT INTO %s(k, v) VALUES(?1, ?2)", t);
    s->ins = sq_prep(s->c, sql);
    s->begin = sq_prep(s->c, "BEGIN");
    s->commit = sq_prep(s->c, "COMMIT");
}

/* SQLite: kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID, sorted inserts in
 * one transaction; or (rowid) t(id INTEGER PRIMARY KEY, k, v) filled in
 * key-number order, then CREATE INDEX on k (SQLite's bulk index build). */
static double sq_build(sqx *s, uint64_t n, const uint64_t *ord)
{
    double t0 = now();
    sq_exec(s->c, "BEGIN");
    if (s->rowid) sq_exec(s->c, "CREATE TABLE t(id INTEGER PRIMARY KEY, k BLOB, v BLOB)");
    else sq_exec(s->c, "CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID");
    sqlite3_stmt *ins = sq_prep(s->c, s->rowid ? "INSERT INTO t(k, v) VALUES(?1, ?2)"
                                               : "INSERT INTO kv(k, v) VALUES(?1, ?2)");
    uint8_t k[KEYLEN], v[32];
    for (uint64_t p = 0; p < n; p++) {
        uint64_t i = s->rowid ? p : ord[p];
        make_key(i, k);
        size_t vl = make_val(i, v);
        sqlite3_bind_blob(ins, 1, k, KEYLEN, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 2, v, (int)vl, SQLITE_STATIC);
        sq_step_done(s, ins);
    }
    sqlite3_finalize(ins);
    if (s->rowid) sq_exec(s->c, "CREATE INDEX tk ON t(k)");
    sq_exec(s->c, "COMMIT");
    double t = now() - t0;
    sq_prepare_all(s);
    return t;
}

static void sq_close(sqx *s)
{
    if (!s) return;
    sqlite3_finalize(s->get);
    sqlite3_finalize(s->range);
    sqlite3_finalize(s->scan);
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_close(s->c);
    free(s);
}

static void dset_init(dset *d, uint64_t n, const char *tag)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    snprintf(d->tag, sizeof d->tag, "%s", tag);
    char name[64];
    snprintf(name, sizeof name, "%s-tostore", tag);
    d->tsdir = path_join(g_root, name);
    snprintf(name, sizeof name, "%s-tostore-small", tag);
    d->tsdir_small = path_join(g_root, name);
    snprintf(name, sizeof name, "%s-lmdb", tag);
    d->lmdir = path_join(g_root, name);
    snprintf(name, sizeof name, "%s-sqlite", tag);
    d->sqdir = path_join(g_root, name);
    snprintf(name, sizeof name, "%s-sqlite-rowid", tag);
    d->sqidir = path_join(g_root, name);
}

static void dset_free(dset *d)
{
    ts_close_set(d);
    lm_close(d);
    sq_close(d->sq);
    sq_close(d->sqi);
    d->sq = d->sqi = NULL;
    if (!getenv("BENCH_KEEP")) {
        rmrf(d->tsdir);
        rmrf(d->tsdir_small);
        rmrf(d->lmdir);
        rmrf(d->sqdir);
        rmrf(d->sqidir);
    }
    free(d->tsdir);
    free(d->tsdir_small);
    free(d->lmdir);
    free(d->sqdir);
    free(d->sqidir);
}

/* A second tostore handle on a copy of the database, with a 1 MiB cache
 * (lookups then go through the kernel's miss path: file in the OS cache). */
static void ts_open_small(dset *d)
{
    ts_close_set(d);
    rmrf(d->tsdir_small);
    mkdir_or_die(d->tsdir_small);
    const char *files[] = { TSPG_FILE, TSWAL_FILE };
    for (int i = 0; i < 2; i++) {
        char *a = path_join(d->tsdir, files[i]), *b = path_join(d->tsdir_small, files[i]);
        struct stat sb;
        if (stat(a, &sb) == 0) copy_file(a, b);
        free(a);
        free(b);
    }
    d->db = ts_open_dir(d->tsdir, g_cache);
    d->bt = ix_open_slot(d->db, "btree", SLOT_BT);
    d->hx = ix_open_slot(d->db, "hash", SLOT_HX);
    d->dbs = ts_open_dir(d->tsdir_small, 1ll << 20);
    d->bts = ix_open_slot(d->dbs, "btree", SLOT_BT);
}

/* ---- operations ------------------------------------------------------------ */

enum { K_BT, K_BT_GET, K_HX, K_HX_GET, K_BT_SMALL, K_LM, K_SQ, K_SQI };

typedef struct ectx {
    dset    *d;
    int      kind;
    uint64_t rng;
    uint64_t next;            /* inserts: next key number */
    uint64_t pages, looks;    /* tostore: pages got, lookups */
    uint64_t sink;
} ectx;

static void ectx_init(ectx *c, dset *d, int kind, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->d = d;
    c->kind = kind;
    c->rng = seed;
    c->next = d->n;
}

static tsix *ctx_ix(ectx *c, ts_db **db)
{
    switch (c->kind) {
    case K_HX: case K_HX_GET: *db = c->d->db; return c->d->hx;
    case K_BT_SMALL: *db = c->d->dbs; return c->d->bts;
    default: *db = c->d->db; return c->d->bt;
    }
}

/* Every engine reads each value it returns: its first 8 bytes and its last
 * byte (values are 8-32 bytes). */
static inline uint64_t val_sum(const void *v, size_t vl)
{
    uint64_t x;
    memcpy(&x, v, 8);
    return x + ((const uint8_t *)v)[vl - 1] + vl;
}

/* GET_BATCH random point gets of existing keys in one read transaction. */
static int op_get(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    dset *d = c->d;
    uint8_t k[KEYLEN];
    uint64_t sum = 0;
    if (c->kind == K_LM) {
        MDB_txn *tx;
        LMCK(mdb_txn_begin(d->lenv, NULL, MDB_RDONLY, &tx));
        for (int b = 0; b < GET_BATCH; b++) {
            make_key(rng_next(&c->rng) % d->n, k);
            MDB_val mk = { KEYLEN, k }, mv;
            LMCK(mdb_get(tx, d->ldbi, &mk, &mv));
            sum += val_sum(mv.mv_data, mv.mv_size);
        }
        mdb_txn_abort(tx);
    } else if (c->kind == K_SQ || c->kind == K_SQI) {
        sqx *s = c->kind == K_SQ ? d->sq : d->sqi;
        sq_step_done(s, s->begin);
        for (int b = 0; b < GET_BATCH; b++) {
            make_key(rng_next(&c->rng) % d->n, k);
            sqlite3_bind_blob(s->get, 1, k, KEYLEN, SQLITE_STATIC);
            if (sqlite3_step(s->get) != SQLITE_ROW) die("sqlite get: key not found");
            sum += val_sum(sqlite3_column_blob(s->get, 0), (size_t)sqlite3_column_bytes(s->get, 0));
            sqlite3_reset(s->get);
        }
        sq_step_done(s, s->commit);
    } else {
        ts_db *db;
        tsix *ix = ctx_ix(c, &db);
        tstx *tx;
        TSCK(db, tstx_begin(db->pg, 0, &tx));
        if (c->kind == K_BT_GET || c->kind == K_HX_GET) {
            /* the kernel's one-shot lookup: a cursor per get, value malloc'd */
            for (int b = 0; b < GET_BATCH; b++) {
                make_key(rng_next(&c->rng) % d->n, k);
                void *v;
                size_t vl;
                TSCK(db, tsix_get(ix, tx, k, KEYLEN, &v, &vl));
                sum += val_sum(v, vl);
                free(v);
            }
        } else {
            tsix_cur cur;
            TSCK(db, tsix_cursor(ix, tx, &cur));
            for (int b = 0; b < GET_BATCH; b++) {
                make_key(rng_next(&c->rng) % d->n, k);
                const void *v;
                size_t vl;
                TSCK(db, tsix_seek(&cur, k, KEYLEN, TS_SEEK_EQ));
                TSCK(db, tsix_entry(&cur, NULL, NULL, &v, &vl));
                sum += val_sum(v, vl);
            }
            tsix_cursor_close(&cur);
        }
        c->pages += tstx_touched(tx);
        c->looks += GET_BATCH;
        tstx_rollback(tx);
    }
    c->sink += sum;
    return GET_BATCH;
}

/* RANGE_BATCH range scans (seek to a random key, RANGE_LEN entries) in one
 * read transaction; returns the scans done. */
static int op_range(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    dset *d = c->d;
    uint8_t k[KEYLEN];
    uint64_t sum = 0, rows = 0;
    if (c->kind == K_LM) {
        MDB_txn *tx;
        MDB_cursor *cur;
        LMCK(mdb_txn_begin(d->lenv, NULL, MDB_RDONLY, &tx));
        LMCK(mdb_cursor_open(tx, d->ldbi, &cur));
        for (int b = 0; b < RANGE_BATCH; b++) {
            make_key(rng_next(&c->rng) % d->n, k);
            MDB_val mk = { KEYLEN, k }, mv;
            int rc = mdb_cursor_get(cur, &mk, &mv, MDB_SET_RANGE);
            for (int j = 0; j < RANGE_LEN && rc == 0; j++) {
                sum += ((const uint8_t *)mk.mv_data)[15] + val_sum(mv.mv_data, mv.mv_size);
                rows++;
                if (j + 1 < RANGE_LEN) rc = mdb_cursor_get(cur, &mk, &mv, MDB_NEXT);
            }
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(tx);
    } else if (c->kind == K_SQ) {
        sqx *s = d->sq;
        sq_step_done(s, s->begin);
        for (int b = 0; b < RANGE_BATCH; b++) {
            make_key(rng_next(&c->rng) % d->n, k);
            sqlite3_bind_blob(s->range, 1, k, KEYLEN, SQLITE_STATIC);
            while (sqlite3_step(s->range) == SQLITE_ROW) {
                const uint8_t *kk = sqlite3_column_blob(s->range, 0);
                sum += kk[15] + val_sum(sqlite3_column_blob(s->range, 1),
                                        (size_t)sqlite3_column_bytes(s->range, 1));
                rows++;
            }
            sqlite3_reset(s->range);
        }
        sq_step_done(s, s->commit);
    } else {
        ts_db *db;
        tsix *ix = ctx_ix(c, &db);
        tstx *tx;
        tsix_cur cur;
        TSCK(db, tstx_begin(db->pg, 0, &tx));
        TSCK(db, tsix_cursor(ix, tx, &cur));
        for (int b = 0; b < RANGE_BATCH; b++) {
            make_key(rng_next(&c->rng) % d->n, k);
            int rc = tsix_seek(&cur, k, KEYLEN, TS_SEEK_GE);
            for (int j = 0; j < RANGE_LEN && rc == TS_OK; j++) {
                const void *kk, *v;
                size_t kl, vl;
                TSCK(db, tsix_entry(&cur, &kk, &kl, &v, &vl));
                sum += ((const uint8_t *)kk)[15] + val_sum(v, vl);
                rows++;
                if (j + 1 < RANGE_LEN) rc = tsix_next(&cur);
            }
            if (rc != TS_OK && rc != TS_ERR_NOT_FOUND) die("range: %s", ts_errmsg(db));
        }
        tsix_cursor_close(&cur);
        c->pages += tstx_touched(tx);
        c->looks += RANGE_BATCH;
        tstx_rollback(tx);
    }
    c->sink += sum + rows;
    return RANGE_BATCH;
}

/* One full scan; returns the entries read. */
static int op_scan(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    dset *d = c->d;
    uint64_t sum = 0, rows = 0;
    if (c->kind == K_LM) {
        MDB_txn *tx;
        MDB_cursor *cur;
        LMCK(mdb_txn_begin(d->lenv, NULL, MDB_RDONLY, &tx));
        LMCK(mdb_cursor_open(tx, d->ldbi, &cur));
        MDB_val mk, mv;
        for (int rc = mdb_cursor_get(cur, &mk, &mv, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &mk, &mv, MDB_NEXT)) {
            sum += ((const uint8_t *)mk.mv_data)[15] + val_sum(mv.mv_data, mv.mv_size);
            rows++;
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(tx);
    } else if (c->kind == K_SQ) {
        sqx *s = d->sq;
        sq_step_done(s, s->begin);
        while (sqlite3_step(s->scan) == SQLITE_ROW) {
            const uint8_t *kk = sqlite3_column_blob(s->scan, 0);
            sum += kk[15] + val_sum(sqlite3_column_blob(s->scan, 1),
                                    (size_t)sqlite3_column_bytes(s->scan, 1));
            rows++;
        }
        sqlite3_reset(s->scan);
        sq_step_done(s, s->commit);
    } else {
        ts_db *db;
        tsix *ix = ctx_ix(c, &db);
        tstx *tx;
        tsix_cur cur;
        TSCK(db, tstx_begin(db->pg, 0, &tx));
        TSCK(db, tsix_cursor(ix, tx, &cur));
        int rc;
        for (rc = tsix_first(&cur); rc == TS_OK; rc = tsix_next(&cur)) {
            const void *kk, *v;
            size_t kl, vl;
            TSCK(db, tsix_entry(&cur, &kk, &kl, &v, &vl));
            sum += ((const uint8_t *)kk)[15] + val_sum(v, vl);
            rows++;
        }
        if (rc != TS_ERR_NOT_FOUND) die("scan: %s", ts_errmsg(db));
        tsix_cursor_close(&cur);
        c->pages += tstx_touched(tx);
        c->looks++;
        tstx_rollback(tx);
    }
    if (rows < d->n) die("full scan of %s returned %llu of %llu entries", d->tag,
                         (unsigned long long)rows, (unsigned long long)d->n);
    c->sink += sum;
    return (int)rows;
}

/* INS_BATCH inserts of new random keys in one write transaction. */
static int op_insert(void *ctx, int tid)
{
    (void)tid;
    ectx *c = ctx;
    dset *d = c->d;
    uint8_t k[KEYLEN], v[32];
    if (c->kind == K_LM) {
        MDB_txn *tx;
        LMCK(mdb_txn_begin(d->lenv, NULL, 0, &tx));
        for (int b = 0; b < INS_BATCH; b++, c->next++) {
            make_key(c->next, k);
            MDB_val mk = { KEYLEN, k }, mv = { make_val(c->next, v), v };
            LMCK(mdb_put(tx, d->ldbi, &mk, &mv, MDB_NOOVERWRITE));
        }
        LMCK(mdb_txn_commit(tx));
    } else if (c->kind == K_SQ) {
        sqx *s = d->sq;
        sq_step_done(s, s->begin);
        for (int b = 0; b < INS_BATCH; b++, c->next++) {
            make_key(c->next, k);
            size_t vl = make_val(c->next, v);
            sqlite3_bind_blob(s->ins, 1, k, KEYLEN, SQLITE_STATIC);
            sqlite3_bind_blob(s->ins, 2, v, (int)vl, SQLITE_STATIC);
            sq_step_done(s, s->ins);
        }
        sq_step_done(s, s->commit);
    } else {
        ts_db *db;
        tsix *ix = ctx_ix(c, &db);
        tstx *tx;
        TSCK(db, tstx_begin(db->pg, 1, &tx));
        for (int b = 0; b < INS_BATCH; b++, c->next++) {
            make_key(c->next, k);
            size_t vl = make_val(c->next, v);
            TSCK(db, tsix_insert(ix, tx, k, KEYLEN, v, vl, 1));
        }
        c->pages += tstx_touched(tx);
        c->looks += INS_BATCH;
        TSCK(db, tstx_commit(tx));
    }
    return INS_BATCH;
}

/* Bring every engine's data into its cache (tostore cacheBytes, SQLite
 * cache_size, LMDB's map in the OS page cache): a full pass over each
 * index, then a few random gets, so that no engine starts a round cold. */
static void warm_all(dset *d)
{
    double t0 = now();
    int kinds[3] = { K_BT, K_LM, K_SQ };
    for (int i = 0; i < 3; i++) {
        ectx c;
        ectx_init(&c, d, kinds[i], 7);
        op_scan(&c, 0);
    }
    if (d->hx) {
        tstx *tx;
        tsix_cur cur;
        TSCK(d->db, tstx_begin(d->db->pg, 0, &tx));
        TSCK(d->db, tsix_cursor(d->hx, tx, &cur));
        uint64_t n = 0;
        int rc;
        for (rc = tsix_first(&cur); rc == TS_OK; rc = tsix_next(&cur)) n++;
        tsix_cursor_close(&cur);
        tstx_rollback(tx);
        if (rc != TS_ERR_NOT_FOUND || n < d->n) die("hash iteration: %llu entries", (unsigned long long)n);
    }
    if (d->sqi) {
        sq_exec(d->sqi->c, "SELECT sum(length(v)) FROM t");
        sq_exec(d->sqi->c, "SELECT count(*) FROM t INDEXED BY tk WHERE k >= x''");
    }
    int gk[6] = { K_BT, K_HX, K_LM, K_SQ, K_SQI, K_BT_SMALL };
    for (int i = 0; i < 6; i++) {
        if ((gk[i] == K_HX && !d->hx) || (gk[i] == K_SQI && !d->sqi) || (gk[i] == K_BT_SMALL && !d->dbs))
            continue;
        ectx c;
        ectx_init(&c, d, gk[i], 11);
        eng e = { "warm", op_get, &c, 1, {0}, NULL };
        double el;
        run_eng(&e, 0.1, &el);
    }
    printf("  (warm-up of every engine: full pass + random gets, %.1f s)\n", now() - t0);
}

/* Every engine holds exactly the same entries (checked on a sample). */
static void verify(dset *d)
{
    ectx c[5];
    ectx_init(&c[0], d, K_BT_GET, 99);
    for (uint64_t s = 0; s < 2000; s++) {
        uint64_t i = mix64(s * 31 + 5) % d->n;
        uint8_t k[KEYLEN], v[32];
        make_key(i, k);
        size_t vl = make_val(i, v);
        void *tv;
        size_t tvl;
        tstx *tx;
        TSCK(d->db, tstx_begin(d->db->pg, 0, &tx));
        TSCK(d->db, tsix_get(d->bt, tx, k, KEYLEN, &tv, &tvl));
        if (tvl != vl || memcmp(tv, v, vl)) die("%s: tostore btree: wrong value", d->tag);
        free(tv);
        if (d->hx) {
            TSCK(d->db, tsix_get(d->hx, tx, k, KEYLEN, &tv, &tvl));
            if (tvl != vl || memcmp(tv, v, vl)) die("%s: tostore hash: wrong value", d->tag);
            free(tv);
        }
        tstx_rollback(tx);
        MDB_txn *ltx;
        LMCK(mdb_txn_begin(d->lenv, NULL, MDB_RDONLY, &ltx));
        MDB_val mk = { KEYLEN, k }, mv;
        LMCK(mdb_get(ltx, d->ldbi, &mk, &mv));
        if (mv.mv_size != vl || memcmp(mv.mv_data, v, vl)) die("%s: LMDB: wrong value", d->tag);
        mdb_txn_abort(ltx);
        sqx *sqs[2] = { d->sq, d->sqi };
        for (int j = 0; j < 2; j++) {
            if (!sqs[j]) continue;
            sqlite3_bind_blob(sqs[j]->get, 1, k, KEYLEN, SQLITE_STATIC);
            if (sqlite3_step(sqs[j]->get) != SQLITE_ROW) die("%s: SQLite: key missing", d->tag);
            if ((size_t)sqlite3_column_bytes(sqs[j]->get, 0) != vl ||
                memcmp(sqlite3_column_blob(sqs[j]->get, 0), v, vl))
                die("%s: SQLite: wrong value", d->tag);
            sqlite3_reset(sqs[j]->get);
        }
    }
}

/* Build every engine of d at once (untimed; for the latency table). */
static void dset_build_all(dset *d, const uint64_t *ord)
{
    double t0 = now(), tl;
    double tb = ts_build_btree(d, ord, &tl);
    double th = ts_build_hash(d);
    double tm = lm_build(d, ord);
    d->sq = sq_open(d->sqdir, 0);
    double ts = sq_build(d->sq, d->n, ord);
    verify(d);
    printf("  built %s (%llu keys): tostore btree %.2f s, hash %.2f s, LMDB %.2f s, SQLite %.2f s "
           "(%.1f s in all)\n", d->tag, (unsigned long long)d->n, tb, th, tm, ts, now() - t0);
}

/* ---- l: bulk load --------------------------------------------------------- */

static void bench_bulk(dset *d, const uint64_t *ord)
{
    int R = g_rounds < 3 ? g_rounds : 3;
    if (g_big && R > 2) R = 2;
    /* the rowid + CREATE INDEX variant (info) takes minutes at 10M keys */
    int ne = g_big && !getenv("BENCH_SQLITE_ROWID") ? 3 : 4;
    if (getenv("BENCH_BULK_ROUNDS")) R = atoi(getenv("BENCH_BULK_ROUNDS"));
    if (R < 1) R = 1;
    if (R > MAXR) R = MAXR;
    eng e[4] = { { "tostore btree bulk_load", NULL, NULL, 1, {0}, NULL },
                 { "LMDB MDB_APPEND", NULL, NULL, 1, {0}, NULL },
                 { "SQLite WITHOUT ROWID", NULL, NULL, 1, {0}, NULL },
                 { "SQLite rowid+CREATE INDEX", NULL, NULL, 1, {0}, NULL } };
    double load[MAXR], commit[MAXR];
    char title[160];
    snprintf(title, sizeof title, "l. bulk load of %llu sorted keys into an empty index, keys/s "
             "(%d rounds, one build per engine and round, order rotating)", (unsigned long long)d->n, R);
    print_header(title, R);
    fflush(stdout);
    for (int r = 0; r < R; r++)
        for (int s = 0; s < ne; s++) {
            int j = (s + r) % ne;
            double t;
            if (j == 0) {
                ts_close_set(d);
                rmrf(d->tsdir);
                double tl;
                t = ts_build_btree(d, ord, &tl);
                load[r] = tl;
                commit[r] = t - tl;
            } else if (j == 1) {
                lm_close(d);
                rmrf(d->lmdir);
                t = lm_build(d, ord);
            } else if (j == 2) {
                sq_close(d->sq);
                rmrf(d->sqdir);
                d->sq = sq_open(d->sqdir, 0);
                t = sq_build(d->sq, d->n, ord);
            } else {
                sq_close(d->sqi);
                rmrf(d->sqidir);
                d->sqi = sq_open(d->sqidir, 1);
                t = sq_build(d->sqi, d->n, ord);
            }
            e[j].rate[r] = (double)d->n / t;
        }
    print_rates(e, ne, R, "keys/s");
    printf("  tostore: bulk_load %.0f ms + commit (new pages to the main file, fsync, commit frame, fsync) %.0f ms (medians)\n",
           median(load, R) * 1e3, median(commit, R) * 1e3);
    {
        char *mf = path_join(d->tsdir, TSPG_FILE), *wf = path_join(d->tsdir, TSWAL_FILE);
        struct stat a, b;
        double mmb = stat(mf, &a) == 0 ? (double)a.st_size / 1048576.0 : 0;
        double wmb = stat(wf, &b) == 0 ? (double)b.st_size / 1048576.0 : 0;
        printf("  on disk: tostore %.0f MB main file + %.0f MB log (kept for reuse), LMDB %.0f MB, "
               "SQLite %.0f MB", mmb, wmb, dir_mb(d->lmdir), dir_mb(d->sqdir));
        if (ne == 4) printf(", SQLite rowid+index %.0f MB", dir_mb(d->sqidir));
        printf("\n");
        free(mf);
        free(wf);
    }
    ratio_row("l. bulk load, btree vs SQLite", &e[0], &e[2], R, 1.5, "/s");
    ratio_row("l. bulk load, btree vs LMDB", &e[0], &e[1], R, 0.75, "/s");
    if (ne == 4) ratio_row("l. bulk load, btree vs SQLite rowid+idx", &e[0], &e[3], R, 0, "/s");
    double tl = load[0];
    for (int r = 1; r < R; r++) if (load[r] < tl) tl = load[r];
    printf("  tostore bulk_load call alone (no commit): %.2fM keys/s (best round)\n", (double)d->n / tl / 1e6);
}

/* ---- g / r / s / i ----------------------------------------------------------- */

static void report_pages(const char *label, const ectx *c)
{
    if (c->looks)
        printf("  %-40s %.2f pages got per operation\n", label, (double)c->pages / (double)c->looks);
}

static void bench_get(dset *d)
{
    ectx c[7];
    int kinds[7] = { K_BT, K_HX, K_LM, K_SQ, K_BT_GET, K_HX_GET, K_SQI };
    for (int i = 0; i < 7; i++) ectx_init(&c[i], d, kinds[i], 0x853c49e6748fea9bull);
    eng e[7] = { { "tostore btree", op_get, &c[0], 1, {0}, NULL },
                 { "tostore hash", op_get, &c[1], 1, {0}, NULL },
                 { "LMDB", op_get, &c[2], 1, {0}, NULL },
                 { "SQLite WITHOUT ROWID", op_get, &c[3], 1, {0}, NULL },
                 { "tostore btree, tsix_get", op_get, &c[4], 1, {0}, NULL },
                 { "tostore hash, tsix_get", op_get, &c[5], 1, {0}, NULL },
                 { "SQLite rowid+index", op_get, &c[6], 1, {0}, NULL } };
    int n = d->sqi ? 7 : 6;
    warm_all(d);
    char title[128];
    snprintf(title, sizeof title, "g. random point gets, %llu keys, %d per read transaction, gets/s",
             (unsigned long long)d->n, GET_BATCH);
    rounds(title, e, n, g_rounds, 0.5 * g_time, 0.05, "/s");
    ratio_row("g. point gets, btree vs SQLite", &e[0], &e[3], g_rounds, 2.0, "/s");
    ratio_row("g. point gets, btree vs LMDB", &e[0], &e[2], g_rounds, 0.8, "/s");
    ratio_row("g. point gets, hash vs btree", &e[1], &e[0], g_rounds, 0, "/s");
    ratio_row("g. point gets, hash vs LMDB", &e[1], &e[2], g_rounds, 0, "/s");
    ratio_row("g. (tsix_get) btree vs SQLite", &e[4], &e[3], g_rounds, 0, "/s");
    if (d->sqi) ratio_row("g. btree vs SQLite rowid+index", &e[0], &e[6], g_rounds, 0, "/s");
    report_pages("tostore btree (cursor reused):", &c[0]);
    report_pages("tostore btree (tsix_get, fresh cursor):", &c[4]);
    report_pages("tostore hash (cursor reused):", &c[1]);
    report_pages("tostore hash (tsix_get, fresh cursor):", &c[5]);
}

static void bench_range(dset *d)
{
    ectx c[3];
    int kinds[3] = { K_BT, K_LM, K_SQ };
    for (int i = 0; i < 3; i++) ectx_init(&c[i], d, kinds[i], 0x2545F4914F6CDD1Dull);
    eng e[3] = { { "tostore btree", op_range, &c[0], 1, {0}, NULL },
                 { "LMDB", op_range, &c[1], 1, {0}, NULL },
                 { "SQLite WITHOUT ROWID", op_range, &c[2], 1, {0}, NULL } };
    char title[128];
    snprintf(title, sizeof title, "r. range scans of %d entries from a random key, %llu keys, scans/s",
             RANGE_LEN, (unsigned long long)d->n);
    rounds(title, e, 3, g_rounds, 0.5 * g_time, 0.05, "/s");
    ratio_row("r. range scans (100), btree vs SQLite", &e[0], &e[2], g_rounds, 2.5, "/s");
    ratio_row("r. range scans (100), btree vs LMDB", &e[0], &e[1], g_rounds, 0, "/s");
    report_pages("tostore btree:", &c[0]);
}

static void bench_scan(dset *d)
{
    ectx c[3];
    int kinds[3] = { K_BT, K_LM, K_SQ };
    for (int i = 0; i < 3; i++) ectx_init(&c[i], d, kinds[i], 1);
    eng e[3] = { { "tostore btree", op_scan, &c[0], 1, {0}, NULL },
                 { "LMDB", op_scan, &c[1], 1, {0}, NULL },
                 { "SQLite WITHOUT ROWID", op_scan, &c[2], 1, {0}, NULL } };
    char title[128];
    snprintf(title, sizeof title, "s. full scan, %llu keys, entries/s", (unsigned long long)d->n);
    rounds(title, e, 3, g_rounds, 0.6 * g_time, g_big ? 1.0 : 0.2, "/s");
    ratio_row("s. full scan, btree vs SQLite", &e[0], &e[2], g_rounds, 2.5, "/s");
    ratio_row("s. full scan, btree vs LMDB", &e[0], &e[1], g_rounds, 0, "/s");
    if (c[0].looks)
        printf("  tostore btree: %.0f pages got per full scan (%.1f entries per page)\n",
               (double)c[0].pages / (double)c[0].looks,
               (double)d->n * (double)c[0].looks / (double)c[0].pages);
}

static void bench_insert(dset *d)
{
    ectx c[3];
    int kinds[3] = { K_BT, K_LM, K_SQ };
    for (int i = 0; i < 3; i++) ectx_init(&c[i], d, kinds[i], 1);
    unsigned flags;
    mdb_env_get_flags(d->lenv, &flags);
    LMCK(mdb_env_set_flags(d->lenv, MDB_NOSYNC, 1));
    eng e[3] = { { "tostore btree (normal)", op_insert, &c[0], 1, {0}, NULL },
                 { "LMDB (MDB_NOSYNC)", op_insert, &c[1], 1, {0}, NULL },
                 { "SQLite (WAL, NORMAL)", op_insert, &c[2], 1, {0}, NULL } };
    char title[160];
    snprintf(title, sizeof title, "i. random inserts into the %llu-key index, %d per transaction, "
             "inserts/s", (unsigned long long)d->n, INS_BATCH);
    tspg_stats s0, s1;
    tspg_stats_get(d->db->pg, &s0);
    rounds(title, e, 3, g_rounds, 0.5 * g_time, 0.1, "/s");
    tspg_stats_get(d->db->pg, &s1);
    ratio_row("i. random inserts, btree vs SQLite", &e[0], &e[2], g_rounds, 0, "/s");
    ratio_row("i. random inserts, btree vs LMDB", &e[0], &e[1], g_rounds, 0, "/s");
    printf("  inserted: tostore %llu, LMDB %llu, SQLite %llu keys; tostore %.2f pages got per insert, "
           "%llu checkpoints\n", (unsigned long long)(c[0].next - d->n),
           (unsigned long long)(c[1].next - d->n), (unsigned long long)(c[2].next - d->n),
           c[0].looks ? (double)c[0].pages / (double)c[0].looks : 0.0,
           (unsigned long long)(s1.checkpoints - s0.checkpoints));
    mdb_env_set_flags(d->lenv, MDB_NOSYNC, 0);
}

/* ---- t: latency table --------------------------------------------------------- */

typedef struct lat {
    uint64_t n;
    double   ns[6];
    double   pages_bt, pages_bt_fresh, pages_hx, pages_hx_fresh;
    uint64_t small_hits, small_misses;
} lat;

static void latency_at(dset *d, lat *out)
{
    ts_open_small(d);
    warm_all(d);
    ectx c[8];
    int kinds[8] = { K_BT, K_HX, K_LM, K_SQ, K_BT_SMALL, K_BT_GET, K_HX_GET };
    for (int i = 0; i < 7; i++) ectx_init(&c[i], d, kinds[i], 0x9E3779B97F4A7C15ull);
    eng e[7] = { { "tostore btree", op_get, &c[0], 1, {0}, NULL },
                 { "tostore hash", op_get, &c[1], 1, {0}, NULL },
                 { "LMDB", op_get, &c[2], 1, {0}, NULL },
                 { "SQLite WITHOUT ROWID", op_get, &c[3], 1, {0}, NULL },
                 { "tostore btree, 1 MiB cache", op_get, &c[4], 1, {0}, NULL },
                 { "tostore btree, tsix_get", op_get, &c[5], 1, {0}, NULL },
                 { "tostore hash, tsix_get", op_get, &c[6], 1, {0}, NULL } };
    for (int i = 0; i < 7; i++) c[i].pages = c[i].looks = 0;
    tspg_stats s0, s1;
    tspg_stats_get(d->dbs->pg, &s0);
    char title[128];
    snprintf(title, sizeof title, "t. point-get latency at %llu keys, gets/s", (unsigned long long)d->n);
    int saved = g_rounds;
    g_rounds = g_rounds < 3 ? g_rounds : 3;
    rounds(title, e, 7, g_rounds, 0.3 * g_time, 0.05, "/s");
    tspg_stats_get(d->dbs->pg, &s1);
    out->n = d->n;
    int map[6] = { 0, 1, 2, 3, 4, 5 };
    for (int i = 0; i < 6; i++) out->ns[i] = 1e9 / median(e[map[i]].rate, g_rounds);
    g_rounds = saved;
    out->pages_bt = (double)c[0].pages / (double)c[0].looks;
    out->pages_hx = (double)c[1].pages / (double)c[1].looks;
    out->pages_bt_fresh = (double)c[5].pages / (double)c[5].looks;
    out->pages_hx_fresh = (double)c[6].pages / (double)c[6].looks;
    out->small_hits = s1.cache_hits - s0.cache_hits;
    out->small_misses = s1.cache_misses - s0.cache_misses;
}

static void print_latency(const lat *l, int n)
{
    printf("\n== point-get latency (ns per get, median of rounds; 1 thread, %d gets per read "
           "transaction) ==\n", GET_BATCH);
    printf("%-10s %9s %9s %9s %9s %11s %9s | %8s %8s %8s %8s | %s\n", "keys", "btree", "hash", "LMDB",
           "SQLite", "btree 1MiB", "tsix_get", "bt pages", "bt fresh", "hx pages", "hx fresh",
           "1 MiB cache: miss rate");
    for (int i = 0; i < n; i++) {
        char nk[16];
        fmt_num(nk, sizeof nk, (double)l[i].n, "");
        uint64_t tot = l[i].small_hits + l[i].small_misses;
        printf("%-10s %9.0f %9.0f %9.0f %9.0f %11.0f %9.0f | %8.2f %8.2f %8.2f %8.2f | %.0f%%\n", nk,
               l[i].ns[0], l[i].ns[1], l[i].ns[2], l[i].ns[3], l[i].ns[4], l[i].ns[5], l[i].pages_bt,
               l[i].pages_bt_fresh, l[i].pages_hx, l[i].pages_hx_fresh,
               tot ? 100.0 * (double)l[i].small_misses / (double)tot : 0.0);
    }
    printf("  btree/hash pages: pages got per lookup (tstx_touched), with one cursor reused for the\n"
           "  batch (the root stays pinned between seeks) and with a fresh cursor (tsix_get) = depth\n");
    /* log n growth: the depth grows by about log_f(n2/n1) with fanout f >= 64 */
    int ok = 1;
    for (int i = 1; i < n; i++) {
        double grow = l[i].pages_bt_fresh - l[i - 1].pages_bt_fresh;
        double allowed = log((double)l[i].n / (double)l[i - 1].n) / log(64.0) + 1.0;
        if (grow < -0.01 || grow > allowed) ok = 0;
    }
    char v[40] = "", r[64] = "at ";
    for (int i = 0; i < n; i++) {
        char t[24], nk[16];
        snprintf(t, sizeof t, "%s%.1f", i ? "/" : "", l[i].pages_bt_fresh);
        strncat(v, t, sizeof v - strlen(v) - 1);
        fmt_num(nk, sizeof nk, (double)l[i].n, "");
        snprintf(t, sizeof t, "%s%s", i ? "/" : "", nk);
        strncat(r, t, sizeof r - strlen(r) - 1);
    }
    strncat(r, " keys", sizeof r - strlen(r) - 1);
    add_row("t. btree pages per lookup (log n)", v, r, "-", "log n", ok ? "PASS" : "MISS");
}

/* ---- profile mode ---------------------------------------------------------- */

static int profile_mode(const char *what, double secs)
{
    dset d;
    dset_init(&d, g_n, "profile");
    uint64_t *ord = sorted_ids(d.n);
    if (!strcmp(what, "bulk")) {
        double t = 0, tl = 0, tt;
        int n = 0;
        do {
            ts_close_set(&d);
            rmrf(d.tsdir);
            t += ts_build_btree(&d, ord, &tt);
            tl += tt;
            n++;
        } while (t < secs);
        printf("bulk: %.2fM keys/s over %d builds (bulk_load %.0f ms, commit %.0f ms per build)\n",
               (double)d.n * n / t / 1e6, n, tl / n * 1e3, (t - tl) / n * 1e3);
        dset_free(&d);
        free(ord);
        return 0;
    }
    double tl;
    ts_build_btree(&d, ord, &tl);
    int kind = K_BT;
    op_fn op = op_get;
    if (!strcmp(what, "hashget")) {
        double th = ts_build_hash(&d);
        printf("hash index: %llu inserts in %.2f s (%.0f/s)\n", (unsigned long long)d.n, th,
               (double)d.n / th);
        kind = K_HX;
    } else if (!strcmp(what, "getfresh")) kind = K_BT_GET;
    else if (!strcmp(what, "range")) op = op_range;
    else if (!strcmp(what, "scan")) op = op_scan;
    else if (!strcmp(what, "insert")) op = op_insert;
    else if (strcmp(what, "get")) {
        fprintf(stderr, "profile: get|getfresh|hashget|range|scan|insert|bulk [seconds]\n");
        dset_free(&d);
        free(ord);
        return 2;
    }
    ectx c;
    ectx_init(&c, &d, kind, 12345);
    eng e = { what, op, &c, 1, {0}, NULL };
    double el;
    run_eng(&e, 0.2, &el); /* warm */
    c.pages = c.looks = 0;
    uint64_t ops = run_eng(&e, secs, &el);
    printf("%s on %llu keys: %.0f ops/s (%.0f ns each), %.2f pages got per operation\n", what,
           (unsigned long long)d.n, (double)ops / el, el / (double)ops * 1e9,
           c.looks ? (double)c.pages / (double)c.looks : 0.0);
    dset_free(&d);
    free(ord);
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const char *base = getenv("BENCH_DIR");
    const char *prof = NULL;
    double prof_secs = 5;
    bench = (bench_style){ "bench_index", 34, 10, 46, { 40, 12, 36, 20, 10 } };
    if (argc > 1 && !strcmp(argv[1], "profile")) {
        prof = argc > 2 ? argv[2] : "";
        if (argc > 3) prof_secs = atof(argv[3]);
    } else if (argc > 1) {
        base = argv[1];
    }
    if (!base || !*base) base = BENCH_DEFAULT_DIR;
    if (getenv("BENCH_ROUNDS")) g_rounds = atoi(getenv("BENCH_ROUNDS"));
    if (g_rounds < 1) g_rounds = 1;
    if (g_rounds > MAXR) g_rounds = MAXR;
    if (getenv("BENCH_TIME")) g_time = atof(getenv("BENCH_TIME"));
    if (g_time <= 0) g_time = 1.0;
    g_big = getenv("BENCH_BIG") && atoi(getenv("BENCH_BIG")) > 0;
    if (g_big) {
        g_n = 10000000;
        g_cache = 2048ll << 20;
    }
    if (getenv("BENCH_N") && atoll(getenv("BENCH_N")) >= 1000) g_n = (uint64_t)atoll(getenv("BENCH_N"));
    if (getenv("BENCH_CACHE_MB") && atoll(getenv("BENCH_CACHE_MB")) > 0)
        g_cache = atoll(getenv("BENCH_CACHE_MB")) << 20;
    if (getenv("BENCH_ONLY") && *getenv("BENCH_ONLY")) g_only = getenv("BENCH_ONLY");
    if (getenv("BENCH_HASH_TXN") && atoll(getenv("BENCH_HASH_TXN")) > 0)
        g_hash_txn = (uint64_t)atoll(getenv("BENCH_HASH_TXN"));
    mkdir_or_die(base);
    char run[64];
    snprintf(run, sizeof run, "index-%d", (int)getpid());
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
    printf("bench_index: tostore %s, SQLite %s, %s\n", ts_version(), sqlite3_libversion(),
           mdb_version(NULL, NULL, NULL));
    printf("date %s; %s %s; %ld cores; data in %s\n", date, u.sysname, u.release,
           sysconf(_SC_NPROCESSORS_ONLN), root);
    printf("N = %llu keys of %d bytes (ts_key_int(random) + 7-byte number), values 8-32 bytes; "
           "cache %lld MiB for tostore (cacheBytes) and SQLite (cache_size), LMDB reads through "
           "the OS page cache; rounds %d, time x%.2f; workloads %s%s\n",
           (unsigned long long)g_n, KEYLEN, g_cache >> 20, g_rounds, g_time, g_only,
           g_big ? " (BENCH_BIG)" : "");
    double t0 = now();
    uint64_t *ord = sorted_ids(g_n);
    printf("  sorted %llu keys in %.1f s\n", (unsigned long long)g_n, now() - t0);
    dset big;
    dset_init(&big, g_n, g_big ? "10M" : "main");
    if (wants('l')) {
        bench_bulk(&big, ord);
    } else {
        double tl;
        ts_build_btree(&big, ord, &tl);
        lm_build(&big, ord);
        big.sq = sq_open(big.sqdir, 0);
        sq_build(big.sq, big.n, ord);
    }
    {
        double th = ts_build_hash(&big);
        verify(&big);
        printf("\n  tostore hash index built by %llu inserts (%llu per transaction, random order): "
               "%.2f s (%.0f keys/s; no bulk_load in the hash plugin); every engine checked on 2000 keys\n",
               (unsigned long long)big.n, (unsigned long long)g_hash_txn, th, (double)big.n / th);
    }
    if (wants('g')) bench_get(&big);
    if (wants('r')) bench_range(&big);
    if (wants('s')) bench_scan(&big);
    if (wants('t')) {
        lat l[3];
        int nl = 0;
        printf("\n-- t. latency table: building the smaller data sets --\n");
        uint64_t sizes[3] = { 10000, 1000000, 10000000 };
        for (int i = 0; i < 3; i++) {
            if (sizes[i] > g_n) break;
            if (sizes[i] == g_n) { latency_at(&big, &l[nl++]); continue; }
            dset d;
            char tag[32];
            snprintf(tag, sizeof tag, "%lluk", (unsigned long long)(sizes[i] / 1000));
            dset_init(&d, sizes[i], tag);
            uint64_t *o = sorted_ids(sizes[i]);
            dset_build_all(&d, o);
            free(o);
            latency_at(&d, &l[nl++]);
            dset_free(&d);
        }
        if (g_n != 10000 && g_n != 1000000 && g_n != 10000000) latency_at(&big, &l[nl++]);
        print_latency(l, nl);
    }
    if (wants('i')) bench_insert(&big);
    dset_free(&big);
    free(ord);
    print_summary();
    printf("total time %.0f s\n", now() - t0);
    if (!getenv("BENCH_KEEP")) rmrf(root);
    free(root);
    return 0;
}
