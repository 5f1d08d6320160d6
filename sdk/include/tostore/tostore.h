/*
 * tostore/tostore.h - the embedding API of tostore.
 *
 * Conventions (hold for every function below unless its comment says else):
 *  - Every fallible function returns an int status from tostore/status.h.
 *  - Records, schemas and values cross the API as jansson json_t*.  Inputs
 *    are borrowed; outputs named *_new are new references the caller
 *    json_decref()s.
 *  - A NULL where an argument is required returns TS_ERR_INVALID.
 *  - Every *_free / close function accepts NULL.
 *  - A ts_db handle may be shared by many threads.
 */
#ifndef TOSTORE_TOSTORE_H
#define TOSTORE_TOSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define TS_API __declspec(dllimport)
#elif defined(TS_BUILDING_LIBRARY)
#  define TS_API __attribute__((visibility("default")))
#else
#  define TS_API
#endif

/* Library version, e.g. "0.1.0". */
TS_API const char *ts_version(void);

/* An open database. */
typedef struct ts_db ts_db;

/* Open the database described by the tostore.json file at config_path
 * (NULL: the embedded default configuration, see docs/config.md).  On
 * success *out is a new handle to release with ts_close; on failure *out is
 * NULL and ts_errmsg(NULL) says why.  The data directory is created if
 * missing.  Plugins named by the config are loaded and checked first. */
TS_API int ts_open(const char *config_path, ts_db **out);

/* Same as ts_open with the configuration given as JSON text, e.g.
 * "{\"path\": \"/tmp/db\"}"; omitted keys take their defaults. */
TS_API int ts_open_json(const char *config_json, ts_db **out);

/* Close the handle: flush, release the lock, unload plugins.  Accepts NULL.
 * No call on db may be running or start afterwards. */
TS_API int ts_close(ts_db *db);

/* The last error message of the calling thread on db ("" if none); with
 * db NULL, the last error of a call that had no handle (e.g. a failed
 * ts_open).  Valid until the thread's next call on that handle. */
TS_API const char *ts_errmsg(ts_db *db);

/* A fixed English text for a status code; never NULL. */
TS_API const char *ts_strerror(int code);

/* The modules the handle loaded: a new JSON array of objects
 * {"kind", "name", "version", "flags": [...], "plugin", "pluginVersion", "file"}. */
TS_API int ts_modules(ts_db *db, json_t **out_new);

/* The effective configuration (defaults filled in, secrets removed) as a
 * new JSON object. */
TS_API int ts_config(ts_db *db, json_t **out_new);

/* Pass a control operation to the storage backend (e.g. fault injection on
 * the "faulty" test backend, see docs/plugins.md).  *out may be NULL. */
TS_API int ts_storage_control(ts_db *db, const char *op, int64_t arg, int64_t *out);

/* Statistics as a new JSON object: pageSize, pages, freePages, bytes,
 * logBytes, cacheHits, cacheMisses, cachePages, commits, syncs,
 * checkpoints, encrypted. */
TS_API int ts_stats(ts_db *db, json_t **out_new);

/* Verify the database: every page of the current snapshot decodes (checksum
 * or authentication tag) and the free list is consistent.  TS_OK when
 * sound, TS_ERR_CORRUPT (message names the first bad page) when not;
 * *report_new (may be NULL) gets {"ok", "pages", "freePages", "badPages",
 * "firstBadPage", "freeListBroken"}.  progress may be NULL. */
TS_API int ts_check(ts_db *db, json_t **report_new,
                    void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

/* ts_rekey flags */
#define TS_REKEY_NEW_DATA_KEY 0x1u /* re-encrypt every page under a fresh data key */

/* Change how the database is encrypted.  cipher_json is a "cipher" section
 * as in tostore.json ({"module": ..., "key" | "passphrase": ...}), or NULL
 * to decrypt the database to plain.
 *  - Same module, new key or passphrase: only the keyring is rewritten (the
 *    random data key is re-wrapped); instant, whatever the size.
 *  - Another module, plain <-> encrypted, or TS_REKEY_NEW_DATA_KEY: every
 *    page is re-sealed under a new data key into a new file that replaces
 *    the old one.  A crash at any point leaves either the old or the new key
 *    valid; the next open finishes or rolls back.
 * Waits for other calls on db to finish; needs no reader snapshot open.
 * progress (may be NULL) is called as pages are re-sealed. */
TS_API int ts_rekey(ts_db *db, const char *cipher_json, unsigned flags,
                    void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TOSTORE_TOSTORE_H */
