/* Parts of `tostore demo`, one file each. */
#ifndef TOSTORE_TOOL_DEMO_H
#define TOSTORE_TOOL_DEMO_H

#include <tostore/tostore.h>

void demo_tables(ts_db *db);
void demo_vectors(ts_db *db);
int  cmd_schema(const char *config, const char *table);
int  cmd_migrate(const char *config, int apply);
int  cmd_rebuild(const char *config, const char *table);

#endif
