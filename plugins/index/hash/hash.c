/* The hash index module: being written. */
#include <tostore/index.h>
