/* A cipher module without the required `open` (decrypt) callback. */
#include "bp_common.h"

static const ts_cipher_vtab vt = {
    .struct_size = sizeof(ts_cipher_vtab), .key_bytes = 32, .overhead = 16,
    .create = bp_cipher_create, .destroy = bp_cipher_destroy,
    .seal = bp_cipher_seal, .open = NULL,
};
static const ts_module mod = {
    .struct_size = sizeof(ts_module), .kind = TS_KIND_CIPHER,
    .name = "bp_no_cipher_open", .version = "0.0.1",
    .vtab_size = sizeof(ts_cipher_vtab), .vtab = &vt,
};
static const ts_module *const mods[] = { &mod, NULL };
BP_PLUGIN(plugin, "bp_no_cipher_open", mods)
