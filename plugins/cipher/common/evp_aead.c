#include <openssl/crypto.h>
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

int evp_aead(const EVP_CIPHER *cipher, int enc, const uint8_t *key, const uint8_t *iv,
             const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t len, uint8_t *out,
             uint8_t *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) return EVP_AEAD_FAIL;
    uint8_t last[16];
    int outl = 0, rc = EVP_AEAD_OK;
    if (!EVP_CipherInit_ex2(c, cipher, key, iv, enc, NULL) ||
        (!enc && !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, EVP_AEAD_TAG_BYTES, tag)) ||
        !feed(c, NULL, ad, ad_len) || !feed(c, out, in, len)) {
        rc = EVP_AEAD_FAIL;
    } else if (!EVP_CipherFinal_ex(c, last, &outl)) {
        /* for opening, the final step is where the tag is compared */
        if (!enc) ERR_clear_error();
        rc = enc ? EVP_AEAD_FAIL : EVP_AEAD_AUTH;
    } else if (enc && !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, EVP_AEAD_TAG_BYTES, tag)) {
        rc = EVP_AEAD_FAIL;
    }
    EVP_CIPHER_CTX_free(c); /* also wipes the expanded key */
    if (rc != EVP_AEAD_OK && !enc && len) OPENSSL_cleanse(out, len);
    return rc;
}
