/*
 * The transaction manager: one writer at a time, any number of readers,
 * each on a stable snapshot (SQLite-WAL style MVCC over tswal).
 *
 *  - A read transaction sees the log up to the last durable commit when it
 *    began; it never blocks and is never blocked.
 *  - A write transaction takes the writer lock (waiting up to busy_timeout,
 *    then TS_ERR_TIMEOUT), keeps its changed pages private (spilling them to
 *    the log as uncommitted frames when they outgrow their budget), and at
 *    commit appends them with a commit frame.  Concurrent committers share
 *    one fsync (group commit).
 *  - Checkpoints copy committed pages from the log to the main file, never
 *    past the oldest reader's snapshot, and start a new log generation when
 *    nothing needs the old one.
 *  - After a failed fsync every later write is refused (TS_ERR_READONLY):
 *    the database must be reopened (no retry-and-trust).
 *
 * Page 0 of the main file is a plaintext file header; page 1 is the meta
 * page (page count, free list, root slots for the upper layers).
 */
#ifndef TS_TXN_PAGER_H
#define TS_TXN_PAGER_H

#include <stdint.h>
#include "crypto/keys.h"
#include "io/store.h"

#define TSPG_FILE "tostore.db"
/* Formats this build reads: 1; 2 (a meta page with the page-version
 * digest, which a build that does not maintain it must not write); 3 (the
 * data layer may store rows that leave their vectors to an index, which
 * older builds cannot read).  New databases are format 3; older ones keep
 * their format and its rules. */
#define TSPG_FORMAT 3
#define TSPG_FORMAT_DIGEST 2
#define TSPG_FORMAT_VECTOR_REFS 3
#define TSPG_ROOTS 24           /* root slots in the meta page, free for any use */
#define TSPG_SYSROOTS 8         /* root slots reserved for the data layer's catalog */
#define TSPG_TYPE_FREE 1
#define TSPG_TYPE_META 2

typedef struct tspg tspg;
typedef struct tstx tstx;
typedef struct tspage tspage;

typedef struct tspg_opts {
    uint32_t page_size;          /* for a new database; an existing one keeps its own */
    uint64_t cache_bytes;
    int      durability_full;    /* 1: fsync before commit returns */
    int64_t  busy_timeout_ms;
    uint64_t autockpt_bytes;     /* checkpoint when the log grows past this; 0: default */
    uint64_t max_log_bytes;      /* refuse write transactions while the log is this big and
                                    a reader keeps it from restarting; 0: no cap */
    int      page_digest;        /* a new database keeps the page-version digest */
} tspg_opts;

typedef struct tspg_stats {
    uint64_t cache_hits, cache_misses, cache_pages;
    uint64_t cache_memory, cache_memory_peak;
    uint64_t log_bytes, page_count, free_pages, commits, syncs, checkpoints;
    uint64_t recovered_frames;
    uint32_t page_size, usable;
} tspg_stats;

/* Read the file header: *exists 0 for a new store; *encrypted from it. */
int  tspg_probe(ts_env *env, tsstore *st, int *exists, int *encrypted);
/* Open or create the database file and recover the log.  cipher may be
 * NULL (plain); it must match how the database was created. */
int  tspg_open(ts_env *env, tsstore *st, tscipher *cipher, const tspg_opts *o, tspg **out);
/* Checkpoint and close.  Every transaction must have ended. */
int  tspg_close(tspg *pg);
/* Copy committed log pages to the main file; with reset, also start a new
 * log generation when no reader needs the old one. */
int  tspg_checkpoint(tspg *pg, int reset);
void tspg_stats_get(tspg *pg, tspg_stats *s);
/* The database file's format number (TSPG_FORMAT for a new one). */
uint32_t tspg_format(const tspg *pg);

typedef struct tspg_check_report {
    int      ok;
    uint64_t pages, free_pages, bad_pages, first_bad;
    int      freelist_broken;
    int      digest_bad;         /* the pages' versions differ from the meta page's digest */
} tspg_check_report;
typedef void (*tsrekey_progress_fn)(void *ctx, uint64_t done, uint64_t total);
/* Read every page of the current snapshot and walk the free list.  Returns
 * TS_OK when the check ran (see r->ok for the verdict). */
int  tspg_check(tspg *pg, tspg_check_report *r, tsrekey_progress_fn cb, void *ctx);

/* Begin a transaction (write != 0: the writer).  Ended by commit or
 * rollback, which free it. */
int  tstx_begin(tspg *pg, int write, tstx **out);
int  tstx_commit(tstx *tx);
void tstx_rollback(tstx *tx);
int  tstx_is_write(const tstx *tx);
uint32_t tstx_usable(const tstx *tx);
/* Pages in the file and on the free list, as the transaction sees them. */
void tstx_counts(const tstx *tx, uint64_t *pages, uint64_t *free_pages);
/* Pages this transaction has got so far (tstx_get and tstx_alloc). */
uint64_t tstx_touched(const tstx *tx);

/* Pin page pgno (>= 2).  With write, the page is copied into the
 * transaction and may be changed until commit.  Released with
 * tspage_release.  A number outside the file is TS_ERR_CORRUPT (a damaged
 * reference). */
int  tstx_get(tstx *tx, uint64_t pgno, int write, tspage **out);
/* tstx_get for a page reached from a stored reference (the plugins' page
 * API): a free page is TS_ERR_CORRUPT too, since writing it would break
 * the free list. */
int  tstx_get_ref(tstx *tx, uint64_t pgno, int write, tspage **out);
/* Hint that page pgno will be got soon: when it is neither in the cache
 * nor the transaction's, the backend starts reading it (its prefetch), so
 * that gets issued one after another overlap on the device.  Only within
 * 50 ms of a read that took over 20 us (one from the device): with the
 * files in the OS page cache a hint costs a system call and saves nothing:
 * TS_ERR_UNSUPPORTED then (no hint made; pgno 0 only asks), else TS_OK. */
int  tstx_prefetch(tstx *tx, uint64_t pgno);
/* A new zeroed page, pinned for write (reuses freed pages first). */
int  tstx_alloc(tstx *tx, tspage **out, uint64_t *pgno_out);
/* Put a page on the free list (one already free: TS_ERR_CORRUPT). */
int  tstx_free(tstx *tx, uint64_t pgno);
/* Root slots for the upper layers (0..TSPG_ROOTS-1). */
int  tstx_root_get(tstx *tx, unsigned slot, uint64_t *v);
int  tstx_root_set(tstx *tx, unsigned slot, uint64_t v);
/* The data layer's own slots (0..TSPG_SYSROOTS-1), apart from the free ones
 * so that tests and tools using root slots never clobber the catalog. */
int  tstx_sysroot_get(tstx *tx, unsigned slot, uint64_t *v);
int  tstx_sysroot_set(tstx *tx, unsigned slot, uint64_t v);

/* A value the upper layers attach to a transaction (0 at begin): the data
 * layer stores which catalog changes its snapshot includes. */
void     tstx_set_tag(tstx *tx, uint64_t tag);
uint64_t tstx_tag(const tstx *tx);
/* A number the upper layers publish with their commits (e.g. the data
 * layer's catalog commit number): tstx_set_commit_stamp before tstx_commit
 * (0: unchanged); tstx_stamp is the latest stamp published with the
 * commits this transaction's snapshot holds, taken with the snapshot
 * itself, so a snapshot that sees a commit's pages also sees its stamp. */
void     tstx_set_commit_stamp(tstx *tx, uint64_t stamp);
uint64_t tstx_stamp(const tstx *tx);
/* The stamp the latest commit published (stamps live in memory only): a
 * pager opened again over the same files in the same process (ts_rekey)
 * starts from the old one's, so snapshots keep seeing what they saw. */
uint64_t tspg_stamp(tspg *pg);
void     tspg_stamp_restore(tspg *pg, uint64_t stamp);

uint8_t *tspage_data(tspage *p);     /* the usable bytes */
uint64_t tspage_no(const tspage *p);
void     tspage_release(tspage *p);
/* Keep p's image in memory beyond the release and the transaction (the
 * page API's hold): the pointer tspage_data gave stays valid until
 * tspage_unhold of the returned token (the page cache outlives the pager
 * until then).  A committed image never changes; a page of a write
 * transaction changes only through that transaction's writes and, until
 * the transaction ends, is released only on its thread. */
void    *tspage_hold(tspage *p);
void     tspage_unhold(void *hold);
/* Another token for an image a token of the caller keeps, named by the
 * pointer tspage_data gave for it. */
void    *tspage_hold_data(const void *data);

#endif
