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

/* The calling thread's explicit transaction on a handle. */
typedef struct tsapi_thread {
    tstx *tx;
    int   write;
    int   failed;   /* a write failed midway: only rollback is allowed */
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
