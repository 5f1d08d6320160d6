/* A valid shared object that does not export the entry symbol
 * "tostore_plugin": it exports a look-alike with another name instead. */
#include <tostore/plugin.h>

TS_PLUGIN_EXPORT int tostore_plugin_entry(void);
TS_PLUGIN_EXPORT int tostore_plugin_entry(void) { return 0; }
