/* Facts fixed at build time (generated into build_info.c by CMake). */
#ifndef TS_BASE_BUILD_INFO_H
#define TS_BASE_BUILD_INFO_H

const char *tsb_default_config(void);            /* config/tostore.json, NUL-terminated */
/* One module of a bundled plugin, as the build's manifest declares it. */
typedef struct tsb_bundled {
    const char *plugin;   /* file name without .so */
    const char *kind;     /* "storage", "cipher", "index", "pkgen" */
    const char *module;
} tsb_bundled;

/* The bundled modules, ended by an entry whose plugin is NULL. */
const tsb_bundled *tsb_bundled_modules(void);
const char *tsb_version(void);
const char *tsb_build_plugin_dir(void);          /* plugins folder of the build tree */
const char *tsb_build_root(void);                /* the build tree */
const char *tsb_install_plugin_dir(void);        /* absolute installed plugins folder */
const char *tsb_install_plugin_reldir(void);     /* plugins folder relative to the library's */

#endif
