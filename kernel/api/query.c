/* Queries: the public builders and executing calls of tostore.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "api/call.h"
#include "api/query.h"
#include "table/write.h"

/* ---- builders ---------------------------------------------------------- */

static void q_error(ts_query *q, int code, const char *msg, const char *arg)
{
    if (q->err) return;
    q->err = code;
    snprintf(q->errmsg, sizeof q->errmsg, msg, arg ? arg : "(null)");
}

static char *sdup(ts_query *q, const char *s)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d) q_error(q, TS_ERR_NOMEM, "out of memory%s", "");
    return d;
}

ts_query *ts_query_new(ts_db *db, const char *table)
{
    if (!db) return NULL;
    ts_query *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->db = db;
    q->s.table = sdup(q, table ? table : "");
    if (!table) q_error(q, TS_ERR_INVALID, "ts_query_new: table is NULL%s", "");
    return q;
}

void tsapi_spec_clear(tsq_spec *s)
{
    free(s->table);
    tsq_cond_clear(&s->cond);
    for (size_t i = 0; i < s->norder; i++) free(s->order[i].field);
    free(s->order);
    free(s->cursor);
    for (size_t i = 0; i < s->nsel; i++) { free(s->sel[i].field); free(s->sel[i].alias); }
    free(s->sel);
    for (size_t i = 0; i < s->njoins; i++) {
        free(s->joins[i].table);
        free(s->joins[i].left);
        free(s->joins[i].right);
    }
    free(s->joins);
    memset(s, 0, sizeof *s);
}

void ts_query_free(ts_query *q)
{
    if (!q) return;
    tsapi_spec_clear(&q->s);
    free(q);
}

ts_query *ts_where(ts_query *q, const char *field, const char *op, const json_t *value)
{
    if (q) tsq_cond_leaf(&q->s.cond, field, op, value);
    return q;
}

ts_query *ts_or(ts_query *q)
{
    if (q) q->s.cond.pending_or = 1;
    return q;
}

ts_cond *ts_cond_new(void) { return calloc(1, sizeof(ts_cond)); }

ts_cond *ts_cond_where(ts_cond *c, const char *field, const char *op, const json_t *value)
{
    if (c) tsq_cond_leaf(c, field, op, value);
    return c;
}

ts_cond *ts_cond_or(ts_cond *c)
{
    if (c) c->pending_or = 1;
    return c;
}

ts_cond *ts_cond_add(ts_cond *c, ts_cond *child)
{
    if (c) tsq_cond_group(c, child);
    else ts_cond_free(child);
    return c;
}

void ts_cond_free(ts_cond *c)
{
    if (!c) return;
    tsq_cond_clear(c);
    free(c);
}

ts_query *ts_where_cond(ts_query *q, ts_cond *c)
{
    if (q) tsq_cond_group(&q->s.cond, c);
    else ts_cond_free(c);
    return q;
}

ts_query *ts_where_custom(ts_query *q, int (*pred)(const json_t *row, void *ctx), void *ctx)
{
    if (q) tsq_cond_custom(&q->s.cond, pred, ctx);
    return q;
}

ts_query *ts_order_by(ts_query *q, const char *field, int desc)
{
    if (!q) return NULL;
    if (!field) { q_error(q, TS_ERR_INVALID, "ts_order_by: field is NULL%s", ""); return q; }
    tsq_order *n = realloc(q->s.order, (q->s.norder + 1) * sizeof *n);
    if (!n) { q_error(q, TS_ERR_NOMEM, "out of memory%s", ""); return q; }
    q->s.order = n;
    n[q->s.norder].field = sdup(q, field);
    n[q->s.norder++].desc = desc != 0;
    return q;
}

ts_query *ts_limit(ts_query *q, int64_t n)
{
    if (!q) return NULL;
    if (n < 0) q_error(q, TS_ERR_VALIDATION, "limit must not be negative%s", "");
    else { q->s.limit = n; q->s.has_limit = 1; }
    return q;
}

ts_query *ts_offset(ts_query *q, int64_t n)
{
    if (!q) return NULL;
    if (n < 0) q_error(q, TS_ERR_VALIDATION, "offset must not be negative%s", "");
    else q->s.offset = n;
    return q;
}

ts_query *ts_cursor(ts_query *q, const char *token)
{
    if (!q) return NULL;
    free(q->s.cursor);
    q->s.cursor = token && *token ? sdup(q, token) : NULL;
    return q;
}

ts_query *ts_select(ts_query *q, const char *const *fields, size_t n)
{
    if (!q) return NULL;
    for (size_t i = 0; i < q->s.nsel; i++) { free(q->s.sel[i].field); free(q->s.sel[i].alias); }
    free(q->s.sel);
    q->s.sel = NULL;
    q->s.nsel = 0;
    if (!n) return q;
    if (!fields) { q_error(q, TS_ERR_INVALID, "ts_select: fields is NULL%s", ""); return q; }
    q->s.sel = calloc(n, sizeof *q->s.sel);
    if (!q->s.sel) { q_error(q, TS_ERR_NOMEM, "out of memory%s", ""); return q; }
    for (size_t i = 0; i < n; i++) {
        if (!fields[i]) { q_error(q, TS_ERR_INVALID, "ts_select: a field is NULL%s", ""); return q; }
        char *f = sdup(q, fields[i]);
        if (!f) return q;
        /* "expr as alias" (case-insensitive AS) */
        char *as = NULL;
        for (char *p = f; (p = strchr(p, ' ')) != NULL; p++)
            if (strncasecmp(p, " as ", 4) == 0) { as = p; break; }
        if (as) {
            *as = '\0';
            char *alias = as + 4;
            while (*alias == ' ') alias++;
            q->s.sel[q->s.nsel].alias = sdup(q, alias);
            if (!*alias) q_error(q, TS_ERR_VALIDATION, "select '%s': empty alias", fields[i]);
        }
        q->s.sel[q->s.nsel++].field = f;
    }
    return q;
}

static ts_query *join(ts_query *q, const char *table, const char *left, const char *op,
                      const char *right, int left_join)
{
    if (!q) return NULL;
    if (!table || !left || !right) { q_error(q, TS_ERR_INVALID, "ts_join: NULL argument%s", ""); return q; }
    int o = tsq_op_parse(op);
    if (o < 0 || o > TSQ_LE) {
        q_error(q, TS_ERR_VALIDATION, "ts_join: unsupported operator '%s'", op);
        return q;
    }
    tsq_join *n = realloc(q->s.joins, (q->s.njoins + 1) * sizeof *n);
    if (!n) { q_error(q, TS_ERR_NOMEM, "out of memory%s", ""); return q; }
    q->s.joins = n;
    n[q->s.njoins++] = (tsq_join){ sdup(q, table), sdup(q, left), sdup(q, right), o, left_join };
    return q;
}

ts_query *ts_join(ts_query *q, const char *table, const char *left, const char *op, const char *right)
{
    return join(q, table, left, op, right, 0);
}

ts_query *ts_left_join(ts_query *q, const char *table, const char *left, const char *op,
                       const char *right)
{
    return join(q, table, left, op, right, 1);
}

ts_query *ts_allow_all(ts_query *q)
{
    if (q) q->allow_all = 1;
    return q;
}

/* ---- running ----------------------------------------------------------- */

static uint64_t cur_space(ts_db *db)
{
    pthread_mutex_lock(&db->lock);
    uint64_t id = db->space_id;
    pthread_mutex_unlock(&db->lock);
    return id;
}

/* Start an executing call: report a builder error, then begin. */
static int q_begin(ts_query *q, int write, tscall *c)
{
    memset(c, 0, sizeof *c);
    if (!q) return tsenv_error(NULL, TS_ERR_INVALID, "the query is NULL");
    int rc = tscall_begin(q->db, write, c);
    if (rc) return rc;
    if (q->err) return tsenv_error(&q->db->env, q->err, "%s", q->errmsg);
    if (q->s.cond.err) return tsenv_error(&q->db->env, q->s.cond.err, "%s", q->s.cond.errmsg);
    return TS_OK;
}

static int open_exec(ts_query *q, tscall *c, int mode, tsq_exec **e)
{
    return tsq_exec_open(&q->db->env, &q->db->tables, c->tx, cur_space(q->db), &q->s, mode,
                         q->db->cfg->default_query_limit, e);
}

struct ts_result {
    json_t *rows;
    char   *next, *prev;
};

int tsapi_query_rows(ts_query *q, tstx *tx, ts_result **out)
{
    *out = NULL;
    tscall c = { q->db, tx, 0 };
    tsq_exec *e = NULL;
    int rc = open_exec(q, &c, TSQ_MODE_ROWS, &e);
    ts_result *r = rc ? NULL : calloc(1, sizeof *r);
    if (!rc && (!r || !(r->rows = json_array()))) rc = tsenv_error(&q->db->env, TS_ERR_NOMEM, "out of memory");
    const tsq_rowset *rs;
    const uint8_t *pk;
    size_t pkl;
    while (!rc && (rc = tsq_exec_next(e, &rs, &pk, &pkl)) == 1) {
        json_t *row;
        rc = tsq_exec_row_json(e, rs, &row);
        if (!rc) rc = json_array_append_new(r->rows, row) ? TS_ERR_NOMEM : TS_OK;
    }
    if (!rc) rc = tsq_exec_cursors(e, &r->next, &r->prev);
    tsq_exec_close(e);
    if (rc) { ts_result_free(r); return rc; }
    *out = r;
    return TS_OK;
}

int ts_query_exec(ts_query *q, ts_result **out)
{
    if (out) *out = NULL;
    tscall c;
    int rc = q_begin(q, 0, &c);
    if (!rc && !out) rc = tsenv_error(&q->db->env, TS_ERR_INVALID, "out is NULL");
    if (!rc) rc = tsapi_cache_get(q, c.tx, out);
    return tscall_end(&c, rc);
}

size_t ts_result_count(const ts_result *r) { return r ? json_array_size(r->rows) : 0; }
const json_t *ts_result_row(const ts_result *r, size_t i) { return r ? json_array_get(r->rows, i) : NULL; }
const char *ts_result_next_cursor(const ts_result *r) { return r ? r->next : NULL; }
const char *ts_result_prev_cursor(const ts_result *r) { return r ? r->prev : NULL; }

void ts_result_free(ts_result *r)
{
    if (!r) return;
    json_decref(r->rows);
    free(r->next);
    free(r->prev);
    free(r);
}

ts_result *tsapi_result_copy(const ts_result *r)
{
    ts_result *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->rows = json_deep_copy(r->rows);
    c->next = r->next ? strdup(r->next) : NULL;
    c->prev = r->prev ? strdup(r->prev) : NULL;
    if (!c->rows || (r->next && !c->next) || (r->prev && !c->prev)) { ts_result_free(c); return NULL; }
    return c;
}

int ts_query_count(ts_query *q, int64_t *out)
{
    tscall c;
    int rc = q_begin(q, 0, &c);
    if (!rc && !out) rc = tsenv_error(&q->db->env, TS_ERR_INVALID, "out is NULL");
    tsq_exec *e = NULL;
    if (!rc) rc = open_exec(q, &c, TSQ_MODE_ALL, &e);
    int64_t n = 0;
    const tsq_rowset *rs;
    const uint8_t *pk;
    size_t pkl;
    if (!rc && !tsq_exec_has_cond(e) && !q->s.njoins && !tsq_exec_ctx(e)->src[0].t->ttl) {
        tsq_src *s0 = &tsq_exec_ctx(e)->src[0];
        rc = tstbl_count(&q->db->tables, c.tx, s0->t, s0->space, &n);
    } else if (!rc && (rc = tsq_exec_count_fast(e, &n)) == TS_ERR_UNSUPPORTED) {
        n = 0;
        rc = TS_OK;
        while (!rc && (rc = tsq_exec_next(e, &rs, &pk, &pkl)) == 1) { n++; rc = TS_OK; }
    }
    tsq_exec_close(e);
    if (!rc) *out = n;
    return tscall_end(&c, rc);
}

/* sum / avg / min / max */
int ts_query_aggregate(ts_query *q, const char *fn, const char *field, json_t **out_new)
{
    if (out_new) *out_new = NULL;
    tscall c;
    int rc = q_begin(q, 0, &c);
    ts_env *env = q ? &q->db->env : NULL;
    int kind = -1;
    if (!rc && (!fn || !field || !out_new)) rc = tsenv_error(env, TS_ERR_INVALID, "ts_query_aggregate: NULL argument");
    if (!rc) {
        kind = strcasecmp(fn, "sum") == 0 ? 0 : strcasecmp(fn, "avg") == 0 ? 1
             : strcasecmp(fn, "min") == 0 ? 2 : strcasecmp(fn, "max") == 0 ? 3 : -1;
        if (kind < 0) rc = tsenv_error(env, TS_ERR_VALIDATION, "unknown aggregate '%s' (sum, avg, min, max)", fn);
    }
    tsq_exec *e = NULL;
    if (!rc) rc = open_exec(q, &c, TSQ_MODE_ALL, &e);
    int src = 0;
    size_t col = 0;
    const tsd_field *f = NULL;
    if (!rc) rc = tsq_resolve(tsq_exec_ctx(e), field, &src, &col);
    if (!rc) {
        f = &tsq_exec_ctx(e)->src[src].t->def->cols[col];
        if (kind <= 1 && f->type != TSD_INTEGER && f->type != TSD_DOUBLE && f->type != TSD_BIGINT &&
            f->type != TSD_KEY)
            rc = tsenv_error(env, TS_ERR_VALIDATION, "%s.%s: %s needs a numeric field", f->table,
                             f->name, fn);
        else if (!tsd_type_indexable(f->type))
            rc = tsenv_error(env, TS_ERR_VALIDATION, "%s.%s: cannot aggregate a %s field", f->table,
                             f->name, tsd_type_name(f->type));
    }
    int64_t n = 0, isum = 0;
    double dsum = 0;
    int is_int = 1;
    json_t *best = NULL;
    tsd_value bv;
    memset(&bv, 0, sizeof bv);
    const tsq_rowset *rs;
    const uint8_t *pk;
    size_t pkl;
    while (!rc && (rc = tsq_exec_next(e, &rs, &pk, &pkl)) == 1) {
        rc = TS_OK;
        tsd_value v;
        if (!rs->row[src]) continue;
        if ((rc = tsd_row_field(env, tsq_exec_ctx(e)->src[src].t->def, rs->row[src], rs->len[src], col, &v))) break;
        if (v.kind == TSD_V_NULL) continue;
        n++;
        if (kind <= 1) {
            double d = v.kind == TSD_V_DOUBLE ? v.d : (double)v.i;
            if (v.kind == TSD_V_BIGDEC) d = strtod(v.p, NULL) * (v.neg ? -1 : 1);
            dsum += d;
            if (v.kind != TSD_V_INT || (v.i > 0 && isum > INT64_MAX - v.i) || (v.i < 0 && isum < INT64_MIN - v.i))
                is_int = 0;
            else isum += v.i;
        } else if (bv.kind == TSD_V_NULL || (kind == 2 ? tsd_value_cmp(f, &v, &bv) < 0
                                                       : tsd_value_cmp(f, &v, &bv) > 0)) {
            json_decref(best);
            best = NULL;
            if ((rc = tsd_value_to_json(env, f, &v, &best))) break;
            tsd_value_clear(&bv);
            if ((rc = tsd_value_from_json(env, f, best, &bv))) break;
        }
    }
    tsd_value_clear(&bv);
    tsq_exec_close(e);
    if (!rc) {
        if (!n) *out_new = json_null();
        else if (kind == 0) *out_new = is_int ? json_integer(isum) : json_real(dsum);
        else if (kind == 1) *out_new = json_real(dsum / (double)n);
        else { *out_new = best; best = NULL; }
        if (!*out_new) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    }
    json_decref(best);
    return tscall_end(&c, rc);
}

/* The primary keys of every matching row of the queried table. */
static int match_keys(ts_query *q, tscall *c, tsq_keys *k)
{
    tsq_exec *e = NULL;
    int rc = open_exec(q, c, TSQ_MODE_ALL, &e);
    if (!rc && !tsq_exec_has_cond(e) && !q->allow_all)
        rc = tsenv_error(&q->db->env, TS_ERR_VALIDATION, "an update or delete without conditions "
                         "changes every row: call ts_allow_all to mean it");
    const tsq_rowset *rs;
    const uint8_t *pk;
    size_t pkl;
    while (!rc && (rc = tsq_exec_next(e, &rs, &pk, &pkl)) == 1) {
        uint8_t **nk = realloc(k->k, (k->n + 1) * sizeof *nk);
        size_t *nl = nk ? realloc(k->kl, (k->n + 1) * sizeof *nl) : NULL;
        if (nk) k->k = nk;
        if (nl) k->kl = nl;
        uint8_t *d = nl ? malloc(pkl ? pkl : 1) : NULL;
        if (!d) { rc = tsenv_error(&q->db->env, TS_ERR_NOMEM, "out of memory"); break; }
        memcpy(d, pk, pkl);
        k->k[k->n] = d;
        k->kl[k->n++] = pkl;
        rc = TS_OK;
    }
    tsq_exec_close(e);
    return rc;
}

static void keys_free(tsq_keys *k)
{
    for (size_t i = 0; i < k->n; i++) free(k->k[i]);
    free(k->k);
    free(k->kl);
}

static int modify(ts_query *q, const json_t *changes, int64_t *affected, int del)
{
    if (affected) *affected = 0;
    tscall c;
    int rc = q_begin(q, 1, &c);
    if (!rc && !del && !json_is_object(changes))
        rc = tsenv_error(&q->db->env, changes ? TS_ERR_VALIDATION : TS_ERR_INVALID,
                         "changes must be a JSON object");
    tsq_keys k = { 0 };
    if (!rc) rc = match_keys(q, &c, &k);
    tstbl *t = NULL;
    tsw w;
    memset(&w, 0, sizeof w);
    if (!rc) rc = tstbl_acquire(&q->db->tables, q->s.table, c.tx, &t);
    int64_t n = 0;
    if (!rc) {
        tsw_init(&w, &q->db->tables, c.tx, cur_space(q->db), !c.owned);
        uint64_t space = tsrow_space(t, w.space);
        for (size_t i = 0; i < k.n && !rc; i++) {
            rc = del ? tswrite_delete(&w, t, space, k.k[i], k.kl[i])
                     : tswrite_update(&w, t, space, k.k[i], k.kl[i], changes);
            if (rc == TS_ERR_NOT_FOUND && del) { rc = TS_OK; tsenv_clear(&q->db->env); continue; }
            if (!rc) n++;
        }
        if (!rc && !del && k.n == 0)
            rc = tsenv_error(&q->db->env, TS_ERR_NOT_FOUND, "%s: no row matches the update", t->def->name);
        if (rc >= 0 && !c.owned && tsapi_sp_keep_rows(q->db, &w)) rc = TS_ERR_NOMEM;
        if (rc < 0 && !c.owned && w.nundo && tsw_undo_to(&w, 0)) tscall_poison(&c);
        tsw_done(&w);
    }
    if (t) tstbl_release(&q->db->tables, t);
    keys_free(&k);
    rc = tscall_end(&c, rc);
    if (!rc && affected) *affected = n;
    return rc;
}

int ts_query_update(ts_query *q, const json_t *changes, int64_t *affected)
{
    return modify(q, changes, affected, 0);
}

int ts_query_delete(ts_query *q, int64_t *affected)
{
    return modify(q, NULL, affected, 1);
}

/* ---- streams ------------------------------------------------------------ */

struct ts_stream {
    ts_db    *db;
    tscall    c;
    tsq_exec *e;
    int       done;
};

int ts_query_stream(ts_query *q, ts_stream **out)
{
    if (out) *out = NULL;
    ts_stream *s = calloc(1, sizeof *s);
    if (!s) return tsenv_error(q ? &q->db->env : NULL, TS_ERR_NOMEM, "out of memory");
    int rc = q_begin(q, 0, &s->c);
    if (!rc && !out) rc = tsenv_error(&q->db->env, TS_ERR_INVALID, "out is NULL");
    if (!rc) rc = open_exec(q, &s->c, TSQ_MODE_STREAM, &s->e);
    if (rc) {
        tscall_end(&s->c, rc);
        free(s);
        return rc;
    }
    s->db = q->db;
    *out = s;
    return TS_OK;
}

int ts_stream_next(ts_stream *s, json_t **row_out_new)
{
    if (row_out_new) *row_out_new = NULL;
    if (!s || !row_out_new) return tsenv_error(s ? &s->db->env : NULL, TS_ERR_INVALID, "ts_stream_next: NULL argument");
    if (s->done) return 0;
    const tsq_rowset *rs;
    const uint8_t *pk;
    size_t pkl;
    int rc = tsq_exec_next(s->e, &rs, &pk, &pkl);
    if (rc == 1) {
        rc = tsq_exec_row_json(s->e, rs, row_out_new);
        return rc ? rc : 1;
    }
    s->done = 1;
    return rc;
}

void ts_stream_free(ts_stream *s)
{
    if (!s) return;
    tsq_exec_close(s->e);
    tscall_end(&s->c, TS_OK);
    free(s);
}

int ts_query_explain(ts_query *q, json_t **plan_new)
{
    if (plan_new) *plan_new = NULL;
    tscall c;
    int rc = q_begin(q, 0, &c);
    if (!rc && !plan_new) rc = tsenv_error(&q->db->env, TS_ERR_INVALID, "plan is NULL");
    tsq_exec *e = NULL;
    if (!rc) rc = open_exec(q, &c, TSQ_MODE_ROWS, &e);
    const tsq_rowset *rs;
    const uint8_t *pk;
    size_t pkl;
    while (!rc && (rc = tsq_exec_next(e, &rs, &pk, &pkl)) == 1) rc = TS_OK;
    json_t *o = rc ? NULL : json_object();
    if (!rc && !o) rc = tsenv_error(&q->db->env, TS_ERR_NOMEM, "out of memory");
    if (!rc) tsq_exec_explain(e, o);
    tsq_exec_close(e);
    if (!rc) *plan_new = o;
    return tscall_end(&c, rc);
}

/* ---- vector search --------------------------------------------------------- */

ts_query *ts_ef_search(ts_query *q, int ef)
{
    if (!q) return NULL;
    if (ef <= 0) q_error(q, TS_ERR_VALIDATION, "ts_ef_search: ef must be positive%s", "");
    else if (ef > TS_EF_SEARCH_MAX) {
        char lim[16];
        snprintf(lim, sizeof lim, "%d", TS_EF_SEARCH_MAX);
        q_error(q, TS_ERR_RANGE, "ts_ef_search: ef is above %s", lim);
    }
    else q->ef_search = ef;
    return q;
}

ts_query *ts_vector_metric(ts_query *q, const char *metric)
{
    if (!q) return NULL;
    int m = tsq_vector_metric(metric);
    if (m < 0) q_error(q, TS_ERR_VALIDATION, "ts_vector_metric: '%s' is not cosine, l2 or innerProduct",
                       metric ? metric : "(null)");
    else q->vmetric = m + 1;
    return q;
}

/* Build the column set of col for the vcache entry key (due: seen before
 * at this version); a column that cannot have one is remembered as such. */
static int column_set_build(ts_db *db, tsq_exec *e, uint64_t space, const uint64_t tag[3],
                            const char *key, size_t col, tsq_vset **built)
{
    /* from now on the writer keeps the rows it changes, to patch the set */
    tstbl_journal_want(tsq_exec_ctx(e)->src[0].t);
    int rc = tsq_vector_column_build(e, col, built);
    if (rc == TS_ERR_UNSUPPORTED || rc == TS_ERR_RESOURCE) {
        tsapi_vcache_put(db, key, space, tag, NULL);   /* not at this version */
        rc = TS_OK;
    }
    return rc;
}

/* The keys of the rows commits changed in space since version `from` up
 * to the search's (tag), from the table object the search's snapshot
 * reads (a migration's swap may since have put another under its name;
 * tag was taken from this object). */
static int changes_since(ts_db *db, tsq_exec *e, uint64_t space, const uint64_t tag[3], uint64_t from,
                         tstbl_keys *chg)
{
    return tstbl_changes(&db->tables, tsq_exec_ctx(e)->src[0].t, space, from, tag[2], chg);
}

/* The column set of an earlier version (p) patched with the rows changed
 * since: the reads of those rows only.  When the journal no longer has
 * them, or there are too many (tsq_vector_column_patch): a plan no index narrows
 * builds a new set from every row at once; a narrowed one, whose index
 * answers without, waits as at a version without a set to patch
 * (column_set_wide). */
static int column_set_patch(ts_db *db, tsq_exec *e, uint64_t space, const uint64_t tag[3],
                            const char *key, size_t col, int narrowed, tsapi_vpatch *p, tsq_vset **built)
{
    tstbl_keys chg;
    int rc = changes_since(db, e, space, tag, p->from, &chg);
    if (!rc) {
        rc = tsq_vector_column_patch(e, col, p->old, &chg, built);
        tstbl_keys_free(&chg);
    }
    tsq_vset_free(p->old);
    if (rc == TS_ERR_UNSUPPORTED) {   /* a value no set holds: none at this version */
        tsapi_vcache_put(db, key, space, tag, NULL);
        return TS_OK;
    }
    int redo = rc == TS_ERR_NOT_FOUND || rc == TS_ERR_RESOURCE;   /* changes unknown, or many */
    if (redo && !narrowed) rc = column_set_build(db, e, space, tag, key, col, built);
    else if (redo) rc = TS_OK;
    if (!*built) tsapi_vcache_unpatch(db, key, space, tag);   /* nothing will be put */
    return rc;
}

/* The set of an earlier version of these conditions (p) patched with
 * the rows changed since (*patched, NULL when it cannot be: then the
 * entry is as if seen once). */
static int cond_set_patch(ts_db *db, tsq_exec *e, const char *field, uint64_t space, const uint64_t tag[3],
                          const char *key, tsapi_vpatch *p, tsq_vset **patched)
{
    tstbl_keys chg;
    int rc = changes_since(db, e, space, tag, p->from, &chg);
    if (!rc) {
        rc = tsq_vector_set_patch(e, field, p->old, &chg, patched);
        tstbl_keys_free(&chg);
    }
    tsq_vset_free(p->old);
    if (!*patched) tsapi_vcache_unpatch(db, key, space, tag);
    /* changes unknown or many, or a set this search cannot patch: none */
    return rc == TS_ERR_NOT_FOUND || rc == TS_ERR_RESOURCE || rc == TS_ERR_UNSUPPORTED ? TS_OK : rc;
}

/* Conditions on one numeric column seen for the first time (conditions
 * that repeat get their own set on the second sighting, which is faster
 * still): a column set, every row's key and value of that column,
 * evaluates them without reading rows.  Built on the second such search at
 * this version (*built, to tsapi_vcache_put under *key after the search),
 * kept like the sets (*ref).  Nothing when the conditions do not qualify.
 * On a plan an index narrows (*narrowed) the index's entries answer most
 * searches: the set is only peeked at, and column_set_wide builds it after
 * searches that turn out wide (*due: it is due now; at a later version
 * only once that version's wide searches walked as many keys as the last
 * set had rows). */
static int column_set(ts_db *db, tsq_exec *e, uint64_t space, const uint64_t tag[3],
                      tsapi_vref *ref, tsq_vset **built, char **key, size_t *col, int *narrowed, int *due)
{
    *due = 0;
    if (!tsq_vector_column(e, col, narrowed)) return TS_OK;
    const tsd_table *def = tsq_exec_ctx(e)->src[0].t->def;
    size_t n = strlen(def->name) + strlen(def->cols[*col].name) + 3;
    if (!(*key = malloc(n))) return TS_OK;   /* no cache: search as usual */
    /* \x01 keeps it apart from the condition keys (JSON arrays) */
    snprintf(*key, n, "\x01%s\x1f%s", def->name, def->cols[*col].name);
    if (*narrowed) {
        /* only integer columns make sets in value order, which narrowed
         * plans use (a range's binary search) */
        tsd_type ty = def->cols[*col].type;
        if (ty != TSD_INTEGER && ty != TSD_DATETIME) {
            free(*key);
            *key = NULL;
            return TS_OK;
        }
    }
    tsapi_vpatch p;
    int look = tsapi_vcache_column(db, *key, space, tag, *narrowed, ref, &p);
    if (look == TSAPI_VC_PATCH) return column_set_patch(db, e, space, tag, *key, *col, *narrowed, &p, built);
    if (*narrowed) {
        *due = look == TSAPI_VC_BUILD;
        return TS_OK;
    }
    if (look != TSAPI_VC_BUILD) return TS_OK;
    return column_set_build(db, e, space, tag, *key, *col, built);
}

/* After a narrowed search that read rows for too many passing ones (an
 * integer range: tsq_vector_search's wide, walked of them): the first
 * such search leaves a sighting, the next builds the set (due), so later
 * searches of the column take it in the same way as unnarrowed ones; once
 * a set was built, one is built again at a later version only when the
 * rows such searches walked at that version reach the rows the last set
 * had (tsapi_vcache_wide).  The set is a cache: failing to build it fails
 * nothing. */
static void column_set_wide(ts_db *db, tsq_exec *e, uint64_t space, const uint64_t tag[3],
                            const char *key, size_t col, int due, uint64_t walked, tsq_vset **built)
{
    if (!due && tsapi_vcache_wide(db, key, space, tag, walked) != TSAPI_VC_BUILD) return;
    if (column_set_build(db, e, space, tag, key, col, built)) *built = NULL;
}

int ts_vector_search(ts_query *q, const char *field, const float *vec, size_t dim, size_t k,
                     ts_result **out)
{
    if (out) *out = NULL;
    /* Outside explicit transactions, conditions that repeat use a cached
     * set of the rows passing them (api/vcache.c): the key and the
     * table's version are taken before the call's snapshot. */
    char *key = NULL;
    uint64_t num = 0, version = 0, space = 0;
    if (q && field && !q->err && !q->s.cond.err) {
        tsapi_thread *th = pthread_getspecific(q->db->txkey);
        if (!(th && th->tx) && (key = tsapi_vcache_key(q, field)))
            version = tstbl_version(&q->db->tables, q->s.table, &num);
    }
    tscall c;
    int rc = q_begin(q, 0, &c);
    if (!rc && (!field || !vec || !out || !k))
        rc = tsenv_error(&q->db->env, TS_ERR_INVALID, "ts_vector_search: %s",
                         !k ? "k must be at least 1" : "field, vec and out must not be NULL");
    if (!rc && q->s.njoins)
        rc = tsenv_error(&q->db->env, TS_ERR_VALIDATION, "ts_vector_search does not join tables");
    tsapi_vref ref = { NULL, NULL };
    tsq_vset *patched = NULL;   /* the last version's set, patched: put after the search */
    int look = TSAPI_VC_NONE;
    tsq_exec *e = NULL;
    if (!rc) rc = open_exec(q, &c, TSQ_MODE_ALL, &e);
    /* the space the executor reads (the handle's may switch meanwhile) */
    uint64_t tag[3] = { num, 0, version };
    /* the version again, now that the snapshot is taken: unchanged, no
     * commit to the table was published around it, so the snapshot holds
     * exactly that version (else a set could pair with a newer snapshot) */
    if (!rc && key && version) {
        uint64_t num2 = 0;
        if (tstbl_version(&q->db->tables, q->s.table, &num2) != version || num2 != num) version = 0;
    }
    /* TTL tables never use sets (rows expire without a commit): no entry */
    int cacheable = !rc && key && version && !tsq_exec_ctx(e)->src[0].t->ttl;
    if (cacheable) {
        space = tsq_exec_ctx(e)->src[0].space;
        tag[1] = tsq_exec_ctx(e)->src[0].t->created;
        tsapi_vpatch vp;
        look = tsapi_vcache_lookup(q->db, key, space, tag, &ref, &vp);
        if (look == TSAPI_VC_PATCH) {
            rc = cond_set_patch(q->db, e, field, space, tag, key, &vp, &patched);
            look = patched ? TSAPI_VC_HIT : TSAPI_VC_NONE;
        }
        /* a set is built now: from now on the writer keeps the rows it
         * changes, to patch it at the next versions */
        if (look == TSAPI_VC_BUILD) tstbl_journal_want(tsq_exec_ctx(e)->src[0].t);
    }
    tsapi_vref cref = { NULL, NULL };
    tsq_vset *cbuilt = NULL;
    char *ckey = NULL;
    size_t ccol = 0;
    int cnarrow = 0, cdue = 0;
    uint64_t wide = 0;
    if (!rc && cacheable && look == TSAPI_VC_NONE)
        rc = column_set(q->db, e, space, tag, &cref, &cbuilt, &ckey, &ccol, &cnarrow, &cdue);
    const tsq_vset *colset = cref.set ? cref.set : cbuilt;
    ts_result *r = rc ? NULL : calloc(1, sizeof *r);
    if (!rc && (!r || !(r->rows = json_array()))) rc = tsenv_error(&q->db->env, TS_ERR_NOMEM, "out of memory");
    tsq_vset *built = NULL;
    if (!rc) rc = tsq_vector_search(e, field, vec, dim, k, q->ef_search, q->vmetric - 1,
                                    ref.set ? ref.set : patched, look == TSAPI_VC_BUILD ? &built : NULL,
                                    colset, &wide, r->rows);
    if (patched) tsapi_vcache_put(q->db, key, space, tag, patched);   /* takes it */
    if (!rc && cnarrow && ckey && wide && !cref.set && !cbuilt)
        column_set_wide(q->db, e, space, tag, ckey, ccol, cdue, wide, &cbuilt);
    if (cbuilt) tsapi_vcache_put(q->db, ckey, space, tag, cbuilt);   /* takes it */
    if (cref.entry) tsapi_vcache_release(q->db, &cref);
    free(ckey);
    if (rc == TS_ERR_RESOURCE && look == TSAPI_VC_BUILD) {
        /* too many rows pass to keep a set: remember that, search as usual */
        tsapi_vcache_put(q->db, key, space, tag, NULL);
        tsq_exec_close(e);
        e = NULL;
        rc = open_exec(q, &c, TSQ_MODE_ALL, &e);
        if (!rc) rc = tsq_vector_search(e, field, vec, dim, k, q->ef_search, q->vmetric - 1, NULL, NULL,
                                        NULL, NULL, r->rows);
    } else if (!rc && built) {
        tsapi_vcache_put(q->db, key, space, tag, built);
    } else if (built) {
        tsq_vset_clear(built);
        free(built);
    }
    tsq_exec_close(e);
    if (ref.entry) tsapi_vcache_release(q->db, &ref);
    free(key);
    if (rc) ts_result_free(r);
    else *out = r;
    return tscall_end(&c, rc);
}
