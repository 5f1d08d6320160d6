/*
 * Rekey under power loss: for every fault point of a rekey (plain to
 * encrypted, key to key, encrypted to plain), crash there, reopen, and
 * require that exactly one of the old and the new configuration opens the
 * database, with every page intact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/db.h"
#include "tsupport.h"

#define KEY1 "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY2 "hex:ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define NPAGES 8

static const char *const ciphers[] = {
    NULL,
    "{\"module\": \"chacha20poly1305\", \"key\": \"" KEY1 "\"}",
    "{\"module\": \"aes256gcm\", \"key\": \"" KEY2 "\"}",
    "{\"module\": \"aes256gcm\", \"key\": \"" KEY1 "\"}",
    NULL,
};

static int open_with(const char *dir, const char *cipher, ts_db **db)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"path\": \"%s\", \"storage\": {\"backend\": \"faulty\", \"options\": "
             "{\"inner\": \"posix\", \"passSync\": false}}%s%s}",
             dir, cipher ? ", \"cipher\": " : "", cipher ? cipher : "");
    *db = NULL;
    return ts_open_json(cfg, db);
}

static uint8_t fill(uint64_t pgno, size_t i) { return (uint8_t)(pgno * 13 + i * 7); }

static uint64_t populate(ts_db *db)
{
    tstx *tx;
    ck_assert_int_eq(tstx_begin(db->pg, 1, &tx), TS_OK);
    uint64_t first = 0;
    for (int i = 0; i < NPAGES; i++) {
        tspage *p;
        uint64_t no;
        ck_assert_int_eq(tstx_alloc(tx, &p, &no), TS_OK);
        if (!first) first = no;
        uint8_t *d = tspage_data(p);
        for (size_t k = 0; k < tstx_usable(tx); k++) d[k] = fill(no, k);
        tspage_release(p);
    }
    ck_assert_int_eq(tstx_commit(tx), TS_OK);
    return first;
}

static int pages_intact(ts_db *db, uint64_t first)
{
    tstx *tx;
    if (tstx_begin(db->pg, 0, &tx)) return 0;
    int ok = 1;
    for (int i = 0; i < NPAGES && ok; i++) {
        tspage *p;
        if (tstx_get(tx, first + i, 0, &p)) { ok = 0; break; }
        const uint8_t *d = tspage_data(p);
        for (size_t k = 0; k < tstx_usable(tx) && ok; k++) ok = d[k] == fill(first + i, k);
        tspage_release(p);
    }
    tstx_rollback(tx);
    return ok && ts_check(db, NULL, NULL, NULL) == TS_OK;
}

START_TEST(rekey_every_crash_point)
{
    const char *from = ciphers[_i], *to = ciphers[_i + 1];
    char *dir = tst_tmpdir("rekeycrash");
    unsigned long crashes = 0, old_won = 0, new_won = 0;
    for (int64_t n = 1;; n++) {
        tst_rmrf(dir);
        ts_db *db;
        ck_assert_int_eq(open_with(dir, NULL, &db), TS_OK);
        uint64_t first = populate(db);
        if (from) ck_assert_int_eq(ts_rekey(db, from, 0, NULL, NULL), TS_OK);
        ck_assert_int_eq(ts_storage_control(db, "crash_at", n, NULL), TS_OK);
        int rc = ts_rekey(db, to, TS_REKEY_NEW_DATA_KEY, NULL, NULL);
        int64_t down = 0;
        ts_storage_control(db, "crashed", 0, &down);
        ts_close(db);
        if (!down) {
            ck_assert_msg(rc == TS_OK, "rekey without a crash failed: %d", rc);
            ck_assert_msg(n > 3, "the rekey had no fault points");
            break;
        }
        crashes++;
        ts_db *a = NULL, *b = NULL;
        int ra = open_with(dir, from, &a);
        int oka = ra == TS_OK && pages_intact(a, first);
        ts_close(a);
        int rb = open_with(dir, to, &b);
        int okb = rb == TS_OK && pages_intact(b, first);
        ts_close(b);
        ck_assert_msg(oka != okb, "crash at point %lld of rekey %d: old config %s (%d), new %s (%d)",
                      (long long)n, _i, oka ? "opens" : "fails", ra, okb ? "opens" : "fails", rb);
        if (oka) old_won++; else new_won++;
    }
    fprintf(stderr, "rekey %d: %lu crash points (old key kept %lu, new key %lu)\n", _i, crashes,
            old_won, new_won);
    ck_assert_uint_gt(old_won, 0);
    ck_assert_uint_gt(new_won, 0);
    tst_rmrf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("rekey_crash");
    TCase *tc = tcase_create("points");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, rekey_every_crash_point, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
