/* Opening, creating, checkpointing and closing the database file. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include "base/crc32c.h"
#include "base/env.h"
#include "txn/internal.h"

/* File header (page 0, plaintext, written once):
 *  0 "TOSTORE\0"  8 format u32  12 page_size u32  16 dbid[16]
 * 32 flags u32 (1: encrypted)  36 page reserve u32 (TSPAGE_RESERVE)
 * 40 key id u64 (first bytes of the keyring's key check; 0 when plain)
 * 60 crc32c of 0..59 */
#define HDR_LEN 64
#define FLAG_ENCRYPTED TSPG_FLAG_ENCRYPTED

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }

static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

int tspg_read_header(ts_env *env, tsstore *st, const char *name, int *exists, tspg_fhdr *h)
{
    int rc = st->vt->exists(st->h, name, exists);
    if (rc || !*exists) return rc;
    tsfile f;
    uint8_t b[HDR_LEN];
    size_t got = 0;
    if ((rc = tsfile_open(st, name, TS_OPEN_READONLY, &f))) return rc;
    rc = tsfile_read(&f, 0, b, sizeof b, &got);
    tsfile_close(&f);
    if (rc) return rc;
    if (got < HDR_LEN || memcmp(b, "TOSTORE", 8) != 0)
        return tsenv_error(env, TS_ERR_CORRUPT, "%s: not a tostore database file", name);
    if (get32(b + 60) != tscrc32c(0, b, 60))
        return tsenv_error(env, TS_ERR_CORRUPT, "%s: file header checksum mismatch", name);
    h->format = get32(b + 8);
    h->page_size = get32(b + 12);
    memcpy(h->dbid, b + 16, 16);
    h->flags = get32(b + 32);
    h->overhead = get32(b + 36);
    h->keyid = get64(b + 40);
    if (h->format > TSPG_FORMAT)
        return tsenv_error(env, TS_ERR_FORMAT,
                           "%s: format %u was written by a newer tostore; this build reads up to "
                           "format %d", TSPG_FILE, h->format, TSPG_FORMAT);
    if (h->format < 1)
        return tsenv_error(env, TS_ERR_FORMAT, "%s: unknown format %u", TSPG_FILE, h->format);
    if (h->page_size < 4096 || h->page_size > 65536 || (h->page_size & (h->page_size - 1)))
        return tsenv_error(env, TS_ERR_CORRUPT, "%s: invalid page size %u", TSPG_FILE, h->page_size);
    return TS_OK;
}

int tspg_probe(ts_env *env, tsstore *st, int *exists, int *encrypted)
{
    tspg_fhdr h = {0};
    int rc = tspg_read_header(env, st, TSPG_FILE, exists, &h);
    *encrypted = !rc && *exists && (h.flags & FLAG_ENCRYPTED);
    return rc;
}

int tspg_setup_codec(ts_env *env, tscodec *c, const tspg_fhdr *h, tscipher *cipher)
{
    memset(c, 0, sizeof *c);
    c->page_size = h->page_size;
    memcpy(c->dbid, h->dbid, 16);
    c->cipher = cipher;
    if (!!(h->flags & FLAG_ENCRYPTED) != !!cipher)
        return tsenv_error(env, TS_ERR_KEY, cipher ? "the database is not encrypted"
                                                   : "the database is encrypted: a cipher is needed");
    if (cipher && cipher->vt->overhead > TSPAGE_RESERVE)
        return tsenv_error(env, TS_ERR_UNSUPPORTED,
                           "cipher '%s' adds %u bytes per page; pages reserve only %d",
                           cipher->mod->desc.name, cipher->vt->overhead, TSPAGE_RESERVE);
    if (h->overhead != TSPAGE_RESERVE)
        return tsenv_error(env, TS_ERR_CORRUPT, "%s: page reserve %u is not %d", TSPG_FILE,
                           h->overhead, TSPAGE_RESERVE);
    if ((cipher ? cipher->keyid : 0) != h->keyid)
        return tsenv_error(env, TS_ERR_KEY, "the keyring does not belong to this database file");
    c->logical = h->page_size - TSPAGE_RESERVE;
    c->usable = c->logical - TSPAGE_HDR;
    return TS_OK;
}

/* Write header + empty meta page to a temporary file, then rename it into
 * place: a crash leaves either no database or a complete empty one. */
void tspg_header_bytes(const tspg_fhdr *h, uint8_t *buf)
{
    memset(buf, 0, h->page_size);
    memcpy(buf, "TOSTORE", 8);
    put32(buf + 8, h->format);
    put32(buf + 12, h->page_size);
    memcpy(buf + 16, h->dbid, 16);
    put32(buf + 32, h->flags);
    put32(buf + 36, h->overhead);
    put64(buf + 40, h->keyid);
    put32(buf + 60, tscrc32c(0, buf, 60));
}

static int create_db(tspg *pg, tspg_fhdr *h)
{
    uint32_t ps = h->page_size;
    uint8_t *buf = calloc(2, ps), *lp = calloc(1, ps);
    if (!buf || !lp) { free(buf); free(lp); return tsenv_error(pg->env, TS_ERR_NOMEM, "out of memory"); }
    tspg_header_bytes(h, buf);
    tstx tmp = { .pg = pg, .page_count = 2, .meta_flags = pg->o.page_digest ? TSPG_META_DIGEST : 0 };
    tspage_set_type(lp, TSPG_TYPE_META);
    tspg_meta_build(&tmp, lp + TSPAGE_HDR);
    int rc = tscodec_encode(&pg->codec, 1, 0, lp, buf + ps);
    if (!rc) rc = tsstore_put_atomic(pg->st, TSPG_FILE, buf, 2 * (size_t)ps);
    if (rc && !*tsenv_errmsg(pg->env)) tsenv_error(pg->env, rc, "cannot create %s", TSPG_FILE);
    free(buf);
    free(lp);
    return rc;
}

int tspg_failed_error(tspg *pg)
{
    if (tspg_is_failed(pg) == TS_ERR_NOMEM)
        return tsenv_error(pg->env, TS_ERR_READONLY,
                           "a commit reached the log but could not be indexed (out of memory), so "
                           "the database no longer accepts writes; close and reopen it");
    return tsenv_error(pg->env, TS_ERR_READONLY,
                       "an earlier fsync failed, so the database no longer accepts writes; "
                       "close and reopen it");
}

int tspg_open(ts_env *env, tsstore *st, tscipher *cipher, const tspg_opts *o, tspg **out)
{
    *out = NULL;
    tspg *pg = calloc(1, sizeof *pg);
    if (!pg) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    pg->env = env;
    pg->st = st;
    pg->o = *o;
    if (!pg->o.autockpt_bytes) pg->o.autockpt_bytes = 16u << 20;
    pthread_mutex_init(&pg->wlock, NULL);
    pthread_mutex_init(&pg->mu, NULL);
    pthread_mutex_init(&pg->ckpt, NULL);
    pthread_cond_init(&pg->cv, NULL);

    int exists = 0, wal_exists = 0;
    tspg_fhdr h = {0};
    int rc = tspg_read_header(env, st, TSPG_FILE, &exists, &h);
    if (!rc) rc = st->vt->exists(st->h, TSWAL_FILE, &wal_exists);
    if (!rc && !exists && wal_exists)
        rc = tsenv_error(env, TS_ERR_CORRUPT, "%s exists but %s does not: refusing to start a "
                         "new database over an orphaned log", TSWAL_FILE, TSPG_FILE);
    if (!rc && !exists) {
        h.format = TSPG_FORMAT;
        h.page_size = o->page_size;
        randombytes_buf(h.dbid, sizeof h.dbid);
        h.flags = cipher ? FLAG_ENCRYPTED : 0;
        h.overhead = TSPAGE_RESERVE;
        h.keyid = cipher ? cipher->keyid : 0;
    }
    if (!rc) rc = tspg_setup_codec(env, &pg->codec, &h, cipher);
    if (!rc) tspg_digest_key(&pg->codec, pg->digest_key);
    pg->format = h.format;
    if (!rc && !exists) rc = create_db(pg, &h);
    if (!rc) {
        rc = tsfile_open(st, TSPG_FILE, 0, &pg->main);
        if (rc) tsenv_error_prefix(env, "%s", TSPG_FILE);
    }
    if (!rc) rc = tscache_new(o->cache_bytes, pg->codec.logical, &pg->cache);
    if (!rc && !(pg->scratch = malloc((size_t)64 * pg->codec.page_size)))
        rc = tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    uint8_t mkey[TSWAL_MAC_KEY];
    if (cipher) tswal_mac_key(cipher->key, cipher->key_len, mkey);
    if (!rc) rc = tswal_open(env, st, pg->codec.page_size, cipher ? mkey : NULL, &pg->wal,
                             &pg->stats.recovered_frames);
    sodium_memzero(mkey, sizeof mkey);
    if (rc) {
        if (!*tsenv_errmsg(env)) tsenv_error(env, rc, "cannot open the database");
        tspg_close(pg);
        return rc;
    }
    pg->committed = pg->published = pg->synced = tswal_last_commit(pg->wal);
    pg->stats.log_bytes = tswal_size_bytes(pg->wal);
    pg->ckpt_done = tswal_base(pg->wal);
    tstx *tx;
    if (exists && o->page_digest && tstx_begin(pg, 0, &tx) == TS_OK) {
        if (!(tx->meta_flags & TSPG_META_DIGEST))
            tsenv_log(env, TS_LOG_WARN, "pageDigest is read when a database is created; this one was "
                      "created without it and goes on without it");
        tstx_rollback(tx);
    }
    *out = pg;
    return TS_OK;
}

/* Frames a checkpoint copies with one read and one write: a run adjacent
 * in the log and holding adjacent pages, each the newest version of its
 * page (a commit writes the pages it still holds in page order), where a
 * frame at a time took two system calls a page. */
#define CKPT_RUN 32

/* Frames list[0..n) (oldest first) to the main file. */
static int copy_frames(tspg *pg, const uint64_t (*list)[2], size_t n)
{
    size_t ps = pg->codec.page_size, fsz = TSWAL_FRAME_HDR + ps, most = n < CKPT_RUN ? n : CKPT_RUN;
    if (!n) return TS_OK;
    uint8_t *buf = malloc(most * fsz);
    int rc = buf ? TS_OK : TS_ERR_NOMEM;
    for (size_t i = 0; i < n && !rc;) {
        size_t k = 1;
        while (i + k < n && k < CKPT_RUN && list[i + k][1] == list[i][1] + k &&
               list[i + k][0] == list[i][0] + k)
            k++;
        rc = tswal_read_frames(pg->wal, list[i][1], k, buf);
        /* the images together, front to back (each moves down, never over
         * one not yet moved) */
        for (size_t j = 0; j < k && !rc; j++) memmove(buf + j * ps, buf + j * fsz + TSWAL_FRAME_HDR, ps);
        if (!rc) rc = tsfile_write(&pg->main, list[i][0] * ps, buf, k * ps);
        /* The main file's version of each page is now its frame's: a cached
         * copy of the frame serves readers of the main file from here on
         * (after the log restarts every reader is one), instead of a read
         * back. */
        for (size_t j = 0; j < k && !rc; j++) tscache_rekey(pg->cache, list[i + j][0], list[i + j][1], 0);
        i += k;
    }
    free(buf);
    return rc;
}

/* Copy frames (ckpt_done, bound] to the main file.  Caller holds ckpt. */
static int copy_upto(tspg *pg, uint64_t bound)
{
    uint64_t from = pg->ckpt_done;
    if (bound <= from) return TS_OK;
    /* A page may reach the main file only once the log holding it is
     * durable: otherwise a crash could bring back an older log. */
    int sync_failed = 0;
    pthread_mutex_lock(&pg->mu);
    int dir = !pg->dir_synced;
    pthread_mutex_unlock(&pg->mu);
    int rc = TS_OK;
    if (dir) rc = pg->st->vt->sync_dir(pg->st->h);
    if (!rc) rc = tswal_sync(pg->wal, 1, bound);
    if (rc) sync_failed = 1;
    uint64_t (*list)[2] = NULL;
    size_t n = 0;
    if (!rc) rc = tswal_latest(pg->wal, from, bound, &list, &n);
    if (!rc) rc = copy_frames(pg, (const uint64_t (*)[2])list, n);
    free(list);
    if (!rc && (rc = tsfile_sync(&pg->main, 1))) sync_failed = 1;
    pthread_mutex_lock(&pg->mu);
    if (rc) {
        if (!*tsenv_errmsg(pg->env)) tsenv_error(pg->env, rc, "checkpoint failed");
        /* A failed write (e.g. a full disk) only postpones the checkpoint;
         * after a failed fsync nothing on disk is trusted. */
        if (sync_failed && !pg->failed) __atomic_store_n(&pg->failed, rc, __ATOMIC_RELEASE);
    } else {
        pg->ckpt_done = bound;
        pg->dir_synced = 1;
        pg->stats.checkpoints++;
    }
    pthread_mutex_unlock(&pg->mu);
    return rc;
}

/* Everything committed to the main file and a new log generation, when no
 * reader needs the old one.  The caller holds the writer lock (no spilled
 * frames then). */
static int restart_log_held(tspg *pg)
{
    int rc = TS_OK;
    pthread_mutex_lock(&pg->mu);
    uint64_t committed = pg->committed, stamp = pg->stamp_committed;
    int ok = !pg->failed;
    pthread_mutex_unlock(&pg->mu);
    /* First make every commit durable and visible: from then on a new
     * reader's snapshot holds all of it. */
    if (ok && committed > pg->ckpt_done) {
        rc = tswal_sync(pg->wal, 1, committed);
        pthread_mutex_lock(&pg->mu);
        if (rc) {
            __atomic_store_n(&pg->failed, rc, __ATOMIC_RELEASE);
        } else {
            tspg_note_synced(pg, committed, stamp);
        }
        pthread_mutex_unlock(&pg->mu);
    }
    /* Readers whose snapshot holds every commit read the same pages from
     * the main file once it is checkpointed, so only an older snapshot
     * keeps the log; overlapping short readers do not. */
    int can = ok && !rc;
    pthread_mutex_lock(&pg->mu);
    for (tstx *r = pg->readers; r && can; r = r->rnext)
        if (r->mark < committed) can = 0;
    pthread_mutex_unlock(&pg->mu);
    if (can) rc = copy_upto(pg, committed);
    if (!rc && can && pg->ckpt_done == committed && tswal_size_bytes(pg->wal) > TSWAL_HDR) {
        rc = tswal_reset(pg->wal, TSPG_LOG_KEEP);
        pthread_mutex_lock(&pg->mu);
        if (rc && tswal_sync_failed(pg->wal)) __atomic_store_n(&pg->failed, rc, __ATOMIC_RELEASE);
        pg->stats.log_bytes = tswal_size_bytes(pg->wal);
        pthread_mutex_unlock(&pg->mu);
    }
    return rc;
}

/* A checkpoint, and with reset a new log generation when no reader needs
 * the old one; the caller holds pg->ckpt and, when `held`, the writer lock
 * (else the reset waits for the writer). */
static int checkpoint_locked(tspg *pg, int reset, int held)
{
    pthread_mutex_lock(&pg->mu);
    uint64_t bound = pg->published;
    for (tstx *r = pg->readers; r; r = r->rnext)
        if (r->mark < bound) bound = r->mark;
    pthread_mutex_unlock(&pg->mu);
    int rc = copy_upto(pg, bound);
    if (!rc && reset) {
        if (!held) pthread_mutex_lock(&pg->wlock);
        rc = restart_log_held(pg);
        if (!held) pthread_mutex_unlock(&pg->wlock);
    }
    return rc;
}

static uint64_t log_size(tspg *pg)
{
    pthread_mutex_lock(&pg->mu);
    uint64_t size = pg->stats.log_bytes;
    pthread_mutex_unlock(&pg->mu);
    return size;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int tspg_log_cap_check(tspg *pg)
{
    if (!pg->o.max_log_bytes || log_size(pg) < pg->o.max_log_bytes) return TS_OK;
    /* A reader that began just before the last commit holds the log too:
     * wait up to busyTimeoutMs for the readers to move on, checkpointing
     * again every few milliseconds, as a writer waits for another writer.
     * Lock order is ckpt, then the writer lock: with the writer lock held,
     * only try (a checkpoint running now resets the log itself). */
    double deadline = mono_ms() + (double)pg->o.busy_timeout_ms;
    for (long wait_us = 500;; wait_us = wait_us < 8000 ? wait_us * 2 : wait_us) {
        if (pthread_mutex_trylock(&pg->ckpt) == 0) {
            checkpoint_locked(pg, 1, 1); /* best effort: its failure shows as the size */
            pthread_mutex_unlock(&pg->ckpt);
        }
        if (log_size(pg) < pg->o.max_log_bytes) return TS_OK;
        double left = deadline - mono_ms();
        if (left <= 0) break;
        if (left * 1000 < wait_us) wait_us = (long)(left * 1000) + 1;
        struct timespec ts = { wait_us / 1000000, (wait_us % 1000000) * 1000 };
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&pg->mu);
    uint64_t size = pg->stats.log_bytes, oldest = pg->committed;
    for (tstx *r = pg->readers; r; r = r->rnext)
        if (r->mark < oldest) oldest = r->mark;
    uint64_t behind = pg->committed - oldest;
    pthread_mutex_unlock(&pg->mu);
    return tsenv_error(pg->env, TS_ERR_RESOURCE,
                       "the log has reached maxLogBytes (%llu of %llu bytes): a read transaction "
                       "whose snapshot is %llu log frames old keeps it from being reused "
                       "(waited %lld ms); end it, then write again",
                       (unsigned long long)size, (unsigned long long)pg->o.max_log_bytes,
                       (unsigned long long)behind, (long long)pg->o.busy_timeout_ms);
}

int tspg_checkpoint(tspg *pg, int reset)
{
    pthread_mutex_lock(&pg->ckpt);
    int rc = checkpoint_locked(pg, reset, 0);
    pthread_mutex_unlock(&pg->ckpt);
    return rc;
}

void tspg_checkpoint_auto(tspg *pg)
{
    /* One checkpoint at a time; committers that find one running go on. */
    if (pthread_mutex_trylock(&pg->ckpt) != 0) return;
    checkpoint_locked(pg, 1, 0);
    pthread_mutex_unlock(&pg->ckpt);
}

int tspg_close(tspg *pg)
{
    if (!pg) return TS_OK;
    int rc = TS_OK;
    if (pg->wal && !tspg_is_failed(pg)) rc = tspg_checkpoint(pg, 1);
    tswal_close(pg->wal);
    tscache_free(pg->cache);
    free(pg->scratch);
    tsfile_close(&pg->main);
    pthread_mutex_destroy(&pg->wlock);
    pthread_mutex_destroy(&pg->mu);
    pthread_mutex_destroy(&pg->ckpt);
    pthread_cond_destroy(&pg->cv);
    free(pg);
    return rc;
}

void tspg_stats_get(tspg *pg, tspg_stats *s)
{
    pthread_mutex_lock(&pg->mu);
    *s = pg->stats;
    pthread_mutex_unlock(&pg->mu);
    tscache_stats(pg->cache, &s->cache_hits, &s->cache_misses, NULL);
    size_t n = 0;
    tscache_stats(pg->cache, NULL, NULL, &n);
    s->cache_pages = n;
    tscache_memory(pg->cache, &s->cache_memory, &s->cache_memory_peak);
    s->page_size = pg->codec.page_size;
    s->usable = pg->codec.usable;
    tstx *tx;
    if (tstx_begin(pg, 0, &tx) == TS_OK) {
        s->page_count = tx->page_count;
        s->free_pages = tx->free_count;
        tstx_rollback(tx);
    }
}

uint32_t tspg_format(const tspg *pg) { return pg->format; }
