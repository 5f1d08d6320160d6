#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "base/crc32c.h"
#include "base/env.h"
#include "wal/wal.h"

#define FRAME_MAGIC 0x46575354u /* "TSWF" */
#define FLAG_COMMIT 1u
#define BATCH 64                /* frames per write call */
#define DBLK 4096u              /* write_sync's unit: offsets and sizes */
#define DIRECT_FRAMES 16        /* the most frames a commit writes with write_sync */
#define DIRECT_SKIP 1           /* write_direct: not this time */
#define DIRECT_GROW (1u << 20)  /* write_direct grows the file by zeros to multiples of this */

typedef struct pgvec {          /* frames of one page, ascending */
    uint64_t  pgno;
    uint64_t *v;
    uint32_t  n, cap;
} pgvec;

struct tswal {
    ts_env          *env;
    tsstore         *st;
    tsfile           f;
    uint32_t         page_size;
    uint64_t         salt;
    uint64_t         base;         /* abs number of local frame 0 */
    uint64_t         next;         /* local index of the next frame (1-based) */
    uint64_t         committed;    /* local index of the last commit frame */
    uint32_t         chain;        /* checksum after frame next-1 */
    uint32_t         chain_commit; /* checksum after the last commit frame */
    uint64_t         durable;      /* local index known durable (atomic) */
    int              need_header;  /* a reset's header write failed: redo first */
    int              sync_failed;  /* atomic */
    uint8_t         *iobuf;
    pthread_rwlock_t ilock;        /* guards the index below */
    pgvec           *tab;          /* open addressing on pgno */
    size_t           tabcap, tabn;
    uint64_t        *frame_pgno;   /* pgno of local frame i (1-based), indexed frames only */
    size_t           fpcap;
    uint64_t         indexed;      /* local frames in the index */
    /* Frames after the last commit: what chains them, so a frame rewritten
     * in place (a page spilled again) needs only the chain fields after it
     * fixed at commit, not its followers re-read. */
    struct uinfo { uint32_t durable, self, chain; } *u;
    size_t           ucap;
    uint64_t         fix_from;     /* local index of the first rewritten frame, 0: none */
    /* Durable commits written with the backend's write_sync (write_direct) */
    uint8_t         *dbuf;         /* DBLK-aligned staging, dcap bytes */
    size_t           dcap;
    uint8_t          tail[DBLK];   /* when tail_ok: the bytes of the block the log ends */
    int              tail_ok;      /* in, up to its end (what write_direct rewrites) */
    int              no_direct;    /* the backend or file system cannot */
    uint64_t         fsize;        /* the file's size as last seen */
    int              mac;          /* frames carry a MAC under mac_key */
    uint8_t          mac_key[TSWAL_MAC_KEY];
};

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

static uint64_t frame_off(const tswal *w, uint64_t local)
{
    return TSWAL_HDR + (local - 1) * (uint64_t)(TSWAL_FRAME_HDR + w->page_size);
}

static uint32_t seed(uint64_t salt)
{
    uint8_t b[8];
    put64(b, salt);
    return tscrc32c(0, b, 8);
}

/* The frame's own checksum: header fields except the two checksums, and
 * the image. */
static uint32_t frame_self(const tswal *w, int mac, const uint8_t *h, const uint8_t *img)
{
    uint32_t c = tscrc32c(0, h, 24);
    c = tscrc32c(c, h + 28, 8);
    if (!mac) c = tscrc32c(c, h + 40, 8); /* else the MAC, which covers this sum */
    return tscrc32c(c, img, w->page_size);
}

/* The frame's MAC (bytes 40-47 of an encrypted database's frames): a keyed
 * BLAKE2b of every header field but the chain (a spilled frame rewritten in
 * place has its successors' chains fixed at commit, which must not need the
 * MAC again).  The commit flag, page number, salt and index are in it, and
 * the image through the frame's own sum; the image itself is sealed by the
 * cipher with its page number. */
static void frame_mac(const tswal *w, const uint8_t *h, uint8_t out[8])
{
    crypto_generichash_state st;
    uint8_t full[16];
    crypto_generichash_init(&st, w->mac_key, TSWAL_MAC_KEY, sizeof full);
    crypto_generichash_update(&st, h, 24);
    crypto_generichash_update(&st, h + 28, 12);
    crypto_generichash_final(&st, full, sizeof full);
    memcpy(out, full, 8);
}

void tswal_mac_key(const uint8_t *data_key, size_t len, uint8_t out[TSWAL_MAC_KEY])
{
    static const char ctx[] = "tostore log frame mac 1";
    crypto_generichash(out, TSWAL_MAC_KEY, (const uint8_t *)ctx, sizeof ctx - 1, data_key, len);
}

static uint32_t frame_chain(uint32_t prev, const uint8_t *h)
{
    return tscrc32c(prev, h + 28, 12); /* index, durable, frame-crc */
}

/* Build frame h: the image copied in after the header, then the header
 * (checksums last, chained from prev). */
static uint32_t frame_build(tswal *w, uint8_t *h, uint64_t pgno, uint32_t flags,
                            uint64_t local, const uint8_t *image, uint32_t prev)
{
    uint8_t *img = h + TSWAL_FRAME_HDR;
    memcpy(img, image, w->page_size);
    put32(h, FRAME_MAGIC);
    put32(h + 4, flags);
    put64(h + 8, pgno);
    put64(h + 16, w->salt);
    put32(h + 28, (uint32_t)local);
    put32(h + 32, (uint32_t)__atomic_load_n(&w->durable, __ATOMIC_ACQUIRE));
    put64(h + 40, 0);
    put32(h + 36, frame_self(w, w->mac, h, img));
    if (w->mac) frame_mac(w, h, h + 40);
    uint32_t c = frame_chain(prev, h);
    put32(h + 24, c);
    return c;
}

/* Whether a frame is intact on its own (not whether it belongs). */
static int frame_intact_as(const tswal *w, const uint8_t *fh, uint64_t local, uint64_t salt, int mac)
{
    uint8_t tag[8];
    if (mac) frame_mac(w, fh, tag);
    return get32(fh) == FRAME_MAGIC && get64(fh + 16) == salt &&
           get32(fh + 28) == (uint32_t)local && get64(fh + 8) != 0 &&
           get32(fh + 36) == frame_self(w, mac, fh, fh + TSWAL_FRAME_HDR) &&
           (!mac || sodium_memcmp(tag, fh + 40, 8) == 0);
}

/* ... under this log's salt and MAC rule */
static int frame_intact(const tswal *w, const uint8_t *fh, uint64_t local)
{
    return frame_intact_as(w, fh, local, w->salt, w->mac);
}

/* Every write but write_direct's: the tail it remembers may be stale. */
static int log_write(tswal *w, uint64_t off, const void *buf, size_t n)
{
    w->tail_ok = 0;
    int rc = tsfile_write(&w->f, off, buf, n);
    if (!rc && off + n > w->fsize) w->fsize = off + n;
    return rc;
}

static int write_header(tswal *w)
{
    uint8_t h[TSWAL_HDR] = "TSWAL001";
    put32(h + 8, TSWAL_FORMAT);
    put32(h + 12, w->page_size);
    put64(h + 16, w->salt);
    put32(h + 24, tscrc32c(0, h, 24));
    int rc = log_write(w, 0, h, sizeof h);
    if (rc) tsenv_error_prefix(w->env, "writing the log header");
    return rc;
}

/* ---- index ------------------------------------------------------- */

static pgvec *slot(tswal *w, uint64_t pgno, int create)
{
    if (!w->tabcap) return NULL;
    size_t m = w->tabcap - 1;
    size_t i = (size_t)(pgno * 0x9E3779B97F4A7C15ull >> 20) & m;
    for (;; i = (i + 1) & m) {
        pgvec *s = &w->tab[i];
        if (s->pgno == pgno && s->v) return s;
        if (!s->v) return create ? s : NULL;
    }
}

static int grow_tab(tswal *w)
{
    size_t nc = w->tabcap ? w->tabcap * 2 : 1024;
    pgvec *old = w->tab;
    size_t oc = w->tabcap;
    w->tab = calloc(nc, sizeof *w->tab);
    if (!w->tab) { w->tab = old; return TS_ERR_NOMEM; }
    w->tabcap = nc;
    for (size_t i = 0; i < oc; i++)
        if (old[i].v) *slot(w, old[i].pgno, 1) = old[i];
    free(old);
    return TS_OK;
}

static void clear_index(tswal *w)
{
    for (size_t i = 0; i < w->tabcap; i++) free(w->tab[i].v);
    if (w->tab) memset(w->tab, 0, w->tabcap * sizeof *w->tab);
    __atomic_store_n(&w->tabn, 0, __ATOMIC_RELEASE);
    w->indexed = 0;
}

int tswal_index_add(tswal *w, uint64_t first, const uint64_t *pgnos, size_t n)
{
    int rc = TS_OK;
    pthread_rwlock_wrlock(&w->ilock);
    uint64_t local = first - w->base;
    if (local + n - 1 >= w->fpcap) {
        size_t nc = w->fpcap ? w->fpcap : 1024;
        while (nc <= local + n) nc *= 2;
        uint64_t *np = realloc(w->frame_pgno, nc * sizeof *np);
        if (!np) { rc = TS_ERR_NOMEM; goto out; }
        w->frame_pgno = np;
        w->fpcap = nc;
    }
    for (size_t i = 0; i < n; i++, local++) {
        if ((w->tabn + 1) * 2 > w->tabcap && (rc = grow_tab(w))) goto out;
        pgvec *s = slot(w, pgnos[i], 1);
        if (!s->v) {
            s->pgno = pgnos[i];
            s->cap = 2;
            s->n = 0;
            s->v = malloc(s->cap * sizeof *s->v);
            if (!s->v) { rc = TS_ERR_NOMEM; goto out; }
            __atomic_store_n(&w->tabn, w->tabn + 1, __ATOMIC_RELEASE);
        } else if (s->n == s->cap) {
            uint64_t *nv = realloc(s->v, 2 * s->cap * sizeof *nv);
            if (!nv) { rc = TS_ERR_NOMEM; goto out; }
            s->v = nv;
            s->cap *= 2;
        }
        s->v[s->n++] = w->base + local;
        w->frame_pgno[local] = pgnos[i];
        w->indexed = local;
    }
out:
    pthread_rwlock_unlock(&w->ilock);
    return rc;
}

uint64_t tswal_find(tswal *w, uint64_t pgno, uint64_t mark)
{
    uint64_t found = 0;
    /* After a log restart most lookups find nothing: skip the lock.  Frames
     * are indexed before the commit that holds them is published, so a
     * snapshot that includes any frame sees tabn > 0 here. */
    if (__atomic_load_n(&w->tabn, __ATOMIC_ACQUIRE) == 0) return 0;
    pthread_rwlock_rdlock(&w->ilock);
    pgvec *s = slot(w, pgno, 0);
    if (s) {
        uint32_t lo = 0, hi = s->n; /* first element > mark */
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (s->v[mid] <= mark) lo = mid + 1; else hi = mid;
        }
        if (lo) found = s->v[lo - 1];
    }
    pthread_rwlock_unlock(&w->ilock);
    return found;
}

int tswal_latest(tswal *w, uint64_t from, uint64_t to, uint64_t (**out)[2], size_t *n_out)
{
    size_t n = 0, cap = 0;
    uint64_t (*list)[2] = NULL;
    int rc = TS_OK;
    pthread_rwlock_rdlock(&w->ilock);
    for (uint64_t a = from + 1; a <= to && !rc; a++) {   /* oldest first */
        uint64_t local = a - w->base;
        if (local == 0 || local > w->indexed) continue;
        uint64_t pgno = w->frame_pgno[local];
        pgvec *s = slot(w, pgno, 0);
        uint64_t newest = 0;
        for (uint32_t i = s->n; i-- > 0;)
            if (s->v[i] <= to) { newest = s->v[i]; break; }
        if (newest != a) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            void *nl = realloc(list, cap * sizeof *list);
            if (!nl) { rc = TS_ERR_NOMEM; break; }
            list = nl;
        }
        list[n][0] = pgno;
        list[n][1] = a;
        n++;
    }
    pthread_rwlock_unlock(&w->ilock);
    if (rc) {
        free(list);
        return rc;
    }
    *out = list;
    *n_out = n;
    return TS_OK;
}

/* ---- open and recovery ------------------------------------------- */

static int check_damage(tswal *w, uint64_t bad, uint64_t size, uint8_t *buf, size_t per)
{
    size_t fsz = TSWAL_FRAME_HDR + w->page_size;
    for (uint64_t local = bad + 1;;) {
        uint64_t off = frame_off(w, local);
        size_t got = 0;
        if (off >= size) return TS_OK;
        int rc = tsfile_read(&w->f, off, buf, per * fsz, &got);
        if (rc) return rc;
        size_t nf = got / fsz;
        if (nf == 0) return TS_OK;
        for (size_t i = 0; i < nf; i++, local++) {
            const uint8_t *fh = buf + i * fsz;
            if (get32(fh) == FRAME_MAGIC && get64(fh + 16) != w->salt &&
                get32(fh + 36) == frame_self(w, w->mac, fh, fh + TSWAL_FRAME_HDR))
                return TS_OK; /* the stale tail of an older generation */
            if (frame_intact(w, fh, local) && get32(fh + 32) >= bad)
                return tsenv_error(w->env, TS_ERR_CORRUPT,
                                   "%s: frame %llu is damaged although it had been made durable "
                                   "(frame %llu says so); refusing to drop the commits after it",
                                   TSWAL_FILE, (unsigned long long)bad,
                                   (unsigned long long)local);
        }
        if (nf < per) return TS_OK;
    }
}

/* Whether the log, read as frames without MACs under salt, holds a commit
 * in its valid prefix: an encrypted database's log written by an older
 * build (which this one cannot tell from a forgery).  Uncommitted frames
 * alone are nothing to keep. */
static int legacy_commit(tswal *w, uint64_t size, uint64_t salt, int *found)
{
    size_t fsz = TSWAL_FRAME_HDR + w->page_size, got = 0;
    *found = 0;
    uint8_t *fh = malloc(fsz);
    if (!fh) return tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
    uint32_t chain = seed(salt);
    int rc = TS_OK;
    for (uint64_t local = 1; !*found && frame_off(w, local) + fsz <= size; local++) {
        if ((rc = tsfile_read(&w->f, frame_off(w, local), fh, fsz, &got)) || got != fsz) break;
        if (get64(fh + 40) != 0 || !frame_intact_as(w, fh, local, salt, 0)) break;
        chain = frame_chain(chain, fh);
        if (get32(fh + 24) != chain) break;
        *found = (get32(fh + 4) & FLAG_COMMIT) != 0;
    }
    free(fh);
    return rc;
}

static int legacy_refused(tswal *w)
{
    return tsenv_error(w->env, TS_ERR_FORMAT, "%s: the log's frames carry no MAC (written by an older "
                       "tostore); open the database once with that version to checkpoint it", TSWAL_FILE);
}

/* The log header failed its check.  It is written only when a generation
 * starts, so either a crash tore that write (every frame in the file then
 * belongs to the previous generation, whose commits are all in the main
 * file already: replaying them changes nothing) or the header was damaged
 * at rest, and the frames after it may hold commits found nowhere else.
 * Each frame carries its generation's salt: when frame 1 is intact on its
 * own, recover with that salt (*mend = 1) rather than drop the log. */
static int first_frame_salt(tswal *w, uint64_t size, uint64_t *salt, int *mend)
{
    size_t fsz = TSWAL_FRAME_HDR + w->page_size, got = 0;
    *mend = 0;
    if (size < TSWAL_HDR + fsz) return TS_OK;
    uint8_t *fh = malloc(fsz);
    if (!fh) return tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
    int rc = tsfile_read(&w->f, TSWAL_HDR, fh, fsz, &got);
    if (!rc && got == fsz && (*mend = frame_intact_as(w, fh, 1, get64(fh + 16), w->mac))) *salt = get64(fh + 16);
    int legacy = 0;
    if (!rc && got == fsz && !*mend && w->mac) rc = legacy_commit(w, size, get64(fh + 16), &legacy);
    free(fh);
    return !rc && legacy ? legacy_refused(w) : rc;
}

static int recover(tswal *w, uint64_t *frames)
{
    uint64_t size = 0;
    int rc = tsfile_size(&w->f, &size);
    if (rc) return rc;
    w->fsize = size;
    uint8_t h[TSWAL_HDR];
    size_t got = 0;
    if (size >= TSWAL_HDR) rc = tsfile_read(&w->f, 0, h, TSWAL_HDR, &got);
    if (rc) return rc;
    int valid = got == TSWAL_HDR && memcmp(h, "TSWAL001", 8) == 0 &&
                get32(h + 24) == tscrc32c(0, h, 24) && get32(h + 12) == w->page_size;
    /* An intact header of another log format: its frames may hold commits
     * this build cannot read, so refuse rather than start a fresh log. */
    if (valid && get32(h + 8) != TSWAL_FORMAT)
        return tsenv_error(w->env, TS_ERR_FORMAT, "%s: log format %u%s; this build reads format %d",
                           TSWAL_FILE, get32(h + 8),
                           get32(h + 8) > TSWAL_FORMAT ? " was written by a newer tostore" : " is unknown",
                           TSWAL_FORMAT);
    int mend = 0;
    if (!valid) {
        /* A log written with another page size cannot belong to this
         * database. */
        if (got == TSWAL_HDR && memcmp(h, "TSWAL001", 8) == 0 &&
            get32(h + 24) == tscrc32c(0, h, 24) && get32(h + 12) != w->page_size)
            return tsenv_error(w->env, TS_ERR_CORRUPT, "%s: page size %u differs from the database's %u",
                               TSWAL_FILE, get32(h + 12), w->page_size);
        if ((rc = first_frame_salt(w, size, &w->salt, &mend))) return rc;
    }
    if (!valid && !mend) {
        /* No usable log: start a fresh generation. */
        randombytes_buf(&w->salt, sizeof w->salt);
        w->chain = w->chain_commit = seed(w->salt);
        w->next = 1;
        w->committed = 0;
        *frames = 0;
        if ((rc = tsfile_truncate(&w->f, 0))) return rc;
        w->fsize = 0;
        return write_header(w);
    }
    if (valid) w->salt = get64(h + 16);
    uint32_t chain = seed(w->salt), chain_commit = chain;
    uint64_t local = 1, last_commit = 0, stop = 0;
    size_t fsz = TSWAL_FRAME_HDR + w->page_size;
    size_t per = (1u << 20) / fsz + 1;
    uint8_t *buf = malloc(per * fsz);
    uint64_t *pend = NULL;      /* pgnos of valid frames not yet covered by a commit */
    size_t npend = 0, cappend = 0;
    if (!buf) return TS_ERR_NOMEM;
    for (int done = 0; !done;) {
        uint64_t off = frame_off(w, local);
        if (off >= size) break;
        if ((rc = tsfile_read(&w->f, off, buf, per * fsz, &got))) break;
        size_t nf = got / fsz;
        if (nf == 0) break;
        for (size_t i = 0; i < nf; i++, local++) {
            uint8_t *fh = buf + i * fsz;
            uint32_t c = frame_intact(w, fh, local) ? frame_chain(chain, fh) : ~get32(fh + 24);
            if (get32(fh + 24) != c) {
                done = 1;
                stop = local;
                break;
            }
            chain = c;
            if (npend == cappend) {
                cappend = cappend ? cappend * 2 : 256;
                uint64_t *np = realloc(pend, cappend * sizeof *np);
                if (!np) { rc = TS_ERR_NOMEM; goto out; }
                pend = np;
            }
            pend[npend++] = get64(fh + 8);
            if (get32(fh + 4) & FLAG_COMMIT) {
                if ((rc = tswal_index_add(w, w->base + local - npend + 1, pend, npend))) goto out;
                npend = 0;
                last_commit = local;
                chain_commit = chain;
            }
        }
        if (nf < per) break;
    }
    /* An encrypted database's log whose frames have no MAC and hold a
     * commit: an older build's, which this one cannot tell from a forgery. */
    if (!rc && stop == 1 && w->mac) {
        int legacy = 0;
        if (!(rc = legacy_commit(w, size, w->salt, &legacy)) && legacy) rc = legacy_refused(w);
    }
    /* A damaged frame that a later intact frame vouches was durable is
     * corruption: refuse rather than drop acknowledged commits. */
    if (!rc && stop) rc = check_damage(w, stop, size, buf, per);
out:
    free(buf);
    free(pend);
    if (!rc && mend) {
        /* the header again, durable before anything follows it */
        tsenv_log(w->env, TS_LOG_WARN, "%s: the log header was damaged; its frames carry their generation, "
                  "%llu committed frames recovered from them and the header written again", TSWAL_FILE,
                  (unsigned long long)last_commit);
        if (!(rc = write_header(w))) rc = tsfile_sync(&w->f, TS_SYNC_DATA);
    }
    if (rc) return rc;
    w->committed = last_commit;
    w->next = last_commit + 1;
    w->chain = w->chain_commit = chain_commit;
    *frames = last_commit;
    return TS_OK;
}

int tswal_open(ts_env *env, tsstore *st, uint32_t page_size, const uint8_t *mac_key, tswal **out,
               uint64_t *frames_out)
{
    *out = NULL;
    tswal *w = calloc(1, sizeof *w);
    if (!w) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    if (mac_key) {
        w->mac = 1;
        memcpy(w->mac_key, mac_key, TSWAL_MAC_KEY);
    }
    w->env = env;
    w->st = st;
    w->page_size = page_size;
    w->iobuf = malloc((size_t)BATCH * (TSWAL_FRAME_HDR + page_size));
    pthread_rwlock_init(&w->ilock, NULL);
    int rc = w->iobuf ? tsfile_open(st, TSWAL_FILE, TS_OPEN_CREATE, &w->f) : TS_ERR_NOMEM;
    uint64_t frames = 0;
    if (!rc) rc = recover(w, &frames);
    if (rc) {
        if (!*tsenv_errmsg(env)) tsenv_error(env, rc, "cannot recover the log");
        tswal_close(w);
        return rc;
    }
    if (frames_out) *frames_out = frames;
    *out = w;
    return TS_OK;
}

void tswal_close(tswal *w)
{
    if (!w) return;
    tsfile_close(&w->f);
    for (size_t i = 0; i < w->tabcap; i++) free(w->tab[i].v);
    free(w->tab);
    free(w->frame_pgno);
    free(w->iobuf);
    free(w->dbuf);
    free(w->u);
    pthread_rwlock_destroy(&w->ilock);
    sodium_memzero(w->mac_key, sizeof w->mac_key);
    free(w);
}

/* ---- writing ----------------------------------------------------- */

/* Frames up to abs `upto` are on stable storage. */
static void note_durable(tswal *w, uint64_t upto)
{
    /* Under the index lock: a restart moves base and zeroes durable, and a
     * marker of the old generation must not land in the new one. */
    pthread_rwlock_rdlock(&w->ilock);
    uint64_t local = upto > w->base ? upto - w->base : 0;
    uint64_t cur = __atomic_load_n(&w->durable, __ATOMIC_ACQUIRE);
    while (local > cur &&
           !__atomic_compare_exchange_n(&w->durable, &cur, local, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
    }
    pthread_rwlock_unlock(&w->ilock);
}

/* Remember how uncommitted frame `local` (header h) enters the chain. */
static int note_frame(tswal *w, uint64_t local, const uint8_t *h)
{
    size_t i = (size_t)(local - w->committed - 1);
    if (i >= w->ucap) {
        size_t nc = w->ucap ? w->ucap * 2 : 1024;
        while (nc <= i) nc *= 2;
        struct uinfo *nu = realloc(w->u, nc * sizeof *nu);
        if (!nu) return tsenv_error(w->env, TS_ERR_NOMEM, "out of memory");
        w->u = nu;
        w->ucap = nc;
    }
    w->u[i] = (struct uinfo){ get32(h + 32), get32(h + 36), get32(h + 24) };
    return TS_OK;
}

/* Recompute the chain from the first rewritten frame to the last one and
 * write the chain fields (4 bytes a frame).  Only uncommitted frames
 * change, so a crash midway loses nothing acknowledged. */
static int fix_chain(tswal *w)
{
    uint64_t from = w->fix_from;
    uint32_t chain = from - 1 == w->committed ? w->chain_commit
                                              : w->u[from - 1 - w->committed - 1].chain;
    for (uint64_t local = from; local < w->next; local++) {
        struct uinfo *u = &w->u[local - w->committed - 1];
        uint8_t b[12];
        put32(b, (uint32_t)local);
        put32(b + 4, u->durable);
        put32(b + 8, u->self);
        chain = tscrc32c(chain, b, 12);
        if (chain == u->chain) continue;
        u->chain = chain;
        put32(b, chain);
        int rc = log_write(w, frame_off(w, local) + 24, b, 4);
        if (rc) {
            tsenv_error_prefix(w->env, "writing the log");
            return rc;
        }
    }
    w->chain = chain;
    w->fix_from = 0;
    return TS_OK;
}

/* Make the file at least e bytes long, in DIRECT_GROW steps of zeros made
 * durable (size and blocks) once, so that write_direct's writes do not
 * allocate (bytes a plain write put past the end count as had: O_DSYNC
 * then makes their allocation durable too, only slower).  The zeros past
 * the log's end read as a torn tail.  A failed write leaves the commit to
 * the plain path (DIRECT_SKIP: nothing of the log changed); a failed
 * fdatasync counts as one. */
static int grow(tswal *w, uint64_t e)
{
    uint64_t to = (e + DIRECT_GROW - 1) / DIRECT_GROW * DIRECT_GROW;
    memset(w->dbuf, 0, w->dcap);
    for (uint64_t o = w->fsize; o < to;) {
        size_t k = to - o < w->dcap ? (size_t)(to - o) : w->dcap;
        if (tsfile_write(&w->f, o, w->dbuf, k)) return DIRECT_SKIP;
        o += k;
    }
    int rc = tsfile_sync(&w->f, TS_SYNC_DATA);
    if (rc) return rc;
    w->fsize = to;
    return TS_OK;
}

/* Commit frames [first, first + n) made durable by one write_sync of whole
 * blocks: the block the log ends in is written again with the bytes it
 * holds (tail[], or read back), and the last block is padded with zeros
 * past the new end, bytes a later frame overwrites and recovery stops at
 * like a torn tail.  Only over blocks the file already has (grow): an
 * O_DSYNC write that allocates pays a metadata write each time, and ENOSPC
 * stays a plain write error.
 * TS_OK with *chain the new chain; DIRECT_SKIP (also when the size or the
 * tail cannot be read: the plain path reports what is wrong) or
 * TS_ERR_UNSUPPORTED: nothing written. */
static int write_direct(tswal *w, uint64_t first, const uint64_t *pgnos, uint8_t *const *images,
                        size_t n, uint32_t *chain)
{
    size_t fsz = TSWAL_FRAME_HDR + w->page_size;
    uint64_t off = frame_off(w, first), a = off & ~(uint64_t)(DBLK - 1), end = off + n * fsz;
    uint64_t e = (end + DBLK - 1) & ~(uint64_t)(DBLK - 1);
    int rc;
    size_t len = (size_t)(e - a), pre = (size_t)(off - a);
    if (len > w->dcap) {
        size_t cap = DIRECT_FRAMES * fsz + 2 * DBLK;
        void *p = NULL;
        if (posix_memalign(&p, DBLK, cap)) return DIRECT_SKIP;
        free(w->dbuf);
        w->dbuf = p;
        w->dcap = cap;
    }
    uint8_t *b = w->dbuf;
    if (e > w->fsize) {
        if (tsfile_size(&w->f, &w->fsize)) return DIRECT_SKIP;
        if (e > w->fsize && (rc = grow(w, e))) return rc;
    }
    /* first is the log's end: tail[] holds [a, off) */
    if (pre && w->tail_ok) memcpy(b, w->tail, pre);
    else if (pre && tsfile_read(&w->f, a, b, pre, NULL)) return DIRECT_SKIP;
    uint32_t c = *chain;
    for (size_t j = 0; j < n; j++) {
        c = frame_build(w, b + pre + j * fsz, pgnos[j], j == n - 1 ? FLAG_COMMIT : 0, first + j,
                        images[j], c);
    }
    memset(b + pre + n * fsz, 0, (size_t)(e - end));
    if ((rc = tsfile_write_sync(&w->f, a, b, len))) return rc;
    uint64_t t = end & ~(uint64_t)(DBLK - 1);
    memcpy(w->tail, b + (t - a), (size_t)(end - t));
    w->tail_ok = 1;
    *chain = c;
    return TS_OK;
}

int tswal_write(tswal *w, const uint64_t *pgnos, uint8_t *const *images, size_t n, int commit,
                int *synced, uint64_t *first_out)
{
    if (synced) *synced = 0;
    size_t fsz = TSWAL_FRAME_HDR + w->page_size;
    if (w->need_header) {
        /* An earlier reset could not write its header: no frame may follow
         * a header that is not durable. */
        int rc = write_header(w);
        if (!rc) rc = tswal_sync(w, 0, w->base);
        if (rc) return rc;
        w->need_header = 0;
    }
    if (commit && w->fix_from) {
        int rc = fix_chain(w);
        if (rc) return rc;
    }
    uint64_t first = w->next;
    uint32_t chain = w->chain;
    /* Durable on return when asked, the log knows every earlier frame is
     * durable and the backend can: no fdatasync to follow.  The durable
     * mark is a second check besides the caller's word (defensive: a
     * commit whose transaction failed after its frames were written would
     * count here and not there; the pager stops writes then). */
    int direct = 0;
    if (synced && commit && n && n <= DIRECT_FRAMES && !w->no_direct && first == w->committed + 1 &&
        __atomic_load_n(&w->durable, __ATOMIC_ACQUIRE) == w->committed) {
        int rc = write_direct(w, first, pgnos, images, n, &chain);
        if (rc == TS_ERR_UNSUPPORTED) w->no_direct = 1;
        else if (rc == TS_OK) direct = 1;
        else if (rc != DIRECT_SKIP) {
            /* as after a failed fsync: what reached the disk is unknown */
            __atomic_store_n(&w->sync_failed, 1, __ATOMIC_RELEASE);
            tsenv_error_prefix(w->env, "making the log durable (fsync failed)");
            return rc;
        }
    }
    for (size_t i = 0; i < n && !direct;) {
        size_t k = n - i < BATCH ? n - i : BATCH;
        for (size_t j = 0; j < k; j++) {
            uint8_t *fr = w->iobuf + j * fsz;
            uint32_t flags = commit && i + j == n - 1 ? FLAG_COMMIT : 0;
            chain = frame_build(w, fr, pgnos[i + j], flags, first + i + j, images[i + j], chain);
            if (!commit) {
                int rc = note_frame(w, first + i + j, fr);
                if (rc) return rc;
            }
        }
        int rc = log_write(w, frame_off(w, first + i), w->iobuf, k * fsz);
        if (rc) {
            tsenv_error_prefix(w->env, "writing the log");
            return rc; /* w->next unchanged: the frames do not count */
        }
        i += k;
    }
    w->next = first + n;
    w->chain = chain;
    if (commit) {
        w->committed = w->next - 1;
        w->chain_commit = chain;
        w->fix_from = 0;
    }
    if (direct) {
        note_durable(w, w->base + w->committed);
        *synced = 1;
    }
    if (first_out) *first_out = w->base + first;
    return TS_OK;
}

void tswal_rewind(tswal *w)
{
    w->tail_ok = 0;
    w->next = w->committed + 1;
    w->chain = w->chain_commit;
    w->fix_from = 0;
}

int tswal_overwrite(tswal *w, uint64_t abs, uint64_t pgno, const uint8_t *image)
{
    uint64_t local = abs > w->base ? abs - w->base : 0;
    if (local <= w->committed || local >= w->next)
        return tsenv_error(w->env, TS_ERR_INVALID, "%s: frame %llu is not an uncommitted frame",
                           TSWAL_FILE, (unsigned long long)abs);
    size_t fsz = TSWAL_FRAME_HDR + w->page_size;
    uint8_t *fr = w->iobuf;
    /* the chain field is fixed by the commit (fix_chain) */
    frame_build(w, fr, pgno, 0, local, image, 0);
    int rc = note_frame(w, local, fr);
    if (!rc) rc = log_write(w, frame_off(w, local), fr, fsz);
    if (rc) {
        tsenv_error_prefix(w->env, "writing the log");
        return rc;
    }
    if (!w->fix_from || local < w->fix_from) w->fix_from = local;
    return TS_OK;
}

int tswal_sync(tswal *w, int data_only, uint64_t upto)
{
    int rc = tsfile_sync(&w->f, data_only ? TS_SYNC_DATA : 0);
    if (rc) {
        __atomic_store_n(&w->sync_failed, 1, __ATOMIC_RELEASE);
        tsenv_error_prefix(w->env, "syncing the log");
        return rc;
    }
    note_durable(w, upto);
    return TS_OK;
}

int tswal_sync_failed(tswal *w) { return __atomic_load_n(&w->sync_failed, __ATOMIC_ACQUIRE); }

/* bytes at offset `skip` of frame abs on, with one read; `indexed` frames
 * from abs must all be committed (0: no check, a spilled frame may be read) */
static int read_at(tswal *w, uint64_t abs, size_t skip, size_t bytes, uint64_t indexed, uint8_t *buf)
{
    /* Under the index lock: a reset (which takes it to write) cannot start
     * a new generation over this frame while we read it. */
    pthread_rwlock_rdlock(&w->ilock);
    if (abs <= w->base) {
        pthread_rwlock_unlock(&w->ilock);
        return TS_ERR_NOT_FOUND; /* checkpointed and gone: in the main file */
    }
    uint64_t local = abs - w->base;
    if (indexed && local + indexed - 1 > w->indexed) {
        /* past them the reused file holds an older generation's frames */
        pthread_rwlock_unlock(&w->ilock);
        return tsenv_error(w->env, TS_ERR_INVALID, "%s: frames %llu..%llu are not all indexed", TSWAL_FILE,
                           (unsigned long long)abs, (unsigned long long)(abs + indexed - 1));
    }
    int rc = tsfile_read(&w->f, frame_off(w, local) + skip, buf, bytes, NULL);
    pthread_rwlock_unlock(&w->ilock);
    if (rc == TS_ERR_CORRUPT)
        return tsenv_error(w->env, rc, "%s: frame %llu is missing", TSWAL_FILE,
                           (unsigned long long)local);
    return rc;
}

void tswal_prefetch(tswal *w, uint64_t abs)
{
    pthread_rwlock_rdlock(&w->ilock);
    if (abs > w->base)
        tsfile_prefetch(&w->f, frame_off(w, abs - w->base) + TSWAL_FRAME_HDR, w->page_size);
    pthread_rwlock_unlock(&w->ilock);
}

int tswal_read(tswal *w, uint64_t abs, uint8_t *image)
{
    return read_at(w, abs, TSWAL_FRAME_HDR, w->page_size, 0, image);
}

int tswal_read_frames(tswal *w, uint64_t abs, size_t n, uint8_t *buf)
{
    return n ? read_at(w, abs, 0, n * (TSWAL_FRAME_HDR + w->page_size), n, buf) : TS_OK;
}

uint64_t tswal_last_commit(tswal *w) { return w->committed ? w->base + w->committed : w->base; }
uint64_t tswal_base(tswal *w) { return w->base; }
uint64_t tswal_size_bytes(tswal *w) { return frame_off(w, w->next); }

int tswal_reset(tswal *w, uint64_t keep)
{
    pthread_rwlock_wrlock(&w->ilock);
    clear_index(w);
    w->base += w->committed;
    w->next = 1;
    w->committed = 0;
    w->fix_from = 0;
    __atomic_store_n(&w->durable, 0, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&w->ilock);
    w->no_direct = 0; /* a backend's refusal may have been passing (EMFILE, ENOSPC): ask again */
    randombytes_buf(&w->salt, sizeof w->salt);
    w->chain = w->chain_commit = seed(w->salt);
    /* The new header must be durable before a frame follows it: a crash
     * could otherwise revive the old generation over a newer main file. */
    uint64_t size = 0;
    int rc = tsfile_size(&w->f, &size);
    if (!rc && size > keep && !(rc = tsfile_truncate(&w->f, TSWAL_HDR))) w->fsize = TSWAL_HDR;
    if (!rc) rc = write_header(w);
    if (!rc) rc = tswal_sync(w, 1, w->base);
    w->need_header = rc != 0 && !tswal_sync_failed(w);
    return rc;
}
