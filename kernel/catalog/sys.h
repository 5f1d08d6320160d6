/*
 * The system catalog: a btree (system root slot 0) holding spaces, the
 * active space and (later) table definitions, and the key-value store's
 * btree (system root slot 1).  Both are created in the first write transaction of a new
 * database and opened once per handle.
 *
 * Catalog keys are memcomparable tuples (tostore/keys.h):
 *   ("space", name)  -> space id (u64 LE)
 *   ("spaceseq")     -> next space id
 *   ("active")       -> the space the next open starts in
 */
#ifndef TS_CATALOG_SYS_H
#define TS_CATALOG_SYS_H

#include <jansson.h>
#include "catalog/ix.h"

#define TSSYS_ROOT_CATALOG 0
#define TSSYS_ROOT_KV      1
#define TSSYS_INDEX_MODULE "btree"
#define TSSYS_SPACE_GLOBAL 0     /* rows and keys shared by every space */
#define TSSYS_SPACE_DEFAULT 1
#define TSSYS_NAME_MAX 64

typedef struct tssys {
    tsix *catalog;
    tsix *kv;
} tssys;

/* Create (in a write transaction, when missing) and open the system
 * indexes.  Without the btree module the data layer is unavailable:
 * TS_ERR_PLUGIN. */
int  tssys_open(ts_env *env, tsreg *reg, tspg *pg, tssys *sys);
void tssys_close(tssys *sys);

/* Key of a catalog entry: ("tag") or ("tag", name).  buf holds at least
 * 2 * TSSYS_NAME_MAX + 32 bytes; returns the length. */
size_t tssys_key(uint8_t *buf, const char *tag, const char *name);

int  tssys_space_id(tssys *sys, tstx *tx, const char *name, uint64_t *id);  /* NOT_FOUND */
int  tssys_space_create(tssys *sys, tstx *tx, const char *name, uint64_t *id);
int  tssys_space_remove(tssys *sys, tstx *tx, const char *name);
int  tssys_space_list(tssys *sys, tstx *tx, json_t *names);
/* The stored active space (*name_out "" when none); set NULL to forget. */
int  tssys_active_get(tssys *sys, tstx *tx, char *name_out, size_t cap);
int  tssys_active_set(tssys *sys, tstx *tx, const char *name);

/* A space or table name: [A-Za-z][A-Za-z0-9_]*, at most 64 bytes. */
int  tssys_valid_name(const char *s);

#endif
