/* Conditions: building, compiling against a query's tables, evaluating. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "base/env.h"
#include "query/query.h"

static const char *const op_names[] = { "=", "!=", ">", ">=", "<", "<=", "IN", "NOT IN", "BETWEEN",
                                        "LIKE", "NOT LIKE", "IS", "IS NOT" };

const char *tsq_op_name(int op)
{
    return op >= 0 && op <= TSQ_IS_NOT ? op_names[op] : "?";
}

int tsq_op_parse(const char *op)
{
    if (!op) return -1;
    if (strcmp(op, "<>") == 0) return TSQ_NE;
    for (int i = 0; i <= TSQ_IS_NOT; i++)
        if (strcasecmp(op, op_names[i]) == 0) return i;
    return -1;
}

static void cond_error(ts_cond *c, const char *fmt, const char *a, const char *b)
{
    if (c->err) return;
    c->err = TS_ERR_VALIDATION;
    snprintf(c->errmsg, sizeof c->errmsg, fmt, a ? a : "(null)", b ? b : "");
}

static tsq_term *push(ts_cond *c)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4;
        tsq_term *nt = realloc(c->t, nc * sizeof *nt);
        if (!nt) {
            if (!c->err) { c->err = TS_ERR_NOMEM; snprintf(c->errmsg, sizeof c->errmsg, "out of memory"); }
            return NULL;
        }
        c->t = nt;
        c->cap = nc;
    }
    tsq_term *t = &c->t[c->n++];
    memset(t, 0, sizeof *t);
    t->or_before = c->n > 1 && c->pending_or;
    c->pending_or = 0;
    return t;
}

void tsq_cond_leaf(ts_cond *c, const char *field, const char *op, const json_t *value)
{
    int o = tsq_op_parse(op);
    if (!field) { cond_error(c, "a condition's field is NULL%s%s", "", ""); return; }
    if (o < 0) { cond_error(c, "unknown operator '%s' (on field '%s')", op, field); return; }
    const char *shape = NULL;
    if ((o == TSQ_IN || o == TSQ_NOT_IN) && !json_is_array(value)) shape = "an array";
    else if (o == TSQ_BETWEEN && (!json_is_array(value) || json_array_size(value) != 2)) shape = "[low, high]";
    else if ((o == TSQ_IS || o == TSQ_IS_NOT) && !json_is_null(value)) shape = "null";
    else if ((o == TSQ_LIKE || o == TSQ_NOT_LIKE) && !json_is_string(value)) shape = "a string pattern";
    else if (o <= TSQ_LE && (!value || json_is_null(value))) shape = "a value (use IS / IS NOT for null)";
    else if (o <= TSQ_LE && (json_is_array(value) || json_is_object(value))) shape = "a single value";
    if (shape) {
        char what[128];
        snprintf(what, sizeof what, "%s %s", field, tsq_op_name(o));
        cond_error(c, "condition '%s' needs %s", what, shape);
        return;
    }
    tsq_term *t = push(c);
    if (!t) return;
    t->kind = TSQ_LEAF;
    t->op = o;
    t->field = strdup(field);
    t->value = json_deep_copy(value);
    if (!t->field || !t->value) cond_error(c, "out of memory%s%s", "", "");
}

void tsq_cond_group(ts_cond *c, ts_cond *child)
{
    if (!child) { cond_error(c, "a condition group is NULL%s%s", "", ""); return; }
    if (child->err && !c->err) { c->err = child->err; memcpy(c->errmsg, child->errmsg, sizeof c->errmsg); }
    tsq_term *t = push(c);
    if (!t) { tsq_cond_clear(child); free(child); return; }
    t->kind = TSQ_GROUP;
    t->group = child;
}

void tsq_cond_custom(ts_cond *c, int (*pred)(const json_t *, void *), void *ctx)
{
    if (!pred) { cond_error(c, "a custom predicate is NULL%s%s", "", ""); return; }
    tsq_term *t = push(c);
    if (!t) return;
    t->kind = TSQ_CUSTOM;
    t->pred = pred;
    t->ctx = ctx;
}

void tsq_cond_clear(ts_cond *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->t[i].field);
        json_decref(c->t[i].value);
        if (c->t[i].group) { tsq_cond_clear(c->t[i].group); free(c->t[i].group); }
    }
    free(c->t);
    memset(c, 0, sizeof *c);
}

int tsq_cond_has_custom(const ts_cond *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->t[i].kind == TSQ_CUSTOM || (c->t[i].group && tsq_cond_has_custom(c->t[i].group)))
            return 1;
    return 0;
}

json_t *tsq_cond_json(const ts_cond *c)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < c->n; i++) {
        const tsq_term *t = &c->t[i];
        json_t *e = t->kind == TSQ_LEAF ? json_pack("[b, s, s, O]", t->or_before, t->field,
                                                    tsq_op_name(t->op), t->value)
                  : t->kind == TSQ_GROUP ? json_pack("[b, o]", t->or_before, tsq_cond_json(t->group))
                  : json_pack("[b, s]", t->or_before, "custom");
        json_array_append_new(a, e);
    }
    return a;
}

/* ---- compiling -------------------------------------------------------- */

int tsq_resolve(tsq_ctx *x, const char *name, int *src, size_t *col)
{
    const char *dot = strchr(name, '.');
    if (dot) {
        size_t tl = (size_t)(dot - name);
        for (size_t s = 0; s < x->nsrc; s++) {
            const char *tn = x->src[s].t->def->name;
            if (strlen(tn) == tl && memcmp(tn, name, tl) == 0) {
                long c = tsd_table_col(x->src[s].t->def, dot + 1);
                if (c < 0) break;
                *src = (int)s;
                *col = (size_t)c;
                return TS_OK;
            }
        }
    } else {
        for (size_t s = 0; s < x->nsrc; s++) {
            long c = tsd_table_col(x->src[s].t->def, name);
            if (c >= 0) {
                *src = (int)s;
                *col = (size_t)c;
                return TS_OK;
            }
        }
    }
    return tsenv_error(x->env, TS_ERR_VALIDATION, "%s: unknown field '%s'", x->src[0].t->def->name, name);
}

static int coerce_one(tsq_ctx *x, const tsd_field *f, const json_t *in, json_t **keep, tsd_value *v)
{
    int rc = tsd_coerce(x->env, f, in, keep);
    if (!rc) rc = tsd_value_from_json(x->env, f, *keep, v);
    return rc;
}

static int compile_leaf(tsq_ctx *x, const tsq_term *t, tsq_cterm *ct)
{
    int rc = tsq_resolve(x, t->field, &ct->src, &ct->col);
    if (rc) return rc;
    const tsd_field *f = ct->f = &x->src[ct->src].t->def->cols[ct->col];
    ct->op = t->op;
    switch (t->op) {
    case TSQ_IS:
    case TSQ_IS_NOT:
        return TS_OK;
    case TSQ_LIKE:
    case TSQ_NOT_LIKE:
        if (f->type != TSD_TEXT && f->type != TSD_KEY)
            return tsenv_error(x->env, TS_ERR_VALIDATION, "%s.%s: LIKE needs a text field (it is %s)",
                               f->table, f->name, tsd_type_name(f->type));
        ct->coerced = json_incref(t->value);
        return TS_OK;
    case TSQ_IN:
    case TSQ_NOT_IN:
    case TSQ_BETWEEN: {
        size_t n = json_array_size(t->value);
        ct->coerced = json_array();
        ct->set = calloc(n + 1, sizeof *ct->set);
        if (!ct->coerced || !ct->set) return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *k = NULL;
            if (json_is_null(json_array_get(t->value, i)))
                return tsenv_error(x->env, TS_ERR_VALIDATION, "%s.%s %s: null in the list (nulls never "
                                   "match)", f->table, f->name, tsq_op_name(t->op));
            rc = coerce_one(x, f, json_array_get(t->value, i), &k, &ct->set[ct->nset]);
            json_array_append_new(ct->coerced, k);
            if (rc) return rc;
            ct->nset++;
        }
        if (t->op == TSQ_BETWEEN) { ct->v = ct->set[0]; ct->v2 = ct->set[1]; }
        return TS_OK;
    }
    default:
        return coerce_one(x, f, t->value, &ct->coerced, &ct->v);
    }
}

int tsq_compile(tsq_ctx *x, const ts_cond *c, tsq_cgroup *out)
{
    out->n = 0;
    out->t = calloc(c->n + 1, sizeof *out->t);
    if (!out->t) return tsenv_error(x->env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++) {
        const tsq_term *t = &c->t[i];
        tsq_cterm *ct = &out->t[out->n++];
        ct->kind = t->kind;
        ct->or_before = t->or_before;
        int rc = t->kind == TSQ_LEAF ? compile_leaf(x, t, ct)
               : t->kind == TSQ_GROUP ? tsq_compile(x, t->group, &ct->g) : TS_OK;
        ct->pred = t->pred;
        ct->ctx = t->ctx;
        if (rc) return rc;
    }
    return TS_OK;
}

void tsq_cgroup_free(tsq_cgroup *g)
{
    for (size_t i = 0; g->t && i < g->n; i++) {
        tsq_cterm *ct = &g->t[i];
        for (size_t j = 0; j < ct->nset; j++) tsd_value_clear(&ct->set[j]);
        if (!ct->set) tsd_value_clear(&ct->v);
        free(ct->set);
        json_decref(ct->coerced);
        tsq_cgroup_free(&ct->g);
    }
    free(g->t);
    g->t = NULL;
    g->n = 0;
}

/* ---- evaluating ---------------------------------------------------------- */

/* Decode one UTF-8 sequence length (invalid bytes count as one). */
static size_t u8len(const unsigned char *s, size_t n)
{
    size_t l = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 1;
    return l <= n ? l : 1;
}

int tsq_like(const char *s, size_t n, const char *p, size_t pn)
{
    /* iterative matcher with backtracking to the last '%' */
    size_t si = 0, pi = 0, star_p = (size_t)-1, star_s = 0;
    while (si < n) {
        if (pi < pn && p[pi] == '%') {
            star_p = ++pi;
            star_s = si;
            continue;
        }
        if (pi < pn && p[pi] == '_') {
            pi++;
            si += u8len((const unsigned char *)s + si, n - si);
            continue;
        }
        if (pi < pn) {
            size_t q = pi;
            if (p[q] == '\\' && q + 1 < pn) q++;
            if (p[q] == s[si]) { pi = q + 1; si++; continue; }
        }
        if (star_p == (size_t)-1) return 0;
        pi = star_p;
        star_s += u8len((const unsigned char *)s + star_s, n - star_s);
        si = star_s;
    }
    while (pi < pn && p[pi] == '%') pi++;
    return pi == pn;
}

static int leaf(tsq_ctx *x, const tsq_cterm *ct, const tsq_rowset *rs)
{
    tsd_value v;
    if (!rs->row[ct->src]) {
        v.kind = TSD_V_NULL;
    } else {
        int rc = tsd_row_field(x->env, x->src[ct->src].t->def, rs->row[ct->src], rs->len[ct->src],
                               ct->col, &v);
        if (rc) return rc;
    }
    return tsq_leaf_value(ct, &v);
}

int tsq_leaf_value(const tsq_cterm *ct, const tsd_value *v)
{
    int null = v->kind == TSD_V_NULL;
    if (ct->op == TSQ_IS) return null;
    if (ct->op == TSQ_IS_NOT) return !null;
    if (null) return 0;
    switch (ct->op) {
    case TSQ_EQ: return tsd_value_cmp(ct->f, v, &ct->v) == 0;
    case TSQ_NE: return tsd_value_cmp(ct->f, v, &ct->v) != 0;
    case TSQ_GT: return tsd_value_cmp(ct->f, v, &ct->v) > 0;
    case TSQ_GE: return tsd_value_cmp(ct->f, v, &ct->v) >= 0;
    case TSQ_LT: return tsd_value_cmp(ct->f, v, &ct->v) < 0;
    case TSQ_LE: return tsd_value_cmp(ct->f, v, &ct->v) <= 0;
    case TSQ_BETWEEN:
        return tsd_value_cmp(ct->f, v, &ct->v) >= 0 && tsd_value_cmp(ct->f, v, &ct->v2) <= 0;
    case TSQ_IN:
    case TSQ_NOT_IN: {
        int in = 0;
        for (size_t i = 0; i < ct->nset && !in; i++) in = tsd_value_cmp(ct->f, v, &ct->set[i]) == 0;
        return ct->op == TSQ_IN ? in : !in;
    }
    case TSQ_LIKE:
    case TSQ_NOT_LIKE: {
        if (v->kind != TSD_V_TEXT) return ct->op == TSQ_NOT_LIKE;
        int m = tsq_like(v->p, v->n, json_string_value(ct->coerced), json_string_length(ct->coerced));
        return ct->op == TSQ_LIKE ? m : !m;
    }
    default:
        return 0;
    }
}

int tsq_eval(tsq_ctx *x, const tsq_cgroup *g, const tsq_rowset *rs)
{
    if (!g->n) return 1;
    /* OR of AND-runs: a run fails at its first false term */
    int run = 1;
    for (size_t i = 0; i < g->n; i++) {
        const tsq_cterm *ct = &g->t[i];
        if (ct->or_before) {
            if (run) return 1;
            run = 1;
        }
        if (!run) continue;
        int r;
        if (ct->kind == TSQ_LEAF) {
            r = leaf(x, ct, rs);
        } else if (ct->kind == TSQ_GROUP) {
            r = tsq_eval(x, &ct->g, rs);
        } else {
            if (!x->row_json) {
                r = x->row_json_fn(x, rs, &x->row_json);
                if (r) return r;
            }
            r = ct->pred(x->row_json, ct->ctx) != 0;
        }
        if (r < 0) return r;
        run = r;
    }
    return run;
}
