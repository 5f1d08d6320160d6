/*
 * The query engine: conditions as built (ts_cond, raw names and values),
 * compiled against the tables of a query (columns resolved, values coerced
 * and decoded), a planner that picks an access path through the primary
 * store or an index, and scans that produce candidate rows for the
 * executor.  docs/queries.md describes plans, ordering and cursors.
 */
#ifndef TS_QUERY_QUERY_H
#define TS_QUERY_QUERY_H

#include <tostore/tostore.h>
#include "table/rows.h"

enum tsq_op {
    TSQ_EQ, TSQ_NE, TSQ_GT, TSQ_GE, TSQ_LT, TSQ_LE, TSQ_IN, TSQ_NOT_IN, TSQ_BETWEEN,
    TSQ_LIKE, TSQ_NOT_LIKE, TSQ_IS, TSQ_IS_NOT
};

enum tsq_kind { TSQ_LEAF, TSQ_GROUP, TSQ_CUSTOM };

/* ---- conditions as built --------------------------------------------- */

typedef struct tsq_term {
    int       kind;
    int       or_before;  /* ORed with the terms before it */
    char     *field;      /* leaf */
    int       op;
    json_t   *value;
    ts_cond  *group;      /* group (owned) */
    int     (*pred)(const json_t *row, void *ctx);
    void     *ctx;
} tsq_term;

struct ts_cond {
    tsq_term *t;
    size_t    n, cap;
    int       pending_or;
    int       err;            /* first builder error */
    char      errmsg[256];
};

/* Parse an operator name (case-insensitive); -1 when unknown. */
int  tsq_op_parse(const char *op);
const char *tsq_op_name(int op);
/* Append a leaf (checks the operator and the value's shape, recording
 * the first error in c). */
void tsq_cond_leaf(ts_cond *c, const char *field, const char *op, const json_t *value);
void tsq_cond_group(ts_cond *c, ts_cond *child);
void tsq_cond_custom(ts_cond *c, int (*pred)(const json_t *, void *), void *ctx);
void tsq_cond_clear(ts_cond *c);
/* The raw conditions as JSON (for cursor shapes and cache keys). */
json_t *tsq_cond_json(const ts_cond *c);
/* Whether c or a group in it has a custom predicate. */
int  tsq_cond_has_custom(const ts_cond *c);

/* ---- sources and compiled conditions -------------------------------- */

#define TSQ_SOURCES_MAX 9

/* Rows of the query's sources for one result row: [0] the queried table,
 * then the joined ones (row NULL: no match in a left join). */
typedef struct tsq_rowset {
    const uint8_t *row[TSQ_SOURCES_MAX];
    size_t         len[TSQ_SOURCES_MAX];
} tsq_rowset;

typedef struct tsq_src {
    tstbl      *t;
    uint64_t    space;
} tsq_src;

typedef struct tsq_cterm tsq_cterm;
typedef struct tsq_cgroup {
    tsq_cterm *t;
    size_t     n;
} tsq_cgroup;

struct tsq_cterm {
    int              kind, or_before, op;
    int              src;
    size_t           col;
    const tsd_field *f;
    json_t          *coerced;      /* owns what v / set borrow */
    tsd_value        v, v2;        /* value; BETWEEN's hi */
    tsd_value       *set;          /* IN / NOT IN */
    size_t           nset;
    tsq_cgroup       g;
    int            (*pred)(const json_t *row, void *ctx);
    void            *ctx;
};
/* Whether a value of leaf ct's column passes it: 1 or 0. */
int tsq_leaf_value(const tsq_cterm *ct, const tsd_value *v);


/* A compiled query context: sources and resolved names. */
typedef struct tsq_ctx {
    ts_env   *env;
    tsw      *w;                  /* its tx and space */
    tsq_src   src[TSQ_SOURCES_MAX];
    size_t    nsrc;
    /* row JSON for custom predicates, built once per rowset */
    json_t   *row_json;
    int     (*row_json_fn)(struct tsq_ctx *, const tsq_rowset *, json_t **);
} tsq_ctx;

/* Resolve "field" or "table.field" to (source, column). */
int  tsq_resolve(tsq_ctx *x, const char *name, int *src, size_t *col);
int  tsq_compile(tsq_ctx *x, const ts_cond *c, tsq_cgroup *out);
void tsq_cgroup_free(tsq_cgroup *g);
/* 1 when the rowset matches, 0 when not, < 0 on error. */
int  tsq_eval(tsq_ctx *x, const tsq_cgroup *g, const tsq_rowset *rs);
/* LIKE over UTF-8 text. */
int  tsq_like(const char *s, size_t n, const char *p, size_t pn);

/* ---- plans and scans ------------------------------------------------- */

enum tsq_access { TSQ_FULL, TSQ_PK_KEYS, TSQ_PK_RANGE, TSQ_IX_KEYS, TSQ_IX_RANGE, TSQ_UNION };

typedef struct tsq_keys {
    uint8_t **k;
    size_t   *kl;
    size_t    n;
} tsq_keys;

typedef struct tsq_plan {
    int       src;           /* the source it reads (0: the queried table; joins: theirs) */
    int       access;
    long      ix;            /* index number (IX_*) */
    tsq_keys  keys;          /* PK_KEYS: pk keys; IX_KEYS: full or prefix index keys */
    int       exact;         /* IX_KEYS: keys are whole keys (hash); else prefixes */
    /* ranges: every key starts with prefix; bounds compared on their length */
    uint8_t   prefix[TSROW_KEY_CAP], lo[TSROW_KEY_CAP], hi[TSROW_KEY_CAP];
    size_t    prefix_len, lo_len, hi_len;
    int       lo_incl, hi_incl;
    int       reverse;       /* scan from the high end */
    long      order_col;     /* output ordered by this column of source 0 (0: pk), -1: none */
    int       pk_ordered;    /* within equal order_col values, by pk */
    struct tsq_plan *sub;    /* UNION branches */
    size_t    nsub;
    char      desc[160];     /* for explain */
} tsq_plan;

/* The order the caller wants: the first ORDER BY term on source 0, or the
 * primary key when none. */
typedef struct tsq_want {
    long col;    /* -1: any order will do (the caller sorts) */
    int  desc;
    int  has_limit;
} tsq_want;

int  tsq_plan_make(tsq_ctx *x, const tsq_cgroup *g, const tsq_want *want, tsq_plan *p);
/* The best plan for one AND-run of leaves over source src; *cost its estimate. */
int  tsq_plan_run(tsq_ctx *x, int src, const tsq_cterm *run, size_t n, tsq_plan *p, double *cost);
void tsq_plan_free(tsq_plan *p);

/* A scan over the plan's candidate rows of source 0, in its order. */
typedef struct tsq_scan tsq_scan;
/* Start after (or before, with reverse plans) a position: the pk key and,
 * for index scans, the index key of the row a cursor stopped at. */
typedef struct tsq_pos {
    const uint8_t *ikey, *pk;
    size_t         ikl, pkl;
} tsq_pos;
int  tsq_scan_open(tsq_ctx *x, const tsq_plan *p, const tsq_pos *after, tsq_scan **out);
/* 1: *row / *pk (valid until the next call) is a candidate; 0: done. */
int  tsq_scan_next(tsq_scan *s, const uint8_t **row, size_t *len, const uint8_t **pk, size_t *pkl,
                   const uint8_t **ikey, size_t *ikl);
void tsq_scan_close(tsq_scan *s);
/* Count the entries of an IX_KEYS / IX_RANGE / PK_RANGE / FULL scan
 * without reading rows. */
int  tsq_scan_count(tsq_scan *s, int64_t *n);
/* The same entries' primary keys (without the space), to each(ctx, pk,
 * pkl) in scan order, without reading rows; each returning non-zero stops
 * the walk with that status. */
int  tsq_scan_keys(tsq_scan *s, int (*each)(void *ctx, const uint8_t *pk, size_t pkl), void *ctx);

#endif
