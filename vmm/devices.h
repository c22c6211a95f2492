/*
 * devices.h — the device models an operator can assign to a domain
 * (dev=KIND in a domain SPEC), by name. Each kind knows how to add itself
 * to a domain's PCI bus.
 */
#ifndef MOAT_DEVICES_H
#define MOAT_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pci_bus;

#define DEVICE_GSI_BASE 16u     /* INTA# of slot s is IOAPIC input 16 + s */
#define DEVICES_PER_DOMAIN_MAX 7u   /* slots 1..7: GSIs 17..23 of 24 pins */

/* Is kind a device model moat can build? */
bool device_kind_known(const char *kind);
/* Space-separated list of the known kinds, for error messages and --help. */
const char *device_kinds(void);
/* Add a device of kind, named name, in the bus's next slot, configured by
 * opts ("key=value:key=value", may be ""); the model validates opts. */
bool device_create(const char *kind, const char *name, const char *opts, struct pci_bus *bus,
                   char *err, size_t errlen);

#endif /* MOAT_DEVICES_H */
