/*
 * timestamp - primary-key generator "timestampBased": 63-bit integer keys
 * that grow with time,
 *
 *   ms since 2020-01-01T00:00:00Z << 22 | seq << 10 | nodeId
 *
 * (common.h, "the 63-bit time key").  Up to 4096 keys per millisecond per
 * node; the 4097th moves to the next millisecond logically.  The clock is
 * the logical clock of common.h: monotonic when the wall clock goes back,
 * and restored from the state after a restart, so keys never repeat and
 * keep increasing.  See docs/pkgen.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <tostore/pkgen.h>
#include "../common.h"

#define TSK_NAME "timestampBased"

typedef struct tsk_gen {
    const ts_host *host;
    ts_env        *env;
    uint32_t       node;
    pk_clock       clock;
} tsk_gen;

static int tsk_create(const ts_module_args *args, const uint8_t *state, size_t state_len,
                      void **gen_out)
{
    if (!pk_args_usable(args) || !gen_out || (!state && state_len)) return TS_ERR_INVALID;
    const ts_host *h = args->host;
    tsk_gen g = { .host = h, .env = args->env };
    pk_tkey_clock_init(&g.clock);
    int rc = pk_node_opts(args, TSK_NAME, &g.node);
    if (!rc) rc = pk_clock_load(&g.clock, args, TSK_NAME, state, state_len);
    if (rc) return rc;
    tsk_gen *p = h->alloc(sizeof *p);
    if (!p) return h->error(args->env, TS_ERR_NOMEM, TSK_NAME ": out of memory");
    *p = g;
    *gen_out = p;
    return TS_OK;
}

static void tsk_destroy(void *gen)
{
    tsk_gen *g = gen;
    if (g) g->host->free(g);
}

static int tsk_next(void *gen, ts_pk_value *key_out)
{
    tsk_gen *g = gen;
    if (!g || !key_out) return TS_ERR_INVALID;
    int64_t key;
    if (pk_tkey_next(&g->clock, g->node, &key))
        return g->host->error(g->env, TS_ERR_RANGE,
                              TSK_NAME ": time past the last representable key (year 2089)");
    key_out->type = TS_PK_INT;
    key_out->i = key;
    key_out->text = NULL;
    key_out->text_len = 0;
    return TS_OK;
}

/* Integer keys move the clock past them; text keys cannot collide with
 * integer keys and are ignored. */
static int tsk_observe(void *gen, const ts_pk_value *key)
{
    tsk_gen *g = gen;
    if (!g || !key) return TS_ERR_INVALID;
    if (key->type == TS_PK_TEXT) return TS_OK;
    if (key->type != TS_PK_INT)
        return g->host->error(g->env, TS_ERR_INVALID, TSK_NAME ": key type %d", key->type);
    pk_tkey_observe(&g->clock, key->i);
    return TS_OK;
}

static int tsk_save(void *gen, uint8_t *buf, size_t cap, size_t *len_out)
{
    tsk_gen *g = gen;
    if (!g) return TS_ERR_INVALID;
    if (pk_clock_save(&g->clock, buf, cap, len_out))
        return g->host->error(g->env, TS_ERR_INVALID, TSK_NAME ": state buffer of %zu bytes, need %d",
                              cap, PK_CLOCK_STATE_LEN);
    return TS_OK;
}

static const ts_pkgen_vtab tsk_vtab = {
    .struct_size = sizeof(ts_pkgen_vtab),
    .create = tsk_create,
    .destroy = tsk_destroy,
    .next = tsk_next,
    .observe = tsk_observe,
    .save = tsk_save,
};

static const ts_module tsk_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_PKGEN,
    .name = TSK_NAME,
    .version = "1.0.0",
    .flags = 0,
    .vtab_size = sizeof(ts_pkgen_vtab),
    .vtab = &tsk_vtab,
};

static const ts_module *const tsk_modules[] = { &tsk_module, NULL };

static const ts_plugin tsk_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "timestamp",
    .version = "1.0.0",
    .init = NULL,
    .fini = NULL,
    .modules = tsk_modules,
};

TS_PLUGIN_DEFINE(tsk_plugin)
