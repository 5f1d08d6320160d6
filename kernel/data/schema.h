/*
 * data/schema.h - table schemas: parse and validate a TableSchema JSON into
 * an immutable tsd_table, write it back as canonical JSON, and check a set
 * of tables that reference each other (foreign keys, creation order).
 *
 * The accepted JSON, every default and every error are documented in
 * docs/schema.md.  Every error is TS_ERR_VALIDATION (TS_ERR_TABLE_EXISTS for
 * a name already taken, TS_ERR_NOMEM, TS_ERR_INVALID for NULL arguments)
 * with a message naming the JSON path, e.g.
 *     users.fields[2].type: unknown type 'strng'
 *
 * Columns.  A table's rows have ncols columns: column 0 is always the
 * primary key (named by primaryKeyConfig.name, default "id"); columns
 * 1..ncols-1 are the schema's fields in their order, except a field that
 * declares the primary key (same name), which becomes column 0.  Column
 * numbers are what the record and row functions (data/record.h) take.
 *
 * A tsd_table is immutable after tsd_table_parse and may be read by any
 * number of threads at once.  Pointers into it (fields, names) live until
 * tsd_table_free.
 */
#ifndef TS_DATA_SCHEMA_H
#define TS_DATA_SCHEMA_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "base/env.h"

/* Limits of names (bytes).  Table and field names (and the primary key
 * name): ^[A-Za-z][A-Za-z0-9_]*$, at most TSD_NAME_MAX.  Index and foreign
 * key names: the same pattern, at most TSD_LONG_NAME_MAX (their defaults are
 * built from field names). */
#define TSD_NAME_MAX        64
#define TSD_LONG_NAME_MAX   255
#define TSD_ID_MAX          64      /* tableId, fieldId */
#define TSD_INDEX_FIELDS_MAX 16     /* fields of one index or foreign key */
#define TSD_FIELDS_MAX      4000    /* fields of one table */
#define TSD_VECTOR_DIMS_MAX 65536   /* vectorConfig.dimensions */
#define TSD_NGH_DIMS_MAX    16384   /* as the ngh module's dimensions option */

typedef enum tsd_type {
    TSD_INTEGER = 0, /* int64 */
    TSD_BIGINT,      /* arbitrary-length integer */
    TSD_DOUBLE,      /* finite IEEE double */
    TSD_TEXT,        /* UTF-8 */
    TSD_BLOB,        /* bytes; base64 in JSON */
    TSD_BOOLEAN,
    TSD_DATETIME,    /* int64 milliseconds since the epoch, UTC */
    TSD_ARRAY,       /* any JSON array */
    TSD_JSON,        /* any JSON value */
    TSD_VECTOR,      /* fixed-dimension array of numbers */
    TSD_KEY          /* internal: a primary key without declared type
                        (JSON integer or string); never in schema JSON */
} tsd_type;

typedef enum tsd_pk_type {
    TSD_PK_SEQUENTIAL = 0,
    TSD_PK_TIMESTAMP,      /* "timestampBased" */
    TSD_PK_DATE_PREFIXED,  /* "datePrefixed" */
    TSD_PK_SHORT_CODE,     /* "shortCode" */
    TSD_PK_NONE
} tsd_pk_type;

typedef enum tsd_precision {
    TSD_VEC_FLOAT32 = 0,
    TSD_VEC_FLOAT16,
    TSD_VEC_INT8
} tsd_precision;

typedef enum tsd_fk_action {
    TSD_FK_RESTRICT = 0,
    TSD_FK_CASCADE,
    TSD_FK_SET_NULL,
    TSD_FK_SET_DEFAULT,
    TSD_FK_NO_ACTION       /* behaves as restrict */
} tsd_fk_action;

/* A bound of minValue / maxValue, in the field's own type: i for integer and
 * datetime (ms), d for double; bigInt: i when big is NULL, else the decimal
 * digits in big (no sign, no leading zero) with neg for the sign. */
typedef struct tsd_bound {
    int     set;
    int64_t i;
    double  d;
    char   *big;
    int     neg;
} tsd_bound;

typedef struct tsd_field {
    const char   *name;
    const char   *table;         /* the owning table's name (for messages) */
    size_t        col;           /* column number (0: the primary key) */
    tsd_type      type;          /* column 0: TSD_INTEGER, TSD_TEXT or TSD_KEY */
    int           is_pk;         /* column 0 */
    int           declared;      /* column 0: also listed in the schema's fields */
    int           schema_pos;    /* position in the schema's fields array, -1 if none */
    tsd_pk_type   pk_type;       /* column 0: the key generator */
    int           nullable;      /* column 0: 0 */
    int           unique;        /* column 0: 1 */
    int           create_index;
    json_t       *default_value; /* normalized (as tsd_record_validate outputs), or NULL */
    int           default_now;   /* defaultValueType "currentTimestamp" */
    int64_t       min_length;    /* -1: none */
    int64_t       max_length;    /* -1: none */
    tsd_bound     min_value, max_value;
    json_t       *min_value_json, *max_value_json; /* normalized, or NULL */
    char         *field_id;      /* NULL: none */
    char         *comment;       /* NULL: none */
    uint32_t      dimensions;    /* vector: vectorConfig.dimensions */
    tsd_precision precision;     /* vector: vectorConfig.precision */
} tsd_field;

/* How an index came to be (see "Indexes" in docs/schema.md). */
typedef enum tsd_index_origin {
    TSD_IX_EXPLICIT = 0,   /* listed in "indexes" */
    TSD_IX_UNIQUE_FIELD,   /* a field's unique: true ("uniq_<field>") */
    TSD_IX_CREATE_INDEX,   /* a field's createIndex: true ("idx_<field>") */
    TSD_IX_FOREIGN_KEY     /* the referencing fields of a foreign key ("fk_<name>") */
} tsd_index_origin;

typedef struct tsd_index {
    char            *name;
    size_t           nfields;
    size_t          *cols;      /* column numbers, in key order */
    int              unique;
    char            *module;    /* index module name: "btree" (default), "hash", "ngh", ... */
    json_t          *vector_config; /* ngh only: {"distanceMetric", "parameters"}, else NULL */
    tsd_index_origin origin;
    int              schema_pos; /* EXPLICIT: position in "indexes"; else -1 */
} tsd_index;

typedef struct tsd_fk {
    char          *name;
    size_t         nfields;
    size_t        *cols;              /* referencing columns of this table */
    char         **field_names;       /* their names, as given */
    char          *ref_table;
    char         **ref_fields;        /* referenced field names (resolved by tsd_schema_set_check) */
    tsd_fk_action  on_delete, on_update;
} tsd_fk;

typedef struct tsd_table {
    char         *name;
    char         *table_id;      /* NULL: none */
    int           is_global;
    /* primaryKeyConfig */
    tsd_pk_type   pk_type;
    int64_t       seq_initial;   /* sequentialConfig.initialValue (1) */
    int64_t       seq_increment; /* sequentialConfig.increment (1), >= 1 */
    int           seq_random;    /* sequentialConfig.useRandomIncrement (false) */
    /* columns: [0] the primary key, then the fields */
    size_t        ncols;
    tsd_field    *cols;
    size_t        nschema_fields; /* length of the schema's "fields" array */
    /* secondary indexes, in this order: unique fields (field order), then
     * explicit indexes (declared order), then createIndex fields, then
     * foreign-key indexes.  The primary key is the row store itself and is
     * not listed. */
    size_t        nindexes;
    tsd_index    *indexes;
    /* the upsert conflict targets: indexes[] numbers of the unique
     * constraints, fields' unique flags in field order first, then unique
     * explicit indexes in declared order */
    size_t        nunique;
    size_t       *unique_order;
    size_t        nfks;
    tsd_fk       *fks;
    /* ttlConfig */
    int64_t       ttl_ms;        /* 0: no TTL */
    long          ttl_col;       /* the source datetime column, -1: insertion time */
    /* internal: column numbers sorted by name, for tsd_table_col */
    size_t       *by_name;
} tsd_table;

/* Parse and validate one TableSchema.  On success *out is a new table
 * (tsd_table_free).  References to other tables (foreign keys) are checked
 * only for shape here; tsd_schema_set_check resolves them. */
int tsd_table_parse(ts_env *env, const json_t *schema, tsd_table **out);

/* Release a table; accepts NULL. */
void tsd_table_free(tsd_table *t);

/* The canonical schema JSON, every default filled in (what ts_get_schema
 * returns).  tsd_table_parse of it gives an equal table, and its
 * tsd_table_to_json is equal to it.  Returns a new reference, NULL when out
 * of memory. */
json_t *tsd_table_to_json(const tsd_table *t);

/* The column number of a field (or of the primary key) by name, -1 if none. */
long tsd_table_col(const tsd_table *t, const char *name);

/* The field of column col (col < t->ncols). */
static inline const tsd_field *tsd_table_field(const tsd_table *t, size_t col)
{
    return &t->cols[col];
}

/* The index of that name, or NULL. */
const tsd_index *tsd_table_index(const tsd_table *t, const char *name);

/* Type names as in schema JSON ("integer", "bigInt", ...); "key" for TSD_KEY. */
const char *tsd_type_name(tsd_type type);
const char *tsd_pk_type_name(tsd_pk_type type);
const char *tsd_fk_action_name(tsd_fk_action a);
const char *tsd_precision_name(tsd_precision p);

/* Whether a name matches ^[A-Za-z][A-Za-z0-9_]*$ and has 1..max bytes. */
int tsd_name_ok(const char *s, size_t max);

/* Check a set of new tables together, with the existing ones (either array
 * may be empty and then NULL):
 *  - table names unique in the set (TS_ERR_VALIDATION) and not taken by an
 *    existing table (TS_ERR_TABLE_EXISTS); tableIds unique across both;
 *  - each foreign key: referencedTable exists (in the set or existing);
 *    referencedFields exist, as many as fields, are the referenced table's
 *    primary key or exactly the fields of one of its unique indexes; each
 *    pair of types is compatible (docs/schema.md); a global table references
 *    only global tables;
 *  - an order of creation in which every table comes after the tables it
 *    references (a table may reference itself): order_out (may be NULL)
 *    receives n positions into tables[].  A cycle is refused, the message
 *    naming it: "foreign keys form a cycle: a -> b -> a".
 * The tables are not modified. */
int tsd_schema_set_check(ts_env *env, const tsd_table *const *tables, size_t n,
                         const tsd_table *const *existing, size_t nexisting,
                         size_t *order_out);

#endif
