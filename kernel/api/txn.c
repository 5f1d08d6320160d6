/* Explicit transactions: ts_begin, ts_begin_read, ts_commit, ts_rollback,
 * ts_transaction.  A transaction belongs to the thread that began it. */
#include <stdlib.h>
#include "api/call.h"

static int begin(ts_db *db, int write)
{
    if (!db) return tsenv_error(NULL, TS_ERR_INVALID, "the database handle is NULL");
    tsenv_clear(&db->env);
    if (pthread_getspecific(db->txkey))
        return tsenv_error(&db->env, TS_ERR_DB, "this thread already has a transaction on this handle");
    tsapi_thread *t = calloc(1, sizeof *t);
    if (!t) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    pthread_rwlock_rdlock(&db->gate);
    int rc = tscall_tx_begin(db, write, &t->tx);
    if (rc) {
        pthread_rwlock_unlock(&db->gate);
        free(t);
        return rc;
    }
    t->write = write;
    pthread_setspecific(db->txkey, t);
    return TS_OK;
}

int ts_begin(ts_db *db) { return begin(db, 1); }
int ts_begin_read(ts_db *db) { return begin(db, 0); }

static int end(ts_db *db, int commit)
{
    if (!db) return tsenv_error(NULL, TS_ERR_INVALID, "the database handle is NULL");
    tsapi_thread *t = pthread_getspecific(db->txkey);
    if (!t) return tsenv_error(&db->env, TS_ERR_DB, "this thread has no transaction on this handle");
    int rc = TS_OK;
    if (commit && t->failed) {
        tscall_rollback(db, t->tx);
        rc = tsenv_error(&db->env, TS_ERR_DB, "a write in the transaction failed: rolled back");
    } else if (commit) {
        rc = tscall_commit(db, t->tx);
    } else {
        tscall_rollback(db, t->tx);
    }
    pthread_setspecific(db->txkey, NULL);
    tsapi_sp_free(t);
    free(t);
    pthread_rwlock_unlock(&db->gate);
    return rc;
}

int ts_commit(ts_db *db) { return end(db, 1); }
int ts_rollback(ts_db *db) { return end(db, 0); }

int ts_transaction(ts_db *db, int (*fn)(ts_db *db, void *ctx), void *ctx)
{
    if (!fn) return tsenv_error(db ? &db->env : NULL, TS_ERR_INVALID, "ts_transaction: fn is NULL");
    int rc = ts_begin(db);
    if (rc) return rc;
    int frc = fn(db, ctx);
    if (frc < 0) {
        ts_rollback(db);
        return frc;
    }
    rc = ts_commit(db);
    return rc ? rc : frc;
}
