#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/env.h"
#include "config/config.h"

/* Each check reports "<json path>: <what is wrong>" with TS_ERR_CONFIG. */
#define BAD(...) tsenv_error(env, TS_ERR_CONFIG, __VA_ARGS__)

static int only_keys(ts_env *env, const json_t *obj, const char *where,
                     const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0) { ok = 1; break; }
        if (!ok)
            return BAD("%s%s%s: unknown key", where, *where ? "." : "", k);
    }
    return TS_OK;
}

static int get_str(ts_env *env, const json_t *obj, const char *key, const char *where,
                   const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return TS_OK;
    if (!json_is_string(v)) return BAD("%s%s%s: expected a string", where, *where ? "." : "", key);
    *out = json_string_value(v);
    return TS_OK;
}

static int get_bool(ts_env *env, const json_t *obj, const char *key, const char *where, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return TS_OK;
    if (!json_is_boolean(v))
        return BAD("%s%s%s: expected true or false", where, *where ? "." : "", key);
    *out = json_is_true(v);
    return TS_OK;
}

static int get_int(ts_env *env, const json_t *obj, const char *key, int64_t lo, int64_t hi,
                   int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return TS_OK;
    if (!json_is_integer(v)) return BAD("%s: expected an integer", key);
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return BAD("%s: %lld is out of range [%lld, %lld]", key, (long long)x, (long long)lo,
                   (long long)hi);
    *out = x;
    return TS_OK;
}

static int get_obj(ts_env *env, const json_t *obj, const char *key, const char *where,
                   const json_t **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return TS_OK;
    if (!json_is_object(v)) return BAD("%s%s%s: expected an object", where, *where ? "." : "", key);
    *out = v;
    return TS_OK;
}

static int parse_storage(ts_env *env, tscfg *c)
{
    const json_t *s = NULL;
    int rc = get_obj(env, c->root, "storage", "", &s);
    if (rc || !s) return rc;
    static const char *const keys[] = { "backend", "options", NULL };
    if ((rc = only_keys(env, s, "storage", keys))) return rc;
    if ((rc = get_str(env, s, "backend", "storage", &c->backend))) return rc;
    return get_obj(env, s, "options", "storage", &c->backend_opts);
}

static int parse_cipher(ts_env *env, tscfg *c)
{
    const json_t *s = NULL;
    int rc = get_obj(env, c->root, "cipher", "", &s);
    if (rc || !s) return rc;
    static const char *const keys[] = { "module", "key", "passphrase", "allowInsecure",
                                        "options", NULL };
    if ((rc = only_keys(env, s, "cipher", keys))) return rc;
    if ((rc = get_str(env, s, "module", "cipher", &c->cipher_module))) return rc;
    if ((rc = get_str(env, s, "key", "cipher", &c->cipher_key))) return rc;
    if ((rc = get_str(env, s, "passphrase", "cipher", &c->cipher_passphrase))) return rc;
    if ((rc = get_bool(env, s, "allowInsecure", "cipher", &c->cipher_allow_insecure))) return rc;
    if ((rc = get_obj(env, s, "options", "cipher", &c->cipher_opts))) return rc;
    if (c->cipher_module && !*c->cipher_module) c->cipher_module = NULL;
    if (c->cipher_key && c->cipher_passphrase)
        return BAD("cipher: give either key or passphrase, not both");
    if (c->cipher_module && !c->cipher_key && !c->cipher_passphrase)
        return BAD("cipher: module '%s' needs a key or a passphrase", c->cipher_module);
    if (!c->cipher_module && (c->cipher_key || c->cipher_passphrase))
        return BAD("cipher: a key is given but no cipher module");
    if (c->cipher_passphrase && !*c->cipher_passphrase)
        return BAD("cipher.passphrase: must not be empty");
    return TS_OK;
}

static int parse_migration(ts_env *env, tscfg *c)
{
    const json_t *s = NULL;
    int rc = get_obj(env, c->root, "migration", "", &s);
    if (rc || !s) return rc;
    static const char *const keys[] = { "allowLossy", "dropMissingTables", "batchRows",
                                        "batchPauseMs", NULL };
    if ((rc = only_keys(env, s, "migration", keys))) return rc;
    if ((rc = get_bool(env, s, "allowLossy", "migration", &c->allow_lossy))) return rc;
    if (!rc) rc = get_int(env, s, "batchRows", 1, 1000000, &c->batch_rows);
    if (!rc) rc = get_int(env, s, "batchPauseMs", 0, 60000, &c->batch_pause_ms);
    if (rc) {
        tsenv_error_prefix(env, "migration");
        return rc;
    }
    return get_bool(env, s, "dropMissingTables", "migration", &c->drop_missing_tables);
}

static int parse_plugins(ts_env *env, tscfg *c)
{
    json_t *pp = json_object_get(c->root, "pluginPath");
    if (pp) {
        if (json_is_string(pp)) {
            c->plugin_path = calloc(2, sizeof *c->plugin_path);
            if (!c->plugin_path) return BAD("out of memory");
            c->plugin_path[0] = json_string_value(pp);
        } else if (json_is_array(pp)) {
            size_t n = json_array_size(pp);
            c->plugin_path = calloc(n + 1, sizeof *c->plugin_path);
            if (!c->plugin_path) return BAD("out of memory");
            for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(pp, i);
                if (!json_is_string(e)) return BAD("pluginPath[%zu]: expected a string", i);
                c->plugin_path[i] = json_string_value(e);
            }
        } else {
            return BAD("pluginPath: expected a string or an array of strings");
        }
    }
    json_t *pl = json_object_get(c->root, "plugins");
    if (pl) {
        if (!json_is_array(pl)) return BAD("plugins: expected an array of strings");
        size_t n = json_array_size(pl);
        c->plugins = calloc(n ? n : 1, sizeof *c->plugins);
        if (!c->plugins) return BAD("out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(pl, i);
            if (!json_is_string(e) || !*json_string_value(e))
                return BAD("plugins[%zu]: expected a file path or plugin name", i);
            c->plugins[i].spec = json_string_value(e);
            snprintf(c->plugins[i].where, sizeof c->plugins[i].where, "plugins[%zu]", i);
        }
        c->nplugins = n;
    }
    return get_bool(env, c->root, "loadBundled", "", &c->load_bundled);
}

static int parse_root(ts_env *env, tscfg *c)
{
    static const char *const keys[] = {
        "path", "pluginPath", "plugins", "loadBundled", "storage", "cipher", "pageSize",
        "cacheBytes", "durability", "busyTimeoutMs", "maxLogBytes", "pageDigest", "defaultQueryLimit",
        "nodeId",
        "applyActiveSpaceOnDefault", "migration", "schemas", NULL };
    int rc;
    if ((rc = only_keys(env, c->root, "", keys))) return rc;
    if ((rc = get_str(env, c->root, "path", "", &c->path))) return rc;
    if (!*c->path) return BAD("path: must not be empty");
    if ((rc = parse_plugins(env, c))) return rc;
    if ((rc = parse_storage(env, c))) return rc;
    if ((rc = parse_cipher(env, c))) return rc;
    if ((rc = parse_migration(env, c))) return rc;

    int64_t ps = c->page_size;
    if ((rc = get_int(env, c->root, "pageSize", 4096, 65536, &ps))) return rc;
    if (ps & (ps - 1)) return BAD("pageSize: %lld is not a power of two", (long long)ps);
    c->page_size = (uint32_t)ps;
    if ((rc = get_int(env, c->root, "cacheBytes", 65536, INT64_MAX, &c->cache_bytes))) return rc;
    if ((rc = get_int(env, c->root, "busyTimeoutMs", 0, INT32_MAX, &c->busy_timeout_ms))) return rc;
    if ((rc = get_int(env, c->root, "maxLogBytes", 0, INT64_MAX, &c->max_log_bytes))) return rc;
    if (c->max_log_bytes && c->max_log_bytes < (1 << 20))
        return BAD("maxLogBytes: %lld is below 1048576 (use 0 for no cap)", (long long)c->max_log_bytes);
    if ((rc = get_int(env, c->root, "defaultQueryLimit", 1, INT64_MAX, &c->default_query_limit)))
        return rc;
    if ((rc = get_int(env, c->root, "nodeId", 0, 1023, &c->node_id))) return rc;
    if ((rc = get_bool(env, c->root, "pageDigest", "", &c->page_digest))) return rc;
    if ((rc = get_bool(env, c->root, "applyActiveSpaceOnDefault", "",
                       &c->apply_active_space_on_default)))
        return rc;
    const char *d = NULL;
    if ((rc = get_str(env, c->root, "durability", "", &d))) return rc;
    if (d) {
        if (strcmp(d, "full") == 0) c->durability = TSCFG_DURABILITY_FULL;
        else if (strcmp(d, "normal") == 0) c->durability = TSCFG_DURABILITY_NORMAL;
        else return BAD("durability: expected \"full\" or \"normal\", got \"%s\"", d);
    }
    json_t *sc = json_object_get(c->root, "schemas");
    if (sc) {
        if (!json_is_array(sc)) return BAD("schemas: expected an array of table schemas");
        for (size_t i = 0; i < json_array_size(sc); i++)
            if (!json_is_object(json_array_get(sc, i)))
                return BAD("schemas[%zu]: expected an object", i);
        c->schemas = sc;
    }
    return TS_OK;
}

int tscfg_parse(ts_env *env, const char *text, const char *origin, tscfg **out)
{
    *out = NULL;
    if (!text) return tsenv_error(env, TS_ERR_INVALID, "config: NULL text");
    tscfg *c = calloc(1, sizeof *c);
    if (!c) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    c->path = "./tostore_data";
    c->load_bundled = 1;
    c->backend = "posix";
    c->page_size = 4096;
    c->cache_bytes = 64 << 20;
    c->durability = TSCFG_DURABILITY_FULL;
    c->busy_timeout_ms = 5000;
    c->max_log_bytes = 1ll << 30;
    c->default_query_limit = 1000;
    c->batch_rows = 2000;
    c->apply_active_space_on_default = 1;

    json_error_t jerr;
    c->root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    int rc;
    if (!c->root) {
        rc = BAD("%s: line %d, column %d: %s", origin ? origin : "config", jerr.line,
                 jerr.column, jerr.text);
    } else if (!json_is_object(c->root)) {
        rc = BAD("%s: the top level must be a JSON object", origin ? origin : "config");
    } else {
        rc = parse_root(env, c);
        if (rc && origin) tsenv_error_prefix(env, "%s", origin);
    }
    if (rc) { tscfg_free(c); return rc; }
    *out = c;
    return TS_OK;
}

int tscfg_load(ts_env *env, const char *file, tscfg **out)
{
    *out = NULL;
    FILE *f = fopen(file, "rb");
    if (!f) return tsenv_error(env, TS_ERR_CONFIG, "%s: cannot open config file", file);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (64u << 20)) { free(buf); fclose(f);
                return tsenv_error(env, TS_ERR_CONFIG, "%s: larger than 64 MiB", file); }
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return tsenv_error(env, TS_ERR_NOMEM, "out of memory"); }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return tsenv_error(env, TS_ERR_CONFIG, "%s: read error", file); }
    buf[len] = '\0';
    int rc = tscfg_parse(env, buf, file, out);
    free(buf);
    return rc;
}

void tscfg_free(tscfg *c)
{
    if (!c) return;
    json_decref(c->root);
    free(c->plugin_path);
    free(c->plugins);
    free(c);
}

json_t *tscfg_effective(const tscfg *c)
{
    json_t *o = json_deep_copy(c->root);
    if (!o) return NULL;
    json_object_set_new(o, "path", json_string(c->path));
    json_object_set_new(o, "loadBundled", json_boolean(c->load_bundled));
    json_t *st = json_object_get(o, "storage");
    if (!st) { st = json_object(); json_object_set_new(o, "storage", st); }
    json_object_set_new(st, "backend", json_string(c->backend));
    json_t *ci = json_object_get(o, "cipher");
    if (ci) {
        if (json_object_get(ci, "key")) json_object_set_new(ci, "key", json_string("(hidden)"));
        if (json_object_get(ci, "passphrase"))
            json_object_set_new(ci, "passphrase", json_string("(hidden)"));
    }
    json_object_set_new(o, "pageSize", json_integer(c->page_size));
    json_object_set_new(o, "cacheBytes", json_integer(c->cache_bytes));
    json_object_set_new(o, "durability",
                        json_string(c->durability == TSCFG_DURABILITY_FULL ? "full" : "normal"));
    json_object_set_new(o, "busyTimeoutMs", json_integer(c->busy_timeout_ms));
    json_object_set_new(o, "maxLogBytes", json_integer(c->max_log_bytes));
    json_object_set_new(o, "pageDigest", json_boolean(c->page_digest));
    json_object_set_new(o, "defaultQueryLimit", json_integer(c->default_query_limit));
    json_object_set_new(o, "nodeId", json_integer(c->node_id));
    json_object_set_new(o, "applyActiveSpaceOnDefault",
                        json_boolean(c->apply_active_space_on_default));
    json_object_set_new(o, "migration", json_pack("{s:b, s:b, s:I, s:I}", "allowLossy", c->allow_lossy,
                                                  "dropMissingTables", c->drop_missing_tables,
                                                  "batchRows", (json_int_t)c->batch_rows,
                                                  "batchPauseMs", (json_int_t)c->batch_pause_ms));
    return o;
}
