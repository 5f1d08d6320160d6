#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include "base/env.h"
#include "table/migrate.h"
#include "table/rows.h"

/* A definition without the keys that do not change the stored data or
 * the constraints: its name and ids (for "same definition" tests). */
static json_t *shape_of(json_t *o, const char *const *drop)
{
    json_t *c = json_deep_copy(o);
    for (size_t i = 0; c && drop[i]; i++) json_object_del(c, drop[i]);
    return c;
}

static int jeq(const json_t *a, const json_t *b)
{
    return a == b || (a && b && json_equal(a, b));
}

static int same_field(const tsd_field *a, const tsd_field *b)
{
    return a->type == b->type && a->nullable == b->nullable && a->unique == b->unique &&
           a->create_index == b->create_index && a->min_length == b->min_length &&
           a->max_length == b->max_length && a->default_now == b->default_now &&
           jeq(a->default_value, b->default_value) && jeq(a->min_value_json, b->min_value_json) &&
           jeq(a->max_value_json, b->max_value_json) && a->dimensions == b->dimensions;
}

static int same_table(const tsd_table *a, const tsd_table *b)
{
    static const char *const drop[] = { "name", "tableId", NULL };
    json_t *x = tsd_table_to_json(a), *y = tsd_table_to_json(b);
    json_t *sx = x ? shape_of(x, drop) : NULL, *sy = y ? shape_of(y, drop) : NULL;
    int eq = sx && sy && json_equal(sx, sy);
    json_decref(x); json_decref(y); json_decref(sx); json_decref(sy);
    return eq;
}

/* map[c] for each new column: the old column it takes its values from, -1:
 * none.  hint (may be NULL): {new field: old field name | null}, decisive
 * for the fields it names. */
static int map_fields(const tsd_table *old, const tsd_table *nw, long *map, json_t *fields,
                      const json_t *hint)
{
    int *used = calloc(old->ncols + 1, sizeof *used);
    if (!used) return TS_ERR_NOMEM;
    map[0] = 0;
    used[0] = 1;
    for (size_t c = 1; c < nw->ncols; c++) {
        const tsd_field *f = &nw->cols[c];
        map[c] = -1;
        json_t *h = json_object_get(hint, f->name);
        if (h) {
            long o = json_is_string(h) ? tsd_table_col(old, json_string_value(h)) : -1;
            if (o > 0 && !used[o]) { map[c] = o; used[o] = 1; }
            continue;
        }
        for (size_t o = 1; o < old->ncols && f->field_id; o++)
            if (!used[o] && old->cols[o].field_id && strcmp(old->cols[o].field_id, f->field_id) == 0) {
                map[c] = (long)o;
                break;
            }
        if (map[c] < 0) {
            long o = tsd_table_col(old, f->name);
            if (o > 0 && !used[o] && (!f->field_id || !old->cols[o].field_id ||
                                      strcmp(f->field_id, old->cols[o].field_id) == 0))
                map[c] = o;
        }
        if (map[c] > 0) used[map[c]] = 1;
    }
    /* one removed and one added with the same definition: a rename */
    long added = -1, removed = -1;
    int nadd = 0, nrem = 0;
    for (size_t c = 1; c < nw->ncols; c++)
        if (map[c] < 0 && !json_object_get(hint, nw->cols[c].name)) { added = (long)c; nadd++; }
    for (size_t o = 1; o < old->ncols; o++) if (!used[o]) { removed = (long)o; nrem++; }
    if (nadd == 1 && nrem == 1 && !nw->cols[added].field_id && !old->cols[removed].field_id &&
        same_field(&nw->cols[added], &old->cols[removed])) {
        map[added] = removed;
        used[removed] = 1;
    }
    json_t *ren = json_object(), *add = json_array(), *rem = json_array();
    for (size_t c = 1; c < nw->ncols; c++) {
        if (map[c] < 0) json_array_append_new(add, json_string(nw->cols[c].name));
        else if (strcmp(old->cols[map[c]].name, nw->cols[c].name) != 0)
            json_object_set_new(ren, old->cols[map[c]].name, json_string(nw->cols[c].name));
    }
    for (size_t o = 1; o < old->ncols; o++)
        if (!used[o]) json_array_append_new(rem, json_string(old->cols[o].name));
    json_object_set_new(fields, "renamed", ren);
    json_object_set_new(fields, "added", add);
    json_object_set_new(fields, "removed", rem);
    free(used);
    return TS_OK;
}

static void note_fail(tsmig_fails *f, ts_env *env, int code)
{
    if (!f->n++) {
        f->code = code;
        snprintf(f->msg, sizeof f->msg, "%s", tsenv_errmsg(env));
    }
    tsenv_clear(env);
}

/* Whether every stored value of old column o is valid for n as it is. */
static int field_keeps_rows(const tsd_field *o, const tsd_field *n)
{
    return o->type == n->type && o->dimensions == n->dimensions && o->precision == n->precision &&
           (n->nullable || !o->nullable) &&
           (n->min_length < 0 || n->min_length == o->min_length) &&
           (n->max_length < 0 || n->max_length == o->max_length) &&
           (!n->min_value_json || jeq(n->min_value_json, o->min_value_json)) &&
           (!n->max_value_json || jeq(n->max_value_json, o->max_value_json));
}


int tsmig_rows_verbatim(const tsd_table *od, const tsd_table *nd, const long *map)
{
    if (od->is_global != nd->is_global || od->ttl_ms != nd->ttl_ms || nd->ncols < od->ncols ||
        od->cols[0].type != nd->cols[0].type || od->pk_type != nd->pk_type)
        return 0;
    if ((od->ttl_col < 0) != (nd->ttl_col < 0) || (nd->ttl_col >= 0 && map[nd->ttl_col] != od->ttl_col))
        return 0;
    for (size_t c = 1; c < nd->ncols; c++) {
        const tsd_field *f = &nd->cols[c];
        if (c < od->ncols ? map[c] != (long)c || !field_keeps_rows(&od->cols[c], f)
                          : map[c] >= 0 || !f->nullable || f->default_value || f->default_now)
            return 0;
    }
    return 1;
}

static int copy_whole_row(tsw *w, const tstbl *old, tstbl *nt, const long *map, int lossy, int verbatim,
                          uint64_t space, const uint8_t *row, size_t len, int64_t expires, int store,
                          tsmig_fails *f);

int tsmig_copy_row(tsw *w, const tstbl *old, tstbl *nt, const long *map, int lossy, int verbatim,
                   uint64_t space, const uint8_t *row, size_t len, int64_t expires, int store,
                   tsmig_fails *f)
{
    /* vectors the old table's index keeps are read back first: the new
     * table's trees are others */
    tsd_buf whole = { 0 };
    int rc = store || !verbatim ? tsrow_fill_own(w, old, space, &row, &len, &whole) : TS_OK;
    if (!rc) rc = copy_whole_row(w, old, nt, map, lossy, verbatim, space, row, len, expires, store, f);
    tsd_buf_free(&whole);
    return rc;
}

static int copy_whole_row(tsw *w, const tstbl *old, tstbl *nt, const long *map, int lossy, int verbatim,
                          uint64_t space, const uint8_t *row, size_t len, int64_t expires, int store,
                          tsmig_fails *f)
{
    ts_env *env = w->env;
    if (verbatim) {
        /* the stored row is already a valid row of the new definition */
        int r = store ? tsrow_put(w, nt, space, row, len, expires) : TS_OK;
        if (r == TS_ERR_IO || r == TS_ERR_NOMEM || r == TS_ERR_CORRUPT || r == TS_ERR_READONLY) return r;
        if (r) note_fail(f, env, r);
        return TS_OK;
    }
    const tsd_table *od = old->def, *nd = nt->def;
    json_t *orec = NULL, *rec = json_object();
    if (!rec) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    int rc = tsd_row_decode(env, od, row, len, &orec);
    if (rc) { json_decref(rec); return rc; }
    for (size_t col = 0; col < nd->ncols; col++) {
        if (map[col] < 0) continue;
        json_t *val = json_object_get(orec, od->cols[map[col]].name), *cv = NULL;
        if (!val || json_is_null(val)) {
            /* a null becomes the default of a field that turned non-null */
            const tsd_field *nf = &nd->cols[col];
            int takes_default = !nf->nullable && (nf->default_value || nf->default_now);
            if (col && !takes_default) json_object_set(rec, nf->name, json_null());
            continue;
        }
        if (tsd_coerce(env, &nd->cols[col], val, &cv)) {
            if (lossy && col) { tsenv_clear(env); continue; } /* takes its default */
            note_fail(f, env, TS_ERR_VALIDATION);
            json_decref(orec);
            json_decref(rec);
            return TS_OK;
        }
        json_object_set_new(rec, nd->cols[col].name, cv);
    }
    tsd_buf buf = { 0 };
    int r = tsd_row_encode_record(env, nd, rec, NULL, w->now, &buf);
    if (!r && store) {
        int64_t exp = expires;
        if (nt->ttl && (!old->ttl || nd->ttl_col >= 0)) r = tsrow_expiry(w, nt, buf.p, buf.len, &exp);
        if (!r) r = tsrow_put(w, nt, space, buf.p, buf.len, exp);
    }
    if (r && tsenv_errcode(env) == 0) tsenv_error(env, r, "%s", "row could not be stored");
    if (r == TS_ERR_IO || r == TS_ERR_NOMEM || r == TS_ERR_CORRUPT || r == TS_ERR_READONLY) rc = r;
    else if (r) note_fail(f, env, r);
    tsd_buf_free(&buf);
    json_decref(orec);
    json_decref(rec);
    return rc;
}

/* Copy every row of old into nt (new definition), converting fields.
 * observe: the key generator changed; it learns every stored key. */
static int copy_rows(tstbl_map *m, tstx *tx, tstbl *old, tstbl *nt, const long *map,
                     const tsmig_opts *o, int observe, int64_t total, int64_t *rows, tsmig_fails *f)
{
    ts_env *env = m->env;
    tsw w;
    tsw_init(&w, m, tx, 0, 0);
    tsix_cur c;
    int rc = tsix_cursor(old->primary, tx, &c);
    if (rc) return rc;
    int64_t seen = 0;
    int verbatim = tsmig_rows_verbatim(old->def, nt->def, map);
    for (rc = tsix_first(&c); rc == TS_OK; rc = tsix_next(&c)) {
        const void *k, *v;
        size_t kl, vl, off = 0;
        if ((rc = tsix_entry(&c, &k, &kl, &v, &vl))) break;
        ts_key_item sp;
        if (ts_key_next(k, kl, &off, &sp) != 1) { rc = TS_ERR_CORRUPT; break; }
        const uint8_t *row = v;
        size_t len = vl;
        int64_t expires = 0;
        if (old->ttl) {
            if (len < 8) { rc = TS_ERR_CORRUPT; break; }
            for (int b = 7; b >= 0; b--) expires = (int64_t)((uint64_t)expires << 8 | row[b]);
            row += 8;
            len -= 8;
        }
        uint64_t space = sp.i < 0 ? 0 : (uint64_t)sp.i;
        int64_t before = f->n;
        if ((rc = tsmig_copy_row(&w, old, nt, map, o->allow_lossy, verbatim, space, row, len, expires, 1, f)))
            break;
        if (f->n == before) {
            (*rows)++;
            if (observe && nt->pkgen) {
                /* the new generator must never hand out a kept key */
                tsd_value pv;
                json_t *ov = NULL, *pkv = NULL;
                rc = tsd_row_field(env, old->def, row, len, 0, &pv);
                if (!rc) rc = tsd_value_to_json(env, &old->def->cols[0], &pv, &ov);
                if (!rc) rc = tsd_coerce(env, &nt->def->cols[0], ov, &pkv);
                if (!rc) rc = tstbl_observe_key(m, tx, nt, space, pkv);
                json_decref(ov);
                json_decref(pkv);
                if (rc) break;
            }
        }
        if (o->progress && (++seen % 1024) == 0)
            o->progress(o->progress_ctx, nt->def->name, (uint64_t)seen,
                        (uint64_t)(total > seen ? total : seen));
    }
    tsix_cursor_close(&c);
    tsw_done(&w);
    if (o->progress && (rc == TS_OK || rc == TS_ERR_NOT_FOUND))
        o->progress(o->progress_ctx, nt->def->name, (uint64_t)seen, (uint64_t)seen);
    return rc == TS_ERR_NOT_FOUND ? TS_OK : rc;
}

/* Rewrite table old under definition nd (taken).  old is out of the
 * catalog and the map already, or, with linked (a rebuild under the same
 * name), still in them: it leaves them only once its rows are copied, so
 * other transactions go on reading it until then. */
static int rewrite(tstbl_map *m, tstx *tx, tstbl *old, tsd_table *nd, const long *map,
                   const tsmig_opts *o, json_t *entry, int linked)
{
    ts_env *env = m->env;
    /* the generators' state is kept (same table number) unless the key's
     * generator changes; counts are rebuilt */
    int regen = old->def->pk_type != nd->pk_type;
    int64_t total = 0;
    int rc = o->progress ? tsmig_table_rows(m, tx, old, &total) : TS_OK;
    if (!rc) rc = tstbl_flush_states(m, tx);
    tstbl_forget_states(m, old->num);
    if (!rc) rc = tstbl_remove_state(m, tx, "rows", old->num);
    if (!rc && regen) rc = tstbl_remove_state(m, tx, "pk", old->num);
    tstbl *nt = NULL;
    if (!rc) rc = tstbl_build(m, tx, nd, old->num, &nt);
    else tsd_table_free(nd);
    int64_t rows = 0;
    tsmig_fails f = { 0, 0, "" };
    if (!rc) rc = copy_rows(m, tx, old, nt, map, o, regen, total, &rows, &f);
    if (!rc && f.n && linked)
        rc = tsenv_error(env, TS_ERR_VALIDATION, "rebuild of table '%s' failed: %lld row(s) could not "
                         "be stored again (first: %s); nothing was changed", old->def->name,
                         (long long)f.n, f.msg);
    else if (!rc && f.n && !o->allow_lossy)
        rc = tsenv_error(env, TS_ERR_VALIDATION, "migration of table '%s' refused: %lld row(s) cannot "
                         "follow the change (first: %s); nothing was changed (migration.allowLossy "
                         "drops such rows)", old->def->name, (long long)f.n, f.msg);
    if (!rc && linked) rc = tstbl_unlink(m, tx, old, 0);
    if (!rc) rc = tstbl_drop_trees(tx, old);  /* out of the catalog and map by now */
    if (!rc) { rc = tstbl_install(m, tx, nt); nt = NULL; }
    if (nt) tstbl_discard(nt);
    json_object_set_new(entry, "rows", json_integer(rows));
    json_object_set_new(entry, "rowsDropped", json_integer(f.n));
    json_object_set_new(entry, "rewrite", json_true());
    return rc;
}

int tsmig_rebuild(tstbl_map *m, tstx *tx, const char *name, const tsmig_opts *o)
{
    ts_env *env = m->env;
    tstbl *t = tstbl_find(m, name);
    if (!t) return tsenv_error(env, TS_ERR_NOT_FOUND, "no table '%s'", name);
    if (t->mig) {
        int brc = tsmig_busy(m, t);
        tsenv_error_prefix(env, "cannot rebuild");
        return brc;
    }
    /* a definition of its own (rewrite takes it), equal to the table's;
     * rewrite reports into entry, which nobody reads here */
    json_t *js = tsd_table_to_json(t->def);
    long *map = calloc(t->def->ncols + 1, sizeof *map);
    json_t *entry = json_object();
    tsd_table *d = NULL;
    int rc = js && map && entry ? tsd_table_parse(env, js, &d)
                                : tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    json_decref(js);
    for (size_t c = 0; !rc && c < t->def->ncols; c++) map[c] = (long)c;
    if (!rc) { /* rewrite flushes the states first */
        tstbl_hold(m, t);
        rc = rewrite(m, tx, t, d, map, o, entry, 1);
        d = NULL;
        tstbl_release(m, t);
    }
    tsd_table_free(d);
    free(map);
    json_decref(entry);
    return rc;
}

/* A kept table whose foreign keys name a renamed table or field: its
 * schema with the new names, or NULL when none changed. */
static json_t *follow_renames(const tsd_table *kept, json_t *renames)
{
    json_t *s = tsd_table_to_json(kept);
    int changed = 0;
    size_t i;
    json_t *fk;
    json_array_foreach(json_object_get(s, "foreignKeys"), i, fk) {
        const char *rt = json_string_value(json_object_get(fk, "referencedTable"));
        json_t *r = json_object_get(renames, rt);
        if (!r) continue;
        const char *nn = json_string_value(json_object_get(r, "to"));
        if (strcmp(nn, rt) != 0) { json_object_set_new(fk, "referencedTable", json_string(nn)); changed = 1; }
        size_t j;
        json_t *rf;
        json_array_foreach(json_object_get(fk, "referencedFields"), j, rf) {
            json_t *to = json_object_get(json_object_get(r, "fields"), json_string_value(rf));
            if (to) { json_array_set(json_object_get(fk, "referencedFields"), j, to); changed = 1; }
        }
    }
    if (!changed) { json_decref(s); return NULL; }
    return s;
}

enum { MODE_NONE = 0, MODE_RETARGET, MODE_REWRITE, MODE_TASK };

/* A name after the renames of the tables ({old: {"to", "fields"}}). */
static const char *renamed_to(const json_t *renames, const char *table, const char *field)
{
    json_t *r = json_object_get(renames, table);
    if (!r) return field ? field : table;
    if (!field) return json_string_value(json_object_get(r, "to"));
    json_t *f = json_object_get(json_object_get(r, "fields"), field);
    return f ? json_string_value(f) : field;
}

/* Whether old's stored rows and trees serve nd as they are (renames,
 * relaxed constraints, removed indexes and foreign keys, appended nullable
 * fields without default): ixmap[i] gets the old index whose tree new index
 * i takes over. */
static int keeps_rows(const tstbl *old, const tsd_table *nd, const long *map, long *ixmap,
                      const json_t *renames)
{
    const tsd_table *od = old->def;
    if (!tsmig_rows_verbatim(od, nd, map) || od->seq_initial != nd->seq_initial ||
        od->seq_increment != nd->seq_increment || od->seq_random != nd->seq_random)
        return 0;
    int ok = 1;
    int *used = calloc(od->nindexes + 1, sizeof *used);
    if (!used) return 0;
    for (size_t i = 0; i < nd->nindexes && ok; i++) {
        const tsd_index *ni = &nd->indexes[i];
        ixmap[i] = -1;
        for (size_t j = 0; j < od->nindexes && ixmap[i] < 0; j++) {
            const tsd_index *oi = &od->indexes[j];
            if (used[j] || oi->nfields != ni->nfields || oi->unique != ni->unique ||
                strcmp(oi->module, ni->module) != 0 || !jeq(oi->vector_config, ni->vector_config) ||
                memcmp(oi->cols, ni->cols, ni->nfields * sizeof *ni->cols) != 0)
                continue;
            ixmap[i] = (long)j;
            used[j] = 1;
        }
        ok = ixmap[i] >= 0;
    }
    free(used);
    /* a new foreign key would have to be checked on every row */
    for (size_t i = 0; i < nd->nfks && ok; i++) {
        const tsd_fk *nf = &nd->fks[i];
        int found = 0;
        for (size_t j = 0; j < od->nfks && !found; j++) {
            const tsd_fk *of = &od->fks[j];
            if (of->nfields != nf->nfields || memcmp(of->cols, nf->cols, nf->nfields * sizeof *nf->cols) != 0 ||
                strcmp(renamed_to(renames, of->ref_table, NULL), nf->ref_table) != 0)
                continue;
            found = 1;
            for (size_t f = 0; f < nf->nfields && found; f++)
                found = strcmp(renamed_to(renames, of->ref_table, of->ref_fields[f]), nf->ref_fields[f]) == 0;
        }
        ok = found;
    }
    return ok;
}

/* Give old's trees to definition nd (taken): a new catalog entry over the
 * same rows; indexes nd no longer has are dropped.  old is already out of
 * the catalog and the map. */
static int retarget(tstbl_map *m, tstx *tx, tstbl *old, tsd_table *nd, const long *ixmap, json_t *entry)
{
    uint64_t *roots = calloc(nd->nindexes + 1, sizeof *roots);
    int *kept = calloc(old->def->nindexes + 1, sizeof *kept);
    int rc = roots && kept ? TS_OK : tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nd->nindexes && !rc; i++) {
        roots[i] = old->roots[ixmap[i]];
        kept[ixmap[i]] = 1;
    }
    /* rows that left vectors to an index going away get them back first */
    int unstrip = 0;
    for (size_t j = 0; j < old->def->nindexes; j++)
        unstrip |= !kept[j] && old->def->indexes[j].vector_config != NULL;
    if (!rc && unstrip) {
        tsw w;
        tsw_init(&w, m, tx, 0, 0);
        rc = tsrow_unstrip_all(&w, old);
        tsw_done(&w);
    }
    for (size_t j = 0; j < old->def->nindexes && !rc; j++)
        if (!kept[j]) rc = tsix_drop(old->ix[j], tx);
    tstbl *nt = NULL;
    if (!rc) {
        rc = tstbl_open_trees(m, nd, old->num, old->primary_root, roots, old->ttl_root, &nt);
        nd = NULL;
    }
    if (!rc) rc = tstbl_install(m, tx, nt);
    tsd_table_free(nd);
    free(roots);
    free(kept);
    json_object_set_new(entry, "rowsDropped", json_integer(0));
    return rc;
}

int tsmig_table_rows(tstbl_map *m, tstx *tx, tstbl *t, int64_t *out)
{
    *out = 0;
    int64_t n = 0;
    int rc = tstbl_count(m, tx, t, 0, &n);
    *out += n;
    if (rc || t->def->is_global) return rc;
    json_t *sp = json_array();
    rc = sp ? tssys_space_list(m->sys, tx, sp) : tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < json_array_size(sp); i++) {
        uint64_t id = 0;
        rc = tssys_space_id(m->sys, tx, json_string_value(json_array_get(sp, i)), &id);
        if (!rc && id) rc = tstbl_count(m, tx, t, id, &n);
        if (!rc && id) *out += n;
    }
    json_decref(sp);
    return rc;
}

/* Drop the stored tables the new schemas leave out (used[j] == 0),
 * referencing ones before the ones they reference, so tables that refer
 * to each other go together; a cycle or a kept table still referencing
 * one gets tstbl_drop's refusal. */
static int drop_missing(tstbl_map *m, tstx *tx, tstbl **olds, const int *used, size_t nold)
{
    unsigned char *gone = calloc(nold ? nold : 1, 1);
    if (!gone) return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    int rc = TS_OK, progress = 1;
    while (!rc && progress) {
        progress = 0;
        size_t first = nold;
        for (size_t j = 0; j < nold && !rc; j++) {
            if (used[j] || gone[j]) continue;
            if (first == nold) first = j;
            int referenced = 0;
            for (size_t i = 0; i < nold && !referenced; i++) {
                if (i == j || used[i] || gone[i]) continue;
                for (size_t f = 0; f < olds[i]->def->nfks && !referenced; f++)
                    referenced = strcmp(olds[i]->def->fks[f].ref_table, olds[j]->def->name) == 0;
            }
            if (referenced) continue;
            rc = tstbl_drop(m, tx, olds[j]->def->name);
            gone[j] = 1;
            progress = 1;
        }
        /* only cycles left: the first drop reports which key holds it */
        if (!rc && !progress && first < nold) rc = tstbl_drop(m, tx, olds[first]->def->name);
    }
    free(gone);
    return rc;
}

int tsmig_sync(tstbl_map *m, tstx *tx, const json_t *schemas, const tsmig_opts *o, json_t *report)
{
    ts_env *env = m->env;
    if (!json_is_array(schemas))
        return tsenv_error(env, TS_ERR_VALIDATION, "schemas must be a JSON array of table schemas");
    size_t n = json_array_size(schemas), nold = m->n;
    tsd_table **defs = calloc(n + 1, sizeof *defs);
    tstbl **match = calloc(n + 1, sizeof *match), **olds = calloc(nold + 1, sizeof *olds);
    int *used = calloc(nold + 1, sizeof *used);
    const tsd_table **kept = calloc(nold + 1, sizeof *kept);
    json_t *renames = json_object(), *entries = json_array();
    int rc = defs && match && olds && used && kept && renames && entries
           ? TS_OK : tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nold; i++) olds[i] = m->t[i];
    for (size_t i = 0; i < n && !rc; i++) rc = tsd_table_parse(env, json_array_get(schemas, i), &defs[i]);
    /* match: hints, tableId, then name, then an unambiguous rename */
    for (size_t i = 0; i < n && !rc && o->hints; i++) {
        const char *from = json_string_value(json_object_get(json_object_get(o->hints, defs[i]->name),
                                                             "from"));
        for (size_t j = 0; from && j < nold && !match[i]; j++)
            if (!used[j] && strcmp(olds[j]->def->name, from) == 0) { match[i] = olds[j]; used[j] = 1; }
    }
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t j = 0; j < nold && defs[i]->table_id && !match[i]; j++)
            if (!used[j] && olds[j]->def->table_id && strcmp(olds[j]->def->table_id, defs[i]->table_id) == 0) {
                match[i] = olds[j]; used[j] = 1; break;
            }
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t j = 0; j < nold && !match[i]; j++)
            if (!used[j] && strcmp(olds[j]->def->name, defs[i]->name) == 0 &&
                (!defs[i]->table_id || !olds[j]->def->table_id)) {
                match[i] = olds[j]; used[j] = 1;
            }
    for (size_t i = 0; i < n && !rc; i++) {
        if (match[i] || defs[i]->table_id) continue;
        long cand = -1;
        int count = 0;
        for (size_t j = 0; j < nold; j++)
            if (!used[j] && !olds[j]->def->table_id && same_table(olds[j]->def, defs[i])) { cand = (long)j; count++; }
        int others = 0;
        for (size_t k = 0; k < n && cand >= 0; k++)
            if (k != i && !match[k] && same_table(olds[cand]->def, defs[k])) others++;
        if (count == 1 && !others) { match[i] = olds[cand]; used[cand] = 1; }
    }
    /* renames, for foreign keys of kept tables */
    json_t **fieldsets = calloc(n + 1, sizeof *fieldsets);
    long **maps = calloc(n + 1, sizeof *maps);
    if (!rc && (!fieldsets || !maps)) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        if (!match[i]) continue;
        fieldsets[i] = json_object();
        maps[i] = calloc(defs[i]->ncols + 1, sizeof **maps);
        if (!fieldsets[i] || !maps[i]) { rc = TS_ERR_NOMEM; break; }
        const json_t *hint = json_object_get(json_object_get(o->hints, defs[i]->name), "fields");
        if (map_fields(match[i]->def, defs[i], maps[i], fieldsets[i], hint)) { rc = TS_ERR_NOMEM; break; }
        json_t *r = json_pack("{s:s, s:O}", "to", defs[i]->name, "fields",
                              json_object_get(fieldsets[i], "renamed"));
        json_object_set_new(renames, match[i]->def->name, r);
    }
    /* tables left out: kept (foreign keys follow renames) or dropped */
    size_t nkept = 0, nfollow = 0;
    json_t *follow = json_array();
    for (size_t j = 0; j < nold && !rc; j++) {
        if (used[j] || o->drop_missing) continue;
        json_t *s = follow_renames(olds[j]->def, renames);
        if (s) {
            json_array_append_new(follow, json_pack("{s:i, s:o}", "old", (int)j, "schema", s));
            nfollow++;
            used[j] = 2; /* rewritten below, reported as changed */
        }
        else kept[nkept++] = olds[j]->def;
    }
    /* the new set is checked with the kept tables as they are */
    tsd_table **all = calloc(n + nfollow + 1, sizeof *all);
    if (!rc && !all) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) all[i] = defs[i];
    for (size_t i = 0; i < nfollow && !rc; i++)
        rc = tsd_table_parse(env, json_object_get(json_array_get(follow, i), "schema"), &all[n + i]);
    size_t *ord2 = calloc(n + nfollow + 1, sizeof *ord2);
    if (!rc) rc = ord2 ? tsd_schema_set_check(env, (const tsd_table *const *)all, n + nfollow,
                                              (const tsd_table *const *)kept, nkept, ord2)
                       : TS_ERR_NOMEM;
    if (!rc && !o->dry_run && n) rc = tstbl_flush_states(m, tx);
    /* how each changed table changes: its rows kept (retarget), rewritten
     * now, or by a background task */
    size_t nall = n + nfollow;
    tstbl **from = calloc(nall + 1, sizeof *from);
    long **idmaps = calloc(nall + 1, sizeof *idmaps), **ixmaps = calloc(nall + 1, sizeof *ixmaps);
    int *mode = calloc(nall + 1, sizeof *mode);
    if (!rc && (!from || !idmaps || !ixmaps || !mode)) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < nall && !rc; k++) {
        const long *map = NULL;
        if (k >= n) {
            from[k] = olds[json_integer_value(json_object_get(json_array_get(follow, k - n), "old"))];
            if (!(idmaps[k] = calloc(all[k]->ncols + 1, sizeof **idmaps))) { rc = TS_ERR_NOMEM; break; }
            for (size_t c = 0; c < all[k]->ncols; c++) idmaps[k][c] = (long)c;
            map = idmaps[k];
        } else if (match[k]) {
            json_t *a = tsd_table_to_json(match[k]->def), *b = tsd_table_to_json(defs[k]);
            if (!json_equal(a, b)) from[k] = match[k];
            json_decref(a);
            json_decref(b);
            map = maps[k];
        }
        if (!from[k]) continue;
        if (!(ixmaps[k] = calloc(all[k]->nindexes + 1, sizeof **ixmaps))) { rc = TS_ERR_NOMEM; break; }
        int64_t rows = 0;
        if (keeps_rows(from[k], all[k], map, ixmaps[k], renames)) mode[k] = MODE_RETARGET;
        else if (!o->online || k >= n || strcmp(from[k]->def->name, all[k]->name) != 0 ||
                 from[k]->def->pk_type != all[k]->pk_type || from[k]->def->cols[0].type != all[k]->cols[0].type)
            mode[k] = MODE_REWRITE;
        else if ((rc = tsmig_table_rows(m, tx, from[k], &rows))) break;
        else mode[k] = rows > o->batch_rows ? MODE_TASK : MODE_REWRITE;
        if (from[k]->mig) rc = tsmig_busy(m, from[k]);
    }
    /* every table to rewrite leaves the catalog and the map first (held by
     * a reference), so new names may take old ones, even swapped; a table
     * given to a task stays until the task swaps it */
    tstbl **held = calloc(nall + 1, sizeof *held);
    size_t nheld = 0;
    if (!rc && !held) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < nall && !rc && !o->dry_run; k++) {
        if (!from[k] || mode[k] == MODE_TASK) continue;
        tstbl_hold(m, from[k]);
        held[nheld++] = from[k];
        rc = tstbl_unlink(m, tx, from[k], 0);
    }
    /* apply, in foreign-key order */
    for (size_t k = 0; k < nall && !rc; k++) {
        size_t i = ord2[k];
        json_t *entry = json_object();
        json_array_append_new(entries, entry);
        tsd_table *d = all[i];
        if (i >= n) {
            json_object_set_new(entry, "table", json_string(from[i]->def->name));
            json_object_set_new(entry, "action", json_string("changed"));
            json_object_set_new(entry, "reason", json_string("its foreign keys follow a rename"));
        } else {
            json_object_set_new(entry, "table", json_string(defs[i]->name));
            if (!match[i]) {
                json_object_set_new(entry, "action", json_string("created"));
                defs[i] = all[i] = NULL;
                if (o->dry_run) { tsd_table_free(d); continue; }
                tstbl *t;
                rc = tstbl_build(m, tx, d, 0, &t);
                if (!rc) rc = tstbl_install(m, tx, t);
                continue;
            }
            int renamed = strcmp(match[i]->def->name, d->name) != 0;
            json_object_set_new(entry, "action", json_string(!from[i] ? "unchanged" : renamed ? "renamed" : "changed"));
            if (renamed) json_object_set_new(entry, "from", json_string(match[i]->def->name));
            json_object_set(entry, "fields", fieldsets[i]);
            if (!from[i]) continue;
        }
        const long *map = i >= n ? idmaps[i] : maps[i];
        json_object_set_new(entry, "rewrite", json_boolean(mode[i] != MODE_RETARGET));
        if (mode[i] == MODE_TASK) json_object_set_new(entry, "background", json_true());
        all[i] = NULL;
        if (i < n) defs[i] = NULL;
        if (o->dry_run) { tsd_table_free(d); continue; }
        if (mode[i] == MODE_RETARGET) {
            rc = retarget(m, tx, from[i], d, ixmaps[i], entry);
        } else if (mode[i] == MODE_REWRITE) {
            rc = rewrite(m, tx, from[i], d, map, o, entry, 0);
        } else {
            char id[32];
            rc = tsmig_task_start(m, tx, from[i], d, map, o->allow_lossy, entry, id, sizeof id);
            if (!rc && o->tasks) json_array_append_new(o->tasks, json_string(id));
        }
    }
    for (size_t j = 0; j < nold && !rc; j++) {
        if (used[j]) continue;
        json_t *entry = json_pack("{s:s, s:s}", "table", olds[j]->def->name, "action",
                                  o->drop_missing ? "dropped" : "kept");
        json_array_append_new(entries, entry);
    }
    if (!rc && o->drop_missing && !o->dry_run) rc = drop_missing(m, tx, olds, used, nold);
    for (size_t i = 0; held && i < nheld; i++) tstbl_release(m, held[i]);
    free(held);
    if (report && !rc) json_array_extend(report, entries);
    for (size_t i = 0; i < n; i++) {
        tsd_table_free(defs[i]);
        json_decref(fieldsets ? fieldsets[i] : NULL);
        free(maps ? maps[i] : NULL);
    }
    for (size_t i = n; all && i < n + nfollow; i++) tsd_table_free(all[i]);
    for (size_t k = 0; k < n + nfollow; k++) {
        free(idmaps ? idmaps[k] : NULL);
        free(ixmaps ? ixmaps[k] : NULL);
    }
    free(idmaps);
    free(ixmaps);
    free(mode);
    free(from);
    free(all);
    free(ord2);
    free(fieldsets);
    free(maps);
    json_decref(follow);
    json_decref(renames);
    json_decref(entries);
    free(defs);
    free(match);
    free(olds);
    free(used);
    free(kept);
    return rc;
}
