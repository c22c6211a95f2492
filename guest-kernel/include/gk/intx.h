/*
 * gk/intx.h — legacy level-triggered INTx through the IOAPIC (ring 0).
 *
 * A device's INTA# (its GSI comes from boot info, as ACPI _PRT would give
 * it) is bound to an event vector. A level interrupt would fire again at
 * once after EOI while the device still asserts it, so the kernel masks the
 * pin when the interrupt arrives and ring 3 unmasks it (intx_ack) after the
 * driver has cleared the cause in the device.
 */
#ifndef GK_INTX_H
#define GK_INTX_H

#include <stdbool.h>
#include <stdint.h>

/* Route gsi (an assigned device's INTA#) to event vector, unmasked.
 * Returns 0 or -SYS_EINVAL when gsi is not an assigned device's INTx or
 * vector is not an allocated event vector. */
int64_t intx_bind(uint32_t gsi, uint32_t vector);
/* Unmask gsi again; -SYS_EINVAL when it is not bound. */
int64_t intx_ack(uint32_t gsi);
/* Trap path, before EOI: mask the pin bound to vector, if any. */
void intx_on_vector(uint32_t vector);

#endif /* GK_INTX_H */
