/* string.h for lwIP built freestanding in the bare app domains: the
 * kernel's string functions (guest-kernel/string.c). */
#ifndef MOAT_LWIP_LIBC_STRING_H
#define MOAT_LWIP_LIBC_STRING_H
#include "dd_kstring.h"
#endif
