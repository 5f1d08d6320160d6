#include <string.h>
#include "base/crc32c.h"
#include "pager/codec.h"

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

uint64_t tspage_lsn(const uint8_t *lp) { return get64(lp + 8); }

/* The checksum covers the page number too: a page read from the wrong
 * position fails even without a cipher. */
static uint32_t page_crc(const tscodec *c, uint64_t pgno, const uint8_t *lp)
{
    uint8_t no[8];
    put64(no, pgno);
    uint32_t crc = tscrc32c(0, no, 8);
    return tscrc32c(crc, lp + 4, c->logical - 4);
}

static void make_ad(const tscodec *c, uint64_t pgno, uint8_t ad[24])
{
    memcpy(ad, c->dbid, 16);
    put64(ad + 16, pgno);
}

int tscodec_encode(const tscodec *c, uint64_t pgno, uint64_t lsn, uint8_t *lp, uint8_t *out)
{
    put64(lp + 8, lsn);
    uint32_t crc = page_crc(c, pgno, lp);
    for (int i = 0; i < 4; i++) lp[i] = (uint8_t)(crc >> (8 * i));
    size_t used = c->logical;
    int rc = TS_OK;
    if (!c->cipher) {
        memcpy(out, lp, c->logical);
    } else {
        uint8_t ad[24];
        make_ad(c, pgno, ad);
        rc = c->cipher->vt->seal(c->cipher->state, ad, sizeof ad, lp, c->logical, out);
        used += c->cipher->vt->overhead;
    }
    memset(out + used, 0, c->page_size - used);
    return rc;
}

int tscodec_decode(const tscodec *c, uint64_t pgno, const uint8_t *raw, uint8_t *lp)
{
    if (c->cipher) {
        uint8_t ad[24];
        make_ad(c, pgno, ad);
        /* The tag covers the page and the associated data its page number,
         * so a page that opens is the one sealed: the checksum inside it
         * (written for readers without the cipher's guarantee, e.g. tools)
         * would only repeat that check, at ~10% of a miss. */
        return c->cipher->vt->open(c->cipher->state, ad, sizeof ad, raw,
                                   c->logical + c->cipher->vt->overhead, lp) == TS_OK
                   ? TS_OK
                   : TS_ERR_CORRUPT;
    }
    memcpy(lp, raw, c->logical);
    uint32_t want = (uint32_t)lp[0] | (uint32_t)lp[1] << 8 | (uint32_t)lp[2] << 16 |
                    (uint32_t)lp[3] << 24;
    return page_crc(c, pgno, lp) == want ? TS_OK : TS_ERR_CORRUPT;
}
