/* The executor: scan, join, filter, sort, page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "query/exec.h"

/* A row copied out of its scan (for sorting and join matches). */
typedef struct hit {
    uint8_t *row[TSQ_SOURCES_MAX];
    size_t   len[TSQ_SOURCES_MAX];
    uint8_t *pk, *ikey;
    size_t   pkl, ikl;
} hit;

typedef struct ord { int src; size_t col; int desc; } ord;
typedef struct sel { int src; size_t col; const char *name; } sel;
typedef struct jn {
    int       op, left_join;
    int       lsrc, rsrc;
    size_t    lcol, rcol;
} jn;

struct tsq_exec {
    tsq_ctx     x;
    tsw         w;
    tstbl_map  *m;
    const tsq_spec *q;
    int         mode;
    tsq_cgroup  g;
    tsq_plan    plan;
    tsq_scan   *scan;
    ord        *ord;
    size_t      nord;
    sel        *sel;
    size_t      nsel;
    jn          jn[TSQ_SOURCES_MAX];
    size_t      njn;
    int         need_sort;
    int64_t     limit, offset;   /* limit < 0: none */
    int64_t     emitted, skipped, examined;
    uint64_t    pages0;
    /* sorted (or reversed) rows served from memory */
    hit        *hits;
    size_t      nhits, caphits, hpos;
    int         materialized;
    /* join expansion of the current base row */
    hit        *combo;
    size_t      ncombo, capcombo, cpos;
    const uint8_t *base_row, *base_pk, *base_ik;
    size_t      base_len, base_pkl, base_ikl;
    tsq_rowset  rs;
    /* cursors */
    int         cursor_ok, prev_mode, from_cursor, has_more;
    uint64_t    shape;
    uint8_t     first_pk[TSROW_KEY_CAP], first_ik[TSROW_KEY_CAP], last_pk[TSROW_KEY_CAP],
                last_ik[TSROW_KEY_CAP];
    size_t      first_pkl, first_ikl, last_pkl, last_ikl;
    tsq_pos     after;
    uint8_t     after_pk[TSROW_KEY_CAP], after_ik[TSROW_KEY_CAP];
};

static void hit_free(hit *h)
{
    for (size_t i = 0; i < TSQ_SOURCES_MAX; i++) free(h->row[i]);
    free(h->pk);
    free(h->ikey);
    memset(h, 0, sizeof *h);
}

static uint8_t *dup(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (c && n) memcpy(c, p, n);
    return c;
}

/* ---- shape and tokens ------------------------------------------------ */

uint64_t tsq_shape_hash(const tsq_spec *q, int with_limits)
{
    json_t *oa = json_array();
    for (size_t i = 0; i < q->norder; i++)
        json_array_append_new(oa, json_pack("[s, b]", q->order[i].field, q->order[i].desc));
    json_t *ja = json_array();
    for (size_t i = 0; i < q->njoins; i++)
        json_array_append_new(ja, json_pack("[s, s, s, i, b]", q->joins[i].table, q->joins[i].left,
                                            q->joins[i].right, q->joins[i].op, q->joins[i].left_join));
    json_t *o = json_pack("[s, o, o, o]", q->table, tsq_cond_json(&q->cond), oa, ja);
    if (with_limits && o) {
        json_array_append_new(o, json_integer(q->has_limit ? q->limit : -1));
        json_array_append_new(o, json_integer(q->offset));
        json_array_append_new(o, json_string(q->cursor ? q->cursor : ""));
        json_t *sl = json_array();
        for (size_t i = 0; i < q->nsel; i++)
            json_array_append_new(sl, json_pack("[s, s?]", q->sel[i].field, q->sel[i].alias));
        json_array_append_new(o, sl);
    }
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = s ? s : ""; *c; c++) h = (h ^ (uint8_t)*c) * 1099511628211ULL;
    free(s);
    return h;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *token_make(uint64_t shape, int prev, const uint8_t *ik, size_t ikl, const uint8_t *pk,
                        size_t pkl)
{
    size_t n = 2 + 8 + 2 + ikl + 2 + pkl;
    uint8_t *b = malloc(n);
    char *out = malloc(n * 4 / 3 + 8);
    if (!b || !out) { free(b); free(out); return NULL; }
    size_t o = 0;
    b[o++] = 1;
    b[o++] = (uint8_t)prev;
    for (int i = 0; i < 8; i++) b[o++] = (uint8_t)(shape >> (8 * i));
    b[o++] = (uint8_t)ikl; b[o++] = (uint8_t)(ikl >> 8);
    memcpy(b + o, ik, ikl); o += ikl;
    b[o++] = (uint8_t)pkl; b[o++] = (uint8_t)(pkl >> 8);
    memcpy(b + o, pk, pkl); o += pkl;
    size_t j = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < o; i++) {
        acc = acc << 8 | b[i];
        bits += 8;
        while (bits >= 6) { out[j++] = B64[(acc >> (bits - 6)) & 63]; bits -= 6; }
    }
    if (bits) out[j++] = B64[(acc << (6 - bits)) & 63];
    out[j] = '\0';
    free(b);
    return out;
}

static int token_parse(tsq_exec *e, const char *tok)
{
    size_t n = strlen(tok), o = 0;
    uint8_t *b = malloc(n * 3 / 4 + 4);
    if (!b) return tsenv_error(e->x.env, TS_ERR_NOMEM, "out of memory");
    uint32_t acc = 0;
    int bits = 0, bad = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        const char *p = strchr(B64, tok[i]);
        if (!p || !tok[i]) { bad = 1; break; }
        acc = acc << 6 | (uint32_t)(p - B64);
        bits += 6;
        if (bits >= 8) { b[o++] = (uint8_t)(acc >> (bits - 8)); bits -= 8; }
    }
    size_t ikl = 0, pkl = 0, p = 12;
    uint64_t shape = 0;
    if (!bad && (o < 14 || b[0] != 1 || b[1] > 1)) bad = 1;
    if (!bad) {
        for (int i = 0; i < 8; i++) shape |= (uint64_t)b[2 + i] << (8 * i);
        ikl = b[10] | (size_t)b[11] << 8;
        if (p + ikl + 2 > o || ikl > TSROW_KEY_CAP) bad = 1;
    }
    if (!bad) {
        memcpy(e->after_ik, b + p, ikl);
        p += ikl;
        pkl = b[p] | (size_t)b[p + 1] << 8;
        p += 2;
        if (p + pkl != o || pkl > TSROW_KEY_CAP || pkl == 0) bad = 1;
        else memcpy(e->after_pk, b + p, pkl);
    }
    int prev = !bad && b[1];
    free(b);
    if (bad) return tsenv_error(e->x.env, TS_ERR_VALIDATION, "malformed cursor token");
    if (shape != e->shape)
        return tsenv_error(e->x.env, TS_ERR_VALIDATION, "the cursor token was made for a query of "
                           "another table, condition or order");
    e->after = (tsq_pos){ e->after_ik, e->after_pk, ikl, pkl };
    e->prev_mode = prev;
    return TS_OK;
}

/* ---- rows as JSON ---------------------------------------------------- */

static int value_json(tsq_ctx *x, int src, size_t col, const tsq_rowset *rs, json_t **out)
{
    const tsd_table *d = x->src[src].t->def;
    if (!rs->row[src]) { *out = json_null(); return TS_OK; }
    tsd_value v;
    int rc = tsd_row_field(x->env, d, rs->row[src], rs->len[src], col, &v);
    if (!rc) rc = tsd_value_to_json(x->env, &d->cols[col], &v, out);
    return rc;
}

static int merged_json(tsq_ctx *x, const tsq_rowset *rs, json_t **out)
{
    if (x->nsrc == 1 && rs->row[0])  /* the common case: one row, decoded in one pass */
        return tsd_row_decode(x->env, x->src[0].t->def, rs->row[0], rs->len[0], out);
    json_t *o = NULL;
    int rc = TS_OK;
    for (size_t s = 0; s < x->nsrc && !rc; s++) {
        const tsd_table *d = x->src[s].t->def;
        for (size_t c = 0; c < d->ncols && !rc; c++) {
            json_t *v;
            if (!o && !(o = json_object())) return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
            if ((rc = value_json(x, (int)s, c, rs, &v))) break;
            const char *name = d->cols[c].name;
            if (s && json_object_get(o, name)) {
                char full[2 * TSD_NAME_MAX + 2];
                snprintf(full, sizeof full, "%s.%s", d->name, name);
                json_object_set_new(o, full, v);
            } else {
                json_object_set_new(o, name, v);
            }
        }
    }
    if (rc) { json_decref(o); return rc; }
    *out = o;
    return TS_OK;
}

static int custom_row(tsq_ctx *x, const tsq_rowset *rs, json_t **out) { return merged_json(x, rs, out); }

int tsq_exec_row_json(tsq_exec *e, const tsq_rowset *rs, json_t **out)
{
    if (!e->nsel) return merged_json(&e->x, rs, out);
    json_t *o = json_object();
    if (!o) return tsenv_error(e->x.env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < e->nsel; i++) {
        json_t *v;
        int rc = value_json(&e->x, e->sel[i].src, e->sel[i].col, rs, &v);
        if (rc) { json_decref(o); return rc; }
        json_object_set_new(o, e->sel[i].name, v);
    }
    *out = o;
    return TS_OK;
}

/* ---- opening ------------------------------------------------------------ */

static int compile_spec(tsq_exec *e)
{
    const tsq_spec *q = e->q;
    tsq_ctx *x = &e->x;
    int rc;
    for (size_t j = 0; j < q->njoins; j++) {
        if (x->nsrc >= TSQ_SOURCES_MAX)
            return tsenv_error(x->env, TS_ERR_VALIDATION, "at most %d joins", TSQ_SOURCES_MAX - 1);
        tstbl *t;
        if ((rc = tstbl_acquire(e->m, q->joins[j].table, e->w.tx, &t))) return rc;
        x->src[x->nsrc++] = (tsq_src){ t, tsrow_space(t, e->w.space) };
    }
    for (size_t j = 0; j < q->njoins; j++) {
        jn *J = &e->jn[e->njn++];
        int ls, rs2;
        size_t lc, rc2;
        if ((rc = tsq_resolve(x, q->joins[j].left, &ls, &lc)) ||
            (rc = tsq_resolve(x, q->joins[j].right, &rs2, &rc2)))
            return rc;
        int me = (int)j + 1;
        J->op = q->joins[j].op;
        J->left_join = q->joins[j].left_join;
        /* the match evaluates "joined field OP earlier value": flip the
         * operator when the joined table's field is on the right (a < b  ==  b > a) */
        static const int flip[] = { TSQ_EQ, TSQ_NE, TSQ_LT, TSQ_LE, TSQ_GT, TSQ_GE };
        if (rs2 == me && ls < me) {
            J->lsrc = ls; J->lcol = lc; J->rsrc = rs2; J->rcol = rc2;
            if (J->op <= TSQ_LE) J->op = flip[J->op];
        } else if (ls == me && rs2 < me) {
            J->lsrc = rs2; J->lcol = rc2; J->rsrc = ls; J->rcol = lc;
        } else {
            return tsenv_error(x->env, TS_ERR_VALIDATION, "join of '%s': the condition %s %s %s must "
                               "compare a field of '%s' with one of the tables before it",
                               q->joins[j].table, q->joins[j].left, tsq_op_name(q->joins[j].op),
                               q->joins[j].right, q->joins[j].table);
        }
    }
    if ((rc = tsq_compile(x, &q->cond, &e->g))) return rc;
    e->ord = calloc(q->norder + 1, sizeof *e->ord);
    e->sel = calloc(q->nsel + 1, sizeof *e->sel);
    if (!e->ord || !e->sel) return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < q->norder; i++, e->nord++) {
        ord *o = &e->ord[i];
        if ((rc = tsq_resolve(x, q->order[i].field, &o->src, &o->col))) return rc;
        o->desc = q->order[i].desc;
        const tsd_field *f = &x->src[o->src].t->def->cols[o->col];
        if (!tsd_type_indexable(f->type))
            return tsenv_error(x->env, TS_ERR_VALIDATION, "%s.%s: cannot order by a %s field",
                               f->table, f->name, tsd_type_name(f->type));
    }
    for (size_t i = 0; i < q->nsel; i++, e->nsel++) {
        sel *s = &e->sel[i];
        if ((rc = tsq_resolve(x, q->sel[i].field, &s->src, &s->col))) return rc;
        s->name = q->sel[i].alias ? q->sel[i].alias : x->src[s->src].t->def->cols[s->col].name;
    }
    return TS_OK;
}

/* An executor is ~11 KB: above malloc's small sizes, so allocating one per
 * query made glibc consolidate the small chunks the last result freed
 * (~10% of a vector search).  A few freed ones are kept per database. */
static tsq_exec *exec_take(tstbl_map *m)
{
    for (size_t i = 0; i < sizeof m->spare / sizeof m->spare[0]; i++) {
        void *p;
        if (__atomic_load_n(&m->spare[i], __ATOMIC_RELAXED) &&
            (p = __atomic_exchange_n(&m->spare[i], NULL, __ATOMIC_ACQUIRE)))
            return memset(p, 0, sizeof(tsq_exec));
    }
    return calloc(1, sizeof(tsq_exec));
}

static void exec_put(tstbl_map *m, tsq_exec *e)
{
    for (size_t i = 0; i < sizeof m->spare / sizeof m->spare[0]; i++) {
        void *none = NULL;
        if (__atomic_compare_exchange_n(&m->spare[i], &none, (void *)e, 0, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED))
            return;
    }
    free(e);
}

int tsq_exec_open(ts_env *env, tstbl_map *m, tstx *tx, uint64_t space, const tsq_spec *q,
                  int mode, int64_t default_limit, tsq_exec **out)
{
    *out = NULL;
    tsq_exec *e = exec_take(m);
    if (!e) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    e->m = m;
    e->q = q;
    e->mode = mode;
    tsw_init(&e->w, m, tx, space, 0);
    e->x.env = env;
    e->x.w = &e->w;
    e->x.row_json_fn = custom_row;
    e->pages0 = tstx_touched(tx);
    tstbl *t;
    int rc = tstbl_acquire(m, q->table, tx, &t);
    if (rc) { exec_put(m, e); return rc; }
    e->x.src[0] = (tsq_src){ t, tsrow_space(t, space) };
    e->x.nsrc = 1;
    rc = compile_spec(e);
    /* limits */
    e->limit = mode == TSQ_MODE_ALL ? -1 : q->has_limit ? q->limit : mode == TSQ_MODE_ROWS ? default_limit : -1;
    e->offset = mode == TSQ_MODE_ALL ? 0 : q->offset;
    /* the order the caller wants from the scan */
    /* a scan in the wanted order also keeps a stream's memory constant */
    tsq_want want = { -1, 0, e->limit >= 0 || mode == TSQ_MODE_STREAM };
    if (!e->nord) want.col = 0;
    else if (e->ord[0].src == 0) { want.col = (long)e->ord[0].col; want.desc = e->ord[0].desc; }
    if (mode == TSQ_MODE_ALL && !e->nord) want.col = -1;
    if (!rc && mode == TSQ_MODE_ROWS && q->cursor) {
        e->shape = tsq_shape_hash(q, 0);
        e->from_cursor = 1;
        rc = token_parse(e, q->cursor);
        e->offset = 0;
    }
    if (!rc) rc = tsq_plan_make(&e->x, &e->g, &want, &e->plan);
    if (!rc) {
        const tsq_plan *p = &e->plan;
        int pk_order = (p->access == TSQ_FULL || p->access == TSQ_PK_RANGE || p->access == TSQ_PK_KEYS ||
                        p->access == TSQ_UNION || (p->access == TSQ_IX_KEYS && p->order_col == 0 &&
                                                   p->keys.n == 1));
        if (!e->nord) {
            e->need_sort = !pk_order && mode != TSQ_MODE_ALL;
        } else if (e->nord == 1 && e->ord[0].src == 0) {
            const ord *o = &e->ord[0];
            int by_scan = o->col == 0
                ? ((p->access == TSQ_FULL || p->access == TSQ_PK_RANGE) && p->reverse == o->desc) ||
                  (!o->desc && pk_order)
                : p->access == TSQ_IX_RANGE && p->order_col == (long)o->col && p->reverse == o->desc;
            e->need_sort = !by_scan;
        } else {
            e->need_sort = 1;
        }
        e->cursor_ok = !e->need_sort && !e->njn &&
                       (p->access == TSQ_FULL || p->access == TSQ_PK_RANGE || p->access == TSQ_IX_RANGE);
        if (e->from_cursor && !e->cursor_ok)
            rc = tsenv_error(env, TS_ERR_VALIDATION, "this query's order cannot be resumed with a cursor "
                             "(order by the primary key or an indexed field)");
        if (!rc && e->prev_mode) e->plan.reverse = !e->plan.reverse;
    }
    /* the scan opens on first use (scan_ready): a vector search uses the
     * compiled conditions only, and opening a scan costs a 4.5 KB block
     * and an index cursor */
    if (rc) { tsq_exec_close(e); return rc; }
    *out = e;
    return TS_OK;
}

static int scan_ready(tsq_exec *e)
{
    if (e->scan) return TS_OK;
    return tsq_scan_open(&e->x, &e->plan, e->from_cursor ? &e->after : NULL, &e->scan);
}

void tsq_exec_close(tsq_exec *e)
{
    if (!e) return;
    tsq_scan_close(e->scan);
    tsq_plan_free(&e->plan);
    tsq_cgroup_free(&e->g);
    for (size_t i = 0; i < e->nhits; i++) hit_free(&e->hits[i]);
    free(e->hits);
    for (size_t i = 0; i < e->ncombo; i++) hit_free(&e->combo[i]);
    free(e->combo);
    free(e->ord);
    free(e->sel);
    json_decref(e->x.row_json);
    for (size_t s = 0; s < e->x.nsrc; s++) tstbl_release(e->m, e->x.src[s].t);
    tsw_done(&e->w);
    exec_put(e->m, e);
}

/* ---- joins -------------------------------------------------------------- */

static int combo_push(tsq_exec *e, const hit *h)
{
    if (e->ncombo == e->capcombo) {
        size_t nc = e->capcombo ? e->capcombo * 2 : 8;
        hit *n = realloc(e->combo, nc * sizeof *n);
        if (!n) return tsenv_error(e->x.env, TS_ERR_NOMEM, "out of memory");
        e->combo = n;
        e->capcombo = nc;
    }
    e->combo[e->ncombo++] = *h;
    return TS_OK;
}

/* Rows of join J's table matching partial row h. */
static int join_matches(tsq_exec *e, const jn *J, const hit *h, hit **list, size_t *n, size_t *cap)
{
    tsq_ctx *x = &e->x;
    const tsd_table *ld = x->src[J->lsrc].t->def, *rd = x->src[J->rsrc].t->def;
    if (!h->row[J->lsrc]) return TS_OK;
    tsd_value lv;
    int rc = tsd_row_field(x->env, ld, h->row[J->lsrc], h->len[J->lsrc], J->lcol, &lv);
    if (rc || lv.kind == TSD_V_NULL) return rc;
    /* the left value as a value of the right field */
    tsq_cterm leafc;
    memset(&leafc, 0, sizeof leafc);
    leafc.kind = TSQ_LEAF;
    leafc.op = J->op;
    leafc.src = J->rsrc;
    leafc.col = J->rcol;
    leafc.f = &rd->cols[J->rcol];
    json_t *lj = NULL;
    rc = tsd_value_to_json(x->env, &ld->cols[J->lcol], &lv, &lj);
    if (!rc) rc = tsd_coerce(x->env, leafc.f, lj, &leafc.coerced);
    json_decref(lj);
    if (rc == TS_ERR_VALIDATION) { tsenv_clear(x->env); return TS_OK; } /* nothing can match */
    if (!rc) rc = tsd_value_from_json(x->env, leafc.f, leafc.coerced, &leafc.v);
    tsq_plan p;
    double cost;
    memset(&p, 0, sizeof p);
    if (!rc) rc = tsq_plan_run(x, J->rsrc, &leafc, 1, &p, &cost);
    tsq_scan *s = NULL;
    if (!rc) rc = tsq_scan_open(x, &p, NULL, &s);
    tsq_cgroup g1 = { &leafc, 1 };
    tsq_rowset rs;
    memset(&rs, 0, sizeof rs);
    const uint8_t *row, *pk, *ik;
    size_t len, pkl, ikl;
    while (!rc && (rc = tsq_scan_next(s, &row, &len, &pk, &pkl, &ik, &ikl)) == 1) {
        rs.row[J->rsrc] = row;
        rs.len[J->rsrc] = len;
        int r = tsq_eval(x, &g1, &rs);
        if (r < 0) { rc = r; break; }
        rc = TS_OK;
        if (!r) continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 4;
            hit *nl = realloc(*list, nc * sizeof *nl);
            if (!nl) { rc = tsenv_error(x->env, TS_ERR_NOMEM, "out of memory"); break; }
            *list = nl;
            *cap = nc;
        }
        hit *m = &(*list)[(*n)++];
        memset(m, 0, sizeof *m);
        if (!(m->row[J->rsrc] = dup(row, len))) { rc = TS_ERR_NOMEM; break; }
        m->len[J->rsrc] = len;
    }
    if (rc == 0 || rc == 1) rc = TS_OK;
    tsq_scan_close(s);
    tsq_plan_free(&p);
    tsd_value_clear(&leafc.v);
    json_decref(leafc.coerced);
    return rc;
}

/* Expand the current base row into e->combo. */
static int expand(tsq_exec *e)
{
    for (size_t i = 0; i < e->ncombo; i++) hit_free(&e->combo[i]);
    e->ncombo = 0;
    e->cpos = 0;
    hit base;
    memset(&base, 0, sizeof base);
    if (!(base.row[0] = dup(e->base_row, e->base_len))) return TS_ERR_NOMEM;
    base.len[0] = e->base_len;
    int rc = combo_push(e, &base);
    for (size_t j = 0; j < e->njn && !rc; j++) {
        hit *cur = e->combo;
        size_t ncur = e->ncombo;
        e->combo = NULL;
        e->ncombo = e->capcombo = 0;
        for (size_t i = 0; i < ncur && !rc; i++) {
            hit *ms = NULL;
            size_t nm = 0, cap = 0;
            rc = join_matches(e, &e->jn[j], &cur[i], &ms, &nm, &cap);
            for (size_t k = 0; k < nm && !rc; k++) {
                hit c = cur[i];
                hit nh;
                memset(&nh, 0, sizeof nh);
                for (size_t s = 0; s < TSQ_SOURCES_MAX && !rc; s++) {
                    const uint8_t *r = s == (size_t)e->jn[j].rsrc ? ms[k].row[s] : c.row[s];
                    size_t l = s == (size_t)e->jn[j].rsrc ? ms[k].len[s] : c.len[s];
                    if (r && !(nh.row[s] = dup(r, l))) rc = TS_ERR_NOMEM;
                    nh.len[s] = l;
                }
                if (!rc) rc = combo_push(e, &nh);
            }
            if (!rc && !nm && e->jn[j].left_join) {
                hit nh;
                memset(&nh, 0, sizeof nh);
                for (size_t s = 0; s < TSQ_SOURCES_MAX && !rc; s++) {
                    if (cur[i].row[s] && !(nh.row[s] = dup(cur[i].row[s], cur[i].len[s]))) rc = TS_ERR_NOMEM;
                    nh.len[s] = cur[i].len[s];
                }
                if (!rc) rc = combo_push(e, &nh);
            }
            for (size_t k = 0; k < nm; k++) hit_free(&ms[k]);
            free(ms);
        }
        for (size_t i = 0; i < ncur; i++) hit_free(&cur[i]);
        free(cur);
    }
    return rc;
}

/* ---- filtering and ordering ------------------------------------------ */

static void set_rs(tsq_exec *e, const hit *h)
{
    for (size_t s = 0; s < TSQ_SOURCES_MAX; s++) {
        e->rs.row[s] = h->row[s];
        e->rs.len[s] = h->len[s];
    }
}

/* The next row that passes the conditions, in scan order. */
static int pull(tsq_exec *e)
{
    for (;;) {
        int rc;
        if (e->njn && e->cpos < e->ncombo) {
            set_rs(e, &e->combo[e->cpos++]);
        } else {
            const uint8_t *row, *pk, *ik;
            size_t len, pkl, ikl;
            if ((rc = scan_ready(e))) return rc;
            rc = tsq_scan_next(e->scan, &row, &len, &pk, &pkl, &ik, &ikl);
            if (rc <= 0) return rc;
            e->examined++;
            e->base_row = row; e->base_len = len;
            e->base_pk = pk; e->base_pkl = pkl;
            e->base_ik = ik; e->base_ikl = ikl;
            if (e->njn) {
                if ((rc = expand(e))) return rc;
                continue;
            }
            memset(&e->rs, 0, sizeof e->rs);
            e->rs.row[0] = row;
            e->rs.len[0] = len;
        }
        json_decref(e->x.row_json);
        e->x.row_json = NULL;
        rc = tsq_eval(&e->x, &e->g, &e->rs);
        if (rc < 0) return rc;
        if (rc) return 1;
    }
}


static int hit_cmp(const void *a, const void *b, void *arg)
{
    tsq_exec *e = arg;
    const hit *x = a, *y = b;
    for (size_t i = 0; i < e->nord; i++) {
        const ord *o = &e->ord[i];
        const tsd_table *d = e->x.src[o->src].t->def;
        tsd_value u, v;
        u.kind = v.kind = TSD_V_NULL;
        if (x->row[o->src]) tsd_row_field(NULL, d, x->row[o->src], x->len[o->src], o->col, &u);
        if (y->row[o->src]) tsd_row_field(NULL, d, y->row[o->src], y->len[o->src], o->col, &v);
        int c = tsd_value_cmp(&d->cols[o->col], &u, &v);  /* nulls first */
        if (c) return o->desc ? -c : c;
    }
    /* ties by primary key; descending for one DESC term, as an index
     * scan read backwards gives them */
    int c = memcmp(x->pk, y->pk, x->pkl < y->pkl ? x->pkl : y->pkl);
    c = c ? c : (x->pkl > y->pkl) - (x->pkl < y->pkl);
    return e->nord == 1 && e->ord[0].desc ? -c : c;
}

static int materialize(tsq_exec *e, size_t max)
{
    int rc = 0;
    while ((max == 0 || e->nhits < max) && (rc = pull(e)) == 1) {
        if (e->nhits == e->caphits) {
            size_t nc = e->caphits ? e->caphits * 2 : 64;
            hit *n = realloc(e->hits, nc * sizeof *n);
            if (!n) return tsenv_error(e->x.env, TS_ERR_NOMEM, "out of memory");
            e->hits = n;
            e->caphits = nc;
        }
        hit *h = &e->hits[e->nhits];
        memset(h, 0, sizeof *h);
        e->nhits++;
        for (size_t s = 0; s < e->x.nsrc; s++) {
            if (e->rs.row[s] && !(h->row[s] = dup(e->rs.row[s], e->rs.len[s])))
                return tsenv_error(e->x.env, TS_ERR_NOMEM, "out of memory");
            h->len[s] = e->rs.len[s];
        }
        if (!(h->pk = dup(e->base_pk, e->base_pkl)) || !(h->ikey = dup(e->base_ik, e->base_ikl)))
            return tsenv_error(e->x.env, TS_ERR_NOMEM, "out of memory");
        h->pkl = e->base_pkl;
        h->ikl = e->base_ikl;
    }
    if (max == 0 || e->nhits < max) {
        if (rc < 0) return rc;
    }
    e->materialized = 1;
    return TS_OK;
}

static int next_ordered(tsq_exec *e)
{
    if (!e->need_sort && !e->prev_mode) return pull(e);
    if (!e->materialized) {
        int rc;
        if (e->prev_mode) {
            /* a page before the cursor: read it backwards, then turn it round */
            size_t want = e->limit >= 0 ? (size_t)e->limit + 1 : 0;
            if ((rc = materialize(e, want))) return rc;
            if (e->limit >= 0 && e->nhits > (size_t)e->limit) {
                e->has_more = 1;
                hit_free(&e->hits[--e->nhits]);
            }
            for (size_t i = 0; i < e->nhits / 2; i++) {
                hit t = e->hits[i];
                e->hits[i] = e->hits[e->nhits - 1 - i];
                e->hits[e->nhits - 1 - i] = t;
            }
        } else {
            if ((rc = materialize(e, 0))) return rc;
            if (e->nhits) qsort_r(e->hits, e->nhits, sizeof *e->hits, hit_cmp, e);
        }
    }
    if (e->hpos >= e->nhits) return 0;
    hit *h = &e->hits[e->hpos++];
    set_rs(e, h);
    e->base_pk = h->pk;
    e->base_pkl = h->pkl;
    e->base_ik = h->ikey;
    e->base_ikl = h->ikl;
    return 1;
}

int tsq_exec_next(tsq_exec *e, const tsq_rowset **rs, const uint8_t **pk, size_t *pkl)
{
    int rc;
    while (e->skipped < e->offset) {
        if ((rc = next_ordered(e)) <= 0) return rc;
        e->skipped++;
    }
    if (e->limit >= 0 && e->emitted >= e->limit) {
        if (e->mode == TSQ_MODE_ROWS && e->cursor_ok && !e->prev_mode && !e->has_more)
            e->has_more = next_ordered(e) == 1;
        return 0;
    }
    if ((rc = next_ordered(e)) <= 0) return rc;
    if (e->emitted == 0) {
        memcpy(e->first_pk, e->base_pk, e->base_pkl);
        e->first_pkl = e->base_pkl;
        if (e->base_ikl) memcpy(e->first_ik, e->base_ik, e->base_ikl);
        e->first_ikl = e->base_ikl;
    }
    memcpy(e->last_pk, e->base_pk, e->base_pkl);
    e->last_pkl = e->base_pkl;
    if (e->base_ikl) memcpy(e->last_ik, e->base_ik, e->base_ikl);
    e->last_ikl = e->base_ikl;
    e->emitted++;
    *rs = &e->rs;
    *pk = e->base_pk;
    *pkl = e->base_pkl;
    return 1;
}

int tsq_exec_cursors(tsq_exec *e, char **next, char **prev)
{
    *next = *prev = NULL;
    if (!e->cursor_ok || e->mode != TSQ_MODE_ROWS || !e->emitted) return TS_OK;
    int more_after = e->prev_mode ? 1 : e->has_more;
    int more_before = e->prev_mode ? e->has_more : (e->from_cursor || e->q->offset > 0);
    if ((more_after || more_before) && !e->from_cursor) e->shape = tsq_shape_hash(e->q, 0);
    if (more_after) *next = token_make(e->shape, 0, e->last_ik, e->last_ikl, e->last_pk, e->last_pkl);
    if (more_before) *prev = token_make(e->shape, 1, e->first_ik, e->first_ikl, e->first_pk, e->first_pkl);
    if ((more_after && !*next) || (more_before && !*prev)) {
        free(*next);
        free(*prev);
        *next = *prev = NULL;
        return tsenv_error(e->x.env, TS_ERR_NOMEM, "out of memory");
    }
    return TS_OK;
}

void tsq_exec_explain(tsq_exec *e, json_t *o)
{
    static const char *const kinds[] = { "fullScan", "primaryKeyLookup", "primaryKeyRange",
                                         "indexLookup", "indexRange", "indexUnion" };
    const tsq_plan *p = &e->plan;
    json_object_set_new(o, "table", json_string(e->x.src[0].t->def->name));
    json_object_set_new(o, "plan", json_string(kinds[p->access]));
    json_object_set_new(o, "description", json_string(p->desc));
    if (p->access == TSQ_IX_KEYS || p->access == TSQ_IX_RANGE)
        json_object_set_new(o, "index", json_string(e->x.src[0].t->def->indexes[p->ix].name));
    json_object_set_new(o, "sorted", json_boolean(e->need_sort));
    json_object_set_new(o, "reverse", json_boolean(p->reverse));
    json_object_set_new(o, "rowsExamined", json_integer(e->examined));
    json_object_set_new(o, "rowsReturned", json_integer(e->emitted));
    json_object_set_new(o, "pagesTouched", json_integer((json_int_t)(tstx_touched(e->w.tx) - e->pages0)));
    json_object_set_new(o, "joins", json_integer((json_int_t)e->njn));
}

/* Whether the plan's index bounds are exactly the conditions (so the
 * index entries are the matching rows, TTL aside). */
static int bounds_exact(const tsq_exec *e)
{
    const tsq_plan *p = &e->plan;
    const tstbl *t = e->x.src[0].t;
    if (e->njn || t->ttl || e->g.n == 0) return 0;
    long col;
    if (p->access == TSQ_IX_RANGE || (p->access == TSQ_IX_KEYS && p->exact)) {
        const tsd_index *ix = &t->def->indexes[p->ix];
        if (ix->nfields != 1 || !strcmp(ix->module, "ngh")) return 0;
        col = (long)ix->cols[0];
    } else if (p->access == TSQ_PK_RANGE) {
        col = 0;
    } else {
        return 0;
    }
    /* every condition must be one the index bounds express exactly */
    for (size_t i = 0; i < e->g.n; i++) {
        const tsq_cterm *c = &e->g.t[i];
        if (c->or_before || c->kind != TSQ_LEAF || c->src != 0 || (long)c->col != col) return 0;
        int keyop = c->op == TSQ_EQ || c->op == TSQ_IN;
        int rangeop = c->op == TSQ_GT || c->op == TSQ_GE || c->op == TSQ_LT || c->op == TSQ_LE ||
                      c->op == TSQ_BETWEEN;
        /* keys: one equality or IN; ranges: any number of bounds */
        if (p->access == TSQ_IX_KEYS ? !(keyop && e->g.n == 1) : !rangeop) return 0;
    }
    return 1;
}

int tsq_exec_count_fast(tsq_exec *e, int64_t *out)
{
    if (!bounds_exact(e)) return TS_ERR_UNSUPPORTED;
    int rc = scan_ready(e);
    return rc ? rc : tsq_scan_count(e->scan, out);
}

int tsq_exec_keys_fast(tsq_exec *e, int (*each)(void *ctx, const uint8_t *pk, size_t pkl), void *ctx)
{
    if (!bounds_exact(e)) return TS_ERR_UNSUPPORTED;
    int rc = scan_ready(e);
    return rc ? rc : tsq_scan_keys(e->scan, each, ctx);
}

tsq_ctx *tsq_exec_ctx(tsq_exec *e) { return &e->x; }
int tsq_exec_has_cond(const tsq_exec *e) { return e->g.n > 0; }
const tsq_cgroup *tsq_exec_conds(const tsq_exec *e) { return &e->g; }

int tsq_exec_pk_row_json(tsq_exec *e, const json_t *pk, json_t **out)
{
    if (!e->nsel) return TS_ERR_UNSUPPORTED;
    for (size_t i = 0; i < e->nsel; i++)
        if (e->sel[i].src != 0 || e->sel[i].col != 0) return TS_ERR_UNSUPPORTED;
    json_t *o = json_object();
    for (size_t i = 0; o && i < e->nsel; i++)
        if (json_object_set(o, e->sel[i].name, (json_t *)pk)) { json_decref(o); o = NULL; }
    if (!o) return tsenv_error(e->x.env, TS_ERR_NOMEM, "out of memory");
    *out = o;
    return TS_OK;
}

int tsq_exec_shows_vectors(const tsq_exec *e, int src)
{
    const tsd_table *d = e->x.src[src].t->def;
    for (size_t c = 0; !e->nsel && c < d->ncols; c++)
        if (d->cols[c].type == TSD_VECTOR) return 1;
    for (size_t i = 0; i < e->nsel; i++)
        if (e->sel[i].src == src && d->cols[e->sel[i].col].type == TSD_VECTOR) return 1;
    return 0;
}

int tsq_exec_narrow(const tsq_exec *e) { return e->g.n > 0 && e->plan.access != TSQ_FULL; }

int tsq_exec_match(tsq_exec *e, const tsq_rowset *rs)
{
    int r = tsq_eval(&e->x, &e->g, rs);
    json_decref(e->x.row_json);
    e->x.row_json = NULL;
    return r;
}
