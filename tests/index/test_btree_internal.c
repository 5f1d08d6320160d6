/*
 * White-box tests of the btree plugin: its source is compiled in with
 * BT_WHITEBOX, which adds bt_check (a walk of the whole tree checking
 * order, separator bounds, balance, space accounting and overflow chains).
 * Random operations against a model, with the structure checked and every
 * page accounted for (index pages + free pages + the pages in use before
 * the index existed == page count) after each transaction.  Long keys make
 * the fanout small, so trees get deep quickly.
 */
#define BT_WHITEBOX 1
#include "../../plugins/index/btree/btree.c"

#include <stdio.h>
#include <stdlib.h>
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

typedef struct ent { uint8_t *k, *v; size_t kl, vl; } ent;
typedef struct model { ent *e; size_t n, cap; } model;

static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }

static int ecmp(const ent *a, const ent *b)
{
    int r = bcmp_len(a->k, a->kl, b->k, b->kl);
    return r ? r : bcmp_len(a->v, a->vl, b->v, b->vl);
}

static size_t lb(const model *m, const ent *t)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ecmp(&m->e[mid], t) < 0) lo = mid + 1; else hi = mid;
    }
    return lo;
}

typedef struct wb {
    char          *dir;
    ts_db         *db;
    ts_module_args args;
    void          *idx;
    uint64_t       root;
    uint64_t       base;  /* pages in use before the index: 0, 1 and the kernel's */
} wb;

static void wb_open(wb *w, const char *extra)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"%s%s}", w->dir, extra ? ", " : "", extra ? extra : "");
    REQUIRE(ts_open_json(cfg, &w->db) == TS_OK, "open: %s", ts_errmsg(NULL));
    memset(&w->args, 0, sizeof w->args);
    w->args.struct_size = sizeof w->args;
    w->args.host = tsenv_host();
    w->args.env = &w->db->env;
    tstx *tx;
    REQ_EQ(tstx_begin(w->db->pg, 0, &tx), TS_OK);
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    tstx_rollback(tx);
    w->base = pages - nfree;
}

/* Structure and page accounting. */
static void wb_check(wb *w, tstx *tx, const model *m, const char *where)
{
    bt_stats st;
    int rc = bt_check(w->idx, (ts_txn *)tx, &st);
    REQUIRE(rc == TS_OK, "%s: check: %s", where, ts_errmsg(w->db));
    REQUIRE(st.entries == m->n, "%s: %llu entries, model %zu", where,
                  (unsigned long long)st.entries, m->n);
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    uint64_t mine = st.leaves + st.inners + st.ovfl_pages;
    REQUIRE(mine + nfree + w->base == pages, "%s: pages leak: index %llu (%llu leaves, %llu inner, "
                  "%llu overflow) + free %llu + 2 != %llu", where, (unsigned long long)mine,
                  (unsigned long long)st.leaves, (unsigned long long)st.inners,
                  (unsigned long long)st.ovfl_pages, (unsigned long long)nfree, (unsigned long long)pages);
}

static size_t gen(uint8_t *k, int longkeys)
{
    size_t n;
    if (longkeys && below(2)) {
        n = TS_INDEX_KEY_MAX - below(64);
        memset(k, 'L', n);
        for (size_t i = n - 3; i < n; i++) k[i] = (uint8_t)('a' + below(6));
    } else {
        n = below(6);
        for (size_t i = 0; i < n; i++) k[i] = (uint8_t)('a' + below(4));
    }
    return n;
}

static void run(const char *extra, int longkeys, int unique, int txns, int ops, size_t goal)
{
    wb w_, *w = &w_;
    memset(w, 0, sizeof *w);
    w->dir = tst_tmpdir("btwb");
    wb_open(w, extra);
    tstx *tx;
    REQ_EQ(tstx_begin(w->db->pg, 1, &tx), TS_OK);
    REQ_EQ(bt_create(&w->args, (ts_txn *)tx, &w->root), TS_OK);
    REQ_EQ(tstx_commit(tx), TS_OK);
    REQ_EQ(bt_open(&w->args, w->root, &w->idx), TS_OK);
    model m = { 0 };
    uint8_t *k = malloc(TS_INDEX_KEY_MAX), *v = malloc(1 << 17);
    for (int t = 0; t < txns; t++) {
        REQ_EQ(tstx_begin(w->db->pg, 1, &tx), TS_OK);
        for (int i = 0; i < ops; i++) {
            int ins = below(100) < (m.n < goal ? 65u : 35u);
            if (ins) {
                ent e = { k, v, gen(k, longkeys), 0 };
                unsigned c = (unsigned)below(100);
                e.vl = c < 70 ? below(5) : c < 90 ? 100 + below(1000) : c < 98 ? 1200 + below(4000)
                                                                           : 20000 + below(100000);
                /* values sharing long prefixes make separators with overflow */
                uint8_t s = (uint8_t)below(3);
                for (size_t j = 0; j < e.vl; j++) v[j] = c < 70 ? (uint8_t)('0' + below(3)) : (uint8_t)(s + j);
                if (c >= 70 && e.vl) v[e.vl - 1 - below(e.vl < 8 ? e.vl : 8)] = (uint8_t)rnd();
                size_t p = lb(&m, &e);
                int exists = p < m.n && ecmp(&m.e[p], &e) == 0;
                int keyx = unique && ((p < m.n && bcmp_len(m.e[p].k, m.e[p].kl, k, e.kl) == 0) ||
                                      (p > 0 && bcmp_len(m.e[p - 1].k, m.e[p - 1].kl, k, e.kl) == 0));
                int rc = bt_insert(w->idx, (ts_txn *)tx, k, e.kl, v, e.vl, unique);
                REQUIRE(rc == (exists || keyx ? TS_ERR_UNIQUE : TS_OK), "insert: %d %s", rc,
                              ts_errmsg(w->db));
                if (rc == TS_OK) {
                    if (m.n == m.cap) { m.cap = m.cap ? 2 * m.cap : 64; m.e = realloc(m.e, m.cap * sizeof *m.e); }
                    memmove(m.e + p + 1, m.e + p, (m.n - p) * sizeof *m.e);
                    m.e[p].k = malloc(e.kl + 1);
                    memcpy(m.e[p].k, k, e.kl);
                    m.e[p].kl = e.kl;
                    m.e[p].v = malloc(e.vl + 1);
                    memcpy(m.e[p].v, v, e.vl);
                    m.e[p].vl = e.vl;
                    m.n++;
                }
            } else if (m.n && below(10) == 0) {
                /* every entry of a key */
                size_t p = below(m.n), a = p, b = p;
                while (a > 0 && bcmp_len(m.e[a - 1].k, m.e[a - 1].kl, m.e[p].k, m.e[p].kl) == 0) a--;
                while (b < m.n && bcmp_len(m.e[b].k, m.e[b].kl, m.e[p].k, m.e[p].kl) == 0) b++;
                int rc = bt_remove(w->idx, (ts_txn *)tx, m.e[p].k, m.e[p].kl, NULL, 0);
                REQUIRE(rc == TS_OK, "remove all: %d %s", rc, ts_errmsg(w->db));
                for (size_t j = a; j < b; j++) { free(m.e[j].k); free(m.e[j].v); }
                memmove(m.e + a, m.e + b, (m.n - b) * sizeof *m.e);
                m.n -= b - a;
            } else if (m.n) {
                size_t p = below(m.n);
                int rc = bt_remove(w->idx, (ts_txn *)tx, m.e[p].k, m.e[p].kl, m.e[p].v, m.e[p].vl);
                REQUIRE(rc == TS_OK, "remove: %d %s", rc, ts_errmsg(w->db));
                free(m.e[p].k);
                free(m.e[p].v);
                memmove(m.e + p, m.e + p + 1, (m.n - p - 1) * sizeof *m.e);
                m.n--;
            }
            if (i % 50 == 0) wb_check(w, tx, &m, "inside");
        }
        wb_check(w, tx, &m, "before commit");
        if (below(4) == 0) {
            tstx_rollback(tx);
            /* the model would need the rollback too: rebuild it from the index */
            for (size_t i = 0; i < m.n; i++) { free(m.e[i].k); free(m.e[i].v); }
            m.n = 0;
            REQ_EQ(tstx_begin(w->db->pg, 0, &tx), TS_OK);
            bt_cursor *c;
            REQ_EQ(bt_cursor_open(w->idx, (ts_txn *)tx, (void **)&c), TS_OK);
            for (int rc = bt_first(c); rc == TS_OK; rc = bt_next(c)) {
                const void *ek, *ev;
                size_t ekl, evl;
                REQ_EQ(bt_entry(c, &ek, &ekl, &ev, &evl), TS_OK);
                if (m.n == m.cap) { m.cap = m.cap ? 2 * m.cap : 64; m.e = realloc(m.e, m.cap * sizeof *m.e); }
                m.e[m.n].k = malloc(ekl + 1);
                memcpy(m.e[m.n].k, ek, ekl);
                m.e[m.n].kl = ekl;
                m.e[m.n].v = malloc(evl + 1);
                memcpy(m.e[m.n].v, ev, evl);
                m.e[m.n++].vl = evl;
            }
            bt_cursor_close(c);
            wb_check(w, tx, &m, "after rollback");
            tstx_rollback(tx);
        } else {
            REQ_EQ(tstx_commit(tx), TS_OK);
        }
    }
    /* empty it: the tree shrinks back to an empty root leaf */
    REQ_EQ(tstx_begin(w->db->pg, 1, &tx), TS_OK);
    while (m.n) {
        size_t p = below(m.n);
        REQ_EQ(bt_remove(w->idx, (ts_txn *)tx, m.e[p].k, m.e[p].kl, m.e[p].v, m.e[p].vl), TS_OK);
        free(m.e[p].k);
        free(m.e[p].v);
        memmove(m.e + p, m.e + p + 1, (m.n - p - 1) * sizeof *m.e);
        m.n--;
        if (m.n % 100 == 0) wb_check(w, tx, &m, "emptying");
    }
    bt_stats st;
    REQ_EQ(bt_check(w->idx, (ts_txn *)tx, &st), TS_OK);
    REQUIRE(st.leaves == 1 && st.inners == 0 && st.ovfl_pages == 0, "empty tree keeps pages");
    REQ_EQ(bt_drop(w->idx, (ts_txn *)tx), TS_OK);
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    REQ_EQ(nfree + w->base, pages);
    tstx_rollback(tx);
    bt_close(w->idx);
    free(m.e);
    free(k);
    free(v);
    ts_close(w->db);
    tst_rmrf(w->dir);
    free(w->dir);
}

START_TEST(short_keys_nonunique) { run(NULL, 0, 0, 40, 300, 3000); }
END_TEST
START_TEST(long_keys_nonunique) { run(NULL, 1, 0, 30, 300, 1500); }
END_TEST
START_TEST(long_keys_unique) { run(NULL, 1, 1, 30, 300, 1500); }
END_TEST
START_TEST(big_pages) { run("\"pageSize\": 65536", 1, 0, 15, 300, 3000); }
END_TEST

/* Bulk load builds a valid tree with every page accounted for. */
static int bl_i, bl_n;
static int bl_next(void *ctx, const void **k, size_t *kl, const void **v, size_t *vl)
{
    static uint8_t kb[TS_INDEX_KEY_MAX], vb[6000];
    (void)ctx;
    if (bl_i >= bl_n) return 0;
    int i = bl_i++, q = i / 3, r = i % 3;
    char d[16];
    snprintf(d, sizeof d, "%06d", q);
    size_t n = r == 2 ? 900 : 8;
    memcpy(kb, d, 6);
    memset(kb + 6, 'k', n - 6);
    *k = kb;
    *kl = n;
    *vl = i % 50 == 0 ? 5000 : 4;
    memset(vb, 'v', *vl);
    vb[0] = (uint8_t)('0' + r);
    *v = vb;
    return 1;
}

START_TEST(bulk_structure)
{
    wb w_, *w = &w_;
    memset(w, 0, sizeof *w);
    w->dir = tst_tmpdir("btwb");
    wb_open(w, NULL);
    int sizes[] = { 0, 1, 5, 60, 3000, 40000 };
    for (int s = 0; s < 6; s++) {
        tstx *tx;
        REQ_EQ(tstx_begin(w->db->pg, 1, &tx), TS_OK);
        REQ_EQ(bt_create(&w->args, (ts_txn *)tx, &w->root), TS_OK);
        REQ_EQ(bt_open(&w->args, w->root, &w->idx), TS_OK);
        bl_i = 0;
        bl_n = sizes[s];
        REQ_EQ(bt_bulk_load(w->idx, (ts_txn *)tx, bl_next, NULL), TS_OK);
        bt_stats st;
        int rc = bt_check(w->idx, (ts_txn *)tx, &st);
        REQUIRE(rc == TS_OK, "bulk %d: %s", sizes[s], ts_errmsg(w->db));
        REQ_EQ(st.entries, (uint64_t)sizes[s]);
        uint64_t pages, nfree;
        tstx_counts(tx, &pages, &nfree);
        REQ_EQ(st.leaves + st.inners + st.ovfl_pages + nfree + w->base, pages);
        /* then deletes of every other entry keep it valid */
        bl_i = 0;
        for (int i = 0; i < sizes[s]; i += 2) {
            const void *k, *v;
            size_t kl = 0, vl = 0;
            bl_i = i;
            bl_next(NULL, &k, &kl, &v, &vl);
            REQ_EQ(bt_remove(w->idx, (ts_txn *)tx, k, kl, v, vl), TS_OK);
        }
        rc = bt_check(w->idx, (ts_txn *)tx, &st);
        REQUIRE(rc == TS_OK, "bulk %d then removes: %s", sizes[s], ts_errmsg(w->db));
        REQ_EQ(st.entries, (uint64_t)sizes[s] / 2);
        if (getenv("TS_TEST_VERBOSE"))
            fprintf(stderr, "bulk %d: depth %llu leaves %llu inner %llu overflow %llu\n", sizes[s],
                    (unsigned long long)st.depth, (unsigned long long)st.leaves,
                    (unsigned long long)st.inners, (unsigned long long)st.ovfl_pages);
        tstx_rollback(tx);
        bt_close(w->idx);
    }
    ts_close(w->db);
    tst_rmrf(w->dir);
    free(w->dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("btree internal");
    TCase *tc = tcase_create("structure");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, short_keys_nonunique);
    tcase_add_test(tc, long_keys_nonunique);
    tcase_add_test(tc, long_keys_unique);
    tcase_add_test(tc, big_pages);
    tcase_add_test(tc, bulk_structure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
