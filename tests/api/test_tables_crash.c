/*
 * Tables survive SIGKILL, through the public API only.
 *
 * table_crash_writer inserts users (single inserts, batches, transactions),
 * inserts posts referencing them, deletes users (cascading to their posts)
 * and rolls some transactions back, on the posix backend with durability
 * full (every fifth round "normal", which must survive a process crash
 * too).  It prints each call before it starts and after it returned (see
 * the protocol in table_crash_writer.c).  It is killed with SIGKILL after a
 * random 50-400 ms, many times in a row on the same database; after each
 * kill the database is reopened and checked against everything the writer
 * acknowledged:
 *
 *  - every acknowledged user that was not deleted is there with its email;
 *    deleted users and their posts are gone; every acknowledged post whose
 *    author lives is there; no post references a missing user;
 *  - probing every key (1 .. highest key + 100) finds nothing else, except
 *    the rows of the one call in flight, which landed all or nothing;
 *  - ts_count_rows agrees with the probe, for both tables;
 *  - acknowledged keys only grow, across crashes too: a new row gets a key
 *    above every key ever acknowledged (no key reuse after a crash);
 *  - an acknowledged email inserted again is TS_ERR_UNIQUE;
 *  - (the writer also rebuilds a table now and then, ts_rebuild_table:
 *    a kill in the middle must leave the old trees or the new, whole);
 *  - ts_check passes.
 *
 * TS_TEST_LONG=1 runs many more rounds; TS_TEST_SEED fixes the seed.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <tostore/tostore.h>
#include "tsupport.h"

/* An assertion that costs nothing when it holds (Check's ck_assert_msg
 * records its location on every call, far too slow for the probe loops). */
#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

#ifndef TS_TABLE_CRASH_WRITER
#error "TS_TABLE_CRASH_WRITER (the writer's path) must be defined"
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long long rng_state;

static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng_state >> 33) % n);
}

/* ---- the writer process ------------------------------------------------ */

typedef struct victim {
    pid_t  pid;
    int    fd;        /* its stdout */
    char  *buf;       /* everything it printed this round */
    size_t len, cap;
} victim;

static void start(victim *v, const char *dir, int round, unsigned long long seed, const char *dur)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    char tag[32], sd[32];
    snprintf(tag, sizeof tag, "%d", round);
    snprintf(sd, sizeof sd, "%llu", seed);
    v->pid = fork();
    ck_assert_int_ge(v->pid, 0);
    if (v->pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(TS_TABLE_CRASH_WRITER, TS_TABLE_CRASH_WRITER, dir, tag, sd, dur, (char *)NULL);
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
static void reap(victim *v, int round)
{
    kill(v->pid, SIGKILL);
    int status = 0;
    ck_assert_int_eq(waitpid(v->pid, &status, 0), v->pid);
    while (pump(v, now() + 5, 0)) {}
    close(v->fd);
    REQUIRE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "round %d: the writer ended by itself (status %d): see its stderr", round, status);
}

/* ---- what the writer acknowledged -------------------------------------- */

enum { ABSENT = 0, LIVE = 1, DELETED = 2 };

typedef struct user {
    char  state;
    char *email;
} user;

typedef struct post {
    char      state;   /* ABSENT or LIVE; gone with its author */
    long long author;
} post;

static user *users;
static size_t nusers_cap;
static post *posts;
static size_t nposts_cap;
/* the highest key ever acknowledged (or found): new keys must be above */
static long long max_user, max_post;

static void grow(void **arr, size_t *cap, size_t elem, long long id)
{
    REQUIRE(id > 0 && id < 100000000, "key %lld out of range", id);
    if ((size_t)id < *cap) return;
    size_t n = *cap ? *cap : 4096;
    while (n <= (size_t)id) n *= 2;
    *arr = realloc(*arr, n * elem);
    REQUIRE(*arr != NULL, "out of memory");
    memset((char *)*arr + *cap * elem, 0, (n - *cap) * elem);
    *cap = n;
}

static user *U(long long id)
{
    grow((void **)&users, &nusers_cap, sizeof *users, id);
    return &users[id];
}

static post *P(long long id)
{
    grow((void **)&posts, &nposts_cap, sizeof *posts, id);
    return &posts[id];
}

static char *email_of(const char *tag, long long k)
{
    char *s = NULL;
    REQUIRE(asprintf(&s, "w%s_%lld@t.io", tag, k) >= 0, "out of memory");
    return s;
}

static void ack_user(int round, long long id, char *email)
{
    REQUIRE(id > max_user, "round %d: user key %lld acknowledged after key %lld (key reuse?)",
                  round, id, max_user);
    max_user = id;
    user *u = U(id);
    u->state = LIVE;
    u->email = email;
}

static void ack_post(int round, long long id, long long author)
{
    REQUIRE(id > max_post, "round %d: post key %lld acknowledged after key %lld (key reuse?)",
                  round, id, max_post);
    REQUIRE(U(author)->state == LIVE, "round %d: post %lld acknowledged for user %lld, who is %s",
                  round, id, author, U(author)->state == DELETED ? "deleted" : "unknown");
    max_post = id;
    post *p = P(id);
    p->state = LIVE;
    p->author = author;
}

/* The call in flight when the writer was killed (its "I" line). */
typedef struct inflight {
    char      kind;    /* 0: none; U, T, P, D, R, B */
    char      tag[32];
    long long k0, n;   /* U, T, R: the users' emails */
    long long id;      /* P: the author; D: the user */
} inflight;

static long long stat_acks, stat_landed, stat_lost, stat_ops, stat_rebuilds, stat_rebuild_killed;

/* Apply every complete line the writer printed; returns the call in flight. */
static inflight parse(victim *v, int round)
{
    inflight cur = { 0 };
    char *end = v->buf + v->len;
    while (end > v->buf && end[-1] != '\n') end--; /* drop a partial last line */
    for (char *s = v->buf; s < end;) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        *nl = 0;
        char *save = NULL, *w = strtok_r(s, " ", &save);
        if (!w || !strcmp(w, "ready")) {
            REQUIRE(!w || cur.kind == 0, "round %d: ready in the middle", round);
        } else if (!strcmp(w, "I")) {
            REQUIRE(cur.kind == 0, "round %d: a call began before the last one returned", round);
            char *k = strtok_r(NULL, " ", &save);
            REQUIRE(k != NULL, "round %d: a line without a kind", round);
            memset(&cur, 0, sizeof cur);
            cur.kind = k[0];
            if (cur.kind == 'U' || cur.kind == 'T' || cur.kind == 'R') {
                char *t = strtok_r(NULL, " ", &save);
                REQUIRE(t != NULL, "round %d: a line without a tag", round);
                snprintf(cur.tag, sizeof cur.tag, "%s", t);
                cur.k0 = atoll(strtok_r(NULL, " ", &save));
                cur.n = atoll(strtok_r(NULL, " ", &save));
            } else {
                REQUIRE(cur.kind == 'P' || cur.kind == 'D' || cur.kind == 'B',
                        "round %d: bad line kind %c", round, cur.kind);
                /* B (a rebuild) names a table and changes no row */
                if (cur.kind != 'B') cur.id = atoll(strtok_r(NULL, " ", &save));
            }
        } else if (!strcmp(w, "A")) {
            char *k = strtok_r(NULL, " ", &save);
            REQUIRE(k != NULL, "round %d: a line without a kind", round);
            REQUIRE(cur.kind == k[0], "round %d: acknowledgement %c of call %c", round, k[0],
                          cur.kind ? cur.kind : '-');
            stat_ops++;
            if (cur.kind == 'B') stat_rebuilds++;
            if (cur.kind == 'U' || cur.kind == 'T') {
                strtok_r(NULL, " ", &save); /* tag, k0, n: as announced */
                strtok_r(NULL, " ", &save);
                strtok_r(NULL, " ", &save);
                long long first = 0;
                for (long long i = 0; i < cur.n; i++) {
                    char *x = strtok_r(NULL, " ", &save);
                    REQUIRE(x != NULL, "round %d: a line without its keys", round);
                    long long id = atoll(x);
                    if (!i) first = id;
                    ack_user(round, id, email_of(cur.tag, cur.k0 + i));
                    stat_acks++;
                }
                if (cur.kind == 'T') {
                    char *x = strtok_r(NULL, " ", &save);
                    REQUIRE(x != NULL, "round %d: a line without its keys", round);
                    ack_post(round, atoll(x), first);
                    stat_acks++;
                }
            } else if (cur.kind == 'P') {
                long long id = atoll(strtok_r(NULL, " ", &save));
                long long author = atoll(strtok_r(NULL, " ", &save));
                REQUIRE(author == cur.id, "round %d: post by %lld announced for %lld", round, author, cur.id);
                ack_post(round, id, author);
                stat_acks++;
            } else if (cur.kind == 'D') {
                long long id = atoll(strtok_r(NULL, " ", &save));
                REQUIRE(id == cur.id, "round %d: delete of %lld announced for %lld", round, id, cur.id);
                REQUIRE(U(id)->state == LIVE, "round %d: deleted user %lld was not live", round, id);
                U(id)->state = DELETED;
                stat_acks++;
            }
            memset(&cur, 0, sizeof cur);
        } else {
            ck_abort_msg("round %d: unexpected line from the writer: %s", round, w);
        }
        s = nl + 1;
    }
    return cur;
}

/* ---- verification ------------------------------------------------------ */

static ts_db *open_dir(const char *dir, int round)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"}", dir);
    ts_db *db = NULL;
    int rc = ts_open_json(cfg, &db);
    REQUIRE(rc == TS_OK, "round %d: reopen: %d %s", round, rc, ts_errmsg(NULL));
    return db;
}

static int get_row(ts_db *db, const char *table, long long id, json_t **row)
{
    json_t *pk = json_integer(id);
    *row = NULL;
    int rc = ts_get(db, table, pk, row);
    json_decref(pk);
    return rc;
}

/* Does the in-flight call own this email?  Returns its index or -1. */
static long long inflight_index(const inflight *f, const char *email)
{
    if (f->kind != 'U' && f->kind != 'T') return -1;
    char pre[64];
    int n = snprintf(pre, sizeof pre, "w%s_", f->tag);
    if (strncmp(email, pre, (size_t)n)) return -1;
    char *e = NULL;
    long long k = strtoll(email + n, &e, 10);
    if (!e || strcmp(e, "@t.io")) return -1;
    if (k < f->k0 || k >= f->k0 + f->n) return -1;
    return k - f->k0;
}

static void verify(ts_db *db, const char *dir, int round, const inflight *f)
{
    (void)dir;
    /* users: probe every key */
    long long probe_to = max_user + 100, found = 0;
    long long extra_ids[64], nextra = 0;
    int extra_seen[64] = { 0 };
    int delete_landed = 0;
    U(probe_to); /* room for the flags below */
    char *alive = calloc((size_t)probe_to + 1, 1);
    REQUIRE(alive != NULL, "out of memory");
    for (long long id = 1; id <= probe_to; id++) {
        json_t *row = NULL;
        int rc = get_row(db, "users", id, &row);
        user *u = U(id);
        if (rc == TS_ERR_NOT_FOUND) {
            REQUIRE(u->state != LIVE || (f->kind == 'D' && f->id == id),
                          "round %d: acknowledged user %lld (%s) is missing", round, id, u->email);
            if (u->state == LIVE) delete_landed = 1;
            continue;
        }
        REQUIRE(rc == TS_OK, "round %d: get user %lld: %d %s", round, id, rc, ts_errmsg(db));
        json_t *jid = json_object_get(row, "id");
        const char *email = json_string_value(json_object_get(row, "email"));
        REQUIRE(json_is_integer(jid) && json_integer_value(jid) == id,
                      "round %d: user %lld: the row has another id", round, id);
        REQUIRE(email != NULL, "round %d: user %lld has no email", round, id);
        if (u->state == LIVE) {
            REQUIRE(!strcmp(email, u->email), "round %d: user %lld has email %s, acknowledged %s",
                          round, id, email, u->email);
        } else {
            REQUIRE(u->state != DELETED, "round %d: deleted user %lld (%s) is back", round, id,
                          u->email);
            long long i = inflight_index(f, email);
            REQUIRE(i >= 0, "round %d: user %lld (%s) was never acknowledged nor in flight "
                          "(in flight: %c)", round, id, email, f->kind ? f->kind : '-');
            REQUIRE(!extra_seen[i], "round %d: the in-flight email %s is stored twice", round,
                          email);
            REQUIRE(id > max_user, "round %d: the in-flight user %s got key %lld, not above "
                          "the acknowledged %lld", round, email, id, max_user);
            extra_seen[i] = 1;
            extra_ids[i] = id;
            nextra++;
        }
        alive[id] = 1;
        found++;
        json_decref(row);
    }
    /* the call in flight: all or nothing */
    if (f->kind == 'U' || f->kind == 'T') {
        REQUIRE(nextra == 0 || nextra == f->n, "round %d: %lld of the %lld users in flight "
                      "were stored", round, nextra, f->n);
        if (nextra) stat_landed++;
        else stat_lost++;
    } else if (f->kind == 'D') {
        if (delete_landed) stat_landed++;
        else stat_lost++;
    }
    int64_t count = -1;
    int rc = ts_count_rows(db, "users", &count);
    REQUIRE(rc == TS_OK, "round %d: count users: %d %s", round, rc, ts_errmsg(db));
    REQUIRE(count == found, "round %d: ts_count_rows(users) = %lld, probing found %lld", round,
                  (long long)count, found);

    /* posts: probe every key */
    long long pprobe_to = max_post + 100, pfound = 0, pextra = 0;
    P(pprobe_to);
    for (long long id = 1; id <= pprobe_to; id++) {
        json_t *row = NULL;
        rc = get_row(db, "posts", id, &row);
        post *p = P(id);
        int author_alive = p->state == LIVE && p->author <= probe_to && alive[p->author];
        if (rc == TS_ERR_NOT_FOUND) {
            REQUIRE(!author_alive, "round %d: acknowledged post %lld of live user %lld is missing",
                          round, id, p->author);
            continue;
        }
        REQUIRE(rc == TS_OK, "round %d: get post %lld: %d %s", round, id, rc, ts_errmsg(db));
        json_t *ja = json_object_get(row, "author");
        REQUIRE(json_is_integer(ja), "round %d: post %lld has no author", round, id);
        long long author = json_integer_value(ja);
        json_decref(row);
        /* the post's author exists (asked of the store itself too) */
        json_t *urow = NULL;
        rc = get_row(db, "users", author, &urow);
        json_decref(urow);
        REQUIRE(rc == TS_OK && author <= probe_to && alive[author],
                      "round %d: post %lld references missing user %lld (%d)", round, id, author, rc);
        if (p->state == LIVE) {
            REQUIRE(p->author == author, "round %d: post %lld has author %lld, acknowledged %lld",
                          round, id, author, p->author);
        } else {
            /* only the call in flight may have added a post */
            int ok = (f->kind == 'P' && author == f->id) ||
                     (f->kind == 'T' && nextra && author == extra_ids[0]);
            REQUIRE(ok, "round %d: post %lld (author %lld) was never acknowledged nor in flight "
                          "(in flight: %c)", round, id, author, f->kind ? f->kind : '-');
            REQUIRE(id > max_post, "round %d: the in-flight post got key %lld, not above the "
                          "acknowledged %lld", round, id, max_post);
            REQUIRE(pextra == 0, "round %d: two posts in flight", round);
            pextra++;
            p->state = LIVE;
            p->author = author;
        }
        pfound++;
    }
    if (f->kind == 'T')
        REQUIRE(pextra == (nextra ? 1 : 0), "round %d: a transaction's users %s stored, its post "
                      "%s", round, nextra ? "were" : "were not", pextra ? "was" : "was not");
    if (f->kind == 'P') {
        if (pextra) stat_landed++;
        else stat_lost++;
    }
    rc = ts_count_rows(db, "posts", &count);
    REQUIRE(rc == TS_OK, "round %d: count posts: %d %s", round, rc, ts_errmsg(db));
    REQUIRE(count == pfound, "round %d: ts_count_rows(posts) = %lld, probing found %lld", round,
                  (long long)count, pfound);

    /* what landed of the call in flight is now known */
    for (long long i = 0; i < nextra; i++) {
        user *u = U(extra_ids[i]);
        u->state = LIVE;
        u->email = email_of(f->tag, f->k0 + i);
        if (extra_ids[i] > max_user) max_user = extra_ids[i];
    }
    if (delete_landed) U(f->id)->state = DELETED;
    for (long long id = max_post + 1; id <= pprobe_to; id++)
        if (P(id)->state == LIVE) max_post = id;
    free(alive);

    json_t *report = NULL;
    rc = ts_check(db, &report, NULL, NULL);
    REQUIRE(rc == TS_OK, "round %d: ts_check: %d %s", round, rc, ts_errmsg(db));
    REQUIRE(json_is_true(json_object_get(report, "ok")), "round %d: ts_check reports a problem",
                  round);
    json_decref(report);

    /* a new row's key is above every key ever acknowledged */
    char email[64];
    snprintf(email, sizeof email, "probe%d@t.io", round);
    json_t *rec = json_pack("{s:s}", "email", email), *pk = NULL;
    rc = ts_insert(db, "users", rec, &pk);
    json_decref(rec);
    REQUIRE(rc == TS_OK, "round %d: insert a user: %d %s", round, rc, ts_errmsg(db));
    ck_assert(json_is_integer(pk));
    long long uid = json_integer_value(pk);
    json_decref(pk);
    REQUIRE(uid > max_user, "round %d: a new user got key %lld, not above the acknowledged %lld",
                  round, uid, max_user);
    max_user = uid;
    U(uid)->state = LIVE;
    U(uid)->email = strdup(email);
    rec = json_pack("{s:I}", "author", (json_int_t)uid);
    rc = ts_insert(db, "posts", rec, &pk);
    json_decref(rec);
    REQUIRE(rc == TS_OK, "round %d: insert a post: %d %s", round, rc, ts_errmsg(db));
    ck_assert(json_is_integer(pk));
    long long pid = json_integer_value(pk);
    json_decref(pk);
    REQUIRE(pid > max_post, "round %d: a new post got key %lld, not above the acknowledged %lld",
                  round, pid, max_post);
    max_post = pid;
    P(pid)->state = LIVE;
    P(pid)->author = uid;

    /* acknowledged emails are still unique: a few random live ones, and
     * those of the newest users */
    int tried = 0;
    for (int attempt = 0; attempt < 400 && tried < 12; attempt++) {
        long long id = attempt < 8 ? max_user - attempt : 1 + (long long)rnd((unsigned)max_user);
        if (id < 1 || U(id)->state != LIVE) continue;
        rec = json_pack("{s:s, s:i}", "email", U(id)->email, "n", -1);
        rc = ts_insert(db, "users", rec, NULL);
        json_decref(rec);
        REQUIRE(rc == TS_ERR_UNIQUE, "round %d: inserting the email %s of user %lld again: %d %s",
                      round, U(id)->email, id, rc, ts_errmsg(db));
        tried++;
    }
    rc = ts_count_rows(db, "users", &count);
    ck_assert_int_eq(rc, TS_OK);
    REQUIRE(count == found + 1, "round %d: after a failed insert, %lld users instead of %lld",
                  round, (long long)count, found + 1);
}

START_TEST(tables_kill_loop)
{
    char *dir = tst_tmpdir("tables_crash");
    const char *lg = getenv("TS_TEST_LONG");
    int long_mode = lg && *lg && strcmp(lg, "0");
    int rounds = long_mode ? 200 : 20;
    const char *sd = getenv("TS_TEST_SEED");
    unsigned long long seed = sd ? strtoull(sd, NULL, 10) : (unsigned long long)time(NULL);
    rng_state = seed;
    fprintf(stderr, "tables_crash: seed %llu (TS_TEST_SEED), %d rounds\n", seed, rounds);
    double t0 = now();
    victim v = { 0 };
    int from_start = 0;
    for (int round = 0; round < rounds; round++) {
        const char *dur = round % 5 == 4 ? "normal" : "full";
        start(&v, dir, round, seed + (unsigned long long)round, dur);
        double wait = 0.050 + (double)rnd(351) / 1000.0;
        /* some rounds count the delay from the start: the kill may hit the
         * open, recovery or table creation (not round 0: the tables must
         * exist for the checks) */
        int early = round % 6 == 5;
        if (!early)
            REQUIRE(pump(&v, now() + 60, 1), "round %d: the writer never got ready", round);
        else
            from_start++;
        pump(&v, now() + wait, 0);
        reap(&v, round);
        inflight f = parse(&v, round);
        if (f.kind == 'B') stat_rebuild_killed++;
        ts_db *db = open_dir(dir, round);
        verify(db, dir, round, &f);
        ck_assert_int_eq(ts_close(db), TS_OK);
    }
    fprintf(stderr, "tables_crash: %d SIGKILLs (%d counted from process start), %lld calls and "
            "%lld rows acknowledged, in flight: %lld landed, %lld not; %lld users, %lld posts "
            "(highest keys), %lld table rebuilds (%lld killed midway), %.1f s\n", rounds, from_start,
            stat_ops, stat_acks, stat_landed, stat_lost, max_user, max_post, stat_rebuilds,
            stat_rebuild_killed, now() - t0);
    ck_assert_int_gt(stat_acks, 0);
    ck_assert_int_gt(stat_rebuilds, 0);
    free(v.buf);
    for (size_t i = 0; i < nusers_cap; i++) free(users[i].email);
    free(users);
    free(posts);
    users = NULL;
    posts = NULL;
    tst_rmrf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tables_crash");
    TCase *tc = tcase_create("kill");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, tables_kill_loop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return tst_run(suite());
}
