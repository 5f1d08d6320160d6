/*
 * Key material for the cipher plugins, and the keyring file that holds the
 * database's data key.
 *
 * The data key is random and never derived from user input; the user's key
 * (raw, or a passphrase stretched with Argon2id) only wraps it.  Changing the
 * passphrase rewrites the keyring, not the database.  The keyring also holds
 * a key check, so a wrong key fails at open with TS_ERR_KEY.
 */
#ifndef TS_CRYPTO_KEYS_H
#define TS_CRYPTO_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <tostore/cipher.h>
#include "io/store.h"

#define TSKEY_MAX 64
#define TSKEY_FILE "tostore.keyring"

/* Decode a key spec "hex:...", "base64:..." or "env:VAR" (the variable
 * holding hex or base64, with or without its prefix) into exactly want
 * bytes. */
int tskey_decode(ts_env *env, const char *spec, uint8_t *out, size_t want);

/* A cipher instance with the database's data key. */
typedef struct tscipher {
    const ts_cipher_vtab *vt;
    void                 *state;
    const tsreg_module   *mod;
    uint8_t              *key;     /* the data key, in guarded read-only memory */
    size_t                key_len;
    uint64_t              keyid;   /* tskey_id of the data key */
} tscipher;

typedef struct tskey_user {
    const char *key;        /* key spec, or NULL */
    const char *passphrase; /* or NULL */
} tskey_user;

/* Open the keyring of the store with the user's key, creating it (with a
 * fresh random data key) when the store has none.  A keyring made with
 * another cipher, or a wrong key, is TS_ERR_KEY. */
int  tskey_open(ts_env *env, tsstore *st, const tsreg_module *mod, const json_t *opts,
                const tskey_user *user, tscipher **out);
/* Whether the store holds a keyring (i.e. was created encrypted). */
int  tskey_present(tsstore *st, int *present);
void tscipher_free(tscipher *c);

/* A non-zero fingerprint of a data key; the file header records it so a
 * keyring and a database file that do not belong together are refused. */
uint64_t tskey_id(const uint8_t *dkey, size_t klen);
/* Whether keyring file `name` exists, and the key id it holds. */
int  tskey_file_id(tsstore *st, const char *name, int *present, uint64_t *keyid);
/* For rekey: keyring bytes (malloc'd) wrapping dkey (NULL: a new random
 * data key) under the user's key, and a cipher instance with that key. */
int  tskey_prepare(ts_env *env, const tsreg_module *mod, const json_t *opts,
                   const tskey_user *user, const uint8_t *dkey, uint8_t **ring,
                   size_t *ring_len, tscipher **out);

#endif
