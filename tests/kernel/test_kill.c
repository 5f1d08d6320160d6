/*
 * A real crash test: ts_crash_writer commits in a loop on posix (durability
 * full, and sometimes normal, which must survive a process crash too) and
 * prints every commit after its call returned; it is killed with SIGKILL at
 * a random moment, many times in a row on the same database.  After each
 * kill the database is reopened: every thread's stored counter is its last
 * printed one or the one after (in flight), its pages hold that counter,
 * and the whole database passes the integrity checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "kt.h"

#define KPAGES 3
#define WHYLEN 512

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct victim {
    pid_t  pid;
    int    fd;        /* its stdout */
    char  *buf;       /* everything it printed */
    size_t len, cap;
} victim;

static void start(victim *v, const char *dir, int threads, const char *durability)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    char th[8];
    snprintf(th, sizeof th, "%d", threads);
    v->pid = fork();
    ck_assert_int_ge(v->pid, 0);
    if (v->pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(TS_CRASH_WRITER, TS_CRASH_WRITER, dir, th, durability, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    v->fd = p[0];
    v->len = 0;
}

/* Collect output until the deadline (or, with want_ready, until "ready"
 * arrives; returns 0 if the writer ended first). */
static int pump(victim *v, double deadline, int want_ready)
{
    for (;;) {
        if (want_ready && v->len >= 6 && memcmp(v->buf, "ready\n", 6) == 0) return 1;
        double left = deadline - now();
        if (left <= 0) return !want_ready;
        struct pollfd pf = { v->fd, POLLIN, 0 };
        int n = poll(&pf, 1, (int)(left * 1000) + 1);
        if (n <= 0) continue;
        if (v->len + 65536 > v->cap) {
            v->cap = v->cap ? v->cap * 2 : 1 << 20;
            v->buf = realloc(v->buf, v->cap);
            ck_assert_ptr_nonnull(v->buf);
        }
        ssize_t got = read(v->fd, v->buf + v->len, 65536);
        if (got == 0) return 0;
        if (got < 0 && errno != EINTR) return 0;
        if (got > 0) v->len += (size_t)got;
    }
}

/* SIGKILL it and collect the rest of what it printed. */
static void reap(victim *v)
{
    kill(v->pid, SIGKILL);
    int status = 0;
    ck_assert_int_eq(waitpid(v->pid, &status, 0), v->pid);
    while (pump(v, now() + 5, 0)) {}
    close(v->fd);
    KT_REQUIRE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
               "the writer ended by itself (status %d): see its stderr", status);
}

START_TEST(kill_loop)
{
    char *dir = tst_tmpdir("kill");
    int rounds = kt_long() ? 300 : 30;
    kt_rng r = { 4242 };
    uint64_t last[4] = { 0 }, total_acks = 0;
    unsigned long inflight_seen = 0, during_open = 0;
    double t0 = now();
    victim v = { 0 };
    for (int round = 0; round < rounds; round++) {
        /* thread count fixed per database: the counters must continue */
        int threads = 3;
        const char *dur = round % 5 == 4 ? "normal" : "full";
        start(&v, dir, threads, dur);
        double wait = 0.020 + (double)kt_below(&r, 181) / 1000.0;
        int early = round % 6 == 5; /* count the delay from the start: may hit open and recovery */
        if (!early) KT_REQUIRE(pump(&v, now() + 30, 1), "round %d: the writer never got ready", round);
        else during_open++;
        pump(&v, now() + wait, 0);
        reap(&v);

        /* the last complete line of each thread */
        uint64_t ack[4] = { 0 };
        int have[4] = { 0 };
        char *end = v.buf + v.len;
        while (end > v.buf && end[-1] != '\n') end--; /* drop a partial last line */
        for (char *s = v.buf; s < end;) {
            char *nl = memchr(s, '\n', (size_t)(end - s));
            unsigned t;
            unsigned long long c;
            if (sscanf(s, "%u %llu", &t, &c) == 2 && t < 4) {
                KT_REQUIRE(c > ack[t] || !have[t], "round %d: thread %u printed %llu after %llu", round,
                           t, c, (unsigned long long)ack[t]);
                ack[t] = c;
                have[t] = 1;
                total_acks++;
            }
            s = nl + 1;
        }

        /* reopen and verify */
        char cfg[1024];
        snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"}", dir);
        ts_db *db;
        KT_REQUIRE(ts_open_json(cfg, &db) == TS_OK, "round %d: reopen: %s", round, ts_errmsg(NULL));
        tstx *tx;
        ck_assert_int_eq(tstx_begin(db->pg, 0, &tx), TS_OK);
        for (int t = 0; t < threads; t++) {
            uint64_t stored, want = have[t] ? ack[t] : last[t];
            tstx_root_get(tx, (unsigned)t, &stored);
            KT_REQUIRE(stored == want || stored == want + 1,
                       "round %d (%s): thread %d: stored counter %llu, last acknowledged %llu",
                       round, dur, t, (unsigned long long)stored, (unsigned long long)want);
            if (stored == want + 1) inflight_seen++;
            KT_REQUIRE(stored >= last[t], "round %d: thread %d went back from %llu to %llu", round, t,
                       (unsigned long long)last[t], (unsigned long long)stored);
            last[t] = stored;
            for (int j = 0; j < KPAGES; j++) {
                uint64_t pgno;
                tstx_root_get(tx, (unsigned)(4 + KPAGES * t + j), &pgno);
                if (!pgno) { KT_REQUIRE(stored == 0, "round %d: thread %d has no pages", round, t); continue; }
                tspage *p;
                int rc = tstx_get(tx, pgno, 0, &p);
                KT_REQUIRE(rc == TS_OK, "round %d: thread %d page %llu: %s", round, t,
                           (unsigned long long)pgno, ts_errmsg(db));
                KT_REQUIRE(kt_check_fill(tspage_data(p), tstx_usable(tx), pgno, stored),
                           "round %d: thread %d page %llu holds %llu, counter says %llu", round, t,
                           (unsigned long long)pgno, (unsigned long long)kt_stored_ver(tspage_data(p)),
                           (unsigned long long)stored);
                tspage_release(p);
            }
        }
        tstx_rollback(tx);
        /* the writer opens with the default plugins: the data layer's
         * catalog pages are there too (checked by ts_check below) */
        char why[WHYLEN];
        uint64_t foreign = 0;
        KT_REQUIRE(kt_consistent_foreign(db->pg, 0, NULL, &foreign, why, sizeof why), "round %d: %s",
                   round, why);
        json_t *report = NULL;
        int crc = ts_check(db, &report, NULL, NULL);
        KT_REQUIRE(crc == TS_OK, "round %d: ts_check: %d %s", round, crc, ts_errmsg(db));
        KT_REQUIRE(json_is_true(json_object_get(report, "ok")), "round %d: ts_check reports a problem",
                   round);
        json_decref(report);
        tspg_check_report rep;
        memset(&rep, 0, sizeof rep);
        ck_assert_int_eq(tspg_check(db->pg, &rep, NULL, NULL), TS_OK);
        KT_REQUIRE(rep.ok, "round %d: integrity check: %llu bad pages (first %llu), free list broken %d",
                   round, (unsigned long long)rep.bad_pages, (unsigned long long)rep.first_bad,
                   rep.freelist_broken);
        /* a clean close (checkpoint) before the next writer takes over */
        ck_assert_int_eq(ts_close(db), TS_OK);
    }
    free(v.buf);
    fprintf(stderr, "kill: %d SIGKILLs (%lu counted from process start), %llu acknowledged commits, "
            "%lu in-flight commits found durable, counters %llu/%llu/%llu, %.1f s\n", rounds,
            during_open, (unsigned long long)total_acks, inflight_seen, (unsigned long long)last[0],
            (unsigned long long)last[1], (unsigned long long)last[2], now() - t0);
    ck_assert_uint_gt(total_acks, 0);
    tst_rmrf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("kill");
    TCase *tc = tcase_create("kill");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, kill_loop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return tst_run(suite());
}
