/*
 * Pieces shared by the purpose-built bad plugins of test_bad_plugins.c.
 *
 * Each bad plugin differs from a valid one in exactly one field, so that the
 * test proves which check refused it.  The kernel refuses them before it
 * calls any module callback, so the callbacks here only have to exist and
 * return a status; they are never run (static inline: a plugin that does
 * not use one gets no warning).
 */
#ifndef BP_COMMON_H
#define BP_COMMON_H

#include <tostore/storage.h>
#include <tostore/cipher.h>

static inline int bp_open(const ts_module_args *a, const char *root, void **out)
{ *out = NULL; return TS_ERR_UNSUPPORTED; }
static inline int bp_close(void *st) { return TS_OK; }
static inline int bp_lock(void *st) { return TS_ERR_UNSUPPORTED; }
static inline int bp_unlock(void *st) { return TS_OK; }
static inline int bp_file_open(void *st, const char *name, unsigned flags, void **out)
{ *out = NULL; return TS_ERR_UNSUPPORTED; }
static inline int bp_file_close(void *f) { return TS_OK; }
static inline int bp_read(void *f, uint64_t off, void *buf, size_t n, size_t *got)
{ *got = 0; return TS_ERR_UNSUPPORTED; }
static inline int bp_write(void *f, uint64_t off, const void *buf, size_t n)
{ return TS_ERR_UNSUPPORTED; }
static inline int bp_sync(void *f, unsigned flags) { return TS_ERR_UNSUPPORTED; }
static inline int bp_size(void *f, uint64_t *out) { return TS_ERR_UNSUPPORTED; }
static inline int bp_truncate(void *f, uint64_t size) { return TS_ERR_UNSUPPORTED; }
static inline int bp_remove(void *st, const char *name) { return TS_ERR_UNSUPPORTED; }
static inline int bp_rename(void *st, const char *from, const char *to)
{ return TS_ERR_UNSUPPORTED; }
static inline int bp_exists(void *st, const char *name, int *out)
{ return TS_ERR_UNSUPPORTED; }
static inline int bp_sync_dir(void *st) { return TS_ERR_UNSUPPORTED; }
static inline int bp_list(void *st, int (*cb)(void *ctx, const char *name), void *ctx)
{ return TS_ERR_UNSUPPORTED; }

static inline int bp_cipher_create(const ts_module_args *a, const uint8_t *key, size_t n,
                                   void **out)
{ *out = NULL; return TS_ERR_UNSUPPORTED; }
static inline void bp_cipher_destroy(void *st) { }
static inline int bp_cipher_seal(void *st, const uint8_t *ad, size_t ad_len,
                                 const uint8_t *in, size_t len, uint8_t *out)
{ return TS_ERR_UNSUPPORTED; }
static inline int bp_cipher_open(void *st, const uint8_t *ad, size_t ad_len,
                                 const uint8_t *in, size_t len, uint8_t *out)
{ return TS_ERR_UNSUPPORTED; }

/* A complete storage vtable named `ident` (every required callback set). */
#define BP_STORAGE_VTAB(ident)                                                  \
    static const ts_storage_vtab ident = {                                      \
        .struct_size = sizeof(ts_storage_vtab),                                 \
        .open = bp_open, .close = bp_close, .lock = bp_lock,                    \
        .unlock = bp_unlock, .file_open = bp_file_open,                         \
        .file_close = bp_file_close, .read = bp_read, .write = bp_write,        \
        .sync = bp_sync, .size = bp_size, .truncate = bp_truncate,              \
        .remove = bp_remove, .rename = bp_rename, .exists = bp_exists,          \
        .sync_dir = bp_sync_dir, .list = bp_list, .control = NULL,              \
    }

/* A valid storage module descriptor named `ident` for module `mname`. */
#define BP_STORAGE_MODULE(ident, mname, vt)                                     \
    static const ts_module ident = {                                            \
        .struct_size = sizeof(ts_module), .kind = TS_KIND_STORAGE,              \
        .name = (mname), .version = "0.0.1", .flags = 0,                        \
        .vtab_size = sizeof(ts_storage_vtab), .vtab = &(vt),                    \
    }

/* A valid plugin descriptor named `ident` listing `mods`, plus its entry. */
#define BP_PLUGIN(ident, pname, mods)                                           \
    static const ts_plugin ident = {                                            \
        .magic = TS_PLUGIN_MAGIC, .abi_major = TS_ABI_MAJOR,                    \
        .abi_minor = TS_ABI_MINOR, .struct_size = sizeof(ts_plugin),            \
        .name = (pname), .version = "0.0.1", .init = NULL, .fini = NULL,        \
        .modules = (mods),                                                      \
    };                                                                          \
    TS_PLUGIN_DEFINE(ident)

#endif
