/*
 * The host table lent to plugins: memory, errors, logging, randomness,
 * options, module lookup and, for index modules, the page API of the
 * transaction manager.  It sits above every kernel subsystem it exposes.
 */
#include <stdlib.h>
#include <sodium.h>
#include <tostore/index.h>
#include "base/env.h"
#include "config/opts.h"
#include "plugin/registry.h"
#include "txn/pager.h"

/* ---- page API (ts_txn is a tstx, ts_page a tspage) ---------------- */

static uint32_t pa_usable(ts_txn *t) { return tstx_usable((tstx *)t); }
static int pa_get(ts_txn *t, uint64_t pgno, int mode, ts_page **out)
{
    return tstx_get((tstx *)t, pgno, mode == TS_PAGE_WRITE, (tspage **)out);
}
static int pa_alloc(ts_txn *t, ts_page **out, uint64_t *pgno)
{
    return tstx_alloc((tstx *)t, (tspage **)out, pgno);
}
static int pa_free(ts_txn *t, uint64_t pgno) { return tstx_free((tstx *)t, pgno); }
static void *pa_data(ts_page *p) { return tspage_data((tspage *)p); }
static uint64_t pa_pgno(ts_page *p) { return tspage_no((tspage *)p); }
static void pa_release(ts_page *p) { tspage_release((tspage *)p); }
static int pa_writable(ts_txn *t) { return tstx_is_write((tstx *)t); }

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
};

const ts_host *tsenv_host(void) { return &host_table; }
