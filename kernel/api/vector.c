/* ts_vector_value: vector field values in binary form. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <tostore/tostore.h>
#include "data/value.h"

json_t *ts_vector_value(const float *v, size_t dim)
{
    if (!v && dim) return NULL;
    if (dim > SIZE_MAX / 8) return NULL;
    uint8_t *raw = malloc(dim * 4 + 1);
    char *b64 = malloc(tsd_base64_len(dim * 4) + 1);
    json_t *out = NULL;
    for (size_t i = 0; raw && b64 && i < dim; i++) {
        if (!isfinite(v[i])) goto done;
        uint32_t bits;
        memcpy(&bits, &v[i], 4);
        for (int k = 0; k < 4; k++) raw[4 * i + (size_t)k] = (uint8_t)(bits >> (8 * k));
    }
    if (raw && b64) {
        /* base64 is ASCII: no UTF-8 check of a string of 5.3 bytes a
         * dimension (json_pack's "s" checks every byte) */
        tsd_base64_encode(raw, dim * 4, b64);
        json_t *s = json_stringn_nocheck(b64, tsd_base64_len(dim * 4));
        out = s ? json_object() : NULL;
        if (out && json_object_set_new_nocheck(out, "$vector", s)) {
            json_decref(out);
            out = NULL;
        } else if (!out) {
            json_decref(s);
        }
    }
done:
    free(raw);
    free(b64);
    return out;
}
