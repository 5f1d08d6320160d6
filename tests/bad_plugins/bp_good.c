/*
 * bp_good - the one GOOD plugin of the bad-plugin suite: two modules of
 * different kinds in one shared object, an init that allocates per-context
 * state and a fini that frees it (LeakSanitizer reports the state if fini
 * never runs).
 *
 *  - storage "bp_wrapfs" (an ABI 1.7-sized vtable, without write_sync):
 *    forwards every call to another registered backend
 *    (option "inner", default "posix") found with host->module_find, and
 *    answers control ops:
 *      "ping"   -> 42
 *      "inited" -> 1 when the plugin state from init reached the instance
 *      "opens"  -> stores opened so far with this plugin state (that is, by
 *                  this database handle: init runs once per handle)
 *      "writes" -> write() calls on this store
 *  - cipher "bp_nullcipher": copies bytes, flagged TS_MODULE_INSECURE.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <tostore/cipher.h>
#include <tostore/storage.h>

#define STATE_MAGIC 0x42504f4bu /* "BPOK" */

typedef struct bp_state {
    uint32_t         magic;
    const ts_host   *host;
    atomic_long      opens;
} bp_state;

typedef struct wstore {
    const ts_host         *host;
    ts_env                *env;
    bp_state              *ps;
    const ts_storage_vtab *in;   /* the inner backend: the kernel's padded copy */
    void                  *h;
    atomic_long            writes;
} wstore;

typedef struct wfile {
    wstore *st;
    void   *h;
} wfile;

static int w_open(const ts_module_args *a, const char *root, void **out)
{
    const ts_host *host = a->host;
    const char *inner = "posix";
    int rc = host->opt_string(a->env, a->opts, "inner", &inner);
    if (rc != TS_OK && rc != TS_ERR_NOT_FOUND) return rc;
    if (strcmp(inner, "bp_wrapfs") == 0)
        return host->error(a->env, TS_ERR_CONFIG, "bp_wrapfs: cannot wrap itself");
    const ts_module *m = NULL;
    void *inner_state = NULL;
    rc = host->module_find(a->env, TS_KIND_STORAGE, inner, &m, &inner_state);
    if (rc != TS_OK) return rc;

    wstore *s = host->calloc(1, sizeof *s);
    if (!s) return host->error(a->env, TS_ERR_NOMEM, "bp_wrapfs: out of memory");
    s->host = host;
    s->env = a->env;
    s->ps = a->plugin_state;
    s->in = m->vtab;
    ts_module_args ia = { sizeof ia, host, a->env, NULL, inner_state };
    rc = s->in->open(&ia, root, &s->h);
    if (rc != TS_OK) { host->free(s); return rc; }
    if (s->ps) atomic_fetch_add(&s->ps->opens, 1);
    *out = s;
    return TS_OK;
}

static int w_close(void *p)
{
    wstore *s = p;
    int rc = s->in->close(s->h);
    s->host->free(s);
    return rc;
}

static int w_lock(void *p) { wstore *s = p; return s->in->lock(s->h); }
static int w_unlock(void *p) { wstore *s = p; return s->in->unlock(s->h); }

static int w_file_open(void *p, const char *name, unsigned flags, void **out)
{
    wstore *s = p;
    wfile *f = s->host->alloc(sizeof *f);
    if (!f) return s->host->error(s->env, TS_ERR_NOMEM, "bp_wrapfs: out of memory");
    f->st = s;
    int rc = s->in->file_open(s->h, name, flags, &f->h);
    if (rc != TS_OK) { s->host->free(f); return rc; }
    *out = f;
    return TS_OK;
}

static int w_file_close(void *p)
{
    wfile *f = p;
    int rc = f->st->in->file_close(f->h);
    f->st->host->free(f);
    return rc;
}

static int w_read(void *p, uint64_t off, void *buf, size_t n, size_t *got)
{
    wfile *f = p;
    return f->st->in->read(f->h, off, buf, n, got);
}

static int w_write(void *p, uint64_t off, const void *buf, size_t n)
{
    wfile *f = p;
    atomic_fetch_add(&f->st->writes, 1);
    return f->st->in->write(f->h, off, buf, n);
}

static int w_sync(void *p, unsigned flags) { wfile *f = p; return f->st->in->sync(f->h, flags); }
static int w_size(void *p, uint64_t *out) { wfile *f = p; return f->st->in->size(f->h, out); }
static int w_truncate(void *p, uint64_t n) { wfile *f = p; return f->st->in->truncate(f->h, n); }
static int w_remove(void *p, const char *name) { wstore *s = p; return s->in->remove(s->h, name); }
static int w_rename(void *p, const char *from, const char *to)
{
    wstore *s = p;
    return s->in->rename(s->h, from, to);
}
static int w_exists(void *p, const char *name, int *out)
{
    wstore *s = p;
    return s->in->exists(s->h, name, out);
}
static int w_sync_dir(void *p) { wstore *s = p; return s->in->sync_dir(s->h); }
static int w_list(void *p, int (*cb)(void *ctx, const char *name), void *ctx)
{
    wstore *s = p;
    return s->in->list(s->h, cb, ctx);
}

static int w_control(void *p, const char *op, int64_t arg, int64_t *out)
{
    wstore *s = p;
    if (strcmp(op, "ping") == 0) { *out = 42; return TS_OK; }
    if (strcmp(op, "inited") == 0) {
        *out = s->ps && s->ps->magic == STATE_MAGIC;
        return TS_OK;
    }
    if (strcmp(op, "opens") == 0) { *out = s->ps ? atomic_load(&s->ps->opens) : -1; return TS_OK; }
    if (strcmp(op, "writes") == 0) { *out = atomic_load(&s->writes); return TS_OK; }
    if (s->in->control) return s->in->control(s->h, op, arg, out);
    return TS_ERR_UNSUPPORTED;
}

/* Laid out as an ABI 1.7 backend: the vtable ends before write_sync (1.8),
 * so the kernel must load it and write + sync through it. */
#define WRAPFS_VTAB_SIZE offsetof(ts_storage_vtab, write_sync)

static const ts_storage_vtab wrapfs_vtab = {
    .struct_size = WRAPFS_VTAB_SIZE,
    .open = w_open, .close = w_close, .lock = w_lock, .unlock = w_unlock,
    .file_open = w_file_open, .file_close = w_file_close,
    .read = w_read, .write = w_write, .sync = w_sync, .size = w_size, .truncate = w_truncate,
    .remove = w_remove, .rename = w_rename, .exists = w_exists, .sync_dir = w_sync_dir,
    .list = w_list, .control = w_control,
};

/* ---- bp_nullcipher: identity "encryption", insecure by flag ------------ */

static int n_create(const ts_module_args *a, const uint8_t *key, size_t key_len, void **out)
{
    if (key_len != 16)
        return a->host->error(a->env, TS_ERR_INVALID, "bp_nullcipher: key of %zu bytes", key_len);
    static const int sentinel;
    *out = (void *)&sentinel;
    return TS_OK;
}

static void n_destroy(void *st) { }

static int n_copy(void *st, const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t len,
                  uint8_t *out)
{
    if (out != in) memmove(out, in, len);
    return TS_OK;
}

static const ts_cipher_vtab nullcipher_vtab = {
    .struct_size = sizeof(ts_cipher_vtab), .key_bytes = 16, .overhead = 0,
    .create = n_create, .destroy = n_destroy, .seal = n_copy, .open = n_copy,
};

/* ---- descriptors -------------------------------------------------------- */

static int good_init(const ts_host *host, ts_env *env, void **state_out)
{
    if (host->struct_size < sizeof(ts_host) || host->abi_major != TS_ABI_MAJOR)
        return host->error(env, TS_ERR_PLUGIN, "bp_good: unexpected host table");
    bp_state *st = host->calloc(1, sizeof *st);
    if (!st) return host->error(env, TS_ERR_NOMEM, "bp_good: out of memory");
    st->magic = STATE_MAGIC;
    st->host = host;
    atomic_init(&st->opens, 0);
    *state_out = st;
    return TS_OK;
}

static void good_fini(void *state)
{
    bp_state *st = state;
    st->magic = 0;
    st->host->free(st);
}

static const ts_module wrapfs_module = {
    .struct_size = sizeof(ts_module), .kind = TS_KIND_STORAGE,
    .name = "bp_wrapfs", .version = "2.3.4", .flags = TS_MODULE_THREAD_SAFE,
    .vtab_size = WRAPFS_VTAB_SIZE, .vtab = &wrapfs_vtab,
};

static const ts_module nullcipher_module = {
    .struct_size = sizeof(ts_module), .kind = TS_KIND_CIPHER,
    .name = "bp_nullcipher", .version = "0.1.0",
    .flags = TS_MODULE_THREAD_SAFE | TS_MODULE_INSECURE,
    .vtab_size = sizeof(ts_cipher_vtab), .vtab = &nullcipher_vtab,
};

static const ts_module *const good_modules[] = { &wrapfs_module, &nullcipher_module, NULL };

static const ts_plugin good_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR, .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "bp_good", .version = "1.0.0",
    .init = good_init, .fini = good_fini,
    .modules = good_modules,
};

TS_PLUGIN_DEFINE(good_plugin)
