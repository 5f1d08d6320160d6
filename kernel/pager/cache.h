/*
 * The page cache: decoded (logical) page images keyed by (page number,
 * version), where the version is the absolute log frame the image came from,
 * or 0 for the main file.  Images are immutable once inserted, so readers of
 * different snapshots share them without copying.  Bounded by a byte budget
 * with clock eviction of unpinned pages; uncommitted pages never live here
 * (they belong to their transaction).
 */
#ifndef TS_PAGER_CACHE_H
#define TS_PAGER_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tscache tscache;
typedef struct tscpage tscpage;

int      tscache_new(size_t max_bytes, size_t page_bytes, tscache **out);
/* With holds outstanding the cache stays until the last tscache_release. */
void     tscache_free(tscache *c);

/* A pinned page (pgno, ver), or NULL on a miss. */
tscpage *tscache_get(tscache *c, uint64_t pgno, uint64_t ver);
/* Whether that version is cached (no pin, not counted as a hit or miss). */
int      tscache_has(tscache *c, uint64_t pgno, uint64_t ver);
/* An unlinked page whose data the caller fills, then inserts (or frees with
 * tscache_discard).  NULL when out of memory. */
tscpage *tscache_alloc(tscache *c, uint64_t pgno, uint64_t ver);
/* Free an unlinked page, or, while it is held, leave that to its last
 * tscache_release. */
void     tscache_discard(tscache *c, tscpage *p);
/* Link p (pinned).  If another thread inserted the same key first, p is
 * freed and the existing page is returned pinned instead. */
tscpage *tscache_insert(tscache *c, tscpage *p);
void     tscache_unpin(tscache *c, tscpage *p);
/* One more pin on p, linked or not, taken for a holder outside any
 * transaction (an index module's page cache): p's memory stays until the
 * matching tscache_release, whatever drops, discards or inserts p meanwhile.
 * A linked page's image never changes; an unlinked one is a writer's page
 * and changes only through that writer, and until it is linked (its
 * partition changes then) it is released only on the writer's thread. */
void     tscache_hold(tscpage *p);
void     tscache_release(tscpage *p);
/* Unpin p and forget it (as tscache_drop): for a version its caller has
 * just superseded; whoever still reads it reads it again. */
void     tscache_unpin_forget(tscache *c, tscpage *p);
/* Forget (pgno, ver); pinned users keep their image until they unpin. */
void     tscache_drop(tscache *c, uint64_t pgno, uint64_t ver);
/* The content of version `from` of pgno became version `to` as well (a
 * checkpoint copied a log frame to the main file): any entry (pgno, to) is
 * dropped and the entry (pgno, from), if cached, is keyed (pgno, to) from
 * now on, so readers of the main file keep the page instead of reading it
 * back (it may move to another partition, which evicts to keep its share,
 * or, out of memory to track it, be dropped).  Pins on it stay valid. */
void     tscache_rekey(tscache *c, uint64_t pgno, uint64_t from, uint64_t to);

uint8_t *tscpage_data(tscpage *p);
/* The unlinked page (from tscache_alloc) whose data tscpage_data gave. */
tscpage *tscpage_of_data(uint8_t *data);
/* Give an unlinked page another key before tscache_insert: a writer fills
 * a page as its private copy, then hands that very buffer to the cache at
 * commit instead of copying it. */
void     tscpage_set_key(tscpage *p, uint64_t pgno, uint64_t ver);
void     tscache_stats(tscache *c, uint64_t *hits, uint64_t *misses, size_t *pages);
/* Bytes of page memory in use now (linked pages, writers' private pages,
 * held pages, each with its header) and the most in use at once. */
void     tscache_memory(tscache *c, uint64_t *now, uint64_t *peak);

#endif
