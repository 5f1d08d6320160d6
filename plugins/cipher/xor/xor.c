/*
 * xor - cipher module for obfuscation only: XOR with a keystream derived
 * from the key.  It keeps casual eyes (and `strings`) off the files and
 * nothing more.
 *
 * It is NOT encryption: the keystream depends only on the key and the byte
 * position, so every page is XORed with the same stream; XOR of two sealed
 * pages is the XOR of their plaintexts, and a known page reveals the
 * stream.  It is NOT authenticated: open() cannot notice changed data, a
 * wrong key or wrong associated data, and always succeeds (yielding garbage
 * in those cases).  Hence the TS_MODULE_INSECURE flag: the kernel refuses
 * it unless the config sets cipher.allowInsecure.
 *
 * Layout: the output has the length of the input (overhead 0); in place
 * works because every byte is read before the same byte is written.
 */
#include <stddef.h>
#include <stdint.h>
#include <tostore/cipher.h>

#define XOR_NAME  "xor"
#define KEY_BYTES 32
#define KEY_WORDS (KEY_BYTES / 8)

typedef struct xor_state {
    const ts_host *host;
    ts_env        *env;
    uint64_t       k[KEY_WORDS]; /* the key as little-endian words */
} xor_state;

/* splitmix64's finalizer: every input bit flips about half the output bits,
 * so neighbouring blocks and similar keys give unrelated stream bytes. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* 8 stream bytes for block j (bytes 8j .. 8j+7).  j times an odd constant
 * is distinct for every j, so blocks that use the same key word still
 * differ: the stream does not repeat every 32 bytes. */
static uint64_t stream_block(const xor_state *st, uint64_t j)
{
    return mix64(st->k[j % KEY_WORDS] ^ (j * UINT64_C(0x9e3779b97f4a7c15)));
}

/* Sealing and opening are the same operation. */
static void xor_stream(const xor_state *st, const uint8_t *in, size_t len, uint8_t *out)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t ks = stream_block(st, i / 8);
        size_t n = len - i < 8 ? len - i : 8;
        for (size_t b = 0; b < n; b++)
            out[i + b] = in[i + b] ^ (uint8_t)(ks >> (8 * b));
    }
}

/* ts_module_args must at least reach the env field we keep. */
static int args_usable(const ts_module_args *a)
{
    return a && a->struct_size >= offsetof(ts_module_args, env) + sizeof a->env && a->host;
}

static int xor_create(const ts_module_args *args, const uint8_t *key, size_t key_len,
                      void **state_out)
{
    if (!args_usable(args) || !state_out) return TS_ERR_INVALID;
    const ts_host *h = args->host;
    if (!key || key_len != KEY_BYTES)
        return h->error(args->env, TS_ERR_INVALID, XOR_NAME ": the key must be %d bytes, not %zu",
                        KEY_BYTES, key_len);
    xor_state *st = h->calloc(1, sizeof *st);
    if (!st) return h->error(args->env, TS_ERR_NOMEM, XOR_NAME ": out of memory");
    for (size_t w = 0; w < KEY_WORDS; w++)
        for (size_t b = 0; b < 8; b++)
            st->k[w] |= (uint64_t)key[8 * w + b] << (8 * b);
    st->host = h;
    st->env = args->env;
    *state_out = st;
    return TS_OK;
}

static void xor_destroy(void *state)
{
    xor_state *st = state;
    if (!st) return;
    const ts_host *h = st->host;
    h->wipe(st, sizeof *st);
    h->free(st);
}

static int xor_apply(xor_state *st, const uint8_t *ad, size_t ad_len, const uint8_t *in,
                     size_t len, uint8_t *out)
{
    if (!st) return TS_ERR_INVALID;
    if ((!ad && ad_len) || (len && (!in || !out)))
        return st->host->error(st->env, TS_ERR_INVALID, XOR_NAME ": NULL buffer");
    xor_stream(st, in, len, out);
    return TS_OK;
}

static int xor_seal(void *state, const uint8_t *ad, size_t ad_len, const uint8_t *in,
                    size_t len, uint8_t *out)
{
    return xor_apply(state, ad, ad_len, in, len, out);
}

/* Always TS_OK for valid buffers: there is no tag, so nothing to check. */
static int xor_open(void *state, const uint8_t *ad, size_t ad_len, const uint8_t *in,
                    size_t len, uint8_t *out)
{
    return xor_apply(state, ad, ad_len, in, len, out);
}

static const ts_cipher_vtab xor_vtab = {
    .struct_size = sizeof(ts_cipher_vtab),
    .key_bytes = KEY_BYTES,
    .overhead = 0,
    .create = xor_create,
    .destroy = xor_destroy,
    .seal = xor_seal,
    .open = xor_open,
};

static const ts_module xor_module = {
    .struct_size = sizeof(ts_module),
    .kind = TS_KIND_CIPHER,
    .name = XOR_NAME,
    .version = "1.0.0",
    .flags = TS_MODULE_INSECURE | TS_MODULE_THREAD_SAFE,
    .vtab_size = sizeof(ts_cipher_vtab),
    .vtab = &xor_vtab,
};

static const ts_module *const xor_modules[] = { &xor_module, NULL };

static const ts_plugin xor_plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = XOR_NAME,
    .version = "1.0.0",
    .init = NULL,
    .fini = NULL,
    .modules = xor_modules,
};

TS_PLUGIN_DEFINE(xor_plugin)
