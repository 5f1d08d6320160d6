/*
 * Read-only option objects lent to plugins (ts_opts of tostore/plugin.h).
 * A ts_opts is a jansson object inside the parsed config; these accessors
 * keep jansson out of the plugin ABI.
 */
#ifndef TS_CONFIG_OPTS_H
#define TS_CONFIG_OPTS_H

#include <jansson.h>
#include <tostore/plugin.h>

static inline const ts_opts *tsopts_wrap(const json_t *obj) { return (const ts_opts *)obj; }

int tsopts_string(ts_env *env, const ts_opts *o, const char *key, const char **out);
int tsopts_int(ts_env *env, const ts_opts *o, const char *key, int64_t *out);
int tsopts_double(ts_env *env, const ts_opts *o, const char *key, double *out);
int tsopts_bool(ts_env *env, const ts_opts *o, const char *key, int *out);
int tsopts_object(ts_env *env, const ts_opts *o, const char *key, const ts_opts **out);
int tsopts_key_at(const ts_opts *o, size_t i, const char **key);

#endif
