/* KVM VM + vCPU (contract in vm.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "boot_setup.h"
#include "vm.h"

/* Just below 4 GiB, above the MMIO hole users (layout.h); KVM needs 3 pages
 * for the TSS and one for the identity map (Intel only, harmless on AMD). */
#define VM_TSS_ADDR       0xFFFBD000ull
#define VM_IDENTITY_ADDR  0xFFFBC000ull

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); goto fail; } while (0)

bool vm_create(struct vm *vm, const struct kvm_host *host, uint64_t ram_size,
               char *err, size_t errlen)
{
    memset(vm, 0, sizeof *vm);
    vm->fd = vm->vcpu_fd = -1;
    vm->fd = ioctl(host->fd, KVM_CREATE_VM, 0);
    if (vm->fd < 0)
        FAIL("KVM_CREATE_VM: %s", strerror(errno));
    if (ioctl(vm->fd, KVM_SET_TSS_ADDR, VM_TSS_ADDR) < 0)
        FAIL("KVM_SET_TSS_ADDR: %s", strerror(errno));
    uint64_t idmap = VM_IDENTITY_ADDR;
    if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
        FAIL("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
    vm->ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (vm->ram == MAP_FAILED) {
        vm->ram = NULL;
        FAIL("cannot map %llu MiB of guest RAM: %s",
             (unsigned long long)(ram_size >> 20), strerror(errno));
    }
    vm->ram_size = ram_size;
    struct kvm_userspace_memory_region slot = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = ram_size,
        .userspace_addr = (uint64_t)(uintptr_t)vm->ram,
    };
    if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
        FAIL("KVM_SET_USER_MEMORY_REGION (RAM): %s", strerror(errno));
    return true;
fail:
    vm_destroy(vm);
    return false;
}

bool vm_create_vcpu(struct vm *vm, const struct kvm_host *host, char *err, size_t errlen)
{
    if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
        FAIL("KVM_CREATE_IRQCHIP: %s", strerror(errno));
    vm->vcpu_fd = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
    if (vm->vcpu_fd < 0)
        FAIL("KVM_CREATE_VCPU: %s", strerror(errno));
    vm->run_size = host->vcpu_mmap_size;
    vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
    if (vm->run == MAP_FAILED) {
        vm->run = NULL;
        FAIL("mmap of kvm_run: %s", strerror(errno));
    }
    if (ioctl(vm->vcpu_fd, KVM_SET_CPUID2, host->cpuid) < 0)
        FAIL("KVM_SET_CPUID2: %s", strerror(errno));
    int khz = ioctl(vm->vcpu_fd, KVM_GET_TSC_KHZ, 0);
    if (khz <= 0)
        FAIL("KVM_GET_TSC_KHZ: %s", strerror(errno));
    vm->tsc_khz = (uint64_t)khz;
    return true;
fail:
    return false;       /* the caller destroys the VM */
}

bool vm_enter_long_mode(struct vm *vm, uint64_t entry, uint64_t arg0, uint64_t cr3,
                        char *err, size_t errlen)
{
    struct kvm_sregs s;
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0) {
        snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
        return false;
    }
    boot_long_mode_sregs(&s, cr3);
    if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s) < 0) {
        snprintf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
        return false;
    }
    struct kvm_regs r;
    memset(&r, 0, sizeof r);
    r.rip = entry;
    r.rdi = arg0;
    r.rflags = 0x2;     /* bit 1 is reserved-set; interrupts off */
    if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &r) < 0) {
        snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
        return false;
    }
    return true;
}

bool vm_signal_msi(struct vm *vm, uint32_t vector)
{
    /* Intel SDM 10.11.1: address 0xFEE00000 | dest << 12 (dest 0, physical);
     * data = vector, fixed delivery, edge trigger. */
    return vm_signal_msi_msg(vm, 0xFEE00000u, vector & 0xFF);
}

bool vm_signal_msi_msg(struct vm *vm, uint64_t addr, uint32_t data)
{
    struct kvm_msi msi = { .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32),
                           .data = data };
    return ioctl(vm->fd, KVM_SIGNAL_MSI, &msi) > 0;
}

bool vm_irq_line(struct vm *vm, uint32_t gsi, bool level)
{
    struct kvm_irq_level l = { .irq = gsi, .level = level };
    return ioctl(vm->fd, KVM_IRQ_LINE, &l) == 0;
}

bool vm_map_memory(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t len, void *host)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot, .guest_phys_addr = gpa, .memory_size = len,
        .userspace_addr = (uint64_t)(uintptr_t)host,
    };
    return vm->fd >= 0 && slot >= VM_SLOT_FIRST_EXTRA &&
           ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) == 0;
}

void vm_unmap_memory(struct vm *vm, uint32_t slot)
{
    struct kvm_userspace_memory_region r = { .slot = slot };
    if (vm->fd >= 0 && slot >= VM_SLOT_FIRST_EXTRA)
        ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r);
}

bool vm_route_msi_gsi(struct vm *vm, uint32_t gsi, uint32_t vector)
{
    /* KVM_SET_GSI_ROUTING replaces the whole table: keep the in-kernel
     * IOAPIC's pins (GSI 0..23, INTx of assigned devices) and add gsi. */
    enum { IOAPIC_PINS = 24 };
    if (gsi < IOAPIC_PINS || vector < 32 || vector > 254)
        return false;
    size_t n = IOAPIC_PINS + 1;
    struct kvm_irq_routing *r = calloc(1, sizeof *r + n * sizeof r->entries[0]);
    if (!r)
        return false;
    r->nr = (uint32_t)n;
    for (uint32_t i = 0; i < IOAPIC_PINS; i++)
        r->entries[i] = (struct kvm_irq_routing_entry){
            .gsi = i, .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = i } };
    r->entries[IOAPIC_PINS] = (struct kvm_irq_routing_entry){
        .gsi = gsi, .type = KVM_IRQ_ROUTING_MSI,
        .u.msi = { .address_lo = 0xFEE00000u, .data = vector } };
    bool ok = vm->fd >= 0 && ioctl(vm->fd, KVM_SET_GSI_ROUTING, r) == 0;
    free(r);
    return ok;
}

bool vm_irqfd(struct vm *vm, int fd, uint32_t gsi, bool assign)
{
    struct kvm_irqfd f = { .fd = (uint32_t)fd, .gsi = gsi,
                           .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };
    return vm->fd >= 0 && ioctl(vm->fd, KVM_IRQFD, &f) == 0;
}

bool vm_ioeventfd(struct vm *vm, int fd, bool pio, uint64_t addr, uint32_t len, bool assign)
{
    struct kvm_ioeventfd e = { .addr = addr, .len = len, .fd = fd,
                               .flags = (assign ? 0u : KVM_IOEVENTFD_FLAG_DEASSIGN) |
                                        (pio ? KVM_IOEVENTFD_FLAG_PIO : 0u) };
    return vm->fd >= 0 && ioctl(vm->fd, KVM_IOEVENTFD, &e) == 0;
}

static void *reap(void *arg)
{
    vm_destroy(arg);
    free(arg);
    return NULL;
}

void vm_release(struct vm *vm)
{
    /* Closing a VM's fd waits for the kernel's grace periods (~10-15 ms
     * here), all of it on the restart path: a thread of its own does it. */
    struct vm *box = malloc(sizeof *box);
    pthread_attr_t attr;
    pthread_t t;
    bool handed = false;
    if (box && pthread_attr_init(&attr) == 0) {
        *box = *vm;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        handed = pthread_create(&t, &attr, reap, box) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!handed) {
        free(box);
        vm_destroy(vm);
        return;
    }
    memset(vm, 0, sizeof *vm);
    vm->fd = vm->vcpu_fd = -1;
}

void vm_destroy(struct vm *vm)
{
    if (vm->run)
        munmap(vm->run, vm->run_size);
    if (vm->vcpu_fd >= 0)
        close(vm->vcpu_fd);
    if (vm->fd >= 0)
        close(vm->fd);
    if (vm->ram)
        munmap(vm->ram, vm->ram_size);
    memset(vm, 0, sizeof *vm);
    vm->fd = vm->vcpu_fd = -1;
}
