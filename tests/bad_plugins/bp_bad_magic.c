/* A descriptor whose magic is not TS_PLUGIN_MAGIC (say, an unrelated
 * library that happens to export a function with the entry's name). */
#include "bp_common.h"

BP_STORAGE_VTAB(vt);
BP_STORAGE_MODULE(mod, "bp_bad_magic", vt);
static const ts_module *const mods[] = { &mod, NULL };

static const ts_plugin plugin = {
    .magic = 0xDEADBEEFu,
    .abi_major = TS_ABI_MAJOR, .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "bp_bad_magic", .version = "0.0.1",
    .modules = mods,
};
TS_PLUGIN_DEFINE(plugin)
