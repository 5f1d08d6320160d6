/*
 * sequential - primary-key generator "sequential": integer keys from
 * initialValue upwards by a fixed increment, or by a random step in
 * [1, increment] (useRandomIncrement) so that the keys do not reveal how
 * many rows a table gained.
 *
 * Keys are always above every key handed out or observed: observe() of an
 * integer key at or above the next key moves the sequence past it.  The
 * state is the last such key; see docs/pkgen.md for the format.
 */
#include <stddef.h>
#include <stdint.h>
#include <tostore/pkgen.h>
#include "../common.h"

#define SEQ_NAME "sequential"
#define SEQ_STATE_LEN 10  /* version, flags, last (8, LE) */
#define SEQ_HAVE_LAST 0x1u

typedef struct seq_gen {
    const ts_host *host;
    ts_env        *env;
    int64_t        initial;    /* the first key */
    int64_t        increment;  /* >= 1; with random, the largest step */
    int            random;
    int            have_last;  /* 0: nothing handed out or observed yet */
    int64_t        last;       /* largest key handed out or observed */
} seq_gen;

static int seq_options(const ts_module_args *a, seq_gen *g)
{
    static const char *const known[] = { "initialValue", "increment", "useRandomIncrement", NULL };
    int rc = pk_only_keys(a, SEQ_NAME, known);
    if (!rc) rc = pk_opt_int(a, SEQ_NAME, "initialValue", INT64_MIN, INT64_MAX, &g->initial);
    if (!rc) rc = pk_opt_int(a, SEQ_NAME, "increment", 1, INT64_MAX, &g->increment);
    if (!rc) rc = pk_opt_bool(a, SEQ_NAME, "useRandomIncrement", &g->random);
    return rc;
}

static int seq_load(const ts_module_args *a, seq_gen *g, const uint8_t *st, size_t len)
{
    const ts_host *h = a->host;
    if (len == 0) return TS_OK;
    if (st[0] != PK_STATE_V1)
        return h->error(a->env, TS_ERR_CORRUPT, SEQ_NAME ": unknown state version %u", st[0]);
    if (len != SEQ_STATE_LEN)
        return h->error(a->env, TS_ERR_CORRUPT, SEQ_NAME ": state is %zu bytes, expected %d",
                        len, SEQ_STATE_LEN);
    if (st[1] & ~SEQ_HAVE_LAST)
        return h->error(a->env, TS_ERR_CORRUPT, SEQ_NAME ": unknown state flags 0x%x", st[1]);
    g->have_last = (st[1] & SEQ_HAVE_LAST) != 0;
    g->last = (int64_t)pk_get_le(st + 2, 8);
    return TS_OK;
}

static int seq_create(const ts_module_args *args, const uint8_t *state, size_t state_len,
                      void **gen_out)
{
    if (!pk_args_usable(args) || !gen_out || (!state && state_len)) return TS_ERR_INVALID;
    const ts_host *h = args->host;
    seq_gen g = { h, args->env, 1, 1, 0, 0, 0 };
    int rc = seq_options(args, &g);
    if (!rc) rc = seq_load(args, &g, state, state_len);
    if (rc) return rc;
    seq_gen *p = h->alloc(sizeof *p);
    if (!p) return h->error(args->env, TS_ERR_NOMEM, SEQ_NAME ": out of memory");
    *p = g;
    *gen_out = p;
    return TS_OK;
}

static void seq_destroy(void *gen)
{
    seq_gen *g = gen;
    if (g) g->host->free(g);
}

/* A uniform step in [1, n] (n >= 1): rejection sampling, so that no step
 * is likelier than another whatever n is. */
static int seq_random_step(seq_gen *g, uint64_t n, int64_t *step)
{
    uint64_t reject_below = (0 - n) % n; /* 2^64 mod n */
    for (;;) {
        uint8_t b[8];
        int rc = g->host->random(g->env, b, sizeof b);
        if (rc) return g->host->error(g->env, rc, SEQ_NAME ": no random step");
        uint64_t x = pk_get_le(b, 8);
        if (x >= reject_below) {
            *step = (int64_t)(x % n) + 1;
            return TS_OK;
        }
    }
}

static int seq_next(void *gen, ts_pk_value *key_out)
{
    seq_gen *g = gen;
    if (!g || !key_out) return TS_ERR_INVALID;
    int64_t key;
    if (!g->have_last) {
        key = g->initial;
    } else if (!g->random) {
        if (g->last > INT64_MAX - g->increment)
            return g->host->error(g->env, TS_ERR_RANGE,
                                  SEQ_NAME ": key %lld + increment %lld passes the int64 maximum",
                                  (long long)g->last, (long long)g->increment);
        key = g->last + g->increment;
    } else {
        if (g->last == INT64_MAX)
            return g->host->error(g->env, TS_ERR_RANGE,
                                  SEQ_NAME ": the last key is the int64 maximum");
        /* Near the end the step shrinks rather than fail while keys remain. */
        uint64_t room = (uint64_t)INT64_MAX - (uint64_t)g->last;
        uint64_t n = (uint64_t)g->increment < room ? (uint64_t)g->increment : room;
        int64_t step = 0; /* set when rc is TS_OK */
        int rc = seq_random_step(g, n, &step);
        if (rc) return rc;
        key = g->last + step;
    }
    g->last = key;
    g->have_last = 1;
    key_out->type = TS_PK_INT;
    key_out->i = key;
    key_out->text = NULL;
    key_out->text_len = 0;
    return TS_OK;
}

/* Move past k if the next key could reach it: k at or above initialValue
 * before the first key, k at or above last + increment with a fixed step,
 * k above last with a random one (any step up to increment could hit it). */
static int seq_observe(void *gen, const ts_pk_value *key)
{
    seq_gen *g = gen;
    if (!g || !key) return TS_ERR_INVALID;
    if (key->type == TS_PK_TEXT) return TS_OK;
    if (key->type != TS_PK_INT)
        return g->host->error(g->env, TS_ERR_INVALID, SEQ_NAME ": key type %d", key->type);
    int64_t k = key->i;
    int reach;
    if (!g->have_last)
        reach = k >= g->initial;
    else if (g->random)
        reach = k > g->last;
    else
        reach = g->last <= INT64_MAX - g->increment && k >= g->last + g->increment;
    if (reach) {
        g->last = k;
        g->have_last = 1;
    }
    return TS_OK;
}

static int seq_save(void *gen, uint8_t *buf, size_t cap, size_t *len_out)
{
    seq_gen *g = gen;
    if (!g) return TS_ERR_INVALID;
    if (!buf || !len_out || cap < SEQ_STATE_LEN)
        return g->host->error(g->env, TS_ERR_INVALID, SEQ_NAME ": state buffer of %zu bytes, need %d",
                              cap, SEQ_STATE_LEN);
    buf[0] = PK_STATE_V1;
    buf[1] = g->have_last ? SEQ_HAVE_LAST : 0;
    pk_put_le(buf + 2, (uint64_t)g->last, 8);
    *len_out = SEQ_STATE_LEN;
    return TS_OK;
}

static const ts_pkgen_vtab seq_vtab = {
    .struct_size = sizeof(ts_pkgen_vtab),
    .create = seq_create,
    .destroy = seq_destroy,
    .next = seq_next,
    .observe = seq_observe,
    .save = seq_save,
};

static const ts_module seq_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_PKGEN,
    .name = SEQ_NAME,
    .version = "1.0.0",
    .flags = 0,
    .vtab_size = sizeof(ts_pkgen_vtab),
    .vtab = &seq_vtab,
};

static const ts_module *const seq_modules[] = { &seq_module, NULL };

static const ts_plugin seq_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "sequential",
    .version = "1.0.0",
    .init = NULL,
    .fini = NULL,
    .modules = seq_modules,
};

TS_PLUGIN_DEFINE(seq_plugin)
