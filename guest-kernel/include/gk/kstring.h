/* gk/kstring.h — the kernel's string functions: the driver API's set
 * (dd_kstring.h), one declaration for both. */
#ifndef GK_KSTRING_H
#define GK_KSTRING_H

#include "dd_kstring.h"

#endif /* GK_KSTRING_H */
