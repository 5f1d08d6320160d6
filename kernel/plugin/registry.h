/*
 * The module registry: loads plugin shared objects, checks every field of
 * their descriptors against the ABI before running any of their code, and
 * finds modules by kind and name.  One registry per database handle (no
 * process-wide state); plugins are unloaded when it is freed, after every
 * instance made from them has been closed.
 */
#ifndef TS_PLUGIN_REGISTRY_H
#define TS_PLUGIN_REGISTRY_H

#include <stddef.h>
#include <tostore/plugin.h>

typedef struct tsreg tsreg;

/* What the registry knows about one registered module.  `vtab` is the
 * kernel's own zero-padded copy of the plugin's vtable, kernel-sized, so
 * callers may read any field the kernel knows: fields a plugin built for an
 * older minor version lacks read as NULL/0. */
typedef struct tsreg_module {
    ts_module       desc;         /* copy; desc.vtab points to `vtab` below */
    const void     *vtab;
    const char     *plugin_name;
    const char     *plugin_version;
    const char     *file;         /* resolved path of the .so */
    void           *plugin_state; /* from the plugin's init */
} tsreg_module;

int  tsreg_new(ts_env *env, tsreg **out);
/* Unload everything (fini, then dlclose).  Accepts NULL. */
void tsreg_free(tsreg *reg);

/* Load and register one plugin: `spec` is a path (contains '/') or a bare
 * name looked up as <dir>/<name>.so in dirs (NULL-terminated).  All or
 * nothing: on failure nothing of the plugin stays registered and the error
 * (TS_ERR_PLUGIN, or TS_ERR_NOT_FOUND for a missing file) names the file.
 * Loading a file that is already loaded is a no-op. */
int  tsreg_load(tsreg *reg, const char *spec, const char *const *dirs);

/* Declare that the plugin `spec` (resolved now, as for tsreg_load) presents
 * the module `module` of kind `kind` ("storage", "cipher", "index", "pkgen")
 * without loading it: the first lookup of that module loads the plugin, and
 * a plugin loaded later with a module of that name is refused as a
 * duplicate.  When the plugin loads, every module declared for it must be
 * among those it presents, and it may present no undeclared one. */
int  tsreg_declare(tsreg *reg, const char *spec, const char *kind, const char *module,
                   const char *const *dirs);
/* Load every declared plugin not loaded yet (for listings); TS_ERR_PLUGIN
 * with its reason if one cannot be (also one that failed before). */
int  tsreg_load_declared(tsreg *reg);
/* 1 if a module of that kind and name was declared (loaded or not). */
int  tsreg_declared(tsreg *reg, uint32_t kind, const char *name);

/* Find a module, loading its declared plugin on first use; NULL when there
 * is none or its plugin failed to load (the reason is then in the calling
 * thread's error slot).  Thread-safe; records stay valid until tsreg_free. */
int  tsreg_find(tsreg *reg, uint32_t kind, const char *name,
                const ts_module **mod_out, void **plugin_state_out);
/* Like tsreg_find but returns the registry record. */
const tsreg_module *tsreg_lookup(tsreg *reg, uint32_t kind, const char *name);

/* The loaded modules (declared ones count once loaded). */
size_t tsreg_count(tsreg *reg);
const tsreg_module *tsreg_at(tsreg *reg, size_t i);

/* Kind names ("storage", "cipher", "index", "pkgen"); NULL if unknown. */
const char *tsreg_kind_name(uint32_t kind);

/* The default plugin folders (build tree when running from it, the folder
 * beside the library, the install folder), existing ones only, as a
 * NULL-terminated array owned by the registry. */
const char *const *tsreg_default_dirs(tsreg *reg);

#endif
