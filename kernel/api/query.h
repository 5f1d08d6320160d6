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

#endif
