/* A plugin descriptor claiming a struct_size smaller than ABI 1.0's
 * ts_plugin: the kernel must not read fields past it. */
#include "bp_common.h"

BP_STORAGE_VTAB(vt);
BP_STORAGE_MODULE(mod, "bp_small_struct", vt);
static const ts_module *const mods[] = { &mod, NULL };

static const ts_plugin plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR, .abi_minor = TS_ABI_MINOR,
    .struct_size = 12,
    .name = "bp_small_struct", .version = "0.0.1",
    .modules = mods,
};
TS_PLUGIN_DEFINE(plugin)
