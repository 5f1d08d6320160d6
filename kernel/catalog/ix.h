/*
 * An open index: the module's vtable plus its instance, and the calls the
 * data layer makes through it.  Thin, so that every failure keeps the
 * plugin's message and gains the index's name.
 */
#ifndef TS_CATALOG_IX_H
#define TS_CATALOG_IX_H

#include <jansson.h>
#include <tostore/index.h>
#include "plugin/registry.h"
#include "txn/pager.h"

typedef struct tsix {
    const ts_index_vtab *vt;
    void                *idx;
    const tsreg_module  *mod;
    uint64_t             root;
    ts_env              *env;       /* the one the module was opened with */
    char                 name[80];  /* for messages */
} tsix;

typedef struct tsix_cur {
    const tsix *ix;
    void       *cur;
} tsix_cur;

/* Create an empty index of module `module` inside tx; *root_out is its root. */
int  tsix_create(ts_env *env, tsreg *reg, const char *module, const json_t *opts, tstx *tx,
                 uint64_t *root_out);
/* Open the index at root (no I/O). */
int  tsix_open(ts_env *env, tsreg *reg, const char *module, const json_t *opts, uint64_t root,
               const char *name, tsix **out);
void tsix_close(tsix *ix);
int  tsix_drop(tsix *ix, tstx *tx);

int  tsix_insert(tsix *ix, tstx *tx, const void *k, size_t kl, const void *v, size_t vl, int unique);
int  tsix_remove(tsix *ix, tstx *tx, const void *k, size_t kl, const void *v, size_t vl);
/* Exact lookup of key: copies the first value into *val (malloc'd, caller
 * frees); TS_ERR_NOT_FOUND when absent. */
int  tsix_get(tsix *ix, tstx *tx, const void *k, size_t kl, void **val, size_t *vl);

/* The k entries nearest to q (vector modules: TS_INDEX_VECTOR), nearest
 * first, through ts_index_vtab.knn_emit when the module has it, else knn.
 * out has room for k hits; their values are copied into *vals (malloc'd,
 * the caller frees it, also on error; NULL when there are none).
 * TS_ERR_UNSUPPORTED when the module has neither. */
int  tsix_knn(tsix *ix, tstx *tx, const float *q, size_t dim, size_t k, int ef,
              int (*filter)(void *ctx, const void *val, size_t vlen), void *fctx,
              ts_knn_hit *out, size_t *nout, uint8_t **vals);

/* The stored vectors of n values (ts_index_vtab.vectors): out gets n x
 * dimensions floats, found[i] whether vals[i] has an entry.  n = 0: TS_OK
 * when the index keeps exact copies.  TS_ERR_UNSUPPORTED when it keeps
 * none or the module has no such call. */
int  tsix_vectors(tsix *ix, tstx *tx, size_t n, const void *const *vals, const size_t *vlens,
                  float *out, unsigned char *found);

/* The distances from q (dim floats) to the entries of n values, as knn
 * reports them (ts_index_vtab.distances): found[i] whether vals[i] has an
 * entry.  TS_ERR_UNSUPPORTED when the module has no such call or keeps no
 * exact copies. */
int  tsix_distances(tsix *ix, tstx *tx, const float *q, size_t dim, size_t n, const void *const *vals,
                    const size_t *vlens, float *dist, unsigned char *found);
/* The index's live entries in tx's snapshot (ts_index_vtab.count);
 * TS_ERR_UNSUPPORTED when the module has no such call. */
int  tsix_count(tsix *ix, tstx *tx, uint64_t *n);

int  tsix_cursor(tsix *ix, tstx *tx, tsix_cur *c);
void tsix_cursor_close(tsix_cur *c);
int  tsix_seek(tsix_cur *c, const void *k, size_t kl, int mode);
/* Position by the full (key, value) order (TS_ERR_UNSUPPORTED when the
 * module has no seek_entry). */
int  tsix_seek_entry(tsix_cur *c, const void *k, size_t kl, const void *v, size_t vl, int mode);
int  tsix_first(tsix_cur *c);
int  tsix_last(tsix_cur *c);
int  tsix_next(tsix_cur *c);
int  tsix_prev(tsix_cur *c);
int  tsix_entry(tsix_cur *c, const void **k, size_t *kl, const void **v, size_t *vl);

/* Call fn for each entry whose key starts with prefix, in key order, until
 * fn returns non-zero (which is returned; TS_OK at the end).  The pointers
 * are valid during the call; fn must not change the index. */
typedef int (*tsix_each_fn)(void *ctx, const void *k, size_t kl, const void *v, size_t vl);
int  tsix_each_prefix(tsix *ix, tstx *tx, const void *prefix, size_t pl, tsix_each_fn fn, void *ctx);

#endif
