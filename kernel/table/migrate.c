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

/* map[c] for each new column: the old column it takes its values from, -1: none. */
static void map_fields(const tsd_table *old, const tsd_table *nw, long *map, json_t *fields)
{
    int *used = calloc(old->ncols + 1, sizeof *used);
    map[0] = 0;
    used[0] = 1;
    for (size_t c = 1; c < nw->ncols; c++) {
        const tsd_field *f = &nw->cols[c];
        map[c] = -1;
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
    for (size_t c = 1; c < nw->ncols; c++) if (map[c] < 0) { added = (long)c; nadd++; }
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
}

typedef struct fails {
    int64_t n;
    int     code;
    char    msg[300];
} fails;

static void note_fail(fails *f, ts_env *env, int code)
{
    if (!f->n++) {
        f->code = code;
        snprintf(f->msg, sizeof f->msg, "%s", tsenv_errmsg(env));
    }
    tsenv_clear(env);
}

/* Copy every row of old into nt (new definition), converting fields. */
static int copy_rows(tstbl_map *m, tstx *tx, tstbl *old, tstbl *nt, const long *map,
                     const tsmig_opts *o, int64_t *rows, fails *f)
{
    ts_env *env = m->env;
    const tsd_table *od = old->def, *nd = nt->def;
    tsw w;
    tsw_init(&w, m, tx, 0, 0);
    tsix_cur c;
    int rc = tsix_cursor(old->primary, tx, &c);
    if (rc) return rc;
    tsd_buf buf = { 0 };
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
        json_t *orec = NULL, *rec = json_object();
        if ((rc = tsd_row_decode(env, od, row, len, &orec))) { json_decref(rec); break; }
        int bad = 0;
        for (size_t col = 0; col < nd->ncols && !bad; col++) {
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
                if (o->allow_lossy && col) { tsenv_clear(env); continue; } /* takes its default */
                note_fail(f, env, TS_ERR_VALIDATION);
                bad = 1;
                break;
            }
            json_object_set_new(rec, nd->cols[col].name, cv);
        }
        if (!bad) {
            int r = tsd_row_encode_record(env, nd, rec, NULL, w.now, &buf);
            if (!r) {
                int64_t exp = expires;
                if (nt->ttl && (!old->ttl || nd->ttl_col >= 0)) r = tsrow_expiry(&w, nt, buf.p, buf.len, &exp);
                if (!r) r = tsrow_put(&w, nt, sp.i < 0 ? 0 : (uint64_t)sp.i, buf.p, buf.len, exp);
            }
            if (r && tsenv_errcode(env) == 0) tsenv_error(env, r, "%s", "row could not be stored");
            if (r == TS_ERR_IO || r == TS_ERR_NOMEM || r == TS_ERR_CORRUPT) { rc = r; }
            else if (r) { note_fail(f, env, r); bad = 1; }
        }
        if (!bad) (*rows)++;
        json_decref(orec);
        json_decref(rec);
        if (rc) break;
    }
    tsix_cursor_close(&c);
    tsd_buf_free(&buf);
    tsw_done(&w);
    return rc == TS_ERR_NOT_FOUND ? TS_OK : rc;
}

/* Rewrite table old under definition nd (taken). */
static int rewrite(tstbl_map *m, tstx *tx, tstbl *old, tsd_table *nd, const long *map,
                   const tsmig_opts *o, json_t *entry)
{
    ts_env *env = m->env;
    /* the generators' state is kept (same table number); counts are rebuilt */
    int rc = tstbl_flush_states(m, tx);
    tstbl_forget_states(m, old->num);
    if (!rc) rc = tstbl_remove_state(m, tx, "rows", old->num);
    tstbl *nt = NULL;
    if (!rc) rc = tstbl_build(m, tx, nd, old->num, &nt);
    else tsd_table_free(nd);
    int64_t rows = 0;
    fails f = { 0, 0, "" };
    if (!rc) rc = copy_rows(m, tx, old, nt, map, o, &rows, &f);
    if (!rc && f.n && !o->allow_lossy)
        rc = tsenv_error(env, TS_ERR_VALIDATION, "migration of table '%s' refused: %lld row(s) cannot "
                         "follow the change (first: %s); nothing was changed (migration.allowLossy "
                         "drops such rows)", old->def->name, (long long)f.n, f.msg);
    if (!rc) rc = tstbl_drop_trees(tx, old);  /* already out of the catalog and map */
    if (!rc) { rc = tstbl_install(m, tx, nt); nt = NULL; }
    if (nt) tstbl_discard(nt);
    json_object_set_new(entry, "rows", json_integer(rows));
    json_object_set_new(entry, "rowsDropped", json_integer(f.n));
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
    /* match: tableId, then name, then an unambiguous rename */
    for (size_t i = 0; i < n && !rc; i++)
        for (size_t j = 0; j < nold && defs[i]->table_id; j++)
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
        map_fields(match[i]->def, defs[i], maps[i], fieldsets[i]);
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
    /* every table to rewrite leaves the catalog and the map first (held by
     * a reference), so new names may take old ones, even swapped */
    tstbl **held = calloc(n + nfollow + 1, sizeof *held);
    size_t nheld = 0;
    if (!rc && !held) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n + nfollow && !rc && !o->dry_run; k++) {
        tstbl *old = NULL;
        if (k >= n) {
            old = olds[json_integer_value(json_object_get(json_array_get(follow, k - n), "old"))];
        } else if (match[k]) {
            json_t *a = tsd_table_to_json(match[k]->def), *b = tsd_table_to_json(defs[k]);
            if (!json_equal(a, b)) old = match[k];
            json_decref(a);
            json_decref(b);
        }
        if (!old) continue;
        tstbl_hold(m, old);
        held[nheld++] = old;
        rc = tstbl_unlink(m, tx, old, 0);
    }
    /* apply, in foreign-key order */
    for (size_t k = 0; k < n + nfollow && !rc; k++) {
        size_t i = ord2[k];
        json_t *entry = json_object();
        json_array_append_new(entries, entry);
        if (i >= n) {
            tstbl *old = olds[json_integer_value(json_object_get(json_array_get(follow, i - n), "old"))];
            json_object_set_new(entry, "table", json_string(old->def->name));
            json_object_set_new(entry, "action", json_string("changed"));
            json_object_set_new(entry, "reason", json_string("its foreign keys follow a rename"));
            long *idmap = calloc(all[i]->ncols + 1, sizeof *idmap);
            for (size_t c = 0; idmap && c < all[i]->ncols; c++) idmap[c] = (long)c;
            tsd_table *d = all[i];
            all[i] = NULL;
            if (!idmap) { tsd_table_free(d); rc = TS_ERR_NOMEM; break; }
            if (!o->dry_run) rc = rewrite(m, tx, old, d, idmap, o, entry);
            else tsd_table_free(d);
            free(idmap);
            continue;
        }
        json_object_set_new(entry, "table", json_string(defs[i]->name));
        tsd_table *d = defs[i];
        if (!match[i]) {
            json_object_set_new(entry, "action", json_string("created"));
            defs[i] = all[i] = NULL;
            if (o->dry_run) { tsd_table_free(d); continue; }
            tstbl *t;
            rc = tstbl_build(m, tx, d, 0, &t);
            if (!rc) rc = tstbl_install(m, tx, t);
            continue;
        }
        json_t *a = tsd_table_to_json(match[i]->def), *b = tsd_table_to_json(d);
        int unchanged = json_equal(a, b);
        json_decref(a);
        json_decref(b);
        int renamed = strcmp(match[i]->def->name, d->name) != 0;
        json_object_set_new(entry, "action", json_string(unchanged ? "unchanged" : renamed ? "renamed" : "changed"));
        if (renamed) json_object_set_new(entry, "from", json_string(match[i]->def->name));
        json_object_set(entry, "fields", fieldsets[i]);
        if (unchanged) continue;
        defs[i] = all[i] = NULL;
        if (o->dry_run) { tsd_table_free(d); continue; }
        rc = rewrite(m, tx, match[i], d, maps[i], o, entry);
    }
    for (size_t j = 0; j < nold && !rc; j++) {
        if (used[j]) continue;
        json_t *entry = json_pack("{s:s, s:s}", "table", olds[j]->def->name, "action",
                                  o->drop_missing ? "dropped" : "kept");
        json_array_append_new(entries, entry);
        if (o->drop_missing && !o->dry_run) rc = tstbl_drop(m, tx, olds[j]->def->name);
    }
    for (size_t i = 0; held && i < nheld; i++) tstbl_release(m, held[i]);
    free(held);
    if (report && !rc) json_array_extend(report, entries);
    for (size_t i = 0; i < n; i++) {
        tsd_table_free(defs[i]);
        json_decref(fieldsets ? fieldsets[i] : NULL);
        free(maps ? maps[i] : NULL);
    }
    for (size_t i = n; all && i < n + nfollow; i++) tsd_table_free(all[i]);
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
