/*
 * moat/testdev_regs.h — register interface of testdev, a small DMA engine
 * used to test the device path end to end (devmodel/testdev.c implements
 * it; test driver domains program it through dd_*).
 *
 * BAR0 (64-bit memory, 4 KiB): registers below, 32- or 64-bit accesses.
 * BAR2 (32-bit memory, 4 KiB): MSI-X table at 0, PBA at 0x800.
 * BAR4 (I/O, 32 ports): ID at 0 and SCRATCH at 4 (32-bit) for port tests.
 *
 * Writing DOORBELL copies LEN bytes from IOVA SRC to IOVA DST (both ranges
 * checked by the broker before a byte moves; a refusal copies nothing),
 * sets STATUS.DONE or STATUS.ERROR (LAST_ERROR says why), then raises
 * MSI-X entry VECTOR, or asserts INTA# while STATUS is non-zero when MSI-X
 * is disabled. STATUS bits are write-1-to-clear.
 */
#ifndef MOAT_TESTDEV_REGS_H
#define MOAT_TESTDEV_REGS_H

#define TESTDEV_VENDOR_ID   0x1234u     /* = PCI_VENDOR_MOAT */
#define TESTDEV_DEVICE_ID   0x7e57u
#define TESTDEV_CLASS       0xFF0000u   /* unclassified device */
#define TESTDEV_ID_VALUE    0x7e570001u
#define TESTDEV_MSIX_VECTORS 4u
#define TESTDEV_LEN_MAX     (1u << 20)

#define TD_REG_ID           0x00    /* RO 32 */
#define TD_REG_SRC          0x08    /* RW 64 */
#define TD_REG_DST          0x10    /* RW 64 */
#define TD_REG_LEN          0x18    /* RW 32 */
#define TD_REG_VECTOR       0x1C    /* RW 32: MSI-X entry to raise */
#define TD_REG_DOORBELL     0x20    /* WO 32 */
#define TD_REG_STATUS       0x24    /* RW1C 32 */
#define TD_REG_COMPLETED    0x28    /* RO 32: copies done */
#define TD_REG_ERRORS       0x2C    /* RO 32: copies refused */
#define TD_REG_SCRATCH      0x30    /* RW 32 */
#define TD_REG_LAST_ERROR   0x34    /* RO 32: TD_ERR_* or 0x100 + broker reason */

#define TD_STATUS_DONE      0x1u
#define TD_STATUS_ERROR     0x2u

#define TD_ERR_NONE         0u
#define TD_ERR_LEN          1u      /* LEN 0 or above TESTDEV_LEN_MAX */
#define TD_ERR_MASTER       2u      /* bus mastering disabled */
#define TD_ERR_DMA_BASE     0x100u  /* + enum broker_refusal */

#define TD_IO_ID            0x00
#define TD_IO_SCRATCH       0x04
#define TD_IO_SIZE          32u

#endif /* MOAT_TESTDEV_REGS_H */
