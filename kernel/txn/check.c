/* Integrity check of the page layer: every page decodes under the current
 * snapshot, the free list is a proper chain of free pages, and (databases
 * with the page-version digest) every page is the version the meta page
 * expects. */
#include <stdlib.h>
#include <string.h>
#include "base/env.h"
#include "txn/internal.h"
#include "wal/wal.h"

static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

int tspg_check(tspg *pg, tspg_check_report *r, tsrekey_progress_fn cb, void *ctx)
{
    memset(r, 0, sizeof *r);
    tstx *tx;
    int rc = tstx_begin(pg, 0, &tx);
    if (rc) return rc;
    r->pages = tx->page_count;
    uint8_t *seen = calloc(tx->page_count ? tx->page_count : 1, 1);
    uint8_t *lp = malloc(pg->codec.logical);
    if (!seen || !lp) {
        free(seen);
        free(lp);
        tstx_rollback(tx);
        return tsenv_error(pg->env, TS_ERR_NOMEM, "out of memory");
    }
    uint8_t digest[TSPG_DIGEST] = {0};
    /* From storage, past the cache: a page changed on disk while the
     * database is open must be seen (its cached image is not). */
    for (uint64_t pgno = 2; pgno < tx->page_count; pgno++) {
        if (tspg_read_stored(pg, pgno, tswal_find(pg->wal, pgno, tx->mark), lp) != TS_OK) {
            if (!r->bad_pages++) r->first_bad = pgno;
            continue;
        }
        if (tx->meta_flags & TSPG_META_DIGEST) tspg_digest_mix(pg->digest_key, pgno, tspage_lsn(lp), digest);
        if (tspage_type(lp) == TSPG_TYPE_FREE) seen[pgno] = 1;
        if (cb && pgno % 4096 == 0) cb(ctx, pgno, tx->page_count);
    }
    /* Walk the free list: bounded by the free count, every link a free page. */
    uint64_t n = 0;
    for (uint64_t p = tx->free_head; p; n++) {
        if (p < 2 || p >= tx->page_count || n >= tx->free_count || seen[p] != 1) {
            r->freelist_broken = 1;
            break;
        }
        seen[p] = 2;
        if (tspg_read_stored(pg, p, tswal_find(pg->wal, p, tx->mark), lp) != TS_OK) {
            r->freelist_broken = 1;
            break;
        }
        p = get64(lp + TSPAGE_HDR);
    }
    if (n != tx->free_count) r->freelist_broken = 1;
    r->free_pages = n;
    /* only meaningful when every page could be read */
    r->digest_bad = (tx->meta_flags & TSPG_META_DIGEST) && !r->bad_pages &&
                    memcmp(digest, tx->digest, TSPG_DIGEST) != 0;
    free(seen);
    free(lp);
    tstx_rollback(tx);
    if (cb) cb(ctx, r->pages, r->pages);
    r->ok = !r->bad_pages && !r->freelist_broken && !r->digest_bad;
    tsenv_clear(pg->env);
    return TS_OK;
}
