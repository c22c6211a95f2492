/*
 * moat/pci_regs.h — PCI configuration-space layout (type-0 header,
 * capability list, MSI-X) and the ECAM address formula. Facts from the PCI
 * Local Bus and PCIe Base specifications; used by the VMM's PCI model and by
 * the guest's driver API alike.
 */
#ifndef MOAT_PCI_REGS_H
#define MOAT_PCI_REGS_H

#include <stdint.h>

#define PCI_CFG_SIZE        4096u   /* PCIe: 256 legacy + extended */
#define PCI_CFG_LEGACY_SIZE 256u

#define PCI_VENDOR_ID       0x00    /* 16, RO */
#define PCI_DEVICE_ID       0x02    /* 16, RO */
#define PCI_COMMAND         0x04    /* 16 */
#define PCI_STATUS          0x06    /* 16, RO + RW1C */
#define PCI_REVISION_ID     0x08
#define PCI_PROG_IF         0x09
#define PCI_SUBCLASS        0x0A
#define PCI_CLASS           0x0B
#define PCI_HEADER_TYPE     0x0E
#define PCI_BAR0            0x10    /* six 32-bit BAR registers */
#define PCI_SUBSYS_VENDOR   0x2C
#define PCI_SUBSYS_ID       0x2E
#define PCI_CAP_PTR         0x34
#define PCI_INT_LINE        0x3C    /* scratch for the OS */
#define PCI_INT_PIN         0x3D    /* 1 = INTA#, 0 = none */
#define PCI_CAP_START       0x40    /* first byte capabilities may use */

#define PCI_BARS            6u
#define PCI_BAR_REG(n)      (PCI_BAR0 + 4u * (n))

#define PCI_CMD_IO          0x0001u
#define PCI_CMD_MEM         0x0002u
#define PCI_CMD_MASTER      0x0004u
#define PCI_CMD_PARITY      0x0040u
#define PCI_CMD_SERR        0x0100u
#define PCI_CMD_INTX_DISABLE 0x0400u

#define PCI_STATUS_INTX     0x0008u /* RO: INTx asserted */
#define PCI_STATUS_CAP_LIST 0x0010u /* RO: capability list present */
#define PCI_STATUS_ERRORS   0xF900u /* RW1C error bits */

#define PCI_BAR_IO          0x1u
#define PCI_BAR_MEM_64      0x4u
#define PCI_BAR_PREFETCH    0x8u
#define PCI_BAR_MEM_MASK    (~0xFull)
#define PCI_BAR_IO_MASK     (~0x3ull)

#define PCI_CAP_ID_MSI      0x05
#define PCI_CAP_ID_VENDOR   0x09
#define PCI_CAP_ID_PCIE     0x10
#define PCI_CAP_ID_MSIX     0x11

/* MSI-X capability (offsets from the capability). */
#define PCI_MSIX_CTRL       2       /* 16: table size - 1, mask, enable */
#define PCI_MSIX_TABLE      4       /* 32: BIR (bits 0-2) | offset */
#define PCI_MSIX_PBA        8       /* 32: BIR (bits 0-2) | offset */
#define PCI_MSIX_CAP_LEN    12
#define PCI_MSIX_CTRL_SIZE_MASK 0x07FFu
#define PCI_MSIX_CTRL_MASKALL   0x4000u
#define PCI_MSIX_CTRL_ENABLE    0x8000u
#define PCI_MSIX_BIR_MASK   0x7u
#define PCI_MSIX_ENTRIES_MAX 2048u

/* MSI-X table entry (16 bytes). */
#define PCI_MSIX_ENTRY_SIZE     16u
#define PCI_MSIX_ENTRY_ADDR_LO  0
#define PCI_MSIX_ENTRY_ADDR_HI  4
#define PCI_MSIX_ENTRY_DATA     8
#define PCI_MSIX_ENTRY_CTRL     12
#define PCI_MSIX_ENTRY_MASKED   0x1u

/* x86 MSI message: address 0xFEE0_0000 | dest APIC ID << 12; data = vector. */
#define PCI_MSI_ADDR_BASE   0xFEE00000u
#define PCI_MSI_ADDR_MASK   0xFFF00000u
#define PCI_MSI_DATA_VECTOR_MASK 0xFFu

/* ECAM: one 4 KiB function per (bus, device, function). */
static inline uint64_t pci_ecam_offset(uint32_t bus, uint32_t dev, uint32_t fn, uint32_t reg)
{
    return ((uint64_t)bus << 20) | ((uint64_t)dev << 15) | ((uint64_t)fn << 12) | reg;
}

#endif /* MOAT_PCI_REGS_H */
