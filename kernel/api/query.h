/* Queries inside the API layer: the query object, results, the result
 * cache and watchers (api/query.c, api/watch.c). */
#ifndef TS_API_QUERY_H
#define TS_API_QUERY_H

#include "api/db.h"
#include "query/exec.h"

struct ts_query {
    ts_db    *db;
    tsq_spec  s;
    int       err;          /* first builder error outside the conditions */
    char      errmsg[256];
    int       allow_all;
    int64_t   cache_ttl;    /* > 0: ts_use_cache */
    int       ef_search;    /* > 0: ts_ef_search */
    int       vmetric;      /* TSQ_METRIC_* + 1 (ts_vector_metric); 0: not set */
};

/* Run q in tx (ROWS mode) into a new result. */
int  tsapi_query_rows(ts_query *q, tstx *tx, ts_result **out);
/* A deep copy of a result; NULL when out of memory. */
ts_result *tsapi_result_copy(const ts_result *r);
/* ts_query_exec through the cache when q uses it. */
int  tsapi_cache_get(ts_query *q, tstx *tx, ts_result **out);
/* A deep copy of a query spec. */
int  tsapi_spec_copy(const tsq_spec *from, tsq_spec *to);
void tsapi_spec_clear(tsq_spec *s);

/* After a commit that changed tables: wake the watchers. */
void tsapi_watch_notify(ts_db *db);
/* Stop the watcher thread and free everything (ts_close). */
void tsapi_watch_close(ts_db *db);
void tsapi_cache_close(ts_db *db);

/* ---- sets of rows passing vector search conditions (api/vcache.c) ---- */

/* A search's hold on a cached set (set NULL: none). */
typedef struct tsapi_vref { const tsq_vset *set; void *entry; } tsapi_vref;
#define TSAPI_VC_NONE  0   /* no set: search as usual */
#define TSAPI_VC_HIT   1   /* ref->set holds: release it after the search */
#define TSAPI_VC_BUILD 2   /* seen before: build the set and tsapi_vcache_put it */
#define TSAPI_VC_PATCH 3   /* patch the earlier version's column set and put it (tsapi_vcache_column) */
/* A column set of an earlier version to patch: a holder's share
 * (tsq_vset_free it) and that version. */
typedef struct tsapi_vpatch { tsq_vset *old; uint64_t from; } tsapi_vpatch;
/* The cache key of q's conditions for field (malloc'd), or NULL when q
 * cannot use the cache (no conditions, joins, custom predicates). */
char *tsapi_vcache_key(const ts_query *q, const char *field);
/* Look key up for the space the search reads and tag: the table's number,
 * the commit that created the definition the search uses (tstbl.created)
 * and the table's version read before the call's snapshot; one of
 * TSAPI_VC_*.  With patch, also TSAPI_VC_PATCH: an earlier version of the
 * same definition had a set (*patch holds it); patch it with the rows
 * changed since and put it, or tsapi_vcache_unpatch. */
int  tsapi_vcache_lookup(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3],
                         tsapi_vref *ref, tsapi_vpatch *patch);
/* tsapi_vcache_lookup for a column set, which may also be TSAPI_VC_PATCH:
 * an earlier version of the same table definition had one (*patch holds
 * it); patch it with the rows changed since (tstbl_changes) and put it
 * (or, when that cannot be done, build one).  Until then other searches
 * at this version get TSAPI_VC_NONE.  For a plan an index narrows
 * (narrowed) a key not seen is not remembered (a search that may not need
 * a set leaves no entry behind; an entry of an earlier version that built
 * a set is kept for its size), and TSAPI_VC_BUILD at a later version
 * waits for the walks tsapi_vcache_wide counts. */
int  tsapi_vcache_column(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3], int narrowed,
                         tsapi_vref *ref, tsapi_vpatch *patch);
/* After TSAPI_VC_PATCH when no patch can be made: the entry becomes one
 * seen once, as if there had been nothing to patch. */
void tsapi_vcache_unpatch(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3]);
/* After a search on a plan an index narrows that walked `walked` rows
 * passing an integer range (key a column set's): remembered like a
 * lookup, and TSAPI_VC_BUILD when a column set is due: at the second such
 * search ever, and, once one was built, at a later version only when the
 * rows such searches walked at that version reach the rows that set had.
 * A build reads every row and the next commit throws it away, so a table
 * written between searches pays one only when the searches of a version
 * would have walked as much (rent or buy: at most about twice the cost of
 * knowing the future).  TSAPI_VC_HIT (a set is there) or TSAPI_VC_NONE
 * otherwise; it never leaves a reference. */
int  tsapi_vcache_wide(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3], uint64_t walked);
/* The sets held, their bytes, the lookups that found one, the column sets
 * built from every row, and the sets patched, since open. */
void tsapi_vcache_stats(ts_db *db, uint64_t *sets, uint64_t *bytes, uint64_t *hits, uint64_t *builds,
                        uint64_t *patches);
/* Hand a set built after TSAPI_VC_BUILD (for the same space and tag) to
 * the cache (NULL: too many rows pass, do not try again at this tag); it
 * takes set in every case. */
void tsapi_vcache_put(ts_db *db, const char *key, uint64_t space, const uint64_t tag[3], tsq_vset *set);
void tsapi_vcache_release(ts_db *db, tsapi_vref *ref);
/* Free everything (ts_close). */
void tsapi_vcache_close(ts_db *db);

#endif
