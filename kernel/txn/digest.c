/* The page-version digest (docs/kernel.md, "Replayed pages"). */
#include <string.h>
#include <sodium.h>
#include "txn/internal.h"

static const char digest_ctx[] = "tostore page-version digest v1";

void tspg_digest_key(const tscodec *c, uint8_t key[TSPG_DIGEST_KEY])
{
    /* Encrypted: keyed by the data key, so that nobody without it can
     * choose replayed pages whose terms cancel.  Plain: by the database id
     * (a check against stale pages and lost writes, not against forgery,
     * which a plain file cannot resist anyway). */
    if (c->cipher)
        crypto_generichash(key, TSPG_DIGEST_KEY, (const uint8_t *)digest_ctx, sizeof digest_ctx - 1,
                           c->cipher->key, c->cipher->key_len);
    else
        crypto_generichash(key, TSPG_DIGEST_KEY, c->dbid, sizeof c->dbid, (const uint8_t *)digest_ctx,
                           sizeof digest_ctx - 1);
}

void tspg_digest_mix(const uint8_t key[TSPG_DIGEST_KEY], uint64_t pgno, uint64_t lsn,
                     uint8_t acc[TSPG_DIGEST])
{
    uint8_t in[16], h[TSPG_DIGEST];
    for (int i = 0; i < 8; i++) {
        in[i] = (uint8_t)(pgno >> (8 * i));
        in[8 + i] = (uint8_t)(lsn >> (8 * i));
    }
    crypto_generichash(h, sizeof h, in, sizeof in, key, TSPG_DIGEST_KEY);
    for (int i = 0; i < TSPG_DIGEST; i++) acc[i] ^= h[i];
}
