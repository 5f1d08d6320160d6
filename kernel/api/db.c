/* ts_open / ts_close and the handle-level calls of tostore.h. */
#include <stdlib.h>
#include <string.h>
#include "api/call.h"
#include "api/query.h"
#include "table/migrate.h"
#include "base/build_info.h"
#include "base/status.h"
#include "txn/rekey.h"

const char *ts_version(void) { return tsb_version(); }
const char *ts_strerror(int code) { return tsstatus_text(code); }

const char *ts_errmsg(ts_db *db) { return tsenv_errmsg(db ? &db->env : NULL); }

/* Plugin folders: pluginPath first, then the default ones. */
static const char **search_dirs(ts_db *db)
{
    const char *const *def = tsreg_default_dirs(db->reg);
    size_t n = 0, m = 0;
    while (db->cfg->plugin_path && db->cfg->plugin_path[n]) n++;
    while (def && def[m]) m++;
    const char **d = calloc(n + m + 1, sizeof *d);
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) d[i] = db->cfg->plugin_path[i];
    for (size_t i = 0; i < m; i++) d[n + i] = def[i];
    return d;
}

static int load_plugins(ts_db *db)
{
    const char **dirs = search_dirs(db);
    if (!dirs) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    int rc = TS_OK;
    if (db->cfg->load_bundled) {
        for (const tsb_bundled *b = tsb_bundled_modules(); b->plugin && !rc; b++) {
            rc = tsreg_declare(db->reg, b->plugin, b->kind, b->module, dirs);
            if (rc) tsenv_error_prefix(&db->env, "bundled plugin '%s'", b->plugin);
        }
    }
    for (size_t i = 0; i < db->cfg->nplugins && !rc; i++) {
        rc = tsreg_load(db->reg, db->cfg->plugins[i].spec, dirs);
        if (rc) tsenv_error_prefix(&db->env, "%s", db->cfg->plugins[i].where);
    }
    free(dirs);
    return rc;
}

/* Refuse a missing or insecure cipher before anything touches storage. */
static int select_cipher(ts_db *db, const tscfg *c, const tsreg_module **out)
{
    *out = NULL;
    if (!c->cipher_module) return TS_OK;
    const tsreg_module *m = tsreg_lookup(db->reg, TS_KIND_CIPHER, c->cipher_module);
    if (!m && tsreg_declared(db->reg, TS_KIND_CIPHER, c->cipher_module)) {
        tsenv_error_prefix(&db->env, "cipher.module"); /* its load failure */
        return TS_ERR_PLUGIN;
    }
    if (!m)
        return tsenv_error(&db->env, TS_ERR_CONFIG,
                           "cipher.module: no cipher module named '%s' is loaded", c->cipher_module);
    if ((m->desc.flags & TS_MODULE_INSECURE) && !c->cipher_allow_insecure)
        return tsenv_error(&db->env, TS_ERR_INSECURE,
                           "cipher.module: '%s' is insecure (obfuscation only); set "
                           "cipher.allowInsecure to true to use it anyway", m->desc.name);
    *out = m;
    return TS_OK;
}

static int open_cipher(ts_db *db, const tsreg_module *m)
{
    ts_env *env = &db->env;
    const tscfg *c = db->cfg;
    int exists = 0, encrypted = 0, present = 0;
    int rc = tspg_probe(env, db->store, &exists, &encrypted);
    if (!rc) rc = tskey_present(db->store, &present);
    if (rc) return rc;
    if (!m) {
        if (present || encrypted)
            return tsenv_error(env, TS_ERR_KEY,
                               "the database at %s is encrypted; configure cipher.module and its key",
                               c->path);
        return TS_OK;
    }
    if (exists && !encrypted)
        return tsenv_error(env, TS_ERR_KEY,
                           "the database at %s is not encrypted; it cannot be opened with cipher "
                           "'%s' (re-encrypting an existing database is a rekey)", c->path,
                           c->cipher_module);
    tskey_user u = { c->cipher_key, c->cipher_passphrase };
    return tskey_open(env, db->store, m, c->cipher_opts, &u, &db->cipher);
}

static int open_pager(ts_db *db)
{
    const tscfg *c = db->cfg;
    tspg_opts o = { c->page_size, (uint64_t)c->cache_bytes, c->durability == TSCFG_DURABILITY_FULL,
                    c->busy_timeout_ms, 0, (uint64_t)c->max_log_bytes, c->page_digest };
    return tspg_open(&db->env, db->store, db->cipher, &o, &db->pg);
}

/* Tables listed under "schemas" in the config: create the missing ones and
 * migrate changed ones (docs/migration.md); a refused migration fails the open. */
static int config_schemas(ts_db *db)
{
    const json_t *sc = db->cfg->schemas;
    if (!sc) return TS_OK;
    tsmig_opts o = { .drop_missing = db->cfg->drop_missing_tables, .allow_lossy = db->cfg->allow_lossy };
    tstx *tx;
    int rc = TS_OK, more = tsmig_running(&db->tables);
    /* background migrations left by the last run finish first, so the
     * schemas are compared with the tables as those tasks leave them */
    while (!rc && more) {
        if ((rc = tscall_tx_begin(db, 1, &tx))) return rc;
        rc = tsmig_task_step(&db->tables, tx, db->cfg->batch_rows, &more);
        if (!rc) rc = tscall_commit(db, tx);
        else tscall_rollback(db, tx);
    }
    if (!rc) rc = tscall_tx_begin(db, 1, &tx);
    if (rc) return rc;
    rc = tsmig_sync(&db->tables, tx, sc, &o, NULL);
    if (!rc) rc = tscall_commit(db, tx);
    else tscall_rollback(db, tx);
    if (rc) tsenv_error_prefix(&db->env, "config schemas");
    return rc;
}

/* Open the catalog and tables and pick the starting space. */
static int open_data(ts_db *db)
{
    int rc = tssys_open(&db->env, db->reg, db->pg, &db->sys);
    /* without a btree module the handle has pages only; a bundled btree
     * that fails to load fails the open with its reason */
    if (rc == TS_ERR_PLUGIN && !tsreg_declared(db->reg, TS_KIND_INDEX, TSSYS_INDEX_MODULE)) {
        tsenv_clear(&db->env);
        return TS_OK;
    }
    if (rc) return rc;
    rc = tstbl_map_open(&db->tables, &db->env, db->reg, &db->sys, db->pg, db->cfg->node_id,
                         db->cfg->cache_bytes);
    if (!rc) rc = config_schemas(db);
    if (rc) return rc;
    snprintf(db->space, sizeof db->space, "default");
    db->space_id = TSSYS_SPACE_DEFAULT;
    if (!db->cfg->apply_active_space_on_default) return TS_OK;
    tstx *tx;
    if ((rc = tstx_begin(db->pg, 0, &tx))) return rc;
    char active[TSSYS_NAME_MAX + 1];
    uint64_t id = 0;
    rc = tssys_active_get(&db->sys, tx, active, sizeof active);
    if (!rc && *active && tssys_space_id(&db->sys, tx, active, &id) == TS_OK) {
        snprintf(db->space, sizeof db->space, "%s", active);
        db->space_id = id;
    }
    tstx_rollback(tx);
    return rc;
}

static int db_free(ts_db *db)
{
    if (!db) return TS_OK;
    tsapi_mig_close(db);
    tsapi_purge_close(db);
    tsapi_watch_close(db);
    tsapi_cache_close(db);
    tsapi_vcache_close(db);
    tstbl_map_close(&db->tables);
    tssys_close(&db->sys);
    int rc = tspg_close(db->pg);
    if (rc) tsenv_export_error(&db->env); /* the handle is gone: report via ts_errmsg(NULL) */
    tscipher_free(db->cipher);
    tsstore_close(db->store);
    tsreg_free(db->reg);
    tscfg_free(db->cfg);
    if (db->gate_init) pthread_rwlock_destroy(&db->gate);
    if (db->txkey_init) {
        pthread_key_delete(db->txkey);
        pthread_mutex_destroy(&db->lock);
    }
    for (size_t i = 0; i < db->nspace_names; i++) free(db->space_names[i]);
    free(db->space_names);
    tsenv_destroy(&db->env);
    free(db);
    return rc;
}

/* Open from a file (file != NULL), JSON text, or the embedded default. */
static int db_open(const char *file, const char *text, ts_db **out)
{
    tsenv_clear(NULL);
    if (!out) return tsenv_error(NULL, TS_ERR_INVALID, "ts_open: out is NULL");
    *out = NULL;
    ts_db *db = calloc(1, sizeof *db);
    if (!db) return tsenv_error(NULL, TS_ERR_NOMEM, "out of memory");
    int rc = tsenv_init(&db->env);
    if (rc) { free(db); return tsenv_error(NULL, rc, "cannot create an error context"); }
    ts_env *env = &db->env;
    if (pthread_key_create(&db->txkey, NULL) != 0) {
        tsenv_destroy(env);
        free(db);
        return tsenv_error(NULL, TS_ERR_RESOURCE, "too many open handles (thread keys)");
    }
    pthread_mutex_init(&db->lock, NULL);
    db->txkey_init = 1;

    if (file) rc = tscfg_load(env, file, &db->cfg);
    else rc = tscfg_parse(env, text ? text : tsb_default_config(),
                          text ? NULL : "embedded default config", &db->cfg);
    if (!rc) rc = tsreg_new(env, &db->reg);
    if (!rc) {
        env->reg = db->reg;
        env->config = db->cfg->root;
        rc = load_plugins(db);
    }
    const tsreg_module *cipher = NULL;
    if (!rc) rc = select_cipher(db, db->cfg, &cipher);
    if (!rc)
        rc = tsstore_open(env, db->reg, db->cfg->backend, db->cfg->backend_opts, db->cfg->path,
                          &db->store);
    if (!rc) rc = tsrekey_recover(env, db->store);
    if (!rc) rc = open_cipher(db, cipher);
    if (!rc) rc = open_pager(db);
    if (!rc) rc = open_data(db);
    if (rc) {
        tsenv_export_error(env);
        db_free(db);
        return rc;
    }
    pthread_rwlock_init(&db->gate, NULL);
    db->gate_init = 1;
    tsapi_purge_ensure(db);
    if (db->tables.env && tsmig_running(&db->tables)) tsapi_mig_ensure(db); /* resume */
    tsenv_clear(env); /* lookups that found nothing leave messages behind */
    *out = db;
    return TS_OK;
}

int ts_open(const char *config_path, ts_db **out) { return db_open(config_path, NULL, out); }

int ts_open_json(const char *config_json, ts_db **out)
{
    if (!config_json) {
        tsenv_clear(NULL);
        if (out) *out = NULL;
        return tsenv_error(NULL, TS_ERR_INVALID, "ts_open_json: config_json is NULL");
    }
    return db_open(NULL, config_json, out);
}

int ts_close(ts_db *db)
{
    return db_free(db);
}

int ts_close_ex(ts_db *db, int keep_active_space)
{
    if (!db) return TS_OK;
    if (!keep_active_space && db->sys.catalog) {
        /* "log out": the next open starts in the default space */
        tstx *tx;
        int rc = tstx_begin(db->pg, 1, &tx);
        if (!rc) rc = tssys_active_set(&db->sys, tx, NULL);
        if (!rc) rc = tstx_commit(tx);
        else if (tx) tstx_rollback(tx);
        if (rc) {
            tsenv_export_error(&db->env);
            db_free(db);
            return rc;
        }
    }
    return db_free(db);
}

static json_t *flags_json(uint32_t f)
{
    json_t *a = json_array();
    if (f & TS_MODULE_THREAD_SAFE) json_array_append_new(a, json_string("thread-safe"));
    if (f & TS_MODULE_INSECURE) json_array_append_new(a, json_string("insecure"));
    return a;
}

/* Listing order: kind, then name (load order depends on what was used). */
static int module_order(const void *a, const void *b)
{
    const tsreg_module *x = *(const tsreg_module *const *)a, *y = *(const tsreg_module *const *)b;
    if (x->desc.kind != y->desc.kind) return x->desc.kind < y->desc.kind ? -1 : 1;
    return strcmp(x->desc.name, y->desc.name);
}

int ts_modules(ts_db *db, json_t **out_new)
{
    if (!db || !out_new) return tsenv_error(db ? &db->env : NULL, TS_ERR_INVALID, "ts_modules: NULL argument");
    int rc = tsreg_load_declared(db->reg);
    if (rc) return rc;
    size_t n = tsreg_count(db->reg);
    const tsreg_module **v = malloc((n ? n : 1) * sizeof *v);
    json_t *arr = v ? json_array() : NULL;
    if (!arr) {
        free(v);
        return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) v[i] = tsreg_at(db->reg, i);
    qsort(v, n, sizeof *v, module_order);
    for (size_t i = 0; i < n; i++) {
        const tsreg_module *m = v[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s}",
            "kind", tsreg_kind_name(m->desc.kind), "name", m->desc.name,
            "version", m->desc.version, "flags", flags_json(m->desc.flags),
            "plugin", m->plugin_name, "pluginVersion", m->plugin_version, "file", m->file));
    }
    free(v);
    *out_new = arr;
    return TS_OK;
}

int ts_config(ts_db *db, json_t **out_new)
{
    if (!db || !out_new) return tsenv_error(db ? &db->env : NULL, TS_ERR_INVALID, "ts_config: NULL argument");
    *out_new = tscfg_effective(db->cfg);
    return *out_new ? TS_OK : tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
}

int ts_storage_control(ts_db *db, const char *op, int64_t arg, int64_t *out)
{
    if (!db || !op) return tsenv_error(db ? &db->env : NULL, TS_ERR_INVALID, "ts_storage_control: NULL argument");
    int64_t dummy = 0;
    if (!db->store->vt->control)
        return tsenv_error(&db->env, TS_ERR_UNSUPPORTED, "storage '%s' has no control operations",
                           db->store->mod->desc.name);
    tsenv_clear(&db->env);
    int rc = db->store->vt->control(db->store->h, op, arg, out ? out : &dummy);
    if (rc && !*tsenv_errmsg(&db->env))
        tsenv_error(&db->env, rc, "storage control '%s': %s", op, tsstatus_text(rc));
    return rc;
}

/* ---- rekey -------------------------------------------------------- */

static int rekey_files(ts_db *db, const tsreg_module *m, const tscfg *nc, unsigned flags,
                       void (*progress)(void *, uint64_t, uint64_t), void *ctx)
{
    ts_env *env = &db->env;
    tskey_user u = { nc->cipher_key, nc->cipher_passphrase };
    uint8_t *ring = NULL;
    size_t ring_len = 0;
    tscipher *next = NULL;
    int rc = TS_OK;
    int same = m && db->cipher && m == db->cipher->mod && !(flags & TS_REKEY_NEW_DATA_KEY);
    if (m) rc = tskey_prepare(env, m, nc->cipher_opts, &u, same ? db->cipher->key : NULL, &ring,
                              &ring_len, &next);
    if (rc) return rc;
    if (same) {
        /* New key or passphrase only: re-wrap the data key (one file). */
        rc = tsstore_put_atomic(db->store, TSKEY_FILE, ring, ring_len);
        if (rc) tsenv_error_prefix(env, "writing %s", TSKEY_FILE);
        tscipher_free(next);
        free(ring);
        return rc;
    }
    /* the catalog's commit stamps are in memory only: the new pager goes on
     * from the old one's, or tables would vanish from later snapshots */
    uint64_t stamp = tspg_stamp(db->pg);
    rc = tspg_close(db->pg);
    db->pg = NULL;
    if (!rc) rc = tsrekey_run(env, db->store, db->cipher, next, ring, ring_len, progress, ctx);
    free(ring);
    if (rc) {
        /* Settle whatever a failed run left, then reopen with whichever key
         * the files now hold. */
        int rc2 = tsrekey_recover(env, db->store);
        int present = 0;
        uint64_t kid = 0;
        if (!rc2) rc2 = tskey_file_id(db->store, TSKEY_FILE, &present, &kid);
        if (!rc2 && next && present && kid == next->keyid) {
            tscipher_free(db->cipher);
            db->cipher = next;
            next = NULL;
        }
    } else {
        tscipher_free(db->cipher);
        db->cipher = next;
        next = NULL;
    }
    tscipher_free(next);
    int rc3 = open_pager(db);
    if (!rc3) tspg_stamp_restore(db->pg, stamp);
    return rc ? rc : rc3;
}

int ts_rekey(ts_db *db, const char *cipher_json, unsigned flags,
             void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx)
{
    if (!db) return tsenv_error(NULL, TS_ERR_INVALID, "ts_rekey: db is NULL");
    ts_env *env = &db->env;
    tsenv_clear(env);
    /* Validate the cipher section exactly as tostore.json's. */
    size_t n = cipher_json ? strlen(cipher_json) : 0;
    char *text = malloc(n + 16);
    if (!text) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    snprintf(text, n + 16, "{\"cipher\": %s}", cipher_json ? cipher_json : "{}");
    tscfg *nc = NULL;
    int rc = tscfg_parse(env, text, "ts_rekey", &nc);
    free(text);
    if (rc) return rc;
    const tsreg_module *m = NULL;
    pthread_rwlock_wrlock(&db->gate);
    rc = select_cipher(db, nc, &m);
    if (!rc && !db->pg) rc = tsenv_error(env, TS_ERR_DB, "the database is not open");
    if (!rc && (m || db->cipher)) rc = rekey_files(db, m, nc, flags, progress, ctx);
    pthread_rwlock_unlock(&db->gate);
    tscfg_free(nc);
    return rc;
}

/* ---- stats and check ---------------------------------------------- */

int ts_stats(ts_db *db, json_t **out_new)
{
    if (!db || !out_new) return tsenv_error(db ? &db->env : NULL, TS_ERR_INVALID, "ts_stats: NULL argument");
    pthread_rwlock_rdlock(&db->gate);
    tspg_stats s;
    tspg_stats_get(db->pg, &s);
    pthread_rwlock_unlock(&db->gate);
    *out_new = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
                         "pageSize", (json_int_t)s.page_size, "pages", (json_int_t)s.page_count,
                         "freePages", (json_int_t)s.free_pages,
                         "bytes", (json_int_t)(s.page_count * s.page_size),
                         "logBytes", (json_int_t)s.log_bytes,
                         "cacheHits", (json_int_t)s.cache_hits,
                         "cacheMisses", (json_int_t)s.cache_misses,
                         "cachePages", (json_int_t)s.cache_pages,
                         "cacheMemory", (json_int_t)s.cache_memory,
                         "cacheMemoryPeak", (json_int_t)s.cache_memory_peak,
                         "commits", (json_int_t)s.commits, "syncs", (json_int_t)s.syncs,
                         "checkpoints", (json_int_t)s.checkpoints, "encrypted", db->cipher != NULL);
    if (!*out_new) return tsenv_error(&db->env, TS_ERR_NOMEM, "out of memory");
    int rc = db->tables.env ? tsapi_tables_stats(db, *out_new) : TS_OK;
    if (rc) {
        json_decref(*out_new);
        *out_new = NULL;
    }
    return rc;
}

int ts_check(ts_db *db, json_t **report_new,
             void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx)
{
    if (!db) return tsenv_error(NULL, TS_ERR_INVALID, "ts_check: db is NULL");
    tsenv_clear(&db->env);
    tspg_check_report r;
    pthread_rwlock_rdlock(&db->gate);
    int rc = tspg_check(db->pg, &r, progress, ctx);
    pthread_rwlock_unlock(&db->gate);
    if (rc) return rc;
    if (report_new)
        *report_new = json_pack("{s:b, s:I, s:I, s:I, s:I, s:b, s:b}", "ok", r.ok,
                                "pages", (json_int_t)r.pages, "freePages", (json_int_t)r.free_pages,
                                "badPages", (json_int_t)r.bad_pages,
                                "firstBadPage", (json_int_t)r.first_bad,
                                "freeListBroken", r.freelist_broken,
                                "staleVersions", r.digest_bad);
    if (!r.ok && !r.bad_pages && !r.freelist_broken)
        return tsenv_error(&db->env, TS_ERR_CORRUPT,
                           "integrity check failed: a page is not the version the database "
                           "expects (an older copy put back, or a lost write)");
    if (!r.ok)
        return tsenv_error(&db->env, TS_ERR_CORRUPT,
                           "integrity check failed: %llu bad page(s) (first: %llu)%s",
                           (unsigned long long)r.bad_pages, (unsigned long long)r.first_bad,
                           r.freelist_broken ? ", free list broken" : "");
    return TS_OK;
}
