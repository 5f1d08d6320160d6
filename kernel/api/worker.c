#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include "api/worker.h"
#include "base/status.h"

struct tsapi_worker {
    pthread_mutex_t lock;
    pthread_cond_t  wake;
    pthread_t       thread;
    struct ts_db   *db;
    tsapi_work_fn   fn;
    int64_t         first_us;
    int             kicked;
    atomic_int      stop;
};

static void sleep_for(tsapi_worker *w, int64_t us)
{
    if (us < 0) {
        pthread_cond_wait(&w->wake, &w->lock);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(us / 1000000);
    ts.tv_nsec += (long)(us % 1000000) * 1000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_cond_timedwait(&w->wake, &w->lock, &ts);
}

static void *worker_main(void *arg)
{
    tsapi_worker *w = arg;
    int64_t us = w->first_us;
    pthread_mutex_lock(&w->lock);
    while (!atomic_load(&w->stop)) {
        if (!w->kicked && us != 0) {
            sleep_for(w, us);
            /* a wake-up without a kick is spurious unless a timed sleep ended */
            if (atomic_load(&w->stop) || (us < 0 && !w->kicked)) continue;
        }
        w->kicked = 0;
        pthread_mutex_unlock(&w->lock);
        us = w->fn(w->db);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int tsapi_worker_start(struct ts_db *db, tsapi_work_fn fn, int64_t first_us, tsapi_worker **out)
{
    *out = NULL;
    tsapi_worker *w = calloc(1, sizeof *w);
    if (!w) return TS_ERR_NOMEM;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    w->db = db;
    w->fn = fn;
    w->first_us = first_us;
    atomic_init(&w->stop, 0);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return TS_ERR_RESOURCE;
    }
    *out = w;
    return TS_OK;
}

void tsapi_worker_kick(tsapi_worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->kicked = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

int tsapi_worker_stopping(tsapi_worker *w) { return atomic_load(&w->stop); }

int tsapi_worker_is_self(const tsapi_worker *w) { return pthread_equal(pthread_self(), w->thread); }

void tsapi_worker_stop(tsapi_worker *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->stop, 1);
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
