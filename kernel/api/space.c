/* Spaces: isolated sets of rows, sequences and keys in one database. */
#include <string.h>
#include "api/call.h"

int ts_switch_space(ts_db *db, const char *space, int keep_active)
{
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    if (!space) return tscall_end(&c, tsenv_error(&db->env, TS_ERR_INVALID, "space is NULL"));
    if (!tssys_valid_name(space)) {
        rc = tsenv_error(&db->env, TS_ERR_VALIDATION,
                         "space name '%s' must match [A-Za-z][A-Za-z0-9_]* (at most 64 bytes)",
                         space ? space : "(null)");
        return tscall_end(&c, rc);
    }
    uint64_t id = 0;
    rc = tssys_space_create(&db->sys, c.tx, space, &id);
    if (!rc && keep_active) rc = tssys_active_set(&db->sys, c.tx, space);
    rc = tscall_end(&c, rc);
    if (!rc) {
        pthread_mutex_lock(&db->lock);
        snprintf(db->space, sizeof db->space, "%s", space);
        db->space_id = id;
        pthread_mutex_unlock(&db->lock);
    }
    return rc;
}

const char *ts_current_space(ts_db *db)
{
    if (!db) return NULL;
    const char *out = "default";
    pthread_mutex_lock(&db->lock);
    size_t i = 0;
    while (i < db->nspace_names && strcmp(db->space_names[i], db->space) != 0) i++;
    if (i < db->nspace_names) {
        out = db->space_names[i];
    } else {
        char **n = realloc(db->space_names, (db->nspace_names + 1) * sizeof *n);
        char *copy = n ? strdup(db->space) : NULL;
        if (n) db->space_names = n;
        if (copy) out = db->space_names[db->nspace_names++] = copy;
    }
    pthread_mutex_unlock(&db->lock);
    return out;
}

int ts_list_spaces(ts_db *db, json_t **out_new)
{
    if (!out_new) return tsenv_error(db ? &db->env : NULL, TS_ERR_INVALID, "ts_list_spaces: out is NULL");
    *out_new = NULL;
    tscall c;
    int rc = tscall_begin(db, 0, &c);
    if (rc) return rc;
    json_t *arr = json_array();
    rc = arr ? tssys_space_list(&db->sys, c.tx, arr) : TS_ERR_NOMEM;
    rc = tscall_end(&c, rc);
    if (rc) json_decref(arr);
    else *out_new = arr;
    return rc;
}

int ts_delete_space(ts_db *db, const char *space)
{
    tscall c;
    int rc = tscall_begin(db, 1, &c);
    if (rc) return rc;
    uint64_t id = 0;
    pthread_mutex_lock(&db->lock);
    int current = space && strcmp(space, db->space) == 0;
    pthread_mutex_unlock(&db->lock);
    if (!space)
        rc = tsenv_error(&db->env, TS_ERR_INVALID, "space is NULL");
    else if (strcmp(space, "default") == 0)
        rc = tsenv_error(&db->env, TS_ERR_VALIDATION, "the default space cannot be deleted");
    else if (current)
        rc = tsenv_error(&db->env, TS_ERR_VALIDATION,
                         "space '%s' is the current space; switch to another first", space);
    else if ((rc = tssys_space_id(&db->sys, c.tx, space, &id)) == TS_ERR_NOT_FOUND)
        rc = tsenv_error(&db->env, TS_ERR_NOT_FOUND, "no space named '%s'", space);
    if (!rc) tsapi_sp_barrier(db); /* the purges keep no undo, even half done */
    if (!rc) rc = tsapi_tables_purge_space(db, c.tx, id);
    if (!rc) rc = tsapi_kv_purge_space(db, c.tx, id);
    if (!rc) rc = tssys_space_remove(&db->sys, c.tx, space);
    if (!rc) {
        char active[TSSYS_NAME_MAX + 1];
        rc = tssys_active_get(&db->sys, c.tx, active, sizeof active);
        if (!rc && strcmp(active, space) == 0) rc = tssys_active_set(&db->sys, c.tx, NULL);
    }
    return tscall_end(&c, rc);
}
