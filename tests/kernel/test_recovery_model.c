/*
 * Model-based randomized test of the pager: random write transactions
 * (allocate, overwrite, free, set root slots, read back; then commit or
 * roll back), checkpoints, clean reopens and read snapshots held across
 * all of it, each step checked against an in-memory reference of the
 * acknowledged commits.  On the `faulty` backend, a simulated power loss
 * is armed at a random fault point (sometimes with a torn write): after
 * the crash the reopened database must equal the reference, with one
 * allowance: the one commit whose call had not returned may be there or
 * not, but whole.  With durability "normal" acknowledged commits may be
 * lost on power loss, but only from the end: the database must equal one
 * of the states since the last checkpoint.
 *
 * Fixed seeds; TS_TEST_LONG=1 runs more and longer.  To chase a failure:
 * TS_MODEL_SEED=<seed> runs that seed only, TS_MODEL_STEPS=<n> sets the
 * steps, TS_MODEL_TRACE=1 prints every step and arming (CK_FORK=no helps
 * under a debugger).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kt.h"

#define MAXR 3
#define WHYLEN 512

typedef struct reader {
    tstx    *tx;
    kt_model snap;
} reader;

typedef struct ctx {
    uint64_t  seed;
    int       full, crash;
    unsigned  page_size;    /* 0: the default (4096) */
    char     *dir;
    ts_db    *db;
    kt_rng    rng;
    uint64_t  ver;          /* last page version handed out */
    kt_model  committed;    /* acknowledged state */
    kt_model *hist;         /* states since the last durable point; hist[nhist-1] == committed */
    size_t    nhist, caphist;
    reader    rd[MAXR];
    int       nrd;
    unsigned  step;
    /* statistics */
    unsigned long txns, commits, rollbacks, crashes, inflight_kept, inflight_lost, lost_normal,
                  ckpts, reopens, spilled_txns, verifies, reader_checks;
} ctx;

static long long env_ll(const char *name, long long def)
{
    const char *e = getenv(name);
    return e && *e ? atoll(e) : def;
}

/* ---- history of committed states (for durability normal) ------------ */

static void hist_reset(ctx *c)
{
    for (size_t i = 0; i < c->nhist; i++) kt_model_free(&c->hist[i]);
    c->nhist = 0;
}

static void hist_push(ctx *c, const kt_model *m)
{
    if (c->full) hist_reset(c); /* every acknowledged commit is durable */
    if (c->nhist == c->caphist) {
        c->caphist = c->caphist ? 2 * c->caphist : 16;
        c->hist = realloc(c->hist, c->caphist * sizeof *c->hist);
        ck_assert_ptr_nonnull(c->hist);
    }
    kt_model_init(&c->hist[c->nhist]);
    kt_model_copy(&c->hist[c->nhist++], m);
}

/* Everything so far is durable: forget older states. */
static void hist_durable(ctx *c)
{
    hist_reset(c);
    hist_push(c, &c->committed);
}

/* ---- opening -------------------------------------------------------- */

static int64_t control(ctx *c, const char *op, int64_t arg)
{
    int64_t out = 0;
    int rc = ts_storage_control(c->db, op, arg, &out);
    KT_REQUIRE(rc == TS_OK, "control %s: %s", op, ts_errmsg(c->db));
    return out;
}

static void arm(ctx *c)
{
    if (!c->crash) return;
    static const int64_t spans[] = { 5, 20, 80, 400, 3000 };
    int64_t span = spans[kt_below(&c->rng, 5)];
    control(c, "crash_at", 1 + (int64_t)kt_below(&c->rng, (uint64_t)span));
    int64_t tear = 0;
    switch (kt_below(&c->rng, 4)) {
    case 0: tear = 1 + (int64_t)kt_below(&c->rng, 40); break;           /* in a frame header */
    case 1: tear = 1 + (int64_t)kt_below(&c->rng, 3 * ((c->page_size ? c->page_size : 4096) + 48)); break;
    default: break;
    }
    control(c, "tear", tear);
    if (getenv("TS_MODEL_TRACE"))
        fprintf(stderr, "armed: tear %lld\n", (long long)tear);
}

static void db_open(ctx *c)
{
    char cfg[1024], ps[64] = "";
    /* at least 16 pages of cache, so that bigger pages spill as often */
    if (c->page_size) snprintf(ps, sizeof ps, "\"pageSize\": %u, ", c->page_size);
    snprintf(cfg, sizeof cfg,
             "{\"path\": \"%s\", %s\"cacheBytes\": %u, \"durability\": \"%s\", "
             /* pages only: without the btree plugin the data layer adds no
              * catalog pages, so every page is the model's */
             "\"loadBundled\": false, \"plugins\": [\"posix\", \"faulty\"], "
             "\"storage\": {\"backend\": \"faulty\", \"options\": {\"inner\": \"posix\", "
             "\"passSync\": false}}}",
             c->dir, ps, 16 * (c->page_size ? c->page_size : 4096), c->full ? "full" : "normal");
    int rc = ts_open_json(cfg, &c->db);
    KT_REQUIRE(rc == TS_OK, "seed %llu step %u: open: %s", (unsigned long long)c->seed, c->step,
                  ts_errmsg(NULL));
    arm(c);
}

static void readers_close(ctx *c)
{
    for (int i = 0; i < c->nrd; i++) {
        tstx_rollback(c->rd[i].tx);
        kt_model_free(&c->rd[i].snap);
    }
    c->nrd = 0;
}

/* ---- checks --------------------------------------------------------- */

static void crashed(ctx *c, int rc, const char *what, const kt_model *inflight);

/* Compare with the model; a failed read on a crashed store (e.g. after an
 * automatic checkpoint inside a successful commit hit the crash point) is
 * a crash, not a mismatch. */
static void verify(ctx *c, int full_check)
{
    char why[WHYLEN];
    tstx *tx;
    int rc = tstx_begin(c->db->pg, 0, &tx);
    if (rc && c->crash) { crashed(c, rc, "begin read (verify)", NULL); return; }
    KT_REQUIRE(rc == TS_OK, "seed %llu step %u: begin read: %s", (unsigned long long)c->seed,
                  c->step, ts_errmsg(c->db));
    int ok = full_check || c->committed.page_count < 80
           ? kt_tx_matches(tx, &c->committed, why, sizeof why)
           : kt_tx_matches_sample(tx, &c->committed, &c->rng, 24, why, sizeof why);
    tstx_rollback(tx);
    c->verifies++;
    if (!ok && c->crash) {
        int64_t down = 0;
        ts_storage_control(c->db, "crashed", 0, &down);
        if (down) { crashed(c, TS_ERR_IO, "verify", NULL); return; }
    }
    KT_REQUIRE(ok, "seed %llu step %u (%s): database differs from the model: %s",
                  (unsigned long long)c->seed, c->step, c->full ? "full" : "normal", why);
}

/* After a crash: close, reopen, and find which allowed state we got. */
static void crashed(ctx *c, int rc, const char *what, const kt_model *inflight)
{
    int64_t down = 0;
    ts_storage_control(c->db, "crashed", 0, &down);
    KT_REQUIRE(c->crash && down == 1, "seed %llu step %u: %s failed without a crash: %d %s",
                  (unsigned long long)c->seed, c->step, what, rc, ts_errmsg(c->db));
    KT_REQUIRE(rc == TS_ERR_IO || rc == TS_ERR_READONLY,
                  "seed %llu step %u: %s after a crash returned %d (%s), not "
                  "TS_ERR_IO", (unsigned long long)c->seed, c->step, what, rc, ts_errmsg(c->db));
    readers_close(c);
    ts_close(c->db); /* may fail: the store is down */
    c->db = NULL;
    c->crashes++;
    db_open(c);

    char why[WHYLEN] = "", why2[WHYLEN];
    const kt_model *got = NULL;
    if (inflight && kt_matches(c->db->pg, inflight, why2, sizeof why2)) {
        got = inflight;
        c->inflight_kept++;
    }
    for (size_t i = c->nhist; !got && i-- > 0;) {
        if (kt_matches(c->db->pg, &c->hist[i], i == c->nhist - 1 ? why : why2, WHYLEN)) {
            got = &c->hist[i];
            if (inflight) c->inflight_lost++;
            if (i != c->nhist - 1) c->lost_normal++;
        }
    }
    if (!got) {
        for (size_t i = 0; i < c->nhist; i++) {
            kt_matches(c->db->pg, &c->hist[i], why2, sizeof why2);
            fprintf(stderr, "  candidate %zu/%zu: %s\n", i, c->nhist, why2);
        }
        if (inflight) {
            kt_matches(c->db->pg, inflight, why2, sizeof why2);
            fprintf(stderr, "  in-flight: %s\n", why2);
        }
        kt_model found;
        kt_model_init(&found);
        if (kt_consistent(c->db->pg, 0, &found, why2, sizeof why2)) {
            fprintf(stderr, "  found a consistent state: %llu pages, %llu free\n",
                    (unsigned long long)found.page_count, (unsigned long long)found.nfree);
            for (size_t i = 0; i < c->nhist; i++) {
                int diff = 0;
                for (uint64_t p = 2; p < found.page_count && p < c->hist[i].page_count; p++)
                    diff += found.ver[p] != c->hist[i].ver[p];
                fprintf(stderr, "  vs candidate %zu: %d pages differ\n", i, diff);
            }
        } else {
            fprintf(stderr, "  the database is not even consistent: %s\n", why2);
        }
        kt_model_free(&found);
    }
    KT_REQUIRE(got != NULL, "seed %llu step %u: after a crash in %s the database is neither "
                  "the acknowledged state%s%s: %s", (unsigned long long)c->seed, c->step, what,
                  inflight ? " nor that plus the commit in flight" : "",
                  c->full ? "" : " (nor an earlier state since the last checkpoint)", why);
    kt_model_copy(&c->committed, got);
    hist_durable(c); /* what survived a crash is on disk */
    verify(c, 1);
}

/* Either fine, or a crash (returns 1 after recovering). */
#define CHECK(c, rc, what, inflight)                                                        \
    do {                                                                                    \
        int rc_ = (rc);                                                                     \
        if (rc_ != TS_OK) { crashed((c), rc_, (what), (inflight)); return 1; }              \
    } while (0)

/* ---- steps ---------------------------------------------------------- */

static int write_page(ctx *c, tstx *tx, kt_model *w, tspage *p, uint64_t pgno)
{
    (void)tx;
    uint64_t v = ++c->ver;
    kt_fill(tspage_data(p), tstx_usable(tx), pgno, v);
    tspage_release(p);
    kt_model_set(w, pgno, v);
    return 0;
}

static int step_txn(ctx *c)
{
    tstx *tx;
    char why[WHYLEN];
    c->txns++;
    CHECK(c, tstx_begin(c->db->pg, 1, &tx), "begin write", NULL);
    kt_model w;
    kt_model_init(&w);
    kt_model_copy(&w, &c->committed);
    int big = kt_below(&c->rng, 10) == 0;
    unsigned nops = big ? 80 + (unsigned)kt_below(&c->rng, 220) : 1 + (unsigned)kt_below(&c->rng, 12);
    if (big) c->spilled_txns++;
    int rc = TS_OK;
    const char *what = "";
    for (unsigned i = 0; i < nops && !rc; i++) {
        unsigned r = (unsigned)kt_below(&c->rng, 100);
        uint64_t live = kt_model_live(&w);
        /* keep the file from growing without bound */
        if (w.page_count > 400 && r < 40) r = 40 + (unsigned)kt_below(&c->rng, 60);
        if (r < 40 || live == 0) {
            tspage *p;
            uint64_t pgno;
            what = "alloc";
            if ((rc = tstx_alloc(tx, &p, &pgno))) break;
            KT_REQUIRE(pgno == w.page_count || (pgno >= 2 && pgno < w.page_count &&
                                                   w.ver[pgno] == KT_FREE),
                          "seed %llu step %u: alloc returned page %llu, neither free nor new",
                          (unsigned long long)c->seed, c->step, (unsigned long long)pgno);
            write_page(c, tx, &w, p, pgno);
        } else if (r < 70) {
            uint64_t pgno = kt_model_pick_live(&w, &c->rng);
            tspage *p;
            what = "get for write";
            if ((rc = tstx_get(tx, pgno, 1, &p))) break;
            KT_REQUIRE(kt_check_fill(tspage_data(p), tstx_usable(tx), pgno, w.ver[pgno]),
                          "seed %llu step %u: page %llu opened for write holds version %llu, not %llu",
                          (unsigned long long)c->seed, c->step, (unsigned long long)pgno,
                          (unsigned long long)kt_stored_ver(tspage_data(p)),
                          (unsigned long long)w.ver[pgno]);
            write_page(c, tx, &w, p, pgno);
        } else if (r < 80) {
            uint64_t pgno = kt_model_pick_live(&w, &c->rng);
            what = "free";
            if ((rc = tstx_free(tx, pgno))) break;
            kt_model_free_page(&w, pgno);
            for (unsigned s = 0; s < TSPG_ROOTS; s++)
                if (w.roots[s] == pgno && s < 4) { w.roots[s] = 0; tstx_root_set(tx, s, 0); }
        } else if (r < 88) {
            unsigned s = (unsigned)kt_below(&c->rng, TSPG_ROOTS);
            uint64_t v = s < 4 ? kt_model_pick_live(&w, &c->rng) : kt_next(&c->rng);
            ck_assert_int_eq(tstx_root_set(tx, s, v), TS_OK);
            w.roots[s] = v;
        } else {
            /* read back what this transaction sees (its own writes, spilled or not) */
            uint64_t pgno = kt_model_pick_live(&w, &c->rng);
            tspage *p;
            what = "read own write";
            if ((rc = tstx_get(tx, pgno, 0, &p))) break;
            KT_REQUIRE(kt_check_fill(tspage_data(p), tstx_usable(tx), pgno, w.ver[pgno]),
                          "seed %llu step %u: write txn reads page %llu as version %llu, not %llu",
                          (unsigned long long)c->seed, c->step, (unsigned long long)pgno,
                          (unsigned long long)kt_stored_ver(tspage_data(p)),
                          (unsigned long long)w.ver[pgno]);
            tspage_release(p);
        }
    }
    if (rc) {
        tstx_rollback(tx);
        crashed(c, rc, what, NULL);
        kt_model_free(&w);
        return 1;
    }
    uint64_t pages, nfree;
    tstx_counts(tx, &pages, &nfree);
    KT_REQUIRE(pages == w.page_count && nfree == w.nfree,
                  "seed %llu step %u: write txn counts %llu/%llu, model %llu/%llu",
                  (unsigned long long)c->seed, c->step, (unsigned long long)pages,
                  (unsigned long long)nfree, (unsigned long long)w.page_count,
                  (unsigned long long)w.nfree);
    if (big || kt_below(&c->rng, 8) == 0) {
        int ok = kt_tx_matches_sample(tx, &w, &c->rng, 16, why, sizeof why);
        if (!ok && c->crash) {
            /* a read may have hit the crash: only then is a mismatch allowed */
            int64_t down = 0;
            ts_storage_control(c->db, "crashed", 0, &down);
            if (down) {
                tstx_rollback(tx);
                crashed(c, TS_ERR_IO, "read in write txn", NULL);
                kt_model_free(&w);
                return 1;
            }
        }
        KT_REQUIRE(ok, "seed %llu step %u: write txn view: %s", (unsigned long long)c->seed,
                      c->step, why);
    }
    if (kt_below(&c->rng, 100) < 15) {
        tstx_rollback(tx);
        c->rollbacks++;
        kt_model_free(&w);
        return 0;
    }
    rc = tstx_commit(tx);
    if (rc) {
        crashed(c, rc, "commit", &w);
        kt_model_free(&w);
        return 1;
    }
    c->commits++;
    kt_model_copy(&c->committed, &w);
    hist_push(c, &w);
    kt_model_free(&w);
    return 0;
}

static int step_checkpoint(ctx *c)
{
    int reset = (int)kt_below(&c->rng, 2);
    CHECK(c, tspg_checkpoint(c->db->pg, reset), "checkpoint", NULL);
    c->ckpts++;
    if (c->nrd == 0) hist_durable(c);
    return 0;
}

static int step_reader(ctx *c)
{
    char why[WHYLEN];
    unsigned r = (unsigned)kt_below(&c->rng, 3);
    if (r == 0 && c->nrd < MAXR) {
        reader *rd = &c->rd[c->nrd];
        CHECK(c, tstx_begin(c->db->pg, 0, &rd->tx), "begin read", NULL);
        kt_model_init(&rd->snap);
        kt_model_copy(&rd->snap, &c->committed);
        c->nrd++;
    } else if (r == 1 && c->nrd > 0) {
        int i = (int)kt_below(&c->rng, (uint64_t)c->nrd);
        tstx_rollback(c->rd[i].tx);
        kt_model_free(&c->rd[i].snap);
        c->rd[i] = c->rd[--c->nrd];
    } else if (c->nrd > 0) {
        int i = (int)kt_below(&c->rng, (uint64_t)c->nrd);
        int ok = kt_tx_matches_sample(c->rd[i].tx, &c->rd[i].snap, &c->rng, 24, why, sizeof why);
        c->reader_checks++;
        if (!ok && c->crash) {
            int64_t down = 0;
            ts_storage_control(c->db, "crashed", 0, &down);
            if (down) { crashed(c, TS_ERR_IO, "snapshot read", NULL); return 1; }
        }
        KT_REQUIRE(ok, "seed %llu step %u: a read snapshot changed: %s",
                      (unsigned long long)c->seed, c->step, why);
    }
    return 0;
}

static int step_reopen(ctx *c)
{
    readers_close(c);
    int rc = ts_close(c->db);
    c->db = NULL;
    c->reopens++;
    if (rc) {
        /* only a crash during the final checkpoint may fail a close */
        KT_REQUIRE(c->crash, "seed %llu step %u: close failed: %s", (unsigned long long)c->seed,
                      c->step, ts_errmsg(NULL));
        c->crashes++;
    }
    db_open(c);
    char why[WHYLEN];
    if (rc && !c->full) {
        /* normal durability: the crash may have lost the commits since the last checkpoint */
        for (size_t i = c->nhist; i-- > 0;)
            if (kt_matches(c->db->pg, &c->hist[i], why, sizeof why)) {
                if (i != c->nhist - 1) c->lost_normal++;
                kt_model_copy(&c->committed, &c->hist[i]);
                break;
            }
    }
    hist_durable(c);
    verify(c, 1);
    return 0;
}

static void run_ps(uint64_t seed, int full, int crash, unsigned steps, unsigned page_size)
{
    ctx c;
    memset(&c, 0, sizeof c);
    c.page_size = page_size;
    c.seed = seed;
    c.full = full;
    c.crash = crash;
    c.rng.s = seed;
    c.dir = kt_fast_tmpdir("model");
    kt_model_init(&c.committed);
    db_open(&c);
    hist_durable(&c);
    verify(&c, 1);
    for (c.step = 0; c.step < steps; c.step++) {
        unsigned r = (unsigned)kt_below(&c.rng, 100);
        int crashed_now;
        if (getenv("TS_MODEL_TRACE")) {
            int64_t pts = 0;
            ts_storage_control(c.db, "points", 0, &pts);
            fprintf(stderr, "step %u: %s (points %lld, hist %zu, readers %d, pages %llu)\n", c.step,
                    r < 65 ? "txn" : r < 75 ? "checkpoint" : r < 96 ? "reader" : "reopen",
                    (long long)pts, c.nhist, c.nrd, (unsigned long long)c.committed.page_count);
        }
        if (r < 65) crashed_now = step_txn(&c);
        else if (r < 75) crashed_now = step_checkpoint(&c);
        else if (r < 97) crashed_now = step_reader(&c);
        else crashed_now = step_reopen(&c);
        if (!crashed_now) verify(&c, c.step % 32 == 0);
    }
    readers_close(&c);
    int rc = ts_close(c.db);
    c.db = NULL;
    if (rc) KT_REQUIRE(crash, "seed %llu: final close: %s", (unsigned long long)seed, ts_errmsg(NULL));
    c.crash = 0;
    db_open(&c);
    if (rc && !full) {
        char why[WHYLEN];
        for (size_t i = c.nhist; i-- > 0;)
            if (kt_matches(c.db->pg, &c.hist[i], why, sizeof why)) {
                kt_model_copy(&c.committed, &c.hist[i]);
                break;
            }
    }
    verify(&c, 1);
    ck_assert_int_eq(ts_close(c.db), TS_OK);
    fprintf(stderr,
            "model seed %llu %s%s: %u steps, %lu txns (%lu commits, %lu rollbacks, %lu spilled), "
            "%lu checkpoints, %lu reopens, %lu reader checks, %lu crashes (in-flight commit kept "
            "%lu / lost %lu, normal-mode tail lost %lu), %llu pages\n",
            (unsigned long long)seed, full ? "full" : "normal", crash ? " crash" : "", steps, c.txns,
            c.commits, c.rollbacks, c.spilled_txns, c.ckpts, c.reopens, c.reader_checks, c.crashes,
            c.inflight_kept, c.inflight_lost, c.lost_normal,
            (unsigned long long)c.committed.page_count);
    if (crash) ck_assert_uint_ge(c.crashes, steps / 60);
    ck_assert_uint_gt(c.commits, 0);
    hist_reset(&c);
    free(c.hist);
    kt_model_free(&c.committed);
    tst_rmrf(c.dir);
    free(c.dir);
}

static void run(uint64_t seed, int full, int crash, unsigned steps)
{
    run_ps(seed, full, crash, steps, 0);
}

/* Sanitizer builds run a third of the steps (they are 3-5x slower). */
static unsigned steps(void)
{
    return (unsigned)env_ll("TS_MODEL_STEPS", kt_long() ? 6000 : kt_sanitized() ? 200 : 600);
}
static int nseeds(void) { return kt_long() ? 8 : 2; }
/* TS_MODEL_SEED=n: run only seed n (to reproduce a failure). */
static int want(uint64_t seed)
{
    long long only = env_ll("TS_MODEL_SEED", -1);
    return only < 0 || (uint64_t)only == seed;
}

START_TEST(model_full)
{
    for (int i = 0; i < nseeds(); i++)
        if (want(1000 + (uint64_t)i)) run(1000 + (uint64_t)i, 1, 0, steps());
}
END_TEST

START_TEST(model_normal)
{
    for (int i = 0; i < nseeds(); i++)
        if (want(2000 + (uint64_t)i)) run(2000 + (uint64_t)i, 0, 0, steps());
}
END_TEST

START_TEST(model_full_crash)
{
    for (int i = 0; i < nseeds(); i++)
        if (want(3000 + (uint64_t)i)) run(3000 + (uint64_t)i, 1, 1, steps());
}
END_TEST

START_TEST(model_normal_crash)
{
    for (int i = 0; i < nseeds(); i++)
        if (want(4000 + (uint64_t)i)) run(4000 + (uint64_t)i, 0, 1, steps());
}
END_TEST

/* The same with 16 KiB and 64 KiB pages (frames, tears and spills scale
 * with the page). */
START_TEST(model_big_pages_crash)
{
    if (want(5000)) run_ps(5000, 1, 1, steps(), 16384);
    if (want(5001)) run_ps(5001, 0, 1, steps(), 65536);
    if (want(5002)) run_ps(5002, 1, 0, steps() / 2, 65536);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("recovery_model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, model_full);
    tcase_add_test(tc, model_normal);
    tcase_add_test(tc, model_full_crash);
    tcase_add_test(tc, model_normal_crash);
    tcase_add_test(tc, model_big_pages_crash);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
