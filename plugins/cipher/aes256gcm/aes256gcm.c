/*
 * aes256gcm - cipher module: AES-256-GCM from OpenSSL 3, one subkey per seal.
 *
 * Sealed layout, len + 44 bytes:
 *
 *     ciphertext (len) || salt (16) || nonce (12) || tag (16)
 *
 * Ciphertext first so that sealing and opening in place (out == in) only
 * append or ignore the trailer; nothing moves.
 *
 * Why a subkey per seal: GCM's 96-bit nonce is too short to draw at random
 * for the life of a database key (NIST SP 800-38D caps random nonces at 2^32
 * messages per key), and a repeated (key, nonce) pair leaks the XOR of two
 * plaintexts and the authentication key.  Counters are no option either: a
 * crash or restore could replay them.  So every seal draws a random 16-byte
 * salt and a random 12-byte nonce and encrypts under
 *
 *     subkey = HKDF-SHA256(IKM = key, salt, info = "tostore-aes256gcm-v1")
 *
 * A subkey then encrypts one message, and reuse needs a repeated 128-bit
 * salt *and* a repeated 96-bit nonce.  The caller's associated data is the
 * GCM AAD; salt and nonce need no extra authentication, since changing
 * either changes the subkey or the nonce and so the tag.
 *
 * HKDF is written out as two HMACs over a fetched SHA-256 (RFC 5869 with
 * one output block): OpenSSL's EVP_KDF does the same work behind a
 * provider and parameter parsing that cost ~10x the hashing itself, which
 * is most of an uncached page read (docs/benchmarks.md Part 1, f3).
 *
 * Thread safety: the state holds the key and two fetched OpenSSL algorithm
 * objects, read-only after create, and a locked pool of cipher contexts;
 * every call makes its own digest context.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <tostore/cipher.h>
#include "../common/evp_aead.h"

#define AG_NAME    "aes256gcm"
#define KEY_BYTES  32
#define SALT_BYTES 16
#define IV_BYTES   12
#define TAG_BYTES  16
#define OVERHEAD   (SALT_BYTES + IV_BYTES + TAG_BYTES) /* 44 */
/* SP 800-38D: at most 2^39 - 256 bits of plaintext per GCM invocation. */
#define GCM_MAX_BYTES ((UINT64_C(1) << 36) - 32)
#define SHA256_BLOCK 64
#define SHA256_BYTES 32

static const char hkdf_info[] = "tostore-aes256gcm-v1";

typedef struct ag_state {
    const ts_host *host;
    ts_env        *env;
    EVP_CIPHER    *aes;  /* fetched once: a fetch per call costs a locked lookup */
    EVP_MD        *sha256;
    evp_pool       ctxs; /* AES-256-GCM contexts for reuse */
    int            pool_ok;
    uint8_t        key[KEY_BYTES];
} ag_state;

/* Report an OpenSSL failure with its first queued reason, and leave the
 * thread's OpenSSL error queue empty for whoever uses OpenSSL next. */
static int ossl_fail(const ag_state *st, int code, const char *what)
{
    char why[256];
    return st->host->error(st->env, code, AG_NAME ": %s failed: %s", what,
                           evp_aead_reason(why, sizeof why));
}

/* ts_module_args must at least reach the env field we keep. */
static int args_usable(const ts_module_args *a)
{
    return a && a->struct_size >= offsetof(ts_module_args, env) + sizeof a->env && a->host;
}

static void ag_destroy(void *state)
{
    ag_state *st = state;
    if (!st) return;
    OPENSSL_cleanse(st->key, sizeof st->key);
    if (st->pool_ok) evp_pool_fini(&st->ctxs);
    EVP_CIPHER_free(st->aes);
    EVP_MD_free(st->sha256);
    st->host->free(st);
}

static int ag_create(const ts_module_args *args, const uint8_t *key, size_t key_len,
                     void **state_out)
{
    if (!args_usable(args) || !state_out) return TS_ERR_INVALID;
    const ts_host *h = args->host;
    if (!key || key_len != KEY_BYTES)
        return h->error(args->env, TS_ERR_INVALID, AG_NAME ": the key must be %d bytes, not %zu",
                        KEY_BYTES, key_len);
    ag_state *st = h->calloc(1, sizeof *st);
    if (!st) return h->error(args->env, TS_ERR_NOMEM, AG_NAME ": out of memory");
    st->host = h;
    st->env = args->env;
    st->aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!st->aes || !st->sha256) {
        int rc = ossl_fail(st, TS_ERR_UNSUPPORTED, "fetching AES-256-GCM and HKDF");
        ag_destroy(st);
        return rc;
    }
    if (evp_pool_init(&st->ctxs, st->aes)) {
        ag_destroy(st);
        return h->error(args->env, TS_ERR_RESOURCE, AG_NAME ": cannot create a mutex");
    }
    st->pool_ok = 1;
    memcpy(st->key, key, KEY_BYTES);
    *state_out = st;
    return TS_OK;
}

/* HMAC-SHA256(k, m1 || m2) on c (RFC 2104; k at most one block). */
static int hmac_sha256(EVP_MD_CTX *c, const EVP_MD *md, const uint8_t *k, size_t k_len,
                       const uint8_t *m1, size_t m1_len, const uint8_t *m2, size_t m2_len,
                       uint8_t out[SHA256_BYTES])
{
    uint8_t pad[SHA256_BLOCK];
    unsigned outl = 0;
    memset(pad, 0x36, sizeof pad);
    for (size_t i = 0; i < k_len; i++) pad[i] ^= k[i];
    int ok = EVP_DigestInit_ex2(c, md, NULL) && EVP_DigestUpdate(c, pad, sizeof pad) &&
             EVP_DigestUpdate(c, m1, m1_len) && EVP_DigestUpdate(c, m2, m2_len) &&
             EVP_DigestFinal_ex(c, out, &outl);
    for (size_t i = 0; i < sizeof pad; i++) pad[i] ^= 0x36 ^ 0x5c;
    ok = ok && EVP_DigestInit_ex2(c, md, NULL) && EVP_DigestUpdate(c, pad, sizeof pad) &&
         EVP_DigestUpdate(c, out, SHA256_BYTES) && EVP_DigestFinal_ex(c, out, &outl);
    OPENSSL_cleanse(pad, sizeof pad);
    return ok;
}

/* subkey = HKDF-SHA256(key, salt, info), extract and expand (RFC 5869):
 * PRK = HMAC(salt, key); subkey = HMAC(PRK, info || 0x01). */
static int derive_subkey(const ag_state *st, const uint8_t *salt, uint8_t subkey[KEY_BYTES])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) return ossl_fail(st, TS_ERR_NOMEM, "digest context");
    static const uint8_t one = 1;
    uint8_t prk[SHA256_BYTES];
    int ok = hmac_sha256(c, st->sha256, salt, SALT_BYTES, st->key, KEY_BYTES, NULL, 0, prk) &&
             hmac_sha256(c, st->sha256, prk, sizeof prk, (const uint8_t *)hkdf_info,
                         sizeof hkdf_info - 1, &one, 1, subkey);
    OPENSSL_cleanse(prk, sizeof prk);
    EVP_MD_CTX_free(c);
    return ok ? TS_OK : ossl_fail(st, TS_ERR_UNKNOWN, "HKDF-SHA256");
}

/* One AES-256-GCM pass under subkey.  Sealing writes the tag; opening
 * checks it and returns TS_ERR_AUTH on mismatch (out wiped). */
static int gcm(ag_state *st, int enc, const uint8_t *subkey, const uint8_t *iv,
               const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t len, uint8_t *out,
               uint8_t *tag)
{
    int rc = evp_aead(&st->ctxs, enc, subkey, iv, ad, ad_len, in, len, out, tag);
    if (rc == EVP_AEAD_AUTH)
        return st->host->error(st->env, TS_ERR_AUTH,
                               AG_NAME ": authentication failed (data changed, wrong key or "
                               "wrong associated data)");
    if (rc != EVP_AEAD_OK)
        return ossl_fail(st, TS_ERR_UNKNOWN,
                         enc ? "AES-256-GCM encryption" : "AES-256-GCM decryption");
    return TS_OK;
}

/* NULL is accepted only for empty buffers. */
static int bad_buffers(const ag_state *st, const uint8_t *ad, size_t ad_len, const uint8_t *in,
                       size_t in_len, const uint8_t *out, size_t out_len)
{
    if ((!ad && ad_len) || (!in && in_len) || (!out && out_len))
        return st->host->error(st->env, TS_ERR_INVALID, AG_NAME ": NULL buffer");
    return TS_OK;
}

static int ag_seal(void *state, const uint8_t *ad, size_t ad_len, const uint8_t *in,
                   size_t len, uint8_t *out)
{
    ag_state *st = state;
    if (!st) return TS_ERR_INVALID;
    if ((uint64_t)len > GCM_MAX_BYTES || len > SIZE_MAX - OVERHEAD)
        return st->host->error(st->env, TS_ERR_INVALID, AG_NAME ": %zu bytes is too long", len);
    int rc = bad_buffers(st, ad, ad_len, in, len, out, len + OVERHEAD);
    if (rc) return rc;

    /* The trailer sits behind the plaintext, so writing salt and nonce
     * first clobbers nothing even in place. */
    uint8_t *salt = out + len, *iv = salt + SALT_BYTES, *tag = iv + IV_BYTES;
    rc = st->host->random(st->env, salt, SALT_BYTES + IV_BYTES);
    if (rc != TS_OK) return st->host->error(st->env, rc, AG_NAME ": no random salt and nonce");
    uint8_t subkey[KEY_BYTES];
    rc = derive_subkey(st, salt, subkey);
    if (rc == TS_OK) rc = gcm(st, 1, subkey, iv, ad, ad_len, in, len, out, tag);
    OPENSSL_cleanse(subkey, sizeof subkey);
    return rc;
}

static int ag_open(void *state, const uint8_t *ad, size_t ad_len, const uint8_t *in,
                   size_t len, uint8_t *out)
{
    ag_state *st = state;
    if (!st) return TS_ERR_INVALID;
    /* Too short for the trailer: the sealed bytes were cut. */
    if (len < OVERHEAD)
        return st->host->error(st->env, TS_ERR_AUTH,
                               AG_NAME ": sealed data of %zu bytes is shorter than %d", len,
                               OVERHEAD);
    size_t n = len - OVERHEAD;
    int rc = bad_buffers(st, ad, ad_len, in, len, out, n);
    if (rc) return rc;

    const uint8_t *salt = in + n, *iv = salt + SALT_BYTES;
    uint8_t tag[TAG_BYTES], subkey[KEY_BYTES];
    memcpy(tag, iv + IV_BYTES, TAG_BYTES);
    rc = derive_subkey(st, salt, subkey);
    if (rc == TS_OK) rc = gcm(st, 0, subkey, iv, ad, ad_len, in, n, out, tag);
    OPENSSL_cleanse(subkey, sizeof subkey);
    return rc;
}

static const ts_cipher_vtab ag_vtab = {
    .struct_size = sizeof(ts_cipher_vtab),
    .key_bytes = KEY_BYTES,
    .overhead = OVERHEAD,
    .create = ag_create,
    .destroy = ag_destroy,
    .seal = ag_seal,
    .open = ag_open,
};

static const ts_module ag_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_CIPHER,
    .name = AG_NAME,
    .version = "1.0.0",
    .flags = TS_MODULE_THREAD_SAFE,
    .vtab_size = sizeof(ts_cipher_vtab),
    .vtab = &ag_vtab,
};

static const ts_module *const ag_modules[] = { &ag_module, NULL };

static const ts_plugin ag_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = AG_NAME,
    .version = "1.0.0",
    .init = NULL,
    .fini = NULL,
    .modules = ag_modules,
};

TS_PLUGIN_DEFINE(ag_plugin)
