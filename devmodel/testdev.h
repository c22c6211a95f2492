/*
 * testdev.h — the test DMA engine (register interface in
 * moat/testdev_regs.h). Copies run synchronously on the vCPU thread at the
 * doorbell, so quiesce has nothing in flight to wait for.
 */
#ifndef MOAT_TESTDEV_H
#define MOAT_TESTDEV_H

#include <stdbool.h>
#include <stddef.h>
#include "pci.h"

/* Add a testdev function to bus (INTA# on gsi); it takes no options.
 * False + err on failure. */
bool testdev_create(struct pci_bus *bus, const char *name, uint32_t gsi, const char *opts,
                    char *err, size_t errlen);

#endif /* MOAT_TESTDEV_H */
