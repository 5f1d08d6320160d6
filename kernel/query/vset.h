/*
 * The rows passing a vector search's conditions (kernel/query/vset.c): their
 * primary keys in a hash set and, while there are few, their vectors, so
 * a search repeating the same conditions filters candidates without
 * reading rows (and measures a small set exactly without the graph).
 * Built once by kernel/query/vector.c, then read-only: any number of
 * threads may read one at a time.
 */
#ifndef TS_QUERY_VSET_H
#define TS_QUERY_VSET_H

#include <stddef.h>
#include <stdint.h>
#include "data/value.h"

/* Vectors are kept up to this many rows (above, only the keys). */
#define TSQ_VSET_EXACT_MAX 16384
/* At most this many rows in a set. */
#define TSQ_VSET_ROWS_MAX  (4u << 20)

/* A numeric value of a column set: 16 bytes instead of a tsd_value's 56. */
typedef struct tsq_vval {
    union { int64_t i; double d; } u;
    uint8_t kind;   /* tsd_vkind: NULL, INT, BOOL or DOUBLE */
} tsq_vval;

typedef struct tsq_vset {
    size_t    n;              /* rows */
    uint32_t  dim;            /* floats per kept vector; 0: no vectors */
    uint8_t  *kb;             /* the primary keys (without the space), concatenated */
    size_t    kbl, kbcap;
    size_t   *ko;             /* n + 1 offsets into kb */
    size_t    kocap;
    float    *vec;            /* n x dim floats, NULL when dim is 0 */
    size_t    veccap;
    uint32_t *slot;           /* hash table of row + 1 (0: empty), mask + 1 slots */
    size_t    mask;
    /* a column set (every row of a table, see tsq_vector_column): row i's
     * value of one numeric column (kinds NULL, INT, BOOL, DOUBLE only) */
    tsq_vval  *val;
    size_t     valcap;
    /* a column set whose values are all integers or NULL, sorted
     * (tsq_vset_order): rows 0..norder-1 hold the integers in value order,
     * so the rows in a range are found by two binary searches and their
     * keys lie in sequence, instead of a pass over every row */
    int        ordered;
    size_t     norder;
    /* a patched set (tsq_vset_patch_init): the rows of base (a set
     * shared with others, never changed) whose bit in hidden is clear,
     * plus this set's own rows, the rows commits changed since base was
     * built; ordered (column sets) only when both parts are, with vectors
     * only while both keep them */
    struct tsq_vset *base;
    uint64_t  *hidden;
    size_t     nhidden;
    unsigned   refs;       /* holders besides the first (tsq_vset_share) */
} tsq_vset;

/* An empty set that keeps vectors of dim floats while it has at most
 * TSQ_VSET_EXACT_MAX rows (dim 0: never).  TS_OK or TS_ERR_NOMEM. */
int  tsq_vset_init(tsq_vset *s, uint32_t dim);
/* Add a row: its primary key and its vector (dim floats; ignored once the
 * set keeps none).  The caller adds each key once.  TS_OK, TS_ERR_NOMEM,
 * or TS_ERR_RESOURCE past TSQ_VSET_ROWS_MAX rows. */
int  tsq_vset_add(tsq_vset *s, const uint8_t *pk, size_t pkl, const float *v);
/* A column set: the value of the row added last (call after each add;
 * kinds NULL, INT, BOOL, DOUBLE).  TS_OK, TS_ERR_NOMEM. */
int  tsq_vset_add_value(tsq_vset *s, const tsd_value *v);
/* The same with a value as a column set keeps it (another set's). */
int  tsq_vset_add_vval(tsq_vset *s, tsq_vval v);
/* A column set (no vectors kept) after its last add, before
 * tsq_vset_seal: when every value is an integer or NULL, put its rows in
 * value order (NULLs last) (else nothing).  TS_OK, TS_ERR_NOMEM. */
int  tsq_vset_order(tsq_vset *s);
/* Of an ordered column set: the rows whose integer value is in lo..hi are
 * rows *from .. *to - 1; 0 when the set is not ordered. */
int  tsq_vset_range(const tsq_vset *s, int64_t lo, int64_t hi, size_t *from, size_t *to);
/* Rows from..to-1 of a column set as a set of their keys, sharing cs's
 * memory: read it with tsq_vset_key only, never clear it, and not past
 * cs's life. */
void tsq_vset_range_view(const tsq_vset *cs, size_t from, size_t to, tsq_vset *view);
/* After the last add: build the hash table.  TS_OK or TS_ERR_NOMEM. */
int  tsq_vset_seal(tsq_vset *s);
/* Whether a sealed set, patched or not, holds the key: 1 or 0. */
int  tsq_vset_has(const tsq_vset *s, const uint8_t *pk, size_t pkl);
/* The row of the key in a sealed set, or -1. */
long tsq_vset_find(const tsq_vset *s, const uint8_t *pk, size_t pkl);
/* Row i's key and (when kept) vector. */
const uint8_t *tsq_vset_key(const tsq_vset *s, size_t i, size_t *pkl);
const float   *tsq_vset_vec(const tsq_vset *s, size_t i);
/* A patched set s (initialised here) over old's rows: old's base when
 * old is patched, else old itself, shared (tsq_vset_share), with old's
 * hidden rows; s's own rows are for the caller to add (keys, and values
 * or vectors, which s keeps while the base does), hiding the base's rows
 * they replace (tsq_vset_hide), then (column sets) tsq_vset_order and
 * tsq_vset_seal.  TS_OK or TS_ERR_NOMEM. */
int  tsq_vset_patch_init(tsq_vset *s, tsq_vset *old);
/* Of a patched set: the base's row with key pk is gone or changed. */
void tsq_vset_hide(tsq_vset *s, const uint8_t *pk, size_t pkl);
/* Of a patched set: whether the base's row i is hidden. */
static inline int tsq_vset_hidden(const tsq_vset *s, size_t i)
{
    return (int)(s->hidden[i >> 6] >> (i & 63)) & 1;
}
/* The rows of a column set, patched or not. */
size_t tsq_vset_rows(const tsq_vset *s);
/* The row of key pk in a set, patched or not: its index in the part *in
 * (s or s->base) that holds its value or vector, or -1 when absent. */
long tsq_vset_col_find(const tsq_vset *s, const uint8_t *pk, size_t pkl, const tsq_vset **in);
/* One more holder of a malloc'd set s; each holder lets go with
 * tsq_vset_free, the last frees it. */
void tsq_vset_share(tsq_vset *s);
/* Let go of a malloc'd set (clear and free it when no other holder). */
void tsq_vset_free(tsq_vset *s);
/* The memory the set holds, in bytes. */
size_t tsq_vset_bytes(const tsq_vset *s);
/* Free what the set holds (s itself is the caller's). */
void tsq_vset_clear(tsq_vset *s);

#endif
