/*
 * Page copies of the read cache, carved from large mappings advised for
 * transparent huge pages.  A search touches a few hundred page copies
 * scattered over the whole index; as separate 4 KiB allocations each one
 * costs a TLB miss (and a nested page walk on a VM), while a 2 MiB page
 * covers 512 of them.  Blocks are all one size; freed ones are kept on a
 * list and everything is unmapped at once with the cache.
 */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include "ngh.h"

/* Under AddressSanitizer, blocks not handed out are poisoned, so a use
 * after free of a page copy is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#define NGH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NGH_ASAN 1
#endif
#endif
#ifdef NGH_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define HUGE_BYTES  (2u << 20)
#define FIRST_CHUNK (256u << 10)
#define MAX_CHUNK   (16u << 20)

/* Each mapping starts with this header (one cache line). */
typedef struct chunk { struct chunk *next; size_t bytes; } chunk;
#define CHUNK_HDR 64

void ngh_slab_init(ngh_slab *s, size_t block)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->block = (block + 63) & ~(size_t)63;
    s->next_bytes = FIRST_CHUNK;
}

/* A mapping of n bytes, aligned to a huge page and advised for them when
 * it holds at least one; NULL on failure. */
static void *map_chunk(size_t n)
{
    if (n < HUGE_BYTES) {
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    size_t len = n + HUGE_BYTES;
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE_BYTES - 1) & ~(uintptr_t)(HUGE_BYTES - 1));
    if (a > p) munmap(p, (size_t)(a - p));
    if (a + n < p + len) munmap(a + n, (size_t)(p + len - (a + n)));
#ifdef MADV_HUGEPAGE
    madvise(a, n, MADV_HUGEPAGE); /* advice only: without it the blocks work the same */
#endif
    return a;
}

void *ngh_slab_alloc(ngh_slab *s)
{
    pthread_mutex_lock(&s->mu);
    void *b = s->free;
    if (b) {
        UNPOISON(b, s->block);
        memcpy(&s->free, b, sizeof s->free);
    } else {
        if (s->left < s->block) {
            size_t n = s->next_bytes;
            while (n - CHUNK_HDR < s->block) n *= 2;
            chunk *c = map_chunk(n);
            if (!c) { pthread_mutex_unlock(&s->mu); return NULL; }
            c->next = s->chunks;
            c->bytes = n;
            s->chunks = c;
            s->cur = (uint8_t *)c + CHUNK_HDR;
            s->left = n - CHUNK_HDR;
            POISON(s->cur, s->left);
            if (s->next_bytes < MAX_CHUNK) s->next_bytes *= 2;
        }
        b = s->cur;
        s->cur += s->block;
        s->left -= s->block;
        UNPOISON(b, s->block);
    }
    pthread_mutex_unlock(&s->mu);
    return b;
}

void ngh_slab_free(ngh_slab *s, void *b)
{
    if (!b) return;
    pthread_mutex_lock(&s->mu);
    memcpy(b, &s->free, sizeof s->free);
    s->free = b;
    POISON(b, s->block);
    pthread_mutex_unlock(&s->mu);
}

void ngh_slab_done(ngh_slab *s)
{
    for (chunk *c = s->chunks, *n; c; c = n) {
        n = c->next;
        UNPOISON(c, c->bytes); /* the range may be mapped again by anyone */
        munmap(c, c->bytes);
    }
    pthread_mutex_destroy(&s->mu);
    memset(s, 0, sizeof *s);
}

void ngh_slab_move(ngh_slab *to, ngh_slab *from)
{
    for (chunk *c = to->chunks, *n; c; c = n) {
        n = c->next;
        UNPOISON(c, c->bytes);
        munmap(c, c->bytes);
    }
    to->block = from->block;
    to->chunks = from->chunks;
    to->cur = from->cur;
    to->left = from->left;
    to->next_bytes = from->next_bytes;
    to->free = from->free;
    from->chunks = from->free = NULL;
    from->cur = NULL;
    from->left = 0;
    from->next_bytes = FIRST_CHUNK;
}
