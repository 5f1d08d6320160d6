#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "base/env.h"
#include "config/opts.h"
#include "crypto/keys.h"

static int decode_raw(ts_env *env, const char *s, uint8_t *out, size_t want, const char *what)
{
    size_t bin = 0;
    const char *end = NULL;
    if (strncmp(s, "hex:", 4) == 0) {
        if (sodium_hex2bin(out, want, s + 4, strlen(s + 4), NULL, &bin, &end) != 0 ||
            *end || bin != want)
            return tsenv_error(env, TS_ERR_CONFIG, "%s: expected %zu bytes as hex (%zu digits)",
                               what, want, want * 2);
        return TS_OK;
    }
    if (strncmp(s, "base64:", 7) == 0) {
        if (sodium_base642bin(out, want, s + 7, strlen(s + 7), NULL, &bin, &end,
                              sodium_base64_VARIANT_ORIGINAL) != 0 || *end || bin != want)
            return tsenv_error(env, TS_ERR_CONFIG, "%s: expected %zu bytes as base64", what, want);
        return TS_OK;
    }
    return tsenv_error(env, TS_ERR_CONFIG, "%s: expected \"hex:...\", \"base64:...\" or \"env:VAR\"",
                       what);
}

int tskey_decode(ts_env *env, const char *spec, uint8_t *out, size_t want)
{
    if (strncmp(spec, "env:", 4) == 0) {
        const char *v = getenv(spec + 4);
        if (!v || !*v)
            return tsenv_error(env, TS_ERR_KEY, "cipher.key: environment variable %s is not set",
                               spec + 4);
        if (strncmp(v, "hex:", 4) == 0 || strncmp(v, "base64:", 7) == 0)
            return decode_raw(env, v, out, want, spec);
        char buf[8 + 2 * TSKEY_MAX + 1];
        snprintf(buf, sizeof buf, "hex:%s", v);
        int rc = decode_raw(env, buf, out, want, spec);
        sodium_memzero(buf, sizeof buf);
        return rc;
    }
    return decode_raw(env, spec, out, want, "cipher.key");
}

/* Keyring layout, little endian:
 *   0  magic "TSKEYRG1"           8
 *   8  version (1)                4
 *  12  kdf: 0 raw key, 1 argon2id 4
 *  16  argon2 opslimit            8
 *  24  argon2 memlimit            8
 *  32  salt                       16
 *  48  cipher module name         64 (NUL padded)
 * 112  key length                 4
 * 116  wrapped key                key length + overhead
 *  ..  key check                  32  BLAKE2b-256 keyed by the data key
 * A keyring is written atomically (tmp, sync, rename, sync_dir). */
#define KR_MAGIC "TSKEYRG1"
#define KR_HEAD 116
#define KR_CHECK 32
static const uint8_t kr_ad[] = "tostore keyring v1";
static const uint8_t kr_check_msg[] = "tostore key check v1";

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

static int make_state(ts_env *env, const tsreg_module *mod, const json_t *opts,
                      const uint8_t *key, size_t klen, void **state)
{
    const ts_cipher_vtab *vt = mod->vtab;
    ts_module_args a = { sizeof a, tsenv_host(), env, tsopts_wrap(opts), mod->plugin_state };
    tsenv_clear(env);
    int rc = vt->create(&a, key, klen, state);
    if (rc) {
        if (!*tsenv_errmsg(env)) tsenv_error(env, rc, "create failed");
        if (rc == TS_ERR_CONFIG || rc == TS_ERR_VALIDATION)
            tsenv_error_prefix(env, "cipher.options");
        else
            tsenv_error_prefix(env, "cipher '%s'", mod->desc.name);
    }
    return rc;
}

/* Key-encryption key from the user's key or passphrase. */
static int user_kek(ts_env *env, const tskey_user *u, uint32_t kdf, const uint8_t *salt,
                    uint64_t ops, uint64_t mem, uint8_t *kek, size_t klen)
{
    if (kdf == 0) {
        if (!u->key)
            return tsenv_error(env, TS_ERR_KEY,
                               "the database was encrypted with a raw key; cipher.key is needed");
        return tskey_decode(env, u->key, kek, klen);
    }
    if (!u->passphrase)
        return tsenv_error(env, TS_ERR_KEY,
                           "the database was encrypted with a passphrase; cipher.passphrase is needed");
    if (crypto_pwhash(kek, klen, u->passphrase, strlen(u->passphrase), salt, ops, (size_t)mem,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return tsenv_error(env, TS_ERR_NOMEM, "Argon2id: out of memory");
    return TS_OK;
}

int tskey_present(tsstore *st, int *present)
{
    return st->vt->exists(st->h, TSKEY_FILE, present);
}

uint64_t tskey_id(const uint8_t *dkey, size_t klen)
{
    uint8_t check[KR_CHECK];
    crypto_generichash(check, KR_CHECK, kr_check_msg, sizeof kr_check_msg, dkey, klen);
    return get64(check) | 1; /* never 0: 0 means "plain" in the file header */
}

/* Keyring bytes wrapping dkey under the user's key or passphrase. */
static int build_keyring(ts_env *env, const tsreg_module *mod, const json_t *opts,
                         const tskey_user *u, const uint8_t *dkey, uint8_t **out, size_t *len)
{
    const ts_cipher_vtab *vt = mod->vtab;
    size_t klen = vt->key_bytes, wl = klen + vt->overhead;
    size_t total = KR_HEAD + wl + KR_CHECK;
    uint8_t *buf = calloc(1, total);
    uint8_t kek[TSKEY_MAX];
    void *kst = NULL;
    if (!buf) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    memcpy(buf, KR_MAGIC, 8);
    put32(buf + 8, 1);
    uint32_t kdf = u->passphrase ? 1 : 0;
    put32(buf + 12, kdf);
    uint64_t ops = crypto_pwhash_OPSLIMIT_INTERACTIVE, mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    put64(buf + 16, kdf ? ops : 0);
    put64(buf + 24, kdf ? mem : 0);
    randombytes_buf(buf + 32, 16);
    snprintf((char *)buf + 48, 64, "%s", mod->desc.name);
    put32(buf + 112, (uint32_t)klen);

    int rc = user_kek(env, u, kdf, buf + 32, ops, mem, kek, klen);
    if (!rc) rc = make_state(env, mod, opts, kek, klen, &kst);
    if (!rc) {
        rc = vt->seal(kst, kr_ad, sizeof kr_ad, dkey, klen, buf + KR_HEAD);
        if (rc) tsenv_error(env, rc, "cipher '%s': sealing the data key failed", mod->desc.name);
    }
    if (!rc)
        crypto_generichash(buf + KR_HEAD + wl, KR_CHECK, kr_check_msg, sizeof kr_check_msg,
                           dkey, klen);
    if (kst) vt->destroy(kst);
    sodium_memzero(kek, sizeof kek);
    if (rc) { free(buf); return rc; }
    *out = buf;
    *len = total;
    return TS_OK;
}

static int create_keyring(ts_env *env, tsstore *st, const tsreg_module *mod, const json_t *opts,
                          const tskey_user *u, uint8_t *dkey)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    randombytes_buf(dkey, ((const ts_cipher_vtab *)mod->vtab)->key_bytes);
    int rc = build_keyring(env, mod, opts, u, dkey, &buf, &len);
    if (!rc) {
        rc = tsstore_put_atomic(st, TSKEY_FILE, buf, len);
        if (rc) tsenv_error_prefix(env, "writing %s", TSKEY_FILE);
    }
    free(buf);
    return rc;
}

int tskey_file_id(tsstore *st, const char *name, int *present, uint64_t *keyid)
{
    void *raw = NULL;
    size_t len = 0;
    *present = 0;
    *keyid = 0;
    int rc = tsstore_get(st, name, &raw, &len, 1 << 16);
    if (rc == TS_ERR_NOT_FOUND) return TS_OK;
    if (rc) return rc;
    *present = 1;
    if (len >= KR_HEAD + KR_CHECK && memcmp(raw, KR_MAGIC, 8) == 0)
        *keyid = get64((uint8_t *)raw + len - KR_CHECK) | 1;
    free(raw);
    return TS_OK;
}

static int read_keyring(ts_env *env, tsstore *st, const tsreg_module *mod, const json_t *opts,
                        const tskey_user *u, uint8_t *dkey)
{
    const ts_cipher_vtab *vt = mod->vtab;
    void *raw = NULL;
    size_t len = 0;
    int rc = tsstore_get(st, TSKEY_FILE, &raw, &len, 1 << 16);
    if (rc) return tsenv_error(env, rc, "cannot read %s", TSKEY_FILE);
    uint8_t *buf = raw, kek[TSKEY_MAX], check[KR_CHECK];
    void *kst = NULL;
    if (len < KR_HEAD || memcmp(buf, KR_MAGIC, 8) != 0) {
        rc = tsenv_error(env, TS_ERR_CORRUPT, "%s: not a tostore keyring", TSKEY_FILE);
        goto out;
    }
    if (get32(buf + 8) != 1) {
        rc = tsenv_error(env, TS_ERR_FORMAT, "%s: keyring version %u is not supported",
                         TSKEY_FILE, get32(buf + 8));
        goto out;
    }
    char name[65];
    memcpy(name, buf + 48, 64);
    name[64] = '\0';
    if (strcmp(name, mod->desc.name) != 0) {
        rc = tsenv_error(env, TS_ERR_KEY,
                         "the database is encrypted with cipher '%s', not '%s'", name,
                         mod->desc.name);
        goto out;
    }
    size_t klen = get32(buf + 112), wl = klen + vt->overhead;
    uint32_t kdf = get32(buf + 12);
    if (klen != vt->key_bytes || len != KR_HEAD + wl + KR_CHECK || kdf > 1) {
        rc = tsenv_error(env, TS_ERR_CORRUPT, "%s: inconsistent keyring", TSKEY_FILE);
        goto out;
    }
    uint64_t ops = get64(buf + 16), mem = get64(buf + 24);
    /* Stored Argon2id limits must be sane: damage must not turn into an
     * allocation failure or an open that runs for hours. */
    if (kdf == 1 && (ops < crypto_pwhash_OPSLIMIT_MIN || ops > 4 * crypto_pwhash_OPSLIMIT_SENSITIVE ||
                     mem < crypto_pwhash_MEMLIMIT_MIN || mem > 4 * (uint64_t)crypto_pwhash_MEMLIMIT_SENSITIVE)) {
        rc = tsenv_error(env, TS_ERR_CORRUPT, "%s: invalid Argon2id parameters", TSKEY_FILE);
        goto out;
    }
    rc = user_kek(env, u, kdf, buf + 32, ops, mem, kek, klen);
    if (!rc) rc = make_state(env, mod, opts, kek, klen, &kst);
    int mismatch = 0;
    if (!rc && vt->open(kst, kr_ad, sizeof kr_ad, buf + KR_HEAD, wl, dkey) != TS_OK) mismatch = 1;
    if (!rc && !mismatch) {
        crypto_generichash(check, KR_CHECK, kr_check_msg, sizeof kr_check_msg, dkey, klen);
        if (sodium_memcmp(check, buf + KR_HEAD + wl, KR_CHECK) != 0) mismatch = 1;
    }
    if (mismatch)
        rc = tsenv_error(env, TS_ERR_KEY, "wrong key: the key does not open this database "
                         "(or %s is damaged)", TSKEY_FILE);
out:
    if (kst) vt->destroy(kst);
    sodium_memzero(kek, sizeof kek);
    free(raw);
    return rc;
}

static int cipher_new(ts_env *env, const tsreg_module *mod, const json_t *opts,
                      const uint8_t *dkey, tscipher **out)
{
    const ts_cipher_vtab *vt = mod->vtab;
    tscipher *c = calloc(1, sizeof *c);
    if (!c) return tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    c->vt = vt;
    c->mod = mod;
    c->key_len = vt->key_bytes;
    c->keyid = tskey_id(dkey, c->key_len);
    c->key = sodium_malloc(c->key_len);
    int rc = c->key ? make_state(env, mod, opts, dkey, c->key_len, &c->state)
                    : tsenv_error(env, TS_ERR_NOMEM, "out of memory");
    if (rc) {
        if (c->key) sodium_free(c->key);
        free(c);
        return rc;
    }
    memcpy(c->key, dkey, c->key_len);
    sodium_mprotect_readonly(c->key);
    *out = c;
    return TS_OK;
}

int tskey_open(ts_env *env, tsstore *st, const tsreg_module *mod, const json_t *opts,
               const tskey_user *u, tscipher **out)
{
    *out = NULL;
    uint8_t dkey[TSKEY_MAX];
    int present = 0;
    int rc = tskey_present(st, &present);
    if (rc) return rc;
    rc = present ? read_keyring(env, st, mod, opts, u, dkey)
                 : create_keyring(env, st, mod, opts, u, dkey);
    if (!rc) rc = cipher_new(env, mod, opts, dkey, out);
    sodium_memzero(dkey, sizeof dkey);
    return rc;
}

int tskey_prepare(ts_env *env, const tsreg_module *mod, const json_t *opts, const tskey_user *u,
                  const uint8_t *dkey_in, uint8_t **ring, size_t *ring_len, tscipher **out)
{
    uint8_t dkey[TSKEY_MAX];
    size_t klen = ((const ts_cipher_vtab *)mod->vtab)->key_bytes;
    *out = NULL;
    if (dkey_in) memcpy(dkey, dkey_in, klen);
    else randombytes_buf(dkey, klen);
    int rc = build_keyring(env, mod, opts, u, dkey, ring, ring_len);
    if (!rc) {
        rc = cipher_new(env, mod, opts, dkey, out);
        if (rc) { free(*ring); *ring = NULL; }
    }
    sodium_memzero(dkey, sizeof dkey);
    return rc;
}

void tscipher_free(tscipher *c)
{
    if (!c) return;
    c->vt->destroy(c->state);
    sodium_free(c->key); /* wipes */
    free(c);
}
