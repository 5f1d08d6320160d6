#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/env.h"
#include "config/opts.h"
#include "io/store.h"

int tsstore_open(ts_env *env, tsreg *reg, const char *name, const json_t *opts,
                 const char *root, tsstore **out)
{
    *out = NULL;
    const tsreg_module *m = tsreg_lookup(reg, TS_KIND_STORAGE, name);
    if (!m && tsreg_declared(reg, TS_KIND_STORAGE, name)) {
        tsenv_error_prefix(env, "storage.backend"); /* its load failure */
        return TS_ERR_PLUGIN;
    }
    if (!m)
        return tsenv_error(env, TS_ERR_CONFIG,
                           "storage.backend: no storage module named '%s' is loaded", name);
    tsstore *st = calloc(1, sizeof *st);
    if (!st) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    st->vt = m->vtab;
    st->mod = m;
    ts_module_args a = { sizeof a, tsenv_host(), env, tsopts_wrap(opts), m->plugin_state };
    tsenv_clear(env);
    int rc = st->vt->open(&a, root, &st->h);
    if (rc) {
        if (!*tsenv_errmsg(env)) tsenv_error(env, rc, "cannot open");
        if (rc == TS_ERR_CONFIG || rc == TS_ERR_VALIDATION)
            tsenv_error_prefix(env, "storage.options");
        else
            tsenv_error_prefix(env, "storage '%s' at %s", name, root);
        free(st);
        return rc;
    }
    rc = st->vt->lock(st->h);
    if (rc) {
        if (!*tsenv_errmsg(env)) tsenv_error(env, rc, "cannot lock");
        tsenv_error_prefix(env, "%s", root);
        st->vt->close(st->h);
        free(st);
        return rc;
    }
    st->locked = 1;
    *out = st;
    return TS_OK;
}

int tsstore_close(tsstore *st)
{
    if (!st) return TS_OK;
    if (st->locked) st->vt->unlock(st->h);
    int rc = st->vt->close(st->h);
    free(st);
    return rc;
}

int tsfile_open(tsstore *st, const char *name, unsigned flags, tsfile *out)
{
    out->st = st;
    out->h = NULL;
    return st->vt->file_open(st->h, name, flags, &out->h);
}

int tsfile_close(tsfile *f)
{
    if (!f || !f->h) return TS_OK;
    int rc = f->st->vt->file_close(f->h);
    f->h = NULL;
    return rc;
}

int tsfile_read(tsfile *f, uint64_t off, void *buf, size_t n, size_t *got)
{
    size_t g = 0;
    int rc = f->st->vt->read(f->h, off, buf, n, &g);
    if (rc) return rc;
    if (got) { *got = g; return TS_OK; }
    return g == n ? TS_OK : TS_ERR_CORRUPT;
}

int tsfile_write(tsfile *f, uint64_t off, const void *buf, size_t n)
{
    return f->st->vt->write(f->h, off, buf, n);
}

int tsfile_sync(tsfile *f, unsigned flags) { return f->st->vt->sync(f->h, flags); }

int tsfile_write_sync(tsfile *f, uint64_t off, const void *buf, size_t n)
{
    /* the kernel's zero-padded vtable copy: NULL for backends before 1.8 */
    if (!f->st->vt->write_sync) return TS_ERR_UNSUPPORTED;
    return f->st->vt->write_sync(f->h, off, buf, n);
}
void tsfile_prefetch(tsfile *f, uint64_t off, uint64_t len)
{
    if (f->st->vt->prefetch) (void)f->st->vt->prefetch(f->h, off, len); /* a hint */
}
int tsfile_size(tsfile *f, uint64_t *out) { return f->st->vt->size(f->h, out); }
int tsfile_truncate(tsfile *f, uint64_t size) { return f->st->vt->truncate(f->h, size); }

int tsstore_put_atomic(tsstore *st, const char *name, const void *buf, size_t n)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    tsfile f;
    int rc = tsfile_open(st, tmp, TS_OPEN_CREATE, &f);
    if (rc) return rc;
    rc = tsfile_truncate(&f, 0);
    if (!rc) rc = tsfile_write(&f, 0, buf, n);
    if (!rc) rc = tsfile_sync(&f, 0);
    int rc2 = tsfile_close(&f);
    if (!rc) rc = rc2;
    if (!rc) rc = st->vt->rename(st->h, tmp, name);
    if (!rc) rc = st->vt->sync_dir(st->h);
    return rc;
}

int tsstore_get(tsstore *st, const char *name, void **buf, size_t *len, size_t max)
{
    *buf = NULL;
    *len = 0;
    int ex = 0;
    int rc = st->vt->exists(st->h, name, &ex);
    if (rc) return rc;
    if (!ex) return TS_ERR_NOT_FOUND;
    tsfile f;
    if ((rc = tsfile_open(st, name, TS_OPEN_READONLY, &f))) return rc;
    uint64_t sz = 0;
    rc = tsfile_size(&f, &sz);
    if (!rc && sz > max) rc = TS_ERR_CORRUPT;
    char *b = NULL;
    if (!rc) {
        b = malloc(sz ? sz : 1);
        if (!b) rc = TS_ERR_NOMEM;
    }
    size_t got = 0;
    if (!rc) rc = tsfile_read(&f, 0, b, (size_t)sz, &got);
    tsfile_close(&f);
    if (rc) { free(b); return rc; }
    *buf = b;
    *len = got;
    return TS_OK;
}
