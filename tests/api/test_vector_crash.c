/*
 * Vector tables survive SIGKILL, through the public API.
 *
 * A forked child opens the database (durability full), inserts rows with
 * vectors in small transactions and deletes every fifth row, reporting each
 * call on a pipe after it returned; the parent kills it after a random
 * 30-250 ms, reopens and checks, again and again on the same database:
 * every acknowledged live row is there and a search by its own vector
 * finds it first; deleted rows are never returned; rows of the call in
 * flight landed all or nothing; ts_count_rows and ts_check agree.
 * The same checks after a power loss (faulty backend, torn writes) at
 * every write and sync point of a workload of transactions (40 of them
 * spread over the points; all with TS_TEST_LONG=1).
 * TS_TEST_LONG=1 runs more rounds.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <tostore/tostore.h>
#include "tsupport.h"

#define DIM 12
#define MAXID 1000000

static void vec_of(long long id, float *v)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull + 7;
    for (int d = 0; d < DIM; d++) {
        h ^= h >> 31;
        h *= 0x94D049BB133111EBull;
        v[d] = (float)((double)(h >> 40) / 16777216.0) + (float)(id % 9);
    }
}

/* extra: more config keys after the path ("" for none) */
static ts_db *open_cfg(const char *dir, const char *extra)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\"%s}", dir, extra);
    ts_db *db = NULL;
    int rc = ts_open_json(cfg, &db);
    if (rc) return NULL;
    json_t *s = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s, s:{s:i}}], s:[{s:s, s:[s], s:{s:s}}]}",
                          "name", "v", "fields", "name", "round", "type", "integer", "name", "emb",
                          "type", "vector", "vectorConfig", "dimensions", DIM, "indexes", "type", "ngh",
                          "fields", "emb", "vectorConfig", "distanceMetric", "l2");
    rc = ts_create_table(db, s);
    json_decref(s);
    if (rc && rc != TS_ERR_TABLE_EXISTS) { ts_close(db); return NULL; }
    return db;
}

static ts_db *open_dir(const char *dir) { return open_cfg(dir, ""); }

/* The child: insert ids first.., 1-4 per transaction, delete id % 5 == 0
 * right after; "I a b" before inserting a..b, "A b" after, "D x" after a
 * delete.  Exits 3 on any failure. */
static void writer(const char *dir, int fd, long long first, int round)
{
    ts_db *db = open_dir(dir);
    if (!db) _exit(3);
    char line[64];
    for (long long id = first;; ) {
        int n = 1 + (int)(id % 4);
        int len = snprintf(line, sizeof line, "I %lld %lld\n", id, id + n - 1);
        if (write(fd, line, (size_t)len) != len) _exit(3);
        if (ts_begin(db)) _exit(3);
        for (int i = 0; i < n; i++) {
            float v[DIM];
            vec_of(id + i, v);
            json_t *rec = json_pack("{s:I, s:i, s:o}", "id", (json_int_t)(id + i), "round", round, "emb",
                                    ts_vector_value(v, DIM));
            if (ts_insert(db, "v", rec, NULL)) _exit(3);
            json_decref(rec);
        }
        if (ts_commit(db)) _exit(3);
        len = snprintf(line, sizeof line, "A %lld\n", id + n - 1);
        if (write(fd, line, (size_t)len) != len) _exit(3);
        for (int i = 0; i < n; i++)
            if ((id + i) % 5 == 0) {
                json_t *pk = json_integer(id + i);
                if (ts_delete(db, "v", pk)) _exit(3);
                json_decref(pk);
                len = snprintf(line, sizeof line, "D %lld\n", id + i);
                if (write(fd, line, (size_t)len) != len) _exit(3);
            }
        id += n;
    }
}

static int present(ts_db *db, long long id)
{
    json_t *pk = json_integer(id), *row = NULL;
    int rc = ts_get(db, "v", pk, &row);
    json_decref(pk);
    json_decref(row);
    ck_assert_msg(rc == TS_OK || rc == TS_ERR_NOT_FOUND, "get %lld: %d %s", id, rc, ts_errmsg(db));
    return rc == TS_OK;
}

static long long first_hit(ts_db *db, long long id)
{
    float v[DIM];
    vec_of(id, v);
    ts_query *q = ts_ef_search(ts_query_new(db, "v"), 200);
    ts_result *r = NULL;
    int rc = ts_vector_search(q, "emb", v, DIM, 1, &r);
    ts_query_free(q);
    ck_assert_msg(rc == TS_OK, "search %lld: %d %s", id, rc, ts_errmsg(db));
    long long got = ts_result_count(r) ? (long long)json_integer_value(json_object_get(ts_result_row(r, 0), "id")) : -1;
    ts_result_free(r);
    return got;
}

START_TEST(vector_sigkill)
{
    char *dir = tst_tmpdir("vector_crash");
    const char *lg = getenv("TS_TEST_LONG");
    int rounds = lg && *lg && strcmp(lg, "0") ? 80 : 12;
    static unsigned char state[MAXID + 1];   /* 0 never, 1 live, 2 deleted */
    long long next = 1, acked_rows = 0;
    srand((unsigned)time(NULL));
    for (int round = 0; round < rounds; round++) {
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(p[0]);
            writer(dir, p[1], next, round);
        }
        close(p[1]);
        usleep((useconds_t)(50000 + rand() % 300000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        ck_assert_msg(WIFSIGNALED(st), "the writer exited by itself (status %d)", WEXITSTATUS(st));
        /* read the log: acked ranges and deletes; the last I without A is in flight */
        FILE *f = fdopen(p[0], "r");
        char line[128];
        long long fl_a = 0, fl_b = -1, last_lo = 0, last_hi = -1;
        while (fgets(line, sizeof line, f)) {
            long long a, b;
            if (!strchr(line, '\n')) break;   /* torn last line */
            if (sscanf(line, "I %lld %lld", &a, &b) == 2) { fl_a = a; fl_b = b; last_hi = -1; }
            else if (sscanf(line, "A %lld", &b) == 1) {
                for (long long x = fl_a; x <= b; x++) state[x] = 1;
                acked_rows += b - fl_a + 1;
                next = b + 1;
                last_lo = fl_a;
                last_hi = b;
                fl_b = -1;
            } else if (sscanf(line, "D %lld", &a) == 1) state[a] = 2;
        }
        fclose(f);
        ts_db *db = open_dir(dir);
        ck_assert_msg(db != NULL, "reopen after round %d: %s", round, ts_errmsg(NULL));
        /* the call in flight: all or nothing, and its ids are never reused */
        if (fl_b >= fl_a) {
            int any = present(db, fl_a);
            for (long long x = fl_a; x <= fl_b; x++)
                ck_assert_msg(present(db, x) == any, "in-flight rows %lld..%lld landed in part", fl_a, fl_b);
            for (long long x = fl_a; x <= fl_b; x++) state[x] = any ? 1 : 0;
            next = fl_b + 1;
        }
        /* the deletes after the last acknowledged insert may have been in flight */
        int64_t live = 0;
        for (long long x = 1; x < next; x++) {
            int p_ = present(db, x);
            if (state[x] == 1 && x % 5 == 0 && !p_ && x >= last_lo && x <= last_hi)
                state[x] = 2;   /* its delete landed before the kill */
            if (state[x] == 1) ck_assert_msg(p_, "round %d: acknowledged row %lld lost", round, x);
            if (state[x] != 1) ck_assert_msg(!p_, "round %d: row %lld (state %d) present", round, x, state[x]);
            live += p_;
        }
        int64_t c = -1;
        ck_assert_int_eq(ts_count_rows(db, "v", &c), TS_OK);
        ck_assert_int_eq(c, live);
        /* searches: live rows find themselves; deleted rows never come back */
        for (long long x = 1; x < next; x += 1 + next / 150) {
            long long got = first_hit(db, x);
            if (state[x] == 1) ck_assert_msg(got == x, "round %d: row %lld found %lld first", round, x, got);
            else ck_assert_msg(got != x, "round %d: deleted row %lld returned", round, x);
        }
        json_t *rep = NULL;
        ck_assert_int_eq(ts_check(db, &rep, NULL, NULL), TS_OK);
        ck_assert(json_is_true(json_object_get(rep, "ok")));
        json_decref(rep);
        ck_assert_int_eq(ts_close(db), TS_OK);
        ck_assert_int_lt(next, MAXID - 100000);
    }
    fprintf(stderr, "vector_crash: %d kills, %lld acknowledged rows\n", rounds, acked_rows);
    ck_assert_int_gt(acked_rows, 0);
    tst_rmrf(dir);
    free(dir);
}
END_TEST

/* ---- power loss (faulty backend) at every write and sync point ---------- */

#define FAULTY ", \"storage\": {\"backend\": \"faulty\", \"options\": {\"inner\": \"posix\", " \
               "\"passSync\": false}}"
#define PL_BASE  200   /* rows before the workload: ids 1..PL_BASE */
#define PL_TX    8     /* workload transactions of PL_BATCH rows */
#define PL_BATCH 5

/* What the workload got acknowledged: state[id] 1 live, 2 deleted; the
 * insert batch and the delete in flight when a call failed. */
typedef struct pl_log {
    unsigned char state[PL_BASE + PL_TX * PL_BATCH + 1];
    long long fl_lo, fl_hi, fl_del;
} pl_log;

/* Transactions of PL_BATCH inserts, each followed by a delete of its first
 * row; stops at the first failed call (the power loss). */
static int pl_workload(ts_db *db, pl_log *lg)
{
    for (int t = 0; t < PL_TX; t++) {
        long long lo = PL_BASE + 1 + (long long)t * PL_BATCH, hi = lo + PL_BATCH - 1;
        lg->fl_lo = lo;
        lg->fl_hi = hi;
        int rc = ts_begin(db);
        for (long long id = lo; id <= hi && !rc; id++) {
            float v[DIM];
            vec_of(id, v);
            json_t *rec = json_pack("{s:I, s:i, s:o}", "id", (json_int_t)id, "round", t, "emb",
                                    ts_vector_value(v, DIM));
            rc = ts_insert(db, "v", rec, NULL);
            json_decref(rec);
        }
        if (!rc) rc = ts_commit(db);
        else ts_rollback(db);
        if (rc) return rc;
        for (long long id = lo; id <= hi; id++) lg->state[id] = 1;
        lg->fl_lo = 0;
        lg->fl_hi = -1;
        lg->fl_del = lo;
        json_t *pk = json_integer(lo);
        rc = ts_delete(db, "v", pk);
        json_decref(pk);
        if (rc) return rc;
        lg->state[lo] = 2;
        lg->fl_del = 0;
    }
    return TS_OK;
}

/* Reopened without faults: exactly the acknowledged rows (the insert batch
 * in flight all or nothing, the delete in flight either way), each found
 * first by its own vector; nothing else returned; the pages check. */
static void pl_verify(const char *dir, pl_log *lg, long long n)
{
    ts_db *db = open_dir(dir);
    ck_assert_msg(db != NULL, "reopen after crash point %lld: %s", n, ts_errmsg(NULL));
    if (lg->fl_hi >= lg->fl_lo) {
        int any = present(db, lg->fl_lo);
        for (long long x = lg->fl_lo; x <= lg->fl_hi; x++)
            ck_assert_msg(present(db, x) == any, "crash point %lld: batch %lld..%lld landed in part", n,
                          lg->fl_lo, lg->fl_hi);
        for (long long x = lg->fl_lo; x <= lg->fl_hi; x++) lg->state[x] = any ? 1 : 0;
    }
    if (lg->fl_del && !present(db, lg->fl_del)) lg->state[lg->fl_del] = 2;
    int64_t live = 0;
    for (long long x = 1; x <= PL_BASE + PL_TX * PL_BATCH; x++) {
        int p_ = present(db, x);
        ck_assert_msg(p_ == (lg->state[x] == 1), "crash point %lld: row %lld (state %d) %s", n, x,
                      lg->state[x], p_ ? "present" : "lost");
        live += p_;
        if (x > PL_BASE - 20 || x % 17 == 0) {
            long long got = first_hit(db, x);
            if (p_) ck_assert_msg(got == x, "crash point %lld: row %lld found %lld first", n, x, got);
            else ck_assert_msg(got != x, "crash point %lld: missing row %lld returned", n, x);
        }
    }
    int64_t c = -1;
    ck_assert_int_eq(ts_count_rows(db, "v", &c), TS_OK);
    ck_assert_int_eq(c, live);
    json_t *rep = NULL;
    ck_assert_int_eq(ts_check(db, &rep, NULL, NULL), TS_OK);
    ck_assert(json_is_true(json_object_get(rep, "ok")));
    json_decref(rep);
    ck_assert_int_eq(ts_close(db), TS_OK);
}

START_TEST(vector_power_loss)
{
    char *base = tst_tmpdir("vector_pl_base");
    ts_db *db = open_dir(base);
    ck_assert_ptr_nonnull(db);
    ck_assert_int_eq(ts_begin(db), TS_OK);
    for (long long id = 1; id <= PL_BASE; id++) {
        float v[DIM];
        vec_of(id, v);
        json_t *rec = json_pack("{s:I, s:i, s:o}", "id", (json_int_t)id, "round", -1, "emb", ts_vector_value(v, DIM));
        ck_assert_int_eq(ts_insert(db, "v", rec, NULL), TS_OK);
        json_decref(rec);
    }
    ck_assert_int_eq(ts_commit(db), TS_OK);
    ck_assert_int_eq(ts_close(db), TS_OK);

    /* a clean run counts the fault points */
    static pl_log lg;
    char *d = tst_tmpdir("vector_pl_run");
    tst_copy_dir(base, d);
    db = open_cfg(d, FAULTY);
    ck_assert_ptr_nonnull(db);
    ck_assert_int_eq(ts_storage_control(db, "reset_counters", 0, NULL), TS_OK);
    memset(&lg, 0, sizeof lg);
    ck_assert_int_eq(pl_workload(db, &lg), TS_OK);
    int64_t points = 0;
    ck_assert_int_eq(ts_storage_control(db, "points", 0, &points), TS_OK);
    ck_assert_int_gt(points, 0);
    ck_assert_int_eq(ts_close(db), TS_OK);
    tst_rmrf(d);
    free(d);

    /* a power loss at each point (spread over them when there are many;
     * odd points tear the write) */
    const char *lgv = getenv("TS_TEST_LONG");
    int64_t want = lgv && *lgv && strcmp(lgv, "0") ? points : 40;
    int64_t step = points > want ? points / want : 1, runs = 0;
    for (int64_t n = 1; n <= points; n += step, runs++) {
        d = tst_tmpdir("vector_pl");
        tst_copy_dir(base, d);
        db = open_cfg(d, FAULTY);
        ck_assert_ptr_nonnull(db);
        ck_assert_int_eq(ts_storage_control(db, "reset_counters", 0, NULL), TS_OK);
        ck_assert_int_eq(ts_storage_control(db, "crash_at", n, NULL), TS_OK);
        ck_assert_int_eq(ts_storage_control(db, "tear", n % 2 ? 3000 : 0, NULL), TS_OK);
        memset(&lg, 0, sizeof lg);
        for (long long x = 1; x <= PL_BASE; x++) lg.state[x] = 1;
        lg.fl_hi = -1;
        int rc = pl_workload(db, &lg);
        int64_t crashed = 0;
        ck_assert_int_eq(ts_storage_control(db, "crashed", 0, &crashed), TS_OK);
        ck_assert_msg(crashed == 1, "crash point %lld of %lld: no power loss (rc %d)", (long long)n,
                      (long long)points, rc);
        ts_close(db);   /* fails: the store is dead */
        pl_verify(d, &lg, n);
        tst_rmrf(d);
        free(d);
    }
    fprintf(stderr, "vector_power_loss: %lld fault points, %lld crashes verified\n", (long long)points,
            (long long)runs);
    tst_rmrf(base);
    free(base);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("vector_crash");
    TCase *tc = tcase_create("sigkill");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, vector_power_loss);
    tcase_add_test(tc, vector_sigkill);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tst_run(suite()); }
