/* Built for an ABI major version the kernel does not have. */
#include "bp_common.h"

BP_STORAGE_VTAB(vt);
BP_STORAGE_MODULE(mod, "bp_abi_major", vt);
static const ts_module *const mods[] = { &mod, NULL };

static const ts_plugin plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR + 1, .abi_minor = 0,
    .struct_size = sizeof(ts_plugin),
    .name = "bp_abi_major", .version = "0.0.1",
    .modules = mods,
};
TS_PLUGIN_DEFINE(plugin)
