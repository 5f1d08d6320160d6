#include "base/status.h"

const char *tsstatus_text(int code)
{
    switch (code) {
    case TS_OK: return "ok";
    case TS_PARTIAL: return "partial success";
    case TS_ERR_UNKNOWN: return "unknown error";
    case TS_ERR_UNIQUE: return "unique constraint violated";
    case TS_ERR_PRIMARY_KEY: return "duplicate primary key";
    case TS_ERR_FOREIGN_KEY: return "foreign key constraint violated";
    case TS_ERR_NOT_NULL: return "not-null constraint violated";
    case TS_ERR_VALIDATION: return "validation failed";
    case TS_ERR_NOT_FOUND: return "not found";
    case TS_ERR_TABLE_EXISTS: return "table exists";
    case TS_ERR_FIELD_EXISTS: return "field exists";
    case TS_ERR_INDEX_EXISTS: return "index exists";
    case TS_ERR_RESOURCE: return "resource limit reached";
    case TS_ERR_IO: return "I/O error";
    case TS_ERR_DB: return "database error";
    case TS_ERR_TIMEOUT: return "timed out waiting for another writer";
    case TS_ERR_INVALID: return "invalid argument";
    case TS_ERR_CORRUPT: return "database corrupt";
    case TS_ERR_KEY: return "wrong or missing encryption key";
    case TS_ERR_PLUGIN: return "plugin error";
    case TS_ERR_CONFIG: return "configuration error";
    case TS_ERR_NOMEM: return "out of memory";
    case TS_ERR_AUTH: return "authentication failed";
    case TS_ERR_LOCKED: return "database locked by another process";
    case TS_ERR_FORMAT: return "unsupported file format";
    case TS_ERR_INSECURE: return "insecure module not allowed";
    case TS_ERR_READONLY: return "writes stopped; reopen the database";
    case TS_ERR_UNSUPPORTED: return "operation not supported";
    case TS_ERR_RANGE: return "value out of range";
    default: return "unrecognised status code";
    }
}
