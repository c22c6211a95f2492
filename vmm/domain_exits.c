/* Decoding a domain's VM exits: port I/O and MMIO to the exit buses,
 * hostile accesses to the policy, registers for crashes the guest could
 * not report (contract in domain_internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "boot_setup.h"
#include "devices.h"
#include "domain.h"
#include "elf_load.h"
#include "enum_name.h"
#include "capsvc.h"
#include "moat/session_abi.h"
#include "log.h"
#include "moat/layout.h"
#include "domain_internal.h"
#include "supervisor.h"


void domain_handle_io(struct domain *d, struct kvm_run *run)
{
    DSTAT_INC(d, exits_io);
    uint32_t size = run->io.size, count = run->io.count;
    uint64_t off = run->io.data_offset;
    if ((size != 1 && size != 2 && size != 4) ||
        off > d->vm.run_size || (uint64_t)size * count > d->vm.run_size - off) {
        struct crash_info ci;
        domain_crash_vmm_error(&ci, "KVM reported a malformed I/O exit");
        domain_end_post(d, DOMAIN_CRASHED, &ci, 0);
        return;
    }
    uint8_t *data = (uint8_t *)run + off;
    bool out = run->io.direction == KVM_EXIT_IO_OUT;
    for (uint32_t i = 0; i < count; i++) {
        struct bus_access a = { .addr = run->io.port, .size = size, .is_write = out };
        if (out)
            memcpy(&a.value, data + (size_t)i * size, size);
        enum bus_result r = bus_dispatch(&d->pio, &a);
        if (!out)
            memcpy(data + (size_t)i * size, &a.value, size);
        if (r == BUS_UNCLAIMED) {
            uint64_t unclaimed = DSTAT_INC(d, unclaimed_pio);
            if (domain_should_log(unclaimed))
                log_info(d->cfg.name, "unclaimed PIO %s port 0x%x (%u bytes): reads 0, "
                         "writes ignored (%llu so far)", out ? "write" : "read",
                         run->io.port, size, (unsigned long long)unclaimed);
        } else if (r == BUS_VIOLATION) {
            domain_policy_kill(d, "device refused hostile PIO %s at port 0x%x (%u bytes)",
                        out ? "write" : "read", run->io.port, size);
            return;
        }
    }
}

void domain_handle_mmio(struct domain *d, struct kvm_run *run)
{
    DSTAT_INC(d, exits_mmio);
    uint32_t len = run->mmio.len;
    const char *dir = run->mmio.is_write ? "write" : "read";
    if (len == 0 || len > 8) {
        domain_policy_kill(d, "MMIO %s at GPA 0x%llx with unsupported width %u", dir,
                    (unsigned long long)run->mmio.phys_addr, len);
        return;
    }
    struct bus_access a = { .addr = run->mmio.phys_addr, .size = len,
                            .is_write = run->mmio.is_write };
    if (a.is_write)
        memcpy(&a.value, run->mmio.data, len);
    enum bus_result r = bus_dispatch(&d->mmio, &a);
    if (r == BUS_UNCLAIMED) {
        domain_policy_kill(d, "MMIO %s at GPA 0x%llx (%u bytes) outside every assigned region",
                    dir, (unsigned long long)run->mmio.phys_addr, len);
        return;
    }
    if (r == BUS_VIOLATION) {
        domain_policy_kill(d, "device refused hostile MMIO %s at GPA 0x%llx (%u bytes)",
                    dir, (unsigned long long)run->mmio.phys_addr, len);
        return;
    }
    if (!a.is_write)
        memcpy(run->mmio.data, &a.value, len);
}

/* Where was the vCPU? For crashes the guest could not report itself. */
void domain_add_vcpu_regs(struct domain *d, struct crash_info *ci)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (ci->have_regs || ioctl(d->vm.vcpu_fd, KVM_GET_REGS, &r) < 0 ||
        ioctl(d->vm.vcpu_fd, KVM_GET_SREGS, &s) < 0)
        return;
    ci->have_regs = true;
    ci->regs = (struct moat_regs){
        .rax = r.rax, .rbx = r.rbx, .rcx = r.rcx, .rdx = r.rdx, .rsi = r.rsi,
        .rdi = r.rdi, .rbp = r.rbp, .r8 = r.r8, .r9 = r.r9, .r10 = r.r10,
        .r11 = r.r11, .r12 = r.r12, .r13 = r.r13, .r14 = r.r14, .r15 = r.r15,
        .rip = r.rip, .rflags = r.rflags, .rsp = r.rsp, .cs = s.cs.selector,
        .ss = s.ss.selector, .cr0 = s.cr0, .cr2 = s.cr2, .cr3 = s.cr3, .cr4 = s.cr4,
    };
    size_t n = strlen(ci->detail);
    snprintf(ci->detail + n, sizeof ci->detail - n, "; vCPU at RIP 0x%llx RFLAGS 0x%llx",
             (unsigned long long)r.rip, (unsigned long long)r.rflags);
}

