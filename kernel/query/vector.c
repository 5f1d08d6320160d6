/* Nearest-neighbour search over a vector field: through its ngh index
 * with the query's conditions as the filter, or an exact scan. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "query/exec.h"
#include "query/vset.h"

enum { VM_COSINE = TSQ_METRIC_COSINE, VM_L2 = TSQ_METRIC_L2, VM_IP = TSQ_METRIC_IP };
#define TSQ_VECTOR_K_MAX 1000000   /* as the ngh module */

typedef struct vsearch {
    tsq_exec *e;
    tsq_ctx  *x;
    tstbl    *t;
    uint64_t  space;
    uint8_t   pre[16];     /* the space prefix of the index values */
    size_t    pl;
    int       read_rows;   /* the filter must look at the row (conditions, TTL) */
    int       cond_vectors; /* ... and its vectors (a condition on one, or a custom one) */
    int       show_vectors; /* the rows returned show a vector field */
    int       metric;
    const tsq_vset *set;   /* the rows passing the conditions, when known */
    const tsq_vset *colset;   /* a column set (by_column's graph filter) */
    int       ranged;      /* the column set's conditions are the integers lo..hi */
    uint64_t  wide;        /* a narrowed plan passed thousands of rows: how many (tsq_vector_search) */
    int64_t   lo, hi;
} vsearch;

/* A result on its way out, kept in a max-heap on distance (exact scan). */
typedef struct vhit { double d; json_t *row; } vhit;

int tsq_vector_metric(const char *name)
{
    if (!name) return -1;
    if (!strcmp(name, "cosine")) return VM_COSINE;
    if (!strcmp(name, "l2")) return VM_L2;
    if (!strcmp(name, "innerProduct")) return VM_IP;
    return -1;
}

static int metric_of(const tsd_index *ix)
{
    int m = ix ? tsq_vector_metric(json_string_value(json_object_get(ix->vector_config, "distanceMetric"))) : -1;
    return m >= 0 ? m : VM_COSINE;   /* the ngh default, also for scans without an index */
}

static double score_of(int metric, double d)
{
    return metric == VM_L2 ? 1.0 / (1.0 + d) : metric == VM_COSINE ? 1.0 - d : -d;
}

/* In float with eight partial sums (independent chains the compiler
 * turns into vector lanes), summed in double at the end. */
static double distance(int metric, const float *a, const float *b, size_t n)
{
    float s[8] = { 0 }, na[8] = { 0 }, nb[8] = { 0 };
    size_t i = 0;
    if (metric == VM_L2) {
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) {
                float d = a[i + j] - b[i + j];
                s[j] += d * d;
            }
        double t = 0;
        for (; i < n; i++) { double d = (double)a[i] - (double)b[i]; t += d * d; }
        for (int j = 0; j < 8; j++) t += s[j];
        return sqrt(t);
    }
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            s[j] += a[i + j] * b[i + j];
            na[j] += a[i + j] * a[i + j];
            nb[j] += b[i + j] * b[i + j];
        }
    double dot = 0, xa = 0, xb = 0;
    for (; i < n; i++) {
        double x = a[i], y = b[i];
        dot += x * y;
        xa += x * x;
        xb += y * y;
    }
    for (int j = 0; j < 8; j++) { dot += s[j]; xa += na[j]; xb += nb[j]; }
    if (metric == VM_IP) return -dot;
    return xa > 0 && xb > 0 ? 1.0 - dot / (sqrt(xa) * sqrt(xb)) : 1.0;
}

/* The row as returned, with _distance and _score. */
static int emit_json(vsearch *v, const tsq_rowset *rs, double d, json_t **out)
{
    json_t *row;
    int rc = tsq_exec_row_json(v->e, rs, &row);
    if (rc) return rc;
    if (json_object_set_new(row, "_distance", json_real(d)) ||
        json_object_set_new(row, "_score", json_real(score_of(v->metric, d)))) {
        json_decref(row);
        return tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    }
    *out = row;
    return TS_OK;
}

/* ---- through the index ---------------------------------------------------- */

/* Index values are (space, pk): keep the entries of the query's space
 * whose row is live and passes the conditions. */
static int vfilter(void *ctx, const void *val, size_t vl)
{
    vsearch *v = ctx;
    if (vl < v->pl || memcmp(val, v->pre, v->pl) != 0) return 0;
    if (!v->read_rows) return 1;
    tsrow r;
    /* the vectors an index keeps are put back only when a condition reads them */
    int rc = tsrow_read_fill(v->x->w, v->t, v->space, (const uint8_t *)val + v->pl, vl - v->pl, 1,
                             v->cond_vectors, &r);
    if (rc == TS_ERR_NOT_FOUND) return 0;
    if (rc) return rc;
    tsq_rowset rs = { { r.row }, { r.len } };
    rc = tsq_exec_match(v->e, &rs);
    tsrow_done(&r);
    return rc;
}

/* With a select list of the primary key alone (what a search for ids
 * asks), the row need not be read: an integer key decodes from its bytes.
 * TS_ERR_UNSUPPORTED when the row is needed. */
static int pk_only_row(vsearch *v, const uint8_t *pk, size_t pkl, json_t **out)
{
    size_t off = 0;
    ts_key_item it;
    if (ts_key_next(pk, pkl, &off, &it) != 1 || it.tag != TS_KEY_INT || off != pkl)
        return TS_ERR_UNSUPPORTED;
    json_t *k = json_integer(it.i);
    if (!k) return tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    int rc = tsq_exec_pk_row_json(v->e, k, out);
    json_decref(k);
    return rc;
}

/* Append the row with primary key pk (without the space) at distance d to
 * rows: from the key alone when the select list allows, else read. */
static int emit_pk(vsearch *v, const uint8_t *pk, size_t pkl, double d, json_t *rows)
{
    json_t *row = NULL;
    /* rows of a set (or a column set) passed the conditions in this snapshot (no TTL) */
    int rc = v->read_rows && !v->set && !v->colset ? TS_ERR_UNSUPPORTED : pk_only_row(v, pk, pkl, &row);
    if (rc == TS_OK) {
        if (json_object_set_new(row, "_distance", json_real(d)) ||
            json_object_set_new(row, "_score", json_real(score_of(v->metric, d))) ||
            json_array_append_new(rows, row))
            return tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
        return TS_OK;
    }
    if (rc != TS_ERR_UNSUPPORTED) return rc;
    tsrow r;
    /* Not live-checked again: the filter accepted the row (TTL included)
     * moments ago, and a row expiring in between is not a missing row. */
    rc = tsrow_read_fill(v->x->w, v->t, v->space, pk, pkl, !v->read_rows, v->show_vectors, &r);
    if (rc == TS_ERR_NOT_FOUND)
        rc = tsenv_error(v->x->env, TS_ERR_CORRUPT, "%s: the vector index has an entry for a "
                         "missing row", v->t->def->name);
    if (rc) return rc;
    tsq_rowset rs = { { r.row }, { r.len } };
    rc = emit_json(v, &rs, d, &row);
    tsrow_done(&r);
    if (!rc && json_array_append_new(rows, row)) rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    return rc;
}

/* The filter when the passing rows are known (a set): the space prefix
 * and a hash lookup, no row read. */
static int vfilter_set(void *ctx, const void *val, size_t vl)
{
    vsearch *v = ctx;
    if (vl < v->pl || memcmp(val, v->pre, v->pl) != 0) return 0;
    return tsq_vset_has(v->set, (const uint8_t *)val + v->pl, vl - v->pl);
}

static int by_index_filtered(vsearch *v, tsix *ix, const float *vec, size_t dim, size_t k, int ef,
                             int (*filter)(void *ctx, const void *val, size_t vl), json_t *rows)
{
    ts_knn_hit *hits = malloc(k * sizeof *hits);
    if (!hits) return tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    size_t n = 0;
    uint8_t *vals = NULL;   /* the hits' values, ours */
    int rc = tsix_knn(ix, v->x->w->tx, vec, dim, k, ef, filter, v, hits, &n, &vals);
    if (rc == TS_ERR_NOMEM) rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        const uint8_t *val = hits[i].val;
        if (hits[i].vlen < v->pl) { rc = tsenv_error(v->x->env, TS_ERR_CORRUPT, "a vector index entry is malformed"); break; }
        rc = emit_pk(v, val + v->pl, hits[i].vlen - v->pl, hits[i].distance, rows);
    }
    free(vals);
    free(hits);
    return rc;
}

static int by_index(vsearch *v, tsix *ix, const float *vec, size_t dim, size_t k, int ef, json_t *rows)
{
    return by_index_filtered(v, ix, vec, dim, k, ef, v->set ? vfilter_set : vfilter, rows);
}

/* ---- exact scan ------------------------------------------------------------- */

static void sift_down(vhit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].d > h[m].d) m = l;
        if (r < n && h[r].d > h[m].d) m = r;
        if (m == i) return;
        vhit t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static void sift_up(vhit *h, size_t i)
{
    while (i > 0 && h[(i - 1) / 2].d < h[i].d) {
        vhit t = h[i]; h[i] = h[(i - 1) / 2]; h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static int cmp_hit(const void *a, const void *b)
{
    double x = ((const vhit *)a)->d, y = ((const vhit *)b)->d;
    return x < y ? -1 : x > y;
}

/* Exact search over the rows the plan yields.  cap > 0: give up with
 * TS_ERR_RESOURCE (rows untouched) past cap matching rows. */
static int by_scan(vsearch *v, size_t col, const float *vec, size_t k, size_t cap_rows, json_t *rows)
{
    const tsd_field *f = &v->t->def->cols[col];
    size_t cap = k < 4096 ? k : 4096, n = 0;
    vhit *h = malloc(cap * sizeof *h);
    float *fv = malloc((size_t)f->dimensions * sizeof *fv);
    int rc = h && fv ? TS_OK : tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    const tsq_rowset *rs;
    const uint8_t *pk;
    size_t pkl;
    size_t seen = 0;
    while (!rc && (rc = tsq_exec_next(v->e, &rs, &pk, &pkl)) == 1) {
        if (cap_rows && ++seen > cap_rows) { rc = TS_ERR_RESOURCE; break; }
        tsd_value val;
        rc = tsd_row_field(v->x->env, v->t->def, rs->row[0], rs->len[0], col, &val);
        if (rc) break;
        if (val.kind == TSD_V_NULL) continue;
        if ((rc = tsd_vector_floats(v->x->env, f, &val, fv))) break;
        double d = distance(v->metric, vec, fv, f->dimensions);
        if (n == k && !(d < h[0].d)) continue;
        json_t *row;
        if ((rc = emit_json(v, rs, d, &row))) break;
        if (n == k) {
            json_decref(h[0].row);
            h[0] = (vhit){ d, row };
            sift_down(h, n, 0);
            continue;
        }
        if (n == cap) {
            size_t nc = cap * 2 < k ? cap * 2 : k;
            vhit *nh = realloc(h, nc * sizeof *nh);
            if (!nh) { json_decref(row); rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory"); break; }
            h = nh;
            cap = nc;
        }
        h[n] = (vhit){ d, row };
        sift_up(h, n++);
    }
    if (rc == 0 && n) qsort(h, n, sizeof *h, cmp_hit);
    for (size_t i = 0; i < n; i++) {
        if (!rc && json_array_append(rows, h[i].row)) rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
        json_decref(h[i].row);
    }
    free(h);
    free(fv);
    return rc;
}

/* ---- a known set of passing rows -------------------------------------------- */

/* The k nearest as (distance, set row), in a max-heap while filling. */
typedef struct vtop { double d; size_t i; } vtop;

static void top_push(vtop *h, size_t *n, size_t k, double d, size_t i)
{
    if (*n == k) {
        if (!(d < h[0].d)) return;
        size_t p = 0;   /* replace the farthest, sift down */
        for (;;) {
            size_t l = 2 * p + 1, r = l + 1, m = p;
            double md = d;
            if (l < k && h[l].d > md) { m = l; md = h[l].d; }
            if (r < k && h[r].d > md) m = r;
            if (m == p) break;
            h[p] = h[m];
            p = m;
        }
        h[p] = (vtop){ d, i };
        return;
    }
    size_t c = (*n)++;
    while (c > 0 && h[(c - 1) / 2].d < d) { h[c] = h[(c - 1) / 2]; c = (c - 1) / 2; }
    h[c] = (vtop){ d, i };
}

static int cmp_top(const void *a, const void *b)
{
    const vtop *x = a, *y = b;
    return x->d < y->d ? -1 : x->d > y->d ? 1 : (x->i > y->i) - (x->i < y->i);
}

/* Sort the heap and append its rows (keys from the set). */
/* Row g of set, patched or not (the base's rows first, then its own):
 * the part that holds it, g made an index into that part. */
static const tsq_vset *set_part(const tsq_vset *set, size_t *g)
{
    if (!set->base) return set;
    if (*g < set->base->n) return set->base;
    *g -= set->base->n;
    return set;
}

static int emit_top(vsearch *v, const tsq_vset *set, vtop *h, size_t n, json_t *rows)
{
    qsort(h, n, sizeof *h, cmp_top);
    int rc = TS_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t pkl, g = h[i].i;
        const tsq_vset *part = set_part(set, &g);
        const uint8_t *pk = tsq_vset_key(part, g, &pkl);
        rc = emit_pk(v, pk, pkl, h[i].d, rows);
    }
    return rc;
}

/* Exact search over a set that keeps its vectors (patched: the base's rows
 * not hidden, then its own). */
static int by_set(vsearch *v, const float *vec, size_t dim, size_t k, json_t *rows)
{
    const tsq_vset *set = v->set, *base = set->base;
    size_t total = tsq_vset_rows(set), cap = k < total ? k : total, n = 0, nb = base ? base->n : 0;
    vtop *h = malloc((cap ? cap : 1) * sizeof *h);
    if (!h) return tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nb; i++)
        if (!tsq_vset_hidden(set, i)) top_push(h, &n, cap, distance(v->metric, vec, tsq_vset_vec(base, i), dim), i);
    for (size_t i = 0; i < set->n; i++)
        top_push(h, &n, cap, distance(v->metric, vec, tsq_vset_vec(set, i), dim), nb + i);
    int rc = emit_top(v, set, h, n, rows);
    free(h);
    return rc;
}

/* Keys from an index walk: past TSQ_VSET_WALK_MAX the walk costs more than
 * reading the rows the graph search asks about (TS_ERR_RESOURCE). */
#define TSQ_VSET_WALK_MAX 16384

/* How many passing rows are measured exactly rather than made the graph
 * search's filter, for a vector index ix of n entries (UINT64_MAX: ask it,
 * ts_index_vtab.count).  Measuring by the index costs about the same per
 * passing row (a key lookup and a distance, ~0.1-0.3 us); a filtered walk
 * must visit about ef x n / passing nodes to fill its beam, each several
 * times dearer (a distance and a filter lookup on a cache miss).  The two
 * meet near sqrt(c x ef x n), c ~ 4 here (docs/benchmarks.md, "Exact or
 * graph"): at ef 64, ~5 000 rows of 100K, ~16 000 of 1M, at most
 * TSQ_VSET_WALK_MAX.  Never fewer than max(1024, 20k), the cap itself when
 * the index keeps no copies to measure (rows are read then) or cannot
 * tell its size. */
static size_t base_cap(size_t k) { return k * 20 > 1024 ? k * 20 : 1024; }

static size_t exact_cap(vsearch *v, tsix *ix, size_t k, int ef, uint64_t n)
{
    size_t cap = base_cap(k);
    tstx *tx = v->x->w->tx;
    if (!ix || tsix_vectors(ix, tx, 0, NULL, NULL, NULL, NULL) != TS_OK) return cap;
    if (n == UINT64_MAX && tsix_count(ix, tx, &n) != TS_OK) return cap;
    double e = ef > 0 ? ef : 64;
    if (e < (double)k) e = (double)k;
    double c = 2.0 * sqrt(e * (double)n);
    if (c > (double)TSQ_VSET_WALK_MAX) c = TSQ_VSET_WALK_MAX;
    return (size_t)c > cap ? (size_t)c : cap;
}

static int add_key(void *ctx, const uint8_t *pk, size_t pkl)
{
    tsq_vset *s = ctx;
    if (s->n >= TSQ_VSET_WALK_MAX) return TS_ERR_RESOURCE;
    return tsq_vset_add(s, pk, pkl, NULL);
}

/* Exact search over the rows of a keys-only set (table without a TTL),
 * each found by its key with one cursor on the primary store (the row is
 * read in place, not copied). */
/* by_keys through the vector index's own copies (ix keeps exact ones),
 * a batch of keys a call: the index measures them itself when it can
 * (tsix_distances: no vector copied out), else gives their vectors back.
 * A key without an entry has no row or a null vector.  TS_ERR_UNSUPPORTED
 * (nothing done) when ix keeps no copies. */
#define TSQ_VBATCH 256
static int keys_from_index(vsearch *v, tsix *ix, size_t dim, const tsq_vset *ks, const float *vec,
                           vtop *h, size_t k, size_t *n)
{
    tstx *tx = v->x->w->tx;
    int rc = tsix_vectors(ix, tx, 0, NULL, NULL, NULL, NULL);
    if (rc) return rc;
    rc = tsix_distances(ix, tx, vec, dim, 0, NULL, NULL, NULL, NULL);
    if (rc && rc != TS_ERR_UNSUPPORTED) return rc;
    int measured = rc == TS_OK;
    rc = TS_OK;
    size_t batch = measured ? TSQ_VBATCH : 64, kcap = batch * (v->pl + 16);
    uint8_t *keys = malloc(kcap);
    float *fv = malloc(batch * (measured ? 1 : dim) * sizeof *fv);
    const void **kp = malloc(batch * sizeof *kp);
    size_t *kl = malloc(batch * sizeof *kl);
    unsigned char *found = malloc(batch);
    if (!keys || !fv || !kp || !kl || !found) rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    for (size_t base = 0; base < ks->n && !rc; base += batch) {
        size_t m = ks->n - base < batch ? ks->n - base : batch, used = 0;
        for (size_t j = 0; j < m; j++) {   /* the space's prefix and the key, packed in keys */
            size_t pkl;
            tsq_vset_key(ks, base + j, &pkl);
            used += v->pl + pkl;
        }
        if (used > kcap) {
            uint8_t *nk = realloc(keys, used);
            if (!nk) { rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory"); break; }
            keys = nk;
            kcap = used;
        }
        used = 0;
        for (size_t j = 0; j < m; j++) {
            size_t pkl;
            const uint8_t *pk = tsq_vset_key(ks, base + j, &pkl);
            memcpy(keys + used, v->pre, v->pl);
            memcpy(keys + used + v->pl, pk, pkl);
            kp[j] = keys + used;
            kl[j] = v->pl + pkl;
            used += v->pl + pkl;
        }
        if (measured) {
            rc = tsix_distances(ix, tx, vec, dim, m, kp, kl, fv, found);
            for (size_t j = 0; j < m && !rc; j++)
                if (found[j]) top_push(h, n, k, fv[j], base + j);
        } else {
            rc = tsix_vectors(ix, tx, m, kp, kl, fv, found);
            for (size_t j = 0; j < m && !rc; j++)
                if (found[j]) top_push(h, n, k, distance(v->metric, vec, fv + j * dim, dim), base + j);
        }
    }
    free(keys);
    free(fv);
    free(kp);
    free(kl);
    free(found);
    return rc;
}

static int by_keys(vsearch *v, size_t col, tsix *ix, const tsq_vset *ks, const float *vec, size_t k,
                   json_t *rows)
{
    const tsd_field *f = &v->t->def->cols[col];
    vtop *h = malloc(k * sizeof *h);
    float *fv = malloc((size_t)f->dimensions * sizeof *fv);
    int rc = h && fv ? TS_OK : tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    size_t n = 0;
    if (!rc && ix) {
        rc = keys_from_index(v, ix, f->dimensions, ks, vec, h, k, &n);
        if (!rc) goto emit;
        if (rc != TS_ERR_UNSUPPORTED) goto out;
        rc = TS_OK;
    }
    tsix_cur cur;
    int open = 0;
    tsd_buf whole = { 0 };
    if (!rc && !(rc = tsix_cursor(v->t->primary, v->x->w->tx, &cur))) open = 1;
    uint8_t key[TSROW_KEY_CAP];
    memcpy(key, v->pre, v->pl);
    for (size_t i = 0; i < ks->n && !rc; i++) {
        size_t pkl;
        const uint8_t *pk = tsq_vset_key(ks, i, &pkl);
        if (v->pl + pkl > sizeof key) { rc = tsenv_error(v->x->env, TS_ERR_CORRUPT, "primary key too long"); break; }
        memcpy(key + v->pl, pk, pkl);
        rc = tsix_seek(&cur, key, v->pl + pkl, TS_SEEK_EQ);
        if (rc == TS_ERR_NOT_FOUND) { rc = TS_OK; continue; }
        const void *ek = NULL, *ev = NULL;
        size_t ekl = 0, evl = 0;
        if (!rc) rc = tsix_entry(&cur, &ek, &ekl, &ev, &evl);
        const uint8_t *row = ev;
        size_t len = evl;
        if (!rc) rc = tsrow_fill(v->x->env, v->x->w->tx, v->t, key, v->pl + pkl, &row, &len, &whole);
        if (rc) break;
        tsd_value val;
        rc = tsd_row_field(v->x->env, v->t->def, row, len, col, &val);
        if (!rc && val.kind != TSD_V_NULL && !(rc = tsd_vector_floats(v->x->env, f, &val, fv)))
            top_push(h, &n, k, distance(v->metric, vec, fv, f->dimensions), i);
    }
    if (open) tsix_cursor_close(&cur);
    tsd_buf_free(&whole);
emit:
    if (!rc) {
        v->set = ks;   /* the rows exist in this snapshot: keys suffice */
        rc = emit_top(v, ks, h, n, rows);
        v->set = NULL;
    }
out:
    free(h);
    free(fv);
    return rc;
}

/* The search through ks, the keys of the rows passing the conditions as
 * collected by a walk that ended with rc: few (at most cap, or any number
 * without an index) are read and measured exactly; more filter the graph by
 * a hash lookup; TS_ERR_RESOURCE (more than a set holds): the row filter,
 * or a scan without an index.  Consumes ks. */
static int by_key_set(vsearch *v, size_t col, tsix *ix, tsq_vset *ks, int rc, const float *vec,
                      size_t dim, size_t k, int ef, size_t cap, json_t *rows)
{
    if (rc == TS_ERR_RESOURCE) {
        tsq_vset_clear(ks);
        return ix ? by_index(v, ix, vec, dim, k, ef, rows) : by_scan(v, col, vec, k, 0, rows);
    }
    if (!rc && (ks->n <= cap || !ix)) {
        rc = by_keys(v, col, ix, ks, vec, k, rows);
    } else if (!rc && !(rc = tsq_vset_seal(ks))) {
        v->set = ks;
        rc = by_index(v, ix, vec, dim, k, ef, rows);
        v->set = NULL;
    }
    if (rc == TS_ERR_NOMEM) rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    tsq_vset_clear(ks);
    return rc;
}

/* A plan narrowed by an index whose bounds are exactly the conditions:
 * the passing keys come from the index entries without reading rows.  Few
 * (at most cap): read and measured exactly; more: the graph search with
 * the keys as its filter.  TS_ERR_UNSUPPORTED when the bounds are not
 * exactly the conditions (nothing done). */
static int by_index_keys(vsearch *v, size_t col, tsix *ix, const float *vec, size_t dim, size_t k, int ef,
                         json_t *rows)
{
    tsq_vset ks;
    if (tsq_vset_init(&ks, 0)) return tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    int rc = tsq_exec_keys_fast(v->e, add_key, &ks);
    if (rc == TS_ERR_UNSUPPORTED) {
        tsq_vset_clear(&ks);
        return rc;
    }
    size_t cap = base_cap(k);
    if (!rc && ks.n > cap) cap = exact_cap(v, ix, k, ef, UINT64_MAX);
    /* thousands of keys, or more than a walk takes: a column set's binary
     * search and view would have served without the walk (1M rows, 1%:
     * 10 000 keys) */
    if (rc == TS_ERR_RESOURCE || (!rc && ks.n > 4 * base_cap(k))) v->wide = rc ? TSQ_VSET_WALK_MAX : ks.n;
    return by_key_set(v, col, ix, &ks, rc, vec, dim, k, ef, cap, rows);
}

/* ---- column sets ------------------------------------------------------------ */

static int value_kind_ok(tsd_vkind k)
{
    return k == TSD_V_NULL || k == TSD_V_INT || k == TSD_V_BOOL || k == TSD_V_DOUBLE;
}

int tsq_vector_column(tsq_exec *e, size_t *col, int *narrowed)
{
    const tsq_cgroup *g = tsq_exec_conds(e);
    tsq_ctx *x = tsq_exec_ctx(e);
    if (!g->n || x->src[0].t->ttl) return 0;
    for (size_t i = 0; i < g->n; i++) {
        const tsq_cterm *ct = &g->t[i];
        if (ct->kind != TSQ_LEAF || ct->or_before || ct->src != 0 || ct->col != g->t[0].col ||
            ct->op == TSQ_LIKE || ct->op == TSQ_NOT_LIKE || ct->f->type == TSD_BIGINT ||
            ct->f->type == TSD_VECTOR)   /* values of other kinds only; rows may not hold vectors */
            return 0;
    }
    *col = g->t[0].col;
    *narrowed = tsq_exec_narrow(e);
    return 1;
}

int tsq_vector_column_build(tsq_exec *e, size_t col, tsq_vset **out)
{
    *out = NULL;
    tsq_ctx *x = tsq_exec_ctx(e);
    tstbl *t = x->src[0].t;
    uint8_t pre[16];
    size_t pl = ts_key_int(pre, sizeof pre, 0, (int64_t)x->src[0].space);
    tsq_vset *s = malloc(sizeof *s);
    if (!s || tsq_vset_init(s, 0)) {
        free(s);
        return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
    }
    tsix_cur cur;
    int rc = tsix_cursor(t->primary, x->w->tx, &cur);
    if (rc) { tsq_vset_clear(s); free(s); return rc; }
    for (rc = tsix_seek(&cur, pre, pl, TS_SEEK_GE); rc == TS_OK; rc = tsix_next(&cur)) {
        const void *k, *v;
        size_t kl, vl;
        if ((rc = tsix_entry(&cur, &k, &kl, &v, &vl))) break;
        if (kl < pl || memcmp(k, pre, pl) != 0) break;
        tsd_value val;
        if ((rc = tsd_row_field(x->env, t->def, v, vl, col, &val))) break;
        if (!value_kind_ok(val.kind)) { rc = TS_ERR_UNSUPPORTED; break; }
        if ((rc = tsq_vset_add(s, (const uint8_t *)k + pl, kl - pl, NULL)) ||
            (rc = tsq_vset_add_value(s, &val)))
            break;
    }
    tsix_cursor_close(&cur);
    if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
    if (!rc) rc = tsq_vset_order(s);  /* integer ranges by two binary searches */
    if (!rc) rc = tsq_vset_seal(s);   /* the graph's filter finds rows by key */
    if (rc) {
        tsq_vset_clear(s);
        free(s);
        return rc == TS_ERR_NOMEM ? tsenv_error(x->env, rc, "out of memory") : rc;
    }
    *out = s;
    return TS_OK;
}

/* Changes past this share of a column set's rows: build it again (a
 * patched set copies its own rows and its hidden bits at every version). */
#define TSQ_VSET_PATCH_MIN 4096
static size_t patch_max(const tsq_vset *base)
{
    return base->n / 16 > TSQ_VSET_PATCH_MIN ? base->n / 16 : TSQ_VSET_PATCH_MIN;
}

/* The changed keys of chg in a sealed set of their own (ck, initialised
 * here): a key may be listed more than once, tsq_vset_find gives the
 * first. */
static int changed_keys(const tstbl_keys *chg, tsq_vset *ck)
{
    int rc = tsq_vset_init(ck, 0);
    for (size_t i = 0; i < chg->n && !rc; i++)
        rc = tsq_vset_add(ck, chg->kb + chg->ko[i], chg->ko[i + 1] - chg->ko[i], NULL);
    if (!rc) rc = tsq_vset_seal(ck);
    return rc;
}

/* The start of a patch of old (patched or not) with the keys chg lists:
 * *s a patched set over old's base without rows of its own yet, *ck the
 * changed keys (a key may repeat: tsq_vset_find gives its first place).
 * TS_ERR_RESOURCE when the changes since the base pass patch_max. */
static int patch_begin(tsq_ctx *x, tsq_vset *old, const tstbl_keys *chg, tsq_vset **s, tsq_vset *ck)
{
    const tsq_vset *base = old->base ? old->base : old;
    size_t own = old->base ? old->n + old->nhidden : 0;
    *s = NULL;
    if (own + chg->n > patch_max(base)) return TS_ERR_RESOURCE;
    tsq_vset *p = malloc(sizeof *p);
    int rc = changed_keys(chg, ck);
    if (!p || rc || tsq_vset_patch_init(p, old)) {
        free(p);
        tsq_vset_clear(ck);
        return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
    }
    *s = p;
    return TS_OK;
}

int tsq_vector_column_patch(tsq_exec *e, size_t col, tsq_vset *old, const tstbl_keys *chg, tsq_vset **out)
{
    *out = NULL;
    tsq_ctx *x = tsq_exec_ctx(e);
    tstbl *t = x->src[0].t;
    if (!old->val) return TS_ERR_RESOURCE;
    tsq_vset *s, ck;
    int rc = patch_begin(x, old, chg, &s, &ck);
    if (rc) return rc;
    /* the rows old had changed that did not change again */
    for (size_t i = 0; old->base && i < old->n && !rc; i++) {
        size_t pkl;
        const uint8_t *pk = tsq_vset_key(old, i, &pkl);
        if (tsq_vset_has(&ck, pk, pkl)) continue;
        if (!(rc = tsq_vset_add(s, pk, pkl, NULL))) rc = tsq_vset_add_vval(s, old->val[i]);
    }
    /* the changed rows as the snapshot has them */
    uint8_t key[TSROW_KEY_CAP];
    size_t pl = ts_key_int(key, sizeof key, 0, (int64_t)x->src[0].space);
    for (size_t i = 0; i < ck.n && !rc; i++) {
        size_t pkl;
        const uint8_t *pk = tsq_vset_key(&ck, i, &pkl);
        if (tsq_vset_find(&ck, pk, pkl) != (long)i) continue;   /* listed before */
        if (pl + pkl > sizeof key) { rc = tsenv_error(x->env, TS_ERR_CORRUPT, "primary key too long"); break; }
        tsq_vset_hide(s, pk, pkl);
        memcpy(key + pl, pk, pkl);
        void *row = NULL;
        size_t rl = 0;
        rc = tsix_get(t->primary, x->w->tx, key, pl + pkl, &row, &rl);
        if (rc == TS_ERR_NOT_FOUND) { rc = TS_OK; continue; }   /* deleted */
        tsd_value val;
        if (!rc) rc = tsd_row_field(x->env, t->def, row, rl, col, &val);
        if (!rc && !value_kind_ok(val.kind)) rc = TS_ERR_UNSUPPORTED;
        if (!rc && !(rc = tsq_vset_add(s, pk, pkl, NULL))) rc = tsq_vset_add_value(s, &val);
        free(row);
    }
    tsq_vset_clear(&ck);
    if (!rc) rc = tsq_vset_order(s);
    if (!rc) rc = tsq_vset_seal(s);
    if (rc) {
        tsq_vset_free(s);
        return rc == TS_ERR_NOMEM ? tsenv_error(x->env, rc, "out of memory") : rc;
    }
    *out = s;
    return TS_OK;
}

int tsq_vector_set_patch(tsq_exec *e, const char *field, tsq_vset *old, const tstbl_keys *chg,
                         tsq_vset **out)
{
    *out = NULL;
    tsq_ctx *x = tsq_exec_ctx(e);
    tstbl *t = x->src[0].t;
    int src;
    size_t col;
    int rc = tsq_resolve(x, field, &src, &col);
    if (rc) return rc;
    const tsd_field *f = &t->def->cols[col];
    if (src != 0 || f->type != TSD_VECTOR || old->val) return TS_ERR_UNSUPPORTED;
    const tsq_vset *base = old->base ? old->base : old;
    float *fv = malloc((size_t)f->dimensions * sizeof *fv);
    if (!fv) return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
    tsq_vset *s, ck;
    if ((rc = patch_begin(x, old, chg, &s, &ck))) {
        free(fv);
        return rc;
    }
    /* the rows old had changed that did not change again, as they were */
    for (size_t i = 0; old->base && i < old->n && !rc; i++) {
        size_t pkl;
        const uint8_t *pk = tsq_vset_key(old, i, &pkl);
        if (!tsq_vset_has(&ck, pk, pkl)) rc = tsq_vset_add(s, pk, pkl, tsq_vset_vec(old, i));
    }
    /* the changed ones that pass the conditions now, with their vectors */
    uint64_t space = x->src[0].space;
    for (size_t i = 0; i < ck.n && !rc; i++) {
        size_t pkl;
        const uint8_t *pk = tsq_vset_key(&ck, i, &pkl);
        if (tsq_vset_find(&ck, pk, pkl) != (long)i) continue;   /* listed before */
        tsq_vset_hide(s, pk, pkl);
        tsrow r;
        rc = tsrow_read_fill(x->w, t, space, pk, pkl, 1, 1, &r);
        if (rc == TS_ERR_NOT_FOUND) { rc = TS_OK; continue; }   /* deleted */
        if (rc) break;
        tsq_rowset rs = { { r.row }, { r.len } };
        int pass = tsq_exec_match(e, &rs);
        tsd_value val;
        if (pass < 0) rc = pass;
        else if (pass && !(rc = tsd_row_field(x->env, t->def, r.row, r.len, col, &val)) && val.kind != TSD_V_NULL &&
                 !(rc = tsd_vector_floats(x->env, f, &val, fv)))
            rc = tsq_vset_add(s, pk, pkl, fv);
        tsrow_done(&r);
    }
    tsq_vset_clear(&ck);
    free(fv);
    /* a set past TSQ_VSET_EXACT_MAX kept no vectors: once few enough rows
     * pass to keep them again, a new set (build_set) measures them exactly */
    if (!rc && !base->dim && tsq_vset_rows(s) <= TSQ_VSET_EXACT_MAX) rc = TS_ERR_RESOURCE;
    if (!rc) rc = tsq_vset_seal(s);
    if (rc) {
        tsq_vset_free(s);
        return rc == TS_ERR_NOMEM ? tsenv_error(x->env, rc, "out of memory") : rc;
    }
    *out = s;
    return TS_OK;
}

static int col_pass(const tsq_cgroup *g, const tsq_vset *cs, size_t i)
{
    /* once a row per search: no call, no copy of a whole tsd_value */
    const tsq_vval *x = &cs->val[i];
    tsd_value v = { .kind = (tsd_vkind)x->kind };
    if (x->kind == TSD_V_DOUBLE) v.d = x->u.d;
    else v.i = x->u.i;
    int pass = 1;
    for (size_t j = 0; j < g->n && pass; j++) pass = tsq_leaf_value(&g->t[j], &v);
    return pass;
}

/* Conditions that are each =, >, >=, <, <= or BETWEEN with integer
 * operands (a category, a time window) as one interval lo..hi, possibly
 * empty: a row passes when its value is an integer in it (NULL passes
 * none of these).  Then the pass over every row of a column set compares
 * two integers instead of calling the condition code per leaf (a third of
 * a 1%-filtered search at 100K rows).  0: not of that form. */
static int int_range(const tsq_cgroup *g, int64_t *lo_out, int64_t *hi_out)
{
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    for (size_t j = 0; j < g->n; j++) {
        const tsq_cterm *ct = &g->t[j];
        if (ct->v.kind != TSD_V_INT) return 0;
        int64_t c = ct->v.i, a = INT64_MIN, b = INT64_MAX;
        switch (ct->op) {
        case TSQ_EQ: a = b = c; break;
        case TSQ_GE: a = c; break;
        case TSQ_LE: b = c; break;
        case TSQ_GT:
            if (c == INT64_MAX) return *lo_out = 1, *hi_out = 0, 1;   /* nothing passes */
            a = c + 1;
            break;
        case TSQ_LT:
            if (c == INT64_MIN) return *lo_out = 1, *hi_out = 0, 1;
            b = c - 1;
            break;
        case TSQ_BETWEEN:
            if (ct->v2.kind != TSD_V_INT) return 0;
            a = c;
            b = ct->v2.i;
            break;
        default:
            return 0;
        }
        if (a > lo) lo = a;
        if (b < hi) hi = b;
    }
    *lo_out = lo;
    *hi_out = hi;
    return 1;
}

/* Whether row i of column set cs passes the search's conditions. */
static inline int row_pass(const vsearch *v, const tsq_cgroup *g, const tsq_vset *cs, size_t i)
{
    const tsq_vval *x = &cs->val[i];
    if (v->ranged && x->kind == TSD_V_INT) return x->u.i >= v->lo && x->u.i <= v->hi;
    if (v->ranged && x->kind == TSD_V_NULL) return 0;
    return col_pass(g, cs, i);
}

/* The graph's filter through a column set: the row's value by its key. */
static int vfilter_col(void *ctx, const void *val, size_t vl)
{
    vsearch *v = ctx;
    if (vl < v->pl || memcmp(val, v->pre, v->pl) != 0) return 0;
    const tsq_vset *in = v->colset;
    const uint8_t *pk = (const uint8_t *)val + v->pl;
    /* once per node the graph meets: a set not patched takes one lookup */
    long i = in->base ? tsq_vset_col_find(in, pk, vl - v->pl, &in) : tsq_vset_find(in, pk, vl - v->pl);
    return i >= 0 && row_pass(v, tsq_exec_conds(v->e), in, (size_t)i);
}

/* The rows of column set cs passing (a patched set's: the base's rows
 * not hidden, then its own) from..to - 1 of each part, as a set of keys
 * (ks, initialised here). */
static int col_keys(const vsearch *v, const tsq_vset *cs, const size_t from[2], const size_t to[2],
                    int test, tsq_vset *ks)
{
    if (tsq_vset_init(ks, 0)) return TS_ERR_NOMEM;
    const tsq_cgroup *g = tsq_exec_conds(v->e);
    const tsq_vset *part[2] = { cs->base ? cs->base : cs, cs->base ? cs : NULL };
    int rc = TS_OK;
    for (int p = 0; p < 2 && part[p] && !rc; p++) {
        for (size_t i = from[p]; i < to[p] && !rc; i++) {
            if (p == 0 && cs->base && tsq_vset_hidden(cs, i)) continue;
            if (test && !row_pass(v, g, part[p], i)) continue;
            size_t pkl;
            const uint8_t *pk = tsq_vset_key(part[p], i, &pkl);
            rc = tsq_vset_add(ks, pk, pkl, NULL);
        }
    }
    return rc;
}

/* Hidden rows of a patched set's base among rows from..to - 1. */
static size_t hidden_in(const tsq_vset *cs, size_t from, size_t to)
{
    size_t n = 0, i = from;
    if (!cs->nhidden) return 0;
    for (; i < to && (i & 63); i++) n += (size_t)tsq_vset_hidden(cs, i);
    for (; i + 64 <= to; i += 64) n += (size_t)__builtin_popcountll(cs->hidden[i >> 6]);
    for (; i < to; i++) n += (size_t)tsq_vset_hidden(cs, i);
    return n;
}

/* The search through a column set: the conditions evaluated on the cached
 * values instead of rows read.  An integer range on a set in value order:
 * the passing rows are counted and found by two binary searches, their
 * keys in sequence.  Otherwise a sample of the rows estimates how many
 * pass.  Few (exact_cap) are measured exactly; more, and the graph's
 * filter looks each candidate's value up by key. */
static int by_column(vsearch *v, size_t col, tsix *ix, const tsq_vset *cs, const float *vec,
                     size_t dim, size_t k, int ef, json_t *rows)
{
    const tsq_cgroup *g = tsq_exec_conds(v->e);
    const tsq_vset *base = cs->base ? cs->base : cs;   /* a patched set: its own rows are few */
    size_t cap = base_cap(k), total = tsq_vset_rows(cs);
    size_t from[2] = { 0, 0 }, to[2] = { base->n, cs->base ? cs->n : 0 }, pass = 0, hid = 0;
    v->ranged = int_range(g, &v->lo, &v->hi);
    /* ordered: the passing rows by value, counted exactly */
    /* a patched set is ordered only when its own rows are too */
    int ordered = v->ranged && cs->ordered && tsq_vset_range(base, v->lo, v->hi, &from[0], &to[0]), graph = 0;
    if (ordered && cs->base) {
        tsq_vset_range(cs, v->lo, v->hi, &from[1], &to[1]);
        hid = hidden_in(cs, from[0], to[0]);
        pass = to[0] - from[0] - hid + to[1] - from[1];
    } else if (ordered) {
        pass = to[0] - from[0];
    }
    if (ordered) {
        if (ix && pass > cap) cap = exact_cap(v, ix, k, ef, total);   /* only when it matters */
        graph = ix && pass > cap;
    } else {
        cap = exact_cap(v, ix, k, ef, total);
        if (ix && base->n > 4 * cap) {   /* a sample of the base estimates how many pass */
            size_t step = base->n / 1024, hit = 0, seen = 0;
            for (size_t i = 0; i < base->n; i += step, seen++) hit += (size_t)row_pass(v, g, base, i);
            graph = hit * base->n > 2 * cap * seen;
        }
    }
    if (graph) {
        v->colset = cs;
        int rc = by_index_filtered(v, ix, vec, dim, k, ef, vfilter_col, rows);
        v->colset = NULL;
        return rc;
    }
    tsq_vset ks;
    if (ordered && !hid && to[1] == from[1]) {   /* the base's rows alone, in sequence */
        tsq_vset_range_view(base, from[0], to[0], &ks);
        return by_keys(v, col, ix, &ks, vec, k, rows);
    }
    int rc = col_keys(v, cs, from, to, !ordered, &ks);
    return by_key_set(v, col, ix, &ks, rc, vec, dim, k, ef, cap, rows);
}

/* Exact search over the rows the plan yields that also collects them into
 * a new set (*out).  TS_ERR_RESOURCE (nothing appended, no set): more rows
 * pass than a set holds. */
static int build_set(vsearch *v, size_t col, const float *vec, size_t k, tsq_vset **out, json_t *rows)
{
    const tsd_field *f = &v->t->def->cols[col];
    tsq_vset *set = malloc(sizeof *set);
    vtop *h = malloc(k * sizeof *h);
    float *fv = malloc((size_t)f->dimensions * sizeof *fv);
    int rc = set && h && fv ? tsq_vset_init(set, f->dimensions) : TS_ERR_NOMEM;
    if (rc == TS_ERR_NOMEM) {
        free(set);
        set = NULL;
    }
    const tsq_rowset *rs;
    const uint8_t *pk;
    size_t pkl, n = 0;
    while (!rc && (rc = tsq_exec_next(v->e, &rs, &pk, &pkl)) == 1) {
        tsd_value val;
        rc = tsd_row_field(v->x->env, v->t->def, rs->row[0], rs->len[0], col, &val);
        if (rc) break;
        if (val.kind == TSD_V_NULL) continue;
        if ((rc = tsd_vector_floats(v->x->env, f, &val, fv))) break;
        if ((rc = tsq_vset_add(set, pk, pkl, fv))) break;
        top_push(h, &n, k, distance(v->metric, vec, fv, f->dimensions), set->n - 1);
    }
    if (!rc) rc = tsq_vset_seal(set);
    if (!rc) {
        v->set = set;
        rc = emit_top(v, set, h, n, rows);
        v->set = NULL;
    }
    if (rc == TS_ERR_NOMEM) rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    if (rc && set) {
        tsq_vset_clear(set);
        free(set);
        set = NULL;
    }
    free(h);
    free(fv);
    *out = set;
    return rc;
}

/* Whether e's conditions are an integer range that column set cs, in
 * value order, answers by binary search: on a plan an index narrows, what
 * the set does at least as well as the index's entries. */
static int col_ranged(tsq_exec *e, const tsq_vset *cs)
{
    int64_t lo, hi;
    return cs->ordered && int_range(tsq_exec_conds(e), &lo, &hi);
}

/* Whether conditions read a vector column, or the whole row (custom ones). */
static int conds_read_vectors(const tsq_cgroup *g)
{
    for (size_t i = 0; g && i < g->n; i++) {
        const tsq_cterm *ct = &g->t[i];
        if (ct->kind == TSQ_CUSTOM || (ct->kind == TSQ_LEAF && ct->f && ct->f->type == TSD_VECTOR) ||
            (ct->kind == TSQ_GROUP && conds_read_vectors(&ct->g)))
            return 1;
    }
    return 0;
}

int tsq_vector_search(tsq_exec *e, const char *field, const float *vec, size_t dim, size_t k,
                      int ef, int metric, const tsq_vset *set, tsq_vset **built,
                      const tsq_vset *colset, uint64_t *wide, json_t *rows)
{
    if (built) *built = NULL;
    if (wide) *wide = 0;
    tsq_ctx *x = tsq_exec_ctx(e);
    int src, rc;
    size_t col;
    if ((rc = tsq_resolve(x, field, &src, &col))) return rc;
    tstbl *t = x->src[0].t;
    const tsd_field *f = &t->def->cols[col];
    if (src != 0 || f->type != TSD_VECTOR)
        return tsenv_error(x->env, TS_ERR_VALIDATION, "%s.%s is not a vector field", t->def->name,
                           f->name);
    /* the hit arrays hold k entries: refuse sizes no search can fill */
    if (k > TSQ_VECTOR_K_MAX)
        return tsenv_error(x->env, TS_ERR_RANGE, "k = %zu is too large (at most %d)", k, TSQ_VECTOR_K_MAX);
    if (dim != f->dimensions)
        return tsenv_error(x->env, TS_ERR_VALIDATION, "%s.%s has %u dimensions, the query vector %zu",
                           t->def->name, f->name, f->dimensions, dim);
    for (size_t i = 0; i < dim; i++)
        if (!isfinite(vec[i]))
            return tsenv_error(x->env, TS_ERR_VALIDATION, "the query vector's element %zu is not "
                               "a finite number", i);
    long ixn = -1;
    for (size_t i = 0; i < t->def->nindexes && ixn < 0; i++)
        if (t->def->indexes[i].vector_config && t->def->indexes[i].cols[0] == col && t->ix[i])
            ixn = (long)i;
    /* another metric than the index's: an exact scan by it */
    if (ixn >= 0 && metric >= 0 && metric != metric_of(&t->def->indexes[ixn])) ixn = -1;
    vsearch v = { .e = e, .x = x, .t = t, .space = x->src[0].space,
                  .read_rows = tsq_exec_has_cond(e) || t->ttl != NULL,
                  .cond_vectors = conds_read_vectors(tsq_exec_conds(e)),
                  .show_vectors = tsq_exec_shows_vectors(e, 0),
                  .metric = metric >= 0 ? metric : metric_of(ixn >= 0 ? &t->def->indexes[ixn] : NULL) };
    v.pl = ts_key_int(v.pre, sizeof v.pre, 0, (int64_t)v.space);
    /* rows of TTL tables expire: sets are not used for them */
    int sets = !t->ttl && tsq_exec_has_cond(e);
    if (sets && set) {
        v.set = set;
        if (set->dim == dim) return by_set(&v, vec, dim, k, rows);
        if (ixn >= 0) return by_index(&v, t->ix[ixn], vec, dim, k, ef, rows);
        v.set = NULL;   /* keys only and no index: scan */
    } else if (sets && colset && colset->val && (!tsq_exec_narrow(e) || col_ranged(e, colset))) {
        return by_column(&v, col, ixn >= 0 ? t->ix[ixn] : NULL, colset, vec, dim, k, ef, rows);
    } else if (sets && built) {
        /* TS_ERR_RESOURCE: too many rows pass to keep; the caller runs
         * the search again on a new executor, without a set */
        return build_set(&v, col, vec, k, built, rows);
    }
    if (ixn < 0) return by_scan(&v, col, vec, k, 0, rows);
    /* Conditions that narrow the plan through an index may leave few rows:
     * measure those exactly (cheaper than a graph search whose filter
     * rejects most nodes); past exact_cap of them, search the graph. */
    if (tsq_exec_narrow(e)) {
        size_t cap = base_cap(k);
        if (!t->ttl) {
            rc = by_index_keys(&v, col, t->ix[ixn], vec, dim, k, ef, rows);
            if (rc != TS_ERR_UNSUPPORTED) goto out;
        }
        rc = by_scan(&v, col, vec, k, cap, rows);
        if (rc != TS_ERR_RESOURCE) goto out;
        v.wide = cap;   /* the rows scanned before giving up */
    }
    rc = by_index(&v, t->ix[ixn], vec, dim, k, ef, rows);
out:
    if (wide) {
        int64_t lo, hi;   /* only a range can take a column set's binary search (col_ranged) */
        *wide = !rc && int_range(tsq_exec_conds(e), &lo, &hi) ? v.wide : 0;
    }
    return rc;
}
