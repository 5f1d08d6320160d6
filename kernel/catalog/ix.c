#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/env.h"
#include "catalog/ix.h"
#include "config/opts.h"

static const tsreg_module *find(ts_env *env, tsreg *reg, const char *module)
{
    const tsreg_module *m = tsreg_lookup(reg, TS_KIND_INDEX, module);
    if (!m && tsreg_declared(reg, TS_KIND_INDEX, module))
        tsenv_error_prefix(env, "index module '%s'", module); /* its load failure */
    else if (!m)
        tsenv_error(env, TS_ERR_PLUGIN, "no index module named '%s' is loaded", module);
    return m;
}

int tsix_create(ts_env *env, tsreg *reg, const char *module, const json_t *opts, tstx *tx,
                uint64_t *root_out)
{
    const tsreg_module *m = find(env, reg, module);
    if (!m) return TS_ERR_PLUGIN;
    const ts_index_vtab *vt = m->vtab;
    ts_module_args a = { sizeof a, tsenv_host(), env, tsopts_wrap(opts), m->plugin_state };
    return vt->create(&a, (ts_txn *)tx, root_out);
}

int tsix_open(ts_env *env, tsreg *reg, const char *module, const json_t *opts, uint64_t root,
              const char *name, tsix **out)
{
    *out = NULL;
    const tsreg_module *m = find(env, reg, module);
    if (!m) return TS_ERR_PLUGIN;
    tsix *ix = calloc(1, sizeof *ix);
    if (!ix) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    ix->vt = m->vtab;
    ix->mod = m;
    ix->root = root;
    ix->env = env;
    snprintf(ix->name, sizeof ix->name, "%s", name);
    ts_module_args a = { sizeof a, tsenv_host(), env, tsopts_wrap(opts), m->plugin_state };
    int rc = ix->vt->open(&a, root, &ix->idx);
    if (rc) {
        free(ix);
        return rc;
    }
    *out = ix;
    return TS_OK;
}

void tsix_close(tsix *ix)
{
    if (!ix) return;
    ix->vt->close(ix->idx);
    free(ix);
}

int tsix_drop(tsix *ix, tstx *tx) { return ix->vt->drop(ix->idx, (ts_txn *)tx); }

int tsix_insert(tsix *ix, tstx *tx, const void *k, size_t kl, const void *v, size_t vl, int unique)
{
    return ix->vt->insert(ix->idx, (ts_txn *)tx, k, kl, v, vl, unique);
}

int tsix_remove(tsix *ix, tstx *tx, const void *k, size_t kl, const void *v, size_t vl)
{
    return ix->vt->remove(ix->idx, (ts_txn *)tx, k, kl, v, vl);
}

/* Hits of knn_emit: values appended to a growing buffer, their offsets
 * kept in val until the buffer is final. */
typedef struct knn_sink {
    const tsix *ix;
    ts_knn_hit *out;
    size_t      k, n;
    uint8_t    *buf;
    size_t      len, cap;
} knn_sink;

static int knn_put(void *ctx, float distance, const void *val, size_t vlen)
{
    knn_sink *s = ctx;
    if (s->n >= s->k)
        return tsenv_error(s->ix->env, TS_ERR_CORRUPT, "index %s: the module returned more than %zu hits",
                           s->ix->name, s->k);
    if (s->len + vlen > s->cap) {
        size_t nc = s->cap ? s->cap : 256;
        while (nc < s->len + vlen) nc *= 2;
        uint8_t *nb = realloc(s->buf, nc);
        if (!nb) return TS_ERR_NOMEM;
        s->buf = nb;
        s->cap = nc;
    }
    if (vlen) memcpy(s->buf + s->len, val, vlen);
    s->out[s->n++] = (ts_knn_hit){ distance, (const void *)(uintptr_t)s->len, vlen };
    s->len += vlen;
    return TS_OK;
}

int tsix_knn(tsix *ix, tstx *tx, const float *q, size_t dim, size_t k, int ef,
             int (*filter)(void *ctx, const void *val, size_t vlen), void *fctx,
             ts_knn_hit *out, size_t *nout, uint8_t **vals)
{
    *nout = 0;
    *vals = NULL;
    if (!(ix->vt->caps & TS_INDEX_VECTOR) || (!ix->vt->knn && !ix->vt->knn_emit)) return TS_ERR_UNSUPPORTED;
    knn_sink s = { ix, out, k, 0, NULL, 0, 0 };
    int rc;
    if (ix->vt->knn_emit) {
        rc = ix->vt->knn_emit(ix->idx, (ts_txn *)tx, q, dim, k, ef, filter, fctx, knn_put, &s);
    } else {
        /* knn's values live in a buffer the module may recycle: copied at once */
        size_t n = 0;
        rc = ix->vt->knn(ix->idx, (ts_txn *)tx, q, dim, k, ef, filter, fctx, out, &n);
        for (size_t i = 0; i < n && !rc; i++) {
            ts_knn_hit h = out[i];
            rc = knn_put(&s, h.distance, h.val, h.vlen);
        }
    }
    for (size_t i = 0; i < s.n && !rc; i++)
        out[i].val = s.buf ? s.buf + (uintptr_t)out[i].val : (const void *)"";   /* all empty */
    if (rc) s.n = 0;
    *nout = s.n;
    *vals = s.buf;
    return rc;
}

int tsix_vectors(tsix *ix, tstx *tx, size_t n, const void *const *vals, const size_t *vlens,
                 float *out, unsigned char *found)
{
    if (!(ix->vt->caps & TS_INDEX_VECTOR) || !ix->vt->vectors) return TS_ERR_UNSUPPORTED;
    return ix->vt->vectors(ix->idx, (ts_txn *)tx, n, vals, vlens, out, found);
}

int tsix_distances(tsix *ix, tstx *tx, const float *q, size_t dim, size_t n, const void *const *vals,
                   const size_t *vlens, float *dist, unsigned char *found)
{
    if (!(ix->vt->caps & TS_INDEX_VECTOR) || !ix->vt->distances) return TS_ERR_UNSUPPORTED;
    return ix->vt->distances(ix->idx, (ts_txn *)tx, q, dim, n, vals, vlens, dist, found);
}

int tsix_count(tsix *ix, tstx *tx, uint64_t *n)
{
    if (!ix->vt->count) return TS_ERR_UNSUPPORTED;
    return ix->vt->count(ix->idx, (ts_txn *)tx, n);
}

int tsix_cursor(tsix *ix, tstx *tx, tsix_cur *c)
{
    c->ix = ix;
    c->cur = NULL;
    return ix->vt->cursor_open(ix->idx, (ts_txn *)tx, &c->cur);
}

void tsix_cursor_close(tsix_cur *c)
{
    if (c && c->cur) c->ix->vt->cursor_close(c->cur);
    if (c) c->cur = NULL;
}

int tsix_seek(tsix_cur *c, const void *k, size_t kl, int mode) { return c->ix->vt->seek(c->cur, k, kl, mode); }
int tsix_seek_entry(tsix_cur *c, const void *k, size_t kl, const void *v, size_t vl, int mode)
{
    if (!c->ix->vt->seek_entry) return TS_ERR_UNSUPPORTED;
    return c->ix->vt->seek_entry(c->cur, k, kl, v, vl, mode);
}

int tsix_first(tsix_cur *c) { return c->ix->vt->first(c->cur); }
int tsix_last(tsix_cur *c) { return c->ix->vt->last(c->cur); }
int tsix_next(tsix_cur *c) { return c->ix->vt->next(c->cur); }
int tsix_prev(tsix_cur *c) { return c->ix->vt->prev(c->cur); }
int tsix_entry(tsix_cur *c, const void **k, size_t *kl, const void **v, size_t *vl)
{
    return c->ix->vt->entry(c->cur, k, kl, v, vl);
}

int tsix_get(tsix *ix, tstx *tx, const void *k, size_t kl, void **val, size_t *vl)
{
    tsix_cur c;
    *val = NULL;
    *vl = 0;
    int rc = tsix_cursor(ix, tx, &c);
    if (rc) return rc;
    rc = tsix_seek(&c, k, kl, TS_SEEK_EQ);
    const void *ek, *ev;
    size_t ekl, evl;
    if (!rc) rc = tsix_entry(&c, &ek, &ekl, &ev, &evl);
    if (!rc) {
        *val = malloc(evl ? evl : 1);
        if (!*val) rc = TS_ERR_NOMEM;
        else { memcpy(*val, ev, evl); *vl = evl; }
    }
    tsix_cursor_close(&c);
    return rc;
}

int tsix_each_prefix(tsix *ix, tstx *tx, const void *prefix, size_t pl, tsix_each_fn fn, void *ctx)
{
    tsix_cur c;
    int rc = tsix_cursor(ix, tx, &c);
    if (rc) return rc;
    for (rc = tsix_seek(&c, prefix, pl, TS_SEEK_GE); rc == TS_OK; rc = tsix_next(&c)) {
        const void *k, *v;
        size_t kl, vl;
        if ((rc = tsix_entry(&c, &k, &kl, &v, &vl))) break;
        if (kl < pl || memcmp(k, prefix, pl) != 0) break;
        if ((rc = fn(ctx, k, kl, v, vl))) break;
    }
    tsix_cursor_close(&c);
    return rc == TS_ERR_NOT_FOUND ? TS_OK : rc;
}
