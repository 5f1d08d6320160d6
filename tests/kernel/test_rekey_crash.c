/*
 * Rekey under power loss: for every fault point of a rekey (plain to
 * encrypted, key to key, encrypted to plain), crash there, reopen, and
 * require that exactly one of the old and the new configuration opens the
 * database, with every page intact.  Then every sequence of up to three
 * operations from {insert, update, delete, checkpoint, rekey} that has a
 * rekey in it, crashed at every fault point: one key opens the database,
 * and it holds every acknowledged commit (and at most the one in flight).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/db.h"
#include "kt.h"
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
             "{\"path\": \"%s\", \"pageDigest\": true, \"storage\": {\"backend\": \"faulty\", "
             "\"options\": {\"inner\": \"posix\", \"passSync\": false}}%s%s}",
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
    unsigned long crashes = 0, old_won = 0, new_won = 0, torn = 0;
    /* every point twice: a clean crash, then one that tears the write in
     * progress (1 to 5000 bytes of it land) */
    for (int64_t step = 2;; step++) {
        int64_t n = step / 2, tear = step % 2 ? 1 + (n * 131) % 5000 : 0;
        tst_rmrf(dir);
        ts_db *db;
        ck_assert_int_eq(open_with(dir, NULL, &db), TS_OK);
        uint64_t first = populate(db);
        if (from) ck_assert_int_eq(ts_rekey(db, from, 0, NULL, NULL), TS_OK);
        ck_assert_int_eq(ts_storage_control(db, "crash_at", n, NULL), TS_OK);
        ck_assert_int_eq(ts_storage_control(db, "tear", tear, NULL), TS_OK);
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
        torn += tear != 0;
        ts_db *a = NULL, *b = NULL;
        int ra = open_with(dir, from, &a);
        int oka = ra == TS_OK && pages_intact(a, first);
        ts_close(a);
        int rb = open_with(dir, to, &b);
        int okb = rb == TS_OK && pages_intact(b, first);
        ts_close(b);
        ck_assert_msg(oka != okb, "crash at point %lld (tear %lld) of rekey %d: old config %s (%d), new %s (%d)",
                      (long long)n, (long long)tear, _i, oka ? "opens" : "fails", ra, okb ? "opens" : "fails", rb);
        if (oka) old_won++; else new_won++;
    }
    fprintf(stderr, "rekey %d: %lu crashes, %lu of them torn (old key kept %lu, new key %lu)\n", _i, crashes,
            torn, old_won, new_won);
    ck_assert_uint_gt(old_won, 0);
    ck_assert_uint_gt(new_won, 0);
    tst_rmrf(dir);
    free(dir);
}
END_TEST

/* ---- sequences of up to three operations with a rekey ---------------- */

enum { S_INS, S_UPD, S_DEL, S_CKPT, S_REKEY, S_KINDS };
static const char *const s_names[] = { "insert", "update", "delete", "checkpoint", "rekey" };
/* the rekeys walk this cycle: plain -> chacha20 -> aes256gcm -> plain */
static const char *const s_cycle[] = { NULL, "{\"module\": \"chacha20poly1305\", \"key\": \"" KEY1 "\"}",
                                       "{\"module\": \"aes256gcm\", \"key\": \"" KEY2 "\"}" };
#define S_MAXP 32

/* The pages the sequence owns: page number -> generation (0: none). */
typedef struct smodel { uint64_t pgno[S_MAXP]; uint32_t gen[S_MAXP]; int n; } smodel;

static uint8_t sfill(uint64_t pgno, uint32_t gen, size_t k) { return (uint8_t)(pgno * 13 + gen * 5 + k * 7); }

static void swrite(tstx *tx, tspage *p, uint64_t pgno, uint32_t gen)
{
    uint8_t *d = tspage_data(p);
    for (size_t k = 0; k < tstx_usable(tx); k++) d[k] = sfill(pgno, gen, k);
}

/* Run one operation on db; m becomes the state it commits.  Returns the
 * operation's status; *key is the cycle position after it. */
static int sop(ts_db *db, int kind, smodel *m, uint32_t *gen, int *key)
{
    if (kind == S_CKPT) return tspg_checkpoint(db->pg, 1);
    if (kind == S_REKEY) {
        int next = (*key + 1) % 3;
        const char *to = s_cycle[next];
        int rc = ts_rekey(db, to, TS_REKEY_NEW_DATA_KEY, NULL, NULL);
        if (!rc) *key = next;
        return rc;
    }
    tstx *tx;
    int rc = tstx_begin(db->pg, 1, &tx);
    if (rc) return rc;
    (*gen)++;
    for (int i = 0; i < 2 && !rc; i++) {
        tspage *p;
        uint64_t no;
        if (kind == S_INS) {
            if (m->n == S_MAXP) break;
            if ((rc = tstx_alloc(tx, &p, &no))) break;
            swrite(tx, p, no, *gen);
            tspage_release(p);
            m->pgno[m->n] = no;
            m->gen[m->n++] = *gen;
        } else if (kind == S_UPD) {
            if (i >= m->n) break;
            if ((rc = tstx_get(tx, m->pgno[i], 1, &p))) break;
            swrite(tx, p, m->pgno[i], *gen);
            tspage_release(p);
            m->gen[i] = *gen;
        } else {
            if (m->n == 0) break;
            if ((rc = tstx_free(tx, m->pgno[m->n - 1]))) break;
            m->n--;
        }
    }
    if (rc) { tstx_rollback(tx); return rc; }
    /* the pages' list in a root slot: a reopened database is self-describing */
    if ((rc = tstx_root_set(tx, 0, m->n ? m->pgno[0] : 0))) { tstx_rollback(tx); return rc; }
    return tstx_commit(tx);
}

static int smatches(ts_db *db, const smodel *m)
{
    tstx *tx;
    if (tstx_begin(db->pg, 0, &tx)) return 0;
    int ok = 1;
    for (int i = 0; i < m->n && ok; i++) {
        tspage *p;
        if (tstx_get(tx, m->pgno[i], 0, &p)) { ok = 0; break; }
        const uint8_t *d = tspage_data(p);
        for (size_t k = 0; k < tstx_usable(tx) && ok; k++) ok = d[k] == sfill(m->pgno[i], m->gen[i], k);
        tspage_release(p);
    }
    tstx_rollback(tx);
    return ok && ts_check(db, NULL, NULL, NULL) == TS_OK;
}

typedef struct srun { int crashed, failed_op, key_before; smodel acked, inflight; int key; } srun;

/* The sequence ops[0..len) on a fresh database of three pages, with a crash
 * armed at fault point n (0: none); returns what was acknowledged. */
static srun srun_once(const char *dir, const int *ops, int len, int64_t n, int64_t *points)
{
    srun r;
    memset(&r, 0, sizeof r);
    r.failed_op = -1;
    tst_rmrf(dir);
    ts_db *db;
    ck_assert_int_eq(open_with(dir, NULL, &db), TS_OK);
    uint32_t gen = 0;
    for (int i = 0; i < 3; i++) ck_assert_int_eq(sop(db, S_INS, &r.acked, &gen, &r.key), TS_OK);
    r.acked.n = 3;
    int64_t base = 0;
    ts_storage_control(db, "points", 0, &base);
    if (n) ck_assert_int_eq(ts_storage_control(db, "crash_at", n, NULL), TS_OK);
    for (int i = 0; i < len; i++) {
        r.inflight = r.acked;
        r.key_before = r.key;
        uint32_t g = gen;
        int rc = sop(db, ops[i], &r.inflight, &g, &r.key);
        gen = g;
        int64_t down = 0;
        ts_storage_control(db, "crashed", 0, &down);
        if (down) {
            r.crashed = 1;
            r.failed_op = i;
            break;
        }
        ck_assert_msg(rc == TS_OK, "op %s without a crash: %d %s", s_names[ops[i]], rc, ts_errmsg(db));
        r.acked = r.inflight;
    }
    if (!r.crashed) {
        int64_t end = 0;
        ts_storage_control(db, "points", 0, &end);
        *points = end - base;
    }
    ts_close(db);
    return r;
}

START_TEST(rekey_sequences)
{
    char *dir = tst_tmpdir("rekeyseq");
    int nseq = 0;
    unsigned long crashes = 0, new_key = 0;
    int stride = kt_sanitized() ? 3 : 1;
    for (int len = 1; len <= 3; len++) {
        int total = 1;
        for (int i = 0; i < len; i++) total *= S_KINDS;
        for (int code = 0; code < total; code++) {
            int ops[3], has_rekey = 0;
            char name[80] = "";
            for (int i = 0, c = code; i < len; i++, c /= S_KINDS) {
                ops[i] = c % S_KINDS;
                has_rekey |= ops[i] == S_REKEY;
                strcat(name, i ? "," : "");
                strcat(name, s_names[ops[i]]);
            }
            if (!has_rekey) continue;   /* test_powerloss has those */
            nseq++;
            int64_t points = 0;
            srun clean = srun_once(dir, ops, len, 0, &points);
            ck_assert_msg(!clean.crashed && points > 0, "%s: clean run", name);
            for (int64_t n = 1 + (nseq % stride); n <= points; n += stride) {
                int64_t unused;
                srun r = srun_once(dir, ops, len, n, &unused);
                ck_assert_msg(r.crashed, "%s: no crash at point %lld of %lld", name, (long long)n,
                              (long long)points);
                crashes++;
                /* which key opens it: the last acknowledged one, or the
                 * in-flight rekey's target */
                int cand[2] = { r.key_before, (r.key_before + 1) % 3 };
                int ncand = ops[r.failed_op] == S_REKEY ? 2 : 1;
                int opened = 0, which = -1;
                for (int c = 0; c < ncand; c++) {
                    ts_db *db = NULL;
                    if (open_with(dir, s_cycle[cand[c]], &db) != TS_OK) continue;
                    int ok = smatches(db, &r.acked) ||
                             (ops[r.failed_op] != S_CKPT && ops[r.failed_op] != S_REKEY &&
                              smatches(db, &r.inflight));
                    ts_close(db);
                    ck_assert_msg(ok, "%s: crash at %lld (in %s): opens with key %d but the pages are "
                                  "not an acknowledged state", name, (long long)n,
                                  s_names[ops[r.failed_op]], cand[c]);
                    opened++;
                    which = c;
                }
                ck_assert_msg(opened == 1, "%s: crash at %lld (in %s): %d configurations open", name,
                              (long long)n, s_names[ops[r.failed_op]], opened);
                if (which == 1) new_key++;
            }
        }
    }
    ck_assert_int_eq(nseq, (5 + 25 + 125) - (4 + 16 + 64));
    ck_assert_uint_gt(new_key, 0);
    fprintf(stderr, "rekey sequences: %d sequences of up to 3 operations with a rekey, %lu crash "
            "points (%lu in a rekey kept the new key)\n", nseq, crashes, new_key);
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
    tc = tcase_create("sequences");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, rekey_sequences);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
