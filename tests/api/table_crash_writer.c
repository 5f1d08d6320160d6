/*
 * table_crash_writer - the victim of test_tables_crash: writes to two tables
 * through the public API forever, printing every call after it returned,
 * until it is killed.
 *
 *   table_crash_writer <dir> <tag> <seed> <full|normal>
 *
 * Tables (created when missing): users (id sequential, email text unique
 * not null, n integer) and posts (id sequential, author integer -> users.id
 * onDelete cascade).  Every user this process inserts gets the email
 * "w<tag>_<k>@t.io" for its own counter k, so each email is new.
 *
 * Protocol on stdout, one line per event, each line written with a single
 * write(2) (so the reader sees it whole or not at all):
 *
 *   ready                          open and tables done
 *   I U <tag> <k0> <n>             about to insert users k0..k0+n-1
 *                                  (one ts_insert, a ts_batch_insert, or a
 *                                  ts_begin/inserts/ts_commit)
 *   A U <tag> <k0> <n> <id>...     ... returned: their keys in order
 *   I T <tag> <k0> <n>             about to insert n users and one post by
 *                                  the first, in one transaction
 *   A T <tag> <k0> <n> <id>... <postid>
 *   I P <author>                   about to insert a post by a user acked
 *                                  by this process
 *   A P <postid> <author>
 *   I D <id>                       about to delete a user (cascade)
 *   A D <id>
 *   I R <tag> <k0> <n>             about to insert n users (and maybe posts)
 *                                  and roll back: nothing of it may persist
 *   A R <tag> <k0> <n>
 *   I B <table>                    about to rebuild users or posts
 *                                  (ts_rebuild_table: no row changes)
 *   A B <table>
 *
 * An "I" line without its "A" line is the call in flight when killed.
 * Any unexpected failure exits with status 3 (and a message on stderr).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <tostore/tostore.h>

static ts_db *db;
static unsigned long long rng_state;

static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng_state >> 33) % n);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "table_crash_writer: %s: %d %s\n", what, rc, ts_errmsg(db));
    exit(3);
}

/* One line, one write(2). */
static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof buf - 1) die("line too long", n);
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(1, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) exit(4);
        off += (int)w;
    }
}

static const char *tag;
static long long next_k = 0;

/* Users acked by this process and not deleted: candidates for posts and
 * deletes. */
static long long *live;
static size_t nlive, caplive;

static void live_add(long long id)
{
    if (nlive == caplive) {
        caplive = caplive ? caplive * 2 : 1024;
        live = realloc(live, caplive * sizeof *live);
        if (!live) die("out of memory", 0);
    }
    live[nlive++] = id;
}

static json_t *user_rec(long long k)
{
    char email[128];
    snprintf(email, sizeof email, "w%s_%lld@t.io", tag, k);
    json_t *r = json_pack("{s:s, s:I}", "email", email, "n", (json_int_t)k);
    if (!r) die("json_pack", 0);
    return r;
}

static long long int_key(json_t *pk, const char *what)
{
    if (!json_is_integer(pk)) die(what, -1);
    long long x = json_integer_value(pk);
    json_decref(pk);
    return x;
}

static long long insert_user(long long k)
{
    json_t *r = user_rec(k), *pk = NULL;
    int rc = ts_insert(db, "users", r, &pk);
    json_decref(r);
    if (rc) die("insert user", rc);
    return int_key(pk, "insert user: key");
}

static long long insert_post(long long author)
{
    json_t *r = json_pack("{s:I}", "author", (json_int_t)author), *pk = NULL;
    int rc = ts_insert(db, "posts", r, &pk);
    json_decref(r);
    if (rc) die("insert post", rc);
    return int_key(pk, "insert post: key");
}

/* "A U tag k0 n id..." (or T, with a trailing post id). */
static void ack_users(char kind, long long k0, int n, const long long *ids, long long post)
{
    char buf[2048];
    int len = snprintf(buf, sizeof buf, "A %c %s %lld %d", kind, tag, k0, n);
    for (int i = 0; i < n; i++) len += snprintf(buf + len, sizeof buf - (size_t)len, " %lld", ids[i]);
    if (kind == 'T') len += snprintf(buf + len, sizeof buf - (size_t)len, " %lld", post);
    out("%s", buf);
    for (int i = 0; i < n; i++) live_add(ids[i]);
}

static void op_single(void)
{
    long long k0 = next_k++, id;
    out("I U %s %lld 1", tag, k0);
    id = insert_user(k0);
    ack_users('U', k0, 1, &id, 0);
}

static void op_batch(void)
{
    int n = 1 + (int)rnd(20);
    long long k0 = next_k, ids[20];
    next_k += n;
    json_t *arr = json_array(), *report = NULL;
    for (int i = 0; i < n; i++) json_array_append_new(arr, user_rec(k0 + i));
    out("I U %s %lld %d", tag, k0, n);
    int rc = ts_batch_insert(db, "users", arr, 0, &report);
    json_decref(arr);
    if (rc) die("batch insert", rc);
    json_t *keys = json_object_get(report, "successKeys");
    if (!json_is_array(keys) || json_array_size(keys) != (size_t)n) die("batch report", -1);
    for (int i = 0; i < n; i++) {
        json_t *k = json_array_get(keys, (size_t)i);
        if (!json_is_integer(k)) die("batch report: key", -1);
        ids[i] = json_integer_value(k);
    }
    json_decref(report);
    ack_users('U', k0, n, ids, 0);
}

/* A transaction of 1-5 user inserts; with_post adds a post by the first. */
static void op_txn(int with_post)
{
    int n = 1 + (int)rnd(5), rc;
    long long k0 = next_k, ids[5], post = 0;
    next_k += n;
    out("I %c %s %lld %d", with_post ? 'T' : 'U', tag, k0, n);
    if ((rc = ts_begin(db))) die("begin", rc);
    for (int i = 0; i < n; i++) ids[i] = insert_user(k0 + i);
    if (with_post) post = insert_post(ids[0]);
    if ((rc = ts_commit(db))) die("commit", rc);
    ack_users(with_post ? 'T' : 'U', k0, n, ids, post);
}

static void op_rollback(void)
{
    int n = 1 + (int)rnd(4), rc;
    long long k0 = next_k;
    next_k += n;
    out("I R %s %lld %d", tag, k0, n);
    if ((rc = ts_begin(db))) die("begin", rc);
    long long first = 0;
    for (int i = 0; i < n; i++) {
        long long id = insert_user(k0 + i);
        if (!i) first = id;
    }
    insert_post(first);
    if (nlive) insert_post(live[rnd((unsigned)nlive)]);
    if ((rc = ts_rollback(db))) die("rollback", rc);
    out("A R %s %lld %d", tag, k0, n);
}

static void op_post(void)
{
    if (!nlive) { op_single(); return; }
    long long author = live[rnd((unsigned)nlive)];
    out("I P %lld", author);
    long long post = insert_post(author);
    out("A P %lld %lld", post, author);
}

static void op_delete(void)
{
    if (nlive < 4) { op_single(); return; }
    size_t i = rnd((unsigned)nlive);
    long long id = live[i];
    live[i] = live[--nlive];
    out("I D %lld", id);
    json_t *pk = json_integer(id);
    int rc = ts_delete(db, "users", pk);
    json_decref(pk);
    if (rc) die("delete", rc);
    out("A D %lld", id);
}

static void op_rebuild(void)
{
    const char *t = rnd(2) ? "users" : "posts";
    out("I B %s", t);
    int rc = ts_rebuild_table(db, t, NULL, NULL);
    if (rc) die("rebuild", rc);
    out("A B %s", t);
}

static void create_tables(void)
{
    static const char *schemas[] = {
        "{\"name\": \"users\", \"fields\": ["
        "{\"name\": \"email\", \"type\": \"text\", \"unique\": true, \"nullable\": false},"
        "{\"name\": \"n\", \"type\": \"integer\"}]}",
        "{\"name\": \"posts\", \"fields\": [{\"name\": \"author\", \"type\": \"integer\"}],"
        "\"foreignKeys\": [{\"fields\": [\"author\"], \"referencedTable\": \"users\","
        "\"referencedFields\": [\"id\"], \"onDelete\": \"cascade\"}]}",
    };
    for (size_t i = 0; i < sizeof schemas / sizeof *schemas; i++) {
        json_error_t e;
        json_t *s = json_loads(schemas[i], 0, &e);
        if (!s) die(e.text, -1);
        int rc = ts_create_table(db, s);
        json_decref(s);
        if (rc && rc != TS_ERR_TABLE_EXISTS) die("create table", rc);
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: table_crash_writer <dir> <tag> <seed> <full|normal>\n");
        return 2;
    }
    tag = argv[2];
    rng_state = strtoull(argv[3], NULL, 10) * 2654435761ULL + 1;
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "{\"path\": \"%s\", \"durability\": \"%s\", \"cacheBytes\": 1048576}",
             argv[1], argv[4]);
    int rc = ts_open_json(cfg, &db);
    if (rc) {
        fprintf(stderr, "table_crash_writer: open: %d %s\n", rc, ts_errmsg(NULL));
        return 3;
    }
    create_tables();
    out("ready");
    for (;;) {
        unsigned x = rnd(100);
        if (x < 25) op_single();
        else if (x < 40) op_batch();
        else if (x < 52) op_txn(0);
        else if (x < 60) op_txn(1);
        else if (x < 65) op_rollback();
        else if (x < 92) op_post();
        else if (x < 94) op_rebuild();
        else op_delete();
    }
}
