/*
 * The journal of the rows commits changed (kernel/table/journal.c),
 * against a model that remembers every commit: random transactions of
 * random keys in two spaces, some rolled back, some larger than the
 * journal keeps, some before any cache wanted it; after each, every range
 * of versions asked of tstbl_changes either is refused (NOT_FOUND) or
 * lists exactly the keys the model's commits in it changed in that space,
 * and it is never refused for the recent commits the bounds keep.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/tostore.h>
#include "table/table.h"
#include "tsupport.h"

#define KEYS_MAX  (64u << 10)   /* JN_KEYS */
#define COMMITS   400

typedef struct mcommit { uint64_t no; size_t n; uint32_t *key; uint8_t *space; } mcommit;

/* Whether the listed keys equal the model's keys of space changed by
 * commits numbered from .. to - 1 (as sets). */
static int same_keys(const tstbl_keys *got, const mcommit *c, size_t nc, uint8_t space, uint64_t from, uint64_t to)
{
    static unsigned char want[1 << 17], seen[1 << 17];
    memset(want, 0, sizeof want);
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < nc; i++)
        if (c[i].no >= from && c[i].no < to)
            for (size_t j = 0; j < c[i].n; j++)
                if (c[i].space[j] == space) want[c[i].key[j]] = 1;
    for (size_t i = 0; i < got->n; i++) {
        uint32_t k;
        if (got->ko[i + 1] - got->ko[i] != sizeof k) return 0;
        memcpy(&k, got->kb + got->ko[i], sizeof k);
        if (k >= sizeof want || !want[k]) return 0;   /* a key no such commit wrote */
        seen[k] = 1;
    }
    return memcmp(want, seen, sizeof want) == 0;
}

START_TEST(journal_model)
{
    tstbl_map m;
    memset(&m, 0, sizeof m);
    pthread_mutex_init(&m.lock, NULL);
    tstbl t;
    memset(&t, 0, sizeof t);
    ck_assert_int_eq(tstbl_journal_open(&t, 0), TS_OK);
    uint64_t rs = 88172645463325252ull;
    mcommit *c = calloc(COMMITS, sizeof *c);
    size_t nc = 0, refused_recent = 0, checked = 0, refused = 0;
    uint64_t next = 0, want_from = 0;   /* the first commit made with the journal wanted */
    for (int round = 0; round < COMMITS; round++) {
        if (round == 20) {
            tstbl_journal_want(&t);
            want_from = next + 1;
        }
        /* mostly small; now and then past the journal's bounds */
        size_t n = tst_rand(&rs) % 25 == 0 ? KEYS_MAX / 3 + tst_rand(&rs) % KEYS_MAX : 1 + tst_rand(&rs) % 300;
        mcommit cm = { 0, n, malloc(n * sizeof(uint32_t)), malloc(n) };
        for (size_t j = 0; j < n; j++) {
            cm.key[j] = (uint32_t)(tst_rand(&rs) % (1u << 17));
            cm.space[j] = (uint8_t)(tst_rand(&rs) % 2);
            tstbl_journal_note(&t, cm.space[j], (const uint8_t *)&cm.key[j], sizeof cm.key[j]);
        }
        if (tst_rand(&rs) % 6 == 0) {   /* rolled back: never a commit */
            tstbl_journal_rollback(&t);
            free(cm.key);
            free(cm.space);
            continue;
        }
        cm.no = ++next;
        pthread_mutex_lock(&m.lock);
        tstbl_journal_commit(&t, cm.no);
        pthread_mutex_unlock(&m.lock);
        c[nc++] = cm;
        /* every range ending now, and some older ones */
        for (int q = 0; q < 12; q++) {
            uint64_t to = q < 6 ? next + 1 : 1 + tst_rand(&rs) % (next + 1);
            uint64_t back = q % 2 ? tst_rand(&rs) % 8 : tst_rand(&rs) % to;   /* mostly recent */
            uint64_t from = to > back ? to - back : 1;
            uint8_t space = (uint8_t)(tst_rand(&rs) % 2);
            tstbl_keys got;
            int rc = tstbl_changes(&m, &t, space, from, to, &got);
            if (rc == TS_ERR_NOT_FOUND) {
                refused++;
                /* the last few small commits, all wanted, are always kept */
                uint64_t big = 0;
                for (size_t i = 0; i < nc; i++)
                    if (c[i].no >= from && c[i].n > KEYS_MAX / 4) big = 1;
                if (!big && from >= want_from && want_from && next - from < 20) refused_recent++;
                continue;
            }
            ck_assert_int_eq(rc, TS_OK);
            /* nothing is kept before a cache wants it */
            ck_assert_msg(from == to || (want_from && from >= want_from), "commits %llu.. listed, wanted from %llu",
                          (unsigned long long)from, (unsigned long long)want_from);
            ck_assert_msg(same_keys(&got, c, nc, space, from, to), "keys of commits %llu..%llu, space %d",
                          (unsigned long long)from, (unsigned long long)to - 1, space);
            checked++;
            tstbl_keys_free(&got);
        }
    }
    fprintf(stderr, "journal: %zu commits, %zu ranges listed, %zu refused\n", nc, checked, refused);
    ck_assert_uint_eq(refused_recent, 0);
    ck_assert_uint_gt(checked, 1000);
    ck_assert_uint_gt(refused, 100);
    for (size_t i = 0; i < nc; i++) {
        free(c[i].key);
        free(c[i].space);
    }
    free(c);
    tstbl_journal_free(&t);
    pthread_mutex_destroy(&m.lock);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("journal");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, journal_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
