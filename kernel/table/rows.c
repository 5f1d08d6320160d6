#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "table/migrate.h"
#include "table/rows.h"

struct tsrow_undo {
    tstbl   *t;
    uint64_t space;
    int      inserted;   /* 1: data is a pk key to delete; 0: a row to put back */
    void    *data;
    size_t   len;
    int64_t  expires;
};

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

int64_t tsrow_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tsw_init(tsw *w, tstbl_map *m, tstx *tx, uint64_t space, int undo_on)
{
    memset(w, 0, sizeof *w);
    w->m = m;
    w->env = m->env;
    w->tx = tx;
    w->space = space;
    w->now = tsrow_now_ms();
    w->undo_on = undo_on;
}

static int undo_push(tsw *w, tstbl *t, uint64_t space, int inserted, const void *data, size_t len,
                     int64_t expires)
{
    if (!w->undo_on) return TS_OK;
    if (w->nundo == w->capundo) {
        size_t nc = w->capundo ? w->capundo * 2 : 16;
        tsrow_undo *nu = realloc(w->undo, nc * sizeof *nu);
        if (!nu) return tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
        w->undo = nu;
        w->capundo = nc;
    }
    void *copy = malloc(len ? len : 1);
    if (!copy) return tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
    memcpy(copy, data, len);
    w->undo[w->nundo++] = (tsrow_undo){ t, space, inserted, copy, len, expires };
    return TS_OK;
}

int tsw_undo_to(tsw *w, size_t mark)
{
    int on = w->undo_on, rc = TS_OK;
    w->undo_on = 0;
    while (w->nundo > mark) {
        tsrow_undo *u = &w->undo[--w->nundo];
        int r = u->inserted ? tsrow_del(w, u->t, u->space, u->data, u->len)
                            : tsrow_put(w, u->t, u->space, u->data, u->len, u->expires);
        if (r && !rc) rc = r;
        free(u->data);
    }
    w->undo_on = on;
    return rc;
}

int tsw_move(tsw *to, tsw *from)
{
    if (!from->nundo) return TS_OK;
    if (to->nundo + from->nundo > to->capundo) {
        size_t nc = to->capundo ? to->capundo : 16;
        while (nc < to->nundo + from->nundo) nc *= 2;
        tsrow_undo *nu = realloc(to->undo, nc * sizeof *nu);
        if (!nu) return tsenv_error(to->env, TS_ERR_NOMEM, "out of memory");
        to->undo = nu;
        to->capundo = nc;
    }
    memcpy(to->undo + to->nundo, from->undo, from->nundo * sizeof *from->undo);
    to->nundo += from->nundo;
    from->nundo = 0;
    return TS_OK;
}

void tsw_forget(tsw *w, size_t mark)
{
    while (w->nundo > mark) free(w->undo[--w->nundo].data);
}

void tsw_done(tsw *w)
{
    for (size_t i = 0; i < w->nundo; i++) free(w->undo[i].data);
    free(w->undo);
    w->undo = NULL;
    w->nundo = w->capundo = 0;
}

/* ---- keys ------------------------------------------------------------ */

static size_t space_prefix(uint8_t *k, uint64_t space)
{
    return ts_key_int(k, TSROW_KEY_CAP, 0, (int64_t)space);
}

static int with_space(tsw *w, uint64_t space, const uint8_t *pk, size_t pkl, uint8_t *k, size_t *kl)
{
    size_t n = space_prefix(k, space);
    if (n + pkl > TSROW_KEY_CAP) return tsenv_error(w->env, TS_ERR_RESOURCE, "primary key too long");
    memcpy(k + n, pk, pkl);
    *kl = n + pkl;
    return TS_OK;
}

int tsrow_pk_key(tsw *w, const tstbl *t, const json_t *pk, uint8_t *key, size_t *len)
{
    if (!pk) return tsenv_error(w->env, TS_ERR_INVALID, "primary key is NULL");
    if (json_is_null(pk))
        return tsenv_error(w->env, TS_ERR_VALIDATION, "%s: a primary key value is required",
                           t->def->name);
    const tsd_field *f = &t->def->cols[0];
    if (json_is_integer(pk) && (f->type == TSD_INTEGER || (f->type == TSD_KEY &&
        (f->pk_type == TSD_PK_SEQUENTIAL || f->pk_type == TSD_PK_TIMESTAMP || f->pk_type == TSD_PK_NONE)))) {
        /* the common case, without building a coerced copy */
        *len = ts_key_int(key, TSROW_KEY_CAP, 0, json_integer_value(pk));
        return TS_OK;
    }
    json_t *v = NULL;
    int rc = tsd_coerce(w->env, f, pk, &v);
    size_t off = 0;
    if (!rc) rc = tsd_json_key(w->env, &t->def->cols[0], v, key, TSROW_KEY_CAP, &off);
    json_decref(v);
    if (!rc && off > TS_INDEX_KEY_MAX)
        rc = tsenv_error(w->env, TS_ERR_RESOURCE, "%s: primary key too long", t->def->name);
    if (!rc) *len = off;
    return rc;
}

int tsrow_row_pk(tsw *w, const tstbl *t, const uint8_t *row, size_t len, uint8_t *key, size_t *kl)
{
    size_t off = 0;
    int rc = tsd_row_pk_key(w->env, t->def, row, len, key, TSROW_KEY_CAP, &off);
    if (!rc && off > TS_INDEX_KEY_MAX)
        rc = tsenv_error(w->env, TS_ERR_RESOURCE, "%s: primary key too long", t->def->name);
    if (!rc) *kl = off;
    return rc;
}

/* Key of index ix for a row: (space, values...); *has_null when a value is null. */
static int index_key(tsw *w, const tstbl *t, const tsd_index *ix, uint64_t space, const uint8_t *row,
                     size_t len, uint8_t *k, size_t *kl, int *has_null)
{
    size_t off = space_prefix(k, space);
    *has_null = 0;
    for (size_t i = 0; i < ix->nfields; i++) {
        const tsd_field *f = &t->def->cols[ix->cols[i]];
        tsd_value v;
        int rc = tsd_row_field(w->env, t->def, row, len, ix->cols[i], &v);
        if (!rc) {
            if (v.kind == TSD_V_NULL) *has_null = 1;
            rc = tsd_value_key(w->env, f, &v, k, TSROW_KEY_CAP, &off);
        }
        if (rc) return rc;
    }
    if (off > TS_INDEX_KEY_MAX)
        return tsenv_error(w->env, TS_ERR_RESOURCE, "%s: key of index '%s' is over %d bytes",
                           t->def->name, ix->name, TS_INDEX_KEY_MAX);
    *kl = off;
    return TS_OK;
}

static size_t ttl_key(uint8_t *k, uint64_t space, int64_t expires, const uint8_t *pk, size_t pkl)
{
    size_t n = space_prefix(k, space);
    n = ts_key_int(k, TSROW_KEY_CAP, n, expires);
    memcpy(k + n, pk, pkl);
    return n + pkl;
}

/* ---- reading ---------------------------------------------------------- */

int tsrow_read(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl, int live, tsrow *out)
{
    return tsrow_read_fill(w, t, space, pk, pkl, live, 1, out);
}

int tsrow_read_fill(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl, int live, int fill,
                    tsrow *out)
{
    memset(out, 0, sizeof *out);
    uint8_t k[TSROW_KEY_CAP];
    size_t kl = 0;
    int rc = with_space(w, space, pk, pkl, k, &kl);
    void *v;
    size_t vl;
    if (!rc) rc = tsix_get(t->primary, w->tx, k, kl, &v, &vl);
    if (rc) return rc;
    out->mem = v;
    out->row = v;
    out->len = vl;
    if (t->ttl) {
        if (vl < 8) {
            tsrow_done(out);
            return tsenv_error(w->env, TS_ERR_CORRUPT, "%s: a stored row is malformed", t->def->name);
        }
        out->expires = (int64_t)get64(v);
        out->row += 8;
        out->len -= 8;
        if (live && out->expires <= tsrow_now_ms()) {
            tsrow_done(out);
            return TS_ERR_NOT_FOUND;
        }
    }
    if (fill && tsd_row_has_refs(out->row, out->len)) {
        tsd_buf b = { 0 };
        rc = tsrow_fill(w->env, w->tx, t, k, kl, &out->row, &out->len, &b);
        free(out->mem);
        out->mem = b.p;
        if (rc) {
            out->mem = NULL;
            free(b.p);
            return rc;
        }
    }
    return TS_OK;
}

int tsrow_fill(ts_env *env, tstx *tx, const tstbl *t, const uint8_t *key, size_t kl,
               const uint8_t **row, size_t *len, tsd_buf *buf)
{
    if (!tsd_row_has_refs(*row, *len)) return TS_OK;
    const tsd_table *d = t->def;
    unsigned char *refs = calloc(d->ncols, 1);
    const float **vecs = calloc(d->ncols, sizeof *vecs);
    size_t total = 0;
    int rc = refs && vecs ? tsd_row_refs(env, d, *row, *len, refs) : TS_ERR_NOMEM;
    for (size_t c = 0; c < d->ncols && !rc; c++)
        if (refs[c]) total += d->cols[c].dimensions;
    float *mem = !rc ? malloc((total ? total : 1) * sizeof *mem) : NULL;
    if (!rc && !mem) rc = TS_ERR_NOMEM;
    float *dst = mem;
    for (size_t c = 0; c < d->ncols && !rc; c++) {
        if (!refs[c]) continue;
        /* every vector index over the column has the row's vector: the
         * first that keeps exact copies answers */
        for (size_t i = 0; i < d->nindexes && !vecs[c] && !rc; i++) {
            const tsd_index *ix = &d->indexes[i];
            if (!ix->vector_config || ix->cols[0] != c || !t->ix[i]) continue;
            const void *kp = key;
            unsigned char found = 0;
            rc = tsix_vectors(t->ix[i], tx, 1, &kp, &kl, dst, &found);
            if (rc == TS_ERR_UNSUPPORTED) { rc = TS_OK; continue; }
            if (!rc && found) vecs[c] = dst;
        }
        dst += d->cols[c].dimensions;
    }
    if (rc == TS_ERR_NOMEM) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    /* a missing vector is reported by tsd_row_fill */
    if (!rc && !(rc = tsd_row_fill(env, d, *row, *len, vecs, buf))) {
        *row = buf->p;
        *len = buf->len;
    }
    free(mem);
    free(vecs);
    free(refs);
    return rc;
}

void tsrow_done(tsrow *r)
{
    if (r) free(r->mem);
    if (r) r->mem = NULL;
}

int tsrow_expiry(tsw *w, const tstbl *t, const uint8_t *row, size_t len, int64_t *expires)
{
    int64_t base = w->now;
    if (t->def->ttl_col >= 0) {
        tsd_value v;
        int rc = tsd_row_field(w->env, t->def, row, len, (size_t)t->def->ttl_col, &v);
        if (rc) return rc;
        if (v.kind == TSD_V_INT) base = v.i;
    }
    *expires = base > INT64_MAX - t->def->ttl_ms ? INT64_MAX : base + t->def->ttl_ms;
    return TS_OK;
}

/* ---- writing ----------------------------------------------------------- */

static int unique_error(tsw *w, const tstbl *t, const tsd_index *ix)
{
    const tsd_table *d = t->def;
    char fields[512];
    size_t n = 0;
    fields[0] = '\0';
    for (size_t i = 0; i < ix->nfields && n < sizeof fields - 80; i++)
        n += (size_t)snprintf(fields + n, sizeof fields - n, "%s%s", i ? ", " : "",
                              d->cols[ix->cols[i]].name);
    return tsenv_error(w->env, TS_ERR_UNIQUE, "%s: a row with the same %s already exists (unique "
                       "index '%s')", d->name, fields, ix->name);
}

/* A vector index entry: the field's vector as float32 (little-endian,
 * which ngh checks) keyed to (space, pk); rows whose vector is null have
 * none.  insert 0 removes the entry. */
static int vector_entry(tsw *w, tstbl *t, size_t i, uint64_t space, const uint8_t *row, size_t len,
                        const uint8_t *pk, size_t pkl, int insert)
{
    const tsd_index *ix = &t->def->indexes[i];
    const tsd_field *f = &t->def->cols[ix->cols[0]];
    tsd_value v;
    int rc = tsd_row_field(w->env, t->def, row, len, ix->cols[0], &v);
    if (rc || v.kind == TSD_V_NULL) return rc;
    uint8_t val[TSROW_KEY_CAP];
    size_t vl = 0;
    if ((rc = with_space(w, space, pk, pkl, val, &vl))) return rc;
    float *vec = malloc((size_t)f->dimensions * sizeof *vec);
    if (!vec) return tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
    rc = tsd_vector_floats(w->env, f, &v, vec);
    size_t kl = (size_t)f->dimensions * sizeof *vec;
    if (!rc) rc = insert ? tsix_insert(t->ix[i], w->tx, vec, kl, val, vl, 0)
                         : tsix_remove(t->ix[i], w->tx, vec, kl, val, vl);
    free(vec);
    return rc;
}

/* Remove the index entries 0..upto-1 of a row (missing ones ignored). */
static int unindex(tsw *w, tstbl *t, uint64_t space, const uint8_t *row, size_t len,
                   const uint8_t *pk, size_t pkl, size_t upto)
{
    for (size_t i = 0; i < upto; i++) {
        uint8_t k[TSROW_KEY_CAP];
        size_t kl;
        int nul, rc;
        if (t->def->indexes[i].vector_config) {
            rc = vector_entry(w, t, i, space, row, len, pk, pkl, 0);
        } else {
            rc = index_key(w, t, &t->def->indexes[i], space, row, len, k, &kl, &nul);
            if (!rc) rc = tsix_remove(t->ix[i], w->tx, k, kl, pk, pkl);
        }
        if (rc && rc != TS_ERR_NOT_FOUND) return rc;
    }
    return TS_OK;
}

int tsrow_fill_own(tsw *w, const tstbl *t, uint64_t space, const uint8_t **row, size_t *len,
                   tsd_buf *buf)
{
    if (!tsd_row_has_refs(*row, *len)) return TS_OK;
    uint8_t pk[TSROW_KEY_CAP], k[TSROW_KEY_CAP];
    size_t pkl = 0, kl = 0;
    int rc = tsrow_row_pk(w, t, *row, *len, pk, &pkl);
    if (!rc) rc = with_space(w, space, pk, pkl, k, &kl);
    return rc ? rc : tsrow_fill(w->env, w->tx, t, k, kl, row, len, buf);
}

static int put_stored(tsw *w, tstbl *t, const uint8_t *k, size_t kl, const uint8_t *row, size_t len,
                      int64_t expires);

int tsrow_unstrip_all(tsw *w, tstbl *t)
{
    enum { BATCH = 64 };
    uint8_t *keys = malloc(BATCH * TSROW_KEY_CAP);
    size_t lens[BATCH];
    int rc = keys ? TS_OK : tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
    size_t after = 0;   /* the last key looked at, kept in keys' last slot */
    uint8_t *last = keys ? keys + (BATCH - 1) * TSROW_KEY_CAP : NULL;
    size_t hl = t->ttl ? 8 : 0;
    while (!rc) {
        /* a batch of keys of rows with references through a fresh cursor,
         * then rewrite them (the tree changes under no open cursor) */
        size_t n = 0;
        tsix_cur c;
        if ((rc = tsix_cursor(t->primary, w->tx, &c))) break;
        rc = after ? tsix_seek(&c, last, after, TS_SEEK_GT) : tsix_first(&c);
        size_t seen = 0;
        for (; rc == TS_OK && n < BATCH - 1 && seen < 4096; rc = tsix_next(&c), seen++) {
            const void *ek, *ev;
            size_t ekl, evl;
            if ((rc = tsix_entry(&c, &ek, &ekl, &ev, &evl))) break;
            if (ekl > TSROW_KEY_CAP || evl < hl) { rc = tsenv_error(w->env, TS_ERR_CORRUPT, "%s: a stored row is malformed", t->def->name); break; }
            memcpy(last, ek, ekl);
            after = ekl;
            if (!tsd_row_has_refs((const uint8_t *)ev + hl, evl - hl)) continue;
            memcpy(keys + n * TSROW_KEY_CAP, ek, ekl);
            lens[n++] = ekl;
        }
        tsix_cursor_close(&c);
        int end = rc == TS_ERR_NOT_FOUND;
        if (end) rc = TS_OK;
        for (size_t i = 0; i < n && !rc; i++) {
            void *v;
            size_t vl;
            const uint8_t *k = keys + i * TSROW_KEY_CAP;
            if ((rc = tsix_get(t->primary, w->tx, k, lens[i], &v, &vl))) break;
            const uint8_t *row = (const uint8_t *)v + hl;
            size_t len = vl - hl;
            tsd_buf b = { 0 };
            rc = tsrow_fill(w->env, w->tx, t, k, lens[i], &row, &len, &b);
            if (!rc && b.len) {   /* else whole already (cannot happen: it was just looked at) */
                rc = tsix_remove(t->primary, w->tx, k, lens[i], NULL, 0);
                if (!rc) rc = put_stored(w, t, k, lens[i], b.p, b.len, hl ? (int64_t)get64(v) : 0);
            }
            tsd_buf_free(&b);
            free(v);
        }
        if (end) break;
    }
    free(keys);
    return rc == TS_ERR_NOMEM ? tsenv_error(w->env, TS_ERR_NOMEM, "out of memory") : rc;
}

/* The columns whose vectors a row can leave to an index (NULL: none):
 * those with a vector index that keeps exact copies (asked once per
 * table object; the answer holds for the index's life).  The caller puts
 * the row's vectors into every vector index in the same transaction. */
static int strip_mask(tsw *w, tstbl *t, const unsigned char **mask)
{
    *mask = t->vstrip;
    if (t->vstrip_known || !w->m->vector_refs) return TS_OK;
    const tsd_table *d = t->def;
    unsigned char *m = NULL;
    int rc = TS_OK;
    for (size_t i = 0; i < d->nindexes && !rc; i++) {
        const tsd_index *ix = &d->indexes[i];
        size_t c = ix->cols[0];
        if (!ix->vector_config || !t->ix[i]) continue;
        rc = tsix_vectors(t->ix[i], w->tx, 0, NULL, NULL, NULL, NULL);
        if (rc == TS_ERR_UNSUPPORTED) { rc = TS_OK; continue; }
        if (!rc && !m && !(m = calloc(d->ncols, 1))) rc = tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
        if (!rc) m[c] = 1;
    }
    if (rc) {   /* asked again by the next write */
        free(m);
        return rc;
    }
    t->vstrip = m;
    t->vstrip_known = 1;
    *mask = m;
    return TS_OK;
}

/* The primary entry as given: key k -> row, behind its expiry on TTL
 * tables. */
static int put_stored(tsw *w, tstbl *t, const uint8_t *k, size_t kl, const uint8_t *row, size_t len,
                      int64_t expires)
{
    if (!t->ttl) return tsix_insert(t->primary, w->tx, k, kl, row, len, 1);
    uint8_t *val = malloc(len + 8);
    if (!val) return tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
    put64(val, (uint64_t)expires);
    memcpy(val + 8, row, len);
    int rc = tsix_insert(t->primary, w->tx, k, kl, val, len + 8, 1);
    free(val);
    return rc;
}

/* The primary entry: the row without the vectors an index keeps. */
static int put_primary(tsw *w, tstbl *t, const uint8_t *k, size_t kl, const uint8_t *row, size_t len,
                       int64_t expires)
{
    const unsigned char *strip;
    tsd_buf sb = { 0 };
    size_t ns = 0;
    int rc = strip_mask(w, t, &strip);
    if (!rc && strip) rc = tsd_row_strip(w->env, t->def, row, len, strip, &sb, &ns);
    if (!rc && ns) {
        row = sb.p;
        len = sb.len;
    }
    if (!rc) rc = put_stored(w, t, k, kl, row, len, expires);
    tsd_buf_free(&sb);
    return rc;
}

int tsrow_put(tsw *w, tstbl *t, uint64_t space, const uint8_t *row, size_t len, int64_t expires)
{
    uint8_t pk[TSROW_KEY_CAP], k[TSROW_KEY_CAP];
    size_t pkl = 0, kl = 0;
    int rc = tsrow_row_pk(w, t, row, len, pk, &pkl);
    if (!rc) rc = with_space(w, space, pk, pkl, k, &kl);
    if (rc) return rc;
    rc = put_primary(w, t, k, kl, row, len, expires);
    if (rc == TS_ERR_UNIQUE)
        return tsenv_error(w->env, TS_ERR_PRIMARY_KEY, "%s: a row with this primary key already exists",
                           t->def->name);
    if (rc) return rc;
    size_t i = 0;
    for (; i < t->def->nindexes && !rc; i++) {
        const tsd_index *ix = &t->def->indexes[i];
        int nul;
        if (ix->vector_config) {
            if ((rc = vector_entry(w, t, i, space, row, len, pk, pkl, 1))) break;
            continue;
        }
        rc = index_key(w, t, ix, space, row, len, k, &kl, &nul);
        if (rc) break;
        rc = tsix_insert(t->ix[i], w->tx, k, kl, pk, pkl, ix->unique && !nul);
        if (rc == TS_ERR_UNIQUE) rc = unique_error(w, t, ix);
        if (rc) break;
    }
    /* a background migration converts the row into its new trees too */
    if (!rc && t->mig) rc = tsmig_mirror_put(w, t, space, pk, pkl, row, len, expires);
    if (!rc && t->ttl) rc = tsix_insert(t->ttl, w->tx, k, ttl_key(k, space, expires, pk, pkl), "", 0, 1);
    if (rc) {
        /* leave nothing behind: the failing index changed nothing */
        if (unindex(w, t, space, row, len, pk, pkl, i) == TS_OK &&
            with_space(w, space, pk, pkl, k, &kl) == TS_OK)
            tsix_remove(t->primary, w->tx, k, kl, NULL, 0);
        return rc;
    }
    t->dirty = 1;
    tstbl_journal_note(t, space, pk, pkl);
    rc = tstbl_count_add(w->m, w->tx, t, space, 1);
    if (!rc) rc = undo_push(w, t, space, 1, pk, pkl, 0);
    return rc;
}

int tsrow_del(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl)
{
    tsrow r;
    int rc = tsrow_read(w, t, space, pk, pkl, 0, &r);
    if (rc) return rc;
    uint8_t k[TSROW_KEY_CAP];
    size_t kl = 0;
    rc = unindex(w, t, space, r.row, r.len, pk, pkl, t->def->nindexes);
    if (!rc && t->ttl) {
        rc = tsix_remove(t->ttl, w->tx, k, ttl_key(k, space, r.expires, pk, pkl), NULL, 0);
        if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
    }
    if (!rc) rc = with_space(w, space, pk, pkl, k, &kl);
    if (!rc) rc = tsix_remove(t->primary, w->tx, k, kl, NULL, 0);
    if (!rc && t->mig) rc = tsmig_mirror_del(w, t, space, pk, pkl);
    if (!rc) {
        t->dirty = 1;
        tstbl_journal_note(t, space, pk, pkl);
        rc = tstbl_count_add(w->m, w->tx, t, space, -1);
    }
    if (!rc) rc = undo_push(w, t, space, 0, r.row, r.len, r.expires);
    tsrow_done(&r);
    return rc;
}

/* Whether index i's entry is the same for both rows (vector indexes:
 * the same stored vector, or both null). */
static int same_entry(tsw *w, tstbl *t, size_t i, uint64_t space, const uint8_t *a, size_t al,
                      const uint8_t *b, size_t bl, int *same)
{
    const tsd_index *ix = &t->def->indexes[i];
    if (ix->vector_config) {
        tsd_value x, y;
        int rc = tsd_row_field(w->env, t->def, a, al, ix->cols[0], &x);
        if (!rc) rc = tsd_row_field(w->env, t->def, b, bl, ix->cols[0], &y);
        if (rc) return rc;
        *same = x.kind == y.kind && (x.kind == TSD_V_NULL ||
                (x.n == y.n && x.scale == y.scale && memcmp(x.p, y.p, x.n) == 0));
        return TS_OK;
    }
    uint8_t k1[TSROW_KEY_CAP], k2[TSROW_KEY_CAP];
    size_t l1 = 0, l2 = 0;
    int n1, n2;
    int rc = index_key(w, t, ix, space, a, al, k1, &l1, &n1);
    if (!rc) rc = index_key(w, t, ix, space, b, bl, k2, &l2, &n2);
    if (!rc) *same = l1 == l2 && memcmp(k1, k2, l1) == 0;
    return rc;
}

static int entry_apply(tsw *w, tstbl *t, size_t i, uint64_t space, const uint8_t *row, size_t len,
                       const uint8_t *pk, size_t pkl, int insert)
{
    const tsd_index *ix = &t->def->indexes[i];
    if (ix->vector_config) return vector_entry(w, t, i, space, row, len, pk, pkl, insert);
    uint8_t k[TSROW_KEY_CAP];
    size_t kl = 0;
    int nul;
    int rc = index_key(w, t, ix, space, row, len, k, &kl, &nul);
    if (rc) return rc;
    if (!insert) return tsix_remove(t->ix[i], w->tx, k, kl, pk, pkl);
    rc = tsix_insert(t->ix[i], w->tx, k, kl, pk, pkl, ix->unique && !nul);
    return rc == TS_ERR_UNIQUE ? unique_error(w, t, ix) : rc;
}

int tsrow_replace(tsw *w, tstbl *t, uint64_t space, const tsrow *old, const uint8_t *row,
                  size_t len, int64_t expires)
{
    uint8_t pk[TSROW_KEY_CAP], opk[TSROW_KEY_CAP], k[TSROW_KEY_CAP];
    size_t pkl = 0, opkl = 0, kl = 0;
    int rc = tsrow_row_pk(w, t, row, len, pk, &pkl);
    if (!rc) rc = tsrow_row_pk(w, t, old->row, old->len, opk, &opkl);
    if (rc) return rc;
    if (pkl != opkl || memcmp(pk, opk, pkl) != 0) {
        rc = tsrow_del(w, t, space, opk, opkl);
        return rc ? rc : tsrow_put(w, t, space, row, len, expires);
    }
    size_t ni = t->def->nindexes;
    unsigned char *chg = calloc(ni ? ni : 1, 1);
    if (!chg) return tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < ni && !rc; i++) {
        int same = 0;
        rc = same_entry(w, t, i, space, old->row, old->len, row, len, &same);
        chg[i] = !same;
    }
    /* new entries of ordinary indexes first: a unique clash then changes
     * nothing; vector entries (never unique) are swapped in place */
    size_t done = 0;
    for (; done < ni && !rc; done++)
        if (chg[done] && !t->def->indexes[done].vector_config)
            rc = entry_apply(w, t, done, space, row, len, pk, pkl, 1);
    if (rc) {
        for (size_t i = 0; i + 1 < done; i++)
            if (chg[i] && !t->def->indexes[i].vector_config)
                entry_apply(w, t, i, space, row, len, pk, pkl, 0);
        free(chg);
        return rc;
    }
    for (size_t i = 0; i < ni && !rc; i++) {
        if (!chg[i]) continue;
        rc = entry_apply(w, t, i, space, old->row, old->len, pk, pkl, 0);
        if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
        if (!rc && t->def->indexes[i].vector_config)
            rc = entry_apply(w, t, i, space, row, len, pk, pkl, 1);
    }
    free(chg);
    if (!rc) rc = with_space(w, space, pk, pkl, k, &kl);
    if (!rc) rc = tsix_remove(t->primary, w->tx, k, kl, NULL, 0);
    if (!rc) rc = put_primary(w, t, k, kl, row, len, expires);
    /* a background migration converts the new row into its new trees too */
    if (!rc && t->mig) rc = tsmig_mirror_del(w, t, space, pk, pkl);
    if (!rc && t->mig) rc = tsmig_mirror_put(w, t, space, pk, pkl, row, len, expires);
    if (!rc && t->ttl && expires != old->expires) {
        rc = tsix_remove(t->ttl, w->tx, k, ttl_key(k, space, old->expires, pk, pkl), NULL, 0);
        if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
        if (!rc) rc = tsix_insert(t->ttl, w->tx, k, ttl_key(k, space, expires, pk, pkl), "", 0, 1);
    }
    if (rc) return rc;   /* only I/O-class failures get here: the caller gives up the transaction */
    t->dirty = 1;
    tstbl_journal_note(t, space, pk, pkl);
    rc = undo_push(w, t, space, 0, old->row, old->len, old->expires);
    if (!rc) rc = undo_push(w, t, space, 1, pk, pkl, 0);
    return rc;
}

int tsrow_purge_expired(tsw *w, tstbl *t, uint64_t space, int max, int *n_out)
{
    if (n_out) *n_out = 0;
    if (!t->ttl) return TS_OK;
    uint8_t pre[TSROW_KEY_CAP];
    size_t pl = space_prefix(pre, space);
    int64_t now = tsrow_now_ms();
    int done = 0, rc = TS_OK;
    while (done < max && !rc) {
        uint8_t pk[TSROW_KEY_CAP];
        size_t pkl = 0;
        tsix_cur c;
        if ((rc = tsix_cursor(t->ttl, w->tx, &c))) break;
        rc = tsix_seek(&c, pre, pl, TS_SEEK_GE);
        if (!rc) {
            const void *ek, *ev;
            size_t ekl, evl;
            rc = tsix_entry(&c, &ek, &ekl, &ev, &evl);
            size_t off = pl;
            ts_key_item it;
            if (!rc && ekl >= pl && memcmp(ek, pre, pl) == 0 &&
                ts_key_next(ek, ekl, &off, &it) == 1 && it.i <= now && ekl - off <= sizeof pk) {
                pkl = ekl - off;
                memcpy(pk, (const uint8_t *)ek + off, pkl);
            }
        }
        tsix_cursor_close(&c);
        if (rc == TS_ERR_NOT_FOUND) { rc = TS_OK; break; }
        if (rc || !pkl) break;
        rc = tsrow_del(w, t, space, pk, pkl);
        done++;
    }
    if (n_out) *n_out = done;
    return rc;
}

int tsrow_clear(tsw *w, tstbl *t, uint64_t space)
{
    uint8_t pre[TSROW_KEY_CAP];
    size_t pl = space_prefix(pre, space);
    int on = w->undo_on;
    w->undo_on = 0;
    int rc = TS_OK;
    for (;;) {
        /* a batch of keys through a fresh cursor, then delete them */
        uint8_t *keys = malloc(64 * TSROW_KEY_CAP);
        size_t lens[64], n = 0;
        if (!keys) { rc = tsenv_error(w->env, TS_ERR_NOMEM, "out of memory"); break; }
        tsix_cur c;
        if ((rc = tsix_cursor(t->primary, w->tx, &c))) { free(keys); break; }
        for (rc = tsix_seek(&c, pre, pl, TS_SEEK_GE); rc == TS_OK && n < 64; rc = tsix_next(&c)) {
            const void *ek, *ev;
            size_t ekl, evl;
            if ((rc = tsix_entry(&c, &ek, &ekl, &ev, &evl))) break;
            if (ekl < pl || memcmp(ek, pre, pl) != 0 || ekl - pl > TSROW_KEY_CAP) break;
            lens[n] = ekl - pl;
            memcpy(keys + n * TSROW_KEY_CAP, (const uint8_t *)ek + pl, lens[n]);
            n++;
        }
        tsix_cursor_close(&c);
        if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
        for (size_t i = 0; i < n && !rc; i++) rc = tsrow_del(w, t, space, keys + i * TSROW_KEY_CAP, lens[i]);
        free(keys);
        if (rc || n < 64) break;
    }
    w->undo_on = on;
    return rc;
}
