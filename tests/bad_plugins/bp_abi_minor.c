/* Built for a newer minor version than the kernel's: it may rely on host
 * services or callbacks this kernel does not have. */
#include "bp_common.h"

BP_STORAGE_VTAB(vt);
BP_STORAGE_MODULE(mod, "bp_abi_minor", vt);
static const ts_module *const mods[] = { &mod, NULL };

static const ts_plugin plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR, .abi_minor = TS_ABI_MINOR + 1,
    .struct_size = sizeof(ts_plugin),
    .name = "bp_abi_minor", .version = "0.0.1",
    .modules = mods,
};
TS_PLUGIN_DEFINE(plugin)
