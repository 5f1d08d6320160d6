/*
 * Online schema updates: ts_update_schema and the ts_su_* steps build a new
 * schema for one table from its stored one; ts_su_apply hands it to the
 * migration code (table/migrate.c) in two passes inside one write
 * transaction: first the renames alone (metadata only, so other tables'
 * foreign keys follow at once), then the rest, which is either applied at
 * once or started as a background task (table/online.c).  The migrator
 * thread below runs the tasks' batches.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/call.h"
#include "api/worker.h"
#include "table/migrate.h"

struct ts_schema_update {
    ts_db  *db;
    char   *table;    /* the stored name */
    json_t *base;     /* the stored schema when the update began */
    json_t *schema;   /* base with the steps applied */
    json_t *origin;   /* current field name -> stored name (null: added) */
    char   *pk_orig;  /* the stored primary key name */
    int     rc;       /* first failure */
    char    msg[512];
};

static ts_schema_update *fail(ts_schema_update *su, int code, const char *fmt, ...)
{
    if (su->rc) return su;
    su->rc = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(su->msg, sizeof su->msg, fmt, ap);
    va_end(ap);
    return su;
}

static json_t *fields_of(ts_schema_update *su) { return json_object_get(su->schema, "fields"); }

static const char *pk_name(const json_t *schema)
{
    return json_string_value(json_object_get(json_object_get(schema, "primaryKeyConfig"), "name"));
}

static long field_at(const json_t *schema, const char *name)
{
    size_t i;
    json_t *f;
    if (!name) return -1;
    json_array_foreach(json_object_get(schema, "fields"), i, f)
        if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0) return (long)i;
    return -1;
}

static int has_name(const json_t *schema, const char *name)
{
    return field_at(schema, name) >= 0 || strcmp(pk_name(schema), name) == 0;
}

/* Replace field names in an array of names by map {old: new}. */
static void rename_in(json_t *arr, const json_t *map)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        json_t *to = json_object_get(map, json_string_value(v));
        if (to) json_array_set(arr, i, to);
    }
}

/* Rename fields of schema by map {old: new}, all at once (so swaps work):
 * the fields, the primary key, indexes, foreign keys and the TTL source. */
static void rename_all(json_t *schema, const json_t *map)
{
    const char *self = json_string_value(json_object_get(schema, "name"));
    json_t *pkc = json_object_get(schema, "primaryKeyConfig");
    json_t *to = json_object_get(map, json_string_value(json_object_get(pkc, "name")));
    if (to) json_object_set(pkc, "name", to);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(schema, "fields"), i, v) {
        to = json_object_get(map, json_string_value(json_object_get(v, "name")));
        if (to) json_object_set(v, "name", to);
    }
    json_array_foreach(json_object_get(schema, "indexes"), i, v) rename_in(json_object_get(v, "fields"), map);
    json_array_foreach(json_object_get(schema, "foreignKeys"), i, v) {
        rename_in(json_object_get(v, "fields"), map);
        if (strcmp(json_string_value(json_object_get(v, "referencedTable")), self) == 0)
            rename_in(json_object_get(v, "referencedFields"), map);
    }
    json_t *ttl = json_object_get(schema, "ttlConfig");
    to = json_object_get(map, json_string_value(json_object_get(ttl, "sourceField")));
    if (to) json_object_set(ttl, "sourceField", to);
}

ts_schema_update *ts_update_schema(ts_db *db, const char *table)
{
    if (!db) return NULL;
    ts_schema_update *su = calloc(1, sizeof *su);
    if (!su) return NULL;
    su->db = db;
    su->origin = json_object();
    if (!su->origin) { free(su); return NULL; }
    if (!table) return fail(su, TS_ERR_INVALID, "table name is NULL");
    if (!(su->table = strdup(table))) return fail(su, TS_ERR_NOMEM, "out of memory");
    int rc = ts_get_schema(db, table, &su->base);
    if (rc) return fail(su, rc, "%s", ts_errmsg(db));
    if (!(su->schema = json_deep_copy(su->base)) || !(su->pk_orig = strdup(pk_name(su->base))))
        return fail(su, TS_ERR_NOMEM, "out of memory");
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(su->base, "fields"), i, f)
        json_object_set(su->origin, json_string_value(json_object_get(f, "name")), json_object_get(f, "name"));
    return su;
}

void ts_su_free(ts_schema_update *su)
{
    if (!su) return;
    free(su->table);
    free(su->pk_orig);
    json_decref(su->base);
    json_decref(su->schema);
    json_decref(su->origin);
    free(su);
}

ts_schema_update *ts_su_rename_table(ts_schema_update *su, const char *new_name)
{
    if (!su || su->rc) return su;
    if (!new_name) return fail(su, TS_ERR_INVALID, "new table name is NULL");
    /* a self-reference follows the table's name */
    const char *cur = json_string_value(json_object_get(su->schema, "name"));
    size_t i;
    json_t *fk;
    json_array_foreach(json_object_get(su->schema, "foreignKeys"), i, fk)
        if (strcmp(json_string_value(json_object_get(fk, "referencedTable")), cur) == 0)
            json_object_set_new(fk, "referencedTable", json_string(new_name));
    json_object_set_new(su->schema, "name", json_string(new_name));
    return su;
}

ts_schema_update *ts_su_add_field(ts_schema_update *su, const json_t *field_schema)
{
    if (!su || su->rc) return su;
    const char *name = json_string_value(json_object_get(field_schema, "name"));
    if (!json_is_object(field_schema) || !name)
        return fail(su, field_schema ? TS_ERR_VALIDATION : TS_ERR_INVALID,
                    "%s: a field schema is an object with a \"name\"", su->table);
    if (has_name(su->schema, name))
        return fail(su, TS_ERR_FIELD_EXISTS, "%s.%s: the table already has a field of that name",
                    su->table, name);
    json_array_append_new(fields_of(su), json_deep_copy(field_schema));
    json_object_set_new(su->origin, name, json_null());
    return su;
}

/* Whether a foreign key of the schema uses field name. */
static int in_fk(const json_t *schema, const char *name)
{
    size_t i, j;
    json_t *fk, *f;
    json_array_foreach(json_object_get(schema, "foreignKeys"), i, fk)
        json_array_foreach(json_object_get(fk, "fields"), j, f)
            if (strcmp(json_string_value(f), name) == 0) return 1;
    return 0;
}

ts_schema_update *ts_su_remove_field(ts_schema_update *su, const char *name)
{
    if (!su || su->rc) return su;
    if (!name) return fail(su, TS_ERR_INVALID, "field name is NULL");
    if (strcmp(pk_name(su->schema), name) == 0)
        return fail(su, TS_ERR_VALIDATION, "%s.%s: the primary key cannot be removed", su->table, name);
    long at = field_at(su->schema, name);
    if (at < 0) return fail(su, TS_ERR_NOT_FOUND, "%s: no field named '%s'", su->table, name);
    if (in_fk(su->schema, name))
        return fail(su, TS_ERR_FOREIGN_KEY, "%s.%s: a foreign key uses the field; remove it first",
                    su->table, name);
    const char *src = json_string_value(json_object_get(json_object_get(su->schema, "ttlConfig"), "sourceField"));
    if (src && strcmp(src, name) == 0)
        return fail(su, TS_ERR_VALIDATION, "%s.%s: the field is the TTL source", su->table, name);
    json_t *ixs = json_object_get(su->schema, "indexes");
    for (size_t i = json_array_size(ixs); i-- > 0;) {
        size_t j;
        json_t *f;
        json_array_foreach(json_object_get(json_array_get(ixs, i), "fields"), j, f)
            if (strcmp(json_string_value(f), name) == 0) { json_array_remove(ixs, i); break; }
    }
    json_object_del(su->origin, name);
    json_array_remove(fields_of(su), (size_t)at);
    return su;
}

ts_schema_update *ts_su_rename_field(ts_schema_update *su, const char *old_name, const char *new_name)
{
    if (!su || su->rc) return su;
    if (!old_name || !new_name) return fail(su, TS_ERR_INVALID, "field name is NULL");
    if (!has_name(su->schema, old_name))
        return fail(su, TS_ERR_NOT_FOUND, "%s: no field named '%s'", su->table, old_name);
    if (strcmp(old_name, new_name) == 0) return su;
    if (has_name(su->schema, new_name))
        return fail(su, TS_ERR_FIELD_EXISTS, "%s.%s: the table already has a field of that name",
                    su->table, new_name);
    json_t *map = json_pack("{s:s}", old_name, new_name);
    if (!map) return fail(su, TS_ERR_NOMEM, "out of memory");
    rename_all(su->schema, map);
    json_decref(map);
    json_t *o = json_object_get(su->origin, old_name);
    if (o) {
        json_object_set(su->origin, new_name, o);
        json_object_del(su->origin, old_name);
    }
    return su;
}

ts_schema_update *ts_su_modify_field(ts_schema_update *su, const char *name, const json_t *changes)
{
    if (!su || su->rc) return su;
    if (!name || !changes) return fail(su, TS_ERR_INVALID, "%s is NULL", name ? "changes" : "field name");
    if (!json_is_object(changes))
        return fail(su, TS_ERR_VALIDATION, "%s.%s: changes must be a JSON object", su->table, name);
    const char *nn = json_string_value(json_object_get(changes, "name"));
    if (json_object_get(changes, "name") && !nn)
        return fail(su, TS_ERR_VALIDATION, "%s.%s: \"name\" must be a string", su->table, name);
    if (nn && strcmp(nn, name) != 0) {
        ts_su_rename_field(su, name, nn);
        name = nn;
        if (su->rc) return su;
    }
    long at = field_at(su->schema, name);
    if (at < 0)
        return fail(su, TS_ERR_NOT_FOUND, "%s: no field named '%s'%s", su->table, name,
                    has_name(su->schema, name) ? " in fields (the primary key's type follows "
                    "primaryKeyConfig)" : "");
    json_t *f = json_array_get(fields_of(su), (size_t)at);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)changes, k, v) {
        if (strcmp(k, "name") == 0) continue;
        if (json_is_null(v)) json_object_del(f, k);
        else json_object_set_new(f, k, json_deep_copy(v));
    }
    return su;
}

ts_schema_update *ts_su_add_index(ts_schema_update *su, const json_t *index_schema)
{
    if (!su || su->rc) return su;
    if (!json_is_object(index_schema))
        return fail(su, index_schema ? TS_ERR_VALIDATION : TS_ERR_INVALID,
                    "%s: an index schema is a JSON object with \"fields\"", su->table);
    const char *name = json_string_value(json_object_get(index_schema, "indexName"));
    size_t i;
    json_t *ix;
    json_array_foreach(json_object_get(su->schema, "indexes"), i, ix)
        if (name && strcmp(json_string_value(json_object_get(ix, "indexName")), name) == 0)
            return fail(su, TS_ERR_INDEX_EXISTS, "%s: an index named '%s' exists", su->table, name);
    json_array_append_new(json_object_get(su->schema, "indexes"), json_deep_copy(index_schema));
    return su;
}

ts_schema_update *ts_su_remove_index(ts_schema_update *su, const json_t *fields)
{
    if (!su || su->rc) return su;
    json_t *want = json_is_string(fields) ? json_pack("[O]", fields) : json_incref((json_t *)fields);
    if (!json_is_array(want) || !json_array_size(want)) {
        json_decref(want);
        return fail(su, fields ? TS_ERR_VALIDATION : TS_ERR_INVALID,
                    "%s: the index to remove is named by its fields (an array of names)", su->table);
    }
    json_t *ixs = json_object_get(su->schema, "indexes");
    size_t i;
    json_t *ix;
    json_array_foreach(ixs, i, ix) {
        if (json_equal(json_object_get(ix, "fields"), want)) {
            json_array_remove(ixs, i);
            json_decref(want);
            return su;
        }
    }
    const char *one = json_array_size(want) == 1 ? json_string_value(json_array_get(want, 0)) : NULL;
    json_t *f = one && field_at(su->schema, one) >= 0
                ? json_array_get(fields_of(su), (size_t)field_at(su->schema, one)) : NULL;
    json_decref(want);
    if (f && json_is_true(json_object_get(f, "createIndex"))) {
        json_object_set_new(f, "createIndex", json_false());
        return su;
    }
    if (f && json_is_true(json_object_get(f, "unique"))) {
        json_object_set_new(f, "unique", json_false());
        return su;
    }
    return fail(su, TS_ERR_NOT_FOUND, "%s: no index over those fields", su->table);
}

static const char *key_type(const char *gen)
{
    if (!gen) return NULL;
    if (strcmp(gen, "sequential") == 0 || strcmp(gen, "timestampBased") == 0) return "integer";
    if (strcmp(gen, "datePrefixed") == 0 || strcmp(gen, "shortCode") == 0) return "text";
    return NULL;
}

ts_schema_update *ts_su_set_primary_key_config(ts_schema_update *su, const json_t *pk_config)
{
    if (!su || su->rc) return su;
    if (!json_is_object(pk_config))
        return fail(su, pk_config ? TS_ERR_VALIDATION : TS_ERR_INVALID,
                    "%s.primaryKeyConfig: expected an object", su->table);
    const char *cur = pk_name(su->schema);
    const char *nn = json_string_value(json_object_get(pk_config, "name"));
    if (json_object_get(pk_config, "name") && !nn)
        return fail(su, TS_ERR_VALIDATION, "%s.primaryKeyConfig.name: expected a string", su->table);
    if (nn && strcmp(nn, cur) != 0) {
        ts_su_rename_field(su, cur, nn);
        if (su->rc) return su;
    }
    json_t *pkc = json_deep_copy(pk_config);
    if (!pkc) return fail(su, TS_ERR_NOMEM, "out of memory");
    if (!nn) json_object_set_new(pkc, "name", json_string(pk_name(su->schema)));
    /* a declared key field takes the new generator's type */
    const char *kt = key_type(json_string_value(json_object_get(pkc, "type")));
    long at = field_at(su->schema, json_string_value(json_object_get(pkc, "name")));
    if (kt && at >= 0) json_object_set_new(json_array_get(fields_of(su), (size_t)at), "type", json_string(kt));
    json_object_set_new(su->schema, "primaryKeyConfig", pkc);
    return su;
}

/* ---- apply ---------------------------------------------------------------- */

static json_t *one(json_t *schema) { return json_pack("[O]", schema); }

/* Other tables' foreign keys on t's key: their fields take the key's new
 * type (a re-key).  Appends the changed schemas to list. */
/* The JSON type of a table's key values ("integer", "text"; NULL: either). */
static const char *key_type_of(const tsd_table *d)
{
    if (d->cols[0].type == TSD_INTEGER) return "integer";
    if (d->cols[0].type == TSD_TEXT) return "text";
    return key_type(tsd_pk_type_name(d->pk_type));
}

static int follow_key_type(ts_db *db, const tsd_table *old, const tsd_table *nd, json_t *list)
{
    const char *was = key_type_of(old), *type = key_type_of(nd);
    if (!type || (was && strcmp(was, type) == 0)) return TS_OK;
    tstbl_map *m = &db->tables;
    for (size_t i = 0; i < m->n; i++) {
        const tsd_table *d = m->t[i]->def;
        if (d == old) continue;
        json_t *s = NULL;
        for (size_t f = 0; f < d->nfks; f++) {
            const tsd_fk *fk = &d->fks[f];
            if (strcmp(fk->ref_table, old->name) != 0 || fk->nfields != 1 ||
                strcmp(fk->ref_fields[0], old->cols[0].name) != 0)
                continue;
            if (!s && !(s = tsd_table_to_json(d))) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
            long at = field_at(s, d->cols[fk->cols[0]].name);
            json_t *fj = at >= 0 ? json_array_get(json_object_get(s, "fields"), (size_t)at) : NULL;
            if (!fj) continue;
            json_object_set_new(fj, "type", json_string(type));
            static const char *const drop[] = { "minValue", "maxValue", "minLength", "maxLength",
                                                "defaultValue", NULL };
            for (size_t k = 0; drop[k]; k++) json_object_del(fj, drop[k]);
        }
        if (s) json_array_append_new(list, s);
    }
    return TS_OK;
}

static int apply(ts_schema_update *su, tstx *tx, char *id, size_t idcap)
{
    ts_db *db = su->db;
    ts_env *env = &db->env;
    tstbl_map *m = &db->tables;
    tstbl *t = tstbl_find(m, su->table);
    if (!t) return tsenv_error(env, TS_ERR_NOT_FOUND, "no table named '%s'", su->table);
    json_t *now = tsd_table_to_json(t->def);
    int same = now && json_equal(now, su->base);
    json_decref(now);
    if (!same)
        return tsenv_error(env, TS_ERR_DB, "table '%s' changed since ts_update_schema; build the "
                           "update again", su->table);
    if (t->mig) return tsmig_busy(m, t);
    const char *final = json_string_value(json_object_get(su->schema, "name"));
    /* pass 1: the renames alone (fields keeping their stored values) */
    json_t *ren = json_object(), *s1 = json_deep_copy(su->base), *hints = json_object();
    json_t *fmap = json_object(), *tasks = json_array(), *list = NULL;
    int rc = ren && s1 && hints && fmap && tasks ? TS_OK : tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    const char *k;
    json_t *v;
    /* stored name -> current name */
    json_object_foreach(su->origin, k, v)
        if (json_is_string(v) && strcmp(json_string_value(v), k) != 0)
            json_object_set_new(ren, json_string_value(v), json_string(k));
    const char *pk_now = pk_name(su->schema);
    if (strcmp(su->pk_orig, pk_now) != 0) json_object_set_new(ren, su->pk_orig, json_string(pk_now));
    if (!rc) {
        rename_all(s1, ren);
        /* a self-reference follows the table's name */
        size_t i;
        json_t *fk;
        json_array_foreach(json_object_get(s1, "foreignKeys"), i, fk)
            if (strcmp(json_string_value(json_object_get(fk, "referencedTable")), su->table) == 0)
                json_object_set_new(fk, "referencedTable", json_string(final));
        json_object_set_new(s1, "name", json_string(final));
    }
    tsmig_opts o = { .allow_lossy = db->cfg->allow_lossy, .hints = hints };
    if (!rc && !json_equal(s1, su->base)) {
        json_object_foreach(su->origin, k, v)
            if (json_is_string(v)) json_object_set_new(fmap, k, json_string(json_string_value(v)));
        json_object_set_new(hints, final, json_pack("{s:s, s:O}", "from", su->table, "fields", fmap));
        list = one(s1);
        rc = list ? tsmig_sync(m, tx, list, &o, NULL) : TS_ERR_NOMEM;
        json_decref(list);
        list = NULL;
    }
    /* pass 2: everything else, the fields now under their final names */
    if (!rc && !json_equal(su->schema, s1)) {
        json_object_clear(fmap);
        json_object_foreach(su->origin, k, v)
            json_object_set_new(fmap, k, json_is_string(v) ? json_string(k) : json_null());
        json_object_set_new(hints, final, json_pack("{s:s, s:O}", "from", final, "fields", fmap));
        list = one(su->schema);
        tstbl *cur = tstbl_find(m, final);
        tsd_table *nd = NULL;
        if (!list || !cur) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
        if (!rc) rc = tsd_table_parse(env, su->schema, &nd);
        if (!rc) rc = follow_key_type(db, cur->def, nd, list);
        o.online = nd && nd->pk_type == cur->def->pk_type;
        tsd_table_free(nd);
        o.batch_rows = db->cfg->batch_rows;
        o.tasks = tasks;
        if (!rc) rc = tsmig_sync(m, tx, list, &o, NULL);
        json_decref(list);
    }
    if (!rc && json_array_size(tasks)) {
        snprintf(id, idcap, "%s", json_string_value(json_array_get(tasks, 0)));
    } else if (!rc) {
        int64_t rows = 0;
        tstbl *cur = tstbl_find(m, final);
        if (cur) rc = tsmig_table_rows(m, tx, cur, &rows);
        if (!rc) rc = tsmig_task_done_now(m, tx, final, rows, id, idcap);
    }
    json_decref(ren);
    json_decref(s1);
    json_decref(hints);
    json_decref(fmap);
    json_decref(tasks);
    return rc;
}

int ts_su_apply(ts_schema_update *su, char **task_id_out)
{
    if (task_id_out) *task_id_out = NULL;
    if (!su) return tsenv_error(NULL, TS_ERR_INVALID, "ts_su_apply: the schema update is NULL");
    ts_db *db = su->db;
    if (su->rc) {
        int rc = tsenv_error(&db->env, su->rc, "%s", su->msg);
        ts_su_free(su);
        return rc;
    }
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) { ts_su_free(su); return rc; }
    unsigned seq = db->tables.ddl_seq;
    char id[32] = "";
    rc = apply(su, c.tx, id, sizeof id);
    if (rc < 0 && !c.owned && db->tables.ddl_seq != seq) tscall_poison(&c);
    tsapi_sp_barrier(db); /* a started task keeps no undo */
    rc = tscall_end(&c, rc);
    ts_su_free(su);
    if (rc) return rc;
    tsapi_purge_ensure(db);
    tsapi_mig_ensure(db);
    if (task_id_out && !(*task_id_out = strdup(id)))
        return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    return TS_OK;
}

int ts_migration_status(ts_db *db, const char *task_id, json_t **status_new)
{
    if (status_new) *status_new = NULL;
    tscall c;
    int rc = tscall_begin(db, 0, &c);
    if (rc) return rc;
    if (!task_id || !status_new)
        rc = tsenv_error(&db->env, TS_ERR_INVALID, "%s is NULL", task_id ? "status_new" : "task_id");
    if (!rc) rc = tsmig_task_status(&db->tables, c.tx, task_id, status_new);
    return tscall_end(&c, rc);
}

/* ---- the migrator thread ----------------------------------------------------
 * Started when a task is running (at open or by ts_su_apply); runs one
 * batch per write transaction and lets other writers in between. */

/* One batch: 1 when a task is still running, 0 when none is, < 0 on failure. */
static int mig_batch(ts_db *db)
{
    tstx *tx;
    pthread_rwlock_rdlock(&db->gate);
    int rc = tscall_tx_begin(db, 1, &tx);
    if (rc) {
        pthread_rwlock_unlock(&db->gate);
        return rc;
    }
    int more = 0;
    rc = tsmig_task_step(&db->tables, tx, db->cfg->batch_rows, &more);
    if (!rc) rc = tscall_commit(db, tx);
    else tscall_rollback(db, tx);
    pthread_rwlock_unlock(&db->gate);
    if (rc) {
        tsenv_log(&db->env, TS_LOG_WARN, "a schema migration batch failed (%d: %s); retrying",
                  rc, tsenv_errmsg(&db->env));
        tsenv_clear(&db->env);
        return rc;
    }
    if (!more) tsapi_purge_ensure(db); /* the new schema may have a TTL */
    return more;
}

/* Between batches a pause (at least a short one, so writers waiting for
 * the lock get it), longer after a failure; none left: until kicked. */
static int64_t mig_run(ts_db *db)
{
    int r = mig_batch(db);
    if (r == 0) return -1;
    if (r < 0) return 1000000;
    return db->cfg->batch_pause_ms ? (int64_t)db->cfg->batch_pause_ms * 1000 : 200;
}

void tsapi_mig_ensure(ts_db *db)
{
    if (!db->tables.env) return;
    pthread_mutex_lock(&db->lock);
    if (!db->migrator) tsapi_worker_start(db, mig_run, 0, &db->migrator);
    else tsapi_worker_kick(db->migrator);
    pthread_mutex_unlock(&db->lock);
}

void tsapi_mig_close(ts_db *db)
{
    tsapi_worker_stop(db->migrator);
    db->migrator = NULL;
}
