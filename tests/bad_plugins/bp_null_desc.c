/* The entry symbol exists but returns NULL instead of a descriptor. */
#include <tostore/plugin.h>

TS_PLUGIN_EXPORT const ts_plugin *tostore_plugin(void);
TS_PLUGIN_EXPORT const ts_plugin *tostore_plugin(void) { return NULL; }
