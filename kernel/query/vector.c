/* Nearest-neighbour search over a vector field: through its ngh index
 * with the query's conditions as the filter, or an exact scan. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "query/exec.h"

enum { VM_COSINE, VM_L2, VM_IP };
#define TSQ_VECTOR_K_MAX 1000000   /* as the ngh module */

typedef struct vsearch {
    tsq_exec *e;
    tsq_ctx  *x;
    tstbl    *t;
    uint64_t  space;
    uint8_t   pre[16];     /* the space prefix of the index values */
    size_t    pl;
    int       read_rows;   /* the filter must look at the row (conditions, TTL) */
    int       metric;
} vsearch;

/* A result on its way out, kept in a max-heap on distance (exact scan). */
typedef struct vhit { double d; json_t *row; } vhit;

static int metric_of(const tsd_index *ix)
{
    const char *m = ix ? json_string_value(json_object_get(ix->vector_config, "distanceMetric")) : NULL;
    if (m && !strcmp(m, "l2")) return VM_L2;
    if (m && !strcmp(m, "innerProduct")) return VM_IP;
    return VM_COSINE;   /* the ngh default, also for scans without an index */
}

static double score_of(int metric, double d)
{
    return metric == VM_L2 ? 1.0 / (1.0 + d) : metric == VM_COSINE ? 1.0 - d : -d;
}

static double distance(int metric, const float *a, const float *b, size_t n)
{
    double s = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        if (metric == VM_L2) s += (x - y) * (x - y);
        else { s += x * y; na += x * x; nb += y * y; }
    }
    if (metric == VM_L2) return sqrt(s);
    if (metric == VM_IP) return -s;
    return na > 0 && nb > 0 ? 1.0 - s / (sqrt(na) * sqrt(nb)) : 1.0;
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
    int rc = tsrow_read(v->x->w, v->t, v->space, (const uint8_t *)val + v->pl, vl - v->pl, 1, &r);
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

static int by_index(vsearch *v, tsix *ix, const float *vec, size_t dim, size_t k, int ef, json_t *rows)
{
    ts_knn_hit *hits = malloc(k * sizeof *hits);
    if (!hits) return tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    size_t n = 0;
    int rc = tsix_knn(ix, v->x->w->tx, vec, dim, k, ef, vfilter, v, hits, &n);
    for (size_t i = 0; i < n && !rc; i++) {
        const uint8_t *val = hits[i].val;
        if (hits[i].vlen < v->pl) { rc = tsenv_error(v->x->env, TS_ERR_CORRUPT, "a vector index entry is malformed"); break; }
        json_t *row = NULL;
        int fast = v->read_rows ? TS_ERR_UNSUPPORTED
                                : pk_only_row(v, val + v->pl, hits[i].vlen - v->pl, &row);
        if (fast == TS_OK) {
            if (json_object_set_new(row, "_distance", json_real(hits[i].distance)) ||
                json_object_set_new(row, "_score", json_real(score_of(v->metric, hits[i].distance))) ||
                json_array_append_new(rows, row))
                rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
            continue;
        }
        if (fast != TS_ERR_UNSUPPORTED) { rc = fast; break; }
        tsrow r;
        rc = tsrow_read(v->x->w, v->t, v->space, val + v->pl, hits[i].vlen - v->pl, 1, &r);
        if (rc == TS_ERR_NOT_FOUND)
            rc = tsenv_error(v->x->env, TS_ERR_CORRUPT, "%s: the vector index has an entry for a "
                             "missing row", v->t->def->name);
        if (rc) break;
        tsq_rowset rs = { { r.row }, { r.len } };
        rc = emit_json(v, &rs, hits[i].distance, &row);
        tsrow_done(&r);
        if (!rc && json_array_append_new(rows, row)) rc = tsenv_error(v->x->env, TS_ERR_NOMEM, "out of memory");
    }
    free(hits);
    return rc;
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

int tsq_vector_search(tsq_exec *e, const char *field, const float *vec, size_t dim, size_t k,
                      int ef, json_t *rows)
{
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
    vsearch v = { e, x, t, x->src[0].space, { 0 }, 0, tsq_exec_has_cond(e) || t->ttl != NULL,
                  metric_of(ixn >= 0 ? &t->def->indexes[ixn] : NULL) };
    v.pl = ts_key_int(v.pre, sizeof v.pre, 0, (int64_t)v.space);
    if (ixn < 0) return by_scan(&v, col, vec, k, 0, rows);
    /* Conditions that narrow the plan through an index may leave few rows:
     * measure those exactly (cheaper than a graph search whose filter
     * rejects most nodes); past max(1024, 20k) of them, search the graph. */
    if (tsq_exec_narrow(e)) {
        size_t cap = k * 20 > 1024 ? k * 20 : 1024;
        rc = by_scan(&v, col, vec, k, cap, rows);
        if (rc != TS_ERR_RESOURCE) return rc;
    }
    return by_index(&v, t->ix[ixn], vec, dim, k, ef, rows);
}
