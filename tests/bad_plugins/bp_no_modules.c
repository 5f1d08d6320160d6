/* A plugin whose module list is empty (just the NULL terminator). */
#include "bp_common.h"

static const ts_module *const mods[] = { NULL };
BP_PLUGIN(plugin, "bp_no_modules", mods)
