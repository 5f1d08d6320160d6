/*
 * Memory for the page cache's frames: carved from large anonymous mappings
 * and recycled through a free list.  A malloc per page faulted a fresh heap
 * in one 4 KiB page at a time (a frame is a page plus a header, so often
 * two faults) and grew it by small brk steps: a process's first query over
 * a large index spent most of its time there.  Mappings from 2 MiB on are
 * advised for transparent huge pages, so one fault maps 500 frames.
 * Plugins get the same allocator as the host table's arenas (host.c).
 * Not thread-safe: the cache calls it under its mutex.
 */
#ifndef TS_PAGER_FRAMES_H
#define TS_PAGER_FRAMES_H

#include <stddef.h>
#include <stdint.h>

typedef struct tsframes {
    size_t   size;        /* bytes a frame, a multiple of 64 */
    void    *maps;        /* the mappings, linked through their first bytes */
    uint8_t *cur;         /* the newest mapping's unused part */
    size_t   left, next;  /* its bytes left; the size of the next mapping */
    void    *free;        /* frames given back, linked through their first bytes */
    size_t   live, peak;  /* frames handed out and not given back; the most at once */
} tsframes;

void  tsframes_init(tsframes *f, size_t size);
/* A frame of f's size, or NULL when no memory can be mapped. */
void *tsframes_get(tsframes *f);
/* p (from tsframes_get) is unused from now on. */
void  tsframes_put(tsframes *f, void *p);
/* Unmap everything (frames need not be put back first). */
void  tsframes_done(tsframes *f);

#endif
