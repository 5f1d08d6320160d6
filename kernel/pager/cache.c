#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/status.h>
#include "pager/cache.h"
#include "pager/frames.h"

struct tscpage {
    uint64_t pgno, ver;
    uint32_t pins;
    uint8_t  ref, linked;
    size_t   slot;       /* index in tscache.all while linked */
    tscpage *hnext;
    uint8_t  data[];
};

struct tscache {
    pthread_mutex_t mu;
    size_t    page_bytes, max_pages;
    tscpage **buckets;
    size_t    nbuckets;
    tscpage **all;       /* linked pages, for the clock hand */
    size_t    n, cap, hand;
    uint64_t  hits, misses;
    tsframes  fr;        /* every page's memory, under mu */
};

static size_t hash(const tscache *c, uint64_t pgno, uint64_t ver)
{
    uint64_t h = (pgno * 0x9E3779B97F4A7C15ull) ^ (ver * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(h ^ (h >> 29)) & (c->nbuckets - 1);
}

int tscache_new(size_t max_bytes, size_t page_bytes, tscache **out)
{
    tscache *c = calloc(1, sizeof *c);
    if (!c) return TS_ERR_NOMEM;
    c->page_bytes = page_bytes;
    c->max_pages = max_bytes / (page_bytes + sizeof(tscpage));
    if (c->max_pages < 16) c->max_pages = 16;
    /* grown with the pages (grow_buckets): a table sized for the budget
     * up front (4 MiB for 2 GB) was faulted in one random page at a time
     * by a process's first queries */
    c->nbuckets = 1024;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    if (!c->buckets) { free(c); return TS_ERR_NOMEM; }
    tsframes_init(&c->fr, sizeof(tscpage) + page_bytes);
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return TS_OK;
}

void tscache_free(tscache *c)
{
    if (!c) return;
    tsframes_done(&c->fr); /* every page at once */
    free(c->all);
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void unlink_page(tscache *c, tscpage *p)
{
    tscpage **pp = &c->buckets[hash(c, p->pgno, p->ver)];
    while (*pp != p) pp = &(*pp)->hnext;
    *pp = p->hnext;
    c->all[p->slot] = c->all[--c->n];
    c->all[p->slot]->slot = p->slot;
    p->linked = 0;
}

/* Clock: evict unpinned pages until under budget; give up after two
 * sweeps (everything pinned: the cache runs over budget for a while). */
static void evict(tscache *c)
{
    size_t budget = 2 * c->n + 1;
    while (c->n >= c->max_pages && budget-- > 0 && c->n > 0) {
        if (c->hand >= c->n) c->hand = 0;
        tscpage *p = c->all[c->hand];
        if (p->pins) { c->hand++; continue; }
        if (p->ref) { p->ref = 0; c->hand++; continue; }
        unlink_page(c, p);
        tsframes_put(&c->fr, p);
    }
}

/* Under c->mu: twice the buckets once there is a page for every 4 buckets
 * (chains of one: at one page a bucket two query threads spent 3-10% more
 * CPU a search); kept as they are when memory is short. */
static void grow_buckets(tscache *c)
{
    if (c->n < c->nbuckets / 4 || c->nbuckets > SIZE_MAX / 2 / sizeof *c->buckets) return;
    tscpage **nb = calloc(c->nbuckets * 2, sizeof *nb);
    if (!nb) return;
    free(c->buckets);
    c->buckets = nb;
    c->nbuckets *= 2;
    for (size_t i = 0; i < c->n; i++) {
        tscpage *p = c->all[i];
        size_t h = hash(c, p->pgno, p->ver);
        p->hnext = nb[h];
        nb[h] = p;
    }
}

static tscpage *find(tscache *c, uint64_t pgno, uint64_t ver)
{
    tscpage *p = c->buckets[hash(c, pgno, ver)];
    while (p && !(p->pgno == pgno && p->ver == ver)) p = p->hnext;
    return p;
}

tscpage *tscache_get(tscache *c, uint64_t pgno, uint64_t ver)
{
    pthread_mutex_lock(&c->mu);
    tscpage *p = find(c, pgno, ver);
    if (p) { p->pins++; p->ref = 1; c->hits++; }
    else c->misses++;
    pthread_mutex_unlock(&c->mu);
    return p;
}

tscpage *tscache_alloc(tscache *c, uint64_t pgno, uint64_t ver)
{
    pthread_mutex_lock(&c->mu);
    tscpage *p = tsframes_get(&c->fr);
    pthread_mutex_unlock(&c->mu);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->pgno = pgno;
    p->ver = ver;
    return p;
}

void tscache_discard(tscache *c, tscpage *p)
{
    pthread_mutex_lock(&c->mu);
    tsframes_put(&c->fr, p);
    pthread_mutex_unlock(&c->mu);
}

tscpage *tscache_insert(tscache *c, tscpage *p)
{
    pthread_mutex_lock(&c->mu);
    tscpage *q = find(c, p->pgno, p->ver);
    if (q) {
        q->pins++;
        q->ref = 1;
        tsframes_put(&c->fr, p);
        pthread_mutex_unlock(&c->mu);
        return q;
    }
    evict(c);
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 256;
        tscpage **na = realloc(c->all, nc * sizeof *na);
        if (!na) { /* cannot track it: hand it out unlinked */
            pthread_mutex_unlock(&c->mu);
            p->pins = 1;
            return p;
        }
        c->all = na;
        c->cap = nc;
    }
    grow_buckets(c);
    size_t h = hash(c, p->pgno, p->ver);
    p->hnext = c->buckets[h];
    c->buckets[h] = p;
    p->slot = c->n;
    c->all[c->n++] = p;
    p->linked = 1;
    p->pins = 1;
    p->ref = 1;
    pthread_mutex_unlock(&c->mu);
    return p;
}

void tscache_unpin(tscache *c, tscpage *p)
{
    if (!p) return;
    pthread_mutex_lock(&c->mu);
    if (--p->pins == 0 && !p->linked) tsframes_put(&c->fr, p);
    pthread_mutex_unlock(&c->mu);
}

void tscache_drop(tscache *c, uint64_t pgno, uint64_t ver)
{
    pthread_mutex_lock(&c->mu);
    tscpage *p = find(c, pgno, ver);
    if (p) {
        unlink_page(c, p);
        if (!p->pins) tsframes_put(&c->fr, p);
    }
    pthread_mutex_unlock(&c->mu);
}


void tscache_rekey(tscache *c, uint64_t pgno, uint64_t from, uint64_t to)
{
    pthread_mutex_lock(&c->mu);
    tscpage *old = find(c, pgno, to), *p = from != to ? find(c, pgno, from) : NULL;
    if (old) {
        unlink_page(c, old);
        if (!old->pins) tsframes_put(&c->fr, old);
    }
    if (p) {
        /* out of its bucket only: its clock slot stays */
        tscpage **pp = &c->buckets[hash(c, pgno, from)];
        while (*pp != p) pp = &(*pp)->hnext;
        *pp = p->hnext;
        p->ver = to;
        size_t h = hash(c, pgno, to);
        p->hnext = c->buckets[h];
        c->buckets[h] = p;
    }
    pthread_mutex_unlock(&c->mu);
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

void tscache_stats(tscache *c, uint64_t *hits, uint64_t *misses, size_t *pages)
{
    pthread_mutex_lock(&c->mu);
    if (hits) *hits = c->hits;
    if (misses) *misses = c->misses;
    if (pages) *pages = c->n;
    pthread_mutex_unlock(&c->mu);
}
