/*
 * How a public call finds its transaction: the calling thread's explicit
 * one (ts_begin ... ts_commit) when it has one, else an implicit one that
 * commits when the call succeeds and rolls back when it fails.
 */
#ifndef TS_API_CALL_H
#define TS_API_CALL_H

#include "api/db.h"

typedef struct tscall {
    ts_db *db;
    tstx  *tx;
    int    owned;   /* implicit transaction: end it in tscall_end */
} tscall;

struct tsapi_sps;
struct tsw;

/* The calling thread's explicit transaction on a handle. */
typedef struct tsapi_thread {
    tstx *tx;
    int   write;
    int   failed;   /* a write failed midway: only rollback is allowed */
    struct tsapi_sps *sps; /* its savepoints (api/savepoint.c); NULL: none yet */
} tsapi_thread;

int  tscall_begin(ts_db *db, int write, tscall *c);
/* tstx_begin with the data layer's snapshot tag (use it for every
 * transaction that may look tables up). */
int  tscall_tx_begin(ts_db *db, int write, tstx **out);
/* End the call with status rc; returns rc, or the commit's failure. */
int  tscall_end(tscall *c, int rc);
/* Whether a status means the transaction's changes may be half-applied. */
int  tscall_fatal(int rc);

/* Give up the calling thread's explicit transaction after a statement
 * failed midway and could not be undone: only rollback is allowed. */
void tscall_poison(tscall *c);
/* Commit / roll back a write transaction with the data layer's hooks. */
int  tscall_commit(ts_db *db, tstx *tx);
void tscall_rollback(ts_db *db, tstx *tx);

/* Savepoints (api/savepoint.c).  While the calling thread's explicit
 * transaction has one, a row statement that succeeded hands its undo
 * entries to it (tsapi_sp_keep_rows), a key-value change first gives it
 * the entry's old bytes (tsapi_sp_keep_kv: old NULL when absent), and a
 * change that cannot be undone (clearing a table, deleting a space) is a
 * barrier no rollback_to may cross.  All are no-ops without savepoints. */
int  tsapi_sp_active(ts_db *db);
int  tsapi_sp_keep_rows(ts_db *db, struct tsw *w);
int  tsapi_sp_keep_kv(ts_db *db, int64_t space, const char *key, const void *old, size_t len);
void tsapi_sp_barrier(ts_db *db);
void tsapi_sp_free(tsapi_thread *t);
/* Put a key-value entry back as it was: old (raw stored bytes) or absent. */
int  tsapi_kv_restore(ts_db *db, tstx *tx, int64_t space, const char *key, const void *old,
                      size_t len);
/* The raw stored bytes of a key-value entry (a new buffer); NOT_FOUND. */
int  tsapi_kv_raw(ts_db *db, tstx *tx, int64_t space, const char *key, void **out, size_t *len);

/* Start the background purge of expired rows when a table has a TTL. */
void tsapi_purge_ensure(ts_db *db);
void tsapi_purge_close(ts_db *db);

/* Start (or wake) the thread running background schema migrations; stop it. */
void tsapi_mig_ensure(ts_db *db);
void tsapi_mig_close(ts_db *db);

/* Delete the rows of every space-local table in space id. */
int  tsapi_tables_purge_space(ts_db *db, tstx *tx, uint64_t id);
/* Add "tables" and "rows" (current space and global tables) to stats. */
int  tsapi_tables_stats(ts_db *db, json_t *stats);

/* Delete every key-value entry of space id (for ts_delete_space). */
int  tsapi_kv_purge_space(ts_db *db, tstx *tx, uint64_t id);

#endif
