/*
 * domain_internal.h — what the parts of a domain share; nothing outside
 * them includes it. The parts:
 *   domain.c         state machine, the domain thread and its run loop,
 *                    ending an incarnation, restart decisions, stop,
 *                    inject, watchdog checks
 *   domain_setup.c   the image, the threads' CPUs, DMA windows, building
 *                    an incarnation's VM
 *   domain_ports.c   platform ports (the guest's calls) and the PCI bus's
 *                    platform hooks (its device models' calls): checked,
 *                    counted, audited, the policy applied
 *   domain_exits.c   decoding VM exits to the exit buses
 */
#ifndef MOAT_DOMAIN_INTERNAL_H
#define MOAT_DOMAIN_INTERNAL_H

#include <linux/kvm.h>
#include "audit.h"
#include "domain.h"
#include "platform_dev.h"

/* One record in this domain's audit trail (any thread). */
#define AUDIT(d, kind, ...) audit_record(&(d)->sup->audit, (d)->id, (kind), __VA_ARGS__)

/* Log the first 8 of a repeated event, then powers of two. */
bool domain_should_log(uint64_t count);
/* Move to state to (sup->lock held); an illegal change is logged, refused. */
void domain_set_state(struct domain *d, enum domain_state to);
/* A VMM-side failure as a crash record. */
void domain_crash_vmm_error(struct crash_info *ci, const char *msg);
/* End the incarnation for a policy violation (any thread: a message). */
void domain_policy_kill(struct domain *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
uint64_t domain_read_heartbeat(const struct domain *d);
uint64_t domain_total_exits(const struct domain *d);

extern const struct platform_dev_ops domain_plat_ops;
extern const struct pci_platform_ops domain_pci_ops;

/* vCPU thread: one exit each. */
void domain_handle_io(struct domain *d, struct kvm_run *run);
void domain_handle_mmio(struct domain *d, struct kvm_run *run);
/* Add the vCPU's registers to a crash record the guest could not fill. */
void domain_add_vcpu_regs(struct domain *d, struct crash_info *ci);

/* Install the signal that gets a domain thread out of KVM_RUN (once). */
void domain_kick_setup(void);
/* Build the next incarnation's VM (the domain thread, no lock held). */
bool domain_build_incarnation(struct domain *d, char *err, size_t errlen);

#endif /* MOAT_DOMAIN_INTERNAL_H */
