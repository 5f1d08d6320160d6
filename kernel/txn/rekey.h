/*
 * Rekey: re-encrypt every page of a cleanly checkpointed database under a
 * new data key (or from plain to encrypted and back), crash-safely.
 *
 *  1. write tostore.db.rekey: the file header (new key id) and every page
 *     re-sealed; sync it; write the new keyring as tostore.keyring.rekey
 *     and sync it; sync the directory;
 *  2. commit point: rename the new keyring over the old one (or remove the
 *     keyring when the target is plain); sync the directory;
 *  3. rename tostore.db.rekey over tostore.db; sync the directory.
 * At open, tsrekey_recover finishes step 3 when the keyring on disk matches
 * the key id of tostore.db.rekey, and otherwise removes the leftovers, so a
 * crash at any point leaves either the old or the new key valid.
 */
#ifndef TS_TXN_REKEY_H
#define TS_TXN_REKEY_H

#include "crypto/keys.h"
#include "io/store.h"

#define TSREKEY_DB_FILE "tostore.db.rekey"
#define TSREKEY_KEY_FILE "tostore.keyring.rekey"

/* Progress callback: pages done of total; may be NULL. */
typedef void (*tsrekey_progress)(void *ctx, uint64_t done, uint64_t total);

/* Rewrite the database (closed, log empty) from cipher `from` to `to`
 * (either may be NULL: plain).  ring: the new keyring bytes (NULL when `to`
 * is plain). */
int tsrekey_run(ts_env *env, tsstore *st, tscipher *from, tscipher *to, const uint8_t *ring,
                size_t ring_len, tsrekey_progress cb, void *ctx);
/* Finish or roll back an interrupted rekey (call before reading keys). */
int tsrekey_recover(ts_env *env, tsstore *st);

#endif
