/* A module setting a flag bit this ABI version does not define. */
#include "bp_common.h"

BP_STORAGE_VTAB(vt);
static const ts_module mod = {
    .struct_size = sizeof(ts_module), .kind = TS_KIND_STORAGE,
    .name = "bp_unknown_flags", .version = "0.0.1", .flags = 0x80u,
    .vtab_size = sizeof(ts_storage_vtab), .vtab = &vt,
};
static const ts_module *const mods[] = { &mod, NULL };
BP_PLUGIN(plugin, "bp_unknown_flags", mods)
