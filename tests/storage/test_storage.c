/*
 * Storage backend conformance: one suite, written once against the
 * ts_storage_vtab contract (tostore/storage.h), run against every backend
 * configuration: posix, memory, faulty over posix and faulty over memory.
 * Then the faulty backend's own controls: injected errors, power loss, torn
 * writes, and a crash loop that crashes a small workload at every fault
 * point and checks that exactly the durable operations survived.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <tostore/storage.h>
#include "base/env.h"
#include "config/opts.h"
#include "plugin/registry.h"
#include "tsupport.h"

typedef struct backend {
    const char *label;
    const char *module;
    const char *opts;       /* JSON object */
    int         persistent; /* data survives close and reopen of the store */
    int         exclusive;  /* a second store on the same root gets TS_ERR_LOCKED */
    int         on_disk;    /* the root is a real directory */
} backend;

static const backend backends[] = {
    { "posix", "posix", "{}", 1, 1, 1 },
    { "memory", "memory", "{}", 0, 0, 0 },
    { "faulty/posix", "faulty", "{\"inner\": \"posix\"}", 1, 1, 1 },
    { "faulty/memory", "faulty", "{\"inner\": \"memory\"}", 0, 0, 0 },
};
#define NBACKENDS 4
#define FIRST_FAULTY 2

/* The fixture of the running test (each test sets it up and tears it down). */
static struct {
    const backend         *b;
    ts_env                 env;
    tsreg                 *reg;
    json_t                *opts;
    const ts_storage_vtab *vt;
    char                  *dir;       /* scratch directory */
    char                   root[600]; /* store root below it: not yet created */
} F;

#define VT F.vt

#define OK(call) do { \
        int rc_ = (call); \
        ck_assert_msg(rc_ == TS_OK, "%s: %s = %d: %s", F.b->label, #call, rc_, \
                      tsenv_errmsg(&F.env)); \
    } while (0)

#define RC(want, call) do { \
        int rc_ = (call); \
        ck_assert_msg(rc_ == (want), "%s: %s = %d, want %d (%s)", F.b->label, #call, rc_, \
                      (int)(want), tsenv_errmsg(&F.env)); \
    } while (0)

static void fx_init(int i)
{
    memset(&F, 0, sizeof F);
    F.b = &backends[i];
    ck_assert_int_eq(tsenv_init(&F.env), TS_OK);
    OK(tsreg_new(&F.env, &F.reg));
    F.env.reg = F.reg; /* so that faulty finds its inner backend */
    const char *const *dirs = tsreg_default_dirs(F.reg);
    OK(tsreg_load(F.reg, "posix", dirs));
    OK(tsreg_load(F.reg, "memory", dirs));
    OK(tsreg_load(F.reg, "faulty", dirs));
    const tsreg_module *m = tsreg_lookup(F.reg, TS_KIND_STORAGE, F.b->module);
    ck_assert_ptr_nonnull(m);
    F.vt = m->vtab;
    json_error_t je;
    F.opts = json_loads(F.b->opts, 0, &je);
    ck_assert_ptr_nonnull(F.opts);
    F.dir = tst_tmpdir("storage");
    /* Two levels that do not exist yet: open must create them. */
    snprintf(F.root, sizeof F.root, "%s/db/data", F.dir);
}

static void fx_done(void)
{
    json_decref(F.opts);
    tsreg_free(F.reg);
    tsenv_destroy(&F.env);
    tst_rmrf(F.dir);
    free(F.dir);
}

/* Open a store of the current backend with opts (NULL: the backend's). */
static int open_raw(const json_t *opts, const char *root, void **out)
{
    const tsreg_module *m = tsreg_lookup(F.reg, TS_KIND_STORAGE, F.b->module);
    ts_module_args a = { sizeof a, tsenv_host(), &F.env, tsopts_wrap(opts ? opts : F.opts),
                         m->plugin_state };
    tsenv_clear(&F.env);
    return VT->open(&a, root, out);
}

/* Open and lock, as the kernel does. */
static void *store_open_at(const json_t *opts, const char *root)
{
    void *st = NULL;
    OK(open_raw(opts, root, &st));
    OK(VT->lock(st));
    return st;
}

static void *store_open(void) { return store_open_at(NULL, F.root); }

static void store_close(void *st)
{
    OK(VT->unlock(st));
    OK(VT->close(st));
}

static void *fopen_ok(void *st, const char *name, unsigned flags)
{
    void *f = NULL;
    OK(VT->file_open(st, name, flags, &f));
    ck_assert_ptr_nonnull(f);
    return f;
}

static void put(void *f, uint64_t off, const char *s) { OK(VT->write(f, off, s, strlen(s))); }

static uint64_t fsize(void *f)
{
    uint64_t n = 0;
    OK(VT->size(f, &n));
    return n;
}

/* The whole file `name` equals data[0..len). */
static void expect_file(void *st, const char *name, const void *data, size_t len)
{
    void *f = fopen_ok(st, name, TS_OPEN_READONLY);
    ck_assert_msg(fsize(f) == len, "%s: %s: size %llu, want %zu", F.b->label, name,
                  (unsigned long long)fsize(f), len);
    char *buf = malloc(len + 64);
    size_t got = 0;
    OK(VT->read(f, 0, buf, len + 64, &got));
    ck_assert_uint_eq(got, len);
    ck_assert_msg(memcmp(buf, data, len) == 0, "%s: %s: content differs", F.b->label, name);
    free(buf);
    OK(VT->file_close(f));
}

static void expect_str(void *st, const char *name, const char *s)
{
    expect_file(st, name, s, strlen(s));
}

static int exists(void *st, const char *name)
{
    int ex = -1;
    OK(VT->exists(st, name, &ex));
    ck_assert(ex == 0 || ex == 1);
    return ex;
}

/* list() as one sorted, comma-separated string. */
typedef struct namebag { char *v[64]; size_t n; } namebag;

static int collect(void *ctx, const char *name)
{
    namebag *l = ctx;
    ck_assert_uint_lt(l->n, 64);
    l->v[l->n++] = strdup(name);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_str(void *st, char *out, size_t cap)
{
    namebag l = { .n = 0 };
    OK(VT->list(st, collect, &l));
    qsort(l.v, l.n, sizeof l.v[0], cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < l.n; i++) {
        if (i) strncat(out, ",", cap - strlen(out) - 1);
        strncat(out, l.v[i], cap - strlen(out) - 1);
        free(l.v[i]);
    }
}

#define EXPECT_LIST(st, want) do { \
        char got_[1024]; \
        list_str((st), got_, sizeof got_); \
        ck_assert_msg(strcmp(got_, (want)) == 0, "%s: list is '%s', want '%s'", F.b->label, \
                      got_, (want)); \
    } while (0)

/* ---- conformance ---------------------------------------------------- */

START_TEST(test_roundtrip)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "data.db", TS_OPEN_CREATE);
    ck_assert_uint_eq(fsize(f), 0);
    put(f, 0, "hello");
    put(f, 100, "world"); /* past EOF: the gap reads as zeros */
    ck_assert_uint_eq(fsize(f), 105);

    char want[105], buf[200];
    memset(want, 0, sizeof want);
    memcpy(want, "hello", 5);
    memcpy(want + 100, "world", 5);
    size_t got = 0;
    OK(VT->read(f, 0, buf, sizeof buf, &got)); /* short read at EOF is TS_OK */
    ck_assert_uint_eq(got, 105);
    ck_assert(memcmp(buf, want, 105) == 0);
    OK(VT->read(f, 103, buf, 10, &got));
    ck_assert_uint_eq(got, 2);
    ck_assert(memcmp(buf, "ld", 2) == 0);
    OK(VT->read(f, 105, buf, 10, &got));
    ck_assert_uint_eq(got, 0);
    OK(VT->read(f, 5000, buf, 10, &got));
    ck_assert_uint_eq(got, 0);

    put(f, 2, "LL"); /* overwrite inside */
    OK(VT->read(f, 0, buf, 5, &got));
    ck_assert(got == 5 && memcmp(buf, "heLLo", 5) == 0);
    OK(VT->write(f, 50, "", 0)); /* empty write: nothing changes */
    ck_assert_uint_eq(fsize(f), 105);
    OK(VT->sync(f, 0));
    OK(VT->sync(f, TS_SYNC_DATA));
    OK(VT->file_close(f));

    /* A second handle sees the same bytes. */
    memcpy(want + 2, "LL", 2);
    expect_file(st, "data.db", want, 105);
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_truncate)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "t", TS_OPEN_CREATE);
    put(f, 0, "abcdef");
    OK(VT->truncate(f, 3));
    ck_assert_uint_eq(fsize(f), 3);
    OK(VT->truncate(f, 6)); /* extending zero-fills: old bytes must not come back */
    ck_assert_uint_eq(fsize(f), 6);
    OK(VT->file_close(f));
    expect_file(st, "t", "abc\0\0\0", 6);
    f = fopen_ok(st, "t", 0);
    OK(VT->truncate(f, 0));
    ck_assert_uint_eq(fsize(f), 0);
    put(f, 1, "x");
    OK(VT->file_close(f));
    expect_file(st, "t", "\0x", 2);
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_rename)
{
    fx_init(_i);
    void *st = store_open();
    void *a = fopen_ok(st, "a", TS_OPEN_CREATE);
    put(a, 0, "AAA");
    void *b = fopen_ok(st, "b", TS_OPEN_CREATE);
    put(b, 0, "B");
    OK(VT->file_close(b));
    OK(VT->rename(st, "a", "b")); /* replaces b */
    ck_assert_int_eq(exists(st, "a"), 0);
    ck_assert_int_eq(exists(st, "b"), 1);
    expect_str(st, "b", "AAA");
    /* The open handle follows the file to its new name. */
    put(a, 3, "+");
    OK(VT->file_close(a));
    expect_str(st, "b", "AAA+");
    OK(VT->rename(st, "b", "c"));
    OK(VT->rename(st, "c", "c")); /* same name: nothing happens */
    expect_str(st, "c", "AAA+");
    RC(TS_ERR_NOT_FOUND, VT->rename(st, "nope", "d"));
    ck_assert_int_eq(exists(st, "d"), 0);
    EXPECT_LIST(st, "c");
    OK(VT->sync_dir(st));
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_remove_and_missing)
{
    fx_init(_i);
    void *st = store_open();
    void *f = NULL;
    RC(TS_ERR_NOT_FOUND, VT->file_open(st, "missing", 0, &f));
    RC(TS_ERR_NOT_FOUND, VT->file_open(st, "missing", TS_OPEN_READONLY, &f));
    ck_assert(*tsenv_errmsg(&F.env)); /* a message was reported */
    RC(TS_ERR_NOT_FOUND, VT->remove(st, "missing"));
    ck_assert_int_eq(exists(st, "missing"), 0);

    f = fopen_ok(st, "r", TS_OPEN_CREATE);
    put(f, 0, "keep");
    ck_assert_int_eq(exists(st, "r"), 1);
    OK(VT->remove(st, "r"));
    ck_assert_int_eq(exists(st, "r"), 0);
    RC(TS_ERR_NOT_FOUND, VT->remove(st, "r"));
    /* Like a POSIX inode: an open handle keeps working on the removed file. */
    char buf[8];
    size_t got = 0;
    OK(VT->read(f, 0, buf, sizeof buf, &got));
    ck_assert(got == 4 && memcmp(buf, "keep", 4) == 0);
    put(f, 4, "!");
    OK(VT->sync_dir(st));
    OK(VT->file_close(f));
    EXPECT_LIST(st, "");
    /* A new file of the same name starts empty. */
    f = fopen_ok(st, "r", TS_OPEN_CREATE);
    ck_assert_uint_eq(fsize(f), 0);
    OK(VT->file_close(f));
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_excl)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "x", TS_OPEN_CREATE | TS_OPEN_EXCL);
    put(f, 0, "1");
    OK(VT->file_close(f));
    RC(TS_ERR_INVALID, VT->file_open(st, "x", TS_OPEN_CREATE | TS_OPEN_EXCL, &f));
    expect_str(st, "x", "1"); /* untouched */
    f = fopen_ok(st, "x", TS_OPEN_CREATE); /* without EXCL: opens the existing file */
    ck_assert_uint_eq(fsize(f), 1);
    OK(VT->file_close(f));
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_invalid_names)
{
    fx_init(_i);
    void *st = store_open();
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = '\0';
    const char *bad[] = { "", "a/b", "/abs", "..", ".", "../x", "sp ace", "tab\t", longname };
    void *f = NULL;
    int ex = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *n = bad[i];
        RC(TS_ERR_INVALID, VT->file_open(st, n, TS_OPEN_CREATE, &f));
        RC(TS_ERR_INVALID, VT->remove(st, n));
        RC(TS_ERR_INVALID, VT->exists(st, n, &ex));
        RC(TS_ERR_INVALID, VT->rename(st, n, "ok"));
    }
    f = fopen_ok(st, "ok", TS_OPEN_CREATE);
    OK(VT->file_close(f));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        RC(TS_ERR_INVALID, VT->rename(st, "ok", bad[i]));
    /* 255 bytes is the longest name. */
    longname[255] = '\0';
    f = fopen_ok(st, longname, TS_OPEN_CREATE);
    OK(VT->file_close(f));
    ck_assert_int_eq(exists(st, longname), 1);
    ck_assert_int_eq(exists(st, "ok"), 1);
    store_close(st);
    fx_done();
}
END_TEST

static int stop_after_one(void *ctx, const char *name)
{
    (void)name;
    ++*(int *)ctx;
    return 7;
}

START_TEST(test_list)
{
    fx_init(_i);
    void *st = store_open();
    EXPECT_LIST(st, ""); /* the lock file (posix) is not a file of the store */
    const char *names[] = { "c-1_x", "a", "b.db" };
    for (int i = 0; i < 3; i++) OK(VT->file_close(fopen_ok(st, names[i], TS_OPEN_CREATE)));
    if (F.b->on_disk) {
        /* Only regular files are files of the store. */
        char sub[700];
        snprintf(sub, sizeof sub, "%s/subdir", F.root);
        ck_assert_int_eq(mkdir(sub, 0755), 0);
        snprintf(sub, sizeof sub, "%s/link", F.root);
        ck_assert_int_eq(symlink("a", sub), 0);
    }
    EXPECT_LIST(st, "a,b.db,c-1_x");
    int calls = 0;
    RC(7, VT->list(st, stop_after_one, &calls)); /* non-zero from cb stops the walk */
    ck_assert_int_eq(calls, 1);
    OK(VT->remove(st, "a"));
    EXPECT_LIST(st, "b.db,c-1_x");
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_readonly)
{
    fx_init(_i);
    void *st = store_open();
    OK(VT->file_close(fopen_ok(st, "ro", TS_OPEN_CREATE)));
    void *f = fopen_ok(st, "ro", TS_OPEN_READONLY);
    ck_assert_int_ne(VT->write(f, 0, "x", 1), TS_OK);
    ck_assert_int_ne(VT->truncate(f, 10), TS_OK);
    ck_assert_uint_eq(fsize(f), 0);
    OK(VT->file_close(f));
    store_close(st);
    fx_done();
}
END_TEST

/* Persistent backends keep everything across close and reopen; memory
 * backends are ephemeral: a reopened store is empty. */
START_TEST(test_persistence)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "p", TS_OPEN_CREATE);
    put(f, 0, "durable");
    put(f, 4000, "tail");
    OK(VT->sync(f, 0));
    OK(VT->file_close(f));
    f = fopen_ok(st, "tmp", TS_OPEN_CREATE);
    put(f, 0, "new");
    OK(VT->sync(f, TS_SYNC_DATA));
    OK(VT->file_close(f));
    OK(VT->rename(st, "tmp", "q"));
    OK(VT->sync_dir(st));
    store_close(st);

    st = store_open();
    if (F.b->persistent) {
        EXPECT_LIST(st, "p,q");
        char want[4004] = { 0 };
        memcpy(want, "durable", 7);
        memcpy(want + 4000, "tail", 4);
        expect_file(st, "p", want, sizeof want);
        expect_str(st, "q", "new");
    } else {
        EXPECT_LIST(st, "");
    }
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_lock)
{
    fx_init(_i);
    void *s1 = NULL, *s2 = NULL;
    OK(open_raw(NULL, F.root, &s1));
    OK(open_raw(NULL, F.root, &s2));
    OK(VT->lock(s1));
    OK(VT->lock(s1)); /* taking it again is harmless */
    if (F.b->exclusive) {
        RC(TS_ERR_LOCKED, VT->lock(s2));
        ck_assert_ptr_nonnull(strstr(tsenv_errmsg(&F.env), "locked"));
        /* Another process is refused as well. */
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            void *s3 = NULL;
            int rc = open_raw(NULL, F.root, &s3);
            if (!rc) rc = VT->lock(s3);
            _exit(rc == TS_ERR_LOCKED ? 0 : 1);
        }
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        OK(VT->unlock(s1));
        OK(VT->lock(s2)); /* free again */
        RC(TS_ERR_LOCKED, VT->lock(s1));
        OK(VT->unlock(s2));
    } else {
        /* Memory stores share nothing, even on the same root: each one's
         * lock always succeeds and each sees only its own files. */
        OK(VT->lock(s2));
        OK(VT->file_close(fopen_ok(s1, "only-in-1", TS_OPEN_CREATE)));
        ck_assert_int_eq(exists(s2, "only-in-1"), 0);
        OK(VT->unlock(s2));
        OK(VT->unlock(s1));
    }
    OK(VT->close(s2));
    /* close releases a lock still held */
    OK(VT->lock(s1));
    OK(VT->close(s1));
    OK(open_raw(NULL, F.root, &s2));
    OK(VT->lock(s2));
    store_close(s2);
    fx_done();
}
END_TEST

/* ---- two threads on distinct ranges of one handle ------------------- */

#define TBLOCK 512
#define TBLOCKS 256

typedef struct worker {
    void *f;
    int   id;
    int   errors;
} worker;

static void fill(unsigned char *b, int id, int i)
{
    for (int k = 0; k < TBLOCK; k++) b[k] = (unsigned char)(id * 131 + i * 7 + k);
}

static void *worker_run(void *arg)
{
    worker *w = arg;
    unsigned char b[TBLOCK], r[TBLOCK];
    for (int i = 0; i < TBLOCKS; i++) {
        uint64_t off = (uint64_t)(i * 2 + w->id) * TBLOCK; /* interleaved blocks */
        fill(b, w->id, i);
        if (VT->write(w->f, off, b, TBLOCK)) w->errors++;
        size_t got = 0;
        if (VT->read(w->f, off, r, TBLOCK, &got) || got != TBLOCK || memcmp(r, b, TBLOCK))
            w->errors++;
    }
    for (int i = 0; i < TBLOCKS; i++) {
        size_t got = 0;
        fill(b, w->id, i);
        if (VT->read(w->f, (uint64_t)(i * 2 + w->id) * TBLOCK, r, TBLOCK, &got) ||
            got != TBLOCK || memcmp(r, b, TBLOCK))
            w->errors++;
    }
    return NULL;
}

START_TEST(test_threads)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "shared", TS_OPEN_CREATE);
    worker w[2] = { { f, 0, 0 }, { f, 1, 0 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_int_eq(w[0].errors, 0);
    ck_assert_int_eq(w[1].errors, 0);
    ck_assert_uint_eq(fsize(f), (uint64_t)2 * TBLOCKS * TBLOCK);
    OK(VT->file_close(f));
    store_close(st);
    fx_done();
}
END_TEST

/* ---- randomized model test ------------------------------------------ */

typedef struct model_file {
    unsigned char *d;
    size_t         n, cap;
    void          *h;
} model_file;

static uint64_t rnd(uint64_t *s)
{
    /* xorshift64*: fixed seeds make every run the same */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void model_resize(model_file *m, size_t n)
{
    if (n > m->cap) {
        m->cap = n * 2;
        m->d = realloc(m->d, m->cap);
        ck_assert_ptr_nonnull(m->d);
    }
    if (n > m->n) memset(m->d + m->n, 0, n - m->n);
    m->n = n;
}

START_TEST(test_model)
{
    fx_init(_i);
    void *st = store_open();
    static const char *const fname[3] = { "m0", "m1", "m2" };
    static unsigned char buf[8192], rbuf[8192];
    for (uint64_t seed = 1; seed <= 3; seed++) {
        uint64_t s = seed * 0x9E3779B97F4A7C15ull;
        model_file m[3];
        memset(m, 0, sizeof m);
        for (int i = 0; i < 3; i++) {
            m[i].h = fopen_ok(st, fname[i], TS_OPEN_CREATE);
            OK(VT->truncate(m[i].h, 0));
        }
        for (int op = 0; op < 3000; op++) {
            model_file *x = &m[rnd(&s) % 3];
            unsigned r = (unsigned)(rnd(&s) % 100);
            if (r < 40) { /* write */
                size_t off = (size_t)(rnd(&s) % 65536), len = (size_t)(rnd(&s) % 4097);
                for (size_t k = 0; k < len; k++) buf[k] = (unsigned char)rnd(&s);
                OK(VT->write(x->h, off, buf, len));
                if (len) {
                    if (off + len > x->n) model_resize(x, off + len);
                    memcpy(x->d + off, buf, len);
                }
            } else if (r < 50) { /* truncate */
                size_t n = (size_t)(rnd(&s) % 70000);
                OK(VT->truncate(x->h, n));
                model_resize(x, n);
            } else if (r < 80) { /* read */
                size_t off = (size_t)(rnd(&s) % 70000), len = (size_t)(rnd(&s) % 5000);
                size_t got = 0, want = off < x->n ? x->n - off : 0;
                if (want > len) want = len;
                OK(VT->read(x->h, off, rbuf, len, &got));
                ck_assert_msg(got == want, "%s: seed %d op %d: read got %zu, want %zu",
                              F.b->label, (int)seed, op, got, want);
                ck_assert_msg(memcmp(rbuf, x->d + off, want) == 0,
                              "%s: seed %d op %d: read content differs", F.b->label, (int)seed, op);
            } else if (r < 90) {
                ck_assert_uint_eq(fsize(x->h), x->n);
            } else if (r < 95) { /* close and reopen the handle */
                OK(VT->file_close(x->h));
                x->h = fopen_ok(st, fname[x - m], 0);
            } else if (rnd(&s) % 10 == 0) { /* rare: a real fsync costs milliseconds */
                OK(VT->sync(x->h, r & 1 ? TS_SYNC_DATA : 0));
            }
        }
        for (int i = 0; i < 3; i++) {
            OK(VT->file_close(m[i].h));
            expect_file(st, fname[i], m[i].d ? m[i].d : (unsigned char *)"", m[i].n);
            free(m[i].d);
        }
        EXPECT_LIST(st, "m0,m1,m2");
    }
    store_close(st);
    fx_done();
}
END_TEST

/* Unknown option keys and ill-typed values are configuration errors. */
START_TEST(test_options)
{
    fx_init(_i);
    void *st = NULL;
    json_t *o = json_deep_copy(F.opts);
    json_object_set_new(o, "bogus", json_integer(1));
    RC(TS_ERR_CONFIG, open_raw(o, F.root, &st));
    ck_assert_ptr_nonnull(strstr(tsenv_errmsg(&F.env), "bogus"));
    json_decref(o);
    if (strcmp(F.b->module, "posix") == 0) {
        o = json_pack("{s:s}", "sync", "sometimes");
        RC(TS_ERR_CONFIG, open_raw(o, F.root, &st));
        json_decref(o);
        o = json_pack("{s:i}", "sync", 1);
        RC(TS_ERR_CONFIG, open_raw(o, F.root, &st));
        json_decref(o);
        o = json_pack("{s:s}", "sync", "none"); /* tests only: no fsync at all */
        OK(open_raw(o, F.root, &st));
        void *f = fopen_ok(st, "x", TS_OPEN_CREATE);
        OK(VT->sync(f, 0));
        OK(VT->file_close(f));
        OK(VT->sync_dir(st));
        OK(VT->close(st));
        json_decref(o);
    }
    if (strcmp(F.b->module, "faulty") == 0) {
        o = json_pack("{s:s}", "inner", "no-such-backend");
        RC(TS_ERR_CONFIG, open_raw(o, F.root, &st));
        json_decref(o);
        o = json_pack("{s:s}", "passSync", "yes");
        RC(TS_ERR_CONFIG, open_raw(o, F.root, &st));
        json_decref(o);
        /* innerOptions reach the inner backend, which checks them. */
        o = json_pack("{s:s, s:{s:i}}", "inner", "posix", "innerOptions", "bogus", 1);
        RC(TS_ERR_CONFIG, open_raw(o, F.root, &st));
        json_decref(o);
        o = json_pack("{s:s, s:{s:s}, s:b}", "inner", "posix", "innerOptions", "sync", "none",
                      "passSync", 0);
        OK(open_raw(o, F.root, &st));
        OK(VT->close(st));
        json_decref(o);
    }
    fx_done();
}
END_TEST

/* A file holding content, synced. */
static void make(void *st, const char *name, const char *content)
{
    void *f = fopen_ok(st, name, TS_OPEN_CREATE);
    put(f, 0, content);
    OK(VT->sync(f, 0));
    OK(VT->file_close(f));
}

/* write_sync (ABI 1.8, optional): whole aligned 4 KiB blocks, read back like
 * a write; misaligned calls refused without writing; memory has none. */
/* prefetch (ABI 1.9): a hint that never changes what reads return;
 * posix and faulty have it (faulty counts and passes it on), memory not. */
START_TEST(test_prefetch)
{
    fx_init(_i);
    if (!VT->prefetch) {
        ck_assert_str_eq(F.b->module, "memory");
        fx_done();
        return;
    }
    void *st = store_open();
    void *f = fopen_ok(st, "p", TS_OPEN_CREATE);
    unsigned char b[3 * 4096], got[3 * 4096];
    for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)(i * 13 + 5);
    OK(VT->write(f, 0, b, sizeof b));
    OK(VT->prefetch(f, 4096, 8192));
    OK(VT->prefetch(f, 1 << 20, 4096)); /* past the end: still only a hint */
    size_t n = 0;
    OK(VT->read(f, 0, got, sizeof got, &n));
    ck_assert_uint_eq(n, sizeof got);
    ck_assert(memcmp(b, got, sizeof b) == 0);
    if (strcmp(F.b->module, "faulty") == 0) {
        int64_t c = 0;
        OK(VT->control(st, "prefetches", 0, &c));
        ck_assert_int_eq(c, 2);
    }
    OK(VT->file_close(f));
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_write_sync)
{
    fx_init(_i);
    if (!VT->write_sync) {
        ck_assert_str_eq(F.b->module, "memory");
        fx_done();
        return;
    }
    void *st = store_open();
    void *f = fopen_ok(st, "w", TS_OPEN_CREATE);
    unsigned char *b = NULL;
    ck_assert_int_eq(posix_memalign((void **)&b, 4096, 3 * 4096), 0);
    memset(b, 'a', 3 * 4096);
    OK(VT->write(f, 0, b, 3 * 4096));
    OK(VT->sync(f, TS_SYNC_DATA));
    for (int i = 0; i < 8192; i++) b[i] = (unsigned char)(i * 7 + 1);
    int rc = VT->write_sync(f, 4096, b, 8192);
    ck_assert_msg(rc == TS_OK || rc == TS_ERR_UNSUPPORTED, "%s: write_sync = %d (%s)", F.b->label,
                  rc, tsenv_errmsg(&F.env));
    if (rc == TS_ERR_UNSUPPORTED && strcmp(F.b->module, "posix") == 0) {
        /* only where this file system really has no O_DIRECT */
        char path[700];
        snprintf(path, sizeof path, "%s/w", F.root);
        int fd = open(path, O_RDWR | O_DIRECT);
        int e = errno;
        if (fd >= 0) close(fd);
        ck_assert_msg(fd < 0 && e == EINVAL, "posix refused write_sync where O_DIRECT opens");
    }
    unsigned char *want = malloc(3 * 4096), *got = malloc(3 * 4096);
    memset(want, 'a', 3 * 4096);
    if (rc == TS_OK) memcpy(want + 4096, b, 8192);
    size_t n = 0;
    OK(VT->read(f, 0, got, 3 * 4096, &n));
    ck_assert_uint_eq(n, 3 * 4096);
    ck_assert_msg(memcmp(got, want, 3 * 4096) == 0, "%s: content after write_sync", F.b->label);
    /* misaligned offset, size or buffer: refused, nothing written */
    RC(TS_ERR_INVALID, VT->write_sync(f, 100, b, 4096));
    RC(TS_ERR_INVALID, VT->write_sync(f, 0, b, 4000));
    RC(TS_ERR_INVALID, VT->write_sync(f, 0, b + 8, 4096));
    OK(VT->read(f, 0, got, 3 * 4096, &n));
    ck_assert_msg(memcmp(got, want, 3 * 4096) == 0, "%s: a refused write_sync wrote", F.b->label);
    free(want);
    free(got);
    OK(VT->file_close(f));
    if (strcmp(F.b->module, "posix") == 0 && rc == TS_OK) {
        /* a handle whose name now leads to another file (replaced by a
         * rename) must not write_sync into that file */
        void *h = fopen_ok(st, "v", TS_OPEN_CREATE);
        put(h, 0, "old");
        make(st, "x", "replacement");
        OK(VT->rename(st, "x", "v"));
        RC(TS_ERR_UNSUPPORTED, VT->write_sync(h, 0, b, 4096));
        OK(VT->file_close(h));
        expect_str(st, "v", "replacement");
    }
    free(b);
    store_close(st);
    fx_done();
}
END_TEST

/* ---- faulty --------------------------------------------------------- */

static int64_t ctl(void *st, const char *op, int64_t arg)
{
    int64_t out = -1;
    OK(VT->control(st, op, arg, &out));
    return out;
}

/* Come back after a power loss: a new store over the same directory, or
 * for an inner backend without persistence, a restart of the same store. */
static void *reopen(void *st, const json_t *opts)
{
    if (F.b->persistent) {
        store_close(st);
        return store_open_at(opts, F.root);
    }
    ctl(st, "restart", 0);
    return st;
}

START_TEST(test_fail_write_at)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "w", TS_OPEN_CREATE);
    ctl(st, "reset_counters", 0);
    ctl(st, "fail_write_at", 3);
    put(f, 0, "a");
    put(f, 1, "b");
    RC(TS_ERR_IO, VT->write(f, 2, "c", 1));
    ck_assert_ptr_nonnull(strstr(tsenv_errmsg(&F.env), "EIO"));
    put(f, 3, "d"); /* one-shot: the next write works */
    ck_assert_int_eq(ctl(st, "points", 0), 4);
    OK(VT->file_close(f));
    expect_file(st, "w", "ab\0d", 4);
    /* 0 disarms */
    f = fopen_ok(st, "w", 0);
    ctl(st, "fail_write_at", 2);
    ctl(st, "fail_write_at", 0);
    for (int i = 0; i < 4; i++) put(f, 0, "z");
    /* syncs do not count as writes */
    ctl(st, "fail_write_at", 2);
    OK(VT->sync(f, 0));
    OK(VT->sync_dir(st));
    put(f, 0, "1");
    RC(TS_ERR_IO, VT->write(f, 0, "2", 1));
    OK(VT->file_close(f));
    RC(TS_ERR_RANGE, VT->control(st, "fail_write_at", -1, NULL));
    RC(TS_ERR_UNSUPPORTED, VT->control(st, "no_such_control", 0, NULL));
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_fail_sync_at)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "s", TS_OPEN_CREATE);
    ctl(st, "fail_sync_at", 2); /* file syncs and sync_dir both count */
    put(f, 0, "x");
    OK(VT->sync(f, 0));
    RC(TS_ERR_IO, VT->sync_dir(st));
    OK(VT->sync_dir(st));
    ctl(st, "fail_sync_at", 1);
    RC(TS_ERR_IO, VT->sync(f, TS_SYNC_DATA));
    OK(VT->sync(f, 0));
    OK(VT->file_close(f));
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_enospc)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "full", TS_OPEN_CREATE);
    put(f, 0, "xyz");
    ctl(st, "enospc_at", 1);
    RC(TS_ERR_IO, VT->write(f, 1, "more bytes", 10));
    ck_assert_ptr_nonnull(strstr(tsenv_errmsg(&F.env), "ENOSPC"));
    ck_assert_uint_eq(fsize(f), 3); /* nothing was written */
    OK(VT->file_close(f));
    expect_str(st, "full", "xyz");
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_power_loss_data)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "f", TS_OPEN_CREATE);
    void *g = fopen_ok(st, "g", TS_OPEN_CREATE);
    put(f, 0, "AAAA");
    put(g, 0, "GGGGGG");
    OK(VT->sync(f, 0));
    OK(VT->sync(g, TS_SYNC_DATA));
    OK(VT->sync_dir(st));
    put(f, 2, "BB");   /* unsynced overwrite */
    put(f, 6, "CC");   /* unsynced extension */
    OK(VT->truncate(g, 1)); /* unsynced truncate */
    put(g, 3, "h");
    OK(VT->file_close(g)); /* closed, still not durable */
    ctl(st, "power_loss", 0);
    ck_assert_int_eq(ctl(st, "crashed", 0), 1);
    OK(VT->file_close(f));
    st = reopen(st, NULL);
    EXPECT_LIST(st, "f,g");
    expect_str(st, "f", "AAAA");
    expect_str(st, "g", "GGGGGG");

    /* Synced writes stay, even when later unsynced ones are dropped. */
    f = fopen_ok(st, "f", 0);
    put(f, 0, "1");
    OK(VT->sync(f, 0));
    put(f, 1, "2");
    OK(VT->file_close(f));
    ctl(st, "power_loss", 0);
    st = reopen(st, NULL);
    expect_str(st, "f", "1AAA");
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_torn_write)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "t", TS_OPEN_CREATE);
    put(f, 0, "0123456789");
    OK(VT->sync(f, 0));
    OK(VT->sync_dir(st));
    put(f, 0, "x"); /* unsynced: dropped even though the torn write survives */
    ctl(st, "tear", 3);
    ctl(st, "crash_at", 1);
    RC(TS_ERR_IO, VT->write(f, 2, "abcdef", 6));
    OK(VT->file_close(f));
    st = reopen(st, NULL);
    expect_str(st, "t", "01abc56789");

    /* A torn write past EOF extends the file by the prefix only. */
    f = fopen_ok(st, "t", 0);
    ctl(st, "tear", 4);
    ctl(st, "crash_at", 2);
    put(f, 0, "Z");
    RC(TS_ERR_IO, VT->write(f, 8, "WXYZ12", 6));
    OK(VT->file_close(f));
    st = reopen(st, NULL);
    expect_str(st, "t", "01abc567WXYZ");

    /* Tear 0 (the default): the crashing write leaves nothing. */
    f = fopen_ok(st, "t", 0);
    ctl(st, "tear", 0);
    ctl(st, "crash_at", 1);
    RC(TS_ERR_IO, VT->write(f, 0, "nothing", 7));
    OK(VT->file_close(f));
    st = reopen(st, NULL);
    expect_str(st, "t", "01abc567WXYZ");
    store_close(st);
    fx_done();
}
END_TEST

/* write_sync makes its own range durable and nothing else: unsynced writes
 * before it (inside the range and around it) are still undone by a power
 * loss, the range survives it, and a crash in write_sync tears it. */
START_TEST(test_write_sync_power_loss)
{
    fx_init(_i);
    void *st = store_open();
    void *f = fopen_ok(st, "w", TS_OPEN_CREATE);
    unsigned char *b = NULL;
    ck_assert_int_eq(posix_memalign((void **)&b, 4096, 4 * 4096), 0);
    memset(b, 's', 4 * 4096);
    OK(VT->write(f, 0, b, 4 * 4096));
    OK(VT->sync(f, TS_SYNC_DATA));
    OK(VT->sync_dir(st));
    put(f, 10, "before");            /* unsynced, block 0: undone */
    put(f, 4096 - 3, "straddle");    /* unsynced, blocks 0-1: its block-1 part is overwritten */
    put(f, 2 * 4096 + 4090, "12345678901234"); /* unsynced, blocks 2-3: its block-3 part undone */
    memset(b, 'D', 2 * 4096);
    OK(VT->write_sync(f, 4096, b, 2 * 4096));
    put(f, 3 * 4096 + 100, "after"); /* unsynced, after it: undone */
    ctl(st, "power_loss", 0);
    OK(VT->file_close(f));
    st = reopen(st, NULL);
    unsigned char *want = malloc(4 * 4096);
    memset(want, 's', 4 * 4096);
    memset(want + 4096, 'D', 2 * 4096);
    expect_file(st, "w", want, 4 * 4096);

    /* a crash in write_sync with tear K: its first K bytes survive */
    f = fopen_ok(st, "w", 0);
    memset(b, 'T', 4096);
    ctl(st, "tear", 100);
    ctl(st, "crash_at", 1);
    RC(TS_ERR_IO, VT->write_sync(f, 0, b, 4096));
    OK(VT->file_close(f));
    st = reopen(st, NULL);
    memset(want, 'T', 100);
    expect_file(st, "w", want, 4 * 4096);
    free(want);
    free(b);
    store_close(st);
    fx_done();
}
END_TEST

START_TEST(test_namespace_revert)
{
    fx_init(_i);
    for (int dirsync = 0; dirsync <= 1; dirsync++) {
        void *st = store_open();
        make(st, "a", "A");
        make(st, "d", "D");
        make(st, "r", "R");
        OK(VT->sync_dir(st));
        make(st, "b", "B");           /* create */
        OK(VT->rename(st, "a", "c")); /* rename */
        OK(VT->remove(st, "d"));      /* remove */
        OK(VT->rename(st, "b", "r")); /* rename over an existing file */
        EXPECT_LIST(st, "c,r");
        if (dirsync) OK(VT->sync_dir(st));
        ctl(st, "power_loss", 0);
        st = reopen(st, NULL);
        if (dirsync) {
            EXPECT_LIST(st, "c,r");
            expect_str(st, "c", "A");
            expect_str(st, "r", "B");
        } else {
            EXPECT_LIST(st, "a,d,r");
            expect_str(st, "a", "A");
            expect_str(st, "d", "D");
            expect_str(st, "r", "R");
        }
        /* Clean slate for the second round. */
        char names[1024];
        list_str(st, names, sizeof names);
        for (char *n = strtok(names, ","); n; n = strtok(NULL, ",")) OK(VT->remove(st, n));
        OK(VT->sync_dir(st));
        store_close(st);
    }
    fx_done();
}
END_TEST

START_TEST(test_dead_after_crash)
{
    fx_init(_i);
    void *st = store_open();
    make(st, "x", "X");
    OK(VT->sync_dir(st));
    void *f = fopen_ok(st, "x", 0);
    ctl(st, "crash_at", 1);
    RC(TS_ERR_IO, VT->sync_dir(st)); /* the crash point itself */
    ck_assert_ptr_nonnull(strstr(tsenv_errmsg(&F.env), "power loss"));
    char b[4];
    size_t got;
    uint64_t sz;
    int ex;
    void *g = NULL;
    RC(TS_ERR_IO, VT->read(f, 0, b, 1, &got));
    RC(TS_ERR_IO, VT->write(f, 0, "y", 1));
    RC(TS_ERR_IO, VT->sync(f, 0));
    RC(TS_ERR_IO, VT->size(f, &sz));
    RC(TS_ERR_IO, VT->truncate(f, 0));
    RC(TS_ERR_IO, VT->file_open(st, "x", 0, &g));
    RC(TS_ERR_IO, VT->file_open(st, "new", TS_OPEN_CREATE, &g));
    RC(TS_ERR_IO, VT->remove(st, "x"));
    RC(TS_ERR_IO, VT->rename(st, "x", "y"));
    RC(TS_ERR_IO, VT->exists(st, "x", &ex));
    RC(TS_ERR_IO, VT->sync_dir(st));
    namebag l = { .n = 0 };
    RC(TS_ERR_IO, VT->list(st, collect, &l));
    ck_assert_uint_eq(l.n, 0);
    RC(TS_ERR_IO, VT->lock(st));
    ck_assert_int_eq(ctl(st, "crashed", 0), 1);
    OK(VT->file_close(f));
    OK(VT->unlock(st));
    if (!F.b->persistent) {
        /* After restart the store works again, but handles from before
         * the restart stay dead. */
        ctl(st, "restart", 0);
        ck_assert_int_eq(ctl(st, "crashed", 0), 0);
        f = fopen_ok(st, "x", 0);
        ctl(st, "restart", 0);
        RC(TS_ERR_IO, VT->read(f, 0, b, 1, &got));
        OK(VT->file_close(f));
        expect_str(st, "x", "X");
    }
    OK(VT->close(st));
    fx_done();
}
END_TEST

/* ---- crash loop ----------------------------------------------------- */

typedef struct fexp {
    const char *name;
    const char *data;
    size_t      len;
} fexp;

#define E(n, s) { n, s, sizeof(s) - 1 }
static const fexp D0[] = { { NULL, NULL, 0 } };
static const fexp D3[] = { E("x", "aaaa"), { NULL, NULL, 0 } };
static const fexp D7[] = { E("x", "aaaa"), E("z", "yyy"), { NULL, NULL, 0 } };
static const fexp D8[] = { E("x", "aabb"), E("z", "yyy"), { NULL, NULL, 0 } };
static const fexp D10[] = { E("x", "a\0\0\0\0c"), E("z", "yyy"), { NULL, NULL, 0 } };
static const fexp D11[] = { E("x", "a\0\0\0\0c"), { NULL, NULL, 0 } };
static const fexp D13[] = { E("x", "dd\0\0\0c"), { NULL, NULL, 0 } };
static const fexp D14[] = { E("w", "dd\0\0\0c"), { NULL, NULL, 0 } };
static const fexp D17[] = { E("w", "qq"), { NULL, NULL, 0 } };

#define WORKLOAD_POINTS 17
/* What is durable once fault points 1..k have completed. */
static const fexp *const durable_after[WORKLOAD_POINTS + 1] = {
    D0, D0, D0, D3, D3, D3, D3, D7, D8, D8, D10, D11, D11, D13, D14, D14, D14, D17,
};

/* Fault point k of the workload: succeeds unless it is the crash point n. */
#define PT(k, call) do { \
        int rc_ = (call); \
        ck_assert_msg((k) == n ? rc_ == TS_ERR_IO : rc_ == TS_OK, \
                      "%s: crash at %d: point %d (%s) returned %d: %s", F.b->label, n, (k), \
                      #call, rc_, tsenv_errmsg(&F.env)); \
        if ((k) == n) return; \
    } while (0)

/* The workload: every write and sync is a fault point, numbered 1..17;
 * renames, removes, truncates and opens are not. */
static void workload(void *st, int n, void *h[4])
{
    void **fx = &h[0], **fy = &h[1], **fw = &h[2], **fq = &h[3];
    *fx = fopen_ok(st, "x", TS_OPEN_CREATE);
    PT(1, VT->write(*fx, 0, "aaaa", 4));
    PT(2, VT->sync(*fx, 0));
    PT(3, VT->sync_dir(st));
    PT(4, VT->write(*fx, 2, "bb", 2));
    *fy = fopen_ok(st, "y", TS_OPEN_CREATE);
    PT(5, VT->write(*fy, 0, "yyy", 3));
    PT(6, VT->sync(*fy, TS_SYNC_DATA));
    OK(VT->rename(st, "y", "z"));
    PT(7, VT->sync_dir(st));
    PT(8, VT->sync(*fx, 0));
    OK(VT->remove(st, "z"));
    OK(VT->truncate(*fx, 1));
    PT(9, VT->write(*fx, 5, "c", 1));
    PT(10, VT->sync(*fx, 0));
    PT(11, VT->sync_dir(st));
    OK(VT->file_close(*fx));
    *fx = NULL;
    OK(VT->rename(st, "x", "w"));
    *fw = fopen_ok(st, "w", 0);
    PT(12, VT->write(*fw, 0, "dd", 2));
    PT(13, VT->sync(*fw, 0));
    PT(14, VT->sync_dir(st));
    *fq = fopen_ok(st, "q", TS_OPEN_CREATE);
    PT(15, VT->write(*fq, 0, "qq", 2));
    PT(16, VT->sync(*fq, 0));
    OK(VT->rename(st, "q", "w"));
    PT(17, VT->sync_dir(st));
}

static void expect_state(void *st, const fexp *want, int n)
{
    char names[1024] = "";
    for (const fexp *e = want; e->name; e++) {
        if (e != want) strcat(names, ",");
        strcat(names, e->name);
    }
    char got[1024];
    list_str(st, got, sizeof got);
    ck_assert_msg(strcmp(got, names) == 0, "%s: crash at %d: files '%s', want '%s'", F.b->label,
                  n, got, names);
    for (const fexp *e = want; e->name; e++) expect_file(st, e->name, e->data, e->len);
}

START_TEST(test_crash_loop)
{
    fx_init(_i);
    /* Syncs need not reach the disk for the simulation: keep the loop fast. */
    json_t *o = json_deep_copy(F.opts);
    json_object_set_new(o, "passSync", json_false());
    const char *base = F.root;
    char root[700];
    int crashes = 0;
    /* n = WORKLOAD_POINTS + 1: no crash inside; power loss at the end. */
    for (int n = 1; n <= WORKLOAD_POINTS + 1; n++) {
        snprintf(root, sizeof root, "%s-%d", base, n);
        void *st = store_open_at(o, root);
        void *h[4] = { NULL, NULL, NULL, NULL };
        ctl(st, "reset_counters", 0);
        if (n <= WORKLOAD_POINTS) ctl(st, "crash_at", n);
        workload(st, n, h);
        if (n <= WORKLOAD_POINTS) {
            ck_assert_int_eq(ctl(st, "crashed", 0), 1);
            ck_assert_int_eq(ctl(st, "points", 0), n);
            crashes++;
        } else {
            ck_assert_int_eq(ctl(st, "points", 0), WORKLOAD_POINTS);
            ctl(st, "power_loss", 0);
        }
        for (int i = 0; i < 4; i++)
            if (h[i]) OK(VT->file_close(h[i]));
        /* What a restarted database finds. */
        if (F.b->persistent) {
            store_close(st);
            st = store_open_at(o, root);
        } else {
            ctl(st, "restart", 0);
        }
        expect_state(st, durable_after[n - 1], n);
        store_close(st);
    }
    ck_assert_int_eq(crashes, WORKLOAD_POINTS); /* every point was a crash point once */
    json_decref(o);
    fx_done();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("storage");
    TCase *tc = tcase_create("conformance");
    tcase_set_timeout(tc, 60); /* check's 4 s default is tight under sanitizers */
    tcase_add_loop_test(tc, test_roundtrip, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_truncate, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_rename, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_remove_and_missing, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_excl, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_invalid_names, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_list, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_readonly, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_persistence, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_lock, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_threads, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_model, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_options, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_write_sync, 0, NBACKENDS);
    tcase_add_loop_test(tc, test_prefetch, 0, NBACKENDS);
    suite_add_tcase(s, tc);

    TCase *tf = tcase_create("faulty");
    tcase_set_timeout(tf, 60);
    tcase_add_loop_test(tf, test_fail_write_at, FIRST_FAULTY, NBACKENDS);
    tcase_add_loop_test(tf, test_fail_sync_at, FIRST_FAULTY, NBACKENDS);
    tcase_add_loop_test(tf, test_enospc, FIRST_FAULTY, NBACKENDS);
    tcase_add_loop_test(tf, test_power_loss_data, FIRST_FAULTY, NBACKENDS);
    tcase_add_loop_test(tf, test_torn_write, FIRST_FAULTY, NBACKENDS);
    tcase_add_loop_test(tf, test_write_sync_power_loss, FIRST_FAULTY, NBACKENDS);
    tcase_add_loop_test(tf, test_namespace_revert, FIRST_FAULTY, NBACKENDS);
    tcase_add_loop_test(tf, test_dead_after_crash, FIRST_FAULTY, NBACKENDS);
    tcase_add_loop_test(tf, test_crash_loop, FIRST_FAULTY, NBACKENDS);
    suite_add_tcase(s, tf);
    return tst_run(s);
}
