/* The btree index module: being written. */
#include <tostore/index.h>
