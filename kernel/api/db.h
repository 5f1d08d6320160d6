/* The database handle (data layer).  Grows as the engine does. */
#ifndef TS_API_DB_H
#define TS_API_DB_H

#include <tostore/tostore.h>
#include "base/env.h"
#include "config/config.h"
#include "crypto/keys.h"
#include "io/store.h"
#include "plugin/registry.h"
#include "txn/pager.h"
#include "catalog/sys.h"
#include "table/table.h"
#include <pthread.h>

struct ts_db {
    ts_env    env;
    tscfg    *cfg;
    tsreg    *reg;
    tsstore  *store;
    tscipher *cipher;   /* NULL: not encrypted */
    tspg     *pg;       /* pages, log, transactions */
    pthread_rwlock_t gate; /* calls share it; rekey takes it alone */
    int       gate_init;
    tssys     sys;      /* catalog and key-value btrees (NULL: no btree module) */
    tstbl_map tables;   /* open tables (when sys is) */
    struct tsapi_cache    *cache;  /* query results (api/watch.c) */
    struct tsapi_vcache   *vcache; /* vector search condition sets (api/vcache.c) */
    struct tsapi_watchers *watch;  /* live queries and their thread */
    struct tsapi_worker   *purger; /* expired TTL rows (api/purge.c) */
    struct tsapi_worker   *migrator; /* background schema migrations (api/schema_update.c) */
    pthread_key_t   txkey;  /* the calling thread's explicit transaction */
    int       txkey_init;
    pthread_mutex_t lock;   /* guards the current space */
    char      space[TSSYS_NAME_MAX + 1];
    uint64_t  space_id;
    /* names ts_current_space has returned: kept until close, so a pointer
     * another thread holds stays valid across switches */
    char    **space_names;
    size_t    nspace_names;
};

#endif
