/* Registration is all or nothing: the first module is valid, the second
 * lacks the required `list` callback, so neither may be registered. */
#include "bp_common.h"

BP_STORAGE_VTAB(ok_vt);
BP_STORAGE_MODULE(ok_mod, "bp_half_ok", ok_vt);

static const ts_storage_vtab bad_vt = {
    .struct_size = sizeof(ts_storage_vtab),
    .open = bp_open, .close = bp_close, .lock = bp_lock, .unlock = bp_unlock,
    .file_open = bp_file_open, .file_close = bp_file_close, .read = bp_read,
    .write = bp_write, .sync = bp_sync, .size = bp_size, .truncate = bp_truncate,
    .remove = bp_remove, .rename = bp_rename, .exists = bp_exists,
    .sync_dir = bp_sync_dir, .list = NULL,
};
BP_STORAGE_MODULE(bad_mod, "bp_half_bad", bad_vt);

static const ts_module *const mods[] = { &ok_mod, &bad_mod, NULL };
BP_PLUGIN(plugin, "bp_second_bad", mods)
