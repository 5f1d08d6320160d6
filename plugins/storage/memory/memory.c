/*
 * memory - an ephemeral storage backend: every file lives in RAM inside the
 * store instance and vanishes when the store is closed.  For tests and for
 * throw-away databases.
 *
 * Each store instance is its own world: two instances opened on the same
 * root share nothing, so lock() always succeeds (there is nobody to
 * exclude).  Files behave like POSIX inodes: a handle keeps working on a
 * file that was removed or replaced by rename, until it is closed.
 * One mutex per store guards the name table and all file contents.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <tostore/storage.h>

#define NAME_MAX_BYTES 255

typedef struct mnode {
    char           name[NAME_MAX_BYTES + 1];
    unsigned char *data;
    size_t         size, cap;
    unsigned       refs;    /* open handles */
    int            linked;  /* still in the name table */
} mnode;

typedef struct mstore {
    const ts_host  *host;
    ts_env         *env;
    pthread_mutex_t mu;
    mnode         **nodes;  /* the name table: linked nodes only */
    size_t          n, cap;
} mstore;

typedef struct mfile {
    mstore *st;
    mnode  *node;
    int     readonly;
} mfile;

static int check_name(mstore *s, const char *name)
{
    if (!name || !*name)
        return s->host->error(s->env, TS_ERR_INVALID, "memory: empty file name");
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (n >= NAME_MAX_BYTES)
            return s->host->error(s->env, TS_ERR_INVALID, "memory: file name longer than %d bytes",
                                  NAME_MAX_BYTES);
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return s->host->error(s->env, TS_ERR_INVALID,
                                  "memory: invalid file name '%s' (allowed: A-Z a-z 0-9 _ . -)",
                                  name);
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return s->host->error(s->env, TS_ERR_INVALID, "memory: file name '%s' is reserved", name);
    return TS_OK;
}

static size_t find(mstore *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->nodes[i]->name, name) == 0) return i;
    return (size_t)-1;
}

static void node_free(mstore *s, mnode *nd)
{
    s->host->free(nd->data);
    s->host->free(nd);
}

/* Take node i out of the name table; freed now unless a handle holds it. */
static void unlink_at(mstore *s, size_t i)
{
    mnode *nd = s->nodes[i];
    s->nodes[i] = s->nodes[--s->n];
    nd->linked = 0;
    if (!nd->refs) node_free(s, nd);
}

static int no_options(const ts_module_args *a)
{
    const char *key;
    if (a->host->opt_key_at(a->opts, 0, &key) == TS_OK)
        return a->host->error(a->env, TS_ERR_CONFIG, "memory: unknown option '%s'", key);
    return TS_OK;
}

static int m_open(const ts_module_args *a, const char *root, void **out)
{
    *out = NULL;
    int rc = no_options(a);
    if (rc) return rc;
    (void)root; /* nothing on disk */
    mstore *s = a->host->calloc(1, sizeof *s);
    if (!s) return a->host->error(a->env, TS_ERR_NOMEM, "memory: out of memory");
    s->host = a->host;
    s->env = a->env;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return TS_OK;
}

static int m_close(void *store)
{
    mstore *s = store;
    if (!s) return TS_OK;
    /* Every handle is closed by contract, so every node is linked. */
    for (size_t i = 0; i < s->n; i++) node_free(s, s->nodes[i]);
    s->host->free(s->nodes);
    pthread_mutex_destroy(&s->mu);
    s->host->free(s);
    return TS_OK;
}

static int m_lock(void *store) { (void)store; return TS_OK; }
static int m_unlock(void *store) { (void)store; return TS_OK; }

static int m_file_open(void *store, const char *name, unsigned flags, void **out)
{
    mstore *s = store;
    *out = NULL;
    int rc = check_name(s, name);
    if (rc) return rc;
    mfile *f = s->host->calloc(1, sizeof *f);
    if (!f) return s->host->error(s->env, TS_ERR_NOMEM, "memory: out of memory");
    pthread_mutex_lock(&s->mu);
    size_t i = find(s, name);
    mnode *nd = NULL;
    if (i != (size_t)-1) {
        if ((flags & TS_OPEN_CREATE) && (flags & TS_OPEN_EXCL)) {
            rc = s->host->error(s->env, TS_ERR_INVALID, "memory: %s already exists", name);
            goto out;
        }
        nd = s->nodes[i];
    } else {
        if (!(flags & TS_OPEN_CREATE)) {
            rc = s->host->error(s->env, TS_ERR_NOT_FOUND, "memory: %s: no such file", name);
            goto out;
        }
        if (s->n == s->cap) {
            size_t nc = s->cap ? s->cap * 2 : 16;
            mnode **nn = s->host->realloc(s->nodes, nc * sizeof *nn);
            if (!nn) { rc = TS_ERR_NOMEM; goto out; }
            s->nodes = nn;
            s->cap = nc;
        }
        nd = s->host->calloc(1, sizeof *nd);
        if (!nd) { rc = TS_ERR_NOMEM; goto out; }
        snprintf(nd->name, sizeof nd->name, "%s", name);
        nd->linked = 1;
        s->nodes[s->n++] = nd;
    }
    nd->refs++;
    f->st = s;
    f->node = nd;
    f->readonly = (flags & TS_OPEN_READONLY) != 0;
    *out = f;
out:
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        s->host->free(f);
        if (rc == TS_ERR_NOMEM) s->host->error(s->env, rc, "memory: out of memory");
    }
    return rc;
}

static int m_file_close(void *file)
{
    mfile *f = file;
    if (!f) return TS_OK;
    mstore *s = f->st;
    pthread_mutex_lock(&s->mu);
    mnode *nd = f->node;
    if (--nd->refs == 0 && !nd->linked) node_free(s, nd);
    pthread_mutex_unlock(&s->mu);
    s->host->free(f);
    return TS_OK;
}

static int m_read(void *file, uint64_t off, void *buf, size_t n, size_t *got)
{
    mfile *f = file;
    pthread_mutex_lock(&f->st->mu);
    mnode *nd = f->node;
    size_t k = 0;
    if (off < nd->size) {
        k = nd->size - (size_t)off;
        if (k > n) k = n;
        memcpy(buf, nd->data + off, k);
    }
    pthread_mutex_unlock(&f->st->mu);
    *got = k;
    return TS_OK;
}

/* Make room for `size` bytes; new bytes up to `size` are zero.
 * Called with the mutex held. */
static int ensure(mstore *s, mnode *nd, uint64_t size)
{
    if (size > (uint64_t)(SIZE_MAX / 2))
        return s->host->error(s->env, TS_ERR_RANGE, "memory: %s: size %llu too large", nd->name,
                              (unsigned long long)size);
    if (size > nd->cap) {
        size_t nc = nd->cap ? nd->cap : 4096;
        while (nc < size) nc *= 2;
        unsigned char *d = s->host->realloc(nd->data, nc);
        if (!d) return s->host->error(s->env, TS_ERR_NOMEM, "memory: %s: out of memory", nd->name);
        nd->data = d;
        nd->cap = nc;
    }
    if (size > nd->size) memset(nd->data + nd->size, 0, (size_t)size - nd->size);
    return TS_OK;
}

static int m_write(void *file, uint64_t off, const void *buf, size_t n)
{
    mfile *f = file;
    mstore *s = f->st;
    if (f->readonly)
        return s->host->error(s->env, TS_ERR_INVALID, "memory: %s was opened read-only",
                              f->node->name);
    if (n > UINT64_MAX - off)
        return s->host->error(s->env, TS_ERR_RANGE, "memory: write range out of bounds");
    if (n == 0) return TS_OK;
    pthread_mutex_lock(&s->mu);
    mnode *nd = f->node;
    int rc = TS_OK;
    if (off + n > nd->size) {
        rc = ensure(s, nd, off + n);
        if (!rc) nd->size = (size_t)(off + n);
    }
    if (!rc) memcpy(nd->data + off, buf, n);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int m_sync(void *file, unsigned flags) { (void)file; (void)flags; return TS_OK; }

static int m_size(void *file, uint64_t *out)
{
    mfile *f = file;
    pthread_mutex_lock(&f->st->mu);
    *out = f->node->size;
    pthread_mutex_unlock(&f->st->mu);
    return TS_OK;
}

static int m_truncate(void *file, uint64_t size)
{
    mfile *f = file;
    mstore *s = f->st;
    if (f->readonly)
        return s->host->error(s->env, TS_ERR_INVALID, "memory: %s was opened read-only",
                              f->node->name);
    pthread_mutex_lock(&s->mu);
    int rc = ensure(s, f->node, size); /* zero-fills when extending */
    if (!rc) f->node->size = (size_t)size;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int m_remove(void *store, const char *name)
{
    mstore *s = store;
    int rc = check_name(s, name);
    if (rc) return rc;
    pthread_mutex_lock(&s->mu);
    size_t i = find(s, name);
    if (i == (size_t)-1)
        rc = s->host->error(s->env, TS_ERR_NOT_FOUND, "memory: remove %s: no such file", name);
    else
        unlink_at(s, i);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int m_rename(void *store, const char *from, const char *to)
{
    mstore *s = store;
    int rc = check_name(s, from);
    if (!rc) rc = check_name(s, to);
    if (rc) return rc;
    pthread_mutex_lock(&s->mu);
    size_t i = find(s, from);
    if (i == (size_t)-1) {
        rc = s->host->error(s->env, TS_ERR_NOT_FOUND, "memory: rename %s to %s: no such file",
                            from, to);
    } else if (strcmp(from, to) != 0) {
        mnode *nd = s->nodes[i];
        size_t j = find(s, to);
        if (j != (size_t)-1) unlink_at(s, j); /* may move nd within the table: nd kept */
        snprintf(nd->name, sizeof nd->name, "%s", to);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int m_exists(void *store, const char *name, int *out)
{
    mstore *s = store;
    *out = 0;
    int rc = check_name(s, name);
    if (rc) return rc;
    pthread_mutex_lock(&s->mu);
    *out = find(s, name) != (size_t)-1;
    pthread_mutex_unlock(&s->mu);
    return TS_OK;
}

static int m_sync_dir(void *store) { (void)store; return TS_OK; }

static int m_list(void *store, int (*cb)(void *ctx, const char *name), void *ctx)
{
    mstore *s = store;
    /* Copy the names first so that cb may call back into the store (e.g.
     * remove what it finds) without deadlocking on the mutex. */
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    char (*names)[NAME_MAX_BYTES + 1] = s->host->alloc((n ? n : 1) * sizeof *names);
    if (names)
        for (size_t i = 0; i < n; i++) memcpy(names[i], s->nodes[i]->name, sizeof names[i]);
    pthread_mutex_unlock(&s->mu);
    if (!names) return s->host->error(s->env, TS_ERR_NOMEM, "memory: out of memory");
    int rc = TS_OK;
    for (size_t i = 0; i < n && rc == 0; i++) rc = cb(ctx, names[i]);
    s->host->free(names);
    return rc;
}

static const ts_storage_vtab memory_vtab = {
    .struct_size = sizeof(ts_storage_vtab),
    .open = m_open,
    .close = m_close,
    .lock = m_lock,
    .unlock = m_unlock,
    .file_open = m_file_open,
    .file_close = m_file_close,
    .read = m_read,
    .write = m_write,
    .sync = m_sync,
    .size = m_size,
    .truncate = m_truncate,
    .remove = m_remove,
    .rename = m_rename,
    .exists = m_exists,
    .sync_dir = m_sync_dir,
    .list = m_list,
    .control = NULL,
};

static const ts_module memory_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_STORAGE,
    .name = "memory",
    .version = "1.0.0",
    .flags = TS_MODULE_THREAD_SAFE,
    .vtab_size = sizeof(ts_storage_vtab),
    .vtab = &memory_vtab,
};

static const ts_module *const memory_modules[] = { &memory_module, NULL };

static const ts_plugin memory_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "memory",
    .version = "1.0.0",
    .init = NULL,
    .fini = NULL,
    .modules = memory_modules,
};

TS_PLUGIN_DEFINE(memory_plugin)
