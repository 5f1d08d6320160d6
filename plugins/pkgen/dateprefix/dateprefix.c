/*
 * dateprefix - primary-key generator "datePrefixed": 24 decimal digits,
 *
 *   yyyyMMddHHmmss  ssssss  nnnn
 *   UTC second      seq     nodeId
 *   (14)            (6)     (4)
 *
 *   e.g. "202503140926530000410007": 2025-03-14T09:26:53Z, seq 41, node 7
 *
 * Every field has a fixed width, so byte order is (second, seq, node)
 * order: one generator's keys sort in generation order, and two nodes
 * differ in the last four digits.  Up to 10^6 keys per second; the next
 * one moves to the following second logically.  The second comes from the
 * logical clock of common.h, so it never goes back (wall clock set back,
 * restart with the saved state) and may run ahead of the wall clock.
 * See docs/pkgen.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <tostore/pkgen.h>
#include "../common.h"

#define DP_NAME     "datePrefixed"
#define DP_DATE_LEN 14
#define DP_SEQ_LEN  6
#define DP_NODE_LEN 4
#define DP_LEN      (DP_DATE_LEN + DP_SEQ_LEN + DP_NODE_LEN)
#define DP_SEQ_MAX  999999u
#define DP_T_MAX    INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

typedef struct dp_gen {
    const ts_host *host;
    ts_env        *env;
    uint32_t       node;
    pk_clock       clock;            /* unit: seconds since 1970 */
    char           text[DP_LEN + 1]; /* the last key handed out */
} dp_gen;

/* ---- proleptic Gregorian calendar (H. Hinnant's algorithms), t >= 0 ---- */

static int64_t dp_days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = y / 400;  /* y >= 0 here: years 0000..9999 */
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void dp_civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = z / 146097;  /* z >= 0 for t >= 0 */
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static void dp_put_dec(char *p, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

static uint64_t dp_get_dec(const char *p, int width)
{
    uint64_t v = 0;
    for (int i = 0; i < width; i++) v = v * 10 + (uint64_t)(p[i] - '0');
    return v;
}

/* yyyyMMddHHmmss of t (0 <= t <= DP_T_MAX) into out[0..13]. */
static void dp_format_date(int64_t t, char *out)
{
    int64_t y, m, d, s = t % 86400;
    dp_civil_from_days(t / 86400, &y, &m, &d);
    dp_put_dec(out, (uint64_t)y, 4);
    dp_put_dec(out + 4, (uint64_t)m, 2);
    dp_put_dec(out + 6, (uint64_t)d, 2);
    dp_put_dec(out + 8, (uint64_t)(s / 3600), 2);
    dp_put_dec(out + 10, (uint64_t)(s / 60 % 60), 2);
    dp_put_dec(out + 12, (uint64_t)(s % 60), 2);
}

static void dp_format(int64_t t, uint32_t seq, uint32_t node, char out[DP_LEN + 1])
{
    dp_format_date(t, out);
    dp_put_dec(out + DP_DATE_LEN, seq, DP_SEQ_LEN);
    dp_put_dec(out + DP_DATE_LEN + DP_SEQ_LEN, node, DP_NODE_LEN);
    out[DP_LEN] = 0;
}

/* 1 and (t, seq) if s has this module's form with a real date from 1970
 * on; 0 otherwise (such a key sorts below every key this module makes, or
 * cannot equal one). */
static int dp_parse(const char *s, size_t len, int64_t *t, uint32_t *seq)
{
    if (len != DP_LEN) return 0;
    for (size_t i = 0; i < DP_LEN; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    int64_t y = (int64_t)dp_get_dec(s, 4), mo = (int64_t)dp_get_dec(s + 4, 2);
    int64_t d = (int64_t)dp_get_dec(s + 6, 2), hh = (int64_t)dp_get_dec(s + 8, 2);
    int64_t mi = (int64_t)dp_get_dec(s + 10, 2), ss = (int64_t)dp_get_dec(s + 12, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mi > 59 || ss > 59)
        return 0;
    int64_t v = dp_days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss;
    /* Formatting back refuses days a month does not have (Feb 30 ...). */
    char back[DP_DATE_LEN];
    dp_format_date(v, back);
    if (memcmp(back, s, DP_DATE_LEN)) return 0;
    *t = v;
    *seq = (uint32_t)dp_get_dec(s + DP_DATE_LEN, DP_SEQ_LEN);
    return 1;
}

/* ---- the module ------------------------------------------------------------ */

static int dp_create(const ts_module_args *args, const uint8_t *state, size_t state_len,
                     void **gen_out)
{
    if (!pk_args_usable(args) || !gen_out || (!state && state_len)) return TS_ERR_INVALID;
    const ts_host *h = args->host;
    dp_gen g = { .host = h, .env = args->env };
    pk_clock_init(&g.clock, DP_T_MAX, DP_SEQ_MAX);
    int rc = pk_node_opts(args, DP_NAME, &g.node);
    if (!rc) rc = pk_clock_load(&g.clock, args, DP_NAME, state, state_len);
    if (rc) return rc;
    dp_gen *p = h->alloc(sizeof *p);
    if (!p) return h->error(args->env, TS_ERR_NOMEM, DP_NAME ": out of memory");
    *p = g;
    *gen_out = p;
    return TS_OK;
}

static void dp_destroy(void *gen)
{
    dp_gen *g = gen;
    if (g) g->host->free(g);
}

static int dp_next(void *gen, ts_pk_value *key_out)
{
    dp_gen *g = gen;
    if (!g || !key_out) return TS_ERR_INVALID;
    int64_t ms = pk_now_ms();
    int64_t t;
    uint32_t seq;
    if (pk_clock_tick(&g->clock, ms < 0 ? 0 : ms / 1000, &t, &seq))
        return g->host->error(g->env, TS_ERR_RANGE, DP_NAME ": time past the year 9999");
    dp_format(t, seq, g->node, g->text);
    key_out->type = TS_PK_TEXT;
    key_out->i = 0;
    key_out->text = g->text;
    key_out->text_len = DP_LEN;
    return TS_OK;
}

/* A text key in this module's form moves the clock past it; other keys
 * cannot equal one of ours (integers, other lengths, non-digits) or sort
 * below all of them (dates before 1970). */
static int dp_observe(void *gen, const ts_pk_value *key)
{
    dp_gen *g = gen;
    if (!g || !key) return TS_ERR_INVALID;
    if (key->type == TS_PK_INT) return TS_OK;
    if (key->type != TS_PK_TEXT || (!key->text && key->text_len))
        return g->host->error(g->env, TS_ERR_INVALID, DP_NAME ": bad key (type %d)", key->type);
    int64_t t;
    uint32_t seq;
    if (dp_parse(key->text, key->text_len, &t, &seq)) pk_clock_observe(&g->clock, t, seq);
    return TS_OK;
}

static int dp_save(void *gen, uint8_t *buf, size_t cap, size_t *len_out)
{
    dp_gen *g = gen;
    if (!g) return TS_ERR_INVALID;
    if (pk_clock_save(&g->clock, buf, cap, len_out))
        return g->host->error(g->env, TS_ERR_INVALID, DP_NAME ": state buffer of %zu bytes, need %d",
                              cap, PK_CLOCK_STATE_LEN);
    return TS_OK;
}

static const ts_pkgen_vtab dp_vtab = {
    .struct_size = sizeof(ts_pkgen_vtab),
    .create = dp_create,
    .destroy = dp_destroy,
    .next = dp_next,
    .observe = dp_observe,
    .save = dp_save,
};

static const ts_module dp_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_PKGEN,
    .name = DP_NAME,
    .version = "1.0.0",
    .flags = 0,
    .vtab_size = sizeof(ts_pkgen_vtab),
    .vtab = &dp_vtab,
};

static const ts_module *const dp_modules[] = { &dp_module, NULL };

static const ts_plugin dp_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "dateprefix",
    .version = "1.0.0",
    .init = NULL,
    .fini = NULL,
    .modules = dp_modules,
};

TS_PLUGIN_DEFINE(dp_plugin)
