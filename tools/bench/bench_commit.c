/*
 * bench_commit: tostore's durable commit path against SQLite (WAL), LMDB and
 * the disk's append+fdatasync floor, on the same machine in the same run.
 *
 * fsync latency on the machines this runs on drifts by up to 10x over
 * minutes, so absolute numbers mean little: every workload runs its engines
 * in rounds of interleaved short slices (the order rotates) and reports, per
 * round, the ratio of tostore to each reference measured within the same
 * second or so.  The table gives the median of those per-round ratios and
 * their range.  Engines start in their steady state (logs through one
 * checkpoint cycle).  Method and results: docs/benchmarks.md.
 * The rounds, ratios and summary table are shared: bench_common.c.
 *
 * Workloads (issue 3, "Benchmark"):
 *   a. 1 thread, durable: one-page update per transaction (page API)
 *   b. 8 threads, durable: group commit vs SQLite / LMDB writers
 *   c. normal durability
 *   d. recovery of a ~100 MB log (writer killed with SIGKILL)
 *   e. open + close of a cleanly closed 256 MB (BENCH_BIG=1: 1 GB)
 *      chacha20poly1305 database with a raw key, plugins loaded
 *   f. cipher slowdown: durable commits, cached reads, uncached reads
 *
 * Environment: BENCH_DIR (data folder; default beside the build),
 * BENCH_ROUNDS (5), BENCH_TIME (seconds-per-engine multiplier, 1.0),
 * BENCH_BIG=1 (1 GB database for e), BENCH_ONLY=abcdef (subset),
 * BENCH_KEEP=1 (keep the data folder), BENCH_SLICE (0.25 s), BENCH_CONFIG
 * (config keys added to every tostore database, e.g. "\"pageDigest\": true").
 *
 * Usage: bench_commit [data-dir]
 *        bench_commit profile commit1|commit8|normal1|normal8|cached|uncached|open [secs]
 * The profile mode runs one tostore workload alone (for perf, callgrind or
 * strace) and prints where the wall time of a commit goes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "api/db.h"
#include "wal/wal.h"
#include "bench_common.h"

#ifndef BENCH_DEFAULT_DIR
#define BENCH_DEFAULT_DIR "benchdata"
#endif

#define MAXT 8          /* threads in workload b */
#define KEYHEX "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static const char *g_root;      /* BENCH_DIR/run-<pid> */
static int    g_rounds = 5;
static double g_time = 1.0;
static double g_slice = 0.25;
static int    g_big;
static const char *g_only = "abcdef";

/* ---- utilities ------------------------------------------------------ */

static uint64_t file_size(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static int wants(char w) { return strchr(g_only, w) != NULL; }

/* ---- summary rows ------------------------------------------------------ */

static void fmt_rate(char *buf, size_t n, const char *pre, double v)
{
    snprintf(buf, n, "%s%.0f/s", pre, v);
}

static void ratio_row(const char *what, const eng *a, const eng *b, double goal_min,
                      const char *goal_text)
{
    ratio x = ratio_of(a, b, g_rounds);
    char value[64], ref[64], rs[64];
    fmt_rate(value, sizeof value, "", median(a->rate, g_rounds));
    fmt_rate(ref, sizeof ref, "", median(b->rate, g_rounds));
    snprintf(ref, sizeof ref, "%s %.0f/s", b->name, median(b->rate, g_rounds));
    snprintf(rs, sizeof rs, "%.2fx [%.2f-%.2f]", x.med, x.lo, x.hi);
    add_row(what, value, ref, rs, goal_text ? goal_text : "-",
            goal_text ? (x.med >= goal_min ? "PASS" : "MISS") : "info");
}

/* ---- tostore ------------------------------------------------------------ */

typedef struct tsb {
    ts_db   *db;
    char    *dir;
    uint64_t pages[MAXT];     /* one page per thread (write workloads) */
    uint64_t first, npages;   /* read workloads: pages [first, first+npages) */
    uint64_t rng[MAXT];
    int      batch;
} tsb;

static const char *cipher_json(const char *cipher)
{
    static char buf[256];
    if (!cipher || !*cipher) return "";
    snprintf(buf, sizeof buf, ", \"cipher\": {\"module\": \"%s\", \"key\": \"" KEYHEX "\"}", cipher);
    return buf;
}

static const char *g_extra_cfg = "";   /* appended to every config (e.g. plugin choice) */

static ts_db *ts_open_dir(const char *dir, const char *durability, const char *cipher,
                          long long cache_bytes)
{
    char cfg[3072], cache[64] = "";
    if (cache_bytes > 0) snprintf(cache, sizeof cache, ", \"cacheBytes\": %lld", cache_bytes);
    snprintf(cfg, sizeof cfg,
             "{\"path\": \"%s\", \"durability\": \"%s\", \"storage\": {\"backend\": \"posix\"}%s%s"
#ifdef BENCH_PLUGIN_DIR
             ", \"pluginPath\": \"" BENCH_PLUGIN_DIR "\""
#endif
             "%s%s}", dir, durability, cache, cipher_json(cipher), g_extra_cfg, bench_config_more());
    ts_db *db = NULL;
    if (ts_open_json(cfg, &db) != TS_OK) die("ts_open %s: %s", dir, ts_errmsg(NULL));
    return db;
}

#define TSCK(db, call) do { if ((call) != TS_OK) die("%s:%d %s: %s", __FILE__, __LINE__, #call, ts_errmsg(db)); } while (0)

/* A fresh database with MAXT pages, one per writer thread. */
static tsb *tsb_new(const char *name, const char *durability, const char *cipher)
{
    tsb *t = calloc(1, sizeof *t);
    if (!t) die("out of memory");
    t->dir = path_join(g_root, name);
    t->db = ts_open_dir(t->dir, durability, cipher, 0);
    tstx *tx;
    TSCK(t->db, tstx_begin(t->db->pg, 1, &tx));
    for (int i = 0; i < MAXT; i++) {
        tspage *p;
        TSCK(t->db, tstx_alloc(tx, &p, &t->pages[i]));
        memset(tspage_data(p), 0, 64);
        tspage_release(p);
    }
    TSCK(t->db, tstx_commit(tx));
    /* Start in the steady state: the log has been through one checkpoint
     * cycle (16 MB of frames, checkpointed, log restarted), as in a
     * database that has been in use. */
    TSCK(t->db, tstx_begin(t->db->pg, 1, &tx));
    for (int i = 0; i < 4096; i++) {
        tspage *p;
        uint64_t no;
        TSCK(t->db, tstx_alloc(tx, &p, &no));
        tspage_release(p);
    }
    TSCK(t->db, tstx_commit(tx));
    TSCK(t->db, tspg_checkpoint(t->db->pg, 1));
    return t;
}

static void tsb_free(tsb *t)
{
    if (!t) return;
    if (t->db && ts_close(t->db) != TS_OK) die("ts_close: %s", ts_errmsg(NULL));
    free(t->dir);
    free(t);
}

/* One transaction: read-modify-write of a counter in the thread's page. */
static int op_ts_commit(void *ctx, int tid)
{
    tsb *t = ctx;
    tstx *tx;
    tspage *p;
    TSCK(t->db, tstx_begin(t->db->pg, 1, &tx));
    TSCK(t->db, tstx_get(tx, t->pages[tid], 1, &p));
    uint64_t v;
    uint8_t *d = tspage_data(p);
    memcpy(&v, d, 8);
    v++;
    memcpy(d, &v, 8);
    tspage_release(p);
    TSCK(t->db, tstx_commit(tx));
    return 1;
}

/* A batch of random page reads in one read transaction. */
static int op_ts_read(void *ctx, int tid)
{
    tsb *t = ctx;
    tstx *tx;
    TSCK(t->db, tstx_begin(t->db->pg, 0, &tx));
    volatile uint8_t sink = 0;
    for (int i = 0; i < t->batch; i++) {
        tspage *p;
        uint64_t no = t->first + rng_next(&t->rng[tid]) % t->npages;
        TSCK(t->db, tstx_get(tx, no, 0, &p));
        sink ^= tspage_data(p)[100];
        tspage_release(p);
    }
    (void)sink;
    tstx_rollback(tx);
    return t->batch;
}

/* Build a database of `pages` data pages in large transactions (normal
 * durability), then close it cleanly (checkpointed). */
static double ts_build(const char *dir, const char *cipher, uint64_t pages)
{
    double t0 = now();
    ts_db *db = ts_open_dir(dir, "normal", cipher, 0);
    uint64_t done = 0;
    while (done < pages) {
        tstx *tx;
        TSCK(db, tstx_begin(db->pg, 1, &tx));
        for (int i = 0; i < 2048 && done < pages; i++, done++) {
            tspage *p;
            uint64_t no;
            TSCK(db, tstx_alloc(tx, &p, &no));
            uint8_t *d = tspage_data(p);
            for (int k = 0; k < 4000; k += 8) memcpy(d + k, &no, 8);
            tspage_release(p);
        }
        TSCK(db, tstx_commit(tx));
    }
    if (ts_close(db) != TS_OK) die("ts_close: %s", ts_errmsg(NULL));
    return now() - t0;
}

/* ---- SQLite ------------------------------------------------------------- */

typedef struct sqb {
    sqlite3      *c[MAXT];
    sqlite3_stmt *st[MAXT];
    atomic_ulong  busy;
} sqb;

static void sq_exec(sqlite3 *c, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(c, sql, NULL, NULL, &err) != SQLITE_OK) die("sqlite: %s: %s", sql, err);
}

static sqb *sqb_new(const char *name, const char *sync, int conns)
{
    sqb *s = calloc(1, sizeof *s);
    if (!s) die("out of memory");
    char *dir = path_join(g_root, name);
    mkdir_or_die(dir);
    char *file = path_join(dir, "db.sqlite");
    char pragma[128];
    snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s;", sync);
    for (int i = 0; i < conns; i++) {
        if (sqlite3_open(file, &s->c[i]) != SQLITE_OK) die("sqlite3_open %s", file);
        sqlite3_busy_timeout(s->c[i], 5000);
        sq_exec(s->c[i], "PRAGMA journal_mode=WAL;");
        sq_exec(s->c[i], pragma);
        if (i == 0) {
            sq_exec(s->c[0], "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, pad BLOB);");
            for (int k = 1; k <= MAXT; k++) {
                char sql[128];
                snprintf(sql, sizeof sql, "INSERT INTO t VALUES(%d, 0, zeroblob(100));", k);
                sq_exec(s->c[0], sql);
            }
        }
        if (i == 0) {
            /* Steady state, as for tostore: the WAL has grown (~1000
             * frames) and been checkpointed once, so later commits reuse
             * its space from the start as SQLite does after a checkpoint. */
            sq_exec(s->c[0], "CREATE TABLE w(b BLOB); INSERT INTO w VALUES(zeroblob(4000000));");
            sq_exec(s->c[0], "DROP TABLE w;");
            sq_exec(s->c[0], "PRAGMA wal_checkpoint;");
        }
        if (sqlite3_prepare_v2(s->c[i], "UPDATE t SET v = v + 1 WHERE id = ?1", -1, &s->st[i], NULL))
            die("sqlite prepare: %s", sqlite3_errmsg(s->c[i]));
    }
    free(file);
    free(dir);
    return s;
}

static void sqb_free(sqb *s)
{
    for (int i = 0; i < MAXT; i++) {
        sqlite3_finalize(s->st[i]);
        if (s->c[i]) sqlite3_close(s->c[i]);
    }
    free(s);
}

static int op_sqlite(void *ctx, int tid)
{
    sqb *s = ctx;
    sqlite3_stmt *st = s->st[tid];
    sqlite3_bind_int(st, 1, tid + 1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        atomic_fetch_add(&s->busy, 1);
        sqlite3_reset(st);
    }
    if (rc != SQLITE_DONE) die("sqlite step: %s", sqlite3_errmsg(s->c[tid]));
    sqlite3_reset(st);
    return 1;
}

/* ---- LMDB ---------------------------------------------------------------- */

typedef struct lmb {
    MDB_env *env;
    MDB_dbi  dbi;
} lmb;

#define LMCK(call) do { int e_ = (call); if (e_) die("lmdb %s: %s", #call, mdb_strerror(e_)); } while (0)

static lmb *lmb_new(const char *name, unsigned flags)
{
    lmb *l = calloc(1, sizeof *l);
    if (!l) die("out of memory");
    char *dir = path_join(g_root, name);
    mkdir_or_die(dir);
    LMCK(mdb_env_create(&l->env));
    LMCK(mdb_env_set_mapsize(l->env, (size_t)256 << 20));
    LMCK(mdb_env_open(l->env, dir, flags, 0644));
    MDB_txn *tx;
    LMCK(mdb_txn_begin(l->env, NULL, 0, &tx));
    LMCK(mdb_dbi_open(tx, NULL, 0, &l->dbi));
    uint8_t val[108] = {0};
    for (uint64_t k = 0; k < MAXT; k++) {
        MDB_val mk = { sizeof k, &k }, mv = { sizeof val, val };
        LMCK(mdb_put(tx, l->dbi, &mk, &mv, 0));
    }
    LMCK(mdb_txn_commit(tx));
    free(dir);
    return l;
}

static void lmb_free(lmb *l)
{
    mdb_env_close(l->env);
    free(l);
}

static int op_lmdb(void *ctx, int tid)
{
    lmb *l = ctx;
    MDB_txn *tx;
    uint64_t k = (uint64_t)tid;
    MDB_val mk = { sizeof k, &k }, mv;
    LMCK(mdb_txn_begin(l->env, NULL, 0, &tx));
    LMCK(mdb_get(tx, l->dbi, &mk, &mv));
    uint8_t val[108];
    memcpy(val, mv.mv_data, sizeof val);
    uint64_t v;
    memcpy(&v, val, 8);
    v++;
    memcpy(val, &v, 8);
    mv.mv_size = sizeof val;
    mv.mv_data = val;
    LMCK(mdb_put(tx, l->dbi, &mk, &mv, 0));
    LMCK(mdb_txn_commit(tx));
    return 1;
}

/* ---- the fdatasync floor -------------------------------------------------- */

typedef struct flb {
    int      fd;
    off_t    off, cap;
    int      overwrite;
    size_t   size;            /* bytes per append */
    int      random;          /* fresh random bytes each write (incompressible) */
    int      dsync;           /* pwritev2(RWF_DSYNC) instead of pwrite + fdatasync */
    int      dfd;             /* >= 0: O_DIRECT | O_DSYNC writes of whole 4 KB blocks */
    uint8_t *abuf;            /* their 4 KB-aligned buffer */
    uint64_t rng;
    uint8_t  buf[8192 + 64];
} flb;

static flb *flb_new(const char *name, int overwrite, size_t size)
{
    flb *f = calloc(1, sizeof *f);
    if (!f) die("out of memory");
    char *dir = path_join(g_root, name);
    mkdir_or_die(dir);
    char *file = path_join(dir, "floor.dat");
    f->fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) die("open %s: %s", file, strerror(errno));
    f->overwrite = overwrite;
    f->size = size;
    f->cap = (off_t)64 << 20;
    memset(f->buf, 0x5a, sizeof f->buf);
    if (overwrite) { /* preallocate: the loop then overwrites allocated blocks */
        f->cap = (off_t)16 << 20;
        for (off_t o = 0; o < f->cap; o += 4096)
            if (pwrite(f->fd, f->buf, 4096, o) != 4096) die("pwrite: %s", strerror(errno));
        if (fsync(f->fd)) die("fsync: %s", strerror(errno));
    }
    f->dfd = -1;
    if (overwrite == 2) {
        f->dfd = open(file, O_RDWR | O_CLOEXEC | O_DIRECT | O_DSYNC);
        if (f->dfd < 0) die("open %s with O_DIRECT: %s", file, strerror(errno));
        if (posix_memalign((void **)&f->abuf, 4096, 3 * 4096)) die("out of memory");
        memset(f->abuf, 0x5a, 3 * 4096);
    }
    free(file);
    free(dir);
    return f;
}

static void flb_free(flb *f)
{
    if (f->dfd >= 0) close(f->dfd);
    free(f->abuf);
    close(f->fd);
    free(f);
}

/* Append size bytes (4 KB for the floor), fdatasync.  Past 64 MB the file is truncated and the loop
 * starts over (as a log would after a checkpoint). */
static int op_floor(void *ctx, int tid)
{
    (void)tid;
    flb *f = ctx;
    if (f->off + (off_t)f->size > f->cap) {
        if (!f->overwrite && ftruncate(f->fd, 0)) die("ftruncate: %s", strerror(errno));
        f->off = 0;
    }
    if (f->random)
        for (size_t i = 0; i + 8 <= f->size; i += 8) {
            uint64_t x = rng_next(&f->rng);
            memcpy(f->buf + i, &x, 8);
        }
    memcpy(f->buf, &f->off, sizeof f->off);
    if (f->dfd >= 0) {
        /* what a one-frame commit of tostore's log writes with write_sync:
         * the blocks the frame covers, the first one with the bytes before it */
        off_t a = f->off & ~(off_t)4095, e = (f->off + (off_t)f->size + 4095) & ~(off_t)4095;
        memcpy(f->abuf + (f->off - a), &f->off, sizeof f->off);
        if (pwrite(f->dfd, f->abuf, (size_t)(e - a), a) != (ssize_t)(e - a))
            die("pwrite(O_DIRECT): %s", strerror(errno));
        f->off += (off_t)f->size;
        return 1;
    }
    if (f->dsync) {
        struct iovec iov = { f->buf, f->size };
        if (pwritev2(f->fd, &iov, 1, f->off, RWF_DSYNC) != (ssize_t)f->size)
            die("pwritev2(RWF_DSYNC): %s", strerror(errno));
        f->off += (off_t)f->size;
        return 1;
    }
    if (pwrite(f->fd, f->buf, f->size, f->off) != (ssize_t)f->size) die("pwrite: %s", strerror(errno));
    f->off += (off_t)f->size;
    if (fdatasync(f->fd)) die("fdatasync: %s", strerror(errno));
    return 1;
}

/* ---- a/b/c: commit throughput ---------------------------------------------- */

static void bench_a(void)
{
    tsb *ts = tsb_new("a-tostore", "full", NULL);
    sqb *sq = sqb_new("a-sqlite", "FULL", 1);
    lmb *lm = lmb_new("a-lmdb", 0);
    flb *fl = flb_new("a-floor", 0, 4096);
    flb *f8 = flb_new("a-floor-frame", 1, 4096 + TSWAL_FRAME_HDR);
    flb *fo = flb_new("a-floor-ow", 1, 4096);
    flb *fd = flb_new("a-floor-dsync", 1, 4096 + TSWAL_FRAME_HDR);
    fd->dsync = 1;
    flb *fx = flb_new("a-floor-direct", 2, 4096 + TSWAL_FRAME_HDR);
    eng e[] = {
        { "tostore (full)", op_ts_commit, ts, 1, {0}, NULL },
        { "SQLite WAL FULL", op_sqlite, sq, 1, {0}, NULL },
        { "LMDB (durable)", op_lmdb, lm, 1, {0}, NULL },
        { "fdatasync floor", op_floor, fl, 1, {0}, NULL },
        { "overwrite 4144 B+fdatasync", op_floor, f8, 1, {0}, NULL },
        { "overwrite 4 KB+fdatasync", op_floor, fo, 1, {0}, NULL },
        { "overwrite 4144 B, RWF_DSYNC", op_floor, fd, 1, {0}, NULL },
        { "4144 B in 4 KB blocks, O_DIRECT", op_floor, fx, 1, {0}, NULL },
    };
    rounds("a. single-thread durable commits/s", e, 8, g_rounds, 1.25 * g_time, g_slice, "/s");
    print_ratio("tostore / SQLite WAL FULL", ratio_of(&e[0], &e[1], g_rounds));
    print_ratio("tostore / LMDB", ratio_of(&e[0], &e[2], g_rounds));
    print_ratio("tostore / fdatasync floor", ratio_of(&e[0], &e[3], g_rounds));
    print_ratio("SQLite FULL / fdatasync floor", ratio_of(&e[1], &e[3], g_rounds));
    print_ratio("fdatasync floor / SQLite FULL (issue: 1.36-1.44)",
                ratio_of(&e[3], &e[1], g_rounds));
    print_ratio("overwrite 4144 B (one frame, reused log) / floor",
                ratio_of(&e[4], &e[3], g_rounds));
    print_ratio("tostore / overwrite 4144 B floor", ratio_of(&e[0], &e[4], g_rounds));
    print_ratio("overwrite 4 KB / append 4 KB floor", ratio_of(&e[5], &e[3], g_rounds));
    print_ratio("4144 B RWF_DSYNC / pwrite+fdatasync", ratio_of(&e[6], &e[4], g_rounds));
    print_ratio("tostore / 4144 B RWF_DSYNC", ratio_of(&e[0], &e[6], g_rounds));
    print_ratio("O_DIRECT|O_DSYNC blocks / pwrite+fdatasync", ratio_of(&e[7], &e[4], g_rounds));
    print_ratio("tostore / O_DIRECT|O_DSYNC blocks", ratio_of(&e[0], &e[7], g_rounds));
    tspg_stats s;
    tspg_stats_get(ts->db->pg, &s);
    printf("  tostore: %llu commits, %llu log syncs, %llu checkpoints\n",
           (unsigned long long)s.commits, (unsigned long long)s.syncs,
           (unsigned long long)s.checkpoints);
    ratio_row("a. 1 thread, durable", &e[0], &e[1], 1.25, ">= 1.25x");
    ratio_row("a. 1 thread, durable", &e[0], &e[3], 0.90, ">= 0.90x");
    ratio_row("a. 1 thread, durable", &e[0], &e[2], 0, NULL);
    ratio_row("a. 1 thread, durable", &e[0], &e[4], 0, NULL);
    ratio_row("a. 1 thread, durable", &e[0], &e[6], 0, NULL);
    ratio_row("a. 1 thread, durable", &e[0], &e[7], 0, NULL);
    ratio_row("a. (reference) SQLite FULL", &e[1], &e[3], 0, NULL);
    ratio_row("a. (reference) SQLite FULL", &e[1], &e[4], 0, NULL);
    tsb_free(ts);
    sqb_free(sq);
    lmb_free(lm);
    flb_free(fl);
    flb_free(f8);
    flb_free(fx);
    flb_free(fo);
    flb_free(fd);
}

static void bench_b(void)
{
    tsb *ts = tsb_new("b-tostore", "full", NULL);
    sqb *sq = sqb_new("b-sqlite", "FULL", MAXT);
    lmb *lm = lmb_new("b-lmdb", 0);
    flb *fl = flb_new("b-floor", 0, 4096);
    eng e[] = {
        { "tostore x8 (full)", op_ts_commit, ts, MAXT, {0}, NULL },
        { "SQLite WAL FULL x8", op_sqlite, sq, MAXT, {0}, NULL },
        { "LMDB x8 (durable)", op_lmdb, lm, MAXT, {0}, NULL },
        { "fdatasync floor (1 thread)", op_floor, fl, 1, {0}, NULL },
    };
    tspg_stats s0, s1;
    tspg_stats_get(ts->db->pg, &s0);
    rounds("b. 8 threads, durable commits/s", e, 4, g_rounds, 1.5 * g_time, g_slice, "/s");
    tspg_stats_get(ts->db->pg, &s1);
    print_ratio("tostore x8 / SQLite FULL x8", ratio_of(&e[0], &e[1], g_rounds));
    print_ratio("tostore x8 / LMDB x8", ratio_of(&e[0], &e[2], g_rounds));
    print_ratio("tostore x8 / fdatasync floor (1 thread)", ratio_of(&e[0], &e[3], g_rounds));
    print_ratio("SQLite x8 / fdatasync floor", ratio_of(&e[1], &e[3], g_rounds));
    printf("  tostore: %.2f commits per log fsync (group commit), %llu commits, %llu "
           "checkpoints; SQLite busy retries: %lu\n",
           (double)(s1.commits - s0.commits) / (double)(s1.syncs - s0.syncs ? s1.syncs - s0.syncs : 1),
           (unsigned long long)(s1.commits - s0.commits),
           (unsigned long long)(s1.checkpoints - s0.checkpoints), (unsigned long)atomic_load(&sq->busy));
    ratio_row("b. 8 threads, durable", &e[0], &e[1], 6.0, ">= 6x");
    ratio_row("b. 8 threads, durable", &e[0], &e[3], 0, NULL);
    ratio_row("b. 8 threads, durable", &e[0], &e[2], 0, NULL);
    tsb_free(ts);
    sqb_free(sq);
    lmb_free(lm);
    flb_free(fl);
}

static void bench_c(void)
{
    tsb *ts = tsb_new("c-tostore", "normal", NULL);
    sqb *sq = sqb_new("c-sqlite", "NORMAL", 1);
    lmb *lm = lmb_new("c-lmdb", MDB_NOSYNC);
    eng e[] = {
        { "tostore (normal)", op_ts_commit, ts, 1, {0}, NULL },
        { "SQLite WAL NORMAL", op_sqlite, sq, 1, {0}, NULL },
        { "LMDB MDB_NOSYNC", op_lmdb, lm, 1, {0}, NULL },
    };
    rounds("c. normal durability, 1 thread, commits/s", e, 3, g_rounds, 1.0 * g_time, g_slice / 5,
           "/s");
    print_ratio("tostore / SQLite WAL NORMAL", ratio_of(&e[0], &e[1], g_rounds));
    print_ratio("tostore / LMDB NOSYNC", ratio_of(&e[0], &e[2], g_rounds));
    tspg_stats s;
    tspg_stats_get(ts->db->pg, &s);
    printf("  tostore: %llu commits, %llu checkpoints\n", (unsigned long long)s.commits,
           (unsigned long long)s.checkpoints);
    ratio_row("c. normal durability", &e[0], &e[1], 0, NULL);
    ratio_row("c. normal durability", &e[0], &e[2], 0, NULL);
    tsb_free(ts);
    sqb_free(sq);
    lmb_free(lm);
}

/* ---- d: recovery ------------------------------------------------------------- */

static const char *const db_files[] = { TSPG_FILE, TSWAL_FILE, NULL };

static void copy_db(const char *from, const char *to)
{
    mkdir_or_die(to);
    for (int i = 0; db_files[i]; i++) {
        char *a = path_join(from, db_files[i]), *b = path_join(to, db_files[i]);
        copy_file(a, b);
        free(a);
        free(b);
    }
}

/* Write the files back (so no writeback runs during the timing) and, with
 * drop, evict them from the OS cache (cold read). */
static void sync_files(const char *dir, int drop)
{
    for (int i = 0; db_files[i]; i++) {
        char *p = path_join(dir, db_files[i]);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (fdatasync(fd)) die("fdatasync %s: %s", p, strerror(errno));
            if (drop) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
        free(p);
    }
}

/* The child: writes one-page commits (normal durability) while a read
 * transaction pins the log (no checkpoint), until the log holds target
 * bytes; then reports and waits for SIGKILL. */
static void recovery_child(const char *dir, uint64_t target, int fd)
{
    ts_db *db = ts_open_dir(dir, "normal", NULL, 0);
    tstx *rd;
    TSCK(db, tstx_begin(db->pg, 0, &rd));
    enum { NP = 1024 };
    uint64_t first = 0;
    tstx *tx;
    TSCK(db, tstx_begin(db->pg, 1, &tx));
    for (int i = 0; i < NP; i++) {
        tspage *p;
        uint64_t no;
        TSCK(db, tstx_alloc(tx, &p, &no));
        if (!first) first = no;
        tspage_release(p);
    }
    TSCK(db, tstx_commit(tx));
    char *wal = path_join(dir, TSWAL_FILE);
    uint64_t seq = 0, rng = 88172645463325252ull;
    while (file_size(wal) < target) {
        for (int k = 0; k < 256; k++) {
            TSCK(db, tstx_begin(db->pg, 1, &tx));
            tspage *p;
            TSCK(db, tstx_get(tx, first + rng_next(&rng) % NP, 1, &p));
            seq++;
            memcpy(tspage_data(p), &seq, 8);
            tspage_release(p);
            TSCK(db, tstx_commit(tx));
        }
    }
    if (write(fd, &seq, sizeof seq) != sizeof seq) _exit(2);
    for (;;) pause();
}

static void bench_d(void)
{
    const uint64_t target = 100ull << 20;
    char *dir = path_join(g_root, "d-recovery"), *saved = path_join(g_root, "d-saved");
    int pfd[2];
    if (pipe(pfd)) die("pipe: %s", strerror(errno));
    fflush(stdout);
    double tw = now();
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(pfd[0]);
        recovery_child(dir, target, pfd[1]);
        _exit(0);
    }
    close(pfd[1]);
    uint64_t commits = 0;
    if (read(pfd[0], &commits, sizeof commits) != sizeof commits) die("recovery child failed");
    tw = now() - tw;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(pfd[0]);
    char *walp = path_join(dir, TSWAL_FILE);
    uint64_t walsz = file_size(walp);
    copy_db(dir, saved);
    printf("\n-- d. recovery: writer killed (SIGKILL) after %llu one-page commits in %.1f s; "
           "log %.1f MB --\n", (unsigned long long)commits, tw, (double)walsz / 1048576.0);

    /* Fixed cost for comparison: open of a small clean database. */
    double base[5];
    {
        char *small = path_join(g_root, "d-small");
        ts_close(ts_open_dir(small, "normal", NULL, 0));
        for (int i = 0; i < 5; i++) {
            double t0 = now();
            ts_db *db = ts_open_dir(small, "normal", NULL, 0);
            base[i] = now() - t0;
            ts_close(db);
        }
        free(small);
    }
    enum { RUNS = 3 };
    double warm[RUNS], cold[RUNS];
    uint64_t frames = 0;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < RUNS; i++) {
            rmrf(dir);
            copy_db(saved, dir);
            sync_files(dir, c);
            double t0 = now();
            ts_db *db = ts_open_dir(dir, "normal", NULL, 0);
            double t = now() - t0;
            tspg_stats s;
            tspg_stats_get(db->pg, &s);
            frames = s.recovered_frames;
            (c ? cold : warm)[i] = t;
            if (ts_close(db) != TS_OK) die("ts_close: %s", ts_errmsg(NULL));
        }
    double mb = (double)walsz / 1048576.0;
    double wm = median(warm, RUNS), cm = median(cold, RUNS);
    printf("  recovered %llu frames; open of a small clean db: %.2f ms (median)\n",
           (unsigned long long)frames, median(base, 5) * 1e3);
    printf("  %-26s %8.1f ms  %7.0f MB/s   (runs:", "warm (log in OS cache)", wm * 1e3, mb / wm);
    for (int i = 0; i < RUNS; i++) printf(" %.1f", warm[i] * 1e3);
    printf(")\n  %-26s %8.1f ms  %7.0f MB/s   (runs:", "cold (fadvise DONTNEED)", cm * 1e3, mb / cm);
    for (int i = 0; i < RUNS; i++) printf(" %.1f", cold[i] * 1e3);
    printf(")\n");
    char what[64], v[64], r[64];
    snprintf(what, sizeof what, "d. recovery, %.0f MB log, warm", mb);
    snprintf(v, sizeof v, "%.0f ms", wm * 1e3);
    snprintf(r, sizeof r, "%.0f MB/s", mb / wm);
    add_row(what, v, "-", r, "-", "info");
    snprintf(what, sizeof what, "d. recovery, %.0f MB log, cold", mb);
    snprintf(v, sizeof v, "%.0f ms", cm * 1e3);
    snprintf(r, sizeof r, "%.0f MB/s", mb / cm);
    add_row(what, v, "-", r, "-", "info");
    rmrf(dir);
    rmrf(saved);
    free(walp);
    free(dir);
    free(saved);
}

/* ---- e: open time ---------------------------------------------------------------- */

static void open_times(const char *label, const char *dir, const char *cipher, int runs,
                       double *open_med)
{
    double o[MAXR * 4], c[MAXR * 4];
    if (runs > MAXR * 4) runs = MAXR * 4;
    for (int i = 0; i < runs; i++) {
        double t0 = now();
        ts_db *db = ts_open_dir(dir, "full", cipher, 0);
        double t1 = now();
        if (ts_close(db) != TS_OK) die("ts_close: %s", ts_errmsg(NULL));
        o[i] = t1 - t0;
        c[i] = now() - t1;
    }
    double s[MAXR * 4];
    for (int i = 0; i < runs; i++) s[i] = o[i] + c[i];
    printf("  %-40s open %6.2f ms (min %.2f, max %.2f)  close %6.2f ms  open+close %6.2f ms\n",
           label, median(o, runs) * 1e3, vmin(o, runs) * 1e3, vmax(o, runs) * 1e3,
           median(c, runs) * 1e3, median(s, runs) * 1e3);
    *open_med = median(o, runs);
}

static const char *const ciphers[3] = { NULL, "chacha20poly1305", "aes256gcm" };
static const char *const cipher_names[3] = { "none", "chacha20poly1305", "aes256gcm" };
static char *g_big_dirs[3];      /* the 256 MB databases of f (and e) */
static const uint64_t BIG_PAGES = (256ull << 20) / 4096;

static void build_big_dbs(void)
{
    for (int i = 0; i < 3; i++) {
        if (g_big_dirs[i]) continue;
        char name[64];
        snprintf(name, sizeof name, "db256-%s", cipher_names[i]);
        g_big_dirs[i] = path_join(g_root, name);
        double t = ts_build(g_big_dirs[i], ciphers[i], BIG_PAGES);
        printf("  built %s: %llu pages (%.0f MB) in %.1f s\n", name, (unsigned long long)BIG_PAGES,
               (double)BIG_PAGES * 4096 / 1048576.0, t);
    }
}

static void bench_e(void)
{
    printf("\n-- e. open time of a cleanly closed database (raw key, chacha20poly1305, "
           "bundled plugins available: loaded on first use) --\n");
    char *dir;
    uint64_t pages;
    if (g_big) {
        pages = (1024ull << 20) / 4096;
        dir = path_join(g_root, "db1g-chacha");
        double t = ts_build(dir, "chacha20poly1305", pages);
        printf("  built db1g-chacha: %llu pages (1 GB) in %.1f s\n", (unsigned long long)pages, t);
    } else {
        pages = BIG_PAGES;
        build_big_dbs();
        dir = strdup(g_big_dirs[1]);
        printf("  (256 MB database; BENCH_BIG=1 for 1 GB)\n");
    }
    char *tiny = path_join(g_root, "e-tiny");
    ts_close(ts_open_dir(tiny, "full", "chacha20poly1305", 0));
    double tiny_med, big_med, x;
    open_times("tiny db (fixed cost)", tiny, "chacha20poly1305", 20, &tiny_med);
    char label[64];
    snprintf(label, sizeof label, "%s db", g_big ? "1 GB" : "256 MB");
    open_times(label, dir, "chacha20poly1305", 20, &big_med);
    /* Where the time goes: loading only the two plugins needed, and with
     * the plugins already mapped (another handle keeps them loaded). */
    g_extra_cfg = ", \"loadBundled\": false, \"plugins\": [\"posix\", \"chacha20poly1305\"]";
    snprintf(label, sizeof label, "%s db, only posix+chacha loaded", g_big ? "1 GB" : "256 MB");
    open_times(label, dir, "chacha20poly1305", 20, &x);
    g_extra_cfg = "";
    ts_db *keep = ts_open_dir(tiny, "full", "chacha20poly1305", 0);
    snprintf(label, sizeof label, "%s db, plugins resident", g_big ? "1 GB" : "256 MB");
    open_times(label, dir, "chacha20poly1305", 20, &x);
    ts_close(keep);
    char *mainf = path_join(dir, TSPG_FILE), *walf = path_join(dir, TSWAL_FILE);
    printf("  main file %.0f MB, log %llu bytes\n", (double)file_size(mainf) / 1048576.0,
           (unsigned long long)file_size(walf));
    free(mainf);
    free(walf);
    char what[64], v[64], r[64];
    snprintf(what, sizeof what, "e. open, %s chacha20 db", g_big ? "1 GB" : "256 MB");
    snprintf(v, sizeof v, "%.2f ms", big_med * 1e3);
    snprintf(r, sizeof r, "tiny db %.2f ms", tiny_med * 1e3);
    add_row(what, v, r, "-", "<= 2 ms", big_med <= 0.002 ? "PASS" : "MISS");
    if (g_big) rmrf(dir);
    rmrf(tiny);
    free(tiny);
    free(dir);
}

/* ---- f: cipher slowdown ------------------------------------------------------------- */

static void slowdown_rows(const char *what, eng *e, double max_slow)
{
    for (int i = 1; i < 3; i++) {
        ratio x = ratio_of(&e[i], &e[0], g_rounds);
        char label[80], w[64], v[64], r[64], rs[64], g[24];
        snprintf(label, sizeof label, "%s / none", e[i].name);
        print_ratio(label, x);
        snprintf(w, sizeof w, "f. %s, %s", what, cipher_names[i]);
        snprintf(v, sizeof v, "%.0f/s", median(e[i].rate, g_rounds));
        snprintf(r, sizeof r, "none %.0f/s", median(e[0].rate, g_rounds));
        snprintf(rs, sizeof rs, "%.2fx (%+.1f%%)", x.med, (x.med - 1) * 100);
        snprintf(g, sizeof g, "<= %.0f%% slower", max_slow * 100);
        add_row(w, v, r, rs, g, 1 - x.med <= max_slow ? "PASS" : "MISS");
    }
}

static void evict_db(void *ctx) { sync_files(((tsb *)ctx)->dir, 1); }

static void bench_f(void)
{
    /* durable commits */
    {
        tsb *t[3];
        for (int i = 0; i < 3; i++) {
            char name[64];
            snprintf(name, sizeof name, "f-commit-%s", cipher_names[i]);
            t[i] = tsb_new(name, "full", ciphers[i]);
        }
        flb *fz = flb_new("f-floor-zero", 0, 8256), *fr = flb_new("f-floor-random", 0, 8256);
        memset(fz->buf, 0, sizeof fz->buf);
        fr->random = 1;
        fr->rng = 0x853c49e6748fea9bull;
        eng e[5] = {
            { "commit, no cipher", op_ts_commit, t[0], 1, {0}, NULL },
            { "commit, chacha20poly1305", op_ts_commit, t[1], 1, {0}, NULL },
            { "commit, aes256gcm", op_ts_commit, t[2], 1, {0}, NULL },
            { "append 8256 B zeros+fdatasync", op_floor, fz, 1, {0}, NULL },
            { "append 8256 B random+fdatasync", op_floor, fr, 1, {0}, NULL },
        };
        rounds("f1. cipher: single-thread durable commits/s", e, 5, g_rounds, 1.25 * g_time,
               g_slice, "/s");
        slowdown_rows("durable commits", e, 0.05);
        print_ratio("storage: random / zero 8256 B appends (info)",
                    ratio_of(&e[4], &e[3], g_rounds));
        {
            ratio x = ratio_of(&e[4], &e[3], g_rounds);
            char rs[64];
            snprintf(rs, sizeof rs, "%.2fx", x.med);
            add_row("f. (storage) random/zero appends", "-", "-", rs, "-", "info");
        }
        for (int i = 0; i < 3; i++) tsb_free(t[i]);
        flb_free(fz);
        flb_free(fr);
        /* The same commits without fsync: the cipher's CPU cost per commit,
         * free of the disk's noise; projected onto the durable commit time. */
        for (int i = 0; i < 3; i++) {
            char name[64];
            snprintf(name, sizeof name, "f-commitn-%s", cipher_names[i]);
            t[i] = tsb_new(name, "normal", ciphers[i]);
        }
        double dur_us = 1e6 / median(e[0].rate, g_rounds);
        eng n[3] = {
            { "normal commit, no cipher", op_ts_commit, t[0], 1, {0}, NULL },
            { "normal commit, chacha20", op_ts_commit, t[1], 1, {0}, NULL },
            { "normal commit, aes256gcm", op_ts_commit, t[2], 1, {0}, NULL },
        };
        rounds("f1b. cipher CPU cost: the same commits with durability normal (no fsync)", n, 3,
               g_rounds, 0.5 * g_time, g_slice / 5, "/s");
        for (int i = 1; i < 3; i++) {
            double add = 1e6 / median(n[i].rate, g_rounds) - 1e6 / median(n[0].rate, g_rounds);
            char w[64], v[64], r[64], rs[64];
            printf("  %-44s +%.1f us per commit = %.1f%% of a durable commit (%.0f us)\n",
                   n[i].name, add, add / dur_us * 100, dur_us);
            snprintf(w, sizeof w, "f. cipher CPU per commit, %s", cipher_names[i]);
            snprintf(v, sizeof v, "+%.1f us", add);
            snprintf(r, sizeof r, "durable commit %.0f us", dur_us);
            snprintf(rs, sizeof rs, "-%.1f%% projected", add / dur_us * 100);
            add_row(w, v, r, rs, "<= 5% slower", add / dur_us <= 0.05 ? "PASS" : "MISS");
        }
        for (int i = 0; i < 3; i++) tsb_free(t[i]);
    }
    printf("\n  building the 256 MB databases for the read workloads\n");
    build_big_dbs();
    /* cached reads: 4096 pages (16 MB) in a 64 MB cache, warmed first */
    {
        tsb t[3];
        eng e[3];
        for (int i = 0; i < 3; i++) {
            memset(&t[i], 0, sizeof t[i]);
            t[i].db = ts_open_dir(g_big_dirs[i], "full", ciphers[i], 64ll << 20);
            t[i].first = 2;
            t[i].npages = 4096;
            t[i].batch = 256;
            t[i].rng[0] = 0x9E3779B97F4A7C15ull + (uint64_t)i;
            tstx *tx;
            TSCK(t[i].db, tstx_begin(t[i].db->pg, 0, &tx));
            for (uint64_t p = 2; p < 2 + 4096; p++) {
                tspage *pg;
                TSCK(t[i].db, tstx_get(tx, p, 0, &pg));
                tspage_release(pg);
            }
            tstx_rollback(tx);
            static const char *const n[3] = { "cached read, no cipher", "cached read, chacha20",
                                              "cached read, aes256gcm" };
            e[i] = (eng){ n[i], op_ts_read, &t[i], 1, {0}, NULL };
        }
        rounds("f2. cipher: cached page reads/s (16 MB hot set, 64 MB cache)", e, 3, g_rounds,
               0.5 * g_time, g_slice / 5, "/s");
        slowdown_rows("cached reads", e, 0.10);
        for (int i = 0; i < 3; i++) ts_close(t[i].db);
    }
    /* uncached reads: random pages of 256 MB through a 64 KB cache */
    {
        tsb t[3];
        eng e[3];
        for (int i = 0; i < 3; i++) {
            memset(&t[i], 0, sizeof t[i]);
            t[i].db = ts_open_dir(g_big_dirs[i], "full", ciphers[i], 65536);
            t[i].first = 2;
            t[i].npages = BIG_PAGES;
            t[i].batch = 64;
            t[i].rng[0] = 0x2545F4914F6CDD1Dull + (uint64_t)i;
            static const char *const n[3] = { "uncached read, no cipher", "uncached read, chacha20",
                                              "uncached read, aes256gcm" };
            e[i] = (eng){ n[i], op_ts_read, &t[i], 1, {0}, NULL };
        }
        rounds("f3. cipher: uncached page reads/s (256 MB db, cacheBytes 65536, file in OS cache)",
               e, 3, g_rounds, 0.5 * g_time, g_slice / 5, "/s");
        slowdown_rows("uncached reads", e, 0.30);
        for (int i = 0; i < 3; i++) {
            tspg_stats s;
            tspg_stats_get(t[i].db->pg, &s);
            printf("  %s: cache hits %llu, misses %llu\n", cipher_names[i],
                   (unsigned long long)s.cache_hits, (unsigned long long)s.cache_misses);
        }
        /* the same with the file evicted from the OS cache before each slice */
        static const char *const n4[3] = { "cold read, no cipher", "cold read, chacha20",
                                           "cold read, aes256gcm" };
        for (int i = 0; i < 3; i++) {
            t[i].dir = g_big_dirs[i];
            e[i].name = n4[i];
            e[i].prep = evict_db;
        }
        rounds("f4. (info) cold page reads/s: as f3, db file evicted from the OS cache before "
               "each slice", e, 3, g_rounds, 0.5 * g_time, g_slice, "/s");
        for (int i = 1; i < 3; i++) {
            ratio x = ratio_of(&e[i], &e[0], g_rounds);
            char label[80], w[64], v[64], r[64], rs[64];
            snprintf(label, sizeof label, "%s / none", e[i].name);
            print_ratio(label, x);
            snprintf(w, sizeof w, "f. cold reads, %s", cipher_names[i]);
            snprintf(v, sizeof v, "%.0f/s", median(e[i].rate, g_rounds));
            snprintf(r, sizeof r, "none %.0f/s", median(e[0].rate, g_rounds));
            snprintf(rs, sizeof rs, "%.2fx (%+.1f%%)", x.med, (x.med - 1) * 100);
            add_row(w, v, r, rs, "-", "info");
        }
        for (int i = 0; i < 3; i++) ts_close(t[i].db);
    }
}

/* ---- profile mode: tostore alone, for perf / callgrind / strace ------------------------ */

typedef struct phase { double begin, get, commit; uint64_t n; } phase;
static phase g_phase[MAXT];

/* op_ts_commit with the wall time of each call accumulated per thread. */
static int op_ts_commit_timed(void *ctx, int tid)
{
    tsb *t = ctx;
    tstx *tx;
    tspage *p;
    phase *ph = &g_phase[tid];
    double t0 = now();
    TSCK(t->db, tstx_begin(t->db->pg, 1, &tx));
    double t1 = now();
    TSCK(t->db, tstx_get(tx, t->pages[tid], 1, &p));
    uint64_t v;
    uint8_t *d = tspage_data(p);
    memcpy(&v, d, 8);
    v++;
    memcpy(d, &v, 8);
    tspage_release(p);
    double t2 = now();
    TSCK(t->db, tstx_commit(tx));
    double t3 = now();
    ph->begin += t1 - t0;
    ph->get += t2 - t1;
    ph->commit += t3 - t2;
    ph->n++;
    return 1;
}

static int profile_mode(const char *what, double secs)
{
    double el;
    uint64_t ops;
    if (!strcmp(what, "commit1") || !strcmp(what, "commit8") || !strcmp(what, "normal1") ||
        !strcmp(what, "normal8")) {
        int threads = what[strlen(what) - 1] == '8' ? MAXT : 1;
        tsb *ts = tsb_new("profile", what[0] == 'c' ? "full" : "normal", getenv("BENCH_CIPHER"));
        eng e = { what, op_ts_commit_timed, ts, threads, {0}, NULL };
        tspg_stats s0, s1;
        tspg_stats_get(ts->db->pg, &s0);
        ops = run_eng(&e, secs, &el);
        tspg_stats_get(ts->db->pg, &s1);
        phase sum = {0};
        for (int i = 0; i < threads; i++) {
            sum.begin += g_phase[i].begin;
            sum.get += g_phase[i].get;
            sum.commit += g_phase[i].commit;
            sum.n += g_phase[i].n;
        }
        printf("%s: %.0f commits/s over %.1f s; per commit (wall, per thread): begin %.1f us, "
               "get+update %.1f us, commit %.1f us; %llu commits, %llu log syncs (%.2f per sync), "
               "%llu checkpoints\n", what, (double)ops / el, el, sum.begin / (double)sum.n * 1e6,
               sum.get / (double)sum.n * 1e6, sum.commit / (double)sum.n * 1e6,
               (unsigned long long)(s1.commits - s0.commits),
               (unsigned long long)(s1.syncs - s0.syncs),
               (double)(s1.commits - s0.commits) / (double)(s1.syncs - s0.syncs ? s1.syncs - s0.syncs : 1),
               (unsigned long long)(s1.checkpoints - s0.checkpoints));
        tsb_free(ts);
        return 0;
    }
    if (!strcmp(what, "cached") || !strcmp(what, "uncached")) {
        const char *cipher = getenv("BENCH_CIPHER");
        char *dir = path_join(g_root, "profile-read");
        uint64_t pages = (256ull << 20) / 4096;
        ts_build(dir, cipher, pages);
        tsb t = {0};
        int cached = what[0] == 'c';
        t.db = ts_open_dir(dir, "full", cipher, cached ? 64ll << 20 : 65536);
        t.first = 2;
        t.npages = cached ? 4096 : pages;
        t.batch = cached ? 256 : 64;
        t.rng[0] = 12345;
        if (cached) op_ts_read(&t, 0), t.batch = 4096, op_ts_read(&t, 0), t.batch = 256;
        eng e = { what, op_ts_read, &t, 1, {0}, NULL };
        ops = run_eng(&e, secs, &el);
        printf("%s reads (%s): %.0f pages/s (%.2f us each)\n", what, cipher ? cipher : "no cipher",
               (double)ops / el, el / (double)ops * 1e6);
        ts_close(t.db);
        free(dir);
        return 0;
    }
    if (!strcmp(what, "open")) {
        const char *cipher = getenv("BENCH_CIPHER") ? getenv("BENCH_CIPHER") : "chacha20poly1305";
        char *dir = path_join(g_root, "profile-open");
        ts_close(ts_open_dir(dir, "full", cipher, 0));
        double tot = 0;
        int n = 0;
        do {
            double t0 = now();
            ts_close(ts_open_dir(dir, "full", cipher, 0));
            tot += now() - t0;
            n++;
        } while (tot < secs);
        printf("open+close: %.2f ms average over %d runs\n", tot / n * 1e3, n);
        free(dir);
        return 0;
    }
    fprintf(stderr, "profile: commit1|commit8|normal1|normal8|cached|uncached|open [seconds]\n"
                    "  (BENCH_CIPHER=chacha20poly1305|aes256gcm to add a cipher)\n");
    return 2;
}

/* ---- main ----------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *base = getenv("BENCH_DIR");
    const char *prof = NULL;
    double prof_secs = 5;
    bench = (bench_style){ "bench_commit", 28, 9, 44, { 38, 12, 34, 22, 14 } };
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
    if (getenv("BENCH_SLICE")) g_slice = atof(getenv("BENCH_SLICE"));
    if (g_slice <= 0) g_slice = 0.25;
    g_big = getenv("BENCH_BIG") && atoi(getenv("BENCH_BIG")) > 0;
    if (getenv("BENCH_ONLY") && *getenv("BENCH_ONLY")) g_only = getenv("BENCH_ONLY");
    mkdir_or_die(base);
    char run[64];
    snprintf(run, sizeof run, "run-%d", (int)getpid());
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
    printf("bench_commit: tostore %s, SQLite %s, %s\n", ts_version(), sqlite3_libversion(),
           mdb_version(NULL, NULL, NULL));
    printf("date %s; %s %s; %ld cores; data in %s\n", date, u.sysname, u.release,
           sysconf(_SC_NPROCESSORS_ONLN), root);
    printf("rounds %d, time multiplier %.2f, slice %.2f s, workloads %s%s\n", g_rounds, g_time,
           g_slice, g_only,
           g_big ? ", BENCH_BIG (1 GB open test)" : ", 256 MB open test (BENCH_BIG=1 for 1 GB)");
    double t0 = now();
    if (wants('a')) bench_a();
    if (wants('b')) bench_b();
    if (wants('c')) bench_c();
    if (wants('d')) bench_d();
    if (wants('e')) bench_e();
    if (wants('f')) bench_f();
    print_summary();
    printf("total time %.0f s\n", now() - t0);
    if (!getenv("BENCH_KEEP")) rmrf(root);
    for (int i = 0; i < 3; i++) free(g_big_dirs[i]);
    free(root);
    return 0;
}
