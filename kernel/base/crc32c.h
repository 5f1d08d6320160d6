/* CRC-32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2. */
#ifndef TS_BASE_CRC32C_H
#define TS_BASE_CRC32C_H
#include <stddef.h>
#include <stdint.h>
/* Continue crc over n bytes (start with crc = 0). */
uint32_t tscrc32c(uint32_t crc, const void *buf, size_t n);
#endif
