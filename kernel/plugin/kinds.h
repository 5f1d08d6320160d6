/*
 * The table of module kinds the kernel knows.  Adding a kind is one header
 * in sdk/include/tostore/ and one entry in kinds.c.
 */
#ifndef TS_PLUGIN_KINDS_H
#define TS_PLUGIN_KINDS_H

#include <stddef.h>
#include <stdint.h>
#include <tostore/plugin.h>

typedef struct tskind {
    uint32_t      kind;
    const char   *name;
    size_t        vtab_size;     /* the kernel's sizeof(vtable) */
    size_t        vtab_min;      /* smallest vtab_size accepted (ABI 1.0) */
    const size_t *required;      /* offsets of required callbacks */
    const char *const *required_names;
    size_t        nrequired;
    /* Kind-specific checks of constant fields; may be NULL.  Returns NULL
     * when fine, else a static message. */
    const char *(*check)(const void *vtab);
} tskind;

const tskind *tskind_get(uint32_t kind);

#endif
