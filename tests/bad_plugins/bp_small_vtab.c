/* A storage module whose vtable is smaller than ABI 1.0's ts_storage_vtab
 * (vtab_size and the vtable's own struct_size agree, both too small). */
#include "bp_common.h"

static const ts_storage_vtab vt = {
    .struct_size = 16,
    .open = bp_open,
};
static const ts_module mod = {
    .struct_size = sizeof(ts_module), .kind = TS_KIND_STORAGE,
    .name = "bp_small_vtab", .version = "0.0.1",
    .vtab_size = 16, .vtab = &vt,
};
static const ts_module *const mods[] = { &mod, NULL };
BP_PLUGIN(plugin, "bp_small_vtab", mods)
