#define _DEFAULT_SOURCE
#include <string.h>
#include <sys/mman.h>
#include "pager/frames.h"

/* Under AddressSanitizer frames not handed out are poisoned, so a use after
 * the cache let go of a page is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#define TSF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TSF_ASAN 1
#endif
#endif
#ifdef TSF_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define HUGE     ((size_t)2 << 20)
#define FIRST    ((size_t)256 << 10)
#define LARGEST  ((size_t)32 << 20)
#define MAP_HDR  64   /* each mapping starts with its link and length */

typedef struct mapping { struct mapping *next; size_t bytes; } mapping;

void tsframes_init(tsframes *f, size_t size)
{
    memset(f, 0, sizeof *f);
    f->size = (size + 63) & ~(size_t)63;
    f->next = FIRST;
}

/* n bytes, huge-page aligned and advised when they hold a huge page. */
static void *map(size_t n)
{
    size_t extra = n >= HUGE ? HUGE : 0;
    uint8_t *p = mmap(NULL, n + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    if (!extra) return p;
    uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    if (a > p) munmap(p, (size_t)(a - p));
    if (a + n < p + n + extra) munmap(a + n, (size_t)(p + n + extra - (a + n)));
#ifdef MADV_HUGEPAGE
    madvise(a, n, MADV_HUGEPAGE); /* advice: without it the frames work the same */
#endif
    return a;
}

void *tsframes_get(tsframes *f)
{
    void *p = f->free;
    if (p) {
        UNPOISON(p, f->size);
        memcpy(&f->free, p, sizeof f->free);
        if (++f->live > f->peak) f->peak = f->live;
        return p;
    }
    if (f->left < f->size) {
        size_t n = f->next;
        while (n - MAP_HDR < f->size) n *= 2;
        mapping *m = map(n);
        if (!m) return NULL;
        m->next = f->maps;
        m->bytes = n;
        f->maps = m;
        f->cur = (uint8_t *)m + MAP_HDR;
        f->left = n - MAP_HDR;
        POISON(f->cur, f->left);
        if (f->next < LARGEST) f->next *= 2;
    }
    p = f->cur;
    f->cur += f->size;
    f->left -= f->size;
    UNPOISON(p, f->size);
    if (++f->live > f->peak) f->peak = f->live;
    return p;
}

void tsframes_put(tsframes *f, void *p)
{
    memcpy(p, &f->free, sizeof f->free);
    f->free = p;
    f->live--;
    POISON(p, f->size);
}

void tsframes_done(tsframes *f)
{
    for (mapping *m = f->maps, *nx; m; m = nx) {
        UNPOISON(m, m->bytes); /* the range may be mapped again by anyone */
        nx = m->next;
        munmap(m, m->bytes);
    }
    memset(f, 0, sizeof *f);
}
