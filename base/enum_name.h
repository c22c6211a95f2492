/* enum_name.h — name of an enum value from a designated-initializer table,
 * or "unknown" for values outside it or missing from it. */
#ifndef MOAT_ENUM_NAME_H
#define MOAT_ENUM_NAME_H

#include <stddef.h>

static inline const char *enum_name(const char *const *table, size_t n, unsigned v)
{
    return v < n && table[v] ? table[v] : "unknown";
}
#define ENUM_NAME(table, v) enum_name((table), sizeof(table) / sizeof((table)[0]), (unsigned)(v))

#endif /* MOAT_ENUM_NAME_H */
