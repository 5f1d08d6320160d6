/*
 * Rows of a table: the primary store, index entries, TTL entries and row
 * counts kept in step, plus a row-level undo log that makes one statement
 * atomic inside a longer transaction (the page-level rollback of the kernel
 * undoes whole transactions only).
 *
 * A row's primary-key key ("pk key") is the memcomparable encoding of its
 * key value alone; stored keys put the space id in front.
 */
#ifndef TS_TABLE_ROWS_H
#define TS_TABLE_ROWS_H

#include "table/table.h"

#define TSROW_KEY_CAP (TS_INDEX_KEY_MAX + 64)

typedef struct tsrow_undo tsrow_undo;

/* A write statement in progress. */
typedef struct tsw {
    tstbl_map  *m;
    ts_env     *env;
    tstx       *tx;
    uint64_t    space;    /* the handle's current space */
    int64_t     now;      /* ms, for defaults and TTL */
    int         undo_on;  /* record undo entries */
    tsrow_undo *undo;
    size_t      nundo, capundo;
    int         depth;    /* foreign-key action nesting */
} tsw;

/* A stored row as read: row/len point into mem (free it with tsrow_done). */
typedef struct tsrow {
    void          *mem;
    const uint8_t *row;
    size_t         len;
    int64_t        expires;  /* TTL tables: ms; else 0 */
} tsrow;

void tsw_init(tsw *w, tstbl_map *m, tstx *tx, uint64_t space, int undo_on);
/* Undo every change recorded after mark (newest first); the undo entries
 * are dropped.  Returns the first failure (the caller must then give up the
 * transaction). */
int  tsw_undo_to(tsw *w, size_t mark);
/* Append the undo entries of `from` to `to` (which takes them over; `from`
 * is left empty): a savepoint keeps the undo of the statements after it. */
int  tsw_move(tsw *to, tsw *from);
/* Drop the undo entries after mark without applying them (that part of the
 * statement is final). */
void tsw_forget(tsw *w, size_t mark);
/* Release the undo log. */
void tsw_done(tsw *w);

/* Space the rows of t live in. */
static inline uint64_t tsrow_space(const tstbl *t, uint64_t cur) { return t->def->is_global ? 0 : cur; }
int64_t tsrow_now_ms(void);

/* The pk key of a primary-key value given by a caller (coerced to the key's
 * type: 2 and "2" alike for integer keys). */
int  tsrow_pk_key(tsw *w, const tstbl *t, const json_t *pk, uint8_t *key, size_t *len);

/* Read the row with pk key pk in space.  NOT_FOUND when absent or, with
 * live, expired.  No message is recorded for NOT_FOUND. */
int  tsrow_read(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl, int live, tsrow *out);
/* tsrow_read, putting back the vectors an index keeps (tsd_row_has_refs)
 * only with fill: a caller that reads no vector column passes 0. */
int  tsrow_read_fill(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl, int live,
                     int fill, tsrow *out);
void tsrow_done(tsrow *r);
/* A row as stored in t's primary tree under key (space prefix and primary
 * key) made whole: when it left vectors to a vector index
 * (tsd_row_has_refs), they are read back from the index into buf and
 * *row / *len point there; else nothing changes.  TS_ERR_CORRUPT when the
 * index has no vector for the row. */
int  tsrow_fill(ts_env *env, tstx *tx, const tstbl *t, const uint8_t *key, size_t kl,
                const uint8_t **row, size_t *len, tsd_buf *buf);
/* Store every row of t (all spaces) that leaves vectors to an index whole
 * again: before a vector index such rows refer to is dropped. */
int  tsrow_unstrip_all(tsw *w, tstbl *t);
/* tsrow_fill for a row of space whose key is its own primary key. */
int  tsrow_fill_own(tsw *w, const tstbl *t, uint64_t space, const uint8_t **row, size_t *len,
                    tsd_buf *buf);

/* Store a new row (encoded; expires for TTL tables) with its index and TTL
 * entries.  TS_ERR_PRIMARY_KEY / TS_ERR_UNIQUE (message naming the field)
 * change nothing. */
int  tsrow_put(tsw *w, tstbl *t, uint64_t space, const uint8_t *row, size_t len, int64_t expires);
/* Remove the row with pk key pk (NOT_FOUND when absent). */
int  tsrow_del(tsw *w, tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl);
/* Replace the stored row old (as tsrow_read gave it) by row: only the
 * index entries that differ are rewritten.  A changed primary key is a
 * delete plus a put.  TS_ERR_UNIQUE (a new entry clashes) changes nothing;
 * other failures leave the transaction to be given up. */
int  tsrow_replace(tsw *w, tstbl *t, uint64_t space, const tsrow *old, const uint8_t *row,
                   size_t len, int64_t expires);
/* The pk key of an encoded row. */
int  tsrow_row_pk(tsw *w, const tstbl *t, const uint8_t *row, size_t len, uint8_t *key, size_t *kl);

/* When the row of a TTL table expires (its source field, else now). */
int  tsrow_expiry(tsw *w, const tstbl *t, const uint8_t *row, size_t len, int64_t *expires);
/* Delete up to max expired rows of t in space (oldest first); *n_out (may
 * be NULL) gets how many. */
int  tsrow_purge_expired(tsw *w, tstbl *t, uint64_t space, int max, int *n_out);
/* Delete every row of t in space, without foreign-key actions or undo. */
int  tsrow_clear(tsw *w, tstbl *t, uint64_t space);

#endif
