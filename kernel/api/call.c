#include "api/call.h"
#include "api/query.h"

int tscall_fatal(int rc)
{
    return rc == TS_ERR_IO || rc == TS_ERR_NOMEM || rc == TS_ERR_CORRUPT || rc == TS_ERR_READONLY;
}

int tscall_tx_begin(ts_db *db, int write, tstx **out)
{
    int rc = tstx_begin(db->pg, write, out);
    /* the catalog commit number that came with the snapshot's commits */
    if (!rc) tstx_set_tag(*out, tstx_stamp(*out));
    return rc;
}

int tscall_begin(ts_db *db, int write, tscall *c)
{
    c->db = db;
    c->tx = NULL;
    c->owned = 0;
    if (!db) return tsenv_error(NULL, TS_ERR_INVALID, "the database handle is NULL");
    tsenv_clear(&db->env);
    if (!db->sys.catalog)
        return tsenv_error(&db->env, TS_ERR_PLUGIN, "tables and the key-value store need the "
                           "'btree' index module, which is not loaded");
    tsapi_thread *t = pthread_getspecific(db->txkey);
    if (t && t->tx) {
        if (t->failed)
            return tsenv_error(&db->env, TS_ERR_DB, "a write in this transaction failed; roll it back");
        if (write && !t->write)
            return tsenv_error(&db->env, TS_ERR_DB, "this thread's transaction is read-only");
        c->tx = t->tx;
        return TS_OK;
    }
    pthread_rwlock_rdlock(&db->gate);
    int rc = tscall_tx_begin(db, write, &c->tx);
    if (rc) {
        pthread_rwlock_unlock(&db->gate);
        return rc;
    }
    c->owned = 1;
    return TS_OK;
}

void tscall_poison(tscall *c)
{
    tsapi_thread *t = c->owned ? NULL : pthread_getspecific(c->db->txkey);
    if (t) t->failed = 1;
}

int tscall_commit(ts_db *db, tstx *tx)
{
    int write = tstx_is_write(tx) && db->tables.env;
    uint64_t no = 0;
    if (write) {
        int rc = tstbl_before_commit(&db->tables, tx, &no);
        if (rc) {
            tscall_rollback(db, tx);
            return rc;
        }
    }
    tstx_set_commit_stamp(tx, no);
    int rc = tstx_commit(tx);
    if (write && tstbl_after_commit(&db->tables, no, rc == TS_OK)) tsapi_watch_notify(db);
    return rc;
}

void tscall_rollback(ts_db *db, tstx *tx)
{
    if (tstx_is_write(tx) && db->tables.env) tstbl_before_rollback(&db->tables, db->pg);
    tstx_rollback(tx);
}

int tscall_end(tscall *c, int rc)
{
    if (!c->tx) return rc;
    if (c->owned) {
        if (rc >= 0) {
            int crc = tscall_commit(c->db, c->tx);
            if (crc) rc = crc;
        } else {
            tscall_rollback(c->db, c->tx);
        }
        pthread_rwlock_unlock(&c->db->gate);
    } else if (tscall_fatal(rc)) {
        tsapi_thread *t = pthread_getspecific(c->db->txkey);
        if (t) t->failed = 1;
    }
    c->tx = NULL;
    return rc;
}
