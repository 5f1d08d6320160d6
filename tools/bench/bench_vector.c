/*
 * bench_vector: vector search through the public API (ts_insert,
 * ts_vector_search) vs hnswlib and FAISS IndexHNSWFlat, same vectors, same
 * run, interleaved (issue 7, "Benchmark").
 *
 *   bench_vector [DIR] [--data synthetic|fashion] [--n N] [--queries Q]
 *                [--rounds R] [--threads T] [--filter-ef EF] [--no-churn]
 *                [--latent R] [--engines tostore,hnswlib,faiss] [--cat-index]
 *                [--only oqfcs] [--sel P] [--no-repeat] [--reuse-db D]
 *                [--seed S] [--split-records] [--dim D]
 *
 *   --latent R     the synthetic set's latent rank (32)
 *   --engines L    a subset of the engines; without tostore only the build
 *                  and the sweep run (to look at a data set)
 *   --cat-index    also a btree index on cat (the filtered field)
 *   --precision P  the vector field's precision: float32 (default),
 *                  float16 or int8 (rows and index store it; tostore only)
 *   --no-vindex    no ngh index (searches scan): with --only o, the file
 *                  bytes of the rows alone, to subtract from a run with it
 *   --only L       after the build, only the workloads among the letters L:
 *                  o reopen, q sweep (and T-thread sweep), f filtered,
 *                  c churn (default: all), m mixed (only when asked);
 *                  e.g. --only f to profile the filtered searches
 *   --sel P        filtered: only the selectivity P (50, 10 or 1)
 *   --no-repeat    filtered: every search's conditions differ (an extra
 *                  `cat > -i` with i new each time, which no row fails), so
 *                  no search reuses the set of an earlier one
 *   --seed S       the ngh index's `seed` parameter (S >= 1): the same
 *                  graph in every run (default: drawn at create); with
 *                  --reuse-db of an existing database, its own seed
 *   --dim D        the synthetic set's dimensions (128; the latent rank
 *                  and clusters stay, the map to D dimensions is wider)
 *   --split-records  the ngh index's `splitRecords` parameter: float32
 *                  vectors split between record and tail (docs/ngh.md)
 *   --reuse-db D   tostore's database in D, kept: built there when D does
 *                  not exist, else opened as it is (same --n, --data, --dim and
 *                  --cat-index as when it was built; rows in insert order;
 *                  --split-records and --seed then change nothing) and the
 *                  tostore build skipped (for profiling)
 *
 * Data:
 *   synthetic  clustered low-rank vectors, 128-d: 256 cluster centres in a
 *              32-d latent space, points = centre + N(0, 0.5) in the latent
 *              space, mapped to 128-d by a fixed random matrix, plus
 *              N(0, 0.05) noise in every dimension; fixed seed; queries
 *              drawn from the same distribution.  100K vectors (quick,
 *              default), 1M with TS_BENCH_FULL=1.
 *   fashion    Debian's dataset-fashion-mnist: the 60K train images as the
 *              base (784-d, pixel values 0..255 as floats), the first Q
 *              t10k images as queries (read with zcat).
 * tostore's cacheBytes: 1.25 x (node record + float32 row + 300 bytes) a
 * vector + 64 MiB, or BENCH_VEC_CACHE_MB MiB.
 * Queries: 1000 (quick), 10000 with TS_BENCH_FULL=1.  Ground truth: exact
 * top 10 (L2) over the base, unfiltered and for the three filters, computed
 * with every core once and cached in /tmp (bench_vector_gt_*.bin, keyed by
 * dataset, seed, size and queries).
 *
 * Every engine: L2, M = 16, efConstruction = 200, one thread to build.
 *   tostore   table t (id sequential, cat integer, emb vector float32) with
 *             an ngh index on emb; built with ts_insert of
 *             {"cat": c, "emb": ts_vector_value(v)} in transactions of N/20
 *             rows; searched with ts_vector_search on
 *             ts_select(ts_query_new(db, "t"), {"id"}) and ts_ef_search.
 *   hnswlib   HierarchicalNSW<float>, addPoint / searchKnn / setEf.
 *   faiss     IndexHNSWFlat, add / search(1 query) / hnsw.efSearch.
 *
 * Workloads (rounds interleave the engines; the starting engine rotates):
 *   b  build: the N vectors in 20 chunks, each chunk given to every engine in
 *      turn; inserts/s = N / the engine's total time; ratio = median of the
 *      per-chunk ratios.  Memory: the growth of this process's resident set
 *      during each engine's chunks (summed), and the bytes of the saved index
 *      (tostore: the database directory after ts_close; hnswlib saveIndex;
 *      faiss write_index).
 *   o  reopen: ts_open_json + the first ts_vector_search (ef 64) after
 *      ts_close, 3 times, median (OS page cache warm).
 *   q  the efSearch sweep: recall@10 and queries/s of the Q queries at every
 *      efSearch of a fine grid (10 .. 512) for every engine, the engines
 *      alternating per efSearch, R rounds; an engine stops climbing once
 *      its recall is >= 0.998 twice.  Queries/s at recall 0.90, 0.95 and
 *      0.99 are interpolated (log QPS linear in recall between the two
 *      bracketing efSearch values), per round, median.  Then with T threads
 *      (2) at the bracketing efSearch values only (each thread half the
 *      queries), after one untimed T-thread batch per engine.
 *   f  filtered search (tostore only: hnswlib 0.6 and FAISS 1.7 HNSW have no
 *      filtered search to compare with): ts_where(q, "cat", "<", n) with cat
 *      a hash of the row number mod 100 and n = 50, 10, 1 (50%, 10%, 1%
 *      selectivity), efSearch --filter-ef (64): recall@10 against the exact
 *      filtered answer, queries/s, and whether every query got 10 rows.
 *   s  (only when asked: --only s) reachability: 2000 base vectors, spread
 *      over the insert order, each searched for itself (k 10) at efSearch
 *      10, 64 and 256; the share of them missing from their own top 10 is
 *      the share of the graph a search of that breadth cannot reach (no
 *      two synthetic base vectors are equal: every coordinate has its own
 *      noise; a data set with duplicates counts a tie as a miss).
 *   c  churn: delete 20% of the rows (random, ts_delete / markDelete), then
 *      insert those vectors again as new rows (so the live set, its ground
 *      truth and its fresh build are the ones above); recall@10 at the
 *      efSearch values of the sweep vs the fresh build.  FAISS HNSW has no
 *      deletes: not run.
 *   m  (only when asked: --only m) mixed: 200 cycles of a transaction of 10
 *      inserts (base vectors again, as new rows) then 10 searches at ef 64,
 *      the engines alternating every 20 cycles: searches/s between commits
 *      against searches/s with no writer (tostore's read cache is per
 *      committed generation of the index); then a writer thread commits
 *      200 such transactions while the main thread searches.
 *   r  (only when asked: --only r; tostore only, with --cat-index) key runs
 *      made again: filtered searches (1%: cat < 1, and a new cat > -n each)
 *      until ngh has made its key runs (4 x count lookups), then N/100 new
 *      rows of a new cat in one commit, then searches of that cat (their
 *      keys appended after the runs: each a miss) until the runs are made
 *      again; each phase's mean and worst search, and which search was
 *      worst (the pass that makes the runs is paid inside one search).
 *
 * Environment: TS_BENCH_FULL=1 (1M synthetic, 10K queries), BENCH_ROUNDS,
 * BENCH_VEC_DATA (synthetic|fashion), BENCH_VEC_N, BENCH_VEC_QUERIES,
 * BENCH_VEC_MEM=1 (RSS and page-cache pages after each build chunk),
 * BENCH_KEEP=1 (keep the database), BENCH_VEC_MIN_TIME (seconds a timed batch
 * runs at least, repeating its queries in whole passes; 0.25; recall is
 * counted on the first pass), BENCH_VEC_WARM=1 (filtered: every query once,
 * untimed, before each selectivity's batches: the steady state of a reused
 * database).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_common.h"
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <tostore/tostore.h>

#ifndef BENCH_DEFAULT_DIR
#define BENCH_DEFAULT_DIR "/tmp/benchdata"
#endif

#define K 10
#define M_PARAM 16
#define EFC 200
#define NSEL 3
static const int sel_pct[NSEL] = { 50, 10, 1 };

/* ---- the references (C interfaces of the .cpp shims) ------------------- */

#ifdef BENCH_HAVE_HNSWLIB
void *vref_hnsw_new(int dim, size_t maxn, int M, int efc);
int vref_hnsw_add(void *h, const float *v, size_t label);
int vref_hnsw_delete(void *h, size_t label);
void vref_hnsw_set_ef(void *h, int ef);
int vref_hnsw_search(void *h, const float *q, int k, int64_t *labels);
int vref_hnsw_save(void *h, const char *path);
void vref_hnsw_free(void *h);
#endif
#ifdef BENCH_HAVE_FAISS
void *vref_faiss_new(int dim, int M, int efc);
int vref_faiss_add(void *h, size_t n, const float *v);
void vref_faiss_set_ef(void *h, int ef);
int vref_faiss_search(void *h, const float *q, int k, int64_t *labels);
int vref_faiss_save(void *h, const char *path);
void vref_faiss_free(void *h);
#endif

/* ---- data ------------------------------------------------------------------ */

static size_t g_n, g_nq, g_dim;
static float *g_base, *g_query;       /* g_n x g_dim, g_nq x g_dim */
static const char *g_data = "synthetic";
static uint64_t g_seed = 20261125;
static int g_rounds = 3, g_threads = 2, g_filter_ef = 64, g_churn = 1;
static int g_cat_index;            /* --cat-index: a btree index on cat too */
static const char *g_precision = "float32"; /* --precision */
static int g_no_vindex;            /* --no-vindex: the table without its ngh index */
static const char *g_only = "oqfc"; /* --only: the workloads run after the build */
static int g_sel_only;              /* --sel: one filtered selectivity */
static int g_no_repeat;             /* --no-repeat: conditions never repeat */
static _Atomic long g_qctr;        /* --no-repeat: the next id != value */
static long long g_ngh_seed;        /* --seed: the ngh index's level seed (0: drawn) */
static int g_split;                 /* --split-records */
static size_t g_syn_dim = 128;      /* --dim: the synthetic set's dimensions */
static const char *g_reuse;         /* --reuse-db: tostore's database kept there */
static int g_reused_first;          /* the reopen workload opens the reused database first */
static int g_latent = 32;          /* synthetic: latent dimensions */
static const char *g_engines;      /* --engines: a subset, comma separated */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}
static int cat_of(size_t i) { return (int)(mix64((uint64_t)i + 7) % 100); }

static uint64_t g_rng;
static double urand(void) { return (double)(rng_next(&g_rng) >> 11) / 9007199254740992.0; }
static double nrand(void)
{
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static void synthetic(void)
{
    enum { C = 256, RMAX = 128 };
    const size_t R = (size_t)g_latent;
    g_dim = g_syn_dim;
    g_rng = g_seed;
    float *A = malloc(g_dim * R * sizeof *A), *cen = malloc(C * R * sizeof *cen);
    g_base = malloc(g_n * g_dim * sizeof *g_base);
    g_query = malloc(g_nq * g_dim * sizeof *g_query);
    if (!A || !cen || !g_base || !g_query) die("out of memory");
    for (size_t i = 0; i < g_dim * R; i++) A[i] = (float)(nrand() / sqrt((double)R));
    for (size_t i = 0; i < C * R; i++) cen[i] = (float)nrand();
    for (size_t i = 0; i < g_n + g_nq; i++) {
        float *out = i < g_n ? g_base + i * g_dim : g_query + (i - g_n) * g_dim;
        const float *c = cen + (rng_next(&g_rng) % C) * R;
        float z[RMAX];
        for (size_t r = 0; r < R; r++) z[r] = c[r] + 0.5f * (float)nrand();
        for (size_t d = 0; d < g_dim; d++) {
            float s = 0;
            for (size_t r = 0; r < R; r++) s += A[d * R + r] * z[r];
            out[d] = s + 0.05f * (float)nrand();
        }
    }
    free(A);
    free(cen);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Up to max images of an idx3-ubyte.gz file as floats; returns the count. */
static size_t read_idx(const char *path, size_t max, float **out, size_t *dim)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "zcat '%s'", path);
    FILE *f = popen(cmd, "r");
    if (!f) die("popen %s: %s", cmd, strerror(errno));
    unsigned char h[16];
    if (fread(h, 1, 16, f) != 16 || be32(h) != 0x803) die("%s: not an idx3-ubyte file", path);
    size_t n = be32(h + 4), d = (size_t)be32(h + 8) * be32(h + 12);
    if (n > max) n = max;
    unsigned char *buf = malloc(d);
    float *v = malloc(n * d * sizeof *v);
    if (!buf || !v) die("out of memory");
    for (size_t i = 0; i < n; i++) {
        if (fread(buf, 1, d, f) != d) die("%s: short read", path);
        for (size_t j = 0; j < d; j++) v[i * d + j] = (float)buf[j];
    }
    free(buf);
    pclose(f);
    *out = v;
    *dim = d;
    return n;
}

static void fashion(void)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char p[512];
    size_t d1, d2;
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    if (access(p, R_OK) != 0) die("%s missing: apt-get install dataset-fashion-mnist", p);
    g_n = read_idx(p, g_n, &g_base, &d1);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", dir);
    g_nq = read_idx(p, g_nq, &g_query, &d2);
    if (d1 != d2) die("fashion-mnist: %zu vs %zu dimensions", d1, d2);
    g_dim = d1;
}

/* ---- ground truth ------------------------------------------------------------ */

/* gt[q][0..K): the K nearest base rows of query q; fgt[s][q][..]: the same
 * among rows with cat < sel_pct[s]. */
static uint32_t *g_gt, *g_fgt[NSEL];

static inline float l2sq(const float *a, const float *b, size_t d)
{
    float s = 0;
    for (size_t i = 0; i < d; i++) { float t = a[i] - b[i]; s += t * t; }
    return s;
}

static void topk_push(float *bd, uint32_t *bi, int *cnt, float d, uint32_t id)
{
    if (*cnt == K && d >= bd[K - 1]) return;
    int j = *cnt < K ? (*cnt)++ : K - 1;
    while (j > 0 && bd[j - 1] > d) { bd[j] = bd[j - 1]; bi[j] = bi[j - 1]; j--; }
    bd[j] = d;
    bi[j] = id;
}

typedef struct gt_job { size_t q0, q1; } gt_job;

static void *gt_main(void *arg)
{
    gt_job *j = arg;
    for (size_t q = j->q0; q < j->q1; q++) {
        float bd[1 + NSEL][K];
        int cnt[1 + NSEL] = {0};
        uint32_t *out[1 + NSEL] = { g_gt + q * K };
        for (int s = 0; s < NSEL; s++) out[1 + s] = g_fgt[s] + q * K;
        const float *qv = g_query + q * g_dim;
        for (size_t i = 0; i < g_n; i++) {
            float d = l2sq(qv, g_base + i * g_dim, g_dim);
            topk_push(bd[0], out[0], &cnt[0], d, (uint32_t)i);
            int c = cat_of(i);
            for (int s = 0; s < NSEL; s++)
                if (c < sel_pct[s]) topk_push(bd[1 + s], out[1 + s], &cnt[1 + s], d, (uint32_t)i);
        }
    }
    return NULL;
}

static void ground_truth(void)
{
    size_t per = g_nq * K * sizeof(uint32_t);
    g_gt = malloc(per);
    for (int s = 0; s < NSEL; s++) g_fgt[s] = malloc(per);
    char path[512];
    int syn = strcmp(g_data, "synthetic") == 0;
    char dims[32] = "";
    if (syn && g_syn_dim != 128) snprintf(dims, sizeof dims, "_d%zu", g_syn_dim);
    snprintf(path, sizeof path, "/tmp/bench_vector_gt_%s_%llu_r%d%s_%zu_%zu_k%d.bin", g_data,
             (unsigned long long)(syn ? g_seed : 0), syn ? g_latent : 0, dims, g_n, g_nq, K);
    FILE *f = fopen(path, "rb");
    if (f) {
        int ok = fread(g_gt, 1, per, f) == per;
        for (int s = 0; s < NSEL; s++) ok = ok && fread(g_fgt[s], 1, per, f) == per;
        fclose(f);
        if (ok) { printf("ground truth: %s (cached)\n", path); return; }
    }
    double t0 = now();
    long nt = sysconf(_SC_NPROCESSORS_ONLN);
    if (nt < 1) nt = 1;
    if (nt > BENCH_MAXT) nt = BENCH_MAXT;
    pthread_t th[BENCH_MAXT];
    gt_job jobs[BENCH_MAXT];
    for (long t = 0; t < nt; t++) {
        jobs[t] = (gt_job){ g_nq * (size_t)t / (size_t)nt, g_nq * (size_t)(t + 1) / (size_t)nt };
        if (pthread_create(&th[t], NULL, gt_main, &jobs[t])) die("pthread_create");
    }
    for (long t = 0; t < nt; t++) pthread_join(th[t], NULL);
    printf("ground truth: exact search, %ld threads, %.1f s -> %s\n", nt, now() - t0, path);
    f = fopen(path, "wb");
    if (f) {
        fwrite(g_gt, 1, per, f);
        for (int s = 0; s < NSEL; s++) fwrite(g_fgt[s], 1, per, f);
        fclose(f);
    }
}

/* ---- memory and files ----------------------------------------------------------- */

static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long a = 0, b = 0;
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &a, &b) != 2) b = 0;
    fclose(f);
    return (double)b * (double)sysconf(_SC_PAGESIZE);
}

/* bytes malloc has handed out and not had back (glibc; 0 elsewhere) */
static double heap_bytes(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
#else
    return 0;
#endif
}

static double g_du, g_wal;
static int du_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (flag == FTW_F) {
        if (strstr(p + ftw->base, ".wal")) g_wal += (double)sb->st_size;
        else g_du += (double)sb->st_size;
        printf(" %s %.1f MB", p + ftw->base, (double)sb->st_size / 1e6);
    }
    return 0;
}
/* Bytes of the files under p but the log (reported apart: it is a reused
 * file, restarted every ~16 MiB of frames and truncated past 64 MiB). */
static double dir_bytes(const char *p)
{
    g_du = g_wal = 0;
    nftw(p, du_cb, 16, FTW_PHYS);
    return g_du;
}
__attribute__((unused)) static double file_bytes(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (double)st.st_size : 0;
}

/* ---- engines --------------------------------------------------------------------- */

enum { E_TS, E_HNSW, E_FAISS, NE };
static const char *const ename[NE] = { "tostore", "hnswlib", "faiss" };
static int g_have[NE];

static ts_db *g_db;
static char *g_dbdir;
static long long g_cache;
static void *g_hnsw __attribute__((unused)), *g_faiss __attribute__((unused));
/* tostore row id (1-based) -> base row; grows with the churn inserts */
static uint32_t *g_idrow;
static size_t g_nids;
/* hnswlib label -> base row (labels are row numbers, then N + j for churn) */
static uint32_t *g_lbrow;
/* --only m: cycles of a transaction of MIX_B inserts and MIX_S searches */
#define MIX_B 10
#define MIX_S 10
#define MIX_BLOCK 20
#define MIX_CYCLES 200

#define TSCK(db_, x) do { int rc_ = (x); \
    if (rc_ != TS_OK) die("%s:%d: %s: %d %s", __FILE__, __LINE__, #x, rc_, ts_errmsg(db_)); } while (0)

static ts_db *ts_open_dir(const char *dir) { return bench_open_db(dir, "normal", g_cache, NULL); }

static void ts_create(void)
{
    char ngh[256], seed[96] = "", s[1024];
    if (g_ngh_seed) snprintf(seed, sizeof seed, ", \"seed\": %lld", g_ngh_seed);
    if (g_split) snprintf(seed + strlen(seed), sizeof seed - strlen(seed), ", \"splitRecords\": true");
    snprintf(ngh, sizeof ngh,
             "{\"type\": \"ngh\", \"fields\": [\"emb\"], \"vectorConfig\": "
             "{\"distanceMetric\": \"l2\", \"parameters\": {\"M\": %d, \"efConstruction\": %d, "
             "\"efSearch\": 64%s}}}", M_PARAM, EFC, seed);
    snprintf(s, sizeof s,
             "{\"name\": \"t\", \"primaryKeyConfig\": {\"type\": \"sequential\"}, \"fields\": ["
             "{\"name\": \"cat\", \"type\": \"integer\"},"
             "{\"name\": \"emb\", \"type\": \"vector\", \"vectorConfig\": {\"dimensions\": %zu, "
             "\"precision\": \"%s\"}}],"
             "\"indexes\": [%s%s%s]}", g_dim, g_precision, g_no_vindex ? "" : ngh,
             g_cat_index && !g_no_vindex ? ", " : "",
             g_cat_index ? "{\"type\": \"btree\", \"fields\": [\"cat\"]}" : "");
    json_error_t jerr;
    json_t *schema = json_loads(s, 0, &jerr);
    if (!schema) die("schema: %s", jerr.text);
    TSCK(g_db, ts_create_table(g_db, schema));
    json_decref(schema);
}

static void ts_insert_row(size_t row)
{
    json_t *rec = json_pack("{s:I, s:o}", "cat", (json_int_t)cat_of(row), "emb",
                            ts_vector_value(g_base + row * g_dim, g_dim));
    if (!rec) die("json_pack");
    json_t *pk = NULL;
    TSCK(g_db, ts_insert(g_db, "t", rec, &pk));
    json_int_t id = json_integer_value(pk);
    if (id < 1) die("ts_insert: primary key %lld", (long long)id);
    if ((size_t)id > g_nids) die("ts_insert: primary key %lld beyond %zu", (long long)id, g_nids);
    g_idrow[id - 1] = (uint32_t)row;
    json_decref(pk);
    json_decref(rec);
}

/* One search on engine e: the base rows of up to K results into rows;
 * returns how many.  sel >= 0: tostore only, cat < sel_pct[sel]. */
static int search(int e, const float *q, int ef, int sel, uint32_t *rows)
{
    int64_t lb[K];
    int n = 0;
    switch (e) {
    case E_TS: {
        static const char *const idf[] = { "id" };
        ts_query *qq = ts_ef_search(ts_select(ts_query_new(g_db, "t"), idf, 1), ef);
        if (sel >= 0) {
            json_t *v = json_integer(sel_pct[sel]);
            qq = ts_where(qq, "cat", "<", v);
            json_decref(v);
            if (g_no_repeat) {
                v = json_integer(-1 - (json_int_t)++g_qctr);
                qq = ts_where(qq, "cat", ">", v);
                json_decref(v);
            }
        }
        ts_result *r = NULL;
        TSCK(g_db, ts_vector_search(qq, "emb", q, g_dim, K, &r));
        ts_query_free(qq);
        size_t c = ts_result_count(r);
        for (size_t i = 0; i < c && n < K; i++) {
            json_int_t id = json_integer_value(json_object_get(ts_result_row(r, i), "id"));
            rows[n++] = id >= 1 && (size_t)id <= g_nids ? g_idrow[id - 1] : UINT32_MAX;
        }
        ts_result_free(r);
        return n;
    }
#ifdef BENCH_HAVE_HNSWLIB
    case E_HNSW:
        n = vref_hnsw_search(g_hnsw, q, K, lb);
        for (int i = 0; i < n; i++) rows[i] = g_lbrow[lb[i]];
        return n;
#endif
#ifdef BENCH_HAVE_FAISS
    case E_FAISS:
        n = vref_faiss_search(g_faiss, q, K, lb);
        for (int i = 0; i < n; i++) rows[i] = (uint32_t)lb[i];
        return n;
#endif
    default:
        (void)lb;
        die("engine %d not built", e);
    }
}

static void set_ef(int e, int ef)
{
#ifdef BENCH_HAVE_HNSWLIB
    if (e == E_HNSW) vref_hnsw_set_ef(g_hnsw, ef);
#endif
#ifdef BENCH_HAVE_FAISS
    if (e == E_FAISS) vref_faiss_set_ef(g_faiss, ef);
#endif
    (void)e; (void)ef;
}

/* --only s: the share of base vectors a search for the vector itself does
 * not return (unreachable or nearly so at that breadth), per engine. */
static void reach(void)
{
    static const int efs[] = { 10, 64, 256 };
    size_t ns = g_n < 2000 ? g_n : 2000;
    printf("\n-- s. reachability: %zu base vectors searched for themselves (k %d) --\n", ns, K);
    printf("ef     |");
    for (int e = 0; e < NE; e++)
        if (g_have[e]) printf(" %-9s missed |", ename[e]);
    printf("\n");
    for (size_t t = 0; t < sizeof efs / sizeof *efs; t++) {
        printf("%-6d |", efs[t]);
        for (int e = 0; e < NE; e++) {
            if (!g_have[e]) continue;
            set_ef(e, efs[t]);
            size_t miss = 0, dec[10] = { 0 };
            for (size_t i = 0; i < ns; i++) {
                size_t row = i * (g_n / ns);
                uint32_t rows[K];
                int n = search(e, g_base + row * g_dim, efs[t], -1, rows);
                int hit = 0;
                for (int j = 0; j < n; j++) hit |= rows[j] == row;
                miss += !hit;
                dec[i * 10 / ns] += !hit;
            }
            printf(" %6zu (%5.2f%%) |", miss, 100.0 * (double)miss / (double)ns);
            if (miss) {   /* by tenth of the insert order */
                printf(" [");
                for (int d = 0; d < 10; d++) printf("%s%zu", d ? " " : "", dec[d]);
                printf("]");
            }
        }
        printf("\n");
    }
}

/* ---- query batches ----------------------------------------------------------------- */

typedef struct batch {
    int e, ef, sel;
    size_t q0, q1;
    double hits;        /* recall numerator (the first pass) */
    size_t short_rows;  /* queries with fewer than min(K, ...) rows (the first pass) */
    double t0;          /* when the batch started */
    size_t done;        /* queries run, every pass */
} batch;

/* A timed batch repeats its queries until it has run this long (whole
 * passes), so that a fast point of the sweep (1 000 queries at ef 10 take
 * ~25 ms, 12 ms a thread on two) is not decided by one context switch or
 * a thread's start-up.  BENCH_VEC_MIN_TIME (seconds) changes it. */
static double g_min_time = 0.25;

static double overlap(const uint32_t *got, int n, const uint32_t *want)
{
    int h = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < K; j++)
            if (got[i] == want[j]) { h++; break; }
    return h;
}

static void *batch_main(void *arg)
{
    batch *b = arg;
    uint32_t rows[K];
    for (int pass = 0; pass == 0 || now() - b->t0 < g_min_time; pass++) {
        for (size_t q = b->q0; q < b->q1; q++) {
            int n = search(b->e, g_query + q * g_dim, b->ef, b->sel, rows);
            if (pass) continue;
            const uint32_t *want = b->sel < 0 ? g_gt + q * K : g_fgt[b->sel] + q * K;
            b->hits += overlap(rows, n, want);
            if (n < K) b->short_rows++;
        }
        b->done += b->q1 - b->q0;
    }
    return NULL;
}

/* The first nq queries (0: all) on engine e with threads threads:
 * queries/s; *recall over them. */
/* CPU seconds of the whole process (every thread). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double g_last_cpu_us;   /* CPU microseconds per query of the last batch */

static double run_batch_n(int e, int ef, int sel, int threads, size_t nq, double *recall,
                          size_t *short_rows)
{
    if (nq == 0 || nq > g_nq) nq = g_nq;
    set_ef(e, ef);
    batch b[BENCH_MAXT];
    pthread_t th[BENCH_MAXT];
    double t0 = now(), c0 = cpu_now();
    for (int t = 0; t < threads; t++) {
        b[t] = (batch){ e, ef, sel, nq * (size_t)t / (size_t)threads,
                        nq * (size_t)(t + 1) / (size_t)threads, 0, 0, t0, 0 };
        if (threads == 1) batch_main(&b[t]);
        else if (pthread_create(&th[t], NULL, batch_main, &b[t])) die("pthread_create");
    }
    if (threads > 1)
        for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    double el = now() - t0, hits = 0;
    size_t sh = 0, done = 0;
    for (int t = 0; t < threads; t++) { hits += b[t].hits; sh += b[t].short_rows; done += b[t].done; }
    g_last_cpu_us = (cpu_now() - c0) * 1e6 / (double)done;
    if (recall) *recall = hits / ((double)nq * K);
    if (short_rows) *short_rows = sh;
    return (double)done / el;
}

static double run_batch(int e, int ef, int sel, int threads, double *recall, size_t *short_rows)
{
    return run_batch_n(e, ef, sel, threads, 0, recall, short_rows);
}

/* ---- the efSearch sweep -------------------------------------------------------------- */

static const int ef_grid[] = { 10, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96,
                               112, 128, 160, 192, 256, 320, 400, 512 };
#define NEF ((int)(sizeof ef_grid / sizeof ef_grid[0]))
static const double targets[] = { 0.90, 0.95, 0.99 };
#define NT 3

typedef struct curve {
    int    n;                 /* grid points measured */
    double recall[NEF];
    double qps[NEF][MAXR];    /* per round */
    double qps2[NEF][MAXR];   /* T threads, only at the bracketing points (0 elsewhere) */
} curve;
static curve g_cv[NE];

/* Index i such that recall[i] < t <= recall[i+1] (first crossing), -1 if
 * not reached; -2 if even the first point is above t (use point 0). */
static int bracket(const curve *c, double t)
{
    if (c->n == 0) return -1;
    if (c->recall[0] >= t) return -2;
    for (int i = 0; i + 1 < c->n; i++)
        if (c->recall[i] < t && c->recall[i + 1] >= t) return i;
    return -1;
}

/* QPS at recall t in round r from qps[][r] (or qps2): 0 when not reached. */
static double qps_at(const curve *c, double t, int r, int two)
{
    int i = bracket(c, t);
    const double (*q)[MAXR] = two ? c->qps2 : c->qps;
    if (i == -1) return 0;
    if (i == -2) return q[0][r];
    double r0 = c->recall[i], r1 = c->recall[i + 1];
    double a = q[i][r], b = q[i + 1][r];
    if (a <= 0 || b <= 0) return 0;
    double x = (t - r0) / (r1 - r0);
    return exp(log(a) + x * (log(b) - log(a)));
}

static double ef_at(const curve *c, double t)
{
    int i = bracket(c, t);
    if (i == -1) return 0;
    if (i == -2) return ef_grid[0];
    double x = (t - c->recall[i]) / (c->recall[i + 1] - c->recall[i]);
    return ef_grid[i] + x * (ef_grid[i + 1] - ef_grid[i]);
}

static int g_order[NE], g_ne;   /* the engines present */

static void sweep(void)
{
    int done[NE] = {0}, high[NE] = {0};
    printf("\n-- q. efSearch sweep, %zu queries, k = %d, 1 thread, %d rounds interleaved per efSearch --\n",
           g_nq, K, g_rounds);
    /* one batch each first, not counted in the sweep: after a build (or
     * with --only q) the first batch filled tostore's read cache and ran
     * several times slower than the same queries a moment later, which put
     * the recall targets reached at the first grid point on a cold
     * measurement.  Its time and memory are printed for what they say
     * about a first search. */
    for (int i = 0; i < g_ne; i++) {
        double m0 = rss_bytes(), t0 = now();
        run_batch(g_order[i], ef_grid[0], -1, 1, NULL, NULL);
        double el = now() - t0, m1 = rss_bytes();
        printf("  first batch %s: %.0f ms", ename[g_order[i]], el * 1e3);
        if (m0 > 0 && m1 > 0) printf(", RSS growth %.0f B/vector", (m1 - m0) / (double)g_n);
        printf("\n");
    }
    printf("%-6s", "ef");
    for (int i = 0; i < g_ne; i++) printf(" | %-8s %8s %9s", ename[g_order[i]], "recall", "QPS(med)");
    printf("\n");
    for (int p = 0; p < NEF; p++) {
        int any = 0;
        for (int i = 0; i < g_ne; i++) any |= !done[g_order[i]];
        if (!any) break;
        for (int r = 0; r < g_rounds; r++)
            for (int k = 0; k < g_ne; k++) {
                int e = g_order[(k + r + p) % g_ne];
                if (done[e]) continue;
                double rec;
                g_cv[e].qps[p][r] = run_batch(e, ef_grid[p], -1, 1, &rec, NULL);
                if (r == 0) g_cv[e].recall[p] = rec;
            }
        printf("%-6d", ef_grid[p]);
        for (int i = 0; i < g_ne; i++) {
            int e = g_order[i];
            if (done[e]) { printf(" | %-8s %8s %9s", "", "", ""); continue; }
            g_cv[e].n = p + 1;
            printf(" | %-8s %8.4f %9.0f", "", g_cv[e].recall[p], median(g_cv[e].qps[p], g_rounds));
            if (g_cv[e].recall[p] >= 0.998) high[e]++;
            if (high[e] >= 2) done[e] = 1;
        }
        printf("\n");
        fflush(stdout);
    }
}

/* T threads at the grid points bracketing each target. */
static void sweep_threads(void)
{
    int need[NE][NEF] = {{0}};
    for (int i = 0; i < g_ne; i++) {
        int e = g_order[i];
        for (int t = 0; t < NT; t++) {
            int b = bracket(&g_cv[e], targets[t]);
            if (b == -2) need[e][0] = 1;
            else if (b >= 0) need[e][b] = need[e][b + 1] = 1;
        }
    }
    printf("\n-- q%d. %d query threads at the efSearch values bracketing each target, %d rounds --\n",
           g_threads, g_threads, g_rounds);
    /* one untimed T-thread batch each first, as before the one-thread sweep:
     * the first batch on new threads pays their one-time set-up (tostore:
     * a second search scratch; every engine: a new malloc arena faulted in) */
    for (int i = 0; i < g_ne; i++) run_batch(g_order[i], ef_grid[0], -1, g_threads, NULL, NULL);
    for (int p = 0; p < NEF; p++) {
        int any = 0;
        for (int i = 0; i < g_ne; i++) any |= need[g_order[i]][p];
        if (!any) continue;
        /* CPU time per query, one thread and T threads, in the same rounds:
         * more CPU per query with T threads means they get in each other's
         * way (locks, shared cache lines); fewer QPS than T x one thread
         * with the same CPU per query means the cores were busy elsewhere */
        double cpu1[NE][MAXR] = {{0}}, cpuT[NE][MAXR] = {{0}}, q1[NE][MAXR] = {{0}};
        for (int r = 0; r < g_rounds; r++)
            for (int k = 0; k < g_ne; k++) {
                int e = g_order[(k + r + p) % g_ne];
                if (!need[e][p]) continue;
                g_cv[e].qps2[p][r] = run_batch(e, ef_grid[p], -1, g_threads, NULL, NULL);
                cpuT[e][r] = g_last_cpu_us;
                q1[e][r] = run_batch(e, ef_grid[p], -1, 1, NULL, NULL);
                cpu1[e][r] = g_last_cpu_us;
            }
        printf("%-6d", ef_grid[p]);
        for (int i = 0; i < g_ne; i++) {
            int e = g_order[i];
            if (need[e][p])
                printf(" | %-8s %9.0f (1 thr %6.0f; CPU us/query %5.1f vs %5.1f)", ename[e],
                       median(g_cv[e].qps2[p], g_rounds), median(q1[e], g_rounds), median(cpuT[e], g_rounds),
                       median(cpu1[e], g_rounds));
            else printf(" | %-8s %9s", ename[e], "-");
        }
        printf("\n");
        fflush(stdout);
    }
}

static void fmt_qps(char *buf, size_t n, double v)
{
    if (v <= 0) snprintf(buf, n, "not reached");
    else snprintf(buf, n, "%.0f", v);
}

static void report_targets(int two)
{
    int th = two ? g_threads : 1;
    printf("\n-- queries/s at recall@10 targets, %d thread%s (interpolated per round, median) --\n", th,
           th > 1 ? "s" : "");
    printf("%-8s", "recall");
    for (int i = 0; i < g_ne; i++) printf(" %12s %7s", ename[g_order[i]], "(ef)");
    for (int i = 1; i < g_ne; i++) printf("  tostore/%-8s", ename[g_order[i]]);
    printf("\n");
    for (int t = 0; t < NT; t++) {
        double q[NE][MAXR] = {{0}};
        printf("%-8.2f", targets[t]);
        for (int i = 0; i < g_ne; i++) {
            int e = g_order[i];
            for (int r = 0; r < g_rounds; r++) q[e][r] = qps_at(&g_cv[e], targets[t], r, two);
            char b[32];
            fmt_qps(b, sizeof b, median(q[e], g_rounds));
            if (bracket(&g_cv[e], targets[t]) == -2) printf(" %12s %7s", b, "<=10");
            else printf(" %12s %7.0f", b, ef_at(&g_cv[e], targets[t]));
        }
        for (int i = 1; i < g_ne; i++) {
            int e = g_order[i];
            double v[MAXR];
            int ok = 1;
            for (int r = 0; r < g_rounds; r++) {
                v[r] = q[e][r] > 0 ? q[E_TS][r] / q[e][r] : 0;
                if (q[e][r] <= 0 || q[E_TS][r] <= 0) ok = 0;
            }
            if (ok) {
                ratio x = { median(v, g_rounds), vmin(v, g_rounds), vmax(v, g_rounds) };
                printf("  %5.2fx [%.2f-%.2f]", x.med, x.lo, x.hi);
                if (e == E_HNSW && t > 0) {
                    char what[64], val[32], ref[32], rt[48];
                    snprintf(what, sizeof what, "QPS @ recall %.2f, %d thr", targets[t], th);
                    snprintf(val, sizeof val, "%.0f", median(q[E_TS], g_rounds));
                    snprintf(ref, sizeof ref, "hnswlib %.0f", median(q[e], g_rounds));
                    snprintf(rt, sizeof rt, "%.2fx [%.2f-%.2f]", x.med, x.lo, x.hi);
                    add_row(what, val, ref, rt, ">= 1x", x.med >= 1 ? "met" : "NOT met");
                }
            } else printf("  %18s", "n/a");
        }
        printf("\n");
    }
}

/* ---- build ------------------------------------------------------------------------------ */

static double g_build_time[NE], g_build_rss[NE], g_file[NE];
static double g_chunk_rate[NE][MAXR];

static void build(void)
{
    int chunks = 20;
    size_t per = (g_n + (size_t)chunks - 1) / (size_t)chunks;
    printf("\n-- b. build: %zu vectors in %d chunks, engines interleaved per chunk, 1 thread --\n", g_n,
           chunks);
    double rate[NE][32] = {{0}};
    for (int c = 0; c < chunks; c++) {
        size_t a = (size_t)c * per, z = a + per < g_n ? a + per : g_n;
        if (a >= z) { chunks = c; break; }
        for (int k = 0; k < g_ne; k++) {
            int e = g_order[(k + c) % g_ne];
            if (!g_have[e]) continue;   /* tostore with --reuse-db */
            double m0 = rss_bytes(), t0 = now();
            switch (e) {
            case E_TS:
                TSCK(g_db, ts_begin(g_db));
                for (size_t i = a; i < z; i++) ts_insert_row(i);
                TSCK(g_db, ts_commit(g_db));
                if (getenv("BENCH_VEC_MEM")) {
                    json_t *st = NULL;
                    if (ts_stats(g_db, &st) == TS_OK)
                        printf("  [mem] RSS %.1f MB, page cache %lld pages of %lld, its memory %.1f MB "
                               "(peak %.1f), malloc %.1f MB\n", rss_bytes() / 1e6,
                               (long long)json_integer_value(json_object_get(st, "cachePages")),
                               (long long)json_integer_value(json_object_get(st, "pages")),
                               json_number_value(json_object_get(st, "cacheMemory")) / 1e6,
                               json_number_value(json_object_get(st, "cacheMemoryPeak")) / 1e6,
                               heap_bytes() / 1e6);
                    json_decref(st);
                }
                break;
#ifdef BENCH_HAVE_HNSWLIB
            case E_HNSW:
                /* created in the first chunk (its RSS counts); room for the churn inserts */
                if (!g_hnsw && !(g_hnsw = vref_hnsw_new((int)g_dim, g_n + g_n / 5 + 16 + 2 * MIX_CYCLES * MIX_B, M_PARAM, EFC)))
                    die("hnswlib");
                for (size_t i = a; i < z; i++)
                    if (vref_hnsw_add(g_hnsw, g_base + i * g_dim, i)) die("hnswlib add");
                break;
#endif
#ifdef BENCH_HAVE_FAISS
            case E_FAISS:
                if (!g_faiss && !(g_faiss = vref_faiss_new((int)g_dim, M_PARAM, EFC))) die("faiss");
                if (vref_faiss_add(g_faiss, z - a, g_base + a * g_dim)) die("faiss add");
                break;
#endif
            }
            double el = now() - t0;
            g_build_time[e] += el;
            g_build_rss[e] += rss_bytes() - m0;
            rate[e][c] = (double)(z - a) / el;
        }
        printf("  chunk %2d/%d (%zu rows):", c + 1, chunks, z);
        for (int i = 0; i < g_ne; i++) printf("  %s %.0f/s", ename[g_order[i]], rate[g_order[i]][c]);
        printf("\n");
        fflush(stdout);
    }
    /* file bytes */
    if (!g_have[E_TS]) return;
    TSCK(g_db, ts_close(g_db));
    g_db = NULL;
    printf("\n  tostore files after ts_close:");
    g_file[E_TS] = dir_bytes(g_dbdir);
    printf("\n  (tostore file bytes below: every file but the log, whose %.1f MB would add %.0f B/vector)\n",
           g_wal / 1e6, g_wal / (double)g_n);
#ifdef BENCH_HAVE_HNSWLIB
    if (g_have[E_HNSW]) {
        char *p = path_join(g_dbdir, "../hnswlib.bin");
        if (vref_hnsw_save(g_hnsw, p) == 0) g_file[E_HNSW] = file_bytes(p);
        remove(p);
        free(p);
    }
#endif
#ifdef BENCH_HAVE_FAISS
    if (g_have[E_FAISS]) {
        char *p = path_join(g_dbdir, "../faiss.bin");
        if (vref_faiss_save(g_faiss, p) == 0) g_file[E_FAISS] = file_bytes(p);
        remove(p);
        free(p);
    }
#endif
    printf("\n%-10s %12s %14s %16s %16s\n", "engine", "inserts/s", "build s", "RSS bytes/vec",
           "file bytes/vec");
    for (int i = 0; i < g_ne; i++) {
        int e = g_order[i];
        printf("%-10s %12.0f %14.1f %16.0f %16.0f\n", ename[e], (double)g_n / g_build_time[e],
               g_build_time[e], g_build_rss[e] / (double)g_n, g_file[e] / (double)g_n);
    }
    for (int i = 1; i < g_ne; i++) {
        int e = g_order[i];
        double v[32];
        for (int c = 0; c < chunks; c++) v[c] = rate[E_TS][c] / rate[e][c];
        ratio x = { median(v, chunks), vmin(v, chunks), vmax(v, chunks) };
        char lbl[64];
        snprintf(lbl, sizeof lbl, "build rate tostore/%s (per chunk)", ename[e]);
        print_ratio(lbl, x);
        snprintf(lbl, sizeof lbl, "memory/vector (RSS growth) tostore/%s", ename[e]);
        printf("  %-44s %6.2fx\n", lbl, g_build_rss[E_TS] / g_build_rss[e]);
        snprintf(lbl, sizeof lbl, "memory/vector (file bytes) tostore/%s", ename[e]);
        printf("  %-44s %6.2fx\n", lbl, g_file[E_TS] / g_file[e]);
        if (e == E_HNSW) {
            char val[32], ref[48], rt[48];
            snprintf(val, sizeof val, "%.0f/s", (double)g_n / g_build_time[E_TS]);
            snprintf(ref, sizeof ref, "hnswlib %.0f/s", (double)g_n / g_build_time[e]);
            snprintf(rt, sizeof rt, "%.2fx [%.2f-%.2f]", x.med, x.lo, x.hi);
            add_row("build rate (1 thread)", val, ref, rt, ">= 1x", x.med >= 1 ? "met" : "NOT met");
            snprintf(val, sizeof val, "%.0f B", g_build_rss[E_TS] / (double)g_n);
            snprintf(ref, sizeof ref, "hnswlib %.0f B", g_build_rss[e] / (double)g_n);
            snprintf(rt, sizeof rt, "%.2fx", g_build_rss[E_TS] / g_build_rss[e]);
            add_row("memory/vector, RSS growth", val, ref, rt, "< 1x",
                    g_build_rss[E_TS] < g_build_rss[e] ? "met" : "NOT met");
            snprintf(val, sizeof val, "%.0f B", g_file[E_TS] / (double)g_n);
            snprintf(ref, sizeof ref, "hnswlib %.0f B", g_file[e] / (double)g_n);
            snprintf(rt, sizeof rt, "%.2fx", g_file[E_TS] / g_file[e]);
            add_row("memory/vector, file bytes", val, ref, rt, "< 1x",
                    g_file[E_TS] < g_file[e] ? "met" : "NOT met");
        }
    }
    (void)g_chunk_rate;
}

/* ---- reopen -------------------------------------------------------------------------------- */

static void reopen(void)
{
    double t[3], first[3], second[3];
    uint32_t rows[K];
    for (int i = 0; i < 3; i++) {
        if (g_db) { TSCK(g_db, ts_close(g_db)); g_db = NULL; }
        double t0 = now();
        g_db = ts_open_dir(g_dbdir);
        double t1 = now();
        search(E_TS, g_query, 64, -1, rows);
        double t2 = now();
        search(E_TS, g_query + g_dim, 64, -1, rows);
        double t3 = now();
        t[i] = (t2 - t0) * 1e3;
        first[i] = (t2 - t1) * 1e3;
        second[i] = (t3 - t2) * 1e3;
    }
    double m = median(t, 3);
    printf("\n-- o. reopen (%zu vectors): ts_open_json + first ts_vector_search (ef 64), 3 times --\n"
           "  open + first query %.2f ms (median; %.2f .. %.2f), of which the first query %.2f ms; "
           "second query %.2f ms\n", g_n, m, vmin(t, 3), vmax(t, 3), median(first, 3), median(second, 3));
    /* with --reuse-db --only o the first is this process's first open: a
     * fresh process's (its heap and the cache's mappings not faulted in) */
    printf("  each: %.2f / %.2f / %.2f ms (first query %.2f / %.2f / %.2f ms)%s\n", t[0], t[1], t[2], first[0],
           first[1], first[2], g_reused_first ? "; the first in a fresh process" : "");
    char val[32], what[64];
    snprintf(val, sizeof val, "%.1f ms", m);
    snprintf(what, sizeof what, "reopen + first query (%zu vec)", g_n);
    add_row(what, val, "-", "-", "< 100 ms", m < 100 ? "met" : "NOT met");
}

/* ---- filtered ------------------------------------------------------------------------------- */

static void filtered(void)
{
    printf("\n-- f. filtered search (tostore), cat < n, efSearch %d, %d rounds%s --\n", g_filter_ef, g_rounds,
           g_cat_index ? ", btree index on cat" : ", no index on cat");
    printf("%-12s %10s %10s %20s %14s\n", "selectivity", "recall@10", "QPS", "queries < 10 rows",
           "CPU us/query");
    size_t nq1 = 0;
    for (int s = 0; s < NSEL; s++) {
        if (g_sel_only && sel_pct[s] != g_sel_only) continue;
        double q[MAXR], rec = 0;
        size_t sh = 0;
        /* slow filters: as many of the queries as fit about 3 s per round
         * (at least 50), the same ones every round */
        /* BENCH_VEC_WARM: every query once, untimed, first (a reused
         * database is read from disk by the first searches that touch it) */
        if (getenv("BENCH_VEC_WARM")) run_batch_n(E_TS, g_filter_ef, s, 1, g_nq, NULL, NULL);
        double qps0 = run_batch_n(E_TS, g_filter_ef, s, 1, 50, NULL, NULL);
        size_t nq = (size_t)(qps0 * 3.0);
        if (nq < 50) nq = 50;
        if (nq > g_nq) nq = g_nq;
        if (sel_pct[s] == 1) nq1 = nq;
        double cpu[MAXR];
        for (int r = 0; r < g_rounds; r++) {
            q[r] = run_batch_n(E_TS, g_filter_ef, s, 1, nq, r ? NULL : &rec, r ? NULL : &sh);
            cpu[r] = g_last_cpu_us;
        }
        printf("%10d%% %10.4f %10.0f %11zu of %-5zu %14.0f\n", sel_pct[s], rec, median(q, g_rounds), sh, nq,
               median(cpu, g_rounds));
        if (sel_pct[s] == 1) {
            char val[48];
            snprintf(val, sizeof val, "%.0f QPS, recall %.3f", median(q, g_rounds), rec);
            add_row("filtered 1%, k rows always", val, "-", sh ? "short results" : "10 rows always",
                    ">= 1000 QPS", median(q, g_rounds) >= 1000 && !sh ? "met" : "NOT met");
        }
    }
    if (!nq1) return;
    double q2[MAXR];
    for (int r = 0; r < g_rounds; r++) q2[r] = run_batch_n(E_TS, g_filter_ef, NSEL - 1, g_threads, nq1, NULL, NULL);
    printf("  1%% with %d threads: %.0f QPS (%zu queries)\n", g_threads, median(q2, g_rounds), nq1);
}

/* ---- churn ---------------------------------------------------------------------------------- */

/* --only m: a writer's commits between searches.  cycles x (one transaction
 * of MIX_B inserts, then MIX_S searches at ef 64), the engines alternating
 * every MIX_BLOCK cycles; the inserted vectors are base rows again (new
 * rows; hnswlib new labels), so recall is not measured. */
/* Insert base row `row` again as the k-th extra vector (hnswlib label). */
static void mix_insert(int e, size_t row, size_t k)
{
    if (e == E_TS) ts_insert_row(row);
#ifdef BENCH_HAVE_HNSWLIB
    if (e == E_HNSW) {
        size_t lb = g_n + g_n / 5 + 16 + k;
        g_lbrow[lb] = (uint32_t)row;
        if (vref_hnsw_add(g_hnsw, g_base + row * g_dim, lb)) die("hnswlib add");
    }
#endif
}

/* A summary row: tostore's searches/s against hnswlib's (both > 0). */
static void mix_row(const char *what, double ts, double hn)
{
    if (!(ts > 0 && hn > 0)) return;
    char a[48], b[48], r[48];
    snprintf(a, sizeof a, "%.0f", ts);
    snprintf(b, sizeof b, "hnswlib %.0f", hn);
    snprintf(r, sizeof r, "%.2fx", ts / hn);
    add_row(what, a, b, r, "-", "info");
}

/* The writer of mixed_threads: MIX_CYCLES transactions of MIX_B inserts
 * (extra vectors MIX_CYCLES * MIX_B on), then stop. */
typedef struct mixw { int e; double secs; atomic_int stop; } mixw;
static void *mix_writer(void *arg)
{
    mixw *w = arg;
    double t0 = now();
    for (int c = 0; c < MIX_CYCLES; c++) {
        if (w->e == E_TS) TSCK(g_db, ts_begin(g_db));
        for (int b = 0; b < MIX_B; b++) {
            size_t k = (size_t)(MIX_CYCLES + c) * MIX_B + (size_t)b;
            mix_insert(w->e, (k * 7919) % g_n, k);
        }
        if (w->e == E_TS) TSCK(g_db, ts_commit(g_db));
    }
    w->secs = now() - t0;
    atomic_store(&w->stop, 1);
    return NULL;
}

/* A writer thread commits while this thread searches (ef 64) until it is
 * done: searches/s against pure[e] (no writer). */
static void mixed_threads(const double *pure)
{
    printf("\n-- m. a writer thread commits %d transactions of %d inserts while one thread searches (ef 64) --\n",
           MIX_CYCLES, MIX_B);
    printf("%-10s %16s %16s %12s %14s\n", "engine", "searches/s", "searches/s alone", "ratio", "inserts/s");
    double qps[NE] = {0};
    for (int i = 0; i < g_ne; i++) {
        int e = g_order[i];
        if (e == E_FAISS) continue;
        set_ef(e, 64);
        mixw w = { e, 0, 0 };
        pthread_t th;
        uint32_t rows[K];
        size_t n = 0, q = 0;
        double t0 = now();
        if (pthread_create(&th, NULL, mix_writer, &w)) die("pthread_create");
        while (!atomic_load(&w.stop)) {
            search(e, g_query + q * g_dim, 64, -1, rows);
            q = (q + 1) % g_nq;
            n++;
        }
        double el = now() - t0;
        pthread_join(th, NULL);
        qps[e] = (double)n / el;
        printf("%-10s %16.0f %16.0f %12.2f %14.0f\n", ename[e], qps[e], pure[e], qps[e] / pure[e],
               (double)(MIX_CYCLES * MIX_B) / w.secs);
    }
    mix_row("searches/s beside a writer thread", qps[E_TS], qps[E_HNSW]);
}

/* tostore only: filtered searches (1%, efSearch g_filter_ef) between
 * commits of MIX_B inserts, against the same searches with no writer
 * between them; with --cat-index each looks up its passing rows' keys in
 * the index (the key runs, ngh_keys.c). */
static void mixed_filtered(void)
{
    if (!g_have[E_TS]) return;
    uint32_t rows[K];
    size_t q = 0, ns = 0;
    double alone = 0, mixed_t = 0;
    int sel = NSEL - 1;
    for (int i = 0; i < MIX_CYCLES * MIX_S; i++, q = (q + 1) % g_nq) search(E_TS, g_query + q * g_dim, g_filter_ef, sel, rows);
    for (int c0 = 0; c0 < MIX_CYCLES; c0 += MIX_BLOCK) {
        double t0 = now();
        for (int i = 0; i < MIX_BLOCK * MIX_S; i++, q = (q + 1) % g_nq)
            search(E_TS, g_query + q * g_dim, g_filter_ef, sel, rows);
        alone += now() - t0;
        for (int c = c0; c < c0 + MIX_BLOCK; c++) {
            TSCK(g_db, ts_begin(g_db));
            for (int b = 0; b < MIX_B; b++) {
                size_t k = (size_t)(2 * MIX_CYCLES + c) * MIX_B + (size_t)b;
                ts_insert_row((k * 7919) % g_n);
            }
            TSCK(g_db, ts_commit(g_db));
            t0 = now();
            for (int s = 0; s < MIX_S; s++, q = (q + 1) % g_nq) search(E_TS, g_query + q * g_dim, g_filter_ef, sel, rows);
            mixed_t += now() - t0;
            ns += MIX_S;
        }
    }
    printf("\n-- m. filtered searches (%d%%, ef %d) between commits of %d inserts: %.0f/s, alone %.0f/s (%.2fx) --\n",
           sel_pct[sel], g_filter_ef, MIX_B, (double)ns / mixed_t, (double)ns / alone, alone / mixed_t);
    char a[48], b[48], r[48];
    snprintf(a, sizeof a, "%.0f", (double)ns / mixed_t);
    snprintf(b, sizeof b, "alone %.0f", (double)ns / alone);
    snprintf(r, sizeof r, "%.2fx", alone / mixed_t);
    add_row("filtered 1% between commits", a, b, r, "-", "info");
}

static void mixed(void)
{
    double ins[NE] = {0}, srch[NE] = {0}, pure[NE] = {0};
    size_t nins[NE] = {0}, nsrch[NE] = {0};
    uint32_t rows[K];
    size_t qn = 0;
    printf("\n-- m. mixed: %d cycles of (a transaction of %d inserts, then %d searches at ef 64) --\n",
           MIX_CYCLES, MIX_B, MIX_S);
    for (int i = 0; i < g_ne; i++) {
        int e = g_order[i];
        if (e == E_FAISS) continue;
        run_batch(e, 64, -1, 1, NULL, NULL);   /* untimed: the caches of a reused database */
        pure[e] = run_batch(e, 64, -1, 1, NULL, NULL);
    }
    for (int c0 = 0; c0 < MIX_CYCLES; c0 += MIX_BLOCK)
        for (int i = 0; i < g_ne; i++) {
            int e = g_order[(i + c0 / MIX_BLOCK) % g_ne];
            if (e == E_FAISS) continue;
            set_ef(e, 64);
            size_t q = qn;
            for (int c = c0; c < c0 + MIX_BLOCK; c++) {
                double t0 = now();
                if (e == E_TS) TSCK(g_db, ts_begin(g_db));
                for (int b = 0; b < MIX_B; b++) {
                    size_t k = (size_t)c * MIX_B + (size_t)b;
                    mix_insert(e, (k * 7919) % g_n, k);
                }
                if (e == E_TS) TSCK(g_db, ts_commit(g_db));
                double t1 = now();
                for (int s = 0; s < MIX_S; s++, q = (q + 1) % g_nq) search(e, g_query + q * g_dim, 64, -1, rows);
                double t2 = now();
                ins[e] += t1 - t0;
                srch[e] += t2 - t1;
                nins[e] += MIX_B;
                nsrch[e] += MIX_S;
            }
        }
    printf("%-10s %16s %16s %12s %14s\n", "engine", "searches/s mixed", "searches/s alone", "mixed/alone",
           "inserts/s");
    for (int i = 0; i < g_ne; i++) {
        int e = g_order[i];
        if (!nsrch[e]) continue;
        double m = (double)nsrch[e] / srch[e];
        printf("%-10s %16.0f %16.0f %12.2f %14.0f\n", ename[e], m, pure[e], m / pure[e],
               (double)nins[e] / ins[e]);
    }
    mixed_threads(pure);
    mixed_filtered();
    if (nsrch[E_TS] && nsrch[E_HNSW])
        mix_row("searches/s between commits (ef 64)", (double)nsrch[E_TS] / srch[E_TS],
                (double)nsrch[E_HNSW] / srch[E_HNSW]);
}

/* One search of part r: cat in lo..hi (ANDed with a new cat > -n). */
static double runs_search(const float *q, int lo, int hi)
{
    static const char *const idf[] = { "id" };
    json_t *a = json_integer(lo), *b = json_integer(hi), *c = json_integer(-1 - (json_int_t)++g_qctr);
    ts_query *qq = ts_where(ts_where(ts_where(ts_select(ts_query_new(g_db, "t"), idf, 1), "cat", ">=", a), "cat",
                                     "<=", b), "cat", ">", c);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    ts_result *r = NULL;
    double t0 = now();
    TSCK(g_db, ts_vector_search(qq, "emb", q, g_dim, K, &r));
    double el = now() - t0;
    ts_query_free(qq);
    ts_result_free(r);
    return el;
}

static void runs_phase(const char *what, int lo, int hi, int n)
{
    double sum = 0, worst = 0;
    int wi = 0;
    for (int i = 0; i < n; i++) {
        double el = runs_search(g_query + (size_t)(i % (int)g_nq) * g_dim, lo, hi);
        sum += el;
        if (el > worst) {
            worst = el;
            wi = i;
        }
    }
    printf("%-44s %8d %10.2f %10.1f %8d\n", what, n, sum / n * 1e3, worst * 1e3, wi);
}

/* Part r: the pause when ngh's key runs are made again (see the header). */
static void runs_again(void)
{
    if (!g_have[E_TS] || !g_cat_index) {
        printf("\n-- r. key runs: needs tostore and --cat-index --\n");
        return;
    }
    /* 4 x count lookups at 1% passing: about 400 searches, whatever N */
    int n = 450;
    printf("\n-- r. key runs made again (tostore, 1%% passing, a new filter every search) --\n");
    printf("%-44s %8s %10s %10s %8s\n", "phase", "searches", "mean ms", "worst ms", "worst at");
    runs_phase("existing rows (the runs made)", 0, 0, n);
    size_t add = g_n / 100;
    TSCK(g_db, ts_begin(g_db));
    for (size_t i = 0; i < add; i++) {
        json_t *rec = json_pack("{s:i, s:o}", "cat", 1000, "emb", ts_vector_value(g_base + i * g_dim, g_dim));
        if (!rec) die("json_pack");
        TSCK(g_db, ts_insert(g_db, "t", rec, NULL));
        json_decref(rec);
    }
    TSCK(g_db, ts_commit(g_db));
    runs_phase("rows appended since (the runs made again)", 1000, 1000, n + 50);
}

static void churn(void)
{
    size_t nd = g_n / 5;
    uint32_t *perm = malloc(g_n * sizeof *perm);
    if (!perm) die("out of memory");
    for (size_t i = 0; i < g_n; i++) perm[i] = (uint32_t)i;
    uint64_t s = g_seed ^ 0xc0ffee;
    for (size_t i = g_n - 1; i > 0; i--) {
        size_t j = rng_next(&s) % (i + 1);
        uint32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    /* the efSearch values: those of the sweep's points bracketing 0.90 .. 0.99 for tostore */
    int efs[4] = { 16, 32, 64, 128 };
    int churned[NE] = {0};
    double before[NE][4], after[NE][4];
    for (int i = 0; i < g_ne; i++) {
        int e = g_order[i];
        if (e == E_FAISS) continue;
        for (int k = 0; k < 4; k++) run_batch(e, efs[k], -1, 1, &before[e][k], NULL);
    }
    printf("\n-- c. churn: delete %zu random rows (20%%), insert their vectors again as new rows --\n", nd);
    /* tostore: 20 transactions of deletes, then 20 of inserts */
    size_t chunk = (nd + 19) / 20;
    double t0 = now();
    for (size_t a = 0; a < nd; a += chunk) {
        TSCK(g_db, ts_begin(g_db));
        for (size_t i = a; i < a + chunk && i < nd; i++) {
            /* the row id of base row perm[i]: rows were inserted in order */
            json_t *pk = json_integer((json_int_t)perm[i] + 1);
            TSCK(g_db, ts_delete(g_db, "t", pk));
            json_decref(pk);
        }
        TSCK(g_db, ts_commit(g_db));
    }
    double td = now() - t0;
    t0 = now();
    for (size_t a = 0; a < nd; a += chunk) {
        TSCK(g_db, ts_begin(g_db));
        for (size_t i = a; i < a + chunk && i < nd; i++) ts_insert_row(perm[i]);
        TSCK(g_db, ts_commit(g_db));
    }
    double ti = now() - t0;
    churned[E_TS] = 1;
    printf("  tostore: %.0f deletes/s, %.0f inserts/s\n", (double)nd / td, (double)nd / ti);
#ifdef BENCH_HAVE_HNSWLIB
    if (g_have[E_HNSW]) {
        t0 = now();
        for (size_t i = 0; i < nd; i++)
            if (vref_hnsw_delete(g_hnsw, perm[i])) die("hnswlib delete");
        td = now() - t0;
        t0 = now();
        for (size_t i = 0; i < nd; i++) {
            g_lbrow[g_n + i] = perm[i];
            if (vref_hnsw_add(g_hnsw, g_base + (size_t)perm[i] * g_dim, g_n + i)) die("hnswlib add");
        }
        ti = now() - t0;
        churned[E_HNSW] = 1;
        printf("  hnswlib: %.0f deletes/s (markDelete), %.0f inserts/s\n", (double)nd / td, (double)nd / ti);
    }
#endif
    for (int i = 0; i < g_ne; i++) {
        int e = g_order[i];
        if (churned[e])
            for (int k = 0; k < 4; k++) run_batch(e, efs[k], -1, 1, &after[e][k], NULL);
    }
    printf("%-10s %6s %14s %14s %10s\n", "engine", "ef", "fresh build", "after churn", "diff");
    double worst = 0;
    for (int i = 0; i < g_ne; i++) {
        int e = g_order[i];
        if (!churned[e]) continue;
        for (int k = 0; k < 4; k++) {
            printf("%-10s %6d %14.4f %14.4f %+10.4f\n", ename[e], efs[k], before[e][k], after[e][k],
                   after[e][k] - before[e][k]);
            if (e == E_TS && before[e][k] - after[e][k] > worst) worst = before[e][k] - after[e][k];
        }
    }
    char val[48];
    snprintf(val, sizeof val, "worst drop %.4f", worst);
    add_row("recall after 20% churn", val, "fresh build", "-", "within 0.01", worst <= 0.01 ? "met" : "NOT met");
    free(perm);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    bench = (bench_style){ "bench_vector", 28, 9, 44, { 34, 24, 22, 22, 12 } };
    setvbuf(stdout, NULL, _IOLBF, 0);
    int full = getenv("TS_BENCH_FULL") && atoi(getenv("TS_BENCH_FULL")) > 0;
    const char *dir = BENCH_DEFAULT_DIR;
    if (getenv("BENCH_VEC_DATA")) g_data = getenv("BENCH_VEC_DATA");
    long long n = getenv("BENCH_VEC_N") ? atoll(getenv("BENCH_VEC_N")) : 0;
    long long nq = getenv("BENCH_VEC_QUERIES") ? atoll(getenv("BENCH_VEC_QUERIES")) : 0;
    if (getenv("BENCH_ROUNDS")) g_rounds = atoi(getenv("BENCH_ROUNDS"));
    if (getenv("BENCH_VEC_MIN_TIME")) g_min_time = atof(getenv("BENCH_VEC_MIN_TIME"));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--data") && v) g_data = argv[++i];
        else if (!strcmp(a, "--n") && v) n = atoll(argv[++i]);
        else if (!strcmp(a, "--queries") && v) nq = atoll(argv[++i]);
        else if (!strcmp(a, "--rounds") && v) g_rounds = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) g_threads = atoi(argv[++i]);
        else if (!strcmp(a, "--filter-ef") && v) g_filter_ef = atoi(argv[++i]);
        else if (!strcmp(a, "--no-churn")) g_churn = 0;
        else if (!strcmp(a, "--latent") && v) g_latent = atoi(argv[++i]);
        else if (!strcmp(a, "--cat-index")) g_cat_index = 1;
        else if (!strcmp(a, "--precision") && v) g_precision = argv[++i];
        else if (!strcmp(a, "--no-vindex")) g_no_vindex = 1;
        else if (!strcmp(a, "--engines") && v) g_engines = argv[++i];
        else if (!strcmp(a, "--only") && v) g_only = argv[++i];
        else if (!strcmp(a, "--reuse-db") && v) g_reuse = argv[++i];
        else if (!strcmp(a, "--seed") && v) {
            char *end;
            g_ngh_seed = strtoll(argv[++i], &end, 10);
            if (*end || g_ngh_seed < 1) die("--seed: a positive integer, not '%s'", argv[i]);
        }
        else if (!strcmp(a, "--sel") && v) g_sel_only = atoi(argv[++i]);
        else if (!strcmp(a, "--no-repeat")) g_no_repeat = 1;
        else if (!strcmp(a, "--split-records")) g_split = 1;
        else if (!strcmp(a, "--dim") && v) g_syn_dim = (size_t)atol(argv[++i]);
        else if (a[0] != '-') dir = a;
        else die("usage: bench_vector [DIR] [--data synthetic|fashion] [--n N] [--queries Q] "
                 "[--rounds R] [--threads T] [--filter-ef EF] [--no-churn] [--latent R] "
                 "[--engines tostore,hnswlib,faiss] [--cat-index] [--only oqfcs] [--sel P] [--no-repeat] [--reuse-db D] [--seed S] [--split-records] [--dim D]");
    }
    if (g_latent < 1 || g_latent > 128) die("--latent: 1..128");
    if (g_syn_dim < 8 || g_syn_dim > 4096) die("--dim: 8..4096");
    if (g_syn_dim != 128 && strcmp(g_data, "synthetic")) die("--dim: only for the synthetic set");
    if (g_rounds < 1) g_rounds = 1;
    if (g_rounds > MAXR) g_rounds = MAXR;
    if (g_threads < 1) g_threads = 1;
    if (g_threads > BENCH_MAXT) g_threads = BENCH_MAXT;
    g_nq = nq > 0 ? (size_t)nq : full ? 10000 : 1000;
    if (!strcmp(g_data, "synthetic")) {
        g_n = n > 0 ? (size_t)n : full ? 1000000 : 100000;
        synthetic();
    } else if (!strcmp(g_data, "fashion")) {
        g_n = n > 0 ? (size_t)n : 60000;
        fashion();
    } else die("--data: synthetic or fashion, not %s", g_data);

    g_have[E_TS] = 1;
#ifdef BENCH_HAVE_HNSWLIB
    g_have[E_HNSW] = 1;
#endif
#ifdef BENCH_HAVE_FAISS
    g_have[E_FAISS] = 1;
#endif
    if (g_engines) {
        for (int e = 1; e < NE; e++) if (!strstr(g_engines, ename[e])) g_have[e] = 0;
        /* without tostore (to look at the data with the references only):
         * the build and the sweep only */
        if (!strstr(g_engines, "tostore")) g_have[E_TS] = 0, g_churn = 0;
    }
    for (int e = 0; e < NE; e++) if (g_have[e]) g_order[g_ne++] = e;

    /* cache: the ngh records (16 + 4 dim + 4·2M bytes, whole records per
     * page) plus the primary-key map, the rows and slack */
    size_t rec = 16 + 4 * g_dim + 4 * 2 * M_PARAM, npp = 4008 / rec ? 4008 / rec : 1;
    double per_vec = 4096.0 / (double)npp + 4 * g_dim + 300;
    g_cache = (long long)((double)g_n * 1.25 * per_vec) + (64LL << 20);
    if (getenv("BENCH_VEC_CACHE_MB")) {
        long long mb = atoll(getenv("BENCH_VEC_CACHE_MB"));
        if (mb < 1 || mb > (1LL << 40)) die("BENCH_VEC_CACHE_MB: a size in MiB, 1 or more");
        g_cache = mb << 20;
    }

    printf("bench_vector: %s, %zu vectors x %zu-d, %zu queries, k = %d, L2, M = %d, efConstruction = %d; "
           "rounds %d; query threads 1 and %d; tostore cacheBytes %lld MiB; engines:", g_data, g_n, g_dim,
           g_nq, K, M_PARAM, EFC, g_rounds, g_threads, g_cache >> 20);
    for (int i = 0; i < g_ne; i++) printf(" %s", ename[g_order[i]]);
    printf("\n");
#ifndef BENCH_HAVE_HNSWLIB
    printf("  (hnswlib not built in: apt-get install libhnswlib-dev and reconfigure)\n");
#endif
#ifndef BENCH_HAVE_FAISS
    printf("  (faiss not built in: apt-get install libfaiss-dev and reconfigure)\n");
#endif
    ground_truth();

    mkdir_or_die(dir);
    char run[64];
    snprintf(run, sizeof run, "vector-%d", (int)getpid());
    char *rundir = path_join(dir, run);
    mkdir_or_die(rundir);
    g_dbdir = path_join(rundir, "db");
    g_nids = g_n + g_n / 5 + 16 + 2 * MIX_CYCLES * MIX_B;
    g_idrow = calloc(g_nids, sizeof *g_idrow);
    g_lbrow = malloc((g_n + g_n / 5 + 16 + 2 * MIX_CYCLES * MIX_B) * sizeof *g_lbrow);
    if (!g_idrow || !g_lbrow) die("out of memory");
    for (size_t i = 0; i < g_n; i++) g_lbrow[i] = (uint32_t)i;
    int reused = 0;
    if (g_reuse) {
        struct stat st;
        free(g_dbdir);
        g_dbdir = strdup(g_reuse);
        if (!g_dbdir) die("out of memory");
        reused = stat(g_reuse, &st) == 0;
    }
    if (g_have[E_TS]) {
        /* a reused database is first opened by the reopen workload, when
         * there is one: its first run is then a fresh process's */
        g_reused_first = reused && strchr(g_only, 'o');
        if (!g_reused_first) g_db = ts_open_dir(g_dbdir);
        if (reused) {   /* rows were inserted in order with sequential ids from 1 */
            for (size_t i = 0; i < g_n; i++) g_idrow[i] = (uint32_t)i;
            printf("\n-- b. build: tostore reuses %s --\n", g_reuse);
            g_have[E_TS] = 0;
        } else ts_create();
    }

    build();
    if (reused) g_have[E_TS] = 1;
    if (g_have[E_TS] && !g_db && !g_reused_first) g_db = ts_open_dir(g_dbdir);
    if (!g_have[E_TS]) {   /* --engines without tostore */
        sweep();
        if (strchr(g_only, 's')) reach();
        return 0;
    }
    if (strchr(g_only, 'o')) reopen();
    if (strchr(g_only, 'q')) {
        sweep();
        if (g_threads > 1) sweep_threads();
        report_targets(0);
        if (g_threads > 1) report_targets(1);
    }
    if (strchr(g_only, 's')) reach();
    if (strchr(g_only, 'f')) filtered();
    if (g_churn && strchr(g_only, 'c')) churn();
    if (strchr(g_only, 'm')) mixed();
    if (strchr(g_only, 'r')) runs_again();

    print_summary();
    if (g_db) TSCK(g_db, ts_close(g_db));
#ifdef BENCH_HAVE_HNSWLIB
    if (g_hnsw) vref_hnsw_free(g_hnsw);
#endif
#ifdef BENCH_HAVE_FAISS
    if (g_faiss) vref_faiss_free(g_faiss);
#endif
    if (!getenv("BENCH_KEEP")) rmrf(rundir);
    return 0;
}
