/*
 * nvme_shadow.h — an NVMe controller assigned to a ring-3 domain on a
 * machine without an IOMMU (DESIGN §5.5). The domain reaches BAR 0 only
 * through the monitor (dom_pci.c), which:
 *   - probes the controller first, on its own queues, for each namespace's
 *     LBA size (a transfer's length decides how its PRPs are read);
 *   - keeps ASQ/ACQ virtual and, at CC.EN, gives the controller a shadow
 *     admin SQ of its own and the domain's ACQ translated;
 *   - at each SQ tail doorbell copies the newly published commands into
 *     that queue's shadow SQ, checking and translating every address
 *     (queue bases, PRP1/PRP2, each PRP-list entry into a monitor-owned
 *     list page) and replacing a command it refuses by one that fails
 *     harmlessly with the same CID; nothing the domain changes after the
 *     copy reaches the device;
 *   - refuses writes to every other register that carries an address or
 *     resets more than the controller (CMB, PMR, boot partitions, NSSR).
 * Completion queues stay in the domain's window (translated once): they
 * carry no addresses.
 */
#ifndef BARE_NVME_SHADOW_H
#define BARE_NVME_SHADOW_H

#include <stdbool.h>
#include <stdint.h>

struct dom;
struct nvme_shadow;

#define NVME_SHADOW_NS 16u     /* namespaces the monitor tracks */

/* Probe the controller at regs (BAR 0, mapped): NULL and *why on failure. */
struct nvme_shadow *nvme_shadow_attach(volatile uint8_t *regs, uint64_t tsc_khz, const char **why);
/* Without a probe, for host tests and fuzzing: what the probe would have
 * found (CAP.DSTRD, CAP.MQES + 1, the largest transfer, each namespace's
 * LBA shift or 0). One such controller at a time (a static instance). */
struct nvme_shadow *nvme_shadow_fixed(volatile uint8_t *regs, uint32_t dstrd, uint32_t mqes,
                                      uint64_t max_xfer, const uint8_t lbads[NVME_SHADOW_NS + 1]);
/* The domain's access to BAR 0 at off (width 4 or 8; write when is_write). */
uint64_t nvme_shadow_mmio(struct nvme_shadow *s, struct dom *d, uint64_t off, unsigned width,
                          bool is_write, uint64_t v);
/* Stop the controller (CC.EN = 0 until CSTS.RDY = 0) and forget the
 * domain's queues; false when it did not stop in CAP.TO. */
bool nvme_shadow_reset(struct nvme_shadow *s);
/* An IOMMU translates this controller's DMA (vtd.h): queues, commands and
 * PRPs go to it as the domain wrote them; the address registers that
 * reach beyond DMA (CMB, PMR, boot partitions, NSSR) stay refused. */
void nvme_shadow_passthrough(struct nvme_shadow *s, bool on);
/* One console line: namespaces, commands copied and refused. */
void nvme_shadow_describe(const struct nvme_shadow *s);

#endif /* BARE_NVME_SHADOW_H */
