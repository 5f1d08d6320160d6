/*
 * The hash index plugin (plugins/index/hash), loaded from the build tree
 * and driven through the kernel's index wrapper (catalog/ix.h), checked
 * against an in-memory reference model:
 *
 *  - edge cases: empty and maximum keys, 16 MiB values, limits, unique and
 *    non-unique inserts, the seek modes it refuses, unpositioned cursors;
 *  - random insert/remove/lookup/scan sequences in transactions that
 *    commit or roll back, with reopens, every result compared with the
 *    model (a set of (key, value) pairs);
 *  - growth to 200K entries and back to empty, with the pages it uses
 *    (nothing leaks: drop and shrinking give every page back);
 *  - overflow values, several large values under one key;
 *  - cursor stability: a scan that keeps going while its own transaction
 *    inserts (splitting buckets) and removes (merging them) visits every
 *    untouched entry exactly once;
 *  - power loss at random fault points (faulty backend), reopen, compare
 *    with the last acknowledged commit;
 *  - readers on other threads during writes;
 *  - pages touched per lookup (tstx_touched) at 10K and 100K entries (1M
 *    with TS_TEST_LONG=1), printed, and bounded.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/db.h"
#include "catalog/ix.h"
#include "tsupport.h"

#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)
#define ROOT_SLOT 20
#define VAL_MAX (16u << 20)

static int long_mode(void)
{
    const char *s = getenv("TS_TEST_LONG");
    return s && *s && strcmp(s, "0") != 0;
}

/* ---- random numbers ------------------------------------------------- */

typedef struct rng { uint64_t s; } rng;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rnext(rng *r) { return mix64(r->s += 0x9E3779B97F4A7C15ull); }
static uint64_t rbelow(rng *r, uint64_t n) { return rnext(r) % n; }

static rng rng_new(uint64_t salt)
{
    const char *s = getenv("TS_TEST_SEED");
    rng r = { (s && *s ? strtoull(s, NULL, 0) : 0x5EEDull) ^ mix64(salt) };
    return r;
}

/* ---- keys and values -------------------------------------------------
 * key(k): empty for k = 0, else LEB128(k) then filler: distinct for
 * distinct k, 1..~60 bytes, 1 in 500 long (up to 1024).
 * val(k, v): empty for v = 0, else LEB128(v) then filler; 1 in 300 large
 * enough for an overflow chain.  Both decode back to their numbers. */

static size_t leb(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static uint64_t unleb(const uint8_t *p, size_t len, size_t *used)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < len && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) { i++; break; }
    }
    *used = i;
    return v;
}

static size_t key_of(uint64_t k, uint8_t *out)
{
    if (!k) return 0;
    uint64_t h = mix64(k * 7 + 1);
    size_t n = leb(out, k);
    size_t len = h % 500 == 0 ? 200 + (h >> 20) % 825 : n + (h >> 12) % 40;
    if (len > TS_INDEX_KEY_MAX) len = TS_INDEX_KEY_MAX;
    for (size_t i = n; i < len; i++) out[i] = (uint8_t)mix64(h + i);
    return len < n ? n : len;
}

static size_t val_len(uint64_t k, uint64_t v)
{
    if (!v) return 0;
    uint64_t h = mix64(k * 1000003 + v);
    return h % 300 == 0 ? 2000 + (h >> 16) % 30000 : 2 + (h >> 8) % 40;
}

static void val_fill(uint64_t k, uint64_t v, uint8_t *out, size_t len)
{
    if (!v) return;
    size_t n = leb(out, v);
    uint64_t h = mix64(k * 31 + v);
    for (size_t i = n; i < len; i++) out[i] = (uint8_t)(h + i * 131);
}

/* ---- the model: which (k, v) pairs are present ------------------------- */

typedef struct model {
    uint32_t  K, V;
    uint8_t  *bits;   /* [K * V] */
    uint32_t *cnt;    /* values per key */
    uint64_t  total;
} model;

static void model_init(model *m, uint32_t K, uint32_t V)
{
    m->K = K;
    m->V = V;
    m->bits = calloc((size_t)K * V, 1);
    m->cnt = calloc(K, sizeof *m->cnt);
    m->total = 0;
}

static void model_free(model *m)
{
    free(m->bits);
    free(m->cnt);
}

static void model_copy(model *dst, const model *src)
{
    memcpy(dst->bits, src->bits, (size_t)src->K * src->V);
    memcpy(dst->cnt, src->cnt, src->K * sizeof *src->cnt);
    dst->total = src->total;
}

static int has(const model *m, uint64_t k, uint64_t v) { return m->bits[k * m->V + v]; }

static void put(model *m, uint64_t k, uint64_t v, int on)
{
    if (m->bits[k * m->V + v] == on) return;
    m->bits[k * m->V + v] = (uint8_t)on;
    m->cnt[k] += on ? 1 : (uint32_t)-1;
    m->total += on ? 1 : (uint64_t)-1;
}

/* ---- databases ------------------------------------------------------------ */

typedef struct hdb {
    char   *dir;
    int     faulty;
    ts_db  *db;
    tsix   *ix;
    uint64_t root;
} hdb;

static const char *emsg(hdb *h) { return h->db ? ts_errmsg(h->db) : ts_errmsg(NULL); }

static int db_open_rc(hdb *h, const char *extra)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"path\": \"%s\", \"plugins\": [\"%s/hash.so\"], \"durability\": \"full\"%s%s%s}",
             h->dir, TS_TEST_PLUGIN_DIR,
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
    return tsix_open(&h->db->env, h->db->reg, "hash", NULL, h->root, "test", &h->ix);
}

static void db_open(hdb *h, const char *extra)
{
    int rc = db_open_rc(h, extra);
    REQUIRE(rc == TS_OK, "open %s: %s", h->dir, ts_errmsg(h->db));
}

/* Create the index (when none yet) in its own transaction. */
static void ix_create(hdb *h)
{
    tstx *tx;
    REQUIRE(tstx_begin(h->db->pg, 1, &tx) == TS_OK, "begin: %s", emsg(h));
    int rc = tsix_create(&h->db->env, h->db->reg, "hash", NULL, tx, &h->root);
    REQUIRE(rc == TS_OK, "create: %s", emsg(h));
    REQUIRE(tstx_root_set(tx, ROOT_SLOT, h->root) == TS_OK, "root_set");
    REQUIRE(tstx_commit(tx) == TS_OK, "commit: %s", emsg(h));
    rc = tsix_open(&h->db->env, h->db->reg, "hash", NULL, h->root, "test", &h->ix);
    REQUIRE(rc == TS_OK, "open index: %s", emsg(h));
}

static int db_close(hdb *h)
{
    tsix_close(h->ix);
    h->ix = NULL;
    int rc = ts_close(h->db);
    h->db = NULL;
    return rc;
}

static void db_new(hdb *h, const char *name, int faulty, const char *extra)
{
    memset(h, 0, sizeof *h);
    h->dir = tst_tmpdir(name);
    h->faulty = faulty;
    db_open(h, extra);
    ix_create(h);
}

static void db_done(hdb *h)
{
    if (h->db) db_close(h);
    tst_rmrf(h->dir);
    free(h->dir);
}

static tstx *wbegin(hdb *h)
{
    tstx *tx;
    REQUIRE(tstx_begin(h->db->pg, 1, &tx) == TS_OK, "begin write: %s", emsg(h));
    return tx;
}

static tstx *rbegin(hdb *h)
{
    tstx *tx;
    REQUIRE(tstx_begin(h->db->pg, 0, &tx) == TS_OK, "begin read: %s", emsg(h));
    return tx;
}

static void commit(hdb *h, tstx *tx)
{
    int rc = tstx_commit(tx);
    REQUIRE(rc == TS_OK, "commit: %s", emsg(h));
}

/* Live pages (in the file, not free) as tx sees them. */
static uint64_t live_pages(tstx *tx)
{
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    return pages - nfree;
}

/* ---- operations checked against the model ------------------------------- */

static uint8_t *vbuf;   /* scratch for values (VAL_MAX + 1) */

static void scratch(void)
{
    if (!vbuf) vbuf = malloc(VAL_MAX + 1);
}

static int op_insert(hdb *h, tstx *tx, model *m, uint64_t k, uint64_t v, int unique)
{
    uint8_t key[TS_INDEX_KEY_MAX];
    size_t kl = key_of(k, key), vl = val_len(k, v);
    val_fill(k, v, vbuf, vl);
    int rc = tsix_insert(h->ix, tx, key, kl, vbuf, vl, unique);
    int want = (unique ? m->cnt[k] > 0 : has(m, k, v)) ? TS_ERR_UNIQUE : TS_OK;
    if (rc == TS_ERR_IO || rc == TS_ERR_READONLY) return rc; /* only with faults armed */
    REQUIRE(rc == want, "insert (%llu, %llu) unique %d: %d, want %d: %s", (unsigned long long)k,
            (unsigned long long)v, unique, rc, want, emsg(h));
    if (!rc) put(m, k, v, 1);
    return TS_OK;
}

static int op_remove(hdb *h, tstx *tx, model *m, uint64_t k, int64_t v)
{
    uint8_t key[TS_INDEX_KEY_MAX];
    size_t kl = key_of(k, key), vl = v < 0 ? 0 : val_len(k, (uint64_t)v);
    if (v >= 0) val_fill(k, (uint64_t)v, vbuf, vl);
    int rc = tsix_remove(h->ix, tx, key, kl, v < 0 ? NULL : vbuf, vl);
    int want = (v < 0 ? m->cnt[k] > 0 : has(m, k, (uint64_t)v)) ? TS_OK : TS_ERR_NOT_FOUND;
    if (rc == TS_ERR_IO || rc == TS_ERR_READONLY) return rc;
    REQUIRE(rc == want, "remove (%llu, %lld): %d, want %d: %s", (unsigned long long)k, (long long)v,
            rc, want, emsg(h));
    if (!rc) {
        if (v >= 0) put(m, k, (uint64_t)v, 0);
        else for (uint32_t i = 0; i < m->V; i++) put(m, k, i, 0);
    }
    return TS_OK;
}

/* Decode an entry to (k, v) and check its bytes; 0 when they are not ours. */
static int decode_entry(const void *kp, size_t kl, const void *vp, size_t vl, uint64_t *k, uint64_t *v)
{
    size_t used;
    *k = kl ? unleb(kp, kl, &used) : 0;
    *v = vl ? unleb(vp, vl, &used) : 0;
    uint8_t key[TS_INDEX_KEY_MAX];
    if (key_of(*k, key) != kl || (kl && memcmp(key, kp, kl))) return 0;
    if (val_len(*k, *v) != vl) return 0;
    if (vl) {
        val_fill(*k, *v, vbuf, vl);
        if (memcmp(vbuf, vp, vl)) return 0;
    }
    return 1;
}

/* seek(key(k)) and the entries after it that share the key: exactly the
 * model's values of k.  Returns 0 (with why) on a mismatch. */
static int check_key(hdb *h, tstx *tx, const model *m, uint64_t k, char *why, size_t n)
{
    uint8_t key[TS_INDEX_KEY_MAX];
    size_t kl = key_of(k, key);
    tsix_cur c;
    REQUIRE(tsix_cursor(h->ix, tx, &c) == TS_OK, "cursor");
    int rc = tsix_seek(&c, key, kl, TS_SEEK_EQ), ok = 1;
    uint32_t seen = 0;
    uint8_t mark[64] = { 0 };
    while (rc == TS_OK) {
        const void *ek, *ev;
        size_t ekl, evl;
        REQUIRE(tsix_entry(&c, &ek, &ekl, &ev, &evl) == TS_OK, "entry");
        if (ekl != kl || (kl && memcmp(ek, key, kl))) break;
        uint64_t dk, dv;
        if (!decode_entry(ek, ekl, ev, evl, &dk, &dv) || dk != k || dv >= m->V || mark[dv] ||
            !has(m, k, dv)) {
            snprintf(why, n, "key %llu: unexpected value %llu", (unsigned long long)k,
                     (unsigned long long)dv);
            ok = 0;
            break;
        }
        mark[dv] = 1;
        seen++;
        rc = tsix_next(&c);
    }
    if (ok && rc != TS_OK && rc != TS_ERR_NOT_FOUND) {
        snprintf(why, n, "key %llu: cursor error %d: %s", (unsigned long long)k, rc, emsg(h));
        ok = 0;
    }
    if (ok && seen != m->cnt[k]) {
        snprintf(why, n, "key %llu: %u values found, model has %u", (unsigned long long)k, seen,
                 m->cnt[k]);
        ok = 0;
    }
    tsix_cursor_close(&c);
    return ok;
}

/* A full scan forwards, then backwards: every entry of the model exactly
 * once, the backward order the reverse of the forward one. */
static int check_all(hdb *h, tstx *tx, const model *m, char *why, size_t n)
{
    uint64_t *seq = malloc((m->total + 1) * sizeof *seq);
    uint8_t *seen = calloc((size_t)m->K * m->V, 1);
    uint64_t cnt = 0;
    int ok = 1;
    tsix_cur c;
    REQUIRE(tsix_cursor(h->ix, tx, &c) == TS_OK, "cursor");
    int rc = tsix_first(&c);
    for (; rc == TS_OK; rc = tsix_next(&c)) {
        const void *ek, *ev;
        size_t ekl, evl;
        REQUIRE(tsix_entry(&c, &ek, &ekl, &ev, &evl) == TS_OK, "entry");
        uint64_t k, v;
        if (!decode_entry(ek, ekl, ev, evl, &k, &v) || k >= m->K || v >= m->V) {
            snprintf(why, n, "scan: foreign entry (key %zu bytes, value %zu bytes)", ekl, evl);
            ok = 0;
            break;
        }
        if (!has(m, k, v) || seen[k * m->V + v] || cnt >= m->total) {
            snprintf(why, n, "scan: (%llu, %llu) %s", (unsigned long long)k, (unsigned long long)v,
                     !has(m, k, v) ? "is not in the model" : "seen twice (or too many)");
            ok = 0;
            break;
        }
        seen[k * m->V + v] = 1;
        seq[cnt++] = k * m->V + v;
    }
    if (ok && rc != TS_ERR_NOT_FOUND) {
        snprintf(why, n, "scan: cursor error %d: %s", rc, emsg(h));
        ok = 0;
    }
    if (ok && cnt != m->total) {
        snprintf(why, n, "scan: %llu entries, model has %llu", (unsigned long long)cnt,
                 (unsigned long long)m->total);
        ok = 0;
    }
    /* backwards */
    uint64_t back = cnt;
    rc = ok ? tsix_last(&c) : TS_ERR_NOT_FOUND;
    for (; ok && rc == TS_OK; rc = tsix_prev(&c)) {
        const void *ek, *ev;
        size_t ekl, evl;
        tsix_entry(&c, &ek, &ekl, &ev, &evl);
        uint64_t k, v;
        decode_entry(ek, ekl, ev, evl, &k, &v);
        if (!back || seq[back - 1] != k * m->V + v) {
            snprintf(why, n, "reverse scan differs at %llu", (unsigned long long)back);
            ok = 0;
            break;
        }
        back--;
    }
    if (ok && (rc != TS_ERR_NOT_FOUND || back)) {
        snprintf(why, n, "reverse scan: rc %d, %llu left", rc, (unsigned long long)back);
        ok = 0;
    }
    tsix_cursor_close(&c);
    free(seq);
    free(seen);
    return ok;
}

static void require_all(hdb *h, const model *m)
{
    char why[256];
    tstx *tx = rbegin(h);
    int ok = check_all(h, tx, m, why, sizeof why);
    tstx_rollback(tx);
    REQUIRE(ok, "%s", why);
}

/* ---- edge cases --------------------------------------------------------------- */

static int ins(hdb *h, tstx *tx, const char *k, size_t kl, const char *v, size_t vl, int u)
{
    return tsix_insert(h->ix, tx, k, kl, v, vl, u);
}

static int get(hdb *h, tstx *tx, const void *k, size_t kl, char *out, size_t cap, size_t *vl)
{
    void *v;
    int rc = tsix_get(h->ix, tx, k, kl, &v, vl);
    if (!rc) {
        memcpy(out, v, *vl < cap ? *vl : cap);
        free(v);
    }
    return rc;
}

START_TEST(basics)
{
    hdb h;
    db_new(&h, "hash-basic", 0, NULL);
    scratch();
    tstx *tx = wbegin(&h);
    tsix_cur c;
    char out[64];
    size_t vl;

    /* empty */
    ck_assert_int_eq(tsix_cursor(h.ix, tx, &c), TS_OK);
    ck_assert_int_eq(tsix_first(&c), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(tsix_last(&c), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(tsix_next(&c), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(tsix_seek(&c, "a", 1, TS_SEEK_EQ), TS_ERR_NOT_FOUND);
    const void *ek, *ev;
    size_t ekl, evl;
    ck_assert_int_eq(tsix_entry(&c, &ek, &ekl, &ev, &evl), TS_ERR_NOT_FOUND);
    /* only equality seeks, with a message */
    for (int mode = TS_SEEK_GE; mode <= TS_SEEK_LT; mode++) {
        ck_assert_int_eq(tsix_seek(&c, "a", 1, mode), TS_ERR_UNSUPPORTED);
        ck_assert_msg(strstr(ts_errmsg(h.db), "TS_SEEK_EQ"), "message: %s", ts_errmsg(h.db));
    }
    tsix_cursor_close(&c);

    /* unique and non-unique */
    ck_assert_int_eq(ins(&h, tx, "k", 1, "v1", 2, 1), TS_OK);
    ck_assert_int_eq(ins(&h, tx, "k", 1, "v2", 2, 1), TS_ERR_UNIQUE);
    ck_assert_msg(strstr(ts_errmsg(h.db), "already"), "message: %s", ts_errmsg(h.db));
    ck_assert_int_eq(ins(&h, tx, "k", 1, "v1", 2, 0), TS_ERR_UNIQUE); /* the same pair */
    ck_assert_int_eq(ins(&h, tx, "k", 1, "v2", 2, 0), TS_OK);
    ck_assert_int_eq(ins(&h, tx, "k", 1, "", 0, 0), TS_OK);           /* empty value */
    ck_assert_int_eq(ins(&h, tx, "k", 1, "v3", 2, 1), TS_ERR_UNIQUE);
    ck_assert_int_eq(ins(&h, tx, "", 0, "empty key", 9, 1), TS_OK);   /* empty key */
    ck_assert_int_eq(get(&h, tx, "", 0, out, sizeof out, &vl), TS_OK);
    ck_assert_uint_eq(vl, 9);
    ck_assert_int_eq(get(&h, tx, "k\0", 2, out, sizeof out, &vl), TS_ERR_NOT_FOUND);

    /* the three values of "k" come one after the other from the seek */
    ck_assert_int_eq(tsix_cursor(h.ix, tx, &c), TS_OK);
    ck_assert_int_eq(tsix_seek(&c, "k", 1, TS_SEEK_EQ), TS_OK);
    int n = 0, mask = 0;
    do {
        ck_assert_int_eq(tsix_entry(&c, &ek, &ekl, &ev, &evl), TS_OK);
        if (ekl != 1 || memcmp(ek, "k", 1)) break;
        ck_assert_ptr_nonnull(ev);
        mask |= evl == 0 ? 1 : !memcmp(ev, "v1", 2) ? 2 : !memcmp(ev, "v2", 2) ? 4 : 8;
        n++;
    } while (tsix_next(&c) == TS_OK);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(mask, 7);
    tsix_cursor_close(&c);

    /* remove one pair, then all of a key */
    ck_assert_int_eq(tsix_remove(h.ix, tx, "k", 1, "v9", 2), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(tsix_remove(h.ix, tx, "k", 1, "v1", 2), TS_OK);
    ck_assert_int_eq(tsix_remove(h.ix, tx, "k", 1, "v1", 2), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(tsix_remove(h.ix, tx, "k", 1, NULL, 0), TS_OK);
    ck_assert_int_eq(tsix_remove(h.ix, tx, "k", 1, NULL, 0), TS_ERR_NOT_FOUND);
    ck_assert_int_eq(get(&h, tx, "k", 1, out, sizeof out, &vl), TS_ERR_NOT_FOUND);

    /* limits */
    uint8_t big[TS_INDEX_KEY_MAX + 1];
    memset(big, 0xFF, sizeof big);
    ck_assert_int_eq(tsix_insert(h.ix, tx, big, TS_INDEX_KEY_MAX, "x", 1, 1), TS_OK);
    ck_assert_int_eq(tsix_insert(h.ix, tx, big, TS_INDEX_KEY_MAX + 1, "x", 1, 1), TS_ERR_VALIDATION);
    ck_assert_int_eq(tsix_remove(h.ix, tx, big, TS_INDEX_KEY_MAX + 1, NULL, 0), TS_ERR_VALIDATION);
    ck_assert_int_eq(get(&h, tx, big, TS_INDEX_KEY_MAX, out, sizeof out, &vl), TS_OK);
    ck_assert_int_eq(tsix_insert(h.ix, tx, "v", 1, vbuf, VAL_MAX + 1, 1), TS_ERR_VALIDATION);
    for (size_t i = 0; i < VAL_MAX; i++) vbuf[i] = (uint8_t)(i * 7 + (i >> 13));
    ck_assert_int_eq(tsix_insert(h.ix, tx, "v", 1, vbuf, VAL_MAX, 1), TS_OK);
    ck_assert_int_eq(tsix_insert(h.ix, tx, NULL, 3, "x", 1, 1), TS_ERR_INVALID);
    commit(&h, tx);

    /* in a read transaction: the 16 MiB value back; no writes */
    tx = rbegin(&h);
    void *v;
    ck_assert_int_eq(tsix_get(h.ix, tx, "v", 1, &v, &vl), TS_OK);
    ck_assert_uint_eq(vl, VAL_MAX);
    ck_assert(memcmp(v, vbuf, VAL_MAX) == 0);
    free(v);
    ck_assert_int_eq(ins(&h, tx, "w", 1, "x", 1, 1), TS_ERR_INVALID);
    ck_assert_int_eq(tsix_remove(h.ix, tx, "v", 1, NULL, 0), TS_ERR_INVALID);
    tstx_rollback(tx);

    /* the 16 MiB value goes, its pages with it */
    tx = wbegin(&h);
    uint64_t before = live_pages(tx);
    ck_assert_int_eq(tsix_remove(h.ix, tx, "v", 1, NULL, 0), TS_OK);
    ck_assert_uint_ge(before - live_pages(tx), VAL_MAX / 4096);
    commit(&h, tx);

    /* survives a reopen */
    db_close(&h);
    db_open(&h, NULL);
    tx = rbegin(&h);
    ck_assert_int_eq(get(&h, tx, "", 0, out, sizeof out, &vl), TS_OK);
    ck_assert(vl == 9 && !memcmp(out, "empty key", 9));
    ck_assert_int_eq(get(&h, tx, big, TS_INDEX_KEY_MAX, out, sizeof out, &vl), TS_OK);
    ck_assert_int_eq(get(&h, tx, "v", 1, out, sizeof out, &vl), TS_ERR_NOT_FOUND);
    tstx_rollback(tx);
    db_done(&h);
}
END_TEST

/* The module as the kernel lists it. */
START_TEST(descriptor)
{
    hdb h;
    db_new(&h, "hash-desc", 0, NULL);
    const tsreg_module *m = tsreg_lookup(h.db->reg, TS_KIND_INDEX, "hash");
    ck_assert_ptr_nonnull(m);
    const ts_index_vtab *vt = m->vtab;
    ck_assert_uint_eq(vt->caps, TS_INDEX_UNIQUE);
    ck_assert(m->desc.flags & TS_MODULE_THREAD_SAFE);
    ck_assert_ptr_nonnull(vt->last);
    ck_assert_ptr_nonnull(vt->prev);
    db_done(&h);
}
END_TEST

/* ---- random operations against the model ------------------------------------- */

static void random_ops(hdb *h, tstx *tx, model *m, rng *r, int nops)
{
    char why[256];
    for (int i = 0; i < nops; i++) {
        uint64_t k = rbelow(r, m->K), v = rbelow(r, m->V), p = rbelow(r, 100);
        if (p < 50) op_insert(h, tx, m, k, v, (int)rbelow(r, 2));
        else if (p < 70) op_remove(h, tx, m, k, (int64_t)v);
        else if (p < 78) op_remove(h, tx, m, k, -1);
        else REQUIRE(check_key(h, tx, m, k, why, sizeof why), "%s", why);
    }
}

START_TEST(model_random)
{
    hdb h;
    db_new(&h, "hash-model", 0, "\"cacheBytes\": 1048576");
    scratch();
    rng r = rng_new(1);
    model m, saved;
    model_init(&m, 6000, 5);
    model_init(&saved, 6000, 5);
    int ntx = long_mode() ? 600 : 150;
    char why[256];
    for (int t = 0; t < ntx; t++) {
        model_copy(&saved, &m);
        tstx *tx = wbegin(&h);
        random_ops(&h, tx, &m, &r, 1 + (int)rbelow(&r, t % 10 == 0 ? 3000 : 300));
        if (t % 7 == 3) {
            int ok = check_all(&h, tx, &m, why, sizeof why); /* inside the writer */
            REQUIRE(ok, "tx %d (writer): %s", t, why);
        }
        if (rbelow(&r, 5) == 0) {
            tstx_rollback(tx);
            model_copy(&m, &saved);
        } else {
            commit(&h, tx);
        }
        if (t % 10 == 9) require_all(&h, &m);
        if (t % 40 == 39) {
            db_close(&h);
            db_open(&h, NULL);
        }
    }
    require_all(&h, &m);
    /* every key looked up after a reopen */
    db_close(&h);
    db_open(&h, NULL);
    tstx *tx = rbegin(&h);
    for (uint64_t k = 0; k < m.K; k++)
        REQUIRE(check_key(&h, tx, &m, k, why, sizeof why), "%s", why);
    tstx_rollback(tx);
    model_free(&m);
    model_free(&saved);
    db_done(&h);
}
END_TEST

/* ---- growth and shrinking -------------------------------------------------------- */

/* Pages touched by one seek, on average over `probes` random present keys:
 * with a new cursor for every lookup (as tsix_get does), or one cursor for
 * all of them (an IN list), which keeps what it read of the directory. */
static double touched_per_lookup_mode(hdb *h, uint64_t n, int probes, rng *r, int reuse)
{
    tstx *tx = rbegin(h);
    tsix_cur c;
    if (reuse) REQUIRE(tsix_cursor(h->ix, tx, &c) == TS_OK, "cursor");
    uint64_t total = 0;
    uint8_t key[TS_INDEX_KEY_MAX];
    for (int i = 0; i < probes; i++) {
        uint64_t k = 1 + rbelow(r, n);
        size_t kl = key_of(k, key);
        if (!reuse) REQUIRE(tsix_cursor(h->ix, tx, &c) == TS_OK, "cursor");
        uint64_t before = tstx_touched(tx);
        int rc = tsix_seek(&c, key, kl, TS_SEEK_EQ);
        total += tstx_touched(tx) - before;
        REQUIRE(rc == TS_OK, "lookup %llu: %d %s", (unsigned long long)k, rc, emsg(h));
        if (!reuse) tsix_cursor_close(&c);
    }
    if (reuse) tsix_cursor_close(&c);
    tstx_rollback(tx);
    return (double)total / probes;
}

static double touched_per_lookup(hdb *h, uint64_t n, int probes, rng *r)
{
    return touched_per_lookup_mode(h, n, probes, r, 0);
}

/* Insert keys 1..n (value: 8 bytes) in transactions of `batch`. */
static void fill_to(hdb *h, uint64_t from, uint64_t n, uint64_t batch)
{
    for (uint64_t k = from + 1; k <= n;) {
        tstx *tx = wbegin(h);
        for (uint64_t e = k + batch; k <= n && k < e; k++) {
            uint8_t key[TS_INDEX_KEY_MAX];
            size_t kl = key_of(k, key);
            uint8_t v[8];
            memcpy(v, &k, 8);
            int rc = tsix_insert(h->ix, tx, key, kl, v, 8, 1);
            REQUIRE(rc == TS_OK, "insert %llu: %s", (unsigned long long)k, emsg(h));
        }
        commit(h, tx);
    }
}

START_TEST(growth_and_shrink)
{
    hdb h;
    db_new(&h, "hash-grow", 0, NULL);
    scratch();
    rng r = rng_new(2);
    tstx *tx = rbegin(&h);
    uint64_t base = live_pages(tx);
    tstx_rollback(tx);
    const uint64_t N = 200000;
    fill_to(&h, 0, N, 20000);
    double t = touched_per_lookup(&h, N, 20000, &r);
    printf("hash: %llu entries: %.3f pages touched per lookup\n", (unsigned long long)N, t);
    REQUIRE(t <= 3.5, "%.3f pages per lookup at %llu entries", t, (unsigned long long)N);
    tx = rbegin(&h);
    uint64_t full = live_pages(tx) - base;
    uint32_t usable = tstx_usable(tx);
    tstx_rollback(tx);
    /* Space: records (14 bytes of header, key, 8-byte value) fill at least
     * 40% of the bucket pages. */
    uint64_t payload = 0;
    for (uint64_t k = 1; k <= N; k++) {
        uint8_t key[TS_INDEX_KEY_MAX];
        payload += 14 + key_of(k, key) + 8;
    }
    double fill = (double)payload / ((double)full * (usable - 24));
    printf("hash: %llu entries: %llu pages, %.0f%% full\n", (unsigned long long)N,
           (unsigned long long)full, fill * 100);
    REQUIRE(fill >= 0.40, "%llu pages for %llu entries: %.0f%% full", (unsigned long long)full,
            (unsigned long long)N, fill * 100);

    /* every key present with its value, after a reopen */
    db_close(&h);
    db_open(&h, NULL);
    tx = rbegin(&h);
    uint64_t cnt = 0;
    tsix_cur c;
    ck_assert_int_eq(tsix_cursor(h.ix, tx, &c), TS_OK);
    uint8_t *seen = calloc(N + 1, 1);
    for (int rc = tsix_first(&c); rc == TS_OK; rc = tsix_next(&c)) {
        const void *ek, *ev;
        size_t ekl, evl;
        tsix_entry(&c, &ek, &ekl, &ev, &evl);
        size_t used;
        uint64_t k = unleb(ek, ekl, &used);
        uint64_t v;
        REQUIRE(evl == 8, "value size");
        memcpy(&v, ev, 8);
        REQUIRE(k == v && k >= 1 && k <= N && !seen[k], "entry %llu", (unsigned long long)k);
        seen[k] = 1;
        cnt++;
    }
    free(seen);
    ck_assert_uint_eq(cnt, N);
    tsix_cursor_close(&c);
    tstx_rollback(tx);

    /* remove everything in random order: the index shrinks back */
    uint64_t *order = malloc(N * sizeof *order);
    for (uint64_t i = 0; i < N; i++) order[i] = i + 1;
    for (uint64_t i = N - 1; i > 0; i--) {
        uint64_t j = rbelow(&r, i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (uint64_t i = 0; i < N;) {
        tx = wbegin(&h);
        for (uint64_t e = i + 25000; i < N && i < e; i++) {
            uint8_t key[TS_INDEX_KEY_MAX];
            size_t kl = key_of(order[i], key);
            int rc = tsix_remove(h.ix, tx, key, kl, NULL, 0);
            REQUIRE(rc == TS_OK, "remove %llu: %s", (unsigned long long)order[i], emsg(&h));
        }
        commit(&h, tx);
    }
    free(order);
    tx = rbegin(&h);
    uint64_t left = live_pages(tx) - base;
    ck_assert_int_eq(tsix_cursor(h.ix, tx, &c), TS_OK);
    ck_assert_int_eq(tsix_first(&c), TS_ERR_NOT_FOUND);
    tsix_cursor_close(&c);
    tstx_rollback(tx);
    printf("hash: emptied: %llu pages left (of %llu)\n", (unsigned long long)left, (unsigned long long)full);
    REQUIRE(left <= 3, "%llu pages left in an empty index (was %llu)", (unsigned long long)left,
            (unsigned long long)full);

    /* and grows again */
    fill_to(&h, 0, 5000, 5000);
    t = touched_per_lookup(&h, 5000, 2000, &r);
    REQUIRE(t <= 3.5, "%.3f pages per lookup after regrowth", t);
    db_done(&h);
}
END_TEST

/* drop gives back every page, overflow chains and directory included. */
START_TEST(drop_frees_everything)
{
    hdb h;
    db_new(&h, "hash-drop", 0, NULL);
    scratch();
    rng r = rng_new(3);
    tstx *tx = rbegin(&h);
    uint64_t base = live_pages(tx) - 1; /* without the index's meta page */
    tstx_rollback(tx);
    model m;
    model_init(&m, 60000, 3);
    tx = wbegin(&h);
    for (uint64_t k = 0; k < m.K; k++) op_insert(&h, tx, &m, k, rbelow(&r, 3), 1);
    for (uint64_t k = 0; k < 3000; k++) op_insert(&h, tx, &m, k, 2, 0);
    commit(&h, tx);
    require_all(&h, &m);
    tx = wbegin(&h);
    ck_assert_uint_gt(live_pages(tx), base + 500);
    ck_assert_int_eq(tsix_drop(h.ix, tx), TS_OK);
    ck_assert_uint_eq(live_pages(tx), base);
    commit(&h, tx);
    tsix_close(h.ix);
    h.ix = NULL;
    model_free(&m);
    db_done(&h);
}
END_TEST

/* ---- overflow values ---------------------------------------------------------------- */

START_TEST(big_values_one_key)
{
    hdb h;
    db_new(&h, "hash-big", 0, NULL);
    scratch();
    /* 12 values under one key: 100 KB each, equal but for their last byte
     * (so ordering and matching must read whole overflow chains), plus
     * inline ones and ones of other lengths. */
    enum { NV = 12, BIG = 100000 };
    static uint8_t vals[NV][BIG];
    size_t lens[NV];
    for (int i = 0; i < NV; i++) {
        lens[i] = i < 8 ? BIG : i < 10 ? (size_t)(5 + i) : (size_t)(BIG - i);
        memset(vals[i], 'x', lens[i]);
        vals[i][lens[i] - 1] = (uint8_t)('a' + i);
    }
    tstx *tx = wbegin(&h);
    for (int i = 0; i < NV; i++)
        ck_assert_int_eq(tsix_insert(h.ix, tx, "key", 3, vals[i], lens[i], 0), TS_OK);
    for (int i = 0; i < NV; i++)
        ck_assert_int_eq(tsix_insert(h.ix, tx, "key", 3, vals[i], lens[i], 0), TS_ERR_UNIQUE);
    commit(&h, tx);
    for (int round = 0; round < 2; round++) {
        tx = round ? wbegin(&h) : rbegin(&h);
        /* each value exactly once, forwards; the same backwards */
        tsix_cur c;
        ck_assert_int_eq(tsix_cursor(h.ix, tx, &c), TS_OK);
        int order[NV], n = 0;
        for (int rc = tsix_seek(&c, "key", 3, TS_SEEK_EQ); rc == TS_OK; rc = tsix_next(&c)) {
            const void *ek, *ev;
            size_t ekl, evl;
            ck_assert_int_eq(tsix_entry(&c, &ek, &ekl, &ev, &evl), TS_OK);
            int found = -1;
            for (int i = 0; i < NV; i++)
                if (evl == lens[i] && !memcmp(ev, vals[i], evl)) found = i;
            ck_assert_int_ge(found, 0);
            ck_assert_int_lt(n, NV);
            order[n++] = found;
        }
        ck_assert_int_eq(n, NV);
        for (int rc = tsix_last(&c); rc == TS_OK; rc = tsix_prev(&c)) {
            const void *ek, *ev;
            size_t ekl, evl;
            tsix_entry(&c, &ek, &ekl, &ev, &evl);
            n--;
            ck_assert(evl == lens[order[n]] && !memcmp(ev, vals[order[n]], evl));
        }
        ck_assert_int_eq(n, 0);
        tsix_cursor_close(&c);
        if (round) {
            /* remove the big ones one by one: exactly that one goes */
            uint64_t before = live_pages(tx);
            for (int i = 0; i < 8; i++) {
                ck_assert_int_eq(tsix_remove(h.ix, tx, "key", 3, vals[i], lens[i]), TS_OK);
                ck_assert_int_eq(tsix_remove(h.ix, tx, "key", 3, vals[i], lens[i]), TS_ERR_NOT_FOUND);
            }
            ck_assert_uint_ge(before - live_pages(tx), 8 * (BIG / 4096));
            ck_assert_int_eq(tsix_cursor(h.ix, tx, &c), TS_OK);
            n = 0;
            for (int rc = tsix_seek(&c, "key", 3, TS_SEEK_EQ); rc == TS_OK; rc = tsix_next(&c)) n++;
            ck_assert_int_eq(n, NV - 8);
            tsix_cursor_close(&c);
            commit(&h, tx);
        } else {
            tstx_rollback(tx);
        }
    }
    db_done(&h);
}
END_TEST

/* ---- cursor stability ---------------------------------------------------------------- */

START_TEST(cursor_stability)
{
    hdb h;
    db_new(&h, "hash-cur", 0, NULL);
    scratch();
    rng r = rng_new(4);
    model m;
    const uint32_t K = 40000;
    model_init(&m, K, 2);
    tstx *tx = wbegin(&h);
    for (uint64_t k = 0; k < 8000; k++) op_insert(&h, tx, &m, k, 0, 1);
    commit(&h, tx);

    for (int round = 0; round < 4; round++) {
        tx = wbegin(&h);
        /* state at the start of the scan: 1 present, and what happens */
        uint8_t *start = calloc(K, 1), *visits = calloc(K, 1), *removed = calloc(K, 1);
        for (uint64_t k = 0; k < K; k++) start[k] = m.cnt[k] > 0;
        tsix_cur c;
        ck_assert_int_eq(tsix_cursor(h.ix, tx, &c), TS_OK);
        int rc = round % 2 ? tsix_last(&c) : tsix_first(&c);
        uint64_t steps = 0;
        while (rc == TS_OK) {
            const void *ek, *ev;
            size_t ekl, evl;
            ck_assert_int_eq(tsix_entry(&c, &ek, &ekl, &ev, &evl), TS_OK);
            uint64_t k, v;
            REQUIRE(decode_entry(ek, ekl, ev, evl, &k, &v), "foreign entry");
            REQUIRE(!removed[k], "entry %llu visited after its removal", (unsigned long long)k);
            REQUIRE(visits[k] == 0, "entry %llu visited twice", (unsigned long long)k);
            visits[k] = 1;
            steps++;
            /* Change the index under the cursor: the current entry, others
             * (visited or not), and bursts of inserts that split buckets
             * or removes that merge them. */
            uint64_t p = rbelow(&r, 100);
            if (p < 10) {
                op_remove(&h, tx, &m, k, -1);
                removed[k] = 1;
            } else if (p < 20) {
                uint64_t o = rbelow(&r, K);
                if (m.cnt[o]) {
                    op_remove(&h, tx, &m, o, -1);
                    removed[o] = 1;
                }
            } else if (p < 23) {
                int burst = (int)rbelow(&r, 800);
                for (int i = 0; i < burst; i++) {
                    uint64_t o = 8000 + rbelow(&r, K - 8000);
                    if (!removed[o]) op_insert(&h, tx, &m, o, 0, 1);
                }
            } else if (p < 25) {
                int burst = (int)rbelow(&r, 800);
                for (int i = 0; i < burst; i++) {
                    uint64_t o = rbelow(&r, K);
                    if (m.cnt[o]) {
                        op_remove(&h, tx, &m, o, -1);
                        removed[o] = 1;
                    }
                }
            }
            rc = round % 2 ? tsix_prev(&c) : tsix_next(&c);
        }
        ck_assert_int_eq(rc, TS_ERR_NOT_FOUND);
        tsix_cursor_close(&c);
        /* every entry present at the start and never removed: seen once */
        for (uint64_t k = 0; k < K; k++)
            if (start[k] && !removed[k])
                REQUIRE(visits[k] == 1, "entry %llu (never removed) missed by the scan",
                        (unsigned long long)k);
        char why[256];
        REQUIRE(check_all(&h, tx, &m, why, sizeof why), "round %d: %s", round, why);
        commit(&h, tx);
        free(start);
        free(visits);
        free(removed);
        /* top the index up for the next round */
        tx = wbegin(&h);
        for (uint64_t k = 0; k < 8000; k++) if (!m.cnt[k]) op_insert(&h, tx, &m, k, 0, 1);
        commit(&h, tx);
    }
    require_all(&h, &m);
    model_free(&m);
    db_done(&h);
}
END_TEST

/* Two cursors of one transaction, one seeking while the other scans and
 * the transaction writes between their steps. */
START_TEST(cursors_interleaved)
{
    hdb h;
    db_new(&h, "hash-cur2", 0, NULL);
    scratch();
    rng r = rng_new(5);
    model m;
    model_init(&m, 5000, 4);
    tstx *tx = wbegin(&h);
    for (uint64_t k = 0; k < 5000; k++) op_insert(&h, tx, &m, k, rbelow(&r, 4), 0);
    tsix_cur a, b;
    ck_assert_int_eq(tsix_cursor(h.ix, tx, &a), TS_OK);
    ck_assert_int_eq(tsix_cursor(h.ix, tx, &b), TS_OK);
    int rc = tsix_first(&a);
    char why[256];
    while (rc == TS_OK) {
        uint64_t k = rbelow(&r, m.K);
        if (rbelow(&r, 2)) op_insert(&h, tx, &m, k, rbelow(&r, 4), 0);
        else op_remove(&h, tx, &m, k, (int64_t)rbelow(&r, 4));
        /* b: an exact lookup, fully checked */
        uint8_t key[TS_INDEX_KEY_MAX];
        size_t kl = key_of(k, key);
        int brc = tsix_seek(&b, key, kl, TS_SEEK_EQ);
        REQUIRE(brc == (m.cnt[k] ? TS_OK : TS_ERR_NOT_FOUND), "seek %llu: %d", (unsigned long long)k, brc);
        REQUIRE(check_key(&h, tx, &m, k, why, sizeof why), "%s", why);
        /* a: whatever it is on now still exists (or was just removed) */
        rc = tsix_next(&a);
    }
    ck_assert_int_eq(rc, TS_ERR_NOT_FOUND);
    tsix_cursor_close(&a);
    tsix_cursor_close(&b);
    REQUIRE(check_all(&h, tx, &m, why, sizeof why), "%s", why);
    commit(&h, tx);
    model_free(&m);
    db_done(&h);
}
END_TEST

/* ---- power loss ------------------------------------------------------------------------ */

START_TEST(crash_recovery)
{
    hdb h;
    db_new(&h, "hash-crash", 1, "\"cacheBytes\": 262144");
    scratch();
    rng r = rng_new(6);
    model acked, cur, inflight;
    model_init(&acked, 3000, 3);
    model_init(&cur, 3000, 3);
    model_init(&inflight, 3000, 3);
    int rounds = long_mode() ? 400 : 60, crashes = 0;
    char why[256], why2[256];
    for (int round = 0; round < rounds; round++) {
        int armed = round % 4 != 3; /* now and then a round without a crash */
        if (armed)
            ck_assert_int_eq(ts_storage_control(h.db, "crash_at", 1 + (int64_t)rbelow(&r, 40), NULL), TS_OK);
        int failed_commit = 0, dead = 0;
        for (int t = 0; t < 20 && !dead; t++) {
            tstx *tx;
            if (tstx_begin(h.db->pg, 1, &tx)) { dead = 1; break; }
            model_copy(&cur, &acked);
            int nops = 1 + (int)rbelow(&r, rbelow(&r, 4) ? 40 : 1500), rc = TS_OK;
            for (int i = 0; i < nops && !rc; i++) {
                uint64_t k = rbelow(&r, cur.K), v = rbelow(&r, cur.V), p = rbelow(&r, 10);
                rc = p < 6 ? op_insert(&h, tx, &cur, k, v, (int)rbelow(&r, 2))
                   : p < 8 ? op_remove(&h, tx, &cur, k, (int64_t)v) : op_remove(&h, tx, &cur, k, -1);
            }
            if (rc) {
                tstx_rollback(tx);
                dead = 1;
                break;
            }
            model_copy(&inflight, &cur);
            rc = tstx_commit(tx);
            if (rc) {
                failed_commit = 1;
                dead = 1;
            } else {
                model_copy(&acked, &cur);
            }
        }
        if (!dead) {
            require_all(&h, &acked);
            ck_assert_int_eq(ts_storage_control(h.db, "crash_at", 0, NULL), TS_OK);
            continue;
        }
        crashes++;
        int64_t crashed = 0;
        ts_storage_control(h.db, "crashed", 0, &crashed);
        REQUIRE(crashed, "round %d: a write failed without a crash: %s", round, emsg(&h));
        db_close(&h); /* may fail: the store is down */
        db_open(&h, NULL);
        REQUIRE(h.ix, "index root lost");
        tstx *tx = rbegin(&h);
        int ok = check_all(&h, tx, &acked, why, sizeof why);
        if (!ok && failed_commit && check_all(&h, tx, &inflight, why2, sizeof why2)) {
            model_copy(&acked, &inflight); /* the commit in flight made it */
            ok = 1;
        }
        tstx_rollback(tx);
        REQUIRE(ok, "round %d after power loss: %s", round, why);
    }
    printf("hash: %d simulated power losses, index checked after each\n", crashes);
    ck_assert_int_gt(crashes, rounds / 3);
    model_free(&acked);
    model_free(&cur);
    model_free(&inflight);
    db_done(&h);
}
END_TEST

/* ---- threads ---------------------------------------------------------------------------- */

typedef struct rdr {
    hdb         *h;
    uint64_t     stable;   /* keys 1..stable never change */
    atomic_int  *stop;
    char         err[256];
    uint64_t     lookups;
} rdr;

static void *reader(void *arg)
{
    rdr *a = arg;
    rng r = rng_new((uint64_t)(uintptr_t)arg);
    while (!atomic_load(a->stop) && !a->err[0]) {
        tstx *tx;
        if (tstx_begin(a->h->db->pg, 0, &tx)) { snprintf(a->err, sizeof a->err, "begin"); break; }
        tsix_cur c;
        if (tsix_cursor(a->h->ix, tx, &c)) { snprintf(a->err, sizeof a->err, "cursor"); tstx_rollback(tx); break; }
        for (int i = 0; i < 200 && !a->err[0]; i++) {
            uint64_t k = 1 + rbelow(&r, a->stable);
            uint8_t key[TS_INDEX_KEY_MAX];
            size_t kl = key_of(k, key);
            int rc = tsix_seek(&c, key, kl, TS_SEEK_EQ);
            const void *ek, *ev;
            size_t ekl, evl;
            if (!rc) rc = tsix_entry(&c, &ek, &ekl, &ev, &evl);
            uint64_t v = 0;
            if (!rc && evl == 8) memcpy(&v, ev, 8);
            if (rc || evl != 8 || v != k)
                snprintf(a->err, sizeof a->err, "key %llu: rc %d, value %llu", (unsigned long long)k, rc,
                         (unsigned long long)v);
            a->lookups++;
        }
        tsix_cursor_close(&c);
        tstx_rollback(tx);
    }
    return NULL;
}

START_TEST(concurrent_readers)
{
    hdb h;
    db_new(&h, "hash-thr", 0, NULL);
    scratch();
    const uint64_t stable = 20000;
    fill_to(&h, 0, stable, 20000);
    atomic_int stop;
    atomic_init(&stop, 0);
    enum { NR = 4 };
    rdr rs[NR];
    pthread_t th[NR];
    for (int i = 0; i < NR; i++) {
        rs[i] = (rdr){ .h = &h, .stable = stable, .stop = &stop };
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &rs[i]), 0);
    }
    /* the writer grows the index past many splits and shrinks it again */
    for (int round = 0; round < 3; round++) {
        fill_to(&h, stable, stable + 30000, 3000);
        for (uint64_t k = stable + 1; k <= stable + 30000;) {
            tstx *tx = wbegin(&h);
            for (uint64_t e = k + 5000; k < e; k++) {
                uint8_t key[TS_INDEX_KEY_MAX];
                size_t kl = key_of(k, key);
                REQUIRE(tsix_remove(h.ix, tx, key, kl, NULL, 0) == TS_OK, "remove: %s", emsg(&h));
            }
            commit(&h, tx);
        }
    }
    atomic_store(&stop, 1);
    uint64_t lookups = 0;
    for (int i = 0; i < NR; i++) {
        pthread_join(th[i], NULL);
        REQUIRE(!rs[i].err[0], "reader %d: %s", i, rs[i].err);
        lookups += rs[i].lookups;
    }
    ck_assert_uint_gt(lookups, 0);
    db_done(&h);
}
END_TEST

/* ---- pages touched per lookup ------------------------------------------------------------ */

START_TEST(pages_per_lookup)
{
    hdb h;
    db_new(&h, "hash-pages", 0, "\"cacheBytes\": 268435456");
    scratch();
    rng r = rng_new(7);
    static const uint64_t sizes[] = { 10000, 100000, 1000000 };
    int nsizes = long_mode() ? 3 : 2;
    uint64_t have = 0;
    for (int i = 0; i < nsizes; i++) {
        fill_to(&h, have, sizes[i], 50000);
        have = sizes[i];
        double t = touched_per_lookup(&h, have, 50000, &r);
        double tr = touched_per_lookup_mode(&h, have, 50000, &r, 1);
        tstx *tx = rbegin(&h);
        uint64_t pages = live_pages(tx);
        tstx_rollback(tx);
        printf("hash: %8llu entries: %.3f pages touched per lookup, %.3f with one cursor for all "
               "(%llu live pages)\n", (unsigned long long)have, t, tr, (unsigned long long)pages);
        /* meta + (directory) + bucket, and a few overflow pages; with one
         * cursor: the bucket, and directory pages until they are known */
        REQUIRE(t <= (have <= 20000 ? 2.5 : 3.5), "%.3f pages per lookup at %llu", t,
                (unsigned long long)have);
        REQUIRE(tr <= 1.5, "%.3f pages per lookup with one cursor at %llu", tr, (unsigned long long)have);
    }
    db_done(&h);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hash");
    TCase *tc = tcase_create("hash");
    tcase_add_test(tc, basics);
    tcase_add_test(tc, descriptor);
    tcase_add_test(tc, model_random);
    tcase_add_test(tc, growth_and_shrink);
    tcase_add_test(tc, drop_frees_everything);
    tcase_add_test(tc, big_values_one_key);
    tcase_add_test(tc, cursor_stability);
    tcase_add_test(tc, cursors_interleaved);
    tcase_add_test(tc, crash_recovery);
    tcase_add_test(tc, concurrent_readers);
    tcase_add_test(tc, pages_per_lookup);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int rc = tst_run(suite());
    free(vbuf);
    return rc;
}
