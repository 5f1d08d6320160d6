/*
 * Schema migration: bring the stored tables to a given list of schemas
 * (ts_sync_schemas, "schemas" in tostore.json, ts_update_schema).  Tables
 * and fields are matched by explicit hints (ts_update_schema knows what it
 * renamed), then tableId / fieldId, then by name, then, without ids, by an
 * unambiguous rename (one removed and one added with the same definition).
 *
 * A changed table whose stored rows stay valid as they are (renames,
 * removed indexes, relaxed constraints, appended nullable fields without
 * index) only gets a new catalog entry over its old trees ("retarget").
 * Otherwise it is rewritten row by row into new trees: inside the caller's
 * write transaction (a crash leaves the old or the new schema whole), or,
 * with tsmig_opts.online and more rows than one batch, by a background task
 * (online.c) that converts batches of rows into "shadow" trees while the
 * old table keeps serving reads and writes, and swaps them in at the end.
 * docs/migration.md has the rules.
 */
#ifndef TS_TABLE_MIGRATE_H
#define TS_TABLE_MIGRATE_H

#include "table/rows.h"

typedef struct tsmig_opts {
    int drop_missing;   /* drop stored tables the list leaves out */
    int allow_lossy;    /* drop rows whose values cannot follow a change */
    int dry_run;        /* report only */
    /* {new table name: {"from": stored name, "fields": {new field: stored
     * field name, or null for a new field}}}: explicit matches (NULL: none) */
    const json_t *hints;
    /* a rewrite of a table with more than batch_rows rows starts a
     * background task; its id is appended to tasks (may be NULL) */
    int           online;
    int64_t       batch_rows;
    json_t       *tasks;
    /* called as rows are copied by foreground rewrites (may be NULL) */
    void (*progress)(void *ctx, const char *table, uint64_t done, uint64_t total);
    void         *progress_ctx;
} tsmig_opts;

/* Apply (or with dry_run only plan) the migration to `schemas` (a JSON
 * array) inside write transaction tx.  report (may be NULL) gets one object
 * per table: {"table", "action": "created" | "changed" | "renamed" |
 * "unchanged" | "kept" | "dropped", "from", "fields": {...}, "rows",
 * "rowsDropped", "rewrite": bool, "task"}.  A change that would lose or
 * invalidate data without allow_lossy is TS_ERR_VALIDATION naming the
 * table, field and how many rows; the caller then rolls back.  A table with
 * a running background task is not changed: TS_ERR_DB. */
int tsmig_sync(tstbl_map *m, tstx *tx, const json_t *schemas, const tsmig_opts *o, json_t *report);
/* Rewrite table name under its own definition: its rows copied into new
 * trees and every index built again from them, the old trees' pages freed
 * (o->progress as for a rewrite; the other options are not used).  The
 * table stays in the catalog until its rows are copied.  TS_ERR_NOT_FOUND:
 * no such table; TS_ERR_DB: a migration task runs on it. */
int tsmig_rebuild(tstbl_map *m, tstx *tx, const char *name, const tsmig_opts *o);

/* ---- shared by the foreground rewrite and background tasks ----------- */

/* Rows that could not follow a change: how many, the first one's code and message. */
typedef struct tsmig_fails {
    int64_t n;
    int     code;
    char    msg[300];
} tsmig_fails;

/* Convert one stored row of old (its TTL prefix removed: expires) to nt's
 * definition, map[c] giving the old column of new column c (-1: none),
 * and with store put it into nt.  A row that cannot follow (conversion,
 * constraint, duplicate key) is counted in f and not stored; with lossy a
 * value that does not convert takes the field's default first.  verbatim
 * (tsmig_rows_verbatim): the stored bytes are stored as they are.  Returns
 * only failures that end the transaction (I/O, memory, corruption). */
int tsmig_copy_row(tsw *w, const tstbl *old, tstbl *nt, const long *map, int lossy, int verbatim,
                   uint64_t space, const uint8_t *row, size_t len, int64_t expires, int store,
                   tsmig_fails *f);

/* Whether every stored row of od is, byte for byte, a valid row of nd
 * (the row format is positional: appended nullable fields without default
 * read as null; kept fields unchanged or relaxed). */
int tsmig_rows_verbatim(const tsd_table *od, const tsd_table *nd, const long *map);
/* Rows of t in every space (the writer's counts). */
int tsmig_table_rows(tstbl_map *m, tstx *tx, tstbl *t, int64_t *out);

/* ---- background tasks (online.c) ------------------------------------
 * A task is a catalog entry ("migtask", id) -> JSON {"id": "mig-<n>",
 * "table", "state": "running" | "done" | "failed", "processed", "total",
 * "rowsDropped", "error", ...}; a running one also holds the shadow table's
 * entry, the field map and the last key converted.  Writes to the table
 * while it runs are mirrored into the shadow trees for rows the walk has
 * passed (tsrow_put / tsrow_del call the mirror hooks).  All task state
 * lives in the catalog and changes inside write transactions, so a crash
 * resumes from the last committed batch. */

typedef struct tsmig_online tsmig_online;

/* Start a task rewriting old under nd (taken) with map (copied). */
int  tsmig_task_start(tstbl_map *m, tstx *tx, tstbl *old, tsd_table *nd, const long *map,
                      int lossy, json_t *entry, char *id_out, size_t id_cap);
/* Record a finished task for a change applied at once (*id_out "mig-<n>"). */
int  tsmig_task_done_now(tstbl_map *m, tstx *tx, const char *table, int64_t rows, char *id_out,
                         size_t id_cap);
/* Convert up to batch_rows rows of the first table with a running task
 * (swap or fail it at the end).  *more: whether a task is still running
 * afterwards. */
int  tsmig_task_step(tstbl_map *m, tstx *tx, int64_t batch_rows, int *more);
/* Whether a task is running (writer, or under the map lock). */
int  tsmig_running(tstbl_map *m);
/* The status of task id as a new object {"id", "table", "state",
 * "progressPercentage", "processed", "total", "rowsDropped", "error",
 * "cleanupPending"};
 * TS_ERR_NOT_FOUND when there is no such task. */
int  tsmig_task_status(tstbl_map *m, tstx *tx, const char *id, json_t **out_new);
/* Attach the running tasks of the catalog to their tables (map loading). */
int  tsmig_attach(tstbl_map *m, tstx *tx);
void tsmig_online_free(tsmig_online *g);
/* TS_ERR_DB: t has a running task (for DDL that would change it). */
int  tsmig_busy(tstbl_map *m, const tstbl *t);
/* Mirror hooks (rows.c): t has a task; the row with pk key pk was stored
 * in / removed from its old trees. */
int  tsmig_mirror_put(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl,
                      const uint8_t *row, size_t len, int64_t expires);
int  tsmig_mirror_del(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl);

#endif
