/*
 * pci.h — the PCI host bridge a domain sees: one bus (bus 0) behind an ECAM
 * window, a host bridge at 00:00.0, and up to PCI_SLOTS_MAX - 1 device
 * functions (one function per slot), each owned by a device model.
 *
 * Per function the model keeps a 4 KiB configuration space with a write
 * mask and a write-1-to-clear mask per byte. Writes are hostile input:
 *  - a write that would change a read-only bit (IDs, class, header type,
 *    capability pointers and contents, ...) is refused whole and counted;
 *  - a BAR accepts the sizing pattern (all ones; it then reads back the
 *    size mask), its current address, or a new address that is aligned,
 *    inside the bus's memory/I/O window and overlaps no other BAR or the
 *    ECAM window; anything else is refused and counted;
 *  - misaligned or out-of-range ECAM accesses are refused and counted.
 * Every refusal calls ops->refused (the domain applies its policy).
 *
 * BAR accesses reach the owning model's bar_access with the offset inside
 * the BAR, only while the command register enables that decode (else they
 * read all ones and writes drop, like a master abort). The MSI-X table and
 * PBA, when the function has the capability, are emulated here: per-entry
 * and function masks, pending bits set while masked and delivered on
 * unmask, message address checked before delivery.
 *
 * DMA: a model reaches domain memory only through pci_dma_map (bus-master
 * enable, then the broker).
 *
 * Threads: configuration and BAR accesses come from the domain's vCPU
 * thread. A model may also run a worker thread of its own: it may call
 * pci_dma_map/unmap, pci_msix_notify, pci_intx_set, pci_refuse and
 * pci_command from it (interrupt state is under the bus's irq_lock; the
 * platform hooks are thread-safe), and must stop it in quiesce.
 */
#ifndef MOAT_PCI_H
#define MOAT_PCI_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include "broker.h"
#include "exit_bus.h"
#include "moat/boot_info.h"
#include "moat/pci_regs.h"

#define PCI_SLOTS_MAX       8u      /* host bridge + 7 devices (GSIs 17-23) */
#define PCI_IO_WINDOW_BASE  0xC000u
#define PCI_IO_WINDOW_END   0x10000u
#define PCI_NAME_MAX        MOAT_DEVNAME_MAX
/* A placeholder vendor ID, as QEMU's own test devices use; not a PCI-SIG
 * assignment. */
#define PCI_VENDOR_MOAT     0x1234u
#define PCI_DEVICE_HOST_BRIDGE 0x4d00u

enum pci_bar_kind { PCI_BAR_NONE, PCI_BAR_MEM32, PCI_BAR_MEM64, PCI_BAR_IOPORT };

/* Driver input a device model refused (pci_guest_error). */
enum pci_guest_error {
    PCI_GERR_DOORBELL,          /* a doorbell write naming no queue or a bad index */
    PCI_GERR_COMMAND,           /* a malformed command, descriptor or queue setup */
    PCI_GERR_FATAL,             /* the driver put the device in a fatal state */
    PCI_GERR_KINDS
};

/* What a device model provides. bar_access gets a->offset inside the BAR;
 * returning BUS_VIOLATION fail-stops the domain. */
struct pci_device_ops {
    enum bus_result (*bar_access)(void *dev, unsigned bar, struct bus_access *a);
    /* BAR bar moved from old_base; it already decodes at new_base (move
     * ioeventfds with pci_ioeventfd_move). May be NULL. */
    void (*bar_moved)(void *dev, unsigned bar, uint64_t old_base, uint64_t new_base);
    /* Stop all DMA and wait for in-flight back-end I/O (teardown, §5.3).
     * Called before the VM is destroyed; the model may not DMA, interrupt
     * or touch the platform afterwards until reset. */
    void (*quiesce)(void *dev);
    /* Back to the power-on state (each domain incarnation starts with a
     * reset device; ioeventfds of the old VM are gone). May be NULL. */
    void (*reset)(void *dev);
    void (*destroy)(void *dev);
};

/* What the platform (the domain) provides to the bus. */
struct pci_platform_ops {
    bool (*msi)(void *ctx, uint64_t addr, uint32_t data);
    void (*intx)(void *ctx, uint32_t gsi, bool level);
    /* A hostile or invalid access was refused and counted. */
    void (*refused)(void *ctx, const char *device, const char *what, uint64_t addr,
                    uint64_t value);
    /* A device DMA was refused by the broker. */
    void (*dma_refused)(void *ctx, const char *device, uint64_t iova, uint64_t len,
                        enum broker_refusal why);
    /* A device model refused driver input (pci_guest_error). May be NULL. */
    void (*guest_error)(void *ctx, const char *device, enum pci_guest_error kind,
                        const char *what, uint64_t a, uint64_t b);
    /* Attach/detach an eventfd signalled in-kernel by len-byte guest writes
     * to MMIO address addr, or to I/O port addr when pio (a doorbell that
     * needs no exit). May be NULL. */
    bool (*ioeventfd)(void *ctx, bool pio, uint64_t addr, uint32_t len, int fd, bool assign);
    void *ctx;
};

struct pci_bar {
    enum pci_bar_kind kind;
    uint64_t size;              /* power of two; memory >= 4 KiB, I/O >= 4 */
    uint64_t base;              /* current decode address */
    uint64_t fw_base;           /* where firmware placed it (reset) */
    bool sizing;                /* register holds the all-ones pattern */
    bool sizing_hi;             /* upper dword of a 64-bit BAR likewise */
};

struct pci_msix {
    uint16_t cap;               /* config offset of the capability, 0 = none */
    uint16_t entries;
    uint8_t table_bar, pba_bar;
    uint32_t table_off, pba_off;
    uint32_t *table;            /* entries * 4 dwords */
    uint64_t *pending;          /* entries bits */
};

/* Counters: bumped with relaxed atomics (PCI_COUNT) from the vCPU thread
 * and device workers, read with PCI_STAT by others. */
#define PCI_COUNT(b, field) __atomic_fetch_add(&(b)->stats.field, 1, __ATOMIC_RELAXED)
#define PCI_STAT(b, field)  __atomic_load_n(&(b)->stats.field, __ATOMIC_RELAXED)

struct pci_stats {
    uint64_t cfg_refused;       /* protected or invalid config writes */
    uint64_t cfg_bad_access;    /* misaligned / out-of-range ECAM accesses */
    uint64_t bar_decode_off;    /* BAR accesses while decode disabled */
    uint64_t msix_bad_access;   /* table/PBA accesses of wrong width/offset */
    uint64_t msi_bad_message;   /* unmasked vector with an invalid address/data */
    uint64_t msi_sent, msi_pended;
    uint64_t dma_refused, dma_master_off;
    uint64_t guest_errors[PCI_GERR_KINDS];
};

struct pci_bus;

struct pci_func {
    struct pci_bus *bus;
    uint8_t slot;
    char name[PCI_NAME_MAX];
    uint8_t cfg[PCI_CFG_SIZE], wmask[PCI_CFG_SIZE], w1c[PCI_CFG_SIZE];
    /* The command register as device workers see it (pci_command): stored
     * with release under irq_lock by every config write and reset, read
     * with acquire. A DMA that starts after the write clearing bus master
     * has returned is refused; maps already made finish (as in PCIe). */
    uint16_t command;
    uint16_t cap_tail;          /* offset of the last capability, 0 = none */
    uint16_t cap_free;          /* next free config byte for capabilities */
    struct pci_bar bar[PCI_BARS];
    struct pci_msix msix;
    uint32_t intx_gsi;          /* MOAT_NO_GSI when the function has no INTx */
    bool intx_level;            /* device's line, before INTX_DISABLE */
    bool intx_out;              /* what the platform was last told */
    const struct pci_device_ops *ops;
    void *dev;
};

struct pci_bus {
    char domain_name[32];
    uint32_t domain_id;
    uint64_t ecam_base, mmio_base, mmio_end;
    struct broker *broker;      /* may be NULL: every DMA refused */
    struct pci_platform_ops plat;
    struct pci_func *slot[PCI_SLOTS_MAX];
    struct pci_func host_bridge;
    uint64_t next_mmio, next_io;    /* firmware-style BAR placement */
    pthread_mutex_t irq_lock;   /* MSI-X tables, pending bits, INTx state */
    struct pci_stats stats;
    cpu_set_t worker_cpus;      /* where device workers run (when set) */
    bool worker_cpus_set;
};

/* A bus with its host bridge at slot 0. */
void pci_bus_init(struct pci_bus *b, const char *domain_name, uint32_t domain_id,
                  struct broker *broker, const struct pci_platform_ops *plat);
/* Device workers run on cpus (e.g. every CPU but the domain's pinned
 * vCPU); until this is called they run wherever the scheduler puts them.
 * Applies to workers started afterwards. */
void pci_bus_set_worker_cpus(struct pci_bus *b, const cpu_set_t *cpus);
/* Start a device model's worker thread for f: named "<prefix>-<function
 * name>" (as top -H and perf show it) and placed on the bus's worker CPUs.
 * False when the thread could not be created. */
bool pci_worker_start(struct pci_func *f, pthread_t *t, void *(*fn)(void *), void *arg,
                      const char *prefix);
/* Quiesce and destroy every device model, free tables. */
void pci_bus_fini(struct pci_bus *b);
/* Ask every model to stop DMA and finish in-flight back-end I/O. */
void pci_bus_quiesce(struct pci_bus *b);
/* A fresh incarnation: every function back to power-on state (command
 * register cleared, MSI-X disabled with every entry masked and nothing
 * pending, INTx low, BARs where firmware placed them), then each model's
 * reset. Call with no vCPU running. */
void pci_bus_reset(struct pci_bus *b);
/* Register ECAM (pio=false) and BAR windows on the domain's buses. */
bool pci_bus_attach(struct pci_bus *b, struct exit_bus *mmio, struct exit_bus *pio);
/* Exit-bus handlers (ctx = the pci_bus). */
enum bus_result pci_ecam_access(void *ctx, struct bus_access *a);
enum bus_result pci_mmio_access(void *ctx, struct bus_access *a);
enum bus_result pci_pio_access(void *ctx, struct bus_access *a);

/* Device-model side. Build a function in the next free slot: IDs, class
 * (class << 16 | subclass << 8 | prog_if), INTA# on gsi or MOAT_NO_GSI.
 * Returns NULL when the bus is full. */
struct pci_func *pci_func_add(struct pci_bus *b, const char *name, uint16_t vendor,
                              uint16_t device, uint32_t class_code, uint32_t intx_gsi,
                              const struct pci_device_ops *ops, void *dev);
/* Declare BAR n (kind, power-of-two size) and place it in the window.
 * A 64-bit BAR uses n and n + 1. False if invalid or out of space. */
bool pci_bar_add(struct pci_func *f, unsigned n, enum pci_bar_kind kind, uint64_t size);
/* Append a capability with body (len bytes from offset 2 on, after ID and
 * next pointer). Returns its config offset, 0 when out of space. Its
 * bytes are read-only unless the caller opens bits in f->wmask. */
uint16_t pci_cap_add(struct pci_func *f, uint8_t id, const void *body, uint8_t len);
/* Add an MSI-X capability with n entries whose table and PBA live in the
 * given BARs at the given offsets (8-byte aligned). Entries start masked. */
bool pci_msix_add(struct pci_func *f, uint16_t n, unsigned table_bar, uint32_t table_off,
                  unsigned pba_bar, uint32_t pba_off);

/* Raise MSI-X vector n: delivered now, or pending while masked. False when
 * MSI-X is not enabled (the model should use INTx) or n is out of range
 * (refused and counted in msi_bad_message: n often comes from the driver). */
bool pci_msix_notify(struct pci_func *f, uint16_t n);
bool pci_msix_enabled(const struct pci_func *f);
bool pci_msix_pending(const struct pci_func *f, uint16_t n);
/* Clear entry n's pending bit because the events behind it were handled
 * (PCI: a function must do so, or unmasking sends a spurious message).
 * True when the bit was set. Thread-safe like pci_msix_notify. */
bool pci_msix_retract(struct pci_func *f, uint16_t n);
/* Drive INTA# (level). Delivered to the platform unless INTX_DISABLE. */
void pci_intx_set(struct pci_func *f, bool level);
uint16_t pci_command(const struct pci_func *f);

/* The only way a model reaches domain memory: bus-master enable checked,
 * then broker_dma_map with the domain id and the function's name. NULL on
 * refusal (counted, audited, platform told); release with pci_dma_unmap. */
void *pci_dma_map(struct pci_func *f, uint64_t iova, uint64_t len, enum dma_dir dir,
                  struct dma_mapping *m);
void pci_dma_unmap(struct pci_func *f, struct dma_mapping *m);

/* Attach (assign) or detach an eventfd to len-byte writes at offset off
 * of BAR bar (memory or I/O, at its current address). False when the
 * platform has no ioeventfds, the BAR is not implemented, or KVM refused. */
bool pci_ioeventfd(struct pci_func *f, unsigned bar, uint64_t off, uint32_t len, int fd,
                   bool assign);
/* From bar_moved: detach the eventfd at old_base + off and attach it at
 * the BAR's current address. False when the new attach failed. */
bool pci_ioeventfd_move(struct pci_func *f, unsigned bar, uint64_t old_base, uint64_t off,
                        uint32_t len, int fd);

/* A model refuses a hostile or invalid access (e.g. a register of the wrong
 * width): reported to the platform, which counts it and applies policy. */
void pci_refuse(struct pci_func *f, const char *what, uint64_t addr, uint64_t value);
/* Driver input the model refused and answered as the device would (an
 * ignored doorbell, an error status, a fatal state): counted here in
 * stats.guest_errors, and passed to the platform, which counts, audits
 * and rate-limits it per domain and treats a storm of fatal states as a
 * policy violation. Any thread. what is a fixed description; a and b
 * are the values involved (register offset, address, ...). */
void pci_guest_error(struct pci_func *f, enum pci_guest_error kind, const char *what,
                     uint64_t a, uint64_t b);

/* Config access as the ECAM handler performs it (offset inside the
 * function's 4 KiB); for tests and bare-mode reuse. Writes return false
 * when refused. */
uint32_t pci_cfg_read(struct pci_func *f, uint32_t off, uint32_t size);
bool pci_cfg_write(struct pci_func *f, uint32_t off, uint32_t size, uint32_t value);

/* Describe the function's BARs for boot info. */
void pci_func_describe(const struct pci_func *f, struct moat_device_info *out);

#endif /* MOAT_PCI_H */
