/* Host KVM discovery (contract in kvm_host.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "kvm_host.h"

#define CPUID_MAX_ENTRIES 256
#define CPUID1_ECX_X2APIC       (1u << 21)
#define CPUID1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID1_ECX_HYPERVISOR   (1u << 31)

static const struct { int cap; const char *what; } required_caps[] = {
    { KVM_CAP_USER_MEMORY, "user memory slots" },
    { KVM_CAP_IRQCHIP, "in-kernel irqchip" },
    { KVM_CAP_SIGNAL_MSI, "KVM_SIGNAL_MSI" },
    { KVM_CAP_IMMEDIATE_EXIT, "immediate_exit" },
    { KVM_CAP_TSC_DEADLINE_TIMER, "TSC-deadline timer" },
    { KVM_CAP_GET_TSC_KHZ, "KVM_GET_TSC_KHZ" },
    { KVM_CAP_IOEVENTFD, "ioeventfd" },
    { KVM_CAP_IRQFD, "irqfd" },
};

bool kvm_host_open(struct kvm_host *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    h->fd = -1;
    h->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (h->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open /dev/kvm: %s — %s", strerror(e),
                 e == ENOENT ? "this machine has no KVM (enable virtualization "
                               "or nested KVM, and load kvm_intel/kvm_amd)"
                             : "run as root or add your user to the 'kvm' group");
        return false;
    }
    int v = ioctl(h->fd, KVM_GET_API_VERSION, 0);
    if (v != KVM_API_VERSION) {
        snprintf(err, errlen, "KVM API version %d, moat needs %d", v, KVM_API_VERSION);
        goto fail;
    }
    for (size_t i = 0; i < sizeof required_caps / sizeof required_caps[0]; i++) {
        if (ioctl(h->fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
            snprintf(err, errlen, "host KVM lacks %s (capability %d)",
                     required_caps[i].what, required_caps[i].cap);
            goto fail;
        }
    }
    int sz = ioctl(h->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz <= 0) {
        snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE failed: %s", strerror(errno));
        goto fail;
    }
    h->vcpu_mmap_size = (size_t)sz;
    h->cpuid = calloc(1, sizeof *h->cpuid + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
    if (!h->cpuid) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    h->cpuid->nent = CPUID_MAX_ENTRIES;
    if (ioctl(h->fd, KVM_GET_SUPPORTED_CPUID, h->cpuid) < 0) {
        snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID failed: %s", strerror(errno));
        goto fail;
    }
    for (unsigned i = 0; i < h->cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &h->cpuid->entries[i];
        if (e->function == 1) {
            /* The in-kernel LAPIC emulates x2APIC and the deadline timer. */
            e->ecx |= CPUID1_ECX_X2APIC | CPUID1_ECX_TSC_DEADLINE | CPUID1_ECX_HYPERVISOR;
            e->ebx &= 0x00FFFFFFu;          /* initial APIC ID 0 */
        }
    }
    return true;
fail:
    kvm_host_close(h);
    return false;
}

void kvm_host_close(struct kvm_host *h)
{
    if (h->fd >= 0)
        close(h->fd);
    free(h->cpuid);
    memset(h, 0, sizeof *h);
    h->fd = -1;
}

bool kvm_host_gb_pages(const struct kvm_host *h)
{
    for (unsigned i = 0; h->cpuid && i < h->cpuid->nent; i++)
        if (h->cpuid->entries[i].function == 0x80000001u)
            return h->cpuid->entries[i].edx & (1u << 26);
    return false;
}
