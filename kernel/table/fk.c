/* Foreign keys: parent checks on writes, actions on parent deletes and key
 * changes.  Children are found through the index the schema layer gives
 * every foreign key (docs/schema.md "Which fields get an index"). */
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "table/write.h"

#define FK_DEPTH_MAX 64

/* Append the key of column col of row (table from) as a value of field to.
 * *null when the value is null (nothing appended). */
static int conv_key(tsw *w, const tsd_table *from, size_t col, const uint8_t *row, size_t len,
                    const tsd_field *to, uint8_t *k, size_t *off, int *null)
{
    tsd_value v;
    int rc = tsd_row_field(w->env, from, row, len, col, &v);
    if (rc) return rc;
    *null = v.kind == TSD_V_NULL;
    if (*null) return TS_OK;
    const tsd_field *f = &from->cols[col];
    if (f->type == to->type && f->pk_type == to->pk_type)
        return tsd_value_key(w->env, to, &v, k, TSROW_KEY_CAP, off);
    json_t *j = NULL, *c = NULL;
    rc = tsd_value_to_json(w->env, f, &v, &j);
    if (!rc) rc = tsd_coerce(w->env, to, j, &c);
    if (!rc) rc = tsd_json_key(w->env, to, c, k, TSROW_KEY_CAP, off);
    json_decref(j);
    json_decref(c);
    return rc;
}

static int ref_col(tsw *w, const tsd_fk *fk, const tstbl *p, size_t j, size_t *col)
{
    long c = tsd_table_col(p->def, fk->ref_fields[j]);
    if (c < 0) return tsenv_error(w->env, TS_ERR_CORRUPT, "foreign key '%s': no field '%s' in '%s'",
                                  fk->name, fk->ref_fields[j], p->def->name);
    *col = (size_t)c;
    return TS_OK;
}

/* The unique index of p on exactly the referenced columns, -1: the primary key. */
static int parent_index(tsw *w, const tsd_fk *fk, const tstbl *p, long *out)
{
    size_t cols[TSD_INDEX_FIELDS_MAX];
    for (size_t j = 0; j < fk->nfields; j++) {
        int rc = ref_col(w, fk, p, j, &cols[j]);
        if (rc) return rc;
    }
    if (fk->nfields == 1 && cols[0] == 0) { *out = -1; return TS_OK; }
    for (size_t i = 0; i < p->def->nindexes; i++) {
        const tsd_index *ix = &p->def->indexes[i];
        if (!ix->unique || ix->nfields != fk->nfields) continue;
        size_t hit = 0;
        for (size_t a = 0; a < ix->nfields; a++)
            for (size_t b = 0; b < fk->nfields; b++)
                if (ix->cols[a] == cols[b]) hit++;
        if (hit == fk->nfields) { *out = (long)i; return TS_OK; }
    }
    return tsenv_error(w->env, TS_ERR_CORRUPT, "foreign key '%s': '%s' has no unique index on the "
                       "referenced fields", fk->name, p->def->name);
}

static int fk_error(tsw *w, const tstbl *t, const tsd_fk *fk, const char *what)
{
    return tsenv_error(w->env, TS_ERR_FOREIGN_KEY, "%s: foreign key '%s' (%s -> %s): %s",
                       t->def->name, fk->name, fk->field_names[0], fk->ref_table, what);
}

int tsfk_check(tsw *w, tstbl *t, uint64_t space, const uint8_t *row, size_t len)
{
    for (size_t f = 0; f < t->def->nfks; f++) {
        const tsd_fk *fk = &t->def->fks[f];
        tstbl *p = tstbl_find(w->m, fk->ref_table);
        if (!p) return fk_error(w, t, fk, "the referenced table is missing");
        long pi = -1;
        int rc = parent_index(w, fk, p, &pi);
        if (rc) return rc;
        uint8_t k[TSROW_KEY_CAP];
        size_t off = ts_key_int(k, sizeof k, 0, (int64_t)tsrow_space(p, space));
        size_t pre = off;
        int null = 0;
        if (pi < 0) {
            rc = conv_key(w, t->def, fk->cols[0], row, len, &p->def->cols[0], k, &off, &null);
        } else {
            const tsd_index *ix = &p->def->indexes[pi];
            for (size_t a = 0; a < ix->nfields && !rc && !null; a++) {
                size_t b = 0, pc = 0;
                for (; b < fk->nfields; b++) {
                    if ((rc = ref_col(w, fk, p, b, &pc))) break;
                    if (pc == ix->cols[a]) break;
                }
                if (!rc) rc = conv_key(w, t->def, fk->cols[b], row, len, &p->def->cols[pc], k, &off, &null);
            }
        }
        if (rc == TS_ERR_VALIDATION) return fk_error(w, t, fk, "the value cannot reference the parent");
        if (rc) return rc;
        for (size_t j = 1; j < fk->nfields && !null; j++) {
            tsd_value v;
            if ((rc = tsd_row_field(w->env, t->def, row, len, fk->cols[j], &v))) return rc;
            null = v.kind == TSD_V_NULL;
        }
        if (null) continue;
        if (off > TS_INDEX_KEY_MAX) return fk_error(w, t, fk, "key too long");
        if (pi < 0) {
            tsrow r;
            rc = tsrow_read(w, p, tsrow_space(p, space), k + pre, off - pre, 1, &r);
            tsrow_done(&r);
        } else {
            void *v;
            size_t vl;
            rc = tsix_get(p->ix[pi], w->tx, k, off, &v, &vl);
            if (!rc) free(v);
        }
        if (rc == TS_ERR_NOT_FOUND) return fk_error(w, t, fk, "no such row in the referenced table");
        if (rc) return rc;
    }
    return TS_OK;
}

int tsfk_referenced(tsw *w, const tstbl *t)
{
    for (size_t i = 0; i < w->m->n; i++) {
        const tsd_table *c = w->m->t[i]->def;
        for (size_t f = 0; f < c->nfks; f++)
            if (strcmp(c->fks[f].ref_table, t->def->name) == 0) return 1;
    }
    return 0;
}

/* The index of child table c over exactly fk's columns in order; -1: its primary key. */
static int child_index(tsw *w, const tstbl *c, const tsd_fk *fk, long *out)
{
    if (fk->nfields == 1 && fk->cols[0] == 0) { *out = -1; return TS_OK; }
    for (size_t i = 0; i < c->def->nindexes; i++) {
        const tsd_index *ix = &c->def->indexes[i];
        if (ix->nfields != fk->nfields) continue;
        size_t j = 0;
        while (j < ix->nfields && ix->cols[j] == fk->cols[j]) j++;
        if (j == ix->nfields) { *out = (long)i; return TS_OK; }
    }
    return tsenv_error(w->env, TS_ERR_CORRUPT, "foreign key '%s' of '%s' has no index",
                       fk->name, c->def->name);
}

/* Space ids the children may live in. */
static int child_spaces(tsw *w, const tstbl *p, const tstbl *c, uint64_t space, uint64_t **ids,
                        size_t *n)
{
    *n = 0;
    *ids = NULL;
    if (c->def->is_global || !p->def->is_global) {
        if (!(*ids = malloc(sizeof **ids))) return tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
        (*ids)[0] = tsrow_space(c, space);
        *n = 1;
        return TS_OK;
    }
    json_t *names = json_array();
    int rc = names ? tssys_space_list(w->m->sys, w->tx, names) : TS_ERR_NOMEM;
    if (!rc && !(*ids = calloc(json_array_size(names) + 1, sizeof **ids))) rc = TS_ERR_NOMEM;
    for (size_t i = 0; !rc && i < json_array_size(names); i++)
        rc = tssys_space_id(w->m->sys, w->tx, json_string_value(json_array_get(names, i)), &(*ids)[(*n)++]);
    json_decref(names);
    return rc;
}

/* The first child row (its pk key) whose fk columns have key k. */
static int first_child(tsw *w, tstbl *c, long ci, uint64_t space, const uint8_t *k, size_t kl,
                       uint8_t *pk, size_t *pkl)
{
    if (ci < 0) {
        size_t pre = (size_t)(ts_key_int(pk, TSROW_KEY_CAP, 0, (int64_t)space));
        tsrow r;
        int rc = tsrow_read(w, c, space, k + pre, kl - pre, 0, &r);
        tsrow_done(&r);
        if (rc) return rc;
        memcpy(pk, k + pre, kl - pre);
        *pkl = kl - pre;
        return TS_OK;
    }
    tsix_cur cur;
    int rc = tsix_cursor(c->ix[ci], w->tx, &cur);
    if (rc) return rc;
    rc = tsix_seek(&cur, k, kl, TS_SEEK_EQ);
    const void *ek, *ev;
    size_t ekl, evl;
    if (!rc) rc = tsix_entry(&cur, &ek, &ekl, &ev, &evl);
    if (!rc && evl > TSROW_KEY_CAP) rc = TS_ERR_CORRUPT;
    if (!rc) {
        memcpy(pk, ev, evl);
        *pkl = evl;
    }
    tsix_cursor_close(&cur);
    return rc;
}

/* New values for the child's fk fields: the parent's new ones (cascade),
 * nulls, or defaults. */
static json_t *child_patch(tsw *w, const tstbl *c, const tsd_fk *fk, tsd_fk_action act,
                           const tstbl *p, const uint8_t *new_row, size_t new_len)
{
    json_t *patch = json_object();
    for (size_t j = 0; patch && j < fk->nfields; j++) {
        const tsd_field *f = &c->def->cols[fk->cols[j]];
        json_t *v = NULL;
        if (act == TSD_FK_CASCADE) {
            size_t pc = 0;
            tsd_value pv;
            if (ref_col(w, fk, p, j, &pc) || tsd_row_field(w->env, p->def, new_row, new_len, pc, &pv) ||
                tsd_value_to_json(w->env, &p->def->cols[pc], &pv, &v)) {
                json_decref(patch);
                return NULL;
            }
            json_t *cv = NULL;
            if (tsd_coerce(w->env, f, v, &cv)) { json_decref(v); json_decref(patch); return NULL; }
            json_decref(v);
            v = cv;
        } else if (act == TSD_FK_SET_DEFAULT && f->default_value) {
            v = json_incref(f->default_value);
        } else if (act == TSD_FK_SET_DEFAULT && f->default_now) {
            v = json_integer(w->now);
        } else {
            v = json_null();
        }
        json_object_set_new(patch, f->name, v);
    }
    return patch;
}

static int act_on_children(tsw *w, tstbl *p, uint64_t space, tstbl *c, const tsd_fk *fk,
                           const uint8_t *old, size_t old_len, const uint8_t *new_row, size_t new_len)
{
    tsd_fk_action act = new_row ? fk->on_update : fk->on_delete;
    long ci = -1;
    int rc = child_index(w, c, fk, &ci);
    if (rc) return rc;
    uint64_t *ids;
    size_t nids;
    if ((rc = child_spaces(w, p, c, space, &ids, &nids))) return rc;
    for (size_t s = 0; s < nids && !rc; s++) {
        uint8_t k[TSROW_KEY_CAP];
        size_t off = ts_key_int(k, sizeof k, 0, (int64_t)ids[s]);
        int null = 0;
        for (size_t j = 0; j < fk->nfields && !rc && !null; j++) {
            size_t pc = 0;
            rc = ref_col(w, fk, p, j, &pc);
            if (!rc) rc = conv_key(w, p->def, pc, old, old_len, &c->def->cols[fk->cols[j]], k, &off, &null);
        }
        if (rc == TS_ERR_VALIDATION) rc = TS_OK, null = 1; /* no child can hold that value */
        if (rc || null) break;
        for (;;) {
            uint8_t pk[TSROW_KEY_CAP];
            size_t pkl;
            rc = first_child(w, c, ci, ids[s], k, off, pk, &pkl);
            if (rc == TS_ERR_NOT_FOUND) { rc = TS_OK; break; }
            if (rc) break;
            if (act == TSD_FK_RESTRICT || act == TSD_FK_NO_ACTION) {
                rc = tsenv_error(w->env, TS_ERR_FOREIGN_KEY, "%s: rows of '%s' reference this row "
                                 "(foreign key '%s', on %s restrict)", p->def->name, c->def->name,
                                 fk->name, new_row ? "update" : "delete");
                break;
            }
            if (act == TSD_FK_CASCADE && !new_row) {
                rc = tswrite_delete(w, c, ids[s], pk, pkl);
            } else {
                json_t *patch = child_patch(w, c, fk, act, p, new_row, new_len);
                rc = patch ? tswrite_update(w, c, ids[s], pk, pkl, patch)
                           : (tsenv_errcode(w->env) ? tsenv_errcode(w->env) : TS_ERR_NOMEM);
                json_decref(patch);
            }
            if (rc) break;
        }
    }
    free(ids);
    return rc;
}

/* Whether the referenced columns of fk hold the same values in both rows. */
static int same_ref(tsw *w, const tstbl *p, const tsd_fk *fk, const uint8_t *a, size_t al,
                    const uint8_t *b, size_t bl, int *same)
{
    *same = 1;
    for (size_t j = 0; j < fk->nfields && *same; j++) {
        size_t pc = 0;
        tsd_value x, y;
        int rc = ref_col(w, fk, p, j, &pc);
        if (!rc) rc = tsd_row_field(w->env, p->def, a, al, pc, &x);
        if (!rc) rc = tsd_row_field(w->env, p->def, b, bl, pc, &y);
        if (rc) return rc;
        if (x.kind == TSD_V_NULL || y.kind == TSD_V_NULL) *same = x.kind == y.kind;
        else *same = tsd_value_cmp(&p->def->cols[pc], &x, &y) == 0;
    }
    return TS_OK;
}

int tsfk_parent_changed(tsw *w, tstbl *t, uint64_t space, const uint8_t *old, size_t old_len,
                        const uint8_t *new_row, size_t new_len)
{
    if (++w->depth > FK_DEPTH_MAX) {
        w->depth--;
        return tsenv_error(w->env, TS_ERR_RESOURCE, "foreign-key actions nest deeper than %d levels",
                           FK_DEPTH_MAX);
    }
    int rc = TS_OK;
    for (size_t i = 0; i < w->m->n && !rc; i++) {
        tstbl *c = w->m->t[i];
        for (size_t f = 0; f < c->def->nfks && !rc; f++) {
            const tsd_fk *fk = &c->def->fks[f];
            if (strcmp(fk->ref_table, t->def->name) != 0) continue;
            if (new_row) {
                int same;
                if ((rc = same_ref(w, t, fk, old, old_len, new_row, new_len, &same)) || same) continue;
            }
            rc = act_on_children(w, t, space, c, fk, old, old_len, new_row, new_len);
        }
    }
    w->depth--;
    return rc;
}
