/*
 * Index conformance suite: one set of cases that any index plugin runs.
 *
 *   test_index_conformance <plugin>      (or TS_INDEX_PLUGIN=<plugin>)
 *   test_index_conformance /path/to/<plugin>.so
 *
 * The plugin <TS_TEST_PLUGIN_DIR>/<plugin>.so (or the shared object at
 * the given path, for a plugin built elsewhere such as the SDK example) is
 * loaded into each database through the "plugins" config key and its
 * index module named <plugin> is looked up in the db's registry.  Every case checks the index against
 * an in-memory reference model: a sorted array of (key, value) entries.
 * Ordered plugins (TS_INDEX_ORDERED) are checked on full scans in both
 * directions and on every seek mode; unordered ones on EQ lookups and on
 * a full iteration returning exactly the model's multiset.
 *
 * The contract checked here, beyond tostore/index.h:
 *  - entries are a set of (key, value) pairs: inserting a pair that exists
 *    is TS_ERR_UNIQUE (with unique = 0 too), and nothing changes;
 *  - after seek(EQ) next() visits the other entries of that key before any
 *    other key (for ordered plugins: in value order);
 *  - a failed insert/remove (UNIQUE, NOT_FOUND, key too long) changes
 *    nothing;
 *  - drop frees every page (as many pages are in use afterwards as before
 *    the index was created);
 *  - ordered plugins: a cursor stays usable across changes made by its own
 *    transaction, and next()/prev() then return the neighbour of the last
 *    entry returned in the index as it is now; entry() pointers stay valid
 *    until the cursor moves, even across such changes.
 *
 * Sizes: CI mode runs ~100K operations; TS_TEST_LONG=1 runs 1M-entry
 * trees and more rounds.  TS_TEST_SEED=<n> changes the seeds.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <tostore/index.h>
#include <tostore/keys.h>
#include "api/db.h"
#include "tsupport.h"

/* Check's ck_assert* record every passing check with a write(); these
 * call into Check only on failure (the hot loops run millions). */
#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)
#define REQ(cond) REQUIRE(cond, "%s", #cond)
#define REQ_EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) ck_abort_msg("%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)
#define REQ_NE(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ == b_) ck_abort_msg("%s != %s: both %lld", #a, #b, a_); } while (0)

/* ---- globals -------------------------------------------------------- */

static const char *g_plugin = "btree";  /* the index module's name */
static char g_path[1024];                /* its shared object */
static int g_long;
static uint64_t g_seed = 1;

/* Root slots for the indexes under test: the top ones, away from the
 * kernel's own (the system catalog uses the first slots). */
#define SLOT_A (TSPG_ROOTS - 1)
#define SLOT_B (TSPG_ROOTS - 2)

#define OK(expr) do { int rc_ = (expr); REQUIRE(rc_ == TS_OK, "%s: %d %s", #expr, rc_, ts_errmsg(f->db)); } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of this thread: rates that a busy machine disturbs less. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- rng ------------------------------------------------------------ */

typedef struct rng { uint64_t s; } rng;

static uint64_t rnext(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}
static uint64_t rbelow(rng *r, uint64_t n) { return n ? rnext(r) % n : 0; }
static void rseed(rng *r, uint64_t s) { r->s = (s * 0x9E3779B97F4A7C15ull) | 1; rnext(r); }

/* ---- the reference model ------------------------------------------- */

typedef struct ent {
    uint8_t *k, *v;
    size_t   kl, vl;
} ent;

typedef struct model {
    ent   *e;
    size_t n, cap;
} model;

static int bcmp2(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int r = m ? memcmp(a, b, m) : 0;
    return r ? r : (al > bl) - (al < bl);
}

static int ent_cmp(const ent *a, const ent *b)
{
    int r = bcmp2(a->k, a->kl, b->k, b->kl);
    return r ? r : bcmp2(a->v, a->vl, b->v, b->vl);
}

static int ent_qcmp(const void *a, const void *b) { return ent_cmp(a, b); }

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    REQ(d);
    if (n) memcpy(d, p, n);
    return d;
}

static void model_init(model *m) { memset(m, 0, sizeof *m); }

static void model_free(model *m)
{
    for (size_t i = 0; i < m->n; i++) { free(m->e[i].k); free(m->e[i].v); }
    free(m->e);
    model_init(m);
}

static void model_copy(model *dst, const model *src)
{
    model_free(dst);
    dst->e = malloc((src->n ? src->n : 1) * sizeof *dst->e);
    REQ(dst->e);
    dst->cap = src->n ? src->n : 1;
    for (size_t i = 0; i < src->n; i++) {
        dst->e[i].k = dup_bytes(src->e[i].k, src->e[i].kl);
        dst->e[i].kl = src->e[i].kl;
        dst->e[i].v = dup_bytes(src->e[i].v, src->e[i].vl);
        dst->e[i].vl = src->e[i].vl;
    }
    dst->n = src->n;
}

/* First entry >= (k, v); vmode -1: below every value of k, +1: above. */
static size_t model_lb(const model *m, const void *k, size_t kl, const void *v, size_t vl, int vmode)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const ent *e = &m->e[mid];
        int r = bcmp2(k, kl, e->k, e->kl);
        if (!r) r = vmode < 0 ? (e->vl ? -1 : 0) : vmode > 0 ? 1 : bcmp2(v, vl, e->v, e->vl);
        if (r <= 0) hi = mid; else lo = mid + 1;
    }
    return lo;
}

static int model_has(const model *m, const void *k, size_t kl, const void *v, size_t vl)
{
    size_t i = model_lb(m, k, kl, v, vl, 0);
    return i < m->n && bcmp2(k, kl, m->e[i].k, m->e[i].kl) == 0 &&
           bcmp2(v, vl, m->e[i].v, m->e[i].vl) == 0;
}

static size_t model_key_count(const model *m, const void *k, size_t kl, size_t *first)
{
    size_t a = model_lb(m, k, kl, NULL, 0, -1), b = model_lb(m, k, kl, NULL, 0, 1);
    if (first) *first = a;
    return b - a;
}

static void model_insert(model *m, const void *k, size_t kl, const void *v, size_t vl)
{
    size_t i = model_lb(m, k, kl, v, vl, 0);
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->e = realloc(m->e, m->cap * sizeof *m->e);
        REQ(m->e);
    }
    memmove(m->e + i + 1, m->e + i, (m->n - i) * sizeof *m->e);
    m->e[i].k = dup_bytes(k, kl);
    m->e[i].kl = kl;
    m->e[i].v = dup_bytes(v, vl);
    m->e[i].vl = vl;
    m->n++;
}

static void model_del_at(model *m, size_t i, size_t cnt)
{
    for (size_t j = i; j < i + cnt; j++) { free(m->e[j].k); free(m->e[j].v); }
    memmove(m->e + i, m->e + i + cnt, (m->n - i - cnt) * sizeof *m->e);
    m->n -= cnt;
}

/* ---- fixture: a database with the plugin and one open index --------- */

typedef struct fx {
    char                *dir;
    ts_db               *db;
    const tsreg_module  *mod;
    const ts_index_vtab *vt;
    ts_module_args       args;
    void                *idx;
    uint64_t             root;
    int                  ordered;
    char                 extra[512];
} fx;

static int db_try_open(fx *f)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"plugins\": [\"%s\"]%s%s}", f->dir,
             g_path, f->extra[0] ? ", " : "", f->extra);
    f->db = NULL;
    int rc = ts_open_json(cfg, &f->db);
    if (rc) return rc;
    f->mod = tsreg_lookup(f->db->reg, TS_KIND_INDEX, g_plugin);
    REQUIRE(f->mod != NULL, "no index module named '%s' in %s", g_plugin, g_path);
    f->vt = f->mod->vtab;
    f->ordered = (f->vt->caps & TS_INDEX_ORDERED) != 0;
    memset(&f->args, 0, sizeof f->args);
    f->args.struct_size = sizeof f->args;
    f->args.host = tsenv_host();
    f->args.env = &f->db->env;
    f->args.plugin_state = f->mod->plugin_state;
    return TS_OK;
}

static void db_open(fx *f)
{
    int rc = db_try_open(f);
    REQUIRE(rc == TS_OK, "open: %s", ts_errmsg(NULL));
}

static void fx_start(fx *f, const char *extra)
{
    memset(f, 0, sizeof *f);
    f->dir = tst_tmpdir("index");
    snprintf(f->extra, sizeof f->extra, "%s", extra ? extra : "");
    db_open(f);
}

static tstx *begin(fx *f, int write)
{
    tstx *tx;
    int rc = tstx_begin(f->db->pg, write, &tx);
    REQUIRE(rc == TS_OK, "begin: %s", ts_errmsg(f->db));
    return tx;
}

static void commit(fx *f, tstx *tx)
{
    int rc = tstx_commit(tx);
    REQUIRE(rc == TS_OK, "commit: %s", ts_errmsg(f->db));
}

static ts_txn *T(tstx *tx) { return (ts_txn *)tx; }

/* Create an index, keep its root in root slot `slot`, open it. */
static void idx_create(fx *f, unsigned slot)
{
    tstx *tx = begin(f, 1);
    OK(f->vt->create(&f->args, T(tx), &f->root));
    OK(tstx_root_set(tx, slot, f->root));
    commit(f, tx);
    OK(f->vt->open(&f->args, f->root, &f->idx));
}

static void idx_open_slot(fx *f, unsigned slot)
{
    tstx *tx = begin(f, 0);
    OK(tstx_root_get(tx, slot, &f->root));
    tstx_rollback(tx);
    REQUIRE(f->root != 0, "root slot %u is empty", slot);
    OK(f->vt->open(&f->args, f->root, &f->idx));
}

static void idx_close(fx *f)
{
    if (f->idx) f->vt->close(f->idx);
    f->idx = NULL;
}

static void fx_reopen(fx *f, unsigned slot)
{
    idx_close(f);
    REQ_EQ(ts_close(f->db), TS_OK);
    db_open(f);
    idx_open_slot(f, slot);
}

static void fx_end(fx *f)
{
    idx_close(f);
    if (f->db) ts_close(f->db);
    f->db = NULL;
    tst_rmrf(f->dir);
    free(f->dir);
}

/* ---- generators ----------------------------------------------------- */

static const uint8_t alpha[] = { 0x00, 0x01, 0x7f, 0x80, 0xff, 'a', 'b' };

/* Keys that collide, nest as prefixes, include the empty key and the
 * longest allowed key. */
static size_t gen_key(rng *r, uint8_t *k)
{
    unsigned c = (unsigned)rbelow(r, 100);
    size_t n;
    if (c < 35) {
        n = rbelow(r, 5);
        for (size_t i = 0; i < n; i++) k[i] = alpha[rbelow(r, sizeof alpha)];
    } else if (c < 65) {
        n = 8 + rbelow(r, 9);
        for (size_t i = 0; i < n; i++) k[i] = (uint8_t)rnext(r);
    } else if (c < 80) {
        n = ts_key_int(k, TS_INDEX_KEY_MAX, 0, (int64_t)rbelow(r, 2000) - 1000);
    } else if (c < 92) {
        /* long keys sharing a long prefix */
        n = TS_INDEX_KEY_MAX - rbelow(r, 40);
        memset(k, 'x', n);
        for (size_t i = n - 4; i < n; i++) k[i] = alpha[rbelow(r, sizeof alpha)];
    } else {
        n = TS_INDEX_KEY_MAX;
        size_t pre = rbelow(r, n);
        memset(k, 'y', pre);
        for (size_t i = pre; i < n; i++) k[i] = (uint8_t)rnext(r);
    }
    return n;
}

/* Values: small and colliding mostly, some around and above a page. */
static size_t gen_val(rng *r, uint8_t *v, int big_ok)
{
    unsigned c = (unsigned)rbelow(r, 1000);
    size_t n;
    if (c < 600) n = rbelow(r, 4);
    else if (c < 900) n = 4 + rbelow(r, 60);
    else if (c < 985 || !big_ok) n = 64 + rbelow(r, 6000);
    else n = 10000 + rbelow(r, 60000);
    uint8_t seed = (uint8_t)rnext(r);
    for (size_t i = 0; i < n; i++) v[i] = c < 600 ? alpha[rbelow(r, sizeof alpha)] : (uint8_t)(seed + i * 7);
    return n;
}

/* ---- checks --------------------------------------------------------- */

static void entry_of(fx *f, void *cur, const uint8_t **k, size_t *kl, const uint8_t **v, size_t *vl)
{
    const void *kp = NULL, *vp = NULL;
    int rc = f->vt->entry(cur, &kp, kl, &vp, vl);
    REQUIRE(rc == TS_OK, "entry: %d %s", rc, ts_errmsg(f->db));
    REQ(kp != NULL || *kl == 0);
    REQ(vp != NULL || *vl == 0);
    *k = kp;
    *v = vp;
}

static int entry_is(fx *f, void *cur, const ent *e)
{
    const uint8_t *k, *v;
    size_t kl, vl;
    entry_of(f, cur, &k, &kl, &v, &vl);
    return bcmp2(k, kl, e->k, e->kl) == 0 && bcmp2(v, vl, e->v, e->vl) == 0;
}

static int qsort_ent_cmp(const void *a, const void *b) { return ent_cmp(a, b); }

/* The whole index equals the model. */
static void verify_tx(fx *f, tstx *tx, const model *m, const char *where)
{
    void *cur;
    OK(f->vt->cursor_open(f->idx, T(tx), &cur));
    if (f->ordered) {
        size_t i = 0;
        int rc = f->vt->first(cur);
        for (; rc == TS_OK; rc = f->vt->next(cur), i++) {
            REQUIRE(i < m->n, "%s: scan returns more than the model's %zu entries", where, m->n);
            REQUIRE(entry_is(f, cur, &m->e[i]), "%s: forward scan differs at %zu of %zu", where, i, m->n);
        }
        REQUIRE(rc == TS_ERR_NOT_FOUND, "%s: next: %d %s", where, rc, ts_errmsg(f->db));
        REQUIRE(i == m->n, "%s: forward scan found %zu entries, model %zu", where, i, m->n);
        i = m->n;
        rc = f->vt->last(cur);
        for (; rc == TS_OK; rc = f->vt->prev(cur)) {
            REQUIRE(i > 0, "%s: backward scan returns too many", where);
            i--;
            REQUIRE(entry_is(f, cur, &m->e[i]), "%s: backward scan differs at %zu", where, i);
        }
        REQUIRE(rc == TS_ERR_NOT_FOUND, "%s: prev: %d %s", where, rc, ts_errmsg(f->db));
        REQUIRE(i == 0, "%s: backward scan stopped at %zu", where, i);
    } else {
        model got;
        model_init(&got);
        int rc = f->vt->first(cur);
        for (; rc == TS_OK; rc = f->vt->next(cur)) {
            const uint8_t *k, *v;
            size_t kl, vl;
            entry_of(f, cur, &k, &kl, &v, &vl);
            REQUIRE(got.n <= m->n, "%s: iteration returns more than the model", where);
            if (got.n == got.cap) {
                got.cap = got.cap ? 2 * got.cap : 64;
                got.e = realloc(got.e, got.cap * sizeof *got.e);
            }
            got.e[got.n].k = dup_bytes(k, kl);
            got.e[got.n].kl = kl;
            got.e[got.n].v = dup_bytes(v, vl);
            got.e[got.n++].vl = vl;
        }
        REQUIRE(rc == TS_ERR_NOT_FOUND, "%s: next: %d %s", where, rc, ts_errmsg(f->db));
        REQUIRE(got.n == m->n, "%s: iteration found %zu entries, model %zu", where, got.n, m->n);
        if (got.n) qsort(got.e, got.n, sizeof *got.e, qsort_ent_cmp);
        for (size_t i = 0; i < got.n; i++)
            REQUIRE(ent_cmp(&got.e[i], &m->e[i]) == 0, "%s: iteration multiset differs at %zu", where, i);
        model_free(&got);
    }
    f->vt->cursor_close(cur);
}

static void verify(fx *f, const model *m, const char *where)
{
    tstx *tx = begin(f, 0);
    verify_tx(f, tx, m, where);
    tstx_rollback(tx);
}

/* Point lookup of key k: seek EQ, then the key's entries. */
static void check_get(fx *f, void *cur, const model *m, const uint8_t *k, size_t kl)
{
    size_t first, cnt = model_key_count(m, k, kl, &first);
    int rc = f->vt->seek(cur, k, kl, TS_SEEK_EQ);
    if (!cnt) {
        REQUIRE(rc == TS_ERR_NOT_FOUND, "get of a missing key (%zu bytes): %d", kl, rc);
        return;
    }
    REQUIRE(rc == TS_OK, "get of a present key (%zu bytes, %zu entries): %d %s", kl, cnt, rc,
                  ts_errmsg(f->db));
    ent *got = calloc(cnt, sizeof *got);
    size_t n = 0;
    for (; rc == TS_OK; rc = f->vt->next(cur)) {
        const uint8_t *ek, *ev;
        size_t ekl, evl;
        entry_of(f, cur, &ek, &ekl, &ev, &evl);
        if (bcmp2(ek, ekl, k, kl) != 0) break;
        REQUIRE(n < cnt, "get: more entries of the key than in the model (%zu)", cnt);
        got[n].k = (uint8_t *)ek;
        got[n].kl = ekl;
        got[n].v = dup_bytes(ev, evl);
        got[n++].vl = evl;
    }
    REQUIRE(rc == TS_OK || rc == TS_ERR_NOT_FOUND, "get: next: %d", rc);
    REQUIRE(n == cnt, "get: %zu entries of the key, model %zu", n, cnt);
    for (size_t i = 0; i < n; i++) got[i].k = m->e[first].k; /* same key */
    if (!f->ordered) qsort(got, n, sizeof *got, qsort_ent_cmp);
    for (size_t i = 0; i < n; i++) {
        REQUIRE(ent_cmp(&got[i], &m->e[first + i]) == 0, "get: entry %zu of %zu differs%s", i, n,
                      f->ordered ? " (or is out of value order)" : "");
        free(got[i].v);
    }
    free(got);
}

/* Expected position of seek(k, mode) in the model, or (size_t)-1. */
static size_t model_seek(const model *m, const uint8_t *k, size_t kl, int mode)
{
    size_t i;
    switch (mode) {
    case TS_SEEK_EQ:
        i = model_lb(m, k, kl, NULL, 0, -1);
        return i < m->n && bcmp2(m->e[i].k, m->e[i].kl, k, kl) == 0 ? i : (size_t)-1;
    case TS_SEEK_GE: i = model_lb(m, k, kl, NULL, 0, -1); return i < m->n ? i : (size_t)-1;
    case TS_SEEK_GT: i = model_lb(m, k, kl, NULL, 0, 1); return i < m->n ? i : (size_t)-1;
    case TS_SEEK_LE: i = model_lb(m, k, kl, NULL, 0, 1); return i ? i - 1 : (size_t)-1;
    default: i = model_lb(m, k, kl, NULL, 0, -1); return i ? i - 1 : (size_t)-1;
    }
}

/* Every seek mode for key k, then a few steps each way. */
static void check_seeks(fx *f, void *cur, const model *m, const uint8_t *k, size_t kl, rng *r)
{
    for (int mode = TS_SEEK_EQ; mode <= TS_SEEK_LT; mode++) {
        size_t want = model_seek(m, k, kl, mode);
        int rc = f->vt->seek(cur, k, kl, mode);
        if (want == (size_t)-1) {
            REQUIRE(rc == TS_ERR_NOT_FOUND, "seek mode %d (%zu-byte key): %d, model: none", mode, kl, rc);
            continue;
        }
        REQUIRE(rc == TS_OK, "seek mode %d (%zu-byte key): %d %s, model: entry %zu", mode, kl,
                      rc, ts_errmsg(f->db), want);
        REQUIRE(entry_is(f, cur, &m->e[want]), "seek mode %d: wrong entry (model %zu of %zu)",
                      mode, want, m->n);
        int dir = rbelow(r, 2) ? 1 : -1;
        size_t i = want;
        for (int s = 0; s < 3; s++) {
            rc = dir > 0 ? f->vt->next(cur) : f->vt->prev(cur);
            if (dir > 0 ? i + 1 >= m->n : i == 0) {
                REQUIRE(rc == TS_ERR_NOT_FOUND, "step past the end after seek: %d", rc);
                break;
            }
            i += dir;
            REQUIRE(rc == TS_OK, "step after seek: %d %s", rc, ts_errmsg(f->db));
            REQUIRE(entry_is(f, cur, &m->e[i]), "step %d after seek mode %d differs", s, mode);
        }
    }
}

/* seek_entry (when the module has it) in every mode relative to (k, v)
 * by the full (key, value) order, then one step each way. */
static void check_seek_entries(fx *f, void *cur, const model *m, const uint8_t *k, size_t kl,
                               const uint8_t *v, size_t vl)
{
    size_t lb = model_lb(m, k, kl, v, vl, 0);
    int eq = lb < m->n && bcmp2(m->e[lb].k, m->e[lb].kl, k, kl) == 0 &&
             bcmp2(m->e[lb].v, m->e[lb].vl, v, vl) == 0;
    size_t gt = lb + (size_t)eq;
    for (int mode = TS_SEEK_GE; mode <= TS_SEEK_LT; mode++) {
        size_t want = mode == TS_SEEK_GE ? (lb < m->n ? lb : (size_t)-1)
                    : mode == TS_SEEK_GT ? (gt < m->n ? gt : (size_t)-1)
                    : mode == TS_SEEK_LE ? (gt ? gt - 1 : (size_t)-1)
                                         : (lb ? lb - 1 : (size_t)-1);
        int rc = f->vt->seek_entry(cur, k, kl, v, vl, mode);
        if (want == (size_t)-1) {
            REQUIRE(rc == TS_ERR_NOT_FOUND, "seek_entry mode %d: %d, model: none", mode, rc);
            continue;
        }
        REQUIRE(rc == TS_OK, "seek_entry mode %d: %d %s, model: entry %zu", mode, rc,
                ts_errmsg(f->db), want);
        REQUIRE(entry_is(f, cur, &m->e[want]), "seek_entry mode %d: wrong entry (model %zu of %zu)",
                mode, want, m->n);
        rc = mode <= TS_SEEK_GT ? f->vt->prev(cur) : f->vt->next(cur);
        if (mode <= TS_SEEK_GT ? want == 0 : want + 1 >= m->n) {
            REQUIRE(rc == TS_ERR_NOT_FOUND, "step past the end after seek_entry: %d", rc);
        } else {
            REQUIRE(rc == TS_OK, "step after seek_entry: %d %s", rc, ts_errmsg(f->db));
            REQUIRE(entry_is(f, cur, &m->e[mode <= TS_SEEK_GT ? want - 1 : want + 1]),
                    "step after seek_entry mode %d differs", mode);
        }
    }
}

/* A prefix scan (seek GE to the prefix, next while keys start with it)
 * lists exactly the model's entries under the prefix, in order; and
 * backward (seek LT the prefix's successor, prev) in reverse order. */
static void check_prefix(fx *f, void *cur, const model *m, const uint8_t *p, size_t pl)
{
    size_t i = model_lb(m, p, pl, NULL, 0, -1), n = 0;
    int rc = f->vt->seek(cur, p, pl, TS_SEEK_GE);
    while (rc == TS_OK) {
        const uint8_t *k, *v;
        size_t kl, vl;
        entry_of(f, cur, &k, &kl, &v, &vl);
        if (kl < pl || memcmp(k, p, pl) != 0) break;
        REQUIRE(i + n < m->n && entry_is(f, cur, &m->e[i + n]), "prefix scan (%zu bytes): entry %zu differs",
                pl, n);
        n++;
        rc = f->vt->next(cur);
    }
    REQUIRE(rc == TS_OK || rc == TS_ERR_NOT_FOUND, "prefix scan: %d %s", rc, ts_errmsg(f->db));
    size_t want = 0;
    while (i + want < m->n && m->e[i + want].kl >= pl && memcmp(m->e[i + want].k, p, pl) == 0) want++;
    REQUIRE(n == want, "prefix scan (%zu bytes): %zu entries, model %zu", pl, n, want);
    /* backward: from the last entry with the prefix (LT the prefix's
     * successor: trailing 0xFF bytes dropped, the last one incremented) */
    uint8_t succ[TS_INDEX_KEY_MAX];
    size_t sl = pl;
    memcpy(succ, p, pl);
    while (sl && succ[sl - 1] == 0xFF) sl--;
    if (!sl) return; /* no successor: the prefix runs to the end of the key space */
    succ[sl - 1]++;
    n = 0;
    rc = f->vt->seek(cur, succ, sl, TS_SEEK_LT);
    while (rc == TS_OK) {
        const uint8_t *k, *v;
        size_t kl, vl;
        entry_of(f, cur, &k, &kl, &v, &vl);
        if (kl < pl || memcmp(k, p, pl) != 0) break;
        REQUIRE(n < want && entry_is(f, cur, &m->e[i + want - 1 - n]),
                "backward prefix scan (%zu bytes): entry %zu from the end differs", pl, n);
        n++;
        rc = f->vt->prev(cur);
    }
    REQUIRE(rc == TS_OK || rc == TS_ERR_NOT_FOUND, "backward prefix scan: %d %s", rc, ts_errmsg(f->db));
    REQUIRE(n == want, "backward prefix scan (%zu bytes): %zu entries, model %zu", pl, n, want);
}

/* Lookups of present and absent keys, and (ordered) every seek mode. */
static void probe(fx *f, tstx *tx, const model *m, rng *r, int n)
{
    uint8_t *k = malloc(TS_INDEX_KEY_MAX);
    void *cur;
    OK(f->vt->cursor_open(f->idx, T(tx), &cur));
    for (int i = 0; i < n; i++) {
        size_t kl;
        if (m->n && rbelow(r, 2)) {
            const ent *e = &m->e[rbelow(r, m->n)];
            kl = e->kl;
            memcpy(k, e->k, kl);
            if (rbelow(r, 4) == 0 && kl) k[kl - 1] ^= (uint8_t)(1 + rbelow(r, 255)); /* a neighbour */
        } else {
            kl = gen_key(r, k);
        }
        check_get(f, cur, m, k, kl);
        if (f->ordered) check_seeks(f, cur, m, k, kl, r);
        if (f->ordered && f->vt->struct_size > offsetof(ts_index_vtab, seek_entry) &&
            f->vt->seek_entry) {
            /* the value of an entry with this key (exact resumes), or another */
            uint8_t v[64];
            size_t vl = 0, first;
            if (model_key_count(m, k, kl, &first) && rbelow(r, 2)) {
                const ent *e = &m->e[first + rbelow(r, model_key_count(m, k, kl, &first))];
                vl = e->vl < sizeof v ? e->vl : sizeof v;
                memcpy(v, e->v, vl);
            } else {
                vl = rbelow(r, sizeof v);
                for (size_t j = 0; j < vl; j++) v[j] = (uint8_t)rnext(r);
            }
            check_seek_entries(f, cur, m, k, kl, v, vl);
        }
        if (f->ordered) check_prefix(f, cur, m, k, kl ? rbelow(r, kl + 1) : 0);
    }
    f->vt->cursor_close(cur);
    free(k);
}

/* ---- operations mirrored on the model ------------------------------- */

/* Insert and check the result code; returns the code. */
static int do_insert(fx *f, tstx *tx, model *m, const void *k, size_t kl, const void *v,
                     size_t vl, int unique)
{
    int expect = TS_OK;
    if (model_has(m, k, kl, v, vl) || (unique && model_key_count(m, k, kl, NULL)))
        expect = TS_ERR_UNIQUE;
    int rc = f->vt->insert(f->idx, T(tx), k, kl, v, vl, unique);
    REQUIRE(rc == expect, "insert (%zu-byte key, %zu-byte value, unique %d): %d, want %d (%s)",
                  kl, vl, unique, rc, expect, ts_errmsg(f->db));
    if (rc == TS_OK) model_insert(m, k, kl, v, vl);
    return rc;
}

static int do_remove(fx *f, tstx *tx, model *m, const void *k, size_t kl, const void *v, size_t vl)
{
    size_t first, cnt = model_key_count(m, k, kl, &first);
    int expect = TS_OK;
    if (v) {
        if (!model_has(m, k, kl, v, vl)) expect = TS_ERR_NOT_FOUND;
    } else if (!cnt) {
        expect = TS_ERR_NOT_FOUND;
    }
    int rc = f->vt->remove(f->idx, T(tx), k, kl, v, vl);
    REQUIRE(rc == expect, "remove (%zu-byte key, %s): %d, want %d (%s)", kl,
                  v ? "one value" : "all values", rc, expect, ts_errmsg(f->db));
    if (rc == TS_OK) {
        if (v) model_del_at(m, model_lb(m, k, kl, v, vl, 0), 1);
        else model_del_at(m, first, cnt);
    }
    return rc;
}

/* One random step: mostly inserts early, mostly removes when large. */
static void random_op(fx *f, tstx *tx, model *m, rng *r, int unique, size_t target,
                      uint8_t *k, uint8_t *v, int big_ok)
{
    unsigned c = (unsigned)rbelow(r, 100);
    unsigned ins = m->n < target ? 60 : 35;
    if (c < ins) {
        size_t kl, vl;
        if (m->n && rbelow(r, 4) == 0) { /* an existing key: duplicates or a clash */
            const ent *e = &m->e[rbelow(r, m->n)];
            kl = e->kl;
            memcpy(k, e->k, kl);
        } else {
            kl = gen_key(r, k);
        }
        if (m->n && rbelow(r, 20) == 0) { /* the very same pair */
            const ent *e = &m->e[rbelow(r, m->n)];
            do_insert(f, tx, m, e->k, e->kl, e->v, e->vl, unique);
            return;
        }
        vl = gen_val(r, v, big_ok);
        do_insert(f, tx, m, k, kl, v, vl, unique);
    } else if (c < 90) {
        if (m->n && rbelow(r, 8)) {
            size_t i = rbelow(r, m->n);
            memcpy(k, m->e[i].k, m->e[i].kl);
            size_t kl = m->e[i].kl, vl = m->e[i].vl;
            memcpy(v, m->e[i].v, vl);
            do_remove(f, tx, m, k, kl, v, vl);
        } else {
            size_t kl = gen_key(r, k), vl = gen_val(r, v, 0);
            do_remove(f, tx, m, k, kl, v, vl);
        }
    } else if (c < 97) {
        size_t kl;
        if (m->n && rbelow(r, 4)) {
            size_t i = rbelow(r, m->n);
            kl = m->e[i].kl;
            memcpy(k, m->e[i].k, kl);
        } else {
            kl = gen_key(r, k);
        }
        do_remove(f, tx, m, k, kl, NULL, 0);
    } else {
        /* refused: a key one byte too long; nothing changes */
        memset(k, 'z', TS_INDEX_KEY_MAX + 1);
        int rc = f->vt->insert(f->idx, T(tx), k, TS_INDEX_KEY_MAX + 1, "v", 1, unique);
        REQUIRE(rc != TS_OK, "a key of TS_INDEX_KEY_MAX + 1 bytes was accepted");
    }
}

static uint8_t *g_kbuf, *g_vbuf;

static void bufs(void)
{
    if (!g_kbuf) g_kbuf = malloc(TS_INDEX_KEY_MAX + 8);
    if (!g_vbuf) g_vbuf = malloc(1 << 21);
}

/* ---- cases ---------------------------------------------------------- */

static void random_run(int unique, uint64_t seed, int txns, int ops, size_t target)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    bufs();
    rng r;
    rseed(&r, seed);
    model m, saved;
    model_init(&m);
    model_init(&saved);
    idx_create(f, SLOT_A);
    for (int t = 0; t < txns; t++) {
        int rollback = rbelow(&r, 5) == 0;
        model_copy(&saved, &m);
        tstx *tx = begin(f, 1);
        for (int i = 0; i < ops; i++) random_op(f, tx, &m, &r, unique, target, g_kbuf, g_vbuf, 1);
        if (t % 3 == 0) {
            verify_tx(f, tx, &m, "inside a write transaction");
            probe(f, tx, &m, &r, 20);
        }
        if (rollback) {
            tstx_rollback(tx);
            model_copy(&m, &saved);
        } else {
            commit(f, tx);
        }
        verify(f, &m, rollback ? "after rollback" : "after commit");
        if (t % 4 == 1) {
            tx = begin(f, 0);
            probe(f, tx, &m, &r, 60);
            tstx_rollback(tx);
        }
        if (t % 10 == 9) {
            fx_reopen(f, SLOT_A);
            verify(f, &m, "after reopen");
        }
    }
    /* empty it completely, then refill a little */
    tstx *tx = begin(f, 1);
    while (m.n) {
        size_t i = rbelow(&r, m.n);
        memcpy(g_kbuf, m.e[i].k, m.e[i].kl);
        do_remove(f, tx, &m, g_kbuf, m.e[i].kl, NULL, 0);
    }
    verify_tx(f, tx, &m, "emptied");
    for (int i = 0; i < 200; i++) random_op(f, tx, &m, &r, unique, 1000, g_kbuf, g_vbuf, 0);
    commit(f, tx);
    fx_reopen(f, SLOT_A);
    verify(f, &m, "refilled after reopen");
    model_free(&m);
    model_free(&saved);
    fx_end(f);
}

START_TEST(random_unique)
{
    int rounds = g_long ? 200 : 30;
    random_run(1, g_seed * 1000 + 1, rounds, 400, g_long ? 20000 : 3000);
}
END_TEST

START_TEST(random_nonunique)
{
    int rounds = g_long ? 200 : 30;
    random_run(0, g_seed * 1000 + 2, rounds, 400, g_long ? 20000 : 3000);
}
END_TEST

/* Many entries of one key, the empty key, empty values. */
START_TEST(duplicates_and_empty)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    bufs();
    rng r;
    rseed(&r, g_seed * 1000 + 3);
    model m;
    model_init(&m);
    idx_create(f, SLOT_A);
    tstx *tx = begin(f, 1);
    /* empty key with empty value and with others */
    do_insert(f, tx, &m, "", 0, "", 0, 0);
    do_insert(f, tx, &m, "", 0, "", 0, 0); /* the same pair: refused */
    do_insert(f, tx, &m, "", 0, "a", 1, 1); /* unique: the key exists */
    do_insert(f, tx, &m, "", 0, "a", 1, 0);
    do_insert(f, tx, &m, "k", 1, "", 0, 0);
    /* 3000 values under one key, a few hundred under its neighbours */
    for (int i = 0; i < 3000; i++) {
        uint8_t v[16];
        size_t vl = ts_key_int(v, sizeof v, 0, (int64_t)rbelow(&r, 1000000));
        if (!model_has(&m, "dup", 3, v, vl)) do_insert(f, tx, &m, "dup", 3, v, vl, 0);
    }
    for (int i = 0; i < 300; i++) {
        uint8_t v[16];
        size_t vl = ts_key_int(v, sizeof v, 0, i) - 1 - rbelow(&r, 3);
        if (!model_has(&m, "du", 2, v + 1, vl)) do_insert(f, tx, &m, "du", 2, v + 1, vl, 0);
        if (!model_has(&m, "dupe", 4, v + 1, vl)) do_insert(f, tx, &m, "dupe", 4, v + 1, vl, 0);
    }
    verify_tx(f, tx, &m, "duplicates");
    probe(f, tx, &m, &r, 50);
    commit(f, tx);
    fx_reopen(f, SLOT_A);
    verify(f, &m, "duplicates after reopen");
    /* remove every entry of "dup" at once, then the empty key's */
    tx = begin(f, 1);
    do_remove(f, tx, &m, "dup", 3, NULL, 0);
    do_remove(f, tx, &m, "dup", 3, NULL, 0);
    do_remove(f, tx, &m, "", 0, "", 0);
    do_remove(f, tx, &m, "", 0, "", 0);
    do_remove(f, tx, &m, "", 0, NULL, 0);
    commit(f, tx);
    verify(f, &m, "after removing duplicates");
    tx = begin(f, 0);
    probe(f, tx, &m, &r, 50);
    tstx_rollback(tx);
    model_free(&m);
    fx_end(f);
}
END_TEST

/* Keys of exactly TS_INDEX_KEY_MAX bytes; longer ones refused. */
START_TEST(max_keys)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    bufs();
    rng r;
    rseed(&r, g_seed * 1000 + 4);
    model m;
    model_init(&m);
    idx_create(f, SLOT_A);
    for (int unique = 1; unique >= 0; unique--) {
        tstx *tx = begin(f, 1);
        uint8_t *k = g_kbuf;
        for (int i = 0; i < 1500; i++) {
            size_t pre = rbelow(&r, 3) ? TS_INDEX_KEY_MAX - 1 - rbelow(&r, 8) : rbelow(&r, TS_INDEX_KEY_MAX);
            memset(k, 0x41 + unique, pre);
            for (size_t j = pre; j < TS_INDEX_KEY_MAX; j++) k[j] = (uint8_t)rnext(&r);
            size_t vl = rbelow(&r, 10) ? rbelow(&r, 40) : 2000 + rbelow(&r, 3000);
            for (size_t j = 0; j < vl; j++) g_vbuf[j] = (uint8_t)rnext(&r);
            if (unique || !m.n || rbelow(&r, 2)) do_insert(f, tx, &m, k, TS_INDEX_KEY_MAX, g_vbuf, vl, unique);
            else {
                const ent *e = &m.e[rbelow(&r, m.n)];
                do_insert(f, tx, &m, e->k, e->kl, g_vbuf, vl, 0);
            }
        }
        uint8_t *longk = malloc(TS_INDEX_KEY_MAX + 1000);
        memset(longk, 'q', TS_INDEX_KEY_MAX + 1000);
        REQ_NE(f->vt->insert(f->idx, T(tx), longk, TS_INDEX_KEY_MAX + 1, "", 0, 0), TS_OK);
        REQ_NE(f->vt->insert(f->idx, T(tx), longk, TS_INDEX_KEY_MAX + 1000, "", 0, 1), TS_OK);
        free(longk);
        verify_tx(f, tx, &m, "max keys");
        probe(f, tx, &m, &r, 100);
        commit(f, tx);
    }
    tstx *tx = begin(f, 1);
    for (int i = 0; i < 1500 && m.n; i++) {
        size_t j = rbelow(&r, m.n);
        memcpy(g_kbuf, m.e[j].k, m.e[j].kl);
        memcpy(g_vbuf, m.e[j].v, m.e[j].vl);
        do_remove(f, tx, &m, g_kbuf, m.e[j].kl, g_vbuf, m.e[j].vl);
    }
    commit(f, tx);
    fx_reopen(f, SLOT_A);
    verify(f, &m, "max keys after removes and reopen");
    model_free(&m);
    fx_end(f);
}
END_TEST

static void fill_val(uint8_t *v, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; v[i] = (uint8_t)x; }
}

/* Values of 100 KB and 1 MB (and a 16 MiB one in long mode). */
START_TEST(large_values)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    bufs();
    model m;
    model_init(&m);
    idx_create(f, SLOT_A);
    tstx *tx = begin(f, 0);
    uint64_t pages0, free0;
    tstx_counts(tx, &pages0, &free0);
    tstx_rollback(tx);
    size_t sizes[] = { 100 * 1024, 1 << 20, 100 * 1024 + 1, 3 * 4000 };
    size_t big = g_long ? (size_t)16 << 20 : 0;
    uint8_t *bv = big ? malloc(big) : NULL;
    tx = begin(f, 1);
    for (int i = 0; i < 4; i++) {
        fill_val(g_vbuf, sizes[i], (uint32_t)i);
        char key[8];
        snprintf(key, sizeof key, "big%d", i);
        do_insert(f, tx, &m, (uint8_t *)key, strlen(key), g_vbuf, sizes[i], 1);
        /* non-unique: the same key with a second large value sharing a prefix */
        g_vbuf[sizes[i] - 1] ^= 0x55;
        do_insert(f, tx, &m, (uint8_t *)"dupbig", 6, g_vbuf, sizes[i], 0);
    }
    if (big) {
        fill_val(bv, big, 99);
        do_insert(f, tx, &m, (uint8_t *)"huge", 4, bv, big, 1);
    }
    verify_tx(f, tx, &m, "large values");
    commit(f, tx);
    fx_reopen(f, SLOT_A);
    verify(f, &m, "large values after reopen");
    tx = begin(f, 0);
    rng r;
    rseed(&r, 5);
    probe(f, tx, &m, &r, 20);
    tstx_rollback(tx);
    /* removing them gives their pages back */
    tx = begin(f, 1);
    uint64_t pages1, free1;
    tstx_counts(tx, &pages1, &free1);
    while (m.n) {
        memcpy(g_kbuf, m.e[0].k, m.e[0].kl);
        do_remove(f, tx, &m, g_kbuf, m.e[0].kl, NULL, 0);
    }
    uint64_t pages2, free2;
    tstx_counts(tx, &pages2, &free2);
    REQUIRE(free2 - free1 >= (2 * (100 * 1024 + (1 << 20)) + big) / 65536,
                  "removing large values freed only %llu pages", (unsigned long long)(free2 - free1));
    commit(f, tx);
    verify(f, &m, "large values removed");
    free(bv);
    model_free(&m);
    fx_end(f);
}
END_TEST

/* Changes in a transaction vanish at rollback, even a whole new index. */
START_TEST(rollback)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    bufs();
    rng r;
    rseed(&r, g_seed * 1000 + 6);
    model m, w;
    model_init(&m);
    model_init(&w);
    idx_create(f, SLOT_A);
    tstx *tx = begin(f, 1);
    for (int i = 0; i < 2000; i++) random_op(f, tx, &m, &r, 0, 3000, g_kbuf, g_vbuf, 1);
    commit(f, tx);
    for (int round = 0; round < 5; round++) {
        model_copy(&w, &m);
        tx = begin(f, 1);
        for (int i = 0; i < 1500; i++) random_op(f, tx, &w, &r, 0, 500 + 1000 * round, g_kbuf, g_vbuf, 1);
        verify_tx(f, tx, &w, "before rollback");
        tstx_rollback(tx);
        verify(f, &m, "after rollback");
    }
    /* a rolled back drop leaves the index whole */
    tx = begin(f, 1);
    OK(f->vt->drop(f->idx, T(tx)));
    tstx_rollback(tx);
    verify(f, &m, "after a rolled back drop");
    model_free(&m);
    model_free(&w);
    fx_end(f);
}
END_TEST

/* ---- cursor stability ----------------------------------------------- */

/* Iterate while changing the index in the same transaction: each step
 * returns the neighbour of the last entry returned, in the index as it is
 * now; entry() pointers survive changes until the cursor moves. */
static void stability_run(int dir, uint64_t seed)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    bufs();
    rng r;
    rseed(&r, seed);
    model m;
    model_init(&m);
    idx_create(f, SLOT_A);
    tstx *tx = begin(f, 1);
    for (int i = 0; i < 3000; i++) random_op(f, tx, &m, &r, 0, 2500, g_kbuf, g_vbuf, 1);
    commit(f, tx);
    tx = begin(f, 1);
    void *cur;
    OK(f->vt->cursor_open(f->idx, T(tx), &cur));
    int rc = dir > 0 ? f->vt->first(cur) : f->vt->last(cur);
    ent last = { 0 };
    size_t steps = 0;
    uint8_t *k2 = malloc(TS_INDEX_KEY_MAX + 8), *v2 = malloc(1 << 17);
    while (rc == TS_OK) {
        const uint8_t *k, *v;
        size_t kl, vl;
        entry_of(f, cur, &k, &kl, &v, &vl);
        free(last.k);
        free(last.v);
        last.k = dup_bytes(k, kl);
        last.kl = kl;
        last.v = dup_bytes(v, vl);
        last.vl = vl;
        REQ(model_has(&m, k, kl, v, vl));
        /* change the index around the cursor */
        unsigned c = (unsigned)rbelow(&r, 10);
        if (c < 3) { /* delete the current entry */
            do_remove(f, tx, &m, last.k, last.kl, last.v, last.vl);
        } else if (c < 5 && m.n) { /* delete the next entry (or any) */
            size_t i = model_lb(&m, last.k, last.kl, last.v, last.vl, 0);
            i = dir > 0 ? i + 1 : (i ? i - 1 : 0);
            if (rbelow(&r, 3) == 0 || i >= m.n) i = rbelow(&r, m.n);
            memcpy(k2, m.e[i].k, m.e[i].kl);
            memcpy(v2, m.e[i].v, m.e[i].vl);
            do_remove(f, tx, &m, k2, m.e[i].kl, v2, m.e[i].vl);
        } else if (c < 8) { /* insert nearby or anywhere */
            size_t kl2 = last.kl, vl2;
            memcpy(k2, last.k, kl2);
            if (rbelow(&r, 2)) kl2 = gen_key(&r, k2);
            vl2 = gen_val(&r, v2, 0);
            if (!model_has(&m, k2, kl2, v2, vl2)) do_insert(f, tx, &m, k2, kl2, v2, vl2, 0);
        } else if (c < 9) { /* a burst that splits and merges pages */
            for (int j = 0; j < 50; j++) random_op(f, tx, &m, &r, 0, 2500, g_kbuf, g_vbuf, 0);
        }
        /* the pointers from entry() still hold the entry */
        REQUIRE(bcmp2(k, kl, last.k, last.kl) == 0 && bcmp2(v, vl, last.v, last.vl) == 0,
                      "entry() pointers changed before the cursor moved");
        rc = dir > 0 ? f->vt->next(cur) : f->vt->prev(cur);
        /* expected: the neighbour of `last` in the model now */
        size_t i = dir > 0 ? model_lb(&m, last.k, last.kl, last.v, last.vl, 0) : 0;
        size_t want;
        if (dir > 0) {
            if (i < m.n && ent_cmp(&m.e[i], &last) == 0) i++;
            want = i < m.n ? i : (size_t)-1;
        } else {
            i = model_lb(&m, last.k, last.kl, last.v, last.vl, 0);
            want = i ? i - 1 : (size_t)-1;
        }
        if (want == (size_t)-1) {
            REQUIRE(rc == TS_ERR_NOT_FOUND, "step %zu: past the end expected, got %d", steps, rc);
        } else {
            REQUIRE(rc == TS_OK, "step %zu: %d %s", steps, rc, ts_errmsg(f->db));
            REQUIRE(entry_is(f, cur, &m.e[want]), "step %zu: not the neighbour of the last entry", steps);
        }
        steps++;
    }
    REQUIRE(steps > 300, "only %zu steps", steps);
    f->vt->cursor_close(cur);
    verify_tx(f, tx, &m, "after iterating with changes");
    commit(f, tx);
    verify(f, &m, "after iterating with changes, committed");
    free(last.k);
    free(last.v);
    free(k2);
    free(v2);
    model_free(&m);
    fx_end(f);
}

START_TEST(cursor_stability)
{
    fx probe_f;
    fx_start(&probe_f, NULL);
    int ordered = probe_f.ordered;
    fx_end(&probe_f);
    if (!ordered) return; /* iteration order under change is undefined without order */
    stability_run(1, g_seed * 1000 + 7);
    stability_run(-1, g_seed * 1000 + 8);
}
END_TEST

/* Two cursors of one transaction, one changing the index while the other
 * stands on an entry; and many cursors in a read transaction. */
START_TEST(cursor_many)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    bufs();
    rng r;
    rseed(&r, g_seed * 1000 + 9);
    model m;
    model_init(&m);
    idx_create(f, SLOT_A);
    tstx *tx = begin(f, 1);
    for (int i = 0; i < 2000; i++) random_op(f, tx, &m, &r, 1, 1500, g_kbuf, g_vbuf, 0);
    void *cs[8];
    for (int i = 0; i < 8; i++) OK(f->vt->cursor_open(f->idx, T(tx), &cs[i]));
    for (int round = 0; round < 200 && m.n; round++) {
        for (int i = 0; i < 8; i++) {
            const ent *e = &m.e[rbelow(&r, m.n)];
            OK(f->vt->seek(cs[i], e->k, e->kl, TS_SEEK_EQ));
        }
        random_op(f, tx, &m, &r, 1, 1500, g_kbuf, g_vbuf, 0);
        for (int i = 0; i < 8; i++) {
            int rc = f->vt->next(cs[i]);
            REQ(rc == TS_OK || rc == TS_ERR_NOT_FOUND);
        }
    }
    for (int i = 0; i < 8; i++) f->vt->cursor_close(cs[i]);
    commit(f, tx);
    tx = begin(f, 0);
    for (int i = 0; i < 8; i++) OK(f->vt->cursor_open(f->idx, T(tx), &cs[i]));
    for (int i = 0; i < 8; i++) {
        int rc = i & 1 ? f->vt->last(cs[i]) : f->vt->first(cs[i]);
        REQ_EQ(rc, m.n ? TS_OK : TS_ERR_NOT_FOUND);
    }
    for (int i = 0; i < 8; i++) f->vt->cursor_close(cs[i]);
    tstx_rollback(tx);
    verify(f, &m, "cursor_many");
    model_free(&m);
    fx_end(f);
}
END_TEST

/* ---- reopen and crashes --------------------------------------------- */

typedef struct crashctx {
    fx      *f;
    uint64_t seed;
    rng      r;
    unsigned step;
    unsigned long crashes, kept, lost, commits;
} crashctx;

static int crashed_now(fx *f)
{
    int64_t down = 0;
    ts_storage_control(f->db, "crashed", 0, &down);
    return down == 1;
}

/* Compare without failing: 1 when the index equals m. */
static int equals_model(fx *f, const model *m)
{
    tstx *tx;
    if (tstx_begin(f->db->pg, 0, &tx)) return 0;
    void *cur;
    int same = 1;
    if (f->vt->cursor_open(f->idx, T(tx), &cur)) { tstx_rollback(tx); return 0; }
    model got;
    model_init(&got);
    int rc = f->vt->first(cur);
    for (; rc == TS_OK && got.n <= m->n; rc = f->vt->next(cur)) {
        const void *k, *v;
        size_t kl, vl;
        if (f->vt->entry(cur, &k, &kl, &v, &vl)) { same = 0; break; }
        if (got.n == got.cap) {
            got.cap = got.cap ? 2 * got.cap : 64;
            got.e = realloc(got.e, got.cap * sizeof *got.e);
        }
        got.e[got.n].k = dup_bytes(k, kl);
        got.e[got.n].kl = kl;
        got.e[got.n].v = dup_bytes(v, vl);
        got.e[got.n++].vl = vl;
    }
    if (rc != TS_ERR_NOT_FOUND || got.n != m->n) same = 0;
    if (same && got.n) qsort(got.e, got.n, sizeof *got.e, qsort_ent_cmp);
    for (size_t i = 0; same && i < got.n; i++) same = ent_cmp(&got.e[i], &m->e[i]) == 0;
    model_free(&got);
    f->vt->cursor_close(cur);
    tstx_rollback(tx);
    return same;
}

static void crash_arm(crashctx *c)
{
    static const int64_t spans[] = { 5, 30, 150, 800 };
    int64_t at = 1 + (int64_t)rbelow(&c->r, (uint64_t)spans[rbelow(&c->r, 4)]);
    int rc = ts_storage_control(c->f->db, "crash_at", at, NULL);
    REQUIRE(rc == TS_OK, "crash_at: %s", ts_errmsg(c->f->db));
}

/* After a failure: it must be the simulated power loss; reopen and find
 * the acknowledged state, or that plus the commit in flight. */
static void crash_recover(crashctx *c, tstx *tx, int rc, model *committed, const model *inflight)
{
    fx *f = c->f;
    REQUIRE(crashed_now(f), "seed %llu step %u: failure without a crash: %d %s",
                  (unsigned long long)c->seed, c->step, rc, ts_errmsg(f->db));
    if (tx) tstx_rollback(tx);
    idx_close(f);
    ts_close(f->db);
    db_open(f);
    c->crashes++;
    tstx *rt = begin(f, 0);
    uint64_t root = 0;
    tstx_root_get(rt, SLOT_A, &root);
    tstx_rollback(rt);
    if (!root) {
        /* the index's creation itself was lost */
        REQUIRE(committed->n == 0 && (!inflight || inflight->n == 0),
                      "seed %llu: the index vanished", (unsigned long long)c->seed);
        idx_create(f, SLOT_A);
    } else {
        OK(f->vt->open(&f->args, root, &f->idx));
        f->root = root;
    }
    if (inflight && equals_model(f, inflight)) {
        model_copy(committed, inflight);
        c->kept++;
    } else {
        REQUIRE(equals_model(f, committed), "seed %llu step %u: after a crash the index is neither "
                      "the acknowledged state (%zu entries)%s", (unsigned long long)c->seed, c->step,
                      committed->n, inflight ? " nor that plus the commit in flight" : "");
        if (inflight) c->lost++;
    }
    verify(f, committed, "after crash recovery");
    crash_arm(c);
}

static void crash_run(int unique, uint64_t seed, int txns)
{
    fx fx_, *f = &fx_;
    fx_start(f, "\"durability\": \"full\", \"cacheBytes\": 262144, \"storage\": {\"backend\": "
                "\"faulty\", \"options\": {\"inner\": \"posix\", \"passSync\": false}}");
    bufs();
    crashctx c = { f, seed, { 0 }, 0, 0, 0, 0, 0 };
    rseed(&c.r, seed);
    model committed, work;
    model_init(&committed);
    model_init(&work);
    idx_create(f, SLOT_A);
    crash_arm(&c);
    for (int t = 0; t < txns; t++) {
        c.step = (unsigned)t;
        model_copy(&work, &committed);
        tstx *tx;
        int rc = tstx_begin(f->db->pg, 1, &tx);
        if (rc) { crash_recover(&c, NULL, rc, &committed, NULL); continue; }
        int nops = 1 + (int)rbelow(&c.r, 120), failed = 0;
        for (int i = 0; i < nops && !failed; i++) {
            /* like random_op, but a failure may be the crash */
            unsigned k = (unsigned)rbelow(&c.r, 100);
            if (k < (work.n < 1500 ? 65u : 40u)) {
                size_t kl = gen_key(&c.r, g_kbuf), vl = gen_val(&c.r, g_vbuf, 1);
                int expect = model_has(&work, g_kbuf, kl, g_vbuf, vl) ||
                             (unique && model_key_count(&work, g_kbuf, kl, NULL)) ? TS_ERR_UNIQUE : TS_OK;
                rc = f->vt->insert(f->idx, T(tx), g_kbuf, kl, g_vbuf, vl, unique);
                if (rc == expect) { if (!rc) model_insert(&work, g_kbuf, kl, g_vbuf, vl); }
                else failed = rc ? rc : TS_ERR_UNKNOWN;
            } else if (work.n) {
                size_t j = rbelow(&c.r, work.n);
                memcpy(g_kbuf, work.e[j].k, work.e[j].kl);
                size_t kl = work.e[j].kl;
                rc = f->vt->remove(f->idx, T(tx), g_kbuf, kl, work.e[j].v, work.e[j].vl);
                if (rc == TS_OK) model_del_at(&work, j, 1);
                else failed = rc;
            }
        }
        if (failed) {
            REQUIRE(crashed_now(f), "seed %llu step %u: op failed without a crash: %d %s",
                          (unsigned long long)seed, c.step, failed, ts_errmsg(f->db));
            crash_recover(&c, tx, failed, &committed, NULL);
            continue;
        }
        if (rbelow(&c.r, 6) == 0) {
            tstx_rollback(tx);
            continue;
        }
        rc = tstx_commit(tx);
        if (rc) { crash_recover(&c, NULL, rc, &committed, &work); continue; }
        model_copy(&committed, &work);
        c.commits++;
        if (t % 25 == 24) { /* a clean reopen now and then */
            REQ_EQ(ts_storage_control(f->db, "crash_at", 0, NULL), TS_OK);
            if (crashed_now(f)) {
                /* the power loss came after the commit was acknowledged
                 * (e.g. in the checkpoint that followed it): recover that */
                crash_recover(&c, NULL, TS_ERR_IO, &committed, NULL);
                continue;
            }
            idx_close(f);
            REQ_EQ(ts_close(f->db), TS_OK);
            db_open(f);
            idx_open_slot(f, SLOT_A);
            REQUIRE(equals_model(f, &committed), "seed %llu: differs after a clean reopen",
                          (unsigned long long)seed);
            crash_arm(&c);
        }
    }
    REQUIRE(c.crashes >= 3, "only %lu crashes happened", c.crashes);
    if (getenv("TS_TEST_VERBOSE"))
        fprintf(stderr, "crash %s: %lu commits, %lu crashes (in-flight kept %lu, lost %lu), %zu entries\n",
                unique ? "unique" : "non-unique", c.commits, c.crashes, c.kept, c.lost, committed.n);
    model_free(&committed);
    model_free(&work);
    fx_end(f);
}

START_TEST(crash_unique) { crash_run(1, g_seed * 1000 + 10, g_long ? 1500 : 250); }
END_TEST

START_TEST(crash_nonunique) { crash_run(0, g_seed * 1000 + 11, g_long ? 1500 : 250); }
END_TEST

/* ---- bulk load ------------------------------------------------------ */

typedef struct feed {
    const model *m;
    size_t       i;
    int          reverse_at; /* swap two entries: not ascending */
} feed;

static int feed_next(void *ctx, const void **k, size_t *kl, const void **v, size_t *vl)
{
    feed *fd = ctx;
    if (fd->i >= fd->m->n) return 0;
    size_t j = fd->i++;
    if (fd->reverse_at && j == (size_t)fd->reverse_at) j--;
    *k = fd->m->e[j].k;
    *kl = fd->m->e[j].kl;
    *v = fd->m->e[j].v;
    *vl = fd->m->e[j].vl;
    return 1;
}

static int feed_fail(void *ctx, const void **k, size_t *kl, const void **v, size_t *vl)
{
    feed *fd = ctx;
    if (fd->i == 10) return TS_ERR_IO;
    return feed_next(ctx, k, kl, v, vl);
}

START_TEST(bulk_load)
{
    fx fx_, *f = &fx_;
    fx_start(f, "\"cacheBytes\": 33554432");
    if (!f->vt->bulk_load) { fx_end(f); return; }
    bufs();
    rng r;
    rseed(&r, g_seed * 1000 + 12);
    for (int unique = 1; unique >= 0; unique--) {
        /* sorted input: distinct pairs, with duplicate keys when non-unique */
        model m;
        model_init(&m);
        size_t n = g_long ? 1000000 : 60000;
        m.e = malloc(n * sizeof *m.e);
        m.cap = n;
        for (size_t i = 0; i < n; i++) {
            uint8_t k[40], v[16];
            size_t kl = ts_key_int(k, sizeof k, 0, (int64_t)(unique ? i : i / 3) * 7 - 1000);
            if (i % 97 == 0) { memset(k + kl, 'p', 20); kl += 20; } /* some longer keys */
            size_t vl = ts_key_int(v, sizeof v, 0, (int64_t)rbelow(&r, 1000));
            m.e[i].k = dup_bytes(k, kl);
            m.e[i].kl = kl;
            if (i % 5000 == 1) { /* a few large values */
                vl = 5000 + rbelow(&r, 20000);
                fill_val(g_vbuf, vl, (uint32_t)i);
                m.e[i].v = dup_bytes(g_vbuf, vl);
            } else {
                m.e[i].v = dup_bytes(v, vl);
            }
            m.e[i].vl = vl;
        }
        qsort(m.e, n, sizeof *m.e, ent_qcmp);
        size_t w = 0; /* distinct pairs; unique: distinct keys */
        for (size_t i = 0; i < n; i++) {
            if (w && (unique ? bcmp2(m.e[i].k, m.e[i].kl, m.e[w - 1].k, m.e[w - 1].kl) == 0
                             : ent_cmp(&m.e[i], &m.e[w - 1]) == 0)) {
                free(m.e[i].k);
                free(m.e[i].v);
                continue;
            }
            m.e[w++] = m.e[i];
        }
        m.n = w;
        /* bulk into one index, inserts into another */
        idx_create(f, SLOT_A);
        void *bulk_idx = f->idx;
        uint64_t bulk_root = f->root;
        tstx *tx = begin(f, 1);
        feed fd = { &m, 0, 0 };
        double t0 = now_s();
        OK(f->vt->bulk_load(bulk_idx, T(tx), feed_next, &fd));
        double t_bulk = now_s() - t0;
        /* a second bulk load into a non-empty index is refused */
        fd.i = 0;
        REQ_NE(f->vt->bulk_load(bulk_idx, T(tx), feed_next, &fd), TS_OK);
        commit(f, tx);
        idx_create(f, SLOT_B);
        void *ins_idx = f->idx;
        size_t *perm = malloc(m.n * sizeof *perm);
        for (size_t i = 0; i < m.n; i++) perm[i] = i;
        for (size_t i = m.n; i > 1; i--) { size_t j = rbelow(&r, i), t = perm[i - 1]; perm[i - 1] = perm[j]; perm[j] = t; }
        tx = begin(f, 1);
        t0 = now_s();
        for (size_t i = 0; i < m.n; i++) {
            const ent *e = &m.e[perm[i]];
            int rc = f->vt->insert(ins_idx, T(tx), e->k, e->kl, e->v, e->vl, unique);
            REQUIRE(rc == TS_OK, "insert %zu: %d %s", i, rc, ts_errmsg(f->db));
        }
        double t_ins = now_s() - t0;
        commit(f, tx);
        free(perm);
        if (getenv("TS_TEST_VERBOSE"))
            fprintf(stderr, "bulk_load %s: %zu entries: bulk %.3fs (%.0f/s), random inserts %.3fs (%.0f/s)\n",
                    unique ? "unique" : "non-unique", m.n, t_bulk, m.n / t_bulk, t_ins, m.n / t_ins);
        REQUIRE(t_bulk < t_ins, "bulk load (%.3fs) is not faster than inserts (%.3fs)", t_bulk, t_ins);
        verify(f, &m, "inserted");
        f->idx = bulk_idx;
        verify(f, &m, "bulk loaded");
        tx = begin(f, 0);
        probe(f, tx, &m, &r, 200);
        tstx_rollback(tx);
        /* the bulk-built index takes changes like any other */
        tx = begin(f, 1);
        for (int i = 0; i < 3000; i++) random_op(f, tx, &m, &r, unique, m.n, g_kbuf, g_vbuf, 0);
        commit(f, tx);
        verify(f, &m, "bulk loaded, then changed");
        /* unsorted input and a failing source are refused */
        idx_close(f);
        f->vt->close(ins_idx);
        tx = begin(f, 1);
        uint64_t root2;
        void *idx2;
        OK(f->vt->create(&f->args, T(tx), &root2));
        OK(f->vt->open(&f->args, root2, &idx2));
        feed bad = { &m, 0, (int)(m.n / 2) };
        REQ_NE(f->vt->bulk_load(idx2, T(tx), feed_next, &bad), TS_OK);
        tstx_rollback(tx);
        f->vt->close(idx2);
        tx = begin(f, 1);
        OK(f->vt->create(&f->args, T(tx), &root2));
        OK(f->vt->open(&f->args, root2, &idx2));
        feed fail = { &m, 0, 0 };
        REQ_EQ(f->vt->bulk_load(idx2, T(tx), feed_fail, &fail), TS_ERR_IO);
        tstx_rollback(tx);
        f->vt->close(idx2);
        /* an empty input makes an empty index */
        tx = begin(f, 1);
        OK(f->vt->create(&f->args, T(tx), &root2));
        OK(f->vt->open(&f->args, root2, &idx2));
        model empty;
        model_init(&empty);
        feed none = { &empty, 0, 0 };
        OK(f->vt->bulk_load(idx2, T(tx), feed_next, &none));
        f->idx = idx2;
        verify_tx(f, tx, &empty, "empty bulk load");
        tstx_rollback(tx);
        idx_close(f);
        (void)bulk_root;
        model_free(&m);
    }
    fx_end(f);
}
END_TEST

/* ---- drop ----------------------------------------------------------- */

START_TEST(drop_frees)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    bufs();
    rng r;
    rseed(&r, g_seed * 1000 + 13);
    uint64_t first_pages = 0;
    int rounds = g_long ? 30 : 8;
    for (int round = 0; round < rounds; round++) {
        model m;
        model_init(&m);
        tstx *tx = begin(f, 0);
        uint64_t base_pages, base_free;
        tstx_counts(tx, &base_pages, &base_free);
        tstx_rollback(tx);
        idx_create(f, SLOT_A);
        tx = begin(f, 1);
        rseed(&r, g_seed * 1000 + 13); /* the same content every round */
        for (int i = 0; i < 1500; i++) random_op(f, tx, &m, &r, 0, 100000, g_kbuf, g_vbuf, 1);
        commit(f, tx);
        tx = begin(f, 1);
        uint64_t pages, free0, free1;
        tstx_counts(tx, &pages, &free0);
        OK(f->vt->drop(f->idx, T(tx)));
        tstx_counts(tx, &pages, &free1);
        REQUIRE(free1 > free0, "drop freed no page");
        /* every page the index used is free again: pages in use are as
         * many as before it was created */
        REQUIRE(pages - free1 == base_pages - base_free, "after drop %llu pages are in use, "
                      "%llu before the index existed", (unsigned long long)(pages - free1),
                      (unsigned long long)(base_pages - base_free));
        OK(tstx_root_set(tx, SLOT_A, 0));
        commit(f, tx);
        idx_close(f);
        /* freed pages are reused: the file barely grows after round 0 (a
         * plugin may lay the same content out differently each time, e.g.
         * a hash seeded per index; leaks are caught exactly above) */
        if (round == 0) first_pages = pages;
        else REQUIRE(pages <= first_pages + first_pages / 4 + 8,
                           "page count grows across create/drop: %llu, first %llu",
                           (unsigned long long)pages, (unsigned long long)first_pages);
        model_free(&m);
    }
    fx_end(f);
}
END_TEST

/* ---- damaged pages -------------------------------------------------- */

/* Whatever an index's pages hold, every operation gives a result or
 * TS_ERR_CORRUPT (TS_ERR_FORMAT for a damaged format number; removes may
 * miss and inserts may clash as on any content), never a crash, a hang or
 * a sanitizer report.  Pages are damaged through the kernel (checksums
 * stay valid, as a bug in a writer would leave them), one at a time, then
 * mended, and the mended index must equal the model again.  Free pages
 * are damaged too: the kernel's free list must catch it. */
#define DMG_OK(rc, what, ...) do {                                                         \
        int rc_ = (rc);                                                                    \
        static const int ok_[] = { TS_OK, TS_ERR_CORRUPT, TS_ERR_FORMAT, __VA_ARGS__ };    \
        int hit_ = 0;                                                                      \
        for (size_t i_ = 0; i_ < sizeof ok_ / sizeof *ok_; i_++) hit_ |= rc_ == ok_[i_];   \
        REQUIRE(hit_, "round %d, page %llu: %s gave %d (%s): %s", round,                   \
                (unsigned long long)pg, what, rc_, ts_strerror(rc_), ts_errmsg(f->db));    \
        ncor += rc_ == TS_ERR_CORRUPT;                                                     \
    } while (0)

static int damaged_ops(fx *f, tstx *tx, const model *m, rng *r, int round, uint64_t pg)
{
    int ncor = 0;
    void *cur;
    int rc = f->vt->cursor_open(f->idx, T(tx), &cur);
    DMG_OK(rc, "a cursor", TS_OK);
    if (rc) return ncor;
    for (int dir = 0; dir < 2; dir++) {
        size_t steps = 0;
        for (rc = dir ? f->vt->last(cur) : f->vt->first(cur); rc == TS_OK && steps <= 4 * m->n + 64;
             rc = dir ? f->vt->prev(cur) : f->vt->next(cur), steps++) {
            const void *k, *v;
            size_t kl, vl;
            if ((rc = f->vt->entry(cur, &k, &kl, &v, &vl))) break;
        }
        DMG_OK(rc, "a scan", TS_ERR_NOT_FOUND);
        REQUIRE(steps <= 4 * m->n + 64, "round %d: a scan of %zu steps over %zu entries", round, steps, m->n);
    }
    for (int i = 0; i < 24; i++) {
        const ent *e = m->n ? &m->e[rbelow(r, m->n)] : NULL;
        size_t kl = e && rbelow(r, 4) ? e->kl : gen_key(r, g_kbuf);
        if (e && kl == e->kl) memcpy(g_kbuf, e->k, kl);
        int mode = f->ordered ? (int)rbelow(r, 5) : TS_SEEK_EQ;
        rc = f->vt->seek(cur, g_kbuf, kl, mode);
        DMG_OK(rc, "a seek", TS_ERR_NOT_FOUND);
        for (int j = 0; j < 3 && rc == TS_OK; j++) {
            const void *k, *v;
            size_t ekl, vl;
            if ((rc = f->vt->entry(cur, &k, &ekl, &v, &vl))) break;
            rc = f->vt->next(cur);
        }
        DMG_OK(rc, "entries after a seek", TS_ERR_NOT_FOUND);
    }
    f->vt->cursor_close(cur);
    for (int i = 0; i < 6; i++) {
        size_t kl = gen_key(r, g_kbuf), vl = gen_val(r, g_vbuf, i == 0);
        DMG_OK(f->vt->insert(f->idx, T(tx), g_kbuf, kl, g_vbuf, vl, (int)rbelow(r, 2)), "an insert",
               TS_ERR_UNIQUE);
        if (!m->n) continue;
        const ent *e = &m->e[rbelow(r, m->n)];
        DMG_OK(f->vt->remove(f->idx, T(tx), e->k, e->kl, rbelow(r, 3) ? e->v : NULL, e->vl), "a remove",
               TS_ERR_NOT_FOUND);
    }
    return ncor;
}

START_TEST(damaged_pages)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    bufs();
    rng r;
    rseed(&r, g_seed * 1000 + 17);
    model m;
    model_init(&m);
    idx_create(f, SLOT_A);
    tstx *tx = begin(f, 1);
    for (int i = 0; i < 2500; i++) random_op(f, tx, &m, &r, 0, 1500, g_kbuf, g_vbuf, rbelow(&r, 20) == 0);
    commit(f, tx);
    tx = begin(f, 0);
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    tstx_rollback(tx);
    int rounds = g_long ? 3000 : 300, corrupt = 0;
    uint64_t first = f->root < pages ? f->root : 2;
    for (int round = 0; round < rounds; round++) {
        /* the index's pages are those from its root on (and the free ones
         * among them); the ones before it are the kernel's catalog */
        uint64_t pg = first + rbelow(&r, pages - first);
        tstx *w = begin(f, 1);
        tspage *p;
        OK(tstx_get(w, pg, 1, &p));
        uint32_t ps = tstx_usable(w);
        uint8_t *d = tspage_data(p), *orig = malloc(ps);
        memcpy(orig, d, ps);
        int nd = 1 + (int)rbelow(&r, 8);
        for (int i = 0; i < nd; i++) {
            static const uint32_t vals[] = { 0, 1, 2, 3, 0xFF, 0x100, 0xFFFF, 0x10000, 0xFFFFFFFFu,
                                             0x7FFFFFFFu, 0x80000000u };
            uint32_t off = (uint32_t)rbelow(&r, ps - 8);
            switch (rbelow(&r, 4)) {
            case 0: d[off] = (uint8_t)rnext(&r); break;
            case 1: d[off] ^= (uint8_t)(1u << rbelow(&r, 8)); break;
            case 2: { /* a 16-bit field (offsets, lengths, counts) */
                uint16_t v = (uint16_t)(rbelow(&r, 2) ? rbelow(&r, ps + 64) : vals[rbelow(&r, 11)]);
                memcpy(d + (off & ~1u), &v, 2);
                break;
            }
            default: { /* a 32- or 64-bit field: page numbers, counts */
                uint64_t v = rbelow(&r, 2) ? rbelow(&r, pages + 4) : vals[rbelow(&r, 11)];
                memcpy(d + (off & ~3u), &v, rbelow(&r, 2) ? 4 : 8);
            }
            }
        }
        tspage_release(p);
        commit(f, w);
        idx_close(f);
        int rc = f->vt->open(&f->args, f->root, &f->idx), ncor = 0;
        if (rc) {
            f->idx = NULL;
            REQUIRE(rc == TS_ERR_CORRUPT || rc == TS_ERR_FORMAT, "round %d, page %llu: open gave %d: %s",
                    round, (unsigned long long)pg, rc, ts_errmsg(f->db));
            ncor = 1;
        } else {
            tx = begin(f, 1);
            ncor = damaged_ops(f, tx, &m, &r, round, pg);
            tstx_rollback(tx);
        }
        corrupt += ncor > 0;
        /* mended */
        idx_close(f);
        w = begin(f, 1);
        OK(tstx_get(w, pg, 1, &p));
        memcpy(tspage_data(p), orig, ps);
        tspage_release(p);
        commit(f, w);
        free(orig);
        OK(f->vt->open(&f->args, f->root, &f->idx));
        if (round % 25 == 24 || round == rounds - 1) verify(f, &m, "after mending a damaged page");
    }
    if (getenv("TS_TEST_VERBOSE"))
        fprintf(stderr, "damaged_pages (%s): %d rounds over %llu pages (%llu free), %d ended with a "
                "corruption error\n", g_plugin, rounds, (unsigned long long)(pages - first),
                (unsigned long long)nfree, corrupt);
    model_free(&m);
    fx_end(f);
}
END_TEST

/* ---- concurrent readers --------------------------------------------- */

#define WIN_BATCH 200
#define WIN_KEEP 5

typedef struct rd_shared {
    fx           *f;
    atomic_int    stop, failed;
    atomic_long   scans;
    char          why[256];
    pthread_mutex_t mu;
} rd_shared;

static void rd_fail(rd_shared *s, const char *why)
{
    pthread_mutex_lock(&s->mu);
    if (!atomic_load(&s->failed)) snprintf(s->why, sizeof s->why, "%s", why);
    atomic_store(&s->failed, 1);
    pthread_mutex_unlock(&s->mu);
}

static void win_val(int64_t key, uint8_t *v, size_t *vl)
{
    size_t n = key % 53 == 0 ? 3000 + (size_t)(key % 7) * 700 : 8 + (size_t)(key % 5);
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(key * 31 + (int64_t)i);
    *vl = n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Each snapshot holds keys [a, b), a and b multiples of WIN_BATCH, with
 * values win_val(key): scan it, check it, look some keys up. */
static void *reader(void *arg)
{
    rd_shared *s = arg;
    fx *f = s->f;
    int64_t *keys = malloc(sizeof *keys * WIN_BATCH * (WIN_KEEP + 2));
    uint8_t *want = malloc(8192);
    while (!atomic_load(&s->stop) && !atomic_load(&s->failed)) {
        tstx *tx;
        if (tstx_begin(f->db->pg, 0, &tx)) { rd_fail(s, "begin read"); break; }
        void *cur;
        if (f->vt->cursor_open(f->idx, T(tx), &cur)) { rd_fail(s, "cursor_open"); tstx_rollback(tx); break; }
        size_t n = 0;
        int rc = f->vt->first(cur);
        for (; rc == TS_OK; rc = f->vt->next(cur)) {
            const void *k, *v;
            size_t kl, vl, wl;
            if (f->vt->entry(cur, &k, &kl, &v, &vl)) { rd_fail(s, "entry"); break; }
            size_t off = 0;
            ts_key_item it;
            if (ts_key_next(k, kl, &off, &it) != 1 || it.tag != TS_KEY_INT) { rd_fail(s, "bad key"); break; }
            win_val(it.i, want, &wl);
            if (vl != wl || memcmp(v, want, vl)) { rd_fail(s, "bad value"); break; }
            if (n >= WIN_BATCH * (WIN_KEEP + 1)) { rd_fail(s, "too many entries"); break; }
            keys[n++] = it.i;
        }
        if (rc != TS_ERR_NOT_FOUND && !atomic_load(&s->failed)) rd_fail(s, "scan ended with an error");
        if (!atomic_load(&s->failed) && n) {
            if (!f->ordered) qsort(keys, n, sizeof *keys, cmp_i64);
            int ok = keys[0] % WIN_BATCH == 0 && (keys[n - 1] + 1) % WIN_BATCH == 0;
            for (size_t i = 1; i < n && ok; i++) ok = keys[i] == keys[i - 1] + 1;
            if (!ok) rd_fail(s, "a snapshot that no commit made");
            /* point lookups inside and just outside the window */
            for (int j = 0; j < 20 && ok; j++) {
                int64_t key = keys[0] - 2 + (int64_t)((size_t)(j * 7919) % (n + 4));
                uint8_t kb[16];
                size_t kl = ts_key_int(kb, sizeof kb, 0, key);
                int in = key >= keys[0] && key <= keys[n - 1];
                rc = f->vt->seek(cur, kb, kl, TS_SEEK_EQ);
                if (rc != (in ? TS_OK : TS_ERR_NOT_FOUND)) { rd_fail(s, "point lookup"); ok = 0; }
            }
        }
        f->vt->cursor_close(cur);
        tstx_rollback(tx);
        atomic_fetch_add(&s->scans, 1);
    }
    free(keys);
    free(want);
    return NULL;
}

START_TEST(concurrent_readers)
{
    fx fx_, *f = &fx_;
    fx_start(f, NULL);
    idx_create(f, SLOT_A);
    rd_shared s;
    memset(&s, 0, sizeof s);
    s.f = f;
    pthread_mutex_init(&s.mu, NULL);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) REQ_EQ(pthread_create(&th[i], NULL, reader, &s), 0);
    int commits = g_long ? 1500 : 150;
    uint8_t kb[16], vb[8192];
    for (int64_t c = 0; c < commits && !atomic_load(&s.failed); c++) {
        tstx *tx = begin(f, 1);
        for (int64_t key = c * WIN_BATCH; key < (c + 1) * WIN_BATCH; key++) {
            size_t kl = ts_key_int(kb, sizeof kb, 0, key), vl;
            win_val(key, vb, &vl);
            OK(f->vt->insert(f->idx, T(tx), kb, kl, vb, vl, 1));
        }
        if (c >= WIN_KEEP)
            for (int64_t key = (c - WIN_KEEP) * WIN_BATCH; key < (c - WIN_KEEP + 1) * WIN_BATCH; key++) {
                size_t kl = ts_key_int(kb, sizeof kb, 0, key);
                OK(f->vt->remove(f->idx, T(tx), kb, kl, NULL, 0));
            }
        commit(f, tx);
    }
    atomic_store(&s.stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    REQUIRE(!atomic_load(&s.failed), "reader: %s", s.why);
    REQUIRE(atomic_load(&s.scans) > 4, "readers made only %ld scans", atomic_load(&s.scans));
    pthread_mutex_destroy(&s.mu);
    fx_end(f);
}
END_TEST

/* ---- scale ---------------------------------------------------------- */

/* 50K (long: 1M) random 16-byte keys in one transaction: inserts, point
 * gets, a full scan, removing half.  Prints rates with TS_TEST_VERBOSE. */
START_TEST(scale)
{
    fx fx_, *f = &fx_;
    fx_start(f, "\"cacheBytes\": 268435456");
    size_t n = g_long ? 1000000 : 50000;
    rng r;
    rseed(&r, g_seed * 1000 + 14);
    uint8_t (*keys)[16] = malloc(n * 16);
    for (size_t i = 0; i < n; i++) {
        uint64_t a = rnext(&r), b = i; /* distinct: the index is in the low half */
        memcpy(keys[i], &a, 8);
        for (int j = 0; j < 8; j++) keys[i][8 + j] = (uint8_t)(b >> (8 * j));
    }
    idx_create(f, SLOT_A);
    tstx *tx = begin(f, 1);
    double t0 = now_s(), c0 = cpu_s();
    for (size_t i = 0; i < n; i++) {
        int rc = f->vt->insert(f->idx, T(tx), keys[i], 16, &i, sizeof i, 1);
        REQUIRE(rc == TS_OK, "insert %zu: %d %s", i, rc, ts_errmsg(f->db));
    }
    double t_ins = now_s() - t0, c_ins = cpu_s() - c0;
    t0 = now_s();
    c0 = cpu_s();
    void *cur;
    OK(f->vt->cursor_open(f->idx, T(tx), &cur));
    for (size_t i = 0; i < n; i++) {
        size_t j = (i * 7919) % n;
        int rc = f->vt->seek(cur, keys[j], 16, TS_SEEK_EQ);
        REQUIRE(rc == TS_OK, "get %zu: %d", j, rc);
        const void *k, *v;
        size_t kl, vl;
        OK(f->vt->entry(cur, &k, &kl, &v, &vl));
        REQ(vl == sizeof j && memcmp(v, &j, sizeof j) == 0);
    }
    double t_get = now_s() - t0, c_get = cpu_s() - c0;
    f->vt->cursor_close(cur);
    commit(f, tx);
    /* gets in a read transaction (committed pages, shared cache) */
    tx = begin(f, 0);
    OK(f->vt->cursor_open(f->idx, T(tx), &cur));
    t0 = now_s();
    c0 = cpu_s();
    for (size_t i = 0; i < n; i++) {
        size_t j = (i * 104729) % n;
        int rc = f->vt->seek(cur, keys[j], 16, TS_SEEK_EQ);
        REQUIRE(rc == TS_OK, "get %zu: %d", j, rc);
    }
    double t_rget = now_s() - t0, c_rget = cpu_s() - c0;
    t0 = now_s();
    size_t cnt = 0;
    for (int rc = f->vt->first(cur); rc == TS_OK; rc = f->vt->next(cur)) cnt++;
    double t_scan = now_s() - t0;
    REQ_EQ(cnt, n);
    f->vt->cursor_close(cur);
    tstx_rollback(tx);
    /* remove every other key */
    tx = begin(f, 1);
    t0 = now_s();
    for (size_t i = 0; i < n; i += 2) OK(f->vt->remove(f->idx, T(tx), keys[i], 16, NULL, 0));
    double t_del = now_s() - t0;
    commit(f, tx);
    tx = begin(f, 0);
    OK(f->vt->cursor_open(f->idx, T(tx), &cur));
    for (size_t i = 0; i < n; i += 97) {
        int rc = f->vt->seek(cur, keys[i], 16, TS_SEEK_EQ);
        REQ_EQ(rc, i % 2 ? TS_OK : TS_ERR_NOT_FOUND);
    }
    cnt = 0;
    for (int rc = f->vt->first(cur); rc == TS_OK; rc = f->vt->next(cur)) cnt++;
    REQ_EQ(cnt, n / 2);
    f->vt->cursor_close(cur);
    tstx_rollback(tx);
    if (getenv("TS_TEST_VERBOSE")) {
        fprintf(stderr, "scale %zu: insert %.0f/s, get (write txn) %.0f/s, get (read txn) %.0f/s, "
                "scan %.0f/s, remove %.0f/s\n", n, n / t_ins, n / t_get, n / t_rget, n / t_scan,
                (n / 2) / t_del);
        fprintf(stderr, "scale %zu per CPU second: insert %.0f/s, get (write txn) %.0f/s, "
                "get (read txn) %.0f/s\n", n, n / c_ins, n / c_get, n / c_rget);
    }
    free(keys);
    fx_end(f);
}
END_TEST

/* One case per test so that CK_RUN_CASE=<name> runs just that one. */
static void add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, g_long ? 3600 : 600);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

static Suite *suite(void)
{
    Suite *s = suite_create("index conformance");
    add(s, "random_unique", random_unique);
    add(s, "random_nonunique", random_nonunique);
    add(s, "duplicates_and_empty", duplicates_and_empty);
    add(s, "max_keys", max_keys);
    add(s, "large_values", large_values);
    add(s, "rollback", rollback);
    add(s, "cursor_stability", cursor_stability);
    add(s, "cursor_many", cursor_many);
    add(s, "crash_unique", crash_unique);
    add(s, "crash_nonunique", crash_nonunique);
    add(s, "bulk_load", bulk_load);
    add(s, "drop_frees", drop_frees);
    add(s, "damaged_pages", damaged_pages);
    add(s, "concurrent_readers", concurrent_readers);
    add(s, "scale", scale);
    return s;
}

int main(int argc, char **argv)
{
    const char *env = getenv("TS_INDEX_PLUGIN");
    if (argc > 1) g_plugin = argv[1];
    else if (env && *env) g_plugin = env;
    const char *l = getenv("TS_TEST_LONG");
    g_long = l && *l && strcmp(l, "0") != 0;
    const char *sd = getenv("TS_TEST_SEED");
    if (sd && *sd) g_seed = strtoull(sd, NULL, 10);
    /* A path (it has a '/'): the module is named like the file, less ".so". */
    static char name[TS_NAME_MAX + 1];
    const char *slash = strrchr(g_plugin, '/');
    if (slash) {
        snprintf(g_path, sizeof g_path, "%s", g_plugin);
        snprintf(name, sizeof name, "%s", slash + 1);
        size_t nl = strlen(name);
        if (nl > 3 && strcmp(name + nl - 3, ".so") == 0) name[nl - 3] = '\0';
        g_plugin = name;
    } else {
        snprintf(g_path, sizeof g_path, "%s/%s.so", TS_TEST_PLUGIN_DIR, g_plugin);
    }
    if (access(g_path, R_OK) != 0) {
        fprintf(stderr, "test_index_conformance: no plugin at %s\n", g_path);
        return 1;
    }
    fprintf(stderr, "index conformance: plugin '%s'%s\n", g_plugin, g_long ? " (long)" : "");
    int rc = tst_run(suite());
    free(g_kbuf);
    free(g_vbuf);
    return rc;
}
