/*
 * A storage backend instance: the module's vtable plus its store handle.
 * Thin on purpose: the kernel calls backends through these so that every
 * failure carries the file name into the error message.
 */
#ifndef TS_IO_STORE_H
#define TS_IO_STORE_H

#include <jansson.h>
#include <tostore/storage.h>
#include "plugin/registry.h"

typedef struct tsstore {
    const ts_storage_vtab *vt;
    void                  *h;
    const tsreg_module    *mod;
    int                    locked;
} tsstore;

typedef struct tsfile {
    tsstore *st;
    void    *h;
} tsfile;

/* Open backend `name` on directory root with options opts (may be NULL),
 * and take its exclusive lock. */
int  tsstore_open(ts_env *env, tsreg *reg, const char *name, const json_t *opts,
                  const char *root, tsstore **out);
int  tsstore_close(tsstore *st);

int  tsfile_open(tsstore *st, const char *name, unsigned flags, tsfile *out);
int  tsfile_close(tsfile *f);
/* Read exactly n bytes; a short read is TS_ERR_CORRUPT unless allow_short,
 * in which case *got says how many arrived. */
int  tsfile_read(tsfile *f, uint64_t off, void *buf, size_t n, size_t *got);
int  tsfile_write(tsfile *f, uint64_t off, const void *buf, size_t n);
int  tsfile_sync(tsfile *f, unsigned flags);
/* The backend's write_sync (off, n and buf multiples of 4096):
 * TS_ERR_UNSUPPORTED when it has none or this file cannot. */
int  tsfile_write_sync(tsfile *f, uint64_t off, const void *buf, size_t n);
/* The backend's prefetch hint for [off, off + len), if it has one. */
void tsfile_prefetch(tsfile *f, uint64_t off, uint64_t len);
int  tsfile_size(tsfile *f, uint64_t *out);
int  tsfile_truncate(tsfile *f, uint64_t size);

/* Write a whole small file atomically and durably: tmp, sync, rename,
 * sync_dir. */
int  tsstore_put_atomic(tsstore *st, const char *name, const void *buf, size_t n);
/* Read a whole small file (malloc'd, *len bytes); TS_ERR_NOT_FOUND if absent. */
int  tsstore_get(tsstore *st, const char *name, void **buf, size_t *len, size_t max);

#endif
