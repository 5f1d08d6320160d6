/* A cipher module with every callback but an impossible key length: the
 * kind-specific check (kernel/plugin/kinds.c) refuses it. */
#include "bp_common.h"

static const ts_cipher_vtab vt = {
    .struct_size = sizeof(ts_cipher_vtab), .key_bytes = 0, .overhead = 16,
    .create = bp_cipher_create, .destroy = bp_cipher_destroy,
    .seal = bp_cipher_seal, .open = bp_cipher_open,
};
static const ts_module mod = {
    .struct_size = sizeof(ts_module), .kind = TS_KIND_CIPHER,
    .name = "bp_bad_keybytes", .version = "0.0.1",
    .vtab_size = sizeof(ts_cipher_vtab), .vtab = &vt,
};
static const ts_module *const mods[] = { &mod, NULL };
BP_PLUGIN(plugin, "bp_bad_keybytes", mods)
