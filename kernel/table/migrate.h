/*
 * Schema migration: bring the stored tables to a given list of schemas
 * (ts_sync_schemas, "schemas" in tostore.json).  Tables and fields are
 * matched by tableId / fieldId, then by name, then, without ids, by an
 * unambiguous rename (one removed and one added with the same definition).
 * A changed table is rewritten row by row into new trees inside the caller's
 * write transaction, so a crash leaves the old or the new schema whole.
 * docs/migration.md has the rules.
 */
#ifndef TS_TABLE_MIGRATE_H
#define TS_TABLE_MIGRATE_H

#include "table/table.h"

typedef struct tsmig_opts {
    int drop_missing;   /* drop stored tables the list leaves out */
    int allow_lossy;    /* drop rows whose values cannot follow a change */
    int dry_run;        /* report only */
} tsmig_opts;

/* Apply (or with dry_run only plan) the migration to `schemas` (a JSON
 * array) inside write transaction tx.  report (may be NULL) gets one object
 * per table: {"table", "action": "created" | "changed" | "renamed" |
 * "unchanged" | "kept" | "dropped", "from", "fields": {...}, "rows",
 * "rowsDropped"}.  A change that would lose or invalidate data without
 * allow_lossy is TS_ERR_VALIDATION naming the table, field and how many
 * rows; the caller then rolls back. */
int tsmig_sync(tstbl_map *m, tstx *tx, const json_t *schemas, const tsmig_opts *o, json_t *report);

#endif
