/*
 * ts_crash_writer - the victim of test_kill: commits forever and prints
 * each commit after its call returned, until it is killed.
 *
 *   ts_crash_writer <dir> <threads 1..4> <full|normal> [checkpoint_every]
 *
 * Thread t owns root slot t (its counter) and KPAGES pages whose numbers
 * are in root slots 4 + KPAGES*t + j.  Commit c of thread t writes
 * kt_fill(pgno, c) into each of its pages and sets root slot t to c, then
 * prints "t c" (one line, flushed).  Every 16th commit also allocates and
 * frees a page, so the free list changes too; thread 0 checkpoints every
 * checkpoint_every commits (default 40).  On start it continues from the
 * counters it finds.  Prints "ready" once the database is open.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kt.h"

#define KPAGES 3

static ts_db *db;
static int ckpt_every = 40;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what, int rc)
{
    fprintf(stderr, "ts_crash_writer: %s: %d %s\n", what, rc, ts_errmsg(db));
    exit(3);
}

static void *writer(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    tspg *pg = db->pg;
    tstx *tx;
    uint64_t c = 0, pg_of[KPAGES] = { 0 };
    int rc;
    /* where this thread left off */
    if ((rc = tstx_begin(pg, 1, &tx))) die("begin", rc);
    tstx_root_get(tx, t, &c);
    for (int j = 0; j < KPAGES; j++) tstx_root_get(tx, 4 + KPAGES * t + j, &pg_of[j]);
    if (!pg_of[0]) {
        for (int j = 0; j < KPAGES; j++) {
            tspage *p;
            if ((rc = tstx_alloc(tx, &p, &pg_of[j]))) die("alloc", rc);
            kt_fill(tspage_data(p), tstx_usable(tx), pg_of[j], c);
            tspage_release(p);
            tstx_root_set(tx, 4 + KPAGES * t + j, pg_of[j]);
        }
        if ((rc = tstx_commit(tx))) die("commit (setup)", rc);
    } else {
        tstx_rollback(tx);
    }
    for (;;) {
        c++;
        if ((rc = tstx_begin(pg, 1, &tx))) die("begin", rc);
        for (int j = 0; j < KPAGES; j++) {
            tspage *p;
            if ((rc = tstx_get(tx, pg_of[j], 1, &p))) die("get", rc);
            kt_fill(tspage_data(p), tstx_usable(tx), pg_of[j], c);
            tspage_release(p);
        }
        if (c % 16 == 0) {
            tspage *p;
            uint64_t extra;
            if ((rc = tstx_alloc(tx, &p, &extra))) die("alloc", rc);
            kt_fill(tspage_data(p), tstx_usable(tx), extra, c);
            tspage_release(p);
            if (c % 32 == 0 && (rc = tstx_free(tx, extra))) die("free", rc);
        }
        tstx_root_set(tx, t, c);
        if ((rc = tstx_commit(tx))) die("commit", rc);
        pthread_mutex_lock(&out_mu);
        printf("%u %llu\n", t, (unsigned long long)c);
        fflush(stdout);
        pthread_mutex_unlock(&out_mu);
        if (t == 0 && ckpt_every > 0 && c % (uint64_t)ckpt_every == 0 &&
            (rc = tspg_checkpoint(pg, 1)))
            die("checkpoint", rc);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ts_crash_writer <dir> <threads> <full|normal> [checkpoint_every]\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    if (threads < 1 || threads > 4) return 2;
    if (argc > 4) ckpt_every = atoi(argv[4]);
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"durability\": \"%s\", \"cacheBytes\": 1048576}",
             argv[1], argv[3]);
    int rc = ts_open_json(cfg, &db);
    if (rc) {
        fprintf(stderr, "ts_crash_writer: open: %s\n", ts_errmsg(NULL));
        return 3;
    }
    printf("ready\n");
    fflush(stdout);
    pthread_t th[4];
    for (int t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, writer, (void *)(uintptr_t)t);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    return 0;
}
