/*
 * Write statements on tables: insert, update, delete and upsert of one
 * record, with validation, key generation, foreign-key checks and actions,
 * and TTL.  Each runs inside the caller's tsw; on failure the caller undoes
 * to its mark (tsw_undo_to) so a failed statement changes nothing.
 */
#ifndef TS_TABLE_WRITE_H
#define TS_TABLE_WRITE_H

#include "table/rows.h"

/* Insert rec; *pk_new (pk_new may be NULL) gets the stored key. */
int tswrite_insert(tsw *w, tstbl *t, const json_t *rec, json_t **pk_new);
/* Merge `changes` into the row with pk key pk (NOT_FOUND when absent). */
int tswrite_update(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl,
                   const json_t *changes);
/* Delete the row with pk key pk and apply onDelete actions (NOT_FOUND when absent). */
int tswrite_delete(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl);
/* Insert, or update the row rec conflicts with (see ts_upsert). */
int tswrite_upsert(tsw *w, tstbl *t, const json_t *rec, json_t **pk_new);
/* Delete every row of t in the current space: without foreign-key actions
 * when no table references t, else row by row as tswrite_delete. */
int tswrite_clear(tsw *w, tstbl *t);
/* Delete the rows of every space-local table in space (a deleted space). */
int tswrite_purge_space(tsw *w, uint64_t space);

/* ---- foreign keys (fk.c) ---- */

/* Every foreign key of t whose fields are all non-null in row must find its
 * parent row: TS_ERR_FOREIGN_KEY otherwise. */
int tsfk_check(tsw *w, tstbl *t, uint64_t space, const uint8_t *row, size_t len);
/* The row old of parent table t was deleted (new_row NULL) or replaced by
 * new_row: apply the onDelete / onUpdate actions of every referencing
 * foreign key whose referenced values changed. */
int tsfk_parent_changed(tsw *w, tstbl *t, uint64_t space, const uint8_t *old, size_t old_len,
                        const uint8_t *new_row, size_t new_len);
/* Whether any table's foreign key references t. */
int tsfk_referenced(tsw *w, const tstbl *t);

#endif
