/*
 * kvm_host.h — the host's KVM: opened once per moat process, checked for
 * every capability moat relies on, shared read-only by all domains.
 *
 * Error policy: kvm_host_open returns false and writes an actionable
 * message into err (what failed and what to do) — it never exits.
 */
#ifndef MOAT_KVM_HOST_H
#define MOAT_KVM_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/kvm.h>

struct kvm_host {
    int fd;                          /* /dev/kvm */
    size_t vcpu_mmap_size;           /* size of struct kvm_run mapping */
    struct kvm_cpuid2 *cpuid;        /* supported CPUID, x2APIC/TSC-deadline set */
};

bool kvm_host_open(struct kvm_host *h, char *err, size_t errlen);
/* Does the CPUID moat gives domains offer 1 GiB pages? */
bool kvm_host_gb_pages(const struct kvm_host *h);
void kvm_host_close(struct kvm_host *h);

#endif /* MOAT_KVM_HOST_H */
