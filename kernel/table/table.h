/*
 * The table store: tables' definitions in the catalog, their rows and
 * indexes, key generators, row counts, foreign-key actions and TTL.
 *
 * Storage (every key a memcomparable tuple, tostore/keys.h):
 *   catalog ("table", name)         -> JSON {"num", "schema", "primary", "indexes": [root...], "ttl"}
 *   catalog ("tableseq")            -> next table number (u64 LE)
 *   catalog ("pk", num, space)      -> the key generator's saved state
 *   catalog ("rows", num, space)    -> row count (i64 LE)
 *   primary (space, pk)             -> row (TTL tables: [expires ms, i64 LE][row])
 *   index   (space, values...)      -> pk; non-unique (and keys with a null) kept
 *                                      apart by the pk value
 *   ttl     (space, expires, pk)    -> ""
 * Global tables keep their rows under space 0.
 *
 * Concurrency: the map of tables changes only inside write transactions
 * (one writer at a time), so the writer reads it freely; readers look
 * tables up under the map's lock and hold a reference while they use one.
 * Generator state and row counts are cached per (table, space) by the
 * writer and written to the catalog just before its transaction commits
 * (tstbl_before_commit); a rollback drops the cache and, after DDL,
 * reloads the map (tstbl_before_rollback).
 */
#ifndef TS_TABLE_TABLE_H
#define TS_TABLE_TABLE_H

#include <pthread.h>
#include <jansson.h>
#include "catalog/ix.h"
#include "catalog/sys.h"
#include "data/record.h"
#include "data/schema.h"

typedef struct tstbl {
    tsd_table          *def;
    uint64_t            num;
    tsix               *primary;
    tsix              **ix;        /* def->nindexes */
    tsix               *ttl;       /* TTL tables only */
    uint64_t            ttl_root;
    uint64_t           *roots;     /* def->nindexes */
    uint64_t            primary_root;
    const tsreg_module *pkgen;     /* NULL: primaryKeyConfig "none" */
    json_t             *pkgen_opts;
    int                 refs;      /* readers holding it (map lock) */
    int                 gone;      /* no longer in the map: freed at refs 0 */
    const tstx         *pending;   /* created by this uncommitted transaction */
    int                 dirty;     /* rows changed by the writer's transaction */
    uint64_t            created;   /* the commit number that created it (0: before open) */
    uint64_t            last_commit; /* number of the last commit that changed its rows (atomic) */
    struct tsmig_online *mig;      /* a background schema migration of its rows (writer only,
                                      table/online.c), or NULL */
    /* Columns whose vectors rows leave to a vector index keeping exact
     * copies (def->ncols flags; writer only, found by the first write:
     * rows.c, strip_mask) */
    unsigned char      *vstrip;
    int                 vstrip_known;
    /* the rows recent commits changed (table/journal.c): every commit
     * numbered >= jfrom that changed rows is in jn */
    struct tstbl_journal *jn;
    uint64_t            jfrom;
    int                 jwant;     /* a cache reads jn (atomic; until then nothing is kept) */
} tstbl;

typedef struct tstbl_state tstbl_state;

typedef struct tstbl_map {
    pthread_mutex_t lock;
    tstbl         **t;
    size_t          n, cap;
    int             ddl_dirty;   /* this writer's transaction changed tables */
    int             mig_dirty;   /* ... or a migration task's in-memory state */
    json_t         *mig_swapped; /* ids of tasks whose swap committed, to mark done (online.c) */
    json_t         *mig_garbage; /* ids of tasks with replaced trees still to free (online.c) */
    unsigned        ddl_seq;     /* bumped before each catalog change of a table */
    tstbl_state    *st;          /* writer's cache, see above */
    size_t          nst, capst;
    ts_env         *env;
    tsreg          *reg;
    tssys          *sys;
    int64_t         node_id;
    int64_t         cache_bytes; /* the database's cacheBytes (vector index caches) */
    int             vector_refs; /* the file's format lets rows leave vectors to an index */
    uint64_t        commits;     /* the last commit number published, i.e. visible (atomic) */
    uint64_t        next_commit; /* writer only */
    void           *spare[4];    /* freed query executors kept for the next query (query/exec.c):
                                  * plain blocks, taken and put back atomically, free()d at close */
} tstbl_map;

int  tstbl_map_open(tstbl_map *m, ts_env *env, tsreg *reg, tssys *sys, tspg *pg, int64_t node_id,
                    int64_t cache_bytes);
void tstbl_map_close(tstbl_map *m);

/* Find a table by name for a call running in tx and take a reference
 * (tstbl_release).  NOT_FOUND with a message, also for a table another
 * transaction created and has not committed yet, or created after tx's
 * snapshot began (read transactions carry, as their tag, the catalog
 * commit number published with their snapshot: tstx_stamp). */
int  tstbl_acquire(tstbl_map *m, const char *name, const tstx *tx, tstbl **out);
/* Whether t exists for a call running in tx (see tstbl_acquire). */
int  tstbl_visible(const tstbl *t, const tstx *tx);
void tstbl_release(tstbl_map *m, tstbl *t);
/* Without a reference: for the writer only. */
tstbl *tstbl_find(tstbl_map *m, const char *name);

/* Create tables (validated and checked as a set) inside a write
 * transaction, in foreign-key order. */
int  tstbl_create(tstbl_map *m, tstx *tx, const json_t *const *schemas, size_t n);
int  tstbl_drop(tstbl_map *m, tstx *tx, const char *name);
/* The names of all tables (sorted) appended to arr. */
int  tstbl_names(tstbl_map *m, const tstx *tx, json_t *arr);

/* Transaction hooks, called by the writer with its transaction still open. */
int  tstbl_before_commit(tstbl_map *m, tstx *tx, uint64_t *commit_no);
/* Write the cached generator states and counts into tx (migrations). */
int  tstbl_flush_states(tstbl_map *m, tstx *tx);
void tstbl_before_rollback(tstbl_map *m, tspg *pg);
/* After the commit (ok: it succeeded) numbered commit_no (0: it changed no
 * table): publish the number; returns whether tables changed. */
int  tstbl_after_commit(tstbl_map *m, uint64_t commit_no, int ok);
/* A table's version (0: none, or a change not yet visible): for caches,
 * read before the snapshot that the cached data comes from. */
uint64_t tstbl_version(tstbl_map *m, const char *name, uint64_t *num);

/* ---- the rows commits changed (table/journal.c) ---------------------- */

/* Primary keys (pk keys, without the space) concatenated: key i is
 * kb[ko[i] .. ko[i + 1]). */
typedef struct tstbl_keys { uint8_t *kb; size_t *ko; size_t n; } tstbl_keys;
/* A cache will ask t for its changes (tstbl_changes): from now on the
 * writer keeps them (before, a table nobody asks keeps nothing). */
void tstbl_journal_want(tstbl *t);
/* Writer: the row of space with pk key pk is being put, deleted or
 * replaced in t (rows.c, with t->dirty). */
void tstbl_journal_note(tstbl *t, uint64_t space, const uint8_t *pk, size_t pkl);
/* A new table object's empty journal (no commit before the writer's next
 * is in it).  TS_OK or TS_ERR_NOMEM. */
int  tstbl_journal_open(tstbl *t, uint64_t next_commit);
/* Forget everything (a table built aside and installed now). */
void tstbl_journal_reset(tstbl *t, uint64_t next_commit);
/* Commit hooks (writer; commit under the map lock). */
void tstbl_journal_commit(tstbl *t, uint64_t commit_no);
void tstbl_journal_rollback(tstbl *t);
void tstbl_journal_free(tstbl *t);
/* The pk keys of space's rows that commits changed between two versions
 * (tstbl_version) `from` and `to` of t, a table object the caller holds
 * (the one its snapshot reads, not whatever now has its name): rows
 * changed in both may be listed more than once, and a row a rolled-back
 * statement touched may be listed unchanged.  TS_OK (*out the caller's:
 * tstbl_keys_free), TS_ERR_NOT_FOUND when the journal no longer covers
 * them, TS_ERR_NOMEM. */
int  tstbl_changes(tstbl_map *m, const tstbl *t, uint64_t space, uint64_t from, uint64_t to,
                   tstbl_keys *out);
void tstbl_keys_free(tstbl_keys *k);

/* ---- building blocks of migrations (writer only) -------------------- */

/* Create the trees of a table for def (which it takes) under number num
 * (0: a new number); not yet in the catalog or the map. */
int  tstbl_build(tstbl_map *m, tstx *tx, tsd_table *def, uint64_t num, tstbl **out);
/* Write t's catalog entry and add it to the map (visible at commit). */
int  tstbl_install(tstbl_map *m, tstx *tx, tstbl *t);
/* Free a table built but not installed. */
void tstbl_discard(tstbl *t);
/* Remove t's catalog entry and take it out of the map; with drop_trees
 * also free its trees. */
int  tstbl_unlink(tstbl_map *m, tstx *tx, tstbl *t, int drop_trees);
/* Free every tree of t (its catalog entry stays). */
int  tstbl_drop_trees(tstx *tx, tstbl *t);
/* Open a table over existing trees (roots as in the catalog entry); def is
 * taken.  Not in the catalog or the map. */
int  tstbl_open_trees(tstbl_map *m, tsd_table *def, uint64_t num, uint64_t proot,
                      const uint64_t *roots, uint64_t ttl_root, tstbl **out);
/* t's catalog entry as JSON (new reference, NULL: out of memory) and a
 * table opened from such an entry (not in the catalog or the map). */
json_t *tstbl_entry_json(const tstbl *t);
int  tstbl_from_entry(tstbl_map *m, const json_t *entry, tstbl **out);
/* Move the catalog entries (tag, from, *) to (tag, to, *) (cached states
 * must be flushed and forgotten first). */
int  tstbl_move_state(tstbl_map *m, tstx *tx, const char *tag, uint64_t from, uint64_t to);
/* Take a reference for the writer (tstbl_release). */
void tstbl_hold(tstbl_map *m, tstbl *t);
/* Delete the catalog entries ("pk" or "rows", num, *). */
int  tstbl_remove_state(tstbl_map *m, tstx *tx, const char *tag, uint64_t num);
/* Drop the cached generator and count of table num. */
void tstbl_forget_states(tstbl_map *m, uint64_t num);

/* ---- per-(table, space) state (writer only) ------------------------- */

/* Next generated key of t in space as a new JSON value. */
int  tstbl_next_key(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space, json_t **pk_new);
/* A caller-supplied key was stored: keep later keys above it. */
int  tstbl_observe_key(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space, const json_t *pk);
/* Adjust / read the row count.  tstbl_count reads the stored count when
 * tx is a read transaction. */
int  tstbl_count_add(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space, int64_t d);
int  tstbl_count(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space, int64_t *out);
/* Forget the generator and count of t in space (clear, drop, space delete). */
int  tstbl_state_reset(tstbl_map *m, tstx *tx, tstbl *t, uint64_t space);

/* The options index i of def's module gets at create and open (vector
 * indexes: their vectorConfig with the field's dimensions and precision;
 * NULL for others). */
int tstbl_index_opts(const tstbl_map *m, const tsd_table *def, size_t i, json_t **opts);

#endif
