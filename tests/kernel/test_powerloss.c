/*
 * Power loss and I/O errors at every fault point of fixed workloads, on the
 * `faulty` backend (over posix, with real fsyncs off).
 *
 * For each workload: one clean run counts its fault points (writes and
 * syncs); then for N = 1..count a fresh database runs it again with a
 * simulated power loss armed at point N (also with torn writes that leave
 * a prefix of the crashing write), is reopened, and must hold every
 * acknowledged commit (in durability "normal": every commit up to the last
 * checkpoint), at most the one commit in flight, and be consistent: every
 * page readable, the free list whole, the page count as expected.  Failed
 * fsyncs (every sync point) must stop writes (TS_ERR_READONLY / TS_ERR_IO)
 * and leave the database readable; a full disk or an I/O error (EIO) on a
 * write (every write point) fails that transaction only, with TS_ERR_IO,
 * and later writes succeed.
 *
 * Then every sequence of up to 3 operations from {insert, update, delete,
 * checkpoint}, on a small database and right after its creation (create
 * as the first operation), crashed at every point; bit flips in the main file and the
 * log read directly with stdio; garbage and torn log tails.
 *
 * The number of simulated crashes is printed; at least 5,000 per run,
 * 100,000 with TS_TEST_LONG=1.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "kt.h"
#include "config/opts.h"
#include "pager/codec.h"
#include "wal/wal.h"

#define PS 4096
#define WHYLEN 512
#define ROOT_PAGES 0xFFu      /* root slots 0..7 hold page numbers */

/* Totals over every test of the suite (tests may run in forked children). */
typedef struct totals {
    unsigned long crashes, tears, sync_faults, nospace_faults, eio_faults;
} totals;
static totals *tot;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the host handle and stores ------------------------------------- */

/* A database handle that supplies the error context and the plugin
 * registry; the stores under test are opened directly, so that a fault can
 * be armed before the database file is even created. */
static ts_db *host;
static char *host_dir;

static void host_open(void)
{
    if (host) return;
    host_dir = tst_tmpdir("plhost");
    char cfg[512];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"}", host_dir);
    if (ts_open_json(cfg, &host) != TS_OK) {
        fprintf(stderr, "host open: %s\n", ts_errmsg(NULL));
        exit(2);
    }
}

static const char *msg(void) { return ts_errmsg(host); }

static tsstore *store_open(const char *dir, const char *backend)
{
    json_t *o = strcmp(backend, "faulty") == 0
              ? json_pack("{s:s, s:b}", "inner", "posix", "passSync", 0) : NULL;
    tsstore *st = NULL;
    int rc = tsstore_open(&host->env, host->reg, backend, o, dir, &st);
    json_decref(o);
    KT_REQUIRE(rc == TS_OK, "store open %s: %s", dir, msg());
    return st;
}

static int64_t ctl(tsstore *st, const char *op, int64_t arg)
{
    int64_t out = 0;
    int rc = st->vt->control(st->h, op, arg, &out);
    KT_REQUIRE(rc == TS_OK, "control %s: %d", op, rc);
    return out;
}

static int pg_open(tsstore *st, int full, uint64_t cache, tspg **pg)
{
    tspg_opts o = { PS, cache ? cache : 65536, full, 1000, 0, 0, 1 };
    tsenv_clear(&host->env);
    return tspg_open(&host->env, st, NULL, &o, pg);
}

/* ---- workloads ------------------------------------------------------ */

enum { OP_INSERT, OP_UPDATE, OP_DELETE, OP_CKPT, OP_CKPT_KEEP, OP_BIG };
typedef struct op { int kind, n; } op;
static const char *const op_names[] = { "insert", "update", "delete", "checkpoint",
                                        "checkpoint(no reset)", "big txn" };

typedef struct wdef {
    const char *name;
    const op   *pre;      /* run before the fault is armed */
    int         npre;
    const op   *ops;
    int         nops;
} wdef;

typedef struct wl {
    tspg     *pg;
    int       full;
    uint64_t  ver;
    kt_model *st;         /* st[0]: the state the run starts from; st[k]: after k acks */
    int       nst, capst;
    int       durable;    /* index of the last state known durable (normal mode) */
    kt_model  inflight;   /* the commit whose call failed */
    int       has_inflight;
    unsigned  slot;       /* next root slot for an insert */
} wl;

static kt_model *cur(wl *w) { return &w->st[w->nst - 1]; }

static void wl_push(wl *w, const kt_model *m)
{
    if (w->nst == w->capst) {
        w->capst = w->capst ? 2 * w->capst : 8;
        w->st = realloc(w->st, (size_t)w->capst * sizeof *w->st);
        KT_REQUIRE(w->st != NULL, "out of memory");
    }
    kt_model_init(&w->st[w->nst]);
    kt_model_copy(&w->st[w->nst++], m);
    if (w->full) w->durable = w->nst - 1;
}

static void wl_init(wl *w, int full)
{
    memset(w, 0, sizeof *w);
    w->full = full;
    kt_model m;
    kt_model_init(&m);
    wl_push(w, &m);
    kt_model_free(&m);
    kt_model_init(&w->inflight);
}

static void wl_free(wl *w)
{
    for (int i = 0; i < w->nst; i++) kt_model_free(&w->st[i]);
    free(w->st);
    kt_model_free(&w->inflight);
}

/* The live page of rank k from the bottom (k >= 0) or top (k < 0). */
static uint64_t nth_live(const kt_model *m, int k)
{
    if (k >= 0) {
        for (uint64_t p = 2; p < m->page_count; p++)
            if (m->ver[p] != KT_FREE && k-- == 0) return p;
    } else {
        for (uint64_t p = m->page_count; p-- > 2;)
            if (m->ver[p] != KT_FREE && ++k == 0) return p;
    }
    return 0;
}

static int put_page(wl *w, tstx *tx, kt_model *m, tspage *p, uint64_t pgno)
{
    uint64_t v = ++w->ver;
    kt_fill(tspage_data(p), tstx_usable(tx), pgno, v);
    tspage_release(p);
    kt_model_set(m, pgno, v);
    return TS_OK;
}

/* One operation.  *what names the call that failed. */
static int do_op(wl *w, const op *o, const char **what)
{
    tspg *pg = w->pg;
    int rc;
    if (o->kind == OP_CKPT || o->kind == OP_CKPT_KEEP) {
        *what = "checkpoint";
        rc = tspg_checkpoint(pg, o->kind == OP_CKPT);
        if (!rc) w->durable = w->nst - 1;
        return rc;
    }
    tstx *tx;
    *what = "begin write";
    if ((rc = tstx_begin(pg, 1, &tx))) return rc;
    kt_model m;
    kt_model_init(&m);
    kt_model_copy(&m, cur(w));
    tspage *p = NULL;
    uint64_t pgno;
    switch (o->kind) {
    case OP_INSERT:
        for (int i = 0; i < o->n && !rc; i++) {
            *what = "alloc";
            if ((rc = tstx_alloc(tx, &p, &pgno))) break;
            put_page(w, tx, &m, p, pgno);
            unsigned s = w->slot++ % 8;
            m.roots[s] = pgno;
            tstx_root_set(tx, s, pgno);
        }
        break;
    case OP_UPDATE:
        for (int i = 0; i < o->n && !rc; i++) {
            if (!(pgno = nth_live(&m, i))) break;
            *what = "get for write";
            if ((rc = tstx_get(tx, pgno, 1, &p))) break;
            put_page(w, tx, &m, p, pgno);
        }
        m.roots[8] = w->ver;
        tstx_root_set(tx, 8, w->ver);
        break;
    case OP_DELETE:
        for (int i = 0; i < o->n && !rc; i++) {
            if (!(pgno = nth_live(&m, -1))) break;
            *what = "free";
            if ((rc = tstx_free(tx, pgno))) break;
            kt_model_free_page(&m, pgno);
            for (unsigned s = 0; s < 8; s++)
                if (m.roots[s] == pgno) { m.roots[s] = 0; tstx_root_set(tx, s, 0); }
        }
        break;
    case OP_BIG: {
        /* allocate n pages through a small cache (spills to the log), and
         * rewrite some spilled ones and some older pages on the way */
        uint64_t first = 0;
        for (int i = 0; i < o->n && !rc; i++) {
            *what = "alloc (big)";
            if ((rc = tstx_alloc(tx, &p, &pgno))) break;
            if (!first) first = pgno;
            put_page(w, tx, &m, p, pgno);
            if (i % 23 == 22 && pgno - 20 >= 2 && m.ver[pgno - 20] != KT_FREE) {
                *what = "get spilled page for write";
                p = NULL;
                if ((rc = tstx_get(tx, pgno - 20, 1, &p))) break;
                put_page(w, tx, &m, p, pgno - 20);
            }
            if (i % 41 == 40 && (pgno = nth_live(&m, i / 41)) != 0) {
                *what = "get old page for write (big)";
                p = NULL;
                if ((rc = tstx_get(tx, pgno, 1, &p))) break;
                put_page(w, tx, &m, p, pgno);
            }
        }
        m.roots[9] = first;
        tstx_root_set(tx, 9, first);
        break;
    }
    }
    if (rc) {
        KT_REQUIRE(p == NULL || rc == TS_OK, "%s failed (%d) but handed out a page", *what, rc);
        tstx_rollback(tx);
        kt_model_free(&m);
        return rc;
    }
    *what = "commit";
    rc = tstx_commit(tx);
    if (rc) {
        kt_model_copy(&w->inflight, &m);
        w->has_inflight = 1;
    } else {
        wl_push(w, &m);
    }
    kt_model_free(&m);
    return rc;
}

/* ---- one run with one fault ----------------------------------------- */

typedef enum { F_NONE, F_CRASH, F_SYNC, F_NOSPACE, F_EIO } fault;
static const char *const fault_names[] = { "none", "crash", "fsync failure", "ENOSPC", "write EIO" };

typedef struct outcome {
    int     fired;        /* the armed fault made some call fail */
    int64_t points;       /* fault points used after arming (clean runs) */
} outcome;

static void arm(tsstore *st, fault f, int64_t n, int64_t tear)
{
    switch (f) {
    case F_NONE: break;
    case F_CRASH: ctl(st, "crash_at", n); ctl(st, "tear", tear); break;
    case F_SYNC: ctl(st, "fail_sync_at", n); break;
    case F_NOSPACE: ctl(st, "enospc_at", n); break;
    case F_EIO: ctl(st, "fail_write_at", n); break;
    }
}

/* Which allowed state does the database hold?  Returns the index in
 * w->st, w->nst for the in-flight commit, or -1. */
static int which_state(tspg *pg, wl *w, int lo, char *why)
{
    char why2[WHYLEN / 2];
    kt_model found;
    kt_model_init(&found);
    int ok = kt_consistent(pg, ROOT_PAGES, &found, why, WHYLEN);
    int got = -1;
    if (ok) {
        if (w->has_inflight && kt_model_eq(&found, &w->inflight)) got = w->nst;
        for (int i = w->nst - 1; got < 0 && i >= lo; i--)
            if (kt_model_eq(&found, &w->st[i])) got = i;
        if (got < 0) {
            /* say how it differs from the last acknowledged state */
            kt_matches(pg, cur(w), why2, sizeof why2);
            snprintf(why, WHYLEN, "consistent, but not an allowed state (%d..%d%s): vs last ack: %s",
                     lo, w->nst - 1, w->has_inflight ? " or in-flight" : "", why2);
        }
    }
    kt_model_free(&found);
    return got;
}

/* One directory per process, emptied for each run (cheaper than a new one). */
static char *run_path;

static const char *run_dir(void)
{
    if (!run_path) run_path = kt_fast_tmpdir("pl");
    kt_clear_dir(run_path);
    return run_path;
}

static void run_dir_done(void)
{
    if (!run_path) return;
    tst_rmrf(run_path);
    free(run_path);
    run_path = NULL;
}

/* Run workload d once with fault f armed at n (0: none). */
static outcome run_once(const wdef *d, int full, fault f, int64_t n, int64_t tear, int power_loss)
{
    outcome out = { 0, 0 };
    char label[256], torn[48] = "";
    if (tear) snprintf(torn, sizeof torn, " (torn: %lld bytes kept)", (long long)tear);
    snprintf(label, sizeof label, "workload '%s' (%s), %s at point %lld%s%s", d->name,
             full ? "full" : "normal", fault_names[f], (long long)n, torn,
             power_loss ? " + power loss" : "");
    const char *dir = run_dir();
    wl w;
    wl_init(&w, full);
    tsstore *st = store_open(dir, "faulty");
    int armed = 0;
    if (d->npre == 0) { arm(st, f, n, tear); armed = 1; }
    int64_t base = 0;
    tspg *pg = NULL;
    int rc = pg_open(st, full, 0, &pg);
    const char *what = "open", *failed_what = "nothing";
    int failed_at = -1;     /* op index that failed; -2: open */
    if (rc) {
        KT_REQUIRE(f != F_NONE, "%s: open failed: %s", label, msg());
        KT_REQUIRE(rc == TS_ERR_IO, "%s: open failed with %d, not TS_ERR_IO: %s", label, rc, msg());
        out.fired = 1;
        failed_at = -2;
        failed_what = "open";
        if (f != F_CRASH) {
            /* a write error or a failed fsync while creating: try again,
             * then the workload must run as if nothing happened */
            rc = pg_open(st, full, 0, &pg);
            KT_REQUIRE(rc == TS_OK, "%s: open after a failed create: %s", label, msg());
            failed_at = -1;
        }
    }
    w.pg = pg;
    for (int i = 0; pg && i < d->npre; i++) {
        rc = do_op(&w, &d->pre[i], &what);
        KT_REQUIRE(rc == TS_OK, "%s: preamble %s: %s: %s", label, op_names[d->pre[i].kind], what, msg());
    }
    if (pg && !armed) {
        base = ctl(st, "points", 0);
        arm(st, f, n, tear);
    }
    for (int i = 0; pg && i < d->nops; i++) {
        if (failed_at != -1 && f == F_CRASH) break;
        if (failed_at == -1) w.has_inflight = 0; /* keep the one of the failed commit */
        rc = do_op(&w, &d->ops[i], &what);
        if (f == F_NONE)
            KT_REQUIRE(rc == TS_OK, "%s: %s: %s: %s", label, op_names[d->ops[i].kind], what, msg());
        if (f == F_CRASH && rc) {
            KT_REQUIRE(ctl(st, "crashed", 0) == 1, "%s: %s failed without a crash: %d %s", label,
                          what, rc, msg());
            KT_REQUIRE(rc == TS_ERR_IO || rc == TS_ERR_READONLY,
                          "%s: %s after a crash: %d, not TS_ERR_IO", label, what, rc);
            failed_at = i;
            failed_what = what;
            out.fired = 1;
        }
        if (f == F_SYNC) {
            if (rc && failed_at == -1) {
                KT_REQUIRE(rc == TS_ERR_IO || rc == TS_ERR_READONLY,
                              "%s: %s with a failed fsync: %d (%s), not TS_ERR_IO", label, what, rc, msg());
                failed_at = i;
                failed_what = what;
                out.fired = 1;
            } else if (failed_at != -1 && d->ops[i].kind != OP_CKPT && d->ops[i].kind != OP_CKPT_KEEP) {
                KT_REQUIRE(rc == TS_ERR_READONLY || rc == TS_ERR_IO,
                              "%s: %s after a failed fsync returned %d (%s): writes must be refused",
                              label, op_names[d->ops[i].kind], rc, msg());
            }
            if (failed_at != -1) {
                /* still readable: every acknowledged commit, nothing else */
                char why[WHYLEN];
                KT_REQUIRE(kt_matches(pg, cur(&w), why, sizeof why),
                              "%s: after a failed fsync the database reads wrong: %s", label, why);
            }
        }
        if ((f == F_NOSPACE || f == F_EIO) && rc) {
            /* one failed write: that transaction fails, later ones succeed */
            KT_REQUIRE(!out.fired, "%s: %s failed (%d: %s) after the one write error",
                          label, op_names[d->ops[i].kind], rc, msg());
            KT_REQUIRE(rc == TS_ERR_IO, "%s: %s after a write error: %d (%s), not TS_ERR_IO", label,
                          what, rc, msg());
            failed_at = i;
            failed_what = what;
            out.fired = 1;
            char why[WHYLEN];
            KT_REQUIRE(kt_matches(pg, cur(&w), why, sizeof why),
                          "%s: after a write error the database reads wrong: %s", label, why);
        }
    }
    if (pg) {
        int64_t end_points = 0;
        if (power_loss) {
            ctl(st, "power_loss", 0);
            rc = tspg_close(pg);
        } else {
            rc = tspg_close(pg);
            if (rc && f != F_NONE && failed_at == -1) {
                /* the fault hit the checkpoint at close */
                out.fired = 1;
                failed_at = d->nops;
                failed_what = "close";
                if (f == F_CRASH) KT_REQUIRE(ctl(st, "crashed", 0) == 1, "%s: close failed without a crash: %s",
                                                label, msg());
            }
            KT_REQUIRE(rc == TS_OK || f != F_NONE, "%s: close: %s", label, msg());
            if ((f == F_NOSPACE || f == F_EIO) && failed_at != d->nops)
                KT_REQUIRE(rc == TS_OK, "%s: close after a write error: %d %s", label, rc, msg());
        }
        if (!ctl(st, "crashed", 0)) end_points = ctl(st, "points", 0);
        out.points = end_points - base;
    }
    tsstore_close(st);

    /* --- reopen and check --- */
    int crashlike = f == F_CRASH || power_loss;
    st = store_open(dir, "faulty");
    rc = pg_open(st, full, 0, &pg);
    KT_REQUIRE(rc == TS_OK, "%s: reopen: %s", label, msg());
    char why[WHYLEN] = "";
    int lo = crashlike ? w.durable : w.nst - 1;
    if (f == F_NOSPACE || f == F_EIO || f == F_NONE) w.has_inflight = 0; /* a failed commit must leave nothing */
    int got = which_state(pg, &w, lo, why);
    KT_REQUIRE(got >= 0, "%s (failed: %s at op %d): after reopening: %s", label, failed_what, failed_at,
               why);
    if (!crashlike && f != F_SYNC)
        KT_REQUIRE(got == w.nst - 1, "%s: reopened at state %d of %d", label, got, w.nst - 1);
    /* every page the version the meta page's digest expects */
    tspg_check_report rep;
    KT_REQUIRE(tspg_check(pg, &rep, NULL, NULL) == TS_OK && rep.ok,
               "%s: integrity check after reopening: %llu bad pages, free list %s, digest %s", label,
               (unsigned long long)rep.bad_pages, rep.freelist_broken ? "broken" : "ok",
               rep.digest_bad ? "differs" : "ok");
    /* and the database takes writes again */
    tstx *tx;
    rc = tstx_begin(pg, 1, &tx);
    KT_REQUIRE(rc == TS_OK, "%s: write after recovery: %s", label, msg());
    tspage *p;
    uint64_t pgno;
    KT_REQUIRE(tstx_alloc(tx, &p, &pgno) == TS_OK, "%s: alloc after recovery: %s", label, msg());
    kt_fill(tspage_data(p), tstx_usable(tx), pgno, 999999);
    tspage_release(p);
    KT_REQUIRE(tstx_commit(tx) == TS_OK, "%s: commit after recovery: %s", label, msg());
    KT_REQUIRE(kt_consistent(pg, 0, NULL, why, sizeof why), "%s: after a write following recovery: %s",
                  label, why);
    KT_REQUIRE(tspg_close(pg) == TS_OK, "%s: close after recovery: %s", label, msg());
    tsstore_close(st);
    wl_free(&w);
    if (out.fired && f == F_CRASH) { tot->crashes++; if (tear) tot->tears++; }
    if (out.fired && f == F_SYNC) tot->sync_faults++;
    if (out.fired && f == F_NOSPACE) tot->nospace_faults++;
    if (out.fired && f == F_EIO) tot->eio_faults++;
    return out;
}

static const int64_t tears[] = { 1, 29, 2100, PS + 32 + 700 };
#define NTEARS (int)(sizeof tears / sizeof tears[0])

/* Every crash point of d, each also with `ntears` of the tear sizes
 * (rotating); with io_errors, every failed fsync and every full-disk error
 * (the latter at every `io_stride`-th write), each with and without a power
 * loss at the end.  Returns the points counted. */
static int64_t all_points(const wdef *d, int full, int ntears, int io_errors, int io_stride)
{
    outcome clean = run_once(d, full, F_NONE, 0, 0, 0);
    ck_assert_int_gt(clean.points, 0);
    for (int64_t n = 1; n <= clean.points; n++) {
        outcome o = run_once(d, full, F_CRASH, n, 0, 0);
        KT_REQUIRE(o.fired, "workload '%s': crash at point %lld of %lld did not happen (the "
                      "workload is not deterministic?)", d->name, (long long)n, (long long)clean.points);
        for (int t = 0; t < ntears; t++)
            run_once(d, full, F_CRASH, n, tears[(n + t) % NTEARS], 0);
    }
    if (io_errors) {
        for (int64_t n = 1; n <= clean.points; n++) {
            outcome o = run_once(d, full, F_SYNC, n, 0, 0);
            if (!o.fired) break; /* past the last sync */
            run_once(d, full, F_SYNC, n, 0, 1);
        }
        for (int64_t n = 1; n <= clean.points; n += io_stride) {
            if (!run_once(d, full, F_NOSPACE, n, 0, 0).fired) break;
            /* and the commits after the full disk survive a power loss */
            run_once(d, full, F_NOSPACE, n, 0, 1);
        }
        /* an I/O error (EIO) on a write: the same contract as a full disk */
        for (int64_t n = 1 + io_stride / 2; n <= clean.points; n += io_stride) {
            if (!run_once(d, full, F_EIO, n, 0, 0).fired) break;
            run_once(d, full, F_EIO, n, 0, 1);
        }
    }
    return clean.points;
}

/* ---- the fixed workloads -------------------------------------------- */

static const op w_create3[] = { { OP_INSERT, 3 }, { OP_UPDATE, 2 }, { OP_DELETE, 1 } };
static const op w_ovr_pre[] = { { OP_INSERT, 10 }, { OP_CKPT, 0 } };
static const op w_ovr[] = { { OP_UPDATE, 6 }, { OP_DELETE, 3 }, { OP_CKPT, 0 }, { OP_INSERT, 4 },
                            { OP_UPDATE, 3 } };
static const op w_big_pre[] = { { OP_INSERT, 20 } };
static const op w_big[] = { { OP_BIG, 150 }, { OP_UPDATE, 2 }, { OP_CKPT, 0 } };

static const wdef workloads[] = {
    { "create + 3 commits", NULL, 0, w_create3, 3 },
    { "overwrite + free + checkpoint", w_ovr_pre, 2, w_ovr, 5 },
    { "spill-sized transaction", w_big_pre, 1, w_big, 3 },
};

START_TEST(fixed_workloads)
{
    host_open();
    double t0 = now();
    for (int full = 1; full >= 0; full--) {
        const wdef *d = &workloads[_i];
        int big = _i == 2;
        /* the big one has ~180 points, each run copies ~200 pages: sample
         * its tears and full-disk points outside the long mode */
        int ntears = big ? (kt_sanitized() ? 0 : 1) : NTEARS;
        int stride = big && !kt_long() ? (kt_sanitized() ? 10 : 5) : 1;
        int64_t pts = all_points(d, full, kt_long() ? NTEARS : ntears, 1, stride);
        fprintf(stderr, "powerloss: workload '%s' (%s): %lld fault points\n", d->name,
                full ? "full" : "normal", (long long)pts);
    }
    run_dir_done();
    fprintf(stderr, "powerloss: workload %d done in %.1f s\n", _i, now() - t0);
}
END_TEST

/* ---- every sequence of up to 3 operations --------------------------- */

static const op seq_pre[] = { { OP_INSERT, 3 } };

START_TEST(sequences)
{
    host_open();
    static const op kinds[] = { { OP_INSERT, 2 }, { OP_UPDATE, 2 }, { OP_DELETE, 1 }, { OP_CKPT, 0 } };
    double t0 = now();
    int nseq = 0;
    int64_t pts = 0;
    int full = _i;
    for (int len = 1; len <= 3; len++) {
        int total = 1;
        for (int i = 0; i < len; i++) total *= 4;
        for (int code = 0; code < total; code++) {
            op ops[3];
            char name[64] = "";
            for (int i = 0, c = code; i < len; i++, c /= 4) {
                ops[i] = kinds[c % 4];
                strcat(name, i ? "," : "");
                strcat(name, op_names[ops[i].kind]);
            }
            /* on a database of three pages, and as the first writes of a
             * database created by the open (faults armed before it) */
            for (int create = 0; create <= 1; create++) {
                char cname[80];
                snprintf(cname, sizeof cname, "%s%s", create ? "create," : "", name);
                wdef d = { cname, create ? NULL : seq_pre, create ? 0 : 1, ops, len };
                pts += all_points(&d, full, kt_long() ? NTEARS : kt_sanitized() ? 1 : 2, kt_long(), 1);
                nseq++;
            }
        }
    }
    ck_assert_int_eq(nseq, 2 * 84);
    run_dir_done();
    fprintf(stderr, "powerloss: %d sequences of up to 3 operations, with and without the create (%s): %lld fault points, %.1f s\n",
            nseq, full ? "full" : "normal", (long long)pts, now() - t0);
}
END_TEST

/* Long mode: random workloads, every crash point of each. */
START_TEST(random_workloads)
{
    host_open();
    if (!kt_long()) return;
    double t0 = now();
    for (int s = 0; s < 340; s++) {
        kt_rng r = { 77000 + (uint64_t)s };
        op pre[1] = { { OP_INSERT, 4 + (int)kt_below(&r, 16) } };
        op ops[8];
        int n = 2 + (int)kt_below(&r, 5);
        for (int i = 0; i < n; i++) {
            int k = (int)kt_below(&r, 24);
            ops[i].kind = k < 7 ? OP_INSERT : k < 12 ? OP_UPDATE : k < 17 ? OP_DELETE
                        : k < 20 ? OP_CKPT : k < 22 ? OP_CKPT_KEEP : OP_BIG;
            ops[i].n = ops[i].kind == OP_BIG ? 70 + (int)kt_below(&r, 50) : 1 + (int)kt_below(&r, 8);
        }
        char name[32];
        snprintf(name, sizeof name, "random %d", s);
        wdef d = { name, pre, 1, ops, n };
        all_points(&d, (int)(s & 1), NTEARS, s % 4 == 0, 1);
    }
    run_dir_done();
    fprintf(stderr, "powerloss: random workloads done in %.1f s\n", now() - t0);
}
END_TEST

/* ---- focused cases ---------------------------------------------------- */

typedef struct fdb {
    char    *dir;
    tsstore *st;
    tspg    *pg;
} fdb;

static void fdb_open_cache(fdb *f, const char *backend, int full, uint64_t cache)
{
    if (!f->dir) f->dir = tst_tmpdir("plf");
    f->st = store_open(f->dir, backend);
    int rc = pg_open(f->st, full, cache, &f->pg);
    KT_REQUIRE(rc == TS_OK, "open: %s", msg());
}

static void fdb_open(fdb *f, const char *backend, int full)
{
    fdb_open_cache(f, backend, full, 0);
}

static int fdb_close(fdb *f)
{
    int rc = tspg_close(f->pg);
    tsstore_close(f->st);
    f->pg = NULL;
    f->st = NULL;
    return rc;
}

static void fdb_done(fdb *f)
{
    if (f->pg) fdb_close(f);
    tst_rmrf(f->dir);
    free(f->dir);
    f->dir = NULL;
}

/* Write version ver into pages (allocating when pgno is 0); root slot 4 = ver. */
static void commit_pages(tspg *pg, uint64_t *pgnos, int n, uint64_t ver)
{
    tstx *tx;
    KT_REQUIRE(tstx_begin(pg, 1, &tx) == TS_OK, "begin: %s", msg());
    for (int i = 0; i < n; i++) {
        tspage *p;
        if (!pgnos[i]) KT_REQUIRE(tstx_alloc(tx, &p, &pgnos[i]) == TS_OK, "alloc: %s", msg());
        else KT_REQUIRE(tstx_get(tx, pgnos[i], 1, &p) == TS_OK, "get: %s", msg());
        kt_fill(tspage_data(p), tstx_usable(tx), pgnos[i], ver);
        tspage_release(p);
    }
    tstx_root_set(tx, 4, ver);
    KT_REQUIRE(tstx_commit(tx) == TS_OK, "commit: %s", msg());
}

/* Read page pgno: its rc, and whether it holds version ver. */
static int read_page(tspg *pg, uint64_t pgno, uint64_t ver, int *holds)
{
    tstx *tx;
    int rc = tstx_begin(pg, 0, &tx);
    if (rc) return rc;
    tspage *p;
    rc = tstx_get(tx, pgno, 0, &p);
    if (!rc) {
        *holds = kt_check_fill(tspage_data(p), tstx_usable(tx), pgno, ver);
        tspage_release(p);
    }
    tstx_rollback(tx);
    return rc;
}

static uint64_t root4(tspg *pg)
{
    tstx *tx;
    KT_REQUIRE(tstx_begin(pg, 0, &tx) == TS_OK, "begin read: %s", msg());
    uint64_t v;
    tstx_root_get(tx, 4, &v);
    tstx_rollback(tx);
    return v;
}

static void flip_bit(const char *dir, const char *file, long off, int bit)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *fp = fopen(path, "r+b");
    KT_REQUIRE(fp != NULL, "open %s", path);
    ck_assert_int_eq(fseek(fp, off, SEEK_SET), 0);
    int c = fgetc(fp);
    ck_assert_int_ne(c, EOF);
    ck_assert_int_eq(fseek(fp, off, SEEK_SET), 0);
    fputc(c ^ (1 << bit), fp);
    ck_assert_int_eq(fclose(fp), 0);
}


/* Offset of the newest log frame of pgno (whose image holds ver), or -1. */
static long find_frame(const char *dir, uint64_t pgno, uint64_t ver)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, TSWAL_FILE);
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    uint8_t *fr = malloc(TSWAL_FRAME_HDR + PS);
    long found = -1;
    for (long off = TSWAL_HDR;; off += TSWAL_FRAME_HDR + PS) {
        if (fseek(fp, off, SEEK_SET) || fread(fr, 1, TSWAL_FRAME_HDR + PS, fp) != TSWAL_FRAME_HDR + PS) break;
        uint64_t no = 0;
        for (int i = 7; i >= 0; i--) no = no << 8 | fr[8 + i];
        if (no == pgno && kt_stored_ver(fr + TSWAL_FRAME_HDR + TSPAGE_HDR) == ver) found = off;
    }
    free(fr);
    fclose(fp);
    return found;
}

START_TEST(bitflip_main_file)
{
    host_open();
    fdb f = { 0 };
    fdb_open(&f, "posix", 1);
    uint64_t pg[20] = { 0 };
    commit_pages(f.pg, pg, 20, 5);
    ck_assert_int_eq(fdb_close(&f), TS_OK); /* checkpointed: the pages are in the main file */
    /* a bit in the body of one page, one in the header (checksum) of another */
    flip_bit(f.dir, TSPG_FILE, (long)(pg[5] * PS + TSPAGE_HDR + 1000), 3);
    flip_bit(f.dir, TSPG_FILE, (long)(pg[9] * PS + 1), 0);
    fdb_open(&f, "posix", 1);
    for (int i = 0; i < 20; i++) {
        int holds = 0;
        int rc = read_page(f.pg, pg[i], 5, &holds);
        if (i == 5 || i == 9) {
            KT_REQUIRE(rc == TS_ERR_CORRUPT, "page %llu with a flipped bit: rc %d (holds the data: %d)",
                          (unsigned long long)pg[i], rc, holds);
            char want[64];
            snprintf(want, sizeof want, "page %llu", (unsigned long long)pg[i]);
            KT_REQUIRE(strstr(msg(), want) && strstr(msg(), "corrupt"),
                          "unclear message: '%s'", msg());
        } else {
            KT_REQUIRE(rc == TS_OK && holds, "page %llu: rc %d, holds %d", (unsigned long long)pg[i], rc, holds);
        }
    }
    /* a writer cannot build on it either */
    tstx *tx;
    tspage *p = NULL;
    ck_assert_int_eq(tstx_begin(f.pg, 1, &tx), TS_OK);
    ck_assert_int_eq(tstx_get(tx, pg[5], 1, &p), TS_ERR_CORRUPT);
    ck_assert_ptr_null(p);
    tstx_rollback(tx);
    fdb_close(&f);

    /* the meta page: no transaction can start */
    flip_bit(f.dir, TSPG_FILE, PS + TSPAGE_HDR + 8, 1);
    fdb_open(&f, "posix", 1);
    ck_assert_int_eq(tstx_begin(f.pg, 0, &tx), TS_ERR_CORRUPT);
    KT_REQUIRE(strstr(msg(), "page 1"), "unclear message: '%s'", msg());
    fdb_close(&f);

    /* the file header: refused at open */
    flip_bit(f.dir, TSPG_FILE, 13, 2);
    f.st = store_open(f.dir, "posix");
    ck_assert_int_eq(pg_open(f.st, 1, 0, &f.pg), TS_ERR_CORRUPT);
    KT_REQUIRE(strstr(msg(), "header"), "unclear message: '%s'", msg());
    tsstore_close(f.st);
    f.st = NULL;
    fdb_done(&f);
}
END_TEST

/* Build a log with commits (each synced), then lose power: the log keeps
 * its frames for the next open to recover. */
/* Returns where the log's frames end: the file may be longer (a commit
 * written with write_sync pads its last block and grows the file ahead). */
static long log_with_commits(fdb *f, uint64_t *pa, uint64_t *pb)
{
    fdb_open(f, "faulty", 1);
    *pa = *pb = 0;
    commit_pages(f->pg, pa, 1, 1);   /* A = v1 */
    commit_pages(f->pg, pa, 1, 2);   /* A = v2 */
    commit_pages(f->pg, pb, 1, 3);   /* B = v3 */
    tspg_stats s;
    tspg_stats_get(f->pg, &s);
    ctl(f->st, "power_loss", 0);
    fdb_close(f);                    /* fails: the store is down */
    return (long)s.log_bytes;
}

START_TEST(bitflip_log_frame_read)
{
    host_open();
    fdb f = { 0 };
    uint64_t a, b;
    log_with_commits(&f, &a, &b);
    fdb_open(&f, "posix", 1);        /* recovery indexes the frames */
    long off = find_frame(f.dir, a, 2);
    ck_assert_int_gt(off, 0);
    flip_bit(f.dir, TSWAL_FILE, off + TSWAL_FRAME_HDR + TSPAGE_HDR + 77, 6);
    int holds = 0;
    int rc = read_page(f.pg, a, 2, &holds);
    KT_REQUIRE(rc == TS_ERR_CORRUPT, "page with a flipped bit in its log frame: rc %d, holds %d", rc, holds);
    KT_REQUIRE(strstr(msg(), "log") && strstr(msg(), "corrupt"), "unclear message: '%s'", msg());
    ck_assert_int_eq(read_page(f.pg, b, 3, &holds), TS_OK);
    ck_assert(holds);
    fdb_close(&f);
    fdb_done(&f);
}
END_TEST

/* A damaged frame inside the log, followed by later valid commits, is not
 * a torn tail: recovery must not silently drop the acknowledged commits
 * (and serve page A at its older version). */
START_TEST(bitflip_log_frame_recovery)
{
    host_open();
    fdb f = { 0 };
    uint64_t a, b;
    log_with_commits(&f, &a, &b);
    long off = find_frame(f.dir, a, 2);
    ck_assert_int_gt(off, 0);
    flip_bit(f.dir, TSWAL_FILE, off + TSWAL_FRAME_HDR + TSPAGE_HDR + 77, 6);
    f.st = store_open(f.dir, "posix");
    int rc = pg_open(f.st, 1, 0, &f.pg);
    if (rc == TS_OK) {
        int holds1 = 0, holds2 = 0;
        int ra = read_page(f.pg, a, 1, &holds1);
        int ra2 = read_page(f.pg, a, 2, &holds2);
        uint64_t r4 = root4(f.pg);
        fdb_close(&f);
        KT_REQUIRE(ra == TS_ERR_CORRUPT,
                      "a bit flip in an acknowledged log frame went unnoticed: page A reads rc %d "
                      "(old version 1: %d, version 2: %d), root slot 4 = %llu (acknowledged: 3): the "
                      "damaged frame and every commit after it were dropped as if a torn tail",
                      ra, holds1, holds2 && ra2 == TS_OK, (unsigned long long)r4);
    } else {
        ck_assert_int_eq(rc, TS_ERR_CORRUPT);
        tsstore_close(f.st);
    }
    fdb_done(&f);
}
END_TEST

/* A bit flip in the log header (magic, format, page size, salt or its
 * checksum) while the log holds commits the main file does not: recovery
 * takes the generation from frame 1, keeps every commit, writes the header
 * again, and the next open finds it intact. */
START_TEST(bitflip_log_header)
{
    host_open();
    static const long offs[] = { 0, 8, 13, 16, 23, 26 };
    for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
        fdb f = { 0 };
        uint64_t a, b;
        log_with_commits(&f, &a, &b);
        flip_bit(f.dir, TSWAL_FILE, offs[i], (int)i % 8);
        for (int pass = 0; pass < 2; pass++) {
            f.st = store_open(f.dir, pass == 0 ? "faulty" : "posix");
            int rc = pg_open(f.st, 1, 0, &f.pg);
            KT_REQUIRE(rc == TS_OK, "byte %ld of the log header flipped, pass %d: open gave %d: %s", offs[i],
                       pass, rc, msg());
            int ha = 0, hb = 0;
            ck_assert_int_eq(read_page(f.pg, a, 2, &ha), TS_OK);
            ck_assert_int_eq(read_page(f.pg, b, 3, &hb), TS_OK);
            KT_REQUIRE(ha && hb && root4(f.pg) == 3,
                       "byte %ld of the log header flipped, pass %d: acknowledged commits lost (A v2 %d, "
                       "B v3 %d, root slot 4 = %llu)", offs[i], pass, ha, hb,
                       (unsigned long long)root4(f.pg));
            if (pass == 0) {
                /* power loss again before any checkpoint: the rewritten
                 * header must be durable and the frames still there */
                ctl(f.st, "power_loss", 0);
                fdb_close(&f);
            }
        }
        fdb_close(&f);
        fdb_done(&f);
    }
    /* Right after a checkpoint restarted the log (as a write of the new
     * header torn by a crash would leave it): the frames in the file are
     * the previous generation's, all in the main file already; replaying
     * them changes nothing, and the commits after it survive. */
    fdb f = { 0 };
    uint64_t a = 0, b = 0, c = 0;
    fdb_open(&f, "faulty", 1);
    commit_pages(f.pg, &a, 1, 1);
    commit_pages(f.pg, &a, 1, 2);
    commit_pages(f.pg, &b, 1, 3);
    ck_assert_int_eq(tspg_checkpoint(f.pg, 1), TS_OK);
    ctl(f.st, "power_loss", 0);
    fdb_close(&f);
    flip_bit(f.dir, TSWAL_FILE, 17, 2);
    fdb_open(&f, "faulty", 1);
    commit_pages(f.pg, &c, 1, 4);
    ctl(f.st, "power_loss", 0);
    fdb_close(&f);
    fdb_open(&f, "posix", 1);
    int ha = 0, hb = 0, hc = 0;
    ck_assert_int_eq(read_page(f.pg, a, 2, &ha), TS_OK);
    ck_assert_int_eq(read_page(f.pg, b, 3, &hb), TS_OK);
    ck_assert_int_eq(read_page(f.pg, c, 4, &hc), TS_OK);
    KT_REQUIRE(ha && hb && hc && root4(f.pg) == 4, "after a damaged header of a restarted log: A v2 %d, "
               "B v3 %d, C v4 %d, root slot 4 = %llu", ha, hb, hc, (unsigned long long)root4(f.pg));
    fdb_close(&f);
    fdb_done(&f);
}
END_TEST

/* Garbage after the last commit: ignored at recovery, then overwritten by
 * new commits that survive the next power loss. */
START_TEST(garbage_log_tail)
{
    host_open();
    for (int kind = 0; kind < 4; kind++) {
        fdb f = { 0 };
        uint64_t a, b;
        long size = log_with_commits(&f, &a, &b);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", f.dir, TSWAL_FILE);
        long fsz = TSWAL_FRAME_HDR + PS;
        uint8_t *buf = malloc((size_t)fsz * 2);
        FILE *fp = fopen(path, "r+b");
        ck_assert_ptr_nonnull(fp);
        kt_rng r = { 99 + (uint64_t)kind };
        uint64_t want_b = 3;  /* the last commit survives, except when torn (kind 3) */
        switch (kind) {
        case 0: /* random bytes */
            for (long i = 0; i < 3000; i++) buf[i] = (uint8_t)kt_next(&r);
            fseek(fp, size, SEEK_SET);
            fwrite(buf, 1, 3000, fp);
            break;
        case 1: /* a copy of the last two frames: right salt, wrong position */
            fseek(fp, size - 2 * fsz, SEEK_SET);
            ck_assert_int_eq(fread(buf, 1, (size_t)(2 * fsz), fp), 2 * fsz);
            fseek(fp, size, SEEK_SET);
            fwrite(buf, 1, (size_t)(2 * fsz), fp);
            break;
        case 2: /* half a frame */
            fseek(fp, size - fsz, SEEK_SET);
            ck_assert_int_eq(fread(buf, 1, (size_t)fsz, fp), fsz);
            fseek(fp, size, SEEK_SET);
            fwrite(buf, 1, (size_t)fsz / 2, fp);
            break;
        case 3: /* the last commit's frame torn: that commit was never complete */
            fclose(fp);
            ck_assert_int_eq(truncate(path, size - 1000), 0);
            fp = NULL;
            want_b = 0;
            break;
        }
        if (fp) fclose(fp);
        free(buf);
        fdb_open(&f, "faulty", 1);
        int holds = 0;
        ck_assert_int_eq(read_page(f.pg, a, 2, &holds), TS_OK);
        KT_REQUIRE(holds, "tail kind %d: page A lost its acknowledged version", kind);
        if (want_b) {
            ck_assert_int_eq(read_page(f.pg, b, 3, &holds), TS_OK);
            KT_REQUIRE(holds, "tail kind %d: page B lost", kind);
        }
        ck_assert_uint_eq(root4(f.pg), want_b ? 3 : 2);
        char why[WHYLEN];
        KT_REQUIRE(kt_consistent(f.pg, 0, NULL, why, sizeof why), "tail kind %d: %s", kind, why);
        /* new commits over the garbage, then power loss again */
        uint64_t c = 0;
        commit_pages(f.pg, &c, 1, 10);
        commit_pages(f.pg, &a, 1, 11);
        ctl(f.st, "power_loss", 0);
        fdb_close(&f);
        fdb_open(&f, "posix", 1);
        ck_assert_int_eq(read_page(f.pg, c, 10, &holds), TS_OK);
        KT_REQUIRE(holds, "tail kind %d: commit after recovery lost", kind);
        ck_assert_int_eq(read_page(f.pg, a, 11, &holds), TS_OK);
        KT_REQUIRE(holds, "tail kind %d: commit after recovery lost", kind);
        ck_assert_uint_eq(root4(f.pg), 11);
        KT_REQUIRE(kt_consistent(f.pg, 0, NULL, why, sizeof why), "tail kind %d: %s", kind, why);
        fdb_close(&f);
        fdb_done(&f);
    }
}
END_TEST

/*
 * After a checkpoint starts a new log generation, the old log's frames stay
 * in the file until the new header is durable.  A crash before that which
 * leaves part of a later write (a torn write) brings the old header back
 * with a prefix of the old frames before the torn bytes: recovery replays
 * old commits over the newer main file and the database goes back in time
 * (here: to a state before the checkpointed commit).
 */
START_TEST(reset_then_torn_write)
{
    host_open();
    int full = _i;
    fdb f = { 0 };
    fdb_open_cache(&f, "faulty", full, 64u << 20); /* no spilling: one write per 64 frames */
    uint64_t a[1] = { 0 }, many[100] = { 0 };
    commit_pages(f.pg, a, 1, 1);               /* old log: commit 1: A = v1 */
    commit_pages(f.pg, many, 100, 2);          /* commit 2: 100 pages */
    ck_assert_int_eq(tspg_checkpoint(f.pg, 1), TS_OK); /* both durable; new log generation */
    /* the next commit writes its frames in two calls (64 + 37 frames); the
     * second one crashes and leaves 1000 bytes at frame 65, where the old
     * log had a frame of commit 2 */
    ctl(f.st, "crash_at", 2);
    ctl(f.st, "tear", 1000);
    uint64_t b[100] = { 0 };
    tstx *tx;
    ck_assert_int_eq(tstx_begin(f.pg, 1, &tx), TS_OK);
    for (int i = 0; i < 100; i++) {
        tspage *p;
        ck_assert_int_eq(tstx_alloc(tx, &p, &b[i]), TS_OK);
        kt_fill(tspage_data(p), tstx_usable(tx), b[i], 3);
        tspage_release(p);
    }
    ck_assert_int_eq(tstx_commit(tx), TS_ERR_IO);
    ck_assert_int_eq(ctl(f.st, "crashed", 0), 1);
    fdb_close(&f);
    fdb_open(&f, "posix", full);
    int holds = 0;
    int rc = read_page(f.pg, a[0], 1, &holds);
    uint64_t r4 = root4(f.pg);
    char why[WHYLEN];
    int cons = kt_consistent(f.pg, 0, NULL, why, sizeof why);
    fdb_close(&f);
    KT_REQUIRE(r4 == 2, "(%s) after a crash following a log reset, root slot 4 is %llu, but "
                  "commit 2 was checkpointed (durable); page A rc %d; consistent: %s",
                  full ? "full" : "normal", (unsigned long long)r4, rc, cons ? "yes" : why);
    KT_REQUIRE(cons, "inconsistent: %s", why);
    fdb_done(&f);
}
END_TEST

/* A full disk while a checkpoint starts the new log generation must not
 * stop the database from taking writes (only a failed fsync may). */
START_TEST(nospace_at_log_reset)
{
    host_open();
    fdb f = { 0 };
    fdb_open(&f, "faulty", 1);
    uint64_t a[2] = { 0, 0 };
    commit_pages(f.pg, a, 2, 1);
    /* checkpoint writes: pages a[0] and a[1] (adjacent: write 1), the meta
     * page (write 2), then the new log header (write 3) */
    ctl(f.st, "enospc_at", 3);
    int rc = tspg_checkpoint(f.pg, 1);
    KT_REQUIRE(rc == TS_OK || rc == TS_ERR_IO, "checkpoint: %d", rc);
    tstx *tx;
    rc = tstx_begin(f.pg, 1, &tx);
    KT_REQUIRE(rc == TS_OK, "after a full disk in a checkpoint the database refuses writes: %d (%s)",
                  rc, msg());
    tstx_rollback(tx);
    commit_pages(f.pg, a, 2, 2);
    ctl(f.st, "power_loss", 0);
    fdb_close(&f);
    fdb_open(&f, "posix", 1);
    int holds = 0;
    ck_assert_int_eq(read_page(f.pg, a[1], 2, &holds), TS_OK);
    ck_assert(holds);
    fdb_done(&f);
}
END_TEST

/* A write error while a transaction spills from tstx_get: the call fails
 * with TS_ERR_IO and hands out no page. */
START_TEST(nospace_in_spill_from_get)
{
    host_open();
    fdb f = { 0 };
    fdb_open(&f, "faulty", 1);
    uint64_t pgs[80] = { 0 };
    commit_pages(f.pg, pgs, 80, 1);
    tstx *tx;
    ck_assert_int_eq(tstx_begin(f.pg, 1, &tx), TS_OK);
    tspage *p;
    /* 65536-byte cache: a transaction spills past 256 KB of pages */
    int k = (int)((256u << 10) / (tstx_usable(tx) + TSPAGE_HDR));
    ck_assert_int_lt(k, 79);
    for (int i = 0; i < k; i++) {
        ck_assert_int_eq(tstx_get(tx, pgs[i], 1, &p), TS_OK);
        kt_fill(tspage_data(p), tstx_usable(tx), pgs[i], 2);
        tspage_release(p);
    }
    ctl(f.st, "enospc_at", 1);
    p = NULL;
    int rc = tstx_get(tx, pgs[k], 1, &p);
    KT_REQUIRE(rc == TS_ERR_IO, "spill on a full disk: %d", rc);
    KT_REQUIRE(p == NULL, "tstx_get failed (%d) but left a pinned page in *out", rc);
    tstx_rollback(tx);
    int holds = 0;
    ck_assert_int_eq(read_page(f.pg, pgs[3], 1, &holds), TS_OK);
    ck_assert(holds);
    fdb_done(&f);
}
END_TEST

/* A failed fsync on commit: TS_ERR_IO, then writes refused, reads fine;
 * reopening makes the database writable again. */
START_TEST(failed_fsync_readonly)
{
    host_open();
    fdb f = { 0 };
    fdb_open(&f, "faulty", 1);
    uint64_t a[1] = { 0 };
    commit_pages(f.pg, a, 1, 1);
    ctl(f.st, "fail_sync_at", 1);
    tstx *tx;
    ck_assert_int_eq(tstx_begin(f.pg, 1, &tx), TS_OK);
    tspage *p;
    ck_assert_int_eq(tstx_get(tx, a[0], 1, &p), TS_OK);
    kt_fill(tspage_data(p), tstx_usable(tx), a[0], 2);
    tspage_release(p);
    ck_assert_int_eq(tstx_commit(tx), TS_ERR_IO);
    KT_REQUIRE(strstr(msg(), "fsync") || strstr(msg(), "durable"), "message: %s", msg());
    int rc = tstx_begin(f.pg, 1, &tx);
    KT_REQUIRE(rc == TS_ERR_READONLY, "write after a failed fsync: %d", rc);
    int holds = 0;
    ck_assert_int_eq(read_page(f.pg, a[0], 1, &holds), TS_OK);
    KT_REQUIRE(holds, "readers must see the last acknowledged commit");
    fdb_close(&f);
    fdb_open(&f, "faulty", 1);
    commit_pages(f.pg, a, 1, 3);
    ck_assert_int_eq(read_page(f.pg, a[0], 3, &holds), TS_OK);
    ck_assert(holds);
    fdb_done(&f);
}
END_TEST

/* Lone durable commits are written with write_sync (one durable write, no
 * fsync) and survive a power loss right after them; a backend that answers
 * TS_ERR_UNSUPPORTED gets write + fsync instead, with the same outcome. */
START_TEST(direct_commits)
{
    host_open();
    for (int off = 0; off < 2; off++) {
        fdb f = { 0 };
        fdb_open(&f, "faulty", 1);
        if (off) ctl(f.st, "write_sync_off", 1);
        uint64_t a[3] = { 0, 0, 0 };
        commit_pages(f.pg, a, 3, 1); /* the open's first commit syncs the directory too */
        for (uint64_t v = 2; v <= 6; v++) commit_pages(f.pg, &a[v % 3], 1, v);
        int64_t n = ctl(f.st, "write_syncs", 0);
        if (off) KT_REQUIRE(n == 0, "write_sync refused, yet %lld calls wrote", (long long)n);
        else KT_REQUIRE(n >= 5, "lone commits: %lld write_sync calls, want 5", (long long)n);
        ctl(f.st, "power_loss", 0);
        fdb_close(&f);
        fdb_open(&f, "faulty", 1);
        const uint64_t want[3] = { 6, 4, 5 };
        for (int i = 0; i < 3; i++) {
            int holds = 0;
            ck_assert_int_eq(read_page(f.pg, a[i], want[i], &holds), TS_OK);
            KT_REQUIRE(holds, "write_sync %s: page %d lost its last acknowledged version",
                       off ? "off" : "on", i);
        }
        ck_assert_uint_eq(root4(f.pg), 6);
        char why[WHYLEN];
        KT_REQUIRE(kt_consistent(f.pg, 0, NULL, why, sizeof why), "%s", why);
        fdb_done(&f);
    }
}
END_TEST

/* Creating the database syncs its directory entry; the log's entry is
 * synced before the first commit of every open is acknowledged (an earlier
 * open may have created the log without getting it to disk).  When that
 * directory sync fails, the commit fails and writes stop; a reopen must
 * still sync the directory before acknowledging: else a power loss takes
 * the log, with every acknowledged commit. */
START_TEST(failed_dir_sync_then_reopen)
{
    host_open();
    fdb f = { 0 };
    f.dir = tst_tmpdir("plf");
    f.st = store_open(f.dir, "faulty");
    /* syncs: the new database file (1), the directory after its rename
     * (2), the directory before the first commit's log sync (3) */
    ctl(f.st, "fail_sync_at", 3);
    int rc = pg_open(f.st, 1, 0, &f.pg);
    ck_assert_msg(rc == TS_OK, "open: %d (%s)", rc, msg());
    tstx *tx;
    tspage *p;
    uint64_t no;
    ck_assert_int_eq(tstx_begin(f.pg, 1, &tx), TS_OK);
    ck_assert_int_eq(tstx_alloc(tx, &p, &no), TS_OK);
    tspage_release(p);
    rc = tstx_commit(tx);
    ck_assert_msg(rc == TS_ERR_IO, "commit with a failed directory sync: %d (%s)", rc, msg());
    fdb_close(&f);
    fdb_open(&f, "faulty", 1);
    uint64_t a[1] = { 0 };
    commit_pages(f.pg, a, 1, 1);       /* durable, acknowledged */
    ctl(f.st, "power_loss", 0);
    fdb_close(&f);
    fdb_open(&f, "posix", 1);
    int holds = 0;
    uint64_t r4 = root4(f.pg);
    rc = a[0] >= 2 ? read_page(f.pg, a[0], 1, &holds) : TS_ERR_INVALID;
    KT_REQUIRE(r4 == 1 && rc == TS_OK && holds, "an acknowledged commit was lost at power loss (root "
               "slot 4 = %llu, page rc %d): the log's directory entry was never made durable", (unsigned long long)r4, rc);
    fdb_done(&f);
}
END_TEST

/* Group commit under power loss: committers on several threads share
 * fsyncs; whatever point the power fails at, every thread's acknowledged
 * commits are there (and at most the one in flight after them). */
typedef struct gthread {
    tspg    *pg;
    unsigned t;
    uint64_t page, ack;
} gthread;

static void *group_committer(void *arg)
{
    gthread *g = arg;
    for (uint64_t c = g->ack + 1;; c++) {
        tstx *tx;
        if (tstx_begin(g->pg, 1, &tx)) return NULL;
        tspage *p;
        if (tstx_get(tx, g->page, 1, &p)) { tstx_rollback(tx); return NULL; }
        kt_fill(tspage_data(p), tstx_usable(tx), g->page, c);
        tspage_release(p);
        tstx_root_set(tx, g->t, c);
        if (tstx_commit(tx)) return NULL;
        g->ack = c;
    }
}

START_TEST(group_commit_crash)
{
    host_open();
    enum { T = 4 };
    int rounds = kt_long() ? 3000 : kt_sanitized() ? 50 : 200;
    kt_rng r = { 5150 };
    unsigned long inflight = 0;
    for (int round = 0; round < rounds; round++) {
        int full = round % 4 != 3;
        fdb f = { 0 };
        f.dir = kt_fast_tmpdir("plg");
        fdb_open(&f, "faulty", full);
        gthread g[T];
        tstx *tx;
        ck_assert_int_eq(tstx_begin(f.pg, 1, &tx), TS_OK);
        for (unsigned t = 0; t < T; t++) {
            tspage *p;
            g[t] = (gthread){ f.pg, t, 0, 0 };
            ck_assert_int_eq(tstx_alloc(tx, &p, &g[t].page), TS_OK);
            kt_fill(tspage_data(p), tstx_usable(tx), g[t].page, 0);
            tspage_release(p);
        }
        ck_assert_int_eq(tstx_commit(tx), TS_OK);
        if (!full) ck_assert_int_eq(tspg_checkpoint(f.pg, 1), TS_OK);
        ctl(f.st, "crash_at", 1 + (int64_t)kt_below(&r, 120));
        if (kt_below(&r, 2)) ctl(f.st, "tear", 1 + (int64_t)kt_below(&r, 3 * (PS + 48)));
        pthread_t th[T];
        for (unsigned t = 0; t < T; t++) pthread_create(&th[t], NULL, group_committer, &g[t]);
        for (unsigned t = 0; t < T; t++) pthread_join(th[t], NULL);
        KT_REQUIRE(ctl(f.st, "crashed", 0) == 1, "round %d: the committers stopped without a crash: %s",
                   round, msg());
        fdb_close(&f);
        fdb_open(&f, "faulty", full);
        ck_assert_int_eq(tstx_begin(f.pg, 0, &tx), TS_OK);
        for (unsigned t = 0; t < T; t++) {
            uint64_t v;
            tstx_root_get(tx, t, &v);
            /* durability normal: acknowledged commits may be lost at power loss */
            KT_REQUIRE(full ? v == g[t].ack || v == g[t].ack + 1 : v <= g[t].ack + 1,
                       "round %d (%s): thread %u: stored %llu, acknowledged %llu", round,
                       full ? "full" : "normal", t, (unsigned long long)v, (unsigned long long)g[t].ack);
            inflight += v == g[t].ack + 1;
            tspage *p;
            ck_assert_int_eq(tstx_get(tx, g[t].page, 0, &p), TS_OK);
            KT_REQUIRE(kt_check_fill(tspage_data(p), tstx_usable(tx), g[t].page, v),
                       "round %d: thread %u: page holds %llu, root slot %llu", round, t,
                       (unsigned long long)kt_stored_ver(tspage_data(p)), (unsigned long long)v);
            tspage_release(p);
        }
        tstx_rollback(tx);
        char why[WHYLEN];
        KT_REQUIRE(kt_consistent(f.pg, 0, NULL, why, sizeof why), "round %d: %s", round, why);
        fdb_close(&f);
        tst_rmrf(f.dir);
        free(f.dir);
        tot->crashes++;
    }
    fprintf(stderr, "powerloss: group commit: %d crashes with %d committing threads (%lu in-flight "
            "commits found)\n", rounds, T, inflight);
}
END_TEST

START_TEST(crash_total)
{
    unsigned long want = kt_long() ? 100000 : 5000;
    fprintf(stderr, "powerloss: %lu simulated power-loss crashes (%lu with a torn write), %lu failed "
            "fsyncs, %lu full-disk errors, %lu write I/O errors\n", tot->crashes, tot->tears,
            tot->sync_faults, tot->nospace_faults, tot->eio_faults);
    KT_REQUIRE(tot->eio_faults > 0 && tot->nospace_faults > 0 && tot->sync_faults > 0,
               "every kind of I/O error was injected");
    KT_REQUIRE(tot->crashes >= want, "only %lu simulated crashes (want >= %lu)", tot->crashes, want);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("powerloss");
    TCase *tc = tcase_create("focused");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, bitflip_main_file);
    tcase_add_test(tc, bitflip_log_frame_read);
    tcase_add_test(tc, bitflip_log_frame_recovery);
    tcase_add_test(tc, bitflip_log_header);
    tcase_add_test(tc, garbage_log_tail);
    tcase_add_loop_test(tc, reset_then_torn_write, 0, 2);
    tcase_add_test(tc, nospace_at_log_reset);
    tcase_add_test(tc, nospace_in_spill_from_get);
    tcase_add_test(tc, failed_fsync_readonly);
    tcase_add_test(tc, direct_commits);
    tcase_add_test(tc, failed_dir_sync_then_reopen);
    suite_add_tcase(s, tc);
    tc = tcase_create("group");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, group_commit_crash);
    suite_add_tcase(s, tc);
    tc = tcase_create("workloads");
    tcase_set_timeout(tc, 3000);
    tcase_add_loop_test(tc, fixed_workloads, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("sequences");
    tcase_set_timeout(tc, 3000);
    tcase_add_loop_test(tc, sequences, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("random");
    tcase_set_timeout(tc, 6000);
    tcase_add_test(tc, random_workloads);
    suite_add_tcase(s, tc);
    /* last: the totals of everything above */
    tc = tcase_create("total");
    tcase_add_test(tc, crash_total);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    tot = mmap(NULL, sizeof *tot, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (tot == MAP_FAILED) return 2;
    memset(tot, 0, sizeof *tot);
    host_open(); /* before the tests fork: they share it */
    int rc = tst_run(suite());
    if (host) ts_close(host);
    if (host_dir) { tst_rmrf(host_dir); free(host_dir); }
    return rc;
}
