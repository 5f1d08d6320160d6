/*
 * faulty - a test backend that wraps another storage backend and injects
 * I/O errors and simulated power losses, after SQLite's crash-test VFS.
 *
 * Writes go through to the inner backend at once, with an undo log: before
 * a write or truncate the bytes it overwrites (and the old size) are saved;
 * a successful sync of the file drops its log, because from then on the
 * content is durable.  Namespace changes (create, rename, remove) go to an
 * undo list that sync_dir drops.  A remove is done as a rename to a hidden
 * name (".faulty-del-<n>") and only really removed at sync_dir, so that a
 * power loss can bring the file back; a rename over an existing target
 * first moves the target aside the same way.
 *
 * A power loss replays the undo logs newest first (data, then names), so
 * the inner store holds exactly what survived; a new store over the same
 * inner directory (or "restart" for an inner backend without persistence)
 * sees that state.  Undo state lives in per-file nodes kept by current
 * name in the store, not in handles, since files may be closed and reopened
 * between the write and the crash; handles point to the node so that a
 * rename of an open file keeps its history.
 *
 * Fault points are writes and syncs (file sync and sync_dir).  Truncate,
 * create, rename and remove are not points, but their non-durable effects
 * are undone by a power loss like the rest.
 *
 * One mutex serialises every call (inner calls included), so the inner
 * backend needs no thread safety of its own.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <tostore/storage.h>

#define NAME_BUF 256
#define HIDDEN_PREFIX ".faulty-"

typedef struct undo {
    uint64_t       old_size;  /* file size before the change */
    uint64_t       off;       /* where `old` goes back */
    size_t         len;
    unsigned char *old;       /* the overwritten bytes that existed (below old_size) */
} undo;

typedef struct fnode {
    struct fnode *next;
    char          name[NAME_BUF];  /* current name in the inner store */
    int           named;           /* 0: removed for good, or detached by a crash */
    unsigned      refs;            /* open handles */
    undo         *log;             /* changes since the file's last sync */
    size_t        nlog, caplog;
} fnode;

enum { NS_CREATE, NS_RENAME, NS_REMOVE };

typedef struct nsop {
    int  kind;
    char a[NAME_BUF];      /* CREATE: name; RENAME: from; REMOVE: name */
    char b[NAME_BUF];      /* RENAME: to; REMOVE: hidden name it was moved to */
    char saved[NAME_BUF];  /* RENAME: hidden name of the replaced target, or "" */
} nsop;

typedef struct fstore {
    const ts_host         *host;
    ts_env                *env;
    const ts_storage_vtab *in;
    void                  *inner;
    int                    pass_sync;
    pthread_mutex_t        mu;
    fnode                 *nodes;
    nsop                  *ns;           /* namespace changes since the last sync_dir */
    size_t                 nns, capns;
    uint64_t               hidden_seq;
    /* fault injection; a countdown of 0 is disarmed */
    int64_t                points;
    int64_t                wsyncs;       /* write_sync calls that wrote */
    int64_t                wsync_off;    /* 1: write_sync answers TS_ERR_UNSUPPORTED */
    int64_t                prefetches;   /* prefetch hints passed on */
    int64_t                read_delay;   /* microseconds each read waits (a slow device) */
    int64_t                fail_write_left, fail_sync_left, enospc_left, crash_left;
    int64_t                tear;         /* bytes a crashing write leaves; 0 = none */
    int                    crashed;
    uint64_t               epoch;        /* bumped by restart: older handles stay dead */
} fstore;

typedef struct ffile {
    fstore  *st;
    fnode   *node;
    void    *inner;
    int      readonly;
    uint64_t epoch;
} ffile;

static int hidden(const char *name) { return strncmp(name, HIDDEN_PREFIX, strlen(HIDDEN_PREFIX)) == 0; }

static int check_name(fstore *s, const char *name)
{
    if (name && hidden(name))
        return s->host->error(s->env, TS_ERR_INVALID, "faulty: file name '%s' is reserved", name);
    if (name && strlen(name) >= NAME_BUF)
        return s->host->error(s->env, TS_ERR_INVALID, "faulty: file name longer than %d bytes",
                              NAME_BUF - 1);
    return TS_OK; /* the inner backend checks the rest */
}

/* Every operation but close/file_close/unlock goes through here. */
static int alive(fstore *s, const ffile *f)
{
    if (s->crashed || (f && f->epoch != s->epoch))
        return s->host->error(s->env, TS_ERR_IO,
                              "faulty: I/O error: the store has crashed (simulated power loss)");
    return TS_OK;
}

/* Count one fault point; 1 when it is the one that crashes the store. */
static int countdown(int64_t *left) { return *left > 0 && --*left == 0; }

/* ---- nodes ---------------------------------------------------------- */

static fnode *node_find(fstore *s, const char *name)
{
    for (fnode *n = s->nodes; n; n = n->next)
        if (n->named && strcmp(n->name, name) == 0) return n;
    return NULL;
}

static void log_clear(fstore *s, fnode *n)
{
    for (size_t i = 0; i < n->nlog; i++) s->host->free(n->log[i].old);
    s->host->free(n->log);
    n->log = NULL;
    n->nlog = n->caplog = 0;
}

/* Free a node nobody needs: no handle, and no history that still matters. */
static void node_gc(fstore *s, fnode *n)
{
    if (n->refs || (n->named && n->nlog)) return;
    for (fnode **p = &s->nodes; *p; p = &(*p)->next)
        if (*p == n) { *p = n->next; break; }
    log_clear(s, n);
    s->host->free(n);
}

static void node_rename(fstore *s, const char *from, const char *to)
{
    fnode *n = node_find(s, from);
    if (n) snprintf(n->name, sizeof n->name, "%s", to);
}

/* The file `name` is gone for good (hidden file really removed). */
static void node_drop(fstore *s, const char *name)
{
    fnode *n = node_find(s, name);
    if (!n) return;
    n->named = 0;
    node_gc(s, n);
}

/* Save what a change of [off, off+n) and the size would destroy. */
static int log_change(fstore *s, ffile *f, uint64_t off, uint64_t n)
{
    fnode *nd = f->node;
    uint64_t size = 0;
    int rc = s->in->size(f->inner, &size);
    if (rc) return rc;
    if (nd->nlog == nd->caplog) {
        size_t nc = nd->caplog ? nd->caplog * 2 : 8;
        undo *nl = s->host->realloc(nd->log, nc * sizeof *nl);
        if (!nl) return s->host->error(s->env, TS_ERR_NOMEM, "faulty: out of memory");
        nd->log = nl;
        nd->caplog = nc;
    }
    undo u = { size, off, 0, NULL };
    if (off < size) {
        uint64_t k = size - off < n ? size - off : n;
        u.old = s->host->alloc((size_t)k);
        if (!u.old) return s->host->error(s->env, TS_ERR_NOMEM, "faulty: out of memory");
        size_t got = 0;
        rc = s->in->read(f->inner, off, u.old, (size_t)k, &got);
        if (rc) { s->host->free(u.old); return rc; }
        u.len = got;
    }
    nd->log[nd->nlog++] = u;
    return TS_OK;
}

/* Bytes [off, off + n) of nd became durable (write_sync) while its other
 * changes did not: cut the range out of the older undo records (keeping
 * their order, which a power loss replays newest first) and keep the file
 * at least that long. */
static int durable_range(fstore *s, fnode *nd, uint64_t off, uint64_t n)
{
    uint64_t end = off + n;
    for (size_t i = 0; i < nd->nlog; i++) {
        undo *u = &nd->log[i];
        if (u->old_size < end) u->old_size = end;
        uint64_t ue = u->off + u->len;
        if (!u->len || ue <= off || u->off >= end) continue;
        size_t lk = u->off < off ? (size_t)(off - u->off) : 0;
        size_t rk = ue > end ? (size_t)(ue - end) : 0;
        undo right = { u->old_size, end, rk, NULL };
        if (rk) {
            if (nd->nlog == nd->caplog) {
                size_t nc = nd->caplog * 2;
                undo *nl = s->host->realloc(nd->log, nc * sizeof *nl);
                if (!nl) return s->host->error(s->env, TS_ERR_NOMEM, "faulty: out of memory");
                nd->log = nl;
                nd->caplog = nc;
                u = &nd->log[i];
            }
            right.old = s->host->alloc(rk);
            if (!right.old) return s->host->error(s->env, TS_ERR_NOMEM, "faulty: out of memory");
            memcpy(right.old, u->old + (u->len - rk), rk);
        }
        if (lk) u->len = lk;
        else {
            s->host->free(u->old);
            u->old = NULL;
            u->len = 0;
        }
        if (rk) {
            memmove(&nd->log[i + 2], &nd->log[i + 1], (nd->nlog - i - 1) * sizeof *nd->log);
            nd->log[i + 1] = right;
            nd->nlog++;
            i++;
        }
    }
    return TS_OK;
}

/* ---- namespace undo list ------------------------------------------- */

/* Reserve room for one more entry before changing anything. */
static int ns_reserve(fstore *s)
{
    if (s->nns < s->capns) return TS_OK;
    size_t nc = s->capns ? s->capns * 2 : 8;
    nsop *nn = s->host->realloc(s->ns, nc * sizeof *nn);
    if (!nn) return s->host->error(s->env, TS_ERR_NOMEM, "faulty: out of memory");
    s->ns = nn;
    s->capns = nc;
    return TS_OK;
}

static void ns_push(fstore *s, int kind, const char *a, const char *b, const char *saved)
{
    nsop *op = &s->ns[s->nns++];
    op->kind = kind;
    snprintf(op->a, sizeof op->a, "%s", a);
    snprintf(op->b, sizeof op->b, "%s", b ? b : "");
    snprintf(op->saved, sizeof op->saved, "%s", saved ? saved : "");
}

/* A hidden name not used in the inner store. */
static int hidden_name(fstore *s, char out[NAME_BUF])
{
    for (;;) {
        snprintf(out, NAME_BUF, HIDDEN_PREFIX "del-%" PRIu64, s->hidden_seq++);
        int ex = 0;
        int rc = s->in->exists(s->inner, out, &ex);
        if (rc || !ex) return rc;
    }
}

/* ---- power loss ----------------------------------------------------- */

static int write_at(fstore *s, const char *name, uint64_t off, const void *buf, size_t n,
                    const uint64_t *truncate_to)
{
    void *h = NULL;
    int rc = s->in->file_open(s->inner, name, 0, &h);
    if (rc) return rc;
    if (n) rc = s->in->write(h, off, buf, n);
    if (!rc && truncate_to) rc = s->in->truncate(h, *truncate_to);
    int rc2 = s->in->file_close(h);
    return rc ? rc : rc2;
}

/*
 * Turn the inner store into what would be on storage after a power loss
 * now: unsynced data and undirsynced names are rolled back.  `torn` (may be
 * NULL) is the write that crashes; with "tear" set its first bytes survive.
 */
static void power_loss(fstore *s, fnode *torn, uint64_t off, const void *buf, size_t n)
{
    int failures = 0;
    /* Data first, while the nodes' names are still current. */
    for (fnode *nd = s->nodes; nd; nd = nd->next) {
        if (!nd->named) continue;
        for (size_t i = nd->nlog; i-- > 0;) {
            const undo *u = &nd->log[i];
            if (write_at(s, nd->name, u->off, u->old, u->len, &u->old_size)) failures++;
        }
    }
    if (torn && torn->named && s->tear > 0) {
        size_t k = (uint64_t)s->tear < n ? (size_t)s->tear : n;
        if (write_at(s, torn->name, off, buf, k, NULL)) failures++;
    }
    /* Then names, newest first, so that chains (create, rename, remove)
     * unwind in order. */
    for (size_t i = s->nns; i-- > 0;) {
        const nsop *op = &s->ns[i];
        int rc = TS_OK;
        switch (op->kind) {
        case NS_CREATE:
            rc = s->in->remove(s->inner, op->a);
            break;
        case NS_RENAME:
            rc = s->in->rename(s->inner, op->b, op->a);
            if (!rc && op->saved[0]) rc = s->in->rename(s->inner, op->saved, op->b);
            break;
        case NS_REMOVE:
            rc = s->in->rename(s->inner, op->b, op->a);
            break;
        }
        if (rc) failures++;
    }
    s->nns = 0;
    /* Open handles are dead from now on: detach every node. */
    for (fnode *nd = s->nodes, *next; nd; nd = next) {
        next = nd->next;
        log_clear(s, nd);
        nd->named = 0;
        node_gc(s, nd);
    }
    s->crashed = 1;
    if (failures)
        s->host->log(s->env, TS_LOG_WARN,
                     "faulty: %d step(s) of the power-loss rollback failed in the inner store",
                     failures);
}

static int crash_now(fstore *s, fnode *torn, uint64_t off, const void *buf, size_t n)
{
    power_loss(s, torn, off, buf, n);
    return s->host->error(s->env, TS_ERR_IO,
                          "faulty: I/O error: simulated power loss at fault point %" PRId64,
                          s->points);
}

/* ---- the store ------------------------------------------------------ */

static int parse_opts(const ts_module_args *a, const char **inner, const ts_opts **inner_opts,
                      int *pass_sync)
{
    const ts_host *h = a->host;
    const char *key;
    for (size_t i = 0; h->opt_key_at(a->opts, i, &key) == TS_OK; i++)
        if (strcmp(key, "inner") && strcmp(key, "innerOptions") && strcmp(key, "passSync"))
            return h->error(a->env, TS_ERR_CONFIG, "faulty: unknown option '%s'", key);
    int rc = h->opt_string(a->env, a->opts, "inner", inner);
    if (rc && rc != TS_ERR_NOT_FOUND)
        return h->error(a->env, TS_ERR_CONFIG, "faulty: option 'inner' must be a string");
    rc = h->opt_object(a->env, a->opts, "innerOptions", inner_opts);
    if (rc && rc != TS_ERR_NOT_FOUND)
        return h->error(a->env, TS_ERR_CONFIG, "faulty: option 'innerOptions' must be an object");
    rc = h->opt_bool(a->env, a->opts, "passSync", pass_sync);
    if (rc && rc != TS_ERR_NOT_FOUND)
        return h->error(a->env, TS_ERR_CONFIG, "faulty: option 'passSync' must be true or false");
    return TS_OK;
}

static int f_open(const ts_module_args *a, const char *root, void **out)
{
    const ts_host *h = a->host;
    *out = NULL;
    const char *inner = "posix";
    const ts_opts *inner_opts = NULL;
    int pass_sync = 1;
    int rc = parse_opts(a, &inner, &inner_opts, &pass_sync);
    if (rc) return rc;
    const ts_module *m = NULL;
    void *state = NULL;
    rc = h->module_find(a->env, TS_KIND_STORAGE, inner, &m, &state);
    if (rc)
        return h->error(a->env, TS_ERR_CONFIG,
                        "faulty: inner storage backend '%s' is not loaded", inner);
    fstore *s = h->calloc(1, sizeof *s);
    if (!s) return h->error(a->env, TS_ERR_NOMEM, "faulty: out of memory");
    s->host = h;
    s->env = a->env;
    s->in = m->vtab;
    s->pass_sync = pass_sync;
    ts_module_args ia = { sizeof ia, h, a->env, inner_opts, state };
    rc = s->in->open(&ia, root, &s->inner);
    if (rc) {
        h->free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return TS_OK;
}

static int f_close(void *store)
{
    fstore *s = store;
    if (!s) return TS_OK;
    int rc = s->in->close(s->inner);
    while (s->nodes) {
        fnode *n = s->nodes;
        s->nodes = n->next;
        log_clear(s, n);
        s->host->free(n);
    }
    s->host->free(s->ns);
    pthread_mutex_destroy(&s->mu);
    s->host->free(s);
    return rc;
}

/* Names collected from the inner store's list. */
typedef struct namelist {
    const ts_host *host;
    int            want_hidden;  /* 1: only hidden names; 0: only visible ones */
    char         **v;
    size_t         n, cap;
} namelist;

static int collect(void *ctx, const char *name)
{
    namelist *l = ctx;
    if (hidden(name) != l->want_hidden) return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        char **nv = l->host->realloc(l->v, nc * sizeof *nv);
        if (!nv) return TS_ERR_NOMEM;
        l->v = nv;
        l->cap = nc;
    }
    size_t len = strlen(name) + 1;
    char *c = l->host->alloc(len);
    if (!c) return TS_ERR_NOMEM;
    memcpy(c, name, len);
    l->v[l->n++] = c;
    return 0;
}

static void namelist_free(namelist *l)
{
    for (size_t i = 0; i < l->n; i++) l->host->free(l->v[i]);
    l->host->free(l->v);
}

static int f_lock(void *store)
{
    fstore *s = store;
    pthread_mutex_lock(&s->mu);
    int rc = alive(s, NULL);
    if (!rc) rc = s->in->lock(s->inner);
    if (!rc && s->nns == 0) {
        /* Hidden files left by a process that died before sync_dir are
         * removals whose undo state died with it: finish them now that the
         * store is ours (with nothing pending, none of them is ours). */
        namelist l = { s->host, 1, NULL, 0, 0 };
        if (s->in->list(s->inner, collect, &l) == TS_OK)
            for (size_t i = 0; i < l.n; i++) s->in->remove(s->inner, l.v[i]);
        namelist_free(&l);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_unlock(void *store)
{
    fstore *s = store;
    pthread_mutex_lock(&s->mu);
    int rc = s->in->unlock(s->inner);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_file_open(void *store, const char *name, unsigned flags, void **out)
{
    fstore *s = store;
    *out = NULL;
    pthread_mutex_lock(&s->mu);
    ffile *f = NULL;
    void *ih = NULL;
    int existed = 0;
    int rc = alive(s, NULL);
    if (!rc) rc = check_name(s, name);
    if (!rc) rc = s->in->exists(s->inner, name, &existed);
    if (!rc && !existed && (flags & TS_OPEN_CREATE)) rc = ns_reserve(s);
    if (!rc) {
        f = s->host->calloc(1, sizeof *f);
        if (!f) rc = s->host->error(s->env, TS_ERR_NOMEM, "faulty: out of memory");
    }
    fnode *nd = NULL;
    if (!rc && !(nd = node_find(s, name))) {
        nd = s->host->calloc(1, sizeof *nd);
        if (!nd) rc = s->host->error(s->env, TS_ERR_NOMEM, "faulty: out of memory");
        else {
            snprintf(nd->name, sizeof nd->name, "%s", name);
            nd->named = 1;
            nd->next = s->nodes;
            s->nodes = nd;
        }
    }
    if (!rc) rc = s->in->file_open(s->inner, name, flags, &ih);
    if (rc) {
        if (nd) node_gc(s, nd);
        s->host->free(f);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    if (!existed && (flags & TS_OPEN_CREATE)) ns_push(s, NS_CREATE, name, NULL, NULL);
    nd->refs++;
    f->st = s;
    f->node = nd;
    f->inner = ih;
    f->readonly = (flags & TS_OPEN_READONLY) != 0;
    f->epoch = s->epoch;
    *out = f;
    pthread_mutex_unlock(&s->mu);
    return TS_OK;
}

static int f_file_close(void *file)
{
    ffile *f = file;
    if (!f) return TS_OK;
    fstore *s = f->st;
    pthread_mutex_lock(&s->mu);
    int rc = s->in->file_close(f->inner);
    f->node->refs--;
    node_gc(s, f->node);
    pthread_mutex_unlock(&s->mu);
    s->host->free(f);
    return rc;
}

static int f_read(void *file, uint64_t off, void *buf, size_t n, size_t *got)
{
    ffile *f = file;
    fstore *s = f->st;
    *got = 0;
    pthread_mutex_lock(&s->mu);
    int64_t delay = s->read_delay;
    int rc = alive(s, f);
    if (!rc) rc = s->in->read(f->inner, off, buf, n, got);
    pthread_mutex_unlock(&s->mu);
    if (delay) {
        struct timespec t = { (time_t)(delay / 1000000), (long)(delay % 1000000) * 1000 };
        nanosleep(&t, NULL);
    }
    return rc;
}

/* A hint: passed on (no fault point, nothing written). */
static int f_prefetch(void *file, uint64_t off, uint64_t len)
{
    ffile *f = file;
    fstore *s = f->st;
    pthread_mutex_lock(&s->mu);
    int rc = alive(s, f);
    if (!rc) s->prefetches++;
    if (!rc && s->in->prefetch) rc = s->in->prefetch(f->inner, off, len);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int read_only(fstore *s, ffile *f)
{
    return s->host->error(s->env, TS_ERR_INVALID, "faulty: %s was opened read-only",
                          f->node->name);
}

/* Whether f may be written now (s->mu held). */
static int writable(fstore *s, ffile *f)
{
    int rc = alive(s, f);
    return rc ? rc : f->readonly ? read_only(s, f) : TS_OK;
}

static int f_write(void *file, uint64_t off, const void *buf, size_t n)
{
    ffile *f = file;
    fstore *s = f->st;
    pthread_mutex_lock(&s->mu);
    int rc = writable(s, f);
    if (rc) goto out;
    s->points++;
    int crash = countdown(&s->crash_left);
    int eio = countdown(&s->fail_write_left);
    int nospc = countdown(&s->enospc_left);
    if (crash)
        rc = crash_now(s, f->node, off, buf, n);
    else if (eio)
        rc = s->host->error(s->env, TS_ERR_IO, "faulty: injected I/O error (EIO) writing %s",
                            f->node->name);
    else if (nospc)
        rc = s->host->error(s->env, TS_ERR_IO,
                            "faulty: writing %s: No space left on device (injected ENOSPC)",
                            f->node->name);
    else {
        rc = log_change(s, f, off, n);
        if (!rc) rc = s->in->write(f->inner, off, buf, n);
    }
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_sync(void *file, unsigned flags)
{
    ffile *f = file;
    fstore *s = f->st;
    pthread_mutex_lock(&s->mu);
    int rc = alive(s, f);
    if (rc) goto out;
    s->points++;
    int crash = countdown(&s->crash_left);
    int eio = countdown(&s->fail_sync_left);
    if (crash)
        rc = crash_now(s, NULL, 0, NULL, 0);
    else if (eio)
        rc = s->host->error(s->env, TS_ERR_IO, "faulty: injected I/O error (EIO) syncing %s",
                            f->node->name);
    else {
        if (s->pass_sync) rc = s->in->sync(f->inner, flags);
        if (!rc) log_clear(s, f->node); /* the content is durable now */
    }
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* A write durable on return, and only its own range (the file's other
 * changes stay undone by a power loss): one fault point, where a crash
 * tears it like a write's.  Whole 4 KiB blocks from an aligned buffer
 * only (TS_ERR_INVALID otherwise), as posix's O_DIRECT needs. */
static int f_write_sync(void *file, uint64_t off, const void *buf, size_t n)
{
    ffile *f = file;
    fstore *s = f->st;
    pthread_mutex_lock(&s->mu);
    int rc = writable(s, f);
    if (rc) goto out;
    if (s->wsync_off) {
        rc = TS_ERR_UNSUPPORTED;
        goto out;
    }
    if (off % 4096 || n % 4096 || (uintptr_t)buf % 4096) {
        rc = s->host->error(s->env, TS_ERR_INVALID,
                            "faulty: write_sync of %s at %" PRIu64 ", %zu bytes: not whole "
                            "aligned 4 KiB blocks", f->node->name, off, n);
        goto out;
    }
    /* A sync point for injected errors (the contract makes any failure a
     * failed sync); an armed write error or ENOSPC goes to the next plain
     * write (the kernel calls write_sync only over blocks the file already
     * has, where a file system without copy-on-write cannot run out). */
    s->points++;
    int crash = countdown(&s->crash_left);
    int eio = countdown(&s->fail_sync_left);
    if (crash)
        rc = crash_now(s, f->node, off, buf, n);
    else if (eio)
        rc = s->host->error(s->env, TS_ERR_IO, "faulty: injected I/O error (EIO) in write_sync "
                            "of %s", f->node->name);
    else {
        rc = s->in->write(f->inner, off, buf, n);
        if (!rc) rc = durable_range(s, f->node, off, n);
        if (!rc) s->wsyncs++;
        if (!rc && s->pass_sync) rc = s->in->sync(f->inner, TS_SYNC_DATA);
    }
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_size(void *file, uint64_t *out)
{
    ffile *f = file;
    fstore *s = f->st;
    pthread_mutex_lock(&s->mu);
    int rc = alive(s, f);
    if (!rc) rc = s->in->size(f->inner, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_truncate(void *file, uint64_t size)
{
    ffile *f = file;
    fstore *s = f->st;
    pthread_mutex_lock(&s->mu);
    int rc = writable(s, f);
    if (!rc) rc = log_change(s, f, size, UINT64_MAX - size);
    if (!rc) rc = s->in->truncate(f->inner, size);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_remove(void *store, const char *name)
{
    fstore *s = store;
    char hid[NAME_BUF];
    int ex = 0;
    pthread_mutex_lock(&s->mu);
    int rc = alive(s, NULL);
    if (!rc) rc = check_name(s, name);
    if (!rc) rc = s->in->exists(s->inner, name, &ex);
    if (!rc && !ex)
        rc = s->host->error(s->env, TS_ERR_NOT_FOUND, "faulty: remove %s: no such file", name);
    if (!rc) rc = ns_reserve(s);
    if (!rc) rc = hidden_name(s, hid);
    /* Moved aside, not removed, until sync_dir makes the removal durable. */
    if (!rc) rc = s->in->rename(s->inner, name, hid);
    if (!rc) {
        node_rename(s, name, hid);
        ns_push(s, NS_REMOVE, name, hid, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_rename(void *store, const char *from, const char *to)
{
    fstore *s = store;
    char saved[NAME_BUF] = "";
    int ex = 0, tex = 0;
    pthread_mutex_lock(&s->mu);
    int rc = alive(s, NULL);
    if (!rc) rc = check_name(s, from);
    if (!rc) rc = check_name(s, to);
    if (!rc) rc = s->in->exists(s->inner, from, &ex);
    if (!rc) rc = s->in->exists(s->inner, to, &tex);
    if (!rc && !ex)
        rc = s->host->error(s->env, TS_ERR_NOT_FOUND, "faulty: rename %s to %s: no such file",
                            from, to);
    if (rc || strcmp(from, to) == 0) goto out;
    if ((rc = ns_reserve(s))) goto out;
    if (tex) {
        /* Keep the replaced target restorable. */
        if ((rc = hidden_name(s, saved))) goto out;
        if ((rc = s->in->rename(s->inner, to, saved))) goto out;
        node_rename(s, to, saved);
    }
    rc = s->in->rename(s->inner, from, to);
    if (rc) {
        if (tex && s->in->rename(s->inner, saved, to) == TS_OK) node_rename(s, saved, to);
        goto out;
    }
    node_rename(s, from, to);
    ns_push(s, NS_RENAME, from, to, saved);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_exists(void *store, const char *name, int *out)
{
    fstore *s = store;
    *out = 0;
    pthread_mutex_lock(&s->mu);
    int rc = alive(s, NULL);
    if (!rc) rc = check_name(s, name);
    if (!rc) rc = s->in->exists(s->inner, name, out);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_sync_dir(void *store)
{
    fstore *s = store;
    pthread_mutex_lock(&s->mu);
    int rc = alive(s, NULL);
    if (rc) goto out;
    s->points++;
    int crash = countdown(&s->crash_left);
    int eio = countdown(&s->fail_sync_left);
    if (crash) { rc = crash_now(s, NULL, 0, NULL, 0); goto out; }
    if (eio) {
        rc = s->host->error(s->env, TS_ERR_IO, "faulty: injected I/O error (EIO) syncing the directory");
        goto out;
    }
    if (s->pass_sync && (rc = s->in->sync_dir(s->inner))) goto out;
    /* Removals are durable: drop the files kept aside for undo.  A failure
     * here only leaves a hidden file that the next lock() cleans up. */
    for (size_t i = 0; i < s->nns; i++) {
        const char *gone = s->ns[i].kind == NS_REMOVE ? s->ns[i].b
                         : s->ns[i].kind == NS_RENAME && s->ns[i].saved[0] ? s->ns[i].saved
                         : NULL;
        if (!gone) continue;
        s->in->remove(s->inner, gone);
        node_drop(s, gone);
    }
    s->nns = 0;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int f_list(void *store, int (*cb)(void *ctx, const char *name), void *ctx)
{
    fstore *s = store;
    namelist l = { s->host, 0, NULL, 0, 0 };
    pthread_mutex_lock(&s->mu);
    int rc = alive(s, NULL);
    if (!rc) rc = s->in->list(s->inner, collect, &l);
    pthread_mutex_unlock(&s->mu);
    if (rc == TS_ERR_NOMEM) s->host->error(s->env, rc, "faulty: out of memory");
    /* cb runs without the mutex, so it may call back into the store. */
    for (size_t i = 0; !rc && i < l.n; i++) rc = cb(ctx, l.v[i]);
    namelist_free(&l);
    return rc;
}

static int f_control(void *store, const char *op, int64_t arg, int64_t *out)
{
    fstore *s = store;
    int rc = TS_OK;
    if (!op) return s->host->error(s->env, TS_ERR_INVALID, "faulty: control: no op");
    pthread_mutex_lock(&s->mu);
    int64_t *countdown_of = strcmp(op, "fail_write_at") == 0 ? &s->fail_write_left
                          : strcmp(op, "fail_sync_at") == 0  ? &s->fail_sync_left
                          : strcmp(op, "enospc_at") == 0     ? &s->enospc_left
                          : strcmp(op, "crash_at") == 0      ? &s->crash_left
                          : strcmp(op, "tear") == 0          ? &s->tear
                          : strcmp(op, "write_sync_off") == 0 ? &s->wsync_off
                          : strcmp(op, "read_delay_us") == 0 ? &s->read_delay
                          : NULL;
    if (countdown_of) {
        if (arg < 0) rc = s->host->error(s->env, TS_ERR_RANGE, "faulty: %s: negative count", op);
        else *countdown_of = arg;
    } else if (strcmp(op, "power_loss") == 0) {
        if (!s->crashed) power_loss(s, NULL, 0, NULL, 0);
    } else if (strcmp(op, "restart") == 0) {
        /* Come back up after a power loss (taking one now if needed):
         * handles opened before stay dead, new ones see what survived. */
        if (!s->crashed) power_loss(s, NULL, 0, NULL, 0);
        s->crashed = 0;
        s->epoch++;
    } else if (strcmp(op, "points") == 0) {
        if (out) *out = s->points;
    } else if (strcmp(op, "write_syncs") == 0) {
        if (out) *out = s->wsyncs;
    } else if (strcmp(op, "prefetches") == 0) {
        if (out) *out = s->prefetches;
    } else if (strcmp(op, "crashed") == 0) {
        if (out) *out = s->crashed;
    } else if (strcmp(op, "reset_counters") == 0) {
        s->points = 0;
    } else {
        rc = s->host->error(s->env, TS_ERR_UNSUPPORTED, "faulty: unknown control '%s'", op);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static const ts_storage_vtab faulty_vtab = {
    .struct_size = sizeof(ts_storage_vtab),
    .open = f_open,
    .close = f_close,
    .lock = f_lock,
    .unlock = f_unlock,
    .file_open = f_file_open,
    .file_close = f_file_close,
    .read = f_read,
    .write = f_write,
    .sync = f_sync,
    .write_sync = f_write_sync,
    .prefetch = f_prefetch,
    .size = f_size,
    .truncate = f_truncate,
    .remove = f_remove,
    .rename = f_rename,
    .exists = f_exists,
    .sync_dir = f_sync_dir,
    .list = f_list,
    .control = f_control,
};

static const ts_module faulty_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_STORAGE,
    .name = "faulty",
    .version = "1.0.0",
    .flags = TS_MODULE_THREAD_SAFE,
    .vtab_size = sizeof(ts_storage_vtab),
    .vtab = &faulty_vtab,
};

static const ts_module *const faulty_modules[] = { &faulty_module, NULL };

static const ts_plugin faulty_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "faulty",
    .version = "1.0.0",
    .init = NULL,
    .fini = NULL,
    .modules = faulty_modules,
};

TS_PLUGIN_DEFINE(faulty_plugin)
