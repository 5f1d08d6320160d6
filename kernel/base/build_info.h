/* Facts fixed at build time (generated into build_info.c by CMake). */
#ifndef TS_BASE_BUILD_INFO_H
#define TS_BASE_BUILD_INFO_H

const char *tsb_default_config(void);            /* config/tostore.json, NUL-terminated */
const char *const *tsb_bundled_plugins(void);    /* NULL-terminated plugin names */
const char *tsb_version(void);
const char *tsb_build_plugin_dir(void);          /* plugins folder of the build tree */
const char *tsb_build_root(void);                /* the build tree */
const char *tsb_install_plugin_dir(void);        /* absolute installed plugins folder */
const char *tsb_install_plugin_reldir(void);     /* plugins folder relative to the library's */

#endif
