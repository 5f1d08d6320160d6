/* seek_entry of ordered index modules: positioning by the full (key, value)
 * order against a sorted model, and cursor pagination that resumes exactly
 * where a page ended even inside long runs of equal keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/db.h"
#include "catalog/ix.h"
#include "tsupport.h"

typedef struct pair { uint8_t k[2], v[2]; } pair;

static int pcmp(const void *a, const void *b) { return memcmp(a, b, 4); }

/* Keys are 2 bytes with few distinct values (long duplicate runs). */
static void mk(pair *p, unsigned r)
{
    p->k[0] = 'k';
    p->k[1] = (uint8_t)('a' + r % 5);
    p->v[0] = (uint8_t)(r >> 8);
    p->v[1] = (uint8_t)(r >> 16);
}

START_TEST(seek_entry_matches_model)
{
    char *dir = tst_tmpdir("seekentry");
    char cfg[512];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"}", dir);
    ts_db *db;
    ck_assert_int_eq(ts_open_json(cfg, &db), TS_OK);
    tstx *tx;
    uint64_t root;
    tsix *ix;
    ck_assert_int_eq(tstx_begin(db->pg, 1, &tx), TS_OK);
    ck_assert_int_eq(tsix_create(&db->env, db->reg, "btree", NULL, tx, &root), TS_OK);
    ck_assert_int_eq(tsix_open(&db->env, db->reg, "btree", NULL, root, "t", &ix), TS_OK);
    enum { N = 3000 };
    pair *m = malloc(N * sizeof *m);
    size_t n = 0;
    unsigned seed = 7;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        pair p;
        mk(&p, seed);
        int rc = tsix_insert(ix, tx, p.k, 2, p.v, 2, 0);
        ck_assert(rc == TS_OK || rc == TS_ERR_UNIQUE);
        if (rc == TS_OK) m[n++] = p;
    }
    ck_assert_int_eq(tstx_commit(tx), TS_OK);
    qsort(m, n, sizeof *m, pcmp);

    ck_assert_int_eq(tstx_begin(db->pg, 0, &tx), TS_OK);
    tsix_cur c;
    ck_assert_int_eq(tsix_cursor(ix, tx, &c), TS_OK);
    for (int probe = 0; probe < 2000; probe++) {
        seed = seed * 1103515245u + 12345u;
        pair q;
        if (probe % 2) q = m[seed % n];
        else mk(&q, seed);
        /* model: lower bound of q */
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (pcmp(&m[mid], &q) < 0) lo = mid + 1; else hi = mid;
        }
        int eq = lo < n && pcmp(&m[lo], &q) == 0;
        long want[4];
        want[0] = lo < n ? (long)lo : -1;                              /* GE */
        want[1] = lo + eq < n ? (long)(lo + eq) : -1;                  /* GT */
        want[2] = eq ? (long)lo : (long)lo - 1;                        /* LE */
        want[3] = (long)lo - 1;                                        /* LT */
        int modes[4] = { TS_SEEK_GE, TS_SEEK_GT, TS_SEEK_LE, TS_SEEK_LT };
        for (int k = 0; k < 4; k++) {
            int rc = tsix_seek_entry(&c, q.k, 2, q.v, 2, modes[k]);
            if (want[k] < 0) {
                ck_assert_msg(rc == TS_ERR_NOT_FOUND, "mode %d: rc %d, want none", modes[k], rc);
                continue;
            }
            ck_assert_msg(rc == TS_OK, "mode %d: rc %d", modes[k], rc);
            const void *ek, *ev;
            size_t ekl, evl;
            ck_assert_int_eq(tsix_entry(&c, &ek, &ekl, &ev, &evl), TS_OK);
            pair got;
            ck_assert(ekl == 2 && evl == 2);
            memcpy(got.k, ek, 2);
            memcpy(got.v, ev, 2);
            ck_assert_msg(pcmp(&got, &m[want[k]]) == 0, "mode %d: wrong entry", modes[k]);
        }
    }
    /* pagination: 7 entries per page, resuming after the last one seen */
    size_t seen = 0;
    pair last;
    for (int page = 0;; page++) {
        int rc = page == 0 ? tsix_first(&c) : tsix_seek_entry(&c, last.k, 2, last.v, 2, TS_SEEK_GT);
        int got = 0;
        while (rc == TS_OK && got < 7) {
            const void *ek, *ev;
            size_t ekl, evl;
            ck_assert_int_eq(tsix_entry(&c, &ek, &ekl, &ev, &evl), TS_OK);
            memcpy(last.k, ek, 2);
            memcpy(last.v, ev, 2);
            ck_assert_msg(seen < n && pcmp(&last, &m[seen]) == 0, "page %d: entry %zu out of order", page, seen);
            seen++;
            got++;
            if (got < 7) rc = tsix_next(&c);
        }
        if (rc == TS_ERR_NOT_FOUND || got < 7) break;
        ck_assert_int_eq(rc, TS_OK);
    }
    ck_assert_uint_eq(seen, n);
    tsix_cursor_close(&c);
    tstx_rollback(tx);
    tsix_close(ix);
    free(m);
    ts_close(db);
    tst_rmrf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("seek_entry");
    TCase *tc = tcase_create("btree");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, seek_entry_matches_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
