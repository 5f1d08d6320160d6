/*
 * tostore/plugin.h - the plugin ABI: how a shared object describes itself to
 * the tostore kernel and which services the kernel lends it.
 *
 * A plugin is a shared object exporting exactly one symbol, TS_PLUGIN_ENTRY_NAME
 * ("tostore_plugin"), a function that returns a pointer to constant data: a
 * ts_plugin descriptor listing one or more ts_module descriptors.  The kernel
 * checks every field (magic, ABI version, struct sizes, names, required
 * callbacks) before it calls any other plugin code; registration of a plugin
 * is all or nothing.
 *
 * Rules that hold for every kind of module:
 *  - Every callback returns an int status from tostore/status.h (TS_OK on
 *    success), except releases (fini, destroy, close, cursor_close), which
 *    return void because they cannot fail: they free what they own even
 *    when the rest of the system is failing.  No abort(), exit() or
 *    longjmp() may cross the boundary.
 *  - Before failing, a callback should report a message with host->error();
 *    the host copies the text, so the plugin may pass stack buffers.
 *  - Structs grow only by appending fields.  Each starts with its own size;
 *    a reader checks the size before it touches a field added later.
 *  - Memory a plugin returns to the kernel is described per callback; by
 *    default whoever allocates frees.
 *
 * Only standard C headers are included: no jansson, OpenSSL or libsodium
 * types cross this boundary.  Kind-specific vtables live in storage.h,
 * cipher.h, index.h and pkgen.h.
 */
#ifndef TOSTORE_PLUGIN_H
#define TOSTORE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "TSPL" in ASCII. */
#define TS_PLUGIN_MAGIC 0x5453504Cu

/* ABI version.  A plugin loads when its major equals the kernel's and its
 * minor is not newer than the kernel's. */
#define TS_ABI_MAJOR 1
#define TS_ABI_MINOR 9

/* Name of the one symbol a plugin exports (type ts_plugin_entry_fn). */
#define TS_PLUGIN_ENTRY_NAME "tostore_plugin"

/* Longest module or plugin name, in bytes, without the NUL. */
#define TS_NAME_MAX 63

/* Module kinds.  New kinds get new numbers; numbers are never reused. */
enum ts_module_kind {
    TS_KIND_STORAGE = 1, /* storage backend: files (tostore/storage.h) */
    TS_KIND_CIPHER  = 2, /* authenticated page encryption (tostore/cipher.h) */
    TS_KIND_INDEX   = 3, /* index access method (tostore/index.h) */
    TS_KIND_PKGEN   = 4  /* primary-key generator (tostore/pkgen.h) */
};

/* Module flags. */
#define TS_MODULE_THREAD_SAFE 0x1u /* instances may be used from several threads at once */
#define TS_MODULE_INSECURE    0x2u /* gives no real protection; refused unless allowed */

/* Opaque kernel objects a plugin receives and passes back. */
typedef struct ts_env  ts_env;   /* the kernel context a callback runs for (error sink, db) */
typedef struct ts_opts ts_opts;  /* a read-only options object (a JSON object in tostore.json) */
typedef struct ts_host ts_host;
typedef struct ts_module ts_module;
typedef struct ts_arena ts_arena; /* a pool of equal-size blocks (ts_host.arena_create) */
struct ts_page_api;

/* Log levels for ts_host.log. */
enum ts_log_level { TS_LOG_ERROR = 0, TS_LOG_WARN = 1, TS_LOG_INFO = 2, TS_LOG_DEBUG = 3 };

/*
 * The host table: services the kernel lends to plugins.  Passed to init and
 * to every instance constructor; valid until the instance is closed.  All
 * functions are thread-safe (an arena's create and destroy excepted: see
 * there).
 */
struct ts_host {
    uint32_t struct_size;           /* sizeof(ts_host) of the kernel; check before new fields */
    uint16_t abi_major, abi_minor;  /* the kernel's ABI version */

    /* Memory.  alloc/calloc/realloc return NULL on failure; free accepts NULL.
     * Memory from these must be released with free (not libc free). */
    void *(*alloc)(size_t n);
    void *(*calloc)(size_t count, size_t size);
    void *(*realloc)(void *p, size_t n);
    void  (*free)(void *p);
    /* Overwrite n bytes with zeros in a way the compiler cannot elide. */
    void  (*wipe)(void *p, size_t n);

    /* Record an error message for the operation running on env and return
     * code unchanged, so a callback can write `return host->error(...)`.
     * The host copies the formatted text (at most 1023 bytes kept). */
    int   (*error)(ts_env *env, int code, const char *fmt, ...);
    /* Log a message through the embedding application's logger. */
    void  (*log)(ts_env *env, int level, const char *fmt, ...);

    /* Fill buf with n cryptographically secure random bytes. */
    int   (*random)(ts_env *env, void *buf, size_t n);

    /* Option accessors.  opts may be NULL (no options: every key absent).
     * Each returns TS_OK, TS_ERR_NOT_FOUND if the key is absent (out untouched),
     * or TS_ERR_VALIDATION if it has another type (error message recorded).
     * Strings returned stay valid as long as opts does. */
    int   (*opt_string)(ts_env *env, const ts_opts *opts, const char *key, const char **out);
    int   (*opt_int)(ts_env *env, const ts_opts *opts, const char *key, int64_t *out);
    int   (*opt_double)(ts_env *env, const ts_opts *opts, const char *key, double *out);
    int   (*opt_bool)(ts_env *env, const ts_opts *opts, const char *key, int *out);
    int   (*opt_object)(ts_env *env, const ts_opts *opts, const char *key, const ts_opts **out);
    /* The i-th key of opts (0-based), to refuse keys a module does not know;
     * TS_ERR_NOT_FOUND past the end. */
    int   (*opt_key_at)(const ts_opts *opts, size_t i, const char **key);

    /* Find a registered module by kind and name (e.g. a backend that wraps
     * another).  *module_out stays valid while the calling instance is open;
     * *plugin_state_out receives the state the owning plugin's init stored. */
    int   (*module_find)(ts_env *env, uint32_t kind, const char *name,
                         const ts_module **module_out, void **plugin_state_out);

    /* The kernel page API for index modules (tostore/index.h).  Its calls
     * take the ts_txn the kernel passes to the index callbacks. */
    const struct ts_page_api *pages;

    /* Since ABI 1.3 (check struct_size before use).  Arenas: blocks of one
     * size carved from large anonymous mappings, the ranges from 2 MiB on
     * aligned to and advised for transparent huge pages, for memory a module
     * keeps by the thousand and reads at random (page copies): one TLB entry
     * then covers hundreds of blocks, where separate mallocs cost a miss
     * each.  Blocks are aligned to 64 bytes; under AddressSanitizer a block
     * not handed out is poisoned.
     * arena_create: *out gets an arena of blocks of at least block bytes
     *   (1 .. 16 MiB); on failure *out is NULL and the status TS_ERR_INVALID
     *   or TS_ERR_NOMEM, its message recorded on env (NULL env: on the
     *   calling thread's handle-less slot, for a caller that treats the
     *   failure as no error).
     * arena_alloc: a block of a, not zeroed; NULL when no memory can be
     *   mapped.  a must not be NULL.
     * arena_free: give back a block of a (a NULL block is ignored; a must
     *   not be NULL).
     * arena_destroy: unmap every block of a at once, whether given back or
     *   not; a NULL a is ignored.
     * alloc and free may run on any threads at once; create and destroy are
     * the caller's to order against every other use of the arena. */
    int   (*arena_create)(ts_env *env, size_t block, ts_arena **out);
    void *(*arena_alloc)(ts_arena *a);
    void  (*arena_free)(ts_arena *a, void *block);
    void  (*arena_destroy)(ts_arena *a);
};

/*
 * Arguments given to every instance constructor (storage open, cipher create,
 * index open, ...).  Valid only during the call; copy what you keep.
 */
typedef struct ts_module_args {
    uint32_t       struct_size;   /* sizeof(ts_module_args) of the kernel */
    const ts_host *host;          /* valid until the instance is closed */
    ts_env        *env;           /* valid until the instance is closed */
    const ts_opts *opts;          /* the module's options; may be NULL */
    void          *plugin_state;  /* what the plugin's init stored, or NULL */
} ts_module_args;

/*
 * A module descriptor: constant data inside the plugin.
 */
struct ts_module {
    uint32_t    struct_size;  /* sizeof(ts_module) the plugin was built with */
    uint32_t    kind;         /* enum ts_module_kind */
    const char *name;         /* [A-Za-z0-9_.-]{1,63}; unique per kind among loaded plugins */
    const char *version;      /* free text, e.g. "1.0.0" */
    uint32_t    flags;        /* TS_MODULE_* */
    uint32_t    vtab_size;    /* sizeof the kind's vtable the plugin was built with */
    const void *vtab;         /* points to a const vtable of that kind */
};

/*
 * The plugin descriptor returned by the entry symbol.
 */
typedef struct ts_plugin {
    uint32_t    magic;        /* TS_PLUGIN_MAGIC */
    uint16_t    abi_major;    /* TS_ABI_MAJOR the plugin was built with */
    uint16_t    abi_minor;    /* TS_ABI_MINOR the plugin was built with */
    uint32_t    struct_size;  /* sizeof(ts_plugin) the plugin was built with */
    const char *name;         /* plugin name, same rules as module names */
    const char *version;
    /* Optional.  Called once per kernel context that loads the plugin, after
     * validation and before any module is used; *state_out is handed to every
     * instance as ts_module_args.plugin_state.  A failure refuses the plugin. */
    int  (*init)(const ts_host *host, ts_env *env, void **state_out);
    /* Optional.  Called once when the context unloads the plugin, after every
     * instance of its modules has been closed. */
    void (*fini)(void *state);
    /* NULL-terminated list of modules; at least one. */
    const ts_module *const *modules;
} ts_plugin;

/* Type of the entry symbol. */
typedef const ts_plugin *(*ts_plugin_entry_fn)(void);

/* Visibility attribute for the entry symbol; build plugins with
 * -fvisibility=hidden so that it is the only exported symbol. */
#if defined(_WIN32)
#  define TS_PLUGIN_EXPORT __declspec(dllexport)
#else
#  define TS_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* Declares the entry symbol returning the given descriptor:
 *   TS_PLUGIN_DEFINE(my_plugin)   where  static const ts_plugin my_plugin = {...};  */
#ifdef __cplusplus
#  define TS_PLUGIN_DEFINE(desc) \
    extern "C" TS_PLUGIN_EXPORT const ts_plugin *tostore_plugin(void); \
    extern "C" TS_PLUGIN_EXPORT const ts_plugin *tostore_plugin(void) { return &(desc); }
#else
#  define TS_PLUGIN_DEFINE(desc) \
    TS_PLUGIN_EXPORT const ts_plugin *tostore_plugin(void); \
    TS_PLUGIN_EXPORT const ts_plugin *tostore_plugin(void) { return &(desc); }
#endif

#ifdef __cplusplus
}
#endif
#endif /* TOSTORE_PLUGIN_H */
