/* Fixed texts of status codes (public as ts_strerror). */
#ifndef TS_BASE_STATUS_H
#define TS_BASE_STATUS_H
#include <tostore/status.h>
const char *tsstatus_text(int code);
#endif
