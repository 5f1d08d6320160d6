/*
 * Running a query: what a query says (tsq_spec, built by the public
 * builders), and an executor that yields its rows in order, one at a time,
 * with joins, filtering, sorting, offset, limit and cursor pages.
 */
#ifndef TS_QUERY_EXEC_H
#define TS_QUERY_EXEC_H

#include "query/query.h"
#include "query/vset.h"

typedef struct tsq_order { char *field; int desc; } tsq_order;
typedef struct tsq_join { char *table, *left, *right; int op; int left_join; } tsq_join;
typedef struct tsq_sel { char *field, *alias; } tsq_sel;

typedef struct tsq_spec {
    char      *table;
    ts_cond    cond;
    tsq_order *order;
    size_t     norder;
    int64_t    limit, offset;
    int        has_limit;
    char      *cursor;
    tsq_sel   *sel;
    size_t     nsel;
    tsq_join  *joins;
    size_t     njoins;
} tsq_spec;

/* Executor modes */
#define TSQ_MODE_ROWS   0  /* ts_query_exec: default limit, offset, cursors */
#define TSQ_MODE_STREAM 1  /* an explicit limit and offset only */
#define TSQ_MODE_ALL    2  /* every matching row (count, aggregates, update, delete) */

typedef struct tsq_exec tsq_exec;

/* Compile and plan spec on the tables as tx sees them (space: the handle's
 * current one).  Errors: TS_ERR_NOT_FOUND (table), TS_ERR_VALIDATION. */
int  tsq_exec_open(ts_env *env, tstbl_map *m, tstx *tx, uint64_t space, const tsq_spec *q,
                   int mode, int64_t default_limit, tsq_exec **out);
/* 1: *rs is the next row (valid until the next call), *pk its source-0
 * primary key; 0: done; < 0: error. */
int  tsq_exec_next(tsq_exec *e, const tsq_rowset **rs, const uint8_t **pk, size_t *pkl);
/* The row as returned to users (select list applied): a new object. */
int  tsq_exec_row_json(tsq_exec *e, const tsq_rowset *rs, json_t **out);
/* After the last row (ROWS mode): new tokens for the pages after and
 * before this one, NULL when none. */
int  tsq_exec_cursors(tsq_exec *e, char **next, char **prev);
/* Plan and counters, added to o. */
void tsq_exec_explain(tsq_exec *e, json_t *o);
/* Count without reading rows when the plan's index bounds are exactly the
 * conditions; TS_ERR_UNSUPPORTED when they are not (count the rows). */
int  tsq_exec_count_fast(tsq_exec *e, int64_t *out);
/* Under the same terms, the matching rows' primary keys (without the
 * space) to each(ctx, pk, pkl) without reading rows; each returning
 * non-zero stops the walk with that status.  TS_ERR_UNSUPPORTED (nothing
 * walked) when the bounds are not exactly the conditions.  Consumes the
 * executor's rows like tsq_exec_count_fast. */
int  tsq_exec_keys_fast(tsq_exec *e, int (*each)(void *ctx, const uint8_t *pk, size_t pkl), void *ctx);
/* The compiled context (column lookups for aggregates). */
tsq_ctx *tsq_exec_ctx(tsq_exec *e);
/* Whether the query has conditions. */
int  tsq_exec_has_cond(const tsq_exec *e);
/* The compiled conditions (an OR of AND-runs of terms). */
const tsq_cgroup *tsq_exec_conds(const tsq_exec *e);
/* The row as returned when the select list names only source 0's primary
 * key (whose value is pk), without reading it; TS_ERR_UNSUPPORTED when the
 * select list names anything else (or nothing: every field). */
int  tsq_exec_pk_row_json(tsq_exec *e, const json_t *pk, json_t **out);
/* Whether the rows e returns show a vector field of source src (no select
 * list, or one naming such a field). */
int  tsq_exec_shows_vectors(const tsq_exec *e, int src);
/* Whether the plan reads only part of the table (its conditions use the
 * primary key or an index). */
int  tsq_exec_narrow(const tsq_exec *e);
/* Whether a rowset (of the query's sources) passes its conditions: 1 yes,
 * 0 no, < 0 error. */
int  tsq_exec_match(tsq_exec *e, const tsq_rowset *rs);
/* The k rows of source 0 nearest to vec by vector field `field`, nearest
 * first, appended to rows as ts_vector_search returns them (ef: the
 * search breadth, 0 for the index's; metric: a TSQ_METRIC_*, or -1 for
 * the index's, cosine without one).  Through the field's ngh index when it
 * has one of that metric, else an exact scan of the matching rows.  e is
 * open in TSQ_MODE_ALL.
 * Sets (query/vset.h; only for queries with conditions on tables without
 * a TTL, else ignored): set, when not NULL, is the rows passing the
 * conditions in e's snapshot for this field (built by an earlier call):
 * measured exactly when it keeps vectors, else the index's filter is a
 * lookup in it.  built, when not NULL (and set NULL): the search scans
 * the plan exactly and hands the passing rows to *built as a new set
 * (malloc'd, the caller's; NULL when none was built), or fails with
 * TS_ERR_RESOURCE (nothing appended) when more pass than a set holds:
 * then run it again on a new executor without built.  colset, when not
 * NULL (and set NULL): a column set of e's table and snapshot for the
 * column tsq_vector_column named (tsq_vector_column_build): the conditions
 * are evaluated on its values instead of reading rows (on a plan an index
 * narrows, only for an integer range, which the set answers by binary
 * search).  *wide, when wide is not NULL: when a plan an index narrows
 * let through thousands of rows (more than 4 max(1024, 20k)) and the
 * conditions are an integer range (a column set in value order would have
 * served without walking them), how many (as many as were walked or
 * scanned before the plan gave up, when more pass), else 0. */
int  tsq_vector_search(tsq_exec *e, const char *field, const float *vec, size_t dim, size_t k,
                       int ef, int metric, const tsq_vset *set, tsq_vset **built,
                       const tsq_vset *colset, uint64_t *wide, json_t *rows);
#define TSQ_METRIC_COSINE 0
#define TSQ_METRIC_L2     1
#define TSQ_METRIC_IP     2
/* The TSQ_METRIC_* named "cosine", "l2" or "innerProduct"; -1 for any other. */
int  tsq_vector_metric(const char *name);
/* Whether e's conditions can be evaluated on one column's cached values
 * (an AND of comparisons, IN / NOT IN, BETWEEN and null tests of one
 * column of a table without a TTL): 1 with *col set and *narrowed whether
 * an index narrows the plan (then its entries answer the conditions, and
 * a column set serves only searches that tsq_vector_search found wide),
 * else 0. */
int  tsq_vector_column(tsq_exec *e, size_t *col, int *narrowed);
/* A column set: every row of e's table in e's space and snapshot, its key
 * and its value of column col (*out malloc'd, the caller's).
 * TS_ERR_UNSUPPORTED when a value is not a number, boolean or null;
 * TS_ERR_RESOURCE past TSQ_VSET_ROWS_MAX rows. */
int  tsq_vector_column_build(tsq_exec *e, size_t col, tsq_vset **out);
/* tsq_vector_column_build from old, a column set of col at an earlier
 * version of the table, and the keys of the rows commits changed since
 * (tstbl_changes): old's rows are shared and only the changed rows read
 * (*out malloc'd, tsq_vset_free).  TS_ERR_RESOURCE when the changes since
 * old's base was built pass max(4096, a sixteenth of its rows): build it
 * again,
 * TS_ERR_UNSUPPORTED as tsq_vector_column_build. */
int  tsq_vector_column_patch(tsq_exec *e, size_t col, tsq_vset *old, const tstbl_keys *chg, tsq_vset **out);
/* The set of the rows passing e's conditions (with their vectors of
 * field while it keeps them, as tsq_vector_search builds it) from old,
 * that set at an earlier version of the table, and the keys of the rows
 * commits changed since (tstbl_changes): a patched set sharing old's
 * rows, the changed ones read and tested again (*out malloc'd,
 * tsq_vset_free).  TS_ERR_RESOURCE when the changes since old's base was
 * built pass max(4096, a sixteenth of its rows), or it kept no vectors
 * (too many rows) and few enough rows pass now to keep them: build it
 * again. */
int  tsq_vector_set_patch(tsq_exec *e, const char *field, tsq_vset *old, const tstbl_keys *chg,
                          tsq_vset **out);
/* Names of the tables the query reads (for the cache and watchers). */
void tsq_exec_close(tsq_exec *e);

/* The shape of a query for cursors and cache keys. */
uint64_t tsq_shape_hash(const tsq_spec *q, int with_limits);

#endif
