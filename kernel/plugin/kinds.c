#include <stddef.h>
#include <tostore/storage.h>
#include <tostore/cipher.h>
#include <tostore/index.h>
#include <tostore/pkgen.h>
#include "plugin/kinds.h"

#define REQ(T, f) offsetof(T, f)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const size_t storage_req[] = {
    REQ(ts_storage_vtab, open), REQ(ts_storage_vtab, close), REQ(ts_storage_vtab, lock),
    REQ(ts_storage_vtab, unlock), REQ(ts_storage_vtab, file_open),
    REQ(ts_storage_vtab, file_close), REQ(ts_storage_vtab, read), REQ(ts_storage_vtab, write),
    REQ(ts_storage_vtab, sync), REQ(ts_storage_vtab, size), REQ(ts_storage_vtab, truncate),
    REQ(ts_storage_vtab, remove), REQ(ts_storage_vtab, rename), REQ(ts_storage_vtab, exists),
    REQ(ts_storage_vtab, sync_dir), REQ(ts_storage_vtab, list),
};
static const char *const storage_req_names[] = {
    "open", "close", "lock", "unlock", "file_open", "file_close", "read", "write", "sync",
    "size", "truncate", "remove", "rename", "exists", "sync_dir", "list",
};

static const size_t cipher_req[] = {
    REQ(ts_cipher_vtab, create), REQ(ts_cipher_vtab, destroy),
    REQ(ts_cipher_vtab, seal), REQ(ts_cipher_vtab, open),
};
static const char *const cipher_req_names[] = { "create", "destroy", "seal", "open" };

static const char *cipher_check(const void *v)
{
    const ts_cipher_vtab *c = v;
    if (c->key_bytes == 0 || c->key_bytes > 64) return "key_bytes must be 1..64";
    if (c->overhead > 256) return "overhead must be at most 256 bytes";
    return NULL;
}

static const size_t index_req[] = {
    REQ(ts_index_vtab, create), REQ(ts_index_vtab, open), REQ(ts_index_vtab, close),
    REQ(ts_index_vtab, drop), REQ(ts_index_vtab, insert), REQ(ts_index_vtab, remove),
    REQ(ts_index_vtab, cursor_open), REQ(ts_index_vtab, cursor_close), REQ(ts_index_vtab, seek),
    REQ(ts_index_vtab, first), REQ(ts_index_vtab, last), REQ(ts_index_vtab, next),
    REQ(ts_index_vtab, prev), REQ(ts_index_vtab, entry),
};
static const char *const index_req_names[] = {
    "create", "open", "close", "drop", "insert", "remove", "cursor_open", "cursor_close",
    "seek", "first", "last", "next", "prev", "entry",
};

static const size_t pkgen_req[] = {
    REQ(ts_pkgen_vtab, create), REQ(ts_pkgen_vtab, destroy), REQ(ts_pkgen_vtab, next),
    REQ(ts_pkgen_vtab, observe), REQ(ts_pkgen_vtab, save),
};
static const char *const pkgen_req_names[] = { "create", "destroy", "next", "observe", "save" };

static const tskind kinds[] = {
    /* ABI 1.0-1.7 storage vtables end before write_sync (added in 1.8) */
    { TS_KIND_STORAGE, "storage", sizeof(ts_storage_vtab), offsetof(ts_storage_vtab, write_sync),
      storage_req, storage_req_names, COUNT(storage_req), NULL },
    { TS_KIND_CIPHER, "cipher", sizeof(ts_cipher_vtab), sizeof(ts_cipher_vtab),
      cipher_req, cipher_req_names, COUNT(cipher_req), cipher_check },
    /* ABI 1.0 index vtables end before knn (added in 1.1) */
    { TS_KIND_INDEX, "index", sizeof(ts_index_vtab), offsetof(ts_index_vtab, knn),
      index_req, index_req_names, COUNT(index_req), NULL },
    { TS_KIND_PKGEN, "pkgen", sizeof(ts_pkgen_vtab), sizeof(ts_pkgen_vtab),
      pkgen_req, pkgen_req_names, COUNT(pkgen_req), NULL },
};

const tskind *tskind_get(uint32_t kind)
{
    for (size_t i = 0; i < COUNT(kinds); i++)
        if (kinds[i].kind == kind) return &kinds[i];
    return NULL;
}
