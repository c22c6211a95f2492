/*
 * moat/gvnic_abi.h — Google Virtual Ethernet (gVNIC, PCI 1ae0:0042) as a
 * driver sees it: the BAR0 register file, the admin queue and its commands,
 * doorbells and interrupt-doorbell values. Shared by moat's device model
 * (devmodel/gvnic*) and the gVNIC driver domain.
 *
 * Layout follows the public Linux driver headers, drivers/net/ethernet/
 * google/gve: gve_register.h at torvalds/linux bed7b22e1316 (with the
 * admin-queue base/length registers) and gve_adminq.h at 0550890b2f80;
 * cross-checked against DPDK drivers/net/gve/base, Google's FreeBSD
 * driver and iPXE's gve.c. Facts only: every name and line here is ours.
 *
 * Endianness: BAR0 registers, admin commands and GQI doorbells are
 * big-endian; the structs below hold raw wire bytes (use gvnic_be*).
 * Every struct is naturally packed; the static asserts pin the sizes the
 * headers pin.
 */
#ifndef MOAT_GVNIC_ABI_H
#define MOAT_GVNIC_ABI_H

#include <stdint.h>

/* ---- PCI identity -------------------------------------------------------- */

#define GVNIC_PCI_VENDOR        0x1AE0u     /* Google */
#define GVNIC_PCI_DEVICE        0x0042u
#define GVNIC_PCI_SUBSYS_VENDOR 0x1AE0u
#define GVNIC_PCI_SUBSYS_ID     0x0058u
#define GVNIC_PCI_CLASS         0x020000u   /* Ethernet controller */
/* Revision 1 and later: admin-queue base/length registers and the
 * driver-status reset handshake; revision 0 has only the PFN register. */
#define GVNIC_PCI_REVISION      1u

#define GVNIC_BAR_REGS          0u          /* 32-bit memory BARs */
#define GVNIC_BAR_MSIX          1u
#define GVNIC_BAR_DOORBELLS     2u

/* ---- BAR0 registers (all big-endian) -------------------------------------- */

#define GVNIC_REG_DEVICE_STATUS     0x00u   /* be32, read */
#define GVNIC_REG_DRIVER_STATUS     0x04u   /* be32, write (revision >= 1) */
#define GVNIC_REG_MAX_TX_QUEUES     0x08u   /* be32, read */
#define GVNIC_REG_MAX_RX_QUEUES     0x0Cu   /* be32, read */
#define GVNIC_REG_ADMINQ_PFN        0x10u   /* be32: AQ address / 4096; 0 = reset */
#define GVNIC_REG_ADMINQ_DOORBELL   0x14u   /* be32: the driver's producer count */
#define GVNIC_REG_ADMINQ_EVENTS     0x18u   /* be32: commands completed */
#define GVNIC_REG_DRIVER_VERSION    0x1Fu   /* u8: version string, a byte at a time */
#define GVNIC_REG_ADMINQ_BASE_HI    0x20u   /* be32 (revision >= 1) */
#define GVNIC_REG_ADMINQ_BASE_LO    0x24u   /* be32 (revision >= 1) */
#define GVNIC_REG_ADMINQ_LENGTH     0x28u   /* be16: AQ bytes (revision >= 1) */

/* device_status */
#define GVNIC_DEV_RESET_REQUEST     0x02u   /* the device asks the driver to reset */
#define GVNIC_DEV_LINK_UP           0x04u
#define GVNIC_DEV_REPORT_STATS      0x08u   /* the device asks for a stats report */
#define GVNIC_DEV_IS_RESET          0x10u   /* a driver-requested reset completed */
/* driver_status */
#define GVNIC_DRV_RUN               0x01u   /* after base/length: start the AQ */
#define GVNIC_DRV_RESET             0x02u   /* reset the device */

/* ---- admin queue ---------------------------------------------------------- */

#define GVNIC_AQ_ENTRY_SIZE     64u         /* opcode be32, status be32, payload */
#define GVNIC_AQ_PAYLOAD_MAX    56u
#define GVNIC_AQ_DEFAULT_BYTES  4096u       /* 64 entries */

enum gvnic_aq_opcode {
    GVNIC_AQ_DESCRIBE_DEVICE            = 0x1,
    GVNIC_AQ_CONFIGURE_DEVICE_RESOURCES = 0x2,
    GVNIC_AQ_REGISTER_PAGE_LIST         = 0x3,
    GVNIC_AQ_UNREGISTER_PAGE_LIST       = 0x4,
    GVNIC_AQ_CREATE_TX_QUEUE            = 0x5,
    GVNIC_AQ_CREATE_RX_QUEUE            = 0x6,
    GVNIC_AQ_DESTROY_TX_QUEUE           = 0x7,
    GVNIC_AQ_DESTROY_RX_QUEUE           = 0x8,
    GVNIC_AQ_DECONFIGURE_DEVICE_RESOURCES = 0x9,
    GVNIC_AQ_CONFIGURE_RSS              = 0xA,
    GVNIC_AQ_SET_DRIVER_PARAMETER       = 0xB,
    GVNIC_AQ_REPORT_STATS               = 0xC,
    GVNIC_AQ_REPORT_LINK_SPEED          = 0xD,
    GVNIC_AQ_GET_PTYPE_MAP              = 0xE,
    GVNIC_AQ_VERIFY_DRIVER_COMPATIBILITY = 0xF,
};

/* Command status (be32 at +4). The device always writes one. */
enum gvnic_aq_status {
    GVNIC_AQ_UNSET               = 0x00000000u,
    GVNIC_AQ_PASSED              = 0x00000001u,
    GVNIC_AQ_ABORTED             = 0xFFFFFFF0u,
    GVNIC_AQ_ALREADY_EXISTS      = 0xFFFFFFF1u,
    GVNIC_AQ_CANCELLED           = 0xFFFFFFF2u,
    GVNIC_AQ_DATALOSS            = 0xFFFFFFF3u,
    GVNIC_AQ_DEADLINE_EXCEEDED   = 0xFFFFFFF4u,
    GVNIC_AQ_FAILED_PRECONDITION = 0xFFFFFFF5u,
    GVNIC_AQ_INTERNAL_ERROR      = 0xFFFFFFF6u,
    GVNIC_AQ_INVALID_ARGUMENT    = 0xFFFFFFF7u,
    GVNIC_AQ_NOT_FOUND           = 0xFFFFFFF8u,
    GVNIC_AQ_OUT_OF_RANGE        = 0xFFFFFFF9u,
    GVNIC_AQ_PERMISSION_DENIED   = 0xFFFFFFFAu,
    GVNIC_AQ_UNAUTHENTICATED     = 0xFFFFFFFBu,
    GVNIC_AQ_RESOURCE_EXHAUSTED  = 0xFFFFFFFCu,
    GVNIC_AQ_UNAVAILABLE         = 0xFFFFFFFDu,
    GVNIC_AQ_UNIMPLEMENTED       = 0xFFFFFFFEu,
    GVNIC_AQ_UNKNOWN_ERROR       = 0xFFFFFFFFu,
};

struct gvnic_aq_entry {
    uint32_t opcode;                /* be32 */
    uint32_t status;                /* be32 */
    uint8_t payload[GVNIC_AQ_PAYLOAD_MAX];
};

/* DESCRIBE_DEVICE: the device writes a descriptor and its options at
 * descriptor_addr, at most available_length bytes. */
#define GVNIC_DESCRIPTOR_VERSION 1u
struct gvnic_aq_describe {
    uint64_t descriptor_addr;       /* be64 */
    uint32_t descriptor_version;    /* be32, 1 */
    uint32_t available_length;      /* be32 */
};

struct gvnic_device_descriptor {
    uint64_t max_registered_pages;  /* be64: QPL pages, all lists together */
    uint16_t reserved1;
    uint16_t tx_queue_entries;      /* be16: TX ring size */
    uint16_t rx_queue_entries;      /* be16: RX ring size */
    uint16_t default_num_queues;    /* be16, 0 = the maximum */
    uint16_t mtu;                   /* be16 */
    uint16_t counters;              /* be16: event counters the driver provides */
    uint16_t tx_pages_per_qpl;      /* be16 */
    uint16_t rx_pages_per_qpl;      /* be16 */
    uint8_t mac[6];
    uint16_t num_device_options;    /* be16 */
    uint16_t total_length;          /* be16: descriptor + options */
    uint8_t reserved2[6];
};

/* Each option: this header, then option_length bytes of body. */
struct gvnic_device_option {
    uint16_t option_id;             /* be16 */
    uint16_t option_length;         /* be16: body bytes */
    uint32_t required_features_mask; /* be32; 0 for every option known */
};

enum gvnic_option_id {
    GVNIC_OPT_GQI_RAW_ADDRESSING = 0x1,
    GVNIC_OPT_GQI_RDA            = 0x2,
    GVNIC_OPT_GQI_QPL            = 0x3,
    GVNIC_OPT_DQO_RDA            = 0x4,
    GVNIC_OPT_MODIFY_RING        = 0x6,
    GVNIC_OPT_DQO_QPL            = 0x7,
    GVNIC_OPT_JUMBO_FRAMES       = 0x8,
    GVNIC_OPT_BUFFER_SIZES       = 0xA,
};

/* Bodies: the queue-format options carry the features the format supports. */
struct gvnic_opt_format {               /* GQI_RDA, GQI_QPL: 4 bytes */
    uint32_t supported_features_mask;   /* be32 */
};
struct gvnic_opt_dqo_rda {              /* 8 bytes */
    uint32_t supported_features_mask;   /* be32 */
    uint32_t reserved;
};
struct gvnic_opt_jumbo_frames {         /* 8 bytes */
    uint32_t supported_features_mask;   /* be32 */
    uint16_t max_mtu;                   /* be16 */
    uint8_t padding[2];
};
struct gvnic_opt_buffer_sizes {         /* 8 bytes */
    uint32_t supported_features_mask;   /* be32 */
    uint16_t packet_buffer_size;        /* be16 */
    uint16_t header_buffer_size;        /* be16 */
};
/* supported_features_mask bits: a feature option counts only when the
 * chosen format's option sets its bit. */
#define GVNIC_FEAT_MODIFY_RING   0x001u
#define GVNIC_FEAT_JUMBO_FRAMES  0x004u
#define GVNIC_FEAT_BUFFER_SIZES  0x010u

enum gvnic_queue_format {
    GVNIC_FMT_UNSPECIFIED = 0,
    GVNIC_FMT_GQI_RDA     = 1,
    GVNIC_FMT_GQI_QPL     = 2,
    GVNIC_FMT_DQO_RDA     = 3,
    GVNIC_FMT_DQO_QPL     = 4,
};

/* CONFIGURE_DEVICE_RESOURCES: the event counter array (num_counters be32,
 * device-written) and the interrupt-doorbell index array (num_irq_dbs
 * entries irq_db_stride apart; the device writes each block's doorbell
 * index, in 4-byte units of BAR2, into the entry's first be32). */
struct gvnic_aq_configure_resources {
    uint64_t counter_array;         /* be64 */
    uint64_t irq_db_addr;           /* be64 */
    uint32_t num_counters;          /* be32 */
    uint32_t num_irq_dbs;           /* be32 */
    uint32_t irq_db_stride;         /* be32: bytes between entries */
    uint32_t ntfy_blk_msix_base_idx; /* be32: 0 = blocks on vectors 0..n-1 */
    uint8_t queue_format;           /* enum gvnic_queue_format */
    uint8_t padding[7];
};

/* REGISTER_PAGE_LIST: num_pages be64 page addresses at page_address_list. */
#define GVNIC_RAW_ADDRESSING_QPL_ID 0xFFFFFFFFu
struct gvnic_aq_register_page_list {
    uint32_t page_list_id;          /* be32 */
    uint32_t num_pages;             /* be32 */
    uint64_t page_address_list;     /* be64 */
    uint64_t page_size;             /* be64: 4096 (0 is taken as 4096) */
};
struct gvnic_aq_unregister_page_list {
    uint32_t page_list_id;          /* be32 */
};

struct gvnic_aq_create_tx_queue {
    uint32_t queue_id;              /* be32 */
    uint32_t reserved;
    uint64_t queue_resources_addr;  /* be64: struct gvnic_queue_resources */
    uint64_t tx_ring_addr;          /* be64 */
    uint32_t queue_page_list_id;    /* be32, RAW_ADDRESSING for RDA formats */
    uint32_t ntfy_id;               /* be32: notification block */
    uint64_t tx_comp_ring_addr;     /* be64, DQO */
    uint16_t tx_ring_size;          /* be16, 0 = the descriptor's default */
    uint16_t tx_comp_ring_size;     /* be16, DQO */
    uint8_t padding[4];
};

struct gvnic_aq_create_rx_queue {
    uint32_t queue_id;              /* be32 */
    uint32_t index;                 /* be32 */
    uint32_t reserved;
    uint32_t ntfy_id;               /* be32 */
    uint64_t queue_resources_addr;  /* be64 */
    uint64_t rx_desc_ring_addr;     /* be64: GQI descriptors / DQO completions */
    uint64_t rx_data_ring_addr;     /* be64: GQI data slots / DQO buffers */
    uint32_t queue_page_list_id;    /* be32 */
    uint16_t rx_ring_size;          /* be16 */
    uint16_t packet_buffer_size;    /* be16 */
    uint16_t rx_buff_ring_size;     /* be16, DQO */
    uint8_t enable_rsc;
    uint8_t padding1;
    uint16_t header_buffer_size;    /* be16, DQO header split, 0 = off */
    uint8_t padding2[2];
};

/* Written by the device at queue_resources_addr when a queue is created. */
struct gvnic_queue_resources {
    uint32_t db_index;              /* be32: the queue's doorbell, BAR2 + 4 * index */
    uint32_t counter_index;         /* be32: its event counter (GQI TX) */
    uint8_t reserved[56];
};

struct gvnic_aq_destroy_queue {
    uint32_t queue_id;              /* be32 */
};

#define GVNIC_PARAM_MTU 0x1u
struct gvnic_aq_set_driver_parameter {
    uint32_t parameter_type;        /* be32 */
    uint8_t reserved[4];
    uint64_t parameter_value;       /* be64 */
};

struct gvnic_aq_report_stats {
    uint64_t stats_report_len;      /* be64; 0 with addr 0 detaches */
    uint64_t stats_report_addr;     /* be64 */
    uint64_t interval;              /* be64, ms */
};

struct gvnic_aq_report_link_speed {
    uint64_t link_speed_address;    /* be64: the device writes a be64, Mbit/s */
};

struct gvnic_aq_get_ptype_map {
    uint64_t ptype_map_len;         /* be64 */
    uint64_t ptype_map_addr;        /* be64: 1024 x {l3 u8, l4 u8} */
};
#define GVNIC_PTYPE_ENTRIES 1024u

struct gvnic_aq_verify_driver {
    uint64_t driver_info_len;       /* be64 */
    uint64_t driver_info_addr;      /* be64 */
};

/* ---- doorbells ------------------------------------------------------------- */

/* GQI interrupt doorbell values (be32). */
#define GVNIC_IRQ_ACK    0x80000000u
#define GVNIC_IRQ_MASK   0x40000000u
#define GVNIC_IRQ_EVENT  0x20000000u

_Static_assert(sizeof(struct gvnic_aq_entry) == 64, "admin queue entries are 64 bytes");
_Static_assert(sizeof(struct gvnic_aq_describe) == 16, "DESCRIBE_DEVICE payload");
_Static_assert(sizeof(struct gvnic_device_descriptor) == 40, "device descriptor");
_Static_assert(sizeof(struct gvnic_device_option) == 8, "device option header");
_Static_assert(sizeof(struct gvnic_opt_dqo_rda) == 8 && sizeof(struct gvnic_opt_format) == 4 &&
               sizeof(struct gvnic_opt_jumbo_frames) == 8 &&
               sizeof(struct gvnic_opt_buffer_sizes) == 8, "option bodies");
_Static_assert(sizeof(struct gvnic_aq_configure_resources) == 40, "CONFIGURE_DEVICE_RESOURCES");
_Static_assert(sizeof(struct gvnic_aq_register_page_list) == 24, "REGISTER_PAGE_LIST");
_Static_assert(sizeof(struct gvnic_aq_create_tx_queue) == 48, "CREATE_TX_QUEUE");
_Static_assert(sizeof(struct gvnic_aq_create_rx_queue) == 56, "CREATE_RX_QUEUE");
_Static_assert(sizeof(struct gvnic_queue_resources) == 64, "queue resources");
_Static_assert(sizeof(struct gvnic_aq_set_driver_parameter) == 16, "SET_DRIVER_PARAMETER");
_Static_assert(sizeof(struct gvnic_aq_report_stats) == 24, "REPORT_STATS");
_Static_assert(sizeof(struct gvnic_aq_verify_driver) == 16, "VERIFY_DRIVER_COMPATIBILITY");

/* ---- byte order ---------------------------------------------------------- */

static inline uint16_t gvnic_be16(uint16_t v) { return __builtin_bswap16(v); }
static inline uint32_t gvnic_be32(uint32_t v) { return __builtin_bswap32(v); }
static inline uint64_t gvnic_be64(uint64_t v) { return __builtin_bswap64(v); }

#endif /* MOAT_GVNIC_ABI_H */
