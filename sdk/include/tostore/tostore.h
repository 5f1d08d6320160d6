/*
 * tostore/tostore.h - the embedding API of tostore.
 *
 * Conventions (hold for every function below unless its comment says else):
 *  - Every fallible function returns an int status from tostore/status.h.
 *  - Records, schemas and values cross the API as jansson json_t*.  Inputs
 *    are borrowed; outputs named *_new are new references the caller
 *    json_decref()s.
 *  - A NULL where an argument is required returns TS_ERR_INVALID.
 *  - Every *_free / close function accepts NULL.
 *  - A ts_db handle may be shared by many threads.
 */
#ifndef TOSTORE_TOSTORE_H
#define TOSTORE_TOSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define TS_API __declspec(dllimport)
#elif defined(TS_BUILDING_LIBRARY)
#  define TS_API __attribute__((visibility("default")))
#else
#  define TS_API
#endif

/* Library version, e.g. "0.1.0". */
TS_API const char *ts_version(void);

/* An open database. */
typedef struct ts_db ts_db;

/* Open the database described by the tostore.json file at config_path
 * (NULL: the embedded default configuration, see docs/config.md).  On
 * success *out is a new handle to release with ts_close; on failure *out is
 * NULL and ts_errmsg(NULL) says why.  The data directory is created if
 * missing.  Plugins named by the config are loaded and checked first. */
TS_API int ts_open(const char *config_path, ts_db **out);

/* Same as ts_open with the configuration given as JSON text, e.g.
 * "{\"path\": \"/tmp/db\"}"; omitted keys take their defaults. */
TS_API int ts_open_json(const char *config_json, ts_db **out);

/* Close the handle: flush, release the lock, unload plugins.  Accepts NULL.
 * No call on db may be running or start afterwards. */
TS_API int ts_close(ts_db *db);

/* Close like ts_close; with keep_active_space 0 also forget the active
 * space ("log out": the next open starts in "default"). */
TS_API int ts_close_ex(ts_db *db, int keep_active_space);

/* The last error message of the calling thread on db ("" if none); with
 * db NULL, the last error of a call that had no handle (e.g. a failed
 * ts_open).  Valid until the thread's next call on that handle. */
TS_API const char *ts_errmsg(ts_db *db);

/* A fixed English text for a status code; never NULL. */
TS_API const char *ts_strerror(int code);

/* The modules available to the handle, by kind then name: a new JSON array of objects
 * {"kind", "name", "version", "flags": [...], "plugin", "pluginVersion", "file"}.
 * Bundled plugins load on first use; this call loads those not loaded yet
 * (and fails with TS_ERR_PLUGIN if one cannot be). */
TS_API int ts_modules(ts_db *db, json_t **out_new);

/* The effective configuration (defaults filled in, secrets removed) as a
 * new JSON object. */
TS_API int ts_config(ts_db *db, json_t **out_new);

/* Pass a control operation to the storage backend (e.g. fault injection on
 * the "faulty" test backend, see docs/plugins.md).  *out may be NULL. */
TS_API int ts_storage_control(ts_db *db, const char *op, int64_t arg, int64_t *out);

/* Statistics as a new JSON object: pageSize, pages, freePages, bytes,
 * logBytes, cacheHits, cacheMisses, cachePages, cacheMemory (bytes of page
 * memory in use: cached pages, write transactions' private pages and pages
 * index modules hold, headers included), cacheMemoryPeak (the most at
 * once since open or the last ts_rekey), commits, syncs, checkpoints, encrypted; with the data
 * layer also tables (how many), rows (in the current space and global
 * tables), vectorSets and vectorSetBytes (the sets of rows passing vector
 * search conditions kept between searches, docs/vectors.md, and their
 * memory), vectorSetHits (searches that used one since open),
 * vectorSetBuilds (column sets made from every row since open) and
 * vectorSetPatches (column sets made from an earlier version's and the
 * rows changed since). */
TS_API int ts_stats(ts_db *db, json_t **out_new);

/* Verify the database: every page of the current snapshot decodes (checksum
 * or authentication tag), the free list is consistent and, in a database
 * created with "pageDigest", every page is the version the database
 * expects (no older copy put back, no lost write).  TS_OK when sound,
 * TS_ERR_CORRUPT (message names the first bad page) when not; *report_new
 * (may be NULL) gets {"ok", "pages", "freePages", "badPages",
 * "firstBadPage", "freeListBroken", "staleVersions"}.  progress may be
 * NULL. */
TS_API int ts_check(ts_db *db, json_t **report_new,
                    void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

/* ---- transactions ---------------------------------------------------
 * A transaction belongs to the thread that began it; every call that thread
 * makes on the handle joins it and sees its own writes.  One writer at a
 * time: ts_begin waits up to busyTimeoutMs for another writer, then returns
 * TS_ERR_TIMEOUT.  Every write (ts_begin, or a call outside a transaction)
 * fails with TS_ERR_RESOURCE while the log is at maxLogBytes because a read
 * snapshot older than the last commit keeps it from being reused (after
 * waiting busyTimeoutMs for that to change).  End every transaction on the
 * thread that began it, before that thread exits and before ts_close. */

/* Begin a read-write transaction. */
TS_API int ts_begin(ts_db *db);
/* Begin a read-only snapshot: consistent multi-call reads that never take
 * the writer lock.  Ended by ts_commit or ts_rollback. */
TS_API int ts_begin_read(ts_db *db);
/* Commit: durable when it returns (durability "full").  If a write inside
 * failed midway (I/O), the transaction is rolled back and TS_ERR_DB returned. */
TS_API int ts_commit(ts_db *db);
TS_API int ts_rollback(ts_db *db);
/* Run fn inside a transaction: commit when fn returns >= 0, roll back
 * otherwise.  Returns fn's status, or the commit's failure. */
TS_API int ts_transaction(ts_db *db, int (*fn)(ts_db *db, void *ctx), void *ctx);

/* Savepoints nest inside the calling thread's write transaction (SQL's
 * SAVEPOINT / ROLLBACK TO / RELEASE).  ts_savepoint marks the current
 * state under `name` (names may repeat: the newest one is meant).
 * ts_rollback_to undoes every row and key-value change made since the
 * newest savepoint named `name` and drops the savepoints made after it; the
 * savepoint itself stays, to roll back to again.  ts_release forgets it and
 * those after it, keeping their changes.  Outside ts_begin: TS_ERR_INVALID;
 * unknown name: TS_ERR_NOT_FOUND.  A schema change (ts_create_table(s),
 * ts_drop_table, ts_sync_schemas*, ts_su_apply, ts_rebuild_table), ts_clear_table or
 * ts_delete_space made after a savepoint cannot be rolled back to
 * (TS_ERR_UNSUPPORTED; the savepoint can still be released, or the whole
 * transaction rolled back).  Key sequences are not rewound.  Each
 * savepoint keeps the old versions of the rows changed after it in
 * memory until it is released or the transaction ends. */
TS_API int ts_savepoint(ts_db *db, const char *name);
TS_API int ts_rollback_to(ts_db *db, const char *name);
TS_API int ts_release(ts_db *db, const char *name);

/* ---- spaces ----------------------------------------------------------
 * Each space holds its own rows, key sequences, unique constraints and KV
 * data; global tables and global KV keys are shared.  A handle starts in
 * the space stored by keep_active (unless applyActiveSpaceOnDefault is
 * false), else in "default". */

/* Switch the handle to `space` (created on first use; [A-Za-z][A-Za-z0-9_]*).
 * keep_active: the next open starts in this space. */
TS_API int ts_switch_space(ts_db *db, const char *space, int keep_active);
/* The handle's current space; the string stays valid until ts_close. */
TS_API const char *ts_current_space(ts_db *db);
/* All space names as a new JSON array. */
TS_API int ts_list_spaces(ts_db *db, json_t **out_new);
/* Delete a space and everything in it (not "default", not the current). */
TS_API int ts_delete_space(ts_db *db, const char *space);

/* ---- key-value store -------------------------------------------------
 * Keys are strings up to 1000 bytes; values any JSON value (16 MiB at
 * most).  Space-local unless `global`.  Expired keys read as absent and are
 * purged by later writes. */

TS_API int ts_kv_set(ts_db *db, const char *key, const json_t *value, int global);
/* Set with a time to live (> 0 ms). */
TS_API int ts_kv_set_ttl(ts_db *db, const char *key, const json_t *value, int64_t ttl_ms,
                         int global);
/* *out_new: a new reference; TS_ERR_NOT_FOUND when absent or expired. */
TS_API int ts_kv_get(ts_db *db, const char *key, int global, json_t **out_new);
/* TS_ERR_NOT_FOUND when there was no such key. */
TS_API int ts_kv_remove(ts_db *db, const char *key, int global);
/* Add amount atomically; an absent key starts from 0.  A key holding a
 * non-integer is TS_ERR_VALIDATION; overflow TS_ERR_RANGE.  A TTL is kept.
 * *new_value (may be NULL) gets the result. */
TS_API int ts_kv_increment(ts_db *db, const char *key, int64_t amount, int global,
                           int64_t *new_value);
/* Every live key starting with prefix (NULL or "": all), in byte order, as
 * a new JSON array; no limit. */
TS_API int ts_kv_keys(ts_db *db, const char *prefix, int global, json_t **out_new);
/* Number of live keys. */
TS_API int ts_kv_count(ts_db *db, int global, int64_t *out);

/* ---- tables ----------------------------------------------------------
 * Schemas follow Tostore's TableSchema (docs/schema.md lists every key,
 * default and error).  Table definitions are shared by all spaces; rows
 * belong to the current space unless the table isGlobal.  Records cross the
 * API as JSON objects; the primary key field is named by
 * primaryKeyConfig.name ("id").  A write that fails changes nothing. */

/* Create one table.  An existing name is TS_ERR_TABLE_EXISTS (changing a
 * table is migration); a malformed schema TS_ERR_VALIDATION naming the key. */
TS_API int ts_create_table(ts_db *db, const json_t *schema);
/* Create several tables at once (a JSON array), in foreign-key order
 * whatever order they are given in; a dependency cycle is refused; all or
 * nothing. */
TS_API int ts_create_tables(ts_db *db, const json_t *schemas);
/* Drop a table with its rows in every space, its indexes and key sequences.
 * Refused (TS_ERR_FOREIGN_KEY) while another table references it. */
TS_API int ts_drop_table(ts_db *db, const char *table);
/* Delete every row of the table in the current space (every row, for a
 * global table).  Key sequences continue (no key is reused).  When other
 * tables reference it, each row is deleted as ts_delete would (their
 * onDelete actions apply; a restrict refuses and nothing changes). */
TS_API int ts_clear_table(ts_db *db, const char *table);
/* The canonical schema (every default filled in) as a new object. */
TS_API int ts_get_schema(ts_db *db, const char *table, json_t **out_new);
/* The names of all tables, sorted, as a new array. */
TS_API int ts_list_tables(ts_db *db, json_t **out_new);

/* Bring the stored tables to `schemas` (a JSON array of table schemas),
 * as "schemas" in tostore.json does at open: create missing tables, migrate
 * changed ones (renames by tableId / fieldId or inferred when unambiguous,
 * added fields get their default, removed fields are dropped, indexes
 * rebuilt), keep tables the list leaves out (or drop them with the config's
 * migration.dropMissingTables).  A change that would lose or invalidate
 * data is refused with TS_ERR_VALIDATION naming the table, field and row
 * count, and nothing changes (migration.allowLossy drops such rows).  All
 * or nothing, crash-safe.  docs/migration.md. */
TS_API int ts_sync_schemas(ts_db *db, const json_t *schemas);
/* The same with a report (a new array, one object per table: "table",
 * "action", "from", "fields" {"renamed", "added", "removed"}, "rows",
 * "rowsDropped"); with dry_run nothing is changed. */
TS_API int ts_sync_schemas_report(ts_db *db, const json_t *schemas, int dry_run,
                                  json_t **report_new);
/* The same, calling progress (may be NULL) on the calling thread as the
 * rows of each rewritten table are copied (done of total rows; a last call
 * with done == total).  Report entries also say "rewrite": false when a
 * table's rows are kept as they are (renames, removed indexes, relaxed
 * constraints, added nullable fields without index or default). */
TS_API int ts_sync_schemas_progress(ts_db *db, const json_t *schemas, int dry_run,
                                    json_t **report_new,
                                    void (*progress)(void *ctx, const char *table, uint64_t done,
                                                     uint64_t total),
                                    void *ctx);

/* Rebuild a table: its rows are copied into new trees and every index (ngh
 * vector indexes included) is built again from them; the old trees' pages
 * go to the free list, where later writes reuse them (the file may first
 * grow by about the table's size).  For after heavy deletes: an index that
 * shrank for good gives its pages back, and a vector index's graph is built
 * fresh.  Rows, keys and the key generator's state are unchanged.  Runs in
 * its own write transaction, or in the caller's inside ts_begin (a
 * savepoint made before it can no longer be rolled back to).  Other
 * transactions read the table as committed while the rows are copied; from
 * the end of the copy until the commit they find it missing
 * (TS_ERR_NOT_FOUND), and read snapshots begun before the commit keep not
 * finding it, as after any schema change.  progress (may be NULL) as
 * for ts_sync_schemas_progress.  TS_ERR_NOT_FOUND: no such table; TS_ERR_DB:
 * a background migration task runs on it; TS_ERR_INVALID: table is NULL. */
TS_API int ts_rebuild_table(ts_db *db, const char *table,
                            void (*progress)(void *ctx, const char *table, uint64_t done,
                                             uint64_t total),
                            void *ctx);

/* ---- online schema updates -------------------------------------------
 * Change one stored table with chained calls, then ts_su_apply:
 *
 *     ts_schema_update *su = ts_update_schema(db, "users");
 *     ts_su_add_field(su, field);            (chained calls return su)
 *     ts_su_add_index(su, index);
 *     char *task;
 *     if (ts_su_apply(su, &task) == TS_OK) { ... ts_migration_status ... free(task); }
 *
 * The steps apply, in call order, to the table's stored schema as it was
 * when ts_update_schema was called; the result is validated and migrated
 * with the same rules and refusals as ts_sync_schemas (docs/migration.md).
 * A step that fails (unknown field, name taken, ...) makes the update
 * failed: later steps are ignored and ts_su_apply returns that first error
 * (its code, and its message in ts_errmsg(db)).  Every step accepts su ==
 * NULL and then returns NULL; a NULL su makes ts_su_apply return
 * TS_ERR_INVALID.  JSON arguments are borrowed (copied).  An update belongs
 * to one thread at a time.
 *
 * Renames, removed indexes and changes that every stored row already
 * satisfies are applied at once (the rows are not touched).  A change that
 * needs every row converted or an index built runs at once when the table
 * has at most migration.batchRows rows (2000), else as a background task:
 * batches of batchRows rows, each its own write transaction (a writer waits
 * for one batch at most), while the table keeps serving reads and writes
 * under its old schema; writes behind the task's position are converted at
 * once, so nothing is lost; at the end the new schema replaces the old one
 * in one transaction.  A row that cannot follow the change fails the task
 * ("failed", with the error) and leaves the table unchanged.  The task's
 * state is in the database: after a crash or a close it resumes at the
 * next open.  While it runs, the table's schema cannot change (drop, sync,
 * another update: TS_ERR_DB). */

typedef struct ts_schema_update ts_schema_update;

/* Begin an update of `table`.  NULL only when db is NULL or out of memory;
 * an unknown table makes the update failed (TS_ERR_NOT_FOUND at apply). */
TS_API ts_schema_update *ts_update_schema(ts_db *db, const char *table);
/* Rename the table (foreign keys of other tables follow). */
TS_API ts_schema_update *ts_su_rename_table(ts_schema_update *su, const char *new_name);
/* Add a field (a field schema as in "fields", docs/schema.md); existing
 * rows get its default, or null.  A taken name: TS_ERR_FIELD_EXISTS. */
TS_API ts_schema_update *ts_su_add_field(ts_schema_update *su, const json_t *field_schema);
/* Remove a field with its values; explicit indexes over it go with it.
 * Refused for the primary key, a foreign key's field or the TTL source. */
TS_API ts_schema_update *ts_su_remove_field(ts_schema_update *su, const char *name);
/* Rename a field (the primary key too); values, indexes and foreign keys
 * (also other tables' ones that reference it) follow. */
TS_API ts_schema_update *ts_su_rename_field(ts_schema_update *su, const char *old_name,
                                            const char *new_name);
/* Change a field's definition: each key of `changes` replaces the field's
 * (type, nullable, unique, createIndex, defaultValue, maxLength, ...); a
 * key set to null removes that option; "name" renames it.  Values follow a
 * type change with the query coercion rules, or the change is refused. */
TS_API ts_schema_update *ts_su_modify_field(ts_schema_update *su, const char *name,
                                            const json_t *changes);
/* Add an index (as in "indexes": {"fields": [...], "unique", "indexName",
 * "type"}).  A taken indexName: TS_ERR_INDEX_EXISTS. */
TS_API ts_schema_update *ts_su_add_index(ts_schema_update *su, const json_t *index_schema);
/* Remove the explicit index over exactly `fields` (a JSON array of names,
 * or one name as a string); for one field without such an index, its
 * createIndex, else its unique flag, is cleared.  None: TS_ERR_NOT_FOUND. */
TS_API ts_schema_update *ts_su_remove_index(ts_schema_update *su, const json_t *fields);
/* Replace primaryKeyConfig (its "name" defaults to the current one).  A
 * new key type re-keys the table: every key is converted to the new type
 * (7 -> "7"; a key that does not convert refuses the change) and the
 * fields of other tables' foreign keys that reference it change type and
 * values with it; the new generator never hands out a kept key.  This runs
 * in the apply's transaction, whatever the table's size. */
TS_API ts_schema_update *ts_su_set_primary_key_config(ts_schema_update *su, const json_t *pk_config);
/* Apply the update.  Consumes su in every case (do not use or free it
 * afterwards).  On success *task_id_out (task_id_out may be NULL) is a new
 * string "mig-<n>" naming the migration task, to release with free(); the
 * task is "done" at once unless it runs in the background.  Inside an
 * explicit transaction the change (and its task) takes effect when that
 * transaction commits.  Errors: those of the first failed step, then
 * TS_ERR_VALIDATION (invalid schema, or rows that cannot follow a change
 * applied at once), TS_ERR_DB (the table changed since ts_update_schema,
 * or a task is already migrating it), TS_ERR_NOT_FOUND. */
TS_API int ts_su_apply(ts_schema_update *su, char **task_id_out);
/* Drop an update without applying it.  Accepts NULL. */
TS_API void ts_su_free(ts_schema_update *su);
/* The state of migration task task_id as a new object {"id", "table",
 * "state": "running" | "done" | "failed", "progressPercentage" (0..100),
 * "processed" (rows converted), "total" (rows of the table), "rowsDropped"
 * (allowLossy), "error": null or {"code", "message"}, "cleanupPending":
 * whether the replaced trees are still being freed in the background}.  Tasks stay
 * queryable after they end (stored in the database).  An unknown id:
 * TS_ERR_NOT_FOUND. */
TS_API int ts_migration_status(ts_db *db, const char *task_id, json_t **status_new);

/* Insert one record.  The primary key is generated unless the record gives
 * one.  *pk_out_new (pk_out_new may be NULL) gets the row's key.  Errors:
 * TS_ERR_VALIDATION, TS_ERR_NOT_NULL, TS_ERR_UNIQUE, TS_ERR_PRIMARY_KEY,
 * TS_ERR_FOREIGN_KEY, TS_ERR_NOT_FOUND (no such table). */
TS_API int ts_insert(ts_db *db, const char *table, const json_t *record, json_t **pk_out_new);
/* The row with primary key pk (2 and "2" alike for an integer key) as a new
 * object; TS_ERR_NOT_FOUND when absent (or expired). */
TS_API int ts_get(ts_db *db, const char *table, const json_t *pk, json_t **row_out_new);
/* Insert a record, or update the row it conflicts with: the conflict target
 * is the primary key when the record has one, else the first unique
 * constraint (fields' unique flags in field order, then unique indexes)
 * whose fields are all present.  An update merges: given fields replace,
 * others are kept; defaults apply only on insert. */
TS_API int ts_upsert(ts_db *db, const char *table, const json_t *record, json_t **pk_out_new);
/* Insert (upsert) every record of the JSON array `records`.  *report_out_new
 * (may be NULL) gets {"successKeys": [...], "failedKeys": [...], "errors":
 * [{"index", "code", "message"}]}; failedKeys holds a failed record's key,
 * or its index in the input when it has none.  Returns TS_OK when all
 * succeed, TS_PARTIAL when some failed, the first failure's code when all
 * failed.  Without allow_partial the first failure rolls the whole batch
 * back and its code is returned. */
TS_API int ts_batch_insert(ts_db *db, const char *table, const json_t *records, int allow_partial,
                           json_t **report_out_new);
TS_API int ts_batch_upsert(ts_db *db, const char *table, const json_t *records, int allow_partial,
                           json_t **report_out_new);
/* Change the fields given in `changes` of the row with primary key pk
 * (changing the key itself too).  Constraints and foreign keys are checked
 * as on insert; a key change applies the onUpdate actions of tables that
 * reference the row.  TS_ERR_NOT_FOUND when there is no such row. */
TS_API int ts_update(ts_db *db, const char *table, const json_t *pk, const json_t *changes);
/* Delete the row with primary key pk, applying the onDelete actions of the
 * tables that reference it at every level (restrict: TS_ERR_FOREIGN_KEY and
 * nothing changes).  TS_ERR_NOT_FOUND when there is no such row. */
TS_API int ts_delete(ts_db *db, const char *table, const json_t *pk);
/* Rows of the table in the current space (global tables: all rows). */
TS_API int ts_count_rows(ts_db *db, const char *table, int64_t *out);

/* ---- queries ---------------------------------------------------------
 * A query is built with chained calls and run by an executing call
 * (ts_query_exec, _count, _aggregate, _update, _delete, _stream, _explain,
 * _watch).  Builder calls never fail on their own: the first error (unknown
 * operator, bad value shape, negative limit, ...) is kept in the query and
 * returned by the next executing call, which also reports an unknown table
 * or field (TS_ERR_NOT_FOUND / TS_ERR_VALIDATION).  Every builder accepts
 * q == NULL and then returns NULL.  A query may be changed after it ran and
 * run again.  A query belongs to one thread at a time.
 *
 * Operators (case-insensitive): = != <> > >= < <= IN "NOT IN" BETWEEN LIKE
 * "NOT LIKE" IS "IS NOT".  IN / NOT IN take an array, BETWEEN [lo, hi]
 * (inclusive), IS / IS NOT JSON null; LIKE patterns use % (any run) and _
 * (one character), case-sensitive, \ escapes.  Values are coerced to the
 * field's type ("20" matches integer 20).  Nulls follow SQL: only IS / IS
 * NOT match a null field; nulls sort first ascending, last descending.
 * Fields are named "field" or "table.field" (with joins). */

typedef struct ts_query  ts_query;
typedef struct ts_cond   ts_cond;
typedef struct ts_result ts_result;
typedef struct ts_stream ts_stream;
typedef struct ts_watch  ts_watch;

/* A new query on table (never NULL for a valid db; an unknown table is
 * reported by the executing call).  Free with ts_query_free. */
TS_API ts_query *ts_query_new(ts_db *db, const char *table);
TS_API void      ts_query_free(ts_query *q);

/* AND a condition (the value is copied). */
TS_API ts_query *ts_where(ts_query *q, const char *field, const char *op, const json_t *value);
/* The next condition is ORed with what came before (AND binds tighter). */
TS_API ts_query *ts_or(ts_query *q);
/* A condition group, for nesting: built like a query, added with
 * ts_where_cond (which takes ownership) or ts_cond_add into another group. */
TS_API ts_cond  *ts_cond_new(void);
TS_API ts_cond  *ts_cond_where(ts_cond *c, const char *field, const char *op, const json_t *value);
TS_API ts_cond  *ts_cond_or(ts_cond *c);
/* Add child as one term of c (takes ownership of child). */
TS_API ts_cond  *ts_cond_add(ts_cond *c, ts_cond *child);
TS_API void      ts_cond_free(ts_cond *c);
/* AND the group c (takes ownership). */
TS_API ts_query *ts_where_cond(ts_query *q, ts_cond *c);
/* AND a predicate over the whole row (as returned, before the select
 * list): non-zero keeps the row.  It runs on the calling thread. */
TS_API ts_query *ts_where_custom(ts_query *q, int (*pred)(const json_t *row, void *ctx), void *ctx);

/* Order by field (several calls: in order of precedence). */
TS_API ts_query *ts_order_by(ts_query *q, const char *field, int desc);
/* At most n rows (default: defaultQueryLimit, 1000, for ts_query_exec only). */
TS_API ts_query *ts_limit(ts_query *q, int64_t n);
TS_API ts_query *ts_offset(ts_query *q, int64_t n);
/* Continue after (or before) the page a token came from
 * (ts_result_next_cursor / ts_result_prev_cursor); offset is then ignored. */
TS_API ts_query *ts_cursor(ts_query *q, const char *token);
/* Return only these fields: "field", "table.field" (appears as field), or
 * "... as alias". */
TS_API ts_query *ts_select(ts_query *q, const char *const *fields, size_t n);
/* Inner (left) join of table on left op right, e.g. ("posts", "users.id",
 * "=", "posts.author").  Fields of joined tables appear in rows under their
 * name, or "table.field" when the name is taken. */
TS_API ts_query *ts_join(ts_query *q, const char *table, const char *left, const char *op,
                         const char *right);
TS_API ts_query *ts_left_join(ts_query *q, const char *table, const char *left, const char *op,
                              const char *right);
/* Allow ts_query_update / ts_query_delete without conditions. */
TS_API ts_query *ts_allow_all(ts_query *q);
/* Cache this query's result for at most ttl_ms; a commit to any table it
 * read invalidates it, so a cached result is never stale. */
TS_API ts_query *ts_use_cache(ts_query *q, int64_t ttl_ms);
TS_API ts_query *ts_no_cache(ts_query *q);
/* Drop the cached results of queries of this shape. */
TS_API int       ts_query_clear_cache(ts_query *q);

/* Run the query: *out is a new result (ts_result_free). */
TS_API int  ts_query_exec(ts_query *q, ts_result **out);
TS_API size_t ts_result_count(const ts_result *r);
/* Row i (owned by r, valid until ts_result_free); NULL past the end. */
TS_API const json_t *ts_result_row(const ts_result *r, size_t i);
/* Tokens for the next / previous page, NULL when there is none or the
 * query's order cannot be resumed through an index (docs/queries.md). */
TS_API const char *ts_result_next_cursor(const ts_result *r);
TS_API const char *ts_result_prev_cursor(const ts_result *r);
TS_API void ts_result_free(ts_result *r);

/* Number of matching rows (conditions only; limit and offset ignored). */
TS_API int  ts_query_count(ts_query *q, int64_t *out);
/* fn: "sum", "avg", "min", "max" over field of the matching rows; JSON null
 * over zero rows.  *out_new is a new reference. */
TS_API int  ts_query_aggregate(ts_query *q, const char *fn, const char *field, json_t **out_new);
/* Apply changes (values or expressions, see ts_expr_*) to every matching
 * row, atomically; constraints and foreign-key actions apply.  No condition:
 * TS_ERR_VALIDATION unless ts_allow_all.  No match: TS_ERR_NOT_FOUND.
 * *affected (may be NULL): rows of the queried table changed. */
TS_API int  ts_query_update(ts_query *q, const json_t *changes, int64_t *affected);
/* Delete every matching row (onDelete actions apply), atomically.  No
 * match: TS_OK with *affected 0. */
TS_API int  ts_query_delete(ts_query *q, int64_t *affected);
/* Iterate the matching rows one by one from one snapshot, in constant
 * memory when the order is the primary key's or an index's.  Free the
 * stream before ending the thread's transaction and before ts_close. */
TS_API int  ts_query_stream(ts_query *q, ts_stream **out);
/* 1: *row_out_new is the next row (a new reference); 0: the end; < 0: error. */
TS_API int  ts_stream_next(ts_stream *s, json_t **row_out_new);
TS_API void ts_stream_free(ts_stream *s);
/* The plan the query would run with, and the pages it touched running it:
 * {"plan", "index", "table", "rowsExamined", "pagesTouched", ...}. */
TS_API int  ts_query_explain(ts_query *q, json_t **plan_new);

/* Call cb with the query's result now and after every commit that may
 * change it (coalesced), never with uncommitted data.  cb runs on a
 * watcher thread of the handle, one call at a time; it may call read
 * functions of db; r is valid during the call.  q may be freed at once. */
TS_API int  ts_query_watch(ts_query *q, void (*cb)(const ts_result *r, void *ctx), void *ctx,
                           ts_watch **out);
/* After it returns, cb never runs again.  Accepts NULL. */
TS_API int  ts_unwatch(ts_watch *w);

/* ---- vector search (docs/vectors.md) -----------------------------------
 * A "vector" field holds a fixed number of floats (vectorConfig.dimensions,
 * stored as float32, float16 or int8 per vectorConfig.precision); an index
 * of type "ngh" on it answers nearest-neighbour searches. */

/* The k rows of q's table nearest to vec (dim floats) by the vector field,
 * nearest first.  Each row is the row as ts_query_exec returns it (q's
 * select list applies) plus "_distance" (l2: Euclidean distance; cosine:
 * 1 - cosine similarity; innerProduct: minus the dot product) and "_score"
 * (l2: 1/(1+distance); cosine: the similarity; innerProduct: the dot
 * product).  q's conditions filter the candidates: exactly min(k, matching
 * rows) rows come back.  k is not capped by the default limit; q's order,
 * limit, offset and cursor are ignored; joins are not allowed.  With an ngh
 * index on field the search is approximate (ts_ef_search), else it scans
 * the matching rows exactly.  Errors: TS_ERR_NOT_FOUND (table),
 * TS_ERR_VALIDATION (field is not a vector field of the table, dim is not
 * its dimensions, vec has a NaN or infinity, joins), TS_ERR_INVALID (NULL
 * arguments, k == 0), TS_ERR_RANGE (k above 1,000,000). */
TS_API int ts_vector_search(ts_query *q, const char *field, const float *vec, size_t dim, size_t k,
                            ts_result **out);
/* The search breadth of ts_vector_search on an ngh index (the index's
 * efSearch when not set): larger is slower and finds more of the true
 * nearest rows.  ef below k is raised to k.  ef <= 0 fails the query with
 * TS_ERR_VALIDATION, ef above TS_EF_SEARCH_MAX with TS_ERR_RANGE.  Returns q. */
#define TS_EF_SEARCH_MAX 100000 /* as the ngh module's efSearch option */
TS_API ts_query *ts_ef_search(ts_query *q, int ef);
/* The distance ts_vector_search ranks by: "cosine", "l2" or "innerProduct"
 * (anything else fails the query with TS_ERR_VALIDATION).  Not set: the
 * field's ngh index's metric, or cosine when it has none.  A metric other
 * than the index's makes the search an exact scan by that metric (correct,
 * slower).  Returns q. */
TS_API ts_query *ts_vector_metric(ts_query *q, const char *metric);
/* A value for a vector field from dim floats in binary form,
 * {"$vector": "<base64 of little-endian float32>"}, which records accept
 * wherever a vector field takes a JSON array of numbers, without a JSON
 * number per element.  A new reference; NULL when out of memory, vec is
 * NULL with dim > 0, or an element is not finite. */
TS_API json_t *ts_vector_value(const float *v, size_t dim);

/* ---- expressions (atomic updates) -------------------------------------
 * Values of `changes` (ts_query_update, ts_update, ts_upsert) may be
 * expressions, evaluated inside the write against the row being changed.
 * JSON form: {"$expr": [op, args...]} (docs/expressions.md).  Each builder
 * returns a new reference and takes ownership of its json_t arguments. */
TS_API json_t *ts_expr_field(const char *name);
TS_API json_t *ts_expr_value(json_t *v);
TS_API json_t *ts_expr_add(json_t *a, json_t *b);
TS_API json_t *ts_expr_sub(json_t *a, json_t *b);
TS_API json_t *ts_expr_mul(json_t *a, json_t *b);
TS_API json_t *ts_expr_div(json_t *a, json_t *b);
TS_API json_t *ts_expr_mod(json_t *a, json_t *b);
TS_API json_t *ts_expr_neg(json_t *a);
TS_API json_t *ts_expr_min(json_t *a, json_t *b);
TS_API json_t *ts_expr_max(json_t *a, json_t *b);
TS_API json_t *ts_expr_round(json_t *a);
TS_API json_t *ts_expr_floor(json_t *a);
TS_API json_t *ts_expr_ceil(json_t *a);
TS_API json_t *ts_expr_abs(json_t *a);
TS_API json_t *ts_expr_now(void);
TS_API json_t *ts_expr_if(json_t *cond, json_t *then_, json_t *else_);
/* Conditions for ts_expr_if: op one of "=", "!=", "<", "<=", ">", ">=",
 * "and", "or" (any other op: NULL, a and b released); SQL nulls. */
TS_API json_t *ts_expr_cmp(const char *op, json_t *a, json_t *b);
TS_API json_t *ts_expr_not(json_t *a);
TS_API json_t *ts_expr_is_update(void);
TS_API json_t *ts_expr_is_insert(void);

/* ts_rekey flags */
#define TS_REKEY_NEW_DATA_KEY 0x1u /* re-encrypt every page under a fresh data key */

/* Change how the database is encrypted.  cipher_json is a "cipher" section
 * as in tostore.json ({"module": ..., "key" | "passphrase": ...}), or NULL
 * to decrypt the database to plain.
 *  - Same module, new key or passphrase: only the keyring is rewritten (the
 *    random data key is re-wrapped); instant, whatever the size.
 *  - Another module, plain <-> encrypted, or TS_REKEY_NEW_DATA_KEY: every
 *    page is re-sealed under a new data key into a new file that replaces
 *    the old one.  A crash at any point leaves either the old or the new key
 *    valid; the next open finishes or rolls back.
 * Waits for other calls on db to finish; needs no reader snapshot open.
 * progress (may be NULL) is called as pages are re-sealed. */
TS_API int ts_rekey(ts_db *db, const char *cipher_json, unsigned flags,
                    void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TOSTORE_TOSTORE_H */
