/* A module name outside [A-Za-z0-9_.-]: it could not be written in
 * storage.backend or cipher.module unambiguously. */
#include "bp_common.h"

BP_STORAGE_VTAB(vt);
BP_STORAGE_MODULE(mod, "bad/name", vt);
static const ts_module *const mods[] = { &mod, NULL };
BP_PLUGIN(plugin, "bp_bad_name", mods)
