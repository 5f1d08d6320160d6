/*
 * Page images: what a page looks like on storage (main file and log) and in
 * memory.  In memory a page is its "logical" image: a 16-byte header
 * (crc32c, type, flags, lsn) followed by the usable bytes.  On storage it is
 * the logical image as is, or sealed by the cipher into page_size bytes with
 * the database id and page number as associated data, so a page copied to
 * another position or another database fails authentication.  The last
 * TSPAGE_RESERVE bytes of a stored page hold the cipher's nonce and tag
 * (zeros when plain).
 */
#ifndef TS_PAGER_CODEC_H
#define TS_PAGER_CODEC_H

#include <stdint.h>
#include "crypto/keys.h"

#define TSPAGE_HDR 16
/* Bytes every page keeps free for a cipher's nonce and tag, encrypted or
 * not, so that the usable size never depends on the cipher and a database
 * can be re-encrypted in place of itself (rekey). */
#define TSPAGE_RESERVE 64

typedef struct tscodec {
    uint32_t  page_size;  /* bytes on storage */
    uint32_t  logical;    /* bytes in memory: page_size minus TSPAGE_RESERVE */
    uint32_t  usable;     /* logical minus the header */
    tscipher *cipher;     /* NULL: plain */
    uint8_t   dbid[16];
} tscodec;

/* Page header accessors on a logical image. */
static inline uint8_t tspage_type(const uint8_t *lp) { return lp[4]; }
static inline void tspage_set_type(uint8_t *lp, uint8_t t) { lp[4] = t; }
uint64_t tspage_lsn(const uint8_t *lp);

/* Stamp lsn and checksum into lp, then write the storage image to out
 * (page_size bytes).  lp and out may not overlap. */
int tscodec_encode(const tscodec *c, uint64_t pgno, uint64_t lsn, uint8_t *lp, uint8_t *out);
/* Verify and decode a storage image into lp (logical bytes):
 * TS_ERR_CORRUPT on a checksum or authentication failure. */
int tscodec_decode(const tscodec *c, uint64_t pgno, const uint8_t *raw, uint8_t *lp);

#endif
