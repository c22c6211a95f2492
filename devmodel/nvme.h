/*
 * nvme.h — moat's NVMe 1.4 controller model (wire definitions in
 * moat/nvme_regs.h): one namespace backed by a raw image file, an admin
 * queue served synchronously at its doorbell on the vCPU thread, up to 16
 * I/O queue pairs served by one worker thread per controller, PRP data
 * transfers through the DMA broker, MSI-X per completion queue (INTA# when
 * MSI-X is off), interrupt coalescing and Doorbell Buffer Config (shadow
 * doorbells + EventIdx, ioeventfds when the platform offers them).
 *
 * PCI function: class 01/08/02, NVME_MOAT_VENDOR:NVME_MOAT_DEVICE;
 * BAR0 64-bit memory, 16 KiB: registers, doorbells from 0x1000 (stride 4);
 * BAR4 32-bit memory, 4 KiB: MSI-X table (offset 0) and PBA (0x800), with
 * queues + 1 vectors.
 *
 * Options (dev=nvme:key=value:...):
 *   image=PATH   raw image, opened read-write (required; its size is a
 *                non-zero multiple of the LBA size)
 *   lba=512|4096 logical block size (default 512)
 *   queues=N     I/O queue pairs offered, 1..16 (default 4)
 *   mqes=N       entries per queue, 2..4096 (default 1024)
 *   mdts=N       max transfer 2^N pages, 1..8 (default 5: 128 KiB)
 *   ro=0|1       namespace write protected (default 0)
 *   poll_us=N    worker spins N µs for more work before sleeping, 0..1000000
 *                (default 20)
 *   stall=N      test knob: the N-th I/O command (from 1) is swallowed once,
 *                without a completion, until ABORT or reset (default 0: off)
 *
 * Image I/O: reads copy from a shared read-only mapping of the image
 * (devmodel/image_map.h: no system call per command; a file shrunk under
 * moat gives READ_ERROR, not a crash); writes, WRITE ZEROES, DSM and FLUSH
 * go through the fd (pwritev, fallocate, fdatasync), which shares the page
 * cache with the mapping. Without a mapping reads fall back to preadv.
 *
 * Interrupts: a message for a vector the host masked waits in the PBA and
 * is retracted once the host drained that vector's CQs (a polling driver
 * masks its vectors and unmasks them only to sleep).
 *
 * Error policy: nvme_create returns false with a full sentence in err.
 * Guest mistakes never stop the VMM: a register access of the wrong width
 * is refused (pci_refuse); a bad doorbell is counted and ignored; a bad
 * command completes with its NVMe status; broken queue memory sets
 * CSTS.CFS until the host disables the controller.
 */
#ifndef MOAT_NVME_H
#define MOAT_NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pci.h"

#define NVME_BAR_REGS       0u
#define NVME_BAR_MSIX       4u
#define NVME_BAR0_SIZE      0x4000u
#define NVME_MSIX_TABLE_OFF 0x000u
#define NVME_MSIX_PBA_OFF   0x800u
#define NVME_QUEUES_MAX     16u     /* I/O queue pairs */

/* Counters of one controller, all since creation (never reset). */
#define NVME_STATS_FIELDS(X)                                                  \
    X(admin_cmds)       /* admin commands executed */                         \
    X(io_reads) X(io_writes) X(io_flushes) X(io_write_zeroes) X(io_dsm)       \
    X(io_other)         /* I/O commands with an unknown opcode */             \
    X(bytes_read) X(bytes_written)                                            \
    /* completions with an error status, by kind */                           \
    X(err_opcode)       /* INVALID_OPCODE */                                  \
    X(err_field)        /* INVALID_FIELD */                                   \
    X(err_ns)           /* INVALID_NS */                                      \
    X(err_lba_range)    /* LBA_RANGE */                                       \
    X(err_prp_offset)   /* INVALID_PRP_OFFSET */                              \
    X(err_data_xfer)    /* DATA_XFER_ERROR (broker refusals) */               \
    X(err_media)        /* READ_ERROR, WRITE_FAULT, INTERNAL */               \
    X(err_write_protected)                                                    \
    X(err_queue)        /* QID/CQ/size/vector/delete errors */                \
    X(err_aborted)      /* ABORT_REQ, ABORT_SQ_DELETED */                     \
    X(err_other)                                                              \
    X(invalid_doorbells) /* doorbell writes ignored: no queue, bad value */   \
    X(dma_refusals)     /* maps the broker refused (queues, PRPs, data) */    \
    X(fatal)            /* times CSTS.CFS was set */                          \
    X(shutdowns)        /* CC.SHN shutdowns completed (image flushed) */      \
    X(irq_sent)         /* MSI-X messages and INTx assertions */              \
    X(irq_skipped)      /* due interrupts not sent: CQ already consumed */    \
    X(irq_retracted)    /* PBA bits cleared: the host drained the CQs while \
                           the vector was masked (no spurious message) */   \
    X(irq_coalesced)    /* completions folded into a later interrupt */       \
    X(irq_by_threshold) /* coalesced vectors fired by THR */                  \
    X(irq_by_time)      /* coalesced vectors fired by TIME */                 \
    X(mmio_doorbells)   /* I/O doorbell writes that reached the model */      \
    X(shadow_doorbells) /* new SQ tails found in the shadow page */           \
    X(ioeventfds)       /* ioeventfd registrations accepted */                \
    X(worker_wakeups)   /* worker returned from sleep */                      \
    X(stalled)          /* commands swallowed by the stall knob */

struct nvme_stats {
#define NVME_STAT_FIELD(name) uint64_t name;
    NVME_STATS_FIELDS(NVME_STAT_FIELD)
#undef NVME_STAT_FIELD
};

/* Add an NVMe controller named name to bus, INTA# on gsi, configured by
 * opts (see above). The bus owns it afterwards (destroyed with the bus).
 * False + err when the options are invalid, the image cannot be used, or
 * the bus is full. */
bool nvme_create(struct pci_bus *bus, const char *name, uint32_t gsi, const char *opts,
                 char *err, size_t errlen);

/* Snapshot f's counters. False when f is not an NVMe controller. */
bool nvme_stats_get(const struct pci_func *f, struct nvme_stats *out);

#endif /* MOAT_NVME_H */
