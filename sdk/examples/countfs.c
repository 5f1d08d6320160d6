/*
 * countfs - an example third-party storage plugin, built out of tree
 * against the installed tostore SDK (see docs/plugins.md, "Walk-through").
 *
 * countfs stores nothing itself: it wraps another storage backend, found by
 * name through host->module_find, forwards every call to it, and counts
 * what passes through.  Config:
 *
 *   "plugins": ["/path/to/countfs.so"],
 *   "storage": { "backend": "countfs",
 *                "options": { "inner": "posix",            (default "posix")
 *                             "innerOptions": { ... } } }  (given to inner)
 *
 * Control operations (ts_storage_control):
 *   "reads", "writes", "syncs"   calls of read(), write(), sync() + sync_dir()
 *   "bytesRead", "bytesWritten"  bytes moved by them
 *   "reset"                      zero every counter
 * Any other operation is passed on to the inner backend's control, so
 * countfs can sit on top of the "faulty" test backend without hiding it.
 *
 * Thread safety: the counters are atomics and every other call goes to the
 * inner backend, so countfs is as thread-safe as the backend it wraps (the
 * bundled ones are).
 */
#include <stdatomic.h>
#include <string.h>
#include <tostore/storage.h>

#define COUNTFS "countfs"

/* One open store: the inner backend's vtable and handle, and the counts. */
typedef struct cstore {
    const ts_host         *host;
    ts_env                *env;
    const ts_storage_vtab *in;   /* kernel-sized copy: later fields read as NULL */
    void                  *h;
    atomic_uint_least64_t  reads, writes, syncs, bytes_read, bytes_written;
} cstore;

/* One open file: countfs needs its store to reach the inner vtable. */
typedef struct cfile {
    cstore *st;
    void   *h;
} cfile;

/* Refuse option keys countfs does not know: a typo in tostore.json should
 * fail loudly, not be ignored. */
static int check_keys(const ts_module_args *a)
{
    const char *key;
    for (size_t i = 0; a->host->opt_key_at(a->opts, i, &key) == TS_OK; i++)
        if (strcmp(key, "inner") != 0 && strcmp(key, "innerOptions") != 0)
            return a->host->error(a->env, TS_ERR_CONFIG,
                                  COUNTFS ": unknown option '%s' (expected inner, innerOptions)",
                                  key);
    return TS_OK;
}

static int c_open(const ts_module_args *a, const char *root, void **store_out)
{
    const ts_host *host = a->host;
    int rc = check_keys(a);
    if (rc != TS_OK) return rc;

    const char *inner = "posix";
    const ts_opts *inner_opts = NULL;
    rc = host->opt_string(a->env, a->opts, "inner", &inner);
    if (rc != TS_OK && rc != TS_ERR_NOT_FOUND) return rc;
    rc = host->opt_object(a->env, a->opts, "innerOptions", &inner_opts);
    if (rc != TS_OK && rc != TS_ERR_NOT_FOUND) return rc;
    if (strcmp(inner, COUNTFS) == 0)
        return host->error(a->env, TS_ERR_CONFIG, COUNTFS ": cannot wrap itself");

    /* The inner module stays valid while this instance is open.  A name
     * that is not loaded is a mistake in the config: say which option. */
    const ts_module *mod = NULL;
    void *inner_state = NULL;
    rc = host->module_find(a->env, TS_KIND_STORAGE, inner, &mod, &inner_state);
    if (rc == TS_ERR_NOT_FOUND)
        return host->error(a->env, TS_ERR_CONFIG,
                           COUNTFS ": option 'inner': no storage module named '%s' is loaded",
                           inner);
    if (rc != TS_OK) return rc;

    cstore *s = host->calloc(1, sizeof *s);
    if (!s) return host->error(a->env, TS_ERR_NOMEM, COUNTFS ": out of memory");
    s->host = host;
    s->env = a->env;
    s->in = mod->vtab;
    /* Open the inner backend as the kernel would, with its own options and
     * the state its plugin's init stored. */
    ts_module_args ia = { sizeof ia, host, a->env, inner_opts, inner_state };
    rc = s->in->open(&ia, root, &s->h);
    if (rc != TS_OK) {
        host->free(s);
        return rc; /* the inner backend has reported the message */
    }
    *store_out = s;
    return TS_OK;
}

static int c_close(void *store)
{
    cstore *s = store;
    int rc = s->in->close(s->h);
    s->host->free(s);
    return rc;
}

static int c_lock(void *store) { cstore *s = store; return s->in->lock(s->h); }
static int c_unlock(void *store) { cstore *s = store; return s->in->unlock(s->h); }

static int c_file_open(void *store, const char *name, unsigned flags, void **file_out)
{
    cstore *s = store;
    cfile *f = s->host->alloc(sizeof *f);
    if (!f) return s->host->error(s->env, TS_ERR_NOMEM, COUNTFS ": out of memory");
    f->st = s;
    int rc = s->in->file_open(s->h, name, flags, &f->h);
    if (rc != TS_OK) {
        s->host->free(f);
        return rc;
    }
    *file_out = f;
    return TS_OK;
}

static int c_file_close(void *file)
{
    cfile *f = file;
    int rc = f->st->in->file_close(f->h);
    f->st->host->free(f);
    return rc;
}

static int c_read(void *file, uint64_t off, void *buf, size_t n, size_t *got)
{
    cfile *f = file;
    atomic_fetch_add(&f->st->reads, 1);
    int rc = f->st->in->read(f->h, off, buf, n, got);
    if (rc == TS_OK) atomic_fetch_add(&f->st->bytes_read, *got);
    return rc;
}

static int c_write(void *file, uint64_t off, const void *buf, size_t n)
{
    cfile *f = file;
    atomic_fetch_add(&f->st->writes, 1);
    int rc = f->st->in->write(f->h, off, buf, n);
    if (rc == TS_OK) atomic_fetch_add(&f->st->bytes_written, n);
    return rc;
}

static int c_sync(void *file, unsigned flags)
{
    cfile *f = file;
    atomic_fetch_add(&f->st->syncs, 1);
    return f->st->in->sync(f->h, flags);
}

static int c_size(void *file, uint64_t *size_out)
{
    cfile *f = file;
    return f->st->in->size(f->h, size_out);
}

static int c_truncate(void *file, uint64_t size)
{
    cfile *f = file;
    return f->st->in->truncate(f->h, size);
}

static int c_remove(void *store, const char *name)
{
    cstore *s = store;
    return s->in->remove(s->h, name);
}

static int c_rename(void *store, const char *from, const char *to)
{
    cstore *s = store;
    return s->in->rename(s->h, from, to);
}

static int c_exists(void *store, const char *name, int *exists_out)
{
    cstore *s = store;
    return s->in->exists(s->h, name, exists_out);
}

static int c_sync_dir(void *store)
{
    cstore *s = store;
    atomic_fetch_add(&s->syncs, 1);
    return s->in->sync_dir(s->h);
}

static int c_list(void *store, int (*cb)(void *ctx, const char *name), void *ctx)
{
    cstore *s = store;
    return s->in->list(s->h, cb, ctx);
}

static int c_control(void *store, const char *op, int64_t arg, int64_t *out)
{
    cstore *s = store;
    static const struct { const char *name; size_t off; } counters[] = {
        { "reads", offsetof(cstore, reads) },
        { "writes", offsetof(cstore, writes) },
        { "syncs", offsetof(cstore, syncs) },
        { "bytesRead", offsetof(cstore, bytes_read) },
        { "bytesWritten", offsetof(cstore, bytes_written) },
    };
    const size_t n = sizeof counters / sizeof counters[0];
    if (strcmp(op, "reset") == 0) {
        for (size_t i = 0; i < n; i++)
            atomic_store((atomic_uint_least64_t *)((char *)s + counters[i].off), 0);
        *out = 0;
        return TS_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(op, counters[i].name) == 0) {
            *out = (int64_t)atomic_load((atomic_uint_least64_t *)((char *)s + counters[i].off));
            return TS_OK;
        }
    }
    /* Not ours: the inner backend may know it (control is optional). */
    if (s->in->control) return s->in->control(s->h, op, arg, out);
    return TS_ERR_UNSUPPORTED;
}

static const ts_storage_vtab countfs_vtab = {
    .struct_size = sizeof(ts_storage_vtab),
    .open = c_open,
    .close = c_close,
    .lock = c_lock,
    .unlock = c_unlock,
    .file_open = c_file_open,
    .file_close = c_file_close,
    .read = c_read,
    .write = c_write,
    .sync = c_sync,
    .size = c_size,
    .truncate = c_truncate,
    .remove = c_remove,
    .rename = c_rename,
    .exists = c_exists,
    .sync_dir = c_sync_dir,
    .list = c_list,
    .control = c_control,
};

static const ts_module countfs_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_STORAGE,
    .name = COUNTFS,
    .version = "1.0.0",
    .flags = TS_MODULE_THREAD_SAFE,
    .vtab_size = sizeof(ts_storage_vtab),
    .vtab = &countfs_vtab,
};

static const ts_module *const countfs_modules[] = { &countfs_module, NULL };

static const ts_plugin countfs_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = COUNTFS,
    .version = "1.0.0",
    .init = NULL, /* no per-handle state needed */
    .fini = NULL,
    .modules = countfs_modules,
};

TS_PLUGIN_DEFINE(countfs_plugin)
