/*
 * shortcode - primary-key generator "shortCode": the 63-bit time key of
 * timestampBased (common.h: ms since 2020 << 22 | seq << 10 | nodeId)
 * written as 11 base62 digits, most significant first, zero-padded:
 *
 *   alphabet 0-9 A-Z a-z   (ASCII order, so byte order == numeric order)
 *   e.g. "15TyBelDlfL" (2026-11-25T20:36:35Z, seq 41, node 7)
 *
 * Fixed length, so strings sort (memcmp) in the order of their numbers,
 * which is generation order; unique across nodes through the node bits.
 * 62^11 > 2^63, so every key fits; 62^10 < 2^63, so 10 digits would not.
 * See docs/pkgen.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <tostore/pkgen.h>
#include "../common.h"

#define SC_NAME "shortCode"
#define SC_LEN  11

static const char SC_ALPHABET[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

typedef struct sc_gen {
    const ts_host *host;
    ts_env        *env;
    uint32_t       node;
    pk_clock       clock;
    char           text[SC_LEN + 1]; /* the last key handed out */
} sc_gen;

static void sc_encode(uint64_t v, char out[SC_LEN + 1])
{
    for (int i = SC_LEN - 1; i >= 0; i--) {
        out[i] = SC_ALPHABET[v % 62];
        v /= 62;
    }
    out[SC_LEN] = 0;
}

static int sc_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
    if (c >= 'a' && c <= 'z') return c - 'a' + 36;
    return -1;
}

/* 1 and *v if s is SC_LEN base62 digits naming a value up to INT64_MAX;
 * 0 otherwise (such a string cannot equal a key this module makes). */
static int sc_decode(const char *s, size_t len, int64_t *v)
{
    if (len != SC_LEN) return 0;
    uint64_t x = 0;
    for (size_t i = 0; i < SC_LEN; i++) {
        int d = sc_digit(s[i]);
        if (d < 0) return 0;
        if (x > ((uint64_t)INT64_MAX - (uint64_t)d) / 62) return 0;
        x = x * 62 + (uint64_t)d;
    }
    *v = (int64_t)x;
    return 1;
}

static int sc_create(const ts_module_args *args, const uint8_t *state, size_t state_len,
                     void **gen_out)
{
    if (!pk_args_usable(args) || !gen_out || (!state && state_len)) return TS_ERR_INVALID;
    const ts_host *h = args->host;
    sc_gen g = { .host = h, .env = args->env };
    pk_tkey_clock_init(&g.clock);
    int rc = pk_node_opts(args, SC_NAME, &g.node);
    if (!rc) rc = pk_clock_load(&g.clock, args, SC_NAME, state, state_len);
    if (rc) return rc;
    sc_gen *p = h->alloc(sizeof *p);
    if (!p) return h->error(args->env, TS_ERR_NOMEM, SC_NAME ": out of memory");
    *p = g;
    *gen_out = p;
    return TS_OK;
}

static void sc_destroy(void *gen)
{
    sc_gen *g = gen;
    if (g) g->host->free(g);
}

static int sc_next(void *gen, ts_pk_value *key_out)
{
    sc_gen *g = gen;
    if (!g || !key_out) return TS_ERR_INVALID;
    int64_t key;
    if (pk_tkey_next(&g->clock, g->node, &key))
        return g->host->error(g->env, TS_ERR_RANGE,
                              SC_NAME ": time past the last representable key (year 2089)");
    sc_encode((uint64_t)key, g->text);
    key_out->type = TS_PK_TEXT;
    key_out->i = 0;
    key_out->text = g->text;
    key_out->text_len = SC_LEN;
    return TS_OK;
}

/* A text key in this module's form moves the clock past it; other keys
 * (integers, other lengths or characters) can never equal one of ours. */
static int sc_observe(void *gen, const ts_pk_value *key)
{
    sc_gen *g = gen;
    if (!g || !key) return TS_ERR_INVALID;
    if (key->type == TS_PK_INT) return TS_OK;
    if (key->type != TS_PK_TEXT || (!key->text && key->text_len))
        return g->host->error(g->env, TS_ERR_INVALID, SC_NAME ": bad key (type %d)", key->type);
    int64_t v;
    if (sc_decode(key->text, key->text_len, &v)) pk_tkey_observe(&g->clock, v);
    return TS_OK;
}

static int sc_save(void *gen, uint8_t *buf, size_t cap, size_t *len_out)
{
    sc_gen *g = gen;
    if (!g) return TS_ERR_INVALID;
    if (pk_clock_save(&g->clock, buf, cap, len_out))
        return g->host->error(g->env, TS_ERR_INVALID, SC_NAME ": state buffer of %zu bytes, need %d",
                              cap, PK_CLOCK_STATE_LEN);
    return TS_OK;
}

static const ts_pkgen_vtab sc_vtab = {
    .struct_size = sizeof(ts_pkgen_vtab),
    .create = sc_create,
    .destroy = sc_destroy,
    .next = sc_next,
    .observe = sc_observe,
    .save = sc_save,
};

static const ts_module sc_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_PKGEN,
    .name = SC_NAME,
    .version = "1.0.0",
    .flags = 0,
    .vtab_size = sizeof(ts_pkgen_vtab),
    .vtab = &sc_vtab,
};

static const ts_module *const sc_modules[] = { &sc_module, NULL };

static const ts_plugin sc_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "shortcode",
    .version = "1.0.0",
    .init = NULL,
    .fini = NULL,
    .modules = sc_modules,
};

TS_PLUGIN_DEFINE(sc_plugin)
