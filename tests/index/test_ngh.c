/*
 * The ngh vector index plugin (plugins/index/ngh), loaded from the build
 * tree and driven through the kernel's index wrapper (catalog/ix.h) inside
 * kernel transactions, checked against exact (brute-force) search:
 *
 *  - the distance kernels (scalar, SSE, AVX2, AVX-512; float32, float16, int8) agree;
 *  - recall@10 >= 0.95 at the default efSearch on 20K clustered vectors for
 *    l2, cosine and innerProduct in float32, float16 and int8; an indexed
 *    vector finds itself first at distance ~0; distances are the exact ones;
 *  - options: refused keys and values, wrong dimensions, non-finite values;
 *  - keysQuantized (float16 / int8 keys decoded from quantized values): no
 *    float32 copy (fewer pages), exact distances, removes, reopen;
 *  - duplicates (TS_ERR_UNIQUE), removes (TS_ERR_NOT_FOUND when absent),
 *    deleted entries never returned, updates (remove + insert);
 *  - churn: deleted node ids are reused, the file stops growing;
 *  - vectors too big for a node record (their own pages);
 *  - filtered search: only entries the filter keeps, exactly k when k pass,
 *    at 50%, 10% and 1% selectivity, compared with the exact filtered answer;
 *  - cursors: every live entry once, with its vector;
 *  - close and reopen: same answers, and the first query reads a small
 *    fraction of the index's pages (no rebuild, no full load);
 *  - power loss at random fault points (faulty backend), reopen, the index
 *    holds exactly the acknowledged entries (float32 and int8);
 *  - readers on threads searching their snapshots while a writer inserts;
 *  - drop frees every page.
 * TS_TEST_LONG=1 runs bigger sets; TS_TEST_VERBOSE=1 prints rates;
 * TS_TEST_ONLY=bench runs the benchmark (see bench below).
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "api/db.h"
#include "catalog/ix.h"
#include <tostore/keys.h>
#include "ngh.h"
#include "tsupport.h"

#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)
#define ROOT_SLOT 21

static int long_mode(void)
{
    const char *s = getenv("TS_TEST_LONG");
    return s && *s && strcmp(s, "0") != 0;
}

/* Sanitizer builds check memory and threads, not recall: the recall sets
 * are smaller there so the suite stays within its time (ASan + UBSan run
 * the graph code about 20x slower). */
static int sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 1;
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return 1;
#  else
    return 0;
#  endif
#else
    return 0;
#endif
}

static int verbose(void)
{
    const char *s = getenv("TS_TEST_VERBOSE");
    return s && *s && strcmp(s, "0") != 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* CPU time of this thread: the benchmark's rates on a shared machine */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* ---- random numbers and data --------------------------------------- */

typedef struct rng { uint64_t s; } rng;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rnext(rng *r) { return mix64(r->s += 0x9E3779B97F4A7C15ull); }
static uint64_t rbelow(rng *r, uint64_t n) { return rnext(r) % n; }
static double runif(rng *r) { return (double)(rnext(r) >> 11) * (1.0 / 9007199254740992.0); }
static double rgauss(rng *r)
{
    double u = runif(r) + 1e-300, v = runif(r);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static rng rng_new(uint64_t salt)
{
    const char *s = getenv("TS_TEST_SEED");
    rng r = { (s && *s ? strtoull(s, NULL, 0) : 0x5EEDull) ^ mix64(salt) };
    return r;
}

/* n clustered vectors: 64 cluster centres on a low-rank subspace, points
 * spread around them; norms vary (for innerProduct). */
static float *gen_data(rng *r, uint32_t n, uint32_t dim)
{
    uint32_t C = 64, rank = dim / 4 < 16 ? dim : dim / 4;
    float *basis = malloc((size_t)rank * dim * sizeof *basis);
    float *cent = malloc((size_t)C * dim * sizeof *cent);
    float *v = malloc((size_t)n * dim * sizeof *v);
    for (size_t i = 0; i < (size_t)rank * dim; i++) basis[i] = (float)rgauss(r);
    for (uint32_t c = 0; c < C; c++)
        for (uint32_t j = 0; j < dim; j++) {
            double s = 0;
            for (uint32_t t = 0; t < rank; t++) s += basis[(size_t)t * dim + j] * (runif(r) * 2 - 1);
            cent[(size_t)c * dim + j] = (float)(s / sqrt(rank));
        }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)rbelow(r, C);
        double scale = 0.5 + runif(r);
        for (uint32_t j = 0; j < dim; j++)
            v[(size_t)i * dim + j] = (float)(scale * (cent[(size_t)c * dim + j] + 0.35 * rgauss(r)));
    }
    free(basis);
    free(cent);
    return v;
}

/* The distance the index reports. */
static double exact_dist(int metric, const float *a, const float *b, uint32_t dim)
{
    double s = 0, na = 0, nb = 0;
    for (uint32_t j = 0; j < dim; j++) {
        if (metric == NGH_L2) s += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
        else s += (double)a[j] * b[j];
        na += (double)a[j] * a[j];
        nb += (double)b[j] * b[j];
    }
    if (metric == NGH_L2) return sqrt(s);
    if (metric == NGH_IP) return -s;
    return na > 0 && nb > 0 ? 1 - s / sqrt(na * nb) : 1;
}

typedef struct hit { double d; uint32_t id; } hit;

static int hit_cmp(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    return x->d < y->d ? -1 : x->d > y->d ? 1 : (x->id > y->id) - (x->id < y->id);
}

/* Exact k nearest among ids with live[id] (and keep(id) when given). */
static uint32_t exact_knn(int metric, const float *data, uint32_t n, uint32_t dim, const uint8_t *live,
                          int (*keep)(uint32_t), const float *q, uint32_t k, hit *out)
{
    hit *all = malloc((size_t)n * sizeof *all);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (live && !live[i]) continue;
        if (keep && !keep(i)) continue;
        all[m].d = exact_dist(metric, q, data + (size_t)i * dim, dim);
        all[m++].id = i;
    }
    qsort(all, m, sizeof *all, hit_cmp);
    if (m > k) m = k;
    memcpy(out, all, m * sizeof *all);
    free(all);
    return m;
}

/* ---- databases ------------------------------------------------------------ */

typedef struct ndb {
    char    *dir;
    int      faulty;
    ts_db   *db;
    tsix    *ix;
    uint64_t root;
    json_t  *opts;
    uint8_t *vals;   /* the values of the last knn's hits */
} ndb;

static const char *emsg(ndb *h) { return h->db ? ts_errmsg(h->db) : ts_errmsg(NULL); }

static json_t *mkopts_p(uint32_t dim, const char *metric, const char *prec, int M, int efc, int efs)
{
    json_t *o = json_pack("{s:i, s:s}", "dimensions", (json_int_t)dim, "distanceMetric", metric);
    if (prec) json_object_set_new(o, "precision", json_string(prec));
    if (M || efc || efs) {
        json_t *p = json_object();
        if (M) json_object_set_new(p, "M", json_integer(M));
        if (efc) json_object_set_new(p, "efConstruction", json_integer(efc));
        if (efs) json_object_set_new(p, "efSearch", json_integer(efs));
        json_object_set_new(o, "parameters", p);
    }
    return o;
}

static json_t *mkopts(uint32_t dim, const char *metric, int M, int efc, int efs)
{
    return mkopts_p(dim, metric, NULL, M, efc, efs);
}

static int db_open_rc(ndb *h, const char *extra)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"path\": \"%s\", \"durability\": \"full\"%s%s%s}", h->dir,
             h->faulty ? ", \"storage\": {\"backend\": \"faulty\", \"options\": "
                         "{\"inner\": \"posix\", \"passSync\": false}}" : "",
             extra ? ", " : "", extra ? extra : "");
    h->db = NULL;
    int rc = ts_open_json(cfg, &h->db);
    if (rc) return rc;
    tstx *tx;
    REQUIRE(tstx_begin(h->db->pg, 0, &tx) == TS_OK, "begin: %s", emsg(h));
    tstx_root_get(tx, ROOT_SLOT, &h->root);
    tstx_rollback(tx);
    if (!h->root) return TS_OK;
    return tsix_open(&h->db->env, h->db->reg, "ngh", h->opts, h->root, "vec", &h->ix);
}

static void db_open(ndb *h, const char *extra)
{
    int rc = db_open_rc(h, extra);
    REQUIRE(rc == TS_OK, "open %s: %s", h->dir, emsg(h));
}

static void ix_create(ndb *h)
{
    tstx *tx;
    REQUIRE(tstx_begin(h->db->pg, 1, &tx) == TS_OK, "begin: %s", emsg(h));
    int rc = tsix_create(&h->db->env, h->db->reg, "ngh", h->opts, tx, &h->root);
    REQUIRE(rc == TS_OK, "create: %s", emsg(h));
    REQUIRE(tstx_root_set(tx, ROOT_SLOT, h->root) == TS_OK, "root_set");
    REQUIRE(tstx_commit(tx) == TS_OK, "commit: %s", emsg(h));
    rc = tsix_open(&h->db->env, h->db->reg, "ngh", h->opts, h->root, "vec", &h->ix);
    REQUIRE(rc == TS_OK, "open index: %s", emsg(h));
}

static int db_close(ndb *h)
{
    tsix_close(h->ix);
    h->ix = NULL;
    int rc = ts_close(h->db);
    h->db = NULL;
    return rc;
}

static void db_new(ndb *h, const char *name, int faulty, const char *extra, json_t *opts)
{
    memset(h, 0, sizeof *h);
    h->dir = tst_tmpdir(name);
    h->faulty = faulty;
    h->opts = opts;
    db_open(h, extra);
    ix_create(h);
}

static void db_done(ndb *h)
{
    free(h->vals);
    h->vals = NULL;
    if (h->db) db_close(h);
    tst_rmrf(h->dir);
    free(h->dir);
    json_decref(h->opts);
}

static tstx *wbegin(ndb *h)
{
    tstx *tx;
    REQUIRE(tstx_begin(h->db->pg, 1, &tx) == TS_OK, "begin write: %s", emsg(h));
    return tx;
}

static tstx *rbegin(ndb *h)
{
    tstx *tx;
    REQUIRE(tstx_begin(h->db->pg, 0, &tx) == TS_OK, "begin read: %s", emsg(h));
    return tx;
}

static void commit(ndb *h, tstx *tx)
{
    int rc = tstx_commit(tx);
    REQUIRE(rc == TS_OK, "commit: %s", emsg(h));
}

static uint64_t live_pages(tstx *tx)
{
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    return pages - nfree;
}

/* Primary keys: 8-byte big-endian ids (as the kernel's key encoding
 * would give), decoded back by pk_id. */
static void pk_of(uint32_t id, uint8_t pk[8])
{
    for (int i = 0; i < 8; i++) pk[i] = (uint8_t)((uint64_t)id >> (56 - 8 * i));
}

static uint32_t pk_id(const void *v, size_t vl)
{
    if (vl != 8) ck_abort_msg("a value of %zu bytes", vl); /* no ck_assert: it writes a mark each call */
    const uint8_t *p = v;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) x = x << 8 | p[i];
    return (uint32_t)x;
}

static int ins(ndb *h, tstx *tx, const float *data, uint32_t dim, uint32_t id)
{
    uint8_t pk[8];
    pk_of(id, pk);
    return tsix_insert(h->ix, tx, data + (size_t)id * dim, (size_t)dim * 4, pk, 8, 0);
}

static int del(ndb *h, tstx *tx, const float *data, uint32_t dim, uint32_t id)
{
    uint8_t pk[8];
    pk_of(id, pk);
    return tsix_remove(h->ix, tx, data + (size_t)id * dim, (size_t)dim * 4, pk, 8);
}

/* Insert ids [from, to) in transactions of `batch`. */
static void load(ndb *h, const float *data, uint32_t dim, uint32_t from, uint32_t to, uint32_t batch)
{
    for (uint32_t i = from; i < to;) {
        tstx *tx = wbegin(h);
        for (uint32_t j = 0; j < batch && i < to; j++, i++) {
            int rc = ins(h, tx, data, dim, i);
            REQUIRE(rc == TS_OK, "insert %u: %s", i, emsg(h));
        }
        commit(h, tx);
    }
}

static size_t knn(ndb *h, tstx *tx, const float *q, uint32_t dim, size_t k, int ef,
                  int (*filter)(void *, const void *, size_t), void *fctx, ts_knn_hit *out)
{
    size_t n = 0;
    free(h->vals);   /* the previous hits' values: valid until the next knn */
    int rc = tsix_knn(h->ix, tx, q, dim, k, ef, filter, fctx, out, &n, &h->vals);
    REQUIRE(rc == TS_OK, "knn: %d %s", rc, emsg(h));
    for (size_t i = 1; i < n; i++)
        REQUIRE(out[i - 1].distance <= out[i].distance, "results not sorted at %zu", i);
    return n;
}

/* Recall@k of the index against exact search for nq queries (each a data
 * vector plus noise). */
static double recall(ndb *h, tstx *tx, int metric, const float *data, uint32_t n, uint32_t dim,
                     const uint8_t *live, uint32_t nq, uint32_t k, int ef, rng *r, double *qps)
{
    float *q = malloc(dim * sizeof *q);
    hit *ex = malloc(k * sizeof *ex);
    ts_knn_hit *got = malloc(k * sizeof *got);
    uint64_t found = 0, want = 0;
    double t = 0;
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t b = (uint32_t)rbelow(r, n);
        for (uint32_t j = 0; j < dim; j++) q[j] = data[(size_t)b * dim + j] + (float)(0.3 * rgauss(r));
        uint32_t ne = exact_knn(metric, data, n, dim, live, NULL, q, k, ex);
        double t0 = now();
        size_t ng = knn(h, tx, q, dim, k, ef, NULL, NULL, got);
        t += now() - t0;
        REQUIRE(ng == ne, "query %u: %zu results, want %u", i, ng, ne);
        for (size_t a = 0; a < ng; a++) {
            uint32_t id = pk_id(got[a].val, got[a].vlen);
            REQUIRE(!live || live[id], "deleted entry %u returned", id);
            double d = exact_dist(metric, q, data + (size_t)id * dim, dim);
            REQUIRE(fabs(d - got[a].distance) <= 1e-3 * (1 + fabs(d)), "distance of %u: %g, want %g",
                    id, got[a].distance, d);
            for (uint32_t e = 0; e < ne; e++)
                if (ex[e].id == id) { found++; break; }
        }
        want += ne;
    }
    if (qps) *qps = nq / t;
    free(q);
    free(ex);
    free(got);
    return want ? (double)found / want : 1.0;
}

/* ---- tests -------------------------------------------------------------------- */

START_TEST(kernels_agree)
{
    rng r = rng_new(1);
    ngh_kernels k[4];
    for (int l = 0; l < 4; l++) ngh_dist_pick(&k[l], l, NGH_F32);
    if (verbose()) printf("ngh: distance kernels: %s\n", k[3].name);
    float a[301], b[301];
    for (uint32_t n = 0; n <= 300; n += (n < 40 ? 1 : 37)) {
        for (uint32_t i = 0; i < n + 1; i++) {
            a[i] = (float)rgauss(&r);
            b[i] = (float)rgauss(&r);
        }
        /* unaligned on purpose */
        double dot = 0, l2 = 0;
        for (uint32_t i = 0; i < n; i++) {
            dot += (double)a[i + 1] * b[i];
            l2 += ((double)a[i + 1] - b[i]) * ((double)a[i + 1] - b[i]);
        }
        for (int l = 0; l < 4; l++) {
            float d = k[l].dot(a + 1, b, n), e = k[l].l2(a + 1, b, n);
            REQUIRE(fabs(d - dot) <= 1e-4 * (1 + fabs(dot)), "%s dot n=%u: %g want %g", k[l].name, n, d, dot);
            REQUIRE(fabs(e - l2) <= 1e-4 * (1 + l2), "%s l2 n=%u: %g want %g", k[l].name, n, e, l2);
        }
    }
    /* l2_below: base + l2 bit for bit when that is at most the bound, else
     * above the bound; past a 128-float check it stops (+inf) */
    static float la[1025], lb[1025];
    for (uint32_t i = 0; i < 1025; i++) {
        la[i] = (float)rgauss(&r);
        lb[i] = (float)rgauss(&r);
    }
    int belows = 0;
    for (int l = 0; l < 4; l++) {
        if (!k[l].l2_below) continue;
        belows++;
        for (uint32_t n = 0; n <= 1024; n += (n < 300 ? 29 : 97)) {
            float base = n % 2 ? 0.0f : 3.25f, whole = base + k[l].l2(la + 1, lb, n);
            float at = k[l].l2_below(la + 1, lb, n, base, whole);
            REQUIRE(memcmp(&at, &whole, 4) == 0, "%s l2_below n=%u at the bound: %.9g want %.9g", k[l].name, n, at, whole);
            float above = k[l].l2_below(la + 1, lb, n, base, INFINITY);
            REQUIRE(memcmp(&above, &whole, 4) == 0, "%s l2_below n=%u, no bound: %.9g want %.9g", k[l].name, n, above, whole);
            /* whole float32 records measure through ql2: the same bits */
            float q = k[l].ql2(la + 1, lb, n, 1.0f), plain = k[l].l2(la + 1, lb, n);
            REQUIRE(memcmp(&q, &plain, 4) == 0, "%s ql2 and l2 differ at n=%u", k[l].name, n);
            float below = k[l].l2_below(la + 1, lb, n, base, whole * 0.999f - 1e-3f);
            REQUIRE(below > whole * 0.999f - 1e-3f, "%s l2_below n=%u under the bound: %g", k[l].name, n, below);
            if (n > 128) {
                float cut = k[l].l2_below(la + 1, lb, n, base, base);
                REQUIRE(isinf(cut), "%s l2_below n=%u did not stop early: %g", k[l].name, n, cut);
            }
        }
    }
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        REQUIRE(belows > 0, "no kernel level offers l2_below on an AVX2 machine");
    /* the kernels an index picks (level 3) stop at the bound too: AVX-512
     * machines once measured 784-d vectors in full */
    REQUIRE(!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) || k[3].l2_below,
            "%s kernels have no l2_below", k[3].name);
#else
    (void)belows;
#endif
    /* the quantized kernels against the dequantized vector, every level */
    for (int prec = NGH_F16; prec <= NGH_I8; prec++) {
        ngh_kernels qk[4];
        for (int l = 0; l < 4; l++) ngh_dist_pick(&qk[l], l, prec);
        uint8_t codes[2 * 301 + 1];
        float deq[301];
        for (uint32_t n = 0; n <= 300; n += (n < 40 ? 1 : 37)) {
            for (uint32_t i = 0; i < n + 1; i++) {
                a[i] = (float)rgauss(&r);
                b[i] = (float)(3 * rgauss(&r));
            }
            float sc;
            ngh_quantize(prec, b, n, codes + 1, &sc); /* unaligned codes */
            ngh_dequantize(prec, codes + 1, n, sc, deq);
            double dot = 0, l2 = 0, qerr = 0;
            for (uint32_t i = 0; i < n; i++) {
                dot += (double)a[i + 1] * deq[i];
                l2 += ((double)a[i + 1] - deq[i]) * ((double)a[i + 1] - deq[i]);
                qerr = fmax(qerr, fabs((double)deq[i] - b[i]));
            }
            /* quantization error: half of a step */
            REQUIRE(qerr <= (prec == NGH_I8 ? 0.51 * sc : 3 * 9.8e-4 * 12) + 1e-6, "prec %d n=%u: error %g", prec, n, qerr);
            for (int l = 0; l < 4; l++) {
                float d = qk[l].qdot(a + 1, codes + 1, n, sc), e = qk[l].ql2(a + 1, codes + 1, n, sc);
                REQUIRE(fabs(d - dot) <= 1e-4 * (1 + fabs(dot)), "%s prec %d qdot n=%u: %g want %g", qk[l].name, prec, n, d, dot);
                REQUIRE(fabs(e - l2) <= 1e-4 * (1 + l2), "%s prec %d ql2 n=%u: %g want %g", qk[l].name, prec, n, e, l2);
            }
        }
    }
    /* halves: exact values, rounding, range clamping, subnormals */
    ck_assert_float_eq(ngh_h2f(ngh_f2h(1.0f)), 1.0f);
    ck_assert_float_eq(ngh_h2f(ngh_f2h(-2.5f)), -2.5f);
    ck_assert_float_eq(ngh_h2f(ngh_f2h(65504.0f)), 65504.0f);
    ck_assert_float_eq(ngh_h2f(ngh_f2h(1e9f)), 65504.0f);
    ck_assert_float_eq(ngh_h2f(ngh_f2h(-1e9f)), -65504.0f);
    ck_assert_float_eq(ngh_h2f(ngh_f2h(5.9604645e-8f)), 5.9604645e-8f); /* smallest subnormal */
    ck_assert_float_eq(ngh_h2f(ngh_f2h(1e-9f)), 0.0f);
    ck_assert_float_eq(ngh_h2f(ngh_f2h(1.0f + 1.0f / 4096)), 1.0f);   /* tie to even */
    ck_assert_float_eq(ngh_h2f(ngh_f2h(1.0f + 3.0f / 4096)), 1.0f + 4.0f / 4096);
    for (uint32_t h = 0; h < 0x7C00; h++) /* every finite half survives the round trip */
        REQUIRE(ngh_f2h(ngh_h2f((uint16_t)h)) == h, "half %#x", h);
}
END_TEST

static void recall_case(const char *metric_name, int metric, uint32_t dim, const char *prec)
{
    /* the quantized cases run on 20K too (the issue's bar) but with fewer
     * self queries: the suite also runs under ASan */
    uint32_t n = long_mode() ? 100000 : sanitized() ? (strcmp(prec, "float32") ? 2000 : 4000) : 20000, nq = 200, k = 10;
    rng r = rng_new(100 + (uint64_t)metric);
    float *data = gen_data(&r, n, dim);
    ndb h;
    char name[64];
    snprintf(name, sizeof name, "ngh-recall-%s-%s", metric_name, prec);
    /* efConstruction 100 keeps the CI run short (the default 200 in long mode);
     * efSearch stays at its default */
    db_new(&h, name, 0, "\"cacheBytes\": 268435456",
           mkopts_p(dim, metric_name, prec, 0, long_mode() ? 0 : 100, 0));
    double t0 = now();
    load(&h, data, dim, 0, n, 5000);
    double tb = now() - t0, qps;
    tstx *tx = rbegin(&h);
    double rec = recall(&h, tx, metric, data, n, dim, NULL, nq, k, 0, &r, &qps);
    if (verbose()) printf("ngh %s %s: %u x %u-d: build %.0f/s, recall@%u %.4f at efSearch 64, %.0f q/s\n",
                          metric_name, prec, n, dim, n / tb, k, rec, qps);
    REQUIRE(rec >= 0.95, "%s %s: recall@10 %.4f < 0.95", metric_name, prec, rec);
    /* an indexed vector finds itself first, at distance ~0 */
    if (metric != NGH_IP) {
        ts_knn_hit out[10];
        int self = 0, nself = strcmp(prec, "float32") ? 100 : 500;
        for (int i = 0; i < nself; i++) {
            uint32_t id = (uint32_t)rbelow(&r, n);
            size_t got = knn(&h, tx, data + (size_t)id * dim, dim, 10, 0, NULL, NULL, out);
            REQUIRE(got == 10, "self query: %zu results", got);
            if (fabsf(out[0].distance) < 1e-4) self++;
            else if (verbose()) printf("self query %u: first %u at %g\n", id, pk_id(out[0].val, out[0].vlen), out[0].distance);
        }
        if (verbose()) printf("ngh %s: %d of %d vectors find themselves first\n", metric_name, self, nself);
        REQUIRE(self >= nself * 99 / 100, "only %d of %d vectors find themselves", self, nself);
    }
    tstx_rollback(tx);
    db_done(&h);
    free(data);
}

START_TEST(recall_l2) { recall_case("l2", NGH_L2, 64, "float32"); }
END_TEST
START_TEST(recall_cosine) { recall_case("cosine", NGH_COSINE, 96, "float32"); }
END_TEST
START_TEST(recall_ip) { recall_case("innerProduct", NGH_IP, 64, "float32"); }
END_TEST
START_TEST(recall_l2_f16) { recall_case("l2", NGH_L2, 64, "float16"); }
END_TEST
START_TEST(recall_cosine_f16) { recall_case("cosine", NGH_COSINE, 96, "float16"); }
END_TEST
START_TEST(recall_ip_f16) { recall_case("innerProduct", NGH_IP, 64, "float16"); }
END_TEST
START_TEST(recall_l2_i8) { recall_case("l2", NGH_L2, 64, "int8"); }
END_TEST
START_TEST(recall_cosine_i8) { recall_case("cosine", NGH_COSINE, 96, "int8"); }
END_TEST
START_TEST(recall_ip_i8) { recall_case("innerProduct", NGH_IP, 64, "int8"); }
END_TEST

/* Opt-in benchmark (TS_TEST_ONLY=bench): build rate, bytes per vector and
 * recall@10 / queries per second over a range of efSearch, one thread.
 * TS_NGH_N (20000), TS_NGH_DIM (128), TS_NGH_METRIC (l2), TS_NGH_PREC
 * (float32), TS_NGH_EFC (100), TS_NGH_M (16), TS_NGH_EF (one efSearch only), TS_NGH_NQ (1000),
 * TS_NGH_REPS (query passes, 2), TS_NGH_CACHE (the database's cache option). */
static uint32_t envu(const char *k, uint32_t def)
{
    const char *s = getenv(k);
    return s && *s ? (uint32_t)strtoul(s, NULL, 0) : def;
}

START_TEST(bench)
{
    uint32_t n = envu("TS_NGH_N", 20000), dim = envu("TS_NGH_DIM", 128), nq = envu("TS_NGH_NQ", 1000), k = 10;
    uint32_t efc = envu("TS_NGH_EFC", 100), M = envu("TS_NGH_M", 16), reps = envu("TS_NGH_REPS", 2);
    const char *metric = getenv("TS_NGH_METRIC") ? getenv("TS_NGH_METRIC") : "l2";
    const char *prec = getenv("TS_NGH_PREC") ? getenv("TS_NGH_PREC") : "float32";
    int mc = !strcmp(metric, "l2") ? NGH_L2 : !strcmp(metric, "cosine") ? NGH_COSINE : NGH_IP;
    rng r = rng_new(77);
    float *data = gen_data(&r, n, dim);
    ndb h;
    db_new(&h, "ngh-bench", 0, getenv("TS_NGH_CACHE") ? getenv("TS_NGH_CACHE") : "\"cacheBytes\": 2147483648", mkopts_p(dim, metric, prec, (int)M, (int)efc, 0));
    tstx *tx = wbegin(&h);
    uint64_t p0 = live_pages(tx);
    tstx_rollback(tx);
    double t0 = now(), c0 = cpu_now();
    uint64_t gets = 0; /* kernel page gets per insert: the rate without the machine's noise */
    for (uint32_t i = 0; i < n;) {
        tx = wbegin(&h);
        uint64_t g0 = tstx_touched(tx);
        for (uint32_t j = 0; j < 10000 && i < n; j++, i++) {
            int rc = ins(&h, tx, data, dim, i);
            REQUIRE(rc == TS_OK, "insert %u: %s", i, emsg(&h));
        }
        gets += tstx_touched(tx) - g0;
        commit(&h, tx);
    }
    double tb = now() - t0, cb = cpu_now() - c0;
    tx = rbegin(&h);
    uint64_t pages = live_pages(tx) - p0;
    /* queries: data vectors plus noise; exact answers first */
    float *q = malloc((size_t)nq * dim * sizeof *q);
    hit *ex = malloc((size_t)nq * k * sizeof *ex);
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t b = (uint32_t)rbelow(&r, n);
        for (uint32_t j = 0; j < dim; j++) q[(size_t)i * dim + j] = data[(size_t)b * dim + j] + (float)(0.3 * rgauss(&r));
        exact_knn(mc, data, n, dim, NULL, NULL, q + (size_t)i * dim, k, ex + (size_t)i * k);
    }
    /* TS_NGH_DUMP=file: the vectors, the queries and the exact answers, for
     * running another library on the same set (raw little-endian: n, dim,
     * nq, k as u32, then floats, then u32 ids) */
    const char *dump = getenv("TS_NGH_DUMP");
    if (dump) {
        FILE *f = fopen(dump, "wb");
        REQUIRE(f, "cannot write %s", dump);
        uint32_t hdr[4] = { n, dim, nq, k };
        fwrite(hdr, 4, 4, f);
        fwrite(data, 4, (size_t)n * dim, f);
        fwrite(q, 4, (size_t)nq * dim, f);
        for (size_t i = 0; i < (size_t)nq * k; i++) fwrite(&ex[i].id, 4, 1, f);
        fclose(f);
    }
    printf("ngh bench %u x %u-d %s %s M %u efC %u: build %.0f/s (%.0f/s of CPU time, %.0f page gets each), "
           "%.0f file bytes/vector\n", n, dim, metric, prec, M, efc, n / tb, n / cb, (double)gets / n,
           (double)pages * 4096 / n);
    int efs[] = { 10, 16, 24, 32, 48, 64, 96, 128, 256 };
    ts_knn_hit out[10];
    /* one pass first: the read cache fills (hnswlib starts with everything in memory) */
    for (uint32_t i = 0; i < nq; i++) knn(&h, tx, q + (size_t)i * dim, dim, k, 64, NULL, NULL, out);
    for (size_t e = 0; e < sizeof efs / sizeof *efs; e++) {
        if (envu("TS_NGH_EF", 0) && (uint32_t)efs[e] != envu("TS_NGH_EF", 0)) continue;
        uint64_t found = 0;
        double t1 = now(), c1 = cpu_now();
        for (uint32_t rep = 0; rep < reps; rep++)
            for (uint32_t i = 0; i < nq; i++) {
                size_t got = knn(&h, tx, q + (size_t)i * dim, dim, k, efs[e], NULL, NULL, out);
                if (rep) continue;
                for (size_t a = 0; a < got; a++) {
                    uint32_t id = pk_id(out[a].val, out[a].vlen);
                    for (uint32_t x = 0; x < k; x++)
                        if (ex[(size_t)i * k + x].id == id) { found++; break; }
                }
            }
        double tq = (now() - t1) / reps, cq = (cpu_now() - c1) / reps;
        uint64_t g1 = tstx_touched(tx);
        for (uint32_t i = 0; i < 100; i++) knn(&h, tx, q + (size_t)i * dim, dim, k, efs[e], NULL, NULL, out);
        double qgets = (double)(tstx_touched(tx) - g1) / 100;
        printf("  ef %3d: recall@10 %.4f, %.0f q/s (%.0f q/s of CPU time, %.0f page gets each)\n", efs[e],
               (double)found / ((double)nq * k), nq / tq, nq / cq, qgets);
    }
    tstx_rollback(tx);
    /* close, reopen, first query (the kernel's cache and the read cache are cold) */
    ck_assert_int_eq(db_close(&h), TS_OK);
    double t2 = now();
    db_open(&h, "\"cacheBytes\": 2147483648");
    double topen = now() - t2;
    tx = rbegin(&h);
    uint64_t g2 = tstx_touched(tx);
    knn(&h, tx, q, dim, k, 0, NULL, NULL, out);
    double first = now() - t2;
    printf("  reopen + first query: %.1f ms (database open %.1f ms; the query read %llu pages)\n", first * 1e3,
           topen * 1e3, (unsigned long long)(tstx_touched(tx) - g2));
    tstx_rollback(tx);
    free(q);
    free(ex);
    db_done(&h);
    free(data);
}
END_TEST

/* Each of the JSON texts bad[] as parameters.<key> is refused at create. */
static void refuse_parameter(ndb *h, uint32_t dim, const char *key, const char *const *bad, size_t nbad)
{
    for (size_t i = 0; i < nbad; i++) {
        json_t *o = mkopts(dim, "l2", 8, 40, 10);
        json_object_set_new(json_object_get(o, "parameters"), key, json_loads(bad[i], JSON_DECODE_ANY, NULL));
        tstx *tx = wbegin(h);
        uint64_t root;
        int rc = tsix_create(&h->db->env, h->db->reg, "ngh", o, tx, &root);
        REQUIRE(rc == TS_ERR_CONFIG || rc == TS_ERR_VALIDATION, "%s %s accepted (%d)", key, bad[i], rc);
        tstx_rollback(tx);
        json_decref(o);
    }
}

/* parameters.seed: two indexes given the same seed and the same vectors in
 * the same order build the same graph (every search at a small ef answers
 * alike, distances bit for bit); a negative or non-integer seed is refused. */
START_TEST(seeded_graph_repeats)
{
    const uint32_t dim = 32, n = 4000, nq = 100;
    rng r = rng_new(41);
    float *data = gen_data(&r, n + nq, dim);
    ndb h[2];
    for (int k = 0; k < 2; k++) {
        /* a sparse graph, so that other levels would change answers */
        json_t *o = mkopts(dim, "l2", 3, 6, 10);
        json_object_set_new(json_object_get(o, "parameters"), "seed", json_integer(12345));
        db_new(&h[k], k ? "ngh-seed-b" : "ngh-seed-a", 0, NULL, o);
        load(&h[k], data, dim, 0, n, 500);
    }
    ts_knn_hit a[10], b[10];
    tstx *ta = rbegin(&h[0]), *tb = rbegin(&h[1]);
    for (uint32_t q = 0; q < nq; q++) {
        const float *qv = data + (size_t)(n + q) * dim;
        size_t na = knn(&h[0], ta, qv, dim, 10, 10, NULL, NULL, a);
        uint32_t ida[10];
        for (size_t i = 0; i < na; i++) ida[i] = pk_id(a[i].val, a[i].vlen);
        size_t nb = knn(&h[1], tb, qv, dim, 10, 10, NULL, NULL, b);
        ck_assert_uint_eq(na, nb);
        for (size_t i = 0; i < nb; i++) {
            ck_assert_uint_eq(ida[i], pk_id(b[i].val, b[i].vlen));
            ck_assert(memcmp(&a[i].distance, &b[i].distance, sizeof a[i].distance) == 0);
        }
    }
    tstx_rollback(ta);
    tstx_rollback(tb);
    const char *bad[] = { "0", "-1", "1.5", "\"7\"" };
    refuse_parameter(&h[0], dim, "seed", bad, sizeof bad / sizeof *bad);
    db_done(&h[0]);
    db_done(&h[1]);
    free(data);
}
END_TEST

/* parameters.buildLinks: the ids an insert's beam reads at the head of
 * each layer-0 list.  Seeded builds of the same rows: 0 and any value that
 * leaves nothing out (M0 - 4 and more) read whole lists and give the same
 * graph; the default (12 at M 16) gives another, as good, and the same as
 * an explicit 12. */
static void build_links_db(ndb *h, const char *name, const float *data, uint32_t n, uint32_t dim, int links)
{
    /* a narrow beam (efConstruction 32), which the ids it reads change */
    json_t *o = mkopts(dim, "l2", 16, 32, 0);
    json_t *p = json_object_get(o, "parameters");
    json_object_set_new(p, "seed", json_integer(777));
    if (links >= 0) json_object_set_new(p, "buildLinks", json_integer(links));
    db_new(h, name, 0, "\"cacheBytes\": 134217728", o);
    load(h, data, dim, 0, n, 1000);
}

/* how many of nq queries answer differently in a and b (ids and order of
 * the 10 nearest at efSearch 10) */
static uint32_t answers_differ(ndb *a, ndb *b, const float *qs, uint32_t nq, uint32_t dim)
{
    ts_knn_hit x[10], y[10];
    tstx *ta = rbegin(a), *tb = rbegin(b);
    uint32_t differ = 0;
    for (uint32_t q = 0; q < nq; q++) {
        size_t nx = knn(a, ta, qs + (size_t)q * dim, dim, 10, 10, NULL, NULL, x);
        uint32_t idx[10];
        for (size_t i = 0; i < nx; i++) idx[i] = pk_id(x[i].val, x[i].vlen);
        size_t ny = knn(b, tb, qs + (size_t)q * dim, dim, 10, 10, NULL, NULL, y);
        int same = nx == ny;
        for (size_t i = 0; same && i < ny; i++) same = idx[i] == pk_id(y[i].val, y[i].vlen);
        differ += !same;
    }
    tstx_rollback(ta);
    tstx_rollback(tb);
    return differ;
}

START_TEST(build_links)
{
    const uint32_t dim = 64, n = sanitized() ? 3000 : 8000, nq = 200;
    rng r = rng_new(43);
    float *data = gen_data(&r, n, dim), *qs = malloc((size_t)nq * dim * sizeof *qs);
    /* queries off the data (between its clusters), where answers depend
     * on the edges a search follows more than near a cluster */
    for (size_t i = 0; i < (size_t)nq * dim; i++) qs[i] = (float)(0.3 * rgauss(&r));
    ndb whole, whole2, dflt, twelve;
    build_links_db(&whole, "ngh-links-0", data, n, dim, 0);
    build_links_db(&whole2, "ngh-links-28", data, n, dim, 28);
    build_links_db(&dflt, "ngh-links-default", data, n, dim, -1);
    build_links_db(&twelve, "ngh-links-12", data, n, dim, 12);
    REQUIRE(answers_differ(&whole, &whole2, qs, nq, dim) == 0, "buildLinks 28 (M0 - 4) did not read whole lists");
    /* a head of 20 (24 ids of a full list) is honoured too */
    ndb most;
    build_links_db(&most, "ngh-links-20", data, n, dim, 20);
    uint32_t d20 = answers_differ(&whole, &most, qs, nq, dim);
    if (verbose()) printf("buildLinks 20: %u of %u answers differ from whole lists\n", d20, nq);
    REQUIRE(d20 > 0, "buildLinks 20 read whole lists");
    db_done(&most);
    REQUIRE(answers_differ(&dflt, &twelve, qs, nq, dim) == 0, "the default is not buildLinks 12 at M 16");
    uint32_t d = answers_differ(&whole, &dflt, qs, nq, dim);
    REQUIRE(d >= 10, "the default build read whole lists? %u of %u answers differ", d, nq);
    tstx *tw = rbegin(&whole), *td = rbegin(&dflt);
    rng rw = rng_new(44), rd = rng_new(44);
    double recw = recall(&whole, tw, NGH_L2, data, n, dim, NULL, nq, 10, 16, &rw, NULL);
    double recd = recall(&dflt, td, NGH_L2, data, n, dim, NULL, nq, 10, 16, &rd, NULL);
    if (verbose()) printf("buildLinks: %u of %u answers differ; recall@10 at ef 16 whole %.4f, default %.4f\n",
                          d, nq, recw, recd);
    REQUIRE(recd >= 0.9 && recd >= recw - 0.02, "recall at ef 16: default %.4f, whole lists %.4f", recd, recw);
    tstx_rollback(tw);
    tstx_rollback(td);
    const char *bad[] = { "-1", "513", "1.5", "\"12\"" };
    refuse_parameter(&whole, dim, "buildLinks", bad, sizeof bad / sizeof *bad);
    db_done(&whole);
    db_done(&whole2);
    db_done(&dflt);
    db_done(&twelve);
    free(qs);
    free(data);
}
END_TEST

START_TEST(options)
{
    ndb h;
    memset(&h, 0, sizeof h);
    h.dir = tst_tmpdir("ngh-opts");
    db_open(&h, NULL);
    const char *bad[] = {
        "{}", "{\"dimensions\": 0}", "{\"dimensions\": 8, \"bogus\": 1}",
        "{\"dimensions\": 8, \"distanceMetric\": \"manhattan\"}",
        "{\"dimensions\": 8, \"precision\": \"float64\"}",
        "{\"dimensions\": 8, \"parameters\": {\"M\": 1}}",
        "{\"dimensions\": 8, \"parameters\": {\"m\": 16}}",
        "{\"dimensions\": 8, \"parameters\": {\"efSearch\": \"x\"}}",
        "{\"dimensions\": 16385}",
        "{\"dimensions\": 8, \"format\": 0}", "{\"dimensions\": 8, \"format\": 4}",
        "{\"dimensions\": 8, \"parameters\": {\"splitRecords\": 1}}",
        "{\"dimensions\": 8, \"parameters\": {\"M\": true}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *o = json_loads(bad[i], 0, NULL);
        tstx *tx = wbegin(&h);
        uint64_t root;
        int rc = tsix_create(&h.db->env, h.db->reg, "ngh", o, tx, &root);
        REQUIRE(rc != TS_OK, "options %s accepted", bad[i]);
        tstx_rollback(tx);
        json_decref(o);
    }
    /* a good index; wrong-size vectors, NaN, oversized values */
    h.opts = mkopts(8, "l2", 4, 20, 10);
    ix_create(&h);
    tstx *tx = wbegin(&h);
    float v[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    uint8_t pk[8];
    pk_of(1, pk);
    ck_assert_int_eq(tsix_insert(h.ix, tx, v, 9 * 4, pk, 8, 0), TS_ERR_VALIDATION);
    ck_assert_int_eq(tsix_insert(h.ix, tx, v, 7 * 4, pk, 8, 0), TS_ERR_VALIDATION);
    v[3] = NAN;
    ck_assert_int_eq(tsix_insert(h.ix, tx, v, 8 * 4, pk, 8, 0), TS_ERR_VALIDATION);
    v[3] = INFINITY;
    ck_assert_int_eq(tsix_insert(h.ix, tx, v, 8 * 4, pk, 8, 0), TS_ERR_VALIDATION);
    v[3] = 4;
    ck_assert_int_eq(tsix_insert(h.ix, tx, v, 8 * 4, pk, 8, 0), TS_OK);
    ts_knn_hit out[4];
    size_t n;
    ck_assert_int_eq(tsix_knn(h.ix, tx, v, 7, 4, 0, NULL, NULL, out, &n, &h.vals), TS_ERR_VALIDATION);
    ck_assert_int_eq(tsix_knn(h.ix, tx, v, 8, 0, 0, NULL, NULL, out, &n, &h.vals), TS_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(tsix_knn(h.ix, tx, v, 8, 4, 0, NULL, NULL, out, &n, &h.vals), TS_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(pk_id(out[0].val, out[0].vlen), 1);
    ck_assert_float_eq_tol(out[0].distance, 0, 1e-6);
    commit(&h, tx);
    /* reopening with other options is refused at the first use */
    tsix_close(h.ix);
    json_t *o2 = mkopts(8, "cosine", 0, 0, 0);
    ck_assert_int_eq(tsix_open(&h.db->env, h.db->reg, "ngh", o2, h.root, "vec", &h.ix), TS_OK);
    tx = rbegin(&h);
    free(h.vals);
    ck_assert_int_eq(tsix_knn(h.ix, tx, v, 8, 4, 0, NULL, NULL, out, &n, &h.vals), TS_ERR_CONFIG);
    tstx_rollback(tx);
    json_decref(o2);
    db_done(&h);
}
END_TEST

/* Values (primary keys) of any length: empty, long, several per vector. */
START_TEST(entries_and_duplicates)
{
    ndb h;
    db_new(&h, "ngh-dups", 0, NULL, mkopts(4, "l2", 4, 16, 16));
    tstx *tx = wbegin(&h);
    float a[4] = { 1, 0, 0, 0 }, b[4] = { 0, 1, 0, 0 };
    uint8_t big[1024];
    memset(big, 0xAB, sizeof big);
    ck_assert_int_eq(tsix_insert(h.ix, tx, a, 16, "", 0, 0), TS_OK);
    ck_assert_int_eq(tsix_insert(h.ix, tx, a, 16, big, sizeof big, 0), TS_OK);
    ck_assert_int_eq(tsix_insert(h.ix, tx, a, 16, "x", 1, 0), TS_OK);
    ck_assert_int_eq(tsix_insert(h.ix, tx, a, 16, "x", 1, 0), TS_ERR_UNIQUE);
    ck_assert_int_eq(tsix_insert(h.ix, tx, a, 16, "y", 1, 1), TS_ERR_UNIQUE); /* unique: key exists */
    ck_assert_int_eq(tsix_insert(h.ix, tx, b, 16, "x", 1, 1), TS_OK);
    ts_knn_hit out[8];
    size_t n = knn(&h, tx, a, 4, 8, 0, NULL, NULL, out);
    ck_assert_uint_eq(n, 4);
    for (int i = 0; i < 3; i++) ck_assert_float_eq_tol(out[i].distance, 0, 1e-6);
    ck_assert_float_eq_tol(out[3].distance, sqrtf(2), 1e-5);
    ck_assert_uint_eq(out[3].vlen, 1);
    int seen_big = 0;
    for (int i = 0; i < 3; i++) seen_big += out[i].vlen == 1024 && !memcmp(out[i].val, big, 1024);
    ck_assert_int_eq(seen_big, 1);
    ck_assert_int_eq(tsix_remove(h.ix, tx, a, 16, "z", 1), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(tsix_remove(h.ix, tx, b, 16, "", 0), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(tsix_remove(h.ix, tx, a, 16, big, sizeof big), TS_OK);
    ck_assert_int_eq(tsix_remove(h.ix, tx, a, 16, big, sizeof big), TS_ERR_NOT_FOUND);
    n = knn(&h, tx, a, 4, 8, 0, NULL, NULL, out);
    ck_assert_uint_eq(n, 3);
    /* remove every entry of a vector (value NULL) */
    ck_assert_int_eq(tsix_remove(h.ix, tx, a, 16, NULL, 0), TS_OK);
    n = knn(&h, tx, a, 4, 8, 0, NULL, NULL, out);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(out[0].vlen, 1);
    ck_assert_int_eq(((const char *)out[0].val)[0], 'x');
    /* many entries of one vector: remove them all at once */
    float c[4] = { 0, 0, 1, 0 };
    for (uint32_t i = 0; i < 150; i++) {
        uint8_t pk[8];
        pk_of(i, pk);
        ck_assert_int_eq(tsix_insert(h.ix, tx, c, 16, pk, 8, 0), TS_OK);
    }
    ts_knn_hit many[200];
    ck_assert_uint_eq(knn(&h, tx, c, 4, 200, 0, NULL, NULL, many), 151);
    ck_assert_int_eq(tsix_remove(h.ix, tx, c, 16, NULL, 0), TS_OK);
    ck_assert_int_eq(tsix_remove(h.ix, tx, c, 16, NULL, 0), TS_ERR_NOT_FOUND);
    ck_assert_uint_eq(knn(&h, tx, c, 4, 200, 0, NULL, NULL, many), 1);
    /* the same (vector, value) again after its removal */
    ck_assert_int_eq(tsix_insert(h.ix, tx, a, 16, "x", 1, 0), TS_OK);
    n = knn(&h, tx, a, 4, 8, 0, NULL, NULL, out);
    ck_assert_uint_eq(n, 2);
    commit(&h, tx);
    db_done(&h);
}
END_TEST

/* Deletes and updates at scale: deleted entries are never returned and
 * recall over the live ones holds. */
/* keysQuantized (what the kernel passes for float16 / int8 fields, whose
 * keys are decoded from quantized row values): no float32 copy is kept, so
 * the index is smaller by the raw array, yet its distances are the exact
 * ones (the records hold the keys exactly), removes find their entries,
 * and the answers survive a reopen. */
static void quantized_keys_case(const char *prec_name, int prec)
{
    uint32_t n = sanitized() ? 2000 : 8000, dim = 64, k = 10;
    rng r = rng_new(31 + (uint64_t)prec);
    float *data = gen_data(&r, n, dim);
    /* the keys as a quantized row decodes them */
    uint8_t codes[2 * 64];
    for (uint32_t i = 0; i < n; i++) {
        float sc = 1.0f, *v = data + (size_t)i * dim;
        ngh_quantize(prec, v, dim, codes, &sc);
        ngh_dequantize(prec, codes, dim, sc, v);
    }
    uint64_t pages[2];
    for (int kq = 0; kq < 2; kq++) {
        json_t *o = mkopts_p(dim, "l2", prec_name, 0, 100, 0);
        if (kq) json_object_set_new(o, "keysQuantized", json_true());
        ndb h;
        char name[64];
        snprintf(name, sizeof name, "ngh-qkeys-%s-%d", prec_name, kq);
        db_new(&h, name, 0, "\"cacheBytes\": 134217728", o);
        load(&h, data, dim, 0, n, 2000);
        tstx *tx = rbegin(&h);
        pages[kq] = live_pages(tx);
        double rec = recall(&h, tx, NGH_L2, data, n, dim, NULL, 100, k, 0, &r, NULL);
        REQUIRE(rec >= 0.95, "%s keysQuantized %d: recall@10 %.4f", prec_name, kq, rec);
        ts_knn_hit out[10];
        for (int i = 0; i < 50; i++) {
            uint32_t id = (uint32_t)rbelow(&r, n);
            REQUIRE(knn(&h, tx, data + (size_t)id * dim, dim, 10, 0, NULL, NULL, out) == 10, "self");
            REQUIRE(out[0].distance < 1e-3f, "self query %u: first at %g", id, out[0].distance);
        }
        tstx_rollback(tx);
        if (!kq) { db_done(&h); continue; }
        /* remove a third by (key, value): found once, then gone */
        uint8_t *live = malloc(n);
        memset(live, 1, n);
        tx = wbegin(&h);
        for (uint32_t i = 0; i < n; i += 3) {
            REQUIRE(del(&h, tx, data, dim, i) == TS_OK, "remove %u: %s", i, emsg(&h));
            live[i] = 0;
        }
        for (uint32_t i = 0; i < n; i += 30)
            ck_assert_int_eq(del(&h, tx, data, dim, i), TS_ERR_NOT_FOUND);
        commit(&h, tx);
        REQUIRE(db_close(&h) == TS_OK, "close");
        db_open(&h, "\"cacheBytes\": 134217728");
        tx = rbegin(&h);
        rec = recall(&h, tx, NGH_L2, data, n, dim, live, 100, k, 0, &r, NULL);
        REQUIRE(rec >= 0.95, "%s after removes and reopen: recall@10 %.4f", prec_name, rec);
        tstx_rollback(tx);
        free(live);
        db_done(&h);
    }
    /* the raw array is n float32 vectors: at least 90% of its pages saved */
    uint64_t raw_pages = (uint64_t)n * dim * 4 / 4096;
    if (verbose()) printf("ngh %s: %llu pages with a float32 copy, %llu with keysQuantized\n", prec_name,
                          (unsigned long long)pages[0], (unsigned long long)pages[1]);
    REQUIRE(pages[1] + raw_pages * 9 / 10 <= pages[0], "%s: %llu pages with keysQuantized, %llu without",
            prec_name, (unsigned long long)pages[1], (unsigned long long)pages[0]);
    free(data);
}

START_TEST(quantized_keys_f16) { quantized_keys_case("float16", NGH_F16); }
END_TEST
START_TEST(quantized_keys_i8) { quantized_keys_case("int8", NGH_I8); }
END_TEST

/* ts_index_vtab.vectors: the floats insert received, by primary key:
 * exactly for float32 records, raw vectors and float16 records of
 * float16-exact keys; for int8 records of int8-exact keys the same codes
 * times a scale off at most in its last bit.  Deleted and unknown keys are
 * not found; a write transaction sees its own inserts. */
START_TEST(stored_vectors)
{
    static const struct { const char *prec; int kq, exact; } cfg[] = {
        { "float32", 0, 1 }, { "float16", 0, 1 }, { "int8", 0, 1 }, { "float16", 1, 1 }, { "int8", 1, 2 },
    };
    uint32_t n = 600, dim = 20;
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        rng r = rng_new(77 + c);
        float *data = gen_data(&r, n + 1, dim);
        if (cfg[c].kq) {
            int prec = !strcmp(cfg[c].prec, "float16") ? NGH_F16 : NGH_I8;
            uint8_t codes[2 * 20];
            for (uint32_t i = 0; i <= n; i++) {
                float sc = 1.0f, *v = data + (size_t)i * dim;
                ngh_quantize(prec, v, dim, codes, &sc);
                ngh_dequantize(prec, codes, dim, sc, v);
            }
        }
        json_t *o = mkopts_p(dim, "l2", cfg[c].prec, 0, 64, 0);
        if (cfg[c].kq) json_object_set_new(o, "keysQuantized", json_true());
        ndb h;
        char name[64];
        snprintf(name, sizeof name, "ngh-vectors-%zu", c);
        db_new(&h, name, 0, NULL, o);
        load(&h, data, dim, 0, n, 250);
        tstx *tx = wbegin(&h);
        for (uint32_t i = 0; i < n; i += 5) REQUIRE(del(&h, tx, data, dim, i) == TS_OK, "remove %u", i);
        commit(&h, tx);
        tx = rbegin(&h);
        int rc = tsix_vectors(h.ix, tx, 0, NULL, NULL, NULL, NULL);
        ck_assert_int_eq(rc, cfg[c].exact ? TS_OK : TS_ERR_UNSUPPORTED);
        uint64_t live = 0;
        ck_assert_int_eq(tsix_count(h.ix, tx, &live), TS_OK);
        ck_assert_uint_eq(live, n - n / 5);
        uint8_t (*pks)[8] = malloc((size_t)(n + 10) * 8);
        const void **kp = malloc((n + 10) * sizeof *kp);
        size_t *kl = malloc((n + 10) * sizeof *kl);
        float *out = malloc((size_t)(n + 10) * dim * 4);
        unsigned char *found = malloc(n + 10);
        for (uint32_t i = 0; i < n + 10; i++) {
            pk_of(i, pks[i]);
            kp[i] = pks[i];
            kl[i] = 8;
        }
        rc = tsix_vectors(h.ix, tx, n + 10, kp, kl, out, found);
        if (cfg[c].exact) {
            ck_assert_int_eq(rc, TS_OK);
            for (uint32_t i = 0; i < n + 10; i++) {
                int want = i < n && i % 5 != 0;
                REQUIRE(found[i] == want, "%s/%d: key %u found %d", cfg[c].prec, cfg[c].kq, i, found[i]);
                for (uint32_t d = 0; want && d < dim; d++) {
                    float got = out[(size_t)i * dim + d], was = data[(size_t)i * dim + d];
                    /* int8: the same code by a scale within a few ulps */
                    REQUIRE(cfg[c].exact == 1 ? !memcmp(&got, &was, 4) : fabsf(got - was) <= 1e-6f * fabsf(was),
                            "%s/%d: key %u [%u]: %.9g, inserted %.9g", cfg[c].prec, cfg[c].kq, i, d, got, was);
                }
            }
        } else {
            ck_assert_int_eq(rc, TS_ERR_UNSUPPORTED);
        }
        tstx_rollback(tx);
        if (cfg[c].exact) {
            /* a write transaction's own insert */
            tx = wbegin(&h);
            REQUIRE(ins(&h, tx, data, dim, n) == TS_OK, "insert %u", n);
            found[0] = 0;
            ck_assert_int_eq(tsix_vectors(h.ix, tx, 1, &kp[n], &kl[n], out, found), TS_OK);
            ck_assert_int_eq(found[0], 1);
            ck_assert_int_eq(tsix_count(h.ix, tx, &live), TS_OK);
            ck_assert_uint_eq(live, n - n / 5 + 1);
            for (uint32_t d = 0; d < dim; d++)
                ck_assert(fabsf(out[d] - data[(size_t)n * dim + d]) <= 1e-6f * fabsf(data[(size_t)n * dim + d]));
            tstx_rollback(tx);
        }
        free(pks);
        free(kp);
        free(kl);
        free(out);
        free(found);
        free(data);
        db_done(&h);
    }
}
END_TEST

/* The index measures stored vectors by key itself (ts_index_vtab.distances):
 * each distance is what the metric says of the vector inserted (L2 the
 * Euclidean distance, cosine 1 - similarity, innerProduct minus the dot
 * product), found only for live keys, in batches larger than one lookup
 * batch; with no keys it only says whether it can. */
START_TEST(stored_distances)
{
    static const char *const metrics[] = { "l2", "cosine", "innerProduct" };
    uint32_t n = 400, dim = 16;
    for (int mi = 0; mi < 3; mi++) {
        rng r = rng_new(91 + (uint64_t)mi);
        float *data = gen_data(&r, n + 1, dim);
        ndb h;
        char name[64];
        snprintf(name, sizeof name, "ngh-distances-%d", mi);
        db_new(&h, name, 0, NULL, mkopts(dim, metrics[mi], 0, 64, 0));
        load(&h, data, dim, 0, n, 200);
        tstx *tx = wbegin(&h);
        for (uint32_t i = 0; i < n; i += 7) REQUIRE(del(&h, tx, data, dim, i) == TS_OK, "remove %u", i);
        commit(&h, tx);
        tx = rbegin(&h);
        const float *q = data + (size_t)n * dim;   /* not in the index */
        ck_assert_int_eq(tsix_distances(h.ix, tx, q, dim, 0, NULL, NULL, NULL, NULL), TS_OK);
        uint32_t m = n + 5;
        uint8_t (*pks)[8] = malloc((size_t)m * 8);
        const void **kp = malloc(m * sizeof *kp);
        size_t *kl = malloc(m * sizeof *kl);
        float *d = malloc(m * sizeof *d);
        unsigned char *found = malloc(m);
        for (uint32_t i = 0; i < m; i++) {
            pk_of((i * 37u) % m, pks[i]);
            kp[i] = pks[i];
            kl[i] = 8;
        }
        ck_assert_int_eq(tsix_distances(h.ix, tx, q, dim, m, kp, kl, d, found), TS_OK);
        for (uint32_t i = 0; i < m; i++) {
            uint32_t id = (i * 37u) % m;
            int want = id < n && id % 7 != 0;
            REQUIRE(found[i] == want, "%s: key %u found %d", metrics[mi], id, found[i]);
            if (!want) continue;
            const float *v = data + (size_t)id * dim;
            double dot = 0, l2 = 0, na = 0, nb = 0;
            for (uint32_t x = 0; x < dim; x++) {
                dot += (double)q[x] * v[x];
                l2 += ((double)q[x] - v[x]) * ((double)q[x] - v[x]);
                na += (double)q[x] * q[x];
                nb += (double)v[x] * v[x];
            }
            double w = mi == 0 ? sqrt(l2) : mi == 1 ? 1 - dot / sqrt(na * nb) : -dot;
            REQUIRE(fabs(d[i] - w) <= 1e-4 * (1 + fabs(w)), "%s: key %u distance %.7g, want %.7g", metrics[mi],
                    id, d[i], w);
        }
        /* a wrong query length is refused */
        ck_assert_int_eq(tsix_distances(h.ix, tx, q, dim - 1, 1, kp, kl, d, found), TS_ERR_VALIDATION);
        tstx_rollback(tx);
        free(pks);
        free(kp);
        free(kl);
        free(d);
        free(found);
        free(data);
        db_done(&h);
    }
}
END_TEST

/* Lookups by key guess a node from the last key found (keys that differ
 * in their last 8 bytes as integers, rows inserted in key order): the
 * guesses must never return a deleted node whose slot still holds the key,
 * nor a reused id's new key for the old one, and must fall back to the
 * key hash when rows were not inserted in key order.  Kernel-style keys
 * (space and primary key as TS_KEY_INT: packed in the slot) and 12-byte
 * raw keys (too long for the slot: in the map). */
static size_t gkey(int style, uint64_t pk, uint8_t *k)
{
    if (style == 0) {
        size_t off = ts_key_int(k, 32, 0, 0);
        return ts_key_int(k, 32, off, (int64_t)pk);
    }
    memcpy(k, "sp00", 4);
    for (int i = 0; i < 8; i++) k[4 + i] = (uint8_t)(pk >> (56 - 8 * i));
    return 12;
}

/* The buffers of a batch of m key lookups (tsix_vectors) of dim-float
 * vectors: the keys, their pointers and lengths, the row each names
 * (UINT32_MAX: none), the vectors and whether each was found. */
typedef struct lookups {
    uint8_t (*keys)[32];
    const void **kp;
    size_t *kl;
    uint32_t *row;
    float *out;
    unsigned char *found;
} lookups;

static lookups lookups_new(uint32_t m, uint32_t dim)
{
    lookups l = { malloc((size_t)m * 32), malloc(m * sizeof *l.kp), malloc(m * sizeof *l.kl),
                  malloc(m * sizeof *l.row), malloc((size_t)m * dim * 4), malloc(m) };
    REQUIRE(l.keys && l.kp && l.kl && l.row && l.out && l.found, "out of memory");
    return l;
}

static void lookups_free(lookups *l)
{
    free(l->keys);
    free(l->kp);
    free(l->kl);
    free(l->row);
    free(l->out);
    free(l->found);
}

/* Key runs (a read cache's live nodes whose keys count up with their
 * ids): keys found inside a run take their node without a slot read, so
 * every lookup is checked against the rows: keys in runs, keys of deleted
 * nodes (the runs skip them), deleted keys inserted again at new nodes,
 * a second run of new keys, keys of another prefix (space) and unknown
 * keys, each batch of lookups repeated so that the later ones go through
 * the runs; then the same after a commit (a new generation, new runs).
 * Both key styles (packed in the slot, and 12-byte keys in the map). */
START_TEST(key_runs)
{
    uint32_t n = 3000, dim = 4, extra = 100, again = 5;
    for (int style = 0; style < 2; style++) {
        rng r = rng_new(410 + (uint64_t)style);
        uint32_t rows = n + extra + again;
        float *data = gen_data(&r, rows, dim);
        ndb h;
        char name[64];
        snprintf(name, sizeof name, "ngh-runs-%d", style);
        db_new(&h, name, 0, NULL, mkopts(dim, "l2", 0, 24, 0));
        uint64_t *pk = malloc(rows * sizeof *pk);
        int *live = calloc(rows, sizeof *live);
        uint8_t k[32];
        tstx *tx = wbegin(&h);
        for (uint32_t i = 0; i < n; i++) {
            pk[i] = 1000 + i;
            size_t kl = gkey(style, pk[i], k);
            REQUIRE(tsix_insert(h.ix, tx, data + (size_t)i * dim, (size_t)dim * 4, k, kl, 0) == TS_OK, "insert %u", i);
            live[i] = 1;
        }
        commit(&h, tx);
        for (int gen = 0; gen < 2; gen++) {
            tx = wbegin(&h);
            if (gen == 0) {
                /* every 37th deleted; new keys 9000.. ; five deleted keys again */
                for (uint32_t i = 5; i < n; i += 37) {
                    size_t kl = gkey(style, pk[i], k);
                    REQUIRE(tsix_remove(h.ix, tx, data + (size_t)i * dim, (size_t)dim * 4, k, kl) == TS_OK, "remove %u", i);
                    live[i] = 0;
                }
                for (uint32_t i = n; i < n + extra; i++) pk[i] = 9000 + (i - n);
                for (uint32_t j = 0; j < again; j++) pk[n + extra + j] = pk[5 + 37 * (j * 7)];
                for (uint32_t i = n; i < rows; i++) {
                    size_t kl = gkey(style, pk[i], k);
                    REQUIRE(tsix_insert(h.ix, tx, data + (size_t)i * dim, (size_t)dim * 4, k, kl, 0) == TS_OK,
                            "insert %u", i);
                    live[i] = 1;
                }
            } else {
                /* a key in the middle of a run deleted in a later generation */
                size_t kl = gkey(style, pk[1500], k);
                REQUIRE(tsix_remove(h.ix, tx, data + (size_t)1500 * dim, (size_t)dim * 4, k, kl) == TS_OK, "remove");
                live[1500] = 0;
            }
            commit(&h, tx);
            /* lookups: every row's key, unknown keys, another prefix */
            uint32_t m = rows + 40;
            lookups lk = lookups_new(m, dim);
            uint8_t (*keys)[32] = lk.keys;
            const void **kp = lk.kp;
            size_t *kl = lk.kl;
            uint32_t *row = lk.row;
            for (uint32_t j = 0; j < m; j++) {
                row[j] = j < rows ? j : UINT32_MAX;
                /* unknown: below the first run, past the last, and keys whose
                 * last 8 bytes are inside a run under another prefix */
                if (j < rows) kl[j] = gkey(style, pk[j], keys[j]);
                else if (j % 2) kl[j] = gkey(style, j % 4 == 1 ? 500 + j % 100 : 20000 + j, keys[j]);
                else if (style == 0) kl[j] = ts_key_int(keys[j], 32, ts_key_int(keys[j], 32, 0, 7), 1500 + (int64_t)(j % 20));
                else {
                    kl[j] = gkey(style, 1500 + j % 20, keys[j]);
                    keys[j][2] = 'X';
                }
                kp[j] = keys[j];
            }
            float *out = lk.out;
            unsigned char *found = lk.found;
            tx = rbegin(&h);
            for (int pass = 0; pass < 6; pass++) {   /* runs from the fourth (4 count lookups) */
                memset(found, 7, m);
                ck_assert_int_eq(tsix_vectors(h.ix, tx, m, kp, kl, out, found), TS_OK);
                for (uint32_t j = 0; j < m; j++) {
                    int want = row[j] != UINT32_MAX && live[row[j]];
                    /* a deleted key inserted again: found (its new row) */
                    if (row[j] != UINT32_MAX && !want)
                        for (uint32_t a = n + extra; a < rows; a++)
                            if (pk[a] == pk[row[j]] && live[a]) want = 2 + (int)a;
                    REQUIRE(found[j] == (want != 0), "style %d gen %d pass %d: lookup %u (row %u) found %d", style,
                            gen, pass, j, row[j], found[j]);
                    uint32_t src = want >= 2 ? (uint32_t)want - 2 : row[j];
                    if (want)
                        REQUIRE(!memcmp(out + (size_t)j * dim, data + (size_t)src * dim, (size_t)dim * 4),
                                "style %d gen %d pass %d: lookup %u: another row's vector", style, gen, pass, j);
                }
            }
            tstx_rollback(tx);
            lookups_free(&lk);
        }
        free(pk);
        free(live);
        free(data);
        db_done(&h);
    }
}
END_TEST

/* key_runs_carried: a model of the keys (key i's vector, or none) */
typedef struct rmodel {
    ndb *h;
    rng *r;
    int style;
    uint32_t dim, nkeys, cap, round;
    float *vec;      /* cap x dim: key 1000 + i's current vector */
    uint8_t *live;   /* cap */
} rmodel;

static void rm_put(rmodel *m, tstx *tx, uint32_t i)
{
    uint8_t k[32];
    float *v = m->vec + (size_t)i * m->dim;
    for (uint32_t d = 0; d < m->dim; d++) v[d] = (float)rbelow(m->r, 1000000) / 1000.0f;
    size_t kl = gkey(m->style, 1000 + (uint64_t)i, k);
    REQUIRE(tsix_insert(m->h->ix, tx, v, (size_t)m->dim * 4, k, kl, 0) == TS_OK, "round %u: insert key %u", m->round, i);
    m->live[i] = 1;
}

static void rm_drop(rmodel *m, tstx *tx, uint32_t i)
{
    uint8_t k[32];
    size_t kl = gkey(m->style, 1000 + (uint64_t)i, k);
    REQUIRE(tsix_remove(m->h->ix, tx, m->vec + (size_t)i * m->dim, (size_t)m->dim * 4, k, kl) == TS_OK,
            "round %u: remove key %u", m->round, i);
    m->live[i] = 0;
}

/* The key runs of the index's current read cache (NULL: none); *stale
 * their stale ids. */
static const ngh_runs *cur_runs(ndb *h, uint32_t *stale)
{
    const ngh_idx *ix = h->ix->idx;
    const ngh_snap *s = ix->snap;
    const ngh_runs *rs = s && atomic_load(&s->runs_state) == 2 ? atomic_load(&s->runs) : NULL;
    *stale = 0;
    for (uint32_t i = 0; rs && rs->stale && i < rs->nids; i++) *stale += rs->stale[i >> 3] >> (i & 7) & 1;
    return rs;
}

/* One transaction of random changes: deletes, updates (the key at a new
 * node), deleted keys again, new keys in order and one out of order. */
static void rm_change(rmodel *m, tstx *tx)
{
    for (int j = 0; j < 4; j++) {
        uint32_t i = (uint32_t)rbelow(m->r, m->nkeys);
        int op = (int)rbelow(m->r, 3), was = m->live[i];
        if (was) rm_drop(m, tx, i);             /* op 0: deleted */
        if (op || !was) rm_put(m, tx, i);   /* an update, or the key again */
    }
    uint32_t add = 1 + (uint32_t)rbelow(m->r, 8);
    for (uint32_t j = 0; j < add && m->nkeys + 8 < m->cap; j++, m->nkeys++)
        if (!m->live[m->nkeys]) rm_put(m, tx, m->nkeys);
    if (m->nkeys + 8 < m->cap && !m->live[m->nkeys + 5]) rm_put(m, tx, m->nkeys + 5);   /* out of order */
}

/* Every key (and some never inserted) looked up twice in tx and compared
 * with the model. */
static void rm_check(rmodel *m, tstx *tx, const char *what)
{
    uint32_t n = m->cap + 20;
    lookups lk = lookups_new(n, m->dim);
    for (uint32_t j = 0; j < n; j++) {
        uint64_t key = j < m->cap ? 1000 + (uint64_t)j : 900 + (uint64_t)(j - m->cap);
        lk.row[j] = j < m->cap ? j : UINT32_MAX;
        lk.kl[j] = gkey(m->style, key, lk.keys[j]);
        lk.kp[j] = lk.keys[j];
    }
    for (int pass = 0; pass < 2; pass++) {
        memset(lk.found, 7, n);
        ck_assert_int_eq(tsix_vectors(m->h->ix, tx, n, lk.kp, lk.kl, lk.out, lk.found), TS_OK);
        for (uint32_t j = 0; j < n; j++) {
            int want = lk.row[j] != UINT32_MAX && m->live[lk.row[j]];
            REQUIRE(lk.found[j] == want, "style %d round %u (%s): key %u found %d", m->style, m->round, what, j,
                    lk.found[j]);
            if (want)
                REQUIRE(!memcmp(lk.out + (size_t)j * m->dim, m->vec + (size_t)j * m->dim, (size_t)m->dim * 4),
                        "style %d round %u (%s): key %u: another vector", m->style, m->round, what, j);
        }
    }
    lookups_free(&lk);
}

/* inside a running search of the old state: the next commit, then its
 * lookups (a new cache made from the old one, whose reader is inside) */
static int rm_nested(void *ctx, const void *v, size_t l)
{
    rmodel *m = ctx;
    (void)v;
    (void)l;
    if (m->round & 0x80000000u) return 1;
    m->round |= 0x80000000u;
    uint8_t *outer = m->h->vals;
    m->h->vals = NULL;
    tstx *w = wbegin(m->h);
    rm_change(m, w);
    commit(m->h, w);
    tstx *tx = rbegin(m->h);
    rm_check(m, tx, "committed during a search");
    tstx_rollback(tx);
    free(m->h->vals);
    m->h->vals = outer;
    return 1;
}

/* Key runs carried from state to state (ngh_keys.c): random commits,
 * rollbacks, commits from inside a running search and lookups while a
 * writer is already past the searched state, each state's lookups
 * checked against a model.  A run that kept a deleted or moved key's old
 * node finds it (or its old vector) and fails here. */
START_TEST(key_runs_carried)
{
    for (int c = 0; c < 4; c++) {
        /* 4-d: key slots in pages of their own (style 1's 12-byte keys do
         * not fit them: kept in the map, no runs); 36-d: in the records */
        int style = c & 1;
        uint32_t dim = c < 2 ? 4 : 36, cap = 4800, exact = 0, carried = 0, remade = 0;
        size_t vb = (size_t)cap * dim * sizeof(float);
        rng r = rng_new(520 + (uint64_t)c);
        ndb h;
        char name[64];
        snprintf(name, sizeof name, "ngh-runs-carried-%d", c);
        db_new(&h, name, 0, NULL, mkopts(dim, "l2", 0, 24, 0));
        rmodel m = { &h, &r, style, dim, 4000, cap, 0, calloc(vb, 1), calloc(cap, 1) };
        uint8_t *live = malloc(cap), *now_live = malloc(cap);
        float *vec = malloc(vb), *now_vec = malloc(vb), *q = calloc(dim, sizeof *q);
        tstx *tx = wbegin(&h);
        for (uint32_t i = 0; i < m.nkeys; i++) rm_put(&m, tx, i);
        commit(&h, tx);
        tx = rbegin(&h);
        for (int j = 0; j < 3; j++) rm_check(&m, tx, "first state");   /* 4 count lookups: runs made */
        tstx_rollback(tx);
        for (m.round = 1; m.round <= 36; m.round++) {
            tstx *w = wbegin(&h);
            if (m.round % 9 == 4) {   /* rolled back: the model too */
                uint32_t nk = m.nkeys;
                memcpy(live, m.live, cap);
                memcpy(vec, m.vec, vb);
                rm_change(&m, w);
                tstx_rollback(w);
                memcpy(m.live, live, cap);
                memcpy(m.vec, vec, vb);
                m.nkeys = nk;
                w = wbegin(&h);
            }
            if (m.round == 18) {
                /* a third deleted, high ids; then (21) past a quarter
                 * deleted, new nodes take the lowest deleted ids over */
                for (uint32_t i = 2600; i < 4000; i++)
                    if (m.live[i]) rm_drop(&m, w, i);
            } else if (m.round == 21) {
                /* live nodes deleted and their ids taken over by other
                 * keys in one commit: only their key slots tell */
                for (uint32_t i = 1; i < 40; i++)
                    if (m.live[i]) rm_drop(&m, w, i);
                for (uint32_t j = 0; j < 40 && m.nkeys + 8 < m.cap; j++, m.nkeys++)
                    if (!m.live[m.nkeys]) rm_put(&m, w, m.nkeys);
                for (uint32_t i = 2600; i < 3000; i++)
                    if (!m.live[i]) rm_put(&m, w, i);
            } else {
                rm_change(&m, w);
            }
            commit(&h, w);
            if (m.round % 5 == 0) {
                /* the writer already inside its next transaction */
                uint32_t nk = m.nkeys;
                memcpy(live, m.live, cap);
                memcpy(vec, m.vec, vb);
                w = wbegin(&h);
                rm_change(&m, w);
                /* the reader sees the committed state: the model of it */
                memcpy(now_live, m.live, cap);
                memcpy(now_vec, m.vec, vb);
                memcpy(m.live, live, cap);
                memcpy(m.vec, vec, vb);
                tx = rbegin(&h);
                rm_check(&m, tx, "writer past the state");
                tstx_rollback(tx);
                if (m.round % 10 == 0) {
                    commit(&h, w);
                    memcpy(m.live, now_live, cap);
                    memcpy(m.vec, now_vec, vb);
                } else {
                    tstx_rollback(w);
                    m.nkeys = nk;
                }
            }
            tx = rbegin(&h);
            uint32_t st0, st1;
            const ngh_runs *before = cur_runs(&h, &st0);
            rm_check(&m, tx, "after the commit");
            const ngh_runs *after = cur_runs(&h, &st1);
            /* runs that went along with the cache, marked node by node */
            carried += before && before == after && st1 > st0;
            exact += before && before == after && st1 > st0 && st1 < before->nids / 8;
            if (m.round % 3 == 0 && after) {
                /* looked up until the runs' misses make them again, from
                 * the old ones and the nodes written since; then checked */
                for (int j = 0; j < 120 && cur_runs(&h, &st1) == after; j++) rm_check(&m, tx, "until made again");
                const ngh_runs *again = cur_runs(&h, &st1);
                remade += again && again != after && !again->stale;
                rm_check(&m, tx, "runs made again");
            }
            if (m.round % 4 == 2) {
                ts_knn_hit out[8];
                for (uint32_t d = 0; d < dim; d++) q[d] = 500;
                size_t got = knn(&h, tx, q, dim, 8, 24, rm_nested, &m, out);
                REQUIRE(m.round & 0x80000000u, "round %u: the filter was not called", m.round);
                m.round &= 0x7FFFFFFFu;
                REQUIRE(got > 0, "round %u: no hits", m.round);
            }
            tstx_rollback(tx);
        }
        /* style 0's keys: runs carried through most commits (a failing
         * mutation: carrying turned off), marked node by node */
        if (style == 0)
            REQUIRE(carried >= 10 && exact >= 8 && remade >= 4,
                    "case %d: runs carried %u times, %u of them node by node, made again %u times", c, carried,
                    exact, remade);
        ck_assert_int_eq(db_close(&h), TS_OK);
        db_open(&h, NULL);
        tx = rbegin(&h);
        rm_check(&m, tx, "reopened");
        tstx_rollback(tx);
        free(m.vec);
        free(m.live);
        free(live);
        free(now_live);
        free(vec);
        free(now_vec);
        free(q);
        db_done(&h);
    }
}
END_TEST

START_TEST(guessed_lookups)
{
    uint32_t n = 600, dim = 8, extra = 80;
    for (int style = 0; style < 2; style++) {
        rng r = rng_new(300 + (uint64_t)style);
        float *data = gen_data(&r, n + extra, dim);
        ndb h;
        char name[64];
        snprintf(name, sizeof name, "ngh-guess-%d", style);
        db_new(&h, name, 0, NULL, mkopts(dim, "l2", 0, 40, 0));
        /* rows 0..n-1: keys 1000 + i, the first half inserted in key order,
         * the second half in reverse */
        uint64_t *pk = malloc((n + extra) * sizeof *pk);
        int *live = calloc(n + extra, sizeof *live);
        uint8_t k[32];
        tstx *tx = wbegin(&h);
        for (uint32_t j = 0; j < n; j++) {
            uint32_t i = j < n / 2 ? j : n - 1 - (j - n / 2);
            pk[i] = 1000 + i;
            size_t kl = gkey(style, pk[i], k);
            REQUIRE(tsix_insert(h.ix, tx, data + (size_t)i * dim, (size_t)dim * 4, k, kl, 0) == TS_OK, "insert %u", i);
            live[i] = 1;
        }
        commit(&h, tx);
        /* every third deleted, then new keys reusing their ids */
        tx = wbegin(&h);
        for (uint32_t i = 0; i < n; i += 3) {
            size_t kl = gkey(style, pk[i], k);
            REQUIRE(tsix_remove(h.ix, tx, data + (size_t)i * dim, (size_t)dim * 4, k, kl) == TS_OK, "remove %u", i);
            live[i] = 0;
        }
        commit(&h, tx);
        tx = wbegin(&h);
        for (uint32_t i = n; i < n + extra; i++) {
            pk[i] = 5000 + i;
            size_t kl = gkey(style, pk[i], k);
            REQUIRE(tsix_insert(h.ix, tx, data + (size_t)i * dim, (size_t)dim * 4, k, kl, 0) == TS_OK, "insert %u", i);
            live[i] = 1;
        }
        commit(&h, tx);
        /* look up: ascending, descending, the new keys, unknown keys */
        uint32_t m = 2 * n + extra + 20;
        lookups lk = lookups_new(m, dim);
        uint8_t (*keys)[32] = lk.keys;
        const void **kp = lk.kp;
        size_t *kl = lk.kl;
        uint32_t *row = lk.row;
        for (uint32_t j = 0; j < m; j++) {
            uint64_t p;
            if (j < n) row[j] = j;
            else if (j < 2 * n) row[j] = 2 * n - 1 - j;
            else if (j < 2 * n + extra) row[j] = n + (j - 2 * n);
            else row[j] = UINT32_MAX;
            p = row[j] != UINT32_MAX ? pk[row[j]] : j % 2 ? 1000 + n + j : 999 - j;
            kl[j] = gkey(style, p, keys[j]);
            kp[j] = keys[j];
        }
        float *out = lk.out;
        unsigned char *found = lk.found;
        tx = rbegin(&h);
        ck_assert_int_eq(tsix_vectors(h.ix, tx, m, kp, kl, out, found), TS_OK);
        for (uint32_t j = 0; j < m; j++) {
            int want = row[j] != UINT32_MAX && live[row[j]];
            REQUIRE(found[j] == want, "style %d: lookup %u (row %u) found %d", style, j, row[j], found[j]);
            if (want)
                REQUIRE(!memcmp(out + (size_t)j * dim, data + (size_t)row[j] * dim, (size_t)dim * 4),
                        "style %d: lookup %u: another row's vector", style, j);
        }
        tstx_rollback(tx);
        lookups_free(&lk);
        free(pk);
        free(live);
        free(data);
        db_done(&h);
    }
}
END_TEST

/* cacheBytes bounds the module's page-copy caches (the kernel passes half
 * the database's cacheBytes): with 0 nothing is copied and every search and
 * insert works on pinned kernel pages, with the same answers. */
START_TEST(cache_bytes_bound)
{
    uint32_t n = sanitized() ? 1500 : 5000, dim = 32;
    rng r = rng_new(41);
    float *data = gen_data(&r, n, dim);
    json_t *o = mkopts(dim, "l2", 0, 100, 0);
    json_object_set_new(o, "cacheBytes", json_integer(0));
    ndb h;
    db_new(&h, "ngh-cachebytes", 0, "\"cacheBytes\": 1048576", o);
    load(&h, data, dim, 0, n, 1000);
    tstx *tx = rbegin(&h);
    double rec = recall(&h, tx, NGH_L2, data, n, dim, NULL, 100, 10, 0, &r, NULL);
    REQUIRE(rec >= 0.95, "recall@10 %.4f without page-copy caches", rec);
    /* keys looked up in batches on pinned pages: every vector back, bit
     * for bit, however many pins a batch takes */
    {
        enum { B = 300 };
        uint8_t pks[B][8];
        const void *kp[B];
        size_t kl[B];
        unsigned char found[B];
        float *out = malloc((size_t)B * dim * 4);
        for (uint32_t i = 0; i < B; i++) {
            pk_of((i * 7919u) % n, pks[i]);
            kp[i] = pks[i];
            kl[i] = 8;
        }
        ck_assert_int_eq(tsix_vectors(h.ix, tx, B, kp, kl, out, found), TS_OK);
        for (uint32_t i = 0; i < B; i++) {
            ck_assert_int_eq(found[i], 1);
            ck_assert(!memcmp(out + (size_t)i * dim, data + (size_t)((i * 7919u) % n) * dim, (size_t)dim * 4));
        }
        free(out);
    }
    tstx_rollback(tx);
    db_done(&h);
    /* caches allowed as much as the database's whole cache, for an index
     * larger than it: the held pages fill the page cache, which evicts
     * the rest and stays within its budget plus what the caches hold */
    o = mkopts(dim, "l2", 0, 100, 0);
    json_object_set_new(o, "cacheBytes", json_integer(262144));
    db_new(&h, "ngh-cachebytes-held", 0, "\"cacheBytes\": 262144", o);
    load(&h, data, dim, 0, n, 1000);
    tx = rbegin(&h);
    rec = recall(&h, tx, NGH_L2, data, n, dim, NULL, 100, 10, 0, &r, NULL);
    REQUIRE(rec >= 0.95, "recall@10 %.4f with caches as large as the page cache", rec);
    tstx_rollback(tx);
    tspg_stats st;
    tspg_stats_get(h.db->pg, &st);
    REQUIRE(st.page_count * st.page_size > 262144 + 262144 / 2, "index of %llu pages", (unsigned long long)st.page_count);
    REQUIRE(st.cache_pages <= 3 * (262144 / st.page_size) + 64, "%llu pages cached",
            (unsigned long long)st.cache_pages);
    json_t *bad = mkopts(dim, "l2", 0, 0, 0);
    json_object_set_new(bad, "cacheBytes", json_integer(-1));
    uint64_t root = 0;
    tx = wbegin(&h);
    ck_assert_int_eq(tsix_create(&h.db->env, h.db->reg, "ngh", bad, tx, &root), TS_ERR_CONFIG);
    tstx_rollback(tx);
    json_decref(bad);
    db_done(&h);
    free(data);
}
END_TEST

START_TEST(deletes_and_updates)
{
    uint32_t n = long_mode() ? 30000 : 6000, dim = 32;
    rng r = rng_new(7);
    float *data = gen_data(&r, 2 * n, dim);
    uint8_t *live = calloc(2 * n, 1);
    ndb h;
    db_new(&h, "ngh-del", 0, "\"cacheBytes\": 134217728", mkopts(dim, "l2", 0, 100, 0));
    load(&h, data, dim, 0, n, 2000);
    memset(live, 1, n);
    /* delete 30%, update 20% (remove, insert the new vector under id + n) */
    tstx *tx = wbegin(&h);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t p = rbelow(&r, 10);
        if (p < 3) {
            ck_assert_int_eq(del(&h, tx, data, dim, i), TS_OK);
            live[i] = 0;
        } else if (p < 5) {
            ck_assert_int_eq(del(&h, tx, data, dim, i), TS_OK);
            live[i] = 0;
            ck_assert_int_eq(ins(&h, tx, data, dim, i + n), TS_OK);
            live[i + n] = 1;
        }
    }
    for (uint32_t i = 0; i < 50; i++) {
        uint32_t id = (uint32_t)rbelow(&r, n);
        if (!live[id]) ck_assert_int_eq(del(&h, tx, data, dim, id), TS_ERR_NOT_FOUND);
    }
    commit(&h, tx);
    tx = rbegin(&h);
    double rec = recall(&h, tx, NGH_L2, data, 2 * n, dim, live, 200, 10, 0, &r, NULL);
    if (verbose()) printf("ngh: recall@10 %.4f after 30%% deletes and 20%% updates\n", rec);
    REQUIRE(rec >= 0.95, "recall after deletes %.4f", rec);
    /* a deleted vector queried exactly is not returned */
    ts_knn_hit out[10];
    for (uint32_t i = 0; i < n; i++) {
        if (live[i] || rbelow(&r, 20)) continue;
        size_t got = knn(&h, tx, data + (size_t)i * dim, dim, 10, 0, NULL, NULL, out);
        ck_assert_uint_eq(got, 10);
        for (size_t a = 0; a < got; a++)
            REQUIRE(pk_id(out[a].val, out[a].vlen) != i, "deleted %u returned", i);
    }
    /* k beyond the live count: all of them */
    uint32_t nlive = 0;
    for (uint32_t i = 0; i < 2 * n; i++) nlive += live[i];
    ts_knn_hit *all = malloc((nlive + 10) * sizeof *all);
    size_t got = knn(&h, tx, data, dim, nlive + 10, 0, NULL, NULL, all);
    ck_assert_uint_eq(got, nlive);
    uint8_t *seen = calloc(2 * n, 1);
    for (size_t a = 0; a < got; a++) {
        uint32_t id = pk_id(all[a].val, all[a].vlen);
        REQUIRE(live[id] && !seen[id], "entry %u: live %d, seen %d", id, live[id], seen[id]);
        seen[id] = 1;
    }
    free(seen);
    free(all);
    tstx_rollback(tx);
    /* delete everything: nothing comes back */
    tx = wbegin(&h);
    for (uint32_t i = 0; i < 2 * n; i++)
        if (live[i]) ck_assert_int_eq(del(&h, tx, data, dim, i), TS_OK);
    ck_assert_uint_eq(knn(&h, tx, data, dim, 10, 0, NULL, NULL, out), 0);
    commit(&h, tx);
    db_done(&h);
    free(live);
    free(data);
}
END_TEST

/* ---- filtered search -------------------------------------------------------- */

static uint32_t sel_mod;
static int keep_id(uint32_t id) { return mix64(id) % sel_mod == 0; }

typedef struct fctx { uint32_t calls, bad; } fctx;
static int filt(void *ctx, const void *val, size_t vl)
{
    fctx *f = ctx;
    f->calls++;
    if (vl != 8) { f->bad++; return 0; }
    return keep_id(pk_id(val, vl));
}
static int filt_err(void *ctx, const void *val, size_t vl)
{
    (void)ctx;
    (void)val;
    (void)vl;
    return TS_ERR_DB;
}

/* knn_emit (what the kernel uses) and knn (what it falls back to for a
 * module built before ABI 1.2: the same index through a copy of the vtable
 * without knn_emit) give the same hits, with and without a filter; an
 * error from the filter comes back through both. */
START_TEST(knn_emit_matches_knn)
{
    enum { N = 3000, DIM = 16, K = 10 };
    rng r = rng_new(4242);
    float *data = gen_data(&r, N, DIM);
    ndb h;
    db_new(&h, "ngh-emit", 0, NULL, mkopts_p(DIM, "l2", "float32", 8, 60, 0));
    load(&h, data, DIM, 0, N, 1000);
    ts_index_vtab legacy = *h.ix->vt;
    legacy.knn_emit = NULL;
    tsix old = *h.ix;
    old.vt = &legacy;
    tstx *tx = rbegin(&h);
    sel_mod = 10;
    for (int i = 0; i < 40; i++) {
        const float *q = data + (size_t)rbelow(&r, N) * DIM;
        fctx f = { 0, 0 };
        ts_knn_hit a[K], b[K];
        size_t na = 0, nb = 0;
        uint8_t *va = NULL, *vb = NULL;
        int fl = i % 2;
        ck_assert_int_eq(tsix_knn(h.ix, tx, q, DIM, K, 0, fl ? filt : NULL, &f, a, &na, &va), TS_OK);
        ck_assert_int_eq(tsix_knn(&old, tx, q, DIM, K, 0, fl ? filt : NULL, &f, b, &nb, &vb), TS_OK);
        ck_assert_uint_eq(na, K);
        ck_assert_uint_eq(nb, na);
        for (size_t j = 0; j < na; j++) {
            ck_assert_uint_eq(pk_id(a[j].val, a[j].vlen), pk_id(b[j].val, b[j].vlen));
            ck_assert_float_eq(a[j].distance, b[j].distance);
            if (fl) ck_assert(keep_id(pk_id(a[j].val, a[j].vlen)));
        }
        ck_assert_uint_eq(f.bad, 0);
        free(va);
        free(vb);
    }
    ts_knn_hit o[K];
    size_t n;
    uint8_t *v = NULL;
    ck_assert_int_eq(tsix_knn(h.ix, tx, data, DIM, K, 0, filt_err, NULL, o, &n, &v), TS_ERR_DB);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(tsix_knn(&old, tx, data, DIM, K, 0, filt_err, NULL, o, &n, &v), TS_ERR_DB);
    ck_assert_ptr_null(v);
    tstx_rollback(tx);
    free(data);
    db_done(&h);
}
END_TEST

START_TEST(filtered)
{
    uint32_t n = long_mode() ? 50000 : 10000, dim = 48, k = 10;
    rng r = rng_new(8);
    float *data = gen_data(&r, n, dim);
    ndb h;
    db_new(&h, "ngh-filter", 0, "\"cacheBytes\": 134217728", mkopts(dim, "cosine", 0, 100, 0));
    load(&h, data, dim, 0, n, 5000);
    tstx *tx = rbegin(&h);
    float *q = malloc(dim * sizeof *q);
    hit ex[10];
    ts_knn_hit out[10];
    uint32_t mods[] = { 2, 10, 100, 1000, 5000 };
    for (size_t m = 0; m < sizeof mods / sizeof *mods; m++) {
        sel_mod = mods[m];
        uint32_t pass = 0;
        for (uint32_t i = 0; i < n; i++) pass += keep_id(i);
        uint64_t found = 0, want = 0;
        double tq = 0;
        uint32_t nq = 100;
        for (uint32_t i = 0; i < nq; i++) {
            uint32_t b = (uint32_t)rbelow(&r, n);
            for (uint32_t j = 0; j < dim; j++) q[j] = data[(size_t)b * dim + j] + (float)(0.3 * rgauss(&r));
            uint32_t ne = exact_knn(NGH_COSINE, data, n, dim, NULL, keep_id, q, k, ex);
            fctx f = { 0, 0 };
            double t1 = now();
            size_t got = knn(&h, tx, q, dim, k, 0, filt, &f, out);
            tq += now() - t1;
            REQUIRE(got == (pass < k ? pass : k), "1/%u: %zu results, %u pass", sel_mod, got, pass);
            ck_assert_uint_eq(f.bad, 0);
            for (size_t a = 0; a < got; a++) {
                uint32_t id = pk_id(out[a].val, out[a].vlen);
                REQUIRE(keep_id(id), "1/%u: %u does not pass the filter", sel_mod, id);
                for (uint32_t e = 0; e < ne; e++)
                    if (ex[e].id == id) { found++; break; }
            }
            want += ne;
        }
        double rec = (double)found / want;
        if (verbose())
            printf("ngh filtered 1/%u (%u of %u pass): recall@10 %.4f, %.0f q/s\n", sel_mod, pass, n,
                   rec, nq / tq);
        REQUIRE(rec >= (sel_mod >= 100 ? 0.999 : 0.95), "filtered 1/%u: recall %.4f", sel_mod, rec);
    }
    /* a failing filter's error comes back */
    size_t nn;
    free(h.vals);
    ck_assert_int_eq(tsix_knn(h.ix, tx, q, dim, k, 0, filt_err, NULL, out, &nn, &h.vals), TS_ERR_DB);
    tstx_rollback(tx);
    free(q);
    db_done(&h);
    free(data);
}
END_TEST

/* The layer-1 beam of large indexes (ngh_graph_search), forced on a small
 * one: a second object on the same index with upperBeamNodes 1 searches
 * through a beam (ef 32: of 8) where the first walks greedily.  Both find the
 * neighbours; the beam answers some queries differently (so it ran) and
 * not worse overall; filtered searches through it return only passing
 * keys, k of them; vectors find themselves first. */
START_TEST(upper_layer_beam)
{
    const uint32_t dim = 8, n = 12000, nq = 300, k = 10;
    rng r = rng_new(43);
    float *data = gen_data(&r, n, dim);
    ndb h;
    json_t *o = mkopts(dim, "l2", 4, 40, 0);
    json_object_set_new(json_object_get(o, "parameters"), "seed", json_integer(99));
    db_new(&h, "ngh-upper-beam", 0, "\"cacheBytes\": 67108864", o);
    load(&h, data, dim, 0, n, 4000);
    json_t *ob = json_deep_copy(h.opts);
    json_object_set_new(ob, "upperBeamNodes", json_integer(1));
    tsix *greedy = h.ix, *beam = NULL;
    REQUIRE(tsix_open(&h.db->env, h.db->reg, "ngh", ob, h.root, "vec", &beam) == TS_OK, "open: %s", emsg(&h));
    tstx *tx = rbegin(&h);
    hit ex[10];
    ts_knn_hit got[10];
    uint32_t ids[10];
    uint64_t found[2] = { 0, 0 }, want = 0, differ = 0;
    float *q = malloc(dim * sizeof *q);
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t b = (uint32_t)rbelow(&r, n);
        for (uint32_t j = 0; j < dim; j++) q[j] = data[(size_t)b * dim + j] + (float)(0.3 * rgauss(&r));
        uint32_t ne = exact_knn(NGH_L2, data, n, dim, NULL, NULL, q, k, ex);
        want += ne;
        int same = 1;
        for (int w = 0; w < 2; w++) {
            h.ix = w ? beam : greedy;
            size_t ng = knn(&h, tx, q, dim, k, 32, NULL, NULL, got);
            REQUIRE(ng == ne, "query %u: %zu results, want %u", i, ng, ne);
            for (size_t a = 0; a < ng; a++) {
                uint32_t id = pk_id(got[a].val, got[a].vlen);
                if (a) ck_assert(got[a - 1].distance <= got[a].distance);
                double d = exact_dist(NGH_L2, q, data + (size_t)id * dim, dim);
                REQUIRE(fabs(d - got[a].distance) <= 1e-3 * (1 + fabs(d)), "distance of %u", id);
                for (uint32_t e = 0; e < ne; e++)
                    if (ex[e].id == id) { found[w]++; break; }
                if (!w) ids[a] = id;
                else if (ids[a] != id) same = 0;
            }
        }
        differ += !same;
    }
    double rg = (double)found[0] / (double)want, rb = (double)found[1] / (double)want;
    if (verbose()) printf("ngh upper beam: recall@10 at ef 32 greedy %.4f, beam %.4f; %llu of %u answers differ\n",
                          rg, rb, (unsigned long long)differ, nq);
    REQUIRE(rg >= 0.9 && rb >= 0.9, "recall@10 greedy %.4f, beam %.4f", rg, rb);
    REQUIRE(rb >= rg - 0.01, "the beam's recall %.4f below the greedy walk's %.4f", rb, rg);
    REQUIRE(differ > 0, "the beam changed no answer: did it run?");
    /* filtered through the beam: only passing keys, k of them */
    h.ix = beam;
    sel_mod = 10;
    for (uint32_t i = 0; i < 50; i++) {
        uint32_t b = (uint32_t)rbelow(&r, n);
        fctx f = { 0, 0 };
        size_t ng = knn(&h, tx, data + (size_t)b * dim, dim, k, 16, filt, &f, got);
        REQUIRE(ng == k, "filtered query %u: %zu results", i, ng);
        for (size_t a = 0; a < ng; a++) REQUIRE(keep_id(pk_id(got[a].val, got[a].vlen)), "a key the filter drops");
        ck_assert_uint_eq(f.bad, 0);
    }
    int self = 0;
    for (int i = 0; i < 200; i++) {
        uint32_t id = (uint32_t)rbelow(&r, n);
        size_t ng = knn(&h, tx, data + (size_t)id * dim, dim, k, 16, NULL, NULL, got);
        REQUIRE(ng == k, "self query: %zu results", ng);
        if (pk_id(got[0].val, got[0].vlen) == id) self++;
    }
    REQUIRE(self >= 198, "only %d of 200 vectors find themselves first", self);
    tstx_rollback(tx);
    h.ix = greedy;
    tsix_close(beam);
    json_decref(ob);
    free(q);
    db_done(&h);
    free(data);
}
END_TEST

/* Churn: deleting 20% and inserting as many new vectors, round after round,
 * reuses the deleted nodes' ids (and their pages) once they are a quarter
 * of all nodes: the file stops growing, and recall over the live entries
 * holds. */
START_TEST(churn_reuses_space)
{
    uint32_t n = long_mode() ? 20000 : sanitized() ? 2000 : 4000, dim = 32, rounds = long_mode() ? 10 : 6, per = n / 5;
    uint32_t total = n + rounds * per;
    rng r = rng_new(14);
    float *data = gen_data(&r, total, dim);
    uint8_t *live = calloc(total, 1);
    uint32_t *ids = malloc((size_t)n * sizeof *ids); /* the live ids */
    ndb h;
    db_new(&h, "ngh-churn", 0, "\"cacheBytes\": 134217728", mkopts_p(dim, "l2", "int8", 0, 100, 0));
    load(&h, data, dim, 0, n, 2000);
    for (uint32_t i = 0; i < n; i++) {
        live[i] = 1;
        ids[i] = i;
    }
    tstx *tx = rbegin(&h);
    uint64_t p0 = live_pages(tx), pmax = p0;
    tstx_rollback(tx);
    uint32_t next = n;
    for (uint32_t round = 0; round < rounds; round++) {
        tx = wbegin(&h);
        for (uint32_t j = 0; j < per; j++) { /* delete per random live entries */
            uint32_t at = (uint32_t)rbelow(&r, n - j), id = ids[at];
            ids[at] = ids[n - j - 1];
            ids[n - j - 1] = id;
            ck_assert_int_eq(del(&h, tx, data, dim, id), TS_OK);
            live[id] = 0;
        }
        for (uint32_t j = 0; j < per; j++, next++) {
            ck_assert_int_eq(ins(&h, tx, data, dim, next), TS_OK);
            live[next] = 1;
            ids[n - per + j] = next;
        }
        commit(&h, tx);
        tx = rbegin(&h);
        uint64_t pg = live_pages(tx);
        if (pg > pmax) pmax = pg;
        double rec = recall(&h, tx, NGH_L2, data, next, dim, live, 100, 10, 0, &r, NULL);
        if (verbose()) printf("ngh churn round %u: %llu pages (%llu after the first load), recall@10 %.4f\n", round,
                              (unsigned long long)pg, (unsigned long long)p0, rec);
        REQUIRE(rec >= 0.95, "round %u: recall %.4f", round, rec);
        tstx_rollback(tx);
    }
    /* ids are taken over once deleted nodes are a quarter of all: at most a
     * third more nodes than live entries (and the map's pages), not 20% more
     * per round */
    REQUIRE(pmax <= p0 + p0 / 2, "pages grew from %llu to %llu", (unsigned long long)p0, (unsigned long long)pmax);
    free(ids);
    free(live);
    db_done(&h);
    free(data);
}
END_TEST

/* ---- cursors ------------------------------------------------------------------ */

START_TEST(cursor_scan)
{
    uint32_t n = 3000, dim = 16;
    rng r = rng_new(9);
    float *data = gen_data(&r, n, dim);
    ndb h;
    db_new(&h, "ngh-cursor", 0, NULL, mkopts(dim, "innerProduct", 8, 40, 0));
    load(&h, data, dim, 0, n, 1000);
    uint8_t *live = malloc(n);
    memset(live, 1, n);
    tstx *tx = wbegin(&h);
    for (uint32_t i = 0; i < n; i += 3) {
        ck_assert_int_eq(del(&h, tx, data, dim, i), TS_OK);
        live[i] = 0;
    }
    commit(&h, tx);
    tx = rbegin(&h);
    uint8_t *seen = calloc(n, 1);
    for (int dir = 0; dir < 2; dir++) {
        memset(seen, 0, n);
        tsix_cur c;
        ck_assert_int_eq(tsix_cursor(h.ix, tx, &c), TS_OK);
        uint32_t cnt = 0;
        int rc = dir ? tsix_last(&c) : tsix_first(&c);
        for (; rc == TS_OK; rc = dir ? tsix_prev(&c) : tsix_next(&c)) {
            const void *k, *v;
            size_t kl, vl;
            ck_assert_int_eq(tsix_entry(&c, &k, &kl, &v, &vl), TS_OK);
            uint32_t id = pk_id(v, vl);
            REQUIRE(id < n && live[id] && !seen[id], "cursor entry %u", id);
            seen[id] = 1;
            ck_assert_uint_eq(kl, dim * 4);
            REQUIRE(!memcmp(k, data + (size_t)id * dim, kl), "vector of %u", id);
            cnt++;
        }
        ck_assert_int_eq(rc, TS_ERR_NOT_FOUND);
        ck_assert_uint_eq(cnt, n - (n + 2) / 3);
        ck_assert_int_eq(tsix_seek(&c, data, dim * 4, TS_SEEK_GE), TS_ERR_UNSUPPORTED);
        tsix_cursor_close(&c);
    }
    tstx_rollback(tx);
    free(seen);
    free(live);
    db_done(&h);
    free(data);
}
END_TEST

/* ---- formats: key slots (format 2) and indexes written before them (1) ---------- */

/* Id i's primary key: for every 7th id 40 bytes (too long for any key
 * slot, so kept in the map); for the others divisible by 3 two integer
 * components as the kernel encodes them (space, then the key; packed in
 * the slot); else 8 bytes.  fmt_id recovers i and checks every byte. */
static size_t fmt_pk(uint32_t id, uint8_t pk[40])
{
    if (id % 7 && id % 3 == 0) {
        int64_t key = (int64_t)id * 1000003 * (id % 2 ? -1 : 1);
        size_t n = ts_key_int(pk, 40, 0, (int64_t)(id % 5) - 2);
        return ts_key_int(pk, 40, n, key);
    }
    pk_of(id, pk);
    if (id % 7) return 8;
    for (int i = 8; i < 40; i++) pk[i] = (uint8_t)(id * 31 + (uint32_t)i);
    return 40;
}

static uint32_t fmt_id(const void *v, size_t vl)
{
    uint8_t pk[40];
    const uint8_t *b = v;
    uint32_t id;
    if (vl == 18 && b[0] == TS_KEY_INT) {
        uint64_t u = 0;
        for (int i = 10; i < 18; i++) u = u << 8 | b[i];
        int64_t key = (int64_t)(u ^ 0x8000000000000000ull);
        id = (uint32_t)((key < 0 ? -key : key) / 1000003);
    } else {
        REQUIRE(vl >= 8, "a value of %zu bytes", vl);
        id = pk_id(v, 8);
    }
    REQUIRE(fmt_pk(id, pk) == vl && !memcmp(pk, v, vl), "value of %u", id);
    return id;
}

/* A meta page whose key-hash fields (format 2: level at byte 120, split
 * pointer at 124) or array depths were damaged is reported as corruption
 * by every operation, never followed (a level of 20 would have made the
 * next insert allocate gigabytes of bucket pages). */
static void damage_meta(ndb *h, size_t off, uint32_t v)
{
    tstx *tx = wbegin(h);
    tspage *p;
    REQUIRE(tstx_get(tx, h->root, 1, &p) == TS_OK, "get meta: %s", emsg(h));
    memcpy((uint8_t *)tspage_data(p) + off, &v, 4);
    tspage_release(p);
    commit(h, tx);
}

START_TEST(damaged_meta)
{
    uint32_t dim = 32, n = 1500;
    rng r = rng_new(12);
    float *data = gen_data(&r, n + 1, dim);
    struct { size_t off; uint32_t v; } cases[] = {
        { 120, 20 },   /* key-hash level */
        { 124, 5000 }, /* split pointer beyond the buckets */
        { 80, 9 },     /* node array depth */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        ndb h;
        char name[64];
        snprintf(name, sizeof name, "ngh-damaged-%zu", c);
        db_new(&h, name, 0, NULL, mkopts(dim, "l2", 0, 40, 0));
        load(&h, data, dim, 0, n, n);
        tstx *tx = rbegin(&h);
        uint8_t orig[4];
        tspage *p;
        REQUIRE(tstx_get(tx, h.root, 0, &p) == TS_OK, "get meta");
        memcpy(orig, (const uint8_t *)tspage_data(p) + cases[c].off, 4);
        tspage_release(p);
        tstx_rollback(tx);
        damage_meta(&h, cases[c].off, cases[c].v);
        ts_knn_hit out[10];
        size_t got;
        tx = wbegin(&h);
        free(h.vals);
        ck_assert_int_eq(tsix_knn(h.ix, tx, data, dim, 10, 0, NULL, NULL, out, &got, &h.vals), TS_ERR_CORRUPT);
        ck_assert_int_eq(ins(&h, tx, data, dim, n), TS_ERR_CORRUPT);
        ck_assert_int_eq(del(&h, tx, data, dim, 3), TS_ERR_CORRUPT);
        tstx_rollback(tx);
        /* mended, it works again */
        uint32_t v;
        memcpy(&v, orig, 4);
        damage_meta(&h, cases[c].off, v);
        tx = wbegin(&h);
        ck_assert_uint_eq(knn(&h, tx, data, dim, 10, 0, NULL, NULL, out), 10);
        ck_assert_int_eq(ins(&h, tx, data, dim, n), TS_OK);
        ck_assert_int_eq(del(&h, tx, data, dim, 3), TS_OK);
        commit(&h, tx);
        db_done(&h);
    }
    free(data);
}
END_TEST

/* ---- damaged pages: any content the index's pages may hold ---------------------- */

/* Every 7th id passes (a damaged key slot may give any value). */
static int keep_seventh(void *ctx, const void *val, size_t vl)
{
    (void)ctx;
    return vl == 8 && ((const uint8_t *)val)[7] % 7 == 0;
}

static int rc_is(int rc, const int *ok, size_t nok)
{
    for (size_t i = 0; i < nok; i++)
        if (rc == ok[i]) return 1;
    return 0;
}

#define FUZZ_OK(rc, what, ...) do {                                                        \
        int rc_ = (rc);                                                                    \
        REQUIRE(rc_is(rc_, (const int[]){ TS_OK, TS_ERR_CORRUPT, TS_ERR_FORMAT,              \
                                          pg == h->root ? TS_ERR_CONFIG : TS_OK, __VA_ARGS__ },   \
                      4 + sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int)),              \
                "round %d, page %llu: %s gave %d (%s): %s", round, (unsigned long long)pg, \
                what, rc_, ts_strerror(rc_), emsg(h));                                     \
        *ncor += rc_ == TS_ERR_CORRUPT;                                                    \
    } while (0)

/* One round's operations on a damaged index: searches (plain, filtered,
 * ef from k to 200), inserts, removes, a cursor walk both ways, counts.
 * Each gives a result or TS_ERR_CORRUPT (removes may miss, inserts may
 * find the key present; a damaged format number reads as TS_ERR_FORMAT, and
 * on the meta page a damaged dimension or metric that is still a valid one
 * as TS_ERR_CONFIG, options that differ from the index), never a crash, a
 * hang or a sanitizer report. */
static void damaged_ops(ndb *h, int round, uint64_t pg, const float *data, uint32_t n, uint32_t dim, rng *r,
                        int *ncor)
{
    tstx *tx = wbegin(h);
    ts_knn_hit out[20];
    for (int q = 0; q < 4; q++) {
        size_t got = 0;
        uint32_t id = (uint32_t)rbelow(r, n);
        int ef = q == 0 ? 0 : (int)(10 + rbelow(r, 190));
        free(h->vals);
        h->vals = NULL;
        int rc = tsix_knn(h->ix, tx, data + (size_t)id * dim, dim, q == 3 ? 20 : 10, ef,
                          q == 2 ? keep_seventh : NULL, NULL, out, &got, &h->vals);
        FUZZ_OK(rc, "a search", TS_OK);
        if (!rc) REQUIRE(got <= 20, "round %d: %zu hits", round, got);
    }
    uint64_t cnt;
    FUZZ_OK(tsix_count(h->ix, tx, &cnt), "count", TS_OK);
    FUZZ_OK(ins(h, tx, data, dim, n + (uint32_t)rbelow(r, n)), "an insert", TS_ERR_UNIQUE);
    FUZZ_OK(del(h, tx, data, dim, (uint32_t)rbelow(r, n)), "a remove", TS_ERR_NOT_FOUND);
    FUZZ_OK(ins(h, tx, data, dim, n + (uint32_t)rbelow(r, n)), "an insert", TS_ERR_UNIQUE);
    for (int dir = 0; dir < 2; dir++) {
        tsix_cur c;
        int rc = tsix_cursor(h->ix, tx, &c);
        FUZZ_OK(rc, "a cursor", TS_OK);
        if (rc) continue;
        uint32_t steps = 0;
        for (rc = dir ? tsix_last(&c) : tsix_first(&c); rc == TS_OK && steps < 4 * n;
             rc = dir ? tsix_prev(&c) : tsix_next(&c), steps++) {
            const void *k, *v;
            size_t kl, vl;
            rc = tsix_entry(&c, &k, &kl, &v, &vl);
            if (rc) break;
        }
        FUZZ_OK(rc, "a cursor walk", TS_ERR_NOT_FOUND);
        REQUIRE(steps < 4 * n, "round %d: a cursor walk of %u steps over %u entries", round, steps, n);
        tsix_cursor_close(&c);
    }
    tstx_rollback(tx);
}

#define NQ_MENDED 8

static void damaged_case(const char *name, json_t *opts, uint32_t n, uint32_t dim, int rounds)
{
    rng r = rng_new(0xda3a9e + dim + envu("TS_TEST_SEED", 0));
    float *data = gen_data(&r, 2 * n, dim);
    ndb hh, *h = &hh;
    db_new(h, name, 0, NULL, opts);
    load(h, data, dim, 0, n, 400);
    /* churn, so deleted nodes and reused ids are on the pages too */
    tstx *tx = wbegin(h);
    for (uint32_t i = 0; i < n; i += 9) ck_assert_int_eq(del(h, tx, data, dim, i), TS_OK);
    for (uint32_t i = 0; i < n; i += 18) ck_assert_int_eq(ins(h, tx, data, dim, i), TS_OK);
    commit(h, tx);
    tx = rbegin(h);
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    tstx_rollback(tx);
    /* The index's pages are those from its meta page on; a free page would
     * be the kernel's, not the index's, to read. */
    REQUIRE(nfree == 0, "%llu free pages after the build", (unsigned long long)nfree);
    /* the undamaged index's answers, which every mended one must give again */
    uint32_t want[NQ_MENDED][10];
    tx = rbegin(h);
    for (uint32_t q = 0; q < NQ_MENDED; q++) {
        ts_knn_hit o[10];
        REQUIRE(knn(h, tx, data + (size_t)(q * 97 % n) * dim, dim, 10, 64, NULL, NULL, o) == 10, "hits");
        for (int i = 0; i < 10; i++) want[q][i] = pk_id(o[i].val, o[i].vlen);
    }
    tstx_rollback(tx);
    uint32_t ps = 0;
    int corrupt = 0;
    for (int round = 0; round < rounds; round++) {
        uint64_t pg = h->root + rbelow(&r, pages - h->root);
        tstx *w = wbegin(h);
        tspage *p;
        REQUIRE(tstx_get(w, pg, 1, &p) == TS_OK, "get %llu: %s", (unsigned long long)pg, emsg(h));
        ps = tstx_usable(w);
        uint8_t *d = tspage_data(p), *orig = malloc(ps);
        memcpy(orig, d, ps);
        /* 1-8 damages: a random byte, or an aligned word set to a value
         * that passes for a count, an id or a page number */
        int nd = 1 + (int)rbelow(&r, 8);
        for (int i = 0; i < nd; i++) {
            uint32_t off = (uint32_t)rbelow(&r, ps - 4) & ~3u;
            uint32_t vals[] = { 0, 1, 2, 0xFFFFFFFFu, 0x7FFFFFFFu, 0x80000000u, n, n + 1, (uint32_t)pages,
                                (uint32_t)pages + 1, (uint32_t)rnext(&r), 32, 33, 64 };
            switch (rbelow(&r, 3)) {
            case 0: d[rbelow(&r, ps)] = (uint8_t)rnext(&r); break;
            case 1: d[rbelow(&r, ps)] ^= (uint8_t)(1u << rbelow(&r, 8)); break;
            default: {
                uint32_t v = vals[rbelow(&r, sizeof vals / sizeof *vals)];
                memcpy(d + off, &v, 4);
            }
            }
        }
        tspage_release(p);
        commit(h, w);
        /* a fresh handle: nothing the index kept from before the damage */
        tsix_close(h->ix);
        h->ix = NULL;
        int rc = tsix_open(&h->db->env, h->db->reg, "ngh", h->opts, h->root, "vec", &h->ix), nc = 0, *ncor = &nc;
        FUZZ_OK(rc, "open", TS_OK);
        if (!rc) damaged_ops(h, round, pg, data, n, dim, &r, &nc);
        corrupt += nc > 0;
        /* mended: the same bytes back, and the index answers as before */
        if (h->ix) tsix_close(h->ix);
        w = wbegin(h);
        REQUIRE(tstx_get(w, pg, 1, &p) == TS_OK, "get %llu: %s", (unsigned long long)pg, emsg(h));
        memcpy(tspage_data(p), orig, ps);
        tspage_release(p);
        commit(h, w);
        free(orig);
        rc = tsix_open(&h->db->env, h->db->reg, "ngh", h->opts, h->root, "vec", &h->ix);
        REQUIRE(rc == TS_OK, "reopen after mending: %s", emsg(h));
        if (round % 16 == 15 || round == rounds - 1) {
            tx = rbegin(h);
            ts_knn_hit o[10];
            for (uint32_t q = 0; q < NQ_MENDED; q++) {
                REQUIRE(knn(h, tx, data + (size_t)(q * 97 % n) * dim, dim, 10, 64, NULL, NULL, o) == 10, "hits");
                for (int i = 0; i < 10; i++)
                    REQUIRE(pk_id(o[i].val, o[i].vlen) == want[q][i], "round %d: after mending, query %u's hit %d "
                            "is %u, not %u", round, q, i, pk_id(o[i].val, o[i].vlen), want[q][i]);
            }
            uint64_t c;
            ck_assert_int_eq(tsix_count(h->ix, tx, &c), TS_OK);
            ck_assert_uint_eq(c, n - (n + 8) / 9 + (n + 17) / 18);
            tstx_rollback(tx);
        }
    }
    if (verbose())
        printf("%s: %d rounds over %llu pages, %d ended with a corruption error\n", name, rounds,
               (unsigned long long)(pages - h->root), corrupt);
    db_done(h);
    free(data);
}

START_TEST(damaged_pages)
{
    int rounds = long_mode() ? 3000 : sanitized() ? 150 : 400;
    damaged_case("ngh-dmg-f32", mkopts(24, "l2", 6, 40, 0), 1200, 24, rounds);
    damaged_case("ngh-dmg-i8", mkopts_p(24, "cosine", "int8", 6, 40, 0), 1200, 24, rounds);
    json_t *o = mkopts(200, "innerProduct", 6, 40, 0);
    json_object_set_new(json_object_get(o, "parameters"), "splitRecords", json_true());
    damaged_case("ngh-dmg-split", o, 600, 200, rounds);
}
END_TEST

/* Searches over pages that come from a slow device hint the node pages
 * they will get next (ts_page_api.prefetch, on to the backend), and find
 * the same answers as with fast reads.  The faulty backend
 * plays the slow device (read_delay_us) and counts the hints. */
START_TEST(cold_prefetch)
{
    uint32_t n = 3000, dim = 24, nq = 20;
    rng r = rng_new(31);
    float *data = gen_data(&r, n, dim);
    ndb h;
    db_new(&h, "ngh-coldpf", 1, NULL, mkopts(dim, "l2", 8, 40, 0));
    load(&h, data, dim, 0, n, 1000);
    uint32_t *want = malloc((size_t)nq * 10 * sizeof *want);
    ts_knn_hit out[10];
    tstx *tx = rbegin(&h);
    for (uint32_t q = 0; q < nq; q++) {
        REQUIRE(knn(&h, tx, data + (size_t)(q * 131 % n) * dim, dim, 10, 64, NULL, NULL, out) == 10, "hits");
        for (int i = 0; i < 10; i++) want[q * 10 + i] = pk_id(out[i].val, out[i].vlen);
    }
    tstx_rollback(tx);
    ck_assert_int_eq(db_close(&h), TS_OK);
    for (int slow = 0; slow < 2; slow++) {
        db_open(&h, NULL);   /* nothing cached */
        int64_t before = 0, after = 0;
        ck_assert_int_eq(ts_storage_control(h.db, "prefetches", 0, &before), TS_OK);
        ck_assert_int_eq(ts_storage_control(h.db, "read_delay_us", slow ? 40 : 0, NULL), TS_OK);
        tx = rbegin(&h);
        for (uint32_t q = 0; q < nq; q++) {
            REQUIRE(knn(&h, tx, data + (size_t)(q * 131 % n) * dim, dim, 10, 64, NULL, NULL, out) == 10, "hits");
            for (int i = 0; i < 10; i++)
                REQUIRE(pk_id(out[i].val, out[i].vlen) == want[q * 10 + i], "%s reads: query %u, hit %d differs",
                        slow ? "slow" : "fast", q, i);
        }
        tstx_rollback(tx);
        ck_assert_int_eq(ts_storage_control(h.db, "prefetches", 0, &after), TS_OK);
        ck_assert_int_eq(ts_storage_control(h.db, "read_delay_us", 0, NULL), TS_OK);
        if (verbose()) printf("cold_prefetch: %s reads, %lld hints\n", slow ? "slow" : "fast", (long long)(after - before));
        /* (fast reads make few or none: a read delayed by the scheduler
         * opens the window too, so that is not asserted) */
        if (slow) ck_assert_msg(after - before > 10, "slow reads: %lld prefetch hints", (long long)(after - before));
        ck_assert_int_eq(db_close(&h), TS_OK);
    }
    free(want);
    db_done(&h);
    free(data);
}
END_TEST

static int only_one(void *ctx, const void *val, size_t vl)
{
    return fmt_id(val, vl) == *(const uint32_t *)ctx;
}

/* Each format and each place of the key slots (dim 32: in the records; 40:
 * 4 bytes a record left over, so pages of their own) with short and long keys: inserts, removes by (key,
 * value), id reuse, self queries, a cursor walk both ways, a filtered exact
 * scan, and a reopen; format 2 takes fewer pages than format 1. */
START_TEST(formats)
{
    uint32_t n = sanitized() ? 1200 : 3000, dims[2] = { 32, 40 };
    for (int di = 0; di < 2; di++) {
        uint32_t dim = dims[di];
        rng r = rng_new(40 + (uint64_t)di);
        float *data = gen_data(&r, n + n / 4, dim);
        uint64_t pages[2];
        for (uint32_t fmt = 1; fmt <= 2; fmt++) {
            json_t *o = mkopts(dim, "l2", 0, 60, 0);
            json_object_set_new(o, "format", json_integer(fmt));
            ndb h;
            char name[64];
            snprintf(name, sizeof name, "ngh-fmt-%u-%u", dim, fmt);
            db_new(&h, name, 0, "\"cacheBytes\": 134217728", o);
            uint8_t *live = calloc(n + n / 4, 1), pk[40];
            tstx *tx = wbegin(&h);
            for (uint32_t i = 0; i < n; i++, live[i - 1] = 1)
                REQUIRE(tsix_insert(h.ix, tx, data + (size_t)i * dim, dim * 4, pk, fmt_pk(i, pk), 0) == TS_OK,
                        "insert %u: %s", i, emsg(&h));
            commit(&h, tx);
            tx = rbegin(&h);
            pages[fmt - 1] = live_pages(tx);
            tstx_rollback(tx);
            /* remove every 5th (ids reused by the inserts after it) */
            tx = wbegin(&h);
            for (uint32_t i = 0; i < n; i += 5) {
                size_t pl = fmt_pk(i, pk);
                pk[pl - 1] ^= 1; /* same vector, another value: not there */
                ck_assert_int_eq(tsix_remove(h.ix, tx, data + (size_t)i * dim, dim * 4, pk, pl), TS_ERR_NOT_FOUND);
                ck_assert_int_eq(tsix_remove(h.ix, tx, data + (size_t)i * dim, dim * 4, pk, fmt_pk(i, pk)), TS_OK);
                live[i] = 0;
            }
            for (uint32_t i = n; i < n + n / 4; i++, live[i - 1] = 1)
                ck_assert_int_eq(tsix_insert(h.ix, tx, data + (size_t)i * dim, dim * 4, pk, fmt_pk(i, pk), 0), TS_OK);
            ck_assert_int_eq(tsix_insert(h.ix, tx, data + 7 * dim, dim * 4, pk, fmt_pk(7, pk), 0), TS_ERR_UNIQUE);
            commit(&h, tx);
            REQUIRE(db_close(&h) == TS_OK, "close");
            db_open(&h, "\"cacheBytes\": 134217728");
            tx = rbegin(&h);
            ts_knn_hit out[10];
            for (uint32_t i = 0; i < n + n / 4; i += 13) {
                size_t got = knn(&h, tx, data + (size_t)i * dim, dim, 10, 100, NULL, NULL, out);
                ck_assert_uint_eq(got, 10);
                uint32_t first = fmt_id(out[0].val, out[0].vlen);
                if (live[i]) REQUIRE(first == i && out[0].distance < 1e-4f, "self query %u: %u", i, first);
                for (size_t a = 0; a < got; a++)
                    REQUIRE(live[fmt_id(out[a].val, out[a].vlen)], "a deleted entry returned");
            }
            /* a filter only one entry passes (a long key, kept in the map):
             * the search gives up and the exact scan finds it */
            uint32_t only = 7 * 61, nlive = 0;
            ck_assert(live[only]);
            size_t got = knn(&h, tx, data, dim, 10, 0, only_one, &only, out);
            ck_assert_uint_eq(got, 1);
            ck_assert_uint_eq(fmt_id(out[0].val, out[0].vlen), only);
            for (uint32_t i = 0; i < n + n / 4; i++) nlive += live[i];
            for (int dir = 0; dir < 2; dir++) {
                tsix_cur c;
                ck_assert_int_eq(tsix_cursor(h.ix, tx, &c), TS_OK);
                uint32_t cnt = 0;
                int rc = dir ? tsix_last(&c) : tsix_first(&c);
                uint8_t *seen = calloc(n + n / 4, 1);
                for (; rc == TS_OK; rc = dir ? tsix_prev(&c) : tsix_next(&c), cnt++) {
                    const void *k, *v;
                    size_t kl, vl;
                    ck_assert_int_eq(tsix_entry(&c, &k, &kl, &v, &vl), TS_OK);
                    uint32_t id = fmt_id(v, vl);
                    REQUIRE(live[id] && !seen[id], "cursor entry %u", id);
                    REQUIRE(kl == dim * 4 && !memcmp(k, data + (size_t)id * dim, kl), "vector of %u", id);
                    seen[id] = 1;
                }
                ck_assert_int_eq(rc, TS_ERR_NOT_FOUND);
                ck_assert_uint_eq(cnt, nlive);
                free(seen);
                tsix_cursor_close(&c);
            }
            tstx_rollback(tx);
            /* remove everything left: every (key, value) found once */
            tx = wbegin(&h);
            for (uint32_t i = 0; i < n + n / 4; i++)
                ck_assert_int_eq(tsix_remove(h.ix, tx, data + (size_t)i * dim, dim * 4, pk, fmt_pk(i, pk)),
                                 live[i] ? TS_OK : TS_ERR_NOT_FOUND);
            ck_assert_uint_eq(knn(&h, tx, data, dim, 10, 0, NULL, NULL, out), 0);
            commit(&h, tx);
            free(live);
            db_done(&h);
        }
        if (verbose()) printf("ngh %u-d: %llu pages in format 1, %llu in format 2\n", dim,
                              (unsigned long long)pages[0], (unsigned long long)pages[1]);
        REQUIRE(pages[1] < pages[0], "%u-d: format 2 %llu pages, format 1 %llu", dim,
                (unsigned long long)pages[1], (unsigned long long)pages[0]);
        free(data);
    }
    /* packed integer keys at the extremes come back byte for byte; keys
     * that only look like integer keys are kept as they are */
    ndb h;
    db_new(&h, "ngh-fmt-pack", 0, NULL, mkopts(32, "l2", 0, 0, 0));
    int64_t ext[] = { INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX, 1ll << 35 };
    size_t ne = sizeof ext / sizeof *ext;
    uint8_t keys[10][27];
    size_t klen[10];
    float vec[10][32];
    tstx *tx = wbegin(&h);
    for (size_t i = 0; i < ne + 2; i++) {
        /* a small space and an extreme key: 1 + 10 packed bytes, the most a
         * 32-d record's 12-byte slot holds */
        size_t kl = ts_key_int(keys[i], 27, 0, (int64_t)(i % 3) - 1);
        kl = ts_key_int(keys[i], 27, kl, ext[i % ne]);
        if (i == ne) keys[i][9] = 0x21;            /* not an integer tag */
        else if (i == ne + 1) kl = 17;             /* cut short */
        klen[i] = kl;
        for (int j = 0; j < 32; j++) vec[i][j] = (float)(i * 32 + (size_t)j);
        ck_assert_int_eq(tsix_insert(h.ix, tx, vec[i], sizeof vec[i], keys[i], kl, 0), TS_OK);
    }
    for (size_t i = 0; i < ne + 2; i++) {
        ts_knn_hit out[1];
        ck_assert_uint_eq(knn(&h, tx, vec[i], 32, 1, 0, NULL, NULL, out), 1);
        REQUIRE(out[0].vlen == klen[i] && !memcmp(out[0].val, keys[i], klen[i]), "key %zu", i);
        ck_assert_int_eq(tsix_remove(h.ix, tx, vec[i], sizeof vec[i], keys[i], klen[i]), TS_OK);
    }
    /* one key under 60 vectors: one key-hash chain of 60, unlinked from
     * its middle, its ends and its head in a shuffled order */
    float many[60][32];
    uint32_t order[60];
    rng r = rng_new(77);
    for (uint32_t i = 0; i < 60; i++) {
        order[i] = i;
        for (int j = 0; j < 32; j++) many[i][j] = (float)rgauss(&r);
        ck_assert_int_eq(tsix_insert(h.ix, tx, many[i], sizeof many[i], keys[2], klen[2], 0), TS_OK);
    }
    ck_assert_int_eq(tsix_insert(h.ix, tx, many[9], sizeof many[9], keys[2], klen[2], 0), TS_ERR_UNIQUE);
    for (uint32_t i = 59; i > 0; i--) {
        uint32_t j = (uint32_t)rbelow(&r, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint32_t i = 0; i < 60; i++) {
        uint32_t v = order[i];
        ck_assert_int_eq(tsix_remove(h.ix, tx, many[v], sizeof many[v], keys[2], klen[2]), TS_OK);
        ck_assert_int_eq(tsix_remove(h.ix, tx, many[v], sizeof many[v], keys[2], klen[2]), TS_ERR_NOT_FOUND);
        if (i + 1 < 60) {
            ts_knn_hit out[1];
            uint32_t w = order[i + 1];
            ck_assert_uint_eq(knn(&h, tx, many[w], 32, 1, 0, NULL, NULL, out), 1);
            ck_assert_float_eq_tol(out[0].distance, 0, 1e-5);
        }
    }
    commit(&h, tx);
    db_done(&h);
}
END_TEST

/* ---- persistence ------------------------------------------------------------- */

START_TEST(reopen_lazily)
{
    uint32_t n = long_mode() ? 100000 : 10000, dim = 64, k = 10;
    rng r = rng_new(10);
    float *data = gen_data(&r, n, dim);
    ndb h;
    db_new(&h, "ngh-reopen", 0, "\"cacheBytes\": 134217728", mkopts(dim, "l2", 0, 100, 0));
    load(&h, data, dim, 0, n, 5000);
    uint32_t nq = 20;
    ts_knn_hit out[10];
    uint32_t *before = malloc((size_t)nq * k * sizeof *before);
    float *q = malloc((size_t)nq * dim * sizeof *q);
    for (uint32_t i = 0; i < nq * dim; i++) q[i] = data[(size_t)rbelow(&r, n) * dim + i % dim];
    tstx *tx = rbegin(&h);
    uint64_t pages = live_pages(tx);
    for (uint32_t i = 0; i < nq; i++) {
        ck_assert_uint_eq(knn(&h, tx, q + (size_t)i * dim, dim, k, 0, NULL, NULL, out), k);
        for (uint32_t a = 0; a < k; a++) before[i * k + a] = pk_id(out[a].val, out[a].vlen);
    }
    tstx_rollback(tx);
    ck_assert_int_eq(db_close(&h), TS_OK);
    double t0 = now();
    db_open(&h, "\"cacheBytes\": 134217728");
    tx = rbegin(&h);
    /* opening read nothing (tsix_open has no transaction); the first query
     * reads what it visits: with a narrow beam, a small part of the index */
    uint64_t t_before = tstx_touched(tx);
    ck_assert_uint_eq(knn(&h, tx, q, dim, 1, 8, NULL, NULL, out), 1);
    uint64_t touched = tstx_touched(tx) - t_before;
    double first = now() - t0;
    t_before = tstx_touched(tx);
    ck_assert_uint_eq(knn(&h, tx, q + dim, dim, k, 0, NULL, NULL, out), k);
    uint64_t touched64 = tstx_touched(tx) - t_before;
    if (verbose())
        printf("ngh: reopen + first query %.2f ms; page reads of a query: %llu (ef 8), %llu (ef 64) "
               "of %llu pages\n", first * 1e3, (unsigned long long)touched,
               (unsigned long long)touched64, (unsigned long long)pages);
    /* no load on first use: the first query reads a small part of the
     * index; later ones read less (the read cache holds what earlier
     * queries of this generation copied) */
    uint64_t later = 0;
    for (uint32_t i = 2; i < 7; i++) {
        t_before = tstx_touched(tx);
        ck_assert_uint_eq(knn(&h, tx, q + (size_t)i * dim, dim, 1, 8, NULL, NULL, out), 1);
        later += tstx_touched(tx) - t_before;
    }
    later /= 5;
    if (verbose()) printf("ngh: later queries (ef 8) read %llu pages each\n", (unsigned long long)later);
    REQUIRE(touched * 3 < pages && later <= touched,
            "first query after reopen touched %llu of %llu pages (later ones %llu)",
            (unsigned long long)touched, (unsigned long long)pages, (unsigned long long)later);
    for (uint32_t i = 0; i < nq; i++) {
        ck_assert_uint_eq(knn(&h, tx, q + (size_t)i * dim, dim, k, 0, NULL, NULL, out), k);
        for (uint32_t a = 0; a < k; a++)
            REQUIRE(before[i * k + a] == pk_id(out[a].val, out[a].vlen), "query %u differs after reopen", i);
    }
    tstx_rollback(tx);
    /* drop gives every page back */
    tx = wbegin(&h);
    uint64_t base = live_pages(tx);
    ck_assert_int_eq(tsix_drop(h.ix, tx), TS_OK);
    uint64_t after = live_pages(tx);
    if (verbose()) printf("ngh: drop freed %llu pages\n", (unsigned long long)(base - after));
    /* what is left: the kernel's own pages (meta, catalog) */
    REQUIRE(after <= 4, "%llu pages left after drop", (unsigned long long)after);
    tstx_root_set(tx, ROOT_SLOT, 0);
    commit(&h, tx);
    free(before);
    free(q);
    db_done(&h);
    free(data);
}
END_TEST

/* ---- power loss ------------------------------------------------------------------ */

static int only_id(void *ctx, const void *val, size_t vl)
{
    return pk_id(val, vl) == *(const uint32_t *)ctx;
}

/* The index holds exactly the ids with live[id]: the cursor lists them and
 * each is found by its own vector. */
static int check_state(ndb *h, tstx *tx, const float *data, uint32_t n, uint32_t dim,
                       const uint8_t *live, uint32_t miss_pct, char *why, size_t wl)
{
    uint8_t *seen = calloc(n, 1);
    tsix_cur c;
    int ok = 1;
    REQUIRE(tsix_cursor(h->ix, tx, &c) == TS_OK, "cursor: %s", emsg(h));
    int rc;
    for (rc = tsix_first(&c); rc == TS_OK && ok; rc = tsix_next(&c)) {
        const void *k, *v;
        size_t kl, vl;
        REQUIRE(tsix_entry(&c, &k, &kl, &v, &vl) == TS_OK, "entry");
        uint32_t id = pk_id(v, vl);
        if (id >= n || !live[id] || seen[id]) { snprintf(why, wl, "unexpected entry %u", id); ok = 0; }
        else if (memcmp(k, data + (size_t)id * dim, kl)) { snprintf(why, wl, "vector of %u", id); ok = 0; }
        else seen[id] = 1;
    }
    tsix_cursor_close(&c);
    REQUIRE(!ok || rc == TS_ERR_NOT_FOUND, "scan: %d %s", rc, emsg(h));
    ts_knn_hit out[5];
    uint32_t self = 0, nlive = 0;
    for (uint32_t i = 0; i < n && ok; i++) {
        if (live[i] && !seen[i]) { snprintf(why, wl, "entry %u missing", i); ok = 0; break; }
        nlive += live[i];
        /* a filter keeping only i: found exactly (by the exact scan) when live */
        uint32_t want = i;
        size_t got = knn(h, tx, data + (size_t)i * dim, dim, 5, 0, only_id, &want, out);
        if (got != live[i] || (got && (pk_id(out[0].val, out[0].vlen) != i || out[0].distance > 1e-5f))) {
            snprintf(why, wl, "filtered query for %u: %zu results (live %d)", i, got, live[i]);
            ok = 0;
            break;
        }
        /* and through the graph: only live entries, the vector itself first */
        got = knn(h, tx, data + (size_t)i * dim, dim, 5, 100, NULL, NULL, out);
        for (size_t a = 0; a < got; a++) {
            uint32_t id = pk_id(out[a].val, out[a].vlen);
            if (id >= n || !live[id]) { snprintf(why, wl, "query %u returned dead %u", i, id); ok = 0; }
        }
        if (live[i] && got && out[0].distance <= 1e-5f) self++;
    }
    /* graph search finds (nearly) every live vector; HNSW does not promise all */
    if (ok && self < nlive - nlive * miss_pct / 100) {
        snprintf(why, wl, "only %u of %u live vectors found by their own vector", self, nlive);
        ok = 0;
    }
    free(seen);
    return ok;
}

static void crash_case(const char *prec, uint32_t n, uint32_t dim, int rounds, uint32_t miss_pct, int split)
{
    rng r = rng_new(11);
    float *data = gen_data(&r, n, dim);
    ndb h;
    json_t *opts = mkopts_p(dim, "l2", prec, dim > 64 ? 16 : 8, 40, 20);
    if (split) json_object_set_new(json_object_get(opts, "parameters"), "splitRecords", json_true());
    db_new(&h, "ngh-crash", 1, "\"cacheBytes\": 262144", opts);
    uint8_t *acked = calloc(n, 1), *cur = calloc(n, 1), *inflight = calloc(n, 1);
    int crashes = 0;
    char why[256], why2[256];
    for (int round = 0; round < rounds; round++) {
        int armed = round % 4 != 3;
        if (armed)
            ck_assert_int_eq(ts_storage_control(h.db, "crash_at", 1 + (int64_t)rbelow(&r, 40), NULL), TS_OK);
        int failed_commit = 0, dead = 0;
        for (int t = 0; t < 10 && !dead; t++) {
            tstx *tx;
            if (tstx_begin(h.db->pg, 1, &tx)) { dead = 1; break; }
            memcpy(cur, acked, n);
            int nops = 1 + (int)rbelow(&r, rbelow(&r, 4) ? 30 : 400), rc = TS_OK;
            for (int i = 0; i < nops && !rc; i++) {
                uint32_t id = (uint32_t)rbelow(&r, n);
                if (!cur[id]) {
                    rc = ins(&h, tx, data, dim, id);
                    if (!rc) cur[id] = 1;
                } else if (rbelow(&r, 3) == 0) {
                    rc = del(&h, tx, data, dim, id);
                    if (!rc) cur[id] = 0;
                }
                if (rc && rc != TS_ERR_IO && rc != TS_ERR_READONLY)
                    ck_abort_msg("round %d: op on %u: %d %s", round, id, rc, emsg(&h));
            }
            if (rc) {
                tstx_rollback(tx);
                dead = 1;
                break;
            }
            memcpy(inflight, cur, n);
            if (tstx_commit(tx)) {
                failed_commit = 1;
                dead = 1;
            } else {
                memcpy(acked, cur, n);
            }
        }
        if (!dead) {
            ck_assert_int_eq(ts_storage_control(h.db, "crash_at", 0, NULL), TS_OK);
            continue;
        }
        crashes++;
        int64_t crashed = 0;
        ts_storage_control(h.db, "crashed", 0, &crashed);
        REQUIRE(crashed, "round %d: a write failed without a crash: %s", round, emsg(&h));
        db_close(&h);
        db_open(&h, NULL);
        REQUIRE(h.ix, "index root lost");
        tstx *tx = rbegin(&h);
        int ok = check_state(&h, tx, data, n, dim, acked, miss_pct, why, sizeof why);
        if (!ok && failed_commit && check_state(&h, tx, data, n, dim, inflight, miss_pct, why2, sizeof why2)) {
            memcpy(acked, inflight, n);
            ok = 1;
        }
        tstx_rollback(tx);
        REQUIRE(ok, "round %d after power loss: %s", round, why);
    }
    if (verbose()) printf("ngh %s %u-d: %d simulated power losses, index checked after each\n", prec, dim, crashes);
    ck_assert_int_gt(crashes, rounds / 3);
    free(acked);
    free(cur);
    free(inflight);
    db_done(&h);
    free(data);
}

START_TEST(crash_recovery) { crash_case("float32", 1500, 16, long_mode() ? 200 : 30, 1, 0); }
END_TEST
START_TEST(crash_recovery_i8) { crash_case("int8", 1500, 16, long_mode() ? 100 : 18, 1, 0); }
END_TEST
/* split records (format 3, splitRecords): a vector's head and tail on two
 * pages (384-d, M 16: three records and ten tails a page).  Self-searches
 * after the deletes miss 0.5-0.7% of the live vectors at 256-d and 384-d
 * with either layout (2-3% with M 8), at most 1% in a round: 3% may. */
START_TEST(crash_recovery_split) { crash_case("float32", 1000, 384, long_mode() ? 60 : 12, 3, 1); }
END_TEST

/* Rolled-back write transactions and the write cache: a rollback leaves
 * the index as committed, even when the next transaction makes as many
 * changes (the same generation numbers) with other vectors. */
START_TEST(rollback_then_write)
{
    uint32_t n = 3000, dim = 16, base = 1000, k = 300;
    rng r = rng_new(15);
    float *data = gen_data(&r, n, dim);
    uint8_t *live = calloc(n, 1);
    ndb h;
    db_new(&h, "ngh-rollback", 0, NULL, mkopts_p(dim, "l2", "int8", 8, 40, 20));
    load(&h, data, dim, 0, base, 500);
    memset(live, 1, base);
    for (int round = 0; round < 3; round++) {
        uint32_t a = base + (uint32_t)round * 2 * k, b = a + k;
        /* k inserts and k/3 deletes, rolled back */
        tstx *tx = wbegin(&h);
        for (uint32_t i = a; i < a + k; i++) ck_assert_int_eq(ins(&h, tx, data, dim, i), TS_OK);
        for (uint32_t i = 0; i < base; i += 3)
            if (live[i]) ck_assert_int_eq(del(&h, tx, data, dim, i), TS_OK);
        tstx_rollback(tx);
        /* as many changes, other vectors, committed */
        tx = wbegin(&h);
        for (uint32_t i = b; i < b + k; i++) {
            ck_assert_int_eq(ins(&h, tx, data, dim, i), TS_OK);
            live[i] = 1;
        }
        for (uint32_t i = 1 + (uint32_t)round; i < base; i += 3)
            if (live[i]) {
                ck_assert_int_eq(del(&h, tx, data, dim, i), TS_OK);
                live[i] = 0;
            }
        commit(&h, tx);
        char why[256];
        tx = rbegin(&h);
        int ok = check_state(&h, tx, data, n, dim, live, 1, why, sizeof why);
        tstx_rollback(tx);
        REQUIRE(ok, "round %d: %s", round, why);
    }
    free(live);
    db_done(&h);
    free(data);
}
END_TEST

/* Searches right after a commit take the write cache's copies as the read
 * cache (one set of copies instead of two).  What they return must equal
 * what the same queries return from the pages alone (a write transaction
 * uses neither cache) and, after a reopen, from a cold index: through
 * inserts, deletes, a reader kept open across the next commit (its cache's
 * taken copies must not be reused by the next writer) and rolled-back
 * writers (whose write cache is ahead of what readers see: not taken). */
static void queries_in(ndb *h, tstx *tx, const float *q, uint32_t nq, uint32_t dim, uint32_t k, uint32_t *ids,
                       float *ds)
{
    ts_knn_hit out[16];
    for (uint32_t i = 0; i < nq; i++) {
        size_t got = knn(h, tx, q + (size_t)i * dim, dim, k, 40, NULL, NULL, out);
        REQUIRE(got == k, "query %u: %zu results", i, got);
        for (uint32_t a = 0; a < k; a++) {
            ids[i * k + a] = pk_id(out[a].val, out[a].vlen);
            ds[i * k + a] = out[a].distance;
        }
    }
}

static void same_answers(const uint32_t *ids, const float *ds, const uint32_t *ids2, const float *ds2, uint32_t n,
                         const char *what, uint32_t round)
{
    for (uint32_t i = 0; i < n; i++)
        REQUIRE(ids[i] == ids2[i] && ds[i] == ds2[i], "round %u, %s: result %u is %u (%g), want %u (%g)", round,
                what, i, ids2[i], ds2[i], ids[i], ds[i]);
}

/* the answers from the pages alone: a write transaction, rolled back */
static void uncached(ndb *h, const float *q, uint32_t nq, uint32_t dim, uint32_t k, uint32_t *ids, float *ds)
{
    tstx *tx = wbegin(h);
    queries_in(h, tx, q, nq, dim, k, ids, ds);
    tstx_rollback(tx);
}

static void change(ndb *h, rng *r, const float *data, uint32_t dim, uint8_t *live, uint32_t from, uint32_t to,
                   uint32_t del_below, int keep)
{
    tstx *tx = wbegin(h);
    for (uint32_t i = from; i < to; i++) {
        ck_assert_int_eq(ins(h, tx, data, dim, i), TS_OK);
        if (keep) live[i] = 1;
    }
    for (uint32_t i = 0; i < del_below; i += 5)
        if (live[i] && rbelow(r, 3) == 0) {
            ck_assert_int_eq(del(h, tx, data, dim, i), TS_OK);
            if (keep) live[i] = 0;
        }
    if (keep) commit(h, tx);
    else tstx_rollback(tx);
}

/* check_state in a read transaction of its own, failing the test */
static void require_state(ndb *h, const float *data, uint32_t n, uint32_t dim, const uint8_t *live, const char *when)
{
    char why[256];
    tstx *tx = rbegin(h);
    int ok = check_state(h, tx, data, n, dim, live, 1, why, sizeof why);
    tstx_rollback(tx);
    REQUIRE(ok, "%s: %s", when, why);
}

/* two sets of answers (ids and distances) to compare */
typedef struct answers { uint32_t *ids, *ids2; float *ds, *ds2; } answers;

static answers answers_new(uint32_t nr)
{
    answers a = { malloc(nr * sizeof *a.ids), malloc(nr * sizeof *a.ids2), malloc(nr * sizeof *a.ds),
                  malloc(nr * sizeof *a.ds2) };
    REQUIRE(a.ids && a.ids2 && a.ds && a.ds2, "out of memory");
    return a;
}

static void answers_free(answers *a)
{
    free(a->ids);
    free(a->ids2);
    free(a->ds);
    free(a->ds2);
}

START_TEST(read_cache_adopts_writes)
{
    uint32_t n = 4000, dim = 16, k = 10, nq = 40, step = 500, nr = nq * k;
    rng r = rng_new(16);
    float *data = gen_data(&r, n, dim);
    uint8_t *live = calloc(n, 1);
    float *q = malloc((size_t)nq * dim * sizeof *q);
    for (uint32_t i = 0; i < nq * dim; i++) q[i] = data[(size_t)rbelow(&r, n) * dim + i % dim];
    answers an = answers_new(nr);
    uint32_t *ids = an.ids, *ids2 = an.ids2;
    float *ds = an.ds, *ds2 = an.ds2;
    ndb h;
    db_new(&h, "ngh-adopt", 0, NULL, mkopts(dim, "l2", 8, 40, 0));
    for (uint32_t from = 0, round = 0; from < n; from += step, round++) {
        uint32_t mid = from + step / 2, end = from + step;
        /* committed; searched at once (the read cache takes the copies) */
        change(&h, &r, data, dim, live, from, mid, from, 1);
        tstx *old = rbegin(&h);
        queries_in(&h, old, q, nq, dim, k, ids, ds);
        for (uint32_t i = 0; i < nr; i++) REQUIRE(live[ids[i]], "round %u: deleted %u returned", round, ids[i]);
        uncached(&h, q, nq, dim, k, ids2, ds2);
        same_answers(ids, ds, ids2, ds2, nr, "taken copies against the pages", round);
        /* the next writer starts a write cache of its own while the reader
         * still searches the taken copies */
        change(&h, &r, data, dim, live, mid, end, from, 1);
        queries_in(&h, old, q, nq, dim, k, ids2, ds2);
        same_answers(ids, ds, ids2, ds2, nr, "old reader after the next commit", round);
        tstx_rollback(old);
        /* a rolled-back writer: its write cache is ahead, not taken */
        if (end < n) change(&h, &r, data, dim, live, end, end + 50 < n ? end + 50 : n, from, 0);
        tstx *tx = rbegin(&h);
        queries_in(&h, tx, q, nq, dim, k, ids, ds);
        tstx_rollback(tx);
        uncached(&h, q, nq, dim, k, ids2, ds2);
        same_answers(ids, ds, ids2, ds2, nr, "after a rolled-back writer", round);
        ck_assert_int_eq(db_close(&h), TS_OK);
        db_open(&h, NULL);
        tx = rbegin(&h);
        queries_in(&h, tx, q, nq, dim, k, ids2, ds2);
        tstx_rollback(tx);
        same_answers(ids, ds, ids2, ds2, nr, "after a reopen", round);
        require_state(&h, data, n, dim, live, "after a reopen");
    }
    db_done(&h);
    answers_free(&an);
    free(q);
    free(live);
    free(data);
}
END_TEST

/* A commit's read cache keeps the pages the writer did not change: moved
 * to the new state when no reader has it (snap_advance), held again when a
 * reader of the old state still searches it (snap_inherit).  Many small
 * commits, each searched at once: the answers must equal those from the
 * pages alone (a write transaction uses no read cache), with every few
 * rounds a reader kept across the next commit, a rolled-back writer, or a
 * whole-index check, and after a reopen. */
/* read_cache_carries_over: a commit and a search of the new state made
 * while a search of the old state is running (from its filter), so the new
 * state's read cache holds the old one's unchanged pages again. */
typedef struct nested {
    ndb *h;
    rng *r;
    const float *data, *q;
    uint8_t *live;
    answers *an;
    uint32_t dim, from, step, nq, k, round;
    int done;
} nested;

static int nested_commit(void *ctx, const void *v, size_t l)
{
    nested *x = ctx;
    (void)v;
    (void)l;
    if (x->done++) return 1;
    uint8_t *outer = x->h->vals;   /* the running search's, if any: not the nested ones' */
    x->h->vals = NULL;
    change(x->h, x->r, x->data, x->dim, x->live, x->from, x->from + x->step, x->from, 1);
    tstx *tx = rbegin(x->h);
    queries_in(x->h, tx, x->q, x->nq, x->dim, x->k, x->an->ids, x->an->ds);
    tstx_rollback(tx);
    uncached(x->h, x->q, x->nq, x->dim, x->k, x->an->ids2, x->an->ds2);
    same_answers(x->an->ids, x->an->ds, x->an->ids2, x->an->ds2, x->nq * x->k,
                 "cache held again during an old search, against the pages", x->round);
    free(x->h->vals);
    x->h->vals = outer;
    return 1;
}

/* a filter that keeps every hit (the second run of a nested search) */
static int keep_all(void *ctx, const void *val, size_t vl)
{
    (void)ctx;
    (void)val;
    (void)vl;
    return 1;
}

/* page gets from the kernel's cache so far */
static uint64_t kernel_gets(ndb *h)
{
    tspg_stats st;
    tspg_stats_get(h->db->pg, &st);
    return st.cache_hits + st.cache_misses;
}

static void carry_case(long long cache_bytes)
{
    uint32_t n = 3000, dim = 96, k = 10, nq = 30, step = 10, nr = nq * k, first = 2400;
    rng r = rng_new(19);
    float *data = gen_data(&r, n, dim);
    uint8_t *live = calloc(n, 1);
    float *q = malloc((size_t)nq * dim * sizeof *q);
    for (uint32_t i = 0; i < nq * dim; i++) q[i] = data[(size_t)rbelow(&r, n) * dim + i % dim];
    answers an = answers_new(nr), kept = answers_new(nr);
    ndb h;
    json_t *o = mkopts(dim, "l2", 8, 40, 0);
    if (cache_bytes >= 0) json_object_set_new(o, "cacheBytes", json_integer(cache_bytes));
    db_new(&h, "ngh-carry", 0, NULL, o);
    change(&h, &r, data, dim, live, 0, first, 0, 1);
    tstx *old = NULL;
    uint32_t round = 0;
    uint64_t cached_gets = 0, page_gets = 0, write_gets = 0, chain_gets = 0;
    uint32_t chains = 0;
    for (uint32_t from = first; from + step <= n; from += step, round++) {
        /* inserts, and deletes among the first rows (pages far from the new ones) */
        uint64_t w0 = kernel_gets(&h);
        change(&h, &r, data, dim, live, from, from + step, from, 1);
        write_gets += kernel_gets(&h) - w0;
        tstx *tx = rbegin(&h);
        uint64_t g0 = kernel_gets(&h);
        queries_in(&h, tx, q, nq, dim, k, an.ids, an.ds);
        uint64_t g1 = kernel_gets(&h);
        for (uint32_t i = 0; i < nr; i++) REQUIRE(live[an.ids[i]], "round %u: deleted %u returned", round, an.ids[i]);
        uncached(&h, q, nq, dim, k, an.ids2, an.ds2);
        cached_gets += g1 - g0;
        page_gets += kernel_gets(&h) - g1;
        same_answers(an.ids, an.ds, an.ids2, an.ds2, nr, "cache carried over, against the pages", round);
        if (old) {   /* the reader of the state before, once the new state's cache is made: its answers stand */
            queries_in(&h, old, q, nq, dim, k, an.ids2, an.ds2);
            same_answers(kept.ids, kept.ds, an.ids2, an.ds2, nr, "reader kept across a commit", round);
            tstx_rollback(old);
            old = NULL;
        }
        if (round % 3 == 1) {   /* open while the next writer commits */
            old = tx;
            memcpy(kept.ids, an.ids, nr * sizeof *an.ids);
            memcpy(kept.ds, an.ds, nr * sizeof *an.ds);
        } else {
            tstx_rollback(tx);
        }
        if (round % 5 == 2 && from + 2 * step <= n)   /* rolled back: no state to carry */
            change(&h, &r, data, dim, live, from + step, from + 2 * step, from, 0);
        if (round % 6 == 5 && !old && from + 2 * step <= n) {
            /* the next commit searched while the writer is already past it
             * (inside its next transaction): the cache moves on without
             * the write cache's pages */
            change(&h, &r, data, dim, live, from + step, from + 2 * step, from, 1);
            from += step;
            round++;
            uncached(&h, q, nq, dim, k, an.ids2, an.ds2);   /* the committed state's answers */
            tstx *w = wbegin(&h);
            uint32_t wend = from + step + 3 < n ? from + step + 3 : n;
            for (uint32_t i = from + step; i < wend; i++) ck_assert_int_eq(ins(&h, w, data, dim, i), TS_OK);
            tx = rbegin(&h);
            uint64_t c0 = kernel_gets(&h);
            queries_in(&h, tx, q, nq, dim, k, an.ids, an.ds);
            chain_gets += kernel_gets(&h) - c0;
            tstx_rollback(tx);
            same_answers(an.ids2, an.ds2, an.ids, an.ds, nr, "cache moved on while the writer went on", round);
            if (chains++ % 2) {
                /* committed: the next writes read the moved cache as their
                 * start state's, and the next commit moves it again */
                commit(&h, w);
                for (uint32_t i = from + step; i < wend; i++) live[i] = 1;
                from += step;
                round++;
            } else {
                tstx_rollback(w);
            }
        }
        if (round % 7 == 3) require_state(&h, data, n, dim, live, "between commits");
        if (round % 4 == 0 && !old && from + 2 * step <= n) {   /* the next rows, committed mid-search */
            from += step;
            round++;
            nested x = { &h, &r, data, q, live, &an, dim, from, step, nq, k, round, 0 };
            ts_knn_hit out[16], again[16];
            tx = rbegin(&h);
            queries_in(&h, tx, q, 1, dim, k, an.ids, an.ds);   /* the old state's cache, made */
            size_t got = knn(&h, tx, q, dim, k, 40, nested_commit, &x, out);
            REQUIRE(x.done, "round %u: the filter was not called", round);
            uint32_t oid[16];
            for (size_t i = 0; i < got; i++) oid[i] = pk_id(out[i].val, out[i].vlen);
            /* the same search of the old state again, its pages pinned: the
             * new cache must not have taken or released what it used */
            size_t got2 = knn(&h, tx, q, dim, k, 40, keep_all, NULL, again);
            REQUIRE(got == got2, "round %u: %zu hits mid-commit, %zu after", round, got, got2);
            for (size_t i = 0; i < got; i++)
                REQUIRE(oid[i] == pk_id(again[i].val, again[i].vlen) && out[i].distance == again[i].distance,
                        "round %u: hit %zu of the search a commit ran in differs", round, i);
            tstx_rollback(tx);
        }
    }
    if (old) tstx_rollback(old);
    /* the searches after each commit found their pages cached: 1 550
     * kernel page gets in all against 351 545 by the same searches on the
     * pages; 14 834 without the carry-over (only the write cache's pages) */
    if (cache_bytes < 0) {
        REQUIRE(cached_gets * 64 < page_gets, "kernel page gets after commits: %llu cached, %llu on the pages",
                (unsigned long long)cached_gets, (unsigned long long)page_gets);
        /* and the writers read the start state's cache: 4 991 gets for
         * their 60 commits, 21 197 when they got every page again */
        REQUIRE(write_gets * 34 < page_gets, "kernel page gets of the writers: %llu (%llu by the searches on the pages)",
                (unsigned long long)write_gets, (unsigned long long)page_gets);
        /* searched while the writer went on: 1 232 gets in 9 rounds (the
         * changed pages), 3 447 when each made its cache from nothing */
        REQUIRE(chains > 0 && chain_gets * 140 < page_gets,
                "kernel page gets while the writer went on: %llu in %u rounds (%llu on the pages)",
                (unsigned long long)chain_gets, chains, (unsigned long long)page_gets);
    }
    require_state(&h, data, n, dim, live, "after the rounds");
    ck_assert_int_eq(db_close(&h), TS_OK);
    db_open(&h, NULL);
    tstx *tx = rbegin(&h);
    queries_in(&h, tx, q, nq, dim, k, an.ids2, an.ds2);
    tstx_rollback(tx);
    uncached(&h, q, nq, dim, k, an.ids, an.ds);
    same_answers(an.ids, an.ds, an.ids2, an.ds2, nr, "after a reopen", round);
    db_done(&h);
    answers_free(&an);
    answers_free(&kept);
    free(q);
    free(live);
    free(data);
}

/* and with caches of 40 pages: written pages the write cache could not
 * keep must not be held again from the old state's cache */
START_TEST(read_cache_carries_over) { carry_case(-1); }
END_TEST
START_TEST(read_cache_carries_over_small) { carry_case(40 * 4096); }
END_TEST

/* Two index objects over one index (a migration's retarget opens a
 * second): a generation number one object's rolled-back writer reached and
 * the other committed must not let the first take or continue its stale
 * write cache (the writer tag in the meta page). */
START_TEST(two_objects_one_index)
{
    uint32_t n = 1300, dim = 16, k = 10, nq = 30, nr = nq * k;
    rng r = rng_new(17);
    float *data = gen_data(&r, n, dim);
    uint8_t *live = calloc(n, 1);
    float *q = malloc((size_t)nq * dim * sizeof *q);
    answers an = answers_new(nr);
    uint32_t *ids = an.ids, *ids2 = an.ids2;
    float *ds = an.ds, *ds2 = an.ds2;
    ndb h;
    db_new(&h, "ngh-two", 0, NULL, mkopts(dim, "l2", 8, 40, 0));
    load(&h, data, dim, 0, 1000, 250);
    memset(live, 1, 1000);
    for (uint32_t i = 0; i < nq * dim; i++) q[i] = data[(size_t)rbelow(&r, 1000) * dim + i % dim];
    ndb hb = h;
    REQUIRE(tsix_open(&h.db->env, h.db->reg, "ngh", h.opts, h.root, "vec", &hb.ix) == TS_OK, "second object: %s",
            emsg(&h));
    /* object A: 100 inserts rolled back (its write cache: generation G+100) */
    change(&h, &r, data, dim, live, 1000, 1100, 0, 0);
    /* object B: 100 other inserts committed (the index: generation G+100) */
    change(&hb, &r, data, dim, live, 1100, 1200, 0, 1);
    /* A's searches and the pages agree */
    tstx *tx = rbegin(&h);
    queries_in(&h, tx, q, nq, dim, k, ids, ds);
    tstx_rollback(tx);
    uncached(&h, q, nq, dim, k, ids2, ds2);
    same_answers(ids2, ds2, ids, ds, nr, "object A after B's commit", 0);
    /* and A's next writer starts from the pages */
    change(&h, &r, data, dim, live, 1200, 1300, 0, 1);
    require_state(&h, data, n, dim, live, "after A's commit");
    tsix_close(hb.ix);
    db_done(&h);
    answers_free(&an);
    free(q);
    free(live);
    free(data);
}
END_TEST

/* Vectors too big for a node record (1536-d float32 and 4100-d float16 on
 * 4 KiB pages) live in their own pages; 1536-d int8 fits a record. */
START_TEST(large_vectors)
{
    /* split records (format 3): 784-d float32 with splitRecords (two node
     * pages and three tail pages hold six vectors; whole, one a page),
     * 1024-d by default (a node page and 1/15 of a tail page a vector; it
     * took two raw pages and a record's share); 1536: raw pages */
    struct { uint32_t dim; const char *prec; int split; double most; } cases[] = {
        { 1536, "float32", 0, 2.2 }, { 4100, "float16", 0, 5.2 }, { 1536, "int8", 0, 2.7 },
        { 784, "float32", 1, 0.86 }, { 784, "float32", 0, 1.1 }, { 1024, "float32", 0, 1.1 } };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        uint32_t n = 300, dim = cases[c].dim, k = 10;
        rng r = rng_new(13 + c);
        float *data = gen_data(&r, n, dim);
        ndb h;
        json_t *o = mkopts_p(dim, "cosine", cases[c].prec, 8, 40, 0);
        if (cases[c].split) json_object_set_new(json_object_get(o, "parameters"), "splitRecords", json_true());
        db_new(&h, "ngh-large", 0, NULL, o);
        tstx *tx = wbegin(&h);
        uint64_t base = live_pages(tx);
        tstx_rollback(tx);
        load(&h, data, dim, 0, n, 100);
        tx = rbegin(&h);
        double rec = recall(&h, tx, NGH_COSINE, data, n, dim, NULL, 30, k, 0, &r, NULL);
        double ppv = (double)(live_pages(tx) - base) / n;
        if (verbose()) printf("ngh %u-d %s: recall@10 %.4f, %.3f pages per vector\n", dim, cases[c].prec, rec, ppv);
        REQUIRE(rec >= 0.95, "%u-d %s: recall %.4f", dim, cases[c].prec, rec);
        REQUIRE(ppv <= cases[c].most, "%u-d %s: %.3f pages per vector", dim, cases[c].prec, ppv);
        /* each vector finds itself, the cursor gives it back whole */
        ts_knn_hit out[1];
        for (uint32_t i = 0; i < n; i += 7) {
            ck_assert_uint_eq(knn(&h, tx, data + (size_t)i * dim, dim, 1, 0, NULL, NULL, out), 1);
            REQUIRE(pk_id(out[0].val, out[0].vlen) == i && out[0].distance < 1e-5f, "%u-d: self %u", dim, i);
        }
        tsix_cur cur;
        ck_assert_int_eq(tsix_cursor(h.ix, tx, &cur), TS_OK);
        uint32_t cnt = 0;
        for (int rc = tsix_first(&cur); rc == TS_OK; rc = tsix_next(&cur), cnt++) {
            const void *kk, *v;
            size_t kl, vl;
            ck_assert_int_eq(tsix_entry(&cur, &kk, &kl, &v, &vl), TS_OK);
            REQUIRE(kl == (size_t)dim * 4 && !memcmp(kk, data + (size_t)pk_id(v, vl) * dim, kl), "vector");
        }
        tsix_cursor_close(&cur);
        ck_assert_uint_eq(cnt, n);
        tstx_rollback(tx);
        /* remove some, then drop: every page comes back */
        tx = wbegin(&h);
        for (uint32_t i = 0; i < n; i += 3) ck_assert_int_eq(del(&h, tx, data, dim, i), TS_OK);
        ck_assert_int_eq(tsix_drop(h.ix, tx), TS_OK);
        REQUIRE(live_pages(tx) <= base - 2, "%llu pages left after drop", (unsigned long long)live_pages(tx));
        tstx_root_set(tx, ROOT_SLOT, 0);
        commit(&h, tx);
        db_done(&h);
        free(data);
    }
}
END_TEST

/* Split records (splitRecords true) against whole ones (false), same
 * vectors and seed: the same answers (distances summed from two parts differ in
 * the last bits at most), fewer pages, through deletes, reused ids and a
 * reopen, for every metric. */
START_TEST(split_records)
{
    const char *metrics[3] = { "l2", "cosine", "innerProduct" };
    const int mids[3] = { NGH_L2, NGH_COSINE, NGH_IP };
    uint32_t n = sanitized() ? 400 : 1200, dim = 784, nq = 40, k = 10;
    rng r = rng_new(77);
    float *data = gen_data(&r, n, dim);
    uint8_t *live = malloc(n);
    for (int mi = 0; mi < 3; mi++) {
        ndb h[2];
        double ppv[2];
        for (int f = 0; f < 2; f++) {
            json_t *o = mkopts(dim, metrics[mi], 16, 60, 0);
            json_object_set_new(json_object_get(o, "parameters"), "splitRecords", f ? json_true() : json_false());
            json_object_set_new(json_object_get(o, "parameters"), "seed", json_integer(5));
            char name[64];
            snprintf(name, sizeof name, "ngh-split-%d-%d", mi, f);
            db_new(&h[f], name, 0, NULL, o);
            tstx *tx = wbegin(&h[f]);
            uint64_t base = live_pages(tx);
            tstx_rollback(tx);
            load(&h[f], data, dim, 0, n, 300);
            /* every fifth deleted, then half of those back (their ids reused) */
            tx = wbegin(&h[f]);
            for (uint32_t i = 0; i < n; i += 5) ck_assert_int_eq(del(&h[f], tx, data, dim, i), TS_OK);
            for (uint32_t i = 0; i < n; i += 10) ck_assert_int_eq(ins(&h[f], tx, data, dim, i), TS_OK);
            commit(&h[f], tx);
            tx = rbegin(&h[f]);
            ppv[f] = (double)(live_pages(tx) - base) / n;
            tstx_rollback(tx);
            db_close(&h[f]);
            db_open(&h[f], NULL);
        }
        for (uint32_t i = 0; i < n; i++) live[i] = i % 5 != 0 || i % 10 == 0;
        REQUIRE(ppv[1] < 0.9 * ppv[0], "%s: %.3f pages a vector split, %.3f whole", metrics[mi], ppv[1], ppv[0]);
        tstx *t0 = rbegin(&h[0]), *t1 = rbegin(&h[1]);
        rng rq = rng_new(78);
        double rc1 = recall(&h[1], t1, mids[mi], data, n, dim, live, nq, k, 0, &rq, NULL);
        REQUIRE(rc1 >= 0.95, "%s split: recall %.4f", metrics[mi], rc1);
        ts_knn_hit a[10], b[10];
        uint32_t same = 0;
        for (uint32_t i = 1; i < n; i += n / nq) {
            const float *q = data + (size_t)i * dim;
            size_t na = knn(&h[0], t0, q, dim, k, 0, NULL, NULL, a);
            size_t nb = knn(&h[1], t1, q, dim, k, 0, NULL, NULL, b);
            ck_assert_uint_eq(na, k);
            ck_assert_uint_eq(nb, k);
            /* a live vector finds itself first, at distance ~0 (cosine:
             * 1 - similarity; inner product: minus its squared norm) */
            if (live[i] && mids[mi] != NGH_IP)
                REQUIRE(pk_id(b[0].val, b[0].vlen) == i && fabsf(b[0].distance) < 1e-4f, "%s: self %u", metrics[mi], i);
            for (size_t j = 0; j < k; j++)
                REQUIRE(fabsf(a[j].distance - b[j].distance) <= 1e-4f * (1.0f + fabsf(a[j].distance)),
                        "%s: query %u rank %zu: %g whole, %g split", metrics[mi], i, j, a[j].distance, b[j].distance);
            same += pk_id(a[0].val, a[0].vlen) == pk_id(b[0].val, b[0].vlen);
        }
        REQUIRE(same >= nq - 1, "%s: %u of %u nearest the same", metrics[mi], same, nq);
        if (verbose()) printf("ngh split %s: %.3f vs %.3f pages a vector, recall %.4f\n", metrics[mi], ppv[1], ppv[0], rc1);
        tstx_rollback(t0);
        tstx_rollback(t1);
        db_done(&h[0]);
        db_done(&h[1]);
    }
    free(live);
    free(data);
}
END_TEST

/* Every layout a create can choose opens again: for dimensions 1-1100 (and
 * a sample up to 2100), M 2-32, splitRecords absent or true, at 4 and 8 KiB
 * pages, a fresh index takes a vector and finds it (its meta page read back
 * by the first operation); format 2 with splitRecords is refused.  Split
 * heads rounded down once let more records share a page than the head was
 * sized for, leaving no room for the key slots: such indexes were created
 * and then refused as corrupt at every open. */
START_TEST(layouts_reopen)
{
    static const int Ms[] = { 2, 4, 8, 12, 16, 32 };
    static const char *const sizes[] = { NULL, "\"pageSize\": 8192" };
    float *v = malloc(2100 * sizeof *v);
    for (uint32_t j = 0; j < 2100; j++) v[j] = (float)(j % 7) - 3.0f;
    uint8_t pk[8];
    pk_of(1, pk);
    for (int ps = 0; ps < 2; ps++) {
        ndb h;
        memset(&h, 0, sizeof h);
        h.dir = tst_tmpdir("ngh-layouts");
        db_open(&h, sizes[ps]);
        uint32_t combos = 0, step = sanitized() ? 5 : 1;
        for (uint32_t dim = 1; dim <= 2100; dim += dim < 1100 ? step : 7 * step)
            for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
                for (int split = 0; split < 2; split++) {
                    json_t *o = mkopts(dim, "l2", Ms[mi], 20, 10);
                    if (split) json_object_set_new(json_object_get(o, "parameters"), "splitRecords", json_true());
                    tstx *tx = wbegin(&h);
                    uint64_t root;
                    tsix *ix = NULL;
                    int rc = tsix_create(&h.db->env, h.db->reg, "ngh", o, tx, &root);
                    if (rc == TS_OK) rc = tsix_open(&h.db->env, h.db->reg, "ngh", o, root, "vec", &ix);
                    if (rc == TS_OK) rc = tsix_insert(ix, tx, v, dim * 4, pk, 8, 0);
                    ts_knn_hit out[1];
                    size_t n = 0;
                    uint8_t *vals = NULL;
                    if (rc == TS_OK) rc = tsix_knn(ix, tx, v, dim, 1, 0, NULL, NULL, out, &n, &vals);
                    REQUIRE(rc == TS_OK && n == 1 && out[0].distance < 1e-4f, "%u-d M %d split %d, page %s: %d %s",
                            dim, Ms[mi], split, sizes[ps] ? sizes[ps] : "4096", rc, emsg(&h));
                    free(vals);
                    if (ix) tsix_close(ix);
                    tstx_rollback(tx);
                    json_decref(o);
                    combos++;
                }
        if (verbose()) printf("ngh layouts: %u created and reopened\n", combos);
        /* splitRecords asks for format 3 */
        json_t *o = mkopts(784, "l2", 16, 20, 10);
        json_object_set_new(json_object_get(o, "parameters"), "splitRecords", json_true());
        json_object_set_new(o, "format", json_integer(2));
        tstx *tx = wbegin(&h);
        uint64_t root;
        ck_assert_int_eq(tsix_create(&h.db->env, h.db->reg, "ngh", o, tx, &root), TS_ERR_CONFIG);
        tstx_rollback(tx);
        json_decref(o);
        db_done(&h);
    }
    free(v);
}
END_TEST

/* ---- readers during writes ------------------------------------------------------- */

typedef struct rd {
    ndb        *h;
    const float *data;
    uint32_t    dim;
    _Atomic int *stop;
    _Atomic uint32_t *committed;   /* ids below are committed */
    _Atomic uint32_t queries;
    char        err[200];
    _Atomic int done;   /* the reader has stopped (err is its own until then) */
} rd;

static void *reader(void *arg)
{
    rd *a = arg;
    rng r = rng_new((uint64_t)(uintptr_t)arg);
    ts_knn_hit out[10];
    while (!atomic_load(a->stop) && !a->err[0]) {
        uint32_t lo = atomic_load(a->committed);
        tstx *tx;
        if (tstx_begin(a->h->db->pg, 0, &tx)) { snprintf(a->err, sizeof a->err, "begin"); break; }
        uint32_t id = lo ? (uint32_t)rbelow(&r, lo) : 0;
        size_t n = 0;
        uint8_t *vals = NULL;   /* per thread: h->vals is the main thread's */
        int rc = tsix_knn(a->h->ix, tx, a->data + (size_t)id * a->dim, a->dim, 10, 0, NULL, NULL, out, &n, &vals);
        free(vals);
        if (rc) snprintf(a->err, sizeof a->err, "knn: %d", rc);
        else if (lo >= 10 && n != 10) snprintf(a->err, sizeof a->err, "%zu results with %u entries", n, lo);
        else if (lo && out[0].distance > 1e-3f) {
            float d0 = out[0].distance;
            tsix_knn(a->h->ix, tx, a->data + (size_t)id * a->dim, a->dim, 10, 2000, NULL, NULL, out, &n, &vals);
            free(vals);
            snprintf(a->err, sizeof a->err, "%u not found (%g; with ef 2000: %g) lo %u", id, d0, out[0].distance, lo);
        }
        /* a batch of stored vectors by key: past 4 count lookups in a
         * generation the readers make its key runs, concurrently */
        uint8_t keys[64][8];
        const void *kp[64];
        size_t kl[64];
        uint32_t ids[64];
        float vec[64 * 32];
        unsigned char found[64];
        for (int j = 0; j < 64 && lo && !rc && !a->err[0]; j++) {
            ids[j] = (uint32_t)rbelow(&r, lo);
            pk_of(ids[j], keys[j]);
            kp[j] = keys[j];
            kl[j] = 8;
        }
        if (lo && !rc && !a->err[0] && a->dim <= 32) {
            if ((rc = tsix_vectors(a->h->ix, tx, 64, kp, kl, vec, found)))
                snprintf(a->err, sizeof a->err, "vectors: %d", rc);
            for (int j = 0; j < 64 && !rc && !a->err[0]; j++)
                if (!found[j] || memcmp(vec + (size_t)j * a->dim, a->data + (size_t)ids[j] * a->dim, a->dim * 4))
                    snprintf(a->err, sizeof a->err, "vectors: key %u %s", ids[j], found[j] ? "wrong" : "not found");
        }
        tstx_rollback(tx);
        a->queries++;
    }
    atomic_store(&a->done, 1);
    return NULL;
}

START_TEST(concurrent_readers)
{
    uint32_t n = long_mode() ? 20000 : 4000, dim = 32;
    rng r = rng_new(12);
    float *data = gen_data(&r, n, dim);
    ndb h;
    db_new(&h, "ngh-threads", 0, "\"cacheBytes\": 67108864", mkopts(dim, "l2", 8, 60, 0));
    _Atomic int stop = 0;
    _Atomic uint32_t committed = 0;
    rd a[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        a[i] = (rd){ &h, data, dim, &stop, &committed, 0, "", 0 };
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &a[i]), 0);
    }
    for (uint32_t i = 0; i < n; i += 200) {
        load(&h, data, dim, i, i + 200, 200);
        atomic_store(&committed, i + 200);
    }
    /* the last generation: long enough for both readers to look up more
     * than 4 count keys in it (so they race to make its key runs) */
    uint32_t q0 = a[0].queries + a[1].queries;
    while (a[0].queries + a[1].queries < q0 + 4 * n / 64 + 16 && !atomic_load(&a[0].done) &&
           !atomic_load(&a[1].done))
        sched_yield();
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        REQUIRE(!a[i].err[0], "reader %d: %s", i, a[i].err);
    }
    if (verbose()) printf("ngh: %u + %u queries by readers during %u inserts\n", a[0].queries, a[1].queries, n);
    db_done(&h);
    free(data);
}
END_TEST

/* Ids below n that find themselves first at distance ~0 in tx, of those
 * tried (every 7th). */
static void selves(ndb *h, const float *data, uint32_t dim, uint32_t n, const char *what)
{
    tstx *tx = rbegin(h);
    uint32_t tried = 0, found = 0;
    for (uint32_t id = 0; id < n; id += 7, tried++) {
        ts_knn_hit out[10];
        size_t got = knn(h, tx, data + (size_t)id * dim, dim, 10, 80, NULL, NULL, out);
        found += got && fabsf(out[0].distance) < 1e-4 && pk_id(out[0].val, out[0].vlen) == id;
    }
    tstx_rollback(tx);
    REQUIRE(found >= tried * 99 / 100, "%s: %u of %u vectors find themselves", what, found, tried);
}

/* The write cache's waits that give up (ngh_graph.c, wc_wait_idle): a
 * reader that needs a later state while the write cache stays busy (an
 * operation in progress) past its 3 ms makes its cache without it, and a
 * writer that finds readers waiting past its 20 ms goes on.  Forced here
 * by holding the fields as a busy writer and a waiting reader hold them;
 * every answer is still right, and the index still takes inserts. */
START_TEST(write_cache_wait_timeout)
{
    uint32_t n = 1500, dim = 16;
    rng r = rng_new(77);
    float *data = gen_data(&r, n, dim);
    ndb h;
    db_new(&h, "ngh-wait", 0, NULL, mkopts(dim, "l2", 8, 60, 0));
    ngh_idx *ix = h.ix->idx;
    load(&h, data, dim, 0, 600, 600);
    selves(&h, data, dim, 600, "first state");
    load(&h, data, dim, 600, 900, 300);
    pthread_mutex_lock(&ix->mu);
    int was = ix->wc.busy;
    ix->wc.busy = 1;   /* a writer inside an operation that does not end */
    pthread_mutex_unlock(&ix->mu);
    selves(&h, data, dim, 900, "the write cache busy");
    pthread_mutex_lock(&ix->mu);
    ix->wc.busy = was;
    ix->waiters++;   /* a reader waiting for the cache, that never takes it */
    pthread_mutex_unlock(&ix->mu);
    load(&h, data, dim, 900, 930, 10);   /* each insert gives up after 20 ms */
    pthread_mutex_lock(&ix->mu);
    ix->waiters--;
    pthread_cond_broadcast(&ix->idle);
    pthread_mutex_unlock(&ix->mu);
    selves(&h, data, dim, 930, "after writers that waited");
    load(&h, data, dim, 930, n, 300);
    selves(&h, data, dim, n, "after more inserts");
    db_done(&h);
    free(data);
}
END_TEST

/* TS_TEST_ONLY=name[,name...] runs only those tests. */
static int wanted(const char *name)
{
    const char *s = getenv("TS_TEST_ONLY");
    if (!s || !*s) return strcmp(name, "bench") != 0; /* the benchmark only when asked for */
    size_t n = strlen(name);
    for (const char *p = s; (p = strstr(p, name)); p += n)
        if ((p == s || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}
#define ADD(t) do { if (wanted(#t)) tcase_add_test(tc, t); } while (0)

static Suite *suite(void)
{
    Suite *s = suite_create("ngh");
    TCase *tc = tcase_create("ngh");
    tcase_set_timeout(tc, 1800);
    ADD(kernels_agree);
    ADD(write_cache_wait_timeout);
    ADD(knn_emit_matches_knn);
    ADD(recall_l2);
    ADD(recall_cosine);
    ADD(recall_ip);
    ADD(recall_l2_f16);
    ADD(recall_cosine_f16);
    ADD(recall_ip_f16);
    ADD(recall_l2_i8);
    ADD(recall_cosine_i8);
    ADD(recall_ip_i8);
    ADD(bench);
    ADD(options);
    ADD(seeded_graph_repeats);
    ADD(build_links);
    ADD(entries_and_duplicates);
    ADD(quantized_keys_f16);
    ADD(quantized_keys_i8);
    ADD(stored_vectors);
    ADD(stored_distances);
    ADD(guessed_lookups);
    ADD(key_runs);
    ADD(key_runs_carried);
    ADD(cache_bytes_bound);
    ADD(deletes_and_updates);
    ADD(filtered);
    ADD(upper_layer_beam);
    ADD(churn_reuses_space);
    ADD(cursor_scan);
    ADD(formats);
    ADD(damaged_meta);
    ADD(damaged_pages);
    ADD(cold_prefetch);
    ADD(reopen_lazily);
    ADD(crash_recovery);
    ADD(crash_recovery_i8);
    ADD(crash_recovery_split);
    ADD(split_records);
    ADD(layouts_reopen);
    ADD(large_vectors);
    ADD(rollback_then_write);
    ADD(read_cache_adopts_writes);
    ADD(read_cache_carries_over);
    ADD(read_cache_carries_over_small);
    ADD(two_objects_one_index);
    ADD(concurrent_readers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(suite());
}
