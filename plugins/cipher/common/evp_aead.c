#include <stdio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/err.h>
#include "evp_aead.h"

/* EVP takes int lengths; longer buffers go through in pieces. */
#define EVP_CHUNK (1 << 30)

/* Feed len bytes through the cipher (out NULL: AAD). */
static int feed(EVP_CIPHER_CTX *c, uint8_t *out, const uint8_t *in, size_t len)
{
    while (len > 0) {
        int n = len > EVP_CHUNK ? EVP_CHUNK : (int)len, outl = 0;
        if (!EVP_CipherUpdate(c, out, &outl, in, n) || (out && outl != n)) return 0;
        in += n;
        if (out) out += n;
        len -= (size_t)n;
    }
    return 1;
}

const char *evp_aead_reason(char *why, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, why, n);
    else snprintf(why, n, "no detail");
    ERR_clear_error();
    return why;
}

int evp_pool_init(evp_pool *p, const EVP_CIPHER *cipher)
{
    p->cipher = cipher;
    p->n = 0;
    return pthread_mutex_init(&p->mu, NULL) ? -1 : 0;
}

void evp_pool_fini(evp_pool *p)
{
    while (p->n > 0) EVP_CIPHER_CTX_free(p->free[--p->n]);
    pthread_mutex_destroy(&p->mu);
}

/* A context set up for p's cipher (its previous key still inside). */
static EVP_CIPHER_CTX *ctx_get(evp_pool *p)
{
    EVP_CIPHER_CTX *c = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->n > 0) c = p->free[--p->n];
    pthread_mutex_unlock(&p->mu);
    if (c) return c;
    c = EVP_CIPHER_CTX_new();
    if (c && !EVP_CipherInit_ex2(c, p->cipher, NULL, NULL, 1, NULL)) {
        EVP_CIPHER_CTX_free(c);
        c = NULL;
    }
    return c;
}

static void ctx_put(evp_pool *p, EVP_CIPHER_CTX *c)
{
    pthread_mutex_lock(&p->mu);
    if (p->n < EVP_POOL_MAX) {
        p->free[p->n++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    EVP_CIPHER_CTX_free(c); /* NULL-safe; wipes the expanded key */
}

int evp_aead(evp_pool *p, int enc, const uint8_t *key, const uint8_t *iv, const uint8_t *ad,
             size_t ad_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = ctx_get(p);
    if (!c) return EVP_AEAD_FAIL;
    uint8_t last[16];
    int outl = 0, rc = EVP_AEAD_OK;
    /* Opening: the expected tag goes in with the key, as a parameter (a
     * separate EVP_CIPHER_CTX_ctrl is converted to the same parameter by
     * name lookups, a measurable part of an uncached page read). */
    OSSL_PARAM ps[2] = { OSSL_PARAM_END, OSSL_PARAM_END };
    if (!enc) ps[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, EVP_AEAD_TAG_BYTES);
    if (!EVP_CipherInit_ex2(c, NULL, key, iv, enc, ps) ||
        !feed(c, NULL, ad, ad_len) || !feed(c, out, in, len)) {
        rc = EVP_AEAD_FAIL;
    } else if (!EVP_CipherFinal_ex(c, last, &outl)) {
        /* for opening, the final step is where the tag is compared */
        if (!enc) ERR_clear_error();
        rc = enc ? EVP_AEAD_FAIL : EVP_AEAD_AUTH;
    } else if (enc && !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, EVP_AEAD_TAG_BYTES, tag)) {
        rc = EVP_AEAD_FAIL;
    }
    /* a context that failed midway is not trusted again */
    if (rc == EVP_AEAD_FAIL) EVP_CIPHER_CTX_free(c);
    else ctx_put(p, c);
    if (rc != EVP_AEAD_OK && !enc && len) OPENSSL_cleanse(out, len);
    return rc;
}
