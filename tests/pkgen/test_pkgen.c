/*
 * The primary-key generators (sequential, timestampBased, datePrefixed,
 * shortCode).  Each plugin is dlopen()ed from TS_TEST_PLUGIN_DIR as a
 * third party would, its descriptor is checked, and its vtable is driven
 * with a host table of the test's own: counted allocations, recorded
 * error messages, a seeded random source that can be made to fail, and
 * options from a small key/value list (ts_opts is opaque to plugins, so
 * the test's opt_* functions receive the list through args.opts).
 *
 * Expected values are computed independently of the plugins: the time key
 * layout and base62 alphabet from docs/pkgen.md, dates with gmtime_r.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tostore/pkgen.h>
#include "base/env.h"
#include "plugin/registry.h"
#include "tsupport.h"

#define N_MANY 100000

/* ck_assert records a mark point (a write) on every call, which dominates
 * loops of 100k keys; this checks without it. */
#define CHECK(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

/* ---- the test host ------------------------------------------------------ */

/* Live allocations made through the host (tests are single-threaded). */
static long live_allocs;

static void *t_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p) live_allocs++;
    return p;
}

static void *t_calloc(size_t c, size_t n)
{
    void *p = calloc(c ? c : 1, n ? n : 1);
    if (p) live_allocs++;
    return p;
}

static void *t_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q && !p) live_allocs++;
    return q;
}

static void t_free(void *p)
{
    if (p) live_allocs--;
    free(p);
}

static void t_wipe(void *p, size_t n) { memset(p, 0, n); }

/* What the test passes as ts_env: the error sink and the random source. */
typedef struct tctx {
    char     msg[1024];
    int      nerrors;
    int      random_fails;   /* next random() calls return TS_ERR_IO */
    uint64_t rng;            /* splitmix64 state */
} tctx;

static int t_error(ts_env *env, int code, const char *fmt, ...)
{
    tctx *c = (tctx *)env;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->nerrors++;
    return code;
}

static void t_log(ts_env *env, int level, const char *fmt, ...) { (void)env; (void)level; (void)fmt; }

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static int t_random(ts_env *env, void *buf, size_t n)
{
    tctx *c = (tctx *)env;
    if (c->random_fails > 0) {
        c->random_fails--;
        return TS_ERR_IO;
    }
    uint8_t *b = buf;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t x = splitmix(&c->rng);
        for (size_t j = 0; j < 8 && i + j < n; j++) b[i + j] = (uint8_t)(x >> (8 * j));
    }
    return TS_OK;
}

/* Options: a list of (key, type, value). */
enum { O_INT = 'i', O_BOOL = 'b', O_STR = 's' };
typedef struct topt { const char *key; int type; int64_t v; } topt;
typedef struct topts { size_t n; topt o[6]; } topts;

static const topt *opt_find(const ts_opts *opts, const char *key)
{
    const topts *t = (const topts *)opts;
    for (size_t i = 0; t && i < t->n; i++)
        if (!strcmp(t->o[i].key, key)) return &t->o[i];
    return NULL;
}

static int t_opt_int(ts_env *env, const ts_opts *opts, const char *key, int64_t *out)
{
    const topt *o = opt_find(opts, key);
    if (!o) return TS_ERR_NOT_FOUND;
    if (o->type != O_INT) return t_error(env, TS_ERR_VALIDATION, "%s: not an integer", key);
    *out = o->v;
    return TS_OK;
}

static int t_opt_bool(ts_env *env, const ts_opts *opts, const char *key, int *out)
{
    const topt *o = opt_find(opts, key);
    if (!o) return TS_ERR_NOT_FOUND;
    if (o->type != O_BOOL) return t_error(env, TS_ERR_VALIDATION, "%s: not a boolean", key);
    *out = (int)o->v;
    return TS_OK;
}

static int t_opt_string(ts_env *env, const ts_opts *opts, const char *key, const char **out)
{
    const topt *o = opt_find(opts, key);
    if (!o) return TS_ERR_NOT_FOUND;
    if (o->type != O_STR) return t_error(env, TS_ERR_VALIDATION, "%s: not a string", key);
    *out = "x";
    return TS_OK;
}

static int t_opt_double(ts_env *env, const ts_opts *opts, const char *key, double *out)
{
    (void)out;
    return opt_find(opts, key) ? t_error(env, TS_ERR_VALIDATION, "%s: not a number", key)
                               : TS_ERR_NOT_FOUND;
}

static int t_opt_object(ts_env *env, const ts_opts *opts, const char *key, const ts_opts **out)
{
    (void)out;
    return opt_find(opts, key) ? t_error(env, TS_ERR_VALIDATION, "%s: not an object", key)
                               : TS_ERR_NOT_FOUND;
}

static int t_opt_key_at(const ts_opts *opts, size_t i, const char **key)
{
    const topts *t = (const topts *)opts;
    if (!t || i >= t->n) return TS_ERR_NOT_FOUND;
    *key = t->o[i].key;
    return TS_OK;
}

static int t_module_find(ts_env *env, uint32_t kind, const char *name, const ts_module **m,
                         void **st)
{
    (void)kind; (void)m; (void)st;
    return t_error(env, TS_ERR_NOT_FOUND, "no module %s", name);
}

static const ts_host HOST = {
    .struct_size = sizeof(ts_host),
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .alloc = t_alloc,
    .calloc = t_calloc,
    .realloc = t_realloc,
    .free = t_free,
    .wipe = t_wipe,
    .error = t_error,
    .log = t_log,
    .random = t_random,
    .opt_string = t_opt_string,
    .opt_int = t_opt_int,
    .opt_double = t_opt_double,
    .opt_bool = t_opt_bool,
    .opt_object = t_opt_object,
    .opt_key_at = t_opt_key_at,
    .module_find = t_module_find,
    .pages = NULL,
};

/* ---- loading ------------------------------------------------------------- */

static const struct gen_info {
    const char *plugin, *module;
    int         type;        /* TS_PK_INT / TS_PK_TEXT */
    size_t      state_len;   /* documented state length */
} GENS[] = {
    { "sequential", "sequential",     TS_PK_INT,  10 },
    { "timestamp",  "timestampBased", TS_PK_INT,  13 },
    { "dateprefix", "datePrefixed",   TS_PK_TEXT, 13 },
    { "shortcode",  "shortCode",      TS_PK_TEXT, 13 },
};
#define N_GENS (sizeof GENS / sizeof GENS[0])
enum { G_SEQ, G_TSK, G_DP, G_SC };

typedef struct fx {
    void                 *so;
    const ts_plugin      *plugin;
    const ts_module      *module;
    const ts_pkgen_vtab  *vt;
    tctx                  ctx;
    topts                 opts;
} fx;

static void fx_load(fx *f, int which)
{
    memset(f, 0, sizeof *f);
    f->ctx.rng = 12345;
    live_allocs = 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.so", TS_TEST_PLUGIN_DIR, GENS[which].plugin);
    f->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(f->so, "dlopen %s: %s", path, dlerror());
    ts_plugin_entry_fn entry;
    *(void **)&entry = dlsym(f->so, TS_PLUGIN_ENTRY_NAME);
    ck_assert_msg(entry, "%s: no entry symbol", path);
    f->plugin = entry();
    ck_assert_ptr_nonnull(f->plugin);
    ck_assert_ptr_nonnull(f->plugin->modules);
    f->module = f->plugin->modules[0];
    ck_assert_ptr_nonnull(f->module);
    f->vt = f->module->vtab;
    ck_assert_ptr_nonnull(f->vt);
}

static void fx_free(fx *f)
{
    ck_assert_msg(live_allocs == 0, "%ld allocations left", live_allocs);
    dlclose(f->so);
}

static void opts_add(fx *f, const char *key, int type, int64_t v)
{
    ck_assert_uint_lt(f->opts.n, sizeof f->opts.o / sizeof f->opts.o[0]);
    f->opts.o[f->opts.n++] = (topt){ key, type, v };
}

static int fx_create(fx *f, const uint8_t *state, size_t len, void **g)
{
    ts_module_args a = { sizeof(ts_module_args), &HOST, (ts_env *)&f->ctx,
                         (const ts_opts *)&f->opts, NULL };
    f->ctx.msg[0] = 0;
    return f->vt->create(&a, state, len, g);
}

static void *fx_gen(fx *f, const uint8_t *state, size_t len)
{
    void *g = NULL;
    int rc = fx_create(f, state, len, &g);
    ck_assert_msg(rc == TS_OK, "%s create: %d %s", f->module->name, rc, f->ctx.msg);
    ck_assert_ptr_nonnull(g);
    return g;
}

static int64_t next_int(fx *f, void *g)
{
    ts_pk_value k;
    memset(&k, 0xAB, sizeof k);
    int rc = f->vt->next(g, &k);
    CHECK(rc == TS_OK, "%s next: %d %s", f->module->name, rc, f->ctx.msg);
    CHECK(k.type == TS_PK_INT, "%s next: type %d", f->module->name, k.type);
    return k.i;
}

/* The next text key copied to out (cap >= 64); returns its length. */
static size_t next_text(fx *f, void *g, char *out)
{
    ts_pk_value k;
    memset(&k, 0, sizeof k);
    int rc = f->vt->next(g, &k);
    CHECK(rc == TS_OK, "%s next: %d %s", f->module->name, rc, f->ctx.msg);
    CHECK(k.type == TS_PK_TEXT && k.text && k.text_len < 64, "%s next: type %d, %zu bytes",
          f->module->name, k.type, k.text_len);
    memcpy(out, k.text, k.text_len);
    out[k.text_len] = 0;
    return k.text_len;
}

static size_t save(fx *f, void *g, uint8_t buf[TS_PKGEN_STATE_MAX])
{
    size_t len = 0;
    int rc = f->vt->save(g, buf, TS_PKGEN_STATE_MAX, &len);
    ck_assert_msg(rc == TS_OK, "%s save: %d %s", f->module->name, rc, f->ctx.msg);
    ck_assert_uint_ge(len, 1);
    ck_assert_uint_le(len, TS_PKGEN_STATE_MAX);
    ck_assert_int_eq(buf[0], 1); /* version byte */
    return len;
}

static void observe_int(fx *f, void *g, int64_t k)
{
    ts_pk_value v = { TS_PK_INT, k, NULL, 0 };
    ck_assert_int_eq(f->vt->observe(g, &v), TS_OK);
}

static void observe_text(fx *f, void *g, const char *s)
{
    ts_pk_value v = { TS_PK_TEXT, 0, s, strlen(s) };
    ck_assert_int_eq(f->vt->observe(g, &v), TS_OK);
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A clock state (docs/pkgen.md): version 1, t (8, LE), seq (4, LE). */
static size_t clock_state(uint8_t *buf, int64_t t, uint32_t seq)
{
    buf[0] = 1;
    put_le(buf + 1, (uint64_t)t, 8);
    put_le(buf + 9, seq, 4);
    return 13;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The time key layout, from docs/pkgen.md. */
#define EPOCH_MS INT64_C(1577836800000)
#define TK_MS(k)   ((k) >> 22)
#define TK_SEQ(k)  (((k) >> 10) & 0xfff)
#define TK_NODE(k) ((k) & 0x3ff)

/* ---- descriptors ---------------------------------------------------------- */

START_TEST(descriptor)
{
    fx f;
    fx_load(&f, _i);
    const ts_plugin *p = f.plugin;
    ck_assert_uint_eq(p->magic, TS_PLUGIN_MAGIC);
    ck_assert_uint_eq(p->abi_major, TS_ABI_MAJOR);
    ck_assert_uint_le(p->abi_minor, TS_ABI_MINOR);
    ck_assert_uint_eq(p->struct_size, sizeof(ts_plugin));
    ck_assert_str_eq(p->name, GENS[_i].plugin);
    ck_assert_ptr_null(p->modules[1]);
    const ts_module *m = f.module;
    ck_assert_uint_eq(m->struct_size, sizeof(ts_module));
    ck_assert_uint_eq(m->kind, TS_KIND_PKGEN);
    ck_assert_str_eq(m->name, GENS[_i].module);
    ck_assert_uint_eq(m->flags, 0); /* not thread-safe: the kernel serializes calls */
    ck_assert_uint_eq(m->vtab_size, sizeof(ts_pkgen_vtab));
    ck_assert_uint_eq(f.vt->struct_size, sizeof(ts_pkgen_vtab));
    ck_assert(f.vt->create && f.vt->destroy && f.vt->next && f.vt->observe && f.vt->save);
    fx_free(&f);
}
END_TEST

/* The kernel's registry accepts the plugin (kinds.c checks) and the kernel
 * host can make a generator without options. */
START_TEST(registry_accepts)
{
    ts_env env;
    tsreg *reg = NULL;
    ck_assert_int_eq(tsenv_init(&env), TS_OK);
    ck_assert_int_eq(tsreg_new(&env, &reg), TS_OK);
    const char *const dirs[] = { TS_TEST_PLUGIN_DIR, NULL };
    int rc = tsreg_load(reg, GENS[_i].plugin, dirs);
    ck_assert_msg(rc == TS_OK, "load %s: %d %s", GENS[_i].plugin, rc, tsenv_errmsg(&env));
    const tsreg_module *rec = tsreg_lookup(reg, TS_KIND_PKGEN, GENS[_i].module);
    ck_assert_ptr_nonnull(rec);
    const ts_pkgen_vtab *vt = rec->vtab;
    ts_module_args a = { sizeof(ts_module_args), tsenv_host(), &env, NULL, rec->plugin_state };
    void *g = NULL;
    ck_assert_int_eq(vt->create(&a, NULL, 0, &g), TS_OK);
    ts_pk_value k;
    ck_assert_int_eq(vt->next(g, &k), TS_OK);
    ck_assert_int_eq(k.type, GENS[_i].type);
    uint8_t buf[TS_PKGEN_STATE_MAX];
    size_t len = 0;
    ck_assert_int_eq(vt->save(g, buf, sizeof buf, &len), TS_OK);
    ck_assert_uint_eq(len, GENS[_i].state_len);
    vt->destroy(g);
    tsreg_free(reg);
    tsenv_destroy(&env);
}
END_TEST

/* ---- sequential ------------------------------------------------------------ */

START_TEST(seq_defaults)
{
    fx f;
    fx_load(&f, G_SEQ);
    void *g = fx_gen(&f, NULL, 0);
    for (int64_t i = 1; i <= 1000; i++) ck_assert_int_eq(next_int(&f, g), i);
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(seq_initial_increment)
{
    fx f;
    fx_load(&f, G_SEQ);
    opts_add(&f, "initialValue", O_INT, -5);
    opts_add(&f, "increment", O_INT, 7);
    opts_add(&f, "useRandomIncrement", O_BOOL, 0);
    void *g = fx_gen(&f, NULL, 0);
    for (int64_t i = 0; i < 100; i++) ck_assert_int_eq(next_int(&f, g), -5 + 7 * i);
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(seq_random_step)
{
    fx f;
    fx_load(&f, G_SEQ);
    opts_add(&f, "initialValue", O_INT, 1000);
    opts_add(&f, "increment", O_INT, 5);
    opts_add(&f, "useRandomIncrement", O_BOOL, 1);
    void *g = fx_gen(&f, NULL, 0);
    ck_assert_int_eq(next_int(&f, g), 1000);
    int seen[6] = { 0 };
    int64_t prev = 1000;
    for (int i = 0; i < 5000; i++) {
        int64_t k = next_int(&f, g);
        int64_t step = k - prev;
        ck_assert_msg(step >= 1 && step <= 5, "step %lld", (long long)step);
        seen[step]++;
        prev = k;
    }
    /* Every step of [1, 5] occurs, none dominates (expected 1000 each). */
    for (int s = 1; s <= 5; s++)
        ck_assert_msg(seen[s] > 800 && seen[s] < 1200, "step %d seen %d times", s, seen[s]);
    /* A failing random source fails next() and hands out nothing. */
    f.ctx.random_fails = 1;
    ts_pk_value k;
    ck_assert_int_eq(f.vt->next(g, &k), TS_ERR_IO);
    ck_assert(f.ctx.msg[0]);
    int64_t after = next_int(&f, g);
    ck_assert(after > prev && after <= prev + 5);
    f.vt->destroy(g);

    /* increment 1 with random steps is plain counting. */
    f.opts.n = 0;
    opts_add(&f, "useRandomIncrement", O_BOOL, 1);
    g = fx_gen(&f, NULL, 0);
    for (int64_t i = 1; i <= 100; i++) ck_assert_int_eq(next_int(&f, g), i);
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(seq_observe)
{
    fx f;
    fx_load(&f, G_SEQ);
    opts_add(&f, "initialValue", O_INT, 10);
    opts_add(&f, "increment", O_INT, 10);
    void *g = fx_gen(&f, NULL, 0);
    /* Before the first key: keys below initialValue change nothing... */
    observe_int(&f, g, 9);
    ck_assert_int_eq(next_int(&f, g), 10);
    observe_int(&f, g, 15);               /* below the next key (20): keep the grid */
    ck_assert_int_eq(next_int(&f, g), 20);
    observe_int(&f, g, 30);               /* the next key itself */
    ck_assert_int_eq(next_int(&f, g), 40);
    observe_int(&f, g, 1001);             /* far above */
    ck_assert_int_eq(next_int(&f, g), 1011);
    observe_int(&f, g, 5);                /* below: nothing */
    observe_text(&f, g, "99999");         /* text: ignored */
    ck_assert_int_eq(next_int(&f, g), 1021);
    ts_pk_value bad = { 99, 0, NULL, 0 };
    ck_assert_int_eq(f.vt->observe(g, &bad), TS_ERR_INVALID);
    f.vt->destroy(g);

    /* ...but initialValue itself is taken. */
    g = fx_gen(&f, NULL, 0);
    observe_int(&f, g, 10);
    ck_assert_int_eq(next_int(&f, g), 20);
    f.vt->destroy(g);

    /* Random steps: any key above the last moves the sequence. */
    opts_add(&f, "useRandomIncrement", O_BOOL, 1);
    g = fx_gen(&f, NULL, 0);
    int64_t last = next_int(&f, g);
    for (int i = 0; i < 1000; i++) {
        observe_int(&f, g, last + 1);
        int64_t k = next_int(&f, g);
        ck_assert(k > last + 1 && k <= last + 11);
        last = k;
    }
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(seq_overflow)
{
    fx f;
    fx_load(&f, G_SEQ);
    opts_add(&f, "initialValue", O_INT, INT64_MAX - 1);
    void *g = fx_gen(&f, NULL, 0);
    ck_assert_int_eq(next_int(&f, g), INT64_MAX - 1);
    ck_assert_int_eq(next_int(&f, g), INT64_MAX);
    ts_pk_value k;
    ck_assert_int_eq(f.vt->next(g, &k), TS_ERR_RANGE);
    ck_assert_msg(strstr(f.ctx.msg, "sequential"), "message '%s'", f.ctx.msg);
    ck_assert_int_eq(f.vt->next(g, &k), TS_ERR_RANGE); /* stays exhausted */
    f.vt->destroy(g);

    /* A step that does not fit fails; nothing is handed out. */
    f.opts.n = 0;
    opts_add(&f, "initialValue", O_INT, INT64_MAX - 5);
    opts_add(&f, "increment", O_INT, 10);
    g = fx_gen(&f, NULL, 0);
    ck_assert_int_eq(next_int(&f, g), INT64_MAX - 5);
    ck_assert_int_eq(f.vt->next(g, &k), TS_ERR_RANGE);
    f.vt->destroy(g);

    /* Random steps shrink near the end: every key up to INT64_MAX is usable. */
    opts_add(&f, "useRandomIncrement", O_BOOL, 1);
    g = fx_gen(&f, NULL, 0);
    int64_t prev = next_int(&f, g);
    int rc, n = 0;
    while ((rc = f.vt->next(g, &k)) == TS_OK) {
        ck_assert(k.i > prev);
        prev = k.i;
        ck_assert_int_lt(++n, 6);
    }
    ck_assert_int_eq(rc, TS_ERR_RANGE);
    ck_assert_int_eq(prev, INT64_MAX);
    f.vt->destroy(g);

    /* Observing INT64_MAX exhausts the sequence. */
    f.opts.n = 0;
    g = fx_gen(&f, NULL, 0);
    ck_assert_int_eq(next_int(&f, g), 1);
    observe_int(&f, g, INT64_MAX);
    ck_assert_int_eq(f.vt->next(g, &k), TS_ERR_RANGE);
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

/* The kernel saves the state with the rows that used the keys: after a
 * crash it restarts from the last save, and keys handed out after it died
 * with their rows.  No key handed out before the save may come again. */
START_TEST(seq_save_restore)
{
    for (int random = 0; random <= 1; random++) {
        fx f;
        fx_load(&f, G_SEQ);
        opts_add(&f, "increment", O_INT, 3);
        opts_add(&f, "useRandomIncrement", O_BOOL, random);
        uint8_t st[TS_PKGEN_STATE_MAX];

        /* A new generator's state restores a new generator. */
        void *g = fx_gen(&f, NULL, 0);
        size_t len = save(&f, g, st);
        ck_assert_uint_eq(len, 10);
        f.vt->destroy(g);
        g = fx_gen(&f, st, len);
        ck_assert_int_eq(next_int(&f, g), 1);

        int64_t max_saved = 1;
        for (int round = 0; round < 20; round++) {
            for (int i = 0; i < 50; i++) max_saved = next_int(&f, g);
            len = save(&f, g, st);
            for (int i = 0; i < 7; i++) next_int(&f, g); /* lost in the "crash" */
            f.vt->destroy(g);
            g = fx_gen(&f, st, len);
            int64_t k = next_int(&f, g);
            ck_assert_msg(k > max_saved, "round %d: %lld after %lld", round, (long long)k,
                          (long long)max_saved);
            ck_assert(k <= max_saved + 3);
            max_saved = k;
        }
        /* The state does not fit a small buffer. */
        size_t n = 0;
        ck_assert_int_eq(f.vt->save(g, st, 9, &n), TS_ERR_INVALID);
        f.vt->destroy(g);
        fx_free(&f);
    }
}
END_TEST

/* ---- timestampBased --------------------------------------------------------- */

START_TEST(tsk_many)
{
    fx f;
    fx_load(&f, G_TSK);
    opts_add(&f, "nodeId", O_INT, 7);
    void *g = fx_gen(&f, NULL, 0);
    int64_t before = now_ms() - EPOCH_MS;
    int64_t prev = 0;
    for (int i = 0; i < N_MANY; i++) {
        int64_t k = next_int(&f, g);
        CHECK(k > prev, "key %d: %lld after %lld", i, (long long)k, (long long)prev);
        CHECK(TK_NODE(k) == 7, "key %d: node %lld", i, (long long)TK_NODE(k));
        prev = k;
    }
    int64_t after = now_ms() - EPOCH_MS;
    /* The time part is the clock's (plus at most one ms per 4096 keys). */
    ck_assert_int_ge(TK_MS(prev), before);
    ck_assert_int_le(TK_MS(prev), after + N_MANY / 4096 + 1);
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(tsk_nodes)
{
    fx f;
    fx_load(&f, G_TSK);
    uint8_t st[16];
    /* Two nodes in the same (future, hence fixed) millisecond. */
    int64_t t = now_ms() - EPOCH_MS + 3600 * 1000;
    size_t len = clock_state(st, t, 5);
    opts_add(&f, "nodeId", O_INT, 1);
    void *a = fx_gen(&f, st, len);
    f.opts.o[0].v = 1023;
    void *b = fx_gen(&f, st, len);
    for (int i = 0; i < 1000; i++) {
        int64_t ka = next_int(&f, a), kb = next_int(&f, b);
        ck_assert_int_ne(ka, kb);
        ck_assert_int_eq(ka ^ kb, 1 ^ 1023);   /* only the node bits differ */
        ck_assert_int_eq(TK_NODE(ka), 1);
        ck_assert_int_eq(TK_NODE(kb), 1023);
        ck_assert_int_eq(TK_MS(ka), t + (5 + 1 + i) / 4096);
        ck_assert_int_eq(TK_SEQ(ka), (5 + 1 + i) % 4096);
    }
    f.vt->destroy(a);
    f.vt->destroy(b);
    fx_free(&f);
}
END_TEST

START_TEST(tsk_save_restore)
{
    fx f;
    fx_load(&f, G_TSK);
    uint8_t st[TS_PKGEN_STATE_MAX];
    opts_add(&f, "nodeId", O_INT, 900);
    void *g = fx_gen(&f, NULL, 0);
    int64_t last = 0;
    for (int i = 0; i < 10000; i++) last = next_int(&f, g);
    size_t len = save(&f, g, st);
    ck_assert_uint_eq(len, 13);
    f.vt->destroy(g);
    /* Restored with a lower node id, keys still follow the saved ones. */
    f.opts.o[0].v = 0;
    g = fx_gen(&f, st, len);
    ck_assert_int_gt(next_int(&f, g), last);
    f.vt->destroy(g);

    /* Clock behind the saved time (set back, or keys ran ahead): the key
     * continues from the saved (ms, seq), not from the wall clock. */
    int64_t t = now_ms() - EPOCH_MS + 24 * 3600 * 1000;
    len = clock_state(st, t, 4095);
    g = fx_gen(&f, st, len);
    int64_t k = next_int(&f, g);
    ck_assert_int_eq(TK_MS(k), t + 1);   /* seq exhausted: the next ms, logically */
    ck_assert_int_eq(TK_SEQ(k), 0);
    for (int i = 0; i < 10000; i++) {
        int64_t k2 = next_int(&f, g);
        CHECK(k2 > k, "%lld after %lld", (long long)k2, (long long)k);
        k = k2;
    }
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(tsk_observe)
{
    fx f;
    fx_load(&f, G_TSK);
    opts_add(&f, "nodeId", O_INT, 3);
    void *g = fx_gen(&f, NULL, 0);
    int64_t k = next_int(&f, g);
    /* A key of another node, well in the future. */
    int64_t future = ((TK_MS(k) + 600000) << 22) | (77 << 10) | 900;
    observe_int(&f, g, future);
    int64_t k2 = next_int(&f, g);
    ck_assert_int_gt(k2, future);
    ck_assert_int_eq(TK_MS(k2), TK_MS(future));
    ck_assert_int_eq(TK_SEQ(k2), 78);
    ck_assert_int_eq(TK_NODE(k2), 3);
    observe_int(&f, g, 5);        /* below: nothing */
    observe_int(&f, g, -1);
    observe_text(&f, g, "zzzz"); /* text: ignored */
    ck_assert_int_eq(next_int(&f, g), k2 + (1 << 10));
    /* The largest key leaves no room. */
    observe_int(&f, g, INT64_MAX);
    ts_pk_value v;
    ck_assert_int_eq(f.vt->next(g, &v), TS_ERR_RANGE);
    ck_assert(f.ctx.msg[0]);
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

/* ---- datePrefixed ------------------------------------------------------------ */

static void utc14(time_t t, char out[15])
{
    struct tm tm;
    ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
    ck_assert_uint_eq(strftime(out, 15, "%Y%m%d%H%M%S", &tm), 14);
}

/* The generators' clock (timespec_get, as plugins/pkgen/common.h): time()
 * reads a coarse clock that can be a tick behind it across a second. */
static time_t now_s(void)
{
    struct timespec ts;
    ck_assert_int_eq(timespec_get(&ts, TIME_UTC), TIME_UTC);
    return ts.tv_sec;
}

static int all_digits(const char *s)
{
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

START_TEST(dp_format)
{
    fx f;
    fx_load(&f, G_DP);
    opts_add(&f, "nodeId", O_INT, 42);
    void *g = fx_gen(&f, NULL, 0);
    char lo[15], hi[15], key[64];
    utc14(now_s(), lo);
    size_t n = next_text(&f, g, key);
    utc14(now_s(), hi);
    ck_assert_uint_eq(n, 24);
    ck_assert_msg(all_digits(key), "key %s", key);
    ck_assert_msg(strncmp(key, lo, 14) >= 0 && strncmp(key, hi, 14) <= 0,
                  "key %s, now %s..%s", key, lo, hi);
    ck_assert_str_eq(key + 14, "0000000042"); /* first of its second, node 42 */
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(dp_many)
{
    fx f;
    fx_load(&f, G_DP);
    opts_add(&f, "nodeId", O_INT, 1023);
    void *g = fx_gen(&f, NULL, 0);
    char prev[64] = "", key[64];
    for (int i = 0; i < N_MANY; i++) {
        CHECK(next_text(&f, g, key) == 24, "key %d: %s", i, key);
        CHECK(strcmp(key, prev) > 0, "key %d: %s after %s", i, key, prev);
        CHECK(!strcmp(key + 20, "1023") && all_digits(key), "key %d: %s", i, key);
        memcpy(prev, key, sizeof key);
    }
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(dp_restore)
{
    fx f;
    fx_load(&f, G_DP);
    opts_add(&f, "nodeId", O_INT, 5);
    uint8_t st[TS_PKGEN_STATE_MAX];
    char key[64], prev[64], want[15];

    /* Save and restore: later keys sort after. */
    void *g = fx_gen(&f, NULL, 0);
    for (int i = 0; i < 1000; i++) next_text(&f, g, prev);
    size_t len = save(&f, g, st);
    ck_assert_uint_eq(len, 13);
    f.vt->destroy(g);
    g = fx_gen(&f, st, len);
    next_text(&f, g, key);
    ck_assert_msg(strcmp(key, prev) > 0, "%s after %s", key, prev);
    f.vt->destroy(g);

    /* Wall clock an hour behind the saved second, its sequence used up:
     * the next key is in the following second, logically. */
    time_t t = time(NULL) + 3600;
    len = clock_state(st, t, 999999);
    g = fx_gen(&f, st, len);
    next_text(&f, g, key);
    utc14(t + 1, want);
    ck_assert_msg(!strncmp(key, want, 14), "key %s, expected prefix %s", key, want);
    ck_assert_str_eq(key + 14, "0000000005");
    next_text(&f, g, key);
    ck_assert_str_eq(key + 14, "0000010005");

    /* Observed keys of this form move the clock; others are ignored. */
    char obs[32];
    utc14(t + 7200, want);
    snprintf(obs, sizeof obs, "%s%s", want, "1234560999");
    observe_text(&f, g, obs);
    observe_text(&f, g, "20250230000000000000000000");  /* too long */
    observe_text(&f, g, "999902300000000000000000");    /* Feb 30 */
    observe_text(&f, g, "999913010000000000000000");    /* month 13 */
    observe_text(&f, g, "99991231235959x999999999");    /* not a digit */
    observe_int(&f, g, 1);
    next_text(&f, g, key);
    ck_assert_msg(strcmp(key, obs) > 0, "%s after %s", key, obs);
    ck_assert_msg(!strncmp(key, want, 14), "key %s, expected prefix %s", key, want);
    ck_assert_str_eq(key + 14, "1234570005");
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

/* ---- shortCode ------------------------------------------------------------------ */

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int64_t b62_decode(const char *s)
{
    uint64_t v = 0;
    for (; *s; s++) {
        const char *p = strchr(B62, *s);
        CHECK(p, "char '%c' not base62", *s);
        v = v * 62 + (uint64_t)(p - B62);
    }
    return (int64_t)v;
}

static void b62_encode(uint64_t v, char out[12])
{
    for (int i = 10; i >= 0; i--) {
        out[i] = B62[v % 62];
        v /= 62;
    }
    out[11] = 0;
}

START_TEST(sc_many)
{
    fx f;
    fx_load(&f, G_SC);
    opts_add(&f, "nodeId", O_INT, 9);
    void *g = fx_gen(&f, NULL, 0);
    int64_t before = now_ms() - EPOCH_MS;
    char prev[64] = "", key[64];
    int64_t prev_v = -1;
    for (int i = 0; i < N_MANY; i++) {
        CHECK(next_text(&f, g, key) == 11, "key %d: %s", i, key);
        CHECK(strcmp(key, prev) > 0, "key %d: %s after %s", i, key, prev);
        int64_t v = b62_decode(key);
        CHECK(v > prev_v && TK_NODE(v) == 9, "key %d: %s", i, key);
        prev_v = v;
        memcpy(prev, key, sizeof key);
    }
    int64_t after = now_ms() - EPOCH_MS;
    ck_assert_int_ge(TK_MS(prev_v), before);
    ck_assert_int_le(TK_MS(prev_v), after + N_MANY / 4096 + 1);
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(sc_restore_observe)
{
    fx f;
    fx_load(&f, G_SC);
    opts_add(&f, "nodeId", O_INT, 4);
    uint8_t st[TS_PKGEN_STATE_MAX];
    char key[64], prev[64], obs[12];
    void *g = fx_gen(&f, NULL, 0);
    for (int i = 0; i < 1000; i++) next_text(&f, g, prev);
    size_t len = save(&f, g, st);
    ck_assert_uint_eq(len, 13);
    f.vt->destroy(g);
    g = fx_gen(&f, st, len);
    next_text(&f, g, key);
    ck_assert_msg(strcmp(key, prev) > 0, "%s after %s", key, prev);
    f.vt->destroy(g);

    /* A future saved state, then an observed key further ahead. */
    int64_t t = now_ms() - EPOCH_MS + 3600 * 1000;
    len = clock_state(st, t, 10);
    g = fx_gen(&f, st, len);
    next_text(&f, g, key);
    char want[12];
    b62_encode((uint64_t)(t << 22 | 11 << 10 | 4), want);
    ck_assert_str_eq(key, want);
    b62_encode((uint64_t)((t + 1000) << 22 | 4095 << 10 | 1000), obs);
    observe_text(&f, g, obs);
    observe_text(&f, g, "zzzzzzzzzzz");   /* above INT64_MAX: not one of ours */
    observe_text(&f, g, "0000000000");    /* too short */
    char bad[12];
    b62_encode((uint64_t)((t + 5000) << 22), bad);
    bad[10] = '-';                        /* not base62 (else far ahead) */
    observe_text(&f, g, bad);
    observe_int(&f, g, INT64_MAX);        /* integer: ignored */
    next_text(&f, g, key);
    b62_encode((uint64_t)((t + 1001) << 22 | 0 << 10 | 4), want);
    ck_assert_str_eq(key, want);
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

/* ---- options and state, every generator ------------------------------------------ */

static void expect_refused(fx *f, int rc_want, const char *needle, const uint8_t *st, size_t len)
{
    void *g = (void *)&g; /* must stay untouched */
    void *before = g;
    f->ctx.msg[0] = 0;
    int rc = fx_create(f, st, len, &g);
    ck_assert_msg(rc == rc_want, "%s: %d, expected %d (%s)", f->module->name, rc, rc_want,
                  f->ctx.msg);
    ck_assert_ptr_eq(g, before);
    ck_assert_msg(strstr(f->ctx.msg, needle), "%s: message '%s' lacks '%s'", f->module->name,
                  f->ctx.msg, needle);
    ck_assert_int_eq(live_allocs, 0);
}

START_TEST(seq_bad_options)
{
    fx f;
    fx_load(&f, G_SEQ);
    opts_add(&f, "increment", O_INT, 0);
    expect_refused(&f, TS_ERR_VALIDATION, "increment", NULL, 0);
    f.opts.o[0].v = -3;
    expect_refused(&f, TS_ERR_VALIDATION, "increment", NULL, 0);
    f.opts.o[0] = (topt){ "increment", O_BOOL, 1 };
    expect_refused(&f, TS_ERR_VALIDATION, "increment", NULL, 0);
    f.opts.o[0] = (topt){ "useRandomIncrement", O_INT, 1 };
    expect_refused(&f, TS_ERR_VALIDATION, "useRandomIncrement", NULL, 0);
    f.opts.o[0] = (topt){ "initialValue", O_STR, 0 };
    expect_refused(&f, TS_ERR_VALIDATION, "initialValue", NULL, 0);
    f.opts.o[0] = (topt){ "increment", O_INT, 2 };
    opts_add(&f, "nodeId", O_INT, 1);      /* not a sequential option */
    expect_refused(&f, TS_ERR_VALIDATION, "nodeId", NULL, 0);
    f.opts.o[1] = (topt){ "incremnt", O_INT, 2 };
    expect_refused(&f, TS_ERR_VALIDATION, "incremnt", NULL, 0);
    fx_free(&f);
}
END_TEST

/* _i: G_TSK, G_DP, G_SC. */
START_TEST(node_bad_options)
{
    fx f;
    fx_load(&f, _i);
    opts_add(&f, "nodeId", O_INT, 5000);
    expect_refused(&f, TS_ERR_VALIDATION, "nodeId", NULL, 0);
    f.opts.o[0].v = 1024;
    expect_refused(&f, TS_ERR_VALIDATION, "nodeId", NULL, 0);
    f.opts.o[0].v = -1;
    expect_refused(&f, TS_ERR_VALIDATION, "nodeId", NULL, 0);
    f.opts.o[0] = (topt){ "nodeId", O_STR, 0 };
    expect_refused(&f, TS_ERR_VALIDATION, "nodeId", NULL, 0);
    f.opts.o[0] = (topt){ "nodeId", O_INT, 1023 };
    opts_add(&f, "increment", O_INT, 1);
    expect_refused(&f, TS_ERR_VALIDATION, "increment", NULL, 0);
    f.opts.n = 1;
    void *g = fx_gen(&f, NULL, 0); /* 1023 is fine */
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

START_TEST(corrupt_state)
{
    fx f;
    fx_load(&f, _i);
    uint8_t good[TS_PKGEN_STATE_MAX], st[TS_PKGEN_STATE_MAX + 1];
    void *g = fx_gen(&f, NULL, 0);
    if (GENS[_i].type == TS_PK_INT) next_int(&f, g);
    else { char k[64]; next_text(&f, g, k); }
    size_t len = save(&f, g, good);
    ck_assert_uint_eq(len, GENS[_i].state_len);
    f.vt->destroy(g);

    memcpy(st, good, len);
    st[0] = 2;
    expect_refused(&f, TS_ERR_CORRUPT, "version", st, len);
    st[0] = 0;
    expect_refused(&f, TS_ERR_CORRUPT, "version", st, len);
    st[0] = 1;
    expect_refused(&f, TS_ERR_CORRUPT, "bytes", st, len - 1);
    expect_refused(&f, TS_ERR_CORRUPT, "bytes", st, 1);
    st[len] = 0;
    expect_refused(&f, TS_ERR_CORRUPT, "bytes", st, len + 1);
    if (_i == G_SEQ) {
        st[1] |= 0x80;  /* unknown flag */
        expect_refused(&f, TS_ERR_CORRUPT, "flags", st, len);
    } else {
        clock_state(st, 5, 0xFFFFFFFFu);   /* seq out of range */
        expect_refused(&f, TS_ERR_CORRUPT, "range", st, len);
        clock_state(st, -1, 0);            /* time out of range */
        expect_refused(&f, TS_ERR_CORRUPT, "range", st, len);
    }
    /* The good state still loads. */
    g = fx_gen(&f, good, len);
    f.vt->destroy(g);
    fx_free(&f);
}
END_TEST

/* NULL arguments are refused, not dereferenced. */
START_TEST(null_args)
{
    fx f;
    fx_load(&f, _i);
    void *g = NULL;
    ck_assert_int_eq(f.vt->create(NULL, NULL, 0, &g), TS_ERR_INVALID);
    ck_assert_int_eq(fx_create(&f, NULL, 5, &g), TS_ERR_INVALID);
    ck_assert_ptr_null(g);
    g = fx_gen(&f, NULL, 0);
    ck_assert_int_eq(f.vt->next(g, NULL), TS_ERR_INVALID);
    ck_assert_int_eq(f.vt->observe(g, NULL), TS_ERR_INVALID);
    size_t n;
    ck_assert_int_eq(f.vt->save(g, NULL, 0, &n), TS_ERR_INVALID);
    f.vt->destroy(g);
    f.vt->destroy(NULL);
    fx_free(&f);
}
END_TEST

static Suite *pkgen_suite(void)
{
    Suite *s = suite_create("pkgen");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, descriptor, 0, N_GENS);
    tcase_add_loop_test(tc, registry_accepts, 0, N_GENS);
    tcase_add_test(tc, seq_defaults);
    tcase_add_test(tc, seq_initial_increment);
    tcase_add_test(tc, seq_random_step);
    tcase_add_test(tc, seq_observe);
    tcase_add_test(tc, seq_overflow);
    tcase_add_test(tc, seq_save_restore);
    tcase_add_test(tc, tsk_many);
    tcase_add_test(tc, tsk_nodes);
    tcase_add_test(tc, tsk_save_restore);
    tcase_add_test(tc, tsk_observe);
    tcase_add_test(tc, dp_format);
    tcase_add_test(tc, dp_many);
    tcase_add_test(tc, dp_restore);
    tcase_add_test(tc, sc_many);
    tcase_add_test(tc, sc_restore_observe);
    tcase_add_test(tc, seq_bad_options);
    tcase_add_loop_test(tc, node_bad_options, G_TSK, G_SC + 1);
    tcase_add_loop_test(tc, corrupt_state, 0, N_GENS);
    tcase_add_loop_test(tc, null_args, 0, N_GENS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(pkgen_suite());
}
