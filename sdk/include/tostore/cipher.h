/*
 * tostore/cipher.h - cipher modules (kind TS_KIND_CIPHER): authenticated
 * encryption of pages and log frames.
 *
 * The kernel derives or decodes a key of key_bytes bytes and creates one
 * cipher state per database.  seal() turns `len` plaintext bytes into
 * `len + overhead` bytes (layout chosen by the module: nonce, salt, tag...);
 * open() reverses it and must detect any change of the sealed bytes, of the
 * associated data or of the key with TS_ERR_AUTH, never returning garbage.
 * Nonces must never repeat under one key, crashes and restarts included:
 * derive them from host->random, not from counters the kernel might replay.
 * Modules flagged TS_MODULE_INSECURE (obfuscation only) are refused unless
 * the config sets cipher.allowInsecure.
 */
#ifndef TOSTORE_CIPHER_H
#define TOSTORE_CIPHER_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ts_cipher_vtab {
    uint32_t struct_size;  /* sizeof(ts_cipher_vtab) the plugin was built with */
    uint32_t key_bytes;    /* exact key length create() expects (e.g. 32) */
    uint32_t overhead;     /* bytes seal() adds to the plaintext length */

    /* Create a state holding a copy of the key (the caller wipes its copy).
     * key_len != key_bytes is TS_ERR_INVALID.  Required. */
    int  (*create)(const ts_module_args *args, const uint8_t *key, size_t key_len,
                   void **state_out);
    /* Wipe the key and free the state; accepts NULL.  Required. */
    void (*destroy)(void *state);

    /* Encrypt and authenticate: writes len + overhead bytes to out.  ad (the
     * kernel passes page number and sequence) is authenticated, not stored.
     * out may equal in (in place); otherwise they must not overlap.
     * Safe to call from several threads on one state.  Required. */
    int  (*seal)(void *state, const uint8_t *ad, size_t ad_len,
                 const uint8_t *in, size_t len, uint8_t *out);
    /* Verify and decrypt len (including overhead) bytes into len - overhead
     * bytes at out; TS_ERR_AUTH on any mismatch (out content then undefined).
     * out may equal in.  Required. */
    int  (*open)(void *state, const uint8_t *ad, size_t ad_len,
                 const uint8_t *in, size_t len, uint8_t *out);
} ts_cipher_vtab;

#ifdef __cplusplus
}
#endif
#endif /* TOSTORE_CIPHER_H */
