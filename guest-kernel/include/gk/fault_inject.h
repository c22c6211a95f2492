/*
 * gk/fault_inject.h — faults injected from outside (moatctl inject): the
 * VMM writes a request into the platform page (moat/platform_abi.h) and
 * the run loop raises it here, mid-work. Kernel kinds (MOAT_FAULTS_KERNEL)
 * are raised by the kernel itself; device kinds go to the driver's hook
 * (dd_fault_hook in dd.h). Ring 3, on the domain's one thread.
 */
#ifndef GK_FAULT_INJECT_H
#define GK_FAULT_INJECT_H

#include <stdbool.h>
#include <stdint.h>

/* Offer the kernel kinds to the VMM (ring 0, once at boot). */
void gk_fault_init(void);
/* Raise the newest request if it was not raised yet. Most kinds do not
 * return; false when there was nothing new (or the kind was declined). */
bool gk_fault_poll(void);

#endif /* GK_FAULT_INJECT_H */
