/*
 * One AEAD pass through OpenSSL's EVP interface, shared by the
 * chacha20poly1305 and aes256gcm cipher modules (compiled into each).
 */
#ifndef TS_CIPHER_EVP_AEAD_H
#define TS_CIPHER_EVP_AEAD_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <openssl/evp.h>

#define EVP_AEAD_TAG_BYTES 16

enum { EVP_AEAD_OK = 0, EVP_AEAD_FAIL = 1, EVP_AEAD_AUTH = 2 };

#define EVP_POOL_MAX 16

/* Contexts of one cipher kept for reuse: making and setting up an
 * EVP_CIPHER_CTX per call costs about a third of sealing a 4 KB page.
 * Thread-safe; a module state holds one. */
typedef struct evp_pool {
    pthread_mutex_t   mu;
    const EVP_CIPHER *cipher;
    EVP_CIPHER_CTX   *free[EVP_POOL_MAX];
    int               n;
} evp_pool;

/* The first queued OpenSSL error as text in why (n bytes; "no detail" if
 * none), leaving the thread's error queue empty for whoever uses OpenSSL
 * next.  Returns why. */
const char *evp_aead_reason(char *why, size_t n);

/* 0, or -1 when the mutex cannot be made. */
int  evp_pool_init(evp_pool *p, const EVP_CIPHER *cipher);
/* Free the kept contexts (wiping their keys). */
void evp_pool_fini(evp_pool *p);

/* Encrypt (enc = 1) or decrypt len bytes of `in` into `out` (may be the
 * same buffer) under key and iv with ad authenticated.  Sealing writes the
 * 16-byte tag; opening checks it: EVP_AEAD_AUTH on mismatch, in which case
 * `out` is wiped (the EVP ciphers decrypt before the tag is known).
 * EVP_AEAD_FAIL: an OpenSSL error, left in the thread's error queue. */
int evp_aead(evp_pool *p, int enc, const uint8_t *key, const uint8_t *iv, const uint8_t *ad,
             size_t ad_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag);

#endif
