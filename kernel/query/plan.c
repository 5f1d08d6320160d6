/* The planner: the cheapest access path for the conditions on the queried
 * table (docs/queries.md "Plans").  Every candidate row is checked against
 * the whole condition afterwards, so a plan only has to find a superset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "query/query.h"

#define COST_FULL 1000000.0

static int keys_add(tsq_ctx *x, tsq_keys *k, const uint8_t *p, size_t n)
{
    uint8_t **nk = realloc(k->k, (k->n + 1) * sizeof *nk);
    size_t *nl = nk ? realloc(k->kl, (k->n + 1) * sizeof *nl) : NULL;
    if (nk) k->k = nk;
    if (nl) k->kl = nl;
    uint8_t *c = nl ? malloc(n ? n : 1) : NULL;
    if (!c) return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
    memcpy(c, p, n);
    k->k[k->n] = c;
    k->kl[k->n++] = n;
    return TS_OK;
}

/* keys_add, skipping a key already there (IN [20, 20], [20, "20"]) */
static int keys_add_once(tsq_ctx *x, tsq_keys *k, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->kl[i] == n && memcmp(k->k[i], p, n) == 0) return TS_OK;
    return keys_add(x, k, p, n);
}

static void keys_free(tsq_keys *k)
{
    for (size_t i = 0; i < k->n; i++) free(k->k[i]);
    free(k->k);
    free(k->kl);
    memset(k, 0, sizeof *k);
}

void tsq_plan_free(tsq_plan *p)
{
    keys_free(&p->keys);
    for (size_t i = 0; i < p->nsub; i++) tsq_plan_free(&p->sub[i]);
    free(p->sub);
    p->sub = NULL;
    p->nsub = 0;
}

static int is_ordered(const tstbl *t, long ix)
{
    return ix < 0 || (((const ts_index_vtab *)t->ix[ix]->vt)->caps & TS_INDEX_ORDERED);
}

/* The leaves of one AND-run on source 0, for a column. */
static const tsq_cterm *find_leaf(const tsq_cterm *run, size_t n, int src, size_t col, int op)
{
    for (size_t i = 0; i < n; i++)
        if (run[i].kind == TSQ_LEAF && run[i].src == src && run[i].col == col && run[i].op == op)
            return &run[i];
    return NULL;
}

static int value_key(tsq_ctx *x, const tsd_field *f, const tsd_value *v, uint8_t *k, size_t *off)
{
    int rc = tsd_value_key(x->env, f, v, k, TSROW_KEY_CAP, off);
    if (!rc && *off > TS_INDEX_KEY_MAX) rc = TS_ERR_RESOURCE;
    return rc;
}

/* Range bounds on column col from the run's leaves (tightest of each side). */
static int range_bounds(tsq_ctx *x, const tsq_cterm *run, size_t n, int src, size_t col,
                        const tsd_field *f, tsq_plan *p, int *found)
{
    const tsd_value *lo = NULL, *hi = NULL;
    int lo_incl = 1, hi_incl = 1;
    *found = 0;
    for (size_t i = 0; i < n; i++) {
        const tsq_cterm *c = &run[i];
        if (c->kind != TSQ_LEAF || c->src != src || c->col != col) continue;
        const tsd_value *l = NULL, *h = NULL;
        int li = 1, hi_i = 1;
        switch (c->op) {
        case TSQ_GT: l = &c->v; li = 0; break;
        case TSQ_GE: l = &c->v; break;
        case TSQ_LT: h = &c->v; hi_i = 0; break;
        case TSQ_LE: h = &c->v; break;
        case TSQ_BETWEEN: l = &c->v; h = &c->v2; break;
        default: continue;
        }
        if (l) {
            int cmp = lo ? tsd_value_cmp(f, l, lo) : 1;
            if (cmp > 0 || (cmp == 0 && !li)) { lo = l; lo_incl = li; }
        }
        if (h) {
            int cmp = hi ? tsd_value_cmp(f, h, hi) : -1;
            if (cmp < 0 || (cmp == 0 && !hi_i)) { hi = h; hi_incl = hi_i; }
        }
        *found = 1;
    }
    if (!*found) return TS_OK;
    memcpy(p->lo, p->prefix, p->prefix_len);
    p->lo_len = p->prefix_len;
    int rc = TS_OK;
    if (lo) {
        rc = value_key(x, f, lo, p->lo, &p->lo_len);
        p->lo_incl = lo_incl;
    } else {
        p->lo_len = ts_key_null(p->lo, TSROW_KEY_CAP, p->lo_len); /* nulls never match a range */
        p->lo_incl = 0;
    }
    if (!rc && hi) {
        memcpy(p->hi, p->prefix, p->prefix_len);
        p->hi_len = p->prefix_len;
        rc = value_key(x, f, hi, p->hi, &p->hi_len);
        p->hi_incl = hi_incl;
    }
    return rc;
}

int tsq_plan_run(tsq_ctx *x, int src, const tsq_cterm *run, size_t n, tsq_plan *p, double *cost_out)
{
    const tstbl *t = x->src[src].t;
    const tsd_table *d = t->def;
    uint64_t space = x->src[src].space;
    double best = COST_FULL;
    memset(p, 0, sizeof *p);
    p->src = src;
    p->access = TSQ_FULL;
    p->order_col = 0;
    p->pk_ordered = 1;
    p->prefix_len = ts_key_int(p->prefix, TSROW_KEY_CAP, 0, (int64_t)space);
    snprintf(p->desc, sizeof p->desc, "full scan");

    /* primary key: equality, IN, range */
    const tsq_cterm *eq = find_leaf(run, n, src, 0, TSQ_EQ), *in = find_leaf(run, n, src, 0, TSQ_IN);
    if (eq || in) {
        tsq_plan c = *p;
        memset(&c.keys, 0, sizeof c.keys);
        c.access = TSQ_PK_KEYS;
        const tsd_value *vals = eq ? &eq->v : in->set;
        size_t nv = eq ? 1 : in->nset;
        int rc = TS_OK;
        for (size_t i = 0; i < nv && !rc; i++) {
            uint8_t k[TSROW_KEY_CAP];
            size_t off = 0;
            if (value_key(x, &d->cols[0], &vals[i], k, &off) == TS_OK) rc = keys_add(x, &c.keys, k, off);
        }
        if (rc) { keys_free(&c.keys); return rc; }
        snprintf(c.desc, sizeof c.desc, "primary key lookup (%zu key%s)", nv, nv == 1 ? "" : "s");
        *p = c;
        best = (double)nv;
    }
    if (best > 50) {
        tsq_plan c = *p;
        int found;
        int rc = range_bounds(x, run, n, src, 0, &d->cols[0], &c, &found);
        if (rc) return rc;
        if (found) {
            c.access = TSQ_PK_RANGE;
            snprintf(c.desc, sizeof c.desc, "primary key range");
            *p = c;
            best = 50;
        }
    }

    /* secondary indexes: an equality prefix, then IN or a range */
    for (size_t i = 0; i < d->nindexes; i++) {
        const tsd_index *ix = &d->indexes[i];
        if (!t->ix[i] || strcmp(ix->module, "ngh") == 0) continue;
        int ordered = is_ordered(t, (long)i);
        tsq_plan c;
        memset(&c, 0, sizeof c);
        c.access = TSQ_IX_KEYS;
        c.src = src;
        c.ix = (long)i;
        c.order_col = -1;
        memcpy(c.prefix, p->prefix, p->prefix_len);
        c.prefix_len = ts_key_int(c.prefix, TSROW_KEY_CAP, 0, (int64_t)space);
        size_t eqn = 0;
        int rc = TS_OK;
        while (eqn < ix->nfields && !rc) {
            const tsq_cterm *e = find_leaf(run, n, src, ix->cols[eqn], TSQ_EQ);
            if (!e) break;
            rc = value_key(x, &d->cols[ix->cols[eqn]], &e->v, c.prefix, &c.prefix_len);
            eqn++;
        }
        if (rc == TS_ERR_RESOURCE) continue;
        if (rc) return rc;
        double cost = COST_FULL;
        if (eqn == ix->nfields) {
            /* whole key: any module */
            if ((rc = keys_add(x, &c.keys, c.prefix, c.prefix_len))) return rc;
            c.exact = 1;
            c.pk_ordered = ordered;
            c.order_col = ordered ? 0 : -1;
            cost = ix->unique ? 1.5 : 3;
            snprintf(c.desc, sizeof c.desc, "index '%s' equality", ix->name);
        } else if (eqn == 0 && ix->nfields == 1 && find_leaf(run, n, src, ix->cols[0], TSQ_IN)) {
            const tsq_cterm *e = find_leaf(run, n, src, ix->cols[0], TSQ_IN);
            for (size_t j = 0; j < e->nset && !rc; j++) {
                uint8_t k[TSROW_KEY_CAP];
                size_t off = 0;
                memcpy(k, c.prefix, c.prefix_len);
                off = c.prefix_len;
                if (value_key(x, &d->cols[ix->cols[0]], &e->set[j], k, &off) == TS_OK)
                    rc = keys_add_once(x, &c.keys, k, off);
            }
            if (rc) { keys_free(&c.keys); return rc; }
            c.exact = 1;
            cost = (ix->unique ? 1.5 : 3) * (double)e->nset;
            snprintf(c.desc, sizeof c.desc, "index '%s' IN (%zu keys)", ix->name, e->nset);
        } else if (ordered) {
            int found = 0;
            rc = range_bounds(x, run, n, src, ix->cols[eqn], &d->cols[ix->cols[eqn]], &c, &found);
            if (rc) return rc;
            if (found) {
                c.access = TSQ_IX_RANGE;
                c.order_col = (long)ix->cols[eqn];
                cost = eqn ? 40 : 80;
                snprintf(c.desc, sizeof c.desc, "index '%s' range", ix->name);
            } else if (eqn) {
                c.access = TSQ_IX_RANGE; /* every key with the prefix */
                c.order_col = (long)ix->cols[eqn];
                cost = 20;
                snprintf(c.desc, sizeof c.desc, "index '%s' prefix equality", ix->name);
            }
        }
        if (cost < best) {
            tsq_plan_free(p);
            *p = c;
            best = cost;
        } else {
            keys_free(&c.keys);
        }
    }
    *cost_out = best;
    return TS_OK;
}

/* An index scan over the whole index of column col, for ORDER BY col. */
static int ordered_index(const tstbl *t, long col)
{
    for (size_t i = 0; i < t->def->nindexes; i++) {
        const tsd_index *ix = &t->def->indexes[i];
        if (t->ix[i] && (long)ix->cols[0] == col && is_ordered(t, (long)i) && strcmp(ix->module, "ngh"))
            return (int)i;
    }
    return -1;
}

int tsq_plan_make(tsq_ctx *x, const tsq_cgroup *g, const tsq_want *want, tsq_plan *p)
{
    size_t runs = g->n ? 1 : 0;
    for (size_t i = 1; i < g->n; i++) runs += g->t[i].or_before;
    double cost = COST_FULL;
    int rc;
    if (runs <= 1) {
        rc = tsq_plan_run(x, 0, g->t, g->n, p, &cost);
        /* x AND (a OR b): a union for the nested OR when nothing better */
        for (size_t i = 0; !rc && cost >= 50 && i < g->n; i++) {
            if (g->t[i].kind != TSQ_GROUP) continue;
            tsq_want any = { -1, 0, 0 };
            tsq_plan u;
            memset(&u, 0, sizeof u);
            if ((rc = tsq_plan_make(x, &g->t[i].g, &any, &u))) break;
            if (u.access == TSQ_UNION || (u.access != TSQ_FULL && u.access != TSQ_PK_RANGE &&
                                          u.access != TSQ_IX_RANGE)) {
                tsq_plan_free(p);
                *p = u;
                cost = 10;
            } else {
                tsq_plan_free(&u);
            }
        }
    } else {
        /* OR: a union when every branch has an index, else a full scan */
        tsq_plan *sub = calloc(runs, sizeof *sub);
        if (!sub) return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
        size_t start = 0, k = 0;
        int all = 1;
        rc = TS_OK;
        for (size_t i = 1; i <= g->n && !rc; i++) {
            if (i < g->n && !g->t[i].or_before) continue;
            double c;
            rc = tsq_plan_run(x, 0, g->t + start, i - start, &sub[k], &c);
            if (!rc && sub[k].access == TSQ_FULL) all = 0;
            k++;
            start = i;
        }
        if (!rc && all) {
            memset(p, 0, sizeof *p);
            p->access = TSQ_UNION;
            p->sub = sub;
            p->nsub = k;
            p->order_col = 0;
            p->pk_ordered = 1;
            snprintf(p->desc, sizeof p->desc, "union of %zu index lookups", k);
            return TS_OK;
        }
        for (size_t i = 0; i < k; i++) tsq_plan_free(&sub[i]);
        free(sub);
        if (rc) return rc;
        rc = tsq_plan_run(x, 0, NULL, 0, p, &cost);
    }
    if (rc) return rc;
    /* the wanted order: a scan in that order instead of a sort, unless a
     * lookup already narrowed the rows down */
    if (want->col == 0 && (p->access == TSQ_FULL || p->access == TSQ_PK_RANGE)) {
        p->reverse = want->desc;
    } else if (want->col > 0 && p->order_col == want->col &&
               (p->access == TSQ_IX_RANGE || (p->access == TSQ_IX_KEYS && !p->exact))) {
        p->reverse = want->desc;
    } else if (want->col > 0 && want->has_limit && cost >= 50) {
        int i = ordered_index(x->src[0].t, want->col);
        if (i >= 0) {
            tsq_plan_free(p);
            memset(p, 0, sizeof *p);
            p->access = TSQ_IX_RANGE;
            p->ix = i;
            p->order_col = want->col;
            p->prefix_len = ts_key_int(p->prefix, TSROW_KEY_CAP, 0, (int64_t)x->src[0].space);
            p->reverse = want->desc;
            snprintf(p->desc, sizeof p->desc, "index '%s' ordered scan",
                     x->src[0].t->def->indexes[i].name);
        }
    }
    return TS_OK;
}
