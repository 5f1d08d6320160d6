#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/status.h>
#include "pager/cache.h"
#include "pager/frames.h"

/* Pages are spread over partitions by key, each with its own mutex, hash
 * table, clock and share of the budget (PostgreSQL partitions its buffer
 * mapping the same way).  With one mutex, two threads each pinning pages
 * for btree lookups (a 1%-filtered vector search reads ~500 pages) ran
 * slower together than one alone: every pin and unpin crossed cores. */
#define PARTS_MAX     16
#define PART_MIN_PAGES 256   /* smaller caches keep fewer partitions */

struct tscpage {
    tscache *owner;      /* for tscache_release, which has no cache argument */
    uint64_t pgno, ver;
    uint32_t pins;
    uint8_t  ref, linked;
    uint8_t  owned;      /* from tscache_alloc until inserted or discarded */
    uint8_t  part;       /* partition it is counted in (atomic: see unpin) */
    size_t   slot;       /* index in its partition's all while linked */
    tscpage *hnext;
    uint8_t  data[];
};

typedef struct part {
    pthread_mutex_t mu;
    size_t    max_pages;
    tscpage **buckets;
    size_t    nbuckets;
    tscpage **all;       /* linked pages, for the clock hand */
    size_t    n, cap, hand;
    uint64_t  hits, misses;
} __attribute__((aligned(64))) part;

struct tscache {
    size_t          page_bytes;
    unsigned        nparts;  /* a power of two */
    /* Holds outstanding: tscache_free with some left (a rekey swaps the
     * pager under open index modules) leaves the freeing to the last
     * tscache_release.  Held images are of committed states, which a
     * rekey does not change, so their holders may go on reading them. */
    _Atomic size_t  nholds;
    _Atomic int     closing, freed;
    /* on a line of their own: every pin reads the two fields above */
    pthread_mutex_t fmu __attribute__((aligned(64)));   /* fr */
    tsframes        fr;      /* every page's memory */
    part            p[PARTS_MAX];
};

static uint64_t mix(uint64_t pgno, uint64_t ver)
{
    uint64_t h = (pgno * 0x9E3779B97F4A7C15ull) ^ (ver * 0xC2B2AE3D27D4EB4Full);
    return h ^ (h >> 29);
}

/* The partition from the top bits, the bucket from the low ones. */
static unsigned part_of(const tscache *c, uint64_t pgno, uint64_t ver)
{
    return (unsigned)(mix(pgno, ver) >> 58) & (c->nparts - 1);
}

static size_t bucket(const part *s, uint64_t pgno, uint64_t ver)
{
    return (size_t)mix(pgno, ver) & (s->nbuckets - 1);
}

static void frame_put(tscache *c, tscpage *p)
{
    pthread_mutex_lock(&c->fmu);
    tsframes_put(&c->fr, p);
    pthread_mutex_unlock(&c->fmu);
}

int tscache_new(size_t max_bytes, size_t page_bytes, tscache **out)
{
    tscache *c = aligned_alloc(64, sizeof *c);
    if (!c) return TS_ERR_NOMEM;
    memset(c, 0, sizeof *c);
    c->page_bytes = page_bytes;
    size_t max_pages = max_bytes / (page_bytes + sizeof(tscpage));
    if (max_pages < 16) max_pages = 16;
    c->nparts = 1;
    while (c->nparts < PARTS_MAX && max_pages / (c->nparts * 2) >= PART_MIN_PAGES) c->nparts *= 2;
    for (unsigned i = 0; i < c->nparts; i++) {
        part *s = &c->p[i];
        s->max_pages = max_pages / c->nparts;
        /* grown with the pages (grow_buckets): a table sized for the
         * budget up front (4 MiB for 2 GB) was faulted in one random page
         * at a time by a process's first queries */
        s->nbuckets = 1024 / c->nparts;
        s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
        if (!s->buckets) {
            while (i-- > 0) free(c->p[i].buckets);
            free(c);
            return TS_ERR_NOMEM;
        }
    }
    for (unsigned i = 0; i < c->nparts; i++) pthread_mutex_init(&c->p[i].mu, NULL);
    pthread_mutex_init(&c->fmu, NULL);
    tsframes_init(&c->fr, sizeof(tscpage) + page_bytes);
    *out = c;
    return TS_OK;
}

static void cache_destroy(tscache *c)
{
    if (atomic_exchange(&c->freed, 1)) return;
    tsframes_done(&c->fr); /* every page at once */
    for (unsigned i = 0; i < c->nparts; i++) {
        free(c->p[i].all);
        free(c->p[i].buckets);
        pthread_mutex_destroy(&c->p[i].mu);
    }
    pthread_mutex_destroy(&c->fmu);
    free(c);
}

void tscache_free(tscache *c)
{
    if (!c) return;
    atomic_store(&c->closing, 1);
    if (atomic_load(&c->nholds) == 0) cache_destroy(c);
}

/* Out of s's bucket only. */
static void unchain(part *s, tscpage *p)
{
    tscpage **pp = &s->buckets[bucket(s, p->pgno, p->ver)];
    while (*pp != p) pp = &(*pp)->hnext;
    *pp = p->hnext;
}

static void unlink_page(part *s, tscpage *p)
{
    unchain(s, p);
    s->all[p->slot] = s->all[--s->n];
    s->all[p->slot]->slot = p->slot;
    p->linked = 0;
}

/* Under s->mu: twice the buckets once there is a page for every 4 buckets
 * (chains of one: at one page a bucket two query threads spent 3-10% more
 * CPU a search); kept as they are when memory is short. */
static void grow_buckets(part *s)
{
    if (s->n < s->nbuckets / 4 || s->nbuckets > SIZE_MAX / 2 / sizeof *s->buckets) return;
    tscpage **nb = calloc(s->nbuckets * 2, sizeof *nb);
    if (!nb) return;
    free(s->buckets);
    s->buckets = nb;
    s->nbuckets *= 2;
    for (size_t i = 0; i < s->n; i++) {
        tscpage *p = s->all[i];
        size_t h = bucket(s, p->pgno, p->ver);
        p->hnext = nb[h];
        nb[h] = p;
    }
}

/* Under s->mu: p into s's table and clock.  0, or -1 when the clock
 * array cannot grow (p is then not linked). */
static int link_page(part *s, tscpage *p)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        tscpage **na = realloc(s->all, nc * sizeof *na);
        if (!na) return -1;
        s->all = na;
        s->cap = nc;
    }
    grow_buckets(s);
    size_t h = bucket(s, p->pgno, p->ver);
    p->hnext = s->buckets[h];
    s->buckets[h] = p;
    p->slot = s->n;
    s->all[s->n++] = p;
    p->linked = 1;
    return 0;
}

/* Clock: evict unpinned pages until under budget; give up after two
 * sweeps (everything pinned: the cache runs over budget for a while), or
 * after EVICT_SCAN steps: pages held by index modules' caches
 * (tscache_hold) may fill a partition for long, and a full sweep on every
 * insert would then cost as much as the partition is large. */
#define EVICT_SCAN 1024
static void evict(tscache *c, part *s)
{
    size_t budget = s->n < EVICT_SCAN / 2 ? 2 * s->n + 1 : EVICT_SCAN;
    while (s->n >= s->max_pages && budget-- > 0 && s->n > 0) {
        if (s->hand >= s->n) s->hand = 0;
        tscpage *p = s->all[s->hand];
        if (p->pins) { s->hand++; continue; }
        if (p->ref) { p->ref = 0; s->hand++; continue; }
        unlink_page(s, p);
        frame_put(c, p);
    }
}

static part *lock_part_of(tscache *c, tscpage *p);

static tscpage *find(part *s, uint64_t pgno, uint64_t ver)
{
    tscpage *p = s->buckets[bucket(s, pgno, ver)];
    while (p && !(p->pgno == pgno && p->ver == ver)) p = p->hnext;
    return p;
}

tscpage *tscache_get(tscache *c, uint64_t pgno, uint64_t ver)
{
    part *s = &c->p[part_of(c, pgno, ver)];
    pthread_mutex_lock(&s->mu);
    tscpage *p = find(s, pgno, ver);
    if (p) { p->pins++; p->ref = 1; s->hits++; }
    else s->misses++;
    pthread_mutex_unlock(&s->mu);
    return p;
}

int tscache_has(tscache *c, uint64_t pgno, uint64_t ver)
{
    part *s = &c->p[part_of(c, pgno, ver)];
    pthread_mutex_lock(&s->mu);
    int has = find(s, pgno, ver) != NULL;
    pthread_mutex_unlock(&s->mu);
    return has;
}

tscpage *tscache_alloc(tscache *c, uint64_t pgno, uint64_t ver)
{
    pthread_mutex_lock(&c->fmu);
    tscpage *p = tsframes_get(&c->fr);
    pthread_mutex_unlock(&c->fmu);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->owner = c;
    p->owned = 1;
    p->pgno = pgno;
    p->ver = ver;
    return p;
}

/* A held page outlives its discard: its last release frees it. */
void tscache_discard(tscache *c, tscpage *p)
{
    part *s = lock_part_of(c, p);
    p->owned = 0;
    int gone = !p->pins;
    pthread_mutex_unlock(&s->mu);
    if (gone) frame_put(c, p);
}

tscpage *tscache_insert(tscache *c, tscpage *p)
{
    unsigned i = part_of(c, p->pgno, p->ver);
    part *s = &c->p[i];
    pthread_mutex_lock(&s->mu);
    tscpage *q = find(s, p->pgno, p->ver);
    if (q) {
        q->pins++;
        q->ref = 1;
        pthread_mutex_unlock(&s->mu);
        tscache_discard(c, p);
        return q;
    }
    evict(c, s);
    __atomic_store_n(&p->part, (uint8_t)i, __ATOMIC_RELAXED);
    /* a transaction's page may come with holds (tscache_hold) */
    p->pins++;
    p->owned = 0;
    p->ref = 1;
    link_page(s, p);   /* when it cannot be tracked it is handed out unlinked */
    pthread_mutex_unlock(&s->mu);
    return p;
}

/* Lock the partition p is counted in: rekey may move p to another one
 * between reading p->part and taking its lock, so check again under it. */
static part *lock_part_of(tscache *c, tscpage *p)
{
    for (;;) {
        part *s = &c->p[__atomic_load_n(&p->part, __ATOMIC_ACQUIRE)];
        pthread_mutex_lock(&s->mu);
        if (s == &c->p[__atomic_load_n(&p->part, __ATOMIC_RELAXED)]) return s;
        pthread_mutex_unlock(&s->mu);
    }
}

void tscache_unpin(tscache *c, tscpage *p)
{
    if (!p) return;
    part *s = lock_part_of(c, p);
    int gone = --p->pins == 0 && !p->linked && !p->owned;
    pthread_mutex_unlock(&s->mu);
    if (gone) frame_put(c, p);
}

void tscache_hold(tscpage *p)
{
    part *s = lock_part_of(p->owner, p);
    p->pins++;
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&p->owner->nholds, 1);
}

void tscache_release(tscpage *p)
{
    if (!p) return;
    tscache *c = p->owner;
    tscache_unpin(c, p);
    if (atomic_fetch_sub(&c->nholds, 1) == 1 && atomic_load(&c->closing)) cache_destroy(c);
}

void tscache_unpin_forget(tscache *c, tscpage *p)
{
    if (!p) return;
    part *s = lock_part_of(c, p);
    if (p->linked) unlink_page(s, p);
    int gone = --p->pins == 0 && !p->owned;
    pthread_mutex_unlock(&s->mu);
    if (gone) frame_put(c, p);
}

void tscache_drop(tscache *c, uint64_t pgno, uint64_t ver)
{
    part *s = &c->p[part_of(c, pgno, ver)];
    pthread_mutex_lock(&s->mu);
    tscpage *p = find(s, pgno, ver);
    int gone = 0;
    if (p) {
        unlink_page(s, p);
        gone = !p->pins;
    }
    pthread_mutex_unlock(&s->mu);
    if (gone) frame_put(c, p);
}

void tscache_rekey(tscache *c, uint64_t pgno, uint64_t from, uint64_t to)
{
    unsigned a = part_of(c, pgno, from), b = part_of(c, pgno, to);
    part *sa = &c->p[a], *sb = &c->p[b];
    /* both partitions, in index order */
    pthread_mutex_lock(&c->p[a < b ? a : b].mu);
    if (a != b) pthread_mutex_lock(&c->p[a < b ? b : a].mu);
    tscpage *old = find(sb, pgno, to), *p = from != to ? find(sa, pgno, from) : NULL, *gone = NULL;
    if (old) {
        unlink_page(sb, old);
        if (!old->pins) gone = old;
    }
    if (p && a == b) {
        /* out of its bucket only: its clock slot stays */
        unchain(sa, p);
        p->ver = to;
        size_t h = bucket(sa, pgno, to);
        p->hnext = sa->buckets[h];
        sa->buckets[h] = p;
    } else if (p) {
        unlink_page(sa, p);
        p->ver = to;
        __atomic_store_n(&p->part, (uint8_t)b, __ATOMIC_RELEASE);
        evict(c, sb);   /* b's share holds, as for an insert */
        /* cannot be tracked there: dropped (pinned users keep the image) */
        if (link_page(sb, p) && !p->pins) {
            if (gone) frame_put(c, gone);
            gone = p;
        }
    }
    if (a != b) pthread_mutex_unlock(&c->p[a < b ? b : a].mu);
    pthread_mutex_unlock(&c->p[a < b ? a : b].mu);
    if (gone) frame_put(c, gone);
}

uint8_t *tscpage_data(tscpage *p) { return p->data; }

tscpage *tscpage_of_data(uint8_t *data)
{
    return (tscpage *)(void *)(data - offsetof(tscpage, data));
}

void tscpage_set_key(tscpage *p, uint64_t pgno, uint64_t ver)
{
    p->pgno = pgno;
    p->ver = ver;
}

void tscache_memory(tscache *c, uint64_t *now, uint64_t *peak)
{
    pthread_mutex_lock(&c->fmu);
    *now = (uint64_t)c->fr.live * c->fr.size;
    *peak = (uint64_t)c->fr.peak * c->fr.size;
    pthread_mutex_unlock(&c->fmu);
}

void tscache_stats(tscache *c, uint64_t *hits, uint64_t *misses, size_t *pages)
{
    uint64_t h = 0, m = 0;
    size_t n = 0;
    for (unsigned i = 0; i < c->nparts; i++) {
        part *s = &c->p[i];
        pthread_mutex_lock(&s->mu);
        h += s->hits;
        m += s->misses;
        n += s->n;
        pthread_mutex_unlock(&s->mu);
    }
    if (hits) *hits = h;
    if (misses) *misses = m;
    if (pages) *pages = n;
}
