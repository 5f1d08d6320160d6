/* A well-formed plugin whose init() fails with a message: the message must
 * reach ts_errmsg(NULL) and nothing of the plugin may stay registered. */
#include "bp_common.h"

static int init_fails(const ts_host *host, ts_env *env, void **state_out)
{
    *state_out = NULL;
    return host->error(env, TS_ERR_CONFIG, "bp_init_fails: the licence file %s is missing",
                       "/etc/bp.lic");
}

BP_STORAGE_VTAB(vt);
BP_STORAGE_MODULE(mod, "bp_init_fails", vt);
static const ts_module *const mods[] = { &mod, NULL };

static const ts_plugin plugin = {
    .magic = TS_PLUGIN_MAGIC,
    .abi_major = TS_ABI_MAJOR, .abi_minor = TS_ABI_MINOR,
    .struct_size = sizeof(ts_plugin),
    .name = "bp_init_fails", .version = "0.0.1",
    .init = init_fails,
    .modules = mods,
};
TS_PLUGIN_DEFINE(plugin)
