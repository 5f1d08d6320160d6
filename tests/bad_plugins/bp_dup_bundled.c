/* A storage module named "posix", the name of a bundled backend. */
#include "bp_common.h"

BP_STORAGE_VTAB(vt);
BP_STORAGE_MODULE(mod, "posix", vt);
static const ts_module *const mods[] = { &mod, NULL };
BP_PLUGIN(plugin, "bp_dup_bundled", mods)
