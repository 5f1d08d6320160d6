/* A module of a kind number the kernel does not know. */
#include "bp_common.h"

BP_STORAGE_VTAB(vt);
static const ts_module mod = {
    .struct_size = sizeof(ts_module), .kind = 99,
    .name = "bp_unknown_kind", .version = "0.0.1",
    .vtab_size = sizeof(ts_storage_vtab), .vtab = &vt,
};
static const ts_module *const mods[] = { &mod, NULL };
BP_PLUGIN(plugin, "bp_unknown_kind", mods)
