/*
 * tostore.json: parsing, validation (every error names its JSON path) and
 * defaults.  See docs/config.md for the meaning of each key.
 */
#ifndef TS_CONFIG_CONFIG_H
#define TS_CONFIG_CONFIG_H

#include <stdint.h>
#include <jansson.h>
#include <tostore/plugin.h>

enum { TSCFG_DURABILITY_FULL = 0, TSCFG_DURABILITY_NORMAL = 1 };

typedef struct tscfg_plugin {
    const char *spec;   /* file path or bare name */
    char        where[32]; /* JSON path for messages, e.g. "plugins[2]" */
} tscfg_plugin;

typedef struct tscfg {
    json_t       *root;        /* the parsed document (owned) */
    const char   *path;        /* data directory */
    const char  **plugin_path; /* NULL-terminated, or NULL: default folders */
    tscfg_plugin *plugins;
    size_t        nplugins;
    int           load_bundled;
    const char   *backend;
    const json_t *backend_opts;     /* may be NULL */
    const char   *cipher_module;    /* NULL: no encryption */
    const char   *cipher_key;       /* "hex:..", "base64:..", "env:VAR" or NULL */
    const char   *cipher_passphrase;
    int           cipher_allow_insecure;
    const json_t *cipher_opts;
    uint32_t      page_size;
    int64_t       cache_bytes;
    int           durability;
    int64_t       busy_timeout_ms;
    int64_t       max_log_bytes;
    int           page_digest;
    int64_t       default_query_limit;
    int64_t       node_id;
    int           apply_active_space_on_default;
    int           allow_lossy;
    int           drop_missing_tables;
    int64_t       batch_rows;       /* migration.batchRows: rows per background batch */
    int64_t       batch_pause_ms;   /* migration.batchPauseMs: pause between batches */
    const json_t *schemas;          /* array or NULL (absent) */
} tscfg;

/* Parse config text; `origin` names it in messages (file path or NULL). */
int  tscfg_parse(ts_env *env, const char *text, const char *origin, tscfg **out);
/* Read and parse a file. */
int  tscfg_load(ts_env *env, const char *file, tscfg **out);
void tscfg_free(tscfg *c);
/* The effective configuration with defaults and without secrets (new ref). */
json_t *tscfg_effective(const tscfg *c);

#endif
