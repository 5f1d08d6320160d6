/*
 * tostore/pkgen.h - primary-key generator modules (kind TS_KIND_PKGEN).
 *
 * A generator hands out new primary keys for one table in one space.  Its
 * state (a counter, the last timestamp, ...) is an opaque byte string the
 * kernel stores durably in the same transaction as the row that used the
 * key, so no key is reused after a crash.
 */
#ifndef TOSTORE_PKGEN_H
#define TOSTORE_PKGEN_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TS_PK_INT  1
#define TS_PK_TEXT 2

/* A key value.  For TS_PK_TEXT, text points into the generator's buffer and
 * stays valid until the next call on that generator. */
typedef struct ts_pk_value {
    int         type;  /* TS_PK_INT or TS_PK_TEXT */
    int64_t     i;
    const char *text;
    size_t      text_len;
} ts_pk_value;

#define TS_PKGEN_STATE_MAX 256

typedef struct ts_pkgen_vtab {
    uint32_t struct_size;

    /* Create a generator from its options (e.g. sequentialConfig) and the
     * state it last saved (state_len 0: a new table).  Required. */
    int  (*create)(const ts_module_args *args, const uint8_t *state, size_t state_len,
                   void **gen_out);
    void (*destroy)(void *gen);
    /* Produce the next key.  Required. */
    int  (*next)(void *gen, ts_pk_value *key_out);
    /* Tell the generator a caller-supplied key was stored, so later keys
     * stay above it where the scheme orders keys.  Required. */
    int  (*observe)(void *gen, const ts_pk_value *key);
    /* Serialize the state into buf (at most TS_PKGEN_STATE_MAX bytes). Required. */
    int  (*save)(void *gen, uint8_t *buf, size_t cap, size_t *len_out);
} ts_pkgen_vtab;

#ifdef __cplusplus
}
#endif
#endif /* TOSTORE_PKGEN_H */
