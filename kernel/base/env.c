/* Per-handle, per-thread error slots and the host table lent to plugins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "base/env.h"

#define TSENV_MSG_MAX 1024

struct tsenv_slot {
    int         code;
    char        msg[TSENV_MSG_MAX];
    tsenv_slot *next;
};

/* ts_errmsg(NULL) is per thread by contract, so it needs thread-local
 * storage; this is the only such state in the kernel. */
static _Thread_local tsenv_slot tls_nohandle;

int tsenv_init(ts_env *env)
{
    memset(env, 0, sizeof *env);
    /* The kernel's own libsodium calls (sodium_malloc for keys, random
     * nonces and salts) need it; idempotent and thread-safe. */
    if (sodium_init() < 0)
        return TS_ERR_RESOURCE;
    if (pthread_key_create(&env->key, NULL) != 0)
        return TS_ERR_RESOURCE;
    pthread_mutex_init(&env->lock, NULL);
    env->log_level = TS_LOG_WARN;
    return TS_OK;
}

void tsenv_destroy(ts_env *env)
{
    if (!env) return;
    tsenv_slot *s = env->slots;
    while (s) {
        tsenv_slot *n = s->next;
        free(s);
        s = n;
    }
    env->slots = NULL;
    pthread_key_delete(env->key);
    pthread_mutex_destroy(&env->lock);
}

static tsenv_slot *slot_of(ts_env *env)
{
    if (!env) return &tls_nohandle;
    tsenv_slot *s = pthread_getspecific(env->key);
    if (s) return s;
    s = calloc(1, sizeof *s);
    if (!s) return &tls_nohandle; /* out of memory: still report somewhere */
    pthread_mutex_lock(&env->lock);
    s->next = env->slots;
    env->slots = s;
    pthread_mutex_unlock(&env->lock);
    pthread_setspecific(env->key, s);
    return s;
}

int tsenv_verror(ts_env *env, int code, const char *fmt, va_list ap)
{
    tsenv_slot *s = slot_of(env);
    s->code = code;
    vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    return code;
}

int tsenv_error(ts_env *env, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsenv_verror(env, code, fmt, ap);
    va_end(ap);
    return code;
}

void tsenv_error_prefix(ts_env *env, const char *fmt, ...)
{
    tsenv_slot *s = slot_of(env);
    char old[TSENV_MSG_MAX], pre[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, s->msg, sizeof old);
    size_t pl = strlen(pre);
    if (pl + 2 >= sizeof s->msg) pl = sizeof s->msg - 3;
    memcpy(s->msg, pre, pl);
    memcpy(s->msg + pl, ": ", 2);
    size_t room = sizeof s->msg - pl - 3, ol = strlen(old);
    if (ol > room) ol = room;
    memcpy(s->msg + pl + 2, old, ol);
    s->msg[pl + 2 + ol] = '\0';
}

const char *tsenv_errmsg(ts_env *env) { return slot_of(env)->msg; }
int tsenv_errcode(ts_env *env) { return slot_of(env)->code; }

void tsenv_clear(ts_env *env)
{
    tsenv_slot *s = slot_of(env);
    s->code = TS_OK;
    s->msg[0] = '\0';
}

void tsenv_export_error(ts_env *env)
{
    tsenv_slot *s = slot_of(env);
    if (s != &tls_nohandle) {
        tls_nohandle.code = s->code;
        memcpy(tls_nohandle.msg, s->msg, sizeof s->msg);
    }
}

void tsenv_vlog(ts_env *env, int level, const char *fmt, va_list ap)
{
    int max = env ? env->log_level : TS_LOG_WARN;
    if (level > max) return;
    char msg[TSENV_MSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (env && env->log_fn)
        env->log_fn(env->log_ctx, level, msg);
    else
        fprintf(stderr, "tostore: %s\n", msg);
}

void tsenv_log(ts_env *env, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsenv_vlog(env, level, fmt, ap);
    va_end(ap);
}

