/* dd_internal.h — what the dd_*.c files share and drivers do not see. */
#ifndef GK_DD_INTERNAL_H
#define GK_DD_INTERNAL_H

#include <stdint.h>
#include "dd.h"

/* IOAPIC input of d's INTA#, MOAT_NO_GSI when it has none. */
uint32_t dd_dev_intx_gsi(const struct dd_dev *d);

#endif /* GK_DD_INTERNAL_H */
