#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "data/expr.h"
#include "table/write.h"

#define PURGE_PER_WRITE 16

static int pk_json(tsw *w, const tstbl *t, const uint8_t *row, size_t len, json_t **out)
{
    tsd_value v;
    int rc = tsd_row_field(w->env, t->def, row, len, 0, &v);
    if (!rc) rc = tsd_value_to_json(w->env, &t->def->cols[0], &v, out);
    return rc;
}

/* Store a new encoded row.  A TTL table first drops expired rows that
 * would collide with it. */
static int put_row(tsw *w, tstbl *t, uint64_t space, const uint8_t *row, size_t len)
{
    int64_t expires = 0;
    int rc = t->ttl ? tsrow_expiry(w, t, row, len, &expires) : TS_OK;
    if (!rc) rc = tsrow_put(w, t, space, row, len, expires);
    if (t->ttl && (rc == TS_ERR_PRIMARY_KEY || rc == TS_ERR_UNIQUE)) {
        int n, total = 0, r2;
        do r2 = tsrow_purge_expired(w, t, space, 256, &n), total += n; while (!r2 && n == 256);
        if (r2) return r2;
        if (total) rc = tsrow_put(w, t, space, row, len, expires);
    }
    return rc;
}

static int insert_record(tsw *w, tstbl *t, const json_t *rec, json_t **pk_new);

int tswrite_insert(tsw *w, tstbl *t, const json_t *rec, json_t **pk_new)
{
    if (pk_new) *pk_new = NULL;
    if (!json_is_object(rec))
        return tsenv_error(w->env, TS_ERR_VALIDATION, "%s: a record is a JSON object", t->def->name);
    if (!tsx_has_expr(rec)) return insert_record(w, t, rec, pk_new);
    /* expressions of an insert see the record itself (is_insert true) */
    json_t *ev = NULL;
    int rc = tsx_apply(w->env, t->def, rec, rec, 0, w->now, &ev);
    if (!rc) rc = insert_record(w, t, ev, pk_new);
    json_decref(ev);
    return rc;
}

static int insert_record(tsw *w, tstbl *t, const json_t *rec, json_t **pk_new)
{
    uint64_t space = tsrow_space(t, w->space);
    int rc = TS_OK;
    if (t->ttl) rc = tsrow_purge_expired(w, t, space, PURGE_PER_WRITE, NULL);
    const char *pkname = t->def->cols[0].name;
    const json_t *given = json_object_get(rec, pkname);
    json_t *gen = NULL, *own = NULL;
    if (!rc && (!given || json_is_null(given))) {
        if (!t->pkgen)
            return tsenv_error(w->env, TS_ERR_NOT_NULL, "%s.%s: the primary key is required "
                               "(primaryKeyConfig type none)", t->def->name, pkname);
        rc = tstbl_next_key(w->m, w->tx, t, space, &gen);
    } else if (!rc && t->def->cols[0].type == TSD_KEY && t->pkgen) {
        /* an undeclared key of a generated table: "7" is the key 7, as
         * lookups take it, so the two never make two rows */
        rc = tsd_coerce(w->env, &t->def->cols[0], given, &own);
    }
    tsd_buf row = { 0 };
    if (!rc) rc = tsd_row_encode_record(w->env, t->def, rec, gen ? gen : own, w->now, &row);
    if (!rc) rc = put_row(w, t, space, row.p, row.len);
    /* after the put, so a row may reference itself; a failure is undone
     * with the statement */
    if (!rc && t->def->nfks) rc = tsfk_check(w, t, space, row.p, row.len);
    if (!rc && !gen) {
        json_t *pk = NULL;
        rc = pk_json(w, t, row.p, row.len, &pk);
        if (!rc) rc = tstbl_observe_key(w->m, w->tx, t, space, pk);
        if (!rc && pk_new) *pk_new = json_incref(pk);
        json_decref(pk);
    } else if (!rc && pk_new) {
        rc = pk_json(w, t, row.p, row.len, pk_new);
    }
    json_decref(gen);
    json_decref(own);
    tsd_buf_free(&row);
    return rc;
}

int tswrite_update(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl,
                   const json_t *changes)
{
    json_t *patch = NULL, *old = NULL, *merged = NULL;
    tsrow r;
    int rc = tsrow_read(w, t, space, pk, pkl, 1, &r);
    if (rc == TS_ERR_NOT_FOUND)
        return tsenv_error(w->env, rc, "%s: no row with that primary key", t->def->name);
    if (rc) return rc;
    tsd_buf row = { 0 };
    json_t *ev = NULL;
    rc = tsd_row_decode(w->env, t->def, r.row, r.len, &old);
    /* expressions are evaluated against the stored row, inside the write */
    if (!rc && tsx_has_expr(changes)) rc = tsx_apply(w->env, t->def, changes, old, 1, w->now, &ev);
    if (!rc) rc = tsd_record_validate(w->env, t->def, ev ? ev : changes, TSD_REC_PARTIAL, w->now, &patch);
    if (!rc) rc = tsd_record_merge(w->env, t->def, old, patch, &merged);
    const char *pkname = t->def->cols[0].name;
    if (!rc && t->def->cols[0].type == TSD_KEY && t->pkgen && json_object_get(patch, pkname)) {
        json_t *k = NULL; /* as on insert: "7" is the key 7 */
        rc = tsd_coerce(w->env, &t->def->cols[0], json_object_get(merged, pkname), &k);
        if (!rc) json_object_set_new(merged, pkname, k);
    }
    if (!rc) rc = tsd_row_encode(w->env, t->def, merged, &row);
    if (!rc && t->def->nfks) rc = tsfk_check(w, t, space, row.p, row.len);
    /* the old row's bytes outlive its replacement: r owns them */
    int64_t expires = r.expires;
    if (!rc && t->ttl && t->def->ttl_col >= 0) rc = tsrow_expiry(w, t, row.p, row.len, &expires);
    if (!rc) rc = tsrow_replace(w, t, space, &r, row.p, row.len, expires);
    if (!rc) rc = tsfk_parent_changed(w, t, space, r.row, r.len, row.p, row.len);
    if (!rc && t->pkgen && json_object_get(patch, t->def->cols[0].name))
        rc = tstbl_observe_key(w->m, w->tx, t, space, json_object_get(merged, t->def->cols[0].name));
    json_decref(patch);
    json_decref(old);
    json_decref(merged);
    json_decref(ev);
    tsd_buf_free(&row);
    tsrow_done(&r);
    return rc;
}

static int delete_row(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl, int live)
{
    tsrow r;
    int rc = tsrow_read(w, t, space, pk, pkl, live, &r);
    if (rc == TS_ERR_NOT_FOUND)
        return tsenv_error(w->env, rc, "%s: no row with that primary key", t->def->name);
    if (rc) return rc;
    /* remove first: a row that references itself is then no child of its own */
    rc = tsrow_del(w, t, space, pk, pkl);
    if (!rc) rc = tsfk_parent_changed(w, t, space, r.row, r.len, NULL, 0);
    tsrow_done(&r);
    return rc;
}

int tswrite_delete(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl)
{
    return delete_row(w, t, space, pk, pkl, 1);
}

/* The pk key of the row holding the values of unique index ix in rec. */
static int find_by_unique(tsw *w, tstbl *t, uint64_t space, const tsd_index *ix, size_t i,
                          const json_t *rec, uint8_t *pk, size_t *pkl)
{
    uint8_t k[TSROW_KEY_CAP];
    size_t off = ts_key_int(k, sizeof k, 0, (int64_t)space);
    for (size_t j = 0; j < ix->nfields; j++) {
        const tsd_field *f = &t->def->cols[ix->cols[j]];
        int rc = tsd_json_key(w->env, f, json_object_get(rec, f->name), k, sizeof k, &off);
        if (rc) return rc;
    }
    if (off > TS_INDEX_KEY_MAX) return TS_ERR_NOT_FOUND;
    void *v;
    size_t vl;
    int rc = tsix_get(t->ix[i], w->tx, k, off, &v, &vl);
    if (rc) return rc;
    if (vl > TSROW_KEY_CAP) rc = TS_ERR_CORRUPT;
    else { memcpy(pk, v, vl); *pkl = vl; }
    free(v);
    if (!rc) {
        tsrow r; /* an expired row is no conflict */
        rc = tsrow_read(w, t, space, pk, *pkl, 1, &r);
        tsrow_done(&r);
    }
    return rc;
}

int tswrite_upsert(tsw *w, tstbl *t, const json_t *rec, json_t **pk_new)
{
    if (pk_new) *pk_new = NULL;
    uint64_t space = tsrow_space(t, w->space);
    json_t *patch = NULL, *plain = NULL;
    if (json_is_object(rec) && tsx_has_expr(rec)) {
        /* the conflict target comes from the plain values */
        plain = json_object();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)rec, k, v)
            if (!tsx_is_expr(v)) json_object_set(plain, k, v);
    }
    int rc = tsd_record_validate(w->env, t->def, plain ? plain : rec, TSD_REC_PARTIAL, w->now, &patch);
    if (rc) { json_decref(plain); return rc; }
    long target = tsd_upsert_target(t->def, patch);
    uint8_t pk[TSROW_KEY_CAP];
    size_t pkl = 0;
    if (target == TSD_TARGET_PK) {
        rc = tsrow_pk_key(w, t, json_object_get(patch, t->def->cols[0].name), pk, &pkl);
        if (!rc) {
            tsrow r;
            rc = tsrow_read(w, t, space, pk, pkl, 1, &r);
            tsrow_done(&r);
        }
    } else if (target >= 0) {
        rc = find_by_unique(w, t, space, &t->def->indexes[target], (size_t)target, patch, pk, &pkl);
    } else {
        rc = TS_ERR_NOT_FOUND;
    }
    if (rc == TS_ERR_NOT_FOUND) {
        rc = tswrite_insert(w, t, rec, pk_new);
    } else if (!rc) {
        rc = tswrite_update(w, t, space, pk, pkl, plain ? rec : patch);
        if (!rc && pk_new) {
            /* the key after the update (the patch may not change it) */
            json_t *given = json_object_get(patch, t->def->cols[0].name);
            if (given) {
                *pk_new = json_incref(given);
            } else {
                tsrow r;
                rc = tsrow_read(w, t, space, pk, pkl, 0, &r);
                if (!rc) rc = pk_json(w, t, r.row, r.len, pk_new);
                tsrow_done(&r);
            }
        }
    }
    json_decref(patch);
    json_decref(plain);
    return rc;
}

int tswrite_clear(tsw *w, tstbl *t)
{
    uint64_t space = tsrow_space(t, w->space);
    if (!tsfk_referenced(w, t)) return tsrow_clear(w, t, space);
    /* one row at a time, so the children's onDelete actions apply */
    for (;;) {
        uint8_t pre[TSROW_KEY_CAP], pk[TSROW_KEY_CAP];
        size_t pl = ts_key_int(pre, sizeof pre, 0, (int64_t)space), pkl = 0;
        tsix_cur c;
        int rc = tsix_cursor(t->primary, w->tx, &c);
        if (rc) return rc;
        rc = tsix_seek(&c, pre, pl, TS_SEEK_GE);
        const void *ek, *ev;
        size_t ekl, evl;
        if (!rc) rc = tsix_entry(&c, &ek, &ekl, &ev, &evl);
        if (!rc && ekl > pl && ekl - pl <= sizeof pk && memcmp(ek, pre, pl) == 0) {
            pkl = ekl - pl;
            memcpy(pk, (const uint8_t *)ek + pl, pkl);
        }
        tsix_cursor_close(&c);
        if (rc == TS_ERR_NOT_FOUND || (!rc && !pkl)) return TS_OK;
        if (rc) return rc;
        if ((rc = delete_row(w, t, space, pk, pkl, 0))) return rc;
    }
}

int tswrite_purge_space(tsw *w, uint64_t space)
{
    int rc = TS_OK;
    for (size_t i = 0; i < w->m->n && !rc; i++) {
        tstbl *t = w->m->t[i];
        if (t->def->is_global) continue;
        rc = tsrow_clear(w, t, space);
        if (!rc) rc = tstbl_state_reset(w->m, w->tx, t, space);
    }
    return rc;
}
