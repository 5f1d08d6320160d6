/* A storage module without the required `write` callback. */
#include "bp_common.h"

static const ts_storage_vtab vt = {
    .struct_size = sizeof(ts_storage_vtab),
    .open = bp_open, .close = bp_close, .lock = bp_lock, .unlock = bp_unlock,
    .file_open = bp_file_open, .file_close = bp_file_close, .read = bp_read,
    .write = NULL,
    .sync = bp_sync, .size = bp_size, .truncate = bp_truncate, .remove = bp_remove,
    .rename = bp_rename, .exists = bp_exists, .sync_dir = bp_sync_dir, .list = bp_list,
};
BP_STORAGE_MODULE(mod, "bp_no_write", vt);
static const ts_module *const mods[] = { &mod, NULL };
BP_PLUGIN(plugin, "bp_no_write", mods)
