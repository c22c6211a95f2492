/*
 * vm.h — one KVM VM with one vCPU and private RAM at guest-physical 0.
 *
 * vm_create builds the VM (TSS, identity map, RAM memslot); the caller adds
 * its other memslots (DMA windows), then vm_create_vcpu adds the in-kernel
 * irqchip and the vCPU with the host's CPUID, and vm_enter_long_mode sets
 * its registers for a 64-bit entry. In that order for speed: creating the
 * irqchip starts a kernel grace period that the next memslot change waits
 * for (5-8 ms on the hosts measured); memslots set before it cost ~0.1 ms. Error policy: false + err.
 * vm_destroy releases everything and is safe on a partially created VM.
 * RAM comes from a fresh anonymous mapping, so every domain starts zeroed
 * and memory never carries over between incarnations.
 */
#ifndef MOAT_VM_H
#define MOAT_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kvm_host.h"

struct vm {
    int fd;
    int vcpu_fd;
    struct kvm_run *run;
    size_t run_size;
    uint8_t *ram;
    uint64_t ram_size;
    uint64_t tsc_khz;
};

bool vm_create(struct vm *vm, const struct kvm_host *host, uint64_t ram_size,
               char *err, size_t errlen);
bool vm_create_vcpu(struct vm *vm, const struct kvm_host *host, char *err, size_t errlen);
bool vm_enter_long_mode(struct vm *vm, uint64_t entry, uint64_t arg0, uint64_t cr3,
                        char *err, size_t errlen);
/* Deliver one fixed, edge MSI with vector to APIC ID 0. */
bool vm_signal_msi(struct vm *vm, uint32_t vector);
/* Deliver an MSI message as a device wrote it (caller validated it). */
bool vm_signal_msi_msg(struct vm *vm, uint64_t addr, uint32_t data);
/* Drive an in-kernel IOAPIC input (level interrupts: 1 asserted). */
bool vm_irq_line(struct vm *vm, uint32_t gsi, bool level);
/* Memslots beyond RAM (slot 0): DMA windows and session rings. */
#define VM_SLOT_FIRST_EXTRA 1u
bool vm_map_memory(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t len, void *host);
void vm_unmap_memory(struct vm *vm, uint32_t slot);
/* Route gsi (>= 24, above the IOAPIC pins) to an edge MSI on vector;
 * session kicks arrive there through irqfds. */
bool vm_route_msi_gsi(struct vm *vm, uint32_t gsi, uint32_t vector);
/* Attach (or detach) an eventfd whose writes raise gsi in the guest. */
bool vm_irqfd(struct vm *vm, int fd, uint32_t gsi, bool assign);
/* Attach (or detach) an eventfd signalled, inside KVM and without a return
 * to the VMM, by any len-byte guest write to MMIO gpa. */
bool vm_ioeventfd(struct vm *vm, int fd, bool pio, uint64_t addr, uint32_t len, bool assign);
void vm_destroy(struct vm *vm);
/* vm_destroy in the background: vm is reset at once, its kernel objects
 * and RAM are released by a detached thread (synchronously if none can be
 * started). Its vCPU must never run again. */
void vm_release(struct vm *vm);

#endif /* MOAT_VM_H */
