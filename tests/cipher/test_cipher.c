/*
 * The cipher modules, loaded through the kernel registry as the kernel
 * loads them.  One set of tests runs against every module; the AEAD checks
 * (tamper, wrong key, nonce uniqueness) run against the authenticated ones
 * only, since xor cannot authenticate by design.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <tostore/cipher.h>
#include "base/env.h"
#include "plugin/registry.h"
#include "tsupport.h"

/* The AEAD modules first: loop tests over [0, N_AEAD) skip xor. */
static const struct cipher_info {
    const char *name;
    uint32_t    overhead;
    uint32_t    nonce_bytes; /* random bytes per seal (nonce, or salt + nonce) */
    uint32_t    field2;      /* where a second random field starts (aes: the nonce) */
    int         insecure;
} CIPHERS[] = {
    { "chacha20poly1305", 40, 24,  0, 0 },
    { "aes256gcm",        44, 28, 16, 0 },
    { "xor",               0,  0,  0, 1 },
};
#define N_ALL  3
#define N_AEAD 2
#define TAG_BYTES 16
#define KEY_LEN 32

typedef struct fx {
    ts_env                env;
    tsreg                *reg;
    const tsreg_module   *rec;
    const ts_cipher_vtab *vt;
    void                 *st;
    const struct cipher_info *ci;
} fx;

static void test_key(uint8_t key[KEY_LEN], int variant)
{
    for (int i = 0; i < KEY_LEN; i++) key[i] = (uint8_t)(i * 7 + 1);
    key[KEY_LEN - 1] ^= (uint8_t)variant; /* variant 1: one bit off */
}

static ts_module_args fx_args(fx *f)
{
    ts_module_args a = { sizeof(ts_module_args), tsenv_host(), &f->env, NULL,
                         f->rec->plugin_state };
    return a;
}

static int fx_create(fx *f, int key_variant, void **st)
{
    uint8_t key[KEY_LEN];
    test_key(key, key_variant);
    ts_module_args a = fx_args(f);
    return f->vt->create(&a, key, sizeof key, st);
}

static void fx_load(fx *f, int i)
{
    memset(f, 0, sizeof *f);
    f->ci = &CIPHERS[i];
    ck_assert_int_eq(tsenv_init(&f->env), TS_OK);
    ck_assert_int_eq(tsreg_new(&f->env, &f->reg), TS_OK);
    int rc = tsreg_load(f->reg, f->ci->name, tsreg_default_dirs(f->reg));
    ck_assert_msg(rc == TS_OK, "loading %s: %d %s", f->ci->name, rc, tsenv_errmsg(&f->env));
    f->rec = tsreg_lookup(f->reg, TS_KIND_CIPHER, f->ci->name);
    ck_assert_ptr_nonnull(f->rec);
    f->vt = f->rec->vtab;
    ck_assert_int_eq(f->vt->key_bytes, KEY_LEN);
    ck_assert_int_eq(f->vt->overhead, f->ci->overhead);
    rc = fx_create(f, 0, &f->st);
    ck_assert_msg(rc == TS_OK, "create %s: %d %s", f->ci->name, rc, tsenv_errmsg(&f->env));
}

static void fx_free(fx *f)
{
    f->vt->destroy(f->st);
    tsreg_free(f->reg);
    tsenv_destroy(&f->env);
}

static uint8_t *rand_bytes(size_t n)
{
    uint8_t *p = malloc(n + 1);
    ck_assert_ptr_nonnull(p);
    randombytes_buf(p, n);
    return p;
}

/* Seal len bytes of pt into a new buffer of exactly len + overhead bytes. */
static uint8_t *seal_new(fx *f, const uint8_t *ad, size_t ad_len, const uint8_t *pt, size_t len)
{
    uint8_t *s = malloc(len + f->vt->overhead + 1);
    ck_assert_ptr_nonnull(s);
    int rc = f->vt->seal(f->st, ad, ad_len, pt, len, s);
    ck_assert_msg(rc == TS_OK, "%s seal: %d %s", f->ci->name, rc, tsenv_errmsg(&f->env));
    return s;
}

/* Open sealed (len + overhead bytes) into scratch; returns the status. */
static int open_to(fx *f, void *st, const uint8_t *ad, size_t ad_len, const uint8_t *sealed,
                   size_t sealed_len, uint8_t *scratch)
{
    return f->vt->open(st, ad, ad_len, sealed, sealed_len, scratch);
}

static const uint8_t AD[12] = { 'p', 'g', 0, 0, 0, 7, 's', 'q', 0, 0, 0, 9 };
static const size_t SIZES[] = { 0, 1, 15, 16, 17, 4096, 65536 };
#define N_SIZES (sizeof SIZES / sizeof SIZES[0])
#define GUARD 32

/* ---- round trips (every module) ------------------------------------- */

static void roundtrip_out_of_place(fx *f, const uint8_t *pt, size_t len)
{
    size_t ov = f->vt->overhead;
    uint8_t *s = malloc(len + ov + GUARD), *d = malloc(len + GUARD);
    ck_assert(s && d);
    memset(s, 0xA5, len + ov + GUARD);
    memset(d, 0x5A, len + GUARD);
    ck_assert_int_eq(f->vt->seal(f->st, AD, sizeof AD, pt, len, s), TS_OK);
    for (size_t i = len + ov; i < len + ov + GUARD; i++)
        ck_assert_msg(s[i] == 0xA5, "%s seal wrote past len+overhead", f->ci->name);
    if (len >= 16) ck_assert_msg(memcmp(s, pt, len) != 0, "%s left plaintext", f->ci->name);
    ck_assert_int_eq(f->vt->open(f->st, AD, sizeof AD, s, len + ov, d), TS_OK);
    ck_assert_msg(len == 0 || memcmp(d, pt, len) == 0, "%s size %zu differs", f->ci->name, len);
    for (size_t i = len; i < len + GUARD; i++)
        ck_assert_msg(d[i] == 0x5A, "%s open wrote past len", f->ci->name);
    free(s);
    free(d);
}

static void roundtrip_in_place(fx *f, const uint8_t *pt, size_t len)
{
    size_t ov = f->vt->overhead;
    uint8_t *b = malloc(len + ov + 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, pt, len);
    ck_assert_int_eq(f->vt->seal(f->st, AD, sizeof AD, b, len, b), TS_OK);
    if (len >= 16) ck_assert(memcmp(b, pt, len) != 0);
    ck_assert_int_eq(f->vt->open(f->st, AD, sizeof AD, b, len + ov, b), TS_OK);
    ck_assert_msg(len == 0 || memcmp(b, pt, len) == 0, "%s in place, size %zu", f->ci->name,
                  len);
    free(b);
}

START_TEST(roundtrip)
{
    fx f;
    fx_load(&f, _i);
    for (size_t k = 0; k < N_SIZES; k++) {
        uint8_t *pt = rand_bytes(SIZES[k]);
        roundtrip_out_of_place(&f, pt, SIZES[k]);
        roundtrip_in_place(&f, pt, SIZES[k]);
        free(pt);
    }
    /* NULL buffers are fine when empty. */
    uint8_t s[64];
    ck_assert_int_eq(f.vt->seal(f.st, NULL, 0, NULL, 0, s), TS_OK);
    ck_assert_int_eq(f.vt->open(f.st, NULL, 0, s, f.vt->overhead, NULL), TS_OK);
    fx_free(&f);
}
END_TEST

/* A sealed buffer opened in place after an out-of-place seal and vice versa
 * (the kernel mixes both). */
START_TEST(roundtrip_mixed)
{
    fx f;
    fx_load(&f, _i);
    size_t len = 4096, ov = f.vt->overhead;
    uint8_t *pt = rand_bytes(len);
    uint8_t *s = seal_new(&f, AD, sizeof AD, pt, len);
    ck_assert_int_eq(f.vt->open(f.st, AD, sizeof AD, s, len + ov, s), TS_OK);
    ck_assert_mem_eq(s, pt, len);
    memcpy(s, pt, len);
    ck_assert_int_eq(f.vt->seal(f.st, AD, sizeof AD, s, len, s), TS_OK);
    uint8_t *d = malloc(len);
    ck_assert_int_eq(f.vt->open(f.st, AD, sizeof AD, s, len + ov, d), TS_OK);
    ck_assert_mem_eq(d, pt, len);
    free(d);
    free(s);
    free(pt);
    fx_free(&f);
}
END_TEST

START_TEST(descriptor_flags)
{
    fx f;
    fx_load(&f, _i);
    const ts_module *m = &f.rec->desc;
    ck_assert_uint_eq(m->kind, TS_KIND_CIPHER);
    ck_assert_str_eq(m->name, f.ci->name);
    ck_assert_str_eq(f.rec->plugin_name, f.ci->name);
    ck_assert_str_eq(m->version, "1.0.0");
    ck_assert_str_eq(f.rec->plugin_version, "1.0.0");
    ck_assert_msg(m->flags & TS_MODULE_THREAD_SAFE, "%s not thread-safe", f.ci->name);
    ck_assert_msg(!!(m->flags & TS_MODULE_INSECURE) == f.ci->insecure,
                  "%s: TS_MODULE_INSECURE is %s", f.ci->name,
                  (m->flags & TS_MODULE_INSECURE) ? "set" : "clear");
    fx_free(&f);
}
END_TEST

START_TEST(bad_key_length)
{
    fx f;
    fx_load(&f, _i);
    uint8_t key[KEY_LEN + 1] = { 0 };
    ts_module_args a = fx_args(&f);
    const size_t lens[] = { 0, 16, KEY_LEN - 1, KEY_LEN + 1 };
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        void *st = NULL;
        tsenv_clear(&f.env);
        ck_assert_int_eq(f.vt->create(&a, key, lens[k], &st), TS_ERR_INVALID);
        ck_assert_ptr_null(st);
        ck_assert_msg(tsenv_errmsg(&f.env) && *tsenv_errmsg(&f.env),
                      "%s reported no message", f.ci->name);
    }
    void *st = NULL;
    ck_assert_int_eq(f.vt->create(&a, NULL, KEY_LEN, &st), TS_ERR_INVALID);
    fx_free(&f);
}
END_TEST

START_TEST(null_buffers)
{
    fx f;
    fx_load(&f, _i);
    uint8_t buf[128] = { 0 };
    ck_assert_int_eq(f.vt->seal(f.st, NULL, 3, buf, 8, buf + 64), TS_ERR_INVALID);
    ck_assert_int_eq(f.vt->seal(f.st, AD, sizeof AD, NULL, 8, buf), TS_ERR_INVALID);
    ck_assert_int_eq(f.vt->seal(f.st, AD, sizeof AD, buf, 8, NULL), TS_ERR_INVALID);
    ck_assert_int_eq(f.vt->open(f.st, NULL, 3, buf, 60, buf + 64), TS_ERR_INVALID);
    ck_assert_int_eq(f.vt->open(f.st, AD, sizeof AD, buf, 60, NULL), TS_ERR_INVALID);
    fx_free(&f);
}
END_TEST

/* xor is deterministic: check it really transforms and is its own inverse. */
START_TEST(xor_obfuscates)
{
    fx f;
    fx_load(&f, 2);
    uint8_t z[256] = { 0 }, s1[256], s2[256];
    ck_assert_int_eq(f.vt->seal(f.st, NULL, 0, z, sizeof z, s1), TS_OK);
    /* The stream must not repeat with the key's 32-byte period. */
    ck_assert(memcmp(s1, s1 + KEY_LEN, KEY_LEN) != 0);
    size_t zeros = 0;
    for (size_t i = 0; i < sizeof s1; i++) zeros += s1[i] == 0;
    ck_assert_uint_lt(zeros, 16);
    void *other;
    ck_assert_int_eq(fx_create(&f, 1, &other), TS_OK);
    ck_assert_int_eq(f.vt->seal(other, NULL, 0, z, sizeof z, s2), TS_OK);
    ck_assert(memcmp(s1, s2, sizeof s1) != 0);
    /* Cannot authenticate: a changed byte still "opens". */
    s1[5] ^= 1;
    ck_assert_int_eq(f.vt->open(f.st, NULL, 0, s1, sizeof s1, s2), TS_OK);
    ck_assert_uint_eq(s2[5], 1);
    f.vt->destroy(other);
    fx_free(&f);
}
END_TEST

/* ---- authentication (AEAD modules) ---------------------------------- */

/* Every bit of byte pos flipped, one at a time, must fail to open. */
static void expect_flip_fails(fx *f, const uint8_t *s, size_t slen, size_t pos, uint8_t *tmp,
                              uint8_t *out, const char *what)
{
    for (int bit = 0; bit < 8; bit++) {
        size_t n = slen - f->vt->overhead;
        memcpy(tmp, s, slen);
        tmp[pos] ^= (uint8_t)(1u << bit);
        memset(out, 0xEE, n);
        int rc = open_to(f, f->st, AD, sizeof AD, tmp, slen, out);
        ck_assert_msg(rc == TS_ERR_AUTH, "%s: flipped bit %d of %s byte %zu: got %d",
                      f->ci->name, bit, what, pos, rc);
        /* No unauthenticated plaintext may be left behind (docs/ciphers.md). */
        for (size_t k = 0; k < n; k++)
            ck_assert_msg(out[k] == 0, "%s: output byte %zu not cleared", f->ci->name, k);
    }
}

START_TEST(tamper_sealed_bytes)
{
    fx f;
    fx_load(&f, _i);
    const size_t lens[] = { 0, 100 };
    size_t ov = f.vt->overhead, nb = f.ci->nonce_bytes;
    for (size_t k = 0; k < 2; k++) {
        size_t len = lens[k], slen = len + ov;
        uint8_t *pt = rand_bytes(len), *s = seal_new(&f, AD, sizeof AD, pt, len);
        uint8_t *tmp = malloc(slen), *out = malloc(len + 1);
        ck_assert(tmp && out);
        /* Control: untouched bytes open. */
        ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, s, slen, out), TS_OK);
        if (len) {
            expect_flip_fails(&f, s, slen, 0, tmp, out, "first ciphertext");
            expect_flip_fails(&f, s, slen, len / 2, tmp, out, "middle ciphertext");
            expect_flip_fails(&f, s, slen, len - 1, tmp, out, "last ciphertext");
        }
        for (size_t p = len; p < len + nb; p++)
            expect_flip_fails(&f, s, slen, p, tmp, out, "nonce/salt");
        for (size_t p = len + nb; p < slen; p++)
            expect_flip_fails(&f, s, slen, p, tmp, out, "tag");
        ck_assert_uint_eq(nb + TAG_BYTES, ov);
        free(tmp);
        free(out);
        free(s);
        free(pt);
    }
    fx_free(&f);
}
END_TEST

START_TEST(tamper_length)
{
    fx f;
    fx_load(&f, _i);
    size_t len = 64, ov = f.vt->overhead;
    uint8_t *pt = rand_bytes(len), *s = seal_new(&f, AD, sizeof AD, pt, len);
    uint8_t *big = malloc(len + ov + 1), out[128];
    memcpy(big, s, len + ov);
    big[len + ov] = 0;
    ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, s, len + ov - 1, out), TS_ERR_AUTH);
    ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, s + 1, len + ov - 1, out), TS_ERR_AUTH);
    ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, big, len + ov + 1, out), TS_ERR_AUTH);
    ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, s, ov - 1, out), TS_ERR_AUTH);
    ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, s, 0, out), TS_ERR_AUTH);
    free(big);
    free(s);
    free(pt);
    fx_free(&f);
}
END_TEST

START_TEST(tamper_ad)
{
    fx f;
    fx_load(&f, _i);
    size_t len = 100, slen = len + f.vt->overhead;
    uint8_t *pt = rand_bytes(len), *s = seal_new(&f, AD, sizeof AD, pt, len);
    uint8_t ad[sizeof AD + 1], out[100];
    for (size_t p = 0; p < sizeof AD; p++) {
        memcpy(ad, AD, sizeof AD);
        ad[p] ^= (uint8_t)(1u << (p % 8));
        ck_assert_msg(open_to(&f, f.st, ad, sizeof AD, s, slen, out) == TS_ERR_AUTH,
                      "%s: changed AD byte %zu accepted", f.ci->name, p);
    }
    memcpy(ad, AD, sizeof AD);
    ad[sizeof AD] = 0;
    ck_assert_int_eq(open_to(&f, f.st, ad, sizeof AD - 1, s, slen, out), TS_ERR_AUTH);
    ck_assert_int_eq(open_to(&f, f.st, ad, sizeof AD + 1, s, slen, out), TS_ERR_AUTH);
    ck_assert_int_eq(open_to(&f, f.st, NULL, 0, s, slen, out), TS_ERR_AUTH);
    ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, s, slen, out), TS_OK);
    ck_assert_mem_eq(out, pt, len);
    /* Sealed without AD, opened with some. */
    uint8_t *s0 = seal_new(&f, NULL, 0, pt, len);
    ck_assert_int_eq(open_to(&f, f.st, AD, 1, s0, slen, out), TS_ERR_AUTH);
    ck_assert_int_eq(open_to(&f, f.st, NULL, 0, s0, slen, out), TS_OK);
    free(s0);
    free(s);
    free(pt);
    fx_free(&f);
}
END_TEST

START_TEST(wrong_key)
{
    fx f;
    fx_load(&f, _i);
    void *other = NULL;
    ck_assert_int_eq(fx_create(&f, 1, &other), TS_OK);
    const size_t lens[] = { 0, 1, 4096 };
    for (size_t k = 0; k < 3; k++) {
        size_t len = lens[k], slen = len + f.vt->overhead;
        uint8_t *pt = rand_bytes(len), *s = seal_new(&f, AD, sizeof AD, pt, len);
        uint8_t *out = malloc(len + 1);
        tsenv_clear(&f.env);
        ck_assert_int_eq(open_to(&f, other, AD, sizeof AD, s, slen, out), TS_ERR_AUTH);
        ck_assert_msg(tsenv_errmsg(&f.env) && *tsenv_errmsg(&f.env), "%s reported no message",
                      f.ci->name);
        ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, s, slen, out), TS_OK);
        free(out);
        free(s);
        free(pt);
    }
    f.vt->destroy(other);
    fx_free(&f);
}
END_TEST

/* ---- nonces ---------------------------------------------------------- */

#define NONCE_SEALS 100000
#define REC 32 /* record size: one random field, or ciphertext and tag, zero-padded */

static int cmp_rec(const void *a, const void *b) { return memcmp(a, b, REC); }

/* Sort n records and fail on two equal neighbours. */
static void expect_unique(uint8_t *recs, size_t n, const char *name, const char *what)
{
    qsort(recs, n, REC, cmp_rec);
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(memcmp(recs + (i - 1) * REC, recs + i * REC, REC) != 0,
                      "%s: repeated %s after %d seals", name, what, NONCE_SEALS);
}

START_TEST(nonce_unique)
{
    fx f;
    fx_load(&f, _i);
    size_t nb = f.ci->nonce_bytes, len = 16, slen = len + f.vt->overhead;
    ck_assert_uint_le(nb, REC);
    size_t f2 = f.ci->field2;
    uint8_t *nonces = calloc(NONCE_SEALS, REC), *bodies = calloc(NONCE_SEALS, REC);
    uint8_t *second = calloc(NONCE_SEALS, REC);
    uint8_t pt[16] = { 0 }, s[16 + 64];
    ck_assert(nonces && bodies && second);
    for (size_t i = 0; i < NONCE_SEALS; i++) {
        ck_assert_int_eq(f.vt->seal(f.st, AD, sizeof AD, pt, len, s), TS_OK);
        /* aes256gcm: salt alone here, its nonce alone in `second`; each is
         * drawn at random and so must be unique on its own. */
        memcpy(nonces + i * REC, s + len, f2 ? f2 : nb);
        memcpy(second + i * REC, s + len + f2, nb - f2);
        /* Same plaintext, so distinct ciphertexts show the nonce is used. */
        memcpy(bodies + i * REC, s, len);
        memcpy(bodies + i * REC + len, s + slen - TAG_BYTES, TAG_BYTES);
    }
    expect_unique(nonces, NONCE_SEALS, f.ci->name, f2 ? "salt" : "nonce");
    expect_unique(bodies, NONCE_SEALS, f.ci->name, "ciphertext and tag");
    if (f2) expect_unique(second, NONCE_SEALS, f.ci->name, "GCM nonce");
    free(second);
    free(nonces);
    free(bodies);
    fx_free(&f);
}
END_TEST

/* A host whose random source fails: seal must fail, not use a fixed nonce. */
static int failing_random(ts_env *env, void *buf, size_t n)
{
    memset(buf, 0, n);
    return TS_ERR_IO;
}

START_TEST(random_failure)
{
    fx f;
    fx_load(&f, _i);
    ts_host host = *tsenv_host();
    host.random = failing_random;
    ts_module_args a = fx_args(&f);
    a.host = &host;
    uint8_t key[KEY_LEN], buf[16 + 64] = { 0 };
    test_key(key, 0);
    void *st = NULL;
    ck_assert_int_eq(f.vt->create(&a, key, sizeof key, &st), TS_OK);
    ck_assert_int_eq(f.vt->seal(st, AD, sizeof AD, buf, 16, buf), TS_ERR_IO);
    f.vt->destroy(st);
    fx_free(&f);
}
END_TEST

/* ---- concurrency ----------------------------------------------------- */

#define THREAD_SEALS 2000

typedef struct worker {
    fx      *f;
    int      id;
    uint8_t *sealed[THREAD_SEALS];
    size_t   len[THREAD_SEALS];
    int      failures;
} worker;

/* Plaintext i of thread id: recognisable, different lengths. */
static void fill_pt(uint8_t *p, size_t len, int id, size_t i)
{
    for (size_t k = 0; k < len; k++) p[k] = (uint8_t)(id * 131 + i * 7 + k);
}

static void *seal_worker(void *arg)
{
    worker *w = arg;
    uint8_t pt[700], out[700];
    for (size_t i = 0; i < THREAD_SEALS; i++) {
        size_t len = (i * 37 + (size_t)w->id) % 700, ov = w->f->vt->overhead;
        fill_pt(pt, len, w->id, i);
        w->len[i] = len;
        w->sealed[i] = malloc(len + ov + 1);
        if (!w->sealed[i] || w->f->vt->seal(w->f->st, AD, sizeof AD, pt, len, w->sealed[i]) ||
            w->f->vt->open(w->f->st, AD, sizeof AD, w->sealed[i], len + ov, out) ||
            memcmp(out, pt, len) != 0)
            w->failures++;
    }
    return NULL;
}

START_TEST(threads)
{
    fx f;
    fx_load(&f, _i);
    static worker w[2];
    pthread_t t[2];
    for (int k = 0; k < 2; k++) {
        memset(&w[k], 0, sizeof w[k]);
        w[k].f = &f;
        w[k].id = k;
        ck_assert_int_eq(pthread_create(&t[k], NULL, seal_worker, &w[k]), 0);
    }
    for (int k = 0; k < 2; k++) ck_assert_int_eq(pthread_join(t[k], NULL), 0);
    uint8_t pt[700], out[700];
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(w[k].failures, 0);
        for (size_t i = 0; i < THREAD_SEALS; i++) {
            fill_pt(pt, w[k].len[i], k, i);
            ck_assert_int_eq(f.vt->open(f.st, AD, sizeof AD, w[k].sealed[i],
                                        w[k].len[i] + f.vt->overhead, out), TS_OK);
            ck_assert(memcmp(out, pt, w[k].len[i]) == 0);
            free(w[k].sealed[i]);
        }
    }
    fx_free(&f);
}
END_TEST

/* ---- layouts as docs/ciphers.md states them, decoded independently ---- */

START_TEST(layout_chacha20poly1305)
{
    fx f;
    fx_load(&f, 0);
    uint8_t key[KEY_LEN], pt[300], out[300];
    test_key(key, 0);
    fill_pt(pt, sizeof pt, 3, 3);
    uint8_t *s = seal_new(&f, AD, sizeof AD, pt, sizeof pt);
    /* ciphertext || nonce (24) || tag (16) */
    const uint8_t *nonce = s + sizeof pt, *tag = nonce + 24;
    ck_assert_int_eq(crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                         out, NULL, s, sizeof pt, tag, AD, sizeof AD, nonce, key), 0);
    ck_assert_mem_eq(out, pt, sizeof pt);
    /* and the other way: libsodium seals, the module opens (in place too) */
    uint8_t mine[300 + 40];
    randombytes_buf(mine + sizeof pt, 24);
    ck_assert_int_eq(crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
                         mine, mine + sizeof pt + 24, NULL, pt, sizeof pt, AD, sizeof AD, NULL,
                         mine + sizeof pt, key), 0);
    memset(out, 0, sizeof out);
    ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, mine, sizeof mine, out), TS_OK);
    ck_assert_mem_eq(out, pt, sizeof pt);
    ck_assert_int_eq(f.vt->open(f.st, AD, sizeof AD, mine, sizeof mine, mine), TS_OK);
    ck_assert_mem_eq(mine, pt, sizeof pt);
    free(s);
    fx_free(&f);
}
END_TEST

/* HKDF-SHA256 (RFC 5869) written out with HMAC: one output block. */
static void hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                        size_t salt_len, const char *info, uint8_t okm[32])
{
    uint8_t prk[32], msg[64];
    unsigned n = 0;
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), salt, (int)salt_len, ikm, ikm_len, prk, &n));
    size_t il = strlen(info);
    memcpy(msg, info, il);
    msg[il] = 1;
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), prk, 32, msg, il + 1, okm, &n));
}

START_TEST(layout_aes256gcm)
{
    fx f;
    fx_load(&f, 1);
    uint8_t key[KEY_LEN], pt[300], out[300], subkey[32];
    test_key(key, 0);
    fill_pt(pt, sizeof pt, 4, 4);
    uint8_t *s = seal_new(&f, AD, sizeof AD, pt, sizeof pt);
    /* ciphertext || salt (16) || nonce (12) || tag (16) */
    const uint8_t *salt = s + sizeof pt, *iv = salt + 16;
    uint8_t tag[16];
    memcpy(tag, iv + 12, 16);
    hkdf_sha256(key, sizeof key, salt, 16, "tostore-aes256gcm-v1", subkey);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0;
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, subkey, iv), 1);
    ck_assert_int_eq(EVP_DecryptUpdate(c, NULL, &outl, AD, sizeof AD), 1);
    ck_assert_int_eq(EVP_DecryptUpdate(c, out, &outl, s, sizeof pt), 1);
    ck_assert_int_eq(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag), 1);
    ck_assert_int_eq(EVP_DecryptFinal_ex(c, out + outl, &outl), 1);
    EVP_CIPHER_CTX_free(c);
    ck_assert_mem_eq(out, pt, sizeof pt);
    /* and the other way: sealed here by the layout, opened by the module */
    uint8_t mine[300 + 44];
    randombytes_buf(mine + sizeof pt, 28);
    hkdf_sha256(key, sizeof key, mine + sizeof pt, 16, "tostore-aes256gcm-v1", subkey);
    c = EVP_CIPHER_CTX_new();
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, subkey, mine + sizeof pt + 16), 1);
    ck_assert_int_eq(EVP_EncryptUpdate(c, NULL, &outl, AD, sizeof AD), 1);
    ck_assert_int_eq(EVP_EncryptUpdate(c, mine, &outl, pt, sizeof pt), 1);
    ck_assert_int_eq(EVP_EncryptFinal_ex(c, mine + outl, &outl), 1);
    ck_assert_int_eq(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, mine + sizeof pt + 28), 1);
    EVP_CIPHER_CTX_free(c);
    memset(out, 0, sizeof out);
    ck_assert_int_eq(open_to(&f, f.st, AD, sizeof AD, mine, sizeof mine, out), TS_OK);
    ck_assert_mem_eq(out, pt, sizeof pt);
    free(s);
    fx_free(&f);
}
END_TEST

static Suite *cipher_suite(void)
{
    Suite *s = suite_create("cipher");
    TCase *all = tcase_create("all modules");
    tcase_add_loop_test(all, roundtrip, 0, N_ALL);
    tcase_add_loop_test(all, roundtrip_mixed, 0, N_ALL);
    tcase_add_loop_test(all, descriptor_flags, 0, N_ALL);
    tcase_add_loop_test(all, bad_key_length, 0, N_ALL);
    tcase_add_loop_test(all, null_buffers, 0, N_ALL);
    tcase_add_loop_test(all, threads, 0, N_ALL);
    tcase_add_test(all, xor_obfuscates);
    suite_add_tcase(s, all);

    TCase *aead = tcase_create("authenticated modules");
    tcase_add_loop_test(aead, tamper_sealed_bytes, 0, N_AEAD);
    tcase_add_loop_test(aead, tamper_length, 0, N_AEAD);
    tcase_add_loop_test(aead, tamper_ad, 0, N_AEAD);
    tcase_add_loop_test(aead, wrong_key, 0, N_AEAD);
    tcase_add_loop_test(aead, nonce_unique, 0, N_AEAD);
    tcase_add_loop_test(aead, random_failure, 0, N_AEAD);
    tcase_add_test(aead, layout_chacha20poly1305);
    tcase_add_test(aead, layout_aes256gcm);
    suite_add_tcase(s, aead);
    /* 100,000 seals outlast Check's 4 s default when run by hand on a busy
     * (or sanitized) build; ctest passes its own CK_DEFAULT_TIMEOUT. */
    if (!getenv("CK_DEFAULT_TIMEOUT")) {
        tcase_set_timeout(all, 300);
        tcase_set_timeout(aead, 300);
    }
    return s;
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    return tst_run(cipher_suite());
}
