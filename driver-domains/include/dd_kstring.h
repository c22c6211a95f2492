/* dd_kstring.h — the few libc string functions the kernel, its drivers (and
 * the compiler) need; freestanding implementations in
 * guest-kernel/string.c. Part of the driver API (dd.h includes it). */
#ifndef DD_KSTRING_H
#define DD_KSTRING_H

#include <stddef.h>

void *memset(void *d, int c, size_t n);
void *memcpy(void *restrict d, const void *restrict s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#endif /* DD_KSTRING_H */
