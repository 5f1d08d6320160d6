/* Tables in the catalog and the in-memory map of open tables. */
#include <stdlib.h>
#include <string.h>
#include <tostore/keys.h>
#include <tostore/pkgen.h>
#include "base/env.h"
#include "config/opts.h"
#include "table/migrate.h"
#include "table/table.h"

#define KCAP (2 * TSSYS_NAME_MAX + 64)

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

static void tbl_free(tstbl *t)
{
    if (!t) return;
    tsix_close(t->primary);
    for (size_t i = 0; t->ix && i < t->def->nindexes; i++) tsix_close(t->ix[i]);
    tsix_close(t->ttl);
    free(t->ix);
    free(t->roots);
    json_decref(t->pkgen_opts);
    free(t->vstrip);
    tstbl_journal_free(t);
    tsd_table_free(t->def);
    tsmig_online_free(t->mig);
    free(t);
}

/* Drop t from the map (writer; map lock held); freed now or by the last reader. */
static void unlink_at(tstbl_map *m, size_t i)
{
    tstbl *t = m->t[i];
    memmove(m->t + i, m->t + i + 1, (m->n - i - 1) * sizeof *m->t);
    m->n--;
    t->gone = 1;
    if (t->refs == 0) tbl_free(t);
}

static int map_add(tstbl_map *m, tstbl *t)
{
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 16;
        tstbl **nt = realloc(m->t, nc * sizeof *nt);
        if (!nt) return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
        m->t = nt;
        m->cap = nc;
    }
    size_t i = m->n;
    while (i > 0 && strcmp(m->t[i - 1]->def->name, t->def->name) > 0) i--;
    memmove(m->t + i + 1, m->t + i, (m->n - i) * sizeof *m->t);
    m->t[i] = t;
    m->n++;
    return TS_OK;
}

static long map_index(tstbl_map *m, const char *name)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(m->t[mid]->def->name, name);
        if (c == 0) return (long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

tstbl *tstbl_find(tstbl_map *m, const char *name)
{
    long i = name ? map_index(m, name) : -1;
    return i < 0 ? NULL : m->t[i];
}

int tstbl_visible(const tstbl *t, const tstx *tx)
{
    return (!t->pending || t->pending == tx) && (tstx_is_write(tx) || t->created <= tstx_tag(tx));
}

int tstbl_acquire(tstbl_map *m, const char *name, const tstx *tx, tstbl **out)
{
    *out = NULL;
    if (!name) return tsenv_error(m->env, TS_ERR_INVALID, "table name is NULL");
    pthread_mutex_lock(&m->lock);
    long i = map_index(m, name);
    if (i >= 0 && tstbl_visible(m->t[i], tx)) {
        *out = m->t[i];
        (*out)->refs++;
    }
    pthread_mutex_unlock(&m->lock);
    return *out ? TS_OK : tsenv_error(m->env, TS_ERR_NOT_FOUND, "no table named '%s'", name);
}

void tstbl_release(tstbl_map *m, tstbl *t)
{
    if (!t) return;
    pthread_mutex_lock(&m->lock);
    if (--t->refs == 0 && t->gone) tbl_free(t);
    pthread_mutex_unlock(&m->lock);
}

int tstbl_names(tstbl_map *m, const tstx *tx, json_t *arr)
{
    int rc = TS_OK;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n && !rc; i++)
        if (tstbl_visible(m->t[i], tx) && json_array_append_new(arr, json_string(m->t[i]->def->name))) rc = TS_ERR_NOMEM;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ---- opening a stored table ------------------------------------------- */

static json_t *pkgen_options(const tsd_table *d, int64_t node_id)
{
    if (d->pk_type == TSD_PK_SEQUENTIAL)
        return json_pack("{s:I, s:I, s:b}", "initialValue", (json_int_t)d->seq_initial,
                         "increment", (json_int_t)d->seq_increment,
                         "useRandomIncrement", d->seq_random);
    return json_pack("{s:I}", "nodeId", (json_int_t)node_id);
}

/* The options an index module gets: for vector indexes the index's
 * vectorConfig plus the field's dimensions and precision, and, for a
 * float16 / int8 field, keysQuantized (the keys are decoded from the
 * quantized row values, so the module can hold them exactly without a
 * float32 copy), and cacheBytes: half the database's, the bound of what
 * each of the module's page caches holds, so an index's memory follows the
 * budget the user set; NULL otherwise (*opts stays NULL, which is not an
 * error). */
int tstbl_index_opts(const tstbl_map *m, const tsd_table *def, size_t i, json_t **opts)
{
    ts_env *env = m->env;
    const tsd_index *ix = &def->indexes[i];
    *opts = NULL;
    if (!ix->vector_config) return TS_OK;
    const tsd_field *f = &def->cols[ix->cols[0]];
    json_t *o = json_deep_copy(ix->vector_config);
    if (!o || json_object_set_new(o, "dimensions", json_integer(f->dimensions)) ||
        json_object_set_new(o, "precision", json_string(tsd_precision_name(f->precision))) ||
        json_object_set_new(o, "cacheBytes", json_integer(m->cache_bytes / 2)) ||
        (f->precision != TSD_VEC_FLOAT32 &&
         json_object_set_new(o, "keysQuantized", json_true()))) {
        json_decref(o);
        return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    }
    *opts = o;
    return TS_OK;
}

static int open_table(tstbl_map *m, tsd_table *def, uint64_t num, uint64_t proot,
                      const uint64_t *roots, uint64_t ttl_root, tstbl **out)
{
    ts_env *env = m->env;
    tstbl *t = calloc(1, sizeof *t);
    if (!t) { tsd_table_free(def); return tsenv_error(env, TS_ERR_NOMEM, "out of memory"); }
    t->def = def;
    t->num = num;
    t->primary_root = proot;
    t->ttl_root = ttl_root;
    size_t ni = def->nindexes;
    t->ix = calloc(ni ? ni : 1, sizeof *t->ix);
    t->roots = calloc(ni ? ni : 1, sizeof *t->roots);
    int rc = t->ix && t->roots && !tstbl_journal_open(t, m->next_commit) ? TS_OK
                                                                          : tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    char name[TSD_LONG_NAME_MAX + TSD_NAME_MAX + 2];
    if (!rc) rc = tsix_open(env, m->reg, TSSYS_INDEX_MODULE, NULL, proot, def->name, &t->primary);
    for (size_t i = 0; i < ni && !rc; i++) {
        t->roots[i] = roots[i];
        snprintf(name, sizeof name, "%s.%s", def->name, def->indexes[i].name);
        json_t *opts;
        rc = tstbl_index_opts(m, def, i, &opts);
        if (!rc) rc = tsix_open(env, m->reg, def->indexes[i].module, opts, roots[i], name, &t->ix[i]);
        json_decref(opts);
    }
    if (!rc && ttl_root) {
        snprintf(name, sizeof name, "%s.ttl", def->name);
        rc = tsix_open(env, m->reg, TSSYS_INDEX_MODULE, NULL, ttl_root, name, &t->ttl);
    }
    if (!rc && def->pk_type != TSD_PK_NONE) {
        const char *gen = tsd_pk_type_name(def->pk_type);
        t->pkgen = tsreg_lookup(m->reg, TS_KIND_PKGEN, gen);
        if (!t->pkgen && tsreg_declared(m->reg, TS_KIND_PKGEN, gen)) {
            tsenv_error_prefix(env, "table '%s'", def->name);
            rc = TS_ERR_PLUGIN;
        } else if (!t->pkgen)
            rc = tsenv_error(env, TS_ERR_PLUGIN, "table '%s': no primary-key generator module "
                             "named '%s' is loaded", def->name, gen);
        else if (!(t->pkgen_opts = pkgen_options(def, m->node_id)))
            rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    }
    if (rc) { tbl_free(t); return rc; }
    *out = t;
    return TS_OK;
}

int tstbl_from_entry(tstbl_map *m, const json_t *o, tstbl **out)
{
    ts_env *env = m->env;
    json_t *schema = json_object_get(o, "schema"), *ixs = json_object_get(o, "indexes");
    json_t *num = json_object_get(o, "num"), *prim = json_object_get(o, "primary");
    if (!json_is_object(schema) || !json_is_array(ixs) || !json_is_integer(num) || !json_is_integer(prim))
        return tsenv_error(env, TS_ERR_CORRUPT, "a table definition in the catalog is malformed");
    tsd_table *def = NULL;
    int rc = tsd_table_parse(env, schema, &def);
    if (!rc && json_array_size(ixs) != def->nindexes)
        rc = tsenv_error(env, TS_ERR_CORRUPT, "table '%s': the catalog lists %zu index roots for "
                         "%zu indexes", def->name, json_array_size(ixs), def->nindexes);
    uint64_t *roots = NULL;
    if (!rc) {
        roots = calloc(def->nindexes + 1, sizeof *roots);
        if (!roots) rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !rc && i < def->nindexes; i++)
            roots[i] = (uint64_t)json_integer_value(json_array_get(ixs, i));
    }
    if (!rc) {
        rc = open_table(m, def, (uint64_t)json_integer_value(num), (uint64_t)json_integer_value(prim),
                        roots, (uint64_t)json_integer_value(json_object_get(o, "ttl")), out);
        def = NULL;
    } else {
        tsd_table_free(def);
    }
    free(roots);
    return rc;
}

int tstbl_open_trees(tstbl_map *m, tsd_table *def, uint64_t num, uint64_t proot,
                     const uint64_t *roots, uint64_t ttl_root, tstbl **out)
{
    return open_table(m, def, num, proot, roots, ttl_root, out);
}

static int load_entry(tstbl_map *m, const void *v, size_t vl, tstbl **out)
{
    json_error_t je;
    json_t *o = json_loadb(v, vl, 0, &je);
    int rc = tstbl_from_entry(m, o, out);
    json_decref(o);
    return rc;
}

static int load_one(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)k; (void)kl;
    tstbl_map *m = ctx;
    tstbl *t;
    int rc = load_entry(m, v, vl, &t);
    if (!rc && (rc = map_add(m, t))) tbl_free(t);
    return rc;
}

/* Read every table of the catalog into an empty map. */
static int load_all(tstbl_map *m, tstx *tx)
{
    uint8_t k[KCAP];
    int rc = tsix_each_prefix(m->sys->catalog, tx, k, tssys_key(k, "table", NULL), load_one, m);
    return rc ? rc : tsmig_attach(m, tx);
}

static void clear_map(tstbl_map *m)
{
    pthread_mutex_lock(&m->lock);
    while (m->n) unlink_at(m, m->n - 1);
    pthread_mutex_unlock(&m->lock);
}

static void states_drop(tstbl_map *m);
static size_t state_key(uint8_t *k, const char *tag, uint64_t num, uint64_t space);

int tstbl_map_open(tstbl_map *m, ts_env *env, tsreg *reg, tssys *sys, tspg *pg, int64_t node_id,
                   int64_t cache_bytes)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    m->env = env;
    m->reg = reg;
    m->sys = sys;
    m->node_id = node_id;
    m->cache_bytes = cache_bytes;
    m->vector_refs = tspg_format(pg) >= TSPG_FORMAT_VECTOR_REFS;
    tstx *tx;
    int rc = tstx_begin(pg, 0, &tx);
    if (rc) return rc;
    rc = load_all(m, tx);
    tstx_rollback(tx);
    return rc;
}

void tstbl_map_close(tstbl_map *m)
{
    if (!m->env) return;
    states_drop(m);
    clear_map(m);
    json_decref(m->mig_swapped);
    json_decref(m->mig_garbage);
    free(m->t);
    free(m->st);
    for (size_t i = 0; i < sizeof m->spare / sizeof m->spare[0]; i++) free(m->spare[i]);
    pthread_mutex_destroy(&m->lock);
    memset(m, 0, sizeof *m);
}

/* ---- creating and dropping -------------------------------------------- */

json_t *tstbl_entry_json(const tstbl *t)
{
    json_t *ixs = json_array();
    for (size_t i = 0; ixs && i < t->def->nindexes; i++)
        json_array_append_new(ixs, json_integer((json_int_t)t->roots[i]));
    return json_pack("{s:I, s:o, s:I, s:o, s:I}", "num", (json_int_t)t->num,
                     "schema", tsd_table_to_json(t->def), "primary", (json_int_t)t->primary_root,
                     "indexes", ixs, "ttl", (json_int_t)t->ttl_root);
}

static int catalog_put(tstbl_map *m, tstx *tx, const tstbl *t)
{
    json_t *o = tstbl_entry_json(t);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
    uint8_t k[KCAP];
    int rc = tsix_insert(m->sys->catalog, tx, k, tssys_key(k, "table", t->def->name), text,
                         strlen(text), 1);
    free(text);
    return rc;
}

static int next_num(tstbl_map *m, tstx *tx, uint64_t *num)
{
    uint8_t k[KCAP], b[8];
    size_t kl = tssys_key(k, "tableseq", NULL);
    void *v;
    size_t vl;
    int rc = tsix_get(m->sys->catalog, tx, k, kl, &v, &vl);
    *num = 1;
    if (!rc) {
        if (vl == 8) *num = get64(v);
        free(v);
        if ((rc = tsix_remove(m->sys->catalog, tx, k, kl, NULL, 0))) return rc;
    } else if (rc != TS_ERR_NOT_FOUND) {
        return rc;
    }
    put64(b, *num + 1);
    return tsix_insert(m->sys->catalog, tx, k, kl, b, 8, 1);
}

int tstbl_build(tstbl_map *m, tstx *tx, tsd_table *def, uint64_t num, tstbl **out)
{
    ts_env *env = m->env;
    uint64_t proot = 0, ttl_root = 0;
    size_t ni = def->nindexes;
    *out = NULL;
    uint64_t *roots = calloc(ni + 1, sizeof *roots);
    if (!roots) { tsd_table_free(def); return tsenv_error(env, TS_ERR_NOMEM, "out of memory"); }
    int rc = num ? TS_OK : next_num(m, tx, &num);
    if (!rc) rc = tsix_create(env, m->reg, TSSYS_INDEX_MODULE, NULL, tx, &proot);
    for (size_t i = 0; i < ni && !rc; i++) {
        json_t *opts;
        rc = tstbl_index_opts(m, def, i, &opts);
        if (!rc) rc = tsix_create(env, m->reg, def->indexes[i].module, opts, tx, &roots[i]);
        json_decref(opts);
    }
    if (!rc && def->ttl_ms) rc = tsix_create(env, m->reg, TSSYS_INDEX_MODULE, NULL, tx, &ttl_root);
    if (!rc) rc = open_table(m, def, num, proot, roots, ttl_root, out);
    else tsd_table_free(def);
    free(roots);
    return rc;
}

int tstbl_install(tstbl_map *m, tstx *tx, tstbl *t)
{
    m->ddl_dirty = 1;
    m->ddl_seq++;
    int rc = catalog_put(m, tx, t);
    if (!rc) {
        /* built aside (a migration's shadow): what it noted is no commit's */
        tstbl_journal_reset(t, m->next_commit);
        t->pending = tx;
        pthread_mutex_lock(&m->lock);
        rc = map_add(m, t);
        pthread_mutex_unlock(&m->lock);
    }
    if (rc) tbl_free(t);
    return rc;
}

void tstbl_discard(tstbl *t) { tbl_free(t); }

int tstbl_drop_trees(tstx *tx, tstbl *t)
{
    int rc = tsix_drop(t->primary, tx);
    for (size_t j = 0; j < t->def->nindexes && !rc; j++) rc = tsix_drop(t->ix[j], tx);
    if (!rc && t->ttl) rc = tsix_drop(t->ttl, tx);
    return rc;
}

void tstbl_hold(tstbl_map *m, tstbl *t)
{
    pthread_mutex_lock(&m->lock);
    t->refs++;
    pthread_mutex_unlock(&m->lock);
}

int tstbl_unlink(tstbl_map *m, tstx *tx, tstbl *t, int drop_trees)
{
    m->ddl_dirty = 1;
    m->ddl_seq++;
    int rc = drop_trees ? tstbl_drop_trees(tx, t) : TS_OK;
    uint8_t k[KCAP];
    if (!rc) rc = tsix_remove(m->sys->catalog, tx, k, tssys_key(k, "table", t->def->name), NULL, 0);
    if (rc) return rc;
    pthread_mutex_lock(&m->lock);
    long i = map_index(m, t->def->name);
    if (i >= 0 && m->t[i] == t) unlink_at(m, (size_t)i);
    pthread_mutex_unlock(&m->lock);
    return TS_OK;
}

static int create_one(tstbl_map *m, tstx *tx, tsd_table *def)
{
    tstbl *t;
    int rc = tstbl_build(m, tx, def, 0, &t);
    return rc ? rc : tstbl_install(m, tx, t);
}

/* The module each index and key generator needs must be loaded. */
static int check_modules(tstbl_map *m, const tsd_table *d)
{
    for (size_t i = 0; i < d->nindexes; i++) {
        const tsreg_module *mod = tsreg_lookup(m->reg, TS_KIND_INDEX, d->indexes[i].module);
        if (!mod && tsreg_declared(m->reg, TS_KIND_INDEX, d->indexes[i].module)) {
            /* a bundled plugin that failed to load: its reason */
            tsenv_error_prefix(m->env, "%s.indexes: index '%s'", d->name, d->indexes[i].name);
            return TS_ERR_PLUGIN;
        }
        if (!mod)
            return tsenv_error(m->env, TS_ERR_PLUGIN, "%s.indexes: index '%s' needs the index module "
                               "'%s', which is not loaded", d->name, d->indexes[i].name,
                               d->indexes[i].module);
        const ts_index_vtab *vt = mod->vtab;
        if (d->indexes[i].unique && !(vt->caps & TS_INDEX_UNIQUE))
            return tsenv_error(m->env, TS_ERR_VALIDATION, "%s.indexes: index '%s': module '%s' "
                               "cannot enforce unique keys", d->name, d->indexes[i].name,
                               d->indexes[i].module);
    }
    if (d->pk_type != TSD_PK_NONE &&
        !tsreg_lookup(m->reg, TS_KIND_PKGEN, tsd_pk_type_name(d->pk_type))) {
        if (tsreg_declared(m->reg, TS_KIND_PKGEN, tsd_pk_type_name(d->pk_type))) {
            tsenv_error_prefix(m->env, "%s.primaryKeyConfig.type", d->name);
            return TS_ERR_PLUGIN;
        }
        return tsenv_error(m->env, TS_ERR_PLUGIN, "%s.primaryKeyConfig.type: no primary-key "
                           "generator module named '%s' is loaded", d->name,
                           tsd_pk_type_name(d->pk_type));
    }
    return TS_OK;
}

int tstbl_create(tstbl_map *m, tstx *tx, const json_t *const *schemas, size_t n)
{
    ts_env *env = m->env;
    tsd_table **defs = calloc(n + 1, sizeof *defs);
    size_t *order = calloc(n + 1, sizeof *order);
    const tsd_table **existing = calloc(m->n + 1, sizeof *existing);
    int rc = defs && order && existing ? TS_OK : tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) rc = tsd_table_parse(env, schemas[i], &defs[i]);
    for (size_t i = 0; i < n && !rc; i++) rc = check_modules(m, defs[i]);
    for (size_t i = 0; i < m->n && !rc; i++) existing[i] = m->t[i]->def;
    if (!rc) rc = tsd_schema_set_check(env, (const tsd_table *const *)defs, n,
                                       (const tsd_table *const *)existing, m->n, order);
    /* canonical JSON resolved the references: re-parse so every stored
     * schema is exactly what ts_get_schema returns */
    for (size_t k = 0; k < n && !rc; k++) {
        size_t i = order[k];
        tsd_table *def = defs[i];
        defs[i] = NULL;
        m->ddl_dirty = 1;
        m->ddl_seq++;
        rc = create_one(m, tx, def);
    }
    for (size_t i = 0; defs && i < n; i++) tsd_table_free(defs[i]);
    free(defs);
    free(order);
    free(existing);
    return rc;
}

int tstbl_remove_state(tstbl_map *m, tstx *tx, const char *tag, uint64_t num)
{
    uint8_t k[KCAP];
    size_t kl = ts_key_text(k, KCAP, 0, tag, strlen(tag));
    kl = ts_key_int(k, KCAP, kl, (int64_t)num);
    for (;;) {
        tsix_cur c;
        int rc = tsix_cursor(m->sys->catalog, tx, &c);
        if (rc) return rc;
        uint8_t hit[KCAP];
        size_t hl = 0;
        rc = tsix_seek(&c, k, kl, TS_SEEK_GE);
        if (!rc) {
            const void *ek, *ev;
            size_t ekl, evl;
            rc = tsix_entry(&c, &ek, &ekl, &ev, &evl);
            if (!rc && ekl >= kl && ekl <= KCAP && memcmp(ek, k, kl) == 0) {
                memcpy(hit, ek, ekl);
                hl = ekl;
            }
        }
        tsix_cursor_close(&c);
        if (rc == TS_ERR_NOT_FOUND || (!rc && !hl)) return TS_OK;
        if (rc) return rc;
        if ((rc = tsix_remove(m->sys->catalog, tx, hit, hl, NULL, 0))) return rc;
    }
}

typedef struct moved_one {
    uint8_t k[KCAP];
    size_t  kl, vl;
    void   *v;
} moved_one;

typedef struct moved {
    moved_one *e;
    size_t     n, cap;
} moved;

static int collect_state(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    moved *mv = ctx;
    if (kl > KCAP) return TS_ERR_CORRUPT;
    if (mv->n == mv->cap) {
        size_t nc = mv->cap ? mv->cap * 2 : 8;
        moved_one *ne = realloc(mv->e, nc * sizeof *ne);
        if (!ne) return TS_ERR_NOMEM;
        mv->e = ne;
        mv->cap = nc;
    }
    moved_one *e = &mv->e[mv->n];
    if (!(e->v = malloc(vl ? vl : 1))) return TS_ERR_NOMEM;
    memcpy(e->k, k, kl);
    e->kl = kl;
    memcpy(e->v, v, vl);
    e->vl = vl;
    mv->n++;
    return TS_OK;
}

int tstbl_move_state(tstbl_map *m, tstx *tx, const char *tag, uint64_t from, uint64_t to)
{
    uint8_t pre[KCAP];
    size_t pl = ts_key_text(pre, KCAP, 0, tag, strlen(tag));
    pl = ts_key_int(pre, KCAP, pl, (int64_t)from);
    moved mv = { 0 };
    int rc = tstbl_remove_state(m, tx, tag, to);
    if (!rc) rc = tsix_each_prefix(m->sys->catalog, tx, pre, pl, collect_state, &mv);
    if (rc == TS_ERR_NOMEM) tsenv_error(m->env, rc, "out of memory");
    for (size_t i = 0; i < mv.n && !rc; i++) {
        /* the space follows the table number in the key */
        size_t off = pl;
        ts_key_item sp;
        uint8_t k[KCAP];
        if (ts_key_next(mv.e[i].k, mv.e[i].kl, &off, &sp) != 1) { rc = TS_ERR_CORRUPT; break; }
        rc = tsix_remove(m->sys->catalog, tx, mv.e[i].k, mv.e[i].kl, NULL, 0);
        if (!rc) rc = tsix_insert(m->sys->catalog, tx, k, state_key(k, tag, to, (uint64_t)sp.i),
                                  mv.e[i].v, mv.e[i].vl, 1);
    }
    for (size_t i = 0; i < mv.n; i++) free(mv.e[i].v);
    free(mv.e);
    return rc;
}

int tstbl_drop(tstbl_map *m, tstx *tx, const char *name)
{
    ts_env *env = m->env;
    long i = map_index(m, name);
    if (i < 0) return tsenv_error(env, TS_ERR_NOT_FOUND, "no table named '%s'", name);
    tstbl *t = m->t[i];
    if (t->mig) return tsmig_busy(m, t);
    for (size_t j = 0; j < m->n; j++) {
        const tsd_table *o = m->t[j]->def;
        if (o == t->def) continue;
        for (size_t f = 0; f < o->nfks; f++)
            if (strcmp(o->fks[f].ref_table, name) == 0)
                return tsenv_error(env, TS_ERR_FOREIGN_KEY, "table '%s' is referenced by foreign key "
                                   "'%s' of table '%s'; drop that first", name, o->fks[f].name, o->name);
    }
    m->ddl_dirty = 1;
    m->ddl_seq++;
    int rc = tsix_drop(t->primary, tx);
    for (size_t j = 0; j < t->def->nindexes && !rc; j++) rc = tsix_drop(t->ix[j], tx);
    if (!rc && t->ttl) rc = tsix_drop(t->ttl, tx);
    uint8_t k[KCAP];
    if (!rc) rc = tsix_remove(m->sys->catalog, tx, k, tssys_key(k, "table", name), NULL, 0);
    if (!rc) rc = tstbl_remove_state(m, tx, "pk", t->num);
    if (!rc) rc = tstbl_remove_state(m, tx, "rows", t->num);
    if (rc) return rc;
    tstbl_forget_states(m, t->num);
    pthread_mutex_lock(&m->lock);
    unlink_at(m, (size_t)i);
    pthread_mutex_unlock(&m->lock);
    return TS_OK;
}

/* ---- per-(table, space) state ------------------------------------------ */

struct tstbl_state {
    uint64_t num, space;
    const ts_pkgen_vtab *vt;
    void    *gen;
    int      gen_dirty;
    int      count_loaded, count_dirty;
    int64_t  count;
};

static size_t state_key(uint8_t *k, const char *tag, uint64_t num, uint64_t space)
{
    size_t n = ts_key_text(k, KCAP, 0, tag, strlen(tag));
    n = ts_key_int(k, KCAP, n, (int64_t)num);
    return ts_key_int(k, KCAP, n, (int64_t)space);
}

static void state_free(tstbl_state *s)
{
    if (s->gen) s->vt->destroy(s->gen);
    s->gen = NULL;
}

static void states_drop(tstbl_map *m)
{
    for (size_t i = 0; i < m->nst; i++) state_free(&m->st[i]);
    m->nst = 0;
}

void tstbl_forget_states(tstbl_map *m, uint64_t num)
{
    for (size_t i = 0; i < m->nst;) {
        if (m->st[i].num == num) {
            state_free(&m->st[i]);
            m->st[i] = m->st[--m->nst];
        } else {
            i++;
        }
    }
}

static int state_get(tstbl_map *m, uint64_t num, uint64_t space, tstbl_state **out)
{
    for (size_t i = 0; i < m->nst; i++)
        if (m->st[i].num == num && m->st[i].space == space) { *out = &m->st[i]; return TS_OK; }
    if (m->nst == m->capst) {
        size_t nc = m->capst ? m->capst * 2 : 16;
        tstbl_state *ns = realloc(m->st, nc * sizeof *ns);
        if (!ns) return tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
        m->st = ns;
        m->capst = nc;
    }
    tstbl_state *s = &m->st[m->nst++];
    memset(s, 0, sizeof *s);
    s->num = num;
    s->space = space;
    *out = s;
    return TS_OK;
}

static int gen_load(tstbl_map *m, tstx *tx, tstbl *t, tstbl_state *s)
{
    if (s->gen) return TS_OK;
    if (!t->pkgen) return tsenv_error(m->env, TS_ERR_INVALID, "table '%s' has no key generator",
                                      t->def->name);
    uint8_t k[KCAP];
    void *v = NULL;
    size_t vl = 0;
    int rc = tsix_get(m->sys->catalog, tx, k, state_key(k, "pk", t->num, s->space), &v, &vl);
    if (rc && rc != TS_ERR_NOT_FOUND) return rc;
    s->vt = t->pkgen->vtab;
    ts_module_args a = { sizeof a, tsenv_host(), m->env, tsopts_wrap(t->pkgen_opts),
                         t->pkgen->plugin_state };
    rc = s->vt->create(&a, v, rc ? 0 : vl, &s->gen);
    free(v);
    if (rc) {
        s->gen = NULL;
        tsenv_error_prefix(m->env, "table '%s': key generator '%s'", t->def->name,
                           t->pkgen->desc.name);
    }
    return rc;
}

int tstbl_next_key(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space, json_t **pk_new)
{
    tstbl_state *s = NULL;
    int rc = state_get(m, t->num, space, &s);
    if (!rc) rc = gen_load(m, tx, t, s);
    ts_pk_value v = { 0, 0, NULL, 0 };
    if (!rc) rc = s->vt->next(s->gen, &v);
    if (rc) return rc;
    s->gen_dirty = 1;
    *pk_new = v.type == TS_PK_TEXT ? json_stringn(v.text, v.text_len) : json_integer(v.i);
    return *pk_new ? TS_OK : tsenv_error(m->env, TS_ERR_NOMEM, "out of memory");
}

int tstbl_observe_key(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space, const json_t *pk)
{
    if (!t->pkgen) return TS_OK;
    tstbl_state *s = NULL;
    int rc = state_get(m, t->num, space, &s);
    if (!rc) rc = gen_load(m, tx, t, s);
    if (rc) return rc;
    ts_pk_value v = { TS_PK_INT, 0, NULL, 0 };
    if (json_is_integer(pk)) {
        v.i = json_integer_value(pk);
    } else if (json_is_string(pk)) {
        v.type = TS_PK_TEXT;
        v.text = json_string_value(pk);
        v.text_len = json_string_length(pk);
    } else {
        return TS_OK;
    }
    rc = s->vt->observe(s->gen, &v);
    if (!rc) s->gen_dirty = 1;
    return rc;
}

static int count_load(tstbl_map *m, tstx *tx, uint64_t num, uint64_t space, int64_t *out)
{
    uint8_t k[KCAP];
    void *v;
    size_t vl;
    int rc = tsix_get(m->sys->catalog, tx, k, state_key(k, "rows", num, space), &v, &vl);
    *out = 0;
    if (rc == TS_ERR_NOT_FOUND) return TS_OK;
    if (rc) return rc;
    if (vl == 8) *out = (int64_t)get64(v);
    free(v);
    return vl == 8 ? TS_OK : tsenv_error(m->env, TS_ERR_CORRUPT, "a row count is malformed");
}

int tstbl_count_add(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space, int64_t d)
{
    tstbl_state *s = NULL;
    int rc = state_get(m, t->num, space, &s);
    if (!rc && !s->count_loaded) {
        rc = count_load(m, tx, t->num, space, &s->count);
        s->count_loaded = !rc;
    }
    if (rc) return rc;
    s->count += d;
    s->count_dirty = 1;
    return TS_OK;
}

int tstbl_count(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space, int64_t *out)
{
    if (tstx_is_write(tx)) {
        int rc = tstbl_count_add(m, tx, t, space, 0);
        if (rc) return rc;
        for (size_t i = 0; i < m->nst; i++)
            if (m->st[i].num == t->num && m->st[i].space == space) *out = m->st[i].count;
        return TS_OK;
    }
    return count_load(m, tx, t->num, space, out);
}

int tstbl_state_reset(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space)
{
    for (size_t i = 0; i < m->nst; i++) {
        if (m->st[i].num == t->num && m->st[i].space == space) {
            state_free(&m->st[i]);
            m->st[i] = m->st[--m->nst];
            break;
        }
    }
    uint8_t k[KCAP];
    int rc = tsix_remove(m->sys->catalog, tx, k, state_key(k, "pk", t->num, space), NULL, 0);
    if (rc == TS_ERR_NOT_FOUND) rc = TS_OK;
    if (!rc) rc = tsix_remove(m->sys->catalog, tx, k, state_key(k, "rows", t->num, space), NULL, 0);
    return rc == TS_ERR_NOT_FOUND ? TS_OK : rc;
}

static int put_value(tstbl_map *m, tstx *tx, const uint8_t *k, size_t kl, const void *v, size_t vl)
{
    int rc = tsix_remove(m->sys->catalog, tx, k, kl, NULL, 0);
    if (rc && rc != TS_ERR_NOT_FOUND) return rc;
    return tsix_insert(m->sys->catalog, tx, k, kl, v, vl, 1);
}

static int save_states(tstbl_map *m, tstx *tx)
{
    int rc = TS_OK;
    for (size_t i = 0; i < m->nst && !rc; i++) {
        tstbl_state *s = &m->st[i];
        uint8_t k[KCAP];
        if (s->gen && s->gen_dirty) {
            uint8_t buf[TS_PKGEN_STATE_MAX];
            size_t len = 0;
            rc = s->vt->save(s->gen, buf, sizeof buf, &len);
            if (!rc && len > sizeof buf) rc = tsenv_error(m->env, TS_ERR_PLUGIN, "key generator state too long");
            if (!rc) rc = put_value(m, tx, k, state_key(k, "pk", s->num, s->space), buf, len);
            if (!rc) s->gen_dirty = 0;
        }
        if (!rc && s->count_dirty) {
            uint8_t b[8];
            put64(b, (uint64_t)s->count);
            rc = put_value(m, tx, k, state_key(k, "rows", s->num, s->space), b, 8);
            if (!rc) s->count_dirty = 0;
        }
    }
    return rc;
}

int tstbl_flush_states(tstbl_map *m, tstx *tx) { return save_states(m, tx); }

/* Still under the writer lock: number the commit and stamp the tables it
 * created or changed with it.  Readers trust a stamp only once the number
 * is published (tstbl_after_commit), i.e. once the commit is visible. */
int tstbl_before_commit(tstbl_map *m, tstx *tx, uint64_t *commit_no)
{
    *commit_no = 0;
    int rc = save_states(m, tx);
    if (rc) return rc;
    int any = m->ddl_dirty;
    for (size_t i = 0; i < m->n && !any; i++) any = m->t[i]->dirty;
    if (!any) { m->mig_dirty = 0; return TS_OK; }
    uint64_t n = ++m->next_commit;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        tstbl *t = m->t[i];
        if (t->pending == tx) { t->created = n; t->pending = NULL; }
        if (t->dirty) {
            tstbl_journal_commit(t, n);
            __atomic_store_n(&t->last_commit, n, __ATOMIC_RELEASE);
            t->dirty = 0;
        }
    }
    m->ddl_dirty = 0;
    pthread_mutex_unlock(&m->lock);
    m->mig_dirty = 0;
    *commit_no = n;
    return TS_OK;
}

int tstbl_after_commit(tstbl_map *m, uint64_t commit_no, int ok)
{
    if (!ok || !commit_no) return 0;
    /* publish: commits complete in number order, so the largest wins */
    uint64_t cur = __atomic_load_n(&m->commits, __ATOMIC_ACQUIRE);
    while (cur < commit_no &&
           !__atomic_compare_exchange_n(&m->commits, &cur, commit_no, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    return 1;
}

uint64_t tstbl_version(tstbl_map *m, const char *name, uint64_t *num)
{
    uint64_t v = 0;
    *num = 0;
    uint64_t published = __atomic_load_n(&m->commits, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&m->lock);
    long i = map_index(m, name);
    if (i >= 0 && !m->t[i]->pending && m->t[i]->created <= published) {
        uint64_t lc = __atomic_load_n(&m->t[i]->last_commit, __ATOMIC_ACQUIRE);
        /* a new definition (a schema change) is a new version too, even
         * with no row changed since: the same field names may mean other
         * columns (caches keyed by the query's text must miss) */
        if (lc < m->t[i]->created) lc = m->t[i]->created;
        if (lc <= published) v = lc + 1;
        *num = m->t[i]->num;
    }
    pthread_mutex_unlock(&m->lock);
    return v;
}

void tstbl_before_rollback(tstbl_map *m, tspg *pg)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        m->t[i]->dirty = 0;
        tstbl_journal_rollback(m->t[i]);
    }
    pthread_mutex_unlock(&m->lock);
    states_drop(m);
    if (!m->ddl_dirty && !m->mig_dirty) return;
    m->ddl_dirty = 0;
    m->mig_dirty = 0;
    clear_map(m);
    tstx *tx;
    if (tstx_begin(pg, 0, &tx) == TS_OK) {
        pthread_mutex_lock(&m->lock);
        if (load_all(m, tx)) tsenv_log(m->env, TS_LOG_ERROR, "reloading tables after a rollback failed");
        /* reloaded tables would tell the version of a freshly opened map
         * (1), which caches tagged before the commits since opening still
         * carry: count every table as changed by the last published commit */
        uint64_t published = __atomic_load_n(&m->commits, __ATOMIC_ACQUIRE);
        for (size_t i = 0; i < m->n; i++)
            __atomic_store_n(&m->t[i]->last_commit, published, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&m->lock);
        tstx_rollback(tx);
    }
}
