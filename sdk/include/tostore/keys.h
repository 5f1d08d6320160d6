/*
 * tostore/keys.h - the order-preserving ("memcomparable") key encoding that
 * the kernel and every index plugin agree on.  Header only; standard C only.
 *
 * A key is a tuple of typed values, each encoded as one tag byte and a
 * payload, concatenated.  For two tuples a and b:
 *     memcmp order of encode(a), encode(b)  ==  value order of a, b
 * (with the shorter encoding first when one is a prefix of the other), so
 * indexes compare keys with memcmp and never interpret them.
 *
 *   value        tag   payload                              order
 *   null         0x05  -                                    first
 *   false/true   0x10/0x11                                  false < true
 *   integer      0x20  8 bytes big endian, sign bit flipped  numeric (any width)
 *   double       0x30  8 bytes: IEEE bits, negatives
 *                      inverted, positives sign-flipped      numeric; -0.0 == 0.0;
 *                                                            NaN (one form) after +inf
 *   text         0x40  bytes, 0x00 escaped as 00 FF,
 *                      terminated by 00 00                   bytewise (UTF-8 code points)
 *   blob         0x50  as text                              bytewise
 * Values of different types order by tag (null < bool < integer < double <
 * text < blob); a schema keeps one type per field, so this only matters for
 * untyped keys.  A component can be made descending by inverting every byte
 * of its encoding (ts_key_invert).
 *
 * Writers take (dst, cap, off) and return the offset after the value; they
 * write only when it fits, so a caller may measure with cap 0 first.
 */
#ifndef TOSTORE_KEYS_H
#define TOSTORE_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    TS_KEY_NULL = 0x05,
    TS_KEY_FALSE = 0x10,
    TS_KEY_TRUE = 0x11,
    TS_KEY_INT = 0x20,
    TS_KEY_DOUBLE = 0x30,
    TS_KEY_TEXT = 0x40,
    TS_KEY_BLOB = 0x50
};

static inline size_t ts_key__byte(uint8_t *dst, size_t cap, size_t off, uint8_t b)
{
    if (off < cap) dst[off] = b;
    return off + 1;
}

static inline size_t ts_key__u64(uint8_t *dst, size_t cap, size_t off, uint64_t v)
{
    for (int i = 7; i >= 0; i--) off = ts_key__byte(dst, cap, off, (uint8_t)(v >> (8 * i)));
    return off;
}

static inline size_t ts_key_null(uint8_t *dst, size_t cap, size_t off)
{
    return ts_key__byte(dst, cap, off, TS_KEY_NULL);
}

static inline size_t ts_key_bool(uint8_t *dst, size_t cap, size_t off, int v)
{
    return ts_key__byte(dst, cap, off, v ? TS_KEY_TRUE : TS_KEY_FALSE);
}

static inline size_t ts_key_int(uint8_t *dst, size_t cap, size_t off, int64_t v)
{
    off = ts_key__byte(dst, cap, off, TS_KEY_INT);
    return ts_key__u64(dst, cap, off, (uint64_t)v ^ 0x8000000000000000ull);
}

static inline size_t ts_key_double(uint8_t *dst, size_t cap, size_t off, double v)
{
    uint64_t bits;
    if (v == 0.0) v = 0.0;             /* -0.0 sorts as 0.0 */
    memcpy(&bits, &v, sizeof bits);
    if (v != v) bits = 0x7ff8000000000000ull; /* one NaN, above +inf */
    bits = (bits & 0x8000000000000000ull) ? ~bits : bits | 0x8000000000000000ull;
    off = ts_key__byte(dst, cap, off, TS_KEY_DOUBLE);
    return ts_key__u64(dst, cap, off, bits);
}

static inline size_t ts_key__bytes(uint8_t *dst, size_t cap, size_t off, uint8_t tag,
                                   const void *p, size_t n)
{
    const uint8_t *s = (const uint8_t *)p;
    off = ts_key__byte(dst, cap, off, tag);
    for (size_t i = 0; i < n; i++) {
        off = ts_key__byte(dst, cap, off, s[i]);
        if (s[i] == 0) off = ts_key__byte(dst, cap, off, 0xFF);
    }
    off = ts_key__byte(dst, cap, off, 0);
    return ts_key__byte(dst, cap, off, 0);
}

static inline size_t ts_key_text(uint8_t *dst, size_t cap, size_t off, const char *s, size_t n)
{
    return ts_key__bytes(dst, cap, off, TS_KEY_TEXT, s, n);
}

static inline size_t ts_key_blob(uint8_t *dst, size_t cap, size_t off, const void *p, size_t n)
{
    return ts_key__bytes(dst, cap, off, TS_KEY_BLOB, p, n);
}

/* Invert bytes [from, to) of an encoded key: that component sorts descending. */
static inline void ts_key_invert(uint8_t *key, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) key[i] = (uint8_t)~key[i];
}

/* One decoded value.  For text and blob, `bytes` points at the escaped
 * payload inside the key (raw_len bytes) and len is the unescaped length;
 * copy it out with ts_key_unescape. */
typedef struct ts_key_item {
    int            tag;
    int64_t        i;      /* TS_KEY_INT; also 0/1 for booleans */
    double         d;      /* TS_KEY_DOUBLE */
    const uint8_t *bytes;
    size_t         raw_len, len;
} ts_key_item;

/* Decode the value at *off (ascending encoding) and advance *off.
 * Returns 1 on a value, 0 at the end of the key, -1 on malformed input. */
static inline int ts_key_next(const uint8_t *key, size_t klen, size_t *off, ts_key_item *it)
{
    size_t o = *off;
    if (o >= klen) return 0;
    memset(it, 0, sizeof *it);
    it->tag = key[o++];
    switch (it->tag) {
    case TS_KEY_NULL: break;
    case TS_KEY_FALSE: case TS_KEY_TRUE: it->i = it->tag == TS_KEY_TRUE; break;
    case TS_KEY_INT: case TS_KEY_DOUBLE: {
        if (klen - o < 8) return -1;
        uint64_t v = 0;
        for (int k = 0; k < 8; k++) v = v << 8 | key[o++];
        if (it->tag == TS_KEY_INT) {
            it->i = (int64_t)(v ^ 0x8000000000000000ull);
        } else {
            v = (v & 0x8000000000000000ull) ? v & ~0x8000000000000000ull : ~v;
            memcpy(&it->d, &v, sizeof v);
        }
        break;
    }
    case TS_KEY_TEXT: case TS_KEY_BLOB: {
        it->bytes = key + o;
        for (;;) {
            if (o + 1 >= klen) return -1;
            if (key[o] == 0) {
                if (key[o + 1] == 0) break;
                if (key[o + 1] != 0xFF) return -1;
                o += 2;
            } else {
                o++;
            }
            it->len++;
        }
        it->raw_len = (size_t)(key + o - it->bytes);
        o += 2;
        break;
    }
    default: return -1;
    }
    *off = o;
    return 1;
}

/* Copy the unescaped payload of a text/blob item to dst (it->len bytes). */
static inline void ts_key_unescape(const ts_key_item *it, void *dst)
{
    uint8_t *d = (uint8_t *)dst;
    for (size_t i = 0; i < it->raw_len; i++) {
        *d++ = it->bytes[i];
        if (it->bytes[i] == 0) i++; /* skip the 0xFF */
    }
}

/* The smallest key greater than every key starting with prefix[0..n): for
 * prefix scans.  Writes at most n bytes to dst (which may be prefix itself);
 * returns its length, or 0 when no such key exists (all 0xFF). */
static inline size_t ts_key_prefix_end(const uint8_t *prefix, size_t n, uint8_t *dst)
{
    while (n > 0 && prefix[n - 1] == 0xFF) n--;
    if (n == 0) return 0;
    memmove(dst, prefix, n);
    dst[n - 1]++;
    return n;
}

#ifdef __cplusplus
}
#endif
#endif /* TOSTORE_KEYS_H */
