/*
 * dd.h — the driver API. Drivers (driver-domains/) use this and nothing
 * else; the guest kernel implements it for hosted domains (dd_*.c) and will
 * implement it again for bare boot, where accessors interpose on
 * address-bearing registers and doorbells (DESIGN §5.5).
 *
 * Everything runs in ring 3 on the domain's single thread. A driver bug
 * (a BAR offset past the BAR, an unknown device handle, DMA exhaustion) is
 * a fail-stop: dd_panic with the reason, then the supervisor restarts the
 * domain. Device-visible addresses are IOVAs of the domain's DMA windows;
 * never pass anything else to a device.
 */
#ifndef DD_H
#define DD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "moat/platform_abi.h"
#include "moat/session_abi.h"
/* memset, memcpy, memmove, memcmp, strlen, strcmp: freestanding in a
 * domain, libc's in host unit tests of a driver's pure logic. */
#ifdef DD_HOST_TEST
#include <string.h>
#else
#include "dd_kstring.h"
#endif

/* ---- entry ------------------------------------------------------------------ */

/* A driver domain provides this; args are the domain's key=value words.
 * Returning stops the domain with exit code 0. */
void domain_main(const char *args);
/* Value of key in args (NUL-terminated, truncated to len - 1); false when
 * absent. A bare word "key" yields "". */
bool dd_arg(const char *args, const char *key, char *out, size_t len);
/* Decimal or 0x-hex value of key, or fallback when absent or malformed. */
uint64_t dd_arg_u64(const char *args, const char *key, uint64_t fallback);
/* dd_arg_u64 bounded to [lo, hi]; a value outside is a panic naming the
 * key and the range (a domain misconfigured by its operator). */
uint32_t dd_arg_u32(const char *args, const char *key, uint32_t fallback, uint32_t lo,
                    uint32_t hi);
/* Like dd_arg_u64 with an optional K/M/G suffix: size=64M. */
uint64_t dd_arg_size(const char *args, const char *key, uint64_t fallback);

/* ---- devices and configuration space ----------------------------------- */

struct dd_dev;                  /* an assigned PCI function */

struct dd_dev_info {
    uint16_t vendor, device;
    uint32_t class_code;        /* class << 16 | subclass << 8 | prog-if */
    uint8_t bus, dev, fn, revision;
    char name[16];              /* the platform's name for it */
};

unsigned dd_dev_count(void);
/* The i-th assigned function, or NULL. */
struct dd_dev *dd_dev_get(unsigned i);
/* The nth (from 0) assigned function with these IDs, or NULL. */
struct dd_dev *dd_dev_find(uint16_t vendor, uint16_t device, unsigned nth);
void dd_dev_info(const struct dd_dev *d, struct dd_dev_info *out);

/* Configuration space of the function (offset < 4096, naturally aligned). */
uint8_t dd_cfg_read8(const struct dd_dev *d, uint32_t off);
uint16_t dd_cfg_read16(const struct dd_dev *d, uint32_t off);
uint32_t dd_cfg_read32(const struct dd_dev *d, uint32_t off);
void dd_cfg_write8(struct dd_dev *d, uint32_t off, uint8_t v);
void dd_cfg_write16(struct dd_dev *d, uint32_t off, uint16_t v);
void dd_cfg_write32(struct dd_dev *d, uint32_t off, uint32_t v);
/* Offset of the first capability with id after offset `after` (0 = from
 * the start), or 0 when there is none. */
uint32_t dd_cap_find(const struct dd_dev *d, uint8_t id, uint32_t after);
/* Set bits in the command register (PCI_CMD_MEM, _IO, _MASTER, ...). */
void dd_cmd_set(struct dd_dev *d, uint16_t bits);
void dd_cmd_clear(struct dd_dev *d, uint16_t bits);

/* ---- BARs ------------------------------------------------------------------ */

struct dd_bar;                  /* one decoded BAR of a function */

/* BAR n of d, sized and decoded, or NULL when not implemented. */
struct dd_bar *dd_bar(struct dd_dev *d, unsigned n);
uint64_t dd_bar_size(const struct dd_bar *b);
bool dd_bar_is_io(const struct dd_bar *b);

/* Memory BAR registers: off + width <= size, naturally aligned. */
uint8_t dd_mmio_read8(const struct dd_bar *b, uint64_t off);
uint16_t dd_mmio_read16(const struct dd_bar *b, uint64_t off);
uint32_t dd_mmio_read32(const struct dd_bar *b, uint64_t off);
uint64_t dd_mmio_read64(const struct dd_bar *b, uint64_t off);
void dd_mmio_write8(const struct dd_bar *b, uint64_t off, uint8_t v);
void dd_mmio_write16(const struct dd_bar *b, uint64_t off, uint16_t v);
void dd_mmio_write32(const struct dd_bar *b, uint64_t off, uint32_t v);
void dd_mmio_write64(const struct dd_bar *b, uint64_t off, uint64_t v);

/* I/O BAR registers (legacy devices), bounded to the BAR; each access is a
 * kernel entry, so batch what you can. */
uint8_t dd_io_read8(const struct dd_bar *b, uint32_t off);
uint16_t dd_io_read16(const struct dd_bar *b, uint32_t off);
uint32_t dd_io_read32(const struct dd_bar *b, uint32_t off);
void dd_io_write8(const struct dd_bar *b, uint32_t off, uint8_t v);
void dd_io_write16(const struct dd_bar *b, uint32_t off, uint16_t v);
void dd_io_write32(const struct dd_bar *b, uint32_t off, uint32_t v);

/* ---- DMA memory ------------------------------------------------------------ */

struct dd_dma {
    void *va;                   /* where the driver reads and writes it */
    uint64_t iova;              /* what the device is given */
    uint64_t size;              /* rounded up to whole pages */
};

/* Zeroed, page-aligned memory from the domain's DMA windows, contiguous in
 * IOVA, aligned to align (a power of two >= 4096, or 0 for a page).
 * Returns false when no window has room. */
bool dd_dma_alloc(uint64_t size, uint64_t align, struct dd_dma *out);
void dd_dma_free(struct dd_dma *m);
/* IOVA of a byte inside an allocation; panics if p is in no window. */
uint64_t dd_dma_iova(const void *p);
/* The windows the platform granted (for tests and diagnostics). */
unsigned dd_dma_window_count(void);
bool dd_dma_window(unsigned i, uint64_t *iova, uint64_t *size);

/* ---- interrupts ------------------------------------------------------------ */

struct dd_irq;
typedef void (*dd_irq_fn)(void *ctx);

/* MSI-X table entry `entry` of d routed to a fresh vector, unmasked, with
 * MSI-X enabled on the function. fn (may be NULL) runs from the run loop. */
struct dd_irq *dd_irq_msix(struct dd_dev *d, unsigned entry, dd_irq_fn fn, void *ctx);
/* INTA# of d (level). After handling, clear the cause in the device and
 * call dd_irq_ack, or the line stays masked. */
struct dd_irq *dd_irq_intx(struct dd_dev *d, dd_irq_fn fn, void *ctx);
/* Mask or unmask (MSI-X: the table entry; a masked vector pends). */
void dd_irq_mask(struct dd_irq *irq, bool masked);
/* The cause is cleared in the device: INTx is unmasked; no-op for MSI-X. */
void dd_irq_ack(struct dd_irq *irq);
/* Interrupts delivered so far. */
uint64_t dd_irq_count(const struct dd_irq *irq);
/* Run the loop until the count passes `seen` or timeout_ns elapses. */
bool dd_irq_wait(struct dd_irq *irq, uint64_t seen, uint64_t timeout_ns);

/* ---- private memory --------------------------------------------------------- */

/* Zeroed, page-aligned private RAM (never device-visible), kept for the
 * life of the domain. Exhaustion is a panic. */
void *dd_mem_alloc(uint64_t size);

/* ---- serving a BlockDevice cap ----------------------------------------------- */

/* A validated request from a client session. The platform checked op,
 * range, rights and buffer before the driver sees it: buf holds exactly
 * blocks * block_size bytes of shared session memory (READ: fill it;
 * WRITE: take the data from it; other ops: NULL). A client can still
 * write buf while the request runs: copy what must not change under you. */
struct dd_blk_req {
    uint16_t op;                /* enum moat_blk_op */
    uint32_t blocks;
    uint64_t lba;
    void *buf;
    /* Where a device reaches buf (IOVA), or 0 when it cannot: then copy
     * through a buffer of your own DMA window. When set, point the device
     * at it directly (zero copy), but complete req only once the device
     * is done with buf: after its completion, or after a reset that
     * stopped it. */
    uint64_t buf_iova;
    void *priv_;                /* the platform's */
};

struct dd_blk_ops {
    /* Start req; complete it (now or later, from any callback) with
     * dd_blk_complete. */
    void (*submit)(void *ctx, struct dd_blk_req *req);
};

/* Register the cap "<domain>.<name>" with geometry geo and serve every
 * session moat opens on it from the run loop. False (logged) when moat
 * refuses the registration. */
bool dd_blk_serve(const char *name, const struct moat_blk_geometry *geo,
                  const struct dd_blk_ops *ops, void *ctx);
/* Finish req with status (enum moat_status); req is invalid afterwards. */
void dd_blk_complete(struct dd_blk_req *req, uint32_t status);

struct dd_serve_stats {
    uint64_t sessions_opened, sessions_released;
    uint64_t requests, completed;
    uint64_t refused;           /* malformed requests answered with an error */
    uint64_t client_violations; /* a client broke its ring: session abandoned */
    uint64_t doorbells;         /* kicks sent to clients */
};
void dd_serve_stats(struct dd_serve_stats *out);

/* Hostile-server tests only: complete req with an arbitrary entry (tag,
 * status, blocks as given), or write an impossible producer index into the
 * completion ring of req's session. Real drivers never call these. */
void dd_blk_complete_raw(struct dd_blk_req *req, uint64_t tag, uint32_t status, uint32_t blocks);
void dd_blk_corrupt_cq(struct dd_blk_req *req, uint32_t bogus_prod);
/* The tag the client gave req (for dd_blk_complete_raw variations). */
uint64_t dd_blk_tag(const struct dd_blk_req *req);

/* ---- serving a Nic cap --------------------------------------------------------- */

/* The platform runs the Nic protocol (moat/session_abi.h) for every
 * session: it validates requests, keeps each session's posted receive
 * buffers, copies received frames into them and answers MOAT_NIC_INFO.
 * The driver only moves frames between the platform and its device. */
struct dd_nic;

struct dd_nic_ops {
    /* Send one frame (len in 14..max_frame), which lives in shared
     * session memory: copy it into device memory now. Return false when
     * the device has no room; the platform offers the frame again after
     * dd_nic_tx_ready. Frames of one session arrive in order. */
    bool (*tx)(void *ctx, const void *frame, uint32_t len);
    /* Optional: the platform finished a batch of tx calls; tell the
     * device (one doorbell for the batch). */
    void (*tx_flush)(void *ctx);
};

/* Register the Nic cap "<domain>.<name>" (info: MAC, MTU, max_frame,
 * flags, queues) and serve its sessions from the run loop. NULL (logged)
 * when moat refuses the registration. At most one Nic per domain. */
struct dd_nic *dd_nic_serve(const char *name, const struct moat_nic_info *info,
                            const struct dd_nic_ops *ops, void *ctx);
/* A frame arrived from the device (len in 14..max_frame; anything else is
 * counted and dropped): copied at once into the next posted buffer of
 * every session that receives; frame may be reused on return. */
void dd_nic_rx(struct dd_nic *n, const void *frame, uint32_t len);
/* The device has room again after tx returned false. */
void dd_nic_tx_ready(struct dd_nic *n);
/* Link state changed (reported by MOAT_NIC_INFO). Starts up. */
void dd_nic_link(struct dd_nic *n, bool up);

struct dd_nic_stats {
    uint64_t tx_frames, tx_busy;        /* frames the driver took / refusals */
    uint64_t rx_frames;                 /* frames from the driver */
    uint64_t rx_delivered;              /* copies into session buffers */
    uint64_t rx_dropped;                /* session copies lost: no buffer posted */
    uint64_t rx_bad;                    /* frames from the driver with a bad length */
};
void dd_nic_stats(const struct dd_nic *n, struct dd_nic_stats *out);

/* ---- time, run loop, logging ----------------------------------------------- */

uint64_t dd_now_ns(void);
/* Poll function: returns true when it did work. Pollers never decide to
 * sleep: the loop keeps polling for the spin time after the last work,
 * then calls every idle function, which arms what must wake the domain
 * (unmask its vectors, enable a queue's interrupt) and returns true when
 * it sees work after all (the loop then polls instead of sleeping). */
bool dd_poll_add(bool (*fn)(void *ctx), void *ctx);
bool dd_idle_add(bool (*fn)(void *ctx), void *ctx);
/* Spin time (default DD_SPIN_US_DEFAULT; drivers take it from spin_us=).
 * Waking a sleeping domain costs an interrupt and kernel entries, which
 * are emulated on PVM hosts (~100 us of host CPU): spin about as long. */
#define DD_SPIN_US_DEFAULT 200u
void dd_spin_set(uint64_t ns);
/* One pass: pending interrupt callbacks, pollers; when idle past the spin
 * time, the idle functions and a sleep until an interrupt. */
void dd_run_once(void);
_Noreturn void dd_run(void);
/* Note that bring-up passed step (MOAT_BOOT_DEVICE once the device is
 * reset and identified, MOAT_BOOT_QUEUES once its queues and interrupts
 * are set up): moat logs the time each step took. No exit; only the first
 * pass of each step counts (a later device reset does not move it). */
void dd_boot_mark(enum moat_boot_mark step);
/* Tell the platform the driver is up (the domain becomes READY); marks
 * MOAT_BOOT_CAPS (every cap registered) first. */
void dd_ready(void);
void dd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void dd_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Orderly stop with code (0 = success; the restart policy counts any
 * other code as a failure). */
_Noreturn void dd_exit(uint32_t code);
/* When moat asks the domain to stop (moatctl stop, moat shutting down)
 * while it is in dd_run, sessions take no new requests, the loop runs
 * until the requests in flight are answered, then fn runs once: tear the
 * device down the way its specification asks (it may run the loop, e.g.
 * dd_irq_wait; sessions take nothing new) and return. The domain then
 * exits with code 0; without a hook it just exits. moat forces the stop
 * if the domain has not exited within its grace time, and quiesces the
 * device either way: fn is courtesy to the device, never what isolation
 * relies on. */
void dd_stop_hook(void (*fn)(void *ctx), void *ctx);

/* ---- injected faults ---------------------------------------------------------- */

/* A driver that can raise device faults (the MOAT_FAULTS_DRIVER kinds of
 * moat/platform_abi.h: DMA aimed outside its windows, a corrupt device
 * ring index, an exit with DMA in flight) registers fn with the kinds it
 * raises; the run loop calls it when an operator or a test injects one.
 * arg: for MOAT_FAULT_WILD_DMA_OTHER, an IOVA in another domain's window.
 * fn returns false when it cannot raise the fault now. Kernel faults
 * (panic, hang, triple fault, ...) need no hook. */
typedef bool (*dd_fault_fn)(void *ctx, uint32_t kind, uint64_t arg);
void dd_fault_hook(dd_fault_fn fn, void *ctx, uint32_t kinds);

/* Ordering between driver memory writes and device-visible effects. */
static inline void dd_wmb(void) { __asm__ volatile("sfence" ::: "memory"); }
static inline void dd_rmb(void) { __asm__ volatile("lfence" ::: "memory"); }
static inline void dd_mb(void) { __asm__ volatile("mfence" ::: "memory"); }

#endif /* DD_H */
