/*
 * tostore/storage.h - storage backend modules (kind TS_KIND_STORAGE): the
 * VFS of the engine.  The kernel never touches files itself; it asks the
 * backend selected by config key storage.backend.
 *
 * A store is one data directory.  Files inside it are named by flat names
 * ([A-Za-z0-9_.-], no '/', at most 255 bytes); a backend refuses other names
 * with TS_ERR_INVALID.  Handles are opaque pointers owned by the backend.
 *
 * Durability contract (what the kernel's crash safety relies on):
 *  - write() returning TS_OK means the bytes are visible to later reads, not
 *    that they survive power loss.  sync() makes the file's content durable.
 *  - create, rename and remove become durable only after sync_dir().
 *  - After a sync() that failed, the backend makes no promise about what is
 *    on storage; the kernel stops writing (no retry-and-trust).
 *  - rename() atomically replaces an existing target.
 * Errors: TS_ERR_IO for I/O failures (EIO, ENOSPC, ...), TS_ERR_NOT_FOUND for
 * missing files, TS_ERR_LOCKED from lock().  Report a message with host->error.
 */
#ifndef TOSTORE_STORAGE_H
#define TOSTORE_STORAGE_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* file_open flags */
#define TS_OPEN_CREATE   0x1u  /* create the file if it does not exist */
#define TS_OPEN_EXCL     0x2u  /* with CREATE: fail with TS_ERR_INVALID if it exists */
#define TS_OPEN_READONLY 0x4u  /* no writes through this handle */

/* sync flags */
#define TS_SYNC_DATA     0x1u  /* data only (fdatasync): size changes still included */

typedef struct ts_storage_vtab {
    uint32_t struct_size;  /* sizeof(ts_storage_vtab) the plugin was built with */

    /* Open the store rooted at `root` (a directory path, created if missing,
     * with its parents).  *store_out is released with close.  Required. */
    int (*open)(const ts_module_args *args, const char *root, void **store_out);
    /* Close the store; every file of it has been closed before.  Required. */
    int (*close)(void *store);

    /* Take an exclusive, non-blocking lock on the store so that no other
     * process (or other open store of the same root) writes it: TS_ERR_LOCKED
     * when held elsewhere.  Released by unlock or close.  Required. */
    int (*lock)(void *store);
    int (*unlock)(void *store);

    /* Open a file by name; *file_out released with file_close.  Required. */
    int (*file_open)(void *store, const char *name, unsigned flags, void **file_out);
    int (*file_close)(void *file);

    /* Read up to n bytes at off.  *got receives the bytes read, fewer than n
     * only at end of file (still TS_OK).  Required. */
    int (*read)(void *file, uint64_t off, void *buf, size_t n, size_t *got);
    /* Write all n bytes at off, extending the file if needed.  Required. */
    int (*write)(void *file, uint64_t off, const void *buf, size_t n);
    /* Make the file's content durable; flags TS_SYNC_*.  Required. */
    int (*sync)(void *file, unsigned flags);
    int (*size)(void *file, uint64_t *size_out);
    int (*truncate)(void *file, uint64_t size);

    /* Namespace operations on the store.  Required. */
    int (*remove)(void *store, const char *name);
    int (*rename)(void *store, const char *from, const char *to);
    int (*exists)(void *store, const char *name, int *exists_out);
    /* Make creates, renames and removes so far durable.  Required. */
    int (*sync_dir)(void *store);
    /* Call cb for every file name in the store (order unspecified); a
     * non-zero return from cb stops the walk and is returned.  Required. */
    int (*list)(void *store, int (*cb)(void *ctx, const char *name), void *ctx);

    /* Optional backend-specific control (fault injection, statistics, ...).
     * Unknown ops return TS_ERR_UNSUPPORTED. */
    int (*control)(void *store, const char *op, int64_t arg, int64_t *out);

    /* Since ABI 1.8; optional (NULL: the kernel calls write, then sync).
     * Write n bytes at off and make them durable before returning, as write
     * followed by sync(TS_SYNC_DATA) would, in one step where the platform
     * can (posix: O_DIRECT | O_DSYNC, which skips the page cache and the
     * flush of the file's other dirty pages).  off, n and buf must be
     * multiples of 4096 (TS_ERR_INVALID otherwise); bytes of the file
     * outside [off, off + n) are not made durable by this call.
     * TS_ERR_UNSUPPORTED when this file or its file system cannot (nothing
     * was written; the kernel then writes and syncs instead).  Any other
     * failure is treated as a failed sync: the range is undefined and the
     * kernel stops writing. */
    int (*write_sync)(void *file, uint64_t off, const void *buf, size_t n);

    /* Since ABI 1.9; optional (NULL: no read-ahead).  A hint that bytes
     * [off, off + len) of the file will be read soon: start reading them
     * into memory without waiting (posix: posix_fadvise WILLNEED), so that
     * reads the caller issues one after another overlap on the device.
     * The kernel ignores the result: a failed hint only costs the read. */
    int (*prefetch)(void *file, uint64_t off, uint64_t len);
} ts_storage_vtab;

#ifdef __cplusplus
}
#endif
#endif /* TOSTORE_STORAGE_H */
