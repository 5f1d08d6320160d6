/*
 * The kernel context (ts_env of tostore/plugin.h): where errors of one
 * handle go, per calling thread, and what a plugin may look up.  Every
 * database handle owns one; plugin callbacks receive it.
 */
#ifndef TS_BASE_ENV_H
#define TS_BASE_ENV_H

#include <pthread.h>
#include <tostore/plugin.h>

struct tsreg;
typedef struct tsenv_slot tsenv_slot;

typedef void (*tsenv_log_fn)(void *ctx, int level, const char *msg);

struct ts_env {
    pthread_key_t   key;        /* this thread's tsenv_slot for this handle */
    pthread_mutex_t lock;       /* guards slots */
    tsenv_slot     *slots;      /* every slot ever made, freed at destroy */
    struct tsreg   *reg;        /* modules visible to host->module_find; may be NULL */
    const void     *config;     /* json_t * root config, for host option lookups */
    tsenv_log_fn    log_fn;     /* NULL: warnings and errors to stderr */
    void           *log_ctx;
    int             log_level;  /* highest level passed on */
};

int  tsenv_init(ts_env *env);
void tsenv_destroy(ts_env *env);

/* Record code and message for the calling thread on env (env NULL: the
 * thread's no-handle slot, read by ts_errmsg(NULL)); returns code. */
int  tsenv_error(ts_env *env, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
int  tsenv_verror(ts_env *env, int code, const char *fmt, va_list ap);
/* Prefix the current message with "prefix: ". */
void tsenv_error_prefix(ts_env *env, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
const char *tsenv_errmsg(ts_env *env);
int  tsenv_errcode(ts_env *env);
void tsenv_clear(ts_env *env);
/* Copy env's current error of this thread to the no-handle slot. */
void tsenv_export_error(ts_env *env);

void tsenv_log(ts_env *env, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

void tsenv_vlog(ts_env *env, int level, const char *fmt, va_list ap);

/* The host table handed to plugins (constant; shared by all contexts;
 * defined in host/host.c). */
const ts_host *tsenv_host(void);

#endif
