/* Transactions: snapshots, private dirty pages, spill, commit, group commit. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/env.h"
#include "txn/internal.h"

#define MIN_SPILL (256u << 10)
#define CHUNK 64
#define DIRECT_MIN 256   /* new pages that make a commit write them to the main file */
#define SUPERSEDE_MIN 256 /* pages changed before superseded versions leave the cache */
/* meta page (usable bytes): after the root slots, flags (u64), then the digest */
#define META_FLAGS_OFF  (40 + 8 * (TSPG_ROOTS + TSPG_SYSROOTS))
#define META_DIGEST_OFF (META_FLAGS_OFF + 8)

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

/* ---- dirty page table -------------------------------------------- */

static dpage *dfind(tstx *tx, uint64_t pgno)
{
    if (!tx->tabcap) return NULL;
    for (dpage *d = tx->tab[pgno & (tx->tabcap - 1)]; d; d = d->next)
        if (d->pgno == pgno) return d;
    return NULL;
}

static int dgrow(tstx *tx)
{
    size_t nc = tx->tabcap ? tx->tabcap * 2 : 64;
    dpage **nt = calloc(nc, sizeof *nt);
    if (!nt) return TS_ERR_NOMEM;
    for (size_t i = 0; i < tx->tabcap; i++)
        for (dpage *d = tx->tab[i], *n; d; d = n) {
            n = d->next;
            d->next = nt[d->pgno & (nc - 1)];
            nt[d->pgno & (nc - 1)] = d;
        }
    free(tx->tab);
    tx->tab = nt;
    tx->tabcap = nc;
    return TS_OK;
}

/* A dirty page's image is the data of an unlinked cache page, so that the
 * commit can hand the buffer itself to the cache (lp_adopt) instead of
 * allocating and copying another: half the memory a big transaction
 * touches for the first time, whose page faults dominated bulk loads. */
static uint8_t *lp_new(tspg *pg, uint64_t pgno)
{
    tscpage *cp = tscache_alloc(pg->cache, pgno, 0);
    return cp ? tscpage_data(cp) : NULL;
}

static void lp_free(tspg *pg, uint8_t *lp)
{
    if (lp) tscache_discard(pg->cache, tscpage_of_data(lp));
}

/* Move d's image into the cache as (d->pgno, ver); d keeps no image. */
static void lp_adopt(tspg *pg, dpage *d, uint64_t ver)
{
    tscpage *cp = tscpage_of_data(d->lp);
    d->lp = NULL;
    tscpage_set_key(cp, d->pgno, ver);
    tscache_unpin(pg->cache, tscache_insert(pg->cache, cp));
}

static dpage *dnew(tstx *tx, uint64_t pgno)
{
    if (tx->n + 1 > tx->tabcap && dgrow(tx)) return NULL;
    dpage *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->pgno = pgno;
    d->lp = lp_new(tx->pg, pgno);
    if (!d->lp) { free(d); return NULL; }
    d->next = tx->tab[pgno & (tx->tabcap - 1)];
    tx->tab[pgno & (tx->tabcap - 1)] = d;
    tx->n++;
    tx->nlive++;
    return d;
}

static void dfree_all(tstx *tx)
{
    for (size_t i = 0; i < tx->tabcap; i++)
        for (dpage *d = tx->tab[i], *n; d; d = n) {
            n = d->next;
            lp_free(tx->pg, d->lp);
            free(d);
        }
    free(tx->tab);
    tx->tab = NULL;
    tx->tabcap = tx->n = tx->nlive = 0;
}

/* ---- reading ------------------------------------------------------ */

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* A read slower than this came from the device, not the OS page cache. */
#define COLD_READ_NS 20000u
/* Prefetch hints stay on this long after a slow read. */
#define COLD_WINDOW_NS 50000000u

int tspg_read_stored(tspg *pg, uint64_t pgno, uint64_t f, uint8_t *lp)
{
    uint8_t small[16384];
    uint8_t *raw = pg->codec.page_size <= sizeof small ? small : malloc(pg->codec.page_size);
    int rc = raw ? TS_OK : TS_ERR_NOMEM;
    if (!rc) {
        uint64_t t0 = mono_ns();
        if (f) rc = tswal_read(pg->wal, f, raw);
        /* a frame retired by a log reset: everything up to the reader's
         * snapshot is in the main file by then */
        if (!f || rc == TS_ERR_NOT_FOUND)
            rc = tsfile_read(&pg->main, pgno * pg->codec.page_size, raw, pg->codec.page_size, NULL);
        if (rc == TS_ERR_CORRUPT && !f)
            tsenv_error(pg->env, rc, "%s: page %llu is beyond the end of the file", TSPG_FILE,
                        (unsigned long long)pgno);
        uint64_t t1 = mono_ns();
        if (t1 - t0 > COLD_READ_NS) __atomic_store_n(&pg->cold_until, t1 + COLD_WINDOW_NS, __ATOMIC_RELAXED);
    }
    if (!rc && (rc = tscodec_decode(&pg->codec, pgno, raw, lp)))
        tsenv_error(pg->env, rc, "page %llu (%s): checksum or authentication failed: the "
                    "database is corrupt or was tampered with", (unsigned long long)pgno,
                    f ? "log" : "main file");
    if (raw != small) free(raw);
    if (rc == TS_ERR_NOMEM) tsenv_error(pg->env, rc, "out of memory");
    return rc;
}

int tspg_load(tspg *pg, uint64_t pgno, uint64_t mark, tscpage **out)
{
    uint64_t f = tswal_find(pg->wal, pgno, mark);
    tscpage *cp = tscache_get(pg->cache, pgno, f);
    if (cp) { *out = cp; return TS_OK; }
    cp = tscache_alloc(pg->cache, pgno, f);
    if (!cp) return tsenv_error(pg->env, TS_ERR_NOMEM, "out of memory");
    int rc = tspg_read_stored(pg, pgno, f, tscpage_data(cp));
    if (rc) {
        tscache_discard(pg->cache, cp);
        return rc;
    }
    *out = tscache_insert(pg->cache, cp);
    return TS_OK;
}

void tspg_meta_parse(tstx *tx, const uint8_t *d)
{
    tx->page_count = get64(d + 8);
    tx->free_head = get64(d + 16);
    tx->free_count = get64(d + 24);
    tx->seq = get64(d + 32);
    for (unsigned i = 0; i < TSPG_ROOTS; i++) tx->roots[i] = get64(d + 40 + 8 * i);
    for (unsigned i = 0; i < TSPG_SYSROOTS; i++)
        tx->sysroots[i] = get64(d + 40 + 8 * TSPG_ROOTS + 8 * i);
    tx->meta_flags = (uint32_t)get64(d + META_FLAGS_OFF);
    memcpy(tx->digest, d + META_DIGEST_OFF, TSPG_DIGEST);
}

void tspg_meta_build(const tstx *tx, uint8_t *d)
{
    memcpy(d, "TSMT", 4);
    put64(d + 8, tx->page_count);
    put64(d + 16, tx->free_head);
    put64(d + 24, tx->free_count);
    put64(d + 32, tx->seq);
    for (unsigned i = 0; i < TSPG_ROOTS; i++) put64(d + 40 + 8 * i, tx->roots[i]);
    for (unsigned i = 0; i < TSPG_SYSROOTS; i++)
        put64(d + 40 + 8 * TSPG_ROOTS + 8 * i, tx->sysroots[i]);
    put64(d + META_FLAGS_OFF, tx->meta_flags);
    memcpy(d + META_DIGEST_OFF, tx->digest, TSPG_DIGEST);
}

static int load_meta(tstx *tx)
{
    tscpage *cp;
    int rc = tspg_load(tx->pg, 1, tx->mark, &cp);
    if (rc) return rc;
    const uint8_t *lp = tscpage_data(cp);
    if (memcmp(lp + TSPAGE_HDR, "TSMT", 4) != 0)
        rc = tsenv_error(tx->pg->env, TS_ERR_CORRUPT, "meta page: bad magic");
    else
        tspg_meta_parse(tx, lp + TSPAGE_HDR);
    tscache_unpin(tx->pg->cache, cp);
    return rc;
}

/* ---- begin / end -------------------------------------------------- */

static int lock_writer(tspg *pg)
{
    if (pg->o.busy_timeout_ms <= 0)
        return pthread_mutex_trylock(&pg->wlock) == 0 ? TS_OK : TS_ERR_TIMEOUT;
    if (pthread_mutex_trylock(&pg->wlock) == 0) return TS_OK;
    /* seen by the writer's commit, which then leaves its sync to the group */
    __atomic_add_fetch(&pg->wwait, 1, __ATOMIC_ACQ_REL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += pg->o.busy_timeout_ms / 1000;
    ts.tv_nsec += (pg->o.busy_timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    int e = pthread_mutex_timedlock(&pg->wlock, &ts);
    __atomic_sub_fetch(&pg->wwait, 1, __ATOMIC_ACQ_REL);
    return e == 0 ? TS_OK : TS_ERR_TIMEOUT;
}

int tstx_begin(tspg *pg, int write, tstx **out)
{
    *out = NULL;
    tstx *tx = calloc(1, sizeof *tx);
    if (!tx) return tsenv_error(pg->env, TS_ERR_NOMEM, "out of memory");
    tx->pg = pg;
    tx->write = write != 0;
    if (tx->write) {
        if (tspg_is_failed(pg)) { free(tx); return tspg_failed_error(pg); }
        if (lock_writer(pg)) {
            free(tx);
            return tsenv_error(pg->env, TS_ERR_TIMEOUT,
                               "another write transaction is active (waited %lld ms)",
                               (long long)pg->o.busy_timeout_ms);
        }
        if (tspg_is_failed(pg)) {
            pthread_mutex_unlock(&pg->wlock);
            free(tx);
            return tspg_failed_error(pg);
        }
        int rc = tspg_log_cap_check(pg);
        if (rc) {
            pthread_mutex_unlock(&pg->wlock);
            free(tx);
            return rc;
        }
        pthread_mutex_lock(&pg->mu);
        tx->mark = pg->committed;
        tx->stamp = pg->stamp_committed;
        pthread_mutex_unlock(&pg->mu);
    } else {
        pthread_mutex_lock(&pg->mu);
        tx->mark = pg->published;
        tx->stamp = pg->stamp_published;
        tx->rnext = pg->readers;
        if (pg->readers) pg->readers->rprev = tx;
        pg->readers = tx;
        pg->nreaders++;
        pthread_mutex_unlock(&pg->mu);
    }
    int rc = load_meta(tx);
    if (rc) { tstx_rollback(tx); return rc; }
    tx->base_count = tx->page_count;
    if (tx->write && pg->lsn > tx->seq) tx->seq = pg->lsn; /* meta is not written by every commit */
    *out = tx;
    return TS_OK;
}

static void end_tx(tstx *tx)
{
    tspg *pg = tx->pg;
    for (tspage *p = tx->hfree, *n; p; p = n) {
        n = p->next_free;
        free(p);
    }
    if (tx->write) {
        dfree_all(tx);
        free(tx->wpgnos);
        pthread_mutex_unlock(&pg->wlock);
    } else {
        pthread_mutex_lock(&pg->mu);
        if (tx->rprev) tx->rprev->rnext = tx->rnext; else pg->readers = tx->rnext;
        if (tx->rnext) tx->rnext->rprev = tx->rprev;
        pg->nreaders--;
        pthread_mutex_unlock(&pg->mu);
    }
    free(tx);
}

void tstx_rollback(tstx *tx)
{
    if (!tx) return;
    if (tx->write && tx->first_frame) tswal_rewind(tx->pg->wal);
    end_tx(tx);
}

int tstx_is_write(const tstx *tx) { return tx->write; }
uint32_t tstx_usable(const tstx *tx) { return tx->pg->codec.usable; }

uint64_t tstx_touched(const tstx *tx) { return tx->touched; }

void tstx_counts(const tstx *tx, uint64_t *pages, uint64_t *free_pages)
{
    if (pages) *pages = tx->page_count;
    if (free_pages) *free_pages = tx->free_count;
}

/* ---- pages -------------------------------------------------------- */

static int page_handle(tstx *tx, uint64_t pgno, tscpage *cp, dpage *d, tspage **out)
{
    tspage *p = tx->hfree;
    if (p) tx->hfree = p->next_free;
    else p = malloc(sizeof *p);
    if (!p) {
        if (cp) tscache_unpin(tx->pg->cache, cp);
        return tsenv_error(tx->pg->env, TS_ERR_NOMEM, "out of memory");
    }
    p->tx = tx;
    p->pgno = pgno;
    p->cp = cp;
    p->d = d;
    if (d) { d->pins++; d->stamp = tx->touched; }
    *out = p;
    return TS_OK;
}

static int stamp_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Write frames for spilled pages: keeps memory bounded for transactions
 * larger than the cache, without touching the main file.  Only the colder
 * half goes: the pages used most recently (a btree's upper levels, the
 * leaves being filled) stay, or they would be read back at once. */
static int spill(tstx *tx)
{
    tspg *pg = tx->pg;
    uint64_t pgnos[CHUNK];
    uint8_t *imgs[CHUNK];
    dpage *ds[CHUNK];
    size_t k = 0, nc = 0;
    int rc = TS_OK;
    uint8_t *buf = pg->scratch;
    uint64_t cut = UINT64_MAX;
    uint64_t *stamps = malloc((tx->nlive + 1) * sizeof *stamps);
    if (stamps) {
        for (size_t i = 0; i < tx->tabcap; i++)
            for (dpage *d = tx->tab[i]; d; d = d->next)
                if (d->lp && !d->pins && nc <= tx->nlive) stamps[nc++] = d->stamp;
        if (nc > 1) {
            qsort(stamps, nc, sizeof *stamps, stamp_cmp);
            cut = stamps[nc / 2];
        }
        free(stamps);
    }
    for (size_t i = 0; i < tx->tabcap && !rc; i++) {
        for (dpage *d = tx->tab[i]; d && !rc; d = d->next) {
            if (!d->lp || d->pins || d->stamp > cut) continue;
            imgs[k] = buf + k * pg->codec.page_size;
            if ((rc = tscodec_encode(&pg->codec, d->pgno, tx->seq + 1, d->lp, imgs[k]))) break;
            if (d->pgno >= tx->base_count || d->spilled) {
                /* A new page no snapshot can see goes to its place in the
                 * main file (the commit syncs it before the commit frame);
                 * a page spilled before rewrites its own uncommitted frame,
                 * so the log does not grow with every re-spill. */
                if (d->pgno >= tx->base_count) {
                    rc = tsfile_write(&pg->main, d->pgno * pg->codec.page_size, imgs[k],
                                      pg->codec.page_size);
                    if (rc) { tsenv_error_prefix(pg->env, "writing the database file"); break; }
                    d->spilled = TSTX_IN_MAIN;
                    tx->main_spilled = 1;
                } else if ((rc = tswal_overwrite(pg->wal, d->spilled, d->pgno, imgs[k]))) {
                    break;
                }
                lp_free(pg, d->lp);
                d->lp = NULL;
                tx->nlive--;
                continue;
            }
            pgnos[k] = d->pgno;
            ds[k++] = d;
            if (k == CHUNK) {
                rc = tspg_write_frames(tx, pgnos, imgs, ds, k, 0);
                k = 0;
            }
        }
    }
    if (!rc && k) rc = tspg_write_frames(tx, pgnos, imgs, ds, k, 0);
    return rc;
}

int tspg_write_frames(tstx *tx, const uint64_t *pgnos, uint8_t *const *imgs, dpage **ds, size_t k,
                      int commit)
{
    tspg *pg = tx->pg;
    uint64_t first;
    if (tx->nw + k > tx->capw) {
        /* before the frames count in the log: a failure after would leave
         * the log with a commit the pager never heard of */
        size_t nc = tx->capw ? tx->capw * 2 : 256;
        while (nc < tx->nw + k) nc *= 2;
        uint64_t *np = realloc(tx->wpgnos, nc * sizeof *np);
        if (!np) return tsenv_error(pg->env, TS_ERR_NOMEM, "out of memory");
        tx->wpgnos = np;
        tx->capw = nc;
    }
    /* A durable commit that follows only durable ones may be written
     * durably at once (one O_DIRECT | O_DSYNC write instead of pwrite +
     * fdatasync).  Not while a group sync runs or another writer waits:
     * concurrent committers share one fdatasync (group commit), and a
     * durable write under the writer lock would make them take turns. */
    int want = 0;
    if (commit && pg->o.durability_full && !__atomic_load_n(&pg->wwait, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&pg->mu);
        want = pg->dir_synced && !pg->syncing && !pg->failed && pg->synced == pg->committed;
        pthread_mutex_unlock(&pg->mu);
    }
    int rc = tswal_write(pg->wal, pgnos, imgs, k, commit, want ? &tx->synced_now : NULL, &first);
    if (rc) return rc;
    if (!tx->first_frame) tx->first_frame = first;
    for (size_t i = 0; i < k; i++) {
        tx->wpgnos[tx->nw++] = pgnos[i];
        if (ds && !commit) { /* spilled: drop the memory copy */
            ds[i]->spilled = first + i;
            lp_free(pg, ds[i]->lp);
            ds[i]->lp = NULL;
            tx->nlive--;
        }
    }
    return TS_OK;
}

static int maybe_spill(tstx *tx)
{
    uint64_t limit = tx->pg->o.cache_bytes;
    if (limit < MIN_SPILL) limit = MIN_SPILL;
    if ((uint64_t)tx->nlive * tx->pg->codec.logical <= limit) return TS_OK;
    return spill(tx);
}

/* Bring a spilled page back into memory. */
static int unspill(tstx *tx, dpage *d)
{
    tspg *pg = tx->pg;
    uint8_t *raw = malloc(pg->codec.page_size);
    d->lp = lp_new(pg, d->pgno);
    int rc = !raw || !d->lp ? TS_ERR_NOMEM
           : d->spilled == TSTX_IN_MAIN
               ? tsfile_read(&pg->main, d->pgno * pg->codec.page_size, raw, pg->codec.page_size, NULL)
               : tswal_read(pg->wal, d->spilled, raw);
    if (!rc) rc = tscodec_decode(&pg->codec, d->pgno, raw, d->lp);
    free(raw);
    if (rc) { lp_free(pg, d->lp); d->lp = NULL; return tsenv_error(pg->env, rc, "reloading spilled page %llu", (unsigned long long)d->pgno); }
    tx->nlive++;
    return TS_OK;
}

/* A free page is the free list's: reached from a stored reference it is
 * a damaged one (writing it would break the list). */
static int free_ref(tstx *tx, uint64_t pgno, const uint8_t *lp, int any)
{
    if (any || tspage_type(lp) != TSPG_TYPE_FREE) return TS_OK;
    return tsenv_error(tx->pg->env, TS_ERR_CORRUPT, "page %llu is free: a damaged page reference",
                       (unsigned long long)pgno);
}

/* tstx_get (any: free pages too) and tstx_get_ref. */
static int get_page(tstx *tx, uint64_t pgno, int write, int any, tspage **out)
{
    tspg *pg = tx->pg;
    *out = NULL;
    tx->touched++;
    /* Page numbers come from stored references (roots, child and list
     * pointers), so one outside the file is a damaged reference. */
    if (pgno < 2 || pgno >= tx->page_count)
        return tsenv_error(pg->env, TS_ERR_CORRUPT, "page %llu does not exist (%llu pages): a damaged page reference",
                           (unsigned long long)pgno, (unsigned long long)tx->page_count);
    if (write && !tx->write)
        return tsenv_error(pg->env, TS_ERR_INVALID, "page %llu: write access in a read transaction",
                           (unsigned long long)pgno);
    if (tx->write) {
        dpage *d = dfind(tx, pgno);
        if (d) {
            int rc = d->lp ? TS_OK : unspill(tx, d);
            if (!rc) rc = free_ref(tx, pgno, d->lp, any);
            return rc ? rc : page_handle(tx, pgno, NULL, d, out);
        }
    }
    tscpage *cp;
    int rc = tspg_load(pg, pgno, tx->mark, &cp);
    if (rc) return rc;
    if ((rc = free_ref(tx, pgno, tscpage_data(cp), any))) {
        tscache_unpin(pg->cache, cp);
        return rc;
    }
    if (!write) return page_handle(tx, pgno, cp, NULL, out);
    dpage *d = dnew(tx, pgno);
    if (!d) { tscache_unpin(pg->cache, cp); return tsenv_error(pg->env, TS_ERR_NOMEM, "out of memory"); }
    memcpy(d->lp, tscpage_data(cp), pg->codec.logical);
    d->old_lsn = tspage_lsn(d->lp);
    d->has_old = 1;
    /* Past a small working set, the version this copy supersedes leaves
     * the cache now rather than at commit: a bulk transaction that rewrites
     * most of the database would otherwise hold every page twice.  Readers
     * of the committed state (and everyone after a rollback) read it again
     * from the log or the main file on their next miss. */
    if (tx->n > SUPERSEDE_MIN) tscache_unpin_forget(pg->cache, cp);
    else tscache_unpin(pg->cache, cp);
    if ((rc = page_handle(tx, pgno, NULL, d, out))) return rc;
    if ((rc = maybe_spill(tx))) {
        tspage_release(*out);
        *out = NULL;
    }
    return rc;
}

int tstx_get(tstx *tx, uint64_t pgno, int write, tspage **out)
{
    return get_page(tx, pgno, write, 1, out);
}

int tstx_get_ref(tstx *tx, uint64_t pgno, int write, tspage **out)
{
    return get_page(tx, pgno, write, 0, out);
}

int tstx_prefetch(tstx *tx, uint64_t pgno)
{
    tspg *pg = tx->pg;
    /* Only while reads come from the device: when the files are in the OS
     * page cache a hint is a system call that saves nothing. */
    if (mono_ns() >= __atomic_load_n(&pg->cold_until, __ATOMIC_RELAXED)) return TS_ERR_UNSUPPORTED;
    if (pgno < 2 || pgno >= tx->page_count || (tx->write && dfind(tx, pgno))) return TS_OK;
    uint64_t f = tswal_find(pg->wal, pgno, tx->mark);
    if (tscache_has(pg->cache, pgno, f)) return TS_OK;
    if (f) tswal_prefetch(pg->wal, f);
    else tsfile_prefetch(&pg->main, pgno * pg->codec.page_size, pg->codec.page_size);
    return TS_OK;
}

int tstx_alloc(tstx *tx, tspage **out, uint64_t *pgno_out)
{
    tspg *pg = tx->pg;
    *out = NULL;
    if (!tx->write) return tsenv_error(pg->env, TS_ERR_INVALID, "alloc in a read transaction");
    int rc;
    uint64_t pgno;
    if (tx->free_head) {
        pgno = tx->free_head;
        tspage *p;
        if ((rc = tstx_get(tx, pgno, 1, &p))) return rc;
        uint8_t *lp = p->d->lp;
        if (tspage_type(lp) != TSPG_TYPE_FREE) {
            tspage_release(p);
            return tsenv_error(pg->env, TS_ERR_CORRUPT, "free list: page %llu is not free",
                               (unsigned long long)pgno);
        }
        tx->free_head = get64(lp + TSPAGE_HDR);
        tx->free_count--;
        memset(lp, 0, pg->codec.logical);
        *out = p;
    } else {
        pgno = tx->page_count;
        dpage *d = dnew(tx, pgno);
        if (!d) return tsenv_error(pg->env, TS_ERR_NOMEM, "out of memory");
        tx->page_count++;
        memset(d->lp, 0, pg->codec.logical);
        if ((rc = page_handle(tx, pgno, NULL, d, out))) return rc;
        if ((rc = maybe_spill(tx))) { tspage_release(*out); *out = NULL; return rc; }
    }
    tx->meta_dirty = 1;
    if (pgno_out) *pgno_out = pgno;
    return TS_OK;
}

int tstx_free(tstx *tx, uint64_t pgno)
{
    tspage *p;
    int rc = tstx_get_ref(tx, pgno, 1, &p);
    if (rc) return rc;
    dpage *d = p->d;
    if (d->pins > 1) {
        tspage_release(p);
        return tsenv_error(tx->pg->env, TS_ERR_INVALID, "free of pinned page %llu",
                           (unsigned long long)pgno);
    }
    memset(d->lp, 0, tx->pg->codec.logical);
    tspage_set_type(d->lp, TSPG_TYPE_FREE);
    put64(d->lp + TSPAGE_HDR, tx->free_head);
    tx->free_head = pgno;
    tx->free_count++;
    tx->meta_dirty = 1;
    tspage_release(p);
    return TS_OK;
}

int tstx_root_get(tstx *tx, unsigned slot, uint64_t *v)
{
    if (slot >= TSPG_ROOTS) return TS_ERR_INVALID;
    *v = tx->roots[slot];
    return TS_OK;
}

int tstx_root_set(tstx *tx, unsigned slot, uint64_t v)
{
    if (slot >= TSPG_ROOTS || !tx->write) return TS_ERR_INVALID;
    tx->roots[slot] = v;
    tx->meta_dirty = 1;
    return TS_OK;
}

int tstx_sysroot_get(tstx *tx, unsigned slot, uint64_t *v)
{
    if (slot >= TSPG_SYSROOTS) return TS_ERR_INVALID;
    *v = tx->sysroots[slot];
    return TS_OK;
}

int tstx_sysroot_set(tstx *tx, unsigned slot, uint64_t v)
{
    if (slot >= TSPG_SYSROOTS || !tx->write) return TS_ERR_INVALID;
    tx->sysroots[slot] = v;
    tx->meta_dirty = 1;
    return TS_OK;
}

uint8_t *tspage_data(tspage *p)
{
    return (p->d ? p->d->lp : tscpage_data(p->cp)) + TSPAGE_HDR;
}

uint64_t tspage_no(const tspage *p) { return p->pgno; }

void tspage_release(tspage *p)
{
    if (!p) return;
    /* A handle released twice would unpin its page twice (and sit twice on
     * the free handles): a caller's bug, refused loudly in debug builds
     * and ignored otherwise. */
    assert(p->d || p->cp);
    if (!p->d && !p->cp) return;
    if (p->d) p->d->pins--;
    else tscache_unpin(p->tx->pg->cache, p->cp);
    p->d = NULL;
    p->cp = NULL;
    p->next_free = p->tx->hfree;
    p->tx->hfree = p;
}

void *tspage_hold(tspage *p)
{
    tscpage *cp = p->d ? tscpage_of_data(p->d->lp) : p->cp;
    tscache_hold(cp);
    return cp;
}

void tspage_unhold(void *hold) { tscache_release(hold); }

void *tspage_hold_data(const void *data)
{
    /* data is tspage_data of a held page: TSPAGE_HDR into its cache frame */
    tscpage *cp = tscpage_of_data((uint8_t *)(uintptr_t)data - TSPAGE_HDR);
    tscache_hold(cp);
    return cp;
}

/* ---- commit ------------------------------------------------------- */

/* With pg->mu held: new readers see every commit up to mark. */
static void publish(tspg *pg, uint64_t mark, uint64_t stamp)
{
    if (pg->published < mark) {
        pg->published = mark;
        pg->stamp_published = stamp;
    }
}

void tspg_note_synced(tspg *pg, uint64_t mark, uint64_t stamp)
{
    if (pg->synced < mark) pg->synced = mark;
    publish(pg, mark, stamp);
}

/* Wait until the log is durable up to `mark`, sharing one fsync among all
 * committers that arrive while it runs. */
static int group_sync(tspg *pg, uint64_t mark)
{
    int rc = TS_OK;
    pthread_mutex_lock(&pg->mu);
    while (!pg->failed && pg->synced < mark) {
        if (pg->syncing) {
            pthread_cond_wait(&pg->cv, &pg->mu);
            continue;
        }
        pg->syncing = 1;
        uint64_t target = pg->committed, target_stamp = pg->stamp_committed;
        int dir = !pg->dir_synced;
        pthread_mutex_unlock(&pg->mu);
        /* Once per open, the directory too: an earlier open may have
         * created the log without getting its entry to disk. */
        int src = dir ? pg->st->vt->sync_dir(pg->st->h) : TS_OK;
        if (!src) src = tswal_sync(pg->wal, 1, target);
        pthread_mutex_lock(&pg->mu);
        pg->syncing = 0;
        if (src) {
            __atomic_store_n(&pg->failed, src, __ATOMIC_RELEASE);
        } else {
            tspg_note_synced(pg, target, target_stamp);
            pg->dir_synced = 1;
            pg->stats.syncs++;
        }
        pthread_cond_broadcast(&pg->cv);
    }
    if (pg->synced < mark) rc = TS_ERR_IO;
    pthread_mutex_unlock(&pg->mu);
    if (rc) tsenv_error(pg->env, rc, "the log could not be made durable (fsync failed); the "
                        "commit is not acknowledged and the database refuses writes until reopened");
    return rc;
}

static int pgno_cmp(const void *a, const void *b)
{
    uint64_t x = (*(dpage *const *)a)->pgno, y = (*(dpage *const *)b)->pgno;
    return (x > y) - (x < y);
}

/* Write the transaction's new pages list[0..n) to the main file and sync
 * it (with any new pages spilled there before), ahead of the commit frame:
 * a big transaction's new pages are written once instead of to the log and
 * again by a checkpoint.  No snapshot can see them until the commit, and a
 * commit frame never reaches the disk before them. */
static int write_main(tstx *tx, dpage **list, size_t n, uint64_t lsn)
{
    tspg *pg = tx->pg;
    size_t ps = pg->codec.page_size;
    qsort(list, n, sizeof *list, pgno_cmp);
    int rc = TS_OK;
    for (size_t i = 0; i < n && !rc;) {
        /* runs of consecutive pages in one write */
        size_t k = 0;
        while (i + k < n && k < CHUNK && list[i + k]->pgno == list[i]->pgno + k && !rc) {
            rc = tscodec_encode(&pg->codec, list[i + k]->pgno, lsn, list[i + k]->lp, pg->scratch + k * ps);
            k++;
        }
        if (!rc) rc = tsfile_write(&pg->main, list[i]->pgno * ps, pg->scratch, k * ps);
        if (rc) tsenv_error_prefix(pg->env, "writing the database file");
        i += k;
    }
    if (!rc && (rc = tsfile_sync(&pg->main, 1))) {
        /* after a failed fsync nothing written is trusted: stop acknowledging */
        pthread_mutex_lock(&pg->mu);
        if (!pg->failed) __atomic_store_n(&pg->failed, rc, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&pg->mu);
        tsenv_error_prefix(pg->env, "syncing the database file");
    }
    return rc;
}

static int write_commit(tstx *tx)
{
    tspg *pg = tx->pg;
    uint64_t lsn = tx->seq + 1;
    tx->seq = lsn;
    /* The meta page goes last, as the commit frame, when it changed (or
     * when every other page was spilled and a frame must carry the commit
     * flag); otherwise the last data page is the commit frame. */
    dpage *meta = NULL;
    if (tx->meta_flags & TSPG_META_DIGEST) {
        /* every page written moves from its old version's term to this one */
        for (size_t i = 0; i < tx->tabcap; i++)
            for (dpage *d = tx->tab[i]; d; d = d->next) {
                if (d->pgno < 2) continue;
                if (d->has_old) tspg_digest_mix(pg->digest_key, d->pgno, d->old_lsn, tx->digest);
                tspg_digest_mix(pg->digest_key, d->pgno, lsn, tx->digest);
            }
        tx->meta_dirty = 1;
    }
    if (tx->meta_dirty || tx->nlive == 0) {
        tscpage *cp;
        int rc = tspg_load(pg, 1, tx->mark, &cp);
        if (rc) return rc;
        meta = dnew(tx, 1);
        if (!meta) { tscache_unpin(pg->cache, cp); return tsenv_error(pg->env, TS_ERR_NOMEM, "out of memory"); }
        memcpy(meta->lp, tscpage_data(cp), pg->codec.logical);
        tscache_unpin(pg->cache, cp);
        tspage_set_type(meta->lp, TSPG_TYPE_META);
        tspg_meta_build(tx, meta->lp + TSPAGE_HDR);
    }

    size_t total = 0, nnew = 0;
    dpage **list = malloc((tx->nlive + 1) * sizeof *list);
    if (!list) return tsenv_error(pg->env, TS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < tx->tabcap; i++)
        for (dpage *d = tx->tab[i]; d; d = d->next)
            if (d->lp && d != meta) list[total++] = d;
    if (tx->main_spilled || total >= DIRECT_MIN) {
        /* new pages first in the list, to their place in the main file */
        for (size_t i = 0; i < total; i++)
            if (list[i]->pgno >= tx->base_count) {
                dpage *t = list[nnew];
                list[nnew++] = list[i];
                list[i] = t;
            }
        if (!tx->main_spilled && nnew < DIRECT_MIN) nnew = 0;
    }
    int rc0 = nnew || tx->main_spilled ? write_main(tx, list, nnew, lsn) : TS_OK;
    if (rc0) { free(list); return rc0; }
    /* in page order, so that a checkpoint copies runs of them at once */
    qsort(list + nnew, total - nnew, sizeof *list, pgno_cmp);
    if (meta) list[total++] = meta;

    uint64_t pgnos[CHUNK];
    uint8_t *imgs[CHUNK];
    size_t before = tx->nw;
    int rc = TS_OK;
    for (size_t i = nnew; i < total && !rc; i += CHUNK) {
        size_t k = total - i < CHUNK ? total - i : CHUNK;
        for (size_t j = 0; j < k && !rc; j++) {
            imgs[j] = pg->scratch + j * pg->codec.page_size;
            pgnos[j] = list[i + j]->pgno;
            rc = tscodec_encode(&pg->codec, pgnos[j], lsn, list[i + j]->lp, imgs[j]);
        }
        if (!rc) rc = tspg_write_frames(tx, pgnos, imgs, NULL, k, i + k == total);
    }
    /* Only now that every frame is written may the cache learn of them:
     * a failed commit reuses their frame numbers.  Each image moves into
     * the cache as it is (the transaction ends here).  The version this
     * transaction replaced is dropped: only older snapshots still want it,
     * and they can read it again from the log. */
    for (size_t i = 0; i < total && !rc; i++) {
        uint64_t pgno = list[i]->pgno;
        lp_adopt(pg, list[i], i < nnew ? 0 : tx->first_frame + before + i - nnew);
        if (i >= nnew) tscache_drop(pg->cache, pgno, tswal_find(pg->wal, pgno, tx->mark));
    }
    free(list);
    if (!rc) pg->lsn = lsn;
    return rc;
}

int tstx_commit(tstx *tx)
{
    if (!tx) return TS_ERR_INVALID;
    tspg *pg = tx->pg;
    if (!tx->write || (tx->n == 0 && !tx->meta_dirty)) {
        end_tx(tx);
        return TS_OK;
    }
    int rc = tspg_is_failed(pg) ? tspg_failed_error(pg) : write_commit(tx);
    if (!rc && (rc = tswal_index_add(pg->wal, tx->first_frame, tx->wpgnos, tx->nw))) {
        /* The commit frame is in the log, so recovery would apply it, but
         * this process cannot index it: writing on would build on a state
         * the log contradicts.  Stop writes, as after a failed fsync; the
         * commit takes effect when the database is reopened (if it reached
         * the disk), and readers go on seeing the state before it. */
        pthread_mutex_lock(&pg->mu);
        if (!pg->failed) __atomic_store_n(&pg->failed, TS_ERR_NOMEM, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&pg->mu);
        tsenv_error(pg->env, rc, "out of memory after the commit reached the log: it takes effect "
                    "when the database is reopened, and writes are refused until then");
    }
    if (rc) {
        if (rc == TS_ERR_NOMEM && !*tsenv_errmsg(pg->env)) tsenv_error(pg->env, rc, "out of memory");
        if (tswal_sync_failed(pg->wal)) {
            pthread_mutex_lock(&pg->mu);
            if (!pg->failed) __atomic_store_n(&pg->failed, rc, __ATOMIC_RELEASE);
            pthread_mutex_unlock(&pg->mu);
        }
        tstx_rollback(tx); /* the failing transaction changes nothing */
        return rc;
    }
    uint64_t mark = tswal_last_commit(pg->wal);
    uint64_t logsize = tswal_size_bytes(pg->wal);
    pthread_mutex_lock(&pg->mu);
    /* Checkpoint by the log not yet copied, not by the file size: a reader
     * that holds off the reset must not make every commit checkpoint. */
    int ckpt = (mark - pg->ckpt_done) * (TSWAL_FRAME_HDR + (uint64_t)pg->codec.page_size) >
               pg->o.autockpt_bytes;
    pg->committed = mark;
    if (tx->commit_stamp > pg->stamp_committed) pg->stamp_committed = tx->commit_stamp;
    pg->stats.log_bytes = logsize;
    pg->stats.commits++;
    int synced_now = tx->synced_now;
    if (synced_now) {
        tspg_note_synced(pg, mark, pg->stamp_committed);
        pg->stats.syncs++;
    } else if (!pg->o.durability_full) {
        publish(pg, mark, pg->stamp_committed);
    }
    pthread_mutex_unlock(&pg->mu);
    end_tx(tx);
    if (pg->o.durability_full && !synced_now) rc = group_sync(pg, mark);
    if (!rc && ckpt) tspg_checkpoint_auto(pg); /* best effort: a failure only delays it */
    return rc;
}

uint64_t tspg_stamp(tspg *pg)
{
    pthread_mutex_lock(&pg->mu);
    uint64_t s = pg->stamp_committed;
    pthread_mutex_unlock(&pg->mu);
    return s;
}

void tspg_stamp_restore(tspg *pg, uint64_t stamp)
{
    pthread_mutex_lock(&pg->mu);
    if (stamp > pg->stamp_committed) pg->stamp_committed = stamp;
    if (stamp > pg->stamp_published) pg->stamp_published = stamp;
    pthread_mutex_unlock(&pg->mu);
}

void tstx_set_tag(tstx *tx, uint64_t tag) { tx->tag = tag; }
uint64_t tstx_stamp(const tstx *tx) { return tx->stamp; }
void tstx_set_commit_stamp(tstx *tx, uint64_t stamp) { tx->commit_stamp = stamp; }
uint64_t tstx_tag(const tstx *tx) { return tx->tag; }
