/*
 * arch/cc.h — lwIP's compiler and platform port for the bare app domains:
 * freestanding (no libc headers past libc/), little endian; diagnostics go
 * to the domain's log and a failed assertion panics the domain with where
 * it failed; LWIP_RAND is lwip_port.c's generator.
 */
#ifndef MOAT_LWIP_ARCH_CC_H
#define MOAT_LWIP_ARCH_CC_H

#include <stdint.h>

#define LWIP_NO_INTTYPES_H 1
#define LWIP_NO_CTYPE_H 1
#define LWIP_NO_LIMITS_H 1
#define BYTE_ORDER LITTLE_ENDIAN
#define LWIP_ERR_T int
#define SZT_F "zu"

void moat_lwip_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void moat_lwip_assert(const char *what, const char *file, int line);
uint32_t moat_lwip_rand(void);

#define LWIP_PLATFORM_DIAG(x) do { moat_lwip_diag x; } while (0)
#define LWIP_PLATFORM_ASSERT(x) moat_lwip_assert((x), __FILE__, __LINE__)
#define LWIP_RAND() moat_lwip_rand()

#endif /* MOAT_LWIP_ARCH_CC_H */
