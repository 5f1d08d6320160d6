/*
 * Background purge of expired TTL rows: a thread per handle, started when
 * the handle has a table with a TTL, wakes every second and deletes up to
 * PURGE_BATCH expired rows per table and space in one write transaction.
 * Writes to a TTL table also purge a few rows themselves (table/write.c);
 * reads never return expired rows either way.
 */
#include <stdlib.h>
#include <string.h>
#include "api/call.h"
#include "api/worker.h"
#include "api/query.h"
#include "table/rows.h"

#define PURGE_BATCH 256
#define PURGE_EVERY_MS 1000

static int has_ttl(ts_db *db)
{
    int any = 0;
    pthread_mutex_lock(&db->tables.lock);
    for (size_t i = 0; i < db->tables.n && !any; i++) any = db->tables.t[i]->ttl != NULL;
    pthread_mutex_unlock(&db->tables.lock);
    return any;
}

/* One pass: every TTL table in every space. */
static void purge_pass(ts_db *db)
{
    tstx *tx;
    pthread_rwlock_rdlock(&db->gate);
    if (tscall_tx_begin(db, 1, &tx)) {
        pthread_rwlock_unlock(&db->gate);
        return; /* busy: next time */
    }
    json_t *names = json_array();
    int rc = names ? tssys_space_list(&db->sys, tx, names) : TS_ERR_NOMEM;
    int purged = 0;
    tsw w;
    tsw_init(&w, &db->tables, tx, 0, 0);
    for (size_t i = 0; !rc && i < db->tables.n; i++) {
        tstbl *t = db->tables.t[i];
        if (!t->ttl || t->pending) continue;
        size_t ns = t->def->is_global ? 1 : json_array_size(names);
        for (size_t s = 0; s < ns && !rc; s++) {
            uint64_t id = 0;
            if (!t->def->is_global)
                rc = tssys_space_id(&db->sys, tx, json_string_value(json_array_get(names, s)), &id);
            int n = 0;
            if (!rc) rc = tsrow_purge_expired(&w, t, id, PURGE_BATCH, &n);
            purged += n;
        }
    }
    tsw_done(&w);
    json_decref(names);
    if (!rc && purged) rc = tscall_commit(db, tx);
    else tscall_rollback(db, tx);
    pthread_rwlock_unlock(&db->gate);
    if (rc) tsenv_log(&db->env, TS_LOG_WARN, "purging expired rows failed (%d); retrying later", rc);
}

static int64_t purge_run(ts_db *db)
{
    if (has_ttl(db)) purge_pass(db);
    return PURGE_EVERY_MS * 1000;
}

void tsapi_purge_ensure(ts_db *db)
{
    if (!db->tables.env || !has_ttl(db)) return;
    pthread_mutex_lock(&db->lock);
    if (!db->purger) tsapi_worker_start(db, purge_run, PURGE_EVERY_MS * 1000, &db->purger);
    pthread_mutex_unlock(&db->lock);
}

void tsapi_purge_close(ts_db *db)
{
    tsapi_worker_stop(db->purger);
    db->purger = NULL;
}
