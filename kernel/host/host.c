/*
 * The host table lent to plugins: memory, errors, logging, randomness,
 * options, module lookup, block arenas and, for index modules, the page API
 * of the transaction manager.  It sits above every kernel subsystem it
 * exposes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sodium.h>
#include <tostore/index.h>
#include "base/env.h"
#include "config/opts.h"
#include "pager/frames.h"
#include "plugin/registry.h"
#include "txn/pager.h"

/* ---- page API (ts_txn is a tstx, ts_page a tspage) ---------------- */

static uint32_t pa_usable(ts_txn *t) { return tstx_usable((tstx *)t); }
static int pa_get(ts_txn *t, uint64_t pgno, int mode, ts_page **out)
{
    return tstx_get_ref((tstx *)t, pgno, mode == TS_PAGE_WRITE, (tspage **)out);
}
static int pa_alloc(ts_txn *t, ts_page **out, uint64_t *pgno)
{
    return tstx_alloc((tstx *)t, (tspage **)out, pgno);
}
static int pa_free(ts_txn *t, uint64_t pgno) { return tstx_free((tstx *)t, pgno); }
static void *pa_data(ts_page *p) { return tspage_data((tspage *)p); }
static uint64_t pa_pgno(ts_page *p) { return tspage_no((tspage *)p); }
static void pa_release(ts_page *p) { tspage_release((tspage *)p); }
static int pa_hold(ts_page *p, void **out)
{
    *out = tspage_hold((tspage *)p);
    return TS_OK;
}
static void pa_unhold(void *h) { tspage_unhold(h); }
static int pa_hold_data(const void *d, void **out)
{
    *out = tspage_hold_data(d);
    return TS_OK;
}
static int pa_writable(ts_txn *t) { return tstx_is_write((tstx *)t); }

static int pa_prefetch(ts_txn *t, uint64_t pgno) { return tstx_prefetch((tstx *)t, pgno); }

static const ts_page_api page_api = {
    .struct_size = sizeof(ts_page_api),
    .usable_size = pa_usable,
    .get = pa_get,
    .alloc = pa_alloc,
    .free = pa_free,
    .data = pa_data,
    .pgno = pa_pgno,
    .release = pa_release,
    .writable = pa_writable,
    .hold = pa_hold,
    .unhold = pa_unhold,
    .hold_data = pa_hold_data,
    .prefetch = pa_prefetch,
};


static void *host_alloc(size_t n) { return malloc(n ? n : 1); }
static void *host_calloc(size_t c, size_t n) { return calloc(c ? c : 1, n ? n : 1); }
static void *host_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }
static void host_free(void *p) { free(p); }
static void host_wipe(void *p, size_t n) { if (p) sodium_memzero(p, n); }

static int host_random(ts_env *env, void *buf, size_t n)
{
    (void)env;
    randombytes_buf(buf, n);
    return TS_OK;
}

static int host_module_find(ts_env *env, uint32_t kind, const char *name,
                            const ts_module **out, void **state)
{
    if (!env || !name || !out)
        return tsenv_error(env, TS_ERR_INVALID, "module_find: NULL argument");
    if (!env->reg)
        return tsenv_error(env, TS_ERR_NOT_FOUND, "no module registry in this context");
    return tsreg_find(env->reg, kind, name, out, state);
}

static void host_log(ts_env *env, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tsenv_vlog(env, level, fmt, ap);
    va_end(ap);
}

/* ---- arenas: the page cache's frame allocator behind a lock ------ */

struct ts_arena {
    pthread_mutex_t mu;
    tsframes        fr;
};

#define ARENA_BLOCK_MAX ((size_t)16 << 20)

static int host_arena_create(ts_env *env, size_t block, ts_arena **out)
{
    if (!out) return tsenv_error(env, TS_ERR_INVALID, "arena_create: NULL argument");
    *out = NULL;
    if (!block || block > ARENA_BLOCK_MAX)
        return tsenv_error(env, TS_ERR_INVALID, "arena_create: block of %zu bytes (1 to %zu)", block,
                           ARENA_BLOCK_MAX);
    ts_arena *a = calloc(1, sizeof *a);
    if (!a) return tsenv_error(env, TS_ERR_NOMEM, "arena_create: out of memory");
    if (pthread_mutex_init(&a->mu, NULL)) {
        free(a);
        return tsenv_error(env, TS_ERR_NOMEM, "arena_create: cannot create a mutex");
    }
    tsframes_init(&a->fr, block);
    *out = a;
    return TS_OK;
}

static void *host_arena_alloc(ts_arena *a)
{
    pthread_mutex_lock(&a->mu);
    void *p = tsframes_get(&a->fr);
    pthread_mutex_unlock(&a->mu);
    return p;
}

static void host_arena_free(ts_arena *a, void *block)
{
    if (!block) return;
    pthread_mutex_lock(&a->mu);
    tsframes_put(&a->fr, block);
    pthread_mutex_unlock(&a->mu);
}

static void host_arena_destroy(ts_arena *a)
{
    if (!a) return;
    tsframes_done(&a->fr);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static const ts_host host_table = {
    .struct_size = sizeof(ts_host),
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .alloc = host_alloc,
    .calloc = host_calloc,
    .realloc = host_realloc,
    .free = host_free,
    .wipe = host_wipe,
    .error = tsenv_error,
    .log = host_log,
    .random = host_random,
    .opt_string = tsopts_string,
    .opt_int = tsopts_int,
    .opt_double = tsopts_double,
    .opt_bool = tsopts_bool,
    .opt_object = tsopts_object,
    .opt_key_at = tsopts_key_at,
    .module_find = host_module_find,
    .pages = &page_api,
    .arena_create = host_arena_create,
    .arena_alloc = host_arena_alloc,
    .arena_free = host_arena_free,
    .arena_destroy = host_arena_destroy,
};

const ts_host *tsenv_host(void) { return &host_table; }
