/*
 * moat/virtio_regs.h — the virtio wire format moat implements on both
 * sides (devmodel/virtio_net.c is the device, driver-domains/virtio-net the
 * driver): the PCI transport of virtio 1.2 §4.1 (modern vendor capabilities
 * and the legacy I/O BAR0 register block of §4.1.4.8), split virtqueues
 * (§2.7) with the legacy single-PFN layout, and the network device (§5.1).
 * Facts from the spec, no code. Little-endian throughout (x86 only).
 *
 * Pure definitions and inline arithmetic: freestanding, no libc.
 */
#ifndef MOAT_VIRTIO_REGS_H
#define MOAT_VIRTIO_REGS_H

#include <stdbool.h>
#include <stdint.h>

/* ---- PCI identity (§4.1.2) ---------------------------------------------- */

#define VIRTIO_PCI_VENDOR             0x1af4u
#define VIRTIO_PCI_DEVICE_NET_MODERN  0x1041u   /* 0x1040 + device type 1 */
#define VIRTIO_PCI_DEVICE_NET_LEGACY  0x1000u   /* transitional / legacy net */
#define VIRTIO_ID_NET                 1u        /* legacy subsystem device ID */
#define VIRTIO_PCI_CLASS_NET          0x020000u /* ethernet controller */

/* ---- modern transport: vendor capabilities (§4.1.4) ---------------------- */

#define VIRTIO_PCI_CAP_COMMON_CFG  1u
#define VIRTIO_PCI_CAP_NOTIFY_CFG  2u
#define VIRTIO_PCI_CAP_ISR_CFG     3u
#define VIRTIO_PCI_CAP_DEVICE_CFG  4u
#define VIRTIO_PCI_CAP_PCI_CFG     5u

/* struct virtio_pci_cap, from the capability ID on (config offsets
 * relative to the capability's start). The notify capability appends
 * notify_off_multiplier at offset 16. */
#define VIRTIO_PCI_CAP_CAPLEN      2u       /* u8 cap_len: this capability's length */
#define VIRTIO_PCI_CAP_CFG_TYPE    3u
#define VIRTIO_PCI_CAP_BAR         4u
#define VIRTIO_PCI_CAP_ID          5u
#define VIRTIO_PCI_CAP_OFFSET      8u
#define VIRTIO_PCI_CAP_LENGTH      12u
#define VIRTIO_PCI_CAP_MULTIPLIER  16u
#define VIRTIO_PCI_CAP_LEN         16u
#define VIRTIO_PCI_NOTIFY_CAP_LEN  20u

/* Common configuration structure (struct virtio_pci_common_cfg). */
#define VIRTIO_COMMON_DFSELECT     0x00u    /* le32 device_feature_select */
#define VIRTIO_COMMON_DF           0x04u    /* le32 device_feature (RO) */
#define VIRTIO_COMMON_GFSELECT     0x08u    /* le32 driver_feature_select */
#define VIRTIO_COMMON_GF           0x0Cu    /* le32 driver_feature */
#define VIRTIO_COMMON_MSIX         0x10u    /* le16 config_msix_vector */
#define VIRTIO_COMMON_NUMQ         0x12u    /* le16 num_queues (RO) */
#define VIRTIO_COMMON_STATUS       0x14u    /* u8 device_status */
#define VIRTIO_COMMON_CFGGEN       0x15u    /* u8 config_generation (RO) */
#define VIRTIO_COMMON_Q_SELECT     0x16u    /* le16 queue_select */
#define VIRTIO_COMMON_Q_SIZE       0x18u    /* le16 queue_size */
#define VIRTIO_COMMON_Q_MSIX       0x1Au    /* le16 queue_msix_vector */
#define VIRTIO_COMMON_Q_ENABLE     0x1Cu    /* le16 queue_enable */
#define VIRTIO_COMMON_Q_NOFF       0x1Eu    /* le16 queue_notify_off (RO) */
#define VIRTIO_COMMON_Q_DESCLO     0x20u    /* le64 queue_desc */
#define VIRTIO_COMMON_Q_DESCHI     0x24u
#define VIRTIO_COMMON_Q_AVAILLO    0x28u    /* le64 queue_driver */
#define VIRTIO_COMMON_Q_AVAILHI    0x2Cu
#define VIRTIO_COMMON_Q_USEDLO     0x30u    /* le64 queue_device */
#define VIRTIO_COMMON_Q_USEDHI     0x34u
#define VIRTIO_COMMON_SIZE         0x38u    /* virtio 1.0/1.1 structure size */

#define VIRTIO_MSI_NO_VECTOR       0xFFFFu

/* ISR status (modern ISR capability, legacy register 0x13): read clears. */
#define VIRTIO_ISR_QUEUE           0x1u
#define VIRTIO_ISR_CONFIG          0x2u

/* ---- device status (§2.1) ---------------------------------------------- */

#define VIRTIO_STATUS_ACKNOWLEDGE        0x01u
#define VIRTIO_STATUS_DRIVER             0x02u
#define VIRTIO_STATUS_DRIVER_OK          0x04u
#define VIRTIO_STATUS_FEATURES_OK        0x08u
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40u
#define VIRTIO_STATUS_FAILED             0x80u

/* ---- feature bits (§6, §5.1.3) ---------------------------------------- */

#define VIRTIO_NET_F_CSUM            0u
#define VIRTIO_NET_F_GUEST_CSUM      1u
#define VIRTIO_NET_F_MTU             3u
#define VIRTIO_NET_F_MAC             5u
#define VIRTIO_NET_F_MRG_RXBUF       15u
#define VIRTIO_NET_F_STATUS          16u
#define VIRTIO_NET_F_CTRL_VQ         17u
#define VIRTIO_F_ANY_LAYOUT          27u       /* legacy only; implied by VERSION_1 */
#define VIRTIO_RING_F_INDIRECT_DESC  28u
#define VIRTIO_RING_F_EVENT_IDX      29u
#define VIRTIO_F_VERSION_1           32u
#define VIRTIO_F_ACCESS_PLATFORM     33u
#define VIRTIO_F_RING_PACKED         34u

#define VIRTIO_BIT(b) (1ull << (b))

/* ---- legacy transport: I/O BAR0 register block (§4.1.4.8) --------------- */

#define VIRTIO_LEGACY_HOST_FEATURES  0x00u  /* le32 RO: feature bits 0..31 */
#define VIRTIO_LEGACY_GUEST_FEATURES 0x04u  /* le32 RW */
#define VIRTIO_LEGACY_QUEUE_PFN      0x08u  /* le32 RW: ring address >> 12 */
#define VIRTIO_LEGACY_QUEUE_NUM      0x0Cu  /* le16 RO: device-fixed size */
#define VIRTIO_LEGACY_QUEUE_SEL      0x0Eu  /* le16 RW */
#define VIRTIO_LEGACY_QUEUE_NOTIFY   0x10u  /* le16 WO: queue index */
#define VIRTIO_LEGACY_STATUS         0x12u  /* u8 RW: 0 resets */
#define VIRTIO_LEGACY_ISR            0x13u  /* u8 RO, read clears */
#define VIRTIO_LEGACY_CONFIG         0x14u  /* device config without MSI-X */
#define VIRTIO_LEGACY_PFN_SHIFT      12u
#define VIRTIO_LEGACY_ALIGN          4096u

/* ---- split virtqueues (§2.7) -------------------------------------------- */

#define VIRTQ_SIZE_MAX          32768u      /* queue sizes are powers of two */

#define VIRTQ_DESC_F_NEXT       0x1u
#define VIRTQ_DESC_F_WRITE      0x2u
#define VIRTQ_DESC_F_INDIRECT   0x4u

#define VIRTQ_AVAIL_F_NO_INTERRUPT 0x1u
#define VIRTQ_USED_F_NO_NOTIFY     0x1u

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_used_elem {
    uint32_t id;            /* head of the chain */
    uint32_t len;           /* bytes the device wrote */
};

_Static_assert(sizeof(struct virtq_desc) == 16, "descriptor is ABI");
_Static_assert(sizeof(struct virtq_used_elem) == 8, "used element is ABI");

/* Byte sizes of the three parts (with EVENT_IDX's trailing u16 counted
 * always, as the legacy layout does). */
static inline uint64_t virtq_desc_bytes(uint32_t n) { return 16ull * n; }
static inline uint64_t virtq_avail_bytes(uint32_t n) { return 6ull + 2ull * n; }
static inline uint64_t virtq_used_bytes(uint32_t n) { return 6ull + 8ull * n; }

/* Offsets inside the driver (avail) and device (used) areas. */
#define VIRTQ_AVAIL_FLAGS        0u
#define VIRTQ_AVAIL_IDX          2u
#define VIRTQ_AVAIL_RING(i)      (4u + 2u * (i))
#define VIRTQ_USED_EVENT(n)      (4u + 2u * (n))   /* in the avail area */
#define VIRTQ_USED_FLAGS         0u
#define VIRTQ_USED_IDX           2u
#define VIRTQ_USED_RING(i)       (4u + 8u * (i))
#define VIRTQ_AVAIL_EVENT(n)     (4u + 8u * (n))   /* in the used area */

/* Legacy single-PFN layout (§2.7.2 legacy interface): descriptors, then
 * the avail ring, then the used ring at the next 4096 boundary. */
static inline uint64_t virtq_legacy_avail_off(uint32_t n) { return virtq_desc_bytes(n); }
static inline uint64_t virtq_legacy_used_off(uint32_t n)
{
    uint64_t end = virtq_desc_bytes(n) + virtq_avail_bytes(n);
    return (end + VIRTIO_LEGACY_ALIGN - 1) & ~(uint64_t)(VIRTIO_LEGACY_ALIGN - 1);
}
static inline uint64_t virtq_legacy_bytes(uint32_t n)
{
    uint64_t end = virtq_legacy_used_off(n) + virtq_used_bytes(n);
    return (end + VIRTIO_LEGACY_ALIGN - 1) & ~(uint64_t)(VIRTIO_LEGACY_ALIGN - 1);
}

/* EVENT_IDX (§2.7.10): should the side that moved its index from old to
 * new notify a peer that asked to hear when it passes event? */
static inline bool virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event - 1u) < (uint16_t)(new_idx - old);
}

static inline bool virtq_size_valid(uint32_t n)
{
    return n && n <= VIRTQ_SIZE_MAX && !(n & (n - 1u));
}

/* ---- network device (§5.1) --------------------------------------------- */

#define VIRTIO_NET_Q_RX          0u
#define VIRTIO_NET_Q_TX          1u

/* Device configuration. */
#define VIRTIO_NET_CFG_MAC       0u     /* u8[6] */
#define VIRTIO_NET_CFG_STATUS    6u     /* le16, with VIRTIO_NET_F_STATUS */
#define VIRTIO_NET_CFG_MAX_PAIRS 8u     /* le16 */
#define VIRTIO_NET_CFG_MTU       10u    /* le16, with VIRTIO_NET_F_MTU */
#define VIRTIO_NET_CFG_SIZE      12u
#define VIRTIO_NET_S_LINK_UP     0x1u
#define VIRTIO_NET_S_ANNOUNCE    0x2u

/* struct virtio_net_hdr: 10 bytes (legacy without MRG_RXBUF), 12 bytes
 * with num_buffers (VERSION_1 or MRG_RXBUF). */
#define VIRTIO_NET_HDR_FLAGS       0u   /* u8 */
#define VIRTIO_NET_HDR_GSO_TYPE    1u   /* u8 */
#define VIRTIO_NET_HDR_HDR_LEN     2u   /* le16 */
#define VIRTIO_NET_HDR_GSO_SIZE    4u   /* le16 */
#define VIRTIO_NET_HDR_CSUM_START  6u   /* le16 */
#define VIRTIO_NET_HDR_CSUM_OFF    8u   /* le16 */
#define VIRTIO_NET_HDR_NUM_BUFFERS 10u  /* le16 */
#define VIRTIO_NET_HDR_LEN_LEGACY  10u
#define VIRTIO_NET_HDR_LEN_MRG     12u
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 0x1u
#define VIRTIO_NET_HDR_GSO_NONE    0u

/* Header length a device and driver agree on for these features. */
static inline uint32_t virtio_net_hdr_len(uint64_t features)
{
    return (features & (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF)))
               ? VIRTIO_NET_HDR_LEN_MRG : VIRTIO_NET_HDR_LEN_LEGACY;
}

/* Ethernet sizes (without FCS). */
#define ETH_HDR_LEN      14u
#define ETH_FRAME_MIN    60u
#define ETH_MTU          1500u
#define ETH_FRAME_MAX    (ETH_HDR_LEN + ETH_MTU)   /* 1514 */

#endif /* MOAT_VIRTIO_REGS_H */
