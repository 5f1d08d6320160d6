/*
 * Plugin loading in the manner of PostgreSQL's magic block and SQLite's
 * loadable extensions: resolve, dlopen(RTLD_NOW|RTLD_LOCAL), read the
 * constant descriptor, validate all of it, then init and commit.
 *
 * Declared plugins (the bundled ones) are resolved at open but loaded on
 * the first lookup of one of their modules: dlopen and relocation of a
 * plugin and its libraries (OpenSSL for aes256gcm) cost 0.1-1 ms each, and
 * most handles use a backend, a cipher and one or two index types.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/build_info.h"
#include "base/env.h"
#include "plugin/kinds.h"
#include "plugin/registry.h"
#include "base/status.h"

typedef struct tsreg_plugin {
    void            *dl;
    const ts_plugin *desc;
    char            *file;
    void            *state;
    int              inited;
} tsreg_plugin;

/* A module a declared plugin will present once loaded. */
typedef struct tsreg_decl {
    char     *file;       /* resolved path of the plugin */
    uint32_t  kind;
    char      module[TS_NAME_MAX + 1];
    int       tried;      /* a load was attempted: loaded, or failed once */
    char     *why;        /* the failure's message, kept for every later lookup */
} tsreg_decl;

struct tsreg {
    ts_env         *env;
    pthread_mutex_t mu;        /* recursive: a plugin's init may look modules up */
    int             loading;   /* a load is in progress on the thread holding mu */
    tsreg_plugin   *plugins;
    size_t          nplugins, capplugins;
    tsreg_module  **modules;   /* records never move: lookups hand out pointers */
    size_t          nmodules, capmodules;
    tsreg_decl     *decls;
    size_t          ndecls, capdecls;
    char          **dirs;      /* default plugin dirs, NULL-terminated */
};

int tsreg_new(ts_env *env, tsreg **out)
{
    tsreg *r = calloc(1, sizeof *r);
    if (!r) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int e = pthread_mutex_init(&r->mu, &a);
    pthread_mutexattr_destroy(&a);
    if (e) { free(r); return tsenv_error(env, TS_ERR_RESOURCE, "cannot create a mutex"); }
    r->env = env;
    *out = r;
    return TS_OK;
}

static void unload_plugin(tsreg_plugin *p)
{
    if (p->inited && p->desc->fini) p->desc->fini(p->state);
    if (p->dl) dlclose(p->dl);
    free(p->file);
}

void tsreg_free(tsreg *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nmodules; i++) {
        free((void *)r->modules[i]->vtab);
        free(r->modules[i]);
    }
    /* Every instance is closed by now; reverse load order for the fini
     * callbacks (bundled plugins load on first use, so this is use order). */
    for (size_t i = r->nplugins; i-- > 0;)
        unload_plugin(&r->plugins[i]);
    if (r->dirs)
        for (char **d = r->dirs; *d; d++) free(*d);
    free(r->dirs);
    for (size_t i = 0; i < r->ndecls; i++) {
        free(r->decls[i].file);
        free(r->decls[i].why);
    }
    free(r->decls);
    free(r->plugins);
    free(r->modules);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int valid_name(const char *s)
{
    if (!s || !*s) return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
        if (n >= TS_NAME_MAX) return 0;
    }
    return 1;
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Resolve spec to an existing file path (malloc'd) or report not found. */
static int resolve(tsreg *r, const char *spec, const char *const *dirs, char **out)
{
    char buf[PATH_MAX];
    if (strchr(spec, '/')) {
        if (!is_file(spec))
            return tsenv_error(r->env, TS_ERR_NOT_FOUND, "%s: file not found", spec);
        *out = realpath(spec, NULL);
        return *out ? TS_OK : tsenv_error(r->env, TS_ERR_NOMEM, "out of memory");
    }
    if (!valid_name(spec))
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: not a valid plugin name", spec);
    for (size_t i = 0; dirs && dirs[i]; i++) {
        snprintf(buf, sizeof buf, "%s/%s.so", dirs[i], spec);
        if (is_file(buf)) {
            *out = realpath(buf, NULL);
            return *out ? TS_OK : tsenv_error(r->env, TS_ERR_NOMEM, "out of memory");
        }
    }
    return tsenv_error(r->env, TS_ERR_NOT_FOUND,
                       "%s: file not found (looked for %s.so in %s%s)", spec, spec,
                       dirs && dirs[0] ? dirs[0] : "no plugin folder",
                       dirs && dirs[0] && dirs[1] ? " and others" : "");
}

static const tsreg_module *find_rec(const tsreg *r, uint32_t kind, const char *name)
{
    for (size_t i = 0; i < r->nmodules; i++)
        if (r->modules[i]->desc.kind == kind && strcmp(r->modules[i]->desc.name, name) == 0)
            return r->modules[i];
    return NULL;
}

static tsreg_decl *find_decl(tsreg *r, uint32_t kind, const char *name)
{
    for (size_t i = 0; i < r->ndecls; i++)
        if (r->decls[i].kind == kind && strcmp(r->decls[i].module, name) == 0)
            return &r->decls[i];
    return NULL;
}

static int declared_file(const tsreg *r, const char *file)
{
    for (size_t i = 0; i < r->ndecls; i++)
        if (strcmp(r->decls[i].file, file) == 0) return 1;
    return 0;
}

/* The smallest ts_module / ts_plugin an ABI 1.0 plugin may present. */
#define MODULE_MIN (offsetof(ts_module, vtab) + sizeof(const void *))
#define PLUGIN_MIN (offsetof(ts_plugin, modules) + sizeof(void *))

/* Validate one module descriptor.  Runs no plugin code. */
static int check_module(tsreg *r, const char *file, const ts_module *const *mods, size_t i)
{
    const ts_module *m = mods[i];
    if (m->struct_size < MODULE_MIN)
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: module %zu: struct_size %u too small",
                           file, i, m->struct_size);
    const tskind *k = tskind_get(m->kind);
    if (!k)
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: module %zu: unknown kind %u", file, i,
                           m->kind);
    if (!valid_name(m->name))
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: module %zu: invalid name", file, i);
    if (!m->version)
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: module %s: no version", file, m->name);
    if (m->flags & ~(uint32_t)(TS_MODULE_THREAD_SAFE | TS_MODULE_INSECURE))
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: module %s: unknown flags 0x%x", file,
                           m->name, m->flags);
    for (size_t j = 0; j < i; j++)
        if (mods[j]->kind == m->kind && strcmp(mods[j]->name, m->name) == 0)
            return tsenv_error(r->env, TS_ERR_PLUGIN,
                               "%s: duplicate %s module name '%s' in the plugin", file, k->name,
                               m->name);
    const tsreg_module *prev = find_rec(r, m->kind, m->name);
    if (prev)
        return tsenv_error(r->env, TS_ERR_PLUGIN,
                           "%s: duplicate %s module name '%s' (already loaded from %s)", file,
                           k->name, m->name, prev->file);
    const tsreg_decl *d = find_decl(r, m->kind, m->name);
    if (d && strcmp(d->file, file) != 0)
        return tsenv_error(r->env, TS_ERR_PLUGIN,
                           "%s: duplicate %s module name '%s' (bundled in %s)", file, k->name,
                           m->name, d->file);
    if (!d && declared_file(r, file))
        return tsenv_error(r->env, TS_ERR_PLUGIN,
                           "%s: %s module '%s' is not in the bundled manifest (CMake "
                           "TS_BUNDLED_MODULES)", file, k->name, m->name);
    if (!m->vtab)
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: module %s: no vtable", file, m->name);
    if (m->vtab_size < k->vtab_min)
        return tsenv_error(r->env, TS_ERR_PLUGIN,
                           "%s: module %s: %s vtable size %u, need at least %zu", file, m->name,
                           k->name, m->vtab_size, k->vtab_min);
    if (*(const uint32_t *)m->vtab != m->vtab_size)
        return tsenv_error(r->env, TS_ERR_PLUGIN,
                           "%s: module %s: vtable struct_size %u differs from vtab_size %u",
                           file, m->name, *(const uint32_t *)m->vtab, m->vtab_size);
    for (size_t j = 0; j < k->nrequired; j++) {
        void (*fn)(void);
        memcpy(&fn, (const char *)m->vtab + k->required[j], sizeof fn);
        if (!fn)
            return tsenv_error(r->env, TS_ERR_PLUGIN,
                               "%s: module %s: required %s callback '%s' is missing", file,
                               m->name, k->name, k->required_names[j]);
    }
    if (k->check) {
        const char *why = k->check(m->vtab);
        if (why)
            return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: module %s: %s", file, m->name, why);
    }
    return TS_OK;
}

static int check_plugin(tsreg *r, const char *file, const ts_plugin *p, size_t *nmods)
{
    if (!p)
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: entry symbol returned NULL", file);
    if (p->magic != TS_PLUGIN_MAGIC)
        return tsenv_error(r->env, TS_ERR_PLUGIN,
                           "%s: wrong magic 0x%08x (not a tostore plugin)", file, p->magic);
    if (p->abi_major != TS_ABI_MAJOR)
        return tsenv_error(r->env, TS_ERR_PLUGIN,
                           "%s: ABI major version %u, this kernel has %d", file, p->abi_major,
                           TS_ABI_MAJOR);
    if (p->abi_minor > TS_ABI_MINOR)
        return tsenv_error(r->env, TS_ERR_PLUGIN,
                           "%s: ABI %u.%u is newer than this kernel's %d.%d", file,
                           p->abi_major, p->abi_minor, TS_ABI_MAJOR, TS_ABI_MINOR);
    if (p->struct_size < PLUGIN_MIN)
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: plugin struct_size %u too small", file,
                           p->struct_size);
    if (!valid_name(p->name))
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: invalid plugin name", file);
    if (!p->version)
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: plugin has no version", file);
    if (!p->modules || !p->modules[0])
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: plugin lists no modules", file);
    size_t n = 0;
    for (; p->modules[n]; n++) {
        if (n >= 1024)
            return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: module list not terminated", file);
        int rc = check_module(r, file, p->modules, n);
        if (rc) return rc;
    }
    for (size_t i = 0; i < r->ndecls; i++) {
        const tsreg_decl *d = &r->decls[i];
        if (strcmp(d->file, file) != 0) continue;
        size_t j = 0;
        while (j < n && !(p->modules[j]->kind == d->kind && strcmp(p->modules[j]->name, d->module) == 0))
            j++;
        if (j == n)
            return tsenv_error(r->env, TS_ERR_PLUGIN,
                               "%s: presents no %s module '%s', which the bundled manifest "
                               "declares", file, tsreg_kind_name(d->kind), d->module);
    }
    *nmods = n;
    return TS_OK;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem);

/* Free records [base, base + n) of a load that failed before committing. */
static void drop_records(tsreg *r, size_t base, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        free((void *)r->modules[base + j]->vtab);
        free(r->modules[base + j]);
        r->modules[base + j] = NULL;
    }
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* Load the resolved `file` (taken over).  Caller holds r->mu. */
static int load_file(tsreg *r, char *file)
{
    int rc;
    for (size_t i = 0; i < r->nplugins; i++)
        if (strcmp(r->plugins[i].file, file) == 0) { free(file); return TS_OK; }

    tsreg_plugin pl = { .file = file };
    dlerror();
    pl.dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!pl.dl) {
        const char *e = dlerror();
        rc = tsenv_error(r->env, TS_ERR_PLUGIN, "%s: cannot load: %s", file, e ? e : "?");
        goto fail;
    }
    ts_plugin_entry_fn entry;
    void *sym = dlsym(pl.dl, TS_PLUGIN_ENTRY_NAME);
    if (!sym) {
        rc = tsenv_error(r->env, TS_ERR_PLUGIN, "%s: no entry symbol '%s'", file,
                         TS_PLUGIN_ENTRY_NAME);
        goto fail;
    }
    memcpy(&entry, &sym, sizeof entry);
    pl.desc = entry();
    size_t n = 0;
    rc = check_plugin(r, file, pl.desc, &n);
    if (rc) goto fail;

    if (grow((void **)&r->modules, &r->capmodules, r->nmodules + n, sizeof *r->modules) ||
        grow((void **)&r->plugins, &r->capplugins, r->nplugins + 1, sizeof *r->plugins)) {
        rc = tsenv_error(r->env, TS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* Copy each vtable into a kernel-sized, zero-padded block. */
    size_t base = r->nmodules;
    for (size_t i = 0; i < n; i++) {
        const ts_module *m = pl.desc->modules[i];
        const tskind *k = tskind_get(m->kind);
        size_t sz = k->vtab_size > m->vtab_size ? k->vtab_size : m->vtab_size;
        void *copy = calloc(1, sz);
        tsreg_module *rec = calloc(1, sizeof *rec);
        if (!copy || !rec) {
            free(copy);
            free(rec);
            drop_records(r, base, i);
            rc = tsenv_error(r->env, TS_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(copy, m->vtab, m->vtab_size);
        r->modules[base + i] = rec;
        memcpy(&rec->desc, m, m->struct_size < sizeof(ts_module) ? m->struct_size
                                                                 : sizeof(ts_module));
        rec->desc.vtab = copy;
        rec->vtab = copy;
        rec->plugin_name = pl.desc->name;
        rec->plugin_version = pl.desc->version;
        rec->file = file;
    }
    if (pl.desc->init) {
        tsenv_clear(r->env);
        r->loading = 1;
        rc = pl.desc->init(tsenv_host(), r->env, &pl.state);
        r->loading = 0;
        if (rc != TS_OK) {
            const char *why = tsenv_errmsg(r->env);
            char msg[512];
            snprintf(msg, sizeof msg, "%s", why && *why ? why : tsstatus_text(rc));
            drop_records(r, base, n);
            rc = tsenv_error(r->env, TS_ERR_PLUGIN, "%s: init failed: %s", file, msg);
            goto fail;
        }
        pl.inited = 1;
    }
    for (size_t i = 0; i < n; i++) r->modules[base + i]->plugin_state = pl.state;
    r->nmodules += n;
    r->plugins[r->nplugins++] = pl;
    return TS_OK;

fail:
    if (pl.dl) dlclose(pl.dl);
    free(file);
    return rc;
}

int tsreg_load(tsreg *r, const char *spec, const char *const *dirs)
{
    if (!r || !spec) return TS_ERR_INVALID;
    char *file = NULL;
    int rc = resolve(r, spec, dirs, &file);
    if (rc) return rc;
    pthread_mutex_lock(&r->mu);
    rc = load_file(r, file);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int tsreg_declare(tsreg *r, const char *spec, const char *kind, const char *module,
                  const char *const *dirs)
{
    if (!r || !spec || !kind || !module) return TS_ERR_INVALID;
    uint32_t k = 0;
    while (k < 64 && !(tsreg_kind_name(k) && strcmp(tsreg_kind_name(k), kind) == 0)) k++;
    if (k == 64 || !valid_name(module))
        return tsenv_error(r->env, TS_ERR_PLUGIN, "%s: bad manifest entry %s:%s", spec, kind,
                           module);
    char *file = NULL;
    int rc = resolve(r, spec, dirs, &file);
    if (rc) return rc;
    pthread_mutex_lock(&r->mu);
    const tsreg_decl *d = find_decl(r, k, module);
    const tsreg_module *m = find_rec(r, k, module);
    if ((d && strcmp(d->file, file) != 0) || (m && strcmp(m->file, file) != 0)) {
        rc = tsenv_error(r->env, TS_ERR_PLUGIN, "%s: duplicate %s module name '%s' (already "
                         "provided by %s)", file, kind, module, d ? d->file : m->file);
    } else if (!d) {
        if (grow((void **)&r->decls, &r->capdecls, r->ndecls + 1, sizeof *r->decls)) {
            rc = tsenv_error(r->env, TS_ERR_NOMEM, "out of memory");
        } else {
            tsreg_decl *nd = &r->decls[r->ndecls++];
            memset(nd, 0, sizeof *nd);
            nd->file = file;
            nd->kind = k;
            nd->tried = m != NULL;
            snprintf(nd->module, sizeof nd->module, "%s", module);
            file = NULL;
        }
    }
    pthread_mutex_unlock(&r->mu);
    free(file);
    return rc;
}

/* Load the plugin declaring d (caller holds r->mu).  A failure is not
 * retried: its message is kept and raised again by every later lookup. */
static int load_decl(tsreg *r, tsreg_decl *d)
{
    if (d->why) return tsenv_error(r->env, TS_ERR_PLUGIN, "%s", d->why);
    if (d->tried || r->loading) return TS_OK;
    for (size_t i = 0; i < r->ndecls; i++)
        if (strcmp(r->decls[i].file, d->file) == 0) r->decls[i].tried = 1;
    char *file = strdup(d->file);
    if (!file) return tsenv_error(r->env, TS_ERR_NOMEM, "out of memory");
    int rc = load_file(r, file);
    if (!rc) return TS_OK;
    tsenv_error_prefix(r->env, "bundled plugin");
    const char *msg = tsenv_errmsg(r->env);
    for (size_t i = 0; i < r->ndecls; i++)
        if (strcmp(r->decls[i].file, d->file) == 0 && !r->decls[i].why)
            r->decls[i].why = strdup(msg && *msg ? msg : "bundled plugin: cannot be loaded");
    return TS_ERR_PLUGIN;
}

int tsreg_declared(tsreg *r, uint32_t kind, const char *name)
{
    if (!r || !name) return 0;
    pthread_mutex_lock(&r->mu);
    int d = find_decl(r, kind, name) != NULL;
    pthread_mutex_unlock(&r->mu);
    return d;
}

int tsreg_load_declared(tsreg *r)
{
    if (!r) return TS_ERR_INVALID;
    int rc = TS_OK;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->ndecls && !rc; i++)
        if (!r->decls[i].tried || r->decls[i].why) {
            rc = load_decl(r, &r->decls[i]);
            if (!rc && !find_rec(r, r->decls[i].kind, r->decls[i].module))
                rc = tsenv_error(r->env, TS_ERR_PLUGIN, "%s: did not load", r->decls[i].file);
        }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

const tsreg_module *tsreg_lookup(tsreg *r, uint32_t kind, const char *name)
{
    if (!r || !name) return NULL;
    pthread_mutex_lock(&r->mu);
    const tsreg_module *m = find_rec(r, kind, name);
    if (!m) {
        tsreg_decl *d = find_decl(r, kind, name);
        if (d && !load_decl(r, d)) m = find_rec(r, kind, name);
    }
    pthread_mutex_unlock(&r->mu);
    return m;
}

int tsreg_find(tsreg *r, uint32_t kind, const char *name, const ts_module **mod,
               void **state)
{
    const tsreg_module *rec = tsreg_lookup(r, kind, name);
    if (!rec && tsreg_declared(r, kind, name)) return TS_ERR_PLUGIN; /* its load failure */
    if (!rec) {
        const char *k = tsreg_kind_name(kind);
        return tsenv_error(r ? r->env : NULL, TS_ERR_NOT_FOUND, "no %s module named '%s' is loaded",
                           k ? k : "such", name ? name : "(null)");
    }
    if (mod) *mod = &rec->desc;
    if (state) *state = rec->plugin_state;
    return TS_OK;
}

size_t tsreg_count(tsreg *r)
{
    if (!r) return 0;
    pthread_mutex_lock(&r->mu);
    size_t n = r->nmodules;
    pthread_mutex_unlock(&r->mu);
    return n;
}

const tsreg_module *tsreg_at(tsreg *r, size_t i)
{
    if (!r) return NULL;
    pthread_mutex_lock(&r->mu);
    const tsreg_module *m = i < r->nmodules ? r->modules[i] : NULL;
    pthread_mutex_unlock(&r->mu);
    return m;
}

const char *tsreg_kind_name(uint32_t kind)
{
    const tskind *k = tskind_get(kind);
    return k ? k->name : NULL;
}

static int add_dir(char ***dirs, size_t *n, const char *d)
{
    char *real = realpath(d, NULL);
    if (!real || !is_dir(real)) { free(real); return 0; }
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*dirs)[i], real) == 0) { free(real); return 0; }
    char **nd = realloc(*dirs, (*n + 2) * sizeof *nd);
    if (!nd) { free(real); return -1; }
    nd[(*n)++] = real;
    nd[*n] = NULL;
    *dirs = nd;
    return 0;
}

const char *const *tsreg_default_dirs(tsreg *r)
{
    if (r->dirs) return (const char *const *)r->dirs;
    char **dirs = calloc(1, sizeof *dirs);
    size_t n = 0;
    if (!dirs) return NULL;
    Dl_info info;
    const char *self = NULL;
    if (dladdr((void *)&tsreg_default_dirs, &info) && info.dli_fname) self = info.dli_fname;
    /* Linked statically, dladdr names the program as argv[0] gave it, which
     * may be relative to a directory we have left: ask the kernel instead. */
    char *selfreal = self && self[0] == '/' ? realpath(self, NULL) : realpath("/proc/self/exe", NULL);
    const char *root = tsb_build_root();
    size_t rl = strlen(root);
    if (selfreal && strncmp(selfreal, root, rl) == 0 && (selfreal[rl] == '/' || !selfreal[rl]))
        add_dir(&dirs, &n, tsb_build_plugin_dir());
    if (selfreal) {
        char buf[PATH_MAX];
        char *slash = strrchr(selfreal, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, sizeof buf, "%s/%s", selfreal, tsb_install_plugin_reldir());
            add_dir(&dirs, &n, buf);
        }
    }
    free(selfreal);
    add_dir(&dirs, &n, tsb_install_plugin_dir());
    r->dirs = dirs;
    return (const char *const *)dirs;
}
