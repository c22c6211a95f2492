/* stdlib.h for lwIP built freestanding in the bare app domains: lwIP's
 * core uses atoi alone (netif_find); lwip_port.c has it. */
#ifndef MOAT_LWIP_LIBC_STDLIB_H
#define MOAT_LWIP_LIBC_STDLIB_H
#include <stddef.h>
int atoi(const char *s);
#endif
