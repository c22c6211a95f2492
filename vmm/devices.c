/* Device model registry (contract in devices.h). */
#include <stdio.h>
#include <string.h>
#include "devices.h"
#include "gvnic.h"
#include "nvme.h"
#include "pci.h"
#include "testdev.h"
#include "virtio_net.h"

static const struct {
    const char *kind;
    bool (*create)(struct pci_bus *bus, const char *name, uint32_t gsi, const char *opts,
                   char *err, size_t errlen);
} kinds[] = {
    { "testdev", testdev_create },
    { "nvme", nvme_create },
    { "virtio-net", virtio_net_create },
    { "gvnic", gvnic_create },
};

bool device_kind_known(const char *kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i].kind, kind))
            return true;
    return false;
}

const char *device_kinds(void)
{
    static char list[128];
    if (!list[0])
        for (size_t i = 0, n = 0; i < sizeof kinds / sizeof kinds[0] && n < sizeof list; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? " " : "", kinds[i].kind);
    return list;
}

bool device_create(const char *kind, const char *name, const char *opts, struct pci_bus *bus,
                   char *err, size_t errlen)
{
    unsigned slot = 1;
    while (slot < PCI_SLOTS_MAX && bus->slot[slot])
        slot++;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i].kind, kind))
            return kinds[i].create(bus, name, DEVICE_GSI_BASE + slot, opts ? opts : "", err,
                                   errlen);
    snprintf(err, errlen, "unknown device kind '%s' (known: %s)", kind, device_kinds());
    return false;
}
