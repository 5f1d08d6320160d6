/*
 * A background thread of a database handle: the TTL purger, the schema
 * migrator and the live-query watcher each run one.  The thread sleeps,
 * runs its function, and sleeps again for as long as the function asks,
 * until kicked or stopped.
 */
#ifndef TS_API_WORKER_H
#define TS_API_WORKER_H

#include <stdint.h>

struct ts_db;
typedef struct tsapi_worker tsapi_worker;

/* One run.  Returns how long to sleep before the next run, in
 * microseconds; negative: until kicked. */
typedef int64_t (*tsapi_work_fn)(struct ts_db *db);

/* Start a thread that first sleeps first_us (negative: until kicked), then
 * runs fn(db) as above.  TS_ERR_NOMEM or TS_ERR_RESOURCE when no thread can
 * be started; *out is then NULL. */
int  tsapi_worker_start(struct ts_db *db, tsapi_work_fn fn, int64_t first_us,
                        tsapi_worker **out);
/* Run fn as soon as possible: now if the thread sleeps, else once more
 * right after the current run. */
void tsapi_worker_kick(tsapi_worker *w);
/* 1 once tsapi_worker_stop has been called (for long runs to give up). */
int  tsapi_worker_stopping(tsapi_worker *w);
/* 1 when called on the worker's own thread. */
int  tsapi_worker_is_self(const tsapi_worker *w);
/* Stop the thread, wait for the current run to end, free.  NULL accepted.
 * Not from the worker's own thread. */
void tsapi_worker_stop(tsapi_worker *w);

#endif
