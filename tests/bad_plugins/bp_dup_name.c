/* Two storage modules with the same name inside one plugin. */
#include "bp_common.h"

BP_STORAGE_VTAB(vt);
BP_STORAGE_MODULE(mod_a, "bp_twin", vt);
BP_STORAGE_MODULE(mod_b, "bp_twin", vt);
static const ts_module *const mods[] = { &mod_a, &mod_b, NULL };
BP_PLUGIN(plugin, "bp_dup_name", mods)
